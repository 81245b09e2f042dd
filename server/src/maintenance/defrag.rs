//! Defragmenting the members one at a time, over the network.
//!
//! Every step starts from a fresh look at the whole cluster ([`observe`]) and asks the pure
//! [`plan`](super::plan) what to do: a cluster that became unhealthy halfway stops the run,
//! and a leader that moved is still defragmented last. Members are reached exactly as
//! `ballast backup` reaches them: the server's own TLS dialer fed `--cacert/--cert/--key`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ballast_proto::etcdserverpb::cluster_client::ClusterClient;
use ballast_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use ballast_proto::etcdserverpb::{DefragmentRequest, MemberListRequest, StatusRequest};
use tonic::transport::Channel;

use super::plan::{self, Answer, Listed, Observed, Plan, Probe, Target};
use crate::backup::member::dialer;
use crate::backup::Endpoints;
use crate::error::{Error, Result};
use crate::tls::PeerDialer;

/// How often a defragmented member is asked for its status until it answers.
const POLL: Duration = Duration::from_millis(200);

/// One member defragmented, with its `Status` before and after.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Defragmented {
    pub name: String,
    pub endpoint: String,
    /// `db_size` before and after, in bytes.
    pub before: i64,
    pub after: i64,
    /// `db_size_in_use` after.
    #[serde(skip)]
    pub in_use: i64,
}

/// How a run ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every member, in the order they were defragmented.
    Done(Vec<Defragmented>),
    /// The cluster was not healthy; nothing was touched.
    Skipped(String),
}

/// Checks the cluster, then defragments its members followers first and the leader last;
/// `report` is called after each member. A failure after some members were defragmented
/// says which ones.
pub async fn run(
    endpoints: &Endpoints,
    timeout: Duration,
    mut report: impl FnMut(&Defragmented),
) -> Result<Outcome> {
    let dialer = dialer(endpoints)?;
    let urls = &endpoints.urls;
    let mut look = observe(&dialer, urls, timeout).await;
    // The members planned at the start: once they are done there is nothing to re-check
    // (a leader that just came back from its defragmentation may still be re-elected).
    let mut pending: Vec<u64> = match plan::plan(&look.observed) {
        Plan::Skip(why) => return Ok(Outcome::Skipped(why)),
        Plan::Fail(why) => return Err(Error::Other(why)),
        Plan::Defragment(targets) => targets.iter().map(|t| t.id).collect(),
    };
    let mut done: Vec<Defragmented> = Vec::new();
    let mut done_ids: Vec<u64> = Vec::new();
    loop {
        if pending.is_empty() {
            return Ok(Outcome::Done(done));
        }
        if !done.is_empty() {
            look = observe(&dialer, urls, timeout).await;
        }
        let target = match plan::next(&look.observed, &done_ids) {
            Ok(Some(target)) => target,
            Ok(None) => return Ok(Outcome::Done(done)),
            Err(why) => return Err(stopped(&done, &why)),
        };
        let member = defragment(&dialer, &look, &target, timeout)
            .await
            .map_err(|why| stopped(&done, &why))?;
        report(&member);
        done.push(member);
        done_ids.push(target.id);
        pending.retain(|id| *id != target.id);
    }
}

fn stopped(done: &[Defragmented], why: &str) -> Error {
    let names = if done.is_empty() {
        "no member".to_string()
    } else {
        done.iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Error::Other(format!("stopped after defragmenting {names}: {why}"))
}

/// Defragments one member and waits until it answers `Status` again.
async fn defragment(
    dialer: &PeerDialer,
    look: &Look,
    target: &Target,
    timeout: Duration,
) -> Result<Defragmented, String> {
    let who = format!("{} ({})", target.name, target.endpoint);
    let (Some(channel), Some(before)) = (
        look.channels.get(&target.endpoint),
        look.answer(&target.endpoint),
    ) else {
        return Err(format!("{who} is not connected"));
    };
    let mut client = MaintenanceClient::new(channel.clone());
    let request = client.defragment(DefragmentRequest {});
    tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| format!("defragmenting {who}: no answer within {timeout:?}"))?
        .map_err(|s| format!("defragmenting {who}: {}", one_line(s.message())))?;
    let deadline = Instant::now() + timeout;
    let after = loop {
        match probe(dialer, &target.endpoint, timeout).await.0.answer {
            Ok(after) => break after,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "{who} did not answer Status within {timeout:?} after its defragmentation: {e}"
                ))
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    };
    Ok(Defragmented {
        name: target.name.clone(),
        endpoint: target.endpoint.clone(),
        before: before.db_size,
        after: after.db_size,
        in_use: after.db_size_in_use,
    })
}

/// The cluster as seen at one moment, with a connection to each endpoint that answered.
struct Look {
    observed: Observed,
    channels: HashMap<String, Channel>,
}

impl Look {
    fn answer(&self, endpoint: &str) -> Option<&Answer> {
        self.observed
            .probes
            .iter()
            .find(|p| p.endpoint == endpoint)
            .and_then(|p| p.answer.as_ref().ok())
    }
}

/// Asks every endpoint for its status (all at once: a silent member costs one timeout, not
/// one per endpoint), and the member list from the first one that gives it.
async fn observe(dialer: &PeerDialer, urls: &[String], timeout: Duration) -> Look {
    let probes = futures::future::join_all(urls.iter().map(|u| probe(dialer, u, timeout))).await;
    let mut channels = HashMap::new();
    let mut answered = Vec::new();
    for (probe, channel) in probes {
        if let Some(channel) = channel {
            channels.insert(probe.endpoint.clone(), channel);
        }
        answered.push(probe);
    }
    let mut members = Err("no endpoint answered".to_string());
    let mut problems = Vec::new();
    for probe in &answered {
        let Some(channel) = channels.get(&probe.endpoint) else {
            continue;
        };
        match member_list(channel.clone(), timeout).await {
            Ok(list) => {
                members = Ok(list);
                break;
            }
            Err(e) => {
                problems.push(format!("{}: {e}", probe.endpoint));
                members = Err(problems.join("; "));
            }
        }
    }
    Look {
        observed: Observed {
            probes: answered,
            members,
        },
        channels,
    }
}

/// One endpoint's `Status`, with the channel when it answered.
async fn probe(dialer: &PeerDialer, url: &str, timeout: Duration) -> (Probe, Option<Channel>) {
    let result = async {
        let channel = dialer
            .connect(url, timeout)
            .await
            .map_err(|e| format!("cannot connect: {}", one_line(&e)))?;
        let status = tokio::time::timeout(
            timeout,
            MaintenanceClient::new(channel.clone()).status(StatusRequest {}),
        )
        .await
        .map_err(|_| format!("no answer to Status within {timeout:?}"))?
        .map_err(|s| format!("Status failed: {}", one_line(s.message())))?
        .into_inner();
        let answer = Answer {
            member_id: status.header.as_ref().map_or(0, |h| h.member_id),
            leader: status.leader,
            errors: status.errors,
            db_size: status.db_size,
            db_size_in_use: status.db_size_in_use,
        };
        Ok::<_, String>((answer, channel))
    }
    .await;
    let endpoint = url.to_string();
    match result {
        Ok((answer, channel)) => (
            Probe {
                endpoint,
                answer: Ok(answer),
            },
            Some(channel),
        ),
        Err(e) => (
            Probe {
                endpoint,
                answer: Err(e),
            },
            None,
        ),
    }
}

async fn member_list(channel: Channel, timeout: Duration) -> Result<Vec<Listed>, String> {
    let mut client = ClusterClient::new(channel);
    let request = client.member_list(MemberListRequest {
        linearizable: false,
    });
    let list = tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| format!("no answer to MemberList within {timeout:?}"))?
        .map_err(|s| format!("MemberList failed: {}", one_line(s.message())))?
        .into_inner();
    Ok(list
        .members
        .into_iter()
        .map(|m| Listed {
            id: m.id,
            name: m.name,
            client_urls: m.client_ur_ls,
            is_learner: m.is_learner,
        })
        .collect())
}

/// Messages end up on one line of a log and in a termination message.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}
