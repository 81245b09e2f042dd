//! `GET /health` with etcd 3.5's semantics, checks and texts: unhealthy on
//! an active alarm (unless excluded), without a leader (unless
//! `serializable=true`), or when a range read fails (linearizable unless
//! `serializable=true`).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ballast_proto::etcdserverpb::AlarmType;
use serde::Serialize;

use crate::server::EtcdServer;

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

pub async fn health(State(s): State<Arc<EtcdServer>>, RawQuery(q): RawQuery) -> Response {
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
            // As Go's http.Error writes it.
            let nosniff = [(header::X_CONTENT_TYPE_OPTIONS, "nosniff")];
            (
                StatusCode::SERVICE_UNAVAILABLE,
                text_plain,
                nosniff,
                body + "\n",
            )
                .into_response()
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
