//! The decision of `ballast defrag`: is the cluster healthy enough, and in which order are
//! its members defragmented. Kept free of I/O so that every situation (a member down, no
//! leader, alarms, a split view of the leader, learners) is checked by unit tests.

/// A member as `Cluster.MemberList` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: u64,
    /// Empty until the member has started and published itself.
    pub name: String,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl Listed {
    /// The name, or the ID for a member that never started.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            format!("{:x}", self.id)
        } else {
            self.name.clone()
        }
    }
}

/// What a member answered to `Maintenance.Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub member_id: u64,
    pub leader: u64,
    pub errors: Vec<String>,
    pub db_size: i64,
    pub db_size_in_use: i64,
}

/// One endpoint's `Status`, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub endpoint: String,
    pub answer: Result<Answer, String>,
}

/// Everything the decision goes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// One probe per endpoint given, in their order.
    pub probes: Vec<Probe>,
    /// The member list from one of the endpoints, or why none answered it.
    pub members: Result<Vec<Listed>, String>,
}

/// A member to defragment, through the endpoint that answered for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: u64,
    pub name: String,
    pub endpoint: String,
    pub is_leader: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Defragment these members, in this order (followers and learners first, the leader last).
    Defragment(Vec<Target>),
    /// The cluster is not healthy: leave it alone; the reason says why.
    Skip(String),
    /// Nothing answered at all: the endpoints or the TLS flags are likely wrong, which a
    /// scheduled job must report rather than skip forever.
    Fail(String),
}

/// Decides what to do with the cluster as observed.
pub fn plan(observed: &Observed) -> Plan {
    if observed.probes.is_empty() {
        return Plan::Fail("no endpoint given (--endpoints)".into());
    }
    if observed.probes.iter().all(|p| p.answer.is_err()) {
        let problems: Vec<String> = observed
            .probes
            .iter()
            .filter_map(|p| {
                p.answer
                    .as_ref()
                    .err()
                    .map(|e| format!("{}: {e}", p.endpoint))
            })
            .collect();
        return Plan::Fail(format!(
            "no endpoint answered ({}); check --endpoints, the TLS flags and the cluster",
            problems.join("; ")
        ));
    }
    let members = match &observed.members {
        Ok(members) => members,
        Err(e) => return unhealthy(vec![format!("member list: {e}")]),
    };
    let member_at = |endpoint: &str| {
        members
            .iter()
            .find(|m| m.client_urls.iter().any(|u| same_url(u, endpoint)))
    };
    let mut problems = Vec::new();
    // Members already named through an endpoint that does not answer.
    let mut named = Vec::new();
    for probe in &observed.probes {
        let listed = member_at(&probe.endpoint);
        let who = listed
            .map(|m| format!("member {}", m.label()))
            .unwrap_or_else(|| "the member".into());
        match &probe.answer {
            Err(e) => {
                named.extend(listed.map(|m| m.id));
                problems.push(format!("{}: {who} does not answer: {e}", probe.endpoint));
            }
            Ok(a) => {
                let who = members
                    .iter()
                    .find(|m| m.id == a.member_id)
                    .map(|m| format!("member {}", m.label()))
                    .unwrap_or(who);
                if !a.errors.is_empty() {
                    problems.push(format!(
                        "{}: {who} reports errors: {}",
                        probe.endpoint,
                        a.errors
                            .iter()
                            .map(|e| e.trim())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if a.leader == 0 {
                    problems.push(format!("{}: {who} has no leader", probe.endpoint));
                }
                if !members.iter().any(|m| m.id == a.member_id) {
                    problems.push(format!(
                        "{}: member {:x} is not in the member list",
                        probe.endpoint, a.member_id
                    ));
                }
            }
        }
    }
    let answers: Vec<(&str, &Answer)> = observed
        .probes
        .iter()
        .filter_map(|p| p.answer.as_ref().ok().map(|a| (p.endpoint.as_str(), a)))
        .collect();
    for m in members {
        if !answers.iter().any(|(_, a)| a.member_id == m.id) && !named.contains(&m.id) {
            let who = if m.name.is_empty() {
                format!("member {:x} (not started)", m.id)
            } else {
                format!("member {} ({:x})", m.name, m.id)
            };
            problems.push(format!("{who} does not answer on any endpoint given"));
        }
    }
    if !problems.is_empty() {
        return unhealthy(problems);
    }
    let leader = answers[0].1.leader;
    if answers.iter().any(|(_, a)| a.leader != leader) {
        let views: Vec<String> = answers
            .iter()
            .map(|(e, a)| format!("{e} says {:x}", a.leader))
            .collect();
        return unhealthy(vec![format!(
            "the members disagree on the leader ({})",
            views.join(", ")
        )]);
    }
    if !members.iter().any(|m| m.id == leader) {
        return unhealthy(vec![format!(
            "the leader {leader:x} is not in the member list"
        )]);
    }
    // One target per member (two endpoints may reach the same one), in endpoint order.
    let mut targets: Vec<Target> = Vec::new();
    for (endpoint, a) in &answers {
        if targets.iter().any(|t| t.id == a.member_id) {
            continue;
        }
        let name = members
            .iter()
            .find(|m| m.id == a.member_id)
            .map(Listed::label)
            .unwrap_or_default();
        targets.push(Target {
            id: a.member_id,
            name,
            endpoint: endpoint.to_string(),
            is_leader: a.member_id == leader,
        });
    }
    // Stable: followers keep the endpoint order.
    targets.sort_by_key(|t| t.is_leader);
    Plan::Defragment(targets)
}

/// The next member to defragment once `done` are, by a fresh plan: the leader may have
/// changed meanwhile, and the new one must still come last. `Err` is why to stop.
pub fn next(observed: &Observed, done: &[u64]) -> Result<Option<Target>, String> {
    match plan(observed) {
        Plan::Defragment(targets) => Ok(targets.into_iter().find(|t| !done.contains(&t.id))),
        Plan::Skip(why) | Plan::Fail(why) => Err(why),
    }
}

fn unhealthy(problems: Vec<String>) -> Plan {
    Plan::Skip(format!(
        "the cluster is not healthy: {}",
        problems.join("; ")
    ))
}

/// URLs compared without a trailing slash (`http://h:1/` is `http://h:1`).
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    const EP: [&str; 3] = ["http://m1:2379", "http://m2:2379", "http://m3:2379"];

    fn listed(id: u64, learner: bool) -> Listed {
        Listed {
            id,
            name: format!("m{id}"),
            client_urls: vec![EP[id as usize - 1].to_string()],
            is_learner: learner,
        }
    }

    fn answer(id: u64, leader: u64) -> Result<Answer, String> {
        Ok(Answer {
            member_id: id,
            leader,
            errors: Vec::new(),
            db_size: 1000,
            db_size_in_use: 500,
        })
    }

    /// Three members, m2 leading, every endpoint answering.
    fn healthy() -> Observed {
        Observed {
            probes: (1..=3)
                .map(|id| Probe {
                    endpoint: EP[id as usize - 1].into(),
                    answer: answer(id, 2),
                })
                .collect(),
            members: Ok((1..=3).map(|id| listed(id, false)).collect()),
        }
    }

    fn order(plan: &Plan) -> Vec<String> {
        match plan {
            Plan::Defragment(t) => t.iter().map(|t| t.name.clone()).collect(),
            other => panic!("expected targets, got {other:?}"),
        }
    }

    fn skipped(plan: &Plan) -> String {
        match plan {
            Plan::Skip(why) => why.clone(),
            other => panic!("expected a skip, got {other:?}"),
        }
    }

    #[test]
    fn healthy_three_members_followers_first_leader_last() {
        let p = plan(&healthy());
        assert_eq!(order(&p), ["m1", "m3", "m2"]);
        let Plan::Defragment(t) = p else {
            unreachable!()
        };
        assert_eq!(t[2].endpoint, EP[1]);
        assert!(t[2].is_leader && !t[0].is_leader && !t[1].is_leader);
    }

    #[test]
    fn situations() {
        type Change = fn(&mut Observed);
        /// The order of the members, or the reason for skipping.
        type Expected = Result<Vec<&'static str>, &'static str>;
        let table: Vec<(&str, Change, Expected)> = vec![
            (
                "no leader anywhere",
                |o| {
                    for p in &mut o.probes {
                        if let Ok(a) = &mut p.answer {
                            a.leader = 0;
                        }
                    }
                },
                Err("the cluster is not healthy: http://m1:2379: member m1 has no leader; \
                     http://m2:2379: member m2 has no leader; http://m3:2379: member m3 has no leader"),
            ),
            (
                "one member has lost the leader",
                |o| {
                    if let Ok(a) = &mut o.probes[2].answer {
                        a.leader = 0;
                    }
                },
                Err("the cluster is not healthy: http://m3:2379: member m3 has no leader"),
            ),
            (
                "a member down",
                |o| o.probes[2].answer = Err("cannot connect: connection refused".into()),
                Err("the cluster is not healthy: http://m3:2379: member m3 does not answer: \
                     cannot connect: connection refused"),
            ),
            (
                "an alarm",
                |o| {
                    if let Ok(a) = &mut o.probes[0].answer {
                        a.errors = vec!["memberID:1 alarm:NOSPACE ".into()];
                    }
                },
                Err("the cluster is not healthy: http://m1:2379: member m1 reports errors: \
                     memberID:1 alarm:NOSPACE"),
            ),
            (
                "members disagree on the leader",
                |o| {
                    if let Ok(a) = &mut o.probes[0].answer {
                        a.leader = 1;
                    }
                },
                Err("the cluster is not healthy: the members disagree on the leader \
                     (http://m1:2379 says 1, http://m2:2379 says 2, http://m3:2379 says 2)"),
            ),
            (
                "a member missing from the endpoints",
                |o| {
                    o.probes.pop();
                },
                Err("the cluster is not healthy: member m3 (3) does not answer on any endpoint given"),
            ),
            (
                "a member never started",
                |o| {
                    if let Ok(m) = &mut o.members {
                        m.push(Listed {
                            id: 0xab,
                            name: String::new(),
                            client_urls: Vec::new(),
                            is_learner: false,
                        });
                    }
                },
                Err("the cluster is not healthy: member ab (not started) does not answer on any endpoint given"),
            ),
            (
                "an endpoint of a removed member",
                |o| {
                    if let Ok(m) = &mut o.members {
                        m.pop();
                    }
                },
                Err("the cluster is not healthy: http://m3:2379: member 3 is not in the member list"),
            ),
            (
                "no member list",
                |o| o.members = Err("http://m1:2379: MemberList failed: boom".into()),
                Err("the cluster is not healthy: member list: http://m1:2379: MemberList failed: boom"),
            ),
            (
                "a learner is defragmented as a follower",
                |o| {
                    if let Ok(m) = &mut o.members {
                        m[0].is_learner = true;
                    }
                },
                Ok(vec!["m1", "m3", "m2"]),
            ),
            (
                "the leader first among the endpoints still goes last",
                |o| o.probes.swap(0, 1),
                Ok(vec!["m1", "m3", "m2"]),
            ),
            (
                "two endpoints of one member: defragmented once",
                |o| {
                    let mut again = o.probes[0].clone();
                    again.endpoint = "http://127.0.0.1:2379".into();
                    o.probes.push(again);
                },
                Ok(vec!["m1", "m3", "m2"]),
            ),
        ];
        for (situation, change, expected) in table {
            let mut o = healthy();
            change(&mut o);
            let p = plan(&o);
            match expected {
                Ok(names) => assert_eq!(order(&p), names, "{situation}"),
                Err(why) => assert_eq!(skipped(&p), why, "{situation}"),
            }
        }
    }

    #[test]
    fn nothing_answering_is_a_failure_not_a_skip() {
        let mut o = healthy();
        for p in &mut o.probes {
            p.answer = Err("cannot connect".into());
        }
        o.members = Err("no endpoint answered".into());
        match plan(&o) {
            Plan::Fail(why) => assert!(
                why.starts_with("no endpoint answered (http://m1:2379: cannot connect; "),
                "{why}"
            ),
            other => panic!("expected a failure, got {other:?}"),
        }
        let none = Observed {
            probes: Vec::new(),
            members: Ok(Vec::new()),
        };
        assert!(matches!(plan(&none), Plan::Fail(_)));
    }

    #[test]
    fn next_skips_what_is_done_and_keeps_the_new_leader_last() {
        let o = healthy();
        assert_eq!(next(&o, &[]).map(|t| t.map(|t| t.id)), Ok(Some(1)));
        assert_eq!(next(&o, &[1, 3]).map(|t| t.map(|t| t.id)), Ok(Some(2)));
        assert_eq!(next(&o, &[1, 2, 3]), Ok(None));
        // The leader moved to m3 once m1 was done: m2 now comes before m3.
        let mut moved = healthy();
        for p in &mut moved.probes {
            if let Ok(a) = &mut p.answer {
                a.leader = 3;
            }
        }
        assert_eq!(next(&moved, &[1]).map(|t| t.map(|t| t.id)), Ok(Some(2)));
        assert_eq!(next(&moved, &[1, 2]).map(|t| t.map(|t| t.id)), Ok(Some(3)));
        let mut down = healthy();
        down.probes[0].answer = Err("cannot connect".into());
        assert!(next(&down, &[1]).is_err());
    }
}
