//! The member's own key, made in the pod and never copied out of it.
//!
//! A StatefulSet gives every pod the same template, so Secrets mounted from it would hand
//! each pod the keys of all members. Instead the sidecar makes the member's key on the
//! member's own volume (so a restart needs nobody), shows its public half at
//! `GET /identity`, and takes the server and peer certificates the operator signs for it at
//! `PUT /identity`. The server starts only once both are installed.
//!
//! A certificate is installed only if the cluster's CA signed it for this key, for this
//! member (its name as CN, its DNS name) and for its slot (the server certificate names
//! `127.0.0.1`, which the sidecar dials, and not the peer Service; the peer certificate names
//! the peer Service, which peers require), and it is valid now and not older than a right
//! one it replaces. So whoever can reach the port can at most hand the member again a
//! certificate the operator made for that very place; swapping the two, or offering
//! another member's, is refused. A certificate already installed that fails these checks
//! (say, after a rename) counts as absent.

use std::path::{Path, PathBuf};

use rcgen::{KeyPair, PublicKeyData};
use serde::{Deserialize, Serialize};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::error::Error;

/// The member's private key (PKCS#8 PEM), for both its server and peer certificates.
pub const KEY_FILE: &str = "member.key";
/// The certificate clients check.
pub const SERVER_CERT_FILE: &str = "server.crt";
/// The certificate peers check.
pub const PEER_CERT_FILE: &str = "peer.crt";

/// `GET /identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The member key's public half (SubjectPublicKeyInfo, PEM).
    pub public_key: String,
    /// The installed server certificate, if any.
    pub server: Option<String>,
    /// The installed peer certificate, if any.
    pub peer: Option<String>,
}

/// `PUT /identity`: both certificates, signed by the cluster's CA for the member's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub server: String,
    pub peer: String,
}

/// The names a member's certificates must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The member's name: the CN of both certificates.
    pub member: String,
    /// The member's DNS name under the headless Service: in both.
    pub member_dns: String,
    /// The headless Service's own name: in the peer certificate only (peers require it).
    pub peer_service_dns: String,
}

/// Which of the two certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Server,
    Peer,
}

/// The member's key and where its certificates go.
pub struct Identity {
    dir: PathBuf,
    ca_file: PathBuf,
    expected: Expected,
    spki_der: Vec<u8>,
    public_key_pem: String,
    installed: tokio::sync::Notify,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Reads the member's key from `dir`, making one on first start. `ca_file` is the CA
    /// whose signature a certificate must carry.
    pub fn load_or_create(
        dir: &Path,
        ca_file: &Path,
        expected: Expected,
    ) -> Result<Identity, Error> {
        let key_path = dir.join(KEY_FILE);
        let key = match std::fs::read_to_string(&key_path) {
            Ok(pem) => KeyPair::from_pem(&pem).map_err(|e| {
                Error::Other(format!(
                    "{}: not a usable private key ({e}); delete it and the certificates beside it, and the operator signs new ones",
                    key_path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyPair::generate()
                    .map_err(|e| Error::Other(format!("making the member key: {e}")))?;
                create_private_dir(dir)?;
                write_atomically(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
                tracing::info!(path = %key_path.display(), "made the member's key");
                key
            }
            Err(e) => return Err(Error::io(format!("reading {}", key_path.display()), e)),
        };
        Ok(Identity {
            dir: dir.to_path_buf(),
            ca_file: ca_file.to_path_buf(),
            expected,
            spki_der: key.subject_public_key_info(),
            public_key_pem: key.public_key_pem(),
            installed: tokio::sync::Notify::new(),
        })
    }

    /// What `GET /identity` shows.
    pub fn report(&self) -> Report {
        let read = |file| std::fs::read_to_string(self.dir.join(file)).ok();
        Report {
            public_key: self.public_key_pem.clone(),
            server: read(SERVER_CERT_FILE),
            peer: read(PEER_CERT_FILE),
        }
    }

    /// Whether both certificates are installed and usable now.
    pub fn complete(&self, now: i64) -> bool {
        let Ok(ca) = std::fs::read_to_string(&self.ca_file) else {
            return false;
        };
        [
            (SERVER_CERT_FILE, Slot::Server),
            (PEER_CERT_FILE, Slot::Peer),
        ]
        .iter()
        .all(|(file, slot)| {
            std::fs::read_to_string(self.dir.join(file))
                .ok()
                .is_some_and(|pem| self.check(&pem, &ca, now, *slot).is_ok())
        })
    }

    /// Waits until a `PUT /identity` installs something, or `timeout` passes.
    pub async fn wait_for_install(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.installed.notified()).await;
    }

    /// Installs `grant` after checking both certificates; the reason it is refused otherwise.
    pub fn install(&self, grant: &Grant, now: i64) -> Result<(), String> {
        let ca = std::fs::read_to_string(&self.ca_file)
            .map_err(|e| format!("cannot read the CA {}: {e}", self.ca_file.display()))?;
        for (what, file, pem, slot) in [
            ("server", SERVER_CERT_FILE, &grant.server, Slot::Server),
            ("peer", PEER_CERT_FILE, &grant.peer, Slot::Peer),
        ] {
            let offered = self
                .check(pem, &ca, now, slot)
                .map_err(|e| format!("{what} certificate: {e}"))?;
            let current = std::fs::read_to_string(self.dir.join(file))
                .ok()
                .and_then(|pem| self.check(&pem, &ca, now, slot).ok());
            if current.is_some_and(|c| c > offered) {
                return Err(format!(
                    "{what} certificate: expires before the one installed"
                ));
            }
        }
        for (file, pem) in [
            (SERVER_CERT_FILE, &grant.server),
            (PEER_CERT_FILE, &grant.peer),
        ] {
            write_atomically(&self.dir.join(file), pem.as_bytes(), 0o644)
                .map_err(|e| e.to_string())?;
        }
        tracing::info!(dir = %self.dir.display(), "installed the member's certificates");
        self.installed.notify_waiters();
        Ok(())
    }

    /// Checks that `cert_pem` was signed by `ca_pem` for this member's key, names this
    /// member as `slot` requires and is valid at `now`; its expiry (Unix seconds) if so.
    fn check(&self, cert_pem: &str, ca_pem: &str, now: i64, slot: Slot) -> Result<i64, String> {
        let cert_der = pem_der(cert_pem).ok_or("not a PEM certificate")?;
        let (_, cert) =
            X509Certificate::from_der(&cert_der).map_err(|e| format!("cannot be parsed: {e}"))?;
        if cert.public_key().raw != self.spki_der.as_slice() {
            return Err("is not for this member's key".to_string());
        }
        let ca_der = pem_der(ca_pem).ok_or("the CA file holds no PEM certificate")?;
        let (_, ca) = X509Certificate::from_der(&ca_der).map_err(|e| format!("the CA: {e}"))?;
        cert.verify_signature(Some(ca.public_key()))
            .map_err(|_| "was not signed by the cluster's CA".to_string())?;
        self.check_names(&cert, slot)?;
        let validity = cert.validity();
        if now < validity.not_before.timestamp() || now >= validity.not_after.timestamp() {
            return Err("is not valid now".to_string());
        }
        Ok(validity.not_after.timestamp())
    }

    fn check_names(&self, cert: &X509Certificate<'_>, slot: Slot) -> Result<(), String> {
        let want = &self.expected;
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default();
        if cn != want.member {
            return Err(format!(
                "is for {cn:?}, not for this member ({})",
                want.member
            ));
        }
        let mut dns = Vec::new();
        let mut loopback = false;
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(d) => dns.push(d.to_string()),
                    GeneralName::IPAddress(ip) => loopback |= *ip == [127, 0, 0, 1],
                    _ => {}
                }
            }
        }
        if !dns.contains(&want.member_dns) {
            return Err(format!("does not name {}", want.member_dns));
        }
        let names_peer_service = dns.contains(&want.peer_service_dns);
        match slot {
            Slot::Server if names_peer_service || !loopback => Err(
                "is not a server certificate (it must name 127.0.0.1 and not the peer Service)"
                    .to_string(),
            ),
            Slot::Peer if !names_peer_service => Err(format!(
                "is not a peer certificate (it does not name {})",
                want.peer_service_dns
            )),
            _ => Ok(()),
        }
    }
}

fn pem_der(text: &str) -> Option<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).ok()?;
    (pem.label == "CERTIFICATE").then_some(pem.contents)
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// Writes through a temporary file and a rename, so the server, which rereads certificate
/// files when they change, never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests;
