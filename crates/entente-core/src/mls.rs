//! How Entente uses MLS (RFC 9420 via OpenMLS): the ciphersuite, credentials that
//! carry provider-issued certificates, KeyPackage validation, and MLS's labelled
//! signatures for the MIMI structures that need them.

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
