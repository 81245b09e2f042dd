//! Replicating through Raft: proposals and membership changes wait until they are
//! applied; linearizable reads wait until everything committed before them is.

use std::time::Duration;

use ballast_proto::internal::{internal_request::Request, InternalRequest, RequestAuth};
use prost::Message;

use super::{applied::FromApplied, request_timeout, EtcdServer};
use crate::apply::Applied;
use crate::auth::AuthInfo;
use crate::cluster::Member;
use crate::error::EtcdError;

/// How long to wait for a ReadIndex answer before asking again.
const READ_INDEX_RETRY: Duration = Duration::from_millis(500);

impl EtcdServer {
    /// Replicates a request of the member's own (lease expiry, alarms,
    /// compaction) through Raft and waits until it is applied. Such requests
    /// carry no caller and pass every permission check.
    pub async fn propose(&self, request: Request) -> Result<Applied, EtcdError> {
        self.propose_request(None, request).await
    }

    /// Replicates a client's request; the apply checks its permissions as
    /// `who`, with the roles of that point of the log.
    pub async fn propose_as(&self, who: &AuthInfo, request: Request) -> Result<Applied, EtcdError> {
        let auth = RequestAuth {
            username: who.username.clone(),
            revision: who.revision,
        };
        self.propose_request(Some(auth), request).await
    }

    async fn propose_request(
        &self,
        auth: Option<RequestAuth>,
        request: Request,
    ) -> Result<Applied, EtcdError> {
        self.check_quota(&request).await?;
        let id = self.next_id();
        let data = InternalRequest {
            id,
            auth,
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
            let wait = self.wait.clone();
            let refused = Box::new(move |e: EtcdError| wait.trigger(id, Err(e)));
            self.raft.propose(data, refused)?;
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
                Ok(Ok(Ok(applied))) => {
                    Vec::<Member>::from_applied(applied).map_err(|_| EtcdError::Corrupt)
                }
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
}
