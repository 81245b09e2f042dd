//! The robustness scenarios, one per kind of fault: a short randomised run each, on a
//! fresh 3-member cluster, whose history must show no violation. Needs root and `ip` (and
//! `mount` for disk-full, whose members each get a tmpfs).
//!
//! `BALLAST_ROBUSTNESS_SEED` replays a seed (printed by every run);
//! `BALLAST_ROBUSTNESS_DURATION` sets the traffic time per scenario (default 20s).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ballast_robustness::cluster::ballast_binary;
use ballast_robustness::faults::FaultKind;
use ballast_robustness::history::Outcome;
use ballast_robustness::runner::{self, RunConfig};
use ballast_robustness::traffic::TrafficConfig;

const DEFAULT_DURATION: Duration = Duration::from_secs(20);

/// Ballast's (and etcd's) refusal of a write for want of space.
const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";

/// Scenarios run one at a time: three members each on two cores are enough.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn scenario(kind: FaultKind) {
    let _serial = one_at_a_time();
    if let Err(e) = runner::check_privileges() {
        panic!("{e}");
    }
    let seed = runner::seed_from_env().expect("seed");
    let duration = runner::duration_from_env(DEFAULT_DURATION).expect("duration");
    println!(
        "scenario {} seed {seed} (replay: {}={seed})",
        kind.name(),
        runner::SEED_ENV
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = RunConfig {
        scenario: kind,
        seed,
        duration,
        traffic: TrafficConfig {
            compaction: compaction_from_env(),
            ..TrafficConfig::default()
        },
        dir: dir.path().to_path_buf(),
        binary: ballast_binary().expect("ballast binary"),
    };
    let started = Instant::now();
    let report = runner::run(&config).expect("run");
    println!("{} in {:.1?}", report.summary(), started.elapsed());
    for f in &report.faults {
        println!("  fault {}: {}", f.member, f.detail);
    }
    let refused = report
        .history
        .operations
        .iter()
        .filter(|o| matches!(&o.outcome, Outcome::Error(e) if e.contains(NO_SPACE)))
        .count();
    if kind == FaultKind::DiskFull {
        println!("  {refused} calls refused with {NO_SPACE:?}");
        assert!(
            refused > 0,
            "seed {seed}: no write was refused while a volume was full"
        );
    }
    assert!(
        !report.faults.is_empty(),
        "seed {seed}: no fault was injected in {duration:?}"
    );
    assert!(report.stats.ok > 0, "seed {seed}: no call succeeded");
    if !report.problems.is_empty() {
        let kept = dir.keep();
        let path = kept.join("report.json");
        report.save(&path).expect("save report");
        panic!(
            "scenario {} seed {seed}: {} problems (history and member logs in {}):\n{}",
            kind.name(),
            report.problems.len(),
            kept.display(),
            report.problems.join("\n")
        );
    }
}

#[test]
fn kill_random() {
    scenario(FaultKind::KillRandom);
}

#[test]
fn kill_leader() {
    scenario(FaultKind::KillLeader);
}

#[test]
fn sigstop() {
    scenario(FaultKind::Sigstop);
}

#[test]
fn partition_leader() {
    scenario(FaultKind::PartitionLeader);
}

#[test]
fn partition_minority() {
    scenario(FaultKind::PartitionMinority);
}

#[test]
fn torn_wal() {
    scenario(FaultKind::TornWal);
}

#[test]
fn disk_full() {
    scenario(FaultKind::DiskFull);
}

/// `BALLAST_ROBUSTNESS_COMPACTION=off` runs the traffic without compactions, to tell
/// whether a failure needs them (the watch gap of session 11 did).
fn compaction_from_env() -> bool {
    std::env::var("BALLAST_ROBUSTNESS_COMPACTION").map_or(true, |v| v != "off")
}
