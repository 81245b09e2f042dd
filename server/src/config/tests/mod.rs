//! Texts marked "etcd 3.4.23" were checked by running that etcd with the same
//! arguments; Ballast's message is the same text (plus a hint for unknown flags).

mod env_file;
mod syntax;
mod table;
mod validation;

pub(super) use std::collections::HashSet;
pub(super) use std::path::PathBuf;
pub(super) use std::time::Duration;

pub(super) use super::flags::{self, Group, Kind, FLAGS};
pub(super) use super::*;
pub(super) use super::{build, cmdline, entry, file, values};

pub(super) fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn parse_with(
    args: &[&str],
    vars: &[(&str, &str)],
) -> Result<(Config, Vec<String>), ConfigError> {
    match parse(args.iter().copied(), &env(vars))? {
        (Outcome::Run(cfg), warnings) => Ok((*cfg, warnings)),
        (Outcome::PrintAndExit(text), _) => panic!("unexpected print-and-exit:\n{text}"),
    }
}

pub(super) fn config(args: &[&str]) -> Config {
    match parse_with(args, &[]) {
        Ok((cfg, _)) => cfg,
        Err(e) => panic!("{args:?} should parse: {e}"),
    }
}

pub(super) fn warnings(args: &[&str], vars: &[(&str, &str)]) -> Vec<String> {
    match parse_with(args, vars) {
        Ok((_, w)) => w,
        Err(e) => panic!("{args:?} should parse: {e}"),
    }
}

pub(super) fn error(args: &[&str]) -> String {
    error_env(args, &[])
}

pub(super) fn error_env(args: &[&str], vars: &[(&str, &str)]) -> String {
    match parse_with(args, vars) {
        Ok(_) => panic!("{args:?} {vars:?} should fail"),
        Err(e) => e.to_string(),
    }
}

pub(super) fn url(s: &str) -> url::Url {
    url::Url::parse(s).expect("test URL")
}

pub(super) fn write_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("etcd.yml");
    std::fs::write(&path, text).expect("write config file");
    path.display().to_string()
}
