//! SFrame, RFC 9605: end-to-end encryption of media frames, with the MLS key
//! management of its section 5.2.
//!
//! An SFrame ciphertext is `header || AEAD.Encrypt(sframe_key, nonce, header || metadata,
//! frame)`. The header carries a key ID (KID) that selects the key and a counter (CTR)
//! that makes the nonce (`sframe_salt XOR CTR`). Everything here is sans-IO: keys come
//! in as bytes (the MLS exporter output, computed by the caller with OpenMLS), frames go
//! in and out as byte strings.
//!
//! - [`Header`]: the header codec (section 4.3).
//! - [`SendKey`] / [`ReceiverContext`]: one key per KID (section 4.4), used either to
//!   encrypt or to decrypt, never both, as section 4.4.1 requires.
//! - [`KidLayout`] and [`MlsSframe`]: KIDs and keys of an MLS group (section 5.2).
//!
//! Replay protection is left to the caller (RFC 9605 section 9.3): frames travel over
//! SRTP, which has its own replay window.
//!
//! ```
//! use entente_core::sframe::{CipherSuite, MlsSframe};
//!
//! let suite = CipherSuite::Aes128Gcm;
//! // Both members computed MLS-Exporter("SFrame 1.0 Base Key", "", suite.key_len()).
//! let base_key = [7u8; 16];
//! let mut alice = MlsSframe::new(suite, 8)?;
//! let mut bob = MlsSframe::new(suite, 8)?;
//! alice.set_epoch(3, &base_key, 0, &[0, 1])?;
//! bob.set_epoch(3, &base_key, 1, &[0, 1])?;
//!
//! let frame = alice.encrypt(b"opus frame", b"")?;
//! let opened = bob.decrypt(&frame, b"")?;
//! assert_eq!((opened.sender, opened.epoch), (0, 3));
//! assert_eq!(opened.plaintext, b"opus frame");
//! # Ok::<(), entente_core::sframe::SframeError>(())
//! ```

use std::collections::HashMap;

mod crypto;
mod mls;

use crypto::KeyMaterial;
pub use mls::{KidLayout, MlsFrame, MlsKid, MlsSframe};

/// Nonce size of every suite of RFC 9605 (`AEAD.Nn`).
const NONCE_LEN: usize = 12;
/// Longest header: the config byte, an 8-byte KID and an 8-byte CTR.
pub const MAX_HEADER_LEN: usize = 17;

/// Why an SFrame operation failed, and whose fault it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SframeError {
    /// Peer: the bytes are not an SFrame ciphertext (bad header, shorter than a tag).
    #[error("malformed SFrame ciphertext: {0}")]
    Malformed(&'static str),
    /// Peer or timing: no decryption key for this KID (unknown sender, an epoch we do not
    /// have or no longer keep, or our own KID).
    #[error("no decryption key for KID {kid:#x}")]
    UnknownKid {
        /// The KID of the frame.
        kid: u64,
    },
    /// Peer: the frame, its header or its metadata was altered, or encrypted under
    /// another key.
    #[error("SFrame authentication failed for KID {kid:#x}")]
    Authentication {
        /// The KID of the frame.
        kid: u64,
    },
    /// Caller: this send key has used every counter value; a new key is needed.
    #[error("the counter of KID {kid:#x} is exhausted")]
    CounterExhausted {
        /// The KID of the exhausted key.
        kid: u64,
    },
    /// Caller or peer: a frame larger than the cipher can process under one nonce.
    #[error("frame too large for one SFrame ciphertext")]
    FrameTooLarge,
    /// Caller: a cipher suite value RFC 9605 does not define.
    #[error("unknown SFrame cipher suite {0:#06x}")]
    UnknownCipherSuite(u16),
    /// Caller: an MLS base key must be `AEAD.Nk` bytes of exporter output.
    #[error("base key of {got} bytes, the cipher suite needs {expected}")]
    BaseKeyLength {
        /// `AEAD.Nk` of the suite.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// Caller: the epoch and index bits do not fit a 64-bit KID.
    #[error("{epoch_bits} epoch bits and {index_bits} index bits do not fit a 64-bit KID")]
    KidLayout {
        /// E of section 5.2.
        epoch_bits: u8,
        /// S of section 5.2.
        index_bits: u8,
    },
    /// Caller: a leaf index or context ID too large for its KID field.
    #[error("{field} {value} does not fit in {bits} bits of the KID")]
    KidFieldTooLarge {
        /// "index" or "context".
        field: &'static str,
        /// The value given.
        value: u64,
        /// The width of its field.
        bits: u8,
    },
    /// Caller: epochs only move forward.
    #[error("epoch {got} is not after the current epoch {current}")]
    StaleEpoch {
        /// The newest epoch set so far.
        current: u64,
        /// The epoch given.
        got: u64,
    },
    /// Caller: [`MlsSframe::encrypt`] before [`MlsSframe::set_epoch`].
    #[error("no epoch has been set")]
    NoEpoch,
}

/// The cipher suites of RFC 9605 section 4.5 (registry of section 8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// `AES_128_CTR_HMAC_SHA256_80` (0x0001): AES-CTR then HMAC, 10-byte tag.
    AesCtrHmac80,
    /// `AES_128_CTR_HMAC_SHA256_64` (0x0002): 8-byte tag.
    AesCtrHmac64,
    /// `AES_128_CTR_HMAC_SHA256_32` (0x0003): 4-byte tag.
    AesCtrHmac32,
    /// `AES_128_GCM_SHA256_128` (0x0004).
    Aes128Gcm,
    /// `AES_256_GCM_SHA512_128` (0x0005).
    Aes256Gcm,
}

impl CipherSuite {
    /// Every suite RFC 9605 defines.
    pub const ALL: [CipherSuite; 5] = [
        CipherSuite::AesCtrHmac80,
        CipherSuite::AesCtrHmac64,
        CipherSuite::AesCtrHmac32,
        CipherSuite::Aes128Gcm,
        CipherSuite::Aes256Gcm,
    ];

    /// The suite with registry value `id`.
    pub fn from_u16(id: u16) -> Result<Self, SframeError> {
        Ok(match id {
            0x0001 => Self::AesCtrHmac80,
            0x0002 => Self::AesCtrHmac64,
            0x0003 => Self::AesCtrHmac32,
            0x0004 => Self::Aes128Gcm,
            0x0005 => Self::Aes256Gcm,
            other => return Err(SframeError::UnknownCipherSuite(other)),
        })
    }

    /// The registry value.
    pub fn id(self) -> u16 {
        match self {
            Self::AesCtrHmac80 => 0x0001,
            Self::AesCtrHmac64 => 0x0002,
            Self::AesCtrHmac32 => 0x0003,
            Self::Aes128Gcm => 0x0004,
            Self::Aes256Gcm => 0x0005,
        }
    }

    /// `AEAD.Nk`: the key size, and the length to ask of the MLS exporter.
    pub fn key_len(self) -> usize {
        match self {
            Self::AesCtrHmac80 | Self::AesCtrHmac64 | Self::AesCtrHmac32 => 48,
            Self::Aes128Gcm => 16,
            Self::Aes256Gcm => 32,
        }
    }

    /// `AEAD.Nt`: bytes a ciphertext adds to its plaintext, besides the header.
    pub fn tag_len(self) -> usize {
        match self {
            Self::AesCtrHmac80 => 10,
            Self::AesCtrHmac64 => 8,
            Self::AesCtrHmac32 => 4,
            Self::Aes128Gcm | Self::Aes256Gcm => 16,
        }
    }
}

/// The SFrame header (RFC 9605 section 4.3):
///
/// ```text
///  0 1 2 3 4 5 6 7
/// +-+-+-+-+-+-+-+-+------------+------------+
/// |X|  K  |Y|  C  |   KID...   |   CTR...   |
/// +-+-+-+-+-+-+-+-+------------+------------+
/// ```
///
/// "If the value of one of these fields is in the range 0-7, then the value is carried
/// in the corresponding bits of the config byte (K or C) and the corresponding flag (X
/// or Y) is set to zero. Otherwise, the value MUST be encoded with the minimum number of
/// bytes required and appended after the config byte, with the KID first and CTR
/// second. The header field (K or C) is set to the number of bytes in the encoded value,
/// minus one."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Key ID.
    pub kid: u64,
    /// Counter.
    pub ctr: u64,
}

impl Header {
    /// The encoded header.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded header to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let (k, kid_len) = field_bits(self.kid);
        let (c, ctr_len) = field_bits(self.ctr);
        out.push((k << 4) | c);
        out.extend_from_slice(&self.kid.to_be_bytes()[8 - kid_len..]);
        out.extend_from_slice(&self.ctr.to_be_bytes()[8 - ctr_len..]);
    }

    /// Length of the encoded header, 1 to [`MAX_HEADER_LEN`] bytes.
    pub fn encoded_len(&self) -> usize {
        1 + field_bits(self.kid).1 + field_bits(self.ctr).1
    }

    /// Parses the header at the start of `bytes`; returns it and its length. Refuses
    /// truncated headers and values not in their minimal encoding.
    pub fn decode(bytes: &[u8]) -> Result<(Header, usize), SframeError> {
        let (&config, rest) = bytes.split_first().ok_or(SframeError::Malformed("empty"))?;
        let (kid, kid_len) = decode_field(config >> 4, rest)?;
        let (ctr, ctr_len) = decode_field(config & 0x0f, &rest[kid_len..])?;
        Ok((Header { kid, ctr }, 1 + kid_len + ctr_len))
    }
}

/// The 4 config bits (flag and K or C) and the extension length of one value.
fn field_bits(value: u64) -> (u8, usize) {
    if value < 8 {
        // Lossless: value < 8.
        (value as u8, 0)
    } else {
        let len = 8 - (value.leading_zeros() / 8) as usize;
        // Lossless: 1 <= len <= 8.
        (0x8 | (len - 1) as u8, len)
    }
}

/// Decodes one value from its 4 config bits and the bytes after; returns it and the
/// number of bytes it took.
fn decode_field(bits: u8, rest: &[u8]) -> Result<(u64, usize), SframeError> {
    if bits & 0x8 == 0 {
        return Ok((u64::from(bits & 0x7), 0));
    }
    let len = usize::from(bits & 0x7) + 1;
    let bytes = rest
        .get(..len)
        .ok_or(SframeError::Malformed("header truncated"))?;
    let value = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if value < 8 || bytes[0] == 0 {
        return Err(SframeError::Malformed("header value not minimally encoded"));
    }
    Ok((value, len))
}

/// A key for sending: the derived key and salt of one KID and its next counter.
///
/// Each [`SendKey`] must belong to exactly one sender (RFC 9605 section 4.4.1); it
/// never decrypts.
pub struct SendKey {
    kid: u64,
    material: KeyMaterial,
    next_ctr: Option<u64>,
}

impl SendKey {
    /// A send key for `kid` derived from `base_key`, counting from 0.
    pub fn new(suite: CipherSuite, kid: u64, base_key: &[u8]) -> Self {
        Self::starting_at(suite, kid, base_key, 0)
    }

    /// A send key whose first frame uses counter `ctr`: for a context restored from
    /// storage (RFC 9605 section 9.1: store the next counter before using it).
    pub fn starting_at(suite: CipherSuite, kid: u64, base_key: &[u8], ctr: u64) -> Self {
        SendKey {
            kid,
            material: KeyMaterial::derive(suite, kid, base_key),
            next_ctr: Some(ctr),
        }
    }

    /// The KID this key sends under.
    pub fn kid(&self) -> u64 {
        self.kid
    }

    /// The counter the next frame will use; `None` once exhausted.
    pub fn next_counter(&self) -> Option<u64> {
        self.next_ctr
    }

    /// Encrypts one frame: `header || ciphertext || tag`, the header and `metadata`
    /// authenticated. Each call uses the next counter; counters are never reused.
    pub fn encrypt(&mut self, metadata: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SframeError> {
        let ctr = self
            .next_ctr
            .ok_or(SframeError::CounterExhausted { kid: self.kid })?;
        let frame = self
            .material
            .seal(Header { kid: self.kid, ctr }, metadata, plaintext)?;
        self.next_ctr = ctr.checked_add(1);
        Ok(frame)
    }
}

/// Shows the KID and counter, never the key.
impl std::fmt::Debug for SendKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let SendKey {
            kid,
            material: _,
            next_ctr,
        } = self;
        f.debug_struct("SendKey")
            .field("kid", kid)
            .field("next_ctr", next_ctr)
            .finish_non_exhaustive()
    }
}

/// Decryption keys by KID.
pub struct ReceiverContext {
    suite: CipherSuite,
    keys: HashMap<u64, KeyMaterial>,
}

/// Shows the suite and KIDs, never keys.
impl std::fmt::Debug for ReceiverContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ReceiverContext { suite, keys } = self;
        let mut kids: Vec<&u64> = keys.keys().collect();
        kids.sort_unstable();
        f.debug_struct("ReceiverContext")
            .field("suite", suite)
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

impl ReceiverContext {
    /// An empty context for `suite`.
    pub fn new(suite: CipherSuite) -> Self {
        ReceiverContext {
            suite,
            keys: HashMap::new(),
        }
    }

    /// Adds (or replaces) the key for `kid`, derived from `base_key`.
    pub fn add_key(&mut self, kid: u64, base_key: &[u8]) {
        self.keys
            .insert(kid, KeyMaterial::derive(self.suite, kid, base_key));
    }

    /// Removes the key for `kid`; says whether there was one.
    pub fn remove_key(&mut self, kid: u64) -> bool {
        self.keys.remove(&kid).is_some()
    }

    /// Decrypts one SFrame ciphertext with the key its KID names.
    pub fn decrypt(&mut self, frame: &[u8], metadata: &[u8]) -> Result<Vec<u8>, SframeError> {
        self.decrypt_with_header(frame, metadata)
            .map(|(_, plaintext)| plaintext)
    }

    /// Like [`ReceiverContext::decrypt`], also returning the authenticated header.
    pub fn decrypt_with_header(
        &mut self,
        frame: &[u8],
        metadata: &[u8],
    ) -> Result<(Header, Vec<u8>), SframeError> {
        let (header, header_len) = Header::decode(frame)?;
        let key = self
            .keys
            .get(&header.kid)
            .ok_or(SframeError::UnknownKid { kid: header.kid })?;
        let plaintext = key.open(header, &frame[..header_len], metadata, &frame[header_len..])?;
        Ok((header, plaintext))
    }
}

#[cfg(test)]
mod tests;
