//! `ballast-robustness`: runs the robustness scenarios by hand, e.g. a long soak:
//!
//! ```sh
//! cargo run --release -p ballast-robustness -- soak --duration 30m [--seed N] [--scenario X]
//! ```
//!
//! Each run starts a fresh 3-member cluster; a soak cycles through the scenarios (or
//! repeats one) with a new seed per run (derived from `--seed`, printed), and stops at the
//! first run with a problem, saving its history as JSON and printing the path and seed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ballast_robustness::cluster::ballast_binary;
use ballast_robustness::faults::FaultKind;
use ballast_robustness::runner::{self, RunConfig, RunReport};
use ballast_robustness::traffic::TrafficConfig;
use clap::{Parser, Subcommand};
use rand::{Rng, SeedableRng};

#[derive(Parser)]
#[command(
    about = "Ballast's robustness suite: traffic, faults and history checks on a real cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs scenarios one after another until the time is up.
    Soak {
        /// Total time (humantime: 30m, 2h).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30m")]
        duration: Duration,
        /// Traffic time per run.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
        run_duration: Duration,
        /// Seed of the whole soak (each run's seed derives from it); random if absent.
        #[arg(long)]
        seed: Option<u64>,
        /// Repeat only this scenario.
        #[arg(long, value_parser = scenario)]
        scenario: Option<FaultKind>,
        /// Where data directories, logs and failing histories go.
        #[arg(long, default_value = "/tmp/ballast-robustness")]
        dir: PathBuf,
        /// Clients never compact the history.
        #[arg(long)]
        no_compaction: bool,
    },
    /// Runs the checker on a saved run report (`report.json`) or a bare history.
    Check { file: PathBuf },
    /// Runs one scenario once (to replay a seed).
    Run {
        #[arg(long, value_parser = scenario)]
        scenario: FaultKind,
        #[arg(long)]
        seed: u64,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
        duration: Duration,
        #[arg(long, default_value = "/tmp/ballast-robustness")]
        dir: PathBuf,
        #[arg(long)]
        no_compaction: bool,
    },
}

fn scenario(name: &str) -> Result<FaultKind, String> {
    FaultKind::from_name(name).ok_or_else(|| {
        let all: Vec<_> = FaultKind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown scenario {name:?}; one of {}", all.join(", "))
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Check { file } = &cli.command {
        return check_saved(file);
    }
    runner::check_privileges()?;
    let binary = ballast_binary()?;
    match cli.command {
        Command::Soak {
            duration,
            run_duration,
            seed,
            scenario,
            dir,
            no_compaction,
        } => soak(
            &binary,
            duration,
            run_duration,
            seed,
            scenario,
            &dir,
            !no_compaction,
        ),
        Command::Check { .. } => Ok(()),
        Command::Run {
            scenario,
            seed,
            duration,
            dir,
            no_compaction,
        } => {
            let report = run_one(&binary, scenario, seed, duration, &dir, 0, !no_compaction)?;
            if !report.problems.is_empty() {
                bail!("{} problems", report.problems.len());
            }
            Ok(())
        }
    }
}

/// A saved report holds the history under `history`; a bare history is the whole file.
fn check_saved(file: &std::path::Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut value: serde_json::Value = serde_json::from_str(&text)?;
    let history = match value.get_mut("history") {
        Some(h) => serde_json::from_value(h.take())?,
        None => serde_json::from_value(value)?,
    };
    let report = ballast_robustness::check::all(&history);
    println!("{report}");
    if !report.is_ok() {
        bail!("{} violations", report.violations.len());
    }
    Ok(())
}

fn soak(
    binary: &std::path::Path,
    duration: Duration,
    run_duration: Duration,
    seed: Option<u64>,
    only: Option<FaultKind>,
    dir: &std::path::Path,
    compaction: bool,
) -> anyhow::Result<()> {
    let seed = seed.unwrap_or_else(|| rand::rng().random());
    println!(
        "soak seed {seed} for {}",
        humantime::format_duration(duration)
    );
    let mut seeds = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let (mut runs, mut ok, mut errors, mut faults, mut events) = (0, 0, 0, 0, 0);
    while started.elapsed() < duration {
        let scenario = only.unwrap_or(FaultKind::ALL[runs % FaultKind::ALL.len()]);
        let report = run_one(
            binary,
            scenario,
            seeds.random(),
            run_duration,
            dir,
            runs,
            compaction,
        )?;
        runs += 1;
        ok += report.stats.ok;
        errors += report.stats.errors;
        faults += report.faults.len();
        events += report.stats.watch_events;
        if !report.problems.is_empty() {
            bail!("run {runs} ({}) failed", scenario.name());
        }
    }
    println!(
        "soak seed {seed}: {runs} runs in {}, {} operations ({ok} ok, {errors} error), {faults} faults, {events} watch events, no problems",
        humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
        ok + errors
    );
    Ok(())
}

/// One run in its own directory (removed when the run passes); prints its summary, and
/// on problems saves the report with its history and prints where.
fn run_one(
    binary: &std::path::Path,
    scenario: FaultKind,
    seed: u64,
    duration: Duration,
    dir: &std::path::Path,
    n: usize,
    compaction: bool,
) -> anyhow::Result<RunReport> {
    let run_dir = dir.join(format!("run-{n}-{}-{seed}", scenario.name()));
    // An interrupted run of the same seed leaves its directory; its members' data would be
    // reused and they would not form the new cluster.
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("removing {}", run_dir.display()))?;
    }
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    println!("run {n}: scenario {} seed {seed}", scenario.name());
    let config = RunConfig {
        scenario,
        seed,
        duration,
        traffic: TrafficConfig {
            compaction,
            ..TrafficConfig::default()
        },
        dir: run_dir.clone(),
        binary: binary.to_path_buf(),
    };
    let report = runner::run(&config)?;
    println!("{}", report.summary());
    for f in &report.faults {
        println!("  fault {}: {}", f.member, f.detail);
    }
    if report.problems.is_empty() {
        std::fs::remove_dir_all(&run_dir).ok();
    } else {
        for p in &report.problems {
            println!("  PROBLEM: {p}");
        }
        let path = run_dir.join("report.json");
        report.save(&path)?;
        println!(
            "history saved to {}; replay with: ballast-robustness run --scenario {} --seed {seed}",
            path.display(),
            scenario.name()
        );
    }
    Ok(report)
}
