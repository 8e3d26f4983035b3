#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

const SUITE: u16 = 1;

struct World {
    hub_key: HubKey,
    issuer: IssuerKey,
    alice: UserId,
    room: RoomId,
    content: Vec<u8>,
    tag: [u8; 32],
    ts: u64,
    frank: Frank,
}

fn content_for(sender: &UserId, room: &RoomId, text: &str) -> Vec<u8> {
    let mut c = MimiContent::text(text, false, [7; 16]);
    c.extensions.sender_uri = Some(sender.to_uri());
    c.extensions.room_uri = Some(room.to_uri());
    c.encode()
}

fn world() -> World {
    let hub_key = HubKey::generate();
    let issuer = IssuerKey::generate("a.example".parse().unwrap());
    let alice: UserId = "mimi://b.example/u/alice".parse().unwrap();
    let room = RoomId::parse_uri("mimi://a.example/r/club").unwrap();
    let content = content_for(&alice, &room, "hello");
    let tag = franking_tag(&content).unwrap();
    let ts = 1_700_000_000_000;
    let frank = frank(&hub_key, &issuer, SUITE, &tag, &context(&alice, &room, ts)).unwrap();
    World {
        hub_key,
        issuer,
        alice,
        room,
        content,
        tag,
        ts,
        frank,
    }
}

fn received<'a>(w: &'a World, pk: &'a IssuerPublicKey) -> Received<'a> {
    Received {
        content: &w.content,
        franking_tag: &w.tag,
        frank: &w.frank,
        accepted_timestamp: w.ts,
        sender: &w.alice,
        room: &w.room,
        ciphersuite: SUITE,
        hub_key: pk,
    }
}

fn reported(w: &World) -> AbusiveMessage {
    AbusiveMessage {
        message_content: w.content.clone().into(),
        frank: w.frank.clone(),
        accepted_timestamp: w.ts,
    }
}

#[test]
fn safe_aad_round_trip_and_tag() {
    let tag = [9u8; 32];
    let aad = frank_aad(&tag).unwrap();
    // SafeAAD: vector length 1 + (component 0x0020, length 32, tag) = 1 + 2 + 1 + 32.
    assert_eq!(aad.len(), 1 + 2 + 1 + 32);
    assert_eq!(&aad[..4], &[35, 0x00, 0x20, 32]);
    assert_eq!(franking_tag_in_aad(&aad).unwrap(), Some(tag));
    assert_eq!(franking_tag_in_aad(&[]).unwrap(), None);
    // Application bytes after the SafeAAD are ignored.
    let mut longer = aad.clone();
    longer.extend_from_slice(b"app");
    assert_eq!(franking_tag_in_aad(&longer).unwrap(), Some(tag));
}

#[test]
fn safe_aad_rejects_disorder_duplicates_and_truncation() {
    let item = |id: u16| SafeAadItem {
        component_id: id,
        aad_item_data: vec![1].into(),
    };
    assert!(SafeAad::new(vec![item(2), item(1)]).is_err());
    assert!(SafeAad::new(vec![item(1), item(1)]).is_err());
    let ok = SafeAad::new(vec![item(1), item(0x30)]).unwrap();
    let bytes = ok.encode().unwrap();
    assert_eq!(SafeAad::decode(&bytes).unwrap(), ok);
    for cut in 0..bytes.len() {
        assert!(SafeAad::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // Unsorted on the wire.
    let mut raw = Vec::new();
    vec![item(2), item(1)].tls_serialize(&mut raw).unwrap();
    assert!(SafeAad::decode(&raw).is_err());
    // No frank_aad item: no tag. A frank_aad item with a short tag: an error.
    assert_eq!(franking_tag_in_aad(&bytes).unwrap(), None);
    let short = SafeAad::new(vec![SafeAadItem {
        component_id: FRANK_AAD_COMPONENT_ID,
        aad_item_data: vec![0; 31].into(),
    }])
    .unwrap()
    .encode()
    .unwrap();
    assert!(franking_tag_in_aad(&short).is_err());
}

#[test]
fn frank_is_deterministic() {
    let w = world();
    let again = frank(
        &w.hub_key,
        &w.issuer,
        SUITE,
        &w.tag,
        &context(&w.alice, &w.room, w.ts),
    )
    .unwrap();
    assert_eq!(again, w.frank);
}

#[test]
fn receiver_accepts_a_genuine_frank() {
    let w = world();
    let pk = w.issuer.public();
    verify_received(&received(&w, &pk)).unwrap();
}

#[test]
fn receiver_refuses_every_tampering() {
    let w = world();
    let pk = w.issuer.public();

    // Altered content (same salt, same claims, other text).
    let other = content_for(&w.alice, &w.room, "hellO");
    let r = Received {
        content: &other,
        ..received(&w, &pk)
    };
    assert_eq!(verify_received(&r), Err(FrankingError::TagMismatch));

    // Altered tag.
    let tag = [0u8; 32];
    let r = Received {
        franking_tag: &tag,
        ..received(&w, &pk)
    };
    assert_eq!(verify_received(&r), Err(FrankingError::TagMismatch));

    // Altered timestamp.
    let r = Received {
        accepted_timestamp: w.ts + 1,
        ..received(&w, &pk)
    };
    assert_eq!(verify_received(&r), Err(FrankingError::BadSignature));

    // Altered server frank.
    let mut f = w.frank.clone();
    f.server_frank[0] ^= 1;
    let r = Received {
        frank: &f,
        ..received(&w, &pk)
    };
    assert_eq!(verify_received(&r), Err(FrankingError::BadSignature));

    // Altered signature.
    let mut f = w.frank.clone();
    let mut sig = f.franking_integrity_signature.as_slice().to_vec();
    sig[5] ^= 1;
    f.franking_integrity_signature = sig.into();
    let r = Received {
        frank: &f,
        ..received(&w, &pk)
    };
    assert_eq!(verify_received(&r), Err(FrankingError::BadSignature));

    // Wrong cipher suite.
    let mut f = w.frank.clone();
    f.franking_signature_ciphersuite = VerifiableCiphersuite::new(3);
    let r = Received {
        frank: &f,
        ..received(&w, &pk)
    };
    assert!(matches!(
        verify_received(&r),
        Err(FrankingError::Ciphersuite { .. })
    ));

    // Another hub's key (a follower fabricating franks with its own issuer key).
    let other_issuer = IssuerKey::generate("b.example".parse().unwrap());
    let forged = frank(
        &HubKey::generate(),
        &other_issuer,
        SUITE,
        &w.tag,
        &context(&w.alice, &w.room, w.ts),
    )
    .unwrap();
    let r = Received {
        frank: &forged,
        ..received(&w, &pk)
    };
    assert_eq!(verify_received(&r), Err(FrankingError::BadSignature));

    // MLS says the sender is someone else than the content claims.
    let mallory: UserId = "mimi://b.example/u/mallory".parse().unwrap();
    let r = Received {
        sender: &mallory,
        ..received(&w, &pk)
    };
    assert!(matches!(
        verify_received(&r),
        Err(FrankingError::SenderMismatch { .. })
    ));

    // Delivered for another room than the content (and the frank) name.
    let other_room = RoomId::parse_uri("mimi://a.example/r/other").unwrap();
    let r = Received {
        room: &other_room,
        ..received(&w, &pk)
    };
    assert!(matches!(
        verify_received(&r),
        Err(FrankingError::RoomMismatch { .. })
    ));

    // Content without claims.
    let bare = MimiContent::text("x", false, [1; 16]).encode();
    let r = Received {
        content: &bare,
        ..received(&w, &pk)
    };
    assert_eq!(
        verify_received(&r),
        Err(FrankingError::MissingClaim("senderUri"))
    );
}

#[test]
fn hub_verifies_a_genuine_report() {
    let w = world();
    let sender = verify_reported(
        &w.hub_key,
        &w.issuer.public(),
        SUITE,
        &w.room,
        &reported(&w),
    )
    .unwrap();
    assert_eq!(sender, w.alice);
}

#[test]
fn hub_refuses_every_forged_report() {
    let w = world();
    let pk = w.issuer.public();
    let check = |m: &AbusiveMessage| verify_reported(&w.hub_key, &pk, SUITE, &w.room, m);

    // Altered content.
    let mut m = reported(&w);
    m.message_content = content_for(&w.alice, &w.room, "I owe you 1000").into();
    assert_eq!(check(&m), Err(FrankingError::ServerFrankMismatch));

    // Content attributed to someone else.
    let bob: UserId = "mimi://a.example/u/bob".parse().unwrap();
    let mut m = reported(&w);
    m.message_content = content_for(&bob, &w.room, "hello").into();
    assert_eq!(check(&m), Err(FrankingError::ServerFrankMismatch));

    // Altered timestamp.
    let mut m = reported(&w);
    m.accepted_timestamp += 1;
    assert_eq!(check(&m), Err(FrankingError::ServerFrankMismatch));

    // Fabricated frank (random server frank, signature of another key).
    let mut m = reported(&w);
    m.frank = frank(
        &HubKey::generate(),
        &IssuerKey::generate("a.example".parse().unwrap()),
        SUITE,
        &w.tag,
        &context(&w.alice, &w.room, w.ts),
    )
    .unwrap();
    assert_eq!(check(&m), Err(FrankingError::ServerFrankMismatch));

    // Right server frank, signature altered.
    let mut m = reported(&w);
    let mut sig = m.frank.franking_integrity_signature.as_slice().to_vec();
    sig[0] ^= 1;
    m.frank.franking_integrity_signature = sig.into();
    assert_eq!(check(&m), Err(FrankingError::BadSignature));

    // A frank from another room, reported for this one.
    let other_room = RoomId::parse_uri("mimi://a.example/r/other").unwrap();
    let m = reported(&w);
    assert!(matches!(
        verify_reported(&w.hub_key, &pk, SUITE, &other_room, &m),
        Err(FrankingError::RoomMismatch { .. })
    ));

    // Another hub key (reports are only verifiable by the hub that franked).
    assert_eq!(
        verify_reported(&HubKey::generate(), &pk, SUITE, &w.room, &reported(&w)),
        Err(FrankingError::ServerFrankMismatch)
    );
}

#[test]
fn digest_identifies_reporter_and_messages() {
    let w = world();
    let m = vec![reported(&w)];
    let d = report_digest("mimi://c.example/u/carol", &m);
    assert_eq!(d, report_digest("mimi://c.example/u/carol", &m));
    assert_ne!(d, report_digest("mimi://c.example/u/dave", &m));
    assert_ne!(d, report_digest("mimi://c.example/u/carol", &[]));
}
