//! Group messaging with sender keys and sealed sender (`entente_core::signal`).
//!
//! ```text
//! cargo bench -p entente-core --bench sender_keys
//! cargo bench -p entente-core --bench sender_keys -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `sender_key/encrypt_100B`: one `SenderKeyMessage` of 100 bytes on an existing
//!   chain: chain step, AES-256-CBC, protobuf, XEdDSA signature.
//! - `sender_key/decrypt_100B`: the receiving member's side, in order: signature
//!   check, chain step, AES-256-CBC. Messages are made in batches outside the timing.
//! - `sender_key/decrypt_100B_skipped_1000`: a message 1,000 iterations ahead, which
//!   derives and keeps 1,000 skipped keys.
//! - `sender_key/create`: a new sender key and its distribution message.
//! - `sealed_sender/seal_200B` / `unseal_200B`: sealed sender v1 of 200 bytes of
//!   content (about a sealed 100-byte Signal message), with a sender certificate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark harness"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use entente_core::identity::IssuerKey;
use entente_core::signal::keys::IdentityKeyPair;
use entente_core::signal::sealed_sender::{ContentType, SenderCertificate, seal, unseal};
use entente_core::signal::sender_keys::SenderKeyRecord;
use entente_wire::ids::{ClientId, Domain, UserId};
use rand::SeedableRng;
use rand::rngs::StdRng;

const BATCH: u64 = 1_000;

fn sender_keys(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let plaintext = [0x42u8; 100];
    let mut group = c.benchmark_group("sender_key");
    group.throughput(Throughput::Elements(1));

    let (mut sender, distribution) = SenderKeyRecord::create([1; 16], &mut rng);
    group.bench_function("encrypt_100B", |b| {
        b.iter(|| sender.encrypt(black_box(&plaintext), &mut rng).unwrap())
    });

    // Decrypting needs a fresh message each time: make them in batches, untimed.
    let (mut sender, distribution2) = SenderKeyRecord::create([2; 16], &mut rng);
    let mut receiver = SenderKeyRecord::from_distribution_message(&distribution2).unwrap();
    group.bench_function("decrypt_100B", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH);
                let messages: Vec<_> = (0..n)
                    .map(|_| sender.encrypt(&plaintext, &mut rng).unwrap())
                    .collect();
                let start = Instant::now();
                for message in &messages {
                    black_box(receiver.decrypt(message).unwrap());
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    });

    let (mut sender, distribution3) = SenderKeyRecord::create([3; 16], &mut rng);
    let receiver = SenderKeyRecord::from_distribution_message(&distribution3).unwrap();
    for _ in 0..1_000 {
        sender.encrypt(&plaintext, &mut rng).unwrap();
    }
    let ahead = sender.encrypt(&plaintext, &mut rng).unwrap();
    group.bench_function("decrypt_100B_skipped_1000", |b| {
        b.iter_batched(
            || receiver.clone(),
            |mut receiver| receiver.decrypt(&ahead).unwrap(),
            BatchSize::SmallInput,
        )
    });

    group.bench_function("create", |b| {
        b.iter(|| SenderKeyRecord::create([4; 16], &mut rng))
    });
    group.bench_function("process_distribution_message", |b| {
        b.iter(|| SenderKeyRecord::from_distribution_message(black_box(&distribution)).unwrap())
    });
    group.finish();
}

fn sealed_sender(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2);
    let domain = Domain::parse("a.example").unwrap();
    let issuer = IssuerKey::from_seed(domain.clone(), &[7; 32]);
    let user = UserId::new("alice", domain).unwrap();
    let client = ClientId::new(&user, "phone").unwrap();
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let certificate =
        SenderCertificate::issue(&issuer, &user, &client, 1, &alice.public(), u64::MAX).unwrap();
    let content = [0x17u8; 200];

    let mut group = c.benchmark_group("sealed_sender");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seal_200B", |b| {
        b.iter(|| {
            seal(
                &alice,
                &certificate,
                &bob.public(),
                ContentType::Whisper,
                black_box(&content),
                &mut rng,
            )
            .unwrap()
        })
    });
    let sealed = seal(
        &alice,
        &certificate,
        &bob.public(),
        ContentType::Whisper,
        &content,
        &mut rng,
    )
    .unwrap();
    group.bench_function("unseal_200B", |b| {
        b.iter(|| unseal(&bob, black_box(&sealed)).unwrap())
    });
    let public = issuer.public();
    group.bench_function("verify_certificate", |b| {
        b.iter(|| certificate.verify(black_box(&public), 0).unwrap())
    });
    group.finish();
}

criterion_group!(benches, sender_keys, sealed_sender);
criterion_main!(benches);
