//! End-to-end federation tests: real providers on loopback (mutual TLS, SQLite)
//! started by [`Federation`], and real clients ([`Client`]) with their own databases.
//!
//! Delivery between providers is asynchronous (the hub's outbound queue sends
//! `notify`), so every expectation is awaited by polling `sync` against a generous
//! deadline. Nothing here asserts on timing; the one check that something does
//! *not* happen (nothing reaches Bob while the hub is down) watches for longer than
//! the hub's retry delay. Every test ends by checking that the federation is
//! quiescent: no federation request pending anywhere, no client with anything left
//! to receive, and no inbox holding anything, so a duplicate that would arrive late
//! cannot hide.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use entente_client::{Client, ClientError, Event, HistoryEntry};
use entente_testkit::Federation;
use entente_wire::ids::{ClientId, RoomId, UserId};

/// How long any expected delivery may take. Generous: the outbound worker backs
/// off up to a few seconds in the tests that take a provider down.
const DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two polls that found nothing new.
const POLL: Duration = Duration::from_millis(25);

// ------------------------------------------------------------------- scenarios

/// Alice (hub a.example) and Bob (follower b.example) exchange several messages
/// each way, one way at a time and then both at once. Each side receives exactly
/// the other's messages, in send order, from the right sender; nobody receives
/// their own message back; both histories hold exactly the expected entries, and
/// agree on message IDs and hub timestamps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_providers_both_ways_in_order_exactly_once() -> Result<()> {
    let fed = Federation::start(&["a.example", "b.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let room = alice.start_chat(bob.user()).await?;
    let members = wait_joined(&mut bob, &room).await?;
    ensure!(
        members == [alice.user().clone(), bob.user().clone()],
        "Bob joined with members {members:?}"
    );

    let a1 = send_all(&mut alice, &room, &["a1", "a2", "a3", "a4"]).await?;
    // A device skips its own message silently, so look for echoes at the
    // providers: the hub queued nothing for the sender.
    expect_inbox(&fed, &alice, 0)?;
    let got = receive(&mut bob, a1.len()).await?;
    check_received(&got, &room, &a1)?;

    let b1 = send_all(&mut bob, &room, &["b1", "b2", "b3", "b4"]).await?;
    let got = receive(&mut alice, b1.len()).await?;
    check_received(&got, &room, &b1)?;
    // b.example has had the hub's fanout of Bob's messages, and kept it from him.
    wait_outbound_empty(&fed, "a.example").await?;
    expect_inbox(&fed, &bob, 0)?;

    // Both at once: the hub interleaves them, but each sender's order holds.
    let (a2, b2) = tokio::join!(
        send_all(&mut alice, &room, &["a5", "a6", "a7"]),
        send_all(&mut bob, &room, &["b5", "b6", "b7"]),
    );
    let (a2, b2) = (a2?, b2?);
    let got = receive(&mut bob, a2.len()).await?;
    check_received(&got, &room, &a2)?;
    let got = receive(&mut alice, b2.len()).await?;
    check_received(&got, &room, &b2)?;

    let alice_history = alice.history(&room, 100)?;
    let bob_history = bob.history(&room, 100)?;
    check_history(
        &alice_history,
        &room,
        &[(&a1, true), (&b1, false), (&a2, true), (&b2, false)],
    )?;
    check_history(
        &bob_history,
        &room,
        &[(&a1, false), (&b1, true), (&b2, true), (&a2, false)],
    )?;
    // Both devices record the hub's acceptance time for every message.
    let stamps: BTreeMap<[u8; 32], u64> = alice_history
        .iter()
        .map(|e| (e.message_id, e.timestamp_ms))
        .collect();
    for e in &bob_history {
        ensure!(
            stamps.get(&e.message_id) == Some(&e.timestamp_ms),
            "{:?}: Bob has hub time {}, Alice {:?}",
            e.text,
            e.timestamp_ms,
            stamps.get(&e.message_id)
        );
    }

    assert_quiescent(&fed, &mut [&mut alice, &mut bob]).await?;
    fed.shutdown().await;
    Ok(())
}

/// Bob's device is closed while Alice sends; his provider stores everything. When
/// the device is opened again from its data directory, one catch-up delivers all
/// of it, in order, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_recipient_catches_up_in_order_exactly_once() -> Result<()> {
    let fed = Federation::start(&["a.example", "b.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let room = alice.start_chat(bob.user()).await?;
    wait_joined(&mut bob, &room).await?;
    let bob_client = bob.id().to_string();
    drop(bob);

    let texts: Vec<String> = (1..=12)
        .map(|i| format!("while you were away #{i}"))
        .collect();
    let sent = send_all(&mut alice, &room, &texts).await?;
    // Everything has reached b.example and waits there for the closed device.
    wait_outbound_empty(&fed, "a.example").await?;
    let waiting = inbox_len(&fed, "b.example", &bob_client)?;
    ensure!(
        waiting == sent.len() as i64,
        "b.example holds {waiting} items for Bob, expected {}",
        sent.len()
    );

    let mut bob = Client::open(fed.client_options("b.example", "bob-phone")?).await?;
    ensure!(
        bob.rooms()?.iter().any(|r| r.room == room),
        "the reopened device lost the room"
    );
    let got = receive(&mut bob, sent.len()).await?;
    check_received(&got, &room, &sent)?;
    check_history(&bob.history(&room, 100)?, &room, &[(&sent, false)])?;

    assert_quiescent(&fed, &mut [&mut alice, &mut bob]).await?;
    fed.shutdown().await;
    Ok(())
}

/// The follower crashes, once after it stored Alice's messages for Bob and once
/// while they may still be in flight to it. After each restart Bob receives
/// everything exactly once, and can still send through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_crash_loses_and_duplicates_nothing() -> Result<()> {
    let mut fed = Federation::start(&["a.example", "b.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let room = alice.start_chat(bob.user()).await?;
    wait_joined(&mut bob, &room).await?;

    // Stored at b.example (it answered the notify) before the crash.
    let stored = send_all(&mut alice, &room, &["one", "two", "three"]).await?;
    wait_outbound_empty(&fed, "a.example").await?;
    fed.kill("b.example").await?;
    fed.restart("b.example").await?;
    let got = receive(&mut bob, stored.len()).await?;
    check_received(&got, &room, &stored)?;

    // Crash right after the hub accepted: the notifies may be anywhere between
    // a.example's queue and b.example's database.
    let in_flight = send_all(&mut alice, &room, &["four", "five", "six"]).await?;
    fed.kill("b.example").await?;
    fed.restart("b.example").await?;
    let got = receive(&mut bob, in_flight.len()).await?;
    check_received(&got, &room, &in_flight)?;

    let reply = send_all(&mut bob, &room, &["got them all"]).await?;
    let got = receive(&mut alice, reply.len()).await?;
    check_received(&got, &room, &reply)?;
    check_history(
        &bob.history(&room, 100)?,
        &room,
        &[(&stored, false), (&in_flight, false), (&reply, true)],
    )?;

    assert_quiescent(&fed, &mut [&mut alice, &mut bob]).await?;
    fed.shutdown().await;
    Ok(())
}

/// The hub crashes after it acknowledged messages to Alice but before it could
/// notify b.example (which is down, so the notifies are certainly still queued).
/// While the hub is down nothing reaches Bob; once it is back its durable queue
/// delivers everything exactly once. Then it crashes again immediately after
/// accepting, with b.example up, and still nothing is lost or duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_crash_keeps_its_outbound_queue() -> Result<()> {
    let mut fed = Federation::start(&["a.example", "b.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let room = alice.start_chat(bob.user()).await?;
    wait_joined(&mut bob, &room).await?;

    fed.stop("b.example").await?;
    let queued = send_all(&mut alice, &room, &["q1", "q2", "q3"]).await?;
    // The hub has tried b.example and failed: its next retry is due in 2 s.
    wait_db(
        &fed,
        "a.example",
        "SELECT COALESCE(MAX(attempts), 0) FROM outbound",
        |n| n >= 1,
    )
    .await?;
    let tried = Instant::now();
    fed.kill("a.example").await?;
    let pending = db_count(&fed, "a.example", "SELECT COUNT(*) FROM outbound")?;
    ensure!(
        pending == queued.len() as i64,
        "the crashed hub's database holds {pending} outbound requests, expected {}",
        queued.len()
    );

    // A crashed hub sends nothing: past its retry time, Bob still has nothing.
    fed.restart("b.example").await?;
    while tried.elapsed() < Duration::from_secs(4) {
        let got = bob.sync().await?;
        ensure!(
            got.is_empty(),
            "Bob received {got:?} while the hub was down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fed.restart("a.example").await?;
    let got = receive(&mut bob, queued.len()).await?;
    check_received(&got, &room, &queued)?;

    // Crash immediately after acceptance, with the follower up.
    let racing = send_all(&mut alice, &room, &["r1", "r2", "r3"]).await?;
    fed.kill("a.example").await?;
    fed.restart("a.example").await?;
    let got = receive(&mut bob, racing.len()).await?;
    check_received(&got, &room, &racing)?;

    check_history(
        &bob.history(&room, 100)?,
        &room,
        &[(&queued, false), (&racing, false)],
    )?;
    assert_quiescent(&fed, &mut [&mut alice, &mut bob]).await?;
    fed.shutdown().await;
    Ok(())
}

/// The hub crashes after b.example stored its notifies but before it recorded
/// them as sent (its database is put back to the state before they were sent),
/// so it sends them again on restart. b.example recognises them: Bob receives
/// each message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifies_sent_again_after_hub_crash_are_delivered_once() -> Result<()> {
    let mut fed = Federation::start(&["a.example", "b.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let room = alice.start_chat(bob.user()).await?;
    wait_joined(&mut bob, &room).await?;

    fed.stop("b.example").await?;
    let sent = send_all(&mut alice, &room, &["once", "only", "please"]).await?;
    fed.stop("a.example").await?;
    let unsent = Snapshot::take(&fed.database_path("a.example")?)?;
    fed.restart("a.example").await?;
    fed.restart("b.example").await?;
    let got = receive(&mut bob, sent.len()).await?;
    check_received(&got, &room, &sent)?;
    wait_outbound_empty(&fed, "a.example").await?;

    fed.stop("a.example").await?;
    unsent.restore()?;
    fed.restart("a.example").await?;
    let again = db_count(&fed, "a.example", "SELECT COUNT(*) FROM outbound")?;
    ensure!(
        again == sent.len() as i64,
        "setting up: the hub has {again} notifies to send again, expected {}",
        sent.len()
    );

    // The hub sends them again (assert_quiescent waits for that); Bob gets nothing new.
    assert_quiescent(&fed, &mut [&mut alice, &mut bob]).await?;
    check_history(&bob.history(&room, 100)?, &room, &[(&sent, false)])?;
    fed.shutdown().await;
    Ok(())
}

/// Bob sends while the hub is down: his provider cannot relay, and he gets an
/// error that says "try again later"; the message stays in his outbox, pending.
/// After the hub restarts, his next send delivers the pending one first, so Alice
/// receives both, in order, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_while_hub_is_down_fails_transiently() -> Result<()> {
    let mut fed = Federation::start(&["a.example", "b.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let room = alice.start_chat(bob.user()).await?;
    wait_joined(&mut bob, &room).await?;

    fed.kill("a.example").await?;
    let err: ClientError = match bob.send_text(&room, "anyone there?", false).await {
        Err(e) => e,
        Ok(_) => bail!("sending with the hub down succeeded"),
    };
    ensure!(
        err.is_transient(),
        "sending with the hub down failed permanently: {err}"
    );
    // b.example is up and says why: the hub is unavailable, retry later.
    ensure!(
        matches!(
            &err,
            ClientError::Provider {
                status: 503,
                retry_after_secs: Some(_),
                ..
            }
        ),
        "unexpected error: {err:?}"
    );
    // The message is kept, encrypted, in Bob's outbox and shown as pending.
    let pending: Vec<HistoryEntry> = bob
        .history(&room, 100)?
        .into_iter()
        .filter(|h| h.pending)
        .collect();
    ensure!(
        pending.len() == 1 && pending[0].text.as_deref() == Some("anyone there?"),
        "expected one pending message, got {pending:?}"
    );
    let first = Sent {
        id: pending[0].message_id,
        text: "anyone there?".into(),
        by: bob.id().clone(),
    };
    fed.restart("a.example").await?;

    // The next send first resends the pending one: Alice gets both, in order, once.
    let mut sent = vec![first];
    sent.extend(send_all(&mut bob, &room, &["back again"]).await?);
    let got = receive(&mut alice, sent.len()).await?;
    check_received(&got, &room, &sent)?;
    check_history(&alice.history(&room, 100)?, &room, &[(&sent, false)])?;
    ensure!(
        bob.history(&room, 100)?.iter().all(|h| !h.pending),
        "Bob still has pending messages"
    );

    // And the other way, through the restarted hub.
    let back = send_all(&mut alice, &room, &["welcome back"]).await?;
    let got = receive(&mut bob, back.len()).await?;
    check_received(&got, &room, &back)?;

    assert_quiescent(&fed, &mut [&mut alice, &mut bob]).await?;
    fed.shutdown().await;
    Ok(())
}

/// Bob's device processes messages, and then restarts as if it had crashed before
/// its provider applied the ack: b.example's database is put back to the state
/// before the ack, so it still holds the items. The reopened device neither
/// replays nor drops anything, and later messages arrive normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_restart_before_ack_reaches_provider() -> Result<()> {
    let mut fed = Federation::start(&["a.example", "b.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let room = alice.start_chat(bob.user()).await?;
    wait_joined(&mut bob, &room).await?;
    let bob_client = bob.id().to_string();

    let first = send_all(&mut alice, &room, &["m1", "m2", "m3"]).await?;
    wait_outbound_empty(&fed, "a.example").await?;
    fed.stop("b.example").await?;
    let unacked = Snapshot::take(&fed.database_path("b.example")?)?;
    fed.restart("b.example").await?;

    let got = receive(&mut bob, first.len()).await?;
    check_received(&got, &room, &first)?;
    drop(bob);

    // Undo the ack (and only that: nothing else reached b.example meanwhile).
    fed.stop("b.example").await?;
    unacked.restore()?;
    fed.restart("b.example").await?;
    let waiting = inbox_len(&fed, "b.example", &bob_client)?;
    ensure!(
        waiting == first.len() as i64,
        "setting up: b.example holds {waiting} items for Bob, expected {}",
        first.len()
    );

    let mut bob = Client::open(fed.client_options("b.example", "bob-phone")?).await?;
    let replayed = bob.sync().await?;
    ensure!(
        replayed.is_empty(),
        "the restarted device processed items again: {replayed:?}"
    );
    let later = send_all(&mut alice, &room, &["m4"]).await?;
    let got = receive(&mut bob, later.len()).await?;
    check_received(&got, &room, &later)?;
    check_history(
        &bob.history(&room, 100)?,
        &room,
        &[(&first, false), (&later, false)],
    )?;

    assert_quiescent(&fed, &mut [&mut alice, &mut bob]).await?;
    fed.shutdown().await;
    Ok(())
}

/// b.example is down for a while; the hub accepts Alice's messages, fails to
/// notify, backs off (2 s, then 4 s) and keeps retrying; a message sent meanwhile
/// queues behind the others. When b.example is back, Bob receives everything in
/// order, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_down_for_a_while_then_back() -> Result<()> {
    let mut fed = Federation::start(&["a.example", "b.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let room = alice.start_chat(bob.user()).await?;
    wait_joined(&mut bob, &room).await?;

    fed.stop("b.example").await?;
    let early = send_all(&mut alice, &room, &["d1", "d2", "d3", "d4"]).await?;
    // Two failed attempts: the first and the one after the first backoff.
    wait_db(
        &fed,
        "a.example",
        "SELECT COALESCE(MAX(attempts), 0) FROM outbound",
        |n| n >= 2,
    )
    .await?;
    let late = send_all(&mut alice, &room, &["d5"]).await?;
    fed.restart("b.example").await?;

    let all: Vec<Sent> = early.iter().chain(&late).cloned().collect();
    let got = receive(&mut bob, all.len()).await?;
    check_received(&got, &room, &all)?;
    check_history(&bob.history(&room, 100)?, &room, &[(&all, false)])?;

    assert_quiescent(&fed, &mut [&mut alice, &mut bob]).await?;
    fed.shutdown().await;
    Ok(())
}

/// Alice links a phone to her laptop's account; Bob has two devices too. A chat
/// Alice starts on the laptop includes all four devices. Every message reaches
/// every other device, including the sender's other device (as an incoming event
/// from its user), and never the sending device itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_of_both_users_gets_every_message() -> Result<()> {
    let fed = Federation::start(&["a.example", "b.example"]).await?;
    let mut laptop = register(&fed, "alice@a.example", "laptop").await?;
    let mut phone = link_device(&fed, &laptop, "alice-phone", "phone").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let mut tablet = link_device(&fed, &bob, "bob-tablet", "tablet").await?;

    let room = laptop.start_chat(bob.user()).await?;
    let users = [laptop.user().clone(), bob.user().clone()];
    for d in [&mut phone, &mut bob, &mut tablet] {
        let members = wait_joined(d, &room).await?;
        ensure!(members == users, "{} joined with {members:?}", d.id());
    }
    let mut clients: Vec<ClientId> = laptop.member_clients(&room)?;
    clients.sort_by_key(ToString::to_string);
    let mut expected: Vec<ClientId> = [&laptop, &phone, &bob, &tablet]
        .iter()
        .map(|c| c.id().clone())
        .collect();
    expected.sort_by_key(ToString::to_string);
    ensure!(clients == expected, "the room's devices are {clients:?}");

    let from_bob = send_all(&mut bob, &room, &["hi both of you"]).await?;
    let from_laptop = send_all(&mut laptop, &room, &["from my laptop"]).await?;
    let from_phone = send_all(&mut phone, &room, &["and from my phone"]).await?;
    let from_tablet = send_all(&mut tablet, &room, &["tablet here"]).await?;
    // Each device has the three others' messages waiting, never its own.
    wait_outbound_empty(&fed, "a.example").await?;
    for d in [&laptop, &phone, &bob, &tablet] {
        expect_inbox(&fed, d, 3)?;
    }

    // Each device receives the others' messages, in hub order.
    let cases: [(&mut Client, Vec<&Vec<Sent>>); 4] = [
        (&mut laptop, vec![&from_bob, &from_phone, &from_tablet]),
        (&mut phone, vec![&from_bob, &from_laptop, &from_tablet]),
        (&mut bob, vec![&from_laptop, &from_phone, &from_tablet]),
        (&mut tablet, vec![&from_bob, &from_laptop, &from_phone]),
    ];
    for (device, from) in cases {
        let want: Vec<Sent> = from.into_iter().flatten().cloned().collect();
        let got = receive(device, want.len()).await?;
        check_received(&got, &room, &want)
            .with_context(|| format!("as received by {}", device.id()))?;
    }

    assert_quiescent(&fed, &mut [&mut laptop, &mut phone, &mut bob, &mut tablet]).await?;
    fed.shutdown().await;
    Ok(())
}

/// Safety numbers are the same on both sides of a conversation, and change when
/// Alice adds a device to it: then they are again the same everywhere, the new
/// device included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_numbers_agree_and_change_with_devices() -> Result<()> {
    let fed = Federation::start(&["a.example", "b.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let (alice_id, bob_id) = (alice.user().clone(), bob.user().clone());
    ensure!(
        alice.safety_number(&bob_id)?.is_none(),
        "a safety number before sharing a room"
    );
    let room = alice.start_chat(&bob_id).await?;
    wait_joined(&mut bob, &room).await?;

    let before = alice
        .safety_number(&bob_id)?
        .context("Alice has no safety number for Bob")?;
    let seen_by_bob = bob
        .safety_number(&alice_id)?
        .context("Bob has no safety number for Alice")?;
    ensure!(
        before == seen_by_bob,
        "Alice sees {before}, Bob sees {seen_by_bob}"
    );
    ensure!(
        !before.is_empty() && before.chars().all(|c| c.is_ascii_digit()),
        "safety number {before:?} is not digits"
    );

    let mut phone = link_device(&fed, &alice, "alice-phone", "phone").await?;
    alice.invite(&room, &alice_id).await?;
    wait_joined(&mut phone, &room).await?;
    let changed = sync_until(&mut bob, "the new device", |es| {
        es.iter()
            .any(|e| matches!(e, Event::MembersChanged { room: r, .. } if r == &room))
    })
    .await?;
    ensure!(
        changed.len() == 1,
        "Bob saw more than the membership change: {changed:?}"
    );
    ensure!(
        bob.member_clients(&room)?.contains(phone.id()),
        "Bob's group lacks Alice's phone"
    );

    let after = alice
        .safety_number(&bob_id)?
        .context("Alice lost the safety number")?;
    ensure!(
        after != before,
        "the safety number did not change when Alice added a device"
    );
    for (who, n) in [
        ("Bob", bob.safety_number(&alice_id)?),
        ("Alice's phone", phone.safety_number(&bob_id)?),
    ] {
        ensure!(
            n.as_deref() == Some(after.as_str()),
            "{who} sees {n:?}, Alice's laptop {after}"
        );
    }

    assert_quiescent(&fed, &mut [&mut alice, &mut phone, &mut bob]).await?;
    fed.shutdown().await;
    Ok(())
}

/// Three providers: Alice (a.example, the hub) starts a chat with Bob
/// (b.example) and invites Carol (c.example). Carol joins through the hub, the
/// others see her arrive, and messages from each of the three reach the other two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_providers_one_room() -> Result<()> {
    let fed = Federation::start(&["a.example", "b.example", "c.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let mut carol = register(&fed, "carol@c.example", "desktop").await?;
    let room = alice.start_chat(bob.user()).await?;
    wait_joined(&mut bob, &room).await?;

    alice.invite(&room, carol.user()).await?;
    let everyone = [
        alice.user().clone(),
        bob.user().clone(),
        carol.user().clone(),
    ];
    let members = wait_joined(&mut carol, &room).await?;
    ensure!(members == everyone, "Carol joined with {members:?}");
    let changed = sync_until(&mut bob, "Carol's arrival", |es| {
        es.iter()
            .any(|e| matches!(e, Event::MembersChanged { room: r, .. } if r == &room))
    })
    .await?;
    ensure!(
        changed
            == [Event::MembersChanged {
                room: room.clone(),
                members: everyone.to_vec()
            }],
        "Bob saw {changed:?}"
    );
    ensure!(alice.members(&room)? == everyone, "Alice's view differs");

    let from_alice = send_all(&mut alice, &room, &["hello c.example"]).await?;
    let from_bob = send_all(&mut bob, &room, &["hello from b"]).await?;
    let from_carol = send_all(&mut carol, &room, &["carol here, via my follower"]).await?;

    let cases: [(&mut Client, Vec<&Vec<Sent>>); 3] = [
        (&mut alice, vec![&from_bob, &from_carol]),
        (&mut bob, vec![&from_alice, &from_carol]),
        (&mut carol, vec![&from_alice, &from_bob]),
    ];
    for (device, from) in cases {
        let want: Vec<Sent> = from.into_iter().flatten().cloned().collect();
        let got = receive(device, want.len()).await?;
        check_received(&got, &room, &want)
            .with_context(|| format!("as received by {}", device.id()))?;
    }
    // A device records its own message when sending it, others' when receiving.
    check_history(
        &carol.history(&room, 100)?,
        &room,
        &[
            (&from_carol, true),
            (&from_alice, false),
            (&from_bob, false),
        ],
    )?;

    assert_quiescent(&fed, &mut [&mut alice, &mut bob, &mut carol]).await?;
    fed.shutdown().await;
    Ok(())
}

// --------------------------------------------------------------------- helpers

/// A message as its sender sent it.
#[derive(Debug, Clone)]
struct Sent {
    id: [u8; 32],
    text: String,
    by: ClientId,
}

async fn register(fed: &Federation, user: &str, device: &str) -> Result<Client> {
    fed.register(user, device).await
}

/// Registers another device of `existing`'s user with a link code from it.
async fn link_device(
    fed: &Federation,
    existing: &Client,
    dir: &str,
    device: &str,
) -> Result<Client> {
    let code = existing.link_code().await?;
    let user = existing.user();
    Ok(Client::register(
        fed.client_options(user.domain().as_str(), dir)?,
        user,
        device,
        Some(&code),
    )
    .await?)
}

/// Sends each text in turn; each is accepted by the hub before the next is sent.
async fn send_all(
    client: &mut Client,
    room: &RoomId,
    texts: &[impl AsRef<str>],
) -> Result<Vec<Sent>> {
    let mut sent = Vec::new();
    for t in texts {
        let text = t.as_ref().to_owned();
        let id = client
            .send_text(room, &text, false)
            .await
            .with_context(|| format!("{} sending {text:?}", client.id()))?;
        sent.push(Sent {
            id,
            text,
            by: client.id().clone(),
        });
    }
    Ok(sent)
}

/// Syncs until `done` holds for everything received so far. A dropped item
/// (`Event::Rejected`) fails at once: none of these scenarios should produce one.
async fn sync_until(
    client: &mut Client,
    what: &str,
    done: impl Fn(&[Event]) -> bool,
) -> Result<Vec<Event>> {
    let deadline = Instant::now() + DEADLINE;
    let mut events = Vec::new();
    loop {
        let got = client
            .sync()
            .await
            .with_context(|| format!("{} syncing", client.id()))?;
        if let Some(r) = got.iter().find(|e| matches!(e, Event::Rejected { .. })) {
            bail!("{} dropped an item: {r:?}", client.id());
        }
        let nothing_new = got.is_empty();
        events.extend(got);
        if done(&events) {
            return Ok(events);
        }
        if Instant::now() > deadline {
            bail!(
                "{} timed out waiting for {what}; received {events:?}",
                client.id()
            );
        }
        if nothing_new {
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Waits until `client` joined `room`; returns the members it joined with.
async fn wait_joined(client: &mut Client, room: &RoomId) -> Result<Vec<UserId>> {
    let events = sync_until(client, "a Welcome", |es| {
        es.iter()
            .any(|e| matches!(e, Event::Joined { room: r, .. } if r == room))
    })
    .await?;
    match events.as_slice() {
        [Event::Joined { members, .. }] => Ok(members.clone()),
        _ => bail!("{} expected only a Welcome, got {events:?}", client.id()),
    }
}

/// Syncs until at least `n` messages arrived; fails on any other kind of event.
/// Returns every message received, so a caller comparing with what was sent also
/// catches extras.
async fn receive(client: &mut Client, n: usize) -> Result<Vec<HistoryEntry>> {
    let events = sync_until(client, &format!("{n} messages"), |es| {
        es.iter().filter(|e| matches!(e, Event::Message(_))).count() >= n
    })
    .await?;
    events
        .into_iter()
        .map(|e| match e {
            Event::Message(m) => Ok(m),
            other => bail!("{} expected only messages, got {other:?}", client.id()),
        })
        .collect()
}

/// `got` is exactly `sent`, in order, as received from someone else.
fn check_received(got: &[HistoryEntry], room: &RoomId, sent: &[Sent]) -> Result<()> {
    let texts =
        |g: &[HistoryEntry]| -> Vec<Option<String>> { g.iter().map(|e| e.text.clone()).collect() };
    ensure!(
        got.len() == sent.len(),
        "received {:?}, expected {:?}",
        texts(got),
        sent.iter().map(|s| &s.text).collect::<Vec<_>>()
    );
    for (g, s) in got.iter().zip(sent) {
        check_entry(g, room, s, false).with_context(|| format!("received {:?}", texts(got)))?;
    }
    Ok(())
}

/// A room's history is exactly these runs of messages, in this order, each run
/// outgoing (sent by this device) or not.
fn check_history(
    history: &[HistoryEntry],
    room: &RoomId,
    runs: &[(&Vec<Sent>, bool)],
) -> Result<()> {
    let expected: Vec<(&Sent, bool)> = runs
        .iter()
        .flat_map(|(run, outgoing)| run.iter().map(move |s| (s, *outgoing)))
        .collect();
    let texts: Vec<Option<&str>> = history.iter().map(|e| e.text.as_deref()).collect();
    ensure!(
        history.len() == expected.len(),
        "history is {texts:?}, expected {:?}",
        expected.iter().map(|(s, _)| &s.text).collect::<Vec<_>>()
    );
    for (h, (s, outgoing)) in history.iter().zip(expected) {
        check_entry(h, room, s, outgoing).with_context(|| format!("history is {texts:?}"))?;
    }
    Ok(())
}

fn check_entry(e: &HistoryEntry, room: &RoomId, s: &Sent, outgoing: bool) -> Result<()> {
    ensure!(
        e.text.as_deref() == Some(s.text.as_str()),
        "found {:?} where {:?} was expected",
        e.text,
        s.text
    );
    ensure!(e.message_id == s.id, "{:?} has another message ID", s.text);
    ensure!(&e.room == room, "{:?} is recorded in {}", s.text, e.room);
    ensure!(
        e.sender_client == s.by && &e.sender == s.by.user(),
        "{:?} is attributed to {} ({}), sent by {}",
        s.text,
        e.sender_client,
        e.sender,
        s.by
    );
    ensure!(
        e.outgoing == outgoing,
        "{:?} has outgoing = {}, expected {outgoing}",
        s.text,
        e.outgoing
    );
    Ok(())
}

/// Waits until no running provider has a federation request pending; then no
/// client may receive anything more, and every inbox must be empty.
async fn assert_quiescent(fed: &Federation, clients: &mut [&mut Client]) -> Result<()> {
    for domain in running(fed) {
        wait_outbound_empty(fed, &domain).await?;
    }
    for c in clients.iter_mut() {
        let late = c.sync().await?;
        ensure!(late.is_empty(), "{} received more: {late:?}", c.id());
    }
    for domain in running(fed) {
        let left = db_count(fed, &domain, "SELECT COUNT(*) FROM inbox")?;
        ensure!(left == 0, "{domain} still holds {left} inbox items");
    }
    Ok(())
}

fn running(fed: &Federation) -> Vec<String> {
    fed.members
        .iter()
        .filter(|(_, m)| m.handle.is_some())
        .map(|(d, _)| d.clone())
        .collect()
}

async fn wait_outbound_empty(fed: &Federation, domain: &str) -> Result<()> {
    wait_db(fed, domain, "SELECT COUNT(*) FROM outbound", |n| n == 0).await
}

/// Polls a provider's database until `query` (one integer) satisfies `ok`.
async fn wait_db(
    fed: &Federation,
    domain: &str,
    query: &str,
    ok: impl Fn(i64) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let n = db_count(fed, domain, query)?;
        if ok(n) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{domain}: `{query}` is still {n}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs a one-integer query on a provider's database, read-only, beside the
/// running provider.
fn db_count(fed: &Federation, domain: &str, query: &str) -> Result<i64> {
    let path = fed.database_path(domain)?;
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", path.display()))?;
    Ok(conn.query_row(query, [], |r| r.get(0))?)
}

/// Checks how many items `client`'s provider holds for it.
fn expect_inbox(fed: &Federation, client: &Client, n: i64) -> Result<()> {
    let domain = client.id().domain().as_str();
    let have = inbox_len(fed, domain, &client.id().to_string())?;
    ensure!(
        have == n,
        "{domain} holds {have} items for {}, expected {n}",
        client.id()
    );
    Ok(())
}

fn inbox_len(fed: &Federation, domain: &str, client: &str) -> Result<i64> {
    let path = fed.database_path(domain)?;
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM inbox WHERE client = ?1",
        [client],
        |r| r.get(0),
    )?)
}

/// A stopped provider's database files, to put back later.
struct Snapshot {
    db: PathBuf,
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl Snapshot {
    const SUFFIXES: [&str; 3] = ["", "-wal", "-shm"];

    fn take(db: &Path) -> Result<Self> {
        let files = Self::SUFFIXES
            .iter()
            .map(|s| {
                let p = PathBuf::from(format!("{}{s}", db.display()));
                let bytes = std::fs::read(&p).ok();
                (p, bytes)
            })
            .collect();
        Ok(Self {
            db: db.to_owned(),
            files,
        })
    }

    /// Restores every file as it was, removing those that did not exist then (a
    /// newer WAL must not be replayed onto the older database).
    fn restore(&self) -> Result<()> {
        ensure!(
            self.files.first().is_some_and(|(_, b)| b.is_some()),
            "no database at {} to restore",
            self.db.display()
        );
        for (path, bytes) in &self.files {
            match bytes {
                Some(b) => std::fs::write(path, b)?,
                None => match std::fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                },
            }
        }
        Ok(())
    }
}
