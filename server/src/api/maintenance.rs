//! The Maintenance service: status, alarms, defragmentation, hashes and
//! snapshots.

use std::pin::Pin;
use std::sync::Arc;

use ballast_proto::etcdserverpb::maintenance_server::Maintenance;
use ballast_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
    DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse,
    MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request as Req, Response, Status};

use crate::error::EtcdError;
use crate::server::EtcdServer;

pub struct MaintenanceService(pub Arc<EtcdServer>);

fn alarm_name(a: i32) -> &'static str {
    match AlarmType::try_from(a) {
        Ok(AlarmType::Nospace) => "NOSPACE",
        Ok(AlarmType::Corrupt) => "CORRUPT",
        _ => "NONE",
    }
}

impl MaintenanceService {
    /// etcd's authMaintenanceServer: defragment, hashes, snapshots and leader
    /// moves are for holders of the root role while auth is enabled.
    async fn admin<T>(&self, req: &Req<T>) -> Result<(), Status> {
        let who = self.0.caller(req).await?;
        self.0.check_admin(&who)
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    #[tracing::instrument(
        name = "etcdserverpb.Maintenance/Alarm",
        level = "debug",
        skip_all,
        fields(
            action = req.get_ref().action,
            alarm = req.get_ref().alarm,
        )
    )]
    async fn alarm(&self, req: Req<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let who = self.0.caller(&req).await?;
        Ok(Response::new(self.0.alarm(&who, req.into_inner()).await?))
    }

    #[tracing::instrument(name = "etcdserverpb.Maintenance/Status", level = "debug", skip_all)]
    async fn status(&self, _: Req<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let s = &self.0;
        let backend = s.store.backend();
        let errors = s
            .alarms
            .list()
            .iter()
            .map(|a| format!("memberID:{} alarm:{} ", a.member_id, alarm_name(a.alarm)))
            .collect();
        Ok(Response::new(StatusResponse {
            header: s.header(s.store.current_revision()),
            version: s.cfg.emulated_etcd_version.clone(),
            db_size: backend.size() as i64,
            leader: s.raft.leader(),
            raft_index: s
                .raft
                .status
                .commit
                .load(std::sync::atomic::Ordering::Relaxed),
            raft_term: s.raft.term(),
            raft_applied_index: s.applied_index(),
            errors,
            db_size_in_use: backend.size_in_use() as i64,
            is_learner: s.members.get(s.member_id).is_some_and(|m| m.is_learner),
        }))
    }

    #[tracing::instrument(
        name = "etcdserverpb.Maintenance/Defragment",
        level = "debug",
        skip_all
    )]
    async fn defragment(
        &self,
        req: Req<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.admin(&req).await?;
        tracing::info!(path = %self.0.db_path().display(), "starting defragmentation");
        let before = self.0.store.backend().size();
        self.0.defragment().await.map_err(Status::internal)?;
        let after = self.0.store.backend().size();
        tracing::info!(
            size_before = before,
            size_after = after,
            "finished defragmentation"
        );
        // etcd (3.4 to 3.6) answers without a header, and clients may check that.
        Ok(Response::new(DefragmentResponse { header: None }))
    }

    #[tracing::instrument(name = "etcdserverpb.Maintenance/Hash", level = "debug", skip_all)]
    async fn hash(&self, req: Req<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.admin(&req).await?;
        let s = self.0.clone();
        let hash = tokio::task::spawn_blocking(move || s.store.hash_kv(0))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(HashResponse {
            header: self.0.header(hash.revision),
            hash: hash.hash,
        }))
    }

    #[tracing::instrument(
        name = "etcdserverpb.Maintenance/HashKV",
        level = "debug",
        skip_all,
        fields(revision = req.get_ref().revision)
    )]
    async fn hash_kv(&self, req: Req<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        self.admin(&req).await?;
        let rev = req.into_inner().revision;
        let s = self.0.clone();
        let hash = tokio::task::spawn_blocking(move || s.store.hash_kv(rev))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(HashKvResponse {
            header: self.0.header(self.0.store.current_revision()),
            hash: hash.hash,
            compact_revision: hash.compacted,
            hash_revision: hash.revision,
        }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

    #[tracing::instrument(name = "etcdserverpb.Maintenance/Snapshot", level = "debug", skip_all)]
    async fn snapshot(
        &self,
        req: Req<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.admin(&req).await?;
        let s = self.0.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = send_snapshot(&s, &tx) {
                let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    #[tracing::instrument(
        name = "etcdserverpb.Maintenance/MoveLeader",
        level = "debug",
        skip_all,
        fields(target = req.get_ref().target_id)
    )]
    async fn move_leader(
        &self,
        req: Req<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.admin(&req).await?;
        let target = req.into_inner().target_id;
        if self.0.raft.leader() != self.0.member_id {
            return Err(EtcdError::NotLeader.into());
        }
        // Only a voting member can lead.
        match self.0.members.get(target) {
            Some(m) if !m.is_learner => {}
            _ => return Err(EtcdError::BadLeaderTransferee.into()),
        }
        if target != self.0.member_id {
            tracing::info!(
                transferee = format!("{target:x}"),
                "leadership transfer starting"
            );
            self.0.raft.transfer_leader(target);
            let deadline = tokio::time::Instant::now() + self.0.cfg.election_timeout * 5;
            while self.0.raft.leader() != target {
                if tokio::time::Instant::now() >= deadline {
                    return Err(EtcdError::Timeout.into());
                }
                tokio::time::sleep(self.0.cfg.heartbeat_interval).await;
            }
        }
        // Without a header, as etcd answers.
        Ok(Response::new(MoveLeaderResponse { header: None }))
    }

    #[tracing::instrument(name = "etcdserverpb.Maintenance/Downgrade", level = "debug", skip_all)]
    async fn downgrade(
        &self,
        _: Req<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented("ballast: downgrade is not supported"))
    }
}

/// Writes an etcd snapshot database from one backend read transaction (so
/// it is consistent while writes go on) into a temporary file in the
/// member's snap dir, then streams it followed by its SHA-256. The file has
/// no name (the OS frees it when the handle closes), so nothing is left
/// behind even if the member is killed mid-stream.
fn send_snapshot(
    s: &EtcdServer,
    tx: &mpsc::Sender<Result<SnapshotResponse, Status>>,
) -> crate::error::Result<()> {
    use crate::error::Error;
    let file = tempfile::tempfile_in(s.cfg.member_dir().join("snap"))
        .map_err(|e| Error::io("create snapshot file", e))?;
    let txn = s.store.backend().read()?;
    let cluster_version = crate::snapshot::layout::cluster_version(&s.cfg.emulated_etcd_version);
    let (file, size) = crate::snapshot::export::write_db(&txn, file, &cluster_version)?;
    drop(txn);
    tracing::info!(size, "sending database snapshot to client");
    crate::snapshot::stream(file, |blob, remaining_bytes| {
        // No header, as etcd (3.4 to 3.6) sends none on this stream.
        let msg = SnapshotResponse {
            header: None,
            remaining_bytes,
            blob,
            version: String::new(),
        };
        tx.blocking_send(Ok(msg))
            .map_err(|_| Error::Other("client went away".into()))
    })?;
    tracing::info!(size, "sent database snapshot to client");
    Ok(())
}
