//! Leader election with a `coordination.k8s.io/v1` Lease, so that of several operator
//! replicas exactly one reconciles.
//!
//! kube-runtime has no leader election, and the `kube-leader-election` crate is built on an
//! older kube major version (it would put two kube and k8s-openapi versions in the build).
//! The protocol is small, so it lives here, with the same semantics as client-go's
//! `leaderelection` Lease lock: the holder renews `renewTime`; anybody may take the Lease
//! once `renewTime + leaseDurationSeconds` has passed; every write carries the
//! `resourceVersion` it read, so of two candidates racing for an expired Lease the API
//! server lets exactly one win (the other gets 409 Conflict). The decision is the pure
//! [`decide`]; [`LeaseLock`] only reads and writes the Lease.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

use crate::error::Error;

/// What to do with the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// No Lease exists: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Its holder let it expire (or released it): take it over.
    TakeOver,
    /// Somebody else holds it.
    Follow {
        /// The current holder.
        holder: String,
    },
}

/// Decides what `identity` does with `lease` at `now`.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> LeaseDecision {
    let Some(lease) = lease else {
        return LeaseDecision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder == identity {
        return LeaseDecision::Renew;
    }
    if holder.is_empty() {
        return LeaseDecision::TakeOver;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    let renewed = spec
        .renew_time
        .or(spec.acquire_time)
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    if renewed + duration < now {
        LeaseDecision::TakeOver
    } else {
        LeaseDecision::Follow { holder }
    }
}

/// The Lease `identity` writes for `decision` (`None` when following).
pub fn next_lease(
    current: Option<&Lease>,
    decision: &LeaseDecision,
    identity: &str,
    duration: Duration,
    now: Timestamp,
    name: &str,
    namespace: &str,
) -> Option<Lease> {
    let prev = current.and_then(|l| l.spec.clone()).unwrap_or_default();
    let spec = match decision {
        LeaseDecision::Follow { .. } => return None,
        LeaseDecision::Renew => LeaseSpec {
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(duration.as_secs() as i32),
            ..prev
        },
        LeaseDecision::Create | LeaseDecision::TakeOver => LeaseSpec {
            holder_identity: Some(identity.to_string()),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(duration.as_secs() as i32),
            lease_transitions: Some(
                prev.lease_transitions.unwrap_or(0) + i32::from(current.is_some()),
            ),
            ..LeaseSpec::default()
        },
    };
    let metadata = match current {
        Some(l) => l.metadata.clone(),
        None => ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
    };
    Some(Lease {
        metadata,
        spec: Some(spec),
    })
}

/// A Lease-based lock in one namespace.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    namespace: String,
    identity: String,
    /// How long a Lease stays valid without renewal.
    pub duration: Duration,
    /// How often the holder renews and a follower retries.
    pub retry: Duration,
}

impl LeaseLock {
    /// A lock on Lease `namespace/name` for `identity` (the pod name).
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(5),
        }
    }

    /// One round: read, decide, write. `Ok(true)` while this process leads; a lost race
    /// (409) is `Ok(false)`, not an error.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, Error> {
        let current = self.api.get_opt(&self.name).await?;
        let now = Timestamp::now();
        let decision = decide(current.as_ref(), &self.identity, now);
        let Some(lease) = next_lease(
            current.as_ref(),
            &decision,
            &self.identity,
            self.duration,
            now,
            &self.name,
            &self.namespace,
        ) else {
            return Ok(false);
        };
        let written = match decision {
            LeaseDecision::Create => self.api.create(&PostParams::default(), &lease).await,
            _ => {
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until this process holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(self.retry).await;
        }
    }

    /// Keeps renewing; returns when the Lease is lost (somebody else took it, or renewal
    /// kept failing until it expired), at which point the caller must stop acting.
    pub async fn hold(&self) {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.retry).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the leader lease");
                    // Give up a little before the Lease can expire, so we never act while
                    // somebody else may already hold it.
                    if last_renewed.elapsed() + self.retry >= self.duration {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: Timestamp, secs: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("ballast-operator".into()),
                namespace: Some("ops".into()),
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(secs),
                lease_transitions: Some(2),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn decisions() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        assert_eq!(decide(None, "a", now), LeaseDecision::Create);
        let fresh = lease("b", now - SignedDuration::from_secs(5), 15);
        assert_eq!(
            decide(Some(&fresh), "a", now),
            LeaseDecision::Follow { holder: "b".into() }
        );
        assert_eq!(decide(Some(&fresh), "b", now), LeaseDecision::Renew);
        let stale = lease("b", now - SignedDuration::from_secs(16), 15);
        assert_eq!(decide(Some(&stale), "a", now), LeaseDecision::TakeOver);
        let released = lease("", now, 15);
        assert_eq!(decide(Some(&released), "a", now), LeaseDecision::TakeOver);
    }

    #[test]
    fn takeover_counts_transition_and_keeps_resource_version() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let stale = lease("b", now - SignedDuration::from_secs(60), 15);
        let next = next_lease(
            Some(&stale),
            &LeaseDecision::TakeOver,
            "a",
            Duration::from_secs(15),
            now,
            "ballast-operator",
            "ops",
        )
        .unwrap();
        let spec = next.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(next.metadata.resource_version.as_deref(), Some("7"));
        let renewed = next_lease(
            Some(&lease("a", now, 15)),
            &LeaseDecision::Renew,
            "a",
            Duration::from_secs(15),
            now,
            "ballast-operator",
            "ops",
        )
        .unwrap();
        assert_eq!(renewed.spec.unwrap().lease_transitions, Some(2));
    }
}
