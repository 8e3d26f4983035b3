//! End-to-end tests of the SFU on loopback: real ICE, DTLS-SRTP and RTP between the
//! SFU and small str0m test clients (one UDP socket and one `Rtc` each).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entente_media::sfu::{OfferError, Sfu, SfuConfig, SfuError, TappedFrame};
use rand::{Rng, SeedableRng};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Liveness bound for waits; generous because four people share two cores.
/// Frames a test client received: (slot, payload).
type Received = Arc<Mutex<Vec<(usize, Vec<u8>)>>>;

const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Payloads: a stand-in for SFrame. Real clients send SFrame ciphertext; the tests send a
// keyed scramble of "plain|<from>|<tag>|<seq>" so they can check that the SFU forwards
// exactly the bytes it got and that no tapped payload contains the plaintext.

fn scramble(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ 0xA5u8.wrapping_add((i as u8).wrapping_mul(29)))
        .collect()
}

fn frame(from: &str, tag: &str, seq: u32) -> Vec<u8> {
    scramble(format!("plain|{from}|{tag}|{seq}").as_bytes())
}

/// (from, tag, seq) of a payload made by [`frame`].
fn parse(payload: &[u8]) -> Option<(String, String, u32)> {
    let plain = String::from_utf8(scramble(payload)).ok()?;
    let mut parts = plain.split('|');
    (parts.next()? == "plain").then_some(())?;
    let from = parts.next()?.to_owned();
    let tag = parts.next()?.to_owned();
    let seq = parts.next()?.parse().ok()?;
    Some((from, tag, seq))
}

// ---------------------------------------------------------------------------------------
// Test client.

enum ClientCommand {
    Send(Vec<u8>),
    Raw(Vec<u8>),
}

struct TestClient {
    name: String,
    commands: mpsc::UnboundedSender<ClientCommand>,
    /// (slot index, payload) of every frame received, in arrival order.
    received: Received,
    connected: Arc<AtomicBool>,
}

fn client_config() -> RtcConfig {
    Rtc::builder().clear_codecs().enable_opus(true, false)
}

/// A client `Rtc` with a host candidate and an offer of the given m-lines.
fn make_offer(
    config: RtcConfig,
    addr: SocketAddr,
    lines: &[(MediaKind, Direction)],
    data_channel: bool,
) -> (Rtc, SdpOffer, SdpPendingOffer, Vec<Mid>) {
    let mut rtc = config.build(Instant::now());
    rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
    let mut api = rtc.sdp_api();
    let mids = lines
        .iter()
        .map(|(kind, dir)| api.add_media(*kind, *dir, None, None, None))
        .collect();
    if data_channel {
        api.add_channel("chat".into());
    }
    let (offer, pending) = api.apply().unwrap();
    (rtc, offer, pending, mids)
}

fn shape(slots: usize) -> Vec<(MediaKind, Direction)> {
    let mut lines = vec![(MediaKind::Audio, Direction::SendOnly)];
    lines.extend((0..slots).map(|_| (MediaKind::Audio, Direction::RecvOnly)));
    lines
}

impl TestClient {
    async fn join(sfu: &Sfu, call: &str, name: &str, slots: usize) -> TestClient {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let (mut rtc, offer, pending, mids) =
            make_offer(client_config(), addr, &shape(slots), false);
        let answer = sfu.join(call, name, &offer.to_sdp_string()).await.unwrap();
        let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
        rtc.sdp_api().accept_answer(pending, answer).unwrap();

        let (commands, command_rx) = mpsc::unbounded_channel();
        let client = TestClient {
            name: name.to_owned(),
            commands,
            received: Arc::default(),
            connected: Arc::default(),
        };
        let driver = ClientDriver {
            rtc,
            socket,
            send_mid: mids[0],
            slots: mids[1..].to_vec(),
            sfu: sfu.local_addr(),
            received: client.received.clone(),
            connected: client.connected.clone(),
        };
        tokio::spawn(driver.run(command_rx));
        client
    }

    fn send(&self, tag: &str, seq: u32) {
        let payload = frame(&self.name, tag, seq);
        let _ = self.commands.send(ClientCommand::Send(payload));
    }

    /// Sends raw bytes from this client's socket straight to the SFU.
    fn send_raw(&self, bytes: Vec<u8>) {
        let _ = self.commands.send(ClientCommand::Raw(bytes));
    }

    /// Sequence numbers received from `from` with `tag`, in arrival order.
    fn seqs(&self, from: &str, tag: &str) -> Vec<u32> {
        self.frames()
            .into_iter()
            .filter(|(_, f, t, _)| f == from && t == tag)
            .map(|(_, _, _, seq)| seq)
            .collect()
    }

    /// Slots on which frames from `from` arrived.
    fn slots_of(&self, from: &str) -> BTreeSet<usize> {
        self.frames()
            .into_iter()
            .filter(|(_, f, _, _)| f == from)
            .map(|(slot, ..)| slot)
            .collect()
    }

    /// Senders of everything received.
    fn senders(&self) -> BTreeSet<String> {
        self.frames().into_iter().map(|(_, f, ..)| f).collect()
    }

    fn frames(&self) -> Vec<(usize, String, String, u32)> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .map(|(slot, payload)| {
                let (from, tag, seq) = parse(payload).expect("a payload made by a test client");
                (*slot, from, tag, seq)
            })
            .collect()
    }
}

struct ClientDriver {
    rtc: Rtc,
    socket: UdpSocket,
    send_mid: Mid,
    slots: Vec<Mid>,
    sfu: SocketAddr,
    received: Received,
    connected: Arc<AtomicBool>,
}

impl ClientDriver {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<ClientCommand>) {
        let local = self.socket.local_addr().unwrap();
        let mut buf = vec![0u8; 2048];
        let mut rtp_time = 0u64;
        loop {
            let timeout = loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Transmit(t)) => {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                    Ok(Output::Event(Event::Connected)) => {
                        self.connected.store(true, Ordering::SeqCst);
                    }
                    Ok(Output::Event(Event::MediaData(data))) => {
                        if let Some(slot) = self.slots.iter().position(|m| *m == data.mid) {
                            let mut received = self.received.lock().unwrap();
                            received.push((slot, data.data.to_vec()));
                        }
                    }
                    Ok(Output::Event(_)) => {}
                    Err(_) => return,
                }
            };
            if !self.rtc.is_alive() {
                return;
            }
            tokio::select! {
                command = commands.recv() => match command {
                    None => return,
                    Some(ClientCommand::Send(payload)) => {
                        if let Some(writer) = self.rtc.writer(self.send_mid) {
                            let pt = writer.payload_params().next().unwrap().pt();
                            let time = MediaTime::new(rtp_time, Frequency::FORTY_EIGHT_KHZ);
                            let _ = writer.write(pt, Instant::now(), time, payload);
                            rtp_time += 960;
                        }
                    }
                    Some(ClientCommand::Raw(bytes)) => {
                        let _ = self.socket.send_to(&bytes, self.sfu).await;
                    }
                },
                received = self.socket.recv_from(&mut buf) => {
                    let Ok((len, source)) = received else { continue };
                    let Ok(contents) = buf[..len].try_into() else { continue };
                    let input = Input::Receive(
                        Instant::now(),
                        Receive { proto: Protocol::Udp, source, destination: local, contents },
                    );
                    let _ = self.rtc.handle_input(input);
                }
                () = tokio::time::sleep_until(timeout.into()) => {
                    let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Orchestration.

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends "warm" frames until every client has heard every other member of its group:
/// then every path through the SFU is up (ICE, DTLS-SRTP, slots).
async fn warm_up(groups: &[&[&TestClient]]) {
    let start = Instant::now();
    let mut seq = 0;
    loop {
        let ready = groups.iter().all(|group| {
            group.iter().all(|c| {
                group
                    .iter()
                    .filter(|o| o.name != c.name)
                    .all(|o| !c.seqs(&o.name, "warm").is_empty())
            })
        });
        if ready {
            return;
        }
        assert!(start.elapsed() < PATIENCE, "calls did not come up");
        for client in groups.iter().flat_map(|g| g.iter()) {
            client.send("warm", seq);
        }
        seq += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every client of `senders` sends `count` frames tagged `tag`, interleaved.
async fn talk(senders: &[&TestClient], tag: &str, count: u32) {
    for seq in 0..count {
        for client in senders {
            client.send(tag, seq);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until each client in `group` has `count` frames tagged `tag` from every other.
async fn heard_all(group: &[&TestClient], tag: &str, count: usize) {
    wait_for(tag, || {
        group.iter().all(|c| {
            group
                .iter()
                .filter(|o| o.name != c.name)
                .all(|o| c.seqs(&o.name, tag).len() >= count)
        })
    })
    .await;
    // Settle, so that frames that should NOT arrive would have had time to.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn loopback() -> SfuConfig {
    SfuConfig::new("127.0.0.1:0".parse().unwrap())
}

fn in_order(count: u32) -> Vec<u32> {
    (0..count).collect()
}

// ---------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_receive_each_other_exactly_and_nothing_else() {
    let (tap_tx, mut tap_rx) = mpsc::unbounded_channel();
    let sfu = Sfu::start(SfuConfig {
        tap: Some(tap_tx),
        ..loopback()
    })
    .unwrap();

    let alice = TestClient::join(&sfu, "call-1", "alice", 4).await;
    let bob = TestClient::join(&sfu, "call-1", "bob", 4).await;
    let carol = TestClient::join(&sfu, "call-1", "carol", 4).await;
    let dave = TestClient::join(&sfu, "call-2", "dave", 4).await;
    let erin = TestClient::join(&sfu, "call-2", "erin", 4).await;
    let call1 = [&alice, &bob, &carol];
    let call2 = [&dave, &erin];
    warm_up(&[&call1, &call2]).await;

    let everyone = [&alice, &bob, &carol, &dave, &erin];
    talk(&everyone, "p1", 50).await;
    heard_all(&call1, "p1", 50).await;
    heard_all(&call2, "p1", 50).await;

    for (group, others) in [(&call1[..], &call2[..]), (&call2[..], &call1[..])] {
        for c in group {
            for o in group.iter().filter(|o| o.name != c.name) {
                // Exactly what was sent, in order, on one slot.
                assert_eq!(
                    c.seqs(&o.name, "p1"),
                    in_order(50),
                    "{} from {}",
                    c.name,
                    o.name
                );
                assert_eq!(c.slots_of(&o.name).len(), 1, "{} from {}", c.name, o.name);
            }
            let senders = c.senders();
            assert!(!senders.contains(&c.name), "{} heard itself", c.name);
            for o in others {
                assert!(
                    !senders.contains(&o.name),
                    "{} heard {} of another call",
                    c.name,
                    o.name
                );
            }
        }
    }

    let stats = sfu.stats();
    assert_eq!((stats.calls, stats.participants), (2, 5));

    // The tap saw exactly the forwarded copies, and only ciphertext.
    let mut tapped: Vec<TappedFrame> = Vec::new();
    while let Ok(t) = tap_rx.try_recv() {
        tapped.push(t);
    }
    assert_eq!(tapped.len() as u64, stats.frames_forwarded);
    let bytes: usize = tapped.iter().map(|t| t.payload.len()).sum();
    assert_eq!(bytes as u64, stats.bytes_forwarded);
    for t in &tapped {
        assert!(
            !t.payload.windows(5).any(|w| w == b"plain"),
            "plaintext in the SFU"
        );
        let (from, ..) = parse(&t.payload).unwrap();
        assert_eq!(from, t.from);
        let call = if call1.iter().any(|c| c.name == t.from) {
            "call-1"
        } else {
            "call-2"
        };
        assert_eq!(t.call, call);
    }
    for group in [&call1[..], &call2[..]] {
        for c in group {
            for o in group.iter().filter(|o| o.name != c.name) {
                let seqs: Vec<u32> = tapped
                    .iter()
                    .filter(|t| t.from == o.name && t.to == c.name)
                    .filter_map(|t| parse(&t.payload))
                    .filter(|(_, tag, _)| tag == "p1")
                    .map(|(.., seq)| seq)
                    .collect();
                assert_eq!(seqs, in_order(50), "tap {} -> {}", o.name, c.name);
                let received: Vec<Vec<u8>> = {
                    let r = c.received.lock().unwrap();
                    r.iter().map(|(_, p)| p.clone()).collect()
                };
                for seq in 0..50 {
                    assert!(received.contains(&frame(&o.name, "p1", seq)));
                }
            }
        }
    }

    sfu.close().await;
    assert_eq!(sfu.stats().participants, 0);
    assert!(matches!(
        sfu.join("call-1", "frank", "v=0").await,
        Err(SfuError::Offer(_) | SfuError::Closed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_removes_a_participant_and_frees_its_slot() {
    let sfu = Sfu::start(loopback()).unwrap();
    // Two slots each: in a call of three, carol's slot must be freed for dave to be heard.
    let alice = TestClient::join(&sfu, "call", "alice", 2).await;
    let bob = TestClient::join(&sfu, "call", "bob", 2).await;
    let carol = TestClient::join(&sfu, "call", "carol", 2).await;
    warm_up(&[&[&alice, &bob, &carol]]).await;
    talk(&[&alice, &bob, &carol], "p1", 20).await;
    heard_all(&[&alice, &bob, &carol], "p1", 20).await;
    let carols_slot_at_alice = alice.slots_of("carol");

    sfu.retain("call", &["alice".to_owned(), "bob".to_owned()])
        .await;
    assert_eq!(sfu.stats().participants, 2);

    let dave = TestClient::join(&sfu, "call", "dave", 2).await;
    warm_up(&[&[&alice, &bob, &dave]]).await;
    // Carol keeps talking into the void; the others talk on.
    talk(&[&alice, &bob, &carol, &dave], "p2", 20).await;
    heard_all(&[&alice, &bob, &dave], "p2", 20).await;

    assert_eq!(
        alice.slots_of("dave"),
        carols_slot_at_alice,
        "dave reuses carol's slot"
    );
    for c in [&alice, &bob, &dave] {
        assert!(
            c.seqs("carol", "p2").is_empty(),
            "{} heard carol after removal",
            c.name
        );
        for o in [&alice, &bob, &dave].iter().filter(|o| o.name != c.name) {
            assert_eq!(c.seqs(&o.name, "p2"), in_order(20));
        }
    }
    assert!(carol.seqs("alice", "p2").is_empty() && carol.seqs("bob", "p2").is_empty());
    assert!(carol.seqs("dave", "warm").is_empty());
    assert_eq!(carol.seqs("alice", "p1"), in_order(20));

    // Leave works the same way.
    sfu.leave("call", "dave").await;
    assert_eq!(sfu.stats().participants, 2);
    sfu.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_join_replaces_the_first() {
    let sfu = Sfu::start(loopback()).unwrap();
    let alice = TestClient::join(&sfu, "call", "alice", 2).await;
    let old_bob = TestClient::join(&sfu, "call", "bob", 2).await;
    warm_up(&[&[&alice, &old_bob]]).await;

    let new_bob = TestClient::join(&sfu, "call", "bob", 2).await;
    assert_eq!(sfu.stats().participants, 2);
    wait_for("the new session", || {
        new_bob.connected.load(Ordering::SeqCst)
    })
    .await;
    let before = old_bob.seqs("alice", "warm").len();
    warm_up(&[&[&alice, &new_bob]]).await;
    talk(&[&alice, &new_bob], "p1", 20).await;
    heard_all(&[&alice, &new_bob], "p1", 20).await;
    assert!(old_bob.seqs("alice", "p1").is_empty());
    assert_eq!(old_bob.seqs("alice", "warm").len(), before);
    assert_eq!(new_bob.seqs("alice", "p1"), in_order(20));
    sfu.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_flood_does_not_disturb_a_running_call() {
    let sfu = Sfu::start(loopback()).unwrap();
    let alice = TestClient::join(&sfu, "call", "alice", 2).await;
    let bob = TestClient::join(&sfu, "call", "bob", 2).await;
    warm_up(&[&[&alice, &bob]]).await;

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let garbage = |rng: &mut rand::rngs::StdRng| -> Vec<u8> {
        let len = rng.gen_range(0..1300);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
        // Make most of it look like one of the multiplexed protocols, so that it gets
        // past demultiplexing into routing and into the participants' stacks.
        match (rng.gen_range(0..5u8), bytes.len()) {
            (0, n) if n >= 20 => {
                bytes[0] = 0;
                bytes[1] = 1;
                bytes[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
            }
            (1, n) if n >= 13 => bytes[..3].copy_from_slice(&[22, 0xfe, 0xfd]),
            (2, n) if n >= 12 => bytes[..2].copy_from_slice(&[0x80, 111]),
            (3, n) if n >= 8 => bytes[..2].copy_from_slice(&[0x80, 200]),
            _ => {}
        }
        bytes
    };

    // From a stranger, and from the participants' own addresses (which go into their
    // Rtcs), while the call is running.
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for round in 0..40 {
        for _ in 0..50 {
            let _ = stranger.send_to(&garbage(&mut rng), sfu.local_addr()).await;
        }
        for _ in 0..5 {
            alice.send_raw(garbage(&mut rng));
            bob.send_raw(garbage(&mut rng));
        }
        alice.send("flood", round);
        bob.send("flood", round);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    talk(&[&alice, &bob], "p1", 50).await;
    heard_all(&[&alice, &bob], "p1", 50).await;
    assert_eq!(alice.seqs("bob", "p1"), in_order(50));
    assert_eq!(bob.seqs("alice", "p1"), in_order(50));
    let stats = sfu.stats();
    assert_eq!(stats.participants, 2);
    assert!(
        stats.datagrams_ignored > 0,
        "the flood never reached the SFU"
    );
    sfu.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_of_the_wrong_shape_are_refused() {
    let sfu = Sfu::start(loopback()).unwrap();
    let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let audio = |d| (MediaKind::Audio, d);
    let offer = |config: RtcConfig, lines: &[(MediaKind, Direction)], channel: bool| {
        make_offer(config, addr, lines, channel).1.to_sdp_string()
    };
    use Direction::{RecvOnly, SendOnly, SendRecv};
    let cases = [
        (
            offer(client_config(), &[audio(RecvOnly), audio(RecvOnly)], false),
            OfferError::Direction {
                index: 0,
                expected: "sendonly",
                found: "recvonly",
            },
        ),
        (
            offer(client_config(), &[audio(SendRecv)], false),
            OfferError::Direction {
                index: 0,
                expected: "sendonly",
                found: "sendrecv",
            },
        ),
        (
            offer(client_config(), &[audio(SendOnly), audio(SendOnly)], false),
            OfferError::Direction {
                index: 1,
                expected: "recvonly",
                found: "sendonly",
            },
        ),
        (
            offer(
                client_config().enable_vp8(true),
                &[(MediaKind::Video, SendOnly), audio(RecvOnly)],
                false,
            ),
            OfferError::NotAudio {
                index: 0,
                kind: "video".into(),
            },
        ),
        (
            offer(client_config(), &shape(2), true),
            OfferError::NotAudio {
                index: 3,
                kind: "application".into(),
            },
        ),
        (
            offer(
                Rtc::builder().clear_codecs().enable_pcmu(true, false),
                &shape(1),
                false,
            ),
            OfferError::NoOpus { index: 0 },
        ),
        (
            offer(client_config(), &shape(33), false),
            OfferError::TooManySlots { max: 32 },
        ),
        ("hello".to_owned(), OfferError::NoMedia),
    ];
    for (sdp, expected) in cases {
        match sfu.join("call", "mallory", &sdp).await {
            Err(SfuError::Offer(e)) => assert_eq!(e, expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
    // Right shape, but str0m refuses it (no DTLS fingerprint).
    let no_fingerprint: String = offer(client_config(), &shape(2), false)
        .lines()
        .filter(|l| !l.starts_with("a=fingerprint"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    assert!(matches!(
        sfu.join("call", "mallory", &no_fingerprint).await,
        Err(SfuError::Offer(OfferError::Rejected(_)))
    ));
    assert!(matches!(
        sfu.join("", "mallory", &offer(client_config(), &shape(2), false))
            .await,
        Err(SfuError::InvalidId { what: "call", .. })
    ));
    assert_eq!(sfu.stats().participants, 0);

    // The right shape is accepted, with any number of slots from zero.
    for slots in [0, 1, 8] {
        let sdp = offer(client_config(), &shape(slots), false);
        sfu.join("call", &format!("p{slots}"), &sdp).await.unwrap();
    }
    assert_eq!(sfu.stats().participants, 3);
    sfu.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_on_calls_and_participants_hold() {
    let sfu = Sfu::start(SfuConfig {
        max_participants_per_call: 2,
        max_calls: 1,
        ..loopback()
    })
    .unwrap();
    let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let offer = || {
        make_offer(client_config(), addr, &shape(2), false)
            .1
            .to_sdp_string()
    };
    sfu.join("call", "a", &offer()).await.unwrap();
    sfu.join("call", "b", &offer()).await.unwrap();
    assert!(matches!(
        sfu.join("call", "c", &offer()).await,
        Err(SfuError::CallFull { max: 2 })
    ));
    // Rejoining does not count twice.
    sfu.join("call", "b", &offer()).await.unwrap();
    assert!(matches!(
        sfu.join("other", "a", &offer()).await,
        Err(SfuError::TooManyCalls { max: 1 })
    ));
    assert_eq!((sfu.stats().calls, sfu.stats().participants), (1, 2));
    sfu.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_participants_are_dropped() {
    let sfu = Sfu::start(SfuConfig {
        idle_timeout: Duration::from_millis(500),
        ..loopback()
    })
    .unwrap();
    // An offer whose client never connects: nothing ever arrives from it.
    let addr: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let sdp = make_offer(client_config(), addr, &shape(1), false)
        .1
        .to_sdp_string();
    sfu.join("call", "ghost", &sdp).await.unwrap();
    assert_eq!(sfu.stats().participants, 1);
    wait_for("the idle participant to go", || {
        sfu.stats().participants == 0
    })
    .await;
    assert_eq!(sfu.stats().calls, 0);
    sfu.close().await;
}
