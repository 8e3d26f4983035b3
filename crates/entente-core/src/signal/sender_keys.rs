//! Sender keys: libsignal's group messaging (Signal and WhatsApp groups), byte for byte.
//!
//! Each member of a group owns one sending chain per distribution id. It hands the
//! chain's current key and the public half of a signing key to every other member in
//! a `SenderKeyDistributionMessage`, over the pairwise channel, and then encrypts each
//! group message once; every member decrypts with its copy of the chain.
//!
//! Wire formats (libsignal `wire.proto`, proto2, so an `optional` field set to zero is
//! still written), each after the version byte `0x33` (message version 3 in the high
//! nibble, current version 3 in the low one):
//!
//! ```text
//! message SenderKeyMessage {
//!   optional bytes  distribution_uuid = 1;   // 16 bytes
//!   optional uint32 chain_id          = 2;
//!   optional uint32 iteration         = 3;
//!   optional bytes  ciphertext        = 4;   // AES-256-CBC, PKCS#7
//! }
//! SenderKeyMessage bytes = 0x33 || protobuf || XEdDSA signature (64 bytes) by the
//!                          signing key over 0x33 || protobuf
//!
//! message SenderKeyDistributionMessage {
//!   optional bytes  distribution_uuid = 1;   // 16 bytes
//!   optional uint32 chain_id          = 2;   // random, 31 bits
//!   optional uint32 iteration         = 3;   // of chain_key
//!   optional bytes  chain_key         = 4;   // 32 bytes
//!   optional bytes  signing_key       = 5;   // 0x05 || u, 33 bytes
//! }
//! ```
//!
//! The chain (libsignal `sender_keys.rs`):
//!
//! ```text
//! message key seed = HMAC-SHA256(chain key, 0x01)
//! next chain key   = HMAC-SHA256(chain key, 0x02)
//! IV (16) || AES-256 key (32) = HKDF-SHA256(salt = none, ikm = seed, info = "WhisperGroup", 48)
//! ```
//!
//! Limits are libsignal's: a message at most [`MAX_FORWARD_JUMPS`] iterations ahead of
//! the chain, at most [`MAX_MESSAGE_KEYS`] keys of skipped messages kept per chain
//! (the oldest go first), at most [`MAX_SENDER_KEY_STATES`] chains per record. A
//! message's signature is checked before anything in the record is touched, and a
//! message that fails in any way leaves the record as it was.
//!
//! Security, as for libsignal: the chain only moves forward, so a member who receives
//! the distribution message at iteration `n` cannot read messages before `n`, and a
//! message key is erased once used. There is no post-compromise security: whoever
//! learns a chain key reads everything after it until the sender makes a new chain
//! ([`SenderKeyRecord::create`]) and distributes it.
//!
//! ```
//! use entente_core::signal::sender_keys::SenderKeyRecord;
//! use rand::rngs::OsRng;
//!
//! let distribution_id = [7u8; 16];
//! let (mut alice, distribution) = SenderKeyRecord::create(distribution_id, &mut OsRng);
//! // `distribution` goes to every member over the pairwise channel.
//! let mut bob = SenderKeyRecord::from_distribution_message(&distribution)?;
//! let message = alice.encrypt(b"hello group", &mut OsRng)?;
//! assert_eq!(bob.decrypt(&message)?, b"hello group");
//! # Ok::<(), entente_core::signal::sender_keys::SenderKeyError>(())
//! ```

use std::collections::VecDeque;
use std::fmt;

use prost::Message as _;
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::keys::{KeyDecodeError, PrivateKey};
use super::xeddsa::SIGNATURE_LEN;

mod state;
mod wire;

use state::{ChainKey, MessageKeys, RecordProto, SenderKeyState};
use wire::{Distribution, MessageProto, ParsedMessage};

/// The sender key message version libsignal writes and reads.
pub const SENDER_KEY_VERSION: u8 = 3;
/// The first byte of both messages: version 3 in each nibble.
const VERSION_BYTE: u8 = (SENDER_KEY_VERSION << 4) | SENDER_KEY_VERSION;
/// How far ahead of the chain a message may be (libsignal `MAX_FORWARD_JUMPS`).
pub const MAX_FORWARD_JUMPS: u32 = 25_000;
/// How many skipped message keys a chain keeps (libsignal `MAX_MESSAGE_KEYS`).
pub const MAX_MESSAGE_KEYS: usize = 2_000;
/// How many chains a record keeps (libsignal `MAX_SENDER_KEY_STATES`).
pub const MAX_SENDER_KEY_STATES: usize = 5;
/// Length of a distribution id (a UUID).
pub const DISTRIBUTION_ID_LEN: usize = 16;

const MESSAGE_KEY_SEED: u8 = 0x01;
const CHAIN_KEY_SEED: u8 = 0x02;
const MESSAGE_KEY_INFO: &[u8] = b"WhisperGroup";
/// libsignal's shortest acceptable distribution message: a version byte, and room
/// for at least a chain key and an X25519 key.
const MIN_DISTRIBUTION_LEN: usize = 1 + 32 + 32;
/// Version byte of our storage format ([`SenderKeyRecord::to_bytes`]).
const RECORD_VERSION: u8 = 1;

/// Why a sender key operation failed. Unless a variant says otherwise, the peer (the
/// sender of the message) sent something invalid, and the record is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SenderKeyError {
    /// The input is shorter than its fixed parts.
    #[error("{what} is {len} bytes, shorter than the minimum of {min}")]
    TooShort {
        /// Which message.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// A version other than 3 in the high nibble of the first byte.
    #[error("{what} has version byte 0x{byte:02x}; only sender key version 3 (0x33) is understood")]
    UnsupportedVersion {
        /// Which message.
        what: &'static str,
        /// The version byte received.
        byte: u8,
    },
    /// The protobuf part does not decode.
    #[error("{what} is not valid protobuf: {reason}")]
    Protobuf {
        /// Which message.
        what: &'static str,
        /// prost's explanation.
        reason: String,
    },
    /// A field libsignal requires is absent.
    #[error("{what} lacks its {field} field")]
    MissingField {
        /// Which message.
        what: &'static str,
        /// Which field.
        field: &'static str,
    },
    /// A fixed-length field has another length.
    #[error("{what}'s {field} is {len} bytes, expected {expected}")]
    FieldLength {
        /// Which message.
        what: &'static str,
        /// Which field.
        field: &'static str,
        /// The length received.
        len: usize,
        /// The length required.
        expected: usize,
    },
    /// The signing key of a distribution message is not a public key.
    #[error("the distribution message's signing key is invalid: {0}")]
    BadSigningKey(#[source] KeyDecodeError),
    /// The message belongs to another distribution (another group or sender key).
    #[error("the message is for distribution {got}, this record is for {expected}")]
    WrongDistribution {
        /// This record's distribution id.
        expected: String,
        /// The message's.
        got: String,
    },
    /// No distribution message for the message's chain has been processed (or its
    /// state was evicted by newer chains).
    #[error(
        "no sender key state for chain {chain_id} (this record knows chains {known:?}); \
         the sender's distribution message for it has not been processed"
    )]
    UnknownChain {
        /// The message's chain id.
        chain_id: u32,
        /// The chain ids this record holds.
        known: Vec<u32>,
    },
    /// The signature does not verify under the chain's signing key: the message was
    /// altered or forged.
    #[error(
        "the signature of the message for chain {chain_id}, iteration {iteration} does not \
         verify under the sender's signing key"
    )]
    BadSignature {
        /// The chain id the message claims.
        chain_id: u32,
        /// The iteration it claims.
        iteration: u32,
    },
    /// The iteration is behind the chain and its key is not kept: it was decrypted
    /// already, it is older than the kept skipped keys, or it precedes the
    /// distribution message this member received.
    #[error(
        "iteration {iteration} of chain {chain_id} was already decrypted or its key is no \
         longer kept (the chain is at iteration {current})"
    )]
    Duplicate {
        /// The chain.
        chain_id: u32,
        /// The message's iteration.
        iteration: u32,
        /// The chain's next iteration.
        current: u32,
    },
    /// The iteration is more than [`MAX_FORWARD_JUMPS`] ahead of the chain.
    #[error(
        "iteration {iteration} of chain {chain_id} is too far ahead of the chain's iteration \
         {current} (at most {MAX_FORWARD_JUMPS} ahead)"
    )]
    TooFarAhead {
        /// The chain.
        chain_id: u32,
        /// The message's iteration.
        iteration: u32,
        /// The chain's next iteration.
        current: u32,
    },
    /// The signed ciphertext does not decrypt: its length or padding is wrong. The
    /// sender signed it, so the sender is at fault.
    #[error("the ciphertext of iteration {iteration} of chain {chain_id} does not decrypt")]
    BadCiphertext {
        /// The chain.
        chain_id: u32,
        /// The message's iteration.
        iteration: u32,
    },
    /// The chain has reached iteration `u32::MAX`; the sender must make a new one.
    #[error("chain {chain_id} has no iterations left; the sender must create a new sender key")]
    ChainExhausted {
        /// The chain.
        chain_id: u32,
    },
    /// The caller asked another member's record for something only the owner of a
    /// sender key can do.
    #[error("this record holds another member's sender key; only its owner can {action}")]
    NotOwnRecord {
        /// What was asked.
        action: &'static str,
    },
    /// The caller gave our own record a distribution message; other members' chains
    /// belong in records of their own.
    #[error("this record holds our own sender key; another member's chain needs its own record")]
    OwnRecord,
    /// A stored record does not decode or is inconsistent: storage is corrupt.
    #[error("stored sender key record is invalid: {0}")]
    CorruptRecord(String),
    /// A bug in Entente, not anyone's input.
    #[error("bug in entente: {0}")]
    Bug(&'static str),
}

/// The unauthenticated header of a `SenderKeyMessage` (see [`peek_message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderKeyMessageInfo {
    /// Which sender key (with the sender's address, which record) the message needs.
    pub distribution_id: [u8; DISTRIBUTION_ID_LEN],
    /// The sender's chain.
    pub chain_id: u32,
    /// The message's position in the chain.
    pub iteration: u32,
}

/// Reads a `SenderKeyMessage`'s header without checking its signature, so that the
/// caller can find the record to decrypt it with.
pub fn peek_message(bytes: &[u8]) -> Result<SenderKeyMessageInfo, SenderKeyError> {
    let message = ParsedMessage::parse(bytes)?;
    Ok(SenderKeyMessageInfo {
        distribution_id: message.distribution_id,
        chain_id: message.chain_id,
        iteration: message.iteration,
    })
}

/// One member's sender key for one distribution id: either our own chain (with the
/// private signing key) or another member's (verification key only), with up to
/// [`MAX_SENDER_KEY_STATES`] chains, newest first.
#[derive(Clone)]
pub struct SenderKeyRecord {
    distribution_id: [u8; DISTRIBUTION_ID_LEN],
    /// Never empty; the front is the newest chain, the one we encrypt with.
    states: VecDeque<SenderKeyState>,
}

impl SenderKeyRecord {
    /// A new chain of our own for `distribution_id`, at iteration 0, and its
    /// distribution message for the other members.
    pub fn create<R: RngCore + CryptoRng>(
        distribution_id: [u8; DISTRIBUTION_ID_LEN],
        rng: &mut R,
    ) -> (SenderKeyRecord, Vec<u8>) {
        // libsignal draws 31-bit chain ids, for libsignal-protocol-java's sake.
        let chain_id = rng.next_u32() >> 1;
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        let signing = PrivateKey::generate(rng);
        let state = SenderKeyState {
            chain_id,
            chain: ChainKey { iteration: 0, key },
            signing_public: signing.public_key(),
            signing_private: Some(signing),
            skipped: VecDeque::new(),
        };
        let message = state.distribution_message(&distribution_id);
        let record = Self {
            distribution_id,
            states: VecDeque::from([state]),
        };
        (record, message)
    }

    /// The distribution message of our current chain at its current iteration, for a
    /// member who joins later: it cannot read earlier messages.
    pub fn distribution_message(&self) -> Result<Vec<u8>, SenderKeyError> {
        let state = self.own_state("make a distribution message")?;
        Ok(state.distribution_message(&self.distribution_id))
    }

    /// Another member's sender key, from the distribution message they sent us.
    pub fn from_distribution_message(bytes: &[u8]) -> Result<SenderKeyRecord, SenderKeyError> {
        let distribution = Distribution::parse(bytes)?;
        Ok(Self {
            distribution_id: distribution.distribution_id,
            states: VecDeque::from([distribution.into_state()]),
        })
    }

    /// Adds the chain of a further distribution message from the same member (one
    /// who made a new sender key for this distribution id), as libsignal does: the
    /// newest chain goes first, the oldest beyond [`MAX_SENDER_KEY_STATES`] is
    /// dropped, and a chain already held (same id and signing key) keeps its
    /// position rather than being reset, so old messages cannot be replayed.
    pub fn process_distribution_message(&mut self, bytes: &[u8]) -> Result<(), SenderKeyError> {
        if self.is_own() {
            return Err(SenderKeyError::OwnRecord);
        }
        let distribution = Distribution::parse(bytes)?;
        if distribution.distribution_id != self.distribution_id {
            return Err(SenderKeyError::WrongDistribution {
                expected: uuid_string(&self.distribution_id),
                got: uuid_string(&distribution.distribution_id),
            });
        }
        let existing = self
            .states
            .iter()
            .position(|s| {
                s.chain_id == distribution.chain_id && s.signing_public == distribution.signing_key
            })
            .and_then(|index| self.states.remove(index));
        // A chain id reused with another signing key replaces the old chain.
        self.states.retain(|s| s.chain_id != distribution.chain_id);
        let state = existing.unwrap_or_else(|| distribution.into_state());
        while self.states.len() >= MAX_SENDER_KEY_STATES {
            self.states.pop_back();
        }
        self.states.push_front(state);
        Ok(())
    }

    /// Encrypts `plaintext` as a `SenderKeyMessage` on our current chain and moves the
    /// chain forward. Only for our own record.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &mut self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, SenderKeyError> {
        let distribution_id = self.distribution_id;
        let state = self
            .states
            .front_mut()
            .ok_or(SenderKeyError::Bug("a sender key record without a chain"))?;
        let Some(signing) = &state.signing_private else {
            return Err(SenderKeyError::NotOwnRecord { action: "encrypt" });
        };
        let next = state.chain.next()?.ok_or(SenderKeyError::ChainExhausted {
            chain_id: state.chain_id,
        })?;
        let keys = MessageKeys::derive(&*state.chain.message_seed()?)?;
        let body = MessageProto {
            distribution_uuid: Some(distribution_id.to_vec()),
            chain_id: Some(state.chain_id),
            iteration: Some(state.chain.iteration),
            ciphertext: Some(keys.encrypt(plaintext)?),
        }
        .encode_to_vec();
        let mut message = Vec::with_capacity(1 + body.len() + SIGNATURE_LEN);
        message.push(VERSION_BYTE);
        message.extend_from_slice(&body);
        let signature = signing.sign(&message, rng);
        message.extend_from_slice(&signature);
        state.chain = next;
        Ok(message)
    }

    /// Checks and decrypts a `SenderKeyMessage`. On any error the record is unchanged.
    pub fn decrypt(&mut self, bytes: &[u8]) -> Result<Vec<u8>, SenderKeyError> {
        let message = ParsedMessage::parse(bytes)?;
        if message.distribution_id != self.distribution_id {
            return Err(SenderKeyError::WrongDistribution {
                expected: uuid_string(&self.distribution_id),
                got: uuid_string(&message.distribution_id),
            });
        }
        let index = self
            .states
            .iter()
            .position(|s| s.chain_id == message.chain_id)
            .ok_or_else(|| SenderKeyError::UnknownChain {
                chain_id: message.chain_id,
                known: self.chain_ids(),
            })?;
        let state = self
            .states
            .get(index)
            .ok_or(SenderKeyError::Bug("chain index out of range"))?;
        if !state
            .signing_public
            .verify(message.signed, &message.signature)
        {
            return Err(SenderKeyError::BadSignature {
                chain_id: message.chain_id,
                iteration: message.iteration,
            });
        }
        let step = state.plan(message.iteration)?;
        let plaintext = MessageKeys::derive(step.seed())?
            .decrypt(&message.ciphertext)
            .ok_or(SenderKeyError::BadCiphertext {
                chain_id: message.chain_id,
                iteration: message.iteration,
            })?;
        self.states
            .get_mut(index)
            .ok_or(SenderKeyError::Bug("chain index out of range"))?
            .apply(step);
        Ok(plaintext)
    }

    /// The distribution id (a UUID) this record is for.
    pub fn distribution_id(&self) -> [u8; DISTRIBUTION_ID_LEN] {
        self.distribution_id
    }

    /// Whether this is our own sender key (we can encrypt with it).
    pub fn is_own(&self) -> bool {
        self.states
            .front()
            .is_some_and(|s| s.signing_private.is_some())
    }

    /// The chain ids held, newest first.
    pub fn chain_ids(&self) -> Vec<u32> {
        self.states.iter().map(|s| s.chain_id).collect()
    }

    /// The record for storage: a version byte, then libsignal's
    /// `SenderKeyRecordStructure` (`storage.proto`) with the distribution id added as
    /// field 15. Secret: chain keys, kept message keys and our signing key.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let record = Zeroizing::new(RecordProto {
            sender_key_states: self.states.iter().map(SenderKeyState::to_proto).collect(),
            distribution_uuid: self.distribution_id.to_vec(),
        });
        let body = Zeroizing::new(record.encode_to_vec());
        let mut bytes = Zeroizing::new(Vec::with_capacity(1 + body.len()));
        bytes.push(RECORD_VERSION);
        bytes.extend_from_slice(&body);
        bytes
    }

    /// Restores a record stored with [`to_bytes`](Self::to_bytes), checking that it is
    /// consistent.
    pub fn from_bytes(bytes: &[u8]) -> Result<SenderKeyRecord, SenderKeyError> {
        let corrupt = |reason: &str| SenderKeyError::CorruptRecord(reason.to_owned());
        let (&version, body) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
        if version != RECORD_VERSION {
            return Err(SenderKeyError::CorruptRecord(format!(
                "storage version {version}, this version reads only {RECORD_VERSION}"
            )));
        }
        let record = Zeroizing::new(
            RecordProto::decode(body)
                .map_err(|e| SenderKeyError::CorruptRecord(format!("protobuf: {e}")))?,
        );
        let distribution_id: [u8; DISTRIBUTION_ID_LEN] = record
            .distribution_uuid
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("distribution id is not 16 bytes"))?;
        if record.sender_key_states.is_empty() {
            return Err(corrupt("no chains"));
        }
        if record.sender_key_states.len() > MAX_SENDER_KEY_STATES {
            return Err(corrupt("more chains than allowed"));
        }
        let states = record
            .sender_key_states
            .iter()
            .map(SenderKeyState::from_proto)
            .collect::<Result<VecDeque<_>, _>>()?;
        let own = states
            .iter()
            .filter(|s| s.signing_private.is_some())
            .count();
        if own != 0 && own != states.len() {
            return Err(corrupt("mixes our own chains with another member's"));
        }
        for (i, state) in states.iter().enumerate() {
            if states
                .iter()
                .skip(i + 1)
                .any(|s| s.chain_id == state.chain_id)
            {
                return Err(corrupt("two chains with the same id"));
            }
        }
        Ok(Self {
            distribution_id,
            states,
        })
    }

    /// Our own chain, the newest.
    fn own_state(&self, action: &'static str) -> Result<&SenderKeyState, SenderKeyError> {
        let state = self
            .states
            .front()
            .ok_or(SenderKeyError::Bug("a sender key record without a chain"))?;
        if state.signing_private.is_none() {
            return Err(SenderKeyError::NotOwnRecord { action });
        }
        Ok(state)
    }
}

impl fmt::Debug for SenderKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            distribution_id,
            states,
        } = self;
        f.debug_struct("SenderKeyRecord")
            .field("distribution_id", &uuid_string(distribution_id))
            .field("own", &self.is_own())
            .field("states", states)
            .finish()
    }
}

/// The usual UUID text form, for messages.
fn uuid_string(id: &[u8; DISTRIBUTION_ID_LEN]) -> String {
    let hex = hex::encode(id);
    let part = |range: std::ops::Range<usize>| hex.get(range).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0..8),
        part(8..12),
        part(12..16),
        part(16..20),
        part(20..32)
    )
}

#[cfg(test)]
mod tests;
