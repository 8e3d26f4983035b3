//! Metadata minimisation, checked on real providers after real traffic
//! (`docs/PRIVACY.md`):
//!
//! - every table and column a provider's database holds is in the inventory, and
//!   everything the inventory lists exists;
//! - no plaintext of any message sent is in any file of a provider's data dir;
//! - provider logs (debug level, captured in this binary) name none of the users,
//!   devices or rooms of the session;
//! - retention deletes undelivered inbox items, outbound requests a peer never
//!   took, and old reports once they expire, and nothing before.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use entente_client::files::{NoProgress, Route, SendFileOptions};
use entente_client::{Client, Event, Protocols};
use entente_provider::store::{NewReport, ReportRole};
use entente_testkit::Federation;
use entente_wire::ids::{RoomId, UserId};
use rand::RngCore;
use support::{DEADLINE, random_file, received, sync_until};

const DOMAINS: [&str; 2] = ["a.example", "b.example"];
const DAY_MS: u64 = 86_400_000;

// ---------------------------------------------------------------------------
// Log capture: every event at debug level and above, except the client
// library's own (a device may log its rooms; the provider may not).

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The log buffer; installs the subscriber on first use.
fn logs() -> &'static Buffer {
    static LOGS: OnceLock<Buffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::prelude::*;
        let buffer = Buffer::default();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(buffer.clone())
            .with_ansi(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                *meta.level() <= tracing::Level::DEBUG
                    && !meta.target().starts_with("entente_client")
            }));
        tracing_subscriber::registry().with(layer).init();
        buffer
    })
}

// ---------------------------------------------------------------------------
// A session of traffic.

/// Two providers after a session: an MLS room across both with messages from two
/// devices of one user, a file, a sealed Signal-channel message, and a message
/// sent while the peer was down.
struct Session {
    fed: Federation,
    /// User names, device names and room ids used: no provider log may name one.
    identifiers: Vec<String>,
    /// Plaintexts sent: no provider may store one.
    plaintexts: Vec<Vec<u8>>,
}

fn tag() -> String {
    let mut raw = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

async fn register(fed: &Federation, user: &str, device: &str, p: Protocols) -> Result<Client> {
    let id: UserId = user.parse()?;
    let dir = format!("{}-{device}", id.name());
    Ok(Client::register_with(
        fed.client_options(id.domain().as_str(), &dir)?,
        &id,
        device,
        None,
        p,
    )
    .await?)
}

async fn received_text(client: &mut Client, text: &str) -> Result<()> {
    let want = text.to_owned();
    sync_until(client, text, move |ev| {
        ev.iter().any(|e| match e {
            Event::Message(m) => m.text.as_deref() == Some(want.as_str()),
            Event::Direct(d) => d.text.as_deref() == Some(want.as_str()),
            _ => false,
        })
    })
    .await
}

async fn wait_for_log(needle: &str) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    while !logs().text().contains(needle) {
        if Instant::now() > deadline {
            bail!("no log line with {needle:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn session() -> Result<Session> {
    logs();
    let mut fed = Federation::start(&DOMAINS).await?;
    let t = tag();
    let (ann, ben, cyd) = (
        format!("quillon{t}"),
        format!("varesk{t}"),
        format!("orvint{t}"),
    );
    let (tab, desk, phone, sig) = (
        format!("tabq{t}"),
        format!("deskq{t}"),
        format!("phz{t}"),
        format!("sigz{t}"),
    );
    let mut ann1 = register(
        &fed,
        &format!("{ann}@a.example"),
        &tab,
        Protocols::MlsAndSignal,
    )
    .await?;
    let mut ben1 = register(
        &fed,
        &format!("{ben}@b.example"),
        &phone,
        Protocols::MlsAndSignal,
    )
    .await?;
    let mut cyd1 = register(
        &fed,
        &format!("{cyd}@b.example"),
        &sig,
        Protocols::SignalOnly,
    )
    .await?;

    // A room across both providers; a second device of ann joins it by itself.
    let room = ann1.create_room().await?;
    ann1.invite(&room, ben1.user()).await?;
    sync_until(&mut ben1, "joining", |ev| {
        ev.iter().any(|e| matches!(e, Event::Joined { .. }))
    })
    .await?;
    let mut plaintexts = Vec::new();
    let texts = [
        format!("canary from the tablet {t}"),
        format!("canary from the desk {t}"),
        format!("canary reply {t}"),
    ];
    ann1.send_text(&room, &texts[0], false).await?;
    let code = ann1.link_code().await?;
    let mut ann2 = Client::register(
        fed.client_options("a.example", &format!("{ann}-{desk}"))?,
        ann1.user(),
        &desk,
        Some(&code),
    )
    .await?;
    ann2.join_my_rooms().await?;
    ann2.send_text(&room, &texts[1], false).await?;
    received_text(&mut ben1, &texts[1]).await?;
    ben1.send_text(&room, &texts[2], false).await?;
    received_text(&mut ann1, &texts[2]).await?;
    plaintexts.extend(texts.iter().map(|t| t.clone().into_bytes()));

    // A file, fetched through the hub.
    let dir = fed.root().join("files");
    std::fs::create_dir_all(&dir)?;
    let (path, _) = random_file(&dir, "photo.bin", 200_000, 7)?;
    let sent = ann1
        .send_file(
            &room,
            &path,
            &SendFileOptions::default(),
            Arc::new(NoProgress),
        )
        .await?;
    let file = received(&mut ben1, &room, sent.message_id).await?;
    let out = dir.join("out");
    std::fs::create_dir_all(&out)?;
    ben1.download_file(&file, &out, Route::ViaHub, Arc::new(NoProgress))
        .await?;
    let bytes = std::fs::read(&path)?;
    plaintexts.push(bytes[1000..1064].to_vec());

    // A sealed message over the Signal channel.
    let sealed = format!("sealed canary {t}");
    ann1.send_direct_text(cyd1.user(), &sealed, false).await?;
    received_text(&mut cyd1, &sealed).await?;
    plaintexts.push(sealed.into_bytes());

    // The peer down: the hub's outbound worker retries (and logs why).
    fed.stop("b.example").await?;
    let late = format!("canary while b was down {t}");
    ann1.send_text(&room, &late, false).await?;
    wait_for_log("peer unreachable").await?;
    fed.restart("b.example").await?;
    received_text(&mut ben1, &late).await?;
    plaintexts.push(late.into_bytes());
    received_text(&mut ann2, &texts[2]).await?;

    Ok(Session {
        fed,
        identifiers: vec![
            ann,
            ben,
            cyd,
            tab,
            desk,
            phone,
            sig,
            room.local_part().to_owned(),
        ],
        plaintexts,
    })
}

// ---------------------------------------------------------------------------
// The inventory.

/// `(table, column)` pairs `docs/PRIVACY.md` section 2 lists: a `### \`table\``
/// heading, then table rows whose first cell is `` `column` ``.
fn inventory() -> BTreeSet<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/PRIVACY.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("2. The database"))
        .expect("PRIVACY.md has a section \"## 2. The database\"");
    let mut listed = BTreeSet::new();
    let mut table: Option<String> = None;
    for line in section.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            table = Some(heading.trim().trim_matches('`').to_owned());
        } else if let (Some(t), Some(row)) = (&table, line.strip_prefix("| `")) {
            let column = row.split('`').next().unwrap().to_owned();
            listed.insert((t.clone(), column));
        }
    }
    listed
}

/// `(table, column)` pairs of the database at `path`.
fn schema(path: &Path) -> BTreeSet<(String, String)> {
    let conn = read_only(path);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let mut columns = BTreeSet::new();
    for t in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{t}')"))
            .unwrap();
        for c in stmt.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            columns.insert((t.clone(), c.unwrap()));
        }
    }
    columns
}

fn read_only(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap()
}

fn count(path: &Path, sql: &str) -> i64 {
    read_only(path).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Every file under `dir`, concatenated (database, WAL, keys, blobs).
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.extend(b);
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_data_is_the_inventory_without_plaintext_and_logs_name_no_one() {
    let s = session().await.unwrap();
    let listed = inventory();
    assert!(listed.len() > 100, "the inventory parses: {listed:?}");

    for domain in DOMAINS {
        let db = s.fed.database_path(domain).unwrap();
        let stored = schema(&db);
        let unlisted: Vec<_> = stored.difference(&listed).collect();
        let missing: Vec<_> = listed.difference(&stored).collect();
        assert!(
            unlisted.is_empty(),
            "{domain} stores columns docs/PRIVACY.md does not list (table, column): {unlisted:?}"
        );
        assert!(
            missing.is_empty(),
            "docs/PRIVACY.md lists columns {domain} does not have (table, column): {missing:?}"
        );

        // The scan sees real data (user names are stored), and no plaintext.
        let bytes = all_bytes(db.parent().unwrap());
        let local = if domain == "a.example" { 0 } else { 1 };
        assert!(
            contains(&bytes, s.identifiers[local].as_bytes()),
            "the scan reads {domain}'s data"
        );
        for text in &s.plaintexts {
            assert!(
                !contains(&bytes, text),
                "{domain} stored plaintext {:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    // The logs: provider request logs and the retry warnings were captured...
    let text = logs().text();
    for expected in [
        "/v1/rooms/{room}/messages",
        "/v1/inbox",
        "/mimi/v1/notify/{room}",
        "peer unreachable",
    ] {
        assert!(text.contains(expected), "no {expected:?} in the logs");
    }
    // ...and none names a user, device or room of the session.
    let named: Vec<&str> = text
        .lines()
        .filter(|line| s.identifiers.iter().any(|id| line.contains(id.as_str())))
        .collect();
    assert!(
        named.is_empty(),
        "log lines name users, devices or rooms:\n{}",
        named.join("\n")
    );
    s.fed.shutdown().await;
}

// ---------------------------------------------------------------------------
// Retention.

fn report(now_ms: u64, digest: u8) -> NewReport {
    NewReport {
        received_at: now_ms,
        role: ReportRole::Hub,
        room: "mimi://a.example/r/reported".into(),
        hub: "a.example".into(),
        reporter: None,
        reporter_domain: "b.example".into(),
        alleged_abuser: "mimi://a.example/u/someone".into(),
        reason: 1,
        note: String::new(),
        messages: vec![],
        digest: [digest; 32],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_what_expired_and_nothing_before() {
    let mut fed = Federation::start(&DOMAINS).await.unwrap();
    let t = tag();
    let mut ann = register(
        &fed,
        &format!("ret{t}@a.example"),
        "one",
        Protocols::MlsAndSignal,
    )
    .await
    .unwrap();
    let mut ben = register(
        &fed,
        &format!("reb{t}@b.example"),
        "one",
        Protocols::MlsAndSignal,
    )
    .await
    .unwrap();
    let room: RoomId = ann.create_room().await.unwrap();
    ann.invite(&room, ben.user()).await.unwrap();
    sync_until(&mut ben, "joining", |ev| {
        ev.iter().any(|e| matches!(e, Event::Joined { .. }))
    })
    .await
    .unwrap();

    // Ben never fetches these: undelivered at b.example.
    for i in 0..3 {
        ann.send_text(&room, &format!("unread {i}"), false)
            .await
            .unwrap();
    }
    let (a_db, b_db) = (
        fed.database_path("a.example").unwrap(),
        fed.database_path("b.example").unwrap(),
    );
    let deadline = Instant::now() + DEADLINE;
    while count(&b_db, "SELECT count(*) FROM inbox") < 3 {
        assert!(Instant::now() < deadline, "the messages never reached b");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // With b down, a's requests to it wait in the outbound queue.
    fed.stop("b.example").await.unwrap();
    ann.send_text(&room, "never sent", false).await.unwrap();
    assert!(
        count(
            &a_db,
            "SELECT count(*) FROM outbound WHERE domain = 'b.example'"
        ) >= 1
    );
    let now = entente_provider::state::now_ms();
    let a = fed.handle("a.example").unwrap();
    a.state.store.record_report(&report(now, 1)).unwrap();

    // A day on: nothing of that has expired.
    let early = a.enforce_retention_at(now + DAY_MS).await.unwrap();
    assert_eq!(early.retained.total(), 0, "{early:?}");
    assert!(count(&a_db, "SELECT count(*) FROM outbound") >= 1);
    assert_eq!(count(&a_db, "SELECT count(*) FROM abuse_reports"), 1);

    // Eight days on: the request b never took is dropped, counted and logged.
    let week = a.enforce_retention_at(now + 8 * DAY_MS).await.unwrap();
    let dropped = week.retained.outbound_total();
    assert!(dropped >= 1, "{week:?}");
    assert_eq!(week.retained.outbound[0].0, "b.example");
    assert_eq!(count(&a_db, "SELECT count(*) FROM outbound"), 0);
    assert_eq!(
        a.state
            .metrics
            .retention_outbound_dropped
            .load(Ordering::Relaxed),
        dropped
    );
    assert!(
        count(&a_db, "SELECT count(*) FROM dedup") == 0,
        "dedup keys expire after a week"
    );
    assert_eq!(count(&a_db, "SELECT count(*) FROM abuse_reports"), 1);

    // b again: its undelivered items go after 30 days, not before.
    fed.restart("b.example").await.unwrap();
    let a = fed.handle("a.example").unwrap();
    let b = fed.handle("b.example").unwrap();
    let before = b.enforce_retention_at(now + 29 * DAY_MS).await.unwrap();
    assert_eq!(before.retained.inbox_items, 0);
    assert_eq!(count(&b_db, "SELECT count(*) FROM inbox"), 3);
    let month = b.enforce_retention_at(now + 31 * DAY_MS).await.unwrap();
    assert_eq!(month.retained.inbox_items, 3, "{month:?}");
    assert_eq!(count(&b_db, "SELECT count(*) FROM inbox"), 0);
    assert_eq!(count(&b_db, "SELECT count(*) FROM messages"), 0);
    // Accounts, devices and rooms are not retention's to delete.
    assert_eq!(count(&b_db, "SELECT count(*) FROM clients"), 1);
    assert!(count(&b_db, "SELECT count(*) FROM room_groups") >= 1);
    assert!(ben.sync().await.unwrap().is_empty());

    // Reports after 180 days.
    let half_year = a.enforce_retention_at(now + 181 * DAY_MS).await.unwrap();
    assert_eq!(half_year.retained.reports, 1);
    assert_eq!(count(&a_db, "SELECT count(*) FROM abuse_reports"), 0);
    fed.shutdown().await;
}
