//! Where backups live: an S3 bucket (with an optional key prefix) or a local directory,
//! both behind `object_store`, so saving, listing, fetching and retention are one code path
//! whatever the destination.
//!
//! S3 settings come from the environment (`AmazonS3Builder::from_env`: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
//! `AWS_ENDPOINT`/`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`)
//! because that is how a Kubernetes pod gets them from a Secret. Requests are path-style
//! unless virtual-hosted style is asked for (MinIO and most S3-compatible stores need path
//! style), and an `http://` endpoint allows plain HTTP by itself: naming an `http` endpoint
//! already says so, and a second switch to forget would only turn into a confusing error.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, RetryConfig};

use crate::error::{Error, Result};

/// A parsed backup location with its store opened.
#[derive(Clone)]
pub struct Location {
    /// As the user should see it in messages: `s3://bucket/prefix` or `/dir`.
    display: String,
    /// The bucket, for S3 locations (messages about a missing bucket name it).
    bucket: Option<String>,
    store: Arc<dyn ObjectStore>,
    /// Key prefix of every backup object (may be empty).
    prefix: ObjectPath,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Location")
            .field("location", &self.display)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl Location {
    /// Parses `s3://bucket[/prefix]`, `file:///dir` or a directory path (relative paths are
    /// taken from the current directory). Nothing is contacted or created yet.
    pub fn parse(location: &str) -> Result<Location> {
        if let Some(rest) = location.strip_prefix("s3://") {
            return Self::s3(location, rest);
        }
        if location.contains("://") && !location.starts_with("file://") {
            return Err(Error::Backup(format!(
                "unsupported backup location {location:?}: use s3://BUCKET/PREFIX or a directory \
                 (an absolute path or file:///PATH)"
            )));
        }
        let path = match location.strip_prefix("file://") {
            Some(p) if p.starts_with('/') => PathBuf::from(p),
            Some(_) => {
                return Err(Error::Backup(format!(
                    "backup location {location:?}: a file:// URL needs an absolute path \
                     (file:///PATH)"
                )))
            }
            None if location.is_empty() => {
                return Err(Error::Backup("the backup location is empty".into()))
            }
            None => std::path::absolute(location)
                .map_err(|e| Error::io(format!("backup location {location:?}"), e))?,
        };
        Self::directory(path)
    }

    fn s3(location: &str, rest: &str) -> Result<Location> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Backup(format!(
                "backup location {location:?} names no bucket: use s3://BUCKET/PREFIX"
            )));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            // A stuck upload should fail the job in seconds, not after object_store's
            // default three minutes of retries; the CronJob runs again anyway.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            });
        if builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .is_some_and(|e| e.starts_with("http://"))
        {
            builder = builder.with_allow_http(true);
        }
        let store = builder.build().map_err(|e| Error::Store {
            context: format!("cannot use backup location {location}"),
            source: e,
        })?;
        let prefix = ObjectPath::parse(prefix.trim_matches('/')).map_err(|e| {
            Error::Backup(format!("backup location {location:?}: bad key prefix: {e}"))
        })?;
        let display = match prefix.as_ref() {
            "" => format!("s3://{bucket}"),
            p => format!("s3://{bucket}/{p}"),
        };
        Ok(Location {
            display,
            bucket: Some(bucket.to_string()),
            store: Arc::new(store),
            prefix,
        })
    }

    /// A directory, through a store rooted at `/` so that a directory that does not exist
    /// yet is created by the first backup written into it.
    fn directory(path: PathBuf) -> Result<Location> {
        let display = path.display().to_string();
        let text = path.to_str().ok_or_else(|| {
            Error::Backup(format!(
                "backup directory {display:?} is not valid UTF-8 (object names must be)"
            ))
        })?;
        let prefix = ObjectPath::parse(text.trim_matches('/')).map_err(|e| {
            Error::Backup(format!("backup directory {display:?} is not usable: {e}"))
        })?;
        Ok(Location {
            display,
            bucket: None,
            store: Arc::new(LocalFileSystem::new()),
            prefix,
        })
    }

    /// The store holding the backups.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key prefix of the backups (empty for a bucket's root).
    pub fn prefix(&self) -> &ObjectPath {
        &self.prefix
    }

    /// The bucket, for S3 locations.
    pub fn bucket(&self) -> Option<&str> {
        self.bucket.as_deref()
    }

    /// The key of an object named `name` relative to this location.
    pub fn object(&self, name: &str) -> ObjectPath {
        self.prefix
            .parts()
            .chain(ObjectPath::from(name).parts())
            .collect()
    }

    /// The file system path of `name`, for directory locations (object stores have no
    /// folders to remove; a directory does, once the files in it are deleted).
    pub fn local_path(&self, name: &str) -> Option<PathBuf> {
        self.bucket
            .is_none()
            .then(|| PathBuf::from("/").join(self.object(name).as_ref()))
    }

    /// `name` relative to this location, when `key` lies directly under its prefix.
    pub fn relative(&self, key: &ObjectPath) -> Option<String> {
        let mut rest = key.prefix_match(&self.prefix)?;
        let name = rest.next()?;
        rest.next().is_none().then(|| name.as_ref().to_string())
    }

    /// Describes a store failure for a person: what failed, the likely cause in words (a
    /// missing bucket, refused credentials, an unreachable endpoint) and what to check.
    pub fn explain(&self, what: &str, e: object_store::Error) -> Error {
        let chain = error_chain(&e);
        let hint = if let Some(bucket) = &self.bucket {
            if chain.contains("NoSuchBucket") {
                Some(format!(
                    "bucket {bucket} does not exist (NoSuchBucket); check the bucket name in \
                     the backup location (spec.backup) and the endpoint and region \
                     (AWS_ENDPOINT, AWS_REGION)"
                ))
            } else if [
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "AccessDenied",
            ]
            .iter()
            .any(|c| chain.contains(c))
            {
                Some(
                    "access denied; check the credentials (AWS_ACCESS_KEY_ID, \
                     AWS_SECRET_ACCESS_KEY) and that they may write to this bucket"
                        .to_string(),
                )
            } else if chain.contains("error sending request")
                || chain.contains("Connection refused")
                || chain.contains("dns error")
            {
                Some(
                    "the S3 endpoint cannot be reached; check AWS_ENDPOINT and the network"
                        .to_string(),
                )
            } else {
                None
            }
        } else {
            None
        };
        match hint {
            Some(hint) => Error::Backup(format!("{what} {self}: {hint} ({chain})")),
            None => Error::Backup(format!("{what} {self}: {chain}")),
        }
    }
}

/// An error with its causes, each once (object_store's messages often repeat their source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations_split_bucket_and_prefix() {
        let l = Location::parse("s3://bucket/a/b/").expect("parse");
        assert_eq!(l.to_string(), "s3://bucket/a/b");
        assert_eq!(l.bucket(), Some("bucket"));
        assert_eq!(l.object("x.db").as_ref(), "a/b/x.db");
        let root = Location::parse("s3://bucket").expect("parse");
        assert_eq!(root.object("x.db").as_ref(), "x.db");
        assert_eq!(
            root.relative(&ObjectPath::from("x.db")).as_deref(),
            Some("x.db")
        );
    }

    #[test]
    fn directories_are_absolute() {
        let l = Location::parse("file:///var/backups/etcd").expect("parse");
        assert_eq!(l.to_string(), "/var/backups/etcd");
        assert_eq!(l.object("x.db").as_ref(), "var/backups/etcd/x.db");
        assert_eq!(
            l.relative(&ObjectPath::from("var/backups/etcd/x.db"))
                .as_deref(),
            Some("x.db")
        );
        assert_eq!(
            l.relative(&ObjectPath::from("var/backups/etcd/sub/x.db")),
            None
        );
        assert_eq!(
            l.local_path("x.db.holds"),
            Some(PathBuf::from("/var/backups/etcd/x.db.holds"))
        );
        assert_eq!(
            Location::parse("s3://b/p").expect("parse").local_path("x"),
            None
        );
        assert!(Location::parse("file://relative").is_err());
        assert!(Location::parse("gs://bucket").is_err());
        assert!(Location::parse("s3:///prefix").is_err());
    }
}
