//! Histories the suite saved from real failing runs, checked again: the checker must
//! keep catching what it caught then, whatever the server does now.

use std::io::Read;

use ballast_robustness::check::{self, Kind};
use ballast_robustness::history::History;

/// A saved report (as the suite writes it for a failing run) holds the history under
/// `history`.
fn load(name: &str) -> History {
    let path = format!("{}/histories/{name}", env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut report: serde_json::Value = serde_json::from_str(&text).expect("a saved report");
    serde_json::from_value(report["history"].take()).expect("a history")
}

/// Session 11: a watcher resumed from the compacted revision 642 got a progress
/// notification at 787 before the events 642..=787 it had been sent (the answer to its
/// progress request overtook them on the stream); it stopped there, so 146 events were
/// never delivered. Fixed in the watch hub; the history must still be flagged.
#[test]
fn watch_gap_after_compaction_is_caught() {
    let report = check::all(&load("watch-gap-after-compaction.json.gz"));
    assert!(!report.is_ok());
    assert_eq!(
        report.linearizability,
        check::Verdict::Linearizable,
        "{report}"
    );
    let gaps = report
        .violations
        .iter()
        .filter(|v| v.kind == Kind::WatchGap)
        .count();
    assert_eq!(gaps, 146, "{report}");
    assert_eq!(gaps, report.violations.len(), "{report}");
}
