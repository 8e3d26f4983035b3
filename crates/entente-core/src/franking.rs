//! Message franking (draft-ietf-mimi-protocol-06 section 5.4.1) and the checks behind
//! abuse reports (section 5.9), sans-IO.
//!
//! Who computes what:
//!
//! | party    | computes | with |
//! |----------|----------|------|
//! | sender   | [`franking_tag`], carried in the MLS AAD as a Safe AAD item ([`frank_aad`]) | the content's salt |
//! | hub      | [`frank`]: `server_frank` and its `franking_integrity_signature` | `hub_key`, its issuer key |
//! | receiver | [`verify_received`] | the hub's pinned issuer key |
//! | hub      | [`verify_reported`] (a report names a message) | `hub_key`, its issuer key |
//!
//! The franking signature key is the hub's *issuer key* (Ed25519, the signature
//! scheme of our only cipher suite), which every client already pins per domain; the
//! label `"FrankingIntegrityTBS"` separates these signatures from the issuer key's
//! other uses (certificates, GroupInfo responses).
//!
//! The sender and room claims are keys 1 (`senderUri`) and 2 (`roomUri`) of the MIMI
//! content's extensions map (draft-ietf-mimi-content section 8.3, protocol-06 section
//! 5.4.1.1); [`claims`] reads them.

use ed25519_dalek::{Signature, VerifyingKey};
use entente_wire::content::MimiContent;
use entente_wire::ids::{RoomId, UserId};
use entente_wire::mimi::{
    AbusiveMessage, Frank, FrankAAD, FrankingIntegrityTBS, IdentifierUri, ServerFrankingContext,
};
use hmac::{Hmac, Mac};
use openmls::prelude::VerifiableCiphersuite;
use sha2::{Digest, Sha256};
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};
use zeroize::Zeroize;

use crate::identity::{IssuerKey, IssuerPublicKey};

/// The `frank_aad` Safe AAD component (protocol-06 section 5.4.1, IANA "MLS
/// Component Types").
pub const FRANK_AAD_COMPONENT_ID: u16 = 0x0020;

/// The label of the franking integrity signature.
pub const FRANKING_INTEGRITY_LABEL: &str = "FrankingIntegrityTBS";

/// Most items a Safe AAD may hold when we decode it (there is one component we use).
const MAX_SAFE_AAD_ITEMS: usize = 64;

/// Why franking or a franking check failed. Every variant is a refusal: nothing
/// here is transient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrankingError {
    #[error("the MLS additional authenticated data is not a valid Safe AAD: {0}")]
    SafeAad(String),
    #[error("the message content is not valid MIMI content: {0}")]
    Content(String),
    #[error("the message content carries no {0} claim (extensions key 1 or 2)")]
    MissingClaim(&'static str),
    #[error("the message content's {field} claim is not a valid URI: {reason}")]
    BadClaim { field: &'static str, reason: String },
    #[error("the franking tag does not match the message content")]
    TagMismatch,
    #[error("the content claims sender {claimed}, but MLS authenticated {actual}")]
    SenderMismatch { claimed: String, actual: String },
    #[error("the content claims room {claimed}, but the message belongs to {actual}")]
    RoomMismatch { claimed: String, actual: String },
    #[error("the frank names cipher suite {found:#06x}, the room uses {expected:#06x}")]
    Ciphersuite { found: u16, expected: u16 },
    #[error("the server frank does not match: not franked by this hub, or altered")]
    ServerFrankMismatch,
    #[error("the franking integrity signature does not verify")]
    BadSignature,
    #[error("encoding failed: {0}")]
    Encode(String),
}

// ------------------------------------------------------------------ Safe AAD

/// One Safe AAD item (draft-ietf-mls-extensions section 4.9, "Safe Additional
/// Authenticated Data"; `ComponentID` is a `uint16`, section 4.6):
///
/// ```text
/// struct {
///   ComponentID component_id;
///   opaque aad_item_data<V>;
/// } SafeAADItem;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct SafeAadItem {
    pub component_id: u16,
    pub aad_item_data: VLBytes,
}

/// The Safe AAD at the start of an MLS message's `authenticated_data`
/// (draft-ietf-mls-extensions section 4.9; OpenMLS 0.9.2 implements the same layout
/// in `framing/safe_aad.rs` behind its extensions feature):
///
/// ```text
/// struct {
///   SafeAADItem aad_items<V>;
/// } SafeAAD;
/// ```
///
/// Items are sorted by `component_id`, strictly increasing (no duplicates);
/// [`SafeAad::new`] and [`SafeAad::decode`] enforce it. The draft lets
/// application-specific bytes follow the SafeAAD; [`SafeAad::decode`] accepts them
/// and ignores them (they are not ours to judge).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SafeAad {
    items: Vec<SafeAadItem>,
}

impl SafeAad {
    /// A Safe AAD of `items`, which must be sorted by strictly increasing component ID.
    pub fn new(items: Vec<SafeAadItem>) -> Result<Self, FrankingError> {
        check_sorted(&items)?;
        Ok(Self { items })
    }

    pub fn items(&self) -> &[SafeAadItem] {
        &self.items
    }

    /// The data of `component_id`'s item, if present.
    pub fn get(&self, component_id: u16) -> Option<&[u8]> {
        self.items
            .iter()
            .find(|i| i.component_id == component_id)
            .map(|i| i.aad_item_data.as_slice())
    }

    /// Decodes the SafeAAD at the start of `aad`; bytes after it are ignored.
    pub fn decode(aad: &[u8]) -> Result<Self, FrankingError> {
        let mut reader: &[u8] = aad;
        let items = Vec::<SafeAadItem>::tls_deserialize(&mut reader)
            .map_err(|e| FrankingError::SafeAad(e.to_string()))?;
        if items.len() > MAX_SAFE_AAD_ITEMS {
            return Err(FrankingError::SafeAad(format!(
                "{} items (at most {MAX_SAFE_AAD_ITEMS})",
                items.len()
            )));
        }
        Self::new(items)
    }

    pub fn encode(&self) -> Result<Vec<u8>, FrankingError> {
        let mut out = Vec::with_capacity(self.items.tls_serialized_len());
        self.items
            .tls_serialize(&mut out)
            .map_err(|e| FrankingError::Encode(e.to_string()))?;
        Ok(out)
    }
}

fn check_sorted(items: &[SafeAadItem]) -> Result<(), FrankingError> {
    for w in items.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.component_id >= b.component_id {
            return Err(FrankingError::SafeAad(format!(
                "items must be sorted by strictly increasing component ID; {:#06x} follows {:#06x}",
                b.component_id, a.component_id
            )));
        }
    }
    Ok(())
}

/// The MLS `authenticated_data` a sender sets: a Safe AAD with one `frank_aad` item.
pub fn frank_aad(franking_tag: &[u8; 32]) -> Result<Vec<u8>, FrankingError> {
    let data = FrankAAD {
        franking_tag: *franking_tag,
    }
    .encode()
    .map_err(|e| FrankingError::Encode(e.to_string()))?;
    SafeAad::new(vec![SafeAadItem {
        component_id: FRANK_AAD_COMPONENT_ID,
        aad_item_data: data.into(),
    }])?
    .encode()
}

/// The franking tag in an MLS message's `authenticated_data`: `None` if the AAD is
/// empty or has no `frank_aad` item; an error if it is not a valid Safe AAD.
pub fn franking_tag_in_aad(aad: &[u8]) -> Result<Option<[u8; 32]>, FrankingError> {
    if aad.is_empty() {
        return Ok(None);
    }
    let safe = SafeAad::decode(aad)?;
    match safe.get(FRANK_AAD_COMPONENT_ID) {
        None => Ok(None),
        Some(data) => FrankAAD::decode(data)
            .map(|f| Some(f.franking_tag))
            .map_err(|e| FrankingError::SafeAad(e.to_string())),
    }
}

// ------------------------------------------------------------------ sender

/// `franking_tag = HMAC_SHA256(salt, application_data)` (section 5.4.1.1).
pub fn franking_tag_with_salt(salt: &[u8; 16], application_data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(salt) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    mac.update(application_data);
    mac.finalize().into_bytes().into()
}

/// The franking tag of encoded MIMI content (its salt is read from it).
pub fn franking_tag(content: &[u8]) -> Result<[u8; 32], FrankingError> {
    let c = MimiContent::decode(content).map_err(|e| FrankingError::Content(e.to_string()))?;
    Ok(franking_tag_with_salt(&c.salt, content))
}

/// What a MIMI content message claims about itself: its salt, sender and room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub salt: [u8; 16],
    pub sender: UserId,
    pub room: RoomId,
}

/// Reads the salt and the `senderUri` (key 1) and `roomUri` (key 2) claims of
/// encoded MIMI content.
pub fn claims(content: &[u8]) -> Result<Claims, FrankingError> {
    let c = MimiContent::decode(content).map_err(|e| FrankingError::Content(e.to_string()))?;
    let sender_uri = c
        .extensions
        .sender_uri
        .ok_or(FrankingError::MissingClaim("senderUri"))?;
    let room_uri = c
        .extensions
        .room_uri
        .ok_or(FrankingError::MissingClaim("roomUri"))?;
    let sender = UserId::parse_uri(&sender_uri).map_err(|e| FrankingError::BadClaim {
        field: "senderUri",
        reason: e.to_string(),
    })?;
    let room = RoomId::parse_uri(&room_uri).map_err(|e| FrankingError::BadClaim {
        field: "roomUri",
        reason: e.to_string(),
    })?;
    // Canonical form only: the hub's context holds the URIs as text.
    if sender.to_uri() != sender_uri {
        return Err(FrankingError::BadClaim {
            field: "senderUri",
            reason: "not in canonical form".into(),
        });
    }
    if room.to_uri() != room_uri {
        return Err(FrankingError::BadClaim {
            field: "roomUri",
            reason: "not in canonical form".into(),
        });
    }
    Ok(Claims {
        salt: c.salt,
        sender,
        room,
    })
}

// ------------------------------------------------------------------ hub

/// The hub's symmetric franking key. Secret: zeroized on drop, no `Debug`.
pub struct HubKey([u8; 32]);

impl HubKey {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut k);
        Self(k)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes, for storing it.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl Drop for HubKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The context the hub commits to.
pub fn context(sender: &UserId, room: &RoomId, accepted_timestamp: u64) -> ServerFrankingContext {
    ServerFrankingContext {
        sender_uri: IdentifierUri::from(sender),
        room_uri: IdentifierUri::from(room),
        accepted_timestamp,
    }
}

/// `server_frank = HMAC_SHA256(hub_key, franking_tag || context)` (section 5.4.1.2).
pub fn server_frank(
    hub_key: &HubKey,
    franking_tag: &[u8; 32],
    context: &ServerFrankingContext,
) -> Result<[u8; 32], FrankingError> {
    let ctx = context
        .encode()
        .map_err(|e| FrankingError::Encode(e.to_string()))?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&hub_key.0)
        .map_err(|e| FrankingError::Encode(e.to_string()))?;
    mac.update(franking_tag);
    mac.update(&ctx);
    Ok(mac.finalize().into_bytes().into())
}

fn integrity_tbs(
    server_frank: [u8; 32],
    ciphersuite: u16,
    context: &ServerFrankingContext,
) -> Result<Vec<u8>, FrankingError> {
    FrankingIntegrityTBS {
        server_frank,
        franking_signature_ciphersuite: VerifiableCiphersuite::new(ciphersuite),
        context: context.clone(),
    }
    .encode()
    .map_err(|e| FrankingError::Encode(e.to_string()))
}

/// The hub franks an accepted message: `server_frank`, and
/// `SignWithLabel(issuer key, "FrankingIntegrityTBS", FrankingIntegrityTBS)`.
/// Deterministic (HMAC and Ed25519 are), so a duplicate submission gets the same frank.
pub fn frank(
    hub_key: &HubKey,
    signer: &IssuerKey,
    ciphersuite: u16,
    franking_tag: &[u8; 32],
    context: &ServerFrankingContext,
) -> Result<Frank, FrankingError> {
    let server_frank = server_frank(hub_key, franking_tag, context)?;
    let tbs = integrity_tbs(server_frank, ciphersuite, context)?;
    let signature = signer
        .sign_with_label(FRANKING_INTEGRITY_LABEL, &tbs)
        .map_err(|e| FrankingError::Encode(e.to_string()))?;
    Ok(Frank {
        server_frank,
        franking_signature_ciphersuite: VerifiableCiphersuite::new(ciphersuite),
        franking_integrity_signature: signature.into(),
    })
}

/// `VerifyWithLabel(key, "FrankingIntegrityTBS", FrankingIntegrityTBS, signature)`.
pub fn verify_signature(
    key: &IssuerPublicKey,
    frank: &Frank,
    context: &ServerFrankingContext,
) -> Result<(), FrankingError> {
    let tbs = integrity_tbs(
        frank.server_frank,
        frank.franking_signature_ciphersuite.value(),
        context,
    )?;
    let msg = crate::mls::sign_content(FRANKING_INTEGRITY_LABEL, &tbs)
        .map_err(|e| FrankingError::Encode(e.to_string()))?;
    let vk = VerifyingKey::from_bytes(&key.to_bytes()).map_err(|_| FrankingError::BadSignature)?;
    let sig = Signature::from_slice(frank.franking_integrity_signature.as_slice())
        .map_err(|_| FrankingError::BadSignature)?;
    vk.verify_strict(&msg, &sig)
        .map_err(|_| FrankingError::BadSignature)
}

// ------------------------------------------------------------------ receiver

/// What a receiver checks a frank against (section 5.4.1.3).
pub struct Received<'a> {
    /// The decrypted application data (encoded MIMI content).
    pub content: &'a [u8],
    /// The franking tag from the message's authenticated AAD.
    pub franking_tag: &'a [u8; 32],
    pub frank: &'a Frank,
    /// The FanoutMessage's timestamp.
    pub accepted_timestamp: u64,
    /// The user in the sender's MLS credential (verified certificate).
    pub sender: &'a UserId,
    /// The room the message was delivered for (its MLS group).
    pub room: &'a RoomId,
    /// The room's cipher suite.
    pub ciphersuite: u16,
    /// The pinned issuer key of the room's hub domain.
    pub hub_key: &'a IssuerPublicKey,
}

/// A receiver's checks: the cipher suite, the hub's signature over the frank and
/// its context, the tag's construction from the content (with its salt), and that
/// the content's sender and room claims are the MLS sender and the room.
pub fn verify_received(r: &Received<'_>) -> Result<(), FrankingError> {
    let found = r.frank.franking_signature_ciphersuite.value();
    if found != r.ciphersuite {
        return Err(FrankingError::Ciphersuite {
            found,
            expected: r.ciphersuite,
        });
    }
    let claims = claims(r.content)?;
    let ctx = context(&claims.sender, &claims.room, r.accepted_timestamp);
    verify_signature(r.hub_key, r.frank, &ctx)?;
    let tag = franking_tag_with_salt(&claims.salt, r.content);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&tag[..], &r.franking_tag[..])) {
        return Err(FrankingError::TagMismatch);
    }
    if &claims.sender != r.sender {
        return Err(FrankingError::SenderMismatch {
            claimed: claims.sender.to_uri(),
            actual: r.sender.to_uri(),
        });
    }
    if &claims.room != r.room {
        return Err(FrankingError::RoomMismatch {
            claimed: claims.room.to_uri(),
            actual: r.room.to_uri(),
        });
    }
    Ok(())
}

// ------------------------------------------------------------------ reports

/// The hub's check of one reported message (section 5.9): recompute the tag and the
/// context from the content and the timestamp, recompute `server_frank` with
/// `hub_key`, verify the signature with our issuer key. The content's room must be
/// `room`. Returns the sender the content names (verified: the hub franked it for
/// that sender, who was authenticated when submitting).
pub fn verify_reported(
    hub_key: &HubKey,
    issuer: &IssuerPublicKey,
    ciphersuite: u16,
    room: &RoomId,
    message: &AbusiveMessage,
) -> Result<UserId, FrankingError> {
    let found = message.frank.franking_signature_ciphersuite.value();
    if found != ciphersuite {
        return Err(FrankingError::Ciphersuite {
            found,
            expected: ciphersuite,
        });
    }
    let content = message.message_content.as_slice();
    let claims = claims(content)?;
    if &claims.room != room {
        return Err(FrankingError::RoomMismatch {
            claimed: claims.room.to_uri(),
            actual: room.to_uri(),
        });
    }
    let tag = franking_tag_with_salt(&claims.salt, content);
    let ctx = context(&claims.sender, &claims.room, message.accepted_timestamp);
    let expected = server_frank(hub_key, &tag, &ctx)?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        &expected[..],
        &message.frank.server_frank[..],
    )) {
        return Err(FrankingError::ServerFrankMismatch);
    }
    verify_signature(issuer, &message.frank, &ctx)?;
    Ok(claims.sender)
}

/// The digest that identifies a report for deduplication: SHA-256 over a label,
/// the reporter and every reported message's server frank, in order. A replayed
/// report (same reporter, same messages) has the same digest, whatever its note.
pub fn report_digest(reporter: &str, messages: &[AbusiveMessage]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"entente report v1\0");
    h.update((reporter.len() as u64).to_be_bytes());
    h.update(reporter.as_bytes());
    for m in messages {
        h.update(m.frank.server_frank);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests;
