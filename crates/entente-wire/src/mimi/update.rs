//! Update room state (draft-ietf-mimi-protocol-06 section 5.3): `POST /update/{roomId}`.

use std::io::{Read, Write};

use openmls::ciphersuite::hash_ref::ProposalRef;
use openmls::prelude::Welcome;
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize};

use super::common::{MessageShape, MlsMessage};
use super::error::{FramingError, decode_exact, encode};
use super::tree::{GroupInfoOption, RatchetTreeOption};

/// A proposal or commit with what the hub needs to accept it.
///
/// ```text
/// struct {
///   /* A Proposal or Commit which is either a PublicMessage; */
///   /* or a SemiPrivateMessage                               */
///   MLSMessage proposalOrCommit;
///   select (proposalOrCommit.content.content_type) {
///     case commit:
///       /* Both the Welcome and GroupInfo omit the ratchet_tree */
///       optional<Welcome> welcome;
///       GroupInfoOption groupInfoOption;
///       RatchetTreeOption ratchetTreeOption;
///     case proposal:
///       /* a list of additional proposals, each represented */
///       /* as either PublicMessage or SemiPrivateMessage    */
///       MLSMessage moreProposals<V>;
/// } HandshakeBundle;
/// ```
///
/// The `select` is on the embedded message's content type, so the variant is chosen
/// by the message and this type is encoded by hand. Every MLS message must be a
/// PublicMessage: openmls 0.9 does not implement SemiPrivateMessage, and a
/// PrivateMessage handshake would hide the change from the hub. Application messages
/// are rejected (the draft defines no branch for them).
#[derive(Debug, Clone, PartialEq)]
pub enum HandshakeBundle {
    /// `proposalOrCommit` is a commit.
    Commit {
        /// A PublicMessage carrying a commit.
        commit: MlsMessage,
        /// The Welcome for added clients, without a `ratchet_tree` extension.
        welcome: Option<Welcome>,
        /// The new epoch's GroupInfo, for the hub.
        group_info: GroupInfoOption,
        /// How the hub gets the new ratchet tree.
        ratchet_tree: RatchetTreeOption,
    },
    /// `proposalOrCommit` is a proposal.
    Proposal {
        /// A PublicMessage carrying a proposal.
        proposal: MlsMessage,
        /// Further proposals submitted together, each a PublicMessage carrying a
        /// proposal.
        more_proposals: Vec<MlsMessage>,
    },
}

impl HandshakeBundle {
    /// The commit or first proposal.
    pub fn proposal_or_commit(&self) -> &MlsMessage {
        match self {
            HandshakeBundle::Commit { commit, .. } => commit,
            HandshakeBundle::Proposal { proposal, .. } => proposal,
        }
    }

    fn check(&self) -> Result<(), tls_codec::Error> {
        match self {
            HandshakeBundle::Commit { commit, .. } => {
                commit.expect_shape(MessageShape::Commit, "HandshakeBundle.proposalOrCommit")
            }
            HandshakeBundle::Proposal {
                proposal,
                more_proposals,
            } => {
                proposal
                    .expect_shape(MessageShape::Proposal, "HandshakeBundle.proposalOrCommit")?;
                check_all(
                    more_proposals,
                    MessageShape::Proposal,
                    "HandshakeBundle.moreProposals",
                )
            }
        }
    }
}

/// Checks that every message in `messages` has shape `expected`.
pub(crate) fn check_all(
    messages: &[MlsMessage],
    expected: MessageShape,
    field: &str,
) -> Result<(), tls_codec::Error> {
    for (index, message) in messages.iter().enumerate() {
        message.expect_shape(expected, &format!("{field}[{index}]"))?;
    }
    Ok(())
}

impl Size for HandshakeBundle {
    fn tls_serialized_len(&self) -> usize {
        match self {
            HandshakeBundle::Commit {
                commit,
                welcome,
                group_info,
                ratchet_tree,
            } => {
                commit.tls_serialized_len()
                    + welcome.tls_serialized_len()
                    + group_info.tls_serialized_len()
                    + ratchet_tree.tls_serialized_len()
            }
            HandshakeBundle::Proposal {
                proposal,
                more_proposals,
            } => proposal.tls_serialized_len() + more_proposals.tls_serialized_len(),
        }
    }
}

impl Serialize for HandshakeBundle {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        self.check()
            .map_err(|e| tls_codec::Error::EncodingError(e.to_string()))?;
        match self {
            HandshakeBundle::Commit {
                commit,
                welcome,
                group_info,
                ratchet_tree,
            } => Ok(commit.tls_serialize(writer)?
                + welcome.tls_serialize(writer)?
                + group_info.tls_serialize(writer)?
                + ratchet_tree.tls_serialize(writer)?),
            HandshakeBundle::Proposal {
                proposal,
                more_proposals,
            } => Ok(proposal.tls_serialize(writer)? + more_proposals.tls_serialize(writer)?),
        }
    }
}

impl Deserialize for HandshakeBundle {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let message = MlsMessage::tls_deserialize(bytes)?;
        let bundle = match message.shape() {
            MessageShape::Commit => HandshakeBundle::Commit {
                commit: message,
                welcome: Option::<Welcome>::tls_deserialize(bytes)?,
                group_info: GroupInfoOption::tls_deserialize(bytes)?,
                ratchet_tree: RatchetTreeOption::tls_deserialize(bytes)?,
            },
            MessageShape::Proposal => HandshakeBundle::Proposal {
                proposal: message,
                more_proposals: Vec::<MlsMessage>::tls_deserialize(bytes)?,
            },
            _ => {
                return Err(tls_codec::Error::DecodingError(format!(
                    "HandshakeBundle.proposalOrCommit must be a PublicMessage carrying a proposal \
                     or commit, found {}",
                    message.describe()
                )));
            }
        };
        bundle.check()?;
        Ok(bundle)
    }
}

/// The request body of `POST /update/{roomId}`.
///
/// ```text
/// struct {
///   select (room.protocol) {
///     case mls10:
///       HandshakeBundle bundle;
///   };
/// } UpdateRequest;
/// ```
///
/// The protocol comes from the room, not the wire; the only one is MLS 1.0, so the
/// body is exactly a [`HandshakeBundle`].
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct UpdateRequest {
    /// The proposal or commit bundle.
    pub bundle: HandshakeBundle,
}

impl UpdateRequest {
    const NAME: &'static str = "UpdateRequest";

    /// Decodes a request body, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes the request body.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }
}

/// ```text
/// enum {
///   success(0),
///   wrongEpoch(1),
///   notAllowed(2),
///   invalidProposal(3),
///   (255)
/// } UpdateResponseCode;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum UpdateResponseCode {
    /// Accepted; it will be distributed.
    Success = 0,
    /// The hub is at a different epoch.
    WrongEpoch = 1,
    /// Policy or authorisation forbids it.
    NotAllowed = 2,
    /// At least one proposal is invalid.
    InvalidProposal = 3,
}

/// The response body of `POST /update/{roomId}`.
///
/// ```text
/// struct {
///   UpdateResponseCode responseCode;
///   string errorDescription;
///   select (responseCode) {
///     case success:
///       /* the hub acceptance time (in milliseconds from the UNIX epoch) */
///       uint64 accepted_timestamp;
///     case wrongEpoch:
///       /* current MLS epoch for the MLS group */
///       uint64 currentEpoch;
///     case invalidProposal:
///       ProposalRef invalidProposals<V>;
///   };
/// } UpdateRoomResponse
/// ```
///
/// `string` is not defined by the draft; it is read as MLS-style `opaque<V>` holding
/// UTF-8 (invalid UTF-8 is rejected). `responseCode` is [`UpdateOutcome::code`]; it is
/// separated from its `select` by `errorDescription`, so this is encoded by hand.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRoomResponse {
    /// Human-readable detail; may be empty.
    pub error_description: String,
    /// The response code and what it selects.
    pub outcome: UpdateOutcome,
}

/// `responseCode` with the fields it selects.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    /// `success`.
    Success {
        /// When the hub accepted the update, in milliseconds since the UNIX epoch.
        accepted_timestamp: u64,
    },
    /// `wrongEpoch`.
    WrongEpoch {
        /// The group's current epoch at the hub.
        current_epoch: u64,
    },
    /// `notAllowed`.
    NotAllowed,
    /// `invalidProposal`.
    InvalidProposal {
        /// References of the invalid proposals.
        invalid_proposals: Vec<ProposalRef>,
    },
}

impl UpdateOutcome {
    /// The `responseCode`.
    pub fn code(&self) -> UpdateResponseCode {
        match self {
            UpdateOutcome::Success { .. } => UpdateResponseCode::Success,
            UpdateOutcome::WrongEpoch { .. } => UpdateResponseCode::WrongEpoch,
            UpdateOutcome::NotAllowed => UpdateResponseCode::NotAllowed,
            UpdateOutcome::InvalidProposal { .. } => UpdateResponseCode::InvalidProposal,
        }
    }
}

impl UpdateRoomResponse {
    const NAME: &'static str = "UpdateRoomResponse";

    /// Decodes a response body, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes the response body.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }
}

impl Size for UpdateRoomResponse {
    fn tls_serialized_len(&self) -> usize {
        let selected = match &self.outcome {
            UpdateOutcome::Success { accepted_timestamp } => {
                accepted_timestamp.tls_serialized_len()
            }
            UpdateOutcome::WrongEpoch { current_epoch } => current_epoch.tls_serialized_len(),
            UpdateOutcome::NotAllowed => 0,
            UpdateOutcome::InvalidProposal { invalid_proposals } => {
                invalid_proposals.tls_serialized_len()
            }
        };
        self.outcome.code().tls_serialized_len()
            + self.error_description.tls_serialized_len()
            + selected
    }
}

impl Serialize for UpdateRoomResponse {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let mut written = self.outcome.code().tls_serialize(writer)?;
        written += self.error_description.tls_serialize(writer)?;
        written += match &self.outcome {
            UpdateOutcome::Success { accepted_timestamp } => {
                accepted_timestamp.tls_serialize(writer)?
            }
            UpdateOutcome::WrongEpoch { current_epoch } => current_epoch.tls_serialize(writer)?,
            UpdateOutcome::NotAllowed => 0,
            UpdateOutcome::InvalidProposal { invalid_proposals } => {
                invalid_proposals.tls_serialize(writer)?
            }
        };
        Ok(written)
    }
}

impl Deserialize for UpdateRoomResponse {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let code = UpdateResponseCode::tls_deserialize(bytes)?;
        let error_description = String::tls_deserialize(bytes)?;
        let outcome = match code {
            UpdateResponseCode::Success => UpdateOutcome::Success {
                accepted_timestamp: u64::tls_deserialize(bytes)?,
            },
            UpdateResponseCode::WrongEpoch => UpdateOutcome::WrongEpoch {
                current_epoch: u64::tls_deserialize(bytes)?,
            },
            UpdateResponseCode::NotAllowed => UpdateOutcome::NotAllowed,
            UpdateResponseCode::InvalidProposal => UpdateOutcome::InvalidProposal {
                invalid_proposals: Vec::<ProposalRef>::tls_deserialize(bytes)?,
            },
        };
        Ok(UpdateRoomResponse {
            error_description,
            outcome,
        })
    }
}
