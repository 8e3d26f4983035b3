//! Client errors, by who is at fault.

/// Everything that can go wrong in the client library.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The provider refused (4xx) or failed (5xx); `message` says why.
    #[error("provider: {message} ({code})")]
    Provider {
        status: u16,
        code: String,
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// The provider (or a peer it relayed to) is rate limiting us: `429`. Wait
    /// `retry_after_secs` before trying again; `message` says what was limited.
    #[error("rate limited: {message}; wait {retry_after_secs} s before trying again")]
    RateLimited {
        retry_after_secs: u64,
        message: String,
    },
    /// We could not reach the provider.
    #[error("cannot reach the provider: {0}; check the address and that it is running")]
    Unreachable(String),
    /// A peer or the provider sent something that violates the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A credential did not verify: possibly an impersonation attempt.
    #[error("untrusted credential: {0}")]
    Untrusted(String),
    /// The caller asked for something impossible (unknown room, bad name).
    #[error("{0}")]
    Usage(String),
    /// Configuration or local files are wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// The local database failed.
    #[error("local storage: {0}")]
    Storage(String),
    /// An MLS operation failed.
    #[error("MLS: {0}")]
    Mls(String),
    /// An encrypted file failed its checks or cannot be handled.
    #[error("file: {0}")]
    File(#[from] entente_core::files::FileCryptoError),
    /// A bug in Entente.
    #[error("internal error (a bug, please report): {0}")]
    Bug(String),
}

impl ClientError {
    /// The hub refused a change or message (MIMI `notAllowed`), with its reason.
    pub(crate) fn not_allowed(reason: impl Into<String>) -> Self {
        ClientError::Provider {
            status: 403,
            code: "not_allowed".into(),
            message: reason.into(),
            retry_after_secs: None,
        }
    }

    /// The target's provider refused their key material: no consent (or a block,
    /// which is not told apart). `code` is `no_consent`, as the provider's own.
    pub(crate) fn no_consent(message: impl Into<String>) -> Self {
        ClientError::Provider {
            status: 403,
            code: "no_consent".into(),
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// The room moved on under every attempt to change it.
    pub(crate) fn kept_changing(attempts: usize) -> Self {
        ClientError::Provider {
            status: 409,
            code: "wrong_epoch".into(),
            message: format!("the room kept changing; gave up after {attempts} attempts"),
            retry_after_secs: Some(1),
        }
    }

    /// Whether retrying later might succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable(_) | ClientError::RateLimited { .. } => true,
            ClientError::Provider { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// How long the provider asked us to wait before trying again, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ClientError::RateLimited {
                retry_after_secs, ..
            } => Some(std::time::Duration::from_secs(*retry_after_secs)),
            ClientError::Provider {
                retry_after_secs: Some(s),
                ..
            } => Some(std::time::Duration::from_secs(*s)),
            _ => None,
        }
    }
}
