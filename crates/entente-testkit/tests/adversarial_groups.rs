//! Adversarial tests of the hub's group checks: every commit is checked against MLS,
//! the room policy, who submits it, and the GroupInfo it must come with; new rooms
//! against what a room's first group must be; and followers check the group state
//! they fetch from the hub.
//!
//! Real providers on loopback (real TLS, real SQLite). The legitimate parties are
//! real clients (`entente_client::Client`); the attacker is a registered device whose
//! MLS state and commits the test makes with OpenMLS directly, or a provider whose
//! federation identity the test holds (it has the federation's throwaway CA).
//!
//! Every case checks that the bad request is refused with a clear reason (a MIMI
//! `notAllowed` with its description, or an HTTP 4xx/5xx with a JSON `ApiError`),
//! that nothing changed (the hub's epoch and stored GroupInfo, what the members
//! see), and that a legitimate commit or message afterwards still goes through.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, helpers included"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::Signer as _;
use entente_client::{Client, Event};
use entente_core::identity::IssuerPublicKey;
use entente_core::mls::{CIPHERSUITE, SIGNATURE_SCHEME};
use entente_core::room::{ROOM_STATE_EXTENSION_TYPE, RoomState, roles};
use entente_testkit::Federation;
use entente_tls::DevCa;
use entente_wire::api::{
    self, ApiError, CreateRoomCall, CreateRoomResponse, HubAnswer, KeyMaterialCall,
    KeyMaterialResult, ProviderInfo, RegisterRequest, RegisterResponse, SubmitCall, UpdateCall,
    UploadKeyPackages, b64, path_segment,
};
use entente_wire::content::MimiContent;
use entente_wire::ids::{ClientId, Domain, RoomId, UserId};
use entente_wire::mimi::{
    ClientMaterial, FanoutEvent, FanoutMessage, GroupInfoOption, HandshakeBundle, IdentifierUri,
    KeyMaterialRequestTBS, KeyMaterialResponse, MlsMessage, PartialGroupInfo, Protocol,
    RatchetTreeOption, RatchetTreePresence, RoomGroupState, SubmitMessageRequest,
    SubmitMessageResponse, SubmitOutcome, UpdateOutcome, UpdateRequest, UpdateRoomResponse,
};
use openmls::prelude::{
    BasicCredential, Capabilities, CredentialWithKey, Extension, ExtensionType, Extensions,
    GroupContext, GroupId, KeyPackage, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY, MlsGroup,
    MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageOut,
    ProcessedMessageContent, ProtocolVersion, RatchetTreeIn, RequiredCapabilitiesExtension,
    SenderRatchetConfiguration, StagedWelcome, UnknownExtension, VerifiableCiphersuite, Welcome,
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
const DEADLINE: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------ a. room policy

/// Mallory, a member, commits a GroupContextExtensions that makes her an owner. The
/// hub refuses it under the room policy; her ordinary commit afterwards is accepted.
#[tokio::test]
async fn member_cannot_make_itself_owner() {
    let mut s = Scene::start(&[A, B]).await;
    let mut mallory = s.add_raw("mallory@b.example", "laptop").await;
    let room = s.room.clone();
    let before = s.hub_state();

    let mut state = mallory.room_state(&room);
    state.set_role(&mallory.user(), roles::OWNER);
    let crafted = mallory.commit(&room, &[], Some(&state));
    let answer = mallory
        .submit_update(&room, crafted.request(GroupInfoChoice::New))
        .await;
    let reason = not_allowed(&answer, "a member making itself owner");
    assert!(
        reason.contains("room policy")
            && reason.contains("canChangeUserRole")
            && reason.contains("only to other users"),
        "{reason}"
    );
    mallory.discard(&room);
    s.assert_unchanged(&before);
    s.alice.sync().await.unwrap();
    assert_eq!(
        roles_of(&s.alice, &room),
        named(&[("alice", roles::OWNER), ("mallory", roles::MEMBER)])
    );

    // Her commit without the promotion is accepted, and messages flow both ways.
    let crafted = mallory.commit(&room, &[], None);
    let answer = mallory
        .submit_update(&room, crafted.request(GroupInfoChoice::New))
        .await;
    assert_success(&answer);
    mallory.merge(&room);
    assert_eq!(s.hub_state().epoch, before.epoch + 1);
    s.chat_with(&mut mallory, "after").await;
    s.fed.shutdown().await;
}

// ------------------------------------------------------------------ b. adding

/// Mallory, a member, adds Dave (listing him as a member): refused, she lacks
/// canAddParticipant. Made admin, she adds him without listing him: refused, a
/// client of a non-participant may not be in the group. Listing him, she may.
///
/// The hub hands out KeyPackages only for additions the policy allows, so as a
/// member she cannot claim Dave's; she claims them while an admin, and Alice makes
/// her a member again before she tries.
#[tokio::test]
async fn adding_needs_the_capability_and_the_participant_list() {
    let mut s = Scene::start(&[A, B, C]).await;
    let mut mallory = s.add_raw("mallory@b.example", "laptop").await;
    let mut dave = register(&s.fed, "dave@c.example", "tablet").await;
    let room = s.room.clone();
    let (status, answer) = mallory.try_claim(&room, dave.user()).await;
    let e = api_error(
        status,
        &answer,
        403,
        "a member claiming another's KeyPackages",
    );
    assert!(e.message.contains("lacks canAddParticipant"), "{e:?}");

    s.set_role(&mut mallory, roles::ADMIN).await;
    let kps = mallory.claim(&room, dave.user()).await;
    s.set_role(&mut mallory, roles::MEMBER).await;
    let mut listed = mallory.room_state(&room);
    listed.set_role(dave.user(), roles::MEMBER);
    let before = s.hub_state();
    let crafted = mallory.commit(&room, &kps, Some(&listed));
    assert!(crafted.welcome.is_some());
    let answer = mallory
        .submit_update(&room, crafted.request(GroupInfoChoice::New))
        .await;
    let reason = not_allowed(&answer, "a member adding a participant");
    assert!(
        reason.contains("room policy")
            && reason.contains("lacks canAddParticipant")
            && reason.contains("dave"),
        "{reason}"
    );
    mallory.discard(&room);
    s.assert_unchanged(&before);

    // An admin again, she may add participants, but only through the list.
    s.set_role(&mut mallory, roles::ADMIN).await;
    let before = s.hub_state();
    let unlisted = mallory.commit(&room, &kps, None);
    let answer = mallory
        .submit_update(&room, unlisted.request(GroupInfoChoice::New))
        .await;
    let reason = not_allowed(&answer, "adding a client without listing its user");
    assert!(
        reason.contains("room policy")
            && reason.contains("may not be in the group")
            && reason.contains("is not a participant"),
        "{reason}"
    );
    mallory.discard(&room);
    s.assert_unchanged(&before);
    let events = dave.sync().await.unwrap();
    assert!(joined(&events).is_none(), "{events:?}");
    assert!(dave.rooms().unwrap().is_empty());
    s.alice.sync().await.unwrap();
    assert_eq!(
        roles_of(&s.alice, &room),
        named(&[("alice", roles::OWNER), ("mallory", roles::ADMIN)])
    );

    // The same add with the participant list updated goes through.
    let listed = {
        let mut st = mallory.room_state(&room);
        st.set_role(dave.user(), roles::MEMBER);
        st
    };
    let crafted = mallory.commit(&room, &kps, Some(&listed));
    let answer = mallory
        .submit_update(&room, crafted.request(GroupInfoChoice::New))
        .await;
    assert_success(&answer);
    mallory.merge(&room);
    assert_eq!(s.hub_state().epoch, before.epoch + 1);
    let events = sync_until(&mut dave, "Dave's Welcome", |e| joined(e).is_some()).await;
    assert_eq!(joined(&events), Some(&room));
    dave.send_text(&room, "hello from dave", false)
        .await
        .unwrap();
    sync_until(&mut s.alice, "Dave's message", |e| {
        texts(e).contains(&"hello from dave".to_owned())
    })
    .await;
    mallory.wait_text("hello from dave").await;
    s.fed.shutdown().await;
}

// ------------------------------------------------------------------ c. who submits

/// b.example (a follower of the room, with Bob in it) submits a valid commit of
/// Carol's, a client of c.example: refused, as is the same commit submitted by a
/// client of the hub's own provider. Carol submitting it herself succeeds.
#[tokio::test]
async fn a_commit_is_submitted_only_by_its_committers_provider() {
    let mut s = Scene::start(&[A, B, C]).await;
    let ca = DevCa::load(s.fed.root().join("ca")).unwrap();
    let mut bob = s.add_client("bob@b.example", "phone").await;
    let mut carol = s.add_raw("carol@c.example", "desktop").await;
    let mut eve = s.add_raw("eve@a.example", "laptop").await;
    carol.catch_up(&s.fed, &s.room).await;
    let room = s.room.clone();

    let crafted = carol.commit(&room, &[], None);
    let request = crafted.request(GroupInfoChoice::New);
    let before = s.hub_state();
    let as_b = Peer::new(&s.fed, &ca, B);
    let (status, body) = as_b
        .post(A, "update", &room.to_string(), request.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{}", lossy(&body));
    let reason = not_allowed(&body, "b.example submitting c.example's commit");
    assert!(
        reason.contains(&format!(
            "b.example submitted a commit by {}, who is not its user",
            carol.id
        )),
        "{reason}"
    );
    s.assert_unchanged(&before);

    let answer = eve.submit_update(&room, request.clone()).await;
    let reason = not_allowed(&answer, "a client of the hub submitting another's commit");
    assert!(
        reason.contains("you may only submit your own commits"),
        "{reason}"
    );
    s.assert_unchanged(&before);

    // Through her own provider, Carol's commit is accepted as it is.
    let answer = carol.submit_update(&room, request).await;
    assert_success(&answer);
    carol.merge(&room);
    assert_eq!(s.hub_state().epoch, before.epoch + 1);
    s.alice.sync().await.unwrap();
    s.alice.send_text(&room, "after", false).await.unwrap();
    sync_until(&mut bob, "after", |e| {
        texts(e).contains(&"after".to_owned())
    })
    .await;
    carol.wait_text("after").await;
    eve.wait_text("after").await;
    s.fed.shutdown().await;
}

// ------------------------------------------------------------------ d. GroupInfo

/// A valid commit sent with the previous epoch's GroupInfo, with a partial one, or
/// with the new epoch's GroupInfo under a broken signature is refused; the hub keeps
/// the GroupInfo it had. With the right GroupInfo the same commit is accepted.
#[tokio::test]
async fn a_commit_must_come_with_the_new_epochs_group_info() {
    let mut s = Scene::start(&[A, B]).await;
    let mut mallory = s.add_raw("mallory@b.example", "laptop").await;
    let room = s.room.clone();
    let crafted = mallory.commit(&room, &[], None);
    let before = s.hub_state();
    for (choice, says) in [
        (
            GroupInfoChoice::Previous,
            "the GroupInfo does not describe the epoch the commit creates",
        ),
        (
            GroupInfoChoice::Partial,
            "must come with the new epoch's full GroupInfo",
        ),
        (
            GroupInfoChoice::BrokenSignature,
            "the GroupInfo's signature",
        ),
    ] {
        let answer = mallory.submit_update(&room, crafted.request(choice)).await;
        let reason = not_allowed(&answer, &format!("{choice:?}"));
        assert!(reason.contains(says), "{choice:?}: {reason}");
        s.assert_unchanged(&before);
    }

    let answer = mallory
        .submit_update(&room, crafted.request(GroupInfoChoice::New))
        .await;
    assert_success(&answer);
    mallory.merge(&room);
    let after = s.hub_state();
    assert_eq!(after.epoch, before.epoch + 1);
    assert_eq!(after.group_info, crafted.group_info_bytes());
    s.chat_with(&mut mallory, "after").await;
    s.fed.shutdown().await;
}

// ------------------------------------------------------------------ e. malformed input

/// Garbage, truncated and mis-typed UpdateRequests from a follower get 400; the
/// group state is served only to providers with participants in the room.
#[tokio::test]
async fn malformed_updates_and_group_state_requests() {
    let mut s = Scene::start(&[A, B, C]).await;
    let ca = DevCa::load(s.fed.root().join("ca")).unwrap();
    let mut mallory = s.add_raw("mallory@b.example", "laptop").await;
    let room = s.room.clone();
    let r = room.to_string();
    let as_b = Peer::new(&s.fed, &ca, B);
    let as_c = Peer::new(&s.fed, &ca, C);
    let before = s.hub_state();

    let crafted = mallory.commit(&room, &[], None);
    let valid = crafted.request(GroupInfoChoice::New);
    // The commit replaced by an application message (a PrivateMessage): well framed,
    // but the decoder refuses what it carries.
    let commit = crafted.commit.tls_serialize_detached().unwrap();
    let at = valid
        .windows(commit.len())
        .position(|w| w == commit.as_slice())
        .unwrap();
    let message = mallory
        .encrypt(&room, "not a commit")
        .tls_serialize_detached()
        .unwrap();
    let private = [&valid[..at], &message, &valid[at + commit.len()..]].concat();
    let err = UpdateRequest::decode(&private).unwrap_err().to_string();
    assert!(err.contains("found PrivateMessage"), "{err}");
    let bodies = [
        (
            "garbage",
            b"\x00\x01\xffnot an UpdateRequest".to_vec(),
            "UpdateRequest",
        ),
        (
            "truncated",
            valid[..valid.len() / 2].to_vec(),
            "UpdateRequest",
        ),
        (
            "one byte short",
            valid[..valid.len() - 1].to_vec(),
            "UpdateRequest",
        ),
        (
            "with a trailing byte",
            [&valid[..], &[0]].concat(),
            "UpdateRequest",
        ),
        ("empty", Vec::new(), "UpdateRequest"),
        (
            "a PrivateMessage as the commit",
            private,
            "must be a PublicMessage carrying a proposal or commit",
        ),
    ];
    for (what, body, says) in bodies {
        let (status, answer) = as_b.post(A, "update", &r, body.clone()).await;
        let e = api_error(status, &answer, 400, what);
        assert!(e.message.contains(says), "{what}: {e:?}");
        // Sent through mallory's own provider, it is refused there already.
        let (status, answer) = mallory
            .signed(
                Method::POST,
                &room_path(&room, "update"),
                json(&UpdateCall { request: body }),
            )
            .await;
        api_error(status, &answer, 400, &format!("{what}, relayed"));
    }
    s.assert_unchanged(&before);

    // The group state: for a follower with participants, and nobody else.
    let (status, answer) = as_b.post(A, "groupState", &r, Vec::new()).await;
    assert_eq!(status, StatusCode::OK, "{}", lossy(&answer));
    let gs = RoomGroupState::decode(&answer).unwrap();
    assert_eq!(gs.group_info.as_slice(), before.group_info.as_slice());
    RatchetTreeIn::tls_deserialize_exact(gs.ratchet_tree.as_slice()).unwrap();
    // A request body means nothing to the endpoint.
    let (status, answer) = as_b
        .post(A, "groupState", &r, b"\xffgarbage".to_vec())
        .await;
    assert_eq!(status, StatusCode::OK, "{}", lossy(&answer));
    let (status, answer) = as_c.post(A, "groupState", &r, Vec::new()).await;
    let e = api_error(status, &answer, 403, "groupState for a non-participant");
    assert!(e.message.contains("c.example has no participants"), "{e:?}");
    let anonymous = Peer {
        domain: B.into(),
        http: https(&s.fed, None),
    };
    let (status, answer) = anonymous.post(A, "groupState", &r, Vec::new()).await;
    api_error(
        status,
        &answer,
        401,
        "groupState without a client certificate",
    );
    let (status, answer) = as_b
        .post(A, "groupState", &random_room(A).to_string(), Vec::new())
        .await;
    api_error(status, &answer, 404, "groupState of an unknown room");
    let (status, answer) = as_b
        .post(A, "groupState", &random_room(B).to_string(), Vec::new())
        .await;
    api_error(status, &answer, 400, "groupState of another hub's room");
    let (status, answer) = as_b.post(A, "groupState", "not a room", Vec::new()).await;
    api_error(
        status,
        &answer,
        400,
        "groupState of a room id that does not parse",
    );

    // The valid request still goes through.
    let answer = mallory.submit_update(&room, valid).await;
    assert_success(&answer);
    mallory.merge(&room);
    assert_eq!(s.hub_state().epoch, before.epoch + 1);
    s.chat_with(&mut mallory, "after").await;
    s.fed.shutdown().await;
}

/// A hub (here a fake a.example) answering a follower's groupState with garbage,
/// truncated or trailing bytes, another group's state, or a GroupInfo that does not
/// match the tree: the follower refuses the notify that needed it (502, naming the
/// group state), records nothing and delivers nothing; served the genuine state, it
/// accepts the same notify and Bob joins.
#[tokio::test]
async fn follower_refuses_a_bad_group_state() {
    let mut fed = Federation::start(&[A, B]).await.unwrap();
    let ca = DevCa::load(fed.root().join("ca")).unwrap();
    let mut bob = register(&fed, "bob@b.example", "phone").await;
    let mut alice = RawMember::register(&fed, "alice@a.example", "laptop").await;
    let a_issuer = issuer_via(&fed, B, A).await;
    let as_a = Peer::new(&fed, &ca, A);

    // The room exists only at the fake hub: Alice's group, Bob added with a
    // KeyPackage the hub claimed from b.example.
    let room = random_room(A);
    alice.create_group(&room, alice.credential(), Some(alice.user()));
    let before_add = alice.group_info_now(&room);
    let request = alice.key_material_request(&room, bob.user());
    let (status, body) = as_a
        .post(B, "keyMaterial", &bob.user().to_string(), request)
        .await;
    assert_eq!(status, StatusCode::OK, "{}", lossy(&body));
    let kps = key_packages(&body, bob.user());
    let mut state = alice.room_state(&room);
    state.set_role(bob.user(), roles::MEMBER);
    let crafted = alice.commit(&room, &kps, Some(&state));
    alice.merge(&room);
    let welcome = crafted.welcome_fanout(now_ms());
    let tree = crafted.tree.tls_serialize_detached().unwrap();
    let other_room = random_room(A);
    alice.create_group(&other_room, alice.credential(), Some(alice.user()));
    let group_state = |group_info: &[u8], tree: &[u8]| {
        RoomGroupState {
            group_info: group_info.to_vec().into(),
            ratchet_tree: tree.to_vec().into(),
        }
        .encode()
        .unwrap()
    };
    let genuine = group_state(&crafted.group_info_bytes(), &tree);
    let another_group = group_state(
        &alice.group_info_now(&other_room),
        &alice.tree_now(&other_room),
    );
    let stale = group_state(&before_add, &tree);

    fed.stop(A).await.unwrap();
    let served = Arc::new(Mutex::new(Vec::new()));
    let fake = FakeProvider::start(&fed, &ca, A, group_state_router(&a_issuer, &served)).await;
    let bad = [
        ("garbage", b"\x00\x01\xffnot a RoomGroupState".to_vec(), ""),
        ("truncated", genuine[..genuine.len() / 2].to_vec(), ""),
        ("with a trailing byte", [&genuine[..], &[0]].concat(), ""),
        ("empty", Vec::new(), ""),
        ("another group's state", another_group, "another group"),
        (
            "the previous epoch's GroupInfo with the new tree",
            stale,
            "does not verify",
        ),
    ];
    for (what, body, says) in bad {
        *served.lock().unwrap() = body;
        let (status, answer) = as_a
            .post(B, "notify", &room.to_string(), welcome.clone())
            .await;
        let e = api_error(status, &answer, 502, what);
        assert!(
            e.message.contains("a.example's group state") && e.message.contains(says),
            "{what}: {e:?}"
        );
        assert_eq!(rows_for(&fed, B, "rooms", &room), 0, "{what}");
        assert_eq!(rows_for(&fed, B, "room_groups", &room), 0, "{what}");
        let events = bob.sync().await.unwrap();
        assert!(events.is_empty(), "{what}: {events:?}");
    }

    *served.lock().unwrap() = genuine;
    as_a.notify(B, &room, welcome).await;
    assert_eq!(rows_for(&fed, B, "room_groups", &room), 1);
    let events = bob.sync().await.unwrap();
    assert_eq!(joined(&events), Some(&room), "{events:?}");
    let msg = alice.encrypt(&room, "through the fake hub");
    let fanout = FanoutMessage {
        timestamp: now_ms(),
        event: FanoutEvent::Application {
            message: msg,
            frank: None,
        },
    }
    .encode()
    .unwrap();
    as_a.notify(B, &room, fanout).await;
    assert_eq!(texts(&bob.sync().await.unwrap()), ["through the fake hub"]);
    fake.stop().await;
    fed.shutdown().await;
}

// ------------------------------------------------------------------ room creation

/// `POST /v1/rooms` with a group that is not a proper new room is refused 400, and
/// no room is recorded; a proper one is then accepted.
#[tokio::test]
async fn creating_a_room_needs_a_proper_group() {
    let fed = Federation::start(&[A, B]).await.unwrap();
    let mut alice = RawMember::register(&fed, "alice@a.example", "laptop").await;
    let mut bob = RawMember::register(&fed, "bob@a.example", "phone").await;
    let now = now_secs();
    let key = alice.signer.public().to_vec();
    let forged = forge_certificate(&alice.id, &key, &rand::random(), now);

    let mut cases: Vec<(&str, RoomId, CreateRoomCall, &str)> = Vec::new();
    let mut case = |what, room: RoomId, call: CreateRoomCall, says| {
        cases.push((what, room, call, says));
    };
    let room = random_room(A);
    let good = alice.new_room_call(&room, alice.credential(), Some(alice.user()));
    case(
        "a GroupInfo that does not decode",
        room.clone(),
        CreateRoomCall {
            group_info: b"\x00\x01garbage".to_vec(),
            ..good.clone()
        },
        "GroupInfo",
    );
    case(
        "a truncated ratchet tree",
        room.clone(),
        CreateRoomCall {
            ratchet_tree: good.ratchet_tree[..good.ratchet_tree.len() / 2].to_vec(),
            ..good.clone()
        },
        "ratchet tree",
    );
    case(
        "another room's id",
        room.clone(),
        CreateRoomCall {
            room: random_room(A).to_string(),
            ..good.clone()
        },
        "group id must be the room id",
    );
    let elsewhere = random_room(B);
    case(
        "a room hubbed elsewhere",
        elsewhere.clone(),
        alice.new_room_call(&elsewhere, alice.credential(), Some(alice.user())),
        "can only create rooms on a.example",
    );
    let r = random_room(A);
    case(
        "no room state",
        r.clone(),
        alice.new_room_call(&r, alice.credential(), None),
        "carries no room state",
    );
    let r = random_room(A);
    case(
        "someone else as the owner",
        r.clone(),
        alice.new_room_call(&r, alice.credential(), Some(bob.user())),
        "exactly the creator",
    );
    let r = random_room(A);
    case(
        "a forged certificate",
        r.clone(),
        alice.new_room_call(&r, alice.credential_with(forged), Some(alice.user())),
        "not signed by a.example's issuer key",
    );
    // Bob's group, submitted by Alice.
    let r = random_room(A);
    case(
        "another client's group",
        r.clone(),
        bob.new_room_call(&r, bob.credential(), Some(alice.user())),
        "exactly the creating client",
    );
    for (what, room, call, says) in cases {
        let (status, answer) = alice.signed(Method::POST, "/v1/rooms", json(&call)).await;
        let e = api_error(status, &answer, 400, what);
        assert!(e.message.contains(says), "{what}: {e:?}");
        assert_eq!(rows_for(&fed, A, "rooms", &room), 0, "{what}");
        assert_eq!(rows_for(&fed, A, "room_groups", &room), 0, "{what}");
    }

    let r: CreateRoomResponse = alice.call(Method::POST, "/v1/rooms", json(&good)).await;
    assert_eq!(r.room, room.to_string());
    assert_eq!(rows_for(&fed, A, "rooms", &room), 1);
    alice.submit_text(&room, "alone").await;
    fed.shutdown().await;
}

// ================================================================== scene

/// A room on the real hub a.example, created by Alice (a real client, its owner),
/// and the parties the tests add to it.
struct Scene {
    fed: Federation,
    alice: Client,
    room: RoomId,
}

/// The hub's record of the room.
#[derive(Debug, PartialEq, Eq)]
struct HubState {
    epoch: u64,
    group_info: Vec<u8>,
}

impl Scene {
    async fn start(domains: &[&str]) -> Self {
        let fed = Federation::start(domains).await.unwrap();
        let mut alice = register(&fed, "alice@a.example", "laptop").await;
        let room = alice.create_room_named("Adversarial").await.unwrap();
        Self { fed, alice, room }
    }

    /// A hand-driven device, made a member by Alice, that has joined.
    async fn add_raw(&mut self, user_id: &str, device: &str) -> RawMember {
        let mut m = RawMember::register(&self.fed, user_id, device).await;
        m.upload_key_package().await;
        self.alice.sync().await.unwrap();
        self.alice.invite(&self.room, &m.user()).await.unwrap();
        m.catch_up(&self.fed, &self.room).await;
        m
    }

    /// A real client, made a member by Alice, that has joined.
    async fn add_client(&mut self, user_id: &str, device: &str) -> Client {
        let mut c = register(&self.fed, user_id, device).await;
        self.alice.sync().await.unwrap();
        self.alice.invite(&self.room, c.user()).await.unwrap();
        sync_until(&mut c, "the Welcome", |e| joined(e).is_some()).await;
        c
    }

    /// Alice gives `member` `role`; `member` catches up.
    async fn set_role(&mut self, member: &mut RawMember, role: u32) {
        self.alice.sync().await.unwrap();
        self.alice
            .set_role(&self.room, &member.user(), role)
            .await
            .unwrap();
        member.catch_up(&self.fed, &self.room).await;
        assert_eq!(member.room_state(&self.room).role_of(&member.user()), role);
    }

    /// The hub's epoch and GroupInfo for the room, from its database; its room
    /// record and its group state agree.
    fn hub_state(&self) -> HubState {
        let conn = read_only(&self.fed, A);
        let r = self.room.to_string();
        let epoch: i64 = conn
            .query_row("SELECT epoch FROM rooms WHERE room = ?1", [&r], |row| {
                row.get(0)
            })
            .unwrap();
        let (group_epoch, group_info): (i64, Vec<u8>) = conn
            .query_row(
                "SELECT epoch, group_info FROM room_groups WHERE room = ?1",
                [&r],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(epoch, group_epoch, "the hub's room and group disagree");
        HubState {
            epoch: u64::try_from(epoch).unwrap(),
            group_info,
        }
    }

    fn assert_unchanged(&self, before: &HubState) {
        assert_eq!(
            &self.hub_state(),
            before,
            "a refused commit changed the room"
        );
    }

    /// Alice and `member` exchange a message each way.
    async fn chat_with(&mut self, member: &mut RawMember, text: &str) {
        self.alice.sync().await.unwrap();
        self.alice.send_text(&self.room, text, false).await.unwrap();
        member.wait_text(text).await;
        let reply = format!("re: {text}");
        member.submit_text(&self.room, &reply).await;
        let events = sync_until(&mut self.alice, &reply, |e| texts(e).contains(&reply)).await;
        assert!(rejections(&events).is_empty(), "{events:?}");
    }
}

/// Which GroupInfo an UpdateRequest carries.
#[derive(Debug, Clone, Copy)]
enum GroupInfoChoice {
    /// The new epoch's, as the committer made it.
    New,
    /// The epoch before the commit's.
    Previous,
    /// The new epoch's with a flipped bit in its signature.
    BrokenSignature,
    /// A PartialGroupInfo (the hub does not rebuild GroupInfos).
    Partial,
}

/// A commit made but not merged, with what goes with it.
struct Crafted {
    commit: MlsMessage,
    welcome: Option<Welcome>,
    /// MLSMessages carrying the new epoch's GroupInfo and the previous one.
    group_info: MlsMessage,
    previous_group_info: MlsMessage,
    /// The new epoch's tree.
    tree: RatchetTreeIn,
}

impl Crafted {
    fn group_info_bytes(&self) -> Vec<u8> {
        self.group_info.tls_serialize_detached().unwrap()
    }

    fn group_info_in(&self) -> openmls::messages::group_info::VerifiableGroupInfo {
        group_info_of(&self.group_info)
    }

    fn request(&self, choice: GroupInfoChoice) -> Vec<u8> {
        let group_info = match choice {
            GroupInfoChoice::New => GroupInfoOption::Full(Box::new(self.group_info_in())),
            GroupInfoChoice::Previous => {
                GroupInfoOption::Full(Box::new(group_info_of(&self.previous_group_info)))
            }
            GroupInfoChoice::BrokenSignature => {
                let mut bytes = self.group_info_bytes();
                *bytes.last_mut().unwrap() ^= 1;
                let msg = MlsMessage::tls_deserialize_exact(&bytes).unwrap();
                GroupInfoOption::Full(Box::new(group_info_of(&msg)))
            }
            GroupInfoChoice::Partial => {
                let bytes = self.group_info_bytes();
                GroupInfoOption::Partial(PartialGroupInfo {
                    ratchet_tree_presence: RatchetTreePresence::NoRatchetTree,
                    group_info_extensions: Vec::new(),
                    signature: bytes[bytes.len() - 64..].to_vec().into(),
                })
            }
        };
        UpdateRequest {
            bundle: HandshakeBundle::Commit {
                commit: self.commit.clone(),
                welcome: self.welcome.clone(),
                group_info,
                ratchet_tree: RatchetTreeOption::Full(self.tree.clone()),
            },
        }
        .encode()
        .unwrap()
    }

    /// The Welcome as a hub fans it out.
    fn welcome_fanout(&self, timestamp: u64) -> Vec<u8> {
        let welcome = self.welcome.clone().expect("the commit added nobody");
        FanoutMessage {
            timestamp,
            event: FanoutEvent::Welcome {
                welcome: MlsMessage::from(MlsMessageBodyIn::Welcome(welcome)),
                ratchet_tree: RatchetTreeOption::Full(self.tree.clone()),
            },
        }
        .encode()
        .unwrap()
    }
}

fn group_info_of(msg: &MlsMessage) -> openmls::messages::group_info::VerifiableGroupInfo {
    match msg.clone().into_body() {
        MlsMessageBodyIn::GroupInfo(gi) => gi,
        other => panic!("not a GroupInfo: {other:?}"),
    }
}

// ================================================================== the raw member

/// A device registered with a real provider whose requests and MLS operations the
/// test makes by hand.
struct RawMember {
    id: ClientId,
    cert: Vec<u8>,
    signer: SignatureKeyPair,
    http: reqwest::Client,
    base: String,
    mls: OpenMlsRustCrypto,
    groups: HashMap<String, MlsGroup>,
    inbox_cursor: u64,
    /// Texts decrypted so far.
    received: Vec<String>,
}

impl RawMember {
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
        let mut m = Self {
            id,
            cert: Vec::new(),
            http: https(fed, None),
            base: format!("https://{}", u.domain()),
            signer,
            mls: OpenMlsRustCrypto::default(),
            groups: HashMap::new(),
            inbox_cursor: 0,
            received: Vec::new(),
        };
        let body = json(&RegisterRequest {
            user: u.to_string(),
            device: device.into(),
            signature_key: m.signer.public().to_vec(),
            proof,
            link_code: None,
        });
        let (status, answer) = m.request(Method::POST, "/v1/register", body, None).await;
        assert_eq!(status, StatusCode::OK, "{}", lossy(&answer));
        let r: RegisterResponse = serde_json::from_slice(&answer).unwrap();
        m.cert = r.certificate;
        m
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

    /// Uploads one KeyPackage (its private keys stay in our MLS storage).
    async fn upload_key_package(&self) {
        let kp = KeyPackage::builder()
            .leaf_node_capabilities(capabilities())
            .build(CIPHERSUITE, &self.mls, &self.signer, self.credential())
            .unwrap()
            .key_package()
            .tls_serialize_detached()
            .unwrap();
        let status: api::KeyPackageStatus = self
            .call(
                Method::POST,
                "/v1/key-packages",
                json(&UploadKeyPackages {
                    key_packages: vec![kp],
                    last_resort: None,
                }),
            )
            .await;
        assert_eq!(status.available, 1);
    }

    /// Creates `room`'s group here (not on any hub), with the room state listing
    /// `owner` (none: no room state).
    fn create_group(
        &mut self,
        room: &RoomId,
        credential: CredentialWithKey,
        owner: Option<UserId>,
    ) {
        let group = MlsGroup::new_with_group_id(
            &self.mls,
            &self.signer,
            &create_config(room, owner.as_ref()),
            GroupId::from_slice(room.to_string().as_bytes()),
            credential,
        )
        .unwrap();
        self.groups.insert(room.to_string(), group);
    }

    /// A `POST /v1/rooms` body for a group made here for `room`.
    fn new_room_call(
        &mut self,
        room: &RoomId,
        credential: CredentialWithKey,
        owner: Option<UserId>,
    ) -> CreateRoomCall {
        self.create_group(room, credential, owner);
        CreateRoomCall {
            room: room.to_string(),
            group_info: self.group_info_now(room),
            ratchet_tree: self.tree_now(room),
        }
    }

    /// The current epoch's GroupInfo (an MLSMessage), signed by us.
    fn group_info_now(&self, room: &RoomId) -> Vec<u8> {
        self.groups[&room.to_string()]
            .export_group_info(self.mls.crypto(), &self.signer, false)
            .unwrap()
            .tls_serialize_detached()
            .unwrap()
    }

    fn tree_now(&self, room: &RoomId) -> Vec<u8> {
        self.groups[&room.to_string()]
            .export_ratchet_tree()
            .tls_serialize_detached()
            .unwrap()
    }

    fn room_state(&self, room: &RoomId) -> RoomState {
        room_state(&self.groups[&room.to_string()])
    }

    fn epoch(&self, room: &RoomId) -> Option<u64> {
        self.groups
            .get(&room.to_string())
            .map(|g| g.epoch().as_u64())
    }

    /// Makes a commit adding `adds`, with `state` as the new room state if given
    /// (and an update of our own leaf), and keeps it pending.
    fn commit(&mut self, room: &RoomId, adds: &[KeyPackage], state: Option<&RoomState>) -> Crafted {
        let previous_group_info =
            MlsMessage::tls_deserialize_exact(self.group_info_now(room)).unwrap();
        let group = self.groups.get_mut(&room.to_string()).unwrap();
        let extensions = state.map(|s| extensions_with(group, s));
        let mut builder = group
            .commit_builder()
            .propose_adds(adds.iter().cloned())
            .force_self_update(true);
        if let Some(exts) = extensions {
            builder = builder.propose_group_context_extensions(exts).unwrap();
        }
        let provider = &self.mls;
        let bundle = builder
            .load_psks(provider.storage())
            .unwrap()
            .create_group_info(true)
            .build(provider.rand(), provider.crypto(), &self.signer, |_| true)
            .unwrap()
            .stage_commit(provider)
            .unwrap();
        let welcome = bundle
            .to_welcome_msg()
            .map(|w| match reparse(w).into_body() {
                MlsMessageBodyIn::Welcome(w) => w,
                other => panic!("not a Welcome: {other:?}"),
            });
        let (commit, _, group_info) = bundle.into_contents();
        let tree = group
            .pending_commit()
            .unwrap()
            .export_ratchet_tree(provider.crypto(), group.export_ratchet_tree())
            .unwrap()
            .unwrap();
        Crafted {
            commit: reparse(commit),
            welcome,
            group_info: reparse(group_info.unwrap().into()),
            previous_group_info,
            tree: RatchetTreeIn::tls_deserialize_exact(tree.tls_serialize_detached().unwrap())
                .unwrap(),
        }
    }

    /// The hub accepted our pending commit.
    fn merge(&mut self, room: &RoomId) {
        let group = self.groups.get_mut(&room.to_string()).unwrap();
        group.merge_pending_commit(&self.mls).unwrap();
    }

    /// The hub refused our pending commit.
    fn discard(&mut self, room: &RoomId) {
        let group = self.groups.get_mut(&room.to_string()).unwrap();
        group.clear_pending_commit(self.mls.storage()).unwrap();
    }

    /// Claims `target`'s KeyPackages through our provider and the room's hub.
    async fn claim(&self, room: &RoomId, target: &UserId) -> Vec<KeyPackage> {
        let (status, answer) = self.try_claim(room, target).await;
        assert_eq!(status, StatusCode::OK, "claiming: {}", lossy(&answer));
        let r: KeyMaterialResult = serde_json::from_slice(&answer).unwrap();
        let kps = key_packages(&r.response, target);
        assert!(!kps.is_empty(), "{target} has no KeyPackages");
        kps
    }

    async fn try_claim(&self, room: &RoomId, target: &UserId) -> (StatusCode, Vec<u8>) {
        let request = self.key_material_request(room, target);
        self.signed(
            Method::POST,
            &room_path(room, "key-material"),
            json(&KeyMaterialCall { request }),
        )
        .await
    }

    /// A signed MIMI KeyMaterialRequest, as entente-client's frames.rs makes it.
    fn key_material_request(&self, room: &RoomId, target: &UserId) -> Vec<u8> {
        let credential = self.credential();
        let tbs = KeyMaterialRequestTBS {
            protocol: Protocol::Mls10,
            requesting_user: IdentifierUri::from(&self.user()),
            target_user: IdentifierUri::from(target),
            room_id: IdentifierUri::from(room),
            acceptable_ciphersuites: vec![VerifiableCiphersuite::from(CIPHERSUITE)],
            required_capabilities: RequiredCapabilitiesExtension::default(),
            requester_signature_key: credential.signature_key,
            requester_credential: credential.credential,
        };
        let content =
            entente_core::mls::sign_content("KeyMaterialRequestTBS", &tbs.encode().unwrap())
                .unwrap();
        let sig = self.signer.sign(&content).unwrap();
        tbs.into_request(sig).encode().unwrap()
    }

    /// Submits an UpdateRequest through our provider: the hub's answer.
    async fn submit_update(&self, room: &RoomId, request: Vec<u8>) -> Vec<u8> {
        let a: HubAnswer = self
            .call(
                Method::POST,
                &room_path(room, "update"),
                json(&UpdateCall { request }),
            )
            .await;
        a.response
    }

    fn encrypt(&mut self, room: &RoomId, text: &str) -> MlsMessage {
        let content = MimiContent::text(text, false, rand::random()).encode();
        let group = self.groups.get_mut(&room.to_string()).unwrap();
        reparse(
            group
                .create_message(&self.mls, &self.signer, &content)
                .unwrap(),
        )
    }

    async fn submit_text(&mut self, room: &RoomId, text: &str) {
        let request = SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: self.encrypt(room, text),
            sending_uri: IdentifierUri::from(&self.user()),
        }
        .encode()
        .unwrap();
        let a: HubAnswer = self
            .call(
                Method::POST,
                &room_path(room, "messages"),
                json(&SubmitCall { request }),
            )
            .await;
        let outcome = SubmitMessageResponse::decode(&a.response).unwrap().outcome;
        assert!(
            matches!(outcome, SubmitOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }

    /// Fetches, processes and acks the inbox: joins on a Welcome, merges commits,
    /// decrypts application messages into `received`.
    async fn receive(&mut self) {
        let page: api::InboxPage = self
            .call(
                Method::GET,
                &format!("/v1/inbox?after={}", self.inbox_cursor),
                vec![],
            )
            .await;
        if page.items.is_empty() {
            return;
        }
        for item in page.items {
            self.inbox_cursor = item.seq;
            let f = FanoutMessage::decode(&item.fanout).unwrap();
            match f.event {
                FanoutEvent::Welcome {
                    welcome,
                    ratchet_tree: RatchetTreeOption::Full(tree),
                } => {
                    let MlsMessageBodyIn::Welcome(w) = welcome.into_body() else {
                        panic!("not a Welcome")
                    };
                    let group =
                        StagedWelcome::new_from_welcome(&self.mls, &join_config(), w, Some(tree))
                            .unwrap()
                            .into_group(&self.mls)
                            .unwrap();
                    assert_eq!(group.group_id().as_slice(), item.room.as_bytes());
                    self.groups.insert(item.room.clone(), group);
                }
                event => {
                    let msg = event.message().clone().into_protocol_message().unwrap();
                    let group = self.groups.get_mut(&item.room).unwrap();
                    let processed = group.process_message(&self.mls, msg).unwrap();
                    match processed.into_content() {
                        ProcessedMessageContent::ApplicationMessage(app) => {
                            let content = MimiContent::decode(&app.into_bytes()).unwrap();
                            self.received
                                .push(content.display_text().unwrap().text.to_owned());
                        }
                        ProcessedMessageContent::StagedCommitMessage(staged) => {
                            group.merge_staged_commit(&self.mls, *staged).unwrap();
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
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
    }

    /// Receives until our group of `room` is at the hub's epoch.
    async fn catch_up(&mut self, fed: &Federation, room: &RoomId) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.receive().await;
            let hub: i64 = read_only(fed, room.domain().as_str())
                .query_row(
                    "SELECT epoch FROM rooms WHERE room = ?1",
                    [room.to_string()],
                    |r| r.get(0),
                )
                .unwrap();
            if self.epoch(room) == Some(u64::try_from(hub).unwrap()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not catch up with epoch {hub} of {room}",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Receives until `text` has arrived.
    async fn wait_text(&mut self, text: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.received.iter().any(|t| t == text) {
            assert!(
                Instant::now() < deadline,
                "{} never received {text:?}; got {:?}",
                self.id,
                self.received
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.receive().await;
        }
    }

    /// The `Authorization` header value for a request.
    fn authorization(&self, method: &str, path: &str, body: &[u8]) -> String {
        let ts = now_secs();
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
        let auth = self.authorization(method.as_str(), path, &body);
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
}

// ================================================================== providers

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
        let r = self
            .http
            .post(format!(
                "https://{to}/mimi/v1/{endpoint}/{}",
                path_segment(param)
            ))
            .header("content-type", "application/mimi-protocol")
            .header("from", format!("mimi@{}", self.domain))
            .body(body)
            .send()
            .await
            .unwrap();
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

/// A hub that publishes `issuer` and answers every groupState with `served`.
fn group_state_router(issuer: &IssuerPublicKey, served: &Arc<Mutex<Vec<u8>>>) -> axum::Router {
    let info = ProviderInfo {
        domain: A.into(),
        issuer_key: issuer.to_bytes().to_vec(),
    };
    let served = Arc::clone(served);
    axum::Router::new()
        .route(
            "/.well-known/entente-issuer",
            axum::routing::get(move || {
                let info = info.clone();
                async move { axum::Json(info) }
            }),
        )
        .route(
            "/mimi/v1/groupState/{room}",
            axum::routing::post(move || {
                let body = served.lock().unwrap().clone();
                async move { ([("content-type", "application/mimi-protocol")], body) }
            }),
        )
}

// ================================================================== helpers

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_ms() -> u64 {
    now_secs() * 1000
}

fn user(s: &str) -> UserId {
    s.parse().unwrap()
}

async fn register(fed: &Federation, user_id: &str, device: &str) -> Client {
    fed.register(user_id, device).await.unwrap()
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

fn read_only(fed: &Federation, domain: &str) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        fed.database_path(domain).unwrap(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

/// How many rows of `table` (`rooms` or `room_groups`) `domain` holds for `room`.
fn rows_for(fed: &Federation, domain: &str, table: &str, room: &RoomId) -> i64 {
    read_only(fed, domain)
        .query_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE room = ?1"),
            [room.to_string()],
            |r| r.get(0),
        )
        .unwrap()
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

/// Asserts that an UpdateRoomResponse refuses with `notAllowed`: its reason.
fn not_allowed(response: &[u8], what: &str) -> String {
    let r = UpdateRoomResponse::decode(response).unwrap();
    assert!(
        matches!(r.outcome, UpdateOutcome::NotAllowed),
        "{what}: expected notAllowed, got {r:?}"
    );
    assert!(
        r.error_description.len() > 10,
        "{what}: unhelpful reason {r:?}"
    );
    r.error_description
}

fn assert_success(response: &[u8]) {
    let r = UpdateRoomResponse::decode(response).unwrap();
    assert!(
        matches!(r.outcome, UpdateOutcome::Success { .. }),
        "expected success, got {r:?}"
    );
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
    IssuerPublicKey::from_bytes(Domain::parse(domain).unwrap(), &info.issuer_key).unwrap()
}

/// `entente_core::identity`'s certificate format, encoded here so that the test can
/// sign certificates with a key that is not the provider's.
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
/// extension and the room state GroupContext extension.
fn capabilities() -> Capabilities {
    Capabilities::builder()
        .extensions(vec![
            ExtensionType::LastResort,
            ExtensionType::Unknown(ROOM_STATE_EXTENSION_TYPE),
        ])
        .build()
}

/// A new room's group configuration, as entente-client's manage.rs makes it, with
/// `owner` as the only participant in the room state (none: no room state at all).
fn create_config(room: &RoomId, owner: Option<&UserId>) -> MlsGroupCreateConfig {
    let mut exts = vec![Extension::RequiredCapabilities(
        RequiredCapabilitiesExtension::new(
            &[ExtensionType::Unknown(ROOM_STATE_EXTENSION_TYPE)],
            &[],
            &[],
        ),
    )];
    if let Some(owner) = owner {
        exts.push(state_extension(&RoomState::new(room, owner, "")));
    }
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .capabilities(capabilities())
        .with_group_context_extensions(Extensions::from_vec(exts).unwrap())
        .use_ratchet_tree_extension(false)
        .max_past_epochs(5)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(100, 1000))
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
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

fn reparse(out: MlsMessageOut) -> MlsMessage {
    MlsMessage::from(out)
}

/// `(user name, role)` of each participant, as `client` sees the room.
fn roles_of(client: &Client, room: &RoomId) -> Vec<(String, u32)> {
    client
        .participants(room)
        .unwrap()
        .into_iter()
        .map(|p| (p.user.name().to_owned(), p.role_index))
        .collect()
}

fn named(roles: &[(&str, u32)]) -> Vec<(String, u32)> {
    roles.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect()
}

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

/// Syncs until `done` holds for everything received so far.
async fn sync_until(
    client: &mut Client,
    what: &str,
    done: impl Fn(&[Event]) -> bool,
) -> Vec<Event> {
    let deadline = Instant::now() + DEADLINE;
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
