//! Reading the PEM files TLS flags name. Every error names the flag and the file, since a
//! member that can't load its certificates must say exactly which setting to fix.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::RootCertStore;

/// The file behind a flag, for messages: `--cert-file /etc/etcd/server.pem`.
#[derive(Debug, Clone)]
pub struct FlagFile {
    pub flag: String,
    pub path: std::path::PathBuf,
}

impl FlagFile {
    pub fn new(flag: impl Into<String>, path: &Path) -> FlagFile {
        FlagFile {
            flag: flag.into(),
            path: path.to_path_buf(),
        }
    }

    fn read(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.path).map_err(|e| format!("{self}: cannot read the file: {e}"))
    }
}

impl std::fmt::Display for FlagFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "--{} {}", self.flag, self.path.display())
    }
}

/// Every certificate in a PEM file, in order (leaf first for a chain).
pub fn certificates(file: &FlagFile) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = file.read()?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{file}: invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{file}: no CERTIFICATE block found"));
    }
    Ok(certs)
}

/// The first private key in a PEM file: PKCS#8, PKCS#1 (`RSA PRIVATE KEY`) or SEC1
/// (`EC PRIVATE KEY`), the formats openssl, cfssl and etcd's own tooling write.
pub fn private_key(file: &FlagFile) -> Result<PrivateKeyDer<'static>, String> {
    let pem = file.read()?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "{file}: no private key found (expected a PKCS#8, PKCS#1 RSA or SEC1 EC PEM block)"
        ),
        e => format!("{file}: invalid private key PEM: {e}"),
    })
}

/// Trust anchors from a CA bundle.
pub fn roots(file: &FlagFile) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for cert in certificates(file)? {
        store
            .add(cert)
            .map_err(|e| format!("{file}: unusable CA certificate: {e}"))?;
    }
    Ok(store)
}

/// Revocation lists, PEM (`X509 CRL` blocks) or a single DER CRL, as Go's
/// `x509.ParseCRL` (used by etcd) accepts both.
pub fn crls(file: &FlagFile) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let data = file.read()?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{file}: invalid PEM: {e}"))?;
    if !crls.is_empty() {
        return Ok(crls);
    }
    if data.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(data)]);
    }
    Err(format!("{file}: no X509 CRL block found"))
}
