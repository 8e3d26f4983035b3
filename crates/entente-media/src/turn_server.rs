//! The provider's TURN server (RFC 8656), UDP only, with time-limited credentials.
//!
//! Two devices that cannot reach each other directly relay their media through the
//! provider. The relay only ever sees what the devices send: DTLS handshakes and SRTP
//! packets, so media stays end-to-end encrypted; the relay knows who talks to whom and
//! how much, which is why it keeps counters and no per-user logs.
//!
//! The TURN protocol engine is webrtc-rs's `turn` crate. This module adds what a
//! provider needs around it:
//!
//! - credentials in the "TURN REST API" scheme (draft-uberti-behave-turn-rest-00): the
//!   provider hands a device `username = "<unix expiry seconds>:<label>"` and
//!   `password = base64(HMAC-SHA1(secret, username))` ([`turn_credentials`]); the
//!   server recomputes the password from the shared secret, so it keeps no user table,
//!   and refuses usernames whose expiry has passed;
//! - relayed addresses only on the configured `relay_ip`, at most `max_allocations`
//!   at a time;
//! - a peer filter: a relay on a public address never sends to, or accepts from,
//!   loopback, link-local, multicast, broadcast or unspecified addresses, so a
//!   credential holder cannot use it to reach services on the provider's own host. A
//!   relay whose `relay_ip` is itself loopback (tests, development) allows loopback
//!   and link-local peers;
//! - a bound on unauthenticated requests: every request without credentials makes the
//!   `turn` crate remember a fresh nonce for an hour, so they are admitted at most
//!   [`MAX_CHALLENGES_PER_SECOND`] (with an equal burst); the rest are dropped unanswered;
//! - counters ([`TurnServer::stats`]) and an optional tap of every relayed payload.
//!
//! ```no_run
//! # async fn run() -> Result<(), entente_media::turn_server::TurnError> {
//! use std::time::{Duration, SystemTime};
//! use entente_media::turn_server::{TurnServer, TurnServerConfig, turn_credentials};
//!
//! let secret = b"shared with the provider's credential endpoint".to_vec();
//! let server = TurnServer::start(TurnServerConfig {
//!     listen: "0.0.0.0:3478".parse().expect("literal"),
//!     relay_ip: "203.0.113.7".parse().expect("literal"),
//!     realm: "example.org".into(),
//!     secret: secret.clone(),
//!     max_allocations: 10_000,
//!     tap: None,
//! })
//! .await?;
//! // Handed to a device as JSON, next to the server address.
//! let creds = turn_credentials(&secret, "call", Duration::from_secs(3600), SystemTime::now());
//! # let _ = creds;
//! server.close().await;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use stun::attributes::{ATTR_DATA, ATTR_MESSAGE_INTEGRITY, ATTR_REALM, ATTR_USERNAME};
use stun::integrity::MessageIntegrity;
use stun::message::{CLASS_INDICATION, CLASS_REQUEST, METHOD_BINDING, METHOD_DATA, Message};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedSender;
use webrtc_util::Conn;
use zeroize::Zeroizing;

/// Unauthenticated requests (the first half of every allocation) admitted per second,
/// and the burst allowed; each makes the `turn` crate keep a nonce for an hour.
pub const MAX_CHALLENGES_PER_SECOND: u32 = 200;

/// How the provider runs its TURN server.
pub struct TurnServerConfig {
    /// UDP address clients send TURN requests to (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The only address relayed transport addresses are allocated on; its family
    /// decides which allocations are possible.
    pub relay_ip: IpAddr,
    /// The REALM of the long-term credential mechanism (RFC 8489 section 9.2).
    pub realm: String,
    /// Shared with whatever issues [`turn_credentials`]; never logged.
    pub secret: Vec<u8>,
    /// Allocations alive at once; further Allocate requests get 508 (Insufficient
    /// Capacity).
    pub max_allocations: usize,
    /// Receives a copy of every payload relayed, in either direction. For tests that
    /// check no plaintext crosses the relay; costs nothing when `None`.
    pub tap: Option<UnboundedSender<Vec<u8>>>,
}

impl fmt::Debug for TurnServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            listen,
            relay_ip,
            realm,
            secret: _,
            max_allocations,
            tap,
        } = self;
        f.debug_struct("TurnServerConfig")
            .field("listen", listen)
            .field("relay_ip", relay_ip)
            .field("realm", realm)
            .field("secret", &"<redacted>")
            .field("max_allocations", max_allocations)
            .field("tap", &tap.is_some())
            .finish()
    }
}

/// Time-limited TURN credentials, as the provider hands them to a device (JSON).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnCredentials {
    /// `"<unix expiry seconds>:<label>"`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub password: String,
    /// Unix time (seconds) after which the server refuses `username`.
    pub expires_at: u64,
}

impl fmt::Debug for TurnCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            username,
            password: _,
            expires_at,
        } = self;
        f.debug_struct("TurnCredentials")
            .field("username", username)
            .field("password", &"<redacted>")
            .field("expires_at", expires_at)
            .finish()
    }
}

/// Issues credentials valid until `now + ttl` (draft-uberti-behave-turn-rest-00
/// section 2.2): `username = "<expiry>:<label>"`,
/// `password = base64(HMAC-SHA1(secret, username))`.
///
/// `label` is opaque to the server; keep it free of user identifiers (for example a
/// random call id), since it travels in clear in every TURN request.
pub fn turn_credentials(
    secret: &[u8],
    label: &str,
    ttl: Duration,
    now: SystemTime,
) -> TurnCredentials {
    let expires_at = unix_seconds(now).saturating_add(ttl.as_secs());
    let username = format!("{expires_at}:{label}");
    let password = rest_password(secret, &username);
    TurnCredentials {
        username,
        password,
        expires_at,
    }
}

/// Counters of a running server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Allocations alive now.
    pub allocations: usize,
    /// Allocate requests refused for lack of capacity or a wrong address family.
    pub allocations_refused: u64,
    /// Payloads relayed, both directions (client to peer and peer to client).
    pub relayed_packets: u64,
    /// Payload bytes relayed, both directions, without TURN framing.
    pub relayed_bytes: u64,
    /// Requests carrying credentials that were unknown, expired or did not verify.
    pub auth_failures: u64,
    /// Unauthenticated requests dropped by the [`MAX_CHALLENGES_PER_SECOND`] bound.
    pub challenges_dropped: u64,
}

/// Why the TURN server or client failed, and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// Caller misuse: the configuration cannot work.
    #[error("invalid TURN configuration: {0}")]
    InvalidConfig(String),
    /// Environment: a socket operation failed.
    #[error("TURN {context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Caller misuse: the credentials expired before they were used.
    #[error("TURN credentials expired at {expires_at} (unix seconds), now is {now}")]
    CredentialsExpired {
        /// `TurnCredentials::expires_at`.
        expires_at: u64,
        /// The client's clock.
        now: u64,
    },
    /// The server refused the credentials: wrong password, expired or unknown username,
    /// or a different realm. RFC 8656 servers answer 401; the webrtc-rs server (ours)
    /// answers 400 once credentials are present.
    #[error("TURN server refused the credentials (error {code})")]
    CredentialsRejected {
        /// The STUN error code the server sent.
        code: u16,
    },
    /// The server refused the request for another reason (508: no capacity, ...).
    #[error("TURN server refused the request: error {code} {reason}")]
    Refused {
        /// The STUN error code.
        code: u16,
        /// Its reason phrase, if any.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("TURN server {server} did not answer within {after:?}")]
    Timeout {
        /// The server asked.
        server: SocketAddr,
        /// How long we waited.
        after: Duration,
    },
    /// The relay was closed, locally or by the server.
    #[error("TURN relay closed")]
    Closed,
    /// The TURN exchange failed in a way the variants above do not cover (a malformed
    /// answer, a permission that could not be created, ...); the text is the `turn`
    /// crate's.
    #[error("TURN {context}: {detail}")]
    Protocol {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        detail: String,
    },
}

/// A running TURN server.
pub struct TurnServer {
    server: turn::server::Server,
    local_addr: SocketAddr,
    counters: Arc<Counters>,
}

impl TurnServer {
    /// Binds `cfg.listen` and starts serving; returns once the socket is bound.
    pub async fn start(cfg: TurnServerConfig) -> Result<TurnServer, TurnError> {
        validate(&cfg)?;
        let TurnServerConfig {
            listen,
            relay_ip,
            realm,
            secret,
            max_allocations,
            tap,
        } = cfg;
        let secret = Arc::new(Zeroizing::new(secret));
        let socket = UdpSocket::bind(listen)
            .await
            .map_err(|source| TurnError::Io {
                context: "binding the listening socket",
                source,
            })?;
        let local_addr = socket.local_addr().map_err(|source| TurnError::Io {
            context: "reading the listening address",
            source,
        })?;
        let counters = Arc::new(Counters::default());
        let auth = Arc::new(RestAuth {
            secret,
            realm: realm.clone(),
        });
        let listener = ListenConn {
            socket,
            counters: Arc::clone(&counters),
            tap: tap.clone(),
            auth: Arc::clone(&auth),
            challenges: Mutex::new(TokenBucket::new(MAX_CHALLENGES_PER_SECOND)),
        };
        let generator = RelayGenerator {
            relay_ip,
            max_allocations,
            counters: Arc::clone(&counters),
            tap,
        };
        let server = turn::server::Server::new(turn::server::config::ServerConfig {
            conn_configs: vec![turn::server::config::ConnConfig {
                conn: Arc::new(listener),
                relay_addr_generator: Box::new(generator),
            }],
            realm,
            auth_handler: auth,
            channel_bind_timeout: Duration::ZERO, // the crate's default, 10 minutes
            alloc_close_notify: None,
        })
        .await
        .map_err(|e| TurnError::Protocol {
            context: "starting the server",
            detail: e.to_string(),
        })?;
        tracing::info!(%local_addr, %relay_ip, max_allocations, "TURN server started");
        Ok(TurnServer {
            server,
            local_addr,
            counters,
        })
    }

    /// The bound UDP address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TurnStats {
        let c = &self.counters;
        TurnStats {
            allocations: c.allocations.load(Ordering::Relaxed),
            allocations_refused: c.allocations_refused.load(Ordering::Relaxed),
            relayed_packets: c.relayed_packets.load(Ordering::Relaxed),
            relayed_bytes: c.relayed_bytes.load(Ordering::Relaxed),
            auth_failures: c.auth_failures.load(Ordering::Relaxed),
            challenges_dropped: c.challenges_dropped.load(Ordering::Relaxed),
        }
    }

    /// Stops serving and drops every allocation.
    pub async fn close(self) {
        if let Err(e) = self.server.close().await {
            tracing::debug!(error = %e, "closing the TURN server");
        }
    }
}

fn validate(cfg: &TurnServerConfig) -> Result<(), TurnError> {
    let bad = |why: &str| Err(TurnError::InvalidConfig(why.to_owned()));
    if cfg.relay_ip.is_unspecified() || cfg.relay_ip.is_multicast() {
        return bad("relay_ip must be a unicast address the relay can bind");
    }
    if cfg.realm.is_empty() {
        return bad("realm must not be empty");
    }
    if cfg.secret.is_empty() {
        return bad("secret must not be empty");
    }
    if cfg.max_allocations == 0 {
        return bad("max_allocations must be at least 1");
    }
    Ok(())
}

#[derive(Default)]
struct Counters {
    allocations: AtomicUsize,
    allocations_refused: AtomicU64,
    relayed_packets: AtomicU64,
    relayed_bytes: AtomicU64,
    auth_failures: AtomicU64,
    challenges_dropped: AtomicU64,
}

impl Counters {
    fn relayed(&self, payload: &[u8], tap: &Option<UnboundedSender<Vec<u8>>>) {
        self.relayed_packets.fetch_add(1, Ordering::Relaxed);
        self.relayed_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        if let Some(tap) = tap {
            // A dropped receiver only means nobody watches any more.
            let _ = tap.send(payload.to_vec());
        }
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn rest_password(secret: &[u8], username: &str) -> String {
    // HMAC accepts keys of any length; the error arm cannot happen.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(username.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// Recomputes the long-term key of a REST-API username; the `turn` crate checks
/// MESSAGE-INTEGRITY with it.
struct RestAuth {
    secret: Arc<Zeroizing<Vec<u8>>>,
    realm: String,
}

impl RestAuth {
    /// `MD5(username ":" realm ":" password)` (RFC 8489 section 9.2.2) for a username
    /// that has not expired, in our realm.
    fn key(&self, username: &str, realm: &str, now: SystemTime) -> Option<Vec<u8>> {
        let (expiry, _label) = username.split_once(':')?;
        let expiry: u64 = expiry.parse().ok()?;
        if expiry < unix_seconds(now) || realm != self.realm {
            return None;
        }
        let password = Zeroizing::new(rest_password(&self.secret, username));
        Some(turn::auth::generate_auth_key(username, realm, &password))
    }
}

impl turn::auth::AuthHandler for RestAuth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        _src_addr: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        self.key(username, realm, SystemTime::now())
            .ok_or(turn::Error::ErrNoSuchUser)
    }
}

/// Token bucket; `admit` is called once per unauthenticated request.
struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second);
        TokenBucket {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the listening socket lets through to the `turn` crate.
enum Inbound {
    /// Hand to the TURN engine.
    Pass,
    /// An unauthenticated request over the rate bound: drop unanswered.
    DropChallenge,
}

/// The client-facing socket. Reads count authentication failures and bound
/// unauthenticated requests; writes of Data indications and ChannelData are relayed
/// payloads on their way to a client.
struct ListenConn {
    socket: UdpSocket,
    counters: Arc<Counters>,
    tap: Option<UnboundedSender<Vec<u8>>>,
    auth: Arc<RestAuth>,
    challenges: Mutex<TokenBucket>,
}

impl ListenConn {
    fn classify(&self, datagram: &[u8]) -> Inbound {
        // ChannelData and anything that is not a STUN request goes straight through.
        if !stun::message::is_message(datagram) {
            return Inbound::Pass;
        }
        let mut msg = Message {
            raw: datagram.to_vec(),
            ..Default::default()
        };
        if msg.decode().is_err() {
            return Inbound::Pass; // the turn crate answers or drops it
        }
        if msg.typ.class != CLASS_REQUEST || msg.typ.method == METHOD_BINDING {
            return Inbound::Pass;
        }
        if !msg.contains(ATTR_MESSAGE_INTEGRITY) {
            let admitted = self
                .challenges
                .lock()
                .map(|mut bucket| bucket.admit(Instant::now()))
                .unwrap_or(true);
            if admitted {
                return Inbound::Pass;
            }
            self.counters
                .challenges_dropped
                .fetch_add(1, Ordering::Relaxed);
            return Inbound::DropChallenge;
        }
        // The turn crate refuses these itself; we only count them. A request whose
        // nonce went stale is answered 438 by the crate before it checks credentials,
        // but a bad MAC is an authentication failure all the same.
        if !self.credentials_verify(&mut msg) {
            self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
        }
        Inbound::Pass
    }

    fn credentials_verify(&self, msg: &mut Message) -> bool {
        let text = |attr| msg.get(attr).ok().and_then(|v| String::from_utf8(v).ok());
        let (Some(username), Some(realm)) = (text(ATTR_USERNAME), text(ATTR_REALM)) else {
            return false;
        };
        match self.auth.key(&username, &realm, SystemTime::now()) {
            Some(key) => MessageIntegrity(key).check(msg).is_ok(),
            None => false,
        }
    }

    /// The payload of a Data indication or ChannelData message the crate sends to a
    /// client, i.e. a datagram a peer sent to a relayed address.
    fn count_outbound(&self, datagram: &[u8]) {
        if let Some(payload) = channel_data_payload(datagram) {
            self.counters.relayed(payload, &self.tap);
        } else if stun::message::is_message(datagram) {
            let mut msg = Message {
                raw: datagram.to_vec(),
                ..Default::default()
            };
            if msg.decode().is_ok()
                && msg.typ.class == CLASS_INDICATION
                && msg.typ.method == METHOD_DATA
                && let Ok(payload) = msg.get(ATTR_DATA)
            {
                self.counters.relayed(&payload, &self.tap);
            }
        }
    }
}

/// RFC 8656 section 12.4: channel number (0x4000..=0x4FFF), length, data.
fn channel_data_payload(datagram: &[u8]) -> Option<&[u8]> {
    let [c0, _, l0, l1, rest @ ..] = datagram else {
        return None;
    };
    if !(0x40..=0x4f).contains(c0) {
        return None;
    }
    rest.get(..usize::from(u16::from_be_bytes([*l0, *l1])))
}

#[async_trait]
impl Conn for ListenConn {
    async fn connect(&self, _addr: SocketAddr) -> Result<(), webrtc_util::Error> {
        Err(webrtc_util::Error::Other(
            "connect on a TURN listener".into(),
        ))
    }

    async fn recv(&self, _buf: &mut [u8]) -> Result<usize, webrtc_util::Error> {
        Err(webrtc_util::Error::Other("recv on a TURN listener".into()))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), webrtc_util::Error> {
        loop {
            let (n, from) = match self.socket.recv_from(buf).await {
                Ok(v) => v,
                // ICMP port unreachable from a vanished client surfaces here on some
                // systems; it must not end the read loop (which would stop the server).
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            match self.classify(buf.get(..n).unwrap_or_default()) {
                Inbound::Pass => return Ok((n, from)),
                Inbound::DropChallenge => continue,
            }
        }
    }

    async fn send(&self, _buf: &[u8]) -> Result<usize, webrtc_util::Error> {
        Err(webrtc_util::Error::Other("send on a TURN listener".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> Result<usize, webrtc_util::Error> {
        self.count_outbound(buf);
        Ok(self.socket.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> Result<SocketAddr, webrtc_util::Error> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> Result<(), webrtc_util::Error> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::WouldBlock
    )
}

/// Binds relayed addresses on `relay_ip` only, up to `max_allocations`.
struct RelayGenerator {
    relay_ip: IpAddr,
    max_allocations: usize,
    counters: Arc<Counters>,
    tap: Option<UnboundedSender<Vec<u8>>>,
}

#[async_trait]
impl turn::relay::RelayAddressGenerator for RelayGenerator {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let refuse = |why: &str| {
            self.counters
                .allocations_refused
                .fetch_add(1, Ordering::Relaxed);
            Err(turn::Error::Other(why.to_owned()))
        };
        if use_ipv4 != self.relay_ip.is_ipv4() {
            return refuse("requested address family not relayed here");
        }
        let Some(slot) = AllocationSlot::take(&self.counters, self.max_allocations) else {
            return refuse("allocation limit reached");
        };
        let socket = UdpSocket::bind(SocketAddr::new(self.relay_ip, requested_port)).await?;
        let addr = socket.local_addr()?;
        let conn = RelayConn {
            socket,
            allow_local_peers: self.relay_ip.is_loopback(),
            counters: Arc::clone(&self.counters),
            tap: self.tap.clone(),
            _slot: slot,
        };
        Ok((Arc::new(conn), addr))
    }
}

/// One counted allocation; dropping it (with the relayed socket, when the `turn` crate
/// drops the allocation) frees the slot.
struct AllocationSlot {
    counters: Arc<Counters>,
}

impl AllocationSlot {
    fn take(counters: &Arc<Counters>, max: usize) -> Option<AllocationSlot> {
        counters
            .allocations
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(AllocationSlot {
            counters: Arc::clone(counters),
        })
    }
}

impl Drop for AllocationSlot {
    fn drop(&mut self) {
        self.counters.allocations.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A relayed transport address. Sends are payloads on their way from a client to a
/// peer; receives pass the peer filter before the `turn` crate checks permissions.
struct RelayConn {
    socket: UdpSocket,
    allow_local_peers: bool,
    counters: Arc<Counters>,
    tap: Option<UnboundedSender<Vec<u8>>>,
    _slot: AllocationSlot,
}

#[async_trait]
impl Conn for RelayConn {
    async fn connect(&self, _addr: SocketAddr) -> Result<(), webrtc_util::Error> {
        Err(webrtc_util::Error::Other(
            "connect on a relayed address".into(),
        ))
    }

    async fn recv(&self, _buf: &mut [u8]) -> Result<usize, webrtc_util::Error> {
        Err(webrtc_util::Error::Other(
            "recv on a relayed address".into(),
        ))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), webrtc_util::Error> {
        loop {
            match self.socket.recv_from(buf).await {
                Ok((n, from)) if peer_allowed(from, self.allow_local_peers) => {
                    return Ok((n, from));
                }
                Ok(_) => continue,
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn send(&self, _buf: &[u8]) -> Result<usize, webrtc_util::Error> {
        Err(webrtc_util::Error::Other(
            "send on a relayed address".into(),
        ))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> Result<usize, webrtc_util::Error> {
        if !peer_allowed(target, self.allow_local_peers) {
            return Err(webrtc_util::Error::Other(
                "peer address not relayed to".into(),
            ));
        }
        self.counters.relayed(buf, &self.tap);
        match self.socket.send_to(buf, target).await {
            Ok(n) => Ok(n),
            // A peer's ICMP unreachable is the peer's problem, not the allocation's.
            Err(e) if is_transient(&e) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    fn local_addr(&self) -> Result<SocketAddr, webrtc_util::Error> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> Result<(), webrtc_util::Error> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// Peers a relayed address may exchange datagrams with (RFC 8656 section 21.3 asks
/// servers to think about where relayed traffic can go).
fn peer_allowed(peer: SocketAddr, allow_local: bool) -> bool {
    if peer.port() == 0 {
        return false;
    }
    match peer.ip().to_canonical() {
        IpAddr::V4(ip) => {
            if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
                return false;
            }
            allow_local || !(ip.is_loopback() || ip.is_link_local())
        }
        IpAddr::V6(ip) => {
            if ip.is_unspecified() || ip.is_multicast() {
                return false;
            }
            allow_local || !(ip.is_loopback() || ip.is_unicast_link_local())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn peer_filter() {
        let p = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(peer_allowed(p("198.51.100.1:5000"), false));
        assert!(peer_allowed(p("10.0.0.1:5000"), false));
        assert!(!peer_allowed(p("127.0.0.1:5000"), false));
        assert!(peer_allowed(p("127.0.0.1:5000"), true));
        assert!(!peer_allowed(p("[::ffff:127.0.0.1]:5000"), false));
        assert!(!peer_allowed(p("169.254.169.254:80"), false));
        assert!(!peer_allowed(p("[fe80::1]:5000"), false));
        assert!(!peer_allowed(p("255.255.255.255:5000"), true));
        assert!(!peer_allowed(p("224.0.0.1:5000"), true));
        assert!(!peer_allowed(p("0.0.0.0:5000"), true));
        assert!(!peer_allowed(p("198.51.100.1:0"), true));
    }

    #[test]
    fn channel_data_framing() {
        assert_eq!(
            channel_data_payload(&[0x40, 0, 0, 3, 1, 2, 3, 0]),
            Some(&[1, 2, 3][..])
        );
        assert_eq!(channel_data_payload(&[0x40, 0, 0, 5, 1, 2, 3]), None);
        assert_eq!(channel_data_payload(&[0x00, 1, 0, 0]), None);
        assert_eq!(channel_data_payload(&[0x40, 0, 0]), None);
    }

    #[test]
    fn token_bucket_refills() {
        let start = Instant::now();
        let mut b = TokenBucket::new(2);
        assert!(b.admit(start));
        assert!(b.admit(start));
        assert!(!b.admit(start));
        assert!(b.admit(start + Duration::from_millis(600)));
    }

    #[test]
    fn rest_auth_refuses_expired_and_foreign_realm() {
        let auth = RestAuth {
            secret: Arc::new(Zeroizing::new(b"s".to_vec())),
            realm: "r".into(),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        assert!(auth.key("1000:x", "r", now).is_some());
        assert!(auth.key("999:x", "r", now).is_none());
        assert!(auth.key("1000:x", "other", now).is_none());
        assert!(auth.key("1000", "r", now).is_none());
        assert!(auth.key("soon:x", "r", now).is_none());
    }
}
