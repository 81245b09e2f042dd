//! Maintenance and cluster commands: compact, defrag, alarm, endpoint
//! status/health/hashkv, member list, snapshot save/status.
//!
//! Where etcdctl 3.4 and 3.6 print differently (defrag, endpoint health/hashkv/status,
//! snapshot save/status), the expected text comes from `common`'s "etcdctl 3.4 and 3.6"
//! section.

mod common;

use common::{
    assert_matches, defrag_output_pattern, endpoint_health_text, endpoint_status_columns,
    endpoint_status_json_extras, etcdctl_version, expected_hash_revision, file_size,
    hashkv_table_columns, parse_hashkv_line, server, single_row, snapshot_saved_output,
    snapshot_status, snapshot_status_columns, snapshot_total_keys, CtlVersion, TestServer,
    GO_DURATION, HUMAN_SIZE,
};
const MEMBER_LIST_COLUMNS: [&str; 6] = [
    "ID",
    "STATUS",
    "NAME",
    "PEER ADDRS",
    "CLIENT ADDRS",
    "IS LEARNER",
];

fn number(cell: &str) -> u64 {
    cell.parse()
        .unwrap_or_else(|e| panic!("{cell:?} is not a number: {e}"))
}

/// The hash from `endpoint hashkv` ("<endpoint>, <hash>", and with etcdctl 3.6 the hash
/// revision, which must be the store's revision).
fn hashkv(s: &TestServer) -> String {
    let out = s.etcdctl_ok(&["endpoint", "hashkv"]);
    let (hash, hash_revision) = parse_hashkv_line(&out, &s.client_url());
    if etcdctl_version() == CtlVersion::V36 {
        assert_eq!(
            hash_revision,
            Some(expected_hash_revision(s.revision())),
            "hash revision in {out:?}"
        );
    }
    hash
}

#[test]
fn compact_removes_old_revisions_only() {
    let s = TestServer::start();
    for v in ["v1", "v2", "v3", "v4"] {
        s.put("k", v);
    }
    // k=v1 at 2, v2 at 3, v3 at 4, v4 at 5.
    assert_eq!(s.revision(), 5);
    assert_eq!(s.etcdctl_ok(&["compact", "4"]), "compacted revision 4\n");

    let err = s.etcdctl_err(&["get", "k", "--rev=3"]);
    assert_eq!(
        err,
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    // The compaction revision itself is still readable, and so is the present.
    assert_eq!(s.etcdctl_ok(&["get", "k", "--rev=4"]), "k\nv3\n");
    assert_eq!(s.etcdctl_ok(&["get", "k"]), "k\nv4\n");
    // `--physical` waits for the compaction to be applied; same output.
    assert_eq!(
        s.etcdctl_ok(&["compact", "5", "--physical"]),
        "compacted revision 5\n"
    );
    // Compaction does not create a revision.
    assert_eq!(s.revision(), 5);
}

#[test]
fn a_physical_compaction_answers_once_its_revisions_are_deleted() {
    // Steps of 10 revisions: the 99 superseded revisions of k take ten steps, run after the
    // Compact request is applied. They are quick here, so that the answer waits for them is
    // shown by `mvcc::compaction`'s unit test; this one shows the flag and etcd's log line
    // (its fields as etcd 3.6 names them, so that the test holds against etcd too).
    let s = TestServer::start_with(&["--experimental-compaction-batch-limit", "10"]);
    for i in 0..100 {
        s.put("k", &format!("v{i}"));
    }
    let rev = s.revision();
    assert_eq!(
        s.etcdctl_ok(&["compact", &rev.to_string(), "--physical"]),
        format!("compacted revision {rev}\n")
    );
    let log = s.log();
    let finished = log
        .lines()
        .find(|l| l.contains("finished scheduled compaction"))
        .unwrap_or_else(|| panic!("no finished compaction logged before the answer:\n{log}"));
    // etcd 3.4 logs it with capnslog by default: "finished scheduled compaction at N (took ..)".
    assert!(
        finished.contains(&format!("\"compact-revision\":{rev},\"took\":"))
            || finished.contains(&format!("compaction at {rev} (took ")),
        "{finished}"
    );
    assert_eq!(s.etcdctl_ok(&["get", "k"]), "k\nv99\n");
}

#[test]
fn defrag_reports_the_member_and_keeps_data() {
    let s = TestServer::start();
    s.put("k", "v");
    assert_matches(
        &s.etcdctl_ok(&["defrag"]),
        &defrag_output_pattern(&s.client_url()),
    );
    assert_eq!(s.etcdctl_ok(&["get", "k"]), "k\nv\n");
}

#[test]
fn alarm_list_and_disarm_are_empty_without_alarms() {
    let s = TestServer::start();
    assert_eq!(s.etcdctl_ok(&["alarm", "list"]), "");
    assert_eq!(s.etcdctl_ok(&["alarm", "disarm"]), "");
}

#[test]
fn endpoint_status_table() {
    let s = TestServer::start();
    s.put("k", "v");
    let out = s.etcdctl_ok(&["endpoint", "status", "-w", "table"]);
    let row = single_row(&out, endpoint_status_columns());
    assert_eq!(row["ENDPOINT"], s.client_url());
    assert_eq!(row["ID"], s.member_id_hex());
    assert_matches(&row["VERSION"], server().version_pattern());
    assert_matches(&row["DB SIZE"], HUMAN_SIZE);
    assert_eq!(row["IS LEADER"], "true", "a single member is the leader");
    assert_eq!(row["IS LEARNER"], "false");
    assert!(number(&row["RAFT TERM"]) >= 1);
    assert!(number(&row["RAFT APPLIED INDEX"]) >= 1);
    assert!(number(&row["RAFT INDEX"]) >= number(&row["RAFT APPLIED INDEX"]));
    assert_eq!(row["ERRORS"], "");
    if etcdctl_version() == CtlVersion::V36 {
        // The columns etcdctl 3.6 adds; etcd 3.5 (so Ballast) leaves the storage version
        // and quota unset, which etcdctl 3.6 shows as "" and "0 B".
        assert_eq!(row["STORAGE VERSION"], server().storage_version());
        assert_matches(&row["IN USE"], HUMAN_SIZE);
        assert_matches(&row["PERCENTAGE NOT IN USE"], r"^\d+%$");
        let quota = match server().status_quota() {
            Some(_) => "2.1 GB",
            None => "0 B",
        };
        assert_eq!(row["QUOTA"], quota);
        assert_eq!(row["DOWNGRADE TARGET VERSION"], "");
        assert_eq!(row["DOWNGRADE ENABLED"], "false");
    }
}

#[test]
fn endpoint_status_json() {
    let s = TestServer::start();
    s.put("k", "v");
    let resp = s.etcdctl_json(&["endpoint", "status"]);
    let entries = resp
        .as_array()
        .unwrap_or_else(|| panic!("expected a JSON array: {resp}"));
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["Endpoint"], s.client_url());
    let status = &entries[0]["Status"];
    let header = &status["header"];
    assert_eq!(header["revision"], 2);
    assert!(
        header["cluster_id"].as_u64().is_some_and(|v| v > 0),
        "cluster_id in {status}"
    );
    assert_eq!(
        status["leader"], header["member_id"],
        "the single member leads"
    );
    assert_eq!(
        format!("{:x}", header["member_id"].as_u64().expect("member_id")),
        s.member_id_hex()
    );
    assert_matches(
        status["version"].as_str().expect("version string"),
        server().version_pattern(),
    );
    let db_size = status["dbSize"].as_i64().expect("dbSize");
    let in_use = status["dbSizeInUse"].as_i64().expect("dbSizeInUse");
    assert!(
        db_size > 0 && in_use > 0 && in_use <= db_size,
        "dbSize {db_size}, dbSizeInUse {in_use}"
    );
    let raft_index = status["raftIndex"].as_u64().expect("raftIndex");
    let applied = status["raftAppliedIndex"]
        .as_u64()
        .expect("raftAppliedIndex");
    assert!(
        applied >= 1 && raft_index >= applied,
        "raftIndex {raft_index}, raftAppliedIndex {applied}"
    );
    assert_eq!(status["raftTerm"], header["raft_term"]);
    // Exactly etcd 3.5's fields, plus the ones etcd 3.6 fills when etcdctl 3.6 shows them.
    let base = [
        "header",
        "version",
        "dbSize",
        "leader",
        "raftIndex",
        "raftTerm",
        "raftAppliedIndex",
        "dbSizeInUse",
    ];
    let extras = endpoint_status_json_extras();
    let mut fields: Vec<&str> = status
        .as_object()
        .expect("Status is an object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    let mut want: Vec<&str> = base
        .into_iter()
        .chain(extras.keys().map(String::as_str))
        .collect();
    want.sort_unstable();
    assert_eq!(fields, want, "Status fields in {status}");
    for (field, value) in &extras {
        assert_eq!(&status[field], value, "Status.{field}");
    }
}

#[test]
fn endpoint_health_prints_one_line_per_endpoint() {
    let s = TestServer::start();
    let out = s.etcdctl(&["endpoint", "health"]);
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    // etcdctl 3.4 prints the health line on stderr, etcdctl 3.6 on stdout.
    assert_matches(
        endpoint_health_text(&out),
        &format!(
            r"^{} is healthy: successfully committed proposal: took = {GO_DURATION}\n$",
            regex::escape(&s.client_url())
        ),
    );

    let table = s.etcdctl_ok(&["endpoint", "health", "-w", "table"]);
    let row = single_row(&table, &["ENDPOINT", "HEALTH", "TOOK", "ERROR"]);
    assert_eq!(row["ENDPOINT"], s.client_url());
    assert_eq!(row["HEALTH"], "true");
    assert_eq!(row["ERROR"], "");
}

#[test]
fn endpoint_hashkv_is_stable_until_a_write() {
    let s = TestServer::start();
    s.put("k", "v1");
    let first = hashkv(&s);
    assert_eq!(hashkv(&s), first, "no writes, same hash");
    s.put("k", "v2");
    let second = hashkv(&s);
    assert_ne!(second, first, "a write changes the hash");

    let table = s.etcdctl_ok(&["endpoint", "hashkv", "-w", "table"]);
    let row = single_row(&table, hashkv_table_columns());
    assert_eq!(row["ENDPOINT"], s.client_url());
    assert_eq!(row["HASH"], second);
    if etcdctl_version() == CtlVersion::V36 {
        assert_eq!(
            row["HASH REVISION"],
            expected_hash_revision(s.revision()).to_string()
        );
    }
}

#[test]
fn endpoint_hashkv_json_reports_compact_revision() {
    let s = TestServer::start();
    s.put("k", "v1");
    s.put("k", "v2");
    let compact_rev = |s: &TestServer| {
        s.etcdctl_json(&["endpoint", "hashkv"])[0]["HashKV"]["compact_revision"].clone()
    };
    assert_eq!(compact_rev(&s), -1, "never compacted");
    s.etcdctl_ok(&["compact", "2"]);
    assert_eq!(compact_rev(&s), 2);
    // etcdctl 3.6 also shows the revision the hash covers (JSON omits it when unset).
    let hash_kv = &s.etcdctl_json(&["endpoint", "hashkv"])[0]["HashKV"];
    let rev = s.revision();
    match etcdctl_version() {
        CtlVersion::V36 if server().sends_hash_revision() => {
            assert_eq!(hash_kv["hash_revision"], expected_hash_revision(rev))
        }
        _ => assert!(hash_kv.get("hash_revision").is_none(), "{hash_kv}"),
    }
}

#[test]
fn member_list_simple_and_table() {
    let s = TestServer::start();
    let id = s.member_id_hex();
    assert_matches(&id, "^[0-9a-f]{1,16}$");
    assert_eq!(
        s.etcdctl_ok(&["member", "list"]),
        format!(
            "{id}, started, {}, {}, {}, false\n",
            s.name(),
            s.peer_url(),
            s.client_url()
        )
    );

    let table = s.etcdctl_ok(&["member", "list", "-w", "table"]);
    let row = single_row(&table, &MEMBER_LIST_COLUMNS);
    assert_eq!(row["ID"], id);
    assert_eq!(row["STATUS"], "started");
    assert_eq!(row["NAME"], s.name());
    assert_eq!(row["PEER ADDRS"], s.peer_url());
    assert_eq!(row["CLIENT ADDRS"], s.client_url());
    assert_eq!(row["IS LEARNER"], "false");
}

#[test]
fn member_list_json() {
    let s = TestServer::start();
    let resp = s.etcdctl_json(&["member", "list"]);
    let members = resp["members"]
        .as_array()
        .unwrap_or_else(|| panic!("members in {resp}"));
    assert_eq!(members.len(), 1);
    let m = &members[0];
    assert_eq!(m["ID"], resp["header"]["member_id"]);
    assert_eq!(m["name"], s.name());
    assert_eq!(m["peerURLs"], serde_json::json!([s.peer_url()]));
    assert_eq!(m["clientURLs"], serde_json::json!([s.client_url()]));
}

#[test]
fn member_and_cluster_ids_are_deterministic_for_the_same_flags() {
    let mut first = TestServer::start();
    let id = first.member_id_hex();
    let cluster = first.etcdctl_json(&["member", "list"])["header"]["cluster_id"].clone();
    first.stop();

    // A brand-new data dir, same name/URLs/flags: same IDs.
    let second = TestServer::start_like(&first);
    assert_eq!(second.member_id_hex(), id);
    assert_eq!(
        second.etcdctl_json(&["member", "list"])["header"]["cluster_id"],
        cluster
    );
}

/// Checks member and cluster IDs for a fixed peer URL.
///
/// etcd derives them deterministically: member ID = first 8 bytes (big
/// endian) of SHA-1(sorted peer URLs concatenated + cluster token); cluster ID
/// = first 8 bytes of SHA-1(the member IDs as 8-byte big-endian, sorted). The
/// name and client URLs do not matter. The peer ports are fixed (below the
/// ephemeral range, so `free_port` never hands them out) and differ per test.
fn assert_fixed_ids(peer_port: u16, extra: &[&str], member_hex: &str, cluster_id: u64) {
    let s = TestServer::start_with_peer_port(peer_port, extra);
    assert_eq!(s.member_id_hex(), member_hex);
    let header = &s.etcdctl_json(&["member", "list"])["header"];
    assert_eq!(header["cluster_id"], cluster_id);
    assert_eq!(
        header["member_id"],
        u64::from_str_radix(member_hex, 16).expect("hex id")
    );
}

#[test]
fn member_id_for_fixed_peer_url_default_token() {
    // etcd 3.4.23: --initial-advertise-peer-urls http://127.0.0.1:12380, token "etcd-cluster"
    // → member ddd67b312462fd7b, cluster 12101053776118486841 (a7ef944b95711739).
    assert_fixed_ids(12380, &[], "ddd67b312462fd7b", 12101053776118486841);
}

#[test]
fn member_id_for_fixed_peer_url_custom_token() {
    // etcd 3.4.23: http://127.0.0.1:12381, --initial-cluster-token ballast-itest
    // → member 8a1b79090c3c05ec, cluster 2417076093373148917 (218b2de694986ef5).
    assert_fixed_ids(
        12381,
        &["--initial-cluster-token", "ballast-itest"],
        "8a1b79090c3c05ec",
        2417076093373148917,
    );
}

#[test]
fn snapshot_save_writes_a_db_file_with_hash_trailer() {
    let s = TestServer::start();
    s.put("k", "v");
    let path = s.scratch_dir().join("backup.db");
    let path_str = path.to_str().expect("utf-8 temp path");
    let out = s.etcdctl_ok(&["snapshot", "save", path_str]);
    assert_eq!(out, snapshot_saved_output(path_str));
    // A bbolt file is whole pages (multiples of 4096, so of 512) followed by a 32-byte SHA-256.
    let size = file_size(&path);
    assert_eq!(size % 512, 32, "snapshot size {size}");
    assert!(
        !s.scratch_dir().join("backup.db.part").exists(),
        "temporary .part file removed"
    );
}

#[test]
fn snapshot_status_reads_the_saved_file() {
    let s = TestServer::start();
    s.put("a", "1");
    s.put("b", "2");
    let rev = s.revision();
    let path = s.scratch_dir().join("snap.db");
    let path_str = path.to_str().expect("utf-8 temp path");
    s.etcdctl_ok(&["snapshot", "save", path_str]);

    // `snapshot status` is computed by etcdctl 3.4 (etcdutl 3.6) from the file alone:
    // the snapshot must be a bbolt database in etcd's layout.
    let json = snapshot_status(path_str, &["-w", "json"]);
    let status: serde_json::Value = serde_json::from_str(json.trim())
        .unwrap_or_else(|e| panic!("snapshot status -w json printed invalid JSON ({e}): {json}"));
    assert_eq!(status["revision"], rev);
    assert_eq!(status["totalSize"], file_size(&path) - 32);
    let total_keys = status["totalKey"].as_u64().expect("totalKey");
    assert!(total_keys >= 2, "totalKey in {status}");
    if let Some(live) = snapshot_total_keys(2) {
        assert_eq!(total_keys, live, "totalKey in {status}");
    }

    let table = snapshot_status(path_str, &["-w", "table"]);
    let row = single_row(&table, snapshot_status_columns());
    assert_eq!(row["REVISION"], rev.to_string());
    // The hash is printed with %x: 1 to 8 hex digits, not zero-padded.
    let hash = u64::from_str_radix(&row["HASH"], 16).expect("hex HASH cell");
    assert_eq!(status["hash"], hash);
    assert_matches(&row["TOTAL SIZE"], HUMAN_SIZE);
    if etcdctl_version() == CtlVersion::V36 {
        // The storage version etcd 3.6 records in the file; none in etcd 3.5's (Ballast's).
        assert_eq!(row["VERSION"], server().storage_version());
        assert_eq!(status["version"], server().storage_version());
    }
}
