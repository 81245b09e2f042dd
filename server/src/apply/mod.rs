//! The state machine: applies committed Raft entries in order, one backend
//! transaction per batch, then answers the waiting handlers and feeds watchers.

mod auth;
mod kind;
mod request;
mod txn;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_proto::internal::InternalRequest;
use crossbeam_channel::Receiver;
use parking_lot::Mutex;
use prost::Message;
use raft::prelude::{Entry, EntryType};
use tokio::sync::oneshot;

use crate::alarm::Alarms;
use crate::cluster::Members;
use crate::error::{EtcdError, Result};
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::mvcc::KvStore;
use crate::raft::node::ConfOutcome;
use crate::watch::WatchHub;

pub use request::Applied;

/// A membership change the rest of the server must act on (the transport).
pub enum MemberChange<'a> {
    Added(&'a crate::cluster::Member),
    Removed(u64),
}

/// How long non-durable backend commits may pile up before a durable one.
/// The Raft log covers them meanwhile; this bounds replay after a crash. Each durable
/// commit stalls the apply thread (it writes out the pages buffered since the last one and
/// fsyncs); etcd's 100 ms was tried (session 15) and each stall shrank only from 5–25 ms to
/// 2–18 ms while there were five times as many, and put-1000 throughput fell.
const DURABLE_EVERY: Duration = Duration::from_millis(500);

#[derive(PartialEq)]
enum Flow {
    Continue,
    Stop,
}

/// The apply loop's progress between messages.
struct LoopState {
    applied_index: u64,
    /// Term of the entry at `applied_index`: an empty durable commit records it again.
    applied_term: u64,
    pending: Vec<Entry>,
    /// Outcome of each pending membership change, by entry index.
    confs: std::collections::HashMap<u64, ConfOutcome>,
    last_durable: Instant,
}

/// Handlers waiting for their proposal to be applied, by request ID.
#[derive(Default)]
pub struct Wait {
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Applied, EtcdError>>>>,
}

impl Wait {
    pub fn register(&self, id: u64) -> oneshot::Receiver<Result<Applied, EtcdError>> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        rx
    }

    /// Whether a handler on this member waits for `id` (it proposed it).
    pub fn is_waiting(&self, id: u64) -> bool {
        self.pending.lock().contains_key(&id)
    }

    pub fn cancel(&self, id: u64) {
        self.pending.lock().remove(&id);
    }

    /// Answers the handler waiting for `id`, if any (the apply thread, or Raft
    /// refusing the proposal).
    pub fn trigger(&self, id: u64, result: Result<Applied, EtcdError>) {
        if let Some(tx) = self.pending.lock().remove(&id) {
            let _ = tx.send(result);
        }
    }
}

/// Work for the apply thread besides entries: things that must not run
/// concurrently with a write batch.
pub enum ApplyMsg {
    /// Committed entries, with the outcome of each membership change among
    /// them (already in effect in Raft, or refused there).
    Entries(Vec<Entry>, Vec<(u64, ConfOutcome)>),
    Defragment(oneshot::Sender<Result<(), String>>),
    /// Replace the state machine with a Raft snapshot from the leader (a
    /// database file at `file` holding everything up to `index`).
    InstallSnapshot {
        file: std::path::PathBuf,
        index: u64,
        done: crossbeam_channel::Sender<Result<(), String>>,
    },
    /// Apply what is queued, make it durable, and stop.
    Stop,
}

pub struct Applier {
    pub store: Arc<KvStore>,
    pub lessor: Arc<Lessor>,
    pub hub: Arc<WatchHub>,
    pub alarms: Arc<Alarms>,
    pub auth: Arc<crate::auth::AuthStore>,
    pub members: Arc<Members>,
    pub wait: Arc<Wait>,
    pub metrics: Arc<Metrics>,
    pub member_id: u64,
    /// Published after each batch: linearizable reads wait on it.
    pub applied: tokio::sync::watch::Sender<u64>,
    /// Highest index whose effects are durable in the backend.
    pub durable_applied: Arc<AtomicU64>,
    /// Applied index found in the backend at startup; entries up to it are skipped.
    pub start_index: u64,
    /// Asks for a NOSPACE alarm to be proposed (the server owns the Raft handle).
    pub on_quota_exceeded: Box<dyn Fn() + Send>,
    pub quota_bytes: u64,
    pub on_member_change: Box<dyn Fn(MemberChange<'_>) + Send>,
}

impl Applier {
    /// Runs until the channel closes. A storage error is fatal for the member:
    /// continuing could diverge from the log.
    pub fn run(mut self, rx: Receiver<ApplyMsg>) -> Result<()> {
        let mut st = LoopState {
            applied_index: self.start_index,
            applied_term: 0,
            pending: Vec::new(),
            confs: std::collections::HashMap::new(),
            last_durable: Instant::now(),
        };
        // A compaction cut short by the last stop resumes at once.
        let mut compaction_left = self.store.pending_compaction().is_some();
        loop {
            // With compaction steps left, the loop comes back for the next one as soon as
            // nothing is queued.
            let wait = if compaction_left {
                Duration::ZERO
            } else {
                DURABLE_EVERY
            };
            match rx.recv_timeout(wait) {
                Ok(m) => {
                    if self.handle(m, &mut st)? == Flow::Stop {
                        return Ok(());
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
            }
            // Coalesce whatever else is queued into the same backend commit.
            while let Ok(m) = rx.try_recv() {
                if self.handle(m, &mut st)? == Flow::Stop {
                    return Ok(());
                }
            }
            self.commit_pending(&mut st)?;
            // One step per round: under load the steps take turns with the batches.
            compaction_left = self.store.compaction_step()?;
        }
    }

    /// Applies and answers what is pending with a non-durable commit, then, once
    /// [`DURABLE_EVERY`] has passed, makes everything applied durable with an empty
    /// durable commit. The durable commit's fsync comes after the answers because the
    /// entries are already fsynced in the Raft log on a quorum: a client never waits
    /// for the backend's disk flush (etcd's backend commits on its own timer too).
    fn commit_pending(&mut self, st: &mut LoopState) -> Result<()> {
        if !st.pending.is_empty() {
            self.apply_batch(st, false)?;
        }
        let due = st.last_durable.elapsed() >= DURABLE_EVERY;
        let nothing_new = self.durable_applied.load(Ordering::Acquire) == st.applied_index;
        if due && !nothing_new {
            self.apply_batch(st, true)?;
            st.last_durable = Instant::now();
        }
        Ok(())
    }

    fn handle(&mut self, m: ApplyMsg, st: &mut LoopState) -> Result<Flow> {
        match m {
            ApplyMsg::Entries(ents, confs) => {
                st.pending.extend(ents);
                st.confs.extend(confs);
            }
            ApplyMsg::Stop => {
                self.apply_batch(st, true)?;
                return Ok(Flow::Stop);
            }
            ApplyMsg::Defragment(reply) => {
                // No write may run while the file is rewritten, and what a compaction
                // frees should be reclaimed by it.
                if !st.pending.is_empty() {
                    self.apply_batch(st, false)?;
                }
                self.store.finish_compaction()?;
                self.apply_batch(st, true)?;
                st.last_durable = Instant::now();
                let res = self.store.backend().defragment().map_err(|e| e.to_string());
                let _ = reply.send(res);
            }
            ApplyMsg::InstallSnapshot { file, index, done } => {
                let res = self.install_snapshot(st, &file, index);
                let _ = done.send(res.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                res?;
                st.last_durable = Instant::now();
            }
        }
        Ok(Flow::Continue)
    }

    /// Swaps in the leader's database and rebuilds everything held in memory
    /// from it. Durable before it returns: the Raft log is cut right after.
    fn install_snapshot(
        &mut self,
        st: &mut LoopState,
        file: &std::path::Path,
        index: u64,
    ) -> Result<()> {
        // Entries before the snapshot are superseded by it.
        st.pending.retain(|e| e.index > index);
        self.apply_batch(st, true)?;
        let backend = self.store.backend().clone();
        {
            // The copy carries the leader's identity: make it ours before it
            // replaces our database, so no crash can leave us as the leader.
            let incoming = redb::Database::create(file)?;
            let txn = incoming.begin_write()?;
            {
                let mut m = txn.open_table(crate::mvcc::backend::META)?;
                crate::mvcc::backend::put_u64(
                    &mut m,
                    crate::mvcc::backend::meta::MEMBER_ID,
                    self.member_id,
                )?;
                crate::mvcc::backend::put_u64(
                    &mut m,
                    crate::mvcc::backend::meta::APPLIED_INDEX,
                    index,
                )?;
            }
            txn.commit()?;
        }
        backend.install(file)?;
        let leased = self.store.reload()?;
        self.lessor.load(&backend, leased)?;
        self.members.reload(&backend)?;
        self.alarms.reload(&backend)?;
        self.auth.reload(&backend)?;
        for m in self.members.list() {
            (self.on_member_change)(MemberChange::Added(&m));
        }
        st.applied_index = index;
        self.durable_applied.store(index, Ordering::Release);
        let _ = self.applied.send(index);
        self.hub.resync_all();
        tracing::info!(
            index,
            revision = self.store.current_revision(),
            "installed snapshot from the leader"
        );
        Ok(())
    }

    /// Records a membership change Raft has taken (or refused) in the member
    /// table and the transport, in the batch of its entry.
    fn apply_conf_change(
        &self,
        batch: &crate::mvcc::WriteBatch<'_>,
        e: &Entry,
        outcome: Option<ConfOutcome>,
    ) -> Result<(u64, Result<Applied, EtcdError>)> {
        use raft::prelude::{ConfChange, ConfChangeType};
        let cc = <ConfChange as prost011::Message>::decode(e.data.as_slice()).map_err(|err| {
            crate::error::Error::Corrupt(format!(
                "raft entry {}: bad membership change: {err}",
                e.index
            ))
        })?;
        let ctx = crate::cluster::ConfChangeContext::decode(&cc.context);
        let request_id = ctx.as_ref().map_or(0, |c| c.request_id);
        let cs = match outcome {
            // Refused when applied (it lost a race): nothing changes.
            Some(Err(err)) => return Ok((request_id, Err(err))),
            Some(Ok(cs)) => Some(cs),
            None => None,
        };
        match (ConfChangeType::from_i32(cc.change_type).ok_or(()), ctx) {
            (Ok(ConfChangeType::RemoveNode), _) => {
                self.members.remove(batch.txn(), cc.node_id)?;
                tracing::info!(
                    removed_member_id = format!("{:x}", cc.node_id),
                    "removed member"
                );
                (self.on_member_change)(MemberChange::Removed(cc.node_id));
            }
            (Ok(_), Some(ctx)) if ctx.promote => match self.members.get(cc.node_id) {
                Some(mut m) => {
                    m.is_learner = false;
                    tracing::info!(
                        member_id = format!("{:x}", m.id),
                        "promoted learner to voting member"
                    );
                    self.members.upsert(batch.txn(), m)?;
                }
                None => tracing::warn!(
                    index = e.index,
                    member_id = format!("{:x}", cc.node_id),
                    "promoted member missing from the member table"
                ),
            },
            (Ok(kind), Some(ctx)) => {
                let mut m = ctx.member;
                m.is_learner = kind == ConfChangeType::AddLearnerNode;
                // Keep what the member published about itself.
                if let Some(old) = self.members.get(m.id) {
                    if m.name.is_empty() {
                        m.name = old.name;
                    }
                    if m.client_urls.is_empty() {
                        m.client_urls = old.client_urls;
                    }
                }
                tracing::info!(member_id = format!("{:x}", m.id), peer_urls = ?m.peer_urls, learner = m.is_learner, "added member");
                (self.on_member_change)(MemberChange::Added(&m));
                self.members.upsert(batch.txn(), m)?;
            }
            (Ok(_), None) => {
                tracing::warn!(index = e.index, "membership change without member record")
            }
            (Err(_), _) => tracing::warn!(index = e.index, "unknown membership change type"),
        }
        if let Some(cs) = &cs {
            crate::mvcc::backend::put_conf_state(
                &mut batch.txn().open_table(crate::mvcc::backend::META)?,
                cs,
            )?;
        }
        Ok((request_id, Ok(Applied::Members(self.members.list()))))
    }

    fn apply_batch(&mut self, st: &mut LoopState, durable: bool) -> Result<()> {
        let entries = &mut st.pending;
        let applied_index = &mut st.applied_index;
        let last_term = &mut st.applied_term;
        let started = Instant::now();
        let txn = self.store.begin_batch(durable)?;
        let mut batch = txn.batch()?;
        let mut results = Vec::new();
        let written = entries
            .iter()
            .filter(|e| e.index > *applied_index)
            .map(|e| e.data.len() as u64)
            .sum();
        for e in entries.drain(..) {
            if e.index <= *applied_index {
                continue;
            }
            *applied_index = e.index;
            *last_term = e.term;
            if e.get_entry_type() == EntryType::EntryConfChange {
                let _span = kind::apply_span(&e, "conf_change").entered();
                let conf = st.confs.remove(&e.index);
                let (id, res) = self.apply_conf_change(&batch, &e, conf)?;
                results.push((id, res));
                continue;
            }
            if e.get_entry_type() != EntryType::EntryNormal || e.data.is_empty() {
                continue;
            }
            let req = match InternalRequest::decode(e.data.as_slice()) {
                Ok(r) => r,
                Err(err) => {
                    tracing::error!(index = e.index, "skipping undecodable raft entry: {err}");
                    continue;
                }
            };
            let _span = kind::apply_span(&e, kind::of(&req)).entered();
            let id = req.id;
            let res = match request::apply(self, &mut batch, req, e.index) {
                Ok(applied) => Ok(applied),
                Err(crate::error::Error::Etcd(e)) => Err(e),
                // The backend failed: this batch is never committed, and the
                // member stops (etcd panics) rather than diverge from the log.
                Err(err) => {
                    tracing::error!(index = e.index, "failed to apply raft entry: {err}");
                    return Err(err);
                }
            };
            for (key, from, to) in batch.lease_moves.drain(..) {
                self.lessor.move_key(&key, from, to);
            }
            batch.end_request();
            results.push((id, res));
        }
        let finished = batch.finish(*applied_index, *last_term)?;
        let (revision, events) = txn.commit(finished)?;
        self.store.backend().note_written(written);
        if durable {
            self.durable_applied
                .store(*applied_index, Ordering::Release);
            self.store
                .backend()
                .maybe_refresh_in_use(self.quota_bytes)?;
        }
        self.metrics
            .backend_commit
            .observe(started.elapsed().as_secs_f64());
        let _ = self.applied.send(*applied_index);
        if !events.is_empty() {
            self.hub.notify(revision, &events);
        }
        for (id, res) in results {
            self.wait.trigger(id, res);
        }
        if self.quota_bytes > 0
            && self.store.backend().over_quota(self.quota_bytes)
            && !self.alarms.nospace()
        {
            (self.on_quota_exceeded)();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
