//! Who is calling, and the Auth service's requests. A caller is named by a
//! token in the `token` (or `authorization`) metadata, or, with
//! `--client-cert-auth`, by the common name of its client certificate.

use ballast_proto::etcdserverpb::{
    AuthUserAddRequest, AuthUserChangePasswordRequest, AuthenticateRequest, AuthenticateResponse,
};
use ballast_proto::internal::internal_request::Request;
use ballast_proto::internal::InternalAuthenticate;
use tonic::Status;

use super::applied::FromApplied;
use super::requests::unexpected;
use super::EtcdServer;
use crate::auth::token::SimpleTokens;
use crate::auth::AuthInfo;
use crate::error::EtcdError;

/// The common name of the connection's verified client certificate, in each
/// request's extensions (as `ConnectInfo`) on TLS listeners.
#[derive(Debug, Clone)]
pub struct ClientCommonName(pub Option<String>);

impl EtcdServer {
    /// The caller of a request. Without credentials, an empty caller: while
    /// auth is enabled, every check refuses it with "user name is empty".
    pub async fn caller<T>(&self, req: &tonic::Request<T>) -> Result<AuthInfo, Status> {
        if !self.auth.enabled() {
            return Ok(AuthInfo::default());
        }
        let md = req.metadata();
        let token = md
            .get("token")
            .or_else(|| md.get("authorization"))
            .map(|v| {
                v.to_str()
                    .map_err(|_| Status::from(EtcdError::InvalidAuthToken))
            });
        if let Some(token) = token {
            let token = token?;
            let token = token.strip_prefix("Bearer ").unwrap_or(token);
            if self.auth.tokens.is_simple() {
                // A token handed out through another member is known here once
                // its login is applied here.
                if let Some(index) = SimpleTokens::index_of(token) {
                    if self.applied_index() < index {
                        let _ = self.wait_applied(index).await;
                    }
                }
            }
            return self.auth.token_info(token).ok_or_else(|| {
                tracing::warn!("invalid auth token");
                EtcdError::InvalidAuthToken.into()
            });
        }
        if self.cfg.client_tls.client_cert_auth {
            let cn = req
                .extensions()
                .get::<axum::extract::ConnectInfo<ClientCommonName>>()
                .and_then(|info| info.0 .0.clone());
            if let Some(cn) = cn {
                return Ok(AuthInfo {
                    username: cn,
                    revision: self.auth.revision(),
                });
            }
        }
        Ok(AuthInfo::default())
    }

    /// Refuses anyone but a holder of the root role (while auth is enabled).
    pub fn check_admin(&self, who: &AuthInfo) -> Result<(), Status> {
        Ok(self.auth.check_admin(Some(who))?)
    }

    /// etcd 3.5's check before a TimeToLive lists a lease's keys: a known
    /// caller who may read every one of them.
    pub fn check_lease_keys_readable(&self, who: &AuthInfo, lease: i64) -> Result<(), Status> {
        if !self.auth.enabled() {
            return Ok(());
        }
        if who.username.is_empty() {
            return Err(EtcdError::UserEmpty.into());
        }
        for key in self.lessor.keys(lease).unwrap_or_default() {
            self.auth
                .check(Some(who), crate::auth::Access::Read, &key, &[])?;
        }
        Ok(())
    }

    /// Checks the password here (bcrypt, off the async threads), then has the
    /// token handed out through the log so every member knows it. A change of
    /// users meanwhile makes the check stale: then it is made again.
    pub async fn authenticate(
        &self,
        r: AuthenticateRequest,
    ) -> Result<AuthenticateResponse, Status> {
        self.linearize().await?;
        loop {
            let auth = self.auth.clone();
            let (name, password) = (r.name.clone(), r.password.clone());
            let checked =
                tokio::task::spawn_blocking(move || auth.check_password(&name, &password))
                    .await
                    .map_err(|e| Status::internal(format!("password check failed: {e}")))?;
            let checked = match checked {
                Ok(rev) => rev,
                Err(e) => {
                    if e != EtcdError::AuthNotEnabled {
                        tracing::warn!(user = r.name, error = %e, "invalid authentication was requested");
                    }
                    return Err(e.into());
                }
            };
            let login = Request::Authenticate(InternalAuthenticate {
                name: r.name.clone(),
                simple_token_prefix: SimpleTokens::new_prefix(),
            });
            let applied = self.propose(login).await?;
            let mut resp = AuthenticateResponse::from_applied(applied).map_err(unexpected)?;
            if checked == self.auth.revision() {
                self.stamp(&mut resp.header);
                return Ok(resp);
            }
            tracing::info!("revision when password checked became stale; retrying");
        }
    }

    /// Hashes the password before it enters the log, as etcd 3.5 does: the
    /// members must store the same hash, and the log no password.
    pub async fn user_add(&self, mut r: AuthUserAddRequest) -> Result<Request, Status> {
        if !r.options.as_ref().is_some_and(|o| o.no_password) {
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        }
        Ok(Request::UserAdd(r))
    }

    pub async fn user_change_password(
        &self,
        mut r: AuthUserChangePasswordRequest,
    ) -> Result<Request, Status> {
        if !r.password.is_empty() {
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        }
        Ok(Request::UserChangePassword(r))
    }

    async fn hash(&self, password: String) -> Result<String, Status> {
        let auth = self.auth.clone();
        tokio::task::spawn_blocking(move || auth.hash_password(&password))
            .await
            .map_err(|e| Status::internal(format!("password hashing failed: {e}")))?
            .map_err(|e| Status::internal(e.to_string()))
    }
}
