//! Finding the `ballast` server binary the run starts.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// Environment variable naming a prebuilt server binary to use instead of building one.
pub const BINARY_ENV: &str = "BALLAST_ROBUSTNESS_BIN";

/// The server binary: `$BALLAST_ROBUSTNESS_BIN`, or else `ballast` built by cargo with the
/// profile of the running executable (a release soak tests a release server) and found in
/// the same target directory.
pub fn ballast_binary() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(Error::Setup(format!(
                "{BINARY_ENV}={} is not a file",
                path.display()
            )));
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("locating this executable", e))?;
    let profile_dir = profile_dir(&exe).ok_or_else(|| {
        Error::Setup(format!(
            "cannot tell the target directory from {}; set {BINARY_ENV}",
            exe.display()
        ))
    })?;
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "ballast", "--bin", "ballast"]);
    if release {
        build.arg("--release");
    }
    let status = build
        .status()
        .map_err(|e| Error::io("running cargo build -p ballast", e))?;
    if !status.success() {
        return Err(Error::Setup(format!(
            "cargo build -p ballast --bin ballast failed ({status})"
        )));
    }
    let built = profile_dir.join("ballast");
    if !built.is_file() {
        return Err(Error::Setup(format!(
            "cargo built ballast, but {} is not there; set {BINARY_ENV}",
            built.display()
        )));
    }
    Ok(built)
}

/// `<target>/<profile>` for a binary in it or a test binary in its `deps`.
fn profile_dir(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf)
    } else {
        Some(dir.to_path_buf())
    }
}
