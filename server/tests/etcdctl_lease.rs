//! Leases: grant, list, timetolive, keep-alive, revoke, put --lease, expiry.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{assert_matches, b64, wait_until, TestServer};
use regex::Regex;

/// Parses "remaining(Ns)" out of a timetolive line.
fn remaining_secs(line: &str) -> u64 {
    let re = Regex::new(r"remaining\((\d+)s\)").expect("valid regex");
    re.captures(line)
        .unwrap_or_else(|| panic!("no remaining(Ns) in {line:?}"))[1]
        .parse()
        .expect("remaining is a number")
}

fn lease_ids_listed(s: &TestServer) -> BTreeSet<String> {
    let out = s.etcdctl_ok(&["lease", "list"]);
    let mut lines = out.lines();
    let header = lines.next().expect("lease list prints a header line");
    let ids: BTreeSet<String> = lines.map(String::from).collect();
    assert_eq!(
        header,
        format!("found {} leases", ids.len()),
        "lease list output:\n{out}"
    );
    ids
}

#[test]
fn lease_grant_prints_hex_id_and_ttl() {
    let s = TestServer::start();
    let id = s.grant_lease(100);
    let other = s.grant_lease(100);
    assert_ne!(id, other, "lease IDs are unique");
    // The JSON form gives the ID as a decimal number.
    let resp = s.etcdctl_json(&["lease", "grant", "60"]);
    assert_eq!(resp["TTL"], 60);
    assert!(resp["ID"].as_i64().is_some_and(|id| id > 0), "ID in {resp}");
}

#[test]
fn lease_grant_below_minimum_ttl_is_raised_to_two_seconds() {
    // etcd's minimum TTL is ceil(1.5 * election timeout) = 2s with the
    // default --election-timeout=1000; smaller requests are raised to it.
    let s = TestServer::start();
    for ttl in ["0", "1"] {
        assert_matches(
            &s.etcdctl_ok(&["lease", "grant", ttl]),
            r"^lease [0-9a-f]{16} granted with TTL\(2s\)\n$",
        );
    }
}

#[test]
fn lease_list_shows_all_leases() {
    let s = TestServer::start();
    assert_eq!(s.etcdctl_ok(&["lease", "list"]), "found 0 leases\n");
    let a = s.grant_lease(100);
    let b = s.grant_lease(200);
    assert_eq!(lease_ids_listed(&s), BTreeSet::from([a, b]));
}

#[test]
fn lease_timetolive_with_and_without_keys() {
    let s = TestServer::start();
    let id = s.grant_lease(100);
    assert_eq!(
        s.etcdctl_ok(&["put", "k1", "v", &format!("--lease={id}")]),
        "OK\n"
    );
    assert_eq!(s.etcdctl_ok(&["put", "k2", "v", "--lease", &id]), "OK\n");

    let plain = s.etcdctl_ok(&["lease", "timetolive", &id]);
    assert_matches(
        &plain,
        &format!(r"^lease {id} granted with TTL\(100s\), remaining\(\d+s\)\n$"),
    );
    let left = remaining_secs(&plain);
    assert!(
        (90..=100).contains(&left),
        "remaining {left}s of a fresh 100s lease"
    );

    let with_keys = s.etcdctl_ok(&["lease", "timetolive", "--keys", &id]);
    let re = Regex::new(&format!(
        r"^lease {id} granted with TTL\(100s\), remaining\(\d+s\), attached keys\(\[(.*)\]\)\n$"
    ))
    .expect("valid regex");
    let caps = re
        .captures(&with_keys)
        .unwrap_or_else(|| panic!("unexpected timetolive --keys output: {with_keys:?}"));
    // etcd lists attached keys in no particular order (Go map iteration).
    let keys: BTreeSet<&str> = caps[1].split(' ').collect();
    assert_eq!(keys, BTreeSet::from(["k1", "k2"]));
}

#[test]
fn lease_timetolive_json() {
    let s = TestServer::start();
    let id = s.grant_lease(100);
    s.etcdctl_ok(&["put", "k1", "v", "--lease", &id]);
    let resp = s.etcdctl_json(&["lease", "timetolive", "--keys", &id]);
    let id_dec = i64::from_str_radix(&id, 16).expect("hex lease id");
    assert_eq!(resp["id"], id_dec);
    assert_eq!(resp["granted-ttl"], 100);
    assert!(
        resp["ttl"]
            .as_i64()
            .is_some_and(|t| (90..=100).contains(&t)),
        "ttl in {resp}"
    );
    assert_eq!(resp["keys"], serde_json::json!([b64("k1")]));
    // This header is flattened (no "header" object), unlike get's.
    assert!(
        resp["revision"].as_i64().is_some_and(|r| r > 1),
        "revision in {resp}"
    );
    assert!(
        resp["cluster_id"].as_u64().is_some(),
        "cluster_id in {resp}"
    );
}

#[test]
fn put_with_lease_shows_the_lease_in_get_json() {
    let s = TestServer::start();
    let id = s.grant_lease(100);
    s.etcdctl_ok(&["put", "/test", "test", &format!("--lease={id}")]);
    let resp = s.etcdctl_json(&["get", "/test"]);
    let id_dec = i64::from_str_radix(&id, 16).expect("hex lease id");
    assert_eq!(resp["kvs"][0]["lease"], id_dec);
}

#[test]
fn lease_keep_alive_once_renews() {
    let s = TestServer::start();
    let id = s.grant_lease(100);
    assert_eq!(
        s.etcdctl_ok(&["lease", "keep-alive", "--once=true", &id]),
        format!("lease {id} keepalived with TTL(100)\n")
    );
}

#[test]
fn lease_keep_alive_streams_until_killed() {
    let s = TestServer::start();
    let id = s.grant_lease(100);
    let mut ka = s.spawn_etcdctl(&["lease", "keep-alive", &id]);
    let expected = format!("lease {id} keepalived with TTL(100)");
    ka.expect_lines(&[&expected]);
    ka.kill();
}

#[test]
fn lease_revoke_deletes_attached_keys() {
    let s = TestServer::start();
    let id = s.grant_lease(100);
    s.etcdctl_ok(&["put", "leased/1", "a", "--lease", &id]);
    s.etcdctl_ok(&["put", "leased/2", "b", "--lease", &id]);
    s.put("unleased", "c");
    let before = s.revision();

    assert_eq!(
        s.etcdctl_ok(&["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(s.etcdctl_ok(&["get", "leased/", "--prefix"]), "");
    assert_eq!(s.etcdctl_ok(&["get", "unleased"]), "unleased\nc\n");
    assert_eq!(
        s.revision(),
        before + 1,
        "revoking deletes all attached keys in one revision"
    );
    assert_eq!(s.etcdctl_ok(&["lease", "list"]), "found 0 leases\n");
    assert_eq!(
        s.etcdctl_ok(&["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
}

#[test]
fn short_lease_expires_and_its_keys_disappear() {
    let s = TestServer::start();
    let id = s.grant_lease(2);
    s.etcdctl_ok(&["put", "ephemeral", "v", "--lease", &id]);
    assert_eq!(s.etcdctl_ok(&["get", "ephemeral"]), "ephemeral\nv\n");

    wait_until(
        "the 2s lease to expire and delete its key",
        Duration::from_secs(10),
        || s.etcdctl_ok(&["get", "ephemeral"]).is_empty(),
    );
    assert_eq!(
        s.etcdctl_ok(&["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
    assert_eq!(s.etcdctl_ok(&["lease", "list"]), "found 0 leases\n");
}
