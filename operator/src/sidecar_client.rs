//! Asks a member pod's sidecar over plain HTTP (its port 2382, inside the cluster). A few
//! small JSON documents do not justify a general HTTP client crate: this is hyper's own
//! connection API, which the workspace already builds.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::error::Error;

/// The sidecar's port (`--listen-health`).
pub const PORT: u16 = 2382;

/// The body of `GET http://{ip}:2382{path}`, when the answer is 200.
pub async fn get(ip: &str, path: &str) -> Result<String, Error> {
    request(ip, hyper::Method::GET, path, None).await
}

/// `PUT`s `body` (JSON) to `http://{ip}:2382{path}`; the answer's body when it is 200, and
/// the sidecar's reason otherwise.
pub async fn put_json(ip: &str, path: &str, body: String) -> Result<String, Error> {
    request(ip, hyper::Method::PUT, path, Some(body)).await
}

async fn request(
    ip: &str,
    method: hyper::Method,
    path: &str,
    body: Option<String>,
) -> Result<String, Error> {
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
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, &host);
    if body.is_some() {
        request = request.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| fail(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(e.to_string()))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        return Err(fail(format!("{path} answered {status}: {text}")));
    }
    Ok(text)
}
