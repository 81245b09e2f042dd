//! The gRPC methods etcd serves, with the stream type go-grpc-prometheus
//! labels them with (which the request path alone does not tell), and
//! grpc-go's names for status codes.

use std::collections::HashMap;
use std::sync::OnceLock;

pub struct GrpcMethod {
    pub service: &'static str,
    pub method: &'static str,
    /// `unary`, `client_stream`, `server_stream` or `bidi_stream`.
    pub kind: &'static str,
    /// etcd registers these with go-grpc-prometheus at startup, so their
    /// counters exist (at 0) before the first call; `increase()` and
    /// `rate()` need that to see the first one.
    pub preinit: bool,
}

const fn m(
    service: &'static str,
    method: &'static str,
    kind: &'static str,
    preinit: bool,
) -> GrpcMethod {
    GrpcMethod {
        service,
        method,
        kind,
        preinit,
    }
}

const KV: &str = "etcdserverpb.KV";
const WATCH: &str = "etcdserverpb.Watch";
const LEASE: &str = "etcdserverpb.Lease";
const CLUSTER: &str = "etcdserverpb.Cluster";
const MAINT: &str = "etcdserverpb.Maintenance";
const AUTH: &str = "etcdserverpb.Auth";
const HEALTH: &str = "grpc.health.v1.Health";
const LOCK: &str = "v3lockpb.Lock";
const ELECTION: &str = "v3electionpb.Election";
const U: &str = "unary";

/// etcd 3.5's services. Lock and Election are registered after the metrics
/// are initialised in etcd, so they only appear once called.
pub static METHODS: &[GrpcMethod] = &[
    m(KV, "Range", U, true),
    m(KV, "Put", U, true),
    m(KV, "DeleteRange", U, true),
    m(KV, "Txn", U, true),
    m(KV, "Compact", U, true),
    m(WATCH, "Watch", "bidi_stream", true),
    m(LEASE, "LeaseGrant", U, true),
    m(LEASE, "LeaseRevoke", U, true),
    m(LEASE, "LeaseKeepAlive", "bidi_stream", true),
    m(LEASE, "LeaseTimeToLive", U, true),
    m(LEASE, "LeaseLeases", U, true),
    m(CLUSTER, "MemberAdd", U, true),
    m(CLUSTER, "MemberRemove", U, true),
    m(CLUSTER, "MemberUpdate", U, true),
    m(CLUSTER, "MemberList", U, true),
    m(CLUSTER, "MemberPromote", U, true),
    m(MAINT, "Alarm", U, true),
    m(MAINT, "Status", U, true),
    m(MAINT, "Defragment", U, true),
    m(MAINT, "Hash", U, true),
    m(MAINT, "HashKV", U, true),
    m(MAINT, "Snapshot", "server_stream", true),
    m(MAINT, "MoveLeader", U, true),
    m(MAINT, "Downgrade", U, true),
    m(AUTH, "AuthEnable", U, true),
    m(AUTH, "AuthDisable", U, true),
    m(AUTH, "AuthStatus", U, true),
    m(AUTH, "Authenticate", U, true),
    m(AUTH, "UserAdd", U, true),
    m(AUTH, "UserGet", U, true),
    m(AUTH, "UserList", U, true),
    m(AUTH, "UserDelete", U, true),
    m(AUTH, "UserChangePassword", U, true),
    m(AUTH, "UserGrantRole", U, true),
    m(AUTH, "UserRevokeRole", U, true),
    m(AUTH, "RoleAdd", U, true),
    m(AUTH, "RoleGet", U, true),
    m(AUTH, "RoleList", U, true),
    m(AUTH, "RoleDelete", U, true),
    m(AUTH, "RoleGrantPermission", U, true),
    m(AUTH, "RoleRevokePermission", U, true),
    m(HEALTH, "Check", U, true),
    m(HEALTH, "Watch", "server_stream", true),
    m(LOCK, "Lock", U, false),
    m(LOCK, "Unlock", U, false),
    m(ELECTION, "Campaign", U, false),
    m(ELECTION, "Proclaim", U, false),
    m(ELECTION, "Leader", U, false),
    m(ELECTION, "Observe", "server_stream", false),
    m(ELECTION, "Resign", U, false),
];

/// The method a request path (`/etcdserverpb.KV/Put`) calls, if etcd has it.
pub fn lookup(path: &str) -> Option<&'static GrpcMethod> {
    static BY_PATH: OnceLock<HashMap<String, &'static GrpcMethod>> = OnceLock::new();
    BY_PATH
        .get_or_init(|| {
            METHODS
                .iter()
                .map(|m| (format!("/{}/{}", m.service, m.method), m))
                .collect()
        })
        .get(path)
        .copied()
}

/// grpc-go's `codes.Code.String()` for each status code, by number.
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The label for a `grpc-status` value; codes outside the standard set
/// count as `Unknown`, as grpc-go maps them on receipt.
pub fn code_name(status: &[u8]) -> &'static str {
    std::str::from_utf8(status)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .and_then(|n| CODE_NAMES.get(n).copied())
        .unwrap_or("Unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_methods_and_types() {
        let put = lookup("/etcdserverpb.KV/Put").expect("Put");
        assert_eq!((put.service, put.method, put.kind), (KV, "Put", "unary"));
        assert_eq!(
            lookup("/etcdserverpb.Watch/Watch").unwrap().kind,
            "bidi_stream"
        );
        assert_eq!(
            lookup("/etcdserverpb.Maintenance/Snapshot").unwrap().kind,
            "server_stream"
        );
        assert!(lookup("/etcdserverpb.KV/Nope").is_none());
        assert!(lookup("/v3/kv/put").is_none());
    }

    #[test]
    fn status_codes_use_grpc_go_names() {
        assert_eq!(code_name(b"0"), "OK");
        assert_eq!(code_name(b"1"), "Canceled");
        assert_eq!(code_name(b"11"), "OutOfRange");
        assert_eq!(code_name(b"16"), "Unauthenticated");
        assert_eq!(code_name(b"99"), "Unknown");
        assert_eq!(code_name(b"x"), "Unknown");
    }
}
