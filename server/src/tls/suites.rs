//! `--cipher-suites`, `--tls-min-version` and `--tls-max-version`: etcd's Go names mapped
//! onto what rustls (ring provider) implements.

use std::sync::Arc;

use rustls::crypto::ring::{cipher_suite as cs, default_provider};
use rustls::crypto::CryptoProvider;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use crate::config::Config;

/// The provider (with the chosen suites) and protocol versions both sides use.
pub struct Crypto {
    /// `--cipher-suites` as given, for the startup log line.
    pub names: Vec<String>,
    pub provider: Arc<CryptoProvider>,
    pub versions: Vec<&'static SupportedProtocolVersion>,
}

/// Go's names for the suites rustls implements. etcd 3.4 also spells the ChaCha20 ones
/// without the `_SHA256` suffix.
fn supported(name: &str) -> Option<SupportedCipherSuite> {
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_AES_128_GCM_SHA256" => cs::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_256_GCM_SHA384" => cs::TLS13_AES_256_GCM_SHA384,
        "TLS_CHACHA20_POLY1305_SHA256" => cs::TLS13_CHACHA20_POLY1305_SHA256,
        _ => return None,
    })
}

/// Suites Go (and so etcd) accepts that rustls deliberately does not implement:
/// CBC, RC4, 3DES and static-RSA key exchange.
const GO_ONLY: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// Resolves `--cipher-suites` into a provider. As in Go, the list only restricts TLS 1.2:
/// every TLS 1.3 suite stays enabled.
pub fn provider(names: &[String]) -> Result<CryptoProvider, String> {
    let mut provider = default_provider();
    if names.is_empty() {
        return Ok(provider);
    }
    let mut chosen: Vec<SupportedCipherSuite> = provider
        .cipher_suites
        .iter()
        .copied()
        .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
        .collect();
    for name in names {
        match supported(name) {
            Some(s @ SupportedCipherSuite::Tls12(_)) => {
                if !chosen.iter().any(|c| c.suite() == s.suite()) {
                    chosen.push(s);
                }
            }
            Some(SupportedCipherSuite::Tls13(_)) => {}
            None if GO_ONLY.contains(&name.as_str()) => {
                return Err(format!(
                    "--cipher-suites: {name:?} is not supported by Ballast (rustls implements only ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2)"
                ))
            }
            None => return Err(format!("--cipher-suites: unexpected TLS cipher suite {name:?}")),
        }
    }
    provider.cipher_suites = chosen;
    Ok(provider)
}

/// The enabled protocol versions: TLS 1.2 and 1.3 unless the flags narrow them.
pub fn versions(min: Option<&str>, max: Option<&str>) -> Vec<&'static SupportedProtocolVersion> {
    let rank = |v: Option<&str>, default: u8| match v {
        Some("TLS1.3") => 3,
        Some("TLS1.2") => 2,
        _ => default,
    };
    let (lo, hi) = (rank(min, 2), rank(max, 3));
    let mut out = Vec::new();
    if lo <= 2 && hi >= 2 {
        out.push(&rustls::version::TLS12);
    }
    if hi >= 3 {
        out.push(&rustls::version::TLS13);
    }
    out
}

pub fn crypto(cfg: &Config) -> Result<Crypto, String> {
    Ok(Crypto {
        names: cfg.cipher_suites.clone(),
        provider: Arc::new(provider(&cfg.cipher_suites)?),
        versions: versions(
            cfg.tls_min_version.as_deref(),
            cfg.tls_max_version.as_deref(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_names_map_to_rustls_suites_and_keep_tls13() {
        let p = provider(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()]).expect("known suite");
        let names: Vec<String> = p
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert!(
            names.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()),
            "{names:?}"
        );
        assert!(
            names.contains(&"TLS13_AES_128_GCM_SHA256".to_string()),
            "{names:?}"
        );
        assert!(
            !names.contains(&"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".to_string()),
            "{names:?}"
        );
        assert_eq!(p.cipher_suites.len(), 4, "{names:?}");
    }

    #[test]
    fn unknown_and_unsupported_names_are_refused_by_name() {
        let e = provider(&["TLS_BOGUS".into()]).expect_err("unknown suite refused");
        assert_eq!(
            e,
            "--cipher-suites: unexpected TLS cipher suite \"TLS_BOGUS\""
        );
        let e = provider(&["TLS_RSA_WITH_AES_128_CBC_SHA".into()]).expect_err("CBC refused");
        assert!(
            e.contains("\"TLS_RSA_WITH_AES_128_CBC_SHA\" is not supported"),
            "{e}"
        );
    }

    #[test]
    fn version_bounds() {
        let v = |lo, hi| {
            versions(lo, hi)
                .iter()
                .map(|v| format!("{:?}", v.version))
                .collect::<Vec<_>>()
        };
        assert_eq!(v(None, None), ["TLSv1_2", "TLSv1_3"]);
        assert_eq!(v(Some("TLS1.3"), None), ["TLSv1_3"]);
        assert_eq!(v(Some("TLS1.2"), Some("TLS1.2")), ["TLSv1_2"]);
    }
}
