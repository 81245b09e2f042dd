//! etcd's health endpoints, with its semantics, checks and texts.
//!
//! * `GET /health` (etcd 3.5's JSON): unhealthy on an active alarm (unless
//!   excluded), without a leader (unless `serializable=true`), or when a range
//!   read fails (linearizable unless `serializable=true`).
//! * `GET /livez` and `GET /readyz` (etcd 3.5.11 on, for Kubernetes probes):
//!   named checks, each also served alone under `/livez/<check>` and
//!   `/readyz/<check>`. `/livez` only asks whether this member can read its own
//!   store; `/readyz` also asks for no CORRUPT alarm, a linearizable read (so a
//!   leader and a quorum) and, from etcd 3.6, that this member is no learner.
//!   NOSPACE does not make a member unready: it still serves reads.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use ballast_proto::etcdserverpb::{AlarmType, RangeRequest};
use serde::Serialize;

use crate::auth::{AuthInfo, ROOT_USER};
use crate::server::EtcdServer;

type HealthRouter = Router<Arc<EtcdServer>>;

/// Adds `/health` and, where the emulated etcd release has them, `/livez` and
/// `/readyz` with a path per check, as etcd's `HandleHealth` does on both the
/// client port and `--listen-metrics-urls`.
pub fn routes(mut r: HealthRouter, emulated_version: &str) -> HealthRouter {
    r = r.route("/health", any(health));
    let release = release(emulated_version);
    if release < (3, 5, 11) {
        return r;
    }
    for probe in [Probe::Livez, Probe::Readyz] {
        let checks = probe.checks(release);
        r =
            r.route(
                probe.path(),
                any(move |State(s), m, RawQuery(q)| async move {
                    probe_all(s, m, q, probe, checks).await
                }),
            );
        for &check in checks {
            let path = format!("{}/{}", probe.path(), check.name());
            r = r.route(
                &path,
                any(move |State(s), m, RawQuery(q)| async move {
                    probe_one(s, m, q, probe, check).await
                }),
            );
        }
    }
    r
}

/// `3.5.17` → (3, 5, 17); what does not parse counts as 0.
fn release(version: &str) -> (u32, u32, u32) {
    let mut parts = version
        .split('.')
        .map(|p| p.trim_start_matches('v').parse::<u32>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

/// etcd's JSON, field order included.
#[derive(Serialize)]
struct Health {
    health: &'static str,
    reason: String,
}

/// The query parameters etcd reads.
#[derive(Default)]
struct Params {
    /// `exclude=NOSPACE` (repeatable): alarms that do not make it unhealthy.
    excluded: Vec<String>,
    /// `serializable=true`: check this member only, not the cluster.
    serializable: bool,
}

fn params(query: Option<&str>) -> Params {
    let mut p = Params::default();
    let mut serializable = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "exclude" if !v.is_empty() => p.excluded.push(v.into_owned()),
            // Go's Query().Get: the first value counts.
            "serializable" => {
                serializable.get_or_insert(v == "true");
            }
            _ => {}
        }
    }
    p.serializable = serializable.unwrap_or(false);
    p
}

async fn health(
    State(s): State<Arc<EtcdServer>>,
    method: Method,
    RawQuery(q): RawQuery,
) -> Response {
    if method != Method::GET {
        tracing::warn!(status_code = 405, "/health error");
        return method_not_allowed();
    }
    let p = params(q.as_deref());
    let reason = check(&s, &p).await;
    let m = &s.metrics;
    let text_plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    match reason {
        None => {
            m.health_success.inc();
            let body = json(Health {
                health: "true",
                reason: String::new(),
            });
            (StatusCode::OK, text_plain, body).into_response()
        }
        Some(reason) => {
            m.health_failures.inc();
            let body = json(Health {
                health: "false",
                reason,
            });
            tracing::warn!(output = %body, status_code = 503, "/health error");
            go_error(StatusCode::SERVICE_UNAVAILABLE, body)
        }
    }
}

/// Go's `http.Error`: plain text, `nosniff`, and a newline after the text.
fn go_error(status: StatusCode, text: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (status, headers, text + "\n").into_response()
}

/// etcd's health handlers take GET only (not even HEAD).
fn method_not_allowed() -> Response {
    let mut r = go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed".into());
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
    r
}

fn json(h: Health) -> String {
    serde_json::to_string(&h).unwrap_or_default()
}

/// Why the member is unhealthy, in etcd's words, or None.
async fn check(s: &EtcdServer, p: &Params) -> Option<String> {
    for a in s.alarms.list() {
        let (name, reason) = match AlarmType::try_from(a.alarm) {
            Ok(AlarmType::Nospace) => ("NOSPACE", "ALARM NOSPACE"),
            Ok(AlarmType::Corrupt) => ("CORRUPT", "ALARM CORRUPT"),
            _ => ("NONE", "ALARM UNKNOWN"),
        };
        if !p.excluded.iter().any(|e| e == name) {
            tracing::warn!(alarm = name, "serving /health false due to an alarm");
            return Some(reason.to_string());
        }
    }
    if !p.serializable && s.raft.leader() == 0 {
        tracing::warn!("serving /health false; no leader");
        return Some("RAFT NO LEADER".to_string());
    }
    // etcd reads one key; the read itself is local once linearized.
    if !p.serializable {
        if let Err(e) = s.linearize().await {
            tracing::warn!(error = %e, "serving /health false; Range fails");
            return Some(format!("RANGE ERROR:{e}"));
        }
    }
    None
}

/// The two probe endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    Livez,
    Readyz,
}

impl Probe {
    fn path(self) -> &'static str {
        match self {
            Probe::Livez => "/livez",
            Probe::Readyz => "/readyz",
        }
    }

    /// The checks, in the order they run and are listed. (etcd keeps them in a
    /// Go map, so its order varies from request to request; the set is the same.)
    fn checks(self, release: (u32, u32, u32)) -> &'static [Check] {
        use Check::*;
        match self {
            Probe::Livez => &[SerializableRead],
            Probe::Readyz if release < (3, 6, 0) => {
                &[DataCorruption, SerializableRead, LinearizableRead]
            }
            Probe::Readyz => &[
                DataCorruption,
                SerializableRead,
                LinearizableRead,
                NonLearner,
            ],
        }
    }
}

/// One named check of `/livez` or `/readyz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// No CORRUPT alarm is active, on any member.
    DataCorruption,
    /// This member can read its own store.
    SerializableRead,
    /// A read the leader confirmed: there is a leader and a quorum.
    LinearizableRead,
    /// This member votes (etcd 3.6).
    NonLearner,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
            Check::NonLearner => "non_learner",
        }
    }

    /// Ok, or the error text etcd prints after `failed: `.
    async fn run(self, s: &EtcdServer) -> Result<(), String> {
        match self {
            Check::DataCorruption => {
                let corrupt = AlarmType::Corrupt as i32;
                if s.alarms.list().iter().any(|a| a.alarm == corrupt) {
                    return Err("alarm activated: CORRUPT".into());
                }
                Ok(())
            }
            Check::SerializableRead => read(s, true).await,
            Check::LinearizableRead => read(s, false).await,
            Check::NonLearner => match s.check_not_learner() {
                Ok(()) => Ok(()),
                Err(_) => Err("not supported for learner".into()),
            },
        }
    }
}

/// etcd's read check: a one-key, keys-only range as root, so that neither auth
/// nor the caller's permissions decide the answer. Linearizable means what it
/// means inside etcd's server, below the gRPC layer: wait for the leader's read
/// index, then read locally, so a learner passes it too (etcd refuses learners
/// linearizable reads only in its gRPC interceptor; `non_learner` is the check
/// for that). The only call into the typed request methods here.
async fn read(s: &EtcdServer, serializable: bool) -> Result<(), String> {
    if !serializable {
        s.linearize().await.map_err(|e| e.to_string())?;
    }
    let root = AuthInfo {
        username: ROOT_USER.to_string(),
        revision: s.auth.revision(),
    };
    let r = RangeRequest {
        keys_only: true,
        limit: 1,
        serializable: true,
        ..Default::default()
    };
    match s.range(&root, r).await {
        Ok(_) => Ok(()),
        Err(st) => Err(st.message().to_string()),
    }
}

/// The probe query parameters etcd reads.
#[derive(Default, Debug, PartialEq, Eq)]
struct ProbeParams {
    /// `exclude=<check>` (repeatable; the root path only): checks not to run.
    excluded: BTreeSet<String>,
    /// `verbose` (any value): list the checks on success too.
    verbose: bool,
}

fn probe_params(query: Option<&str>) -> ProbeParams {
    let mut p = ProbeParams::default();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "exclude" if !v.is_empty() => {
                p.excluded.insert(v.into_owned());
            }
            "verbose" => p.verbose = true,
            _ => {}
        }
    }
    p
}

/// `/livez` or `/readyz`: every check not excluded. Excluding a check this
/// release does not have is only logged, as etcd does for compatibility.
async fn probe_all(
    s: Arc<EtcdServer>,
    method: Method,
    query: Option<String>,
    probe: Probe,
    checks: &'static [Check],
) -> Response {
    if method != Method::GET {
        return probe_method_not_allowed(probe.path());
    }
    let p = probe_params(query.as_deref());
    let unknown: Vec<String> = p
        .excluded
        .iter()
        .filter(|e| !checks.iter().any(|c| c.name() == e.as_str()))
        .map(|e| format!("{e:?}"))
        .collect();
    if !unknown.is_empty() {
        tracing::warn!(
            missing_health_checks = %unknown.join(","),
            "some health checks cannot be excluded"
        );
    }
    let run = checks
        .iter()
        .copied()
        .filter(|c| !p.excluded.contains(c.name()));
    let outcome = run_checks(&s, run).await;
    probe_response(probe.path(), p.verbose, outcome)
}

/// `/livez/<check>` or `/readyz/<check>`: that check alone (`exclude` is
/// ignored, `verbose` is not).
async fn probe_one(
    s: Arc<EtcdServer>,
    method: Method,
    query: Option<String>,
    probe: Probe,
    check: Check,
) -> Response {
    let path = format!("{}/{}", probe.path(), check.name());
    if method != Method::GET {
        return probe_method_not_allowed(&path);
    }
    let p = probe_params(query.as_deref());
    let outcome = run_checks(&s, [check]).await;
    probe_response(&path, p.verbose, outcome)
}

/// Whether every check passed, and etcd's listing: `[+]<name> ok` or
/// `[-]<name> failed: <error>`, a line each.
async fn run_checks(s: &EtcdServer, checks: impl IntoIterator<Item = Check>) -> (bool, String) {
    let mut ok = true;
    let mut listing = String::new();
    for c in checks {
        match c.run(s).await {
            Ok(()) => listing += &format!("[+]{} ok\n", c.name()),
            Err(e) => {
                ok = false;
                listing += &format!("[-]{} failed: {e}\n", c.name());
            }
        }
    }
    (ok, listing)
}

/// 200 `ok` (after the listing if `verbose`), or 503 with the listing always.
fn probe_response(path: &str, verbose: bool, (ok, listing): (bool, String)) -> Response {
    if !ok {
        tracing::error!(path, reason = %listing, status_code = 503, "Health check error");
        return go_error(StatusCode::SERVICE_UNAVAILABLE, listing);
    }
    tracing::debug!(path, reason = %listing, status_code = 200, "Health check OK");
    let body = if verbose {
        listing + "ok\n"
    } else {
        "ok\n".into()
    };
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (StatusCode::OK, headers, body).into_response()
}

fn probe_method_not_allowed(path: &str) -> Response {
    tracing::warn!(path, status_code = 405, "Health request error");
    method_not_allowed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_exist_from_etcd_3_5_11_and_readyz_gains_non_learner_in_3_6() {
        assert_eq!(release("3.5.17"), (3, 5, 17));
        assert_eq!(release("3.6.0-rc.1"), (3, 6, 0));
        assert!(release("3.5.10") < (3, 5, 11));
        assert!(release("3.4.30") < (3, 5, 11));
        let names = |r| -> Vec<_> { Probe::Readyz.checks(r).iter().map(|c| c.name()).collect() };
        assert_eq!(
            names(release("3.5.17")),
            ["data_corruption", "serializable_read", "linearizable_read"]
        );
        assert_eq!(names(release("3.6.16")).last(), Some(&"non_learner"));
        assert_eq!(
            Probe::Livez.checks(release("3.6.16")),
            [Check::SerializableRead]
        );
    }

    #[test]
    fn probe_parameters_as_etcd_reads_them() {
        let p = probe_params(Some("exclude=a&exclude=&exclude=a&exclude=b&verbose"));
        assert_eq!(p.excluded.into_iter().collect::<Vec<_>>(), ["a", "b"]);
        assert!(p.verbose);
        assert!(probe_params(Some("verbose=false")).verbose);
        assert!(!probe_params(Some("verbosity=1")).verbose);
        assert_eq!(probe_params(None), ProbeParams::default());
    }

    #[test]
    fn query_parameters_as_etcd_reads_them() {
        let p = params(Some("exclude=NOSPACE&exclude=CORRUPT&serializable=true"));
        assert_eq!(p.excluded, ["NOSPACE", "CORRUPT"]);
        assert!(p.serializable);
        let p = params(Some("serializable=1&exclude=&serializable=true"));
        assert!(p.excluded.is_empty());
        assert!(!p.serializable);
        assert!(!params(None).serializable);
    }

    #[test]
    fn json_matches_etcd_byte_for_byte() {
        let ok = Health {
            health: "true",
            reason: String::new(),
        };
        assert_eq!(json(ok), r#"{"health":"true","reason":""}"#);
    }
}
