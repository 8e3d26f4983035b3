//! Consent (message requests) and blocks, end to end across two and three
//! providers running with `[consent] mode = "required"` (the product default):
//! strangers get no key material (MLS KeyPackages, Signal bundles) and cannot add
//! anyone; a request travels as MIMI requestConsent through the outbound queue; an
//! acceptance lets the invite through; declines and blocks are silent; a block
//! deletes pending requests and consent; unblocking restores the ability to ask.
//! The test also plays a malicious provider (it holds the federation's CA) that
//! forges requesters of other domains, replays grants, or claims key material for
//! a blocked user as a room's hub.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use entente_client::{Client, ClientError, Event};
use entente_core::room::roles;
use entente_testkit::Federation;
use entente_wire::api::path_segment;
use entente_wire::consent::{ConsentAction, OutgoingStatus};
use entente_wire::ids::{RoomId, UserId};
use entente_wire::mimi::{AppDataDictionary, ConsentEntry, ConsentOperation, IdentifierUri};
use entente_wire::signal::{PreKeyStatus, UserBundles};
use reqwest::{Method, StatusCode};

#[path = "support/signal.rs"]
mod signal_support;

use signal_support::{Device, api_error, as_provider, lossy};

const A: &str = "a.example";
const B: &str = "b.example";
const C: &str = "c.example";
const DEADLINE: Duration = Duration::from_secs(20);

async fn federation(domains: &[&str]) -> Federation {
    Federation::start_with(domains, Federation::require_consent)
        .await
        .unwrap()
}

fn user(s: &str) -> UserId {
    s.parse().unwrap()
}

/// Polls `client`'s requests until `done` holds.
async fn wait_requests(
    client: &Client,
    what: &str,
    done: impl Fn(&entente_wire::consent::ConsentRequests) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = client.consent_requests().await?;
        if done(&r) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} timed out waiting for {what}; has {r:?}", client.id());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_incoming(client: &Client, from: &str) -> Result<()> {
    wait_requests(client, &format!("a request from {from}"), |r| {
        r.incoming.iter().any(|i| i.user == from)
    })
    .await
}

async fn wait_granted(client: &Client, by: &str) -> Result<()> {
    wait_requests(client, &format!("{by}'s grant"), |r| {
        r.outgoing
            .iter()
            .any(|o| o.user == by && o.status == OutgoingStatus::Granted)
    })
    .await
}

async fn incoming(client: &Client) -> Vec<String> {
    client
        .consent_requests()
        .await
        .unwrap()
        .incoming
        .into_iter()
        .map(|i| i.user)
        .collect()
}

async fn sync_until_joined(client: &mut Client, room: &RoomId) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let events = client.sync().await.context("syncing")?;
        if events
            .iter()
            .any(|e| matches!(e, Event::Joined { room: r, .. } if r == room))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} did not join {room}", client.id());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The invite failed for want of consent, with the error a person can act on.
fn assert_no_consent(result: Result<(), ClientError>, target: &str) {
    match result {
        Err(ClientError::Provider { code, message, .. }) if code == "no_consent" => {
            assert!(
                message.contains(&format!("{target} has not accepted a request from you"))
                    && message.contains("entente request"),
                "{message}"
            );
        }
        other => panic!("expected no_consent for {target}, got {other:?}"),
    }
}

/// The test as a provider of `domain`: MIMI requests with a TLS client
/// certificate for it.
async fn mimi_post(
    fed: &Federation,
    as_domain: &str,
    to: &str,
    endpoint: &str,
    param: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let r = as_provider(fed, as_domain)
        .post(format!(
            "https://{to}/mimi/v1/{endpoint}/{}",
            path_segment(param)
        ))
        .header("from", format!("mimi@{as_domain}"))
        .header("content-type", "application/mimi-protocol")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status(), r.bytes().await.unwrap().to_vec())
}

fn entry(op: ConsentOperation, requester: &str, target: &str) -> Vec<u8> {
    ConsentEntry {
        operation: op,
        requester_uri: IdentifierUri::new(user(requester).to_uri()),
        target_uri: IdentifierUri::new(user(target).to_uri()),
        room_id: None,
        client_key_packages: Vec::new(),
        consent_extensions: AppDataDictionary::default(),
    }
    .encode()
    .unwrap()
}

fn bundles_path(user: &str) -> String {
    format!("/v1/signal/bundles/{}", path_segment(user))
}

async fn consent_call(d: &Device, what: &str, user: &str) {
    let _: serde_json::Value = d
        .call(
            Method::POST,
            &format!("/v1/consent/{what}"),
            &ConsentAction {
                user: user.into(),
                room: None,
            },
        )
        .await
        .unwrap();
}

// ------------------------------------------------------------------ MLS

/// A stranger on another provider cannot add bob; a request reaches bob's
/// devices, bob accepts, and the same invite then works. Asking also let bob add
/// alice (bilateral).
#[tokio::test]
async fn request_accept_then_invite_across_providers() -> Result<()> {
    let fed = federation(&[A, B]).await;
    let mut alice = fed.register("alice@a.example", "laptop").await?;
    let mut bob = fed.register("bob@b.example", "phone").await?;
    let bob_id = user("bob@b.example");
    let alice_id = user("alice@a.example");

    let room = alice.create_room().await?;
    assert_no_consent(alice.invite(&room, &bob_id).await, "bob@b.example");
    assert!(incoming(&bob).await.is_empty());

    alice.request_consent(&bob_id, None).await?;
    wait_incoming(&bob, "alice@a.example").await?;
    let mine = alice.consent_requests().await?;
    assert_eq!(mine.outgoing.len(), 1);
    assert_eq!(mine.outgoing[0].user, "bob@b.example");
    assert_eq!(mine.outgoing[0].status, OutgoingStatus::Pending);
    // Still no consent before bob answers.
    assert_no_consent(alice.invite(&room, &bob_id).await, "bob@b.example");
    // Bilateral: alice's request told b.example that bob may add alice.
    wait_granted(&bob, "alice@a.example").await?;

    bob.accept_request(&alice_id, None).await?;
    assert!(incoming(&bob).await.is_empty(), "the request was answered");
    wait_granted(&alice, "bob@b.example").await?;
    alice.invite(&room, &bob_id).await?;
    sync_until_joined(&mut bob, &room).await?;

    // ...and bob may add alice to a room of his, without asking.
    let bobs = bob.create_room().await?;
    bob.invite(&bobs, &alice_id).await?;
    sync_until_joined(&mut alice, &bobs).await?;
    fed.shutdown().await;
    Ok(())
}

/// A decline deletes the request and is not told to the requester, whose
/// request stays pending; key material stays refused.
#[tokio::test]
async fn a_decline_is_silent_and_consent_stays_refused() -> Result<()> {
    let fed = federation(&[A, B]).await;
    let mut carol = fed.register("carol@a.example", "laptop").await?;
    let bob = fed.register("bob@b.example", "phone").await?;
    let bob_id = user("bob@b.example");
    carol.request_consent(&bob_id, None).await?;
    wait_incoming(&bob, "carol@a.example").await?;
    bob.decline_request(&user("carol@a.example")).await?;
    assert!(incoming(&bob).await.is_empty());
    let theirs = carol.consent_requests().await?;
    assert_eq!(theirs.outgoing[0].status, OutgoingStatus::Pending);
    let room = carol.create_room().await?;
    assert_no_consent(carol.invite(&room, &bob_id).await, "bob@b.example");
    fed.shutdown().await;
    Ok(())
}

/// A block deletes the blocked user's pending request and bob's consent, makes
/// bob's device leave their two-person room, refuses key material and drops new
/// requests silently (the requester's provider gets 201); unblocking lets them
/// ask again, and an accepted request works again.
#[tokio::test]
async fn block_removes_requests_and_consent_then_unblock_restores() -> Result<()> {
    let fed = federation(&[A, B]).await;
    let mut mallory = fed.register("mallory@a.example", "laptop").await?;
    let carol = fed.register("carol@a.example", "laptop").await?;
    let mut bob = fed.register("bob@b.example", "phone").await?;
    let (bob_id, mallory_id) = (user("bob@b.example"), user("mallory@a.example"));

    mallory.request_consent(&bob_id, None).await?;
    wait_incoming(&bob, "mallory@a.example").await?;
    bob.accept_request(&mallory_id, None).await?;
    let chat = mallory.create_room().await?;
    mallory.invite(&chat, &bob_id).await?;
    sync_until_joined(&mut bob, &chat).await?;
    // A second request, for a room, is pending when bob blocks.
    let other = mallory.create_room().await?;
    mallory.request_consent(&bob_id, Some(&other)).await?;
    wait_incoming(&bob, "mallory@a.example").await?;

    let outcome = bob.block(&mallory_id).await?;
    assert_eq!(outcome.left_rooms, vec![chat.clone()]);
    assert!(incoming(&bob).await.is_empty(), "pending requests vanish");
    let blocked = bob.blocked_users().await?;
    assert_eq!(blocked.blocked.len(), 1);
    assert_eq!(blocked.blocked[0].user, "mallory@a.example");
    assert!(bob.rooms()?.iter().all(|r| r.room != chat));

    // Key material is refused, with the same answer as "no consent".
    assert_no_consent(mallory.invite(&other, &bob_id).await, "bob@b.example");
    // A new request is accepted by a.example and dropped by b.example: carol's
    // later request (same queue, same order) arrives, mallory's never shows.
    mallory.request_consent(&bob_id, None).await?;
    carol.request_consent(&bob_id, None).await?;
    wait_incoming(&bob, "carol@a.example").await?;
    assert_eq!(incoming(&bob).await, vec!["carol@a.example".to_owned()]);
    // Asked directly, b.example answers 201 too: the block is not revealed.
    let (status, body) = mimi_post(
        &fed,
        A,
        B,
        "requestConsent",
        B,
        entry(
            ConsentOperation::Request,
            "mallory@a.example",
            "bob@b.example",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{}", lossy(&body));
    assert_eq!(incoming(&bob).await, vec!["carol@a.example".to_owned()]);

    // Unblock: consent is not restored by itself, but mallory may ask again.
    bob.unblock(&mallory_id).await?;
    assert!(bob.blocked_users().await?.blocked.is_empty());
    assert_no_consent(mallory.invite(&other, &bob_id).await, "bob@b.example");
    mallory.request_consent(&bob_id, None).await?;
    wait_incoming(&bob, "mallory@a.example").await?;
    bob.accept_request(&mallory_id, None).await?;
    mallory.invite(&other, &bob_id).await?;
    sync_until_joined(&mut bob, &other).await?;
    fed.shutdown().await;
    Ok(())
}

// ------------------------------------------------------------------ Signal

/// Signal bundles follow the same rules, for local and remote requesters; a
/// peer must name the requester, a user of its own domain.
#[tokio::test]
async fn signal_bundles_need_consent_locally_and_across_providers() -> Result<()> {
    let fed = federation(&[A, B]).await;
    let bob = Device::register(&fed, "bob@b.example", "phone", 1, None).await?;
    let _: PreKeyStatus = bob
        .call(
            Method::POST,
            "/v1/signal/prekeys",
            &bob.prekeys(1..5, 1..3, true, true),
        )
        .await?;
    let alice = Device::register(&fed, "alice@a.example", "laptop", 1, None).await?;
    let carol = Device::register(&fed, "carol@b.example", "laptop", 1, None).await?;

    for (who, name) in [(&alice, "alice"), (&carol, "carol (local)")] {
        let (status, body) = who
            .signed(Method::GET, &bundles_path("bob@b.example"), Vec::new())
            .await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}: {}", lossy(&body));
        let (code, message) = api_error(&body);
        assert_eq!(code, "no_consent", "{name}: {message}");
        assert!(
            message.contains("bob@b.example has not accepted a request from you"),
            "{message}"
        );
    }

    // The federation route needs the requester, of the peer's own domain.
    let fed_url = format!(
        "https://b.example/entente/v1/signal/bundles/{}",
        path_segment("mimi://b.example/u/bob")
    );
    for (body, want) in [
        (String::new(), StatusCode::BAD_REQUEST),
        (
            r#"{"requester":"mimi://b.example/u/carol"}"#.to_owned(),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let r = as_provider(&fed, A)
            .post(&fed_url)
            .header("from", "mimi@a.example")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        assert_eq!(r.status(), want, "{body}: {}", r.text().await?);
    }

    // bob accepts alice (no request needed): alice gets bundles, carol still not.
    consent_call(&bob, "accept", "alice@a.example").await;
    let got: UserBundles = alice
        .call(Method::GET, &bundles_path("bob@b.example"), &())
        .await?;
    assert_eq!(got.devices.len(), 1);
    let (status, _) = carol
        .signed(Method::GET, &bundles_path("bob@b.example"), Vec::new())
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A block refuses them again, in the same words.
    consent_call(&bob, "block", "alice@a.example").await;
    let (status, body) = alice
        .signed(Method::GET, &bundles_path("bob@b.example"), Vec::new())
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(api_error(&body).0, "no_consent");
    fed.shutdown().await;
    Ok(())
}

// ------------------------------------------------------------------ malicious providers

/// c.example, turned malicious, forges requesters and targets of other domains
/// and replays a grant; every attempt is refused and changes nothing.
#[tokio::test]
async fn a_malicious_provider_cannot_forge_requesters_or_replay_grants() -> Result<()> {
    let fed = federation(&[A, B, C]).await;
    let alice = fed.register("alice@a.example", "laptop").await?;
    let bob = fed.register("bob@b.example", "phone").await?;
    let bob_dev = Device::register(&fed, "dave@b.example", "phone", 1, None).await?;
    let _: PreKeyStatus = bob_dev
        .call(
            Method::POST,
            "/v1/signal/prekeys",
            &bob_dev.prekeys(1..3, 1..2, true, true),
        )
        .await?;

    // A request in alice's name from c.example.
    let (status, body) = mimi_post(
        &fed,
        C,
        B,
        "requestConsent",
        B,
        entry(
            ConsentOperation::Request,
            "alice@a.example",
            "bob@b.example",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{}", lossy(&body));
    assert!(
        api_error(&body)
            .1
            .contains("requesterUri must be a user of your domain")
    );

    // The real thing: alice asks, bob accepts; the grant goes to a.example.
    alice.request_consent(&user("bob@b.example"), None).await?;
    wait_incoming(&bob, "alice@a.example").await?;
    bob.accept_request(&user("alice@a.example"), None).await?;
    wait_granted(&alice, "bob@b.example").await?;

    // c.example replays bob's grant (to a.example, for another of a's users, and
    // to b.example itself): only bob's provider speaks for bob.
    let carol_a = fed.register("carol@a.example", "laptop").await?;
    for (to, requester) in [(A, "carol@a.example"), (B, "dave@b.example")] {
        let (status, body) = mimi_post(
            &fed,
            C,
            to,
            "updateConsent",
            to,
            entry(ConsentOperation::Grant, requester, "bob@b.example"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{to}: {}", lossy(&body));
    }
    assert!(carol_a.consent_requests().await?.outgoing.is_empty());
    // A grant sent to the wrong endpoint, or to the wrong domain's path.
    let (status, _) = mimi_post(
        &fed,
        C,
        B,
        "requestConsent",
        B,
        entry(ConsentOperation::Grant, "eve@c.example", "bob@b.example"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = mimi_post(
        &fed,
        C,
        B,
        "requestConsent",
        A,
        entry(ConsentOperation::Request, "eve@c.example", "bob@b.example"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Garbage is refused; an unknown target is answered 201 (not revealed).
    let (status, _) = mimi_post(&fed, C, B, "requestConsent", B, vec![9, 9, 9]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = mimi_post(
        &fed,
        C,
        B,
        "requestConsent",
        B,
        entry(
            ConsentOperation::Request,
            "eve@c.example",
            "nobody@b.example",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // Signal bundles claimed in alice's name (who has consent from... nobody at
    // dave) by c.example: refused for the domain, whatever the consent.
    let r = as_provider(&fed, C)
        .post(format!(
            "https://b.example/entente/v1/signal/bundles/{}",
            path_segment("mimi://b.example/u/dave")
        ))
        .header("from", "mimi@c.example")
        .header("content-type", "application/json")
        .body(r#"{"requester":"mimi://a.example/u/alice"}"#)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Nothing of this reached bob's requests.
    assert!(incoming(&bob).await.is_empty());
    fed.shutdown().await;
    Ok(())
}

/// mallory@a.example, blocked by bob, is an admin of a room hubbed by a third
/// provider, c.example; the hub claims bob's KeyPackages for mallory at
/// b.example, which refuses. The hub's owner, whom bob accepted, can add him.
#[tokio::test]
async fn a_blocked_user_gets_no_key_material_through_a_third_providers_hub() -> Result<()> {
    let fed = federation(&[A, B, C]).await;
    let mut carol = fed.register("carol@c.example", "laptop").await?;
    let mut mallory = fed.register("mallory@a.example", "laptop").await?;
    let mut bob = fed.register("bob@b.example", "phone").await?;
    let (bob_id, mallory_id, carol_id) = (
        user("bob@b.example"),
        user("mallory@a.example"),
        user("carol@c.example"),
    );

    // mallory asks carol (which also lets carol add mallory) and bob; bob accepts,
    // then blocks.
    mallory.request_consent(&carol_id, None).await?;
    mallory.request_consent(&bob_id, None).await?;
    wait_incoming(&bob, "mallory@a.example").await?;
    bob.accept_request(&mallory_id, None).await?;
    bob.block(&mallory_id).await?;

    let room = carol.create_room().await?;
    wait_requests(&carol, "mallory's grant", |r| {
        r.outgoing.iter().any(|o| o.user == "mallory@a.example")
    })
    .await?;
    carol.invite_as(&room, &mallory_id, roles::ADMIN).await?;
    sync_until_joined(&mut mallory, &room).await?;
    assert_no_consent(mallory.invite(&room, &bob_id).await, "bob@b.example");

    // The hub itself is not the problem: bob accepts carol, carol adds him.
    bob.accept_request(&carol_id, None).await?;
    carol.invite(&room, &bob_id).await?;
    sync_until_joined(&mut bob, &room).await?;
    fed.shutdown().await;
    Ok(())
}

/// The provider cannot see who sent a sealed message, so a block also holds on
/// the blocker's device: whatever a blocked user sends on a session made before
/// the block (here mallory's first session, still a PreKey session from a bundle
/// she fetched before) is dropped before decryption, with no event; another
/// sender's later message (same provider, same queue, so it arrives after) is
/// delivered. After an unblock, messages are no longer dropped by the device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_messages_from_a_blocked_user_are_dropped_by_the_device() -> Result<()> {
    use entente_client::Protocols;
    let fed = federation(&[A, B]).await;
    let register = |name: &'static str, device: &'static str, p: Protocols| {
        let fed = &fed;
        async move {
            let id = user(name);
            Client::register_with(
                fed.client_options(id.domain().as_str(), id.name())?,
                &id,
                device,
                None,
                p,
            )
            .await
            .map_err(anyhow::Error::from)
        }
    };
    let mallory = register("mallory@a.example", "laptop", Protocols::MlsAndSignal).await?;
    let carol = register("carol@a.example", "laptop", Protocols::MlsAndSignal).await?;
    let mut bob = register("bob@b.example", "phone", Protocols::SignalOnly).await?;
    let (mallory_id, carol_id) = (user("mallory@a.example"), user("carol@a.example"));
    bob.accept_request(&mallory_id, None).await?;
    bob.accept_request(&carol_id, None).await?;

    let texts_until = |want: &'static str| {
        move |events: &[Event]| {
            events
                .iter()
                .any(|e| matches!(e, Event::Direct(d) if d.text.as_deref() == Some(want)))
        }
    };
    let sync_until = async |bob: &mut Client, want: &'static str| -> Result<Vec<Event>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut events = Vec::new();
        loop {
            events.extend(bob.sync().await?);
            if texts_until(want)(&events) {
                return Ok(events);
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {want:?}: {events:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };

    mallory
        .send_direct_text(bob.user(), "before", false)
        .await?;
    sync_until(&mut bob, "before").await?;

    bob.block(&mallory_id).await?;
    mallory
        .send_direct_text(bob.user(), "after the block", false)
        .await?;
    carol.send_direct_text(bob.user(), "canary", false).await?;
    let events = sync_until(&mut bob, "canary").await?;
    assert!(
        events.iter().all(|e| match e {
            Event::Direct(d) => d.sender != mallory_id,
            Event::Rejected { .. } => false,
            _ => true,
        }),
        "a blocked user's sealed message reached bob's device: {events:?}"
    );

    // Unblocked, the device no longer drops her messages (she can reach bob
    // again once she asks and he accepts; her old session is gone on his side,
    // so this one is refused as undecryptable, not dropped silently).
    bob.unblock(&mallory_id).await?;
    mallory.send_direct_text(bob.user(), "again", false).await?;
    carol
        .send_direct_text(bob.user(), "canary 2", false)
        .await?;
    let events = sync_until(&mut bob, "canary 2").await?;
    assert!(
        events.iter().any(|e| matches!(e, Event::Rejected { .. })),
        "after the unblock the device processes her message: {events:?}"
    );
    fed.shutdown().await;
    Ok(())
}
