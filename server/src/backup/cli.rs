//! The `ballast backup save|list|fetch|release|restore-member` command line, as a
//! Kubernetes Job runs it.
//!
//! Its output is made for that: on success `save`, `fetch`, `release` and `restore-member`
//! print exactly one JSON line to stdout for the operator to read (for `save`, the backup's
//! metadata), everything else goes to stderr, and the JSON line or the failure message is
//! also written to the termination log, which Kubernetes shows as the container's
//! termination message. Failures are one line saying what failed and what to check, and
//! exit with 1. A hold that `fetch --hold` could not write is not a failure (the restore
//! matters more than its protection): the JSON line says so.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::holds::{self, Hold};
use super::location::Location;
use super::member::Endpoints;
use super::metadata::{Compression, Metadata};
use super::retention::Retention;
use super::save::SaveOptions;
use crate::error::{Error, Result};

#[derive(Debug, clap::Parser)]
#[command(
    name = "ballast backup",
    about = "Back up a cluster's snapshots to S3 or a directory, list them, fetch one, hold it"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Command,
    /// Where Kubernetes reads the container's termination message; written only if it exists.
    #[arg(
        long = "termination-log",
        global = true,
        default_value = "/dev/termination-log"
    )]
    pub termination_log: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Streams a snapshot from a healthy member to LOCATION, then applies retention.
    Save(SaveArgs),
    /// Lists the backups in LOCATION, newest first.
    List(ListArgs),
    /// Downloads a backup to a snapshot file, decompressed and verified; with --hold,
    /// protects it from retention first.
    Fetch(FetchArgs),
    /// Releases a hold placed by `fetch --hold` (nothing to release is fine).
    Release(ReleaseArgs),
    /// Replaces a stopped member's data dir with a backup, as a member of a new cluster
    /// (the operator's rollback); the old data is kept beside it.
    RestoreMember(RestoreMemberArgs),
}

#[derive(Debug, clap::Args)]
pub struct RestoreMemberArgs {
    /// s3://BUCKET/PREFIX or a directory.
    #[arg(long)]
    pub from: String,
    /// The backup's name, as `list` shows it.
    #[arg(long)]
    pub name: String,
    /// The member's data dir (its member/ is replaced).
    #[arg(long = "data-dir")]
    pub data_dir: PathBuf,
    /// This member's name in --initial-cluster.
    #[arg(long)]
    pub member: String,
    /// The new cluster: name=peer-url,...
    #[arg(long = "initial-cluster")]
    pub initial_cluster: String,
    /// The new cluster's token (a new token gives a new cluster ID).
    #[arg(long = "initial-cluster-token")]
    pub initial_cluster_token: String,
    /// This member's peer URL.
    #[arg(long = "initial-advertise-peer-urls")]
    pub initial_advertise_peer_urls: String,
    /// Moves revisions this far past the backup's and marks older ones compacted.
    #[arg(long = "bump-revision", default_value_t = 0)]
    pub bump_revision: u64,
}

#[derive(Debug, clap::Args)]
pub struct SaveArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// s3://BUCKET/PREFIX or a directory (a path or file:///PATH).
    #[arg(long)]
    pub to: String,
    /// gzip stores `<name>.db.gz`, compressed while streaming; none stores what
    /// `etcdctl snapshot save` writes.
    #[arg(long, value_enum, default_value = "none")]
    pub compress: Compression,
    /// Keep only the newest N scheduled backups (the newest is always kept, and so are
    /// on-demand and held backups).
    #[arg(long = "keep-last")]
    pub keep_last: Option<usize>,
    /// Delete scheduled backups older than this (e.g. 168h, 7d).
    #[arg(long = "max-age", value_parser = humantime::parse_duration)]
    pub max_age: Option<Duration>,
    /// A backup asked for outside the schedule: recorded as `"onDemand": true`; retention
    /// never deletes it nor counts it (retention flags still apply to scheduled ones).
    #[arg(long = "on-demand")]
    pub on_demand: bool,
    /// Limit for connecting, for each answer and for each snapshot chunk.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// s3://BUCKET/PREFIX or a directory.
    #[arg(long)]
    pub from: String,
    /// text (one backup per line) or json (an array of metadata).
    #[arg(short = 'o', long = "output", default_value = "text")]
    pub output: String,
}

#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// s3://BUCKET/PREFIX or a directory.
    #[arg(long)]
    pub from: String,
    /// The backup's name, as `list` shows it.
    #[arg(long)]
    pub name: String,
    /// The snapshot file to write.
    #[arg(long)]
    pub output: PathBuf,
    /// Before fetching, hold the backup for HOLDER (`<name>.holds/<HOLDER>.json`) so that
    /// retention keeps it; again by the same holder renews it. Best effort: a hold that
    /// cannot be written is reported, not a failure.
    #[arg(long, value_name = "HOLDER")]
    pub hold: Option<String>,
    /// How long the hold lasts (e.g. 24h, 7d).
    #[arg(long = "hold-for", value_parser = humantime::parse_duration, default_value = "24h",
          requires = "hold")]
    pub hold_for: Duration,
}

#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// s3://BUCKET/PREFIX or a directory.
    #[arg(long)]
    pub from: String,
    /// The backup's name, as `list` shows it.
    #[arg(long, alias = "name")]
    pub backup: String,
    /// Whose hold (as given to `fetch --hold`).
    #[arg(long)]
    pub holder: String,
}

/// Runs the command; prints its results and failures and returns the exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let what = match &cli.cmd {
        Command::Save(_) => "save",
        Command::List(_) => "list",
        Command::Fetch(_) => "fetch",
        Command::Release(_) => "release",
        Command::RestoreMember(_) => "restore-member",
    };
    match execute(cli.cmd).await {
        Ok(line) => {
            if !line.is_empty() {
                println!("{line}");
            }
            if what != "list" {
                termination_message(&cli.termination_log, &line);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line, even when a store put an XML body in its error.
            let message = format!("ballast backup {what}: {e}").replace(['\n', '\r'], " ");
            eprintln!("{message}");
            termination_message(&cli.termination_log, &message);
            ExitCode::FAILURE
        }
    }
}

async fn execute(cmd: Command) -> Result<String> {
    match cmd {
        Command::Save(args) => {
            let location = Location::parse(&args.to)?;
            let options = SaveOptions {
                endpoints: args.endpoints,
                compression: args.compress,
                retention: Retention {
                    keep_last: args.keep_last,
                    max_age: args.max_age,
                },
                timeout: args.timeout,
                progress: std::io::stderr().is_terminal(),
                on_demand: args.on_demand,
            };
            let saved = super::save(&location, &options).await?;
            for name in &saved.deleted {
                eprintln!("deleted old backup {name} from {location} (retention)");
            }
            for (name, holds) in &saved.held {
                eprintln!("kept old backup {name} in {location}: {}", held_by(holds));
            }
            json(&saved.metadata)
        }
        Command::List(args) => list(args).await,
        Command::RestoreMember(args) => restore_member(args).await,
        Command::Fetch(args) => fetch(args).await,
        Command::Release(args) => {
            let location = Location::parse(&args.from)?;
            let backup = super::fetch::relative_name(&location, &args.backup);
            let released = holds::release(&location, &backup, &args.holder).await?;
            json(&serde_json::json!({
                "backup": backup, "holder": args.holder, "released": released
            }))
        }
    }
}

/// A backup as `list` shows it: its metadata and its live holds.
#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    metadata: Metadata,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    holds: Vec<Hold>,
}

async fn list(args: ListArgs) -> Result<String> {
    if !matches!(args.output.as_str(), "text" | "json") {
        return Err(Error::Backup(format!(
            "unknown output format {:?}: use text or json",
            args.output
        )));
    }
    let location = Location::parse(&args.from)?;
    let listing = super::metadata::scan(&location).await?;
    let now = SystemTime::now();
    let mut backups = Vec::new();
    for metadata in listing.backups {
        let mut holds = Vec::new();
        if listing.hold_folders.contains(&metadata.name) {
            holds = holds::read(&location, &metadata.name).await?;
            holds.retain(|h| h.is_live(now));
        }
        backups.push(Listed { metadata, holds });
    }
    if args.output == "json" {
        return json(&backups);
    }
    Ok(backups.iter().map(text_line).collect::<Vec<_>>().join("\n"))
}

/// `name revision size created [held by ...]`, tab-separated.
fn text_line(b: &Listed) -> String {
    let m = &b.metadata;
    let mut line = format!("{}\t{}\t{}\t{}", m.name, m.revision, m.size, m.created_at);
    if !b.holds.is_empty() {
        line.push('\t');
        line.push_str(&held_by(&b.holds));
    }
    line
}

fn held_by(holds: &[Hold]) -> String {
    let holds: Vec<String> = holds
        .iter()
        .map(|h| format!("{} until {}", h.holder, h.until))
        .collect();
    format!("held by {}", holds.join(", "))
}

/// What `fetch --hold` did about the hold.
#[derive(Serialize)]
struct HoldOutcome {
    #[serde(flatten)]
    hold: Hold,
    written: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn fetch(args: FetchArgs) -> Result<String> {
    let location = Location::parse(&args.from)?;
    let name = super::fetch::relative_name(&location, &args.name);
    let mut outcome = None;
    if let Some(holder) = &args.hold {
        holds::check_holder(holder)?;
        let hold = Hold::new(holder, SystemTime::now(), args.hold_for)?;
        // A backup that is not there gets no hold: the fetch fails as it would without one.
        super::metadata::get(&location, &name).await?;
        let error = holds::place(&location, &name, &hold).await.err();
        if let Some(e) = &error {
            eprintln!("the backup is not held, retention may delete it: {e}");
        }
        outcome = Some(HoldOutcome {
            hold,
            written: error.is_none(),
            error: error.map(|e| e.to_string().replace(['\n', '\r'], " ")),
        });
    }
    let meta: Metadata = super::fetch(&location, &name, &args.output).await?;
    let mut line = serde_json::json!({
        "backup": meta.name,
        "revision": meta.revision,
        "output": args.output.display().to_string(),
    });
    if let Some(outcome) = outcome {
        line["hold"] = serde_json::to_value(outcome)
            .map_err(|e| Error::Backup(format!("cannot encode JSON: {e}")))?;
    }
    json(&line)
}

async fn restore_member(args: RestoreMemberArgs) -> Result<String> {
    let location = Location::parse(&args.from)?;
    let cluster = crate::snapshot::restore::NewCluster {
        name: args.member.clone(),
        initial_cluster: args.initial_cluster,
        token: args.initial_cluster_token,
        advertise_peer_urls: Some(args.initial_advertise_peer_urls),
    };
    let bump = crate::snapshot::restore::RevisionBump {
        amount: args.bump_revision,
        mark_compacted: args.bump_revision > 0,
    };
    let done = super::restore_member(&location, &args.name, &args.data_dir, cluster, bump).await?;
    json(&match done {
        super::Restored::Now { revision } => serde_json::json!({
            "member": args.member, "backup": args.name, "revision": revision, "restored": true
        }),
        super::Restored::Already => serde_json::json!({
            "member": args.member, "backup": args.name, "restored": false,
            "note": "already restored from this backup for this cluster"
        }),
    })
}

fn json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Backup(format!("cannot encode JSON: {e}")))
}

/// Writes the termination message when the file is there (in a Kubernetes container).
pub(crate) fn termination_message(path: &Path, message: &str) {
    let Ok(mut file) = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
    else {
        return;
    };
    let _ = std::io::Write::write_all(&mut file, message.as_bytes());
}
