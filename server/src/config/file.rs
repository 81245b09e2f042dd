//! etcd's YAML `--config-file`. Keys are flag names; TLS settings sit in the
//! `client-transport-security` and `peer-transport-security` sections; URL
//! lists are comma-separated strings, `log-outputs` and `cipher-suites` are
//! YAML lists, and durations are integers of nanoseconds (Go's
//! `time.Duration` in JSON). Ballast also takes a Go duration string
//! (`"10m"`) and a YAML list of URLs.
//!
//! As in etcd, a key set to nothing (`wal-dir:`) keeps its default, and so
//! does an empty URL string. Unknown keys, which etcd skips silently, are
//! reported as warnings.

use std::time::Duration;

use serde_yaml_ng::Value as Yaml;

use super::entry::{parse_entry, Entry, Source, Values};
use super::error::ConfigError;
use super::flags::{FileKey, FlagDef, Kind, FLAGS};
use super::values::Value;

/// Reads and parses the file at `path`.
pub(crate) fn load(path: &str, warnings: &mut Vec<String>) -> Result<Values, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ConfigFile {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    from_yaml(&text, path, warnings)
}

/// Parses config-file text; `path` is only used in messages.
pub(crate) fn from_yaml(
    text: &str,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<Values, ConfigError> {
    let file_err = |reason: String| ConfigError::ConfigFile {
        path: path.to_string(),
        reason,
    };
    let doc: Yaml = serde_yaml_ng::from_str(text).map_err(|e| file_err(e.to_string()))?;
    let top = match doc {
        Yaml::Null => return Ok(Values::new()),
        Yaml::Mapping(m) => m,
        _ => return Err(file_err("expected a map of flag names to values".into())),
    };

    let mut values = Values::new();
    for (key, value) in &top {
        let key = key_text(key, path)?;
        if let (true, Yaml::Mapping(section)) = (is_section(&key), value) {
            for (inner, value) in section {
                let inner = key_text(inner, path)?;
                let def = FLAGS
                    .iter()
                    .find(|d| matches!(d.file, FileKey::In(s, k) if s == key && k == inner));
                set(
                    &mut values,
                    def,
                    &format!("{key}.{inner}"),
                    value,
                    path,
                    warnings,
                )?;
            }
            continue;
        }
        let def = FLAGS
            .iter()
            .find(|d| d.file == FileKey::Same && d.name == key);
        set(&mut values, def, &key, value, path, warnings)?;
    }
    Ok(values)
}

fn key_text(key: &Yaml, path: &str) -> Result<String, ConfigError> {
    match key {
        Yaml::String(s) => Ok(s.clone()),
        other => Err(ConfigError::ConfigFile {
            path: path.to_string(),
            reason: format!(
                "keys must be strings, found {}",
                scalar_text(other).unwrap_or_default()
            ),
        }),
    }
}

fn is_section(key: &str) -> bool {
    FLAGS
        .iter()
        .any(|d| matches!(d.file, FileKey::In(section, _) if section == key))
}

fn set(
    values: &mut Values,
    def: Option<&'static FlagDef>,
    key: &str,
    yaml: &Yaml,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let Some(def) = def else {
        warnings.push(format!(
            "config file {path}: unrecognized key {key} (ignored)"
        ));
        return Ok(());
    };
    if let Some(entry) = entry(def, key, yaml)? {
        values.insert(def.name, entry);
    }
    Ok(())
}

/// Converts one YAML value; `None` keeps the default.
fn entry(def: &FlagDef, key: &str, yaml: &Yaml) -> Result<Option<Entry>, ConfigError> {
    let source = Source::File(key.to_string());
    let direct = |value: Value, raw: String| Entry {
        value,
        raw,
        source: source.clone(),
    };
    let bad = |raw: &str, reason: &str| super::entry::invalid_value(def, raw, &source, reason);
    let text = match (yaml, def.kind) {
        (Yaml::Null, _) => return Ok(None),
        (Yaml::String(s), Kind::Urls(_)) if s.is_empty() => return Ok(None),
        (Yaml::Number(n), Kind::Duration) => {
            let raw = n.to_string();
            return match n.as_u64() {
                Some(ns) => Ok(Some(direct(Value::Duration(Duration::from_nanos(ns)), raw))),
                None => Err(bad(
                    &raw,
                    "expected nanoseconds or a duration such as \"10s\"",
                )),
            };
        }
        (Yaml::Sequence(items), Kind::List | Kind::Urls(_)) => {
            let items = items
                .iter()
                .map(|item| {
                    scalar_text(item).ok_or_else(|| bad("[...]", "expected a list of strings"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if def.kind == Kind::List {
                let raw = items.join(",");
                return Ok(Some(direct(Value::List(items), raw)));
            }
            items.join(",")
        }
        (value, _) => match scalar_text(value) {
            Some(text) => text,
            None => return Err(bad("...", "expected a single value")),
        },
    };
    parse_entry(def, &text, source.clone()).map(Some)
}

fn scalar_text(yaml: &Yaml) -> Option<String> {
    match yaml {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
