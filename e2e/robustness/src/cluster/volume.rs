//! A member's data directory on a tmpfs of its own, so the disk-full fault can fill one
//! member's volume without touching the machine's disk or the other members.
//!
//! Only the disk-full scenario mounts these: tmpfs makes fsync a no-op, which would hide
//! what the crash scenarios are there to find.
//!
//! Free space comes from `df` rather than `statvfs` directly: the suite already drives the
//! system through its tools (`ip`, `kill`, `mount`), and this keeps it free of an FFI crate
//! for one number read a few times a run.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

const MIB: u64 = 1024 * 1024;

/// A tmpfs mounted on a member's data directory, unmounted when dropped (after the member
/// is killed: see `Member`'s field order and `Drop`).
#[derive(Debug)]
pub struct Volume {
    mount_point: PathBuf,
}

impl Volume {
    /// Creates `mount_point` and mounts a tmpfs of `size` bytes on it.
    pub fn mount(mount_point: &Path, size: u64) -> Result<Volume, Error> {
        std::fs::create_dir_all(mount_point)
            .map_err(|e| Error::io(format!("creating {}", mount_point.display()), e))?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(mount_point)
            .status()
            .map_err(|e| Error::io("running mount", e))?;
        if !status.success() {
            return Err(Error::Setup(format!(
                "mount -t tmpfs on {} failed ({status})",
                mount_point.display()
            )));
        }
        Ok(Volume {
            mount_point: mount_point.to_path_buf(),
        })
    }

    /// Bytes an unprivileged writer may still use.
    pub fn available(&self) -> Result<u64, Error> {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.mount_point)
            .output()
            .map_err(|e| Error::io("running df", e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| {
                Error::Setup(format!(
                    "df of {}: unexpected output {text:?}",
                    self.mount_point.display()
                ))
            })
    }

    /// Writes a filler file that leaves about `left` bytes free (tmpfs counts in pages);
    /// returns its path, for [`Volume::free`].
    pub fn fill_leaving(&self, left: u64) -> Result<PathBuf, Error> {
        let path = self.mount_point.join("robustness-filler");
        let io = |e| Error::io(format!("writing {}", path.display()), e);
        let mut f = File::create(&path).map_err(io)?;
        let chunk = vec![0xa5u8; MIB as usize];
        let mut to_write = self.available()?.saturating_sub(left);
        while to_write > 0 {
            let n = to_write.min(MIB) as usize;
            f.write_all(&chunk[..n]).map_err(io)?;
            to_write -= n as u64;
        }
        Ok(path)
    }

    /// Removes a filler written by [`Volume::fill_leaving`].
    pub fn free(&self, filler: &Path) -> Result<(), Error> {
        std::fs::remove_file(filler)
            .map_err(|e| Error::io(format!("removing {}", filler.display()), e))
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        // Lazy: a member still being reaped cannot keep the mount alive past the run.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}
