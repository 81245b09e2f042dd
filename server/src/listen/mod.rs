//! Client listeners: gRPC and HTTP/1.1 on the same port, as etcd serves them, over plain TCP
//! for `http` URLs and TLS for `https` ones.

mod h2_authority;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use url::Url;

use crate::error::{Error, Result};
use crate::server::auth::ClientCommonName;
use crate::server::EtcdServer;
use crate::tls::TlsConn;

/// Resolves a listen URL to a socket address (`localhost` → 127.0.0.1).
pub fn socket_addr(u: &Url) -> Result<SocketAddr> {
    let host = u
        .host_str()
        .ok_or_else(|| Error::Other(format!("listen URL {u} has no host")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = u
        .port()
        .ok_or_else(|| Error::Other(format!("listen URL {u} has no port")))?;
    let ip = if host == "localhost" {
        "127.0.0.1".parse().ok()
    } else {
        host.parse().ok()
    };
    let ip = ip.ok_or_else(|| {
        Error::Other(format!(
            "listen URL {u}: {host:?} is not an IP address (etcd requires one)"
        ))
    })?;
    Ok(SocketAddr::new(ip, port))
}

async fn bind(u: &Url) -> Result<(SocketAddr, TcpListener)> {
    let addr = socket_addr(u)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("listen on {u}"), e))?;
    Ok((addr, listener))
}

/// The client port's listener: every accepted connection gets TCP_NODELAY and goes through
/// [`h2_authority::AuthorityFix`], so etcdctl 3.4's `:authority: http://host:port` is accepted.
struct ClientListener(TcpListener);

/// An `https` client port: connections arrive with their TLS handshake done (see
/// [`crate::tls::Acceptor`]) and then go through the same [`h2_authority::AuthorityFix`].
struct TlsClientListener {
    ready: tokio::sync::mpsc::Receiver<(TlsConn, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsClientListener {
    type Io = h2_authority::AuthorityFix<TlsConn>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some((conn, addr)) => (h2_authority::AuthorityFix::new(conn, addr), addr),
            // The accept task only stops when this receiver is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl axum::serve::Listener for ClientListener {
    type Io = h2_authority::AuthorityFix<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own accept loop retries (with backoff) on errors such as EMFILE.
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.0).await;
        let _ = tcp.set_nodelay(true);
        (h2_authority::AuthorityFix::new(tcp, addr), addr)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Each request over TLS carries its connection's client certificate CN.
impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsClientListener>>
    for ClientCommonName
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsClientListener>) -> Self {
        ClientCommonName(stream.io().inner().client_common_name())
    }
}

/// Serves `app` over TLS with the client certificate settings, which etcd also uses for
/// https --listen-metrics-urls.
fn spawn_tls(
    s: &EtcdServer,
    u: &url::Url,
    listener: TcpListener,
    app: axum::Router,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let acceptor = s.tls.client.as_ref().ok_or_else(|| {
        Error::Other(format!(
            "{u}: no client TLS configured (--cert-file, --key-file or --auto-tls)"
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io(format!("listen on {u}"), e))?;
    let ready = acceptor.spawn(listener);
    let app = app.into_make_service_with_connect_info::<ClientCommonName>();
    Ok(tokio::spawn(async move {
        axum::serve(TlsClientListener { ready, local }, app).await
    }))
}

/// Binds every --listen-client-urls and --listen-metrics-urls address, serves metrics and
/// health at once, and serves clients only once `published` completes. As in etcd, a member
/// answers no client before its own attributes are committed, so whoever it serves already
/// sees its client URLs in `member list`; connections made earlier wait in the backlog.
pub async fn serve_clients(
    s: Arc<EtcdServer>,
    published: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let mut client_listeners = Vec::new();
    for u in &s.cfg.listen_client_urls {
        client_listeners.push((u, bind(u).await?));
    }
    let mut tasks = Vec::new();
    for u in &s.cfg.listen_metrics_urls {
        let (addr, listener) = bind(u).await?;
        tracing::info!(address = %addr, "serving metrics");
        let app = crate::http::metrics_router(s.clone());
        if u.scheme() == "https" {
            tasks.push(spawn_tls(&s, u, listener, app)?);
        } else {
            tasks.push(tokio::spawn(
                async move { axum::serve(listener, app).await },
            ));
        }
    }
    published.await;
    let grpc = crate::api::routes(&s).into_axum_router();
    let app = crate::http::client_router(s.clone(), grpc);
    for (u, (addr, listener)) in client_listeners {
        tracing::info!(address = %addr, "ready to serve client requests");
        let app = app.clone();
        if u.scheme() == "https" {
            tasks.push(spawn_tls(&s, u, listener, app)?);
            tracing::info!(address = %addr, "serving client traffic securely");
        } else {
            tracing::warn!(
                "serving insecure client requests on {addr}, this is strongly discouraged!"
            );
            tasks.push(tokio::spawn(async move {
                axum::serve(ClientListener(listener), app).await
            }));
        }
    }
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::io("serving clients", e)),
            Err(e) => return Err(Error::Other(format!("listener task failed: {e}"))),
        }
    }
    Ok(())
}
