//! Blob metadata: owner, size, expiry, completion. The bytes live in the blob store.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::convert::{Context, Violation, backend, ordered, violation};
use crate::store::{BlobAdmission, BlobRecord, Result, StoreError};

pub(super) fn create_blob(
    conn: &Connection,
    blob: &BlobRecord,
    quota: u64,
) -> Result<BlobAdmission> {
    // The writer runs one operation at a time, so usage cannot change between this
    // read and the insert: two uploads racing cannot both squeeze under the quota.
    let used = blob_usage(conn, &blob.owner, blob.created_at)?;
    if used.saturating_add(blob.size) > quota {
        return Ok(BlobAdmission::OverQuota { used });
    }
    conn.prepare_cached(
        "INSERT INTO blobs (id, owner, size, token_hash, created_at, expires_at, sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
    )
    .context("creating a blob")?
    .execute(params![
        blob.id,
        blob.owner,
        ordered(blob.size),
        &blob.token_hash[..],
        ordered(blob.created_at),
        ordered(blob.expires_at),
    ])
    .map_err(|e| match violation(&e) {
        Some(Violation::Unique) => StoreError::Conflict("blob".into()),
        _ => backend("creating a blob", &e),
    })?;
    Ok(BlobAdmission::Admitted)
}

fn record(row: &Row<'_>) -> rusqlite::Result<BlobRecord> {
    let hash = |v: Option<Vec<u8>>| -> rusqlite::Result<Option<[u8; 32]>> {
        v.map(|b| {
            <[u8; 32]>::try_from(b.as_slice()).map_err(|_| {
                rusqlite::Error::FromSqlConversionFailure(
                    b.len(),
                    rusqlite::types::Type::Blob,
                    "expected 32 bytes".into(),
                )
            })
        })
        .transpose()
    };
    Ok(BlobRecord {
        id: row.get(0)?,
        owner: row.get(1)?,
        size: row.get::<_, i64>(2)?.max(0).cast_unsigned(),
        token_hash: hash(Some(row.get(3)?))?.unwrap_or_default(),
        created_at: row.get::<_, i64>(4)?.max(0).cast_unsigned(),
        expires_at: row.get::<_, i64>(5)?.max(0).cast_unsigned(),
        sha256: hash(row.get(6)?)?,
    })
}

pub(super) fn blob(conn: &Connection, id: &str) -> Result<Option<BlobRecord>> {
    conn.prepare_cached(
        "SELECT id, owner, size, token_hash, created_at, expires_at, sha256
         FROM blobs WHERE id = ?1",
    )
    .context("reading a blob")?
    .query_row([id], record)
    .optional()
    .context("reading a blob")
}

pub(super) fn complete_blob(conn: &Connection, id: &str, sha256: &[u8; 32]) -> Result<()> {
    let n = conn
        .prepare_cached("UPDATE blobs SET sha256 = ?2 WHERE id = ?1")
        .context("completing a blob")?
        .execute(params![id, &sha256[..]])
        .context("completing a blob")?;
    if n == 0 {
        return Err(StoreError::NotFound("blob".into()));
    }
    Ok(())
}

pub(super) fn blob_usage(conn: &Connection, owner: &str, now: u64) -> Result<u64> {
    let used: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(size), 0) FROM blobs WHERE owner = ?1 AND expires_at > ?2",
        )
        .context("reading a user's blob usage")?
        .query_row(params![owner, ordered(now)], |row| row.get(0))
        .context("reading a user's blob usage")?;
    Ok(used.max(0).cast_unsigned())
}

pub(super) fn blobs_to_collect(
    conn: &Connection,
    now: u64,
    stale_before: u64,
    limit: u32,
) -> Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT id FROM blobs WHERE expires_at <= ?1
         UNION SELECT id FROM blobs WHERE sha256 IS NULL AND created_at < ?2
         LIMIT ?3",
    )
    .context("finding blobs to delete")?
    .query_map(params![ordered(now), ordered(stale_before), limit], |row| {
        row.get(0)
    })
    .and_then(Iterator::collect)
    .context("finding blobs to delete")
}

pub(super) fn delete_blob(conn: &Connection, id: &str) -> Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM blobs WHERE id = ?1")
        .context("deleting a blob")?
        .execute([id])
        .context("deleting a blob")?;
    Ok(n > 0)
}
