//! One pod of a StatefulSet, run as processes on its own host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PodSecurityContext, PodSpec, Probe, Secret,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::command::sh_quote;
use crate::network::Host;
use crate::probe::http_get;
use crate::volumes::Volumes;
use crate::Error;

/// Where the image's programs appear inside a container.
const IMAGE_BIN: &str = "/usr/local/bin";
const IMAGE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What the downward API tells a pod about itself.
#[derive(Debug, Clone)]
pub struct PodIdentity {
    pub name: String,
    pub namespace: String,
}

/// A pod: its spec, its host, its volumes on disk and its running containers.
#[derive(Debug)]
pub struct Pod {
    pub id: PodIdentity,
    pub host: Host,
    spec: PodSpec,
    claim_templates: Vec<PersistentVolumeClaim>,
    secrets: BTreeMap<String, Secret>,
    dir: PathBuf,
    claims_dir: PathBuf,
    image_bin: PathBuf,
    running: Vec<(String, Child)>,
}

impl Pod {
    /// Pod `ordinal` of `sts`, on `host`. Its files go under `root` (`pods/<name>`, claims
    /// in `claims/`); `secrets` are the Secrets its volumes may name; `image_bin` holds the
    /// programs the image would have: it is mounted at `/usr/local/bin`, first in `PATH`.
    pub fn from_statefulset(
        sts: &StatefulSet,
        ordinal: u32,
        host: Host,
        root: &Path,
        secrets: &[Secret],
        image_bin: &Path,
    ) -> Result<Pod, Error> {
        let name = format!(
            "{}-{ordinal}",
            sts.metadata.name.as_deref().unwrap_or_default()
        );
        let spec = sts
            .spec
            .as_ref()
            .ok_or_else(|| Error::Spec("StatefulSet without spec".into()))?;
        let pod_spec = spec
            .template
            .spec
            .clone()
            .ok_or_else(|| Error::Spec("pod template without spec".into()))?;
        Ok(Pod {
            id: PodIdentity {
                name: name.clone(),
                namespace: sts.metadata.namespace.clone().unwrap_or("default".into()),
            },
            host,
            spec: pod_spec,
            claim_templates: spec.volume_claim_templates.clone().unwrap_or_default(),
            secrets: secrets
                .iter()
                .filter_map(|s| Some((s.metadata.name.clone()?, s.clone())))
                .collect(),
            dir: root.join("pods").join(&name),
            claims_dir: root.join("claims"),
            image_bin: image_bin.to_path_buf(),
            running: Vec::new(),
        })
    }

    /// Starts the pod as the kubelet would: regular init containers run to completion,
    /// native sidecars start and must pass their startup probe, then every container starts.
    pub fn start(&mut self, timeout: Duration) -> Result<(), Error> {
        self.stop();
        let volumes = Volumes::prepare(
            &self.id.name,
            &self.spec,
            &self.claim_templates,
            &self.secrets,
            &self.dir,
            &self.claims_dir,
        )?;
        for c in self.spec.init_containers.clone().unwrap_or_default() {
            let mut child = self.spawn(&c, &volumes)?;
            if c.restart_policy.as_deref() == Some("Always") {
                self.running.push((c.name.clone(), child));
                if let Some(probe) = &c.startup_probe {
                    self.await_probe(&c, probe, "startup", timeout)?;
                }
            } else {
                let status = child
                    .wait()
                    .map_err(|e| Error::io(format!("waiting for {}", c.name), e))?;
                if !status.success() {
                    return Err(Error::Spec(format!(
                        "init container {} of {} failed ({status}):\n{}",
                        c.name,
                        self.id.name,
                        self.log_tail(&c.name)
                    )));
                }
            }
        }
        for c in self.spec.containers.clone() {
            let child = self.spawn(&c, &volumes)?;
            self.running.push((c.name.clone(), child));
        }
        Ok(())
    }

    /// Waits until container `name` passes its readiness probe.
    pub fn wait_ready(&mut self, name: &str, timeout: Duration) -> Result<(), Error> {
        let c = self
            .container(name)
            .ok_or_else(|| Error::Spec(format!("{} has no container {name}", self.id.name)))?;
        let probe = c
            .readiness_probe
            .clone()
            .ok_or_else(|| Error::Spec(format!("container {name} has no readiness probe")))?;
        self.await_probe(&c, &probe, "readiness", timeout)
    }

    /// Whether container `name` is still running.
    pub fn is_running(&mut self, name: &str) -> bool {
        self.running
            .iter_mut()
            .any(|(n, child)| n == name && matches!(child.try_wait(), Ok(None)))
    }

    /// Where container `name`'s output goes (kept across restarts).
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// The last lines container `name` wrote, for error messages.
    pub fn log_tail(&self, name: &str) -> String {
        let path = self.log_path(name);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        format!("{} (last lines):\n{tail}", path.display())
    }

    /// Kills every container at once (SIGKILL), as losing the node would.
    pub fn stop(&mut self) {
        for (_, mut child) in self.running.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn container(&self, name: &str) -> Option<Container> {
        self.spec
            .containers
            .iter()
            .chain(self.spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .cloned()
    }

    fn await_probe(
        &mut self,
        c: &Container,
        probe: &Probe,
        kind: &str,
        timeout: Duration,
    ) -> Result<(), Error> {
        let url = self.http_probe_url(c, probe)?;
        let deadline = Instant::now() + timeout;
        loop {
            if http_get(&url, Duration::from_secs(2)).is_some_and(|(s, _)| (200..400).contains(&s))
            {
                return Ok(());
            }
            if !self.is_running(&c.name) {
                return Err(Error::Spec(format!(
                    "container {} of {} exited before its {kind} probe passed:\n{}",
                    c.name,
                    self.id.name,
                    self.log_tail(&c.name)
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "{kind} probe {url} of {} did not pass in {timeout:?}:\n{}",
                    self.id.name,
                    self.log_tail(&c.name)
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn http_probe_url(&self, c: &Container, probe: &Probe) -> Result<String, Error> {
        let get = probe
            .http_get
            .as_ref()
            .ok_or_else(|| Error::Spec(format!("container {}: only HTTP probes", c.name)))?;
        if get.scheme.as_deref().is_some_and(|s| s != "HTTP") {
            return Err(Error::Spec(format!(
                "container {}: only HTTP probes",
                c.name
            )));
        }
        let port = match &get.port {
            IntOrString::Int(p) => *p,
            IntOrString::String(named) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(named))
                .map(|p| p.container_port)
                .ok_or_else(|| Error::Spec(format!("container {}: no port {named}", c.name)))?,
        };
        let path = get.path.as_deref().unwrap_or("/");
        Ok(format!("http://{}:{port}{path}", self.host.ip))
    }

    fn spawn(&self, c: &Container, volumes: &Volumes) -> Result<Child, Error> {
        let env = self.environment(c)?;
        let argv: Vec<String> = c
            .command
            .iter()
            .flatten()
            .chain(c.args.iter().flatten())
            .map(|a| expand(a, &env))
            .collect();
        if argv.is_empty() {
            return Err(Error::Spec(format!("container {}: no command", c.name)));
        }
        let script = self.launch_script(c, volumes, &env, &argv)?;
        let log = self.log_path(&c.name);
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| Error::io(format!("opening {}", log.display()), e))
        };
        let mut cmd = self.host.command("unshare");
        cmd.args(["--uts", "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(open()?)
            .stderr(open()?);
        cmd.spawn()
            .map_err(|e| Error::io(format!("starting container {}", c.name), e))
    }

    /// The shell that sets the container up inside its namespaces and then becomes it.
    fn launch_script(
        &self,
        c: &Container,
        volumes: &Volumes,
        env: &[(String, String)],
        argv: &[String],
    ) -> Result<String, Error> {
        let mut s = format!("set -e\nhostname {}\n", sh_quote(&self.id.name));
        // The image's programs, mounted before the volumes can hide where they are.
        let bin = sh_quote(&self.image_bin.display().to_string());
        s.push_str(&format!(
            "mount --bind {bin} {IMAGE_BIN}\nmount -o remount,bind,ro {IMAGE_BIN}\n"
        ));
        for m in c.volume_mounts.iter().flatten() {
            let source = volumes.path(&m.name).ok_or_else(|| {
                Error::Spec(format!("container {}: no volume {}", c.name, m.name))
            })?;
            // The mount point must exist; it is created on the machine, empty.
            std::fs::create_dir_all(&m.mount_path)
                .map_err(|e| Error::io(format!("creating mount point {}", m.mount_path), e))?;
            let (src, dst) = (
                sh_quote(&source.display().to_string()),
                sh_quote(&m.mount_path),
            );
            s.push_str(&format!("mount --bind {src} {dst}\n"));
            if m.read_only == Some(true) {
                s.push_str(&format!("mount -o remount,bind,ro {dst}\n"));
            }
        }
        s.push_str("exec ");
        if let Some((uid, gid, groups)) = identity(self.spec.security_context.as_ref(), c) {
            s.push_str(&format!(
                "setpriv --reuid={uid} --regid={gid} --groups={groups} --inh-caps=-all -- "
            ));
        }
        s.push_str("env -i");
        for (k, v) in env {
            s.push_str(&format!(" {}", sh_quote(&format!("{k}={v}"))));
        }
        for a in argv {
            s.push(' ');
            s.push_str(&sh_quote(a));
        }
        s.push('\n');
        Ok(s)
    }

    /// The container's environment in order, `PATH` first; later values may use earlier
    /// ones through `$(NAME)`.
    fn environment(&self, c: &Container) -> Result<Vec<(String, String)>, Error> {
        let mut env = vec![
            ("PATH".to_string(), IMAGE_PATH.to_string()),
            ("HOSTNAME".to_string(), self.id.name.clone()),
        ];
        for var in c.env.iter().flatten() {
            let value = match (&var.value, &var.value_from) {
                (Some(v), _) => expand(v, &env),
                (None, Some(from)) => {
                    let field = from.field_ref.as_ref().ok_or_else(|| {
                        Error::Spec(format!("env {}: only fieldRef is supported", var.name))
                    })?;
                    self.field(&field.field_path)?
                }
                (None, None) => String::new(),
            };
            env.push((var.name.clone(), value));
        }
        Ok(env)
    }

    /// The downward API.
    fn field(&self, path: &str) -> Result<String, Error> {
        Ok(match path {
            "metadata.name" => self.id.name.clone(),
            "metadata.namespace" => self.id.namespace.clone(),
            "status.podIP" => self.host.ip.to_string(),
            "spec.nodeName" => format!("node-{}", self.id.name),
            other => return Err(Error::Spec(format!("fieldRef {other} is not supported"))),
        })
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `(uid, gid, supplementary groups)` to run as; `None`: as root.
fn identity(pod: Option<&PodSecurityContext>, c: &Container) -> Option<(i64, i64, String)> {
    let own = c.security_context.as_ref();
    let uid = own
        .and_then(|s| s.run_as_user)
        .or(pod.and_then(|p| p.run_as_user))?;
    let gid = own
        .and_then(|s| s.run_as_group)
        .or(pod.and_then(|p| p.run_as_group))
        .unwrap_or(uid);
    let groups = pod
        .and_then(|p| p.fs_group)
        .map_or(gid.to_string(), |g| g.to_string());
    Some((uid, gid, groups))
}

/// The kubelet's `$(NAME)` expansion: known names are replaced, `$$` escapes, anything
/// else stays as written.
pub(crate) fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match env.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn expansion_follows_the_kubelet() {
        let env = vec![("POD_NAME".to_string(), "main-1".to_string())];
        assert_eq!(expand("--name=$(POD_NAME)", &env), "--name=main-1");
        assert_eq!(expand("$(OTHER)/x", &env), "$(OTHER)/x");
        assert_eq!(expand("$$(POD_NAME)", &env), "$(POD_NAME)");
        assert_eq!(expand("cost $5 $(", &env), "cost $5 $(");
    }
}
