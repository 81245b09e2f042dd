//! The new cluster a restored member belongs to, from `snapshot restore
//! --name --initial-cluster --initial-cluster-token --initial-advertise-peer-urls`.
//!
//! As with etcdutl, the restored data dir then carries the member's identity
//! (member and cluster IDs derived from those flags, the member list, and a
//! WAL holding the bootstrap configuration), so the member starts into that
//! new cluster whatever its own start flags say: its `--initial-cluster-token`
//! and `--initial-cluster-state` are ignored as for any member with a WAL,
//! and the new token gives the restored cluster a new ID.

use std::path::Path;

use url::Url;

use crate::cluster::{ConfChangeContext, Member, Members};
use crate::error::{Error, Result};
use crate::mvcc::backend::{self, meta, Backend, META};
use crate::raft::ids;
use crate::raft::node;
use crate::raft::wal::Wal;

/// The restore flags that name the new cluster.
#[derive(Clone, Debug)]
pub struct NewCluster {
    /// `--name`: this member, which must be in `--initial-cluster`.
    pub name: String,
    /// `--initial-cluster`: `name=peer-url,...`.
    pub initial_cluster: String,
    /// `--initial-cluster-token`.
    pub token: String,
    /// `--initial-advertise-peer-urls`, when given: must be this member's URLs in `--initial-cluster`.
    pub advertise_peer_urls: Option<String>,
}

impl NewCluster {
    /// The members with their IDs, checked as etcd checks a bootstrap configuration.
    pub fn members(&self) -> Result<Vec<Member>> {
        let mut by_name: Vec<(String, Vec<Url>)> = Vec::new();
        for part in self.initial_cluster.split(',').filter(|p| !p.is_empty()) {
            let (name, url) = part.split_once('=').ok_or_else(|| {
                Error::Other(format!(
                    "--initial-cluster {:?}: {part:?} is not name=url",
                    self.initial_cluster
                ))
            })?;
            let url = parse_url(url)?;
            match by_name.iter_mut().find(|(n, _)| n == name) {
                Some((_, urls)) => urls.push(url),
                None => by_name.push((name.to_string(), vec![url])),
            }
        }
        let mut all: Vec<String> = by_name
            .iter()
            .flat_map(|(_, urls)| urls.iter().map(ids::url_string))
            .collect();
        all.sort();
        if all.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::Other(format!(
                "initial cluster {} has duplicate url",
                self.initial_cluster
            )));
        }
        let Some((_, mine)) = by_name.iter().find(|(n, _)| *n == self.name) else {
            return Err(Error::Other(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            )));
        };
        if let Some(given) = &self.advertise_peer_urls {
            let given = given
                .split(',')
                .filter(|u| !u.is_empty())
                .map(|u| parse_url(u).map(|u| ids::url_string(&u)))
                .collect::<Result<Vec<_>>>()?;
            let mine: Vec<String> = mine.iter().map(ids::url_string).collect();
            check_advertised(&self.name, &mine, &given)?;
        }
        Ok(by_name
            .into_iter()
            .map(|(name, urls)| Member {
                id: ids::member_id(&urls, &self.token),
                name,
                peer_urls: urls.iter().map(ids::url_string).collect(),
                client_urls: Vec::new(),
                is_learner: false,
            })
            .collect())
    }

    /// Records the identity in the restored database and writes the bootstrap WAL at `wal_dir`
    /// (which must not exist), as a member bootstrapping this cluster would at its first start.
    pub fn write(&self, backend: &Backend, wal_dir: &Path) -> Result<()> {
        let initial = self.members()?;
        let me = initial
            .iter()
            .find(|m| m.name == self.name)
            .expect("members() checked that the name is in the cluster");
        let member_ids: Vec<u64> = initial.iter().map(|m| m.id).collect();
        let conf = raft::prelude::ConfState {
            voters: member_ids.clone(),
            ..Default::default()
        };
        let txn = backend.write(true)?;
        {
            let mut m = txn.open_table(META)?;
            backend::put_u64(&mut m, meta::MEMBER_ID, me.id)?;
            backend::put_u64(&mut m, meta::CLUSTER_ID, ids::cluster_id(&member_ids))?;
            backend::put_u64(&mut m, meta::APPLIED_INDEX, 0)?;
            backend::put_conf_state(&mut m, &conf)?;
        }
        txn.commit()?;
        Members::load(backend)?.save(backend, initial.clone())?;

        let contexts = ConfChangeContext::bootstrap(&initial)?;
        let mut wal = Wal::create(wal_dir)?;
        node::bootstrap(&mut wal, &contexts)?;
        drop(wal);
        backend::sync_dir(wal_dir)
    }
}

/// etcd's check that `--initial-advertise-peer-urls` are this member's URLs in
/// `--initial-cluster`, with its messages (URLs are compared as written: Ballast does not
/// resolve host names here).
fn check_advertised(name: &str, mine: &[String], advertised: &[String]) -> Result<()> {
    let (mut want, mut have) = (mine.to_vec(), advertised.to_vec());
    want.sort();
    have.sort();
    if want == have {
        return Ok(());
    }
    let go_list = |l: &[String]| {
        let quoted: Vec<String> = l.iter().map(|u| format!("{u:?}")).collect();
        format!("[{}]", quoted.join(" "))
    };
    let why = if have.len() != want.len() {
        format!("len({}) != len({})", go_list(&have), go_list(&want))
    } else {
        let (a, b) = have
            .iter()
            .zip(&want)
            .find(|(a, b)| a != b)
            .expect("sorted lists of one length that differ");
        format!("resolved urls: {a:?} != {b:?}")
    };
    let missing: Vec<String> = want
        .iter()
        .filter(|u| !have.contains(u))
        .map(|u| format!("{name}={u}"))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Other(format!(
            "--initial-cluster has {} but missing from --initial-advertise-peer-urls={} ({why})",
            missing.join(","),
            have.join(",")
        )));
    }
    let extra: Vec<&String> = have.iter().filter(|u| !want.contains(u)).collect();
    // etcd names the advertised URLs here, under this member's name.
    let cluster: Vec<String> = have.iter().map(|u| format!("{name}={u}")).collect();
    Err(Error::Other(format!(
        "--initial-advertise-peer-urls has {} but missing from --initial-cluster={}",
        extra
            .iter()
            .map(|u| u.as_str())
            .collect::<Vec<_>>()
            .join(","),
        cluster.join(",")
    )))
}

fn parse_url(s: &str) -> Result<Url> {
    Url::parse(s).map_err(|e| Error::Other(format!("invalid URL {s:?}: {e}")))
}
