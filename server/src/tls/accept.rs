//! Accepting TLS connections. Handshakes run in their own tasks, off the accept loop, so a
//! slow or hostile client can't hold up everyone else; only established connections are
//! handed on. Refused ones are logged as etcd logs them ("rejected connection").

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_stream::{Stream, StreamExt as _};

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Established connections waiting for the server to pick them up.
const READY_QUEUE: usize = 128;

/// A server-side TLS acceptor with the checks etcd makes after the handshake.
#[derive(Clone)]
pub struct Acceptor {
    pub(super) acceptor: tokio_rustls::TlsAcceptor,
    /// etcd's peer-listener check that a client certificate's SANs name the remote address.
    pub(super) check_san: bool,
}

impl Acceptor {
    /// Accepts on `listener` until the returned receiver is dropped.
    pub fn spawn(&self, listener: TcpListener) -> mpsc::Receiver<(TlsConn, SocketAddr)> {
        let (tx, rx) = mpsc::channel(READY_QUEUE);
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    () = tx.closed() => return,
                };
                let (tcp, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let this = this.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, this.handshake(tcp, addr)).await {
                        Ok(Ok(conn)) => {
                            let _ = tx.send((TlsConn(Transport::Tcp(conn)), addr)).await;
                        }
                        Ok(Err((server_name, e))) => reject(addr, &server_name, &e),
                        Err(_) => reject(addr, "", "TLS handshake timed out"),
                    }
                });
            }
        });
        rx
    }

    /// Accepts unix socket connections from `incoming` (a `unixs` URL's socket, kept open
    /// until the returned receiver is dropped). Their address is unspecified (0.0.0.0:0):
    /// a unix peer has none, so etcd's peer check that the certificate names the remote
    /// address is not made; the chain, CN and hostname checks are.
    pub fn spawn_unix<S>(&self, mut incoming: S) -> mpsc::Receiver<(TlsConn, SocketAddr)>
    where
        S: Stream<Item = io::Result<UnixStream>> + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(READY_QUEUE);
        let acceptor = self.acceptor.clone();
        let addr = SocketAddr::from(([0, 0, 0, 0], 0));
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = incoming.next() => a,
                    () = tx.closed() => return,
                };
                let stream = match accepted {
                    Some(Ok(s)) => s,
                    Some(Err(e)) => {
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                    None => return,
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(conn)) => {
                            let _ = tx.send((TlsConn(Transport::Unix(conn)), addr)).await;
                        }
                        Ok(Err(e)) => reject(addr, "", &e.to_string()),
                        Err(_) => reject(addr, "", "TLS handshake timed out"),
                    }
                });
            }
        });
        rx
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
    ) -> Result<TlsStream<TcpStream>, (String, String)> {
        let conn = self
            .acceptor
            .accept(tcp)
            .await
            .map_err(|e| (String::new(), e.to_string()))?;
        let session = conn.get_ref().1;
        let server_name = session.server_name().unwrap_or_default().to_string();
        if self.check_san {
            if let Some(leaf) = session.peer_certificates().and_then(|c| c.first()) {
                super::identity::check_san(leaf, addr.ip())
                    .await
                    .map_err(|e| (server_name, e))?;
            }
        }
        Ok(conn)
    }
}

fn reject(addr: SocketAddr, server_name: &str, error: &str) {
    tracing::warn!(
        remote_addr = %addr,
        server_name,
        error,
        "rejected connection"
    );
}

/// An established server-side TLS connection, over TCP or a unix socket.
pub struct TlsConn(Transport);

enum Transport {
    Tcp(TlsStream<TcpStream>),
    Unix(TlsStream<UnixStream>),
}

/// Calls `$f` on the TLS stream, whichever transport is under it.
macro_rules! on_stream {
    ($self:expr, $s:ident => $f:expr) => {
        match &mut $self.get_mut().0 {
            Transport::Tcp($s) => $f,
            Transport::Unix($s) => $f,
        }
    };
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        on_stream!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_stream!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, s => Pin::new(s).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_stream!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.0 {
            Transport::Tcp(s) => s.is_write_vectored(),
            Transport::Unix(s) => s.is_write_vectored(),
        }
    }
}

impl TlsConn {
    /// The subject CN of the client's verified certificate, if it sent one:
    /// with --client-cert-auth, the user a request without a token runs as.
    pub fn client_common_name(&self) -> Option<String> {
        let certs = match &self.0 {
            Transport::Tcp(s) => s.get_ref().1.peer_certificates(),
            Transport::Unix(s) => s.get_ref().1.peer_certificates(),
        };
        let leaf = certs?.first()?;
        super::identity::common_names(leaf).into_iter().next()
    }
}

/// Lets tonic serve it (the peer port); request extensions get the TCP addresses (none
/// over a unix socket).
impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        match &self.0 {
            Transport::Tcp(s) => s.get_ref().0.connect_info(),
            Transport::Unix(_) => tonic::transport::server::TcpConnectInfo {
                local_addr: None,
                remote_addr: None,
            },
        }
    }
}

/// Builds an acceptor from a server config.
pub fn acceptor(config: Arc<rustls::ServerConfig>, check_san: bool) -> Acceptor {
    Acceptor {
        acceptor: tokio_rustls::TlsAcceptor::from(config),
        check_san,
    }
}
