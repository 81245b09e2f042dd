//! Request bodies to prost messages and prost messages to response bodies, with
//! the serde impls `pbjson-build` generated for the etcd types.

use axum::body::{Body, BodyDataStream};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{Buf, BytesMut};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::dialect::{json_response, Dialect};

/// The gRPC response metadata etcd's gateway passes on as a header
/// (`Grpc-Metadata-<key>`); etcd's gRPC responses carry only their content type.
const GRPC_METADATA_CONTENT_TYPE: (HeaderName, HeaderValue) = (
    HeaderName::from_static("grpc-metadata-content-type"),
    HeaderValue::from_static("application/grpc"),
);

/// The request in a unary call's body. As etcd's gateway, reads the first JSON
/// value and ignores what follows it, and takes an empty body for the default
/// (empty) request.
pub fn decode<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, serde_json::Error> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<T>();
    match values.next() {
        None => Ok(T::default()),
        Some(r) => r,
    }
}

/// A successful unary answer.
pub fn ok<T: Serialize>(dialect: Dialect, msg: &T) -> Response {
    match serde_json::to_vec(msg) {
        Ok(body) => with_grpc_metadata(json_response(StatusCode::OK, body)),
        // Only an enum value outside its proto enum fails to serialize.
        Err(e) => dialect.error(&tonic::Status::internal(e.to_string())),
    }
}

/// Adds the header every successful answer of etcd's gateway has.
pub fn with_grpc_metadata(mut r: Response) -> Response {
    r.headers_mut()
        .insert(GRPC_METADATA_CONTENT_TYPE.0, GRPC_METADATA_CONTENT_TYPE.1);
    r
}

/// One chunk of a streamed answer: `{"result":<message>}` and a newline.
pub fn result_chunk<T: Serialize>(msg: &T) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(Serialize)]
    struct Chunk<'a, T> {
        result: &'a T,
    }
    let mut buf = serde_json::to_vec(&Chunk { result: msg })?;
    buf.push(b'\n');
    Ok(buf)
}

/// Why a streamed request body yields no further message.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Body(#[from] axum::Error),
    #[error("request message larger than max ({0} bytes)")]
    TooLarge(usize),
}

/// The successive JSON values of a streaming call's request body (any
/// whitespace between them), read as they arrive.
pub struct MessageReader {
    body: BodyDataStream,
    buf: BytesMut,
    ended: bool,
    /// The most a single JSON value may take.
    max: usize,
}

impl MessageReader {
    pub fn new(body: Body, max: usize) -> Self {
        MessageReader {
            body: body.into_data_stream(),
            buf: BytesMut::new(),
            ended: false,
            max,
        }
    }

    /// The next message, or `None` once the body ended.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ReadError> {
        loop {
            let mut values = serde_json::Deserializer::from_slice(&self.buf).into_iter::<T>();
            match values.next() {
                Some(Ok(msg)) => {
                    let used = values.byte_offset();
                    self.buf.advance(used);
                    return Ok(Some(msg));
                }
                // A truncated value only counts as an error once the body ended.
                Some(Err(e)) if !e.is_eof() || self.ended => return Err(e.into()),
                None if self.ended => return Ok(None),
                // Incomplete (or only whitespace so far): wait for more.
                _ => {}
            }
            if self.buf.len() > self.max {
                return Err(ReadError::TooLarge(self.max));
            }
            match self.body.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk?),
                None => self.ended = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_proto::etcdserverpb::{range_request::SortOrder, RangeRequest, StatusResponse};

    #[test]
    fn requests_accept_what_etcds_gateway_accepts() {
        // Both field spellings, numbers as strings or numbers, enums by name or number,
        // unknown fields, trailing data after the first value.
        let r: RangeRequest = decode(
            br#"{"key":"Zm9v","rangeEnd":"Zm9w","limit":"2","revision":3,"sort_order":"DESCEND","x":1} junk"#,
        )
        .unwrap();
        assert_eq!(r.key, b"foo");
        assert_eq!(r.range_end, b"fop");
        assert_eq!((r.limit, r.revision), (2, 3));
        assert_eq!(r.sort_order, SortOrder::Descend as i32);
        let r: RangeRequest = decode(br#"{"sort_order":1, "key":"Zm9v"}"#).unwrap();
        assert_eq!(r.sort_order, SortOrder::Ascend as i32);
        // URL-safe base64 without padding, as protojson accepts.
        let r: RangeRequest = decode(br#"{"key":"_-8"}"#).unwrap();
        assert_eq!(r.key, [0xff, 0xef]);
        assert_eq!(
            decode::<RangeRequest>(b"").unwrap(),
            RangeRequest::default()
        );
        assert_eq!(
            decode::<RangeRequest>(b"  \n").unwrap(),
            RangeRequest::default()
        );
        assert!(decode::<RangeRequest>(b"{bad").is_err());
    }

    #[test]
    fn answers_use_the_proto_names_and_omit_defaults() {
        let s = StatusResponse {
            version: "3.5.17".into(),
            db_size: 20480,
            leader: 7,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"version":"3.5.17","dbSize":"20480","leader":"7"}"#
        );
        assert_eq!(
            String::from_utf8(result_chunk(&s).unwrap()).unwrap(),
            "{\"result\":{\"version\":\"3.5.17\",\"dbSize\":\"20480\",\"leader\":\"7\"}}\n"
        );
    }

    #[tokio::test]
    async fn streamed_bodies_yield_each_value_as_it_completes() {
        let chunks: Vec<Result<&'static str, std::io::Error>> = vec![
            Ok(r#"{"key":"Zm9v"} {"ke"#),
            Ok(r#"y":"YmFy"}"#),
            Ok("\n {bad"),
        ];
        let body = Body::from_stream(futures::stream::iter(chunks));
        let mut r = MessageReader::new(body, 1024);
        let a: RangeRequest = r.next().await.unwrap().unwrap();
        let b: RangeRequest = r.next().await.unwrap().unwrap();
        assert_eq!(
            (a.key.as_slice(), b.key.as_slice()),
            (&b"foo"[..], &b"bar"[..])
        );
        assert!(matches!(
            r.next::<RangeRequest>().await,
            Err(ReadError::Json(_))
        ));

        let body = Body::from(r#"{"key":"Zm9v"}  "#);
        let mut r = MessageReader::new(body, 1024);
        assert!(r.next::<RangeRequest>().await.unwrap().is_some());
        assert!(r.next::<RangeRequest>().await.unwrap().is_none());
    }
}
