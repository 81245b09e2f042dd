//! Repairs the HTTP/2 `:authority` that etcdctl 3.4 sends for per-endpoint commands.
//!
//! For `endpoint status`, `defrag`, `endpoint hashkv`, `snapshot save`... etcdctl 3.4 dials
//! the gRPC target `passthrough:///http://127.0.0.1:2379` and so sends the whole URL, scheme
//! included, as `:authority` (etcd issue #13192). Go's gRPC server accepts it; the `h2` crate
//! under hyper rejects it as malformed and resets the stream with PROTOCOL_ERROR.
//!
//! [`AuthorityFix`] sits between the accepted socket and hyper. On an HTTP/2 prior-knowledge
//! connection it decodes the client's first header block. A gRPC client sends the same
//! `:authority` on every request of a connection, so if that one is fine (every client but
//! etcdctl's per-endpoint dial) the block and the rest of the connection pass through byte for
//! byte, at no cost. Otherwise every header block of the connection is decoded with a decoder
//! that tracks the client's HPACK dynamic table, `http://host:port` becomes `host:port`, and the
//! block is re-encoded as plain literals that never insert into the server's table, so no
//! encoder state has to be kept in sync. Other frames, the server→client direction and HTTP/1
//! connections are never touched.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What an HTTP/2 prior-knowledge client (such as gRPC) sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may set: re-encoded blocks are cut into frames
/// no larger than this, which the server accepts whatever it advertised.
const MIN_MAX_FRAME_SIZE: usize = 16384;
/// Memory guard on one header block, compressed (HEADERS + CONTINUATIONs) and decoded (RFC 7541
/// entry sizes). hyper advertises a 16 KiB header list limit, so only a hostile client hits it.
const MAX_BLOCK: usize = 1 << 20;
/// hyper leaves SETTINGS_HEADER_TABLE_SIZE at its default, so the client's table can't grow past it.
const HEADER_TABLE_SIZE: usize = 4096;

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

enum State {
    /// Collecting the first bytes to tell an HTTP/2 preface from anything else.
    Sniff,
    /// HTTP/1.1, or HTTP/2 whose first `:authority` was fine: forward untouched.
    Passthrough,
    /// Inside the HTTP/2 frame stream; `skip` payload bytes of a non-header frame remain to forward.
    Frames { skip: usize },
    /// A protocol error was reported; the connection is being closed.
    Failed,
}

/// A header block being collected from a HEADERS frame and its CONTINUATION frames.
struct Block {
    stream_id: u32,
    end_stream: bool,
    fragment: Vec<u8>,
    /// The frames as received, to forward unchanged if the connection turns out not to need us.
    raw: Vec<u8>,
}

/// The 9-byte HTTP/2 frame header (RFC 9113 §4.1).
struct FrameHeader {
    len: usize,
    ty: u8,
    flags: u8,
    stream_id: u32,
}

impl FrameHeader {
    fn parse(b: &[u8]) -> Self {
        FrameHeader {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            ty: b[3],
            flags: b[4],
            stream_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    fn write(out: &mut Vec<u8>, len: usize, ty: u8, flags: u8, stream_id: u32) {
        out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&[ty, flags]);
        out.extend_from_slice(&stream_id.to_be_bytes());
    }
}

/// The client→server byte stream rewriter, free of IO so it can be fed any split of the input.
pub(crate) struct Rewriter {
    state: State,
    /// Bytes held back until a whole unit is in: the preface, a frame header, a header frame.
    pending: Vec<u8>,
    block: Option<Block>,
    decoder: loona_hpack::Decoder<'static>,
    /// Set once a header block needed repair: from then on every block is re-encoded.
    rewriting: bool,
}

impl Rewriter {
    pub(crate) fn new() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        Rewriter {
            state: State::Sniff,
            pending: Vec::new(),
            block: None,
            decoder,
            rewriting: false,
        }
    }

    fn is_passthrough(&self) -> bool {
        matches!(self.state, State::Passthrough)
    }

    /// Consumes client bytes, appending what the server should see to `out`.
    pub(crate) fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let result = self.feed_inner(data, out);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn feed_inner(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        while !data.is_empty() {
            match self.state {
                State::Failed => return Err(invalid("connection already failed")),
                State::Passthrough => {
                    out.extend_from_slice(data);
                    return Ok(());
                }
                State::Sniff => {
                    self.take(&mut data, PREFACE.len());
                    if !PREFACE.starts_with(&self.pending) {
                        self.state = State::Passthrough;
                    } else if self.pending.len() == PREFACE.len() {
                        self.state = State::Frames { skip: 0 };
                    } else {
                        continue;
                    }
                    out.append(&mut self.pending);
                }
                State::Frames { skip } if skip > 0 => {
                    let n = skip.min(data.len());
                    out.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    self.state = State::Frames { skip: skip - n };
                }
                State::Frames { .. } => {
                    if !self.take(&mut data, FRAME_HEADER_LEN) {
                        continue;
                    }
                    let hdr = FrameHeader::parse(&self.pending);
                    let in_block =
                        hdr.ty == HEADERS || (hdr.ty == CONTINUATION && self.block.is_some());
                    if !in_block {
                        if self.block.is_some() {
                            return Err(invalid("frame interleaved with a header block"));
                        }
                        out.append(&mut self.pending);
                        self.state = State::Frames { skip: hdr.len };
                        continue;
                    }
                    if hdr.len > MAX_BLOCK {
                        return Err(invalid(format!("{}-byte header frame", hdr.len)));
                    }
                    if self.take(&mut data, FRAME_HEADER_LEN + hdr.len) {
                        let frame = std::mem::take(&mut self.pending);
                        self.header_frame(&hdr, &frame, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves bytes from `data` into `pending` until it holds `want`; true once it does.
    fn take(&mut self, data: &mut &[u8], want: usize) -> bool {
        let n = want.saturating_sub(self.pending.len()).min(data.len());
        self.pending.extend_from_slice(&data[..n]);
        *data = &data[n..];
        self.pending.len() >= want
    }

    fn header_frame(
        &mut self,
        hdr: &FrameHeader,
        frame: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let payload = &frame[FRAME_HEADER_LEN..];
        let mut block = match self.block.take() {
            None => Block {
                stream_id: hdr.stream_id,
                end_stream: hdr.flags & END_STREAM != 0,
                fragment: headers_fragment(hdr.flags, payload)?.to_vec(),
                raw: Vec::new(),
            },
            Some(mut block) => {
                if hdr.stream_id != block.stream_id {
                    return Err(invalid("CONTINUATION on another stream"));
                }
                if block.fragment.len() + payload.len() > MAX_BLOCK {
                    return Err(invalid("header block too large"));
                }
                block.fragment.extend_from_slice(payload);
                block
            }
        };
        if !self.rewriting {
            block.raw.extend_from_slice(frame);
        }
        if hdr.flags & END_HEADERS == 0 {
            self.block = Some(block);
            return Ok(());
        }
        let (encoded, repaired) = match self.reencode(&block.fragment) {
            Ok(r) => r,
            // Until a repair was needed this connection is hyper's to judge, with its own decoder.
            Err(_) if !self.rewriting => (Vec::new(), false),
            Err(e) => return Err(e),
        };
        if !self.rewriting && !repaired {
            // The first block's authority is fine: the rest of the connection is hyper's alone.
            out.extend_from_slice(&block.raw);
            self.state = State::Passthrough;
            return Ok(());
        }
        self.rewriting = true;
        // One HEADERS frame, then CONTINUATIONs if the literal block outgrew a frame.
        let (mut ty, mut flags) = (HEADERS, if block.end_stream { END_STREAM } else { 0 });
        let mut rest = &encoded[..];
        loop {
            let (chunk, tail) = rest.split_at(rest.len().min(MIN_MAX_FRAME_SIZE));
            let end = if tail.is_empty() { END_HEADERS } else { 0 };
            FrameHeader::write(out, chunk.len(), ty, flags | end, block.stream_id);
            out.extend_from_slice(chunk);
            if tail.is_empty() {
                return Ok(());
            }
            (rest, ty, flags) = (tail, CONTINUATION, 0);
        }
    }

    /// Decodes a complete header block and re-encodes it with `:authority` repaired; true if
    /// the authority needed it.
    fn reencode(&mut self, fragment: &[u8]) -> io::Result<(Vec<u8>, bool)> {
        let mut encoded = Vec::with_capacity(fragment.len() * 2);
        let mut decoded_size = 0;
        let mut repaired = false;
        self.decoder
            .decode_with_cb(fragment, |name, value| {
                decoded_size += name.len() + value.len() + 32;
                if decoded_size <= MAX_BLOCK {
                    let fixed = if &*name == b":authority" {
                        strip_scheme(&value)
                    } else {
                        &value
                    };
                    repaired |= fixed != &*value;
                    encode_literal(&name, fixed, &mut encoded);
                }
            })
            .map_err(|e| invalid(format!("HPACK: {e}")))?;
        if decoded_size > MAX_BLOCK {
            return Err(invalid("decoded header list too large"));
        }
        Ok((encoded, repaired))
    }
}

/// A HEADERS payload without its pad length, priority fields and padding (RFC 9113 §6.2).
fn headers_fragment(flags: u8, payload: &[u8]) -> io::Result<&[u8]> {
    let mut p = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        let (&n, rest) = p
            .split_first()
            .ok_or_else(|| invalid("PADDED HEADERS without pad length"))?;
        (pad, p) = (usize::from(n), rest);
    }
    if flags & PRIORITY != 0 {
        p = p
            .get(5..)
            .ok_or_else(|| invalid("PRIORITY HEADERS too short"))?;
    }
    let len = p
        .len()
        .checked_sub(pad)
        .ok_or_else(|| invalid("HEADERS padding exceeds payload"))?;
    Ok(&p[..len])
}

/// `http://host:port/path` → `host:port`; a value without a scheme is left alone, except a
/// unix socket's path (etcdctl 3.4 dialing `unix:///run/etcd.sock` sends `/run/etcd.sock`),
/// which has no host and becomes `localhost`.
fn strip_scheme(authority: &[u8]) -> &[u8] {
    let rest = match authority.windows(3).position(|w| w == b"://") {
        Some(i) => &authority[i + 3..],
        None if authority.starts_with(b"/") => return b"localhost",
        None => return authority,
    };
    match &rest[..rest.iter().position(|&b| b == b'/').unwrap_or(rest.len())] {
        b"" => b"localhost",
        host => host,
    }
}

/// "Literal Header Field without Indexing — New Name" (RFC 7541 §6.2.2), without Huffman: it
/// leaves the server's dynamic table empty, so the re-encoding needs no state of its own.
fn encode_literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0);
    for s in [name, value] {
        loona_hpack::encoder::encode_integer_into(s.len(), 7, 0, out).expect("writing to a Vec");
        out.extend_from_slice(s);
    }
}

/// A client connection whose reads go through a [`Rewriter`]; writes go straight to `inner`.
pub(crate) struct AuthorityFix<S> {
    inner: S,
    /// The client, for logs: its address, or the socket it came in on.
    peer: String,
    rewriter: Rewriter,
    /// Rewritten bytes not yet handed to hyper, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
}

impl<S> AuthorityFix<S> {
    pub(crate) fn new(inner: S, peer: impl std::fmt::Display) -> Self {
        AuthorityFix {
            inner,
            peer: peer.to_string(),
            rewriter: Rewriter::new(),
            out: Vec::new(),
            out_pos: 0,
        }
    }

    pub(crate) fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_pos < this.out.len() {
                let n = (this.out.len() - this.out_pos).min(buf.remaining());
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.rewriter.is_passthrough() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 8192];
            let mut chunk = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            if chunk.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            if let Err(e) = this.rewriter.feed(chunk.filled(), &mut this.out) {
                tracing::warn!(peer = %this.peer, "closing client connection: {e}");
                return Poll::Ready(Err(e));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use httlib_hpack::{Decoder, Encoder};

    type Headers = Vec<(&'static str, &'static str)>;

    fn request(authority: &'static str, path: &'static str) -> Headers {
        vec![
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("user-agent", "grpc-go/1.26.0"),
            ("te", "trailers"),
        ]
    }

    /// Encodes like Go's gRPC client: Huffman everywhere, inserting into the dynamic table.
    fn encode(enc: &mut Encoder, headers: &Headers) -> Vec<u8> {
        let flags = Encoder::HUFFMAN_NAME
            | Encoder::HUFFMAN_VALUE
            | Encoder::WITH_INDEXING
            | Encoder::BEST_FORMAT;
        let mut dst = Vec::new();
        for (n, v) in headers {
            enc.encode(
                (n.as_bytes().to_vec(), v.as_bytes().to_vec(), flags),
                &mut dst,
            )
            .unwrap();
        }
        dst
    }

    fn frame(ty: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        FrameHeader::write(&mut out, payload.len(), ty, flags, stream_id);
        out.extend_from_slice(payload);
        out
    }

    struct Frame {
        ty: u8,
        flags: u8,
        stream_id: u32,
        payload: Vec<u8>,
    }

    /// Splits rewritten output (after the preface) into frames.
    fn frames(mut b: &[u8]) -> Vec<Frame> {
        assert!(b.starts_with(PREFACE));
        b = &b[PREFACE.len()..];
        let mut v = Vec::new();
        while !b.is_empty() {
            let h = FrameHeader::parse(b);
            v.push(Frame {
                ty: h.ty,
                flags: h.flags,
                stream_id: h.stream_id,
                payload: b[9..9 + h.len].to_vec(),
            });
            b = &b[9 + h.len..];
        }
        v
    }

    /// Decodes header blocks the way the server does, checking none inserts into its table.
    fn decode(dec: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut buf = block.to_vec();
        let mut dst = Vec::new();
        dec.decode(&mut buf, &mut dst).unwrap();
        assert_eq!(dec.max_dynamic_size(), 4096);
        dst.into_iter()
            .map(|(n, v, f)| {
                assert_eq!(f & Decoder::WITH_INDEXING, 0, "output must not index");
                (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap())
            })
            .collect()
    }

    fn owned(h: &Headers) -> Vec<(String, String)> {
        h.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn rewrite(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Rewriter::new().feed(input, &mut out).unwrap();
        out
    }

    /// Two requests on one connection (the second relies on the first's dynamic table entries),
    /// a DATA frame in between and a SETTINGS frame first.
    fn two_requests() -> (Vec<u8>, Headers, Headers) {
        let mut enc = Encoder::default();
        let first = request("http://127.0.0.1:2379", "/etcdserverpb.Maintenance/Status");
        let second = request(
            "http://127.0.0.1:2379",
            "/etcdserverpb.Maintenance/Defragment",
        );
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]));
        let (block1, block2) = (encode(&mut enc, &first), encode(&mut enc, &second));
        assert!(
            block2.len() < block1.len() / 2,
            "the second block should mostly index the first's entries"
        );
        input.extend(frame(HEADERS, END_HEADERS, 1, &block1));
        input.extend(frame(0x0, END_STREAM, 1, &[0, 0, 0, 0, 0]));
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &block2));
        (input, first, second)
    }

    fn fixed(h: &Headers) -> Vec<(String, String)> {
        let mut h = owned(h);
        for (n, v) in &mut h {
            if n == ":authority" {
                *v = String::from_utf8(strip_scheme(v.as_bytes()).to_vec()).unwrap();
            }
        }
        h
    }

    fn check_two_requests(out: &[u8], first: &Headers, second: &Headers) {
        let f = frames(out);
        assert_eq!(f.len(), 4);
        assert_eq!(
            (f[0].ty, f[0].payload.as_slice()),
            (0x4, &[0, 3, 0, 0, 0, 100][..])
        );
        assert_eq!((f[2].ty, f[2].flags, f[2].stream_id), (0x0, END_STREAM, 1));
        assert_eq!(
            (f[1].ty, f[1].flags, f[1].stream_id),
            (HEADERS, END_HEADERS, 1)
        );
        assert_eq!(
            (f[3].ty, f[3].flags, f[3].stream_id),
            (HEADERS, END_HEADERS | END_STREAM, 3)
        );
        let mut dec = Decoder::default();
        let h1 = decode(&mut dec, &f[1].payload);
        assert_eq!(h1, fixed(first));
        assert_eq!(h1[3], (":authority".into(), "127.0.0.1:2379".into()));
        assert_eq!(decode(&mut dec, &f[3].payload), fixed(second));
    }

    #[test]
    fn repairs_authority_across_dynamic_table() {
        let (input, first, second) = two_requests();
        check_two_requests(&rewrite(&input), &first, &second);
    }

    #[test]
    fn any_split_of_the_input_gives_the_same_output() {
        let (input, first, second) = two_requests();
        let whole = rewrite(&input);
        check_two_requests(&whole, &first, &second);
        for at in 0..=input.len() {
            let mut rw = Rewriter::new();
            let mut out = Vec::new();
            rw.feed(&input[..at], &mut out).unwrap();
            rw.feed(&input[at..], &mut out).unwrap();
            assert_eq!(out, whole, "split at {at}");
        }
        let mut rw = Rewriter::new();
        let mut out = Vec::new();
        for b in &input {
            rw.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out, whole, "byte by byte");
    }

    #[test]
    fn table_size_updates_are_honoured() {
        let mut enc = Encoder::default();
        let headers = request("http://127.0.0.1:2379", "/etcdserverpb.KV/Range");
        let mut input = PREFACE.to_vec();
        for (stream_id, size) in [(1, 256), (3, 4096), (5, 0), (7, 4096)] {
            let mut block = Vec::new();
            enc.update_max_dynamic_size(size, &mut block).unwrap();
            block.extend(encode(&mut enc, &headers));
            input.extend(frame(HEADERS, END_HEADERS, stream_id, &block));
        }
        input.extend(frame(HEADERS, END_HEADERS, 9, &encode(&mut enc, &headers)));
        let f = frames(&rewrite(&input));
        assert_eq!(f.len(), 5);
        let mut dec = Decoder::default();
        for f in f {
            assert_eq!(decode(&mut dec, &f.payload), fixed(&headers));
        }
    }

    #[test]
    fn a_fine_first_authority_leaves_the_connection_alone() {
        let mut enc = Encoder::default();
        let mut input = PREFACE.to_vec();
        let mut padded = vec![2, 0, 0, 0, 0, 15];
        padded.extend(encode(
            &mut enc,
            &request("127.0.0.1:2379", "/etcdserverpb.KV/Range"),
        ));
        padded.extend([0, 0]);
        input.extend(frame(HEADERS, END_HEADERS | PADDED | PRIORITY, 1, &padded));
        input.extend(frame(0x0, END_STREAM, 1, &[0, 0, 0, 0, 0]));
        // Left for hyper to reject, as it would without the shim.
        let later = request("http://127.0.0.1:2379", "/etcdserverpb.KV/Put");
        input.extend(frame(HEADERS, END_HEADERS, 3, &encode(&mut enc, &later)));
        for at in 0..=input.len() {
            let mut rw = Rewriter::new();
            let mut out = Vec::new();
            rw.feed(&input[..at], &mut out).unwrap();
            rw.feed(&input[at..], &mut out).unwrap();
            assert_eq!(out, input, "split at {at}");
        }
    }

    #[test]
    fn continuation_frames_in_and_out() {
        let mut enc = Encoder::default();
        let mut headers = request(
            "https://etcd.example:2379/some/path",
            "/etcdserverpb.KV/Put",
        );
        // A value that can't be indexed (too big for the table) and forces CONTINUATIONs out.
        let big: &'static str = "x".repeat(20_000).leak();
        headers.push(("x-big", big));
        let block = encode(&mut enc, &headers);
        let mut input = PREFACE.to_vec();
        let (a, rest) = block.split_at(10);
        let (b, c) = rest.split_at(rest.len() / 2);
        input.extend(frame(HEADERS, END_STREAM, 5, a));
        input.extend(frame(CONTINUATION, 0, 5, b));
        input.extend(frame(CONTINUATION, END_HEADERS, 5, c));
        input.extend(frame(0x8, 0, 0, &[0, 0, 1, 0])); // WINDOW_UPDATE after the block
        let f = frames(&rewrite(&input));
        assert_eq!(f.len(), 3);
        assert_eq!(
            (f[0].ty, f[0].flags, f[0].stream_id),
            (HEADERS, END_STREAM, 5)
        );
        assert_eq!(f[0].payload.len(), MIN_MAX_FRAME_SIZE);
        assert_eq!(
            (f[1].ty, f[1].flags, f[1].stream_id),
            (CONTINUATION, END_HEADERS, 5)
        );
        assert_eq!(f[2].ty, 0x8);
        let block = [f[0].payload.clone(), f[1].payload.clone()].concat();
        let h = decode(&mut Decoder::default(), &block);
        assert_eq!(h[3].1, "etcd.example:2379");
        assert_eq!(h, fixed(&headers));
    }

    #[test]
    fn padded_and_priority_fields_are_stripped() {
        let mut enc = Encoder::default();
        let headers = request("http://[::1]:2379", "/etcdserverpb.Maintenance/HashKV");
        let mut payload = vec![4]; // pad length
        payload.extend([0x80, 0, 0, 1, 15]); // exclusive dependency on stream 1, weight 16
        payload.extend(encode(&mut enc, &headers));
        payload.extend([0; 4]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS | PADDED | PRIORITY, 3, &payload));
        let f = frames(&rewrite(&input));
        assert_eq!((f[0].flags, f[0].stream_id), (END_HEADERS, 3));
        let h = decode(&mut Decoder::default(), &f[0].payload);
        assert_eq!(h[3].1, "[::1]:2379");
        assert_eq!(h, fixed(&headers));
    }

    /// A connection whose first request needed repair, so later blocks are decoded too.
    fn rewriting_connection() -> Vec<u8> {
        let mut enc = Encoder::default();
        let first = encode(&mut enc, &request("http://127.0.0.1:2379", "/p"));
        [PREFACE, &frame(HEADERS, END_HEADERS, 1, &first)].concat()
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let mut too_big_table = Vec::new();
        Encoder::default()
            .update_max_dynamic_size(8192, &mut too_big_table)
            .unwrap();
        too_big_table.push(0x82); // :method GET
        let bad = [
            frame(HEADERS, END_HEADERS | PADDED, 3, &[9, 0x82]),
            frame(HEADERS, END_HEADERS | PRIORITY, 3, &[0, 0]),
            frame(HEADERS, END_HEADERS, 3, &[0xff; 6]),
            frame(HEADERS, END_HEADERS, 3, &[0x80 | 70]),
            frame(HEADERS, END_HEADERS, 3, &[0x82, 0x20]),
            frame(HEADERS, END_HEADERS, 3, &too_big_table),
            [frame(HEADERS, 0, 3, &[0x82]), frame(0x0, 0, 3, &[])].concat(),
            [
                frame(HEADERS, 0, 3, &[0x82]),
                frame(CONTINUATION, END_HEADERS, 5, &[]),
            ]
            .concat(),
            vec![0xff, 0xff, 0xff, HEADERS, 0, 0, 0, 0, 3],
        ];
        for b in bad {
            let mut rw = Rewriter::new();
            let input = [&rewriting_connection(), &b[..]].concat();
            assert!(rw.feed(&input, &mut Vec::new()).is_err(), "{b:?}");
            assert!(rw.feed(&[0], &mut Vec::new()).is_err(), "stays failed");
        }
        // Before any repair, an undecodable block is left for hyper to reject.
        let input = [PREFACE, &frame(HEADERS, END_HEADERS, 1, &[0x80 | 70])].concat();
        assert_eq!(rewrite(&input), input);
    }

    #[test]
    fn authorities_etcd_clients_send() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"127.0.0.1:2379", b"127.0.0.1:2379"),
            (b"http://127.0.0.1:2379", b"127.0.0.1:2379"),
            (b"unix://localhost:2379", b"localhost:2379"),
            // etcdctl 3.4 dialing unix:///tmp/etcd.sock.
            (b"/tmp/etcd.sock", b"localhost"),
            (b"unix:///tmp/etcd.sock", b"localhost"),
            (b"localhost", b"localhost"),
        ];
        for (sent, served) in cases {
            assert_eq!(
                strip_scheme(sent),
                served,
                "{}",
                String::from_utf8_lossy(sent)
            );
        }
    }

    #[test]
    fn http1_and_other_frames_pass_through() {
        for input in [
            &b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\n\r\n",
            b"PRI * HTTP/1.1",
        ] {
            assert_eq!(rewrite(input), input);
            let mut rw = Rewriter::new();
            let mut out = Vec::new();
            for b in input {
                rw.feed(std::slice::from_ref(b), &mut out).unwrap();
            }
            assert_eq!(out, input);
        }
        // A stray CONTINUATION is the server's to reject, as is a big DATA frame's size.
        let mut input = PREFACE.to_vec();
        input.extend(frame(CONTINUATION, END_HEADERS, 1, &[0x82]));
        input.extend(frame(0x0, 0, 1, &vec![7; 100_000]));
        assert_eq!(rewrite(&input), input);
    }

    #[tokio::test]
    async fn stream_wrapper_rewrites_reads_and_passes_writes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (input, first, second) = two_requests();
        let (mut client, server) = tokio::io::duplex(7);
        let mut fix = AuthorityFix::new(server, "127.0.0.1:1");
        let writer = tokio::spawn(async move {
            client.write_all(&input).await.unwrap();
            client.shutdown().await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut out = Vec::new();
        fix.read_to_end(&mut out).await.unwrap();
        check_two_requests(&out, &first, &second);
        fix.write_all(b"server bytes").await.unwrap();
        fix.shutdown().await.unwrap();
        drop(fix);
        assert_eq!(writer.await.unwrap(), b"server bytes");
    }
}
