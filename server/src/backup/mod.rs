//! `ballast backup`: scheduled backups of a cluster to S3 or a directory, and the way back.
//!
//! A backup is an etcd snapshot file (exactly what `etcdctl snapshot save` writes, optionally
//! gzip-compressed) plus a small JSON metadata object beside it. The snapshot is streamed
//! from a healthy member straight into the store and its SHA-256 trailer checked on the way
//! ([`save`]); the metadata is written last, so it marks a complete backup, and it is what
//! [`list`], retention and [`fetch`] go by. The library API is async so the sidecar can
//! fetch a backup when it restores a cluster; the command line is in [`cli`].
//!
//! Retention is the only thing that deletes backups, and it leaves alone what someone still
//! needs: backups being restored from ([`holds`]), on-demand backups, the newest scheduled
//! one.

pub mod cli;
pub mod fetch;
pub mod holds;
pub mod location;
pub mod member;
pub mod metadata;
mod progress;
pub mod restore_member;
pub mod retention;
pub mod save;
mod trailer;

pub use fetch::fetch;
pub use holds::Hold;
pub use location::Location;
pub use member::Endpoints;
pub use metadata::{list, Compression, Metadata};
pub use restore_member::{restore_member, Restored};
pub use retention::{Applied, Retention};
pub use save::{save, SaveOptions, Saved};
