//! Abuse reports: stored once per role and digest, listed for moderators, closed
//! with a resolution.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::convert::{Context, Violation, backend, ordered, violation};
use crate::store::{
    NewReport, RecordedReport, ReportRecord, ReportRole, ReportStatus, ReportedMessage, Result,
    StoreError,
};

fn role_name(role: ReportRole) -> &'static str {
    match role {
        ReportRole::Hub => "hub",
        ReportRole::Accused => "accused",
    }
}

fn status_name(status: ReportStatus) -> &'static str {
    match status {
        ReportStatus::Open => "open",
        ReportStatus::Dismissed => "dismissed",
        ReportStatus::Actioned => "actioned",
    }
}

pub(super) fn record_report(conn: &Connection, r: &NewReport) -> Result<RecordedReport> {
    let existing = conn
        .prepare_cached("SELECT id FROM abuse_reports WHERE role = ?1 AND digest = ?2")
        .context("looking up a report")?
        .query_row(params![role_name(r.role), &r.digest[..]], |row| {
            row.get::<_, i64>(0)
        })
        .optional()
        .context("looking up a report")?;
    if let Some(id) = existing {
        return Ok(RecordedReport::Duplicate(id.unsigned_abs()));
    }
    let messages = serde_json::to_string(&r.messages)
        .map_err(|e| StoreError::Backend(format!("encoding reported messages: {e}")))?;
    conn.prepare_cached(
        "INSERT INTO abuse_reports (received_at, role, room, hub, reporter, reporter_domain,
             alleged_abuser, reason, note, messages, digest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .context("storing a report")?
    .execute(params![
        ordered(r.received_at),
        role_name(r.role),
        r.room,
        r.hub,
        r.reporter,
        r.reporter_domain,
        r.alleged_abuser,
        r.reason,
        r.note,
        messages,
        &r.digest[..],
    ])
    .map_err(|e| match violation(&e) {
        Some(Violation::Unique) => StoreError::Conflict("report".into()),
        _ => backend("storing a report", &e),
    })?;
    Ok(RecordedReport::New(conn.last_insert_rowid().unsigned_abs()))
}

const COLUMNS: &str = "id, received_at, role, room, hub, reporter, reporter_domain, alleged_abuser,
    reason, note, messages, digest, status, resolution, resolved_at";

fn record(row: &Row<'_>) -> rusqlite::Result<ReportRecord> {
    let bad = |i: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            Box::<dyn std::error::Error + Send + Sync>::from(what),
        )
    };
    let role = match row.get::<_, String>(2)?.as_str() {
        "hub" => ReportRole::Hub,
        "accused" => ReportRole::Accused,
        other => return Err(bad(2, format!("unknown report role {other:?}"))),
    };
    let status = match row.get::<_, String>(12)?.as_str() {
        "open" => ReportStatus::Open,
        "dismissed" => ReportStatus::Dismissed,
        "actioned" => ReportStatus::Actioned,
        other => return Err(bad(12, format!("unknown report status {other:?}"))),
    };
    let messages: Vec<ReportedMessage> = serde_json::from_str(&row.get::<_, String>(10)?)
        .map_err(|e| bad(10, format!("reported messages: {e}")))?;
    let digest: Vec<u8> = row.get(11)?;
    let digest: [u8; 32] = digest
        .try_into()
        .map_err(|_| bad(11, "report digest is not 32 bytes".into()))?;
    Ok(ReportRecord {
        id: row.get::<_, i64>(0)?.unsigned_abs(),
        report: NewReport {
            received_at: row.get::<_, i64>(1)?.unsigned_abs(),
            role,
            room: row.get(3)?,
            hub: row.get(4)?,
            reporter: row.get(5)?,
            reporter_domain: row.get(6)?,
            alleged_abuser: row.get(7)?,
            reason: row.get(8)?,
            note: row.get(9)?,
            messages,
            digest,
        },
        status,
        resolution: row.get(13)?,
        resolved_at: row.get::<_, Option<i64>>(14)?.map(i64::unsigned_abs),
    })
}

pub(super) fn reports(
    conn: &Connection,
    status: Option<ReportStatus>,
    limit: u32,
) -> Result<Vec<ReportRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM abuse_reports WHERE ?1 IS NULL OR status = ?1
         ORDER BY id DESC LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql).context("listing reports")?;
    let rows = stmt
        .query_map(params![status.map(status_name), limit], record)
        .context("listing reports")?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .context("listing reports")
}

pub(super) fn report(conn: &Connection, id: u64) -> Result<Option<ReportRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM abuse_reports WHERE id = ?1");
    conn.prepare_cached(&sql)
        .context("reading a report")?
        .query_row([ordered(id)], record)
        .optional()
        .context("reading a report")
}

pub(super) fn resolve_report(
    conn: &Connection,
    id: u64,
    status: ReportStatus,
    resolution: &str,
    now: u64,
) -> Result<()> {
    let rows = conn
        .prepare_cached(
            "UPDATE abuse_reports SET status = ?2, resolution = ?3, resolved_at = ?4
             WHERE id = ?1",
        )
        .context("resolving a report")?
        .execute(params![
            ordered(id),
            status_name(status),
            resolution,
            ordered(now)
        ])
        .context("resolving a report")?;
    if rows == 0 {
        return Err(StoreError::NotFound("report".into()));
    }
    Ok(())
}
