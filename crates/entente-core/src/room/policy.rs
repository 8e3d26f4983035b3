//! The room policy: which changes to a room's state and members a commit may make
//! (draft-ietf-mimi-room-policy-03 section 8).
//!
//! [`authorize`] compares the state and the group's members before and after a commit
//! and finds a capability for every difference. The committer's authority is its
//! user's role *before* the commit; users not in the participant list have role 0.

use std::collections::BTreeSet;

use entente_wire::ids::{ClientId, UserId};
use entente_wire::mimi::Role;
use entente_wire::mimi::capability::{
    self, CAN_ADD_OWN_CLIENT, CAN_ADD_PARTICIPANT, CAN_BAN, CAN_CHANGE_ROLE_DEFINITIONS,
    CAN_CHANGE_ROOM_AVATAR, CAN_CHANGE_ROOM_DESCRIPTION, CAN_CHANGE_ROOM_MOOD,
    CAN_CHANGE_ROOM_NAME, CAN_CHANGE_ROOM_SUBJECT, CAN_CHANGE_USER_ROLE, CAN_KICK, CAN_OPEN_JOIN,
    CAN_REMOVE_OWN_CLIENT, CAN_REMOVE_PARTICIPANT, CAN_REMOVE_SELF, CAN_SEND_MESSAGE, CAN_UNBAN,
};

use super::{PolicyError, RoomState, roles};

/// Who made a commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A client that was a member of the group before the commit.
    Member(ClientId),
    /// A client joining the group with an external commit.
    ExternalJoiner(ClientId),
}

impl Actor {
    /// The committing client.
    pub fn client(&self) -> &ClientId {
        match self {
            Actor::Member(client) | Actor::ExternalJoiner(client) => client,
        }
    }

    /// The committing client's user.
    pub fn user(&self) -> &UserId {
        self.client().user()
    }
}

/// A commit, as the room policy sees it: who made it, and the room state and group
/// members (client IDs from the ratchet tree) on either side of it.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// Who committed.
    pub actor: &'a Actor,
    /// Clients whose Remove proposal (by reference) was sent by a client of the same
    /// user: their user asked for their removal.
    pub self_proposed_removals: &'a [ClientId],
    /// The room state before the commit.
    pub before: &'a RoomState,
    /// The group's members before the commit.
    pub before_members: &'a [ClientId],
    /// The room state the commit installs.
    pub after: &'a RoomState,
    /// The group's members after the commit.
    pub after_members: &'a [ClientId],
}

/// Checks every difference between `change.before` and `change.after` (participant
/// list, members, metadata, roles) against the room policy, as room-policy-03 section 8
/// describes:
///
/// - **Participant list**, for each user whose role changes from `r1` to `r2`:
///   - to role 1 (ban; also from 0): `canBan` with `r1 -> 1`; role 1 must be named
///     "banned"; no clients of the user remain.
///   - from 0 (add): an external joiner adding itself needs role 0 to hold `canOpenJoin`
///     with `0 -> r2`; anyone else needs `canAddParticipant` with `0 -> r2`, for
///     another user.
///   - to 0 (remove): a user whose client proposed its own removal leaves with its own
///     role's `canRemoveSelf` and `r1 -> 0`; otherwise the committer needs
///     `canRemoveParticipant` with `r1 -> 0`, for another user. No clients remain.
///   - from 1 (unban): `canUnban` with `1 -> r2`, for another user.
///   - otherwise: `canChangeUserRole` with `r1 -> r2`, for another user.
/// - **Added clients**: their user is a participant after the change, not banned, and
///   its role allows active participants. Covered by the user's addition to the list
///   in the same change; otherwise the committer is the user's own client and the role
///   holds `canAddOwnClient`, or the committer holds `canAddParticipant` and the user
///   had no clients.
/// - **Removed clients**: covered by the user's removal or ban; otherwise the removal
///   was self-proposed or committed by the same user and the role holds
///   `canRemoveOwnClient`, or the committer holds `canKick`.
/// - **Metadata**: one `canChangeRoom*` capability per changed field; the room URI never
///   changes. **Roles**: `canChangeRoleDefinitions`, never together with a participant
///   list change.
/// - **Constraints**: for each role whose number of participants or active participants
///   grew, the maximum holds; where it shrank, the minimum holds; after a change of the
///   role definitions, all of them hold.
/// - Every client in the group after the change belongs to a participant that may
///   have clients, and the state after is [valid](RoomState::validate).
///
/// The inputs must agree with each other: a [`Actor::Member`] is in `before_members`,
/// an [`Actor::ExternalJoiner`] only in `after_members`; otherwise the result is
/// [`PolicyError::Inconsistent`]. The first refusal found is returned.
pub fn authorize(change: &Change<'_>) -> Result<(), PolicyError> {
    let check = Check::new(change)?;
    check.role_definitions()?;
    check.participant_list()?;
    check.added_clients()?;
    check.removed_clients()?;
    check.metadata()?;
    check.constraints()?;
    check.members_may_have_clients()
}

/// Whether `sender` may send an application message to the room (`canSendMessage`).
pub fn authorize_send(state: &RoomState, sender: &UserId) -> Result<(), PolicyError> {
    require(state, sender, CAN_SEND_MESSAGE, || "send a message".into()).map(|_| ())
}

/// Whether `user` may join the group with an external commit: as a participant whose
/// role holds `canAddOwnClient` (adding a client of its own), or as a user not in the
/// participant list when role 0 holds `canOpenJoin` and names a role to join as. Banned
/// users never may.
///
/// This is the check before an external commit is made or accepted; the commit itself
/// still goes through [`authorize`].
pub fn authorize_external_join(state: &RoomState, user: &UserId) -> Result<(), PolicyError> {
    let role = state.role_of(user);
    if state.is_banned_role(role) {
        return Err(PolicyError::Banned {
            user: user.to_uri(),
        });
    }
    if role != roles::NONE {
        let action = || "join the room from a new client".to_string();
        let definition = require(state, user, CAN_ADD_OWN_CLIENT, action)?;
        if definition.maximum_active_participants_constraint == Some(0) {
            return Err(refused(
                state,
                user,
                action(),
                "the role's maximum_active_participants_constraint is 0".into(),
            ));
        }
        return Ok(());
    }
    let action = || "join the room".to_string();
    let open = require(state, user, CAN_OPEN_JOIN, action)?;
    let has_target = open.authorized_role_changes.iter().any(|entry| {
        entry.from_role_index == roles::NONE
            && entry
                .target_role_indexes
                .iter()
                .any(|&target| target != roles::NONE)
    });
    if has_target {
        Ok(())
    } else {
        Err(refused(
            state,
            user,
            action(),
            "role 0's authorized_role_changes names no role to join as".into(),
        ))
    }
}

/// One commit under examination.
struct Check<'a> {
    actor: &'a Actor,
    /// The committer's user, whose role in `before` is its authority.
    committer: &'a UserId,
    self_proposed: BTreeSet<&'a ClientId>,
    before: &'a RoomState,
    after: &'a RoomState,
    before_members: BTreeSet<&'a ClientId>,
    after_members: BTreeSet<&'a ClientId>,
}

impl<'a> Check<'a> {
    fn new(change: &Change<'a>) -> Result<Self, PolicyError> {
        let Change {
            actor,
            self_proposed_removals,
            before,
            before_members,
            after,
            after_members,
        } = *change;
        after.validate().map_err(PolicyError::InvalidState)?;
        let check = Check {
            actor,
            committer: actor.user(),
            self_proposed: self_proposed_removals.iter().collect(),
            before,
            after,
            before_members: before_members.iter().collect(),
            after_members: after_members.iter().collect(),
        };
        let inconsistent = |reason: String| Err(PolicyError::Inconsistent { reason });
        match actor {
            Actor::Member(client) if !check.before_members.contains(client) => inconsistent(
                format!("the committer {client} is not a member of the group before the commit"),
            ),
            Actor::ExternalJoiner(client) if check.before_members.contains(client) => {
                inconsistent(format!(
                    "the external joiner {client} is already a member of the group before the commit"
                ))
            }
            Actor::ExternalJoiner(client) if !check.after_members.contains(client) => {
                inconsistent(format!(
                    "the external joiner {client} is not a member of the group after the commit"
                ))
            }
            _ => Ok(check),
        }
    }

    fn role_definitions(&self) -> Result<(), PolicyError> {
        if self.before.roles == self.after.roles {
            return Ok(());
        }
        if self.before.participants != self.after.participants {
            return Err(PolicyError::RolesAndParticipantsChanged);
        }
        self.require(CAN_CHANGE_ROLE_DEFINITIONS, || {
            "change the role definitions".into()
        })
    }

    fn participant_list(&self) -> Result<(), PolicyError> {
        for (user, from, to) in self.role_changes() {
            if to == roles::BANNED {
                self.ban(user, from)?;
            } else if from == roles::NONE {
                self.add(user, to)?;
            } else if to == roles::NONE {
                self.remove(user, from)?;
            } else if from == roles::BANNED {
                self.unban(user, to)?;
            } else {
                self.change_role(user, from, to)?;
            }
        }
        Ok(())
    }

    /// Users whose role differs between before and after, in list order.
    fn role_changes(&self) -> Vec<(&'a UserId, u32, u32)> {
        let changed = self
            .before
            .participants
            .iter()
            .map(|(user, from)| (user, *from, self.after.role_of(user)));
        let added = self
            .after
            .participants
            .iter()
            .filter(|(user, _)| self.before.role_of(user) == roles::NONE)
            .map(|(user, to)| (user, roles::NONE, *to));
        changed
            .chain(added)
            .filter(|(_, from, to)| from != to)
            .collect()
    }

    fn ban(&self, user: &UserId, from: u32) -> Result<(), PolicyError> {
        let action = || format!("ban {user} (role {})", role_label(self.before, from));
        if !self.before.is_banned_role(roles::BANNED) {
            return Err(PolicyError::NoBannedRole { action: action() });
        }
        self.not_own_user(user, CAN_BAN, action)?;
        self.require_transition(CAN_BAN, from, roles::BANNED, action)?;
        self.no_clients_left(user, "banned")
    }

    fn add(&self, user: &UserId, to: u32) -> Result<(), PolicyError> {
        let to_label = role_label(self.before, to);
        if matches!(self.actor, Actor::ExternalJoiner(client) if client.user() == user) {
            // Open join: the joiner has role 0, so role 0 is consulted.
            return require_transition(self.before, user, CAN_OPEN_JOIN, roles::NONE, to, || {
                format!("join the room as {to_label}")
            });
        }
        let action = || format!("add {user} as {to_label}");
        self.not_own_user(user, CAN_ADD_PARTICIPANT, action)?;
        self.require_transition(CAN_ADD_PARTICIPANT, roles::NONE, to, action)
    }

    fn remove(&self, user: &UserId, from: u32) -> Result<(), PolicyError> {
        let leaving = self
            .self_proposed
            .iter()
            .any(|client| client.user() == user);
        let by_committer = || {
            let action = || {
                format!(
                    "remove {user} (role {}) from the room",
                    role_label(self.before, from)
                )
            };
            self.not_own_user(user, CAN_REMOVE_PARTICIPANT, action)?;
            self.require_transition(CAN_REMOVE_PARTICIPANT, from, roles::NONE, action)
        };
        if leaving {
            let leave = require_transition(
                self.before,
                user,
                CAN_REMOVE_SELF,
                from,
                roles::NONE,
                || "leave the room".into(),
            );
            // Someone allowed to remove the user may still commit the departure.
            if let Err(error) = leave {
                by_committer().map_err(|_| error)?;
            }
        } else {
            by_committer()?;
        }
        self.no_clients_left(user, "removed from the participant list")
    }

    fn unban(&self, user: &UserId, to: u32) -> Result<(), PolicyError> {
        let action = || format!("unban {user} as {}", role_label(self.before, to));
        if !self.before.is_banned_role(roles::BANNED) {
            return Err(PolicyError::NoBannedRole { action: action() });
        }
        self.not_own_user(user, CAN_UNBAN, action)?;
        self.require_transition(CAN_UNBAN, roles::BANNED, to, action)
    }

    fn change_role(&self, user: &UserId, from: u32, to: u32) -> Result<(), PolicyError> {
        let action = || {
            format!(
                "change {user} from {} to {}",
                role_label(self.before, from),
                role_label(self.before, to)
            )
        };
        self.not_own_user(user, CAN_CHANGE_USER_ROLE, action)?;
        self.require_transition(CAN_CHANGE_USER_ROLE, from, to, action)
    }

    fn added_clients(&self) -> Result<(), PolicyError> {
        for client in self.after_members.difference(&self.before_members) {
            let user = client.user();
            may_have_clients(self.after, client)?;
            if self.before.role_of(user) == roles::NONE {
                // Added to the participant list in this commit, which was authorized
                // along with its clients.
                continue;
            }
            let own = self.committer == user;
            if own && self.before.can(user, CAN_ADD_OWN_CLIENT) {
                continue;
            }
            let had_clients = self.before_members.iter().any(|c| c.user() == user);
            if !had_clients && self.committer_holds(CAN_ADD_PARTICIPANT) {
                continue;
            }
            return Err(if own {
                missing(
                    self.before,
                    user,
                    CAN_ADD_OWN_CLIENT,
                    format!("add its client {client}"),
                )
            } else if !self.committer_holds(CAN_ADD_PARTICIPANT) {
                missing(
                    self.before,
                    self.committer,
                    CAN_ADD_PARTICIPANT,
                    format!("add client {client} of {user}"),
                )
            } else {
                refused(
                    self.before,
                    self.committer,
                    format!("add client {client} of {user}"),
                    format!(
                        "{user} already has clients in the group, and only they may add more \
                         (canAddOwnClient)"
                    ),
                )
            });
        }
        Ok(())
    }

    fn removed_clients(&self) -> Result<(), PolicyError> {
        for client in self.before_members.difference(&self.after_members) {
            let user = client.user();
            let (from, to) = (self.before.role_of(user), self.after.role_of(user));
            let left_list = from != roles::NONE && to == roles::NONE;
            let banned = from != to && to == roles::BANNED;
            if left_list || banned {
                // Checked with the participant list change.
                continue;
            }
            let own = self.self_proposed.contains(client) || self.committer == user;
            if own && self.before.can(user, CAN_REMOVE_OWN_CLIENT) {
                continue;
            }
            if self.committer_holds(CAN_KICK) {
                continue;
            }
            return Err(if own {
                missing(
                    self.before,
                    user,
                    CAN_REMOVE_OWN_CLIENT,
                    format!("remove its client {client}"),
                )
            } else {
                missing(
                    self.before,
                    self.committer,
                    CAN_KICK,
                    format!("remove client {client} of {user}"),
                )
            });
        }
        Ok(())
    }

    fn metadata(&self) -> Result<(), PolicyError> {
        let (before, after) = (&self.before.metadata, &self.after.metadata);
        if before.room_uri != after.room_uri {
            return Err(PolicyError::RoomUriChanged {
                before: before.room_uri.as_str().into(),
                after: after.room_uri.as_str().into(),
            });
        }
        let fields = [
            (
                before.room_name != after.room_name,
                CAN_CHANGE_ROOM_NAME,
                "change the room name",
            ),
            (
                before.room_descriptions != after.room_descriptions,
                CAN_CHANGE_ROOM_DESCRIPTION,
                "change the room description",
            ),
            (
                before.room_avatar != after.room_avatar,
                CAN_CHANGE_ROOM_AVATAR,
                "change the room avatar",
            ),
            (
                before.room_subject != after.room_subject,
                CAN_CHANGE_ROOM_SUBJECT,
                "change the room subject",
            ),
            (
                before.room_mood != after.room_mood,
                CAN_CHANGE_ROOM_MOOD,
                "change the room mood",
            ),
        ];
        for (changed, capability, action) in fields {
            if changed {
                self.require(capability, || action.into())?;
            }
        }
        Ok(())
    }

    fn constraints(&self) -> Result<(), PolicyError> {
        let all = self.before.roles != self.after.roles;
        let active_before = active_users(&self.before_members);
        let active_after = active_users(&self.after_members);
        for role in &self.after.roles.roles {
            let index = role.role_index;
            if index == roles::NONE {
                continue;
            }
            let count = |state: &RoomState, active: Option<&BTreeSet<&UserId>>| {
                let users = state.participants.iter().filter(|(user, role)| {
                    *role == index && active.is_none_or(|active| active.contains(user))
                });
                users.count() as u64
            };
            let label = || role_label(self.after, index);
            bounds(
                label,
                "participants",
                (
                    "minimum_participants_constraint",
                    "maximum_participants_constraint",
                ),
                (
                    role.minimum_participants_constraint,
                    role.maximum_participants_constraint,
                ),
                count(self.before, None),
                count(self.after, None),
                all,
            )?;
            bounds(
                label,
                "active participants",
                (
                    "minimum_active_participants_constraint",
                    "maximum_active_participants_constraint",
                ),
                (
                    role.minimum_active_participants_constraint,
                    role.maximum_active_participants_constraint,
                ),
                count(self.before, Some(&active_before)),
                count(self.after, Some(&active_after)),
                all,
            )?;
        }
        Ok(())
    }

    fn members_may_have_clients(&self) -> Result<(), PolicyError> {
        for client in &self.after_members {
            may_have_clients(self.after, client)?;
        }
        Ok(())
    }

    fn committer_holds(&self, capability: u16) -> bool {
        self.before.can(self.committer, capability)
    }

    fn require(&self, capability: u16, action: impl Fn() -> String) -> Result<(), PolicyError> {
        require(self.before, self.committer, capability, action).map(|_| ())
    }

    fn require_transition(
        &self,
        capability: u16,
        from: u32,
        to: u32,
        action: impl Fn() -> String,
    ) -> Result<(), PolicyError> {
        require_transition(self.before, self.committer, capability, from, to, action)
    }

    fn not_own_user(
        &self,
        user: &UserId,
        capability: u16,
        action: impl Fn() -> String,
    ) -> Result<(), PolicyError> {
        if user == self.committer {
            return Err(PolicyError::OwnUser {
                actor: self.committer.to_uri(),
                capability: capability_name(capability),
                action: action(),
            });
        }
        Ok(())
    }

    fn no_clients_left(&self, user: &UserId, what: &'static str) -> Result<(), PolicyError> {
        let remaining: Vec<String> = self
            .after_members
            .iter()
            .filter(|client| client.user() == user)
            .map(|client| client.to_uri())
            .collect();
        if remaining.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::ClientsRemain {
                user: user.to_uri(),
                what,
                clients: remaining.join(", "),
            })
        }
    }
}

/// `holder`'s role in `state`, if it holds `capability`.
fn require<'s>(
    state: &'s RoomState,
    holder: &UserId,
    capability: u16,
    action: impl Fn() -> String,
) -> Result<&'s Role, PolicyError> {
    state
        .role(state.role_of(holder))
        .filter(|role| role.has_capability(capability))
        .ok_or_else(|| missing(state, holder, capability, action()))
}

/// Whether `holder`'s role holds `capability` and may move a user from `from` to `to`.
fn require_transition(
    state: &RoomState,
    holder: &UserId,
    capability: u16,
    from: u32,
    to: u32,
    action: impl Fn() -> String,
) -> Result<(), PolicyError> {
    let role = require(state, holder, capability, &action)?;
    if role.authorizes_change(from, to) {
        Ok(())
    } else {
        Err(PolicyError::RoleChangeNotAuthorized {
            actor: holder.to_uri(),
            actor_role: role_label(state, role.role_index),
            capability: capability_name(capability),
            action: action(),
            from,
            to,
        })
    }
}

/// Whether `client`'s user may have clients in the group in `state`.
fn may_have_clients(state: &RoomState, client: &ClientId) -> Result<(), PolicyError> {
    let user = client.user();
    let role = state.role_of(user);
    let reason = if role == roles::NONE {
        format!("{user} is not a participant")
    } else if state.is_banned_role(role) {
        format!("{user} is banned")
    } else if state
        .role(role)
        .is_some_and(|role| role.maximum_active_participants_constraint == Some(0))
    {
        format!(
            "{user} has role {}, whose maximum_active_participants_constraint is 0",
            role_label(state, role)
        )
    } else {
        return Ok(());
    };
    Err(PolicyError::ClientNotAllowed {
        client: client.to_uri(),
        reason,
    })
}

/// Checks a count against a role's minimum and maximum: the maximum if it grew, the
/// minimum if it shrank, both if `all`.
fn bounds(
    role: impl Fn() -> String,
    what: &'static str,
    (minimum_name, maximum_name): (&'static str, &'static str),
    (minimum, maximum): (u32, Option<u32>),
    before: u64,
    after: u64,
    all: bool,
) -> Result<(), PolicyError> {
    let violated = |constraint, limit| PolicyError::ConstraintViolated {
        role: role(),
        what,
        constraint,
        limit,
        count: after,
    };
    if (all || after < before) && after < u64::from(minimum) {
        return Err(violated(minimum_name, minimum));
    }
    if let Some(maximum) = maximum
        && (all || after > before)
        && after > u64::from(maximum)
    {
        return Err(violated(maximum_name, maximum));
    }
    Ok(())
}

fn active_users<'a>(members: &BTreeSet<&'a ClientId>) -> BTreeSet<&'a UserId> {
    members.iter().map(|client| client.user()).collect()
}

fn missing(state: &RoomState, holder: &UserId, capability: u16, action: String) -> PolicyError {
    PolicyError::MissingCapability {
        actor: holder.to_uri(),
        actor_role: role_label(state, state.role_of(holder)),
        capability: capability_name(capability),
        action,
    }
}

fn refused(state: &RoomState, actor: &UserId, action: String, reason: String) -> PolicyError {
    PolicyError::Refused {
        actor: actor.to_uri(),
        actor_role: role_label(state, state.role_of(actor)),
        action,
        reason,
    }
}

/// A role for messages: its name (escaped: it is peer-controlled), `none` for an
/// undefined role 0, or the index.
fn role_label(state: &RoomState, index: u32) -> String {
    match state.role(index) {
        Some(role) if !role.role_name.is_empty() => role.role_name.escape_debug().to_string(),
        Some(_) => index.to_string(),
        None if index == roles::NONE => "none".into(),
        None => format!("{index} (undefined)"),
    }
}

/// The registered name of a capability; the policy only names registered ones.
fn capability_name(value: u16) -> &'static str {
    capability::name(value).unwrap_or("an unregistered capability")
}

#[cfg(test)]
mod tests;
