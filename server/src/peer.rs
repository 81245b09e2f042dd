//! The peer port: receives Raft traffic from other members.

use std::sync::Arc;

use ballast_proto::internal::raft_peer_server::{RaftPeer, RaftPeerServer};
use ballast_proto::internal::{RaftBatch, SendAck};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::{Error, Result};
use crate::listen::socket_addr;
use crate::raft::transport;
use crate::server::EtcdServer;

struct PeerService(Arc<EtcdServer>);

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn send(&self, req: Request<Streaming<RaftBatch>>) -> Result<Response<SendAck>, Status> {
        let mut stream = req.into_inner();
        while let Some(batch) = stream.message().await? {
            if batch.cluster_id != self.0.cluster_id {
                tracing::warn!(
                    from = format!("{:x}", batch.from),
                    remote_cluster = format!("{:x}", batch.cluster_id),
                    local_cluster = format!("{:x}", self.0.cluster_id),
                    "rejected raft traffic from a member of another cluster"
                );
                return Err(Status::failed_precondition("cluster ID mismatch"));
            }
            if batch.to != self.0.member_id {
                return Err(Status::failed_precondition(format!("member {:x} is not {:x}", self.0.member_id, batch.to)));
            }
            for bytes in &batch.messages {
                match transport::decode(bytes) {
                    Ok(m) => self.0.raft.step(m),
                    Err(e) => return Err(Status::invalid_argument(format!("undecodable raft message: {e}"))),
                }
            }
        }
        Ok(Response::new(SendAck {}))
    }
}

/// Binds every --listen-peer-urls address and serves Raft traffic on it.
pub async fn serve_peers(s: Arc<EtcdServer>) -> Result<()> {
    let mut tasks = Vec::new();
    for u in &s.cfg.listen_peer_urls {
        if u.scheme() == "https" {
            return Err(Error::Other(format!("{u}: TLS peer listeners are not supported yet")));
        }
        let addr = socket_addr(u)?;
        let listener = TcpListener::bind(addr).await.map_err(|e| Error::io(format!("listen on peer URL {u}"), e))?;
        tracing::info!(address = %addr, "serving peer traffic");
        let svc = RaftPeerServer::new(PeerService(s.clone())).max_decoding_message_size(usize::MAX);
        tasks.push(tokio::spawn(
            tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(svc)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        ));
    }
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Other(format!("peer listener failed: {e}"))),
            Err(e) => return Err(Error::Other(format!("peer listener task failed: {e}"))),
        }
    }
    Ok(())
}
