//! Submit a message (draft-ietf-mimi-protocol-06 section 5.4):
//! `POST /submitMessage/{roomId}`, and the franking structs of section 5.4.1.

use openmls::prelude::{Credential, SignaturePublicKey, VerifiableCiphersuite};
use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::common::{MessageShape, MlsMessage};
use super::error::{FramingError, decode_exact, encode};
use super::{IdentifierUri, Protocol};

/// The request body of `POST /submitMessage/{roomId}`.
///
/// ```text
/// struct {
///   Protocol protocol;
///   select(protocol) {
///     case mls10:
///       /* PrivateMessage containing an application message */
///       MLSMessage appMessage;
///       IdentifierURI sendingUri;
///   };
/// } SubmitMessageRequest;
/// ```
///
/// `IdentifierURI` is read as `IdentifierUri`. [`SubmitMessageRequest::decode`] and
/// [`SubmitMessageRequest::encode`] require `app_message` to be a PrivateMessage
/// carrying an application message, as the draft says.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct SubmitMessageRequest {
    /// The end-to-end protocol.
    pub protocol: Protocol,
    /// A PrivateMessage carrying an application message.
    pub app_message: MlsMessage,
    /// The sender's user URI (or a pseudonym), an active participant of the room.
    pub sending_uri: IdentifierUri,
}

impl SubmitMessageRequest {
    const NAME: &'static str = "SubmitMessageRequest";

    /// Decodes a request body, rejecting trailing bytes and anything but an
    /// application PrivateMessage.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        let request: Self = decode_exact(Self::NAME, bytes)?;
        request
            .app_message
            .expect_shape(MessageShape::Application, "appMessage")
            .map_err(|e| FramingError::decoding(Self::NAME, e))?;
        Ok(request)
    }

    /// Encodes the request body.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        self.app_message
            .expect_shape(MessageShape::Application, "appMessage")
            .map_err(|e| FramingError::Encode {
                message: Self::NAME,
                reason: e.to_string(),
            })?;
        encode(Self::NAME, self)
    }
}

/// ```text
/// enum {
///   accepted(0),
///   notAllowed(1),
///   epochTooOld(2),
///   (255)
/// } SubmitResponseCode;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum SubmitResponseCode {
    /// Accepted; it will be distributed.
    Accepted = 0,
    /// Policy or authorisation forbids it.
    NotAllowed = 1,
    /// The hub is at a newer epoch.
    EpochTooOld = 2,
}

/// The hub's frank on an accepted message (section 5.4.1.2).
///
/// ```text
/// struct {
///   uint8 server_frank[32];
///   CipherSuite franking_signature_ciphersuite;
///   opaque franking_integrity_signature<V>;
/// } Frank;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct Frank {
    /// `HMAC_SHA256(hub_key, franking_tag || context)`.
    pub server_frank: [u8; 32],
    /// The group's cipher suite when franked (raw code point).
    pub franking_signature_ciphersuite: VerifiableCiphersuite,
    /// `SignWithLabel(franking_private_key, "FrankingIntegrityTBS", FrankingIntegrityTBS)`.
    pub franking_integrity_signature: VLBytes,
}

/// The response body of `POST /submitMessage/{roomId}`.
///
/// ```text
/// struct {
///   Protocol protocol;
///   select(protocol) {
///     case mls10:
///       SubmitResponseCode statusCode;
///       select (statusCode) {
///         case success:
///           /* the hub acceptance time
///              (in milliseconds from the UNIX epoch) */
///           uint64 accepted_timestamp;
///           optional Frank frank;
///         case epochTooOld:
///           /* current MLS epoch for the MLS group */
///           uint64 currentEpoch;
///       };
///   };
/// } SubmitMessageResponse;
/// ```
///
/// `case success` is read as `case accepted` and `optional Frank frank` as
/// `optional<Frank> frank`.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct SubmitMessageResponse {
    /// The end-to-end protocol.
    pub protocol: Protocol,
    /// `statusCode` and what it selects.
    pub outcome: SubmitOutcome,
}

/// `statusCode` with the fields it selects.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum SubmitOutcome {
    /// `accepted`.
    #[tls_codec(discriminant = 0)]
    Accepted {
        /// When the hub accepted the message, in milliseconds since the UNIX epoch.
        accepted_timestamp: u64,
        /// Present if the message carried a `frank_aad` component and the hub franked it.
        frank: Option<Frank>,
    },
    /// `notAllowed`.
    #[tls_codec(discriminant = 1)]
    NotAllowed,
    /// `epochTooOld`.
    #[tls_codec(discriminant = 2)]
    EpochTooOld {
        /// The group's current epoch at the hub.
        current_epoch: u64,
    },
}

impl SubmitOutcome {
    /// The `statusCode`.
    pub fn code(&self) -> SubmitResponseCode {
        match self {
            SubmitOutcome::Accepted { .. } => SubmitResponseCode::Accepted,
            SubmitOutcome::NotAllowed => SubmitResponseCode::NotAllowed,
            SubmitOutcome::EpochTooOld { .. } => SubmitResponseCode::EpochTooOld,
        }
    }
}

impl SubmitMessageResponse {
    const NAME: &'static str = "SubmitMessageResponse";

    /// Decodes a response body, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes the response body.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }
}

/// The `frank_aad` Safe AAD component (section 5.4.1, component 0x0020).
///
/// ```text
/// struct {
///     uint8 franking_tag[32];
/// } FrankAAD;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct FrankAAD {
    /// `HMAC_SHA256(salt, application_data)`.
    pub franking_tag: [u8; 32],
}

impl FrankAAD {
    /// Decodes the component data, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact("FrankAAD", bytes)
    }

    /// Encodes the component data.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode("FrankAAD", self)
    }
}

/// The `franking_agent` GroupContext component (section 5.4.1, component 0x0021), also
/// the format of `FrankingAgentUpdate`.
///
/// ```text
/// struct {
///   SignaturePublicKey franking_signature_key;
///   Credential credential;
/// } FrankingAgentData;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct FrankingAgentData {
    /// The hub's franking signature key.
    pub franking_signature_key: SignaturePublicKey,
    /// The hub's credential.
    pub credential: Credential,
}

impl FrankingAgentData {
    /// Decodes the component data, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact("FrankingAgentData", bytes)
    }

    /// Encodes the component data.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode("FrankingAgentData", self)
    }
}

/// What the hub's frank commits to (section 5.4.1.2).
///
/// ```text
/// struct {
///     IdentifierUri sender_uri;
///     IdentifierUri room_uri;
///     uint64 accepted_timestamp;
/// } ServerFrankingContext;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ServerFrankingContext {
    /// The sender URI asserted in `sendingUri`.
    pub sender_uri: IdentifierUri,
    /// The room URI.
    pub room_uri: IdentifierUri,
    /// The hub's acceptance time, in milliseconds since the UNIX epoch.
    pub accepted_timestamp: u64,
}

impl ServerFrankingContext {
    /// Encodes the context, the second input of `server_frank`'s HMAC.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode("ServerFrankingContext", self)
    }
}

/// The content of the hub's franking integrity signature (section 5.4.1.2).
///
/// ```text
/// struct {
///     opaque server_frank[32];
///     CipherSuite franking_signature_ciphersuite;
///     ServerFrankingContext context;
/// } FrankingIntegrityTBS;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct FrankingIntegrityTBS {
    /// The server frank.
    pub server_frank: [u8; 32],
    /// The group's cipher suite when franked.
    pub franking_signature_ciphersuite: VerifiableCiphersuite,
    /// Sender, room and time.
    pub context: ServerFrankingContext,
}

impl FrankingIntegrityTBS {
    /// Encodes the content for `SignWithLabel(.., "FrankingIntegrityTBS", ..)`.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode("FrankingIntegrityTBS", self)
    }
}
