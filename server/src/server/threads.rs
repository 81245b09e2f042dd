//! The Raft and apply threads: how each is configured, the callbacks that connect
//! them to the rest of the member, and their start.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::{background, EtcdServer};
use crate::apply::{Applier, ApplyMsg, MemberChange};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::lease::Lessor;
use crate::mvcc::backend::Backend;
use crate::raft::node::{InstallFn, NodeConfig, RoleListener};
use crate::raft::storage::Snapshotter;
use crate::raft::transport::Transport;
use crate::raft::RaftNode;

/// Raft's timing and log limits from the member's flags.
pub(super) fn node_config(cfg: &Config, member_id: u64, applied: u64) -> NodeConfig {
    let tick = cfg.heartbeat_interval.max(Duration::from_millis(1));
    let election_ticks =
        (cfg.election_timeout.as_millis() / tick.as_millis().max(1)).max(2) as usize;
    NodeConfig {
        id: member_id,
        tick,
        election_ticks,
        heartbeat_ticks: 1,
        pre_vote: cfg.pre_vote,
        snapshot_count: cfg.snapshot_count,
        catch_up_entries: snapshot_catch_up_entries(),
        applied,
    }
}

/// etcd's SnapshotCatchUpEntries. Tests lower it (undocumented
/// BALLAST_SNAPSHOT_CATCHUP_ENTRIES) to make a short log force a snapshot.
fn snapshot_catch_up_entries() -> u64 {
    const DEFAULT: u64 = 5000;
    std::env::var("BALLAST_SNAPSHOT_CATCHUP_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT)
}

/// Only the leader expires leases.
pub(super) fn role_listener(lessor: Arc<Lessor>) -> RoleListener {
    Box::new(move |leader: bool| {
        if leader {
            lessor.promote();
        } else {
            lessor.demote();
        }
    })
}

/// A follower too far behind gets a copy of the whole database.
pub(super) fn snapshotter(backend: Arc<Backend>, snap_dir: PathBuf) -> Snapshotter {
    Arc::new(move || {
        let tmp = tempfile::NamedTempFile::new_in(&snap_dir).map_err(|e| e.to_string())?;
        let (index, conf) = backend
            .snapshot_copy(tmp.path())
            .map_err(|e| e.to_string())?;
        let data = std::fs::read(tmp.path()).map_err(|e| e.to_string())?;
        Ok((data, index, conf.unwrap_or_default()))
    })
}

/// A snapshot from the leader is written next to the database, then
/// installed by the apply thread, which answers once it is durable.
pub(super) fn installer(apply_tx: Sender<ApplyMsg>, snap_dir: PathBuf) -> InstallFn {
    Box::new(move |snap| {
        let index = snap.metadata.as_ref().map_or(0, |m| m.index);
        let file = snap_dir.join("db.incoming");
        std::fs::write(&file, &snap.data).map_err(|e| Error::io("write incoming snapshot", e))?;
        std::fs::File::open(&file)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("sync incoming snapshot", e))?;
        let (done, rx) = crossbeam_channel::bounded(1);
        apply_tx
            .send(ApplyMsg::InstallSnapshot { file, index, done })
            .map_err(|_| Error::Other("apply thread stopped".into()))?;
        rx.recv()
            .map_err(|_| Error::Other("apply thread stopped".into()))?
            .map_err(|e| Error::Other(format!("installing snapshot: {e}")))
    })
}

/// The state machine over the server's stores. `applied` is published after each
/// batch; `durable_applied` is shared with Raft, which cuts its log behind it.
pub(super) fn applier(
    server: &Arc<EtcdServer>,
    applied: tokio::sync::watch::Sender<u64>,
    durable_applied: Arc<AtomicU64>,
    start_index: u64,
) -> Applier {
    let quota_server = Arc::downgrade(server);
    Applier {
        on_member_change: on_member_change(
            server.transport.clone(),
            server.member_id,
            server.cfg.heartbeat_interval * 10,
        ),
        store: server.store.clone(),
        lessor: server.lessor.clone(),
        hub: server.hub.clone(),
        alarms: server.alarms.clone(),
        auth: server.auth.clone(),
        members: server.members.clone(),
        wait: server.wait.clone(),
        metrics: server.metrics.clone(),
        member_id: server.member_id,
        applied,
        durable_applied,
        start_index,
        quota_bytes: server.cfg.effective_quota_bytes(),
        on_quota_exceeded: Box::new(move || {
            if let Some(s) = quota_server.upgrade() {
                background::raise_nospace_alarm(s);
            }
        }),
    }
}

/// Keeps the transport's peers in step with the membership; a member that sees
/// its own removal stops, after `removal_grace`.
fn on_member_change(
    transport: Arc<Transport>,
    member_id: u64,
    removal_grace: Duration,
) -> Box<dyn Fn(MemberChange<'_>) + Send> {
    Box::new(move |change| match change {
        MemberChange::Added(m) => transport.set_peer(m.id, m.peer_urls.clone()),
        MemberChange::Removed(id) => {
            transport.remove_peer(id);
            if id == member_id {
                tracing::warn!("the member has been permanently removed from the cluster");
                tracing::warn!("the data-dir used by this member must be removed");
                // Stay a moment so the others learn the removal is committed
                // before this member (maybe their leader) goes away.
                std::thread::spawn(move || {
                    std::thread::sleep(removal_grace);
                    std::process::exit(0);
                });
            }
        }
    })
}

/// Runs the apply loop on its own thread, inside the current tokio runtime.
pub(super) fn spawn_apply(
    applier: Applier,
    apply_rx: Receiver<ApplyMsg>,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    let rt = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("apply".into())
        .spawn(move || {
            let _guard = rt.enter();
            let res = applier.run(apply_rx);
            if let Err(e) = &res {
                // Continuing without it would hang every request; etcd stops too.
                match super::disk_space::out_of_space_advice(e) {
                    Some(advice) => {
                        tracing::error!("apply thread stopped: {e}: {advice}; stopping the member")
                    }
                    None => tracing::error!("apply thread stopped: {e}; stopping the member"),
                }
                std::process::exit(1);
            }
            res
        })
        .map_err(|e| Error::io("spawn apply thread", e))
}

/// Runs the Raft node on its own thread.
pub(super) fn spawn_raft(raft_node: RaftNode) -> Result<std::thread::JoinHandle<Result<()>>> {
    std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            let res = raft_node.run();
            if let Err(e) = &res {
                // Continuing without it would hang every request; etcd stops too.
                match super::disk_space::out_of_space_advice(e) {
                    Some(advice) => {
                        tracing::error!("raft thread stopped: {e}: {advice}; stopping the member")
                    }
                    None => tracing::error!("raft thread stopped: {e}; stopping the member"),
                }
                std::process::exit(1);
            }
            res
        })
        .map_err(|e| Error::io("spawn raft thread", e))
}
