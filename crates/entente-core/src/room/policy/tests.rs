use entente_wire::ids::RoomId;
use entente_wire::mimi::{
    RichDescription, RoleData, SingleSourceRoleChangeTargets, UTF8String, Uri,
};
use tls_codec::VLBytes;

use super::*;
use crate::room::RoomStateError;
use crate::room::roles::{ADMIN, BANNED, MEMBER, NONE, OWNER};

fn user(name: &str) -> UserId {
    UserId::parse_uri(&format!("mimi://{}.example/u/{name}", &name[..1])).unwrap()
}

fn client(name: &str, device: &str) -> ClientId {
    ClientId::new(&user(name), device).unwrap()
}

/// Alice (owner), Bob (member), Carol (admin), each with one client, and Dave
/// (member) with none.
fn room() -> RoomState {
    let room = RoomId::parse_uri("mimi://a.example/r/clubhouse").unwrap();
    let mut state = RoomState::new(&room, &user("alice"), "Clubhouse");
    state.set_role(&user("bob"), MEMBER);
    state.set_role(&user("carol"), ADMIN);
    state.set_role(&user("dave"), MEMBER);
    state
}

fn members() -> Vec<ClientId> {
    vec![
        client("alice", "phone"),
        client("bob", "phone"),
        client("carol", "laptop"),
    ]
}

/// A commit under test: starts as a no-op by `actor` on [`room`] and [`members`].
struct Case {
    actor: Actor,
    self_proposed: Vec<ClientId>,
    before: RoomState,
    before_members: Vec<ClientId>,
    after: RoomState,
    after_members: Vec<ClientId>,
}

fn by(client: ClientId) -> Case {
    Case::new(Actor::Member(client))
}

fn joining(client: ClientId) -> Case {
    Case::new(Actor::ExternalJoiner(client.clone())).add(client)
}

impl Case {
    fn new(actor: Actor) -> Case {
        Case {
            actor,
            self_proposed: Vec::new(),
            before: room(),
            before_members: members(),
            after: room(),
            after_members: members(),
        }
    }

    /// Changes a role in both states (a precondition).
    fn given_role(mut self, name: &str, role: u32) -> Case {
        self.before.set_role(&user(name), role);
        self.after.set_role(&user(name), role);
        self
    }

    /// Changes the roles list in both states (a precondition).
    fn given_roles(mut self, edit: impl Fn(&mut RoleData)) -> Case {
        edit(&mut self.before.roles);
        edit(&mut self.after.roles);
        self
    }

    fn given_member(mut self, client: ClientId) -> Case {
        self.before_members.push(client.clone());
        self.after_members.push(client);
        self
    }

    fn set_role(mut self, name: &str, role: u32) -> Case {
        self.after.set_role(&user(name), role);
        self
    }

    fn add(mut self, client: ClientId) -> Case {
        self.after_members.push(client);
        self
    }

    fn remove(mut self, client: &ClientId) -> Case {
        self.after_members.retain(|c| c != client);
        self
    }

    fn self_proposed(mut self, client: &ClientId) -> Case {
        self.self_proposed.push(client.clone());
        self.remove(client)
    }

    fn edit(mut self, edit: impl FnOnce(&mut RoomState)) -> Case {
        edit(&mut self.after);
        self
    }

    fn check(&self) -> Result<(), PolicyError> {
        authorize(&Change {
            actor: &self.actor,
            self_proposed_removals: &self.self_proposed,
            before: &self.before,
            before_members: &self.before_members,
            after: &self.after,
            after_members: &self.after_members,
        })
    }

    #[track_caller]
    fn allowed(&self) {
        if let Err(error) = self.check() {
            panic!("refused: {error}");
        }
    }

    #[track_caller]
    fn refused(&self) -> PolicyError {
        match self.check() {
            Ok(()) => panic!("allowed, expected a refusal"),
            Err(error) => error,
        }
    }
}

fn alice() -> ClientId {
    client("alice", "phone")
}
fn bob() -> ClientId {
    client("bob", "phone")
}
fn carol() -> ClientId {
    client("carol", "laptop")
}
fn dave_phone() -> ClientId {
    client("dave", "phone")
}

fn open_role_zero(targets: Vec<u32>) -> Role {
    Role {
        role_index: 0,
        role_name: "outsider".into(),
        role_description: String::new(),
        role_capabilities: vec![CAN_OPEN_JOIN],
        minimum_participants_constraint: 0,
        maximum_participants_constraint: None,
        minimum_active_participants_constraint: 0,
        maximum_active_participants_constraint: None,
        authorized_role_changes: vec![SingleSourceRoleChangeTargets {
            from_role_index: 0,
            target_role_indexes: targets,
        }],
    }
}

// ---------------------------------------------------------------------------
// No change, and the inputs.

#[test]
fn a_commit_that_changes_nothing_is_allowed() {
    by(bob()).allowed();
    by(alice()).allowed();
}

#[test]
fn the_committer_must_be_a_member() {
    let error = by(client("bob", "stolen")).refused();
    assert!(matches!(error, PolicyError::Inconsistent { .. }), "{error}");
}

#[test]
fn an_external_joiner_must_be_new_and_present_after() {
    let error = Case::new(Actor::ExternalJoiner(bob())).refused();
    assert!(matches!(error, PolicyError::Inconsistent { .. }), "{error}");
    let error = Case::new(Actor::ExternalJoiner(client("bob", "tablet"))).refused();
    assert!(matches!(error, PolicyError::Inconsistent { .. }), "{error}");
}

#[test]
fn an_invalid_state_after_is_refused() {
    let error = by(alice())
        .edit(|state| state.participants.push((user("bob"), MEMBER)))
        .refused();
    assert!(
        matches!(
            error,
            PolicyError::InvalidState(RoomStateError::DuplicateParticipant { .. })
        ),
        "{error}"
    );
}

// ---------------------------------------------------------------------------
// Adding participants.

#[test]
fn owner_adds_a_member_with_clients() {
    by(alice())
        .set_role("eve", MEMBER)
        .add(client("eve", "phone"))
        .add(client("eve", "laptop"))
        .allowed();
}

#[test]
fn adding_a_participant_without_clients_is_allowed() {
    by(carol()).set_role("eve", MEMBER).allowed();
}

#[test]
fn member_cannot_add() {
    let error = by(bob())
        .set_role("eve", MEMBER)
        .add(client("eve", "phone"))
        .refused();
    assert_eq!(
        error.to_string(),
        "mimi://b.example/u/bob (role member) lacks canAddParticipant to add \
         mimi://e.example/u/eve as member"
    );
}

#[test]
fn admin_adds_as_member_but_not_as_owner() {
    by(carol()).set_role("eve", MEMBER).allowed();
    let error = by(carol()).set_role("eve", OWNER).refused();
    assert_eq!(
        error,
        PolicyError::RoleChangeNotAuthorized {
            actor: "mimi://c.example/u/carol".into(),
            actor_role: "admin".into(),
            capability: "canAddParticipant",
            action: "add mimi://e.example/u/eve as owner".into(),
            from: 0,
            to: 4,
        }
    );
    assert_eq!(
        error.to_string(),
        "mimi://c.example/u/carol (role admin) holds canAddParticipant but may not add \
         mimi://e.example/u/eve as owner: role admin's authorized_role_changes has no \
         transition from role 0 to role 4"
    );
    by(alice()).set_role("eve", OWNER).allowed();
}

#[test]
fn clients_of_a_non_participant_cannot_be_added() {
    let error = by(alice()).add(client("eve", "phone")).refused();
    assert_eq!(
        error.to_string(),
        "client mimi://e.example/d/eve/phone may not be in the group: \
         mimi://e.example/u/eve is not a participant"
    );
}

// ---------------------------------------------------------------------------
// Adding clients of participants.

#[test]
fn a_user_adds_its_own_new_device() {
    by(bob()).add(client("bob", "laptop")).allowed();
}

#[test]
fn a_user_without_can_add_own_client_cannot_add_a_device() {
    let error = by(bob())
        .given_roles(|roles| {
            if let Some(member) = roles.roles.iter_mut().find(|r| r.role_index == MEMBER) {
                member
                    .role_capabilities
                    .retain(|&c| c != CAN_ADD_OWN_CLIENT);
            }
        })
        .add(client("bob", "laptop"))
        .refused();
    assert!(
        matches!(
            error,
            PolicyError::MissingCapability {
                capability: "canAddOwnClient",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn member_cannot_add_a_device_of_another_user() {
    let error = by(bob()).add(client("dave", "phone")).refused();
    assert!(
        matches!(
            error,
            PolicyError::MissingCapability {
                capability: "canAddParticipant",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn admin_adds_clients_of_an_inactive_participant_only() {
    // Dave has no clients: an admin may bring him in.
    by(carol()).add(client("dave", "phone")).allowed();
    // Bob already has one: only Bob adds more.
    let error = by(carol()).add(client("bob", "laptop")).refused();
    assert!(matches!(error, PolicyError::Refused { .. }), "{error}");
}

// ---------------------------------------------------------------------------
// External joins.

#[test]
fn an_existing_participant_joins_externally() {
    joining(client("bob", "tablet")).allowed();
    assert_eq!(authorize_external_join(&room(), &user("bob")), Ok(()));
    // Dave, inactive, may too.
    joining(client("dave", "phone")).allowed();
}

#[test]
fn an_external_joiner_may_replace_its_own_old_client() {
    joining(client("bob", "tablet")).remove(&bob()).allowed();
}

#[test]
fn a_stranger_cannot_join_externally() {
    let error = joining(client("eve", "phone")).refused();
    assert!(
        matches!(error, PolicyError::ClientNotAllowed { .. }),
        "{error}"
    );
    let error = joining(client("eve", "phone"))
        .set_role("eve", MEMBER)
        .refused();
    assert_eq!(
        error.to_string(),
        "mimi://e.example/u/eve (role none) lacks canOpenJoin to join the room as member"
    );
    let error = authorize_external_join(&room(), &user("eve")).unwrap_err();
    assert!(
        matches!(
            error,
            PolicyError::MissingCapability {
                capability: "canOpenJoin",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn open_rooms_let_strangers_join_as_role_zero_allows() {
    let open =
        |case: Case| case.given_roles(|roles| roles.roles.push(open_role_zero(vec![MEMBER])));
    open(joining(client("eve", "phone")))
        .set_role("eve", MEMBER)
        .allowed();
    let error = open(joining(client("eve", "phone")))
        .set_role("eve", ADMIN)
        .refused();
    assert!(
        matches!(error, PolicyError::RoleChangeNotAuthorized { .. }),
        "{error}"
    );

    let mut state = room();
    state.roles.roles.push(open_role_zero(vec![MEMBER]));
    assert_eq!(authorize_external_join(&state, &user("eve")), Ok(()));
    state.roles.roles.retain(|r| r.role_index != 0);
    state.roles.roles.push(open_role_zero(vec![]));
    assert!(matches!(
        authorize_external_join(&state, &user("eve")),
        Err(PolicyError::Refused { .. })
    ));
}

#[test]
fn banned_users_cannot_join_externally_even_in_open_rooms() {
    let case = joining(client("dave", "phone"))
        .given_role("dave", BANNED)
        .given_roles(|roles| roles.roles.push(open_role_zero(vec![MEMBER])));
    let error = case.refused();
    assert!(
        matches!(error, PolicyError::ClientNotAllowed { .. }),
        "{error}"
    );
    assert_eq!(
        authorize_external_join(&case.before, &user("dave")),
        Err(PolicyError::Banned {
            user: "mimi://d.example/u/dave".into()
        })
    );
}

// ---------------------------------------------------------------------------
// Leaving, removing, kicking.

#[test]
fn a_member_leaves_by_proposing_its_own_removal() {
    by(alice())
        .self_proposed(&bob())
        .set_role("bob", NONE)
        .allowed();
}

#[test]
fn leaving_must_take_all_clients() {
    let error = by(alice())
        .given_member(client("bob", "laptop"))
        .self_proposed(&bob())
        .set_role("bob", NONE)
        .refused();
    assert_eq!(
        error.to_string(),
        "mimi://b.example/u/bob was removed from the participant list but client(s) \
         mimi://b.example/d/bob/laptop remain in the group"
    );
}

#[test]
fn the_last_owner_cannot_leave() {
    let error = by(carol())
        .self_proposed(&alice())
        .set_role("alice", NONE)
        .refused();
    assert_eq!(
        error.to_string(),
        "0 participants with role owner after the change, but the role's \
         minimum_participants_constraint is 1"
    );
    // With a second owner, she can.
    by(carol())
        .given_role("dave", OWNER)
        .self_proposed(&alice())
        .set_role("alice", NONE)
        .allowed();
}

#[test]
fn leaving_needs_can_remove_self_unless_a_moderator_commits_it() {
    let no_leaving = |roles: &mut RoleData| {
        if let Some(member) = roles.roles.iter_mut().find(|r| r.role_index == MEMBER) {
            member.role_capabilities.retain(|&c| c != CAN_REMOVE_SELF);
        }
    };
    // Committed by Dave, a member, who cannot remove others either.
    let error = by(dave_phone())
        .given_member(dave_phone())
        .given_roles(no_leaving)
        .self_proposed(&bob())
        .set_role("bob", NONE)
        .refused();
    assert_eq!(
        error.to_string(),
        "mimi://b.example/u/bob (role member) lacks canRemoveSelf to leave the room"
    );
    // An admin may still remove the user.
    by(carol())
        .given_roles(no_leaving)
        .self_proposed(&bob())
        .set_role("bob", NONE)
        .allowed();
}

#[test]
fn a_member_cannot_remove_another() {
    let error = by(bob()).remove(&carol()).set_role("carol", NONE).refused();
    assert!(
        matches!(
            error,
            PolicyError::MissingCapability {
                capability: "canRemoveParticipant",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn admin_removes_a_member_but_not_an_owner() {
    by(carol()).remove(&bob()).set_role("bob", NONE).allowed();
    let error = by(carol())
        .given_role("dave", OWNER)
        .remove(&alice())
        .set_role("alice", NONE)
        .refused();
    assert!(
        matches!(error, PolicyError::RoleChangeNotAuthorized { .. }),
        "{error}"
    );
}

#[test]
fn nobody_removes_their_own_user_by_removal() {
    let error = by(alice())
        .given_member(client("alice", "laptop"))
        .remove(&client("alice", "laptop"))
        .remove(&alice())
        .set_role("alice", NONE)
        .refused();
    assert!(matches!(error, PolicyError::OwnUser { .. }), "{error}");
}

#[test]
fn removing_a_device_of_ones_own() {
    // Proposed by the device itself, committed by someone else.
    by(alice())
        .given_member(client("bob", "laptop"))
        .self_proposed(&client("bob", "laptop"))
        .allowed();
    // Committed by another of the user's devices.
    by(bob())
        .given_member(client("bob", "laptop"))
        .remove(&client("bob", "laptop"))
        .allowed();
}

#[test]
fn kicking() {
    by(carol()).remove(&bob()).allowed();
    let error = by(bob()).remove(&carol()).refused();
    assert_eq!(
        error.to_string(),
        "mimi://b.example/u/bob (role member) lacks canKick to remove client \
         mimi://c.example/d/carol/laptop of mimi://c.example/u/carol"
    );
}

// ---------------------------------------------------------------------------
// Bans.

#[test]
fn admin_bans_a_member() {
    by(carol()).remove(&bob()).set_role("bob", BANNED).allowed();
    // An inactive one too.
    by(carol()).set_role("dave", BANNED).allowed();
}

#[test]
fn a_ban_must_remove_all_clients() {
    let error = by(carol()).set_role("bob", BANNED).refused();
    assert!(
        matches!(error, PolicyError::ClientsRemain { what: "banned", .. }),
        "{error}"
    );
}

#[test]
fn a_ban_needs_can_ban_and_the_transition() {
    let error = by(bob()).set_role("dave", BANNED).refused();
    assert!(
        matches!(
            error,
            PolicyError::MissingCapability {
                capability: "canBan",
                ..
            }
        ),
        "{error}"
    );
    // Admins may not ban admins; owners may.
    let error = by(carol())
        .given_role("dave", ADMIN)
        .set_role("dave", BANNED)
        .refused();
    assert!(
        matches!(error, PolicyError::RoleChangeNotAuthorized { .. }),
        "{error}"
    );
    by(alice())
        .given_role("dave", ADMIN)
        .set_role("dave", BANNED)
        .allowed();
}

#[test]
fn banning_a_non_participant_is_a_ban_from_role_zero() {
    let error = by(alice()).set_role("eve", BANNED).refused();
    assert_eq!(
        error,
        PolicyError::RoleChangeNotAuthorized {
            actor: "mimi://a.example/u/alice".into(),
            actor_role: "owner".into(),
            capability: "canBan",
            action: "ban mimi://e.example/u/eve (role none)".into(),
            from: 0,
            to: 1,
        }
    );
    by(alice())
        .given_roles(|roles| {
            if let Some(owner) = roles.roles.iter_mut().find(|r| r.role_index == OWNER) {
                owner
                    .authorized_role_changes
                    .push(SingleSourceRoleChangeTargets {
                        from_role_index: NONE,
                        target_role_indexes: vec![BANNED],
                    });
            }
        })
        .set_role("eve", BANNED)
        .allowed();
}

#[test]
fn a_ban_needs_role_one_named_banned() {
    let error = by(carol())
        .given_roles(|roles| {
            if let Some(role) = roles.roles.iter_mut().find(|r| r.role_index == BANNED) {
                role.role_name = "muted".into();
            }
        })
        .set_role("dave", BANNED)
        .refused();
    assert_eq!(
        error.to_string(),
        "cannot ban mimi://d.example/u/dave (role member): the room has no role 1 named \"banned\""
    );
}

#[test]
fn banned_user_cannot_be_re_added_by_plain_add() {
    // Still banned: its clients may not come back.
    let error = by(alice())
        .given_role("dave", BANNED)
        .add(client("dave", "phone"))
        .refused();
    assert_eq!(
        error.to_string(),
        "client mimi://d.example/d/dave/phone may not be in the group: \
         mimi://d.example/u/dave is banned"
    );
    // A member may not lift the ban.
    let error = by(bob())
        .given_role("dave", BANNED)
        .set_role("dave", MEMBER)
        .refused();
    assert!(
        matches!(
            error,
            PolicyError::MissingCapability {
                capability: "canUnban",
                ..
            }
        ),
        "{error}"
    );
    // An admin may unban, and then add clients as for any inactive participant.
    by(carol())
        .given_role("dave", BANNED)
        .set_role("dave", MEMBER)
        .add(client("dave", "phone"))
        .allowed();
    // But not straight to admin.
    let error = by(carol())
        .given_role("dave", BANNED)
        .set_role("dave", ADMIN)
        .refused();
    assert!(
        matches!(error, PolicyError::RoleChangeNotAuthorized { .. }),
        "{error}"
    );
}

// ---------------------------------------------------------------------------
// Role changes.

#[test]
fn admin_promotes_a_member_to_admin_but_not_to_owner() {
    by(carol()).set_role("bob", ADMIN).allowed();
    let error = by(carol()).set_role("bob", OWNER).refused();
    assert!(
        matches!(error, PolicyError::RoleChangeNotAuthorized { .. }),
        "{error}"
    );
    by(alice()).set_role("bob", OWNER).allowed();
}

#[test]
fn nobody_changes_their_own_role() {
    let error = by(carol()).set_role("carol", OWNER).refused();
    assert_eq!(
        error.to_string(),
        "mimi://c.example/u/carol may not change mimi://c.example/u/carol from admin to owner: \
         canChangeUserRole applies only to other users"
    );
}

#[test]
fn member_cannot_change_roles() {
    let error = by(bob()).set_role("dave", ADMIN).refused();
    assert!(
        matches!(
            error,
            PolicyError::MissingCapability {
                capability: "canChangeUserRole",
                ..
            }
        ),
        "{error}"
    );
}

// ---------------------------------------------------------------------------
// Metadata and role definitions.

#[test]
fn metadata_changes_by_member_are_refused() {
    type Edit = fn(&mut RoomState);
    let edits: [(Edit, &str); 5] = [
        (
            |s| s.metadata.room_name = UTF8String::new("New").unwrap(),
            "canChangeRoomName",
        ),
        (
            |s| {
                s.metadata.room_descriptions.push(RichDescription {
                    media_type: VLBytes::new(vec![]),
                    language_tag: VLBytes::new(b"en".to_vec()),
                    description_content: VLBytes::new(b"A club".to_vec()),
                })
            },
            "canChangeRoomDescription",
        ),
        (
            |s| s.metadata.room_avatar = Uri::new("https://a.example/club.png"),
            "canChangeRoomAvatar",
        ),
        (|s| s.set_subject("Topic").unwrap(), "canChangeRoomSubject"),
        (
            |s| s.metadata.room_mood = UTF8String::new("cheerful").unwrap(),
            "canChangeRoomMood",
        ),
    ];
    for (edit, needed) in edits {
        let error = by(bob()).edit(edit).refused();
        assert!(
            matches!(&error, PolicyError::MissingCapability { capability, .. } if *capability == needed),
            "{error}"
        );
        by(carol()).edit(edit).allowed();
    }
}

#[test]
fn the_room_uri_never_changes() {
    let error = by(alice())
        .edit(|s| s.metadata.room_uri = Uri::new("mimi://a.example/r/other"))
        .refused();
    assert!(
        matches!(error, PolicyError::RoomUriChanged { .. }),
        "{error}"
    );
}

#[test]
fn role_definitions_change_by_owner_only() {
    let open = |s: &mut RoomState| s.roles.roles.push(open_role_zero(vec![MEMBER]));
    let error = by(carol()).edit(open).refused();
    assert_eq!(
        error.to_string(),
        "mimi://c.example/u/carol (role admin) lacks canChangeRoleDefinitions to change \
         the role definitions"
    );
    by(alice()).edit(open).allowed();
}

#[test]
fn role_definitions_and_participants_do_not_change_together() {
    let error = by(alice())
        .edit(|s| s.roles.roles.push(open_role_zero(vec![MEMBER])))
        .set_role("eve", MEMBER)
        .refused();
    assert_eq!(error, PolicyError::RolesAndParticipantsChanged);
}

#[test]
fn new_role_definitions_must_fit_the_room() {
    // Members are active, so members may not be limited to no active participants.
    let error = by(alice())
        .edit(|s| {
            if let Some(member) = s.roles.roles.iter_mut().find(|r| r.role_index == MEMBER) {
                member.maximum_active_participants_constraint = Some(0);
            }
        })
        .refused();
    assert!(
        matches!(error, PolicyError::ConstraintViolated { .. }),
        "{error}"
    );
    // Nor may a role a participant has disappear.
    let error = by(alice())
        .edit(|s| s.roles.roles.retain(|r| r.role_index != ADMIN))
        .refused();
    assert!(
        matches!(
            error,
            PolicyError::InvalidState(RoomStateError::UndefinedRole { .. })
        ),
        "{error}"
    );
    // And canOpenJoin stays on role 0.
    let error = by(alice())
        .edit(|s| {
            if let Some(member) = s.roles.roles.iter_mut().find(|r| r.role_index == MEMBER) {
                member.role_capabilities.push(CAN_OPEN_JOIN);
            }
        })
        .refused();
    assert!(
        matches!(
            error,
            PolicyError::InvalidState(RoomStateError::OpenJoinOnNonZeroRole { .. })
        ),
        "{error}"
    );
}

// ---------------------------------------------------------------------------
// Constraints.

#[test]
fn maximum_participants_hold_when_adding() {
    let limit_admins = |roles: &mut RoleData| {
        if let Some(admin) = roles.roles.iter_mut().find(|r| r.role_index == ADMIN) {
            admin.maximum_participants_constraint = Some(1);
        }
    };
    let error = by(alice())
        .given_roles(limit_admins)
        .set_role("eve", ADMIN)
        .refused();
    assert_eq!(
        error.to_string(),
        "2 participants with role admin after the change, but the role's \
         maximum_participants_constraint is 1"
    );
    // Swapping one admin for another keeps the count.
    by(alice())
        .given_roles(limit_admins)
        .set_role("carol", MEMBER)
        .set_role("bob", ADMIN)
        .allowed();
}

#[test]
fn maximum_active_participants_hold_when_adding_clients() {
    let error = by(bob())
        .given_roles(|roles| {
            if let Some(member) = roles.roles.iter_mut().find(|r| r.role_index == MEMBER) {
                member.maximum_active_participants_constraint = Some(1);
            }
        })
        .add(client("dave", "phone"))
        .refused();
    // Bob lacks canAddParticipant anyway; an admin meets the constraint instead.
    assert!(
        matches!(error, PolicyError::MissingCapability { .. }),
        "{error}"
    );
    let error = by(carol())
        .given_roles(|roles| {
            if let Some(member) = roles.roles.iter_mut().find(|r| r.role_index == MEMBER) {
                member.maximum_active_participants_constraint = Some(1);
            }
        })
        .add(client("dave", "phone"))
        .refused();
    assert!(
        matches!(
            error,
            PolicyError::ConstraintViolated {
                what: "active participants",
                limit: 1,
                count: 2,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn minimum_active_participants_hold_when_removing_clients() {
    let case = by(carol())
        .given_roles(|roles| {
            if let Some(owner) = roles.roles.iter_mut().find(|r| r.role_index == OWNER) {
                owner.minimum_active_participants_constraint = 1;
            }
        })
        .remove(&alice());
    let error = case.refused();
    assert!(
        matches!(
            error,
            PolicyError::ConstraintViolated {
                constraint: "minimum_active_participants_constraint",
                count: 0,
                ..
            }
        ),
        "{error}"
    );
}

// ---------------------------------------------------------------------------
// Sending.

#[test]
fn sending_needs_can_send_message() {
    let state = room();
    assert_eq!(authorize_send(&state, &user("bob")), Ok(()));
    assert_eq!(authorize_send(&state, &user("dave")), Ok(()));
    let error = authorize_send(&state, &user("eve")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "mimi://e.example/u/eve (role none) lacks canSendMessage to send a message"
    );
    let mut banned = state.clone();
    banned.set_role(&user("bob"), BANNED);
    let error = authorize_send(&banned, &user("bob")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "mimi://b.example/u/bob (role banned) lacks canSendMessage to send a message"
    );
}
