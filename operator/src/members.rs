//! What the members say about themselves: membership, leader, health.
//!
//! The controller asks through [`MemberStatusSource`], so the decisions built on the answer
//! can be tested with a hand-written view of a cluster. [`EtcdMembers`] is the real source:
//! it dials every member's client URL over TLS with the operator's client certificate and
//! uses the etcd v3 API (`Maintenance.Status`, `Cluster.MemberList`), so it works the same
//! against Ballast and against etcd.

use std::time::Duration;

use ballast_proto::etcdserverpb::cluster_client::ClusterClient;
use ballast_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use ballast_proto::etcdserverpb::{
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    MoveLeaderRequest, StatusRequest,
};
use futures::future::BoxFuture;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error::Error;
use crate::member_identity::{Grant, Report};

/// Where the members are and the credentials to ask them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `(member name, client URL)` of every member the operator expects.
    pub endpoints: Vec<(String, String)>,
    /// CA that signed the members' server certificates.
    pub ca_pem: String,
    /// Client certificate of the operator.
    pub cert_pem: String,
    /// Its key.
    pub key_pem: String,
}

/// One member as the cluster reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedMember {
    /// Raft member ID.
    pub id: u64,
    /// Member name (empty until a newly added member has started).
    pub name: String,
    /// Non-voting learner.
    pub learner: bool,
    /// Where its peers reach it; names the pod it runs in.
    pub peer_urls: Vec<String>,
    /// Answered `Status` and knows a leader. An alarm does not make a member unhealthy:
    /// it is reported as itself.
    pub healthy: bool,
    /// Alarms the member reported in `Status`, as etcd writes them
    /// (`memberID:<id> alarm:NOSPACE`); every member reports the whole cluster's.
    pub alarms: Vec<String>,
    /// Answered `Status` at all (a member of a cluster without quorum still does).
    pub answered: bool,
    /// Its applied Raft index, when it answered: after a loss of quorum, the member that
    /// applied the most is the one to recover from.
    pub applied_index: u64,
}

/// The cluster as its members describe it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Cluster ID from the response headers.
    pub cluster_id: Option<u64>,
    /// Leader's member ID, if a member that answered knows one.
    pub leader: Option<u64>,
    /// Members from `MemberList`, with health from each one's own `Status`.
    pub members: Vec<ObservedMember>,
    /// `(member name, cluster ID)` of every member that answered `Status`, as the operator
    /// named it: members of one cluster all give the same ID, so two IDs mean two clusters
    /// behind one Service (a split brain) and must never be reported healthy.
    pub cluster_ids: Vec<(String, u64)>,
}

/// A change of membership, as etcdctl's `member` commands make them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// `member add --learner --peer-urls=URL`.
    AddLearner {
        /// The new member's peer URL.
        peer_url: String,
    },
    /// `member promote ID`.
    Promote {
        /// The learner.
        id: u64,
    },
    /// `member remove ID`.
    Remove {
        /// The member.
        id: u64,
    },
    /// `move-leader ID`, sent to the current leader at `leader_url`.
    MoveLeader {
        /// The current leader's client URL.
        leader_url: String,
        /// The member to lead next.
        to: u64,
    },
}

/// Source of [`ClusterView`]s, and the way membership is changed. Implemented by
/// [`EtcdMembers`]; tests implement it with fixed views to drive the controller.
pub trait MemberStatusSource: Send + Sync + 'static {
    /// Asks the members of `target`. An error means no member answered.
    fn observe<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<ClusterView, Error>>;

    /// Makes `change` through the first member of `target` that takes the request.
    fn change<'a>(
        &'a self,
        target: &'a Target,
        change: &'a MembershipChange,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// What the sidecar of the pod at `pod_ip` says about its member's start
    /// (`/bootstrap`): `None` when it does not answer.
    fn sidecar_bootstrap<'a>(&'a self, pod_ip: &'a str) -> BoxFuture<'a, Option<String>>;

    /// The member key and certificates the sidecar of the pod at `pod_ip` shows
    /// (`/identity`): `None` when it does not answer.
    fn sidecar_identity<'a>(&'a self, pod_ip: &'a str) -> BoxFuture<'a, Option<Report>>;

    /// Hands the sidecar of the pod at `pod_ip` certificates signed for its key.
    fn install_identity<'a>(
        &'a self,
        pod_ip: &'a str,
        grant: &'a Grant,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// Talks to members with the etcd v3 gRPC API over mutual TLS.
#[derive(Clone, Debug)]
pub struct EtcdMembers {
    /// Limit for connecting to and hearing from one member.
    pub timeout: Duration,
}

impl Default for EtcdMembers {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(3),
        }
    }
}

struct MemberAnswer {
    member_id: u64,
    cluster_id: u64,
    leader: u64,
    healthy: bool,
    alarms: Vec<String>,
    applied_index: u64,
    channel: Channel,
}

impl EtcdMembers {
    async fn channel(&self, target: &Target, url: &str) -> Result<Channel, Error> {
        let host = url
            .strip_prefix("https://")
            .and_then(|rest| rest.rsplit_once(':').map(|(h, _)| h))
            .ok_or_else(|| Error::Members(format!("{url} is not an https URL with a port")))?;
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&target.ca_pem))
            .identity(Identity::from_pem(&target.cert_pem, &target.key_pem))
            .domain_name(host.to_string());
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| Error::Members(format!("{url}: {e}")))?
            .tls_config(tls)
            .map_err(|e| Error::Members(format!("{url}: {e}")))?
            .connect_timeout(self.timeout)
            .timeout(self.timeout);
        endpoint
            .connect()
            .await
            .map_err(|e| Error::Members(format!("{url}: {e}")))
    }

    async fn status(&self, target: &Target, url: &str) -> Result<MemberAnswer, Error> {
        let channel = self.channel(target, url).await?;
        let resp = MaintenanceClient::new(channel.clone())
            .status(StatusRequest {})
            .await
            .map_err(|e| Error::Members(format!("{url}: {}", e.message())))?
            .into_inner();
        let header = resp.header.unwrap_or_default();
        Ok(MemberAnswer {
            member_id: header.member_id,
            cluster_id: header.cluster_id,
            leader: resp.leader,
            healthy: resp.leader != 0,
            alarms: resp.errors.iter().map(|e| e.trim().to_string()).collect(),
            applied_index: resp.raft_applied_index,
            channel,
        })
    }
}

impl MemberStatusSource for EtcdMembers {
    fn observe<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<ClusterView, Error>> {
        Box::pin(async move {
            let answers = futures::future::join_all(
                target
                    .endpoints
                    .iter()
                    .map(|(_, url)| self.status(target, url)),
            )
            .await;
            let mut errors = Vec::new();
            let mut ok = Vec::new();
            let mut cluster_ids = Vec::new();
            for ((name, _), answer) in target.endpoints.iter().zip(answers) {
                match answer {
                    Ok(a) => {
                        cluster_ids.push((name.clone(), a.cluster_id));
                        ok.push(a);
                    }
                    Err(Error::Members(e)) => errors.push(e),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            // Ask the leader for the membership: a follower that lags may not list a member
            // just added yet (which would read as a pod the cluster does not know).
            let Some(first) = ok
                .iter()
                .find(|a| a.healthy && a.member_id == a.leader)
                .or_else(|| ok.iter().find(|a| a.healthy))
                .or_else(|| ok.first())
            else {
                return Err(Error::Members(errors.join("; ")));
            };
            let list = ClusterClient::new(first.channel.clone())
                .member_list(MemberListRequest {
                    linearizable: false,
                })
                .await
                .map_err(|e| Error::Members(e.message().to_string()))?
                .into_inner();
            let members = list
                .members
                .into_iter()
                .map(|m| ObservedMember {
                    id: m.id,
                    healthy: ok.iter().any(|a| a.member_id == m.id && a.healthy),
                    alarms: ok
                        .iter()
                        .find(|a| a.member_id == m.id)
                        .map(|a| a.alarms.clone())
                        .unwrap_or_default(),
                    answered: ok.iter().any(|a| a.member_id == m.id),
                    applied_index: ok
                        .iter()
                        .find(|a| a.member_id == m.id)
                        .map_or(0, |a| a.applied_index),
                    name: m.name,
                    learner: m.is_learner,
                    peer_urls: m.peer_ur_ls,
                })
                .collect();
            Ok(ClusterView {
                cluster_id: Some(first.cluster_id),
                leader: ok.iter().map(|a| a.leader).find(|l| *l != 0),
                members,
                cluster_ids,
            })
        })
    }

    fn change<'a>(
        &'a self,
        target: &'a Target,
        change: &'a MembershipChange,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let urls: Vec<&str> = match change {
                MembershipChange::MoveLeader { leader_url, .. } => vec![leader_url.as_str()],
                _ => target.endpoints.iter().map(|(_, u)| u.as_str()).collect(),
            };
            let mut last = Error::Members("no member to ask".into());
            for url in urls {
                let channel = match self.channel(target, url).await {
                    Ok(c) => c,
                    Err(e) => {
                        last = e;
                        continue;
                    }
                };
                let answer = match change {
                    MembershipChange::AddLearner { peer_url } => ClusterClient::new(channel)
                        .member_add(MemberAddRequest {
                            peer_ur_ls: vec![peer_url.clone()],
                            is_learner: true,
                        })
                        .await
                        .map(|_| ()),
                    MembershipChange::Promote { id } => ClusterClient::new(channel)
                        .member_promote(MemberPromoteRequest { id: *id })
                        .await
                        .map(|_| ()),
                    MembershipChange::Remove { id } => ClusterClient::new(channel)
                        .member_remove(MemberRemoveRequest { id: *id })
                        .await
                        .map(|_| ()),
                    MembershipChange::MoveLeader { to, .. } => MaintenanceClient::new(channel)
                        .move_leader(MoveLeaderRequest { target_id: *to })
                        .await
                        .map(|_| ()),
                };
                // The member answered: its verdict stands, asking another would repeat it.
                return answer.map_err(|s| Error::Members(format!("{url}: {}", s.message())));
            }
            Err(last)
        })
    }

    fn sidecar_bootstrap<'a>(&'a self, pod_ip: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            let fetch = crate::sidecar_client::get(pod_ip, "/bootstrap");
            tokio::time::timeout(self.timeout, fetch).await.ok()?.ok()
        })
    }

    fn sidecar_identity<'a>(&'a self, pod_ip: &'a str) -> BoxFuture<'a, Option<Report>> {
        Box::pin(async move {
            let fetch = crate::sidecar_client::get(pod_ip, "/identity");
            let body = tokio::time::timeout(self.timeout, fetch).await.ok()?.ok()?;
            serde_json::from_str(&body).ok()
        })
    }

    fn install_identity<'a>(
        &'a self,
        pod_ip: &'a str,
        grant: &'a Grant,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let body = serde_json::to_string(grant)
                .map_err(|e| Error::Members(format!("encoding certificates: {e}")))?;
            let put = crate::sidecar_client::put_json(pod_ip, "/identity", body);
            tokio::time::timeout(self.timeout, put)
                .await
                .map_err(|_| Error::Members(format!("sidecar at {pod_ip}: timed out")))?
                .map(|_| ())
        })
    }
}
