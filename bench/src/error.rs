//! Errors that stop a benchmark before it produces a result.
//!
//! Failures of individual requests are not errors here: they are counted in
//! the report, because a benchmark against a struggling server must still say
//! how it struggled.

use std::error::Error as StdError;

/// Why a run could not produce a report. Each variant maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The flags contradict each other or the workload's limits.
    #[error("invalid arguments: {0}")]
    Config(String),
    /// No endpoint could be connected to (or none is the leader with --target-leader).
    #[error("{0}")]
    Unreachable(String),
    /// Preparing the workload failed (creating watchers, granting leases).
    #[error("setup failed: {0}")]
    Setup(String),
}

impl BenchError {
    /// Process exit code: 2 for usage errors (as clap uses), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            BenchError::Config(_) => 2,
            BenchError::Unreachable(_) | BenchError::Setup(_) => 1,
        }
    }
}

/// An error and its sources joined by ": ", since tonic's top-level transport
/// error ("transport error") hides the useful part ("Connection refused").
pub fn chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// A gRPC status as one short line, e.g. `Unavailable: etcdserver: leader changed`.
/// Transport failures add their cause (e.g. a TLS alert) after the message.
pub fn status_text(status: &tonic::Status) -> String {
    let mut text = if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {}", status.code(), status.message())
    };
    if let Some(cause) = StdError::source(status) {
        let cause = chain(cause);
        if cause.starts_with(status.message()) {
            // tonic repeats the cause's first line as the message.
            text = format!("{:?}: {cause}", status.code());
        } else {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
