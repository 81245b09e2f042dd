//! `etcdctl txn`, non-interactive (stdin) and interactive (`-i`).
//!
//! Input format: compares, blank line, success ops, blank line, failure ops,
//! blank line. Output: `SUCCESS` or `FAILURE`, then for each op a blank line
//! followed by that op's normal output (`OK`, a delete count, get's pairs).

mod common;

use common::{b64, txn_json_response_key, TestServer};

/// The prompts `txn -i` prints on stdout, in order, before the result.
const INTERACTIVE_PROMPTS: &str =
    "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n";

/// Builds txn stdin from its three sections.
fn txn_input(compares: &[&str], success: &[&str], failure: &[&str]) -> String {
    [compares, success, failure]
        .iter()
        .map(|section| {
            section
                .iter()
                .map(|line| format!("{line}\n"))
                .collect::<String>()
                + "\n"
        })
        .collect()
}

fn seeded() -> TestServer {
    let s = TestServer::start();
    s.put("a", "3");
    s
}

#[test]
fn txn_success_branch_runs_success_ops() {
    let s = seeded();
    let input = txn_input(
        &[r#"value("a") = "3""#],
        &["put x ok", "get a"],
        &["put x fail"],
    );
    let out = s.etcdctl_stdin(&["txn"], &input).ok();
    assert_eq!(out, "SUCCESS\n\nOK\n\na\n3\n");
    assert_eq!(s.etcdctl_ok(&["get", "x", "--print-value-only"]), "ok\n");
}

#[test]
fn txn_failure_branch_runs_failure_ops() {
    let s = seeded();
    let input = txn_input(
        &[r#"value("a") = "9""#],
        &["put x ok"],
        &["put x fail", "get x"],
    );
    let out = s.etcdctl_stdin(&["txn"], &input).ok();
    assert_eq!(out, "FAILURE\n\nOK\n\nx\nfail\n");
}

#[test]
fn txn_all_compares_must_hold() {
    let s = seeded();
    let rev = s.revision().to_string();
    // Every compare target etcdctl supports, all true.
    let all_true = [
        r#"value("a") > "2""#.to_string(),
        r#"value("a") < "4""#.to_string(),
        r#"value("a") != "5""#.to_string(),
        r#"version("a") = "1""#.to_string(),
        format!(r#"mod("a") = "{rev}""#),
        format!(r#"create("a") = "{rev}""#),
        r#"create("missing") = "0""#.to_string(),
    ];
    let refs: Vec<&str> = all_true.iter().map(String::as_str).collect();
    let out = s
        .etcdctl_stdin(&["txn"], &txn_input(&refs, &["get a"], &["get x"]))
        .ok();
    assert_eq!(out, "SUCCESS\n\na\n3\n");

    // One false compare flips the whole transaction.
    let mut one_false = refs.clone();
    one_false.push(r#"version("a") > "1""#);
    let out = s
        .etcdctl_stdin(&["txn"], &txn_input(&one_false, &["get a"], &["put x f"]))
        .ok();
    assert_eq!(out, "FAILURE\n\nOK\n");
}

#[test]
fn txn_ops_print_their_results_and_count_as_one_revision() {
    let s = seeded();
    s.put("d1", "x");
    s.put("d2", "y");
    let before = s.revision();
    let input = txn_input(
        &[],
        &["put p1 v1", "put p2 v2", "del d --prefix", "get p --prefix"],
        &[],
    );
    let out = s.etcdctl_stdin(&["txn"], &input).ok();
    // An empty compare list succeeds.
    assert_eq!(out, "SUCCESS\n\nOK\n\nOK\n\n2\n\np1\nv1\np2\nv2\n");
    assert_eq!(s.revision(), before + 1, "a txn is a single revision");
}

#[test]
fn txn_with_empty_branch_prints_only_the_verdict() {
    let s = seeded();
    let out = s
        .etcdctl_stdin(
            &["txn"],
            &txn_input(&[r#"value("a") = "nope""#], &["put x y"], &[]),
        )
        .ok();
    assert_eq!(out, "FAILURE\n");
    assert_eq!(s.etcdctl_ok(&["get", "x"]), "");
}

#[test]
fn txn_json_output() {
    let s = seeded();
    let input = txn_input(
        &[r#"version("a") = "1""#],
        &["put x ok", "get a", "del a"],
        &[],
    );
    let out = s.etcdctl_stdin(&["-w", "json", "txn"], &input).ok();
    let resp: serde_json::Value =
        serde_json::from_str(out.trim()).expect("txn -w json prints JSON");
    assert_eq!(resp["succeeded"], true);
    let rev = resp["header"]["revision"]
        .as_i64()
        .expect("header.revision");
    let responses = resp["responses"].as_array().expect("responses array");
    assert_eq!(responses.len(), 3);
    // etcdctl 3.4 and 3.6 name the response kinds differently (see common).
    assert_eq!(
        responses[0]["Response"][txn_json_response_key("Put")]["header"]["revision"],
        rev
    );
    let range = &responses[1]["Response"][txn_json_response_key("Range")];
    assert_eq!(range["count"], 1);
    assert_eq!(range["kvs"][0]["key"], b64("a"));
    assert_eq!(range["kvs"][0]["value"], b64("3"));
    let deleted = &responses[2]["Response"][txn_json_response_key("DeleteRange")];
    assert_eq!(deleted["deleted"], 1, "{resp}");
}

#[test]
fn txn_interactive_reads_sections_from_stdin() {
    let s = seeded();
    s.put("x", "old");
    let input = txn_input(
        &[r#"mod("a") > "0""#, r#"version("a") = "1""#],
        &["del x", "get a --prefix"],
        &["put y v"],
    );
    let out = s.etcdctl_stdin(&["txn", "-i"], &input).ok();
    assert_eq!(out, format!("{INTERACTIVE_PROMPTS}SUCCESS\n\n1\n\na\n3\n"));
    assert_eq!(s.etcdctl_ok(&["get", "x"]), "");
}

#[test]
fn txn_interactive_failure_branch() {
    let s = seeded();
    let input = txn_input(
        &[r#"create("a") = "0""#],
        &["put y s"],
        &["put y f", "get y"],
    );
    let out = s.etcdctl_stdin(&["txn", "--interactive"], &input).ok();
    assert_eq!(out, format!("{INTERACTIVE_PROMPTS}FAILURE\n\nOK\n\ny\nf\n"));
}

#[test]
fn txn_put_and_delete_of_same_key_is_rejected() {
    let s = seeded();
    let input = txn_input(&[], &["put x ok", "del x"], &[]);
    let err = s.etcdctl_stdin(&["txn"], &input).err_line();
    assert_eq!(err, "Error: etcdserver: duplicate key given in txn request");
    assert_eq!(
        s.etcdctl_ok(&["get", "x"]),
        "",
        "a rejected txn writes nothing"
    );
}
