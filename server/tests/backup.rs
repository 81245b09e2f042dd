//! `ballast backup save|list|fetch` against real members and a real S3 API: moto's server
//! (`python3 -m moto.server`, installed by scripts/test.sh) on a loopback port, or a local
//! directory. Every backup is checked the way it will be used: fetched, restored with
//! `ballast snapshot restore`, started, and read with etcdctl.
//!
//! What a store refuses (read-only credentials, a failing metadata write) is played by
//! [`Refusing`], a proxy in front of moto that answers chosen requests with S3's
//! `AccessDenied`.

#[allow(dead_code)]
mod cluster_support;
mod common;
mod support;
mod tls_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
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

/// A proxy in front of moto refusing the requests `refuse(method, path)` picks as S3 does
/// for credentials that may not do them (403 `AccessDenied`), and passing the others on,
/// one request per connection. Its threads end with the test process.
struct Refusing {
    port: u16,
}

impl Refusing {
    fn start(moto: &Moto, refuse: fn(&str, &str) -> bool) -> Refusing {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let upstream = moto.port;
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let _ = proxy_one(conn, upstream, refuse);
                });
            }
        });
        Refusing { port }
    }

    /// `moto.env()` with the proxy as the endpoint.
    fn env(&self, moto: &Moto) -> Vec<(String, String)> {
        let mut env = moto.env();
        for (key, value) in &mut env {
            if key == "AWS_ENDPOINT" {
                *value = format!("http://127.0.0.1:{}", self.port);
            }
        }
        env
    }
}

/// Reads one HTTP message head (without its blank line) and the body its Content-Length
/// announces.
fn read_message(conn: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        data.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&data[..data.len() - 4]).into_owned();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0usize);
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body)?;
    Ok((head, body))
}

/// `head` asking to close the connection after this message.
fn closing(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

fn proxy_one(
    mut client: TcpStream,
    upstream: u16,
    refuse: fn(&str, &str) -> bool,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, body) = read_message(&mut client)?;
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or_default();
    let path = words.next().unwrap_or_default().split('?').next();
    if refuse(method, path.unwrap_or_default()) {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>\
                    <Message>Access Denied</Message><RequestId>test</RequestId></Error>";
        let answer = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        return client.write_all(answer.as_bytes());
    }
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    server.set_read_timeout(Some(Duration::from_secs(30)))?;
    server.write_all(closing(&head).as_bytes())?;
    server.write_all(&body)?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let answer_head = String::from_utf8_lossy(&answer[..end]).into_owned();
    client.write_all(closing(&answer_head).as_bytes())?;
    client.write_all(&answer[end + 4..])
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
        r"^\d{{8}}T\d{{6}}Z-r{revision}-[0-9a-f]{{8}}\.db{}$",
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
    assert_eq!(meta["onDemand"], false, "{meta}");
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

/// The restore marker means "restored, never started": a member that starts on the data
/// renames it, so a later `restore-member` of the same backup and token restores again
/// (the cluster has written since: a rollback back to that backup must not keep it), while
/// a restore that never started and is replaced by another (a rollback changed mid-way) is
/// dropped, so the data kept aside stays the data from before the rollback.
#[test]
fn restore_member_restores_again_once_a_member_has_started_on_the_data() {
    let src = TestServer::start();
    seed(&src);
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("backups");
    let to = dir.to_str().expect("utf-8");
    let name = name_of(&save(&src.client_url(), to, &[], &[]));

    let mut dst = TestServer::start();
    dst.put("dst-own", "before the rollback");
    dst.stop();
    let data = dst.data_dir();
    let kept = data
        .parent()
        .expect("the data dir has a parent")
        .join("data.before-restore");
    let data_s = data.to_str().expect("utf-8").to_string();
    let (member, peer) = (dst.name().to_string(), dst.peer_url());
    let restore = |token: &str| {
        let initial = format!("{member}={peer}");
        let run = backup(
            &[
                "restore-member",
                "--from",
                to,
                "--name",
                &name,
                "--data-dir",
                &data_s,
                "--member",
                &member,
                "--initial-cluster",
                &initial,
                "--initial-cluster-token",
                token,
                "--initial-advertise-peer-urls",
                &peer,
            ],
            &[],
        );
        let out: Value = serde_json::from_str(run.ok().stdout.trim()).expect("JSON line");
        out["restored"].as_bool().expect("restored")
    };
    let marker = |dir: &Path, file: &str| -> Option<Value> {
        let text = std::fs::read_to_string(dir.join(file)).ok()?;
        serde_json::from_str(&text).ok()
    };

    assert!(restore("t1"));
    assert!(!restore("t1"), "not started yet: nothing to do");
    dst.restart();
    assert_eq!(dst.etcdctl_ok(&["get", "dst-own"]), "", "the backup's data");
    dst.put("after", "written after the rollback");
    dst.stop();
    assert!(
        marker(&data, "restored-from.json").is_none(),
        "renamed on start"
    );
    assert_eq!(
        marker(&data, "restored-from.started.json").map(|m| m["token"].clone()),
        Some(Value::from("t1"))
    );

    // The same backup and token again: the data moved on since, so it is restored again
    // (and what it held is kept aside).
    assert!(restore("t1"), "started since: restored again");
    dst.restart();
    assert_eq!(dst.etcdctl_ok(&["get", "after"]), "", "rolled back again");
    dst.stop();
    let started_aside = || marker(&kept, "restored-from.started.json");
    assert!(
        started_aside().is_some(),
        "the data written to is kept aside"
    );

    // Started once more, then a restore replaced by another before any start: the untouched
    // one is dropped and the copy kept aside stays the one from before.
    dst.restart();
    dst.stop();
    assert!(restore("t2"));
    assert!(restore("t3"), "t2 replaced before it started");
    assert!(
        started_aside().is_some(),
        "the data from before is still kept"
    );
    assert_eq!(
        marker(&data, "restored-from.json").map(|m| m["token"].clone()),
        Some(Value::from("t3"))
    );
}

/// The name a `save` printed.
fn name_of(meta: &Value) -> String {
    meta["name"].as_str().expect("name").to_string()
}

/// The one JSON line a successful run printed, checked to be its termination message too.
#[track_caller]
fn json_line(run: &Run) -> Value {
    let out = run.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {out:?}");
    assert_eq!(run.termination, lines[0], "termination message");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", lines[0]))
}

/// `fetch --hold HOLDER [extra]`, checked to succeed; its JSON line.
fn fetch_held(
    from: &str,
    name: &str,
    output: &Path,
    holder: &str,
    extra: &[&str],
    env: &[(String, String)],
) -> Value {
    let output = output.to_str().expect("utf-8 path");
    let mut args = vec![
        "fetch", "--from", from, "--name", name, "--output", output, "--hold", holder,
    ];
    args.extend_from_slice(extra);
    json_line(&backup(&args, env))
}

fn release(from: &str, name: &str, holder: &str, env: &[(String, String)]) -> Value {
    json_line(&backup(
        &[
            "release", "--from", from, "--backup", name, "--holder", holder,
        ],
        env,
    ))
}

fn list_json(from: &str, env: &[(String, String)]) -> Vec<Value> {
    let run = backup(&["list", "--from", from, "-o", "json"], env);
    match serde_json::from_str(&run.ok().stdout) {
        Ok(Value::Array(backups)) => backups,
        other => panic!("list -o json: {other:?}"),
    }
}

/// Seconds from now to an RFC 3339 time (negative if past).
fn seconds_until(t: &Value) -> i64 {
    let t = humantime::parse_rfc3339(t.as_str().expect("a time")).expect("RFC 3339");
    match t.duration_since(std::time::SystemTime::now()) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// A new cluster restoring from a backup holds it (`fetch --hold`); the old cluster's
/// schedule, sharing the prefix with `--keep-last 1`, keeps it until the hold is released.
/// Expired holds protect nothing and go with their backup; `list` shows live holds and no
/// hold object as a backup.
#[test]
fn a_held_backup_survives_another_schedules_retention_until_released() {
    let moto = Moto::start();
    moto.create_bucket("shared");
    let server = TestServer::start();
    let env = moto.env();
    let at = "s3://shared/prod";
    let url = server.client_url();
    server.put("k", "1");
    let first = name_of(&save(&url, at, &[], &env));

    let scratch = tempfile::tempdir().expect("tempdir");
    let file = scratch.path().join("check.db");
    let fetched = fetch_held(at, &first, &file, "ns-new-0a1b2c3d", &[], &env);
    assert_eq!(fetched["backup"], first.as_str(), "{fetched}");
    assert_eq!(fetched["hold"]["holder"], "ns-new-0a1b2c3d", "{fetched}");
    assert_eq!(fetched["hold"]["written"], true, "{fetched}");
    assert_eq!(fetched["hold"].get("error"), None, "{fetched}");
    let left = seconds_until(&fetched["hold"]["until"]);
    assert!(
        (86400 - 120..=86400).contains(&left),
        "24h by default: {fetched}"
    );
    assert!(file.exists(), "the backup was fetched");
    let hold_key = format!("prod/{first}.holds/ns-new-0a1b2c3d.json");
    assert!(moto.keys("shared", "prod/").contains(&hold_key));

    let listed = list_json(at, &env);
    assert_eq!(listed.len(), 1, "a hold is not a backup: {listed:?}");
    assert_eq!(listed[0]["name"], first.as_str());
    assert_eq!(
        listed[0]["holds"],
        serde_json::json!([{"holder": "ns-new-0a1b2c3d", "until": fetched["hold"]["until"]}])
    );
    let text = backup(&["list", "--from", at], &env);
    let until = fetched["hold"]["until"].as_str().expect("until");
    assert!(
        text.ok()
            .stdout
            .trim()
            .ends_with(&format!("\theld by ns-new-0a1b2c3d until {until}")),
        "{:?}",
        text.finished
    );

    // The old cluster's schedule.
    server.put("k", "2");
    let run = backup(
        &["save", "--endpoints", &url, "--to", at, "--keep-last", "1"],
        &env,
    );
    let second = name_of(&json_line(&run));
    assert_eq!(
        run.finished.stderr,
        format!("kept old backup {first} in {at}: held by ns-new-0a1b2c3d until {until}\n")
    );
    let keys = moto.keys("shared", "prod/");
    for kept in [&first, &second] {
        assert!(keys.contains(&format!("prod/{kept}")), "{kept}: {keys:?}");
        assert!(
            keys.contains(&format!("prod/{kept}.json")),
            "{kept}: {keys:?}"
        );
    }

    // A hold that has expired protects nothing.
    let expired = fetch_held(at, &second, &file, "gone", &["--hold-for", "0s"], &env);
    assert_eq!(expired["hold"]["written"], true, "{expired}");
    assert!(seconds_until(&expired["hold"]["until"]) <= 0, "{expired}");

    let released = release(at, &first, "ns-new-0a1b2c3d", &env);
    assert_eq!(
        released,
        serde_json::json!({"backup": first, "holder": "ns-new-0a1b2c3d", "released": true})
    );
    assert!(!moto.keys("shared", "prod/").contains(&hold_key));
    let again = release(at, &first, "ns-new-0a1b2c3d", &env);
    assert_eq!(again["released"], false, "releasing twice is fine: {again}");

    server.put("k", "3");
    let third = name_of(&save(&url, at, &["--keep-last", "1"], &env));
    assert_eq!(
        moto.keys("shared", "prod/"),
        [format!("prod/{third}"), format!("prod/{third}.json")],
        "the released and the expired-held backups went, with the expired hold"
    );
}

/// Read-only credentials (or a read-only volume) cannot write a hold: the fetch still
/// succeeds and its JSON line says the backup is not held, and why.
#[test]
fn a_hold_the_store_refuses_does_not_stop_the_fetch() {
    let moto = Moto::start();
    moto.create_bucket("readonly");
    let server = TestServer::start();
    seed(&server);
    let meta = save(&server.client_url(), "s3://readonly/etcd", &[], &moto.env());
    let name = name_of(&meta);
    let proxy = Refusing::start(&moto, |method, path| {
        method == "PUT" && path.contains(".holds/")
    });
    let scratch = tempfile::tempdir().expect("tempdir");
    let file = scratch.path().join("fetched.db");
    let out = fetch_held(
        "s3://readonly/etcd",
        &name,
        &file,
        "ns-new",
        &["--hold-for", "2h"],
        &proxy.env(&moto),
    );
    assert_eq!(out["hold"]["written"], false, "{out}");
    assert_eq!(out["hold"]["holder"], "ns-new", "{out}");
    let error = out["hold"]["error"].as_str().expect("why it is not held");
    assert!(
        error.starts_with(&format!(
            "cannot write a hold on {name} to s3://readonly/etcd: access denied"
        )),
        "{error}"
    );
    assert_eq!(out["revision"], meta["revision"], "{out}");
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
    assert!(status.status.success(), "the fetched snapshot: {status:?}");
    assert_eq!(
        moto.keys("readonly", "etcd/"),
        [format!("etcd/{name}"), format!("etcd/{name}.json")],
        "no hold was written"
    );
}

/// A snapshot uploaded completely whose metadata cannot be written would be invisible to
/// listing and retention forever: it is deleted again, and the metadata's error reported.
#[test]
fn a_snapshot_whose_metadata_cannot_be_written_is_deleted_again() {
    let moto = Moto::start();
    moto.create_bucket("nometa");
    let server = TestServer::start();
    seed(&server);
    let proxy = Refusing::start(&moto, |method, path| {
        method == "PUT" && path.ends_with(".json")
    });
    let run = backup(
        &[
            "save",
            "--endpoints",
            &server.client_url(),
            "--to",
            "s3://nometa/etcd",
        ],
        &proxy.env(&moto),
    );
    let message = run.failure();
    assert!(
        message.starts_with("ballast backup save: cannot write the metadata of ")
            && message.contains(" to s3://nometa/etcd: access denied"),
        "{message}"
    );
    assert_eq!(
        moto.keys("nometa", ""),
        Vec::<String>::new(),
        "the snapshot was left"
    );
}

/// `--on-demand` backups are recorded as such; retention (a schedule's, or an on-demand
/// save's own flags) never deletes them and keep-last does not count them; the newest
/// scheduled backup stays too.
#[test]
fn on_demand_backups_are_neither_deleted_nor_counted_by_retention() {
    let server = TestServer::start();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_str().expect("utf-8").to_string();
    let url = server.client_url();
    server.put("k", "1");
    let s1 = save(&url, &dir, &[], &[]);
    assert_eq!(s1["onDemand"], false, "{s1}");
    server.put("k", "2");
    let d1 = save(&url, &dir, &["--on-demand"], &[]);
    assert_eq!(d1["onDemand"], true, "{d1}");
    server.put("k", "3");
    let s2 = save(&url, &dir, &["--keep-last", "1"], &[]);
    server.put("k", "4");
    let d2 = save(
        &url,
        &dir,
        &["--on-demand", "--keep-last", "1", "--max-age", "0s"],
        &[],
    );
    let listed: Vec<(String, bool)> = list_json(&dir, &[])
        .iter()
        .map(|b| (name_of(b), b["onDemand"].as_bool().expect("onDemand")))
        .collect();
    assert_eq!(
        listed,
        [
            (name_of(&d2), true),
            (name_of(&s2), false),
            (name_of(&d1), true)
        ]
    );
    assert!(!root.path().join(name_of(&s1)).exists());
}

/// Two saves in the same second at the same revision (a schedule and an EtcdBackup) make
/// two backups, each intact, instead of one overwriting the other.
#[test]
fn saves_in_the_same_second_at_the_same_revision_make_two_backups() {
    let server = TestServer::start();
    seed(&server);
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_str().expect("utf-8").to_string();
    let url = server.client_url();
    for _ in 0..10 {
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| save(&url, &dir, &[], &[]));
            let b = s.spawn(|| save(&url, &dir, &[], &[]));
            (
                a.join().expect("first save"),
                b.join().expect("second save"),
            )
        });
        let (a, b) = (name_of(&a), name_of(&b));
        // `<time>-r<revision>`: another second or revision is no test; try again.
        let same = |n: &str| n.split('-').take(2).collect::<Vec<_>>().join("-");
        if same(&a) != same(&b) {
            continue;
        }
        assert_ne!(a, b, "two saves, one name");
        let listed: Vec<String> = list_json(&dir, &[]).iter().map(name_of).collect();
        assert!(
            listed.contains(&a) && listed.contains(&b),
            "{a}, {b}: {listed:?}"
        );
        let scratch = tempfile::tempdir().expect("tempdir");
        for name in [&a, &b] {
            let file = scratch.path().join("fetched.db");
            fetch(&dir, name, &file, &[]).ok();
        }
        return;
    }
    panic!("no two saves fell in the same second in 10 tries");
}

/// In a directory a hold is a file `<name>.holds/<holder>.json` beside the backup; the folder
/// is not a backup to `list`, and releasing the last hold removes it.
#[test]
fn holds_in_a_directory_are_files_beside_the_backup() {
    let server = TestServer::start();
    seed(&server);
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("backups");
    let at = dir.to_str().expect("utf-8").to_string();
    let name = name_of(&save(&server.client_url(), &at, &[], &[]));
    let scratch = tempfile::tempdir().expect("tempdir");
    let file = scratch.path().join("fetched.db");
    let out = fetch_held(&at, &name, &file, "ns-new", &["--hold-for", "7d"], &[]);
    let left = seconds_until(&out["hold"]["until"]);
    assert!((7 * 86400 - 120..=7 * 86400).contains(&left), "{out}");

    let folder = dir.join(format!("{name}.holds"));
    let hold = std::fs::read_to_string(folder.join("ns-new.json")).expect("the hold's file");
    let hold: Value = serde_json::from_str(&hold).expect("JSON");
    assert_eq!(
        hold,
        serde_json::json!({"holder": "ns-new", "until": out["hold"]["until"]})
    );
    let listed = backup(&["list", "--from", &at], &[]);
    let lines: Vec<String> = listed.ok().stdout.lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 1, "the holds folder is no backup: {lines:?}");
    assert!(lines[0].starts_with(&format!("{name}\t")), "{lines:?}");

    assert_eq!(release(&at, &name, "ns-new", &[])["released"], true);
    assert!(!folder.exists(), "the empty holds folder is removed");
}
