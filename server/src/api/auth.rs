//! The Auth service. Every request but a login goes through the log as its
//! caller, and is checked there (admin rights, one's own user or roles).

use std::sync::Arc;

use ballast_proto::etcdserverpb::auth_server::Auth;
use ballast_proto::etcdserverpb::*;
use ballast_proto::internal::internal_request::Request;
use tonic::{Request as Req, Response, Status};

use crate::server::EtcdServer;

pub struct AuthService(pub Arc<EtcdServer>);

impl AuthService {
    /// Proposes the request made by `to_request` as the caller and answers
    /// with the applied result, header filled in.
    async fn answer<I, O>(
        &self,
        req: Req<I>,
        to_request: impl FnOnce(I) -> Request,
        header: impl FnOnce(&mut O) -> &mut Option<ResponseHeader>,
    ) -> Result<Response<O>, Status>
    where
        O: crate::server::FromApplied,
    {
        let who = self.0.caller(&req).await?;
        let mut resp: O = self
            .0
            .propose_for(&who, to_request(req.into_inner()))
            .await?;
        self.0.stamp(header(&mut resp));
        Ok(Response::new(resp))
    }
}

/// The Auth service: the methods that propose their request unchanged, listed
/// one per line, then the ones written out. (One macro makes the whole impl so
/// that `async_trait` sees every method expanded.)
macro_rules! auth_service {
    ($($method:ident, $span:literal, $req:ty, $resp:ty, $variant:ident;)* { $($written:tt)* }) => {
        #[tonic::async_trait]
        impl Auth for AuthService {
            $(
                #[tracing::instrument(name = $span, level = "debug", skip_all)]
                async fn $method(&self, req: Req<$req>) -> Result<Response<$resp>, Status> {
                    self.answer(req, Request::$variant, |r: &mut $resp| &mut r.header)
                        .await
                }
            )*
            $($written)*
        }
    };
}

auth_service! {
    auth_enable, "etcdserverpb.Auth/AuthEnable", AuthEnableRequest, AuthEnableResponse, AuthEnable;
    auth_disable, "etcdserverpb.Auth/AuthDisable", AuthDisableRequest, AuthDisableResponse, AuthDisable;
    auth_status, "etcdserverpb.Auth/AuthStatus", AuthStatusRequest, AuthStatusResponse, AuthStatus;
    user_get, "etcdserverpb.Auth/UserGet", AuthUserGetRequest, AuthUserGetResponse, UserGet;
    user_list, "etcdserverpb.Auth/UserList", AuthUserListRequest, AuthUserListResponse, UserList;
    user_delete, "etcdserverpb.Auth/UserDelete", AuthUserDeleteRequest, AuthUserDeleteResponse, UserDelete;
    user_grant_role, "etcdserverpb.Auth/UserGrantRole", AuthUserGrantRoleRequest, AuthUserGrantRoleResponse, UserGrantRole;
    user_revoke_role, "etcdserverpb.Auth/UserRevokeRole", AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse, UserRevokeRole;
    role_add, "etcdserverpb.Auth/RoleAdd", AuthRoleAddRequest, AuthRoleAddResponse, RoleAdd;
    role_get, "etcdserverpb.Auth/RoleGet", AuthRoleGetRequest, AuthRoleGetResponse, RoleGet;
    role_list, "etcdserverpb.Auth/RoleList", AuthRoleListRequest, AuthRoleListResponse, RoleList;
    role_delete, "etcdserverpb.Auth/RoleDelete", AuthRoleDeleteRequest, AuthRoleDeleteResponse, RoleDelete;
    role_grant_permission, "etcdserverpb.Auth/RoleGrantPermission", AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse, RoleGrantPermission;
    role_revoke_permission, "etcdserverpb.Auth/RoleRevokePermission", AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse, RoleRevokePermission;
    {
        #[tracing::instrument(name = "etcdserverpb.Auth/Authenticate", level = "debug", skip_all)]
        async fn authenticate(
            &self,
            req: Req<AuthenticateRequest>,
        ) -> Result<Response<AuthenticateResponse>, Status> {
            Ok(Response::new(self.0.authenticate(req.into_inner()).await?))
        }

        #[tracing::instrument(name = "etcdserverpb.Auth/UserAdd", level = "debug", skip_all)]
        async fn user_add(
            &self,
            req: Req<AuthUserAddRequest>,
        ) -> Result<Response<AuthUserAddResponse>, Status> {
            let who = self.0.caller(&req).await?;
            let request = self.0.user_add(req.into_inner()).await?;
            let mut resp: AuthUserAddResponse = self.0.propose_for(&who, request).await?;
            self.0.stamp(&mut resp.header);
            Ok(Response::new(resp))
        }

        #[tracing::instrument(name = "etcdserverpb.Auth/UserChangePassword", level = "debug", skip_all)]
        async fn user_change_password(
            &self,
            req: Req<AuthUserChangePasswordRequest>,
        ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
            let who = self.0.caller(&req).await?;
            let request = self.0.user_change_password(req.into_inner()).await?;
            let mut resp: AuthUserChangePasswordResponse = self.0.propose_for(&who, request).await?;
            self.0.stamp(&mut resp.header);
            Ok(Response::new(resp))
        }
    }
}
