//! The schema, its migrations, and how every connection is configured.
//!
//! The schema version is `PRAGMA user_version`: the number of entries of
//! [`MIGRATIONS`] applied. Migrations are append-only; never edit one that has
//! shipped, add the next.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::convert::Context;
use crate::store::{Result, StoreError};

/// Marks the file as an Entente provider store (`PRAGMA application_id`, "Ente").
const APPLICATION_ID: i32 = 0x456e_7465;

/// How long a statement waits for a lock held by another connection (another
/// process, or a checkpoint) before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection; more than the store has.
const STATEMENT_CACHE: usize = 64;

/// The schema, one migration per version.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// Every time is an integer in the unit the trait gives it: link code expiry,
/// outbound retry times and KeyPackage route times in seconds; dedup, echo mark and
/// outbound creation times in milliseconds (the batch's `accepted_at`).
const V1: &str = "
CREATE TABLE users (
    user       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- A rowid table: certificates make rows too large for WITHOUT ROWID to pay off,
-- and the rowid gives a user's clients in registration order.
CREATE TABLE clients (
    client        TEXT NOT NULL UNIQUE,
    user          TEXT NOT NULL REFERENCES users (user),
    signature_key BLOB NOT NULL,
    certificate   BLOB NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX clients_by_user ON clients (user);

CREATE TABLE link_codes (
    hash       BLOB PRIMARY KEY,
    user       TEXT NOT NULL REFERENCES users (user),
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX link_codes_by_expiry ON link_codes (expires_at);

-- `id` orders a client's single-use KeyPackages oldest first.
CREATE TABLE key_packages (
    id          INTEGER PRIMARY KEY,
    client      TEXT NOT NULL REFERENCES clients (client),
    reference   BLOB NOT NULL UNIQUE,
    bytes       BLOB NOT NULL,
    last_resort INTEGER NOT NULL CHECK (last_resort IN (0, 1))
);
CREATE INDEX key_packages_by_client ON key_packages (client, last_resort, id);
CREATE UNIQUE INDEX key_packages_one_last_resort ON key_packages (client)
    WHERE last_resort = 1;

CREATE TABLE key_package_routes (
    reference  BLOB PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('local', 'remote')),
    client     TEXT,
    domain     TEXT,
    created_at INTEGER NOT NULL,
    CHECK ((kind = 'local' AND client IS NOT NULL AND domain IS NULL)
        OR (kind = 'remote' AND domain IS NOT NULL AND client IS NULL))
) WITHOUT ROWID;
CREATE INDEX key_package_routes_by_age ON key_package_routes (created_at);

CREATE TABLE rooms (
    room       TEXT PRIMARY KEY,
    hub        TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE room_clients (
    room   TEXT NOT NULL REFERENCES rooms (room),
    client TEXT NOT NULL REFERENCES clients (client),
    PRIMARY KEY (room, client)
) WITHOUT ROWID;

CREATE TABLE room_domains (
    room   TEXT NOT NULL REFERENCES rooms (room),
    domain TEXT NOT NULL,
    PRIMARY KEY (room, domain)
) WITHOUT ROWID;

-- A payload is stored once however many clients it is delivered to. `refcount`
-- is the number of inbox rows pointing at it; the trigger below deletes the
-- payload with its last inbox row.
CREATE TABLE messages (
    id       INTEGER PRIMARY KEY,
    room     TEXT NOT NULL REFERENCES rooms (room),
    payload  BLOB NOT NULL,
    refcount INTEGER NOT NULL CHECK (refcount >= 0)
);

-- AUTOINCREMENT: a sequence number is never reused, even after a client acked
-- everything, so a client's `after` cursor never skips a new item.
CREATE TABLE inbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    client     TEXT NOT NULL REFERENCES clients (client),
    message_id INTEGER NOT NULL
);
CREATE INDEX inbox_by_client ON inbox (client, seq, message_id);

CREATE TRIGGER inbox_release AFTER DELETE ON inbox BEGIN
    UPDATE messages SET refcount = refcount - 1 WHERE id = OLD.message_id;
    DELETE FROM messages WHERE id = OLD.message_id AND refcount = 0;
END;

-- AUTOINCREMENT: ids name requests in `outbound_done` / `outbound_retry` and
-- order a domain's requests; neither may be reused.
CREATE TABLE outbound (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    domain          TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    room            TEXT NOT NULL,
    body            BLOB NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX outbound_by_domain ON outbound (domain, id);
CREATE INDEX outbound_by_due ON outbound (next_attempt_at);

CREATE TABLE dedup (
    scope       TEXT NOT NULL,
    key         BLOB NOT NULL,
    accepted_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX dedup_by_age ON dedup (accepted_at);

CREATE TABLE echo_marks (
    room       TEXT NOT NULL,
    hash       BLOB NOT NULL,
    client     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (room, hash)
) WITHOUT ROWID;
CREATE INDEX echo_marks_by_age ON echo_marks (created_at);
";

/// Opens (creating if needed) the database for the writer, configures it for
/// durability and brings the schema up to date.
/// Version 2: the public MLS group state each provider tracks per room (issue 3).
const V2: &str = "
CREATE TABLE room_groups (
    room       TEXT PRIMARY KEY REFERENCES rooms (room),
    epoch      INTEGER NOT NULL,
    snapshot   BLOB NOT NULL,
    group_info BLOB NOT NULL
) WITHOUT ROWID;
";

/// Version 3: metadata of the encrypted blobs (file attachments) in the blob store.
/// `owner` is the uploading user, needed for the quota; rows go when the blob
/// expires.
const V3: &str = "
CREATE TABLE blobs (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    size       INTEGER NOT NULL,
    token_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    sha256     BLOB
) WITHOUT ROWID;
CREATE INDEX blobs_by_owner ON blobs (owner, expires_at);
CREATE INDEX blobs_by_expiry ON blobs (expires_at);
";

/// Version 4: the Signal channel's key directory (issue 5). Every row hangs off its
/// client with `ON DELETE CASCADE`, so revoking a client deletes its Signal
/// identity, prekeys and declared protocols with it. `seq` orders one-time prekeys
/// oldest first. The `rooms` row named `entente:sealed`
/// (`entente_wire::signal::SEALED_INBOX`) is what sealed-sender inbox items point
/// at: it is no MLS room, has no hub and no members.
const V4: &str = "
CREATE TABLE signal_identities (
    client          TEXT PRIMARY KEY REFERENCES clients (client) ON DELETE CASCADE,
    user            TEXT NOT NULL,
    device_id       INTEGER NOT NULL,
    registration_id INTEGER NOT NULL,
    identity_key    BLOB NOT NULL,
    UNIQUE (user, device_id)
) WITHOUT ROWID;

CREATE TABLE signal_signed_prekeys (
    client    TEXT PRIMARY KEY REFERENCES signal_identities (client) ON DELETE CASCADE,
    id        INTEGER NOT NULL,
    public    BLOB NOT NULL,
    signature BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE signal_last_resort_kyber_prekeys (
    client    TEXT PRIMARY KEY REFERENCES signal_identities (client) ON DELETE CASCADE,
    id        INTEGER NOT NULL,
    public    BLOB NOT NULL,
    signature BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE signal_one_time_prekeys (
    seq    INTEGER PRIMARY KEY,
    client TEXT NOT NULL REFERENCES signal_identities (client) ON DELETE CASCADE,
    id     INTEGER NOT NULL,
    public BLOB NOT NULL,
    UNIQUE (client, id)
);
CREATE INDEX signal_one_time_prekeys_by_client ON signal_one_time_prekeys (client, seq);

CREATE TABLE signal_kyber_prekeys (
    seq       INTEGER PRIMARY KEY,
    client    TEXT NOT NULL REFERENCES signal_identities (client) ON DELETE CASCADE,
    id        INTEGER NOT NULL,
    public    BLOB NOT NULL,
    signature BLOB NOT NULL,
    UNIQUE (client, id)
);
CREATE INDEX signal_kyber_prekeys_by_client ON signal_kyber_prekeys (client, seq);

-- Space-separated protocol names the client declared; `signal` whether they
-- include `signal` (a client that declared a list without it gets no bundles).
CREATE TABLE client_protocols (
    client    TEXT PRIMARY KEY REFERENCES clients (client) ON DELETE CASCADE,
    protocols TEXT NOT NULL,
    signal    INTEGER NOT NULL CHECK (signal IN (0, 1))
) WITHOUT ROWID;

INSERT INTO rooms (room, hub, epoch, created_at) VALUES ('entente:sealed', '', 0, 0);
";

/// Version 5: abuse prevention and metadata minimisation (issue 6). Sections in
/// order: abuse reports (franking), moderation, consent and blocks, retention.
const V5: &str = "
-- Abuse reports this provider holds: as a room's hub, reports it verified
-- (role 'hub'); as the accused user's provider, the notices hubs sent it
-- (role 'accused'). `messages` is the JSON array of the reported messages
-- (the content the reporter disclosed, the accepted time); `reporter` is NULL
-- when the reporter is not disclosed to us. Times in milliseconds.
CREATE TABLE abuse_reports (
    id             INTEGER PRIMARY KEY,
    received_at    INTEGER NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('hub', 'accused')),
    room           TEXT NOT NULL,
    hub            TEXT NOT NULL,
    reporter       TEXT,
    reporter_domain TEXT NOT NULL,
    alleged_abuser TEXT NOT NULL,
    reason         INTEGER NOT NULL,
    note           TEXT NOT NULL,
    messages       TEXT NOT NULL,
    digest         BLOB NOT NULL,
    status         TEXT NOT NULL DEFAULT 'open'
                   CHECK (status IN ('open', 'dismissed', 'actioned')),
    resolution     TEXT,
    resolved_at    INTEGER,
    UNIQUE (role, digest)
);
CREATE INDEX abuse_reports_by_status ON abuse_reports (status, id);
CREATE INDEX abuse_reports_by_age ON abuse_reports (received_at);

-- == moderation (tables added here) ==
-- Local accounts a moderator suspended: every client API request of the user's
-- devices is refused while the row exists; unsuspending deletes it. Seconds.
CREATE TABLE account_suspensions (
    user       TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    since      INTEGER NOT NULL
);
-- Warnings from moderators to local users, which their clients show
-- (GET /v1/account/notices). Deleted `moderation.notice_retention_days` after
-- the user read them. Seconds.
CREATE TABLE account_notices (
    id         INTEGER PRIMARY KEY,
    user       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    text       TEXT NOT NULL,
    read_at    INTEGER
);
CREATE INDEX account_notices_by_user ON account_notices (user, id);
-- Remote users ('user', target = user URI) and whole remote domains ('domain',
-- target = domain) a moderator banned; unbanning deletes the row. Seconds.
CREATE TABLE remote_bans (
    target     TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('user', 'domain')),
    reason     TEXT NOT NULL,
    since      INTEGER NOT NULL
);
-- What moderators did, for the record: who (the name they gave), what, to whom,
-- why, about which report. Deleted after `moderation.log_retention_days`.
CREATE TABLE moderation_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    moderator  TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    report     INTEGER
);
CREATE INDEX moderation_log_by_age ON moderation_log (at);

-- == consent and blocks (tables added here) ==
-- Consent (message requests, crate::consent). `room` is '' for any room.
-- Grants a local target user gave: who may claim its key material. Kept until
-- revoked (decline, block) or the target's account is gone.
CREATE TABLE consent_grants (
    target     TEXT NOT NULL,
    requester  TEXT NOT NULL,
    room       TEXT NOT NULL DEFAULT '',
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (target, requester, room)
) WITHOUT ROWID;
-- Requests waiting for a local target's answer. Deleted on accept, decline,
-- cancel, block, or after [retention] consent_requests_days (90).
CREATE TABLE consent_requests (
    target       TEXT NOT NULL,
    requester    TEXT NOT NULL,
    room         TEXT NOT NULL DEFAULT '',
    requested_at INTEGER NOT NULL,
    PRIMARY KEY (target, requester, room)
) WITHOUT ROWID;
CREATE INDEX consent_requests_by_age ON consent_requests (requested_at);
-- Requests a local user sent, and whether the target granted ('pending',
-- 'granted'). Deleted on cancel, when the requester blocks the target, or
-- consent_requests_days after the last change while still pending.
CREATE TABLE consent_outgoing (
    requester  TEXT NOT NULL,
    target     TEXT NOT NULL,
    room       TEXT NOT NULL DEFAULT '',
    status     TEXT NOT NULL CHECK (status IN ('pending', 'granted')),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (requester, target, room)
) WITHOUT ROWID;
CREATE INDEX consent_outgoing_by_age ON consent_outgoing (updated_at);
-- Blocks by local users. Kept until unblocked.
CREATE TABLE consent_blocks (
    blocker    TEXT NOT NULL,
    blocked    TEXT NOT NULL,
    blocked_at INTEGER NOT NULL,
    PRIMARY KEY (blocker, blocked)
) WITHOUT ROWID;

-- == retention (columns and indexes added here) ==
-- When a payload entered the inbox (ms, the batch's `accepted_at`), so that
-- undelivered items expire (`retention.undelivered_days`). Payloads stored
-- before this version count from the migration.
ALTER TABLE messages ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET created_at = CAST(unixepoch('subsec') * 1000 AS INTEGER);
CREATE INDEX messages_by_age ON messages (created_at);
CREATE INDEX outbound_by_age ON outbound (created_at);
";

pub(super) fn open_writer(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path).context("opening the database")?;
    configure(&conn)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .context("enabling WAL")?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "the database cannot use WAL (journal_mode stays {mode})"
        )));
    }
    // FULL: in WAL mode, every commit syncs the WAL, so a commit that returned
    // survives power loss. fullfsync matters on macOS only, where plain fsync does
    // not reach the platter. temp_store: the savepoint journals of a batch stay in
    // memory instead of a temporary file.
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA fullfsync = ON;
         PRAGMA checkpoint_fullfsync = ON;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )
    .context("configuring the write connection")?;
    migrate(&mut conn, MIGRATIONS)?;
    Ok(conn)
}

/// Opens a read-only connection to an existing database.
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).context("opening a read connection")?;
    configure(&conn)?;
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .context("setting the busy timeout")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Applies the `migrations` the database lacks, in one transaction.
fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("starting the migration")?;
    let application_id: i32 = tx
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .context("reading the application id")?;
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(StoreError::Backend(format!(
            "not an Entente store (application_id {application_id:#x})"
        )));
    }
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .context("reading the schema version")?;
    let known = migrations.len();
    let applied = usize::try_from(version)
        .map_err(|_| StoreError::Backend(format!("invalid schema version {version}")))?;
    if applied > known {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}, newer than the newest this \
             build knows ({known}); upgrade the provider or restore a matching backup"
        )));
    }
    for (index, sql) in migrations.iter().enumerate().skip(applied) {
        tx.execute_batch(sql).context("migrating the schema")?;
        tx.pragma_update(None, "user_version", index + 1)
            .context("recording the schema version")?;
    }
    if application_id == 0 {
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .context("recording the application id")?;
    }
    tx.commit().context("committing the migration")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma<T: rusqlite::types::FromSql>(conn: &Connection, name: &str) -> T {
        conn.pragma_query_value(None, name, |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn the_writer_is_durable_and_checks_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("s.db")).unwrap();
        assert_eq!(pragma::<String>(&conn, "journal_mode"), "wal");
        assert_eq!(pragma::<i64>(&conn, "synchronous"), 2, "FULL");
        assert_eq!(pragma::<i64>(&conn, "foreign_keys"), 1);
        assert_eq!(
            pragma::<i64>(&conn, "user_version"),
            MIGRATIONS.len() as i64
        );
        assert_eq!(pragma::<i32>(&conn, "application_id"), APPLICATION_ID);
    }

    #[test]
    fn migrations_apply_in_order_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let v1 = "CREATE TABLE t (a INTEGER);";
        let v2 = "ALTER TABLE t ADD COLUMN b INTEGER; INSERT INTO t VALUES (1, 2);";
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &[v1]).unwrap();
        assert_eq!(pragma::<i64>(&conn, "user_version"), 1);
        migrate(&mut conn, &[v1, v2]).unwrap();
        migrate(&mut conn, &[v1, v2]).unwrap();
        assert_eq!(pragma::<i64>(&conn, "user_version"), 2);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "v2 ran once");
        let err = migrate(&mut conn, &[v1]).unwrap_err();
        assert!(matches!(err, StoreError::Backend(m) if m.contains("schema version 2")));
    }

    #[test]
    fn a_failing_migration_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("f.db")).unwrap();
        let v1 = "CREATE TABLE t (a INTEGER);";
        let err = migrate(&mut conn, &[v1, "CREATE TABLE u (a); NOT SQL;"]).unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)));
        assert_eq!(pragma::<i64>(&conn, "user_version"), 0);
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 0);
    }
}
