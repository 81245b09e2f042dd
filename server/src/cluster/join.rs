//! Joining a running cluster (`--initial-cluster-state existing`): as etcd
//! does, --initial-cluster must list exactly the cluster's members (matched
//! by peer URLs, this member included, so it must have been added first),
//! and each takes the ID the cluster gave it. Errors carry etcd's texts.

use super::Member;

/// etcd's `ValidateClusterAndAssignIDs`, then the member named `name`'s ID.
/// `local` is --initial-cluster (IDs as computed from it), `existing` what
/// the running cluster `cluster_id` reported.
pub fn validate(
    cluster_id: u64,
    existing: &[Member],
    local: &[Member],
    name: &str,
) -> Result<u64, String> {
    let fail = |why: String| {
        format!(
            "error validating peerURLs {}: {why}",
            describe(cluster_id, existing)
        )
    };
    if existing.len() != local.len() {
        return Err(fail("member count is unequal".into()));
    }
    let mut ems: Vec<&Member> = existing.iter().collect();
    ems.sort_by_key(|m| m.id);
    let mut lms: Vec<Member> = local.to_vec();
    lms.sort_by_key(|m| m.id);
    let mut assigned = vec![None; lms.len()];
    for em in ems {
        let mut last = String::new();
        let found = lms
            .iter()
            .position(|lm| match urls_equal(&em.peer_urls, &lm.peer_urls) {
                Ok(()) => true,
                Err(e) => {
                    last = e;
                    false
                }
            });
        match found {
            Some(j) => assigned[j] = Some(em.id),
            None => {
                return Err(fail(format!(
                    "PeerURLs: no match found for existing member ({:x}, [{}]), last resolver error ({last})",
                    em.id,
                    em.peer_urls.join(" ")
                )))
            }
        }
    }
    lms.iter()
        .zip(assigned)
        .find(|(m, _)| m.name == name)
        .and_then(|(_, id)| id)
        .ok_or_else(|| {
            format!("couldn't find local name \"{name}\" in the initial cluster configuration")
        })
}

/// etcd's `URLStringsEqual` (without DNS: Ballast compares the URLs as written).
fn urls_equal(a: &[String], b: &[String]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("len({}) != len({})", quoted(a), quoted(b)));
    }
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    match a.iter().zip(&b).find(|(x, y)| x != y) {
        Some((x, y)) => Err(format!("resolved urls: \"{x}\" != \"{y}\"")),
        None => Ok(()),
    }
}

/// Go's `%q` of a string slice.
fn quoted(urls: &[String]) -> String {
    let inner: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!("[{}]", inner.join(" "))
}

/// The cluster as etcd prints it (`RaftCluster.String`).
fn describe(cluster_id: u64, members: &[Member]) -> String {
    let mut sorted: Vec<&Member> = members.iter().collect();
    sorted.sort_by_key(|m| m.id);
    let ms: Vec<String> = sorted
        .iter()
        .map(|m| {
            format!(
                "&{{ID:{:x} RaftAttributes:{{PeerURLs:[{}] IsLearner:{}}} Attributes:{{Name:{} ClientURLs:[{}]}}}}",
                m.id,
                m.peer_urls.join(" "),
                m.is_learner,
                m.name,
                m.client_urls.join(" ")
            )
        })
        .collect();
    format!(
        "{{ClusterID:{cluster_id:x} Members:[{}] RemovedMemberIDs:[]}}",
        ms.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u64, name: &str, peer: &str, client: &str) -> Member {
        Member {
            id,
            name: name.into(),
            peer_urls: vec![peer.into()],
            client_urls: if client.is_empty() {
                vec![]
            } else {
                vec![client.into()]
            },
            is_learner: false,
        }
    }

    // The messages below are what etcd 3.4.23 printed for the same setups.
    #[test]
    fn a_member_not_added_first_is_refused_with_etcds_message() {
        let existing = [m(
            0x5ff26abccae91cba,
            "e1",
            "http://127.0.0.1:23801",
            "http://127.0.0.1:23791",
        )];
        let local = [
            m(1, "e1", "http://127.0.0.1:23801", ""),
            m(2, "e2", "http://127.0.0.1:23802", ""),
        ];
        assert_eq!(
            validate(0x908b88401a278a6d, &existing, &local, "e2"),
            Err("error validating peerURLs {ClusterID:908b88401a278a6d Members:[&{ID:5ff26abccae91cba RaftAttributes:{PeerURLs:[http://127.0.0.1:23801] IsLearner:false} Attributes:{Name:e1 ClientURLs:[http://127.0.0.1:23791]}}] RemovedMemberIDs:[]}: member count is unequal".into())
        );
    }

    #[test]
    fn urls_that_do_not_match_the_cluster_are_refused_with_etcds_message() {
        let existing = [
            m(
                0x5ff26abccae91cba,
                "e1",
                "http://127.0.0.1:23801",
                "http://127.0.0.1:23791",
            ),
            m(0x56935328841f84ef, "", "http://127.0.0.1:23802", ""),
        ];
        // IDs as --initial-cluster-token ta gives them.
        let id = |u: &str| crate::raft::ids::member_id(&[url::Url::parse(u).expect("url")], "ta");
        let local = [
            m(
                id("http://127.0.0.1:23801"),
                "e1",
                "http://127.0.0.1:23801",
                "",
            ),
            m(
                id("http://127.0.0.1:23809"),
                "e2",
                "http://127.0.0.1:23809",
                "",
            ),
        ];
        assert_eq!(local[0].id, 0x5ff26abccae91cba, "etcd's ID for e1");
        assert_eq!(
            validate(0x908b88401a278a6d, &existing, &local, "e2"),
            Err("error validating peerURLs {ClusterID:908b88401a278a6d Members:[&{ID:56935328841f84ef RaftAttributes:{PeerURLs:[http://127.0.0.1:23802] IsLearner:false} Attributes:{Name: ClientURLs:[]}} &{ID:5ff26abccae91cba RaftAttributes:{PeerURLs:[http://127.0.0.1:23801] IsLearner:false} Attributes:{Name:e1 ClientURLs:[http://127.0.0.1:23791]}}] RemovedMemberIDs:[]}: PeerURLs: no match found for existing member (56935328841f84ef, [http://127.0.0.1:23802]), last resolver error (resolved urls: \"http://127.0.0.1:23802\" != \"http://127.0.0.1:23801\")".into())
        );
    }

    #[test]
    fn a_matching_list_gives_the_ids_the_cluster_assigned() {
        let existing = [
            m(10, "e1", "http://127.0.0.1:1", ""),
            m(20, "", "http://127.0.0.1:2", ""),
        ];
        let local = [
            m(1, "e1", "http://127.0.0.1:1", ""),
            m(2, "e2", "http://127.0.0.1:2", ""),
        ];
        assert_eq!(validate(7, &existing, &local, "e2"), Ok(20));
        assert!(validate(7, &existing, &local, "e9")
            .is_err_and(|e| e.contains("couldn't find local name \"e9\"")));
    }
}
