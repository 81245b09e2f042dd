//! One run: start a cluster, run traffic while injecting one kind of fault at random
//! moments, heal everything, read the final state, let the watchers catch up, and check
//! what was recorded.

mod acknowledged;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::check::{self, Options, Report, Verdict};
use crate::cluster::{connect, Cluster};
use crate::faults::{self, FaultKind, FaultRecord};
use crate::history::{History, KeyValue, Operation, Outcome, Request, Response};
use crate::traffic::{self, Clock, Traffic, TrafficConfig, PREFIX};
use crate::Error;

/// Environment variable with the seed to replay.
pub const SEED_ENV: &str = "BALLAST_ROBUSTNESS_SEED";
/// Environment variable with the traffic time per scenario (humantime: `20s`, `2m`).
pub const DURATION_ENV: &str = "BALLAST_ROBUSTNESS_DURATION";

/// How long the watchers may take to catch up with the final revision after healing.
const CATCH_UP: Duration = Duration::from_secs(60);
/// Attempts at the final read (each with the call timeout) before the run fails.
const FINAL_READ_ATTEMPTS: usize = 20;

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub scenario: FaultKind,
    pub seed: u64,
    /// How long traffic runs (faults come during it).
    pub duration: Duration,
    pub traffic: TrafficConfig,
    /// Data directories and member logs go here.
    pub dir: PathBuf,
    pub binary: PathBuf,
}

/// Counts for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub ok: usize,
    pub errors: usize,
    pub watch_sessions: usize,
    pub watch_events: usize,
    pub final_revision: i64,
    /// Compactions acknowledged, and watch sessions cancelled because their start was
    /// compacted.
    pub compactions: usize,
    pub compacted_watches: usize,
    /// The checker's verdict on linearizability.
    pub linearizability: String,
}

/// What a run produced.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub scenario: FaultKind,
    pub seed: u64,
    pub faults: Vec<FaultRecord>,
    pub stats: Stats,
    /// Violations found by the checks, and anything that kept the run from finishing
    /// properly (a member that did not restart, watchers that did not catch up).
    pub problems: Vec<String>,
    /// The checker's report, as text.
    pub check: String,
    pub history: History,
}

impl RunReport {
    /// One line: scenario, seed, operations, faults, watch events.
    pub fn summary(&self) -> String {
        format!(
            "scenario {} seed {}: {} operations ({} ok, {} error), {} faults, {} watch events in {} sessions ({} cancelled as compacted; {} compactions), final revision {}, {}, {} problems",
            self.scenario.name(),
            self.seed,
            self.stats.ok + self.stats.errors,
            self.stats.ok,
            self.stats.errors,
            self.faults.len(),
            self.stats.watch_events,
            self.stats.watch_sessions,
            self.stats.compacted_watches,
            self.stats.compactions,
            self.stats.final_revision,
            self.stats.linearizability,
            self.problems.len()
        )
    }

    /// Writes everything (history included) as JSON to `path`.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let file = std::fs::File::create(path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        serde_json::to_writer(std::io::BufWriter::new(file), self)
            .map_err(|e| Error::Setup(format!("writing {}: {e}", path.display())))
    }
}

/// The seed from `$BALLAST_ROBUSTNESS_SEED`, or else a fresh one.
pub fn seed_from_env() -> Result<u64, Error> {
    match std::env::var(SEED_ENV) {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|_| Error::Setup(format!("{SEED_ENV}={s:?} is not a number"))),
        Err(_) => Ok(rand::rng().random()),
    }
}

/// The traffic time from `$BALLAST_ROBUSTNESS_DURATION`, or `default`.
pub fn duration_from_env(default: Duration) -> Result<Duration, Error> {
    match std::env::var(DURATION_ENV) {
        Ok(s) => humantime::parse_duration(s.trim())
            .map_err(|e| Error::Setup(format!("{DURATION_ENV}={s:?}: {e}"))),
        Err(_) => Ok(default),
    }
}

/// Fails unless the process can create network namespaces (root) and `ip` exists.
pub fn check_privileges() -> Result<(), Error> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        });
    if uid.as_deref() != Some("0") {
        return Err(Error::Setup(
            "the robustness suite needs root: each member runs in its own network namespace \
             (run the tests as root, as CI does)"
                .into(),
        ));
    }
    let ip = std::process::Command::new("ip").arg("-V").output();
    if !ip.is_ok_and(|o| o.status.success()) {
        return Err(Error::Setup(
            "the robustness suite needs `ip` (iproute2)".into(),
        ));
    }
    Ok(())
}

/// A network tag and subnet that concurrent processes are unlikely to share, and that
/// differ between consecutive runs of one process: the kernel removes a deleted
/// namespace's interfaces in the background, so reusing names at once can collide.
fn network_names() -> (String, [u8; 3]) {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed) % 10;
    let pid = std::process::id();
    (
        format!("rb{}{run}", pid % 1000),
        [10, 200 + run as u8, (pid % 250) as u8 + 1],
    )
}

/// Runs one scenario. Errors are for runs that could not start at all; everything that
/// goes wrong once traffic runs is a problem in the report.
///
/// Ctrl-C ends the run by dropping it, so that its members are killed and its volumes and
/// network namespaces removed (they outlived an interrupted soak before).
pub fn run(config: &RunConfig) -> Result<RunReport, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the tokio runtime", e))?;
    runtime.block_on(async {
        tokio::select! {
            report = run_async(config) => report,
            _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
        }
    })
}

async fn run_async(config: &RunConfig) -> Result<RunReport, Error> {
    let (tag, subnet) = network_names();
    let volume_size = faults::volume_size(config.scenario);
    let mut cluster =
        Cluster::start(&config.binary, &config.dir, &tag, subnet, volume_size).await?;
    let endpoints = cluster.endpoints();
    let start_revision = {
        let mut c = connect(&endpoints[0]).await?;
        let r = c
            .get(PREFIX, None)
            .await
            .map_err(|e| Error::client("reading the start revision", e))?;
        r.header().map(|h| h.revision()).unwrap_or(1) + 1
    };
    let clock = Clock::start();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut traffic = Traffic::start(
        &endpoints,
        config.traffic,
        clock,
        config.seed,
        start_revision,
    )
    .await?;
    let mut problems = Vec::new();
    let mut faults = Vec::new();
    let end = tokio::time::Instant::now() + config.duration;
    loop {
        let wait = Duration::from_millis(rng.random_range(500..2000));
        if tokio::time::Instant::now() + wait >= end {
            break;
        }
        tokio::time::sleep(wait).await;
        let injected = faults::inject(config.scenario, &mut cluster, &mut rng, clock).await;
        match injected {
            Ok(record) => faults.push(record),
            Err(e) => {
                problems.push(format!("injecting {}: {e}", config.scenario.name()));
                break;
            }
        }
        // The next fault comes only once the cluster is whole again.
        if let Err(e) = cluster.wait_all_healthy().await {
            problems.push(format!("recovering from {}: {e}", config.scenario.name()));
            break;
        }
    }
    let remaining = end.saturating_duration_since(tokio::time::Instant::now());
    if problems.is_empty() {
        tokio::time::sleep(remaining).await;
    }

    let mut history = History::default();
    traffic.stop_clients(&mut history).await?;
    cluster.heal_all()?;
    if let Err(e) = cluster.wait_all_healthy().await {
        problems.push(format!("after healing: {e}"));
    }
    let final_client = config.traffic.clients + config.traffic.watchers;
    let final_state = final_read(&endpoints, final_client, config, clock, &mut history).await;
    let final_revision = match &final_state {
        Some((revision, _)) => *revision,
        None => {
            problems.push(format!(
                "the final linearizable read failed {FINAL_READ_ATTEMPTS} times; logs:\n{}",
                cluster.log_tails()
            ));
            0
        }
    };
    if final_revision > 0 {
        if let Err(e) = traffic
            .finish_watchers(final_revision, CATCH_UP, &mut history)
            .await
        {
            problems.push(e);
        }
    } else {
        let _ = traffic
            .finish_watchers(i64::MAX, Duration::ZERO, &mut history)
            .await;
    }
    drop(cluster);
    traffic::sort(&mut history);
    if let Some((_, kvs)) = &final_state {
        problems.extend(acknowledged::check(&history, kvs));
    }
    let (history, check) = run_checker(history, start_revision - 1).await?;
    problems.extend(
        check
            .violations
            .iter()
            .map(|v| format!("{:?}: {}", v.kind, v.description)),
    );
    let mut stats = stats(&history, final_revision);
    stats.linearizability = match &check.linearizability {
        Verdict::Linearizable => "linearizable".into(),
        Verdict::NotLinearizable(_) => "not linearizable".into(),
        Verdict::Inconclusive => "inconclusive".into(),
    };
    Ok(RunReport {
        scenario: config.scenario,
        seed: config.seed,
        faults,
        stats,
        problems,
        check: check.to_string(),
        history,
    })
}

/// A linearizable List of the prefix after healing, retried until it succeeds; every
/// attempt is in the history.
async fn final_read(
    endpoints: &[String],
    client_id: u32,
    config: &RunConfig,
    clock: Clock,
    history: &mut History,
) -> Option<(i64, Vec<KeyValue>)> {
    let request = Request::List {
        prefix: PREFIX.into(),
        revision: 0,
        serializable: false,
    };
    for attempt in 0..FINAL_READ_ATTEMPTS {
        let url = &endpoints[attempt % endpoints.len()];
        let call = clock.now();
        let result = match connect(url).await {
            Ok(mut c) => traffic::call(&mut c, &request, config.traffic.call_timeout).await,
            Err(e) => Err(e.to_string()),
        };
        let ret = clock.now();
        let outcome = match result {
            Ok(r) => Outcome::Ok(r),
            Err(e) => Outcome::Error(e),
        };
        let done = match &outcome {
            Outcome::Ok(Response::List { revision, kvs }) => Some((*revision, kvs.clone())),
            _ => None,
        };
        history.operations.push(Operation {
            client: client_id,
            call,
            ret,
            request: request.clone(),
            outcome,
        });
        if done.is_some() {
            return done;
        }
        tokio::time::sleep(config.traffic.error_backoff).await;
    }
    None
}

fn stats(history: &History, final_revision: i64) -> Stats {
    let ok = history
        .operations
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Ok(_)))
        .count();
    Stats {
        ok,
        errors: history.operations.len() - ok,
        watch_sessions: history.watches.len(),
        watch_events: history
            .watches
            .iter()
            .flat_map(|w| &w.responses)
            .map(|r| r.events.len())
            .sum(),
        final_revision,
        compactions: history
            .operations
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Ok(Response::Compact { .. })))
            .count(),
        compacted_watches: history
            .watches
            .iter()
            .filter(|w| w.responses.iter().any(|r| r.compact_revision > 0))
            .count(),
        linearizability: String::new(),
    }
}

/// The checker, off the runtime's threads (its search can take a while).
async fn run_checker(history: History, initial_revision: i64) -> Result<(History, Report), Error> {
    tokio::task::spawn_blocking(move || {
        let options = Options {
            initial_revision,
            ..Options::default()
        };
        let report = check::all_with(&history, &options);
        (history, report)
    })
    .await
    .map_err(|e| Error::Setup(format!("the checker failed: {e}")))
}
