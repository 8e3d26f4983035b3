//! Provider-certified client credentials and safety numbers.
//!
//! This is the report's public-key infrastructure: a provider vouches for the
//! signature keys of its users' clients, so trust is inherited from the provider's
//! domain. Every provider holds a long-term Ed25519 *issuer key*; it signs a
//! [`ClientCertificate`] binding a client URI (`mimi://b.example/d/bob/<device>`) and
//! its user to the client's MLS signature key. Any client anywhere verifies such a
//! certificate against the issuer key of the certificate's domain.
//!
//! A lying provider could certify a key of its own for one of its users. Safety
//! numbers ([`safety_number`]) let two people compare, out of band, the keys their
//! clients actually use, and so catch it.
//!
//! Wire format (TLS presentation language, version 1):
//!
//! ```text
//! struct {
//!     uint8 version = 1;
//!     opaque client_uri<V>;
//!     opaque signature_key<V>;      /* MLS SignaturePublicKey, Ed25519 */
//!     uint64 not_before;            /* seconds since the UNIX epoch */
//!     uint64 not_after;
//! } ClientCertificateTBS;
//!
//! struct {
//!     ClientCertificateTBS tbs;
//!     opaque issuer_signature<V>;   /* Ed25519 over "entente client certificate v1" || tbs */
//! } ClientCertificate;
//! ```
//!
//! The certificate travels as the identity of an MLS `BasicCredential`
//! (see `docs/DIVERGENCES.md`).

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use entente_wire::ids::{ClientId, Domain, UserId};
use sha2::{Digest, Sha512};
use tls_codec::{Deserialize as _, Serialize as _, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};
use zeroize::Zeroize;

/// Version byte of [`ClientCertificate`].
pub const CERTIFICATE_VERSION: u8 = 1;
const CERTIFICATE_LABEL: &[u8] = b"entente client certificate v1";
/// Largest certificate we accept, far above any real one.
pub const MAX_CERTIFICATE_LEN: usize = 4096;

/// Errors verifying or decoding a client certificate. The peer is at fault for all
/// of them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    #[error("client certificate is malformed: {0}")]
    Malformed(String),
    #[error("client certificate has version {0}; this version understands only 1")]
    UnsupportedVersion(u8),
    #[error("client certificate names {found}, expected {expected}")]
    WrongSubject { expected: String, found: String },
    #[error(
        "client certificate for {client} is not signed by {domain}'s issuer key: \
         it is forged or the issuer key is wrong"
    )]
    BadSignature { client: String, domain: String },
    #[error(
        "client certificate for {client} is valid from {not_before} to {not_after}, not at {now}"
    )]
    Expired {
        client: String,
        not_before: u64,
        not_after: u64,
        now: u64,
    },
    #[error("client certificate's signature key is not a valid Ed25519 key")]
    BadKey,
}

#[derive(Debug, Clone, PartialEq, Eq, TlsSize, TlsSerialize, TlsDeserialize)]
struct CertificateTbs {
    version: u8,
    client_uri: VLBytes,
    signature_key: VLBytes,
    not_before: u64,
    not_after: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, TlsSize, TlsSerialize, TlsDeserialize)]
struct CertificateWire {
    tbs: CertificateTbs,
    issuer_signature: VLBytes,
}

/// A provider's long-term issuer key. Secret: zeroized on drop, no `Debug`.
pub struct IssuerKey {
    domain: Domain,
    key: SigningKey,
}

impl IssuerKey {
    /// A fresh issuer key for `domain`.
    pub fn generate(domain: Domain) -> Self {
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut seed);
        let key = SigningKey::from_bytes(&seed);
        seed.zeroize();
        Self { domain, key }
    }

    /// Restores a key from its 32-byte seed.
    pub fn from_seed(domain: Domain, seed: &[u8; 32]) -> Self {
        Self {
            domain,
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The 32-byte seed, for storing the key.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The public half, to publish.
    pub fn public(&self) -> IssuerPublicKey {
        IssuerPublicKey {
            domain: self.domain.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// MLS `SignWithLabel` with the issuer key: the hub signs MIMI responses
    /// (such as a GroupInfoResponse) with it, and clients check them against the
    /// issuer key they pinned for the hub's domain.
    pub fn sign_with_label(
        &self,
        label: &str,
        content: &[u8],
    ) -> Result<Vec<u8>, crate::mls::MlsCheckError> {
        use ed25519_dalek::Signer as _;
        let msg = crate::mls::sign_content(label, content)?;
        Ok(self.key.sign(&msg).to_bytes().to_vec())
    }

    /// Certifies `signature_key` as the key of `client`, valid in
    /// `[not_before, not_after]` (seconds since the UNIX epoch).
    ///
    /// Returns [`IssueError`] if the client is not one of this provider's.
    pub fn certify(
        &self,
        client: &ClientId,
        signature_key: &[u8],
        not_before: u64,
        not_after: u64,
    ) -> Result<ClientCertificate, IssueError> {
        if client.domain() != &self.domain {
            return Err(IssueError::ForeignClient {
                client: client.to_string(),
                domain: self.domain.to_string(),
            });
        }
        let tbs = CertificateTbs {
            version: CERTIFICATE_VERSION,
            client_uri: client.to_string().into_bytes().into(),
            signature_key: signature_key.to_vec().into(),
            not_before,
            not_after,
        };
        let tbs_bytes = tbs
            .tls_serialize_detached()
            .map_err(|e| IssueError::Encode(e.to_string()))?;
        let signature = self.key.sign(&labelled(&tbs_bytes));
        let wire = CertificateWire {
            tbs,
            issuer_signature: signature.to_bytes().to_vec().into(),
        };
        let bytes = wire
            .tls_serialize_detached()
            .map_err(|e| IssueError::Encode(e.to_string()))?;
        Ok(ClientCertificate {
            client: client.clone(),
            signature_key: signature_key.to_vec(),
            not_before,
            not_after,
            bytes,
        })
    }
}

impl Drop for IssuerKey {
    fn drop(&mut self) {
        // SigningKey zeroizes itself on drop (ed25519-dalek's `zeroize` feature);
        // nothing else here is secret.
    }
}

/// Errors issuing a certificate: the caller misused the API.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("{domain} cannot certify {client}: it belongs to another provider")]
    ForeignClient { client: String, domain: String },
    #[error("encoding the certificate failed: {0}")]
    Encode(String),
}

/// The public issuer key of a provider's domain.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuerPublicKey {
    pub domain: Domain,
    key: VerifyingKey,
}

impl std::fmt::Debug for IssuerPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IssuerPublicKey({}, {})",
            self.domain,
            hex::encode(self.key.as_bytes())
        )
    }
}

impl IssuerPublicKey {
    pub fn from_bytes(domain: Domain, bytes: &[u8]) -> Result<Self, CertificateError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CertificateError::BadKey)?;
        let key = VerifyingKey::from_bytes(&arr).map_err(|_| CertificateError::BadKey)?;
        Ok(Self { domain, key })
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
}

/// A verified (or freshly issued) client certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    client: ClientId,
    signature_key: Vec<u8>,
    not_before: u64,
    not_after: u64,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            client,
            signature_key,
            not_before,
            not_after,
            bytes: _,
        } = self;
        f.debug_struct("ClientCertificate")
            .field("client", &client.to_string())
            .field("signature_key", &hex::encode(signature_key))
            .field("not_before", not_before)
            .field("not_after", not_after)
            .finish()
    }
}

/// The claims of a certificate that has been decoded but not yet verified.
#[derive(Debug, Clone)]
pub struct UnverifiedCertificate {
    wire: CertificateWire,
    client: ClientId,
}

impl UnverifiedCertificate {
    /// Decodes a certificate. Rejects trailing bytes, unknown versions and invalid
    /// client URIs.
    pub fn decode(bytes: &[u8]) -> Result<Self, CertificateError> {
        if bytes.len() > MAX_CERTIFICATE_LEN {
            return Err(CertificateError::Malformed(format!(
                "{} bytes, more than the {MAX_CERTIFICATE_LEN} allowed",
                bytes.len()
            )));
        }
        // The reader-based decoder: tls_codec's `*Bytes` decoders can hit a debug
        // assertion on truncated input.
        let wire = CertificateWire::tls_deserialize_exact(bytes)
            .map_err(|e| CertificateError::Malformed(e.to_string()))?;
        if wire.tbs.version != CERTIFICATE_VERSION {
            return Err(CertificateError::UnsupportedVersion(wire.tbs.version));
        }
        let uri = std::str::from_utf8(wire.tbs.client_uri.as_slice())
            .map_err(|_| CertificateError::Malformed("client URI is not UTF-8".into()))?;
        let client: ClientId = uri
            .parse()
            .map_err(|e| CertificateError::Malformed(format!("client URI: {e}")))?;
        Ok(Self { wire, client })
    }

    /// The client the certificate claims to be for.
    pub fn claimed_client(&self) -> &ClientId {
        &self.client
    }

    /// Verifies the issuer signature with the key of the claimed client's domain,
    /// and the validity period at `now` (seconds since the UNIX epoch).
    pub fn verify(
        self,
        issuer: &IssuerPublicKey,
        now: u64,
    ) -> Result<ClientCertificate, CertificateError> {
        let domain_err = || CertificateError::BadSignature {
            client: self.client.to_string(),
            domain: self.client.domain().to_string(),
        };
        if &issuer.domain != self.client.domain() {
            return Err(domain_err());
        }
        let tbs_bytes = self
            .wire
            .tbs
            .tls_serialize_detached()
            .map_err(|e| CertificateError::Malformed(e.to_string()))?;
        let sig = Signature::from_slice(self.wire.issuer_signature.as_slice())
            .map_err(|_| domain_err())?;
        issuer
            .key
            .verify(&labelled(&tbs_bytes), &sig)
            .map_err(|_| domain_err())?;
        let tbs = &self.wire.tbs;
        if now < tbs.not_before || now > tbs.not_after {
            return Err(CertificateError::Expired {
                client: self.client.to_string(),
                not_before: tbs.not_before,
                not_after: tbs.not_after,
                now,
            });
        }
        let sk = tbs.signature_key.as_slice();
        if sk.len() != 32 {
            return Err(CertificateError::BadKey);
        }
        let bytes = self
            .wire
            .tls_serialize_detached()
            .map_err(|e| CertificateError::Malformed(e.to_string()))?;
        Ok(ClientCertificate {
            client: self.client,
            signature_key: sk.to_vec(),
            not_before: tbs.not_before,
            not_after: tbs.not_after,
            bytes,
        })
    }
}

impl ClientCertificate {
    pub fn client(&self) -> &ClientId {
        &self.client
    }

    pub fn user(&self) -> &UserId {
        self.client.user()
    }

    /// The certified MLS signature public key.
    pub fn signature_key(&self) -> &[u8] {
        &self.signature_key
    }

    pub fn not_before(&self) -> u64 {
        self.not_before
    }

    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// Checks the validity period at `now` (seconds since the UNIX epoch), with the
    /// error [`UnverifiedCertificate::verify`] gives.
    pub fn check_validity(&self, now: u64) -> Result<(), CertificateError> {
        if now < self.not_before || now > self.not_after {
            return Err(CertificateError::Expired {
                client: self.client.to_string(),
                not_before: self.not_before,
                not_after: self.not_after,
                now,
            });
        }
        Ok(())
    }

    /// The encoded certificate, as carried in an MLS credential.
    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn labelled(tbs: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CERTIFICATE_LABEL.len() + tbs.len());
    m.extend_from_slice(CERTIFICATE_LABEL);
    m.extend_from_slice(tbs);
    m
}

/// One side of a safety number: a user and the signature keys of all of their
/// clients that take part in the conversation.
#[derive(Debug, Clone)]
pub struct SafetyParty<'a> {
    pub user: &'a UserId,
    pub client_keys: Vec<&'a [u8]>,
}

const SAFETY_ITERATIONS: usize = 5200;
const SAFETY_VERSION: u16 = 0;

/// A 60-digit safety number for the conversation between two users, the same on both
/// sides, in the shape of Signal's numeric fingerprints: each side contributes 30
/// digits derived by iterated SHA-512 over its user URI and the sorted signature keys
/// of its clients; the two halves are ordered so both users see the same number.
///
/// It changes whenever either user's set of client keys changes, so a provider that
/// slips in a key of its own is caught when the users compare numbers.
pub fn safety_number(a: &SafetyParty<'_>, b: &SafetyParty<'_>) -> String {
    let mut ha = safety_half(a);
    let mut hb = safety_half(b);
    if hb < ha {
        std::mem::swap(&mut ha, &mut hb);
    }
    format!("{ha}{hb}")
}

/// Formats a safety number in groups of five digits for people to read.
pub fn format_safety_number(number: &str) -> String {
    number
        .as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn safety_half(p: &SafetyParty<'_>) -> String {
    let mut keys: Vec<&[u8]> = p.client_keys.clone();
    keys.sort();
    keys.dedup();
    let mut key_blob = Vec::new();
    for k in &keys {
        key_blob.extend_from_slice(&(k.len() as u32).to_be_bytes());
        key_blob.extend_from_slice(k);
    }
    let uri = p.user.to_string();
    let mut hash = {
        let mut h = Sha512::new();
        h.update(SAFETY_VERSION.to_be_bytes());
        h.update(&key_blob);
        h.update((uri.len() as u32).to_be_bytes());
        h.update(uri.as_bytes());
        h.finalize()
    };
    for _ in 0..SAFETY_ITERATIONS {
        let mut h = Sha512::new();
        h.update(hash);
        h.update(&key_blob);
        hash = h.finalize();
    }
    let mut out = String::with_capacity(30);
    for chunk in hash[..30].chunks(5) {
        let mut v: u64 = 0;
        for b in chunk {
            v = (v << 8) | u64::from(*b);
        }
        out.push_str(&format!("{:05}", v % 100_000));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(s: &str) -> ClientId {
        s.parse().unwrap()
    }

    #[test]
    fn certify_and_verify() {
        let issuer = IssuerKey::generate("b.example".parse().unwrap());
        let c = client("mimi://b.example/d/bob/phone");
        let cert = issuer.certify(&c, &[7u8; 32], 100, 200).unwrap();
        let v = UnverifiedCertificate::decode(cert.to_bytes())
            .unwrap()
            .verify(&issuer.public(), 150)
            .unwrap();
        assert_eq!(v.client(), &c);
        assert_eq!(v.signature_key(), &[7u8; 32]);
        assert_eq!(v, cert);
    }

    #[test]
    fn forged_by_other_provider_is_rejected() {
        let a = IssuerKey::generate("a.example".parse().unwrap());
        let b = IssuerKey::generate("b.example".parse().unwrap());
        // a.example refuses to issue for b.example's users through the API...
        assert!(
            a.certify(&client("mimi://b.example/d/bob/x"), &[1; 32], 0, 9)
                .is_err()
        );
        // ...and a certificate forged with a.example's key does not verify with b's.
        let forged = IssuerKey::from_seed("b.example".parse().unwrap(), &a.seed())
            .certify(&client("mimi://b.example/d/bob/x"), &[1; 32], 0, 9)
            .unwrap();
        let err = UnverifiedCertificate::decode(forged.to_bytes())
            .unwrap()
            .verify(&b.public(), 5)
            .unwrap_err();
        assert!(
            matches!(err, CertificateError::BadSignature { .. }),
            "{err}"
        );
        // and b's key is not accepted for a client of another domain
        let err = UnverifiedCertificate::decode(forged.to_bytes())
            .unwrap()
            .verify(&a.public(), 5)
            .unwrap_err();
        assert!(matches!(err, CertificateError::BadSignature { .. }));
    }

    #[test]
    fn tampering_expiry_and_garbage() {
        let issuer = IssuerKey::generate("b.example".parse().unwrap());
        let cert = issuer
            .certify(
                &client("mimi://b.example/d/bob/phone"),
                &[7u8; 32],
                100,
                200,
            )
            .unwrap();
        let mut bytes = cert.to_bytes().to_vec();
        let n = bytes.len();
        bytes[n - 70] ^= 1; // inside the signature key or validity
        assert!(
            UnverifiedCertificate::decode(&bytes)
                .and_then(|u| u.verify(&issuer.public(), 150))
                .is_err()
        );
        let err = UnverifiedCertificate::decode(cert.to_bytes())
            .unwrap()
            .verify(&issuer.public(), 201)
            .unwrap_err();
        assert!(matches!(err, CertificateError::Expired { .. }));
        let mut trailing = cert.to_bytes().to_vec();
        trailing.push(0);
        assert!(UnverifiedCertificate::decode(&trailing).is_err());
        for len in 0..cert.to_bytes().len() {
            assert!(UnverifiedCertificate::decode(&cert.to_bytes()[..len]).is_err());
        }
    }

    #[test]
    fn safety_numbers_agree_and_change() {
        let alice: UserId = "alice@a.example".parse().unwrap();
        let bob: UserId = "bob@b.example".parse().unwrap();
        let ka = [1u8; 32];
        let kb = [2u8; 32];
        let kb2 = [3u8; 32];
        let pa = SafetyParty {
            user: &alice,
            client_keys: vec![&ka],
        };
        let pb = SafetyParty {
            user: &bob,
            client_keys: vec![&kb],
        };
        let n1 = safety_number(&pa, &pb);
        assert_eq!(n1.len(), 60);
        assert!(n1.bytes().all(|c| c.is_ascii_digit()));
        assert_eq!(n1, safety_number(&pb, &pa));
        let pb2 = SafetyParty {
            user: &bob,
            client_keys: vec![&kb, &kb2],
        };
        assert_ne!(n1, safety_number(&pa, &pb2));
        let pb3 = SafetyParty {
            user: &bob,
            client_keys: vec![&kb2, &kb],
        };
        assert_eq!(safety_number(&pa, &pb2), safety_number(&pa, &pb3));
        assert_eq!(format_safety_number(&n1).split(' ').count(), 12);
    }
}
