//! The operator library's one error type.

/// Everything that can go wrong in the operator library. Binaries wrap it in `anyhow`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// Adding or removing the finalizer, or the reconcile wrapped by it, failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    /// rcgen refused to build or sign a certificate.
    #[error("certificate generation: {0}")]
    Certificate(#[from] rcgen::Error),

    /// A certificate or key could not be parsed.
    #[error("cannot parse {0}")]
    Parse(String),

    /// A key format ring cannot sign with.
    #[error("unsupported private key: {0}")]
    UnsupportedKey(String),

    /// The CA certificate is not a CA (no basicConstraints CA:TRUE).
    #[error("the CA certificate is not a CA (basicConstraints CA:TRUE is missing)")]
    NotACa,

    /// The CA key does not belong to the CA certificate.
    #[error("the CA private key does not match the CA certificate")]
    KeyMismatch,

    /// A Secret the user named does not exist or lacks keys.
    #[error("Secret {name}: {problem}")]
    UserSecret {
        /// Secret name.
        name: String,
        /// What is wrong, for the user.
        problem: String,
    },

    /// The object lacks a name or namespace (only hand-made objects do).
    #[error("object has no {0}")]
    MissingMetadata(&'static str),

    /// Talking to the members failed.
    #[error("etcd members: {0}")]
    Members(String),

    /// Serializing an object failed.
    #[error("serialize: {0}")]
    Serialize(#[from] serde_json::Error),

    /// The spec holds a value the schema should have refused.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
}

impl Error {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Finalizer(_) => "finalizer",
            Error::Certificate(_) | Error::Parse(_) | Error::UnsupportedKey(_) => "pki",
            Error::NotACa | Error::KeyMismatch | Error::UserSecret { .. } => "user_secret",
            Error::MissingMetadata(_) => "metadata",
            Error::Members(_) => "members",
            Error::Serialize(_) => "serialize",
            Error::InvalidSpec(_) => "spec",
        }
    }
}

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
