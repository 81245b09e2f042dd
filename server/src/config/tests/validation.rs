//! Cross-field checks, and the Go value parsers on their own.

use super::*;

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
fn advertised_unix_urls_need_host_and_port() {
    // etcd 3.6.16 (its checkHostURLs, unchanged since 3.5).
    let base = [
        "--listen-client-urls=http://127.0.0.1:32379",
        "--advertise-client-urls=http://127.0.0.1:32379",
    ];
    let with = |extra: &str| {
        let mut args = base.to_vec();
        args.push(extra);
        error(&args)
    };
    assert_eq!(
        with("--advertise-client-urls=unix:///tmp/a.sock"),
        r#"--advertise-client-urls "unix:///tmp/a.sock" must be "host:port" (missing port in address)"#
    );
    assert_eq!(
        with("--advertise-client-urls=unix://localhost"),
        r#"--advertise-client-urls "unix://localhost" must be "host:port" (address localhost: missing port in address)"#
    );
    // etcd says "unexpected empty host" of unix://:2379; the url crate refuses it earlier
    // ("parse ...: empty host"), so Ballast refuses it too, in other words.
    assert!(with("--advertise-client-urls=unix://:2379").contains("empty host"));
    assert_eq!(
        with("--initial-advertise-peer-urls=unix:///tmp/p.sock"),
        r#"--initial-advertise-peer-urls "unix:///tmp/p.sock" must be "host:port" (missing port in address)"#
    );
    // etcd 3.5+ listens on a socket path; it advertises host:port.
    let cfg = config(&[
        "--listen-client-urls=unix:///tmp/c.sock",
        "--advertise-client-urls=unix://localhost:2379",
        "--listen-peer-urls=unix://localhost:2380",
        "--initial-advertise-peer-urls=unix://localhost:2380",
    ]);
    assert_eq!(cfg.listen_client_urls, vec![url("unix:///tmp/c.sock")]);
    assert_eq!(
        cfg.initial_cluster,
        vec![("default".to_string(), url("unix://localhost:2380"))]
    );
}
