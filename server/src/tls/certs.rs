//! This member's own certificate and key, served to clients and peers and presented
//! when dialing peers. Re-read when the files change, as etcd re-reads them per handshake.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use super::pem::{self, FlagFile};
use super::reload::Reloading;

#[derive(Debug)]
pub struct KeyPair(Reloading<Arc<CertifiedKey>>);

impl KeyPair {
    /// Loads the pair now (a startup error if it is unusable) and on every file change.
    pub fn load(
        what: &str,
        cert: FlagFile,
        key: FlagFile,
        provider: Arc<CryptoProvider>,
    ) -> Result<KeyPair, String> {
        let paths = vec![cert.path.clone(), key.path.clone()];
        Reloading::new(what, paths, move || load(&cert, &key, &provider)).map(KeyPair)
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.0.get()
    }
}

fn load(
    cert: &FlagFile,
    key: &FlagFile,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let chain = pem::certificates(cert)?;
    let der = pem::private_key(key)?;
    match CertifiedKey::from_der(chain, der, provider) {
        Ok(k) => Ok(Arc::new(k)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(
            format!("{key}: the private key does not match the certificate in {cert}"),
        ),
        Err(rustls::Error::InvalidCertificate(e)) => {
            Err(format!("{cert}: the certificate cannot be parsed: {e}"))
        }
        Err(e) => Err(format!("{key}: unusable private key for {cert}: {e}")),
    }
}

impl ResolvesServerCert for KeyPair {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for KeyPair {
    /// The one configured certificate whatever CAs the server hints at, as etcd does.
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
