//! Issue 7's interop test: a standard WebRTC endpoint we did not write, aiortc (with
//! libopus through PyAV), takes part in a 1:1 call with our [`Peer`] given the same
//! offer and answer, and the audio gets through both ways.
//!
//! aiortc runs unmodified in `tests/python/call_peer.py` (a pinned virtualenv),
//! driven by JSON lines over stdin/stdout; its offers and answers are non-trickle
//! (aiortc gathers before it describes), ours carry our host candidate. The script
//! only narrows aiortc's host candidates to 127.0.0.1 and gives it no STUN server.
//!
//! - `entente_calls_aiortc`: we offer, aiortc answers.
//! - `aiortc_calls_entente`: aiortc offers, we answer.
//!
//! In both, we send 4 s of [`test_signal`] as Opus frames paced in real time while
//! aiortc plays a different 4 s test signal from a WAV file (MediaPlayer). aiortc
//! writes what it decodes to a WAV file, we decode what arrives with our Opus
//! decoder; each recording must correlate with what its sender sent
//! ([`best_correlation`]) and not with an unrelated signal. Set-up times are printed,
//! never asserted.
//!
//! Without Python or PyPI these tests fail, saying what is missing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use entente_media::audio::{
    Decoder, Encoder, FRAME_SAMPLES, Pcm, SAMPLE_RATE, best_correlation, read_wav, test_signal,
    write_wav,
};
use entente_media::peer::{Layout, Peer, PeerConfig, PeerEvent};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// aiortc and everything pip resolves for it on CPython 3.11, pinned so that a new
/// release cannot change what the test checks.
const REQUIREMENTS: &[&str] = &[
    "aiortc==1.16.0",
    "aioice==0.13.0",
    "av==18.1.0",
    "cffi==2.1.1",
    "cryptography==50.0.2",
    "dnspython==2.9.2",
    "google-crc32c==1.9.0",
    "ifaddr==0.2.0",
    "pycparser==3.12",
    "pyee==13.0.1",
    "pylibsrtp==1.0.0",
    "pyOpenSSL==26.4.0",
    "typing_extensions==4.16.0",
];

/// Length of each side's test signal.
const SIGNAL_SECONDS: f64 = 4.0;
/// Seeds of what we send, what aiortc sends, and a signal nobody sends.
const OUR_SEED: u64 = 71;
const THEIR_SEED: u64 = 72;
const UNRELATED_SEED: u64 = 73;
/// A recording must hold at least this much of the 4 s that were sent.
const MIN_RECORDED_SECONDS: f64 = 3.0;
/// Measured on loopback: 0.78 Entente -> aiortc (our opus-rs encoder, libopus
/// decoder), 0.997 aiortc -> Entente; unrelated signals 0.05. A broken codec path,
/// wrong payload type or garbled packets give well under 0.3.
const MIN_CORRELATION: f64 = 0.6;
const MAX_UNRELATED_CORRELATION: f64 = 0.35;
/// How far the recording may be shifted against what was sent (250 ms; measured
/// 6.5 ms, Opus's look-ahead). The correlation is slow in debug builds, so not more.
const MAX_LAG: usize = SAMPLE_RATE as usize / 4;
/// The whole call, set-up to hang-up; past it the test fails instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The call ends once we have sent everything and nothing arrived for this long.
const QUIET_BEFORE_HANGUP: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Entente,
    Aiortc,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entente_calls_aiortc() {
    call(Caller::Entente).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_calls_entente() {
    call(Caller::Aiortc).await;
}

/// One call with aiortc, both directions of audio checked; panics with aiortc's log
/// on failure (the temporary directory with both recordings is kept then).
async fn call(caller: Caller) {
    let python = tokio::task::spawn_blocking(|| entente_testkit::python::venv(REQUIREMENTS))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot set up aiortc for the interop test: {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let files = Files::new(dir.path());
    let mut aiortc = Aiortc::spawn(&python, &files.log).await.unwrap();
    let outcome = tokio::time::timeout(CALL_TIMEOUT, run_call(caller, &mut aiortc, &files)).await;
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(_) => Some(format!(
            "the call with aiortc did not finish within {CALL_TIMEOUT:?}"
        )),
    };
    if let Some(failure) = failure {
        aiortc.kill().await;
        let log = std::fs::read_to_string(&files.log).unwrap_or_default();
        let kept = dir.keep();
        panic!(
            "{caller:?} calling: {failure}\n(recordings kept in {})\n--- aiortc's log ---\n{log}",
            kept.display()
        );
    }
    aiortc.finish().await;
}

/// Where the WAV files and aiortc's log go.
struct Files {
    /// What aiortc plays.
    their_signal: PathBuf,
    /// What aiortc received from us.
    their_recording: PathBuf,
    /// What we received from aiortc (written for a person looking at a failure).
    our_recording: PathBuf,
    log: PathBuf,
}

impl Files {
    fn new(dir: &Path) -> Self {
        Self {
            their_signal: dir.join("aiortc-plays.wav"),
            their_recording: dir.join("aiortc-recorded.wav"),
            our_recording: dir.join("entente-recorded.wav"),
            log: dir.join("aiortc.log"),
        }
    }
}

async fn run_call(caller: Caller, aiortc: &mut Aiortc, files: &Files) -> Result<()> {
    let ours = test_signal(SIGNAL_SECONDS, OUR_SEED);
    let theirs = test_signal(SIGNAL_SECONDS, THEIR_SEED);
    write_wav(&files.their_signal, &theirs)?;
    let paths = json!({
        "play": files.their_signal,
        "record": files.their_recording,
    });
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut peer = Peer::new(PeerConfig::new(ip, Layout::Call)).await?;
    let our_candidate = format!("{} {} typ host", ip, peer.local_addr().port());

    // Offer and answer, nothing else: no trickled candidates either way.
    let start = Instant::now();
    match caller {
        Caller::Entente => {
            let offer = peer.create_offer().await?;
            ensure!(
                offer.contains(&our_candidate),
                "our offer lacks our host candidate {our_candidate}:\n{offer}"
            );
            aiortc.send(json!({"cmd": "answer", "sdp": offer, "play": paths["play"], "record": paths["record"]})).await?;
            let answer = aiortc.wait_for("answer").await?;
            let answer = answer["sdp"]
                .as_str()
                .context("aiortc's answer has no sdp")?;
            ensure!(
                answer.contains("typ host"),
                "aiortc's answer carries no candidate:\n{answer}"
            );
            peer.accept_answer(answer)
                .await
                .with_context(|| format!("taking aiortc's answer:\n{answer}"))?;
        }
        Caller::Aiortc => {
            aiortc
                .send(json!({"cmd": "offer", "play": paths["play"], "record": paths["record"]}))
                .await?;
            let offer = aiortc.wait_for("offer").await?;
            let offer = offer["sdp"].as_str().context("aiortc's offer has no sdp")?;
            let answer = peer
                .accept_offer(offer)
                .await
                .with_context(|| format!("answering aiortc's offer:\n{offer}"))?;
            ensure!(
                answer.contains(&our_candidate),
                "our answer lacks our host candidate {our_candidate}:\n{answer}"
            );
            aiortc
                .send(json!({"cmd": "remote_answer", "sdp": answer}))
                .await?;
        }
    }

    let exchange = exchange_audio(&mut peer, aiortc, &ours, start).await?;
    let recorded = exchange.recorded;
    write_wav(&files.our_recording, &recorded)?;
    peer.close().await;
    aiortc.send(json!({"cmd": "stop"})).await?;
    let stopped = aiortc.wait_for("stopped").await?;
    let their_recording = read_wav(&files.their_recording)
        .with_context(|| format!("reading aiortc's recording (it reported {stopped})"))?;

    let to_ms =
        |d: Option<Duration>| d.map_or("never".to_owned(), |d| format!("{} ms", d.as_millis()));
    println!(
        "{caller:?} calling: offer to connected {}, offer to our first frame from aiortc {}, \
         offer to aiortc's first frame from us {}",
        to_ms(exchange.connected),
        to_ms(exchange.first_frame),
        to_ms(exchange.their_first_frame),
    );
    println!(
        "{caller:?} calling: frames sent {}, received {} (concealed {}, undecodable {}); \
         peer stats sent {} received {} dropped {}; aiortc {stopped}",
        exchange.frames_sent,
        exchange.frames_received,
        exchange.concealed,
        exchange.undecodable,
        peer.stats()
            .frames_sent
            .load(std::sync::atomic::Ordering::Relaxed),
        peer.stats()
            .frames_received
            .load(std::sync::atomic::Ordering::Relaxed),
        peer.stats()
            .frames_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    let unrelated = test_signal(SIGNAL_SECONDS, UNRELATED_SEED);
    let ours_at_aiortc = check_recording("Entente -> aiortc", &ours, &their_recording, &unrelated);
    let theirs_at_ours = check_recording("aiortc -> Entente", &theirs, &recorded, &unrelated);
    ours_at_aiortc?;
    theirs_at_ours?;
    Ok(())
}

/// What one call's audio exchange gave.
struct Exchange {
    /// What we decoded, in RTP time order, losses concealed.
    recorded: Pcm,
    connected: Option<Duration>,
    first_frame: Option<Duration>,
    their_first_frame: Option<Duration>,
    frames_sent: usize,
    frames_received: usize,
    concealed: usize,
    undecodable: usize,
}

/// Waits for the connection, then sends `ours` in real time while recording what
/// arrives, until we have sent everything and aiortc has been quiet for a while.
async fn exchange_audio(
    peer: &mut Peer,
    aiortc: &mut Aiortc,
    ours: &Pcm,
    start: Instant,
) -> Result<Exchange> {
    let mut their_first_frame = None;
    let connected = loop {
        tokio::select! {
            event = peer.next_event() => match event {
                Some(PeerEvent::Connected) => break start.elapsed(),
                Some(PeerEvent::Closed { reason }) => bail!("our peer closed before connecting: {reason}"),
                Some(PeerEvent::Frame { .. }) => bail!("a frame before the connection was up"),
                None => bail!("our peer is gone before connecting"),
            },
            event = aiortc.next() => note_event(&event?, start, &mut their_first_frame)?,
        }
    };

    let mut encoder = Encoder::new()?;
    let packets = ours
        .frames()
        .map(|frame| encoder.encode(&frame))
        .collect::<Result<Vec<_>, _>>()?;
    let frames_sent = packets.len();
    let sender = peer.frame_sender();
    let mut sending = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for (i, packet) in packets.into_iter().enumerate() {
            tick.tick().await;
            sender.send(packet, i as u64 * FRAME_SAMPLES as u64)?;
        }
        Ok::<(), entente_media::peer::PeerError>(())
    });
    let mut sent_all = false;

    let mut receiver = Receiver::new()?;
    let mut first_frame = None;
    let mut last_activity = Instant::now();
    loop {
        let quiet = tokio::time::sleep_until((last_activity + QUIET_BEFORE_HANGUP).into());
        tokio::select! {
            event = peer.next_event() => match event {
                Some(PeerEvent::Frame { track, data, rtp_time }) => {
                    ensure!(track == 0, "a frame on track {track} in a 1:1 call");
                    first_frame.get_or_insert_with(|| start.elapsed());
                    receiver.frame(&data, rtp_time);
                    last_activity = Instant::now();
                }
                Some(PeerEvent::Connected) => {}
                Some(PeerEvent::Closed { reason }) => bail!("the call closed while exchanging audio: {reason}"),
                None => bail!("our peer is gone while exchanging audio"),
            },
            event = aiortc.next() => note_event(&event?, start, &mut their_first_frame)?,
            sent = &mut sending, if !sent_all => {
                sent.context("the sending task failed")?.context("sending our frames")?;
                sent_all = true;
                last_activity = last_activity.max(Instant::now());
            }
            () = quiet, if sent_all => break,
        }
    }
    Ok(Exchange {
        frames_received: receiver.frames,
        concealed: receiver.concealed,
        undecodable: receiver.undecodable,
        recorded: Pcm {
            samples: receiver.samples,
        },
        connected: Some(connected),
        first_frame,
        their_first_frame,
        frames_sent,
    })
}

/// aiortc's asynchronous events while the call runs.
fn note_event(
    event: &Value,
    start: Instant,
    their_first_frame: &mut Option<Duration>,
) -> Result<()> {
    match event["event"].as_str() {
        Some("first_frame") => {
            their_first_frame.get_or_insert_with(|| start.elapsed());
        }
        Some("state") if event["state"] == "failed" => bail!("aiortc's connection failed"),
        Some("state") => {}
        _ => bail!("unexpected event from aiortc during the call: {event}"),
    }
    Ok(())
}

/// Our side's decoder: places each frame by its RTP time and conceals gaps, as a
/// real client's playout would.
struct Receiver {
    decoder: Decoder,
    first_rtp: Option<u64>,
    /// Index of the next frame expected.
    next: u64,
    samples: Vec<i16>,
    frames: usize,
    concealed: usize,
    undecodable: usize,
}

impl Receiver {
    /// More missing frames than this in one go is not a gap to conceal.
    const MAX_GAP: u64 = 250;

    fn new() -> Result<Self> {
        Ok(Self {
            decoder: Decoder::new()?,
            first_rtp: None,
            next: 0,
            samples: Vec::new(),
            frames: 0,
            concealed: 0,
            undecodable: 0,
        })
    }

    fn frame(&mut self, packet: &[u8], rtp_time: u64) {
        self.frames += 1;
        let first = *self.first_rtp.get_or_insert(rtp_time);
        let Some(index) = rtp_time
            .checked_sub(first)
            .map(|d| d / FRAME_SAMPLES as u64)
        else {
            return; // Late, from before the first frame.
        };
        if index < self.next {
            return; // Late or duplicated.
        }
        for _ in self.next..index.min(self.next + Self::MAX_GAP) {
            self.samples.extend(self.decoder.conceal());
            self.concealed += 1;
        }
        match self.decoder.decode(packet) {
            Ok(samples) => self.samples.extend(samples),
            Err(_) => {
                self.undecodable += 1;
                self.samples.extend(self.decoder.conceal());
            }
        }
        self.next = index + 1;
    }
}

/// `recorded` must hold most of `sent`, correlate with it and not with `unrelated`.
fn check_recording(what: &str, sent: &Pcm, recorded: &Pcm, unrelated: &Pcm) -> Result<()> {
    let (correlation, lag) = correlate(sent, recorded);
    let (unrelated_correlation, _) = correlate(unrelated, recorded);
    println!(
        "{what}: recorded {:.2} s of {:.2} s, correlation {correlation:.3} at lag {lag} samples \
         ({:.1} ms), unrelated signal {unrelated_correlation:.3}",
        recorded.seconds(),
        sent.seconds(),
        lag as f64 * 1000.0 / f64::from(SAMPLE_RATE),
    );
    ensure!(
        recorded.seconds() >= MIN_RECORDED_SECONDS,
        "{what}: only {:.2} s of audio arrived (sent {:.2} s)",
        recorded.seconds(),
        sent.seconds()
    );
    ensure!(
        correlation >= MIN_CORRELATION,
        "{what}: the audio that arrived is not what was sent: correlation {correlation:.3} < {MIN_CORRELATION}"
    );
    ensure!(
        unrelated_correlation <= MAX_UNRELATED_CORRELATION,
        "{what}: the recording correlates with a signal nobody sent: {unrelated_correlation:.3} > {MAX_UNRELATED_CORRELATION}"
    );
    Ok(())
}

/// The best correlation with the recording shifted either way (the first frames
/// may be missing as well as delayed); the lag is positive when the recording is
/// late.
fn correlate(sent: &Pcm, recorded: &Pcm) -> (f64, i64) {
    let (late, late_lag) = best_correlation(&sent.samples, &recorded.samples, MAX_LAG);
    let (early, early_lag) = best_correlation(&recorded.samples, &sent.samples, MAX_LAG);
    if late >= early {
        (late, late_lag as i64)
    } else {
        (early, -(early_lag as i64))
    }
}

/// `call_peer.py` running in aiortc's virtualenv.
struct Aiortc {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::UnboundedReceiver<Result<Value, String>>,
}

impl Aiortc {
    async fn spawn(python: &Path, log: &Path) -> Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/call_peer.py");
        let mut child = Command::new(python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("running {}", script.display()))?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            loop {
                let event = match lines.next_line().await {
                    Ok(Some(line)) => serde_json::from_str(&line)
                        .map_err(|e| format!("aiortc printed {line:?}, not JSON: {e}")),
                    Ok(None) => Err("aiortc's script exited".to_owned()),
                    Err(e) => Err(format!("reading aiortc's output: {e}")),
                };
                let end = event.is_err();
                if tx.send(event).is_err() || end {
                    return;
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            events,
        })
    }

    async fn send(&mut self, command: Value) -> Result<()> {
        let mut line = command.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .context("writing to aiortc's script")?;
        self.stdin
            .flush()
            .await
            .context("writing to aiortc's script")
    }

    /// The next event; the script's own errors are errors.
    async fn next(&mut self) -> Result<Value> {
        let event = self
            .events
            .recv()
            .await
            .unwrap_or_else(|| Err("aiortc's script exited".to_owned()))
            .map_err(anyhow::Error::msg)?;
        if event["event"] == "error" {
            bail!("aiortc failed: {}", event["message"]);
        }
        Ok(event)
    }

    /// Skips connection states and first-frame notices until `name`.
    async fn wait_for(&mut self, name: &str) -> Result<Value> {
        loop {
            let event = self.next().await?;
            match event["event"].as_str() {
                Some(n) if n == name => return Ok(event),
                Some("state" | "first_frame") => {}
                _ => bail!("expected {name} from aiortc, got {event}"),
            }
        }
    }

    /// Waits for the script to exit after `stop` (killing it if it does not).
    async fn finish(mut self) {
        drop(self.stdin);
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(Ok(status)) => assert!(status.success(), "aiortc's script exited with {status}"),
            Ok(Err(e)) => panic!("waiting for aiortc's script: {e}"),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!("aiortc's script did not exit after the call");
            }
        }
    }

    async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}
