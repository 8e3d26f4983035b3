//! Fuzzes `BlobOpener`, which decrypts files downloaded from storage servers we do not
//! trust: whatever the key, aad, declared size, blob, hash and split points, it must
//! never panic, never release more than the blob's plaintext, and never accept a blob
//! it was not given the right hash and tag for.
//!
//! Input layout (missing bytes read as zero):
//!
//! ```text
//! flags(1) key(32) nonce(12) aad_len(1) size_delta(1) cuts(4 x 2) hash(32) aad blob
//! flags: bit 0 AES-256, bit 1 resume from the blob's first cut, bit 2 a committing
//! aad (the aad bytes become the committed hash), bit 3 use SHA-256 of the blob as the
//! expected hash (so the tag and commitment checks are reached)
//! ```
#![no_main]

use entente_core::files::{BlobOpener, ContentHash, FileAead, FileSecret, commitment_aad};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// Reads fixed-size fields off the front of the input.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let head = self.take(N);
        out[..head.len()].copy_from_slice(head);
        out
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let [flags] = input.array::<1>();
    let key = input.array::<32>();
    let nonce = input.array::<12>();
    let [aad_len] = input.array::<1>();
    let [size_delta] = input.array::<1>();
    let cuts: [u8; 8] = input.array();
    let hash = input.array::<32>();
    let aad = input.take(aad_len.into());
    let blob = input.0;

    let alg = if flags & 1 == 0 {
        FileAead::Aes128Gcm
    } else {
        FileAead::Aes256Gcm
    };
    let secret = FileSecret::from_parts(alg.iana(), &key[..alg.key_len()], &nonce)
        .expect("a key and nonce of the right lengths");
    let aad = if flags & 4 == 0 {
        aad.to_vec()
    } else {
        let mut committed = [0u8; 32];
        committed[..aad.len().min(32)].copy_from_slice(&aad[..aad.len().min(32)]);
        commitment_aad(&committed)
    };
    let expected = if flags & 8 == 0 {
        ContentHash::from_parts(1, &hash).expect("32 bytes")
    } else {
        ContentHash::from_parts(1, &Sha256::digest(blob)).expect("32 bytes")
    };
    // The declared size is near the real one: shorter, equal or longer.
    let declared = (blob.len() as u64 + u64::from(size_delta)).saturating_sub(128);
    let Ok(mut opener) = BlobOpener::new(&secret, &aad, declared) else {
        assert!(
            declared < 16,
            "every size from 16 bytes up to GCM's limit is accepted"
        );
        return;
    };

    let mut points: Vec<usize> = cuts
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (blob.len() + 1))
        .collect();
    points.push(0);
    points.push(blob.len());
    points.sort_unstable();

    let mut buf = blob.to_vec();
    let mut released = 0u64;
    let mut start = 0;
    if flags & 2 != 0 {
        // Pretend the first cut's worth was downloaded before, and kept as plaintext
        // (here: the blob bytes themselves, as good as any).
        start = points[1];
        if opener.resume_from_plaintext(&blob[..start]).is_err() {
            start = 0;
        } else {
            released += start as u64;
        }
    }
    let mut clean = true;
    for pair in points.windows(2) {
        let range = pair[0].max(start)..pair[1].max(start);
        match opener.update(&mut buf[range]) {
            Ok(text) => released += text.len() as u64,
            Err(_) => {
                clean = false;
                break;
            }
        }
    }
    assert!(
        released <= declared - 16,
        "never more plaintext than the blob holds"
    );
    let result = opener.finish(&expected);
    if result.is_ok() {
        assert!(clean && blob.len() as u64 == declared);
    }
});
