//! Whether a member with an empty data dir may bootstrap, decided from what its peers say.
//!
//! The member's configuration says `initial-cluster-state: new`, which is right only while
//! the cluster is being created. Once its peers run a cluster, an empty member starting as
//! `new` either forms a second cluster behind the same Service (a pod added by a replicas
//! change, which the cluster never agreed to) or forgets the votes it cast (a member whose
//! volume was lost). The sidecar then keeps the server's start gate closed and says why;
//! adding or replacing such a member is a membership change that has to go through the
//! cluster first.

use std::time::Duration;

use ballast_proto::etcdserverpb::cluster_client::ClusterClient;
use ballast_proto::etcdserverpb::MemberListRequest;

use super::Args;
use crate::tls::PeerDialer;

/// A member as a running peer lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMember {
    /// Empty until the member has started and published itself.
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// What the other members of `--initial-cluster` said.
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

/// What the sidecar lets the server do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The data dir holds a member: the server restarts from it.
    Restart,
    /// Bootstrap as a member of the cluster being created.
    Bootstrap,
    /// Keep the server from starting, for this reason.
    Refuse(String),
}

/// The decision for `member` (advertising `peer_url`) given its data dir and its peers.
pub fn decide(has_data: bool, member: &str, peer_url: &str, peers: &Peers) -> Decision {
    if has_data {
        return Decision::Restart;
    }
    let (asked, members) = match peers {
        Peers::Silent => return Decision::Bootstrap,
        Peers::Running { asked, members } => (asked, members),
    };
    let listed = members
        .iter()
        .find(|m| m.peer_urls.iter().any(|u| u == peer_url));
    match listed {
        // Part of the initial configuration, and the cluster has been waiting for it.
        Some(m) if m.name.is_empty() => Decision::Bootstrap,
        Some(m) => Decision::Refuse(format!(
            "member {member} has no data, but the running cluster (asked {asked}) knows it as \
             started member {:?}: its data was lost. Starting it empty would make it forget its \
             votes. Replace it: remove it with `etcdctl member remove`, add it back with \
             `etcdctl member add {member} --learner --peer-urls={peer_url}`, and start it with \
             initial-cluster-state existing",
            m.name
        )),
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
            Decision::Refuse(format!(
                "member {member} has no data and the running cluster (asked {asked}; members: \
                 {}) does not list it: starting it with initial-cluster-state new would create a \
                 second, separate cluster. Members join a running cluster through \
                 `etcdctl member add` first",
                names.join(", ")
            ))
        }
    }
}

/// Asks every other member of `--initial-cluster` for the membership, over mutual TLS with
/// the sidecar's client certificate; the first answer wins.
pub async fn ask_peers(dialer: &PeerDialer, args: &Args, timeout: Duration) -> Peers {
    let others: Vec<String> = args
        .initial_cluster
        .split(',')
        .filter_map(|entry| entry.split_once('='))
        .filter(|(name, _)| *name != args.member)
        .map(|(name, _)| {
            format!(
                "https://{name}.{}.{}.svc.{}:2379",
                args.peer_service, args.namespace, args.cluster_domain
            )
        })
        .collect();
    let answers = futures::future::join_all(
        others
            .iter()
            .map(|url| async move { (url, member_list(dialer, url, timeout).await) }),
    )
    .await;
    answers
        .into_iter()
        .find_map(|(url, answer)| answer.ok().map(|members| (url, members)))
        .map_or(Peers::Silent, |(url, members)| Peers::Running {
            asked: url.clone(),
            members,
        })
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

    fn refusal(d: &Decision) -> &str {
        match d {
            Decision::Refuse(why) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn decisions() {
        let peer = |i: u32| format!("https://main-{i}.main-peer.db.svc.cluster.local:2380");
        let started_two = vec![member("main-0", &peer(0)), member("main-1", &peer(1))];
        let mut waiting_for_me = started_two.clone();
        waiting_for_me.push(member("", ME));
        let mut knows_me_started = started_two.clone();
        knows_me_started.push(member("main-2", ME));

        // (has data, what the peers say, the decision or the start of the refusal)
        let table: Vec<(bool, Peers, Result<Decision, &str>)> = vec![
            // A restart never asks.
            (true, running(started_two.clone()), Ok(Decision::Restart)),
            (true, Peers::Silent, Ok(Decision::Restart)),
            // Creation: nobody answers yet, or the cluster formed without this member so far.
            (false, Peers::Silent, Ok(Decision::Bootstrap)),
            (false, running(waiting_for_me), Ok(Decision::Bootstrap)),
            // Data lost: the cluster knows this member as started.
            (
                false,
                running(knows_me_started),
                Err("member main-2 has no data, but the running cluster"),
            ),
            // Scaled up behind the cluster's back (3 -> 5, 1 -> 3): a second cluster.
            (
                false,
                running(started_two),
                Err("member main-2 has no data and the running cluster"),
            ),
        ];
        for (has_data, peers, expected) in table {
            let got = decide(has_data, "main-2", ME, &peers);
            match expected {
                Ok(d) => assert_eq!(got, d, "{has_data} {peers:?}"),
                Err(start) => assert!(refusal(&got).starts_with(start), "{got:?}"),
            }
        }
    }

    #[test]
    fn a_refusal_says_what_to_do() {
        let lost = decide(
            false,
            "main-2",
            ME,
            &running(vec![
                member("main-0", "https://a:2380"),
                member("main-2", ME),
            ]),
        );
        assert!(refusal(&lost).contains(&format!(
            "etcdctl member add main-2 --learner --peer-urls={ME}"
        )));
        let separate = decide(
            false,
            "main-2",
            ME,
            &running(vec![
                member("main-0", "https://a:2380"),
                member("", "https://b:2380"),
            ]),
        );
        assert!(refusal(&separate).contains("members: main-0, (unstarted)"));
        assert!(refusal(&separate).contains("would create a second, separate cluster"));
    }
}
