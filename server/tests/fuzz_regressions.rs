//! The fuzz targets' inputs on stable: every file of the committed seed corpus
//! (`fuzz/corpus/<target>/`) and every input that once crashed a target
//! (`fuzz/regressions/<target>/`) goes through the same `ballast::fuzzing` entry point the
//! target calls, and must come back as `Ok` or an error, never a panic.
//!
//! `write_seed_corpus` (ignored; run by `scripts/fuzz-seeds.sh`) generates the seeds that
//! Ballast's own code can make: WAL directories, HTTP/2 client streams, config files and
//! command lines, peer messages. The etcd snapshots come from real etcd (the script).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

type Entry = fn(&[u8]) -> ballast::error::Result<()>;

const TARGETS: [(&str, Entry); 6] = [
    ("snapshot", ballast::fuzzing::snapshot_file),
    ("wal", ballast::fuzzing::wal_dir),
    ("h2_authority", ballast::fuzzing::h2_authority),
    ("config_file", ballast::fuzzing::config_file),
    ("config_flags", ballast::fuzzing::config_flags),
    ("peer_message", ballast::fuzzing::peer_message),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|d| d.expect("read corpus dir entry").path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    v
}

/// Runs the entry point on each file; returns how many it accepted. Panics name the file.
fn replay(entry: Entry, inputs: &[PathBuf]) -> usize {
    let mut accepted = 0;
    for path in inputs {
        let data = std::fs::read(path).expect("read fuzz input");
        match catch_unwind(AssertUnwindSafe(|| entry(&data))) {
            Ok(Ok(())) => accepted += 1,
            Ok(Err(_)) => {}
            Err(_) => panic!("{} panics its fuzz entry point", path.display()),
        }
    }
    accepted
}

#[test]
fn seed_corpus_is_accepted_without_panics() {
    for (target, entry) in TARGETS {
        let inputs = files(&fuzz_dir().join("corpus").join(target));
        assert!(!inputs.is_empty(), "no seed corpus for target {target}");
        // Seeds are real, well-formed inputs: each target must accept at least one, or the
        // harness no longer reaches the parser's success path.
        let accepted = replay(entry, &inputs);
        assert!(
            accepted > 0,
            "target {target}: none of its {} seeds was accepted",
            inputs.len()
        );
    }
}

#[test]
fn past_crashes_return_without_panics() {
    for (target, entry) in TARGETS {
        let inputs = files(&fuzz_dir().join("regressions").join(target));
        replay(entry, &inputs);
    }
}

/// Writes the generated seeds into `fuzz/corpus/` (run by `scripts/fuzz-seeds.sh`).
#[test]
#[ignore]
fn write_seed_corpus() {
    let corpus = fuzz_dir().join("corpus");
    let put = |target: &str, name: &str, data: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        std::fs::write(dir.join(name), data).expect("write seed");
    };
    for (name, data) in seeds::wal() {
        put("wal", &name, &data);
    }
    for (name, data) in seeds::h2() {
        put("h2_authority", &name, &data);
    }
    for (name, data) in seeds::config_files() {
        put("config_file", &name, &data);
    }
    for (name, data) in seeds::config_flags() {
        put("config_flags", &name, &data);
    }
    for (name, data) in seeds::peer() {
        put("peer_message", &name, &data);
    }
}

mod seeds {
    use std::path::Path;

    use ballast::raft::wal::{SnapshotMark, Wal, WalOptions};
    use ballast_proto::etcdserverpb;
    use ballast_proto::internal;
    use prost::Message as _;
    use raft::prelude::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState};

    type Seeds = Vec<(String, Vec<u8>)>;

    /// The `wal` target's input: flags, then `seq:u8 first_index:u64 len:u16 bytes`.
    fn wal_input(dir: &Path, flags: u8) -> Vec<u8> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read wal dir")
            .map(|d| {
                d.expect("dir entry")
                    .file_name()
                    .into_string()
                    .expect("utf-8")
            })
            .filter(|n| n.ends_with(".wal"))
            .collect();
        names.sort();
        let mut out = vec![flags];
        for n in names {
            let (seq, first) = n
                .trim_end_matches(".wal")
                .split_once('-')
                .expect("segment name");
            let bytes = std::fs::read(dir.join(&n)).expect("read segment");
            out.push(u8::try_from(u64::from_str_radix(seq, 16).expect("hex")).expect("small"));
            out.extend_from_slice(&u64::from_str_radix(first, 16).expect("hex").to_le_bytes());
            out.extend_from_slice(&u16::try_from(bytes.len()).expect("small").to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    fn entry(index: u64, term: u64) -> Entry {
        let mut e = Entry {
            index,
            term,
            data: put_request(index).encode_to_vec(),
            ..Entry::default()
        };
        if index == 1 {
            e.set_entry_type(EntryType::EntryConfChange);
            e.data = prost011::Message::encode_to_vec(&conf_change());
        }
        e
    }

    fn put_request(id: u64) -> internal::InternalRequest {
        internal::InternalRequest {
            id,
            request: Some(internal::internal_request::Request::Put(
                etcdserverpb::PutRequest {
                    key: format!("key-{id}").into_bytes(),
                    value: b"value".to_vec(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }
    }

    fn conf_change() -> ConfChange {
        let ctx = ballast::cluster::ConfChangeContext {
            request_id: 7,
            member: ballast::cluster::Member {
                id: 5,
                name: "m5".into(),
                peer_urls: vec!["http://127.0.0.5:2380".into()],
                client_urls: Vec::new(),
                is_learner: true,
            },
            promote: false,
        };
        ConfChange {
            change_type: ConfChangeType::AddLearnerNode as i32,
            node_id: 5,
            context: serde_json::to_vec(&ctx).expect("json"),
            ..Default::default()
        }
    }

    pub fn wal() -> Seeds {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = |segment_size| WalOptions {
            segment_size,
            preallocate: false,
        };
        // One segment: entries and hard states.
        let one = tmp.path().join("one");
        let mut w = Wal::create_with(&one, opts(1 << 20)).expect("create wal");
        let hs = HardState {
            term: 2,
            vote: 1,
            commit: 3,
        };
        let es: Vec<Entry> = (1..=4).map(|i| entry(i, 2)).collect();
        w.append(&es, Some(&hs)).expect("append");
        w.sync().expect("sync");
        drop(w);
        let mut out = vec![("one-segment".to_string(), wal_input(&one, 0))];
        let mut torn = wal_input(&one, 0);
        torn.truncate(torn.len() - 5);
        out.push(("torn-tail".to_string(), torn));

        // Several small segments after a snapshot mark, with a conflicting tail rewritten.
        let many = tmp.path().join("many");
        let mut w = Wal::create_with(&many, opts(200)).expect("create wal");
        let es: Vec<Entry> = (1..=6).map(|i| entry(i, 1)).collect();
        w.append(&es, None).expect("append");
        w.mark_snapshot(SnapshotMark {
            index: 3,
            term: 1,
            conf_state: ConfState {
                voters: vec![1, 2, 3],
                learners: vec![5],
                ..Default::default()
            },
        })
        .expect("mark");
        let es: Vec<Entry> = (5..=8).map(|i| entry(i, 2)).collect();
        w.append(
            &es,
            Some(&HardState {
                term: 2,
                vote: 2,
                commit: 6,
            }),
        )
        .expect("append");
        w.sync().expect("sync");
        drop(w);
        out.push(("snapshot-mark-segments".to_string(), wal_input(&many, 0)));
        out
    }

    fn h2_frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[ty, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Header blocks encoded as Go's gRPC client does (Huffman, indexed).
    fn block(enc: &mut httlib_hpack::Encoder, authority: &str, path: &str) -> Vec<u8> {
        use httlib_hpack::Encoder;
        let flags = Encoder::HUFFMAN_NAME
            | Encoder::HUFFMAN_VALUE
            | Encoder::WITH_INDEXING
            | Encoder::BEST_FORMAT;
        let mut dst = Vec::new();
        for (n, v) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("user-agent", "grpc-go/1.26.0"),
            ("te", "trailers"),
        ] {
            enc.encode(
                (n.as_bytes().to_vec(), v.as_bytes().to_vec(), flags),
                &mut dst,
            )
            .expect("hpack encode");
        }
        dst
    }

    pub fn h2() -> Seeds {
        const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let settings = h2_frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]);
        let mut out = Vec::new();
        for (name, authority) in [
            ("etcdctl34-url-authority", "http://127.0.0.1:2379"),
            ("plain-authority", "127.0.0.1:2379"),
            ("unix-path-authority", "/run/etcd.sock"),
        ] {
            let mut enc = httlib_hpack::Encoder::default();
            let mut s = PREFACE.to_vec();
            s.extend(&settings);
            let b1 = block(&mut enc, authority, "/etcdserverpb.Maintenance/Status");
            s.extend(h2_frame(0x1, 0x4, 1, &b1));
            s.extend(h2_frame(0x0, 0x1, 1, &[0, 0, 0, 0, 0]));
            let b2 = block(&mut enc, authority, "/etcdserverpb.Maintenance/Defragment");
            s.extend(h2_frame(0x1, 0x4, 3, &b2));
            out.push((name.to_string(), s));
        }
        // A header block split over CONTINUATION frames, padded, with priority fields.
        let mut enc = httlib_hpack::Encoder::default();
        let b = block(&mut enc, "http://localhost:2379", "/etcdserverpb.KV/Range");
        let (a, rest) = b.split_at(b.len() / 2);
        let mut payload = vec![3u8, 0, 0, 0, 0, 16];
        payload.extend_from_slice(a);
        payload.extend_from_slice(&[0, 0, 0]);
        let mut s = PREFACE.to_vec();
        s.extend(h2_frame(0x1, 0x8 | 0x20 | 0x1, 5, &payload));
        s.extend(h2_frame(0x9, 0x4, 5, rest));
        out.push(("continuation-padded-priority".to_string(), s));
        out.push((
            "http1-health".to_string(),
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n\r\n".to_vec(),
        ));
        out
    }

    pub fn config_files() -> Seeds {
        let full = "\
name: 'infra1'
data-dir: /var/lib/etcd/infra1
wal-dir:
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 0
listen-peer-urls: https://10.0.0.1:2380
listen-client-urls: https://10.0.0.1:2379,http://127.0.0.1:2379
max-snapshots: 5
max-wals: 5
initial-advertise-peer-urls: https://10.0.0.1:2380
advertise-client-urls: https://10.0.0.1:2379
initial-cluster: infra1=https://10.0.0.1:2380,infra2=https://10.0.0.2:2380
initial-cluster-token: 'etcd-cluster-1'
initial-cluster-state: 'new'
strict-reconfig-check: true
enable-v2: false
auto-compaction-mode: periodic
auto-compaction-retention: \"1h\"
client-transport-security:
  cert-file: /etc/etcd/server.crt
  key-file: /etc/etcd/server.key
  client-cert-auth: true
  trusted-ca-file: /etc/etcd/ca.crt
  auto-tls: false
peer-transport-security:
  cert-file: /etc/etcd/peer.crt
  key-file: /etc/etcd/peer.key
  client-cert-auth: true
  trusted-ca-file: /etc/etcd/ca.crt
  allowed-cn: etcd-peer
cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]
log-level: info
logger: zap
log-outputs: [stderr]
";
        let minimal = "name: m1\ndata-dir: /tmp/m1\nlisten-client-urls: http://127.0.0.1:2379\nadvertise-client-urls: http://127.0.0.1:2379\nunknown-key: 1\n";
        let durations = "election-timeout: 1000\ngrpc-keepalive-interval: 7200000000000\ngrpc-keepalive-timeout: \"20s\"\nlisten-metrics-urls: [http://127.0.0.1:2381]\n";
        vec![
            ("full.yml".to_string(), full.as_bytes().to_vec()),
            ("minimal.yml".to_string(), minimal.as_bytes().to_vec()),
            ("durations.yml".to_string(), durations.as_bytes().to_vec()),
        ]
    }

    pub fn config_flags() -> Seeds {
        let member = "--name\netcd-1\n--data-dir=/var/lib/etcd\n--listen-client-urls\nhttp://127.0.0.1:2379\n--advertise-client-urls\nhttp://127.0.0.1:2379\n--listen-peer-urls\nhttp://127.0.0.1:2380\n--initial-advertise-peer-urls\nhttp://127.0.0.1:2380\n--initial-cluster\netcd-1=http://127.0.0.1:2380,etcd-2=http://127.0.0.1:12380\n--initial-cluster-state=new\n-heartbeat-interval=100\n--quota-backend-bytes\n8589934592\n--auto-compaction-mode=revision\n--auto-compaction-retention=1000\n--snapshot-count\n10000\n\nETCD_ELECTION_TIMEOUT=1000\nETCD_LOG_LEVEL=debug\nETCD_UNKNOWN=1\n";
        let tls = "--cert-file=/etc/etcd/server.crt\n--key-file=/etc/etcd/server.key\n--client-cert-auth\n--trusted-ca-file=/etc/etcd/ca.crt\n--peer-auto-tls\n--cipher-suites\nTLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n--auth-token\njwt,pub-key=/k.pub,priv-key=/k,sign-method=RS256,ttl=10m\n--listen-metrics-urls=http://[::1]:2381\n--max-request-bytes=0x100000\n--grpc-keepalive-interval=2h30m\n\nETCD_NAME=shadowed\n";
        vec![
            ("member.args".to_string(), member.as_bytes().to_vec()),
            ("tls.args".to_string(), tls.as_bytes().to_vec()),
            ("version.args".to_string(), b"--version\n".to_vec()),
        ]
    }

    pub fn peer() -> Seeds {
        use raft::prelude::{Message, MessageType};
        let mut append = Message {
            from: 1,
            to: 2,
            term: 2,
            log_term: 1,
            index: 4,
            commit: 4,
            entries: (5..=7).map(|i| entry(i, 2)).collect(),
            ..Default::default()
        };
        append.set_msg_type(MessageType::MsgAppend);
        let mut cc = append.clone();
        cc.entries = vec![entry(1, 1)];
        let mut heartbeat = Message {
            from: 1,
            to: 2,
            term: 2,
            commit: 7,
            ..Default::default()
        };
        heartbeat.set_msg_type(MessageType::MsgHeartbeat);
        let batch = internal::RaftBatch {
            from: 1,
            to: 2,
            cluster_id: 0xcdf8_1819_4e3a_8c32,
            messages: [append, cc, heartbeat]
                .iter()
                .map(prost011::Message::encode_to_vec)
                .collect(),
        };
        let members = internal::MembersResponse {
            cluster_id: 0xcdf8_1819_4e3a_8c32,
            members: vec![
                etcdserverpb::Member {
                    id: 0x8e9e05c52164694d,
                    name: "m1".into(),
                    peer_ur_ls: vec!["http://127.0.0.1:2380".into()],
                    client_ur_ls: vec!["http://127.0.0.1:2379".into()],
                    is_learner: false,
                },
                etcdserverpb::Member {
                    id: 0x91bc3c398fb3c146,
                    name: String::new(),
                    peer_ur_ls: vec!["http://127.0.0.2:2380".into()],
                    client_ur_ls: Vec::new(),
                    is_learner: true,
                },
            ],
        };
        let keepalive = etcdserverpb::LeaseKeepAliveRequest {
            id: 0x694d_8000_0000_0001,
        };
        let with = |kind: u8, body: Vec<u8>| {
            let mut v = vec![kind];
            v.extend(body);
            v
        };
        vec![
            ("raft-batch".to_string(), with(0, batch.encode_to_vec())),
            (
                "members-response".to_string(),
                with(1, members.encode_to_vec()),
            ),
            (
                "lease-keepalive".to_string(),
                with(2, keepalive.encode_to_vec()),
            ),
        ]
    }
}

/// Found by review while writing the snapshot target: branch pages sharing children made
/// `snapshot status` of a 32 KiB file walk 255^4 pages. Now a page reached twice is refused.
#[test]
fn snapshot_whose_pages_form_a_dag_is_refused() {
    let file = fuzz_dir().join("regressions/snapshot/bbolt-page-dag-hang");
    let data = std::fs::read(&file).expect("read regression input");
    let err = ballast::fuzzing::snapshot_file(&data).expect_err("a DAG of pages must be refused");
    assert!(
        err.to_string()
            .contains("page 7 is referenced by more than one branch element"),
        "unexpected error: {err}"
    );
}

/// Found by the `peer_message` target: raft-rs's `get_entry_type` panics on an entry type
/// it does not know, so a peer's batch carrying one would crash the member that steps it.
#[test]
fn raft_message_with_unknown_entry_type_is_refused() {
    let file = fuzz_dir().join("regressions/peer_message/raft-entry-unknown-type");
    let data = std::fs::read(&file).expect("read regression input");
    let err =
        ballast::fuzzing::peer_message(&data).expect_err("unknown entry type must be refused");
    assert!(
        err.to_string().contains("has unknown type -1"),
        "unexpected error: {err}"
    );
}

/// A WAL record with a valid checksum but an entry type raft-rs does not know is reported
/// as corruption when the log is opened, not handed to raft-rs, whose `get_entry_type`
/// would panic on it.
#[test]
fn wal_entry_of_unknown_type_is_corruption() {
    let file = fuzz_dir().join("regressions/wal/unknown-entry-type");
    let data = std::fs::read(&file).expect("read regression input");
    let err = ballast::fuzzing::wal_dir(&data).expect_err("unknown entry type must be refused");
    assert!(
        err.to_string()
            .contains("record has a valid checksum but unknown entry type 99"),
        "unexpected error: {err}"
    );
}

/// A segment starting with a snapshot mark at index `u64::MAX`: the name check computed the
/// next index with an overflowing `+ 1` (a panic with overflow checks, a wrong check without).
#[test]
fn wal_snapshot_mark_at_the_last_index_is_corruption() {
    let file = fuzz_dir().join("regressions/wal/snapshot-mark-at-max-index");
    let data = std::fs::read(&file).expect("read regression input");
    let err = ballast::fuzzing::wal_dir(&data).expect_err("a mark at u64::MAX must be refused");
    assert!(
        err.to_string()
            .contains("snapshot mark at index 18446744073709551615 is out of range"),
        "unexpected error: {err}"
    );
}
