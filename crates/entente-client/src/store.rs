//! The client's persistent state: one SQLite file holding OpenMLS's group state (via
//! `openmls_sqlite_storage`) and our own tables (identity, rooms, history, pinned
//! issuer keys, outbox, the inbox cursor).
//!
//! Processing one inbox item is one transaction: the MLS state change, the history
//! row and the cursor commit together, so a crash never half-applies a message and a
//! redelivered item is recognised and skipped.
//!
//! [`GroupCache`] keeps groups decoded between operations and runs each operation
//! in one transaction; [`pinned_issuers`] reads the issuer keys that credentials are
//! verified with.

use std::collections::HashMap;
use std::path::Path;

use entente_core::identity::IssuerPublicKey;
use entente_wire::ids::Domain;
use openmls::prelude::{GroupId, MlsGroup};
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
    // version 4: uploads of files not yet sent, with their keys, so they can resume.
    "CREATE TABLE uploads (
        path TEXT NOT NULL,
        file_len INTEGER NOT NULL,
        file_mtime INTEGER NOT NULL,
        enc_alg INTEGER NOT NULL,
        room TEXT NOT NULL,
        key BLOB NOT NULL,
        nonce BLOB NOT NULL,
        aad BLOB NOT NULL,
        blob_id TEXT NOT NULL,
        blob_url TEXT NOT NULL,
        upload_token TEXT NOT NULL,
        expires INTEGER NOT NULL,
        size INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (path, file_len, file_mtime, enc_alg, room)
    );",
    // version 5: the Signal-compatible channel (crate::channel): our identity and
    // prekeys, sessions per peer device, the identity keys we trust, messages held
    // because a peer's identity changed, conversations, groups and the outbox.
    "CREATE TABLE signal_identity (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        private BLOB NOT NULL,
        registration_id INTEGER NOT NULL,
        device_id INTEGER NOT NULL,
        protocols TEXT NOT NULL
    );
    CREATE TABLE signal_prekeys (
        kind TEXT NOT NULL,
        id INTEGER NOT NULL,
        private BLOB NOT NULL,
        last_resort INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (kind, id)
    );
    CREATE TABLE signal_sessions (
        peer_client TEXT PRIMARY KEY,
        peer_user TEXT NOT NULL,
        session BLOB NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX signal_sessions_user ON signal_sessions (peer_user);
    CREATE TABLE signal_trust (
        peer_client TEXT PRIMARY KEY,
        peer_user TEXT NOT NULL,
        identity_key BLOB NOT NULL,
        pending_key BLOB,
        first_seen INTEGER NOT NULL
    );
    CREATE TABLE signal_held (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        peer_client TEXT NOT NULL,
        sealed BLOB NOT NULL,
        received_at INTEGER NOT NULL
    );
    CREATE TABLE direct_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation TEXT NOT NULL,
        message_id BLOB NOT NULL,
        sender_client TEXT NOT NULL,
        sender_user TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        content BLOB NOT NULL,
        outgoing INTEGER NOT NULL,
        UNIQUE (conversation, message_id)
    );
    CREATE INDEX direct_history_conversation ON direct_history (conversation, id);
    CREATE TABLE direct_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient TEXT NOT NULL,
        frame BLOB NOT NULL,
        request BLOB NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE signal_groups (
        group_id BLOB PRIMARY KEY,
        name TEXT NOT NULL,
        mechanism TEXT NOT NULL,
        members TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE signal_sender_keys (
        group_id BLOB NOT NULL,
        sender_client TEXT NOT NULL,
        distribution_id BLOB NOT NULL,
        record BLOB NOT NULL,
        PRIMARY KEY (group_id, sender_client)
    );
    CREATE INDEX signal_sender_keys_distribution ON signal_sender_keys (distribution_id, sender_client);
    CREATE TABLE signal_sender_key_sent (
        group_id BLOB NOT NULL,
        distribution_id BLOB NOT NULL,
        peer_client TEXT NOT NULL,
        PRIMARY KEY (group_id, distribution_id, peer_client)
    );",
    // version 6: abuse prevention (issue 6). Franks kept with received messages
    // (for reports); consent and blocks.
    "-- == franking ==
    -- The hub's frank of a message (encoded MIMI Frank, kept only once verified),
    -- and what we found: 'verified', 'missing' or 'invalid: <reason>'. The
    -- accepted timestamp is hub_timestamp; the cipher suite is in the frank.
    ALTER TABLE history ADD COLUMN frank BLOB;
    ALTER TABLE history ADD COLUMN frank_status TEXT;
    -- == consent and blocks ==
    -- Users this account blocked, as this device knows them: sealed messages
    -- from them are dropped after unsealing, before any decryption (their
    -- provider-side access ends at the provider; see crate::consent).
    CREATE TABLE blocked_users (user TEXT PRIMARY KEY, blocked_at INTEGER NOT NULL);",
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

/// MLS groups kept decoded in memory between operations.
///
/// OpenMLS writes every change to a group through to storage, so once an operation
/// has committed, the group in memory is the group in the database. Loading a group
/// decodes its whole ratchet tree (1.5 MB of JSON for 1,000 members); keeping it
/// spares that on every message sent or received and every commit.
///
/// Groups are reached only inside [`GroupCache::transaction`], which keeps memory
/// and database together:
/// - a transaction that fails is rolled back and the cache emptied: its groups may
///   hold changes the database no longer has;
/// - a transaction that starts after another connection to the database committed
///   (`PRAGMA data_version` changed) starts with an empty cache.
///
/// The one thing it cannot see is a change to a group made on the same connection
/// without it (`MlsGroup::load` and a write outside the cache): every operation on
/// a group must go through the cache, or a stale group could reuse a ratchet
/// generation.
#[derive(Default)]
pub struct GroupCache {
    groups: HashMap<GroupId, MlsGroup>,
    data_version: Option<i64>,
}

/// Most groups kept; past this the cache starts over.
const MAX_CACHED_GROUPS: usize = 64;

impl GroupCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction (one fsync, and a crash
    /// applies all or nothing): commits if it returns `Ok`, otherwise rolls back
    /// and forgets every cached group.
    pub fn transaction<T>(
        &mut self,
        conn: &Connection,
        f: impl FnOnce(&mut CachedTransaction<'_>) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(storage)?;
        let result = self.revalidate(conn).and_then(|()| {
            let mut tx = CachedTransaction { cache: self, conn };
            f(&mut tx)
        });
        let result = result.and_then(|v| conn.execute_batch("COMMIT").map_err(storage).map(|()| v));
        if result.is_err() {
            // After a failed COMMIT, SQLite may have rolled back already.
            let _ = conn.execute_batch("ROLLBACK");
            self.groups.clear();
        }
        result
    }

    /// Runs `f` in a transaction that is always rolled back (to see what an item
    /// would do without applying it), and forgets every cached group: they may
    /// hold its changes.
    pub fn dry_run<T>(
        &mut self,
        conn: &Connection,
        f: impl FnOnce(&mut CachedTransaction<'_>) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(storage)?;
        let result = self.revalidate(conn).and_then(|()| {
            let mut tx = CachedTransaction { cache: self, conn };
            f(&mut tx)
        });
        let rolled_back = conn.execute_batch("ROLLBACK").map_err(storage);
        self.groups.clear();
        rolled_back.and(result)
    }

    /// Empties the cache if another connection committed since it was filled. The
    /// caller holds the write lock, so nobody else commits until it is done.
    fn revalidate(&mut self, conn: &Connection) -> Result<(), ClientError> {
        let version: i64 = conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(storage)?;
        if self.data_version != Some(version) {
            self.groups.clear();
            self.data_version = Some(version);
        }
        Ok(())
    }
}

/// A transaction of [`GroupCache::transaction`]: the connection and the groups.
pub struct CachedTransaction<'a> {
    cache: &'a mut GroupCache,
    conn: &'a Connection,
}

impl<'a> CachedTransaction<'a> {
    pub fn conn(&self) -> &'a Connection {
        self.conn
    }

    /// The group, from memory or loaded from the database; `None` if the database
    /// does not have it.
    pub fn group(&mut self, group_id: &GroupId) -> Result<Option<&mut MlsGroup>, ClientError> {
        let groups = &mut self.cache.groups;
        if !groups.contains_key(group_id) {
            let storage: SqliteStorageProvider<JsonCodec, &Connection> =
                SqliteStorageProvider::new(self.conn);
            let Some(group) = MlsGroup::load(&storage, group_id)
                .map_err(|e| ClientError::Storage(format!("loading a group: {e}")))?
            else {
                return Ok(None);
            };
            if groups.len() >= MAX_CACHED_GROUPS {
                groups.clear();
            }
            groups.insert(group_id.clone(), group);
        }
        Ok(groups.get_mut(group_id))
    }

    /// Keeps a group that was just created or joined (and so is in the database).
    pub fn insert(&mut self, group: MlsGroup) -> &mut MlsGroup {
        let groups = &mut self.cache.groups;
        if groups.len() >= MAX_CACHED_GROUPS {
            groups.clear();
        }
        let id = group.group_id().clone();
        groups.entry(id).insert_entry(group).into_mut()
    }

    /// Forgets a group (one deleted from the database).
    pub fn remove(&mut self, group_id: &GroupId) {
        self.cache.groups.remove(group_id);
    }
}

/// The pinned issuer keys of all domains, read at once: verifying a Welcome's
/// credentials needs them for every leaf.
pub fn pinned_issuers(conn: &Connection) -> Result<HashMap<Domain, IssuerPublicKey>, ClientError> {
    let mut stmt = conn
        .prepare_cached("SELECT domain, key FROM issuers")
        .map_err(storage)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .map_err(storage)?;
    let mut out = HashMap::new();
    for row in rows {
        let (domain, key) = row.map_err(storage)?;
        let domain: Domain = domain
            .parse()
            .map_err(|e| ClientError::Storage(format!("pinned issuer domain {domain}: {e}")))?;
        let key = IssuerPublicKey::from_bytes(domain.clone(), &key)
            .map_err(|e| ClientError::Storage(format!("pinned issuer key of {domain}: {e}")))?;
        out.insert(domain, key);
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use openmls::prelude::{BasicCredential, CredentialWithKey, MlsGroupCreateConfig};
    use openmls_basic_credential::SignatureKeyPair;

    fn new_group(conn: &Connection, crypto: &RustCrypto) -> (GroupId, SignatureKeyPair) {
        let provider = MlsProvider::new(crypto, conn);
        let signer = SignatureKeyPair::new(entente_core::mls::SIGNATURE_SCHEME).unwrap();
        let credential = CredentialWithKey {
            credential: BasicCredential::new(b"test".to_vec()).into(),
            signature_key: signer.public().into(),
        };
        let id = GroupId::from_slice(b"mimi://a.example/r/test");
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(entente_core::mls::CIPHERSUITE)
            .build();
        MlsGroup::new_with_group_id(&provider, &signer, &config, id.clone(), credential).unwrap();
        (id, signer)
    }

    #[test]
    fn cached_groups_follow_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.db");
        let conn = open(&path).unwrap();
        let crypto = RustCrypto::default();
        let (id, signer) = new_group(&conn, &crypto);
        let mut cache = GroupCache::new();

        // Loaded once, then kept across committed transactions.
        for _ in 0..2 {
            cache
                .transaction(&conn, |tx| {
                    let provider = MlsProvider::new(&crypto, tx.conn);
                    let group = tx.group(&id)?.unwrap();
                    group.create_message(&provider, &signer, b"hi").unwrap();
                    Ok(())
                })
                .unwrap();
            assert_eq!(cache.groups.len(), 1);
        }

        // A failed transaction is rolled back and the cache emptied.
        let err = cache.transaction(&conn, |tx| {
            let provider = MlsProvider::new(&crypto, tx.conn);
            let group = tx.group(&id)?.unwrap();
            group.create_message(&provider, &signer, b"lost").unwrap();
            set_setting(tx.conn, "probe", "x")?;
            Err::<(), _>(ClientError::Usage("fails".into()))
        });
        assert!(err.is_err());
        assert!(cache.groups.is_empty());
        assert_eq!(setting(&conn, "probe").unwrap(), None);

        // Another connection's commit empties it too; our own commits do not.
        cache
            .transaction(&conn, |tx| tx.group(&id).map(|g| assert!(g.is_some())))
            .unwrap();
        let other = open(&path).unwrap();
        set_setting(&other, "probe", "y").unwrap();
        cache
            .transaction(&conn, |tx| {
                assert!(tx.cache.groups.is_empty());
                set_setting(tx.conn, "probe", "z")?;
                tx.group(&id).map(|g| assert!(g.is_some()))
            })
            .unwrap();
        cache
            .transaction(&conn, |tx| {
                assert_eq!(tx.cache.groups.len(), 1);
                Ok(())
            })
            .unwrap();

        // A dry run changes nothing, and leaves no group behind that it changed.
        cache
            .dry_run(&conn, |tx| {
                let provider = MlsProvider::new(&crypto, tx.conn);
                let group = tx.group(&id)?.unwrap();
                group.create_message(&provider, &signer, b"peek").unwrap();
                set_setting(tx.conn, "probe", "dry")
            })
            .unwrap();
        assert!(cache.groups.is_empty());
        assert_eq!(setting(&conn, "probe").unwrap().as_deref(), Some("z"));

        // A group that is not in the database is not made up.
        cache
            .transaction(&conn, |tx| {
                assert!(tx.group(&GroupId::from_slice(b"other"))?.is_none());
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn pinned_issuers_reads_every_domain() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("client.db")).unwrap();
        let mut keys = Vec::new();
        for d in ["a.example", "b.example"] {
            let key = entente_core::identity::IssuerKey::generate(d.parse().unwrap()).public();
            conn.execute(
                "INSERT INTO issuers (domain, key, first_seen) VALUES (?1, ?2, 0)",
                params![d, key.to_bytes().to_vec()],
            )
            .unwrap();
            keys.push(key);
        }
        let pinned = pinned_issuers(&conn).unwrap();
        assert_eq!(pinned.len(), 2);
        for k in keys {
            assert_eq!(pinned.get(&k.domain), Some(&k));
        }
    }
}
