//! The Signal-compatible two-party channel, for peers that do not speak MLS.
//!
//! Two users whose devices and providers all speak MLS talk in MIMI rooms. When
//! the peer's provider or one of their devices offers only the Double Ratchet,
//! [`Client::channel_to`] says so, and messages go over libsignal-compatible
//! sessions instead (`entente_core::signal`):
//!
//! - **Keys.** Each device has a Signal identity key and publishes a signed
//!   prekey, one-time prekeys and ML-KEM-1024 prekeys (PQXDH) in its provider's
//!   key directory ([`Client::replenish_prekeys`]).
//! - **Sessions.** One per peer device, started from a bundle fetched through our
//!   provider (PQXDH when the bundle has an ML-KEM prekey, X3DH otherwise) and
//!   kept in the device database.
//! - **Sealed sender.** Every message is sealed to the recipient device's identity
//!   key with a sender certificate from our provider inside, so the recipient's
//!   provider learns the recipient, the size and our provider's domain, but not
//!   who sent it.
//! - **Trust.** The first identity key seen for a peer device is remembered. A
//!   different one later is not used: messages under it are held, and sending
//!   stops, until the user accepts it ([`Client::trust_new_identity`]).
//! - **Groups** of such peers ([`groups`]): sender keys or plain pairwise fan-out.
//!
//! Inside the ratchet the plaintext is a frame of ours (a kind byte, then MIMI
//! content or a group control message), padded as Signal pads (0x80 then zeros,
//! to a multiple of 160 bytes).

pub mod groups;
mod prekeys;

use entente_core::signal::keys::PublicKey;
use entente_core::signal::pqxdh::KemPublicKey;
use entente_core::signal::sealed_sender::{self, ContentType, SenderCertificate};
use entente_core::signal::session::{self, MessageKind, Session};
use entente_core::signal::x3dh::{KyberPreKey, PreKeyBundle};
use entente_wire::api::InboxItem;
use entente_wire::content::MimiContent;
use entente_wire::ids::{ClientId, UserId};
use entente_wire::signal::{
    Capabilities, DeviceBundle, SealedMessage, SealedSend, SenderCertificateRequest,
    SenderCertificateResponse, SetProtocols, UserBundles,
};
use rand::RngCore as _;
use rand::rngs::OsRng;
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) use prekeys::{LocalIdentity, identity, load_identity};
pub use prekeys::{PREKEY_LOW_WATER, PREKEY_TARGET};

use crate::rooms::Event;
use crate::store::{set_setting, setting, storage};
use crate::{Client, ClientError, now_secs};

/// Which protocols a device speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// MIMI rooms on MLS, and the Signal channel for peers without MLS (the default).
    MlsAndSignal,
    /// Only the Signal channel: a device (or an app embedding us) that has no MLS.
    SignalOnly,
}

impl Protocols {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Protocols::MlsAndSignal => "mls10,signal",
            Protocols::SignalOnly => "signal",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, ClientError> {
        match s {
            "mls10,signal" => Ok(Protocols::MlsAndSignal),
            "signal" => Ok(Protocols::SignalOnly),
            other => Err(ClientError::Storage(format!(
                "unknown protocol set {other:?}"
            ))),
        }
    }

    /// The names published in the provider's capabilities.
    pub fn names(self) -> Vec<String> {
        self.as_str().split(',').map(str::to_owned).collect()
    }

    pub fn speaks_mls(self) -> bool {
        self == Protocols::MlsAndSignal
    }
}

/// How we reach a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// A MIMI room (MLS): both sides speak it.
    MlsRoom,
    /// The Signal-compatible Double Ratchet.
    DoubleRatchet,
}

/// The negotiated way to reach a peer, and why: shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelChoice {
    pub peer: UserId,
    pub mechanism: Mechanism,
    pub reason: String,
}

impl std::fmt::Display for ChannelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mechanism {
            Mechanism::MlsRoom => write!(f, "MLS room ({})", self.reason),
            Mechanism::DoubleRatchet => write!(f, "Signal Double Ratchet ({})", self.reason),
        }
    }
}

/// A conversation over the Signal channel: with one user, or a group of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Conversation {
    Direct(UserId),
    Group([u8; 16]),
}

impl Conversation {
    pub(crate) fn key(&self) -> String {
        match self {
            Conversation::Direct(u) => format!("user:{u}"),
            Conversation::Group(g) => format!("group:{}", hex::encode(g)),
        }
    }

    fn parse_key(s: &str) -> Result<Self, ClientError> {
        if let Some(u) = s.strip_prefix("user:") {
            return u
                .parse()
                .map(Conversation::Direct)
                .map_err(|e| ClientError::Storage(format!("conversation {s}: {e}")));
        }
        if let Some(g) = s.strip_prefix("group:") {
            let bytes = hex::decode(g).map_err(|e| ClientError::Storage(format!("{s}: {e}")))?;
            return bytes
                .try_into()
                .map(Conversation::Group)
                .map_err(|_| ClientError::Storage(format!("conversation {s}")));
        }
        Err(ClientError::Storage(format!("conversation {s}")))
    }

    /// The "room" MIMI message IDs are computed over for this conversation.
    fn message_id_scope(&self) -> String {
        self.key()
    }
}

impl std::fmt::Display for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conversation::Direct(u) => write!(f, "{}", u.handle()),
            Conversation::Group(g) => write!(f, "group {}", hex::encode(g)),
        }
    }
}

/// One message of a Signal-channel conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectEntry {
    pub conversation: Conversation,
    pub sender: UserId,
    pub sender_client: ClientId,
    pub message_id: [u8; 32],
    /// Local receive (or send) time, ms since the UNIX epoch: no hub stamps these.
    pub timestamp_ms: u64,
    pub text: Option<String>,
    pub content: Vec<u8>,
    pub outgoing: bool,
}

// ------------------------------------------------------------------ frames

/// Kinds of frame inside the ratchet (ours; see the module docs).
pub(crate) const FRAME_DIRECT: u8 = 1;
pub(crate) const FRAME_GROUP_MESSAGE: u8 = 2;
pub(crate) const FRAME_GROUP_CONTROL: u8 = 3;
pub(crate) const FRAME_SENDER_KEY: u8 = 4;

/// Signal's padding: 0x80, then zeros up to a multiple of 160 bytes.
pub(crate) fn pad(frame: &[u8]) -> Vec<u8> {
    let len = (frame.len() + 1).div_ceil(160) * 160;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(frame);
    out.push(0x80);
    out.resize(len, 0);
    out
}

pub(crate) fn unpad(padded: &[u8]) -> Result<&[u8], ClientError> {
    let end = padded
        .iter()
        .rposition(|b| *b != 0)
        .ok_or_else(|| ClientError::Protocol("empty padded plaintext".into()))?;
    match padded.get(end) {
        Some(0x80) => Ok(padded.get(..end).unwrap_or_default()),
        _ => Err(ClientError::Protocol(
            "plaintext padding is not 0x80 0x00*".into(),
        )),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn proto(e: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol(e.to_string())
}

/// Runs `f` in one immediate transaction on `conn`: all or nothing.
pub(crate) fn in_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(storage)?;
    match f(conn) {
        Ok(v) => match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(storage(e))
            }
        },
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

// --------------------------------------------------------- sessions, trust

pub(crate) fn load_session(conn: &Connection, peer: &str) -> Result<Option<Session>, ClientError> {
    let bytes: Option<Vec<u8>> = conn
        .query_row(
            "SELECT session FROM signal_sessions WHERE peer_client = ?1",
            params![peer],
            |r| r.get(0),
        )
        .optional()
        .map_err(storage)?;
    bytes
        .map(|b| {
            Session::from_bytes(&b)
                .map_err(|e| ClientError::Storage(format!("session with {peer}: {e}")))
        })
        .transpose()
}

pub(crate) fn save_session(
    conn: &Connection,
    peer: &ClientId,
    session: &Session,
) -> Result<(), ClientError> {
    conn.execute(
        "INSERT INTO signal_sessions (peer_client, peer_user, session, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (peer_client) DO UPDATE SET session = excluded.session, updated_at = excluded.updated_at",
        params![
            peer.to_string(),
            peer.user().to_string(),
            session.to_bytes().as_slice(),
            now_secs() as i64
        ],
    )
    .map_err(storage)?;
    Ok(())
}

/// The peer devices we hold sessions with, for one user.
pub(crate) fn session_clients(
    conn: &Connection,
    user: &UserId,
) -> Result<Vec<ClientId>, ClientError> {
    let mut stmt = conn
        .prepare(
            "SELECT peer_client FROM signal_sessions WHERE peer_user = ?1 ORDER BY peer_client",
        )
        .map_err(storage)?;
    let rows = stmt
        .query_map(params![user.to_string()], |r| r.get::<_, String>(0))
        .map_err(storage)?;
    let mut out = Vec::new();
    for r in rows {
        let s = r.map_err(storage)?;
        out.push(
            s.parse()
                .map_err(|e| ClientError::Storage(format!("session peer {s}: {e}")))?,
        );
    }
    Ok(out)
}

/// What we know of a peer device's identity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trust {
    /// First time we see this device: the key is now remembered.
    New,
    /// The key we remembered.
    Same,
    /// A different key than the one we remembered: it is recorded as pending and
    /// must not be used until the user accepts it.
    Changed,
}

pub(crate) fn check_identity(
    conn: &Connection,
    peer: &ClientId,
    key: &PublicKey,
) -> Result<Trust, ClientError> {
    let encoded = key.encode();
    let known: Option<Vec<u8>> = conn
        .query_row(
            "SELECT identity_key FROM signal_trust WHERE peer_client = ?1",
            params![peer.to_string()],
            |r| r.get(0),
        )
        .optional()
        .map_err(storage)?;
    match known {
        None => {
            conn.execute(
                "INSERT INTO signal_trust (peer_client, peer_user, identity_key, first_seen)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    peer.to_string(),
                    peer.user().to_string(),
                    encoded.as_slice(),
                    now_secs() as i64
                ],
            )
            .map_err(storage)?;
            Ok(Trust::New)
        }
        Some(k) if k.as_slice() == encoded.as_slice() => Ok(Trust::Same),
        Some(_) => {
            conn.execute(
                "UPDATE signal_trust SET pending_key = ?2 WHERE peer_client = ?1",
                params![peer.to_string(), encoded.as_slice()],
            )
            .map_err(storage)?;
            Ok(Trust::Changed)
        }
    }
}

fn identity_changed_error(user: &UserId) -> ClientError {
    ClientError::Untrusted(format!(
        "{user}'s identity key changed (a new device, a reinstall, or someone impersonating them); \
         nothing was sent or decrypted under the new key. Compare safety numbers with them, then run \
         `entente trust {user}`",
        user = user.handle()
    ))
}

fn bundle_from_json(d: &DeviceBundle) -> Result<(ClientId, PreKeyBundle), ClientError> {
    let client: ClientId = ClientId::parse_uri(&d.client)
        .or_else(|_| d.client.parse())
        .map_err(|e| ClientError::Protocol(format!("bundle for client {}: {e}", d.client)))?;
    let key = |b: &[u8], what: &str| {
        PublicKey::decode(b).map_err(|e| ClientError::Protocol(format!("{what} of {client}: {e}")))
    };
    let sig = |b: &[u8], what: &str| -> Result<[u8; 64], ClientError> {
        b.try_into()
            .map_err(|_| ClientError::Protocol(format!("{what} of {client} is not 64 bytes")))
    };
    let kyber_prekey = match &d.kyber_prekey {
        Some(k) => Some(KyberPreKey {
            id: k.id,
            public: KemPublicKey::decode(&k.public)
                .map_err(|e| ClientError::Protocol(format!("ML-KEM prekey of {client}: {e}")))?,
            signature: sig(&k.signature, "ML-KEM prekey signature")?,
        }),
        None => None,
    };
    let one_time_prekey = match &d.one_time_prekey {
        Some(k) => Some((k.id, key(&k.public, "one-time prekey")?)),
        None => None,
    };
    let bundle = PreKeyBundle {
        registration_id: d.registration_id,
        device_id: d.device_id,
        identity_key: key(&d.identity_key, "identity key")?,
        signed_prekey_id: d.signed_prekey.id,
        signed_prekey: key(&d.signed_prekey.public, "signed prekey")?,
        signed_prekey_signature: sig(&d.signed_prekey.signature, "signed prekey signature")?,
        one_time_prekey,
        kyber_prekey,
    };
    Ok((client, bundle))
}

/// What a sealed payload carries for one device.
pub(crate) enum Payload<'a> {
    /// A frame encrypted on the pairwise session.
    Ratchet(&'a [u8]),
    /// A sender-key message, the same bytes for every device.
    SenderKey(&'a [u8]),
}

/// The result of processing one sealed inbox item.
pub(crate) enum Opened {
    Event(Box<Event>),
    Nothing,
}

impl Client {
    fn protocols(&self) -> Result<Protocols, ClientError> {
        Ok(load_identity(&self.db())?
            .map(|i| i.protocols)
            .unwrap_or(Protocols::MlsAndSignal))
    }

    /// Sets up this device for the Signal channel: creates its identity (if new),
    /// tells the provider which protocols it speaks and publishes its prekeys.
    pub async fn enable_signal_channel(&self, protocols: Protocols) -> Result<(), ClientError> {
        let protocols = crate::blocking(|| {
            let local = self.db();
            identity(&local, protocols).map(|i| i.protocols)
        })?;
        let _: serde_json::Value = self
            .signed(
                reqwest::Method::POST,
                "/v1/capabilities",
                Some(&SetProtocols {
                    protocols: protocols.names(),
                }),
            )
            .await?;
        self.replenish_prekeys().await?;
        Ok(())
    }

    /// What `user`'s provider and devices speak.
    pub async fn capabilities(&self, user: &UserId) -> Result<Capabilities, ClientError> {
        self.signed::<(), _>(
            reqwest::Method::GET,
            &format!("/v1/capabilities/{user}"),
            None,
        )
        .await
    }

    /// Negotiates how to reach `user`: a MIMI room when we, their provider and
    /// every one of their devices speak MLS; otherwise the Signal channel if they
    /// offer it. The reason is meant for the user.
    pub async fn channel_to(&self, user: &UserId) -> Result<ChannelChoice, ClientError> {
        let ours = self.protocols()?;
        let caps = self.capabilities(user).await?;
        let speaks = |c: &entente_wire::signal::ClientCapabilities, p: &str| {
            c.protocols.iter().any(|x| x == p)
        };
        let all_mls = !caps.clients.is_empty() && caps.clients.iter().all(|c| speaks(c, "mls10"));
        let any_signal = caps.clients.iter().any(|c| speaks(c, "signal"));
        let choice = |mechanism, reason: String| ChannelChoice {
            peer: user.clone(),
            mechanism,
            reason,
        };
        if caps.clients.is_empty() {
            return Err(ClientError::Usage(format!(
                "{} has no devices that can receive messages",
                user.handle()
            )));
        }
        if ours.speaks_mls() && caps.provider_rooms && all_mls {
            return Ok(choice(Mechanism::MlsRoom, "both sides speak MLS".into()));
        }
        if !(caps.provider_signal && any_signal) {
            return Err(ClientError::Usage(format!(
                "no protocol in common with {}: {}",
                user.handle(),
                if caps.provider_rooms {
                    "their devices offer only MLS and this device does not speak it"
                } else {
                    "their provider offers neither MLS rooms nor the Signal channel"
                }
            )));
        }
        let reason = if !ours.speaks_mls() {
            "this device speaks only the Double Ratchet".to_owned()
        } else if !caps.provider_rooms {
            format!("{} offers no MLS rooms", user.domain())
        } else {
            let n = caps.clients.iter().filter(|c| !speaks(c, "mls10")).count();
            format!(
                "{n} of {}'s {} devices speak only the Double Ratchet",
                user.handle(),
                caps.clients.len()
            )
        };
        Ok(choice(Mechanism::DoubleRatchet, reason))
    }

    /// Our sender certificate, from the provider when we have none valid for at
    /// least another hour.
    pub(crate) async fn sender_certificate(&self) -> Result<SenderCertificate, ClientError> {
        let cached = setting(&self.db(), "signal_sender_certificate")?;
        if let Some(hex_cert) = cached
            && let Ok(bytes) = hex::decode(hex_cert)
            && let Ok(cert) = SenderCertificate::decode(&bytes)
            && cert.expires_ms > now_ms() + 3_600_000
        {
            return Ok(cert);
        }
        let identity_key = crate::blocking(|| {
            identity(&self.db(), Protocols::MlsAndSignal).map(|i| i.pair.public().encode().to_vec())
        })?;
        let resp: SenderCertificateResponse = self
            .signed(
                reqwest::Method::POST,
                "/v1/signal/sender-certificate",
                Some(&SenderCertificateRequest { identity_key }),
            )
            .await?;
        let cert = SenderCertificate::decode(&resp.certificate)
            .map_err(|e| ClientError::Protocol(format!("our sender certificate: {e}")))?;
        let issuer = self.issuer_key(self.id.domain()).await?;
        cert.verify(&issuer, now_ms())
            .map_err(|e| ClientError::Untrusted(format!("our sender certificate: {e}")))?;
        set_setting(
            &self.db(),
            "signal_sender_certificate",
            &hex::encode(&resp.certificate),
        )?;
        Ok(cert)
    }

    /// Starts sessions with every device of `user` that we have none with, from
    /// bundles fetched through our provider. Refuses (and records the new key as
    /// pending) if a device's identity key differs from the one we trust.
    pub(crate) async fn ensure_sessions(
        &self,
        user: &UserId,
        only: Option<&[ClientId]>,
    ) -> Result<Vec<ClientId>, ClientError> {
        let have = crate::blocking(|| session_clients(&self.db(), user))?;
        let needed = match only {
            Some(list) => list.iter().any(|c| !have.contains(c)),
            None => have.is_empty(),
        };
        if !needed {
            return Ok(have);
        }
        let bundles: UserBundles = self
            .signed::<(), _>(
                reqwest::Method::GET,
                &format!("/v1/signal/bundles/{user}"),
                None,
            )
            .await?;
        if bundles.devices.is_empty() {
            return Err(ClientError::Usage(format!(
                "{} has no device on the Signal channel",
                user.handle()
            )));
        }
        crate::blocking(|| {
            let local = self.db();
            let me = identity(&local, Protocols::MlsAndSignal)?;
            let mut changed = false;
            let result = in_transaction(&local, |conn| {
                for d in &bundles.devices {
                    let (client, bundle) = bundle_from_json(d)?;
                    if client.user() != user {
                        return Err(ClientError::Protocol(format!(
                            "asked for {user}'s bundles, got one for {client}"
                        )));
                    }
                    if have.contains(&client) {
                        continue;
                    }
                    match check_identity(conn, &client, &bundle.identity_key)? {
                        Trust::Changed => {
                            changed = true;
                            continue;
                        }
                        Trust::New | Trust::Same => {}
                    }
                    let session =
                        Session::initiate(&me.pair, me.registration_id, &bundle, &mut OsRng)
                            .map_err(|e| {
                                ClientError::Protocol(format!("bundle of {client}: {e}"))
                            })?;
                    save_session(conn, &client, &session)?;
                }
                Ok(())
            });
            result?;
            if changed {
                return Err(identity_changed_error(user));
            }
            session_clients(&local, user)
        })
    }

    /// Encrypts `payload` for every device of `user` we hold a session with
    /// (`devices`), seals each copy, and records the request in the outbox with
    /// the sessions' new state, in the caller's transaction. Returns the outbox row.
    pub(crate) fn seal_for(
        &self,
        conn: &Connection,
        user: &UserId,
        devices: &[ClientId],
        payload: &Payload<'_>,
        cert: &SenderCertificate,
        frame: &[u8],
    ) -> Result<i64, ClientError> {
        let request = self.sealed_request(conn, user, devices, payload, cert)?;
        conn.execute(
            "INSERT INTO direct_outbox (recipient, frame, request, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![user.to_string(), frame, request, now_secs() as i64],
        )
        .map_err(storage)?;
        Ok(conn.last_insert_rowid())
    }

    /// The `SealedSend` request body for `payload` to `devices`, advancing (and
    /// saving) the pairwise sessions it encrypts on.
    fn sealed_request(
        &self,
        conn: &Connection,
        user: &UserId,
        devices: &[ClientId],
        payload: &Payload<'_>,
        cert: &SenderCertificate,
    ) -> Result<Vec<u8>, ClientError> {
        let me = identity(conn, Protocols::MlsAndSignal)?;
        let mut messages = Vec::with_capacity(devices.len());
        for device in devices {
            let mut session = load_session(conn, &device.to_string())?
                .ok_or_else(|| ClientError::Bug(format!("no session with {device}")))?;
            let (content_type, bytes) = match payload {
                Payload::Ratchet(frame) => {
                    let out = session.encrypt(&pad(frame), &mut OsRng).map_err(|e| {
                        ClientError::Protocol(format!("encrypting for {device}: {e}"))
                    })?;
                    save_session(conn, device, &session)?;
                    let t = match out.kind {
                        MessageKind::PreKey => ContentType::PreKey,
                        MessageKind::Whisper => ContentType::Whisper,
                    };
                    (t, out.bytes)
                }
                Payload::SenderKey(bytes) => (ContentType::SenderKey, bytes.to_vec()),
            };
            let sealed = sealed_sender::seal(
                &me.pair,
                cert,
                session.remote_identity(),
                content_type,
                &bytes,
                &mut OsRng,
            )
            .map_err(|e| ClientError::Bug(format!("sealing for {device}: {e}")))?;
            messages.push(SealedMessage {
                client: device.to_string(),
                sealed,
            });
        }
        serde_json::to_vec(&SealedSend {
            recipient: user.to_string(),
            messages,
        })
        .map_err(|e| ClientError::Bug(e.to_string()))
    }

    /// Sends one outbox row; on success removes it. A device mismatch (409)
    /// refreshes the device list and sends the same frame to the right devices.
    pub(crate) async fn deliver_direct(&self, outbox_id: i64) -> Result<(), ClientError> {
        for _attempt in 0..3 {
            let row: Option<(String, Vec<u8>, Vec<u8>)> = self
                .db()
                .query_row(
                    "SELECT recipient, frame, request FROM direct_outbox WHERE id = ?1",
                    params![outbox_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(storage)?;
            let Some((recipient, frame, request)) = row else {
                return Ok(());
            };
            let body: SealedSend = serde_json::from_slice(&request)
                .map_err(|e| ClientError::Storage(e.to_string()))?;
            let sent: Result<serde_json::Value, ClientError> = self
                .signed(reqwest::Method::POST, "/v1/signal/messages", Some(&body))
                .await;
            match sent {
                Ok(_) => {
                    self.db()
                        .execute(
                            "DELETE FROM direct_outbox WHERE id = ?1",
                            params![outbox_id],
                        )
                        .map_err(storage)?;
                    return Ok(());
                }
                Err(ClientError::Provider { status: 409, .. }) => {
                    let user: UserId = recipient
                        .parse()
                        .map_err(|e| ClientError::Storage(format!("outbox recipient: {e}")))?;
                    tracing::info!(user = %user, "the recipient's devices changed; re-encrypting");
                    self.refresh_devices(&user).await?;
                    let devices = self.ensure_sessions(&user, None).await?;
                    let cert = self.sender_certificate().await?;
                    // The frame goes again, on the pairwise sessions (a sender-key
                    // message's frame too: its group frame reads the same that way).
                    crate::blocking(|| {
                        let local = self.db();
                        in_transaction(&local, |conn| {
                            let request = self.sealed_request(
                                conn,
                                &user,
                                &devices,
                                &Payload::Ratchet(&frame),
                                &cert,
                            )?;
                            conn.execute(
                                "UPDATE direct_outbox SET request = ?2 WHERE id = ?1",
                                params![outbox_id, request],
                            )
                            .map_err(storage)?;
                            Ok(())
                        })
                    })?;
                }
                // A spam filter refused it for good: it is not kept for resending.
                Err(e) if crate::rooms::is_spam_rejection(&e) => {
                    self.db()
                        .execute(
                            "DELETE FROM direct_outbox WHERE id = ?1",
                            params![outbox_id],
                        )
                        .map_err(storage)?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Provider {
            status: 409,
            code: "mismatched_devices".into(),
            message: "the recipient's devices kept changing; the message stays queued".into(),
            retry_after_secs: Some(1),
        })
    }

    /// Brings our sessions with `user` in line with their current devices (from
    /// their provider): forgets sessions with devices that are gone and starts
    /// sessions with new ones.
    async fn refresh_devices(&self, user: &UserId) -> Result<(), ClientError> {
        let caps = self.capabilities(user).await?;
        let current: Vec<ClientId> = caps
            .clients
            .iter()
            .filter(|c| {
                c.protocols
                    .iter()
                    .any(|p| p == entente_wire::signal::PROTOCOL_SIGNAL)
            })
            .filter_map(|c| {
                ClientId::parse_uri(&c.client)
                    .or_else(|_| c.client.parse())
                    .ok()
            })
            .collect();
        let have = crate::blocking(|| session_clients(&self.db(), user))?;
        {
            let local = self.db();
            for stale in have.iter().filter(|c| !current.contains(c)) {
                local
                    .execute(
                        "DELETE FROM signal_sessions WHERE peer_client = ?1",
                        params![stale.to_string()],
                    )
                    .map_err(storage)?;
            }
        }
        if current.iter().any(|c| !have.contains(c)) {
            self.ensure_sessions(user, Some(&current)).await?;
        }
        Ok(())
    }

    /// Sends again every Signal-channel message that was encrypted and queued but
    /// not accepted by the provider. Stops at the first failure.
    pub async fn resend_direct(&self) -> Result<usize, ClientError> {
        let ids: Vec<i64> = {
            let local = self.db();
            let mut stmt = local
                .prepare("SELECT id FROM direct_outbox ORDER BY id")
                .map_err(storage)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(storage)?;
            rows.collect::<Result<_, _>>().map_err(storage)?
        };
        // The provider asked us to slow down: resend only once that time is up.
        if !ids.is_empty()
            && let Some(wait) = self.transport.rate_limited_for()
        {
            return Err(ClientError::RateLimited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                message: format!(
                    "{} message(s) are waiting in the outbox until the provider's rate limit allows them",
                    ids.len()
                ),
            });
        }
        for id in &ids {
            self.deliver_direct(*id).await?;
        }
        Ok(ids.len())
    }

    /// Sends a frame to every device of `user` over pairwise sessions and records
    /// `history` (if any) in the same transaction as the encryption.
    pub(crate) async fn send_frame(
        &self,
        user: &UserId,
        frame: &[u8],
        history: Option<&DirectEntry>,
    ) -> Result<(), ClientError> {
        if user == self.user() {
            return Err(ClientError::Usage("that is you".into()));
        }
        self.resend_direct().await?;
        let devices = self.ensure_sessions(user, None).await?;
        let cert = self.sender_certificate().await?;
        let outbox_id = crate::blocking(|| {
            let local = self.db();
            in_transaction(&local, |conn| {
                if let Some(h) = history {
                    insert_history(conn, h)?;
                }
                self.seal_for(conn, user, &devices, &Payload::Ratchet(frame), &cert, frame)
            })
        })?;
        self.deliver_direct(outbox_id).await
    }

    /// Sends a text message to `user` over the Signal channel. Returns its MIMI
    /// message ID once the provider has accepted it.
    pub async fn send_direct_text(
        &self,
        user: &UserId,
        text: &str,
        markdown: bool,
    ) -> Result<[u8; 32], ClientError> {
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        self.send_direct_content(user, &MimiContent::text(text, markdown, salt))
            .await
    }

    /// Sends MIMI content to `user` over the Signal channel.
    pub async fn send_direct_content(
        &self,
        user: &UserId,
        content: &MimiContent,
    ) -> Result<[u8; 32], ClientError> {
        let conversation = Conversation::Direct(user.clone());
        let bytes = content.encode();
        let message_id = *content
            .message_id(&self.user().to_string(), &conversation.message_id_scope())
            .map_err(|e| ClientError::Bug(format!("message id: {e}")))?
            .as_bytes();
        let mut frame = vec![FRAME_DIRECT];
        frame.extend_from_slice(&bytes);
        let entry = DirectEntry {
            conversation,
            sender: self.user().clone(),
            sender_client: self.id.clone(),
            message_id,
            timestamp_ms: now_ms(),
            text: Some(
                content
                    .display_text()
                    .map(|t| t.text.to_owned())
                    .unwrap_or_default(),
            ),
            content: bytes,
            outgoing: true,
        };
        self.send_frame(user, &frame, Some(&entry)).await?;
        Ok(message_id)
    }

    /// The history of a Signal-channel conversation, oldest first (the latest
    /// `limit` entries).
    pub fn direct_history(
        &self,
        conversation: &Conversation,
        limit: u32,
    ) -> Result<Vec<DirectEntry>, ClientError> {
        let local = self.db();
        let mut stmt = local
            .prepare(
                "SELECT conversation, sender_user, sender_client, message_id, timestamp, content, outgoing
                 FROM (SELECT * FROM direct_history WHERE conversation = ?1 ORDER BY id DESC LIMIT ?2)
                 ORDER BY id",
            )
            .map_err(storage)?;
        let rows = stmt
            .query_map(params![conversation.key(), limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                    r.get::<_, bool>(6)?,
                ))
            })
            .map_err(storage)?;
        let mut out = Vec::new();
        for row in rows {
            let (conv, user, client, mid, ts, content, outgoing) = row.map_err(storage)?;
            out.push(DirectEntry {
                conversation: Conversation::parse_key(&conv)?,
                sender: user
                    .parse()
                    .map_err(|e| ClientError::Storage(format!("{e}")))?,
                sender_client: client
                    .parse()
                    .map_err(|e| ClientError::Storage(format!("{e}")))?,
                message_id: mid.as_slice().try_into().unwrap_or([0; 32]),
                timestamp_ms: ts as u64,
                text: MimiContent::decode(&content)
                    .ok()
                    .and_then(|c| c.display_text().map(|t| t.text.to_owned())),
                content,
                outgoing,
            });
        }
        Ok(out)
    }

    /// Users we have a Signal-channel conversation with.
    pub fn direct_conversations(&self) -> Result<Vec<Conversation>, ClientError> {
        let local = self.db();
        let mut stmt = local
            .prepare("SELECT DISTINCT conversation FROM direct_history ORDER BY conversation")
            .map_err(storage)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(storage)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(Conversation::parse_key(&r.map_err(storage)?)?);
        }
        Ok(out)
    }

    /// Users whose identity key changed and awaits acceptance.
    pub fn changed_identities(&self) -> Result<Vec<UserId>, ClientError> {
        let local = self.db();
        let mut stmt = local
            .prepare("SELECT DISTINCT peer_user FROM signal_trust WHERE pending_key IS NOT NULL")
            .map_err(storage)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(storage)?;
        let mut out = Vec::new();
        for r in rows {
            let s = r.map_err(storage)?;
            out.push(
                s.parse()
                    .map_err(|e| ClientError::Storage(format!("{s}: {e}")))?,
            );
        }
        Ok(out)
    }

    /// Accepts `user`'s new identity key(s) after the user checked them: new
    /// sessions are started, and messages held under the new key are decrypted
    /// now. Returns the events of those messages.
    pub async fn trust_new_identity(&mut self, user: &UserId) -> Result<Vec<Event>, ClientError> {
        let held: Vec<(i64, Vec<u8>)> = crate::blocking(|| {
            let local = self.db();
            in_transaction(&local, |conn| {
                let changed: Vec<String> = {
                    let mut stmt = conn
                        .prepare("SELECT peer_client FROM signal_trust WHERE peer_user = ?1 AND pending_key IS NOT NULL")
                        .map_err(storage)?;
                    let rows = stmt
                        .query_map(params![user.to_string()], |r| r.get(0))
                        .map_err(storage)?;
                    rows.collect::<Result<_, _>>().map_err(storage)?
                };
                if changed.is_empty() {
                    return Err(ClientError::Usage(format!(
                        "no changed identity key is waiting for {}",
                        user.handle()
                    )));
                }
                let mut held = Vec::new();
                for client in &changed {
                    conn.execute(
                        "UPDATE signal_trust SET identity_key = pending_key, pending_key = NULL WHERE peer_client = ?1",
                        params![client],
                    )
                    .map_err(storage)?;
                    conn.execute(
                        "DELETE FROM signal_sessions WHERE peer_client = ?1",
                        params![client],
                    )
                    .map_err(storage)?;
                    let mut stmt = conn
                        .prepare(
                            "SELECT id, sealed FROM signal_held WHERE peer_client = ?1 ORDER BY id",
                        )
                        .map_err(storage)?;
                    let rows = stmt
                        .query_map(params![client], |r| Ok((r.get(0)?, r.get(1)?)))
                        .map_err(storage)?;
                    for r in rows {
                        held.push(r.map_err(storage)?);
                    }
                }
                Ok(held)
            })
        })?;
        let mut events = Vec::new();
        for (id, sealed) in held {
            let opened = self.open_sealed(&sealed, None).await;
            self.db()
                .execute("DELETE FROM signal_held WHERE id = ?1", params![id])
                .map_err(storage)?;
            match opened {
                Ok(Opened::Event(e)) => events.push(*e),
                Ok(Opened::Nothing) => {}
                Err(e) => events.push(Event::Rejected {
                    room: entente_wire::signal::SEALED_INBOX.into(),
                    reason: e.to_string(),
                }),
            }
        }
        Ok(events)
    }

    /// Processes a sealed inbox item (the caller checked `item.room`).
    pub(crate) async fn process_sealed(
        &mut self,
        item: &InboxItem,
    ) -> Result<Option<Event>, ClientError> {
        let cursor = item.seq.to_string();
        let opened = self.open_sealed(&item.fanout, Some(&cursor)).await;
        match opened {
            Ok(Opened::Event(e)) => Ok(Some(*e)),
            Ok(Opened::Nothing) => Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "dropping an undecryptable or invalid sealed message");
                crate::store::set_setting(&self.db(), "inbox_cursor", &cursor)?;
                Ok(Some(Event::Rejected {
                    room: item.room.clone(),
                    reason: e.to_string(),
                }))
            }
        }
    }

    /// Unseals, checks the sender certificate and the sender's identity, decrypts
    /// and applies one sealed message in one transaction (with the inbox cursor,
    /// when given). A message under a changed identity key is held, not decrypted.
    pub(crate) async fn open_sealed(
        &mut self,
        sealed: &[u8],
        cursor: Option<&str>,
    ) -> Result<Opened, ClientError> {
        let me = crate::blocking(|| identity(&self.db(), Protocols::MlsAndSignal))?;
        let unsealed = sealed_sender::unseal(&me.pair, sealed)
            .map_err(|e| ClientError::Protocol(format!("sealed message: {e}")))?;
        let cert = &unsealed.certificate;
        let domain = cert
            .sender_domain()
            .map_err(|e| ClientError::Protocol(format!("sender certificate: {e}")))?;
        let issuer = self.issuer_key(&domain).await?;
        cert.verify(&issuer, now_ms())
            .map_err(|e| ClientError::Untrusted(format!("sender certificate: {e}")))?;
        let sender_client: ClientId = ClientId::parse_uri(&cert.sender_client)
            .or_else(|_| cert.sender_client.parse())
            .map_err(|e| ClientError::Protocol(format!("sender certificate client: {e}")))?;
        let sender_user: UserId = UserId::parse_uri(&cert.sender_user)
            .or_else(|_| cert.sender_user.parse())
            .map_err(|e| ClientError::Protocol(format!("sender certificate user: {e}")))?;
        if sender_client.user() != &sender_user || sender_user.domain() != &domain {
            return Err(ClientError::Untrusted(format!(
                "sender certificate names client {sender_client} of user {sender_user}, issued by {domain}"
            )));
        }
        crate::blocking(|| {
            let local = self.db();
            in_transaction(&local, |conn| {
                if let Some(c) = cursor {
                    set_setting(conn, "inbox_cursor", c)?;
                }
                // A user we blocked: dropped before decryption, whatever session
                // (even one started from a bundle fetched before the block) it uses.
                let blocked: bool = conn
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM blocked_users WHERE user = ?1)",
                        params![sender_user.to_string()],
                        |r| r.get(0),
                    )
                    .map_err(storage)?;
                if blocked {
                    tracing::debug!("dropping a sealed message from a blocked user");
                    return Ok(Opened::Nothing);
                }
                if check_identity(conn, &sender_client, &cert.identity_key)? == Trust::Changed {
                    conn.execute(
                        "INSERT INTO signal_held (peer_client, sealed, received_at) VALUES (?1, ?2, ?3)",
                        params![sender_client.to_string(), sealed, now_secs() as i64],
                    )
                    .map_err(storage)?;
                    return Ok(Opened::Event(Box::new(Event::IdentityChanged {
                        user: sender_user.clone(),
                        client: sender_client.clone(),
                    })));
                }
                let plaintext = match unsealed.content_type {
                    ContentType::PreKey | ContentType::Whisper => self.decrypt_pairwise(
                        conn,
                        &me,
                        &sender_client,
                        &cert.identity_key,
                        unsealed.content_type,
                        &unsealed.content,
                    )?,
                    ContentType::SenderKey => {
                        return groups::open_sender_key_message(
                            conn,
                            &sender_client,
                            &unsealed.content,
                        );
                    }
                    other => {
                        return Err(ClientError::Protocol(format!(
                            "unexpected sealed content type {other:?}"
                        )));
                    }
                };
                let frame = unpad(&plaintext)?;
                self.apply_frame(conn, &sender_client, frame)
            })
        })
    }

    fn decrypt_pairwise(
        &self,
        conn: &Connection,
        me: &LocalIdentity,
        sender: &ClientId,
        certified_identity: &PublicKey,
        content_type: ContentType,
        bytes: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let existing = load_session(conn, &sender.to_string())?;
        let kind = match content_type {
            ContentType::PreKey => MessageKind::PreKey,
            _ => MessageKind::Whisper,
        };
        if let Some(mut s) = existing
            && s.remote_identity() == certified_identity
        {
            match s.decrypt(kind, bytes) {
                Ok(p) => {
                    save_session(conn, sender, &s)?;
                    return Ok(p);
                }
                Err(e) if kind == MessageKind::Whisper => {
                    return Err(ClientError::Protocol(format!("message from {sender}: {e}")));
                }
                Err(_) => {} // a PreKey message for a new session: below
            }
        }
        if kind != MessageKind::PreKey {
            return Err(ClientError::Protocol(format!(
                "a message from {sender} for a session we do not have; they must start a new one"
            )));
        }
        let info = session::peek_prekey_message(bytes).map_err(proto)?;
        if &info.identity_key != certified_identity {
            return Err(ClientError::Untrusted(format!(
                "{sender}'s message claims an identity key its certificate does not"
            )));
        }
        let accepted = session::accept_prekey_message(
            &me.pair,
            me.registration_id,
            &prekeys::LocalPreKeys(conn),
            bytes,
            &mut OsRng,
        )
        .map_err(|e| ClientError::Protocol(format!("first message from {sender}: {e}")))?;
        prekeys::consume(
            conn,
            accepted.info.one_time_prekey_id,
            accepted.info.kyber_prekey_id,
        )?;
        save_session(conn, sender, &accepted.session)?;
        Ok(accepted.plaintext)
    }

    fn apply_frame(
        &self,
        conn: &Connection,
        sender: &ClientId,
        frame: &[u8],
    ) -> Result<Opened, ClientError> {
        let (&kind, body) = frame
            .split_first()
            .ok_or_else(|| ClientError::Protocol("empty frame".into()))?;
        match kind {
            FRAME_DIRECT => {
                let entry =
                    received_entry(Conversation::Direct(sender.user().clone()), sender, body)?;
                if insert_history(conn, &entry)? {
                    Ok(Opened::Event(Box::new(Event::Direct(entry))))
                } else {
                    Ok(Opened::Nothing)
                }
            }
            FRAME_GROUP_MESSAGE | FRAME_GROUP_CONTROL | FRAME_SENDER_KEY => {
                groups::apply_group_frame(conn, sender, kind, body).map(|e| match e {
                    Some(e) => Opened::Event(Box::new(e)),
                    None => Opened::Nothing,
                })
            }
            other => Err(ClientError::Protocol(format!("unknown frame kind {other}"))),
        }
    }
}

/// A received message as a history entry; the content must be MIMI content.
pub(crate) fn received_entry(
    conversation: Conversation,
    sender: &ClientId,
    content: &[u8],
) -> Result<DirectEntry, ClientError> {
    let parsed =
        MimiContent::decode(content).map_err(|e| ClientError::Protocol(format!("content: {e}")))?;
    let message_id = *parsed
        .message_id(&sender.user().to_string(), &conversation.message_id_scope())
        .map_err(|e| ClientError::Protocol(format!("message id: {e}")))?
        .as_bytes();
    Ok(DirectEntry {
        conversation,
        sender: sender.user().clone(),
        sender_client: sender.clone(),
        message_id,
        timestamp_ms: now_ms(),
        text: parsed.display_text().map(|t| t.text.to_owned()),
        content: content.to_vec(),
        outgoing: false,
    })
}

/// Stores a history entry; `false` if it was there already.
pub(crate) fn insert_history(conn: &Connection, e: &DirectEntry) -> Result<bool, ClientError> {
    let n = conn
        .execute(
            "INSERT OR IGNORE INTO direct_history
             (conversation, message_id, sender_client, sender_user, timestamp, content, outgoing)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                e.conversation.key(),
                e.message_id.as_slice(),
                e.sender_client.to_string(),
                e.sender.to_string(),
                e.timestamp_ms as i64,
                e.content,
                e.outgoing
            ],
        )
        .map_err(storage)?;
    Ok(n == 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn padding_round_trips_and_rejects_bad_padding() {
        for len in [0usize, 1, 158, 159, 160, 161, 1000] {
            let frame: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
            let padded = pad(&frame);
            assert_eq!(padded.len() % 160, 0);
            assert!(padded.len() > frame.len());
            assert_eq!(unpad(&padded).ok(), Some(frame.as_slice()));
        }
        assert!(unpad(&[0, 0, 0]).is_err());
        assert!(unpad(&[1, 2, 3, 0]).is_err());
        assert!(unpad(&[]).is_err());
    }

    #[test]
    fn conversation_keys_round_trip() {
        let u: UserId = "bob@b.example".parse().unwrap();
        for c in [Conversation::Direct(u), Conversation::Group([7; 16])] {
            assert_eq!(Conversation::parse_key(&c.key()).ok(), Some(c));
        }
    }
}
