//! Locks and elections: `etcdctl lock` and `etcdctl elect` (which build them
//! on KV, Lease and Watch in the client), and etcd's `v3lockpb.Lock` and
//! `v3electionpb.Election` gRPC services (which build them the same way in
//! the server) through the `etcd-client` crate. Every test passes against
//! real etcd 3.4 too (`BALLAST_TEST_SERVER=etcd`).

// Only its start-up helpers are used here.
#[allow(dead_code)]
mod cluster_support;
mod common;
mod metrics_support;
mod support;

use std::process::ExitStatus;
use std::time::Duration;

use common::TestServer;
use etcd_client::{Client, GetOptions, LeaderKey, LockOptions, ProclaimOptions, ResignOptions};
use support::{assert_grpc_err, connect, eventually, ok, within};
use tonic::Code;

/// How long a lease of the shortest TTL used here may take to expire and
/// its keys to go, with room for a slow machine.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(20);
/// How long a waiter is watched to make sure it does not get ahead of its
/// turn (there is no event to await for something that must not happen).
const STILL_WAITING: Duration = Duration::from_millis(700);

// ---------------------------------------------------------------------------
// A long-running etcdctl that can be stopped gracefully
// ---------------------------------------------------------------------------

/// `etcdctl lock`/`elect` run until signalled: SIGTERM makes them unlock or
/// resign, SIGKILL leaves their key to its lease.
struct Ctl(common::Spawned);

impl Ctl {
    fn spawn(s: &TestServer, args: &[&str]) -> Ctl {
        Ctl(s.spawn_etcdctl(args))
    }

    /// The next stdout line, within `deadline`.
    fn line_within(&mut self, deadline: Duration) -> String {
        match self.0.next_line(deadline) {
            Some(line) => line,
            None => panic!("no output within {deadline:?}: {}", self.0.describe()),
        }
    }

    fn line(&mut self) -> String {
        self.line_within(common::LINE_DEADLINE)
    }

    fn describe(&self) -> String {
        self.0.describe()
    }

    /// Asserts nothing is printed for [`STILL_WAITING`].
    fn assert_quiet(&mut self) {
        if let Some(line) = self.0.next_line(STILL_WAITING) {
            panic!("printed {line:?} out of turn: {}", self.0.describe());
        }
    }

    /// SIGTERM: etcdctl unlocks or resigns, then exits.
    fn term(&self) {
        self.0.signal("-TERM");
    }

    fn kill9(&mut self) {
        self.0.kill_now();
    }

    fn wait_exit(&mut self) -> ExitStatus {
        self.0.wait_exit(common::LINE_DEADLINE).0
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Keys under `prefix`, oldest first.
fn keys_by_create(s: &TestServer, prefix: &str) -> Vec<String> {
    let out = s.etcdctl_ok(&[
        "get",
        "--prefix",
        "--keys-only",
        "--sort-by",
        "CREATE",
        "--order",
        "ASCEND",
        prefix,
    ]);
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Waits until `prefix` holds exactly `n` keys; returns them oldest first.
fn await_keys(s: &TestServer, prefix: &str, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    common::wait_until(&format!("{n} keys under {prefix}"), EXPIRY_DEADLINE, || {
        keys = keys_by_create(s, prefix);
        keys.len() == n
    });
    keys
}

/// A contender's key: the name, `/`, the lease ID in lowercase hex.
fn contender_key(name: &str, lease: i64) -> String {
    format!("{name}/{lease:x}")
}

/// The lease ID in a contender key.
fn lease_of(key: &str) -> i64 {
    let hex = key.rsplit('/').next().expect("contender key has a /");
    i64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("lease in {key:?}: {e}"))
}

async fn grant(c: &Client, ttl: i64) -> i64 {
    ok("lease grant", c.lease_client().grant(ttl, None).await).id()
}

/// A lease of TTL 2 kept alive as a live client keeps its session's, until
/// [`LiveLease::stop`], after which it expires within 2 s: a contender whose
/// process died, without waiting races against a running TTL.
struct LiveLease {
    id: i64,
    renewing: tokio::task::JoinHandle<()>,
}

async fn live_lease(c: &Client) -> LiveLease {
    let id = grant(c, 2).await;
    let (mut keeper, mut acks) = ok("keep alive", c.lease_client().keep_alive(id).await);
    let renewing = tokio::spawn(async move {
        while keeper.keep_alive().await.is_ok() {
            if !matches!(acks.message().await, Ok(Some(_))) {
                return;
            }
            // A third of the TTL, as etcd's clients renew.
            tokio::time::sleep(Duration::from_millis(650)).await;
        }
    });
    LiveLease { id, renewing }
}

impl LiveLease {
    fn stop(&self) {
        self.renewing.abort();
    }
}

/// Asserts `key` did not exist at revision `rev`.
async fn absent_at(c: &Client, key: &str, rev: i64) {
    let resp = ok(
        &format!("get {key} at {rev}"),
        c.kv_client()
            .get(key, Some(GetOptions::new().with_revision(rev)))
            .await,
    );
    assert!(
        resp.kvs().is_empty(),
        "{key} still existed at revision {rev}"
    );
}

async fn keys_async(c: &Client, prefix: &str) -> Vec<String> {
    let opts = GetOptions::new().with_prefix().with_sort(
        etcd_client::SortTarget::Create,
        etcd_client::SortOrder::Ascend,
    );
    let resp = ok("get prefix", c.kv_client().get(prefix, Some(opts)).await);
    resp.kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

async fn await_keys_async(c: &Client, prefix: &str, n: usize) -> Vec<String> {
    eventually(
        &format!("{n} keys under {prefix}"),
        EXPIRY_DEADLINE,
        || async {
            let keys = keys_async(c, prefix).await;
            (keys.len() == n).then_some(keys)
        },
    )
    .await
}

/// Asserts a pending call is still pending after [`STILL_WAITING`].
async fn assert_pending<T: std::fmt::Debug>(what: &str, task: &mut tokio::task::JoinHandle<T>) {
    if let Ok(done) = tokio::time::timeout(STILL_WAITING, task).await {
        panic!("{what} finished out of turn: {done:?}");
    }
}

/// Awaits a spawned call, which must finish within `deadline`.
async fn finish<T>(what: &str, deadline: Duration, task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(deadline, task)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {deadline:?}"))
        .unwrap_or_else(|e| panic!("{what} panicked: {e}"))
}

fn header_rev(h: Option<&etcd_client::ResponseHeader>) -> i64 {
    h.expect("response header").revision()
}

fn client_port(s: &TestServer) -> u16 {
    s.client_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("client port")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---------------------------------------------------------------------------
// etcdctl lock
// ---------------------------------------------------------------------------

/// The second `etcdctl lock` queues its key behind the first and gets the
/// lock only when the first unlocks on SIGTERM.
#[test]
fn etcdctl_lock_second_waits_for_first() {
    let s = TestServer::start();
    let mut first = Ctl::spawn(&s, &["lock", "mutex"]);
    let key1 = first.line();
    assert!(key1.starts_with("mutex/"), "lock key {key1:?}");
    assert_eq!(first.line(), "", "the lock key's value is empty");

    let mut second = Ctl::spawn(&s, &["lock", "mutex"]);
    let queued = await_keys(&s, "mutex/", 2);
    assert_eq!(queued[0], key1, "the holder's key is the oldest");
    let key2 = queued[1].clone();
    second.assert_quiet();

    first.term();
    assert!(first.wait_exit().success(), "{}", first.describe());
    assert_eq!(second.line(), key2);
    assert_eq!(second.line(), "");
    assert_eq!(keys_by_create(&s, "mutex/"), vec![key2]);
    second.term();
    assert!(second.wait_exit().success(), "{}", second.describe());
    assert!(keys_by_create(&s, "mutex/").is_empty(), "unlocked on exit");
}

/// `etcdctl lock name -- cmd` runs cmd only once it holds the lock, with the
/// key in ETCD_LOCK_KEY, and unlocks when cmd ends.
#[test]
fn etcdctl_lock_runs_a_command_under_the_lock() {
    let s = TestServer::start();
    let mut holder = Ctl::spawn(&s, &["lock", "job"]);
    let key1 = holder.line();

    let mut runner = Ctl::spawn(
        &s,
        &[
            "lock",
            "job",
            "--",
            "sh",
            "-c",
            "echo \"ran with $ETCD_LOCK_KEY at $ETCD_LOCK_REV\"",
        ],
    );
    let key2 = await_keys(&s, "job/", 2)[1].clone();
    runner.assert_quiet();

    let released_at = s.revision() + 1;
    holder.term();
    let line = runner.line();
    let rev: i64 = line
        .strip_prefix(&format!("ran with {key2} at "))
        .unwrap_or_else(|| panic!("command printed {line:?}, expected the key {key2}"))
        .parse()
        .expect("ETCD_LOCK_REV is a number");
    assert!(
        rev >= released_at,
        "lock revision {rev} before the holder released it at {released_at}"
    );
    assert!(runner.wait_exit().success(), "{}", runner.describe());
    assert!(holder.wait_exit().success());
    assert_ne!(key1, key2);
    assert!(keys_by_create(&s, "job/").is_empty(), "unlocked after cmd");
}

/// A holder killed with SIGKILL cannot unlock; the waiter gets the lock
/// once the holder's lease (`--ttl 2`) expires.
#[test]
fn etcdctl_lock_passes_on_when_a_killed_holders_lease_expires() {
    let s = TestServer::start();
    let mut holder = Ctl::spawn(&s, &["lock", "--ttl", "2", "crash"]);
    let key1 = holder.line();
    let mut waiter = Ctl::spawn(&s, &["lock", "crash"]);
    let key2 = await_keys(&s, "crash/", 2)[1].clone();
    waiter.assert_quiet();

    holder.kill9();
    assert_eq!(waiter.line_within(EXPIRY_DEADLINE), key2);
    assert_eq!(keys_by_create(&s, "crash/"), vec![key2]);
    let ttl = s.etcdctl_ok(&["lease", "timetolive", &format!("{:x}", lease_of(&key1))]);
    assert!(ttl.contains("already expired"), "holder's lease: {ttl}");
}

// ---------------------------------------------------------------------------
// etcdctl elect
// ---------------------------------------------------------------------------

/// Two candidates and an observer: the first leads; when it resigns (on
/// SIGTERM) the second leads; when the second's lease is revoked (its
/// process killed), there is no leader until a third campaigns. The observer
/// (`elect -l`) prints each leader and value as it changes.
#[test]
fn etcdctl_elect_candidates_and_observer() {
    let s = TestServer::start();
    let mut one = Ctl::spawn(&s, &["elect", "pick", "one"]);
    let key1 = one.line();
    assert!(key1.starts_with("pick/"), "leader key {key1:?}");
    assert_eq!(one.line(), "one");

    let mut observer = Ctl::spawn(&s, &["elect", "-l", "pick"]);
    assert_eq!(observer.line(), key1);
    assert_eq!(observer.line(), "one");

    let mut two = Ctl::spawn(&s, &["elect", "pick", "two"]);
    let key2 = await_keys(&s, "pick/", 2)[1].clone();
    two.assert_quiet();
    observer.assert_quiet();

    one.term();
    assert!(one.wait_exit().success(), "{}", one.describe());
    assert_eq!(two.line(), key2);
    assert_eq!(two.line(), "two");
    assert_eq!(observer.line(), key2);
    assert_eq!(observer.line(), "two");

    // The leader's session ends without a resignation.
    two.kill9();
    s.etcdctl_ok(&["lease", "revoke", &format!("{:x}", lease_of(&key2))]);
    await_keys(&s, "pick/", 0);
    observer.assert_quiet();

    let mut three = Ctl::spawn(&s, &["elect", "pick", "three"]);
    let key3 = three.line();
    assert_eq!(three.line(), "three");
    assert_eq!(observer.line(), key3);
    assert_eq!(observer.line(), "three");
    three.term();
    assert!(three.wait_exit().success());
    observer.term();
    assert!(observer.wait_exit().success(), "{}", observer.describe());
}

// ---------------------------------------------------------------------------
// Lock service
// ---------------------------------------------------------------------------

/// Lock returns `<name>/<lease hex>` at once when free, with the header of
/// the write that took it; a second lease waits until Unlock, and locking
/// again with the holder's lease is no new acquisition.
#[tokio::test]
async fn grpc_lock_waits_for_unlock() {
    let s = TestServer::start();
    let c = connect(&s).await;
    let (a, b) = (grant(&c, 60).await, grant(&c, 60).await);

    let first = ok(
        "lock a",
        within(
            "lock a",
            c.lock_client()
                .lock("door", Some(LockOptions::new().with_lease(a))),
        )
        .await,
    );
    let key_a = contender_key("door", a);
    assert_eq!(text(first.key()), key_a);
    let kv = c
        .kv_client()
        .get(key_a.as_str(), None)
        .await
        .expect("get key");
    let kv = kv.kvs().first().expect("lock key exists");
    assert_eq!(kv.lease(), a);
    assert_eq!(kv.value(), b"");
    assert_eq!(header_rev(first.header()), kv.create_revision());

    let again = ok(
        "lock a again",
        within(
            "lock a again",
            c.lock_client()
                .lock("door", Some(LockOptions::new().with_lease(a))),
        )
        .await,
    );
    assert_eq!(text(again.key()), key_a);
    assert_eq!(
        header_rev(again.header()),
        kv.create_revision(),
        "no new write"
    );

    let mut lc = c.lock_client();
    let mut waiter = tokio::spawn(async move {
        lc.lock("door", Some(LockOptions::new().with_lease(b)))
            .await
    });
    let queued = await_keys_async(&c, "door/", 2).await;
    assert_eq!(queued, vec![key_a.clone(), contender_key("door", b)]);
    assert_pending("lock b", &mut waiter).await;

    let unlocked = ok("unlock a", c.lock_client().unlock(key_a.as_str()).await);
    let unlock_rev = header_rev(unlocked.header());
    let second = ok(
        "lock b",
        finish("lock b", support::RPC_DEADLINE, waiter).await,
    );
    assert_eq!(text(second.key()), contender_key("door", b));
    assert!(header_rev(second.header()) >= unlock_rev);
    assert_eq!(
        keys_async(&c, "door/").await,
        vec![contender_key("door", b)]
    );
}

/// A holder whose lease expires loses the lock to the next waiter; and a
/// waiter that gives up (its call canceled) leaves the queue.
#[tokio::test]
async fn grpc_lock_expiry_and_canceled_waiters() {
    let s = TestServer::start();
    let c = connect(&s).await;
    let short = live_lease(&c).await;
    let (quitter, patient) = (grant(&c, 60).await, grant(&c, 60).await);
    let held = ok(
        "lock short",
        c.lock_client()
            .lock("gate", Some(LockOptions::new().with_lease(short.id)))
            .await,
    );
    let held_key = contender_key("gate", short.id);
    assert_eq!(text(held.key()), held_key);

    // A waiter whose client stops waiting (the call is dropped once it is
    // queued): its key goes with the call.
    let mut lc = c.lock_client();
    let quitting = tokio::spawn(async move {
        lc.lock("gate", Some(LockOptions::new().with_lease(quitter)))
            .await
    });
    await_keys_async(&c, "gate/", 2).await;
    quitting.abort();
    let left = await_keys_async(&c, "gate/", 1).await;
    assert_eq!(left, vec![held_key.clone()]);

    let mut lc = c.lock_client();
    let mut waiter = tokio::spawn(async move {
        lc.lock("gate", Some(LockOptions::new().with_lease(patient)))
            .await
    });
    await_keys_async(&c, "gate/", 2).await;
    assert_pending("lock patient", &mut waiter).await;
    short.stop();
    let got = ok(
        "lock patient",
        finish("lock patient", EXPIRY_DEADLINE, waiter).await,
    );
    assert_eq!(text(got.key()), contender_key("gate", patient));
    absent_at(&c, &held_key, header_rev(got.header())).await;
    assert_eq!(
        keys_async(&c, "gate/").await,
        vec![contender_key("gate", patient)]
    );
}

/// Without a lease, Lock and Campaign bind their key to a fresh 60 s lease
/// that nobody keeps alive, as etcd's server-side sessions do.
#[tokio::test]
async fn grpc_lock_and_campaign_without_a_lease_get_a_fresh_one() {
    let s = TestServer::start();
    let c = connect(&s).await;
    let locked = ok(
        "lock",
        within("lock", c.lock_client().lock("nolease", None)).await,
    );
    let key = text(locked.key());
    let lease = lease_of(&key);
    assert_eq!(key, contender_key("nolease", lease));
    let ttl = ok(
        "time to live",
        c.lease_client().time_to_live(lease, None).await,
    );
    assert_eq!(ttl.granted_ttl(), 60);

    let won = ok(
        "campaign",
        within(
            "campaign",
            c.election_client().campaign("nolease-e", "v", 0),
        )
        .await,
    );
    let leader = won.leader().expect("leader");
    assert!(leader.lease() != 0 && leader.lease() != lease);
    assert_eq!(
        text(leader.key()),
        contender_key("nolease-e", leader.lease())
    );
    let ttl = ok(
        "time to live",
        c.lease_client().time_to_live(leader.lease(), None).await,
    );
    assert_eq!(ttl.granted_ttl(), 60);
}

/// A waiter whose own lease expires while it waits does not get the lock
/// when its turn comes: etcd 3.6 answers "mutex: session is expired" (as
/// Ballast does); etcd 3.4 did not check and answered with the vanished key.
#[tokio::test]
async fn grpc_lock_waiter_whose_lease_expired_is_refused() {
    let s = TestServer::start();
    let c = connect(&s).await;
    let (holder, short) = (grant(&c, 60).await, live_lease(&c).await);
    let held = ok(
        "lock holder",
        c.lock_client()
            .lock("late", Some(LockOptions::new().with_lease(holder)))
            .await,
    );
    let short_id = short.id;
    let mut lc = c.lock_client();
    let waiter = tokio::spawn(async move {
        lc.lock("late", Some(LockOptions::new().with_lease(short_id)))
            .await
    });
    await_keys_async(&c, "late/", 2).await;
    short.stop();
    // The waiter's key goes with its lease; the holder's stays.
    await_keys_async(&c, "late/", 1).await;
    ok("unlock holder", c.lock_client().unlock(held.key()).await);
    let res = finish("lock short", support::RPC_DEADLINE, waiter).await;
    let version = ok("status", c.maintenance_client().status().await)
        .version()
        .to_string();
    if support::against_etcd() && version.starts_with("3.4.") {
        let got = ok("lock short on etcd 3.4", res);
        assert_eq!(text(got.key()), contender_key("late", short_id));
    } else {
        assert_grpc_err(
            "lock short",
            res,
            Code::Unknown,
            "mutex: session is expired",
        );
    }
    assert!(keys_async(&c, "late/").await.is_empty());
}

/// Errors come from the requests the lock is made of, with etcd's texts,
/// as gRPC code Unknown (etcd's server turns them into plain errors).
#[tokio::test]
async fn grpc_lock_errors() {
    let s = TestServer::start();
    let c = connect(&s).await;
    assert_grpc_err(
        "lock with a missing lease",
        c.lock_client()
            .lock("door", Some(LockOptions::new().with_lease(0x1234)))
            .await,
        Code::Unknown,
        "etcdserver: requested lease not found",
    );
    assert!(keys_async(&c, "door/").await.is_empty());
    assert_grpc_err(
        "unlock without a key",
        c.lock_client().unlock("").await,
        Code::Unknown,
        "etcdserver: key is not provided",
    );
    // Unlocking a key that is not there succeeds.
    let resp = ok("unlock unknown", c.lock_client().unlock("door/abc").await);
    assert!(header_rev(resp.header()) >= 1);
}

// ---------------------------------------------------------------------------
// Election service
// ---------------------------------------------------------------------------

/// Campaign, Leader, Observe, Proclaim and Resign with two candidates.
#[tokio::test]
async fn grpc_election_campaign_proclaim_resign_observe() {
    let s = TestServer::start();
    let c = connect(&s).await;
    let (a, b) = (grant(&c, 60).await, grant(&c, 60).await);

    let won = ok(
        "campaign a",
        within(
            "campaign a",
            c.election_client().campaign("chair", "alice", a),
        )
        .await,
    );
    let leader_a = won.leader().expect("leader key").clone();
    assert_eq!(leader_a.name(), b"chair");
    assert_eq!(text(leader_a.key()), contender_key("chair", a));
    assert_eq!(leader_a.lease(), a);
    assert_eq!(leader_a.rev(), header_rev(won.header()));

    let now = ok("leader", c.election_client().leader("chair").await);
    let kv = now.kv().expect("leader kv");
    assert_eq!((kv.key(), kv.value()), (leader_a.key(), &b"alice"[..]));
    assert_eq!(kv.create_revision(), leader_a.rev());
    assert_eq!(kv.lease(), a);

    let mut observe = ok("observe", c.election_client().observe("chair").await);
    let seen = within("observe", observe.message())
        .await
        .expect("observe stream")
        .expect("first leader");
    assert_eq!(seen.kv().expect("kv").value(), b"alice");
    assert_eq!(header_rev(seen.header()), header_rev(now.header()));

    let mut ec = c.election_client();
    let mut second = tokio::spawn(async move { ec.campaign("chair", "bob", b).await });
    await_keys_async(&c, "chair/", 2).await;
    assert_pending("campaign b", &mut second).await;

    let proclaimed = ok(
        "proclaim",
        c.election_client()
            .proclaim(
                "alice again",
                Some(ProclaimOptions::new().with_leader(leader_a.clone())),
            )
            .await,
    );
    let seen = within("observe", observe.message())
        .await
        .expect("stream")
        .expect("msg");
    let kv = seen.kv().expect("kv");
    assert_eq!(
        (kv.key(), kv.value()),
        (leader_a.key(), &b"alice again"[..])
    );
    assert_eq!(header_rev(seen.header()), header_rev(proclaimed.header()));
    assert_eq!(kv.mod_revision(), header_rev(proclaimed.header()));

    let resigned = ok(
        "resign a",
        c.election_client()
            .resign(Some(ResignOptions::new().with_leader(leader_a.clone())))
            .await,
    );
    let won_b = ok(
        "campaign b",
        finish("campaign b", support::RPC_DEADLINE, second).await,
    );
    let leader_b = won_b.leader().expect("leader key").clone();
    assert_eq!(text(leader_b.key()), contender_key("chair", b));
    assert!(
        leader_b.rev() < header_rev(resigned.header()),
        "b entered before a resigned"
    );
    assert_eq!(
        header_rev(won_b.header()),
        leader_b.rev(),
        "the header of b's entry"
    );
    let seen = within("observe", observe.message())
        .await
        .expect("stream")
        .expect("msg");
    let kv = seen.kv().expect("kv");
    assert_eq!((kv.key(), kv.value()), (leader_b.key(), &b"bob"[..]));

    // Leadership that is gone cannot proclaim.
    assert_grpc_err(
        "proclaim after resigning",
        c.election_client()
            .proclaim(
                "alice?",
                Some(ProclaimOptions::new().with_leader(leader_a.clone())),
            )
            .await,
        Code::Unknown,
        "election: not leader",
    );
    // Resigning what is not the leader any more changes nothing and succeeds.
    let before = keys_async(&c, "chair/").await;
    ok(
        "resign a again",
        c.election_client()
            .resign(Some(ResignOptions::new().with_leader(leader_a)))
            .await,
    );
    assert_eq!(keys_async(&c, "chair/").await, before);
    let now = ok("leader", c.election_client().leader("chair").await);
    assert_eq!(now.kv().expect("kv").value(), b"bob");

    ok(
        "resign b",
        c.election_client()
            .resign(Some(ResignOptions::new().with_leader(leader_b)))
            .await,
    );
    assert_grpc_err(
        "leader of an empty election",
        c.election_client().leader("chair").await,
        Code::Unknown,
        "election: no leader",
    );
}

/// A leader whose lease expires loses the election to the next candidate,
/// which an observer sees; the old leader key can no longer proclaim.
#[tokio::test]
async fn grpc_election_leader_lease_expiry() {
    let s = TestServer::start();
    let c = connect(&s).await;
    let (short, long) = (live_lease(&c).await, grant(&c, 60).await);
    let won = ok(
        "campaign short",
        c.election_client()
            .campaign("seat", "first", short.id)
            .await,
    );
    let first = won.leader().expect("leader").clone();
    let mut observe = ok("observe", c.election_client().observe("seat").await);
    let seen = within("observe", observe.message())
        .await
        .expect("stream")
        .expect("msg");
    assert_eq!(seen.kv().expect("kv").value(), b"first");

    let mut ec = c.election_client();
    let mut next = tokio::spawn(async move { ec.campaign("seat", "next", long).await });
    await_keys_async(&c, "seat/", 2).await;
    assert_pending("campaign long", &mut next).await;
    short.stop();

    let won = ok(
        "campaign long",
        finish("campaign long", EXPIRY_DEADLINE, next).await,
    );
    assert_eq!(
        text(won.leader().expect("leader").key()),
        contender_key("seat", long)
    );
    let seen = within("observe", observe.message())
        .await
        .expect("stream")
        .expect("msg");
    let kv = seen.kv().expect("kv");
    assert_eq!(
        (kv.key(), kv.value()),
        (contender_key("seat", long).as_bytes(), &b"next"[..])
    );
    assert_grpc_err(
        "proclaim by the expired leader",
        c.election_client()
            .proclaim("still?", Some(ProclaimOptions::new().with_leader(first)))
            .await,
        Code::Unknown,
        "election: not leader",
    );
}

/// A candidate whose client stops waiting (the call is dropped once it is
/// in the race) withdraws.
#[tokio::test]
async fn grpc_campaign_given_up_withdraws() {
    let s = TestServer::start();
    let c = connect(&s).await;
    let (lead, quitter) = (grant(&c, 60).await, grant(&c, 60).await);
    ok(
        "campaign lead",
        c.election_client().campaign("bench", "lead", lead).await,
    );
    let mut ec = c.election_client();
    let quitting = tokio::spawn(async move { ec.campaign("bench", "quit", quitter).await });
    await_keys_async(&c, "bench/", 2).await;
    quitting.abort();
    let left = await_keys_async(&c, "bench/", 1).await;
    assert_eq!(left, vec![contender_key("bench", lead)]);
}

/// An observer started before any candidate waits for the first one.
#[tokio::test]
async fn grpc_observe_waits_for_the_first_candidate() {
    let s = TestServer::start();
    let c = connect(&s).await;
    // etcd sends a stream's headers with its first message, so the call
    // itself only returns once there is a leader.
    let mut ec = c.election_client();
    let observing = tokio::spawn(async move {
        let mut stream = ec.observe("vote").await?;
        stream.message().await
    });
    let port = client_port(&s);
    eventually(
        "the server to take the Observe call",
        support::RPC_DEADLINE,
        || async {
            let m = metrics_support::scrape(port);
            let started = m.value(
                "grpc_server_started_total",
                &[
                    ("grpc_service", "v3electionpb.Election"),
                    ("grpc_method", "Observe"),
                ],
            );
            (started == Some(1.0)).then_some(())
        },
    )
    .await;

    let lease = grant(&c, 60).await;
    let won = ok(
        "campaign",
        within("campaign", c.election_client().campaign("vote", "v", lease)).await,
    );
    let seen = ok(
        "observe",
        finish("observe", support::RPC_DEADLINE, observing).await,
    )
    .expect("a leader");
    let kv = seen.kv().expect("kv").clone();
    assert_eq!(
        (kv.key(), kv.value()),
        (contender_key("vote", lease).as_bytes(), &b"v"[..])
    );
    assert_eq!(header_rev(seen.header()), kv.mod_revision());
    assert_eq!(won.leader().expect("leader").rev(), kv.create_revision());
}

/// Requests without a leader key, with etcd's text.
#[tokio::test]
async fn grpc_election_errors() {
    let s = TestServer::start();
    let c = connect(&s).await;
    assert_grpc_err(
        "proclaim without leader",
        c.election_client().proclaim("v", None).await,
        Code::Unknown,
        "\"leader\" field must be provided",
    );
    assert_grpc_err(
        "resign without leader",
        c.election_client().resign(None).await,
        Code::Unknown,
        "\"leader\" field must be provided",
    );
    assert_grpc_err(
        "campaign with a missing lease",
        c.election_client().campaign("e", "v", 0x4321).await,
        Code::Unknown,
        "etcdserver: requested lease not found",
    );
    let stale = LeaderKey::new()
        .with_name("e")
        .with_key("e/1")
        .with_rev(5)
        .with_lease(1);
    assert_grpc_err(
        "proclaim with a made-up leader",
        c.election_client()
            .proclaim("v", Some(ProclaimOptions::new().with_leader(stale)))
            .await,
        Code::Unknown,
        "election: not leader",
    );
}

// ---------------------------------------------------------------------------
// Both sides, and metrics
// ---------------------------------------------------------------------------

/// etcdctl and the Lock service contend for the same lock names; the calls
/// are counted in the gRPC metrics like any other service's.
#[tokio::test]
async fn etcdctl_and_grpc_share_locks_and_calls_are_counted() {
    let s = TestServer::start();
    let c = connect(&s).await;
    let mut holder = Ctl::spawn(&s, &["lock", "shared"]);
    let key1 = holder.line();
    let lease = grant(&c, 60).await;
    let mut lc = c.lock_client();
    let mut waiter = tokio::spawn(async move {
        lc.lock("shared", Some(LockOptions::new().with_lease(lease)))
            .await
    });
    await_keys_async(&c, "shared/", 2).await;
    assert_pending("grpc lock", &mut waiter).await;
    holder.term();
    let got = ok(
        "grpc lock",
        finish("grpc lock", support::RPC_DEADLINE, waiter).await,
    );
    assert_eq!(text(got.key()), contender_key("shared", lease));
    assert_ne!(key1, contender_key("shared", lease));
    ok("unlock", c.lock_client().unlock(got.key()).await);
    assert_grpc_err(
        "no leader",
        c.election_client().leader("nobody").await,
        Code::Unknown,
        "election: no leader",
    );

    let m = metrics_support::scrape(client_port(&s));
    let count = |service: &str, method: &str, code: &str| {
        m.value(
            "grpc_server_handled_total",
            &[
                ("grpc_type", "unary"),
                ("grpc_service", service),
                ("grpc_method", method),
                ("grpc_code", code),
            ],
        )
    };
    assert_eq!(count("v3lockpb.Lock", "Lock", "OK"), Some(1.0));
    assert_eq!(count("v3lockpb.Lock", "Unlock", "OK"), Some(1.0));
    assert_eq!(
        count("v3electionpb.Election", "Leader", "Unknown"),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "grpc_server_started_total",
            &[("grpc_service", "v3lockpb.Lock"), ("grpc_method", "Lock")],
        ),
        Some(1.0)
    );
}

// ---------------------------------------------------------------------------
// Three members
// ---------------------------------------------------------------------------

async fn connect_to(url: &str) -> Client {
    within(&format!("connect to {url}"), Client::connect([url], None))
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// Contenders on different members: a lock waited for on one follower
/// passes to it when the holder's lease (on another member) expires on the
/// leader, and an observer on a third member follows an election decided
/// elsewhere. Ballast only: the cluster harness starts Ballast members.
#[tokio::test]
async fn lock_and_election_across_members() {
    if common::server_kind() != common::ServerKind::Ballast {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<cluster_support::Node> = ["m1", "m2", "m3"]
        .iter()
        .map(|n| cluster_support::Node::new(n, root.path()))
        .collect();
    let ic = cluster_support::initial_cluster(&nodes.iter().collect::<Vec<_>>());
    for n in &mut nodes {
        n.start(&ic, "new");
    }
    for n in &nodes {
        cluster_support::wait_for(&format!("{} healthy", n.name), || n.healthy());
    }
    let mut clients = Vec::new();
    for n in &nodes {
        clients.push(connect_to(&n.client_url()).await);
    }
    let (c1, c2, c3) = (&clients[0], &clients[1], &clients[2]);

    let short = live_lease(c1).await;
    let held = ok(
        "lock on m1",
        c1.lock_client()
            .lock("span", Some(LockOptions::new().with_lease(short.id)))
            .await,
    );
    let long = grant(c2, 60).await;
    let mut lc = c2.lock_client();
    let mut waiter = tokio::spawn(async move {
        lc.lock("span", Some(LockOptions::new().with_lease(long)))
            .await
    });
    assert_eq!(
        await_keys_async(c3, "span/", 2).await[0],
        text(held.key()),
        "the holder's key is the oldest on every member"
    );
    assert_pending("lock on m2", &mut waiter).await;
    short.stop();
    let got = ok(
        "lock on m2",
        finish("lock on m2", EXPIRY_DEADLINE, waiter).await,
    );
    assert_eq!(text(got.key()), contender_key("span", long));

    let mut observe = ok("observe on m3", c3.election_client().observe("vote").await);
    let won = ok(
        "campaign on m1",
        c1.election_client().campaign("vote", "m1", long).await,
    );
    let seen = within("observe", observe.message())
        .await
        .expect("stream")
        .expect("msg");
    let kv = seen.kv().expect("kv");
    assert_eq!(kv.key(), won.leader().expect("leader").key());
    assert_eq!(kv.value(), b"m1");
    ok(
        "proclaim on m2",
        c2.election_client()
            .proclaim(
                "from m2",
                Some(ProclaimOptions::new().with_leader(won.leader().expect("leader").clone())),
            )
            .await,
    );
    let seen = within("observe", observe.message())
        .await
        .expect("stream")
        .expect("msg");
    assert_eq!(seen.kv().expect("kv").value(), b"from m2");
    let now = ok("leader on m3", c3.election_client().leader("vote").await);
    assert_eq!(now.kv().expect("kv").value(), b"from m2");
}
