//! Server configuration: etcd's flags, `ETCD_*` variables and `--config-file`.
//!
//! Ballast is a drop-in etcd server, so its command line is etcd's: every flag
//! of `etcd --help` (3.4 and 3.5) is accepted under the same name, in Go's
//! syntax, with etcd's defaults and etcd's error texts.
//!
//! Why a table-driven parser rather than clap: Go's `flag` syntax (single-dash
//! long flags, bool flags that take a value only after `=`, repeats where the
//! last wins, parsing that stops at the first non-flag), etcd's exact error
//! texts, the rule that `--config-file` makes every other flag and variable
//! ignored, and the config-file keys all follow from one table
//! ([`flags::FLAGS`]): name, kind, default, help and whether Ballast uses,
//! ignores or refuses the flag. With clap each of these would be a per-argument
//! override plus a translation of clap's own errors and help layout.
//!
//! Order of work, as in etcd: the command line is parsed completely first
//! (so a bad flag is an error even next to `--config-file`), then `--help` or
//! `--version` end the run, then either the config file alone or the flags
//! plus the environment give the values, then the values are checked together.

mod build;
mod cmdline;
mod entry;
mod env;
mod error;
mod file;
mod flags;
mod get;
mod help;
mod values;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub use error::ConfigError;
pub use help::DEFAULT_EMULATED_ETCD_VERSION;

use entry::{Source, Values};
use flags::{Support, FLAGS};
use values::Value;

/// What the command line asks for.
#[derive(Debug)]
pub enum Outcome {
    /// Start the server with this configuration.
    Run(Box<Config>),
    /// `--help` or `--version`: print this text to stdout and exit 0.
    PrintAndExit(String),
}

/// Parses the command line (`args` excludes argv\[0\]) and the environment.
/// The warnings are for the caller to log once logging is set up.
pub fn parse<I, S>(args: I, env: &[(String, String)]) -> Result<(Outcome, Vec<String>), ConfigError>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let cmd = cmdline::parse(args.into_iter().map(Into::into).collect())?;
    if cmd.help {
        return Ok((Outcome::PrintAndExit(help::usage()), Vec::new()));
    }
    let mut flag_values = Values::new();
    for (def, entry) in cmd.entries {
        flag_values.insert(def.name, entry);
    }
    if let Some(true) = bool_value(&flag_values, "version") {
        let emulated = emulated_version_hint(&flag_values, env);
        return Ok((
            Outcome::PrintAndExit(help::version_text(&emulated)),
            Vec::new(),
        ));
    }

    let mut warnings = Vec::new();
    let config_file = str_value(&flag_values, "config-file")
        .filter(|p| !p.is_empty())
        .or_else(|| env_value(env, "ETCD_CONFIG_FILE").filter(|p| !p.is_empty()));
    let values = match &config_file {
        Some(path) => {
            let ignored = ignored_by_config_file(&flag_values, env);
            if !ignored.is_empty() {
                warnings.push(format!(
                    "loaded server configuration from {path}; other configuration command line flags and environment variables are ignored: {}",
                    ignored.join(", ")
                ));
            }
            file::load(path, &mut warnings)?
        }
        None => {
            let mut values = flag_values;
            env::apply(&mut values, env, &mut warnings)?;
            values
        }
    };
    check_support(&values, &mut warnings)?;
    let mode = if config_file.is_some() {
        build::Mode::File
    } else {
        build::Mode::CommandLine
    };
    let mut config = build::build(&values, mode, &mut warnings)?;
    config.config_file = config_file.map(PathBuf::from);
    Ok((Outcome::Run(Box::new(config)), warnings))
}

/// Applies the table's support column: refuse, warn about ignoring, or note
/// a deprecation, for every value that was explicitly set.
fn check_support(values: &Values, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    for def in FLAGS {
        let Some(entry) = values.get(def.name) else {
            continue;
        };
        let label = entry.source.label(def);
        match def.support {
            Support::Used | Support::Special => {}
            Support::Refused(reason) => {
                if entry.value != entry::default_value(def)? {
                    return Err(ConfigError::Unsupported {
                        setting: format!("{label}={}", entry.raw),
                        reason: reason.to_string(),
                    });
                }
            }
            Support::Ignored => {
                if entry.value != entry::default_value(def)? {
                    warnings.push(format!(
                        "{label}={} is accepted for etcd compatibility but ignored by Ballast",
                        entry.raw
                    ));
                }
            }
            Support::Deprecated(note) => warnings.push(format!("{label} is deprecated: {note}")),
            // etcd's own words for these.
            Support::Obsolete => warnings.push(match entry.source {
                Source::Flag => {
                    format!("flag \"-{}\" is no longer supported - ignoring.", def.name)
                }
                _ => format!("{label} is no longer supported - ignoring."),
            }),
        }
    }
    Ok(())
}

/// Flags and `ETCD_*` variables that a config file makes etcd ignore.
fn ignored_by_config_file(flag_values: &Values, env: &[(String, String)]) -> Vec<String> {
    let mut ignored: Vec<String> = FLAGS
        .iter()
        .filter(|d| d.support != Support::Special && flag_values.contains_key(d.name))
        .map(|d| format!("--{}", d.name))
        .collect();
    ignored.extend(
        env.iter()
            .filter(|(k, v)| !v.is_empty() && k.starts_with("ETCD_"))
            .filter(|(k, _)| flags::lookup_env(k).is_some_and(|d| d.support != Support::Special))
            .map(|(k, _)| k.clone()),
    );
    ignored
}

/// The emulated version `--version` prints: the flag's or variable's if valid.
fn emulated_version_hint(flag_values: &Values, env: &[(String, String)]) -> String {
    str_value(flag_values, "emulated-etcd-version")
        .or_else(|| {
            let def = flags::lookup("emulated-etcd-version")?;
            let raw = env_value(env, "ETCD_EMULATED_ETCD_VERSION")?;
            entry::parse_entry(def, &raw, Source::Env).ok()?;
            Some(raw)
        })
        .unwrap_or_else(|| DEFAULT_EMULATED_ETCD_VERSION.to_string())
}

fn str_value(values: &Values, name: &str) -> Option<String> {
    match values.get(name).map(|e| &e.value) {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

fn bool_value(values: &Values, name: &str) -> Option<bool> {
    match values.get(name).map(|e| &e.value) {
        Some(Value::Bool(b)) => Some(*b),
        _ => None,
    }
}

fn env_value(env: &[(String, String)], key: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

/// `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap a new cluster from `--initial-cluster`.
    New,
    /// Join a cluster this member was added to with `member add`.
    Existing,
}

/// `--auto-compaction-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompactionMode {
    /// Retention is a duration (hours when no unit is given).
    Periodic,
    /// Retention is a number of revisions.
    Revision,
}

/// `--auto-compaction-retention` read according to the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionRetention {
    /// Retention `0`: no automatic compaction.
    Disabled,
    /// Periodic mode: keep this much history.
    Period(Duration),
    /// Revision mode: keep this many revisions.
    Revisions(u64),
}

/// One side's TLS settings (client or peer). Empty paths are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Certificate to present when this server acts as a client (etcd 3.5).
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    pub crl_file: Option<PathBuf>,
    /// Generate a self-signed certificate (`--auto-tls` / `--peer-auto-tls`).
    pub auto_tls: bool,
    /// Peer only (`--peer-cert-allowed-cn`); as given, comma-separated if several.
    pub allowed_cn: Option<String>,
    pub allowed_hostname: Option<String>,
    /// Peer only (`--experimental-peer-skip-client-san-verification`).
    pub skip_client_san_verification: bool,
}

impl TlsConfig {
    /// Whether this side serves TLS at all.
    pub fn is_enabled(&self) -> bool {
        self.cert_file.is_some() || self.auto_tls
    }
}

/// The server configuration. URL lists are sorted and de-duplicated, as etcd's
/// are. Note that `url::Url::port()` is `None` for a scheme's default port
/// (`http://host:80`); use `port_or_known_default()`.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    /// `--data-dir`, or `${name}.etcd` when not given.
    pub data_dir: PathBuf,
    pub wal_dir: Option<PathBuf>,
    pub listen_client_urls: Vec<url::Url>,
    pub advertise_client_urls: Vec<url::Url>,
    pub listen_peer_urls: Vec<url::Url>,
    pub initial_advertise_peer_urls: Vec<url::Url>,
    pub listen_metrics_urls: Vec<url::Url>,
    /// `name=url` pairs in the order given; a name repeats for several URLs.
    /// Built from `name` and `initial_advertise_peer_urls` when not given.
    pub initial_cluster: Vec<(String, url::Url)>,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    /// 0 is replaced by etcd's default (100000), as etcd does.
    pub snapshot_count: u64,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    /// As given; 0 means the 2 GiB default, negative disables the quota.
    /// See [`Config::effective_quota_bytes`].
    pub quota_backend_bytes: i64,
    pub max_request_bytes: u32,
    pub max_txn_ops: u32,
    pub max_concurrent_streams: u32,
    pub auto_compaction_mode: AutoCompactionMode,
    /// As given; checked against the mode. See [`Config::compaction_retention`].
    pub auto_compaction_retention: String,
    pub watch_progress_notify_interval: Duration,
    /// The etcd version reported in Status and `/version`.
    pub emulated_etcd_version: String,
    pub force_new_cluster: bool,
    pub strict_reconfig_check: bool,
    pub pre_vote: bool,
    pub initial_election_tick_advance: bool,
    /// Always `zap` (`capnslog` is accepted with a warning and mapped to it).
    pub logger: String,
    /// debug, info, warn, error, panic or fatal (`--debug` forces debug).
    pub log_level: String,
    /// `default`, `stderr`, `stdout` or file paths.
    pub log_outputs: Vec<String>,
    pub client_tls: TlsConfig,
    pub peer_tls: TlsConfig,
    /// Auto-TLS certificate validity in years.
    pub self_signed_cert_validity: u32,
    /// `TLS1.2` (etcd 3.5's default) or `TLS1.3`; `None` leaves it to the TLS library.
    pub tls_min_version: Option<String>,
    pub tls_max_version: Option<String>,
    /// Go cipher suite names, as given.
    pub cipher_suites: Vec<String>,
    pub grpc_keepalive_min_time: Duration,
    pub grpc_keepalive_interval: Duration,
    pub grpc_keepalive_timeout: Duration,
    pub max_snapshots: u32,
    pub max_wals: u32,
    pub enable_grpc_gateway: bool,
    /// Not an etcd 3.5 server flag (members become learners through
    /// `member add --learner`); always false, kept for the server's use.
    pub learner: bool,
    pub experimental_initial_corrupt_check: bool,
    pub experimental_corrupt_check_time: Duration,
    pub experimental_compaction_batch_limit: i64,
    /// `simple` or `jwt,...`, as given.
    pub auth_token: String,
    pub auth_token_ttl: Duration,
    pub bcrypt_cost: u32,
    /// The `--config-file` the values came from, if any.
    pub config_file: Option<PathBuf>,
}

/// etcd's `DefaultQuotaBytes`: what `--quota-backend-bytes=0` means.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;

impl Config {
    /// quota-backend-bytes with etcd's meaning of 0 (2 GiB) applied; a
    /// negative quota disables the check (etcd's passthrough quota), given
    /// here as `u64::MAX`.
    pub fn effective_quota_bytes(&self) -> u64 {
        match self.quota_backend_bytes {
            0 => DEFAULT_QUOTA_BYTES,
            q if q < 0 => u64::MAX,
            q => q.unsigned_abs(),
        }
    }

    /// `data_dir/member`.
    pub fn member_dir(&self) -> PathBuf {
        self.data_dir.join("member")
    }

    /// `wal_dir`, or `data_dir/member/wal`.
    pub fn wal_path(&self) -> PathBuf {
        self.wal_dir
            .clone()
            .unwrap_or_else(|| self.member_dir().join("wal"))
    }

    /// `data_dir/member/snap`, where etcd keeps snapshots and its backend.
    pub fn snap_dir(&self) -> PathBuf {
        self.member_dir().join("snap")
    }

    /// The auto-compaction setting, read by mode (checked when parsing).
    pub fn compaction_retention(&self) -> CompactionRetention {
        build::parse_retention(self.auto_compaction_mode, &self.auto_compaction_retention)
            .unwrap_or(CompactionRetention::Disabled)
    }

    /// The peer URLs `--initial-cluster` gives for `name`.
    pub fn initial_cluster_urls(&self, name: &str) -> Vec<url::Url> {
        self.initial_cluster
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, u)| u.clone())
            .collect()
    }
}
