//! Message franking and abuse reports across three providers (MIMI-06 sections
//! 5.4.1 and 5.9): the hub a.example, followers b.example and c.example.
//!
//! Every receiver verifies the hub's frank; a follower's user reports a message and
//! the hub verifies it and informs the accused user's provider; forged reports
//! (altered content or timestamp, fabricated frank, a frank from another room, a
//! follower speaking for another domain's user) are refused; a replayed report is
//! stored once; a follower that alters a frank on the way to its client is caught
//! by that client. Expectations are polled against a deadline; nothing asserts timing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests"
)]

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use entente_client::{Client, Event, FrankStatus, reason_code};
use entente_provider::store::{ReportRecord, ReportRole};
use entente_testkit::Federation;
use entente_tls::DevCa;
use entente_wire::api::path_segment;
use entente_wire::content::MimiContent;
use entente_wire::ids::{RoomId, UserId};
use entente_wire::mimi::{
    AbuseReport, AbuseType, AbusiveMessage, FanoutEvent, FanoutMessage, Frank, IdentifierUri,
};
use reqwest::StatusCode;

const A: &str = "a.example";
const B: &str = "b.example";
const C: &str = "c.example";
const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);

/// Syncs until `client` has a message with `text` in `room`; returns its ID.
async fn wait_text(client: &mut Client, room: &RoomId, text: &str) -> Result<[u8; 32]> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let events = client.sync().await?;
        if let Some(r) = events.iter().find(|e| matches!(e, Event::Rejected { .. })) {
            bail!("{} dropped an item: {r:?}", client.id());
        }
        if let Some(e) = client
            .history(room, 1000)?
            .into_iter()
            .find(|e| e.text.as_deref() == Some(text))
        {
            return Ok(e.message_id);
        }
        if Instant::now() > deadline {
            bail!("{} never received {text:?}", client.id());
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_joined(client: &mut Client, room: &RoomId) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        client.sync().await?;
        if client.rooms()?.iter().any(|r| &r.room == room) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} never joined {room}", client.id());
        }
        tokio::time::sleep(POLL).await;
    }
}

fn reports(fed: &Federation, domain: &str) -> Vec<ReportRecord> {
    fed.handle(domain)
        .unwrap()
        .state
        .store
        .reports(None, 100)
        .unwrap()
}

async fn wait_reports(fed: &Federation, domain: &str, n: usize) -> Vec<ReportRecord> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = reports(fed, domain);
        if r.len() >= n {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{domain} has {} reports, expected {n}",
            r.len()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Alice (a.example, the hub) creates a room with Dave (a), Bob and Mallory (b) and
/// Carol (c).
struct World {
    fed: Federation,
    alice: Client,
    dave: Client,
    bob: Client,
    mallory: Client,
    carol: Client,
    room: RoomId,
}

async fn world() -> World {
    let fed = Federation::start(&[A, B, C]).await.unwrap();
    let mut alice = fed.register("alice@a.example", "laptop").await.unwrap();
    let mut dave = fed.register("dave@a.example", "phone").await.unwrap();
    let mut bob = fed.register("bob@b.example", "phone").await.unwrap();
    let mut mallory = fed.register("mallory@b.example", "phone").await.unwrap();
    let mut carol = fed.register("carol@c.example", "desktop").await.unwrap();
    let room = alice.create_room_named("Franked").await.unwrap();
    for u in [dave.user(), bob.user(), mallory.user(), carol.user()] {
        let u = u.clone();
        alice.invite(&room, &u).await.unwrap();
    }
    for c in [&mut dave, &mut bob, &mut mallory, &mut carol] {
        wait_joined(c, &room).await.unwrap();
    }
    World {
        fed,
        alice,
        dave,
        bob,
        mallory,
        carol,
        room,
    }
}

/// A provider identity the test plays (a TLS client certificate from the CA).
struct Peer {
    domain: String,
    http: reqwest::Client,
}

impl Peer {
    fn new(fed: &Federation, domain: &str) -> Self {
        let ca = DevCa::load(fed.root().join("ca")).unwrap();
        let identity = ca.issue(domain).unwrap().identity().unwrap();
        let tls =
            entente_tls::client_config(&ca.trust_anchors().unwrap(), Some(&identity)).unwrap();
        let mut b = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .timeout(Duration::from_secs(30));
        for (d, m) in &fed.members {
            b = b.resolve(d, m.config.listen);
        }
        Self {
            domain: domain.into(),
            http: b.build().unwrap(),
        }
    }

    /// MIMI `reportAbuse/{room}` to `to`.
    async fn report(&self, to: &str, room: &RoomId, report: &AbuseReport) -> (StatusCode, String) {
        let r = self
            .http
            .post(format!(
                "https://{to}/mimi/v1/reportAbuse/{}",
                path_segment(&room.to_string())
            ))
            .header("content-type", "application/mimi-protocol")
            .header("from", format!("mimi@{}", self.domain))
            .body(report.encode().unwrap())
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }
}

/// The report a client would build for one message in its history.
fn report_of(client: &Client, room: &RoomId, mid: &[u8; 32], reporter: &UserId) -> AbuseReport {
    let entry = client
        .history(room, 1000)
        .unwrap()
        .into_iter()
        .find(|e| &e.message_id == mid)
        .unwrap();
    let frank = client
        .stored_frank(room, mid)
        .unwrap()
        .expect("a verified frank");
    AbuseReport {
        reporting_user: IdentifierUri::from(reporter),
        alleged_abuser_uri: IdentifierUri::from(&entry.sender),
        reason_code: AbuseType(1),
        note: b"test".to_vec().into(),
        messages: vec![AbusiveMessage {
            message_content: entry.content.into(),
            frank,
            accepted_timestamp: entry.timestamp_ms,
        }],
        abuse_extensions: Default::default(),
    }
}

#[tokio::test]
async fn franks_verify_everywhere_and_reports_reach_hub_and_accused() {
    let mut w = world().await;
    let room = w.room.clone();

    // A hub user's message: franked by the hub, verified on every provider.
    w.alice
        .send_text(&room, "buy cheap pills", false)
        .await
        .unwrap();
    let mid_carol = wait_text(&mut w.carol, &room, "buy cheap pills")
        .await
        .unwrap();
    let mid_bob = wait_text(&mut w.bob, &room, "buy cheap pills")
        .await
        .unwrap();
    let mid_dave = wait_text(&mut w.dave, &room, "buy cheap pills")
        .await
        .unwrap();
    assert_eq!(mid_carol, mid_bob);
    assert_eq!(mid_carol, mid_dave);
    for (who, c) in [
        ("carol@c", &w.carol),
        ("bob@b", &w.bob),
        ("dave@a", &w.dave),
    ] {
        assert_eq!(
            c.frank_status(&room, &mid_carol).unwrap(),
            FrankStatus::Verified,
            "{who}"
        );
    }
    // The sender keeps the hub's frank of its own message too.
    assert_eq!(
        w.alice.frank_status(&room, &mid_carol).unwrap(),
        FrankStatus::Verified
    );
    assert!(w.alice.stored_frank(&room, &mid_carol).unwrap().is_some());

    // Carol (follower c) reports it: verified and stored at the hub, and at the
    // accused's provider (the hub itself here).
    let spam = reason_code("spam").unwrap();
    w.carol
        .report(&room, &mid_carol, spam, "unsolicited")
        .await
        .unwrap();
    let at_a = wait_reports(&w.fed, A, 2).await;
    let hub: Vec<_> = at_a
        .iter()
        .filter(|r| r.report.role == ReportRole::Hub)
        .collect();
    let accused: Vec<_> = at_a
        .iter()
        .filter(|r| r.report.role == ReportRole::Accused)
        .collect();
    assert_eq!(hub.len(), 1, "{at_a:?}");
    assert_eq!(accused.len(), 1, "{at_a:?}");
    assert_eq!(
        hub[0].report.reporter.as_deref(),
        Some("mimi://c.example/u/carol")
    );
    assert_eq!(hub[0].report.reporter_domain, C);
    assert_eq!(hub[0].report.alleged_abuser, "mimi://a.example/u/alice");
    assert_eq!(hub[0].report.reason, spam);
    assert_eq!(hub[0].report.room, room.to_string());
    assert_eq!(
        accused[0].report.reporter, None,
        "the accused's side never learns who reported"
    );
    let content = MimiContent::decode(&hub[0].report.messages[0].content).unwrap();
    assert_eq!(content.display_text().unwrap().text, "buy cheap pills");

    // A replayed report is accepted but not stored twice (at the hub or the accused).
    w.carol
        .report(&room, &mid_carol, spam, "again!")
        .await
        .unwrap();
    let peer = Peer::new(&w.fed, C);
    let replay = report_of(&w.carol, &room, &mid_carol, w.carol.user());
    let (status, body) = peer.report(A, &room, &replay).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(reports(&w.fed, A).len(), 2);

    // A follower user's message, reported by a user of another follower: the hub
    // stores it and informs b.example through its outbound queue.
    w.mallory
        .send_text(&room, "you will regret this", false)
        .await
        .unwrap();
    let mid = wait_text(&mut w.carol, &room, "you will regret this")
        .await
        .unwrap();
    assert_eq!(
        w.carol.frank_status(&room, &mid).unwrap(),
        FrankStatus::Verified
    );
    let harassment = reason_code("harassment").unwrap();
    w.carol.report(&room, &mid, harassment, "").await.unwrap();
    let at_b = wait_reports(&w.fed, B, 1).await;
    assert_eq!(at_b.len(), 1);
    assert_eq!(at_b[0].report.role, ReportRole::Accused);
    assert_eq!(at_b[0].report.alleged_abuser, "mimi://b.example/u/mallory");
    assert_eq!(at_b[0].report.reporter, None);
    assert_eq!(at_b[0].report.hub, A);
    assert_eq!(at_b[0].report.reason, harassment);
    assert_eq!(
        reports(&w.fed, A)
            .iter()
            .filter(|r| r.report.role == ReportRole::Hub)
            .count(),
        2
    );
    // Nobody reports their own messages, and reasons must be known.
    assert!(w.alice.report(&room, &mid_carol, spam, "").await.is_err());
    assert!(reason_code("nonsense").is_none());
    // Bob (b.example) reports too: his own provider relays to the hub.
    w.bob.report(&room, &mid_bob, spam, "").await.unwrap();
    assert_eq!(
        reports(&w.fed, A)
            .iter()
            .filter(|r| r.report.role == ReportRole::Hub)
            .count(),
        3
    );
    w.fed.shutdown().await;
}

#[tokio::test]
async fn forged_reports_are_refused() {
    let mut w = world().await;
    let room = w.room.clone();
    w.alice
        .send_text(&room, "original words", false)
        .await
        .unwrap();
    let mid = wait_text(&mut w.carol, &room, "original words")
        .await
        .unwrap();
    let genuine = report_of(&w.carol, &room, &mid, w.carol.user());
    let peer = Peer::new(&w.fed, C);

    let refused = |what: &str, (status, body): (StatusCode, String)| {
        assert!(
            status.is_client_error(),
            "{what}: expected a refusal, got {status} {body}"
        );
        assert!(body.len() > 10, "{what}: unhelpful error {body}");
    };

    // Altered content: the words were never sent.
    let mut r = genuine.clone();
    let mut content = MimiContent::decode(r.messages[0].message_content.as_slice()).unwrap();
    content = {
        let mut c = MimiContent::text("I confess everything", false, content.salt);
        c.extensions = content.extensions.clone();
        c
    };
    r.messages[0].message_content = content.encode().into();
    refused("altered content", peer.report(A, &room, &r).await);

    // Altered timestamp.
    let mut r = genuine.clone();
    r.messages[0].accepted_timestamp += 1;
    refused("altered timestamp", peer.report(A, &room, &r).await);

    // Fabricated frank.
    let mut r = genuine.clone();
    r.messages[0].frank = Frank {
        server_frank: [7; 32],
        franking_signature_ciphersuite: genuine.messages[0].frank.franking_signature_ciphersuite,
        franking_integrity_signature: vec![1; 64].into(),
    };
    refused("fabricated frank", peer.report(A, &room, &r).await);

    // Blamed on someone else.
    let mut r = genuine.clone();
    r.alleged_abuser_uri = IdentifierUri::from(w.dave.user());
    refused("wrong alleged abuser", peer.report(A, &room, &r).await);

    // A frank from another room, reported for this one.
    let other = w.alice.create_room_named("Other").await.unwrap();
    w.alice
        .invite(&other, &w.carol.user().clone())
        .await
        .unwrap();
    wait_joined(&mut w.carol, &other).await.unwrap();
    w.alice.send_text(&other, "elsewhere", false).await.unwrap();
    let mid_other = wait_text(&mut w.carol, &other, "elsewhere").await.unwrap();
    let r = report_of(&w.carol, &other, &mid_other, w.carol.user());
    refused("frank from another room", peer.report(A, &room, &r).await);

    // A follower reporting for a user of another domain.
    let mut r = genuine.clone();
    r.reporting_user = IdentifierUri::from(w.bob.user());
    let (status, body) = peer.report(A, &room, &r).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // A provider without participants in the room.
    let stranger = Peer::new(&w.fed, "d.example");
    let mut r = genuine.clone();
    r.reporting_user = IdentifierUri::new("mimi://d.example/u/eve");
    let (status, body) = stranger.report(A, &room, &r).await;
    assert!(status.is_client_error(), "{status} {body}");

    // The client API: a forged report relayed by c.example is refused at the hub
    // and the refusal reaches the client.
    assert_eq!(reports(&w.fed, A).len(), 0, "nothing forged was stored");
    // The genuine one is accepted.
    let (status, body) = peer.report(A, &room, &genuine).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        reports(&w.fed, A)
            .iter()
            .filter(|r| r.report.role == ReportRole::Hub)
            .count(),
        1
    );
    let _ = (&w.bob, &w.mallory);
    w.fed.shutdown().await;
}

/// b.example turns malicious and alters the frank of a message in its client's
/// inbox: Bob's client still shows the message but marks it not reportable; Carol
/// (c.example) is unaffected.
#[tokio::test]
async fn follower_altering_a_frank_is_detected() {
    let mut w = world().await;
    let room = w.room.clone();
    w.alice
        .send_text(&room, "franked on the way", false)
        .await
        .unwrap();
    // Wait until b.example holds the fanout for Bob, then alter its frank in the
    // follower's own database.
    let db = w.fed.database_path(B).unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let rows: Vec<(i64, Vec<u8>)> = conn
            .prepare("SELECT id, payload FROM messages WHERE room = ?1")
            .unwrap()
            .query_map([room.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut done = false;
        for (id, payload) in rows {
            let Ok(mut f) = FanoutMessage::decode(&payload) else {
                continue;
            };
            if let FanoutEvent::Application {
                frank: Some(frank), ..
            } = &mut f.event
            {
                frank.server_frank[0] ^= 1;
                conn.execute(
                    "UPDATE messages SET payload = ?1 WHERE id = ?2",
                    rusqlite::params![f.encode().unwrap(), id],
                )
                .unwrap();
                done = true;
            }
        }
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "b.example never got the message");
        tokio::time::sleep(POLL).await;
    }
    let mid = wait_text(&mut w.bob, &room, "franked on the way")
        .await
        .unwrap();
    match w.bob.frank_status(&room, &mid).unwrap() {
        FrankStatus::Invalid(reason) => assert!(reason.contains("signature"), "{reason}"),
        other => panic!("the altered frank was accepted: {other:?}"),
    }
    // Shown, but not reportable.
    assert!(
        w.bob
            .history(&room, 10)
            .unwrap()
            .iter()
            .any(|e| e.message_id == mid)
    );
    let err = w.bob.report(&room, &mid, 1, "").await.unwrap_err();
    assert!(err.to_string().contains("cannot be reported"), "{err}");
    let mid_c = wait_text(&mut w.carol, &room, "franked on the way")
        .await
        .unwrap();
    assert_eq!(
        w.carol.frank_status(&room, &mid_c).unwrap(),
        FrankStatus::Verified
    );
    let _ = (&w.dave, &w.mallory);
    w.fed.shutdown().await;
}
