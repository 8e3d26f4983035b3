//! The Signal-compatible session (`entente_core::signal::session`) next to vodozemac's
//! Olm, the Double Ratchet Matrix uses.
//!
//! ```text
//! cargo bench -p entente-core --bench signal
//! cargo bench -p entente-core --bench signal -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `setup/*`: the initiator sets up a session from the responder's published keys
//!   and encrypts a first message; the responder sets up its side from that message
//!   and decrypts it. For us: `Session::initiate` (checks the prekey signatures, X3DH
//!   or PQXDH with a one-time prekey), `encrypt`, `accept_prekey_message`. For Olm:
//!   `create_outbound_session` (3DH with a one-time key, no signatures), `encrypt`,
//!   `create_inbound_session`.
//! - `encrypt/*`: one message on an existing sending chain.
//! - `decrypt/*`: one message on an existing receiving chain (no ratchet step, no
//!   skipped keys), on a copy of the same session each time.
//!
//! - `primitive/*`: X25519, XEdDSA verification and ML-KEM-1024, which make up
//!   nearly all of a set-up.
//!
//! Plaintexts are 100 bytes everywhere.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark harness"
)]

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use entente_core::signal::keys::{IdentityKeyPair, PrivateKey};
use entente_core::signal::pqxdh::KemKeyPair;
use entente_core::signal::session::{MessageKind, PreKeyStore, Session, accept_prekey_message};
use entente_core::signal::x3dh::{KyberPreKey, PreKeyBundle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use vodozemac::olm::{Account, OlmMessage, SessionConfig};

const PLAINTEXT: [u8; 100] = [0x42; 100];

/// The responder's keys: the bundle it publishes and the store behind it.
struct Responder {
    identity: IdentityKeyPair,
    signed: PrivateKey,
    one_time: HashMap<u32, PrivateKey>,
    kyber: KemKeyPair,
}

impl PreKeyStore for Responder {
    fn signed_prekey(&self, id: u32) -> Option<PrivateKey> {
        (id == 1).then(|| self.signed.clone())
    }
    fn one_time_prekey(&self, id: u32) -> Option<PrivateKey> {
        self.one_time.get(&id).cloned()
    }
    fn kyber_prekey(&self, id: u32) -> Option<KemKeyPair> {
        (id == 3).then(|| self.kyber.clone())
    }
}

impl Responder {
    fn new(rng: &mut StdRng) -> Self {
        Self {
            identity: IdentityKeyPair::generate(rng),
            signed: PrivateKey::generate(rng),
            one_time: HashMap::from([(2, PrivateKey::generate(rng))]),
            kyber: KemKeyPair::generate(rng),
        }
    }

    fn bundle(&self, pqxdh: bool, rng: &mut StdRng) -> PreKeyBundle {
        let signed_prekey = self.signed.public_key();
        let kyber = self.kyber.public_key();
        PreKeyBundle {
            registration_id: 2,
            device_id: 1,
            identity_key: self.identity.public(),
            signed_prekey_id: 1,
            signed_prekey,
            signed_prekey_signature: self.identity.private().sign(&signed_prekey.encode(), rng),
            one_time_prekey: Some((2, self.one_time[&2].public_key())),
            kyber_prekey: pqxdh.then(|| KyberPreKey {
                id: 3,
                signature: self.identity.private().sign(kyber.as_bytes(), rng),
                public: kyber,
            }),
        }
    }
}

/// An established pair: both have sent and received, so both chains exist.
fn established(pqxdh: bool, rng: &mut StdRng) -> (Session, Session) {
    let alice_identity = IdentityKeyPair::generate(rng);
    let bob = Responder::new(rng);
    let bundle = bob.bundle(pqxdh, rng);
    let mut alice = Session::initiate(&alice_identity, 1, &bundle, rng).unwrap();
    let first = alice.encrypt(&PLAINTEXT, rng).unwrap();
    let mut bob_session = accept_prekey_message(&bob.identity, 2, &bob, &first.bytes, rng)
        .unwrap()
        .session;
    let reply = bob_session.encrypt(&PLAINTEXT, rng).unwrap();
    alice.decrypt(reply.kind, &reply.bytes).unwrap();
    let again = alice.encrypt(&PLAINTEXT, rng).unwrap();
    assert_eq!(again.kind, MessageKind::Whisper);
    bob_session.decrypt(again.kind, &again.bytes).unwrap();
    (alice, bob_session)
}

fn entente(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    for (name, pqxdh) in [("entente_x3dh_v3", false), ("entente_pqxdh_v4", true)] {
        let alice_identity = IdentityKeyPair::generate(&mut rng);
        c.bench_function(&format!("setup/{name}"), |b| {
            let mut setup_rng = StdRng::seed_from_u64(2);
            let mut rng = StdRng::seed_from_u64(3);
            b.iter_batched(
                || {
                    let bob = Responder::new(&mut setup_rng);
                    let bundle = bob.bundle(pqxdh, &mut setup_rng);
                    (bob, bundle)
                },
                |(bob, bundle)| {
                    let mut alice =
                        Session::initiate(&alice_identity, 1, &bundle, &mut rng).unwrap();
                    let first = alice.encrypt(&PLAINTEXT, &mut rng).unwrap();
                    let accepted =
                        accept_prekey_message(&bob.identity, 2, &bob, &first.bytes, &mut rng)
                            .unwrap();
                    (alice, accepted, bob)
                },
                BatchSize::SmallInput,
            );
        });

        let (mut alice, mut bob) = established(pqxdh, &mut rng);
        c.bench_function(&format!("encrypt/{name}"), |b| {
            b.iter(|| alice.encrypt(black_box(&PLAINTEXT), &mut rng).unwrap());
        });
        // Bob's ratchet turns with his first message here; Alice takes it, so the
        // second one is on a receiving chain she already has.
        let turn = bob.encrypt(&PLAINTEXT, &mut rng).unwrap();
        alice.decrypt(turn.kind, &turn.bytes).unwrap();
        let message = bob.encrypt(&PLAINTEXT, &mut rng).unwrap();
        assert_eq!(message.kind, MessageKind::Whisper);
        c.bench_function(&format!("decrypt/{name}"), |b| {
            b.iter_batched(
                || alice.clone(),
                |mut alice| {
                    let plaintext = alice.decrypt(message.kind, black_box(&message.bytes));
                    (alice, plaintext.unwrap())
                },
                BatchSize::SmallInput,
            );
        });
    }
}

fn olm(c: &mut Criterion) {
    let alice_account = Account::new();
    c.bench_function("setup/vodozemac_olm", |b| {
        b.iter_batched(
            || {
                let mut bob = Account::new();
                bob.generate_one_time_keys(1);
                let one_time_key = *bob.one_time_keys().values().next().unwrap();
                bob.mark_keys_as_published();
                (bob, one_time_key)
            },
            |(mut bob, one_time_key)| {
                let mut alice = alice_account
                    .create_outbound_session(
                        SessionConfig::version_1(),
                        bob.curve25519_key(),
                        one_time_key,
                    )
                    .unwrap();
                let OlmMessage::PreKey(first) = alice.encrypt(PLAINTEXT).unwrap() else {
                    panic!("the first Olm message is a pre-key message");
                };
                let inbound = bob
                    .create_inbound_session(
                        SessionConfig::version_1(),
                        alice_account.curve25519_key(),
                        &first,
                    )
                    .unwrap();
                (alice, inbound, bob)
            },
            BatchSize::SmallInput,
        );
    });

    let mut bob_account = Account::new();
    bob_account.generate_one_time_keys(1);
    let one_time_key = *bob_account.one_time_keys().values().next().unwrap();
    let mut alice = alice_account
        .create_outbound_session(
            SessionConfig::version_1(),
            bob_account.curve25519_key(),
            one_time_key,
        )
        .unwrap();
    let OlmMessage::PreKey(first) = alice.encrypt(PLAINTEXT).unwrap() else {
        panic!("the first Olm message is a pre-key message");
    };
    let mut bob = bob_account
        .create_inbound_session(
            SessionConfig::version_1(),
            alice_account.curve25519_key(),
            &first,
        )
        .unwrap()
        .session;
    let reply = bob.encrypt(PLAINTEXT).unwrap();
    alice.decrypt(&reply).unwrap();
    let again = alice.encrypt(PLAINTEXT).unwrap();
    bob.decrypt(&again).unwrap();

    c.bench_function("encrypt/vodozemac_olm", |b| {
        b.iter(|| alice.encrypt(black_box(PLAINTEXT)).unwrap());
    });
    // As above: the first message turns Bob's ratchet, the second is measured.
    let turn = bob.encrypt(PLAINTEXT).unwrap();
    alice.decrypt(&turn).unwrap();
    let message = bob.encrypt(PLAINTEXT).unwrap();
    assert!(matches!(message, OlmMessage::Normal(_)));
    let pickle = alice.pickle();
    let stored = pickle.encrypt(&[0; 32]);
    c.bench_function("decrypt/vodozemac_olm", |b| {
        b.iter_batched(
            || {
                vodozemac::olm::Session::from_pickle(
                    vodozemac::olm::SessionPickle::from_encrypted(&stored, &[0; 32]).unwrap(),
                )
            },
            |mut alice| {
                let plaintext = alice.decrypt(black_box(&message));
                (alice, plaintext.unwrap())
            },
            BatchSize::SmallInput,
        );
    });
}

/// The primitives a set-up is made of, to see where its time goes.
fn primitives(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(9);
    let ours = PrivateKey::generate(&mut rng);
    let theirs = PrivateKey::generate(&mut rng).public_key();
    c.bench_function("primitive/x25519", |b| {
        b.iter(|| ours.agree(black_box(&theirs)).unwrap());
    });
    c.bench_function("primitive/x25519_keygen", |b| {
        b.iter(|| PrivateKey::generate(&mut rng).public_key());
    });
    let identity = IdentityKeyPair::generate(&mut rng);
    let signed = theirs.encode();
    let signature = identity.private().sign(&signed, &mut rng);
    c.bench_function("primitive/xeddsa_verify", |b| {
        b.iter(|| assert!(identity.public().verify(black_box(&signed), &signature)));
    });
    let kem = KemKeyPair::generate(&mut rng);
    let public = kem.public_key();
    c.bench_function("primitive/ml_kem_1024_encaps", |b| {
        b.iter(|| public.encapsulate(&mut rng));
    });
    let (_, ciphertext) = public.encapsulate(&mut rng);
    c.bench_function("primitive/ml_kem_1024_decaps", |b| {
        b.iter(|| kem.decapsulate(black_box(&ciphertext)));
    });
}

criterion_group!(benches, entente, olm, primitives);
criterion_main!(benches);
