//! One logical watcher on the key prefix, with `prev_kv`, against one member. When its
//! stream fails (the member died, the connection broke) it resumes with a new session from
//! the revision after the last one it saw, as an informer does, so the checker can see
//! whether a resumed watch skips or repeats anything.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{WatchOptions, WatchStream};

use super::convert::{event, revision};
use super::{Clock, TrafficConfig};
use crate::cluster::connect;
use crate::history::{ClientId, WatchResponse, WatchSession};

/// How often a watcher that must catch up asks for a progress notification.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// What tells a watcher to finish: once `target` is set (non-zero) the watcher ends as
/// soon as it has seen that revision; `abandon` ends it at once.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    pub target: Arc<AtomicI64>,
    pub abandon: Arc<AtomicBool>,
}

/// What one watcher recorded, and the newest revision it knows it has seen everything up to.
#[derive(Debug)]
pub struct WatcherLog {
    pub sessions: Vec<WatchSession>,
    pub seen: i64,
}

pub async fn run(
    client_id: ClientId,
    watcher: u32,
    url: String,
    start_revision: i64,
    config: TrafficConfig,
    clock: Clock,
    finish: Finish,
) -> WatcherLog {
    let mut sessions = Vec::new();
    // Everything up to `seen` was delivered.
    let mut seen = start_revision - 1;
    loop {
        if finish.abandon.load(Ordering::Relaxed) || caught_up(&finish, seen) {
            break;
        }
        let mut session = WatchSession {
            client: client_id,
            watcher,
            key: super::PREFIX.into(),
            range_end: prefix_end(super::PREFIX),
            start_revision: seen + 1,
            prev_kv: true,
            call: clock.now(),
            responses: Vec::new(),
            error: None,
        };
        match tokio::time::timeout(config.call_timeout, open(&url, seen + 1)).await {
            Ok(Ok(stream)) => {
                session.error =
                    follow(stream, &mut session.responses, &mut seen, clock, &finish).await;
            }
            Ok(Err(e)) => session.error = Some(e),
            Err(_) => session.error = Some("watch request timed out".into()),
        }
        let failed = session.error.is_some();
        sessions.push(session);
        if failed {
            tokio::time::sleep(config.error_backoff).await;
        }
    }
    WatcherLog { sessions, seen }
}

fn caught_up(finish: &Finish, seen: i64) -> bool {
    let target = finish.target.load(Ordering::Relaxed);
    target > 0 && seen >= target
}

async fn open(url: &str, from: i64) -> Result<WatchStream, String> {
    let mut client = connect(url).await.map_err(|e| e.to_string())?;
    let opts = WatchOptions::new()
        .with_prefix()
        .with_prev_key()
        .with_start_revision(from);
    client
        .watch(super::PREFIX, Some(opts))
        .await
        .map_err(|e| e.to_string())
}

/// Records responses until the stream fails (returns why) or the watcher is finished
/// (returns None).
async fn follow(
    mut stream: WatchStream,
    responses: &mut Vec<WatchResponse>,
    seen: &mut i64,
    clock: Clock,
    finish: &Finish,
) -> Option<String> {
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    loop {
        if finish.abandon.load(Ordering::Relaxed) || caught_up(finish, *seen) {
            return None;
        }
        tokio::select! {
            msg = stream.message() => {
                let resp = match msg {
                    Ok(Some(r)) => r,
                    Ok(None) => return Some("watch stream ended".into()),
                    Err(e) => return Some(e.to_string()),
                };
                let events: Vec<_> = resp.events().iter().map(event).collect();
                let rev = revision(resp.header());
                let progress = events.is_empty() && !resp.created() && !resp.canceled();
                if let Some(last) = events.last() {
                    *seen = (*seen).max(last.kv.mod_revision);
                }
                if progress {
                    *seen = (*seen).max(rev);
                }
                responses.push(WatchResponse {
                    time: clock.now(),
                    revision: rev,
                    events,
                    compact_revision: resp.compact_revision(),
                    canceled: resp.canceled(),
                    progress_notify: progress,
                });
                if resp.canceled() {
                    if resp.compact_revision() > 0 {
                        // What was before is gone: go on from the oldest revision left,
                        // as an informer would after listing again.
                        *seen = (*seen).max(resp.compact_revision() - 1);
                        return Some(format!(
                            "watch canceled: revision compacted, resuming from {}",
                            resp.compact_revision()
                        ));
                    }
                    return Some(format!("watch canceled: {}", resp.cancel_reason()));
                }
            }
            _ = tick.tick() => {
                if finish.target.load(Ordering::Relaxed) > 0 {
                    if let Err(e) = stream.request_progress().await {
                        return Some(e.to_string());
                    }
                }
            }
        }
    }
}

/// The end of the range of keys starting with `prefix` (etcd's prefix rule).
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    "\0".into()
}
