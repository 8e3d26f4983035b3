//! `entente demo`: two providers, two users, a conversation, and a look inside the
//! providers' databases.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use entente_client::{Client, Event};
use entente_testkit::Federation;
use entente_wire::ids::UserId;

#[derive(Args)]
pub struct DemoArgs {
    /// Keep the providers' data here instead of a temporary directory.
    #[arg(long)]
    keep: Option<PathBuf>,
}

const ALICE_LINES: [&str; 2] = [
    "Hi Bob! This is Alice, writing from a.example.",
    "Our providers federate over MIMI; **only we** can read this.",
];
const BOB_LINES: [&str; 1] = ["Hello Alice, Bob here on b.example. Loud and clear!"];

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

pub async fn run(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let tmp;
    let root: PathBuf = match &args.keep {
        Some(p) => p.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };
    step(
        1,
        "Starting providers a.example and b.example on loopback (throwaway CA, mutual TLS, SQLite)",
    );
    // The product default: strangers get no key material until accepted.
    let fed = Federation::start_in_with(
        &root,
        &["a.example", "b.example"],
        Federation::require_consent,
    )
    .await?;
    for (d, m) in &fed.members {
        println!("    {d} at https://{}", m.config.listen);
    }

    step(
        2,
        "Registering alice@a.example and bob@b.example; each provider certifies its user's device key",
    );
    let alice_id: UserId = "alice@a.example".parse()?;
    let bob_id: UserId = "bob@b.example".parse()?;
    let mut alice = Client::register(
        fed.client_options("a.example", "alice")?,
        &alice_id,
        "laptop",
        None,
    )
    .await?;
    let mut bob = Client::register(
        fed.client_options("b.example", "bob")?,
        &bob_id,
        "phone",
        None,
    )
    .await?;
    println!("    {}\n    {}", alice.id(), bob.id());

    step(
        3,
        "Alice sends Bob a message request (MIMI requestConsent); Bob accepts; Alice starts a chat: a MIMI room hubbed by a.example, an MLS group with Bob's device",
    );
    alice.request_consent(&bob_id, None).await?;
    wait_for_request(&bob, &alice_id).await?;
    println!("    Bob sees a request from {}", alice_id.handle());
    bob.accept_request(&alice_id, None).await?;
    println!("    Bob accepted: b.example now hands Bob's KeyPackages to Alice");
    let room = alice.start_chat(&bob_id).await?;
    println!("    room {room}");
    let joined = sync_until(&mut bob, 1, |e| matches!(e, Event::Joined { .. })).await?;
    ensure!(!joined.is_empty(), "Bob did not receive the Welcome");
    println!("    Bob joined via the MLS Welcome relayed a.example -> b.example");

    step(
        4,
        "Alice sends; the hub orders and fans out; Bob's provider stores it for him",
    );
    for line in ALICE_LINES {
        alice.send_text(&room, line, line.contains("**")).await?;
    }
    // Before Bob fetches, b.example holds Alice's messages: check it is ciphertext.
    let all_plaintext: Vec<&str> = ALICE_LINES
        .iter()
        .chain(BOB_LINES.iter())
        .copied()
        .collect();
    let b_db = fed.database_path("b.example")?;
    wait_for_pending(&b_db, ALICE_LINES.len() as u64).await?;
    let b_report = inspect(&b_db, &all_plaintext)?;
    let got = sync_until(&mut bob, ALICE_LINES.len(), |e| {
        matches!(e, Event::Message(_))
    })
    .await?;
    let bob_saw: Vec<String> = got
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => m.text.clone(),
            _ => None,
        })
        .collect();
    ensure!(
        bob_saw == ALICE_LINES,
        "Bob received {bob_saw:?}, expected {ALICE_LINES:?}"
    );

    step(5, "Bob replies through his provider (follower) to the hub");
    for line in BOB_LINES {
        bob.send_text(&room, line, false).await?;
    }
    let a_db = fed.database_path("a.example")?;
    wait_for_pending(&a_db, BOB_LINES.len() as u64).await?;
    let a_report = inspect(&a_db, &all_plaintext)?;
    let got = sync_until(&mut alice, BOB_LINES.len(), |e| {
        matches!(e, Event::Message(_))
    })
    .await?;
    let alice_saw: Vec<String> = got
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => m.text.clone(),
            _ => None,
        })
        .collect();
    ensure!(
        alice_saw == BOB_LINES,
        "Alice received {alice_saw:?}, expected {BOB_LINES:?}"
    );

    step(6, "Transcript (as Alice's device stores it)");
    for e in alice.history(&room, 100)? {
        let who = if e.outgoing {
            "alice@a.example".to_owned()
        } else {
            e.sender.handle()
        };
        println!("    {who}: {}", e.text.unwrap_or_default());
    }
    let ab = alice.safety_number(&bob_id)?.context("no safety number")?;
    let ba = bob.safety_number(&alice_id)?.context("no safety number")?;
    ensure!(ab == ba, "safety numbers differ: {ab} vs {ba}");
    println!(
        "    safety number (same on both devices): {}",
        entente_core::identity::format_safety_number(&ab)
    );

    step(7, "What the providers stored");
    for (d, r) in [("b.example", &b_report), ("a.example", &a_report)] {
        println!(
            "    {d}: {} pending encrypted message(s), {} byte(s) of ciphertext; plaintext found: {}",
            r.messages,
            r.ciphertext_bytes,
            if r.plaintext_hits.is_empty() {
                "none".to_owned()
            } else {
                r.plaintext_hits.join(", ")
            }
        );
        if !r.plaintext_hits.is_empty() {
            bail!("{d}'s database contains plaintext: {:?}", r.plaintext_hits);
        }
        if r.messages == 0 {
            bail!("{d}'s database held no ciphertext while a message was pending");
        }
    }
    drop(alice);
    drop(bob);
    fed.shutdown().await;
    println!(
        "\nAll checks passed in {:.1} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Syncs until `n` events matching `pred` arrived (delivery across providers is
/// asynchronous), or 10 seconds passed. Returns all events seen.
/// Waits (up to 20 s) until `from`'s message request reached `to`'s provider
/// through a.example's outbound queue.
async fn wait_for_request(to: &Client, from: &UserId) -> Result<()> {
    let handle = from.handle();
    for _ in 0..200 {
        if to
            .consent_requests()
            .await?
            .incoming
            .iter()
            .any(|r| r.user == handle)
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("the message request from {handle} did not arrive")
}

async fn sync_until(
    client: &mut Client,
    n: usize,
    pred: impl Fn(&Event) -> bool,
) -> Result<Vec<Event>> {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let mut events = Vec::new();
    while events.iter().filter(|e| pred(e)).count() < n {
        if Instant::now() > deadline {
            bail!("timed out waiting for {n} events; got {events:?}");
        }
        let got = client.sync().await?;
        if got.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        events.extend(got);
    }
    Ok(events)
}

/// Waits until a provider's database holds at least `n` pending messages.
async fn wait_for_pending(db: &Path, n: u64) -> Result<()> {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let conn =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let have: i64 = conn.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
        if have as u64 >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} held {have} pending messages after 10 s, expected {n}",
                db.display()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// What a provider's database held.
pub struct Inspection {
    pub messages: u64,
    pub ciphertext_bytes: u64,
    pub plaintext_hits: Vec<String>,
}

/// Opens a provider's database read-only; counts the pending messages and searches
/// every value of every table, and the raw database and WAL files, for plaintext.
pub fn inspect(db: &Path, plaintexts: &[&str]) -> Result<Inspection> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", db.display()))?;
    let (messages, ciphertext_bytes): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context("counting stored messages")?;
    let mut hits = Vec::new();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for t in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\""))?;
        let cols = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            for i in 0..cols {
                let bytes: Vec<u8> = match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        b.to_vec()
                    }
                    _ => continue,
                };
                for p in plaintexts {
                    if contains(&bytes, p.as_bytes()) {
                        hits.push(format!("{p:?} in table {t}"));
                    }
                }
            }
        }
    }
    for suffix in ["", "-wal"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(raw) = std::fs::read(&path) {
            for p in plaintexts {
                if contains(&raw, p.as_bytes()) {
                    hits.push(format!("{p:?} in file {}", path.display()));
                }
            }
        }
    }
    Ok(Inspection {
        messages: messages as u64,
        ciphertext_bytes: ciphertext_bytes as u64,
        plaintext_hits: hits,
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
