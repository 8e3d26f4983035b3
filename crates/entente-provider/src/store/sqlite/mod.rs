//! [`SqliteStore`]: the [`Store`] in one embedded SQLite file.
//!
//! - **Durability.** WAL with `synchronous = FULL`: a write method returns `Ok`
//!   only after its transaction's WAL frames are fsync'd.
//! - **Group commit.** One writer thread owns the only write connection. Writes
//!   queue up while it commits; it then runs everything queued in one transaction,
//!   each write in its own savepoint (a failing write rolls back alone), and pays
//!   one fsync for all of them. Throughput grows with concurrency instead of being
//!   capped at one fsync per write.
//! - **Reads** use a small pool of read-only connections and see the latest
//!   committed state without waiting for the writer.
//! - **Schema** versioned by `PRAGMA user_version` and migrated on open; a file
//!   from a newer build is refused rather than misread.
//!
//! Times are stored in the units the trait passes them. The batch's `accepted_at`
//! (ms) is also the creation time of its dedup key, echo marks and outbound
//! requests, which is what [`Store::expire`]'s `before_ms` is compared with.
//! KeyPackage routes expire [`KEY_PACKAGE_ROUTE_TTL_SECS`] after their claim.
//!
//! ```no_run
//! use entente_provider::store::{Store, sqlite::SqliteStore};
//!
//! let store = SqliteStore::open(std::path::Path::new("provider.db"))?;
//! assert!(!store.user_exists("mimi://example.com/u/alice")?);
//! # Ok::<(), entente_provider::store::StoreError>(())
//! ```

mod abuse;
mod accounts;
mod blobs;
mod consent;
mod convert;
mod key_packages;
mod moderation;
mod queues;
mod readers;
mod retention;
mod rooms;
mod schema;
mod signal;
mod writer;

use std::path::Path;

pub use queues::KEY_PACKAGE_ROUTE_TTL_SECS;

use self::readers::Readers;
use self::writer::Writer;
use super::{
    Batch, BatchOutcome, BlobAdmission, BlobRecord, ClaimedBundle, ClientProtocols, ClientRecord,
    GroupSnapshot, InboxRecord, KeyPackageRoute, NewReport, OutboundRecord, PublishOutcome,
    RecordedReport, ReportRecord, ReportStatus, Result, RoomRecord, SignalIdentity,
    SignalPreKeyStatus, SignalPreKeys, Store, StoreError, Uri,
};

/// Read connections kept open at most; more concurrent readers wait for one.
const MAX_READERS: usize = 8;

/// The SQLite implementation of [`Store`]. Dropping it finishes the queued writes
/// and closes the database.
pub struct SqliteStore {
    // Declared before the writer so the write connection closes last and
    // checkpoints the WAL into the database file.
    readers: Readers,
    writer: Writer,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and schema if needed and
    /// migrating an older schema. Fails if the file was written by a newer build.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = schema::open_writer(path)?;
        Ok(Self {
            readers: Readers::new(path.to_owned(), MAX_READERS),
            writer: Writer::spawn(conn)?,
        })
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl Store for SqliteStore {
    fn create_account(&self, client: &ClientRecord) -> Result<()> {
        let client = client.clone();
        self.writer
            .write(move |conn| accounts::create_account(conn, &client))
    }

    fn remove_client(&self, client: &Uri) -> Result<()> {
        let client = client.to_owned();
        self.writer
            .write(move |conn| accounts::remove_client(conn, &client))
    }

    fn add_client(&self, client: &ClientRecord, link_code_hash: &[u8; 32], now: u64) -> Result<()> {
        let (client, hash) = (client.clone(), *link_code_hash);
        self.writer
            .write(move |conn| accounts::add_client(conn, &client, &hash, now))
    }

    fn client(&self, client: &Uri) -> Result<Option<ClientRecord>> {
        self.readers.read(|conn| accounts::client(conn, client))
    }

    fn user_clients(&self, user: &Uri) -> Result<Vec<ClientRecord>> {
        self.readers.read(|conn| accounts::user_clients(conn, user))
    }

    fn user_exists(&self, user: &Uri) -> Result<bool> {
        self.readers.read(|conn| accounts::user_exists(conn, user))
    }

    fn put_link_code(&self, user: &Uri, code_hash: &[u8; 32], expires_at: u64) -> Result<()> {
        let (user, hash) = (user.to_owned(), *code_hash);
        self.writer
            .write(move |conn| accounts::put_link_code(conn, &user, &hash, expires_at))
    }

    fn add_key_packages(
        &self,
        client: &Uri,
        single_use: &[(Vec<u8>, Vec<u8>)],
        last_resort: Option<&(Vec<u8>, Vec<u8>)>,
    ) -> Result<()> {
        let (client, single_use, last_resort) =
            (client.to_owned(), single_use.to_vec(), last_resort.cloned());
        self.writer.write(move |conn| {
            key_packages::add_key_packages(conn, &client, &single_use, last_resort.as_ref())
        })
    }

    fn key_package_status(&self, client: &Uri) -> Result<(u64, bool)> {
        self.readers
            .read(|conn| key_packages::key_package_status(conn, client))
    }

    fn claim_key_package(&self, client: &Uri, now: u64) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let client = client.to_owned();
        self.writer
            .write(move |conn| key_packages::claim_key_package(conn, &client, now))
    }

    fn record_key_package_route(
        &self,
        reference: &[u8],
        route: &KeyPackageRoute,
        now: u64,
    ) -> Result<()> {
        let (reference, route) = (reference.to_vec(), route.clone());
        self.writer.write(move |conn| {
            key_packages::record_key_package_route(conn, &reference, &route, now)
        })
    }

    fn key_package_route(&self, reference: &[u8]) -> Result<Option<KeyPackageRoute>> {
        self.readers
            .read(|conn| key_packages::key_package_route(conn, reference))
    }

    fn create_room(
        &self,
        room: &RoomRecord,
        first_client: &Uri,
        group: &GroupSnapshot,
    ) -> Result<()> {
        let (room, first_client, group) = (room.clone(), first_client.to_owned(), group.clone());
        self.writer
            .write(move |conn| rooms::create_room(conn, &room, &first_client, &group))
    }

    fn group_state(&self, room: &Uri) -> Result<Option<GroupSnapshot>> {
        self.readers.read(|conn| rooms::group_state(conn, room))
    }

    fn room(&self, room: &Uri) -> Result<Option<RoomRecord>> {
        self.readers.read(|conn| rooms::room(conn, room))
    }

    fn room_clients(&self, room: &Uri) -> Result<Vec<String>> {
        self.readers.read(|conn| rooms::room_clients(conn, room))
    }

    fn room_domains(&self, room: &Uri) -> Result<Vec<String>> {
        self.readers.read(|conn| rooms::room_domains(conn, room))
    }

    fn user_rooms(&self, user: &Uri) -> Result<Vec<String>> {
        self.readers.read(|conn| rooms::user_rooms(conn, user))
    }

    fn dedup_seen(&self, scope: &str, key: &[u8; 32]) -> Result<Option<u64>> {
        self.readers
            .read(|conn| rooms::dedup_seen(conn, scope, key))
    }

    fn echo_mark(&self, room: &Uri, hash: &[u8; 32]) -> Result<Option<String>> {
        self.readers.read(|conn| rooms::echo_mark(conn, room, hash))
    }

    fn hub_shares_room_with(&self, hub: &str, domain: &str) -> Result<bool> {
        self.readers
            .read(|conn| rooms::hub_shares_room_with(conn, hub, domain))
    }

    fn has_room_hubbed_by(&self, hub: &str) -> Result<bool> {
        self.readers
            .read(|conn| rooms::has_room_hubbed_by(conn, hub))
    }

    fn create_blob(&self, blob: &BlobRecord, quota: u64) -> Result<BlobAdmission> {
        let blob = blob.clone();
        self.writer
            .write(move |conn| blobs::create_blob(conn, &blob, quota))
    }

    fn blob(&self, id: &str) -> Result<Option<BlobRecord>> {
        self.readers.read(|conn| blobs::blob(conn, id))
    }

    fn complete_blob(&self, id: &str, sha256: &[u8; 32]) -> Result<()> {
        let (id, sha256) = (id.to_owned(), *sha256);
        self.writer
            .write(move |conn| blobs::complete_blob(conn, &id, &sha256))
    }

    fn blob_usage(&self, owner: &Uri, now: u64) -> Result<u64> {
        self.readers
            .read(|conn| blobs::blob_usage(conn, owner, now))
    }

    fn blobs_to_collect(&self, now: u64, stale_before: u64, limit: u32) -> Result<Vec<String>> {
        self.readers
            .read(|conn| blobs::blobs_to_collect(conn, now, stale_before, limit))
    }

    fn delete_blob(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.writer.write(move |conn| blobs::delete_blob(conn, &id))
    }

    fn publish_signal_prekeys(
        &self,
        client: &Uri,
        upload: &SignalPreKeys,
        max_held: u32,
    ) -> Result<PublishOutcome> {
        let (client, upload) = (client.to_owned(), upload.clone());
        self.writer
            .write(move |conn| signal::publish_signal_prekeys(conn, &client, &upload, max_held))
    }

    fn signal_prekey_status(&self, client: &Uri) -> Result<SignalPreKeyStatus> {
        self.readers.read(|conn| signal::status(conn, client))
    }

    fn signal_identity(&self, client: &Uri) -> Result<Option<SignalIdentity>> {
        self.readers
            .read(|conn| signal::signal_identity(conn, client))
    }

    fn signal_devices(&self, user: &Uri) -> Result<Vec<(String, u32)>> {
        self.readers.read(|conn| signal::signal_devices(conn, user))
    }

    fn claim_signal_bundles(&self, user: &Uri) -> Result<Vec<ClaimedBundle>> {
        let user = user.to_owned();
        self.writer
            .write(move |conn| signal::claim_signal_bundles(conn, &user))
    }

    fn set_client_protocols(&self, client: &Uri, protocols: &[String]) -> Result<()> {
        let (client, protocols) = (client.to_owned(), protocols.to_vec());
        self.writer
            .write(move |conn| signal::set_client_protocols(conn, &client, &protocols))
    }

    fn user_capabilities(&self, user: &Uri) -> Result<Vec<ClientProtocols>> {
        self.readers
            .read(|conn| signal::user_capabilities(conn, user))
    }

    fn apply(&self, batch: Batch) -> Result<BatchOutcome> {
        self.writer.write(move |conn| rooms::apply(conn, &batch))
    }

    fn apply_all(&self, batches: Vec<Batch>) -> Result<Vec<BatchOutcome>> {
        // One writer operation: its savepoint makes the whole list all or nothing.
        self.writer
            .write(move |conn| batches.iter().map(|b| rooms::apply(conn, b)).collect())
    }

    fn outbound_done_all(&self, ids: &[u64]) -> Result<()> {
        let ids = ids.to_vec();
        self.writer.write(move |conn| {
            for id in ids {
                match queues::outbound_done(conn, id) {
                    Ok(()) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    fn inbox(&self, client: &Uri, after: u64, limit: u32) -> Result<Vec<InboxRecord>> {
        self.readers
            .read(|conn| queues::inbox(conn, client, after, limit))
    }

    fn ack(&self, client: &Uri, up_to: u64) -> Result<u64> {
        let client = client.to_owned();
        self.writer
            .write(move |conn| queues::ack(conn, &client, up_to))
    }

    fn due_outbound(&self, now: u64, per_domain: u32) -> Result<Vec<OutboundRecord>> {
        self.readers
            .read(|conn| queues::due_outbound(conn, now, per_domain))
    }

    fn outbound_done(&self, id: u64) -> Result<()> {
        self.writer
            .write(move |conn| queues::outbound_done(conn, id))
    }

    fn outbound_retry(&self, id: u64, next_attempt_at: u64, attempts: u32) -> Result<()> {
        self.writer
            .write(move |conn| queues::outbound_retry(conn, id, next_attempt_at, attempts))
    }

    fn next_outbound_at(&self) -> Result<Option<u64>> {
        self.readers.read(queues::next_outbound_at)
    }

    fn expire(&self, before_ms: u64, now_secs: u64) -> Result<u64> {
        self.writer
            .write(move |conn| queues::expire(conn, before_ms, now_secs))
    }

    fn expire_retained(
        &self,
        cutoffs: &super::RetentionCutoffs,
    ) -> Result<super::RetentionExpired> {
        let cutoffs = *cutoffs;
        self.writer
            .write(move |conn| retention::expire_retained(conn, &cutoffs))
    }

    fn consent_write(
        &self,
        writes: &[super::ConsentWrite],
        outbound: &[super::NewOutbound],
        now_ms: u64,
    ) -> Result<Vec<bool>> {
        let (writes, outbound) = (writes.to_vec(), outbound.to_vec());
        self.writer
            .write(move |conn| consent::write(conn, &writes, &outbound, now_ms))
    }

    fn consent_decision(
        &self,
        target: &Uri,
        requester: &Uri,
        room: Option<&str>,
    ) -> Result<super::ConsentDecision> {
        self.readers
            .read(|conn| consent::decision(conn, target, requester, room))
    }

    fn consent_incoming(&self, target: &Uri) -> Result<Vec<super::ConsentRecord>> {
        self.readers.read(|conn| consent::incoming(conn, target))
    }

    fn consent_outgoing(&self, requester: &Uri) -> Result<Vec<super::ConsentRecord>> {
        self.readers.read(|conn| consent::outgoing(conn, requester))
    }

    fn consent_blocks(&self, blocker: &Uri) -> Result<Vec<super::BlockRecord>> {
        self.readers.read(|conn| consent::blocks(conn, blocker))
    }

    fn expire_consent(&self, before_ms: u64) -> Result<u64> {
        self.writer
            .write(move |conn| consent::expire(conn, before_ms))
    }

    fn record_report(&self, report: &NewReport) -> Result<RecordedReport> {
        let report = report.clone();
        self.writer
            .write(move |conn| abuse::record_report(conn, &report))
    }

    fn reports(&self, status: Option<ReportStatus>, limit: u32) -> Result<Vec<ReportRecord>> {
        self.readers
            .read(|conn| abuse::reports(conn, status, limit))
    }

    fn report(&self, id: u64) -> Result<Option<ReportRecord>> {
        self.readers.read(|conn| abuse::report(conn, id))
    }

    fn resolve_report(
        &self,
        id: u64,
        status: ReportStatus,
        resolution: &str,
        now: u64,
    ) -> Result<()> {
        let resolution = resolution.to_owned();
        self.writer
            .write(move |conn| abuse::resolve_report(conn, id, status, &resolution, now))
    }

    fn moderate(&self, action: &super::ModerationAction) -> Result<()> {
        let action = action.clone();
        self.writer
            .write(move |conn| moderation::moderate(conn, &action))
    }

    fn sanctions(&self) -> Result<super::Sanctions> {
        self.readers.read(moderation::sanctions)
    }

    fn notices(&self, user: &Uri) -> Result<Vec<super::NoticeRecord>> {
        self.readers.read(|conn| moderation::notices(conn, user))
    }

    fn mark_notices_read(&self, user: &Uri, up_to: u64, now: u64) -> Result<u64> {
        let user = user.to_owned();
        self.writer
            .write(move |conn| moderation::mark_notices_read(conn, &user, up_to, now))
    }

    fn moderation_log(&self, limit: u32) -> Result<Vec<super::LogRecord>> {
        self.readers
            .read(|conn| moderation::moderation_log(conn, limit))
    }

    fn expire_moderation(&self, log_before: u64, read_before: u64) -> Result<u64> {
        self.writer
            .write(move |conn| moderation::expire(conn, log_before, read_before))
    }
}
