//! Rooms, and the commit point: [`apply`].

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::accounts::client_exists;
use super::convert::{Context, Violation, backend, from_opaque, opaque, ordered, violation};
use crate::store::{Batch, BatchOutcome, Delivery, GroupSnapshot, Result, RoomRecord, StoreError};

pub(super) fn create_room(
    conn: &Connection,
    room: &RoomRecord,
    first_client: &str,
    group: &GroupSnapshot,
) -> Result<()> {
    if !client_exists(conn, first_client)? {
        return Err(StoreError::NotFound("client".into()));
    }
    conn.prepare_cached("INSERT INTO rooms (room, hub, epoch, created_at) VALUES (?1, ?2, ?3, ?4)")
        .context("creating a room")?
        .execute(params![
            room.room,
            room.hub,
            opaque(room.epoch),
            opaque(room.created_at)
        ])
        .map_err(|e| match violation(&e) {
            Some(Violation::Unique) => StoreError::Conflict("room".into()),
            _ => backend("creating a room", &e),
        })?;
    conn.prepare_cached("INSERT INTO room_clients (room, client) VALUES (?1, ?2)")
        .context("creating a room")?
        .execute([&room.room, first_client])
        .context("creating a room")?;
    save_group_state(conn, group)
}

fn save_group_state(conn: &Connection, group: &GroupSnapshot) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO room_groups (room, epoch, snapshot, group_info) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (room) DO UPDATE SET epoch = ?2, snapshot = ?3, group_info = ?4",
    )
    .context("saving the group state")?
    .execute(params![
        group.room,
        opaque(group.epoch),
        group.snapshot,
        group.group_info
    ])
    .map_err(|e| match violation(&e) {
        Some(Violation::ForeignKey) => StoreError::NotFound("room of a group state".into()),
        _ => backend("saving the group state", &e),
    })?;
    Ok(())
}

pub(super) fn group_state(conn: &Connection, room: &str) -> Result<Option<GroupSnapshot>> {
    conn.prepare_cached("SELECT room, epoch, snapshot, group_info FROM room_groups WHERE room = ?1")
        .context("reading the group state")?
        .query_row([room], |row| {
            Ok(GroupSnapshot {
                room: row.get(0)?,
                epoch: from_opaque(row.get(1)?),
                snapshot: row.get(2)?,
                group_info: row.get(3)?,
            })
        })
        .optional()
        .context("reading the group state")
}

pub(super) fn room(conn: &Connection, room: &str) -> Result<Option<RoomRecord>> {
    conn.prepare_cached("SELECT room, hub, epoch, created_at FROM rooms WHERE room = ?1")
        .context("reading a room")?
        .query_row([room], room_record)
        .optional()
        .context("reading a room")
}

pub(super) fn room_clients(conn: &Connection, room: &str) -> Result<Vec<String>> {
    conn.prepare_cached("SELECT client FROM room_clients WHERE room = ?1 ORDER BY client")
        .context("reading a room's clients")?
        .query_map([room], |row| row.get(0))
        .and_then(Iterator::collect)
        .context("reading a room's clients")
}

pub(super) fn room_domains(conn: &Connection, room: &str) -> Result<Vec<String>> {
    conn.prepare_cached("SELECT domain FROM room_domains WHERE room = ?1 ORDER BY domain")
        .context("reading a room's domains")?
        .query_map([room], |row| row.get(0))
        .and_then(Iterator::collect)
        .context("reading a room's domains")
}

pub(super) fn hub_shares_room_with(conn: &Connection, hub: &str, domain: &str) -> Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM rooms r JOIN room_domains d ON d.room = r.room
                        WHERE r.hub = ?1 AND d.domain = ?2)",
    )
    .context("checking for a shared room")?
    .query_row([hub, domain], |row| row.get(0))
    .context("checking for a shared room")
}

pub(super) fn has_room_hubbed_by(conn: &Connection, hub: &str) -> Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM rooms WHERE hub = ?1)")
        .context("checking for a room with that hub")?
        .query_row([hub], |row| row.get(0))
        .context("checking for a room with that hub")
}

pub(super) fn user_rooms(conn: &Connection, user: &str) -> Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT DISTINCT rc.room FROM room_clients rc JOIN clients c ON c.client = rc.client
         WHERE c.user = ?1 ORDER BY rc.room",
    )
    .context("reading a user's rooms")?
    .query_map([user], |row| row.get(0))
    .and_then(Iterator::collect)
    .context("reading a user's rooms")
}

pub(super) fn dedup_seen(conn: &Connection, scope: &str, key: &[u8; 32]) -> Result<Option<u64>> {
    conn.prepare_cached("SELECT accepted_at FROM dedup WHERE scope = ?1 AND key = ?2")
        .context("checking a dedup key")?
        .query_row(params![scope, &key[..]], |row| row.get(0))
        .optional()
        .context("checking a dedup key")
}

pub(super) fn echo_mark(conn: &Connection, room: &str, hash: &[u8; 32]) -> Result<Option<String>> {
    conn.prepare_cached("SELECT client FROM echo_marks WHERE room = ?1 AND hash = ?2")
        .context("reading an echo mark")?
        .query_row(params![room, &hash[..]], |row| row.get(0))
        .optional()
        .context("reading an echo mark")
}

/// Applies `batch` in the order its documentation gives: the checks before any
/// effect, so a batch that fails a check leaves nothing behind; an error rolls back
/// the caller's savepoint.
pub(super) fn apply(conn: &Connection, batch: &Batch) -> Result<BatchOutcome> {
    if let Some(dedup) = &batch.dedup {
        let seen: Option<u64> = conn
            .prepare_cached("SELECT accepted_at FROM dedup WHERE scope = ?1 AND key = ?2")
            .context("checking the dedup key")?
            .query_row(params![dedup.scope, &dedup.key[..]], |row| row.get(0))
            .optional()
            .context("checking the dedup key")?;
        if let Some(accepted_at) = seen {
            return Ok(BatchOutcome::Duplicate { accepted_at });
        }
    }
    if let Some(check) = &batch.epoch {
        let current: i64 = conn
            .prepare_cached("SELECT epoch FROM rooms WHERE room = ?1")
            .context("checking the epoch")?
            .query_row([&check.room], |row| row.get(0))
            .optional()
            .context("checking the epoch")?
            .ok_or_else(|| StoreError::NotFound("room of the epoch check".into()))?;
        let current = from_opaque(current);
        if current != check.expected {
            return Ok(BatchOutcome::WrongEpoch { current });
        }
        conn.prepare_cached("UPDATE rooms SET epoch = ?2 WHERE room = ?1")
            .context("advancing the epoch")?
            .execute(params![check.room, opaque(check.advance_to)])
            .context("advancing the epoch")?;
    }
    if let Some(room) = &batch.ensure_room {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO rooms (room, hub, epoch, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .context("ensuring the room")?
        .execute(params![
            room.room,
            room.hub,
            opaque(room.epoch),
            opaque(room.created_at)
        ])
        .context("ensuring the room")?;
    }
    change_membership(conn, batch)?;
    if let Some(group) = &batch.group_state {
        save_group_state(conn, group)?;
    }
    let woken = deliver(conn, &batch.deliveries, batch.accepted_at)?;
    queue_outbound(conn, batch)?;
    let mut mark = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO echo_marks (room, hash, client, created_at)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .context("recording echo marks")?;
    for (room, hash, client) in &batch.echo_marks {
        mark.execute(params![room, &hash[..], client, ordered(batch.accepted_at)])
            .context("recording echo marks")?;
    }
    let mut forget = conn
        .prepare_cached("DELETE FROM key_package_routes WHERE reference = ?1")
        .context("forgetting KeyPackage routes")?;
    for reference in &batch.forget_key_package_routes {
        forget
            .execute([reference])
            .context("forgetting KeyPackage routes")?;
    }
    if let Some(dedup) = &batch.dedup {
        conn.prepare_cached("INSERT INTO dedup (scope, key, accepted_at) VALUES (?1, ?2, ?3)")
            .context("recording the dedup key")?
            .execute(params![
                dedup.scope,
                &dedup.key[..],
                ordered(batch.accepted_at)
            ])
            .context("recording the dedup key")?;
    }
    Ok(BatchOutcome::Applied { woken })
}

fn change_membership(conn: &Connection, batch: &Batch) -> Result<()> {
    let fk_error = |e: rusqlite::Error| match violation(&e) {
        Some(Violation::ForeignKey) => {
            StoreError::NotFound("room or client of a membership change".into())
        }
        _ => backend("changing room membership", &e),
    };
    let mut add = conn
        .prepare_cached("INSERT OR IGNORE INTO room_clients (room, client) VALUES (?1, ?2)")
        .context("changing room membership")?;
    for (room, client) in &batch.room_clients_add {
        add.execute([room, client]).map_err(fk_error)?;
    }
    let mut remove = conn
        .prepare_cached("DELETE FROM room_clients WHERE room = ?1 AND client = ?2")
        .context("changing room membership")?;
    for (room, client) in &batch.room_clients_remove {
        remove
            .execute([room, client])
            .context("changing room membership")?;
    }
    let mut add = conn
        .prepare_cached("INSERT OR IGNORE INTO room_domains (room, domain) VALUES (?1, ?2)")
        .context("changing room membership")?;
    for (room, domain) in &batch.room_domains_add {
        add.execute([room, domain]).map_err(fk_error)?;
    }
    let mut remove = conn
        .prepare_cached("DELETE FROM room_domains WHERE room = ?1 AND domain = ?2")
        .context("changing room membership")?;
    for (room, domain) in &batch.room_domains_remove {
        remove
            .execute([room, domain])
            .context("changing room membership")?;
    }
    Ok(())
}

/// Stores each payload once with an inbox row per distinct client; returns the
/// distinct clients in the order they first appear. `created_at` (ms) is when the
/// payloads entered the inbox: undelivered ones expire counted from it
/// (`crate::retention`).
fn deliver(conn: &Connection, deliveries: &[Delivery], created_at: u64) -> Result<Vec<String>> {
    let mut woken = Vec::new();
    let mut seen = HashSet::new();
    let mut message = conn
        .prepare_cached(
            "INSERT INTO messages (room, payload, refcount, created_at)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .context("storing a message")?;
    let mut inbox = conn
        .prepare_cached("INSERT INTO inbox (client, message_id) VALUES (?1, ?2)")
        .context("queueing a message")?;
    for delivery in deliveries {
        let mut recipients = HashSet::new();
        let clients: Vec<&String> = delivery
            .clients
            .iter()
            .filter(|client| recipients.insert(client.as_str()))
            .collect();
        if clients.is_empty() {
            continue;
        }
        // The refcount starts at the number of inbox rows inserted right below;
        // this is the only place inbox rows are created.
        let refcount = i64::try_from(clients.len()).unwrap_or(i64::MAX);
        message
            .execute(params![
                delivery.room,
                delivery.payload,
                refcount,
                ordered(created_at)
            ])
            .map_err(|e| match violation(&e) {
                Some(Violation::ForeignKey) => StoreError::NotFound("room of a delivery".into()),
                _ => backend("storing a message", &e),
            })?;
        let message_id = conn.last_insert_rowid();
        for client in clients {
            inbox
                .execute(params![client, message_id])
                .map_err(|e| match violation(&e) {
                    Some(Violation::ForeignKey) => {
                        StoreError::NotFound("client of a delivery".into())
                    }
                    _ => backend("queueing a message", &e),
                })?;
            if seen.insert(client.as_str()) {
                woken.push(client.clone());
            }
        }
    }
    Ok(woken)
}

fn queue_outbound(conn: &Connection, batch: &Batch) -> Result<()> {
    // Due at once: next_attempt_at 0.
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO outbound
                 (domain, endpoint, room, body, attempts, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, 0, 0, ?5)",
        )
        .context("queueing outbound requests")?;
    for request in &batch.outbound {
        insert
            .execute(params![
                request.domain,
                request.endpoint,
                request.room,
                request.body,
                ordered(batch.accepted_at)
            ])
            .context("queueing outbound requests")?;
    }
    Ok(())
}

fn room_record(row: &Row<'_>) -> rusqlite::Result<RoomRecord> {
    Ok(RoomRecord {
        room: row.get(0)?,
        hub: row.get(1)?,
        epoch: from_opaque(row.get(2)?),
        created_at: from_opaque(row.get(3)?),
    })
}
