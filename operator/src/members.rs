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
use ballast_proto::etcdserverpb::{MemberListRequest, StatusRequest};
use futures::future::BoxFuture;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error::Error;

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
    /// Answered `Status` without errors and with a leader.
    pub healthy: bool,
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

/// Source of [`ClusterView`]s. Implemented by [`EtcdMembers`]; tests implement it with
/// fixed views to drive the status logic.
pub trait MemberStatusSource: Send + Sync + 'static {
    /// Asks the members of `target`. An error means no member answered.
    fn observe<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<ClusterView, Error>>;
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
            healthy: resp.errors.is_empty() && resp.leader != 0,
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
                    Err(e) => errors.push(e.to_string()),
                }
            }
            // Ask a member that knows a leader for the membership: its list is current.
            let Some(first) = ok.iter().find(|a| a.healthy).or_else(|| ok.first()) else {
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
                    name: m.name,
                    learner: m.is_learner,
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
}
