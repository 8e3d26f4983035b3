//! The roles list (draft-ietf-mimi-room-policy-03 section 3, component 0x0025) and the
//! MIMI Role Capabilities registry (section 10.2).
//!
//! Decoding checks only what the bytes can say: lengths, `optional` flags, and that
//! role names and descriptions are UTF-8. Whether the roles make sense together (unique
//! indices, `canOpenJoin` only on role 0) is for the room policy layer.

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize};

use super::error::{FramingError, decode_exact, encode};

/// The `roles_list` component ID (room-policy-03 section 10.1.2, suggested value).
pub const ROLES_LIST_COMPONENT_ID: u16 = 0x0025;

/// Who may move a participant from one role to which others.
///
/// ```text
/// struct {
///    uint32 from_role_index;
///    uint32 target_role_indexes<V>;
/// } SingleSourceRoleChangeTargets;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct SingleSourceRoleChangeTargets {
    /// The role the participant has now (0: not in the participant list).
    pub from_role_index: u32,
    /// The roles the holder may move them to (0: out of the participant list).
    pub target_role_indexes: Vec<u32>,
}

/// One role: its capabilities, constraints and authorised role changes.
///
/// ```text
/// /* See MIMI Capability Types IANA registry */
/// uint16 CapabilityType;
///
/// struct {
///   uint32 role_index;
///   opaque role_name<V>;
///   opaque role_description<V>;
///   CapabilityType role_capabilities<V>;
///   uint32 minimum_participants_constraint;
///   optional uint32 maximum_participants_constraint;
///   uint32 minimum_active_participants_constraint;
///   optional uint32 maximum_active_participants_constraint;
///   SingleSourceRoleChangeTargets authorized_role_changes<V>;
/// } Role;
/// ```
///
/// `role_name` and `role_description` are declared `opaque` but are text; they are
/// `String`s here (same encoding) and invalid UTF-8 is rejected when decoding.
/// `optional` is RFC 9420's one-byte presence flag (0 or 1) followed by the value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct Role {
    /// The index other components use to refer to this role. Need not be contiguous;
    /// 0 is the role of users not in the participant list.
    pub role_index: u32,
    /// Human-readable name; `"banned"` has a meaning for role 1 (section 8.1.3).
    pub role_name: String,
    /// Human-readable description; may be empty.
    pub role_description: String,
    /// The capabilities, values from [`capability`].
    pub role_capabilities: Vec<u16>,
    /// Fewest participants with this role; 0 for no minimum.
    pub minimum_participants_constraint: u32,
    /// Most participants with this role; `None` for no maximum.
    pub maximum_participants_constraint: Option<u32>,
    /// Fewest participants with this role that have a client in the MLS group.
    pub minimum_active_participants_constraint: u32,
    /// Most participants with this role that have a client in the MLS group; `Some(0)`
    /// means none may have a client in the group.
    pub maximum_active_participants_constraint: Option<u32>,
    /// The role changes a holder of this role may make (section 8.1).
    pub authorized_role_changes: Vec<SingleSourceRoleChangeTargets>,
}

/// The roles of a room: the `data` of the roles list component, and the format of a
/// `RoleUpdate`, which replaces it entirely.
///
/// ```text
/// struct {
///   Role roles<V>;
/// } RoleData;
///
/// RoleData roles_list;
/// RoleData RoleUpdate;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct RoleData {
    /// The roles, in no required order.
    pub roles: Vec<Role>,
}

impl RoleData {
    const NAME: &'static str = "RoleData";

    /// Decodes component data (or a `RoleUpdate`), rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes component data (or a `RoleUpdate`).
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }

    /// The first role with index `role_index`, if any.
    pub fn role(&self, role_index: u32) -> Option<&Role> {
        self.roles.iter().find(|role| role.role_index == role_index)
    }
}

impl Role {
    /// Whether the role holds `capability`.
    pub fn has_capability(&self, capability: u16) -> bool {
        self.role_capabilities.contains(&capability)
    }

    /// Whether `authorized_role_changes` lets a holder of this role move a participant
    /// from role `from` to role `to` (some entry for `from` lists `to`).
    pub fn authorizes_change(&self, from: u32, to: u32) -> bool {
        self.authorized_role_changes
            .iter()
            .any(|entry| entry.from_role_index == from && entry.target_role_indexes.contains(&to))
    }
}

/// The MIMI Role Capabilities registry (room-policy-03 section 10.2, Table 1); the
/// meaning of each capability is in section 8.
///
/// Values 0xF000 to 0xFFFF are for private use. Capabilities the draft marks
/// "reserved" have a value but no defined meaning yet.
pub mod capability {
    /// Add another user, not yet a participant, to the participant list with a role
    /// the holder's `authorized_role_changes` allows from 0; also add that user's
    /// clients (8.1.1).
    pub const CAN_ADD_PARTICIPANT: u16 = 0x0000;
    /// Remove another user from the participant list and all of their clients (8.1.2).
    pub const CAN_REMOVE_PARTICIPANT: u16 = 0x0001;
    /// A participant may add its own clients: by external commit or proposal, or by
    /// Add proposals from one of its clients already in the group (8.1.1).
    pub const CAN_ADD_OWN_CLIENT: u16 = 0x0002;
    /// Propose the removal of one's own client without leaving the participant list
    /// (8.1.2).
    pub const CAN_REMOVE_OWN_CLIENT: u16 = 0x0003;
    /// On role 0 only: any user not in the participant list may join by itself, with a
    /// role from role 0's `authorized_role_changes` entry for 0 (8.1.1).
    pub const CAN_OPEN_JOIN: u16 = 0x0004;
    /// Join externally as this role if preauthorized for it (8.1.1, section 4).
    pub const CAN_JOIN_IF_PREAUTHORIZED: u16 = 0x0005;
    /// Leave the participant list, removing all of one's clients (8.1.2).
    pub const CAN_REMOVE_SELF: u16 = 0x0006;
    /// Reserved: create a join code.
    pub const CAN_CREATE_JOIN_CODE: u16 = 0x0007;
    /// Reserved: delete a join code.
    pub const CAN_DELETE_JOIN_CODE: u16 = 0x0008;
    /// Join externally with a valid join code for the room (8.1.1).
    pub const CAN_USE_JOIN_CODE: u16 = 0x0009;
    /// Move another user to role 1, `"banned"`, removing all of their clients (8.1.3).
    pub const CAN_BAN: u16 = 0x000a;
    /// Move another user out of role 1, `"banned"`, to a non-zero role (8.1.3). The
    /// registry spells it `canUnBan`, section 8.1.3 `canUnban`.
    pub const CAN_UNBAN: u16 = 0x000b;
    /// Remove another participant's clients without changing the participant list
    /// (8.1.2).
    pub const CAN_KICK: u16 = 0x000c;
    /// Reserved: knock.
    pub const CAN_KNOCK: u16 = 0x000d;
    /// Reserved: accept a knock.
    pub const CAN_ACCEPT_KNOCK: u16 = 0x000e;
    /// Change another participant's role as `authorized_role_changes` allows (8.1.3).
    pub const CAN_CHANGE_USER_ROLE: u16 = 0x000f;
    /// Change one's own role to the first role one is preauthorized for (8.1.3).
    pub const CAN_CHANGE_OWN_ROLE: u16 = 0x0010;
    /// Reserved: create a subgroup.
    pub const CAN_CREATE_SUBGROUP: u16 = 0x0011;

    /// Send instant messages to the room (8.3).
    pub const CAN_SEND_MESSAGE: u16 = 0x0100;
    /// Receive instant messages from the room (8.3).
    pub const CAN_RECEIVE_MESSAGE: u16 = 0x0101;
    /// Copy content from a received message (8.3).
    pub const CAN_COPY_MESSAGE: u16 = 0x0102;
    /// Report a franked message as abusive (8.3).
    pub const CAN_REPORT_ABUSE: u16 = 0x0103;
    /// Send a reply to another message (8.3).
    pub const CAN_REPLY_TO_MESSAGE: u16 = 0x0104;
    /// Send a reaction (8.3).
    pub const CAN_REACT_TO_MESSAGE: u16 = 0x0105;
    /// Replace one's own reaction (8.3).
    pub const CAN_EDIT_REACTION: u16 = 0x0106;
    /// Retract one's own reaction (8.3).
    pub const CAN_DELETE_OWN_REACTION: u16 = 0x0107;
    /// Delete another user's reaction (8.3).
    pub const CAN_DELETE_OTHER_REACTION: u16 = 0x0108;
    /// Edit one's own messages (8.3).
    pub const CAN_EDIT_OWN_MESSAGE: u16 = 0x0109;
    /// Retract one's own messages (8.3).
    pub const CAN_DELETE_OWN_MESSAGE: u16 = 0x010a;
    /// Retract other users' messages (8.3).
    pub const CAN_DELETE_OTHER_MESSAGE: u16 = 0x010b;
    /// Set the topic of a message (8.3).
    pub const CAN_START_TOPIC: u16 = 0x010c;
    /// Reply within the original message's topic (8.3).
    pub const CAN_REPLY_IN_TOPIC: u16 = 0x010d;
    /// Change the topic of one's own message (8.3).
    pub const CAN_EDIT_OWN_TOPIC: u16 = 0x010e;
    /// Change the topic of another user's message (8.3).
    pub const CAN_EDIT_OTHER_TOPIC: u16 = 0x010f;
    /// Reserved: send a direct message.
    pub const CAN_SEND_DIRECT_MESSAGE: u16 = 0x0110;
    /// Reserved: send a targeted message.
    pub const CAN_TARGET_MESSAGE: u16 = 0x0111;

    /// Upload an image for rendering (8.4).
    pub const CAN_UPLOAD_IMAGE: u16 = 0x0200;
    /// Upload audio for rendering (8.4).
    pub const CAN_UPLOAD_AUDIO: u16 = 0x0201;
    /// Upload video for rendering (8.4).
    pub const CAN_UPLOAD_VIDEO: u16 = 0x0202;
    /// Upload an attachment (8.4).
    pub const CAN_UPLOAD_ATTACHMENT: u16 = 0x0203;
    /// Download an image for rendering (8.4).
    pub const CAN_DOWNLOAD_IMAGE: u16 = 0x0204;
    /// Download audio for rendering (8.4).
    pub const CAN_DOWNLOAD_AUDIO: u16 = 0x0205;
    /// Download video for rendering (8.4).
    pub const CAN_DOWNLOAD_VIDEO: u16 = 0x0206;
    /// Download an attachment (8.4).
    pub const CAN_DOWNLOAD_ATTACHMENT: u16 = 0x0207;
    /// Send an inline link (8.3).
    pub const CAN_SEND_LINK: u16 = 0x0208;
    /// Send an inline link with a preview (8.3).
    pub const CAN_SEND_LINK_PREVIEW: u16 = 0x0209;
    /// Open a sent inline link (8.3).
    pub const CAN_FOLLOW_LINK: u16 = 0x020a;
    /// Copy the URL of a sent inline link (8.3).
    pub const CAN_COPY_LINK: u16 = 0x020b;

    /// Change the room metadata's `room_name` (8.2).
    pub const CAN_CHANGE_ROOM_NAME: u16 = 0x0300;
    /// Change the room metadata's `room_descriptions` (8.2).
    pub const CAN_CHANGE_ROOM_DESCRIPTION: u16 = 0x0301;
    /// Change the room metadata's `room_avatar` (8.2).
    pub const CAN_CHANGE_ROOM_AVATAR: u16 = 0x0302;
    /// Change the room metadata's `room_subject` (8.2).
    pub const CAN_CHANGE_ROOM_SUBJECT: u16 = 0x0303;
    /// Change the room metadata's `room_mood` (8.2).
    pub const CAN_CHANGE_ROOM_MOOD: u16 = 0x0304;
    /// Reserved: change one's own name.
    pub const CAN_CHANGE_OWN_NAME: u16 = 0x0380;
    /// Reserved: change one's own presence.
    pub const CAN_CHANGE_OWN_PRESENCE: u16 = 0x0381;
    /// Reserved: change one's own mood.
    pub const CAN_CHANGE_OWN_MOOD: u16 = 0x0382;
    /// Reserved: change one's own avatar.
    pub const CAN_CHANGE_OWN_AVATAR: u16 = 0x0383;

    /// Start a call or conference (8.5).
    pub const CAN_START_CALL: u16 = 0x0400;
    /// Join a call or conference (8.5).
    pub const CAN_JOIN_CALL: u16 = 0x0401;
    /// Contribute audio to a call (8.5).
    pub const CAN_SEND_AUDIO: u16 = 0x0402;
    /// Receive audio in a call (8.5).
    pub const CAN_RECEIVE_AUDIO: u16 = 0x0403;
    /// Contribute video to a call (8.5).
    pub const CAN_SEND_VIDEO: u16 = 0x0404;
    /// Receive video in a call (8.5).
    pub const CAN_RECEIVE_VIDEO: u16 = 0x0405;
    /// Share one's screen in a call (8.5).
    pub const CAN_SHARE_SCREEN: u16 = 0x0406;
    /// View a shared screen in a call (8.5).
    pub const CAN_VIEW_SHARED_SCREEN: u16 = 0x0407;

    /// Reserved: create a room.
    pub const CAN_CREATE_ROOM: u16 = 0x0500;
    /// Destroy the room (8.6).
    pub const CAN_DESTROY_ROOM: u16 = 0x0501;
    /// Change the base room membership style (8.6).
    pub const CAN_CHANGE_ROOM_MEMBERSHIP_STYLE: u16 = 0x0502;
    /// Change the roles list (8.6).
    pub const CAN_CHANGE_ROLE_DEFINITIONS: u16 = 0x0503;
    /// Change the preauthorized users list (8.6).
    pub const CAN_CHANGE_PREAUTHORIZED_USER_LIST: u16 = 0x0504;
    /// Reserved: change another policy attribute.
    pub const CAN_CHANGE_OTHER_POLICY_ATTRIBUTE: u16 = 0x0505;

    /// Reserved: change the MLS operational policies.
    pub const CAN_CHANGE_MLS_OPERATIONAL_POLICIES: u16 = 0x0600;
    /// Send an MLS ReInit proposal (8.6).
    pub const CAN_SEND_MLS_REINIT_PROPOSAL: u16 = 0x0601;
    /// Reserved: send an MLS Update proposal.
    pub const CAN_SEND_MLS_UPDATE_PROPOSAL: u16 = 0x0602;
    /// Reserved: send an MLS PreSharedKey proposal.
    pub const CAN_SEND_MLS_PSK_PROPOSAL: u16 = 0x0603;
    /// Reserved: send an MLS external proposal.
    pub const CAN_SEND_MLS_EXTERNAL_PROPOSAL: u16 = 0x0604;
    /// Reserved: send an MLS external commit.
    pub const CAN_SEND_MLS_EXTERNAL_COMMIT: u16 = 0x0605;

    /// Every registered capability and its name as the draft writes it, by value.
    pub const ALL: &[(u16, &str)] = &[
        (CAN_ADD_PARTICIPANT, "canAddParticipant"),
        (CAN_REMOVE_PARTICIPANT, "canRemoveParticipant"),
        (CAN_ADD_OWN_CLIENT, "canAddOwnClient"),
        (CAN_REMOVE_OWN_CLIENT, "canRemoveOwnClient"),
        (CAN_OPEN_JOIN, "canOpenJoin"),
        (CAN_JOIN_IF_PREAUTHORIZED, "canJoinIfPreauthorized"),
        (CAN_REMOVE_SELF, "canRemoveSelf"),
        (CAN_CREATE_JOIN_CODE, "canCreateJoinCode"),
        (CAN_DELETE_JOIN_CODE, "canDeleteJoinCode"),
        (CAN_USE_JOIN_CODE, "canUseJoinCode"),
        (CAN_BAN, "canBan"),
        (CAN_UNBAN, "canUnban"),
        (CAN_KICK, "canKick"),
        (CAN_KNOCK, "canKnock"),
        (CAN_ACCEPT_KNOCK, "canAcceptKnock"),
        (CAN_CHANGE_USER_ROLE, "canChangeUserRole"),
        (CAN_CHANGE_OWN_ROLE, "canChangeOwnRole"),
        (CAN_CREATE_SUBGROUP, "canCreateSubgroup"),
        (CAN_SEND_MESSAGE, "canSendMessage"),
        (CAN_RECEIVE_MESSAGE, "canReceiveMessage"),
        (CAN_COPY_MESSAGE, "canCopyMessage"),
        (CAN_REPORT_ABUSE, "canReportAbuse"),
        (CAN_REPLY_TO_MESSAGE, "canReplyToMessage"),
        (CAN_REACT_TO_MESSAGE, "canReactToMessage"),
        (CAN_EDIT_REACTION, "canEditReaction"),
        (CAN_DELETE_OWN_REACTION, "canDeleteOwnReaction"),
        (CAN_DELETE_OTHER_REACTION, "canDeleteOtherReaction"),
        (CAN_EDIT_OWN_MESSAGE, "canEditOwnMessage"),
        (CAN_DELETE_OWN_MESSAGE, "canDeleteOwnMessage"),
        (CAN_DELETE_OTHER_MESSAGE, "canDeleteOtherMessage"),
        (CAN_START_TOPIC, "canStartTopic"),
        (CAN_REPLY_IN_TOPIC, "canReplyInTopic"),
        (CAN_EDIT_OWN_TOPIC, "canEditOwnTopic"),
        (CAN_EDIT_OTHER_TOPIC, "canEditOtherTopic"),
        (CAN_SEND_DIRECT_MESSAGE, "canSendDirectMessage"),
        (CAN_TARGET_MESSAGE, "canTargetMessage"),
        (CAN_UPLOAD_IMAGE, "canUploadImage"),
        (CAN_UPLOAD_AUDIO, "canUploadAudio"),
        (CAN_UPLOAD_VIDEO, "canUploadVideo"),
        (CAN_UPLOAD_ATTACHMENT, "canUploadAttachment"),
        (CAN_DOWNLOAD_IMAGE, "canDownloadImage"),
        (CAN_DOWNLOAD_AUDIO, "canDownloadAudio"),
        (CAN_DOWNLOAD_VIDEO, "canDownloadVideo"),
        (CAN_DOWNLOAD_ATTACHMENT, "canDownloadAttachment"),
        (CAN_SEND_LINK, "canSendLink"),
        (CAN_SEND_LINK_PREVIEW, "canSendLinkPreview"),
        (CAN_FOLLOW_LINK, "canFollowLink"),
        (CAN_COPY_LINK, "canCopyLink"),
        (CAN_CHANGE_ROOM_NAME, "canChangeRoomName"),
        (CAN_CHANGE_ROOM_DESCRIPTION, "canChangeRoomDescription"),
        (CAN_CHANGE_ROOM_AVATAR, "canChangeRoomAvatar"),
        (CAN_CHANGE_ROOM_SUBJECT, "canChangeRoomSubject"),
        (CAN_CHANGE_ROOM_MOOD, "canChangeRoomMood"),
        (CAN_CHANGE_OWN_NAME, "canChangeOwnName"),
        (CAN_CHANGE_OWN_PRESENCE, "canChangeOwnPresence"),
        (CAN_CHANGE_OWN_MOOD, "canChangeOwnMood"),
        (CAN_CHANGE_OWN_AVATAR, "canChangeOwnAvatar"),
        (CAN_START_CALL, "canStartCall"),
        (CAN_JOIN_CALL, "canJoinCall"),
        (CAN_SEND_AUDIO, "canSendAudio"),
        (CAN_RECEIVE_AUDIO, "canReceiveAudio"),
        (CAN_SEND_VIDEO, "canSendVideo"),
        (CAN_RECEIVE_VIDEO, "canReceiveVideo"),
        (CAN_SHARE_SCREEN, "canShareScreen"),
        (CAN_VIEW_SHARED_SCREEN, "canViewSharedScreen"),
        (CAN_CREATE_ROOM, "canCreateRoom"),
        (CAN_DESTROY_ROOM, "canDestroyRoom"),
        (
            CAN_CHANGE_ROOM_MEMBERSHIP_STYLE,
            "canChangeRoomMembershipStyle",
        ),
        (CAN_CHANGE_ROLE_DEFINITIONS, "canChangeRoleDefinitions"),
        (
            CAN_CHANGE_PREAUTHORIZED_USER_LIST,
            "canChangePreauthorizedUserList",
        ),
        (
            CAN_CHANGE_OTHER_POLICY_ATTRIBUTE,
            "canChangeOtherPolicyAttribute",
        ),
        (
            CAN_CHANGE_MLS_OPERATIONAL_POLICIES,
            "canChangeMlsOperationalPolicies",
        ),
        (CAN_SEND_MLS_REINIT_PROPOSAL, "canSendMLSReinitProposal"),
        (CAN_SEND_MLS_UPDATE_PROPOSAL, "canSendMLSUpdateProposal"),
        (CAN_SEND_MLS_PSK_PROPOSAL, "canSendMLSPSKProposal"),
        (CAN_SEND_MLS_EXTERNAL_PROPOSAL, "canSendMLSExternalProposal"),
        (CAN_SEND_MLS_EXTERNAL_COMMIT, "canSendMLSExternalCommit"),
    ];

    /// The draft's name of a registered capability (`canAddParticipant`), if any.
    pub fn name(capability: u16) -> Option<&'static str> {
        ALL.binary_search_by_key(&capability, |&(value, _)| value)
            .ok()
            .and_then(|index| ALL.get(index))
            .map(|&(_, name)| name)
    }
}

#[cfg(test)]
mod tests {
    use super::capability::*;
    use super::*;
    use proptest::prelude::*;

    /// A role exercising every field: both `optional`s present and absent, two change
    /// entries, multi-byte UTF-8.
    fn example() -> RoleData {
        RoleData {
            roles: vec![
                Role {
                    role_index: 1,
                    role_name: "banned".into(),
                    role_description: String::new(),
                    role_capabilities: vec![],
                    minimum_participants_constraint: 0,
                    maximum_participants_constraint: None,
                    minimum_active_participants_constraint: 0,
                    maximum_active_participants_constraint: Some(0),
                    authorized_role_changes: vec![],
                },
                Role {
                    role_index: 0x0102_0304,
                    role_name: "mod".into(),
                    role_description: "é".into(),
                    role_capabilities: vec![CAN_KICK, CAN_CHANGE_ROLE_DEFINITIONS],
                    minimum_participants_constraint: 1,
                    maximum_participants_constraint: Some(5),
                    minimum_active_participants_constraint: 2,
                    maximum_active_participants_constraint: None,
                    authorized_role_changes: vec![
                        SingleSourceRoleChangeTargets {
                            from_role_index: 0,
                            target_role_indexes: vec![2],
                        },
                        SingleSourceRoleChangeTargets {
                            from_role_index: 2,
                            target_role_indexes: vec![0, 1],
                        },
                    ],
                },
            ],
        }
    }

    /// The encoding of [`example`], written by hand from the draft's struct.
    fn example_bytes() -> Vec<u8> {
        let banned: &[u8] = &[
            0, 0, 0, 1, // role_index
            6, b'b', b'a', b'n', b'n', b'e', b'd', // role_name<V>
            0,    // role_description<V>
            0,    // role_capabilities<V>
            0, 0, 0, 0, // minimum_participants_constraint
            0, // maximum_participants_constraint: absent
            0, 0, 0, 0, // minimum_active_participants_constraint
            1, 0, 0, 0, 0, // maximum_active_participants_constraint: present, 0
            0, // authorized_role_changes<V>
        ];
        let moderator: &[u8] = &[
            1, 2, 3, 4, // role_index
            3, b'm', b'o', b'd', // role_name<V>
            2, 0xc3, 0xa9, // role_description<V>: "é"
            4, 0x00, 0x0c, 0x05,
            0x03, // role_capabilities<V>: canKick, canChangeRoleDefinitions
            0, 0, 0, 1, // minimum_participants_constraint
            1, 0, 0, 0, 5, // maximum_participants_constraint: present, 5
            0, 0, 0, 2,  // minimum_active_participants_constraint
            0,  // maximum_active_participants_constraint: absent
            22, // authorized_role_changes<V>: 22 bytes
            0, 0, 0, 0, 4, 0, 0, 0, 2, // (0, [2])
            0, 0, 0, 2, 8, 0, 0, 0, 0, 0, 0, 0, 1, // (2, [0, 1])
        ];
        // roles<V>: 81 bytes, a two-byte variable-length prefix.
        assert_eq!(banned.len() + moderator.len(), 81);
        [&[0x40, 81][..], banned, moderator].concat()
    }

    #[test]
    fn exact_bytes() {
        let bytes = example_bytes();
        assert_eq!(example().encode().unwrap(), bytes);
        assert_eq!(RoleData::decode(&bytes).unwrap(), example());
    }

    #[test]
    fn empty_role_data_is_one_zero_byte() {
        assert_eq!(RoleData::default().encode().unwrap(), [0]);
        assert_eq!(RoleData::decode(&[0]).unwrap(), RoleData::default());
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = example_bytes();
        for cut in 0..bytes.len() {
            let error = RoleData::decode(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(
                    error,
                    FramingError::Truncated { .. } | FramingError::Malformed { .. }
                ),
                "cut at {cut}: {error:?}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = example_bytes();
        bytes.push(0);
        assert_eq!(
            RoleData::decode(&bytes),
            Err(FramingError::TrailingBytes {
                message: "RoleData",
                count: 1
            })
        );
    }

    #[test]
    fn invalid_utf8_name_is_rejected() {
        let mut bytes = example_bytes();
        // The first byte of "banned".
        assert_eq!(bytes[7], b'b');
        bytes[7] = 0xff;
        assert!(matches!(
            RoleData::decode(&bytes),
            Err(FramingError::Malformed { .. })
        ));
    }

    #[test]
    fn optional_flag_other_than_zero_or_one_is_rejected() {
        let mut bytes = example_bytes();
        // maximum_participants_constraint's flag in the banned role.
        let flag = 2 + 4 + 7 + 1 + 1 + 4;
        assert_eq!(bytes[flag], 0);
        bytes[flag] = 2;
        assert!(matches!(
            RoleData::decode(&bytes),
            Err(FramingError::Malformed { .. })
        ));
    }

    #[test]
    fn lookups() {
        let roles = example();
        let moderator = roles.role(0x0102_0304).unwrap();
        assert!(moderator.has_capability(CAN_KICK));
        assert!(!moderator.has_capability(CAN_BAN));
        assert!(moderator.authorizes_change(2, 1));
        assert!(moderator.authorizes_change(0, 2));
        assert!(!moderator.authorizes_change(0, 1));
        assert!(!moderator.authorizes_change(1, 2));
        assert!(roles.role(7).is_none());
    }

    #[test]
    fn capability_registry_is_sorted_and_named() {
        assert!(ALL.windows(2).all(|pair| pair[0].0 < pair[1].0));
        assert_eq!(ALL.len(), 77);
        assert_eq!(name(CAN_ADD_PARTICIPANT), Some("canAddParticipant"));
        assert_eq!(name(CAN_UNBAN), Some("canUnban"));
        assert_eq!(
            name(CAN_CHANGE_ROLE_DEFINITIONS),
            Some("canChangeRoleDefinitions")
        );
        assert_eq!(
            name(CAN_SEND_MLS_EXTERNAL_COMMIT),
            Some("canSendMLSExternalCommit")
        );
        assert_eq!(name(0x0012), None);
        assert_eq!(name(0xf000), None);
    }

    fn role() -> impl Strategy<Value = Role> {
        (
            any::<u32>(),
            ".{0,12}",
            ".{0,12}",
            prop::collection::vec(any::<u16>(), 0..6),
            (
                any::<u32>(),
                any::<Option<u32>>(),
                any::<u32>(),
                any::<Option<u32>>(),
            ),
            prop::collection::vec(
                (any::<u32>(), prop::collection::vec(any::<u32>(), 0..4)),
                0..4,
            ),
        )
            .prop_map(
                |(role_index, role_name, role_description, role_capabilities, limits, changes)| {
                    Role {
                        role_index,
                        role_name,
                        role_description,
                        role_capabilities,
                        minimum_participants_constraint: limits.0,
                        maximum_participants_constraint: limits.1,
                        minimum_active_participants_constraint: limits.2,
                        maximum_active_participants_constraint: limits.3,
                        authorized_role_changes: changes
                            .into_iter()
                            .map(|(from_role_index, target_role_indexes)| {
                                SingleSourceRoleChangeTargets {
                                    from_role_index,
                                    target_role_indexes,
                                }
                            })
                            .collect(),
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trips_byte_for_byte(roles in prop::collection::vec(role(), 0..5)) {
            let data = RoleData { roles };
            let bytes = data.encode().unwrap();
            let decoded = RoleData::decode(&bytes).unwrap();
            prop_assert_eq!(&decoded, &data);
            prop_assert_eq!(decoded.encode().unwrap(), bytes);
        }

        #[test]
        fn mutations_never_panic(
            index in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = example_bytes();
            let at = index.index(bytes.len());
            bytes[at] = byte;
            bytes.truncate(cut.index(bytes.len() + 1));
            if let Ok(decoded) = RoleData::decode(&bytes) {
                let again = RoleData::decode(&decoded.encode().unwrap()).unwrap();
                prop_assert_eq!(again, decoded);
            }
        }
    }
}
