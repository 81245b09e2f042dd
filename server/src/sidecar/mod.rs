//! `ballast sidecar`: the container that runs beside the server in an operator-managed
//! pod. It starts first (a native sidecar), prepares the member (checks its identity and
//! certificates, writes its configuration), opens its startup gate (`/readyz`), then
//! keeps watching the local member over mutual TLS and serves what it sees (`/status`).
//!
//! How a member with no data may start (bootstrap, join, or not at all) is decided at run
//! time from what its peers say ([`bootstrap`]); the server reads the result through
//! `ballast member --membership-file` ([`membership`]).

mod args;
mod bootstrap;
mod health;
pub mod identity;
mod member_config;
pub mod membership;
mod observe;
mod recovery;
mod restore;

use std::sync::Arc;

pub use args::Args;
pub use member_config::MemberConfig;
pub use observe::Observed;

use crate::error::Error;

/// How often the local member is asked for its status.
const OBSERVE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a peer has to answer whether a cluster already runs.
const ASK_PEERS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// How often a refused member asks its peers again.
const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(3);
/// How long a member whose restore failed waits before fetching the backup again.
const RESTORE_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Waits until the member's own name under the headless Service resolves (to the pod's
/// address, when known). Members check a peer's certificate against the address it
/// connects from by resolving the names in it, as etcd does; until cluster DNS publishes a
/// new pod (or forgets the pod it replaces), its peers refuse it, and a joining server
/// would exit after failing to fetch the membership.
async fn wait_for_own_name(args: &Args) {
    let name = format!(
        "{}.{}.{}.svc.{}:2380",
        args.member, args.peer_service, args.namespace, args.cluster_domain
    );
    let mut logged = false;
    loop {
        let published = match tokio::net::lookup_host(&name).await {
            Ok(addrs) => {
                let addrs: Vec<std::net::IpAddr> = addrs.map(|a| a.ip()).collect();
                match args.pod_ip {
                    Some(ip) => addrs.contains(&ip),
                    None => !addrs.is_empty(),
                }
            }
            Err(_) => false,
        };
        if published {
            return;
        }
        if !logged {
            tracing::info!(%name, pod_ip = ?args.pod_ip, "waiting for cluster DNS to publish this member's name");
            logged = true;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Waits until the operator has installed certificates for the member's key that are
/// good now: on first start, and after the member was down past their expiry.
async fn wait_for_certificates(identity: &identity::Identity, state: &health::State) {
    let mut logged = false;
    while !identity.complete(unix_now()) {
        if !logged {
            tracing::info!(
                "waiting for the operator to sign this member's certificates (GET/PUT /identity)"
            );
            logged = true;
        }
        state.preparing("waiting for the operator to sign this member's certificates".to_string());
        identity.wait_for_install(RECHECK_EVERY).await;
    }
}

/// Prepares the member, opens the gate and watches the member until SIGTERM or SIGINT,
/// at any stage: a pod deleted while its sidecar still waits for DNS, its peers or its
/// certificates goes away at once.
pub async fn run(args: Args) -> Result<(), Error> {
    tokio::select! {
        res = prepare_and_watch(args) => res,
        () = crate::signals::shutdown() => {
            tracing::info!("received signal; stopping the sidecar");
            Ok(())
        }
    }
}

async fn prepare_and_watch(args: Args) -> Result<(), Error> {
    member_config::check_certificates(&args)?;
    let identity = match &args.identity_dir {
        Some(dir) => Some(Arc::new(identity::Identity::load_or_create(
            dir,
            &args.cacert,
            identity::Expected {
                member: args.member.clone(),
                member_dns: format!(
                    "{}.{}.{}.svc.{}",
                    args.member, args.peer_service, args.namespace, args.cluster_domain
                ),
                peer_service_dns: format!(
                    "{}.{}.svc.{}",
                    args.peer_service, args.namespace, args.cluster_domain
                ),
            },
        )?)),
        None => None,
    };
    let state = Arc::new(health::State::new(&args, identity.clone()));
    let listener = tokio::net::TcpListener::bind(&args.listen_health)
        .await
        .map_err(|e| Error::io(format!("--listen-health {}", args.listen_health), e))?;
    tracing::info!(address = %args.listen_health, "sidecar serving /readyz, /healthz and /status");
    let server = tokio::spawn(health::serve(listener, state.clone()));

    if let Some(identity) = &identity {
        wait_for_certificates(identity, &state).await;
    }
    let dialer = observe::dialer(&args)?;
    let founding = member_config::founding(&args);
    let peer_url = args.advertise_peer_url();
    let mut last_refusal: Option<String> = None;
    let (decision, config) = loop {
        let has_data = member_config::has_data(&args);
        let peers = if has_data {
            bootstrap::Peers::Silent
        } else {
            bootstrap::ask_peers(&dialer, &args, ASK_PEERS_TIMEOUT).await
        };
        let formed = args
            .state_dir
            .as_deref()
            .is_some_and(recovery::cluster_formed);
        let recovery = args
            .state_dir
            .as_deref()
            .filter(|_| has_data)
            .and_then(|dir| {
                let consumed = std::fs::read_to_string(recovery::consumed_path(&args.data_dir))
                    .unwrap_or_default();
                recovery::pending(dir, &args.member, unix_now(), &consumed)
            });
        let recovery = match recovery {
            Some(request) => {
                match bootstrap::peer_with_leader(&dialer, &args, ASK_PEERS_TIMEOUT).await {
                    Some(peer) => {
                        tracing::warn!(request = %request.id, %peer, "not recovering: a peer reports a leader, the quorum is back");
                        None
                    }
                    None => Some(request),
                }
            }
            None => None,
        };
        if let Some(request) = &recovery {
            recovery::mark_consumed(&args.data_dir, request)?;
            tracing::warn!(member = %args.member, request = %request.id, "recovering from a lost quorum: this member restarts with --force-new-cluster");
            let decision = bootstrap::Decision::ForceNewCluster;
            if let Some(config) = member_config::member_config(&args, &decision) {
                break (decision, config);
            }
        }
        let mut decision =
            bootstrap::decide(has_data, &args.member, &peer_url, founding, formed, &peers);
        if let (bootstrap::Decision::Bootstrap, Some((from, backup))) =
            (&decision, restore::requested(&args))
        {
            member_config::set_aside_leftovers(&args)?;
            state.preparing(format!("restoring backup {backup} from {from}"));
            decision = match restore::run(&args, &from, &backup).await {
                Ok(()) => bootstrap::Decision::Restart,
                Err(e) => bootstrap::Decision::Refuse {
                    refusal: bootstrap::Refusal::RestoreFailed,
                    why: format!("cannot restore backup {backup} from {from}: {e}"),
                },
            };
        }
        match member_config::member_config(&args, &decision) {
            Some(config) => break (decision, config),
            None => {
                if let bootstrap::Decision::Refuse { refusal, why } = decision {
                    // Logged when it changes, not at every recheck.
                    if last_refusal.as_ref() != Some(&why) {
                        tracing::error!(member = %args.member, ?refusal, "not starting the member: {why}");
                        last_refusal = Some(why.clone());
                    }
                    state.refuse(refusal, why);
                    if refusal == bootstrap::Refusal::RestoreFailed {
                        // Each try downloads the whole backup.
                        tokio::time::sleep(RESTORE_RETRY).await;
                    }
                }
                tokio::time::sleep(RECHECK_EVERY).await;
            }
        }
    };
    if decision != bootstrap::Decision::Restart {
        member_config::set_aside_leftovers(&args)?;
    }
    wait_for_own_name(&args).await;
    member_config::write(&args, &config)?;
    let how = match decision {
        bootstrap::Decision::Bootstrap => "bootstrap",
        bootstrap::Decision::Join { .. } => "join",
        bootstrap::Decision::ForceNewCluster => "force-new-cluster",
        _ => "restart",
    };
    if config.force_new_cluster {
        // Once the member answers, a later start of the server (same pod) is a plain restart.
        let (args, dialer, mut config) = (args.clone(), dialer.clone(), config.clone());
        tokio::spawn(async move {
            while observe::ask(&dialer, &args.endpoint, OBSERVE_EVERY)
                .await
                .is_err()
            {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            config.force_new_cluster = false;
            match member_config::write(&args, &config) {
                Ok(()) => {
                    tracing::info!("recovered member answers; later starts are plain restarts")
                }
                Err(e) => tracing::error!("rewriting the member configuration: {e}"),
            }
        });
    }
    tracing::info!(
        member = %config.name,
        path = %args.config_out.display(),
        state = %config.initial_cluster_state,
        initial_cluster = %config.initial_cluster,
        decision = how,
        "wrote the member configuration"
    );
    state.mark_ready(how);

    let watcher = tokio::spawn(observe::watch(
        dialer,
        args.endpoint.clone(),
        state.clone(),
        OBSERVE_EVERY,
    ));
    tokio::select! {
        res = server => match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(Error::Other(format!("health server: {e}"))),
        },
        _ = watcher => Err(Error::Other("member watcher stopped".into())),
    }
}
