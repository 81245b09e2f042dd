//! How a member with an empty data dir may start, decided from what its peers say.
//!
//! Membership is decided at run time, not baked into the pod template: the template names
//! the members the cluster was created with, and nothing else. A member with no data
//! bootstraps a new cluster only when no peer answers and it is one of those; when the
//! cluster runs, it starts only if the cluster lists it as added but not yet started (the
//! operator adds members as learners before their pods start, and the late members of a
//! cluster being created are listed the same way), and then joins with
//! `initial-cluster-state: existing` and the member list the cluster gave. Anything else
//! would make a second cluster behind the same Service (a pod the cluster never agreed to)
//! or forget votes already cast (a member whose volume was lost): the sidecar keeps the
//! server's start gate closed and says why, so that the operator, or a person following a
//! runbook, can replace the member through the cluster.

use std::time::Duration;

use ballast_proto::etcdserverpb::cluster_client::ClusterClient;
use ballast_proto::etcdserverpb::MemberListRequest;
use serde::Serialize;

use super::Args;
use crate::tls::PeerDialer;

/// Most members a cluster may have (the operator's limit); peers are looked for among
/// the ordinals below it.
const MAX_MEMBERS: u32 = 7;

/// A member as a running peer lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMember {
    /// Empty until the member has started and published itself.
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// What the other members said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peers {
    /// None answered: the cluster is being created (or every peer is down).
    Silent,
    /// A running member's membership list.
    Running {
        asked: String,
        members: Vec<ListedMember>,
    },
}

/// Why a member is kept from starting. The operator reads it from `/bootstrap` and acts
/// on [`Refusal::DataLost`] (it replaces the member); the others resolve themselves or
/// need the operator to add the member first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Refusal {
    /// The cluster knows this member as started, but its data dir is empty.
    DataLost,
    /// The cluster runs and does not list this member (not added, or removed).
    NotAMember,
    /// No peer answers and this member was not one of the cluster's first members: it can
    /// only join a running cluster.
    NoPeers,
    /// The backup this founding member must restore could not be fetched, checked or
    /// restored; it is tried again.
    RestoreFailed,
}

/// What the sidecar lets the server do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The data dir holds a member: the server restarts from it.
    Restart,
    /// Bootstrap a new cluster with the members it was created with.
    Bootstrap,
    /// Join the running cluster, whose members (this one included) are `initial_cluster`.
    Join { initial_cluster: String },
    /// Keep the server from starting.
    Refuse { refusal: Refusal, why: String },
    /// Restart from the data dir with `--force-new-cluster`, as the operator asked after a
    /// loss of quorum (see [`super::recovery`]).
    ForceNewCluster,
}

/// The decision for `member` (advertising `peer_url`), given whether its data dir holds a
/// member, whether it is one of the members the cluster was created with, whether the
/// operator has seen the cluster formed, and its peers.
pub fn decide(
    has_data: bool,
    member: &str,
    peer_url: &str,
    founding: bool,
    formed: bool,
    peers: &Peers,
) -> Decision {
    if has_data {
        return Decision::Restart;
    }
    let (asked, members) = match peers {
        // Silence while the cluster has already formed means its members are down, not
        // that it is being created: bootstrapping now would make a second cluster.
        Peers::Silent if formed => {
            return Decision::Refuse {
                refusal: Refusal::NoPeers,
                why: format!(
                    "member {member} has no data and no other member answers, but the cluster \
                     has already formed: waiting for a member with data to come back (or for \
                     the operator to recover the quorum)"
                ),
            }
        }
        Peers::Silent if founding => return Decision::Bootstrap,
        Peers::Silent => {
            return Decision::Refuse {
                refusal: Refusal::NoPeers,
                why: format!(
                    "member {member} has no data and no other member answers: it was added \
                     after the cluster was created, so it can only join a running cluster. \
                     Waiting for the other members"
                ),
            }
        }
        Peers::Running { asked, members } => (asked, members),
    };
    let listed = members
        .iter()
        .find(|m| m.peer_urls.iter().any(|u| u == peer_url));
    match listed {
        Some(m) if m.name.is_empty() => Decision::Join {
            initial_cluster: initial_cluster(members, member, peer_url),
        },
        Some(m) => Decision::Refuse {
            refusal: Refusal::DataLost,
            why: format!(
                "member {member} has no data, but the running cluster (asked {asked}) knows it \
                 as started member {:?}: its data was lost. Starting it empty would make it \
                 forget its votes. Replace it: remove it with `etcdctl member remove`, add it \
                 back with `etcdctl member add {member} --learner --peer-urls={peer_url}`, and \
                 it starts with initial-cluster-state existing (the operator does this unless \
                 its automatic replacement is turned off)",
                m.name
            ),
        },
        None => {
            let names: Vec<&str> = members
                .iter()
                .map(|m| {
                    if m.name.is_empty() {
                        "(unstarted)"
                    } else {
                        m.name.as_str()
                    }
                })
                .collect();
            Decision::Refuse {
                refusal: Refusal::NotAMember,
                why: format!(
                    "member {member} has no data and the running cluster (asked {asked}; \
                     members: {}) does not list it: starting it with initial-cluster-state new \
                     would create a second, separate cluster. Members join a running cluster \
                     through `etcdctl member add` first",
                    names.join(", ")
                ),
            }
        }
    }
}

/// `--initial-cluster` for joining: every listed member with the name it goes by. Members
/// that have not started yet have no name in the list; the server matches members by peer
/// URL, so they are named after their host's first label (the pod name).
fn initial_cluster(members: &[ListedMember], me: &str, my_peer_url: &str) -> String {
    let mut entries = Vec::new();
    for m in members {
        let name = if m.peer_urls.iter().any(|u| u == my_peer_url) {
            me.to_string()
        } else if m.name.is_empty() {
            host_label(m.peer_urls.first().map(String::as_str).unwrap_or_default())
        } else {
            m.name.clone()
        };
        for url in &m.peer_urls {
            entries.push(format!("{name}={url}"));
        }
    }
    entries.join(",")
}

fn host_label(url: &str) -> String {
    let host = url.split_once("://").map_or(url, |(_, rest)| rest);
    host.split(['.', ':', '/'])
        .next()
        .unwrap_or(host)
        .to_string()
}

/// The client URLs of the members this one may ask: the members it was created with and
/// every other ordinal the cluster may grow to, all through the headless Service.
pub fn peer_client_urls(args: &Args) -> Vec<String> {
    let mut names: Vec<String> = args
        .initial_cluster
        .split(',')
        .filter_map(|entry| entry.split_once('=').map(|(name, _)| name.to_string()))
        .chain((0..MAX_MEMBERS).map(|i| format!("{}-{i}", args.cluster)))
        .filter(|name| *name != args.member)
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            format!(
                "https://{name}.{}.{}.svc.{}:2379",
                args.peer_service, args.namespace, args.cluster_domain
            )
        })
        .collect()
}

/// Asks every possible peer for the membership, over mutual TLS with the sidecar's client
/// certificate. The longest list wins: a member that was removed but still runs answers
/// with the membership it last knew, which is never longer than the cluster's own.
pub async fn ask_peers(dialer: &PeerDialer, args: &Args, timeout: Duration) -> Peers {
    let urls = peer_client_urls(args);
    let answers = futures::future::join_all(
        urls.iter()
            .map(|url| async move { (url, member_list(dialer, url, timeout).await) }),
    )
    .await;
    answers
        .into_iter()
        .filter_map(|(url, answer)| answer.ok().map(|members| (url, members)))
        .max_by_key(|(_, members)| members.len())
        .map_or(Peers::Silent, |(url, members)| Peers::Running {
            asked: url.clone(),
            members,
        })
}

/// The first peer that reports a leader, if any: a quorum exists again, and forcing a new
/// cluster now would put a second one beside it.
pub async fn peer_with_leader(
    dialer: &PeerDialer,
    args: &Args,
    timeout: Duration,
) -> Option<String> {
    use ballast_proto::etcdserverpb::maintenance_client::MaintenanceClient;
    use ballast_proto::etcdserverpb::StatusRequest;
    let urls = peer_client_urls(args);
    let answers = futures::future::join_all(urls.iter().map(|url| async move {
        let channel = dialer.connect(url, timeout).await.ok()?;
        let mut client = MaintenanceClient::new(channel);
        let status = client.status(StatusRequest {});
        let leader = tokio::time::timeout(timeout, status)
            .await
            .ok()?
            .ok()?
            .into_inner()
            .leader;
        (leader != 0).then(|| url.clone())
    }))
    .await;
    answers.into_iter().flatten().next()
}

async fn member_list(
    dialer: &PeerDialer,
    url: &str,
    timeout: Duration,
) -> Result<Vec<ListedMember>, String> {
    let channel = dialer.connect(url, timeout).await?;
    let mut client = ClusterClient::new(channel);
    let request = client.member_list(MemberListRequest {
        linearizable: false,
    });
    let answer = tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| format!("{url}: member list timed out"))?
        .map_err(|s| format!("{url}: {}", s.message()))?;
    Ok(answer
        .into_inner()
        .members
        .into_iter()
        .map(|m| ListedMember {
            name: m.name,
            peer_urls: m.peer_ur_ls,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "https://main-2.main-peer.db.svc.cluster.local:2380";

    fn peer(i: u32) -> String {
        format!("https://main-{i}.main-peer.db.svc.cluster.local:2380")
    }

    fn member(name: &str, url: &str) -> ListedMember {
        ListedMember {
            name: name.into(),
            peer_urls: vec![url.into()],
        }
    }

    fn running(members: Vec<ListedMember>) -> Peers {
        Peers::Running {
            asked: "https://main-0.main-peer.db.svc.cluster.local:2379".into(),
            members,
        }
    }

    fn refusal(d: &Decision) -> (Refusal, &str) {
        match d {
            Decision::Refuse { refusal, why } => (*refusal, why),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn decisions() {
        let started_two = vec![member("main-0", &peer(0)), member("main-1", &peer(1))];
        let mut waiting_for_me = started_two.clone();
        waiting_for_me.push(member("", ME));
        let mut knows_me_started = started_two.clone();
        knows_me_started.push(member("main-2", ME));
        let joined = format!("main-0={},main-1={},main-2={ME}", peer(0), peer(1));

        // (has data, founding member, what the peers say, the decision); the cluster has
        // not been seen formed (see `a_formed_cluster_is_never_bootstrapped_again`).
        let table: Vec<(bool, bool, Peers, Result<Decision, Refusal>)> = vec![
            // A restart never asks.
            (
                true,
                true,
                running(started_two.clone()),
                Ok(Decision::Restart),
            ),
            (true, false, Peers::Silent, Ok(Decision::Restart)),
            // Creation: nobody answers yet.
            (false, true, Peers::Silent, Ok(Decision::Bootstrap)),
            // Added after creation, and nobody answers: it cannot bootstrap alone.
            (false, false, Peers::Silent, Err(Refusal::NoPeers)),
            // Listed but not started: a late founding member or a learner the operator
            // added. Either way it joins what runs.
            (
                false,
                true,
                running(waiting_for_me.clone()),
                Ok(Decision::Join {
                    initial_cluster: joined.clone(),
                }),
            ),
            (
                false,
                false,
                running(waiting_for_me),
                Ok(Decision::Join {
                    initial_cluster: joined,
                }),
            ),
            // Data lost: the cluster knows this member as started.
            (
                false,
                true,
                running(knows_me_started),
                Err(Refusal::DataLost),
            ),
            // Scaled up behind the cluster's back (3 -> 5, 1 -> 3), or removed: not listed.
            (
                false,
                false,
                running(started_two.clone()),
                Err(Refusal::NotAMember),
            ),
            (false, true, running(started_two), Err(Refusal::NotAMember)),
        ];
        for (has_data, founding, peers, expected) in table {
            let got = decide(has_data, "main-2", ME, founding, false, &peers);
            match expected {
                Ok(d) => assert_eq!(got, d, "{has_data} {founding} {peers:?}"),
                Err(kind) => assert_eq!(refusal(&got).0, kind, "{got:?}"),
            }
        }
    }

    /// Every member down and two volumes lost: the empty founding members must wait for
    /// the one with data, not form a second cluster without it.
    #[test]
    fn a_formed_cluster_is_never_bootstrapped_again() {
        let d = decide(false, "main-2", ME, true, true, &Peers::Silent);
        assert_eq!(refusal(&d).0, Refusal::NoPeers, "{d:?}");
        assert!(refusal(&d).1.contains("the cluster has already formed"));
        // With data it restarts as always.
        assert_eq!(
            decide(true, "main-2", ME, true, true, &Peers::Silent),
            Decision::Restart
        );
    }

    #[test]
    fn unstarted_peers_are_named_after_their_host() {
        let members = vec![
            member("main-0", &peer(0)),
            member("", &peer(3)),
            member("", ME),
        ];
        let d = decide(false, "main-2", ME, false, true, &running(members));
        assert_eq!(
            d,
            Decision::Join {
                initial_cluster: format!("main-0={},main-3={},main-2={ME}", peer(0), peer(3)),
            }
        );
    }

    #[test]
    fn a_refusal_says_what_to_do() {
        let lost = decide(
            false,
            "main-2",
            ME,
            true,
            true,
            &running(vec![member("main-0", &peer(0)), member("main-2", ME)]),
        );
        assert!(refusal(&lost).1.contains(&format!(
            "etcdctl member add main-2 --learner --peer-urls={ME}"
        )));
        let separate = decide(
            false,
            "main-2",
            ME,
            true,
            true,
            &running(vec![member("main-0", &peer(0)), member("", &peer(1))]),
        );
        assert!(refusal(&separate)
            .1
            .contains("members: main-0, (unstarted)"));
        assert!(refusal(&separate)
            .1
            .contains("would create a second, separate cluster"));
    }
}
