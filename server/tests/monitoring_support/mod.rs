//! What the monitoring tests need beside a cluster: the chart's monitoring
//! files, Debian's `promtool` and `prometheus` binaries, a Prometheus process
//! of the test's own, and just enough PromQL reading to know which metrics and
//! labels an expression depends on.
//!
//! PromQL is read here, not by Prometheus, because Prometheus 2.42 has no API
//! that parses a query without running it, and a query that selects a missing
//! metric just returns nothing: to say *which* metric or label is missing, the
//! test has to know what each expression selects.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::metrics_support::get;

/// `charts/ballast/files`, where the chart embeds its monitoring files from.
pub fn chart_files() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/ballast/files")
}

/// A chart file's text.
pub fn read_chart_file(name: &str) -> String {
    let path = chart_files().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A binary of Debian's `prometheus` package. Missing is a failure, not a
/// skip: these tests are the only check that the chart's monitoring works.
pub fn prometheus_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found on PATH: run scripts/test.sh, which installs Debian's \
                 `prometheus` package (it ships `prometheus` and `promtool`)"
            )
        })
}

/// Runs promtool with `args`, returning its output whatever its status.
pub fn promtool(args: &[&str]) -> Output {
    Command::new(prometheus_tool("promtool"))
        .args(args)
        .output()
        .expect("run promtool")
}

/// The alerting rules of a Prometheus rules file, as (name, rule).
pub fn alert_rules(rules: &serde_yaml_ng::Value) -> Vec<(String, serde_yaml_ng::Value)> {
    rules["groups"]
        .as_sequence()
        .expect("a rules file has `groups`")
        .iter()
        .flat_map(|g| {
            g["rules"]
                .as_sequence()
                .expect("a group has `rules`")
                .iter()
        })
        .map(|r| {
            let name = r["alert"].as_str().expect("every rule is an alert");
            (name.to_string(), r.clone())
        })
        .collect()
}

/// How long Prometheus may take to start, and a query or alert to come true.
pub const PROMETHEUS_DEADLINE: Duration = Duration::from_secs(60);

/// A Prometheus server started by a test, with its own config, data dir and
/// port, stopped when dropped.
pub struct Prometheus {
    pub port: u16,
    child: Child,
    log: PathBuf,
}

impl Prometheus {
    /// Writes `config` (and `files`, next to it, for `rule_files`) into `dir`
    /// and starts Prometheus on `port`, returning once it is ready.
    pub fn start(dir: &Path, port: u16, config: &str, files: &[(&str, &str)]) -> Prometheus {
        std::fs::create_dir_all(dir).expect("create the Prometheus dir");
        std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write a rules file");
        }
        let log = dir.join("prometheus.log");
        let stderr = File::create(&log).expect("create the Prometheus log");
        let child = Command::new(prometheus_tool("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Relative defaults (consoles, a second data dir) land here, not in the repository.
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn prometheus");
        let mut p = Prometheus { port, child, log };
        p.await_ok("Prometheus to be ready", |p| {
            match get(p.port, "/-/ready") {
                Ok(r) if r.status == 200 => Ok(()),
                Ok(r) => Err(format!("/-/ready answers {}: {}", r.status, r.body)),
                Err(e) => Err(format!("/-/ready: {e}")),
            }
        });
        p
    }

    /// The end of Prometheus's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Polls `check` until it returns Ok, failing with its last complaint
    /// (and Prometheus's log) after [`PROMETHEUS_DEADLINE`]. Also fails at once
    /// if Prometheus exits.
    pub fn await_ok(&mut self, what: &str, mut check: impl FnMut(&Self) -> Result<(), String>) {
        let deadline = Instant::now() + PROMETHEUS_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "prometheus exited ({status}) while waiting for {what}:\n{}",
                    self.log_tail()
                );
            }
            let last = match check(self) {
                Ok(()) => return,
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "timed out after {PROMETHEUS_DEADLINE:?} waiting for {what}: {last}\n\
                 prometheus log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// GETs an API path and returns its `data`, or the error Prometheus gave.
    fn api(&self, path: &str) -> Result<Value, String> {
        let r = get(self.port, path).map_err(|e| format!("GET {path}: {e}"))?;
        let body: Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("GET {path}: {e} in {:?}", r.body))?;
        if body["status"] != "success" {
            return Err(format!("GET {path}: {} {}", r.status, r.body));
        }
        Ok(body["data"].clone())
    }

    /// The result vector of an instant query (each element has `metric`
    /// and `value`). A query Prometheus refuses is an error.
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let q: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
        let data = self.api(&format!("/api/v1/query?query={q}"))?;
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"].as_array().cloned().unwrap_or_default()),
            other => Err(format!("{promql}: result type {other:?}, not a vector")),
        }
    }

    /// Alerts that are pending or firing, from `/api/v1/alerts`.
    pub fn alerts(&self) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/alerts")?;
        Ok(data["alerts"].as_array().cloned().unwrap_or_default())
    }

    /// A value of Prometheus's own `/metrics` (its self-monitoring): the
    /// first series of family `name` whose labels contain `labels_contain`.
    pub fn own_metric(&self, name: &str, labels_contain: &str) -> Option<f64> {
        let r = get(self.port, "/metrics").ok()?;
        r.body.lines().find_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let labels = series.strip_prefix(name)?.strip_prefix('{')?;
            labels
                .contains(labels_contain)
                .then(|| value.parse().ok())?
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one element of a query result, as a number.
pub fn sample_value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// One label of one element of a query result.
pub fn sample_label<'a>(sample: &'a Value, label: &str) -> Option<&'a str> {
    sample["metric"][label].as_str()
}

// ---------------------------------------------------------------------------
// Reading PromQL
// ---------------------------------------------------------------------------

/// A label matcher: label, operator (`=`, `!=`, `=~`, `!~`), value.
pub type Matcher = (String, String, String);

/// A series selector: a metric name and its label matchers.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub metric: String,
    pub matchers: Vec<Matcher>,
}

/// The parts of an expression the tests check against real series: what it
/// selects, and the labels it groups or matches by (`by`, `without`, `on`,
/// `ignoring`, `group_left`, `group_right`).
#[derive(Debug, Default, PartialEq)]
pub struct Query {
    pub selectors: Vec<Selector>,
    pub grouping: Vec<String>,
}

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];

/// Reads the selectors and grouping labels of a PromQL expression. Names
/// followed by `(` are functions, aggregations and operators are known by
/// name, and strings, durations and numbers are skipped; every other name is
/// a metric. A selector without a metric name (`{__name__=...}`) is refused,
/// since the tests could not say which metric it needs.
pub fn parse_promql(expr: &str) -> Query {
    let b: Vec<char> = expr.chars().collect();
    let mut out = Query::default();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '"' || c == '\'' || c == '`' {
            i = read_string(&b, i, expr).1;
        } else if c == '[' {
            i = closing(&b, i, ']', expr) + 1;
        } else if c == '{' {
            panic!("a selector without a metric name in {expr:?}");
        } else if c.is_ascii_digit() || c == '.' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_' || b[i] == ':') {
                i += 1;
            }
            let word: String = b[start..i].iter().collect();
            let next = skip_spaces(&b, i);
            let next_char = b.get(next).copied();
            if GROUPING.contains(&word.as_str()) {
                if next_char == Some('(') {
                    let end = closing(&b, next, ')', expr);
                    let list: String = b[next + 1..end].iter().collect();
                    out.grouping.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(String::from),
                    );
                    i = end + 1;
                }
            } else if KEYWORDS.contains(&word.as_str())
                || AGGREGATIONS.contains(&word.as_str())
                || next_char == Some('(')
            {
                // An operator, an aggregation or a function call.
            } else {
                let mut selector = Selector {
                    metric: word,
                    matchers: Vec::new(),
                };
                if next_char == Some('{') {
                    let (matchers, end) = read_matchers(&b, next, expr);
                    selector.matchers = matchers;
                    i = end + 1;
                }
                out.selectors.push(selector);
            }
        } else {
            i += 1;
        }
    }
    out
}

fn skip_spaces(b: &[char], mut i: usize) -> usize {
    while i < b.len() && b[i].is_whitespace() {
        i += 1;
    }
    i
}

/// Index of the first `close` after `open_at`.
fn closing(b: &[char], open_at: usize, close: char, expr: &str) -> usize {
    b[open_at..]
        .iter()
        .position(|&c| c == close)
        .map(|p| open_at + p)
        .unwrap_or_else(|| panic!("no `{close}` after position {open_at} in {expr:?}"))
}

/// A quoted string starting at `at`: its value and the index after it.
fn read_string(b: &[char], at: usize, expr: &str) -> (String, usize) {
    let quote = b[at];
    let mut value = String::new();
    let mut i = at + 1;
    while i < b.len() {
        match b[i] {
            c if c == quote => return (value, i + 1),
            '\\' if quote != '`' && i + 1 < b.len() => {
                value.push(b[i + 1]);
                i += 2;
            }
            c => {
                value.push(c);
                i += 1;
            }
        }
    }
    panic!("unterminated string in {expr:?}")
}

/// The matchers of `{...}` opening at `at`, and the index of its `}`.
fn read_matchers(b: &[char], at: usize, expr: &str) -> (Vec<Matcher>, usize) {
    let mut out = Vec::new();
    let mut i = at + 1;
    loop {
        while i < b.len() && (b[i].is_whitespace() || b[i] == ',') {
            i += 1;
        }
        match b.get(i) {
            Some('}') => return (out, i),
            None => panic!("unclosed `{{` in {expr:?}"),
            _ => {}
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_') {
            i += 1;
        }
        let label: String = b[start..i].iter().collect();
        i = skip_spaces(b, i);
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| b[i..].iter().take(op.len()).copied().eq(op.chars()))
            .unwrap_or_else(|| panic!("no matcher operator after `{label}` in {expr:?}"));
        i = skip_spaces(b, i + op.len());
        assert!(
            matches!(b.get(i), Some('"' | '\'' | '`')),
            "no quoted value after `{label}{op}` in {expr:?}"
        );
        let (value, after) = read_string(b, i, expr);
        out.push((label, op.to_string(), value));
        i = after;
    }
}
