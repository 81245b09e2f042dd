//! Members talking mutual TLS on the peer port, with seed 003's flags: https peer URLs,
//! `--peer-client-cert-auth`, https client URLs next to a plain loopback one, one
//! certificate (CN etcd, SANs 127.0.0.1) for server, peer and etcdctl. Peers whose
//! certificate comes from another CA, or carries a CN that is not allowed, get nothing
//! through: they can't join and their Raft traffic is refused.

// Shared with other suites; this one uses part of it.
#[allow(dead_code)]
mod cluster_support;
mod common;
mod tls_support;

use std::path::Path;

use cluster_support::Node;
use common::{free_port, parse_table, server_kind, ServerKind};
use tls_support::{client_flags, etcdctl, etcdctl_ok, Ca, Cert};

/// A member and the port of its https client URL (its `client_port` is the plain one).
struct Member {
    node: Node,
    https_port: u16,
}

impl Member {
    fn new(name: &str, root: &Path) -> Member {
        Member {
            node: Node::new(name, root),
            https_port: free_port(),
        }
    }

    fn https(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }

    fn peer(&self) -> String {
        format!("https://127.0.0.1:{}", self.node.peer_port)
    }

    /// Seed 003's flags; the harness's http URLs are overridden (the last flag wins).
    fn start(&mut self, initial_cluster: &str, state: &str, ca: &Ca, cert: &Cert) {
        let listen = format!(
            "{},http://127.0.0.1:{}",
            self.https(),
            self.node.client_port
        );
        let (https, peer) = (self.https(), self.peer());
        let flags = [
            "--cert-file",
            cert.crt(),
            "--key-file",
            cert.key(),
            "--trusted-ca-file",
            ca.crt(),
            "--peer-cert-file",
            cert.crt(),
            "--peer-key-file",
            cert.key(),
            "--peer-trusted-ca-file",
            ca.crt(),
            "--peer-client-cert-auth",
            "--client-cert-auth",
            "--peer-cert-allowed-cn",
            "etcd",
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--listen-client-urls",
            &listen,
            "--advertise-client-urls",
            &https,
        ];
        self.node.start_with(initial_cluster, state, &flags);
    }

    fn logged(&self, text: &str) -> bool {
        self.node.log().contains(text)
    }
}

fn initial_cluster(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}", m.node.name, m.peer()))
        .collect::<Vec<_>>()
        .join(",")
}

fn https_endpoints(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| m.https())
        .collect::<Vec<_>>()
        .join(",")
}

/// `endpoint status -w table` over https: (endpoint, is leader, raft term) per row.
fn status(eps: &str, tls: &[&str]) -> Vec<(String, bool, String)> {
    let (_, out, _) = etcdctl(eps, tls, &["endpoint", "status", "-w", "table"]);
    if !out.contains("ENDPOINT") {
        return Vec::new();
    }
    let (header, rows) = parse_table(&out);
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    rows.iter()
        .map(|r| {
            (
                r[col("ENDPOINT")].clone(),
                r[col("IS LEADER")] == "true",
                r[col("RAFT TERM")].clone(),
            )
        })
        .collect()
}

fn pki(root: &Path) -> (Ca, Cert) {
    let ca = Ca::new(&root.join("pki"), "ca");
    let etcd = ca.issue("etcd", "etcd");
    (ca, etcd)
}

#[test]
fn three_members_with_mutual_peer_tls_serve_and_refuse_foreign_peers() {
    if server_kind() != ServerKind::Ballast {
        return;
    }
    let _serial = cluster_support::one_at_a_time();
    let root = tempfile::tempdir().expect("tempdir");
    let (ca, etcd) = pki(root.path());
    let tls = client_flags(&ca, &etcd);
    let mut members: Vec<Member> = ["m1", "m2", "m3"]
        .iter()
        .map(|n| Member::new(n, root.path()))
        .collect();
    let ic = initial_cluster(&members.iter().collect::<Vec<_>>());
    for m in &mut members {
        m.start(&ic, "new", &ca, &etcd);
    }
    for m in &members {
        cluster_support::wait_for(&format!("{} healthy", m.node.name), || m.node.healthy());
    }
    let eps = https_endpoints(&members.iter().collect::<Vec<_>>());

    // endpoint status / health over every https endpoint, as the seed checks the cluster.
    cluster_support::wait_for("one leader over https, one term", || {
        let rows = status(&eps, &tls);
        rows.len() == 3
            && rows.iter().filter(|r| r.1).count() == 1
            && rows.windows(2).all(|w| w[0].2 == w[1].2)
    });
    let health = etcdctl_ok(&eps, &tls, &["endpoint", "health", "-w", "table"]);
    let (_, rows) = parse_table(&health);
    assert_eq!(rows.len(), 3, "{health}");
    assert!(rows.iter().all(|r| r[1] == "true"), "{health}");
    for m in &members {
        assert!(
            m.logged("\"serving client traffic securely\""),
            "{}",
            m.node.log()
        );
    }

    // Writes through one member are read through another.
    assert_eq!(
        etcdctl_ok(&members[0].https(), &tls, &["put", "tls-key", "v1"]),
        "OK\n"
    );
    assert_eq!(
        etcdctl_ok(&members[2].https(), &tls, &["get", "tls-key"]),
        "tls-key\nv1\n"
    );
    // Each member publishes its name and client URLs through Raft after it
    // starts; the member answering may not have applied every one yet.
    let listed = |list: &str, m: &Member| {
        list.contains(&format!("{}, {}, {}", m.node.name, m.peer(), m.https()))
    };
    let mut list = String::new();
    cluster_support::wait_for("every member published in member list", || {
        list = etcdctl_ok(&eps, &tls, &["member", "list"]);
        members.iter().all(|m| listed(&list, m))
    });

    // A fourth member with a peer certificate from another CA can't join.
    let other = Ca::new(&root.path().join("pki"), "other-ca");
    let foreign = other.issue("foreign", "etcd");
    let mut m4 = Member::new("m4", root.path());
    // Refused as an unhealthy cluster until every peer has been connected
    // for etcd's 5 s health interval.
    let add = ["member", "add", "m4", &format!("--peer-urls={}", m4.peer())];
    cluster_support::wait_for("member add to be accepted", || {
        let (ok, _, err) = etcdctl(&eps, &tls, &add);
        assert!(
            ok || err.contains("etcdserver: unhealthy cluster"),
            "member add: {}",
            cluster_support::tail(&err)
        );
        ok
    });
    let all: Vec<&Member> = members.iter().chain([&m4]).collect();
    let ic4 = initial_cluster(&all);
    m4.start(&ic4, "existing", &ca, &foreign);
    cluster_support::wait_for("m4 with a foreign certificate to give up", || {
        !m4.node.is_running()
    });
    assert!(
        m4.logged("cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs"),
        "{}",
        m4.node.log()
    );
    assert!(
        members
            .iter()
            .any(|m| m.logged("\"rejected connection\"") && m.logged("UnknownIssuer")),
        "no member logged the refused certificate"
    );

    // Same CA, but a CN outside --peer-cert-allowed-cn: refused too.
    let intruder = ca.issue("intruder", "intruder");
    m4.start(&ic4, "existing", &ca, &intruder);
    cluster_support::wait_for("m4 with a disallowed CN to give up", || {
        !m4.node.is_running()
    });
    assert!(!m4.node.healthy());
    assert!(
        members
            .iter()
            .any(|m| m.logged("client certificate authentication failed")),
        "no member logged the disallowed CN"
    );

    // The cluster kept serving; m4 is still an unstarted member.
    let health = etcdctl_ok(&eps, &tls, &["endpoint", "health", "-w", "table"]);
    let (_, rows) = parse_table(&health);
    assert!(
        rows.len() == 3 && rows.iter().all(|r| r[1] == "true"),
        "{health}"
    );
    let list = etcdctl_ok(&eps, &tls, &["member", "list"]);
    assert!(
        list.contains(&format!(", unstarted, , {}, , false", m4.peer())),
        "{list}"
    );
}

#[test]
fn raft_traffic_from_a_member_with_a_foreign_certificate_is_refused() {
    if server_kind() != ServerKind::Ballast {
        return;
    }
    let _serial = cluster_support::one_at_a_time();
    let root = tempfile::tempdir().expect("tempdir");
    let (ca, etcd) = pki(root.path());
    let other = Ca::new(&root.path().join("pki"), "other-ca");
    let foreign = other.issue("foreign", "etcd");
    let tls = client_flags(&ca, &etcd);
    let mut members: Vec<Member> = ["m1", "m2", "m3"]
        .iter()
        .map(|n| Member::new(n, root.path()))
        .collect();
    let ic = initial_cluster(&members.iter().collect::<Vec<_>>());
    for (i, m) in members.iter_mut().enumerate() {
        let cert = if i == 2 { &foreign } else { &etcd };
        m.start(&ic, "new", &ca, cert);
    }
    // m1 and m2 are a quorum on their own.
    for m in &members[..2] {
        cluster_support::wait_for(&format!("{} healthy", m.node.name), || m.node.healthy());
    }
    let good = https_endpoints(&members[..2].iter().collect::<Vec<_>>());
    assert_eq!(etcdctl_ok(&good, &tls, &["put", "k", "v"]), "OK\n");
    cluster_support::wait_for("m3's raft traffic to be refused", || {
        members[..2]
            .iter()
            .any(|m| m.logged("\"rejected connection\"") && m.logged("UnknownIssuer"))
    });

    // m3 runs but hears from no leader, so it never publishes itself and, as etcd, serves
    // no client: requests wait in its listener's backlog until they time out.
    let m3 = &mut members[2];
    assert!(m3.node.is_running(), "{}", m3.node.log());
    assert!(!m3.node.healthy());
    let plain = m3.node.client_url();
    let (ok, _, err) = etcdctl(
        &plain,
        &[],
        &["get", "k", "--consistency", "s", "--command-timeout", "2s"],
    );
    assert!(
        !ok && err.contains("context deadline exceeded"),
        "an unpublished member answered: {err}"
    );
    assert!(
        !m3.logged("published local member to cluster through raft"),
        "{}",
        m3.node.log()
    );
}
