//! Load driver for the SFU: K str0m clients on loopback in this process, each sending
//! audio-sized frames, for a fixed time; prints forwarded frames per second and per
//! CPU-second of the whole process (clients included, so the SFU's own figure is better).
//!
//! `cargo bench -p entente-media --bench sfu_load` (set `SFU_LOAD_SECS` to change the
//! 10 s per scenario).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use entente_media::sfu::{Sfu, SfuConfig};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const FRAME_BYTES: usize = 100;

struct Scenario {
    calls: usize,
    per_call: usize,
    /// Frames per second per client.
    rate: u32,
}

fn main() {
    let secs: u64 = std::env::var("SFU_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let scenarios = [
        Scenario {
            calls: 1,
            per_call: 4,
            rate: 50,
        },
        Scenario {
            calls: 4,
            per_call: 4,
            rate: 50,
        },
        Scenario {
            calls: 4,
            per_call: 8,
            rate: 50,
        },
        Scenario {
            calls: 1,
            per_call: 4,
            rate: 1000,
        },
        Scenario {
            calls: 4,
            per_call: 4,
            rate: 1000,
        },
    ];
    println!(
        "{:>5} {:>8} {:>6} {:>10} {:>12} {:>12} {:>10} {:>9} {:>14}",
        "calls",
        "per_call",
        "fps",
        "frames_in",
        "forwarded/s",
        "received/s",
        "dropped",
        "cpu_s",
        "fwd/cpu_s"
    );
    for s in scenarios {
        runtime.block_on(run(&s, Duration::from_secs(secs)));
    }
}

async fn run(s: &Scenario, length: Duration) {
    let sfu = Sfu::start(SfuConfig {
        max_participants_per_call: s.per_call,
        ..SfuConfig::new("127.0.0.1:0".parse().unwrap())
    })
    .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for call in 0..s.calls {
        for p in 0..s.per_call {
            let client = Client::join(
                &sfu,
                &format!("call{call}"),
                &format!("p{p}"),
                s.per_call - 1,
                received.clone(),
            )
            .await;
            clients.push(client);
        }
    }
    // Let every connection come up before measuring.
    let start = Instant::now();
    while clients.iter().any(|c| !c.connected()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "clients did not connect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let before = sfu.stats();
    let received_before = received.load(Ordering::Relaxed);
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let interval = Duration::from_secs(1) / s.rate;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while start.elapsed() < length {
        ticker.tick().await;
        for c in &clients {
            c.send(vec![0x5a; FRAME_BYTES]);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds().map(|after| after - cpu_before.unwrap_or(after));
    let after = sfu.stats();
    let forwarded = after.frames_forwarded - before.frames_forwarded;
    let got = received.load(Ordering::Relaxed) - received_before;
    println!(
        "{:>5} {:>8} {:>6} {:>10} {:>12.0} {:>12.0} {:>10} {:>9} {:>14}",
        s.calls,
        s.per_call,
        s.rate,
        after.frames_in - before.frames_in,
        forwarded as f64 / elapsed,
        got as f64 / elapsed,
        after.frames_dropped - before.frames_dropped,
        cpu.map_or("n/a".into(), |c| format!("{c:.2}")),
        cpu.map_or("n/a".into(), |c| format!("{:.0}", forwarded as f64 / c)),
    );
    sfu.close().await;
}

/// User + system CPU time of this process, from /proc (Linux only).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the ")" that ends the command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

struct Client {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    connected: Arc<AtomicU64>,
}

impl Client {
    async fn join(
        sfu: &Sfu,
        call: &str,
        name: &str,
        slots: usize,
        received: Arc<AtomicU64>,
    ) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        let send_mid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        for _ in 0..slots {
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = api.apply().unwrap();
        let answer = sfu.join(call, name, &offer.to_sdp_string()).await.unwrap();
        let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
        rtc.sdp_api().accept_answer(pending, answer).unwrap();
        let (frames, frame_rx) = mpsc::unbounded_channel();
        let connected = Arc::new(AtomicU64::new(0));
        tokio::spawn(drive(
            rtc,
            socket,
            send_mid,
            frame_rx,
            received,
            connected.clone(),
        ));
        Client { frames, connected }
    }

    fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed) == 1
    }

    fn send(&self, payload: Vec<u8>) {
        let _ = self.frames.send(payload);
    }
}

async fn drive(
    mut rtc: Rtc,
    socket: UdpSocket,
    send_mid: Mid,
    mut frames: mpsc::UnboundedReceiver<Vec<u8>>,
    received: Arc<AtomicU64>,
    connected: Arc<AtomicU64>,
) {
    let local: SocketAddr = socket.local_addr().unwrap();
    let mut buf = vec![0u8; 2048];
    let mut rtp_time = 0u64;
    loop {
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(Event::Connected)) => connected.store(1, Ordering::Relaxed),
                Ok(Output::Event(Event::MediaData(_))) => {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Output::Event(_)) => {}
                Err(_) => return,
            }
        };
        if !rtc.is_alive() {
            return;
        }
        tokio::select! {
            frame = frames.recv() => {
                let Some(payload) = frame else { return };
                if let Some(writer) = rtc.writer(send_mid) {
                    let pt = writer.payload_params().next().unwrap().pt();
                    let time = MediaTime::new(rtp_time, Frequency::FORTY_EIGHT_KHZ);
                    let _ = writer.write(pt, Instant::now(), time, payload);
                    rtp_time += 960;
                }
            }
            got = socket.recv_from(&mut buf) => {
                let Ok((len, source)) = got else { continue };
                let Ok(contents) = buf[..len].try_into() else { continue };
                let input = Input::Receive(
                    Instant::now(),
                    Receive { proto: Protocol::Udp, source, destination: local, contents },
                );
                let _ = rtc.handle_input(input);
            }
            () = tokio::time::sleep_until(timeout.into()) => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now()));
            }
        }
    }
}
