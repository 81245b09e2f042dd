//! `--help` and `--version` texts, generated from the flag table so the help
//! can never list a flag that does not exist or miss one that does.

use std::fmt::Write as _;

use super::flags::{Group, Support, FLAGS};

/// The etcd version Ballast emulates unless `--emulated-etcd-version` says otherwise.
pub const DEFAULT_EMULATED_ETCD_VERSION: &str = "3.5.17";

pub(crate) fn version_text(emulated: &str) -> String {
    let git = option_env!("BALLAST_GIT_SHA").unwrap_or("Not provided");
    // Set by the release build; a plain `cargo build` does not know them.
    let rustc = option_env!("BALLAST_RUSTC_VERSION").unwrap_or("unknown");
    format!(
        "ballast Version: {}\netcd Version (emulated): {emulated}\nGit SHA: {git}\nRust Version: {rustc}\nOS/Arch: {}/{}\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

const USAGE_HEAD: &str = "\
Usage:

  ballast [flags]
    Start a Ballast server: an etcd v3 compatible key-value store.

  ballast --version
    Show the version of Ballast and of the etcd it emulates.

  ballast -h | --help
    Show the help information about Ballast.

  ballast --config-file
    Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.

Every flag can also be set by an environment variable: ETCD_ and the flag
name in upper case, dashes turned into underscores (--initial-cluster-token
is ETCD_INITIAL_CLUSTER_TOKEN). A flag on the command line wins over its variable.
";

pub(crate) fn usage() -> String {
    let mut out = String::from(USAGE_HEAD);
    for group in Group::ORDER {
        let _ = write!(out, "\n{}:\n", group.title());
        for def in FLAGS.iter().filter(|d| d.group == group) {
            let shown = def.shown.unwrap_or(def.default);
            let _ = writeln!(out, "  --{} '{shown}'\n    {}", def.name, def.help);
            match def.support {
                Support::Ignored => {
                    let _ = writeln!(out, "    [Ballast: accepted and ignored]");
                }
                Support::Refused(why) => {
                    let _ = writeln!(out, "    [Ballast: other values are refused: {why}]");
                }
                Support::Deprecated(note) => {
                    let _ = writeln!(out, "    [{note}]");
                }
                Support::Used | Support::Obsolete | Support::Special => {}
            }
        }
        if group == Group::Unsafe {
            out.push_str("\nCAUTIOUS with unsafe flag! It may break the guarantees given by the consensus protocol!\n");
        }
    }
    out
}
