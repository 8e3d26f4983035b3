//! The "invisible salamanders" attack on AES-GCM, carried out for real, and what the
//! committing `aad` does to it (see "Key commitment" in the module docs).
//!
//! GCM's tag is `T = E_K(J0) XOR GHASH_H(A, C)` with `H = E_K(0)`, and GHASH is a
//! polynomial in `H` whose coefficients are the blocks of `A`, of `C` and the length
//! block: `GHASH_H(B_1..B_n) = B_1 H^n + B_2 H^(n-1) + ... + B_n H`. With everything
//! but one ciphertext block `x` fixed, the tag is affine in `x`:
//! `T_k(x) = c_k + x * d_k` over GF(2^128). Two keys give the same tag when
//! `c_1 + x d_1 = c_2 + x d_2`, that is `x = (c_1 + c_2) / (d_1 + d_2)`: one field
//! division, no search.
//!
//! This needs GF(2^128) arithmetic in GCM's bit order, written here from NIST SP
//! 800-38D (algorithm 1) and checked against the `ghash` crate.

use aes::Aes128;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use aes_gcm::aead::{Aead, Payload};
use ghash::universal_hash::UniversalHash;
use sha2::{Digest, Sha256};

use super::*;

/// GCM's field element 1: the coefficient of x^0 is the leftmost bit.
const ONE: u128 = 1 << 127;
const NONCE: [u8; NONCE_LEN] = [0x5a; NONCE_LEN];
/// The ciphertext has four blocks; the attacker solves for this one.
const FREE_BLOCK: usize = 1;

/// Multiplication in GF(2^128) as GCM defines it (SP 800-38D, algorithm 1), blocks
/// read as big-endian integers so that bit 127 is the coefficient of x^0.
fn gf_mul(x: u128, y: u128) -> u128 {
    const R: u128 = 0xe1 << 120;
    let mut z = 0;
    let mut v = y;
    for i in 0..128 {
        if (x >> (127 - i)) & 1 == 1 {
            z ^= v;
        }
        v = if v & 1 == 1 { (v >> 1) ^ R } else { v >> 1 };
    }
    z
}

/// The inverse of a nonzero element: `a^(2^128 - 2)`, by square and multiply.
fn gf_inv(a: u128) -> u128 {
    let exponent = u128::MAX - 1;
    let mut result = ONE;
    for i in (0..128).rev() {
        result = gf_mul(result, result);
        if (exponent >> i) & 1 == 1 {
            result = gf_mul(result, a);
        }
    }
    result
}

/// GHASH over `aad` and `ciphertext`, each zero-padded, then the bit lengths.
fn ghash(h: u128, aad: &[u8], ciphertext: &[u8]) -> u128 {
    let mut blocks: Vec<u128> = Vec::new();
    for data in [aad, ciphertext] {
        for chunk in data.chunks(16) {
            let mut block = [0u8; 16];
            block[..chunk.len()].copy_from_slice(chunk);
            blocks.push(u128::from_be_bytes(block));
        }
    }
    blocks.push(((aad.len() as u128 * 8) << 64) | (ciphertext.len() as u128 * 8));
    blocks.into_iter().fold(0, |x, block| gf_mul(x ^ block, h))
}

/// What an attacker who knows the key computes: `H`, `E_K(J0)` and the keystream.
struct KeyView {
    key: [u8; 16],
    h: u128,
    tag_mask: u128,
}

impl KeyView {
    fn new(key: [u8; 16]) -> Self {
        let cipher = Aes128::new(&key.into());
        let mut h = GenericArray::default();
        cipher.encrypt_block(&mut h);
        let mut j0 = [0u8; 16];
        j0[..NONCE_LEN].copy_from_slice(&NONCE);
        j0[15] = 1;
        let mut mask = GenericArray::from(j0);
        cipher.encrypt_block(&mut mask);
        Self {
            key,
            h: u128::from_be_bytes(h.into()),
            tag_mask: u128::from_be_bytes(mask.into()),
        }
    }

    fn tag(&self, aad: &[u8], ciphertext: &[u8]) -> u128 {
        self.tag_mask ^ ghash(self.h, aad, ciphertext)
    }

    /// Counter-mode decryption without any check (`C XOR keystream`).
    fn decrypt_unchecked(&self, ciphertext: &[u8]) -> Vec<u8> {
        let mut counter = [0u8; 16];
        counter[..NONCE_LEN].copy_from_slice(&NONCE);
        counter[15] = 2;
        let mut ctr = ctr::Ctr32BE::<Aes128>::new(&self.key.into(), &counter.into());
        let mut out = ciphertext.to_vec();
        ctr.apply_keystream(&mut out);
        out
    }

    fn secret(&self) -> FileSecret {
        FileSecret::from_parts(1, &self.key, &NONCE).unwrap()
    }

    /// What `aes-gcm` 0.10, an implementation we did not write, makes of the blob.
    fn aes_gcm_open(&self, aad: &[u8], blob: &[u8]) -> Option<Vec<u8>> {
        aes_gcm::Aes128Gcm::new(&self.key.into())
            .decrypt(&NONCE.into(), Payload { msg: blob, aad })
            .ok()
    }

    /// What Entente's opener makes of it.
    fn entente_open(&self, aad: &[u8], blob: &[u8]) -> Result<Opened, FileCryptoError> {
        let mut opener = BlobOpener::new(&self.secret(), aad, blob.len() as u64).unwrap();
        opener.update(&mut blob.to_vec()).unwrap();
        opener.finish(&ContentHash(Sha256::digest(blob).into()))
    }
}

/// Sets the free block of `ciphertext` so that `(aad1, k1)` and `(aad2, k2)` give
/// the same tag, and returns that tag. `aad1` and `aad2` are fixed while solving.
fn solve(k1: &KeyView, aad1: &[u8], k2: &KeyView, aad2: &[u8], ciphertext: &mut [u8]) -> u128 {
    let free = FREE_BLOCK * 16..FREE_BLOCK * 16 + 16;
    // T_k(x) = c_k + x d_k: c_k is the tag with x = 0, d_k what x = 1 adds to it.
    let mut tag_at = |k: &KeyView, aad: &[u8], x: u128| {
        ciphertext[free.clone()].copy_from_slice(&x.to_be_bytes());
        k.tag(aad, ciphertext)
    };
    let (c1, c2) = (tag_at(k1, aad1, 0), tag_at(k2, aad2, 0));
    let (d1, d2) = (tag_at(k1, aad1, ONE) ^ c1, tag_at(k2, aad2, ONE) ^ c2);
    let x = gf_mul(c1 ^ c2, gf_inv(d1 ^ d2));
    ciphertext[free].copy_from_slice(&x.to_be_bytes());
    let tag = k1.tag(aad1, ciphertext);
    assert_eq!(
        tag,
        k2.tag(aad2, ciphertext),
        "the solve makes the tags equal"
    );
    tag
}

fn blob(ciphertext: &[u8], tag: u128) -> Vec<u8> {
    [ciphertext, &tag.to_be_bytes()].concat()
}

/// The arithmetic above is GCM's: our GHASH agrees with the `ghash` crate, and
/// inverses are inverses.
#[test]
fn field_arithmetic_matches_ghash_crate() {
    let h = 0x66e94bd4ef8a2c3b884cfa59ca342b2e_u128;
    let aad = b"associated data, not block aligned";
    let ciphertext = [0xabu8; 45];
    let mut reference = ghash::GHash::new(&h.to_be_bytes().into());
    reference.update_padded(aad);
    reference.update_padded(&ciphertext);
    let mut lengths = [0u8; 16];
    lengths[..8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
    lengths[8..].copy_from_slice(&(ciphertext.len() as u64 * 8).to_be_bytes());
    reference.update(&[lengths.into()]);
    let expected = u128::from_be_bytes(reference.finalize().into());
    assert_eq!(ghash(h, aad, &ciphertext), expected);

    for a in [ONE, 2, h, u128::MAX, 0x0123456789abcdef_u128 << 17] {
        assert_eq!(gf_mul(a, gf_inv(a)), ONE);
        assert_eq!(gf_mul(a, ONE), a);
    }
}

/// Plain AES-GCM: one blob, two keys, two different files, both valid, and nothing in
/// the blob or its `contentHash` tells the recipients apart.
#[test]
fn plain_gcm_has_invisible_salamanders() {
    let k1 = KeyView::new([1; 16]);
    let k2 = KeyView::new([2; 16]);
    // The attacker chooses what key 1 shows (except the free block, which becomes
    // noise); key 2 shows other bytes. A real attack would also shape what key 2 shows
    // (e.g. a polyglot file); the tag condition is the hard part and is all we need.
    let intended = b"A picture of a friendly salamander, nothing to see...";
    let mut ciphertext = intended.to_vec();
    ciphertext.resize(64, b'.');
    let keystream = k1.decrypt_unchecked(&[0; 64]);
    for (c, k) in ciphertext.iter_mut().zip(keystream) {
        *c ^= k;
    }

    let tag = solve(&k1, b"", &k2, b"", &mut ciphertext);
    let blob = blob(&ciphertext, tag);

    let p1 = k1.aes_gcm_open(b"", &blob).expect("valid under key 1");
    let p2 = k2.aes_gcm_open(b"", &blob).expect("valid under key 2");
    assert_ne!(p1, p2);
    assert_eq!(p1[..16], intended[..16]);
    // Entente's opener, given a foreign sender's empty aad, accepts both as well, and
    // says so: neither is committed.
    assert_eq!(k1.entente_open(b"", &blob), Ok(Opened { committed: false }));
    assert_eq!(k2.entente_open(b"", &blob), Ok(Opened { committed: false }));
}

/// With Entente's committing aad the same attack no longer works.
#[test]
fn commitment_aad_stops_the_salamander() {
    let k1 = KeyView::new([1; 16]);
    let k2 = KeyView::new([2; 16]);

    // First try: take the salamander pair made for an empty aad and label it with each
    // recipient's commitment. Its tag was solved for the empty aad, so under the new
    // aads GCM itself refuses it.
    let mut ciphertext = vec![0x42; 64];
    let tag = solve(&k1, b"", &k2, b"", &mut ciphertext);
    let blob_a = blob(&ciphertext, tag);
    for k in [&k1, &k2] {
        let aad = commitment_aad(&Sha256::digest(k.decrypt_unchecked(&ciphertext)).into());
        assert_eq!(
            k.entente_open(&aad, &blob_a),
            Err(FileCryptoError::WrongKeyOrTampered)
        );
    }

    // The attacker's best effort: the aads must be fixed before the linear solve, so
    // commit to what each key decrypts the ciphertext to *before* solving, then solve
    // with those aads fixed. GCM's tag check now passes under both keys (aes-gcm
    // accepts both), but the solve rewrote the free block, so each plaintext changed in
    // that block and no longer has the hash the aad commits to.
    let mut ciphertext = vec![0x42; 64];
    ciphertext[FREE_BLOCK * 16..][..16].fill(0);
    let aad1 = commitment_aad(&Sha256::digest(k1.decrypt_unchecked(&ciphertext)).into());
    let aad2 = commitment_aad(&Sha256::digest(k2.decrypt_unchecked(&ciphertext)).into());
    let tag = solve(&k1, &aad1, &k2, &aad2, &mut ciphertext);
    let blob_b = blob(&ciphertext, tag);
    assert!(
        k1.aes_gcm_open(&aad1, &blob_b).is_some(),
        "plain GCM accepts key 1"
    );
    assert!(
        k2.aes_gcm_open(&aad2, &blob_b).is_some(),
        "plain GCM accepts key 2"
    );
    assert_eq!(
        k1.entente_open(&aad1, &blob_b),
        Err(FileCryptoError::CommitmentMismatch)
    );
    assert_eq!(
        k2.entente_open(&aad2, &blob_b),
        Err(FileCryptoError::CommitmentMismatch)
    );

    // And committing to the plaintexts the solved ciphertext really has puts the aads
    // out of step with the tag again.
    for k in [&k1, &k2] {
        let aad = commitment_aad(&Sha256::digest(k.decrypt_unchecked(&ciphertext)).into());
        assert_eq!(
            k.entente_open(&aad, &blob_b),
            Err(FileCryptoError::WrongKeyOrTampered)
        );
    }
    // Making both hold at once means finding a ciphertext whose two commitments, fed
    // through SHA-256 into GHASH, land on equal tags: a search, not a solve (the
    // module docs put the generic cost at about 2^64).
}
