//! `ballast member --membership-file=PATH [etcd flags]`: the server as an operator-managed
//! pod runs it. The pod template carries every flag except the two that depend on the
//! cluster's membership at the moment the member first starts; the sidecar decides those
//! ([`super::bootstrap`]) and writes them to the file before it lets the server start, and
//! they are added here to the flags. etcd has no flag that takes part of its configuration
//! from a file (`--config-file` replaces every flag), hence this small step of our own.

use std::ffi::OsString;
use std::path::Path;

use crate::error::Error;

/// The flag naming the file the sidecar wrote.
pub const FLAG: &str = "--membership-file";

/// The keys of the sidecar's file that become flags.
const KEYS: [&str; 2] = ["initial-cluster", "initial-cluster-state"];

/// `args` (after the `member` word) with the membership flags from the file added; the
/// file's flag itself is removed. A membership flag given on the command line as well is an
/// error: which one wins would be a guess.
pub fn server_args(args: Vec<OsString>) -> Result<Vec<OsString>, Error> {
    let mut path = None;
    let mut rest = Vec::new();
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy().into_owned();
        if let Some(value) = text.strip_prefix(&format!("{FLAG}=")) {
            path = Some(value.to_string());
        } else if text == FLAG {
            path = iter.next().map(|v| v.to_string_lossy().into_owned());
        } else {
            if KEYS
                .iter()
                .any(|k| text.trim_start_matches('-').split('=').next() == Some(k))
            {
                return Err(Error::Other(format!(
                    "{text}: `ballast member` takes the membership from {FLAG}, not from flags"
                )));
            }
            rest.push(arg);
        }
    }
    let path = path.ok_or_else(|| {
        Error::Other(format!(
            "`ballast member` needs {FLAG}=PATH, the file the sidecar writes"
        ))
    })?;
    for (key, value) in read(Path::new(&path))? {
        rest.push(format!("--{key}={value}").into());
    }
    Ok(rest)
}

fn read(path: &Path) -> Result<Vec<(&'static str, String)>, Error> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    let doc: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&text)
        .map_err(|e| Error::Other(format!("{}: not a membership file: {e}", path.display())))?;
    let mut flags: Vec<(&'static str, String)> = KEYS
        .iter()
        .map(|key| {
            doc.get(*key)
                .and_then(|v| v.as_str())
                .map(|v| (*key, v.to_string()))
                .ok_or_else(|| {
                    Error::Other(format!(
                        "{}: no {key}; the sidecar writes it before the server may start",
                        path.display()
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    if doc.get("force-new-cluster").and_then(|v| v.as_bool()) == Some(true) {
        flags.push(("force-new-cluster", "true".to_string()));
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_file_supplies_the_membership_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("member.yaml");
        std::fs::write(
            &file,
            "name: main-3\ninitial-cluster: main-0=https://a:2380,main-3=https://d:2380\n\
             initial-cluster-state: existing\ninitial-cluster-token: db-main\n",
        )
        .expect("write");
        let got = server_args(os(&[
            "--name=main-3",
            &format!("--membership-file={}", file.display()),
            "--data-dir=/d",
        ]))
        .expect("args");
        assert_eq!(
            got,
            os(&[
                "--name=main-3",
                "--data-dir=/d",
                "--initial-cluster=main-0=https://a:2380,main-3=https://d:2380",
                "--initial-cluster-state=existing",
            ])
        );
    }

    #[test]
    fn a_recovery_start_forces_a_new_cluster() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("member.yaml");
        std::fs::write(
            &file,
            "initial-cluster: main-0=https://a:2380\ninitial-cluster-state: existing\n\
             force-new-cluster: true\n",
        )
        .expect("write");
        let got =
            server_args(os(&[&format!("--membership-file={}", file.display())])).expect("args");
        assert_eq!(
            got.last(),
            Some(&OsString::from("--force-new-cluster=true"))
        );
    }

    #[test]
    fn bad_invocations_say_what_is_wrong() {
        let e = server_args(os(&["--name=a"])).expect_err("no file");
        assert!(
            e.to_string().contains("needs --membership-file=PATH"),
            "{e}"
        );
        let e = server_args(os(&["--membership-file=/x", "--initial-cluster-state=new"]))
            .expect_err("both");
        assert!(e.to_string().contains("takes the membership from"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("m.yaml");
        std::fs::write(&file, "name: a\n").expect("write");
        let e = server_args(os(&[&format!("--membership-file={}", file.display())]))
            .expect_err("incomplete");
        assert!(e.to_string().contains("no initial-cluster;"), "{e}");
    }
}
