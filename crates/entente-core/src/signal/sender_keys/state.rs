//! One sender key chain (libsignal's `SenderKeyState`): the chain key, the signing
//! key, the kept keys of skipped messages, and their storage form.

use std::collections::VecDeque;
use std::fmt;

use aes::Aes256;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use prost::Message as _;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::wire::DistributionProto;
use super::{
    CHAIN_KEY_SEED, DISTRIBUTION_ID_LEN, MAX_FORWARD_JUMPS, MAX_MESSAGE_KEYS, MESSAGE_KEY_INFO,
    MESSAGE_KEY_SEED, SENDER_KEY_VERSION, SenderKeyError, VERSION_BYTE,
};
use crate::signal::keys::{PrivateKey, PublicKey};

/// One chain: libsignal's `SenderKeyState`.
#[derive(Clone)]
pub(super) struct SenderKeyState {
    pub(super) chain_id: u32,
    pub(super) chain: ChainKey,
    pub(super) signing_public: PublicKey,
    /// Present in our own chains only.
    pub(super) signing_private: Option<PrivateKey>,
    /// Keys of messages skipped over, oldest first.
    pub(super) skipped: VecDeque<SkippedKey>,
}

impl fmt::Debug for SenderKeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            chain_id,
            chain,
            signing_public,
            signing_private: _,
            skipped,
        } = self;
        f.debug_struct("SenderKeyState")
            .field("chain_id", chain_id)
            .field("iteration", &chain.iteration)
            .field("signing_public", signing_public)
            .field("skipped_keys", &skipped.len())
            .finish_non_exhaustive()
    }
}

/// How to decrypt one message, worked out without touching the state, so that the
/// state changes only once the message has decrypted.
pub(super) enum Step {
    /// A kept key of a skipped message, at this position in `skipped`.
    Skipped {
        position: usize,
        seed: Zeroizing<[u8; 32]>,
    },
    /// A message at or ahead of the chain.
    Forward {
        seed: Zeroizing<[u8; 32]>,
        /// Keys of the messages between the chain and this one, the ones worth keeping.
        new_skipped: Vec<SkippedKey>,
        next: ChainKey,
    },
}

impl Step {
    pub(super) fn seed(&self) -> &[u8; 32] {
        match self {
            Step::Skipped { seed, .. } | Step::Forward { seed, .. } => seed,
        }
    }
}

impl SenderKeyState {
    pub(super) fn distribution_message(
        &self,
        distribution_id: &[u8; DISTRIBUTION_ID_LEN],
    ) -> Vec<u8> {
        let proto = Zeroizing::new(DistributionProto {
            distribution_uuid: Some(distribution_id.to_vec()),
            chain_id: Some(self.chain_id),
            iteration: Some(self.chain.iteration),
            chain_key: Some(self.chain.key.to_vec()),
            signing_key: Some(self.signing_public.encode().to_vec()),
        });
        let body = Zeroizing::new(proto.encode_to_vec());
        let mut message = Vec::with_capacity(1 + body.len());
        message.push(VERSION_BYTE);
        message.extend_from_slice(&body);
        message
    }

    /// libsignal's `get_sender_key`, without changing anything.
    pub(super) fn plan(&self, iteration: u32) -> Result<Step, SenderKeyError> {
        let current = self.chain.iteration;
        if iteration < current {
            let position = self
                .skipped
                .iter()
                .position(|k| k.iteration == iteration)
                .ok_or(SenderKeyError::Duplicate {
                    chain_id: self.chain_id,
                    iteration,
                    current,
                })?;
            let seed = self
                .skipped
                .get(position)
                .ok_or(SenderKeyError::Bug("skipped key index out of range"))?
                .seed
                .clone();
            return Ok(Step::Skipped { position, seed });
        }
        if iteration - current > MAX_FORWARD_JUMPS {
            return Err(SenderKeyError::TooFarAhead {
                chain_id: self.chain_id,
                iteration,
                current,
            });
        }
        // Only the newest MAX_MESSAGE_KEYS skipped keys survive; derive no others.
        let keep_from = iteration.saturating_sub(MAX_MESSAGE_KEYS as u32);
        let mut chain = self.chain.clone();
        let mut new_skipped = Vec::new();
        while chain.iteration < iteration {
            if chain.iteration >= keep_from {
                new_skipped.push(SkippedKey {
                    iteration: chain.iteration,
                    seed: chain.message_seed()?,
                });
            }
            chain = chain
                .next()?
                .ok_or(SenderKeyError::Bug("chain overflow below a u32 iteration"))?;
        }
        let seed = chain.message_seed()?;
        let next = chain.next()?.ok_or(SenderKeyError::ChainExhausted {
            chain_id: self.chain_id,
        })?;
        Ok(Step::Forward {
            seed,
            new_skipped,
            next,
        })
    }

    pub(super) fn apply(&mut self, step: Step) {
        match step {
            Step::Skipped { position, .. } => {
                self.skipped.remove(position);
            }
            Step::Forward {
                new_skipped, next, ..
            } => {
                self.skipped.extend(new_skipped);
                while self.skipped.len() > MAX_MESSAGE_KEYS {
                    self.skipped.pop_front();
                }
                self.chain = next;
            }
        }
    }

    pub(super) fn to_proto(&self) -> StateProto {
        StateProto {
            message_version: u32::from(SENDER_KEY_VERSION),
            chain_id: self.chain_id,
            sender_chain_key: Some(ChainKeyProto {
                iteration: self.chain.iteration,
                seed: self.chain.key.to_vec(),
            }),
            sender_signing_key: Some(SigningKeyProto {
                public: self.signing_public.encode().to_vec(),
                private: self
                    .signing_private
                    .as_ref()
                    .map(|k| k.to_bytes().to_vec())
                    .unwrap_or_default(),
            }),
            sender_message_keys: self
                .skipped
                .iter()
                .map(|k| MessageKeyProto {
                    iteration: k.iteration,
                    seed: k.seed.to_vec(),
                })
                .collect(),
        }
    }

    pub(super) fn from_proto(proto: &StateProto) -> Result<Self, SenderKeyError> {
        let corrupt = |reason: &str| SenderKeyError::CorruptRecord(reason.to_owned());
        // libsignal stores 0 for the first sender key version, 3.
        if proto.message_version != 0 && proto.message_version != u32::from(SENDER_KEY_VERSION) {
            return Err(SenderKeyError::CorruptRecord(format!(
                "chain {} has message version {}",
                proto.chain_id, proto.message_version
            )));
        }
        let chain = proto
            .sender_chain_key
            .as_ref()
            .ok_or_else(|| corrupt("a chain without a chain key"))?;
        let chain = ChainKey {
            iteration: chain.iteration,
            key: key32(&chain.seed).ok_or_else(|| corrupt("a chain key is not 32 bytes"))?,
        };
        let signing = proto
            .sender_signing_key
            .as_ref()
            .ok_or_else(|| corrupt("a chain without a signing key"))?;
        let signing_public = PublicKey::decode(&signing.public)
            .map_err(|e| SenderKeyError::CorruptRecord(format!("signing key: {e}")))?;
        let signing_private = if signing.private.is_empty() {
            None
        } else {
            let bytes =
                key32(&signing.private).ok_or_else(|| corrupt("signing key is not 32 bytes"))?;
            let private = PrivateKey::from_bytes(*bytes);
            if private.public_key() != signing_public {
                return Err(corrupt("private signing key does not match the public one"));
            }
            Some(private)
        };
        if proto.sender_message_keys.len() > MAX_MESSAGE_KEYS {
            return Err(corrupt("more skipped message keys than allowed"));
        }
        let skipped = proto
            .sender_message_keys
            .iter()
            .map(|k| {
                if k.iteration >= chain.iteration {
                    return Err(corrupt("a skipped message key ahead of its chain"));
                }
                Ok(SkippedKey {
                    iteration: k.iteration,
                    seed: key32(&k.seed)
                        .ok_or_else(|| corrupt("a skipped message key is not 32 bytes"))?,
                })
            })
            .collect::<Result<VecDeque<_>, _>>()?;
        Ok(Self {
            chain_id: proto.chain_id,
            chain,
            signing_public,
            signing_private,
            skipped,
        })
    }
}

/// A chain key and its iteration (libsignal `SenderChainKey`).
#[derive(Clone)]
pub(super) struct ChainKey {
    pub(super) iteration: u32,
    pub(super) key: Zeroizing<[u8; 32]>,
}

impl ChainKey {
    /// `HMAC-SHA256(chain key, 0x01)`: the seed of this iteration's message keys.
    pub(super) fn message_seed(&self) -> Result<Zeroizing<[u8; 32]>, SenderKeyError> {
        hmac_byte(&self.key, MESSAGE_KEY_SEED)
    }

    /// `HMAC-SHA256(chain key, 0x02)` at the next iteration; `None` after `u32::MAX`.
    pub(super) fn next(&self) -> Result<Option<ChainKey>, SenderKeyError> {
        let Some(iteration) = self.iteration.checked_add(1) else {
            return Ok(None);
        };
        Ok(Some(ChainKey {
            iteration,
            key: hmac_byte(&self.key, CHAIN_KEY_SEED)?,
        }))
    }
}

/// The key of a skipped message, kept as its seed (libsignal `SenderMessageKey`).
#[derive(Clone)]
pub(super) struct SkippedKey {
    pub(super) iteration: u32,
    pub(super) seed: Zeroizing<[u8; 32]>,
}

/// `IV (16) || AES-256 key (32)`, from HKDF of a message key seed.
pub(super) struct MessageKeys(Zeroizing<[u8; 48]>);

impl MessageKeys {
    pub(super) fn derive(seed: &[u8; 32]) -> Result<Self, SenderKeyError> {
        let mut okm = Zeroizing::new([0u8; 48]);
        Hkdf::<Sha256>::new(None, seed)
            .expand(MESSAGE_KEY_INFO, okm.as_mut())
            .map_err(|_| SenderKeyError::Bug("HKDF refused 48 bytes"))?;
        Ok(Self(okm))
    }

    fn cipher(&self) -> Result<(&[u8], &[u8]), SenderKeyError> {
        self.0
            .split_at_checked(16)
            .map(|(iv, key)| (key, iv))
            .ok_or(SenderKeyError::Bug("message keys shorter than an IV"))
    }

    pub(super) fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, SenderKeyError> {
        let (key, iv) = self.cipher()?;
        let encryptor = cbc::Encryptor::<Aes256>::new_from_slices(key, iv)
            .map_err(|_| SenderKeyError::Bug("AES-256-CBC key or IV length"))?;
        Ok(encryptor.encrypt_padded_vec_mut::<Pkcs7>(plaintext))
    }

    /// `None` if the ciphertext is empty, not whole blocks, or badly padded.
    pub(super) fn decrypt(&self, ciphertext: &[u8]) -> Option<Vec<u8>> {
        if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
            return None;
        }
        let (key, iv) = self.cipher().ok()?;
        cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .ok()
    }
}

pub(super) fn key32(bytes: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != key.len() {
        return None;
    }
    key.copy_from_slice(bytes);
    Some(key)
}

fn hmac_byte(key: &[u8; 32], byte: u8) -> Result<Zeroizing<[u8; 32]>, SenderKeyError> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| SenderKeyError::Bug("HMAC refused a 32-byte key"))?;
    mac.update(&[byte]);
    let mut out = Zeroizing::new([0u8; 32]);
    let mut tag = mac.finalize().into_bytes();
    out.copy_from_slice(&tag);
    tag.as_mut_slice().zeroize();
    Ok(out)
}

/// libsignal `storage.proto` `SenderKeyRecordStructure`, plus the distribution id
/// (libsignal keeps it in the key of its store).
#[derive(Clone, PartialEq, prost::Message, Zeroize)]
pub(super) struct RecordProto {
    #[prost(message, repeated, tag = "1")]
    pub(super) sender_key_states: Vec<StateProto>,
    #[prost(bytes = "vec", tag = "15")]
    pub(super) distribution_uuid: Vec<u8>,
}

/// libsignal `storage.proto` `SenderKeyStateStructure`.
#[derive(Clone, PartialEq, prost::Message, Zeroize)]
pub(super) struct StateProto {
    #[prost(uint32, tag = "5")]
    pub(super) message_version: u32,
    #[prost(uint32, tag = "1")]
    pub(super) chain_id: u32,
    #[prost(message, optional, tag = "2")]
    pub(super) sender_chain_key: Option<ChainKeyProto>,
    #[prost(message, optional, tag = "3")]
    pub(super) sender_signing_key: Option<SigningKeyProto>,
    #[prost(message, repeated, tag = "4")]
    pub(super) sender_message_keys: Vec<MessageKeyProto>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize)]
pub(super) struct ChainKeyProto {
    #[prost(uint32, tag = "1")]
    pub(super) iteration: u32,
    #[prost(bytes = "vec", tag = "2")]
    pub(super) seed: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize)]
pub(super) struct MessageKeyProto {
    #[prost(uint32, tag = "1")]
    pub(super) iteration: u32,
    #[prost(bytes = "vec", tag = "2")]
    pub(super) seed: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize)]
pub(super) struct SigningKeyProto {
    #[prost(bytes = "vec", tag = "1")]
    pub(super) public: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(super) private: Vec<u8>,
}
