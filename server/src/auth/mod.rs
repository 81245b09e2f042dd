//! Authentication and authorization, as etcd's auth store: users with bcrypt
//! passwords, roles with key permissions, `root`, enable/disable, tokens, and
//! the auth revision that makes a token stale once users or roles change.
//!
//! Every change is a Raft entry applied on every member (see `admin`); the
//! state is persisted in the backend's `auth*` tables and mirrored in memory,
//! with each user's permissions merged ahead of time (see `perms`), because a
//! check runs on every request.

mod admin;
pub use admin::AuthAnswer;
pub mod perms;
pub mod token;

use std::collections::{BTreeMap, HashMap};

use ballast_proto::authpb::{Role, User};
use parking_lot::RwLock;
use prost::Message;
use redb::{ReadableTable, WriteTransaction};

use crate::error::{Error, EtcdError, Result};
use crate::mvcc::backend::{get_u64, put_u64, Backend, AUTH, AUTH_ROLES, AUTH_USERS};
pub use perms::Access;
use perms::UserPerms;
pub use token::Tokens;

pub const ROOT_USER: &str = "root";
pub use perms::ROOT_ROLE;

/// Keys of the `auth` table.
pub mod stored {
    pub const ENABLED: &str = "enabled";
    pub const REVISION: &str = "revision";
}
use stored as key;

/// Who sends a request, once their token (or certificate) was checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthInfo {
    pub username: String,
    /// The auth revision the credentials were checked at.
    pub revision: u64,
}

#[derive(Clone, Default)]
struct State {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    perms: HashMap<String, UserPerms>,
}

impl State {
    fn refresh_perms(&mut self) {
        self.perms = self
            .users
            .iter()
            .map(|(name, u)| (name.clone(), UserPerms::of(u, &self.roles)))
            .collect();
    }
}

pub struct AuthStore {
    state: RwLock<State>,
    pub tokens: Tokens,
    bcrypt_cost: u32,
}

impl AuthStore {
    pub fn load(backend: &Backend, tokens: Tokens, bcrypt_cost: u32) -> Result<AuthStore> {
        let bcrypt_cost = if (4..=31).contains(&bcrypt_cost) {
            bcrypt_cost
        } else {
            tracing::warn!(
                given_cost = bcrypt_cost,
                default_cost = bcrypt::DEFAULT_COST,
                "use default bcrypt cost instead of the invalid given cost"
            );
            bcrypt::DEFAULT_COST
        };
        let store = AuthStore {
            state: RwLock::new(read_state(backend)?),
            tokens,
            bcrypt_cost,
        };
        Ok(store)
    }

    /// Re-reads everything after the backend was replaced (a Raft snapshot).
    pub fn reload(&self, backend: &Backend) -> Result<()> {
        let fresh = read_state(backend)?;
        if !fresh.enabled {
            self.tokens.clear();
        }
        *self.state.write() = fresh;
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        self.state.read().enabled
    }

    pub fn revision(&self) -> u64 {
        self.state.read().revision
    }

    /// A password hashed for the log (base64 of bcrypt, as etcd 3.5 proposes
    /// it): members must not each hash with their own salt.
    pub fn hash_password(&self, password: &str) -> std::result::Result<String, Error> {
        use base64::Engine;
        let hash = bcrypt::hash(password, self.bcrypt_cost)
            .map_err(|e| Error::Other(format!("bcrypt: {e}")))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(hash))
    }

    /// Checks a login; returns the auth revision it was checked at. Slow by
    /// design (bcrypt): call it off the async threads.
    pub fn check_password(
        &self,
        name: &str,
        password: &str,
    ) -> std::result::Result<u64, EtcdError> {
        let (hash, revision) = {
            let st = self.state.read();
            if !st.enabled {
                return Err(EtcdError::AuthNotEnabled);
            }
            let user = st.users.get(name).ok_or(EtcdError::AuthFailed)?;
            if user.options.as_ref().is_some_and(|o| o.no_password) {
                return Err(EtcdError::NoPasswordUser);
            }
            (user.password.clone(), st.revision)
        };
        let hash = String::from_utf8(hash).map_err(|_| EtcdError::AuthFailed)?;
        match bcrypt::verify(password, &hash) {
            Ok(true) => Ok(revision),
            _ => {
                tracing::info!(user_name = name, "invalid password");
                Err(EtcdError::AuthFailed)
            }
        }
    }

    /// etcd's `isOpPermitted`: nothing is checked while auth is off. `who` is
    /// `None` for the member's own requests (lease expiry, alarms), which pass;
    /// a client without credentials is an empty [`AuthInfo`].
    pub fn check(
        &self,
        who: Option<&AuthInfo>,
        access: Access,
        key: &[u8],
        range_end: &[u8],
    ) -> std::result::Result<(), EtcdError> {
        let st = self.state.read();
        if !st.enabled {
            return Ok(());
        }
        let Some(who) = who else { return Ok(()) };
        if who.revision == 0 {
            return Err(EtcdError::UserEmpty);
        }
        if who.revision < st.revision {
            return Err(EtcdError::AuthOldRevision);
        }
        match st.perms.get(&who.username) {
            Some(p) if p.allows(access, key, range_end) => Ok(()),
            _ => Err(EtcdError::PermissionDenied),
        }
    }

    /// etcd's `IsAdminPermitted`: the caller holds the root role (`None`: the
    /// member itself).
    pub fn check_admin(&self, who: Option<&AuthInfo>) -> std::result::Result<(), EtcdError> {
        let st = self.state.read();
        if !st.enabled {
            return Ok(());
        }
        let Some(who) = who else { return Ok(()) };
        if who.username.is_empty() {
            return Err(EtcdError::UserEmpty);
        }
        match st.perms.get(&who.username) {
            None => Err(EtcdError::UserNotFound),
            Some(p) if p.is_root() => Ok(()),
            Some(_) => Err(EtcdError::PermissionDenied),
        }
    }

    /// Whether the user holds the role (a user may read its own roles).
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.state
            .read()
            .users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    /// Who a valid token belongs to, at which auth revision.
    pub fn token_info(&self, token: &str) -> Option<AuthInfo> {
        let info = self.tokens.info(token)?;
        Some(AuthInfo {
            username: info.username,
            revision: info.revision.unwrap_or_else(|| self.revision()),
        })
    }
}

fn read_state(backend: &Backend) -> Result<State> {
    let txn = backend.read()?;
    let meta = txn.open_table(AUTH)?;
    let mut st = State {
        enabled: get_u64(&meta, key::ENABLED)? == 1,
        // etcd starts counting at 1, so a request checked at revision 0 is one
        // that carried no credentials.
        revision: get_u64(&meta, key::REVISION)?.max(1),
        ..Default::default()
    };
    for item in txn.open_table(AUTH_USERS)?.iter()? {
        let (name, bytes) = item?;
        let user = User::decode(bytes.value())
            .map_err(|e| Error::Corrupt(format!("auth user {:?}: {e}", name.value())))?;
        st.users.insert(name.value().to_string(), user);
    }
    for item in txn.open_table(AUTH_ROLES)?.iter()? {
        let (name, bytes) = item?;
        let role = Role::decode(bytes.value())
            .map_err(|e| Error::Corrupt(format!("auth role {:?}: {e}", name.value())))?;
        st.roles.insert(name.value().to_string(), role);
    }
    st.refresh_perms();
    Ok(st)
}

/// Writes the whole auth state in the apply's transaction. Auth changes are
/// rare and small; rewriting everything keeps table and memory obviously equal.
fn write_state(txn: &WriteTransaction, st: &State) -> Result<()> {
    {
        let mut meta = txn.open_table(AUTH)?;
        put_u64(&mut meta, key::ENABLED, u64::from(st.enabled))?;
        put_u64(&mut meta, key::REVISION, st.revision)?;
    }
    let mut users = txn.open_table(AUTH_USERS)?;
    users.retain(|_, _| false)?;
    for (name, u) in &st.users {
        users.insert(name.as_str(), u.encode_to_vec().as_slice())?;
    }
    let mut roles = txn.open_table(AUTH_ROLES)?;
    roles.retain(|_, _| false)?;
    for (name, r) in &st.roles {
        roles.insert(name.as_str(), r.encode_to_vec().as_slice())?;
    }
    Ok(())
}
