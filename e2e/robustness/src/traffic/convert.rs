//! From the client crate's responses to the history's records.

use crate::history::{EventKind, KeyValue, WatchEvent};

pub fn kv(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: String::from_utf8_lossy(kv.value()).into_owned(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: kv.lease(),
    }
}

pub fn revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map(|h| h.revision()).unwrap_or_default()
}

pub fn event(e: &etcd_client::Event) -> WatchEvent {
    let kind = match e.event_type() {
        etcd_client::EventType::Put => EventKind::Put,
        etcd_client::EventType::Delete => EventKind::Delete,
    };
    WatchEvent {
        kind,
        kv: e.kv().map(kv).unwrap_or_else(|| KeyValue {
            key: String::new(),
            value: String::new(),
            create_revision: 0,
            mod_revision: 0,
            version: 0,
            lease: 0,
        }),
        prev_kv: e.prev_kv().map(kv),
    }
}
