//! The running member: [`EtcdServer`], what the API handlers share, and
//! [`start`], which assembles it over the data [`bootstrap`] opened and runs it.
//! The client requests are in `requests`, replication through Raft in
//! `replicate`, the two threads in `threads`, the background tasks in
//! `background`.
//!
//! [`bootstrap`]: crate::bootstrap

mod applied;
pub mod auth;
pub use applied::FromApplied;
mod background;
mod disk_space;
mod heap_trim;
mod quota;
mod replicate;
mod requests;
mod threads;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ballast_proto::etcdserverpb::ResponseHeader;

use crate::alarm::Alarms;
use crate::apply::{ApplyMsg, Wait};
use crate::bootstrap::{self, Bootstrapped};
use crate::cluster::Members;
use crate::config::Config;
use crate::error::{Error, EtcdError, Result};
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::mvcc::backend::{self as mvcc_backend, meta, META};
use crate::mvcc::KvStore;
use crate::raft::transport::Transport;
use crate::raft::{RaftHandle, RaftNode};
use crate::watch::WatchHub;

/// What the API handlers share.
pub struct EtcdServer {
    pub cfg: Arc<Config>,
    pub member_id: u64,
    pub cluster_id: u64,
    pub store: Arc<KvStore>,
    pub lessor: Arc<Lessor>,
    pub hub: Arc<WatchHub>,
    pub alarms: Arc<Alarms>,
    pub auth: Arc<crate::auth::AuthStore>,
    pub members: Arc<Members>,
    pub raft: RaftHandle,
    pub wait: Arc<Wait>,
    pub metrics: Arc<Metrics>,
    pub applied: tokio::sync::watch::Receiver<u64>,
    apply_tx: crossbeam_channel::Sender<ApplyMsg>,
    next_id: AtomicU64,
    leader_channel: parking_lot::Mutex<Option<(u64, tonic::transport::Channel)>>,
    /// Free space of the data volumes, as writes are admitted against it.
    space: disk_space::SpaceGauge,
    /// The TLS side of the listeners, and the dialer for peers.
    pub tls: Arc<crate::tls::Tls>,
    /// Raft traffic to peers; also says which peers are connected.
    pub transport: Arc<Transport>,
}

/// etcd's request timeout: 5 s plus two election timeouts.
fn request_timeout(cfg: &Config) -> Duration {
    Duration::from_secs(5) + cfg.election_timeout * 2
}

impl EtcdServer {
    /// A fresh ID for a request or a lease: member-specific high bits and a
    /// time-based start keep IDs unique across members and restarts.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn request_timeout(&self) -> Duration {
        request_timeout(&self.cfg)
    }

    pub fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft.term(),
        })
    }

    /// Fills in the identity fields of a header the apply thread started.
    pub fn stamp(&self, h: &mut Option<ResponseHeader>) {
        let rev = h
            .as_ref()
            .map_or_else(|| self.store.current_revision(), |h| h.revision);
        *h = self.header(rev);
    }

    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Rewrites the backend file; runs on the apply thread between batches.
    pub async fn defragment(&self) -> Result<(), String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.apply_tx
            .send(ApplyMsg::Defragment(tx))
            .map_err(|_| "server stopped".to_string())?;
        rx.await.map_err(|_| "server stopped".to_string())?
    }

    /// Learners only serve serializable reads and status, as in etcd.
    pub fn check_not_learner(&self) -> Result<(), EtcdError> {
        match self.members.get(self.member_id) {
            Some(m) if m.is_learner => Err(EtcdError::NotSupportedForLearner),
            _ => Ok(()),
        }
    }

    /// A peer client for the current leader (lease traffic is served there).
    pub async fn leader_client(
        &self,
    ) -> Result<
        ballast_proto::internal::raft_peer_client::RaftPeerClient<tonic::transport::Channel>,
        EtcdError,
    > {
        let leader = self.raft.leader();
        if leader == 0 {
            return Err(EtcdError::NoLeader);
        }
        if let Some((id, ch)) = self.leader_channel.lock().clone() {
            if id == leader {
                return Ok(ballast_proto::internal::raft_peer_client::RaftPeerClient::new(ch));
            }
        }
        let url = self
            .members
            .get(leader)
            .and_then(|m| m.peer_urls.first().cloned())
            .ok_or(EtcdError::NoLeader)?;
        let ch = self
            .tls
            .dialer
            .connect(&url, Duration::from_secs(2))
            .await
            .map_err(|e| {
                tracing::debug!("dialing the leader at {url}: {e}");
                EtcdError::LeaderChanged
            })?;
        *self.leader_channel.lock() = Some((leader, ch.clone()));
        Ok(ballast_proto::internal::raft_peer_client::RaftPeerClient::new(ch))
    }

    pub fn db_path(&self) -> PathBuf {
        self.store.backend().path().to_path_buf()
    }
}

/// Threads and tasks of a running member.
pub struct Running {
    pub server: Arc<EtcdServer>,
    raft_thread: std::thread::JoinHandle<Result<()>>,
    apply_thread: std::thread::JoinHandle<Result<()>>,
    /// Held for the life of the member.
    _lock: std::fs::File,
}

impl Running {
    /// Stops Raft, lets the apply thread drain, and reports a fatal error if
    /// either thread died of one.
    pub fn stop(self) -> Result<()> {
        self.server.raft.stop();
        let r = self
            .raft_thread
            .join()
            .map_err(|_| Error::Other("raft thread panicked".into()))?;
        // Everything the Raft thread handed over is queued ahead of Stop.
        let _ = self.server.apply_tx.send(ApplyMsg::Stop);
        let a = self
            .apply_thread
            .join()
            .map_err(|_| Error::Other("apply thread panicked".into()))?;
        r.and(a)
    }
}

/// Opens or creates the member's data and starts its threads and background
/// tasks. Must run inside a tokio runtime.
pub fn start(
    cfg: Config,
    join: Option<crate::peer::JoinInfo>,
    tls: Arc<crate::tls::Tls>,
) -> Result<Running> {
    let cfg = Arc::new(cfg);
    // A bad --auth-token stops the member before it touches its data.
    let tokens = crate::auth::Tokens::from_option(&cfg.auth_token, cfg.auth_token_ttl)
        .map_err(|e| Error::Other(e.to_string()))?;
    let Bootstrapped {
        member_id,
        cluster_id,
        backend,
        members,
        wal,
        log,
        snap_dir,
        lock,
    } = bootstrap::bootstrap(&cfg, join)?;

    let (store, leased) = KvStore::open(backend.clone())?;
    store.set_compaction_batch_limit(cfg.experimental_compaction_batch_limit);
    let store = Arc::new(store);
    let lessor = Arc::new(Lessor::new(cfg.election_timeout));
    lessor.load(&backend, leased)?;
    let applied_at_start = {
        let txn = backend.read()?;
        let m = txn.open_table(META)?;
        mvcc_backend::get_u64(&m, meta::APPLIED_INDEX)?
    };
    let alarms = Arc::new(Alarms::load(&backend)?);
    let auth = Arc::new(crate::auth::AuthStore::load(
        &backend,
        tokens,
        cfg.bcrypt_cost,
    )?);
    let hub = WatchHub::new(store.clone());
    let metrics = Arc::new(Metrics::default());
    let durable_applied = Arc::new(AtomicU64::new(applied_at_start));
    let (applied_tx, applied_rx) = tokio::sync::watch::channel(applied_at_start);
    let (apply_tx, apply_rx) = crossbeam_channel::unbounded::<ApplyMsg>();

    let transport = Transport::new(
        member_id,
        cluster_id,
        tokio::runtime::Handle::current(),
        metrics.clone(),
        tls.dialer.clone(),
    );
    for m in members.list() {
        transport.set_peer(m.id, m.peer_urls.clone());
    }
    let entries_tx = apply_tx.clone();
    let send_transport = transport.clone();
    let (raft_node, raft) = RaftNode::new(
        threads::node_config(&cfg, member_id, applied_at_start),
        wal,
        log.with_snapshotter(threads::snapshotter(backend, snap_dir.clone())),
        Box::new(move |ents, confs| {
            let _ = entries_tx.send(ApplyMsg::Entries(ents, confs));
        }),
        Box::new(move |msgs| send_transport.send(msgs)),
        threads::installer(apply_tx.clone(), snap_dir),
        durable_applied.clone(),
        threads::role_listener(lessor.clone()),
        metrics.clone(),
    )?;
    transport.set_raft(raft.clone());

    let server = Arc::new(EtcdServer {
        cfg,
        member_id,
        cluster_id,
        store,
        lessor,
        hub,
        alarms,
        auth,
        members,
        raft,
        wait: Arc::new(Wait::default()),
        metrics,
        applied: applied_rx,
        apply_tx,
        next_id: AtomicU64::new(first_request_id(member_id)),
        leader_channel: parking_lot::Mutex::new(None),
        space: Default::default(),
        tls,
        transport,
    });
    let applier = threads::applier(&server, applied_tx, durable_applied, applied_at_start);
    let apply_thread = threads::spawn_apply(applier, apply_rx)?;
    let raft_thread = threads::spawn_raft(raft_node)?;
    background::spawn(&server);
    Ok(Running {
        server,
        raft_thread,
        apply_thread,
        _lock: lock,
    })
}

/// Where this member's request and lease IDs start: member-specific high bits and
/// a time-based start keep them unique across members and restarts.
fn first_request_id(member_id: u64) -> u64 {
    ((member_id & 0xffff) << 48)
        | ((std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            & 0xff_ffff_ffff)
            << 8)
}
