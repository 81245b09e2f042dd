//! What kind of request a log entry carries, by name, for the span around its
//! apply (never its contents).

use ballast_proto::internal::{internal_request::Request, InternalRequest};
use raft::prelude::Entry;

/// The span one committed entry is applied in.
pub(super) fn apply_span(e: &Entry, kind: &'static str) -> tracing::Span {
    tracing::debug_span!("apply", index = e.index, term = e.term, kind)
}

/// The request's name, as in the internal proto (`put`, `txn`, `lease_grant`, ...).
pub(super) fn of(req: &InternalRequest) -> &'static str {
    let Some(request) = &req.request else {
        return "empty";
    };
    match request {
        Request::Put(_) => "put",
        Request::DeleteRange(_) => "delete_range",
        Request::Txn(_) => "txn",
        Request::Compaction(_) => "compaction",
        Request::LeaseGrant(_) => "lease_grant",
        Request::LeaseRevoke(_) => "lease_revoke",
        Request::Alarm(_) => "alarm",
        Request::LeaseCheckpoint(_) => "lease_checkpoint",
        Request::AuthEnable(_) => "auth_enable",
        Request::Authenticate(_) => "authenticate",
        Request::AuthDisable(_) => "auth_disable",
        Request::UserAdd(_) => "user_add",
        Request::UserDelete(_) => "user_delete",
        Request::UserChangePassword(_) => "user_change_password",
        Request::UserGrantRole(_) => "user_grant_role",
        Request::UserRevokeRole(_) => "user_revoke_role",
        Request::RoleAdd(_) => "role_add",
        Request::RoleDelete(_) => "role_delete",
        Request::RoleGrantPermission(_) => "role_grant_permission",
        Request::RoleRevokePermission(_) => "role_revoke_permission",
        Request::AuthStatus(_) => "auth_status",
        Request::UserGet(_) => "user_get",
        Request::UserList(_) => "user_list",
        Request::RoleGet(_) => "role_get",
        Request::RoleList(_) => "role_list",
        Request::MemberAttributes(_) => "member_attributes",
        Request::MemberUpdate(_) => "member_update",
    }
}
