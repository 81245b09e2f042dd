//! One member: a `ballast` process in its own network namespace, with a data directory
//! that outlives the process so it can be restarted after a crash.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ballast_e2e::Host;

use super::volume::Volume;
use crate::Error;

/// Client and peer ports inside each member's namespace (each has its own address).
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

/// Raft timing: short, so elections after a fault take well under a second.
pub const HEARTBEAT_MS: u64 = 50;
pub const ELECTION_MS: u64 = 500;

#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub host: Host,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// Raft member ID, learned from Maintenance Status once the cluster is up.
    pub id: u64,
    child: Option<Child>,
    stopped: bool,
    /// Whether the host's link to the bridge is cut.
    pub cut_off: bool,
    /// The data directory's own tmpfs, if the scenario fills volumes; dropped (unmounted)
    /// after `Drop` has killed the member.
    pub volume: Option<Volume>,
}

impl Member {
    pub fn new(name: &str, host: Host, root: &Path) -> Member {
        Member {
            name: name.to_string(),
            host,
            data_dir: root.join(name),
            log_path: root.join(format!("{name}.log")),
            id: 0,
            child: None,
            stopped: false,
            cut_off: false,
            volume: None,
        }
    }

    /// Puts the data directory on a tmpfs of `size` bytes (before the first start).
    pub fn mount_volume(&mut self, size: u64) -> Result<(), Error> {
        self.volume = Some(Volume::mount(&self.data_dir, size)?);
        Ok(())
    }

    pub fn client_url(&self) -> String {
        format!("http://{}:{CLIENT_PORT}", self.host.ip)
    }

    pub fn peer_url(&self) -> String {
        format!("http://{}:{PEER_PORT}", self.host.ip)
    }

    /// The WAL directory (`<data-dir>/member/wal`, as etcd lays it out).
    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("member").join("wal")
    }

    /// Starts the server; on a data directory that exists it restarts from it (the
    /// bootstrap flags are then ignored, as etcd does).
    pub fn start(&mut self, binary: &Path, initial_cluster: &str) -> Result<(), Error> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| Error::io(format!("opening {}", self.log_path.display()), e))?;
        let client = self.client_url();
        let peer = self.peer_url();
        let mut cmd: Command = self.host.command(&binary.to_string_lossy());
        cmd.args(["--name", &self.name, "--data-dir"])
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "robustness"])
            .args(["--heartbeat-interval", &HEARTBEAT_MS.to_string()])
            .args(["--election-timeout", &ELECTION_MS.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // `ip netns exec` execs the program in place, so the child's pid is the server's
        // and signals reach it directly.
        let child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("starting {}", self.name), e))?;
        self.child = Some(child);
        self.stopped = false;
        Ok(())
    }

    /// SIGKILL and reap: the server gets no chance to flush or sync anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stopped = false;
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn pause(&mut self, stop: bool) -> Result<(), Error> {
        let Some(c) = &self.child else {
            return Err(Error::Cluster(format!("{} is not running", self.name)));
        };
        let sig = if stop { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([sig, &c.id().to_string()])
            .status()
            .map_err(|e| Error::io("running kill", e))?;
        if !status.success() {
            return Err(Error::Cluster(format!("kill {sig} {} failed", self.name)));
        }
        self.stopped = stop;
        Ok(())
    }

    pub fn is_paused(&self) -> bool {
        self.stopped
    }

    /// Whether the process is alive (a member that exited on its own is reaped here).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => match c.try_wait() {
                Ok(None) => true,
                _ => {
                    self.child = None;
                    false
                }
            },
            None => false,
        }
    }

    /// The last lines of the member's log, for a report.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if self.stopped {
            let _ = self.pause(false);
        }
        self.kill();
    }
}
