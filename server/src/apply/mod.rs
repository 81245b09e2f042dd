//! The state machine: applies committed Raft entries in order, one backend
//! transaction per batch, then answers the waiting handlers and feeds watchers.

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
use crate::watch::WatchHub;

pub use request::Applied;

/// A membership change the rest of the server must act on (the transport).
pub enum MemberChange<'a> {
    Added(&'a crate::cluster::Member),
    Removed(u64),
}

/// How long non-durable backend commits may pile up before a durable one.
/// The Raft log covers them meanwhile; this bounds replay after a crash.
const DURABLE_EVERY: Duration = Duration::from_millis(500);

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

    pub fn cancel(&self, id: u64) {
        self.pending.lock().remove(&id);
    }

    fn trigger(&self, id: u64, result: Result<Applied, EtcdError>) {
        if let Some(tx) = self.pending.lock().remove(&id) {
            let _ = tx.send(result);
        }
    }
}

/// Work for the apply thread besides entries: things that must not run
/// concurrently with a write batch.
pub enum ApplyMsg {
    Entries(Vec<Entry>),
    Defragment(oneshot::Sender<Result<(), String>>),
    /// Apply what is queued, make it durable, and stop.
    Stop,
}

pub struct Applier {
    pub store: Arc<KvStore>,
    pub lessor: Arc<Lessor>,
    pub hub: Arc<WatchHub>,
    pub alarms: Arc<Alarms>,
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
    /// Membership changes are applied to Raft's configuration here too.
    pub raft: crate::raft::RaftHandle,
    pub on_member_change: Box<dyn Fn(MemberChange<'_>) + Send>,
}

impl Applier {
    /// Runs until the channel closes. A storage error is fatal for the member:
    /// continuing could diverge from the log.
    pub fn run(mut self, rx: Receiver<ApplyMsg>) -> Result<()> {
        let mut last_durable = Instant::now();
        let mut applied_index = self.start_index;
        let mut pending_entries: Vec<Entry> = Vec::new();
        loop {
            let msg = match rx.recv_timeout(DURABLE_EVERY) {
                Ok(m) => Some(m),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
            };
            match msg {
                Some(ApplyMsg::Entries(ents)) => pending_entries.extend(ents),
                Some(ApplyMsg::Stop) => {
                    return self.apply_batch(&mut pending_entries, &mut applied_index, true)
                }
                Some(ApplyMsg::Defragment(reply)) => {
                    let res = self.store.backend().defragment().map_err(|e| e.to_string());
                    self.durable_applied.store(applied_index, Ordering::Release);
                    let _ = reply.send(res);
                    continue;
                }
                None => {}
            }
            // Coalesce whatever else is queued into the same backend commit.
            while let Ok(m) = rx.try_recv() {
                match m {
                    ApplyMsg::Entries(ents) => pending_entries.extend(ents),
                    ApplyMsg::Stop => {
                        return self.apply_batch(&mut pending_entries, &mut applied_index, true)
                    }
                    ApplyMsg::Defragment(reply) => {
                        // Defragment after this batch.
                        self.apply_batch(&mut pending_entries, &mut applied_index, true)?;
                        last_durable = Instant::now();
                        let res = self.store.backend().defragment().map_err(|e| e.to_string());
                        let _ = reply.send(res);
                    }
                }
            }
            let durable = last_durable.elapsed() >= DURABLE_EVERY;
            if pending_entries.is_empty() && !durable {
                continue;
            }
            if pending_entries.is_empty()
                && self.durable_applied.load(Ordering::Acquire) == applied_index
            {
                last_durable = Instant::now();
                continue;
            }
            self.apply_batch(&mut pending_entries, &mut applied_index, durable)?;
            if durable {
                last_durable = Instant::now();
            }
        }
    }

    /// Applies a membership change to Raft's configuration, the member
    /// table and the transport, in the batch of its entry.
    fn apply_conf_change(
        &self,
        batch: &crate::mvcc::WriteBatch<'_>,
        e: &Entry,
    ) -> Result<(u64, Result<Applied, EtcdError>)> {
        use raft::prelude::{ConfChange, ConfChangeType};
        let cc = <ConfChange as prost011::Message>::decode(e.data.as_slice()).map_err(|err| {
            crate::error::Error::Corrupt(format!(
                "raft entry {}: bad membership change: {err}",
                e.index
            ))
        })?;
        let ctx: Option<crate::cluster::ConfChangeContext> =
            serde_json::from_slice(&cc.context).ok();
        let Some(cs) = self.raft.apply_conf_change(cc.clone()) else {
            return Err(crate::error::Error::Other("raft thread stopped".into()));
        };
        let request_id = ctx.as_ref().map_or(0, |c| c.request_id);
        match (ConfChangeType::from_i32(cc.change_type).ok_or(()), ctx) {
            (Ok(ConfChangeType::RemoveNode), _) => {
                self.members.remove(batch.txn(), cc.node_id)?;
                tracing::info!(
                    removed_member_id = format!("{:x}", cc.node_id),
                    "removed member"
                );
                (self.on_member_change)(MemberChange::Removed(cc.node_id));
            }
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
        crate::mvcc::backend::put_conf_state(
            &mut batch.txn().open_table(crate::mvcc::backend::META)?,
            &cs,
        )?;
        Ok((request_id, Ok(Applied::Members(self.members.list()))))
    }

    fn apply_batch(
        &mut self,
        entries: &mut Vec<Entry>,
        applied_index: &mut u64,
        durable: bool,
    ) -> Result<()> {
        let started = Instant::now();
        let mut batch = self.store.begin_batch(durable)?;
        let mut results = Vec::new();
        let mut last_term = 0;
        for e in entries.drain(..) {
            if e.index <= *applied_index {
                continue;
            }
            *applied_index = e.index;
            last_term = e.term;
            if e.get_entry_type() == EntryType::EntryConfChange {
                let (id, res) = self.apply_conf_change(&batch, &e)?;
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
            let id = req.id;
            let res = request::apply(self, &mut batch, req);
            for (key, from, to) in batch.lease_moves.drain(..) {
                self.lessor.move_key(&key, from, to);
            }
            batch.end_request();
            self.metrics.proposals_applied.inc();
            results.push((id, res));
        }
        let (revision, events) = batch.finish(*applied_index, last_term)?;
        if durable {
            self.durable_applied
                .store(*applied_index, Ordering::Release);
            self.store.backend().refresh_in_use()?;
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
            && self.store.backend().size() > self.quota_bytes
            && !self.alarms.nospace()
        {
            (self.on_quota_exceeded)();
        }
        Ok(())
    }
}
