//! draft-ietf-mimi-protocol-06 server-to-server framing (TLS presentation language).
//!
//! One module per endpoint of section 5, plus the room state components of section 7:
//!
//! | endpoint                       | request                  | response                |
//! |--------------------------------|--------------------------|-------------------------|
//! | `GET /.well-known/mimi-protocol-directory` | -            | [`Directory`] (JSON)    |
//! | `POST /keyMaterial/{targetUser}` | [`KeyMaterialRequest`] | [`KeyMaterialResponse`] |
//! | `POST /update/{roomId}`        | [`UpdateRequest`]        | [`UpdateRoomResponse`]  |
//! | `POST /submitMessage/{roomId}` | [`SubmitMessageRequest`] | [`SubmitMessageResponse`] |
//! | `POST /notify/{roomId}`        | [`decode_fanout_batch`] of [`FanoutMessage`] | (none) |
//! | `POST /groupInfo/{roomId}`     | [`GroupInfoRequest`]     | [`GroupInfoResponse`] (+ [`GroupInfoRatchetTreeTBE`] inside) |
//! | `POST /identifierQuery/{domain}` | [`IdentifierRequest`]  | [`IdentifierResponse`]  |
//! | `POST /reportAbuse/{roomId}`   | [`AbuseReport`]          | (none)                  |
//! | `POST /requestConsent/{targetDomain}`, `/updateConsent/{requesterDomain}` | [`ConsentEntry`] | (none) |
//!
//! Room state components: [`ParticipantListData`], [`ParticipantListUpdate`],
//! [`RoomMetaData`], and the room policy's [`RoleData`] (draft-ietf-mimi-room-policy-03,
//! with the [`capability`] registry); franking: [`Frank`], [`FrankAAD`], [`FrankingAgentData`],
//! [`FrankingIntegrityTBS`].
//!
//! Every top-level type has `decode(&[u8]) -> Result<Self, FramingError>`, which
//! rejects trailing bytes and never panics, and `encode(&self)`. Decoded values are
//! untrusted: MLS objects are openmls `*In` types, URIs are raw
//! [`IdentifierUri`]s, and nothing is signature-checked here. Where the draft's
//! `select` depends on a field of an embedded MLS message ([`HandshakeBundle`],
//! [`FanoutMessage`]), the decoder inspects the message and rejects shapes the draft
//! gives no branch for. Signatures (`SignWithLabel`) are made and checked by the
//! caller over the `tbs_bytes()` of the request or response.
//!
//! ```
//! use entente_wire::mimi::{SubmitMessageResponse, SubmitOutcome, Protocol};
//!
//! let response = SubmitMessageResponse {
//!     protocol: Protocol::Mls10,
//!     outcome: SubmitOutcome::EpochTooOld { current_epoch: 7 },
//! };
//! let bytes = response.encode()?;
//! assert_eq!(bytes, [1, 2, 0, 0, 0, 0, 0, 0, 0, 7]);
//! assert_eq!(SubmitMessageResponse::decode(&bytes)?, response);
//! # Ok::<(), entente_wire::mimi::FramingError>(())
//! ```

mod abuse;
mod app_data;
mod common;
mod consent;
mod directory;
mod error;
mod fanout;
mod group_info;
mod group_state;
mod identifier_query;
mod key_material;
mod roles;
mod room_state;
mod submit;
mod tree;
mod update;

pub use abuse::{AbuseReport, AbuseType, AbusiveMessage};
pub use app_data::{AppDataDictionary, ComponentData, UnsortedComponents};
pub use common::{IdentifierUri, MessageShape, MlsMessage, Protocol};
pub use consent::{ConsentEntry, ConsentOperation, ConsentScope};
pub use directory::{Directory, DirectoryError};
pub use error::FramingError;
pub use fanout::{FanoutEvent, FanoutMessage, decode_fanout_batch, encode_fanout_batch};
pub use group_info::{
    GroupInfoCode, GroupInfoRatchetTreeTBE, GroupInfoRequest, GroupInfoRequestTBS,
    GroupInfoResponse, GroupInfoResponseTBS, GroupInfoResult, GroupInfoSuccess, PendingProposal,
};
pub use group_state::RoomGroupState;
pub use identifier_query::{
    FieldSource, IdentifierQueryCode, IdentifierRequest, IdentifierResponse, ProfileField,
    QueryElement, SearchIdentifierType, SearchKind, UserProfile,
};
pub use key_material::{
    ClientKeyMaterial, ClientMaterial, KeyMaterialClientCode, KeyMaterialRequest,
    KeyMaterialRequestTBS, KeyMaterialResponse, KeyMaterialUserCode,
};
pub use roles::{
    ROLES_LIST_COMPONENT_ID, Role, RoleData, SingleSourceRoleChangeTargets, capability,
};
pub use room_state::{
    FRANK_AAD_COMPONENT_ID, FRANKING_AGENT_COMPONENT_ID, NulInString,
    PARTICIPANT_LIST_COMPONENT_ID, ParticipantListData, ParticipantListUpdate,
    ROOM_METADATA_COMPONENT_ID, RichDescription, RoomMetaData, UTF8String, Uri, UserRolePair,
    UserindexRolePair,
};
pub use submit::{
    Frank, FrankAAD, FrankingAgentData, FrankingIntegrityTBS, ServerFrankingContext,
    SubmitMessageRequest, SubmitMessageResponse, SubmitOutcome, SubmitResponseCode,
};
pub use tree::{
    GroupInfoOption, GroupInfoRepresentation, PartialGroupInfo, RatchetTreeOption,
    RatchetTreePresence, RatchetTreeRepresentation,
};
pub use update::{
    HandshakeBundle, UpdateOutcome, UpdateRequest, UpdateResponseCode, UpdateRoomResponse,
};
