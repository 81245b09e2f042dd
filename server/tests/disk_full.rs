//! A member whose data volume fills up (issue 14, disk full): the data directory is a small
//! tmpfs mounted for the test, filled by a file of the test's own, and the member is driven
//! with the real etcdctl.
//!
//! Needs root (for `mount`). etcd has nothing to compare these expectations with: on the
//! same setup etcd 3.4 and 3.6 keep acknowledging puts until bbolt's commit fails with
//! `no space left on device`, then exit (see `server/src/server/disk_space.rs`), so these
//! tests are Ballast's only (with `BALLAST_TEST_SERVER=etcd` the first puts on a full
//! volume succeed and the test fails there).

#[allow(dead_code)]
mod cluster_support;
mod common;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use cluster_support::{ctl, ctl_ok, initial_cluster, wait_for, Node};

const MIB: u64 = 1024 * 1024;
/// Room for a member's preallocated WAL segment (64 MiB) and its database, and then some.
const VOLUME: u64 = 256 * MIB;
/// What the filler leaves free: less than the member keeps in reserve for its log and
/// database (a WAL segment and 16 MiB), so writes are refused, but more than the 4 MiB below
/// which it refuses everything, and enough that nothing it does (the alarm, deletes,
/// compaction, a restart) runs out.
const LEFT_FREE: u64 = 24 * MIB;

const NO_SPACE: &str = "Error: etcdserver: mvcc: database space exceeded";

/// A tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs {
    mount_point: PathBuf,
}

impl Tmpfs {
    /// On `mount_point`, created here.
    fn mount_at(mount_point: &Path, size: u64) -> Tmpfs {
        assert!(
            running_as_root(),
            "disk_full tests mount a tmpfs and must run as root (uid 0); run them with sudo \
             or in the project's root CI container"
        );
        let mount_point = mount_point.to_path_buf();
        std::fs::create_dir(&mount_point).expect("create mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount_point)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs on {}",
            mount_point.display()
        );
        Tmpfs { mount_point }
    }

    fn available(&self) -> u64 {
        let st = rustix::fs::statvfs(&self.mount_point).expect("statvfs of the tmpfs");
        st.f_bavail * st.f_frsize
    }

    /// Writes a file that leaves `left` bytes free (as tmpfs counts them, in pages).
    fn fill_leaving(&self, left: u64) -> PathBuf {
        let path = self.mount_point.join("filler");
        let mut f = File::create(&path).expect("create filler");
        let chunk = vec![0xa5u8; MIB as usize];
        let mut to_write = self.available().saturating_sub(left);
        while to_write > 0 {
            let n = to_write.min(MIB) as usize;
            f.write_all(&chunk[..n]).expect("write filler");
            to_write -= n as u64;
        }
        f.sync_all().expect("sync filler");
        path
    }

    /// Fills every byte that is left.
    fn fill_completely(&self) -> PathBuf {
        let path = self.mount_point.join("filler-all");
        let mut f = File::create(&path).expect("create filler");
        let chunk = vec![0x5au8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) => {
                    break
                }
                Err(e) => panic!("write filler: {e}"),
            }
        }
        assert_eq!(self.available(), 0, "the filler took every byte");
        path
    }
}

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process that still holds files in it (a member being killed) cannot
        // keep the mount alive past the test.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

/// A single member whose data directory is its own tmpfs; the member is stopped before
/// the volume is unmounted (field order is drop order).
///
/// Started and restarted here rather than with `common::TestServer`, which waits for
/// `/health` to pass: with the NOSPACE alarm raised it fails, on etcd as on Ballast.
struct Member {
    node: Node,
    volume: Tmpfs,
    _root: tempfile::TempDir,
}

impl Member {
    fn start() -> Member {
        let root = tempfile::tempdir().expect("member root");
        let node = Node::new("disk-full", root.path());
        let volume = Tmpfs::mount_at(&node.data_dir, VOLUME);
        let mut m = Member {
            node,
            volume,
            _root: root,
        };
        m.launch();
        m
    }

    fn launch(&mut self) {
        assert!(
            self.launch_or_exit(),
            "the member exited:\n{}",
            self.node.log()
        );
    }

    /// Starts the member and waits until it serves linearizable reads (true) or exits.
    fn launch_or_exit(&mut self) -> bool {
        let cluster = initial_cluster(&[&self.node]);
        self.node.start(&cluster, "new");
        let url = self.node.client_url();
        let mut serves = false;
        wait_for("the member to serve linearizable reads or exit", || {
            serves = ctl(&url, &["get", "probe"]).0;
            serves || !self.node.is_running()
        });
        serves
    }

    /// A graceful stop (SIGTERM) and a start.
    fn restart(&mut self) {
        self.node.signal("TERM");
        wait_for("the member to stop", || !self.node.is_running());
        self.launch();
    }

    fn kill9_and_start(&mut self) {
        self.node.kill9();
        self.launch();
    }

    fn ctl(&self, args: &[&str]) -> (bool, String, String) {
        ctl(&self.node.client_url(), args)
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        ctl_ok(&self.node.client_url(), args)
    }

    /// The `Error:` line of a command that must fail.
    fn ctl_err(&self, args: &[&str]) -> String {
        self.ctl_err_stdin(args, "")
    }

    fn ctl_err_stdin(&self, args: &[&str], input: &str) -> String {
        let mut child = Command::new(common::etcdctl_binary())
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.node.client_url()])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn etcdctl");
        child
            .stdin
            .take()
            .expect("etcdctl stdin")
            .write_all(input.as_bytes())
            .expect("write etcdctl stdin");
        let out = child.wait_with_output().expect("run etcdctl");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "etcdctl {args:?} succeeded");
        stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("Error:"))
            .unwrap_or_else(|| panic!("etcdctl {args:?} printed no Error line:\n{stderr}"))
            .to_string()
    }

    fn member_id(&self) -> u64 {
        let list = self.ctl_ok(&["member", "list"]);
        let hex = list.split(", ").next().unwrap_or_default();
        u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("member ID in {list}: {e}"))
    }

    fn alarms(&self) -> String {
        self.ctl_ok(&["alarm", "list"])
    }

    fn put(&self, key: &str, value: &str) {
        assert_eq!(self.ctl_ok(&["put", key, value]), "OK\n");
    }

    fn value(&self, key: &str) -> Option<String> {
        let out = self.ctl_ok(&["get", key, "--print-value-only"]);
        out.lines().next().map(str::to_string)
    }

    fn revision(&self) -> i64 {
        let out = self.ctl_ok(&["endpoint", "status", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("endpoint status JSON");
        v[0]["Status"]["header"]["revision"]
            .as_i64()
            .unwrap_or_else(|| panic!("no revision in {out}"))
    }

    /// Every key written and not deleted reads back with its value.
    fn assert_holds(&self, written: &[(String, String)]) {
        for (k, v) in written {
            assert_eq!(
                self.value(k).as_deref(),
                Some(v.as_str()),
                "acknowledged put of {k} lost"
            );
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- member log -----\n{}\n----- end -----",
                self.node.log()
            );
        }
    }
}

fn put_all(member: &Member, prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let (k, v) = (format!("{prefix}{i:03}"), format!("value-{prefix}-{i}"));
            member.put(&k, &v);
            (k, v)
        })
        .collect()
}

#[test]
fn a_member_refuses_writes_with_nospace_while_its_volume_is_short_and_recovers() {
    let mut m = Member::start();
    let nospace = format!("memberID:{} alarm:NOSPACE \n", m.member_id());
    let mut written = put_all(&m, "before/", 20);
    assert_eq!(m.alarms(), "");

    let filler = m.volume.fill_leaving(LEFT_FREE);
    let err = m.ctl_err(&["put", "refused/1", "x"]);
    assert_eq!(err, NO_SPACE);
    assert_eq!(m.alarms(), nospace);
    // Txns with puts and lease grants are refused as under the quota; a refused write
    // left nothing behind.
    let txn = m.ctl_err_stdin(&["txn"], "\nput refused/2 y\n\n\n");
    assert_eq!(txn, NO_SPACE);
    // etcdctl words this one its own way ("failed to grant lease (...)" in 3.4).
    let lease = m.ctl_err(&["lease", "grant", "60"]);
    assert!(lease.contains(&NO_SPACE["Error: ".len()..]), "{lease}");
    assert_eq!(m.value("refused/1"), None);
    assert_eq!(m.value("refused/2"), None);

    // Reads, deletes, compaction and defragmentation keep working.
    m.assert_holds(&written);
    assert_eq!(m.ctl_ok(&["del", "before/000"]), "1\n");
    written.remove(0);
    let rev = m.revision().to_string();
    m.ctl_ok(&["compaction", &rev]);
    m.ctl_ok(&["defrag"]);
    m.assert_holds(&written);

    // A restart, and a crash, while the volume is still short: the member starts, keeps the
    // alarm (it is in the database) and every acknowledged write.
    m.restart();
    assert_eq!(m.alarms(), nospace);
    m.assert_holds(&written);
    m.kill9_and_start();
    assert_eq!(m.alarms(), nospace);
    m.assert_holds(&written);
    assert_eq!(m.ctl_err(&["put", "refused/3", "x"]), NO_SPACE);

    // Space comes back: the alarm stays until disarmed, as etcd's does.
    std::fs::remove_file(&filler).expect("remove filler");
    assert_eq!(m.ctl_err(&["put", "refused/4", "x"]), NO_SPACE);
    m.ctl_ok(&["alarm", "disarm"]);
    assert_eq!(m.alarms(), "");
    written.extend(put_all(&m, "after/", 5));
    m.ctl_ok(&["lease", "grant", "60"]);
    m.restart();
    assert_eq!(m.alarms(), "");
    m.assert_holds(&written);
}

#[test]
fn a_member_that_runs_out_of_space_anyway_loses_nothing_and_restarts_once_space_is_back() {
    let mut m = Member::start();
    let written = put_all(&m, "k/", 20);
    // Another writer takes every byte, the member's reserve included. The member then
    // refuses every write, deletes too (a commit could not be trusted to fit). A commit of
    // its own may still fail: the durable commit that follows the last puts within half a
    // second, or the NOSPACE alarm raised in the moment the volume was nearly full. Then the
    // member stops with a line saying why; whether a write in flight is applied is unknown,
    // as for any write whose member fails under it.
    let filler = m.volume.fill_completely();
    let (put_ok, _, put_err) = m.ctl(&["put", "refused", "x"]);
    assert!(!put_ok, "a put on a full volume was acknowledged");
    let mut deleted = Vec::new();
    let mut unknown = None;
    for (k, _) in written.iter().take(3) {
        let (ok, _, err) = m.ctl(&["del", k]);
        if ok {
            deleted.push(k.clone());
        } else {
            if !err.contains(NO_SPACE) {
                unknown = Some(k.clone());
            }
            break;
        }
    }
    let stopped = !m.node.is_running();
    eprintln!("member stopped: {stopped}; deletes acknowledged: {deleted:?}, unknown: {unknown:?}");
    if stopped {
        assert!(
            m.node
                .log()
                .contains("the file system holding this member's data is full"),
            "the member stopped without saying why:\n{}",
            m.node.log()
        );
    } else {
        assert!(put_err.contains(NO_SPACE), "{put_err}");
        assert_eq!(deleted, Vec::<String>::new(), "deletes on a full volume");
        assert_eq!(unknown, None, "a delete on a full volume failed otherwise");
    }

    // Restarted with the volume still full, the member either serves (and refuses writes)
    // or stops again at its first commit, saying why.
    m.node.kill9();
    let log_before = m.node.log().len();
    let serves = m.launch_or_exit();
    eprintln!("restarted on a full volume, the member serves: {serves}");
    if serves {
        let (put_ok, _, put_err) = m.ctl(&["put", "refused", "x"]);
        assert!(
            !put_ok,
            "a put on a full volume was acknowledged after the restart"
        );
        if !put_err.contains(NO_SPACE) {
            // The commit of the alarm or of the member's publication, made durable within
            // half a second of the start, may still fail on the full volume; the member
            // then stops, and etcdctl only sees it gone.
            wait_for("the member to stop", || !m.node.is_running());
            let log = m.node.log();
            assert!(
                log[log_before..].contains("the file system holding this member's data is full"),
                "the put failed with {put_err:?} and the member did not stop saying why:\n{log}"
            );
        }
        m.node.kill9();
    } else {
        let log = m.node.log();
        assert!(
            log[log_before..].contains("the file system holding this member's data is full"),
            "the member restarted on a full volume stopped without saying why:\n{log}"
        );
    }

    std::fs::remove_file(&filler).expect("remove filler");
    m.launch();
    // The alarm, if it was committed before the failure, is cleared as usual.
    m.ctl_ok(&["alarm", "disarm"]);
    for (k, v) in &written {
        let now = m.value(k);
        if deleted.contains(k) {
            assert_eq!(now, None, "acknowledged delete of {k} undone");
        } else if unknown.as_ref() != Some(k) {
            assert_eq!(
                now.as_deref(),
                Some(v.as_str()),
                "acknowledged put of {k} lost"
            );
        }
    }
    assert_eq!(m.value("refused"), None, "a refused put was applied");
    m.put("after", "v");
    m.restart();
    assert_eq!(m.value("after").as_deref(), Some("v"));
}

/// Three members, each on its own tmpfs: a follower whose volume runs short raises NOSPACE
/// by itself (no write has to reach it first), and the whole cluster refuses writes.
#[test]
fn a_follower_short_of_space_stops_the_cluster_s_writes() {
    use cluster_support::{endpoints, leader, status};
    let _one = cluster_support::one_at_a_time();
    let root = tempfile::tempdir().expect("cluster root");
    let mut nodes: Vec<Node> = ["df-a", "df-b", "df-c"]
        .iter()
        .map(|n| Node::new(n, root.path()))
        .collect();
    // Each member's data dir is a tmpfs of its own (its log goes next to it, outside).
    let volumes: Vec<Tmpfs> = nodes
        .iter()
        .map(|n| Tmpfs::mount_at(&n.data_dir, VOLUME))
        .collect();
    let cluster = initial_cluster(&nodes.iter().collect::<Vec<_>>());
    for n in nodes.iter_mut() {
        n.start(&cluster, "new");
    }
    let all = endpoints(&nodes.iter().collect::<Vec<_>>());
    let leader_id = leader(&all, 3);
    let rows = status(&all);
    let endpoint_of = |leading: bool| {
        rows.iter()
            .find(|r| (r.1 == leader_id) == leading)
            .map(|r| r.0.clone())
            .expect("endpoint status lists every member")
    };
    let (leader_url, follower_url) = (endpoint_of(true), endpoint_of(false));
    let follower = nodes
        .iter()
        .position(|n| n.client_url() == follower_url)
        .expect("the follower is one of the nodes");
    for i in 0..10 {
        ctl_ok(&leader_url, &["put", &format!("c/{i}"), "v"]);
    }

    let filler = volumes[follower].fill_leaving(LEFT_FREE);
    wait_for("the follower to raise NOSPACE", || {
        ctl_ok(&leader_url, &["alarm", "list"]).contains("alarm:NOSPACE")
    });
    let (ok, _, err) = ctl(&leader_url, &["put", "c/refused", "x"]);
    assert!(
        !ok && err.contains(NO_SPACE),
        "put through the leader: {err}"
    );
    assert_eq!(
        ctl_ok(&leader_url, &["get", "c/3", "--print-value-only"]),
        "v\n"
    );

    std::fs::remove_file(filler).expect("remove filler");
    ctl_ok(&leader_url, &["alarm", "disarm"]);
    ctl_ok(&leader_url, &["put", "c/after", "v"]);
    for n in &nodes {
        wait_for("every member to apply the last put", || {
            let args = ["get", "c/after", "--consistency=s", "--print-value-only"];
            ctl(&n.client_url(), &args).1 == "v\n"
        });
    }
    // The members stop before their volumes are unmounted.
    for n in nodes.iter_mut() {
        n.kill9();
    }
}
