//! Checks on who a verified certificate names, beyond the chain: etcd's
//! `--peer-cert-allowed-cn` / `--peer-cert-allowed-hostname` (and the client-side
//! `--client-cert-allowed-hostname`), and the SAN-against-remote-address check etcd's peer
//! listener makes unless `--experimental-peer-skip-client-san-verification` is set.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::ParsedCertificate;
use x509_parser::extensions::GeneralName;

/// etcd's text when a certificate's identity is not allowed.
const NOT_ALLOWED: &str = "client certificate authentication failed";

/// The identities a peer certificate may carry. etcd applies these both when accepting
/// (client certificate) and when dialing (server certificate): its `baseConfig` sets one
/// `VerifyPeerCertificate` for both directions.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    /// Common names, any of which will do (comma-separated in the flag).
    cns: Vec<String>,
    hostname: Option<String>,
}

impl Allowed {
    pub fn new(cns: Option<&str>, hostname: Option<&str>) -> Allowed {
        Allowed {
            cns: cns
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            hostname: hostname.filter(|h| !h.is_empty()).map(String::from),
        }
    }

    pub fn is_open(&self) -> bool {
        self.cns.is_empty() && self.hostname.is_none()
    }

    /// Passes if the leaf's subject CN is allowed or it is valid for the allowed hostname.
    pub fn check(&self, leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if self.is_open() {
            return Ok(());
        }
        if !self.cns.is_empty() {
            let cns = common_names(leaf);
            if cns.iter().any(|cn| self.cns.contains(cn)) {
                return Ok(());
            }
        }
        if let Some(host) = &self.hostname {
            let valid = ServerName::try_from(host.as_str())
                .ok()
                .is_some_and(|name| {
                    ParsedCertificate::try_from(leaf)
                        .is_ok_and(|p| rustls::client::verify_server_name(&p, &name).is_ok())
                });
            if valid {
                return Ok(());
            }
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Other(rustls::OtherError(Arc::new(NotAllowed))),
        ))
    }
}

/// rustls shows a certificate error's cause with `Debug`, so both forms give etcd's text.
struct NotAllowed;

impl std::fmt::Debug for NotAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(NOT_ALLOWED)
    }
}

impl std::fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(NOT_ALLOWED)
    }
}

impl std::error::Error for NotAllowed {}

pub(super) fn common_names(leaf: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
        return Vec::new();
    };
    cert.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(String::from))
        .collect()
}

/// The IP and DNS subject alternative names of a certificate.
pub fn sans(leaf: &CertificateDer<'_>) -> (Vec<IpAddr>, Vec<String>) {
    let mut ips = Vec::new();
    let mut dns = Vec::new();
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
        return (ips, dns);
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                        ips.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                        ips.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
    }
    (ips, dns)
}

/// etcd's `checkSAN` for peer connections: a client certificate that lists IP or DNS SANs
/// must name the address the connection comes from (DNS names are resolved). One without
/// any SAN passes, as in etcd.
pub async fn check_san(leaf: &CertificateDer<'_>, remote: IpAddr) -> Result<(), String> {
    let (ips, dns) = sans(leaf);
    if ips.is_empty() && dns.is_empty() {
        return Ok(());
    }
    let remote = remote.to_canonical();
    if ips.iter().any(|ip| ip.to_canonical() == remote) {
        return Ok(());
    }
    for name in &dns {
        if let Ok(addrs) = tokio::net::lookup_host((name.as_str(), 0)).await {
            if addrs.into_iter().any(|a| a.ip().to_canonical() == remote) {
                return Ok(());
            }
        }
    }
    Err(format!(
        "tls: {remote} does not match any of IPAddresses {ips:?} or DNSNames {dns:?} in the client certificate"
    ))
}
