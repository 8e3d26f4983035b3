//! Fanout messages (draft-ietf-mimi-protocol-06 section 5.5): `POST /notify/{roomId}`.

use std::io::{Read, Write};

use tls_codec::{Deserialize, Serialize, Size};

use super::common::{MessageShape, MlsMessage};
use super::error::{FramingError, decode_exact, encode};
use super::submit::Frank;
use super::tree::RatchetTreeOption;
use super::update::check_all;

/// One event the hub fans out to a follower provider.
///
/// ```text
/// struct {
///   /* the hub acceptance time (in milliseconds from the UNIX epoch) */
///   uint64 timestamp;
///   select (protocol) {
///     case mls10:
///       /* A PrivateMessage containing an application message, */
///       /* a SemiPrivateMessage or PublicMessage containing a  */
///       /* proposal or commit, or a Welcome message.           */
///       MLSMessage message;
///       select (message.wire_format) {
///         case application:
///            optional Frank frank;
///         case welcome:
///            RatchetTreeOption ratchetTreeOption;
///         case proposal:
///            /* a list of additional proposals, each represented */
///            /* as either PublicMessage or SemiPrivateMessage    */
///            MLSMessage moreProposals<V>;
///         case commit:
///            /* If this was an external commit, and any pending      */
///            /* proposals were invalidated, staple the new epoch's   */
///            /* replacement proposals (from the hub) to the commit   */
///            /* commit */
///            MLSMessage externalProposals<V>;
///       };
///   };
/// } FanoutMessage;
/// ```
///
/// There is no `protocol` field on the wire: like `UpdateRequest`, the protocol is the
/// room's, and the only one is MLS 1.0. `select (message.wire_format)` mixes wire
/// formats and content types; it is read as: a PrivateMessage carrying an application
/// message (`application`), a Welcome (`welcome`), a PublicMessage carrying a proposal
/// (`proposal`) or a commit (`commit`). `optional Frank frank` is `optional<Frank>`.
/// Anything else (a PrivateMessage handshake, a GroupInfo, a KeyPackage) is rejected.
/// A notify body may hold several concatenated FanoutMessages: see
/// [`decode_fanout_batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct FanoutMessage {
    /// When the hub accepted the event, in milliseconds since the UNIX epoch.
    pub timestamp: u64,
    /// The MLS message and what its kind selects.
    pub event: FanoutEvent,
}

/// The MLS message of a [`FanoutMessage`] and the fields its kind selects.
#[derive(Debug, Clone, PartialEq)]
pub enum FanoutEvent {
    /// An application message.
    Application {
        /// A PrivateMessage carrying an application message.
        message: MlsMessage,
        /// The hub's frank, if the message was franked.
        frank: Option<Frank>,
    },
    /// A Welcome for clients of the receiving provider.
    Welcome {
        /// A Welcome.
        welcome: MlsMessage,
        /// How the new members get the ratchet tree.
        ratchet_tree: RatchetTreeOption,
    },
    /// Proposals.
    Proposal {
        /// A PublicMessage carrying a proposal.
        proposal: MlsMessage,
        /// The same `moreProposals` as in the submitted `HandshakeBundle`.
        more_proposals: Vec<MlsMessage>,
    },
    /// A commit.
    Commit {
        /// A PublicMessage carrying a commit.
        commit: MlsMessage,
        /// Replacement proposals from the hub after an external commit invalidated
        /// pending ones; each a PublicMessage carrying a proposal.
        external_proposals: Vec<MlsMessage>,
    },
}

impl FanoutEvent {
    /// The MLS message.
    pub fn message(&self) -> &MlsMessage {
        match self {
            FanoutEvent::Application { message, .. } => message,
            FanoutEvent::Welcome { welcome, .. } => welcome,
            FanoutEvent::Proposal { proposal, .. } => proposal,
            FanoutEvent::Commit { commit, .. } => commit,
        }
    }

    fn check(&self) -> Result<(), tls_codec::Error> {
        match self {
            FanoutEvent::Application { message, .. } => {
                message.expect_shape(MessageShape::Application, "FanoutMessage.message")
            }
            FanoutEvent::Welcome { welcome, .. } => {
                welcome.expect_shape(MessageShape::Welcome, "FanoutMessage.message")
            }
            FanoutEvent::Proposal {
                proposal,
                more_proposals,
            } => {
                proposal.expect_shape(MessageShape::Proposal, "FanoutMessage.message")?;
                check_all(
                    more_proposals,
                    MessageShape::Proposal,
                    "FanoutMessage.moreProposals",
                )
            }
            FanoutEvent::Commit {
                commit,
                external_proposals,
            } => {
                commit.expect_shape(MessageShape::Commit, "FanoutMessage.message")?;
                check_all(
                    external_proposals,
                    MessageShape::Proposal,
                    "FanoutMessage.externalProposals",
                )
            }
        }
    }
}

impl FanoutMessage {
    const NAME: &'static str = "FanoutMessage";

    /// Decodes exactly one FanoutMessage, rejecting trailing bytes. A notify body may
    /// hold several: use [`decode_fanout_batch`] for request bodies.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes one FanoutMessage.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }
}

/// Decodes a notify body: one or more concatenated FanoutMessages. An empty body is
/// rejected; an error names the position of the failing message.
pub fn decode_fanout_batch(bytes: &[u8]) -> Result<Vec<FanoutMessage>, FramingError> {
    if bytes.is_empty() {
        return Err(FramingError::EmptyBatch);
    }
    let mut reader = bytes;
    let mut messages = Vec::new();
    while !reader.is_empty() {
        let index = messages.len();
        let message =
            FanoutMessage::tls_deserialize(&mut reader).map_err(|e| FramingError::InBatch {
                index,
                source: Box::new(FramingError::decoding(FanoutMessage::NAME, e)),
            })?;
        messages.push(message);
    }
    Ok(messages)
}

/// Encodes FanoutMessages as one notify body (their concatenation).
pub fn encode_fanout_batch(messages: &[FanoutMessage]) -> Result<Vec<u8>, FramingError> {
    if messages.is_empty() {
        return Err(FramingError::Encode {
            message: "notify body",
            reason: "a notify body needs at least one FanoutMessage".into(),
        });
    }
    let mut out = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        message
            .tls_serialize(&mut out)
            .map_err(|e| FramingError::InBatch {
                index,
                source: Box::new(FramingError::encoding(FanoutMessage::NAME, e)),
            })?;
    }
    Ok(out)
}

impl Size for FanoutMessage {
    fn tls_serialized_len(&self) -> usize {
        let event = match &self.event {
            FanoutEvent::Application { message, frank } => {
                message.tls_serialized_len() + frank.tls_serialized_len()
            }
            FanoutEvent::Welcome {
                welcome,
                ratchet_tree,
            } => welcome.tls_serialized_len() + ratchet_tree.tls_serialized_len(),
            FanoutEvent::Proposal {
                proposal,
                more_proposals,
            } => proposal.tls_serialized_len() + more_proposals.tls_serialized_len(),
            FanoutEvent::Commit {
                commit,
                external_proposals,
            } => commit.tls_serialized_len() + external_proposals.tls_serialized_len(),
        };
        self.timestamp.tls_serialized_len() + event
    }
}

impl Serialize for FanoutMessage {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        self.event
            .check()
            .map_err(|e| tls_codec::Error::EncodingError(e.to_string()))?;
        let written = self.timestamp.tls_serialize(writer)?;
        let event = match &self.event {
            FanoutEvent::Application { message, frank } => {
                message.tls_serialize(writer)? + frank.tls_serialize(writer)?
            }
            FanoutEvent::Welcome {
                welcome,
                ratchet_tree,
            } => welcome.tls_serialize(writer)? + ratchet_tree.tls_serialize(writer)?,
            FanoutEvent::Proposal {
                proposal,
                more_proposals,
            } => proposal.tls_serialize(writer)? + more_proposals.tls_serialize(writer)?,
            FanoutEvent::Commit {
                commit,
                external_proposals,
            } => commit.tls_serialize(writer)? + external_proposals.tls_serialize(writer)?,
        };
        Ok(written + event)
    }
}

impl Deserialize for FanoutMessage {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let timestamp = u64::tls_deserialize(bytes)?;
        let message = MlsMessage::tls_deserialize(bytes)?;
        let event = match message.shape() {
            MessageShape::Application => FanoutEvent::Application {
                message,
                frank: Option::<Frank>::tls_deserialize(bytes)?,
            },
            MessageShape::Welcome => FanoutEvent::Welcome {
                welcome: message,
                ratchet_tree: RatchetTreeOption::tls_deserialize(bytes)?,
            },
            MessageShape::Proposal => FanoutEvent::Proposal {
                proposal: message,
                more_proposals: Vec::<MlsMessage>::tls_deserialize(bytes)?,
            },
            MessageShape::Commit => FanoutEvent::Commit {
                commit: message,
                external_proposals: Vec::<MlsMessage>::tls_deserialize(bytes)?,
            },
            MessageShape::Other => {
                return Err(tls_codec::Error::DecodingError(format!(
                    "FanoutMessage.message must be an application PrivateMessage, a Welcome, or \
                     a PublicMessage carrying a proposal or commit, found {}",
                    message.describe()
                )));
            }
        };
        event.check()?;
        Ok(FanoutMessage { timestamp, event })
    }
}
