//! What the store keeps about moderation (see [`crate::moderation`]): suspended
//! local accounts, notices to local users, banned remote users and domains, and the
//! log of what moderators did.

/// What a moderator does. Each is applied with its log entry in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// Sends a local user a notice (the reason is its text).
    Warn,
    /// Refuses every client API request of a local user's devices.
    Suspend,
    Unsuspend,
    /// Refuses federation requests that name a remote user.
    BanUser,
    UnbanUser,
    /// Refuses every federation request from a remote domain and stops sending to it.
    BanDomain,
    UnbanDomain,
    /// Closes a report without other action.
    Dismiss,
}

impl ActionKind {
    pub const ALL: [ActionKind; 8] = [
        ActionKind::Warn,
        ActionKind::Suspend,
        ActionKind::Unsuspend,
        ActionKind::BanUser,
        ActionKind::UnbanUser,
        ActionKind::BanDomain,
        ActionKind::UnbanDomain,
        ActionKind::Dismiss,
    ];

    /// The name used in the admin API, the CLI and the log.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Warn => "warn",
            ActionKind::Suspend => "suspend",
            ActionKind::Unsuspend => "unsuspend",
            ActionKind::BanUser => "ban-user",
            ActionKind::UnbanUser => "unban-user",
            ActionKind::BanDomain => "ban-domain",
            ActionKind::UnbanDomain => "unban-domain",
            ActionKind::Dismiss => "dismiss",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One moderation action, validated by [`crate::moderation`]: `target` is a
/// canonical user URI, a domain, or (for `Dismiss`) a report id in decimal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModerationAction {
    pub kind: ActionKind,
    pub target: String,
    /// Why; for `Warn`, the notice's text.
    pub reason: String,
    /// The report this action settles: it is closed as actioned (dismissed for
    /// `Dismiss`) in the same transaction.
    pub report: Option<u64>,
    /// Who did it, as they named themselves when logging in.
    pub moderator: String,
    /// Seconds.
    pub at: u64,
}

/// A suspension or ban: why and since when (seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanction {
    pub target: String,
    pub reason: String,
    pub since: u64,
}

/// Everything that is enforced, loaded at start into memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sanctions {
    pub suspended_users: Vec<Sanction>,
    pub banned_users: Vec<Sanction>,
    pub banned_domains: Vec<Sanction>,
}

/// A notice to a local user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRecord {
    pub id: u64,
    pub created_at: u64,
    pub text: String,
    pub read_at: Option<u64>,
}

/// One entry of the moderation log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub id: u64,
    pub action: ModerationAction,
}
