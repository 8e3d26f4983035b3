//! KeyPackages and the routes of claimed ones.

use rusqlite::{Connection, OptionalExtension, params};

use super::accounts::client_exists;
use super::convert::{Context, Violation, backend, ordered, violation};
use crate::store::{KeyPackageRoute, Result, StoreError};

pub(super) fn add_key_packages(
    conn: &Connection,
    client: &str,
    single_use: &[(Vec<u8>, Vec<u8>)],
    last_resort: Option<&(Vec<u8>, Vec<u8>)>,
) -> Result<()> {
    if !client_exists(conn, client)? {
        return Err(StoreError::NotFound("client".into()));
    }
    if last_resort.is_some() {
        conn.prepare_cached("DELETE FROM key_packages WHERE client = ?1 AND last_resort = 1")
            .context("replacing the last-resort KeyPackage")?
            .execute([client])
            .context("replacing the last-resort KeyPackage")?;
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO key_packages (client, reference, bytes, last_resort)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .context("adding KeyPackages")?;
    let packages = single_use.iter().map(|kp| (kp, false));
    for ((reference, bytes), is_last_resort) in packages.chain(last_resort.map(|kp| (kp, true))) {
        insert
            .execute(params![client, reference, bytes, is_last_resort])
            .map_err(|e| match violation(&e) {
                Some(Violation::Unique) => StoreError::Conflict("KeyPackage reference".into()),
                _ => backend("adding KeyPackages", &e),
            })?;
    }
    Ok(())
}

pub(super) fn key_package_status(conn: &Connection, client: &str) -> Result<(u64, bool)> {
    conn.prepare_cached(
        "SELECT
             (SELECT count(*) FROM key_packages WHERE client = ?1 AND last_resort = 0),
             EXISTS (SELECT 1 FROM key_packages WHERE client = ?1 AND last_resort = 1)",
    )
    .context("counting KeyPackages")?
    .query_row([client], |row| Ok((row.get(0)?, row.get(1)?)))
    .context("counting KeyPackages")
}

pub(super) fn claim_key_package(
    conn: &Connection,
    client: &str,
    now: u64,
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    // Single-use ones first, oldest first; the last-resort one sorts after them.
    let claimed: Option<(i64, Vec<u8>, Vec<u8>, bool)> = conn
        .prepare_cached(
            "SELECT id, reference, bytes, last_resort FROM key_packages
             WHERE client = ?1 ORDER BY last_resort, id LIMIT 1",
        )
        .context("claiming a KeyPackage")?
        .query_row([client], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()
        .context("claiming a KeyPackage")?;
    let Some((id, reference, bytes, last_resort)) = claimed else {
        return Ok(None);
    };
    if !last_resort {
        conn.prepare_cached("DELETE FROM key_packages WHERE id = ?1")
            .context("claiming a KeyPackage")?
            .execute([id])
            .context("claiming a KeyPackage")?;
    }
    let route = KeyPackageRoute::Local {
        client: client.to_owned(),
    };
    record_key_package_route(conn, &reference, &route, now)?;
    Ok(Some((reference, bytes)))
}

pub(super) fn record_key_package_route(
    conn: &Connection,
    reference: &[u8],
    route: &KeyPackageRoute,
    now: u64,
) -> Result<()> {
    let (kind, client, domain) = match route {
        KeyPackageRoute::Local { client } => ("local", Some(client), None),
        KeyPackageRoute::Remote { domain } => ("remote", None, Some(domain)),
    };
    // A last-resort KeyPackage is claimed again and again: the latest claim wins.
    conn.prepare_cached(
        "INSERT INTO key_package_routes (reference, kind, client, domain, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (reference) DO UPDATE SET
             kind = excluded.kind, client = excluded.client,
             domain = excluded.domain, created_at = excluded.created_at",
    )
    .context("recording a KeyPackage route")?
    .execute(params![reference, kind, client, domain, ordered(now)])
    .context("recording a KeyPackage route")?;
    Ok(())
}

pub(super) fn key_package_route(
    conn: &Connection,
    reference: &[u8],
) -> Result<Option<KeyPackageRoute>> {
    let row: Option<(String, Option<String>, Option<String>)> = conn
        .prepare_cached("SELECT kind, client, domain FROM key_package_routes WHERE reference = ?1")
        .context("reading a KeyPackage route")?
        .query_row([reference], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()
        .context("reading a KeyPackage route")?;
    match row {
        None => Ok(None),
        Some((kind, Some(client), None)) if kind == "local" => {
            Ok(Some(KeyPackageRoute::Local { client }))
        }
        Some((kind, None, Some(domain))) if kind == "remote" => {
            Ok(Some(KeyPackageRoute::Remote { domain }))
        }
        Some(_) => Err(StoreError::Backend(
            "corrupt KeyPackage route (kind does not match its columns)".into(),
        )),
    }
}
