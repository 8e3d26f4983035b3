//! Room state carried in MLS application components: the participant list
//! (draft-ietf-mimi-protocol-06 section 7.5, component 0x0022) and room metadata
//! (section 7.6, component 0x0023).

use std::io::{Read, Write};

use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::IdentifierUri;
use super::error::{FramingError, decode_exact, encode};

/// The `participant_list` component ID (section 10.3).
pub const PARTICIPANT_LIST_COMPONENT_ID: u16 = 0x0022;
/// The `room_metadata` component ID (section 10.4).
pub const ROOM_METADATA_COMPONENT_ID: u16 = 0x0023;
/// The `frank_aad` component ID (section 10.1).
pub const FRANK_AAD_COMPONENT_ID: u16 = 0x0020;
/// The `franking_signature_key` (franking agent) component ID (section 10.2).
pub const FRANKING_AGENT_COMPONENT_ID: u16 = 0x0021;

/// A participant and their role.
///
/// ```text
/// struct {
///   opaque user<V>;
///   uint32 role_index;
/// } UserRolePair;
/// ```
///
/// `user` is a user URI; it is an [`IdentifierUri`] here, which encodes identically.
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct UserRolePair {
    /// The user's URI.
    pub user: IdentifierUri,
    /// The role, an index into the room policy's roles.
    pub role_index: u32,
}

/// The participant list, the `data` of the participant list component.
///
/// ```text
/// struct {
///   UserRolePair participants<V>;
/// } ParticipantListData;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ParticipantListData {
    /// The participants, including inactive and banned ones.
    pub participants: Vec<UserRolePair>,
}

/// A role change for the participant at `user_index`.
///
/// ```text
/// struct {
///   uint32 user_index;
///   uint32 role_index;
/// } UserindexRolePair;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct UserindexRolePair {
    /// Index into the current `ParticipantListData.participants`.
    pub user_index: u32,
    /// The new role.
    pub role_index: u32,
}

/// A change to the participant list, the `update` of an AppDataUpdate proposal.
///
/// ```text
/// struct {
///   UserindexRolePair changedRoleParticipants<V>
///   uint32 removedIndices<V>;
///   UserRolePair addedParticipants<V>;
/// } ParticipantListUpdate;
/// ```
///
/// Applied in order: role changes, removals, then additions appended at the end.
/// Whether the indices exist and the changes are authorised is for the room policy
/// layer.
#[derive(Debug, Clone, PartialEq, Eq, Default, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ParticipantListUpdate {
    /// Participants whose role changes.
    pub changed_role_participants: Vec<UserindexRolePair>,
    /// Participants removed entirely.
    pub removed_indices: Vec<u32>,
    /// Participants appended.
    pub added_participants: Vec<UserRolePair>,
}

/// A URI in room metadata; empty for "none" (for example no avatar).
///
/// ```text
/// /* a valid URI (ex: MIMI URI) */
/// struct {
///   opaque uri<V>;
/// } Uri;
/// ```
///
/// Must be UTF-8 (checked when decoding); URI syntax is checked by the consumer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Uri(String);

/// Text in room metadata.
///
/// ```text
/// /* a sequence of valid UTF8 without nulls */
/// struct {
///   opaque string<V>;
/// } UTF8String;
/// ```
///
/// Invalid UTF-8 and NUL characters are rejected when decoding and constructing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct UTF8String(String);

/// A room description in some language and media type.
///
/// ```text
/// struct {
///   /* an empty media_type is equivalent to text/plain;charset=utf-8 */
///   opaque media_type<V>;
///   opaque language_tag<V>;
///   opaque description_content<V>;
/// } RichDescription;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct RichDescription {
    /// Media type; empty means `text/plain;charset=utf-8`.
    pub media_type: VLBytes,
    /// Language tag (RFC 5646); may be empty.
    pub language_tag: VLBytes,
    /// The description in that media type.
    pub description_content: VLBytes,
}

/// Human-readable room information, the `data` of the room metadata component and the
/// format of `RoomMetaUpdate`.
///
/// ```text
/// struct {
///   Uri room_uri;
///   UTF8String room_name;
///   RichDescription room_descriptions<V>;
///   /* an https URI resolving to an avatar image */
///   Uri room_avatar;
///   UTF8String room_subject;
///   UTF8String room_mood;
/// } RoomMetaData;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct RoomMetaData {
    /// The room's URI.
    pub room_uri: Uri,
    /// The room's name.
    pub room_name: UTF8String,
    /// Descriptions, perhaps in several languages.
    pub room_descriptions: Vec<RichDescription>,
    /// An https URI of the avatar image; empty for none.
    pub room_avatar: Uri,
    /// The subject.
    pub room_subject: UTF8String,
    /// The mood.
    pub room_mood: UTF8String,
}

impl ParticipantListData {
    const NAME: &'static str = "ParticipantListData";

    /// Decodes component data, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes component data.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }
}

impl ParticipantListUpdate {
    const NAME: &'static str = "ParticipantListUpdate";

    /// Decodes an AppDataUpdate `update`, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes an AppDataUpdate `update`.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }
}

impl RoomMetaData {
    const NAME: &'static str = "RoomMetaData";

    /// Decodes component data (or a `RoomMetaUpdate`), rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes component data (or a `RoomMetaUpdate`).
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }
}

/// Why a [`Uri`] or [`UTF8String`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("UTF8String must not contain NUL characters (found one at byte {position})")]
pub struct NulInString {
    /// Byte offset of the first NUL.
    pub position: usize,
}

impl Uri {
    /// Wraps a URI (any UTF-8; syntax is the consumer's to check).
    pub fn new(uri: impl Into<String>) -> Self {
        Uri(uri.into())
    }

    /// The URI text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the URI is empty (absent).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl UTF8String {
    /// Wraps text, rejecting NUL characters.
    pub fn new(text: impl Into<String>) -> Result<Self, NulInString> {
        let text = text.into();
        match text.find('\0') {
            Some(position) => Err(NulInString { position }),
            None => Ok(UTF8String(text)),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Size for Uri {
    fn tls_serialized_len(&self) -> usize {
        self.0.tls_serialized_len()
    }
}

impl Serialize for Uri {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        self.0.tls_serialize(writer)
    }
}

impl Deserialize for Uri {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        String::tls_deserialize(bytes).map(Uri)
    }
}

impl Size for UTF8String {
    fn tls_serialized_len(&self) -> usize {
        self.0.tls_serialized_len()
    }
}

impl Serialize for UTF8String {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        self.0.tls_serialize(writer)
    }
}

impl Deserialize for UTF8String {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let text = String::tls_deserialize(bytes)?;
        UTF8String::new(text).map_err(|e| tls_codec::Error::DecodingError(e.to_string()))
    }
}
