//! The `--force-new-cluster` variant of a restart (etcd's `forceNewCluster`).

use crate::cluster::Members;
use crate::error::Result;
use crate::raft::wal::{Recovered, Wal};

/// --force-new-cluster: every other member is removed by committed
/// membership changes appended to this member's log, so that replaying the
/// log leaves it alone in a one-member cluster, with all its data (etcd's way).
pub(super) fn force_new_cluster(
    wal: &mut Wal,
    rec: &mut Recovered,
    me: u64,
    members: &Members,
    conf: Option<&raft::prelude::ConfState>,
) -> Result<()> {
    use raft::prelude::{ConfChange, ConfChangeType, Entry, EntryType};
    let mut others: Vec<u64> = members.ids();
    if let Some(cs) = conf {
        others.extend(cs.voters.iter().chain(&cs.learners));
    }
    // Members added in the log but not yet in the tables count too (etcd's getIDs).
    for e in rec
        .entries
        .iter()
        .filter(|e| e.get_entry_type() == EntryType::EntryConfChange)
    {
        if let Ok(cc) = <ConfChange as prost011::Message>::decode(e.data.as_slice()) {
            if cc.get_change_type() == ConfChangeType::RemoveNode {
                others.retain(|id| *id != cc.node_id);
            } else {
                others.push(cc.node_id);
            }
        }
    }
    others.sort_unstable();
    others.dedup();
    others.retain(|id| *id != me);
    let last = rec
        .entries
        .last()
        .map_or_else(|| rec.snapshot.as_ref().map_or(0, |m| m.index), |e| e.index);
    let term = rec.hard_state.term.max(1);
    let entries: Vec<Entry> = others
        .iter()
        .enumerate()
        .map(|(i, id)| Entry {
            entry_type: EntryType::EntryConfChange as i32,
            term,
            index: last + 1 + i as u64,
            data: prost011::Message::encode_to_vec(&ConfChange {
                change_type: ConfChangeType::RemoveNode as i32,
                node_id: *id,
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let mut hs = rec.hard_state.clone();
    hs.term = term;
    hs.commit = last + entries.len() as u64;
    wal.append(&entries, Some(&hs))?;
    wal.sync()?;
    tracing::warn!(
        removed = ?others.iter().map(|id| format!("{id:x}")).collect::<Vec<_>>(),
        "forcing restart of this member as a one-member cluster (--force-new-cluster)"
    );
    rec.entries.extend(entries);
    rec.hard_state = hs;
    Ok(())
}
