//! Ballast: an etcd v3 compatible server.
//!
//! Request flow: `api` (gRPC handlers) validates a client request and calls
//! the typed method of `server` for it, which turns it into a `raft` proposal;
//! once the Raft log entry is durable and committed, `apply` executes it
//! against the `mvcc` store, the `lease` table and the alarm list, answers the
//! waiting method and feeds `watch`. `bootstrap` opens a member's data before
//! `server` starts it.

pub mod alarm;
pub mod api;
pub mod apply;
pub mod auth;
pub mod backup;
pub mod bootstrap;
pub mod cluster;
pub mod compactor;
pub mod concurrency;
pub mod config;
pub mod error;
/// Entry points of the fuzz targets (`server/fuzz/`) and their stable regression test.
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod leadership;
pub mod lease;
pub mod listen;
pub mod logging;
pub mod maintenance;
pub mod metrics;
pub mod mvcc;
pub mod peer;
pub mod raft;
pub mod server;
pub mod sidecar;
pub mod signals;
pub mod snapshot;
pub mod tls;
pub mod watch;
