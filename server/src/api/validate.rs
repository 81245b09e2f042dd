//! Request checks etcd makes before a request reaches Raft.

use std::collections::HashSet;

use ballast_proto::etcdserverpb::request_op::Request as Op;
use ballast_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};

use crate::error::EtcdError;
use crate::mvcc::index::in_range;

pub fn range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

pub fn put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

pub fn delete_range(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

pub fn txn(t: &TxnRequest, max_ops: usize) -> Result<(), EtcdError> {
    let ops = t.compare.len().max(t.success.len()).max(t.failure.len());
    if ops > max_ops {
        return Err(EtcdError::TooManyOps);
    }
    // As etcd: a nested txn gets what its parent leaves of the limit.
    let inner_limit = max_ops - ops;
    for c in &t.compare {
        if c.key.is_empty() {
            return Err(EtcdError::EmptyKey);
        }
    }
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(Op::RequestRange(r)) => range(r)?,
            Some(Op::RequestPut(p)) => put(p)?,
            Some(Op::RequestDeleteRange(d)) => delete_range(d)?,
            Some(Op::RequestTxn(inner)) => txn(inner, inner_limit)?,
            None => {}
        }
    }
    writes(&t.success)?;
    writes(&t.failure)?;
    Ok(())
}

/// Keys written by one branch (nested txns included): no key may be put
/// twice or both put and deleted, as etcd requires.
#[derive(Default)]
struct Writes {
    puts: HashSet<Vec<u8>>,
    deletes: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Writes {
    fn deleted(&self, key: &[u8]) -> bool {
        self.deletes.iter().any(|(k, e)| in_range(key, k, e))
    }

    fn absorb(&mut self, other: Writes) -> Result<(), EtcdError> {
        for k in &other.puts {
            if self.puts.contains(k) || self.deleted(k) {
                return Err(EtcdError::DuplicateKey);
            }
        }
        for (k, e) in &other.deletes {
            if self.puts.iter().any(|p| in_range(p, k, e)) {
                return Err(EtcdError::DuplicateKey);
            }
        }
        self.puts.extend(other.puts);
        self.deletes.extend(other.deletes);
        Ok(())
    }
}

fn writes(ops: &[ballast_proto::etcdserverpb::RequestOp]) -> Result<Writes, EtcdError> {
    let mut w = Writes::default();
    for op in ops {
        match &op.request {
            Some(Op::RequestPut(p)) => {
                let mut one = Writes::default();
                one.puts.insert(p.key.clone());
                w.absorb(one)?;
            }
            Some(Op::RequestDeleteRange(d)) => {
                let mut one = Writes::default();
                one.deletes.push((d.key.clone(), d.range_end.clone()));
                w.absorb(one)?;
            }
            Some(Op::RequestTxn(inner)) => {
                // Only one branch of the inner txn runs; each must fit with ours.
                let s = writes(&inner.success)?;
                let f = writes(&inner.failure)?;
                let mut both = Writes::default();
                both.puts
                    .extend(s.puts.iter().cloned().chain(f.puts.iter().cloned()));
                both.deletes.extend(s.deletes.into_iter().chain(f.deletes));
                w.absorb(both)?;
            }
            _ => {}
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_proto::etcdserverpb::RequestOp;

    fn put_op(k: &str) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }

    fn del_op(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn duplicate_puts_and_put_inside_delete_are_rejected() {
        let t = TxnRequest {
            success: vec![put_op("a"), put_op("a")],
            ..Default::default()
        };
        assert_eq!(txn(&t, 128), Err(EtcdError::DuplicateKey));
        let t = TxnRequest {
            success: vec![del_op("a", "c"), put_op("b")],
            ..Default::default()
        };
        assert_eq!(txn(&t, 128), Err(EtcdError::DuplicateKey));
        let t = TxnRequest {
            success: vec![put_op("a")],
            failure: vec![put_op("a")],
            ..Default::default()
        };
        assert_eq!(txn(&t, 128), Ok(()));
        let t = TxnRequest {
            success: vec![del_op("a", "c"), del_op("b", "d")],
            ..Default::default()
        };
        assert_eq!(txn(&t, 128), Ok(()));
    }

    #[test]
    fn limits_and_empty_keys() {
        let t = TxnRequest {
            success: vec![put_op("a"), put_op("b")],
            ..Default::default()
        };
        assert_eq!(txn(&t, 1), Err(EtcdError::TooManyOps));
        assert_eq!(put(&PutRequest::default()), Err(EtcdError::EmptyKey));
        let p = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(put(&p), Err(EtcdError::ValueProvided));
    }
}
