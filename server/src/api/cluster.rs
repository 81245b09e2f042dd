//! The Cluster service. Membership changes come with multi-member support;
//! a single member answers MemberList.

use std::sync::Arc;

use ballast_proto::etcdserverpb::cluster_server::Cluster;
use ballast_proto::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use crate::server::EtcdServer;

pub struct ClusterService(pub Arc<EtcdServer>);

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!(
        "ballast: {what} is not supported yet (single-member server)"
    ))
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(not_yet("member add"))
    }

    async fn member_remove(
        &self,
        _: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(not_yet("member remove"))
    }

    async fn member_update(
        &self,
        _: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(not_yet("member update"))
    }

    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if req.into_inner().linearizable {
            self.0.linearize().await?;
        }
        let members = self.0.members.list().iter().map(|m| m.to_pb()).collect();
        Ok(Response::new(MemberListResponse {
            header: self.0.header(self.0.store.current_revision()),
            members,
        }))
    }

    async fn member_promote(
        &self,
        _: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(not_yet("member promote"))
    }
}
