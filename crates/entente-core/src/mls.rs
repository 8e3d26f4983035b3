//! How Entente uses MLS (RFC 9420 via OpenMLS): the ciphersuite, credentials that
//! carry provider-issued certificates, KeyPackage validation, and MLS's labelled
//! signatures for the MIMI structures that need them.

use std::collections::{HashMap, HashSet};

use entente_wire::ids::Domain;
use openmls::prelude::{
    BasicCredential, Ciphersuite, Credential, CredentialType, KeyPackage, KeyPackageIn,
    KeyPackageRef, ProtocolVersion, SignaturePublicKey,
};
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::SignatureScheme;
use tls_codec::{Serialize as _, TlsSerialize, TlsSize, VLBytes};

use crate::identity::{
    CertificateError, ClientCertificate, IssuerPublicKey, UnverifiedCertificate,
};

/// The one ciphersuite Entente clients use today (MTI of RFC 9420).
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
/// Its signature scheme.
pub const SIGNATURE_SCHEME: SignatureScheme = SignatureScheme::ED25519;

#[derive(Debug, thiserror::Error)]
pub enum MlsCheckError {
    #[error("KeyPackage is invalid: {0}")]
    InvalidKeyPackage(String),
    #[error("KeyPackage uses ciphersuite {0:?}; this provider accepts only {CIPHERSUITE:?}")]
    WrongCiphersuite(Ciphersuite),
    #[error("credential is not a valid Entente certificate: {0}")]
    Credential(#[from] CertificateError),
    #[error("KeyPackage is for {found}, but was uploaded by {expected}")]
    WrongClient { expected: String, found: String },
    #[error("signature key differs from the key certified for {client}")]
    KeyMismatch { client: String },
    #[error(
        "KeyPackage carries a certificate for {client} other than the one its provider \
         issued; make KeyPackages with the current certificate"
    )]
    CertificateMismatch { client: String },
    #[error("signature does not verify")]
    BadSignature,
    #[error("cannot decrypt: wrong key or altered ciphertext")]
    Decrypt,
    #[error("no issuer key is known for {domain}")]
    UnknownIssuer { domain: String },
    #[error("internal error: {0}")]
    Library(String),
}

/// The MLS credential carrying a provider-issued certificate.
pub fn credential_for(cert: &ClientCertificate) -> Credential {
    BasicCredential::new(cert.to_bytes().to_vec()).into()
}

/// Decodes the certificate carried in an MLS credential (not yet verified).
pub fn certificate_in(credential: &Credential) -> Result<UnverifiedCertificate, CertificateError> {
    if credential.credential_type() != CredentialType::Basic {
        return Err(CertificateError::Malformed(format!(
            "credential type {:?}, expected basic",
            credential.credential_type()
        )));
    }
    let basic = BasicCredential::try_from(credential.clone())
        .map_err(|e| CertificateError::Malformed(e.to_string()))?;
    UnverifiedCertificate::decode(basic.identity())
}

/// Verifies that `credential` is a valid certificate from its domain's issuer, and
/// that it certifies `signature_key` (the key the MLS leaf actually uses).
pub fn verify_credential(
    credential: &Credential,
    signature_key: &[u8],
    issuer: &IssuerPublicKey,
    now: u64,
) -> Result<ClientCertificate, MlsCheckError> {
    let cert = certificate_in(credential)?.verify(issuer, now)?;
    if cert.signature_key() != signature_key {
        return Err(MlsCheckError::KeyMismatch {
            client: cert.client().to_string(),
        });
    }
    Ok(cert)
}

/// Where a [`CredentialVerifier`] finds the issuer key of a domain (a client's
/// pinned keys).
pub trait IssuerKeys {
    fn issuer_key(&self, domain: &Domain) -> Option<&IssuerPublicKey>;
}

impl IssuerKeys for HashMap<Domain, IssuerPublicKey> {
    fn issuer_key(&self, domain: &Domain) -> Option<&IssuerPublicKey> {
        self.get(domain)
    }
}

/// A single issuer, for its own domain.
impl IssuerKeys for IssuerPublicKey {
    fn issuer_key(&self, domain: &Domain) -> Option<&IssuerPublicKey> {
        (&self.domain == domain).then_some(self)
    }
}

/// Most certificates a [`CredentialVerifier`] remembers; past this it starts over.
const MAX_REMEMBERED: usize = 1 << 16;

/// Verifies members' credentials exactly as [`verify_credential`] does, but
/// remembers the certificates it verified so that none is verified twice.
///
/// A client meets the same certificates again and again: with every message and
/// commit of a member, in every room it shares with us, twice in a Welcome whose
/// tree lists a device that is also being added. The issuer's signature over a
/// certificate's bytes is checked once per issuer key; a later meeting of the same
/// bytes under the same issuer key rechecks what can differ: the validity period
/// at `now` and that the leaf uses the certified signature key.
#[derive(Default)]
pub struct CredentialVerifier {
    /// By the credential's content (the encoded certificate).
    verified: HashMap<Vec<u8>, Verified>,
}

struct Verified {
    issuer: [u8; 32],
    cert: ClientCertificate,
}

impl CredentialVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies that `credential` is a valid certificate from its domain's issuer in
    /// `issuers`, and that it certifies `signature_key`.
    pub fn verify(
        &mut self,
        credential: &Credential,
        signature_key: &[u8],
        issuers: &impl IssuerKeys,
        now: u64,
    ) -> Result<ClientCertificate, MlsCheckError> {
        let cert = match self.known(credential, issuers) {
            Some(known) => {
                known.check_validity(now)?;
                known.clone()
            }
            None => {
                let unverified = certificate_in(credential)?;
                let domain = unverified.claimed_client().domain();
                let issuer =
                    issuers
                        .issuer_key(domain)
                        .ok_or_else(|| MlsCheckError::UnknownIssuer {
                            domain: domain.to_string(),
                        })?;
                let cert = unverified.verify(issuer, now)?;
                self.remember(credential.serialized_content(), issuer, cert.clone());
                cert
            }
        };
        if cert.signature_key() != signature_key {
            return Err(MlsCheckError::KeyMismatch {
                client: cert.client().to_string(),
            });
        }
        Ok(cert)
    }

    /// Verifies every leaf (a Welcome's tree, a commit's adds) as [`Self::verify`]
    /// does, and fails with the first invalid one. Returns the certificates in the
    /// leaves' order.
    ///
    /// The issuer signatures of the certificates not met before are checked first,
    /// each once, on several threads when there are many (a Welcome to a large
    /// group); the pass over the leaves then finds them remembered. Whatever that
    /// first step leaves out (a certificate that does not decode or verify) is
    /// checked again, and reported, by that pass.
    pub fn verify_all<'a>(
        &mut self,
        leaves: impl IntoIterator<Item = (&'a Credential, &'a [u8])>,
        issuers: &impl IssuerKeys,
        now: u64,
    ) -> Result<Vec<ClientCertificate>, MlsCheckError> {
        let leaves: Vec<(&Credential, &[u8])> = leaves.into_iter().collect();
        let mut seen = HashSet::new();
        let mut fresh = Vec::new();
        for (credential, _) in &leaves {
            let content = credential.serialized_content();
            if self.known(credential, issuers).is_some() || !seen.insert(content) {
                continue;
            }
            let Ok(unverified) = certificate_in(credential) else {
                continue;
            };
            if let Some(issuer) = issuers.issuer_key(unverified.claimed_client().domain()) {
                fresh.push((content, unverified, issuer));
            }
        }
        for (content, issuer, cert) in check_issuer_signatures(fresh, now) {
            self.remember(content, issuer, cert);
        }
        leaves
            .into_iter()
            .map(|(credential, key)| self.verify(credential, key, issuers, now))
            .collect()
    }

    /// The certificate in `credential` if it was verified before under the issuer
    /// key `issuers` has now for its domain.
    fn known(
        &self,
        credential: &Credential,
        issuers: &impl IssuerKeys,
    ) -> Option<&ClientCertificate> {
        if credential.credential_type() != CredentialType::Basic {
            return None;
        }
        let v = self.verified.get(credential.serialized_content())?;
        let issuer = issuers.issuer_key(v.cert.client().domain())?;
        (issuer.to_bytes() == v.issuer).then_some(&v.cert)
    }

    fn remember(&mut self, content: &[u8], issuer: &IssuerPublicKey, cert: ClientCertificate) {
        if self.verified.len() >= MAX_REMEMBERED {
            self.verified.clear();
        }
        self.verified.insert(
            content.to_vec(),
            Verified {
                issuer: issuer.to_bytes(),
                cert,
            },
        );
    }
}

/// Below this many certificates, checking them on one thread is as quick.
const PARALLEL_FROM: usize = 64;
/// Most threads [`check_issuer_signatures`] uses.
const MAX_THREADS: usize = 8;

type Fresh<'c, 'i> = (&'c [u8], UnverifiedCertificate, &'i IssuerPublicKey);

/// Checks certificates' issuer signatures and validity, on as many threads as the
/// machine has cores (up to [`MAX_THREADS`]) when there are enough of them.
/// Returns those that verify; a thread that cannot be started or fails only leaves
/// its certificates out.
fn check_issuer_signatures<'c, 'i>(
    fresh: Vec<Fresh<'c, 'i>>,
    now: u64,
) -> Vec<(&'c [u8], &'i IssuerPublicKey, ClientCertificate)> {
    let check = move |batch: Vec<Fresh<'c, 'i>>| -> Vec<_> {
        batch
            .into_iter()
            .filter_map(|(content, unverified, issuer)| {
                unverified
                    .verify(issuer, now)
                    .ok()
                    .map(|cert| (content, issuer, cert))
            })
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS);
    if threads < 2 || fresh.len() < PARALLEL_FROM {
        return check(fresh);
    }
    let per_thread = fresh.len().div_ceil(threads);
    let mut batches = Vec::with_capacity(threads);
    let mut rest = fresh;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(per_thread));
        batches.push(std::mem::replace(&mut rest, tail));
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = batches
            .into_iter()
            .filter_map(|batch| {
                std::thread::Builder::new()
                    .name("entente-verify".into())
                    .spawn_scoped(s, move || check(batch))
                    .ok()
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .flatten()
            .collect()
    })
}

/// Validates an uploaded KeyPackage for `client`: signature and lifetime (OpenMLS),
/// our ciphersuite, and a leaf credential that is exactly the client's certificate.
pub fn validate_key_package(
    crypto: &impl OpenMlsCrypto,
    kp: KeyPackageIn,
    client: &ClientCertificate,
) -> Result<(KeyPackage, KeyPackageRef), MlsCheckError> {
    let kp = kp
        .validate(crypto, ProtocolVersion::Mls10)
        .map_err(|e| MlsCheckError::InvalidKeyPackage(e.to_string()))?;
    if kp.ciphersuite() != CIPHERSUITE {
        return Err(MlsCheckError::WrongCiphersuite(kp.ciphersuite()));
    }
    let leaf = kp.leaf_node();
    let cert = certificate_in(leaf.credential())?;
    if cert.claimed_client() != client.client() {
        return Err(MlsCheckError::WrongClient {
            expected: client.client().to_string(),
            found: cert.claimed_client().to_string(),
        });
    }
    if leaf.credential().serialized_content() != credential_for(client).serialized_content() {
        return Err(MlsCheckError::CertificateMismatch {
            client: client.client().to_string(),
        });
    }
    if leaf.signature_key().as_slice() != client.signature_key() {
        return Err(MlsCheckError::KeyMismatch {
            client: client.client().to_string(),
        });
    }
    let r = kp
        .hash_ref(crypto)
        .map_err(|e| MlsCheckError::Library(e.to_string()))?;
    Ok((kp, r))
}

/// RFC 9420 section 5.1.2 `SignContent`.
#[derive(TlsSize, TlsSerialize)]
struct SignContent {
    label: VLBytes,
    content: VLBytes,
}

/// The bytes MLS `SignWithLabel(key, label, content)` signs.
pub fn sign_content(label: &str, content: &[u8]) -> Result<Vec<u8>, MlsCheckError> {
    let mut l = b"MLS 1.0 ".to_vec();
    l.extend_from_slice(label.as_bytes());
    SignContent {
        label: l.into(),
        content: content.to_vec().into(),
    }
    .tls_serialize_detached()
    .map_err(|e| MlsCheckError::Library(e.to_string()))
}

/// MLS `VerifyWithLabel`.
pub fn verify_with_label(
    crypto: &impl OpenMlsCrypto,
    key: &SignaturePublicKey,
    label: &str,
    content: &[u8],
    signature: &[u8],
) -> Result<(), MlsCheckError> {
    let msg = sign_content(label, content)?;
    crypto
        .verify_signature(SIGNATURE_SCHEME, &msg, key.as_slice(), signature)
        .map_err(|_| MlsCheckError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{CertificateError, IssuerKey};
    use entente_wire::ids::ClientId;

    fn issuer(domain: &str) -> IssuerKey {
        IssuerKey::generate(domain.parse().unwrap())
    }

    fn cert(issuer: &IssuerKey, client: &str, key: &[u8]) -> ClientCertificate {
        let client: ClientId = client.parse().unwrap();
        issuer.certify(&client, key, 100, 200).unwrap()
    }

    #[test]
    fn verifier_agrees_with_verify_credential() {
        let b = issuer("b.example");
        let c = cert(&b, "mimi://b.example/d/bob/phone", &[7; 32]);
        let credential = credential_for(&c);
        let mut v = CredentialVerifier::new();
        for _ in 0..2 {
            // first verified, then remembered: the same answers both times
            assert_eq!(
                v.verify(&credential, &[7; 32], &b.public(), 150).unwrap(),
                c
            );
            assert!(matches!(
                v.verify(&credential, &[8; 32], &b.public(), 150),
                Err(MlsCheckError::KeyMismatch { .. })
            ));
            assert!(matches!(
                v.verify(&credential, &[7; 32], &b.public(), 201),
                Err(MlsCheckError::Credential(CertificateError::Expired { .. }))
            ));
            assert!(matches!(
                v.verify(&credential, &[7; 32], &b.public(), 99),
                Err(MlsCheckError::Credential(CertificateError::Expired { .. }))
            ));
            assert_eq!(
                v.verify(&credential, &[7; 32], &b.public(), 150).unwrap(),
                verify_credential(&credential, &[7; 32], &b.public(), 150).unwrap()
            );
        }
    }

    #[test]
    fn verifier_rechecks_under_another_issuer_key() {
        let b = issuer("b.example");
        let c = cert(&b, "mimi://b.example/d/bob/phone", &[7; 32]);
        let credential = credential_for(&c);
        let mut v = CredentialVerifier::new();
        v.verify(&credential, &[7; 32], &b.public(), 150).unwrap();
        // Another key for the same domain: what was verified under the first one
        // does not count.
        let other = issuer("b.example");
        assert!(matches!(
            v.verify(&credential, &[7; 32], &other.public(), 150),
            Err(MlsCheckError::Credential(
                CertificateError::BadSignature { .. }
            ))
        ));
        // No key for the domain at all.
        let a = issuer("a.example");
        assert!(matches!(
            v.verify(&credential, &[7; 32], &a.public(), 150),
            Err(MlsCheckError::UnknownIssuer { .. })
        ));
        let none: HashMap<Domain, IssuerPublicKey> = HashMap::new();
        assert!(matches!(
            v.verify(&credential, &[7; 32], &none, 150),
            Err(MlsCheckError::UnknownIssuer { .. })
        ));
    }

    #[test]
    fn verifier_never_remembers_a_forgery() {
        let b = issuer("b.example");
        let forger = IssuerKey::from_seed("b.example".parse().unwrap(), &[9; 32]);
        let forged = credential_for(&cert(&forger, "mimi://b.example/d/bob/x", &[1; 32]));
        let mut v = CredentialVerifier::new();
        for _ in 0..2 {
            assert!(matches!(
                v.verify(&forged, &[1; 32], &b.public(), 150),
                Err(MlsCheckError::Credential(
                    CertificateError::BadSignature { .. }
                ))
            ));
        }
    }

    #[test]
    fn verify_all_fails_on_any_bad_leaf() {
        let b = issuer("b.example");
        let good: Vec<_> = (0..3u8)
            .map(|i| {
                let c = cert(&b, &format!("mimi://b.example/d/u{i}/d"), &[i; 32]);
                (credential_for(&c), vec![i; 32])
            })
            .collect();
        let mut v = CredentialVerifier::new();
        let certs = v
            .verify_all(
                good.iter().map(|(c, k)| (c, k.as_slice())),
                &b.public(),
                150,
            )
            .unwrap();
        assert_eq!(certs.len(), 3);
        assert_eq!(certs[2].signature_key(), &[2; 32]);
        let mut bad = good.clone();
        bad[1].1 = vec![9; 32];
        assert!(
            v.verify_all(bad.iter().map(|(c, k)| (c, k.as_slice())), &b.public(), 150)
                .is_err()
        );
    }

    #[test]
    fn verify_all_in_parallel_matches_one_by_one() {
        let b = issuer("b.example");
        let forger = IssuerKey::from_seed("b.example".parse().unwrap(), &[9; 32]);
        let mut leaves: Vec<_> = (0..200u8)
            .map(|i| {
                let c = cert(&b, &format!("mimi://b.example/d/u{i}/d"), &[i; 32]);
                (credential_for(&c), vec![i; 32])
            })
            .collect();
        // The same device twice, as in a Welcome that also adds it.
        leaves.push(leaves[3].clone());
        let mut v = CredentialVerifier::new();
        let certs = v
            .verify_all(
                leaves.iter().map(|(c, k)| (c, k.as_slice())),
                &b.public(),
                150,
            )
            .unwrap();
        assert_eq!(certs.len(), 201);
        for (i, c) in certs.iter().enumerate().take(200) {
            assert_eq!(c.signature_key(), &[i as u8; 32]);
        }
        assert_eq!(certs[200], certs[3]);

        // A forged certificate and an expired validity, deep in a fresh batch:
        // the first bad leaf in order is the one reported.
        let mut bad = leaves.clone();
        bad[150] = (
            credential_for(&cert(&forger, "mimi://b.example/d/x/d", &[1; 32])),
            vec![1; 32],
        );
        bad[170].1 = vec![0; 32];
        let mut fresh = CredentialVerifier::new();
        assert!(matches!(
            fresh.verify_all(bad.iter().map(|(c, k)| (c, k.as_slice())), &b.public(), 150),
            Err(MlsCheckError::Credential(
                CertificateError::BadSignature { .. }
            ))
        ));
        assert!(matches!(
            fresh.verify_all(
                leaves.iter().map(|(c, k)| (c, k.as_slice())),
                &b.public(),
                201
            ),
            Err(MlsCheckError::Credential(CertificateError::Expired { .. }))
        ));
    }
}

/// RFC 9420 section 5.1.3 `EncryptContext`.
#[derive(TlsSerialize, TlsSize)]
struct EncryptContext {
    label: VLBytes,
    context: VLBytes,
}

fn encrypt_context(label: &str, context: &[u8]) -> Result<Vec<u8>, MlsCheckError> {
    let mut l = b"MLS 1.0 ".to_vec();
    l.extend_from_slice(label.as_bytes());
    EncryptContext {
        label: l.into(),
        context: context.to_vec().into(),
    }
    .tls_serialize_detached()
    .map_err(|e| MlsCheckError::Library(e.to_string()))
}

/// MLS `EncryptWithLabel` (RFC 9420 section 5.1.3): HPKE base mode with our
/// ciphersuite, `info` = `EncryptContext`, empty `aad`.
pub fn encrypt_with_label(
    crypto: &impl OpenMlsCrypto,
    public_key: &[u8],
    label: &str,
    context: &[u8],
    plaintext: &[u8],
) -> Result<openmls::prelude::HpkeCiphertext, MlsCheckError> {
    let info = encrypt_context(label, context)?;
    crypto
        .hpke_seal(CIPHERSUITE.hpke_config(), public_key, &info, &[], plaintext)
        .map_err(|e| MlsCheckError::Library(format!("HPKE seal: {e:?}")))
}

/// MLS `DecryptWithLabel` (RFC 9420 section 5.1.3).
pub fn decrypt_with_label(
    crypto: &impl OpenMlsCrypto,
    private_key: &openmls_traits::types::HpkePrivateKey,
    label: &str,
    context: &[u8],
    ciphertext: &openmls::prelude::HpkeCiphertext,
) -> Result<Vec<u8>, MlsCheckError> {
    let info = encrypt_context(label, context)?;
    crypto
        .hpke_open(
            CIPHERSUITE.hpke_config(),
            ciphertext,
            private_key,
            &info,
            &[],
        )
        .map_err(|_| MlsCheckError::Decrypt)
}
