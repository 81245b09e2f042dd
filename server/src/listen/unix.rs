//! `unix://` listen URLs: a unix domain socket instead of a TCP port.
//!
//! The socket's path is what etcd makes of the URL: its host (with the port) followed by its
//! path, so `unix://localhost:2379` is a socket named `localhost:2379` in the working
//! directory (the only form etcd 3.4 accepts, and the one etcd's peers dial) and
//! `unix:///run/etcd.sock` is `/run/etcd.sock` (etcd 3.5 and later, client URLs).
//!
//! etcd removes whatever is at the path before binding and removes the socket when it closes
//! the listener. Ballast does both, more carefully: a socket some live process still accepts
//! on is left alone (binding fails with "address in use", as a taken TCP port does), a path
//! that is not a socket is never deleted, and on close only the socket this listener created
//! is removed, not one a newer process has since put at the same path.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::net::{UnixListener, UnixStream};
use url::Url;

use crate::error::{Error, Result};

/// The socket path etcd derives from a `unix`/`unixs` URL: host, port and path, as written.
pub fn socket_path(u: &Url) -> PathBuf {
    PathBuf::from(&u[url::Position::BeforeHost..url::Position::AfterPath])
}

/// A bound unix socket, removed again when dropped.
pub struct UnixSocket {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file this listener created.
    file_id: Option<(u64, u64)>,
}

impl UnixSocket {
    /// Binds `path`, first removing a stale socket left there by a process that is gone.
    pub fn bind(u: &Url, path: &Path) -> Result<UnixSocket> {
        clear_stale(path).map_err(|e| Error::io(format!("listen on {u}"), e))?;
        let listener =
            UnixListener::bind(path).map_err(|e| Error::io(format!("listen on {u}"), e))?;
        let file_id = std::fs::symlink_metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        Ok(UnixSocket {
            listener,
            path: path.to_path_buf(),
            file_id,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next connection; errors (out of file descriptors, say) are the caller's to retry.
    pub async fn accept(&self) -> io::Result<UnixStream> {
        self.listener.accept().await.map(|(stream, _)| stream)
    }
}

/// Removes the socket file at `path` if nothing accepts on it any more. A live socket gives
/// `AddrInUse`; a path that exists but is not a socket is refused.
fn clear_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "address already in use",
        )),
        Err(_) => match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.file_id {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// tonic's `serve_with_incoming` takes a stream of connections (the peer port).
impl tokio_stream::Stream for UnixSocket {
    type Item = io::Result<UnixStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.listener
            .poll_accept(cx)
            .map(|r| Some(r.map(|(stream, _)| stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn socket_paths_as_etcd_derives_them() {
        assert_eq!(
            socket_path(&url("unix://localhost:2379")),
            PathBuf::from("localhost:2379")
        );
        assert_eq!(
            socket_path(&url("unix:///tmp/etcd.sock")),
            PathBuf::from("/tmp/etcd.sock")
        );
        assert_eq!(
            socket_path(&url("unixs://127.0.0.1:2380")),
            PathBuf::from("127.0.0.1:2380")
        );
        assert_eq!(
            socket_path(&url("unix://sockets/member1:2379")),
            PathBuf::from("sockets/member1:2379")
        );
    }

    #[tokio::test]
    async fn stale_socket_replaced_live_one_and_plain_file_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        let u = url("unix:///s.sock");
        let first = UnixSocket::bind(&u, &path).expect("first bind");
        let err = UnixSocket::bind(&u, &path)
            .err()
            .expect("second bind refused");
        assert!(err.to_string().contains("address already in use"), "{err}");
        drop(first);
        assert!(!path.exists(), "the socket is removed on close");
        // A socket left behind by a process that died: std's listener leaves its file.
        drop(std::os::unix::net::UnixListener::bind(&path).expect("std bind"));
        assert!(path.exists());
        let second = UnixSocket::bind(&u, &path).expect("bind over a stale socket");
        drop(second);
        assert!(!path.exists(), "the socket is removed on close");
        std::fs::write(&path, b"not a socket").expect("write");
        let err = UnixSocket::bind(&u, &path)
            .err()
            .expect("a plain file is refused");
        assert!(err.to_string().contains("is not a socket"), "{err}");
        assert!(path.exists(), "the plain file is left alone");
    }
}
