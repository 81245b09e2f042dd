//! Holds: marks that someone is restoring from a backup, so that retention leaves it alone.
//!
//! Several clusters may share a bucket and prefix: a new cluster restored from an old one's
//! backups fetches its backup several times over minutes (the restore check, then every
//! founding member), while the old cluster's schedule keeps deleting backups past
//! `--keep-last`. Without a hold, a schedule with `--keep-last 1` can delete the backup
//! between the check and the members' fetches, and the restore fails half-way.
//!
//! A hold is a small object beside the backup, `<name>.holds/<holder>.json` holding
//! `{"holder": ..., "until": RFC 3339}`:
//! - it lives in the same store as the backup, so every schedule that can delete the backup
//!   sees it without any other coordination;
//! - one object per holder: holders never overwrite each other's holds, a holder renews its
//!   own by writing it again, and releasing is one delete;
//! - it expires by itself, so a restore that never finishes (a cluster deleted meanwhile)
//!   does not pin a backup forever; an expired hold is deleted with its backup;
//! - it sits one level below the backups, so listing backups (direct children only) never
//!   mistakes it for one.
//!
//! A hold whose content cannot be read counts as live: a backup is deleted only when no
//! hold can still be meant. Writing a hold is best effort for `fetch`: restoring with
//! read-only credentials (or a read-only volume) must still work, it only goes without the
//! protection, and says so. S3 has no locks, so a hold written while retention is between
//! its last look at the holds and the delete is not seen; retention looks again right before
//! deleting each backup to keep that window small, and a fetch caught in it fails on the
//! missing snapshot rather than restoring something else.

use std::time::{Duration, SystemTime};

use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use super::location::Location;
use super::metadata::SUFFIX;
use crate::error::{Error, Result};

/// Suffix of the folder of a backup's holds, appended to the backup's name.
pub const HOLDS: &str = ".holds";

/// Longest holder name (a Kubernetes object name, with room for a namespace).
const HOLDER_MAX: usize = 253;

/// Longest hold: a hundred years is "until released"; RFC 3339 ends with year 9999.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 86400);

/// One hold on a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Who holds it (the object's name; a hold is released by it).
    pub holder: String,
    /// RFC 3339, UTC: the hold protects the backup until then.
    pub until: String,
}

impl Hold {
    /// A hold by `holder` lasting `duration` from `now` (at most a hundred years).
    pub fn new(holder: &str, now: SystemTime, duration: Duration) -> Result<Hold> {
        if duration > LONGEST {
            return Err(Error::Backup(format!(
                "a hold of {} is too long: at most 100 years (release it when done)",
                humantime::format_duration(duration)
            )));
        }
        let until = now + duration;
        Ok(Hold {
            holder: holder.to_string(),
            until: humantime::format_rfc3339_seconds(until).to_string(),
        })
    }

    /// Whether it still protects its backup at `now`. An unreadable time counts as live.
    pub fn is_live(&self, now: SystemTime) -> bool {
        humantime::parse_rfc3339_weak(&self.until).map_or(true, |until| until > now)
    }
}

/// Checks that `holder` can name a hold object: letters, digits, `.`, `_` and `-` (a
/// Kubernetes name, or `namespace.name`), not starting with a dot.
pub fn check_holder(holder: &str) -> Result<()> {
    let valid = !holder.is_empty()
        && holder.len() <= HOLDER_MAX
        && !holder.starts_with('.')
        && holder
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(Error::Backup(format!(
            "bad holder {holder:?}: use 1 to {HOLDER_MAX} letters, digits, '.', '_' or '-', \
             not starting with '.' (e.g. NAMESPACE.CLUSTER)"
        )))
    }
}

/// The folder of `backup`'s holds, relative to the location.
fn folder(backup: &str) -> String {
    format!("{backup}{HOLDS}")
}

fn key(location: &Location, backup: &str, holder: &str) -> ObjectPath {
    location.object(&format!("{}/{holder}{SUFFIX}", folder(backup)))
}

/// Writes `hold` on `backup` (replacing this holder's earlier hold, so holding again renews).
pub async fn place(location: &Location, backup: &str, hold: &Hold) -> Result<()> {
    check_holder(&hold.holder)?;
    let json = serde_json::to_vec(hold)
        .map_err(|e| Error::Backup(format!("cannot encode the hold: {e}")))?;
    location
        .store()
        .put(&key(location, backup, &hold.holder), json.into())
        .await
        .map_err(|e| location.explain(&format!("cannot write a hold on {backup} to"), e))?;
    Ok(())
}

/// Deletes `holder`'s hold on `backup`; whether there was one. Releasing twice is fine.
pub async fn release(location: &Location, backup: &str, holder: &str) -> Result<bool> {
    check_holder(holder)?;
    let key = key(location, backup, holder);
    let what = format!("cannot release the hold of {holder} on {backup} in");
    let existed = match location.store().head(&key).await {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => return Err(location.explain(&what, e)),
    };
    if existed {
        match location.store().delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(location.explain(&what, e)),
        }
    }
    remove_empty_folder(location, backup);
    Ok(existed)
}

/// Every hold on `backup`, expired ones included, by holder.
pub async fn read(location: &Location, backup: &str) -> Result<Vec<Hold>> {
    let what = format!("cannot read the holds on {backup} in");
    let prefix = location.object(&folder(backup));
    let objects = match location.store().list_with_delimiter(Some(&prefix)).await {
        Ok(listing) => listing.objects,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(location.explain(&what, e)),
    };
    let mut holds = Vec::new();
    for object in objects {
        let Some(holder) = object
            .location
            .filename()
            .and_then(|f| f.strip_suffix(SUFFIX))
        else {
            continue;
        };
        let bytes = match location.store().get(&object.location).await {
            Ok(got) => got.bytes().await,
            Err(e) => Err(e),
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            // Released meanwhile.
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(location.explain(&what, e)),
        };
        holds.push(parse(backup, holder, &bytes));
    }
    holds.sort_by(|a, b| a.holder.cmp(&b.holder));
    Ok(holds)
}

/// A hold object's content; the holder is the object's name (what release deletes), and
/// content that cannot be read makes a hold without an end.
fn parse(backup: &str, holder: &str, bytes: &[u8]) -> Hold {
    match serde_json::from_slice::<Hold>(bytes) {
        Ok(hold) => Hold {
            holder: holder.to_string(),
            until: hold.until,
        },
        Err(e) => {
            tracing::warn!(
                "the hold of {holder} on {backup} is not readable ({e}); it counts as \
                 live until released"
            );
            Hold {
                holder: holder.to_string(),
                until: String::new(),
            }
        }
    }
}

/// Deletes `holds` of `backup` (expired ones, with their backup or after it).
pub async fn delete(location: &Location, backup: &str, holds: &[Hold]) -> Result<()> {
    for hold in holds {
        match location
            .store()
            .delete(&key(location, backup, &hold.holder))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                return Err(location.explain(
                    &format!(
                        "cannot delete the expired hold of {} on {backup} in",
                        hold.holder
                    ),
                    e,
                ))
            }
        }
    }
    remove_empty_folder(location, backup);
    Ok(())
}

/// A directory location keeps a folder once its files are gone; this removes it if empty.
fn remove_empty_folder(location: &Location, backup: &str) {
    if let Some(path) = location.local_path(&folder(backup)) {
        let _ = std::fs::remove_dir(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> SystemTime {
        humantime::parse_rfc3339(t).expect("time")
    }

    #[test]
    fn holds_last_until_their_time_and_unreadable_ones_forever() {
        let now = at("2026-12-03T14:00:00Z");
        let hold = Hold::new("ns.new", now, Duration::from_secs(86400)).expect("hold");
        assert_eq!(hold.until, "2026-12-04T14:00:00Z");
        assert!(hold.is_live(now));
        assert!(hold.is_live(at("2026-12-04T13:59:59Z")));
        assert!(!hold.is_live(at("2026-12-04T14:00:00Z")));
        assert!(!Hold::new("h", now, Duration::ZERO)
            .expect("hold")
            .is_live(now));
        assert!(Hold::new("h", now, LONGEST).is_ok());
        assert!(
            Hold::new("h", now, Duration::MAX).is_err(),
            "no panic past year 9999"
        );

        let unreadable = parse("x.db", "h", b"not json");
        assert_eq!(unreadable.holder, "h");
        assert!(unreadable.is_live(at("2100-01-01T00:00:00Z")));
        // The object's name wins over what it says: it is what release deletes.
        let renamed = parse(
            "x.db",
            "h",
            br#"{"holder":"other","until":"2026-01-01T00:00:00Z"}"#,
        );
        assert_eq!(renamed.holder, "h");
        assert!(!renamed.is_live(now));
    }

    #[test]
    fn holders_are_single_safe_path_segments() {
        for good in ["new-cluster", "ns.main", "a_b", "A1"] {
            assert!(check_holder(good).is_ok(), "{good}");
        }
        let long = "a".repeat(HOLDER_MAX + 1);
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "ns/main",
            "a b",
            "h*",
            long.as_str(),
        ] {
            assert!(check_holder(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn holds_sit_in_a_folder_beside_the_backup() {
        let l = Location::parse("s3://b/prod").expect("parse");
        assert_eq!(
            key(&l, "x.db", "ns.new").as_ref(),
            "prod/x.db.holds/ns.new.json"
        );
    }
}
