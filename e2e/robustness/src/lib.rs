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

pub mod check;
pub mod cluster;
mod error;
pub mod faults;
pub mod history;
pub mod runner;
pub mod traffic;

pub use error::Error;
