//! The client's persistent state: one SQLite file holding OpenMLS's group state (via
//! `openmls_sqlite_storage`) and our own tables (identity, rooms, history, pinned
//! issuer keys, outbox, the inbox cursor).
//!
//! Processing one inbox item is one transaction: the MLS state change, the history
//! row and the cursor commit together, so a crash never half-applies a message and a
//! redelivered item is recognised and skipped.

use std::path::Path;

use openmls_rust_crypto::RustCrypto;
use openmls_sqlite_storage::{Codec, SqliteStorageProvider};
use openmls_traits::OpenMlsProvider;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::ClientError;

/// serde_json codec for OpenMLS's storage.
#[derive(Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    type Error = serde_json::Error;

    fn to_vec<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Self::Error> {
        serde_json::to_vec(value)
    }

    fn from_slice<T: serde::de::DeserializeOwned>(slice: &[u8]) -> Result<T, Self::Error> {
        serde_json::from_slice(slice)
    }
}

/// The OpenMLS provider over our connection.
pub struct MlsProvider<'a> {
    crypto: &'a RustCrypto,
    storage: SqliteStorageProvider<JsonCodec, &'a Connection>,
}

impl<'a> MlsProvider<'a> {
    pub fn new(crypto: &'a RustCrypto, conn: &'a Connection) -> Self {
        Self {
            crypto,
            storage: SqliteStorageProvider::new(conn),
        }
    }
}

impl<'a> OpenMlsProvider for MlsProvider<'a> {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = SqliteStorageProvider<JsonCodec, &'a Connection>;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        self.crypto
    }
}

const SCHEMA: &[&str] = &[
    // version 1
    "CREATE TABLE identity (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        client TEXT NOT NULL,
        certificate BLOB NOT NULL,
        signature_public BLOB NOT NULL
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE issuers (domain TEXT PRIMARY KEY, key BLOB NOT NULL, first_seen INTEGER NOT NULL);
    CREATE TABLE rooms (
        room TEXT PRIMARY KEY,
        joined_at INTEGER NOT NULL
    );
    CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        room TEXT NOT NULL,
        message_id BLOB NOT NULL,
        sender_client TEXT NOT NULL,
        sender_user TEXT NOT NULL,
        hub_timestamp INTEGER NOT NULL,
        content BLOB NOT NULL,
        outgoing INTEGER NOT NULL,
        UNIQUE (room, message_id)
    );
    CREATE INDEX history_room ON history (room, id);
    CREATE TABLE verified (user TEXT PRIMARY KEY, safety_number TEXT NOT NULL, verified_at INTEGER NOT NULL);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        room TEXT NOT NULL,
        request BLOB NOT NULL,
        created_at INTEGER NOT NULL
    );",
    // version 2: outbox rows name their message, so a failed send can be resent.
    "ALTER TABLE outbox ADD COLUMN message_id BLOB NOT NULL DEFAULT x'';
     CREATE INDEX outbox_message ON outbox (room, message_id);",
    // version 3: the epoch at which we joined a room (0 for rooms we created).
    "ALTER TABLE rooms ADD COLUMN joined_epoch INTEGER NOT NULL DEFAULT 0;",
];

/// Opens (creating or migrating) the client database, including OpenMLS's tables.
pub fn open(path: &Path) -> Result<Connection, ClientError> {
    let mut conn = Connection::open(path)
        .map_err(|e| ClientError::Storage(format!("opening {}: {e}", path.display())))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(storage)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(storage)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(storage)?;
    conn.set_prepared_statement_cache_capacity(128);
    {
        let mut mls: SqliteStorageProvider<JsonCodec, &mut Connection> =
            SqliteStorageProvider::new(&mut conn);
        mls.run_migrations()
            .map_err(|e| ClientError::Storage(format!("migrating MLS storage: {e}")))?;
    }
    let version: i64 = conn
        .query_row("SELECT value FROM settings WHERE key = 'schema'", [], |r| {
            r.get::<_, String>(0)
        })
        .optional()
        .unwrap_or(None)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if version as usize > SCHEMA.len() {
        return Err(ClientError::Storage(format!(
            "{} was written by a newer version of Entente (schema {version}); upgrade",
            path.display()
        )));
    }
    for (i, sql) in SCHEMA.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(storage)?;
        tx.execute_batch(sql).map_err(storage)?;
        tx.execute(
            "INSERT INTO settings (key, value) VALUES ('schema', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![(i + 1).to_string()],
        )
        .map_err(storage)?;
        tx.commit().map_err(storage)?;
    }
    Ok(conn)
}

pub(crate) fn storage(e: rusqlite::Error) -> ClientError {
    ClientError::Storage(e.to_string())
}

pub(crate) fn setting(conn: &Connection, key: &str) -> Result<Option<String>, ClientError> {
    conn.query_row(
        "SELECT value FROM settings WHERE key = ?1",
        params![key],
        |r| r.get(0),
    )
    .optional()
    .map_err(storage)
}

pub(crate) fn set_setting(conn: &Connection, key: &str, value: &str) -> Result<(), ClientError> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
    .map(|_| ())
    .map_err(storage)
}
