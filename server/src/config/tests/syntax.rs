//! Go `flag` syntax and per-value errors on the command line.

use super::*;

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
