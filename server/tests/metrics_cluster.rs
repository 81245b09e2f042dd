//! Observability on three members: one leader in the gauges, leader changes
//! seen by followers, peer traffic and round-trip histograms per peer, the
//! series seed 004's rules and dashboard use, and `/health` losing the
//! leader when two members stop.

// Shared with other suites; this one uses part of it.
#[allow(dead_code)]
mod cluster_support;
mod common;
mod metrics_support;

use std::collections::BTreeMap;

use cluster_support::*;
use metrics_support::{must_get, scrape, Scrape, SEED_004_ANY_MEMBER};

/// Seed 004 also charts peer round trips, which only a cluster has.
const SEED_004_PEERS: &str = "etcd_network_peer_round_trip_time_seconds_bucket";

fn start_three(root: &std::path::Path) -> Vec<Node> {
    let mut nodes: Vec<Node> = ["m1", "m2", "m3"]
        .iter()
        .map(|n| Node::new(n, root))
        .collect();
    let ic = initial_cluster(&nodes.iter().collect::<Vec<_>>());
    for n in &mut nodes {
        n.start(&ic, "new");
    }
    for n in &nodes {
        wait_for(&format!("{} healthy", n.name), || n.healthy());
    }
    nodes
}

/// Member ID (hex) of each node, by client URL.
fn member_ids(nodes: &[Node]) -> BTreeMap<String, String> {
    let eps = endpoints(&nodes.iter().collect::<Vec<_>>());
    status(&eps).into_iter().map(|r| (r.0, r.1)).collect()
}

/// Whether `m` (scraped on member `me`) shows a measured round trip to every
/// peer, and Raft traffic both ways with every peer it talks to: the leader
/// with all, a follower with the leader (followers exchange nothing once a
/// leader is elected, in etcd too).
fn peers_measured(m: &Scrape, me: &str, leader: &str, peers: &[&String]) -> bool {
    peers.iter().all(|p| {
        let to = [("To", p.as_str())];
        let from = [("From", p.as_str())];
        let talks = me == leader || p.as_str() == leader;
        let traffic = m.value("etcd_network_peer_sent_bytes_total", &to) > Some(0.0)
            && m.value("etcd_network_peer_received_bytes_total", &from) > Some(0.0);
        (traffic || !talks)
            && m.value("etcd_network_peer_round_trip_time_seconds_count", &to) > Some(0.0)
    })
}

#[test]
fn three_members_report_one_leader_peer_traffic_and_health() {
    if common::server_kind() != common::ServerKind::Ballast {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = start_three(root.path());
    let eps = endpoints(&nodes.iter().collect::<Vec<_>>());
    let leader = leader(&eps, 3);
    let ids = member_ids(&nodes);
    assert_eq!(ids.len(), 3, "{ids:?}");

    for n in &nodes {
        let me = &ids[&n.client_url()];
        let peers: Vec<&String> = ids.values().filter(|id| *id != me).collect();
        wait_for(&format!("peer metrics on {}", n.name), || {
            peers_measured(&scrape(n.client_port), me, &leader, &peers)
        });
    }

    let scrapes: Vec<Scrape> = nodes.iter().map(|n| scrape(n.client_port)).collect();
    let leaders: Vec<&String> = nodes
        .iter()
        .zip(&scrapes)
        .filter(|(_, m)| m.must("etcd_server_is_leader", &[]) == 1.0)
        .map(|(n, _)| &ids[&n.client_url()])
        .collect();
    assert_eq!(leaders, [&leader], "exactly the leader reports is_leader 1");
    for (n, m) in nodes.iter().zip(&scrapes) {
        let me = &ids[&n.client_url()];
        assert_eq!(m.must("etcd_server_has_leader", &[]), 1.0, "{}", n.name);
        assert_eq!(m.must("etcd_server_id", &[("server_id", me)]), 1.0);
        // Followers see the election too, not only the member that won it.
        assert!(m.must("etcd_server_leader_changes_seen_total", &[]) >= 1.0);
        assert_eq!(
            m.kind("etcd_network_peer_round_trip_time_seconds"),
            Some("histogram")
        );
        assert_eq!(
            m.kind("etcd_network_peer_sent_bytes_total"),
            Some("counter")
        );
        assert_eq!(
            m.kind("etcd_network_peer_received_bytes_total"),
            Some("counter")
        );
        for series in SEED_004_ANY_MEMBER.iter().chain([&SEED_004_PEERS]) {
            assert!(
                !m.find(series, &[]).is_empty(),
                "{}: seed 004 uses {series}",
                n.name
            );
        }
        let h = must_get(n.client_port, "/health");
        assert_eq!(
            (h.status, h.body.as_str()),
            (200, r#"{"health":"true","reason":""}"#)
        );
    }

    // Two of three stop: the survivor loses its leader and says so.
    nodes[1].kill9();
    nodes[2].kill9();
    let survivor = &nodes[0];
    wait_for("the survivor to report no leader", || {
        let h = must_get(survivor.client_port, "/health");
        h.status == 503 && h.body == "{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}\n"
    });
    assert_eq!(
        scrape(survivor.client_port).must("etcd_server_has_leader", &[]),
        0.0
    );
    assert_eq!(
        scrape(survivor.client_port).must("etcd_server_is_leader", &[]),
        0.0
    );
    // etcd 3.5: a serializable check asks only this member, which is up.
    let local = must_get(survivor.client_port, "/health?serializable=true");
    assert_eq!(local.status, 200, "{}", local.body);
}

/// etcd_mvcc_{put,delete,range,txn}_total of one member.
fn mvcc_counts(port: u16) -> [f64; 4] {
    let m = scrape(port);
    ["put", "delete", "range", "txn"].map(|op| m.must(&format!("etcd_mvcc_{op}_total"), &[]))
}

fn delta(after: [f64; 4], before: [f64; 4]) -> [f64; 4] {
    [0, 1, 2, 3].map(|i| after[i] - before[i])
}

#[test]
fn writes_are_counted_on_every_member_and_reads_where_served() {
    if common::server_kind() != common::ServerKind::Ballast {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = start_three(root.path());
    let eps = endpoints(&nodes.iter().collect::<Vec<_>>());
    leader(&eps, 3);
    let before: Vec<[f64; 4]> = nodes.iter().map(|n| mvcc_counts(n.client_port)).collect();

    // Everything through m1; the expected counts were measured on etcd 3.4.23.
    let m1 = nodes[0].client_url();
    ctl_ok(&m1, &["put", "k1", "v"]); // put
    ctl_ok(&m1, &["put", "k1", "v2", "--prev-kv"]); // range + put = txn
    ctl_ok(&m1, &["del", "k1"]); // delete
    ctl_ok(&m1, &["put", "k2", "x"]); // put
    let write_txn = "value(\"k2\") = \"x\"\n\nput k3 1\nput k4 1\n\n\n";
    // compare (a range, on its own), then two puts (a txn)
    assert!(ctl_stdin(&m1, &["txn"], write_txn).contains("SUCCESS"));
    // both the final write's effects and the reads below, on m1 alone
    wait_for("every member to apply the writes", || {
        nodes.iter().zip(&before).all(|(n, b)| {
            let d = delta(mvcc_counts(n.client_port), *b);
            d[0] == 5.0 && d[1] == 1.0
        })
    });
    let read_txn = "\nget k2\nget k3\n\n\n";
    assert!(ctl_stdin(&m1, &["txn"], read_txn).contains("SUCCESS")); // two ranges = txn, on m1
    ctl_ok(&m1, &["get", "k2"]); // range, on m1

    // Writes: put 5, delete 1, range 2 (prev-kv, compare), txn 2, everywhere.
    // Reads on m1 only: range 3 more, txn 1 more.
    let expected = |served: bool| {
        if served {
            [5.0, 1.0, 5.0, 3.0]
        } else {
            [5.0, 1.0, 2.0, 2.0]
        }
    };
    for (i, (n, b)) in nodes.iter().zip(&before).enumerate() {
        let want = expected(i == 0);
        let mut got = [0.0; 4];
        wait_for(&format!("{}'s mvcc counters", n.name), || {
            got = delta(mvcc_counts(n.client_port), *b);
            got == want
        });
        assert_eq!(got, want, "{}: [put, delete, range, txn]", n.name);
    }
}

/// etcdctl fed on stdin (the interactive `txn`); must succeed.
fn ctl_stdin(endpoint: &str, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(common::etcdctl_binary())
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn etcdctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("etcdctl");
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
