//! The sender certificate: the sender's provider vouches for the sender's identity
//! key (see the module docs of [`super`]).

use ed25519_dalek::{Signature, VerifyingKey};
use entente_wire::ids::{ClientId, Domain, UserId};
use prost::Message as _;

use super::{
    CERTIFICATE_LABEL, ED25519_SIGNATURE_LEN, MAX_CERTIFICATE_LEN, SealedSenderError, missing,
    protobuf,
};
use crate::identity::{IssuerKey, IssuerPublicKey};
use crate::signal::keys::PublicKey;

/// A sender certificate: the sender's provider vouches that the user and client
/// named use `identity_key` until `expires_ms`. Decoded certificates are not trusted
/// until [`verify`](Self::verify) succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderCertificate {
    /// The user's URI, `mimi://a.example/u/alice`.
    pub sender_user: String,
    /// The client's URI, `mimi://a.example/d/alice/phone`.
    pub sender_client: String,
    /// The Signal device id of the client.
    pub device_id: u32,
    /// The client's identity key.
    pub identity_key: PublicKey,
    /// Expiry, in milliseconds since the UNIX epoch.
    pub expires_ms: u64,
    /// Ed25519 signature by the issuer: `SignWithLabel(CERTIFICATE_LABEL, body)`.
    pub signature: [u8; ED25519_SIGNATURE_LEN],
    /// The issuing provider's domain.
    pub(super) signer_domain: String,
}

impl SenderCertificate {
    /// Certifies that `sender_client` of `sender_user`, Signal device `device_id`,
    /// uses `identity_key` until `expires_ms`. `issuer` must be the user's provider's
    /// key, and the client the user's.
    pub fn issue(
        issuer: &IssuerKey,
        sender_user: &UserId,
        sender_client: &ClientId,
        device_id: u32,
        identity_key: &PublicKey,
        expires_ms: u64,
    ) -> Result<SenderCertificate, SealedSenderError> {
        if sender_client.user() != sender_user {
            return Err(SealedSenderError::ClientNotOfUser {
                client: sender_client.to_string(),
                user: sender_user.to_string(),
            });
        }
        if sender_user.domain() != issuer.domain() {
            return Err(SealedSenderError::ForeignUser {
                user: sender_user.to_string(),
                issuer: issuer.domain().to_string(),
            });
        }
        let mut certificate = SenderCertificate {
            sender_user: sender_user.to_string(),
            sender_client: sender_client.to_string(),
            device_id,
            identity_key: *identity_key,
            expires_ms,
            signature: [0; ED25519_SIGNATURE_LEN],
            signer_domain: issuer.domain().to_string(),
        };
        let signature = issuer
            .sign_with_label(CERTIFICATE_LABEL, &certificate.body())
            .map_err(|_| SealedSenderError::Bug("encoding SignContent failed"))?;
        certificate.signature = signature
            .try_into()
            .map_err(|_| SealedSenderError::Bug("an Ed25519 signature is not 64 bytes"))?;
        Ok(certificate)
    }

    /// The certificate as it travels (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        CertificateProto {
            certificate: Some(self.body()),
            signature: Some(self.signature.to_vec()),
        }
        .encode_to_vec()
    }

    /// Decodes a certificate, refusing any encoding but the one [`encode`](Self::encode)
    /// makes and identifiers that are not canonical URIs. Does not verify it.
    pub fn decode(bytes: &[u8]) -> Result<SenderCertificate, SealedSenderError> {
        const WHAT: &str = "sender certificate";
        const BODY: &str = "sender certificate body";
        if bytes.len() > MAX_CERTIFICATE_LEN {
            return Err(SealedSenderError::CertificateTooLong(bytes.len()));
        }
        let outer = CertificateProto::decode(bytes).map_err(|e| protobuf(WHAT, &e))?;
        let body = outer.certificate.ok_or(missing(WHAT, "certificate"))?;
        let signature = outer.signature.ok_or(missing(WHAT, "signature"))?;
        let signature =
            signature
                .as_slice()
                .try_into()
                .map_err(|_| SealedSenderError::FieldLength {
                    field: "certificate signature",
                    len: signature.len(),
                    expected: ED25519_SIGNATURE_LEN,
                })?;
        let body = CertificateBodyProto::decode(body.as_slice()).map_err(|e| protobuf(BODY, &e))?;
        let identity_key = body.identity_key.ok_or(missing(BODY, "identityKey"))?;
        let certificate = SenderCertificate {
            sender_user: body.sender_user.ok_or(missing(BODY, "senderUser"))?,
            sender_client: body.sender_client.ok_or(missing(BODY, "senderClient"))?,
            device_id: body.sender_device.ok_or(missing(BODY, "senderDevice"))?,
            identity_key: PublicKey::decode(&identity_key).map_err(|source| {
                SealedSenderError::BadKey {
                    field: "certificate identity key",
                    source,
                }
            })?,
            expires_ms: body.expires.ok_or(missing(BODY, "expires"))?,
            signature,
            signer_domain: body.signer.ok_or(missing(BODY, "signer"))?,
        };
        certificate.identifiers()?;
        if certificate.encode() != bytes {
            return Err(SealedSenderError::NotCanonical);
        }
        Ok(certificate)
    }

    /// The domain whose issuer key must verify this certificate: the sender's.
    pub fn sender_domain(&self) -> Result<Domain, SealedSenderError> {
        Ok(self.identifiers()?.0.domain().clone())
    }

    /// The domain the certificate names as its signer.
    pub fn signer_domain(&self) -> &str {
        &self.signer_domain
    }

    /// Checks that `issuer` (the key of [`sender_domain`](Self::sender_domain)) signed
    /// this certificate, that the client is the user's and the signer the user's
    /// provider, and that the certificate has not expired at `now_ms` (milliseconds
    /// since the UNIX epoch; expired means `now_ms > expires_ms`, as in libsignal).
    pub fn verify(&self, issuer: &IssuerPublicKey, now_ms: u64) -> Result<(), SealedSenderError> {
        let (user, _client) = self.identifiers()?;
        if user.domain() != &issuer.domain {
            return Err(SealedSenderError::WrongIssuer {
                user: self.sender_user.clone(),
                user_domain: user.domain().to_string(),
                issuer: issuer.domain.to_string(),
            });
        }
        if self.signer_domain != user.domain().as_str() {
            return Err(SealedSenderError::SignerMismatch {
                user: self.sender_user.clone(),
                signer: self.signer_domain.clone(),
            });
        }
        let signed = crate::mls::sign_content(CERTIFICATE_LABEL, &self.body())
            .map_err(|_| SealedSenderError::Bug("encoding SignContent failed"))?;
        let key = VerifyingKey::from_bytes(&issuer.to_bytes())
            .map_err(|_| SealedSenderError::Bug("an IssuerPublicKey is not an Ed25519 key"))?;
        key.verify_strict(&signed, &Signature::from_bytes(&self.signature))
            .map_err(|_| SealedSenderError::BadSignature {
                user: self.sender_user.clone(),
                domain: issuer.domain.to_string(),
            })?;
        if now_ms > self.expires_ms {
            return Err(SealedSenderError::Expired {
                user: self.sender_user.clone(),
                expires_ms: self.expires_ms,
                now_ms,
            });
        }
        Ok(())
    }

    /// The signed body: `SenderCertificate.Certificate`.
    fn body(&self) -> Vec<u8> {
        CertificateBodyProto {
            sender_device: Some(self.device_id),
            expires: Some(self.expires_ms),
            identity_key: Some(self.identity_key.encode().to_vec()),
            sender_user: Some(self.sender_user.clone()),
            sender_client: Some(self.sender_client.clone()),
            signer: Some(self.signer_domain.clone()),
        }
        .encode_to_vec()
    }

    /// The user and client, parsed, each in canonical form, the client the user's.
    fn identifiers(&self) -> Result<(UserId, ClientId), SealedSenderError> {
        let bad =
            |field: &'static str, value: &str, reason: String| SealedSenderError::BadIdentifier {
                field,
                value: value.chars().take(100).collect(),
                reason,
            };
        let user = UserId::parse_uri(&self.sender_user)
            .map_err(|e| bad("user", &self.sender_user, e.to_string()))?;
        if user.to_string() != self.sender_user {
            return Err(bad("user", &self.sender_user, "not canonical".into()));
        }
        let client = ClientId::parse_uri(&self.sender_client)
            .map_err(|e| bad("client", &self.sender_client, e.to_string()))?;
        if client.to_string() != self.sender_client {
            return Err(bad("client", &self.sender_client, "not canonical".into()));
        }
        if client.user() != &user {
            return Err(SealedSenderError::ClientNotOfUser {
                client: self.sender_client.clone(),
                user: self.sender_user.clone(),
            });
        }
        Ok((user, client))
    }
}

/// `SenderCertificate`, as libsignal's.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct CertificateProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(super) certificate: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(super) signature: Option<Vec<u8>>,
}

/// `SenderCertificate.Certificate`, ours (see the module docs).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct CertificateBodyProto {
    #[prost(uint32, optional, tag = "2")]
    pub(super) sender_device: Option<u32>,
    #[prost(fixed64, optional, tag = "3")]
    pub(super) expires: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub(super) identity_key: Option<Vec<u8>>,
    #[prost(string, optional, tag = "6")]
    pub(super) sender_user: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub(super) sender_client: Option<String>,
    #[prost(string, optional, tag = "8")]
    pub(super) signer: Option<String>,
}
