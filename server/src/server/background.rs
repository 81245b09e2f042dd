//! The member's background tasks, started once it runs: watch syncing, lease
//! expiry, leader metrics, auto compaction, disk space, heap trimming; and the
//! NOSPACE alarm the apply thread asks for.

use std::sync::{Arc, Weak};
use std::time::Duration;

use ballast_proto::internal::internal_request::Request;

use super::EtcdServer;
use crate::error::EtcdError;

/// Starts every background task; each stops once the server is dropped.
pub(super) fn spawn(server: &Arc<EtcdServer>) {
    tokio::spawn(server.hub.clone().run_sync());
    tokio::spawn(expire_leases(Arc::downgrade(server)));
    tokio::spawn(crate::metrics::leader::run(Arc::downgrade(server)));
    tokio::spawn(crate::compactor::run(
        Arc::downgrade(server),
        server.cfg.compaction_retention(),
    ));
    tokio::spawn(super::disk_space::watch(Arc::downgrade(server)));
    tokio::spawn(super::heap_trim::run(Arc::downgrade(server)));
}

/// Raises NOSPACE through Raft so every member sees the same alarm.
pub(super) fn raise_nospace_alarm(server: Arc<EtcdServer>) {
    use ballast_proto::etcdserverpb::{alarm_request::AlarmAction, AlarmRequest, AlarmType};
    tokio::spawn(async move {
        let req = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: server.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(e) = server.propose(Request::Alarm(req)).await {
            tracing::warn!("raising the NOSPACE alarm failed: {e}");
        }
    });
}

/// The leader revokes expired leases through Raft.
async fn expire_leases(server: Weak<EtcdServer>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let Some(s) = server.upgrade() else { return };
        for id in s.lessor.take_expired() {
            let s = s.clone();
            tokio::spawn(async move {
                let req = ballast_proto::etcdserverpb::LeaseRevokeRequest { id };
                match s.propose(Request::LeaseRevoke(req)).await {
                    Ok(_) | Err(EtcdError::LeaseNotFound) => {}
                    Err(e) => tracing::warn!(
                        lease = format!("{id:016x}"),
                        "revoking expired lease failed: {e}"
                    ),
                }
            });
        }
    }
}
