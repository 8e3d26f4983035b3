//! Streaming AES-GCM with a 96-bit nonce, exactly as NIST SP 800-38D section 7 and
//! the `aes-gcm` 0.10 crate compute it, but fed in pieces of any size.
//!
//! - `H = E_K(0^128)` keys GHASH; `J0 = nonce || 0x00000001`.
//! - The payload is XORed with the keystream `E_K(inc32(J0)), E_K(inc32^2(J0)), ...`
//!   (`ctr::Ctr32BE`, which wraps the low 32 bits as `inc32` does).
//! - `S = GHASH_H(A || 0* || C || 0* || [len(A)]_64 || [len(C)]_64)`, lengths in bits.
//! - `tag = E_K(J0) XOR S`.
//!
//! Speed comes from handing the block cipher and GHASH long runs of blocks (both
//! process several blocks in parallel); only a partial block is held back between
//! calls.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, InnerIvInit, KeyInit, StreamCipher};
use aes::{Aes128, Aes256};
use ctr::{Ctr32BE, CtrCore};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use zeroize::{Zeroize, Zeroizing};

use super::{FileKey, MAX_PLAINTEXT_LEN, NONCE_LEN, TAG_LEN};

const BLOCK: usize = 16;

/// The counter-mode keystream for either key size. The block cipher's round keys and
/// the counter are wiped when it drops (`aes`/`ctr` `zeroize` features).
#[allow(
    clippy::large_enum_variant,
    reason = "one per file in flight; boxing would save 256 bytes and add an indirection"
)]
enum Keystream {
    Aes128(Ctr32BE<Aes128>),
    Aes256(Ctr32BE<Aes256>),
}

impl Keystream {
    /// XORs the next `buf.len()` keystream bytes into `buf`. Fails only when the
    /// 32-bit counter would wrap; the length check in [`StreamingGcm`] rules that out
    /// first (2^32 - 2 blocks take the counter from 2 to 2^32 - 1, never round to 0
    /// and `J0`).
    fn apply(&mut self, buf: &mut [u8]) -> Result<(), LengthExceeded> {
        let result = match self {
            Self::Aes128(ctr) => ctr.try_apply_keystream(buf),
            Self::Aes256(ctr) => ctr.try_apply_keystream(buf),
        };
        result.map_err(|_| LengthExceeded)
    }
}

/// The payload would pass GCM's limit of 2^36 - 32 bytes for one nonce.
#[derive(Debug)]
pub(super) struct LengthExceeded;

/// One AES-GCM encryption or decryption in progress.
pub(super) struct StreamingGcm {
    keystream: Keystream,
    ghash: GHash,
    /// `E_K(J0)`, which masks the GHASH output into the tag.
    tag_mask: Zeroizing<[u8; TAG_LEN]>,
    /// Ciphertext bytes not yet absorbed by GHASH (less than one block). Ciphertext
    /// is public, so this is not wiped.
    pending: [u8; BLOCK],
    pending_len: usize,
    aad_len: u64,
    text_len: u64,
}

impl StreamingGcm {
    /// Starts an encryption or decryption under `key` and `nonce`, authenticating
    /// `aad`.
    pub(super) fn new(key: &FileKey, nonce: &[u8; NONCE_LEN], aad: &[u8]) -> Self {
        let mut j0 = [0u8; BLOCK];
        j0[..NONCE_LEN].copy_from_slice(nonce);
        j0[BLOCK - 1] = 1;
        // The payload's keystream starts at inc32(J0).
        let mut first_counter = j0;
        first_counter[BLOCK - 1] = 2;
        let first_counter = GenericArray::from(first_counter);

        let mut h = GenericArray::from([0u8; BLOCK]);
        let mut mask = GenericArray::from(j0);
        let keystream = match key {
            FileKey::Aes128(k) => {
                let cipher = Aes128::new(GenericArray::from_slice(k.as_slice()));
                cipher.encrypt_block(&mut h);
                cipher.encrypt_block(&mut mask);
                Keystream::Aes128(Ctr32BE::from_core(CtrCore::inner_iv_init(
                    cipher,
                    &first_counter,
                )))
            }
            FileKey::Aes256(k) => {
                let cipher = Aes256::new(GenericArray::from_slice(k.as_slice()));
                cipher.encrypt_block(&mut h);
                cipher.encrypt_block(&mut mask);
                Keystream::Aes256(Ctr32BE::from_core(CtrCore::inner_iv_init(
                    cipher,
                    &first_counter,
                )))
            }
        };
        let mut h_key = ghash::Key::default();
        h_key.copy_from_slice(&h);
        let mut ghash = GHash::new(&h_key);
        h_key.as_mut_slice().zeroize();
        h.as_mut_slice().zeroize();
        let mut tag_mask = Zeroizing::new([0u8; TAG_LEN]);
        tag_mask.copy_from_slice(&mask);
        mask.as_mut_slice().zeroize();

        // GHASH absorbs the AAD first, zero-padded to a whole block.
        ghash.update_padded(aad);
        Self {
            keystream,
            ghash,
            tag_mask,
            pending: [0; BLOCK],
            pending_len: 0,
            aad_len: aad.len() as u64,
            text_len: 0,
        }
    }

    /// Encrypts the next piece of plaintext in place.
    pub(super) fn encrypt(&mut self, buf: &mut [u8]) -> Result<(), LengthExceeded> {
        self.count(buf.len())?;
        self.keystream.apply(buf)?;
        self.absorb(buf);
        Ok(())
    }

    /// Decrypts the next piece of ciphertext in place (the tag is not part of it).
    pub(super) fn decrypt(&mut self, buf: &mut [u8]) -> Result<(), LengthExceeded> {
        self.count(buf.len())?;
        self.absorb(buf);
        self.keystream.apply(buf)
    }

    /// The tag over the AAD and all the ciphertext seen.
    pub(super) fn finish(mut self) -> [u8; TAG_LEN] {
        // The last partial block is zero-padded, as in one-shot GCM.
        self.ghash.update_padded(&self.pending[..self.pending_len]);
        let mut lengths = ghash::Block::default();
        lengths[..8].copy_from_slice(&self.aad_len.wrapping_mul(8).to_be_bytes());
        lengths[8..].copy_from_slice(&self.text_len.wrapping_mul(8).to_be_bytes());
        self.ghash.update(&[lengths]);
        let s = self.ghash.finalize();
        let mut tag = [0u8; TAG_LEN];
        for ((t, s), m) in tag.iter_mut().zip(s.iter()).zip(self.tag_mask.iter()) {
            *t = s ^ m;
        }
        tag
    }

    fn count(&mut self, len: usize) -> Result<(), LengthExceeded> {
        self.text_len = u64::try_from(len)
            .ok()
            .and_then(|len| self.text_len.checked_add(len))
            .filter(|&total| total <= MAX_PLAINTEXT_LEN)
            .ok_or(LengthExceeded)?;
        Ok(())
    }

    /// Feeds ciphertext to GHASH in whole blocks, the longest run at once; keeps a
    /// trailing partial block for the next call.
    fn absorb(&mut self, mut data: &[u8]) {
        if self.pending_len > 0 {
            let take = (BLOCK - self.pending_len).min(data.len());
            let (head, rest) = data.split_at(take);
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(head);
            self.pending_len += take;
            data = rest;
            if self.pending_len < BLOCK {
                return;
            }
            self.ghash.update_padded(&self.pending);
            self.pending_len = 0;
        }
        let whole = data.len() - data.len() % BLOCK;
        let (blocks, tail) = data.split_at(whole);
        // A multiple of the block size, so `update_padded` adds no padding here.
        self.ghash.update_padded(blocks);
        self.pending[..tail.len()].copy_from_slice(tail);
        self.pending_len = tail.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limit is GCM's, 2^36 - 32 bytes, checked before any byte is touched (no
    /// 64 GiB test file: the byte count is set directly).
    #[test]
    fn refuses_more_than_gcm_allows() {
        let key = FileKey::Aes128(Zeroizing::new([7; 16]));
        let mut gcm = StreamingGcm::new(&key, &[1; NONCE_LEN], b"");
        gcm.text_len = MAX_PLAINTEXT_LEN - 5;
        let mut buf = [0u8; 6];
        assert!(gcm.encrypt(&mut buf).is_err());
        assert_eq!(buf, [0; 6], "a refused piece is left as it was");
        assert!(gcm.decrypt(&mut buf).is_err());
        assert!(gcm.encrypt(&mut buf[..5]).is_ok());
        assert!(gcm.encrypt(&mut []).is_ok());
        assert!(gcm.encrypt(&mut buf[..1]).is_err());
    }
}
