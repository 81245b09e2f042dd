//! Retention: after a successful backup, delete the backups the rules no longer keep.
//!
//! Only complete backups (those with metadata) are considered, so an upload in progress
//! from another job or an unrelated object is never touched. Some backups are never
//! deleted, whatever the clock or the rules say:
//! - the backup just made, and the newest scheduled backup (so a schedule always leaves one);
//! - on-demand backups (`save --on-demand`): someone asked for that one backup, and a
//!   schedule's `--keep-last` must not turn it into the oldest of N and drop it, so they are
//!   neither deleted nor counted: keep-last N keeps the N newest scheduled backups;
//! - held backups ([`super::holds`]): a cluster is being restored from them. A held backup
//!   still counts toward keep-last (the hold keeps it on top of the N newest). The holds are
//!   read again right before each delete, so one placed since the listing is still seen.
//!
//! The snapshot object goes first, its metadata next and its expired holds last: an
//! interruption leaves at worst a metadata object without a snapshot, which the next run
//! deletes, or expired holds without a backup, which the next run deletes too, never a
//! snapshot that is invisible to listing. Expired holds on backups that are kept stay until
//! their backup goes (listing does not show them).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use super::holds::{self, Hold};
use super::location::Location;
use super::metadata::{self, Metadata, SUFFIX};
use crate::error::Result;

/// Which backups to keep; with neither rule, all are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many scheduled backups (the newest).
    pub keep_last: Option<usize>,
    /// Delete scheduled backups older than this.
    pub max_age: Option<Duration>,
}

impl Retention {
    fn is_unbounded(&self) -> bool {
        self.keep_last.is_none() && self.max_age.is_none()
    }
}

/// What retention did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Backups deleted.
    pub deleted: Vec<String>,
    /// Backups the rules would have deleted, kept for their live holds.
    pub held: Vec<(String, Vec<Hold>)>,
}

/// Deletes what `rules` do not keep (never `just_made`, on-demand or held backups).
pub async fn apply(
    location: &Location,
    rules: &Retention,
    just_made: &str,
    now: SystemTime,
) -> Result<Applied> {
    let mut applied = Applied::default();
    if rules.is_unbounded() {
        return Ok(applied);
    }
    let listing = metadata::scan(location).await?;
    let mut live = BTreeMap::new();
    for name in &listing.hold_folders {
        let (alive, expired) = split(holds::read(location, name).await?, now);
        if !alive.is_empty() {
            live.insert(name.clone(), alive);
        } else if !listing.backups.iter().any(|b| b.name == *name) {
            // Expired holds of a backup that is gone (an interrupted run, or a hold placed
            // while its backup was being deleted).
            holds::delete(location, name, &expired).await?;
        }
    }
    let held: BTreeSet<String> = live.keys().cloned().collect();
    let selection = select(&listing.backups, &held, rules, just_made, now);
    for name in selection.held {
        let holds = live.remove(&name).unwrap_or_default();
        applied.held.push((name, holds));
    }
    for name in selection.delete {
        // Again, right before deleting: a restore may have placed a hold since the listing.
        let (alive, expired) = split(holds::read(location, &name).await?, now);
        if alive.is_empty() {
            delete(location, &name, &expired).await?;
            applied.deleted.push(name);
        } else {
            applied.held.push((name, alive));
        }
    }
    Ok(applied)
}

/// Live holds and expired ones.
fn split(holds: Vec<Hold>, now: SystemTime) -> (Vec<Hold>, Vec<Hold>) {
    holds.into_iter().partition(|h| h.is_live(now))
}

/// Deletes backup `name`: its snapshot, its metadata, then its (expired) `holds`.
async fn delete(location: &Location, name: &str, holds: &[Hold]) -> Result<()> {
    for object in [name.to_string(), format!("{name}{SUFFIX}")] {
        match location.store().delete(&location.object(&object)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                return Err(location.explain(
                    &format!("cannot delete old backup {object} (retention) in"),
                    e,
                ))
            }
        }
    }
    holds::delete(location, name, holds).await
}

/// What the rules decide about the backups they do not keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// To delete.
    pub delete: Vec<String>,
    /// Not kept by the rules, but held.
    pub held: Vec<String>,
}

/// What to do with `backups` (newest first), given the names with live holds.
pub fn select(
    backups: &[Metadata],
    held: &BTreeSet<String>,
    rules: &Retention,
    just_made: &str,
    now: SystemTime,
) -> Selection {
    let (held, delete) = backups
        .iter()
        .filter(|b| !b.on_demand)
        .enumerate()
        // The newest scheduled backup stays, even when it is not the one just made (an
        // on-demand save applying retention, or clocks that disagree).
        .filter(|(i, b)| *i > 0 && b.name != just_made)
        .filter(|(i, b)| {
            let too_many = rules.keep_last.is_some_and(|n| *i >= n);
            let too_old = rules.max_age.is_some_and(|age| {
                b.created()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|d| d > age)
            });
            too_many || too_old
        })
        .map(|(_, b)| b.name.clone())
        .partition(|name| held.contains(name));
    Selection { delete, held }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::metadata::Compression;

    fn backup(name: &str, created_at: &str) -> Metadata {
        Metadata {
            name: name.into(),
            cluster_id: "1".into(),
            member_id: "2".into(),
            member_name: "m".into(),
            endpoint: "http://m:2379".into(),
            revision: 1,
            size: 1,
            db_size: 1,
            sha256: String::new(),
            compression: Compression::None,
            created_at: created_at.into(),
            etcd_version: "3.5.17".into(),
            ballast_version: "0".into(),
            on_demand: false,
        }
    }

    fn on_demand(name: &str, created_at: &str) -> Metadata {
        Metadata {
            on_demand: true,
            ..backup(name, created_at)
        }
    }

    fn at(t: &str) -> SystemTime {
        humantime::parse_rfc3339(t).expect("time")
    }

    fn keep(keep_last: Option<usize>, max_age: Option<u64>) -> Retention {
        Retention {
            keep_last,
            max_age: max_age.map(Duration::from_secs),
        }
    }

    const DAY: u64 = 86400;

    #[test]
    fn select_table() {
        let now = at("2026-01-05T12:00:00Z");
        // Newest first, as `metadata::list` returns them.
        let scheduled = [
            backup("e", "2026-01-05T00:00:00Z"),
            backup("d", "2026-01-04T00:00:00Z"),
            backup("c", "2026-01-03T00:00:00Z"),
            backup("b", "2026-01-02T00:00:00Z"),
            backup("a", "2026-01-01T00:00:00Z"),
        ];
        let mixed = [
            on_demand("x", "2026-01-05T06:00:00Z"),
            backup("e", "2026-01-05T00:00:00Z"),
            on_demand("w", "2026-01-04T12:00:00Z"),
            backup("d", "2026-01-04T00:00:00Z"),
            backup("c", "2026-01-03T00:00:00Z"),
            on_demand("v", "2025-01-01T00:00:00Z"),
        ];
        // What, backups, rules, just made, held; then deleted, kept for their holds.
        type Names<'a> = &'a [&'a str];
        type Row<'a> = (
            &'a str,
            &'a [Metadata],
            Retention,
            &'a str,
            Names<'a>,
            Names<'a>,
            Names<'a>,
        );
        #[rustfmt::skip]
        let table: &[Row] = &[
            ("no rules", &scheduled, keep(None, None), "e", &[], &[], &[]),
            ("keep-last", &scheduled, keep(Some(2), None), "e", &[], &["c", "b", "a"], &[]),
            ("max-age", &scheduled, keep(None, Some(3 * DAY)), "e", &[], &["b", "a"], &[]),
            ("either rule drops", &scheduled, keep(Some(4), Some(3 * DAY)), "e", &[],
                &["b", "a"], &[]),
            ("the one just made survives everything", &scheduled,
                keep(Some(0), Some(0)), "e", &[], &["d", "c", "b", "a"], &[]),
            ("so does the newest when another was just made", &scheduled,
                keep(Some(0), Some(0)), "c", &[], &["d", "b", "a"], &[]),
            ("a held backup is kept", &scheduled, keep(Some(1), None), "e", &["c"],
                &["d", "b", "a"], &["c"]),
            ("and still counts toward keep-last", &scheduled, keep(Some(2), None), "e",
                &["d"], &["c", "b", "a"], &[]),
            ("held against max-age", &scheduled, keep(None, Some(DAY)), "e", &["a", "b"],
                &["d", "c"], &["b", "a"]),
            ("a hold on a kept backup changes nothing", &scheduled, keep(Some(5), None), "e",
                &["a"], &[], &[]),
            ("on-demand backups are not counted", &mixed, keep(Some(2), None), "e", &[],
                &["c"], &[]),
            ("nor deleted for their age", &mixed, keep(None, Some(0)), "e", &[],
                &["d", "c"], &[]),
            ("an on-demand save keeps the newest scheduled one", &mixed,
                keep(Some(0), Some(0)), "x", &[], &["d", "c"], &[]),
            ("on-demand and held", &mixed, keep(Some(1), None), "x", &["c"], &["d"], &["c"]),
            ("only on-demand backups", &[on_demand("q", "2020-01-01T00:00:00Z")],
                keep(Some(0), Some(0)), "q", &[], &[], &[]),
        ];
        for (what, backups, rules, just_made, held, deleted, kept) in table {
            let held = held.iter().map(|s| s.to_string()).collect();
            let got = select(backups, &held, rules, just_made, now);
            assert_eq!(got.delete, *deleted, "{what}: deleted");
            assert_eq!(got.held, *kept, "{what}: kept for holds");
        }
    }
}
