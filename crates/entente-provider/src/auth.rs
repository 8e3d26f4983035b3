//! Authentication of client API requests by the client's signature key.
//!
//! `Authorization: Entente client="mimi://a.example/d/alice/phone", ts="1700000000",
//! nonce="...", sig="<base64 Ed25519>"` over
//! [`entente_wire::api::signed_request_message`]. The timestamp must be within
//! [`MAX_CLOCK_SKEW_SECS`] of ours and a nonce is accepted once in that window, so a
//! captured request cannot be replayed.

use std::collections::HashMap;
use std::sync::Mutex;

use ed25519_dalek::{Signature, VerifyingKey};
use entente_wire::api::{MAX_CLOCK_SKEW_SECS, signed_request_message};
use sha2::{Digest, Sha256};

/// Why a request was not authenticated. Shown to the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing Authorization header; sign the request with your client key")]
    Missing,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("request timestamp is {0} s away from the provider's clock; check your clock")]
    Skew(i64),
    #[error("unknown client {0}; register it first")]
    UnknownClient(String),
    #[error(
        "signature does not verify for {0}; sign the method, path and query, timestamp, \
         nonce and body hash with the key registered for this client"
    )]
    BadSignature(String),
    #[error("nonce was already used; do not replay requests")]
    Replay,
}

pub use entente_wire::api::AuthHeader;

/// Parses `Entente client="..", ts="..", nonce="..", sig=".."`.
pub fn parse_header(value: &str) -> Result<AuthHeader, AuthError> {
    AuthHeader::parse(value).map_err(AuthError::Malformed)
}

/// Verifies a parsed header against the client's registered key.
pub fn verify(
    h: &AuthHeader,
    key: &[u8],
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now: u64,
) -> Result<(), AuthError> {
    let skew = h.timestamp as i64 - now as i64;
    if skew.unsigned_abs() > MAX_CLOCK_SKEW_SECS {
        return Err(AuthError::Skew(skew));
    }
    let body_hash = hex::encode(Sha256::digest(body));
    let msg = signed_request_message(method, path_and_query, h.timestamp, &h.nonce, &body_hash);
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| AuthError::BadSignature(h.client.clone()))?;
    let key =
        VerifyingKey::from_bytes(&key).map_err(|_| AuthError::BadSignature(h.client.clone()))?;
    let sig = Signature::from_slice(&h.signature)
        .map_err(|_| AuthError::BadSignature(h.client.clone()))?;
    key.verify_strict(&msg, &sig)
        .map_err(|_| AuthError::BadSignature(h.client.clone()))
}

/// Nonces seen within the skew window. In memory: after a restart, a replay within
/// the window is possible only for requests that are idempotent anyway (message
/// submission deduplicates by content hash).
#[derive(Default)]
pub struct NonceCache {
    seen: Mutex<HashMap<(String, String), u64>>,
}

impl NonceCache {
    /// Records the nonce; `Replay` if it was seen within the window.
    pub fn check(&self, client: &str, nonce: &str, now: u64) -> Result<(), AuthError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 100_000 {
            seen.retain(|_, t| now.saturating_sub(*t) <= 2 * MAX_CLOCK_SKEW_SECS);
        }
        let key = (client.to_owned(), nonce.to_owned());
        if let Some(t) = seen.get(&key)
            && now.saturating_sub(*t) <= 2 * MAX_CLOCK_SKEW_SECS
        {
            return Err(AuthError::Replay);
        }
        seen.insert(key, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use entente_wire::api::b64;

    #[test]
    fn sign_parse_verify() {
        let sk = SigningKey::from_bytes(&[9; 32]);
        let body = b"{}";
        let msg = signed_request_message(
            "POST",
            "/v1/rooms",
            1000,
            "n1",
            &hex::encode(Sha256::digest(body)),
        );
        let sig = b64::encode(&sk.sign(&msg).to_bytes());
        let hv = format!(
            r#"Entente client="mimi://a.example/d/alice/p", ts="1000", nonce="n1", sig="{sig}""#
        );
        let h = parse_header(&hv).unwrap();
        let pk = sk.verifying_key().to_bytes();
        verify(&h, &pk, "POST", "/v1/rooms", body, 1010).unwrap();
        assert!(matches!(
            verify(&h, &pk, "POST", "/v1/rooms", b"{ }", 1010),
            Err(AuthError::BadSignature(_))
        ));
        assert!(matches!(
            verify(&h, &pk, "GET", "/v1/rooms", body, 1010),
            Err(AuthError::BadSignature(_))
        ));
        assert!(matches!(
            verify(&h, &pk, "POST", "/v1/rooms", body, 5000),
            Err(AuthError::Skew(_))
        ));
        let cache = NonceCache::default();
        cache.check(&h.client, &h.nonce, 1010).unwrap();
        assert_eq!(
            cache.check(&h.client, &h.nonce, 1011),
            Err(AuthError::Replay)
        );
    }

    #[test]
    fn malformed_headers() {
        for bad in [
            "",
            "Bearer x",
            "Entente client=x",
            r#"Entente client="a", ts="x", nonce="n", sig="AA==""#,
        ] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
    }
}
