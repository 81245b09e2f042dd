//! What the operator tells the members through its state ConfigMap, mounted in every pod
//! (keys as files): whether the cluster has formed (`cluster-id`), and a request to recover
//! from a lost quorum (`recovery-member`, `recovery-request`, `recovery-not-after`). The
//! named member, when it has data, restarts once with `--force-new-cluster`. Each request
//! is carried out at most once per data dir: its ID is recorded on the member's volume
//! before the server starts, so a restart of the pod or of the server never forces a new
//! cluster a second time (that would drop the members added back since).

use std::path::{Path, PathBuf};

use crate::error::Error;

/// A valid request for this member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: String,
}

/// The request in `dir` for `member`, if one names it, is not past its `not-after` (unix
/// seconds) at `now`, and is not among the `consumed` IDs.
pub fn pending(dir: &Path, member: &str, now: i64, consumed: &str) -> Option<Request> {
    let read = |key: &str| {
        std::fs::read_to_string(dir.join(key))
            .ok()
            .map(|v| v.trim().to_string())
    };
    let (named, id, not_after) = (
        read("recovery-member")?,
        read("recovery-request")?,
        read("recovery-not-after")?,
    );
    let not_after: i64 = not_after.parse().ok()?;
    let fresh = named == member && now <= not_after && !id.is_empty();
    let done = consumed.lines().any(|l| l.trim() == id);
    (fresh && !done).then_some(Request { id })
}

/// Whether the operator has seen the cluster formed: a member with no data then never
/// bootstraps it again, even when no other member answers.
pub fn cluster_formed(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cluster-id")).is_ok_and(|id| !id.trim().is_empty())
}

/// Where consumed request IDs are kept: beside the data dir, on the member's volume.
pub fn consumed_path(data_dir: &Path) -> PathBuf {
    data_dir
        .parent()
        .unwrap_or(data_dir)
        .join("recovery-requests-done")
}

/// Records `request` as carried out, durably, before the server is let start with it.
pub fn mark_consumed(data_dir: &Path, request: &Request) -> Result<(), Error> {
    use std::io::Write;
    let path = consumed_path(data_dir);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    writeln!(file, "{}", request.id)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(dir: &Path, member: &str, id: &str, not_after: i64) {
        std::fs::write(dir.join("recovery-member"), member).expect("member");
        std::fs::write(dir.join("recovery-request"), id).expect("request");
        std::fs::write(dir.join("recovery-not-after"), not_after.to_string()).expect("not-after");
    }

    #[test]
    fn only_a_fresh_request_for_this_member_counts_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(pending(dir.path(), "main-0", 100, ""), None, "no request");
        request(dir.path(), "main-0", "r1", 200);
        let want = Some(Request { id: "r1".into() });
        assert_eq!(pending(dir.path(), "main-0", 100, ""), want);
        assert_eq!(
            pending(dir.path(), "main-1", 100, ""),
            None,
            "another member"
        );
        assert_eq!(pending(dir.path(), "main-0", 201, ""), None, "expired");
        assert_eq!(pending(dir.path(), "main-0", 100, "r0\nr1\n"), None, "done");
    }

    #[test]
    fn the_cluster_has_formed_once_the_operator_wrote_its_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!cluster_formed(dir.path()));
        std::fs::write(dir.path().join("cluster-id"), "5daec74facfbd43f").expect("id");
        assert!(cluster_formed(dir.path()));
    }

    #[test]
    fn consumption_is_recorded_on_the_volume() {
        let volume = tempfile::tempdir().expect("tempdir");
        let data = volume.path().join("data");
        mark_consumed(&data, &Request { id: "r1".into() }).expect("mark");
        mark_consumed(&data, &Request { id: "r2".into() }).expect("mark");
        let done = std::fs::read_to_string(consumed_path(&data)).expect("read");
        assert_eq!(done, "r1\nr2\n");
    }
}
