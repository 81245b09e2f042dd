//! `--auto-tls` / `--peer-auto-tls`: etcd's `transport.SelfCert`. A self-signed certificate
//! for the listen hosts, kept in `<data-dir>/fixtures/client` (or `peer`) as `cert.pem` and
//! `key.pem` and reused across restarts. It encrypts traffic but proves nothing, so nobody
//! verifies it: clients need `--insecure-skip-tls-verify`, peers skip verification.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

/// Paths of an existing or newly generated pair in `dir`.
pub fn self_signed(
    dir: &Path,
    hosts: &[String],
    validity_years: u32,
) -> Result<(PathBuf, PathBuf), String> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (cert, key) = generate(hosts, validity_years)?;
    write(&key_path, key.as_bytes(), 0o600)?;
    write(&cert_path, cert.as_bytes(), 0o644)?;
    tracing::info!(cert = %cert_path.display(), key = %key_path.display(), hosts = ?hosts, "generated a self-signed certificate (auto TLS)");
    Ok((cert_path, key_path))
}

/// PEM certificate and key. ECDSA P-256: etcd uses P-521, which ring can't sign with.
fn generate(hosts: &[String], validity_years: u32) -> Result<(String, String), String> {
    let fail = |e: rcgen::Error| format!("generating the self-signed certificate: {e}");
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(fail)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "etcd");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(365 * i64::from(validity_years.max(1)));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The hosts of listen URLs, which the certificate names (IPs become IP SANs).
pub fn hosts(urls: &[url::Url]) -> Vec<String> {
    let mut out: Vec<String> = urls
        .iter()
        .filter_map(|u| u.host_str())
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}
