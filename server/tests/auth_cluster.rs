//! Auth across three members: users, roles and logins are Raft entries, so a
//! change made through one member holds on the others at once, a token handed
//! out by one member is honoured by another, and a member that catches up from
//! a Raft snapshot gets the users with it.

#[allow(dead_code)]
mod cluster_support;
mod common;

use std::time::Duration;

use ballast_proto::etcdserverpb as pb;
use cluster_support::*;

fn grpc(url: &str) -> tonic::transport::Endpoint {
    tonic::transport::Endpoint::from_shared(url.to_string())
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(10))
}

/// Logs in through `url` (gRPC Authenticate).
async fn login(url: &str, user: &str, password: &str) -> String {
    let mut auth = pb::auth_client::AuthClient::new(grpc(url).connect().await.expect("connect"));
    let req = pb::AuthenticateRequest {
        name: user.into(),
        password: password.into(),
    };
    auth.authenticate(req)
        .await
        .unwrap_or_else(|e| panic!("login as {user} at {url}: {e:?}"))
        .into_inner()
        .token
}

async fn get_with_token(url: &str, token: &str, key: &str) -> Result<usize, tonic::Status> {
    let mut kv = pb::kv_client::KvClient::new(grpc(url).connect().await.expect("connect"));
    let mut req = tonic::Request::new(pb::RangeRequest {
        key: key.into(),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("token", token.parse().expect("ASCII token"));
    kv.range(req).await.map(|r| r.into_inner().kvs.len())
}

#[test]
fn auth_holds_on_every_member_and_travels_in_raft_snapshots() {
    if common::server_kind() != common::ServerKind::Ballast {
        // Needs Ballast's knob for short catch-up logs (the snapshot part).
        return;
    }
    let _serial = one_at_a_time();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<Node> = ["m1", "m2", "m3"]
        .iter()
        .map(|n| Node::new(n, root.path()))
        .collect();
    let ic = initial_cluster(&nodes.iter().collect::<Vec<_>>());
    let flags = ["--snapshot-count", "20"];
    for n in &mut nodes {
        n.set_env("BALLAST_SNAPSHOT_CATCHUP_ENTRIES", "10");
        n.start_with(&ic, "new", &flags);
    }
    for n in &nodes {
        wait_for(&format!("{} healthy", n.name), || n.healthy());
    }
    let [m1, m2, m3] = [0, 1, 2].map(|i| nodes[i].client_url());
    let root_user = "--user=root:root";
    for args in [
        &["user", "add", "root:root"][..],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "app:pw"],
        &["role", "add", "app"],
        &[
            "role",
            "grant-permission",
            "--prefix=true",
            "app",
            "read",
            "/app/",
        ],
        &["user", "grant-role", "app", "app"],
        &["auth", "enable"],
    ] {
        ctl_ok(&m1, args);
    }
    ctl_ok(&m2, &[root_user, "put", "/app/k", "v"]);
    // Set up through m1, logged in at m3.
    assert_eq!(
        ctl_ok(
            &m3,
            &["--user=app:pw", "get", "/app/k", "--print-value-only"]
        ),
        "v\n"
    );
    // A token handed out by m1 works at m3 (every member applied the login).
    let token = rt.block_on(login(&m1, "app", "pw"));
    assert_eq!(
        rt.block_on(get_with_token(&m3, &token, "/app/k")).ok(),
        Some(1)
    );
    // A role revoked through m2 is gone at m3 at once, for the same token.
    ctl_ok(&m2, &[root_user, "user", "revoke-role", "app", "app"]);
    let denied = rt.block_on(get_with_token(&m3, &token, "/app/k"));
    assert_eq!(
        denied.map_err(|e| e.message().to_string()),
        Err("etcdserver: permission denied".to_string())
    );

    // m3 misses a new user and enough writes that the log is cut past it.
    nodes[2].kill9();
    let two = endpoints(&[&nodes[0], &nodes[1]]);
    leader(&two, 2);
    ctl_ok(&two, &[root_user, "user", "add", "late:pw"]);
    ctl_ok(&two, &[root_user, "user", "grant-role", "late", "app"]);
    ctl_ok(
        &two,
        &[
            root_user,
            "role",
            "grant-permission",
            "app",
            "read",
            "/late",
        ],
    );
    let logs = [nodes[0].log_path(), nodes[1].log_path()];
    wait_for("the log to be compacted past m3", || {
        ctl_ok(&two, &[root_user, "put", "tick", "x"]);
        logs.iter().any(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .contains("compacted raft log")
        })
    });
    for _ in 0..30 {
        ctl_ok(&two, &[root_user, "put", "tick", "x"]);
    }
    nodes[2].start_with(&ic, "new", &flags);
    wait_for("m3 to catch up and log late in", || {
        ctl(
            &m3,
            &["--user=late:pw", "get", "/late", "--consistency", "s"],
        )
        .0
    });
    let installed = std::fs::read_to_string(nodes[2].log_path())
        .unwrap_or_default()
        .contains("installed snapshot from the leader");
    assert!(installed, "m3 caught up through a snapshot, not the log");
    // The role came with the snapshot too: read, not write.
    let (ok, _, stderr) = ctl(&m3, &["--user=late:pw", "put", "/late", "x"]);
    assert!(!ok && stderr.contains("permission denied"), "{stderr}");
}
