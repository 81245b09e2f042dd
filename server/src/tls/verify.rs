//! Certificate verifiers whose trust (CA bundle, CRL) is re-read when its files change,
//! with etcd's identity checks on top. Signatures are checked with the provider's
//! algorithms directly, so they never depend on which trust version is current.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, Error, RootCertStore, SignatureScheme};

use super::identity::Allowed;
use super::pem::{self, FlagFile};
use super::reload::Reloading;

/// Requires and verifies client certificates against `--trusted-ca-file` (or
/// `--peer-trusted-ca-file`), refusing revoked ones when a CRL file is given.
#[derive(Debug)]
pub struct ClientVerifier {
    chain: Reloading<Arc<dyn ClientCertVerifier>>,
    allowed: Allowed,
    provider: Arc<CryptoProvider>,
}

impl ClientVerifier {
    pub fn new(
        what: &str,
        ca: FlagFile,
        crl: Option<FlagFile>,
        allowed: Allowed,
        provider: Arc<CryptoProvider>,
    ) -> Result<ClientVerifier, String> {
        let mut paths = vec![ca.path.clone()];
        paths.extend(crl.iter().map(|c| c.path.clone()));
        let p = provider.clone();
        let chain = Reloading::new(what, paths, move || {
            let roots = Arc::new(pem::roots(&ca)?);
            let mut b = WebPkiClientVerifier::builder_with_provider(roots, p.clone());
            if let Some(crl) = &crl {
                // etcd only looks the leaf's serial up in the list; a CRL from another issuer
                // doesn't make certificates unverifiable.
                b = b
                    .with_crls(pem::crls(crl)?)
                    .only_check_end_entity_revocation()
                    .allow_unknown_revocation_status();
            }
            b.build().map_err(|e| format!("{ca}: {e}"))
        })?;
        Ok(ClientVerifier {
            chain,
            allowed,
            provider,
        })
    }
}

impl ClientCertVerifier for ClientVerifier {
    /// No CA hints: they would have to borrow from a trust that may be swapped under them,
    /// and etcd's clients present their one configured certificate regardless.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.chain
            .get()
            .verify_client_cert(end_entity, intermediates, now)?;
        self.allowed.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Where a dialing member gets the roots to verify a peer's server certificate.
#[derive(Debug)]
pub enum Roots {
    /// `--peer-trusted-ca-file`, re-read when it changes.
    File(Reloading<Arc<WebPkiServerVerifier>>),
    /// No CA file: the system's roots, as Go uses, loaded on the first https dial.
    System(OnceLock<Result<Arc<WebPkiServerVerifier>, String>>),
    /// Auto TLS: peers' self-signed certificates can't be verified (etcd skips verification).
    None,
}

impl Roots {
    pub fn file(what: &str, ca: FlagFile, provider: Arc<CryptoProvider>) -> Result<Roots, String> {
        let paths = vec![ca.path.clone()];
        Reloading::new(what, paths, move || {
            let roots = Arc::new(pem::roots(&ca)?);
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| format!("{ca}: {e}"))
        })
        .map(Roots::File)
    }

    fn verifier(
        &self,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Option<Arc<WebPkiServerVerifier>>, Error> {
        match self {
            Roots::File(r) => Ok(Some(r.get())),
            Roots::System(cell) => cell
                .get_or_init(|| system_verifier(provider))
                .clone()
                .map(Some)
                .map_err(Error::General),
            Roots::None => Ok(None),
        }
    }
}

fn system_verifier(provider: &Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>, String> {
    let mut roots = RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(loaded.certs);
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| {
            format!(
                "no --peer-trusted-ca-file given and the system CA certificates are unusable: {e}"
            )
        })
}

/// Verifies the server certificate of a peer this member dials.
#[derive(Debug)]
pub struct ServerVerifier {
    pub roots: Roots,
    pub allowed: Allowed,
    pub provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if let Some(v) = self.roots.verifier(&self.provider)? {
            v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        }
        self.allowed.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
