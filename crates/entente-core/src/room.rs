//! MIMI rooms: the room state kept in the MLS group context, and the room policy
//! (draft-ietf-mimi-room-policy-03) that decides which changes to it are allowed.
//!
//! A [`RoomState`] is the participant list (draft-ietf-mimi-protocol-06 section 7.5),
//! the room metadata (section 7.6) and the roles (room-policy-03 section 3). It travels
//! as an `AppDataDictionary` in a private-use GroupContext extension,
//! [`ROOM_STATE_EXTENSION_TYPE`], and every commit that changes the extension or the
//! group's members is checked with [`authorize`]. The checks are made on the
//! difference between the state and members before and after the commit, so the same
//! code serves the hub, which accepts or rejects a commit, and every client, which
//! re-checks what the hub let through.
//!
//! Nothing here touches MLS: callers read the client IDs out of the ratchet trees and
//! the extension out of the group contexts.
//!
//! ```
//! use entente_core::room::{Actor, Change, RoomState, authorize, roles};
//! use entente_wire::ids::{ClientId, RoomId, UserId};
//!
//! let alice: UserId = "mimi://a.example/u/alice".parse()?;
//! let bob: UserId = "mimi://b.example/u/bob".parse()?;
//! let alice_phone = ClientId::new(&alice, "phone")?;
//! let bob_laptop = ClientId::new(&bob, "laptop")?;
//! let room = RoomId::parse_uri("mimi://a.example/r/clubhouse")?;
//!
//! // Alice creates the room, so she is its owner; then she adds Bob as a member.
//! let before = RoomState::new(&room, &alice, "Clubhouse");
//! let mut after = before.clone();
//! after.set_role(&bob, roles::MEMBER);
//! let actor = Actor::Member(alice_phone.clone());
//! authorize(&Change {
//!     actor: &actor,
//!     self_proposed_removals: &[],
//!     before: &before,
//!     before_members: &[alice_phone.clone()],
//!     after: &after,
//!     after_members: &[alice_phone, bob_laptop],
//! })?;
//!
//! // Bob, a member, may not rename the room.
//! assert!(!after.can(&bob, entente_wire::mimi::capability::CAN_CHANGE_ROOM_NAME));
//! assert_eq!(RoomState::decode(&after.encode()?)?, after);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeSet;

use entente_wire::ids::{RoomId, UserId};
use entente_wire::mimi::{
    AppDataDictionary, ComponentData, FramingError, IdentifierUri, PARTICIPANT_LIST_COMPONENT_ID,
    ParticipantListData, ROLES_LIST_COMPONENT_ID, ROOM_METADATA_COMPONENT_ID, Role, RoleData,
    RoomMetaData, SingleSourceRoleChangeTargets, UTF8String, Uri, UserRolePair, capability,
};
use tls_codec::VLBytes;

mod error;
mod policy;

pub use error::{PolicyError, RoomStateError};
pub use policy::{Actor, Change, authorize, authorize_external_join, authorize_send};

/// Private-use MLS GroupContext extension type that carries the room's
/// AppDataDictionary (we cannot use AppDataUpdate proposals: OpenMLS 0.9's
/// extensions-draft feature does not build with our crypto provider).
pub const ROOM_STATE_EXTENSION_TYPE: u16 = 0xF0A1;

/// The role indices of [`RoomState::default_roles`].
pub mod roles {
    /// Users not in the participant list (room-policy-03 section 3). Not defined by
    /// default, so by default nobody can join a room on their own.
    pub const NONE: u32 = 0;
    /// Banned users: no capabilities, no clients (section 8.1.3 fixes index and name).
    pub const BANNED: u32 = 1;
    /// Ordinary participants.
    pub const MEMBER: u32 = 2;
    /// Moderators: add, remove, kick, ban and promote members; change the metadata.
    pub const ADMIN: u32 = 3;
    /// Owners: everything an admin can, plus managing admins and owners and changing
    /// the role definitions. A room always keeps at least one.
    pub const OWNER: u32 = 4;
}

/// The name role 1 must have for bans (room-policy-03 section 8.1.3).
const BANNED_ROLE_NAME: &str = "banned";

/// A room's state: who is in it with which role, what the roles allow, and the
/// metadata.
///
/// The fields are public so callers can build and inspect states; [`RoomState::decode`]
/// and [`RoomState::encode`] check that a state is valid ([`RoomState::validate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomState {
    /// The participant list in order, each user with a non-zero role index.
    pub participants: Vec<(UserId, u32)>,
    /// The role definitions.
    pub roles: RoleData,
    /// Name, descriptions, avatar, subject and mood.
    pub metadata: RoomMetaData,
}

impl RoomState {
    /// A new room created by `creator`, who becomes its only participant, as
    /// [`roles::OWNER`], with the [default roles](RoomState::default_roles), the room's
    /// URI and the name `name` (NUL characters, which room names cannot hold, are
    /// dropped).
    pub fn new(room: &RoomId, creator: &UserId, name: &str) -> Self {
        let name: String = name.chars().filter(|&c| c != '\0').collect();
        RoomState {
            participants: vec![(creator.clone(), roles::OWNER)],
            roles: Self::default_roles(),
            metadata: RoomMetaData {
                room_uri: Uri::new(room.to_uri()),
                room_name: UTF8String::new(name).unwrap_or_default(),
                ..RoomMetaData::default()
            },
        }
    }

    /// The roles of a new room: [`roles::BANNED`], [`roles::MEMBER`], [`roles::ADMIN`]
    /// and [`roles::OWNER`], each with the capabilities of the one before plus its own
    /// (banned has none). Role 0 is not defined, so the room is invite-only.
    ///
    /// | role   | adds to the previous role | may move users (from: to) |
    /// |--------|---------------------------|---------------------------|
    /// | member | sending, receiving, reacting, attachments, calls; own clients; leaving | 2: 0 |
    /// | admin  | add, remove, kick, ban, unban, change roles; name, description, avatar, subject, mood | 0: 2; 1: 0, 2; 2: 0, 1, 3; 3: 0 |
    /// | owner  | change role definitions; at least one owner | 0: 2, 3, 4; 1: 0, 2; 2: 0, 1, 3, 4; 3: 0, 1, 2, 4; 4: 0, 2, 3 |
    pub fn default_roles() -> RoleData {
        use capability::*;
        let member = [
            CAN_ADD_OWN_CLIENT,
            CAN_REMOVE_OWN_CLIENT,
            CAN_REMOVE_SELF,
            CAN_SEND_MESSAGE,
            CAN_RECEIVE_MESSAGE,
            CAN_REPORT_ABUSE,
            CAN_REPLY_TO_MESSAGE,
            CAN_REACT_TO_MESSAGE,
            CAN_EDIT_OWN_MESSAGE,
            CAN_DELETE_OWN_MESSAGE,
            CAN_UPLOAD_ATTACHMENT,
            CAN_DOWNLOAD_ATTACHMENT,
            CAN_START_CALL,
            CAN_JOIN_CALL,
            CAN_SEND_AUDIO,
            CAN_RECEIVE_AUDIO,
        ];
        let admin = [
            CAN_ADD_PARTICIPANT,
            CAN_REMOVE_PARTICIPANT,
            CAN_KICK,
            CAN_BAN,
            CAN_UNBAN,
            CAN_CHANGE_USER_ROLE,
            CAN_CHANGE_ROOM_NAME,
            CAN_CHANGE_ROOM_DESCRIPTION,
            CAN_CHANGE_ROOM_AVATAR,
            CAN_CHANGE_ROOM_SUBJECT,
            CAN_CHANGE_ROOM_MOOD,
        ];
        let owner = [CAN_CHANGE_ROLE_DEFINITIONS];

        let capabilities = |sets: &[&[u16]]| {
            let mut all: Vec<u16> = sets.concat();
            all.sort_unstable();
            all
        };
        let changes = |entries: &[(u32, &[u32])]| {
            entries
                .iter()
                .map(
                    |&(from_role_index, targets)| SingleSourceRoleChangeTargets {
                        from_role_index,
                        target_role_indexes: targets.to_vec(),
                    },
                )
                .collect()
        };
        let role = |role_index, name: &str, role_capabilities, authorized_role_changes| Role {
            role_index,
            role_name: name.to_owned(),
            role_description: String::new(),
            role_capabilities,
            minimum_participants_constraint: 0,
            maximum_participants_constraint: None,
            minimum_active_participants_constraint: 0,
            maximum_active_participants_constraint: None,
            authorized_role_changes,
        };

        RoleData {
            roles: vec![
                Role {
                    maximum_active_participants_constraint: Some(0),
                    ..role(roles::BANNED, BANNED_ROLE_NAME, Vec::new(), Vec::new())
                },
                role(
                    roles::MEMBER,
                    "member",
                    capabilities(&[&member]),
                    changes(&[(2, &[0])]),
                ),
                role(
                    roles::ADMIN,
                    "admin",
                    capabilities(&[&member, &admin]),
                    changes(&[(0, &[2]), (1, &[0, 2]), (2, &[0, 1, 3]), (3, &[0])]),
                ),
                Role {
                    minimum_participants_constraint: 1,
                    ..role(
                        roles::OWNER,
                        "owner",
                        capabilities(&[&member, &admin, &owner]),
                        changes(&[
                            (0, &[2, 3, 4]),
                            (1, &[0, 2]),
                            (2, &[0, 1, 3, 4]),
                            (3, &[0, 1, 2, 4]),
                            (4, &[0, 2, 3]),
                        ]),
                    )
                },
            ],
        }
    }

    /// Encodes the state as the body of the [`ROOM_STATE_EXTENSION_TYPE`] extension: an
    /// AppDataDictionary holding the participant list (0x0022), room metadata (0x0023)
    /// and roles list (0x0025). Refuses a state that [`RoomState::validate`] rejects, so
    /// whatever encodes also decodes.
    pub fn encode(&self) -> Result<Vec<u8>, RoomStateError> {
        self.validate()?;
        let participants = ParticipantListData {
            participants: self
                .participants
                .iter()
                .map(|(user, role_index)| UserRolePair {
                    user: IdentifierUri::from(user),
                    role_index: *role_index,
                })
                .collect(),
        };
        let component = |component_id, data: Vec<u8>| ComponentData {
            component_id,
            data: VLBytes::new(data),
        };
        let framing = RoomStateError::Framing;
        let entries = vec![
            component(
                PARTICIPANT_LIST_COMPONENT_ID,
                participants.encode().map_err(framing)?,
            ),
            component(
                ROOM_METADATA_COMPONENT_ID,
                self.metadata.encode().map_err(framing)?,
            ),
            component(
                ROLES_LIST_COMPONENT_ID,
                self.roles.encode().map_err(framing)?,
            ),
        ];
        // Sorted by construction; `new` checks it anyway.
        let dictionary = AppDataDictionary::new(entries).map_err(|e| {
            RoomStateError::Framing(FramingError::Encode {
                message: "AppDataDictionary",
                reason: e.to_string(),
            })
        })?;
        dictionary.encode().map_err(framing)
    }

    /// Decodes the body of a [`ROOM_STATE_EXTENSION_TYPE`] extension. All three
    /// components must be present and nothing else; participants must be canonical
    /// user URIs, listed once, with a non-zero role the roles list defines; see
    /// [`RoomState::validate`] for the rest.
    pub fn decode(bytes: &[u8]) -> Result<Self, RoomStateError> {
        let dictionary = AppDataDictionary::decode(bytes).map_err(RoomStateError::Framing)?;
        let (mut participants, mut metadata, mut roles) = (None, None, None);
        for entry in dictionary.entries() {
            let data = entry.data.as_slice();
            match entry.component_id {
                PARTICIPANT_LIST_COMPONENT_ID => {
                    participants = Some(ParticipantListData::decode(data))
                }
                ROOM_METADATA_COMPONENT_ID => metadata = Some(RoomMetaData::decode(data)),
                ROLES_LIST_COMPONENT_ID => roles = Some(RoleData::decode(data)),
                component_id => return Err(RoomStateError::UnexpectedComponent { component_id }),
            }
        }
        let missing = |component_id, name| RoomStateError::MissingComponent { component_id, name };
        let participants = participants
            .ok_or_else(|| missing(PARTICIPANT_LIST_COMPONENT_ID, "participant_list"))?
            .map_err(RoomStateError::Framing)?;
        let metadata = metadata
            .ok_or_else(|| missing(ROOM_METADATA_COMPONENT_ID, "room_metadata"))?
            .map_err(RoomStateError::Framing)?;
        let roles = roles
            .ok_or_else(|| missing(ROLES_LIST_COMPONENT_ID, "roles_list"))?
            .map_err(RoomStateError::Framing)?;

        let participants = participants
            .participants
            .iter()
            .enumerate()
            .map(|(index, pair)| {
                let user = pair
                    .user
                    .to_user_id()
                    .map_err(|reason| RoomStateError::InvalidParticipant { index, reason })?;
                if user.to_uri().as_bytes() != pair.user.as_bytes() {
                    return Err(RoomStateError::NonCanonicalParticipant {
                        index,
                        found: String::from_utf8_lossy(pair.user.as_bytes())
                            .chars()
                            .take(80)
                            .collect(),
                        user: user.to_uri(),
                    });
                }
                Ok((user, pair.role_index))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let state = RoomState {
            participants,
            roles,
            metadata,
        };
        state.validate()?;
        Ok(state)
    }

    /// Checks what the types cannot: role indices are unique and only role 0 holds
    /// `canOpenJoin`; every participant is listed once with a non-zero role that the
    /// roles list defines.
    pub fn validate(&self) -> Result<(), RoomStateError> {
        let mut role_indices = BTreeSet::new();
        for role in &self.roles.roles {
            if !role_indices.insert(role.role_index) {
                return Err(RoomStateError::DuplicateRole {
                    role: role.role_index,
                });
            }
            if role.role_index != roles::NONE && role.has_capability(capability::CAN_OPEN_JOIN) {
                return Err(RoomStateError::OpenJoinOnNonZeroRole {
                    role: role.role_index,
                    name: role.role_name.clone(),
                });
            }
        }
        let mut users = BTreeSet::new();
        for (user, role) in &self.participants {
            if !users.insert(user) {
                return Err(RoomStateError::DuplicateParticipant {
                    user: user.to_uri(),
                });
            }
            if *role == roles::NONE {
                return Err(RoomStateError::ZeroRoleParticipant {
                    user: user.to_uri(),
                });
            }
            if !role_indices.contains(role) {
                return Err(RoomStateError::UndefinedRole {
                    user: user.to_uri(),
                    role: *role,
                });
            }
        }
        Ok(())
    }

    /// The role of `user`: [`roles::NONE`] (0) if not a participant.
    pub fn role_of(&self, user: &UserId) -> u32 {
        self.participants
            .iter()
            .find(|(participant, _)| participant == user)
            .map_or(roles::NONE, |(_, role)| *role)
    }

    /// The definition of role `index`, if the roles list has it.
    pub fn role(&self, index: u32) -> Option<&Role> {
        self.roles.role(index)
    }

    /// Whether `user`'s role holds `capability`. Users not in the participant list have
    /// role 0, which holds capabilities only if the roles list defines it.
    pub fn can(&self, user: &UserId, capability: u16) -> bool {
        self.role(self.role_of(user))
            .is_some_and(|role| role.has_capability(capability))
    }

    /// Gives `user` role `role`: appends a new participant, changes an existing one's
    /// role in place, or removes them from the list when `role` is [`roles::NONE`].
    pub fn set_role(&mut self, user: &UserId, role: u32) {
        let existing = self
            .participants
            .iter()
            .position(|(participant, _)| participant == user);
        match (existing, role) {
            (Some(index), roles::NONE) => {
                self.participants.remove(index);
            }
            (Some(index), role) => {
                if let Some(entry) = self.participants.get_mut(index) {
                    entry.1 = role;
                }
            }
            (None, roles::NONE) => {}
            (None, role) => self.participants.push((user.clone(), role)),
        }
    }

    /// Sets the room name.
    pub fn set_name(&mut self, name: &str) -> Result<(), RoomStateError> {
        self.metadata.room_name = text("name", name)?;
        Ok(())
    }

    /// Sets the room subject (what clients show as the topic).
    pub fn set_subject(&mut self, subject: &str) -> Result<(), RoomStateError> {
        self.metadata.room_subject = text("subject", subject)?;
        Ok(())
    }

    /// Whether `role` is the ban role: index 1 and named `"banned"` (section 8.1.3).
    fn is_banned_role(&self, role: u32) -> bool {
        role == roles::BANNED
            && self
                .role(role)
                .is_some_and(|definition| definition.role_name == BANNED_ROLE_NAME)
    }
}

fn text(field: &'static str, value: &str) -> Result<UTF8String, RoomStateError> {
    UTF8String::new(value).map_err(|source| RoomStateError::InvalidText { field, source })
}

#[cfg(test)]
mod tests;
