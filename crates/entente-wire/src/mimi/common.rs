//! Types shared by several MIMI messages: `Protocol`, `IdentifierUri` and `MLSMessage`.

use std::fmt;
use std::io::{Read, Write};

use openmls::prelude::{
    ContentType, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut, ProtocolMessage,
};
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use crate::ids::{ClientId, Domain, IdError, RoomId, UserId};

/// The end-to-end protocol of a room (draft-ietf-mimi-protocol-06 section 5).
///
/// ```text
/// enum {
///     reserved(0),
///     mls10(1),
///     (255)
/// } Protocol;
/// ```
///
/// `reserved(0)` and unknown values are rejected when decoding
/// ([`FramingError::UnknownValue`](super::FramingError::UnknownValue)), so every
/// decoded message is an MLS 1.0 message and the `select (protocol)` branches of the
/// draft's structs are plain fields here.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, TlsSerialize, TlsDeserialize, TlsSize,
)]
#[repr(u8)]
pub enum Protocol {
    /// MLS 1.0 (RFC 9420).
    #[default]
    Mls10 = 1,
}

/// A MIMI URI as carried on the wire (draft-ietf-mimi-protocol-06 section 5.2).
///
/// ```text
/// struct {
///     opaque uri<V>;
/// } IdentifierUri;
/// ```
///
/// Untrusted bytes: whatever the peer sent. Convert with [`IdentifierUri::to_user_id`]
/// and friends, which validate. Several draft fields declared as `opaque x<V>` hold a
/// URI (`UserRolePair.user`, `GroupInfoResponse.room_id`); they use this type too, as
/// the encoding is identical. An empty `IdentifierUri` means "absent" where the draft
/// allows that (`KeyMaterialRequest.roomId` outside a room context).
#[derive(Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct IdentifierUri {
    uri: VLBytes,
}

impl IdentifierUri {
    /// Wraps raw bytes.
    pub fn new(uri: impl Into<Vec<u8>>) -> Self {
        IdentifierUri {
            uri: VLBytes::new(uri.into()),
        }
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.uri.as_slice()
    }

    /// The URI as text, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }

    /// Whether the URI is empty (absent).
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// Validates the URI as a user URI (`mimi://a.example/u/alice`).
    pub fn to_user_id(&self) -> Result<UserId, IdError> {
        UserId::parse_uri(self.text()?)
    }

    /// Validates the URI as a client URI (`mimi://a.example/d/alice/phone`).
    pub fn to_client_id(&self) -> Result<ClientId, IdError> {
        ClientId::parse_uri(self.text()?)
    }

    /// Validates the URI as a room URI (`mimi://a.example/r/clubhouse`).
    pub fn to_room_id(&self) -> Result<RoomId, IdError> {
        RoomId::parse_uri(self.text()?)
    }

    fn text(&self) -> Result<&str, IdError> {
        self.as_str().ok_or_else(|| IdError::NotMimiUri {
            value: String::from_utf8_lossy(self.as_bytes())
                .chars()
                .take(80)
                .collect(),
        })
    }
}

impl Default for IdentifierUri {
    /// The empty (absent) URI.
    fn default() -> Self {
        IdentifierUri::new(Vec::new())
    }
}

impl fmt::Debug for IdentifierUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(text) => f.debug_tuple("IdentifierUri").field(&text).finish(),
            None => f.debug_tuple("IdentifierUri").field(&self.uri).finish(),
        }
    }
}

impl From<&UserId> for IdentifierUri {
    fn from(user: &UserId) -> Self {
        IdentifierUri::new(user.to_uri())
    }
}

impl From<&ClientId> for IdentifierUri {
    fn from(client: &ClientId) -> Self {
        IdentifierUri::new(client.to_uri())
    }
}

impl From<&RoomId> for IdentifierUri {
    fn from(room: &RoomId) -> Self {
        IdentifierUri::new(room.to_uri())
    }
}

/// The provider URI, `mimi://a.example`.
impl From<&Domain> for IdentifierUri {
    fn from(domain: &Domain) -> Self {
        IdentifierUri::new(domain.to_uri())
    }
}

/// An `MLSMessage` (RFC 9420 section 6) embedded in MIMI framing.
///
/// ```text
/// struct {
///     ProtocolVersion version = mls10;
///     WireFormat wire_format;
///     select (MLSMessage.wire_format) { ... };
/// } MLSMessage;
/// ```
///
/// Decoded with openmls' untrusted [`MlsMessageIn`] (which rejects versions other than
/// mls10) and kept as its [`MlsMessageBodyIn`], because `MlsMessageIn` offers no
/// borrowing access to the content type that the draft's `select`s depend on. Nothing
/// is verified here; hand the body to openmls (for example through
/// [`MlsMessage::into_protocol_message`]) to process it.
#[derive(Debug, Clone, PartialEq)]
pub struct MlsMessage(MlsMessageBodyIn);

/// The MIMI-relevant shape of an [`MlsMessage`], for the draft's `select`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageShape {
    /// A PrivateMessage carrying an application message.
    Application,
    /// A PublicMessage carrying a proposal.
    Proposal,
    /// A PublicMessage carrying a commit.
    Commit,
    /// A Welcome.
    Welcome,
    /// Anything MIMI framing never carries where the draft expects an MLSMessage: a
    /// PrivateMessage carrying a proposal or commit (the hub could not see it), a
    /// PublicMessage carrying application data, a GroupInfo or a KeyPackage.
    Other,
}

impl MlsMessage {
    /// The message body.
    pub fn body(&self) -> &MlsMessageBodyIn {
        &self.0
    }

    /// The message body, to hand to openmls.
    pub fn into_body(self) -> MlsMessageBodyIn {
        self.0
    }

    /// The content type of a PublicMessage or PrivateMessage (visible in both).
    pub fn content_type(&self) -> Option<ContentType> {
        match &self.0 {
            MlsMessageBodyIn::PublicMessage(m) => Some(m.content_type()),
            MlsMessageBodyIn::PrivateMessage(m) => Some(m.content_type()),
            _ => None,
        }
    }

    /// What this message is, as far as the draft's `select`s care.
    pub fn shape(&self) -> MessageShape {
        match &self.0 {
            MlsMessageBodyIn::PrivateMessage(m) if m.content_type() == ContentType::Application => {
                MessageShape::Application
            }
            MlsMessageBodyIn::PublicMessage(m) => match m.content_type() {
                ContentType::Proposal => MessageShape::Proposal,
                ContentType::Commit => MessageShape::Commit,
                ContentType::Application => MessageShape::Other,
            },
            MlsMessageBodyIn::Welcome(_) => MessageShape::Welcome,
            _ => MessageShape::Other,
        }
    }

    /// The message as an openmls [`ProtocolMessage`], if it is a PublicMessage or
    /// PrivateMessage.
    pub fn into_protocol_message(self) -> Option<ProtocolMessage> {
        match self.0 {
            MlsMessageBodyIn::PublicMessage(m) => Some(m.into()),
            MlsMessageBodyIn::PrivateMessage(m) => Some(m.into()),
            _ => None,
        }
    }

    /// A short description for error messages ("PrivateMessage carrying a commit").
    pub(crate) fn describe(&self) -> String {
        let wire_format = match &self.0 {
            MlsMessageBodyIn::PublicMessage(_) => "PublicMessage",
            MlsMessageBodyIn::PrivateMessage(_) => "PrivateMessage",
            MlsMessageBodyIn::Welcome(_) => "Welcome",
            MlsMessageBodyIn::GroupInfo(_) => "GroupInfo",
            MlsMessageBodyIn::KeyPackage(_) => "KeyPackage",
            #[allow(unreachable_patterns, reason = "variants behind openmls features")]
            _ => "an MLS message of another wire format",
        };
        let content = match self.content_type() {
            None => return wire_format.to_owned(),
            Some(ContentType::Application) => "an application message",
            Some(ContentType::Proposal) => "a proposal",
            Some(ContentType::Commit) => "a commit",
        };
        format!("{wire_format} carrying {content}")
    }

    /// Fails with a decoding error unless the message has shape `expected`.
    pub(crate) fn expect_shape(
        &self,
        expected: MessageShape,
        field: &str,
    ) -> Result<(), tls_codec::Error> {
        if self.shape() == expected {
            Ok(())
        } else {
            Err(shape_error(field, expected, self))
        }
    }
}

/// The error for an MLS message of the wrong shape in `field`.
pub(crate) fn shape_error(
    field: &str,
    expected: MessageShape,
    found: &MlsMessage,
) -> tls_codec::Error {
    let expected = match expected {
        MessageShape::Application => "a PrivateMessage carrying an application message",
        MessageShape::Proposal => "a PublicMessage carrying a proposal",
        MessageShape::Commit => "a PublicMessage carrying a commit",
        MessageShape::Welcome => "a Welcome",
        MessageShape::Other => "a different message",
    };
    tls_codec::Error::DecodingError(format!(
        "{field} must be {expected}, found {}",
        found.describe()
    ))
}

impl From<MlsMessageIn> for MlsMessage {
    fn from(message: MlsMessageIn) -> Self {
        MlsMessage(message.extract())
    }
}

impl From<MlsMessageOut> for MlsMessage {
    fn from(message: MlsMessageOut) -> Self {
        MlsMessage(MlsMessageIn::from(message).extract())
    }
}

impl From<MlsMessageBodyIn> for MlsMessage {
    fn from(body: MlsMessageBodyIn) -> Self {
        MlsMessage(body)
    }
}

/// `ProtocolVersion mls10`, the only version [`MlsMessageIn`] accepts.
const MLS10: u16 = 1;

impl Size for MlsMessage {
    fn tls_serialized_len(&self) -> usize {
        MLS10.tls_serialized_len() + self.0.tls_serialized_len()
    }
}

impl Serialize for MlsMessage {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        Ok(MLS10.tls_serialize(writer)? + self.0.tls_serialize(writer)?)
    }
}

impl Deserialize for MlsMessage {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        MlsMessageIn::tls_deserialize(bytes).map(MlsMessage::from)
    }
}
