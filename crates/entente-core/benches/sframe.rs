//! Per-frame SFrame (RFC 9605) cost, ours next to the independent `sframe` crate (its
//! RustCrypto backend) on the same inputs.
//!
//! ```text
//! cargo bench -p entente-core --bench sframe -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Frames: `opus120` is a 20 ms Opus frame (120 bytes, about 48 kbit/s), `video1200` a
//! video packet-size frame (1200 bytes). Suites: AES_128_GCM_SHA256_128 and
//! AES_128_CTR_HMAC_SHA256_80. For each:
//!
//! - `entente_encrypt`: [`SendKey::encrypt`], allocating the output frame.
//! - `entente_decrypt`: [`ReceiverContext::decrypt`] (header parse, KID lookup, tag
//!   check, decryption, allocating the plaintext).
//! - `sframe_crate_encrypt` / `sframe_crate_decrypt`: the same with the `sframe` crate's
//!   allocating `MediaFrameView::encrypt` and `EncryptedFrameView::decrypt`.
//! - `entente_mls_decrypt`: [`MlsSframe::decrypt`] for a 16-member call (KID split,
//!   roster check).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark harness"
)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use entente_core::sframe::{CipherSuite, MlsSframe, ReceiverContext, SendKey};
use sframe::frame::{EncryptedFrameView, MediaFrameView, MonotonicCounter};
use sframe::key::{DecryptionKey, EncryptionKey};

const KID: u64 = 0x123;

fn theirs(suite: CipherSuite) -> sframe::CipherSuite {
    match suite {
        CipherSuite::AesCtrHmac80 => sframe::CipherSuite::AesCtr128HmacSha256_80,
        CipherSuite::AesCtrHmac64 => sframe::CipherSuite::AesCtr128HmacSha256_64,
        CipherSuite::AesCtrHmac32 => sframe::CipherSuite::AesCtr128HmacSha256_32,
        CipherSuite::Aes128Gcm => sframe::CipherSuite::AesGcm128Sha256,
        CipherSuite::Aes256Gcm => sframe::CipherSuite::AesGcm256Sha512,
    }
}

fn sframe_bench(c: &mut Criterion) {
    for (suite_name, suite) in [
        ("aes128gcm", CipherSuite::Aes128Gcm),
        ("aes_ctr_hmac80", CipherSuite::AesCtrHmac80),
    ] {
        let base_key: Vec<u8> = (0..suite.key_len() as u8).collect();
        for (frame_name, len) in [("opus120", 120usize), ("video1200", 1200)] {
            let mut group = c.benchmark_group(format!("sframe/{suite_name}/{frame_name}"));
            group.throughput(Throughput::Bytes(len as u64));
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();

            // Start far from 0 so the header has its usual multi-byte CTR.
            let mut ours = SendKey::starting_at(suite, KID, &base_key, 1 << 20);
            group.bench_function("entente_encrypt", |b| {
                b.iter(|| ours.encrypt(b"", black_box(&plaintext)).unwrap())
            });
            let their_key = EncryptionKey::derive_from(theirs(suite), KID, &base_key).unwrap();
            let mut counter = MonotonicCounter::with_start_value(1 << 20, u64::MAX);
            group.bench_function("sframe_crate_encrypt", |b| {
                b.iter(|| {
                    MediaFrameView::try_new(&mut counter, black_box(&plaintext))
                        .unwrap()
                        .encrypt(&their_key)
                        .unwrap()
                })
            });

            let frame = SendKey::starting_at(suite, KID, &base_key, 1 << 20)
                .encrypt(b"", &plaintext)
                .unwrap();
            let mut receiver = ReceiverContext::new(suite);
            receiver.add_key(KID, &base_key);
            group.bench_function("entente_decrypt", |b| {
                b.iter(|| receiver.decrypt(black_box(&frame), b"").unwrap())
            });
            let their_dkey = DecryptionKey::derive_from(theirs(suite), KID, &base_key).unwrap();
            group.bench_function("sframe_crate_decrypt", |b| {
                b.iter(|| {
                    EncryptedFrameView::try_new(black_box(&frame))
                        .unwrap()
                        .decrypt(&their_dkey)
                        .unwrap()
                })
            });

            let members: Vec<u32> = (0..16).collect();
            let mut sender = MlsSframe::new(suite, 8).unwrap();
            sender.set_epoch(3, &base_key, 5, &members).unwrap();
            let mut call = MlsSframe::new(suite, 8).unwrap();
            call.set_epoch(3, &base_key, 0, &members).unwrap();
            let mls_frame = sender.encrypt(&plaintext, b"").unwrap();
            group.bench_function("entente_mls_decrypt", |b| {
                b.iter(|| call.decrypt(black_box(&mls_frame), b"").unwrap())
            });
            group.finish();
        }
    }
}

criterion_group!(benches, sframe_bench);
criterion_main!(benches);
