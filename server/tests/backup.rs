//! `ballast backup save|list|fetch` against real members and a real S3 API: moto's server
//! (`python3 -m moto.server`, installed by scripts/test.sh) on a loopback port, or a local
//! directory. Every backup is checked the way it will be used: fetched, restored with
//! `ballast snapshot restore`, started, and read with etcdctl.

#[allow(dead_code)]
mod cluster_support;
mod common;
mod support;
mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, TestServer};
use serde_json::Value;
use support::{ballast_bin, run_ballast, Finished};

/// How long one `ballast backup` run may take.
const RUN_DEADLINE: Duration = Duration::from_secs(60);
/// How long moto may take to serve after being spawned.
const MOTO_DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// moto, a local S3
// ---------------------------------------------------------------------------

/// A moto server of this test's own, stopped when dropped.
struct Moto {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Moto {
    fn start() -> Moto {
        let check = Command::new("python3")
            .args(["-c", "import moto.server"])
            .output()
            .expect("run python3 (moto's server is a Python program)");
        assert!(
            check.status.success(),
            "moto's server is not installed: run scripts/test.sh, or \
             `python3 -m pip install 'moto[server]'` ({})",
            String::from_utf8_lossy(&check.stderr).trim()
        );
        let dir = tempfile::Builder::new()
            .prefix("ballast-moto-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("create moto log");
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn moto's server");
        let mut moto = Moto { port, child, dir };
        let deadline = Instant::now() + MOTO_DEADLINE;
        while http(port, "GET", "/", &[]).is_none() {
            assert!(
                matches!(moto.child.try_wait(), Ok(None)),
                "moto's server exited:\n{}",
                moto.log()
            );
            assert!(
                Instant::now() < deadline,
                "moto's server did not answer within {MOTO_DEADLINE:?}:\n{}",
                moto.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    fn create_bucket(&self, bucket: &str) {
        let (status, body) = self.request("PUT", &format!("/{bucket}"), &[]);
        assert_eq!(
            status,
            200,
            "create bucket {bucket}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        http(self.port, method, path, body)
            .unwrap_or_else(|| panic!("{method} {path}: moto did not answer:\n{}", self.log()))
    }

    /// Object keys under `prefix` in `bucket`.
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) = self.request(
            "GET",
            &format!("/{bucket}?list-type=2&prefix={prefix}"),
            &[],
        );
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "list {bucket}: {body}");
        let re = regex::Regex::new("<Key>([^<]*)</Key>").expect("regex");
        let mut keys: Vec<String> = re.captures_iter(&body).map(|c| c[1].to_string()).collect();
        keys.sort();
        keys
    }

    fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let (status, body) = self.request("GET", &format!("/{bucket}/{key}"), &[]);
        assert_eq!(status, 200, "get {key}: {}", String::from_utf8_lossy(&body));
        body
    }

    fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let (status, answer) = self.request("PUT", &format!("/{bucket}/{key}"), body);
        assert_eq!(
            status,
            200,
            "put {key}: {}",
            String::from_utf8_lossy(&answer)
        );
    }

    /// The environment `ballast backup` needs to reach this server.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            (
                "AWS_ENDPOINT".into(),
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; `None` if nothing answered. moto does not
/// check signatures, so plain requests can set up and damage what the tests need.
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).ok()?;
    conn.write_all(body).ok()?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).ok()?;
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, answer[end + 4..].to_vec()))
}

// ---------------------------------------------------------------------------
// Running `ballast backup`
// ---------------------------------------------------------------------------

/// What a `ballast backup` run printed, with its termination message.
struct Run {
    finished: Finished,
    termination: String,
}

impl Run {
    #[track_caller]
    fn ok(&self) -> &Finished {
        assert!(
            self.finished.status.success(),
            "ballast backup failed: {:?}",
            self.finished
        );
        &self.finished
    }

    /// The failure message (stderr's last line), after checking the exit code is 1.
    #[track_caller]
    fn failure(&self) -> String {
        assert_eq!(
            self.finished.status.code(),
            Some(1),
            "ballast backup should fail with 1: {:?}",
            self.finished
        );
        let line = self
            .finished
            .stderr
            .trim()
            .lines()
            .last()
            .unwrap_or_default();
        assert_eq!(
            self.termination.trim(),
            line,
            "the termination message is the failure line"
        );
        line.to_string()
    }
}

/// Runs `ballast backup ARGS` with `env` (and no other AWS settings) and a termination log
/// file, as in a Kubernetes container.
fn backup(args: &[&str], env: &[(String, String)]) -> Run {
    let scratch = tempfile::tempdir().expect("tempdir");
    let termination = scratch.path().join("termination-log");
    std::fs::write(&termination, "").expect("create termination log");
    let mut cmd = Command::new(ballast_bin());
    cmd.arg("backup")
        .args(args)
        .arg("--termination-log")
        .arg(&termination);
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let finished = run_command(cmd, RUN_DEADLINE);
    Run {
        finished,
        termination: std::fs::read_to_string(&termination).unwrap_or_default(),
    }
}

/// Runs `cmd` to its end, killing it (and failing the test) after `timeout`.
fn run_command(mut cmd: Command, timeout: Duration) -> Finished {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ballast backup");
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll ballast backup") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ballast backup did not finish within {timeout:?}; stderr:\n{}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Finished {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// `save`, checked to succeed; returns the metadata it printed (and checks that the
/// termination message is the same line).
fn save(server: &str, to: &str, extra: &[&str], env: &[(String, String)]) -> Value {
    let mut args = vec!["save", "--endpoints", server, "--to", to];
    args.extend_from_slice(extra);
    let run = backup(&args, env);
    let out = run.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "save prints one JSON line: {out:?}");
    assert_eq!(run.termination, lines[0], "termination message");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", lines[0]))
}

fn sha256_hex(bytes: &[u8]) -> String {
    // The same digest as the server's, but computed here with openssl to be independent.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("object");
    std::fs::write(&file, bytes).expect("write object");
    let out = tls_support::openssl(dir.path(), &["dgst", "-sha256", "-r", "object"]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Fills the store with keys and returns `get "" --prefix` as etcdctl prints it.
fn seed(server: &TestServer) -> String {
    for i in 0..20 {
        server.put(&format!("/registry/k{i:02}"), &format!("value-{i}"));
    }
    server.etcdctl_ok(&["get", "", "--prefix"])
}

/// Restores `snapshot` into a new member, starts it and checks it serves `keys` at
/// `revision`.
fn assert_restores(snapshot: &Path, keys: &str, revision: i64) {
    let mut dst = TestServer::start();
    dst.stop();
    std::fs::remove_dir_all(dst.data_dir()).expect("clear the new member's data dir");
    let data_dir = dst.data_dir();
    let out = run_ballast(
        &[
            "snapshot",
            "restore",
            snapshot.to_str().expect("utf-8 path"),
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
        ],
        RUN_DEADLINE,
    );
    assert!(out.status.success(), "snapshot restore: {out:?}");
    dst.restart();
    assert_eq!(
        dst.etcdctl_ok(&["get", "", "--prefix"]),
        keys,
        "restored keys"
    );
    assert_eq!(dst.revision(), revision, "restored revision");
}

fn check_metadata(meta: &Value, server: &TestServer, revision: i64, compression: &str) {
    let name = meta["name"].as_str().expect("name");
    let re = regex::Regex::new(&format!(
        r"^\d{{8}}T\d{{6}}Z-r{revision}\.db{}$",
        if compression == "gzip" { r"\.gz" } else { "" }
    ))
    .expect("regex");
    assert!(re.is_match(name), "object name {name}");
    assert_eq!(meta["revision"], revision, "{meta}");
    assert_eq!(meta["compression"], compression, "{meta}");
    assert_eq!(meta["endpoint"], server.client_url(), "{meta}");
    assert_eq!(meta["memberName"], server.name(), "{meta}");
    assert_eq!(meta["memberId"], server.member_id_hex(), "{meta}");
    assert_eq!(meta["etcdVersion"], "3.5.17", "{meta}");
    assert_eq!(meta["ballastVersion"], env!("CARGO_PKG_VERSION"), "{meta}");
    let status = server.etcdctl_json(&["endpoint", "status"]);
    let cluster_id = status[0]["Status"]["header"]["cluster_id"]
        .as_u64()
        .expect("cluster_id");
    assert_eq!(meta["clusterId"], format!("{cluster_id:x}"), "{meta}");
    assert!(meta["dbSize"].as_i64().is_some_and(|s| s > 0), "{meta}");
    assert!(
        humantime::parse_rfc3339(meta["createdAt"].as_str().expect("createdAt")).is_ok(),
        "{meta}"
    );
}

fn fetch(from: &str, name: &str, output: &Path, env: &[(String, String)]) -> Run {
    backup(
        &[
            "fetch",
            "--from",
            from,
            "--name",
            name,
            "--output",
            output.to_str().expect("utf-8 path"),
        ],
        env,
    )
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

fn save_to_s3_fetch_and_restore(compression: &str) {
    let moto = Moto::start();
    moto.create_bucket("backups");
    let server = TestServer::start();
    let keys = seed(&server);
    let revision = server.revision();
    let env = moto.env();
    let meta = save(
        &server.client_url(),
        "s3://backups/prod/etcd",
        &["--compress", compression],
        &env,
    );
    check_metadata(&meta, &server, revision, compression);
    let name = meta["name"].as_str().expect("name");
    let snapshot_key = format!("prod/etcd/{name}");
    assert_eq!(
        moto.keys("backups", "prod/"),
        [snapshot_key.clone(), format!("{snapshot_key}.json")]
    );
    let stored = moto.get("backups", &snapshot_key);
    assert_eq!(meta["size"], stored.len(), "{meta}");
    assert_eq!(meta["sha256"], sha256_hex(&stored), "{meta}");
    // `list` reads the metadata objects back (moto refuses unsigned reads of objects
    // written with a plain PUT, so the test cannot read them directly).
    let listed = backup(
        &["list", "--from", "s3://backups/prod/etcd", "-o", "json"],
        &env,
    );
    let listed: Value = serde_json::from_str(&listed.ok().stdout).expect("list -o json");
    assert_eq!(listed, Value::Array(vec![meta.clone()]));

    let out_dir = tempfile::tempdir().expect("tempdir");
    let file = out_dir.path().join("fetched.db");
    // With the prefix, as an operator may copy it from a bucket listing.
    fetch("s3://backups/prod/etcd", &snapshot_key, &file, &env).ok();
    assert_restores(&file, &keys, revision);
}

#[test]
fn save_to_s3_then_fetch_restores_the_same_keys_and_revision() {
    save_to_s3_fetch_and_restore("none");
}

#[test]
fn save_to_s3_gzip_then_fetch_restores_the_same_keys_and_revision() {
    save_to_s3_fetch_and_restore("gzip");
}

#[test]
fn a_snapshot_larger_than_an_upload_part_is_streamed_in_parts() {
    let moto = Moto::start();
    moto.create_bucket("large");
    let server = TestServer::start();
    // 12 values of 1 MiB: a database larger than the 8 MiB parts of the upload.
    for i in 0..12u64 {
        let value: String = support::filler(i, 512 * 1024)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let out = server.etcdctl_stdin(&["put", &format!("/large/{i:02}")], &value);
        assert_eq!(out.ok(), "OK\n");
    }
    let keys = server.etcdctl_ok(&["get", "", "--prefix"]);
    let revision = server.revision();
    let env = moto.env();
    let meta = save(&server.client_url(), "s3://large/etcd", &[], &env);
    let size = meta["size"].as_u64().expect("size");
    assert!(
        size > 8 * 1024 * 1024,
        "the snapshot fits in one part: {meta}"
    );
    let name = meta["name"].as_str().expect("name");
    let stored = moto.get("large", &format!("etcd/{name}"));
    assert_eq!(meta["sha256"], sha256_hex(&stored), "{meta}");
    let out_dir = tempfile::tempdir().expect("tempdir");
    let file = out_dir.path().join("fetched.db");
    fetch("s3://large/etcd", name, &file, &env).ok();
    assert_restores(&file, &keys, revision);
}

#[test]
fn save_to_a_directory_then_fetch_restores() {
    let server = TestServer::start();
    let keys = seed(&server);
    let revision = server.revision();
    let root = tempfile::tempdir().expect("tempdir");
    // A directory that does not exist yet, given as a file:// URL.
    let dir = root.path().join("backups").join("etcd");
    let url = format!("file://{}", dir.display());
    let meta = save(&server.client_url(), &url, &["--compress", "gzip"], &[]);
    check_metadata(&meta, &server, revision, "gzip");
    let name = meta["name"].as_str().expect("name");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("backup dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, [name.to_string(), format!("{name}.json")]);
    let stored = std::fs::read(dir.join(name)).expect("read backup");
    assert_eq!(meta["sha256"], sha256_hex(&stored), "{meta}");

    let listed = backup(&["list", "--from", dir.to_str().expect("utf-8")], &[]);
    let line = listed.ok().stdout.trim().to_string();
    assert_eq!(
        line,
        format!(
            "{name}\t{revision}\t{}\t{}",
            stored.len(),
            meta["createdAt"].as_str().expect("createdAt")
        )
    );

    let file = root.path().join("fetched.db");
    fetch(&url, name, &file, &[]).ok();
    assert_restores(&file, &keys, revision);
}

#[test]
fn keep_last_leaves_the_newest_backups() {
    let moto = Moto::start();
    moto.create_bucket("retention");
    let server = TestServer::start();
    let env = moto.env();
    // An object that is not a backup must survive retention.
    moto.put("retention", "daily/README", b"not a backup");
    let mut names = Vec::new();
    for i in 0..4 {
        // A write between saves gives every backup its own revision, so its own name.
        server.put("counter", &i.to_string());
        let meta = save(
            &server.client_url(),
            "s3://retention/daily",
            &["--keep-last", "2"],
            &env,
        );
        names.push(meta["name"].as_str().expect("name").to_string());
    }
    let newest = &names[2..];
    let mut expected: Vec<String> = newest
        .iter()
        .flat_map(|n| [format!("daily/{n}"), format!("daily/{n}.json")])
        .collect();
    expected.push("daily/README".into());
    expected.sort();
    assert_eq!(moto.keys("retention", "daily/"), expected);
    let listed = backup(&["list", "--from", "s3://retention/daily"], &env);
    let listed: Vec<String> = listed
        .ok()
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(listed, [names[3].clone(), names[2].clone()], "newest first");
}

#[test]
fn max_age_zero_keeps_only_the_backup_just_made() {
    let server = TestServer::start();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_str().expect("utf-8").to_string();
    server.put("a", "1");
    let first = save(&server.client_url(), &dir, &[], &[]);
    server.put("a", "2");
    let run = backup(
        &[
            "save",
            "--endpoints",
            &server.client_url(),
            "--to",
            &dir,
            "--max-age",
            "0s",
        ],
        &[],
    );
    let second: Value = serde_json::from_str(run.ok().stdout.trim()).expect("JSON line");
    let first = first["name"].as_str().expect("name");
    let second = second["name"].as_str().expect("name");
    assert_eq!(
        run.finished.stderr,
        format!("deleted old backup {first} from {dir} (retention)\n"),
        "what retention deleted"
    );
    assert!(!root.path().join(first).exists(), "{first} was not deleted");
    assert!(!root.path().join(format!("{first}.json")).exists());
    assert!(root.path().join(second).exists(), "{second} was deleted");
}

#[test]
fn a_missing_bucket_fails_naming_it() {
    let moto = Moto::start();
    let server = TestServer::start();
    let run = backup(
        &[
            "save",
            "--endpoints",
            &server.client_url(),
            "--to",
            "s3://no-such-bucket/etcd",
        ],
        &moto.env(),
    );
    let message = run.failure();
    assert!(
        message.starts_with(
            "ballast backup save: cannot upload to s3://no-such-bucket/etcd: bucket \
             no-such-bucket does not exist (NoSuchBucket)"
        ),
        "{message}"
    );
    assert_eq!(run.finished.stdout, "", "nothing on stdout on failure");
}

#[test]
fn an_unreachable_endpoint_fails_naming_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let run = backup(
        &[
            "save",
            "--endpoints",
            &endpoint,
            "--timeout",
            "5s",
            "--to",
            root.path().to_str().expect("utf-8"),
        ],
        &[],
    );
    let message = run.failure();
    assert!(
        message.starts_with(&format!(
            "ballast backup save: no healthy member to take the snapshot from ({endpoint}: \
             cannot connect: "
        )),
        "{message}"
    );
    assert_eq!(
        std::fs::read_dir(root.path()).expect("dir").count(),
        0,
        "nothing stored"
    );
}

#[test]
fn fetch_refuses_a_damaged_backup_and_leaves_no_file() {
    let moto = Moto::start();
    moto.create_bucket("damaged");
    let server = TestServer::start();
    seed(&server);
    let env = moto.env();
    let meta = save(&server.client_url(), "s3://damaged", &[], &env);
    let name = meta["name"].as_str().expect("name");
    let mut stored = moto.get("damaged", name);
    let middle = stored.len() / 2;
    stored[middle] ^= 0xff;
    moto.put("damaged", name, &stored);

    let out_dir = tempfile::tempdir().expect("tempdir");
    let file = out_dir.path().join("fetched.db");
    let message = fetch("s3://damaged", name, &file, &env).failure();
    assert!(
        message.starts_with(&format!(
            "ballast backup fetch: backup {name} in s3://damaged is corrupt: its SHA-256 "
        )) && message.contains("does not match its metadata"),
        "{message}"
    );
    assert!(
        !file.exists(),
        "the damaged download was left at {}",
        file.display()
    );

    let message = fetch("s3://damaged", "20000101T000000Z-r1.db", &file, &env).failure();
    assert_eq!(
        message,
        "ballast backup fetch: backup 20000101T000000Z-r1.db not found in s3://damaged \
         (see `ballast backup list --from s3://damaged`)"
    );
    assert!(!file.exists());
}

#[test]
fn fetch_refuses_a_damaged_gzip_backup_in_a_directory() {
    let server = TestServer::start();
    seed(&server);
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("b");
    let dir_s = dir.to_str().expect("utf-8").to_string();
    let meta = save(&server.client_url(), &dir_s, &["--compress", "gzip"], &[]);
    let name = meta["name"].as_str().expect("name");
    let path = dir.join(name);
    let mut stored = std::fs::read(&path).expect("read backup");
    let last = stored.len() - 1;
    stored[last] ^= 0x01;
    std::fs::write(&path, &stored).expect("damage backup");
    let file = root.path().join("fetched.db");
    let message = fetch(&dir_s, name, &file, &[]).failure();
    assert!(
        message.starts_with(&format!(
            "ballast backup fetch: backup {name} in {dir_s} is corrupt: "
        )),
        "{message}"
    );
    assert!(!file.exists(), "the damaged download was left behind");
}

#[test]
fn save_over_tls_with_a_client_certificate() {
    let member = tls_support::ClientAuth::start();
    let (s, tls, ca) = (&member.server, member.flags(), &member.ca);
    tls_support::etcdctl_ok(&s.endpoint(), &tls, &["put", "tls-key", "tls-value"]);
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_str().expect("utf-8");
    let endpoint = s.endpoint();
    let mut args = vec!["save", "--endpoints", &endpoint, "--to", dir];
    args.extend_from_slice(&tls);
    let run = backup(&args, &[]);
    let meta: Value = serde_json::from_str(run.ok().stdout.trim()).expect("JSON line");
    assert_eq!(meta["endpoint"], endpoint);

    // Without the client certificate the member refuses, and the message says which.
    let run = backup(
        &[
            "save",
            "--endpoints",
            &endpoint,
            "--cacert",
            ca.crt(),
            "--to",
            dir,
        ],
        &[],
    );
    let message = run.failure();
    assert!(
        message.starts_with(&format!(
            "ballast backup save: no healthy member to take the snapshot from ({endpoint}: "
        )),
        "{message}"
    );

    let file = root.path().join("fetched.db");
    let name = meta["name"].as_str().expect("name");
    fetch(dir, name, &file, &[]).ok();
    let status = run_ballast(
        &[
            "snapshot",
            "status",
            file.to_str().expect("utf-8"),
            "-w",
            "json",
        ],
        RUN_DEADLINE,
    );
    assert!(status.status.success(), "{status:?}");
    let status: Value = serde_json::from_str(status.stdout.trim()).expect("status JSON");
    assert_eq!(status["revision"], meta["revision"]);
}

#[test]
fn save_from_a_cluster_prefers_a_follower() {
    let _one = cluster_support::one_at_a_time();
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<cluster_support::Node> = ["m1", "m2", "m3"]
        .iter()
        .map(|n| cluster_support::Node::new(n, root.path()))
        .collect();
    let initial = cluster_support::initial_cluster(&nodes.iter().collect::<Vec<_>>());
    for node in &mut nodes {
        node.start(&initial, "new");
    }
    let endpoints = cluster_support::endpoints(&nodes.iter().collect::<Vec<_>>());
    let leader = cluster_support::leader(&endpoints, 3);
    cluster_support::ctl_ok(&endpoints, &["put", "k", "v"]);
    let leader_url = cluster_support::status(&endpoints)
        .into_iter()
        .find(|row| row.1 == leader)
        .map(|row| row.0)
        .expect("the leader's endpoint");
    // The leader first in the list: a follower must still be chosen.
    let mut ordered = vec![leader_url.clone()];
    ordered.extend(
        nodes
            .iter()
            .map(|n| n.client_url())
            .filter(|u| *u != leader_url),
    );
    let backups = root.path().join("backups");
    let meta = save(
        &ordered.join(","),
        backups.to_str().expect("utf-8"),
        &[],
        &[],
    );
    assert_ne!(
        meta["memberId"], leader,
        "the leader served the snapshot: {meta}"
    );
    assert_ne!(meta["endpoint"], leader_url, "{meta}");
}

/// `restore-member` (what the operator's rollback Jobs run): the data dir is replaced by the
/// backup with the old data kept beside it; a second run for the same backup and token
/// does nothing (so it never rolls back over later writes); a run interrupted between its
/// two renames leaves the kept data alone when run again.
#[test]
fn restore_member_replaces_keeps_the_old_data_and_runs_once() {
    let server = TestServer::start();
    seed(&server);
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("backups");
    let to = dir.to_str().expect("utf-8");
    let meta = save(&server.client_url(), to, &[], &[]);
    let name = meta["name"].as_str().expect("name");

    let volume = root.path().join("volume");
    let data = volume.join("data");
    let kept = volume.join("data.before-restore");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("old.txt"), "old").expect("old data");
    let data_s = data.to_str().expect("utf-8");
    let restore = |token: &str| {
        let run = backup(
            &[
                "restore-member",
                "--from",
                to,
                "--name",
                name,
                "--data-dir",
                data_s,
                "--member",
                "m1",
                "--initial-cluster",
                "m1=http://127.0.0.1:2380",
                "--initial-cluster-token",
                token,
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:2380",
            ],
            &[],
        );
        let out: Value = serde_json::from_str(run.ok().stdout.trim()).expect("JSON line");
        out["restored"].as_bool().expect("restored")
    };

    assert!(restore("t1"), "the first run restores");
    assert!(
        data.join("member").join("wal").exists(),
        "a member with its WAL"
    );
    assert_eq!(
        std::fs::read_to_string(kept.join("old.txt"))
            .ok()
            .as_deref(),
        Some("old"),
        "the old data is kept beside"
    );

    // Written after the restore; a repeated Job must not undo it.
    std::fs::write(data.join("later.txt"), "later").expect("later data");
    assert!(!restore("t1"), "the same backup and token again: nothing");
    assert!(data.join("later.txt").exists());
    assert!(kept.join("old.txt").exists(), "the kept data stays too");
    assert!(
        data.join("restored-from.json").exists(),
        "the marker travels with the data it describes"
    );

    // A run for another cluster that stopped after moving the data aside: the next run
    // restores and keeps what was moved aside (not the older copy).
    std::fs::remove_dir_all(&kept).expect("drop the older copy");
    std::fs::rename(&data, &kept).expect("as if interrupted");
    assert!(restore("t2"));
    assert!(
        kept.join("later.txt").exists(),
        "the interrupted run's data is kept"
    );
    assert!(data.join("member").join("wal").exists());
}
