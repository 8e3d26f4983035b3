//! Inboxes, the outbound federation queue, and expiry.

use rusqlite::{Connection, params};

use super::convert::{Context, ordered};
use crate::store::{InboxRecord, OutboundRecord, Result, StoreError};

/// How long a KeyPackage route is kept after the claim that recorded it (seconds).
/// A Welcome can only use a KeyPackage within the KeyPackage's lifetime, which
/// OpenMLS sets to 84 days by default; the rest is margin for clock skew.
pub const KEY_PACKAGE_ROUTE_TTL_SECS: u64 = 90 * 24 * 60 * 60;

pub(super) fn inbox(
    conn: &Connection,
    client: &str,
    after: u64,
    limit: u32,
) -> Result<Vec<InboxRecord>> {
    conn.prepare_cached(
        "SELECT i.seq, m.room, m.payload
         FROM inbox i JOIN messages m ON m.id = i.message_id
         WHERE i.client = ?1 AND i.seq > ?2
         ORDER BY i.seq LIMIT ?3",
    )
    .context("reading an inbox")?
    .query_map(params![client, ordered(after), limit], |row| {
        Ok(InboxRecord {
            seq: row.get(0)?,
            room: row.get(1)?,
            payload: row.get(2)?,
        })
    })
    .and_then(Iterator::collect)
    .context("reading an inbox")
}

pub(super) fn ack(conn: &Connection, client: &str, up_to: u64) -> Result<u64> {
    // The `inbox_release` trigger drops each payload with its last inbox row.
    let deleted = conn
        .prepare_cached("DELETE FROM inbox WHERE client = ?1 AND seq <= ?2")
        .context("acking an inbox")?
        .execute(params![client, ordered(up_to)])
        .context("acking an inbox")?;
    Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
}

pub(super) fn due_outbound(
    conn: &Connection,
    now: u64,
    per_domain: u32,
) -> Result<Vec<OutboundRecord>> {
    // One snapshot for the domain scan and the per-domain reads.
    let tx = conn
        .unchecked_transaction()
        .context("reading the outbound queue")?;
    // The domains whose head request is due. Walks the distinct domains through
    // the (domain, id) index, one seek per domain, instead of scanning a backlog.
    let domains: Vec<String> = tx
        .prepare_cached(
            "WITH RECURSIVE domains (domain) AS (
                 SELECT min(domain) FROM outbound
                 UNION ALL
                 SELECT (SELECT min(domain) FROM outbound WHERE domain > domains.domain)
                 FROM domains WHERE domain IS NOT NULL
             )
             SELECT domain FROM domains
             WHERE domain IS NOT NULL
               AND (SELECT next_attempt_at FROM outbound o
                    WHERE o.domain = domains.domain ORDER BY id LIMIT 1) <= ?1",
        )
        .context("reading the outbound queue")?
        .query_map([ordered(now)], |row| row.get(0))
        .and_then(Iterator::collect)
        .context("reading the outbound queue")?;
    let mut head = tx
        .prepare_cached(
            "SELECT id, domain, endpoint, room, body, attempts, next_attempt_at
             FROM outbound WHERE domain = ?1 ORDER BY id LIMIT ?2",
        )
        .context("reading the outbound queue")?;
    let mut due = Vec::new();
    for domain in &domains {
        let rows = head
            .query_map(params![domain, per_domain], |row| {
                Ok(OutboundRecord {
                    id: row.get(0)?,
                    domain: row.get(1)?,
                    endpoint: row.get(2)?,
                    room: row.get(3)?,
                    body: row.get(4)?,
                    attempts: row.get(5)?,
                    next_attempt_at: row.get(6)?,
                })
            })
            .context("reading the outbound queue")?;
        for row in rows {
            due.push(row.context("reading the outbound queue")?);
        }
    }
    Ok(due)
}

pub(super) fn outbound_done(conn: &Connection, id: u64) -> Result<()> {
    let deleted = conn
        .prepare_cached("DELETE FROM outbound WHERE id = ?1")
        .context("completing an outbound request")?
        .execute([ordered(id)])
        .context("completing an outbound request")?;
    found(deleted)
}

pub(super) fn outbound_retry(
    conn: &Connection,
    id: u64,
    next_attempt_at: u64,
    attempts: u32,
) -> Result<()> {
    let updated = conn
        .prepare_cached("UPDATE outbound SET next_attempt_at = ?2, attempts = ?3 WHERE id = ?1")
        .context("rescheduling an outbound request")?
        .execute(params![ordered(id), ordered(next_attempt_at), attempts])
        .context("rescheduling an outbound request")?;
    found(updated)
}

pub(super) fn next_outbound_at(conn: &Connection) -> Result<Option<u64>> {
    conn.prepare_cached("SELECT min(next_attempt_at) FROM outbound")
        .context("reading the outbound queue")?
        .query_row([], |row| row.get(0))
        .context("reading the outbound queue")
}

pub(super) fn expire(conn: &Connection, before_ms: u64, now_secs: u64) -> Result<u64> {
    let route_cutoff = now_secs.saturating_sub(KEY_PACKAGE_ROUTE_TTL_SECS);
    let deletions: [(&str, i64); 4] = [
        (
            "DELETE FROM dedup WHERE accepted_at < ?1",
            ordered(before_ms),
        ),
        (
            "DELETE FROM echo_marks WHERE created_at < ?1",
            ordered(before_ms),
        ),
        (
            "DELETE FROM link_codes WHERE expires_at <= ?1",
            ordered(now_secs),
        ),
        (
            "DELETE FROM key_package_routes WHERE created_at < ?1",
            ordered(route_cutoff),
        ),
    ];
    let mut deleted = 0_u64;
    for (sql, cutoff) in deletions {
        let rows = conn
            .prepare_cached(sql)
            .context("expiring old rows")?
            .execute([cutoff])
            .context("expiring old rows")?;
        deleted = deleted.saturating_add(u64::try_from(rows).unwrap_or(u64::MAX));
    }
    Ok(deleted)
}

fn found(rows: usize) -> Result<()> {
    if rows == 0 {
        return Err(StoreError::NotFound("outbound request".into()));
    }
    Ok(())
}
