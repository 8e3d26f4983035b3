//! Adversarial end-to-end tests: real providers on loopback (real TLS, real SQLite),
//! real clients, and the test itself playing the attacker.
//!
//! The test holds the federation's throwaway CA, so it can get a TLS certificate for
//! any domain and act as a *malicious provider* speaking MIMI with mutual TLS; and it
//! can register a device and sign client-API requests by hand, acting as a
//! *malicious client*. Its MLS group operations use OpenMLS directly.
//!
//! Every case checks three things: the attack gets a clear error (an HTTP status with
//! a JSON `ApiError`, a MIMI response code, or a client-side `Untrusted` error /
//! `Event::Rejected`); the provider keeps serving (a legitimate message sent after
//! the attack still flows end to end); and nothing is lost or duplicated (messages
//! before and after arrive exactly once).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, helpers included"
)]

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::Signer as _;
use entente_client::{Client, ClientError, Event};
use entente_core::identity::{CertificateError, IssuerPublicKey};
use entente_core::mls::{CIPHERSUITE, MlsCheckError, SIGNATURE_SCHEME};
use entente_core::room::{ROOM_STATE_EXTENSION_TYPE, RoomState, roles};
use entente_testkit::Federation;
use entente_tls::DevCa;
use entente_wire::api::{
    self, ApiError, CreateRoomCall, CreateRoomResponse, HubAnswer, KeyMaterialCall,
    KeyMaterialResult, KeyPackageStatus, ProviderInfo, RegisterRequest, RegisterResponse,
    SubmitCall, UpdateCall, UploadKeyPackages, b64, path_segment,
};
use entente_wire::content::MimiContent;
use entente_wire::ids::{ClientId, Domain, RoomId, UserId};
use entente_wire::mimi::{
    ClientKeyMaterial, ClientMaterial, FanoutEvent, FanoutMessage, GroupInfoOption,
    HandshakeBundle, IdentifierUri, KeyMaterialRequestTBS, KeyMaterialResponse,
    KeyMaterialUserCode, MlsMessage, Protocol, RatchetTreeOption, SubmitMessageRequest,
    SubmitMessageResponse, SubmitOutcome, UpdateOutcome, UpdateRequest, UpdateRoomResponse,
};
use openmls::prelude::{
    BasicCredential, Capabilities, CredentialWithKey, Extension, ExtensionType, Extensions,
    GroupContext, GroupId, KeyPackage, KeyPackageIn, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY, MlsGroup,
    MlsGroupCreateConfig, MlsMessageBodyIn, MlsMessageOut, ProcessedMessageContent,
    ProtocolVersion, RatchetTreeIn, RequiredCapabilitiesExtension, SenderRatchetConfiguration,
    UnknownExtension, VerifiableCiphersuite,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::OpenMlsProvider as _;
use openmls_traits::signatures::Signer as _;
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};
use tls_codec::{Deserialize as _, Serialize as _, TlsSerialize, TlsSize, VLBytes};

const A: &str = "a.example";
const B: &str = "b.example";
const C: &str = "c.example";

// ------------------------------------------------------------------ 1. forged credentials

/// Certificates for bob@b.example that b.example did not issue are refused by the
/// verification every client runs (with the issuer keys the providers really
/// publish), and a KeyPackage carrying one cannot be uploaded to a provider, nor a
/// key-material request signed under one be served.
#[tokio::test]
async fn forged_credentials_are_refused() {
    let fed = Federation::start(&[A, B]).await.unwrap();
    let ca = DevCa::load(fed.root().join("ca")).unwrap();
    let now = now_secs();

    // The issuer keys, as clients get them: b.example's through a.example (fetched over
    // mutual TLS) agrees with what b.example itself publishes.
    let b_issuer = issuer_via(&fed, A, B).await;
    assert_eq!(b_issuer, issuer_via(&fed, B, B).await);
    let a_issuer = issuer_via(&fed, B, A).await;

    let mallory = RawClient::register(&fed, "mallory@b.example", "laptop").await;
    let bob_phone: ClientId = "mimi://b.example/d/bob/phone".parse().unwrap();
    let key = mallory.signer.public().to_vec();
    let verify = |cert: &[u8], issuer: &IssuerPublicKey| {
        entente_core::mls::verify_credential(
            &BasicCredential::new(cert.to_vec()).into(),
            &key,
            issuer,
            now,
        )
    };

    // Controls: the certificate b.example issued verifies, and the forging helper makes
    // well-formed certificates (one signed with b.example's own issuer key verifies).
    verify(&mallory.cert, &b_issuer).expect("a genuine certificate must verify");
    let b_seed = issuer_seed(&fed, B);
    let genuine = forge_certificate(&bob_phone, &key, &b_seed, now);
    verify(&genuine, &b_issuer).expect("a certificate signed by b.example's key must verify");

    // Forged by a.example's issuer key, and by a random key.
    let by_a = forge_certificate(&bob_phone, &key, &issuer_seed(&fed, A), now);
    let by_random = forge_certificate(&bob_phone, &key, &rand::random(), now);
    for (what, cert) in [("a.example's key", &by_a), ("a random key", &by_random)] {
        for issuer in [&b_issuer, &a_issuer] {
            let err = verify(cert, issuer).expect_err(what);
            assert!(
                matches!(
                    err,
                    MlsCheckError::Credential(CertificateError::BadSignature { .. })
                ),
                "bob@b.example certified by {what}: {err:?}"
            );
            assert!(
                err.to_string()
                    .contains("not signed by b.example's issuer key"),
                "{err}"
            );
        }
    }
    // A genuine certificate presented with another leaf key, and one with a flipped bit.
    let err = entente_core::mls::verify_credential(
        &BasicCredential::new(mallory.cert.clone()).into(),
        &[7; 32],
        &b_issuer,
        now,
    )
    .unwrap_err();
    assert!(matches!(err, MlsCheckError::KeyMismatch { .. }), "{err:?}");
    let mut flipped = mallory.cert.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(matches!(
        verify(&flipped, &b_issuer),
        Err(MlsCheckError::Credential(
            CertificateError::BadSignature { .. }
        ))
    ));

    // End to end: mallory@b.example uploads KeyPackages with forged credentials.
    let mallory_id = mallory.id.to_string();
    let forged_for_mallory = forge_certificate(&mallory.id, &key, &rand::random(), now);
    for (what, cert, expect) in [
        (
            "a forged certificate for bob",
            by_random.clone(),
            vec!["bob/phone", "uploaded by", mallory_id.as_str()],
        ),
        (
            "bob's certificate, forged with b.example's own issuer key",
            genuine.clone(),
            vec!["bob/phone", "uploaded by"],
        ),
        (
            "her own identity certified by a random key",
            forged_for_mallory,
            vec![
                mallory_id.as_str(),
                "other than the one its provider issued",
            ],
        ),
    ] {
        let kp = mallory.key_package(Some(cert), false);
        let (status, body) = mallory
            .signed(Method::POST, "/v1/key-packages", upload(vec![kp], None))
            .await;
        let e = api_error(status, &body, 400, what);
        for needle in expect {
            assert!(e.message.contains(needle), "{what}: {e:?} lacks {needle:?}");
        }
    }
    // Also as the last-resort KeyPackage, and mixed with a valid one: all or nothing.
    let good = mallory.key_package(None, false);
    let forged_last = mallory.key_package(Some(by_a.clone()), true);
    let (status, body) = mallory
        .signed(
            Method::POST,
            "/v1/key-packages",
            upload(vec![good], Some(forged_last)),
        )
        .await;
    api_error(status, &body, 400, "a forged last-resort KeyPackage");
    let status: KeyPackageStatus = mallory.call(Method::GET, "/v1/key-packages", vec![]).await;
    assert_eq!(status.available, 0, "nothing of a refused upload is kept");
    assert!(!status.has_last_resort);

    // The provider still serves: a valid upload is accepted.
    let good = mallory.key_package(None, false);
    let status: KeyPackageStatus = mallory
        .call(Method::POST, "/v1/key-packages", upload(vec![good], None))
        .await;
    assert_eq!(status.available, 1);

    // A provider (here a.example, as hub of its room) claiming mallory's KeyPackage on
    // behalf of a requester whose credential is forged is refused; with the genuine
    // credential the same claim succeeds.
    let hub = Peer::new(&fed, &ca, A);
    let alice = RawClient::register(&fed, "alice@a.example", "laptop").await;
    let room = random_room(A);
    let alice_key = alice.signer.public().to_vec();
    let forged_alice = forge_certificate(&alice.id, &alice_key, &rand::random(), now);
    let forged_request =
        alice.key_material_request(&room, &mallory.user(), &alice.credential_with(forged_alice));
    let target = mallory.user().to_string();
    let (status, body) = hub.post(B, "keyMaterial", &target, forged_request).await;
    let e = api_error(
        status,
        &body,
        401,
        "a key-material request under a forged credential",
    );
    assert!(
        e.message.contains("requester credential")
            && e.message.contains("not signed by a.example's issuer key"),
        "{e:?}"
    );
    let request = alice.key_material_request(&room, &mallory.user(), &alice.credential());
    let (status, body) = hub.post(B, "keyMaterial", &target, request).await;
    assert_eq!(status, StatusCode::OK, "{}", lossy(&body));
    assert_eq!(key_packages(&body, &mallory.user()).len(), 1);

    // And the federation still carries a conversation.
    alice_and_bob_chat(&fed).await;
    fed.shutdown().await;
}

/// A provider answering for b.example hands Alice's hub a KeyPackage for bob whose
/// certificate b.example's issuer key did not sign. The hub relays it (it checks only
/// MLS validity), and Alice's client refuses to add it; once the real b.example is
/// back, inviting Bob works and messages flow.
#[tokio::test]
async fn forged_key_package_from_a_malicious_provider_is_not_added() {
    let mut fed = Federation::start(&[A, B]).await.unwrap();
    let ca = DevCa::load(fed.root().join("ca")).unwrap();
    let alice_id = user("alice@a.example");
    let bob_id = user("bob@b.example");
    let mut alice = Client::register(
        fed.client_options(A, "alice").unwrap(),
        &alice_id,
        "laptop",
        None,
    )
    .await
    .unwrap();
    let mut bob = Client::register(
        fed.client_options(B, "bob").unwrap(),
        &bob_id,
        "phone",
        None,
    )
    .await
    .unwrap();
    // b.example's genuine issuer key (also cached by a.example from now on).
    let b_issuer = issuer_via(&fed, A, B).await;

    // The impostor: b.example's TLS identity, b.example's genuine issuer key, but a
    // KeyPackage whose certificate for bob's phone is signed by another key.
    let crypto = OpenMlsRustCrypto::default();
    let signer = SignatureKeyPair::new(SIGNATURE_SCHEME).unwrap();
    let bob_phone: ClientId = "mimi://b.example/d/bob/phone".parse().unwrap();
    let forged = forge_certificate(&bob_phone, signer.public(), &rand::random(), now_secs());
    let kp = KeyPackage::builder()
        .build(
            CIPHERSUITE,
            &crypto,
            &signer,
            CredentialWithKey {
                credential: BasicCredential::new(forged).into(),
                signature_key: signer.public().into(),
            },
        )
        .unwrap();
    let kp_in =
        KeyPackageIn::tls_deserialize_exact(kp.key_package().tls_serialize_detached().unwrap())
            .unwrap();
    let response = KeyMaterialResponse {
        protocol: Protocol::Mls10,
        user_status: KeyMaterialUserCode::Success,
        user_uri: IdentifierUri::from(&bob_id),
        clients: vec![ClientKeyMaterial {
            client_uri: IdentifierUri::from(&bob_phone),
            material: ClientMaterial::Success(Box::new(kp_in)),
        }],
    }
    .encode()
    .unwrap();
    fed.stop(B).await.unwrap();
    let info = ProviderInfo {
        domain: B.into(),
        issuer_key: b_issuer.to_bytes().to_vec(),
    };
    let router = axum::Router::new()
        .route(
            "/.well-known/entente-issuer",
            axum::routing::get(move || {
                let info = info.clone();
                async move { axum::Json(info) }
            }),
        )
        .route(
            "/mimi/v1/keyMaterial/{target}",
            axum::routing::post(move || {
                let response = response.clone();
                async move { ([("content-type", "application/mimi-protocol")], response) }
            }),
        );
    let impostor = FakeProvider::start(&fed, &ca, B, router).await;

    let err = alice.start_chat(&bob_id).await.unwrap_err();
    match &err {
        ClientError::Untrusted(m) => {
            assert!(m.contains("not signed by b.example's issuer key"), "{err}")
        }
        other => panic!("expected Untrusted, got {other:?}"),
    }
    let rooms = alice.rooms().unwrap();
    assert_eq!(rooms.len(), 1);
    let room = rooms[0].room.clone();
    assert_eq!(
        alice.member_clients(&room).unwrap(),
        vec![alice.id().clone()]
    );
    assert_eq!(rooms[0].epoch, 0, "no commit was made");

    impostor.stop().await;
    fed.restart(B).await.unwrap();
    alice.invite(&room, &bob_id).await.unwrap();
    let events = sync_until(&mut bob, "Bob's Welcome", |e| joined(e).is_some()).await;
    assert_eq!(joined(&events), Some(&room));
    alice
        .send_text(&room, "after the impostor", false)
        .await
        .unwrap();
    let events = sync_until(&mut bob, "Alice's message", |e| {
        texts(e).contains(&"after the impostor".to_owned())
    })
    .await;
    assert_eq!(texts(&events), ["after the impostor"]);
    assert!(rejections(&events).is_empty(), "{events:?}");
    bob.send_text(&room, "reply", false).await.unwrap();
    let events = sync_until(&mut alice, "Bob's reply", |e| !texts(e).is_empty()).await;
    assert_eq!(texts(&events), ["reply"]);
    fed.shutdown().await;
}

/// A hub whose Welcome lists a member with a forged credential: Bob's client reports
/// it rejected and does not join; a genuine Welcome afterwards works.
///
/// The room is real (the hub tracks its group, and a second user of b.example in it
/// makes b.example a follower that tracks it too), so b.example accepts the hub's
/// notify; the forged Welcome is for a group the test made up with the same id.
#[tokio::test]
async fn forged_credential_in_a_welcome_is_rejected() {
    let fed = Federation::start(&[A, B]).await.unwrap();
    let ca = DevCa::load(fed.root().join("ca")).unwrap();
    let bob_id = user("bob@b.example");
    let mut bob = Client::register(
        fed.client_options(B, "bob").unwrap(),
        &bob_id,
        "phone",
        None,
    )
    .await
    .unwrap();
    let carol = Client::register(
        fed.client_options(B, "carol").unwrap(),
        &user("carol@b.example"),
        "phone",
        None,
    )
    .await
    .unwrap();
    let mut alice = RawClient::register(&fed, "alice@a.example", "laptop").await;
    let hub = Peer::new(&fed, &ca, A);
    let room = alice.create_room().await;
    alice.invite(&room, carol.user()).await;

    // The malicious hub: the same device and room, a certificate it forged.
    let mut forger = alice.fork();
    let key = forger.signer.public().to_vec();
    let forged = forge_certificate(&forger.id, &key, &rand::random(), now_secs());
    forged_welcome_via_fake_hub(&mut forger, &hub, &room, forged).await;
    let events = bob.sync().await.unwrap();
    let reasons = rejections(&events);
    assert_eq!(reasons.len(), 1, "{events:?}");
    assert!(
        reasons[0].contains("not signed by a.example's issuer key"),
        "{reasons:?}"
    );
    assert!(joined(&events).is_none(), "{events:?}");
    assert!(bob.rooms().unwrap().is_empty(), "Bob must not join");
    let err = bob.send_text(&room, "hello?", false).await.unwrap_err();
    assert!(matches!(err, ClientError::Usage(_)), "{err:?}");

    // The genuine Welcome, through the real hub.
    alice.invite(&room, &bob_id).await;
    let events = sync_until(&mut bob, "Bob's Welcome", |e| joined(e).is_some()).await;
    assert_eq!(joined(&events), Some(&room), "{events:?}");
    assert!(rejections(&events).is_empty(), "{events:?}");
    alice.submit_text(&room, "genuine").await;
    let events = sync_until(&mut bob, "genuine", |e| !texts(e).is_empty()).await;
    assert_eq!(texts(&events), ["genuine"]);
    let rooms: Vec<RoomId> = bob.rooms().unwrap().into_iter().map(|r| r.room).collect();
    assert_eq!(rooms, [room]);
    fed.shutdown().await;
}

// ------------------------------------------------------------------ 2. tampered ciphertext

/// The test plays the hub of a real room with Bob (on the real b.example) and sends
/// him messages through `notify`, one with a flipped bit: Bob's client rejects
/// exactly that one, keeps the others, and decrypts what comes after.
#[tokio::test]
async fn tampered_ciphertext_is_rejected_and_later_messages_decrypt() {
    let mut h = HubRoom::start().await;
    let ca = DevCa::load(h.fed.root().join("ca")).unwrap();
    let hub = Peer::new(&h.fed, &ca, A);
    let room = h.room.clone();

    for text in ["one", "two", "TAMPERED", "three"] {
        let msg = h.alice.encrypt(&room, text);
        let msg = if text == "TAMPERED" {
            tamper(&msg)
        } else {
            msg
        };
        hub.notify(B, &room, application_fanout(&msg)).await;
    }
    let events = h.bob.sync().await.unwrap();
    let reasons = rejections(&events);
    assert_eq!(texts(&events), ["one", "two", "three"], "{events:?}");
    assert_eq!(reasons.len(), 1, "{events:?}");
    assert!(!reasons[0].is_empty());
    // In order: the rejection sits where the tampered message was.
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::Message(_) => "message",
            Event::Rejected { .. } => "rejected",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["message", "message", "rejected", "message"]);

    let msg = h.alice.encrypt(&room, "four");
    hub.notify(B, &room, application_fanout(&msg)).await;
    let events = h.bob.sync().await.unwrap();
    assert_eq!(texts(&events), ["four"]);
    assert_eq!(history(&h.bob, &room), ["one", "two", "three", "four"]);
    h.fed.shutdown().await;
}

// ------------------------------------------------------------------ 3. replays

/// A notify body sent twice is answered 201 both times and delivered once; an old
/// one replayed later is not delivered again (the hub's own Welcome included,
/// replayed byte for byte).
#[tokio::test]
async fn replayed_notify_is_delivered_once() {
    let mut h = HubRoom::start().await;
    let ca = DevCa::load(h.fed.root().join("ca")).unwrap();
    let hub = Peer::new(&h.fed, &ca, A);
    let room = h.room.clone();
    // The test rebuilt the hub's Welcome notify exactly: b.example has recorded it.
    assert!(
        notify_seen(&h.fed, B, A, &h.welcome_fanout),
        "the rebuilt Welcome notify differs from the one the hub sent"
    );

    let first = application_fanout(&h.alice.encrypt(&room, "first"));
    hub.notify(B, &room, first.clone()).await;
    assert_eq!(texts(&h.bob.sync().await.unwrap()), ["first"]);

    let second = application_fanout(&h.alice.encrypt(&room, "second"));
    hub.notify(B, &room, second.clone()).await;
    hub.notify(B, &room, second.clone()).await;
    // Replays of old ones, including the Welcome and one batched with a new message.
    hub.notify(B, &room, first.clone()).await;
    hub.notify(B, &room, h.welcome_fanout.clone()).await;
    let third = application_fanout(&h.alice.encrypt(&room, "third"));
    let batch = [second.clone(), third].concat();
    hub.notify(B, &room, batch).await;
    let events = h.bob.sync().await.unwrap();
    // A second delivery would show as a duplicate text or, since MLS refuses to
    // decrypt a generation twice, as a rejection.
    assert_eq!(texts(&events), ["second", "third"], "{events:?}");
    assert!(rejections(&events).is_empty(), "{events:?}");
    assert!(joined(&events).is_none(), "{events:?}");
    assert_eq!(history(&h.bob, &room), ["first", "second", "third"]);
    h.fed.shutdown().await;
}

/// Through the client API: the same SubmitMessageRequest submitted twice is accepted
/// once (the second answer carries the first acceptance time) and delivered once;
/// the very same signed HTTP request replayed is refused 401.
#[tokio::test]
async fn replayed_submission_and_signed_request() {
    let mut h = HubRoom::start().await;
    h.alice_to_bob("before").await;

    let request = submit_request(&h.alice.encrypt(&h.room, "twice"), &h.alice.user());
    let first = h.alice.submit(&h.room, request.clone()).await;
    let again = h.alice.submit(&h.room, request).await;
    let SubmitOutcome::Accepted {
        accepted_timestamp, ..
    } = first
    else {
        panic!("{first:?}")
    };
    match again {
        SubmitOutcome::Accepted {
            accepted_timestamp: t,
            ..
        } => assert_eq!(
            t, accepted_timestamp,
            "a duplicate keeps its first timestamp"
        ),
        other => panic!("{other:?}"),
    }

    let path = room_path(&h.room, "messages");
    let request = submit_request(&h.alice.encrypt(&h.room, "signed once"), &h.alice.user());
    let body = json(&SubmitCall { request });
    let auth = h.alice.authorization("POST", &path, &body, now_secs());
    let (status, answer) = h
        .alice
        .request(Method::POST, &path, body.clone(), Some(auth.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{}", lossy(&answer));
    let (status, answer) = h.alice.request(Method::POST, &path, body, Some(auth)).await;
    let e = api_error(status, &answer, 401, "a replayed signed request");
    assert!(e.message.contains("do not replay"), "{e:?}");

    // A sentinel: fanout to b.example is in order, so once it arrives anything
    // duplicated would have arrived before it.
    h.alice.submit_text(&h.room, "after").await;
    let events = sync_until(&mut h.bob, "the sentinel", |e| {
        texts(e).contains(&"after".to_owned())
    })
    .await;
    assert_eq!(
        texts(&events),
        ["twice", "signed once", "after"],
        "{events:?}"
    );
    assert!(rejections(&events).is_empty(), "{events:?}");
    h.bob_to_alice("reply").await;
    assert_eq!(
        history(&h.bob, &h.room),
        ["before", "twice", "signed once", "after", "reply"]
    );
    h.fed.shutdown().await;
}

// ------------------------------------------------------------------ 4. malformed input

/// Garbage, truncated, empty and oversized bodies to every MIMI endpoint, and MIMI
/// requests from peers that are not who they claim: each gets a 4xx with a message.
#[tokio::test]
async fn malformed_and_unauthenticated_mimi_requests() {
    let mut h = HubRoom::start().await;
    h.alice_to_bob("before").await;
    let ca = DevCa::load(h.fed.root().join("ca")).unwrap();
    let as_a = Peer::new(&h.fed, &ca, A);
    let as_b = Peer::new(&h.fed, &ca, B);
    let as_c = Peer::new(&h.fed, &ca, C);
    let room = h.room.to_string();
    let bob = h.bob.user().to_string();

    // Valid bodies to truncate. None of these is ever delivered.
    let key_material = h
        .alice
        .key_material_request(&h.room, h.bob.user(), &h.alice.credential());
    let submit = submit_request(&h.alice.encrypt(&h.room, "never sent"), &h.alice.user());
    let notify = application_fanout(&h.alice.encrypt(&h.room, "never sent either"));
    let limit = h.fed.members[A].config.limits.max_body_bytes;
    // (sender, receiving provider, endpoint, parameter, valid body, what the error names)
    let cases = [
        (
            &as_b,
            A,
            "keyMaterial",
            bob.as_str(),
            key_material.as_slice(),
            "KeyMaterialRequest",
        ),
        (
            &as_b,
            A,
            "update",
            room.as_str(),
            h.update_request.as_slice(),
            "UpdateRequest",
        ),
        (
            &as_b,
            A,
            "submitMessage",
            room.as_str(),
            submit.as_slice(),
            "SubmitMessageRequest",
        ),
        (
            &as_a,
            B,
            "notify",
            room.as_str(),
            notify.as_slice(),
            "notify body",
        ),
    ];
    for (peer, to, endpoint, param, valid, names) in cases {
        let bodies = [
            ("garbage", b"\x00\x01\xffnot a MIMI message at all".to_vec()),
            ("truncated", valid[..valid.len() / 2].to_vec()),
            ("one byte short", valid[..valid.len() - 1].to_vec()),
            ("with a trailing byte", [valid, &[0][..]].concat()),
            ("empty", Vec::new()),
        ];
        for (what, body) in bodies {
            let (status, answer) = peer.post(to, endpoint, param, body).await;
            let e = api_error(status, &answer, 400, &format!("{endpoint}: {what}"));
            assert!(e.message.contains(names), "{endpoint}: {what}: {e:?}");
        }
        let (status, answer) = peer.post(to, endpoint, param, vec![0; limit + 1]).await;
        api_error(status, &answer, 413, &format!("{endpoint}: oversized"));
    }
    let (status, answer) = as_b
        .post(A, "submitMessage", "not a room", submit.clone())
        .await;
    api_error(status, &answer, 400, "a room id that does not parse");

    // Who is asking: no client certificate, no or a wrong From header.
    let anonymous = Peer {
        domain: A.into(),
        http: https(&h.fed, None),
    };
    let from_a = Some(format!("mimi@{A}"));
    let (status, answer) = anonymous
        .post_from(B, "notify", &room, notify.clone(), from_a.clone())
        .await;
    let e = api_error(status, &answer, 401, "notify without a client certificate");
    assert!(e.message.contains("client certificate"), "{e:?}");
    let (status, answer) = as_c
        .post_from(B, "notify", &room, notify.clone(), from_a.clone())
        .await;
    let e = api_error(status, &answer, 401, "c.example claiming to be a.example");
    assert!(e.message.contains("not valid for a.example"), "{e:?}");
    for from in [None, Some(A.to_owned()), Some("mimi@".to_owned())] {
        let (status, answer) = as_a
            .post_from(B, "notify", &room, notify.clone(), from.clone())
            .await;
        let e = api_error(status, &answer, 401, &format!("From: {from:?}"));
        assert!(e.message.contains("From"), "{e:?}");
    }
    // A notify for a.example's room from c.example, and from b.example to a.example.
    let (status, answer) = as_c.post(B, "notify", &room, notify.clone()).await;
    let e = api_error(
        status,
        &answer,
        403,
        "notify from a provider that is not the hub",
    );
    assert!(e.message.contains("not the hub"), "{e:?}");
    let (status, answer) = as_b.post(A, "notify", &room, notify.clone()).await;
    api_error(status, &answer, 403, "notify from a follower to the hub");

    // The providers still serve, and nothing was lost or duplicated.
    h.alice_to_bob("after").await;
    h.bob_to_alice("reply").await;
    assert_eq!(history(&h.bob, &h.room), ["before", "after", "reply"]);
    h.fed.shutdown().await;
}

/// Garbage, truncated and oversized bodies to the client API, and requests that are
/// unsigned, badly signed, replayed or from a skewed clock.
#[tokio::test]
async fn malformed_and_unauthenticated_client_requests() {
    let mut h = HubRoom::start().await;
    h.alice_to_bob("before").await;
    let room = h.room.clone();
    let limit = h.fed.members[A].config.limits.max_body_bytes;

    let submit = submit_request(&h.alice.encrypt(&room, "never sent"), &h.alice.user());
    let kp = h.alice.key_package(None, false);
    let key_material = h
        .alice
        .key_material_request(&room, h.bob.user(), &h.alice.credential());
    let cases = [
        (
            room_path(&room, "messages"),
            wrapped(&submit, |request| json(&SubmitCall { request })),
            "SubmitMessageRequest",
        ),
        (
            room_path(&room, "update"),
            wrapped(&h.update_request, |request| json(&UpdateCall { request })),
            "UpdateRequest",
        ),
        (
            room_path(&room, "key-material"),
            wrapped(&key_material, |request| json(&KeyMaterialCall { request })),
            "KeyMaterialRequest",
        ),
        (
            "/v1/key-packages".to_owned(),
            wrapped(&kp, |kp| upload(vec![kp], None)),
            "KeyPackage",
        ),
    ];
    for (path, bodies, names) in cases {
        for (what, body) in bodies {
            let (status, answer) = h.alice.signed(Method::POST, &path, body).await;
            let e = api_error(status, &answer, 400, &format!("{path}: {what}"));
            if what.starts_with("request") {
                assert!(e.message.contains(names), "{path}: {what}: {e:?}");
            }
        }
        let (status, answer) = h
            .alice
            .signed(Method::POST, &path, vec![b' '; limit + 1])
            .await;
        api_error(status, &answer, 413, &format!("{path}: oversized"));
    }
    for (path, body) in [
        ("/v1/inbox/ack", br#"{"up_to": "all"}"#.to_vec()),
        (
            "/v1/rooms/not%20a%20room/messages",
            json(&SubmitCall {
                request: submit.clone(),
            }),
        ),
    ] {
        let (status, answer) = h.alice.signed(Method::POST, path, body).await;
        api_error(status, &answer, 400, path);
    }
    for body in [b"{".to_vec(), br#"{"user": "eve@a.example"}"#.to_vec()] {
        let (status, answer) = h
            .alice
            .request(Method::POST, "/v1/register", body, None)
            .await;
        api_error(status, &answer, 400, "register with a bad body");
    }
    let (status, answer) = h
        .alice
        .request(Method::POST, "/v1/register", vec![b' '; limit + 1], None)
        .await;
    api_error(status, &answer, 413, "register: oversized");

    // Authentication: what is wrong, and what to do about it.
    let path = room_path(&room, "messages");
    let body = json(&SubmitCall {
        request: submit.clone(),
    });
    let now = now_secs();
    let mallory = SignatureKeyPair::new(SIGNATURE_SCHEME).unwrap();
    let badly_signed = {
        let good = h.alice.authorization("POST", &path, &body, now);
        let (head, _) = good.rsplit_once("sig=").unwrap();
        let sig = mallory.sign(b"something else").unwrap();
        format!(r#"{head}sig="{}""#, b64::encode(&sig))
    };
    let unknown = h
        .alice
        .authorization("POST", &path, &body, now)
        .replace("/d/alice/laptop", "/d/alice/tablet");
    let cases = [
        (None, "sign the request"),
        (Some("Bearer abc".to_owned()), "Entente"),
        (Some(badly_signed), "registered"),
        (
            Some(h.alice.authorization("POST", &path, &body, now - 3600)),
            "check your clock",
        ),
        (
            Some(h.alice.authorization("POST", &path, &body, now + 3600)),
            "check your clock",
        ),
        (Some(unknown), "register it first"),
        // Signed for another path, and for another body.
        (
            Some(h.alice.authorization("POST", "/v1/rooms", &body, now)),
            "registered",
        ),
        (
            Some(h.alice.authorization("POST", &path, b"{}", now)),
            "registered",
        ),
    ];
    for (auth, says) in cases {
        let (status, answer) = h
            .alice
            .request(Method::POST, &path, body.clone(), auth.clone())
            .await;
        let e = api_error(status, &answer, 401, &format!("Authorization: {auth:?}"));
        assert_eq!(e.code, "unauthenticated");
        assert!(
            e.message.contains(says),
            "{auth:?}: {e:?} should say {says:?}"
        );
    }

    // Nothing of the above was delivered, and the provider still serves.
    h.alice_to_bob("after").await;
    h.bob_to_alice("reply").await;
    assert_eq!(history(&h.bob, &h.room), ["before", "after", "reply"]);
    h.fed.shutdown().await;
}

// ------------------------------------------------------------------ 5. sender spoofing

/// A follower may submit only for its own users, and only into rooms it takes part
/// in; a client only as itself.
#[tokio::test]
async fn follower_cannot_submit_for_another_domain() {
    let mut h = HubRoom::start().await;
    h.alice_to_bob("before").await;
    let ca = DevCa::load(h.fed.root().join("ca")).unwrap();
    let as_b = Peer::new(&h.fed, &ca, B);
    let as_c = Peer::new(&h.fed, &ca, C);
    let room = h.room.to_string();

    for sender in ["alice@a.example", "carol@c.example"] {
        let request = submit_request(&h.alice.encrypt(&h.room, "spoofed"), &user(sender));
        let (status, answer) = as_b.post(A, "submitMessage", &room, request).await;
        assert_eq!(status, StatusCode::OK, "{}", lossy(&answer));
        let r = SubmitMessageResponse::decode(&answer).unwrap();
        assert_eq!(
            r.outcome,
            SubmitOutcome::NotAllowed,
            "b.example sending as {sender}"
        );
    }
    let request = submit_request(
        &h.alice.encrypt(&h.room, "spoofed"),
        &user("carol@c.example"),
    );
    let (status, answer) = as_c.post(A, "submitMessage", &room, request).await;
    let e = api_error(status, &answer, 403, "a provider with no participants");
    assert!(e.message.contains("no participants"), "{e:?}");
    // Alice's own provider will not let her send as Bob either.
    let request = submit_request(&h.alice.encrypt(&h.room, "spoofed"), h.bob.user());
    assert_eq!(
        h.alice.submit(&h.room, request).await,
        SubmitOutcome::NotAllowed
    );

    h.alice_to_bob("after").await;
    h.bob_to_alice("reply").await;
    assert_eq!(history(&h.bob, &h.room), ["before", "after", "reply"]);
    h.fed.shutdown().await;
}

// ================================================================== helpers

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn user(s: &str) -> UserId {
    s.parse().unwrap()
}

fn random_room(hub: &str) -> RoomId {
    RoomId::new(
        &hex::encode(rand::random::<[u8; 16]>()),
        Domain::parse(hub).unwrap(),
    )
    .unwrap()
}

fn room_path(room: &RoomId, tail: &str) -> String {
    format!("/v1/rooms/{}/{tail}", path_segment(&room.to_string()))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(400)]).into_owned()
}

fn json(v: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn upload(key_packages: Vec<Vec<u8>>, last_resort: Option<Vec<u8>>) -> Vec<u8> {
    json(&UploadKeyPackages {
        key_packages,
        last_resort,
    })
}

/// Bad variants of a client-API JSON body around valid MIMI/MLS bytes `valid`.
fn wrapped(valid: &[u8], wrap: impl Fn(Vec<u8>) -> Vec<u8>) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("JSON garbage", b"{\"request\": ".to_vec()),
        (
            "not base64",
            br#"{"request": "%%%", "key_packages": ["%%%"]}"#.to_vec(),
        ),
        ("request garbage", wrap(b"\x00\x01\xffgarbage".to_vec())),
        ("request truncated", wrap(valid[..valid.len() / 2].to_vec())),
        (
            "request one byte short",
            wrap(valid[..valid.len() - 1].to_vec()),
        ),
        (
            "request with a trailing byte",
            wrap([valid, &[0][..]].concat()),
        ),
    ]
}

/// Asserts an error answer: the status, and a JSON `ApiError` with a message.
fn api_error(status: StatusCode, body: &[u8], want: u16, what: &str) -> ApiError {
    assert_eq!(
        status.as_u16(),
        want,
        "{what}: expected HTTP {want}, got {status}: {}",
        lossy(body)
    );
    let e: ApiError = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{what}: the {status} answer is not a JSON ApiError ({e}): {:?}",
            lossy(body)
        )
    });
    assert!(
        !e.code.is_empty() && e.message.len() > 10,
        "{what}: unhelpful error {e:?}"
    );
    e
}

/// An HTTPS client that trusts the federation's CA, reaches every member at its
/// loopback address, and presents `identity` if asked.
fn https(fed: &Federation, identity: Option<&entente_tls::Identity>) -> reqwest::Client {
    let anchors = DevCa::load(fed.root().join("ca"))
        .unwrap()
        .trust_anchors()
        .unwrap();
    let tls = entente_tls::client_config(&anchors, identity).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .timeout(Duration::from_secs(30));
    for (domain, m) in &fed.members {
        b = b.resolve(domain, m.config.listen);
    }
    b.build().unwrap()
}

/// `domain`'s issuer key as `via`'s public API hands it to clients.
async fn issuer_via(fed: &Federation, via: &str, domain: &str) -> IssuerPublicKey {
    let r = https(fed, None)
        .get(format!("https://{via}/v1/providers/{domain}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let info: ProviderInfo = r.json().await.unwrap();
    assert_eq!(info.domain, domain);
    IssuerPublicKey::from_bytes(Domain::parse(domain).unwrap(), &info.issuer_key).unwrap()
}

/// A provider's issuer key seed, read from its data directory: what a provider that
/// turned malicious (or an attacker with its disk) could sign with.
fn issuer_seed(fed: &Federation, domain: &str) -> [u8; 32] {
    std::fs::read(fed.members[domain].config.issuer_key_path())
        .unwrap()
        .try_into()
        .unwrap()
}

/// `entente_core::identity`'s certificate format, encoded here so that the test can
/// sign certificates `IssuerKey::certify` refuses to make (another domain's client).
#[derive(TlsSize, TlsSerialize)]
struct CertificateTbs {
    version: u8,
    client_uri: VLBytes,
    signature_key: VLBytes,
    not_before: u64,
    not_after: u64,
}

#[derive(TlsSize, TlsSerialize)]
struct Certificate {
    tbs: CertificateTbs,
    issuer_signature: VLBytes,
}

/// A certificate for `client` and `signature_key`, valid around `now`, signed by the
/// Ed25519 key with seed `issuer_seed`.
fn forge_certificate(
    client: &ClientId,
    signature_key: &[u8],
    issuer_seed: &[u8; 32],
    now: u64,
) -> Vec<u8> {
    let tbs = CertificateTbs {
        version: 1,
        client_uri: client.to_string().into_bytes().into(),
        signature_key: signature_key.to_vec().into(),
        not_before: now - 3600,
        not_after: now + 86_400,
    };
    let mut signed = b"entente client certificate v1".to_vec();
    signed.extend(tbs.tls_serialize_detached().unwrap());
    let sig = ed25519_dalek::SigningKey::from_bytes(issuer_seed).sign(&signed);
    Certificate {
        tbs,
        issuer_signature: sig.to_bytes().to_vec().into(),
    }
    .tls_serialize_detached()
    .unwrap()
}

/// What our leaves announce, as entente-client's keys.rs: the last_resort KeyPackage
/// extension and the room state GroupContext extension (without it a KeyPackage
/// cannot be added to a room: rooms require it).
fn capabilities() -> Capabilities {
    Capabilities::builder()
        .extensions(vec![
            ExtensionType::LastResort,
            ExtensionType::Unknown(ROOM_STATE_EXTENSION_TYPE),
        ])
        .build()
}

/// The configuration of a new room's group, as entente-client's manage.rs and
/// rooms.rs make it: every member must support the room state extension, which
/// holds `creator` as the only participant, an owner.
fn create_config(room: &RoomId, creator: &UserId) -> MlsGroupCreateConfig {
    let required = Extension::RequiredCapabilities(RequiredCapabilitiesExtension::new(
        &[ExtensionType::Unknown(ROOM_STATE_EXTENSION_TYPE)],
        &[],
        &[],
    ));
    let state = state_extension(&RoomState::new(room, creator, ""));
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .capabilities(capabilities())
        .with_group_context_extensions(Extensions::from_vec(vec![required, state]).unwrap())
        .use_ratchet_tree_extension(false)
        .max_past_epochs(5)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(100, 1000))
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build()
}

fn state_extension(state: &RoomState) -> Extension {
    Extension::Unknown(
        ROOM_STATE_EXTENSION_TYPE,
        UnknownExtension(state.encode().unwrap()),
    )
}

/// The room state a group carries.
fn room_state(group: &MlsGroup) -> RoomState {
    group
        .extensions()
        .iter()
        .find_map(|e| match e {
            Extension::Unknown(t, u) if *t == ROOM_STATE_EXTENSION_TYPE => {
                Some(RoomState::decode(&u.0).unwrap())
            }
            _ => None,
        })
        .expect("the group carries no room state")
}

/// The group's GroupContext extensions with `state` in place of its room state.
fn extensions_with(group: &MlsGroup, state: &RoomState) -> Extensions<GroupContext> {
    let mut exts: Vec<Extension> = group
        .extensions()
        .iter()
        .filter(|e| !matches!(e, Extension::Unknown(t, _) if *t == ROOM_STATE_EXTENSION_TYPE))
        .cloned()
        .collect();
    exts.push(state_extension(state));
    Extensions::from_vec(exts).unwrap()
}

/// Whether provider `at` has recorded (deduplicated) a notify with exactly `body`
/// from `from`.
fn notify_seen(fed: &Federation, at: &str, from: &str, body: &[u8]) -> bool {
    let conn = rusqlite::Connection::open_with_flags(
        fed.database_path(at).unwrap(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM dedup WHERE scope = ?1 AND key = ?2",
        rusqlite::params![format!("notify:{from}"), Sha256::digest(body).to_vec()],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        == 1
}

/// The validated KeyPackages of a KeyMaterialResponse for `target`.
fn key_packages(response: &[u8], target: &UserId) -> Vec<KeyPackage> {
    let r = KeyMaterialResponse::decode(response).unwrap();
    assert_eq!(r.user_uri.as_bytes(), target.to_string().as_bytes());
    r.clients
        .into_iter()
        .filter_map(|c| match c.material {
            ClientMaterial::Success(kp) => Some(
                kp.validate(
                    OpenMlsRustCrypto::default().crypto(),
                    ProtocolVersion::Mls10,
                )
                .unwrap(),
            ),
            _ => None,
        })
        .collect()
}

fn submit_request(msg: &MlsMessage, sender: &UserId) -> Vec<u8> {
    SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: msg.clone(),
        sending_uri: IdentifierUri::from(sender),
    }
    .encode()
    .unwrap()
}

fn application_fanout(msg: &MlsMessage) -> Vec<u8> {
    FanoutMessage {
        timestamp: now_secs() * 1000,
        event: FanoutEvent::Application {
            message: msg.clone(),
            frank: None,
        },
    }
    .encode()
    .unwrap()
}

/// The same PrivateMessage with one bit of its ciphertext flipped.
fn tamper(msg: &MlsMessage) -> MlsMessage {
    let mut bytes = msg.tls_serialize_detached().unwrap();
    let i = bytes.len() - 20;
    bytes[i] ^= 0x10;
    MlsMessage::tls_deserialize_exact(&bytes).unwrap()
}

fn reparse(out: MlsMessageOut) -> MlsMessage {
    MlsMessage::from(out)
}

/// Texts of the messages among `events`, in order.
fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.text.clone().unwrap_or_default()),
            _ => None,
        })
        .collect()
}

fn rejections(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Rejected { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect()
}

fn joined(events: &[Event]) -> Option<&RoomId> {
    events.iter().find_map(|e| match e {
        Event::Joined { room, .. } => Some(room),
        _ => None,
    })
}

fn history(client: &Client, room: &RoomId) -> Vec<String> {
    client
        .history(room, 1000)
        .unwrap()
        .into_iter()
        .map(|e| e.text.unwrap_or_default())
        .collect()
}

/// Syncs until `done` holds for everything received so far (or fails after 20 s).
async fn sync_until(
    client: &mut Client,
    what: &str,
    done: impl Fn(&[Event]) -> bool,
) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut events = Vec::new();
    loop {
        events.extend(client.sync().await.unwrap());
        if done(&events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; got {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two real clients start a chat and exchange a message each way.
async fn alice_and_bob_chat(fed: &Federation) {
    let (alice_id, bob_id) = (user("dave@a.example"), user("erin@b.example"));
    let mut alice = Client::register(
        fed.client_options(A, "dave").unwrap(),
        &alice_id,
        "phone",
        None,
    )
    .await
    .unwrap();
    let mut bob = Client::register(
        fed.client_options(B, "erin").unwrap(),
        &bob_id,
        "phone",
        None,
    )
    .await
    .unwrap();
    let room = alice.start_chat(&bob_id).await.unwrap();
    sync_until(&mut bob, "Bob's Welcome", |e| joined(e).is_some()).await;
    alice.send_text(&room, "hello", false).await.unwrap();
    let events = sync_until(&mut bob, "hello", |e| !texts(e).is_empty()).await;
    assert_eq!(texts(&events), ["hello"]);
    bob.send_text(&room, "hi", false).await.unwrap();
    let events = sync_until(&mut alice, "hi", |e| !texts(e).is_empty()).await;
    assert_eq!(texts(&events), ["hi"]);
}

/// The test as hub of `room` (a.example): creates an MLS group with the room's id as
/// Alice, with `forged` as her certificate, claims a KeyPackage of Bob's from
/// b.example and notifies b.example of the Welcome. b.example accepts the notify
/// only if it can get the room's group state from the real hub, so the room must
/// exist there with b.example following it.
async fn forged_welcome_via_fake_hub(
    alice: &mut RawClient,
    hub: &Peer,
    room: &RoomId,
    forged: Vec<u8>,
) {
    alice.create_group(room, alice.credential_with(forged));
    let bob = user("bob@b.example");
    let request = alice.key_material_request(room, &bob, &alice.credential());
    let (status, body) = hub.post(B, "keyMaterial", &bob.to_string(), request).await;
    assert_eq!(status, StatusCode::OK, "{}", lossy(&body));
    let kps = key_packages(&body, &bob);
    assert_eq!(kps.len(), 1);
    let added = alice.add(room, &kps);
    hub.notify(B, room, added.welcome_fanout).await;
}

/// A provider identity the test plays: a TLS client certificate for `domain` from
/// the federation's CA.
struct Peer {
    domain: String,
    http: reqwest::Client,
}

impl Peer {
    fn new(fed: &Federation, ca: &DevCa, domain: &str) -> Self {
        let identity = ca.issue(domain).unwrap().identity().unwrap();
        Self {
            domain: domain.into(),
            http: https(fed, Some(&identity)),
        }
    }

    /// POSTs a MIMI request to `to`, from our domain.
    async fn post(
        &self,
        to: &str,
        endpoint: &str,
        param: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let from = Some(format!("mimi@{}", self.domain));
        self.post_from(to, endpoint, param, body, from).await
    }

    async fn post_from(
        &self,
        to: &str,
        endpoint: &str,
        param: &str,
        body: Vec<u8>,
        from: Option<String>,
    ) -> (StatusCode, Vec<u8>) {
        let mut req = self
            .http
            .post(format!(
                "https://{to}/mimi/v1/{endpoint}/{}",
                path_segment(param)
            ))
            .header("content-type", "application/mimi-protocol")
            .body(body);
        if let Some(f) = from {
            req = req.header("from", f);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.bytes().await.unwrap().to_vec())
    }

    /// Notifies `to` of fanout in `room`, which it must accept (201).
    async fn notify(&self, to: &str, room: &RoomId, body: Vec<u8>) {
        let (status, answer) = self.post(to, "notify", &room.to_string(), body).await;
        assert_eq!(status, StatusCode::CREATED, "notify: {}", lossy(&answer));
    }
}

/// A TLS server the test runs on a stopped member's address.
struct FakeProvider {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeProvider {
    async fn start(fed: &Federation, ca: &DevCa, domain: &str, router: axum::Router) -> Self {
        let identity = ca.issue(domain).unwrap().identity().unwrap();
        let tls = entente_tls::server_config(&identity, &ca.trust_anchors().unwrap()).unwrap();
        let addr = fed.members[domain].config.listen;
        let mut listener = None;
        for _ in 0..50 {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let listener = listener.expect("binding the stopped provider's address");
        let (stop, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            entente_tls::serve(listener, tls, router, rx).await.unwrap();
        });
        Self { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// What adding members produced.
struct Added {
    /// The MIMI UpdateRequest (commit, Welcome, GroupInfo, full tree) for the hub.
    update_request: Vec<u8>,
    /// The Welcome as a hub fans it out (timestamped now, or, once the real hub
    /// accepted the commit, with the hub's timestamp: the hub's notify exactly).
    welcome_fanout: Vec<u8>,
    welcome: MlsMessage,
    tree: RatchetTreeIn,
}

impl Added {
    /// The Welcome's FanoutMessage as a hub that accepted the commit at `timestamp`
    /// (milliseconds) encodes it.
    fn welcome_fanout_at(&self, timestamp: u64) -> Vec<u8> {
        FanoutMessage {
            timestamp,
            event: FanoutEvent::Welcome {
                welcome: self.welcome.clone(),
                ratchet_tree: RatchetTreeOption::Full(self.tree.clone()),
            },
        }
        .encode()
        .unwrap()
    }
}

/// A device registered with a real provider whose requests and MLS operations the
/// test makes by hand.
struct RawClient {
    id: ClientId,
    cert: Vec<u8>,
    signer: SignatureKeyPair,
    http: reqwest::Client,
    base: String,
    mls: OpenMlsRustCrypto,
    groups: HashMap<String, MlsGroup>,
    inbox_cursor: u64,
}

impl RawClient {
    async fn register(fed: &Federation, user_id: &str, device: &str) -> Self {
        let u = user(user_id);
        let id = ClientId::new(&u, device).unwrap();
        let signer = SignatureKeyPair::new(SIGNATURE_SCHEME).unwrap();
        let proof = signer
            .sign(&api::registration_proof_message(
                &id.to_string(),
                &b64::encode(signer.public()),
            ))
            .unwrap();
        let mut c = Self {
            id,
            cert: Vec::new(),
            http: https(fed, None),
            base: format!("https://{}", u.domain()),
            signer,
            mls: OpenMlsRustCrypto::default(),
            groups: HashMap::new(),
            inbox_cursor: 0,
        };
        let body = json(&RegisterRequest {
            user: u.to_string(),
            device: device.into(),
            signature_key: c.signer.public().to_vec(),
            proof,
            link_code: None,
        });
        let (status, answer) = c.request(Method::POST, "/v1/register", body, None).await;
        assert_eq!(status, StatusCode::OK, "{}", lossy(&answer));
        let r: RegisterResponse = serde_json::from_slice(&answer).unwrap();
        c.cert = r.certificate;
        c
    }

    fn user(&self) -> UserId {
        self.id.user().clone()
    }

    fn credential(&self) -> CredentialWithKey {
        self.credential_with(self.cert.clone())
    }

    fn credential_with(&self, cert: Vec<u8>) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(cert).into(),
            signature_key: self.signer.public().into(),
        }
    }

    /// A KeyPackage of this device, with its own certificate or `cert` instead.
    fn key_package(&self, cert: Option<Vec<u8>>, last_resort: bool) -> Vec<u8> {
        let credential = match cert {
            Some(c) => self.credential_with(c),
            None => self.credential(),
        };
        let mut b = KeyPackage::builder().leaf_node_capabilities(capabilities());
        if last_resort {
            b = b.mark_as_last_resort();
        }
        b.build(CIPHERSUITE, &self.mls, &self.signer, credential)
            .unwrap()
            .key_package()
            .tls_serialize_detached()
            .unwrap()
    }

    /// The `Authorization` header value for a request, signed at `ts`.
    fn authorization(&self, method: &str, path: &str, body: &[u8], ts: u64) -> String {
        let nonce = hex::encode(rand::random::<[u8; 12]>());
        let msg = api::signed_request_message(
            method,
            path,
            ts,
            &nonce,
            &hex::encode(Sha256::digest(body)),
        );
        let sig = self.signer.sign(&msg).unwrap();
        format!(
            r#"{} client="{}", ts="{ts}", nonce="{nonce}", sig="{}""#,
            api::AUTH_SCHEME,
            self.id,
            b64::encode(&sig)
        )
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        auth: Option<String>,
    ) -> (StatusCode, Vec<u8>) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(a) = auth {
            req = req.header(api::AUTH_HEADER, a);
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json").body(body);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.bytes().await.unwrap().to_vec())
    }

    async fn signed(&self, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        let auth = self.authorization(method.as_str(), path, &body, now_secs());
        self.request(method, path, body, Some(auth)).await
    }

    /// A signed request that must succeed; its JSON answer.
    async fn call<R: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> R {
        let (status, answer) = self.signed(method, path, body).await;
        assert!(status.is_success(), "{path}: {status}: {}", lossy(&answer));
        serde_json::from_slice(&answer).unwrap()
    }

    /// Creates the MLS group of `room` locally, as entente-client's manage.rs does:
    /// the room URI as group id, this device as its only member, our user as owner
    /// in the room state.
    fn create_group(&mut self, room: &RoomId, credential: CredentialWithKey) {
        let group = MlsGroup::new_with_group_id(
            &self.mls,
            &self.signer,
            &create_config(room, &self.user()),
            GroupId::from_slice(room.to_string().as_bytes()),
            credential,
        )
        .unwrap();
        self.groups.insert(room.to_string(), group);
    }

    /// Creates a room on our provider (as its hub) with a group made here.
    async fn create_room(&mut self) -> RoomId {
        let room = random_room(self.id.domain().as_str());
        self.create_group(&room, self.credential());
        let group = &self.groups[&room.to_string()];
        let group_info = group
            .export_group_info(self.mls.crypto(), &self.signer, false)
            .unwrap()
            .tls_serialize_detached()
            .unwrap();
        let ratchet_tree = group
            .export_ratchet_tree()
            .tls_serialize_detached()
            .unwrap();
        let call = CreateRoomCall {
            room: room.to_string(),
            group_info,
            ratchet_tree,
        };
        let r: CreateRoomResponse = self.call(Method::POST, "/v1/rooms", json(&call)).await;
        assert_eq!(r.room, room.to_string());
        room
    }

    /// A new device with this one's identity and keys but none of its MLS state.
    fn fork(&self) -> Self {
        Self {
            id: self.id.clone(),
            cert: self.cert.clone(),
            signer: SignatureKeyPair::tls_deserialize_exact(
                self.signer.tls_serialize_detached().unwrap(),
            )
            .unwrap(),
            http: self.http.clone(),
            base: self.base.clone(),
            mls: OpenMlsRustCrypto::default(),
            groups: HashMap::new(),
            inbox_cursor: 0,
        }
    }

    /// Adds all devices of `target` with a KeyPackage (claimed through the hub) and
    /// makes them a member, through the real hub, which must accept.
    async fn invite(&mut self, room: &RoomId, target: &UserId) -> Added {
        let request = self.key_material_request(room, target, &self.credential());
        let r: KeyMaterialResult = self
            .call(
                Method::POST,
                &room_path(room, "key-material"),
                json(&KeyMaterialCall { request }),
            )
            .await;
        let kps = key_packages(&r.response, target);
        assert_eq!(kps.len(), 1);
        let mut added = self.add(room, &kps);
        let a: HubAnswer = self
            .call(
                Method::POST,
                &room_path(room, "update"),
                json(&UpdateCall {
                    request: added.update_request.clone(),
                }),
            )
            .await;
        let r = UpdateRoomResponse::decode(&a.response).unwrap();
        let UpdateOutcome::Success { accepted_timestamp } = r.outcome else {
            panic!("the hub refused the add: {r:?}")
        };
        added.welcome_fanout = added.welcome_fanout_at(accepted_timestamp);
        added
    }

    /// A signed MIMI KeyMaterialRequest, as entente-client's frames.rs makes it.
    fn key_material_request(
        &self,
        room: &RoomId,
        target: &UserId,
        credential: &CredentialWithKey,
    ) -> Vec<u8> {
        let tbs = KeyMaterialRequestTBS {
            protocol: Protocol::Mls10,
            requesting_user: IdentifierUri::from(&self.user()),
            target_user: IdentifierUri::from(target),
            room_id: IdentifierUri::from(room),
            acceptable_ciphersuites: vec![VerifiableCiphersuite::from(CIPHERSUITE)],
            required_capabilities: RequiredCapabilitiesExtension::default(),
            requester_signature_key: credential.signature_key.clone(),
            requester_credential: credential.credential.clone(),
        };
        let content =
            entente_core::mls::sign_content("KeyMaterialRequestTBS", &tbs.encode().unwrap())
                .unwrap();
        let sig = self.signer.sign(&content).unwrap();
        tbs.into_request(sig).encode().unwrap()
    }

    /// Commits adding `kps` (their users as members of the room) and merges it at
    /// once (the tests' hubs accept it).
    fn add(&mut self, room: &RoomId, kps: &[KeyPackage]) -> Added {
        let group = self.groups.get_mut(&room.to_string()).unwrap();
        let mut state = room_state(group);
        for kp in kps {
            let c = entente_core::mls::certificate_in(kp.leaf_node().credential()).unwrap();
            let u = c.claimed_client().user();
            if state.role_of(u) == roles::NONE {
                state.set_role(u, roles::MEMBER);
            }
        }
        let extensions = extensions_with(group, &state);
        let provider = &self.mls;
        let bundle = group
            .commit_builder()
            .propose_adds(kps.iter().cloned())
            .propose_group_context_extensions(extensions)
            .unwrap()
            .force_self_update(true)
            .load_psks(provider.storage())
            .unwrap()
            .create_group_info(true)
            .build(provider.rand(), provider.crypto(), &self.signer, |_| true)
            .unwrap()
            .stage_commit(provider)
            .unwrap();
        let welcome_out = bundle.to_welcome_msg().unwrap();
        let (commit, _, group_info) = bundle.into_contents();
        group.merge_pending_commit(provider).unwrap();
        let tree = group
            .export_ratchet_tree()
            .tls_serialize_detached()
            .unwrap();
        let tree = RatchetTreeIn::tls_deserialize_exact(tree.as_slice()).unwrap();
        let welcome = reparse(welcome_out);
        let MlsMessageBodyIn::Welcome(w) = welcome.clone().into_body() else {
            panic!("not a Welcome")
        };
        let MlsMessageBodyIn::GroupInfo(gi) = reparse(group_info.unwrap().into()).into_body()
        else {
            panic!("not a GroupInfo")
        };
        let update_request = UpdateRequest {
            bundle: HandshakeBundle::Commit {
                commit: reparse(commit),
                welcome: Some(w),
                group_info: GroupInfoOption::Full(Box::new(gi)),
                ratchet_tree: RatchetTreeOption::Full(tree.clone()),
            },
        }
        .encode()
        .unwrap();
        let mut added = Added {
            update_request,
            welcome_fanout: Vec::new(),
            welcome,
            tree,
        };
        added.welcome_fanout = added.welcome_fanout_at(now_secs() * 1000);
        added
    }

    /// Encrypts `text` as MIMI content for `room`.
    fn encrypt(&mut self, room: &RoomId, text: &str) -> MlsMessage {
        let content = MimiContent::text(text, false, rand::random()).encode();
        let group = self.groups.get_mut(&room.to_string()).unwrap();
        reparse(
            group
                .create_message(&self.mls, &self.signer, &content)
                .unwrap(),
        )
    }

    async fn submit(&self, room: &RoomId, request: Vec<u8>) -> SubmitOutcome {
        let a: HubAnswer = self
            .call(
                Method::POST,
                &room_path(room, "messages"),
                json(&SubmitCall { request }),
            )
            .await;
        SubmitMessageResponse::decode(&a.response).unwrap().outcome
    }

    async fn submit_text(&mut self, room: &RoomId, text: &str) {
        let request = submit_request(&self.encrypt(room, text), &self.user());
        let outcome = self.submit(room, request).await;
        assert!(
            matches!(outcome, SubmitOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }

    /// Fetches, decrypts and acks the inbox: the texts received.
    async fn receive(&mut self) -> Vec<String> {
        let page: api::InboxPage = self
            .call(
                Method::GET,
                &format!("/v1/inbox?after={}", self.inbox_cursor),
                vec![],
            )
            .await;
        let mut out = Vec::new();
        for item in page.items {
            self.inbox_cursor = item.seq;
            let f = FanoutMessage::decode(&item.fanout).unwrap();
            let msg = f.event.message().clone().into_protocol_message().unwrap();
            let group = self.groups.get_mut(&item.room).unwrap();
            let processed = group.process_message(&self.mls, msg).unwrap();
            if let ProcessedMessageContent::ApplicationMessage(app) = processed.into_content() {
                let content = MimiContent::decode(&app.into_bytes()).unwrap();
                out.push(content.display_text().unwrap().text.to_owned());
            }
        }
        let _: api::Ack = self
            .call(
                Method::POST,
                "/v1/inbox/ack",
                json(&api::Ack {
                    up_to: self.inbox_cursor,
                }),
            )
            .await;
        out
    }
}

/// A room on the real hub a.example: Alice a hand-driven device of a.example who
/// created it, Bob a real client of b.example she added (so b.example is a follower).
struct HubRoom {
    fed: Federation,
    alice: RawClient,
    bob: Client,
    room: RoomId,
    /// The UpdateRequest that added Bob (a valid body to mangle).
    update_request: Vec<u8>,
    /// The hub's notify to b.example with Bob's Welcome, byte for byte.
    welcome_fanout: Vec<u8>,
}

impl HubRoom {
    async fn start() -> Self {
        let fed = Federation::start(&[A, B]).await.unwrap();
        let bob_id = user("bob@b.example");
        let mut bob = Client::register(
            fed.client_options(B, "bob").unwrap(),
            &bob_id,
            "phone",
            None,
        )
        .await
        .unwrap();
        let mut alice = RawClient::register(&fed, "alice@a.example", "laptop").await;
        let room = alice.create_room().await;
        let added = alice.invite(&room, &bob_id).await;
        let events = sync_until(&mut bob, "Bob's Welcome", |e| joined(e).is_some()).await;
        assert!(rejections(&events).is_empty(), "{events:?}");
        Self {
            fed,
            alice,
            bob,
            room,
            update_request: added.update_request,
            welcome_fanout: added.welcome_fanout,
        }
    }

    /// Alice sends `text`; Bob receives exactly it.
    async fn alice_to_bob(&mut self, text: &str) {
        self.alice.submit_text(&self.room, text).await;
        let events = sync_until(&mut self.bob, text, |e| !texts(e).is_empty()).await;
        assert_eq!(texts(&events), [text], "{events:?}");
        assert!(rejections(&events).is_empty(), "{events:?}");
    }

    /// Bob sends `text`; Alice receives exactly it (the hub delivers to its own
    /// clients before it answers).
    async fn bob_to_alice(&mut self, text: &str) {
        self.bob.send_text(&self.room, text, false).await.unwrap();
        assert_eq!(self.alice.receive().await, [text]);
    }
}
