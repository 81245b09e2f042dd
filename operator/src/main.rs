//! `ballast-operator`: runs the controller, or prints the CRD.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context as _;
use ballast_operator::controller::{self, Context};
use ballast_operator::crd::{self, EtcdCluster};
use ballast_operator::leader::LeaseLock;
use ballast_operator::members::EtcdMembers;
use ballast_operator::metrics::{self, Metrics};
use ballast_operator::render::RenderContext;
use clap::{Parser, Subcommand};
use kube::api::{Api, ListParams};
use kube::runtime::events::Reporter;

#[derive(Parser)]
#[command(
    name = "ballast-operator",
    version,
    about = "Kubernetes operator for Ballast etcd clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (the default).
    Run(RunArgs),
    /// Print the EtcdCluster CustomResourceDefinition as YAML.
    Crd,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "BALLAST_OPERATOR_HTTP", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Image repository of the server; `spec.version` is its tag.
    #[arg(long, env = "BALLAST_IMAGE_REPOSITORY", default_value = "ballast")]
    image_repository: String,
    /// Version run when `spec.version` is unset.
    #[arg(long, env = "BALLAST_DEFAULT_VERSION", default_value = env!("CARGO_PKG_VERSION"))]
    default_version: String,
    /// Namespace of the leader-election Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "ballast-system")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "BALLAST_LEASE_NAME", default_value = "ballast-operator")]
    lease_name: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Namespaces whose EtcdClusters this operator runs (comma-separated); all when unset.
    #[arg(long, env = "BALLAST_WATCH_NAMESPACES", value_delimiter = ',')]
    watch_namespaces: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crd) => {
            // One YAML stream, as `kubectl apply -f -` takes it.
            let files = crd::crd_files()?;
            let docs: Vec<&str> = files.iter().map(|(_, text)| text.as_str()).collect();
            print!("{}", docs.join("---\n"));
            Ok(())
        }
        Some(Command::Run(args)) => runtime()?.block_on(run(args)),
        None => runtime()?.block_on(run(cli.run)),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding {}", args.http_addr))?;
    let router = metrics::router(metrics.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "http server stopped");
        }
    });

    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let namespaces: Vec<String> = args
        .watch_namespaces
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    let probe = match namespaces.first() {
        Some(ns) => Api::<EtcdCluster>::namespaced(client.clone(), ns),
        None => Api::<EtcdCluster>::all(client.clone()),
    };
    probe
        .list(&ListParams::default().limit(1))
        .await
        .context("listing EtcdClusters (is the CRD installed? kubectl apply -f crds/; are the operator's RBAC rules in place for the watched namespaces?)")?;
    tracing::info!(namespaces = ?namespaces, "watching EtcdClusters (all namespaces when empty)");
    metrics.ready.store(true, Ordering::Relaxed);

    let identity = match args.identity {
        Some(id) => id,
        None => format!("ballast-operator-{}", std::process::id()),
    };
    let lock = LeaseLock::new(
        client.clone(),
        &args.lease_namespace,
        &args.lease_name,
        &identity,
    );
    tracing::info!(%identity, lease = %args.lease_name, "waiting for leadership");
    lock.acquire().await;
    metrics.leader.set(1);
    tracing::info!(%identity, "leading");

    let ctx = Arc::new(Context::new(
        client,
        Arc::new(EtcdMembers::default()),
        RenderContext {
            image_repository: args.image_repository,
            default_version: args.default_version,
        },
        metrics.clone(),
        Reporter {
            controller: "ballast-operator".to_string(),
            instance: Some(identity),
        },
    ));
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = lock.clone();
    tokio::spawn(async move {
        holder.hold().await;
        let _ = lost_tx.send(());
    });
    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lost_flag = lost.clone();
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate() => {}
            _ = lost_rx => { lost_flag.store(true, Ordering::Relaxed); }
        }
    };
    controller::run(ctx, &namespaces, shutdown).await;
    metrics.leader.set(0);
    if lost.load(Ordering::Relaxed) {
        anyhow::bail!("lost the leader lease; exiting so a fresh replica can campaign");
    }
    Ok(())
}

async fn terminate() {
    #[cfg(unix)]
    {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}
