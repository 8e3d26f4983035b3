//! Users, clients and link codes.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::convert::{Context, Violation, backend, from_opaque, opaque, ordered, violation};
use crate::store::{ClientRecord, Result, StoreError};

pub(super) fn create_account(conn: &Connection, client: &ClientRecord) -> Result<()> {
    conn.prepare_cached("INSERT INTO users (user, created_at) VALUES (?1, ?2)")
        .context("creating a user")?
        .execute(params![client.user, opaque(client.created_at)])
        .map_err(|e| match violation(&e) {
            Some(Violation::Unique) => StoreError::Conflict("user".into()),
            _ => backend("creating a user", &e),
        })?;
    insert_client(conn, client)
}

pub(super) fn add_client(
    conn: &Connection,
    client: &ClientRecord,
    link_code_hash: &[u8; 32],
    now: u64,
) -> Result<()> {
    // Consumed only if the client is added too: an error rolls this back.
    let consumed = conn
        .prepare_cached("DELETE FROM link_codes WHERE hash = ?1 AND user = ?2 AND expires_at > ?3")
        .context("consuming a link code")?
        .execute(params![&link_code_hash[..], client.user, ordered(now)])
        .context("consuming a link code")?;
    if consumed == 0 {
        return Err(StoreError::NotFound("link code".into()));
    }
    insert_client(conn, client)
}

pub(super) fn remove_client(conn: &Connection, client: &str) -> Result<()> {
    for (what, sql) in [
        (
            "deleting a client's inbox",
            "DELETE FROM inbox WHERE client = ?1",
        ),
        (
            "deleting a client's KeyPackages",
            "DELETE FROM key_packages WHERE client = ?1",
        ),
        (
            "deleting a client's rooms",
            "DELETE FROM room_clients WHERE client = ?1",
        ),
    ] {
        conn.prepare_cached(sql)
            .context(what)?
            .execute([client])
            .context(what)?;
    }
    let n = conn
        .prepare_cached("DELETE FROM clients WHERE client = ?1")
        .context("deleting a client")?
        .execute([client])
        .context("deleting a client")?;
    if n == 0 {
        return Err(StoreError::NotFound("client".into()));
    }
    Ok(())
}

pub(super) fn put_link_code(
    conn: &Connection,
    user: &str,
    code_hash: &[u8; 32],
    expires_at: u64,
) -> Result<()> {
    conn.prepare_cached("INSERT INTO link_codes (hash, user, expires_at) VALUES (?1, ?2, ?3)")
        .context("storing a link code")?
        .execute(params![&code_hash[..], user, ordered(expires_at)])
        .map_err(|e| match violation(&e) {
            Some(Violation::Unique) => StoreError::Conflict("link code".into()),
            Some(Violation::ForeignKey) => StoreError::NotFound("user".into()),
            None => backend("storing a link code", &e),
        })?;
    Ok(())
}

pub(super) fn client(conn: &Connection, client: &str) -> Result<Option<ClientRecord>> {
    conn.prepare_cached(
        "SELECT client, user, signature_key, certificate, created_at
         FROM clients WHERE client = ?1",
    )
    .context("reading a client")?
    .query_row([client], client_record)
    .optional()
    .context("reading a client")
}

pub(super) fn user_clients(conn: &Connection, user: &str) -> Result<Vec<ClientRecord>> {
    conn.prepare_cached(
        "SELECT client, user, signature_key, certificate, created_at
         FROM clients WHERE user = ?1 ORDER BY rowid",
    )
    .context("reading a user's clients")?
    .query_map([user], client_record)
    .and_then(Iterator::collect)
    .context("reading a user's clients")
}

pub(super) fn user_exists(conn: &Connection, user: &str) -> Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE user = ?1)")
        .context("looking up a user")?
        .query_row([user], |row| row.get(0))
        .context("looking up a user")
}

pub(super) fn client_exists(conn: &Connection, client: &str) -> Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM clients WHERE client = ?1)")
        .context("looking up a client")?
        .query_row([client], |row| row.get(0))
        .context("looking up a client")
}

fn insert_client(conn: &Connection, client: &ClientRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO clients (client, user, signature_key, certificate, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .context("adding a client")?
    .execute(params![
        client.client,
        client.user,
        client.signature_key,
        client.certificate,
        opaque(client.created_at),
    ])
    .map_err(|e| match violation(&e) {
        Some(Violation::Unique) => StoreError::Conflict("client".into()),
        Some(Violation::ForeignKey) => StoreError::NotFound("user".into()),
        None => backend("adding a client", &e),
    })?;
    Ok(())
}

fn client_record(row: &Row<'_>) -> rusqlite::Result<ClientRecord> {
    Ok(ClientRecord {
        client: row.get(0)?,
        user: row.get(1)?,
        signature_key: row.get(2)?,
        certificate: row.get(3)?,
        created_at: from_opaque(row.get(4)?),
    })
}
