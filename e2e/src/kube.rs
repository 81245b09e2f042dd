//! The test Kubernetes of `scripts/kube-up.sh`, driven from tests: real components built
//! from Kubernetes' source, the store a Ballast cluster (or real etcd with
//! `BALLAST_KUBE_STORE=etcd`), one kubelet node with containerd.
//!
//! A [`KubeCluster`] is brought up by [`KubeCluster::up`] and taken down, with everything
//! it made, when it is dropped, also when a test fails.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// A running test cluster.
pub struct KubeCluster {
    repo: PathBuf,
    kubeconfig: String,
    kube_bin: PathBuf,
    /// When the cluster came up and when the last [`KubeCluster::phase`] ended.
    started: Instant,
    last_phase: std::cell::Cell<Instant>,
}

impl KubeCluster {
    /// Runs `scripts/kube-up.sh` with `env` added to its environment (e.g. a short
    /// compaction interval) and waits until the node is Ready and DNS answers.
    pub fn up(env: &[(&str, &str)]) -> Result<Self, Error> {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(PathBuf::from)
            .ok_or_else(|| Error::Setup("no repository root".into()))?;
        // A cluster left by an earlier run was started with other settings.
        let _ = Command::new(repo.join("scripts/kube-down.sh")).output();
        let out = Command::new(repo.join("scripts/kube-up.sh"))
            .envs(env.iter().copied())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| Error::io("starting scripts/kube-up.sh", e))?;
        let cluster = Self {
            kubeconfig: exported(&out.stdout, "KUBECONFIG").unwrap_or_default(),
            kube_bin: exported(&out.stdout, "PATH")
                .and_then(|p| p.split(':').next().map(PathBuf::from))
                .unwrap_or_default(),
            repo,
            started: Instant::now(),
            last_phase: std::cell::Cell::new(Instant::now()),
        };
        if !out.status.success() || cluster.kubeconfig.is_empty() {
            // Show why, then leave nothing behind.
            let logs = Command::new("sh")
                .args(["-c", "tail -n 15 /var/lib/ballast-kube/logs/*.log"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let _ = Command::new(cluster.repo.join("scripts/kube-down.sh")).output();
            return Err(Error::Setup(format!(
                "scripts/kube-up.sh failed ({}); the last lines of its logs:\n{logs}",
                out.status
            )));
        }
        Ok(cluster)
    }

    /// Logs that a part of a long test ended and how long it took, past the test harness's
    /// output capture (as kube-up.sh's lines are), so that a CI log shows where the time of
    /// a single long test goes.
    pub fn phase(&self, name: &str) {
        let now = Instant::now();
        let took = now - self.last_phase.replace(now);
        let line = format!(
            "[kube +{}s] {name}: {:.1} s\n",
            (now - self.started).as_secs(),
            took.as_secs_f64()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    /// Runs the cluster's own kubectl; its standard output, or an error with its stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, Error> {
        self.kubectl_with_input(args, None)
    }

    /// Runs kubectl with `input` on its standard input (`kubectl apply -f -`).
    pub fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> Result<String, Error> {
        let mut child = self
            .kubectl_command(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("starting kubectl", e))?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| Error::io("writing to kubectl", e))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io("waiting for kubectl", e))?;
        if !out.status.success() {
            return Err(Error::Command {
                command: format!("kubectl {}", args.join(" ")),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs helm (built from its Go module by `e2e/kube/helm.sh` on first use) against the
    /// cluster; its standard output, or an error with its stderr.
    pub fn helm(&self, args: &[&str]) -> Result<String, Error> {
        let script = self.repo.join("e2e/kube/helm.sh");
        let built = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| Error::io("running e2e/kube/helm.sh", e))?;
        if !built.status.success() {
            return Err(Error::Command {
                command: "e2e/kube/helm.sh".into(),
                stderr: String::from_utf8_lossy(&built.stderr).trim().to_string(),
            });
        }
        let helm = String::from_utf8_lossy(&built.stdout).trim().to_string();
        let out = Command::new(&helm)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .map_err(|e| Error::io("running helm", e))?;
        if !out.status.success() {
            return Err(Error::Command {
                command: format!("helm {}", args.join(" ")),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Installs the operator as the README says: `helm install` of `charts/ballast` into
    /// `ballast-system` (the CRDs come from the chart's `crds/`), then waits until the CRDs
    /// are established and the Deployment is available.
    pub fn install_operator(&self) -> Result<(), Error> {
        let chart = self.repo.join("charts/ballast");
        self.helm(&[
            "install",
            "ballast-operator",
            &chart.display().to_string(),
            "-n",
            "ballast-system",
            "--create-namespace",
        ])?;
        for crd in ["etcdclusters", "etcdbackups"] {
            self.kubectl(&[
                "wait",
                "--for=condition=Established",
                &format!("crd/{crd}.ballast.dev"),
                "--timeout=60s",
            ])?;
        }
        self.kubectl(&[
            "-n",
            "ballast-system",
            "rollout",
            "status",
            "deployment/ballast-operator",
            "--timeout=120s",
        ])
        .map(|_| ())
    }

    /// The operator pod holding the leader Lease, once one does (within a minute).
    pub fn operator_leader(&self) -> Result<String, Error> {
        self.wait_kubectl(
            &[
                "-n",
                "ballast-system",
                "get",
                "lease",
                "ballast-operator",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            Duration::from_secs(60),
            |out| !out.is_empty(),
        )
    }

    /// The node's address, which pods reach (e.g. a test's own server listening on it).
    pub fn node_ip(&self) -> Result<String, Error> {
        self.kubectl(&[
            "get",
            "nodes",
            "-o",
            r#"jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}"#,
        ])
    }

    /// A kubectl command for the caller to run (e.g. `get --watch` in the background).
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.kube_bin.join("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig).args(args);
        cmd
    }

    /// Retries `kubectl args` until it succeeds and `accept` takes its output.
    pub fn wait_kubectl(
        &self,
        args: &[&str],
        timeout: Duration,
        accept: impl Fn(&str) -> bool,
    ) -> Result<String, Error> {
        let start = Instant::now();
        loop {
            let last = self.kubectl(args);
            match &last {
                Ok(out) if accept(out) => return last,
                _ if start.elapsed() >= timeout => {
                    return Err(Error::Setup(format!(
                        "kubectl {} did not give what was awaited in {timeout:?}; last: {last:?}",
                        args.join(" ")
                    )))
                }
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Stops, kills, starts or restarts one process of the cluster (`e2e/kube/component.sh`).
    pub fn component(&self, action: &str, name: &str) -> Result<(), Error> {
        let script = self.repo.join("e2e/kube/component.sh");
        crate::command::run(&script.display().to_string(), &[action, name]).map(|_| ())
    }

    /// Real etcdctl (Debian's, v3 API) against the store, with kube-apiserver's certificate.
    pub fn store_etcdctl(&self, args: &[&str]) -> Result<String, Error> {
        let pki = self.state_dir().join("pki");
        let mut all = vec![
            format!("--cacert={}", pki.join("store-ca.crt").display()),
            format!("--cert={}", pki.join("apiserver-etcd-client.crt").display()),
            format!("--key={}", pki.join("apiserver-etcd-client.key").display()),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        crate::command::run("etcdctl", &all)
    }

    /// The endpoint of store member `i` (1-based), as the API server dials it.
    pub fn store_endpoint(i: u32) -> String {
        format!("https://127.0.0.1:{}", 23790 + i)
    }

    /// The cluster's state directory (certificates, logs, data).
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(&self.kubeconfig)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default()
    }

    /// The path of the admin kubeconfig.
    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }
}

impl Drop for KubeCluster {
    fn drop(&mut self) {
        if std::env::var_os("BALLAST_KUBE_KEEP").is_some() {
            eprintln!("BALLAST_KUBE_KEEP is set: the cluster is left up (scripts/kube-down.sh)");
            return;
        }
        let _ = Command::new(self.repo.join("scripts/kube-down.sh")).status();
    }
}

/// The value of `export NAME=value` in a script's output.
fn exported(stdout: &[u8], name: &str) -> Option<String> {
    let prefix = format!("export {name}=");
    String::from_utf8_lossy(stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}
