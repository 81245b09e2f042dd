//! Turns the set values into a [`Config`] and checks them together, in the
//! order and with the texts of etcd's `embed.Config.Validate`.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::entry::Values;
use super::error::ConfigError;
use super::get::Get;
use super::values::{self, display_url, format_duration};
use super::{AutoCompactionMode, ClusterState, CompactionRetention, Config, TlsConfig};

/// Where the values came from; etcd checks a few things only for one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    CommandLine,
    File,
}

/// etcd's `maxElectionMs`.
const MAX_ELECTION_MS: u64 = 50_000;
/// etcd's `DefaultSnapshotCount`, used when 0 is given.
const DEFAULT_SNAPSHOT_COUNT: u64 = 100_000;
/// etcd's `MaxQuotaBytes` (8 GiB): above it etcd warns.
const MAX_QUOTA_BYTES: i64 = 8 * 1024 * 1024 * 1024;
/// etcd's `recommendedMaxRequestBytes` (10 MiB): above it etcd warns.
const RECOMMENDED_MAX_REQUEST_BYTES: u32 = 10 * 1024 * 1024;
const LOG_LEVELS: [&str; 6] = ["debug", "info", "warn", "error", "panic", "fatal"];

pub(crate) fn build(
    values: &Values,
    mode: Mode,
    warnings: &mut Vec<String>,
) -> Result<Config, ConfigError> {
    let get = Get(values);
    let name = get.str("name")?;
    let data_dir = match get.str("data-dir")? {
        dir if dir.is_empty() => PathBuf::from(format!("{name}.etcd")),
        dir => PathBuf::from(dir),
    };

    let (logger, log_level, log_outputs) = logging(&get, warnings)?;

    let listen_client_urls = get.urls("listen-client-urls")?;
    let advertise_client_urls = get.urls("advertise-client-urls")?;
    let listen_peer_urls = get.urls("listen-peer-urls")?;
    let initial_advertise_peer_urls = get.urls("initial-advertise-peer-urls")?;
    let initial_cluster = initial_cluster(&get, &name, &initial_advertise_peer_urls)?;
    check_host_urls(
        &initial_advertise_peer_urls,
        "--initial-advertise-peer-urls",
    )?;
    check_host_urls(&advertise_client_urls, "--advertise-client-urls")?;

    let heartbeat_ms = get.uint("heartbeat-interval")?;
    let election_ms = get.uint("election-timeout")?;
    check_election(heartbeat_ms, election_ms)?;

    // etcd: the default advertise URL is dropped when the listen URL is given
    // explicitly, so a node never advertises an address it does not serve.
    if mode == Mode::CommandLine
        && get.is_set("listen-client-urls")
        && !get.is_set("advertise-client-urls")
    {
        return Err(ConfigError::Invalid(
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                .into(),
        ));
    }
    if listen_client_urls.is_empty() {
        return Err(ConfigError::Invalid(
            "--listen-client-urls must list at least one URL: Ballast serves clients only there"
                .into(),
        ));
    }

    let auto_compaction_mode = match get.str("auto-compaction-mode")?.as_str() {
        "periodic" => AutoCompactionMode::Periodic,
        "revision" => AutoCompactionMode::Revision,
        other => {
            return Err(ConfigError::Invalid(format!(
                "unknown auto-compaction-mode {other:?}"
            )))
        }
    };
    let auto_compaction_retention = get.str("auto-compaction-retention")?;
    parse_retention(auto_compaction_mode, &auto_compaction_retention)
        .map_err(ConfigError::Invalid)?;

    check_experimental(&get)?;

    let client_tls = tls(&get, "")?;
    let peer_tls = tls(&get, "peer-")?;
    check_https(
        &listen_client_urls,
        &client_tls,
        "client",
        "--cert-file, --key-file",
    )?;
    check_https(
        &listen_peer_urls,
        &peer_tls,
        "peer",
        "--peer-cert-file, --peer-key-file",
    )?;
    let cipher_suites = get.list("cipher-suites")?;
    let (tls_min_version, tls_max_version) = tls_versions(&get, &cipher_suites)?;

    let quota_backend_bytes = get.int("quota-backend-bytes")?;
    if quota_backend_bytes < 0 {
        warnings.push("disabled backend quota: --quota-backend-bytes is negative".into());
    } else if quota_backend_bytes > MAX_QUOTA_BYTES {
        warnings.push(format!(
            "--quota-backend-bytes {quota_backend_bytes} exceeds the maximum recommended size of {MAX_QUOTA_BYTES} bytes (8 GiB)"
        ));
    }
    let max_request_bytes = get.u32("max-request-bytes")?;
    if max_request_bytes > RECOMMENDED_MAX_REQUEST_BYTES {
        warnings.push(format!(
            "--max-request-bytes {max_request_bytes} exceeds the recommended request limit of {RECOMMENDED_MAX_REQUEST_BYTES} bytes (10 MiB)"
        ));
    }

    Ok(Config {
        name,
        data_dir,
        wal_dir: get.opt_path("wal-dir")?,
        listen_client_urls,
        advertise_client_urls,
        listen_peer_urls,
        initial_advertise_peer_urls,
        listen_metrics_urls: get.urls("listen-metrics-urls")?,
        initial_cluster,
        initial_cluster_state: match get.str("initial-cluster-state")?.as_str() {
            "existing" => ClusterState::Existing,
            _ => ClusterState::New,
        },
        initial_cluster_token: get.str("initial-cluster-token")?,
        snapshot_count: match get.uint("snapshot-count")? {
            0 => DEFAULT_SNAPSHOT_COUNT,
            n => n,
        },
        heartbeat_interval: Duration::from_millis(heartbeat_ms),
        election_timeout: Duration::from_millis(election_ms),
        quota_backend_bytes,
        max_request_bytes,
        max_txn_ops: get.u32("max-txn-ops")?,
        max_concurrent_streams: get.u32("max-concurrent-streams")?,
        auto_compaction_mode,
        auto_compaction_retention,
        watch_progress_notify_interval: get
            .duration("experimental-watch-progress-notify-interval")?,
        emulated_etcd_version: get.str("emulated-etcd-version")?,
        force_new_cluster: get.bool("force-new-cluster")?,
        strict_reconfig_check: get.bool("strict-reconfig-check")?,
        pre_vote: get.bool("pre-vote")?,
        initial_election_tick_advance: get.bool("initial-election-tick-advance")?,
        logger,
        log_level,
        log_outputs,
        client_tls,
        peer_tls,
        self_signed_cert_validity: get.u32("self-signed-cert-validity")?,
        tls_min_version,
        tls_max_version,
        cipher_suites,
        grpc_keepalive_min_time: get.duration("grpc-keepalive-min-time")?,
        grpc_keepalive_interval: get.duration("grpc-keepalive-interval")?,
        grpc_keepalive_timeout: get.duration("grpc-keepalive-timeout")?,
        max_snapshots: get.u32("max-snapshots")?,
        max_wals: get.u32("max-wals")?,
        enable_grpc_gateway: get.bool("enable-grpc-gateway")?,
        learner: false,
        experimental_initial_corrupt_check: get.bool("experimental-initial-corrupt-check")?,
        experimental_corrupt_check_time: get.duration("experimental-corrupt-check-time")?,
        experimental_compaction_batch_limit: get.int("experimental-compaction-batch-limit")?,
        auth_token: get.str("auth-token")?,
        auth_token_ttl: Duration::from_secs(get.uint("auth-token-ttl")?),
        bcrypt_cost: get.u32("bcrypt-cost")?,
        config_file: None,
    })
}

/// Logger, level and outputs, as etcd's `setupLogging` checks them.
fn logging(
    get: &Get,
    warnings: &mut Vec<String>,
) -> Result<(String, String, Vec<String>), ConfigError> {
    match get.str("logger")?.as_str() {
        "zap" => {}
        // etcd 3.4's default; 3.5 refuses it. Ballast has one logger anyway.
        "capnslog" => warnings.push(
            "--logger=capnslog was removed in etcd v3.5; Ballast logs structured (zap-style) output".into(),
        ),
        other => return Err(get.invalid("logger", &format!("unknown logger option {other:?}"))),
    }
    let mut level = get.str("log-level")?;
    if !LOG_LEVELS.contains(&level.as_str()) {
        return Err(get.invalid("log-level", &format!("unknown level {level:?}")));
    }
    if get.bool("debug")? {
        level = "debug".into();
    }
    let mut outputs = get.list("log-outputs")?;
    outputs.dedup();
    if outputs.len() > 1 && outputs.iter().any(|o| o == "default") {
        return Err(ConfigError::Invalid(
            "multi logoutput for \"default\" is not supported yet".into(),
        ));
    }
    if outputs.is_empty() {
        outputs.push("default".into());
    }
    Ok(("zap".into(), level, outputs))
}

/// `--initial-cluster`, or etcd's default built from the name and the
/// advertised peer URLs. Like etcd, a cluster equal to the stock default
/// (`default=http://localhost:2380`) is rebuilt when `--name` is not `default`.
fn initial_cluster(
    get: &Get,
    name: &str,
    peer_urls: &[Url],
) -> Result<Vec<(String, Url)>, ConfigError> {
    let given = get.cluster("initial-cluster")?;
    let stock =
        get.is_set("initial-cluster") && get.is_default("initial-cluster")? && name != "default";
    if get.is_set("initial-cluster") && !stock {
        return Ok(given);
    }
    Ok(peer_urls
        .iter()
        .map(|u| (name.to_string(), u.clone()))
        .collect())
}

fn check_election(heartbeat_ms: u64, election_ms: u64) -> Result<(), ConfigError> {
    if heartbeat_ms == 0 {
        return Err(ConfigError::Invalid(format!(
            "--heartbeat-interval must be >0 (set to {heartbeat_ms}ms)"
        )));
    }
    if election_ms == 0 {
        return Err(ConfigError::Invalid(format!(
            "--election-timeout must be >0 (set to {election_ms}ms)"
        )));
    }
    if heartbeat_ms.saturating_mul(5) > election_ms {
        return Err(ConfigError::Invalid(format!(
            "--election-timeout[{election_ms}ms] should be at least as 5 times as --heartbeat-interval[{heartbeat_ms}ms]"
        )));
    }
    if election_ms > MAX_ELECTION_MS {
        return Err(ConfigError::Invalid(format!(
            "--election-timeout[{election_ms}ms] is too long, and should be set less than {MAX_ELECTION_MS}ms"
        )));
    }
    Ok(())
}

/// etcd's checks on experimental flags, kept even where Ballast ignores the flag.
fn check_experimental(get: &Get) -> Result<(), ConfigError> {
    if get.bool("experimental-enable-lease-checkpoint-persist")?
        && !get.bool("experimental-enable-lease-checkpoint")?
    {
        return Err(ConfigError::Invalid(
            "setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint".into(),
        ));
    }
    let hash_check = get.duration("experimental-compact-hash-check-time")?;
    if hash_check.is_zero() {
        return Err(ConfigError::Invalid(format!(
            "--experimental-compact-hash-check-time must be >0 (set to {})",
            format_duration(hash_check)
        )));
    }
    Ok(())
}

/// etcd's `parseCompactionRetention`: a bare integer is hours (periodic) or
/// revisions; otherwise a Go duration.
pub(crate) fn parse_retention(
    mode: AutoCompactionMode,
    s: &str,
) -> Result<CompactionRetention, String> {
    let s = if s.is_empty() { "0" } else { s };
    if let Ok(n) = s.parse::<u64>() {
        return Ok(match (n, mode) {
            (0, _) => CompactionRetention::Disabled,
            (n, AutoCompactionMode::Periodic) => {
                CompactionRetention::Period(Duration::from_secs(n.saturating_mul(3600)))
            }
            (n, AutoCompactionMode::Revision) => CompactionRetention::Revisions(n),
        });
    }
    if mode == AutoCompactionMode::Revision {
        return Err(format!(
            "--auto-compaction-retention {s:?} must be a number of revisions when --auto-compaction-mode is revision"
        ));
    }
    match values::parse_duration(s) {
        Ok(d) if d.is_zero() => Ok(CompactionRetention::Disabled),
        Ok(d) => Ok(CompactionRetention::Period(d)),
        Err(e) => Err(format!("error parsing CompactionRetention: {e}")),
    }
}

/// One side's TLS flags; `prefix` is `""` for client flags, `"peer-"` for peer ones.
fn tls(get: &Get, prefix: &str) -> Result<TlsConfig, ConfigError> {
    let peer = !prefix.is_empty();
    let path = |flag: &str| get.opt_path(&format!("{prefix}{flag}"));
    let cfg = TlsConfig {
        cert_file: path("cert-file")?,
        key_file: path("key-file")?,
        client_cert_file: path("client-cert-file")?,
        client_key_file: path("client-key-file")?,
        trusted_ca_file: path("trusted-ca-file")?,
        client_cert_auth: get.bool(&format!("{prefix}client-cert-auth"))?,
        crl_file: get.opt_path(if peer {
            "peer-crl-file"
        } else {
            "client-crl-file"
        })?,
        auto_tls: get.bool(&format!("{prefix}auto-tls"))?,
        allowed_cn: if peer {
            get.opt_str("peer-cert-allowed-cn")?
        } else {
            None
        },
        allowed_hostname: get.opt_str(if peer {
            "peer-cert-allowed-hostname"
        } else {
            "client-cert-allowed-hostname"
        })?,
        skip_client_san_verification: peer
            && get.bool("experimental-peer-skip-client-san-verification")?,
    };
    if cfg.cert_file.is_some() != cfg.key_file.is_some() {
        let show = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        return Err(ConfigError::Invalid(format!(
            "--{prefix}key-file and --{prefix}cert-file must both be present[key: {}, cert: {}]",
            show(&cfg.key_file),
            show(&cfg.cert_file)
        )));
    }
    Ok(cfg)
}

/// etcd's `checkHostURLs`: advertised URLs must be `host:port`. For http(s) URLs the
/// flag's own parsing already checked that; this catches `unix` ones such as
/// `unix:///run/etcd.sock`, which etcd 3.5 serves on but cannot advertise (a peer or
/// client dials the socket named by host and port, see [`crate::listen::unix`]).
fn check_host_urls(urls: &[Url], flag: &str) -> Result<(), ConfigError> {
    for u in urls {
        let authority = &u[url::Position::BeforeHost..url::Position::AfterPort];
        let problem = match go_split_host_port(authority) {
            Err(e) if authority.is_empty() => e.to_string(),
            Err(e) => format!("address {authority}: {e}"),
            Ok("") => format!("unexpected empty host ({})", display_url(u)),
            Ok(_) => continue,
        };
        let all: Vec<String> = urls.iter().map(display_url).collect();
        return Err(ConfigError::Invalid(format!(
            "{flag} {:?} must be \"host:port\" ({problem})",
            all.join(",")
        )));
    }
    Ok(())
}

/// Go's `net.SplitHostPort`, for the host: the error texts are Go's.
fn go_split_host_port(hostport: &str) -> Result<&str, &'static str> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return Err("missing ']' in address");
        };
        return match &rest[close + 1..] {
            "" => Err("missing port in address"),
            tail if tail.starts_with(':') && !tail[1..].contains(':') => Ok(&rest[..close]),
            _ => Err("too many colons in address"),
        };
    }
    match hostport.matches(':').count() {
        0 => Err("missing port in address"),
        1 => Ok(&hostport[..hostport.find(':').unwrap_or(0)]),
        _ => Err("too many colons in address"),
    }
}

/// etcd refuses an https (or unixs) listener without a certificate.
fn check_https(urls: &[Url], tls: &TlsConfig, side: &str, flags: &str) -> Result<(), ConfigError> {
    match urls
        .iter()
        .find(|u| matches!(u.scheme(), "https" | "unixs"))
    {
        Some(u) if !tls.is_enabled() => Err(ConfigError::Invalid(format!(
            "TLS key/cert ({flags}) must be provided for {side} url {} with HTTPS scheme",
            display_url(u)
        ))),
        _ => Ok(()),
    }
}

/// etcd 3.5's `tlsutil.GetTLSVersion` plus the checks on the pair.
fn tls_versions(
    get: &Get,
    cipher_suites: &[String],
) -> Result<(Option<String>, Option<String>), ConfigError> {
    let version = |flag: &str| -> Result<Option<String>, ConfigError> {
        match get.str(flag)?.as_str() {
            "" => Ok(None),
            v @ ("TLS1.2" | "TLS1.3") => Ok(Some(v.to_string())),
            v => Err(get.invalid(
                flag,
                &format!("unexpected TLS version {v:?} (must be one of: TLS1.2, TLS1.3)"),
            )),
        }
    };
    let (min, max) = (version("tls-min-version")?, version("tls-max-version")?);
    if let (Some(lo), Some(hi)) = (&min, &max) {
        if lo > hi {
            return Err(ConfigError::Invalid(format!(
                "min version ({lo}) is greater than max version ({hi})"
            )));
        }
    }
    if min.as_deref() == Some("TLS1.3") && !cipher_suites.is_empty() {
        return Err(ConfigError::Invalid(
            "cipher suites cannot be configured when only TLS1.3 is enabled".into(),
        ));
    }
    Ok((min, max))
}
