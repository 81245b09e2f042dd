//! Bootstrapping a new cluster from `--initial-cluster` (etcd's
//! `bootstrapNewClusterNoWAL`).

use super::identity::{self, Identity};
use super::{DataDir, Opened};
use crate::cluster::{ConfChangeContext, Member};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::raft::{ids, node};

/// Takes this member's and the cluster's IDs from `--initial-cluster`, and starts
/// the log with the whole initial configuration.
pub(super) fn new_cluster(cfg: &Config, data: &DataDir<'_>) -> Result<Opened> {
    let initial = initial_members(cfg);
    let me = initial.iter().find(|m| m.name == cfg.name).ok_or_else(|| {
        Error::Other(format!(
            "couldn't find local name \"{}\" in the initial cluster configuration",
            cfg.name
        ))
    })?;
    let member_id = me.id;
    let cluster_id = ids::cluster_id(&initial.iter().map(|m| m.id).collect::<Vec<_>>());
    let initial_conf = raft::prelude::ConfState {
        voters: initial.iter().map(|m| m.id).collect(),
        ..Default::default()
    };
    let contexts = ConfChangeContext::bootstrap(&initial)?;
    let identity = Identity {
        member_id,
        cluster_id,
        members: initial,
        conf_state: Some(initial_conf),
    };
    identity::write_identity_and_wal(data, identity, |wal| node::bootstrap(wal, &contexts))
}

/// The members named by --initial-cluster, with etcd's IDs.
pub fn initial_members(cfg: &Config) -> Vec<Member> {
    let mut by_name: Vec<(String, Vec<url::Url>)> = Vec::new();
    for (name, url) in &cfg.initial_cluster {
        match by_name.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.push(url.clone()),
            None => by_name.push((name.clone(), vec![url.clone()])),
        }
    }
    by_name
        .into_iter()
        .map(|(name, urls)| Member {
            id: ids::member_id(&urls, &cfg.initial_cluster_token),
            name,
            peer_urls: urls.iter().map(ids::url_string).collect(),
            client_urls: Vec::new(),
            is_learner: false,
        })
        .collect()
}
