//! Errors of the room state codec and the room policy.

use entente_wire::ids::IdError;
use entente_wire::mimi::{FramingError, NulInString};

/// Why a room state could not be decoded, encoded or changed. For decoding, the
/// committer of the group context that carried it is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomStateError {
    /// The dictionary or one of its components does not decode.
    #[error("room state: {0}")]
    Framing(FramingError),
    /// A component the room state needs is absent.
    #[error("room state lacks the {name} component ({component_id:#06x})")]
    MissingComponent {
        /// The absent component.
        component_id: u16,
        /// Its name in the drafts.
        name: &'static str,
    },
    /// A component that is not part of the room state.
    #[error(
        "room state contains component {component_id:#06x}; only the participant list \
         (0x0022), room metadata (0x0023) and roles list (0x0025) belong there"
    )]
    UnexpectedComponent {
        /// The unexpected component.
        component_id: u16,
    },
    /// A participant entry is not a user URI.
    #[error("participant #{index} is not a valid user URI: {reason}")]
    InvalidParticipant {
        /// Position in the participant list.
        index: usize,
        /// Why the URI was rejected.
        reason: IdError,
    },
    /// A participant's URI is valid but not written in canonical form, so two encodings
    /// of the same list could differ.
    #[error("participant #{index} is written {found:?}; the canonical form is {user}")]
    NonCanonicalParticipant {
        /// Position in the participant list.
        index: usize,
        /// The URI as sent (shortened if long).
        found: String,
        /// The canonical URI.
        user: String,
    },
    /// A user is listed twice.
    #[error("{user} appears more than once in the participant list")]
    DuplicateParticipant {
        /// The user.
        user: String,
    },
    /// A participant with role 0, which means "not a participant".
    #[error(
        "participant {user} has role 0, which is reserved for users not in the participant list"
    )]
    ZeroRoleParticipant {
        /// The user.
        user: String,
    },
    /// A participant's role is not in the roles list.
    #[error("participant {user} has role {role}, which the roles list does not define")]
    UndefinedRole {
        /// The user.
        user: String,
        /// The role index.
        role: u32,
    },
    /// Two roles share an index.
    #[error("role {role} is defined more than once in the roles list")]
    DuplicateRole {
        /// The role index.
        role: u32,
    },
    /// `canOpenJoin` on a role other than 0 (room-policy-03 section 8.1.1 forbids it).
    #[error("role {role} ({name}) holds canOpenJoin, which only role 0 may hold")]
    OpenJoinOnNonZeroRole {
        /// The role index.
        role: u32,
        /// The role name.
        name: String,
    },
    /// Text for a metadata field contains NUL (the caller's input).
    #[error("the room {field} must not contain NUL characters: {source}")]
    InvalidText {
        /// The metadata field.
        field: &'static str,
        /// Where the NUL is.
        source: NulInString,
    },
}

/// Why the room policy refuses a change: what was refused, who tried, with what role,
/// and which capability or constraint stood in the way. Except for
/// [`PolicyError::Inconsistent`] (the caller's mistake), the committer (or sender) is at
/// fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The actor's role lacks a capability.
    #[error("{actor} (role {actor_role}) lacks {capability} to {action}")]
    MissingCapability {
        /// The user whose role was consulted.
        actor: String,
        /// That user's role.
        actor_role: String,
        /// The missing capability.
        capability: &'static str,
        /// What was refused.
        action: String,
    },
    /// The actor's role holds the capability, but its `authorized_role_changes` has no
    /// entry allowing the role change.
    #[error(
        "{actor} (role {actor_role}) holds {capability} but may not {action}: role \
         {actor_role}'s authorized_role_changes has no transition from role {from} to role {to}"
    )]
    RoleChangeNotAuthorized {
        /// The user whose role was consulted.
        actor: String,
        /// That user's role.
        actor_role: String,
        /// The capability used.
        capability: &'static str,
        /// What was refused.
        action: String,
        /// The target's role index before.
        from: u32,
        /// The target's role index after.
        to: u32,
    },
    /// A capability that only applies to other users was used on the actor's own user.
    #[error("{actor} may not {action}: {capability} applies only to other users")]
    OwnUser {
        /// The committer's user.
        actor: String,
        /// The capability.
        capability: &'static str,
        /// What was refused.
        action: String,
    },
    /// A user left the participant list or was banned, but kept clients in the group.
    #[error("{user} was {what} but client(s) {clients} remain in the group")]
    ClientsRemain {
        /// The user.
        user: String,
        /// "removed from the participant list" or "banned".
        what: &'static str,
        /// The remaining clients.
        clients: String,
    },
    /// A ban or unban in a room without role 1 named "banned".
    #[error("cannot {action}: the room has no role 1 named \"banned\"")]
    NoBannedRole {
        /// What was refused.
        action: String,
    },
    /// A client in the group whose user may not have clients there.
    #[error("client {client} may not be in the group: {reason}")]
    ClientNotAllowed {
        /// The client.
        client: String,
        /// Why its user may not have clients.
        reason: String,
    },
    /// The actor holds the capability, but the situation does not allow the action.
    #[error("{actor} (role {actor_role}) may not {action}: {reason}")]
    Refused {
        /// The user whose role was consulted.
        actor: String,
        /// That user's role.
        actor_role: String,
        /// What was refused.
        action: String,
        /// Why.
        reason: String,
    },
    /// A banned user tried to join.
    #[error("{user} is banned from the room")]
    Banned {
        /// The user.
        user: String,
    },
    /// The room URI changed.
    #[error("the room URI may never change (from {before:?} to {after:?})")]
    RoomUriChanged {
        /// The URI before.
        before: String,
        /// The URI after.
        after: String,
    },
    /// The role definitions and the participant list changed in one commit
    /// (room-policy-03 section 3 forbids it).
    #[error("the role definitions and the participant list may not change in the same commit")]
    RolesAndParticipantsChanged,
    /// A role's participant constraint does not hold after the change.
    #[error(
        "{count} {what} with role {role} after the change, but the role's {constraint} is {limit}"
    )]
    ConstraintViolated {
        /// The role.
        role: String,
        /// "participants" or "active participants" (those with clients in the group).
        what: &'static str,
        /// The constraint's field name in `Role`.
        constraint: &'static str,
        /// Its value.
        limit: u32,
        /// How many there would be.
        count: u64,
    },
    /// The room state after the change is not a valid room state.
    #[error("the room state after the change is invalid: {0}")]
    InvalidState(RoomStateError),
    /// The inputs contradict each other (for example a `Member` actor that is not in
    /// `before_members`): a bug in the caller.
    #[error("inconsistent input to the room policy (a caller bug): {reason}")]
    Inconsistent {
        /// What contradicts what.
        reason: String,
    },
}
