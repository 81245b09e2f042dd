//! etcd's bucket layout inside a snapshot (its backend database), and the
//! encodings of the values Ballast keeps in other forms.
//!
//! Names and encodings follow etcd 3.4/3.5: `server/mvcc/backend` and
//! `cindex` (meta keys), `lease/leasepb` (lease records), `etcdserverpb`
//! `AlarmMember` (alarm keys), `membership/store.go` (member records).

use ballast_proto::etcdserverpb::AlarmMember;
use prost::Message;

use crate::cluster::Member;
use crate::mvcc::revision::Revision;

pub const ALARM: &[u8] = b"alarm";
pub const AUTH: &[u8] = b"auth";
pub const AUTH_ROLES: &[u8] = b"authRoles";
pub const AUTH_USERS: &[u8] = b"authUsers";
pub const CLUSTER: &[u8] = b"cluster";
/// Revision key (etcd's `revToBytes`, plus `t` for tombstones) → `mvccpb.KeyValue`.
pub const KEY: &[u8] = b"key";
pub const LEASE: &[u8] = b"lease";
pub const MEMBERS: &[u8] = b"members";
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
pub const META: &[u8] = b"meta";

/// Keys of the `meta` bucket.
pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
pub const FINISHED_COMPACT_REV: &[u8] = b"finishedCompactRev";
pub const SCHEDULED_COMPACT_REV: &[u8] = b"scheduledCompactRev";
pub const TERM: &[u8] = b"term";
/// Key of the `cluster` bucket.
pub const CLUSTER_VERSION: &[u8] = b"clusterVersion";
/// Key of the `auth` bucket: etcd bumps it on every auth change; a fresh
/// member starts at 1.
pub const AUTH_REVISION: &[u8] = b"authRevision";

/// etcd's encoding of a compaction revision in `meta`: the revision key of
/// `{main, 0}`.
pub fn revision_bytes(main: i64) -> Vec<u8> {
    Revision::new(main, 0).to_key(false).to_vec()
}

/// The main revision of a revision key (`key` bucket keys, compaction marks).
pub fn revision_main(b: &[u8]) -> Option<i64> {
    Revision::from_key(b).map(|(r, _)| r.main)
}

/// `leasepb.Lease`, the value of a `lease` bucket entry.
#[derive(Clone, PartialEq, Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// The granted TTL in seconds.
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    /// Set only by lease checkpointing; 0 otherwise.
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// `lease` bucket key: the ID as 8 big-endian bytes.
pub fn lease_key(id: i64) -> [u8; 8] {
    (id as u64).to_be_bytes()
}

/// `lease` bucket value.
pub fn lease_value(id: i64, ttl: i64) -> Vec<u8> {
    LeaseRecord {
        id,
        ttl,
        remaining_ttl: 0,
    }
    .encode_to_vec()
}

/// `alarm` bucket key (the value is empty).
pub fn alarm_key(member_id: u64, alarm: i32) -> Vec<u8> {
    AlarmMember { member_id, alarm }.encode_to_vec()
}

/// etcd's JSON member record (`membership.Member` with its embedded
/// `RaftAttributes` and `Attributes`, in that field order).
#[derive(serde::Serialize)]
struct MemberRecord<'a> {
    id: u64,
    #[serde(rename = "peerURLs")]
    peer_urls: &'a [String],
    #[serde(rename = "isLearner", skip_serializing_if = "std::ops::Not::not")]
    is_learner: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(rename = "clientURLs", skip_serializing_if = "<[String]>::is_empty")]
    client_urls: &'a [String],
}

/// `members` bucket entry: key is the ID in lowercase hex.
pub fn member_record(m: &Member) -> (Vec<u8>, Vec<u8>) {
    let record = MemberRecord {
        id: m.id,
        peer_urls: &m.peer_urls,
        is_learner: m.is_learner,
        name: &m.name,
        client_urls: &m.client_urls,
    };
    // Serializing plain strings and numbers cannot fail.
    let json = serde_json::to_vec(&record).unwrap_or_default();
    (format!("{:x}", m.id).into_bytes(), json)
}

/// The `clusterVersion` etcd records for an emulated release ("3.5.17" → "3.5.0").
pub fn cluster_version(etcd_version: &str) -> String {
    let mut parts = etcd_version.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}.0"),
        _ => "3.5.0".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_etcd_bytes() {
        // Bytes taken from a snapshot written by etcd 3.4.23.
        assert_eq!(
            lease_key(0x390d_a200_0706_e007),
            *b"\x39\x0d\xa2\x00\x07\x06\xe0\x07"
        );
        assert_eq!(
            lease_value(0x390d_a200_0706_e007, 600),
            b"\x08\x87\xc0\x9b\xb8\x80\xc0\xe8\x86\x39\x10\xd8\x04".to_vec()
        );
        assert_eq!(
            revision_bytes(3),
            b"\0\0\0\0\0\0\0\x03_\0\0\0\0\0\0\0\0".to_vec()
        );
        let m = Member {
            id: 13668033151171901709,
            name: "e1".into(),
            peer_urls: vec!["http://127.0.0.1:23801".into()],
            client_urls: vec!["http://127.0.0.1:23791".into()],
            is_learner: false,
        };
        let (k, v) = member_record(&m);
        assert_eq!(k, b"bdae9bbc11dd390d");
        assert_eq!(
            String::from_utf8(v).expect("utf8"),
            r#"{"id":13668033151171901709,"peerURLs":["http://127.0.0.1:23801"],"name":"e1","clientURLs":["http://127.0.0.1:23791"]}"#
        );
        assert_eq!(cluster_version("3.5.17"), "3.5.0");
    }

    #[test]
    fn bucket_names_are_in_bbolt_order() {
        let names = [
            ALARM,
            AUTH,
            AUTH_ROLES,
            AUTH_USERS,
            CLUSTER,
            KEY,
            LEASE,
            MEMBERS,
            MEMBERS_REMOVED,
            META,
        ];
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        let meta = [
            CONSISTENT_INDEX,
            FINISHED_COMPACT_REV,
            SCHEDULED_COMPACT_REV,
            TERM,
        ];
        assert!(meta.windows(2).all(|w| w[0] < w[1]));
    }
}
