//! libsignal's two-party session, sans-IO: X3DH or PQXDH to set it up, the Double
//! Ratchet ([`super::ratchet`]) after, messages in libsignal's formats
//! ([`super::proto`]).
//!
//! The initiator (Alice) calls [`Session::initiate`] with the responder's bundle and
//! sends with [`Session::encrypt`]: [`MessageKind::PreKey`] messages, which carry what
//! the responder needs to set up its side, until the first reply decrypts. The
//! responder (Bob) reads the first message's sender with [`peek_prekey_message`]
//! (to decide whether to trust its identity key), then calls
//! [`accept_prekey_message`]. Later PreKey messages of the same session (same base
//! key) go to [`Session::decrypt`] like any other.
//!
//! Failed decryption leaves the session as it was. Duplicates, counters more than
//! 25,000 ahead and bad MACs are refused with their own errors. Storage goes through
//! [`Session::to_bytes`], whose format is described there.
//!
//! Not here: several sessions per peer (libsignal's `SessionRecord` with archived
//! states, used when both sides initiate at once) and the sparse post-quantum ratchet
//! (SPQR) of current libsignal.

use std::fmt;

use rand::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::keys::{IdentityKeyPair, PrivateKey, PublicKey};
use super::pqxdh::{CIPHERTEXT_LEN, KemCiphertext, KemKeyPair};
use super::proto::{
    MessageDecodeError, PreKeySignalMessage, SignalMessage, VERSION_PQXDH, VERSION_X3DH,
};
use super::ratchet::{ChainKey, RatchetError, RatchetState, Reader, RootKey};
use super::x3dh::{self, PreKeyBundle, X3dhError};

/// Which of libsignal's two session message types a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `PreKeySignalMessage` (libsignal's `CiphertextMessageType::PreKey`, 3).
    PreKey,
    /// `SignalMessage` (libsignal's `CiphertextMessageType::Whisper`, 2).
    Whisper,
}

/// An encrypted message and its kind, which the transport must carry alongside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// How the recipient must decode `bytes`.
    pub kind: MessageKind,
    /// The message in libsignal's format.
    pub bytes: Vec<u8>,
}

/// Which prekey an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PreKeyKind {
    /// The signed X25519 prekey.
    Signed,
    /// A one-time X25519 prekey.
    OneTime,
    /// A signed ML-KEM-1024 ("Kyber") prekey.
    Kyber,
}

impl fmt::Display for PreKeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Signed => "signed",
            Self::OneTime => "one-time",
            Self::Kyber => "Kyber",
        })
    }
}

/// Why a session operation failed. Nothing changed in the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The peer sent a malformed message.
    #[error("malformed message: {0}")]
    Decode(MessageDecodeError),
    /// The peer sent a message version we do not speak.
    #[error("message version {0} is not supported (only 3 and 4)")]
    UnsupportedVersion(u8),
    /// The message's version is not the session's.
    #[error("the message is version {message} but the session is version {session}")]
    VersionMismatch {
        /// The session's version.
        session: u8,
        /// The message's version.
        message: u8,
    },
    /// The MAC does not verify: tampered, or not for this session.
    #[error("the message's MAC does not verify (tampered, or not for this session)")]
    BadMac,
    /// The MAC verified but the body does not decrypt (the peer encrypted badly).
    #[error("the message authenticated but its body is not valid AES-256-CBC with PKCS#7")]
    BadCiphertext,
    /// This message was decrypted before (or its key was dropped as too old).
    #[error("message {counter} of its chain was already decrypted, or its key was dropped")]
    Duplicate {
        /// The message's counter.
        counter: u32,
    },
    /// The message claims to be more than 25,000 messages ahead of its chain.
    #[error("message counter {counter} is more than 25000 messages ahead of its chain")]
    TooFarAhead {
        /// The message's counter.
        counter: u32,
    },
    /// A message under a ratchet key the peer cannot have chosen yet: we have not
    /// sent since its last new one.
    #[error("the message uses a new ratchet key before we answered the previous one")]
    UnexpectedRatchetKey,
    /// The store lacks a prekey the message names (used up, or never ours).
    #[error("the {kind} prekey {id} is not in the store")]
    MissingPreKey {
        /// Which prekey.
        kind: PreKeyKind,
        /// Its id.
        id: u32,
    },
    /// A bundle's prekey is not signed by the bundle's identity key.
    #[error("the bundle's {kind} prekey {id} is not signed by its identity key")]
    BadSignature {
        /// Which prekey.
        kind: PreKeyKind,
        /// Its id.
        id: u32,
    },
    /// A PreKey message that belongs to another session (other base key, identity or
    /// version), or a PreKey message to the session's initiator.
    #[error("the PreKey message belongs to another session")]
    WrongSession,
    /// The key agreement failed on the peer's keys.
    #[error("key agreement failed: {0}")]
    KeyAgreement(X3dhError),
    /// A peer's ratchet key has small order.
    #[error("the peer's ratchet key has small order")]
    SmallOrderKey,
    /// The sending chain reached 2^32 messages.
    #[error("the sending chain is exhausted (2^32 messages)")]
    ChainExhausted,
    /// [`Session::from_bytes`] was given bytes that are not a stored session.
    #[error("stored session is invalid: {0}")]
    BadSessionBytes(&'static str),
    /// A bug in Entente, not anyone's input.
    #[error("bug in entente: {0}")]
    Bug(&'static str),
}

impl From<MessageDecodeError> for SessionError {
    fn from(error: MessageDecodeError) -> Self {
        match error {
            MessageDecodeError::UnsupportedVersion(version) => Self::UnsupportedVersion(version),
            other => Self::Decode(other),
        }
    }
}

impl From<X3dhError> for SessionError {
    fn from(error: X3dhError) -> Self {
        match error {
            X3dhError::BadSignedPreKeySignature { signed_prekey_id } => Self::BadSignature {
                kind: PreKeyKind::Signed,
                id: signed_prekey_id,
            },
            X3dhError::BadKyberPreKeySignature { kyber_prekey_id } => Self::BadSignature {
                kind: PreKeyKind::Kyber,
                id: kyber_prekey_id,
            },
            other => Self::KeyAgreement(other),
        }
    }
}

impl From<RatchetError> for SessionError {
    fn from(error: RatchetError) -> Self {
        match error {
            RatchetError::Duplicate { counter } => Self::Duplicate { counter },
            RatchetError::TooFarAhead { counter, .. } => Self::TooFarAhead { counter },
            RatchetError::UnexpectedRatchetKey => Self::UnexpectedRatchetKey,
            RatchetError::SmallOrderKey => Self::SmallOrderKey,
            RatchetError::ChainExhausted => Self::ChainExhausted,
        }
    }
}

/// The responder's private prekeys, looked up by the ids a PreKey message names.
pub trait PreKeyStore {
    /// The signed prekey `id`.
    fn signed_prekey(&self, id: u32) -> Option<PrivateKey>;
    /// The one-time prekey `id`, if not used up.
    fn one_time_prekey(&self, id: u32) -> Option<PrivateKey>;
    /// The Kyber prekey `id`.
    fn kyber_prekey(&self, id: u32) -> Option<KemKeyPair>;
}

/// The set-up fields of a PreKey message, readable before anything is decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeyMessageInfo {
    /// 3 (X3DH) or 4 (PQXDH).
    pub version: u8,
    /// The sender's registration id.
    pub registration_id: u32,
    /// The sender's identity key: check it before accepting.
    pub identity_key: PublicKey,
    /// The sender's ephemeral key, which names the session.
    pub base_key: PublicKey,
    /// The one-time prekey used, to delete once accepted.
    pub one_time_prekey_id: Option<u32>,
    /// The signed prekey used.
    pub signed_prekey_id: u32,
    /// The Kyber prekey used (version 4): a one-time one is deleted once accepted.
    pub kyber_prekey_id: Option<u32>,
}

/// A session accepted from its first message.
#[derive(Debug)]
pub struct Accepted {
    /// The responder's side of the session.
    pub session: Session,
    /// The first message's plaintext.
    pub plaintext: Vec<u8>,
    /// The set-up fields, to delete the used one-time prekeys.
    pub info: PreKeyMessageInfo,
}

/// One side of a session with one peer device.
#[derive(Clone)]
pub struct Session {
    version: u8,
    local_identity: PublicKey,
    remote_identity: PublicKey,
    local_registration_id: u32,
    remote_registration_id: u32,
    /// The initiator's ephemeral key: identifies the session in PreKey messages.
    base_key: PublicKey,
    /// Whether we initiated (only the responder takes PreKey messages).
    initiator: bool,
    ratchet: RatchetState,
    /// The initiator's set-up fields, sent with every message until a reply decrypts.
    pending_prekey: Option<PendingPreKey>,
}

#[derive(Clone)]
struct PendingPreKey {
    one_time_prekey_id: Option<u32>,
    signed_prekey_id: u32,
    kyber: Option<(u32, KemCiphertext)>,
}

/// Reads a PreKey message's set-up fields without keys, so the caller can decide
/// whether to trust the sender's identity key before [`accept_prekey_message`].
pub fn peek_prekey_message(bytes: &[u8]) -> Result<PreKeyMessageInfo, SessionError> {
    Ok(info(&PreKeySignalMessage::decode(bytes)?))
}

/// The responder's side: sets up a session from its first (PreKey) message and
/// decrypts it. Fails without side effects if a prekey is missing, the agreement
/// fails or the message does not decrypt.
///
/// `_rng` is not drawn from: the responder's new ratchet key is made when it first
/// sends (libsignal makes it here; see [`super::ratchet`] for why the bytes are the
/// same). It stays in the signature so that a later protocol step (SPQR) can use it.
pub fn accept_prekey_message<R: RngCore + CryptoRng>(
    ours: &IdentityKeyPair,
    our_registration_id: u32,
    store: &impl PreKeyStore,
    bytes: &[u8],
    _rng: &mut R,
) -> Result<Accepted, SessionError> {
    let message = PreKeySignalMessage::decode(bytes)?;
    let info = info(&message);
    let signed_prekey =
        store
            .signed_prekey(info.signed_prekey_id)
            .ok_or(SessionError::MissingPreKey {
                kind: PreKeyKind::Signed,
                id: info.signed_prekey_id,
            })?;
    let one_time_prekey = match info.one_time_prekey_id {
        Some(id) => Some(
            store
                .one_time_prekey(id)
                .ok_or(SessionError::MissingPreKey {
                    kind: PreKeyKind::OneTime,
                    id,
                })?,
        ),
        None => None,
    };
    let secrets = match (info.kyber_prekey_id, message.kyber_ciphertext()) {
        (Some(id), Some(ciphertext)) => {
            let kyber_prekey = store.kyber_prekey(id).ok_or(SessionError::MissingPreKey {
                kind: PreKeyKind::Kyber,
                id,
            })?;
            x3dh::respond_pqxdh(
                ours,
                &signed_prekey,
                one_time_prekey.as_ref(),
                &kyber_prekey,
                &info.identity_key,
                &info.base_key,
                ciphertext,
            )?
        }
        _ => x3dh::respond(
            ours,
            &signed_prekey,
            one_time_prekey.as_ref(),
            &info.identity_key,
            &info.base_key,
        )?,
    };
    let mut session = Session {
        version: info.version,
        local_identity: ours.public(),
        remote_identity: info.identity_key,
        local_registration_id: our_registration_id,
        remote_registration_id: info.registration_id,
        base_key: info.base_key,
        initiator: false,
        ratchet: RatchetState::responder(
            RootKey::new(*secrets.root_key()),
            ChainKey::new(*secrets.chain_key(), 0),
            signed_prekey,
        ),
        pending_prekey: None,
    };
    let plaintext = session.decrypt_message(message.message())?;
    Ok(Accepted {
        session,
        plaintext,
        info,
    })
}

impl Session {
    /// The initiator's side: checks the bundle's signatures, runs X3DH (or PQXDH when
    /// the bundle has a Kyber prekey) and sets up the ratchet.
    pub fn initiate<R: RngCore + CryptoRng>(
        ours: &IdentityKeyPair,
        our_registration_id: u32,
        bundle: &PreKeyBundle,
        rng: &mut R,
    ) -> Result<Session, SessionError> {
        let (secrets, initiation) = x3dh::initiate(ours, bundle, rng)?;
        let version = if initiation.kyber.is_some() {
            VERSION_PQXDH
        } else {
            VERSION_X3DH
        };
        let ratchet = RatchetState::initiator(
            RootKey::new(*secrets.root_key()),
            ChainKey::new(*secrets.chain_key(), 0),
            bundle.signed_prekey,
            PrivateKey::generate(rng),
        )
        .map_err(|_| X3dhError::SmallOrderKey {
            key: "signed prekey",
        })?;
        Ok(Session {
            version,
            local_identity: ours.public(),
            remote_identity: bundle.identity_key,
            local_registration_id: our_registration_id,
            remote_registration_id: bundle.registration_id,
            base_key: initiation.base_key,
            initiator: true,
            ratchet,
            pending_prekey: Some(PendingPreKey {
                one_time_prekey_id: bundle.one_time_prekey.map(|(id, _)| id),
                signed_prekey_id: bundle.signed_prekey_id,
                kyber: initiation.kyber,
            }),
        })
    }

    /// Encrypts `plaintext`: a PreKey message until the peer has answered, a Whisper
    /// message after. `rng` makes a new ratchet key when the peer's has turned.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &mut self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<OutgoingMessage, SessionError> {
        let plan = self.ratchet.plan_send(rng)?;
        let mut signal_message = SignalMessage::encode_unauthenticated(
            self.version,
            &plan.ratchet_public,
            plan.counter,
            plan.previous_counter,
            plan.keys.encrypt(plaintext),
        );
        let mac = plan
            .keys
            .mac(&self.local_identity, &self.remote_identity, &signal_message);
        signal_message.extend_from_slice(&mac);
        let outgoing = match &self.pending_prekey {
            None => OutgoingMessage {
                kind: MessageKind::Whisper,
                bytes: signal_message,
            },
            Some(pending) => OutgoingMessage {
                kind: MessageKind::PreKey,
                bytes: PreKeySignalMessage::encode(
                    self.version,
                    self.local_registration_id,
                    pending.one_time_prekey_id,
                    pending.signed_prekey_id,
                    pending
                        .kyber
                        .as_ref()
                        .map(|(id, ciphertext)| (*id, ciphertext)),
                    &self.base_key,
                    &self.local_identity,
                    signal_message,
                ),
            },
        };
        self.ratchet.commit_send(plan);
        Ok(outgoing)
    }

    /// Decrypts a message of this session. On any error the session is unchanged.
    pub fn decrypt(&mut self, kind: MessageKind, bytes: &[u8]) -> Result<Vec<u8>, SessionError> {
        match kind {
            MessageKind::Whisper => self.decrypt_message(&SignalMessage::decode(bytes)?),
            MessageKind::PreKey => {
                let message = PreKeySignalMessage::decode(bytes)?;
                let ours = !self.initiator
                    && message.version() == self.version
                    && *message.base_key() == self.base_key
                    && *message.identity_key() == self.remote_identity;
                if !ours {
                    return Err(SessionError::WrongSession);
                }
                self.decrypt_message(message.message())
            }
        }
    }

    /// The peer's identity key.
    pub fn remote_identity(&self) -> &PublicKey {
        &self.remote_identity
    }

    /// Our identity key.
    pub fn local_identity(&self) -> &PublicKey {
        &self.local_identity
    }

    /// The peer's registration id.
    pub fn remote_registration_id(&self) -> u32 {
        self.remote_registration_id
    }

    /// Our registration id, as the session sends it.
    pub fn local_registration_id(&self) -> u32 {
        self.local_registration_id
    }

    /// 3 (X3DH) or 4 (PQXDH).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The initiator's ephemeral key, which names the session.
    pub fn base_key(&self) -> &PublicKey {
        &self.base_key
    }

    /// Whether we still send PreKey messages (we initiated and no reply decrypted).
    pub fn awaiting_reply(&self) -> bool {
        self.pending_prekey.is_some()
    }

    /// The stored form of the whole session, versioned; secrets included, so the
    /// buffer is zeroized on drop. Integers are big-endian:
    ///
    /// ```text
    /// "ESig" || format (1) = 0x01 || version (1) = 3 | 4
    /// || role (1) = 0x01 initiator | 0x02 responder
    /// local identity u (32) || remote identity u (32)
    /// local registration id (4) || remote registration id (4) || base key u (32)
    /// ratchet (see below)
    /// pending PreKey fields (1) = 0x00 none
    ///                           | 0x01 || signed prekey id (4)
    ///                                  || 0x00 | 0x01 || one-time prekey id (4)
    ///                                  || 0x00 | 0x01 || Kyber prekey id (4) || ciphertext (1569)
    /// ```
    ///
    /// The ratchet part is
    ///
    /// ```text
    /// root key (32) || previous counter (4)
    /// sending:  0x01 || ratchet private key (32, clamped) || chain key (32) || index (4)
    ///         | 0x02 || their new ratchet key u (32)
    /// receiving chain count (1, at most 5), oldest first, each:
    ///     ratchet key u (32) || chain key (32) || index (4)
    ///     || skipped count (2, at most 2000) || (counter (4) || seed (32)) per skipped key
    /// ```
    ///
    /// [`from_bytes`](Self::from_bytes) accepts exactly what this writes.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let pending_len = match &self.pending_prekey {
            None => 1,
            Some(pending) => {
                1 + 4
                    + 1
                    + pending.one_time_prekey_id.map_or(0, |_| 4)
                    + 1
                    + pending
                        .kyber
                        .as_ref()
                        .map_or(0, |(_, ciphertext)| 4 + ciphertext.as_bytes().len())
            }
        };
        let len = HEADER_LEN + self.ratchet.encoded_len() + pending_len;
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT);
        out.push(self.version);
        out.push(if self.initiator {
            ROLE_INITIATOR
        } else {
            ROLE_RESPONDER
        });
        out.extend_from_slice(self.local_identity.u());
        out.extend_from_slice(self.remote_identity.u());
        out.extend_from_slice(&self.local_registration_id.to_be_bytes());
        out.extend_from_slice(&self.remote_registration_id.to_be_bytes());
        out.extend_from_slice(self.base_key.u());
        self.ratchet.write(&mut out);
        match &self.pending_prekey {
            None => out.push(0),
            Some(pending) => {
                out.push(1);
                out.extend_from_slice(&pending.signed_prekey_id.to_be_bytes());
                match pending.one_time_prekey_id {
                    None => out.push(0),
                    Some(id) => {
                        out.push(1);
                        out.extend_from_slice(&id.to_be_bytes());
                    }
                }
                match &pending.kyber {
                    None => out.push(0),
                    Some((id, ciphertext)) => {
                        out.push(1);
                        out.extend_from_slice(&id.to_be_bytes());
                        out.extend_from_slice(ciphertext.as_bytes());
                    }
                }
            }
        }
        debug_assert_eq!(out.len(), len);
        out
    }

    /// Reads [`to_bytes`](Self::to_bytes) back, refusing anything it would not write.
    pub fn from_bytes(bytes: &[u8]) -> Result<Session, SessionError> {
        read_session(&mut Reader::new(bytes)).map_err(SessionError::BadSessionBytes)
    }

    fn decrypt_message(&mut self, message: &SignalMessage) -> Result<Vec<u8>, SessionError> {
        if message.version() != self.version {
            return Err(SessionError::VersionMismatch {
                session: self.version,
                message: message.version(),
            });
        }
        let plan = self
            .ratchet
            .plan_receive(message.ratchet_key(), message.counter())?;
        let mac = plan.keys.mac(
            &self.remote_identity,
            &self.local_identity,
            message.authenticated(),
        );
        if !bool::from(mac.ct_eq(message.mac())) {
            return Err(SessionError::BadMac);
        }
        let plaintext = plan
            .keys
            .decrypt(message.ciphertext())
            .ok_or(SessionError::BadCiphertext)?;
        self.ratchet.commit_receive(plan);
        self.pending_prekey = None;
        Ok(plaintext)
    }
}

const MAGIC: [u8; 4] = *b"ESig";
const FORMAT: u8 = 0x01;
const ROLE_INITIATOR: u8 = 0x01;
const ROLE_RESPONDER: u8 = 0x02;
/// Magic, format, version, role, two identities, two registration ids, base key.
const HEADER_LEN: usize = 4 + 1 + 1 + 1 + 32 + 32 + 4 + 4 + 32;

fn read_session(reader: &mut Reader<'_>) -> Result<Session, &'static str> {
    if reader.array::<4>()? != MAGIC {
        return Err("not a stored session (bad magic)");
    }
    if reader.u8()? != FORMAT {
        return Err("unknown format version");
    }
    let version = reader.u8()?;
    if version != VERSION_X3DH && version != VERSION_PQXDH {
        return Err("session version is neither 3 nor 4");
    }
    let initiator = match reader.u8()? {
        ROLE_INITIATOR => true,
        ROLE_RESPONDER => false,
        _ => return Err("unknown role"),
    };
    let local_identity = PublicKey::from_u(reader.array()?);
    let remote_identity = PublicKey::from_u(reader.array()?);
    let local_registration_id = reader.u32()?;
    let remote_registration_id = reader.u32()?;
    let base_key = PublicKey::from_u(reader.array()?);
    let ratchet = RatchetState::read(reader)?;
    let pending_prekey = match reader.u8()? {
        0 => None,
        1 if initiator => {
            let signed_prekey_id = reader.u32()?;
            let one_time_prekey_id = match reader.u8()? {
                0 => None,
                1 => Some(reader.u32()?),
                _ => return Err("bad one-time prekey flag"),
            };
            let kyber = match reader.u8()? {
                0 if version == VERSION_X3DH => None,
                1 if version == VERSION_PQXDH => {
                    let id = reader.u32()?;
                    let ciphertext = KemCiphertext::decode(reader.take(1 + CIPHERTEXT_LEN)?)
                        .map_err(|_| "bad Kyber ciphertext")?;
                    Some((id, ciphertext))
                }
                _ => return Err("Kyber fields do not match the session version"),
            };
            Some(PendingPreKey {
                one_time_prekey_id,
                signed_prekey_id,
                kyber,
            })
        }
        _ => return Err("bad pending PreKey flag"),
    };
    if !reader.is_empty() {
        return Err("trailing bytes");
    }
    Ok(Session {
        version,
        local_identity,
        remote_identity,
        local_registration_id,
        remote_registration_id,
        base_key,
        initiator,
        ratchet,
        pending_prekey,
    })
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            version,
            local_identity,
            remote_identity,
            local_registration_id,
            remote_registration_id,
            base_key,
            initiator,
            ratchet: _,
            pending_prekey,
        } = self;
        f.debug_struct("Session")
            .field("version", version)
            .field("local_identity", local_identity)
            .field("remote_identity", remote_identity)
            .field("local_registration_id", local_registration_id)
            .field("remote_registration_id", remote_registration_id)
            .field("base_key", base_key)
            .field("initiator", initiator)
            .field("awaiting_reply", &pending_prekey.is_some())
            .finish_non_exhaustive()
    }
}

fn info(message: &PreKeySignalMessage) -> PreKeyMessageInfo {
    PreKeyMessageInfo {
        version: message.version(),
        registration_id: message.registration_id(),
        identity_key: *message.identity_key(),
        base_key: *message.base_key(),
        one_time_prekey_id: message.pre_key_id(),
        signed_prekey_id: message.signed_pre_key_id(),
        kyber_prekey_id: message.kyber_pre_key_id(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::signal::pqxdh::KemPublicKey;
    use crate::signal::proto::SignalMessageProto;
    use crate::signal::ratchet::{
        MAX_FORWARD_JUMPS, MAX_MESSAGE_KEYS, MAX_RECEIVER_CHAINS, Sending,
    };
    use crate::signal::x3dh::KyberPreKey;
    use prost::Message;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// Bob's published keys and the store that holds their private halves.
    struct Bob {
        identity: IdentityKeyPair,
        signed: HashMap<u32, PrivateKey>,
        one_time: HashMap<u32, PrivateKey>,
        kyber: HashMap<u32, KemKeyPair>,
    }

    impl PreKeyStore for Bob {
        fn signed_prekey(&self, id: u32) -> Option<PrivateKey> {
            self.signed.get(&id).cloned()
        }
        fn one_time_prekey(&self, id: u32) -> Option<PrivateKey> {
            self.one_time.get(&id).cloned()
        }
        fn kyber_prekey(&self, id: u32) -> Option<KemKeyPair> {
            self.kyber.get(&id).cloned()
        }
    }

    impl Bob {
        fn new<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
            Self {
                identity: IdentityKeyPair::generate(rng),
                signed: HashMap::from([(11, PrivateKey::generate(rng))]),
                one_time: HashMap::from([(22, PrivateKey::generate(rng))]),
                kyber: HashMap::from([(33, KemKeyPair::generate(rng))]),
            }
        }

        fn bundle<R: RngCore + CryptoRng>(
            &self,
            one_time: bool,
            kyber: bool,
            rng: &mut R,
        ) -> PreKeyBundle {
            let signed_prekey = self.signed[&11].public_key();
            PreKeyBundle {
                registration_id: 4321,
                device_id: 1,
                identity_key: self.identity.public(),
                signed_prekey_id: 11,
                signed_prekey,
                signed_prekey_signature: self.identity.private().sign(&signed_prekey.encode(), rng),
                one_time_prekey: one_time.then(|| (22, self.one_time[&22].public_key())),
                kyber_prekey: kyber.then(|| {
                    let public = self.kyber[&33].public_key();
                    KyberPreKey {
                        id: 33,
                        signature: self.identity.private().sign(public.as_bytes(), rng),
                        public,
                    }
                }),
            }
        }
    }

    /// Alice and Bob after Alice's first message was accepted.
    struct Pair {
        alice: Session,
        bob: Session,
        rng: StdRng,
    }

    fn pair(one_time: bool, kyber: bool) -> Pair {
        pair_seeded(one_time, kyber, u64::from(one_time) * 2 + u64::from(kyber))
    }

    fn pair_seeded(one_time: bool, kyber: bool, seed: u64) -> Pair {
        let mut rng = StdRng::seed_from_u64(seed);
        let alice_identity = IdentityKeyPair::generate(&mut rng);
        let bob = Bob::new(&mut rng);
        let bundle = bob.bundle(one_time, kyber, &mut rng);
        let mut alice = Session::initiate(&alice_identity, 1234, &bundle, &mut rng).unwrap();
        let first = alice.encrypt(b"hello bob", &mut rng).unwrap();
        assert_eq!(first.kind, MessageKind::PreKey);
        let accepted =
            accept_prekey_message(&bob.identity, 4321, &bob, &first.bytes, &mut rng).unwrap();
        assert_eq!(accepted.plaintext, b"hello bob");
        Pair {
            alice,
            bob: accepted.session,
            rng,
        }
    }

    fn send(from: &mut Session, text: &[u8], rng: &mut StdRng) -> OutgoingMessage {
        from.encrypt(text, rng).unwrap()
    }

    fn recv(to: &mut Session, message: &OutgoingMessage) -> Vec<u8> {
        to.decrypt(message.kind, &message.bytes).unwrap()
    }

    /// Decrypting must fail with `expected` and leave the session as it was.
    fn refused(to: &mut Session, kind: MessageKind, bytes: &[u8], expected: SessionError) {
        let before = to.to_bytes();
        assert_eq!(to.decrypt(kind, bytes), Err(expected));
        assert_eq!(
            *to.to_bytes(),
            *before,
            "a failed decrypt changed the session"
        );
    }

    #[test]
    fn both_directions_in_all_four_set_ups() {
        for (one_time, kyber) in [(false, false), (true, false), (false, true), (true, true)] {
            let Pair {
                mut alice,
                mut bob,
                mut rng,
            } = pair(one_time, kyber);
            let version = if kyber { 4 } else { 3 };
            assert_eq!((alice.version(), bob.version()), (version, version));
            assert_eq!(alice.remote_identity(), bob.local_identity());
            assert_eq!(bob.remote_identity(), alice.local_identity());
            assert_eq!(alice.remote_registration_id(), 4321);
            assert_eq!(bob.remote_registration_id(), 1234);
            let reply = send(&mut bob, b"hi alice", &mut rng);
            assert_eq!(reply.kind, MessageKind::Whisper);
            assert_eq!(reply.bytes[0], (version << 4) | version);
            assert_eq!(recv(&mut alice, &reply), b"hi alice");
            let next = send(&mut alice, b"how are you", &mut rng);
            assert_eq!(next.kind, MessageKind::Whisper);
            assert_eq!(recv(&mut bob, &next), b"how are you");
        }
    }

    #[test]
    fn the_initiator_sends_prekey_messages_until_answered() {
        let mut rng = StdRng::seed_from_u64(5);
        let alice_identity = IdentityKeyPair::generate(&mut rng);
        let bob = Bob::new(&mut rng);
        let bundle = bob.bundle(true, true, &mut rng);
        let mut alice = Session::initiate(&alice_identity, 1234, &bundle, &mut rng).unwrap();
        let sent: Vec<_> = (0..3)
            .map(|i| send(&mut alice, format!("m{i}").as_bytes(), &mut rng))
            .collect();
        let infos: Vec<_> = sent
            .iter()
            .map(|m| {
                assert_eq!(m.kind, MessageKind::PreKey);
                peek_prekey_message(&m.bytes).unwrap()
            })
            .collect();
        assert!(infos.iter().all(|info| *info == infos[0]));
        assert_eq!(
            infos[0],
            PreKeyMessageInfo {
                version: 4,
                registration_id: 1234,
                identity_key: alice_identity.public(),
                base_key: *alice.base_key(),
                one_time_prekey_id: Some(22),
                signed_prekey_id: 11,
                kyber_prekey_id: Some(33),
            }
        );
        // Bob sets up from the second message; the others are PreKey messages of the
        // same session and decrypt normally, in any order.
        let mut accepted =
            accept_prekey_message(&bob.identity, 4321, &bob, &sent[1].bytes, &mut rng).unwrap();
        assert_eq!(accepted.plaintext, b"m1");
        assert_eq!(accepted.info, infos[1]);
        assert_eq!(recv(&mut accepted.session, &sent[2]), b"m2");
        assert_eq!(recv(&mut accepted.session, &sent[0]), b"m0");
        assert!(alice.awaiting_reply());
        let reply = send(&mut accepted.session, b"ok", &mut rng);
        assert_eq!(recv(&mut alice, &reply), b"ok");
        assert!(!alice.awaiting_reply());
        assert_eq!(
            send(&mut alice, b"now whisper", &mut rng).kind,
            MessageKind::Whisper
        );
    }

    #[test]
    fn interleaved_replies_turn_the_ratchet_every_time() {
        let Pair {
            mut alice,
            mut bob,
            mut rng,
        } = pair(true, true);
        let mut alice_keys = Vec::new();
        let mut bob_keys = Vec::new();
        for round in 0..6 {
            for i in 0..3 {
                let text = format!("bob {round}.{i}");
                let m = send(&mut bob, text.as_bytes(), &mut rng);
                bob_keys.push(*SignalMessage::decode(&m.bytes).unwrap().ratchet_key());
                assert_eq!(recv(&mut alice, &m), text.as_bytes());
            }
            for i in 0..2 {
                let text = format!("alice {round}.{i}");
                let m = send(&mut alice, text.as_bytes(), &mut rng);
                alice_keys.push(*SignalMessage::decode(&m.bytes).unwrap().ratchet_key());
                assert_eq!(recv(&mut bob, &m), text.as_bytes());
            }
        }
        // One ratchet key per turn, each new.
        bob_keys.dedup();
        alice_keys.dedup();
        assert_eq!(bob_keys.len(), 6);
        assert_eq!(alice_keys.len(), 6);
        let mut all = [bob_keys, alice_keys].concat();
        all.sort_by_key(|key| *key.u());
        all.dedup();
        assert_eq!(all.len(), 12);
    }

    #[test]
    fn out_of_order_within_a_chain() {
        let Pair {
            mut alice,
            mut bob,
            mut rng,
        } = pair(false, false);
        let messages: Vec<_> = (0..10).map(|i| send(&mut bob, &[i], &mut rng)).collect();
        for i in [9, 3, 0, 8, 1, 2, 7, 4, 6, 5] {
            assert_eq!(recv(&mut alice, &messages[i]), [i as u8]);
        }
        for message in &messages {
            assert!(matches!(
                alice.decrypt(message.kind, &message.bytes),
                Err(SessionError::Duplicate { .. })
            ));
        }
    }

    #[test]
    fn long_delayed_messages_from_old_chains_still_decrypt() {
        let Pair {
            mut alice,
            mut bob,
            mut rng,
        } = pair(true, false);
        // Bob's first chain: two delivered, two held back.
        let early: Vec<_> = (0..4).map(|i| send(&mut bob, &[i], &mut rng)).collect();
        assert_eq!(recv(&mut alice, &early[0]), [0]);
        assert_eq!(recv(&mut alice, &early[2]), [2]);
        // Alice's own first chain: one held back.
        let alice_late = send(&mut alice, b"late from alice", &mut rng);
        let answer = send(&mut alice, b"answer", &mut rng);
        assert_eq!(recv(&mut bob, &answer), b"answer");
        // Three more full turns of the ratchet.
        for turn in 0..3u8 {
            let m = send(&mut bob, &[100 + turn], &mut rng);
            assert_eq!(recv(&mut alice, &m), [100 + turn]);
            let m = send(&mut alice, &[200 + turn], &mut rng);
            assert_eq!(recv(&mut bob, &m), [200 + turn]);
        }
        // The held-back messages arrive now, several chains later.
        assert_eq!(recv(&mut alice, &early[3]), [3]);
        assert_eq!(recv(&mut alice, &early[1]), [1]);
        assert_eq!(recv(&mut bob, &alice_late), b"late from alice");
        let m = send(&mut bob, b"still fine", &mut rng);
        assert_eq!(recv(&mut alice, &m), b"still fine");
    }

    #[test]
    fn only_five_receiving_chains_are_kept() {
        let Pair {
            mut alice,
            mut bob,
            mut rng,
        } = pair(false, false);
        let held = send(&mut bob, b"held", &mut rng);
        let first = send(&mut bob, b"first", &mut rng);
        assert_eq!(recv(&mut alice, &first), b"first");
        for turn in 0..MAX_RECEIVER_CHAINS as u8 {
            let m = send(&mut alice, &[turn], &mut rng);
            recv(&mut bob, &m);
            let m = send(&mut bob, &[turn], &mut rng);
            recv(&mut alice, &m);
        }
        // Alice answers, so a new key from Bob would be expected again.
        send(&mut alice, b"answer", &mut rng);
        assert_eq!(alice.ratchet.receiver_chains.len(), MAX_RECEIVER_CHAINS);
        // Bob's first chain was dropped: its key looks new, and the root step with it
        // gives keys that do not verify.
        refused(&mut alice, held.kind, &held.bytes, SessionError::BadMac);
    }

    #[test]
    fn replays_are_duplicates_and_change_nothing() {
        let Pair {
            mut alice,
            mut bob,
            mut rng,
        } = pair(true, true);
        let m = send(&mut bob, b"once", &mut rng);
        assert_eq!(recv(&mut alice, &m), b"once");
        refused(
            &mut alice,
            m.kind,
            &m.bytes,
            SessionError::Duplicate { counter: 0 },
        );
        // A skipped key is used once too.
        let later: Vec<_> = (0..3).map(|i| send(&mut bob, &[i], &mut rng)).collect();
        recv(&mut alice, &later[2]);
        recv(&mut alice, &later[0]);
        refused(
            &mut alice,
            later[0].kind,
            &later[0].bytes,
            SessionError::Duplicate { counter: 1 },
        );
    }

    #[test]
    fn replayed_prekey_messages_are_duplicates() {
        let mut rng = StdRng::seed_from_u64(9);
        let alice_identity = IdentityKeyPair::generate(&mut rng);
        let bob = Bob::new(&mut rng);
        let bundle = bob.bundle(false, true, &mut rng);
        let mut alice = Session::initiate(&alice_identity, 1, &bundle, &mut rng).unwrap();
        let first = send(&mut alice, b"first", &mut rng);
        let mut accepted =
            accept_prekey_message(&bob.identity, 2, &bob, &first.bytes, &mut rng).unwrap();
        refused(
            &mut accepted.session,
            first.kind,
            &first.bytes,
            SessionError::Duplicate { counter: 0 },
        );
    }

    #[test]
    fn counters_too_far_ahead_are_refused() {
        let Pair {
            mut alice,
            mut bob,
            mut rng,
        } = pair(false, false);
        // A real message whose counter is moved: the jump is refused before the MAC
        // is even checked (as in libsignal), both on a new chain and an existing one.
        let m = send(&mut bob, b"x", &mut rng);
        let moved = |bytes: &[u8], counter: u32| {
            let body = &bytes[1..bytes.len() - 8];
            let mut proto = SignalMessageProto::decode(body).unwrap();
            proto.counter = Some(counter);
            let mut out = vec![bytes[0]];
            out.extend_from_slice(&proto.encode_to_vec());
            out.extend_from_slice(&bytes[bytes.len() - 8..]);
            out
        };
        let far = MAX_FORWARD_JUMPS + 1;
        refused(
            &mut alice,
            MessageKind::Whisper,
            &moved(&m.bytes, far),
            SessionError::TooFarAhead { counter: far },
        );
        assert_eq!(recv(&mut alice, &m), b"x");
        refused(
            &mut alice,
            MessageKind::Whisper,
            &moved(&m.bytes, 1 + far),
            SessionError::TooFarAhead { counter: 1 + far },
        );
        refused(
            &mut alice,
            MessageKind::Whisper,
            &moved(&m.bytes, u32::MAX),
            SessionError::TooFarAhead { counter: u32::MAX },
        );
    }

    #[test]
    fn a_jump_of_exactly_the_limit_is_accepted_and_keeps_2000_keys() {
        let Pair {
            mut alice,
            mut bob,
            mut rng,
        } = pair(false, false);
        let first = send(&mut bob, b"first", &mut rng);
        recv(&mut alice, &first);
        let mut held = Vec::new();
        let mut last = None;
        for i in 0..=MAX_FORWARD_JUMPS {
            let m = send(&mut bob, b"", &mut rng);
            if i == 10 || i == MAX_FORWARD_JUMPS - 5 {
                held.push(m);
            } else if i == MAX_FORWARD_JUMPS {
                last = Some(m);
            }
        }
        // Counter 25,001 on a chain at index 1: a jump of exactly 25,000.
        let last = last.unwrap();
        assert_eq!(
            SignalMessage::decode(&last.bytes).unwrap().counter(),
            1 + MAX_FORWARD_JUMPS
        );
        assert_eq!(recv(&mut alice, &last), b"");
        // Only the newest 2,000 skipped keys survive.
        let skipped = &alice.ratchet.receiver_chains.last().unwrap().skipped;
        assert_eq!(skipped.len(), MAX_MESSAGE_KEYS);
        refused(
            &mut alice,
            held[0].kind,
            &held[0].bytes,
            SessionError::Duplicate { counter: 11 },
        );
        assert_eq!(recv(&mut alice, &held[1]), b"");
    }

    #[test]
    fn tampering_gives_bad_mac_and_changes_nothing() {
        let Pair {
            mut alice,
            mut bob,
            mut rng,
        } = pair(true, false);
        for message in [send(&mut bob, b"tamper with me", &mut rng), {
            // Also on an existing chain.
            send(&mut bob, b"and me", &mut rng)
        }] {
            let bytes = &message.bytes;
            let mut mac = bytes.clone();
            *mac.last_mut().unwrap() ^= 1;
            refused(&mut alice, message.kind, &mac, SessionError::BadMac);
            let mut body = bytes.clone();
            let at = bytes.len() - 9; // last byte of the ciphertext
            body[at] ^= 0x80;
            refused(&mut alice, message.kind, &body, SessionError::BadMac);
            // Header fields that do not select keys are covered by the MAC too: the
            // version byte's low nibble and previous_counter.
            let mut version = bytes.clone();
            version[0] = 0x34;
            refused(&mut alice, message.kind, &version, SessionError::BadMac);
            let proto_end = bytes.len() - 8;
            let mut proto = SignalMessageProto::decode(&bytes[1..proto_end]).unwrap();
            proto.previous_counter = Some(99);
            let mut header = vec![bytes[0]];
            header.extend_from_slice(&proto.encode_to_vec());
            header.extend_from_slice(&bytes[proto_end..]);
            refused(&mut alice, message.kind, &header, SessionError::BadMac);
        }
        // Untouched, both still decrypt.
        let m = send(&mut bob, b"fine", &mut rng);
        assert_eq!(recv(&mut alice, &m), b"fine");
    }

    #[test]
    fn the_mac_covers_both_33_byte_identity_keys() {
        let Pair {
            mut alice,
            bob: _,
            mut rng,
        } = pair(false, false);
        let Sending::Ready { chain_key, .. } = &alice.ratchet.sending else {
            panic!("Alice can send");
        };
        let keys = chain_key.message_key_seed().derive();
        let m = send(&mut alice, b"mac me", &mut rng);
        let mut data = alice.local_identity().encode().to_vec();
        data.extend_from_slice(&alice.remote_identity().encode());
        let inner = PreKeySignalMessage::decode(&m.bytes).unwrap();
        let serialized = inner.message().serialized();
        data.extend_from_slice(&serialized[..serialized.len() - 8]);
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(keys.mac_key()).unwrap();
        hmac::Mac::update(&mut mac, &data);
        let full = hmac::Mac::finalize(mac).into_bytes();
        assert_eq!(&serialized[serialized.len() - 8..], &full[..8]);
        assert_eq!(
            keys.decrypt(inner.message().ciphertext()).unwrap(),
            b"mac me"
        );
    }

    #[test]
    fn bad_prekey_signatures_are_refused() {
        let mut rng = StdRng::seed_from_u64(3);
        let alice = IdentityKeyPair::generate(&mut rng);
        let bob = Bob::new(&mut rng);
        let mut bundle = bob.bundle(true, true, &mut rng);
        bundle.signed_prekey_signature[0] ^= 1;
        assert_eq!(
            Session::initiate(&alice, 1, &bundle, &mut rng).err(),
            Some(SessionError::BadSignature {
                kind: PreKeyKind::Signed,
                id: 11
            })
        );
        let mut bundle = bob.bundle(true, true, &mut rng);
        if let Some(kyber) = bundle.kyber_prekey.as_mut() {
            kyber.public =
                KemPublicKey::decode(&KemKeyPair::generate(&mut rng).public_key().encode())
                    .unwrap();
        }
        assert_eq!(
            Session::initiate(&alice, 1, &bundle, &mut rng).err(),
            Some(SessionError::BadSignature {
                kind: PreKeyKind::Kyber,
                id: 33
            })
        );
    }

    #[test]
    fn missing_prekeys_are_refused() {
        let mut rng = StdRng::seed_from_u64(4);
        let alice_identity = IdentityKeyPair::generate(&mut rng);
        let bob = Bob::new(&mut rng);
        let bundle = bob.bundle(true, true, &mut rng);
        let mut alice = Session::initiate(&alice_identity, 1, &bundle, &mut rng).unwrap();
        let first = send(&mut alice, b"first", &mut rng);
        for (kind, id) in [
            (PreKeyKind::Signed, 11),
            (PreKeyKind::OneTime, 22),
            (PreKeyKind::Kyber, 33),
        ] {
            let mut store = Bob::new(&mut rng);
            store.identity = bob.identity.clone();
            store.signed = bob.signed.clone();
            store.one_time = bob.one_time.clone();
            store.kyber = bob.kyber.clone();
            match kind {
                PreKeyKind::Signed => store.signed.clear(),
                PreKeyKind::OneTime => store.one_time.clear(),
                PreKeyKind::Kyber => store.kyber.clear(),
            }
            assert_eq!(
                accept_prekey_message(&bob.identity, 2, &store, &first.bytes, &mut rng).err(),
                Some(SessionError::MissingPreKey { kind, id })
            );
        }
        // The right ids with the wrong keys: the agreement differs, the MAC fails.
        let mut wrong = Bob::new(&mut rng);
        wrong.identity = bob.identity.clone();
        assert_eq!(
            accept_prekey_message(&bob.identity, 2, &wrong, &first.bytes, &mut rng).err(),
            Some(SessionError::BadMac)
        );
        assert!(accept_prekey_message(&bob.identity, 2, &bob, &first.bytes, &mut rng).is_ok());
    }

    #[test]
    fn prekey_messages_for_other_sessions_are_refused() {
        let Pair {
            mut alice,
            mut bob,
            mut rng,
        } = pair(false, true);
        let other = pair_seeded(false, true, 100);
        let mut other_alice = other.alice;
        let foreign = send(&mut other_alice, b"not yours", &mut rng);
        refused(
            &mut bob,
            foreign.kind,
            &foreign.bytes,
            SessionError::WrongSession,
        );
        // The initiator never takes PreKey messages, not even its own.
        let own = send(&mut alice, b"mine", &mut rng);
        refused(&mut alice, own.kind, &own.bytes, SessionError::WrongSession);
        // A PreKey message's SignalMessage sent as a Whisper message still decrypts.
        let inner = PreKeySignalMessage::decode(&own.bytes).unwrap();
        assert_eq!(
            bob.decrypt(MessageKind::Whisper, inner.message().serialized()),
            Ok(b"mine".to_vec())
        );
    }

    #[test]
    fn messages_of_another_version_are_refused() {
        let mut v3 = pair(false, false);
        let mut v4 = pair(false, true);
        let m = send(&mut v4.bob, b"v4", &mut v4.rng);
        refused(
            &mut v3.alice,
            m.kind,
            &m.bytes,
            SessionError::VersionMismatch {
                session: 3,
                message: 4,
            },
        );
        let mut garbage = m.bytes.clone();
        garbage[0] = 0x24;
        refused(
            &mut v3.alice,
            m.kind,
            &garbage,
            SessionError::UnsupportedVersion(2),
        );
        refused(
            &mut v3.alice,
            MessageKind::Whisper,
            &[0x33; 3],
            SessionError::Decode(MessageDecodeError::TooShort {
                what: "SignalMessage",
                min: 9,
                len: 3,
            }),
        );
    }

    #[test]
    fn a_new_ratchet_key_before_we_answered_is_refused() {
        let Pair {
            mut alice,
            mut bob,
            mut rng,
        } = pair(false, false);
        let m = send(&mut bob, b"turn", &mut rng);
        recv(&mut alice, &m);
        // Alice has not sent since Bob's new key; a message under yet another key
        // cannot be Bob's.
        let mut stranger = pair_seeded(false, false, 101);
        let foreign = send(&mut stranger.bob, b"?", &mut stranger.rng);
        refused(
            &mut alice,
            foreign.kind,
            &foreign.bytes,
            SessionError::UnexpectedRatchetKey,
        );
    }

    #[test]
    fn sessions_survive_storage_mid_conversation() {
        let Pair {
            mut alice,
            mut bob,
            mut rng,
        } = pair(true, true);
        // Alice still awaiting a reply, with Kyber fields pending.
        let restored = Session::from_bytes(&alice.to_bytes()).unwrap();
        assert_eq!(*restored.to_bytes(), *alice.to_bytes());
        assert!(restored.awaiting_reply());
        alice = restored;
        let held: Vec<_> = (0..5).map(|i| send(&mut bob, &[i], &mut rng)).collect();
        recv(&mut alice, &held[4]);
        recv(&mut alice, &held[1]);
        // Alice now has skipped keys and a ratchet turn due.
        assert!(matches!(
            alice.ratchet.sending,
            Sending::NeedsRatchet { .. }
        ));
        let stored = alice.to_bytes();
        let mut alice = Session::from_bytes(&stored).unwrap();
        assert_eq!(*alice.to_bytes(), *stored);
        for i in [0usize, 3, 2] {
            assert_eq!(recv(&mut alice, &held[i]), [i as u8]);
        }
        let m = send(&mut alice, b"after restore", &mut rng);
        let mut bob = Session::from_bytes(&bob.to_bytes()).unwrap();
        assert_eq!(recv(&mut bob, &m), b"after restore");
        let debug = format!("{bob:?}");
        assert!(debug.contains("Session") && debug.contains("version: 4"));
    }

    #[test]
    fn stored_sessions_are_checked() {
        let Pair {
            mut alice,
            mut bob,
            mut rng,
        } = pair(true, true);
        // A skipped key, so the stored form has every part.
        send(&mut bob, b"skipped", &mut rng);
        let m = send(&mut bob, b"x", &mut rng);
        recv(&mut alice, &m);
        let stored = alice.to_bytes().to_vec();
        for len in 0..stored.len() {
            assert!(
                Session::from_bytes(&stored[..len]).is_err(),
                "a prefix of {len} bytes was accepted"
            );
        }
        let mut trailing = stored.clone();
        trailing.push(0);
        assert_eq!(
            Session::from_bytes(&trailing).err(),
            Some(SessionError::BadSessionBytes("trailing bytes"))
        );
        let mut magic = stored.clone();
        magic[0] ^= 1;
        assert_eq!(
            Session::from_bytes(&magic).err(),
            Some(SessionError::BadSessionBytes(
                "not a stored session (bad magic)"
            ))
        );
        let mut version = stored.clone();
        version[5] = 5;
        assert_eq!(
            Session::from_bytes(&version).err(),
            Some(SessionError::BadSessionBytes(
                "session version is neither 3 nor 4"
            ))
        );
        let mut role = stored.clone();
        role[6] = 3;
        assert!(Session::from_bytes(&role).is_err());
        // The responder's session, with its sending key unclamped.
        let bob_stored = bob.to_bytes().to_vec();
        let sending_key_at = HEADER_LEN + 32 + 4 + 1;
        let mut unclamped = bob_stored.clone();
        unclamped[sending_key_at] |= 0x07;
        assert_eq!(
            Session::from_bytes(&unclamped).err(),
            Some(SessionError::BadSessionBytes(
                "the sending ratchet key is not clamped"
            ))
        );
        assert!(Session::from_bytes(&bob_stored).is_ok());
    }

    #[test]
    fn randomness_comes_only_from_the_caller() {
        // Same seed, same bytes: nothing draws from elsewhere.
        let run = || {
            let Pair {
                mut alice,
                mut bob,
                mut rng,
            } = pair(true, true);
            let a = send(&mut bob, b"1", &mut rng);
            recv(&mut alice, &a);
            let b = send(&mut alice, b"2", &mut rng);
            (a.bytes, b.bytes, alice.to_bytes().to_vec())
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn debug_shows_no_secrets() {
        let pair = pair(false, false);
        let shown = format!("{:?}", pair.alice);
        assert!(shown.contains("awaiting_reply: true"));
        assert!(!shown.contains(&hex::encode(pair.alice.ratchet.root_key.as_bytes())));
        assert!(!shown.contains(&format!("{:?}", pair.alice.ratchet.root_key.as_bytes())));
    }

    mod simulation {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Step {
            AliceSends,
            BobSends,
            /// Deliver the in-flight message at this position (modulo) to Bob.
            ToBob(usize),
            ToAlice(usize),
            /// Deliver an already delivered message again.
            ReplayToAlice(usize),
            Store,
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                3 => Just(Step::AliceSends),
                3 => Just(Step::BobSends),
                4 => any::<usize>().prop_map(Step::ToBob),
                4 => any::<usize>().prop_map(Step::ToAlice),
                1 => any::<usize>().prop_map(Step::ReplayToAlice),
                1 => Just(Step::Store),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]
            /// Any interleaving of sends, reordered deliveries, replays and storage:
            /// every message decrypts once to what was sent, replays are duplicates.
            #[test]
            fn reordered_network(
                seed in any::<u64>(),
                kyber in any::<bool>(),
                steps in prop::collection::vec(step(), 1..60),
            ) {
                let mut rng = StdRng::seed_from_u64(seed);
                let alice_identity = IdentityKeyPair::generate(&mut rng);
                let bob_keys = Bob::new(&mut rng);
                let bundle = bob_keys.bundle(true, kyber, &mut rng);
                let mut alice = Session::initiate(&alice_identity, 1, &bundle, &mut rng).unwrap();
                let mut bob: Option<Session> = None;
                let mut to_bob: Vec<(OutgoingMessage, Vec<u8>)> = Vec::new();
                let mut to_alice: Vec<(OutgoingMessage, Vec<u8>)> = Vec::new();
                let mut delivered_to_alice: Vec<OutgoingMessage> = Vec::new();
                let mut sequence = 0u32;
                for step in steps {
                    match step {
                        Step::AliceSends => {
                            sequence += 1;
                            let text = format!("a{sequence}").into_bytes();
                            to_bob.push((alice.encrypt(&text, &mut rng).unwrap(), text));
                        }
                        Step::BobSends => {
                            if let Some(bob) = bob.as_mut() {
                                sequence += 1;
                                let text = format!("b{sequence}").into_bytes();
                                to_alice.push((bob.encrypt(&text, &mut rng).unwrap(), text));
                            }
                        }
                        Step::ToBob(at) if !to_bob.is_empty() => {
                            let (message, text) = to_bob.remove(at % to_bob.len());
                            match bob.as_mut() {
                                Some(bob) => {
                                    let decrypted = bob.decrypt(message.kind, &message.bytes);
                                    prop_assert_eq!(decrypted, Ok(text));
                                }
                                None => {
                                    prop_assert_eq!(message.kind, MessageKind::PreKey);
                                    let accepted = accept_prekey_message(
                                        &bob_keys.identity,
                                        2,
                                        &bob_keys,
                                        &message.bytes,
                                        &mut rng,
                                    )
                                    .unwrap();
                                    prop_assert_eq!(accepted.plaintext, text);
                                    bob = Some(accepted.session);
                                }
                            }
                        }
                        Step::ToAlice(at) if !to_alice.is_empty() => {
                            let (message, text) = to_alice.remove(at % to_alice.len());
                            prop_assert_eq!(alice.decrypt(message.kind, &message.bytes), Ok(text));
                            delivered_to_alice.push(message);
                        }
                        Step::ReplayToAlice(at) if !delivered_to_alice.is_empty() => {
                            let message = &delivered_to_alice[at % delivered_to_alice.len()];
                            let before = alice.to_bytes();
                            let replayed = alice.decrypt(message.kind, &message.bytes);
                            let duplicate = matches!(replayed, Err(SessionError::Duplicate { .. }));
                            prop_assert!(duplicate, "a replay was not a duplicate");
                            prop_assert_eq!(&*alice.to_bytes(), &*before);
                        }
                        Step::Store => {
                            alice = Session::from_bytes(&alice.to_bytes()).unwrap();
                            if let Some(session) = bob.as_ref() {
                                bob = Some(Session::from_bytes(&session.to_bytes()).unwrap());
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
