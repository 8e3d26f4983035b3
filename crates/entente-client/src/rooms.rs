//! Rooms: MIMI rooms on MLS groups. Creating, inviting, sending, and processing what
//! the hub fans out.

use std::time::Duration;

use std::collections::HashMap;

use entente_core::identity::{ClientCertificate, IssuerPublicKey};
use entente_core::mls::{CredentialVerifier, MlsCheckError};
use entente_wire::api::{
    self, HubAnswer, InboxItem, InboxPage, KeyMaterialCall, KeyMaterialResult, SubmitCall,
};
use entente_wire::content::MimiContent;
use entente_wire::ids::{ClientId, Domain, RoomId, UserId};
use openmls::prelude::{
    GroupId, KeyPackage, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY, MlsGroup, MlsGroupCreateConfig,
    MlsGroupJoinConfig, OpenMlsProvider as _, ProcessedMessageContent, ProtocolVersion, Sender,
    SenderRatchetConfiguration, StagedWelcome, WireFormatPolicy,
};
use rand::RngCore;
use rusqlite::{OptionalExtension, params};

use crate::frames::{self, FanoutBody, SubmitOutcome};
use crate::store::{CachedTransaction, MlsProvider, pinned_issuers, storage};
use crate::{Client, ClientError, Local, now_secs};

/// How many past epochs' keys a member keeps, to decrypt messages that were sent
/// just before a commit. Matches the hub's `MAX_PAST_EPOCHS`.
const MAX_PAST_EPOCHS: usize = 5;
/// How many times an operation is retried after the hub reports a newer epoch.
pub(crate) const EPOCH_RETRIES: usize = 5;

/// Something that happened, as seen by this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// We were added to a room.
    Joined { room: RoomId, members: Vec<UserId> },
    /// A message arrived (or was sent by another of our devices).
    Message(HistoryEntry),
    /// The room's members changed.
    MembersChanged { room: RoomId, members: Vec<UserId> },
    /// We were removed from a room (or our leaving took effect).
    Removed { room: RoomId },
    /// A member proposed a change (such as leaving) that a commit must apply.
    ProposalPending { room: RoomId },
    /// An item could not be processed; it was dropped with this reason. Nothing
    /// was applied from it.
    Rejected { room: String, reason: String },
    /// A message over the Signal channel (two-party or a group of such peers).
    Direct(crate::channel::DirectEntry),
    /// A peer device's identity key changed. Its messages are held, not
    /// decrypted, until the user accepts the new key
    /// ([`Client::trust_new_identity`](crate::Client::trust_new_identity)).
    IdentityChanged { user: UserId, client: ClientId },
    /// A group of Signal-channel peers was created or changed.
    DirectGroupChanged {
        group: [u8; 16],
        name: String,
        members: Vec<UserId>,
    },
    /// A call signal (offer, answer, ICE candidates, hang-up) from a device in a
    /// room; see [`crate::calls`]. Not kept in the history.
    Call {
        room: RoomId,
        from: ClientId,
        message: crate::calls::CallMessage,
    },
}

/// One message in a room's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub room: RoomId,
    pub sender: UserId,
    pub sender_client: ClientId,
    /// MIMI message ID (draft-ietf-mimi-content).
    pub message_id: [u8; 32],
    /// Hub acceptance time, ms since the UNIX epoch (for our own: local send time).
    pub timestamp_ms: u64,
    /// The text, if the content has a displayable text part.
    pub text: Option<String>,
    /// The encoded MIMI content.
    pub content: Vec<u8>,
    pub outgoing: bool,
    /// Ours, encrypted and stored, but not yet accepted by the hub: it is sent
    /// again by [`Client::resend_pending`] (and before the next send).
    pub pending: bool,
}

/// A room this device is in.
#[derive(Debug, Clone)]
pub struct RoomSummary {
    pub room: RoomId,
    pub epoch: u64,
    pub members: Vec<UserId>,
}

pub(crate) fn create_config(
    capabilities: openmls::prelude::Capabilities,
    extensions: openmls::prelude::Extensions<openmls::prelude::GroupContext>,
) -> Result<MlsGroupCreateConfig, ClientError> {
    Ok(MlsGroupCreateConfig::builder()
        .ciphersuite(entente_core::mls::CIPHERSUITE)
        .capabilities(capabilities)
        .with_group_context_extensions(extensions)
        .use_ratchet_tree_extension(false)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(100, 1000))
        .wire_format_policy(wire_policy())
        .build())
}

pub(crate) fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(false)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(100, 1000))
        .wire_format_policy(wire_policy())
        .build()
}

/// Handshake messages go out as PublicMessages so the hub can check them (MIMI-06
/// section 4.2); application messages are always PrivateMessages.
fn wire_policy() -> WireFormatPolicy {
    MIXED_PLAINTEXT_WIRE_FORMAT_POLICY
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The MLS group ID of a room.
pub(crate) fn group_id(room: &RoomId) -> GroupId {
    GroupId::from_slice(room.to_string().as_bytes())
}

/// The group of `room`, from the cache or the database.
pub(crate) fn group_in<'t>(
    tx: &'t mut CachedTransaction<'_>,
    room: &RoomId,
) -> Result<&'t mut MlsGroup, ClientError> {
    tx.group(&group_id(room))
        .map_err(|e| match e {
            ClientError::Storage(m) => {
                ClientError::Storage(m.replacen("loading a group", &format!("loading {room}"), 1))
            }
            e => e,
        })?
        .ok_or_else(|| ClientError::Usage(format!("this device is not in {room}")))
}

/// The clients in a group.
pub(crate) fn clients_of(group: &MlsGroup) -> Result<Vec<ClientId>, ClientError> {
    group
        .members()
        .map(|m| {
            entente_core::mls::certificate_in(&m.credential)
                .map(|c| c.claimed_client().clone())
                .map_err(|e| ClientError::Untrusted(e.to_string()))
        })
        .collect()
}

/// The users of `clients`, sorted, each once.
fn users_of_clients<'c>(clients: impl IntoIterator<Item = &'c ClientId>) -> Vec<UserId> {
    let mut users: Vec<UserId> = clients.into_iter().map(|c| c.user().clone()).collect();
    users.sort_by_key(|u| u.to_string());
    users.dedup();
    users
}

/// The users in a group, sorted, each once.
pub(crate) fn users_of(group: &MlsGroup) -> Result<Vec<UserId>, ClientError> {
    Ok(users_of_clients(&clients_of(group)?))
}

/// A failed credential check, as the client reports it.
/// Checks every member's certificate against the issuer keys we pinned.
pub(crate) fn verify_members(
    verifier: &mut CredentialVerifier,
    conn: &rusqlite::Connection,
    members: impl Iterator<Item = openmls::group::Member>,
) -> Result<Vec<ClientCertificate>, ClientError> {
    let members: Vec<_> = members.collect();
    verifier
        .verify_all(
            members
                .iter()
                .map(|m| (&m.credential, m.signature_key.as_slice())),
            &pinned_issuers(conn)?,
            now_secs(),
        )
        .map_err(untrusted)
}

pub(crate) fn untrusted(e: MlsCheckError) -> ClientError {
    match e {
        MlsCheckError::UnknownIssuer { domain } => {
            ClientError::Untrusted(format!("no issuer key known for {domain}"))
        }
        e => ClientError::Untrusted(e.to_string()),
    }
}

/// Verifies a member's credential with the pinned issuer keys.
pub(crate) fn verify_pinned(
    verifier: &mut CredentialVerifier,
    issuers: &HashMap<Domain, IssuerPublicKey>,
    credential: &openmls::prelude::Credential,
    signature_key: &[u8],
) -> Result<ClientCertificate, ClientError> {
    verifier
        .verify(credential, signature_key, issuers, now_secs())
        .map_err(untrusted)
}

pub(crate) fn room_path(room: &RoomId, tail: &str) -> String {
    format!("/v1/rooms/{}/{tail}", api::path_segment(&room.to_string()))
}

impl Client {
    /// Claims KeyPackages for all devices of `user` and checks each one's credential.
    pub(crate) async fn claim_key_packages(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Vec<KeyPackage>, ClientError> {
        let request = frames::key_material_request(
            self.id.user(),
            user,
            room,
            &self.credential_with_key(),
            &self.signer,
        )?;
        let r: KeyMaterialResult = self
            .signed(
                reqwest::Method::POST,
                &room_path(room, "key-material"),
                Some(&KeyMaterialCall { request }),
            )
            .await?;
        let mut out = Vec::new();
        for kp in frames::parse_key_material_response(&r.response, user)? {
            let kp = kp
                .validate(&self.crypto, ProtocolVersion::Mls10)
                .map_err(|e| {
                    ClientError::Untrusted(format!(
                        "a KeyPackage of {} is invalid: {e}",
                        user.handle()
                    ))
                })?;
            let cert = self
                .verify_leaf(
                    kp.leaf_node().credential(),
                    kp.leaf_node().signature_key().as_slice(),
                )
                .await?;
            if cert.client().user() != user {
                return Err(ClientError::Untrusted(format!(
                    "asked for {}'s devices, got {}",
                    user.handle(),
                    cert.client()
                )));
            }
            out.push(kp);
        }
        Ok(out)
    }

    /// Verifies a member's credential against its provider's issuer key.
    pub(crate) async fn verify_leaf(
        &self,
        credential: &openmls::prelude::Credential,
        signature_key: &[u8],
    ) -> Result<ClientCertificate, ClientError> {
        let unverified = entente_core::mls::certificate_in(credential)
            .map_err(|e| ClientError::Untrusted(e.to_string()))?;
        let issuer = self
            .issuer_key(unverified.claimed_client().domain())
            .await?;
        entente_core::mls::verify_credential(credential, signature_key, &issuer, now_secs())
            .map_err(|e| ClientError::Untrusted(e.to_string()))
    }

    /// Runs `f` in one local transaction with the room's group.
    pub(crate) fn with_group<T>(
        &self,
        room: &RoomId,
        f: impl FnOnce(&MlsGroup) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        crate::blocking(|| {
            let mut local = self.db();
            let Local { conn, groups, .. } = &mut *local;
            groups.transaction(conn, |tx| f(group_in(tx, room)?))
        })
    }

    /// The clients in a room, from the MLS group.
    pub fn member_clients(&self, room: &RoomId) -> Result<Vec<ClientId>, ClientError> {
        self.with_group(room, clients_of)
    }

    /// The users in a room.
    pub fn members(&self, room: &RoomId) -> Result<Vec<UserId>, ClientError> {
        self.with_group(room, users_of)
    }

    /// The rooms this device is in.
    pub fn rooms(&self) -> Result<Vec<RoomSummary>, ClientError> {
        crate::blocking(|| {
            let mut local = self.db();
            let Local { conn, groups, .. } = &mut *local;
            groups.transaction(conn, |tx| {
                let rooms: Vec<String> = {
                    let mut stmt = tx
                        .conn()
                        .prepare("SELECT room FROM rooms ORDER BY joined_at")
                        .map_err(storage)?;
                    stmt.query_map([], |r| r.get(0))
                        .map_err(storage)?
                        .collect::<Result<_, _>>()
                        .map_err(storage)?
                };
                rooms
                    .into_iter()
                    .map(|r| {
                        let room: RoomId = r
                            .parse()
                            .map_err(|e| ClientError::Storage(format!("room: {e}")))?;
                        let group = group_in(tx, &room)?;
                        Ok(RoomSummary {
                            epoch: group.epoch().as_u64(),
                            members: users_of(group)?,
                            room,
                        })
                    })
                    .collect()
            })
        })
    }

    /// Sends a text message (plain or markdown) to a room. Returns its MIMI
    /// message ID once the hub has accepted it.
    pub async fn send_text(
        &mut self,
        room: &RoomId,
        text: &str,
        markdown: bool,
    ) -> Result<[u8; 32], ClientError> {
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let content = MimiContent::text(text, markdown, salt);
        self.send_content(room, &content).await
    }

    /// Sends MIMI content to a room.
    pub async fn send_content(
        &mut self,
        room: &RoomId,
        content: &MimiContent,
    ) -> Result<[u8; 32], ClientError> {
        self.require_room(room)?;
        // Earlier messages go first, so the hub sees them in the order they were sent.
        self.resend_pending().await?;
        self.send_now(room, content, true).await
    }

    /// Sends MIMI content that is only worth delivering now (call signals): it is
    /// not kept in the history, and it is not queued for resending when the hub
    /// cannot be reached.
    pub(crate) async fn send_ephemeral(
        &mut self,
        room: &RoomId,
        content: &MimiContent,
    ) -> Result<(), ClientError> {
        self.require_room(room)?;
        self.send_now(room, content, false).await.map(|_| ())
    }

    async fn send_now(
        &mut self,
        room: &RoomId,
        content: &MimiContent,
        keep: bool,
    ) -> Result<[u8; 32], ClientError> {
        // Franking (MIMI-06 section 5.4.1.1): the content names its sender and room.
        let mut content = content.clone();
        content.extensions.sender_uri = Some(self.id.user().to_uri());
        content.extensions.room_uri = Some(room.to_uri());
        let bytes = content.encode();
        let message_id = *content
            .message_id(&self.id.user().to_string(), &room.to_string())
            .map_err(|e| ClientError::Bug(format!("message id: {e}")))?
            .as_bytes();
        let outbox_id = self.queue_message(room, &bytes, &message_id, keep)?;
        let delivered = self
            .deliver_queued(outbox_id, room, &bytes, &message_id, keep)
            .await;
        if delivered.is_err() && !keep {
            self.db()
                .execute(
                    "DELETE FROM outbox WHERE message_id = ?1",
                    params![message_id.to_vec()],
                )
                .map_err(storage)?;
        }
        delivered?;
        Ok(message_id)
    }

    /// Sends again every message that was encrypted and stored but whose
    /// submission failed (the provider or hub was unreachable). The hub
    /// deduplicates, so a message it did accept before is not delivered twice.
    /// Returns the message IDs now accepted; stops at the first transient failure.
    pub async fn resend_pending(&mut self) -> Result<Vec<[u8; 32]>, ClientError> {
        let pending: Vec<(i64, String, Vec<u8>, Vec<u8>)> = {
            let conn = self.db();
            let mut stmt = conn
                .prepare(
                    "SELECT o.id, o.room, o.message_id, h.content FROM outbox o
                     JOIN history h ON h.room = o.room AND h.message_id = o.message_id
                     ORDER BY o.id",
                )
                .map_err(storage)?;

            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(storage)?
                .collect::<Result<_, _>>()
                .map_err(storage)?
        };
        // The provider asked us to slow down: resend only once that time is up.
        if !pending.is_empty()
            && let Some(wait) = self.transport.rate_limited_for()
        {
            return Err(ClientError::RateLimited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                message: format!(
                    "{} message(s) are waiting in the outbox until the provider's rate limit allows them",
                    pending.len()
                ),
            });
        }
        let mut sent = Vec::new();
        for (id, room, mid, content) in pending {
            let room: RoomId = room
                .parse()
                .map_err(|e| ClientError::Storage(format!("outbox room: {e}")))?;
            let mid: [u8; 32] = mid
                .as_slice()
                .try_into()
                .map_err(|_| ClientError::Storage("outbox message id".into()))?;
            self.deliver_queued(id, &room, &content, &mid, true).await?;
            sent.push(mid);
        }
        Ok(sent)
    }

    /// Encrypts a message and stores it, with its history row and its outbox row,
    /// in one local transaction (encrypting advances the ratchet). Returns the
    /// outbox row.
    fn queue_message(
        &self,
        room: &RoomId,
        bytes: &[u8],
        message_id: &[u8; 32],
        keep: bool,
    ) -> Result<i64, ClientError> {
        crate::blocking(|| {
            let mut local = self.db();
            let Local { conn, groups, .. } = &mut *local;
            groups.transaction(conn, |tx| {
                let conn = tx.conn();
                let provider = MlsProvider::new(&self.crypto, conn);
                let group = group_in(tx, room)?;
                // The franking tag goes in the MLS AAD as a Safe AAD `frank_aad` item.
                let tag = entente_core::franking::franking_tag(bytes)
                    .map_err(|e| ClientError::Bug(format!("franking tag: {e}")))?;
                let aad = entente_core::franking::frank_aad(&tag)
                    .map_err(|e| ClientError::Bug(format!("franking AAD: {e}")))?;
                group.set_aad(aad);
                let msg = group
                    .create_message(&provider, &self.signer, bytes)
                    .map_err(|e| ClientError::Mls(format!("encrypting: {e}")))?;
                let request = frames::submit_request(&msg, self.id.user())?;
                if keep {
                conn.execute(
                    "INSERT OR IGNORE INTO history (room, message_id, sender_client, sender_user, hub_timestamp, content, outgoing)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
                    params![room.to_string(), message_id.to_vec(), self.id.to_string(), self.id.user().to_string(), now_ms() as i64, bytes],
                )
                .map_err(storage)?;
                }
                conn.execute(
                    "INSERT INTO outbox (room, request, created_at, message_id) VALUES (?1, ?2, ?3, ?4)",
                    params![room.to_string(), request, now_secs() as i64, message_id.to_vec()],
                )
                .map_err(storage)?;
                Ok(conn.last_insert_rowid())
            })
        })
    }

    /// Submits a queued message until the hub has decided on it. A transient
    /// failure leaves it queued for [`Client::resend_pending`].
    async fn deliver_queued(
        &mut self,
        mut outbox_id: i64,
        room: &RoomId,
        bytes: &[u8],
        message_id: &[u8; 32],
        keep: bool,
    ) -> Result<(), ClientError> {
        for attempt in 0..EPOCH_RETRIES {
            let request: Vec<u8> = self
                .db()
                .query_row(
                    "SELECT request FROM outbox WHERE id = ?1",
                    params![outbox_id],
                    |r| r.get(0),
                )
                .map_err(storage)?;
            let answer: HubAnswer = match self.submit_with_retry(room, SubmitCall { request }).await
            {
                // A spam filter refused the message for good: like `notAllowed`, it
                // is not kept for resending.
                Err(e) if is_spam_rejection(&e) => {
                    let conn = self.db();
                    conn.execute("DELETE FROM outbox WHERE id = ?1", params![outbox_id])
                        .map_err(storage)?;
                    conn.execute(
                        "DELETE FROM history WHERE room = ?1 AND message_id = ?2 AND outgoing = 1",
                        params![room.to_string(), message_id.to_vec()],
                    )
                    .map_err(storage)?;
                    return Err(e);
                }
                r => r?,
            };
            let outcome = frames::parse_submit_response(&answer.response)?;
            {
                let conn = self.db();
                conn.execute("DELETE FROM outbox WHERE id = ?1", params![outbox_id])
                    .map_err(storage)?;
                match &outcome {
                    SubmitOutcome::Accepted {
                        timestamp_ms,
                        frank,
                    } => {
                        conn.execute(
                            "UPDATE history SET hub_timestamp = ?1 WHERE room = ?2 AND message_id = ?3",
                            params![*timestamp_ms as i64, room.to_string(), message_id.to_vec()],
                        )
                        .map_err(storage)?;
                        // Keep the frank of our own message, checked like a receiver's.
                        let aad = entente_core::franking::franking_tag(bytes)
                            .and_then(|t| entente_core::franking::frank_aad(&t))
                            .unwrap_or_default();
                        let (status, kept) = crate::franking::check(
                            &pinned_issuers(&conn)?,
                            bytes,
                            &aad,
                            frank.as_ref(),
                            *timestamp_ms,
                            self.id.user(),
                            room,
                        );
                        crate::franking::store(&conn, room, message_id, &status, kept)?;
                    }
                    SubmitOutcome::NotAllowed => {
                        conn.execute(
                            "DELETE FROM history WHERE room = ?1 AND message_id = ?2 AND outgoing = 1",
                            params![room.to_string(), message_id.to_vec()],
                        )
                        .map_err(storage)?;
                    }
                    SubmitOutcome::EpochTooOld { .. } => {}
                }
            }
            match outcome {
                SubmitOutcome::Accepted { .. } => return Ok(()),
                SubmitOutcome::EpochTooOld { current } => {
                    tracing::info!(
                        attempt,
                        current,
                        "our epoch is too old; catching up and re-encrypting"
                    );
                    self.sync().await?;
                    outbox_id = self.queue_message(room, bytes, message_id, keep)?;
                }
                SubmitOutcome::NotAllowed => {
                    return Err(ClientError::not_allowed(format!(
                        "the hub of {room} does not allow you to send there"
                    )));
                }
            }
        }
        Err(ClientError::Protocol(format!(
            "could not catch up with {room}'s epoch"
        )))
    }

    /// Submits, retrying a few times while the provider or hub is unreachable. The
    /// hub deduplicates, so a retry after a lost answer does not send twice.
    async fn submit_with_retry(
        &self,
        room: &RoomId,
        call: SubmitCall,
    ) -> Result<HubAnswer, ClientError> {
        let mut delay = Duration::from_millis(200);
        let mut attempts_left = 4;
        loop {
            match self
                .signed(
                    reqwest::Method::POST,
                    &room_path(room, "messages"),
                    Some(&call),
                )
                .await
            {
                // Rate limited: no retry now; the message waits in the outbox and
                // the error says how long.
                Err(e @ ClientError::RateLimited { .. }) => return Err(e),
                // Wait only if another attempt follows: after the last one, report.
                Err(e) if e.is_transient() && attempts_left > 1 => {
                    attempts_left -= 1;
                    // As long as the provider asks, within reason.
                    let wait = e
                        .retry_after()
                        .map_or(delay, |r| r.min(Duration::from_secs(5)).max(delay));
                    tokio::time::sleep(wait).await;
                    delay *= 3;
                }
                result => return result,
            }
        }
    }

    /// A room's history, oldest first, at most `limit` entries (the latest).
    pub fn history(&self, room: &RoomId, limit: u32) -> Result<Vec<HistoryEntry>, ClientError> {
        let conn = self.db();
        let mut stmt = conn
            .prepare(
                "SELECT sender_user, sender_client, message_id, hub_timestamp, content, outgoing,
                        EXISTS (SELECT 1 FROM outbox o WHERE o.room = h.room AND o.message_id = h.message_id)
                 FROM (SELECT * FROM history WHERE room = ?1 ORDER BY id DESC LIMIT ?2) h ORDER BY id",
            )
            .map_err(storage)?;
        let rows = stmt
            .query_map(params![room.to_string(), limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, bool>(5)?,
                    r.get::<_, bool>(6)?,
                ))
            })
            .map_err(storage)?;
        let mut out = Vec::new();
        for row in rows {
            let (user, client, mid, ts, content, outgoing, pending) = row.map_err(storage)?;
            out.push(HistoryEntry {
                room: room.clone(),
                sender: user
                    .parse()
                    .map_err(|e| ClientError::Storage(format!("{e}")))?,
                sender_client: client
                    .parse()
                    .map_err(|e| ClientError::Storage(format!("{e}")))?,
                message_id: mid.as_slice().try_into().unwrap_or([0; 32]),
                timestamp_ms: ts as u64,
                text: MimiContent::decode(&content)
                    .ok()
                    .and_then(|c| c.display_text().map(|t| t.text.to_owned())),
                content,
                outgoing,
                pending,
            });
        }
        Ok(out)
    }

    // ------------------------------------------------------------- receiving

    fn inbox_cursor(&self) -> Result<u64, ClientError> {
        Ok(crate::store::setting(&self.db(), "inbox_cursor")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Fetches and processes everything waiting in the inbox; acks it.
    pub async fn sync(&mut self) -> Result<Vec<Event>, ClientError> {
        let mut events = Vec::new();
        loop {
            let after = self.inbox_cursor()?;
            let page: InboxPage = self
                .signed::<(), _>(
                    reqwest::Method::GET,
                    &format!("/v1/inbox?after={after}&limit=200"),
                    None,
                )
                .await?;
            let Some(last) = page.items.last().map(|i| i.seq) else {
                break;
            };
            for item in page.items {
                if let Some(e) = self.process_item(&item).await? {
                    events.push(e);
                }
            }
            let _: api::Ack = self
                .signed(
                    reqwest::Method::POST,
                    "/v1/inbox/ack",
                    Some(&api::Ack { up_to: last }),
                )
                .await?;
        }
        if !events.is_empty() {
            let _ = self.replenish_key_packages().await;
            if events
                .iter()
                .any(|e| matches!(e, Event::Direct(_) | Event::DirectGroupChanged { .. }))
                && let Err(e) = self.replenish_prekeys().await
            {
                tracing::info!(error = %e, "could not top up Signal prekeys");
            }
        }
        let pending: Vec<Event> = events
            .iter()
            .filter(|e| matches!(e, Event::ProposalPending { .. }))
            .cloned()
            .collect();
        for e in &pending {
            self.after_event(e).await;
        }
        Ok(events)
    }

    /// Listens on the push WebSocket, calling `on_event` for each event, until
    /// `stop` resolves. Reconnects with backoff when the connection drops.
    pub async fn listen<F, S>(&mut self, mut on_event: F, stop: S) -> Result<(), ClientError>
    where
        F: FnMut(&Event),
        S: std::future::Future<Output = ()>,
    {
        tokio::pin!(stop);
        let mut backoff = Duration::from_millis(200);
        loop {
            let me = self.id.to_string();
            let cursor = self.inbox_cursor()?;
            let socket = tokio::select! {
                _ = &mut stop => return Ok(()),
                s = self.transport.websocket(&me, &self.signer, cursor) => s,
            };
            let mut socket = match socket {
                Ok(s) => {
                    backoff = Duration::from_millis(200);
                    s
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "push connection failed; retrying");
                    tokio::select! {
                        _ = &mut stop => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
                Err(e) => return Err(e),
            };
            loop {
                let next = tokio::select! {
                    _ = &mut stop => return Ok(()),
                    n = socket.next_item() => n,
                };
                match next {
                    Ok(Some(item)) => {
                        let seq = item.seq;
                        if let Some(e) = self.process_item(&item).await? {
                            self.after_event(&e).await;
                            on_event(&e);
                        }
                        if socket.ack(seq).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    /// Follow-up work an event calls for: committing pending proposals when this
    /// device is the one designated to.
    pub(crate) async fn after_event(&mut self, event: &Event) {
        if let Event::ProposalPending { room } = event
            && let Err(e) = Box::pin(self.commit_pending_if_designated(room)).await
        {
            tracing::info!(room = %room, error = %e, "could not commit pending proposals (another member may have)");
        }
    }

    /// Processes one inbox item in one local transaction. Items at or below the
    /// cursor were processed before (redelivery after a crash) and are skipped.
    async fn process_item(&mut self, item: &InboxItem) -> Result<Option<Event>, ClientError> {
        if item.seq <= self.inbox_cursor()? {
            return Ok(None);
        }
        if item.room == entente_wire::signal::SEALED_INBOX {
            return self.process_sealed(item).await;
        }
        // Credentials are verified before anything is applied; issuer keys may need
        // fetching, which is async, so gather them first.
        let parsed = frames::parse_fanout(&item.fanout);
        if let Ok(f) = &parsed {
            for domain in frames::credential_domains(f) {
                let _ = self.issuer_key(&domain).await;
            }
            // A frank is signed with the issuer key of the room's hub.
            if f.frank.is_some()
                && let Ok(room) = item.room.parse::<RoomId>()
            {
                let _ = self.issuer_key(room.domain()).await;
            }
        }
        crate::blocking(|| {
            let mut local = self.db();
            let Local {
                conn,
                groups,
                verifier,
            } = &mut *local;
            let cursor = item.seq.to_string();
            // The item and the cursor in one transaction. An item that fails is
            // rolled back (the transaction fails with it) and kept here; a
            // failure to store the cursor or to commit is reported as it is.
            let mut rejected = None;
            let applied = match parsed {
                Ok(f) => groups.transaction(conn, |tx| {
                    match self.apply_fanout(tx, verifier, &item.room, f) {
                        Ok(ev) => {
                            crate::store::set_setting(tx.conn(), "inbox_cursor", &cursor)?;
                            Ok(ev)
                        }
                        Err(e) => {
                            let reason = e.to_string();
                            rejected = Some(e);
                            Err(ClientError::Bug(format!("rolled back: {reason}")))
                        }
                    }
                }),
                Err(e) => {
                    rejected = Some(e);
                    Ok(None)
                }
            };
            let Some(e) = rejected else {
                return applied;
            };
            // Undone already; record the item as handled.
            tracing::warn!(room = %item.room, error = %e, "dropping an undecryptable or invalid item");
            groups.transaction(conn, |tx| {
                crate::store::set_setting(tx.conn(), "inbox_cursor", &cursor)
            })?;
            Ok(Some(Event::Rejected {
                room: item.room.clone(),
                reason: e.to_string(),
            }))
        })
    }

    /// Tries to read a FanoutMessage obtained out of band (from a backup, or a test
    /// that captured it) with this device's current state, then rolls everything
    /// back: nothing about the device changes. Issuer keys must already be pinned.
    pub fn inspect_fanout(
        &self,
        room: &RoomId,
        fanout: &[u8],
    ) -> Result<Option<Event>, ClientError> {
        let f = frames::parse_fanout(fanout)?;
        let mut local = self.db();
        let Local {
            conn,
            groups,
            verifier,
        } = &mut *local;
        groups.dry_run(conn, |tx| {
            self.apply_fanout(tx, verifier, &room.to_string(), f)
        })
    }

    /// Applies one fanout message inside the caller's transaction. Synchronous: all
    /// issuer keys needed were fetched beforehand.
    fn apply_fanout(
        &self,
        tx: &mut CachedTransaction<'_>,
        verifier: &mut CredentialVerifier,
        room_s: &str,
        f: frames::Fanout,
    ) -> Result<Option<Event>, ClientError> {
        let room: RoomId = room_s
            .parse()
            .map_err(|e| ClientError::Protocol(format!("room id: {e}")))?;
        let conn = tx.conn();
        let provider = MlsProvider::new(&self.crypto, conn);
        match f.body {
            FanoutBody::Welcome {
                welcome,
                ratchet_tree,
            } => {
                let staged = StagedWelcome::new_from_welcome(
                    &provider,
                    &join_config(),
                    welcome,
                    Some(ratchet_tree),
                )
                .map_err(|e| ClientError::Mls(format!("processing a Welcome: {e}")))?;
                if staged.group_context().group_id().as_slice() != room.to_string().as_bytes() {
                    return Err(ClientError::Protocol(
                        "Welcome is for a different room than it was delivered for".into(),
                    ));
                }
                let certs = verify_members(verifier, conn, staged.members())?;
                let group = staged
                    .into_group(&provider)
                    .map_err(|e| ClientError::Mls(format!("joining: {e}")))?;
                let group = tx.insert(group);
                conn.execute(
                    "INSERT OR IGNORE INTO rooms (room, joined_at, joined_epoch) VALUES (?1, ?2, ?3)",
                    params![room.to_string(), now_secs() as i64, group.epoch().as_u64() as i64],
                )
                .map_err(storage)?;
                Ok(Some(Event::Joined {
                    members: users_of_clients(certs.iter().map(|c| c.client())),
                    room,
                }))
            }
            FanoutBody::Protocol(msg) => {
                // A message from an epoch before we joined was fanned out to us
                // because the hub accepted it after our join (its sender had not
                // seen the commit yet). It was never meant for us: skip it quietly.
                let joined_epoch: i64 = conn
                    .query_row(
                        "SELECT joined_epoch FROM rooms WHERE room = ?1",
                        params![room.to_string()],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(storage)?
                    .unwrap_or(0);
                if msg.epoch().as_u64() < joined_epoch as u64 {
                    tracing::debug!(room = %room, "skipping a message from before we joined");
                    return Ok(None);
                }
                let issuers = pinned_issuers(conn)?;
                let group = group_in(tx, &room)?;
                let processed = group
                    .process_message(&provider, msg)
                    .map_err(|e| ClientError::Mls(format!("{e}")))?;
                let aad = processed.aad().to_vec();
                let sender_leaf = match processed.sender() {
                    Sender::Member(i) => Some(*i),
                    _ => None,
                };
                let sender_cert = match sender_leaf.and_then(|i| group.member_at(i)) {
                    Some(m) => Some(verify_pinned(
                        verifier,
                        &issuers,
                        &m.credential,
                        &m.signature_key,
                    )?),
                    None => None,
                };
                match processed.into_content() {
                    ProcessedMessageContent::ApplicationMessage(app) => {
                        let cert = sender_cert.ok_or_else(|| {
                            ClientError::Protocol("application message from a non-member".into())
                        })?;
                        let bytes = app.into_bytes();
                        let content = MimiContent::decode(&bytes)
                            .map_err(|e| ClientError::Protocol(format!("MIMI content: {e}")))?;
                        // Call signals are handed to the app, not kept.
                        if let Some(call) = crate::calls::CallMessage::from_content(&content) {
                            return Ok(Some(Event::Call {
                                room,
                                from: cert.client().clone(),
                                message: call?,
                            }));
                        }
                        let mid = *content
                            .message_id(&cert.client().user().to_string(), &room.to_string())
                            .map_err(|e| ClientError::Protocol(format!("message id: {e}")))?
                            .as_bytes();
                        // Verify the hub's frank and keep it with the message. A
                        // message without a valid frank is kept and shown, but
                        // cannot be reported.
                        let (status, kept) = crate::franking::check(
                            &issuers,
                            &bytes,
                            &aad,
                            f.frank.as_ref(),
                            f.timestamp_ms,
                            cert.client().user(),
                            &room,
                        );
                        let inserted = conn
                            .execute(
                                "INSERT OR IGNORE INTO history (room, message_id, sender_client, sender_user, hub_timestamp, content, outgoing, frank, frank_status)
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8)",
                                params![room.to_string(), mid.to_vec(), cert.client().to_string(), cert.client().user().to_string(), f.timestamp_ms as i64, bytes, kept, status.to_db()],
                            )
                            .map_err(storage)?;
                        if inserted == 0 {
                            return Ok(None);
                        }
                        if let crate::franking::FrankStatus::Invalid(reason) = &status {
                            tracing::warn!(reason = %reason, "a message's frank does not verify");
                        }
                        Ok(Some(Event::Message(HistoryEntry {
                            room,
                            sender: cert.client().user().clone(),
                            sender_client: cert.client().clone(),
                            message_id: mid,
                            timestamp_ms: f.timestamp_ms,
                            text: content.display_text().map(|t| t.text.to_owned()),
                            content: bytes,
                            outgoing: false,
                            pending: false,
                        })))
                    }
                    ProcessedMessageContent::StagedCommitMessage(staged) => {
                        let adds: Vec<_> = staged
                            .add_proposals()
                            .map(|add| add.add_proposal().key_package().leaf_node().clone())
                            .collect();
                        verifier
                            .verify_all(
                                adds.iter()
                                    .map(|l| (l.credential(), l.signature_key().as_slice())),
                                &issuers,
                                now_secs(),
                            )
                            .map_err(untrusted)?;
                        // An update path may carry a new credential (and an
                        // external joiner's always does).
                        if let Some(leaf) = staged.update_path_leaf_node() {
                            verify_pinned(
                                verifier,
                                &issuers,
                                leaf.credential(),
                                leaf.signature_key().as_slice(),
                            )?;
                        }
                        // The room state must stay readable.
                        crate::manage::room_state_in(staged.group_context().extensions())?;
                        let removed = staged.self_removed();
                        group
                            .merge_staged_commit(&provider, *staged)
                            .map_err(|e| ClientError::Mls(format!("merging a commit: {e}")))?;
                        if removed {
                            conn.execute(
                                "DELETE FROM rooms WHERE room = ?1",
                                params![room.to_string()],
                            )
                            .map_err(storage)?;
                            return Ok(Some(Event::Removed { room }));
                        }
                        Ok(Some(Event::MembersChanged {
                            members: users_of(group)?,
                            room,
                        }))
                    }
                    ProcessedMessageContent::ProposalMessage(p) => {
                        group
                            .store_pending_proposal(provider.storage(), *p)
                            .map_err(|e| ClientError::Storage(e.to_string()))?;
                        Ok(Some(Event::ProposalPending { room }))
                    }
                    ProcessedMessageContent::ExternalJoinProposalMessage(_) => Ok(None),
                    // Our own message or commit echoed back (possible after a failover,
                    // MIMI-06 section 5.5): already applied when we sent it.
                    ProcessedMessageContent::OwnPendingCommit
                    | ProcessedMessageContent::OwnPrivateMessage => Ok(None),
                }
            }
        }
    }

    /// The safety number of our conversation with `peer`, from the keys of the
    /// devices in the rooms we share; `None` if we share no room.
    pub fn safety_number(&self, peer: &UserId) -> Result<Option<String>, ClientError> {
        let mut mine: Vec<Vec<u8>> = Vec::new();
        let mut theirs: Vec<Vec<u8>> = Vec::new();
        for r in self.rooms()? {
            if !r.members.contains(peer) {
                continue;
            }
            self.with_group(&r.room, |group| {
                for m in group.members() {
                    let c = entente_core::mls::certificate_in(&m.credential)
                        .map_err(|e| ClientError::Untrusted(e.to_string()))?;
                    let u = c.claimed_client().user();
                    if u == peer {
                        theirs.push(m.signature_key.clone());
                    } else if u == self.id.user() {
                        mine.push(m.signature_key.clone());
                    }
                }
                Ok(())
            })?;
        }
        if theirs.is_empty() {
            return Ok(None);
        }
        use entente_core::identity::{SafetyParty, safety_number};
        let a = SafetyParty {
            user: self.id.user(),
            client_keys: mine.iter().map(Vec::as_slice).collect(),
        };
        let b = SafetyParty {
            user: peer,
            client_keys: theirs.iter().map(Vec::as_slice).collect(),
        };
        Ok(Some(safety_number(&a, &b)))
    }

    /// Records that the user compared `number` with `peer` out of band. Fails if it
    /// is not the current safety number.
    pub fn verify_safety_number(&self, peer: &UserId, number: &str) -> Result<(), ClientError> {
        let current = self.safety_number(peer)?.ok_or_else(|| {
            ClientError::Usage(format!("you share no room with {}", peer.handle()))
        })?;
        let given: String = number.chars().filter(char::is_ascii_digit).collect();
        if given != current {
            return Err(ClientError::Untrusted(format!(
                "the safety number does not match; {}'s devices or yours differ from what they see. Do not trust this conversation until you find out why",
                peer.handle()
            )));
        }
        self.db()
            .execute(
                "INSERT INTO verified (user, safety_number, verified_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user) DO UPDATE SET safety_number = excluded.safety_number, verified_at = excluded.verified_at",
                params![peer.to_string(), current, now_secs() as i64],
            )
            .map_err(storage)?;
        Ok(())
    }

    /// Whether `peer`'s current safety number is the one the user verified.
    pub fn is_verified(&self, peer: &UserId) -> Result<bool, ClientError> {
        let stored: Option<String> = self
            .db()
            .query_row(
                "SELECT safety_number FROM verified WHERE user = ?1",
                params![peer.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        Ok(match (stored, self.safety_number(peer)?) {
            (Some(s), Some(c)) => s == c,
            _ => false,
        })
    }
}

pub(crate) fn kp_client(kp: &KeyPackage) -> Result<ClientId, ClientError> {
    entente_core::mls::certificate_in(kp.leaf_node().credential())
        .map(|c| c.claimed_client().clone())
        .map_err(|e| ClientError::Untrusted(e.to_string()))
}

/// Whether the provider's spam filter refused a submission for good.
pub(crate) fn is_spam_rejection(e: &ClientError) -> bool {
    matches!(e, ClientError::Provider { code, .. } if code == "spam_rejected")
}
