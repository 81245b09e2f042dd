//! The chart's monitoring files (`charts/ballast/files`) work as they are.
//!
//! - `alerts.yaml` passes `promtool check rules`, and `promtool test rules
//!   alerts.test.yaml` passes, where every alert fires in one case and stays
//!   quiet in a nearby healthy one (checked here, so a new alert cannot go
//!   untested).
//! - `dashboard.json` follows its `datasource`, `namespace` and
//!   `etcd_cluster` variables in every query.
//! - A real Prometheus scraping a live three-member cluster, with the labels
//!   the chart's PodMonitor gives member targets, finds every metric and label
//!   the rules and the dashboard use, answers every dashboard query with a
//!   number, and fires EtcdMemberDown and EtcdQuorumAtRisk when a member is
//!   killed, then EtcdInsufficientMembers and EtcdMembersMismatch when a
//!   second one is.

// Shared with other suites; this one uses part of it.
#[allow(dead_code)]
mod cluster_support;
mod common;
mod metrics_support;
mod monitoring_support;

use std::collections::{BTreeMap, BTreeSet};

use cluster_support::*;
use monitoring_support::*;
use serde_json::Value;

/// Where the test's members "run", as the PodMonitor would label them.
const NAMESPACE: &str = "monitoring-test";
const CLUSTER: &str = "main";
/// Labels every member series carries: `job`, `namespace`, `etcd_cluster` and
/// `pod` from the PodMonitor (here the static config), `instance` from
/// Prometheus.
const TARGET_LABELS: &[&str] = &["job", "namespace", "etcd_cluster", "pod", "instance"];

/// The alerts people run for etcd today (seed 004), which keep their names.
const SEED_ALERTS: &[&str] = &[
    "EtcdMembersMismatch",
    "EtcdHighLeaderChanges",
    "EtcdBackendQuotaLowSpace",
    "EtcdHighCommitDurations",
    "EtcdHighPeerRTT",
    "EtcdHighNumberOfFailedProposals",
];
/// Alerts on membership and quorum added beside them.
const MEMBER_ALERTS: &[&str] = &[
    "EtcdMemberDown",
    "EtcdQuorumAtRisk",
    "EtcdInsufficientMembers",
    "EtcdMemberNotInSync",
];
/// Alerts on what the operator reports.
const OPERATOR_ALERTS: &[&str] = &["EtcdBackupStale"];

/// Series the operator exports about the clusters it runs (its own scrape job), rather
/// than the members.
fn is_operator_metric(name: &str) -> bool {
    name.starts_with("ballast_operator_")
}

fn alerts_file() -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&read_chart_file("alerts.yaml")).expect("alerts.yaml is YAML")
}

fn dashboard_file() -> Value {
    serde_json::from_str(&read_chart_file("dashboard.json")).expect("dashboard.json is JSON")
}

fn assert_promtool(args: &[&str]) {
    let out = promtool(args);
    assert!(
        out.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool_and_every_alert_fires_and_stays_quiet_in_its_tests() {
    let files = chart_files();
    assert_promtool(&[
        "check",
        "rules",
        files.join("alerts.yaml").to_str().unwrap(),
    ]);
    assert_promtool(&[
        "test",
        "rules",
        files.join("alerts.test.yaml").to_str().unwrap(),
    ]);

    let alerts = alert_rules(&alerts_file());
    let names: BTreeSet<&str> = alerts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), alerts.len(), "an alert name is used twice");
    for name in SEED_ALERTS
        .iter()
        .chain(MEMBER_ALERTS)
        .chain(OPERATOR_ALERTS)
    {
        assert!(names.contains(name), "alerts.yaml has no {name}");
    }
    for (name, rule) in &alerts {
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning")),
            "{name}: severity {severity:?}"
        );
        for annotation in ["summary", "description"] {
            let text = rule["annotations"][annotation].as_str().unwrap_or_default();
            assert!(!text.trim().is_empty(), "{name} has no {annotation}");
        }
        // Other jobs may export the same names (another etcd, a node exporter
        // with textfile metrics): every selector is limited to the members.
        let expr = rule["expr"].as_str().expect("an alert has an expr");
        for s in parse_promql(expr)
            .selectors
            .into_iter()
            .filter(|s| !is_operator_metric(&s.metric))
        {
            assert!(
                s.matchers
                    .contains(&("job".into(), "=".into(), "etcd".into())),
                "{name}: {} is not limited to job=\"etcd\" in {expr}",
                s.metric
            );
        }
    }

    // Each alert fires in a test case and stays quiet in one: promtool only
    // compares what a case expects, so an alert without cases, or a case for
    // a misspelt alert, would pass unnoticed.
    let tests: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read_chart_file("alerts.test.yaml")).expect("alerts.test.yaml");
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in tests["tests"].as_sequence().expect("`tests`") {
        for check in case["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = check["alertname"].as_str().expect("alertname").to_string();
            let expected = check["exp_alerts"].as_sequence().map_or(0, Vec::len);
            if expected > 0 {
                firing.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    for name in &names {
        assert!(firing.contains(*name), "no test case makes {name} fire");
        assert!(quiet.contains(*name), "no test case keeps {name} quiet");
    }
    for name in firing.union(&quiet) {
        assert!(
            names.contains(name.as_str()),
            "the tests check {name}, which is no alert"
        );
    }
}

#[test]
fn promql_reading_finds_metrics_matchers_and_grouping_labels() {
    let q = parse_promql(
        r#"max by (namespace, etcd_cluster)
             (increase(a_total{job="etcd", x!~"y}\"z"}[5m] offset 1h))
             / on (pod) group_left () b and sum(c) > 0.5
           or histogram_quantile(0.99, rate(d_bucket{le="+Inf"}[$__rate_interval])) == bool 1e3"#,
    );
    let metrics: Vec<&str> = q.selectors.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(metrics, ["a_total", "b", "c", "d_bucket"]);
    assert_eq!(
        q.selectors[0].matchers,
        [
            ("job".into(), "=".into(), "etcd".into()),
            ("x".into(), "!~".into(), "y}\"z".into())
        ]
    );
    assert_eq!(q.grouping, ["namespace", "etcd_cluster", "pod"]);
}

/// Every query of the dashboard's panels, as (where, expression).
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            walk(&p["panels"], out);
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap_or_default().to_string();
                let title = p["title"].as_str().unwrap_or_default();
                let ref_id = t["refId"].as_str().unwrap_or_default();
                out.push((format!("panel {title:?} query {ref_id}"), expr));
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The dashboard's `label_values(selector, label)` variables, as
/// (variable, selector, label).
fn label_variables(dashboard: &Value) -> Vec<(String, String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let name = v["name"].as_str().expect("variable name").to_string();
            let query = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .expect("variable query");
            let args = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .unwrap_or_else(|| panic!("${name}: {query} is not label_values(selector, label)"));
            let (selector, label) = args
                .rsplit_once(',')
                .expect("label_values has two arguments");
            (name, selector.trim().to_string(), label.trim().to_string())
        })
        .collect()
}

/// A dashboard query as Grafana sends it for this test's cluster.
fn substitute(expr: &str) -> String {
    let q = expr
        .replace("$__rate_interval", "1m")
        .replace("$namespace", NAMESPACE)
        .replace("$etcd_cluster", CLUSTER);
    assert!(
        !q.contains('$'),
        "a variable the test does not know in {expr}"
    );
    q
}

#[test]
fn dashboard_follows_its_datasource_namespace_and_cluster_variables() {
    let d = dashboard_file();
    assert!(d["schemaVersion"].as_u64() >= Some(39), "schemaVersion");
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let datasource = vars.iter().find(|v| v["name"] == "datasource");
    assert!(
        datasource.is_some_and(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "no prometheus `datasource` variable: {datasource:?}"
    );
    let labels: BTreeMap<String, (String, String)> = label_variables(&d)
        .into_iter()
        .map(|(name, selector, label)| (name, (selector, label)))
        .collect();
    assert_eq!(labels["namespace"].1, "namespace");
    assert_eq!(labels["etcd_cluster"].1, "etcd_cluster");
    assert!(
        labels["etcd_cluster"]
            .0
            .contains(r#"namespace="$namespace""#),
        "the cluster list follows the namespace"
    );
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(
            v["datasource"]["uid"], "${datasource}",
            "variable {}",
            v["name"]
        );
    }

    let want_matchers: Vec<(String, String, String)> = [
        ("job", "etcd"),
        ("namespace", "$namespace"),
        ("etcd_cluster", "$etcd_cluster"),
    ]
    .iter()
    .map(|(l, v)| (l.to_string(), "=".to_string(), v.to_string()))
    .collect();
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        let title = &p["title"];
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "panel id of {title} reused"
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {title}");
        let (x, w) = (&p["gridPos"]["x"], &p["gridPos"]["w"]);
        assert!(
            x.as_u64().unwrap() + w.as_u64().unwrap() <= 24,
            "panel {title} is off the grid"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        let ref_ids: BTreeSet<&str> = targets
            .iter()
            .map(|t| t["refId"].as_str().unwrap())
            .collect();
        assert_eq!(ref_ids.len(), targets.len(), "panel {title} reuses a refId");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {title}");
            let expr = t["expr"].as_str().expect("expr");
            for s in parse_promql(expr).selectors {
                for m in &want_matchers {
                    assert!(
                        s.matchers.contains(m),
                        "panel {title}: {} lacks {}=\"{}\" in {expr}",
                        s.metric,
                        m.0,
                        m.2
                    );
                }
                used.insert(s.metric);
            }
        }
    }
    // The panels of the dashboard people run today (seed 004).
    for seed in [
        "etcd_server_is_leader",
        "etcd_mvcc_db_total_size_in_bytes",
        "etcd_disk_wal_fsync_duration_seconds_bucket",
        "etcd_network_peer_round_trip_time_seconds_bucket",
    ] {
        assert!(used.contains(seed), "no panel shows {seed}");
    }
}

/// alerts.yaml with every `for:` shortened to 0s, so an alert fires at the
/// first evaluation that sees its condition: this test is about whether the
/// expressions match what a live cluster exports, and the durations are
/// covered by alerts.test.yaml.
fn rules_without_for(text: &str) -> String {
    let mut rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("alerts.yaml");
    for group in rules["groups"].as_sequence_mut().expect("groups") {
        for rule in group["rules"].as_sequence_mut().expect("rules") {
            let rule = rule.as_mapping_mut().expect("a rule is a mapping");
            if rule.contains_key("for") {
                rule.insert("for".into(), "0s".into());
            }
        }
    }
    serde_yaml_ng::to_string(&rules).expect("serialize rules")
}

/// Prometheus's config: every member's metrics URL as a target of job
/// `etcd` with the PodMonitor's labels, scraped and evaluated every second.
fn scrape_config(members: &[(String, u16)]) -> String {
    let targets: String = members
        .iter()
        .map(|(pod, port)| {
            format!(
                "      - targets: ['127.0.0.1:{port}']\n        labels: \
                 {{namespace: {NAMESPACE}, etcd_cluster: {CLUSTER}, pod: {pod}}}\n"
            )
        })
        .collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - alerts.yaml\n\
         scrape_configs:\n  - job_name: etcd\n    static_configs:\n{targets}"
    )
}

/// What is missing for `query` (used by `what`) among the series Prometheus
/// has: a metric without series of job `etcd`, a series without the target
/// labels, a label matched or grouped by that no series it selects carries.
fn missing_for(prom: &Prometheus, what: &str, query: &Query) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen_labels = BTreeSet::new();
    for s in &query.selectors {
        let series = match prom.query(&format!("{}{{job=\"etcd\"}}", s.metric)) {
            Ok(series) => series,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        if series.is_empty() {
            problems.push(format!(
                "{what}: no series of {} with job=\"etcd\"",
                s.metric
            ));
            continue;
        }
        for one in &series {
            let labels = one["metric"].as_object().expect("metric labels");
            for label in TARGET_LABELS {
                if !labels.contains_key(*label) {
                    problems.push(format!("{what}: {} without label {label}: {one}", s.metric));
                }
            }
            seen_labels.extend(labels.keys().cloned());
        }
        for (label, _, _) in &s.matchers {
            if !series.iter().any(|one| one["metric"].get(label).is_some()) {
                problems.push(format!(
                    "{what}: no series of {} has label {label}",
                    s.metric
                ));
            }
        }
    }
    for label in &query.grouping {
        if !seen_labels.contains(label) {
            problems.push(format!(
                "{what}: groups by {label}, which none of its series has"
            ));
        }
    }
    problems
}

/// The label sets of the alerts named `name` that are active (pending or
/// firing) in `alerts`, and whether each fires.
fn active(alerts: &[Value], name: &str) -> Vec<(BTreeMap<String, String>, bool)> {
    alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == name)
        .map(|a| {
            let labels = a["labels"]
                .as_object()
                .expect("alert labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            (labels, a["state"] == "firing")
        })
        .collect()
}

/// Ok when exactly the members `pods` fire alert `name` (and no one else has it pending).
fn fires_for_pods(alerts: &[Value], name: &str, pods: &[&str]) -> Result<(), String> {
    let found = active(alerts, name);
    let mut firing: Vec<&str> = found
        .iter()
        .filter(|(labels, fires)| {
            let label = |l: &str| labels.get(l).map(String::as_str);
            *fires
                && label("namespace") == Some(NAMESPACE)
                && label("etcd_cluster") == Some(CLUSTER)
        })
        .map(|(labels, _)| labels.get("pod").map_or("", String::as_str))
        .collect();
    firing.sort();
    if firing == pods && found.len() == pods.len() {
        Ok(())
    } else {
        Err(format!("{name} should fire for {pods:?}, is {found:?}"))
    }
}

/// Ok when the cluster-level alert `name` fires for this test's cluster.
fn fires_for_cluster(alerts: &[Value], name: &str) -> Result<(), String> {
    let found = active(alerts, name);
    let want: BTreeMap<String, String> = [
        ("alertname", name),
        ("namespace", NAMESPACE),
        ("etcd_cluster", CLUSTER),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    match found.as_slice() {
        [(labels, true)] if want.iter().all(|(k, v)| labels.get(k) == Some(v)) => Ok(()),
        _ => Err(format!(
            "{name} should fire for {NAMESPACE}/{CLUSTER}, is {found:?}"
        )),
    }
}

/// Ok when nothing is wrong, else everything that is, one per line.
fn ok_unless(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn quiet(alerts: &[Value], name: &str) -> Result<(), String> {
    let found = active(alerts, name);
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!("{name} should be quiet, is {found:?}"))
    }
}

#[test]
fn prometheus_scrapes_a_live_cluster_and_fires_member_alerts() {
    if common::server_kind() != common::ServerKind::Ballast {
        return;
    }
    let _one = one_at_a_time();
    let root = tempfile::tempdir().expect("tempdir");

    // Three members named like the operator's pods, each serving plain-HTTP
    // /metrics on its own --listen-metrics-urls, as the pods do on 2381.
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| Node::new(&format!("{CLUSTER}-{i}"), root.path()))
        .collect();
    let initial = initial_cluster(&nodes.iter().collect::<Vec<_>>());
    let mut targets = Vec::new();
    for n in &mut nodes {
        let port = common::free_port();
        let url = format!("http://127.0.0.1:{port}");
        n.start_with(&initial, "new", &["--listen-metrics-urls", &url]);
        targets.push((n.name.clone(), port));
    }
    for n in &nodes {
        wait_for(&format!("{} healthy", n.name), || n.healthy());
    }
    let eps = endpoints(&nodes.iter().collect::<Vec<_>>());
    leader(&eps, 3);

    let rules_text = read_chart_file("alerts.yaml");
    let rules = alert_rules(&serde_yaml_ng::from_str(&rules_text).expect("alerts.yaml"));
    let mut prom = Prometheus::start(
        &root.path().join("prometheus"),
        common::free_port(),
        &scrape_config(&targets),
        &[("alerts.yaml", &rules_without_for(&rules_text))],
    );

    // Writes all along, so rates and latency histograms have something to show.
    let mut writes = 0;
    let mut write = || {
        writes += 1;
        ctl_ok(&eps, &["put", &format!("monitoring/{writes}"), "v"]);
    };

    // Every metric and label the rules and the dashboard use exists.
    let dashboard = dashboard_file();
    // The operator's metrics are not the members': e2e/tests/kube_backup.rs checks them
    // on the operator that reports them.
    let mut uses: Vec<(String, Query)> = rules
        .iter()
        .map(|(name, rule)| {
            let expr = rule["expr"].as_str().expect("expr");
            (format!("alert {name}"), parse_promql(expr))
        })
        .filter(|(_, q)| !q.selectors.iter().any(|s| is_operator_metric(&s.metric)))
        .collect();
    uses.extend(
        panel_queries(&dashboard)
            .into_iter()
            .map(|(what, expr)| (format!("dashboard {what}"), parse_promql(&expr))),
    );
    let variables = label_variables(&dashboard);
    for (name, selector, _) in &variables {
        uses.push((
            format!("dashboard variable ${name}"),
            parse_promql(selector),
        ));
    }
    let metrics: BTreeSet<&str> = uses
        .iter()
        .flat_map(|(_, q)| q.selectors.iter().map(|s| s.metric.as_str()))
        .collect();
    // A reading that found nothing would make the next check vacuous.
    assert!(
        metrics.len() >= 15,
        "too few metrics read from the rules and dashboard: {metrics:?}"
    );
    prom.await_ok(
        "every metric and label of the rules and the dashboard",
        |p| {
            write();
            let problems: Vec<String> = uses
                .iter()
                .flat_map(|(what, q)| missing_for(p, what, q))
                .collect();
            ok_unless(problems)
        },
    );

    // Every dashboard query, as Grafana would send it for this cluster,
    // returns a number, and the variables offer this namespace and cluster.
    let panels = panel_queries(&dashboard);
    prom.await_ok("every dashboard query to return a number", |p| {
        write();
        let mut problems = Vec::new();
        for (what, expr) in &panels {
            let q = substitute(expr);
            match p.query(&q) {
                Ok(r) if r.iter().any(|s| sample_value(s).is_finite()) => {}
                Ok(r) => problems.push(format!("{what}: {q} returned {r:?}")),
                Err(e) => problems.push(format!("{what}: {e}")),
            }
        }
        for (name, selector, label) in &variables {
            let q = format!("count by ({label}) ({})", substitute(selector));
            let want = if label == "namespace" {
                NAMESPACE
            } else {
                CLUSTER
            };
            match p.query(&q) {
                Ok(r) if r.iter().any(|s| sample_label(s, label) == Some(want)) => {}
                Ok(r) => {
                    problems.push(format!("${name} does not offer {want}: {q} returned {r:?}"))
                }
                Err(e) => problems.push(format!("${name}: {e}")),
            }
        }
        ok_unless(problems)
    });

    // Healthy: with all three members up, two rule evaluations later, none of
    // the member alerts is even pending.
    prom.await_ok("three members up", |p| {
        let up = p.query(&format!(
            "up{{job=\"etcd\",etcd_cluster=\"{CLUSTER}\"}} == 1"
        ))?;
        if up.len() == 3 {
            Ok(())
        } else {
            Err(format!("up: {up:?}"))
        }
    });
    let iterations = |p: &Prometheus| {
        p.own_metric("prometheus_rule_group_iterations_total", "ballast-etcd")
            .unwrap_or(0.0)
    };
    let before = iterations(&prom);
    prom.await_ok("two rule evaluations", |p| {
        let now = iterations(p);
        if now >= before + 2.0 {
            Ok(())
        } else {
            Err(format!("{now} evaluations, from {before}"))
        }
    });
    let alerts = prom.alerts().expect("alerts");
    for name in MEMBER_ALERTS.iter().chain(&["EtcdMembersMismatch"]) {
        quiet(&alerts, name).unwrap_or_else(|e| panic!("healthy cluster: {e}"));
    }

    // One member of three lost: it is down, and the two left are exactly a quorum.
    nodes[2].kill9();
    prom.await_ok("EtcdMemberDown and EtcdQuorumAtRisk for main-2", |p| {
        let alerts = p.alerts()?;
        fires_for_pods(&alerts, "EtcdMemberDown", &["main-2"])?;
        fires_for_cluster(&alerts, "EtcdQuorumAtRisk")?;
        quiet(&alerts, "EtcdInsufficientMembers")
    });

    // A second one lost: no quorum, and the survivor has no leader.
    nodes[1].kill9();
    prom.await_ok("EtcdInsufficientMembers and EtcdMembersMismatch", |p| {
        let alerts = p.alerts()?;
        fires_for_pods(&alerts, "EtcdMemberDown", &["main-1", "main-2"])?;
        fires_for_cluster(&alerts, "EtcdInsufficientMembers")?;
        fires_for_pods(&alerts, "EtcdMembersMismatch", &["main-0"])?;
        quiet(&alerts, "EtcdQuorumAtRisk")
    });
}
