//! `ETCD_*` variables and `--config-file`.

use super::*;

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
