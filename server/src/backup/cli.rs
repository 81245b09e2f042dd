//! The `ballast backup save|list|fetch` command line, as a Kubernetes CronJob runs it.
//!
//! Its output is made for that: on success `save` prints exactly one JSON line (the backup's
//! metadata) to stdout for the operator to read, everything else goes to stderr, and the
//! JSON line or the failure message is also written to the termination log, which
//! Kubernetes shows as the container's termination message. Failures are one line saying
//! what failed and what to check, and exit with 1.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::location::Location;
use super::member::Endpoints;
use super::metadata::{Compression, Metadata};
use super::retention::Retention;
use super::save::SaveOptions;
use crate::error::{Error, Result};

#[derive(Debug, clap::Parser)]
#[command(
    name = "ballast backup",
    about = "Back up a cluster's snapshots to S3 or a directory, list them, fetch one"
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
    /// Downloads a backup to a snapshot file, decompressed and verified.
    Fetch(FetchArgs),
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
    /// Keep only the newest N backups.
    #[arg(long = "keep-last")]
    pub keep_last: Option<usize>,
    /// Delete backups older than this (e.g. 168h, 7d).
    #[arg(long = "max-age", value_parser = humantime::parse_duration)]
    pub max_age: Option<Duration>,
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
}

/// Runs the command; prints its results and failures and returns the exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let what = match &cli.cmd {
        Command::Save(_) => "save",
        Command::List(_) => "list",
        Command::Fetch(_) => "fetch",
        Command::RestoreMember(_) => "restore-member",
    };
    match execute(cli.cmd).await {
        Ok(line) => {
            if !line.is_empty() {
                println!("{line}");
            }
            if what == "save" || what == "restore-member" {
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
            };
            let saved = super::save(&location, &options).await?;
            for name in &saved.deleted {
                eprintln!("deleted old backup {name} from {location} (retention)");
            }
            json(&saved.metadata)
        }
        Command::List(args) => {
            let location = Location::parse(&args.from)?;
            let backups = super::list(&location).await?;
            match args.output.as_str() {
                "json" => json(&backups),
                "text" => Ok(backups
                    .iter()
                    .map(|b| format!("{}\t{}\t{}\t{}", b.name, b.revision, b.size, b.created_at))
                    .collect::<Vec<_>>()
                    .join("\n")),
                other => Err(Error::Backup(format!(
                    "unknown output format {other:?}: use text or json"
                ))),
            }
        }
        Command::RestoreMember(args) => restore_member(args).await,
        Command::Fetch(args) => {
            let location = Location::parse(&args.from)?;
            let meta: Metadata = super::fetch(&location, &args.name, &args.output).await?;
            Ok(format!(
                "fetched backup {} (revision {}) to {}",
                meta.name,
                meta.revision,
                args.output.display()
            ))
        }
    }
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
