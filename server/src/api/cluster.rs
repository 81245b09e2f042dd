//! The Cluster service: adds, removals and promotions go through Raft as
//! membership changes (checked again when applied); peer URL updates are
//! ordinary entries. `--strict-reconfig-check` refuses changes that could
//! cost the quorum (see `cluster::reconfig`).

use std::sync::Arc;

use ballast_proto::etcdserverpb::cluster_server::Cluster;
use ballast_proto::etcdserverpb::{
    Member as PbMember, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use raft::prelude::ConfChangeType;
use tonic::{Request, Response, Status};

use crate::cluster::{reconfig, Member};
use crate::error::EtcdError;
use crate::raft::ids;
use crate::server::EtcdServer;

pub struct ClusterService(pub Arc<EtcdServer>);

/// etcd allows one learner at a time.
const MAX_LEARNERS: usize = 1;

fn parse_urls(urls: &[String]) -> Result<Vec<url::Url>, EtcdError> {
    if urls.is_empty() {
        return Err(EtcdError::MemberBadUrls);
    }
    urls.iter()
        .map(|u| {
            let parsed = url::Url::parse(u).map_err(|_| EtcdError::MemberBadUrls)?;
            // unix peer URLs name their socket by host and port (see listen::unix).
            let ok = matches!(parsed.scheme(), "http" | "https" | "unix" | "unixs")
                && parsed.host().is_some()
                && parsed.port().is_some();
            ok.then_some(parsed).ok_or(EtcdError::MemberBadUrls)
        })
        .collect()
}

fn pb(members: &[Member]) -> Vec<PbMember> {
    members.iter().map(Member::to_pb).collect()
}

impl ClusterService {
    /// etcd's `ClusterServer.header`: cluster and member IDs and the term, but no
    /// revision (membership is not part of the key space).
    fn header(&self) -> Option<ballast_proto::etcdserverpb::ResponseHeader> {
        self.0.header(0)
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    #[tracing::instrument(
        name = "etcdserverpb.Cluster/MemberAdd",
        level = "debug",
        skip_all,
        fields(
            peer_urls = req.get_ref().peer_ur_ls.len(),
            learner = req.get_ref().is_learner,
        )
    )]
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        // Membership changes are for holders of the root role (etcd 3.5).
        self.0.check_admin(&self.0.caller(&req).await?)?;
        let r = req.into_inner();
        let urls = parse_urls(&r.peer_ur_ls)?;
        let url_strings: Vec<String> = urls.iter().map(ids::url_string).collect();
        let members = self.0.members.list();
        if members
            .iter()
            .any(|m| m.peer_urls.iter().any(|u| url_strings.contains(u)))
        {
            return Err(EtcdError::PeerUrlExist.into());
        }
        if r.is_learner && members.iter().filter(|m| m.is_learner).count() >= MAX_LEARNERS {
            return Err(EtcdError::TooManyLearners.into());
        }
        if self.0.cfg.strict_reconfig_check {
            let net = |id| self.0.transport.active_since(id);
            reconfig::may_add(
                &members,
                r.is_learner,
                self.0.member_id,
                &net,
                std::time::Instant::now(),
            )?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let id = ids::member_id_at(&urls, &self.0.cfg.initial_cluster_token, now);
        if members.iter().any(|m| m.id == id) {
            return Err(EtcdError::MemberExist.into());
        }
        let member = Member {
            id,
            name: String::new(),
            peer_urls: url_strings,
            client_urls: Vec::new(),
            is_learner: r.is_learner,
        };
        let kind = if r.is_learner {
            ConfChangeType::AddLearnerNode
        } else {
            ConfChangeType::AddNode
        };
        let after = self
            .0
            .propose_conf_change(kind, member.clone(), false)
            .await?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(member.to_pb()),
            members: pb(&after),
        }))
    }

    #[tracing::instrument(
        name = "etcdserverpb.Cluster/MemberRemove",
        level = "debug",
        skip_all,
        fields(member_id = req.get_ref().id)
    )]
    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        // Membership changes are for holders of the root role (etcd 3.5).
        self.0.check_admin(&self.0.caller(&req).await?)?;
        let id = req.into_inner().id;
        let members = self.0.members.list();
        let Some(member) = members.iter().find(|m| m.id == id).cloned() else {
            return Err(EtcdError::MemberNotFound.into());
        };
        if self.0.cfg.strict_reconfig_check {
            let net = |id| self.0.transport.active_since(id);
            reconfig::may_remove(
                &members,
                id,
                self.0.member_id,
                &net,
                std::time::Instant::now(),
            )?;
        }
        let after = self
            .0
            .propose_conf_change(ConfChangeType::RemoveNode, member, false)
            .await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: pb(&after),
        }))
    }

    #[tracing::instrument(
        name = "etcdserverpb.Cluster/MemberUpdate",
        level = "debug",
        skip_all,
        fields(
            member_id = req.get_ref().id,
            peer_urls = req.get_ref().peer_ur_ls.len(),
        )
    )]
    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        // Checked for the root role when applied (etcd 3.5 checks membership changes).
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let urls = parse_urls(&r.peer_ur_ls)?;
        let Some(mut member) = self.0.members.get(r.id) else {
            return Err(EtcdError::MemberNotFound.into());
        };
        let url_strings: Vec<String> = urls.iter().map(ids::url_string).collect();
        let taken = self
            .0
            .members
            .list()
            .iter()
            .any(|m| m.id != r.id && m.peer_urls.iter().any(|u| url_strings.contains(u)));
        if taken {
            return Err(EtcdError::PeerUrlExist.into());
        }
        member.peer_urls = url_strings;
        let after = self.0.member_update(&who, member).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: pb(&after),
        }))
    }

    #[tracing::instrument(
        name = "etcdserverpb.Cluster/MemberList",
        level = "debug",
        skip_all,
        fields(linearizable = req.get_ref().linearizable)
    )]
    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if req.into_inner().linearizable {
            self.0.linearize().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: pb(&self.0.members.list()),
        }))
    }

    #[tracing::instrument(
        name = "etcdserverpb.Cluster/MemberPromote",
        level = "debug",
        skip_all,
        fields(member_id = req.get_ref().id)
    )]
    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        // Membership changes are for holders of the root role (etcd 3.5).
        self.0.check_admin(&self.0.caller(&req).await?)?;
        let id = req.into_inner().id;
        let members = match promote_here(&self.0, id).await {
            Err(EtcdError::NotLeader) => forward_promote(&self.0, id).await?,
            other => other?,
        };
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members: pb(&members),
        }))
    }
}

/// Promotes a learner if this member leads (only the leader knows whether
/// the learner has caught up); `NotLeader` otherwise.
///
/// The checks come in etcd's order: whether the member has caught up comes
/// before whether it is a learner at all (etcd looks at the latter only when
/// applying), so a voter that lags, e.g. one added but never started, is
/// refused as "not in sync", as etcd refuses it.
pub async fn promote_here(s: &EtcdServer, id: u64) -> Result<Vec<Member>, EtcdError> {
    let Some(member) = s.members.get(id) else {
        return Err(EtcdError::MemberNotFound);
    };
    // etcd: the learner's log must match at least 90% of the leader's.
    match s.raft.progress(id).await {
        None => return Err(EtcdError::NotLeader),
        Some((Some(matched), committed))
            if matched.saturating_mul(10) < committed.saturating_mul(9) =>
        {
            return Err(EtcdError::LearnerNotReady)
        }
        // Not tracked by Raft: the check when applied answers.
        Some(_) => {}
    }
    if !member.is_learner {
        return Err(EtcdError::MemberNotLearner);
    }
    if s.cfg.strict_reconfig_check {
        reconfig::may_promote(&s.members.list())?;
    }
    s.propose_conf_change(ConfChangeType::AddNode, member, true)
        .await
}

/// A follower hands `member promote` to the leader over the peer port, as
/// etcd does, retrying while leadership moves.
async fn forward_promote(s: &EtcdServer, id: u64) -> Result<Vec<Member>, Status> {
    let retry = [
        EtcdError::NotLeader,
        EtcdError::NoLeader,
        EtcdError::LeaderChanged,
        EtcdError::Stopped,
    ]
    .map(|e| e.to_string());
    let deadline = tokio::time::Instant::now() + s.request_timeout();
    loop {
        let answer = match s.leader_client().await {
            Ok(mut leader) => leader.member_promote(MemberPromoteRequest { id }).await,
            Err(e) => Err(e.into()),
        };
        match answer {
            Ok(r) => return Ok(crate::cluster::from_pb(&r.into_inner().members)),
            // etcd's own errors (learner not ready, not found, ...) are final.
            Err(st)
                if st.message().starts_with("etcdserver: ")
                    && !retry.iter().any(|m| m == st.message()) =>
            {
                return Err(st)
            }
            Err(st) => tracing::debug!("forwarding member promote to the leader: {st}"),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(EtcdError::Timeout.into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_must_be_http_with_host_and_port() {
        assert!(parse_urls(&["http://10.0.0.4:2380".into()]).is_ok());
        assert_eq!(parse_urls(&[]).err(), Some(EtcdError::MemberBadUrls));
        assert_eq!(
            parse_urls(&["10.0.0.4:2380".into()]).err(),
            Some(EtcdError::MemberBadUrls)
        );
        assert_eq!(
            parse_urls(&["ftp://10.0.0.4:2380".into()]).err(),
            Some(EtcdError::MemberBadUrls)
        );
    }
}
