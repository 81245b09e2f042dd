//! Auth tokens, as `--auth-token` chooses: `simple` (random, kept in memory on
//! every member, forgotten after `--auth-token-ttl` of disuse) or
//! `jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...` (signed, carrying the
//! user and the auth revision, checked by signature alone).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// What a valid token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub username: String,
    /// The auth revision the token was issued at; `None` for simple tokens,
    /// which are checked against the current one.
    pub revision: Option<u64>,
}

pub enum Tokens {
    Simple(SimpleTokens),
    Jwt(Box<JwtTokens>),
}

/// A bad `--auth-token` value: the member refuses to start, as etcd does.
#[derive(Debug, thiserror::Error)]
#[error("invalid --auth-token {option:?}: {reason}")]
pub struct TokenOptionError {
    option: String,
    reason: String,
}

impl Tokens {
    pub fn from_option(option: &str, simple_ttl: Duration) -> Result<Tokens, TokenOptionError> {
        let err = |reason: String| TokenOptionError {
            option: option.to_string(),
            reason,
        };
        let mut parts = option.split(',');
        let kind = parts.next().unwrap_or_default();
        let mut opts = HashMap::new();
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                return Err(err(format!("option {p:?} is not key=value")));
            };
            opts.insert(k.to_string(), v.to_string());
        }
        match kind {
            "simple" => Ok(Tokens::Simple(SimpleTokens::new(simple_ttl))),
            "jwt" => JwtTokens::new(&opts)
                .map(|j| Tokens::Jwt(Box::new(j)))
                .map_err(err),
            other => Err(err(format!(
                "unknown token type {other:?}; use 'simple' or 'jwt,pub-key=...,priv-key=...,sign-method=...'"
            ))),
        }
    }
}

/// Simple tokens: `<16 letters>.<raft index>`. Every member learns a token when
/// it applies the login, so the random part is chosen by the proposer.
pub struct SimpleTokens {
    ttl: Duration,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl SimpleTokens {
    fn new(ttl: Duration) -> Self {
        SimpleTokens {
            ttl,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn new_prefix() -> String {
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut rng = rand::rng();
        (0..16)
            .map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char)
            .collect()
    }

    pub fn assign(&self, username: &str, prefix: &str, index: u64) -> String {
        let token = format!("{prefix}.{index}");
        let now = Instant::now();
        let mut tokens = self.tokens.lock();
        tokens.retain(|_, (_, deadline)| *deadline > now);
        tokens.insert(token.clone(), (username.to_string(), now + self.ttl));
        token
    }

    /// The token's user; a use keeps the token alive for another TTL.
    pub fn info(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut tokens = self.tokens.lock();
        let (user, deadline) = tokens.get_mut(token)?;
        if *deadline <= now {
            tokens.remove(token);
            return None;
        }
        *deadline = now + self.ttl;
        Some(user.clone())
    }

    /// The raft index a simple token was issued at: a member must have applied
    /// it before it can know the token.
    pub fn index_of(token: &str) -> Option<u64> {
        let (_, index) = token.split_once('.')?;
        index.parse().ok()
    }

    fn invalidate_user(&self, username: &str) {
        self.tokens.lock().retain(|_, (u, _)| u != username);
    }

    fn clear(&self) {
        self.tokens.lock().clear();
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

pub struct JwtTokens {
    alg: Algorithm,
    ttl: Duration,
    /// None when only a public key was given: this member verifies, never signs.
    sign: Option<EncodingKey>,
    verify: DecodingKey,
    /// Built once: every request with a token is checked against it.
    validation: Validation,
}

impl JwtTokens {
    fn new(opts: &HashMap<String, String>) -> Result<JwtTokens, String> {
        let ttl = match opts.get("ttl") {
            Some(t) => humantime::parse_duration(t).map_err(|e| format!("ttl {t:?}: {e}"))?,
            None => Duration::from_secs(300),
        };
        let method = opts.get("sign-method").map(String::as_str).unwrap_or("");
        let alg: Algorithm = method.parse().map_err(|_| {
            format!("sign-method {method:?} is not a JWT signing method (e.g. RS256, ES256, HS256)")
        })?;
        let read = |name: &str| -> Result<Option<Vec<u8>>, String> {
            match opts.get(name) {
                None => Ok(None),
                Some(path) => std::fs::read(path)
                    .map(Some)
                    .map_err(|e| format!("cannot read {name} {path}: {e}")),
            }
        };
        let public = read("pub-key")?;
        let private = read("priv-key")?;
        let bad = |what: &str, e: jsonwebtoken::errors::Error| format!("{what}: {e}");
        let (sign, verify) = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret = private.ok_or("an HMAC sign-method needs priv-key (the secret)")?;
                (
                    Some(EncodingKey::from_secret(&secret)),
                    DecodingKey::from_secret(&secret),
                )
            }
            _ => {
                let public = public.ok_or(
                    "pub-key is required (the member verifies tokens with it; priv-key signs them)",
                )?;
                let rsa = !matches!(alg, Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA);
                let verify = if rsa {
                    DecodingKey::from_rsa_pem(&public).map_err(|e| bad("pub-key", e))?
                } else if alg == Algorithm::EdDSA {
                    DecodingKey::from_ed_pem(&public).map_err(|e| bad("pub-key", e))?
                } else {
                    DecodingKey::from_ec_pem(&public).map_err(|e| bad("pub-key", e))?
                };
                let sign = match private {
                    None => None,
                    Some(p) if rsa => {
                        Some(EncodingKey::from_rsa_pem(&p).map_err(|e| bad("priv-key", e))?)
                    }
                    Some(p) if alg == Algorithm::EdDSA => {
                        Some(EncodingKey::from_ed_pem(&p).map_err(|e| bad("priv-key", e))?)
                    }
                    Some(p) => Some(EncodingKey::from_ec_pem(&p).map_err(|e| bad("priv-key", e))?),
                };
                (sign, verify)
            }
        };
        let mut validation = Validation::new(alg);
        validation.leeway = 0;
        validation.required_spec_claims = ["exp".to_string()].into_iter().collect();
        Ok(JwtTokens {
            alg,
            ttl,
            sign,
            verify,
            validation,
        })
    }

    fn assign(&self, username: &str, revision: u64) -> Option<String> {
        let key = self.sign.as_ref()?;
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            + self.ttl;
        let claims = Claims {
            username: username.to_string(),
            revision,
            exp: exp.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(self.alg), &claims, key).ok()
    }

    fn info(&self, token: &str) -> Option<TokenInfo> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.verify, &self.validation).ok()?;
        Some(TokenInfo {
            username: data.claims.username,
            revision: Some(data.claims.revision),
        })
    }
}

impl Tokens {
    /// A token for a user whose password the proposer checked; `None` when
    /// this member cannot sign (a JWT public key only).
    pub fn assign(
        &self,
        username: &str,
        prefix: &str,
        index: u64,
        revision: u64,
    ) -> Option<String> {
        match self {
            Tokens::Simple(s) => Some(s.assign(username, prefix, index)),
            Tokens::Jwt(j) => j.assign(username, revision),
        }
    }

    pub fn info(&self, token: &str) -> Option<TokenInfo> {
        match self {
            Tokens::Simple(s) => s.info(token).map(|username| TokenInfo {
                username,
                revision: None,
            }),
            Tokens::Jwt(j) => j.info(token),
        }
    }

    /// A deleted user or a changed password ends the user's sessions.
    pub fn invalidate_user(&self, username: &str) {
        if let Tokens::Simple(s) = self {
            s.invalidate_user(username);
        }
    }

    /// Disabling auth ends every session.
    pub fn clear(&self) {
        if let Tokens::Simple(s) = self {
            s.clear();
        }
    }

    pub fn is_simple(&self) -> bool {
        matches!(self, Tokens::Simple(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_tokens_name_their_index_and_expire_unused() {
        let t = Tokens::from_option("simple", Duration::ZERO).expect("simple");
        let token = t
            .assign("alice", &SimpleTokens::new_prefix(), 42, 1)
            .expect("token");
        assert_eq!(SimpleTokens::index_of(&token), Some(42));
        assert_eq!(token.split_once('.').map(|(p, _)| p.len()), Some(16));
        // A TTL of zero: gone at once.
        assert_eq!(t.info(&token), None);
    }

    #[test]
    fn simple_tokens_end_with_their_user() {
        let t = Tokens::from_option("simple", Duration::from_secs(300)).expect("simple");
        let a = t.assign("alice", "A", 1, 1).expect("token");
        let b = t.assign("bob", "B", 2, 1).expect("token");
        assert_eq!(t.info(&a).map(|i| i.username), Some("alice".into()));
        t.invalidate_user("alice");
        assert_eq!(t.info(&a), None);
        assert_eq!(t.info(&b).map(|i| i.username), Some("bob".into()));
        t.clear();
        assert_eq!(t.info(&b), None);
    }

    #[test]
    fn jwt_with_a_shared_secret_round_trips_and_refuses_other_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("secret");
        let other = dir.path().join("other");
        std::fs::write(&key, b"s3cret").expect("write");
        std::fs::write(&other, b"another").expect("write");
        let opt =
            |p: &std::path::Path| format!("jwt,priv-key={},sign-method=HS256,ttl=1m", p.display());
        let t = Tokens::from_option(&opt(&key), Duration::ZERO).expect("jwt");
        let token = t.assign("alice", "", 0, 7).expect("token");
        assert_eq!(
            t.info(&token),
            Some(TokenInfo {
                username: "alice".into(),
                revision: Some(7)
            })
        );
        let stranger = Tokens::from_option(&opt(&other), Duration::ZERO).expect("jwt");
        assert_eq!(stranger.info(&token), None);
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        let table = [
            ("kerberos", "unknown token type"),
            ("jwt,sign-method=RS256", "pub-key is required"),
            ("jwt,sign-method=XX1", "not a JWT signing method"),
            ("jwt,priv-key", "is not key=value"),
            ("jwt,sign-method=HS256", "needs priv-key"),
        ];
        for (option, want) in table {
            let e = Tokens::from_option(option, Duration::ZERO)
                .err()
                .unwrap_or_else(|| panic!("{option} accepted"));
            assert!(e.to_string().contains(want), "{option}: {e}");
        }
    }
}
