//! The Cluster service: membership changes go through Raft as conf changes.

use std::sync::Arc;

use ballast_proto::etcdserverpb::cluster_server::Cluster;
use ballast_proto::etcdserverpb::{
    Member as PbMember, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use raft::prelude::ConfChangeType;
use tonic::{Request, Response, Status};

use crate::cluster::Member;
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
            let ok = matches!(parsed.scheme(), "http" | "https")
                && parsed.host().is_some()
                && parsed.port().is_some();
            ok.then_some(parsed).ok_or(EtcdError::MemberBadUrls)
        })
        .collect()
}

fn pb(members: &[Member]) -> Vec<PbMember> {
    members.iter().map(Member::to_pb).collect()
}

/// Voters that have published themselves, i.e. started at least once.
fn started_voters(members: &[Member]) -> usize {
    members
        .iter()
        .filter(|m| !m.is_learner && !m.name.is_empty())
        .count()
}

/// etcd's rule: after the add, started voters must be a quorum, except
/// that a one-member cluster may always get a second member (the recovery
/// path after --force-new-cluster or a restore).
fn ready_to_add_voter(members: &[Member]) -> bool {
    let voters = members.iter().filter(|m| !m.is_learner).count();
    let started = started_voters(members);
    (started == 1 && voters == 1) || started >= quorum(voters + 1)
}

fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

impl ClusterService {
    fn header(&self) -> Option<ballast_proto::etcdserverpb::ResponseHeader> {
        self.0.header(self.0.store.current_revision())
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
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
        if self.0.cfg.strict_reconfig_check && !r.is_learner && !ready_to_add_voter(&members) {
            return Err(EtcdError::MemberNotEnoughStarted.into());
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
        let after = self.0.propose_conf_change(kind, member.clone()).await?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(member.to_pb()),
            members: pb(&after),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let id = req.into_inner().id;
        let members = self.0.members.list();
        let Some(member) = members.iter().find(|m| m.id == id).cloned() else {
            return Err(EtcdError::MemberNotFound.into());
        };
        if self.0.cfg.strict_reconfig_check && !member.is_learner {
            // What is left must still have a started quorum.
            let rest: Vec<Member> = members.iter().filter(|m| m.id != id).cloned().collect();
            let voters = rest.iter().filter(|m| !m.is_learner).count();
            if started_voters(&rest) < quorum(voters) {
                return Err(EtcdError::MemberNotEnoughStarted.into());
            }
        }
        let after = self
            .0
            .propose_conf_change(ConfChangeType::RemoveNode, member)
            .await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: pb(&after),
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
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
        // Re-adding in the same role changes nothing in Raft, only the record.
        let kind = if member.is_learner {
            ConfChangeType::AddLearnerNode
        } else {
            ConfChangeType::AddNode
        };
        let after = self.0.propose_conf_change(kind, member).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: pb(&after),
        }))
    }

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

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let id = req.into_inner().id;
        let Some(mut member) = self.0.members.get(id) else {
            return Err(EtcdError::MemberNotFound.into());
        };
        if !member.is_learner {
            return Err(EtcdError::MemberNotLearner.into());
        }
        // etcd: the learner's log must match at least 90% of the leader's.
        match self.0.raft.progress(id).await {
            Some((matched, committed))
                if matched.saturating_mul(10) >= committed.saturating_mul(9) => {}
            Some(_) => return Err(EtcdError::LearnerNotReady.into()),
            None => return Err(EtcdError::NotLeader.into()),
        }
        member.is_learner = false;
        let after = self
            .0
            .propose_conf_change(ConfChangeType::AddNode, member)
            .await?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members: pb(&after),
        }))
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

    #[test]
    fn started_quorum_counts_published_voters() {
        let m = |name: &str, learner| Member {
            id: 1,
            name: name.into(),
            peer_urls: vec![],
            client_urls: vec![],
            is_learner: learner,
        };
        let members = vec![m("a", false), m("", false), m("l", true)];
        assert_eq!(started_voters(&members), 1);
        assert_eq!(quorum(3), 2);
        assert!(ready_to_add_voter(&[m("a", false)]));
        assert!(!ready_to_add_voter(&[m("a", false), m("", false)]));
    }
}
