//! Client API JSON for moderation notices: what a provider's moderators tell a user
//! (`GET /v1/account/notices`, `POST /v1/account/notices/read`), and the parsers of
//! the moderators' web page ([`form`]).

use serde::{Deserialize, Serialize};

pub mod form;

/// Path of the notices endpoint.
pub const NOTICES_PATH: &str = "/v1/account/notices";
/// Path to mark notices read.
pub const NOTICES_READ_PATH: &str = "/v1/account/notices/read";

/// A notice from the provider's moderators to the user, e.g. a warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountNotice {
    pub id: u64,
    /// Seconds since the UNIX epoch.
    pub created_at: u64,
    pub text: String,
    /// Whether one of the user's devices marked it read.
    pub read: bool,
}

/// `GET /v1/account/notices`: the user's notices, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notices {
    pub notices: Vec<AccountNotice>,
}

/// `POST /v1/account/notices/read`: marks the notices up to `up_to` (an id) read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadNotices {
    pub up_to: u64,
}
