//! Client API JSON of consent (message requests) and blocks: `/v1/consent/*`.
//!
//! Users are given as handles (`bob@b.example`) or MIMI URIs and answered as
//! handles; rooms as room URIs (`mimi://a.example/r/club`).

use serde::{Deserialize, Serialize};

/// `POST /v1/consent/request`, `/accept`, `/decline`, `/block`, `/unblock`: the
/// other user, and for a request or an acceptance optionally the one room it is
/// for (absent: any room).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentAction {
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// A request someone sent to the caller, waiting for an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingRequest {
    /// The requester's handle.
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// When it arrived, milliseconds since the UNIX epoch.
    pub at_ms: u64,
}

/// Whether the caller may add a user: what the caller asked (or was granted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutgoingStatus {
    /// Asked; no answer known. A declined request stays pending: declines are
    /// not told to the requester.
    Pending,
    /// The user accepted: the caller may add them (to `room`, or any room).
    Granted,
}

/// A request the caller sent, or a grant the caller received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingRequest {
    /// The target's handle.
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    pub status: OutgoingStatus,
    /// Last change, milliseconds since the UNIX epoch.
    pub at_ms: u64,
}

/// `GET /v1/consent/requests`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRequests {
    pub incoming: Vec<IncomingRequest>,
    pub outgoing: Vec<OutgoingRequest>,
}

/// One user the caller blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedUser {
    pub user: String,
    pub at_ms: u64,
}

/// `GET /v1/consent/blocks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocks {
    pub blocked: Vec<BlockedUser>,
}

/// The body of `POST /entente/v1/signal/bundles/{user}`: on whose behalf a peer
/// claims bundles (a user of the peer's domain), so the target's provider can
/// apply consent and blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleClaim {
    /// The requesting user's URI.
    pub requester: String,
}
