//! The workloads and the closed-loop driver the unary ones share.
//!
//! Closed loop, as in etcd's benchmark: each of `--clients` tasks sends one
//! request, waits for the answer, and takes the next request number. The
//! measured latency is from just before the call to its response; setup
//! (connecting, seeding, creating watchers, granting leases) is not timed.

mod guarded_update;
mod keys;
mod lease;
mod lease_keys;
mod list;
mod put;
mod range;
mod seed;
mod txn_put;
mod watch;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::cli::{Cli, Command, GlobalOpts, DEFAULT_TOTAL};
use crate::error::BenchError;
use crate::pool::Pool;
use crate::progress::Progress;
use crate::report::{Report, SCHEMA};
use crate::stats::Collector;
use crate::work::Work;

/// What every workload gets.
pub(crate) struct Ctx<'a> {
    pub pool: &'a Pool,
    pub global: &'a GlobalOpts,
    pub show_progress: bool,
}

impl Ctx<'_> {
    /// `--total`, defaulting to etcd's 10000 unless `--duration` bounds the run.
    pub fn total(&self) -> Option<u64> {
        match (self.global.total, self.global.duration) {
            (Some(t), _) => Some(t),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TOTAL),
        }
    }

    /// A report with the common fields filled in from `measured`.
    pub fn report(
        &self,
        workload: &str,
        params: serde_json::Value,
        measured: &Collector,
        elapsed: Duration,
    ) -> Report {
        let measured = measured.lock();
        let secs = elapsed.as_secs_f64();
        let requests = measured.count();
        Report {
            schema: SCHEMA.into(),
            workload: workload.into(),
            endpoints: self.pool.endpoints.clone(),
            server_version: self.pool.server_version.clone(),
            conns: self.global.conns,
            clients: self.global.clients,
            params,
            requests,
            errors: measured.error_count(),
            error_messages: measured.error_messages(),
            total_secs: secs,
            requests_per_sec: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            latency: measured.latency(),
            histogram: measured.histogram(),
            watch: None,
            details: None,
            warnings: self.pool.warnings.clone(),
        }
    }
}

/// Checks the flags before any connection is made, so a mistake is reported
/// as one even when no server is running.
pub(crate) fn validate(cli: &Cli) -> Result<(), BenchError> {
    let g = &cli.global;
    if g.conns == 0 || g.clients == 0 {
        return Err(BenchError::Config(
            "--conns and --clients must be at least 1".into(),
        ));
    }
    if g.total == Some(0) {
        return Err(BenchError::Config("--total must be at least 1".into()));
    }
    if g.duration == Some(Duration::ZERO) {
        return Err(BenchError::Config("--duration must be positive".into()));
    }
    match &cli.command {
        Command::Put(o) => put::validate(o),
        Command::Range(o) => range::validate(o),
        Command::TxnPut(o) => txn_put::validate(o),
        Command::Watch(o) => watch::validate(o, g),
        Command::LeaseKeepalive(o) => lease::validate(o),
        Command::List(o) => list::validate(o),
        Command::LeaseKeys(o) => lease_keys::validate(o),
        Command::GuardedUpdate(o) => guarded_update::validate(o),
    }
}

/// Runs the workload `cli` names against `pool` (flags already validated).
pub(crate) async fn run(cli: &Cli, pool: &Pool, show_progress: bool) -> Result<Report, BenchError> {
    let ctx = Ctx {
        pool,
        global: &cli.global,
        show_progress,
    };
    match &cli.command {
        Command::Put(o) => put::run(&ctx, o).await,
        Command::Range(o) => range::run(&ctx, o).await,
        Command::TxnPut(o) => txn_put::run(&ctx, o).await,
        Command::Watch(o) => watch::run(&ctx, o).await,
        Command::LeaseKeepalive(o) => lease::run(&ctx, o).await,
        Command::List(o) => list::run(&ctx, o).await,
        Command::LeaseKeys(o) => lease_keys::run(&ctx, o).await,
        Command::GuardedUpdate(o) => guarded_update::run(&ctx, o).await,
    }
}

/// Outcome of one request as the driver sees it: the client comes back with
/// the result so the next request can reuse it.
pub(crate) type Answer<C> = (C, Result<(), String>);

/// Runs a closed-loop unary workload and returns its measurements.
///
/// `make` builds a typed client on a channel; `op` sends request number `n`.
/// `op` takes the client by value and hands it back, because tonic's clients
/// need `&mut self` and a borrowed client cannot live in a returned future.
pub(crate) async fn drive_unary<C, M, F, Fut>(
    ctx: &Ctx<'_>,
    rate: u64,
    make: M,
    op: F,
) -> (Collector, Duration)
where
    C: Send + 'static,
    M: Fn(Channel) -> C + Send + Sync + 'static,
    F: Fn(C, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer<C>> + Send + 'static,
{
    let total = ctx.total();
    let progress = Progress::start(ctx.show_progress, total, "requests");
    let collector = Collector::new();
    let make = Arc::new(make);
    let op = Arc::new(op);
    let timeout = ctx.global.request_timeout;
    let work = Arc::new(Work::new(total, ctx.global.duration, rate));
    let mut tasks = JoinSet::new();
    for c in 0..ctx.global.clients {
        let channel = ctx.pool.channel(c);
        let (make, op, work) = (Arc::clone(&make), Arc::clone(&op), Arc::clone(&work));
        let mut rec = collector.recorder();
        let done = progress.counter();
        tasks.spawn(async move {
            let mut client = Some(make(channel.clone()));
            while let Some(n) = work.next().await {
                let c = client.take().unwrap_or_else(|| make(channel.clone()));
                let started = Instant::now();
                match tokio::time::timeout(timeout, op(c, n)).await {
                    Ok((c, result)) => {
                        rec.outcome(started.elapsed(), result);
                        client = Some(c);
                    }
                    // The client was dropped with the future; the next request makes a new one.
                    Err(_) => rec.error(format!("request timed out after {timeout:?}")),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    join_all(&mut tasks).await;
    let elapsed = work.start().elapsed();
    progress.finish();
    (collector, elapsed)
}

/// Waits for every task, re-raising a panic (a bug in the workload) instead of
/// silently reporting fewer requests.
pub(crate) async fn join_all<T: 'static>(tasks: &mut JoinSet<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(v) => out.push(v),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only aborted tasks get here, and the workloads abort none.
            Err(_) => {}
        }
    }
    out
}
