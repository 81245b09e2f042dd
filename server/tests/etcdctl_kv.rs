//! KV commands: put / get / del and their flags, as the runbooks use them.

mod common;

use common::{b64, TestServer};
use serde_json::Value;

/// The runbook's example data: /henan/key1..key4 with values value1..value4.
fn henan(server: &TestServer) {
    for i in 1..=4 {
        server.put(&format!("/henan/key{i}"), &format!("value{i}"));
    }
}

/// `kvs` of a `get -w json` response.
fn kvs(resp: &Value) -> &Vec<Value> {
    resp["kvs"]
        .as_array()
        .unwrap_or_else(|| panic!("no kvs array in {resp}"))
}

#[test]
fn put_prints_ok_and_get_prints_key_then_value() {
    let s = TestServer::start();
    assert_eq!(s.etcdctl_ok(&["put", "/henan/key1", "value1"]), "OK\n");
    assert_eq!(
        s.etcdctl_ok(&["get", "/henan/key1"]),
        "/henan/key1\nvalue1\n"
    );
}

#[test]
fn put_value_with_spaces_and_from_stdin() {
    let s = TestServer::start();
    s.put("/henan/key4", "Hello world I am find");
    assert_eq!(
        s.etcdctl_ok(&["get", "/henan/key4"]),
        "/henan/key4\nHello world I am find\n"
    );

    // "<value> can also be given from stdin"
    let out = s.etcdctl_stdin(&["put", "/stdin"], "from stdin").ok();
    assert_eq!(out, "OK\n");
    assert_eq!(
        s.etcdctl_ok(&["get", "/stdin", "--print-value-only"]),
        "from stdin\n"
    );
}

#[test]
fn get_missing_key_prints_nothing_and_succeeds() {
    let s = TestServer::start();
    let out = s.etcdctl(&["get", "/does/not/exist"]);
    assert_eq!(out.code(), 0);
    assert_eq!(out.stdout, "");
    // And a missing prefix too.
    assert_eq!(s.etcdctl_ok(&["get", "/nothing", "--prefix"]), "");
}

#[test]
fn get_range_end_is_exclusive() {
    let s = TestServer::start();
    henan(&s);
    assert_eq!(
        s.etcdctl_ok(&["get", "/henan/key1", "/henan/key4"]),
        "/henan/key1\nvalue1\n/henan/key2\nvalue2\n/henan/key3\nvalue3\n"
    );
}

#[test]
fn get_prefix_and_limit() {
    let s = TestServer::start();
    henan(&s);
    s.put("/henanx", "outside"); // shares the string prefix "/henan"
    s.put("/other", "x");
    assert_eq!(
        s.etcdctl_ok(&["get", "/henan/", "--prefix=true"]),
        "/henan/key1\nvalue1\n/henan/key2\nvalue2\n/henan/key3\nvalue3\n/henan/key4\nvalue4\n"
    );
    assert_eq!(
        s.etcdctl_ok(&["get", "/henan", "--prefix=true", "--limit=2"]),
        "/henan/key1\nvalue1\n/henan/key2\nvalue2\n"
    );
    // `/henan` as a prefix also matches `/henanx`.
    assert_eq!(
        s.etcdctl_ok(&["get", "/henan", "--prefix", "--keys-only"]),
        "/henan/key1\n\n/henan/key2\n\n/henan/key3\n\n/henan/key4\n\n/henanx\n\n"
    );
}

#[test]
fn get_from_key_returns_everything_from_key_on() {
    let s = TestServer::start();
    for k in ["a", "b", "c", "d"] {
        s.put(k, &format!("v{k}"));
    }
    assert_eq!(
        s.etcdctl_ok(&["get", "--from-key", "b"]),
        "b\nvb\nc\nvc\nd\nvd\n"
    );
    assert_eq!(
        s.etcdctl_ok(&["get", "--from-key", "a", "--limit", "1"]),
        "a\nva\n"
    );
}

#[test]
fn get_keys_only_prints_a_blank_line_after_each_key() {
    let s = TestServer::start();
    henan(&s);
    assert_eq!(
        s.etcdctl_ok(&["get", "/henan/key1", "--keys-only=true"]),
        "/henan/key1\n\n"
    );
    assert_eq!(
        s.etcdctl_ok(&["get", "/henan/key1", "/henan/key3", "--keys-only"]),
        "/henan/key1\n\n/henan/key2\n\n"
    );
}

#[test]
fn get_print_value_only() {
    let s = TestServer::start();
    henan(&s);
    assert_eq!(
        s.etcdctl_ok(&["get", "/henan/key1", "--print-value-only=true"]),
        "value1\n"
    );
    assert_eq!(
        s.etcdctl_ok(&["get", "/henan/", "--prefix", "--print-value-only"]),
        "value1\nvalue2\nvalue3\nvalue4\n"
    );
}

#[test]
fn get_rev_reads_history() {
    let s = TestServer::start();
    s.put("/henan/key4", "Hello world");
    let first = s.revision();
    s.put("/henan/key4", "Hello world I am find");
    let rev = first.to_string();
    assert_eq!(
        s.etcdctl_ok(&["get", "/henan/key4", &format!("--rev={rev}")]),
        "/henan/key4\nHello world\n"
    );
    assert_eq!(
        s.etcdctl_ok(&["get", "/henan/key4"]),
        "/henan/key4\nHello world I am find\n"
    );
    // Before the key existed (revision 1 is the empty store).
    assert_eq!(s.etcdctl_ok(&["get", "/henan/key4", "--rev=1"]), "");
}

#[test]
fn get_sort_by_and_order() {
    let s = TestServer::start();
    // No ties in any sort field (etcd leaves the order of ties unspecified):
    //   key   value  create  mod  version
    //   p/a   5      3       7    2
    //   p/b   2      4       4    1
    //   p/c   6      2       6    3
    for (k, v) in [
        ("p/c", "1"),
        ("p/a", "3"),
        ("p/b", "2"),
        ("p/c", "4"),
        ("p/c", "6"),
        ("p/a", "5"),
    ] {
        s.put(k, v);
    }
    let keys = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["get", "p/", "--prefix", "--keys-only"];
        full.extend_from_slice(args);
        s.etcdctl_ok(&full)
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    let cases: [(&[&str], [&str; 3]); 8] = [
        (&["--sort-by=KEY", "--order=DESCEND"], ["p/c", "p/b", "p/a"]),
        (&["--sort-by=KEY", "--order=ASCEND"], ["p/a", "p/b", "p/c"]),
        (
            &["--sort-by=VALUE", "--order=DESCEND"],
            ["p/c", "p/a", "p/b"],
        ),
        (
            &["--sort-by=CREATE", "--order=ASCEND"],
            ["p/c", "p/a", "p/b"],
        ),
        (
            &["--sort-by=MODIFY", "--order=DESCEND"],
            ["p/a", "p/c", "p/b"],
        ),
        (
            &["--sort-by=VERSION", "--order=DESCEND"],
            ["p/c", "p/a", "p/b"],
        ),
        (
            &["--sort-by=VERSION", "--order=ASCEND"],
            ["p/b", "p/a", "p/c"],
        ),
        // --order alone sorts by key.
        (&["--order=DESCEND"], ["p/c", "p/b", "p/a"]),
    ];
    for (args, expected) in cases {
        assert_eq!(keys(args), expected, "get --prefix {args:?}");
    }
}

#[test]
fn get_json_has_header_revisions_and_base64() {
    let s = TestServer::start();
    // A fresh store is at revision 1; the first write makes it 2.
    assert_eq!(s.revision(), 1);
    s.put("/henan/key4", "Hello world");
    s.put("/other", "x");
    s.put("/henan/key4", "Hello world I am find");

    let resp = s.etcdctl_json(&["get", "/henan/key4"]);
    let header = &resp["header"];
    for field in ["cluster_id", "member_id", "revision", "raft_term"] {
        assert!(
            header[field].as_u64().is_some_and(|v| v > 0),
            "header.{field} missing/zero in {resp}"
        );
    }
    assert_eq!(header["revision"], 4);
    assert_eq!(resp["count"], 1);
    assert!(
        resp.get("more").is_none(),
        "`more` is omitted when false: {resp}"
    );

    let kv = &kvs(&resp)[0];
    assert_eq!(kv["key"], b64("/henan/key4"));
    assert_eq!(kv["value"], b64("Hello world I am find"));
    assert_eq!(kv["create_revision"], 2);
    assert_eq!(kv["mod_revision"], 4);
    assert_eq!(kv["version"], 2);
    assert!(kv.get("lease").is_none(), "`lease` is omitted when 0: {kv}");

    // The header's member_id is the one `member list` shows (in hex).
    let member_hex = s.member_id_hex();
    let member = header["member_id"].as_u64().expect("member_id is a u64");
    // etcdctl prints IDs with `%x` (no zero padding).
    assert_eq!(format!("{member:x}"), member_hex);
}

#[test]
fn get_json_limit_reports_more_and_total_count() {
    let s = TestServer::start();
    henan(&s);
    let resp = s.etcdctl_json(&["get", "/henan/", "--prefix", "--limit=2"]);
    assert_eq!(kvs(&resp).len(), 2);
    assert_eq!(resp["more"], true);
    assert_eq!(resp["count"], 4);
    let keys: Vec<&Value> = kvs(&resp).iter().map(|kv| &kv["key"]).collect();
    assert_eq!(
        keys,
        [
            &Value::from(b64("/henan/key1")),
            &Value::from(b64("/henan/key2"))
        ]
    );
}

#[test]
fn revisions_increase_by_one_per_write() {
    let s = TestServer::start();
    let start = s.revision();
    s.put("a", "1");
    assert_eq!(s.revision(), start + 1);
    s.put("a", "2");
    assert_eq!(s.revision(), start + 2);
    s.put("b", "1");
    assert_eq!(s.revision(), start + 3);
    // A delete of two keys is one write.
    assert_eq!(s.etcdctl_ok(&["del", "a", "c"]), "2\n");
    assert_eq!(s.revision(), start + 4);
    // Reads and deletes of nothing do not bump the revision.
    s.etcdctl_ok(&["get", "a"]);
    assert_eq!(s.etcdctl_ok(&["del", "nothing"]), "0\n");
    assert_eq!(s.revision(), start + 4);
}

#[test]
fn del_prints_number_of_deleted_keys() {
    let s = TestServer::start();
    henan(&s);
    assert_eq!(s.etcdctl_ok(&["del", "/henan/key1"]), "1\n");
    assert_eq!(s.etcdctl_ok(&["del", "/henan/key1"]), "0\n");
    assert_eq!(s.etcdctl_ok(&["del", "/henan/key2", "/henan/key4"]), "2\n");
    assert_eq!(
        s.etcdctl_ok(&["get", "/henan/", "--prefix"]),
        "/henan/key4\nvalue4\n"
    );
}

#[test]
fn del_prev_kv_prints_count_then_deleted_pairs() {
    let s = TestServer::start();
    henan(&s);
    assert_eq!(
        s.etcdctl_ok(&["del", "--prev-kv", "/henan/key1", "/henan/key3"]),
        "2\n/henan/key1\nvalue1\n/henan/key2\nvalue2\n"
    );
    assert_eq!(s.etcdctl_ok(&["del", "--prev-kv", "/henan/key1"]), "0\n");
}

#[test]
fn del_prefix_removes_only_the_prefix() {
    let s = TestServer::start();
    henan(&s);
    s.put("/keep", "k");
    assert_eq!(s.etcdctl_ok(&["del", "/henan/", "--prefix"]), "4\n");
    assert_eq!(s.etcdctl_ok(&["get", "/", "--prefix"]), "/keep\nk\n");
}

#[test]
fn put_prev_kv_prints_previous_pair() {
    let s = TestServer::start();
    assert_eq!(s.etcdctl_ok(&["put", "--prev-kv", "k", "v1"]), "OK\n");
    assert_eq!(
        s.etcdctl_ok(&["put", "--prev-kv", "k", "v2"]),
        "OK\nk\nv1\n"
    );
    assert_eq!(s.etcdctl_ok(&["get", "k"]), "k\nv2\n");
}

#[test]
fn put_ignore_value_keeps_value_and_bumps_version() {
    let s = TestServer::start();
    s.put("k", "kept");
    assert_eq!(s.etcdctl_ok(&["put", "--ignore-value", "k"]), "OK\n");
    let resp = s.etcdctl_json(&["get", "k"]);
    let kv = &kvs(&resp)[0];
    assert_eq!(kv["value"], b64("kept"));
    assert_eq!(kv["version"], 2);
    assert_eq!(kv["mod_revision"], resp["header"]["revision"]);
}
