//! The Signal-compatible channel end to end, across three real providers on
//! loopback: negotiation, two-party messages with sealed sender, prekey
//! replenishment, a changed identity key, and sender-key and pairwise groups.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use entente_client::{
    Client, Conversation, DirectEntry, Event, GroupMechanism, Mechanism, Protocols,
};
use entente_testkit::Federation;
use entente_wire::ids::UserId;

const DEADLINE: Duration = Duration::from_secs(30);

async fn register(
    fed: &Federation,
    user: &str,
    device: &str,
    protocols: Protocols,
) -> Result<Client> {
    let id: UserId = user.parse()?;
    let dir = format!("{}-{device}", id.name());
    Ok(Client::register_with(
        fed.client_options(id.domain().as_str(), &dir)?,
        &id,
        device,
        None,
        protocols,
    )
    .await?)
}

/// Syncs until `done` holds for the events seen so far; returns them.
async fn sync_until(
    client: &mut Client,
    what: &str,
    done: impl Fn(&[Event]) -> bool,
) -> Result<Vec<Event>> {
    let deadline = Instant::now() + DEADLINE;
    let mut events = Vec::new();
    loop {
        events.extend(client.sync().await?);
        if done(&events) {
            return Ok(events);
        }
        if Instant::now() > deadline {
            bail!("{} timed out waiting for {what}: {events:?}", client.id());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn directs(events: &[Event]) -> Vec<&DirectEntry> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Direct(d) => Some(d),
            _ => None,
        })
        .collect()
}

fn texts(events: &[Event]) -> Vec<String> {
    directs(events)
        .iter()
        .map(|d| d.text.clone().unwrap_or_default())
        .collect()
}

async fn receive_texts(client: &mut Client, n: usize) -> Result<Vec<String>> {
    let events = sync_until(client, &format!("{n} messages"), |ev| {
        directs(ev).len() >= n
    })
    .await?;
    Ok(texts(&events))
}

/// Every file under `dir`, concatenated (databases, WAL, blobs).
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
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
async fn negotiation_two_party_messages_and_sealed_sender() {
    let fed = Federation::start(&["a.example", "b.example", "c.example"])
        .await
        .unwrap();
    let mut alice = register(&fed, "alice@a.example", "laptop", Protocols::MlsAndSignal)
        .await
        .unwrap();
    let mut bob = register(&fed, "bob@b.example", "phone", Protocols::SignalOnly)
        .await
        .unwrap();
    let carol = register(&fed, "carol@c.example", "laptop", Protocols::MlsAndSignal)
        .await
        .unwrap();

    // Negotiation, visible to the user.
    let to_carol = alice.channel_to(carol.user()).await.unwrap();
    assert_eq!(to_carol.mechanism, Mechanism::MlsRoom, "{to_carol}");
    let to_bob = alice.channel_to(bob.user()).await.unwrap();
    assert_eq!(to_bob.mechanism, Mechanism::DoubleRatchet, "{to_bob}");
    assert!(
        to_bob.reason.contains("only the Double Ratchet"),
        "{to_bob}"
    );
    // A Signal-only device cannot be put in an MLS room: it has no KeyPackages.
    let room = alice.create_room().await.unwrap();
    assert!(alice.invite(&room, bob.user()).await.is_err());

    // Both directions, several ratchet turns.
    alice
        .send_direct_text(bob.user(), "hello bob", false)
        .await
        .unwrap();
    alice
        .send_direct_text(bob.user(), "second", false)
        .await
        .unwrap();
    assert_eq!(
        receive_texts(&mut bob, 2).await.unwrap(),
        ["hello bob", "second"]
    );

    // Sealed sender: so far only alice wrote to bob, and bob's provider stores
    // nothing that names her (not the sealed messages, not the inbox, not a log),
    // nor any plaintext. Bob's device does know who wrote.
    let b_dir = fed.database_path("b.example").unwrap();
    let b_bytes = all_bytes(b_dir.parent().unwrap());
    assert!(contains(&b_bytes, b"bob"), "the scan sees b.example's data");
    assert!(
        !contains(&b_bytes, b"alice"),
        "b.example stored the sender's name"
    );
    assert!(
        !contains(&b_bytes, b"hello bob"),
        "b.example stored plaintext"
    );

    let from_bob = bob.channel_to(alice.user()).await.unwrap();
    assert_eq!(from_bob.mechanism, Mechanism::DoubleRatchet);
    assert!(from_bob.reason.contains("this device"), "{from_bob}");
    for turn in 0..3 {
        bob.send_direct_text(alice.user(), &format!("bob {turn}"), false)
            .await
            .unwrap();
        assert_eq!(
            receive_texts(&mut alice, 1).await.unwrap(),
            [format!("bob {turn}")]
        );
        alice
            .send_direct_text(bob.user(), &format!("alice {turn}"), false)
            .await
            .unwrap();
        assert_eq!(
            receive_texts(&mut bob, 1).await.unwrap(),
            [format!("alice {turn}")]
        );
    }
    // Both keep the conversation.
    let history = bob
        .direct_history(&Conversation::Direct(alice.user().clone()), 100)
        .unwrap();
    assert_eq!(history.len(), 8);
    assert!(history.iter().any(|e| e.outgoing));
    assert_eq!(history[0].sender, *alice.user());

    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prekeys_are_consumed_once_and_replenished() {
    let fed = Federation::start(&["a.example", "b.example"])
        .await
        .unwrap();
    let mut bob = register(&fed, "bob@b.example", "phone", Protocols::SignalOnly)
        .await
        .unwrap();
    let start = bob.replenish_prekeys().await.unwrap();
    assert_eq!(
        start.one_time_prekeys,
        entente_client::channel::PREKEY_TARGET
    );
    assert_eq!(start.kyber_prekeys, entente_client::channel::PREKEY_TARGET);
    // 85 senders each start a session (PQXDH with a one-time ML-KEM prekey).
    let mut senders = Vec::new();
    for i in 0..85 {
        let s = register(
            &fed,
            &format!("s{i}@a.example"),
            "d",
            Protocols::MlsAndSignal,
        )
        .await
        .unwrap();
        s.send_direct_text(bob.user(), &format!("hi from {i}"), false)
            .await
            .unwrap();
        senders.push(s);
    }
    let got = receive_texts(&mut bob, 85).await.unwrap();
    assert_eq!(got.len(), 85);
    // sync() topped the prekeys up again after it saw messages.
    let status = bob.replenish_prekeys().await.unwrap();
    assert!(
        status.one_time_prekeys >= entente_client::channel::PREKEY_LOW_WATER,
        "{status:?}"
    );
    assert_eq!(
        status.one_time_prekeys,
        entente_client::channel::PREKEY_TARGET,
        "{status:?}"
    );
    // Every sender can keep talking on its session.
    senders[3]
        .send_direct_text(bob.user(), "again", false)
        .await
        .unwrap();
    assert_eq!(receive_texts(&mut bob, 1).await.unwrap(), ["again"]);
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_identity_key_is_held_until_trusted() {
    let fed = Federation::start(&["a.example", "b.example"])
        .await
        .unwrap();
    let mut alice = register(&fed, "alice@a.example", "laptop", Protocols::MlsAndSignal)
        .await
        .unwrap();
    let mut bob = register(&fed, "bob@b.example", "phone", Protocols::SignalOnly)
        .await
        .unwrap();
    alice
        .send_direct_text(bob.user(), "before", false)
        .await
        .unwrap();
    assert_eq!(receive_texts(&mut bob, 1).await.unwrap(), ["before"]);

    // Bob's device loses its Signal state and makes a new identity key (as after
    // a reinstall), and publishes it.
    drop(bob);
    let bob_dir = fed.root().join("clients").join("bob-phone");
    {
        let conn = rusqlite::Connection::open(bob_dir.join("client.db")).unwrap();
        conn.execute_batch(
            "DELETE FROM signal_identity; DELETE FROM signal_prekeys; DELETE FROM signal_sessions;
             DELETE FROM settings WHERE key = 'signal_sender_certificate';",
        )
        .unwrap();
    }
    let mut bob = Client::open(fed.client_options("b.example", "bob-phone").unwrap())
        .await
        .unwrap();
    bob.enable_signal_channel(Protocols::SignalOnly)
        .await
        .unwrap();
    bob.send_direct_text(alice.user(), "new key", false)
        .await
        .unwrap();

    // Alice is warned; nothing is decrypted under the new key.
    let events = sync_until(&mut alice, "the warning", |ev| {
        ev.iter()
            .any(|e| matches!(e, Event::IdentityChanged { .. }))
    })
    .await
    .unwrap();
    assert!(directs(&events).is_empty(), "{events:?}");
    assert_eq!(alice.changed_identities().unwrap(), [bob.user().clone()]);
    // She keeps sending on the session she has, under the key she trusted; no
    // session is started under the new key until she accepts it. (Bob cannot read
    // this one: he lost that session; it is the reinstall's cost.)
    alice
        .send_direct_text(bob.user(), "on the old session", false)
        .await
        .unwrap();
    let after = bob.sync().await.unwrap();
    assert!(texts(&after).is_empty(), "{after:?}");

    // She accepts the new key: the held message is decrypted now.
    let events = alice.trust_new_identity(bob.user()).await.unwrap();
    assert_eq!(texts(&events), ["new key"]);
    assert!(alice.changed_identities().unwrap().is_empty());
    alice
        .send_direct_text(bob.user(), "welcome back", false)
        .await
        .unwrap();
    assert_eq!(receive_texts(&mut bob, 1).await.unwrap(), ["welcome back"]);
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_key_and_pairwise_groups() {
    let fed = Federation::start(&["a.example", "b.example", "c.example"])
        .await
        .unwrap();
    let mut alice = register(&fed, "alice@a.example", "laptop", Protocols::SignalOnly)
        .await
        .unwrap();
    let mut bob = register(&fed, "bob@b.example", "phone", Protocols::SignalOnly)
        .await
        .unwrap();
    let mut carol = register(&fed, "carol@c.example", "phone", Protocols::SignalOnly)
        .await
        .unwrap();

    for mechanism in [GroupMechanism::SenderKeys, GroupMechanism::Pairwise] {
        let g = alice
            .create_direct_group(
                "team",
                &[bob.user().clone(), carol.user().clone()],
                mechanism,
            )
            .await
            .unwrap();
        for c in [&mut bob, &mut carol] {
            sync_until(c, "the group", |ev| {
                ev.iter()
                    .any(|e| matches!(e, Event::DirectGroupChanged { group, .. } if *group == g.id))
            })
            .await
            .unwrap();
        }
        alice.send_group_text(&g.id, "hi all").await.unwrap();
        bob.send_group_text(&g.id, "hi from bob").await.unwrap();
        for c in [&mut carol] {
            let mut got = receive_texts(c, 2).await.unwrap();
            got.sort();
            assert_eq!(got, ["hi all", "hi from bob"], "{mechanism:?}");
        }
        assert_eq!(receive_texts(&mut bob, 1).await.unwrap(), ["hi all"]);
        assert_eq!(receive_texts(&mut alice, 1).await.unwrap(), ["hi from bob"]);

        // Removing carol: she is told, and gets nothing after.
        alice
            .remove_direct_group_member(&g.id, carol.user())
            .await
            .unwrap();
        sync_until(&mut bob, "the removal", |ev| {
            ev.iter().any(
                |e| matches!(e, Event::DirectGroupChanged { members, .. } if members.len() == 2),
            )
        })
        .await
        .unwrap();
        alice.send_group_text(&g.id, "without carol").await.unwrap();
        assert_eq!(receive_texts(&mut bob, 1).await.unwrap(), ["without carol"]);
        let carol_events = carol.sync().await.unwrap();
        assert!(texts(&carol_events).is_empty(), "{carol_events:?}");
        let history = carol
            .direct_history(&Conversation::Group(g.id), 100)
            .unwrap();
        assert!(
            history
                .iter()
                .all(|e| e.text.as_deref() != Some("without carol"))
        );
    }
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_of_the_recipient_is_found_on_refusal_and_gets_the_message() {
    let fed = Federation::start(&["a.example"]).await.unwrap();
    let alice = register(&fed, "alice@a.example", "laptop", Protocols::MlsAndSignal)
        .await
        .unwrap();
    let mut erin = register(&fed, "erin@a.example", "phone", Protocols::SignalOnly)
        .await
        .unwrap();
    alice
        .send_direct_text(erin.user(), "one device", false)
        .await
        .unwrap();
    assert_eq!(receive_texts(&mut erin, 1).await.unwrap(), ["one device"]);

    // Erin adds a device; alice's next send names only the first one, the
    // provider refuses it (409), and the client re-encrypts for both.
    let code = erin.link_code().await.unwrap();
    let mut erin2 = Client::register_with(
        fed.client_options("a.example", "erin-tablet").unwrap(),
        erin.user(),
        "tablet",
        Some(&code),
        Protocols::SignalOnly,
    )
    .await
    .unwrap();
    alice
        .send_direct_text(erin.user(), "two devices", false)
        .await
        .unwrap();
    assert_eq!(receive_texts(&mut erin, 1).await.unwrap(), ["two devices"]);
    assert_eq!(receive_texts(&mut erin2, 1).await.unwrap(), ["two devices"]);
    fed.shutdown().await;
}
