//! How operations and watch events are named in violations: by index, client, times and
//! content, so a report can be matched against the saved history.

use crate::history::{Operation, Outcome, Request, Response, Time, WatchEvent, WatchSession};

use super::model::describe_kv;

/// A time as milliseconds since the run started.
pub(crate) fn ms(time: Time) -> String {
    format!("{}.{:03}ms", time / 1_000_000, (time / 1_000) % 1_000)
}

pub(crate) fn describe_request(request: &Request) -> String {
    match request {
        Request::Get {
            key,
            revision,
            serializable,
        } => format!(
            "Get {key:?}{}{}",
            at_revision(*revision),
            if *serializable { " serializable" } else { "" }
        ),
        Request::List {
            prefix,
            revision,
            serializable,
        } => format!(
            "List {prefix:?}{}{}",
            at_revision(*revision),
            if *serializable { " serializable" } else { "" }
        ),
        Request::Put { key, value, lease } => {
            if *lease == 0 {
                format!("Put {key:?}={value:?}")
            } else {
                format!("Put {key:?}={value:?} with lease {lease}")
            }
        }
        Request::Delete { key } => format!("Delete {key:?}"),
        Request::CompareAndSet {
            key,
            expected_mod_revision,
            value,
        } => format!("CompareAndSet {key:?}={value:?} if mod_revision={expected_mod_revision}"),
        Request::LeaseGrant { ttl } => format!("LeaseGrant ttl {ttl}s"),
        Request::LeaseRevoke { id } => format!("LeaseRevoke {id}"),
        Request::Compact { revision } => format!("Compact {revision}"),
    }
}

fn at_revision(revision: i64) -> String {
    if revision == 0 {
        String::new()
    } else {
        format!(" at revision {revision}")
    }
}

pub(crate) fn describe_response(response: &Response) -> String {
    match response {
        Response::Get { revision, kv } => match kv {
            Some(kv) => format!("revision {revision}, {}", describe_kv(kv)),
            None => format!("revision {revision}, not found"),
        },
        Response::List { revision, kvs } => format!(
            "revision {revision}, [{}]",
            kvs.iter().map(describe_kv).collect::<Vec<_>>().join(", ")
        ),
        Response::Put { revision } => format!("revision {revision}"),
        Response::Delete { revision, deleted } => format!("revision {revision}, deleted {deleted}"),
        Response::CompareAndSet {
            revision,
            succeeded,
            kv,
        } => {
            if *succeeded {
                format!("revision {revision}, succeeded")
            } else {
                match kv {
                    Some(kv) => format!("revision {revision}, failed, read {}", describe_kv(kv)),
                    None => format!("revision {revision}, failed, key absent"),
                }
            }
        }
        Response::LeaseGrant { revision, id } => format!("revision {revision}, lease {id}"),
        Response::LeaseRevoke { revision } => format!("revision {revision}"),
        Response::Compact { revision } => format!("revision {revision}"),
    }
}

/// `op#12 (client 3, 1.200ms..1.500ms) Put "k"="v" -> revision 5`.
pub(crate) fn describe_operation(index: usize, op: &Operation) -> String {
    let outcome = match &op.outcome {
        Outcome::Ok(response) => describe_response(response),
        Outcome::Error(error) => format!("error {error:?} (outcome unknown)"),
    };
    format!(
        "op#{index} (client {}, {}..{}) {} -> {outcome}",
        op.client,
        ms(op.call),
        ms(op.ret),
        describe_request(&op.request)
    )
}

/// `watch#2 (watcher 1, client 4, "a".."b" from revision 7)`.
pub(crate) fn describe_session(index: usize, session: &WatchSession) -> String {
    let range = if session.range_end.is_empty() {
        format!("{:?}", session.key)
    } else {
        format!("[{:?}, {:?})", session.key, session.range_end)
    };
    format!(
        "watch#{index} (watcher {}, client {}, {range} from revision {})",
        session.watcher, session.client, session.start_revision
    )
}

pub(crate) fn describe_event(event: &WatchEvent) -> String {
    let kind = match event.kind {
        crate::history::EventKind::Put => "PUT",
        crate::history::EventKind::Delete => "DELETE",
    };
    match event.kind {
        crate::history::EventKind::Put => format!("{kind} {}", describe_kv(&event.kv)),
        crate::history::EventKind::Delete => format!(
            "{kind} {:?} at revision {}",
            event.kv.key, event.kv.mod_revision
        ),
    }
}
