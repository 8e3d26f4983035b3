//! Reading and writing PEM files, with errors that name the file.
//!
//! PEM parsing uses `rustls::pki_types::pem` (what `rustls-pemfile` itself now
//! wraps). Error reasons are written here and never quote the input, so a
//! malformed key file cannot leak into a log line.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::error::{Origin, PemItem, Result, TlsError};

/// Whether a written file holds a secret (and so must be private to its owner).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrecy {
    Public,
    Secret,
}

/// Reads a whole file; the buffer is wiped when dropped since it may hold a key.
pub(crate) fn read_file(item: PemItem, path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| TlsError::ReadFile {
            item,
            path: path.to_owned(),
            source,
        })
}

/// Creates `dir` and its parents if needed.
pub(crate) fn create_dir(item: PemItem, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| TlsError::WriteFile {
        item,
        path: dir.to_owned(),
        source,
    })
}

/// Writes `contents` to `path`, replacing any existing file.
///
/// A secret file is created with mode 0600 on unix, and an existing file is
/// truncated and narrowed to 0600 *before* the secret is written into it.
pub(crate) fn write_file(
    item: PemItem,
    path: &Path,
    contents: &[u8],
    secrecy: Secrecy,
) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if secrecy == Secrecy::Secret {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        #[cfg(unix)]
        if secrecy == Secrecy::Secret {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(contents)?;
        file.sync_all()
    };
    write().map_err(|source| TlsError::WriteFile {
        item,
        path: path.to_owned(),
        source,
    })
}

/// Parses every `CERTIFICATE` section; at least one must be present.
pub(crate) fn parse_certificates(
    item: PemItem,
    origin: &Origin,
    pem_data: &[u8],
) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem_data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(item, origin, describe(&error, "CERTIFICATE")))?;
    if certs.is_empty() {
        return Err(invalid(
            item,
            origin,
            describe(&pem::Error::NoItemsFound, "CERTIFICATE"),
        ));
    }
    Ok(certs)
}

/// Parses the first private key (PKCS#8, SEC1 or PKCS#1).
pub(crate) fn parse_private_key(
    item: PemItem,
    origin: &Origin,
    pem_data: &[u8],
) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem_data).map_err(|error| {
        invalid(
            item,
            origin,
            describe(&error, "PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY"),
        )
    })
}

pub(crate) fn invalid(item: PemItem, origin: &Origin, reason: String) -> TlsError {
    TlsError::InvalidPem {
        item,
        origin: origin.clone(),
        reason,
    }
}

fn describe(error: &pem::Error, expected_label: &str) -> String {
    match error {
        pem::Error::NoItemsFound => {
            format!("it has no `-----BEGIN {expected_label}-----` section")
        }
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".to_owned(),
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64".to_owned(),
        pem::Error::SectionTooLarge => "a PEM section is too large".to_owned(),
        _ => "it is not valid PEM".to_owned(),
    }
}
