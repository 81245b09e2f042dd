//! prometheus-client writes OpenMetrics text; etcd serves Prometheus's
//! classic text format (`text/plain; version=0.0.4`). The two differ where
//! it matters for a drop-in:
//!
//! - An OpenMetrics counter family `foo` has samples `foo_total`, while the
//!   classic format names the family like its samples: `# TYPE foo_total
//!   counter`. Served as is, a classic parser (Prometheus with a 0.0.4
//!   content type, `promtool check metrics`, Go's `expfmt`) would see
//!   `foo_total` untyped and `foo` as an empty counter.
//! - `# EOF`, `# UNIT` and `_created` samples do not exist in 0.0.4.
//!
//! So the output is rewritten family by family. Histogram and gauge lines
//! are identical in both formats and pass through.

/// Converts prometheus-client's OpenMetrics text (without `# EOF` or with)
/// to the classic format. `unsuffixed` lists counter families that etcd
/// exposes without `_total` (e.g. `etcd_server_health_success`).
pub fn to_prometheus_text(openmetrics: &str, unsuffixed: &[&str]) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The HELP line comes before the TYPE line that decides its name.
    let mut help: Option<(&str, &str)> = None;
    // The current counter family: (OpenMetrics name, keeps `_total`).
    let mut counter: Option<(&str, bool)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ').or(Some((rest, "")));
            counter = None;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let suffixed = kind == "counter" && !unsuffixed.contains(&name);
            counter = (kind == "counter").then_some((name, suffixed));
            let shown = if suffixed {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {shown} {text}\n"));
            }
            out.push_str(&format!("# TYPE {shown} {kind}\n"));
        } else if line.starts_with('#') {
            // `# UNIT`, `# EOF`: not part of the classic format.
        } else {
            match counter {
                Some((name, _)) if sample_of(line, name, "_created") => {}
                Some((name, false)) if sample_of(line, name, "_total") => {
                    out.push_str(name);
                    out.push_str(&line[name.len() + "_total".len()..]);
                    out.push('\n');
                }
                _ => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// Whether `line` is a sample of `family` + `suffix` (not of a longer name).
fn sample_of(line: &str, family: &str, suffix: &str) -> bool {
    line.strip_prefix(family)
        .and_then(|r| r.strip_prefix(suffix))
        .is_some_and(|r| r.starts_with(['{', ' ']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_like_their_samples() {
        let om = "# HELP etcd_mvcc_put Total number of puts.\n\
                  # TYPE etcd_mvcc_put counter\n\
                  etcd_mvcc_put_total 3\n\
                  etcd_mvcc_put_created 1.5\n\
                  # EOF\n";
        assert_eq!(
            to_prometheus_text(om, &[]),
            "# HELP etcd_mvcc_put_total Total number of puts.\n\
             # TYPE etcd_mvcc_put_total counter\n\
             etcd_mvcc_put_total 3\n"
        );
    }

    #[test]
    fn unsuffixed_counters_lose_total() {
        let om = "# HELP h Checks.\n# TYPE h counter\nh_total 2\n";
        assert_eq!(
            to_prometheus_text(om, &["h"]),
            "# HELP h Checks.\n# TYPE h counter\nh 2\n"
        );
    }

    #[test]
    fn gauges_and_histograms_pass_through() {
        let om = "# HELP g_total A gauge named like a counter.\n\
                  # TYPE g_total gauge\n\
                  g_total 7\n\
                  # HELP d Latency.\n\
                  # TYPE d histogram\n\
                  # UNIT d seconds\n\
                  d_sum{To=\"a\"} 0.5\n\
                  d_count{To=\"a\"} 1\n\
                  d_bucket{To=\"a\",le=\"+Inf\"} 1\n";
        assert_eq!(
            to_prometheus_text(om, &[]),
            "# HELP g_total A gauge named like a counter.\n\
             # TYPE g_total gauge\n\
             g_total 7\n\
             # HELP d Latency.\n\
             # TYPE d histogram\n\
             d_sum{To=\"a\"} 0.5\n\
             d_count{To=\"a\"} 1\n\
             d_bucket{To=\"a\",le=\"+Inf\"} 1\n"
        );
    }

    #[test]
    fn labelled_counter_samples_keep_their_labels() {
        let om = "# HELP c C.\n# TYPE c counter\nc_total{grpc_code=\"OK\"} 1\n";
        assert_eq!(
            to_prometheus_text(om, &[]),
            "# HELP c_total C.\n# TYPE c_total counter\nc_total{grpc_code=\"OK\"} 1\n"
        );
    }
}
