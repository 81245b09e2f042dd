//! Retention: after a successful backup, delete the backups the rules no longer keep.
//!
//! Only complete backups (those with metadata) are considered, so an upload in progress
//! from another job or an unrelated object is never touched, and the backup just made is
//! always kept, whatever the clock or the rules say. The snapshot object goes first and its
//! metadata last: an interruption leaves at worst a metadata object without a snapshot,
//! which the next run deletes, never a snapshot that is invisible to listing.

use std::time::{Duration, SystemTime};

use super::location::Location;
use super::metadata::{self, Metadata, SUFFIX};
use crate::error::Result;

/// Which backups to keep; with neither rule, all are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many (the newest).
    pub keep_last: Option<usize>,
    /// Delete backups older than this.
    pub max_age: Option<Duration>,
}

impl Retention {
    fn is_unbounded(&self) -> bool {
        self.keep_last.is_none() && self.max_age.is_none()
    }
}

/// Deletes what `rules` do not keep (never `just_made`); returns the deleted names.
pub async fn apply(
    location: &Location,
    rules: &Retention,
    just_made: &str,
    now: SystemTime,
) -> Result<Vec<String>> {
    if rules.is_unbounded() {
        return Ok(Vec::new());
    }
    let backups = metadata::list(location).await?;
    let mut deleted = Vec::new();
    for name in select(&backups, rules, just_made, now) {
        for object in [name.clone(), format!("{name}{SUFFIX}")] {
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
        deleted.push(name);
    }
    Ok(deleted)
}

/// The names to delete from `backups` (newest first).
pub fn select(
    backups: &[Metadata],
    rules: &Retention,
    just_made: &str,
    now: SystemTime,
) -> Vec<String> {
    backups
        .iter()
        .enumerate()
        .filter(|(_, b)| b.name != just_made)
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
        .collect()
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
        }
    }

    fn at(t: &str) -> SystemTime {
        humantime::parse_rfc3339(t).expect("time")
    }

    #[test]
    fn keep_last_and_max_age_combine() {
        let backups = [
            backup("c", "2026-01-03T00:00:00Z"),
            backup("b", "2026-01-02T00:00:00Z"),
            backup("a", "2026-01-01T00:00:00Z"),
        ];
        let now = at("2026-01-03T12:00:00Z");
        let keep2 = Retention {
            keep_last: Some(2),
            max_age: None,
        };
        assert_eq!(select(&backups, &keep2, "c", now), ["a"]);
        let day = Retention {
            keep_last: None,
            max_age: Some(Duration::from_secs(86400)),
        };
        assert_eq!(select(&backups, &day, "c", now), ["b", "a"]);
        // The one just made survives even rules that would drop everything.
        let none = Retention {
            keep_last: Some(0),
            max_age: Some(Duration::ZERO),
        };
        assert_eq!(select(&backups, &none, "c", now), ["b", "a"]);
    }
}
