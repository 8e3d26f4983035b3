//! Encrypted files for MIMI `ExternalPart` (draft-ietf-mimi-content, section
//! "External content"), sans-IO and streaming in bounded memory.
//!
//! # Format
//!
//! A file is encrypted as **one** AEAD message, so that any AES-GCM implementation can
//! decrypt it from the `ExternalPart` fields alone:
//!
//! ```text
//! blob        = AES-GCM ciphertext || 16-byte tag     (stored at `url`)
//! size        = len(blob) = len(plaintext) + 16
//! encAlg      = 1 (AEAD_AES_128_GCM) or 2 (AEAD_AES_256_GCM), IANA AEAD registry
//! key, nonce  = a fresh random key and a 12-byte nonce per file
//! aad         = "entente-file-commit-v1" || SHA-256(plaintext)   (see below)
//! hashAlg     = 1 ("sha-256", IANA Named Information Hash Algorithm registry)
//! contentHash = SHA-256(blob)
//! ```
//!
//! GCM limits one message to 2^36 - 32 bytes of plaintext ([`MAX_PLAINTEXT_LEN`]).
//!
//! # Streaming
//!
//! [`BlobSealer`] and [`BlobOpener`] take the file in pieces of any size and keep only a
//! partial block between calls. They compute exactly what one-shot AES-GCM computes
//! (NIST SP 800-38D; checked against the `aes-gcm` crate and Python's `cryptography`).
//!
//! Decryption has to release plaintext before the tag at the end of the blob can be
//! checked. **The caller writes the plaintext to a temporary file and shows or moves
//! it into place only after [`BlobOpener::finish`] returns `Ok`**; on any error it
//! deletes the temporary file.
//!
//! An interrupted download resumes from the plaintext kept so far
//! ([`BlobOpener::resume_from_plaintext`]); an interrupted upload resumes by running a
//! new [`BlobSealer`] from the start of the file and discarding its output up to the
//! server's offset (the output does not depend on how the input is split).
//!
//! # Key commitment
//!
//! AES-GCM is not key-committing: one ciphertext and tag can be valid under two keys
//! ("invisible salamanders", Dodis et al. 2018; Grubbs et al. 2017). With `T = E_K(J0)
//! XOR GHASH_H(A, C)`, an attacker picks two keys, fixes the AAD and all of the
//! ciphertext but one block, and solves the one linear equation over GF(2^128) that
//! makes both tags equal. The result is a blob that decrypts to one file for a
//! recipient given key 1 and to another for a recipient given key 2. `contentHash` does
//! not prevent this: it is a hash of the blob, and both keys accept the same blob.
//!
//! Entente's sender therefore sets `aad = "entente-file-commit-v1" || SHA-256(P)`
//! ([`commitment_aad`]; it hashes the file in a first pass and encrypts in a second),
//! and the receiver, when the `aad` has exactly that form, hashes the plaintext as it
//! decrypts and refuses the file unless the hash matches. The AAD now depends on the
//! plaintext, which depends on the key (`P = C XOR keystream_K`), through SHA-256:
//! changing the free ciphertext block changes both recipients' AADs unpredictably, so
//! the tag condition is no longer a linear equation in that block and the attack's
//! solve does not apply. (An AAD fixed in advance, such as a hash of the
//! key, would not help: the attacker would fix it before solving.) What remains is
//! generic: fix `C` and try many keys, each with the AAD its own plaintext implies,
//! until two give the same 128-bit tag, a birthday search of about 2^64 AES-GCM
//! evaluations over the whole file. The tests build a real salamander pair and show
//! that the receiver refuses the attacker's best committed attempt.
//!
//! Other senders' files (empty or other `aad`) are still accepted as plain AES-GCM,
//! reported as [`Opened::committed`] `false`; a caller that needs the commitment (for
//! example before forwarding a file in an abuse report) checks that flag.
//!
//! # Example
//!
//! ```
//! use entente_core::files::{BlobOpener, BlobSealer, FileAead, FileSecret, PlaintextHasher};
//!
//! # fn main() -> Result<(), entente_core::files::FileCryptoError> {
//! let file = b"a picture of a salamander".to_vec();
//!
//! // Sender: hash the file (first pass), then encrypt it (second pass).
//! let mut hasher = PlaintextHasher::new();
//! hasher.update(&file);
//! let aad = hasher.commitment_aad();
//! let secret = FileSecret::generate(FileAead::Aes128Gcm);
//! let mut sealer = BlobSealer::new(&secret, &aad);
//! let mut blob = file.clone();
//! sealer.update(&mut blob)?;
//! let tail = sealer.finish();
//! blob.extend_from_slice(&tail.tag);
//! // Upload `blob`; send `secret`, `aad` and `tail.content_hash` in an ExternalPart.
//!
//! // Receiver: decrypt as the download arrives, in pieces of any size.
//! let mut opener = BlobOpener::new(&secret, &aad, blob.len() as u64)?;
//! let mut plaintext = Vec::new();
//! for piece in blob.chunks_mut(7) {
//!     plaintext.extend_from_slice(opener.update(piece)?);
//! }
//! let opened = opener.finish(&tail.content_hash)?;
//! assert!(opened.committed);
//! assert_eq!(plaintext, file);
//! # Ok(())
//! # }
//! ```

use rand::rngs::OsRng;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

mod gcm;
#[cfg(test)]
mod salamander;
#[cfg(test)]
mod tests;

use gcm::StreamingGcm;

/// Length of the GCM tag at the end of every blob.
pub const TAG_LEN: usize = 16;
/// Length of the nonce: GCM's 96-bit nonce.
pub const NONCE_LEN: usize = 12;
/// GCM's limit on the plaintext of one message under one nonce: 2^39 - 256 bits.
pub const MAX_PLAINTEXT_LEN: u64 = (1 << 36) - 32;
/// The prefix of a committing `aad`; SHA-256 of the plaintext follows it.
pub const COMMITMENT_LABEL: &[u8] = b"entente-file-commit-v1";

/// Bytes read from `resume_from_plaintext` into scratch space at a time.
const RESUME_CHUNK: usize = 64 * 1024;

/// The AEAD algorithms Entente encrypts files with (`encAlg`, IANA AEAD registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileAead {
    /// AEAD_AES_128_GCM (1), which the draft makes mandatory to implement.
    Aes128Gcm,
    /// AEAD_AES_256_GCM (2).
    Aes256Gcm,
}

impl FileAead {
    /// The algorithm with IANA AEAD identifier `id`, if we support it.
    pub fn from_iana(id: u16) -> Option<Self> {
        match id {
            1 => Some(Self::Aes128Gcm),
            2 => Some(Self::Aes256Gcm),
            _ => None,
        }
    }

    /// The IANA AEAD identifier (`encAlg`).
    pub fn iana(self) -> u16 {
        match self {
            Self::Aes128Gcm => 1,
            Self::Aes256Gcm => 2,
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Gcm => 16,
            Self::Aes256Gcm => 32,
        }
    }
}

impl std::fmt::Display for FileAead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Aes128Gcm => "AES-128-GCM",
            Self::Aes256Gcm => "AES-256-GCM",
        })
    }
}

/// The key and nonce of one file (`encAlg`, `key` and `nonce` of its `ExternalPart`).
/// The key is wiped on drop; `Debug` shows only the algorithm.
pub struct FileSecret {
    key: FileKey,
    nonce: [u8; NONCE_LEN],
}

/// A key of the right length for its algorithm.
enum FileKey {
    Aes128(Zeroizing<[u8; 16]>),
    Aes256(Zeroizing<[u8; 32]>),
}

impl FileSecret {
    /// A fresh random key and nonce from the operating system's RNG.
    pub fn generate(alg: FileAead) -> Self {
        Self::generate_with(alg, &mut OsRng)
    }

    /// A fresh key and nonce from `rng` (deterministic tests pass a seeded one).
    pub fn generate_with(alg: FileAead, rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let key = match alg {
            FileAead::Aes128Gcm => {
                let mut key = Zeroizing::new([0u8; 16]);
                rng.fill_bytes(key.as_mut_slice());
                FileKey::Aes128(key)
            }
            FileAead::Aes256Gcm => {
                let mut key = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(key.as_mut_slice());
                FileKey::Aes256(key)
            }
        };
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        Self { key, nonce }
    }

    /// Checks an `ExternalPart`'s `encAlg`, `key` and `nonce`.
    pub fn from_parts(enc_alg: u16, key: &[u8], nonce: &[u8]) -> Result<Self, FileCryptoError> {
        let alg =
            FileAead::from_iana(enc_alg).ok_or(FileCryptoError::UnsupportedAlgorithm(enc_alg))?;
        let key_length = || FileCryptoError::KeyLength {
            alg,
            expected: alg.key_len(),
            got: key.len(),
        };
        let key = match alg {
            FileAead::Aes128Gcm => {
                FileKey::Aes128(Zeroizing::new(key.try_into().map_err(|_| key_length())?))
            }
            FileAead::Aes256Gcm => {
                FileKey::Aes256(Zeroizing::new(key.try_into().map_err(|_| key_length())?))
            }
        };
        let nonce = nonce
            .try_into()
            .map_err(|_| FileCryptoError::NonceLength(nonce.len()))?;
        Ok(Self { key, nonce })
    }

    /// The algorithm (`encAlg` is its [`FileAead::iana`]).
    pub fn alg(&self) -> FileAead {
        match self.key {
            FileKey::Aes128(_) => FileAead::Aes128Gcm,
            FileKey::Aes256(_) => FileAead::Aes256Gcm,
        }
    }

    /// The key, for the `ExternalPart` (which travels inside an MLS message).
    pub fn key(&self) -> &[u8] {
        match &self.key {
            FileKey::Aes128(k) => k.as_slice(),
            FileKey::Aes256(k) => k.as_slice(),
        }
    }

    /// The nonce, for the `ExternalPart`.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }
}

impl std::fmt::Debug for FileSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { key: _, nonce: _ } = self;
        f.debug_struct("FileSecret")
            .field("alg", &self.alg())
            .finish_non_exhaustive()
    }
}

/// A SHA-256 `contentHash` (`hashAlg` 1): the hash of the whole blob.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// `hashAlg` for SHA-256 in the IANA Named Information Hash Algorithm registry.
    pub const HASH_ALG: u8 = 1;

    /// Checks an `ExternalPart`'s `hashAlg` and `contentHash`.
    pub fn from_parts(hash_alg: u8, hash: &[u8]) -> Result<Self, FileCryptoError> {
        if hash_alg != Self::HASH_ALG {
            return Err(FileCryptoError::UnsupportedHash(hash_alg));
        }
        let hash = hash
            .try_into()
            .map_err(|_| FileCryptoError::HashLength(hash.len()))?;
        Ok(Self(hash))
    }

    /// The 32 hash bytes (`contentHash`).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentHash(sha-256:{})", hex::encode(self.0))
    }
}

/// The committing `aad` for a file whose plaintext hashes to `plaintext_sha256`.
pub fn commitment_aad(plaintext_sha256: &[u8; 32]) -> Vec<u8> {
    [COMMITMENT_LABEL, plaintext_sha256].concat()
}

/// The plaintext hash in `aad`, if `aad` has exactly the committing form.
fn committed_hash(aad: &[u8]) -> Option<[u8; 32]> {
    aad.strip_prefix(COMMITMENT_LABEL)?.try_into().ok()
}

/// The sender's first pass: hashes the plaintext for [`commitment_aad`].
#[derive(Clone, Default)]
pub struct PlaintextHasher(Sha256);

impl PlaintextHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hashes the next piece of the file.
    pub fn update(&mut self, plaintext: &[u8]) {
        self.0.update(plaintext);
    }

    /// The committing `aad` for the file hashed.
    pub fn commitment_aad(self) -> Vec<u8> {
        commitment_aad(&self.0.finalize().into())
    }
}

/// The size of the blob for a file of `plaintext_len` bytes (the `size` field).
pub fn blob_len(plaintext_len: u64) -> Result<u64, FileCryptoError> {
    if plaintext_len > MAX_PLAINTEXT_LEN {
        return Err(FileCryptoError::TooLarge);
    }
    Ok(plaintext_len + TAG_LEN as u64)
}

/// Encrypts a file into a blob, in place and in pieces of any size.
///
/// The blob is the encrypted pieces in order followed by [`SealedTail::tag`].
pub struct BlobSealer {
    gcm: StreamingGcm,
    blob_hash: Sha256,
}

/// What the sealer adds at the end: the tag that ends the blob, and the hash of the
/// whole blob for `contentHash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedTail {
    /// Append this to the blob.
    pub tag: [u8; TAG_LEN],
    /// SHA-256 over ciphertext || tag.
    pub content_hash: ContentHash,
}

impl BlobSealer {
    /// Starts encrypting a file under `secret`, authenticating `aad` (normally
    /// [`commitment_aad`] of the file).
    pub fn new(secret: &FileSecret, aad: &[u8]) -> Self {
        Self {
            gcm: StreamingGcm::new(&secret.key, &secret.nonce, aad),
            blob_hash: Sha256::new(),
        }
    }

    /// Encrypts the next piece of the file in place.
    ///
    /// Fails, leaving `buf` unchanged, when the file would exceed
    /// [`MAX_PLAINTEXT_LEN`].
    pub fn update(&mut self, buf: &mut [u8]) -> Result<(), FileCryptoError> {
        self.gcm
            .encrypt(buf)
            .map_err(|_| FileCryptoError::TooLarge)?;
        self.blob_hash.update(&*buf);
        Ok(())
    }

    /// The tag to append and the blob's `contentHash`.
    pub fn finish(self) -> SealedTail {
        let Self { gcm, mut blob_hash } = self;
        let tag = gcm.finish();
        blob_hash.update(tag);
        SealedTail {
            tag,
            content_hash: ContentHash(blob_hash.finalize().into()),
        }
    }
}

/// Decrypts a blob as it downloads, in pieces of any size, and checks it at the end.
///
/// Knowing the blob's length, it recognises the last 16 bytes as the tag and keeps
/// them aside. See the [module docs](self) for what to do with the plaintext before
/// [`finish`](Self::finish) succeeds.
pub struct BlobOpener {
    gcm: StreamingGcm,
    blob_hash: Sha256,
    /// The sender's plaintext hash and ours, for a committing `aad`.
    commitment: Option<([u8; 32], Sha256)>,
    blob_len: u64,
    received: u64,
    tag: [u8; TAG_LEN],
    /// More bytes than `blob_len` arrived; nothing after that is accepted.
    overran: bool,
}

/// A blob that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Opened {
    /// The sender used Entente's committing `aad` and the plaintext matched it. `false`
    /// for plain AES-GCM from other senders: valid, but another key might open the
    /// same blob to a different file (see "Key commitment" above).
    pub committed: bool,
}

impl BlobOpener {
    /// Starts decrypting a blob of `blob_len` bytes (the `ExternalPart`'s `size`, or
    /// the HTTP length where `size` is 0) encrypted under `secret` with `aad`.
    pub fn new(secret: &FileSecret, aad: &[u8], blob_len: u64) -> Result<Self, FileCryptoError> {
        if blob_len < TAG_LEN as u64 || blob_len - TAG_LEN as u64 > MAX_PLAINTEXT_LEN {
            return Err(FileCryptoError::InvalidSize(blob_len));
        }
        Ok(Self {
            gcm: StreamingGcm::new(&secret.key, &secret.nonce, aad),
            blob_hash: Sha256::new(),
            commitment: committed_hash(aad).map(|hash| (hash, Sha256::new())),
            blob_len,
            received: 0,
            tag: [0; TAG_LEN],
            overran: false,
        })
    }

    /// Decrypts the next downloaded bytes of the blob in place and returns the
    /// plaintext among them: all of `buf`, except for bytes of the final tag, which
    /// the opener keeps. The plaintext is unauthenticated until `finish` succeeds.
    ///
    /// Refuses (with [`FileCryptoError::TooLong`], now and in `finish`) bytes beyond
    /// the blob's length.
    pub fn update<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8], FileCryptoError> {
        let remaining = self.blob_len - self.received;
        if self.overran || u64::try_from(buf.len()).map_or(true, |len| len > remaining) {
            self.overran = true;
            return Err(FileCryptoError::TooLong {
                expected: self.blob_len,
            });
        }
        self.blob_hash.update(&*buf);
        let plaintext_left = self.plaintext_len().saturating_sub(self.received);
        let text_len =
            usize::try_from(plaintext_left).map_or(buf.len(), |left| left.min(buf.len()));
        let (text, tag_part) = buf.split_at_mut(text_len);
        self.gcm
            .decrypt(text)
            .map_err(|_| FileCryptoError::InvalidSize(self.blob_len))?;
        if let Some((_, hasher)) = &mut self.commitment {
            hasher.update(&*text);
        }
        self.received += text_len as u64;
        if !tag_part.is_empty() {
            // `received` is now at or past the plaintext, and the length check above
            // keeps it within the blob, so this is an offset into the tag.
            let at = usize::try_from(self.received - self.plaintext_len()).unwrap_or(TAG_LEN);
            if let Some(slot) = self.tag.get_mut(at..at + tag_part.len()) {
                slot.copy_from_slice(tag_part);
            }
            self.received += tag_part.len() as u64;
        }
        Ok(text)
    }

    /// Resumes an interrupted download: takes the plaintext of the next blob bytes as
    /// kept from an earlier attempt (any number of calls, each continuing where the
    /// last ended), so that the download can continue at [`position`](Self::position).
    /// Produces no output.
    ///
    /// Since counter mode is its own inverse, re-encrypting the plaintext gives back
    /// the ciphertext, which the checks in `finish` then cover as if it had been
    /// downloaded again; a damaged kept prefix fails them like a damaged download.
    pub fn resume_from_plaintext(&mut self, plaintext: &[u8]) -> Result<(), FileCryptoError> {
        let past_end = FileCryptoError::ResumePastEnd {
            plaintext_len: self.plaintext_len(),
        };
        let end = u64::try_from(plaintext.len())
            .ok()
            .and_then(|len| self.received.checked_add(len));
        if self.overran || end.is_none_or(|end| end > self.plaintext_len()) {
            return Err(past_end);
        }
        let mut scratch = vec![0u8; plaintext.len().min(RESUME_CHUNK)];
        for piece in plaintext.chunks(RESUME_CHUNK) {
            if let Some((_, hasher)) = &mut self.commitment {
                hasher.update(piece);
            }
            let ciphertext = &mut scratch[..piece.len()];
            ciphertext.copy_from_slice(piece);
            self.gcm
                .encrypt(ciphertext)
                .map_err(|_| FileCryptoError::InvalidSize(self.blob_len))?;
            self.blob_hash.update(&*ciphertext);
            self.received += piece.len() as u64;
        }
        Ok(())
    }

    /// How many bytes of the blob the opener has taken so far: where a resumed
    /// download continues.
    pub fn position(&self) -> u64 {
        self.received
    }

    /// Checks the whole blob, in this order: it is complete (and no longer), it matches
    /// `expected` (`contentHash`), its GCM tag is valid, and, for a committing `aad`,
    /// the plaintext has the committed hash.
    pub fn finish(self, expected: &ContentHash) -> Result<Opened, FileCryptoError> {
        let Self {
            gcm,
            blob_hash,
            commitment,
            blob_len,
            received,
            tag,
            overran,
        } = self;
        if overran {
            return Err(FileCryptoError::TooLong { expected: blob_len });
        }
        if received < blob_len {
            return Err(FileCryptoError::Truncated {
                received,
                expected: blob_len,
            });
        }
        let blob_hash: [u8; 32] = blob_hash.finalize().into();
        if !bool::from(blob_hash.ct_eq(&expected.0)) {
            return Err(FileCryptoError::HashMismatch);
        }
        if !bool::from(gcm.finish().ct_eq(&tag)) {
            return Err(FileCryptoError::WrongKeyOrTampered);
        }
        let committed = match commitment {
            None => false,
            Some((committed, hasher)) => {
                let actual: [u8; 32] = hasher.finalize().into();
                if !bool::from(actual.ct_eq(&committed)) {
                    return Err(FileCryptoError::CommitmentMismatch);
                }
                true
            }
        };
        Ok(Opened { committed })
    }

    fn plaintext_len(&self) -> u64 {
        self.blob_len - TAG_LEN as u64
    }
}

/// Why a file could not be encrypted or opened. The messages are for users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileCryptoError {
    // The download (the storage server, the network, or the sender) is at fault.
    /// Fewer bytes arrived than the blob's length.
    #[error("the download ended early ({received} of {expected} bytes)")]
    Truncated { received: u64, expected: u64 },
    /// More bytes arrived than the blob's length.
    #[error(
        "the download is longer than the {expected} bytes the message announced (tampered with or swapped)"
    )]
    TooLong { expected: u64 },
    /// The blob is not the one the message names.
    #[error("the file does not match the hash in the message (tampered with or swapped)")]
    HashMismatch,
    /// The GCM tag is invalid.
    #[error("the file could not be decrypted: wrong key or modified ciphertext")]
    WrongKeyOrTampered,
    /// The plaintext is not the one the sender committed to in the `aad`.
    #[error(
        "the file does not match what its sender committed to: it may show different content to different recipients"
    )]
    CommitmentMismatch,

    // The sender's `ExternalPart` is unusable.
    /// `encAlg` is not one we support.
    #[error(
        "the file is encrypted with an unsupported algorithm ({0}); supported are 1 (AES-128-GCM) and 2 (AES-256-GCM)"
    )]
    UnsupportedAlgorithm(u16),
    /// `key` has the wrong length for `encAlg`.
    #[error("the file's key has {got} bytes, but {alg} needs {expected}")]
    KeyLength {
        alg: FileAead,
        expected: usize,
        got: usize,
    },
    /// `nonce` is not 12 bytes.
    #[error("the file's nonce has {0} bytes, but AES-GCM here needs 12")]
    NonceLength(usize),
    /// `hashAlg` is not SHA-256.
    #[error("the file's hash uses an unsupported algorithm ({0}); supported is 1 (sha-256)")]
    UnsupportedHash(u8),
    /// `contentHash` is not 32 bytes.
    #[error("the file's hash has {0} bytes, but sha-256 has 32")]
    HashLength(usize),
    /// `size` is too small to hold a tag or too large for GCM.
    #[error("the message gives an impossible size for an encrypted file ({0} bytes)")]
    InvalidSize(u64),

    // The caller asked for something impossible.
    /// The file is longer than [`MAX_PLAINTEXT_LEN`].
    #[error("the file is too large to encrypt (AES-GCM allows at most 64 GiB)")]
    TooLarge,
    /// [`BlobOpener::resume_from_plaintext`] was given more plaintext than the blob
    /// holds (or called after bytes beyond the blob arrived).
    #[error("cannot resume past the end of the file ({plaintext_len} bytes of plaintext)")]
    ResumePastEnd { plaintext_len: u64 },
}
