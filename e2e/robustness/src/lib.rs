//! Ballast's robustness suite, after etcd's `tests/robustness`: clients run random traffic
//! against a real 3-member cluster while faults are injected, every call is recorded with
//! its invocation and completion time, and the histories are checked afterwards.
//!
//! - [`history`]: what was recorded (the checker's input; no I/O).
//! - [`check`]: the checker, from a history to a report of every guarantee broken.

pub mod check;
mod error;
pub mod history;

pub use error::Error;
