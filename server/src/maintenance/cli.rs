//! The `ballast defrag` command line, as a Kubernetes CronJob runs it.
//!
//! Like `ballast backup save`: stdout carries exactly one JSON line (the result, for a
//! program to read), the lines for people go to stderr, and the JSON line or the failure
//! message is also written to the termination log, which Kubernetes shows as the
//! container's termination message. A skipped run (unhealthy cluster) succeeds: the next
//! scheduled run will try again. Failures are one line and exit with 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::defrag::{self, Defragmented, Outcome};
use crate::backup::cli::termination_message;
use crate::backup::Endpoints;

#[derive(Debug, clap::Parser)]
#[command(
    name = "ballast defrag",
    about = "Defragment every member of a healthy cluster, followers first, the leader last"
)]
pub struct Cli {
    /// Every member's client URL: a member left out would escape the health check.
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// Limit for connecting, for each answer and for each member's defragmentation.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub timeout: Duration,
    /// Where Kubernetes reads the container's termination message; written only if it exists.
    #[arg(long = "termination-log", default_value = "/dev/termination-log")]
    pub termination_log: PathBuf,
}

/// The JSON line of a run that did not fail.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub members: Vec<Defragmented>,
    pub skipped: Option<String>,
}

/// Runs the command; prints its results and failures and returns the exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let endpoints = cli.endpoints;
    let result = defrag::run(&endpoints, cli.timeout, |m| {
        eprintln!(
            "defragmented {} ({}): db size {} -> {} bytes (in use {})",
            m.name, m.endpoint, m.before, m.after, m.in_use
        );
    })
    .await;
    let summary = match result {
        Ok(Outcome::Done(members)) => Summary {
            members,
            skipped: None,
        },
        Ok(Outcome::Skipped(why)) => {
            eprintln!("skipped: {why}");
            Summary {
                members: Vec::new(),
                skipped: Some(why),
            }
        }
        Err(e) => return fail(&cli.termination_log, &e.to_string()),
    };
    match serde_json::to_string(&summary) {
        Ok(line) => {
            println!("{line}");
            termination_message(&cli.termination_log, &line);
            ExitCode::SUCCESS
        }
        Err(e) => fail(&cli.termination_log, &format!("cannot encode JSON: {e}")),
    }
}

fn fail(termination_log: &Path, why: &str) -> ExitCode {
    let message = format!("ballast defrag: {why}").replace(['\n', '\r'], " ");
    eprintln!("{message}");
    termination_message(termination_log, &message);
    ExitCode::FAILURE
}
