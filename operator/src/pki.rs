//! The cluster's PKI, as kubeadm lays it out under `pki/etcd`: a CA, and per member a
//! server and a peer certificate, plus client certificates for health checks, for
//! kube-apiserver and for the operator itself.
//!
//! Issuing uses rcgen (ECDSA P-256 keys). Whether a certificate must be (re)issued is a
//! pure decision ([`leaf_verdict`]) over what is stored, so renewal is testable without a
//! clock or a cluster. The CA is never replaced here: a missing operator CA is created once,
//! a user's CA is only read.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::Error;
use crate::names::ClusterNames;

/// Common name of the CA, as kubeadm's `etcd-ca`.
pub const CA_COMMON_NAME: &str = "etcd-ca";
/// Lifetime of a CA the operator creates, as kubeadm's (10 years).
pub const CA_VALIDITY: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 24 * 3600);
/// How far back `notBefore` is set, so members whose clocks lag slightly accept new
/// certificates at once.
const BACKDATE: time::Duration = time::Duration::minutes(5);

/// A CA certificate with its private key, in PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaPem {
    /// `ca.crt`.
    pub cert: String,
    /// `ca.key` (PKCS#8, or PKCS#1 RSA as kubeadm writes it).
    pub key: String,
}

/// A certificate with its private key, in PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedPem {
    /// The certificate.
    pub cert: String,
    /// Its PKCS#8 private key.
    pub key: String,
}

/// The certificate kinds of the reference table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeafKind {
    /// `server.crt` of one member: serverAuth and clientAuth.
    Server,
    /// `peer.crt` of one member: serverAuth and clientAuth.
    Peer,
    /// `healthcheck-client.crt`: clientAuth.
    HealthcheckClient,
    /// `apiserver-etcd-client.crt`: clientAuth.
    ApiserverClient,
    /// The operator's own client certificate: clientAuth.
    OperatorClient,
}

/// What a certificate must contain. Comparing a stored certificate to its profile tells
/// whether it is still right for the cluster (e.g. after a rename of the cluster domain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafProfile {
    /// Which row of the table.
    pub kind: LeafKind,
    /// Subject common name.
    pub common_name: String,
    /// DNS names and IP addresses, in the order they are written.
    pub sans: Vec<String>,
}

impl LeafProfile {
    /// Server certificate of `member`: the member's DNS names, the client Service's names,
    /// localhost and loopback (kubeadm's etcd-server SANs, in Kubernetes terms).
    pub fn server(names: &ClusterNames, member: &str) -> Self {
        let mut sans = vec![member.to_string()];
        sans.extend(names.member_dns_names(member));
        sans.extend(names.client_service_dns_names());
        sans.extend([
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ]);
        Self {
            kind: LeafKind::Server,
            common_name: member.to_string(),
            sans,
        }
    }

    /// Peer certificate of `member`: the names other members dial it by.
    pub fn peer(names: &ClusterNames, member: &str) -> Self {
        let mut sans = vec![member.to_string()];
        sans.extend(names.member_dns_names(member));
        sans.push(names.peer_service_fqdn());
        Self {
            kind: LeafKind::Peer,
            common_name: member.to_string(),
            sans,
        }
    }

    /// `kube-etcd-healthcheck-client`.
    pub fn healthcheck_client() -> Self {
        Self {
            kind: LeafKind::HealthcheckClient,
            common_name: "kube-etcd-healthcheck-client".to_string(),
            sans: Vec::new(),
        }
    }

    /// `kube-apiserver-etcd-client`, for users who point kube-apiserver at the cluster.
    pub fn apiserver_client() -> Self {
        Self {
            kind: LeafKind::ApiserverClient,
            common_name: "kube-apiserver-etcd-client".to_string(),
            sans: Vec::new(),
        }
    }

    /// The operator's own client identity.
    pub fn operator_client() -> Self {
        Self {
            kind: LeafKind::OperatorClient,
            common_name: "ballast-operator".to_string(),
            sans: Vec::new(),
        }
    }

    fn extended_key_usages(&self) -> Vec<ExtendedKeyUsagePurpose> {
        match self.kind {
            // clientAuth on the server certificate too: etcd's gateway and grpc-proxy dial the
            // member with it, and so do members probing each other.
            LeafKind::Server | LeafKind::Peer => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            LeafKind::HealthcheckClient | LeafKind::ApiserverClient | LeafKind::OperatorClient => {
                vec![ExtendedKeyUsagePurpose::ClientAuth]
            }
        }
    }
}

/// A CA ready to sign.
pub struct Ca {
    cert_pem: String,
    key: KeyPair,
    not_after: i64,
    spki_der: Vec<u8>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Reads a CA from PEM. Keys in PKCS#8 and PKCS#1 (RSA, as kubeadm and `openssl genrsa`
    /// write them) are accepted.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let key = load_key(key_pem)?;
        let der = cert_der(cert_pem)?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| Error::Parse(format!("CA certificate: {e}")))?;
        if !cert.is_ca() {
            return Err(Error::NotACa);
        }
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(Error::KeyMismatch);
        }
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            not_after: cert.validity().not_after.timestamp(),
            spki_der: cert.public_key().raw.to_vec(),
            key,
        })
    }

    /// The CA certificate in PEM (`ca.crt`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Expiry of the CA, in Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// Issues a certificate for `profile` with a new key, valid for `validity` from `now` but
    /// never past the CA's own expiry.
    pub fn issue(
        &self,
        profile: &LeafProfile,
        now: OffsetDateTime,
        validity: std::time::Duration,
    ) -> Result<IssuedPem, Error> {
        let key = KeyPair::generate()?;
        Ok(IssuedPem {
            cert: self.sign(profile, &key, now, validity)?,
            key: key.serialize_pem(),
        })
    }

    /// Issues a certificate for `profile` for a key held elsewhere (a member's, made in its
    /// pod), given its public half in PEM.
    pub fn issue_for_public_key(
        &self,
        profile: &LeafProfile,
        public_key_pem: &str,
        now: OffsetDateTime,
        validity: std::time::Duration,
    ) -> Result<String, Error> {
        let key = rcgen::SubjectPublicKeyInfo::from_pem(public_key_pem)
            .map_err(|e| Error::Parse(format!("public key: {e}")))?;
        self.sign(profile, &key, now, validity)
    }

    fn sign(
        &self,
        profile: &LeafProfile,
        key: &impl rcgen::PublicKeyData,
        now: OffsetDateTime,
        validity: std::time::Duration,
    ) -> Result<String, Error> {
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, profile.common_name.clone());
        params.distinguished_name = dn;
        params.subject_alt_names = profile
            .sans
            .iter()
            .map(|s| san(s))
            .collect::<Result<_, _>>()?;
        params.not_before = now - BACKDATE;
        let wanted = now + validity;
        let ca_end = OffsetDateTime::from_unix_timestamp(self.not_after)
            .map_err(|e| Error::Parse(format!("CA expiry: {e}")))?;
        params.not_after = wanted.min(ca_end);
        params.serial_number = Some(random_serial());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = profile.extended_key_usages();
        params.use_authority_key_identifier_extension = true;
        Ok(params.signed_by(key, &issuer)?.pem())
    }

    /// Whether `cert` was signed by this CA.
    fn signed(&self, cert: &X509Certificate<'_>) -> bool {
        let Ok((_, spki)) =
            x509_parser::x509::SubjectPublicKeyInfo::from_der(self.spki_der.as_slice())
        else {
            return false;
        };
        cert.verify_signature(Some(&spki)).is_ok()
    }
}

/// Creates a new CA (`etcd-ca`, 10 years, as kubeadm's).
pub fn generate_ca(now: OffsetDateTime) -> Result<CaPem, Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    let cert = params.self_signed(&key)?;
    Ok(CaPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Why a stored certificate has to be issued again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reissue {
    /// There is none.
    Missing,
    /// It or its key cannot be read, or they do not belong together.
    Unreadable,
    /// It was not signed by the current CA (the user switched CAs).
    OtherCa,
    /// Its names no longer match the cluster (e.g. a changed cluster domain).
    NamesChanged,
    /// It expires within `renewBefore`.
    Expiring,
}

impl Reissue {
    /// Reason string for events.
    pub fn as_str(self) -> &'static str {
        match self {
            Reissue::Missing => "Missing",
            Reissue::Unreadable => "Unreadable",
            Reissue::OtherCa => "SignedByOtherCA",
            Reissue::NamesChanged => "NamesChanged",
            Reissue::Expiring => "Expiring",
        }
    }
}

/// Decision on one stored certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafVerdict {
    /// Keep it; it expires at this Unix time.
    Keep {
        /// Expiry, in Unix seconds.
        not_after: i64,
    },
    /// Issue a new one.
    Reissue(Reissue),
}

/// Decides whether a stored certificate (and key) is still good for `profile`.
pub fn leaf_verdict(
    ca: &Ca,
    profile: &LeafProfile,
    stored: Option<(&str, &str)>,
    now: OffsetDateTime,
    renew_before: std::time::Duration,
) -> LeafVerdict {
    let Some((cert_pem, key_pem)) = stored else {
        return LeafVerdict::Reissue(Reissue::Missing);
    };
    match load_key(key_pem) {
        Ok(key) => verdict_for_key(
            ca,
            profile,
            Some(cert_pem),
            &key.subject_public_key_info(),
            now,
            renew_before,
        ),
        Err(_) => LeafVerdict::Reissue(Reissue::Unreadable),
    }
}

/// Decides whether `cert_pem` is still good for `profile` and for the key whose public half
/// is `spki_der` (a key the operator never sees, such as a member's).
pub fn verdict_for_key(
    ca: &Ca,
    profile: &LeafProfile,
    cert_pem: Option<&str>,
    spki_der: &[u8],
    now: OffsetDateTime,
    renew_before: std::time::Duration,
) -> LeafVerdict {
    let Some(cert_pem) = cert_pem else {
        return LeafVerdict::Reissue(Reissue::Missing);
    };
    let Ok(der) = cert_der(cert_pem) else {
        return LeafVerdict::Reissue(Reissue::Unreadable);
    };
    let Ok((_, cert)) = X509Certificate::from_der(&der) else {
        return LeafVerdict::Reissue(Reissue::Unreadable);
    };
    if cert.public_key().raw != spki_der {
        return LeafVerdict::Reissue(Reissue::Unreadable);
    }
    if !ca.signed(&cert) {
        return LeafVerdict::Reissue(Reissue::OtherCa);
    }
    let info = CertInfo::from_cert(&cert);
    if info.common_name.as_deref() != Some(profile.common_name.as_str())
        || sorted(&info.sans) != sorted(&profile.sans)
    {
        return LeafVerdict::Reissue(Reissue::NamesChanged);
    }
    let renew_at = info.not_after - renew_before.as_secs() as i64;
    if now.unix_timestamp() >= renew_at {
        return LeafVerdict::Reissue(Reissue::Expiring);
    }
    LeafVerdict::Keep {
        not_after: info.not_after,
    }
}

/// The DER of a public key in PEM (`BEGIN PUBLIC KEY`, a SubjectPublicKeyInfo).
pub fn public_key_der(pem_text: &str) -> Result<Vec<u8>, Error> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
        .map_err(|e| Error::Parse(format!("public key PEM: {e}")))?;
    if pem.label != "PUBLIC KEY" {
        return Err(Error::Parse(format!(
            "expected a PUBLIC KEY, found {}",
            pem.label
        )));
    }
    Ok(pem.contents)
}

/// What the operator reads back from a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject CN.
    pub common_name: Option<String>,
    /// DNS and IP SANs, as text.
    pub sans: Vec<String>,
    /// Expiry, Unix seconds.
    pub not_after: i64,
}

impl CertInfo {
    /// Parses a PEM certificate.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let der = cert_der(pem)?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| Error::Parse(format!("certificate: {e}")))?;
        Ok(Self::from_cert(&cert))
    }

    fn from_cert(cert: &X509Certificate<'_>) -> Self {
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(d) => sans.push((*d).to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            sans.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        Self {
            common_name,
            sans,
            not_after: cert.validity().not_after.timestamp(),
        }
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

fn san(s: &str) -> Result<SanType, Error> {
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => Ok(SanType::DnsName(s.to_string().try_into()?)),
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and without a leading zero byte, so it encodes as exactly 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn cert_der(pem_text: &str) -> Result<Vec<u8>, Error> {
    let blocks = pem::parse_many(pem_text).map_err(|e| Error::Parse(e.to_string()))?;
    blocks
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .ok_or_else(|| Error::Parse("no CERTIFICATE block".to_string()))
}

/// Reads a private key. ring signs only with PKCS#8 keys, so PKCS#1 RSA keys (kubeadm's
/// format) are wrapped into PKCS#8 first; SEC1 EC keys get a message saying how to convert.
fn load_key(pem_text: &str) -> Result<KeyPair, Error> {
    let blocks = pem::parse_many(pem_text).map_err(|e| Error::Parse(e.to_string()))?;
    let block = blocks
        .into_iter()
        .find(|b| b.tag().ends_with("PRIVATE KEY"))
        .ok_or_else(|| Error::Parse("no PRIVATE KEY block".to_string()))?;
    let pkcs8 = match block.tag() {
        "PRIVATE KEY" => block.into_contents(),
        "RSA PRIVATE KEY" => wrap_pkcs1_rsa(block.contents()),
        "EC PRIVATE KEY" => return Err(Error::UnsupportedKey(
            "SEC1 EC keys are not supported; convert with `openssl pkcs8 -topk8 -nocrypt -in ca.key -out ca-pkcs8.key`".to_string(),
        )),
        other => return Err(Error::UnsupportedKey(format!("{other} blocks are not supported"))),
    };
    Ok(KeyPair::try_from(pkcs8.as_slice())?)
}

/// Wraps a PKCS#1 `RSAPrivateKey` in a PKCS#8 `PrivateKeyInfo` (RFC 5208).
fn wrap_pkcs1_rsa(pkcs1: &[u8]) -> Vec<u8> {
    // version 0, AlgorithmIdentifier { rsaEncryption, NULL }
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(&[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ]);
    body.push(0x04);
    body.extend(der_len(pkcs1.len()));
    body.extend_from_slice(pkcs1);
    let mut out = vec![0x30];
    out.extend(der_len(body.len()));
    out.extend(body);
    out
}

fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap()
    }

    const YEAR: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);
    const MONTH: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

    fn names() -> ClusterNames {
        ClusterNames::new("main", "db", "cluster.local")
    }

    #[test]
    fn fresh_certificate_is_kept_until_renew_window() {
        let ca_pem = generate_ca(now()).unwrap();
        let ca = Ca::from_pem(&ca_pem.cert, &ca_pem.key).unwrap();
        let profile = LeafProfile::server(&names(), "main-0");
        let leaf = ca.issue(&profile, now(), YEAR).unwrap();
        let stored = Some((leaf.cert.as_str(), leaf.key.as_str()));
        assert!(matches!(
            leaf_verdict(&ca, &profile, stored, now(), MONTH),
            LeafVerdict::Keep { .. }
        ));
        let later = now() + (YEAR - MONTH) + time::Duration::seconds(1);
        assert_eq!(
            leaf_verdict(&ca, &profile, stored, later, MONTH),
            LeafVerdict::Reissue(Reissue::Expiring)
        );
    }

    #[test]
    fn verdicts_for_missing_foreign_and_renamed() {
        let ca_pem = generate_ca(now()).unwrap();
        let ca = Ca::from_pem(&ca_pem.cert, &ca_pem.key).unwrap();
        let other_pem = generate_ca(now()).unwrap();
        let other = Ca::from_pem(&other_pem.cert, &other_pem.key).unwrap();
        let profile = LeafProfile::peer(&names(), "main-1");
        assert_eq!(
            leaf_verdict(&ca, &profile, None, now(), MONTH),
            LeafVerdict::Reissue(Reissue::Missing)
        );
        let foreign = other.issue(&profile, now(), YEAR).unwrap();
        assert_eq!(
            leaf_verdict(
                &ca,
                &profile,
                Some((&foreign.cert, &foreign.key)),
                now(),
                MONTH
            ),
            LeafVerdict::Reissue(Reissue::OtherCa)
        );
        let leaf = ca.issue(&profile, now(), YEAR).unwrap();
        let renamed = LeafProfile::peer(&ClusterNames::new("main", "db", "example.org"), "main-1");
        assert_eq!(
            leaf_verdict(&ca, &renamed, Some((&leaf.cert, &leaf.key)), now(), MONTH),
            LeafVerdict::Reissue(Reissue::NamesChanged)
        );
        assert_eq!(
            leaf_verdict(
                &ca,
                &profile,
                Some((&leaf.cert, &foreign.key)),
                now(),
                MONTH
            ),
            LeafVerdict::Reissue(Reissue::Unreadable)
        );
    }

    #[test]
    fn leaves_never_outlive_the_ca() {
        let ca_pem = generate_ca(now()).unwrap();
        let ca = Ca::from_pem(&ca_pem.cert, &ca_pem.key).unwrap();
        let leaf = ca
            .issue(&LeafProfile::apiserver_client(), now(), CA_VALIDITY * 2)
            .unwrap();
        let info = CertInfo::from_pem(&leaf.cert).unwrap();
        assert_eq!(info.not_after, ca.not_after());
    }

    #[test]
    fn server_sans_cover_member_service_and_loopback() {
        let p = LeafProfile::server(&names(), "main-2");
        for want in [
            "main-2",
            "main-2.main-peer",
            "main-2.main-peer.db.svc",
            "main-2.main-peer.db.svc.cluster.local",
            "main",
            "main.db.svc.cluster.local",
            "localhost",
            "127.0.0.1",
            "::1",
        ] {
            assert!(p.sans.iter().any(|s| s == want), "missing {want}");
        }
        assert!(!p.sans.iter().any(|s| s.starts_with("main-1")));
    }

    #[test]
    fn pkcs1_wrapping_matches_der_lengths() {
        assert_eq!(der_len(5), vec![5]);
        assert_eq!(der_len(0x80), vec![0x81, 0x80]);
        assert_eq!(der_len(1190), vec![0x82, 0x04, 0xa6]);
    }
}
