//! Asks a member pod's sidecar over plain HTTP (its port 2382, inside the cluster). One GET
//! of a small JSON document does not justify a general HTTP client crate: this is hyper's
//! own connection API, which the workspace already builds.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::error::Error;

/// The sidecar's port (`--listen-health`).
pub const PORT: u16 = 2382;

/// The body of `GET http://{ip}:2382{path}`, when the answer is 200.
pub async fn get(ip: &str, path: &str) -> Result<String, Error> {
    let fail = |what: String| Error::Members(format!("sidecar at {ip}: {what}"));
    let host = if ip.contains(':') {
        format!("[{ip}]:{PORT}")
    } else {
        format!("{ip}:{PORT}")
    };
    let stream = tokio::net::TcpStream::connect(&host)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(e.to_string()))?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, &host)
        .body(Empty::<Bytes>::new())
        .map_err(|e| fail(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fail(format!("{path} answered {}", response.status())));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(e.to_string()))?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}
