//! Typed reads of the configuration: the value that was set, or the flag's
//! default. A type mismatch means the flag table and the builder disagree,
//! which is a bug, reported as `ConfigError::Internal` rather than a panic.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::entry::{self, Values};
use super::error::ConfigError;
use super::flags;
use super::values::{self, Value};

/// Typed reads of set-or-default values. A type mismatch is a table bug.
pub(crate) struct Get<'a>(pub(crate) &'a Values);

impl Get<'_> {
    fn def(&self, name: &str) -> Result<&'static flags::FlagDef, ConfigError> {
        flags::lookup(name).ok_or_else(|| ConfigError::Internal(format!("no flag --{name}")))
    }

    fn value(&self, name: &str) -> Result<Value, ConfigError> {
        match self.0.get(name) {
            Some(e) => Ok(e.value.clone()),
            None => entry::default_value(self.def(name)?),
        }
    }

    pub(crate) fn is_set(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub(crate) fn is_default(&self, name: &str) -> Result<bool, ConfigError> {
        Ok(self.value(name)? == entry::default_value(self.def(name)?)?)
    }

    /// A source-aware "invalid value" error for a value that parsed but is wrong.
    pub(crate) fn invalid(&self, name: &str, reason: &str) -> ConfigError {
        let Ok(def) = self.def(name) else {
            return ConfigError::Internal(format!("no flag --{name}"));
        };
        match self.0.get(name) {
            Some(e) => entry::invalid_value(def, &e.raw, &e.source, reason),
            None => ConfigError::Internal(format!("default of --{name}: {reason}")),
        }
    }

    fn mismatch(name: &str, want: &str) -> ConfigError {
        ConfigError::Internal(format!("--{name} is not a {want} flag"))
    }

    pub(crate) fn str(&self, name: &str) -> Result<String, ConfigError> {
        match self.value(name)? {
            Value::Str(s) => Ok(s),
            _ => Err(Self::mismatch(name, "string")),
        }
    }

    pub(crate) fn opt_str(&self, name: &str) -> Result<Option<String>, ConfigError> {
        Ok(Some(self.str(name)?).filter(|s| !s.is_empty()))
    }

    pub(crate) fn opt_path(&self, name: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.opt_str(name)?.map(PathBuf::from))
    }

    pub(crate) fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        match self.value(name)? {
            Value::Bool(b) => Ok(b),
            _ => Err(Self::mismatch(name, "bool")),
        }
    }

    pub(crate) fn uint(&self, name: &str) -> Result<u64, ConfigError> {
        match self.value(name)? {
            Value::Uint(n) => Ok(n),
            _ => Err(Self::mismatch(name, "uint")),
        }
    }

    /// A Go `uint` flag stored in 32 bits here; larger values are out of range.
    pub(crate) fn u32(&self, name: &str) -> Result<u32, ConfigError> {
        u32::try_from(self.uint(name)?).map_err(|_| self.invalid(name, values::RANGE_ERROR))
    }

    pub(crate) fn int(&self, name: &str) -> Result<i64, ConfigError> {
        match self.value(name)? {
            Value::Int(n) => Ok(n),
            _ => Err(Self::mismatch(name, "int")),
        }
    }

    pub(crate) fn duration(&self, name: &str) -> Result<Duration, ConfigError> {
        match self.value(name)? {
            Value::Duration(d) => Ok(d),
            _ => Err(Self::mismatch(name, "duration")),
        }
    }

    pub(crate) fn urls(&self, name: &str) -> Result<Vec<Url>, ConfigError> {
        match self.value(name)? {
            Value::Urls(u) => Ok(u),
            _ => Err(Self::mismatch(name, "URL list")),
        }
    }

    pub(crate) fn list(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        match self.value(name)? {
            Value::List(l) => Ok(l),
            _ => Err(Self::mismatch(name, "list")),
        }
    }

    pub(crate) fn cluster(&self, name: &str) -> Result<Vec<(String, Url)>, ConfigError> {
        match self.value(name)? {
            Value::Cluster(c) => Ok(c),
            _ => Err(Self::mismatch(name, "cluster")),
        }
    }
}
