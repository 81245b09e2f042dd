//! How etcd's gateway reports errors, which depends on the grpc-gateway major
//! version the emulated etcd release was built with: v1 for etcd 3.4 and 3.5,
//! v2 for 3.6.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tonic::{Code, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// grpc-gateway v1 (etcd 3.4, 3.5): `{"error","code","message"}` objects,
    /// plain-text 404/405 for unknown paths and methods.
    V1,
    /// grpc-gateway v2 (etcd 3.6): `google.rpc.Status` objects `{"code","message"}`,
    /// also for unknown paths (404) and methods (501).
    V2,
}

impl Dialect {
    /// The dialect of etcd `version` (`3.5.17`): v2 from 3.6 on.
    pub fn for_version(version: &str) -> Dialect {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        if (major, minor) >= (3, 6) {
            Dialect::V2
        } else {
            Dialect::V1
        }
    }

    /// grpc-gateway's `HTTPStatusFromCode`. FailedPrecondition is 400 in both
    /// versions (deliberately not 412); only Canceled changed, 408 → 499.
    pub fn http_status(self, code: Code) -> StatusCode {
        let n = match code {
            Code::Ok => 200,
            Code::Cancelled if self == Dialect::V1 => 408,
            Code::Cancelled => 499,
            Code::Unknown => 500,
            Code::InvalidArgument => 400,
            Code::DeadlineExceeded => 504,
            Code::NotFound => 404,
            Code::AlreadyExists => 409,
            Code::PermissionDenied => 403,
            Code::Unauthenticated => 401,
            Code::ResourceExhausted => 429,
            Code::FailedPrecondition => 400,
            Code::Aborted => 409,
            Code::OutOfRange => 400,
            Code::Unimplemented => 501,
            Code::Internal => 500,
            Code::Unavailable => 503,
            Code::DataLoss => 500,
        };
        StatusCode::from_u16(n).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The error object of a failed unary call (or of a streaming call that
    /// failed before its first message). v1: `{"error":m,"code":c,"message":m}`;
    /// v2: `{"code":c,"message":m}` (a `google.rpc.Status` without details).
    pub fn error_body(self, st: &Status) -> Value {
        let code = st.code() as i32;
        let message = st.message();
        let mut o = Map::new();
        if self == Dialect::V1 {
            o.insert("error".into(), json!(message));
        }
        o.insert("code".into(), json!(code));
        if self == Dialect::V1 || !message.is_empty() {
            o.insert("message".into(), json!(message));
        }
        Value::Object(o)
    }

    /// The last chunk of a stream that fails after it started:
    /// `{"error":{...}}`, with grpc-gateway v1's `StreamError` or v2's `Status`.
    pub fn stream_error_chunk(self, st: &Status) -> Value {
        let inner = match self {
            Dialect::V1 => {
                let http = self.http_status(st.code());
                let mut o = Map::new();
                o.insert("grpc_code".into(), json!(st.code() as i32));
                o.insert("http_code".into(), json!(http.as_u16()));
                if !st.message().is_empty() {
                    o.insert("message".into(), json!(st.message()));
                }
                o.insert(
                    "http_status".into(),
                    json!(http.canonical_reason().unwrap_or("")),
                );
                Value::Object(o)
            }
            Dialect::V2 => self.error_body(st),
        };
        json!({ "error": inner })
    }

    /// The HTTP response for a failed call.
    pub fn error(self, st: &Status) -> Response {
        let body = serde_json::to_vec(&self.error_body(st)).unwrap_or_default();
        json_response(self.http_status(st.code()), body)
    }

    /// A `/v3/` path no RPC is mapped to.
    pub fn not_found(self) -> Response {
        match self {
            Dialect::V1 => plain_text(StatusCode::NOT_FOUND, "Not Found\n"),
            Dialect::V2 => json_response(
                StatusCode::NOT_FOUND,
                br#"{"code":5,"message":"Not Found"}"#.to_vec(),
            ),
        }
    }

    /// A method other than POST on an RPC's path: 405 in v1, 501 (with
    /// Unimplemented's code) in v2.
    pub fn method_not_allowed(self) -> Response {
        match self {
            Dialect::V1 => plain_text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n"),
            Dialect::V2 => json_response(
                StatusCode::NOT_IMPLEMENTED,
                br#"{"code":12,"message":"Method Not Allowed"}"#.to_vec(),
            ),
        }
    }
}

pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Go's `http.NotFound`, etcd's answer for paths nothing serves.
pub fn go_not_found() -> Response {
    plain_text(StatusCode::NOT_FOUND, "404 page not found\n")
}

/// Go's `http.Error`.
fn plain_text(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_pick_the_grpc_gateway_generation() {
        assert_eq!(Dialect::for_version("3.4.23"), Dialect::V1);
        assert_eq!(Dialect::for_version("3.5.17"), Dialect::V1);
        assert_eq!(Dialect::for_version("3.6.0"), Dialect::V2);
        assert_eq!(Dialect::for_version("3.10.1"), Dialect::V2);
    }

    #[test]
    fn error_objects_of_both_generations() {
        let st = Status::out_of_range("etcdserver: mvcc: required revision is a future revision");
        assert_eq!(
            serde_json::to_string(&Dialect::V1.error_body(&st)).unwrap(),
            r#"{"error":"etcdserver: mvcc: required revision is a future revision","code":11,"message":"etcdserver: mvcc: required revision is a future revision"}"#
        );
        assert_eq!(
            serde_json::to_string(&Dialect::V2.error_body(&st)).unwrap(),
            r#"{"code":11,"message":"etcdserver: mvcc: required revision is a future revision"}"#
        );
        assert_eq!(Dialect::V1.http_status(st.code()), StatusCode::BAD_REQUEST);
        let st = Status::not_found("etcdserver: requested lease not found");
        assert_eq!(
            serde_json::to_string(&Dialect::V1.stream_error_chunk(&st)).unwrap(),
            r#"{"error":{"grpc_code":5,"http_code":404,"message":"etcdserver: requested lease not found","http_status":"Not Found"}}"#
        );
        assert_eq!(Dialect::V1.http_status(Code::Cancelled).as_u16(), 408);
        assert_eq!(Dialect::V2.http_status(Code::Cancelled).as_u16(), 499);
    }
}
