//! A real 3-member Ballast cluster for the run: each member its own network namespace on a
//! private bridge (so a partition is one link going down), clients on the host side of the
//! bridge, data directories under the run's directory so members restart where they
//! crashed.

mod binary;
mod member;
mod volume;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ballast_e2e::Network;
use etcd_client::{Client, ConnectOptions};

pub use binary::{ballast_binary, BINARY_ENV};
pub use member::{Member, ELECTION_MS, HEARTBEAT_MS};
pub use volume::Volume;

use crate::Error;

/// Members of the cluster.
pub const SIZE: usize = 3;

/// How long a member may take to start and join, or the cluster to elect a leader, before
/// the run gives up on it (generous: a debug build on a busy machine).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// How long a status probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Cluster {
    // Dropped after the members: their namespaces go with the network.
    pub members: Vec<Member>,
    net: Network,
    binary: PathBuf,
    initial_cluster: String,
}

impl Cluster {
    /// Creates the bridge and namespaces and starts every member; returns once all of them
    /// serve and agree on a leader. `tag` (at most 6 letters or digits) and `subnet` keep
    /// concurrent runs apart. With `volume_size`, each member's data directory is a tmpfs
    /// of that size (for the disk-full fault).
    pub async fn start(
        binary: &Path,
        root: &Path,
        tag: &str,
        subnet: [u8; 3],
        volume_size: Option<u64>,
    ) -> Result<Cluster, Error> {
        let mut net = Network::create(tag, subnet)?;
        let mut members = Vec::new();
        for i in 0..SIZE {
            let name = format!("m{i}");
            let host = net.add_host(&name)?;
            let mut member = Member::new(&name, host, root);
            if let Some(size) = volume_size {
                member.mount_volume(size)?;
            }
            members.push(member);
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            members,
            net,
            binary: binary.to_path_buf(),
            initial_cluster,
        };
        for i in 0..SIZE {
            cluster.start_member(i)?;
        }
        cluster.wait_all_healthy().await?;
        for i in 0..SIZE {
            let status = cluster.status(i).await?;
            cluster.members[i].id = status.0;
        }
        Ok(cluster)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    pub fn start_member(&mut self, i: usize) -> Result<(), Error> {
        let (binary, initial) = (self.binary.clone(), self.initial_cluster.clone());
        self.members[i].start(&binary, &initial)
    }

    pub fn kill_member(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Cuts the member's host off the bridge (`false`) or plugs it back (`true`).
    pub fn set_link(&mut self, i: usize, up: bool) -> Result<(), Error> {
        self.net.set_link(&self.members[i].host, up)?;
        self.members[i].cut_off = !up;
        Ok(())
    }

    /// Undoes every fault still in effect: links up, stopped members continued, dead
    /// members started.
    pub fn heal_all(&mut self) -> Result<(), Error> {
        for i in 0..SIZE {
            if self.members[i].cut_off {
                self.set_link(i, true)?;
            }
            if self.members[i].is_paused() {
                self.members[i].pause(false)?;
            }
            if !self.members[i].is_running() {
                self.start_member(i)?;
            }
        }
        Ok(())
    }

    /// Member `i`'s own ID and the leader it knows of (0: none), from Maintenance Status.
    pub async fn status(&self, i: usize) -> Result<(u64, u64), Error> {
        let url = self.members[i].client_url();
        let probe = async {
            let mut c = connect(&url).await?;
            c.status()
                .await
                .map_err(|e| Error::client(format!("status of {url}"), e))
        };
        let s = tokio::time::timeout(PROBE_TIMEOUT, probe)
            .await
            .map_err(|_| Error::Cluster(format!("status of {url} timed out")))??;
        let id = s.header().map(|h| h.member_id()).unwrap_or_default();
        Ok((id, s.leader()))
    }

    /// The index of the member every reachable member names as leader, if they agree.
    pub async fn leader(&self) -> Option<usize> {
        let mut named = None;
        for i in 0..SIZE {
            if self.members[i].cut_off || self.members[i].is_paused() {
                continue;
            }
            let Ok((_, leader)) = self.status(i).await else {
                continue;
            };
            if leader == 0 || named.is_some_and(|l| l != leader) {
                return None;
            }
            named = Some(leader);
        }
        let leader = named?;
        self.members.iter().position(|m| m.id == leader)
    }

    /// Waits until some member is leader and every member answers Status naming it.
    pub async fn wait_all_healthy(&mut self) -> Result<usize, Error> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            for i in 0..SIZE {
                if !self.members[i].is_running() {
                    return Err(self.member_down(i));
                }
            }
            if let Some(leader) = self.agreed_leader().await {
                return Ok(leader);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Cluster(format!(
                    "no agreed leader among all {SIZE} members within {DEADLINE:?}; logs:\n{}",
                    self.log_tails()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn agreed_leader(&self) -> Option<usize> {
        let mut leaders = Vec::new();
        for i in 0..SIZE {
            let (_, leader) = self.status(i).await.ok()?;
            leaders.push(leader);
        }
        let first = *leaders.first()?;
        if first == 0 || leaders.iter().any(|&l| l != first) {
            return None;
        }
        let by_id = self.members.iter().position(|m| m.id == first);
        // Before IDs are known (at start), any agreed leader will do.
        Some(by_id.unwrap_or(0))
    }

    fn member_down(&self, i: usize) -> Error {
        let m = &self.members[i];
        Error::Cluster(format!(
            "member {} exited; the end of its log ({}):\n{}",
            m.name,
            m.log_path.display(),
            m.log_tail(30)
        ))
    }

    /// Every member's last log lines.
    pub fn log_tails(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("--- {} ---\n{}", m.name, m.log_tail(15)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A client of one endpoint. Calls get no timeout here: callers wrap each call in their
/// own, so that a call to an unreachable member ends as an error instead of hanging.
pub async fn connect(url: &str) -> Result<Client, Error> {
    let options = ConnectOptions::new()
        .with_connect_timeout(PROBE_TIMEOUT)
        .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2));
    Client::connect([url], Some(options))
        .await
        .map_err(|e| Error::client(format!("connecting to {url}"), e))
}
