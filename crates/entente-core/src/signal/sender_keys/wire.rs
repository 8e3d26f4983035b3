//! Decoding libsignal's `SenderKeyMessage` and `SenderKeyDistributionMessage`.

use std::collections::VecDeque;

use prost::Message as _;
use zeroize::{Zeroize, Zeroizing};

use super::state::{ChainKey, SenderKeyState, key32};
use super::{DISTRIBUTION_ID_LEN, MIN_DISTRIBUTION_LEN, SENDER_KEY_VERSION, SenderKeyError};
use crate::signal::keys::{ENCODED_PUBLIC_KEY_LEN, PublicKey};
use crate::signal::xeddsa::SIGNATURE_LEN;

/// A decoded `SenderKeyMessage`, its signature not yet checked.
pub(super) struct ParsedMessage<'a> {
    pub(super) distribution_id: [u8; DISTRIBUTION_ID_LEN],
    pub(super) chain_id: u32,
    pub(super) iteration: u32,
    pub(super) ciphertext: Vec<u8>,
    /// Everything before the signature: what it covers.
    pub(super) signed: &'a [u8],
    pub(super) signature: [u8; SIGNATURE_LEN],
}

impl<'a> ParsedMessage<'a> {
    const WHAT: &'static str = "sender key message";

    pub(super) fn parse(bytes: &'a [u8]) -> Result<Self, SenderKeyError> {
        let too_short = SenderKeyError::TooShort {
            what: Self::WHAT,
            len: bytes.len(),
            min: 1 + SIGNATURE_LEN,
        };
        let split = bytes
            .len()
            .checked_sub(SIGNATURE_LEN)
            .filter(|&n| n >= 1)
            .ok_or(too_short.clone())?;
        let (signed, signature) = bytes.split_at_checked(split).ok_or(too_short.clone())?;
        let (&version, body) = signed.split_first().ok_or(too_short)?;
        check_version(Self::WHAT, version)?;
        let signature: [u8; SIGNATURE_LEN] = signature
            .try_into()
            .map_err(|_| SenderKeyError::Bug("signature split"))?;
        let proto = MessageProto::decode(body).map_err(|e| SenderKeyError::Protobuf {
            what: Self::WHAT,
            reason: e.to_string(),
        })?;
        let missing = |field| SenderKeyError::MissingField {
            what: Self::WHAT,
            field,
        };
        let uuid = proto
            .distribution_uuid
            .ok_or_else(|| missing("distribution_uuid"))?;
        Ok(Self {
            distribution_id: distribution_id(Self::WHAT, &uuid)?,
            chain_id: proto.chain_id.ok_or_else(|| missing("chain_id"))?,
            iteration: proto.iteration.ok_or_else(|| missing("iteration"))?,
            ciphertext: proto.ciphertext.ok_or_else(|| missing("ciphertext"))?,
            signed,
            signature,
        })
    }
}

/// A decoded `SenderKeyDistributionMessage`.
pub(super) struct Distribution {
    pub(super) distribution_id: [u8; DISTRIBUTION_ID_LEN],
    pub(super) chain_id: u32,
    pub(super) iteration: u32,
    pub(super) chain_key: Zeroizing<[u8; 32]>,
    pub(super) signing_key: PublicKey,
}

impl Distribution {
    const WHAT: &'static str = "sender key distribution message";

    pub(super) fn parse(bytes: &[u8]) -> Result<Self, SenderKeyError> {
        if bytes.len() < MIN_DISTRIBUTION_LEN {
            return Err(SenderKeyError::TooShort {
                what: Self::WHAT,
                len: bytes.len(),
                min: MIN_DISTRIBUTION_LEN,
            });
        }
        let (&version, body) = bytes.split_first().ok_or(SenderKeyError::TooShort {
            what: Self::WHAT,
            len: 0,
            min: MIN_DISTRIBUTION_LEN,
        })?;
        check_version(Self::WHAT, version)?;
        let proto = Zeroizing::new(DistributionProto::decode(body).map_err(|e| {
            SenderKeyError::Protobuf {
                what: Self::WHAT,
                reason: e.to_string(),
            }
        })?);
        let missing = |field| SenderKeyError::MissingField {
            what: Self::WHAT,
            field,
        };
        let uuid = proto
            .distribution_uuid
            .as_ref()
            .ok_or_else(|| missing("distribution_uuid"))?;
        let chain_key = proto
            .chain_key
            .as_ref()
            .ok_or_else(|| missing("chain_key"))?;
        let signing_key = proto
            .signing_key
            .as_ref()
            .ok_or_else(|| missing("signing_key"))?;
        let chain_key = key32(chain_key).ok_or(SenderKeyError::FieldLength {
            what: Self::WHAT,
            field: "chain_key",
            len: chain_key.len(),
            expected: 32,
        })?;
        if signing_key.len() != ENCODED_PUBLIC_KEY_LEN {
            return Err(SenderKeyError::FieldLength {
                what: Self::WHAT,
                field: "signing_key",
                len: signing_key.len(),
                expected: ENCODED_PUBLIC_KEY_LEN,
            });
        }
        Ok(Self {
            distribution_id: distribution_id(Self::WHAT, uuid)?,
            chain_id: proto.chain_id.ok_or_else(|| missing("chain_id"))?,
            iteration: proto.iteration.ok_or_else(|| missing("iteration"))?,
            chain_key,
            signing_key: PublicKey::decode(signing_key).map_err(SenderKeyError::BadSigningKey)?,
        })
    }

    pub(super) fn into_state(self) -> SenderKeyState {
        SenderKeyState {
            chain_id: self.chain_id,
            chain: ChainKey {
                iteration: self.iteration,
                key: self.chain_key,
            },
            signing_public: self.signing_key,
            signing_private: None,
            skipped: VecDeque::new(),
        }
    }
}

/// libsignal reads the message version from the high nibble only.
pub(super) fn check_version(what: &'static str, byte: u8) -> Result<(), SenderKeyError> {
    if byte >> 4 != SENDER_KEY_VERSION {
        return Err(SenderKeyError::UnsupportedVersion { what, byte });
    }
    Ok(())
}

pub(super) fn distribution_id(
    what: &'static str,
    bytes: &[u8],
) -> Result<[u8; DISTRIBUTION_ID_LEN], SenderKeyError> {
    bytes.try_into().map_err(|_| SenderKeyError::FieldLength {
        what,
        field: "distribution_uuid",
        len: bytes.len(),
        expected: DISTRIBUTION_ID_LEN,
    })
}

/// libsignal `wire.proto` `SenderKeyMessage`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct MessageProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(super) distribution_uuid: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "2")]
    pub(super) chain_id: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub(super) iteration: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub(super) ciphertext: Option<Vec<u8>>,
}

/// libsignal `wire.proto` `SenderKeyDistributionMessage`.
#[derive(Clone, PartialEq, prost::Message, Zeroize)]
pub(super) struct DistributionProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(super) distribution_uuid: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "2")]
    pub(super) chain_id: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub(super) iteration: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub(super) chain_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub(super) signing_key: Option<Vec<u8>>,
}
