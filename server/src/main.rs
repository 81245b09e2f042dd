//! `ballast`: run an etcd-compatible member (etcd's flags), run it with the membership an
//! operator's sidecar decided (`ballast member`), run that sidecar (`ballast sidecar`),
//! work on snapshot files offline (`ballast snapshot status|restore`), or back a cluster up
//! to S3 or a directory (`ballast backup save|list|fetch`), or defragment a healthy cluster
//! member by member (`ballast defrag`).

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context;
use ballast::config::{self, Config, Outcome};
use ballast::{listen, server, snapshot};
use clap::{Parser, Subcommand};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "snapshot") {
        return snapshot_command(args);
    }
    if args.first().is_some_and(|a| a == "sidecar") {
        return sidecar_command(args);
    }
    if args.first().is_some_and(|a| a == "backup") {
        return backup_command(args);
    }
    if args.first().is_some_and(|a| a == "defrag") {
        return defrag_command(args);
    }
    let args = if args.first().is_some_and(|a| a == "member") {
        match ballast::sidecar::membership::server_args(args.into_iter().skip(1).collect()) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("ballast member: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        args
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    let (cfg, warnings) = match config::parse(args, &env) {
        Ok((Outcome::Run(cfg), warnings)) => (cfg, warnings),
        Ok((Outcome::PrintAndExit(text), _)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1));
        }
    };
    init_logging(&cfg);
    for w in warnings {
        tracing::warn!("{w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(*cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("ballast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cfg.log_level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // etcd's default zap logger: one JSON object per line.
    builder.event_format(ballast::logging::ZapJson).init();
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    tracing::info!(
        name = %cfg.name,
        data_dir = %cfg.data_dir.display(),
        ballast_version = env!("CARGO_PKG_VERSION"),
        etcd_version = %cfg.emulated_etcd_version,
        "starting an etcd member"
    );
    // Before anything else: unusable certificates must stop the member at once.
    let tls = std::sync::Arc::new(ballast::tls::Tls::from_config(&cfg).context("setting up TLS")?);
    let join = if cfg.initial_cluster_state == config::ClusterState::Existing
        && !ballast::raft::wal::Wal::exists(cfg.wal_path())
    {
        Some(
            ballast::peer::discover(&cfg, &tls.dialer)
                .await
                .context("joining the existing cluster")?,
        )
    } else {
        if cfg.initial_cluster_state == config::ClusterState::New
            && !ballast::raft::wal::Wal::exists(cfg.wal_path())
        {
            if let Some(id) = ballast::peer::already_bootstrapped(&cfg, &tls.dialer).await {
                anyhow::bail!(
                    "member {id:x} has already been bootstrapped; its data dir was lost: remove \
                     it (etcdctl member remove), add it again (etcdctl member add) and start it \
                     with --initial-cluster-state existing"
                );
            }
        }
        None
    };
    let running = server::start(cfg, join, tls).context("starting the member")?;
    let s = running.server.clone();
    let serve = listen::serve_clients(s.clone(), publish(s.clone()));
    let peers = ballast::peer::serve_peers(s.clone());
    // A leader hands over while clients and peers are still served: the transferee's
    // vote requests and the new leader's first messages arrive through the peer listener.
    let shutdown = async {
        ballast::signals::shutdown().await;
        tracing::info!("received signal; shutting down");
        ballast::leadership::hand_over_on_shutdown(&s).await;
    };
    let result = tokio::select! {
        r = serve => r.context("serving clients"),
        r = peers => r.context("serving peers"),
        _ = shutdown => Ok(()),
    };
    drop(s);
    tokio::task::spawn_blocking(move || running.stop())
        .await
        .context("stopping")??;
    result
}

/// Commits this member's name and client URLs through Raft, retrying until a leader takes
/// them, then logs the lines etcd prints once a member can serve (scripts and operators wait
/// for them).
async fn publish(s: std::sync::Arc<server::EtcdServer>) {
    use ballast_proto::internal::internal_request::Request;
    let me = ballast_proto::etcdserverpb::Member {
        id: s.member_id,
        name: s.cfg.name.clone(),
        client_ur_ls: s
            .cfg
            .advertise_client_urls
            .iter()
            .map(ballast::raft::ids::url_string)
            .collect(),
        ..Default::default()
    };
    while let Err(e) = s.propose(Request::MemberAttributes(me.clone())).await {
        tracing::debug!("publishing member attributes: {e}; retrying");
        tokio::time::sleep(s.cfg.heartbeat_interval * 5).await;
    }
    tracing::info!(
        local_member_id = format!("{:x}", s.member_id),
        local_member_attributes = format!("{{Name:{} ClientURLs:{:?}}}", me.name, me.client_ur_ls),
        cluster_id = format!("{:x}", s.cluster_id),
        "published local member to cluster through raft"
    );
    tracing::info!(
        cluster_version = "3.5",
        "enabled capabilities for version 3.5"
    );
    notify_init_daemon();
}

/// Tells systemd the member is ready (`Type=notify` units, as in etcd's own unit files);
/// a no-op outside systemd.
fn notify_init_daemon() {
    tracing::info!("notifying init daemon");
    match sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        Ok(()) => tracing::info!("successfully notified init daemon"),
        Err(e) => tracing::error!(error = %e, "failed to notify systemd for readiness"),
    }
}

#[derive(Parser)]
#[command(
    name = "ballast snapshot",
    about = "Inspect and restore etcd snapshot files, from Ballast or etcd (etcdctl's snapshot commands)"
)]
struct SnapshotCli {
    #[command(subcommand)]
    cmd: SnapshotCmd,
}

#[derive(Subcommand)]
enum SnapshotCmd {
    /// Shows the hash, revision, key count and size of a snapshot file.
    Status {
        file: std::path::PathBuf,
        /// simple, table or json, as etcdctl.
        #[arg(short = 'w', long = "write-out", default_value = "simple")]
        write_out: String,
    },
    /// Restores a snapshot into a new data dir for a new member.
    Restore {
        file: std::path::PathBuf,
        #[arg(long = "data-dir")]
        data_dir: Option<std::path::PathBuf>,
        #[arg(long = "wal-dir")]
        wal_dir: Option<std::path::PathBuf>,
        #[arg(long, default_value = "default")]
        name: String,
        /// The new cluster (name=peer-url,...). When given, the restored member belongs to it
        /// (IDs from these flags, as etcdutl); otherwise it takes its cluster from its flags at start.
        #[arg(long = "initial-cluster")]
        initial_cluster: Option<String>,
        #[arg(long = "initial-cluster-token")]
        initial_cluster_token: Option<String>,
        #[arg(long = "initial-advertise-peer-urls")]
        initial_advertise_peer_urls: Option<String>,
        #[arg(long = "skip-hash-check")]
        skip_hash_check: bool,
        /// How much to increase the latest revision after restore (as etcdutl 3.6).
        #[arg(long = "bump-revision", default_value_t = 0)]
        bump_revision: u64,
        /// Mark the latest revision after restore as compacted (required if --bump-revision > 0, disallowed otherwise).
        #[arg(long = "mark-compacted")]
        mark_compacted: bool,
    },
}

/// Parses a subcommand's arguments; on failure (or `--help`) the exit code to stop with.
fn parse_subcommand<T: Parser>(mut args: Vec<OsString>) -> Result<T, ExitCode> {
    // Usage lines then read `ballast snapshot ...`, not `snapshot ...`.
    if let Some(sub) = args.first_mut() {
        *sub = format!("ballast {}", sub.to_string_lossy()).into();
    }
    T::try_parse_from(args).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        }
    })
}

fn sidecar_command(args: Vec<OsString>) -> ExitCode {
    let args: ballast::sidecar::Args = match parse_subcommand(args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .event_format(ballast::logging::ZapJson)
        .init();
    let runtime = match single_threaded_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(ballast::sidecar::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ballast sidecar: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A current-thread runtime, or the exit code after saying why there is none.
fn single_threaded_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

fn backup_command(args: Vec<OsString>) -> ExitCode {
    run_tool(args, ballast::backup::cli::run)
}

fn defrag_command(args: Vec<OsString>) -> ExitCode {
    run_tool(args, ballast::maintenance::cli::run)
}

/// Runs a tool a person or a CronJob calls (`backup`, `defrag`): its result on stdout, plain
/// log lines on stderr, on a single-threaded runtime (one request at a time).
fn run_tool<C, F>(args: Vec<OsString>, run: impl FnOnce(C) -> F) -> ExitCode
where
    C: clap::Parser,
    F: std::future::Future<Output = ExitCode>,
{
    let cli: C = match parse_subcommand(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match single_threaded_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(run(cli))
}

fn snapshot_command(args: Vec<OsString>) -> ExitCode {
    let cli: SnapshotCli = match parse_subcommand(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let SnapshotCmd::Restore {
        bump_revision,
        mark_compacted,
        ..
    } = &cli.cmd
    {
        let bump = snapshot::restore::RevisionBump {
            amount: *bump_revision,
            mark_compacted: *mark_compacted,
        };
        if let Err(e) = bump.check() {
            // etcdutl refuses these flags before touching anything, with its "bad arguments" code.
            eprintln!("Error: {e}");
            return ExitCode::from(128);
        }
    }
    match run_snapshot(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_snapshot(cmd: SnapshotCmd) -> anyhow::Result<()> {
    match cmd {
        SnapshotCmd::Status { file, write_out } => {
            let st = snapshot::status::status(&file)?;
            let size = human_bytes(st.total_size);
            match write_out.as_str() {
                "json" => println!("{}", serde_json::to_string(&st)?),
                "table" => {
                    let cells = [
                        format!("{:x}", st.hash),
                        st.revision.to_string(),
                        st.total_key.to_string(),
                        size,
                    ];
                    print!(
                        "{}",
                        table(&["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], &cells)
                    );
                }
                "simple" => println!("{:x}, {}, {}, {}", st.hash, st.revision, st.total_key, size),
                other => anyhow::bail!("unknown --write-out {other:?}: use simple, table or json"),
            }
        }
        SnapshotCmd::Restore {
            file,
            data_dir,
            wal_dir,
            name,
            skip_hash_check,
            bump_revision,
            mark_compacted,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
        } => {
            // With --initial-cluster, the restored member carries its new cluster's identity
            // (as etcdutl writes it); without, it takes its cluster from its flags at start.
            let cluster = initial_cluster.map(|ic| snapshot::restore::NewCluster {
                name: name.clone(),
                initial_cluster: ic,
                token: initial_cluster_token.unwrap_or_else(|| "etcd-cluster".to_string()),
                advertise_peer_urls: initial_advertise_peer_urls,
            });
            let bump = snapshot::restore::RevisionBump {
                amount: bump_revision,
                mark_compacted,
            };
            let data_dir = data_dir.unwrap_or_else(|| format!("{name}.etcd").into());
            snapshot::restore::restore(
                &file,
                &data_dir,
                wal_dir.as_deref(),
                skip_hash_check,
                bump,
                cluster.as_ref(),
            )?;
            println!(
                "restored snapshot {} into {}",
                file.display(),
                data_dir.display()
            );
        }
    }
    Ok(())
}

/// Sizes as etcdctl prints them (go-humanize's SI `Bytes`: "25 kB", "2.1 MB"):
/// rounded to one decimal first, then shown with one decimal below 10.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let v = (n as f64 / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if v < 10.0 {
        format!("{:.1} {}", v, UNITS[e])
    } else {
        format!("{:.0} {}", v, UNITS[e])
    }
}

/// A one-row table in etcdctl's style (olekukonko/tablewriter): headers
/// centred, cells right-aligned, one space of padding.
fn table(headers: &[&str], cells: &[String]) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .zip(cells)
        .map(|(h, c)| h.len().max(c.len()))
        .collect();
    let line = widths
        .iter()
        .map(|w| "-".repeat(w + 2))
        .collect::<Vec<_>>()
        .join("+");
    let heads = headers
        .iter()
        .zip(&widths)
        .map(|(h, w)| format!(" {h:^w$} "))
        .collect::<Vec<_>>()
        .join("|");
    let body = cells
        .iter()
        .zip(&widths)
        .map(|(c, w)| format!(" {c:>w$} "))
        .collect::<Vec<_>>()
        .join("|");
    format!("+{line}+\n|{heads}|\n+{line}+\n|{body}|\n+{line}+\n")
}
