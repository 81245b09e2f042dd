//! Protocol Buffers and gRPC bindings for Ballast.
//!
//! Ballast speaks the etcd v3 API so that existing etcd clients and tools work
//! unchanged. This crate holds Ballast's own `.proto` rendition of that API
//! (wire-compatible with etcd 3.5) plus Ballast's internal Raft payload, and
//! compiles them with `tonic-prost-build` against the system `protoc`. Keeping
//! the generated code in its own crate means the (slow) code generation runs
//! only when a `.proto` file changes.
//!
//! The etcd packages' messages also implement serde's `Serialize` and
//! `Deserialize` in the proto3 JSON mapping with the .proto field names (see
//! `build.rs`), which is what etcd's gRPC JSON gateway speaks.
//!
//! The modules mirror the protobuf packages and sit side by side at the crate
//! root, because prost refers across packages with relative paths such as
//! `super::mvccpb::KeyValue`.

/// Storage-level types: `KeyValue` and watch `Event` (package `mvccpb`).
pub mod mvccpb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("mvccpb");
    include!(concat!(env!("OUT_DIR"), "/mvccpb.serde.rs"));
}

/// Stored auth records: users, roles, permissions (package `authpb`).
pub mod authpb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("authpb");
    include!(concat!(env!("OUT_DIR"), "/authpb.serde.rs"));
}

/// The client API: KV, Watch, Lease, Cluster, Maintenance and Auth services
/// (package `etcdserverpb`).
pub mod etcdserverpb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("etcdserverpb");
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.serde.rs"));
}

/// The Lock service (package `v3lockpb`).
pub mod v3lockpb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("v3lockpb");
}

/// The Election service (package `v3electionpb`).
pub mod v3electionpb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("v3electionpb");
}

/// Package `ballast.*`. Nested like the protobuf package so that the generated
/// `super::super::etcdserverpb::...` paths resolve; use [`crate::internal`].
mod ballast {
    /// Ballast's Raft log entry payload (package `ballast.internal`).
    pub mod internal {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("ballast.internal");
    }
}

pub use ballast::internal;
