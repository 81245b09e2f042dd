//! The Raft driver: one thread owns the `RawNode`, batches proposals, makes
//! each Ready durable with a single fsync, and hands committed entries to
//! the apply thread. Modelled on raft-rs's `five_mem_node` example.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::metrics::Metrics;
use raft::prelude::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Message};
use raft::{RawNode, StateRole};
use tokio::sync::oneshot;

use super::storage::LogStore;
use super::wal::{SnapshotMark, Wal};
use crate::error::{Error, EtcdError, Result};

/// Requests to the Raft thread.
pub enum Command {
    /// `refused` is called only when Raft does not take the proposal; an accepted
    /// one is answered by the apply thread, so the proposer is woken once per request.
    Propose {
        data: Vec<u8>,
        refused: Refused,
    },
    /// Linearizable read: answers with the commit index to wait for.
    ReadIndex(oneshot::Sender<Result<u64, EtcdError>>),
    /// Proposes a membership change; resolves once the node accepted it.
    ProposeConfChange {
        cc: ConfChange,
        done: oneshot::Sender<Result<(), EtcdError>>,
    },
    /// How far a member's log matches the leader's (None: Raft does not
    /// track it), and the commit index; None when this node is not the leader.
    Progress {
        id: u64,
        done: oneshot::Sender<Option<(Option<u64>, u64)>>,
    },
    /// Hands leadership to another voter (etcdctl move-leader).
    TransferLeader(u64),
    /// Whether a snapshot sent to a peer arrived.
    ReportSnapshot {
        to: u64,
        delivered: bool,
    },
    /// A message from a peer.
    Step(Box<Message>),
    /// The transport could not deliver to this peer.
    Unreachable(u64),
    Stop,
}

/// Tells a proposer why Raft refused its proposal.
pub type Refused = Box<dyn FnOnce(EtcdError) + Send>;

/// Where a linearizable read's commit index goes.
type ReadReply = oneshot::Sender<Result<u64, EtcdError>>;

/// What other threads may read about the node without asking it.
#[derive(Default)]
pub struct RaftStatus {
    pub leader: AtomicU64,
    /// When this member last saw a new leader; tells a request that timed out because
    /// its leader failed from one that was just slow.
    pub leader_since: parking_lot::Mutex<Option<std::time::Instant>>,
    pub term: AtomicU64,
    pub last_index: AtomicU64,
    pub commit: AtomicU64,
}

/// Told to the rest of the server when leadership changes.
pub type RoleListener = Box<dyn Fn(bool) + Send>;
/// What became of a committed membership change: the configuration after
/// it, or etcd's error when it was refused (and left Raft unchanged).
pub type ConfOutcome = Result<ConfState, EtcdError>;
/// Receives committed entries, in order.
/// With each batch: the outcome of every membership change in it (by entry
/// index), already in effect in Raft here.
pub type ApplyFn = Box<dyn Fn(Vec<Entry>, Vec<(u64, ConfOutcome)>) + Send>;
/// Delivers messages to peers; must not block.
pub type SendFn = Box<dyn Fn(Vec<Message>) + Send>;
/// Installs a snapshot from the leader into the state machine, durably,
/// before returning.
pub type InstallFn = Box<dyn Fn(&raft::prelude::Snapshot) -> Result<()> + Send>;

/// Cheap handle for talking to the Raft thread.
#[derive(Clone)]
pub struct RaftHandle {
    tx: Sender<Command>,
    pub status: Arc<RaftStatus>,
}

impl RaftHandle {
    /// Hands `data` to Raft without waiting for it: `refused` hears if Raft does not
    /// take it (no leader). Not waking the proposer when Raft takes it saves one
    /// thread hand-off per write; the apply thread's answer is the one it waits for.
    pub fn propose(&self, data: Vec<u8>, refused: Refused) -> Result<(), EtcdError> {
        self.tx
            .send(Command::Propose { data, refused })
            .map_err(|_| EtcdError::Stopped)
    }

    /// The commit index a linearizable read must wait for.
    pub async fn read_index(&self) -> Result<u64, EtcdError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::ReadIndex(tx))
            .map_err(|_| EtcdError::Stopped)?;
        rx.await.map_err(|_| EtcdError::Stopped)?
    }

    pub fn stop(&self) {
        let _ = self.tx.send(Command::Stop);
    }

    pub async fn propose_conf_change(&self, cc: ConfChange) -> Result<(), EtcdError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::ProposeConfChange { cc, done })
            .map_err(|_| EtcdError::Stopped)?;
        rx.await.map_err(|_| EtcdError::Stopped)?
    }

    pub async fn progress(&self, id: u64) -> Option<(Option<u64>, u64)> {
        let (done, rx) = oneshot::channel();
        self.tx.send(Command::Progress { id, done }).ok()?;
        rx.await.ok().flatten()
    }

    pub fn report_snapshot(&self, to: u64, delivered: bool) {
        let _ = self.tx.send(Command::ReportSnapshot { to, delivered });
    }

    pub fn transfer_leader(&self, to: u64) {
        let _ = self.tx.send(Command::TransferLeader(to));
    }

    pub fn step(&self, m: Message) {
        let _ = self.tx.send(Command::Step(Box::new(m)));
    }

    pub fn unreachable(&self, peer: u64) {
        let _ = self.tx.send(Command::Unreachable(peer));
    }

    pub fn leader(&self) -> u64 {
        self.status.leader.load(Ordering::Relaxed)
    }

    pub fn term(&self) -> u64 {
        self.status.term.load(Ordering::Relaxed)
    }
}

pub struct NodeConfig {
    pub id: u64,
    pub tick: Duration,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    pub pre_vote: bool,
    /// Log entries to keep before compacting the log (etcd's --snapshot-count).
    pub snapshot_count: u64,
    /// Entries kept behind the compaction point, so that a follower a little
    /// behind catches up from the log instead of a snapshot (etcd's
    /// SnapshotCatchUpEntries).
    pub catch_up_entries: u64,
    /// Index already applied to the state machine (replay starts after it).
    pub applied: u64,
}

pub struct RaftNode {
    raw: RawNode<LogStore>,
    store: LogStore,
    wal: Wal,
    rx: Receiver<Command>,
    apply: ApplyFn,
    send_fn: SendFn,
    install: InstallFn,
    metrics: Arc<Metrics>,
    status: Arc<RaftStatus>,
    /// The apply thread's durably applied index: the log may be cut up to it.
    durable_applied: Arc<AtomicU64>,
    snapshot_count: u64,
    catch_up_entries: u64,
    /// The durably applied index at the last compaction (etcd's snapshot index).
    compacted_at: u64,
    tick: Duration,
    pending_reads: Vec<oneshot::Sender<Result<u64, EtcdError>>>,
    /// Read requests sent to raft, with when they were sent.
    reads_in_flight: HashMap<u64, (Instant, Vec<ReadReply>)>,
    next_read_ctx: u64,
    on_role: RoleListener,
    was_leader: bool,
}

/// In-flight read requests older than this are forgotten (their callers
/// have retried by then).
const STALE_READ: Duration = Duration::from_secs(5);

/// Raft's log is the same on every member; entries of this size or larger in
/// one message are split by raft-rs.
const MAX_MSG_BYTES: u64 = 1024 * 1024;

impl RaftNode {
    /// Builds the node over a recovered (or new) WAL.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: NodeConfig,
        wal: Wal,
        store: LogStore,
        apply: ApplyFn,
        send_fn: SendFn,
        install: InstallFn,
        durable_applied: Arc<AtomicU64>,
        on_role: RoleListener,
        metrics: Arc<Metrics>,
    ) -> Result<(RaftNode, RaftHandle)> {
        let raft_cfg = raft::Config {
            id: cfg.id,
            election_tick: cfg.election_ticks,
            heartbeat_tick: cfg.heartbeat_ticks,
            // The commit index is persisted lazily, so after a crash the
            // state machine may be ahead of it; raft-rs needs applied <= commit.
            applied: cfg.applied.min(store.hard_state().commit),
            max_size_per_msg: MAX_MSG_BYTES,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: cfg.pre_vote,
            ..Default::default()
        };
        raft_cfg.validate()?;
        let logger = slog::Logger::root(SlogToTracing, slog::o!());
        let mut raw = RawNode::new(&raft_cfg, store.clone(), &logger)?;
        let voters = store.conf_state().voters;
        if voters == [cfg.id] {
            // Alone in the cluster: no reason to wait for an election timeout.
            raw.campaign()?;
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let status = Arc::new(RaftStatus::default());
        let node = RaftNode {
            raw,
            store,
            wal,
            rx,
            apply,
            send_fn,
            install,
            metrics,
            status: status.clone(),
            durable_applied,
            snapshot_count: cfg.snapshot_count.max(1),
            catch_up_entries: cfg.catch_up_entries,
            compacted_at: cfg.applied,
            tick: cfg.tick,
            pending_reads: Vec::new(),
            reads_in_flight: HashMap::new(),
            next_read_ctx: 1,
            on_role,
            was_leader: false,
        };
        Ok((node, RaftHandle { tx, status }))
    }

    /// Runs until `Stop` or until every handle is dropped. An error here
    /// (the disk failed) is fatal for the member.
    pub fn run(mut self) -> Result<()> {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(Command::Stop) => return Ok(()),
                Ok(cmd) => self.handle(cmd),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            // Everything already queued joins this round: one fsync for all.
            while let Ok(cmd) = self.rx.try_recv() {
                if matches!(cmd, Command::Stop) {
                    return Ok(());
                }
                self.handle(cmd);
            }
            if !self.pending_reads.is_empty() {
                let ctx = self.next_read_ctx;
                self.next_read_ctx += 1;
                self.raw.read_index(ctx.to_be_bytes().to_vec());
                self.reads_in_flight.insert(
                    ctx,
                    (Instant::now(), std::mem::take(&mut self.pending_reads)),
                );
            }
            // Raft may drop a read request without answering; its waiters retry.
            if !self.reads_in_flight.is_empty() {
                self.reads_in_flight
                    .retain(|_, (at, _)| at.elapsed() < STALE_READ);
            }
            if Instant::now() >= next_tick {
                self.raw.tick();
                next_tick = Instant::now() + self.tick;
            }
            self.on_ready()?;
            self.maybe_compact_log()?;
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Propose { data, refused } => {
                let res = if self.raw.raft.leader_id == raft::INVALID_ID {
                    Err(EtcdError::NoLeader)
                } else {
                    self.raw
                        .propose(vec![], data)
                        .map_err(|_| EtcdError::NoLeader)
                };
                if let Err(e) = res {
                    refused(e);
                }
            }
            Command::ReadIndex(reply) => {
                if self.raw.raft.leader_id == raft::INVALID_ID {
                    let _ = reply.send(Err(EtcdError::NoLeader));
                } else {
                    self.pending_reads.push(reply);
                }
            }
            Command::ProposeConfChange { cc, done } => {
                let res = if self.raw.raft.leader_id == raft::INVALID_ID {
                    Err(EtcdError::NoLeader)
                } else {
                    self.raw.propose_conf_change(vec![], cc).map_err(|e| {
                        tracing::warn!("membership change refused by raft: {e}");
                        EtcdError::UnhealthyCluster
                    })
                };
                let _ = done.send(res);
            }
            Command::Progress { id, done } => {
                let answer = (self.raw.raft.state == StateRole::Leader).then(|| {
                    let matched = self.raw.raft.prs().get(id).map(|p| p.matched);
                    (matched, self.raw.raft.raft_log.committed)
                });
                let _ = done.send(answer);
            }
            Command::TransferLeader(to) => self.raw.transfer_leader(to),
            Command::ReportSnapshot { to, delivered } => {
                let status = if delivered {
                    raft::SnapshotStatus::Finish
                } else {
                    raft::SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
            Command::Step(m) => {
                if let Err(e) = self.raw.step(*m) {
                    tracing::debug!("ignored raft message: {e}");
                }
            }
            Command::Unreachable(peer) => self.raw.report_unreachable(peer),
            Command::Stop => {}
        }
    }

    fn on_ready(&mut self) -> Result<()> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut rd = self.raw.ready();
        // Sent before the committed entries go to the apply thread: applying a member's
        // removal takes it out of the transport, and the commit that tells it so must
        // already be queued for it.
        self.send(rd.take_messages());
        if let Some(ss) = rd.ss() {
            let before = self.status.leader.swap(ss.leader_id, Ordering::Relaxed);
            if ss.leader_id != raft::INVALID_ID && ss.leader_id != before {
                *self.status.leader_since.lock() = Some(std::time::Instant::now());
            }
            self.metrics
                .has_leader
                .set((ss.leader_id != raft::INVALID_ID) as i64);
            let is_leader = ss.raft_state == StateRole::Leader;
            if is_leader != self.was_leader {
                self.was_leader = is_leader;
                (self.on_role)(is_leader);
            }
            if ss.raft_state != StateRole::Leader {
                self.fail_reads(EtcdError::LeaderChanged);
            }
        }
        if !rd.snapshot().is_empty() {
            // The leader's state machine replaces ours; only once it is
            // durable may the log move past it.
            let snap = rd.snapshot().clone();
            (self.install)(&snap)?;
            let meta = snap.metadata.clone().unwrap_or_default();
            self.store.apply_snapshot(meta.clone());
            // The WAL's hard state must cover the snapshot before the mark
            // makes it the log's start, or a crash here could not restart.
            self.wal.append(&[], Some(&self.store.hard_state()))?;
            self.wal.mark_snapshot(SnapshotMark {
                index: meta.index,
                term: meta.term,
                conf_state: meta.conf_state.clone().unwrap_or_default(),
            })?;
            if let Some(cs) = meta.conf_state {
                self.store.set_conf_state(cs);
            }
        }
        self.hand_to_apply(rd.take_committed_entries());

        let hs = rd.hs().cloned();
        let wrote = !rd.entries().is_empty() || hs.is_some();
        if wrote {
            self.wal.append(rd.entries(), hs.as_ref())?;
            // New entries, term or vote must be durable before anything is
            // sent or acknowledged; a commit-index-only change need not be
            // (after a crash it is recomputed), so it rides the next sync.
            if rd.must_sync() {
                let started = Instant::now();
                self.wal.sync()?;
                self.metrics
                    .wal_fsync
                    .observe(started.elapsed().as_secs_f64());
            }
            self.store.append(rd.entries());
            if let Some(hs) = hs {
                self.status.term.store(hs.term, Ordering::Relaxed);
                self.store.set_hard_state(hs);
            }
            self.status
                .last_index
                .store(self.store.last_index_now(), Ordering::Relaxed);
        }
        self.send(rd.take_persisted_messages());
        for rs in rd.take_read_states() {
            let Ok(ctx) = <[u8; 8]>::try_from(rs.request_ctx.as_slice()) else {
                continue;
            };
            let waiting = self
                .reads_in_flight
                .remove(&u64::from_be_bytes(ctx))
                .map(|(_, w)| w);
            for reply in waiting.unwrap_or_default() {
                let _ = reply.send(Ok(rs.index));
            }
        }
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.store.set_commit(commit);
            self.status.commit.store(commit, Ordering::Relaxed);
            // Durable with the next sync; losing it only means re-committing.
            self.wal.append(&[], Some(&self.store.hard_state()))?;
        }
        self.send(light.take_messages());
        self.hand_to_apply(light.take_committed_entries());
        self.raw.advance_apply();
        Ok(())
    }

    /// Membership changes take effect in Raft here, on this thread, as they
    /// are handed over: the apply thread only records them, so the two
    /// threads never wait for each other.
    fn hand_to_apply(&mut self, entries: Vec<Entry>) {
        let Some(last) = entries.last() else { return };
        self.status.commit.fetch_max(last.index, Ordering::Relaxed);
        self.metrics.proposals_committed.set(last.index as i64);
        let mut confs = Vec::new();
        for e in entries
            .iter()
            .filter(|e| e.get_entry_type() == EntryType::EntryConfChange)
        {
            let cc = match <ConfChange as prost011::Message>::decode(e.data.as_slice()) {
                Ok(cc) => cc,
                Err(err) => {
                    tracing::error!(index = e.index, "undecodable membership change: {err}");
                    continue;
                }
            };
            let ctx = crate::cluster::ConfChangeContext::decode(&cc.context);
            let current = self.raw.raft.prs().conf().to_conf_state();
            if let Err(err) = super::conf_check::check(&current, &cc, ctx.as_ref()) {
                tracing::warn!(
                    index = e.index,
                    node = format!("{:x}", cc.node_id),
                    "membership change refused when applied: {err}"
                );
                confs.push((e.index, Err(err)));
                continue;
            }
            let cs = match self.raw.apply_conf_change(&cc) {
                Ok(cs) => cs,
                Err(err) => {
                    tracing::warn!(index = e.index, "applying membership change failed: {err}");
                    self.raw.raft.prs().conf().to_conf_state()
                }
            };
            self.store.set_conf_state(cs.clone());
            if cs.voters == [self.id()] && !self.was_leader {
                // Alone in the cluster (e.g. after --force-new-cluster).
                let _ = self.raw.campaign();
            }
            confs.push((e.index, Ok(cs)));
        }
        (self.apply)(entries, confs);
    }

    fn send(&mut self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            (self.send_fn)(msgs);
        }
    }

    fn id(&self) -> u64 {
        self.raw.raft.id
    }

    fn fail_reads(&mut self, err: EtcdError) {
        for reply in self.pending_reads.drain(..) {
            let _ = reply.send(Err(err));
        }
        for (_, (_, replies)) in self.reads_in_flight.drain() {
            for reply in replies {
                let _ = reply.send(Err(err));
            }
        }
    }

    /// Once `snapshot_count` entries are durably applied beyond the last
    /// compaction, cuts the log, keeping `catch_up_entries` before the
    /// durable index, as etcd does when it snapshots.
    fn maybe_compact_log(&mut self) -> Result<()> {
        let durable = self.durable_applied.load(Ordering::Acquire);
        if durable < self.compacted_at.saturating_add(self.snapshot_count) {
            return Ok(());
        }
        self.compacted_at = durable;
        let index = compaction_index(durable, self.catch_up_entries);
        if index < self.store.first_index_now() {
            return Ok(());
        }
        let term = self.store.compact(index)?;
        let conf_state: ConfState = self.raw.raft.prs().conf().to_conf_state();
        self.store.set_conf_state(conf_state.clone());
        self.wal.mark_snapshot(SnapshotMark {
            index,
            term,
            conf_state,
        })?;
        tracing::info!(index, durable, "compacted raft log");
        Ok(())
    }
}

/// Where the log is cut when `durable` is durably applied: that far less the
/// entries kept for followers catching up (0: nothing to cut yet).
fn compaction_index(durable: u64, catch_up_entries: u64) -> u64 {
    durable.saturating_sub(catch_up_entries)
}

/// Bootstrap for a member of a brand-new cluster, as etcd does it: the
/// initial members are the first log entries (one AddNode each, term 1,
/// committed), so every member that replays the log learns the whole
/// configuration. `contexts` are the encoded member records.
pub fn bootstrap(wal: &mut Wal, members: &[(u64, Vec<u8>)]) -> Result<()> {
    // Every member starts knowing the whole initial configuration, so none
    // can win an election with a partial one while replaying these entries.
    let conf_state = ConfState {
        voters: members.iter().map(|(id, _)| *id).collect(),
        ..Default::default()
    };
    wal.mark_snapshot(SnapshotMark {
        index: 0,
        term: 0,
        conf_state,
    })?;
    let entries: Vec<Entry> = members
        .iter()
        .enumerate()
        .map(|(i, (id, context))| {
            let cc = ConfChange {
                change_type: ConfChangeType::AddNode as i32,
                node_id: *id,
                context: context.clone(),
                ..Default::default()
            };
            Entry {
                entry_type: EntryType::EntryConfChange as i32,
                term: 1,
                index: i as u64 + 1,
                data: prost011::Message::encode_to_vec(&cc),
                ..Default::default()
            }
        })
        .collect();
    let hs = HardState {
        term: 1,
        vote: 0,
        commit: entries.len() as u64,
    };
    wal.append(&entries, Some(&hs))?;
    wal.sync()?;
    Ok(())
}

/// Rebuilds the in-memory log from what the WAL recovered. `applied_conf`
/// is the configuration the state machine holds (it includes every
/// membership change up to its applied index), if it has one.
pub fn restore(
    hard_state: HardState,
    mark: Option<SnapshotMark>,
    entries: Vec<Entry>,
    applied_conf: Option<ConfState>,
) -> Result<LogStore> {
    let mark =
        mark.ok_or_else(|| Error::Corrupt("the WAL has no starting point (snapshot mark)".into()))?;
    // A commit index below the log's start is impossible; raise it.
    let mut hard_state = hard_state;
    hard_state.commit = hard_state.commit.max(mark.index);
    hard_state.term = hard_state.term.max(mark.term);
    let snapshot = raft::prelude::SnapshotMetadata {
        conf_state: Some(applied_conf.unwrap_or(mark.conf_state)),
        index: mark.index,
        term: mark.term,
    };
    Ok(LogStore::new(hard_state, snapshot, entries))
}

/// Forwards raft-rs's slog records (elections, term changes) to tracing.
struct SlogToTracing;

impl slog::Drain for SlogToTracing {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        _values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        let msg = record.msg().to_string();
        match record.level() {
            slog::Level::Critical | slog::Level::Error => tracing::error!(target: "raft", "{msg}"),
            slog::Level::Warning => tracing::warn!(target: "raft", "{msg}"),
            slog::Level::Info => tracing::info!(target: "raft", "{msg}"),
            slog::Level::Debug | slog::Level::Trace => tracing::debug!(target: "raft", "{msg}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::compaction_index;

    #[test]
    fn the_log_keeps_catch_up_entries_behind_the_durable_index() {
        assert_eq!(compaction_index(12_000, 5_000), 7_000);
        assert_eq!(compaction_index(3_000, 5_000), 0);
        assert_eq!(compaction_index(40, 0), 40);
    }
}
