//! Ballast's robustness suite, after etcd's `tests/robustness`: clients run random traffic
//! against a real 3-member cluster while faults are injected, every call is recorded with
//! its invocation and completion time, and the histories are checked afterwards.
//!
//! - [`history`]: what was recorded (the checker's input; no I/O).
//! - [`check`]: the checker, from a history to a report of every guarantee broken.
//! - [`cluster`]: the members, each in its own network namespace.
//! - [`traffic`]: the clients and watchers that record the history.
//! - [`faults`]: what is done to the members while traffic runs.
//! - [`runner`]: one run of one scenario, start to report.
//!
//! # Running
//!
//! Needs root and `ip` (each member runs in its own network namespace), and for the
//! disk-full scenario `mount` and `df` (each member's data directory is then a tmpfs).
//!
//! ```sh
//! cargo test -p ballast-robustness --test robustness          # every scenario, ~20 s of traffic each
//! BALLAST_ROBUSTNESS_SEED=123 BALLAST_ROBUSTNESS_DURATION=60s \
//!   cargo test -p ballast-robustness --test robustness torn_wal   # replay one scenario's seed
//! cargo run --release -p ballast-robustness -- soak --duration 30m [--seed N] [--scenario kill-leader]
//! ```
//!
//! The server is built by cargo with the runner's profile, or taken from
//! `$BALLAST_ROBUSTNESS_BIN`. A run with a problem keeps its directory: the report with the
//! whole history as JSON (`report.json`) and each member's log.

pub mod check;
pub mod cluster;
mod error;
pub mod faults;
pub mod history;
pub mod runner;
pub mod traffic;

pub use error::Error;
