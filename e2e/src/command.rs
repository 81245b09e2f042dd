//! Running the system tools the runner is built on.

use std::process::Command;

use crate::Error;

/// Runs `program args`, returning its standard output; a failure carries its stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, Error> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| Error::io(format!("starting {program}"), e))?;
    let command = format!("{program} {}", args.join(" "));
    if !out.status.success() {
        return Err(Error::Command {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Quotes `s` for `sh`.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_shell() {
        let tricky = "a b'c$(x)\"d";
        let out = run("sh", &["-c", &format!("printf %s {}", sh_quote(tricky))]).expect("sh");
        assert_eq!(out, tricky);
    }
}
