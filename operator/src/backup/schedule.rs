//! The period of a cron schedule: backups are stale once the last success is older than two
//! periods. Parsed with `croner` (the five-field syntax of Kubernetes CronJobs; day of month
//! and day of week are OR-ed as in cron and in Kubernetes).

use croner::Cron;
use k8s_openapi::jiff::Timestamp;

type Utc = chrono::DateTime<chrono::Utc>;

/// The longest gap between two runs of `schedule` in the eight days after `now`
/// (`0 2 * * 1-5` has uneven gaps; the longest is the one a stale check must allow). Rarer
/// schedules (monthly) get the gap from their next run to the one after. `Err` in words a
/// user can act on when the schedule does not parse.
pub fn period(schedule: &str, now: Timestamp) -> Result<std::time::Duration, String> {
    let bad = |e: &dyn std::fmt::Display| format!("backup.schedule {schedule:?}: {e}");
    let cron: Cron = schedule.parse().map_err(|e| bad(&e))?;
    let start =
        Utc::from_timestamp(now.as_second(), 0).ok_or_else(|| bad(&"clock out of range"))?;
    let horizon = start + chrono::Duration::days(8);
    let runs: Vec<Utc> = cron
        .iter_after(start)
        .take_while(|t| *t <= horizon)
        .collect();
    let mut longest = runs
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_else(chrono::Duration::zero);
    if runs.len() < 2 {
        let first = cron
            .find_next_occurrence(&start, false)
            .map_err(|e| bad(&e))?;
        let second = cron
            .find_next_occurrence(&first, false)
            .map_err(|e| bad(&e))?;
        longest = second - first;
    }
    longest.to_std().map_err(|e| bad(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn periods_of_common_schedules() {
        let now = at("2026-12-03T10:17:00Z");
        let cases = [
            ("* * * * *", 60),
            ("*/5 * * * *", 300),
            ("0 */6 * * *", 6 * 3600),
            ("30 2 * * *", 86_400),
            // Weekdays only: Friday to Monday is the longest gap.
            ("0 2 * * 1-5", 3 * 86_400),
        ];
        for (schedule, secs) in cases {
            assert_eq!(
                period(schedule, now).expect(schedule),
                std::time::Duration::from_secs(secs),
                "{schedule}"
            );
        }
        // Monthly: from the next run to the one after (January 1 to February 1).
        let monthly = period("0 0 1 * *", at("2026-12-15T00:00:00Z")).expect("monthly");
        assert_eq!(monthly, std::time::Duration::from_secs(31 * 86_400));
    }

    #[test]
    fn a_bad_schedule_says_what_is_wrong() {
        let e = period("61 * * * *", at("2026-12-03T10:17:00Z")).unwrap_err();
        assert!(e.starts_with("backup.schedule \"61 * * * *\": "), "{e}");
    }
}
