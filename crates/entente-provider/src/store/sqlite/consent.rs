//! Consent (message requests) and blocks: grants local users gave, requests waiting
//! for them, requests they sent, and whom they blocked. A room of `''` in a row
//! means "any room".

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::convert::{Context, ordered};
use crate::store::{
    BlockRecord, ConsentDecision, ConsentKey, ConsentRecord, ConsentWrite, NewOutbound, Result,
};

fn room(key: &ConsentKey) -> &str {
    key.room.as_deref().unwrap_or("")
}

fn blocked(conn: &Connection, blocker: &str, blocked: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM consent_blocks WHERE blocker = ?1 AND blocked = ?2")
        .context("reading blocks")?
        .query_row(params![blocker, blocked], |_| Ok(()))
        .optional()
        .context("reading blocks")?
        .is_some())
}

pub(super) fn write(
    conn: &Connection,
    writes: &[ConsentWrite],
    outbound: &[NewOutbound],
    now_ms: u64,
) -> Result<Vec<bool>> {
    let mut changed = Vec::with_capacity(writes.len());
    for w in writes {
        changed.push(apply(conn, w)?);
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO outbound
                 (domain, endpoint, room, body, attempts, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, 0, 0, ?5)",
        )
        .context("queueing consent requests")?;
    for r in outbound {
        insert
            .execute(params![
                r.domain,
                r.endpoint,
                r.room,
                r.body,
                ordered(now_ms)
            ])
            .context("queueing consent requests")?;
    }
    Ok(changed)
}

fn exec(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    doing: &'static str,
) -> Result<usize> {
    conn.prepare_cached(sql)
        .context(doing)?
        .execute(p)
        .context(doing)
}

fn apply(conn: &Connection, w: &ConsentWrite) -> Result<bool> {
    const DOING: &str = "updating consent";
    Ok(match w {
        ConsentWrite::Request { key, at } => {
            if blocked(conn, &key.target, &key.requester)? {
                return Ok(false);
            }
            exec(
                conn,
                "INSERT INTO consent_requests (target, requester, room, requested_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (target, requester, room) DO NOTHING",
                params![key.target, key.requester, room(key), ordered(*at)],
                DOING,
            )? > 0
        }
        ConsentWrite::Cancel { key } => {
            exec(
                conn,
                "DELETE FROM consent_requests WHERE target = ?1 AND requester = ?2 AND room = ?3",
                params![key.target, key.requester, room(key)],
                DOING,
            )? > 0
        }
        ConsentWrite::Grant { key, at } => {
            let n = exec(
                conn,
                "INSERT INTO consent_grants (target, requester, room, granted_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (target, requester, room) DO NOTHING",
                params![key.target, key.requester, room(key), ordered(*at)],
                DOING,
            )?;
            // A grant for any room answers every request of the requester; one for
            // a room answers the request for that room.
            let answered = if key.room.is_none() {
                exec(
                    conn,
                    "DELETE FROM consent_requests WHERE target = ?1 AND requester = ?2",
                    params![key.target, key.requester],
                    DOING,
                )?
            } else {
                exec(
                    conn,
                    "DELETE FROM consent_requests
                     WHERE target = ?1 AND requester = ?2 AND room = ?3",
                    params![key.target, key.requester, room(key)],
                    DOING,
                )?
            };
            n + answered > 0
        }
        ConsentWrite::Decline { target, requester } => {
            let a = exec(
                conn,
                "DELETE FROM consent_requests WHERE target = ?1 AND requester = ?2",
                params![target, requester],
                DOING,
            )?;
            let b = exec(
                conn,
                "DELETE FROM consent_grants WHERE target = ?1 AND requester = ?2",
                params![target, requester],
                DOING,
            )?;
            a + b > 0
        }
        ConsentWrite::Outgoing { key, at } => {
            exec(
                conn,
                "INSERT INTO consent_outgoing (requester, target, room, status, updated_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4)
                 ON CONFLICT (requester, target, room) DO UPDATE SET updated_at = ?4
                 WHERE status = 'pending'",
                params![key.requester, key.target, room(key), ordered(*at)],
                DOING,
            )? > 0
        }
        ConsentWrite::OutgoingGranted { key, at } => {
            // The requester blocked the target: a grant from them is of no use.
            if blocked(conn, &key.requester, &key.target)? {
                return Ok(false);
            }
            exec(
                conn,
                "INSERT INTO consent_outgoing (requester, target, room, status, updated_at)
                 VALUES (?1, ?2, ?3, 'granted', ?4)
                 ON CONFLICT (requester, target, room)
                 DO UPDATE SET status = 'granted', updated_at = ?4",
                params![key.requester, key.target, room(key), ordered(*at)],
                DOING,
            )? > 0
        }
        ConsentWrite::OutgoingRevoked { key } => {
            exec(
                conn,
                "DELETE FROM consent_outgoing WHERE requester = ?1 AND target = ?2 AND room = ?3",
                params![key.requester, key.target, room(key)],
                DOING,
            )? > 0
        }
        ConsentWrite::Block {
            blocker,
            blocked,
            at,
        } => {
            let n = exec(
                conn,
                "INSERT INTO consent_blocks (blocker, blocked, blocked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (blocker, blocked) DO NOTHING",
                params![blocker, blocked, ordered(*at)],
                DOING,
            )?;
            for sql in [
                "DELETE FROM consent_requests WHERE target = ?1 AND requester = ?2",
                "DELETE FROM consent_grants WHERE target = ?1 AND requester = ?2",
                "DELETE FROM consent_outgoing WHERE requester = ?1 AND target = ?2",
            ] {
                exec(conn, sql, params![blocker, blocked], DOING)?;
            }
            n > 0
        }
        ConsentWrite::Unblock { blocker, blocked } => {
            exec(
                conn,
                "DELETE FROM consent_blocks WHERE blocker = ?1 AND blocked = ?2",
                params![blocker, blocked],
                DOING,
            )? > 0
        }
    })
}

pub(super) fn decision(
    conn: &Connection,
    target: &str,
    requester: &str,
    room: Option<&str>,
) -> Result<ConsentDecision> {
    if blocked(conn, target, requester)? {
        return Ok(ConsentDecision::Blocked);
    }
    let rooms: Vec<String> = conn
        .prepare_cached("SELECT room FROM consent_grants WHERE target = ?1 AND requester = ?2")
        .context("reading consent")?
        .query_map(params![target, requester], |row| row.get(0))
        .context("reading consent")?
        .collect::<rusqlite::Result<_>>()
        .context("reading consent")?;
    if rooms.is_empty() {
        return Ok(ConsentDecision::NoConsent);
    }
    let covered = rooms
        .iter()
        .any(|r| r.is_empty() || room.is_some_and(|wanted| wanted == r));
    Ok(if covered {
        ConsentDecision::Granted
    } else {
        ConsentDecision::NoConsentForRoom
    })
}

fn optional_room(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn record(row: &Row<'_>) -> rusqlite::Result<ConsentRecord> {
    Ok(ConsentRecord {
        key: ConsentKey {
            target: row.get(0)?,
            requester: row.get(1)?,
            room: optional_room(row.get(2)?),
        },
        granted: row.get::<_, String>(3)? == "granted",
        at: row.get::<_, i64>(4)?.unsigned_abs(),
    })
}

pub(super) fn incoming(conn: &Connection, target: &str) -> Result<Vec<ConsentRecord>> {
    conn.prepare_cached(
        "SELECT target, requester, room, 'pending', requested_at FROM consent_requests
         WHERE target = ?1 ORDER BY requested_at, requester, room",
    )
    .context("reading consent requests")?
    .query_map([target], record)
    .context("reading consent requests")?
    .collect::<rusqlite::Result<_>>()
    .context("reading consent requests")
}

pub(super) fn outgoing(conn: &Connection, requester: &str) -> Result<Vec<ConsentRecord>> {
    conn.prepare_cached(
        "SELECT target, requester, room, status, updated_at FROM consent_outgoing
         WHERE requester = ?1 ORDER BY updated_at DESC, target, room",
    )
    .context("reading consent requests")?
    .query_map([requester], record)
    .context("reading consent requests")?
    .collect::<rusqlite::Result<_>>()
    .context("reading consent requests")
}

pub(super) fn blocks(conn: &Connection, blocker: &str) -> Result<Vec<BlockRecord>> {
    conn.prepare_cached(
        "SELECT blocker, blocked, blocked_at FROM consent_blocks
         WHERE blocker = ?1 ORDER BY blocked_at DESC, blocked",
    )
    .context("reading blocks")?
    .query_map([blocker], |row| {
        Ok(BlockRecord {
            blocker: row.get(0)?,
            blocked: row.get(1)?,
            at: row.get::<_, i64>(2)?.unsigned_abs(),
        })
    })
    .context("reading blocks")?
    .collect::<rusqlite::Result<_>>()
    .context("reading blocks")
}

pub(super) fn expire(conn: &Connection, before_ms: u64) -> Result<u64> {
    let a = exec(
        conn,
        "DELETE FROM consent_requests WHERE requested_at < ?1",
        [ordered(before_ms)],
        "expiring consent requests",
    )?;
    let b = exec(
        conn,
        "DELETE FROM consent_outgoing WHERE status = 'pending' AND updated_at < ?1",
        [ordered(before_ms)],
        "expiring consent requests",
    )?;
    Ok((a + b) as u64)
}
