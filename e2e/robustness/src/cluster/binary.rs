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
    // Cargo gives a test its package's variables; build scripts (ring's) track some of
    // them, so passing them on would rebuild the server here and again in the next
    // ordinary `cargo build`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if is_package_variable(&name) {
            build.env_remove(&*name);
        }
    }
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

fn is_package_variable(name: &str) -> bool {
    ["CARGO_PKG_", "CARGO_BIN_EXE_", "CARGO_MANIFEST_"]
        .iter()
        .any(|p| name.starts_with(p))
        || [
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "OUT_DIR",
            "LD_LIBRARY_PATH",
        ]
        .contains(&name)
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
