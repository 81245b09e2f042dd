//! The crate's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("history JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A system call or program the run needs failed (starting a member, `kill`, cargo).
    #[error("{context}: {source}")]
    System {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("network: {0}")]
    Network(#[from] ballast_e2e::Error),
    #[error("{context}: {source}")]
    Client {
        context: String,
        #[source]
        source: etcd_client::Error,
    },
    /// The cluster did not get to a state the run waits for (a member that does not start,
    /// no leader); the text says which and what its log ends with.
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("{0}")]
    Setup(String),
    /// Ctrl-C during a run: the run's members, volumes and network were removed.
    #[error("interrupted; the run's members, volumes and network namespaces were removed")]
    Interrupted,
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::System {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn client(context: impl Into<String>, source: etcd_client::Error) -> Self {
        Error::Client {
            context: context.into(),
            source,
        }
    }
}
