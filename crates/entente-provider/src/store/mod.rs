//! The provider's storage boundary.
//!
//! Protocol code talks to storage only through [`Store`]: a narrow set of operations
//! named for what the provider does (register a client, claim a KeyPackage, commit a
//! delivery batch, ack an inbox), never SQL. [`sqlite::SqliteStore`] implements it
//! with embedded SQLite (WAL, group commit); a PostgreSQL backend would implement
//! the same trait (not written yet).
//!
//! The trait is synchronous: async callers run it on the blocking pool
//! (`tokio::task::spawn_blocking`). Every method is one atomic transaction.
//! Durability contract: when a write method returns `Ok`, its effect is on stable
//! storage (fsync'd), so the provider may acknowledge it to a client or peer.

pub mod moderation;
pub mod sqlite;

pub use moderation::{ActionKind, LogRecord, ModerationAction, NoticeRecord, Sanction, Sanctions};

/// Identifiers are passed as their canonical MIMI URI strings; the store does not
/// interpret them.
pub type Uri = str;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row to create exists already (e.g. user name taken, device registered).
    #[error("{0} already exists")]
    Conflict(String),
    /// A row the operation needs does not exist (e.g. unknown or expired link code).
    #[error("{0} not found")]
    NotFound(String),
    /// The database failed: disk full, I/O error, corruption. Not the caller's fault.
    #[error("storage failed: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A registered client (device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client: String,
    pub user: String,
    /// Ed25519 signature public key.
    pub signature_key: Vec<u8>,
    /// The certificate the provider issued for it.
    pub certificate: Vec<u8>,
    pub created_at: u64,
}

/// A room as this provider knows it: as hub (hub == our domain) or follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    pub room: String,
    pub hub: String,
    /// The hub's current MLS epoch (on a follower: the last epoch it saw committed).
    pub epoch: u64,
    pub created_at: u64,
}

/// The public state of a room's MLS group as a provider tracks it: what it needs to
/// validate the next commit (see `crate::tracker`) and, on the hub, the GroupInfo it
/// hands to external joiners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub room: String,
    pub epoch: u64,
    /// `crate::tracker::Tracked::snapshot` bytes.
    pub snapshot: Vec<u8>,
    /// The latest GroupInfo (an MLSMessage), empty if this provider has none.
    pub group_info: Vec<u8>,
}

/// Where a Welcome for a claimed KeyPackage must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPackageRoute {
    /// A client of this provider.
    Local { client: String },
    /// Another provider (recorded by a hub that claimed it there).
    Remote { domain: String },
}

/// One pending outbound federation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecord {
    pub id: u64,
    pub domain: String,
    /// Endpoint name from the MIMI directory (`notify`, ...).
    pub endpoint: String,
    /// The room the request concerns (path parameter).
    pub room: String,
    pub body: Vec<u8>,
    pub attempts: u32,
    pub next_attempt_at: u64,
}

/// Which side of an abuse report this provider is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportRole {
    /// We are the room's hub and verified the report's franks.
    Hub,
    /// We are the accused user's provider; the hub told us.
    Accused,
}

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportStatus {
    Open,
    Dismissed,
    Actioned,
}

/// One reported message, as stored: the content the reporter disclosed (MIMI
/// content bytes) and when the hub accepted it (ms).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReportedMessage {
    #[serde(with = "entente_wire::api::b64")]
    pub content: Vec<u8>,
    pub accepted_at: u64,
}

/// A report to store ([`Store::record_report`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReport {
    pub received_at: u64,
    pub role: ReportRole,
    pub room: String,
    pub hub: String,
    /// `None` when the reporter is not disclosed to us.
    pub reporter: Option<String>,
    pub reporter_domain: String,
    pub alleged_abuser: String,
    pub reason: u8,
    pub note: String,
    pub messages: Vec<ReportedMessage>,
    /// Identifies the report for deduplication (a replayed report has the same
    /// digest): the caller's choice, e.g. SHA-256 of the reporter and the franks.
    pub digest: [u8; 32],
}

/// A stored report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRecord {
    pub id: u64,
    pub report: NewReport,
    pub status: ReportStatus,
    pub resolution: Option<String>,
    pub resolved_at: Option<u64>,
}

/// The outcome of [`Store::record_report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedReport {
    New(u64),
    /// The same report (same role and digest) was stored before, under this id.
    Duplicate(u64),
}

/// A blob in the blob store: its metadata. The bytes are in a
/// [`crate::blobs::BlobStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    /// [`entente_wire::blobs::BlobId`] as text.
    pub id: String,
    /// The uploading user: the quota is per user.
    pub owner: String,
    /// Exact size in bytes.
    pub size: u64,
    /// SHA-256 of the upload token.
    pub token_hash: [u8; 32],
    pub created_at: u64,
    pub expires_at: u64,
    /// Set once every byte is stored durably: SHA-256 of the blob.
    pub sha256: Option<[u8; 32]>,
}

/// Whether a new blob fits the owner's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobAdmission {
    Admitted,
    /// Not created: the owner already uses `used` bytes.
    OverQuota {
        used: u64,
    },
}

/// A client's Signal identity, as it published it with its prekeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalIdentity {
    /// `0x05 || u`.
    pub identity_key: Vec<u8>,
    pub registration_id: u32,
    /// Unique among the user's clients.
    pub device_id: u32,
}

/// A prekey with its XEdDSA signature by the identity key: the signed prekey, or
/// an ML-KEM prekey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPreKeyRecord {
    pub id: u32,
    pub public: Vec<u8>,
    pub signature: Vec<u8>,
}

/// A one-time X25519 prekey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimePreKeyRecord {
    pub id: u32,
    pub public: Vec<u8>,
}

/// One checked prekey upload (`entente_wire::signal::PreKeyUpload` after its
/// lengths and signatures were verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalPreKeys {
    pub identity: SignalIdentity,
    /// Replaces the current signed prekey.
    pub signed_prekey: Option<SignedPreKeyRecord>,
    /// Replaces the current last-resort ML-KEM prekey.
    pub last_resort_kyber: Option<SignedPreKeyRecord>,
    /// Added to those held.
    pub one_time: Vec<OneTimePreKeyRecord>,
    /// One-time ML-KEM prekeys, added to those held.
    pub kyber: Vec<SignedPreKeyRecord>,
}

/// What the provider holds for one client's Signal channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalPreKeyStatus {
    pub one_time: u32,
    pub kyber: u32,
    pub signed_prekey: bool,
    pub last_resort_kyber: bool,
}

/// The outcome of [`Store::publish_signal_prekeys`]. Only `Published` changed
/// anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    Published(SignalPreKeyStatus),
    /// The identity key, registration id or device id changed (or there was none)
    /// and the upload carries no signed prekey to start the new identity with.
    NeedsSignedPreKey,
    /// Another client of the same user has this device id.
    DeviceIdTaken {
        device_id: u32,
    },
    /// A prekey id the client already holds, with a different key.
    IdReused {
        kind: PreKeyKind,
        id: u32,
    },
    /// The client would hold more one-time prekeys of `kind` than `max_held`.
    TooMany {
        kind: PreKeyKind,
        would_hold: u64,
    },
}

/// The two kinds of one-time prekeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreKeyKind {
    /// X25519 one-time prekeys.
    OneTime,
    /// ML-KEM one-time prekeys.
    Kyber,
}

/// One device's bundle as claimed by [`Store::claim_signal_bundles`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedBundle {
    pub client: String,
    pub identity: SignalIdentity,
    pub signed_prekey: SignedPreKeyRecord,
    /// A one-time ML-KEM prekey (deleted), else the last-resort one (kept).
    pub kyber: Option<ClaimedKyber>,
    /// A one-time prekey (deleted), if any was left.
    pub one_time: Option<OneTimePreKeyRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedKyber {
    pub prekey: SignedPreKeyRecord,
    pub last_resort: bool,
}

/// The protocols one client speaks, as capabilities report them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientProtocols {
    pub client: String,
    pub protocols: Vec<String>,
}

/// What [`Store::expire_retained`] deletes: rows older than these cut-offs (ms
/// since the UNIX epoch). `crate::retention` computes them from `[retention]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionCutoffs {
    /// Inbox items (MLS and sealed) never acked, by when they entered the inbox.
    pub undelivered_before_ms: u64,
    /// Outbound federation requests still unsent, by when they were queued.
    pub outbound_before_ms: u64,
    /// Abuse reports (any status), by when they were received.
    pub reports_before_ms: u64,
}

/// What [`Store::expire_retained`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionExpired {
    /// Inbox rows (one per recipient client); their payloads go with the last.
    pub inbox_items: u64,
    /// Unsent outbound requests, per peer domain.
    pub outbound: Vec<(String, u64)>,
    pub reports: u64,
}

impl RetentionExpired {
    pub fn outbound_total(&self) -> u64 {
        self.outbound.iter().map(|(_, n)| n).sum()
    }

    pub fn total(&self) -> u64 {
        self.inbox_items + self.outbound_total() + self.reports
    }
}

/// One inbox item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRecord {
    pub seq: u64,
    pub room: String,
    pub payload: Vec<u8>,
}

/// A set of writes applied atomically, or not at all. This is how every accepted
/// message enters the system: the checks (`dedup`, `epoch`) and the effects (inbox
/// items, outbound requests, membership) commit together, so a crash never leaves a
/// message accepted but not queued, or queued twice.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// If this key was seen before in this scope, nothing is applied and the outcome
    /// is [`BatchOutcome::Duplicate`] carrying the first outcome's `accepted_at`.
    pub dedup: Option<Dedup>,
    /// Applied only if the room's epoch equals `expected`; then set to `advance_to`.
    pub epoch: Option<EpochCheck>,
    /// Create the room if unknown (e.g. a follower learning of it from a Welcome).
    pub ensure_room: Option<RoomRecord>,
    /// Local clients that joined / left rooms: `(room, client)`.
    pub room_clients_add: Vec<(String, String)>,
    pub room_clients_remove: Vec<(String, String)>,
    /// Remote providers with participants in a room (hub side): `(room, domain)`.
    pub room_domains_add: Vec<(String, String)>,
    pub room_domains_remove: Vec<(String, String)>,
    /// The room's public MLS group state after this batch (hub and follower).
    pub group_state: Option<GroupSnapshot>,
    /// Inbox items: one payload delivered to several clients of one room.
    pub deliveries: Vec<Delivery>,
    pub outbound: Vec<NewOutbound>,
    /// Record which of our clients submitted a message (by hash), so that its echo
    /// from the hub is not delivered back to it: `(room, message hash, client)`.
    pub echo_marks: Vec<(String, [u8; 32], String)>,
    /// KeyPackage routes that have served their purpose (Welcome forwarded).
    pub forget_key_package_routes: Vec<Vec<u8>>,
    /// Hub acceptance time recorded with the dedup key (ms since the UNIX epoch).
    pub accepted_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedup {
    /// e.g. `submit:<room>` or `notify:<from-domain>`.
    pub scope: String,
    pub key: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochCheck {
    pub room: String,
    pub expected: u64,
    pub advance_to: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub room: String,
    pub clients: Vec<String>,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutbound {
    pub domain: String,
    pub endpoint: String,
    pub room: String,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Applied; lists the clients that got new inbox items (to wake them).
    Applied { woken: Vec<String> },
    /// Seen before; nothing applied. `accepted_at` is the first acceptance's.
    Duplicate { accepted_at: u64 },
    /// The epoch check failed; nothing applied.
    WrongEpoch { current: u64 },
}

/// A consent scope as stored: user URIs; `room` `None` for any room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentKey {
    /// The user whose key material is at stake.
    pub target: String,
    /// The user who wants to add the target.
    pub requester: String,
    pub room: Option<String>,
}

/// May `requester` have `target`'s key material ([`Store::consent_decision`])?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentDecision {
    /// A grant covers the scope.
    Granted,
    /// No grant for the requester at all.
    NoConsent,
    /// Grants for the requester, but for other rooms only.
    NoConsentForRoom,
    /// The target blocked the requester.
    Blocked,
}

/// One consent change; [`Store::consent_write`] applies a list atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentWrite {
    /// A request to a local target. Stored unless the target blocked the requester
    /// (then dropped: see [`Store::consent_write`]'s result).
    Request {
        key: ConsentKey,
        at: u64,
    },
    /// Withdraws a pending request with exactly this scope.
    Cancel {
        key: ConsentKey,
    },
    /// A local target grants; pending requests of the requester (for that room, or
    /// all if `room` is `None`) are answered.
    Grant {
        key: ConsentKey,
        at: u64,
    },
    /// A local target declines: its pending requests from and grants to the
    /// requester are deleted.
    Decline {
        target: String,
        requester: String,
    },
    /// A local requester asked (pending), unless already granted.
    Outgoing {
        key: ConsentKey,
        at: u64,
    },
    /// A local requester learnt that the target granted.
    OutgoingGranted {
        key: ConsentKey,
        at: u64,
    },
    /// A local requester learnt that the target revoked: the record is deleted.
    OutgoingRevoked {
        key: ConsentKey,
    },
    /// A local user blocks another: the blocked user's pending requests and grants
    /// to them are deleted, and the blocker's own requests to them.
    Block {
        blocker: String,
        blocked: String,
        at: u64,
    },
    Unblock {
        blocker: String,
        blocked: String,
    },
}

/// A stored pending request, or outgoing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub key: ConsentKey,
    /// Outgoing only: the target granted.
    pub granted: bool,
    pub at: u64,
}

/// A stored block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    pub blocker: String,
    pub blocked: String,
    pub at: u64,
}

/// The storage operations of a provider.
pub trait Store: Send + Sync + 'static {
    // --- accounts and clients ---

    /// Creates `user` with its first client. `Conflict` if the user exists.
    fn create_account(&self, client: &ClientRecord) -> Result<()>;
    /// Adds a client to an existing user, consuming a link code (by its hash) that
    /// was issued for that user and has not expired at `now`. `NotFound` if the code
    /// is unknown, expired or for another user; `Conflict` if the client exists.
    fn add_client(&self, client: &ClientRecord, link_code_hash: &[u8; 32], now: u64) -> Result<()>;
    fn client(&self, client: &Uri) -> Result<Option<ClientRecord>>;
    /// Revokes a client: deletes it with its KeyPackages, Signal prekeys and
    /// identity, declared protocols, inbox and room memberships. `NotFound` if
    /// unknown.
    fn remove_client(&self, client: &Uri) -> Result<()>;
    fn user_clients(&self, user: &Uri) -> Result<Vec<ClientRecord>>;
    fn user_exists(&self, user: &Uri) -> Result<bool>;
    /// Stores a single-use link code for `user`, valid until `expires_at`.
    fn put_link_code(&self, user: &Uri, code_hash: &[u8; 32], expires_at: u64) -> Result<()>;

    // --- key packages ---

    /// Adds single-use KeyPackages `(reference, bytes)`, and replaces the client's
    /// last-resort KeyPackage if one is given.
    fn add_key_packages(
        &self,
        client: &Uri,
        single_use: &[(Vec<u8>, Vec<u8>)],
        last_resort: Option<&(Vec<u8>, Vec<u8>)>,
    ) -> Result<()>;
    /// `(single-use count, has last resort)`.
    fn key_package_status(&self, client: &Uri) -> Result<(u64, bool)>;
    /// Claims one KeyPackage of `client`: a single-use one (deleted, never served
    /// again) or, when they are exhausted, the last-resort one (kept). Records the
    /// route `reference -> Local(client)` for the Welcome. `None` if it has none.
    fn claim_key_package(&self, client: &Uri, now: u64) -> Result<Option<(Vec<u8>, Vec<u8>)>>;
    /// Records that a KeyPackage claimed at another provider routes there.
    fn record_key_package_route(
        &self,
        reference: &[u8],
        route: &KeyPackageRoute,
        now: u64,
    ) -> Result<()>;
    fn key_package_route(&self, reference: &[u8]) -> Result<Option<KeyPackageRoute>>;

    // --- rooms ---

    /// Creates a room with its first client and its initial group state. `Conflict`
    /// if it exists.
    fn create_room(
        &self,
        room: &RoomRecord,
        first_client: &Uri,
        group: &GroupSnapshot,
    ) -> Result<()>;
    /// The tracked group state of a room, if any.
    fn group_state(&self, room: &Uri) -> Result<Option<GroupSnapshot>>;
    fn room(&self, room: &Uri) -> Result<Option<RoomRecord>>;
    fn room_clients(&self, room: &Uri) -> Result<Vec<String>>;
    fn room_domains(&self, room: &Uri) -> Result<Vec<String>>;
    /// The rooms in which any client of `user` is a member (as this provider
    /// tracks them), for a user's new device to join.
    fn user_rooms(&self, user: &Uri) -> Result<Vec<String>>;
    /// When a dedup key was first recorded, if it was.
    fn dedup_seen(&self, scope: &str, key: &[u8; 32]) -> Result<Option<u64>>;
    /// The client that submitted the message with this hash, if one of ours did.
    fn echo_mark(&self, room: &Uri, hash: &[u8; 32]) -> Result<Option<String>>;

    /// Whether a room hubbed by `hub` has a participant at `domain`.
    fn hub_shares_room_with(&self, hub: &str, domain: &str) -> Result<bool>;
    /// Whether we take part in any room hubbed by `hub`.
    fn has_room_hubbed_by(&self, hub: &str) -> Result<bool>;

    // --- blobs ---

    /// Records a new blob if the owner's blobs (unexpired, complete or not) plus
    /// this one fit in `quota` bytes.
    fn create_blob(&self, blob: &BlobRecord, quota: u64) -> Result<BlobAdmission>;
    fn blob(&self, id: &str) -> Result<Option<BlobRecord>>;
    /// Marks an upload complete. `NotFound` if the blob is gone.
    fn complete_blob(&self, id: &str, sha256: &[u8; 32]) -> Result<()>;
    /// Bytes of the owner's blobs that count against the quota at `now`.
    fn blob_usage(&self, owner: &Uri, now: u64) -> Result<u64>;
    /// Blobs to delete: expired at `now`, or unfinished and created before
    /// `stale_before`. At most `limit`.
    fn blobs_to_collect(&self, now: u64, stale_before: u64, limit: u32) -> Result<Vec<String>>;
    /// Forgets a blob (its bytes must be deleted first). Returns whether it existed.
    fn delete_blob(&self, id: &str) -> Result<bool>;

    // --- Signal channel: key directory and capabilities ---

    /// Publishes a client's Signal identity and prekeys (see [`SignalPreKeys`]). A
    /// changed identity (key, registration id or device id) first deletes every
    /// prekey of the old one. Re-sending a prekey the client holds is harmless.
    /// `NotFound` if the client is unknown.
    fn publish_signal_prekeys(
        &self,
        client: &Uri,
        upload: &SignalPreKeys,
        max_held: u32,
    ) -> Result<PublishOutcome>;
    /// Counts what the client holds (all zero if it never published).
    fn signal_prekey_status(&self, client: &Uri) -> Result<SignalPreKeyStatus>;
    fn signal_identity(&self, client: &Uri) -> Result<Option<SignalIdentity>>;
    /// The user's clients that can be reached over the Signal channel (they have
    /// a signed prekey and did not declare protocols without `signal`), with their
    /// device ids, in registration order.
    fn signal_devices(&self, user: &Uri) -> Result<Vec<(String, u32)>>;
    /// Claims a bundle for each of the user's Signal devices (as
    /// [`signal_devices`](Self::signal_devices) lists them), in one transaction:
    /// each takes (deletes) the device's oldest one-time prekey and oldest one-time
    /// ML-KEM prekey, falling back to the last-resort ML-KEM prekey. Concurrent
    /// claims never receive the same one-time prekey.
    fn claim_signal_bundles(&self, user: &Uri) -> Result<Vec<ClaimedBundle>>;
    /// Records the protocols a client says it speaks (replacing earlier ones).
    /// `NotFound` if the client is unknown.
    fn set_client_protocols(&self, client: &Uri, protocols: &[String]) -> Result<()>;
    /// Every client of the user with its protocols: those it declared, or by
    /// default `mls10` if it has KeyPackages or rooms; `signal` exactly when it has
    /// a signed prekey (and did not declare a list without it).
    fn user_capabilities(&self, user: &Uri) -> Result<Vec<ClientProtocols>>;

    // ---- abuse reports

    /// Stores a report unless one with the same role and digest exists.
    fn record_report(&self, report: &NewReport) -> Result<RecordedReport>;
    /// Reports, newest first; only those with `status` if given.
    fn reports(&self, status: Option<ReportStatus>, limit: u32) -> Result<Vec<ReportRecord>>;
    fn report(&self, id: u64) -> Result<Option<ReportRecord>>;
    /// Closes a report. `NotFound` if there is no such report.
    fn resolve_report(
        &self,
        id: u64,
        status: ReportStatus,
        resolution: &str,
        now: u64,
    ) -> Result<()>;

    // --- moderation (crate::moderation) ---

    /// Applies a moderation action and logs it, in one transaction; closes its
    /// report if it names one. `NotFound` when undoing what is not in force
    /// (unsuspend, unban) or when the report does not exist.
    fn moderate(&self, action: &ModerationAction) -> Result<()>;
    /// Every suspension and ban in force.
    fn sanctions(&self) -> Result<Sanctions>;
    /// A local user's notices, oldest first.
    fn notices(&self, user: &Uri) -> Result<Vec<NoticeRecord>>;
    /// Marks the user's notices with `id <= up_to` read; returns how many changed.
    fn mark_notices_read(&self, user: &Uri, up_to: u64, now: u64) -> Result<u64>;
    /// The moderation log, newest first.
    fn moderation_log(&self, limit: u32) -> Result<Vec<LogRecord>>;
    /// Deletes log entries older than `log_before` and notices read before
    /// `read_before` (seconds). Returns rows deleted.
    fn expire_moderation(&self, log_before: u64, read_before: u64) -> Result<u64>;

    // --- consent and blocks (crate::consent) ---

    /// Applies `writes` and queues `outbound` (created at `now_ms`) in one
    /// transaction. Returns, per write, whether it changed anything (a `Request`
    /// from a blocked requester returns `false` and stores nothing).
    fn consent_write(
        &self,
        writes: &[ConsentWrite],
        outbound: &[NewOutbound],
        now_ms: u64,
    ) -> Result<Vec<bool>>;
    /// Whether `requester` may have `target`'s key material for `room` (`None`:
    /// outside a room, which only a grant for any room covers).
    fn consent_decision(
        &self,
        target: &Uri,
        requester: &Uri,
        room: Option<&str>,
    ) -> Result<ConsentDecision>;
    /// Pending requests to `target`, oldest first.
    fn consent_incoming(&self, target: &Uri) -> Result<Vec<ConsentRecord>>;
    /// Requests `requester` sent (and grants it received), newest first.
    fn consent_outgoing(&self, requester: &Uri) -> Result<Vec<ConsentRecord>>;
    /// Users `blocker` blocked, newest first.
    fn consent_blocks(&self, blocker: &Uri) -> Result<Vec<BlockRecord>>;
    /// Deletes pending incoming and outgoing requests last changed before
    /// `before_ms`. Returns rows deleted.
    fn expire_consent(&self, before_ms: u64) -> Result<u64>;

    // --- the commit point ---

    fn apply(&self, batch: Batch) -> Result<BatchOutcome>;

    /// Applies several batches in order, in one transaction: each batch's checks
    /// see the effects of the ones before it. All or nothing: an error in any
    /// batch applies none of them. (Outcomes like `Duplicate` are not errors.)
    fn apply_all(&self, batches: Vec<Batch>) -> Result<Vec<BatchOutcome>> {
        batches.into_iter().map(|b| self.apply(b)).collect()
    }

    // --- inboxes ---

    /// Items with `seq > after`, oldest first, at most `limit`.
    fn inbox(&self, client: &Uri, after: u64, limit: u32) -> Result<Vec<InboxRecord>>;
    /// Deletes the client's items with `seq <= up_to`; returns how many.
    fn ack(&self, client: &Uri, up_to: u64) -> Result<u64>;

    // --- outbound federation queue ---

    /// For every domain whose *oldest* pending request is due at `now` (seconds),
    /// that domain's oldest pending requests in insertion order, at most
    /// `per_domain` of them. A peer receives its requests in order: a later request
    /// is never sent before an earlier one succeeded.
    fn due_outbound(&self, now: u64, per_domain: u32) -> Result<Vec<OutboundRecord>>;
    fn outbound_done(&self, id: u64) -> Result<()>;
    /// Marks several requests done in one transaction; unknown ids are ignored.
    fn outbound_done_all(&self, ids: &[u64]) -> Result<()> {
        for id in ids {
            match self.outbound_done(*id) {
                Ok(()) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    fn outbound_retry(&self, id: u64, next_attempt_at: u64, attempts: u32) -> Result<()>;
    /// Earliest `next_attempt_at` of any pending request.
    fn next_outbound_at(&self) -> Result<Option<u64>>;

    // --- maintenance ---

    /// Deletes dedup keys and echo marks older than `before` (ms), expired link codes
    /// and KeyPackage routes. Returns rows deleted.
    fn expire(&self, before_ms: u64, now_secs: u64) -> Result<u64>;

    // --- retention (issue 6: metadata minimisation, docs/PRIVACY.md) ---

    /// Deletes, in one transaction, what the retention policy says is kept too
    /// long: undelivered inbox items, outbound requests that never got through,
    /// old abuse reports (see [`RetentionCutoffs`]).
    fn expire_retained(&self, cutoffs: &RetentionCutoffs) -> Result<RetentionExpired>;
}
