//! Pins the wire format of the generated types to etcd's.
//!
//! Expected bytes are written out by hand from the field numbers and types in
//! the etcd 3.5 API, so a renumbered or retyped field fails here.

use ballast_proto::etcdserverpb::{
    compare, range_request, watch_create_request, watch_request, Compare, LeaseGrantRequest,
    Member, PutRequest, RangeRequest, ResponseHeader, WatchCreateRequest, WatchRequest,
    WatchResponse,
};
use ballast_proto::{internal, mvccpb};
use prost::Message;

fn roundtrip<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, expected: &[u8]) {
    assert_eq!(msg.encode_to_vec(), expected, "encoding of {msg:?}");
    assert_eq!(&M::decode(expected).expect("decode"), msg);
}

#[test]
fn put_request() {
    let put = PutRequest {
        key: b"a".to_vec(),
        value: b"b".to_vec(),
        lease: 5,
        prev_kv: true,
        ..Default::default()
    };
    roundtrip(
        &put,
        &[0x0a, 0x01, b'a', 0x12, 0x01, b'b', 0x18, 0x05, 0x20, 0x01],
    );

    let ignore = PutRequest {
        key: b"a".to_vec(),
        ignore_value: true,
        ignore_lease: true,
        ..Default::default()
    };
    roundtrip(&ignore, &[0x0a, 0x01, b'a', 0x28, 0x01, 0x30, 0x01]);
}

#[test]
fn range_request_all_fields() {
    let req = RangeRequest {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        limit: 10,
        revision: 7,
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Mod as i32,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 1,
        max_mod_revision: 2,
        min_create_revision: 3,
        max_create_revision: 4,
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x01, b'a', // 1 key
        0x12, 0x01, b'b', // 2 range_end
        0x18, 0x0a,       // 3 limit
        0x20, 0x07,       // 4 revision
        0x28, 0x02,       // 5 sort_order = DESCEND
        0x30, 0x03,       // 6 sort_target = MOD
        0x38, 0x01,       // 7 serializable
        0x40, 0x01,       // 8 keys_only
        0x48, 0x01,       // 9 count_only
        0x50, 0x01,       // 10 min_mod_revision
        0x58, 0x02,       // 11 max_mod_revision
        0x60, 0x03,       // 12 min_create_revision
        0x68, 0x04,       // 13 max_create_revision
    ];
    roundtrip(&req, &expected);
}

#[test]
fn enum_values() {
    use ballast_proto::authpb::permission;
    use ballast_proto::etcdserverpb::{alarm_request, downgrade_request, AlarmType};

    assert_eq!(range_request::SortOrder::None as i32, 0);
    assert_eq!(range_request::SortOrder::Ascend as i32, 1);
    assert_eq!(range_request::SortTarget::Key as i32, 0);
    assert_eq!(range_request::SortTarget::Value as i32, 4);
    assert_eq!(compare::CompareResult::NotEqual as i32, 3);
    assert_eq!(compare::CompareTarget::Lease as i32, 4);
    assert_eq!(watch_create_request::FilterType::Noput as i32, 0);
    assert_eq!(watch_create_request::FilterType::Nodelete as i32, 1);
    assert_eq!(AlarmType::None as i32, 0);
    assert_eq!(AlarmType::Nospace as i32, 1);
    assert_eq!(AlarmType::Corrupt as i32, 2);
    assert_eq!(alarm_request::AlarmAction::Deactivate as i32, 2);
    assert_eq!(downgrade_request::DowngradeAction::Cancel as i32, 2);
    assert_eq!(mvccpb::event::EventType::Delete as i32, 1);
    assert_eq!(permission::Type::Readwrite as i32, 2);
}

#[test]
fn watch_create_request() {
    let req = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
                start_revision: 3,
                progress_notify: true,
                filters: vec![watch_create_request::FilterType::Nodelete as i32],
                prev_kv: true,
                watch_id: 9,
                fragment: true,
            },
        )),
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x13,             // 1 create_request, 19 bytes
        0x0a, 0x01, b'k',       //   1 key
        0x12, 0x01, b'l',       //   2 range_end
        0x18, 0x03,             //   3 start_revision
        0x20, 0x01,             //   4 progress_notify
        0x2a, 0x01, 0x01,       //   5 filters (packed) = [NODELETE]
        0x30, 0x01,             //   6 prev_kv
        0x38, 0x09,             //   7 watch_id
        0x40, 0x01,             //   8 fragment
    ];
    roundtrip(&req, &expected);

    // Unpacked encoding of the repeated enum must be accepted as well.
    let unpacked = [0x0a, 0x04, 0x28, 0x01, 0x28, 0x00];
    let decoded = WatchRequest::decode(&unpacked[..]).unwrap();
    let Some(watch_request::RequestUnion::CreateRequest(c)) = decoded.request_union else {
        panic!("expected create_request, got {decoded:?}");
    };
    assert_eq!(c.filters, vec![1, 0]);
}

#[test]
fn watch_cancel_and_progress_requests() {
    let cancel = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CancelRequest(
            ballast_proto::etcdserverpb::WatchCancelRequest { watch_id: 4 },
        )),
    };
    roundtrip(&cancel, &[0x12, 0x02, 0x08, 0x04]);

    let progress = WatchRequest {
        request_union: Some(watch_request::RequestUnion::ProgressRequest(
            ballast_proto::etcdserverpb::WatchProgressRequest {},
        )),
    };
    roundtrip(&progress, &[0x1a, 0x00]);
}

#[test]
fn watch_response_with_event() {
    let resp = WatchResponse {
        header: Some(ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 3,
            raft_term: 4,
        }),
        watch_id: 5,
        created: true,
        canceled: true,
        compact_revision: 6,
        cancel_reason: "x".into(),
        fragment: true,
        events: vec![mvccpb::Event {
            r#type: mvccpb::event::EventType::Delete as i32,
            kv: Some(mvccpb::KeyValue {
                key: b"k".to_vec(),
                create_revision: 1,
                mod_revision: 2,
                version: 3,
                value: b"v".to_vec(),
                lease: 4,
            }),
            prev_kv: None,
        }],
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x08, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x20, 0x04, // 1 header
        0x10, 0x05,       // 2 watch_id
        0x18, 0x01,       // 3 created
        0x20, 0x01,       // 4 canceled
        0x28, 0x06,       // 5 compact_revision
        0x32, 0x01, b'x', // 6 cancel_reason
        0x38, 0x01,       // 7 fragment
        0x5a, 0x12,       // 11 events, 18 bytes
        0x08, 0x01,       //   1 type = DELETE
        0x12, 0x0e,       //   2 kv, 14 bytes
        0x0a, 0x01, b'k', //     1 key
        0x10, 0x01,       //     2 create_revision
        0x18, 0x02,       //     3 mod_revision
        0x20, 0x03,       //     4 version
        0x2a, 0x01, b'v', //     5 value
        0x30, 0x04,       //     6 lease
    ];
    roundtrip(&resp, &expected);
}

#[test]
fn compare_value_target_and_range_end() {
    let cmp = Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Value as i32,
        key: b"k".to_vec(),
        target_union: Some(compare::TargetUnion::Value(b"v".to_vec())),
        range_end: b"z".to_vec(),
    };
    // Fields go out in tag order, exactly as etcd (gogoproto) writes them.
    #[rustfmt::skip]
    let expected = [
        0x10, 0x03,             // 2 target = VALUE (result EQUAL = 0 is omitted)
        0x1a, 0x01, b'k',       // 3 key
        0x3a, 0x01, b'v',       // 7 value (target_union)
        0x82, 0x04, 0x01, b'z', // 64 range_end (tag 64<<3|2 = 514 = 0x82 0x04)
    ];
    roundtrip(&cmp, &expected);

    // Any field order must decode to the same message.
    #[rustfmt::skip]
    let shuffled = [
        0x82, 0x04, 0x01, b'z',
        0x3a, 0x01, b'v',
        0x1a, 0x01, b'k',
        0x10, 0x03,
    ];
    assert_eq!(Compare::decode(&shuffled[..]).unwrap(), cmp);

    let by_mod = Compare {
        result: compare::CompareResult::Less as i32,
        target: compare::CompareTarget::Mod as i32,
        key: b"k".to_vec(),
        target_union: Some(compare::TargetUnion::ModRevision(300)),
        range_end: vec![],
    };
    roundtrip(
        &by_mod,
        &[0x08, 0x02, 0x10, 0x02, 0x1a, 0x01, b'k', 0x30, 0xac, 0x02],
    );

    let by_lease = Compare {
        target: compare::CompareTarget::Lease as i32,
        target_union: Some(compare::TargetUnion::Lease(7)),
        ..Default::default()
    };
    roundtrip(&by_lease, &[0x10, 0x04, 0x40, 0x07]);
}

#[test]
fn lease_and_member_upper_case_fields() {
    // TTL = 1, ID = 2 on LeaseGrantRequest.
    let grant = LeaseGrantRequest {
        ttl: 60,
        id: 0x1234,
    };
    roundtrip(&grant, &[0x08, 0x3c, 0x10, 0xb4, 0x24]);

    let member = Member {
        id: 1,
        name: "n".into(),
        peer_ur_ls: vec!["p".into()],
        client_ur_ls: vec!["c".into()],
        is_learner: true,
    };
    roundtrip(
        &member,
        &[
            0x08, 0x01, 0x12, 0x01, b'n', 0x1a, 0x01, b'p', 0x22, 0x01, b'c', 0x28, 0x01,
        ],
    );
}

#[test]
fn internal_request() {
    let req = internal::InternalRequest {
        id: 7,
        auth: None,
        request: Some(internal::internal_request::Request::Put(PutRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })),
    };
    roundtrip(&req, &[0x08, 0x07, 0x12, 0x03, 0x0a, 0x01, b'a']);

    let enable = internal::InternalRequest {
        id: 0,
        auth: None,
        request: Some(internal::internal_request::Request::AuthEnable(
            ballast_proto::etcdserverpb::AuthEnableRequest {},
        )),
    };
    // Tag 20, wire type 2: 20<<3|2 = 162 = 0xa2 0x01.
    roundtrip(&enable, &[0xa2, 0x01, 0x00]);
}

#[test]
fn service_names() {
    use ballast_proto::etcdserverpb::{
        auth_server, cluster_server, kv_server, lease_server, maintenance_server, watch_server,
    };
    use ballast_proto::{v3electionpb::election_server, v3lockpb::lock_server};

    assert_eq!(kv_server::SERVICE_NAME, "etcdserverpb.KV");
    assert_eq!(watch_server::SERVICE_NAME, "etcdserverpb.Watch");
    assert_eq!(lease_server::SERVICE_NAME, "etcdserverpb.Lease");
    assert_eq!(cluster_server::SERVICE_NAME, "etcdserverpb.Cluster");
    assert_eq!(maintenance_server::SERVICE_NAME, "etcdserverpb.Maintenance");
    assert_eq!(auth_server::SERVICE_NAME, "etcdserverpb.Auth");
    assert_eq!(lock_server::SERVICE_NAME, "v3lockpb.Lock");
    assert_eq!(election_server::SERVICE_NAME, "v3electionpb.Election");
}
