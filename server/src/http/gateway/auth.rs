//! The `/v3/auth/*` paths, routed to any implementation of the Auth service
//! (the gateway does no authentication of its own: the service sees the
//! request's token in its metadata, as from a gRPC client).

use std::sync::Arc;

use axum::routing::MethodRouter;
use ballast_proto::etcdserverpb::auth_server::Auth;
use tonic::Status;

use super::unary::unary;
use super::Gw;

/// The Auth paths of etcd 3.5/3.6 (3.4 lacks `/auth/status`), relative to `/v3`.
const PATHS: [&str; 17] = [
    "/auth/enable",
    "/auth/disable",
    "/auth/status",
    "/auth/authenticate",
    "/auth/user/add",
    "/auth/user/get",
    "/auth/user/list",
    "/auth/user/delete",
    "/auth/user/changepw",
    "/auth/user/grant",
    "/auth/user/revoke",
    "/auth/role/add",
    "/auth/role/get",
    "/auth/role/list",
    "/auth/role/delete",
    "/auth/role/grant",
    "/auth/role/revoke",
];

/// Each Auth path calling the matching method of `svc`.
pub fn table<A: Auth + ?Sized>(gw: Gw, svc: Arc<A>) -> Vec<(&'static str, MethodRouter)> {
    let routes = [
        unary!(gw, svc, Auth::auth_enable),
        unary!(gw, svc, Auth::auth_disable),
        unary!(gw, svc, Auth::auth_status),
        unary!(gw, svc, Auth::authenticate),
        unary!(gw, svc, Auth::user_add),
        unary!(gw, svc, Auth::user_get),
        unary!(gw, svc, Auth::user_list),
        unary!(gw, svc, Auth::user_delete),
        unary!(gw, svc, Auth::user_change_password),
        unary!(gw, svc, Auth::user_grant_role),
        unary!(gw, svc, Auth::user_revoke_role),
        unary!(gw, svc, Auth::role_add),
        unary!(gw, svc, Auth::role_get),
        unary!(gw, svc, Auth::role_list),
        unary!(gw, svc, Auth::role_delete),
        unary!(gw, svc, Auth::role_grant_permission),
        unary!(gw, svc, Auth::role_revoke_permission),
    ];
    PATHS.into_iter().zip(routes).collect()
}

/// The Auth paths when no Auth service exists: what a gRPC server without the
/// service answers (grpc-go's text), through the gateway.
pub fn unimplemented(gw: Gw) -> Vec<(&'static str, MethodRouter)> {
    PATHS
        .into_iter()
        .map(|path| {
            let route = axum::routing::post(move || async move {
                gw.dialect
                    .error(&Status::unimplemented("unknown service etcdserverpb.Auth"))
            });
            (path, route)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::gateway::dialect::Dialect;
    use axum::body::Body;
    use axum::http::Request;
    use ballast_proto::etcdserverpb::*;
    use tower::ServiceExt;

    /// An Auth service that fails every call with a status naming the method,
    /// the token it was given and the request, so the test sees what arrived.
    struct Echo;

    fn echo<T: std::fmt::Debug>(method: &str, req: &tonic::Request<T>) -> Status {
        let token = req
            .metadata()
            .get("token")
            .and_then(|t| t.to_str().ok())
            .unwrap_or("-");
        Status::permission_denied(format!("{method} token={token} {:?}", req.get_ref()))
    }

    macro_rules! echo_auth {
        ($($m:ident($q:ident) -> $p:ident;)*) => {
            #[tonic::async_trait]
            impl Auth for Echo {
                $(async fn $m(&self, req: tonic::Request<$q>) -> Result<tonic::Response<$p>, Status> {
                    Err(echo(stringify!($m), &req))
                })*
            }
        };
    }

    echo_auth! {
        auth_enable(AuthEnableRequest) -> AuthEnableResponse;
        auth_disable(AuthDisableRequest) -> AuthDisableResponse;
        auth_status(AuthStatusRequest) -> AuthStatusResponse;
        authenticate(AuthenticateRequest) -> AuthenticateResponse;
        user_add(AuthUserAddRequest) -> AuthUserAddResponse;
        user_get(AuthUserGetRequest) -> AuthUserGetResponse;
        user_list(AuthUserListRequest) -> AuthUserListResponse;
        user_delete(AuthUserDeleteRequest) -> AuthUserDeleteResponse;
        user_change_password(AuthUserChangePasswordRequest) -> AuthUserChangePasswordResponse;
        user_grant_role(AuthUserGrantRoleRequest) -> AuthUserGrantRoleResponse;
        user_revoke_role(AuthUserRevokeRoleRequest) -> AuthUserRevokeRoleResponse;
        role_add(AuthRoleAddRequest) -> AuthRoleAddResponse;
        role_get(AuthRoleGetRequest) -> AuthRoleGetResponse;
        role_list(AuthRoleListRequest) -> AuthRoleListResponse;
        role_delete(AuthRoleDeleteRequest) -> AuthRoleDeleteResponse;
        role_grant_permission(AuthRoleGrantPermissionRequest) -> AuthRoleGrantPermissionResponse;
        role_revoke_permission(AuthRoleRevokePermissionRequest) -> AuthRoleRevokePermissionResponse;
    }

    fn gw() -> Gw {
        Gw {
            dialect: Dialect::V1,
            max_message: 1 << 20,
        }
    }

    async fn post(
        app: &axum::Router,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let mut req = Request::post(path);
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn each_path_calls_its_method_with_the_callers_token() {
        let svc: Arc<dyn Auth> = Arc::new(Echo);
        let app = crate::http::gateway::with_table(gw(), table(gw(), svc));
        let expect = [
            ("/v3/auth/enable", "auth_enable"),
            ("/v3/auth/disable", "auth_disable"),
            ("/v3/auth/status", "auth_status"),
            ("/v3/auth/authenticate", "authenticate"),
            ("/v3/auth/user/add", "user_add"),
            ("/v3/auth/user/get", "user_get"),
            ("/v3/auth/user/list", "user_list"),
            ("/v3/auth/user/delete", "user_delete"),
            ("/v3/auth/user/changepw", "user_change_password"),
            ("/v3/auth/user/grant", "user_grant_role"),
            ("/v3/auth/user/revoke", "user_revoke_role"),
            ("/v3/auth/role/add", "role_add"),
            ("/v3/auth/role/get", "role_get"),
            ("/v3/auth/role/list", "role_list"),
            ("/v3/auth/role/delete", "role_delete"),
            ("/v3/auth/role/grant", "role_grant_permission"),
            ("/v3/auth/role/revoke", "role_revoke_permission"),
        ];
        for (path, method) in expect {
            let (status, body) = post(&app, path, Some("tok.42"), "{}").await;
            assert_eq!(status, 403, "{path}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let msg = v["message"].as_str().unwrap();
            assert!(
                msg.starts_with(&format!("{method} token=tok.42 ")),
                "{path}: {msg}"
            );
        }
        // The JSON request arrives decoded, and without a header there is no token.
        let (_, body) = post(
            &app,
            "/v3beta/auth/user/add",
            None,
            r#"{"name":"root","password":"pw","options":{"no_password":true}}"#,
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let msg = v["message"].as_str().unwrap();
        assert!(msg.starts_with("user_add token=- "), "{msg}");
        assert!(
            msg.contains(r#"name: "root""#) && msg.contains(r#"password: "pw""#),
            "{msg}"
        );
        assert!(msg.contains("no_password: true"), "{msg}");
    }

    #[tokio::test]
    async fn without_an_auth_service_the_paths_are_unimplemented() {
        let app = crate::http::gateway::with_table(gw(), unimplemented(gw()));
        let (status, body) = post(&app, "/v3/auth/authenticate", None, "{}").await;
        assert_eq!(status, 501);
        assert_eq!(
            body,
            r#"{"error":"unknown service etcdserverpb.Auth","code":12,"message":"unknown service etcdserverpb.Auth"}"#
        );
        let (status, _) = post(&app, "/v3/auth/nothere", None, "{}").await;
        assert_eq!(status, 404);
    }
}
