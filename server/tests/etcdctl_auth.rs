//! Auth with real clients: seed 002's `etcdctl user|role|auth` walk-through,
//! the permission rules (prefixes, txn branches, watches, leases), a revoked
//! role taking effect on a live connection, JWT tokens (a token signed by
//! another key, a token made stale by a change), identity from the client
//! certificate's CN, and auth surviving a restart. Every test passes against
//! real etcd too (`BALLAST_TEST_SERVER=etcd`).

mod common;
mod support;
mod tls_support;

use std::time::Duration;

use ballast_proto::etcdserverpb as pb;
use common::TestServer;
use etcd_client::{ConnectOptions, GetOptions};
use support::{assert_grpc_err, assert_status, channel, ok, within};
use tonic::Code;

/// How long a watch refused by the server may take to end.
const WATCH_END: Duration = Duration::from_secs(20);

const DENIED: &str = "Error: etcdserver: permission denied";

/// `root` with the root role, then auth on (seed 002's recipe).
fn enable_auth(s: &TestServer) {
    s.etcdctl_ok(&["user", "add", "root:root"]);
    s.etcdctl_ok(&["role", "add", "root"]);
    s.etcdctl_ok(&["user", "grant-role", "root", "root"]);
    assert_eq!(
        s.etcdctl_ok(&["auth", "enable"]),
        "Authentication Enabled\n"
    );
}

/// A user `name` (password `pw`) holding a fresh role of the same name with
/// `perm` (read|write|readwrite) on the prefix.
fn user_with_prefix(s: &TestServer, root: &[&str], name: &str, perm: &str, prefix: &str) {
    let run = |args: &[&str]| s.etcdctl_ok(&[root, args].concat());
    run(&["user", "add", &format!("{name}:pw")]);
    run(&["role", "add", name]);
    run(&[
        "role",
        "grant-permission",
        "--prefix=true",
        name,
        perm,
        prefix,
    ]);
    run(&["user", "grant-role", name, name]);
}

/// The auth revision and state, as AuthStatus reports them to `root`.
async fn auth_status(s: &TestServer, token: &str) -> (bool, u64) {
    let mut auth = pb::auth_client::AuthClient::new(channel(s).await);
    let mut req = tonic::Request::new(pb::AuthStatusRequest {});
    req.metadata_mut()
        .insert("token", token.parse().expect("token is ASCII"));
    let r = within("AuthStatus", auth.auth_status(req)).await;
    let r = r
        .unwrap_or_else(|e| panic!("AuthStatus: {e:?}"))
        .into_inner();
    (r.enabled, r.auth_revision)
}

async fn token_of(s: &TestServer, user: &str, password: &str) -> String {
    let mut auth = pb::auth_client::AuthClient::new(channel(s).await);
    let req = pb::AuthenticateRequest {
        name: user.into(),
        password: password.into(),
    };
    let r = within("Authenticate", auth.authenticate(req)).await;
    r.unwrap_or_else(|e| panic!("Authenticate {user}: {e:?}"))
        .into_inner()
        .token
}

/// A Range with a raw token in the metadata.
async fn range_with_token(
    s: &TestServer,
    token: &str,
    key: &str,
) -> Result<pb::RangeResponse, tonic::Status> {
    let mut kv = pb::kv_client::KvClient::new(channel(s).await);
    let mut req = tonic::Request::new(pb::RangeRequest {
        key: key.into(),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("token", token.parse().expect("token is ASCII"));
    within("Range", kv.range(req)).await.map(|r| r.into_inner())
}

#[test]
fn seed_002_users_roles_and_auth() {
    let s = TestServer::start();
    let ok = |args: &[&str]| s.etcdctl_ok(args);
    assert_eq!(ok(&["user", "add", "root:root"]), "User root created\n");
    assert_eq!(
        ok(&["user", "add", "xiaoming", "--new-user-password=xiaoming"]),
        "User xiaoming created\n"
    );
    assert_eq!(
        s.etcdctl_err(&["user", "add", "xiaoming", "--new-user-password=x"]),
        "Error: etcdserver: user name already exists"
    );
    assert_eq!(ok(&["role", "add", "fox"]), "Role fox created\n");
    assert_eq!(
        s.etcdctl_err(&["role", "add", "fox"]),
        "Error: etcdserver: role name already exists"
    );
    assert_eq!(
        ok(&["role", "grant-permission", "fox", "read", "/name"]),
        "Role fox updated\n"
    );
    assert_eq!(
        ok(&["role", "get", "fox"]),
        "Role fox\nKV Read:\n\t/name\nKV Write:\n"
    );
    assert_eq!(
        ok(&["user", "grant-role", "xiaoming", "fox"]),
        "Role fox is granted to user xiaoming\n"
    );
    assert_eq!(
        s.etcdctl_err(&["user", "grant-role", "xiaoming", "wolf"]),
        "Error: etcdserver: role name not found"
    );
    assert_eq!(
        ok(&["user", "get", "xiaoming"]),
        "User: xiaoming\nRoles: fox\n"
    );
    assert_eq!(ok(&["user", "list"]), "root\nxiaoming\n");
    assert_eq!(ok(&["role", "list"]), "fox\n");

    assert_eq!(ok(&["role", "add", "root"]), "Role root created\n");
    assert_eq!(
        ok(&[
            "role",
            "grant-permission",
            "--prefix=true",
            "root",
            "readwrite",
            "/"
        ]),
        "Role root updated\n"
    );
    assert_eq!(
        ok(&["user", "grant-role", "root", "root"]),
        "Role root is granted to user root\n"
    );
    assert_eq!(ok(&["auth", "enable"]), "Authentication Enabled\n");
    if common::etcdctl_version() == common::CtlVersion::V36 {
        // etcdctl 3.4 has no `auth status`; the seed's 3.5 and 3.6 have.
        assert_eq!(
            ok(&["auth", "status", "--user=root:root"]),
            "Authentication Status: true\nAuthRevision: 9\n"
        );
    }

    // From now on, credentials are needed.
    assert_eq!(
        s.etcdctl_err(&["get", "/name"]),
        "Error: etcdserver: user name is empty"
    );
    assert_eq!(
        s.etcdctl_err(&["--user=xiaoming:wrong", "get", "/name"]),
        "Error: etcdserver: authentication failed, invalid user ID or password"
    );
    let root = "--user=root:root";
    assert_eq!(ok(&[root, "put", "/name", "fox"]), "OK\n");
    assert_eq!(
        ok(&["--user=xiaoming:xiaoming", "get", "/name"]),
        "/name\nfox\n"
    );
    assert_eq!(
        s.etcdctl_err(&["--user=xiaoming:xiaoming", "put", "/name", "x"]),
        DENIED
    );
    // Administration is for root.
    assert_eq!(
        s.etcdctl_err(&["--user=xiaoming:xiaoming", "user", "list"]),
        DENIED
    );
    // ...but a user may read its own record and roles.
    assert_eq!(
        ok(&["--user=xiaoming:xiaoming", "user", "get", "xiaoming"]),
        "User: xiaoming\nRoles: fox\n"
    );
    assert_eq!(
        ok(&["--user=xiaoming:xiaoming", "role", "get", "fox"]),
        "Role fox\nKV Read:\n\t/name\nKV Write:\n"
    );
    // root cannot lose its role, nor be deleted, while auth is on.
    for args in [
        &[root, "user", "delete", "root"][..],
        &[root, "user", "revoke-role", "root", "root"],
        &[root, "role", "delete", "root"],
    ] {
        assert_eq!(
            s.etcdctl_err(args),
            "Error: etcdserver: invalid auth management",
            "{args:?}"
        );
    }
    let passwd = s.etcdctl_stdin(
        &[root, "user", "passwd", "xiaoming", "--interactive=false"],
        "newpw\n",
    );
    assert_eq!(passwd.ok(), "Password updated\n");
    assert_eq!(
        s.etcdctl_err(&["--user=xiaoming:xiaoming", "get", "/name"]),
        "Error: etcdserver: authentication failed, invalid user ID or password"
    );
    assert_eq!(
        ok(&["--user=xiaoming:newpw", "get", "/name"]),
        "/name\nfox\n"
    );
    assert_eq!(
        ok(&[root, "role", "revoke-permission", "fox", "/name"]),
        "Permission of key /name is revoked from role fox\n"
    );
    assert_eq!(
        s.etcdctl_err(&[root, "role", "revoke-permission", "fox", "/name"]),
        "Error: etcdserver: permission is not granted to the role"
    );
    assert_eq!(
        s.etcdctl_err(&["--user=xiaoming:newpw", "get", "/name"]),
        DENIED
    );
    assert_eq!(
        ok(&[root, "user", "revoke-role", "xiaoming", "fox"]),
        "Role fox is revoked from user xiaoming\n"
    );
    assert_eq!(
        s.etcdctl_err(&[root, "user", "revoke-role", "xiaoming", "fox"]),
        "Error: etcdserver: role is not granted to the user"
    );
    assert_eq!(ok(&[root, "role", "delete", "fox"]), "Role fox deleted\n");
    assert_eq!(
        ok(&[root, "user", "delete", "xiaoming"]),
        "User xiaoming deleted\n"
    );
    assert_eq!(
        s.etcdctl_err(&[root, "user", "delete", "xiaoming"]),
        "Error: etcdserver: user name not found"
    );
    assert_eq!(ok(&[root, "auth", "disable"]), "Authentication Disabled\n");
    assert_eq!(ok(&["get", "/name"]), "/name\nfox\n");
}

#[test]
fn a_reader_of_a_prefix_reads_there_and_nothing_else() {
    let s = TestServer::start();
    enable_auth(&s);
    let root = "--user=root:root";
    user_with_prefix(&s, &[root], "reader", "read", "/app/");
    s.etcdctl_ok(&[root, "put", "/app/a", "1"]);
    s.etcdctl_ok(&[root, "put", "/other", "2"]);
    let user = "--user=reader:pw";

    assert_eq!(s.etcdctl_ok(&[user, "get", "/app/a"]), "/app/a\n1\n");
    assert_eq!(
        s.etcdctl_ok(&[user, "get", "/app/", "--prefix"]),
        "/app/a\n1\n"
    );
    assert_eq!(s.etcdctl_err(&[user, "put", "/app/a", "x"]), DENIED);
    assert_eq!(s.etcdctl_err(&[user, "get", "/other"]), DENIED);
    // A range reaching past the prefix is refused as a whole.
    assert_eq!(s.etcdctl_err(&[user, "get", "/", "--prefix"]), DENIED);
    assert_eq!(s.etcdctl_err(&[user, "del", "/app/a"]), DENIED);

    // Every branch of a txn is checked, whichever runs.
    let txn = "value(\"/app/a\") = \"1\"\n\nget /app/a\n\nput /other x\n\n";
    let out = s.etcdctl_stdin(&[user, "txn"], txn);
    assert_eq!(out.err_line(), DENIED);
    let read_only = "value(\"/app/a\") = \"1\"\n\nget /app/a\n\nget /app/b\n\n";
    assert_eq!(
        s.etcdctl_stdin(&[user, "txn"], read_only).ok(),
        "SUCCESS\n\n/app/a\n1\n"
    );

    // Watching outside the prefix: the watch is canceled with the reason.
    let mut w = s.spawn_etcdctl(&[user, "watch", "/other"]);
    let (status, stdout) = w.wait_exit(WATCH_END);
    assert!(!status.success(), "watch outside the prefix ran: {stdout}");
    assert!(
        stdout.contains("permission denied"),
        "watch output: {stdout}\nstderr: {}",
        w.stderr_text()
    );
    // Inside it, events arrive (from the next revision: no race with the watch's start).
    let now = s.etcdctl_ok(&[root, "-w", "json", "get", "/app/a"]);
    let now: serde_json::Value = serde_json::from_str(now.trim()).expect("json");
    let next = (now["header"]["revision"].as_i64().expect("revision") + 1).to_string();
    s.etcdctl_ok(&[root, "put", "/app/b", "2"]);
    let mut w = s.spawn_etcdctl(&[user, "watch", "/app/", "--prefix", "--rev", &next]);
    w.expect_lines(&["PUT", "/app/b", "2"]);

    // Admin-only maintenance.
    let snapshot = s.scratch_dir().join("snap.db");
    let snapshot = snapshot.to_string_lossy();
    assert!(s
        .etcdctl_err(&[user, "snapshot", "save", &snapshot])
        .contains("permission denied"));
    s.etcdctl_ok(&[root, "snapshot", "save", &snapshot]);
}

#[test]
fn a_lease_revoke_must_be_allowed_on_every_key_of_the_lease() {
    let s = TestServer::start();
    enable_auth(&s);
    let root = "--user=root:root";
    user_with_prefix(&s, &[root], "writer", "readwrite", "/mine/");
    let lease = s.etcdctl_ok(&[root, "lease", "grant", "600"]);
    let id = lease
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    s.etcdctl_ok(&[root, "put", "/mine/a", "1", "--lease", &id]);
    s.etcdctl_ok(&[root, "put", "/theirs/b", "2", "--lease", &id]);
    let user = "--user=writer:pw";
    assert_eq!(
        s.etcdctl_err(&[user, "lease", "revoke", &id]),
        "Error: failed to revoke lease (etcdserver: permission denied)"
    );
    // Attaching a key to that lease could delete /theirs/b with it: refused too.
    assert_eq!(
        s.etcdctl_err(&[user, "put", "/mine/c", "3", "--lease", &id]),
        DENIED
    );
    s.etcdctl_ok(&[root, "lease", "revoke", &id]);
    assert_eq!(s.etcdctl_ok(&[root, "get", "/theirs/b"]), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_role_takes_effect_at_once_on_a_live_connection() {
    let s = TestServer::start();
    enable_auth(&s);
    let root = "--user=root:root";
    user_with_prefix(&s, &[root], "app", "readwrite", "/app/");
    let opts = ConnectOptions::new().with_user("app", "pw");
    let url = s.client_url();
    let mut c = within(
        "connect as app",
        etcd_client::Client::connect([url.as_str()], Some(opts)),
    )
    .await
    .unwrap_or_else(|e| panic!("connect as app: {e:?}"));
    ok(
        "put as app",
        within("put", c.put("/app/k", "v", None)).await,
    );
    let before = ok("get as app", within("get", c.get("/app/k", None)).await);
    assert_eq!(before.kvs().len(), 1);

    s.etcdctl_ok(&[root, "user", "revoke-role", "app", "app"]);
    // Same connection, same token: the very next request is refused.
    assert_grpc_err(
        "get after the revoke",
        within("get", c.get("/app/k", None)).await,
        Code::PermissionDenied,
        "etcdserver: permission denied",
    );
    assert_grpc_err(
        "put after the revoke",
        within("put", c.put("/app/k", "w", None)).await,
        Code::PermissionDenied,
        "etcdserver: permission denied",
    );
    // Granting it back works just as fast.
    s.etcdctl_ok(&[root, "user", "grant-role", "app", "app"]);
    let again = ok(
        "get after the grant",
        within("get", c.get("/app/", Some(GetOptions::new().with_prefix()))).await,
    );
    assert_eq!(again.kvs().len(), 1);

    // A forged simple token is refused.
    assert_status(
        "range with an unknown token",
        range_with_token(&s, "notAToken.1", "/app/k").await,
        Code::Unauthenticated,
        "etcdserver: invalid auth token",
    );
}

/// RSA key pairs made with the real openssl.
fn rsa_keys(dir: &std::path::Path, name: &str) -> (String, String) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    tls_support::openssl(dir, &["genrsa", "-out", &private.to_string_lossy(), "2048"]);
    tls_support::openssl(
        dir,
        &[
            "rsa",
            "-in",
            &private.to_string_lossy(),
            "-pubout",
            "-out",
            &public.to_string_lossy(),
        ],
    );
    (
        private.to_string_lossy().into_owned(),
        public.to_string_lossy().into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_tokens_signed_by_another_key_or_made_stale_are_refused() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (private, public) = rsa_keys(keys.path(), "ours");
    let (other_private, _) = rsa_keys(keys.path(), "theirs");
    let option = format!("jwt,pub-key={public},priv-key={private},sign-method=RS256,ttl=10m");
    let s = TestServer::start_with(&["--auth-token", &option]);
    enable_auth(&s);
    let root = "--user=root:root";
    user_with_prefix(&s, &[root], "app", "read", "/app/");
    s.etcdctl_ok(&[root, "put", "/app/k", "v"]);

    let token = token_of(&s, "app", "pw").await;
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    let got = range_with_token(&s, &token, "/app/k").await;
    assert_eq!(got.map(|r| r.kvs.len()).ok(), Some(1));

    // The same claims signed with another key.
    let claims = serde_json::json!({"username": "root", "revision": 100, "exp": 4_000_000_000u64});
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&other_private).expect("key"))
            .expect("pem"),
    )
    .expect("sign");
    assert_status(
        "range with a JWT signed by another key",
        range_with_token(&s, &forged, "/app/k").await,
        Code::Unauthenticated,
        "etcdserver: invalid auth token",
    );

    // A change of users or roles makes older JWTs stale (they carry the revision).
    s.etcdctl_ok(&[root, "role", "add", "unrelated"]);
    assert_status(
        "range with a stale JWT",
        range_with_token(&s, &token, "/app/k").await,
        Code::InvalidArgument,
        "etcdserver: revision of auth store is old",
    );
    // etcdctl logs in afresh each time, so it is unaffected.
    assert_eq!(
        s.etcdctl_ok(&["--user=app:pw", "get", "/app/k"]),
        "/app/k\nv\n"
    );
}

#[test]
fn the_client_certificate_cn_names_the_user() {
    use tls_support::{client_flags, ClientAuth};
    let c = ClientAuth::start();
    let eps = c.server.endpoint();
    let as_root = c.flags();
    let ctl = |flags: &[&str], args: &[&str]| tls_support::etcdctl(&eps, flags, args);
    let ok = |flags: &[&str], args: &[&str]| tls_support::etcdctl_ok(&eps, flags, args);
    // The seeds' layout: one CA, certificates named by their CN.
    let alice = c.ca.issue("alice", "alice");
    let as_alice = client_flags(&c.ca, &alice);
    ok(&as_root, &["user", "add", "root:root"]);
    ok(&as_root, &["user", "grant-role", "root", "root"]);
    ok(&as_root, &["user", "add", "alice", "--no-password"]);
    ok(&as_root, &["role", "add", "alice"]);
    ok(
        &as_root,
        &[
            "role",
            "grant-permission",
            "--prefix=true",
            "alice",
            "readwrite",
            "/alice/",
        ],
    );
    ok(&as_root, &["user", "grant-role", "alice", "alice"]);
    ok(&as_root, &["auth", "enable"]);

    // No --user: the certificate's CN is the user.
    ok(&as_alice, &["put", "/alice/k", "v"]);
    let (success, _, stderr) = ctl(&as_alice, &["put", "/bob/k", "v"]);
    assert!(!success && stderr.contains("permission denied"), "{stderr}");
    let (success, _, stderr) = ctl(&as_alice, &["user", "list"]);
    assert!(!success && stderr.contains("permission denied"), "{stderr}");
    // The root certificate is an admin.
    assert_eq!(ok(&as_root, &["user", "list"]), "alice\nroot\n");
    assert_eq!(
        ok(&as_root, &["get", "/alice/k", "--print-value-only"]),
        "v\n"
    );
    // A user without a password cannot log in with one.
    let (success, _, stderr) = ctl(&as_root, &["--user=alice:x", "get", "/alice/k"]);
    assert!(
        !success
            && stderr.contains(
                "Error: rpc error: code = Unknown desc = auth: authentication failed, \
                 password was given for no password user"
            ),
        "{stderr}"
    );
}

#[test]
fn auth_survives_a_restart() {
    let mut s = TestServer::start();
    enable_auth(&s);
    let root = "--user=root:root";
    user_with_prefix(&s, &[root], "app", "read", "/app/");
    s.restart();
    assert_eq!(
        s.etcdctl_err(&["get", "/app/k"]),
        "Error: etcdserver: user name is empty"
    );
    assert_eq!(s.etcdctl_ok(&["--user=app:pw", "get", "/app/k"]), "");
    assert_eq!(
        s.etcdctl_err(&["--user=app:pw", "put", "/app/k", "v"]),
        DENIED
    );
    assert_eq!(
        s.etcdctl_ok(&[root, "role", "get", "app"]),
        "Role app\nKV Read:\n\t[/app/, /app0) (prefix /app/)\nKV Write:\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_of_users_or_roles_moves_the_auth_revision_on() {
    let s = TestServer::start();
    enable_auth(&s);
    let root = "--user=root:root";
    let token = token_of(&s, "root", "root").await;
    if common::server() == common::Server::Etcd34 {
        // etcd 3.4 has no AuthStatus (3.5 added it; Ballast answers as 3.5).
        let mut auth = pb::auth_client::AuthClient::new(channel(&s).await);
        let res = within("AuthStatus", auth.auth_status(pb::AuthStatusRequest {})).await;
        assert_eq!(res.map_err(|e| e.code()).err(), Some(Code::Unimplemented));
        return;
    }
    let (enabled, rev) = auth_status(&s, &token).await;
    assert!(enabled);
    s.etcdctl_ok(&[root, "role", "add", "another"]);
    assert_eq!(auth_status(&s, &token).await, (true, rev + 1));
    s.etcdctl_ok(&[root, "role", "grant-permission", "another", "read", "k"]);
    assert_eq!(auth_status(&s, &token).await, (true, rev + 2));
    // Only root may ask.
    user_with_prefix(&s, &[root], "app", "read", "/app/");
    let app = token_of(&s, "app", "pw").await;
    let mut auth = pb::auth_client::AuthClient::new(channel(&s).await);
    let mut req = tonic::Request::new(pb::AuthStatusRequest {});
    req.metadata_mut()
        .insert("token", app.parse().expect("ASCII"));
    assert_status(
        "AuthStatus as a user",
        within("AuthStatus", auth.auth_status(req)).await,
        Code::PermissionDenied,
        "etcdserver: permission denied",
    );
}
