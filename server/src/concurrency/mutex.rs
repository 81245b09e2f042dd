//! The lock recipe (etcd's `concurrency.Mutex`): a contender's key under
//! `<name>/`; the oldest key holds the lock, the others wait in create order.

use ballast_proto::etcdserverpb::range_request::SortOrder;
use ballast_proto::etcdserverpb::{RangeRequest, ResponseHeader, TxnRequest};
use tonic::Status;

use super::{
    contender_key, created_at, existing, first_by_create, get_key_op, get_op, prefix_of, put_op,
    range_kvs, revision, CleanupGuard, Client,
};

/// What a waiter whose own key vanished (its lease expired) while it waited
/// gets: the lock is not its. etcd 3.6's text; etcd 3.4 did not check.
const SESSION_EXPIRED: &str = "mutex: session is expired";

/// A lock that is held.
#[derive(Debug)]
pub struct Locked {
    /// The header of the request that made it ours.
    pub header: Option<ResponseHeader>,
    /// The key that holds it; deleting it (or its lease expiring) releases it.
    pub key: Vec<u8>,
}

impl Client {
    /// Acquires lock `name` for `lease` (a fresh 60 s lease if 0), waiting as
    /// long as it takes. A holder asking again gets its own key back.
    pub async fn lock(&self, name: &[u8], lease: i64) -> Result<Locked, Status> {
        let lease = self.session_lease(lease).await?;
        let prefix = prefix_of(name);
        let key = contender_key(&prefix, lease);
        // One round trip: join the queue (or find our key from before) and
        // see who is first.
        let holder = get_op(first_by_create(&prefix, SortOrder::Ascend));
        let resp = self
            .txn(TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![put_op(&key, Vec::new(), lease), holder.clone()],
                failure: vec![get_key_op(&key), holder],
            })
            .await?;
        let my_rev = if resp.succeeded {
            revision(&resp.header)
        } else {
            existing(&resp, 0)?.create_revision
        };
        let first = range_kvs(&resp, 1).first();
        if first.is_none_or(|kv| kv.create_revision == my_rev) {
            return Ok(Locked {
                header: resp.header,
                key,
            });
        }

        // Leave the queue if the client gives up while waiting.
        let leave = {
            let c = self.clone();
            let key = key.clone();
            CleanupGuard::new(async move {
                let _ = c.delete(key).await;
            })
        };
        let waited = async {
            self.wait_deletes(&prefix, my_rev - 1).await?;
            // Our key must still be there: its lease may have expired meanwhile.
            self.range(RangeRequest {
                key: key.clone(),
                ..Default::default()
            })
            .await
        }
        .await;
        leave.disarm();
        match waited {
            Ok(resp) if resp.kvs.is_empty() => Err(Status::unknown(SESSION_EXPIRED)),
            Ok(resp) => Ok(Locked {
                header: resp.header,
                key,
            }),
            Err(e) => {
                let _ = self.delete(key).await;
                Err(e)
            }
        }
    }
}
