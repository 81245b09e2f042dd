//! Ballast's Kubernetes operator: the `EtcdCluster` resource, the cluster's PKI, what runs
//! the members, and the reconcile loop.
//!
//! Decisions are pure functions of the spec and of what was observed ([`render`], [`tls`],
//! [`pki`], [`status`], [`leader::decide`]); [`controller`], [`members`] and
//! [`leader::LeaseLock`] are the only code that talks to Kubernetes or to the members.
#![warn(missing_docs)]

pub mod backup;
pub mod controller;
pub mod crd;
pub mod error;
pub mod leader;
pub mod lifecycle;
pub mod member_identity;
pub mod members;
pub mod membership;
pub mod metrics;
pub mod names;
pub mod pki;
pub mod quantity;
pub mod render;
pub mod sidecar_client;
pub mod status;
pub mod tls;
