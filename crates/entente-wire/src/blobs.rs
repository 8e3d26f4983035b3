//! Encrypted blobs (file attachments): the client API to a provider's blob store,
//! and the shape of the URLs that go into a MIMI content ExternalPart.
//!
//! A blob is the AES-GCM ciphertext of one file, uploaded by the sender to its own
//! provider and fetched by recipients at `https://<domain>/blobs/<id>`. The id is
//! 128 random bits, so the URL is a capability: only those who were sent the message
//! know it, and they also hold the key. Downloads from another provider go through
//! the room's hub (MIMI `proxyDownload`, draft-ietf-mimi-protocol-06 section 5.10.2).
//!
//! Upload, resumable (similar in spirit to the tus and IETF resumable-upload
//! protocols, much smaller):
//! 1. `POST /v1/blobs` (signed) with [`CreateBlob`]: the provider checks the size
//!    against its maximum and the user's quota and answers [`BlobCreated`], which
//!    holds a one-upload bearer token.
//! 2. `PATCH /v1/blobs/{id}` with [`UPLOAD_TOKEN_HEADER`] and [`UPLOAD_OFFSET_HEADER`]
//!    streams bytes from that offset. The answer is an [`UploadStatus`]. A broken
//!    connection keeps what arrived.
//! 3. `GET /v1/blobs/{id}/upload` with the token says how much has arrived, so an
//!    interrupted upload resumes there. When the last byte arrives the blob is made
//!    durable and the status carries the SHA-256 of what the provider stored.

use serde::{Deserialize, Serialize};

use crate::ids::Domain;

/// A malformed blob id or URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BlobUrlError(pub String);

impl BlobUrlError {
    fn new(message: &str) -> Self {
        Self(message.to_owned())
    }
}

/// Header carrying the upload token of [`BlobCreated`].
pub const UPLOAD_TOKEN_HEADER: &str = "entente-upload-token";
/// Header saying at which byte of the blob a `PATCH` body starts.
pub const UPLOAD_OFFSET_HEADER: &str = "upload-offset";
/// Path prefix of blob download URLs.
pub const BLOB_PATH: &str = "/blobs/";

/// `POST /v1/blobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBlob {
    /// Exact size of the blob (the ciphertext, tag included) in bytes.
    pub size: u64,
}

/// The answer to [`CreateBlob`].
#[derive(Clone, Serialize, Deserialize)]
pub struct BlobCreated {
    pub id: BlobId,
    /// Where recipients fetch it: goes into the ExternalPart's `url`.
    pub url: String,
    /// Secret for the `PATCH` and status requests of this upload.
    pub upload_token: String,
    /// When the provider deletes the blob, seconds since the UNIX epoch: goes into
    /// the ExternalPart's `expires`.
    pub expires: u64,
}

impl std::fmt::Debug for BlobCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobCreated")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Progress of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    /// Bytes stored so far: the next `PATCH` starts here.
    pub offset: u64,
    pub size: u64,
    /// All bytes arrived and the blob is durable and downloadable.
    pub complete: bool,
    /// Hex SHA-256 of the stored blob, once complete. The uploader compares it with
    /// its own, so that a blob damaged in transit or storage is never announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The usage figures of `GET /v1/blobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobUsage {
    /// Bytes of blobs (complete or being uploaded) that count against the quota.
    pub used: u64,
    pub quota: u64,
    /// The largest blob this provider accepts.
    pub max_blob: u64,
}

/// A blob's name: 16 random bytes, as 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobId(String);

impl BlobId {
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BlobId {
    type Error = BlobUrlError;
    fn try_from(s: String) -> Result<Self, BlobUrlError> {
        s.parse()
    }
}

impl From<BlobId> for String {
    fn from(id: BlobId) -> String {
        id.0
    }
}

impl std::str::FromStr for BlobId {
    type Err = BlobUrlError;
    fn from_str(s: &str) -> Result<Self, BlobUrlError> {
        if s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(BlobUrlError::new("a blob id is 32 lowercase hex digits"))
        }
    }
}

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A blob's download URL: `https://<domain>/blobs/<id>`, nothing more. Providers
/// accept and proxy only URLs of exactly this shape, so that a hub cannot be made
/// to fetch anything else from its peers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobUrl {
    pub domain: Domain,
    pub id: BlobId,
}

impl BlobUrl {
    pub fn new(domain: Domain, id: BlobId) -> Self {
        Self { domain, id }
    }

    /// Parses a URL of exactly the shape [`BlobUrl`] prints.
    pub fn parse(url: &str) -> Result<Self, BlobUrlError> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| BlobUrlError::new("a blob URL starts with https://"))?;
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| BlobUrlError::new("a blob URL has a path"))?;
        let id = path
            .strip_prefix(&BLOB_PATH[1..])
            .ok_or_else(|| BlobUrlError::new("a blob URL's path is /blobs/<id>"))?;
        Ok(Self {
            domain: Domain::parse(host).map_err(|e| BlobUrlError(format!("blob URL host: {e}")))?,
            id: id.parse()?,
        })
    }
}

impl std::fmt::Display for BlobUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "https://{}{BLOB_PATH}{}", self.domain, self.id)
    }
}

/// The byte range `start..end` of a blob of `total` bytes that a `Range` header
/// value asks for: `bytes=a-`, `bytes=a-b` or `bytes=-n`. `Ok(None)` for no header
/// or a form we do not serve (several ranges, other units: the whole blob is sent,
/// as RFC 9110 allows); `Err` when the range starts past the end.
#[allow(clippy::result_unit_err)]
pub fn byte_range(value: Option<&str>, total: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(last)) if last >= start => (start, last.saturating_add(1).min(total)),
        (Ok(start), Err(_)) if b.is_empty() => (start, total),
        (Err(_), Ok(n)) if a.is_empty() && n > 0 => (total.saturating_sub(n), total),
        _ => return Ok(None),
    };
    if range.0 >= total && (total > 0 || range.0 > 0) {
        return Err(());
    }
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    proptest::proptest! {
        #[test]
        fn parsers_never_panic_and_stay_in_bounds(text in ".{0,80}", total in 0u64..1 << 40) {
            if let Ok(url) = BlobUrl::parse(&text) {
                proptest::prop_assert_eq!(url.to_string(), text.clone());
            }
            if let Ok(Some((start, end))) = byte_range(Some(&text), total) {
                proptest::prop_assert!(start <= end && end <= total);
            }
            let header = format!("bytes={text}");
            if let Ok(Some((start, end))) = byte_range(Some(&header), total) {
                proptest::prop_assert!(start <= end && end <= total);
            }
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(byte_range(None, 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-"), 10), Ok(Some((0, 10))));
        assert_eq!(byte_range(Some("bytes=4-"), 10), Ok(Some((4, 10))));
        assert_eq!(byte_range(Some("bytes=2-5"), 10), Ok(Some((2, 6))));
        assert_eq!(byte_range(Some("bytes=2-50"), 10), Ok(Some((2, 10))));
        assert_eq!(byte_range(Some("bytes=-3"), 10), Ok(Some((7, 10))));
        assert_eq!(byte_range(Some("bytes=-30"), 10), Ok(Some((0, 10))));
        assert_eq!(byte_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(byte_range(Some("bytes=0-"), 0), Ok(Some((0, 0))));
        assert_eq!(byte_range(Some("bytes=1-"), 0), Err(()));
        for ignored in [
            "bytes=1-2,4-5",
            "items=1-2",
            "bytes=5-2",
            "bytes=x-",
            "bytes=-0",
            "bytes",
        ] {
            assert_eq!(byte_range(Some(ignored), 10), Ok(None), "{ignored}");
        }
    }

    #[test]
    fn blob_urls_round_trip_and_nothing_else_parses() {
        let id = BlobId::from_bytes([0xab; 16]);
        let url = BlobUrl::new(Domain::parse("a.example").unwrap(), id.clone());
        let s = url.to_string();
        assert_eq!(s, format!("https://a.example/blobs/{id}"));
        assert_eq!(BlobUrl::parse(&s).unwrap(), url);
        for bad in [
            "http://a.example/blobs/abababababababababababababababab",
            "https://a.example/v1/blobs/abababababababababababababababab",
            "https://a.example/blobs/abababababababababababababababab?x=1",
            "https://a.example/blobs/abababababababababababababababab/",
            "https://a.example/blobs/ABABABABABABABABABABABABABABABAB",
            "https://a.example:8443/blobs/abababababababababababababababab",
            "https://user@a.example/blobs/abababababababababababababababab",
            "https://a.example/blobs/../abababababababababababababababab",
            "https://a.example",
            "",
        ] {
            assert!(BlobUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
