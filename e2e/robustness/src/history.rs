//! What a run records: every KV and lease call with its invocation and completion time, and
//! every watch response as it arrived. The checker sees nothing else, so all it concludes
//! comes from what clients observed, as a user would.
//!
//! Times are nanoseconds since the run started, on one monotonic clock shared by all
//! clients (so "A completed before B was invoked" can be compared across clients).

use serde::{Deserialize, Serialize};

/// Nanoseconds since the start of the run.
pub type Time = u64;

/// One client of the run (a connection with its own sequence of calls).
pub type ClientId = u32;

/// A key-value pair as the server returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    /// 0 when the key has no lease.
    pub lease: i64,
}

/// A call as the client made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// A single-key get; `revision` 0 reads the newest state.
    Get {
        key: String,
        revision: i64,
        serializable: bool,
    },
    /// A get of every key under `prefix` (the whole store the traffic uses).
    List {
        prefix: String,
        revision: i64,
        serializable: bool,
    },
    Put {
        key: String,
        value: String,
        /// 0 for no lease.
        lease: i64,
    },
    Delete {
        key: String,
    },
    /// Compare-and-set, as kube-apiserver updates: if the key's mod_revision equals
    /// `expected_mod_revision` (0: the key does not exist) put `value`, else get the key.
    CompareAndSet {
        key: String,
        expected_mod_revision: i64,
        value: String,
    },
    LeaseGrant {
        ttl: i64,
    },
    LeaseRevoke {
        id: i64,
    },
    /// Compaction of the key-value history up to `revision` (watches and reads from before it
    /// are then answered "compacted").
    Compact {
        revision: i64,
    },
}

impl Request {
    /// A get or a list: a call that changes nothing.
    pub fn is_read(&self) -> bool {
        matches!(self, Request::Get { .. } | Request::List { .. })
    }

    /// A read served from the member's own state, not linearizable.
    pub fn is_serializable(&self) -> bool {
        matches!(
            self,
            Request::Get {
                serializable: true,
                ..
            } | Request::List {
                serializable: true,
                ..
            }
        )
    }
}

/// What the server answered to a call that succeeded. `revision` is the response
/// header's revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Get {
        revision: i64,
        kv: Option<KeyValue>,
    },
    List {
        revision: i64,
        kvs: Vec<KeyValue>,
    },
    Put {
        revision: i64,
    },
    Delete {
        revision: i64,
        deleted: i64,
    },
    CompareAndSet {
        revision: i64,
        succeeded: bool,
        /// The key as read by the failure branch (None when it does not exist or succeeded).
        kv: Option<KeyValue>,
    },
    LeaseGrant {
        revision: i64,
        id: i64,
    },
    LeaseRevoke {
        revision: i64,
    },
    Compact {
        revision: i64,
    },
}

impl Response {
    /// The response header's revision.
    pub fn revision(&self) -> i64 {
        match self {
            Response::Get { revision, .. }
            | Response::List { revision, .. }
            | Response::Put { revision }
            | Response::Delete { revision, .. }
            | Response::CompareAndSet { revision, .. }
            | Response::LeaseGrant { revision, .. }
            | Response::LeaseRevoke { revision }
            | Response::Compact { revision } => *revision,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Ok(Response),
    /// The call failed with this error text. For a write the outcome is unknown (it may
    /// have been applied, at any time after the call), unless the checker knows the error
    /// to be definite; a failed read has no effect and says nothing.
    Error(String),
}

/// One call of one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub client: ClientId,
    /// When the call was made.
    pub call: Time,
    /// When its answer (or error) arrived.
    pub ret: Time,
    pub request: Request,
    pub outcome: Outcome,
}

/// The kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// One event of a watch response. For a delete, `kv` has the key and the deletion's
/// `mod_revision` (other fields as the server sent them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

/// One watch response as it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchResponse {
    pub time: Time,
    /// The response header's revision.
    pub revision: i64,
    pub events: Vec<WatchEvent>,
    /// Non-zero when the server cancelled the watch because `start_revision` was compacted.
    pub compact_revision: i64,
    pub canceled: bool,
    /// A progress notification (no events).
    pub progress_notify: bool,
}

/// One watch stream: created with `start_revision` (0: from now) on `[key, range_end)`
/// (`range_end` empty: just `key`), and everything it delivered until it ended. A watcher
/// that loses its stream resumes with a new `WatchSession` from the revision after the last
/// one it saw, so one logical watcher is a sequence of sessions with the same `watcher`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchSession {
    pub client: ClientId,
    /// Which logical watcher this session belongs to.
    pub watcher: u32,
    pub key: String,
    pub range_end: String,
    pub start_revision: i64,
    pub prev_kv: bool,
    /// When the watch was requested.
    pub call: Time,
    pub responses: Vec<WatchResponse>,
    /// Why the stream ended (None: the run stopped it).
    pub error: Option<String>,
}

/// Everything one run recorded.
///
/// The durability check needs the store's final state: after the traffic stops, the driver
/// records one more linearizable `List` of the traffic's prefix as a normal operation (the
/// checker takes the last `Ok` linearizable `List` invoked after every other operation
/// returned).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct History {
    pub operations: Vec<Operation>,
    pub watches: Vec<WatchSession>,
    /// Every lease the run granted (leases are granted with a TTL and never kept alive
    /// unless `kept_alive`), so the checker knows from when each may expire.
    pub leases: Vec<LeaseRecord>,
}

/// A lease the run granted, for the lease checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub id: i64,
    pub ttl: i64,
    /// When the grant was invoked (the lease may expire from `granted + ttl` seconds on).
    pub granted: Time,
    pub kept_alive: bool,
}

impl History {
    /// The history as JSON, so a failing run can be saved and replayed through the checker.
    pub fn to_json(&self) -> Result<String, crate::Error> {
        Ok(serde_json::to_string(self)?)
    }

    pub fn from_json(text: &str) -> Result<History, crate::Error> {
        Ok(serde_json::from_str(text)?)
    }
}
