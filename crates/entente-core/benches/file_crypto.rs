//! File encryption throughput (`entente_core::files`) on 1 MiB and 64 MiB files, next
//! to this machine's raw AES-GCM speed.
//!
//! ```text
//! cargo bench -p entente-core --bench file_crypto
//! cargo bench -p entente-core --bench file_crypto -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `ring_aes128gcm`: ring's one-shot AES-128-GCM seal (assembly, stitched AES and
//!   GHASH): the ceiling for this machine.
//! - `aes_gcm_aes128`: the `aes-gcm` 0.10 crate, one shot, built from the same parts
//!   as ours.
//! - `sealer_aes128` / `sealer_aes256`: [`BlobSealer`] fed 64 KiB pieces, as a file
//!   is read; includes SHA-256 of the blob for `contentHash`. The sender's first pass
//!   (SHA-256 of the plaintext for the commitment) is `sha256`.
//! - `opener_aes128` / `opener_aes128_committed`: [`BlobOpener`] fed 64 KiB pieces,
//!   each first copied into a buffer as a download delivers it; SHA-256 of the blob,
//!   and for the committed file SHA-256 of the plaintext too.
//! - `sha256`: SHA-256 alone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark harness"
)]

use std::hint::black_box;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{KeyInit, Nonce};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use entente_core::files::{
    BlobOpener, BlobSealer, ContentHash, FileAead, FileSecret, commitment_aad,
};
use sha2::{Digest, Sha256};

const PIECE: usize = 64 * 1024;

fn file_crypto(c: &mut Criterion) {
    for (name, size) in [("1MiB", 1 << 20), ("64MiB", 64 << 20)] {
        let mut group = c.benchmark_group(format!("file_crypto/{name}"));
        group.throughput(Throughput::Bytes(size as u64));
        if size > 1 << 20 {
            group.sample_size(10);
        }
        let plaintext: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
        let mut buf = plaintext.clone();
        let secret128 = FileSecret::generate(FileAead::Aes128Gcm);
        let secret256 = FileSecret::generate(FileAead::Aes256Gcm);

        let ring_key = ring::aead::LessSafeKey::new(
            ring::aead::UnboundKey::new(&ring::aead::AES_128_GCM, secret128.key()).unwrap(),
        );
        group.bench_function("ring_aes128gcm", |b| {
            b.iter(|| {
                let nonce = ring::aead::Nonce::assume_unique_for_key(*secret128.nonce());
                ring_key
                    .seal_in_place_separate_tag(nonce, ring::aead::Aad::empty(), &mut buf)
                    .unwrap()
            })
        });

        let aes_gcm = aes_gcm::Aes128Gcm::new_from_slice(secret128.key()).unwrap();
        group.bench_function("aes_gcm_aes128", |b| {
            b.iter(|| {
                aes_gcm
                    .encrypt_in_place_detached(Nonce::from_slice(secret128.nonce()), b"", &mut buf)
                    .unwrap()
            })
        });

        let aad = commitment_aad(&Sha256::digest(&plaintext).into());
        for (label, secret) in [("sealer_aes128", &secret128), ("sealer_aes256", &secret256)] {
            group.bench_function(label, |b| {
                b.iter(|| {
                    let mut sealer = BlobSealer::new(secret, &aad);
                    for piece in buf.chunks_mut(PIECE) {
                        sealer.update(piece).unwrap();
                    }
                    sealer.finish()
                })
            });
        }

        for (label, aad) in [
            ("opener_aes128", Vec::new()),
            ("opener_aes128_committed", aad.clone()),
        ] {
            let (blob, hash) = seal(&secret128, &aad, &plaintext);
            let mut piece_buf = vec![0u8; PIECE];
            group.bench_function(label, |b| {
                b.iter(|| {
                    let mut opener = BlobOpener::new(&secret128, &aad, blob.len() as u64).unwrap();
                    for piece in blob.chunks(PIECE) {
                        let piece_buf = &mut piece_buf[..piece.len()];
                        piece_buf.copy_from_slice(piece);
                        black_box(opener.update(piece_buf).unwrap());
                    }
                    let opened = opener.finish(&hash).unwrap();
                    assert_eq!(opened.committed, !aad.is_empty());
                })
            });
        }

        group.bench_function("sha256", |b| {
            b.iter(|| Sha256::digest(black_box(&plaintext)))
        });
        group.finish();
    }
}

fn seal(secret: &FileSecret, aad: &[u8], plaintext: &[u8]) -> (Vec<u8>, ContentHash) {
    let mut sealer = BlobSealer::new(secret, aad);
    let mut blob = plaintext.to_vec();
    sealer.update(&mut blob).unwrap();
    let tail = sealer.finish();
    blob.extend_from_slice(&tail.tag);
    (blob, tail.content_hash)
}

criterion_group!(benches, file_crypto);
criterion_main!(benches);
