//! Helpers for the TLS suite: a private PKI made with the real `openssl` (as operators make
//! theirs), a single member started with arbitrary TLS flags, and etcdctl over https.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{etcdctl_binary, free_port, server_kind, ServerKind};

/// How long a member may take to serve, or a condition to hold.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Runs `openssl` in `dir`, failing the test with its stderr.
pub fn openssl(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (apt-get install openssl; scripts/test.sh does it)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A certificate authority on disk, able to issue and revoke.
pub struct Ca {
    pub name: String,
    pub dir: PathBuf,
    pub crt: PathBuf,
    key: PathBuf,
}

/// An issued certificate and its key.
#[derive(Clone)]
pub struct Cert {
    pub crt: PathBuf,
    pub key: PathBuf,
}

impl Cert {
    pub fn crt(&self) -> &str {
        self.crt.to_str().expect("utf-8 path")
    }
    pub fn key(&self) -> &str {
        self.key.to_str().expect("utf-8 path")
    }
}

impl Ca {
    /// A new CA (RSA 2048, like the seeds' cfssl CA) in `dir/<name>/`.
    pub fn new(root: &Path, name: &str) -> Ca {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("create CA dir");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        // `openssl ca` keeps its revocation database here.
        std::fs::write(dir.join("index.txt"), "").expect("write index.txt");
        std::fs::write(dir.join("crlnumber"), "01\n").expect("write crlnumber");
        std::fs::write(
            dir.join("ca.cnf"),
            "[ ca ]\ndefault_ca = CA_default\n[ CA_default ]\ndatabase = index.txt\n\
             crlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\n",
        )
        .expect("write ca.cnf");
        Ca {
            name: name.to_string(),
            crt: dir.join("ca.crt"),
            key: dir.join("ca.key"),
            dir,
        }
    }

    pub fn crt(&self) -> &str {
        self.crt.to_str().expect("utf-8 path")
    }

    /// Issues `<name>.crt`/`<name>.key` with subject CN `cn`, SANs 127.0.0.1 and localhost,
    /// usable as server and client certificate (like the seeds' cfssl "kubernetes" profile).
    pub fn issue(&self, name: &str, cn: &str) -> Cert {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.join(&ext),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             extendedKeyUsage=serverAuth,clientAuth\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             basicConstraints=CA:FALSE\n",
        )
        .expect("write extension file");
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
        Cert {
            crt: self.dir.join(crt),
            key: self.dir.join(key),
        }
    }

    /// Writes the CA's current CRL to `crl.pem` (after revoking `revoke`, if given).
    pub fn crl(&self, revoke: Option<&Cert>) -> PathBuf {
        let (crt, key) = (self.crt(), self.key.to_str().expect("utf-8 path"));
        if let Some(c) = revoke {
            openssl(
                &self.dir,
                &[
                    "ca",
                    "-config",
                    "ca.cnf",
                    "-revoke",
                    c.crt(),
                    "-keyfile",
                    key,
                    "-cert",
                    crt,
                ],
            );
        }
        // Written aside and renamed, so a member never reads half a CRL.
        openssl(
            &self.dir,
            &[
                "ca", "-config", "ca.cnf", "-gencrl", "-keyfile", key, "-cert", crt, "-out",
                "crl.tmp",
            ],
        );
        let path = self.dir.join("crl.pem");
        std::fs::rename(self.dir.join("crl.tmp"), &path).expect("install CRL");
        path
    }
}

/// The subject and serial (`openssl x509 -noout -subject -serial`) of the certificate
/// a TLS server on `port` presents to `client` (verified against `ca`).
pub fn served_certificate(port: u16, ca: &Ca, client: &Cert) -> Option<String> {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-CAfile",
            ca.crt(),
            "-cert",
            client.crt(),
            "-key",
            client.key(),
        ])
        .args(["-verify_return_error", "-showcerts"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    x509.stdin.take()?.write_all(&out.stdout).ok()?;
    let parsed = x509.wait_with_output().ok()?;
    parsed
        .status
        .success()
        .then(|| String::from_utf8_lossy(&parsed.stdout).trim().to_string())
}

/// One HTTP/1.1 GET over TLS (through `openssl s_client`), returning the raw response.
pub fn https_get(port: u16, path: &str, ca: &Ca, client: &Cert) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-ign_eof",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "-CAfile",
            ca.crt(),
            "-cert",
            client.crt(),
            "-key",
            client.key(),
        ])
        .args(["-verify_return_error", "-alpn", "http/1.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn openssl s_client");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(request.as_bytes())
        .expect("send request");
    let out = child.wait_with_output().expect("wait for s_client");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs etcdctl 3.4; returns (success, stdout, stderr).
pub fn etcdctl(endpoints: &str, tls: &[&str], args: &[&str]) -> (bool, String, String) {
    let out = Command::new(etcdctl_binary())
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            endpoints,
            "--dial-timeout",
            "2s",
            "--command-timeout",
            "5s",
        ])
        .args(tls)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run etcdctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// etcdctl that must succeed; returns stdout.
pub fn etcdctl_ok(endpoints: &str, tls: &[&str], args: &[&str]) -> String {
    let (ok, out, err) = etcdctl(endpoints, tls, args);
    assert!(
        ok,
        "etcdctl {tls:?} {args:?} against {endpoints} failed:\n{out}\n{err}"
    );
    out
}

/// etcdctl's TLS flags for a client certificate.
pub fn client_flags<'a>(ca: &'a Ca, client: &'a Cert) -> Vec<&'a str> {
    vec![
        "--cacert",
        ca.crt(),
        "--cert",
        client.crt(),
        "--key",
        client.key(),
    ]
}

/// A member that requires client certificates from its CA, with one client certificate.
pub struct ClientAuth {
    pub ca: Ca,
    pub client: Cert,
    pub server: Server,
    _pki: tempfile::TempDir,
}

impl ClientAuth {
    /// Starts the member (`--client-cert-auth`) and waits until the client reaches it.
    pub fn start() -> ClientAuth {
        let pki = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new(pki.path(), "ca");
        let server_cert = ca.issue("server", "etcd");
        let client = ca.issue("client", "root");
        let server = Server::start(
            "",
            &[
                "--cert-file",
                server_cert.crt(),
                "--key-file",
                server_cert.key(),
                "--trusted-ca-file",
                ca.crt(),
                "--client-cert-auth",
            ],
            &client_flags(&ca, &client),
        );
        ClientAuth {
            ca,
            client,
            server,
            _pki: pki,
        }
    }

    /// etcdctl's flags for the client certificate.
    pub fn flags(&self) -> Vec<&str> {
        client_flags(&self.ca, &self.client)
    }
}

/// Polls until `check` holds, failing after [`DEADLINE`].
pub fn wait_for(what: &str, check: impl FnMut() -> bool) {
    crate::common::wait_until(what, DEADLINE, check);
}

fn server_binary() -> PathBuf {
    match server_kind() {
        ServerKind::Ballast => PathBuf::from(env!("CARGO_BIN_EXE_ballast")),
        ServerKind::Etcd => std::env::var_os("BALLAST_TEST_ETCD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("etcd")),
    }
}

/// A single member with an https client URL (and more URLs if the test adds them).
pub struct Server {
    pub https_port: u16,
    pub peer_port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    /// Spawns a member listening on `https://127.0.0.1:<https_port>` plus `extra_urls`
    /// (comma-separated, may be empty), with `flags`; does not wait for it.
    pub fn spawn(extra_urls: &str, flags: &[&str]) -> Server {
        let https_port = free_port();
        let peer_port = free_port();
        let dir = tempfile::Builder::new()
            .prefix("ballast-tls-")
            .tempdir()
            .expect("tempdir");
        let https = format!("https://127.0.0.1:{https_port}");
        let listen = if extra_urls.is_empty() {
            https.clone()
        } else {
            format!("{https},{extra_urls}")
        };
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("create log");
        let child = Command::new(server_binary())
            .args(["--name", "tls", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &listen,
                "--advertise-client-urls",
                &https,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("tls={peer}")])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn server");
        Server {
            https_port,
            peer_port,
            dir,
            child: Some(child),
        }
    }

    /// Spawns and waits until etcdctl with `tls` flags finds the member healthy.
    pub fn start(extra_urls: &str, flags: &[&str], tls: &[&str]) -> Server {
        let mut s = Server::spawn(extra_urls, flags);
        let eps = s.endpoint();
        // The port first (cheap), then a real request, which takes a dial timeout to fail.
        wait_for("the member to serve over https", || {
            assert!(s.running(), "the member exited:\n{}", s.log());
            std::net::TcpStream::connect(("127.0.0.1", s.https_port)).is_ok()
                && etcdctl(&eps, tls, &["endpoint", "health"]).0
        });
        s
    }

    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits for the process to exit by itself (a refused configuration); returns its log.
    pub fn wait_exit(&mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("server was spawned");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("poll server") {
                return (status, self.log());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the member did not exit within {DEADLINE:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- member log -----\n{}\n----- end -----", self.log());
        }
    }
}
