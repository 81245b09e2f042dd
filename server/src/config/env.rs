//! `ETCD_*` environment variables, applied the way etcd 3.5's
//! `flags.SetFlagsFromEnv` applies them: a flag given on the command line
//! shadows its variable (etcd 3.4 made that fatal; 3.5 only warns), empty
//! variables are skipped, and unknown `ETCD_*` variables are reported.

use super::entry::{parse_entry, Source, Values};
use super::error::ConfigError;
use super::flags::{self, Support};

/// Read by etcd itself outside the flag set, so not "unrecognized".
const KNOWN_NON_FLAG: [&str; 1] = ["ETCD_UNSUPPORTED_ARCH"];

/// Adds variables to `values` (which holds only command-line flags so far).
pub(crate) fn apply(
    values: &mut Values,
    env: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    // etcd visits flags in name order; sorting keeps errors and warnings stable.
    let mut vars: Vec<&(String, String)> =
        env.iter().filter(|(k, _)| k.starts_with("ETCD_")).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));

    for (key, value) in vars {
        if KNOWN_NON_FLAG.contains(&key.as_str()) {
            continue;
        }
        let Some(def) = flags::lookup_env(key) else {
            warnings.push(format!("unrecognized environment variable {key}={value}"));
            continue;
        };
        match def.support {
            // etcd never lets the environment turn on --version.
            Support::Special if def.name == "version" => {
                warnings.push(format!(
                    "cannot set special environment variable {key}={value}; ignoring it"
                ));
                continue;
            }
            // Read before anything else, in `super::parse`.
            Support::Special => continue,
            _ => {}
        }
        if values.contains_key(def.name) {
            warnings.push(format!(
                "recognized environment variable {key}, but unused: shadowed by corresponding flag"
            ));
            continue;
        }
        if value.is_empty() {
            continue;
        }
        values.insert(def.name, parse_entry(def, value, Source::Env)?);
    }
    Ok(())
}
