//! Consent (message requests) and blocks, as the user sees them.
//!
//! A user's provider hands out their key material (MLS KeyPackages, Signal prekey
//! bundles) only to users they accepted, when it runs with `[consent] mode =
//! "required"` (the default), and never to users they blocked. So before inviting
//! a stranger, ask: [`Client::request_consent`]. The stranger sees the request in
//! [`Client::consent_requests`] (`incoming`) on any of their devices and answers
//! with [`Client::accept_request`] or [`Client::decline_request`]. Asking also
//! grants the other user consent to add you (a bilateral connection, as in
//! draft-ietf-mimi-protocol-06 section 8). A decline is never told to the
//! requester: their request stays `pending`.
//!
//! [`Client::block`] stops a user from fetching your key material or sending you
//! requests (silently: they are not told), deletes their pending requests and any
//! consent you gave them, leaves the rooms whose only other participant is them,
//! and forgets this device's Signal sessions with their devices.

use entente_wire::consent::{Blocks, ConsentAction, ConsentRequests};
use entente_wire::ids::{RoomId, UserId};
use rusqlite::params;

use crate::store::storage;
use crate::{Client, ClientError};

/// What [`Client::block`] did on this device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockOutcome {
    /// Two-party rooms with the blocked user that this device left.
    pub left_rooms: Vec<RoomId>,
    /// Signal sessions with the blocked user's devices that were deleted.
    pub dropped_sessions: usize,
}

impl Client {
    async fn consent_call(
        &self,
        what: &str,
        user: &UserId,
        room: Option<&RoomId>,
    ) -> Result<(), ClientError> {
        let body = ConsentAction {
            user: user.to_string(),
            room: room.map(|r| r.to_string()),
        };
        let _: serde_json::Value = self
            .signed(
                reqwest::Method::POST,
                &format!("/v1/consent/{what}"),
                Some(&body),
            )
            .await?;
        Ok(())
    }

    /// Asks `user` for consent to add them to rooms (to `room` only, if given), and
    /// grants them consent to add you. Their provider is told through ours; the
    /// answer shows in [`Client::consent_requests`] (`outgoing`).
    pub async fn request_consent(
        &self,
        user: &UserId,
        room: Option<&RoomId>,
    ) -> Result<(), ClientError> {
        self.consent_call("request", user, room).await
    }

    /// Withdraws a request made with [`Client::request_consent`] (same room).
    pub async fn cancel_consent_request(
        &self,
        user: &UserId,
        room: Option<&RoomId>,
    ) -> Result<(), ClientError> {
        self.consent_call("cancel", user, room).await
    }

    /// Requests waiting for your answer (`incoming`) and your own requests and
    /// what became of them (`outgoing`: `granted` means you may add them).
    pub async fn consent_requests(&self) -> Result<ConsentRequests, ClientError> {
        self.signed::<(), _>(reqwest::Method::GET, "/v1/consent/requests", None)
            .await
    }

    /// Grants `user` consent to add you (to `room` only, if given); answers their
    /// pending request, if any.
    pub async fn accept_request(
        &self,
        user: &UserId,
        room: Option<&RoomId>,
    ) -> Result<(), ClientError> {
        self.consent_call("accept", user, room).await
    }

    /// Declines `user`'s requests and withdraws any consent given to them. They
    /// are not told.
    pub async fn decline_request(&self, user: &UserId) -> Result<(), ClientError> {
        self.consent_call("decline", user, None).await
    }

    /// Blocks `user` (see the module documentation).
    pub async fn block(&mut self, user: &UserId) -> Result<BlockOutcome, ClientError> {
        if user == self.user() {
            return Err(ClientError::Usage("you cannot block yourself".into()));
        }
        self.consent_call("block", user, None).await?;
        let mut outcome = BlockOutcome::default();
        for r in self.rooms()? {
            let others: Vec<&UserId> = r.members.iter().filter(|m| *m != self.user()).collect();
            if !others.is_empty() && others.iter().all(|m| *m == user) {
                self.leave(&r.room).await?;
                outcome.left_rooms.push(r.room);
            }
        }
        outcome.dropped_sessions = crate::blocking(|| {
            let local = self.db();
            local
                .conn
                .execute(
                    "INSERT OR REPLACE INTO blocked_users (user, blocked_at) VALUES (?1, ?2)",
                    params![user.to_string(), crate::now_secs() as i64],
                )
                .map_err(storage)?;
            local
                .conn
                .execute(
                    "DELETE FROM signal_sessions WHERE peer_user = ?1",
                    params![user.to_string()],
                )
                .map_err(storage)
        })?;
        Ok(outcome)
    }

    /// Lifts a block. Consent given before the block is not restored: ask again or
    /// accept a new request.
    pub async fn unblock(&self, user: &UserId) -> Result<(), ClientError> {
        self.consent_call("unblock", user, None).await?;
        crate::blocking(|| {
            self.db()
                .conn
                .execute(
                    "DELETE FROM blocked_users WHERE user = ?1",
                    params![user.to_string()],
                )
                .map_err(storage)
        })?;
        Ok(())
    }

    /// The users you blocked.
    pub async fn blocked_users(&self) -> Result<Blocks, ClientError> {
        self.signed::<(), _>(reqwest::Method::GET, "/v1/consent/blocks", None)
            .await
    }
}
