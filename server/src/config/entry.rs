//! A flag value together with where it came from, so every error and warning
//! can name the exact flag, variable or config-file key the user wrote.

use std::collections::HashMap;

use super::error::ConfigError;
use super::flags::{FlagDef, Kind};
use super::values::{self, Value, PARSE_ERROR};

/// Where a value was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Flag,
    Env,
    /// The config-file key, `section.key` for nested TLS keys.
    File(String),
}

impl Source {
    /// How the user wrote the setting: `--name`, `ETCD_NAME`, `name in the config file`.
    pub(crate) fn label(&self, def: &FlagDef) -> String {
        match self {
            Source::Flag => format!("--{}", def.name),
            Source::Env => def.env_name(),
            Source::File(key) => format!("{key} in the config file"),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub value: Value,
    /// The text as given, for messages.
    pub raw: String,
    pub source: Source,
}

/// Values explicitly set, by flag name. Flags not in the map have their default.
pub(crate) type Values = HashMap<&'static str, Entry>;

/// Parses `raw` as `def`'s kind; the error names the flag, variable or key.
pub(crate) fn parse_entry(def: &FlagDef, raw: &str, source: Source) -> Result<Entry, ConfigError> {
    match parse_value(def, raw) {
        Ok(value) => Ok(Entry {
            value,
            raw: raw.to_string(),
            source,
        }),
        Err(reason) => Err(invalid_value(def, raw, &source, &reason)),
    }
}

/// A flag's default as a value. A default that does not parse is a table bug.
pub(crate) fn default_value(def: &FlagDef) -> Result<Value, ConfigError> {
    parse_value(def, def.default)
        .map_err(|e| ConfigError::Internal(format!("default of --{}: {e}", def.name)))
}

/// etcd's texts: Go's `flag` package for flags, etcd's `SetFlagsFromEnv` for variables.
pub(crate) fn invalid_value(
    def: &FlagDef,
    raw: &str,
    source: &Source,
    reason: &str,
) -> ConfigError {
    let name = def.name;
    ConfigError::InvalidValue(match source {
        Source::Flag if def.kind.is_bool() => {
            format!("invalid boolean value {raw:?} for -{name}: {reason}")
        }
        Source::Flag => format!("invalid value {raw:?} for flag -{name}: {reason}"),
        Source::Env => format!("invalid value {raw:?} for {}: {reason}", def.env_name()),
        Source::File(key) => {
            format!("invalid value {raw:?} for {key} in the config file: {reason}")
        }
    })
}

fn parse_value(def: &FlagDef, raw: &str) -> Result<Value, String> {
    Ok(match def.kind {
        Kind::Str | Kind::Legacy => Value::Str(raw.to_string()),
        Kind::Bool => Value::Bool(values::parse_bool(raw)?),
        Kind::Uint => Value::Uint(values::parse_uint(raw)?),
        Kind::Int => Value::Int(values::parse_int(raw)?),
        // Go's flag package reports every duration mistake as "parse error".
        Kind::Duration => {
            Value::Duration(values::parse_duration(raw).map_err(|_| PARSE_ERROR.to_string())?)
        }
        Kind::Urls(role) => Value::Urls(values::parse_urls(raw, role)?),
        Kind::List => Value::List(values::parse_list(raw)),
        Kind::Choice(valid) if valid.contains(&raw) => Value::Str(raw.to_string()),
        // etcd's SelectiveStringValue says only this.
        Kind::Choice(_) => return Err("invalid value".into()),
        Kind::Cluster => Value::Cluster(values::parse_cluster(raw)?),
        Kind::Version => Value::Str(check_version(raw)?),
    })
}

/// `--emulated-etcd-version` must look like an etcd release: `3.5.17`.
fn check_version(raw: &str) -> Result<String, String> {
    let parts: Vec<&str> = raw.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() == 3 && parts.iter().all(numeric) {
        Ok(raw.to_string())
    } else {
        Err("must be an etcd version MAJOR.MINOR.PATCH, e.g. 3.5.17".into())
    }
}
