//! Which applied result answers which request: the one place that turns the apply
//! thread's [`Applied`] back into a typed response.

use ballast_proto::etcdserverpb::{
    AlarmResponse, AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse,
    AuthRoleDeleteResponse, AuthRoleGetResponse, AuthRoleGrantPermissionResponse,
    AuthRoleListResponse, AuthRoleRevokePermissionResponse, AuthStatusResponse,
    AuthUserAddResponse, AuthUserChangePasswordResponse, AuthUserDeleteResponse,
    AuthUserGetResponse, AuthUserGrantRoleResponse, AuthUserListResponse,
    AuthUserRevokeRoleResponse, AuthenticateResponse, CompactionResponse, DeleteRangeResponse,
    LeaseGrantResponse, LeaseRevokeResponse, PutResponse, TxnResponse,
};

use crate::apply::Applied;
use crate::auth::AuthAnswer;
use crate::cluster::Member;

/// A typed answer to a proposal, taken out of what applying it produced.
pub trait FromApplied: Sized {
    /// The answer, or the applied result back if it is of another kind (the
    /// caller decides which error that is).
    fn from_applied(applied: Applied) -> Result<Self, Applied>;
}

macro_rules! from_applied {
    ($($variant:ident => $answer:ty),* $(,)?) => {$(
        impl FromApplied for $answer {
            fn from_applied(applied: Applied) -> Result<Self, Applied> {
                match applied {
                    Applied::$variant(answer) => Ok(answer),
                    other => Err(other),
                }
            }
        }
    )*};
}

from_applied!(
    Put => PutResponse,
    DeleteRange => DeleteRangeResponse,
    Txn => TxnResponse,
    Compaction => CompactionResponse,
    LeaseGrant => LeaseGrantResponse,
    LeaseRevoke => LeaseRevokeResponse,
    Alarm => AlarmResponse,
    Members => Vec<Member>,
);

/// Auth answers come wrapped in [`AuthAnswer`].
macro_rules! from_auth_answer {
    ($($variant:ident => $answer:ty),* $(,)?) => {$(
        impl FromApplied for $answer {
            fn from_applied(applied: Applied) -> Result<Self, Applied> {
                match applied {
                    Applied::Auth(AuthAnswer::$variant(answer)) => Ok(answer),
                    other => Err(other),
                }
            }
        }
    )*};
}

from_auth_answer!(
    Enable => AuthEnableResponse,
    Disable => AuthDisableResponse,
    Status => AuthStatusResponse,
    Authenticate => AuthenticateResponse,
    UserAdd => AuthUserAddResponse,
    UserGet => AuthUserGetResponse,
    UserList => AuthUserListResponse,
    UserDelete => AuthUserDeleteResponse,
    UserChangePassword => AuthUserChangePasswordResponse,
    UserGrantRole => AuthUserGrantRoleResponse,
    UserRevokeRole => AuthUserRevokeRoleResponse,
    RoleAdd => AuthRoleAddResponse,
    RoleGet => AuthRoleGetResponse,
    RoleList => AuthRoleListResponse,
    RoleDelete => AuthRoleDeleteResponse,
    RoleGrantPermission => AuthRoleGrantPermissionResponse,
    RoleRevokePermission => AuthRoleRevokePermissionResponse,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_taken_only_from_its_own_kind() {
        let put = PutResponse::from_applied(Applied::Put(PutResponse::default()));
        assert!(put.is_ok());
        let members = Vec::<Member>::from_applied(Applied::Members(Vec::new()));
        assert!(members.is_ok_and(|m| m.is_empty()));
        // Another kind comes back unchanged, for the caller's error.
        let wrong = PutResponse::from_applied(Applied::Done);
        assert!(matches!(wrong, Err(Applied::Done)));
        let wrong = TxnResponse::from_applied(Applied::Put(PutResponse::default()));
        assert!(matches!(wrong, Err(Applied::Put(_))));
    }
}
