//! Groups across providers: rooms with participants on three providers, the room
//! policy enforced by the hub, concurrent commits, removal (with a removed
//! member's keys kept and tried), leaving, devices, and a follower that was away.
//!
//! Real providers on loopback with mutual TLS and SQLite; real clients. Every
//! expectation is awaited by polling against a deadline; nothing asserts timing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests"
)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use entente_client::{Client, ClientError, Event};
use entente_core::room::roles;
use entente_testkit::Federation;
use entente_wire::ids::RoomId;

const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);

async fn register(fed: &Federation, user: &str, device: &str) -> Result<Client> {
    fed.register(user, device).await
}

/// Syncs until `done` holds for the events seen so far.
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
        tokio::time::sleep(POLL).await;
    }
}

/// Syncs until the device is in `room`.
async fn wait_joined(client: &mut Client, room: &RoomId) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = client.sync().await?;
        if let Some(r) = got.iter().find(|e| matches!(e, Event::Rejected { .. })) {
            bail!("{} dropped an item: {r:?}", client.id());
        }
        if client.rooms()?.iter().any(|r| &r.room == room) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} never joined {room}", client.id());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Syncs until the device's view of the room's participants is `want`
/// (handle, role) in any order.
async fn wait_participants(client: &mut Client, room: &RoomId, want: &[(&str, u32)]) -> Result<()> {
    let mut want: Vec<(String, u32)> = want.iter().map(|(u, r)| ((*u).to_owned(), *r)).collect();
    want.sort();
    let deadline = Instant::now() + DEADLINE;
    loop {
        client.sync().await?;
        let mut got: Vec<(String, u32)> = client
            .participants(room)?
            .into_iter()
            .map(|p| (p.user.handle(), p.role_index))
            .collect();
        got.sort();
        if got == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} sees participants {got:?}, want {want:?}", client.id());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Syncs until the room's history holds `text`.
async fn wait_text(client: &mut Client, room: &RoomId, text: &str) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        client.sync().await?;
        if client
            .history(room, 1000)?
            .iter()
            .any(|h| h.text.as_deref() == Some(text))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} never received {text:?}", client.id());
        }
        tokio::time::sleep(POLL).await;
    }
}

fn refused(r: Result<(), ClientError>, needle: &str) -> Result<()> {
    match r {
        Ok(()) => bail!("expected a refusal mentioning {needle:?}, but it was accepted"),
        Err(ClientError::Provider { code, message, .. }) if code == "not_allowed" => {
            ensure!(
                message.contains(needle),
                "refused, but for another reason: {message}"
            );
            Ok(())
        }
        Err(e) => bail!("expected a policy refusal, got {e}"),
    }
}

/// Syncs `client` until `ok` holds of it.
async fn eventually(
    client: &mut Client,
    what: &str,
    ok: impl Fn(&Client) -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        client.sync().await?;
        if ok(client)? {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{} never saw {what}",
            client.id()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The devices `client` sees for `user` in `room`.
fn devices_of(
    client: &Client,
    room: &RoomId,
    user: &entente_wire::ids::UserId,
) -> Result<Vec<entente_wire::ids::ClientId>> {
    Ok(client
        .participants(room)?
        .into_iter()
        .find(|p| &p.user == user)
        .map(|p| p.clients)
        .unwrap_or_default())
}

/// Syncs until the device's room state satisfies `ok`.
async fn wait_until_state(
    client: &mut Client,
    room: &RoomId,
    ok: impl Fn(&entente_core::room::RoomState) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        client.sync().await?;
        if ok(&client.room_state(room)?) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{} never saw the new room state",
            client.id()
        );
        tokio::time::sleep(POLL).await;
    }
}

fn epoch(client: &Client, room: &RoomId) -> Result<u64> {
    client
        .rooms()?
        .into_iter()
        .find(|r| &r.room == room)
        .map(|r| r.epoch)
        .context("room not found")
}

/// A room with participants on three providers: create, add, name and topic,
/// messages from everyone to everyone, removal, and leaving. Every member agrees
/// on the participant list (with roles) after each step, because it is part of
/// the MLS group state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_across_three_providers() -> Result<()> {
    let fed = Federation::start(&["a.example", "b.example", "c.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let mut carol = register(&fed, "carol@c.example", "desktop").await?;

    let room = alice.create_room_named("Team").await?;
    alice.invite(&room, bob.user()).await?;
    alice.invite(&room, carol.user()).await?;
    wait_joined(&mut bob, &room).await?;
    wait_joined(&mut carol, &room).await?;
    let all = [
        ("alice@a.example", roles::OWNER),
        ("bob@b.example", roles::MEMBER),
        ("carol@c.example", roles::MEMBER),
    ];
    for c in [&mut alice, &mut bob, &mut carol] {
        wait_participants(c, &room, &all).await?;
    }

    alice.set_room_topic(&room, "quarterly planning").await?;
    for c in [&mut bob, &mut carol] {
        eventually(c, "the topic", |c| {
            let s = c.room_state(&room)?;
            Ok(s.metadata.room_subject.as_str() == "quarterly planning"
                && s.metadata.room_name.as_str() == "Team")
        })
        .await?;
    }

    alice.send_text(&room, "hi from a", false).await?;
    bob.send_text(&room, "hi from b", false).await?;
    carol.send_text(&room, "hi from c", false).await?;
    wait_text(&mut alice, &room, "hi from b").await?;
    wait_text(&mut alice, &room, "hi from c").await?;
    wait_text(&mut bob, &room, "hi from a").await?;
    wait_text(&mut bob, &room, "hi from c").await?;
    wait_text(&mut carol, &room, "hi from a").await?;
    wait_text(&mut carol, &room, "hi from b").await?;

    // Alice removes Carol; Carol learns it; the others agree.
    alice.remove_participant(&room, carol.user()).await?;
    sync_until(&mut carol, "removal", |es| {
        es.iter()
            .any(|e| matches!(e, Event::Removed { room: r } if r == &room))
    })
    .await?;
    let two = [
        ("alice@a.example", roles::OWNER),
        ("bob@b.example", roles::MEMBER),
    ];
    wait_participants(&mut bob, &room, &two).await?;
    wait_participants(&mut alice, &room, &two).await?;

    // Bob leaves: he proposes his removal, Alice (the designated member) commits it.
    bob.leave(&room).await?;
    wait_participants(&mut alice, &room, &[("alice@a.example", roles::OWNER)]).await?;
    ensure!(
        !bob.rooms()?.iter().any(|r| r.room == room),
        "Bob still lists the room"
    );
    // The hub no longer fans out to b.example or c.example.
    let db = fed.database_path("a.example")?;
    let conn = rusqlite::Connection::open(db)?;
    let domains: i64 = conn.query_row(
        "SELECT COUNT(*) FROM room_domains WHERE room = ?1",
        [room.to_string()],
        |r| r.get(0),
    )?;
    ensure!(domains == 0, "the hub still follows {domains} domains");
    fed.shutdown().await;
    Ok(())
}

/// The hub enforces the room policy: a member cannot add, remove, rename or
/// promote itself; an owner can make them admin, and then they can add; a banned
/// user cannot be added back. A refused commit changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_enforces_room_policy() -> Result<()> {
    let fed = Federation::start(&["a.example", "b.example", "c.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let carol = register(&fed, "carol@c.example", "desktop").await?;
    let dave = register(&fed, "dave@c.example", "tablet").await?;

    let room = alice.create_room_named("Policy").await?;
    alice.invite(&room, bob.user()).await?;
    wait_joined(&mut bob, &room).await?;
    let before = epoch(&bob, &room)?;

    let kp_count = || -> Result<i64> {
        let conn = rusqlite::Connection::open(fed.database_path("c.example")?)?;
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM key_packages WHERE client = ?1",
            [carol.id().to_string()],
            |r| r.get(0),
        )?)
    };
    let kps_before = kp_count()?;
    refused(bob.invite(&room, carol.user()).await, "canAddParticipant")?;
    // The hub refused before claiming: Carol's KeyPackages were not used up.
    ensure!(
        kp_count()? == kps_before,
        "a refused invite consumed KeyPackages"
    );
    refused(
        bob.set_room_name(&room, "Bob's room").await,
        "canChangeRoomName",
    )?;
    refused(bob.remove_participant(&room, alice.user()).await, "")?;
    let bob_user = bob.user().clone();
    refused(bob.set_role(&room, &bob_user, roles::OWNER).await, "")?;
    ensure!(
        epoch(&bob, &room)? == before,
        "a refused commit moved the epoch"
    );
    alice.sync().await?;
    ensure!(epoch(&alice, &room)? == before);

    // Promoted to admin, Bob may add Carol (as a member, not as owner).
    alice.set_role(&room, bob.user(), roles::ADMIN).await?;
    wait_participants(
        &mut bob,
        &room,
        &[
            ("alice@a.example", roles::OWNER),
            ("bob@b.example", roles::ADMIN),
        ],
    )
    .await?;
    refused(bob.invite_as(&room, carol.user(), roles::OWNER).await, "")?;
    bob.invite(&room, carol.user()).await?;

    // Ban Carol; nobody can add her back while she is banned.
    alice.sync().await?;
    alice.ban(&room, carol.user()).await?;
    bob.sync().await?;
    refused(bob.invite(&room, carol.user()).await, "")?;
    wait_participants(
        &mut alice,
        &room,
        &[
            ("alice@a.example", roles::OWNER),
            ("bob@b.example", roles::ADMIN),
            ("carol@c.example", roles::BANNED),
        ],
    )
    .await?;
    // Changing the policy itself: an admin may not, an owner may. Here the owner
    // lets members add participants; then a member can.
    let mut roles_def = alice.room_state(&room)?.roles;
    let member = roles_def
        .roles
        .iter_mut()
        .find(|r| r.role_index == roles::MEMBER)
        .context("no member role")?;
    member
        .role_capabilities
        .push(entente_wire::mimi::capability::CAN_ADD_PARTICIPANT);
    member
        .authorized_role_changes
        .push(entente_wire::mimi::SingleSourceRoleChangeTargets {
            from_role_index: 0,
            target_role_indexes: vec![roles::MEMBER],
        });
    bob.sync().await?;
    refused(
        bob.set_role_definitions(&room, roles_def.clone()).await,
        "canChangeRoleDefinitions",
    )?;
    alice.sync().await?;
    alice.set_role_definitions(&room, roles_def).await?;
    wait_until_state(&mut bob, &room, |s| {
        s.role(roles::MEMBER).is_some_and(|r| {
            r.role_capabilities
                .contains(&entente_wire::mimi::capability::CAN_ADD_PARTICIPANT)
        })
    })
    .await?;

    // Messages still flow; the banned user's provider gets nothing more.
    bob.sync().await?;
    bob.invite(&room, dave.user()).await?;
    alice.send_text(&room, "still here", false).await?;
    wait_text(&mut bob, &room, "still here").await?;
    fed.shutdown().await;
    Ok(())
}

/// Two members on different providers commit at the same moment: the hub accepts
/// one, the other gets wrongEpoch, catches up and retries. Everyone ends in the
/// same epoch with the same participants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_converge() -> Result<()> {
    let fed = Federation::start(&["a.example", "b.example", "c.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let mut carol = register(&fed, "carol@c.example", "desktop").await?;
    let mut dave = register(&fed, "dave@c.example", "tablet").await?;

    let room = alice.create_room_named("Race").await?;
    alice.invite_as(&room, bob.user(), roles::ADMIN).await?;
    wait_joined(&mut bob, &room).await?;
    let (carol_user, dave_user) = (carol.user().clone(), dave.user().clone());
    let (a, b) = tokio::join!(
        alice.invite(&room, &carol_user),
        bob.invite(&room, &dave_user)
    );
    a?;
    b?;
    wait_joined(&mut carol, &room).await?;
    wait_joined(&mut dave, &room).await?;
    let want = [
        ("alice@a.example", roles::OWNER),
        ("bob@b.example", roles::ADMIN),
        ("carol@c.example", roles::MEMBER),
        ("dave@c.example", roles::MEMBER),
    ];
    for c in [&mut alice, &mut bob, &mut carol, &mut dave] {
        wait_participants(c, &room, &want).await?;
    }
    let epochs: Vec<u64> = [&alice, &bob, &carol, &dave]
        .iter()
        .map(|c| epoch(c, &room))
        .collect::<Result<_>>()?;
    ensure!(
        epochs.windows(2).all(|w| w[0] == w[1]),
        "epochs differ: {epochs:?}"
    );
    dave.send_text(&room, "in sync", false).await?;
    for c in [&mut alice, &mut bob, &mut carol] {
        wait_text(c, &room, "in sync").await?;
    }
    fed.shutdown().await;
    Ok(())
}

/// A removed member keeps its MLS state (a copy taken before it processed its
/// removal, and its state after) and tries to read what is sent after the
/// removal: it cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_member_cannot_read_later_messages() -> Result<()> {
    let fed = Federation::start(&["a.example", "b.example", "c.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let mut carol = register(&fed, "carol@c.example", "desktop").await?;
    let room = alice.create_room_named("Secret").await?;
    alice.invite(&room, bob.user()).await?;
    alice.invite(&room, carol.user()).await?;
    wait_joined(&mut bob, &room).await?;
    wait_joined(&mut carol, &room).await?;
    alice.send_text(&room, "before", false).await?;
    wait_text(&mut carol, &room, "before").await?;

    alice.remove_participant(&room, carol.user()).await?;
    bob.sync().await?;
    alice.send_text(&room, "after the removal", false).await?;
    // Capture the ciphertext as b.example stored it for Bob (the hub fanned it
    // out), before Bob fetches and acknowledges it.
    let conn = rusqlite::Connection::open(fed.database_path("b.example")?)?;
    let deadline = Instant::now() + DEADLINE;
    let payloads: Vec<Vec<u8>> = loop {
        let p: Vec<Vec<u8>> = conn
            .prepare("SELECT payload FROM messages ORDER BY rowid")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if !p.is_empty() {
            break p;
        }
        ensure!(Instant::now() < deadline, "nothing captured");
        tokio::time::sleep(POLL).await;
    };
    wait_text(&mut bob, &room, "after the removal").await?;
    // Carol's state before she processed her removal: the epoch she was in.
    let stale = carol.inspect_fanout(&room, payloads.last().unwrap());
    ensure!(
        !matches!(stale, Ok(Some(Event::Message(_)))),
        "Carol read a message sent after her removal: {stale:?}"
    );
    // Carol's provider did not even deliver it.
    let events = carol.sync().await?;
    ensure!(
        events.iter().any(|e| matches!(e, Event::Removed { .. })),
        "Carol did not learn of her removal: {events:?}"
    );
    ensure!(
        !events.iter().any(
            |e| matches!(e, Event::Message(m) if m.text.as_deref() == Some("after the removal"))
        ),
        "Carol read the message"
    );
    for p in &payloads {
        let r = carol.inspect_fanout(&room, p);
        ensure!(
            !matches!(&r, Ok(Some(Event::Message(m))) if m.text.as_deref() == Some("after the removal")),
            "Carol's kept state decrypted a later message"
        );
    }
    fed.shutdown().await;
    Ok(())
}

/// A user's new device is added to all their rooms by their existing device, sees
/// messages from its join onward; a lost device is removed from every room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_device_joins_all_rooms_and_lost_device_is_removed() -> Result<()> {
    let fed = Federation::start(&["a.example", "b.example"]).await?;
    let mut laptop = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let r1 = laptop.create_room_named("one").await?;
    laptop.invite(&r1, bob.user()).await?;
    let r2 = bob.start_chat(laptop.user()).await?;
    wait_joined(&mut bob, &r1).await?;
    wait_joined(&mut laptop, &r2).await?;
    bob.send_text(&r1, "before the phone", false).await?;
    wait_text(&mut laptop, &r1, "before the phone").await?;

    let code = laptop.link_code().await?;
    let mut phone = Client::register(
        fed.client_options("a.example", "alice-phone")?,
        laptop.user(),
        "phone",
        Some(&code),
    )
    .await?;
    let added = laptop.add_own_devices_everywhere().await?;
    ensure!(added == 2, "added to {added} rooms");
    wait_joined(&mut phone, &r1).await?;
    wait_joined(&mut phone, &r2).await?;
    // Bob sends once he has seen the phone join (a message from an older epoch is
    // not for the phone: it skips it).
    let alice_user = laptop.user().clone();
    eventually(&mut bob, "the phone", |b| {
        Ok(devices_of(b, &r1, &alice_user)?.len() == 2)
    })
    .await?;
    bob.send_text(&r1, "hello phone", false).await?;
    wait_text(&mut phone, &r1, "hello phone").await?;
    ensure!(
        !phone
            .history(&r1, 100)?
            .iter()
            .any(|h| h.text.as_deref() == Some("before the phone")),
        "the new device sees history from before its join"
    );

    // The phone is lost: the laptop removes it from every room and revokes it.
    let phone_id = phone.id().clone();
    let removed = laptop.revoke_device(&phone_id).await?;
    ensure!(removed == 2, "removed from {removed} rooms");
    match phone.sync().await {
        Err(ClientError::Provider { status: 401, .. }) => {}
        other => bail!("the revoked phone could still sync: {other:?}"),
    }
    let conn = rusqlite::Connection::open(fed.database_path("a.example")?)?;
    let left: i64 = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM clients WHERE client = ?1)
              + (SELECT COUNT(*) FROM key_packages WHERE client = ?1)
              + (SELECT COUNT(*) FROM room_clients WHERE client = ?1)
              + (SELECT COUNT(*) FROM inbox WHERE client = ?1)",
        [phone_id.to_string()],
        |r| r.get(0),
    )?;
    ensure!(left == 0, "{left} rows of the revoked phone remain");
    let laptop_only = [laptop.id().clone()];
    for r in [&r1, &r2] {
        eventually(&mut bob, "the phone's removal", |b| {
            Ok(devices_of(b, r, &alice_user)? == laptop_only)
        })
        .await?;
    }
    fed.shutdown().await;
    Ok(())
}

/// A follower that was unreachable catches up in order when it returns: commits
/// and messages sent meanwhile all arrive, and it ends in the hub's epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_follower_catches_up_in_order() -> Result<()> {
    let mut fed = Federation::start(&["a.example", "b.example", "c.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let mut carol = register(&fed, "carol@c.example", "desktop").await?;
    let dave = register(&fed, "dave@a.example", "tablet").await?;
    let room = alice.create_room_named("Away").await?;
    alice.invite(&room, carol.user()).await?;
    alice.invite_as(&room, bob.user(), roles::ADMIN).await?;
    wait_joined(&mut carol, &room).await?;
    wait_joined(&mut bob, &room).await?;

    // While c.example is away: messages, a member added, the topic changed.
    // (A client joining now could not verify Carol's certificate, since her
    // provider is unreachable; that is why Bob joined before.)
    fed.stop("c.example").await?;
    alice.send_text(&room, "one", false).await?;
    bob.sync().await?;
    bob.invite(&room, dave.user()).await?;
    bob.send_text(&room, "two", false).await?;
    alice.set_room_topic(&room, "while you were away").await?;
    alice.send_text(&room, "three", false).await?;

    fed.restart("c.example").await?;
    let events = sync_until(&mut carol, "catching up", |es| {
        es.iter()
            .any(|e| matches!(e, Event::Message(m) if m.text.as_deref() == Some("three")))
    })
    .await?;
    let texts: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => m.text.as_deref(),
            _ => None,
        })
        .collect();
    ensure!(texts == ["one", "two", "three"], "Carol got {texts:?}");
    ensure!(
        carol.room_state(&room)?.metadata.room_subject.as_str() == "while you were away",
        "Carol missed the topic"
    );
    alice.sync().await?;
    ensure!(epoch(&carol, &room)? == epoch(&alice, &room)?);
    fed.shutdown().await;
    Ok(())
}

/// While the hub is down nothing can change the room: commits and messages fail
/// with a transient error that says so, and nothing is half-applied; when it is
/// back, the same operations succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_down_means_no_changes_then_recovery() -> Result<()> {
    let mut fed = Federation::start(&["a.example", "b.example", "c.example"]).await?;
    let mut alice = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let carol = register(&fed, "carol@c.example", "desktop").await?;
    let room = alice.create_room_named("Hub").await?;
    alice.invite_as(&room, bob.user(), roles::ADMIN).await?;
    wait_joined(&mut bob, &room).await?;
    let before = epoch(&bob, &room)?;

    fed.stop("a.example").await?;
    match bob.invite(&room, carol.user()).await {
        Err(e) if e.is_transient() => {}
        other => bail!("expected a transient failure while the hub is down, got {other:?}"),
    }
    ensure!(
        epoch(&bob, &room)? == before,
        "the epoch moved without the hub"
    );
    fed.restart("a.example").await?;
    bob.invite(&room, carol.user()).await?;
    alice.sync().await?;
    wait_participants(
        &mut alice,
        &room,
        &[
            ("alice@a.example", roles::OWNER),
            ("bob@b.example", roles::ADMIN),
            ("carol@c.example", roles::MEMBER),
        ],
    )
    .await?;
    fed.shutdown().await;
    Ok(())
}

/// A user's new device joins all their rooms by itself, by external commit
/// (claiming the GroupInfo from each room's hub, section 5.6), including a room
/// hubbed by another provider. A stranger's device is refused by the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_device_joins_by_external_commit() -> Result<()> {
    let fed = Federation::start(&["a.example", "b.example", "c.example"]).await?;
    let mut laptop = register(&fed, "alice@a.example", "laptop").await?;
    let mut bob = register(&fed, "bob@b.example", "phone").await?;
    let mut carol = register(&fed, "carol@c.example", "desktop").await?;
    let r1 = laptop.create_room_named("hubbed at a").await?;
    laptop.invite(&r1, bob.user()).await?;
    let r2 = bob.create_room_named("hubbed at b").await?;
    bob.invite(&r2, laptop.user()).await?;
    wait_joined(&mut bob, &r1).await?;
    wait_joined(&mut laptop, &r2).await?;

    let code = laptop.link_code().await?;
    let mut phone = Client::register(
        fed.client_options("a.example", "alice-phone")?,
        laptop.user(),
        "phone",
        Some(&code),
    )
    .await?;
    let mut joined = phone.join_my_rooms().await?;
    joined.sort_by_key(ToString::to_string);
    let mut want = vec![r1.clone(), r2.clone()];
    want.sort_by_key(ToString::to_string);
    ensure!(joined == want, "the phone joined {joined:?}");

    // Everyone sees the phone; messages reach it in both rooms.
    let alice_user = laptop.user().clone();
    for r in [&r1, &r2] {
        eventually(&mut bob, "the phone", |b| {
            Ok(devices_of(b, r, &alice_user)?.len() == 2)
        })
        .await?;
        bob.send_text(r, "hello phone", false).await?;
        wait_text(&mut phone, r, "hello phone").await?;
        wait_text(&mut laptop, r, "hello phone").await?;
    }
    phone.send_text(&r2, "from the phone", false).await?;
    wait_text(&mut bob, &r2, "from the phone").await?;

    // Carol is not a participant: the hub will not give her the group.
    match carol.join_external(&r1).await {
        Err(ClientError::Provider { code, .. }) if code == "not_authorized" => {}
        other => bail!("a stranger's external join was not refused: {other:?}"),
    }
    ensure!(carol.rooms()?.is_empty());
    fed.shutdown().await;
    Ok(())
}
