//! The Signal-compatible two-party channel: the provider's key directory (prekey
//! bundles), capability negotiation, sender certificates and sealed-sender delivery,
//! as JSON bodies of the client API and of Entente's federation extension.
//!
//! Client API (signed like every client request, see [`crate::api`]):
//! - `POST /v1/signal/prekeys` [`PreKeyUpload`] -> [`PreKeyStatus`]; `GET` -> [`PreKeyStatus`].
//! - `GET /v1/signal/bundles/{user}` -> [`UserBundles`]: claims one bundle per device of
//!   the user (a one-time prekey and a one-time ML-KEM prekey each, never served twice).
//! - `GET /v1/capabilities/{user}` -> [`Capabilities`]; `POST /v1/capabilities`
//!   [`SetProtocols`] -> [`ClientCapabilities`].
//! - `POST /v1/signal/sender-certificate` [`SenderCertificateRequest`] ->
//!   [`SenderCertificateResponse`].
//! - `POST /v1/signal/messages` [`SealedSend`] -> [`SealedSendResult`], or `409`
//!   [`MismatchedDevices`].
//!
//! A sealed message reaches the recipient's inbox as an item whose `room` is
//! [`SEALED_INBOX`] and whose payload is the sealed bytes: nothing else, in
//! particular nothing that names the sender.
//!
//! Keys travel in libsignal's serialised forms: an X25519 public key is 33 bytes
//! (`0x05 || u`), an ML-KEM-1024 public key is a key-type byte then the 1568-byte
//! encapsulation key, signatures are 64-byte XEdDSA signatures by the identity key
//! over the serialised public key. The `validate` functions check lengths, counts
//! and identifiers and name the offending field; signatures are checked by the
//! provider, which has the crypto.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::{ClientId, UserId};

/// The `room` of a sealed-sender inbox item.
pub const SEALED_INBOX: &str = "entente:sealed";

/// libsignal's key-type byte of Curve25519 public keys.
pub const KEY_TYPE_DJB: u8 = 0x05;
/// An X25519 public key: `0x05 || u`.
pub const PUBLIC_KEY_LEN: usize = 33;
/// An ML-KEM-1024 public key: a key-type byte, then the 1568-byte encapsulation key.
/// The provider checks the length only; the type byte is the client library's.
pub const KEM_PUBLIC_KEY_LEN: usize = 1 + 1568;
/// An XEdDSA signature.
pub const SIGNATURE_LEN: usize = 64;
/// Most one-time prekeys of each kind (classic, ML-KEM) in one upload.
pub const MAX_PREKEYS_PER_UPLOAD: usize = 100;
/// Most one-time prekeys of each kind a provider keeps for one client.
pub const MAX_PREKEYS_HELD: u32 = 1000;
/// libsignal's device ids are 1 to 127.
pub const MAX_DEVICE_ID: u32 = 127;
/// libsignal's registration ids are 14 bits (and never 0).
pub const MAX_REGISTRATION_ID: u32 = 0x3FFF;
/// Largest sealed message (the sealed-sender envelope, certificate included).
pub const MAX_SEALED_BYTES: usize = 256 * 1024;
/// Most recipient devices in one [`SealedSend`] or [`SealedDelivery`].
pub const MAX_SEALED_MESSAGES: usize = 64;
/// Most protocol names a client may declare, and their longest length.
pub const MAX_PROTOCOLS: usize = 16;
pub const MAX_PROTOCOL_NAME_LEN: usize = 32;
/// The protocol names of [`ClientCapabilities`].
pub const PROTOCOL_MLS10: &str = "mls10";
pub const PROTOCOL_SIGNAL: &str = "signal";
/// `code` of the `409` answer to a [`SealedSend`] whose device list is not the
/// recipient's.
pub const MISMATCHED_DEVICES: &str = "mismatched_devices";

/// What is wrong with a body. The sender (a client, or a peer provider) is at fault;
/// the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalWireError {
    #[error(
        "{field}: an X25519 public key is {PUBLIC_KEY_LEN} bytes (0x05 then 32 bytes of u), got {got}"
    )]
    PublicKeyLength { field: String, got: usize },
    #[error("{field}: public key type 0x{got:02x}; only 0x05 (Curve25519) is defined")]
    PublicKeyType { field: String, got: u8 },
    #[error(
        "{field}: an ML-KEM-1024 public key is {KEM_PUBLIC_KEY_LEN} bytes (a key-type byte then 1568 bytes), got {got}"
    )]
    KemPublicKeyLength { field: String, got: usize },
    #[error("{field}: an XEdDSA signature is {SIGNATURE_LEN} bytes, got {got}")]
    SignatureLength { field: String, got: usize },
    #[error("{field}: at most {max} in one request, got {got}")]
    TooMany {
        field: &'static str,
        max: usize,
        got: usize,
    },
    #[error("{field}: id {id} appears more than once")]
    DuplicateId { field: &'static str, id: u32 },
    #[error("device_id must be 1 to {MAX_DEVICE_ID} (libsignal's range), got {0}")]
    DeviceId(u32),
    #[error(
        "registration_id must be 1 to {MAX_REGISTRATION_ID} (14 bits, as libsignal makes them), got {0}"
    )]
    RegistrationId(u32),
    #[error("{field}: {reason}")]
    Identifier { field: String, reason: String },
    #[error("{field}: {client} is not a device of {user}")]
    ForeignClient {
        field: String,
        client: String,
        user: String,
    },
    #[error("{field}: {client} is listed more than once")]
    DuplicateClient { field: String, client: String },
    #[error("{field} is empty")]
    Empty { field: String },
    #[error("{field}: {got} bytes, more than the {max} allowed")]
    TooLarge {
        field: String,
        max: usize,
        got: usize,
    },
    #[error(
        "protocols[{index}]: {name:?} is not a protocol name (1 to {MAX_PROTOCOL_NAME_LEN} of a-z, 0-9, '.', '-', e.g. \"mls10\", \"signal\")"
    )]
    ProtocolName { index: usize, name: String },
}

/// A signed prekey: an X25519 key signed (XEdDSA) by the identity key over its
/// 33-byte encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedPreKey {
    pub id: u32,
    #[serde(with = "b64")]
    pub public: Vec<u8>,
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}

/// An ML-KEM-1024 prekey signed (XEdDSA) by the identity key over its serialised
/// public key, one-time or last-resort.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KyberPreKey {
    pub id: u32,
    #[serde(with = "b64")]
    pub public: Vec<u8>,
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}

/// The name the issue-5 contract uses for [`KyberPreKey`].
pub type KyberPreKeyJson = KyberPreKey;

/// A one-time X25519 prekey (unsigned, as in Signal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneTimePreKey {
    pub id: u32,
    #[serde(with = "b64")]
    pub public: Vec<u8>,
}

/// `POST /v1/signal/prekeys`: publishes the calling client's Signal identity and
/// prekeys. One-time prekeys are added to those the provider holds; a signed or
/// last-resort prekey replaces the previous one. A changed identity key,
/// registration id or device id is a reset: the provider forgets every prekey of
/// the old identity, and the upload must carry a signed prekey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreKeyUpload {
    #[serde(with = "b64")]
    pub identity_key: Vec<u8>,
    pub registration_id: u32,
    pub device_id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_prekey: Option<SignedPreKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_resort_kyber_prekey: Option<KyberPreKey>,
    #[serde(default)]
    pub one_time_prekeys: Vec<OneTimePreKey>,
    #[serde(default)]
    pub kyber_prekeys: Vec<KyberPreKey>,
}

impl PreKeyUpload {
    /// Checks lengths, key types, counts, ids and ranges (not signatures).
    pub fn validate(&self) -> Result<(), SignalWireError> {
        check_public_key("identity_key", &self.identity_key)?;
        if self.registration_id == 0 || self.registration_id > MAX_REGISTRATION_ID {
            return Err(SignalWireError::RegistrationId(self.registration_id));
        }
        check_device_id(self.device_id)?;
        if let Some(k) = &self.signed_prekey {
            check_signed_prekey("signed_prekey", k)?;
        }
        if let Some(k) = &self.last_resort_kyber_prekey {
            check_kyber_prekey("last_resort_kyber_prekey", k)?;
        }
        check_count("one_time_prekeys", self.one_time_prekeys.len())?;
        check_count("kyber_prekeys", self.kyber_prekeys.len())?;
        let mut ids = BTreeSet::new();
        for (i, k) in self.one_time_prekeys.iter().enumerate() {
            check_public_key(&format!("one_time_prekeys[{i}].public"), &k.public)?;
            if !ids.insert(k.id) {
                return Err(SignalWireError::DuplicateId {
                    field: "one_time_prekeys",
                    id: k.id,
                });
            }
        }
        // One-time and last-resort ML-KEM prekeys share one id space (libsignal's
        // KyberPreKeyStore), so the last-resort id may not repeat a one-time one.
        let mut ids = BTreeSet::new();
        for (i, k) in self.kyber_prekeys.iter().enumerate() {
            check_kyber_prekey(&format!("kyber_prekeys[{i}]"), k)?;
            if !ids.insert(k.id) {
                return Err(SignalWireError::DuplicateId {
                    field: "kyber_prekeys",
                    id: k.id,
                });
            }
        }
        if let Some(k) = &self.last_resort_kyber_prekey
            && ids.contains(&k.id)
        {
            return Err(SignalWireError::DuplicateId {
                field: "last_resort_kyber_prekey",
                id: k.id,
            });
        }
        Ok(())
    }
}

/// The answer to [`PreKeyUpload`] and to `GET /v1/signal/prekeys`: what the
/// provider holds for the calling client, so that it knows when to replenish.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreKeyStatus {
    /// Unclaimed one-time X25519 prekeys.
    pub one_time_prekeys: u32,
    /// Unclaimed one-time ML-KEM prekeys (the last-resort one not counted).
    pub kyber_prekeys: u32,
    pub signed_prekey: bool,
    #[serde(default)]
    pub last_resort_kyber_prekey: bool,
}

/// One device's prekey bundle, as claimed: the one-time prekeys in it are never
/// handed out again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceBundle {
    /// The device's client URI (`mimi://b.example/d/bob/phone`).
    pub client: String,
    pub device_id: u32,
    pub registration_id: u32,
    #[serde(with = "b64")]
    pub identity_key: Vec<u8>,
    pub signed_prekey: SignedPreKey,
    /// A one-time ML-KEM prekey, or the last-resort one when those ran out; absent
    /// only if the device published none (then only X3DH, version 3, is possible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kyber_prekey: Option<KyberPreKey>,
    /// Absent when the device's one-time prekeys ran out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_prekey: Option<OneTimePreKey>,
}

impl DeviceBundle {
    /// Checks the bundle's keys and that it is a device of `user`. `field` names the
    /// bundle in errors.
    pub fn validate(&self, user: &UserId, field: &str) -> Result<ClientId, SignalWireError> {
        let client = device_of(user, &format!("{field}.client"), &self.client)?;
        check_device_id(self.device_id)?;
        check_public_key(&format!("{field}.identity_key"), &self.identity_key)?;
        check_signed_prekey(&format!("{field}.signed_prekey"), &self.signed_prekey)?;
        if let Some(k) = &self.kyber_prekey {
            check_kyber_prekey(&format!("{field}.kyber_prekey"), k)?;
        }
        if let Some(k) = &self.one_time_prekey {
            check_public_key(&format!("{field}.one_time_prekey.public"), &k.public)?;
        }
        Ok(client)
    }
}

/// `GET /v1/signal/bundles/{user}`: a bundle for each of the user's devices that
/// published a signed prekey. The device list is the recipient's current one: a
/// [`SealedSend`] to these devices is not answered [`MismatchedDevices`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserBundles {
    /// The user's URI.
    pub user: String,
    pub devices: Vec<DeviceBundle>,
}

impl UserBundles {
    /// Checks every bundle, that each is a distinct device of `user`, and that the
    /// answer is about `user` (for answers from another provider).
    pub fn validate(&self, user: &UserId) -> Result<(), SignalWireError> {
        if self.user != user.to_string() {
            return Err(SignalWireError::Identifier {
                field: "user".into(),
                reason: format!("the answer is about {}, not {user}", self.user),
            });
        }
        let mut seen = BTreeSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            let field = format!("devices[{i}]");
            let client = d.validate(user, &field)?;
            if !seen.insert(client.to_string()) {
                return Err(SignalWireError::DuplicateClient {
                    field,
                    client: client.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// `GET /v1/capabilities/{user}`: what the user's provider and devices speak, so a
/// sender can choose between a MIMI room (every device speaks `mls10` and the
/// provider offers rooms) and the Signal channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub user: String,
    /// The provider hosts and follows MLS rooms (MIMI) for its users.
    pub provider_rooms: bool,
    /// The provider serves the Signal channel (key directory, sealed delivery).
    pub provider_signal: bool,
    pub clients: Vec<ClientCapabilities>,
}

/// One device's protocols: [`PROTOCOL_MLS10`] if it said so (by default, if it
/// uploaded KeyPackages), [`PROTOCOL_SIGNAL`] if it has a signed prekey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCapabilities {
    pub client: String,
    pub protocols: Vec<String>,
}

/// `POST /v1/capabilities`: the protocols the calling client speaks. `signal` is
/// reported only while the client also has a signed prekey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetProtocols {
    pub protocols: Vec<String>,
}

impl SetProtocols {
    /// Checks the names; returns them sorted, without repeats.
    pub fn validate(&self) -> Result<Vec<String>, SignalWireError> {
        if self.protocols.len() > MAX_PROTOCOLS {
            return Err(SignalWireError::TooMany {
                field: "protocols",
                max: MAX_PROTOCOLS,
                got: self.protocols.len(),
            });
        }
        for (index, name) in self.protocols.iter().enumerate() {
            let valid = !name.is_empty()
                && name.len() <= MAX_PROTOCOL_NAME_LEN
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                });
            if !valid {
                return Err(SignalWireError::ProtocolName {
                    index,
                    name: name.chars().take(64).collect(),
                });
            }
        }
        let set: BTreeSet<&String> = self.protocols.iter().collect();
        Ok(set.into_iter().cloned().collect())
    }
}

/// `POST /v1/signal/sender-certificate`: the identity key must be the one the
/// client published with its prekeys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderCertificateRequest {
    #[serde(with = "b64")]
    pub identity_key: Vec<u8>,
}

impl SenderCertificateRequest {
    pub fn validate(&self) -> Result<(), SignalWireError> {
        check_public_key("identity_key", &self.identity_key)
    }
}

/// A sender certificate (`entente_core::signal::sealed_sender::SenderCertificate`
/// encoded), signed by the provider's issuer key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderCertificateResponse {
    #[serde(with = "b64")]
    pub certificate: Vec<u8>,
    /// When it expires, milliseconds since the UNIX epoch.
    pub expires_ms: u64,
}

/// One device's sealed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedMessage {
    /// The recipient device's client URI.
    pub client: String,
    /// The sealed-sender envelope.
    #[serde(with = "b64")]
    pub sealed: Vec<u8>,
}

/// `POST /v1/signal/messages`: one message sealed to each of the recipient's
/// devices. The request is signed by the sender's client, as every request is, but
/// the provider keeps nothing of who sent it: the recipient's inbox item and, for
/// a remote recipient, the federation request carry only the recipient device and
/// the sealed bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedSend {
    /// The recipient user (URI or `bob@b.example`).
    pub recipient: String,
    pub messages: Vec<SealedMessage>,
}

impl SealedSend {
    /// Checks the recipient, that every message is for a distinct device of it, and
    /// the sizes. Returns the recipient and the devices in message order.
    pub fn validate(&self) -> Result<(UserId, Vec<ClientId>), SignalWireError> {
        let user = UserId::parse_any(&self.recipient).map_err(|e| SignalWireError::Identifier {
            field: "recipient".into(),
            reason: e.to_string(),
        })?;
        let clients = check_messages(&self.messages, Some(&user))?;
        Ok((user, clients))
    }
}

/// The answer to an accepted [`SealedSend`]: stored durably, for local devices in
/// their inboxes, for remote ones in the outbound queue to their provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSendResult {
    pub accepted: u32,
}

/// The `409` answer to a [`SealedSend`] whose devices are not the recipient's
/// current ones: fetch bundles for `missing`, drop sessions with `stale`, resend.
/// Its `code` is [`MISMATCHED_DEVICES`]; it reads as an `ApiError` too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MismatchedDevices {
    pub code: String,
    pub message: String,
    /// Current devices of the recipient the request has no message for.
    pub missing: Vec<String>,
    /// Listed devices that are not (or no longer) the recipient's.
    pub stale: Vec<String>,
}

/// Federation: `POST /entente/v1/signal/messages` from the sender's provider to the
/// recipients' provider. Recipient devices and sealed bytes only, never the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedDelivery {
    pub messages: Vec<SealedMessage>,
}

impl SealedDelivery {
    /// Checks that every device is distinct and on one domain, and the sizes.
    pub fn validate(&self) -> Result<Vec<ClientId>, SignalWireError> {
        let clients = check_messages(&self.messages, None)?;
        if let Some(first) = clients.first()
            && let Some(other) = clients.iter().find(|c| c.domain() != first.domain())
        {
            return Err(SignalWireError::Identifier {
                field: "messages".into(),
                reason: format!(
                    "devices of {} and {} in one delivery: a delivery goes to one provider",
                    first.domain(),
                    other.domain()
                ),
            });
        }
        Ok(clients)
    }
}

fn check_messages(
    messages: &[SealedMessage],
    user: Option<&UserId>,
) -> Result<Vec<ClientId>, SignalWireError> {
    if messages.is_empty() {
        return Err(SignalWireError::Empty {
            field: "messages".into(),
        });
    }
    if messages.len() > MAX_SEALED_MESSAGES {
        return Err(SignalWireError::TooMany {
            field: "messages",
            max: MAX_SEALED_MESSAGES,
            got: messages.len(),
        });
    }
    let mut seen = BTreeSet::new();
    let mut clients = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let field = format!("messages[{i}].client");
        let client = match user {
            Some(user) => device_of(user, &field, &m.client)?,
            None => ClientId::parse_uri(&m.client).map_err(|e| SignalWireError::Identifier {
                field: field.clone(),
                reason: e.to_string(),
            })?,
        };
        if !seen.insert(client.to_string()) {
            return Err(SignalWireError::DuplicateClient {
                field,
                client: client.to_string(),
            });
        }
        if m.sealed.is_empty() {
            return Err(SignalWireError::Empty {
                field: format!("messages[{i}].sealed"),
            });
        }
        if m.sealed.len() > MAX_SEALED_BYTES {
            return Err(SignalWireError::TooLarge {
                field: format!("messages[{i}].sealed"),
                max: MAX_SEALED_BYTES,
                got: m.sealed.len(),
            });
        }
        clients.push(client);
    }
    Ok(clients)
}

/// Parses `client` and checks it is a device of `user`.
fn device_of(user: &UserId, field: &str, client: &str) -> Result<ClientId, SignalWireError> {
    let id = ClientId::parse_uri(client).map_err(|e| SignalWireError::Identifier {
        field: field.to_owned(),
        reason: e.to_string(),
    })?;
    if id.user() != user {
        return Err(SignalWireError::ForeignClient {
            field: field.to_owned(),
            client: id.to_string(),
            user: user.to_string(),
        });
    }
    Ok(id)
}

/// Checks an X25519 public key in libsignal's form, `0x05 || u`.
pub fn check_public_key(field: &str, key: &[u8]) -> Result<(), SignalWireError> {
    if key.len() != PUBLIC_KEY_LEN {
        return Err(SignalWireError::PublicKeyLength {
            field: field.to_owned(),
            got: key.len(),
        });
    }
    match key.first() {
        Some(&KEY_TYPE_DJB) => Ok(()),
        Some(&got) => Err(SignalWireError::PublicKeyType {
            field: field.to_owned(),
            got,
        }),
        None => Err(SignalWireError::PublicKeyLength {
            field: field.to_owned(),
            got: 0,
        }),
    }
}

/// Checks the length of an ML-KEM-1024 public key (type byte and key).
pub fn check_kem_public_key(field: &str, key: &[u8]) -> Result<(), SignalWireError> {
    if key.len() != KEM_PUBLIC_KEY_LEN {
        return Err(SignalWireError::KemPublicKeyLength {
            field: field.to_owned(),
            got: key.len(),
        });
    }
    Ok(())
}

/// Checks the length of an XEdDSA signature.
pub fn check_signature(field: &str, signature: &[u8]) -> Result<(), SignalWireError> {
    if signature.len() != SIGNATURE_LEN {
        return Err(SignalWireError::SignatureLength {
            field: field.to_owned(),
            got: signature.len(),
        });
    }
    Ok(())
}

fn check_signed_prekey(field: &str, k: &SignedPreKey) -> Result<(), SignalWireError> {
    check_public_key(&format!("{field}.public"), &k.public)?;
    check_signature(&format!("{field}.signature"), &k.signature)
}

fn check_kyber_prekey(field: &str, k: &KyberPreKey) -> Result<(), SignalWireError> {
    check_kem_public_key(&format!("{field}.public"), &k.public)?;
    check_signature(&format!("{field}.signature"), &k.signature)
}

fn check_device_id(device_id: u32) -> Result<(), SignalWireError> {
    if device_id == 0 || device_id > MAX_DEVICE_ID {
        return Err(SignalWireError::DeviceId(device_id));
    }
    Ok(())
}

fn check_count(field: &'static str, got: usize) -> Result<(), SignalWireError> {
    if got > MAX_PREKEYS_PER_UPLOAD {
        return Err(SignalWireError::TooMany {
            field,
            max: MAX_PREKEYS_PER_UPLOAD,
            got,
        });
    }
    Ok(())
}

/// Base64 for bytes inside JSON, as [`crate::api::b64`] writes it; reading also
/// accepts strings that are not borrowable from the input (a JSON escape such as
/// `\/`, or a `serde_json::Value`).
mod b64 {
    use std::borrow::Cow;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        crate::api::b64::serialize(bytes, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = Cow::<'de, str>::deserialize(d)?;
        crate::api::b64::decode(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
