//! Entry points of the fuzz targets (`server/fuzz/`, cargo fuzz with libFuzzer) and of the
//! stable regression test that replays their seed corpus and past crashes
//! (`tests/fuzz_regressions.rs`). Not an API for anything else.
//!
//! Each function takes the raw bytes a target receives, turns them into what the parser
//! reads from outside (a snapshot file, a directory of WAL segments, a client's HTTP/2 byte
//! stream, a config file, a command line and environment, a peer's message) and runs the
//! real parser on it. Returning an error is the expected outcome for most inputs; a panic,
//! a hang or an allocation out of proportion to the input is a bug. Where a stronger
//! property holds (a WAL that opened still opens after an append; the `:authority` shim
//! gives the same bytes however the stream is split), the function panics when it breaks,
//! so the fuzzer reports it.
//!
//! The harnesses repair checksums the parsers verify (WAL record CRCs, bbolt meta page
//! checksums, the snapshot's SHA-256) when asked to: a mutated input almost never carries a
//! valid checksum, and without the repair the fuzzer would never get past it to the decoding
//! behind it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Files go to tmpfs when there is one: every execution writes some.
fn scratch() -> Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let root = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("ballast-fuzz-")
        .tempdir_in(root)
        .map_err(|e| Error::io("create fuzz scratch dir", e))
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

// ---------------------------------------------------------------------------------------
// Snapshot files (`ballast snapshot status`, `ballast snapshot restore`).

/// bbolt's meta page checksum: FNV-1a 64 over bytes 16..72 of the page, stored at 72.
fn fix_meta_checksum(db: &mut [u8], page: usize) {
    let Some(meta) = db.get_mut(page..page + 80) else {
        return;
    };
    let sum = meta[16..72].iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    meta[72..80].copy_from_slice(&sum.to_le_bytes());
}

/// Input: a snapshot file or bare bbolt database. A trailing SHA-256 (when the length says
/// there is one) is dropped, the database padded to whole 512-byte blocks, both meta pages'
/// checksums repaired (page 1 at 4096 and at the page size page 0 names) and a correct
/// SHA-256 appended; then `snapshot status` and `snapshot restore` run on the file.
pub fn snapshot_file(data: &[u8]) -> Result<()> {
    let mut db = data.to_vec();
    if db.len() % 512 == 32 {
        db.truncate(db.len() - 32);
    }
    db.resize(db.len().div_ceil(512) * 512, 0);
    fix_meta_checksum(&mut db, 0);
    fix_meta_checksum(&mut db, 4096);
    if let Some(b) = db.get(24..28) {
        let page_size = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if page_size != 4096 && page_size.is_power_of_two() && page_size <= 65536 {
            fix_meta_checksum(&mut db, page_size);
        }
    }
    let hash = Sha256::digest(&db);
    db.extend_from_slice(&hash);

    let dir = scratch()?;
    let file = dir.path().join("snapshot.db");
    std::fs::write(&file, &db).map_err(|e| Error::io("write fuzz snapshot", e))?;
    let status = crate::snapshot::status::status(&file)?;
    crate::snapshot::restore::restore(
        &file,
        &dir.path().join("data"),
        None,
        false,
        crate::snapshot::restore::RevisionBump::default(),
        None,
    )?;
    // What status read, restore read too: both walk every bucket.
    let _ = status;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The WAL directory, as `Wal::open` recovers it after a crash.

/// Most segments an input describes.
const MAX_SEGMENTS: usize = 8;
/// Segment size for the append after a successful open: small, so it can start a segment.
const FUZZ_SEGMENT_SIZE: u64 = 4096;

/// A segment file described by the input.
struct SegmentSpec {
    seq: u64,
    first_index: u64,
    bytes: Vec<u8>,
}

/// Input: `flags:u8`, then up to 8 segments, each `seq:u8 first_index:u64 LE len:u16 LE`
/// and `len` bytes of the file (the last one gets what remains if the input is shorter).
/// Flag bit 0 repairs the CRC of every record whose length fits the file, in order from the
/// start (stopping at the first that does not), bit 1 preallocates on open. After a
/// successful open, one entry is appended and synced, and the log must open again with it
/// as its last entry.
pub fn wal_dir(data: &[u8]) -> Result<()> {
    let Some((&flags, mut rest)) = data.split_first() else {
        return Ok(());
    };
    let mut segments = Vec::new();
    while rest.len() >= 11 && segments.len() < MAX_SEGMENTS {
        let seq = u64::from(rest[0]);
        let mut first = [0u8; 8];
        first.copy_from_slice(&rest[1..9]);
        let len = usize::from(u16::from_le_bytes([rest[9], rest[10]]));
        let body = &rest[11..];
        let take = len.min(body.len());
        let mut bytes = body[..take].to_vec();
        if flags & 1 != 0 {
            fix_record_crcs(&mut bytes);
        }
        segments.push(SegmentSpec {
            seq,
            first_index: u64::from_le_bytes(first),
            bytes,
        });
        rest = &body[take..];
    }
    let dir = scratch()?;
    let wal_dir = dir.path().join("wal");
    std::fs::create_dir(&wal_dir).map_err(|e| Error::io("create fuzz wal dir", e))?;
    for s in &segments {
        let name = format!("{:016x}-{:016x}.wal", s.seq, s.first_index);
        std::fs::write(wal_dir.join(name), &s.bytes)
            .map_err(|e| Error::io("write fuzz segment", e))?;
    }
    let opts = || crate::raft::wal::WalOptions {
        segment_size: FUZZ_SEGMENT_SIZE,
        preallocate: flags & 2 != 0,
    };
    let (mut wal, recovered) = crate::raft::wal::Wal::open_with(&wal_dir, opts())?;
    let Some(next) = wal.last_index().checked_add(1) else {
        return Ok(());
    };
    let term = recovered
        .entries
        .last()
        .map_or(0, |e| e.term)
        .max(recovered.hard_state.term);
    let entry = raft::prelude::Entry {
        index: next,
        term,
        data: b"fuzz".to_vec(),
        ..Default::default()
    };
    wal.append(std::slice::from_ref(&entry), None)?;
    wal.sync()?;
    drop(wal);
    let reopened = crate::raft::wal::Wal::open_with(&wal_dir, opts());
    match reopened {
        Ok((wal, again)) => {
            assert_eq!(
                wal.last_index(),
                next,
                "a WAL that opened lost the entry appended to it"
            );
            assert_eq!(again.entries.last().map(|e| e.index), Some(next));
        }
        Err(e) => panic!("a WAL that opened fails to open after one append: {e}"),
    }
    Ok(())
}

/// Sets the CRC of each record `[len u32][crc u32][body]` from the start of the segment.
fn fix_record_crcs(seg: &mut [u8]) {
    let mut off = 0usize;
    while let Some(h) = seg.get(off..off + 8) {
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let end = off + 8 + len;
        if len == 0 || end > seg.len() {
            return;
        }
        let crc = crc32fast::hash(&seg[off + 8..end]);
        seg[off + 4..off + 8].copy_from_slice(&crc.to_le_bytes());
        off = end;
    }
}

// ---------------------------------------------------------------------------------------
// The HTTP/2 `:authority` shim in front of the client port.

/// Input: what a client sends on the client port. Fed at once and again in pieces of 1 to 7
/// bytes; both must succeed or fail alike and, on success, give the same bytes.
pub fn h2_authority(data: &[u8]) -> Result<()> {
    use crate::listen::h2_authority::Rewriter;
    let mut whole = Vec::new();
    let at_once = Rewriter::new().feed(data, &mut whole);

    let mut pieces = Vec::new();
    let mut split = Rewriter::new();
    let mut split_result = Ok(());
    let mut rest = data;
    let mut size = 1;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        split_result = split.feed(piece, &mut pieces);
        if split_result.is_err() {
            break;
        }
        rest = tail;
        size = size % 7 + 1;
    }
    match (&at_once, &split_result) {
        (Ok(()), Ok(())) => assert!(
            whole == pieces,
            "the rewritten stream depends on how the input was split"
        ),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("split and whole input disagree: whole {a:?}, split {b:?}"),
    }
    at_once.map_err(|e| Error::io("h2 authority", e))
}

// ---------------------------------------------------------------------------------------
// The config file and the command line with `ETCD_*` variables.

/// Input: the text of a `--config-file`.
pub fn config_file(data: &[u8]) -> Result<()> {
    let dir = scratch()?;
    let path = dir.path().join("etcd.conf.yml");
    std::fs::write(&path, data).map_err(|e| Error::io("write fuzz config", e))?;
    let args = [OsString::from("--config-file"), path.into_os_string()];
    crate::config::parse(args, &[]).map_err(other)?;
    Ok(())
}

/// Input: command-line arguments, one per line, then an empty line, then `NAME=value`
/// environment variables, one per line. Arguments may be any bytes (not only UTF-8).
/// Inputs naming a config file are skipped: reading whatever file the fuzzer names (such as
/// `/dev/zero`) would test the file system, not the parser; `config_file` covers the file.
pub fn config_flags(data: &[u8]) -> Result<()> {
    let mut args: Vec<OsString> = Vec::new();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut in_env = false;
    for line in data.split(|&b| b == b'\n') {
        let lower = String::from_utf8_lossy(line).to_ascii_lowercase();
        if lower.contains("config") && lower.contains("file") {
            return Ok(());
        }
        if !in_env {
            if line.is_empty() {
                in_env = true;
            } else {
                args.push(OsString::from_vec(line.to_vec()));
            }
            continue;
        }
        let text = String::from_utf8_lossy(line);
        let (k, v) = text.split_once('=').unwrap_or((&text, ""));
        env.push((k.to_string(), v.to_string()));
    }
    crate::config::parse(args, &env).map_err(other)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// What peers send: Raft batches on the peer port and the answers a joining member reads.

/// A three-voter configuration to check membership changes against.
fn sample_conf_state() -> raft::prelude::ConfState {
    raft::prelude::ConfState {
        voters: vec![1, 2, 3],
        learners: vec![4],
        ..Default::default()
    }
}

/// Decodes the entries of a Raft message as the node and the apply loop do.
fn decode_entries(m: &raft::prelude::Message) {
    use prost011::Message as _;
    use raft::prelude::{ConfChange, EntryType};
    let conf = sample_conf_state();
    for e in &m.entries {
        if e.get_entry_type() == EntryType::EntryConfChange {
            if let Ok(cc) = ConfChange::decode(e.data.as_slice()) {
                let ctx = crate::cluster::ConfChangeContext::decode(&cc.context);
                let _ = crate::raft::conf_check::check(&conf, &cc, ctx.as_ref());
            }
        } else if e.get_entry_type() == EntryType::EntryNormal {
            let _ = ballast_proto::internal::InternalRequest::decode(e.data.as_slice());
        }
    }
}

/// Input: `kind:u8` then an encoded message. Kind 0 (mod 3): a `RaftBatch` as the peer
/// port receives it; each of its Raft messages is decoded as `peer.rs` does and their
/// entries as the node and the apply loop do. Kind 1: a `MembersResponse` as a joining
/// member reads it, checked against a local `--initial-cluster`. Kind 2: the requests of the
/// peer port's lease and promote calls.
pub fn peer_message(data: &[u8]) -> Result<()> {
    use ballast_proto::{etcdserverpb, internal};
    let Some((&kind, msg)) = data.split_first() else {
        return Ok(());
    };
    match kind % 3 {
        0 => {
            let batch = internal::RaftBatch::decode(msg).map_err(other)?;
            for bytes in &batch.messages {
                let m = crate::raft::transport::decode(bytes).map_err(Error::Other)?;
                decode_entries(&m);
            }
        }
        1 => {
            let resp = internal::MembersResponse::decode(msg).map_err(other)?;
            let members = crate::cluster::from_pb(&resp.members);
            let local = vec![
                crate::cluster::Member {
                    id: 0,
                    name: "m1".into(),
                    peer_urls: vec!["http://127.0.0.1:2380".into()],
                    client_urls: Vec::new(),
                    is_learner: false,
                },
                crate::cluster::Member {
                    id: 0,
                    name: "m2".into(),
                    peer_urls: vec!["http://127.0.0.2:2380".into()],
                    client_urls: Vec::new(),
                    is_learner: false,
                },
            ];
            crate::cluster::join::validate(resp.cluster_id, &members, &local, "m2")
                .map_err(Error::Other)?;
        }
        _ => {
            etcdserverpb::LeaseKeepAliveRequest::decode(msg).map_err(other)?;
            etcdserverpb::LeaseTimeToLiveRequest::decode(msg).map_err(other)?;
            etcdserverpb::MemberPromoteRequest::decode(msg).map_err(other)?;
        }
    }
    Ok(())
}
