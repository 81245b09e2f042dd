//! Dialing peers (Raft streams, joining, lease forwarding): plain gRPC for `http` peer URLs,
//! TLS with this member's peer certificate as client certificate for `https` ones, and the
//! same over a unix socket for `unix` and `unixs` ones.
//!
//! tonic's own TLS can't take a custom verifier, so TLS is done in a connector, and tonic is
//! given the URL with an `http` scheme (with its TLS feature on, it refuses `https` URLs it
//! has no TLS config for).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::{TcpStream, UnixStream};
use tonic::transport::{Channel, Endpoint};

/// Opens channels to peers; shared by everything that dials the peer port.
#[derive(Debug)]
pub struct PeerDialer {
    pub(super) config: Arc<rustls::ClientConfig>,
}

impl PeerDialer {
    /// A connected channel to a peer URL (`http://`, `https://`, `unix://` or `unixs://`).
    pub async fn connect(&self, url: &str, timeout: Duration) -> Result<Channel, String> {
        if url.starts_with("unix:") || url.starts_with("unixs:") {
            return self.connect_unix(url, timeout).await;
        }
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("bad peer URL {url}: {e}"))?;
        match uri.scheme_str() {
            Some("https") => {
                let authority = uri
                    .authority()
                    .ok_or_else(|| format!("peer URL {url} has no host"))?;
                let host = authority
                    .host()
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| format!("peer URL {url}: {e}"))?;
                let port = authority.port_u16().unwrap_or(443);
                let endpoint = Endpoint::from_shared(format!("http://{authority}"))
                    .map_err(|e| format!("bad peer URL {url}: {e}"))?
                    .connect_timeout(timeout);
                let connector = TlsConnector {
                    config: self.config.clone(),
                    name,
                    port,
                };
                endpoint
                    .connect_with_connector(connector)
                    .await
                    .map_err(|e| error_chain(&e))
            }
            _ => Endpoint::from_shared(url.to_string())
                .map_err(|e| format!("bad peer URL {url}: {e}"))?
                .connect_timeout(timeout)
                .tcp_nodelay(true)
                .connect()
                .await
                .map_err(|e| error_chain(&e)),
        }
    }
}

impl PeerDialer {
    /// A `unix://` or `unixs://` URL: gRPC over the unix socket etcd derives from it (host,
    /// port and path, so `unix://localhost:2380` is the socket `localhost:2380` in the
    /// working directory); for `unixs`, TLS over it, the peer verified under the URL's host.
    async fn connect_unix(&self, url: &str, timeout: Duration) -> Result<Channel, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("bad peer URL {url}: {e}"))?;
        let path = crate::listen::unix::socket_path(&parsed);
        // Only the :authority header comes from this; the connectors ignore it.
        let authority = match &parsed[url::Position::BeforeHost..url::Position::AfterPort] {
            "" => "localhost",
            a => a,
        };
        let endpoint = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| format!("bad peer URL {url}: {e}"))?
            .connect_timeout(timeout);
        let connected = if parsed.scheme() == "unixs" {
            let host = parsed
                .host_str()
                .filter(|h| !h.is_empty())
                .unwrap_or("localhost");
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| format!("peer URL {url}: {e}"))?;
            let config = self.config.clone();
            let connector = tower::service_fn(move |_: Uri| {
                let (path, config, name) = (path.clone(), config.clone(), name.clone());
                async move {
                    let stream = UnixStream::connect(path).await?;
                    let tls = tokio_rustls::TlsConnector::from(config)
                        .connect(name, stream)
                        .await?;
                    Ok::<_, io::Error>(TokioIo::new(tls))
                }
            });
            endpoint.connect_with_connector(connector).await
        } else {
            let connector = tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { UnixStream::connect(path).await.map(TokioIo::new) }
            });
            endpoint.connect_with_connector(connector).await
        };
        connected.map_err(|e| error_chain(&e))
    }
}

/// tonic's transport errors say only "transport error"; the cause (a refused certificate,
/// say) is further down the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// TCP, then a TLS handshake verifying the peer under the name from its URL.
#[derive(Clone)]
struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    port: u16,
}

type Connecting = Pin<
    Box<
        dyn Future<Output = io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>> + Send,
    >,
>;

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let tcp = TcpStream::connect((host, uri.port_u16().unwrap_or(this.port))).await?;
            let _ = tcp.set_nodelay(true);
            let tls = tokio_rustls::TlsConnector::from(this.config)
                .connect(this.name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}
