//! The progress line of `ballast backup save` when a person watches it on a terminal (a
//! CronJob's log gets none: a line redrawn in place is noise there).

/// The progress line on a terminal (bytes received of the total, rate), or nothing.
pub(super) struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub(super) fn new(shown: bool) -> Progress {
        Progress(shown.then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "snapshot {bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed}",
            ) {
                bar.set_style(style);
            }
            bar
        }))
    }

    pub(super) fn update(&self, done: u64, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    /// Replaces the line with a summary, so what follows starts on a line of its own.
    pub(super) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
            eprintln!(
                "snapshot: {} bytes received in {:.1?}",
                bar.position(),
                bar.elapsed()
            );
        }
    }
}
