//! Sealed sender: libsignal's sealed sender v1 construction, with the sender
//! certificate issued by the sender's provider.
//!
//! A sealed message carries, encrypted to the recipient's identity key, a sender
//! certificate and the content (a Signal message, a sender key message, ...). Only the
//! recipient learns who sent it; the recipient's provider stores and delivers an
//! opaque blob addressed to one of its users.
//!
//! # What it hides, and what it does not
//!
//! The recipient's provider does not learn the sender: not the user, not the client,
//! not the identity key. It still learns:
//!
//! - the sending provider's domain, from the server-to-server hop that delivers the
//!   blob (on a small provider the domain alone may say much);
//! - the recipient, the time of delivery and the size of the blob (content is not
//!   padded here);
//! - whatever a pattern of such deliveries reveals (a reply that follows a message).
//!
//! The sender's own provider learns both ends: the sender submits sealed messages
//! with a client-signed request naming the recipient, unlike Signal, where the
//! sender connects without identifying itself. Sealed sender also carries no delivery
//! token (libsignal's unidentified access keys), so it does not limit who may send.
//!
//! # Construction (libsignal `sealed_sender.rs`, v1)
//!
//! ```text
//! e                       = fresh X25519 key pair
//! e_chain, e_cipher, e_mac = HKDF-SHA256(salt = "UnidentifiedDelivery" || IK_R || e_pub,
//!                                        ikm = DH(e, IK_R), info = "", 96 bytes)
//! encrypted_static        = AES-256-CTR(e_cipher, IV 0, IK_S) || HMAC-SHA256(e_mac, ·)[..10]
//! _, s_cipher, s_mac      = HKDF-SHA256(salt = e_chain || encrypted_static,
//!                                        ikm = DH(IK_S, IK_R), info = "", 96 bytes)
//! encrypted_message       = AES-256-CTR(s_cipher, IV 0, content) || HMAC-SHA256(s_mac, ·)[..10]
//! sealed                  = 0x11 || UnidentifiedSenderMessage
//! ```
//!
//! `IK_R` and `IK_S` are the recipient's and the sender's identity keys in their
//! 33-byte encoding, the MAC covers the ciphertext only, and the counter is libsignal's
//! 128-bit big-endian one. The protobufs (libsignal `sealed_sender.proto`, proto2):
//!
//! ```text
//! message UnidentifiedSenderMessage {
//!   message Message {
//!     optional Type  type              = 1;  // PREKEY_MESSAGE 1, MESSAGE 2,
//!                                            // SENDERKEY_MESSAGE 7, PLAINTEXT_CONTENT 8
//!     optional bytes senderCertificate = 2;  // SenderCertificate below
//!     optional bytes content           = 3;
//!   }
//!   optional bytes ephemeralPublic  = 1;     // e_pub, 33 bytes
//!   optional bytes encryptedStatic  = 2;
//!   optional bytes encryptedMessage = 3;     // the encrypted Message
//! }
//! ```
//!
//! The recipient checks each MAC in constant time before decrypting what it covers,
//! and checks that the certificate names the identity key that sealed the message. It
//! then verifies the certificate ([`SenderCertificate::verify`]) with the issuer key
//! of the certificate's domain ([`SenderCertificate::sender_domain`]).
//!
//! # Where this differs from libsignal
//!
//! The encryption is libsignal's, byte for byte. The certificate is ours: libsignal's
//! is signed with XEdDSA by a server certificate under a trust root that Signal's
//! clients ship; ours is signed by the sender's provider with its Ed25519 issuer key
//! (MLS `SignWithLabel`, label [`CERTIFICATE_LABEL`]), and names the sender by its
//! Entente user and client URIs. Its body keeps the field numbers of libsignal's
//! `SenderCertificate.Certificate` where the meaning is the same:
//!
//! ```text
//! message SenderCertificate {
//!   message Certificate {
//!     optional uint32  senderDevice = 2;
//!     optional fixed64 expires      = 3;   // milliseconds since the UNIX epoch
//!     optional bytes   identityKey  = 4;   // 33 bytes
//!     optional string  senderUser   = 6;   // mimi://a.example/u/alice (libsignal: senderUuid)
//!     optional string  senderClient = 7;   // mimi://a.example/d/alice/phone
//!     optional string  signer       = 8;   // the issuing provider's domain
//!   }
//!   optional bytes certificate = 1;        // Certificate
//!   optional bytes signature   = 2;        // Ed25519, SignWithLabel(CERTIFICATE_LABEL, certificate)
//! }
//! ```
//!
//! Also: only version byte `0x11` is accepted (libsignal also reads `0x0_`, and
//! ignores the low nibble); sealed sender v2 (multi-recipient) is not here; content
//! hints and group ids are neither written nor returned.

use aes::Aes256;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use prost::Message as _;
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::keys::{ENCODED_PUBLIC_KEY_LEN, IdentityKeyPair, KeyDecodeError, PublicKey};

mod certificate;

pub use certificate::SenderCertificate;

/// The sealed sender version implemented here.
pub const SEALED_SENDER_VERSION: u8 = 1;
/// The first byte of a sealed message: the version in both nibbles, as libsignal
/// writes it.
const VERSION_BYTE: u8 = (SEALED_SENDER_VERSION << 4) | SEALED_SENDER_VERSION;
/// The MLS `SignWithLabel` label of sender certificates.
pub const CERTIFICATE_LABEL: &str = "EntenteSenderCertificate";
/// Largest sender certificate accepted, far above any real one.
pub const MAX_CERTIFICATE_LEN: usize = 4096;
/// libsignal's truncated HMAC-SHA256.
const MAC_LEN: usize = 10;
const SALT_PREFIX: &[u8] = b"UnidentifiedDelivery";
const ED25519_SIGNATURE_LEN: usize = 64;

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

/// Why sealing, unsealing or checking a certificate failed. Unless a variant says
/// otherwise, the sender (or whoever altered the message) is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealedSenderError {
    /// An empty sealed message.
    #[error("the sealed message is empty")]
    Empty,
    /// A version byte other than `0x11`.
    #[error(
        "sealed message has version byte 0x{0:02x}; only sealed sender v1 (0x11) is understood"
    )]
    UnsupportedVersion(u8),
    /// A protobuf does not decode.
    #[error("{what} is not valid protobuf: {reason}")]
    Protobuf {
        /// Which structure.
        what: &'static str,
        /// prost's explanation.
        reason: String,
    },
    /// A required field is absent.
    #[error("{what} lacks its {field} field")]
    MissingField {
        /// Which structure.
        what: &'static str,
        /// Which field.
        field: &'static str,
    },
    /// A field has the wrong length.
    #[error("{field} is {len} bytes, expected {expected}")]
    FieldLength {
        /// Which field.
        field: &'static str,
        /// The length received.
        len: usize,
        /// The length required.
        expected: usize,
    },
    /// A field is shorter than its MAC.
    #[error("{field} is {len} bytes, shorter than its {MAC_LEN}-byte MAC")]
    TooShort {
        /// Which field.
        field: &'static str,
        /// The length received.
        len: usize,
    },
    /// A public key does not decode.
    #[error("{field} is not a valid public key: {source}")]
    BadKey {
        /// Which key.
        field: &'static str,
        /// Why.
        #[source]
        source: KeyDecodeError,
    },
    /// A key has small order: X25519 with it gives all zeros. When sealing, the
    /// caller passed an invalid recipient key.
    #[error("the {key} has small order (X25519 with it gives all zeros)")]
    SmallOrderKey {
        /// Which key.
        key: &'static str,
    },
    /// A MAC does not verify: the message was sealed for another recipient, or
    /// altered.
    #[error(
        "the sealed message's {part} fails its MAC: it is sealed for another recipient, or altered"
    )]
    BadMac {
        /// Which part.
        part: SealedPart,
    },
    /// A content type libsignal does not define.
    #[error("the sealed message has unknown content type {0}")]
    UnknownContentType(i32),
    /// The certificate is longer than [`MAX_CERTIFICATE_LEN`].
    #[error("the sender certificate is {0} bytes, more than the {MAX_CERTIFICATE_LEN} allowed")]
    CertificateTooLong(usize),
    /// The certificate decodes, but is not in the one encoding we write.
    #[error(
        "the sender certificate is not canonically encoded (field order, defaults or unknown fields)"
    )]
    NotCanonical,
    /// An identifier in the certificate is invalid or not in canonical form.
    #[error("the sender certificate's {field} '{value}' is not a canonical {field} URI: {reason}")]
    BadIdentifier {
        /// Which field.
        field: &'static str,
        /// The value received.
        value: String,
        /// Why.
        reason: String,
    },
    /// The certificate names a client of another user. When issuing, the caller
    /// passed them.
    #[error("{client} is not a client of {user}")]
    ClientNotOfUser {
        /// The client.
        client: String,
        /// The user.
        user: String,
    },
    /// The caller asked a provider to certify another provider's user.
    #[error("{issuer} cannot certify {user}: the user belongs to another provider")]
    ForeignUser {
        /// The user.
        user: String,
        /// The issuing provider's domain.
        issuer: String,
    },
    /// The caller verified a certificate with another domain's issuer key.
    #[error(
        "the sender certificate of {user} is checked with {user_domain}'s issuer key, not {issuer}'s"
    )]
    WrongIssuer {
        /// The certified user.
        user: String,
        /// The user's domain.
        user_domain: String,
        /// The domain of the key the caller passed.
        issuer: String,
    },
    /// The certificate names a signer other than the user's provider.
    #[error(
        "the sender certificate of {user} names {signer} as its signer, not the user's provider"
    )]
    SignerMismatch {
        /// The certified user.
        user: String,
        /// The signer it names.
        signer: String,
    },
    /// The signature does not verify: the certificate is forged or altered, or the
    /// issuer key is wrong.
    #[error("the sender certificate of {user} is not signed by {domain}'s issuer key")]
    BadSignature {
        /// The certified user.
        user: String,
        /// The domain whose key was used.
        domain: String,
    },
    /// The certificate has expired.
    #[error("the sender certificate of {user} expired at {expires_ms} ms; it is now {now_ms} ms")]
    Expired {
        /// The certified user.
        user: String,
        /// Its expiry, in milliseconds since the UNIX epoch.
        expires_ms: u64,
        /// The time of the check.
        now_ms: u64,
    },
    /// The certificate certifies another identity key than the one that sealed the
    /// message: someone sealed with a certificate not theirs.
    #[error(
        "the sender certificate certifies another identity key than the one that sealed the message"
    )]
    IdentityMismatch,
    /// The caller tried to seal with a certificate for another identity key.
    #[error("the sender certificate certifies another identity key than the sender's own")]
    CertificateNotOurs,
    /// A bug in Entente, not anyone's input.
    #[error("bug in entente: {0}")]
    Bug(&'static str),
}

/// The two encrypted parts of a sealed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedPart {
    /// `encryptedStatic`: the sender's identity key.
    Static,
    /// `encryptedMessage`: certificate and content.
    Message,
}

impl std::fmt::Display for SealedPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SealedPart::Static => "encrypted sender identity",
            SealedPart::Message => "encrypted message",
        })
    }
}

/// What the sealed content is (libsignal `UnidentifiedSenderMessage.Message.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// A `PreKeySignalMessage` (`PREKEY_MESSAGE`, 1).
    PreKey,
    /// A `SignalMessage` (`MESSAGE`, 2).
    Whisper,
    /// A `SenderKeyMessage` (`SENDERKEY_MESSAGE`, 7).
    SenderKey,
    /// `PlaintextContent` (`PLAINTEXT_CONTENT`, 8).
    Plaintext,
}

impl ContentType {
    /// The protobuf enum value.
    pub const fn to_wire(self) -> i32 {
        match self {
            ContentType::PreKey => 1,
            ContentType::Whisper => 2,
            ContentType::SenderKey => 7,
            ContentType::Plaintext => 8,
        }
    }

    /// The content type of a protobuf enum value, if libsignal defines it.
    pub const fn from_wire(value: i32) -> Option<Self> {
        match value {
            1 => Some(ContentType::PreKey),
            2 => Some(ContentType::Whisper),
            7 => Some(ContentType::SenderKey),
            8 => Some(ContentType::Plaintext),
            _ => None,
        }
    }
}

/// Seals `content` for `recipient_identity`: only its holder can learn that `sender`
/// (certified by `certificate`) sent it.
pub fn seal<R: RngCore + CryptoRng>(
    sender: &IdentityKeyPair,
    certificate: &SenderCertificate,
    recipient_identity: &PublicKey,
    content_type: ContentType,
    content: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, SealedSenderError> {
    if certificate.identity_key != sender.public() {
        return Err(SealedSenderError::CertificateNotOurs);
    }
    seal_unchecked(
        sender,
        certificate,
        recipient_identity,
        content_type,
        content,
        rng,
    )
}

/// A sealed message, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsealed {
    /// The sender's certificate, not yet verified: check it with
    /// [`SenderCertificate::verify`] and the issuer key of its
    /// [`sender_domain`](SenderCertificate::sender_domain). It certifies the identity
    /// key that sealed the message.
    pub certificate: SenderCertificate,
    /// What `content` is.
    pub content_type: ContentType,
    /// The content.
    pub content: Vec<u8>,
}

/// Opens a sealed message addressed to `recipient`, checking both MACs before
/// decrypting and that the certificate inside certifies the identity key that sealed
/// it. The certificate itself is not verified here.
pub fn unseal(recipient: &IdentityKeyPair, sealed: &[u8]) -> Result<Unsealed, SealedSenderError> {
    const INNER: &str = "sealed message content";
    let (static_key, inner) = open_layers(recipient, sealed)?;
    let inner = InnerProto::decode(inner.as_slice()).map_err(|e| protobuf(INNER, &e))?;
    let content_type = inner.r#type.ok_or(missing(INNER, "type"))?;
    let content_type = ContentType::from_wire(content_type)
        .ok_or(SealedSenderError::UnknownContentType(content_type))?;
    let certificate = SenderCertificate::decode(
        &inner
            .sender_certificate
            .ok_or(missing(INNER, "senderCertificate"))?,
    )?;
    let content = inner.content.ok_or(missing(INNER, "content"))?;
    if !bool::from(
        static_key
            .encode()
            .ct_eq(&certificate.identity_key.encode()),
    ) {
        return Err(SealedSenderError::IdentityMismatch);
    }
    Ok(Unsealed {
        certificate,
        content_type,
        content,
    })
}

/// The two encryption layers of [`unseal`]: the sender's identity key and the
/// encoded `UnidentifiedSenderMessage.Message`.
fn open_layers(
    recipient: &IdentityKeyPair,
    sealed: &[u8],
) -> Result<(PublicKey, Vec<u8>), SealedSenderError> {
    const WHAT: &str = "sealed message";
    let (&version, body) = sealed.split_first().ok_or(SealedSenderError::Empty)?;
    if version != VERSION_BYTE {
        return Err(SealedSenderError::UnsupportedVersion(version));
    }
    let outer = OuterProto::decode(body).map_err(|e| protobuf(WHAT, &e))?;
    let ephemeral = outer
        .ephemeral_public
        .ok_or(missing(WHAT, "ephemeralPublic"))?;
    let encrypted_static = outer
        .encrypted_static
        .ok_or(missing(WHAT, "encryptedStatic"))?;
    let encrypted_message = outer
        .encrypted_message
        .ok_or(missing(WHAT, "encryptedMessage"))?;
    let ephemeral = PublicKey::decode(&ephemeral).map_err(|source| SealedSenderError::BadKey {
        field: "ephemeral public key",
        source,
    })?;
    if encrypted_static.len() != ENCODED_PUBLIC_KEY_LEN + MAC_LEN {
        return Err(SealedSenderError::FieldLength {
            field: "encrypted static key",
            len: encrypted_static.len(),
            expected: ENCODED_PUBLIC_KEY_LEN + MAC_LEN,
        });
    }

    let shared =
        recipient
            .private()
            .agree(&ephemeral)
            .map_err(|_| SealedSenderError::SmallOrderKey {
                key: "ephemeral key",
            })?;
    let ephemeral_keys = ChainKeys::ephemeral(&recipient.public(), &ephemeral, &shared)?;
    let static_key = ephemeral_keys.open(&encrypted_static, SealedPart::Static)?;
    let static_key =
        PublicKey::decode(&static_key).map_err(|source| SealedSenderError::BadKey {
            field: "sender identity key",
            source,
        })?;
    let shared =
        recipient
            .private()
            .agree(&static_key)
            .map_err(|_| SealedSenderError::SmallOrderKey {
                key: "sender identity key",
            })?;
    let static_keys = ChainKeys::static_keys(&ephemeral_keys.chain, &encrypted_static, &shared)?;
    let inner = static_keys.open(&encrypted_message, SealedPart::Message)?;
    Ok((static_key, inner))
}

/// [`seal`] without checking that the certificate is the sender's: tests use it to
/// play a sender who seals with someone else's certificate.
fn seal_unchecked<R: RngCore + CryptoRng>(
    sender: &IdentityKeyPair,
    certificate: &SenderCertificate,
    recipient_identity: &PublicKey,
    content_type: ContentType,
    content: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, SealedSenderError> {
    let inner = InnerProto {
        r#type: Some(content_type.to_wire()),
        sender_certificate: Some(certificate.encode()),
        content: Some(content.to_vec()),
    }
    .encode_to_vec();

    let ephemeral = super::keys::PrivateKey::generate(rng);
    let ephemeral_public = ephemeral.public_key();
    let shared =
        ephemeral
            .agree(recipient_identity)
            .map_err(|_| SealedSenderError::SmallOrderKey {
                key: "recipient identity key",
            })?;
    let ephemeral_keys = ChainKeys::ephemeral(recipient_identity, &ephemeral_public, &shared)?;
    let encrypted_static = ephemeral_keys.seal(&sender.public().encode())?;
    let shared = sender.private().agree(recipient_identity).map_err(|_| {
        SealedSenderError::SmallOrderKey {
            key: "recipient identity key",
        }
    })?;
    let static_keys = ChainKeys::static_keys(&ephemeral_keys.chain, &encrypted_static, &shared)?;
    let encrypted_message = static_keys.seal(&inner)?;

    let body = OuterProto {
        ephemeral_public: Some(ephemeral_public.encode().to_vec()),
        encrypted_static: Some(encrypted_static),
        encrypted_message: Some(encrypted_message),
    }
    .encode_to_vec();
    let mut sealed = Vec::with_capacity(1 + body.len());
    sealed.push(VERSION_BYTE);
    sealed.extend_from_slice(&body);
    Ok(sealed)
}

/// The 96 bytes of one HKDF: a chain key (unused for the static chain), an AES-256
/// key and an HMAC key.
#[derive(Zeroize, ZeroizeOnDrop)]
struct ChainKeys {
    chain: [u8; 32],
    cipher: [u8; 32],
    mac: [u8; 32],
}

impl ChainKeys {
    /// The ephemeral chain: `salt = "UnidentifiedDelivery" || IK_R || e_pub`.
    fn ephemeral(
        recipient: &PublicKey,
        ephemeral: &PublicKey,
        shared: &[u8; 32],
    ) -> Result<Self, SealedSenderError> {
        let salt = [
            SALT_PREFIX,
            &recipient.encode()[..],
            &ephemeral.encode()[..],
        ]
        .concat();
        Self::derive(&salt, shared)
    }

    /// The static chain: `salt = e_chain || encrypted_static`.
    fn static_keys(
        ephemeral_chain: &[u8; 32],
        encrypted_static: &[u8],
        shared: &[u8; 32],
    ) -> Result<Self, SealedSenderError> {
        let salt = Zeroizing::new([&ephemeral_chain[..], encrypted_static].concat());
        Self::derive(&salt, shared)
    }

    fn derive(salt: &[u8], shared: &[u8; 32]) -> Result<Self, SealedSenderError> {
        let mut okm = Zeroizing::new([0u8; 96]);
        Hkdf::<Sha256>::new(Some(salt), shared)
            .expand(&[], okm.as_mut())
            .map_err(|_| SealedSenderError::Bug("HKDF refused 96 bytes"))?;
        let mut keys = ChainKeys {
            chain: [0; 32],
            cipher: [0; 32],
            mac: [0; 32],
        };
        for (key, part) in [&mut keys.chain, &mut keys.cipher, &mut keys.mac]
            .into_iter()
            .zip(okm.chunks_exact(32))
        {
            key.copy_from_slice(part);
        }
        Ok(keys)
    }

    /// `AES-256-CTR(plaintext) || HMAC-SHA256(ciphertext)[..10]`.
    fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SealedSenderError> {
        let mut sealed = plaintext.to_vec();
        self.apply_keystream(&mut sealed)?;
        let tag = self.tag(&sealed)?;
        sealed.extend_from_slice(&tag);
        Ok(sealed)
    }

    /// Checks the MAC in constant time, then decrypts.
    fn open(&self, sealed: &[u8], part: SealedPart) -> Result<Vec<u8>, SealedSenderError> {
        let too_short = SealedSenderError::TooShort {
            field: match part {
                SealedPart::Static => "encrypted static key",
                SealedPart::Message => "encrypted message",
            },
            len: sealed.len(),
        };
        let split = sealed.len().checked_sub(MAC_LEN).ok_or(too_short.clone())?;
        let (ciphertext, tag) = sealed.split_at_checked(split).ok_or(too_short)?;
        if !bool::from(self.tag(ciphertext)?.ct_eq(tag)) {
            return Err(SealedSenderError::BadMac { part });
        }
        let mut plaintext = ciphertext.to_vec();
        self.apply_keystream(&mut plaintext)?;
        Ok(plaintext)
    }

    fn apply_keystream(&self, data: &mut [u8]) -> Result<(), SealedSenderError> {
        Aes256Ctr::new(&self.cipher.into(), &[0u8; 16].into())
            .try_apply_keystream(data)
            .map_err(|_| SealedSenderError::Bug("AES-CTR keystream exhausted"))
    }

    fn tag(&self, ciphertext: &[u8]) -> Result<[u8; MAC_LEN], SealedSenderError> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac)
            .map_err(|_| SealedSenderError::Bug("HMAC refused a 32-byte key"))?;
        mac.update(ciphertext);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; MAC_LEN];
        for (t, f) in tag.iter_mut().zip(full.iter()) {
            *t = *f;
        }
        Ok(tag)
    }
}

fn protobuf(what: &'static str, error: &prost::DecodeError) -> SealedSenderError {
    SealedSenderError::Protobuf {
        what,
        reason: error.to_string(),
    }
}

const fn missing(what: &'static str, field: &'static str) -> SealedSenderError {
    SealedSenderError::MissingField { what, field }
}

/// libsignal `UnidentifiedSenderMessage`.
#[derive(Clone, PartialEq, prost::Message)]
struct OuterProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    ephemeral_public: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    encrypted_static: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    encrypted_message: Option<Vec<u8>>,
}

/// libsignal `UnidentifiedSenderMessage.Message`, without content hint and group id.
#[derive(Clone, PartialEq, prost::Message)]
struct InnerProto {
    #[prost(int32, optional, tag = "1")]
    r#type: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    sender_certificate: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    content: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests;
