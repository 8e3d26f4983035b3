//! The Signal channel's key directory: identities, prekeys, and declared
//! protocols. Each function runs inside one writer (or reader) transaction.

use rusqlite::{Connection, OptionalExtension, params};

use super::convert::{Context, Violation, backend, violation};
use crate::store::{
    ClaimedBundle, ClaimedKyber, ClientProtocols, OneTimePreKeyRecord, PreKeyKind, PublishOutcome,
    Result, SignalIdentity, SignalPreKeyStatus, SignalPreKeys, SignedPreKeyRecord, StoreError,
};

/// The protocol names the store derives (the wire constants, repeated here so the
/// store does not depend on the wire crate's Signal module).
const MLS10: &str = "mls10";
const SIGNAL: &str = "signal";

pub(super) fn publish_signal_prekeys(
    conn: &Connection,
    client: &str,
    upload: &SignalPreKeys,
    max_held: u32,
) -> Result<PublishOutcome> {
    // Every check comes before the first write: a refused upload changes nothing.
    let user: String = conn
        .prepare_cached("SELECT user FROM clients WHERE client = ?1")
        .context("publishing prekeys")?
        .query_row([client], |row| row.get(0))
        .optional()
        .context("publishing prekeys")?
        .ok_or_else(|| StoreError::NotFound("client".into()))?;
    let identity = &upload.identity;
    let current = signal_identity(conn, client)?;
    let reset = current.as_ref() != Some(identity);
    if reset && upload.signed_prekey.is_none() {
        return Ok(PublishOutcome::NeedsSignedPreKey);
    }
    if reset && device_id_taken(conn, &user, identity.device_id, client)? {
        return Ok(PublishOutcome::DeviceIdTaken {
            device_id: identity.device_id,
        });
    }
    // After a reset the client holds nothing of the old identity.
    let held = if reset {
        SignalPreKeyStatus::default()
    } else {
        status(conn, client)?
    };
    let one_time = upload.one_time.iter().map(|k| (k.id, k.public.as_slice()));
    let kyber = upload.kyber.iter().map(|k| (k.id, k.public.as_slice()));
    for (kind, held, new) in [
        (
            PreKeyKind::OneTime,
            held.one_time,
            new_prekeys(conn, "signal_one_time_prekeys", client, reset, one_time)?,
        ),
        (
            PreKeyKind::Kyber,
            held.kyber,
            new_prekeys(conn, "signal_kyber_prekeys", client, reset, kyber)?,
        ),
    ] {
        let new = match new {
            NewPreKeys::Count(n) => n,
            NewPreKeys::Reused(id) => return Ok(PublishOutcome::IdReused { kind, id }),
        };
        let would_hold = u64::from(held).saturating_add(new);
        // Only growth is refused: a client over a lowered limit may re-send.
        if new > 0 && would_hold > u64::from(max_held) {
            return Ok(PublishOutcome::TooMany { kind, would_hold });
        }
    }

    if reset {
        // Nothing signed by (or meant for) the old identity survives.
        delete_prekeys(conn, client)?;
        conn.prepare_cached(
            "INSERT INTO signal_identities
                 (client, user, device_id, registration_id, identity_key)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (client) DO UPDATE SET
                 device_id = excluded.device_id,
                 registration_id = excluded.registration_id,
                 identity_key = excluded.identity_key",
        )
        .context("storing a Signal identity")?
        .execute(params![
            client,
            user,
            identity.device_id,
            identity.registration_id,
            identity.identity_key
        ])
        .context("storing a Signal identity")?;
    }
    if let Some(k) = &upload.signed_prekey {
        replace_signed(conn, "signal_signed_prekeys", client, k)?;
    }
    if let Some(k) = &upload.last_resort_kyber {
        replace_signed(conn, "signal_last_resort_kyber_prekeys", client, k)?;
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO signal_one_time_prekeys (client, id, public) VALUES (?1, ?2, ?3)
             ON CONFLICT (client, id) DO NOTHING",
        )
        .context("adding one-time prekeys")?;
    for k in &upload.one_time {
        insert
            .execute(params![client, k.id, k.public])
            .context("adding one-time prekeys")?;
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO signal_kyber_prekeys (client, id, public, signature)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (client, id) DO NOTHING",
        )
        .context("adding ML-KEM prekeys")?;
    for k in &upload.kyber {
        insert
            .execute(params![client, k.id, k.public, k.signature])
            .context("adding ML-KEM prekeys")?;
    }
    Ok(PublishOutcome::Published(status(conn, client)?))
}

/// How many of an upload's one-time prekeys the client does not hold yet, or the
/// first id it holds with another key.
enum NewPreKeys {
    Count(u64),
    Reused(u32),
}

fn new_prekeys<'a>(
    conn: &Connection,
    table: &'static str,
    client: &str,
    reset: bool,
    keys: impl Iterator<Item = (u32, &'a [u8])>,
) -> Result<NewPreKeys> {
    let mut new = 0_u64;
    for (id, public) in keys {
        // After a reset nothing the client held counts.
        match held_public(conn, table, client, id)? {
            Some(held) if !reset && held != public => return Ok(NewPreKeys::Reused(id)),
            // Re-sent (a retried upload): harmless.
            Some(_) if !reset => {}
            _ => new += 1,
        }
    }
    Ok(NewPreKeys::Count(new))
}

fn device_id_taken(conn: &Connection, user: &str, device_id: u32, client: &str) -> Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM signal_identities
                        WHERE user = ?1 AND device_id = ?2 AND client != ?3)",
    )
    .context("checking a device id")?
    .query_row(params![user, device_id, client], |row| row.get(0))
    .context("checking a device id")
}

pub(super) fn status(conn: &Connection, client: &str) -> Result<SignalPreKeyStatus> {
    conn.prepare_cached(
        "SELECT
             (SELECT count(*) FROM signal_one_time_prekeys WHERE client = ?1),
             (SELECT count(*) FROM signal_kyber_prekeys WHERE client = ?1),
             EXISTS (SELECT 1 FROM signal_signed_prekeys WHERE client = ?1),
             EXISTS (SELECT 1 FROM signal_last_resort_kyber_prekeys WHERE client = ?1)",
    )
    .context("counting prekeys")?
    .query_row([client], |row| {
        Ok(SignalPreKeyStatus {
            one_time: row.get(0)?,
            kyber: row.get(1)?,
            signed_prekey: row.get(2)?,
            last_resort_kyber: row.get(3)?,
        })
    })
    .context("counting prekeys")
}

pub(super) fn signal_identity(conn: &Connection, client: &str) -> Result<Option<SignalIdentity>> {
    conn.prepare_cached(
        "SELECT identity_key, registration_id, device_id FROM signal_identities
         WHERE client = ?1",
    )
    .context("reading a Signal identity")?
    .query_row([client], |row| {
        Ok(SignalIdentity {
            identity_key: row.get(0)?,
            registration_id: row.get(1)?,
            device_id: row.get(2)?,
        })
    })
    .optional()
    .context("reading a Signal identity")
}

pub(super) fn signal_devices(conn: &Connection, user: &str) -> Result<Vec<(String, u32)>> {
    conn.prepare_cached(
        "SELECT i.client, i.device_id
         FROM clients c
         JOIN signal_identities i ON i.client = c.client
         JOIN signal_signed_prekeys s ON s.client = c.client
         WHERE c.user = ?1 AND NOT EXISTS (SELECT 1 FROM client_protocols p
                                           WHERE p.client = c.client AND NOT p.signal)
         ORDER BY c.rowid",
    )
    .context("reading a user's Signal devices")?
    .query_map([user], |row| Ok((row.get(0)?, row.get(1)?)))
    .and_then(Iterator::collect)
    .context("reading a user's Signal devices")
}

pub(super) fn claim_signal_bundles(conn: &Connection, user: &str) -> Result<Vec<ClaimedBundle>> {
    let devices: Vec<(String, SignalIdentity, SignedPreKeyRecord)> = conn
        .prepare_cached(
            "SELECT i.client, i.identity_key, i.registration_id, i.device_id,
                    s.id, s.public, s.signature
             FROM clients c
             JOIN signal_identities i ON i.client = c.client
             JOIN signal_signed_prekeys s ON s.client = c.client
             WHERE c.user = ?1 AND NOT EXISTS (SELECT 1 FROM client_protocols p
                                               WHERE p.client = c.client AND NOT p.signal)
             ORDER BY c.rowid",
        )
        .context("claiming prekey bundles")?
        .query_map([user], |row| {
            Ok((
                row.get(0)?,
                SignalIdentity {
                    identity_key: row.get(1)?,
                    registration_id: row.get(2)?,
                    device_id: row.get(3)?,
                },
                SignedPreKeyRecord {
                    id: row.get(4)?,
                    public: row.get(5)?,
                    signature: row.get(6)?,
                },
            ))
        })
        .and_then(Iterator::collect)
        .context("claiming prekey bundles")?;
    let mut bundles = Vec::with_capacity(devices.len());
    for (client, identity, signed_prekey) in devices {
        let one_time = take_one_time(conn, &client)?;
        let kyber = match take_kyber(conn, &client)? {
            Some(prekey) => Some(ClaimedKyber {
                prekey,
                last_resort: false,
            }),
            None => last_resort_kyber(conn, &client)?.map(|prekey| ClaimedKyber {
                prekey,
                last_resort: true,
            }),
        };
        bundles.push(ClaimedBundle {
            client,
            identity,
            signed_prekey,
            kyber,
            one_time,
        });
    }
    Ok(bundles)
}

pub(super) fn set_client_protocols(
    conn: &Connection,
    client: &str,
    protocols: &[String],
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO client_protocols (client, protocols, signal) VALUES (?1, ?2, ?3)
         ON CONFLICT (client) DO UPDATE SET
             protocols = excluded.protocols, signal = excluded.signal",
    )
    .context("storing a client's protocols")?
    .execute(params![
        client,
        protocols.join(" "),
        protocols.iter().any(|p| p == SIGNAL)
    ])
    .map_err(|e| match violation(&e) {
        Some(Violation::ForeignKey) => StoreError::NotFound("client".into()),
        _ => backend("storing a client's protocols", &e),
    })?;
    Ok(())
}

pub(super) fn user_capabilities(conn: &Connection, user: &str) -> Result<Vec<ClientProtocols>> {
    // One snapshot for the whole answer.
    let tx = conn
        .unchecked_transaction()
        .context("reading capabilities")?;
    let rows: Vec<(String, Option<String>, bool, bool)> = tx
        .prepare_cached(
            "SELECT c.client, p.protocols,
                    EXISTS (SELECT 1 FROM key_packages k WHERE k.client = c.client)
                        OR EXISTS (SELECT 1 FROM room_clients r WHERE r.client = c.client),
                    EXISTS (SELECT 1 FROM signal_signed_prekeys s WHERE s.client = c.client)
             FROM clients c LEFT JOIN client_protocols p ON p.client = c.client
             WHERE c.user = ?1 ORDER BY c.rowid",
        )
        .context("reading capabilities")?
        .query_map([user], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .and_then(Iterator::collect)
        .context("reading capabilities")?;
    Ok(rows
        .into_iter()
        .map(|(client, declared, has_mls, has_signed_prekey)| {
            let protocols = match declared {
                Some(list) => list
                    .split(' ')
                    .filter(|p| !p.is_empty() && (*p != SIGNAL || has_signed_prekey))
                    .map(str::to_owned)
                    .collect(),
                None => [(MLS10, has_mls), (SIGNAL, has_signed_prekey)]
                    .into_iter()
                    .filter(|(_, has)| *has)
                    .map(|(p, _)| p.to_owned())
                    .collect(),
            };
            ClientProtocols { client, protocols }
        })
        .collect())
}

fn delete_prekeys(conn: &Connection, client: &str) -> Result<()> {
    for sql in [
        "DELETE FROM signal_signed_prekeys WHERE client = ?1",
        "DELETE FROM signal_last_resort_kyber_prekeys WHERE client = ?1",
        "DELETE FROM signal_one_time_prekeys WHERE client = ?1",
        "DELETE FROM signal_kyber_prekeys WHERE client = ?1",
    ] {
        conn.prepare_cached(sql)
            .context("deleting prekeys")?
            .execute([client])
            .context("deleting prekeys")?;
    }
    Ok(())
}

/// Replaces the one row of `table` (signed or last-resort prekeys) for `client`.
fn replace_signed(
    conn: &Connection,
    table: &'static str,
    client: &str,
    k: &SignedPreKeyRecord,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO {table} (client, id, public, signature) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (client) DO UPDATE SET
             id = excluded.id, public = excluded.public, signature = excluded.signature"
    );
    conn.prepare_cached(&sql)
        .context("replacing a signed prekey")?
        .execute(params![client, k.id, k.public, k.signature])
        .context("replacing a signed prekey")?;
    Ok(())
}

fn held_public(
    conn: &Connection,
    table: &'static str,
    client: &str,
    id: u32,
) -> Result<Option<Vec<u8>>> {
    let sql = format!("SELECT public FROM {table} WHERE client = ?1 AND id = ?2");
    conn.prepare_cached(&sql)
        .context("reading a prekey")?
        .query_row(params![client, id], |row| row.get(0))
        .optional()
        .context("reading a prekey")
}

fn take_one_time(conn: &Connection, client: &str) -> Result<Option<OneTimePreKeyRecord>> {
    let row: Option<(i64, OneTimePreKeyRecord)> = conn
        .prepare_cached(
            "SELECT seq, id, public FROM signal_one_time_prekeys
             WHERE client = ?1 ORDER BY seq LIMIT 1",
        )
        .context("claiming a one-time prekey")?
        .query_row([client], |row| {
            Ok((
                row.get(0)?,
                OneTimePreKeyRecord {
                    id: row.get(1)?,
                    public: row.get(2)?,
                },
            ))
        })
        .optional()
        .context("claiming a one-time prekey")?;
    let Some((seq, prekey)) = row else {
        return Ok(None);
    };
    conn.prepare_cached("DELETE FROM signal_one_time_prekeys WHERE seq = ?1")
        .context("claiming a one-time prekey")?
        .execute([seq])
        .context("claiming a one-time prekey")?;
    Ok(Some(prekey))
}

fn take_kyber(conn: &Connection, client: &str) -> Result<Option<SignedPreKeyRecord>> {
    let row: Option<(i64, SignedPreKeyRecord)> = conn
        .prepare_cached(
            "SELECT seq, id, public, signature FROM signal_kyber_prekeys
             WHERE client = ?1 ORDER BY seq LIMIT 1",
        )
        .context("claiming an ML-KEM prekey")?
        .query_row([client], |row| {
            Ok((
                row.get(0)?,
                SignedPreKeyRecord {
                    id: row.get(1)?,
                    public: row.get(2)?,
                    signature: row.get(3)?,
                },
            ))
        })
        .optional()
        .context("claiming an ML-KEM prekey")?;
    let Some((seq, prekey)) = row else {
        return Ok(None);
    };
    conn.prepare_cached("DELETE FROM signal_kyber_prekeys WHERE seq = ?1")
        .context("claiming an ML-KEM prekey")?
        .execute([seq])
        .context("claiming an ML-KEM prekey")?;
    Ok(Some(prekey))
}

fn last_resort_kyber(conn: &Connection, client: &str) -> Result<Option<SignedPreKeyRecord>> {
    conn.prepare_cached(
        "SELECT id, public, signature FROM signal_last_resort_kyber_prekeys WHERE client = ?1",
    )
    .context("reading the last-resort ML-KEM prekey")?
    .query_row([client], |row| {
        Ok(SignedPreKeyRecord {
            id: row.get(0)?,
            public: row.get(1)?,
            signature: row.get(2)?,
        })
    })
    .optional()
    .context("reading the last-resort ML-KEM prekey")
}

#[cfg(test)]
mod tests;
