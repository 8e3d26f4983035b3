//! Moderation state: suspensions, notices, remote bans and the moderation log.

use rusqlite::{Connection, Row, params};

use super::convert::{Context, Violation, backend, ordered, violation};
use crate::store::{
    ActionKind, LogRecord, ModerationAction, NoticeRecord, ReportStatus, Result, Sanction,
    Sanctions, StoreError,
};

pub(super) fn moderate(conn: &Connection, a: &ModerationAction) -> Result<()> {
    let at = ordered(a.at);
    let changed = match a.kind {
        ActionKind::Warn => conn
            .prepare_cached(
                "INSERT INTO account_notices (user, created_at, text) VALUES (?1, ?2, ?3)",
            )
            .context("storing a notice")?
            .execute(params![a.target, at, a.reason])
            .context("storing a notice")?,
        ActionKind::Suspend => conn
            .prepare_cached(
                "INSERT INTO account_suspensions (user, reason, since) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user) DO UPDATE SET reason = excluded.reason",
            )
            .context("suspending a user")?
            .execute(params![a.target, a.reason, at])
            .context("suspending a user")?,
        ActionKind::Unsuspend => conn
            .prepare_cached("DELETE FROM account_suspensions WHERE user = ?1")
            .context("unsuspending a user")?
            .execute([&a.target])
            .context("unsuspending a user")?,
        ActionKind::BanUser | ActionKind::BanDomain => {
            let kind = if a.kind == ActionKind::BanUser {
                "user"
            } else {
                "domain"
            };
            conn.prepare_cached(
                "INSERT INTO remote_bans (target, kind, reason, since) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (target) DO UPDATE SET reason = excluded.reason",
            )
            .context("storing a ban")?
            .execute(params![a.target, kind, a.reason, at])
            .map_err(|e| match violation(&e) {
                Some(Violation::Unique) => StoreError::Conflict("ban".into()),
                _ => backend("storing a ban", &e),
            })?
        }
        ActionKind::UnbanUser | ActionKind::UnbanDomain => {
            let kind = if a.kind == ActionKind::UnbanUser {
                "user"
            } else {
                "domain"
            };
            conn.prepare_cached("DELETE FROM remote_bans WHERE target = ?1 AND kind = ?2")
                .context("lifting a ban")?
                .execute(params![a.target, kind])
                .context("lifting a ban")?
        }
        ActionKind::Dismiss => 1,
    };
    if changed == 0 {
        return Err(StoreError::NotFound(match a.kind {
            ActionKind::Unsuspend => "suspension".into(),
            _ => "ban".into(),
        }));
    }
    if let Some(report) = a.report {
        let status = if a.kind == ActionKind::Dismiss {
            ReportStatus::Dismissed
        } else {
            ReportStatus::Actioned
        };
        let resolution = if a.kind == ActionKind::Dismiss {
            format!("dismissed: {}", a.reason)
        } else {
            format!("{} {}: {}", a.kind.name(), a.target, a.reason)
        };
        super::abuse::resolve_report(conn, report, status, &resolution, a.at)?;
    }
    conn.prepare_cached(
        "INSERT INTO moderation_log (at, moderator, action, target, reason, report)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .context("logging a moderation action")?
    .execute(params![
        at,
        a.moderator,
        a.kind.name(),
        a.target,
        a.reason,
        a.report.map(ordered)
    ])
    .context("logging a moderation action")?;
    Ok(())
}

pub(super) fn sanctions(conn: &Connection) -> Result<Sanctions> {
    let sanction = |row: &Row<'_>| -> rusqlite::Result<Sanction> {
        Ok(Sanction {
            target: row.get(0)?,
            reason: row.get(1)?,
            since: row.get::<_, i64>(2)?.unsigned_abs(),
        })
    };
    let suspended_users = conn
        .prepare_cached("SELECT user, reason, since FROM account_suspensions ORDER BY since")
        .context("listing suspensions")?
        .query_map([], sanction)
        .context("listing suspensions")?
        .collect::<rusqlite::Result<_>>()
        .context("listing suspensions")?;
    let mut out = Sanctions {
        suspended_users,
        ..Sanctions::default()
    };
    for (kind, list) in [
        ("user", &mut out.banned_users),
        ("domain", &mut out.banned_domains),
    ] {
        *list = conn
            .prepare_cached(
                "SELECT target, reason, since FROM remote_bans WHERE kind = ?1 ORDER BY since",
            )
            .context("listing bans")?
            .query_map([kind], sanction)
            .context("listing bans")?
            .collect::<rusqlite::Result<_>>()
            .context("listing bans")?;
    }
    Ok(out)
}

pub(super) fn notices(conn: &Connection, user: &str) -> Result<Vec<NoticeRecord>> {
    conn.prepare_cached(
        "SELECT id, created_at, text, read_at FROM account_notices WHERE user = ?1 ORDER BY id",
    )
    .context("listing notices")?
    .query_map([user], |row| {
        Ok(NoticeRecord {
            id: row.get::<_, i64>(0)?.unsigned_abs(),
            created_at: row.get::<_, i64>(1)?.unsigned_abs(),
            text: row.get(2)?,
            read_at: row.get::<_, Option<i64>>(3)?.map(i64::unsigned_abs),
        })
    })
    .context("listing notices")?
    .collect::<rusqlite::Result<_>>()
    .context("listing notices")
}

pub(super) fn mark_notices_read(
    conn: &Connection,
    user: &str,
    up_to: u64,
    now: u64,
) -> Result<u64> {
    let n = conn
        .prepare_cached(
            "UPDATE account_notices SET read_at = ?3
             WHERE user = ?1 AND id <= ?2 AND read_at IS NULL",
        )
        .context("marking notices read")?
        .execute(params![user, ordered(up_to), ordered(now)])
        .context("marking notices read")?;
    Ok(n as u64)
}

pub(super) fn moderation_log(conn: &Connection, limit: u32) -> Result<Vec<LogRecord>> {
    conn.prepare_cached(
        "SELECT id, at, moderator, action, target, reason, report FROM moderation_log
         ORDER BY id DESC LIMIT ?1",
    )
    .context("reading the moderation log")?
    .query_map([limit], |row| {
        let action: String = row.get(3)?;
        let kind = ActionKind::parse(&action).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                Box::<dyn std::error::Error + Send + Sync>::from(format!(
                    "unknown moderation action {action:?}"
                )),
            )
        })?;
        Ok(LogRecord {
            id: row.get::<_, i64>(0)?.unsigned_abs(),
            action: ModerationAction {
                kind,
                at: row.get::<_, i64>(1)?.unsigned_abs(),
                moderator: row.get(2)?,
                target: row.get(4)?,
                reason: row.get(5)?,
                report: row.get::<_, Option<i64>>(6)?.map(i64::unsigned_abs),
            },
        })
    })
    .context("reading the moderation log")?
    .collect::<rusqlite::Result<_>>()
    .context("reading the moderation log")
}

pub(super) fn expire(conn: &Connection, log_before: u64, read_before: u64) -> Result<u64> {
    let a = conn
        .prepare_cached("DELETE FROM moderation_log WHERE at < ?1")
        .context("expiring the moderation log")?
        .execute([ordered(log_before)])
        .context("expiring the moderation log")?;
    let b = conn
        .prepare_cached("DELETE FROM account_notices WHERE read_at < ?1")
        .context("expiring read notices")?
        .execute([ordered(read_before)])
        .context("expiring read notices")?;
    Ok((a + b) as u64)
}
