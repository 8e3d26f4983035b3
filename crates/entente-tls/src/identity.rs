//! What we present ([`Identity`]) and what we trust ([`TrustAnchors`]).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore};

use crate::error::{Origin, PemItem, Result, TlsError};
use crate::{pem_io, ring_provider};

/// A certificate chain and the private key of its end-entity certificate: how
/// a provider authenticates itself, as a server to everyone and as a client to
/// other providers.
///
/// Construction checks that the key belongs to the certificate, so a mixed-up
/// pair fails at start-up rather than in every handshake. The key is held as a
/// signing key of rustls's ring provider; the PEM text it came from is wiped.
#[derive(Clone)]
pub struct Identity {
    certified_key: Arc<CertifiedKey>,
}

impl Identity {
    /// Loads an identity from a PEM certificate chain (end-entity certificate
    /// first) and a PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        Self::parse(
            PemItem::CertificateChain,
            cert_chain_pem,
            &Origin::Memory,
            PemItem::PrivateKey,
            key_pem,
            &Origin::Memory,
        )
    }

    /// Loads an identity from a PEM certificate chain file and a PEM private key file.
    pub fn from_pem_files(
        cert_chain_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self> {
        Self::load_files(
            PemItem::CertificateChain,
            cert_chain_path.as_ref(),
            PemItem::PrivateKey,
            key_path.as_ref(),
        )
    }

    /// The certificate chain, end-entity certificate first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.certified_key.cert
    }

    pub(crate) fn load_files(
        cert_item: PemItem,
        cert_path: &Path,
        key_item: PemItem,
        key_path: &Path,
    ) -> Result<Self> {
        let cert_pem = pem_io::read_file(cert_item, cert_path)?;
        let key_pem = pem_io::read_file(key_item, key_path)?;
        Self::parse(
            cert_item,
            &cert_pem,
            &Origin::File(cert_path.to_owned()),
            key_item,
            &key_pem,
            &Origin::File(key_path.to_owned()),
        )
    }

    pub(crate) fn parse(
        cert_item: PemItem,
        cert_pem: &[u8],
        cert_origin: &Origin,
        key_item: PemItem,
        key_pem: &[u8],
        key_origin: &Origin,
    ) -> Result<Self> {
        let cert_chain = pem_io::parse_certificates(cert_item, cert_origin, cert_pem)?;
        let key = pem_io::parse_private_key(key_item, key_origin, key_pem)?;
        let signing_key = ring_provider()
            .key_provider
            .load_private_key(key)
            .map_err(|error| {
                pem_io::invalid(
                    key_item,
                    key_origin,
                    format!("rustls cannot use it as a signing key: {error}"),
                )
            })?;
        let certified_key = CertifiedKey::new(cert_chain, signing_key);
        match certified_key.keys_match() {
            // A key type whose public half rustls cannot derive cannot be
            // checked here; the handshake will tell (as in `CertifiedKey::from_der`).
            Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
            Err(source @ rustls::Error::InconsistentKeys(_)) => {
                return Err(TlsError::KeyMismatch {
                    cert_origin: cert_origin.clone(),
                    key_origin: key_origin.clone(),
                    source,
                });
            }
            Err(other) => {
                return Err(pem_io::invalid(
                    cert_item,
                    cert_origin,
                    format!("the end-entity certificate cannot be parsed: {other}"),
                ));
            }
        }
        Ok(Self {
            certified_key: Arc::new(certified_key),
        })
    }

    pub(crate) fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified_key)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { certified_key } = self;
        f.debug_struct("Identity")
            .field("cert_chain_len", &certified_key.cert.len())
            .field("key", &"[elided]")
            .finish()
    }
}

/// The certificate authorities trusted to authenticate peers.
///
/// Providers on the public internet use [`TrustAnchors::webpki`]; a local
/// federation uses its [`DevCa`](crate::DevCa)'s certificate via
/// [`TrustAnchors::from_pem`] or [`TrustAnchors::from_pem_file`].
#[derive(Clone)]
pub struct TrustAnchors {
    roots: Arc<RootCertStore>,
    kind: AnchorKind,
}

#[derive(Clone, Copy, Debug)]
enum AnchorKind {
    Webpki,
    Configured,
}

impl TrustAnchors {
    /// The Mozilla root program's CAs, as shipped in the `webpki-roots` crate.
    pub fn webpki() -> Self {
        Self {
            roots: Arc::new(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
            kind: AnchorKind::Webpki,
        }
    }

    /// Every `CERTIFICATE` in PEM data; there must be at least one and each
    /// must be a usable CA certificate.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        Self::parse(pem, &Origin::Memory)
    }

    /// Every `CERTIFICATE` in a PEM file (for example a dev CA's `ca.crt`).
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let pem = pem_io::read_file(PemItem::TrustAnchors, path)?;
        Self::parse(&pem, &Origin::File(path.to_owned()))
    }

    /// How many CAs are trusted.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether no CA is trusted (never true for a value built by this crate).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    pub(crate) fn root_store(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.roots)
    }

    fn parse(pem: &[u8], origin: &Origin) -> Result<Self> {
        let item = PemItem::TrustAnchors;
        let mut roots = RootCertStore::empty();
        for (index, cert) in pem_io::parse_certificates(item, origin, pem)?
            .into_iter()
            .enumerate()
        {
            roots.add(cert).map_err(|error| {
                pem_io::invalid(
                    item,
                    origin,
                    format!(
                        "certificate #{} is not a usable CA certificate: {error}",
                        index + 1
                    ),
                )
            })?;
        }
        Ok(Self {
            roots: Arc::new(roots),
            kind: AnchorKind::Configured,
        })
    }
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { roots, kind } = self;
        f.debug_struct("TrustAnchors")
            .field("kind", kind)
            .field("len", &roots.len())
            .finish()
    }
}
