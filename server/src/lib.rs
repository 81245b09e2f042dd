//! Ballast: an etcd v3 compatible server.
//!
//! Request flow: `api` (gRPC handlers) turns a client request into a
//! `raft` proposal; once the Raft log entry is durable and committed, `apply`
//! executes it against the `mvcc` store, the `lease` table and the alarm list,
//! answers the waiting handler and feeds `watch`.

pub mod config;
pub mod raft;
