//! `ballast-bench`: a benchmark for etcd v3 API servers, modelled on etcd's
//! `tools/benchmark`, used to compare Ballast with etcd through one client
//! (Ballast's generated tonic clients) so that client cost is the same on
//! both sides.
//!
//! The binary is a thin wrapper around [`run`]; tests and a comparison runner
//! can call [`run`] directly with a parsed [`Cli`] and read the [`Report`].
//!
//! Modules: [`cli`] (flags), [`pool`] (connections), `workloads` (put,
//! range, txn-put, watch, lease-keepalive), [`stats`] (latency collection),
//! [`report`] (JSON and text output).

pub mod cli;
pub mod error;
pub mod pool;
mod progress;
pub mod report;
pub mod stats;
mod work;
mod workloads;

pub use cli::Cli;
pub use error::BenchError;
pub use report::Report;

/// Connects to the endpoints and runs the workload `cli` names.
///
/// `show_progress` draws a progress bar on stdout; the binary enables it only
/// when stdout is a terminal and `--json` is off.
pub async fn run(cli: &Cli, show_progress: bool) -> Result<Report, BenchError> {
    workloads::validate(cli)?;
    let pool = pool::Pool::connect(&cli.global).await?;
    workloads::run(cli, &pool, show_progress).await
}
