//! The provider's client API: our own design, JSON over HTTPS, with a WebSocket for
//! push delivery. Binary values (keys, MLS and MIMI messages) are standard base64.
//!
//! Every request except [`RegisterRequest`] and the public lookups is signed by the
//! client's signature key; see [`signed_request_message`]. The OpenAPI document
//! served at `/openapi.json` describes all of it.

use serde::{Deserialize, Serialize};

/// Name of the header carrying a client's request signature.
pub const AUTH_HEADER: &str = "authorization";
/// Scheme of the `Authorization` header: `Entente client="..", ts="..", nonce="..", sig=".."`.
pub const AUTH_SCHEME: &str = "Entente";
/// How far a signed request's timestamp may be from the provider's clock.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// The bytes a client signs (Ed25519, its MLS signature key) to authenticate one API
/// request. The label keeps these signatures apart from MLS's own `SignWithLabel`.
pub fn signed_request_message(
    method: &str,
    path_and_query: &str,
    timestamp: u64,
    nonce: &str,
    body_sha256_hex: &str,
) -> Vec<u8> {
    format!("entente-api-v1\n{method}\n{path_and_query}\n{timestamp}\n{nonce}\n{body_sha256_hex}")
        .into_bytes()
}

/// The bytes a new client signs to prove it holds the key it registers.
pub fn registration_proof_message(client_uri: &str, signature_key_b64: &str) -> Vec<u8> {
    format!("entente-register-v1\n{client_uri}\n{signature_key_b64}").into_bytes()
}

/// Parsed header fields.
#[derive(Debug, PartialEq, Eq)]
pub struct AuthHeader {
    pub client: String,
    pub timestamp: u64,
    pub nonce: String,
    pub signature: Vec<u8>,
}

impl AuthHeader {
    /// Parses `Entente client="..", ts="..", nonce="..", sig=".."`; the error
    /// says what is wrong.
    pub fn parse(value: &str) -> Result<AuthHeader, &'static str> {
        let rest = value
            .strip_prefix(AUTH_SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or("expected scheme `Entente`")?;
        let (mut client, mut ts, mut nonce, mut sig) = (None, None, None, None);
        for part in rest.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or("expected key=\"value\" pairs")?;
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or("values must be quoted")?;
            match k {
                "client" => client = Some(v.to_owned()),
                "ts" => ts = Some(v.parse().map_err(|_| "ts is not a number")?),
                "nonce" => nonce = Some(v.to_owned()),
                "sig" => sig = Some(b64::decode(v).map_err(|_| "sig is not base64")?),
                _ => return Err("unknown field"),
            }
        }
        let nonce: String = nonce.ok_or("missing nonce")?;
        if nonce.is_empty() || nonce.len() > 64 {
            return Err("nonce must be 1 to 64 characters");
        }
        Ok(AuthHeader {
            client: client.ok_or("missing client")?,
            timestamp: ts.ok_or("missing ts")?,
            nonce,
            signature: sig.ok_or("missing sig")?,
        })
    }
}

/// Base64 (standard, padded) for bytes inside JSON.
pub mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn encode(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    pub fn decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
        STANDARD.decode(s)
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        decode(&s).map_err(serde::de::Error::custom)
    }

    /// For `Vec<Vec<u8>>`.
    pub mod list {
        use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

        pub fn serialize<S: Serializer>(items: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(items.len()))?;
            for i in items {
                seq.serialize_element(&super::encode(i))?;
            }
            seq.end()
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
            let v = Vec::<String>::deserialize(d)?;
            v.iter()
                .map(|s| super::decode(s).map_err(serde::de::Error::custom))
                .collect()
        }
    }

    /// For `Option<Vec<u8>>`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(b) => s.serialize_some(&super::encode(b)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            let v = Option::<String>::deserialize(d)?;
            v.map(|s| super::decode(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// Every error the API returns: a stable machine code and a sentence for people.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    /// Stable, e.g. `unauthenticated`, `invalid_request`, `not_found`, `wrong_epoch`.
    pub code: String,
    pub message: String,
    /// Present when the client should retry later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// `GET /v1/provider` and `GET /v1/providers/{domain}`: a provider's issuer key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProviderInfo {
    pub domain: String,
    /// Ed25519 public key that certifies the provider's clients.
    #[serde(with = "b64")]
    pub issuer_key: Vec<u8>,
}

/// `POST /v1/register`: creates an account with its first client, or adds a client to
/// an existing account with a link code issued by one of its clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// `alice@a.example` or `mimi://a.example/u/alice`.
    pub user: String,
    /// Device name, unique per user.
    pub device: String,
    /// The client's Ed25519 MLS signature public key.
    #[serde(with = "b64")]
    pub signature_key: Vec<u8>,
    /// Signature over [`registration_proof_message`].
    #[serde(with = "b64")]
    pub proof: Vec<u8>,
    /// Required to add a device to an existing account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub client: String,
    /// The provider-issued client certificate (see `entente_core::identity`).
    #[serde(with = "b64")]
    pub certificate: Vec<u8>,
}

/// `POST /v1/devices/link-code`: a one-time code that lets a new device join the
/// caller's account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkCodeResponse {
    pub code: String,
    pub expires_at: u64,
}

/// `POST /v1/key-packages`: upload single-use KeyPackages and optionally a new
/// last-resort one.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct UploadKeyPackages {
    #[serde(with = "b64::list")]
    pub key_packages: Vec<Vec<u8>>,
    #[serde(default, with = "b64::option", skip_serializing_if = "Option::is_none")]
    pub last_resort: Option<Vec<u8>>,
}

/// Answer to an upload and to `GET /v1/key-packages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyPackageStatus {
    /// Single-use KeyPackages the provider still holds for this client.
    pub available: u64,
    pub has_last_resort: bool,
}

/// `POST /v1/rooms`: creates a room hosted (hubbed) by the caller's provider. The
/// client has already created the MLS group (epoch 0, itself the only member, the
/// room state in its GroupContext) under a room id it chose on this provider's
/// domain; the hub starts tracking the group from this GroupInfo and tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateRoomCall {
    pub room: String,
    /// The group's GroupInfo, an MLSMessage.
    #[serde(with = "b64")]
    pub group_info: Vec<u8>,
    /// The group's ratchet tree (RFC 9420 `ratchet_tree` extension data).
    #[serde(with = "b64")]
    pub ratchet_tree: Vec<u8>,
}

/// The answer to [`CreateRoomCall`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateRoomResponse {
    pub room: String,
}

/// `POST /v1/rooms/{room}/key-material`: a MIMI `KeyMaterialRequest`, claimed through
/// the room's hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyMaterialCall {
    #[serde(with = "b64")]
    pub request: Vec<u8>,
}

/// The MIMI `KeyMaterialResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyMaterialResult {
    #[serde(with = "b64")]
    pub response: Vec<u8>,
}

/// `POST /v1/rooms/{room}/update`: a MIMI `UpdateRequest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateCall {
    #[serde(with = "b64")]
    pub request: Vec<u8>,
}

/// `POST /v1/rooms/{room}/messages`: a MIMI `SubmitMessageRequest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitCall {
    #[serde(with = "b64")]
    pub request: Vec<u8>,
}

/// `POST /v1/rooms/{room}/group-info`: a MIMI `GroupInfoRequest` (draft-ietf-mimi-protocol-06
/// section 5.6), relayed to the room's hub; the answer is the encoded
/// `GroupInfoResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupInfoCall {
    #[serde(with = "b64")]
    pub request: Vec<u8>,
}

/// The rooms the caller's user participates in, as its provider knows them (a new
/// device uses this to join them all by external commit).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRooms {
    pub rooms: Vec<String>,
}

/// The hub's MIMI answer (`UpdateRoomResponse` or `SubmitMessageResponse`), passed
/// through unchanged so the client can act on its codes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HubAnswer {
    #[serde(with = "b64")]
    pub response: Vec<u8>,
}

/// One item in a client's inbox: a MIMI `FanoutMessage` for one room, as the hub
/// sent it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InboxItem {
    /// Per-client sequence number; acknowledge up to it.
    pub seq: u64,
    pub room: String,
    #[serde(with = "b64")]
    pub fanout: Vec<u8>,
}

/// `GET /v1/inbox?after=N&limit=M`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
}

/// `POST /v1/inbox/ack`, and the same JSON sent as a WebSocket text frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ack {
    /// Acknowledges every item with `seq <= up_to`.
    pub up_to: u64,
}

/// A WebSocket frame from provider to client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PushFrame {
    Item(InboxItem),
    /// The provider acknowledges an [`Ack`].
    Acked {
        up_to: u64,
    },
}

/// Percent-encodes a URI (a user, client or room) as one path segment, as MIMI paths
/// such as `/notify/{roomId}` carry them.
pub fn path_segment(uri: &str) -> String {
    percent_encoding::utf8_percent_encode(uri, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `POST /v1/rooms/{room}/reports`: a MIMI `AbuseReport` (draft-ietf-mimi-protocol-06
/// section 5.9) about messages in the room, sent to the reporter's own provider,
/// which verifies it (if it hubs the room) or relays it to the room's hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportCall {
    /// The encoded `AbuseReport`. `reportingUser` must be the caller's user.
    #[serde(with = "b64")]
    pub report: Vec<u8>,
}

/// The answer to a [`ReportCall`]: the hub verified every reported message's frank
/// and stored the report (or had stored the same report before).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportAnswer {
    /// `"accepted"`.
    pub status: String,
}
