//! The progress bar, shown only when stdout is a terminal and `--json` is off,
//! so scripted runs get clean output.
//!
//! Client tasks only bump an atomic counter; a ticker task copies it into the
//! bar ten times a second. That keeps the bar's own locking out of the
//! measured hot path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

/// Counts completed units (requests, events) and, if enabled, draws them.
pub struct Progress {
    done: Arc<AtomicU64>,
    bar: Option<ProgressBar>,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// `len` is the expected number of units if known (a bar), else a counter is shown.
    pub fn start(enabled: bool, len: Option<u64>, unit: &str) -> Progress {
        let done = Arc::new(AtomicU64::new(0));
        if !enabled {
            return Progress {
                done,
                bar: None,
                ticker: None,
            };
        }
        let template = match len {
            Some(_) => {
                format!("{{bar:40}} {{pos}}/{{len}} {unit} {{elapsed_precise}} (eta {{eta}})")
            }
            None => format!("{{spinner}} {{pos}} {unit} {{elapsed_precise}}"),
        };
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar =
            ProgressBar::with_draw_target(len, ProgressDrawTarget::stdout()).with_style(style);
        let ticker = {
            let bar = bar.clone();
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(100));
                loop {
                    every.tick().await;
                    bar.set_position(done.load(Ordering::Relaxed));
                }
            })
        };
        Progress {
            done,
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }

    /// The counter client tasks increment.
    pub fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.done)
    }

    /// Stops the ticker and leaves the final state on screen.
    pub fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        if let Some(bar) = self.bar {
            bar.set_position(self.done.load(Ordering::Relaxed));
            bar.finish();
        }
    }
}
