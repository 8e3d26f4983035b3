//! Report abuse (draft-ietf-mimi-protocol-06 section 5.9): `POST /reportAbuse/{roomId}`.

use super::app_data::AppDataDictionary;
use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::IdentifierUri;
use super::error::{FramingError, decode_exact, encode};
use super::submit::Frank;

/// An allegedly abusive message with the frank that lets the hub verify it.
///
/// ```text
/// struct {
///   /* the message content (ex: MIMI Content message) containing */
///   /* allegedly abusive content                                 */
///   opaque message_content<V>;
///   Frank frank;
///   uint64 accepted_timestamp;
/// } AbusiveMessage;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct AbusiveMessage {
    /// The decrypted message content (e.g. MIMI content).
    pub message_content: VLBytes,
    /// The hub's frank on it.
    pub frank: Frank,
    /// When the hub accepted it.
    pub accepted_timestamp: u64,
}

/// The reason for a report.
///
/// ```text
/// enum {
///   reserved(0),
///   (255)
/// } AbuseType;
/// ```
///
/// The draft assigns no values yet, so the raw code is kept and every value decodes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, TlsSerialize, TlsDeserialize, TlsSize,
)]
pub struct AbuseType(pub u8);

/// The request body of `POST /reportAbuse/{roomId}`.
///
/// ```text
/// struct {
///   IdentifierUri reportingUser;
///   IdentifierUri allegedAbuserUri;
///   AbuseType reasonCode;
///   opaque note<V>;
///   AbusiveMessage messages<V>;
///   AppDataDictionary abuse_extensions;
/// } AbuseReport;
/// ```
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct AbuseReport {
    /// The reporting user; empty if the reporter stays anonymous.
    pub reporting_user: IdentifierUri,
    /// The alleged sender of abusive messages.
    pub alleged_abuser_uri: IdentifierUri,
    /// The reason.
    pub reason_code: AbuseType,
    /// Human-readable UTF-8 note; may be empty.
    pub note: VLBytes,
    /// Allegedly abusive messages.
    pub messages: Vec<AbusiveMessage>,
    /// Extension point.
    pub abuse_extensions: AppDataDictionary,
}

impl AbuseReport {
    const NAME: &'static str = "AbuseReport";

    /// Decodes a request body, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes the request body.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }
}
