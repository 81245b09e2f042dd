//! Client listeners: gRPC and HTTP/1.1 on the same port, as etcd serves them, over plain TCP
//! for `http` URLs, TLS for `https` ones, a unix socket for `unix` ones and TLS over a unix
//! socket for `unixs` ones.

// Visible to the crate for `crate::fuzzing`.
pub(crate) mod h2_authority;
pub mod unix;
mod write_batch;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use url::Url;

use crate::error::{Error, Result};
use crate::server::auth::ClientCommonName;
use crate::server::EtcdServer;
use crate::tls::TlsConn;
use h2_authority::AuthorityFix;
use write_batch::WriteBatch;

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

/// A bound listen URL.
pub enum Bound {
    Tcp(SocketAddr, TcpListener),
    Unix(unix::UnixSocket),
}

impl Bound {
    /// The address for logs: `host:port`, or the socket's path.
    pub fn label(&self) -> String {
        match self {
            Bound::Tcp(addr, _) => addr.to_string(),
            Bound::Unix(socket) => socket.path().display().to_string(),
        }
    }
}

/// Binds a listen URL: a TCP port for `http`/`https`, a unix socket for `unix`/`unixs`.
pub async fn bind(u: &Url) -> Result<Bound> {
    match u.scheme() {
        "unix" | "unixs" => Ok(Bound::Unix(unix::UnixSocket::bind(
            u,
            &unix::socket_path(u),
        )?)),
        _ => {
            let addr = socket_addr(u)?;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| Error::io(format!("listen on {u}"), e))?;
            Ok(Bound::Tcp(addr, listener))
        }
    }
}

/// What every client connection goes through, outermost first: responses batched into fewer
/// writes, then the `:authority` repair on what the client sends.
fn client_io<S>(conn: S, peer: impl std::fmt::Display) -> WriteBatch<AuthorityFix<S>> {
    WriteBatch::new(AuthorityFix::new(conn, peer))
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
    type Io = WriteBatch<AuthorityFix<TlsConn>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some((conn, addr)) => (client_io(conn, addr), addr),
            // The accept task only stops when this receiver is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl axum::serve::Listener for ClientListener {
    type Io = WriteBatch<AuthorityFix<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own accept loop retries (with backoff) on errors such as EMFILE.
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.0).await;
        let _ = tcp.set_nodelay(true);
        (client_io(tcp, addr), addr)
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
        ClientCommonName(stream.io().inner().inner().client_common_name())
    }
}

/// A `unix` client URL: the same service over a unix socket. Its connections have no
/// address of their own; logs name the socket.
struct UnixClientListener(unix::UnixSocket);

/// Pause after a failed accept (out of file descriptors, say) before trying again.
const ACCEPT_ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

impl axum::serve::Listener for UnixClientListener {
    type Io = WriteBatch<AuthorityFix<tokio::net::UnixStream>>;
    type Addr = std::path::PathBuf;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(stream) => {
                    let path = self.0.path().to_path_buf();
                    let label = format!("unix:{}", path.display());
                    return (client_io(stream, label), path);
                }
                Err(e) => {
                    tracing::warn!(path = %self.0.path().display(), "accepting a connection failed: {e}");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.0.path().to_path_buf())
    }
}

/// Serves `app` over TLS with the client certificate settings, which etcd also uses for
/// https --listen-metrics-urls.
fn spawn_tls(
    s: &EtcdServer,
    u: &url::Url,
    bound: Bound,
    app: axum::Router,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let acceptor = s.tls.client.as_ref().ok_or_else(|| {
        Error::Other(format!(
            "{u}: no client TLS configured (--cert-file, --key-file or --auto-tls)"
        ))
    })?;
    let (ready, local) = match bound {
        Bound::Tcp(local, listener) => (acceptor.spawn(listener), local),
        // A unixs socket: connections have no address of their own.
        Bound::Unix(socket) => (
            acceptor.spawn_unix(socket),
            SocketAddr::from(([0, 0, 0, 0], 0)),
        ),
    };
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
        let app = crate::http::metrics_router(s.clone());
        let bound = bind(u).await?;
        tracing::info!(address = %bound.label(), "serving metrics");
        if matches!(u.scheme(), "https" | "unixs") {
            tasks.push(spawn_tls(&s, u, bound, app)?);
            continue;
        }
        match bound {
            Bound::Tcp(_, listener) => {
                tasks.push(tokio::spawn(
                    async move { axum::serve(listener, app).await },
                ));
            }
            Bound::Unix(socket) => {
                tasks.push(tokio::spawn(async move {
                    axum::serve(UnixClientListener(socket), app).await
                }));
            }
        }
    }
    published.await;
    let grpc = crate::api::routes(&s).into_axum_router();
    let app = crate::http::client_router(s.clone(), grpc);
    for (u, bound) in client_listeners {
        let app = app.clone();
        if u.scheme() == "unixs" {
            let path = bound.label();
            tracing::info!(address = %path, "ready to serve client requests");
            tasks.push(spawn_tls(&s, u, bound, app)?);
            tracing::info!(address = %path, "serving client traffic securely");
            continue;
        }
        let (addr, listener) = match bound {
            Bound::Tcp(addr, listener) => (addr, listener),
            Bound::Unix(socket) => {
                let path = socket.path().display().to_string();
                tracing::info!(address = %path, "ready to serve client requests");
                tracing::warn!(
                    "serving insecure client requests on {path}, this is strongly discouraged!"
                );
                tasks.push(tokio::spawn(async move {
                    axum::serve(UnixClientListener(socket), app).await
                }));
                continue;
            }
        };
        tracing::info!(address = %addr, "ready to serve client requests");
        if u.scheme() == "https" {
            tasks.push(spawn_tls(&s, u, Bound::Tcp(addr, listener), app)?);
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
