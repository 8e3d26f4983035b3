use super::*;
use capability::*;

fn user(uri: &str) -> UserId {
    UserId::parse_uri(uri).unwrap()
}

fn room() -> RoomState {
    let room = RoomId::parse_uri("mimi://a.example/r/clubhouse").unwrap();
    let mut state = RoomState::new(&room, &user("mimi://a.example/u/alice"), "Club");
    state.set_role(&user("mimi://b.example/u/bob"), roles::MEMBER);
    state.set_role(&user("mimi://c.example/u/carol"), roles::ADMIN);
    state.set_subject("Tuesdays").unwrap();
    state
}

/// An AppDataDictionary with the given components, encoded by hand.
fn dictionary(components: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (id, data) in components {
        body.extend_from_slice(&id.to_be_bytes());
        body.extend(vl(data));
    }
    vl(&body)
}

fn vl(data: &[u8]) -> Vec<u8> {
    let len = data.len();
    let mut out = if len < 64 {
        vec![len as u8]
    } else {
        assert!(len < 1 << 14);
        vec![0x40 | (len >> 8) as u8, len as u8]
    };
    out.extend_from_slice(data);
    out
}

fn components(state: &RoomState) -> [(u16, Vec<u8>); 3] {
    let participants = ParticipantListData {
        participants: state
            .participants
            .iter()
            .map(|(user, role_index)| UserRolePair {
                user: IdentifierUri::from(user),
                role_index: *role_index,
            })
            .collect(),
    };
    [
        (0x0022, participants.encode().unwrap()),
        (0x0023, state.metadata.encode().unwrap()),
        (0x0025, state.roles.encode().unwrap()),
    ]
}

fn participants_with(pairs: &[(&str, u32)]) -> (u16, Vec<u8>) {
    let list = ParticipantListData {
        participants: pairs
            .iter()
            .map(|(uri, role_index)| UserRolePair {
                user: IdentifierUri::new(uri.as_bytes()),
                role_index: *role_index,
            })
            .collect(),
    };
    (0x0022, list.encode().unwrap())
}

#[test]
fn new_room() {
    let alice = user("mimi://a.example/u/alice");
    let room = RoomId::parse_uri("mimi://a.example/r/clubhouse").unwrap();
    let state = RoomState::new(&room, &alice, "Club\0house");
    assert_eq!(state.participants, vec![(alice.clone(), roles::OWNER)]);
    assert_eq!(
        state.metadata.room_uri.as_str(),
        "mimi://a.example/r/clubhouse"
    );
    assert_eq!(state.metadata.room_name.as_str(), "Clubhouse");
    assert_eq!(state.roles, RoomState::default_roles());
    assert_eq!(state.role_of(&alice), roles::OWNER);
    assert!(state.can(&alice, CAN_CHANGE_ROLE_DEFINITIONS));
    state.validate().unwrap();
}

#[test]
fn default_roles() {
    let roles = RoomState::default_roles();
    let indices: Vec<u32> = roles.roles.iter().map(|r| r.role_index).collect();
    assert_eq!(indices, [1, 2, 3, 4]);
    assert!(roles.role(0).is_none());

    let banned = roles.role(roles::BANNED).unwrap();
    assert_eq!(banned.role_name, "banned");
    assert!(banned.role_capabilities.is_empty());
    assert_eq!(banned.maximum_active_participants_constraint, Some(0));

    let member = roles.role(roles::MEMBER).unwrap();
    assert_eq!(member.role_capabilities.len(), 16);
    assert!(member.has_capability(CAN_SEND_MESSAGE));
    assert!(member.has_capability(CAN_ADD_OWN_CLIENT));
    assert!(!member.has_capability(CAN_ADD_PARTICIPANT));
    assert!(member.authorizes_change(2, 0));

    let admin = roles.role(roles::ADMIN).unwrap();
    assert_eq!(admin.role_capabilities.len(), 27);
    assert!(admin.has_capability(CAN_BAN));
    assert!(!admin.has_capability(CAN_CHANGE_ROLE_DEFINITIONS));
    assert!(admin.authorizes_change(0, 2));
    assert!(!admin.authorizes_change(0, 3));

    let owner = roles.role(roles::OWNER).unwrap();
    assert_eq!(owner.role_capabilities.len(), 28);
    assert!(owner.has_capability(CAN_CHANGE_ROLE_DEFINITIONS));
    assert_eq!(owner.minimum_participants_constraint, 1);
    assert!(owner.authorizes_change(0, 4));
    assert!(!owner.authorizes_change(4, 1));

    for role in &roles.roles {
        assert!(role.role_capabilities.windows(2).all(|w| w[0] < w[1]));
    }
}

#[test]
fn round_trip_and_exact_layout() {
    let state = room();
    let bytes = state.encode().unwrap();
    assert_eq!(bytes, dictionary(&components(&state)));
    assert_eq!(RoomState::decode(&bytes).unwrap(), state);
}

#[test]
fn garbage_is_rejected_cleanly() {
    for bytes in [
        &[][..],
        &[0x00],
        &[0xff, 0xff, 0xff],
        b"not a room state at all",
        &[0x03, 0x00, 0x22, 0x05],
    ] {
        assert!(RoomState::decode(bytes).is_err(), "{bytes:?}");
    }
    let good = room().encode().unwrap();
    for cut in 0..good.len() {
        assert!(RoomState::decode(&good[..cut]).is_err(), "cut at {cut}");
    }
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(
        RoomState::decode(&long),
        Err(RoomStateError::Framing(FramingError::TrailingBytes { .. }))
    ));
}

#[test]
fn single_byte_mutations_never_panic_and_round_trip() {
    let good = room().encode().unwrap();
    let mut accepted = 0;
    for at in 0..good.len() {
        for value in [0x00, 0x01, 0x02, 0x3f, 0x40, 0x7f, 0x80, 0xff, good[at] ^ 1] {
            let mut bytes = good.clone();
            bytes[at] = value;
            if let Ok(state) = RoomState::decode(&bytes) {
                accepted += 1;
                let again = RoomState::decode(&state.encode().unwrap()).unwrap();
                assert_eq!(again, state);
            }
        }
    }
    // Role indices, names and capabilities are free to change: some mutations decode.
    assert!(accepted > 0);
}

#[test]
fn every_component_is_required() {
    let all = components(&room());
    for skip in 0..3 {
        let some: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, c)| c.clone())
            .collect();
        assert!(matches!(
            RoomState::decode(&dictionary(&some)),
            Err(RoomStateError::MissingComponent { component_id, .. })
                if component_id == all[skip].0
        ));
    }
}

#[test]
fn unknown_components_and_bad_order_are_rejected() {
    let [participants, metadata, roles] = components(&room());
    let extra = (0x0024, vec![]);
    assert_eq!(
        RoomState::decode(&dictionary(&[
            participants.clone(),
            metadata.clone(),
            extra,
            roles.clone()
        ])),
        Err(RoomStateError::UnexpectedComponent {
            component_id: 0x0024
        })
    );
    assert!(matches!(
        RoomState::decode(&dictionary(&[metadata, participants, roles])),
        Err(RoomStateError::Framing(FramingError::Malformed { .. }))
    ));
}

#[test]
fn participants_are_checked() {
    let [_, metadata, roles] = components(&room());
    let decode = |pairs: &[(&str, u32)]| {
        RoomState::decode(&dictionary(&[
            participants_with(pairs),
            metadata.clone(),
            roles.clone(),
        ]))
    };
    assert!(decode(&[("mimi://a.example/u/alice", 4)]).is_ok());
    assert!(matches!(
        decode(&[("mimi://a.example/d/alice/phone", 4)]),
        Err(RoomStateError::InvalidParticipant { index: 0, .. })
    ));
    assert!(matches!(
        decode(&[("mimi://a.example/u/alice", 4), ("not a uri", 2)]),
        Err(RoomStateError::InvalidParticipant { index: 1, .. })
    ));
    assert!(matches!(
        decode(&[("mimi://A.example/u/Alice", 4)]),
        Err(RoomStateError::NonCanonicalParticipant { index: 0, .. })
    ));
    assert!(matches!(
        decode(&[
            ("mimi://a.example/u/alice", 4),
            ("mimi://a.example/u/alice", 2)
        ]),
        Err(RoomStateError::DuplicateParticipant { .. })
    ));
    assert!(matches!(
        decode(&[("mimi://a.example/u/alice", 0)]),
        Err(RoomStateError::ZeroRoleParticipant { .. })
    ));
    assert_eq!(
        decode(&[("mimi://a.example/u/alice", 9)]),
        Err(RoomStateError::UndefinedRole {
            user: "mimi://a.example/u/alice".into(),
            role: 9
        })
    );
}

#[test]
fn roles_are_checked() {
    let mut state = room();
    let mut twice = state.clone();
    let copy = twice.roles.roles[0].clone();
    twice.roles.roles.push(copy);
    assert_eq!(
        twice.encode(),
        Err(RoomStateError::DuplicateRole { role: 1 })
    );
    let [participants, metadata, _] = components(&state);
    assert_eq!(
        RoomState::decode(&dictionary(&[
            participants.clone(),
            metadata.clone(),
            (0x0025, twice.roles.encode().unwrap())
        ])),
        Err(RoomStateError::DuplicateRole { role: 1 })
    );

    state.roles.roles[1].role_capabilities.push(CAN_OPEN_JOIN);
    assert!(matches!(
        RoomState::decode(&dictionary(&[
            participants,
            metadata,
            (0x0025, state.roles.encode().unwrap())
        ])),
        Err(RoomStateError::OpenJoinOnNonZeroRole { role: 2, .. })
    ));
}

#[test]
fn set_role_inserts_changes_and_removes() {
    let mut state = room();
    let dave = user("mimi://d.example/u/dave");
    let bob = user("mimi://b.example/u/bob");
    state.set_role(&dave, roles::MEMBER);
    assert_eq!(
        state.participants.last(),
        Some(&(dave.clone(), roles::MEMBER))
    );
    state.set_role(&bob, roles::ADMIN);
    assert_eq!(state.participants[1], (bob.clone(), roles::ADMIN));
    state.set_role(&bob, roles::NONE);
    assert_eq!(state.role_of(&bob), roles::NONE);
    assert_eq!(state.participants.len(), 3);
    state.set_role(&bob, roles::NONE);
    assert_eq!(state.participants.len(), 3);
}

#[test]
fn can_uses_role_zero_for_strangers() {
    let mut state = room();
    let stranger = user("mimi://x.example/u/eve");
    assert!(!state.can(&stranger, CAN_SEND_MESSAGE));
    state.roles.roles.push(Role {
        role_index: 0,
        role_name: "guest".into(),
        role_description: String::new(),
        role_capabilities: vec![CAN_OPEN_JOIN, CAN_RECEIVE_MESSAGE],
        minimum_participants_constraint: 0,
        maximum_participants_constraint: None,
        minimum_active_participants_constraint: 0,
        maximum_active_participants_constraint: None,
        authorized_role_changes: vec![],
    });
    assert!(state.can(&stranger, CAN_OPEN_JOIN));
    assert!(!state.can(&user("mimi://b.example/u/bob"), CAN_OPEN_JOIN));
    assert_eq!(RoomState::decode(&state.encode().unwrap()).unwrap(), state);
}

#[test]
fn metadata_setters_reject_nul() {
    let mut state = room();
    state.set_name("New name").unwrap();
    assert_eq!(state.metadata.room_name.as_str(), "New name");
    assert!(matches!(
        state.set_subject("a\0b"),
        Err(RoomStateError::InvalidText {
            field: "subject",
            ..
        })
    ));
    assert_eq!(state.metadata.room_subject.as_str(), "Tuesdays");
}
