//! Applying auth requests: the same on every member, in log order. Each change
//! bumps the auth revision (as etcd's `commitRevision`), which makes requests
//! checked at an older revision fail with "revision of auth store is old".

use ballast_proto::authpb::{Permission, Role, User, UserAddOptions};
use ballast_proto::etcdserverpb::{
    AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse, AuthRoleDeleteResponse,
    AuthRoleGetResponse, AuthRoleGrantPermissionResponse, AuthRoleListResponse,
    AuthRoleRevokePermissionResponse, AuthStatusResponse, AuthUserAddResponse,
    AuthUserChangePasswordResponse, AuthUserDeleteResponse, AuthUserGetResponse,
    AuthUserGrantRoleResponse, AuthUserListResponse, AuthUserRevokeRoleResponse,
    AuthenticateResponse,
};
use ballast_proto::internal::internal_request::Request;
use redb::WriteTransaction;

use super::perms::valid_permission_range;
use super::{write_state, AuthInfo, AuthStore, State, ROOT_ROLE, ROOT_USER};
use crate::error::{EtcdError, Result};

/// The answer to an applied auth request.
#[derive(Debug)]
pub enum AuthAnswer {
    Enable(AuthEnableResponse),
    Disable(AuthDisableResponse),
    Status(AuthStatusResponse),
    Authenticate(AuthenticateResponse),
    UserAdd(AuthUserAddResponse),
    UserGet(AuthUserGetResponse),
    UserList(AuthUserListResponse),
    UserDelete(AuthUserDeleteResponse),
    UserChangePassword(AuthUserChangePasswordResponse),
    UserGrantRole(AuthUserGrantRoleResponse),
    UserRevokeRole(AuthUserRevokeRoleResponse),
    RoleAdd(AuthRoleAddResponse),
    RoleGet(AuthRoleGetResponse),
    RoleList(AuthRoleListResponse),
    RoleDelete(AuthRoleDeleteResponse),
    RoleGrantPermission(AuthRoleGrantPermissionResponse),
    RoleRevokePermission(AuthRoleRevokePermissionResponse),
}

impl AuthStore {
    /// Applies an auth request, or gives it back if it is not one. `index` is
    /// the entry's: simple tokens are named after it.
    pub fn apply(
        &self,
        txn: &WriteTransaction,
        who: Option<&AuthInfo>,
        req: Request,
        index: u64,
    ) -> std::result::Result<Result<AuthAnswer>, Request> {
        use AuthAnswer as A;
        // etcd's needAdminPermission: everything but logins and one's own user or roles.
        let admin_only = matches!(
            req,
            Request::AuthEnable(_)
                | Request::AuthDisable(_)
                | Request::AuthStatus(_)
                | Request::UserAdd(_)
                | Request::UserDelete(_)
                | Request::UserChangePassword(_)
                | Request::UserGrantRole(_)
                | Request::UserRevokeRole(_)
                | Request::RoleAdd(_)
                | Request::RoleGrantPermission(_)
                | Request::RoleRevokePermission(_)
                | Request::RoleDelete(_)
                | Request::UserList(_)
                | Request::RoleList(_)
        );
        if admin_only {
            if let Err(e) = self.check_admin(who) {
                return Ok(Err(e.into()));
            }
        }
        let admin_or = |allowed: bool| match self.check_admin(who) {
            Err(e) if !allowed => Err(e),
            _ => Ok(()),
        };
        let name_of = |who: Option<&AuthInfo>| who.map(|w| w.username.clone()).unwrap_or_default();
        Ok(match req {
            Request::AuthEnable(_) => self.enable(txn).map(|()| A::Enable(Default::default())),
            Request::AuthDisable(_) => self.change(txn, |st| {
                if st.enabled {
                    st.enabled = false;
                    st.revision += 1;
                }
                Ok(A::Disable(Default::default()))
            }),
            Request::AuthStatus(_) => {
                let st = self.state.read();
                Ok(A::Status(AuthStatusResponse {
                    header: None,
                    enabled: st.enabled,
                    auth_revision: st.revision,
                }))
            }
            Request::Authenticate(r) => self.login(&r.name, &r.simple_token_prefix, index),
            Request::UserAdd(r) => self.change(txn, |st| {
                if r.name.is_empty() {
                    return Err(EtcdError::UserEmpty);
                }
                if st.users.contains_key(&r.name) {
                    return Err(EtcdError::UserAlreadyExist);
                }
                let options = r.options.unwrap_or(UserAddOptions { no_password: false });
                let password = if options.no_password {
                    Vec::new()
                } else {
                    decode_hash(&r.hashed_password)?
                };
                st.users.insert(
                    r.name.clone(),
                    User {
                        name: r.name.into_bytes(),
                        password,
                        roles: Vec::new(),
                        options: Some(options),
                    },
                );
                st.revision += 1;
                Ok(A::UserAdd(Default::default()))
            }),
            Request::UserGet(r) => {
                if let Err(e) = admin_or(name_of(who) == r.name) {
                    return Ok(Err(e.into()));
                }
                let st = self.state.read();
                match st.users.get(&r.name) {
                    Some(u) => Ok(A::UserGet(AuthUserGetResponse {
                        header: None,
                        roles: u.roles.clone(),
                    })),
                    None => Err(EtcdError::UserNotFound.into()),
                }
            }
            Request::UserList(_) => Ok(A::UserList(AuthUserListResponse {
                header: None,
                users: self.state.read().users.keys().cloned().collect(),
            })),
            Request::UserDelete(r) => {
                let res = self.change(txn, |st| {
                    if st.enabled && r.name == ROOT_USER {
                        return Err(EtcdError::InvalidAuthMgmt);
                    }
                    st.users.remove(&r.name).ok_or(EtcdError::UserNotFound)?;
                    st.revision += 1;
                    Ok(A::UserDelete(Default::default()))
                });
                if res.is_ok() {
                    self.tokens.invalidate_user(&r.name);
                    tracing::info!(user_name = r.name, "deleted a user");
                }
                res
            }
            Request::UserChangePassword(r) => {
                let res = self.change(txn, |st| {
                    let u = st.users.get_mut(&r.name).ok_or(EtcdError::UserNotFound)?;
                    if !u.options.as_ref().is_some_and(|o| o.no_password) {
                        u.password = decode_hash(&r.hashed_password)?;
                    }
                    st.revision += 1;
                    Ok(A::UserChangePassword(Default::default()))
                });
                if res.is_ok() {
                    self.tokens.invalidate_user(&r.name);
                }
                res
            }
            Request::UserGrantRole(r) => self.change(txn, |st| {
                if r.role != ROOT_ROLE && !st.roles.contains_key(&r.role) {
                    // The user is looked up first, as etcd does.
                    st.users.get(&r.user).ok_or(EtcdError::UserNotFound)?;
                    return Err(EtcdError::RoleNotFound);
                }
                let u = st.users.get_mut(&r.user).ok_or(EtcdError::UserNotFound)?;
                if u.roles.contains(&r.role) {
                    tracing::warn!(
                        user_name = r.user,
                        role = r.role,
                        "ignored grant role request to a user"
                    );
                    return Ok(A::UserGrantRole(Default::default()));
                }
                u.roles.push(r.role.clone());
                u.roles.sort();
                st.revision += 1;
                Ok(A::UserGrantRole(Default::default()))
            }),
            Request::UserRevokeRole(r) => self.change(txn, |st| {
                if st.enabled && r.name == ROOT_USER && r.role == ROOT_ROLE {
                    return Err(EtcdError::InvalidAuthMgmt);
                }
                let u = st.users.get_mut(&r.name).ok_or(EtcdError::UserNotFound)?;
                let before = u.roles.len();
                u.roles.retain(|x| *x != r.role);
                if u.roles.len() == before {
                    return Err(EtcdError::RoleNotGranted);
                }
                st.revision += 1;
                Ok(A::UserRevokeRole(Default::default()))
            }),
            Request::RoleAdd(r) => self.change(txn, |st| {
                if r.name.is_empty() {
                    return Err(EtcdError::RoleEmpty);
                }
                if st.roles.contains_key(&r.name) {
                    return Err(EtcdError::RoleAlreadyExist);
                }
                st.roles.insert(
                    r.name.clone(),
                    Role {
                        name: r.name.into_bytes(),
                        key_permission: Vec::new(),
                    },
                );
                st.revision += 1;
                Ok(A::RoleAdd(Default::default()))
            }),
            Request::RoleGet(r) => {
                if let Err(e) = admin_or(self.has_role(&name_of(who), &r.role)) {
                    return Ok(Err(e.into()));
                }
                let st = self.state.read();
                match st.roles.get(&r.role) {
                    // etcd shows the root role as readwrite on everything.
                    Some(_) if r.role == ROOT_ROLE => Ok(A::RoleGet(AuthRoleGetResponse {
                        header: None,
                        perm: vec![Permission {
                            perm_type: ballast_proto::authpb::permission::Type::Readwrite as i32,
                            key: Vec::new(),
                            range_end: vec![0],
                        }],
                    })),
                    Some(role) => Ok(A::RoleGet(AuthRoleGetResponse {
                        header: None,
                        perm: role.key_permission.clone(),
                    })),
                    None => Err(EtcdError::RoleNotFound.into()),
                }
            }
            Request::RoleList(_) => Ok(A::RoleList(AuthRoleListResponse {
                header: None,
                roles: self.state.read().roles.keys().cloned().collect(),
            })),
            Request::RoleDelete(r) => self.change(txn, |st| {
                if st.enabled && r.role == ROOT_ROLE {
                    return Err(EtcdError::InvalidAuthMgmt);
                }
                st.roles.remove(&r.role).ok_or(EtcdError::RoleNotFound)?;
                for u in st.users.values_mut() {
                    u.roles.retain(|x| *x != r.role);
                }
                st.revision += 1;
                Ok(A::RoleDelete(Default::default()))
            }),
            Request::RoleGrantPermission(r) => self.change(txn, |st| {
                let perm = r.perm.ok_or(EtcdError::PermissionNotGiven)?;
                if !valid_permission_range(&perm.key, &perm.range_end) {
                    return Err(EtcdError::InvalidAuthMgmt);
                }
                let role = st.roles.get_mut(&r.name).ok_or(EtcdError::RoleNotFound)?;
                let perms = &mut role.key_permission;
                match perms
                    .iter_mut()
                    .find(|p| p.key == perm.key && p.range_end == perm.range_end)
                {
                    Some(p) => p.perm_type = perm.perm_type,
                    None => {
                        perms.push(perm);
                        perms.sort_by(|a, b| a.key.cmp(&b.key));
                    }
                }
                st.revision += 1;
                Ok(A::RoleGrantPermission(Default::default()))
            }),
            Request::RoleRevokePermission(r) => self.change(txn, |st| {
                let role = st.roles.get_mut(&r.role).ok_or(EtcdError::RoleNotFound)?;
                let before = role.key_permission.len();
                role.key_permission
                    .retain(|p| p.key != r.key || p.range_end != r.range_end);
                if role.key_permission.len() == before {
                    return Err(EtcdError::PermissionNotGranted);
                }
                st.revision += 1;
                Ok(A::RoleRevokePermission(Default::default()))
            }),
            other => return Err(other),
        })
    }

    /// Turns auth on: only with a `root` user holding the `root` role, so an
    /// administrator can never lock everyone out. Enabling does not change the
    /// revision (as in etcd).
    fn enable(&self, txn: &WriteTransaction) -> Result<()> {
        self.change(txn, |st| {
            if st.enabled {
                tracing::info!("authentication is already enabled; ignored auth enable request");
                return Ok(());
            }
            let root = st.users.get(ROOT_USER).ok_or(EtcdError::RootUserNotExist)?;
            if !root.roles.iter().any(|r| r == ROOT_ROLE) {
                return Err(EtcdError::RootRoleNotExist);
            }
            st.enabled = true;
            tracing::info!("enabled authentication");
            Ok(())
        })
    }

    fn login(&self, name: &str, prefix: &str, index: u64) -> Result<AuthAnswer> {
        let (enabled, revision, exists) = {
            let st = self.state.read();
            let user = st.users.get(name);
            let usable = user.is_some_and(|u| !u.options.as_ref().is_some_and(|o| o.no_password));
            (st.enabled, st.revision, usable)
        };
        if !enabled {
            return Err(EtcdError::AuthNotEnabled.into());
        }
        if !exists {
            return Err(EtcdError::AuthFailed.into());
        }
        // A member that may only verify JWTs hands out nothing; etcd fails the same way.
        let token = self
            .tokens
            .assign(name, prefix, index, revision)
            .ok_or(EtcdError::AuthFailed)?;
        Ok(AuthAnswer::Authenticate(AuthenticateResponse {
            header: None,
            token,
        }))
    }

    /// Runs `f` on a copy of the state; on success, persists it in `txn` and
    /// makes it current. A refused request changes nothing.
    fn change<T>(
        &self,
        txn: &WriteTransaction,
        f: impl FnOnce(&mut State) -> std::result::Result<T, EtcdError>,
    ) -> Result<T> {
        let mut st = self.state.write();
        let mut next = st.clone();
        let out = f(&mut next)?;
        next.refresh_perms();
        write_state(txn, &next)?;
        if st.enabled && !next.enabled {
            self.tokens.clear();
            tracing::info!("disabled authentication");
        }
        *st = next;
        Ok(out)
    }
}

/// The bcrypt hash the proposer made, as etcd 3.5 puts it in the log (base64).
fn decode_hash(hashed: &str) -> std::result::Result<Vec<u8>, EtcdError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(hashed)
        .map_err(|_| EtcdError::AuthFailed)
}
