//! Audio through a [`Peer`]: sends a recording in real time as Opus frames and
//! records what arrives, one recording per source.
//!
//! A [`FrameCrypto`] sits between the codec and the peer. In a 1:1 call it is
//! [`Plain`]: DTLS-SRTP between the two devices is the end-to-end encryption. In a
//! group call the client plugs in SFrame keyed from the room's MLS epoch, so the SFU
//! in between forwards ciphertext, and the source of a frame is the sender's MLS leaf
//! index taken from the SFrame key ID.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::audio::{Decoder, Encoder, FRAME_SAMPLES, Pcm};
use crate::peer::{Peer, PeerEvent};

/// End-to-end protection of frames on top of the transport.
pub trait FrameCrypto: Send {
    /// Protects one encoded frame before it goes to the peer.
    fn seal(&mut self, frame: &[u8]) -> Result<Vec<u8>, String>;
    /// Opens one received frame: the source it came from and the encoded frame. An
    /// error (unknown key, failed authentication) drops the frame.
    fn open(&mut self, frame: &[u8], track: usize) -> Result<(u64, Vec<u8>), String>;
}

/// No frame protection: frames are Opus packets, the source is the receiving track.
pub struct Plain;

impl FrameCrypto for Plain {
    fn seal(&mut self, frame: &[u8]) -> Result<Vec<u8>, String> {
        Ok(frame.to_vec())
    }
    fn open(&mut self, frame: &[u8], track: usize) -> Result<(u64, Vec<u8>), String> {
        Ok((track as u64, frame.to_vec()))
    }
}

/// Frames that do not open yet, kept for a retry after the next one that does
/// (per call: one second of audio from all sources).
const HELD_FRAMES: usize = 50;

/// Shared frame protection: the client rekeys it while the audio runs.
pub type SharedCrypto = Arc<Mutex<dyn FrameCrypto>>;

/// When to stop.
#[derive(Debug, Clone, Copy)]
pub struct AudioPlan {
    /// Keep recording this long after our own audio ended (or after connecting,
    /// when we send nothing).
    pub linger: Duration,
    /// Stop at the latest after this long from connection.
    pub max_duration: Duration,
}

/// What an audio session did.
#[derive(Debug, Default)]
pub struct AudioReport {
    /// Recording per source; samples are placed by RTP time, gaps are concealed.
    pub recordings: BTreeMap<u64, Pcm>,
    pub frames_sent: u64,
    pub frames_received: u64,
    /// Frames that [`FrameCrypto::open`] refused (for example, keys of an epoch we
    /// were not in).
    pub frames_unopened: u64,
    /// Frames the codec could not decode.
    pub frames_undecodable: u64,
    /// Frames whose RTP time did not follow the previous frame of their source.
    pub discontinuities: u64,
    /// Time from the start to the connection, if it connected.
    pub connect_time: Option<Duration>,
    /// Why it ended.
    pub ended: String,
}

struct Track {
    decoder: Decoder,
    first_rtp: u64,
    pcm: Vec<i16>,
}

/// Runs a call's audio until the plan says stop, the peer closes, or `stop`
/// resolves. Sends `send` (if any) paced at one 20 ms frame per 20 ms after the
/// connection is up.
pub async fn run_audio<S>(
    mut peer: Peer,
    send: Option<Pcm>,
    crypto: SharedCrypto,
    plan: AudioPlan,
    stop: S,
) -> AudioReport
where
    S: std::future::Future<Output = ()>,
{
    tokio::pin!(stop);
    let started = Instant::now();
    let mut report = AudioReport::default();
    let mut tracks: BTreeMap<u64, Track> = BTreeMap::new();
    let sender = peer.frame_sender();
    let mut encoder = match Encoder::new() {
        Ok(e) => e,
        Err(e) => {
            report.ended = e.to_string();
            return report;
        }
    };
    let frames: Vec<[i16; FRAME_SAMPLES]> = send
        .as_ref()
        .map(|p| p.frames().collect())
        .unwrap_or_default();
    let mut next_frame = 0usize;
    let mut connected_at: Option<Instant> = None;
    let mut held: std::collections::VecDeque<(usize, u64, Vec<u8>)> =
        std::collections::VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let ended = loop {
        let deadline = connected_at.map(|c| {
            let own_end = c + Duration::from_millis(20 * frames.len() as u64) + plan.linger;
            own_end.min(c + plan.max_duration)
        });
        if let Some(d) = deadline
            && Instant::now() >= d
        {
            break "finished".to_owned();
        }
        tokio::select! {
            _ = &mut stop => break "hung up".to_owned(),
            _ = tick.tick(), if connected_at.is_some() && next_frame < frames.len() => {
                let frame = &frames[next_frame];
                let sealed = encoder
                    .encode(frame)
                    .map_err(|e| e.to_string())
                    .and_then(|p| lock(&crypto).seal(&p));
                match sealed {
                    Ok(data) => {
                        if sender.send(data, next_frame as u64 * FRAME_SAMPLES as u64).is_err() {
                            break "the call ended".to_owned();
                        }
                        report.frames_sent += 1;
                    }
                    Err(e) => break format!("cannot protect a frame: {e}"),
                }
                next_frame += 1;
            }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            ev = peer.next_event() => match ev {
                Some(PeerEvent::Connected) => {
                    connected_at = Some(Instant::now());
                    report.connect_time = Some(started.elapsed());
                    tick.reset();
                }
                Some(PeerEvent::Frame { track, data, rtp_time }) => {
                    report.frames_received += 1;
                    let opened = lock(&crypto).open(&data, track);
                    match opened {
                        Ok((source, packet)) => {
                            // Frames held back may open now (the keys moved on).
                            for (t, r, d) in std::mem::take(&mut held) {
                                let retried = lock(&crypto).open(&d, t);
                                match retried {
                                    Ok((s, p)) => place(&mut tracks, s, r, &p, &mut report),
                                    Err(_) => held.push_back((t, r, d)),
                                }
                            }
                            place(&mut tracks, source, rtp_time, &packet, &mut report)
                        }
                        Err(e) => {
                            // A frame of the next epoch can arrive before our client
                            // has applied the commit: hold a second's worth.
                            tracing::debug!(error = %e, "holding a frame that does not open");
                            held.push_back((track, rtp_time, data));
                            if held.len() > HELD_FRAMES {
                                held.pop_front();
                                report.frames_unopened += 1;
                            }
                        }
                    }
                }
                Some(PeerEvent::Closed { reason }) => break reason,
                None => break "the call ended".to_owned(),
            },
        }
    };
    peer.close().await;
    report.frames_unopened += held.len() as u64;
    report.ended = ended;
    report.recordings = tracks
        .into_iter()
        .map(|(k, t)| (k, Pcm { samples: t.pcm }))
        .collect();
    report
}

fn lock(c: &SharedCrypto) -> std::sync::MutexGuard<'_, dyn FrameCrypto + 'static> {
    match c.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Decodes a packet and writes its samples where its RTP time says, concealing a
/// gap of lost frames before it. Late or duplicate frames are dropped.
fn place(
    tracks: &mut BTreeMap<u64, Track>,
    source: u64,
    rtp_time: u64,
    packet: &[u8],
    report: &mut AudioReport,
) {
    let track = match tracks.entry(source) {
        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::btree_map::Entry::Vacant(v) => {
            let Ok(decoder) = Decoder::new() else { return };
            v.insert(Track {
                decoder,
                first_rtp: rtp_time,
                pcm: Vec::new(),
            })
        }
    };
    let Some(offset) = rtp_time.checked_sub(track.first_rtp) else {
        return;
    };
    let offset = offset as usize;
    if offset != track.pcm.len() {
        report.discontinuities += 1;
        tracing::debug!(
            source,
            offset,
            expected = track.pcm.len(),
            "a gap in a source's frames"
        );
    }
    // At most 10 minutes of recording per source.
    if offset > 48_000 * 600 || offset < track.pcm.len() {
        return;
    }
    while track.pcm.len() + FRAME_SAMPLES <= offset {
        let concealed = track.decoder.conceal();
        track.pcm.extend(concealed);
    }
    track.pcm.resize(offset, 0);
    match track.decoder.decode(packet) {
        Ok(samples) => track.pcm.extend(samples),
        Err(_) => report.frames_undecodable += 1,
    }
}
