//! Retention: deleting what the provider no longer needs (`docs/PRIVACY.md`).
//!
//! Acked inbox items are deleted on ack (`queues::ack` and the `inbox_release`
//! trigger); dedup keys, echo marks, link codes and KeyPackage routes by
//! `queues::expire`. This module deletes the rest that only time ends:
//! inbox items nobody fetched, outbound requests a peer never took, old reports.

use rusqlite::{Connection, params};

use super::convert::{Context, ordered};
use crate::store::{Result, RetentionCutoffs, RetentionExpired};

pub(super) fn expire_retained(
    conn: &Connection,
    cutoffs: &RetentionCutoffs,
) -> Result<RetentionExpired> {
    // The `inbox_release` trigger drops each payload with its last inbox row. A
    // payload's inbox rows all have its age, so none is left dangling.
    let inbox_items = conn
        .prepare_cached(
            "DELETE FROM inbox WHERE message_id IN
                 (SELECT id FROM messages WHERE created_at < ?1)",
        )
        .context("expiring undelivered inbox items")?
        .execute([ordered(cutoffs.undelivered_before_ms)])
        .context("expiring undelivered inbox items")?;

    let outbound: Vec<(String, u64)> = conn
        .prepare_cached(
            "SELECT domain, count(*) FROM outbound WHERE created_at < ?1
             GROUP BY domain ORDER BY domain",
        )
        .context("expiring outbound requests")?
        .query_map([ordered(cutoffs.outbound_before_ms)], |row| {
            Ok((row.get(0)?, row.get::<_, i64>(1)?.unsigned_abs()))
        })
        .and_then(Iterator::collect)
        .context("expiring outbound requests")?;
    if !outbound.is_empty() {
        conn.prepare_cached("DELETE FROM outbound WHERE created_at < ?1")
            .context("expiring outbound requests")?
            .execute([ordered(cutoffs.outbound_before_ms)])
            .context("expiring outbound requests")?;
    }

    let reports = conn
        .prepare_cached("DELETE FROM abuse_reports WHERE received_at < ?1")
        .context("expiring abuse reports")?
        .execute(params![ordered(cutoffs.reports_before_ms)])
        .context("expiring abuse reports")?;

    Ok(RetentionExpired {
        inbox_items: count(inbox_items),
        outbound,
        reports: count(reports),
    })
}

fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use crate::store::{
        Batch, ClientRecord, Delivery, GroupSnapshot, NewOutbound, NewReport, ReportRole,
        RetentionCutoffs, RoomRecord, Store,
    };

    const ROOM: &str = "mimi://a.example/r/room";

    fn store(dir: &tempfile::TempDir) -> SqliteStore {
        let s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        for client in ["u/0", "u/1"] {
            let record = ClientRecord {
                client: client.into(),
                user: "u".into(),
                signature_key: vec![1; 32],
                certificate: vec![2; 8],
                created_at: 1,
            };
            if client == "u/0" {
                s.create_account(&record).unwrap();
            } else {
                s.put_link_code("u", &[1; 32], 100).unwrap();
                s.add_client(&record, &[1; 32], 10).unwrap();
            }
        }
        let room = RoomRecord {
            room: ROOM.into(),
            hub: "a.example".into(),
            epoch: 0,
            created_at: 1,
        };
        let group = GroupSnapshot {
            room: ROOM.into(),
            epoch: 0,
            snapshot: vec![1],
            group_info: vec![],
        };
        s.create_room(&room, "u/0", &group).unwrap();
        s
    }

    /// A batch at `at` ms: one payload for both clients, one request to `peer`.
    fn traffic(at: u64, peer: &str) -> Batch {
        Batch {
            deliveries: vec![Delivery {
                room: ROOM.into(),
                clients: vec!["u/0".into(), "u/1".into()],
                payload: format!("payload {at}").into_bytes(),
            }],
            outbound: vec![NewOutbound {
                domain: peer.into(),
                endpoint: "notify".into(),
                room: ROOM.into(),
                body: vec![0; 4],
            }],
            accepted_at: at,
            ..Batch::default()
        }
    }

    fn report(at: u64, digest: u8) -> NewReport {
        NewReport {
            received_at: at,
            role: ReportRole::Hub,
            room: ROOM.into(),
            hub: "a.example".into(),
            reporter: None,
            reporter_domain: "b.example".into(),
            alleged_abuser: "mimi://a.example/u/u".into(),
            reason: 1,
            note: String::new(),
            messages: vec![],
            digest: [digest; 32],
        }
    }

    fn count(dir: &tempfile::TempDir, table: &str) -> i64 {
        let conn = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn what_is_older_than_the_cutoffs_goes_and_the_rest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.apply(traffic(1_000, "b.example")).unwrap();
        s.apply(traffic(1_500, "c.example")).unwrap();
        s.apply(traffic(3_000, "b.example")).unwrap();
        s.record_report(&report(1_000, 1)).unwrap();
        s.record_report(&report(3_000, 2)).unwrap();
        // u/1 acked the first payload: only u/0's copy is left of it.
        let first = s.inbox("u/1", 0, 1).unwrap()[0].seq;
        s.ack("u/1", first).unwrap();

        let nothing = s.expire_retained(&RetentionCutoffs::default()).unwrap();
        assert_eq!(nothing.total(), 0);

        let expired = s
            .expire_retained(&RetentionCutoffs {
                undelivered_before_ms: 2_000,
                outbound_before_ms: 2_000,
                reports_before_ms: 2_000,
            })
            .unwrap();
        assert_eq!(expired.inbox_items, 3, "u/0's two and u/1's one");
        assert_eq!(
            expired.outbound,
            [("b.example".to_owned(), 1), ("c.example".to_owned(), 1)]
        );
        assert_eq!(expired.reports, 1);
        // The payloads went with their last inbox rows; the newest stays whole.
        assert_eq!(count(&dir, "messages"), 1);
        assert_eq!(count(&dir, "inbox"), 2);
        assert_eq!(count(&dir, "outbound"), 1);
        assert_eq!(count(&dir, "abuse_reports"), 1);
        for client in ["u/0", "u/1"] {
            let left = s.inbox(client, 0, 10).unwrap();
            assert_eq!(left.len(), 1);
            assert_eq!(left[0].payload, b"payload 3000");
        }
        assert_eq!(s.due_outbound(u64::MAX, 10).unwrap().len(), 1);
    }
}
