//! Wires the member together: data dir, WAL, backend, Raft and apply
//! threads, background tasks. `EtcdServer` is what the API handlers use.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ballast_proto::etcdserverpb::ResponseHeader;
use ballast_proto::internal::{internal_request::Request, InternalRequest};
use prost::Message;

use crate::alarm::Alarms;
use crate::apply::{Applied, Applier, ApplyMsg, Wait};
use crate::cluster::{Member, Members};
use crate::config::{ClusterState, Config};
use crate::error::{Error, EtcdError, Result};
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::mvcc::backend::{self, meta, Backend, META};
use crate::mvcc::KvStore;
use crate::raft::node::{self, NodeConfig};
use crate::raft::wal::Wal;
use crate::raft::{ids, RaftHandle, RaftNode};
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
    pub members: Arc<Members>,
    pub raft: RaftHandle,
    pub wait: Arc<Wait>,
    pub metrics: Arc<Metrics>,
    pub applied: tokio::sync::watch::Receiver<u64>,
    apply_tx: crossbeam_channel::Sender<ApplyMsg>,
    next_id: AtomicU64,
    leader_channel: parking_lot::Mutex<Option<(u64, tonic::transport::Channel)>>,
    /// The TLS side of the listeners, and the dialer for peers.
    pub tls: Arc<crate::tls::Tls>,
    /// Raft traffic to peers; also says which peers are connected.
    pub transport: Arc<crate::raft::transport::Transport>,
}

/// How long to wait for a ReadIndex answer before asking again.
const READ_INDEX_RETRY: Duration = Duration::from_millis(500);

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

    /// Replicates a request through Raft and waits until it is applied.
    pub async fn propose(&self, request: Request) -> Result<Applied, EtcdError> {
        let id = self.next_id();
        let data = InternalRequest {
            id,
            request: Some(request),
        }
        .encode_to_vec();
        if data.len() > self.cfg.max_request_bytes as usize {
            return Err(EtcdError::RequestTooLarge);
        }
        let rx = self.wait.register(id);
        self.metrics.proposals_pending.inc();
        let start = std::time::Instant::now();
        let result = async {
            self.raft.propose(data).await?;
            match tokio::time::timeout(request_timeout(&self.cfg), rx).await {
                Ok(Ok(res)) => res,
                Ok(Err(_)) => Err(EtcdError::Stopped),
                Err(_) => Err(self.timeout_error(start)),
            }
        }
        .await;
        self.metrics.proposals_pending.dec();
        if result.is_err() {
            self.wait.cancel(id);
            self.metrics.proposals_failed.inc();
        }
        result
    }

    /// Replicates a membership change and waits until it is applied;
    /// returns the members after it.
    pub async fn propose_conf_change(
        &self,
        kind: raft::prelude::ConfChangeType,
        member: Member,
        promote: bool,
    ) -> Result<Vec<Member>, EtcdError> {
        let id = self.next_id();
        let node_id = member.id;
        let ctx = crate::cluster::ConfChangeContext {
            request_id: id,
            member,
            promote,
        };
        let context = serde_json::to_vec(&ctx).map_err(|_| EtcdError::Corrupt)?;
        let cc = raft::prelude::ConfChange {
            change_type: kind as i32,
            node_id,
            context,
            ..Default::default()
        };
        let rx = self.wait.register(id);
        let start = std::time::Instant::now();
        let result = async {
            self.raft.propose_conf_change(cc).await?;
            match tokio::time::timeout(request_timeout(&self.cfg), rx).await {
                Ok(Ok(Ok(Applied::Members(m)))) => Ok(m),
                Ok(Ok(Ok(_))) => Err(EtcdError::Corrupt),
                Ok(Ok(Err(e))) => Err(e),
                Ok(Err(_)) => Err(EtcdError::Stopped),
                Err(_) => Err(self.timeout_error(start)),
            }
        }
        .await;
        if result.is_err() {
            self.wait.cancel(id);
        }
        result
    }

    /// The error for a proposal started at `start` that was never applied. As etcd: if a
    /// new leader was elected while it waited, and the old one was lost no more than two
    /// election timeouts before the request began, the old leader's failure is the likely
    /// cause (a proposal forwarded to a dead leader is lost), and the client is told so.
    fn timeout_error(&self, start: std::time::Instant) -> EtcdError {
        let elected = *self.raft.status.leader_since.lock();
        let leader_lost_before = |elected: std::time::Instant| {
            elected
                .checked_sub(self.cfg.election_timeout * 2)
                .is_none_or(|lost| start > lost)
        };
        match elected {
            Some(at) if start < at && leader_lost_before(at) => EtcdError::TimeoutDueToLeaderFail,
            _ => EtcdError::Timeout,
        }
    }

    /// Waits until this member has applied everything committed before the
    /// call: after it, a local read is linearizable.
    pub async fn linearize(&self) -> Result<(), EtcdError> {
        // A new leader ignores read requests until it has committed in its
        // term, and a request can be lost with a message; ask again, as etcd does.
        let deadline = tokio::time::Instant::now() + request_timeout(&self.cfg);
        let index = loop {
            match tokio::time::timeout(READ_INDEX_RETRY, self.raft.read_index()).await {
                Ok(res) => break res?,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!("waiting for ReadIndex response took too long, retrying");
                }
                Err(_) => return Err(EtcdError::Timeout),
            }
        };
        self.wait_applied(index).await
    }

    pub async fn wait_applied(&self, index: u64) -> Result<(), EtcdError> {
        let mut rx = self.applied.clone();
        let reached = async move { rx.wait_for(|a| *a >= index).await.is_ok() };
        match tokio::time::timeout(request_timeout(&self.cfg), reached).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(EtcdError::Stopped),
            Err(_) => Err(EtcdError::TimeoutWaitAppliedIndex),
        }
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

/// --force-new-cluster: every other member is removed by committed
/// membership changes appended to this member's log, so that replaying the
/// log leaves it alone in a one-member cluster, with all its data (etcd's way).
fn force_new_cluster(
    wal: &mut Wal,
    rec: &mut crate::raft::wal::Recovered,
    me: u64,
    members: &Members,
    conf: Option<&raft::prelude::ConfState>,
) -> Result<()> {
    use raft::prelude::{ConfChange, ConfChangeType, Entry, EntryType};
    let mut others: Vec<u64> = members.ids();
    if let Some(cs) = conf {
        others.extend(cs.voters.iter().chain(&cs.learners));
    }
    // Members added in the log but not yet in the tables count too (etcd's getIDs).
    for e in rec
        .entries
        .iter()
        .filter(|e| e.get_entry_type() == EntryType::EntryConfChange)
    {
        if let Ok(cc) = <ConfChange as prost011::Message>::decode(e.data.as_slice()) {
            if cc.get_change_type() == ConfChangeType::RemoveNode {
                others.retain(|id| *id != cc.node_id);
            } else {
                others.push(cc.node_id);
            }
        }
    }
    others.sort_unstable();
    others.dedup();
    others.retain(|id| *id != me);
    let last = rec
        .entries
        .last()
        .map_or_else(|| rec.snapshot.as_ref().map_or(0, |m| m.index), |e| e.index);
    let term = rec.hard_state.term.max(1);
    let entries: Vec<Entry> = others
        .iter()
        .enumerate()
        .map(|(i, id)| Entry {
            entry_type: EntryType::EntryConfChange as i32,
            term,
            index: last + 1 + i as u64,
            data: prost011::Message::encode_to_vec(&ConfChange {
                change_type: ConfChangeType::RemoveNode as i32,
                node_id: *id,
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let mut hs = rec.hard_state.clone();
    hs.term = term;
    hs.commit = last + entries.len() as u64;
    wal.append(&entries, Some(&hs))?;
    wal.sync()?;
    tracing::warn!(
        removed = ?others.iter().map(|id| format!("{id:x}")).collect::<Vec<_>>(),
        "forcing restart of this member as a one-member cluster (--force-new-cluster)"
    );
    rec.entries.extend(entries);
    rec.hard_state = hs;
    Ok(())
}

/// The members named by --initial-cluster, with etcd's IDs.
pub fn initial_members(cfg: &Config) -> Vec<Member> {
    let mut by_name: Vec<(String, Vec<url::Url>)> = Vec::new();
    for (name, url) in &cfg.initial_cluster {
        match by_name.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.push(url.clone()),
            None => by_name.push((name.clone(), vec![url.clone()])),
        }
    }
    by_name
        .into_iter()
        .map(|(name, urls)| Member {
            id: ids::member_id(&urls, &cfg.initial_cluster_token),
            name,
            peer_urls: urls.iter().map(ids::url_string).collect(),
            client_urls: Vec::new(),
            is_learner: false,
        })
        .collect()
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

/// Opens or creates the member's data and starts its threads. Must run
/// inside a tokio runtime (it spawns the background tasks).
pub fn start(
    cfg: Config,
    join: Option<crate::peer::JoinInfo>,
    tls: Arc<crate::tls::Tls>,
) -> Result<Running> {
    let cfg = Arc::new(cfg);
    let member_dir = cfg.member_dir();
    let wal_dir = cfg.wal_path();
    let snap_dir = member_dir.join("snap");
    std::fs::create_dir_all(&snap_dir)
        .map_err(|e| Error::io(format!("create {}", snap_dir.display()), e))?;
    let lock = lock_data_dir(&member_dir)?;
    let backend = Arc::new(Backend::open(&snap_dir.join("db"))?);
    let members = Arc::new(Members::load(&backend)?);

    let (member_id, cluster_id, wal, log) = if Wal::exists(&wal_dir) {
        if cfg.initial_cluster_state == ClusterState::New {
            tracing::info!(data_dir = %cfg.data_dir.display(), "found existing data; ignoring --initial-cluster");
        }
        let (mut wal, mut rec) = Wal::open(&wal_dir)?;
        let (member_id, cluster_id) = {
            let txn = backend.read()?;
            let m = txn.open_table(META)?;
            (
                backend::get_u64(&m, meta::MEMBER_ID)?,
                backend::get_u64(&m, meta::CLUSTER_ID)?,
            )
        };
        if member_id == 0 {
            return Err(Error::Corrupt(format!(
                "the WAL in {} has no matching database (member ID missing from {}); restore this member from a snapshot or remove and re-add it",
                wal_dir.display(),
                backend.path().display()
            )));
        }
        let applied_conf = {
            let txn = backend.read()?;
            backend::get_conf_state(&txn.open_table(META)?)?
        };
        if cfg.force_new_cluster {
            force_new_cluster(
                &mut wal,
                &mut rec,
                member_id,
                &members,
                applied_conf.as_ref(),
            )?;
        }
        let log = node::restore(rec.hard_state, rec.snapshot, rec.entries, applied_conf)?;
        (member_id, cluster_id, wal, log)
    } else if let Some(join) = join {
        // Joining an existing cluster: the log (bootstrap entries included)
        // comes from the leader. Identity first, then the WAL (see below).
        {
            let txn = backend.write(true)?;
            {
                let mut m = txn.open_table(META)?;
                backend::put_u64(&mut m, meta::MEMBER_ID, join.member_id)?;
                backend::put_u64(&mut m, meta::CLUSTER_ID, join.cluster_id)?;
                backend::put_u64(&mut m, meta::APPLIED_INDEX, 0)?;
            }
            txn.commit()?;
        }
        members.save(&backend, join.members)?;
        let tmp_wal = wal_dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp_wal);
        {
            let mut wal = Wal::create(&tmp_wal)?;
            wal.mark_snapshot(crate::raft::wal::SnapshotMark::default())?;
        }
        std::fs::rename(&tmp_wal, &wal_dir)
            .map_err(|e| Error::io(format!("rename {} into place", tmp_wal.display()), e))?;
        backend::sync_dir(&wal_dir)?;
        let (wal, rec) = Wal::open(&wal_dir)?;
        let log = node::restore(rec.hard_state, rec.snapshot, rec.entries, None)?;
        (join.member_id, join.cluster_id, wal, log)
    } else {
        let initial = initial_members(&cfg);
        let me = initial.iter().find(|m| m.name == cfg.name).ok_or_else(|| {
            Error::Other(format!(
                "couldn't find local name \"{}\" in the initial cluster configuration",
                cfg.name
            ))
        })?;
        let member_id = me.id;
        let cluster_id = ids::cluster_id(&initial.iter().map(|m| m.id).collect::<Vec<_>>());
        let initial_conf = raft::prelude::ConfState {
            voters: initial.iter().map(|m| m.id).collect(),
            ..Default::default()
        };
        // Identity first, then the WAL (built aside and renamed into place):
        // a crash in between leaves no WAL, so the next start bootstraps again.
        {
            let txn = backend.write(true)?;
            {
                let mut m = txn.open_table(META)?;
                backend::put_u64(&mut m, meta::MEMBER_ID, member_id)?;
                backend::put_u64(&mut m, meta::CLUSTER_ID, cluster_id)?;
                // A restored snapshot carries an old applied index; this log starts at 0.
                backend::put_u64(&mut m, meta::APPLIED_INDEX, 0)?;
                // The whole initial configuration, from the first start on:
                // no member may ever elect itself with a partial one.
                backend::put_conf_state(&mut m, &initial_conf)?;
            }
            txn.commit()?;
        }
        members.save(&backend, initial.clone())?;
        let tmp_wal = wal_dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp_wal);
        {
            let mut wal = Wal::create(&tmp_wal)?;
            let contexts = crate::cluster::ConfChangeContext::bootstrap(&initial)?;
            node::bootstrap(&mut wal, &contexts)?;
        }
        std::fs::rename(&tmp_wal, &wal_dir)
            .map_err(|e| Error::io(format!("rename {} into place", tmp_wal.display()), e))?;
        backend::sync_dir(&wal_dir)?;
        let (wal, rec) = Wal::open(&wal_dir)?;
        let log = node::restore(
            rec.hard_state,
            rec.snapshot,
            rec.entries,
            Some(initial_conf),
        )?;
        (member_id, cluster_id, wal, log)
    };

    // This member's client URLs (published through Raft in etcd; a single
    // member records them directly).
    if let Some(mut me) = members.get(member_id) {
        me.name = cfg.name.clone();
        me.client_urls = cfg
            .advertise_client_urls
            .iter()
            .map(ids::url_string)
            .collect();
        members.save(&backend, vec![me])?;
    }

    let (store, leased) = KvStore::open(backend.clone())?;
    let store = Arc::new(store);
    let lessor = Arc::new(Lessor::new(cfg.election_timeout));
    lessor.load(&backend, leased)?;
    let applied_at_start = {
        let txn = backend.read()?;
        let m = txn.open_table(META)?;
        backend::get_u64(&m, meta::APPLIED_INDEX)?
    };
    let alarms = Arc::new(Alarms::load(&backend)?);
    let hub = WatchHub::new(store.clone());
    let metrics = Arc::new(Metrics::default());
    let wait = Arc::new(Wait::default());
    let durable_applied = Arc::new(AtomicU64::new(applied_at_start));
    let (applied_tx, applied_rx) = tokio::sync::watch::channel(applied_at_start);
    let (apply_tx, apply_rx) = crossbeam_channel::unbounded::<ApplyMsg>();

    let tick = cfg.heartbeat_interval.max(Duration::from_millis(1));
    let election_ticks =
        (cfg.election_timeout.as_millis() / tick.as_millis().max(1)).max(2) as usize;
    let role_lessor = lessor.clone();
    let on_role = Box::new(move |leader: bool| {
        if leader {
            role_lessor.promote();
        } else {
            role_lessor.demote();
        }
    });
    let entries_tx = apply_tx.clone();
    let transport = crate::raft::transport::Transport::new(
        member_id,
        cluster_id,
        tokio::runtime::Handle::current(),
        metrics.clone(),
        tls.dialer.clone(),
    );
    for m in members.list() {
        transport.set_peer(m.id, m.peer_urls.clone());
    }
    let send_transport = transport.clone();
    // A follower too far behind gets a copy of the whole database.
    let snap_backend = backend.clone();
    let snap_dir_for_copy = snap_dir.clone();
    let log = log.with_snapshotter(Arc::new(move || {
        let tmp = tempfile::NamedTempFile::new_in(&snap_dir_for_copy).map_err(|e| e.to_string())?;
        let (index, conf) = snap_backend
            .snapshot_copy(tmp.path())
            .map_err(|e| e.to_string())?;
        let data = std::fs::read(tmp.path()).map_err(|e| e.to_string())?;
        Ok((data, index, conf.unwrap_or_default()))
    }));
    // A snapshot from the leader is written next to the database, then
    // installed by the apply thread, which answers once it is durable.
    let install_tx = apply_tx.clone();
    let install_dir = snap_dir.clone();
    let install: crate::raft::node::InstallFn = Box::new(move |snap| {
        let index = snap.metadata.as_ref().map_or(0, |m| m.index);
        let file = install_dir.join("db.incoming");
        std::fs::write(&file, &snap.data).map_err(|e| Error::io("write incoming snapshot", e))?;
        std::fs::File::open(&file)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("sync incoming snapshot", e))?;
        let (done, rx) = crossbeam_channel::bounded(1);
        install_tx
            .send(ApplyMsg::InstallSnapshot { file, index, done })
            .map_err(|_| Error::Other("apply thread stopped".into()))?;
        rx.recv()
            .map_err(|_| Error::Other("apply thread stopped".into()))?
            .map_err(|e| Error::Other(format!("installing snapshot: {e}")))
    });
    let (raft_node, raft) = RaftNode::new(
        NodeConfig {
            id: member_id,
            tick,
            election_ticks,
            heartbeat_ticks: 1,
            pre_vote: cfg.pre_vote,
            snapshot_count: cfg.snapshot_count,
            catch_up_entries: snapshot_catch_up_entries(),
            applied: applied_at_start,
        },
        wal,
        log,
        Box::new(move |ents, confs| {
            let _ = entries_tx.send(ApplyMsg::Entries(ents, confs));
        }),
        Box::new(move |msgs| send_transport.send(msgs)),
        install,
        durable_applied.clone(),
        on_role,
        metrics.clone(),
    )?;

    transport.set_raft(raft.clone());
    let start_id = ((member_id & 0xffff) << 48)
        | ((std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            & 0xff_ffff_ffff)
            << 8);
    let server = Arc::new(EtcdServer {
        cfg: cfg.clone(),
        member_id,
        cluster_id,
        store: store.clone(),
        lessor: lessor.clone(),
        hub: hub.clone(),
        alarms: alarms.clone(),
        members: members.clone(),
        raft: raft.clone(),
        wait: wait.clone(),
        metrics: metrics.clone(),
        applied: applied_rx,
        apply_tx,
        next_id: AtomicU64::new(start_id),
        leader_channel: parking_lot::Mutex::new(None),
        tls,
        transport: transport.clone(),
    });

    let quota_server = Arc::downgrade(&server);
    let member_transport = transport.clone();
    let removal_grace = cfg.heartbeat_interval * 10;
    let applier = Applier {
        on_member_change: Box::new(move |change| match change {
            crate::apply::MemberChange::Added(m) => {
                member_transport.set_peer(m.id, m.peer_urls.clone())
            }
            crate::apply::MemberChange::Removed(id) => {
                member_transport.remove_peer(id);
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
        }),
        store,
        lessor: lessor.clone(),
        hub: hub.clone(),
        alarms,
        members,
        wait,
        metrics: metrics.clone(),
        member_id,
        applied: applied_tx,
        durable_applied,
        start_index: applied_at_start,
        quota_bytes: cfg.effective_quota_bytes(),
        on_quota_exceeded: Box::new(move || {
            if let Some(s) = quota_server.upgrade() {
                tokio_spawn_alarm(s);
            }
        }),
    };
    let rt = tokio::runtime::Handle::current();
    let apply_thread = std::thread::Builder::new()
        .name("apply".into())
        .spawn(move || {
            let _guard = rt.enter();
            let res = applier.run(apply_rx);
            if let Err(e) = &res {
                // Continuing without it would hang every request; etcd stops too.
                tracing::error!("apply thread stopped: {e}; stopping the member");
                std::process::exit(1);
            }
            res
        })
        .map_err(|e| Error::io("spawn apply thread", e))?;
    let raft_thread = std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            let res = raft_node.run();
            if let Err(e) = &res {
                // Continuing without it would hang every request; etcd stops too.
                tracing::error!("raft thread stopped: {e}; stopping the member");
                std::process::exit(1);
            }
            res
        })
        .map_err(|e| Error::io("spawn raft thread", e))?;

    tokio::spawn(hub.run_sync());
    tokio::spawn(expire_leases(Arc::downgrade(&server)));
    tokio::spawn(crate::metrics::leader::run(Arc::downgrade(&server)));
    tokio::spawn(crate::compactor::run(
        Arc::downgrade(&server),
        cfg.compaction_retention(),
    ));
    Ok(Running {
        server,
        raft_thread,
        apply_thread,
        _lock: lock,
    })
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

/// Two processes on one data dir would corrupt it; the second one stops.
fn lock_data_dir(member_dir: &std::path::Path) -> Result<std::fs::File> {
    let path = member_dir.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    f.try_lock().map_err(|_| {
        Error::Other(format!(
            "data dir {} is in use by another process (another etcd or ballast member?)",
            member_dir.display()
        ))
    })?;
    Ok(f)
}

/// Raises NOSPACE through Raft so every member sees the same alarm.
fn tokio_spawn_alarm(server: Arc<EtcdServer>) {
    use ballast_proto::etcdserverpb::{alarm_request::AlarmAction, AlarmRequest, AlarmType};
    tokio::spawn(async move {
        let req = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: server.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(e) = server.propose(Request::Alarm(req)).await {
            tracing::warn!("raising the NOSPACE alarm failed: {e}");
        }
    });
}

/// The leader revokes expired leases through Raft.
async fn expire_leases(server: std::sync::Weak<EtcdServer>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let Some(s) = server.upgrade() else { return };
        for id in s.lessor.take_expired() {
            let s = s.clone();
            tokio::spawn(async move {
                let req = ballast_proto::etcdserverpb::LeaseRevokeRequest { id };
                match s.propose(Request::LeaseRevoke(req)).await {
                    Ok(_) | Err(EtcdError::LeaseNotFound) => {}
                    Err(e) => tracing::warn!(
                        lease = format!("{id:016x}"),
                        "revoking expired lease failed: {e}"
                    ),
                }
            });
        }
    }
}
