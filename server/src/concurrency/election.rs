//! The election recipe (etcd's `concurrency.Election`): candidates' keys
//! under `<name>/`, their values being what they proclaim; the oldest key
//! leads. A leader is named by its key and that key's create revision, so a
//! key written again after the leader lost it does not pass for the leader.

use ballast_proto::etcdserverpb::range_request::SortOrder;
use ballast_proto::etcdserverpb::{ResponseHeader, TxnRequest, TxnResponse};
use ballast_proto::mvccpb::KeyValue;
use ballast_proto::v3electionpb::{LeaderKey, LeaderResponse};
use tokio::sync::mpsc;
use tonic::Status;

use super::{
    contender_key, created_at, delete_op, existing, first_by_create, get_key_op, is_delete,
    prefix_end, prefix_of, put_op, revision, CleanupGuard, Client,
};

/// Proclaiming with a key that no longer leads.
const NOT_LEADER: &str = "election: not leader";
/// Asking for the leader of an election without candidates.
const NO_LEADER: &str = "election: no leader";
/// Proclaim or Resign without a leader key.
const MISSING_LEADER: &str = "\"leader\" field must be provided";

/// A campaign that was won.
#[derive(Debug)]
pub struct Elected {
    /// The header of the request that entered the candidate.
    pub header: Option<ResponseHeader>,
    pub leader: LeaderKey,
}

impl Client {
    /// Enters `lease` (a fresh 60 s lease if 0) as a candidate for `name` with
    /// `value` and waits until it leads. A candidate already in the race with
    /// that lease keeps its place, proclaiming `value` if it differs.
    pub async fn campaign(
        &self,
        name: &[u8],
        lease: i64,
        value: Vec<u8>,
    ) -> Result<Elected, Status> {
        let lease = self.session_lease(lease).await?;
        let prefix = prefix_of(name);
        let key = contender_key(&prefix, lease);
        let resp = self
            .txn(TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![put_op(&key, value.clone(), lease)],
                failure: vec![get_key_op(&key)],
            })
            .await?;
        let mut rev = revision(&resp.header);
        if !resp.succeeded {
            let kv = existing(&resp, 0)?;
            rev = kv.create_revision;
            if kv.value != value {
                match self.proclaim_txn(&key, rev, lease, value).await {
                    Ok(p) if p.succeeded => {}
                    // Our key is not the one entered at `rev` any more:
                    // there is nothing of ours to withdraw.
                    Ok(_) => return Err(Status::unknown(NOT_LEADER)),
                    Err(e) => {
                        let _ = self.resign_txn(&key, rev).await;
                        return Err(e);
                    }
                }
            }
        }

        // Withdraw if the client gives up while waiting; other failures leave
        // the candidate in place, as etcd does.
        let withdraw = {
            let c = self.clone();
            let key = key.clone();
            CleanupGuard::new(async move {
                let _ = c.resign_txn(&key, rev).await;
            })
        };
        let waited = self.wait_deletes(&prefix, rev - 1).await;
        withdraw.disarm();
        waited?;
        Ok(Elected {
            header: resp.header,
            leader: LeaderKey {
                name: name.to_vec(),
                key,
                rev,
                lease,
            },
        })
    }

    /// Sets the leader's value, if `leader` still leads.
    pub async fn proclaim(
        &self,
        leader: Option<LeaderKey>,
        value: Vec<u8>,
    ) -> Result<Option<ResponseHeader>, Status> {
        let leader = leader.ok_or_else(|| Status::unknown(MISSING_LEADER))?;
        // As etcd, a leader key without a lease gets a fresh one.
        let lease = self.session_lease(leader.lease).await?;
        let resp = self
            .proclaim_txn(&leader.key, leader.rev, lease, value)
            .await?;
        if !resp.succeeded {
            return Err(Status::unknown(NOT_LEADER));
        }
        Ok(resp.header)
    }

    /// Withdraws `leader` from its election, if it is still the candidate
    /// entered at its revision; answers the same either way, as etcd does.
    pub async fn resign(
        &self,
        leader: Option<LeaderKey>,
    ) -> Result<Option<ResponseHeader>, Status> {
        let leader = leader.ok_or_else(|| Status::unknown(MISSING_LEADER))?;
        // etcd opens a session for the leader's lease, granting one for 0.
        self.session_lease(leader.lease).await?;
        Ok(self.resign_txn(&leader.key, leader.rev).await?.header)
    }

    /// The current leader's key and value.
    pub async fn leader(&self, name: &[u8]) -> Result<LeaderResponse, Status> {
        let resp = self
            .range(first_by_create(&prefix_of(name), SortOrder::Ascend))
            .await?;
        match resp.kvs.into_iter().next() {
            Some(kv) => Ok(LeaderResponse {
                header: resp.header,
                kv: Some(kv),
            }),
            None => Err(Status::unknown(NO_LEADER)),
        }
    }

    /// Sends the leader of `name` and every value it proclaims, then the next
    /// leader, and so on, until the receiver goes or a request fails (then
    /// the stream just ends, as etcd's does).
    pub async fn observe(self, name: Vec<u8>, tx: mpsc::Sender<Result<LeaderResponse, Status>>) {
        tokio::select! {
            _ = tx.closed() => {}
            _ = self.observe_until_failure(&name, &tx) => {}
        }
    }

    async fn observe_until_failure(
        &self,
        name: &[u8],
        tx: &mpsc::Sender<Result<LeaderResponse, Status>>,
    ) -> Option<()> {
        let prefix = prefix_of(name);
        loop {
            let resp = self
                .range(first_by_create(&prefix, SortOrder::Ascend))
                .await
                .ok()?;
            let (header, kv) = match resp.kvs.into_iter().next() {
                Some(kv) => (resp.header, kv),
                None => self.first_put(&prefix, revision(&resp.header)).await?,
            };
            let from = revision(&header) + 1;
            let key = kv.key.clone();
            send(tx, header, kv).await?;
            // Every value the leader proclaims, until its key is deleted.
            let mut w = self.watch(&key, Vec::new(), from).ok()?;
            'leading: loop {
                let (rev, events) = w.next().await.ok()?;
                for e in events {
                    if is_delete(&e) {
                        break 'leading;
                    }
                    if let Some(kv) = e.kv {
                        send(tx, self.s.header(rev), kv).await?;
                    }
                }
            }
        }
    }

    /// With no candidate at revision `from`: the first key written under
    /// `prefix` since, with a header at its revision.
    async fn first_put(
        &self,
        prefix: &[u8],
        from: i64,
    ) -> Option<(Option<ResponseHeader>, KeyValue)> {
        let mut w = self.watch(prefix, prefix_end(prefix), from).ok()?;
        loop {
            let (_, events) = w.next().await.ok()?;
            // A delete would only start the wait over.
            if let Some(kv) = events
                .into_iter()
                .find(|e| !is_delete(e))
                .and_then(|e| e.kv)
            {
                return Some((self.s.header(kv.mod_revision), kv));
            }
        }
    }

    /// Writes `value` to `key` if it was created at `rev`.
    async fn proclaim_txn(
        &self,
        key: &[u8],
        rev: i64,
        lease: i64,
        value: Vec<u8>,
    ) -> Result<TxnResponse, Status> {
        self.txn(TxnRequest {
            compare: vec![created_at(key, rev)],
            success: vec![put_op(key, value, lease)],
            failure: Vec::new(),
        })
        .await
    }

    /// Deletes `key` if it was created at `rev`.
    async fn resign_txn(&self, key: &[u8], rev: i64) -> Result<TxnResponse, Status> {
        self.txn(TxnRequest {
            compare: vec![created_at(key, rev)],
            success: vec![delete_op(key)],
            failure: Vec::new(),
        })
        .await
    }
}

async fn send(
    tx: &mpsc::Sender<Result<LeaderResponse, Status>>,
    header: Option<ResponseHeader>,
    kv: KeyValue,
) -> Option<()> {
    tx.send(Ok(LeaderResponse {
        header,
        kv: Some(kv),
    }))
    .await
    .ok()
}
