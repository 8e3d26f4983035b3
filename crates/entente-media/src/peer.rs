//! One WebRTC endpoint: ICE, DTLS-SRTP and RTP from str0m, over a UDP socket and
//! optionally a TURN relay.
//!
//! A [`Peer`] is a handle to a task that owns the str0m `Rtc` (str0m is sans-IO: every
//! mutation is followed by draining its output, which only that task does). It sends
//! one audio track and receives any number:
//!
//! - [`Layout::Call`]: one `sendrecv` Opus m-line, what every WebRTC endpoint offers
//!   for a 1:1 audio call (aiortc and Chromium answer it).
//! - [`Layout::Sfu`]: one `sendonly` m-line and `slots` `recvonly` ones, the shape the
//!   provider's SFU ([`crate::sfu`]) answers without ever renegotiating.
//!
//! Frames are opaque to the peer: Opus packets in a 1:1 call, SFrame ciphertext of
//! Opus packets in a group call. The DTLS fingerprint in the SDP is what the
//! end-to-end encrypted signalling authenticates, so no provider can sit in the
//! middle of a 1:1 call.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// Which m-lines this peer negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One `sendrecv` audio m-line: a 1:1 call.
    Call,
    /// One `sendonly` audio m-line, then `slots` `recvonly` ones: a participant of an
    /// SFU call, receiving at most `slots` other participants at once.
    Sfu { slots: usize },
}

/// A TURN relay the peer sends through, bridged by [`crate::relay`]: datagrams for
/// `to_relay` go out from `relayed_addr` to the given peer address; datagrams from
/// `from_relay` arrived at `relayed_addr` from the given address.
pub struct RelayLink {
    pub relayed_addr: SocketAddr,
    /// The local address the TURN client talks to its server from.
    pub local_addr: SocketAddr,
    pub to_relay: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    pub from_relay: mpsc::Receiver<(Vec<u8>, SocketAddr)>,
}

impl RelayLink {
    /// Bridges a TURN allocation to a peer: one task sends what the peer routes to
    /// the relay, another hands the peer what arrives. When the peer goes away the
    /// allocation is released.
    pub fn from_relay(relay: crate::relay::TurnRelay) -> RelayLink {
        let relayed_addr = relay.relayed_addr();
        let (to_tx, mut to_rx) = mpsc::channel::<(Vec<u8>, SocketAddr)>(512);
        let (from_tx, from_rx) = mpsc::channel::<(Vec<u8>, SocketAddr)>(512);
        let sender = relay.clone();
        tokio::spawn(async move {
            while let Some((data, peer)) = to_rx.recv().await {
                if let Err(e) = sender.send_to(&data, peer).await {
                    tracing::debug!(error = %e, "a datagram was not relayed");
                }
            }
            // The peer is gone: release the allocation (this also ends the receiver).
            sender.close().await;
        });
        tokio::spawn(async move {
            let mut buf = vec![0u8; crate::relay::MAX_RELAYED_DATAGRAM];
            loop {
                match relay.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        if from_tx.send((buf[..n].to_vec(), from)).await.is_err() {
                            break;
                        }
                    }
                    Err(crate::turn_server::TurnError::Closed) => break,
                    Err(e) => tracing::debug!(error = %e, "relay receive"),
                }
            }
        });
        RelayLink {
            relayed_addr,
            local_addr: relayed_addr,
            to_relay: to_tx,
            from_relay: from_rx,
        }
    }
}

/// How to build a [`Peer`].
pub struct PeerConfig {
    /// The address to bind the UDP socket on and advertise as host candidate.
    pub ip: IpAddr,
    /// Advertise the host candidate (false: relay only, the remote side never learns
    /// this device's address).
    pub host_candidate: bool,
    pub relay: Option<RelayLink>,
    pub layout: Layout,
    /// Every datagram this peer sends, as sent (for tests that look at the wire).
    pub tap: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// Give up when ICE and DTLS are not up after this long.
    pub connect_timeout: Duration,
}

impl PeerConfig {
    pub fn new(ip: IpAddr, layout: Layout) -> Self {
        Self {
            ip,
            host_candidate: true,
            relay: None,
            layout,
            tap: None,
            connect_timeout: Duration::from_secs(20),
        }
    }
}

/// What a peer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// ICE and DTLS are up: frames sent from now on reach the other side.
    Connected,
    /// A frame arrived on receiving track `track` (0 in a 1:1 call; the slot in an
    /// SFU call).
    Frame {
        track: usize,
        data: Vec<u8>,
        rtp_time: u64,
    },
    /// The connection ended (ICE failure, timeout, or closed by us or the remote).
    Closed { reason: String },
}

/// Errors of a peer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot open a UDP socket for the call: {0}")]
    Socket(std::io::Error),
    #[error("session description refused: {0}")]
    Sdp(String),
    #[error("ICE candidate refused: {0}")]
    Candidate(String),
    #[error("the call has ended")]
    Closed,
    #[error("WebRTC: {0}")]
    Rtc(String),
}

/// Counters of one peer.
#[derive(Debug, Default)]
pub struct PeerStats {
    pub datagrams_sent: AtomicU64,
    pub datagrams_received: AtomicU64,
    pub datagrams_relayed: AtomicU64,
    pub frames_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub frames_dropped: AtomicU64,
}

enum Command {
    CreateOffer(oneshot::Sender<Result<String, PeerError>>),
    AcceptAnswer(String, oneshot::Sender<Result<(), PeerError>>),
    AcceptOffer(String, oneshot::Sender<Result<String, PeerError>>),
    AddRemoteCandidate(String, oneshot::Sender<Result<(), PeerError>>),
    Frame(Vec<u8>, u64),
    Close,
}

/// A handle for sending frames from another task.
#[derive(Clone)]
pub struct FrameSender {
    cmd: mpsc::Sender<Command>,
    stats: Arc<PeerStats>,
}

impl FrameSender {
    /// Queues one frame with its RTP timestamp (48 kHz clock). A full queue drops the
    /// frame (real-time audio is better late-dropped than late-played); a closed peer
    /// is an error.
    pub fn send(&self, data: Vec<u8>, rtp_time: u64) -> Result<(), PeerError> {
        match self.cmd.try_send(Command::Frame(data, rtp_time)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PeerError::Closed),
        }
    }
}

/// One WebRTC endpoint. See the module documentation.
pub struct Peer {
    control: PeerControl,
    events: mpsc::Receiver<PeerEvent>,
    local_candidates: Vec<String>,
    local_addr: SocketAddr,
}

/// A clonable handle that negotiates and closes a [`Peer`] from any task, while
/// another task reads its events.
#[derive(Clone)]
pub struct PeerControl {
    cmd: mpsc::Sender<Command>,
    stats: Arc<PeerStats>,
}

impl PeerControl {
    /// Creates the offer (caller side).
    pub async fn create_offer(&self) -> Result<String, PeerError> {
        self.ask(Command::CreateOffer).await?
    }

    /// Applies the callee's answer to our offer.
    pub async fn accept_answer(&self, sdp: &str) -> Result<(), PeerError> {
        let sdp = sdp.to_owned();
        self.ask(|tx| Command::AcceptAnswer(sdp, tx)).await?
    }

    /// Answers an offer (callee side).
    pub async fn accept_offer(&self, sdp: &str) -> Result<String, PeerError> {
        let sdp = sdp.to_owned();
        self.ask(|tx| Command::AcceptOffer(sdp, tx)).await?
    }

    /// Adds a remote candidate (`candidate:...`, with or without the `a=` prefix).
    pub async fn add_remote_candidate(&self, line: &str) -> Result<(), PeerError> {
        let line = line.to_owned();
        self.ask(|tx| Command::AddRemoteCandidate(line, tx)).await?
    }

    /// A clonable sender of frames.
    pub fn frame_sender(&self) -> FrameSender {
        FrameSender {
            cmd: self.cmd.clone(),
            stats: self.stats.clone(),
        }
    }

    /// Ends the call (DTLS close, then the task stops).
    pub async fn close(&self) {
        let _ = self.cmd.send(Command::Close).await;
    }

    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, PeerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(make(tx))
            .await
            .map_err(|_| PeerError::Closed)?;
        rx.await.map_err(|_| PeerError::Closed)
    }
}

impl std::ops::Deref for Peer {
    type Target = PeerControl;
    fn deref(&self) -> &PeerControl {
        &self.control
    }
}

impl Peer {
    /// Binds the socket, sets up the candidates and starts the driver task.
    pub async fn new(config: PeerConfig) -> Result<Peer, PeerError> {
        let socket = UdpSocket::bind(SocketAddr::new(config.ip, 0))
            .await
            .map_err(PeerError::Socket)?;
        let local_addr = socket.local_addr().map_err(PeerError::Socket)?;
        let provider = Arc::new(str0m::crypto::from_feature_flags());
        let rtc_config = RtcConfig::new()
            .set_crypto_provider(provider)
            .clear_codecs()
            .enable_opus(true, false);
        let mut rtc = rtc_config.build(Instant::now());
        let mut local_candidates = Vec::new();
        if config.host_candidate {
            let c = Candidate::host(local_addr, "udp")
                .map_err(|e| PeerError::Candidate(e.to_string()))?;
            local_candidates.push(c.to_sdp_string());
            rtc.add_local_candidate(c);
        }
        let mut relay = None;
        if let Some(link) = config.relay {
            let c = Candidate::relayed(link.relayed_addr, link.local_addr, "udp")
                .map_err(|e| PeerError::Candidate(e.to_string()))?;
            local_candidates.push(c.to_sdp_string());
            rtc.add_local_candidate(c);
            relay = Some(link);
        }
        let stats = Arc::new(PeerStats::default());
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (ev_tx, ev_rx) = mpsc::channel(1024);
        let driver = Driver {
            rtc,
            socket,
            local_addr,
            relay,
            layout: config.layout,
            tap: config.tap,
            events: ev_tx,
            stats: stats.clone(),
            pending: None,
            send_mid: None,
            recv_mids: HashMap::new(),
            connected: false,
            connect_deadline: Instant::now() + config.connect_timeout,
        };
        tokio::spawn(driver.run(cmd_rx));
        Ok(Peer {
            control: PeerControl { cmd: cmd_tx, stats },
            events: ev_rx,
            local_candidates,
            local_addr,
        })
    }

    /// A handle for negotiating from another task.
    pub fn control(&self) -> PeerControl {
        self.control.clone()
    }

    /// The local candidates as SDP `candidate:` attribute values, to send as trickle
    /// ICE. They are also in every offer and answer this peer makes.
    pub fn local_candidates(&self) -> &[String] {
        &self.local_candidates
    }

    /// The UDP socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next event; `None` once the peer is gone and every event was read.
    pub async fn next_event(&mut self) -> Option<PeerEvent> {
        self.events.recv().await
    }
}

struct Driver {
    rtc: Rtc,
    socket: UdpSocket,
    local_addr: SocketAddr,
    relay: Option<RelayLink>,
    layout: Layout,
    tap: Option<mpsc::UnboundedSender<Vec<u8>>>,
    events: mpsc::Sender<PeerEvent>,
    stats: Arc<PeerStats>,
    pending: Option<SdpPendingOffer>,
    send_mid: Option<Mid>,
    /// Receiving mid -> track index.
    recv_mids: HashMap<Mid, usize>,
    connected: bool,
    connect_deadline: Instant,
}

enum Step {
    Continue,
    Stop(String),
}

impl Driver {
    async fn run(mut self, mut cmds: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 2000];
        let reason = loop {
            let timeout = match self.drain().await {
                Ok(t) => t,
                Err(reason) => break reason,
            };
            if !self.connected && Instant::now() > self.connect_deadline {
                break "the call did not connect in time (no ICE path or DTLS failed)".to_owned();
            }
            let wait = timeout
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(500));
            let relay_rx = async {
                match self.relay.as_mut() {
                    Some(link) => link.from_relay.recv().await,
                    None => std::future::pending().await,
                }
            };
            let step = tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, source)) => {
                        self.stats.datagrams_received.fetch_add(1, Ordering::Relaxed);
                        let dest = self.local_addr;
                        self.receive(&buf[..n], source, dest)
                    }
                    // ICMP port unreachable and the like: keep going, ICE decides.
                    Err(_) => Step::Continue,
                },
                r = relay_rx => match r {
                    Some((data, source)) => {
                        self.stats.datagrams_received.fetch_add(1, Ordering::Relaxed);
                        let dest = self.relay.as_ref().map(|l| l.relayed_addr).unwrap_or(self.local_addr);
                        self.receive(&data, source, dest)
                    }
                    None => Step::Stop("the TURN relay closed".to_owned()),
                },
                c = cmds.recv() => match c {
                    Some(c) => self.command(c),
                    None => Step::Stop("closed".to_owned()),
                },
                _ = tokio::time::sleep(wait) => {
                    match self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        Ok(()) => Step::Continue,
                        Err(e) => Step::Stop(format!("WebRTC error: {e}")),
                    }
                }
            };
            if let Step::Stop(reason) = step {
                break reason;
            }
        };
        self.rtc.disconnect();
        let _ = self.drain().await;
        let _ = self.events.send(PeerEvent::Closed { reason }).await;
    }

    fn receive(&mut self, data: &[u8], source: SocketAddr, destination: SocketAddr) -> Step {
        let Ok(contents) = data.try_into() else {
            // Not STUN, DTLS or RTP: ignore it.
            return Step::Continue;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        if !self.rtc.accepts(&input) {
            return Step::Continue;
        }
        match self.rtc.handle_input(input) {
            Ok(()) => Step::Continue,
            // One bad packet does not end a call.
            Err(e) => {
                tracing::debug!(error = %e, "dropped an incoming datagram");
                Step::Continue
            }
        }
    }

    fn command(&mut self, c: Command) -> Step {
        match c {
            Command::CreateOffer(tx) => {
                let _ = tx.send(self.create_offer());
            }
            Command::AcceptAnswer(sdp, tx) => {
                let _ = tx.send(self.accept_answer(&sdp));
            }
            Command::AcceptOffer(sdp, tx) => {
                let _ = tx.send(self.accept_offer(&sdp));
            }
            Command::AddRemoteCandidate(line, tx) => {
                let line = line.trim().trim_start_matches("a=");
                let r = Candidate::from_sdp_string(line)
                    .map(|c| self.rtc.add_remote_candidate(c))
                    .map_err(|e| PeerError::Candidate(e.to_string()));
                let _ = tx.send(r);
            }
            Command::Frame(data, rtp_time) => self.write_frame(data, rtp_time),
            Command::Close => return Step::Stop("hung up".to_owned()),
        }
        Step::Continue
    }

    fn create_offer(&mut self) -> Result<String, PeerError> {
        let mut api = self.rtc.sdp_api();
        match self.layout {
            Layout::Call => {
                let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
                self.send_mid = Some(mid);
                self.recv_mids.insert(mid, 0);
            }
            Layout::Sfu { slots } => {
                let mid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
                self.send_mid = Some(mid);
                for slot in 0..slots {
                    let m = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
                    self.recv_mids.insert(m, slot);
                }
            }
        }
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| PeerError::Sdp("nothing to offer".to_owned()))?;
        self.pending = Some(pending);
        Ok(offer.to_sdp_string())
    }

    fn accept_answer(&mut self, sdp: &str) -> Result<(), PeerError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| PeerError::Sdp(e.to_string()))?;
        let pending = self
            .pending
            .take()
            .ok_or_else(|| PeerError::Sdp("an answer without an offer".to_owned()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| PeerError::Sdp(e.to_string()))
    }

    fn accept_offer(&mut self, sdp: &str) -> Result<String, PeerError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| PeerError::Sdp(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PeerError::Sdp(e.to_string()))?;
        Ok(answer.to_sdp_string())
    }

    fn write_frame(&mut self, data: Vec<u8>, rtp_time: u64) {
        let (Some(mid), true) = (self.send_mid, self.connected) else {
            self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(writer) = self.rtc.writer(mid) else {
            self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .map(|p| p.pt())
        else {
            self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let time = MediaTime::new(rtp_time, Frequency::FORTY_EIGHT_KHZ);
        match writer.write(pt, Instant::now(), time, data) {
            Ok(()) => {
                self.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(error = %e, "frame not sent");
                self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Drains str0m's output: sends datagrams, reports events; returns the next
    /// deadline.
    async fn drain(&mut self) -> Result<Instant, String> {
        loop {
            let out = self
                .rtc
                .poll_output()
                .map_err(|e| format!("WebRTC error: {e}"))?;
            match out {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    if let Some(tap) = &self.tap {
                        let _ = tap.send(t.contents.to_vec());
                    }
                    self.stats.datagrams_sent.fetch_add(1, Ordering::Relaxed);
                    let via_relay = self.relay.as_ref().filter(|l| t.source == l.relayed_addr);
                    if let Some(link) = via_relay {
                        self.stats.datagrams_relayed.fetch_add(1, Ordering::Relaxed);
                        let _ = link.to_relay.try_send((t.contents.to_vec(), t.destination));
                    } else {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                }
                Output::Event(e) => self.event(e).await?,
            }
        }
    }

    async fn event(&mut self, e: Event) -> Result<(), String> {
        match e {
            Event::Connected => {
                self.connected = true;
                let _ = self.events.send(PeerEvent::Connected).await;
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Err("the other side is gone (ICE disconnected)".to_owned());
            }
            // The answering side learns its m-lines from the offer.
            Event::MediaAdded(added) if added.kind == MediaKind::Audio => {
                if matches!(added.direction, Direction::SendRecv | Direction::SendOnly)
                    && self.send_mid.is_none()
                {
                    self.send_mid = Some(added.mid);
                }
                if matches!(added.direction, Direction::SendRecv | Direction::RecvOnly) {
                    let next = self.recv_mids.len();
                    self.recv_mids.entry(added.mid).or_insert(next);
                }
            }
            Event::MediaData(data) => {
                let Some(&track) = self.recv_mids.get(&data.mid) else {
                    return Ok(());
                };
                self.stats.frames_received.fetch_add(1, Ordering::Relaxed);
                let ev = PeerEvent::Frame {
                    track,
                    data: data.data.to_vec(),
                    rtp_time: data.time.numer(),
                };
                if self.events.try_send(ev).is_err() {
                    self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    async fn connect(a: &Peer, b: &Peer) {
        let offer = a.create_offer().await.unwrap();
        let answer = b.accept_offer(&offer).await.unwrap();
        a.accept_answer(&answer).await.unwrap();
        for c in b.local_candidates() {
            a.add_remote_candidate(c).await.unwrap();
        }
        for c in a.local_candidates() {
            b.add_remote_candidate(c).await.unwrap();
        }
    }

    async fn wait_connected(p: &mut Peer) {
        loop {
            match tokio::time::timeout(Duration::from_secs(20), p.next_event())
                .await
                .unwrap()
            {
                Some(PeerEvent::Connected) => return,
                Some(PeerEvent::Closed { reason }) => panic!("closed: {reason}"),
                None => panic!("gone"),
                _ => {}
            }
        }
    }

    #[tokio::test]
    async fn two_peers_exchange_frames_both_ways() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (tap_tx, mut tap_rx) = mpsc::unbounded_channel();
        let mut cfg = PeerConfig::new(ip, Layout::Call);
        cfg.tap = Some(tap_tx);
        let mut a = Peer::new(cfg).await.unwrap();
        let mut b = Peer::new(PeerConfig::new(ip, Layout::Call)).await.unwrap();
        connect(&a, &b).await;
        wait_connected(&mut a).await;
        wait_connected(&mut b).await;
        let (sa, sb) = (a.frame_sender(), b.frame_sender());
        for i in 0..20u64 {
            sa.send(format!("frame-from-a-{i:03}").into_bytes(), i * 960)
                .unwrap();
            sb.send(format!("frame-from-b-{i:03}").into_bytes(), i * 960)
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut got_b = Vec::new();
        while got_b.len() < 20 {
            match tokio::time::timeout(Duration::from_secs(10), b.next_event())
                .await
                .unwrap()
                .unwrap()
            {
                PeerEvent::Frame { track, data, .. } => {
                    assert_eq!(track, 0);
                    got_b.push(String::from_utf8(data).unwrap());
                }
                PeerEvent::Closed { reason } => panic!("{reason}"),
                PeerEvent::Connected => {}
            }
        }
        assert_eq!(got_b[0], "frame-from-a-000");
        assert_eq!(got_b[19], "frame-from-a-019");
        let mut got_a = 0;
        while got_a < 20 {
            if let PeerEvent::Frame { data, .. } =
                tokio::time::timeout(Duration::from_secs(10), a.next_event())
                    .await
                    .unwrap()
                    .unwrap()
            {
                assert!(data.starts_with(b"frame-from-b-"));
                got_a += 1;
            }
        }
        // SRTP on the wire: the frame text never appears in a datagram a sent.
        let mut n = 0;
        while let Ok(d) = tap_rx.try_recv() {
            n += 1;
            assert!(!d.windows(13).any(|w| w == b"frame-from-a-"));
        }
        assert!(n > 20);
        a.close().await;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), a.next_event())
                .await
                .unwrap()
            {
                Some(PeerEvent::Closed { .. }) | None => break,
                _ => {}
            }
        }
    }

    #[tokio::test]
    async fn garbage_sdp_and_candidates_are_errors() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = Peer::new(PeerConfig::new(ip, Layout::Call)).await.unwrap();
        assert!(a.accept_offer("v=0\r\nnonsense").await.is_err());
        assert!(a.accept_answer("v=0").await.is_err());
        assert!(a.add_remote_candidate("candidate:garbage").await.is_err());
        // Still alive.
        assert!(a.create_offer().await.unwrap().contains("m=audio"));
    }
}
