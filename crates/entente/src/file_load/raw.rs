//! The raw in-process speed of this machine, for comparison with the end-to-end
//! figures: ring's AES-GCM (about the fastest AES-GCM there is), Entente's own
//! streaming sealer as the sender runs it, and SHA-256, which every party runs
//! over the file at least once.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use entente_core::files::{BlobSealer, FileAead, FileSecret, commitment_aad};
use sha2::{Digest, Sha256};

use super::{Alg, Prng, mib_per_s};

/// The raw in-process speed of this machine, in MiB/s.
pub struct RawSpeeds {
    /// ring's AES-128-GCM.
    pub ring_aes128_gcm: f64,
    /// ring's AES-256-GCM, when the file used it.
    pub ring_aes256_gcm: Option<f64>,
    /// Entente's streaming sealer with the file's algorithm (AES-GCM and SHA-256 of
    /// the ciphertext), as the sender runs it.
    pub sealer: f64,
    pub sha256: f64,
}

/// Buffer the raw speeds are measured on.
pub const RAW_BUFFER: usize = 64 << 20;
/// Runs over it; the fastest counts.
pub const RAW_RUNS: u32 = 5;

impl RawSpeeds {
    /// ring's speed for the file's algorithm.
    pub fn ring(&self, alg: FileAead) -> f64 {
        match alg {
            FileAead::Aes256Gcm => self.ring_aes256_gcm.unwrap_or(self.ring_aes128_gcm),
            FileAead::Aes128Gcm => self.ring_aes128_gcm,
        }
    }
}

pub fn measure(alg: Alg) -> Result<RawSpeeds> {
    let mut buf = vec![0u8; RAW_BUFFER];
    Prng::new(1).fill(&mut buf);
    let ring_aes128_gcm = fastest(&mut buf, |b, run| ring_seal(Alg::Aes128, b, run))?;
    let ring_aes256_gcm = match alg {
        Alg::Aes256 => Some(fastest(&mut buf, |b, run| ring_seal(Alg::Aes256, b, run))?),
        Alg::Aes128 => None,
    };
    let secret = FileSecret::generate(alg.file_aead());
    let aad = commitment_aad(&[0; 32]);
    let sealer = fastest(&mut buf, |b, _| {
        let mut s = BlobSealer::new(&secret, &aad);
        s.update(b)?;
        std::hint::black_box(s.finish());
        Ok(())
    })?;
    let sha256 = fastest(&mut buf, |b, _| {
        std::hint::black_box(Sha256::digest(&*b));
        Ok(())
    })?;
    Ok(RawSpeeds {
        ring_aes128_gcm,
        ring_aes256_gcm,
        sealer,
        sha256,
    })
}

/// Seals `buf` in place; a fresh nonce for each `run`.
fn ring_seal(alg: Alg, buf: &mut [u8], run: u32) -> Result<()> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
    let alg = alg.ring();
    let key = [0x5a; 32];
    let key = UnboundKey::new(alg, &key[..alg.key_len()])
        .map_err(|_| anyhow!("ring refused a {}-byte key", alg.key_len()))?;
    let key = LessSafeKey::new(key);
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&run.to_be_bytes());
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), buf)
        .map_err(|_| anyhow!("ring could not seal {} bytes", buf.len()))?;
    std::hint::black_box(tag.as_ref());
    Ok(())
}

/// Runs `f` over `buf` [`RAW_RUNS`] times; the fastest run's speed in MiB/s.
fn fastest(buf: &mut [u8], mut f: impl FnMut(&mut [u8], u32) -> Result<()>) -> Result<f64> {
    let mut best = Duration::MAX;
    for run in 0..RAW_RUNS {
        let t = Instant::now();
        f(buf, run)?;
        best = best.min(t.elapsed());
        std::hint::black_box(&buf);
    }
    Ok(mib_per_s(buf.len() as u64, best))
}
