//! Calls: signalling as end-to-end encrypted MIMI content, media through
//! `entente-media`.
//!
//! **1:1 calls** are plain WebRTC between two devices. The offer, the answer, trickled
//! ICE candidates and the hang-up are MLS application messages in the two users'
//! room, so the DTLS fingerprints in the SDP are authenticated by the room's
//! end-to-end encryption and no provider can put itself in the media path. Media
//! goes directly between the devices, or through a provider's TURN relay, which sees
//! only SRTP.
//!
//! Each signal is a MIMI content message (draft-ietf-mimi-content) whose body has
//! disposition `session` (7) and whose `topicId` is the 16-byte call ID:
//!
//! | signal | body |
//! |---|---|
//! | offer | SinglePart `application/sdp;type=offer` holding the SDP |
//! | answer | SinglePart `application/sdp;type=answer` |
//! | candidates | SinglePart `application/trickle-ice-sdpfrag` (RFC 8840): `a=candidate:` lines, `a=end-of-candidates` when complete |
//! | hang-up | NullPart |
//!
//! Signals expire after two minutes (`expires`), are not kept in the history and
//! are not resent when they cannot be delivered: a late offer is no use to anyone.
//!
//! **Group calls** go through the SFU of the room's hub provider ([`GroupCall`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use entente_media::peer::{Layout, Peer, PeerConfig, PeerControl, RelayLink};
use entente_wire::content::{Disposition, Expiration, MimiContent, NestedPart, PartBody};
use entente_wire::ids::{ClientId, RoomId};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::{Client, ClientError};

/// Media type of an offer or answer (RFC 4566 SDP; the JSEP type as a parameter).
pub const SDP_OFFER: &str = "application/sdp;type=offer";
pub const SDP_ANSWER: &str = "application/sdp;type=answer";
/// Media type of trickled ICE candidates (RFC 8840).
pub const TRICKLE_ICE: &str = "application/trickle-ice-sdpfrag";
/// How long a call signal is worth delivering.
const SIGNAL_LIFETIME_SECS: u32 = 120;

/// One call signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallSignal {
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    /// `candidate:` attribute values; `complete` when no more will follow.
    Candidates {
        lines: Vec<String>,
        complete: bool,
    },
    Hangup,
}

/// A call signal and the call it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallMessage {
    pub call_id: [u8; 16],
    pub signal: CallSignal,
}

impl CallMessage {
    /// The MIMI content carrying this signal.
    pub fn to_content(&self) -> MimiContent {
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let part = match &self.signal {
            CallSignal::Offer { sdp } => {
                NestedPart::single(Disposition::Session, SDP_OFFER, sdp.as_bytes())
            }
            CallSignal::Answer { sdp } => {
                NestedPart::single(Disposition::Session, SDP_ANSWER, sdp.as_bytes())
            }
            CallSignal::Candidates { lines, complete } => {
                let mut frag = String::new();
                for l in lines {
                    frag.push_str("a=");
                    frag.push_str(l.trim().trim_start_matches("a="));
                    frag.push_str("\r\n");
                }
                if *complete {
                    frag.push_str("a=end-of-candidates\r\n");
                }
                NestedPart::single(Disposition::Session, TRICKLE_ICE, frag.into_bytes())
            }
            CallSignal::Hangup => NestedPart::null(Disposition::Session),
        };
        let mut content = MimiContent::new(salt, part);
        content.topic_id = self.call_id.to_vec();
        content.expires = Some(Expiration {
            relative: true,
            time: SIGNAL_LIFETIME_SECS,
        });
        content
    }

    /// The call signal in `content`: `None` when it is not one (not a `session`
    /// body), an error when it claims to be one but is malformed.
    pub fn from_content(content: &MimiContent) -> Option<Result<CallMessage, ClientError>> {
        if content.nested_part.disposition != Disposition::Session {
            return None;
        }
        Some(Self::parse(content))
    }

    fn parse(content: &MimiContent) -> Result<CallMessage, ClientError> {
        let bad = |why: &str| ClientError::Protocol(format!("call signal: {why}"));
        let call_id: [u8; 16] = content
            .topic_id
            .as_slice()
            .try_into()
            .map_err(|_| bad("the topic is not a 16-byte call ID"))?;
        let signal = match &content.nested_part.body {
            PartBody::Null => CallSignal::Hangup,
            PartBody::Single(part) => {
                let text = std::str::from_utf8(&part.content).map_err(|_| bad("not UTF-8"))?;
                if text.len() > 64 * 1024 {
                    return Err(bad("longer than 64 KiB"));
                }
                let media_type = part.content_type.replace(' ', "").to_ascii_lowercase();
                match media_type.as_str() {
                    SDP_OFFER => CallSignal::Offer {
                        sdp: text.to_owned(),
                    },
                    SDP_ANSWER => CallSignal::Answer {
                        sdp: text.to_owned(),
                    },
                    TRICKLE_ICE => {
                        let mut lines = Vec::new();
                        let mut complete = false;
                        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                            if line == "a=end-of-candidates" {
                                complete = true;
                            } else if let Some(c) = line.strip_prefix("a=candidate:") {
                                lines.push(format!("candidate:{c}"));
                            }
                            // Other attributes of the fragment (ufrag, mid) are ours to
                            // ignore: a call has one ICE session.
                        }
                        CallSignal::Candidates { lines, complete }
                    }
                    other => return Err(bad(&format!("unknown session media type {other}"))),
                }
            }
            _ => return Err(bad("the body must be one inline part or none")),
        };
        Ok(CallMessage { call_id, signal })
    }

    /// A fresh random call ID.
    pub fn new_call_id() -> [u8; 16] {
        let mut id = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut id);
        id
    }
}

/// How a device takes part in a call's media.
#[derive(Clone)]
pub struct CallOptions {
    /// The local address to use (and advertise, unless `relay_only`).
    pub ip: IpAddr,
    /// Also offer a relayed candidate from our provider's TURN server.
    pub use_relay: bool,
    /// Only the relayed candidate: the other side never learns our address.
    pub relay_only: bool,
    /// Every datagram we send (tests look at the wire).
    pub tap: Option<tokio::sync::mpsc::UnboundedSender<Vec<u8>>>,
}

impl CallOptions {
    pub fn new(ip: IpAddr) -> Self {
        Self {
            ip,
            use_relay: false,
            relay_only: false,
            tap: None,
        }
    }
}

/// TURN credentials from our provider (`GET /v1/calls/turn`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TurnInfo {
    /// `host:port` of the provider's TURN server (UDP).
    pub server: String,
    pub realm: String,
    pub username: String,
    pub password: String,
    /// Seconds since the UNIX epoch.
    pub expires_at: u64,
}

/// A 1:1 call in progress: who it is with and the WebRTC peer.
pub struct Call {
    pub id: [u8; 16],
    pub room: RoomId,
    /// The device that answered (caller side) or called (callee side).
    pub remote: Option<ClientId>,
    /// Negotiates and hangs up while the audio task owns the peer.
    pub control: PeerControl,
    /// The WebRTC peer, until the audio task takes it
    /// ([`entente_media::session::run_audio`]).
    pub peer: Option<Peer>,
    answered: bool,
}

impl Call {
    /// Applies a signal of this call from the room. Returns `true` when the remote
    /// side hung up. Signals of other calls, and of devices other than the one that
    /// answered, are ignored.
    pub async fn handle(
        &mut self,
        from: &ClientId,
        msg: &CallMessage,
    ) -> Result<bool, ClientError> {
        if msg.call_id != self.id {
            return Ok(false);
        }
        if let Some(remote) = &self.remote
            && remote != from
        {
            return Ok(false);
        }
        match &msg.signal {
            CallSignal::Answer { sdp } if !self.answered => {
                self.control.accept_answer(sdp).await.map_err(media)?;
                self.answered = true;
                self.remote = Some(from.clone());
            }
            CallSignal::Candidates { lines, .. } => {
                for l in lines {
                    // One bad candidate does not end the call.
                    if let Err(e) = self.control.add_remote_candidate(l).await {
                        tracing::debug!(error = %e, "ignored a remote candidate");
                    }
                }
            }
            CallSignal::Hangup => return Ok(true),
            _ => {}
        }
        Ok(false)
    }
}

pub(crate) fn media(e: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol(format!("call: {e}"))
}

impl Client {
    /// Sends a call signal to a room: encrypted like any message, but not kept in
    /// the history and not queued for resending.
    pub async fn send_call_message(
        &mut self,
        room: &RoomId,
        msg: &CallMessage,
    ) -> Result<(), ClientError> {
        self.send_ephemeral(room, &msg.to_content()).await
    }

    /// Calls the other members of a (two-person) room: makes the offer and sends it
    /// with our candidates. The answer and the remote candidates arrive as
    /// [`crate::Event::Call`]; give them to [`Call::handle`].
    pub async fn start_call(
        &mut self,
        room: &RoomId,
        options: &CallOptions,
    ) -> Result<Call, ClientError> {
        let peer = self.call_peer(options, Layout::Call).await?;
        let id = CallMessage::new_call_id();
        let sdp = peer.create_offer().await.map_err(media)?;
        self.send_call_message(
            room,
            &CallMessage {
                call_id: id,
                signal: CallSignal::Offer { sdp },
            },
        )
        .await?;
        self.send_candidates(room, id, &peer).await?;
        Ok(Call {
            id,
            room: room.clone(),
            remote: None,
            control: peer.control(),
            peer: Some(peer),
            answered: false,
        })
    }

    /// Answers an offer received from `from` in `room`.
    pub async fn answer_call(
        &mut self,
        room: &RoomId,
        from: &ClientId,
        offer: &CallMessage,
        options: &CallOptions,
    ) -> Result<Call, ClientError> {
        let CallSignal::Offer { sdp } = &offer.signal else {
            return Err(ClientError::Usage("only an offer can be answered".into()));
        };
        let peer = self.call_peer(options, Layout::Call).await?;
        let answer = peer.accept_offer(sdp).await.map_err(media)?;
        let id = offer.call_id;
        self.send_call_message(
            room,
            &CallMessage {
                call_id: id,
                signal: CallSignal::Answer { sdp: answer },
            },
        )
        .await?;
        self.send_candidates(room, id, &peer).await?;
        Ok(Call {
            id,
            room: room.clone(),
            remote: Some(from.clone()),
            control: peer.control(),
            peer: Some(peer),
            answered: true,
        })
    }

    /// Sends all of `peer`'s candidates (trickle ICE, complete at once).
    async fn send_candidates(
        &mut self,
        room: &RoomId,
        call_id: [u8; 16],
        peer: &Peer,
    ) -> Result<(), ClientError> {
        let lines = peer.local_candidates().to_vec();
        let signal = CallSignal::Candidates {
            lines,
            complete: true,
        };
        self.send_call_message(room, &CallMessage { call_id, signal })
            .await
    }

    /// Hangs up: tells the room and closes the media.
    pub async fn hang_up(&mut self, room: &RoomId, call_id: [u8; 16]) -> Result<(), ClientError> {
        self.send_call_message(
            room,
            &CallMessage {
                call_id,
                signal: CallSignal::Hangup,
            },
        )
        .await
    }

    /// The local IP address calls use by default: the one this machine reaches its
    /// provider from (a UDP "connect" picks the route; nothing is sent).
    pub async fn call_ip(&self) -> Result<IpAddr, ClientError> {
        let endpoint = self.transport.endpoint();
        let target = match endpoint.address {
            Some(a) => a,
            None => tokio::net::lookup_host((endpoint.domain.as_str(), 443))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| {
                    ClientError::Unreachable(format!("cannot resolve {}", endpoint.domain))
                })?,
        };
        let any: SocketAddr = if target.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let probe = tokio::net::UdpSocket::bind(any)
            .await
            .map_err(|e| ClientError::Unreachable(format!("no UDP socket for calls: {e}")))?;
        probe.connect(target).await.map_err(|e| {
            ClientError::Unreachable(format!("no route to the provider for calls: {e}"))
        })?;
        probe
            .local_addr()
            .map(|a| a.ip())
            .map_err(|e| ClientError::Unreachable(format!("no local address for calls: {e}")))
    }

    /// Time-limited credentials for our provider's TURN relay.
    pub async fn turn_info(&self) -> Result<TurnInfo, ClientError> {
        self.signed::<(), _>(reqwest::Method::GET, "/v1/calls/turn", None)
            .await
    }

    /// A WebRTC peer for a call, with a relayed candidate when asked.
    pub(crate) async fn call_peer(
        &self,
        options: &CallOptions,
        layout: Layout,
    ) -> Result<Peer, ClientError> {
        let mut config = PeerConfig::new(options.ip, layout);
        config.tap = options.tap.clone();
        if options.use_relay || options.relay_only {
            config.relay = Some(self.relay_link().await?);
            config.host_candidate = !options.relay_only;
        }
        Peer::new(config).await.map_err(media)
    }

    async fn relay_link(&self) -> Result<RelayLink, ClientError> {
        let info = self.turn_info().await?;
        let server: SocketAddr = info.server.parse().map_err(|_| {
            ClientError::Protocol(format!(
                "the provider's TURN server address {} is not host:port",
                info.server
            ))
        })?;
        let creds = entente_media::turn_server::TurnCredentials {
            username: info.username.clone(),
            password: info.password.clone(),
            expires_at: info.expires_at,
        };
        let relay = entente_media::relay::TurnRelay::allocate(server, &creds, &info.realm)
            .await
            .map_err(media)?;
        Ok(RelayLink::from_relay(relay))
    }
}

/// Shared frame protection for [`entente_media::session::run_audio`].
pub fn plain_crypto() -> entente_media::session::SharedCrypto {
    Arc::new(Mutex::new(entente_media::session::Plain))
}

// ------------------------------------------------------------------ group calls

/// SFrame cipher suite of group calls: `AES_128_GCM_SHA256_128` (RFC 9605 0x0004),
/// the one the RFC recommends for real-time media.
pub const SFRAME_SUITE: entente_core::sframe::CipherSuite =
    entente_core::sframe::CipherSuite::Aes128Gcm;
/// Low bits of the MLS epoch carried in every SFrame KID (RFC 9605 section 5.2, E):
/// 256 epochs before reuse, far more than a call's grace period spans.
pub const SFRAME_EPOCH_BITS: u8 = 8;
/// The MLS exporter label of RFC 9605 section 5.2.
pub const SFRAME_EXPORTER_LABEL: &str = "SFrame 1.0 Base Key";
/// Receive slots a device asks the SFU for: the most other members it hears at once.
pub const GROUP_CALL_SLOTS: usize = 8;

/// One epoch's SFrame keying material of a room, exported from its MLS group.
pub struct SframeEpoch {
    pub epoch: u64,
    /// `MLS-Exporter("SFrame 1.0 Base Key", "", AEAD.Nk)`.
    pub base_key: zeroize::Zeroizing<Vec<u8>>,
    pub own_leaf: u32,
    pub members: Vec<u32>,
}

/// SFrame over the room's MLS epochs, as the frame protection of a group call.
pub struct SframeCrypto {
    inner: entente_core::sframe::MlsSframe,
}

impl SframeCrypto {
    pub fn new(first: &SframeEpoch) -> Result<Self, ClientError> {
        let mut inner =
            entente_core::sframe::MlsSframe::new(SFRAME_SUITE, SFRAME_EPOCH_BITS).map_err(media)?;
        inner
            .set_epoch(first.epoch, &first.base_key, first.own_leaf, &first.members)
            .map_err(media)?;
        Ok(Self { inner })
    }

    /// Decrypts a frame: the sender's leaf index, the epoch whose key opened it, and
    /// the frame.
    pub fn decrypt(&mut self, frame: &[u8]) -> Result<(u32, u64, Vec<u8>), ClientError> {
        self.inner
            .decrypt(frame, &[])
            .map(|f| (f.sender, f.epoch, f.plaintext))
            .map_err(media)
    }

    /// The epoch we send in.
    pub fn epoch(&self) -> Option<u64> {
        self.inner.current_epoch()
    }

    /// Moves to a newer epoch: we send under its key at once and still accept the
    /// previous epoch's frames (members that have not processed the commit yet);
    /// anything older is forgotten.
    pub fn rekey(&mut self, next: &SframeEpoch) -> Result<(), ClientError> {
        let previous = self.inner.current_epoch();
        self.inner
            .set_epoch(next.epoch, &next.base_key, next.own_leaf, &next.members)
            .map_err(media)?;
        for e in self.inner.epochs() {
            if Some(e) != previous && e != next.epoch {
                self.inner.retire_epoch(e);
            }
        }
        Ok(())
    }
}

impl entente_media::session::FrameCrypto for SframeCrypto {
    fn seal(&mut self, frame: &[u8]) -> Result<Vec<u8>, String> {
        self.inner.encrypt(frame, &[]).map_err(|e| e.to_string())
    }
    fn open(&mut self, frame: &[u8], _track: usize) -> Result<(u64, Vec<u8>), String> {
        self.inner
            .decrypt(frame, &[])
            .map(|f| (u64::from(f.sender), f.plaintext))
            .map_err(|e| e.to_string())
    }
}

/// A device in a room's group call, connected to the hub's SFU.
pub struct GroupCall {
    pub room: RoomId,
    /// The connection to the SFU; `run_audio` takes it.
    pub peer: Option<Peer>,
    /// SFrame state, shared with the audio task and rekeyed by [`Client::rekey_group_call`].
    pub keys: Arc<Mutex<SframeCrypto>>,
}

impl GroupCall {
    /// The frame protection to give to `run_audio`.
    pub fn crypto(&self) -> entente_media::session::SharedCrypto {
        self.keys.clone()
    }
}

#[derive(Serialize)]
struct JoinCall<'a> {
    offer: &'a str,
}

#[derive(Deserialize)]
struct JoinAnswer {
    answer: String,
}

impl Client {
    /// The SFrame keying material of the room's current MLS epoch.
    pub fn sframe_epoch(&self, room: &RoomId) -> Result<SframeEpoch, ClientError> {
        self.with_group(room, |group| {
            let base_key = group
                .export_secret(
                    &self.crypto,
                    SFRAME_EXPORTER_LABEL,
                    &[],
                    SFRAME_SUITE.key_len(),
                )
                .map_err(|e| ClientError::Mls(format!("exporting the SFrame secret: {e}")))?;
            Ok(SframeEpoch {
                epoch: group.epoch().as_u64(),
                base_key: zeroize::Zeroizing::new(base_key),
                own_leaf: group.own_leaf_index().u32(),
                members: group.members().map(|m| m.index.u32()).collect(),
            })
        })
    }

    /// Joins the group call of a room at its hub's SFU (`POST /v1/rooms/{room}/call`
    /// at our provider, which passes it on to the hub). Media frames are
    /// SFrame-encrypted under the room's current MLS epoch.
    pub async fn join_group_call(
        &mut self,
        room: &RoomId,
        options: &CallOptions,
    ) -> Result<GroupCall, ClientError> {
        self.require_room(room)?;
        let keys = SframeCrypto::new(&self.sframe_epoch(room)?)?;
        let peer = self
            .call_peer(
                options,
                Layout::Sfu {
                    slots: GROUP_CALL_SLOTS,
                },
            )
            .await?;
        let offer = peer.create_offer().await.map_err(media)?;
        let answer: JoinAnswer = self
            .signed(
                reqwest::Method::POST,
                &crate::rooms::room_path(room, "call"),
                Some(&JoinCall { offer: &offer }),
            )
            .await?;
        peer.accept_answer(&answer.answer).await.map_err(media)?;
        Ok(GroupCall {
            room: room.clone(),
            peer: Some(peer),
            keys: Arc::new(Mutex::new(keys)),
        })
    }

    /// Follows the room's MLS epoch: call after a commit was applied
    /// ([`crate::Event::MembersChanged`]). Returns whether the keys changed.
    pub fn rekey_group_call(&self, call: &GroupCall) -> Result<bool, ClientError> {
        let next = self.sframe_epoch(&call.room)?;
        let mut keys = match call.keys.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        if keys.epoch().is_some_and(|e| e >= next.epoch) {
            return Ok(false);
        }
        keys.rekey(&next)?;
        Ok(true)
    }
}
