//! The Double Ratchet ("The Double Ratchet Algorithm", Perrin and Marlinspike,
//! revision 1, 2016) with libsignal's key schedule and limits:
//!
//! ```text
//! root step    RK', CK = HKDF-SHA-256(salt = RK, ikm = DH(our ratchet, their ratchet),
//!                                     info = "WhisperRatchet", length = 64)
//! chain step   seed = HMAC-SHA-256(CK, 0x01)    CK' = HMAC-SHA-256(CK, 0x02)
//! message keys cipher key (32) || MAC key (32) || IV (16)
//!                 = HKDF-SHA-256(salt = none, ikm = seed, info = "WhisperMessageKeys", 80)
//! body         AES-256-CBC with PKCS#7 padding
//! MAC          HMAC-SHA-256(MAC key, sender identity (33) || receiver identity (33)
//!                           || version || protobuf)[..8]
//!
//! at most 25,000 message keys skipped in one step, 2,000 kept per receiving chain
//! (oldest dropped first), 5 receiving chains (oldest dropped first)
//! ```
//!
//! **When the sending ratchet turns.** libsignal makes its new ratchet key pair as
//! soon as it receives a new ratchet key from the peer. Decryption here takes no
//! randomness, so the new pair is made when the next message is sent (vodozemac's
//! Olm does the same). The root chain and every byte on the wire come out the same:
//! the peer can only send under a new ratchet key after seeing ours, so nothing is
//! derived from the new pair before it is sent. The old sending key is dropped as
//! soon as the receiving step is done, and the new one is fresh when it is first
//! used, which is all post-compromise security asks of it.
//!
//! Decryption never changes the state on failure: [`RatchetState::plan_receive`]
//! works on copies and [`RatchetState::commit_receive`] applies the result once the
//! caller has checked the MAC.

use std::collections::VecDeque;

use aes::Aes256;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::keys::{PrivateKey, PublicKey, SmallOrderKey};
use super::proto::MAC_LEN;

/// libsignal's `MAX_FORWARD_JUMPS`: a message may skip at most this many keys.
pub const MAX_FORWARD_JUMPS: u32 = 25_000;
/// libsignal's `MAX_MESSAGE_KEYS`: skipped keys kept per receiving chain.
pub const MAX_MESSAGE_KEYS: usize = 2_000;
/// libsignal's `MAX_RECEIVER_CHAINS`: receiving chains kept per session.
pub const MAX_RECEIVER_CHAINS: usize = 5;

const ROOT_INFO: &[u8] = b"WhisperRatchet";
const MESSAGE_KEYS_INFO: &[u8] = b"WhisperMessageKeys";
const MESSAGE_KEY_SEED: [u8; 1] = [0x01];
const CHAIN_KEY_SEED: [u8; 1] = [0x02];

type HmacSha256 = Hmac<Sha256>;

/// A root key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RootKey([u8; 32]);

/// A chain key and the index of the message whose keys it gives next.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ChainKey {
    key: [u8; 32],
    index: u32,
}

/// The seed of one message's keys (`HMAC(CK, 0x01)`): what skipped keys are kept as.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MessageKeySeed([u8; 32]);

/// One message's keys.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MessageKeys {
    cipher_key: [u8; 32],
    mac_key: [u8; 32],
    iv: [u8; 16],
}

/// The peer's chain for one of its ratchet keys, with the keys of messages skipped
/// on it.
#[derive(Clone)]
pub(crate) struct ReceiverChain {
    pub(crate) ratchet_key: PublicKey,
    pub(crate) chain_key: ChainKey,
    /// Counters in increasing order, all below `chain_key.index`.
    pub(crate) skipped: VecDeque<(u32, MessageKeySeed)>,
}

/// Our side of the sending chain.
#[derive(Clone)]
pub(crate) enum Sending {
    /// The current ratchet key pair and its chain.
    Ready {
        ratchet_key: PrivateKey,
        ratchet_public: PublicKey,
        chain_key: ChainKey,
    },
    /// The peer sent under this new ratchet key; the next message we send turns our
    /// ratchet (fresh key pair, root step against this key).
    NeedsRatchet { their_ratchet_key: PublicKey },
}

/// The ratchet part of a session.
#[derive(Clone)]
pub(crate) struct RatchetState {
    pub(crate) root_key: RootKey,
    pub(crate) sending: Sending,
    /// libsignal's `previous_counter`: the last index used on our previous chain.
    pub(crate) previous_counter: u32,
    /// Oldest first.
    pub(crate) receiver_chains: Vec<ReceiverChain>,
}

/// Why the ratchet cannot give keys for a message or for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RatchetError {
    Duplicate { counter: u32 },
    TooFarAhead { counter: u32, chain_index: u32 },
    UnexpectedRatchetKey,
    SmallOrderKey,
    ChainExhausted,
}

/// Keys for a received message, and the state change to make if it authenticates.
pub(crate) struct ReceivePlan {
    pub(crate) keys: MessageKeys,
    commit: ReceiveCommit,
}

enum ReceiveCommit {
    /// A skipped key of an existing chain was used.
    Skipped { chain: usize, position: usize },
    /// An existing chain moved forward.
    Advanced {
        chain: usize,
        chain_key: ChainKey,
        skipped: Vec<(u32, MessageKeySeed)>,
    },
    /// The peer's ratchet turned: a root step made a new receiving chain.
    NewChain {
        root_key: RootKey,
        chain: ReceiverChain,
    },
}

/// Keys and header fields for the next message we send, and the state after it.
pub(crate) struct SendPlan {
    pub(crate) keys: MessageKeys,
    pub(crate) ratchet_public: PublicKey,
    pub(crate) counter: u32,
    pub(crate) previous_counter: u32,
    commit: SendCommit,
}

enum SendCommit {
    Advance(ChainKey),
    Turn {
        root_key: RootKey,
        ratchet_key: PrivateKey,
        chain_key: ChainKey,
    },
}

impl RootKey {
    /// The root key `bytes`.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The root step: `HKDF(salt = RK, ikm = DH(ours, theirs), "WhisperRatchet")`.
    pub fn create_chain(
        &self,
        theirs: &PublicKey,
        ours: &PrivateKey,
    ) -> Result<(RootKey, ChainKey), SmallOrderKey> {
        let shared = ours.agree(theirs)?;
        let mut okm = Zeroizing::new([0u8; 64]);
        // 64 bytes is far below HKDF-SHA-256's limit of 255 blocks.
        let _ = Hkdf::<Sha256>::new(Some(&self.0), shared.as_ref()).expand(ROOT_INFO, okm.as_mut());
        let mut root = RootKey([0; 32]);
        let mut chain = ChainKey::new([0; 32], 0);
        root.0.copy_from_slice(&okm[..32]);
        chain.key.copy_from_slice(&okm[32..]);
        Ok((root, chain))
    }
}

impl ChainKey {
    /// The chain key `key` at message index `index`.
    pub fn new(key: [u8; 32], index: u32) -> Self {
        Self { key, index }
    }

    /// The key bytes.
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// The index of the message this key gives keys for.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// This message's key seed and the next chain key, with one HMAC key set-up.
    /// `None` once the index would pass `u32::MAX`.
    pub fn step(&self) -> Option<(MessageKeySeed, ChainKey)> {
        let index = self.index.checked_add(1)?;
        let keyed = keyed_hmac(&self.key);
        Some((
            MessageKeySeed(hmac_finish(keyed.clone(), &MESSAGE_KEY_SEED)),
            ChainKey {
                key: hmac_finish(keyed, &CHAIN_KEY_SEED),
                index,
            },
        ))
    }

    /// This message's key seed.
    pub fn message_key_seed(&self) -> MessageKeySeed {
        MessageKeySeed(hmac_finish(keyed_hmac(&self.key), &MESSAGE_KEY_SEED))
    }
}

impl MessageKeySeed {
    /// The seed `bytes`.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The seed bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `HKDF(salt = none, ikm = seed, "WhisperMessageKeys", 80)`.
    pub fn derive(&self) -> MessageKeys {
        let mut okm = Zeroizing::new([0u8; 80]);
        // 80 bytes is far below HKDF-SHA-256's limit of 255 blocks.
        let _ = Hkdf::<Sha256>::new(None, &self.0).expand(MESSAGE_KEYS_INFO, okm.as_mut());
        let mut keys = MessageKeys {
            cipher_key: [0; 32],
            mac_key: [0; 32],
            iv: [0; 16],
        };
        keys.cipher_key.copy_from_slice(&okm[..32]);
        keys.mac_key.copy_from_slice(&okm[32..64]);
        keys.iv.copy_from_slice(&okm[64..]);
        keys
    }
}

impl MessageKeys {
    /// The AES-256 key.
    pub fn cipher_key(&self) -> &[u8; 32] {
        &self.cipher_key
    }

    /// The HMAC-SHA-256 key.
    pub fn mac_key(&self) -> &[u8; 32] {
        &self.mac_key
    }

    /// The CBC IV.
    pub fn iv(&self) -> &[u8; 16] {
        &self.iv
    }

    /// AES-256-CBC with PKCS#7 padding.
    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        cbc::Encryptor::<Aes256>::new(&self.cipher_key.into(), &self.iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext)
    }

    /// AES-256-CBC decryption; `None` when the length or padding is wrong.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Option<Vec<u8>> {
        cbc::Decryptor::<Aes256>::new(&self.cipher_key.into(), &self.iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .ok()
    }

    /// `HMAC(MAC key, sender || receiver || authenticated)[..8]`, the identity keys in
    /// their 33-byte encoding.
    pub fn mac(
        &self,
        sender: &PublicKey,
        receiver: &PublicKey,
        authenticated: &[u8],
    ) -> [u8; MAC_LEN] {
        let mut mac = keyed_hmac(&self.mac_key);
        mac.update(&sender.encode());
        mac.update(&receiver.encode());
        mac.update(authenticated);
        let full = mac.finalize().into_bytes();
        let mut truncated = [0u8; MAC_LEN];
        truncated.copy_from_slice(&full[..MAC_LEN]);
        truncated
    }
}

impl RatchetState {
    /// The initiator after X3DH/PQXDH: a receiving chain for the responder's signed
    /// prekey with the agreed chain key, and a sending chain from a root step with a
    /// fresh ratchet key against that prekey.
    pub(crate) fn initiator(
        root_key: RootKey,
        chain_key: ChainKey,
        their_signed_prekey: PublicKey,
        ratchet_key: PrivateKey,
    ) -> Result<Self, SmallOrderKey> {
        let (root_key, sending_chain) =
            root_key.create_chain(&their_signed_prekey, &ratchet_key)?;
        Ok(Self {
            root_key,
            sending: Sending::Ready {
                ratchet_public: ratchet_key.public_key(),
                ratchet_key,
                chain_key: sending_chain,
            },
            previous_counter: 0,
            receiver_chains: vec![ReceiverChain {
                ratchet_key: their_signed_prekey,
                chain_key,
                skipped: VecDeque::new(),
            }],
        })
    }

    /// The responder after X3DH/PQXDH: its signed prekey is its first ratchet key, with
    /// the agreed chain key.
    pub(crate) fn responder(
        root_key: RootKey,
        chain_key: ChainKey,
        signed_prekey: PrivateKey,
    ) -> Self {
        Self {
            root_key,
            sending: Sending::Ready {
                ratchet_public: signed_prekey.public_key(),
                ratchet_key: signed_prekey,
                chain_key,
            },
            previous_counter: 0,
            receiver_chains: Vec::new(),
        }
    }

    /// The keys for message `counter` under the peer's ratchet key `theirs`, without
    /// changing anything.
    pub(crate) fn plan_receive(
        &self,
        theirs: &PublicKey,
        counter: u32,
    ) -> Result<ReceivePlan, RatchetError> {
        let existing = self
            .receiver_chains
            .iter()
            .position(|chain| chain.ratchet_key == *theirs);
        let Some(index) = existing else {
            return self.plan_new_chain(theirs, counter);
        };
        let chain = self
            .receiver_chains
            .get(index)
            .ok_or(RatchetError::UnexpectedRatchetKey)?;
        if counter < chain.chain_key.index {
            let position = chain
                .skipped
                .binary_search_by_key(&counter, |(skipped, _)| *skipped)
                .map_err(|_| RatchetError::Duplicate { counter })?;
            let keys = chain
                .skipped
                .get(position)
                .map(|(_, seed)| seed.derive())
                .ok_or(RatchetError::Duplicate { counter })?;
            return Ok(ReceivePlan {
                keys,
                commit: ReceiveCommit::Skipped {
                    chain: index,
                    position,
                },
            });
        }
        let Advanced {
            keys,
            chain_key,
            skipped,
        } = advance(&chain.chain_key, counter)?;
        Ok(ReceivePlan {
            keys,
            commit: ReceiveCommit::Advanced {
                chain: index,
                chain_key,
                skipped,
            },
        })
    }

    fn plan_new_chain(
        &self,
        theirs: &PublicKey,
        counter: u32,
    ) -> Result<ReceivePlan, RatchetError> {
        if counter > MAX_FORWARD_JUMPS {
            return Err(RatchetError::TooFarAhead {
                counter,
                chain_index: 0,
            });
        }
        let Sending::Ready { ratchet_key, .. } = &self.sending else {
            // We have not sent since the peer's last new ratchet key, so the peer
            // cannot have answered one of ours with this one.
            return Err(RatchetError::UnexpectedRatchetKey);
        };
        let (root_key, chain_key) = self
            .root_key
            .create_chain(theirs, ratchet_key)
            .map_err(|SmallOrderKey| RatchetError::SmallOrderKey)?;
        let Advanced {
            keys,
            chain_key,
            skipped,
        } = advance(&chain_key, counter)?;
        let mut skipped: VecDeque<_> = skipped.into();
        while skipped.len() > MAX_MESSAGE_KEYS {
            skipped.pop_front();
        }
        Ok(ReceivePlan {
            keys,
            commit: ReceiveCommit::NewChain {
                root_key,
                chain: ReceiverChain {
                    ratchet_key: *theirs,
                    chain_key,
                    skipped,
                },
            },
        })
    }

    /// Applies a plan from [`plan_receive`](Self::plan_receive) on this same state.
    pub(crate) fn commit_receive(&mut self, plan: ReceivePlan) {
        match plan.commit {
            ReceiveCommit::Skipped { chain, position } => {
                if let Some(chain) = self.receiver_chains.get_mut(chain) {
                    chain.skipped.remove(position);
                }
            }
            ReceiveCommit::Advanced {
                chain,
                chain_key,
                skipped,
            } => {
                if let Some(chain) = self.receiver_chains.get_mut(chain) {
                    chain.chain_key = chain_key;
                    chain.skipped.extend(skipped);
                    while chain.skipped.len() > MAX_MESSAGE_KEYS {
                        chain.skipped.pop_front();
                    }
                }
            }
            ReceiveCommit::NewChain { root_key, chain } => {
                self.root_key = root_key;
                if let Sending::Ready { chain_key, .. } = &self.sending {
                    self.previous_counter = chain_key.index.saturating_sub(1);
                }
                self.sending = Sending::NeedsRatchet {
                    their_ratchet_key: chain.ratchet_key,
                };
                self.receiver_chains.push(chain);
                if self.receiver_chains.len() > MAX_RECEIVER_CHAINS {
                    self.receiver_chains.remove(0);
                }
            }
        }
    }

    /// Keys and header for the next message we send, turning our ratchet first if
    /// the peer's has turned. Changes nothing until [`commit_send`](Self::commit_send).
    pub(crate) fn plan_send<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
    ) -> Result<SendPlan, RatchetError> {
        match &self.sending {
            Sending::Ready {
                ratchet_public,
                chain_key,
                ..
            } => {
                let (seed, next) = chain_key.step().ok_or(RatchetError::ChainExhausted)?;
                Ok(SendPlan {
                    keys: seed.derive(),
                    ratchet_public: *ratchet_public,
                    counter: chain_key.index,
                    previous_counter: self.previous_counter,
                    commit: SendCommit::Advance(next),
                })
            }
            Sending::NeedsRatchet { their_ratchet_key } => {
                let ratchet_key = PrivateKey::generate(rng);
                let (root_key, chain_key) = self
                    .root_key
                    .create_chain(their_ratchet_key, &ratchet_key)
                    .map_err(|SmallOrderKey| RatchetError::SmallOrderKey)?;
                let (seed, next) = chain_key.step().ok_or(RatchetError::ChainExhausted)?;
                Ok(SendPlan {
                    keys: seed.derive(),
                    ratchet_public: ratchet_key.public_key(),
                    counter: 0,
                    previous_counter: self.previous_counter,
                    commit: SendCommit::Turn {
                        root_key,
                        ratchet_key,
                        chain_key: next,
                    },
                })
            }
        }
    }

    /// Applies a plan from [`plan_send`](Self::plan_send) on this same state.
    pub(crate) fn commit_send(&mut self, plan: SendPlan) {
        match plan.commit {
            SendCommit::Advance(next) => {
                if let Sending::Ready { chain_key, .. } = &mut self.sending {
                    *chain_key = next;
                }
            }
            SendCommit::Turn {
                root_key,
                ratchet_key,
                chain_key,
            } => {
                self.root_key = root_key;
                self.sending = Sending::Ready {
                    ratchet_public: plan.ratchet_public,
                    ratchet_key,
                    chain_key,
                };
            }
        }
    }
}

/// The ratchet's part of [`super::session::Session::to_bytes`], described there.
impl RatchetState {
    pub(crate) fn encoded_len(&self) -> usize {
        let sending = match self.sending {
            Sending::Ready { .. } => 1 + 32 + 32 + 4,
            Sending::NeedsRatchet { .. } => 1 + 32,
        };
        let chains: usize = self
            .receiver_chains
            .iter()
            .map(|chain| 32 + 32 + 4 + 2 + chain.skipped.len() * (4 + 32))
            .sum();
        32 + 4 + sending + 1 + chains
    }

    /// Appends the stored form; `out` must have room for [`encoded_len`] more bytes
    /// so that no copy of the secrets is left behind by a reallocation.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.root_key.0);
        out.extend_from_slice(&self.previous_counter.to_be_bytes());
        match &self.sending {
            Sending::Ready {
                ratchet_key,
                chain_key,
                ..
            } => {
                out.push(SENDING_READY);
                out.extend_from_slice(ratchet_key.to_bytes().as_ref());
                out.extend_from_slice(&chain_key.key);
                out.extend_from_slice(&chain_key.index.to_be_bytes());
            }
            Sending::NeedsRatchet { their_ratchet_key } => {
                out.push(SENDING_NEEDS_RATCHET);
                out.extend_from_slice(their_ratchet_key.u());
            }
        }
        // At most MAX_RECEIVER_CHAINS and MAX_MESSAGE_KEYS: both fit.
        out.push(self.receiver_chains.len() as u8);
        for chain in &self.receiver_chains {
            out.extend_from_slice(chain.ratchet_key.u());
            out.extend_from_slice(&chain.chain_key.key);
            out.extend_from_slice(&chain.chain_key.index.to_be_bytes());
            out.extend_from_slice(&(chain.skipped.len() as u16).to_be_bytes());
            for (counter, seed) in &chain.skipped {
                out.extend_from_slice(&counter.to_be_bytes());
                out.extend_from_slice(&seed.0);
            }
        }
    }

    /// Reads what [`write`](Self::write) wrote, refusing anything it cannot write.
    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<Self, &'static str> {
        let root_key = RootKey(reader.array()?);
        let previous_counter = reader.u32()?;
        let sending = match reader.u8()? {
            SENDING_READY => {
                let private = Zeroizing::new(reader.array::<32>()?);
                let ratchet_key = PrivateKey::from_bytes(*private);
                if *ratchet_key.to_bytes() != *private {
                    return Err("the sending ratchet key is not clamped");
                }
                let chain_key = ChainKey {
                    key: reader.array()?,
                    index: reader.u32()?,
                };
                Sending::Ready {
                    ratchet_public: ratchet_key.public_key(),
                    ratchet_key,
                    chain_key,
                }
            }
            SENDING_NEEDS_RATCHET => Sending::NeedsRatchet {
                their_ratchet_key: PublicKey::from_u(reader.array()?),
            },
            _ => return Err("unknown sending chain state"),
        };
        let count = usize::from(reader.u8()?);
        if count > MAX_RECEIVER_CHAINS {
            return Err("more than 5 receiving chains");
        }
        let mut receiver_chains = Vec::with_capacity(count);
        for _ in 0..count {
            let ratchet_key = PublicKey::from_u(reader.array()?);
            let chain_key = ChainKey {
                key: reader.array()?,
                index: reader.u32()?,
            };
            let skipped_count = usize::from(reader.u16()?);
            if skipped_count > MAX_MESSAGE_KEYS {
                return Err("more than 2000 skipped keys in a chain");
            }
            let mut skipped = VecDeque::with_capacity(skipped_count);
            let mut next_allowed = 0u32;
            for _ in 0..skipped_count {
                let counter = reader.u32()?;
                if counter < next_allowed || counter >= chain_key.index {
                    return Err("skipped keys out of order or not below the chain index");
                }
                next_allowed = counter.saturating_add(1);
                skipped.push_back((counter, MessageKeySeed(reader.array()?)));
            }
            if receiver_chains
                .iter()
                .any(|chain: &ReceiverChain| chain.ratchet_key == ratchet_key)
            {
                return Err("two receiving chains for one ratchet key");
            }
            receiver_chains.push(ReceiverChain {
                ratchet_key,
                chain_key,
                skipped,
            });
        }
        Ok(Self {
            root_key,
            sending,
            previous_counter,
            receiver_chains,
        })
    }
}

const SENDING_READY: u8 = 0x01;
const SENDING_NEEDS_RATCHET: u8 = 0x02;

/// A cursor over stored bytes that fails instead of reading past the end.
pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < len {
            return Err("truncated");
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, &'static str> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Runs `chain_key` forward to `counter`: that message's keys, the chain key after
/// it, and the seeds of the skipped messages that would survive the per-chain limit.
fn advance(chain_key: &ChainKey, counter: u32) -> Result<Advanced, RatchetError> {
    let jump = counter.saturating_sub(chain_key.index);
    if jump > MAX_FORWARD_JUMPS {
        return Err(RatchetError::TooFarAhead {
            counter,
            chain_index: chain_key.index,
        });
    }
    // Seeds older than the newest MAX_MESSAGE_KEYS would be dropped on commit.
    let keep_from = counter.saturating_sub(MAX_MESSAGE_KEYS as u32);
    let mut skipped = Vec::with_capacity((jump as usize).min(MAX_MESSAGE_KEYS));
    let mut current = chain_key.clone();
    while current.index < counter {
        let keyed = keyed_hmac(&current.key);
        if current.index >= keep_from {
            skipped.push((
                current.index,
                MessageKeySeed(hmac_finish(keyed.clone(), &MESSAGE_KEY_SEED)),
            ));
        }
        current = ChainKey {
            key: hmac_finish(keyed, &CHAIN_KEY_SEED),
            index: current.index + 1,
        };
    }
    let (seed, chain_key) = current.step().ok_or(RatchetError::ChainExhausted)?;
    Ok(Advanced {
        keys: seed.derive(),
        chain_key,
        skipped,
    })
}

/// A chain run forward to a message: see [`advance`].
struct Advanced {
    keys: MessageKeys,
    chain_key: ChainKey,
    skipped: Vec<(u32, MessageKeySeed)>,
}

/// HMAC-SHA-256 keyed with `key`. RFC 2104 pads a short key with zeros to the
/// 64-byte block, so the padded block is the same key, and this cannot fail.
fn keyed_hmac(key: &[u8; 32]) -> HmacSha256 {
    let mut block = hmac::digest::generic_array::GenericArray::default();
    block[..32].copy_from_slice(key);
    let mac = <HmacSha256 as hmac::digest::KeyInit>::new(&block);
    block.zeroize();
    mac
}

fn hmac_finish(mut mac: HmacSha256, data: &[u8]) -> [u8; 32] {
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    fn hex32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    #[test]
    fn chain_key_matches_libsignal_vectors() {
        // libsignal rust/protocol/src/ratchet/keys.rs, test_chain_key_derivation.
        let chain = ChainKey::new(
            hex32("8ab72d6f4cc5ac0d387eaf463378ddb28edd07385b1cb01250c715982e7ad48f"),
            0,
        );
        let keys = chain.message_key_seed().derive();
        assert_eq!(
            keys.cipher_key(),
            &hex32("bf51e9d75e0e31031051f82a2491ffc084fa298b7793bd9db620056febf45217")
        );
        assert_eq!(
            keys.mac_key(),
            &hex32("c6c77d6a73a354337a56435e34607dfe48e3ace14e77314dc6abc172e7a7030b")
        );
        let (seed, next) = chain.step().unwrap();
        assert_eq!(seed.as_bytes(), chain.message_key_seed().as_bytes());
        assert_eq!(
            next.key(),
            &hex32("28e8f8fee54b801eef7c5cfb2f17f32c7b334485bbb70fac6ec10342a246d15d")
        );
        assert_eq!(next.index(), 1);
        assert!(ChainKey::new([0; 32], u32::MAX).step().is_none());
    }

    #[test]
    fn root_step_is_hkdf_with_the_root_key_as_salt() {
        let ours = PrivateKey::generate(&mut OsRng);
        let theirs = PrivateKey::generate(&mut OsRng).public_key();
        let root = RootKey::new([7; 32]);
        let (next_root, chain) = root.create_chain(&theirs, &ours).unwrap();
        let mut okm = [0u8; 64];
        Hkdf::<Sha256>::new(Some(&[7; 32]), &*ours.agree(&theirs).unwrap())
            .expand(b"WhisperRatchet", &mut okm)
            .unwrap();
        assert_eq!(next_root.as_bytes(), &okm[..32]);
        assert_eq!(chain.key(), &okm[32..]);
        assert_eq!(chain.index(), 0);
        assert!(
            root.create_chain(&PublicKey::from_u([0; 32]), &ours)
                .is_err()
        );
    }

    #[test]
    fn bodies_round_trip_and_padding_is_checked() {
        let keys = MessageKeySeed::new([3; 32]).derive();
        for len in [0, 1, 15, 16, 17, 100] {
            let plaintext = vec![0x5A; len];
            let ciphertext = keys.encrypt(&plaintext);
            assert_eq!(ciphertext.len(), (len / 16 + 1) * 16);
            assert_eq!(keys.decrypt(&ciphertext).unwrap(), plaintext);
        }
        assert!(keys.decrypt(&[]).is_none());
        assert!(keys.decrypt(&[0; 15]).is_none());
        let other = MessageKeySeed::new([4; 32]).derive();
        // Under another key the padding is almost surely wrong; if it happens to be
        // valid the plaintext still differs.
        let ciphertext = keys.encrypt(b"hello");
        assert_ne!(other.decrypt(&ciphertext).as_deref(), Some(&b"hello"[..]));
    }

    #[test]
    fn skipping_keeps_only_the_newest_seeds() {
        let start = ChainKey::new([9; 32], 0);
        let Advanced {
            keys,
            chain_key: next,
            skipped,
        } = advance(&start, 2_500).unwrap();
        assert_eq!(next.index(), 2_501);
        assert_eq!(skipped.len(), MAX_MESSAGE_KEYS);
        assert_eq!(skipped.first().map(|(c, _)| *c), Some(500));
        assert_eq!(skipped.last().map(|(c, _)| *c), Some(2_499));
        // The seeds are the chain's own.
        let mut walk = start;
        for _ in 0..2_499 {
            walk = walk.step().unwrap().1;
        }
        assert_eq!(
            skipped.last().unwrap().1.as_bytes(),
            walk.message_key_seed().as_bytes()
        );
        let (_, at_2500) = walk.step().unwrap();
        assert_eq!(
            keys.mac_key(),
            at_2500.message_key_seed().derive().mac_key()
        );
        assert_eq!(
            advance(&ChainKey::new([9; 32], 10), 25_011).err(),
            Some(RatchetError::TooFarAhead {
                counter: 25_011,
                chain_index: 10
            })
        );
        assert!(advance(&ChainKey::new([9; 32], 10), 25_010).is_ok());
    }
}
