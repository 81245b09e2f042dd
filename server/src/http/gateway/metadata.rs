//! The gRPC request metadata of a gateway call, from the HTTP request headers,
//! as etcd's gateway forwards them.

use axum::http::HeaderMap;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};

/// The prefix of headers grpc-gateway passes on as metadata without it.
const GRPC_METADATA_PREFIX: &str = "grpc-metadata-";

/// `msg` as a gRPC request carrying the metadata of `headers`:
///
/// - `Authorization: <token>` as `authorization` (what grpc-gateway forwards; etcd
///   reads it when `token` is absent) and as `token` (what etcd's own clients send,
///   and what Ballast's gRPC handlers read), so the gateway authenticates exactly
///   as a gRPC client presenting the same token;
/// - `Grpc-Metadata-<key>: <value>` as `<key>`, grpc-gateway's way to pass any
///   other metadata through (binary `-bin` keys are skipped).
pub fn request<T>(headers: &HeaderMap, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    copy(headers, req.metadata_mut());
    req
}

fn copy(headers: &HeaderMap, md: &mut MetadataMap) {
    for (name, value) in headers {
        let Ok(value) = AsciiMetadataValue::try_from(value.as_bytes()) else {
            continue;
        };
        let name = name.as_str();
        if name == "authorization" {
            md.append("authorization", value.clone());
            md.append("token", value);
        } else if let Some(key) = name.strip_prefix(GRPC_METADATA_PREFIX) {
            if key.ends_with("-bin") {
                continue;
            }
            if let Ok(key) = AsciiMetadataKey::from_bytes(key.as_bytes()) {
                md.append(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_and_passed_through_metadata_arrive() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "abc.123".parse().unwrap());
        h.insert("grpc-metadata-hasleader", "true".parse().unwrap());
        h.insert("grpc-metadata-x-bin", "AAEC".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        let req = request(&h, ());
        let md = req.metadata();
        assert_eq!(md.get("token").unwrap(), "abc.123");
        assert_eq!(md.get("authorization").unwrap(), "abc.123");
        assert_eq!(md.get("hasleader").unwrap(), "true");
        assert!(md.get("content-type").is_none());
        assert!(md.get_bin("x-bin").is_none());
        assert_eq!(md.len(), 3);
    }
}
