//! The hub orders commits: two devices that change the same room from the same
//! epoch both succeed, the second after `wrongEpoch` and a retry, and every
//! member ends in the same epoch with the same members.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::time::Duration;

use entente_client::{Client, Event};
use entente_testkit::Federation;
use entente_wire::ids::{RoomId, UserId};

async fn register(fed: &Federation, user: &str, device: &str) -> Client {
    let id: UserId = user.parse().unwrap();
    let domain = id.domain().to_string();
    Client::register(
        fed.client_options(&domain, &format!("{user}-{device}"))
            .unwrap(),
        &id,
        device,
        None,
    )
    .await
    .unwrap()
}

/// Syncs until the client is in `room` at `epoch`.
async fn sync_to_epoch(c: &mut Client, room: &RoomId, epoch: u64) {
    for _ in 0..800 {
        for e in c.sync().await.unwrap() {
            assert!(!matches!(e, Event::Rejected { .. }), "{e:?}");
        }
        if c.rooms()
            .unwrap()
            .iter()
            .any(|r| &r.room == room && r.epoch == epoch)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{} never reached epoch {epoch} of {room}: {:?}",
        c.id(),
        c.rooms().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_are_ordered_by_the_hub() {
    let fed = Federation::start(&["a.example", "b.example", "c.example"])
        .await
        .unwrap();
    let mut laptop = register(&fed, "alice@a.example", "laptop").await;
    let code = laptop.link_code().await.unwrap();
    let alice: UserId = "alice@a.example".parse().unwrap();
    let mut phone = Client::register(
        fed.client_options("a.example", "alice-phone").unwrap(),
        &alice,
        "phone",
        Some(&code),
    )
    .await
    .unwrap();
    let mut bob = register(&fed, "bob@b.example", "phone").await;
    let mut carol = register(&fed, "carol@b.example", "phone").await;
    let mut dave = register(&fed, "dave@c.example", "phone").await;

    // Epoch 1: laptop, phone and Bob.
    let bob_id: UserId = "bob@b.example".parse().unwrap();
    let room = laptop.start_chat(&bob_id).await.unwrap();
    sync_to_epoch(&mut phone, &room, 1).await;
    sync_to_epoch(&mut bob, &room, 1).await;

    // Both of Alice's devices add someone at the same moment, both at epoch 1.
    let carol_id: UserId = "carol@b.example".parse().unwrap();
    let dave_id: UserId = "dave@c.example".parse().unwrap();
    let (r1, r2) = tokio::join!(
        laptop.invite(&room, &carol_id),
        phone.invite(&room, &dave_id)
    );
    r1.unwrap();
    r2.unwrap();

    // One commit made epoch 2, the retried one epoch 3; everyone agrees.
    for c in [&mut laptop, &mut phone, &mut bob, &mut carol, &mut dave] {
        sync_to_epoch(c, &room, 3).await;
    }
    let expected = laptop.member_clients(&room).unwrap();
    assert_eq!(expected.len(), 5);
    for c in [&phone, &bob, &carol, &dave] {
        let mut got = c.member_clients(&room).unwrap();
        let mut want = expected.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{} disagrees", c.id());
    }

    // And the room works for all of them.
    dave.send_text(&room, "hello from c.example", false)
        .await
        .unwrap();
    for c in [&mut laptop, &mut phone, &mut bob, &mut carol] {
        let mut seen = false;
        for _ in 0..800 {
            if c.sync().await.unwrap().iter().any(|e| matches!(e, Event::Message(m) if m.text.as_deref() == Some("hello from c.example"))) {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(seen, "{} did not get Dave's message", c.id());
    }
    fed.shutdown().await;
}

/// A member that has not yet seen a commit still sends in the old epoch; the hub
/// accepts it (it is recent) and fans it out to everyone, including the member the
/// commit added. The new member skips it quietly (it predates their join), the
/// others read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_before_a_join_are_skipped_quietly() {
    let fed = Federation::start(&["a.example", "b.example", "c.example"])
        .await
        .unwrap();
    let mut alice = register(&fed, "alice@a.example", "laptop").await;
    let mut bob = register(&fed, "bob@b.example", "phone").await;
    let mut carol = register(&fed, "carol@c.example", "phone").await;
    let bob_id: UserId = "bob@b.example".parse().unwrap();
    let carol_id: UserId = "carol@c.example".parse().unwrap();
    let room = alice.start_chat(&bob_id).await.unwrap();
    sync_to_epoch(&mut bob, &room, 1).await;

    alice.invite(&room, &carol_id).await.unwrap();
    sync_to_epoch(&mut carol, &room, 2).await;
    // Bob has not synced: he sends at epoch 1, which the hub still accepts.
    assert_eq!(bob.rooms().unwrap()[0].epoch, 1);
    bob.send_text(&room, "sent at epoch 1", false)
        .await
        .unwrap();
    carol
        .send_text(&room, "carol is here", false)
        .await
        .unwrap();

    // Alice reads both; Carol reads nothing she cannot, and reports nothing.
    let mut alice_texts = Vec::new();
    for _ in 0..800 {
        for e in alice.sync().await.unwrap() {
            if let Event::Message(m) = e {
                alice_texts.push(m.text.unwrap_or_default());
            }
        }
        if alice_texts.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(alice_texts, ["sent at epoch 1", "carol is here"]);
    // sync_to_epoch fails on any Rejected event; Bob catches up too.
    sync_to_epoch(&mut carol, &room, 2).await;
    sync_to_epoch(&mut bob, &room, 2).await;
    let bob_saw: Vec<String> = bob
        .history(&room, 10)
        .unwrap()
        .into_iter()
        .filter_map(|h| h.text)
        .collect();
    assert_eq!(bob_saw, ["sent at epoch 1", "carol is here"]);
    fed.shutdown().await;
}
