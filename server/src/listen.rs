//! Client listeners: gRPC and HTTP/1.1 on the same port, as etcd serves them.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use url::Url;

use crate::error::{Error, Result};
use crate::server::EtcdServer;

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

/// Binds every --listen-client-urls address and serves on it.
pub async fn serve_clients(s: Arc<EtcdServer>) -> Result<()> {
    let app = crate::api::routes(&s)
        .into_axum_router()
        .merge(crate::http::router(s.clone()));
    let mut tasks = Vec::new();
    for u in &s.cfg.listen_client_urls {
        if u.scheme() == "https" {
            return Err(Error::Other(format!(
                "{u}: TLS client listeners are not supported yet"
            )));
        }
        let addr = socket_addr(u)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(format!("listen on {u}"), e))?;
        tracing::info!(address = %addr, "ready to serve client requests");
        tracing::warn!("serving insecure client requests on {addr}, this is strongly discouraged!");
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app).await
        }));
    }
    for u in &s.cfg.listen_metrics_urls {
        let addr = socket_addr(u)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(format!("listen on {u}"), e))?;
        tracing::info!(address = %addr, "serving metrics");
        let app = crate::http::metrics_router(s.clone());
        tasks.push(tokio::spawn(
            async move { axum::serve(listener, app).await },
        ));
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
