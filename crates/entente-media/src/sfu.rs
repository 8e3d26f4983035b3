//! The provider's selective forwarding unit (SFU) for group calls.
//!
//! Every participant of a call connects to the room's hub provider with standard WebRTC
//! (ICE, DTLS-SRTP) and sends audio frames that the client has already encrypted with
//! SFrame under keys from the room's MLS epoch. The SFU forwards those frames unchanged:
//! it never holds a key that could decrypt them.
//!
//! # Shape of a participant's offer
//!
//! The participant is the offerer, the SFU answers, and nobody renegotiates. The offer
//! holds only audio m-lines, each with `a=rtpmap:111 opus/48000/2` and a `a=mid:` of
//! 1 to 16 ASCII letters or digits, all distinct:
//!
//! 1. exactly one `a=sendonly` m-line first: the participant's own audio;
//! 2. then N `a=recvonly` m-lines ("slots", `0 <= N <=` [`SfuConfig::max_slots`]): each
//!    carries one other participant's audio. The SFU gives every sender the first free
//!    slot of each receiver and frees it when the sender leaves; with no slot free the
//!    frame is dropped (and counted). Which sender is on a slot is not signalled: the
//!    SFrame key id of each frame says who sent it.
//!
//! Anything else (video, data channels, `sendrecv`, no Opus at PT 111, too many slots)
//! is refused with an [`OfferError`] before any state is created.
//!
//! # Design
//!
//! One UDP socket serves every call; one str0m [`Rtc`] per participant (ICE-lite,
//! Opus only); each datagram goes to the `Rtc` that [`Rtc::accepts`] it. A single
//! driver task owns the socket and every `Rtc`; [`Sfu`] talks to it over channels, so
//! no lock is ever held across an await. Offers are parsed and answered on the caller's
//! task, so an expensive or hostile offer never stalls forwarding.
//!
//! Frames are forwarded at frame level (str0m `MediaData` in, `Writer::write` out) with
//! the sender's RTP time; each receiver slot keeps its own timeline continuous when it
//! changes sender.
//!
//! A participant is dropped when its `Rtc` dies (ICE disconnected, DTLS failure) or
//! when nothing valid has arrived from it for [`SfuConfig::idle_timeout`].

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::crypto::{CryptoProvider, from_feature_flags};
use str0m::media::{Direction, Frequency, MediaData, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// Largest offer the SFU reads; browsers' offers are a few KiB.
pub const MAX_OFFER_LEN: usize = 64 * 1024;
/// Longest call or participant id accepted.
pub const MAX_ID_LEN: usize = 256;
/// The payload type every m-line must map to Opus.
pub const OPUS_PT: u8 = 111;

/// How often the driver looks for idle participants when nothing else wakes it.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
/// Datagrams read in one go before the driver looks at timers and commands again.
const READ_BATCH: usize = 64;
/// 20 ms of audio at 48 kHz: the gap a slot's timeline gets when its sender changes.
const FRAME_TICKS: u64 = 960;

/// Configuration of an [`Sfu`].
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Address the single UDP socket binds to.
    pub listen: SocketAddr,
    /// Address advertised as the ICE candidate; defaults to the bound address (which
    /// must then be a specific IP, not `0.0.0.0`).
    pub public_addr: Option<SocketAddr>,
    /// Participants one call may hold (default 16).
    pub max_participants_per_call: usize,
    /// Calls the SFU hosts at once (default 1024).
    pub max_calls: usize,
    /// Receive slots (`recvonly` m-lines) one offer may carry (default 32).
    pub max_slots: usize,
    /// A participant from whom nothing valid arrived for this long is dropped
    /// (default 15 s; clients send ICE consent checks every few seconds even when muted).
    pub idle_timeout: Duration,
    /// Receives a copy of every forwarded frame, as the SFU sees it (tests, audits).
    pub tap: Option<mpsc::UnboundedSender<TappedFrame>>,
}

impl SfuConfig {
    /// Defaults for everything but the address to listen on.
    pub fn new(listen: SocketAddr) -> Self {
        SfuConfig {
            listen,
            public_addr: None,
            max_participants_per_call: 16,
            max_calls: 1024,
            max_slots: 32,
            idle_timeout: Duration::from_secs(15),
            tap: None,
        }
    }
}

/// One frame as forwarded by the SFU: one entry per receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TappedFrame {
    /// The call it belongs to.
    pub call: String,
    /// The participant who sent it.
    pub from: String,
    /// The participant it was forwarded to.
    pub to: String,
    /// The payload exactly as forwarded (SFrame ciphertext from real clients).
    pub payload: Vec<u8>,
}

/// Counters since [`Sfu::start`]; `calls` and `participants` are current values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SfuStats {
    /// Calls with at least one participant.
    pub calls: u64,
    /// Participants admitted and not yet removed.
    pub participants: u64,
    /// Frames received from participants' sending tracks.
    pub frames_in: u64,
    /// Frame copies written to receivers.
    pub frames_forwarded: u64,
    /// Frame copies not forwarded: no free slot, or the receiver not connected yet.
    pub frames_dropped: u64,
    /// Payload bytes of the forwarded copies.
    pub bytes_forwarded: u64,
    /// Datagrams that were not WebRTC or that no participant accepted.
    pub datagrams_ignored: u64,
}

/// Why an SFU operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    /// The environment: the socket could not be bound or read.
    #[error("SFU socket on {addr}: {source}")]
    Socket {
        /// Address involved.
        addr: SocketAddr,
        /// The I/O error.
        source: io::Error,
    },
    /// The caller: the configuration cannot work.
    #[error("invalid SFU configuration: {0}")]
    Config(String),
    /// The caller: [`Sfu::start`] needs a running tokio runtime.
    #[error("Sfu::start must be called within a tokio runtime")]
    NoRuntime,
    /// The caller: a call or participant id is empty or longer than [`MAX_ID_LEN`].
    #[error("invalid {what} id: length {len}, expected 1..={MAX_ID_LEN}")]
    InvalidId {
        /// "call" or "participant".
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The peer: its offer does not have the required shape.
    #[error("offer refused: {0}")]
    Offer(#[from] OfferError),
    /// A limit: the call is full.
    #[error("the call already has {max} participants")]
    CallFull {
        /// [`SfuConfig::max_participants_per_call`].
        max: usize,
    },
    /// A limit: the SFU hosts as many calls as allowed.
    #[error("the SFU already hosts {max} calls")]
    TooManyCalls {
        /// [`SfuConfig::max_calls`].
        max: usize,
    },
    /// The SFU has been closed (or its driver stopped).
    #[error("the SFU is closed")]
    Closed,
}

/// Why an offer was refused: the offering participant is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// Longer than [`MAX_OFFER_LEN`].
    #[error("offer of {len} bytes, at most {MAX_OFFER_LEN} accepted")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// No m-line at all.
    #[error("offer has no m-line")]
    NoMedia,
    /// More m-lines than one sending line plus [`SfuConfig::max_slots`].
    #[error("offer has more than {max} receive slots")]
    TooManySlots {
        /// The limit.
        max: usize,
    },
    /// An m-line that is not audio.
    #[error("m-line {index} is {kind:?}, expected audio")]
    NotAudio {
        /// Index of the m-line (0-based).
        index: usize,
        /// Its media type (truncated).
        kind: String,
    },
    /// An m-line with port 0 (rejected/stopped).
    #[error("m-line {index} is disabled (port 0)")]
    Disabled {
        /// Index of the m-line.
        index: usize,
    },
    /// An m-line in the wrong direction.
    #[error("m-line {index} is {found}, expected {expected}")]
    Direction {
        /// Index of the m-line.
        index: usize,
        /// What the shape requires.
        expected: &'static str,
        /// What the offer says.
        found: &'static str,
    },
    /// An m-line without `a=rtpmap:111 opus/48000/2`.
    #[error("m-line {index} does not offer Opus as payload type 111 (opus/48000/2)")]
    NoOpus {
        /// Index of the m-line.
        index: usize,
    },
    /// A missing, malformed or repeated `a=mid:`.
    #[error(
        "m-line {index} has a missing, repeated or malformed a=mid (1 to 16 letters or digits)"
    )]
    BadMid {
        /// Index of the m-line.
        index: usize,
    },
    /// The WebRTC stack rejected the offer (bad SDP, fingerprint, ICE credentials...).
    #[error("offer rejected by the WebRTC stack: {0}")]
    Rejected(String),
}

/// The validated shape of an offer: the participant's sending m-line and its slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferShape {
    send: Mid,
    slots: Vec<Mid>,
}

impl OfferShape {
    /// Checks an SDP offer against the shape in the [module docs](self), without
    /// trusting anything in it.
    pub fn parse(sdp: &str, max_slots: usize) -> Result<OfferShape, OfferError> {
        if sdp.len() > MAX_OFFER_LEN {
            return Err(OfferError::TooLarge { len: sdp.len() });
        }
        let mut lines: Vec<ScannedLine<'_>> = Vec::new();
        for line in sdp.lines() {
            let line = line.trim_end();
            if let Some(rest) = line.strip_prefix("m=") {
                if lines.len() > max_slots {
                    return Err(OfferError::TooManySlots { max: max_slots });
                }
                let mut fields = rest.split(' ');
                lines.push(ScannedLine {
                    kind: fields.next().unwrap_or_default(),
                    port_zero: fields.next() == Some("0"),
                    ..ScannedLine::default()
                });
            } else if let Some(current) = lines.last_mut() {
                current.attribute(line);
            }
        }
        if lines.is_empty() {
            return Err(OfferError::NoMedia);
        }
        let mut mids: Vec<Mid> = Vec::with_capacity(lines.len());
        for (index, line) in lines.iter().enumerate() {
            if line.kind != "audio" {
                let kind = line.kind.chars().take(16).collect();
                return Err(OfferError::NotAudio { index, kind });
            }
            if line.port_zero {
                return Err(OfferError::Disabled { index });
            }
            let expected = if index == 0 { "sendonly" } else { "recvonly" };
            let found = line.direction.unwrap_or("sendrecv");
            if found != expected {
                return Err(OfferError::Direction {
                    index,
                    expected,
                    found,
                });
            }
            if !line.opus {
                return Err(OfferError::NoOpus { index });
            }
            let mid = line
                .mid
                .filter(|m| (1..=16).contains(&m.len()))
                .filter(|m| m.bytes().all(|b| b.is_ascii_alphanumeric()))
                .map(Mid::from)
                .filter(|m| !mids.contains(m))
                .ok_or(OfferError::BadMid { index })?;
            mids.push(mid);
        }
        let send = mids.remove(0);
        Ok(OfferShape { send, slots: mids })
    }

    /// Number of receive slots the participant asked for.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }
}

/// What the offer scanner remembers of one m-line.
#[derive(Default)]
struct ScannedLine<'a> {
    kind: &'a str,
    port_zero: bool,
    direction: Option<&'static str>,
    mid: Option<&'a str>,
    opus: bool,
}

impl<'a> ScannedLine<'a> {
    fn attribute(&mut self, line: &'a str) {
        match line {
            "a=sendonly" => self.direction = Some("sendonly"),
            "a=recvonly" => self.direction = Some("recvonly"),
            "a=sendrecv" => self.direction = Some("sendrecv"),
            "a=inactive" => self.direction = Some("inactive"),
            _ => {}
        }
        if let Some(mid) = line.strip_prefix("a=mid:") {
            // A second a=mid on one m-line is malformed: make it fail the mid check.
            self.mid = if self.mid.is_none() {
                Some(mid)
            } else {
                Some("")
            };
        }
        if let Some(codec) = line.strip_prefix("a=rtpmap:111 ")
            && codec.eq_ignore_ascii_case("opus/48000/2")
        {
            self.opus = true;
        }
    }
}

/// A running SFU. Dropping it stops the driver (without telling participants); prefer
/// [`Sfu::close`].
#[derive(Debug)]
pub struct Sfu {
    commands: mpsc::Sender<Command>,
    local_addr: SocketAddr,
    candidate: Candidate,
    crypto: Arc<CryptoProvider>,
    max_slots: usize,
    counters: Arc<Counters>,
}

impl Sfu {
    /// Binds the socket and spawns the driver on the current tokio runtime.
    pub fn start(cfg: SfuConfig) -> Result<Sfu, SfuError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SfuError::NoRuntime)?;
        if cfg.max_participants_per_call == 0 || cfg.max_calls == 0 {
            return Err(SfuError::Config(
                "max_participants_per_call and max_calls must be at least 1".into(),
            ));
        }
        let socket_error = |source| SfuError::Socket {
            addr: cfg.listen,
            source,
        };
        let std_socket = std::net::UdpSocket::bind(cfg.listen).map_err(socket_error)?;
        std_socket.set_nonblocking(true).map_err(socket_error)?;
        let local_addr = std_socket.local_addr().map_err(socket_error)?;
        let advertised = cfg.public_addr.unwrap_or(local_addr);
        let candidate = Candidate::host(advertised, "udp").map_err(|e| {
            SfuError::Config(format!(
                "{advertised} cannot be advertised as an ICE candidate ({e}); set public_addr"
            ))
        })?;
        let socket = {
            let _guard = runtime.enter();
            UdpSocket::from_std(std_socket).map_err(socket_error)?
        };
        let counters = Arc::new(Counters::default());
        let (commands, command_rx) = mpsc::channel(256);
        let driver = Driver {
            socket: Arc::new(socket),
            advertised,
            limits: Limits {
                max_participants_per_call: cfg.max_participants_per_call,
                max_calls: cfg.max_calls,
                idle_timeout: cfg.idle_timeout,
            },
            tap: cfg.tap,
            counters: counters.clone(),
            next_key: 0,
            participants: HashMap::new(),
            calls: HashMap::new(),
            by_source: HashMap::new(),
        };
        runtime.spawn(driver.run(command_rx));
        Ok(Sfu {
            commands,
            local_addr,
            candidate,
            crypto: Arc::new(from_feature_flags()),
            max_slots: cfg.max_slots,
            counters,
        })
    }

    /// The address the UDP socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Admits `participant` to `call` with its SDP offer and returns the SDP answer.
    /// A second join by the same participant replaces the first.
    pub async fn join(
        &self,
        call: &str,
        participant: &str,
        offer_sdp: &str,
    ) -> Result<String, SfuError> {
        check_id("call", call)?;
        check_id("participant", participant)?;
        let shape = OfferShape::parse(offer_sdp, self.max_slots)?;
        let (rtc, answer) = self.answer(offer_sdp, &shape)?;
        let joining = Joining {
            call: call.to_owned(),
            participant: participant.to_owned(),
            rtc,
            shape,
        };
        let (reply, outcome) = oneshot::channel();
        self.send(Command::Join(Box::new(joining), reply)).await?;
        outcome.await.map_err(|_| SfuError::Closed)??;
        Ok(answer)
    }

    /// Removes `participant` from `call` (no-op if absent).
    pub async fn leave(&self, call: &str, participant: &str) {
        let (reply, done) = oneshot::channel();
        let command = Command::Leave {
            call: call.to_owned(),
            participant: participant.to_owned(),
            reply,
        };
        if self.send(command).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Removes from `call` everyone whose participant id is not in `allowed` (the hub
    /// calls this when the room's membership changes).
    pub async fn retain(&self, call: &str, allowed: &[String]) {
        let (reply, done) = oneshot::channel();
        let command = Command::Retain {
            call: call.to_owned(),
            allowed: allowed.to_vec(),
            reply,
        };
        if self.send(command).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Current counters.
    pub fn stats(&self) -> SfuStats {
        self.counters.snapshot()
    }

    /// Hangs up on every participant and stops the driver.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.send(Command::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    async fn send(&self, command: Command) -> Result<(), SfuError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| SfuError::Closed)
    }

    /// Builds the participant's `Rtc` and answers its (already shape-checked) offer.
    fn answer(&self, offer_sdp: &str, shape: &OfferShape) -> Result<(Rtc, String), SfuError> {
        let offer = SdpOffer::from_sdp_string(offer_sdp)
            .map_err(|e| OfferError::Rejected(truncate(&e.to_string())))?;
        let crypto = self.crypto.clone();
        let candidate = self.candidate.clone();
        // str0m is third-party code fed untrusted SDP: a panic in it refuses this offer
        // instead of unwinding through the caller.
        let negotiated = catch_unwind(AssertUnwindSafe(move || {
            let mut rtc = Rtc::builder()
                .set_ice_lite(true)
                .clear_codecs()
                .enable_opus(true, false)
                .set_crypto_provider(crypto)
                .build(Instant::now());
            rtc.add_local_candidate(candidate);
            let answer = rtc.sdp_api().accept_offer(offer);
            answer.map(|a| (rtc, a.to_sdp_string()))
        }));
        let (rtc, answer) = match negotiated {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return Err(OfferError::Rejected(truncate(&e.to_string())).into()),
            Err(_) => {
                return Err(OfferError::Rejected("the offer crashed the parser".into()).into());
            }
        };
        // The scanner and str0m must agree on what was negotiated.
        let opus = Pt::from(OPUS_PT);
        let lines = std::iter::once((shape.send, Direction::RecvOnly))
            .chain(shape.slots.iter().map(|m| (*m, Direction::SendOnly)));
        for (index, (mid, direction)) in lines.enumerate() {
            let ok = rtc.media(mid).is_some_and(|m| {
                m.kind() == MediaKind::Audio
                    && m.direction() == direction
                    && !m.disabled()
                    && m.remote_pts().contains(&opus)
            });
            if !ok {
                return Err(OfferError::Rejected(format!(
                    "m-line {index} was not negotiated as offered"
                ))
                .into());
            }
        }
        Ok((rtc, answer))
    }
}

fn check_id(what: &'static str, id: &str) -> Result<(), SfuError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(SfuError::InvalidId {
            what,
            len: id.len(),
        });
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    participants: AtomicU64,
    frames_in: AtomicU64,
    frames_forwarded: AtomicU64,
    frames_dropped: AtomicU64,
    bytes_forwarded: AtomicU64,
    datagrams_ignored: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> SfuStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SfuStats {
            calls: get(&self.calls),
            participants: get(&self.participants),
            frames_in: get(&self.frames_in),
            frames_forwarded: get(&self.frames_forwarded),
            frames_dropped: get(&self.frames_dropped),
            bytes_forwarded: get(&self.bytes_forwarded),
            datagrams_ignored: get(&self.datagrams_ignored),
        }
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

enum Command {
    Join(Box<Joining>, oneshot::Sender<Result<(), SfuError>>),
    Leave {
        call: String,
        participant: String,
        reply: oneshot::Sender<()>,
    },
    Retain {
        call: String,
        allowed: Vec<String>,
        reply: oneshot::Sender<()>,
    },
    Close(oneshot::Sender<()>),
}

/// A participant whose offer has been answered, on its way to the driver.
struct Joining {
    call: String,
    participant: String,
    rtc: Rtc,
    shape: OfferShape,
}

struct Limits {
    max_participants_per_call: usize,
    max_calls: usize,
    idle_timeout: Duration,
}

/// Owns the socket and every participant; runs as one task.
struct Driver {
    socket: Arc<UdpSocket>,
    /// The address in our ICE candidate: the destination str0m expects on input.
    advertised: SocketAddr,
    limits: Limits,
    tap: Option<mpsc::UnboundedSender<TappedFrame>>,
    counters: Arc<Counters>,
    next_key: u64,
    participants: HashMap<u64, Participant>,
    /// Call id to the keys of its participants, in joining order.
    calls: HashMap<String, Vec<u64>>,
    /// Remote address to participant: a cache in front of [`Rtc::accepts`].
    by_source: HashMap<SocketAddr, u64>,
}

struct Participant {
    call: String,
    id: String,
    rtc: Rtc,
    send_mid: Mid,
    slots: Vec<Slot>,
    next_timeout: Instant,
    last_heard: Instant,
}

/// One receive slot of a participant: which sender it carries and its RTP timeline.
struct Slot {
    mid: Mid,
    sender: Option<u64>,
    /// Output time minus the sender's time (wrapping), fixed at the sender's first frame.
    offset: Option<u64>,
    /// Last output time and when it was written.
    last: Option<(u64, Instant)>,
}

impl Slot {
    /// Maps the sender's RTP time (48 kHz) onto this slot's continuous timeline.
    fn map_time(&mut self, sender_time: u64, now: Instant) -> u64 {
        let offset = *self.offset.get_or_insert_with(|| {
            let start = match self.last {
                Some((last, at)) => {
                    let elapsed = now.saturating_duration_since(at).as_micros() as u64 * 48 / 1000;
                    last.wrapping_add(elapsed.max(FRAME_TICKS))
                }
                None => sender_time,
            };
            start.wrapping_sub(sender_time)
        });
        let out = sender_time.wrapping_add(offset);
        self.last = Some((out, now));
        out
    }
}

impl Participant {
    /// The slot carrying `sender`, assigning the first free one if needed.
    fn slot_for(&mut self, sender: u64) -> Option<&mut Slot> {
        let index = self
            .slots
            .iter()
            .position(|s| s.sender == Some(sender))
            .or_else(|| {
                let free = self.slots.iter().position(|s| s.sender.is_none())?;
                self.slots[free].sender = Some(sender);
                self.slots[free].offset = None;
                Some(free)
            })?;
        self.slots.get_mut(index)
    }

    /// Feeds one input to the `Rtc`; a panic inside str0m kills only this participant.
    fn handle(&mut self, input: Input<'_>) -> bool {
        match catch_unwind(AssertUnwindSafe(|| self.rtc.handle_input(input))) {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                // Bad packets from the peer's address (or spoofing it): not fatal.
                tracing::debug!(error = %e, "sfu: input refused");
                false
            }
            Err(_) => {
                tracing::warn!("sfu: WebRTC stack panicked on input; dropping participant");
                self.rtc.disconnect();
                false
            }
        }
    }

    /// Drains `poll_output` to a timeout: sends datagrams, collects media frames.
    fn drain(&mut self, socket: &UdpSocket, frames: &mut Vec<MediaData>) {
        while self.rtc.is_alive() {
            let output = match catch_unwind(AssertUnwindSafe(|| self.rtc.poll_output())) {
                Ok(Ok(output)) => output,
                Ok(Err(_)) | Err(_) => {
                    self.rtc.disconnect();
                    return;
                }
            };
            match output {
                Output::Timeout(at) => {
                    self.next_timeout = at;
                    return;
                }
                // UDP: a full send buffer loses the datagram, as the network could.
                Output::Transmit(t) => {
                    let _ = socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(Event::MediaData(data)) if data.mid == self.send_mid => {
                    frames.push(data);
                }
                Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                )) => self.rtc.disconnect(),
                Output::Event(_) => {}
            }
        }
    }
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let socket = self.socket.clone();
        let mut buf = vec![0u8; 2048];
        loop {
            let now = Instant::now();
            let wake = self
                .participants
                .values()
                .map(|p| p.next_timeout)
                .fold(now + SWEEP_INTERVAL, Instant::min);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Close(reply)) => {
                        self.close_all();
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => self.command(command),
                    None => return,
                },
                ready = socket.readable() => match ready {
                    Ok(()) => self.read(&socket, &mut buf),
                    Err(e) => {
                        tracing::error!(error = %e, "sfu: socket failed; stopping");
                        return;
                    }
                },
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            self.timeouts(Instant::now());
            self.sweep(Instant::now());
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Join(joining, reply) => {
                let _ = reply.send(self.admit(*joining));
            }
            Command::Leave {
                call,
                participant,
                reply,
            } => {
                let keys = self.members(&call, |id| id == participant);
                keys.into_iter().for_each(|k| self.remove(k));
                let _ = reply.send(());
            }
            Command::Retain {
                call,
                allowed,
                reply,
            } => {
                let keys = self.members(&call, |id| !allowed.iter().any(|a| a == id));
                keys.into_iter().for_each(|k| self.remove(k));
                let _ = reply.send(());
            }
            Command::Close(reply) => {
                self.close_all();
                let _ = reply.send(());
            }
        }
    }

    fn admit(&mut self, joining: Joining) -> Result<(), SfuError> {
        let Joining {
            call,
            participant,
            rtc,
            shape,
        } = joining;
        // A rejoin replaces the previous session (new device connection, restart).
        let previous = self.members(&call, |id| id == participant);
        previous.into_iter().for_each(|k| self.remove(k));
        match self.calls.get(&call) {
            Some(members) if members.len() >= self.limits.max_participants_per_call => {
                return Err(SfuError::CallFull {
                    max: self.limits.max_participants_per_call,
                });
            }
            None if self.calls.len() >= self.limits.max_calls => {
                return Err(SfuError::TooManyCalls {
                    max: self.limits.max_calls,
                });
            }
            _ => {}
        }
        let key = self.next_key;
        self.next_key += 1;
        let now = Instant::now();
        let slots = shape.slots.iter().map(|&mid| Slot {
            mid,
            sender: None,
            offset: None,
            last: None,
        });
        let mut joined = Participant {
            call: call.clone(),
            id: participant,
            rtc,
            send_mid: shape.send,
            slots: slots.collect(),
            next_timeout: now,
            last_heard: now,
        };
        // accept_offer was a mutation: drain before anything else touches the Rtc.
        joined.drain(&self.socket, &mut Vec::new());
        self.participants.insert(key, joined);
        self.calls.entry(call).or_default().push(key);
        self.update_gauges();
        Ok(())
    }

    fn members(&self, call: &str, matches: impl Fn(&str) -> bool) -> Vec<u64> {
        let Some(keys) = self.calls.get(call) else {
            return Vec::new();
        };
        keys.iter()
            .copied()
            .filter(|k| self.participants.get(k).is_some_and(|p| matches(&p.id)))
            .collect()
    }

    fn read(&mut self, socket: &UdpSocket, buf: &mut [u8]) {
        for _ in 0..READ_BATCH {
            match socket.try_recv_from(buf) {
                Ok((len, source)) => {
                    let datagram = buf.get(..len).unwrap_or_default();
                    self.datagram(datagram, source, Instant::now());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // E.g. ICMP errors surfacing on some platforms: not fatal for a server.
                Err(e) => {
                    tracing::debug!(error = %e, "sfu: receive error");
                    return;
                }
            }
        }
    }

    fn datagram(&mut self, datagram: &[u8], source: SocketAddr, now: Instant) {
        let Ok(contents) = DatagramRecv::try_from(datagram) else {
            bump(&self.counters.datagrams_ignored, 1);
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.advertised,
                contents,
            },
        );
        let Some(key) = self.route(&input, source) else {
            bump(&self.counters.datagrams_ignored, 1);
            return;
        };
        let mut frames = Vec::new();
        if let Some(p) = self.participants.get_mut(&key) {
            if p.handle(input) {
                p.last_heard = now;
            }
            p.drain(&self.socket, &mut frames);
        }
        self.forward(key, frames, now);
    }

    /// Finds the participant a datagram belongs to.
    fn route(&mut self, input: &Input<'_>, source: SocketAddr) -> Option<u64> {
        if let Some(key) = self.by_source.get(&source)
            && self
                .participants
                .get(key)
                .is_some_and(|p| p.rtc.accepts(input))
        {
            return Some(*key);
        }
        let key = self
            .participants
            .iter()
            .find(|(_, p)| p.rtc.is_alive() && p.rtc.accepts(input))
            .map(|(k, _)| *k)?;
        // Bounded: entries only come from accepted inputs, and go with their participant.
        if self.by_source.len() >= 4 * self.participants.len() + 16 {
            self.by_source.clear();
        }
        self.by_source.insert(source, key);
        Some(key)
    }

    /// Writes frames from `from`'s sending track to every other member of its call.
    fn forward(&mut self, from: u64, mut frames: Vec<MediaData>, now: Instant) {
        while !frames.is_empty() {
            let Some(sender) = self.participants.get(&from) else {
                return;
            };
            let receivers: Vec<u64> = self
                .calls
                .get(&sender.call)
                .map(|keys| keys.iter().copied().filter(|k| *k != from).collect())
                .unwrap_or_default();
            let tap = self
                .tap
                .as_ref()
                .map(|tap| (tap, sender.call.clone(), sender.id.clone()));
            let mut produced = Vec::new();
            for data in frames.drain(..) {
                let sender_time = data.time.rebase(Frequency::FORTY_EIGHT_KHZ).numer();
                for key in &receivers {
                    let Some(receiver) = self.participants.get_mut(key) else {
                        continue;
                    };
                    let written = write_to(receiver, from, &data, sender_time, now);
                    if written {
                        bump(&self.counters.frames_forwarded, 1);
                        bump(&self.counters.bytes_forwarded, data.data.len() as u64);
                        if let Some((tap, call, from_id)) = &tap {
                            let _ = tap.send(TappedFrame {
                                call: call.clone(),
                                from: from_id.clone(),
                                to: receiver.id.clone(),
                                payload: data.data.to_vec(),
                            });
                        }
                    } else {
                        bump(&self.counters.frames_dropped, 1);
                    }
                    // A receiver never sends on its slots, so this yields no frames
                    // in practice; any that appear are its own and are forwarded later.
                    let mut own = Vec::new();
                    receiver.drain(&self.socket, &mut own);
                    produced.extend(own.into_iter().map(|d| (*key, d)));
                }
                bump(&self.counters.frames_in, 1);
            }
            for (key, data) in produced {
                self.forward(key, vec![data], now);
            }
        }
    }

    /// Feeds `Input::Timeout` to every participant whose timer is due.
    fn timeouts(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .participants
            .iter()
            .filter(|(_, p)| p.next_timeout <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let mut frames = Vec::new();
            if let Some(p) = self.participants.get_mut(&key) {
                p.handle(Input::Timeout(now));
                p.drain(&self.socket, &mut frames);
            }
            self.forward(key, frames, now);
        }
    }

    /// Drops participants whose `Rtc` died or who went silent.
    fn sweep(&mut self, now: Instant) {
        let idle = self.limits.idle_timeout;
        let gone: Vec<u64> = self
            .participants
            .iter()
            .filter(|(_, p)| {
                !p.rtc.is_alive() || now.saturating_duration_since(p.last_heard) > idle
            })
            .map(|(k, _)| *k)
            .collect();
        gone.into_iter().for_each(|k| self.remove(k));
    }

    /// Hangs up on a participant (RTCP BYE, DTLS close_notify) and frees its slots.
    fn remove(&mut self, key: u64) {
        let Some(mut gone) = self.participants.remove(&key) else {
            return;
        };
        if gone.rtc.is_alive() && gone.rtc.close().is_ok() {
            gone.drain(&self.socket, &mut Vec::new());
        }
        self.by_source.retain(|_, k| *k != key);
        if let Some(members) = self.calls.get_mut(&gone.call) {
            members.retain(|k| *k != key);
            for other in members.iter() {
                let Some(p) = self.participants.get_mut(other) else {
                    continue;
                };
                for slot in p.slots.iter_mut().filter(|s| s.sender == Some(key)) {
                    slot.sender = None;
                    slot.offset = None;
                }
            }
            if members.is_empty() {
                self.calls.remove(&gone.call);
            }
        }
        self.update_gauges();
    }

    fn close_all(&mut self) {
        let keys: Vec<u64> = self.participants.keys().copied().collect();
        keys.into_iter().for_each(|k| self.remove(k));
    }

    fn update_gauges(&self) {
        let set = |c: &AtomicU64, v: usize| c.store(v as u64, Ordering::Relaxed);
        set(&self.counters.calls, self.calls.len());
        set(&self.counters.participants, self.participants.len());
    }
}

/// Writes one frame from `from` to `receiver`; false if it had to be dropped.
fn write_to(
    receiver: &mut Participant,
    from: u64,
    data: &MediaData,
    sender_time: u64,
    now: Instant,
) -> bool {
    // Before DTLS-SRTP is up str0m would drop the frame anyway; do not burn a slot.
    if !receiver.rtc.is_connected() {
        return false;
    }
    let Some(slot) = receiver.slot_for(from) else {
        return false;
    };
    let mid = slot.mid;
    let time = MediaTime::new(slot.map_time(sender_time, now), Frequency::FORTY_EIGHT_KHZ);
    let Some(writer) = receiver.rtc.writer(mid) else {
        return false;
    };
    let Some(pt) = writer.match_params(data.params) else {
        return false;
    };
    writer
        .write(pt, data.network_time, time, data.data.clone())
        .is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn m_line(direction: &str, mid: &str) -> String {
        format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na={direction}\r\na=rtpmap:111 opus/48000/2\r\n"
        )
    }

    fn offer(lines: &[String]) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n{}",
            lines.concat()
        )
    }

    #[test]
    fn accepts_sendonly_then_slots() {
        let sdp = offer(&[
            m_line("sendonly", "0"),
            m_line("recvonly", "1"),
            m_line("recvonly", "2"),
        ]);
        let shape = OfferShape::parse(&sdp, 8).unwrap();
        assert_eq!(shape.slot_count(), 2);
        assert_eq!(shape.send, Mid::from("0"));
    }

    #[test]
    fn refuses_other_shapes() {
        let cases = [
            (offer(&[]), OfferError::NoMedia),
            (
                offer(&[m_line("recvonly", "0"), m_line("recvonly", "1")]),
                OfferError::Direction {
                    index: 0,
                    expected: "sendonly",
                    found: "recvonly",
                },
            ),
            (
                offer(&[m_line("sendonly", "0"), m_line("sendonly", "1")]),
                OfferError::Direction {
                    index: 1,
                    expected: "recvonly",
                    found: "sendonly",
                },
            ),
            (
                offer(&[m_line("sendonly", "0"), m_line("recvonly", "0")]),
                OfferError::BadMid { index: 1 },
            ),
            (
                offer(&[m_line("sendonly", "0"), m_line("recvonly", "a-b")]),
                OfferError::BadMid { index: 1 },
            ),
            (
                offer(&[m_line("sendonly", "0").replace("a=rtpmap:111 opus", "a=rtpmap:111 pcmu")]),
                OfferError::NoOpus { index: 0 },
            ),
            (
                offer(&[m_line("sendonly", "0").replace("m=audio", "m=video")]),
                OfferError::NotAudio {
                    index: 0,
                    kind: "video".into(),
                },
            ),
            (
                offer(&[m_line("sendonly", "0").replace("m=audio 9", "m=audio 0")]),
                OfferError::Disabled { index: 0 },
            ),
            (
                offer(&[
                    m_line("sendonly", "0"),
                    m_line("recvonly", "1"),
                    m_line("recvonly", "2"),
                ]),
                OfferError::TooManySlots { max: 1 },
            ),
        ];
        for (sdp, expected) in cases {
            assert_eq!(OfferShape::parse(&sdp, 1), Err(expected), "{sdp}");
        }
        let huge = "a".repeat(MAX_OFFER_LEN + 1);
        assert_eq!(
            OfferShape::parse(&huge, 8),
            Err(OfferError::TooLarge {
                len: MAX_OFFER_LEN + 1
            })
        );
    }

    #[test]
    fn slot_timeline_stays_continuous_across_senders() {
        let now = Instant::now();
        let mut slot = Slot {
            mid: Mid::from("1"),
            sender: Some(1),
            offset: None,
            last: None,
        };
        assert_eq!(slot.map_time(1_000_000, now), 1_000_000);
        assert_eq!(slot.map_time(1_000_960, now), 1_000_960);
        // A new sender with an unrelated clock continues after the last output.
        slot.sender = Some(2);
        slot.offset = None;
        let first = slot.map_time(5, now);
        assert_eq!(first, 1_000_960 + FRAME_TICKS);
        assert_eq!(slot.map_time(965, now), first + 960);
    }
}
