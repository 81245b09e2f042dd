//! Texts marked "etcd 3.4.23" were checked by running that etcd with the same
//! arguments; Ballast's message is the same text (plus a hint for unknown flags).

use std::collections::HashSet;
use std::time::Duration;

use super::flags::{Group, Kind, FLAGS};
use super::*;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn parse_with(args: &[&str], vars: &[(&str, &str)]) -> Result<(Config, Vec<String>), ConfigError> {
    match parse(args.iter().copied(), &env(vars))? {
        (Outcome::Run(cfg), warnings) => Ok((*cfg, warnings)),
        (Outcome::PrintAndExit(text), _) => panic!("unexpected print-and-exit:\n{text}"),
    }
}

fn config(args: &[&str]) -> Config {
    match parse_with(args, &[]) {
        Ok((cfg, _)) => cfg,
        Err(e) => panic!("{args:?} should parse: {e}"),
    }
}

fn warnings(args: &[&str], vars: &[(&str, &str)]) -> Vec<String> {
    match parse_with(args, vars) {
        Ok((_, w)) => w,
        Err(e) => panic!("{args:?} should parse: {e}"),
    }
}

fn error(args: &[&str]) -> String {
    error_env(args, &[])
}

fn error_env(args: &[&str], vars: &[(&str, &str)]) -> String {
    match parse_with(args, vars) {
        Ok(_) => panic!("{args:?} {vars:?} should fail"),
        Err(e) => e.to_string(),
    }
}

fn url(s: &str) -> url::Url {
    url::Url::parse(s).expect("test URL")
}

fn write_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("etcd.yml");
    std::fs::write(&path, text).expect("write config file");
    path.display().to_string()
}

#[test]
fn defaults_are_etcds() {
    let (cfg, warnings) = parse_with(&[], &[]).expect("defaults");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(cfg.name, "default");
    assert_eq!(cfg.data_dir, PathBuf::from("default.etcd"));
    assert_eq!(cfg.wal_dir, None);
    assert_eq!(cfg.listen_client_urls, vec![url("http://localhost:2379")]);
    assert_eq!(
        cfg.advertise_client_urls,
        vec![url("http://localhost:2379")]
    );
    assert_eq!(cfg.listen_peer_urls, vec![url("http://localhost:2380")]);
    assert_eq!(
        cfg.initial_advertise_peer_urls,
        vec![url("http://localhost:2380")]
    );
    assert!(cfg.listen_metrics_urls.is_empty());
    assert_eq!(
        cfg.initial_cluster,
        vec![("default".to_string(), url("http://localhost:2380"))]
    );
    assert_eq!(cfg.initial_cluster_state, ClusterState::New);
    assert_eq!(cfg.initial_cluster_token, "etcd-cluster");
    assert_eq!(cfg.snapshot_count, 100_000);
    assert_eq!(cfg.heartbeat_interval, Duration::from_millis(100));
    assert_eq!(cfg.election_timeout, Duration::from_millis(1000));
    assert_eq!(cfg.quota_backend_bytes, 0);
    assert_eq!(cfg.effective_quota_bytes(), 2 * 1024 * 1024 * 1024);
    assert_eq!(cfg.max_request_bytes, 1_572_864);
    assert_eq!(cfg.max_txn_ops, 128);
    assert_eq!(cfg.max_concurrent_streams, u32::MAX);
    assert_eq!(cfg.grpc_keepalive_min_time, Duration::from_secs(5));
    assert_eq!(cfg.grpc_keepalive_interval, Duration::from_secs(2 * 3600));
    assert_eq!(cfg.grpc_keepalive_timeout, Duration::from_secs(20));
    assert_eq!(cfg.auto_compaction_mode, AutoCompactionMode::Periodic);
    assert_eq!(cfg.auto_compaction_retention, "0");
    assert_eq!(cfg.compaction_retention(), CompactionRetention::Disabled);
    assert_eq!(cfg.watch_progress_notify_interval, Duration::from_secs(600));
    assert_eq!(cfg.emulated_etcd_version, "3.5.17");
    assert!(!cfg.force_new_cluster);
    assert!(cfg.strict_reconfig_check);
    assert!(cfg.pre_vote, "etcd 3.5 default");
    assert!(cfg.initial_election_tick_advance);
    assert_eq!(
        (cfg.logger.as_str(), cfg.log_level.as_str()),
        ("zap", "info")
    );
    assert_eq!(cfg.log_outputs, vec!["default".to_string()]);
    assert_eq!(cfg.client_tls, TlsConfig::default());
    assert_eq!(cfg.peer_tls, TlsConfig::default());
    assert_eq!(cfg.tls_min_version.as_deref(), Some("TLS1.2"));
    assert_eq!(cfg.tls_max_version, None);
    assert!(cfg.cipher_suites.is_empty());
    assert_eq!((cfg.max_snapshots, cfg.max_wals), (5, 5));
    assert!(cfg.enable_grpc_gateway);
    assert!(!cfg.learner);
    assert!(!cfg.experimental_initial_corrupt_check);
    assert_eq!(cfg.experimental_compaction_batch_limit, 1000);
    assert_eq!(cfg.auth_token, "simple");
    assert_eq!(cfg.auth_token_ttl, Duration::from_secs(300));
    assert_eq!(cfg.bcrypt_cost, 10);
    assert_eq!(cfg.config_file, None);
    assert_eq!(cfg.member_dir(), PathBuf::from("default.etcd/member"));
    assert_eq!(cfg.wal_path(), PathBuf::from("default.etcd/member/wal"));
}

#[test]
fn every_default_in_the_table_parses() {
    for def in FLAGS {
        assert!(
            entry::default_value(def).is_ok(),
            "default of --{}",
            def.name
        );
    }
}

#[test]
fn names_env_vars_and_file_keys_are_unique() {
    let mut names = HashSet::new();
    let mut envs = HashSet::new();
    let mut keys = HashSet::new();
    for def in FLAGS {
        assert!(names.insert(def.name), "--{} twice", def.name);
        assert!(envs.insert(def.env_name()), "{} twice", def.env_name());
        assert!(keys.insert(format!("{:?}:{}", def.file, def.name)));
        assert_eq!(
            flags::lookup_env(&def.env_name()).map(|d| d.name),
            Some(def.name)
        );
    }
}

#[test]
fn every_etcd_help_flag_is_accepted() {
    // The flags of `etcd --help` (3.4.23) and of the 3.5 help in the runbook.
    let etcd_help = "name data-dir wal-dir snapshot-count heartbeat-interval election-timeout \
        initial-election-tick-advance listen-peer-urls listen-client-urls listen-client-http-urls \
        max-snapshots max-wals quota-backend-bytes backend-bbolt-freelist-type backend-batch-interval \
        backend-batch-limit max-txn-ops max-request-bytes max-concurrent-streams grpc-keepalive-min-time \
        grpc-keepalive-interval grpc-keepalive-timeout socket-reuse-port socket-reuse-address \
        initial-advertise-peer-urls initial-cluster initial-cluster-state initial-cluster-token \
        advertise-client-urls discovery discovery-fallback discovery-proxy discovery-srv \
        discovery-srv-name strict-reconfig-check pre-vote auto-compaction-retention \
        auto-compaction-mode enable-v2 v2-deprecation cert-file key-file client-cert-auth \
        client-crl-file client-cert-allowed-hostname trusted-ca-file auto-tls peer-cert-file \
        peer-key-file peer-client-cert-auth peer-trusted-ca-file peer-cert-allowed-cn \
        peer-cert-allowed-hostname peer-auto-tls self-signed-cert-validity peer-crl-file cipher-suites \
        cors host-whitelist tls-min-version tls-max-version auth-token bcrypt-cost auth-token-ttl \
        enable-pprof metrics listen-metrics-urls logger log-outputs log-level enable-log-rotation \
        log-rotation-config-json experimental-enable-distributed-tracing \
        experimental-distributed-tracing-address experimental-distributed-tracing-service-name \
        experimental-distributed-tracing-instance-id proxy proxy-failure-wait proxy-refresh-interval \
        proxy-dial-timeout proxy-write-timeout proxy-read-timeout experimental-initial-corrupt-check \
        experimental-corrupt-check-time experimental-compact-hash-check-enabled \
        experimental-compact-hash-check-time experimental-enable-v2v3 \
        experimental-backend-bbolt-freelist-type experimental-enable-lease-checkpoint \
        experimental-compaction-batch-limit experimental-peer-skip-client-san-verification \
        experimental-watch-progress-notify-interval experimental-warning-apply-duration \
        experimental-txn-mode-write-with-shared-buffer experimental-bootstrap-defrag-threshold-megabytes \
        force-new-cluster unsafe-no-fsync debug log-package-levels";
    for name in etcd_help.split_whitespace() {
        let def = flags::lookup(name).unwrap_or_else(|| panic!("--{name} missing"));
        // Each flag at its own default is accepted from the command line.
        let arg = format!("--{name}={}", def.default);
        let args = [
            arg.as_str(),
            "--advertise-client-urls=http://localhost:2379",
        ];
        assert!(
            parse_with(&args, &[]).is_ok(),
            "{arg}: {:?}",
            parse_with(&args, &[]).err()
        );
    }
}

#[test]
fn help_lists_every_visible_flag_with_its_default() {
    let (outcome, _) = parse(["--help"], &[]).expect("help");
    let Outcome::PrintAndExit(text) = outcome else {
        panic!("--help should print");
    };
    assert!(text.starts_with("Usage:"));
    assert!(
        text.contains("\nMember:\n  --name 'default'\n    Human-readable name for this member.\n")
    );
    assert!(text.contains("  --data-dir '${name}.etcd'\n"));
    assert!(text.contains("  --emulated-etcd-version '3.5.17'\n"));
    assert!(text.contains("  --enable-v2 'false'\n    Accept etcd V2 client requests.\n    [Ballast: only 'false' is accepted"));
    for def in FLAGS.iter().filter(|d| d.group != Group::Hidden) {
        assert!(
            text.contains(&format!("  --{} '", def.name)),
            "--{} not in help",
            def.name
        );
    }
    for short in ["-h", "-help", "--h"] {
        assert!(
            matches!(parse([short], &[]), Ok((Outcome::PrintAndExit(_), _))),
            "{short}"
        );
    }
}

#[test]
fn version_prints_ballast_and_emulated_etcd_versions() {
    let text = match parse(["--version"], &[]) {
        Ok((Outcome::PrintAndExit(text), _)) => text,
        other => panic!("--version should print: {other:?}"),
    };
    assert!(text.starts_with(&format!("ballast Version: {}\n", env!("CARGO_PKG_VERSION"))));
    assert!(text.contains("etcd Version (emulated): 3.5.17\n"));
    assert!(text.contains("Git SHA: "));
    assert!(text.contains("Rust Version: "));
    assert!(text.contains(&format!(
        "OS/Arch: {}/{}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )));

    let custom = parse(["-version", "-emulated-etcd-version=3.4.30"], &[]);
    assert!(
        matches!(custom, Ok((Outcome::PrintAndExit(t), _)) if t.contains("(emulated): 3.4.30"))
    );
    // `--version=false` does not print.
    assert!(matches!(
        parse(["--version=false"], &[]),
        Ok((Outcome::Run(_), _))
    ));
}

#[test]
fn single_dash_double_dash_equals_and_space_forms() {
    for args in [
        &["-name", "n1"][..],
        &["--name", "n1"],
        &["-name=n1"],
        &["--name=n1"],
        &["--name", "x", "--name=n1"], // repeated: the last wins, as in Go
    ] {
        assert_eq!(config(args).name, "n1", "{args:?}");
    }
    let cfg = config(&[
        "-data-dir",
        "/var/lib/etcd",
        "-wal-dir=/wal",
        "-snapshot-count",
        "5000",
    ]);
    assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/etcd"));
    assert_eq!(cfg.wal_path(), PathBuf::from("/wal"));
    assert_eq!(cfg.member_dir(), PathBuf::from("/var/lib/etcd/member"));
    assert_eq!(cfg.snapshot_count, 5000);
    // A non-bool flag takes the next argument even if it looks like a flag (Go).
    assert_eq!(
        config(&["--initial-cluster-token", "--x"]).initial_cluster_token,
        "--x"
    );
    // `--` ends the flags.
    assert_eq!(config(&["--name=a", "--"]).name, "a");
}

#[test]
fn bool_flags_take_go_values_only_after_equals() {
    assert!(config(&["--force-new-cluster"]).force_new_cluster);
    assert!(config(&["-force-new-cluster=true"]).force_new_cluster);
    assert!(!config(&["--strict-reconfig-check=false"]).strict_reconfig_check);
    assert!(!config(&["-pre-vote=0"]).pre_vote);
    assert!(config(&["--experimental-initial-corrupt-check=T"]).experimental_initial_corrupt_check);
    assert!(!config(&["--initial-election-tick-advance=FALSE"]).initial_election_tick_advance);
    // etcd 3.4.23: a bool flag does not consume the next argument.
    assert_eq!(
        error(&["--enable-v2", "false"]),
        "'false' is not a valid flag"
    );
    // etcd 3.4.23
    assert_eq!(
        error(&["--enable-v2=maybe"]),
        r#"invalid boolean value "maybe" for -enable-v2: parse error"#
    );
    assert_eq!(
        error(&["--enable-v2="]),
        r#"invalid boolean value "" for -enable-v2: parse error"#
    );
}

#[test]
fn go_integer_forms_are_accepted() {
    // etcd 3.4.23 starts with each of these (Go parses integers with base 0).
    assert_eq!(
        config(&["--heartbeat-interval=0x10", "--election-timeout=1000"]).heartbeat_interval,
        Duration::from_millis(16)
    );
    assert_eq!(
        config(&["--heartbeat-interval=1_00"]).heartbeat_interval,
        Duration::from_millis(100)
    );
    assert_eq!(
        config(&["--heartbeat-interval=010"]).heartbeat_interval,
        Duration::from_millis(8)
    );
    assert_eq!(
        config(&["--quota-backend-bytes=-1"]).effective_quota_bytes(),
        u64::MAX
    );
    assert_eq!(
        config(&["--quota-backend-bytes=0x100000"]).effective_quota_bytes(),
        1 << 20
    );
    assert_eq!(
        config(&["--grpc-keepalive-min-time=1.5h"]).grpc_keepalive_min_time,
        Duration::from_secs(5400)
    );
    assert_eq!(
        config(&["--grpc-keepalive-timeout=0"]).grpc_keepalive_timeout,
        Duration::ZERO
    );
}

#[test]
fn bad_values_name_the_flag_with_etcds_text() {
    // All verified against etcd 3.4.23.
    let cases = [
        (
            "--heartbeat-interval=abc",
            r#"invalid value "abc" for flag -heartbeat-interval: parse error"#,
        ),
        (
            "--election-timeout=abc",
            r#"invalid value "abc" for flag -election-timeout: parse error"#,
        ),
        (
            "--snapshot-count=-1",
            r#"invalid value "-1" for flag -snapshot-count: parse error"#,
        ),
        (
            "--snapshot-count=99999999999999999999999",
            r#"invalid value "99999999999999999999999" for flag -snapshot-count: value out of range"#,
        ),
        (
            "--max-request-bytes=abc",
            r#"invalid value "abc" for flag -max-request-bytes: parse error"#,
        ),
        (
            "--grpc-keepalive-min-time=abc",
            r#"invalid value "abc" for flag -grpc-keepalive-min-time: parse error"#,
        ),
        (
            "--grpc-keepalive-min-time=5",
            r#"invalid value "5" for flag -grpc-keepalive-min-time: parse error"#,
        ),
        (
            "--initial-cluster-state=bogus",
            r#"invalid value "bogus" for flag -initial-cluster-state: invalid value"#,
        ),
        (
            "--listen-client-urls=http://127.0.0.1:23790/foo",
            r#"invalid value "http://127.0.0.1:23790/foo" for flag -listen-client-urls: URL must not contain a path: http://127.0.0.1:23790/foo"#,
        ),
        (
            "--listen-client-urls=ftp://127.0.0.1:23790",
            r#"invalid value "ftp://127.0.0.1:23790" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: ftp://127.0.0.1:23790"#,
        ),
        (
            "--listen-client-urls=127.0.0.1:2379",
            r#"invalid value "127.0.0.1:2379" for flag -listen-client-urls: parse "127.0.0.1:2379": first path segment in URL cannot contain colon"#,
        ),
        (
            "--listen-client-urls=http://[::1",
            r#"invalid value "http://[::1" for flag -listen-client-urls: parse "http://[::1": missing ']' in host"#,
        ),
        (
            "--advertise-client-urls=http://127.0.0.1",
            r#"invalid value "http://127.0.0.1" for flag -advertise-client-urls: URL address does not have the form "host:port": http://127.0.0.1"#,
        ),
        (
            "--initial-advertise-peer-urls=gopher://127.0.0.1:2380",
            r#"invalid value "gopher://127.0.0.1:2380" for flag -initial-advertise-peer-urls: URL scheme must be http, https, unix, or unixs: gopher://127.0.0.1:2380"#,
        ),
        (
            "--listen-metrics-urls=ftp://x:1",
            r#"invalid value "ftp://x:1" for flag -listen-metrics-urls: URL scheme must be http, https, unix, or unixs: ftp://x:1"#,
        ),
    ];
    for (arg, want) in cases {
        assert_eq!(error(&[arg]), want, "{arg}");
    }
    // etcd's text is "expected IP in URL for binding (...)" from a later check;
    // Ballast reports it at the value, naming the flag.
    assert_eq!(
        error(&[
            "--listen-client-urls=http://example.com:32379",
            "--advertise-client-urls=http://a:1"
        ]),
        r#"invalid value "http://example.com:32379" for flag -listen-client-urls: expected IP in URL for binding (http://example.com:32379)"#
    );
    assert!(error(&["--advertise-client-urls=http://:32379"])
        .contains("unexpected empty host (http://:32379)"));
    assert!(error(&["--max-request-bytes=5000000000"])
        .ends_with("for flag -max-request-bytes: value out of range"));
    assert!(error(&["--emulated-etcd-version=latest"])
        .starts_with(r#"invalid value "latest" for flag -emulated-etcd-version: "#));
}

#[test]
fn bad_values_from_env_name_the_variable() {
    // etcd 3.4.23 (inside its "error verifying flags, ..." wrapper).
    assert_eq!(
        error_env(&[], &[("ETCD_HEARTBEAT_INTERVAL", "abc")]),
        r#"invalid value "abc" for ETCD_HEARTBEAT_INTERVAL: parse error"#
    );
    assert_eq!(
        error_env(&[], &[("ETCD_ENABLE_V2", "maybe")]),
        r#"invalid value "maybe" for ETCD_ENABLE_V2: parse error"#
    );
    assert_eq!(
        error_env(&[], &[("ETCD_LISTEN_CLIENT_URLS", "http://a:1/x")]),
        r#"invalid value "http://a:1/x" for ETCD_LISTEN_CLIENT_URLS: URL must not contain a path: http://a:1/x"#
    );
}

#[test]
fn election_timeout_checks_use_etcds_text() {
    // All verified against etcd 3.4.23.
    let cases = [
        (&["--heartbeat-interval=1", "--election-timeout=1"][..], "--election-timeout[1ms] should be at least as 5 times as --heartbeat-interval[1ms]"),
        (&["--heartbeat-interval=100", "--election-timeout=400"], "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]"),
        (&["--election-timeout=60000"], "--election-timeout[60000ms] is too long, and should be set less than 50000ms"),
        (&["--heartbeat-interval=0"], "--heartbeat-interval must be >0 (set to 0ms)"),
        (&["--election-timeout=0"], "--election-timeout must be >0 (set to 0ms)"),
    ];
    for (args, want) in cases {
        assert_eq!(error(args), want, "{args:?}");
    }
    let cfg = config(&["--heartbeat-interval=200", "--election-timeout=1000"]);
    assert_eq!(cfg.election_timeout, 5 * cfg.heartbeat_interval);
}

#[test]
fn command_line_syntax_errors_use_go_flag_texts() {
    // All verified against etcd 3.4.23.
    let hint = " (run 'ballast --help' for the list)";
    assert_eq!(
        error(&["--foo"]),
        format!("flag provided but not defined: -foo{hint}")
    );
    assert_eq!(
        error(&["-foo=1"]),
        format!("flag provided but not defined: -foo{hint}")
    );
    assert_eq!(error(&["--name"]), "flag needs an argument: -name");
    assert_eq!(error(&["---name=x"]), "bad flag syntax: ---name=x");
    assert_eq!(error(&["-=x"]), "bad flag syntax: -=x");
    assert_eq!(error(&["foo"]), "'foo' is not a valid flag");
    assert_eq!(error(&["--name=a", "--", "x"]), "'x' is not a valid flag");
    let usage = parse(["--foo"], &[]).err().map(|e| e.exit_code());
    assert_eq!(usage, Some(2));
    assert!(matches!(
        parse(["grpc-proxy", "start"], &[]),
        Err(ConfigError::Unsupported { .. })
    ));
}

#[test]
fn flag_shadows_env_with_a_warning() {
    let (cfg, warnings) = parse_with(&["--name", "y"], &[("ETCD_NAME", "x")]).expect("parse");
    assert_eq!(cfg.name, "y");
    assert_eq!(
        warnings,
        vec![
            "recognized environment variable ETCD_NAME, but unused: shadowed by corresponding flag"
        ]
    );
}

#[test]
fn env_sets_flags_that_are_not_given() {
    let vars = [
        ("ETCD_NAME", "etcd-1"),
        ("ETCD_DATA_DIR", "/var/lib/etcd"),
        ("ETCD_INITIAL_CLUSTER_STATE", "existing"),
        (
            "ETCD_LISTEN_CLIENT_URLS",
            "https://10.0.0.1:2379,https://127.0.0.1:2379",
        ),
        ("ETCD_ADVERTISE_CLIENT_URLS", "https://10.0.0.1:2379"),
        ("ETCD_AUTO_TLS", "true"),
        ("ETCD_WAL_DIR", ""), // empty variables are skipped, as in etcd
        ("ETCDCTL_API", "3"),
        ("ETCD_UNSUPPORTED_ARCH", "arm64"),
        ("PATH", "/bin"),
    ];
    let (cfg, warnings) = parse_with(&[], &vars).expect("parse");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(cfg.name, "etcd-1");
    assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/etcd"));
    assert_eq!(cfg.wal_dir, None);
    assert_eq!(cfg.initial_cluster_state, ClusterState::Existing);
    assert_eq!(
        cfg.listen_client_urls,
        vec![url("https://10.0.0.1:2379"), url("https://127.0.0.1:2379")]
    );
    assert_eq!(
        cfg.initial_cluster,
        vec![("etcd-1".to_string(), url("http://localhost:2380"))]
    );
}

#[test]
fn unknown_etcd_variables_are_reported() {
    let w = warnings(&[], &[("ETCD_FOO", "bar"), ("ETCDCTL_ENDPOINTS", "x")]);
    assert_eq!(w, vec!["unrecognized environment variable ETCD_FOO=bar"]);
    let w = warnings(&[], &[("ETCD_VERSION", "3.5.0")]);
    assert_eq!(
        w,
        vec!["cannot set special environment variable ETCD_VERSION=3.5.0; ignoring it"]
    );
    assert_eq!(config(&[]).emulated_etcd_version, "3.5.17");
}

#[test]
fn emulated_version_from_flag_or_env() {
    assert_eq!(
        config(&["--emulated-etcd-version=3.5.9"]).emulated_etcd_version,
        "3.5.9"
    );
    let (cfg, _) = parse_with(&[], &[("ETCD_EMULATED_ETCD_VERSION", "3.4.30")]).expect("parse");
    assert_eq!(cfg.emulated_etcd_version, "3.4.30");
}

#[test]
fn initial_cluster_parsing() {
    let cfg = config(&[
        "--name=a",
        "--initial-cluster=a=http://10.0.0.1:2380,b=https://10.0.0.2:2380,a=http://10.0.0.3:2380",
    ]);
    assert_eq!(
        cfg.initial_cluster,
        vec![
            ("a".to_string(), url("http://10.0.0.1:2380")),
            ("b".to_string(), url("https://10.0.0.2:2380")),
            ("a".to_string(), url("http://10.0.0.3:2380")),
        ]
    );
    assert_eq!(
        cfg.initial_cluster_urls("a"),
        vec![url("http://10.0.0.1:2380"), url("http://10.0.0.3:2380")]
    );
    // etcd's NewURLsMap texts.
    assert_eq!(
        error(&["--initial-cluster=foo"]),
        r#"invalid value "foo" for flag -initial-cluster: URL scheme must be http, https, unix, or unixs: "#
    );
    assert_eq!(
        error(&["--initial-cluster=default=http://a:1/x"]),
        r#"invalid value "default=http://a:1/x" for flag -initial-cluster: URL must not contain a path: http://a:1/x"#
    );
}

#[test]
fn initial_cluster_defaults_from_name_and_peer_urls() {
    let cfg = config(&[
        "--name=n1",
        "--initial-advertise-peer-urls=http://10.0.0.1:2380,http://10.0.0.9:2380",
    ]);
    assert_eq!(
        cfg.initial_cluster,
        vec![
            ("n1".to_string(), url("http://10.0.0.1:2380")),
            ("n1".to_string(), url("http://10.0.0.9:2380"))
        ]
    );
    assert_eq!(cfg.data_dir, PathBuf::from("n1.etcd"));
    // Like etcd, the stock default given explicitly is rebuilt from the name.
    let cfg = config(&[
        "--name=n2",
        "--initial-cluster=default=http://localhost:2380",
    ]);
    assert_eq!(
        cfg.initial_cluster,
        vec![("n2".to_string(), url("http://localhost:2380"))]
    );
}

#[test]
fn url_lists_are_sorted_and_deduplicated_like_etcds() {
    let cfg = config(&[
        "--listen-peer-urls=http://127.0.0.1:2380, http://10.0.0.1:2380,http://127.0.0.1:2380",
        "--listen-client-urls=unix://localhost:1234,http://[::1]:2379",
        "--advertise-client-urls=http://etcd.example.com:2379",
    ]);
    assert_eq!(
        cfg.listen_peer_urls,
        vec![url("http://10.0.0.1:2380"), url("http://127.0.0.1:2380")]
    );
    assert_eq!(
        cfg.listen_client_urls,
        vec![url("http://[::1]:2379"), url("unix://localhost:1234")]
    );
}

#[test]
fn listen_client_urls_need_advertise_urls() {
    // etcd 3.4.23
    assert_eq!(
        error(&["--listen-client-urls=http://127.0.0.1:32379"]),
        "--advertise-client-urls is required when --listen-client-urls is set explicitly"
    );
    assert_eq!(
        error_env(
            &[],
            &[("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:32379")]
        ),
        "--advertise-client-urls is required when --listen-client-urls is set explicitly"
    );
    assert!(error(&[
        "--listen-client-urls=",
        "--advertise-client-urls=http://a:1"
    ])
    .starts_with("--listen-client-urls must list at least one URL"));
}

#[test]
fn compaction_settings() {
    // etcd 3.4.23
    assert_eq!(
        error(&["--auto-compaction-mode=foo"]),
        r#"unknown auto-compaction-mode "foo""#
    );
    let retention = |args: &[&str]| config(args).compaction_retention();
    assert_eq!(
        retention(&["--auto-compaction-retention=1"]),
        CompactionRetention::Period(Duration::from_secs(3600))
    );
    assert_eq!(
        retention(&["--auto-compaction-retention=5m"]),
        CompactionRetention::Period(Duration::from_secs(300))
    );
    assert_eq!(
        retention(&[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=1000"
        ]),
        CompactionRetention::Revisions(1000)
    );
    assert_eq!(
        error(&["--auto-compaction-retention=abc"]),
        r#"error parsing CompactionRetention: time: invalid duration "abc""#
    );
    assert!(error(&[
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=5m"
    ])
    .contains("number of revisions"));
}

#[test]
fn logging_settings() {
    // etcd 3.4.23 says `unknown logger option "bogus"`.
    assert_eq!(
        error(&["--logger=bogus"]),
        r#"invalid value "bogus" for flag -logger: unknown logger option "bogus""#
    );
    assert_eq!(
        error(&["--log-level=bogus"]),
        r#"invalid value "bogus" for flag -log-level: unknown level "bogus""#
    );
    let (cfg, w) = parse_with(&["--logger=capnslog", "--debug"], &[]).expect("parse");
    assert_eq!(
        (cfg.logger.as_str(), cfg.log_level.as_str()),
        ("zap", "debug")
    );
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].starts_with("--debug is deprecated"));
    assert!(w[1].contains("capnslog"));
    assert_eq!(
        config(&["--log-outputs=stderr,/var/log/etcd.log"]).log_outputs,
        vec!["stderr", "/var/log/etcd.log"]
    );
    assert_eq!(
        error(&["--log-outputs=default,stderr"]),
        r#"multi logoutput for "default" is not supported yet"#
    );
}

#[test]
fn tls_settings() {
    let cfg = config(&[
        "--cert-file=/pki/server.pem",
        "--key-file=/pki/server-key.pem",
        "--trusted-ca-file=/pki/ca.pem",
        "--client-cert-auth",
        "--peer-auto-tls",
        "--peer-cert-allowed-cn=etcd-peer",
        "--peer-crl-file=/pki/peer.crl",
        "--listen-client-urls=https://127.0.0.1:2379",
        "--advertise-client-urls=https://127.0.0.1:2379",
        "--listen-peer-urls=https://127.0.0.1:2380",
        "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "--tls-max-version=TLS1.3",
    ]);
    assert_eq!(
        cfg.client_tls.cert_file,
        Some(PathBuf::from("/pki/server.pem"))
    );
    assert_eq!(
        cfg.client_tls.key_file,
        Some(PathBuf::from("/pki/server-key.pem"))
    );
    assert_eq!(
        cfg.client_tls.trusted_ca_file,
        Some(PathBuf::from("/pki/ca.pem"))
    );
    assert!(cfg.client_tls.client_cert_auth && cfg.client_tls.is_enabled());
    assert!(cfg.peer_tls.auto_tls && cfg.peer_tls.is_enabled());
    assert_eq!(cfg.peer_tls.allowed_cn.as_deref(), Some("etcd-peer"));
    assert_eq!(cfg.peer_tls.crl_file, Some(PathBuf::from("/pki/peer.crl")));
    assert_eq!(cfg.cipher_suites.len(), 2);
    assert_eq!(cfg.tls_max_version.as_deref(), Some("TLS1.3"));

    // etcd 3.4.23
    assert_eq!(
        error(&["--listen-client-urls=https://127.0.0.1:32379", "--advertise-client-urls=https://127.0.0.1:32379"]),
        "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:32379 with HTTPS scheme"
    );
    assert_eq!(
        error(&["--cert-file=/tmp/x.pem"]),
        "--key-file and --cert-file must both be present[key: , cert: /tmp/x.pem]"
    );
    assert!(error(&["--listen-peer-urls=https://127.0.0.1:2380"])
        .contains("--peer-cert-file, --peer-key-file"));
    assert_eq!(
        error(&["--tls-min-version=TLS1.1"]),
        r#"invalid value "TLS1.1" for flag -tls-min-version: unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)"#
    );
    assert_eq!(
        error(&["--tls-min-version=TLS1.3", "--tls-max-version=TLS1.2"]),
        "min version (TLS1.3) is greater than max version (TLS1.2)"
    );
}

#[test]
fn unsupported_flags_are_refused_or_ignored_per_the_table() {
    let refused = [
        "--discovery=https://discovery.etcd.io/abc",
        "--discovery-srv=example.com",
        "--enable-v2=true",
        "--enable-v2",
        "--proxy=on",
        "--experimental-enable-v2v3=/v2",
        "--listen-client-http-urls=http://127.0.0.1:2381",
        "--host-whitelist=example.com",
    ];
    for arg in refused {
        let msg = error(&[arg]);
        let flag = arg
            .trim_start_matches('-')
            .split('=')
            .next()
            .unwrap_or_default();
        assert!(msg.starts_with(&format!("--{flag}")), "{arg}: {msg}");
        assert!(msg.contains("is not supported by Ballast"), "{arg}: {msg}");
    }
    assert_eq!(
        error_env(&[], &[("ETCD_PROXY", "readonly")]),
        "ETCD_PROXY=readonly is not supported by Ballast: the etcd v2 proxy is not implemented by Ballast"
    );
    // At their defaults these are fine and silent.
    for arg in [
        "--discovery=",
        "--enable-v2=false",
        "--proxy=off",
        "--host-whitelist=*",
        "--enable-pprof=false",
    ] {
        assert!(warnings(&[arg], &[]).is_empty(), "{arg}");
    }
    assert_eq!(
        warnings(&["--enable-pprof"], &[]),
        vec!["--enable-pprof=true is accepted for etcd compatibility but ignored by Ballast"]
    );
    assert_eq!(
        warnings(&[], &[("ETCD_METRICS", "extensive")]),
        vec!["ETCD_METRICS=extensive is accepted for etcd compatibility but ignored by Ballast"]
    );
    // etcd 3.4.23's own text for its list of obsolete flags.
    assert_eq!(
        warnings(&["--snapshot"], &[]),
        vec![r#"flag "-snapshot" is no longer supported - ignoring."#]
    );
}

#[test]
fn config_file_replaces_flags_and_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(
        &dir,
        "name: from-file\n\
         data-dir: /var/lib/ballast\n\
         listen-client-urls: http://127.0.0.1:2379\n\
         initial-cluster-state: existing\n\
         heartbeat-interval: 200\n\
         election-timeout: 2000\n",
    );
    let args = [
        "--config-file",
        path.as_str(),
        "--name",
        "from-flag",
        "--force-new-cluster",
    ];
    let (cfg, warnings) =
        parse_with(&args, &[("ETCD_DATA_DIR", "/from/env"), ("ETCD_FOO", "x")]).expect("parse");
    assert_eq!(cfg.name, "from-file");
    assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/ballast"));
    assert!(!cfg.force_new_cluster);
    assert_eq!(cfg.initial_cluster_state, ClusterState::Existing);
    assert_eq!(cfg.heartbeat_interval, Duration::from_millis(200));
    assert_eq!(cfg.election_timeout, Duration::from_millis(2000));
    // As in etcd's file mode, the default advertise URL stays.
    assert_eq!(
        cfg.advertise_client_urls,
        vec![url("http://localhost:2379")]
    );
    assert_eq!(cfg.config_file, Some(PathBuf::from(&path)));
    assert_eq!(
        warnings,
        vec![format!(
            "loaded server configuration from {path}; other configuration command line flags and environment variables are ignored: --name, --force-new-cluster, ETCD_DATA_DIR"
        )]
    );
    // Flags are still parsed first: a bad flag is an error even with a file (etcd).
    let bad = ["--config-file", path.as_str(), "--heartbeat-interval=abc"];
    assert!(parse(bad, &[]).is_err());
    // ETCD_CONFIG_FILE works too.
    let (cfg, _) = parse_with(&[], &[("ETCD_CONFIG_FILE", path.as_str())]).expect("parse");
    assert_eq!(cfg.name, "from-file");
}

#[test]
fn config_file_etcd_yaml_layout() {
    let text = "\
name: etcd-1
wal-dir:
listen-peer-urls: https://10.0.0.1:2380
initial-advertise-peer-urls: https://10.0.0.1:2380
initial-cluster: etcd-1=https://10.0.0.1:2380,etcd-2=https://10.0.0.2:2380
initial-cluster-token: tok
snapshot-count: 10000
quota-backend-bytes: 8589934592
enable-v2: false
log-outputs: [stderr]
cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
grpc-keepalive-interval: 7200000000000
experimental-watch-progress-notify-interval: 5s
auto-compaction-retention: \"1\"
client-transport-security:
  cert-file: /pki/server.pem
  key-file: /pki/server-key.pem
  client-cert-auth: true
  trusted-ca-file: /pki/ca.pem
  auto-tls: false
peer-transport-security:
  auto-tls: true
  allowed-cn: etcd-peer
  crl-file: /pki/peer.crl
  bogus: 1
bogus-key: 1
";
    let mut warnings = Vec::new();
    let values = file::from_yaml(text, "etcd.yml", &mut warnings).expect("yaml");
    let cfg = build::build(&values, build::Mode::File, &mut warnings).expect("config");
    assert_eq!(cfg.name, "etcd-1");
    assert_eq!(cfg.wal_dir, None);
    assert_eq!(cfg.initial_cluster.len(), 2);
    assert_eq!(cfg.initial_cluster_token, "tok");
    assert_eq!(cfg.snapshot_count, 10_000);
    assert_eq!(cfg.effective_quota_bytes(), 8 << 30);
    assert_eq!(cfg.log_outputs, vec!["stderr"]);
    assert_eq!(
        cfg.cipher_suites,
        vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    );
    assert_eq!(cfg.grpc_keepalive_interval, Duration::from_secs(7200));
    assert_eq!(cfg.watch_progress_notify_interval, Duration::from_secs(5));
    assert_eq!(
        cfg.compaction_retention(),
        CompactionRetention::Period(Duration::from_secs(3600))
    );
    assert_eq!(
        cfg.client_tls.cert_file,
        Some(PathBuf::from("/pki/server.pem"))
    );
    assert!(cfg.client_tls.client_cert_auth);
    assert!(cfg.peer_tls.auto_tls);
    assert_eq!(cfg.peer_tls.allowed_cn.as_deref(), Some("etcd-peer"));
    assert_eq!(cfg.peer_tls.crl_file, Some(PathBuf::from("/pki/peer.crl")));
    assert_eq!(
        warnings,
        vec![
            "config file etcd.yml: unrecognized key peer-transport-security.bogus (ignored)",
            "config file etcd.yml: unrecognized key bogus-key (ignored)",
        ]
    );
}

#[test]
fn config_file_errors() {
    let mut w = Vec::new();
    let err = |text: &str| match file::from_yaml(text, "c.yml", &mut Vec::new()) {
        Ok(values) => build::build(&values, build::Mode::File, &mut Vec::new()).map(|_| ()),
        Err(e) => Err(e),
    };
    assert_eq!(
        err("heartbeat-interval: abc\n").map_err(|e| e.to_string()),
        Err(r#"invalid value "abc" for heartbeat-interval in the config file: parse error"#.into())
    );
    assert_eq!(
        err("election-timeout: 200\n").map_err(|e| e.to_string()),
        Err("--election-timeout[200ms] should be at least as 5 times as --heartbeat-interval[100ms]".into())
    );
    assert!(matches!(
        err("name: [a\n"),
        Err(ConfigError::ConfigFile { .. })
    ));
    assert!(matches!(
        err("- a\n- b\n"),
        Err(ConfigError::ConfigFile { .. })
    ));
    assert!(file::from_yaml("", "c.yml", &mut w).is_ok_and(|v| v.is_empty()));
    let missing = parse(["--config-file=/nonexistent/ballast.yml"], &[]);
    assert!(
        matches!(missing, Err(ConfigError::ConfigFile { ref path, .. }) if path == "/nonexistent/ballast.yml")
    );
}

#[test]
fn go_duration_parser() {
    use values::parse_duration as d;
    assert_eq!(d("100ms"), Ok(Duration::from_millis(100)));
    assert_eq!(d("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(d("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(d(".5s"), Ok(Duration::from_millis(500)));
    assert_eq!(d("3us"), Ok(Duration::from_micros(3)));
    assert_eq!(d("0"), Ok(Duration::ZERO));
    assert_eq!(d(""), Err(r#"time: invalid duration """#.into()));
    assert_eq!(d("5"), Err(r#"time: missing unit in duration "5""#.into()));
    assert_eq!(
        d("5x"),
        Err(r#"time: unknown unit "x" in duration "5x""#.into())
    );
    assert!(d("-5s").is_err());
    assert_eq!(values::format_duration(Duration::from_secs(7200)), "2h0m0s");
    assert_eq!(values::format_duration(Duration::from_millis(100)), "100ms");
}

#[test]
fn go_integer_parser() {
    use values::{parse_int, parse_uint};
    assert_eq!(parse_uint("0b101"), Ok(5));
    assert_eq!(parse_uint("0o17"), Ok(15));
    assert_eq!(parse_uint("18446744073709551615"), Ok(u64::MAX));
    assert_eq!(
        parse_uint("18446744073709551616"),
        Err("value out of range".into())
    );
    assert_eq!(parse_uint("1__0"), Err("parse error".into()));
    assert_eq!(parse_uint("_1"), Err("parse error".into()));
    assert_eq!(parse_uint(""), Err("parse error".into()));
    assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
    assert_eq!(
        parse_int("9223372036854775808"),
        Err("value out of range".into())
    );
    assert_eq!(parse_int("-0x10"), Ok(-16));
}

#[test]
fn table_kinds_match_config_fields() {
    // Bool-like flags are exactly those Go lets stand alone.
    for def in FLAGS {
        let standalone = format!("--{}", def.name);
        let parsed = cmdline::parse(vec![standalone.clone().into()]);
        if def.kind.is_bool() {
            assert!(parsed.is_ok(), "{standalone}");
        } else {
            assert!(matches!(parsed, Err(ConfigError::Usage(_))), "{standalone}");
        }
    }
    assert_eq!(
        flags::lookup("initial-cluster").map(|d| d.kind),
        Some(Kind::Cluster)
    );
}
