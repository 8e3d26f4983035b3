//! MLS key management for SFrame (RFC 9605 section 5.2).

use std::collections::{BTreeSet, HashMap};

use zeroize::Zeroizing;

use super::crypto::KeyMaterial;
use super::{CipherSuite, Header, SendKey, SframeError};

/// The KID layout of RFC 9605 section 5.2 (Figure 8):
///
/// ```text
///   64-S-E bits   S bits   E bits
///  +-------------+--------+-------+
///  | Context ID  | Index  | Epoch |
///  +-------------+--------+-------+
/// KID = (context << (S + E)) + (sender_index << E) + (epoch % (1 << E))
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KidLayout {
    epoch_bits: u8,
    index_bits: u8,
}

/// The parts of an MLS KID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlsKid {
    /// Context ID chosen by the sender (0 gives the shortest KID).
    pub context: u64,
    /// The sender's MLS leaf index.
    pub index: u32,
    /// The low E bits of the epoch.
    pub epoch_low: u64,
}

impl KidLayout {
    /// A layout with E = `epoch_bits` and S = `index_bits`; S is at most 32 (MLS leaf
    /// indices are `uint32`) and E + S at most 64.
    pub fn new(epoch_bits: u8, index_bits: u8) -> Result<Self, SframeError> {
        if index_bits > 32 || u32::from(epoch_bits) + u32::from(index_bits) > 64 {
            return Err(SframeError::KidLayout {
                epoch_bits,
                index_bits,
            });
        }
        Ok(KidLayout {
            epoch_bits,
            index_bits,
        })
    }

    /// The layout for a group whose member leaf indices are all below `leaf_count`: S is
    /// "the smallest value such that group_size <= (1 << S)".
    pub fn for_group(epoch_bits: u8, leaf_count: u64) -> Result<Self, SframeError> {
        let index_bits = match leaf_count {
            0 | 1 => 0,
            // Lossless: at most 64.
            n => (64 - (n - 1).leading_zeros()) as u8,
        };
        Self::new(epoch_bits, index_bits)
    }

    /// E.
    pub fn epoch_bits(&self) -> u8 {
        self.epoch_bits
    }

    /// S.
    pub fn index_bits(&self) -> u8 {
        self.index_bits
    }

    /// The KID of member `index` in `epoch` under `context`.
    pub fn kid(&self, context: u64, index: u32, epoch: u64) -> Result<u64, SframeError> {
        let context_bits = 64 - self.epoch_bits - self.index_bits;
        if u64::from(index) > mask(self.index_bits) {
            return Err(SframeError::KidFieldTooLarge {
                field: "index",
                value: u64::from(index),
                bits: self.index_bits,
            });
        }
        if context > mask(context_bits) {
            return Err(SframeError::KidFieldTooLarge {
                field: "context",
                value: context,
                bits: context_bits,
            });
        }
        Ok(shl(context, self.epoch_bits + self.index_bits)
            | shl(u64::from(index), self.epoch_bits)
            | (epoch & mask(self.epoch_bits)))
    }

    /// Splits a KID into its parts.
    pub fn split(&self, kid: u64) -> MlsKid {
        let index = shr(kid, self.epoch_bits) & mask(self.index_bits);
        MlsKid {
            context: shr(kid, self.epoch_bits + self.index_bits),
            // Lossless: index_bits <= 32.
            index: index as u32,
            epoch_low: kid & mask(self.epoch_bits),
        }
    }
}

/// `2^bits - 1`, for 0 <= bits <= 64.
fn mask(bits: u8) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

fn shl(value: u64, bits: u8) -> u64 {
    value.checked_shl(u32::from(bits)).unwrap_or(0)
}

fn shr(value: u64, bits: u8) -> u64 {
    value.checked_shr(u32::from(bits)).unwrap_or(0)
}

/// A decrypted frame of an MLS group call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlsFrame {
    /// Leaf index of the sender, authenticated by the key (any member holds it: SFrame
    /// has no per-sender authentication, RFC 9605 section 7.2).
    pub sender: u32,
    /// The full epoch whose key opened the frame.
    pub epoch: u64,
    /// The authenticated header.
    pub header: Header,
    /// The frame.
    pub plaintext: Vec<u8>,
}

/// One call participant's SFrame state over an MLS group (RFC 9605 section 5.2).
///
/// For each epoch the caller hands in `base_key = MLS-Exporter("SFrame 1.0 Base Key",
/// "", AEAD.Nk)`; every member's KID (context 0) then names its own key and salt, derived
/// from that one base key. The sender switches to a new epoch at once; receive keys of
/// earlier epochs stay until the caller retires them with [`MlsSframe::retire_epoch`] (or
/// an epoch with the same low E bits replaces them, as the RFC requires).
pub struct MlsSframe {
    suite: CipherSuite,
    epoch_bits: u8,
    /// The current epoch and our send key in it.
    sender: Option<(u64, SendKey)>,
    epochs: Vec<EpochKeys>,
}

struct EpochKeys {
    epoch: u64,
    layout: KidLayout,
    own_index: u32,
    members: BTreeSet<u32>,
    base_key: Zeroizing<Vec<u8>>,
    /// Receive keys of context 0, derived when the epoch is set.
    keys: HashMap<u64, KeyMaterial>,
}

/// Shows the epochs, never keys.
impl std::fmt::Debug for MlsSframe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let MlsSframe {
            suite,
            epoch_bits,
            sender,
            epochs,
        } = self;
        f.debug_struct("MlsSframe")
            .field("suite", suite)
            .field("epoch_bits", epoch_bits)
            .field("sending", &sender.as_ref().map(|(epoch, key)| (epoch, key)))
            .field(
                "receiving",
                &epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl MlsSframe {
    /// A participant using `suite`, sending the low `epoch_bits` (E, at most 32) bits
    /// of the epoch in its KIDs.
    pub fn new(suite: CipherSuite, epoch_bits: u8) -> Result<Self, SframeError> {
        KidLayout::new(epoch_bits, 32)?;
        Ok(MlsSframe {
            suite,
            epoch_bits,
            sender: None,
            epochs: Vec::new(),
        })
    }

    /// The cipher suite.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The newest epoch set, if any.
    pub fn current_epoch(&self) -> Option<u64> {
        self.sender.as_ref().map(|(epoch, _)| *epoch)
    }

    /// The epochs whose frames are still accepted.
    pub fn epochs(&self) -> Vec<u64> {
        self.epochs.iter().map(|e| e.epoch).collect()
    }

    /// Enters `epoch`: derives our send key and a receive key for every other member.
    /// `members` are the leaf indices of the group in that epoch (ours may be among
    /// them); S is sized for the largest. Epochs must increase.
    pub fn set_epoch(
        &mut self,
        epoch: u64,
        base_key: &[u8],
        own_index: u32,
        members: &[u32],
    ) -> Result<(), SframeError> {
        if base_key.len() != self.suite.key_len() {
            return Err(SframeError::BaseKeyLength {
                expected: self.suite.key_len(),
                got: base_key.len(),
            });
        }
        if let Some(current) = self.current_epoch()
            && epoch <= current
        {
            return Err(SframeError::StaleEpoch {
                current,
                got: epoch,
            });
        }
        let mut members: BTreeSet<u32> = members.iter().copied().collect();
        members.insert(own_index);
        let largest = members.last().copied().unwrap_or(own_index);
        let layout = KidLayout::for_group(self.epoch_bits, u64::from(largest) + 1)?;

        let own_kid = layout.kid(0, own_index, epoch)?;
        let mut keys = HashMap::with_capacity(members.len());
        for &index in members.iter().filter(|&&i| i != own_index) {
            let kid = layout.kid(0, index, epoch)?;
            keys.insert(kid, KeyMaterial::derive(self.suite, kid, base_key));
        }
        let epoch_low = epoch & mask(self.epoch_bits);
        // "receivers MUST remove an old epoch when a new epoch with the same low-order E
        // bits is introduced"
        self.epochs
            .retain(|e| e.epoch & mask(self.epoch_bits) != epoch_low);
        self.epochs.push(EpochKeys {
            epoch,
            layout,
            own_index,
            members,
            base_key: Zeroizing::new(base_key.to_vec()),
            keys,
        });
        self.sender = Some((epoch, SendKey::new(self.suite, own_kid, base_key)));
        Ok(())
    }

    /// Stops accepting frames of `epoch` (the grace period after a rekey is over); says
    /// whether it was kept. Retiring the current epoch leaves sending unaffected.
    pub fn retire_epoch(&mut self, epoch: u64) -> bool {
        let before = self.epochs.len();
        self.epochs.retain(|e| e.epoch != epoch);
        self.epochs.len() != before
    }

    /// Encrypts a frame under our key of the current epoch.
    pub fn encrypt(&mut self, frame: &[u8], metadata: &[u8]) -> Result<Vec<u8>, SframeError> {
        let (_, key) = self.sender.as_mut().ok_or(SframeError::NoEpoch)?;
        key.encrypt(metadata, frame)
    }

    /// Decrypts a frame of another member, in any epoch still kept.
    pub fn decrypt(&mut self, frame: &[u8], metadata: &[u8]) -> Result<MlsFrame, SframeError> {
        let (header, header_len) = Header::decode(frame)?;
        let kid = header.kid;
        let unknown = SframeError::UnknownKid { kid };
        let epoch_low = kid & mask(self.epoch_bits);
        let keys = self
            .epochs
            .iter()
            .find(|e| e.epoch & mask(self.epoch_bits) == epoch_low)
            .ok_or(unknown.clone())?;
        let parts = keys.layout.split(kid);
        if parts.index == keys.own_index || !keys.members.contains(&parts.index) {
            return Err(unknown);
        }
        let (header_bytes, ciphertext) = frame.split_at(header_len);
        let plaintext = match keys.keys.get(&kid) {
            Some(material) => material.open(header, header_bytes, metadata, ciphertext)?,
            // Another context of a member: derived when needed, not kept, so a sender
            // cannot make us store a key per context it invents.
            None => KeyMaterial::derive(self.suite, kid, &keys.base_key).open(
                header,
                header_bytes,
                metadata,
                ciphertext,
            )?,
        };
        Ok(MlsFrame {
            sender: parts.index,
            epoch: keys.epoch,
            header,
            plaintext,
        })
    }
}
