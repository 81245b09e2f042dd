//! TLS for the client and peer ports and for dialing peers: etcd's TLS flags on rustls with
//! the ring provider.
//!
//! What etcd users rely on, and so what this keeps:
//! - `https` and `http` listen URLs side by side; only `https` ones use the certificates.
//! - A trusted CA file alone already makes the server require client certificates (etcd's
//!   `TLSInfo.ServerConfig`), and `--client-cert-auth` without one is refused at startup
//!   rather than silently trusting the system roots.
//! - Auto TLS only applies when no certificate is given, and then verifies nobody.
//! - Certificates, keys, CA bundles and CRLs are re-read when they change on disk, so a
//!   renewed certificate is used by the next connection without a restart.
//! - `--peer-cert-allowed-cn` / `--peer-cert-allowed-hostname` apply both to peers dialing
//!   in and to peers this member dials, as etcd's shared `baseConfig` does.

mod accept;
mod auto;
mod build;
mod certs;
mod dial;
mod identity;
mod pem;
mod reload;
mod suites;
mod verify;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use accept::{Acceptor, TlsConn};
pub use dial::PeerDialer;

use crate::config::Config;
use crate::error::{Error, Result};

/// The TLS side of a member, built once at startup from its flags.
pub struct Tls {
    /// Serves `https` client (and metrics) URLs; `None` when there are none.
    pub client: Option<Acceptor>,
    /// Serves `https` peer URLs; `None` when there are none.
    pub peer: Option<Acceptor>,
    /// Dials peers, over TLS for `https` peer URLs.
    pub dialer: Arc<PeerDialer>,
}

impl Tls {
    /// Loads every file the flags name (generating auto-TLS certificates first); any
    /// unusable file is a startup error naming its flag.
    pub fn from_config(cfg: &Config) -> Result<Tls> {
        build::build(cfg).map_err(Error::Other)
    }
}
