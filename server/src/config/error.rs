//! Configuration errors. `Display` is the message the user sees; where etcd
//! has a message for the same mistake, the text is etcd's.

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Command-line syntax, with Go `flag` texts: `flag provided but not
    /// defined: -foo`, `flag needs an argument: -name`, `bad flag syntax: ---x`.
    #[error("{0}")]
    Usage(String),
    /// A value that does not parse, naming where it came from:
    /// `invalid value "abc" for flag -heartbeat-interval: parse error`.
    #[error("{0}")]
    InvalidValue(String),
    /// Values that parse but do not fit together, e.g. `--election-timeout[400ms]
    /// should be at least as 5 times as --heartbeat-interval[100ms]`.
    #[error("{0}")]
    Invalid(String),
    /// An etcd feature Ballast does not implement, asked for explicitly.
    #[error("{setting} is not supported by Ballast: {reason}")]
    Unsupported { setting: String, reason: String },
    /// The `--config-file` could not be read or is not valid YAML.
    #[error("cannot load config file {path}: {reason}")]
    ConfigFile { path: String, reason: String },
    /// A bug in the flag table (a default that does not parse).
    #[error("internal configuration error: {0}")]
    Internal(String),
}

impl ConfigError {
    /// The exit status etcd uses: 2 for command-line syntax and bad values
    /// (Go's `flag` package), 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Usage(_) | ConfigError::InvalidValue(_) => 2,
            _ => 1,
        }
    }
}
