//! libsignal's two message formats for sessions, versions 3 (X3DH) and 4 (PQXDH).
//!
//! Both start with a version byte: the message version in the high nibble, the
//! sender's newest supported version in the low nibble. Receivers (libsignal and us)
//! read only the high nibble. We write `0x33` for version 3 and `0x44` for version 4;
//! current libsignal writes `0x34` and `0x44` (its low nibble is always 4), and
//! python-omemo's `oldmemo` insists on `0x33`, which libsignal also accepts.
//!
//! ```text
//! SignalMessage       = version || protobuf SignalMessage || mac (8 bytes)
//! PreKeySignalMessage = version || protobuf PreKeySignalMessage
//!
//! message SignalMessage {                     // libsignal wire.proto
//!     optional bytes  ratchet_key      = 1;   // 0x05 || u
//!     optional uint32 counter          = 2;
//!     optional uint32 previous_counter = 3;
//!     optional bytes  ciphertext       = 4;   // AES-256-CBC, PKCS#7
//! }
//! message PreKeySignalMessage {
//!     optional uint32 registration_id   = 5;
//!     optional uint32 pre_key_id        = 1;
//!     optional uint32 signed_pre_key_id = 6;
//!     optional uint32 kyber_pre_key_id  = 7;  // version 4
//!     optional bytes  kyber_ciphertext  = 8;  // version 4: key type || ciphertext
//!     optional bytes  base_key          = 2;  // 0x05 || u
//!     optional bytes  identity_key      = 3;  // 0x05 || u
//!     optional bytes  message           = 4;  // a whole SignalMessage
//! }
//! ```
//!
//! As in libsignal, `ratchet_key`, `counter`, `ciphertext`, `base_key`,
//! `identity_key`, `message` and `signed_pre_key_id` are required; a missing
//! `previous_counter` or `registration_id` reads as 0. A version 4 PreKeySignalMessage
//! must carry both Kyber fields; unlike libsignal, we also refuse Kyber fields in a
//! version 3 message and an embedded SignalMessage of another version, both of which
//! libsignal rejects later, when it decrypts.
//!
//! The MAC is checked by the session, which knows the keys: it covers
//! `sender identity (33) || receiver identity (33) || version || protobuf`.

use super::keys::{KeyDecodeError, PublicKey};
use super::pqxdh::{KemCiphertext, KemDecodeError};

/// Length of the truncated HMAC-SHA-256 at the end of a SignalMessage.
pub const MAC_LEN: usize = 8;
/// The message version of X3DH sessions.
pub const VERSION_X3DH: u8 = 3;
/// The message version of PQXDH sessions.
pub const VERSION_PQXDH: u8 = 4;

/// The protobuf body of a SignalMessage, field for field as in libsignal.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SignalMessageProto {
    /// The sender's current ratchet public key, `0x05 || u`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub ratchet_key: Option<Vec<u8>>,
    /// The message's index in the sender's chain.
    #[prost(uint32, optional, tag = "2")]
    pub counter: Option<u32>,
    /// libsignal's value: the index of the last message on the sender's previous
    /// chain (0 if there was none). Receivers ignore it.
    #[prost(uint32, optional, tag = "3")]
    pub previous_counter: Option<u32>,
    /// The AES-256-CBC ciphertext.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub ciphertext: Option<Vec<u8>>,
}

/// The protobuf body of a PreKeySignalMessage, field for field as in libsignal.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PreKeySignalMessageProto {
    /// The sender's registration id.
    #[prost(uint32, optional, tag = "5")]
    pub registration_id: Option<u32>,
    /// The recipient's one-time prekey, if the bundle had one.
    #[prost(uint32, optional, tag = "1")]
    pub pre_key_id: Option<u32>,
    /// The recipient's signed prekey.
    #[prost(uint32, optional, tag = "6")]
    pub signed_pre_key_id: Option<u32>,
    /// The recipient's Kyber prekey (version 4).
    #[prost(uint32, optional, tag = "7")]
    pub kyber_pre_key_id: Option<u32>,
    /// The KEM ciphertext for the Kyber prekey (version 4).
    #[prost(bytes = "vec", optional, tag = "8")]
    pub kyber_ciphertext: Option<Vec<u8>>,
    /// The sender's X3DH ephemeral ("base") key.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub base_key: Option<Vec<u8>>,
    /// The sender's identity key.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub identity_key: Option<Vec<u8>>,
    /// A whole SignalMessage.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub message: Option<Vec<u8>>,
}

/// Why a message could not be decoded. The peer (or the network) sent something
/// invalid; nothing was decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageDecodeError {
    /// Shorter than the fixed parts.
    #[error("a {what} is at least {min} bytes, got {len}")]
    TooShort {
        /// Which message.
        what: &'static str,
        /// Its minimum length.
        min: usize,
        /// What arrived.
        len: usize,
    },
    /// A message version other than 3 or 4.
    #[error("message version {0} is not supported (only 3 and 4)")]
    UnsupportedVersion(u8),
    /// The protobuf does not parse.
    #[error("the protobuf does not parse: {0}")]
    Protobuf(prost::DecodeError),
    /// A required field is absent.
    #[error("the required field {0} is missing")]
    MissingField(&'static str),
    /// A public key field is not `0x05 || u`.
    #[error("field {field}: {error}")]
    BadKey {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        error: KeyDecodeError,
    },
    /// The Kyber ciphertext is malformed.
    #[error("field kyber_ciphertext: {0}")]
    BadKemCiphertext(KemDecodeError),
    /// Only one of `kyber_pre_key_id` and `kyber_ciphertext`.
    #[error("kyber_pre_key_id and kyber_ciphertext must both be present or both absent")]
    KyberIncomplete,
    /// A version 4 message without the Kyber fields.
    #[error("a version 4 PreKeySignalMessage must name a Kyber prekey and carry its ciphertext")]
    KyberMissing,
    /// A version 3 message with the Kyber fields.
    #[error("a version 3 PreKeySignalMessage carries Kyber fields, which need version 4")]
    KyberInVersion3,
    /// The embedded SignalMessage has another version than its envelope.
    #[error("the PreKeySignalMessage is version {outer} but its SignalMessage is version {inner}")]
    InnerVersionMismatch {
        /// The PreKeySignalMessage's version.
        outer: u8,
        /// The embedded SignalMessage's version.
        inner: u8,
    },
    /// The embedded SignalMessage is malformed.
    #[error("the embedded SignalMessage: {0}")]
    Inner(Box<MessageDecodeError>),
}

/// A decoded SignalMessage. Its MAC is not checked yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalMessage {
    version: u8,
    ratchet_key: PublicKey,
    counter: u32,
    previous_counter: u32,
    ciphertext: Vec<u8>,
    serialized: Vec<u8>,
}

/// A decoded PreKeySignalMessage: the session set-up fields and the first
/// SignalMessage of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeySignalMessage {
    version: u8,
    registration_id: u32,
    pre_key_id: Option<u32>,
    signed_pre_key_id: u32,
    kyber: Option<(u32, KemCiphertext)>,
    base_key: PublicKey,
    identity_key: PublicKey,
    message: SignalMessage,
}

impl SignalMessage {
    /// Decodes `version || protobuf || mac`.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageDecodeError> {
        Self::decode_owned(bytes.to_vec())
    }

    fn decode_owned(serialized: Vec<u8>) -> Result<Self, MessageDecodeError> {
        let min = 1 + MAC_LEN;
        let too_short = MessageDecodeError::TooShort {
            what: "SignalMessage",
            min,
            len: serialized.len(),
        };
        let body_end = serialized
            .len()
            .checked_sub(MAC_LEN)
            .ok_or(too_short.clone())?;
        let (&version_byte, body) = serialized
            .get(..body_end)
            .and_then(<[u8]>::split_first)
            .ok_or(too_short)?;
        let version = message_version(version_byte)?;
        let proto = <SignalMessageProto as prost::Message>::decode(body)
            .map_err(MessageDecodeError::Protobuf)?;
        let ratchet_key = decode_key(proto.ratchet_key, "ratchet_key")?;
        let counter = proto
            .counter
            .ok_or(MessageDecodeError::MissingField("counter"))?;
        let ciphertext = proto
            .ciphertext
            .ok_or(MessageDecodeError::MissingField("ciphertext"))?;
        Ok(Self {
            version,
            ratchet_key,
            counter,
            previous_counter: proto.previous_counter.unwrap_or(0),
            ciphertext,
            serialized,
        })
    }

    /// The message version (3 or 4).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The sender's ratchet public key.
    pub fn ratchet_key(&self) -> &PublicKey {
        &self.ratchet_key
    }

    /// The message's index in the sender's chain.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// The sender's `previous_counter` (informational).
    pub fn previous_counter(&self) -> u32 {
        self.previous_counter
    }

    /// The AES-256-CBC ciphertext.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// The whole message as received.
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }

    /// `version || protobuf`: what the MAC covers after the two identity keys.
    pub(crate) fn authenticated(&self) -> &[u8] {
        let end = self.serialized.len().saturating_sub(MAC_LEN);
        self.serialized.get(..end).unwrap_or_default()
    }

    /// The received MAC.
    pub(crate) fn mac(&self) -> &[u8] {
        let start = self.serialized.len().saturating_sub(MAC_LEN);
        self.serialized.get(start..).unwrap_or_default()
    }

    /// `version || protobuf`, with room for the MAC the caller appends.
    pub(crate) fn encode_unauthenticated(
        version: u8,
        ratchet_key: &PublicKey,
        counter: u32,
        previous_counter: u32,
        ciphertext: Vec<u8>,
    ) -> Vec<u8> {
        let proto = SignalMessageProto {
            ratchet_key: Some(ratchet_key.encode().to_vec()),
            counter: Some(counter),
            previous_counter: Some(previous_counter),
            ciphertext: Some(ciphertext),
        };
        let len = prost::Message::encoded_len(&proto);
        let mut out = Vec::with_capacity(1 + len + MAC_LEN);
        out.push(version_byte(version));
        prost::Message::encode_raw(&proto, &mut out);
        out
    }
}

impl PreKeySignalMessage {
    /// Decodes `version || protobuf`, including the embedded SignalMessage.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageDecodeError> {
        let (&version_byte, body) = bytes.split_first().ok_or(MessageDecodeError::TooShort {
            what: "PreKeySignalMessage",
            min: 1,
            len: 0,
        })?;
        let version = message_version(version_byte)?;
        let proto = <PreKeySignalMessageProto as prost::Message>::decode(body)
            .map_err(MessageDecodeError::Protobuf)?;
        let base_key = decode_key(proto.base_key, "base_key")?;
        let identity_key = decode_key(proto.identity_key, "identity_key")?;
        let signed_pre_key_id = proto
            .signed_pre_key_id
            .ok_or(MessageDecodeError::MissingField("signed_pre_key_id"))?;
        let inner = proto
            .message
            .ok_or(MessageDecodeError::MissingField("message"))?;
        let kyber = match (proto.kyber_pre_key_id, proto.kyber_ciphertext) {
            (Some(_), Some(_)) if version == VERSION_X3DH => {
                return Err(MessageDecodeError::KyberInVersion3);
            }
            (Some(id), Some(ciphertext)) => Some((
                id,
                KemCiphertext::decode(&ciphertext).map_err(MessageDecodeError::BadKemCiphertext)?,
            )),
            (None, None) if version == VERSION_PQXDH => {
                return Err(MessageDecodeError::KyberMissing);
            }
            (None, None) => None,
            _ => return Err(MessageDecodeError::KyberIncomplete),
        };
        let message = SignalMessage::decode_owned(inner)
            .map_err(|error| MessageDecodeError::Inner(Box::new(error)))?;
        if message.version != version {
            return Err(MessageDecodeError::InnerVersionMismatch {
                outer: version,
                inner: message.version,
            });
        }
        Ok(Self {
            version,
            registration_id: proto.registration_id.unwrap_or(0),
            pre_key_id: proto.pre_key_id,
            signed_pre_key_id,
            kyber,
            base_key,
            identity_key,
            message,
        })
    }

    /// Encodes a PreKeySignalMessage around an already encoded SignalMessage.
    #[allow(clippy::too_many_arguments, reason = "one argument per protobuf field")]
    pub(crate) fn encode(
        version: u8,
        registration_id: u32,
        pre_key_id: Option<u32>,
        signed_pre_key_id: u32,
        kyber: Option<(u32, &KemCiphertext)>,
        base_key: &PublicKey,
        identity_key: &PublicKey,
        message: Vec<u8>,
    ) -> Vec<u8> {
        let proto = PreKeySignalMessageProto {
            registration_id: Some(registration_id),
            pre_key_id,
            signed_pre_key_id: Some(signed_pre_key_id),
            kyber_pre_key_id: kyber.map(|(id, _)| id),
            kyber_ciphertext: kyber.map(|(_, ciphertext)| ciphertext.encode()),
            base_key: Some(base_key.encode().to_vec()),
            identity_key: Some(identity_key.encode().to_vec()),
            message: Some(message),
        };
        let mut out = Vec::with_capacity(1 + prost::Message::encoded_len(&proto));
        out.push(version_byte(version));
        prost::Message::encode_raw(&proto, &mut out);
        out
    }

    /// The message version (3 or 4).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The sender's registration id (0 if absent).
    pub fn registration_id(&self) -> u32 {
        self.registration_id
    }

    /// The one-time prekey the sender used, if any.
    pub fn pre_key_id(&self) -> Option<u32> {
        self.pre_key_id
    }

    /// The signed prekey the sender used.
    pub fn signed_pre_key_id(&self) -> u32 {
        self.signed_pre_key_id
    }

    /// The Kyber prekey the sender used (version 4).
    pub fn kyber_pre_key_id(&self) -> Option<u32> {
        self.kyber.as_ref().map(|(id, _)| *id)
    }

    /// The KEM ciphertext for that Kyber prekey (version 4).
    pub fn kyber_ciphertext(&self) -> Option<&KemCiphertext> {
        self.kyber.as_ref().map(|(_, ciphertext)| ciphertext)
    }

    /// The sender's ephemeral key.
    pub fn base_key(&self) -> &PublicKey {
        &self.base_key
    }

    /// The sender's identity key.
    pub fn identity_key(&self) -> &PublicKey {
        &self.identity_key
    }

    /// The session's first SignalMessage.
    pub fn message(&self) -> &SignalMessage {
        &self.message
    }
}

/// The message version from a version byte's high nibble.
fn message_version(byte: u8) -> Result<u8, MessageDecodeError> {
    match byte >> 4 {
        version @ (VERSION_X3DH | VERSION_PQXDH) => Ok(version),
        other => Err(MessageDecodeError::UnsupportedVersion(other)),
    }
}

/// `(version << 4) | version`: see the module documentation.
fn version_byte(version: u8) -> u8 {
    (version << 4) | (version & 0x0F)
}

fn decode_key(field: Option<Vec<u8>>, name: &'static str) -> Result<PublicKey, MessageDecodeError> {
    let bytes = field.ok_or(MessageDecodeError::MissingField(name))?;
    PublicKey::decode(&bytes).map_err(|error| MessageDecodeError::BadKey { field: name, error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::keys::PrivateKey;
    use crate::signal::pqxdh::KemKeyPair;
    use prost::Message;
    use rand::rngs::OsRng;

    fn key() -> PublicKey {
        PrivateKey::generate(&mut OsRng).public_key()
    }

    fn signal_message(version: u8) -> (Vec<u8>, PublicKey) {
        let ratchet = key();
        let mut bytes =
            SignalMessage::encode_unauthenticated(version, &ratchet, 7, 3, vec![0xAB; 32]);
        bytes.extend_from_slice(&[0x11; MAC_LEN]);
        (bytes, ratchet)
    }

    fn with_body(version_byte: u8, proto: &impl Message, mac: bool) -> Vec<u8> {
        let mut bytes = vec![version_byte];
        bytes.extend_from_slice(&proto.encode_to_vec());
        if mac {
            bytes.extend_from_slice(&[0; MAC_LEN]);
        }
        bytes
    }

    fn valid_proto() -> SignalMessageProto {
        SignalMessageProto {
            ratchet_key: Some(key().encode().to_vec()),
            counter: Some(1),
            previous_counter: Some(0),
            ciphertext: Some(vec![1; 16]),
        }
    }

    #[test]
    fn signal_message_round_trips_with_libsignal_layout() {
        for version in [3, 4] {
            let (bytes, ratchet) = signal_message(version);
            assert_eq!(bytes[0], (version << 4) | version);
            let message = SignalMessage::decode(&bytes).unwrap();
            assert_eq!(message.version(), version);
            assert_eq!(message.ratchet_key(), &ratchet);
            assert_eq!(message.counter(), 7);
            assert_eq!(message.previous_counter(), 3);
            assert_eq!(message.ciphertext(), &[0xAB; 32]);
            assert_eq!(message.mac(), &[0x11; MAC_LEN]);
            assert_eq!(message.authenticated(), &bytes[..bytes.len() - MAC_LEN]);
            // Fields in tag order, as protoc and libsignal write them.
            assert_eq!(&bytes[1..3], &[0x0A, 33]);
            assert_eq!(&bytes[36..38], &[0x10, 7]);
            assert_eq!(&bytes[38..40], &[0x18, 3]);
            assert_eq!(&bytes[40..42], &[0x22, 32]);
        }
    }

    #[test]
    fn libsignal_version_bytes_are_read_by_their_high_nibble() {
        let (mut bytes, _) = signal_message(3);
        bytes[0] = 0x34; // what current libsignal writes for version 3
        assert_eq!(SignalMessage::decode(&bytes).unwrap().version(), 3);
        for (byte, version) in [(0x23, 2), (0x54, 5), (0x03, 0), (0xF3, 15)] {
            bytes[0] = byte;
            assert_eq!(
                SignalMessage::decode(&bytes),
                Err(MessageDecodeError::UnsupportedVersion(version))
            );
        }
    }

    #[test]
    fn malformed_signal_messages_are_refused() {
        for len in 0..=MAC_LEN {
            assert_eq!(
                SignalMessage::decode(&vec![0x33; len]),
                Err(MessageDecodeError::TooShort {
                    what: "SignalMessage",
                    min: 9,
                    len
                })
            );
        }
        // The smallest well-formed frame has an empty protobuf: fields are missing.
        assert_eq!(
            SignalMessage::decode(&[0x33; 9]),
            Err(MessageDecodeError::MissingField("ratchet_key"))
        );
        for (field, proto) in [
            (
                "ratchet_key",
                SignalMessageProto {
                    ratchet_key: None,
                    ..valid_proto()
                },
            ),
            (
                "counter",
                SignalMessageProto {
                    counter: None,
                    ..valid_proto()
                },
            ),
            (
                "ciphertext",
                SignalMessageProto {
                    ciphertext: None,
                    ..valid_proto()
                },
            ),
        ] {
            assert_eq!(
                SignalMessage::decode(&with_body(0x33, &proto, true)),
                Err(MessageDecodeError::MissingField(field))
            );
        }
        let no_previous = SignalMessageProto {
            previous_counter: None,
            ..valid_proto()
        };
        let decoded = SignalMessage::decode(&with_body(0x33, &no_previous, true)).unwrap();
        assert_eq!(decoded.previous_counter(), 0);

        let bare_u = SignalMessageProto {
            ratchet_key: Some(key().u().to_vec()),
            ..valid_proto()
        };
        assert_eq!(
            SignalMessage::decode(&with_body(0x33, &bare_u, true)),
            Err(MessageDecodeError::BadKey {
                field: "ratchet_key",
                error: KeyDecodeError::Length(32)
            })
        );
        // A protobuf cut in the middle of a field.
        let mut cut = with_body(0x33, &valid_proto(), false);
        cut.truncate(20);
        cut.extend_from_slice(&[0; MAC_LEN]);
        assert!(matches!(
            SignalMessage::decode(&cut),
            Err(MessageDecodeError::Protobuf(_))
        ));
    }

    struct PreKeyParts {
        proto: PreKeySignalMessageProto,
        version: u8,
    }

    fn prekey_parts(version: u8) -> PreKeyParts {
        let (inner, _) = signal_message(version);
        let kyber = (version == 4).then(|| {
            let (_, ciphertext) = KemKeyPair::generate(&mut OsRng)
                .public_key()
                .encapsulate(&mut OsRng);
            ciphertext.encode()
        });
        PreKeyParts {
            proto: PreKeySignalMessageProto {
                registration_id: Some(1234),
                pre_key_id: Some(5),
                signed_pre_key_id: Some(6),
                kyber_pre_key_id: kyber.as_ref().map(|_| 7),
                kyber_ciphertext: kyber,
                base_key: Some(key().encode().to_vec()),
                identity_key: Some(key().encode().to_vec()),
                message: Some(inner),
            },
            version,
        }
    }

    impl PreKeyParts {
        fn bytes(&self) -> Vec<u8> {
            with_body((self.version << 4) | self.version, &self.proto, false)
        }
    }

    #[test]
    fn prekey_messages_round_trip() {
        for version in [3, 4] {
            let parts = prekey_parts(version);
            let decoded = PreKeySignalMessage::decode(&parts.bytes()).unwrap();
            assert_eq!(decoded.version(), version);
            assert_eq!(decoded.registration_id(), 1234);
            assert_eq!(decoded.pre_key_id(), Some(5));
            assert_eq!(decoded.signed_pre_key_id(), 6);
            assert_eq!(decoded.kyber_pre_key_id(), (version == 4).then_some(7));
            assert_eq!(decoded.message().counter(), 7);
            let reencoded = PreKeySignalMessage::encode(
                version,
                decoded.registration_id(),
                decoded.pre_key_id(),
                decoded.signed_pre_key_id(),
                decoded.kyber_pre_key_id().zip(decoded.kyber_ciphertext()),
                decoded.base_key(),
                decoded.identity_key(),
                decoded.message().serialized().to_vec(),
            );
            assert_eq!(reencoded, parts.bytes());
        }
    }

    #[test]
    fn malformed_prekey_messages_are_refused() {
        assert!(matches!(
            PreKeySignalMessage::decode(&[]),
            Err(MessageDecodeError::TooShort { len: 0, .. })
        ));
        assert_eq!(
            PreKeySignalMessage::decode(&[0x54]),
            Err(MessageDecodeError::UnsupportedVersion(5))
        );
        type Remove = fn(&mut PreKeySignalMessageProto);
        let required: [(&str, Remove); 4] = [
            ("base_key", |p| p.base_key = None),
            ("identity_key", |p| p.identity_key = None),
            ("signed_pre_key_id", |p| p.signed_pre_key_id = None),
            ("message", |p| p.message = None),
        ];
        for (field, remove) in required {
            let mut parts = prekey_parts(3);
            remove(&mut parts.proto);
            assert_eq!(
                PreKeySignalMessage::decode(&parts.bytes()),
                Err(MessageDecodeError::MissingField(field))
            );
        }
        let mut optional = prekey_parts(3);
        optional.proto.registration_id = None;
        optional.proto.pre_key_id = None;
        let decoded = PreKeySignalMessage::decode(&optional.bytes()).unwrap();
        assert_eq!((decoded.registration_id(), decoded.pre_key_id()), (0, None));

        let mut no_kyber = prekey_parts(4);
        no_kyber.proto.kyber_pre_key_id = None;
        no_kyber.proto.kyber_ciphertext = None;
        assert_eq!(
            PreKeySignalMessage::decode(&no_kyber.bytes()),
            Err(MessageDecodeError::KyberMissing)
        );
        let mut half_kyber = prekey_parts(4);
        half_kyber.proto.kyber_ciphertext = None;
        assert_eq!(
            PreKeySignalMessage::decode(&half_kyber.bytes()),
            Err(MessageDecodeError::KyberIncomplete)
        );
        let mut kyber_in_v3 = prekey_parts(3);
        kyber_in_v3.proto.kyber_pre_key_id = prekey_parts(4).proto.kyber_pre_key_id;
        kyber_in_v3.proto.kyber_ciphertext = prekey_parts(4).proto.kyber_ciphertext;
        assert_eq!(
            PreKeySignalMessage::decode(&kyber_in_v3.bytes()),
            Err(MessageDecodeError::KyberInVersion3)
        );
        let mut short_ciphertext = prekey_parts(4);
        short_ciphertext.proto.kyber_ciphertext = Some(vec![0x0A; 100]);
        assert!(matches!(
            PreKeySignalMessage::decode(&short_ciphertext.bytes()),
            Err(MessageDecodeError::BadKemCiphertext(
                KemDecodeError::Length { got: 100, .. }
            ))
        ));
        let mut kyber_type = prekey_parts(4);
        if let Some(ciphertext) = kyber_type.proto.kyber_ciphertext.as_mut() {
            ciphertext[0] = 0x08;
        }
        assert_eq!(
            PreKeySignalMessage::decode(&kyber_type.bytes()),
            Err(MessageDecodeError::BadKemCiphertext(
                KemDecodeError::Kyber1024Unsupported
            ))
        );

        let mut bad_identity = prekey_parts(3);
        bad_identity.proto.identity_key = Some(vec![0x06; 33]);
        assert_eq!(
            PreKeySignalMessage::decode(&bad_identity.bytes()),
            Err(MessageDecodeError::BadKey {
                field: "identity_key",
                error: KeyDecodeError::UnknownType(0x06)
            })
        );
        let mut bad_inner = prekey_parts(3);
        bad_inner.proto.message = Some(vec![0x33; 4]);
        assert!(matches!(
            PreKeySignalMessage::decode(&bad_inner.bytes()),
            Err(MessageDecodeError::Inner(inner))
                if matches!(*inner, MessageDecodeError::TooShort { .. })
        ));
        let mut mixed = prekey_parts(3);
        mixed.proto.message = Some(signal_message(4).0);
        assert_eq!(
            PreKeySignalMessage::decode(&mixed.bytes()),
            Err(MessageDecodeError::InnerVersionMismatch { outer: 3, inner: 4 })
        );
    }
}
