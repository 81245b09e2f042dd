//! Values built from files and rebuilt when the files change on disk, so renewed
//! certificates, CA bundles and CRLs take effect for the next handshake without a restart.
//!
//! Checking costs one `stat` per file per handshake. A failed rebuild (say a file caught
//! half-written) keeps the previous value and is retried once the files change again.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::SystemTime;

use parking_lot::Mutex;

/// What identifies a version of a set of files: modification time, size and inode of each
/// (an atomic rename changes the inode even within one mtime tick). `None` for a missing file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<Option<(SystemTime, u64, u64)>>);

impl Stamp {
    fn of(paths: &[PathBuf]) -> Stamp {
        Stamp(
            paths
                .iter()
                .map(|p| {
                    let m = std::fs::metadata(p).ok()?;
                    Some((m.modified().ok()?, m.len(), m.ino()))
                })
                .collect(),
        )
    }
}

type Build<T> = Box<dyn Fn() -> Result<T, String> + Send + Sync>;

struct State<T> {
    /// The files the current value was built from.
    built: Stamp,
    /// The files a rebuild last failed on; not retried until they change.
    failed: Option<Stamp>,
    value: T,
}

pub struct Reloading<T> {
    /// For log lines: "client certificate", "peer trusted CA".
    what: String,
    paths: Vec<PathBuf>,
    build: Build<T>,
    state: Mutex<State<T>>,
}

impl<T: Clone> Reloading<T> {
    /// Builds the first value; its error is a startup error.
    pub fn new(
        what: impl Into<String>,
        paths: Vec<PathBuf>,
        build: impl Fn() -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let built = Stamp::of(&paths);
        let value = build()?;
        Ok(Reloading {
            what: what.into(),
            paths,
            build: Box::new(build),
            state: Mutex::new(State {
                built,
                failed: None,
                value,
            }),
        })
    }

    /// The value for the current files, rebuilt first if they changed.
    pub fn get(&self) -> T {
        let now = Stamp::of(&self.paths);
        let mut state = self.state.lock();
        if now != state.built && state.failed.as_ref() != Some(&now) {
            match (self.build)() {
                Ok(v) => {
                    tracing::info!(files = ?self.paths, "reloaded the {}", self.what);
                    state.value = v;
                    state.built = now;
                    state.failed = None;
                }
                Err(e) => {
                    tracing::warn!(
                        "reloading the {} failed, keeping the previous one: {e}",
                        self.what
                    );
                    state.failed = Some(now);
                }
            }
        }
        state.value.clone()
    }
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("paths", &self.paths)
            .finish()
    }
}
