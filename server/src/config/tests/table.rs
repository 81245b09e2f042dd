//! The flag table itself: defaults, help, version, and the support column.

use super::*;

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
    assert!(text.contains("  --enable-v2 'false'\n    Accept etcd V2 client requests.\n    [Ballast: other values are refused: "));
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
