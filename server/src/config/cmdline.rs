//! The command line, read the way Go's `flag` package reads it (etcd uses it):
//! `-flag`, `--flag`, `-flag=value`, `--flag value`; a bool flag takes a value
//! only after `=`; a flag may repeat and the last one wins; parsing stops at the
//! first non-flag argument or after `--`, and etcd refuses anything left over.

use std::ffi::OsString;

use super::entry::{parse_entry, Entry, Source};
use super::error::ConfigError;
use super::flags::{self, FlagDef};

/// What the command line asked for.
#[derive(Debug, Default)]
pub(crate) struct CommandLine {
    /// Flags in the order given; a later one for the same flag wins.
    pub entries: Vec<(&'static FlagDef, Entry)>,
    /// `-h`, `-help` or `--help` was given.
    pub help: bool,
}

/// etcd's subcommands, which Ballast does not have.
const SUBCOMMANDS: [&str; 2] = ["gateway", "grpc-proxy"];

pub(crate) fn parse(args: Vec<OsString>) -> Result<CommandLine, ConfigError> {
    let args = args
        .into_iter()
        .map(|a| {
            a.into_string().map_err(|a| {
                ConfigError::Usage(format!(
                    "argument is not valid UTF-8: {}",
                    a.to_string_lossy()
                ))
            })
        })
        .collect::<Result<Vec<String>, _>>()?;

    if let Some(sub) = args.first().filter(|a| SUBCOMMANDS.contains(&a.as_str())) {
        return Err(ConfigError::Unsupported {
            setting: format!("'etcd {sub}'"),
            reason: "Ballast is only the etcd server; run etcd's own gateway or gRPC proxy".into(),
        });
    }

    let mut out = CommandLine::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.as_slice().first() {
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        rest.next();
        if arg == "--" {
            break;
        }
        let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(ConfigError::Usage(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let Some(def) = flags::lookup(name) else {
            if name == "help" || name == "h" {
                out.help = true;
                return Ok(out);
            }
            return Err(ConfigError::Usage(format!(
                "flag provided but not defined: -{name} (run 'ballast --help' for the list)"
            )));
        };
        let value = match (inline, def.kind.is_bool()) {
            (Some(value), _) => value,
            (None, true) => "true",
            (None, false) => match rest.next() {
                Some(next) => next.as_str(),
                None => {
                    return Err(ConfigError::Usage(format!(
                        "flag needs an argument: -{name}"
                    )))
                }
            },
        };
        out.entries
            .push((def, parse_entry(def, value, Source::Flag)?));
    }

    if let Some(extra) = rest.next() {
        return Err(ConfigError::Usage(format!("'{extra}' is not a valid flag")));
    }
    Ok(out)
}
