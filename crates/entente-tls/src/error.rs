//! The one error type of this crate.
//!
//! Each variant says whose fault the failure is: the environment (a file that
//! cannot be read or written), the operator (a file with unusable contents), or
//! the caller (an argument this crate cannot work with).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = TlsError> = std::result::Result<T, E>;

/// Why loading, creating or using TLS material failed.
///
/// The `Display` text names the file and says what to do; the underlying cause,
/// where there is one, is the [`std::error::Error::source`] (print the chain,
/// for example with `anyhow`'s `{:#}`, to see it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read (environment: missing file, permissions, I/O).
    #[error("cannot read the {item} file {path}{hint}", path = .path.display(), hint = read_hint(.source))]
    ReadFile {
        /// What the file should hold.
        item: PemItem,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },

    /// A file or directory could not be written (environment).
    #[error("cannot write the {item} file {path}", path = .path.display())]
    WriteFile {
        /// What the file was to hold.
        item: PemItem,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },

    /// PEM data holds no usable item of the expected kind (operator input).
    ///
    /// The reason never quotes the data, so it is safe to log for key files.
    #[error("the {item} in {origin} is unusable: {reason}")]
    InvalidPem {
        /// What the data should hold.
        item: PemItem,
        /// Where the data came from.
        origin: Origin,
        /// What is wrong with it.
        reason: String,
    },

    /// A private key does not belong to the certificate it was paired with
    /// (operator input: the two files are from different identities).
    #[error(
        "the private key in {key_origin} does not belong to the certificate in {cert_origin}; \
         keep each certificate with the key it was issued for"
    )]
    KeyMismatch {
        /// Where the certificate came from.
        cert_origin: Origin,
        /// Where the key came from.
        key_origin: Origin,
        /// rustls's finding.
        source: rustls::Error,
    },

    /// A domain cannot be put into a certificate (caller input).
    #[error(
        "{domain:?} is not a DNS name a certificate can be issued for; \
         expected a name such as `a.example` (no IP address, wildcard or trailing dot)"
    )]
    InvalidDomain {
        /// The rejected domain.
        domain: String,
    },

    /// A file name for saved certificates is not a plain name (caller input).
    #[error(
        "{name:?} cannot name certificate files: expected a plain name such as `a.example`, without path separators"
    )]
    InvalidFileName {
        /// The rejected name.
        name: String,
    },

    /// rcgen could not create a key or certificate.
    #[error("cannot generate the {item}")]
    Generate {
        /// What was being generated.
        item: PemItem,
        /// rcgen's error.
        source: rcgen::Error,
    },

    /// The system clock is outside the range certificates can express.
    #[error("the system clock is out of range for certificate validity; check the machine's time")]
    ClockOutOfRange,

    /// rustls rejected a configuration built from valid inputs (a bug here or
    /// an incompatible crypto provider).
    #[error("rustls rejected the TLS configuration")]
    Config {
        /// rustls's error.
        source: rustls::Error,
    },

    /// The client-certificate verifier could not be built from the trust anchors.
    #[error("cannot verify client certificates with these trust anchors")]
    ClientVerifier {
        /// rustls's error.
        source: rustls::server::VerifierBuilderError,
    },

    /// [`ServeOptions`](crate::ServeOptions) hold a value `serve` cannot run with (caller input).
    #[error("invalid serve options: {0}")]
    InvalidServeOptions(&'static str),
}

/// The kinds of PEM items this crate reads and writes; used in error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemItem {
    /// A certificate chain, end-entity certificate first.
    CertificateChain,
    /// The private key of an identity.
    PrivateKey,
    /// CA certificates trusted to authenticate peers.
    TrustAnchors,
    /// The certificate of a [`DevCa`](crate::DevCa).
    CaCertificate,
    /// The private key of a [`DevCa`](crate::DevCa).
    CaPrivateKey,
}

impl fmt::Display for PemItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CertificateChain => "certificate chain",
            Self::PrivateKey => "private key",
            Self::TrustAnchors => "trust anchor (CA certificate)",
            Self::CaCertificate => "development CA certificate",
            Self::CaPrivateKey => "development CA private key",
        })
    }
}

/// Where PEM data came from; used in error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Read from this file.
    File(PathBuf),
    /// Passed in as bytes.
    Memory,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Memory => f.write_str("the supplied PEM data"),
        }
    }
}

fn read_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::NotFound => ": it does not exist; run `entente provider init` to create one",
        io::ErrorKind::PermissionDenied => ": permission denied; check the file's owner and mode",
        _ => "",
    }
}
