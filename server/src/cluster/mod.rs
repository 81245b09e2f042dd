//! Cluster membership: who the members are, their names and URLs.

pub mod join;
pub mod reconfig;

use std::collections::BTreeMap;

use ballast_proto::etcdserverpb::Member as PbMember;
use parking_lot::RwLock;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::error::{Error, EtcdError, Result};
use crate::mvcc::backend::{Backend, MEMBERS};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl Member {
    pub fn to_pb(&self) -> PbMember {
        PbMember {
            id: self.id,
            name: self.name.clone(),
            peer_ur_ls: self.peer_urls.clone(),
            client_ur_ls: self.client_urls.clone(),
            is_learner: self.is_learner,
        }
    }
}

/// Members as the API lists them, back into records.
pub fn from_pb(members: &[PbMember]) -> Vec<Member> {
    members
        .iter()
        .map(|m| Member {
            id: m.id,
            name: m.name.clone(),
            peer_urls: m.peer_ur_ls.clone(),
            client_urls: m.client_ur_ls.clone(),
            is_learner: m.is_learner,
        })
        .collect()
}

/// What a membership change carries in its Raft entry: the member record
/// and the ID of the request waiting for it (0 at bootstrap).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfChangeContext {
    pub request_id: u64,
    pub member: Member,
    /// A learner becoming a voter (etcd's `IsPromote`): checked when applied,
    /// since the learner may have been removed or promoted meanwhile.
    #[serde(default)]
    pub promote: bool,
}

impl ConfChangeContext {
    /// The context of a committed change; `None` for changes without one
    /// (--force-new-cluster's removals).
    pub fn decode(bytes: &[u8]) -> Option<ConfChangeContext> {
        serde_json::from_slice(bytes).ok()
    }

    /// The encoded contexts of a new cluster's members, by ID, as the bootstrap entries of
    /// its log carry them (a first start and a restore with `--initial-cluster` alike).
    pub fn bootstrap(initial: &[Member]) -> Result<Vec<(u64, Vec<u8>)>> {
        initial
            .iter()
            .map(|m| {
                let ctx = ConfChangeContext {
                    request_id: 0,
                    member: m.clone(),
                    promote: false,
                };
                serde_json::to_vec(&ctx)
                    .map(|c| (m.id, c))
                    .map_err(|e| Error::Other(e.to_string()))
            })
            .collect()
    }
}

#[derive(Default)]
pub struct Members {
    members: RwLock<BTreeMap<u64, Member>>,
}

impl Members {
    pub fn load(backend: &Backend) -> Result<Members> {
        let txn = backend.read()?;
        let t = txn.open_table(MEMBERS)?;
        let mut members = BTreeMap::new();
        for item in t.iter()? {
            let (k, v) = item?;
            let m: Member = serde_json::from_slice(v.value())
                .map_err(|e| Error::Corrupt(format!("member {:x}: {e}", k.value())))?;
            members.insert(k.value(), m);
        }
        Ok(Members {
            members: RwLock::new(members),
        })
    }

    /// Re-reads the member table after the backend was replaced.
    pub fn reload(&self, backend: &Backend) -> Result<()> {
        let fresh = Members::load(backend)?;
        *self.members.write() = fresh.members.into_inner();
        Ok(())
    }

    /// Records members (bootstrap, or this member's own attributes).
    pub fn save(&self, backend: &Backend, list: Vec<Member>) -> Result<()> {
        let txn = backend.write(true)?;
        {
            let mut t = txn.open_table(MEMBERS)?;
            for m in &list {
                let json = serde_json::to_vec(m).map_err(|e| Error::Other(e.to_string()))?;
                t.insert(m.id, json.as_slice())?;
            }
        }
        txn.commit()?;
        let mut members = self.members.write();
        for m in list {
            members.insert(m.id, m);
        }
        Ok(())
    }

    /// Applies a member's published name and client URLs inside an apply batch.
    pub fn set_attributes(
        &self,
        txn: &redb::WriteTransaction,
        id: u64,
        name: &str,
        client_urls: &[String],
    ) -> Result<()> {
        let mut members = self.members.write();
        let Some(m) = members.get_mut(&id) else {
            return Ok(());
        };
        m.name = name.to_string();
        m.client_urls = client_urls.to_vec();
        let json = serde_json::to_vec(&*m).map_err(|e| Error::Other(e.to_string()))?;
        txn.open_table(MEMBERS)?.insert(id, json.as_slice())?;
        Ok(())
    }

    /// Adds or replaces a member inside an apply batch.
    pub fn upsert(&self, txn: &redb::WriteTransaction, m: Member) -> Result<()> {
        let json = serde_json::to_vec(&m).map_err(|e| Error::Other(e.to_string()))?;
        txn.open_table(MEMBERS)?.insert(m.id, json.as_slice())?;
        self.members.write().insert(m.id, m);
        Ok(())
    }

    /// Replaces a member's peer URLs inside an apply batch (etcdctl member
    /// update), with etcd's checks at this point of the log: the member may
    /// have been removed, or its new URLs taken, since the request was made.
    pub fn update_peer_urls(
        &self,
        txn: &redb::WriteTransaction,
        id: u64,
        urls: &[String],
    ) -> Result<std::result::Result<Member, EtcdError>> {
        let mut members = self.members.write();
        if !members.contains_key(&id) {
            return Ok(Err(EtcdError::MemberNotFound));
        }
        let taken = members
            .values()
            .any(|m| m.id != id && m.peer_urls.iter().any(|u| urls.contains(u)));
        if taken {
            return Ok(Err(EtcdError::PeerUrlExist));
        }
        let Some(m) = members.get_mut(&id) else {
            return Ok(Err(EtcdError::MemberNotFound));
        };
        m.peer_urls = urls.to_vec();
        let json = serde_json::to_vec(&*m).map_err(|e| Error::Other(e.to_string()))?;
        txn.open_table(MEMBERS)?.insert(id, json.as_slice())?;
        Ok(Ok(m.clone()))
    }

    pub fn remove(&self, txn: &redb::WriteTransaction, id: u64) -> Result<()> {
        txn.open_table(MEMBERS)?.remove(id)?;
        self.members.write().remove(&id);
        Ok(())
    }

    pub fn get(&self, id: u64) -> Option<Member> {
        self.members.read().get(&id).cloned()
    }

    pub fn list(&self) -> Vec<Member> {
        self.members.read().values().cloned().collect()
    }

    pub fn ids(&self) -> Vec<u64> {
        self.members.read().keys().copied().collect()
    }
}
