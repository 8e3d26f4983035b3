//! The key schedule and AEADs of RFC 9605 sections 4.4.2 and 4.5.

use aes::Aes128;
use aes::cipher::KeyInit;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use ctr::cipher::{InnerIvInit, StreamCipher};
use ctr::{Ctr32BE, CtrCore};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};
use zeroize::Zeroizing;

use super::{CipherSuite, Header, MAX_HEADER_LEN, NONCE_LEN, SframeError};

const KEY_LABEL: &[u8] = b"SFrame 1.0 Secret key ";
const SALT_LABEL: &[u8] = b"SFrame 1.0 Secret salt ";

/// `sframe_key` and `sframe_salt` of one KID (RFC 9605 section 4.4.2), ready to use.
pub(super) struct KeyMaterial {
    aead: Aead,
    salt: [u8; NONCE_LEN],
}

enum Aead {
    /// Section 4.5.1: `enc_key` (the AES key schedule) and `auth_key`.
    CtrHmac {
        enc: Box<Aes128>,
        /// `auth_key` zero-padded to the SHA-256 block, as HMAC pads it anyway.
        auth_key: Zeroizing<[u8; 64]>,
        tag_len: usize,
    },
    Gcm128(Box<Aes128Gcm>),
    Gcm256(Box<Aes256Gcm>),
}

impl KeyMaterial {
    /// `derive_key_salt(KID, base_key)`:
    ///
    /// ```text
    /// sframe_secret = HKDF-Extract("", base_key)
    /// sframe_key_label = "SFrame 1.0 Secret key " + KID + cipher_suite
    /// sframe_key = HKDF-Expand(sframe_secret, sframe_key_label, AEAD.Nk)
    /// sframe_salt_label = "SFrame 1.0 Secret salt " + KID + cipher_suite
    /// sframe_salt = HKDF-Expand(sframe_secret, sframe_salt_label, AEAD.Nn)
    /// ```
    pub(super) fn derive(suite: CipherSuite, kid: u64, base_key: &[u8]) -> Self {
        let (key, salt) = derive_key_salt(suite, kid, base_key);
        Self::from_key_salt(suite, &key[..suite.key_len()], salt)
    }

    /// `key` is `AEAD.Nk` bytes.
    pub(super) fn from_key_salt(suite: CipherSuite, key: &[u8], salt: [u8; NONCE_LEN]) -> Self {
        let aead = match suite {
            CipherSuite::AesCtrHmac80 | CipherSuite::AesCtrHmac64 | CipherSuite::AesCtrHmac32 => {
                // derive_subkeys: enc_key = key[..Nka], auth_key = key[Nka..].
                let mut auth_key = Zeroizing::new([0u8; 64]);
                auth_key[..32].copy_from_slice(&key[16..48]);
                Aead::CtrHmac {
                    enc: Box::new(Aes128::new(key[..16].into())),
                    auth_key,
                    tag_len: suite.tag_len(),
                }
            }
            CipherSuite::Aes128Gcm => Aead::Gcm128(Box::new(Aes128Gcm::new(key[..16].into()))),
            CipherSuite::Aes256Gcm => Aead::Gcm256(Box::new(Aes256Gcm::new(key[..32].into()))),
        };
        KeyMaterial { aead, salt }
    }

    /// `nonce = xor(sframe_salt, encode_big_endian(CTR, AEAD.Nn))`.
    pub(super) fn nonce(&self, ctr: u64) -> [u8; NONCE_LEN] {
        let mut nonce = self.salt;
        for (n, c) in nonce[NONCE_LEN - 8..].iter_mut().zip(ctr.to_be_bytes()) {
            *n ^= c;
        }
        nonce
    }

    fn tag_len(&self) -> usize {
        match &self.aead {
            Aead::CtrHmac { tag_len, .. } => *tag_len,
            Aead::Gcm128(_) | Aead::Gcm256(_) => 16,
        }
    }

    /// `header || AEAD.Encrypt(sframe_key, nonce, header || metadata, plaintext)`.
    pub(super) fn seal(
        &self,
        header: Header,
        metadata: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SframeError> {
        let mut out = Vec::with_capacity(MAX_HEADER_LEN + plaintext.len() + 16);
        header.encode_into(&mut out);
        let header_len = out.len();
        let mut aad = Vec::with_capacity(header_len + metadata.len());
        aad.extend_from_slice(&out);
        aad.extend_from_slice(metadata);
        out.extend_from_slice(plaintext);
        let tag = self.aead_encrypt(&self.nonce(header.ctr), &aad, &mut out[header_len..])?;
        out.extend_from_slice(&tag[..self.tag_len()]);
        Ok(out)
    }

    /// Decrypts the part of a frame after its header.
    pub(super) fn open(
        &self,
        header: Header,
        header_bytes: &[u8],
        metadata: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, SframeError> {
        let mut aad = Vec::with_capacity(header_bytes.len() + metadata.len());
        aad.extend_from_slice(header_bytes);
        aad.extend_from_slice(metadata);
        self.aead_decrypt(&self.nonce(header.ctr), &aad, ciphertext)
            .map_err(|e| match e {
                AeadFailure::Short => SframeError::Malformed("shorter than the authentication tag"),
                AeadFailure::Tag => SframeError::Authentication { kid: header.kid },
                AeadFailure::TooLarge => SframeError::FrameTooLarge,
            })
    }

    /// `AEAD.Encrypt` in place; returns the tag (its first `tag_len` bytes count).
    pub(super) fn aead_encrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; 32], SframeError> {
        let mut tag = [0u8; 32];
        match &self.aead {
            Aead::CtrHmac {
                enc,
                auth_key,
                tag_len,
            } => {
                ctr_apply(enc, nonce, buf).map_err(|_| SframeError::FrameTooLarge)?;
                let mut mac = ctr_hmac_mac(auth_key, *tag_len, nonce, aad, buf.len());
                mac.update(buf);
                tag.copy_from_slice(&mac.finalize().into_bytes());
            }
            Aead::Gcm128(gcm) => {
                let t = gcm
                    .encrypt_in_place_detached(nonce.into(), aad, buf)
                    .map_err(|_| SframeError::FrameTooLarge)?;
                tag[..16].copy_from_slice(&t);
            }
            Aead::Gcm256(gcm) => {
                let t = gcm
                    .encrypt_in_place_detached(nonce.into(), aad, buf)
                    .map_err(|_| SframeError::FrameTooLarge)?;
                tag[..16].copy_from_slice(&t);
            }
        }
        Ok(tag)
    }

    /// `AEAD.Decrypt`: checks the tag (in constant time) before decrypting.
    pub(super) fn aead_decrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, AeadFailure> {
        let split = ciphertext
            .len()
            .checked_sub(self.tag_len())
            .ok_or(AeadFailure::Short)?;
        let (body, tag) = ciphertext.split_at(split);
        let mut plaintext = body.to_vec();
        match &self.aead {
            Aead::CtrHmac {
                enc,
                auth_key,
                tag_len,
            } => {
                let mut mac = ctr_hmac_mac(auth_key, *tag_len, nonce, aad, body.len());
                mac.update(body);
                mac.verify_truncated_left(tag)
                    .map_err(|_| AeadFailure::Tag)?;
                ctr_apply(enc, nonce, &mut plaintext).map_err(|_| AeadFailure::TooLarge)?;
            }
            Aead::Gcm128(gcm) => gcm
                .decrypt_in_place_detached(nonce.into(), aad, &mut plaintext, tag.into())
                .map_err(|_| AeadFailure::Tag)?,
            Aead::Gcm256(gcm) => gcm
                .decrypt_in_place_detached(nonce.into(), aad, &mut plaintext, tag.into())
                .map_err(|_| AeadFailure::Tag)?,
        }
        Ok(plaintext)
    }
}

pub(super) enum AeadFailure {
    Short,
    Tag,
    TooLarge,
}

/// HKDF with the suite's hash; returns `sframe_key` (up to 48 bytes, `AEAD.Nk` used)
/// and `sframe_salt`.
pub(super) fn derive_key_salt(
    suite: CipherSuite,
    kid: u64,
    base_key: &[u8],
) -> (Zeroizing<[u8; 48]>, [u8; NONCE_LEN]) {
    let key_label = label(KEY_LABEL, kid, suite);
    let salt_label = label(SALT_LABEL, kid, suite);

    let mut key = Zeroizing::new([0u8; 48]);
    let mut salt = [0u8; NONCE_LEN];
    let out = &mut key[..suite.key_len()];
    // HKDF-Expand only fails above 255 hash lengths; 48 and 12 bytes are far below, so
    // the results are ignored rather than unwrapped.
    match suite {
        CipherSuite::Aes256Gcm => {
            let hk = Hkdf::<Sha512>::new(Some(&[]), base_key);
            let _ = hk.expand(&key_label, out);
            let _ = hk.expand(&salt_label, &mut salt);
        }
        _ => {
            let hk = Hkdf::<Sha256>::new(Some(&[]), base_key);
            let _ = hk.expand(&key_label, out);
            let _ = hk.expand(&salt_label, &mut salt);
        }
    }
    (key, salt)
}

/// `prefix + KID + cipher_suite`, KID as 8 and the suite as 2 big-endian bytes.
pub(super) fn label(prefix: &[u8], kid: u64, suite: CipherSuite) -> Vec<u8> {
    let mut label = Vec::with_capacity(prefix.len() + 10);
    label.extend_from_slice(prefix);
    label.extend_from_slice(&kid.to_be_bytes());
    label.extend_from_slice(&suite.id().to_be_bytes());
    label
}

/// AES-CTR with `initial_counter = nonce + 0x00000000`.
fn ctr_apply(enc: &Aes128, nonce: &[u8; NONCE_LEN], buf: &mut [u8]) -> Result<(), SframeError> {
    let mut iv = [0u8; 16];
    iv[..NONCE_LEN].copy_from_slice(nonce);
    let mut cipher: Ctr32BE<Aes128> =
        Ctr32BE::from_core(CtrCore::inner_iv_init(enc.clone(), &iv.into()));
    cipher
        .try_apply_keystream(buf)
        .map_err(|_| SframeError::FrameTooLarge)
}

/// `compute_tag` up to (not including) the ciphertext, which the caller adds:
///
/// ```text
/// auth_data = aad_len + ct_len + tag_len + nonce + aad + ct
/// tag = HMAC(auth_key, auth_data)
/// ```
fn ctr_hmac_mac(
    auth_key: &[u8; 64],
    tag_len: usize,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ct_len: usize,
) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new(auth_key.into());
    mac.update(&(aad.len() as u64).to_be_bytes());
    mac.update(&(ct_len as u64).to_be_bytes());
    mac.update(&(tag_len as u64).to_be_bytes());
    mac.update(nonce);
    mac.update(aad);
    mac
}
