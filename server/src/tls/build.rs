//! Turning a member's TLS flags into rustls server and client configurations.

use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, ServerConfig};

use super::certs::KeyPair;
use super::identity::Allowed;
use super::pem::FlagFile;
use super::suites::{self, Crypto};
use super::verify::{ClientVerifier, Roots, ServerVerifier};
use super::{accept, auto, dial::PeerDialer, Tls};
use crate::config::{Config, TlsConfig};

/// Which side a [`TlsConfig`] configures, for flag names in messages.
#[derive(Clone, Copy)]
enum Side {
    Client,
    Peer,
}

impl Side {
    fn prefix(self) -> &'static str {
        match self {
            Side::Client => "",
            Side::Peer => "peer-",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Peer => "peer",
        }
    }
    fn crl_flag(self) -> &'static str {
        match self {
            Side::Client => "client-crl-file",
            Side::Peer => "peer-crl-file",
        }
    }
}

/// The certificate and key a side uses once auto TLS is resolved, and whether they are
/// self-signed (verifying nobody).
struct Pair {
    cert: FlagFile,
    key: FlagFile,
    auto: bool,
}

/// Loads everything the flags name; an error names the flag and file to fix.
pub(super) fn build(cfg: &Config) -> Result<Tls, String> {
    let crypto = suites::crypto(cfg)?;
    let client_https = cfg
        .listen_client_urls
        .iter()
        .chain(&cfg.listen_metrics_urls)
        .any(|u| matches!(u.scheme(), "https" | "unixs"));
    let peer_https = cfg
        .listen_peer_urls
        .iter()
        .any(|u| matches!(u.scheme(), "https" | "unixs"));
    let client_pair = pair(cfg, &cfg.client_tls, Side::Client, &cfg.listen_client_urls)?;
    let peer_pair = pair(cfg, &cfg.peer_tls, Side::Peer, &cfg.listen_peer_urls)?;

    let client = match (&client_pair, client_https) {
        (Some(p), true) => {
            let allowed = Allowed::new(None, cfg.client_tls.allowed_hostname.as_deref());
            let config = server_config(&cfg.client_tls, Side::Client, p, allowed, &crypto, true)?;
            Some(accept::acceptor(config, false))
        }
        _ => None,
    };
    let peer = match (&peer_pair, peer_https) {
        (Some(p), true) => {
            let config = server_config(
                &cfg.peer_tls,
                Side::Peer,
                p,
                peer_allowed(cfg),
                &crypto,
                false,
            )?;
            let check_san = !cfg.peer_tls.skip_client_san_verification;
            Some(accept::acceptor(config, check_san))
        }
        _ => None,
    };
    let dialer = Arc::new(dialer(cfg, peer_pair.as_ref(), &crypto)?);
    Ok(Tls {
        client,
        peer,
        dialer,
    })
}

fn peer_allowed(cfg: &Config) -> Allowed {
    Allowed::new(
        cfg.peer_tls.allowed_cn.as_deref(),
        cfg.peer_tls.allowed_hostname.as_deref(),
    )
}

/// The side's certificate files, or a generated pair for auto TLS (etcd's `SelfCert`,
/// which is skipped with a warning when certificate files are given).
fn pair(
    cfg: &Config,
    tls: &TlsConfig,
    side: Side,
    urls: &[url::Url],
) -> Result<Option<Pair>, String> {
    let p = side.prefix();
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        if tls.auto_tls {
            tracing::warn!("ignoring {} auto TLS since certs given", side.name());
        }
        return Ok(Some(Pair {
            cert: FlagFile::new(format!("{p}cert-file"), cert),
            key: FlagFile::new(format!("{p}key-file"), key),
            auto: false,
        }));
    }
    if !tls.auto_tls {
        return Ok(None);
    }
    let dir = cfg.data_dir.join("fixtures").join(side.name());
    let (cert, key) = auto::self_signed(&dir, &auto::hosts(urls), cfg.self_signed_cert_validity)
        .map_err(|e| format!("--{p}auto-tls: {e}"))?;
    Ok(Some(Pair {
        cert: FlagFile::new(format!("{p}auto-tls"), &cert),
        key: FlagFile::new(format!("{p}auto-tls"), &key),
        auto: true,
    }))
}

/// The server side of a listener. `http1` also offers HTTP/1.1 (the client port serves
/// /health, /metrics and /version); the peer port is gRPC only.
fn server_config(
    tls: &TlsConfig,
    side: Side,
    pair: &Pair,
    allowed: Allowed,
    crypto: &Crypto,
    http1: bool,
) -> Result<Arc<ServerConfig>, String> {
    let p = side.prefix();
    let builder = ServerConfig::builder_with_provider(crypto.provider.clone())
        .with_protocol_versions(&crypto.versions)
        .map_err(|e| format!("--tls-min-version/--tls-max-version/--cipher-suites: {e}"))?;
    let verify_clients = tls.trusted_ca_file.is_some() || tls.client_cert_auth;
    let builder = if pair.auto {
        if verify_clients {
            tracing::warn!(
                "ignoring --{p}client-cert-auth and --{p}trusted-ca-file: {} auto TLS verifies no certificates",
                side.name()
            );
        }
        builder.with_no_client_auth()
    } else if verify_clients {
        let ca = tls.trusted_ca_file.as_ref().ok_or_else(|| {
            format!("--{p}client-cert-auth needs --{p}trusted-ca-file to verify client certificates with")
        })?;
        let verifier = ClientVerifier::new(
            &format!("{} trusted CA", side.name()),
            FlagFile::new(format!("{p}trusted-ca-file"), ca),
            tls.crl_file
                .as_ref()
                .map(|c| FlagFile::new(side.crl_flag(), c)),
            allowed,
            crypto.provider.clone(),
        )?;
        builder.with_client_cert_verifier(Arc::new(verifier))
    } else {
        builder.with_no_client_auth()
    };
    let certs = KeyPair::load(
        &format!("{} certificate", side.name()),
        pair.cert.clone(),
        pair.key.clone(),
        crypto.provider.clone(),
    )?;
    let mut config = builder.with_cert_resolver(Arc::new(certs));
    config.alpn_protocols = if http1 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec()]
    };
    tracing::info!(
        tls_info = describe(tls, pair),
        cipher_suites = ?crypto.names,
        "starting with {} TLS",
        side.name()
    );
    Ok(Arc::new(config))
}

/// etcd's `TLSInfo.String()`, logged when a side starts.
fn describe(tls: &TlsConfig, pair: &Pair) -> String {
    let show = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    format!(
        "cert = {}, key = {}, trusted-ca = {}, client-cert-auth = {}, crl-file = {}{}",
        pair.cert.path.display(),
        pair.key.path.display(),
        show(&tls.trusted_ca_file),
        tls.client_cert_auth,
        show(&tls.crl_file),
        if pair.auto { ", auto-tls = true" } else { "" }
    )
}

/// The dialing side: verifies peers against `--peer-trusted-ca-file` (system roots without
/// one, nothing with auto TLS) and presents `--peer-client-cert-file` or the peer pair.
fn dialer(cfg: &Config, pair: Option<&Pair>, crypto: &Crypto) -> Result<PeerDialer, String> {
    let tls = &cfg.peer_tls;
    let provider = crypto.provider.clone();
    let roots = match (pair, &tls.trusted_ca_file) {
        (Some(p), _) if p.auto => Roots::None,
        (_, Some(ca)) => Roots::file(
            "peer trusted CA (dialing)",
            FlagFile::new("peer-trusted-ca-file", ca),
            provider.clone(),
        )?,
        (_, None) => Roots::System(OnceLock::new()),
    };
    let verifier = ServerVerifier {
        roots,
        allowed: peer_allowed(cfg),
        provider: provider.clone(),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&crypto.versions)
        .map_err(|e| format!("--tls-min-version/--tls-max-version/--cipher-suites: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let client_pair = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(c), Some(k)) => Some((
            FlagFile::new("peer-client-cert-file", c),
            FlagFile::new("peer-client-key-file", k),
        )),
        _ => pair.map(|p| (p.cert.clone(), p.key.clone())),
    };
    let mut config = match client_pair {
        Some((cert, key)) => {
            let certs = KeyPair::load("peer client certificate", cert, key, provider)?;
            builder.with_client_cert_resolver(Arc::new(certs))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(PeerDialer {
        config: Arc::new(config),
    })
}
