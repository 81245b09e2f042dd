//! The peer port: receives Raft traffic from other members (over TLS for `https` peer URLs).

use std::sync::Arc;

use ballast_proto::internal::raft_peer_server::{RaftPeer, RaftPeerServer};
use ballast_proto::internal::{MembersRequest, MembersResponse, RaftBatch, SendAck};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status, Streaming};

use crate::error::{Error, Result};
use crate::listen::Bound;
use crate::raft::transport;
use crate::server::EtcdServer;

struct PeerService(Arc<EtcdServer>);

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn send(&self, req: Request<Streaming<RaftBatch>>) -> Result<Response<SendAck>, Status> {
        let mut stream = req.into_inner();
        while let Some(batch) = stream.message().await? {
            if batch.cluster_id != self.0.cluster_id {
                // etcd's texts, on both sides (the sender reads our ID back).
                tracing::error!(
                    "request cluster ID mismatch (got {:x} want {:x})",
                    batch.cluster_id,
                    self.0.cluster_id
                );
                let mut st = Status::failed_precondition("cluster ID mismatch");
                if let Ok(v) = format!("{:x}", self.0.cluster_id).parse() {
                    st.metadata_mut().insert(transport::CLUSTER_ID_HEADER, v);
                }
                return Err(st);
            }
            if batch.to != self.0.member_id {
                return Err(Status::failed_precondition(format!(
                    "member {:x} is not {:x}",
                    self.0.member_id, batch.to
                )));
            }
            let bytes = prost::Message::encoded_len(&batch);
            self.0.metrics.peer_received(batch.from, bytes);
            for bytes in &batch.messages {
                match transport::decode(bytes) {
                    Ok(m) => self.0.raft.step(m),
                    Err(e) => {
                        return Err(Status::invalid_argument(format!(
                            "undecodable raft message: {e}"
                        )))
                    }
                }
            }
        }
        Ok(Response::new(SendAck {}))
    }

    async fn lease_renew(
        &self,
        req: Request<ballast_proto::etcdserverpb::LeaseKeepAliveRequest>,
    ) -> Result<Response<ballast_proto::etcdserverpb::LeaseKeepAliveResponse>, Status> {
        let id = req.into_inner().id;
        let ttl = match self.0.lessor.renew(id) {
            Ok(ttl) => ttl,
            Err(crate::error::EtcdError::LeaseNotFound) => 0,
            Err(e) => return Err(e.into()),
        };
        let header = self.0.header(self.0.store.current_revision());
        Ok(Response::new(
            ballast_proto::etcdserverpb::LeaseKeepAliveResponse { header, id, ttl },
        ))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<ballast_proto::etcdserverpb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<ballast_proto::etcdserverpb::LeaseTimeToLiveResponse>, Status> {
        Ok(Response::new(crate::api::lease::time_to_live_here(
            &self.0,
            req.into_inner(),
        )))
    }

    async fn probe(
        &self,
        _: Request<ballast_proto::internal::ProbeRequest>,
    ) -> Result<Response<ballast_proto::internal::ProbeResponse>, Status> {
        Ok(Response::new(ballast_proto::internal::ProbeResponse {}))
    }

    async fn member_promote(
        &self,
        req: Request<ballast_proto::etcdserverpb::MemberPromoteRequest>,
    ) -> Result<Response<ballast_proto::etcdserverpb::MemberPromoteResponse>, Status> {
        let members = crate::api::cluster::promote_here(&self.0, req.into_inner().id).await?;
        Ok(Response::new(
            ballast_proto::etcdserverpb::MemberPromoteResponse {
                header: self.0.header(self.0.store.current_revision()),
                members: members.iter().map(|m| m.to_pb()).collect(),
            },
        ))
    }

    async fn members(
        &self,
        _: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        let members = self.0.members.list().iter().map(|m| m.to_pb()).collect();
        Ok(Response::new(MembersResponse {
            cluster_id: self.0.cluster_id,
            members,
        }))
    }
}

/// What a joining member learns from the cluster.
pub struct JoinInfo {
    pub cluster_id: u64,
    pub member_id: u64,
    pub members: Vec<crate::cluster::Member>,
}

/// For --initial-cluster-state existing: asks the other members named in
/// --initial-cluster for the membership, checks that --initial-cluster lists
/// exactly it (this member must have been added with `etcdctl member add`
/// first) and takes the ID the cluster gave this member.
pub async fn discover(
    cfg: &crate::config::Config,
    dialer: &crate::tls::PeerDialer,
) -> Result<JoinInfo> {
    let local = crate::bootstrap::initial_members(cfg);
    for url in other_peer_urls(cfg) {
        let resp = match ask_members(dialer, &url, std::time::Duration::from_secs(5)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(remote_peer_url = %url, "failed to get cluster information: {e}");
                continue;
            }
        };
        let members = crate::cluster::from_pb(&resp.members);
        let member_id =
            crate::cluster::join::validate(resp.cluster_id, &members, &local, &cfg.name)
                .map_err(Error::Other)?;
        return Ok(JoinInfo {
            cluster_id: resp.cluster_id,
            member_id,
            members,
        });
    }
    Err(Error::Other(
        "cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs".into(),
    ))
}

/// For --initial-cluster-state new on an empty data dir: whether the other members already
/// know this member as one that has served (it published its client URLs), i.e. its data
/// dir was lost and it must rejoin as a replacement rather than bootstrap again, which would
/// forget its votes. As etcd, peers that do not answer count as "no"; they get 5 s (etcd
/// gives 1 s, which a loaded machine can miss, letting the member bootstrap again).
pub async fn already_bootstrapped(
    cfg: &crate::config::Config,
    dialer: &crate::tls::PeerDialer,
) -> Option<u64> {
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
    let me = crate::bootstrap::initial_members(cfg)
        .into_iter()
        .find(|m| m.name == cfg.name)?;
    for url in other_peer_urls(cfg) {
        let resp = match ask_members(dialer, &url, TIMEOUT).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(remote_peer_url = %url, "no cluster information from peer: {e}");
                continue;
            }
        };
        let known = crate::cluster::from_pb(&resp.members)
            .into_iter()
            .find(|m| m.id == me.id);
        return known.filter(|m| !m.client_urls.is_empty()).map(|m| m.id);
    }
    None
}

/// The peer URLs of the other members named in --initial-cluster.
fn other_peer_urls(cfg: &crate::config::Config) -> impl Iterator<Item = String> + '_ {
    cfg.initial_cluster
        .iter()
        .filter(|(name, _)| *name != cfg.name)
        .map(|(_, url)| crate::raft::ids::url_string(url))
}

/// One peer's view of the membership, within `timeout`.
async fn ask_members(
    dialer: &crate::tls::PeerDialer,
    url: &str,
    timeout: std::time::Duration,
) -> std::result::Result<MembersResponse, String> {
    use ballast_proto::internal::raft_peer_client::RaftPeerClient;
    let ask = async {
        let ch = dialer.connect(url, timeout).await?;
        RaftPeerClient::new(ch)
            .members(MembersRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|e| e.message().to_string())
    };
    tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// Binds every --listen-peer-urls address (a TCP port, or a unix socket for `unix` URLs)
/// and serves Raft traffic on it.
pub async fn serve_peers(s: Arc<EtcdServer>) -> Result<()> {
    let mut tasks = Vec::new();
    for u in &s.cfg.listen_peer_urls {
        let bound = crate::listen::bind(u).await?;
        let svc = RaftPeerServer::new(PeerService(s.clone())).max_decoding_message_size(usize::MAX);
        // No `.tcp_nodelay(true)` here: tonic applies it only to listeners it binds itself,
        // never with `serve_with_incoming`; the accepted sockets get it below.
        let server = tonic::transport::Server::builder().add_service(svc);
        if matches!(u.scheme(), "https" | "unixs") {
            let acceptor = s.tls.peer.as_ref().ok_or_else(|| {
                Error::Other(format!(
                    "{u}: no peer TLS configured (--peer-cert-file, --peer-key-file or --peer-auto-tls)"
                ))
            })?;
            tracing::info!(address = %bound.label(), "serving peer traffic");
            // Handshakes (and etcd's certificate checks) happen before tonic sees a connection.
            let ready = match bound {
                Bound::Tcp(_, listener) => acceptor.spawn(listener),
                Bound::Unix(socket) => acceptor.spawn_unix(socket),
            };
            let ready =
                ReceiverStream::new(ready).map(|(conn, _addr)| Ok::<_, std::io::Error>(conn));
            tasks.push(tokio::spawn(server.serve_with_incoming(ready)));
            continue;
        }
        match bound {
            Bound::Tcp(addr, listener) => {
                tracing::info!(address = %addr, "serving peer traffic");
                // Nagle off on every accepted peer socket, as Go (etcd) has it on all TCP
                // sockets: otherwise a small frame this side writes (a LeaseRenew or Probe
                // answer, a WINDOW_UPDATE) waits for the ACK of the previous one, which the
                // other side may delay by up to 40 ms.
                let incoming = TcpListenerStream::new(listener).map(|accepted| {
                    accepted.inspect(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    })
                });
                tasks.push(tokio::spawn(server.serve_with_incoming(incoming)));
            }
            Bound::Unix(socket) => {
                tracing::info!(address = %socket.path().display(), "serving peer traffic");
                tasks.push(tokio::spawn(server.serve_with_incoming(socket)));
            }
        }
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
