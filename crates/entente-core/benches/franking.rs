//! Message franking (`entente_core::franking`, MIMI-06 section 5.4.1): the cost per
//! message for the sender, the hub and each receiver, and of checking a report.
//!
//! ```text
//! cargo bench -p entente-core --bench franking
//! cargo bench -p entente-core --bench franking -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `franking/client_tag_200B`: the sender's tag over 200 bytes of MIMI content
//!   (decode for the salt, HMAC-SHA256) and its Safe AAD.
//! - `franking/hub_frank`: the hub's `server_frank` (HMAC-SHA256) and its Ed25519
//!   `SignWithLabel` over the FrankingIntegrityTBS.
//! - `franking/receiver_verify`: a receiver's checks (claims, signature, tag).
//! - `franking/hub_report_verify`: the hub's check of one reported message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark harness"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use entente_core::franking::{
    HubKey, Received, context, frank, frank_aad, franking_tag, franking_tag_in_aad,
    verify_received, verify_reported,
};
use entente_core::identity::IssuerKey;
use entente_wire::content::MimiContent;
use entente_wire::ids::{RoomId, UserId};
use entente_wire::mimi::AbusiveMessage;

const SUITE: u16 = 1;

fn franking(c: &mut Criterion) {
    let alice: UserId = "mimi://b.example/u/alice".parse().unwrap();
    let room = RoomId::parse_uri("mimi://a.example/r/0f3c9a2b7d1e4c5f").unwrap();
    let mut content = MimiContent::text(&"x".repeat(100), false, [7; 16]);
    content.extensions.sender_uri = Some(alice.to_uri());
    content.extensions.room_uri = Some(room.to_uri());
    let bytes = content.encode();
    let hub_key = HubKey::generate();
    let issuer = IssuerKey::generate("a.example".parse().unwrap());
    let public = issuer.public();
    let ts = 1_700_000_000_000;
    let tag = franking_tag(&bytes).unwrap();
    let aad = frank_aad(&tag).unwrap();
    let f = frank(&hub_key, &issuer, SUITE, &tag, &context(&alice, &room, ts)).unwrap();
    let reported = AbusiveMessage {
        message_content: bytes.clone().into(),
        frank: f.clone(),
        accepted_timestamp: ts,
    };

    let mut g = c.benchmark_group("franking");
    g.bench_function(format!("client_tag_{}B", bytes.len()), |b| {
        b.iter(|| {
            let t = franking_tag(black_box(&bytes)).unwrap();
            frank_aad(&t).unwrap()
        })
    });
    g.bench_function("hub_frank", |b| {
        b.iter(|| {
            let t = franking_tag_in_aad(black_box(&aad)).unwrap().unwrap();
            frank(&hub_key, &issuer, SUITE, &t, &context(&alice, &room, ts)).unwrap()
        })
    });
    g.bench_function("receiver_verify", |b| {
        b.iter(|| {
            verify_received(&Received {
                content: black_box(&bytes),
                franking_tag: &tag,
                frank: &f,
                accepted_timestamp: ts,
                sender: &alice,
                room: &room,
                ciphersuite: SUITE,
                hub_key: &public,
            })
            .unwrap()
        })
    });
    g.bench_function("hub_report_verify", |b| {
        b.iter(|| verify_reported(&hub_key, &public, SUITE, &room, black_box(&reported)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, franking);
criterion_main!(benches);
