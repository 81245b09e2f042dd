//! Leases: TTL-bound groups of keys. Grants and revocations go through Raft;
//! keep-alives and expiry timing live on the leader only, as in etcd.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::EtcdError;

/// etcd's upper bound on a lease TTL, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// How long to wait before proposing the revocation of an expired lease again.
const REVOKE_RETRY: Duration = Duration::from_secs(3);

struct Lease {
    ttl: i64,
    /// None while this member is not the leader: only the leader expires leases.
    expiry: Option<Instant>,
    keys: BTreeSet<Vec<u8>>,
    revoke_proposed: Option<Instant>,
}

struct Inner {
    leases: HashMap<i64, Lease>,
    primary: bool,
}

/// What TimeToLive reports.
pub struct LeaseInfo {
    pub granted_ttl: i64,
    pub remaining: i64,
    pub keys: Vec<Vec<u8>>,
}

pub struct Lessor {
    inner: Mutex<Inner>,
    /// Shortest TTL handed out: long enough to survive a leader election.
    min_ttl: i64,
}

impl Lessor {
    /// `min_ttl` follows etcd: 1.5 election timeouts, rounded up to seconds.
    pub fn new(election_timeout: Duration) -> Lessor {
        let min_ttl = (election_timeout.as_secs_f64() * 1.5).ceil().max(1.0) as i64;
        Lessor {
            inner: Mutex::new(Inner {
                leases: HashMap::new(),
                primary: false,
            }),
            min_ttl,
        }
    }

    /// The TTL a grant of `ttl` really gets.
    pub fn effective_ttl(&self, ttl: i64) -> i64 {
        ttl.max(self.min_ttl)
    }

    /// (Re)loads every lease from the backend, with the keys attached to them.
    pub fn load(
        &self,
        backend: &crate::mvcc::Backend,
        leased: Vec<crate::mvcc::store::LeasedKey>,
    ) -> crate::error::Result<()> {
        use redb::ReadableTable;
        self.inner.lock().leases.clear();
        let txn = backend.read()?;
        for item in txn.open_table(crate::mvcc::backend::LEASES)?.iter()? {
            let (id, ttl) = item?;
            self.restore(id.value(), ttl.value());
        }
        for lk in leased {
            self.move_key(&lk.key, 0, lk.lease);
        }
        Ok(())
    }

    /// Restores a lease from the backend at startup.
    pub fn restore(&self, id: i64, ttl: i64) {
        self.inner.lock().leases.insert(
            id,
            Lease {
                ttl,
                expiry: None,
                keys: BTreeSet::new(),
                revoke_proposed: None,
            },
        );
    }

    pub fn exists(&self, id: i64) -> bool {
        self.inner.lock().leases.contains_key(&id)
    }

    /// Applies a grant; the caller persists it.
    pub fn grant(&self, id: i64, ttl: i64) -> Result<i64, EtcdError> {
        let mut inner = self.inner.lock();
        if inner.leases.contains_key(&id) {
            return Err(EtcdError::LeaseExist);
        }
        let ttl = self.effective_ttl(ttl);
        let expiry = inner.primary.then(|| Instant::now() + secs(ttl));
        inner.leases.insert(
            id,
            Lease {
                ttl,
                expiry,
                keys: BTreeSet::new(),
                revoke_proposed: None,
            },
        );
        Ok(ttl)
    }

    /// Keys attached to a lease (to delete them when it is revoked).
    pub fn keys(&self, id: i64) -> Result<Vec<Vec<u8>>, EtcdError> {
        let inner = self.inner.lock();
        let lease = inner.leases.get(&id).ok_or(EtcdError::LeaseNotFound)?;
        Ok(lease.keys.iter().cloned().collect())
    }

    pub fn remove(&self, id: i64) {
        self.inner.lock().leases.remove(&id);
    }

    /// Records that `key` moved from lease `from` to lease `to` (0 = none).
    pub fn move_key(&self, key: &[u8], from: i64, to: i64) {
        let mut inner = self.inner.lock();
        if let Some(l) = inner.leases.get_mut(&from) {
            l.keys.remove(key);
        }
        if let Some(l) = inner.leases.get_mut(&to) {
            l.keys.insert(key.to_vec());
        }
    }

    /// A keep-alive: restarts the lease's clock. Leader only.
    pub fn renew(&self, id: i64) -> Result<i64, EtcdError> {
        let mut inner = self.inner.lock();
        if !inner.primary {
            return Err(EtcdError::NotLeader);
        }
        let lease = inner.leases.get_mut(&id).ok_or(EtcdError::LeaseNotFound)?;
        lease.expiry = Some(Instant::now() + secs(lease.ttl));
        Ok(lease.ttl)
    }

    pub fn time_to_live(&self, id: i64) -> Result<LeaseInfo, EtcdError> {
        let inner = self.inner.lock();
        let lease = inner.leases.get(&id).ok_or(EtcdError::LeaseNotFound)?;
        let remaining = match lease.expiry {
            Some(at) => at.saturating_duration_since(Instant::now()).as_secs() as i64,
            None => lease.ttl,
        };
        Ok(LeaseInfo {
            granted_ttl: lease.ttl,
            remaining,
            keys: lease.keys.iter().cloned().collect(),
        })
    }

    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.inner.lock().leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Becoming leader: every lease gets a full TTL from now, since the old
    /// leader's clock is unknown.
    pub fn promote(&self) {
        let mut inner = self.inner.lock();
        inner.primary = true;
        let now = Instant::now();
        for l in inner.leases.values_mut() {
            l.expiry = Some(now + secs(l.ttl));
            l.revoke_proposed = None;
        }
    }

    pub fn demote(&self) {
        let mut inner = self.inner.lock();
        inner.primary = false;
        for l in inner.leases.values_mut() {
            l.expiry = None;
        }
    }

    pub fn is_primary(&self) -> bool {
        self.inner.lock().primary
    }

    /// Expired leases whose revocation should be proposed now.
    pub fn take_expired(&self) -> Vec<i64> {
        let mut inner = self.inner.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        for (id, l) in inner.leases.iter_mut() {
            let expired = l.expiry.is_some_and(|e| e <= now);
            let retry_due = l
                .revoke_proposed
                .is_none_or(|t| now.duration_since(t) >= REVOKE_RETRY);
            if expired && retry_due {
                l.revoke_proposed = Some(now);
                out.push(*id);
            }
        }
        out
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_applies_minimum_and_rejects_duplicates() {
        let l = Lessor::new(Duration::from_millis(1000));
        assert_eq!(l.grant(1, 1), Ok(2));
        assert_eq!(l.grant(1, 10), Err(EtcdError::LeaseExist));
        assert_eq!(l.renew(1), Err(EtcdError::NotLeader));
        l.promote();
        assert_eq!(l.renew(1), Ok(2));
        assert_eq!(l.renew(7), Err(EtcdError::LeaseNotFound));
    }

    #[test]
    fn keys_follow_moves() {
        let l = Lessor::new(Duration::from_millis(1000));
        l.grant(1, 10).expect("grant");
        l.grant(2, 10).expect("grant");
        l.move_key(b"a", 0, 1);
        l.move_key(b"b", 0, 1);
        l.move_key(b"a", 1, 2);
        assert_eq!(l.keys(1), Ok(vec![b"b".to_vec()]));
        assert_eq!(l.time_to_live(2).map(|i| i.keys), Ok(vec![b"a".to_vec()]));
    }

    #[test]
    fn only_the_leader_expires() {
        let l = Lessor::new(Duration::from_millis(100));
        l.grant(1, 0).expect("grant");
        assert!(l.take_expired().is_empty());
        l.promote();
        // A zero-length lease would need time to pass; instead check the
        // revocation is proposed once and not repeated immediately.
        let mut inner = l.inner.lock();
        inner.leases.get_mut(&1).expect("lease").expiry = Some(Instant::now());
        drop(inner);
        assert_eq!(l.take_expired(), vec![1]);
        assert!(l.take_expired().is_empty());
    }
}
