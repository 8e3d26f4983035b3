//! Audio for calls: WAV files in and out, Opus (RFC 6716) at 48 kHz mono in 20 ms
//! frames, and the normalised cross-correlation used to compare what was sent with
//! what was recorded.
//!
//! Opus is the pure-Rust port of libopus in `opus-rs`, so building Entente needs no C
//! toolchain; the aiortc and Chromium interop tests check that real libopus decodes
//! what it produces and the other way round.

use std::path::Path;

/// The call sample rate (Opus's native rate; RTP clock rate 48000).
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame at [`SAMPLE_RATE`].
pub const FRAME_SAMPLES: usize = 960;
/// Largest Opus packet we produce or accept (RFC 6716 section 3.4 bounds a frame at
/// 1275 bytes).
pub const MAX_OPUS_PACKET: usize = 1275;

/// Errors of audio files and the codec.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("cannot read WAV file {path}: {reason} (calls take 16-bit PCM or float WAV files)")]
    ReadWav { path: String, reason: String },
    #[error("cannot write WAV file {path}: {reason}")]
    WriteWav { path: String, reason: String },
    #[error("WAV file {path} has no audio samples")]
    Empty { path: String },
    #[error("Opus codec: {0}")]
    Codec(String),
}

/// Mono 16-bit PCM at [`SAMPLE_RATE`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pcm {
    pub samples: Vec<i16>,
}

impl Pcm {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(SAMPLE_RATE)
    }

    /// The audio cut into 20 ms frames; the last one is padded with silence.
    pub fn frames(&self) -> impl Iterator<Item = [i16; FRAME_SAMPLES]> + '_ {
        self.samples.chunks(FRAME_SAMPLES).map(|chunk| {
            let mut frame = [0i16; FRAME_SAMPLES];
            frame[..chunk.len()].copy_from_slice(chunk);
            frame
        })
    }
}

/// Reads a WAV file (16-bit integer or 32-bit float PCM, any channel count, any
/// rate), downmixes it to mono and resamples it to 48 kHz.
pub fn read_wav(path: &Path) -> Result<Pcm, AudioError> {
    let err = |reason: String| AudioError::ReadWav {
        path: path.display().to_string(),
        reason,
    };
    let mut reader = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => reader
            .samples::<i16>()
            .map(|s| s.map(|v| f32::from(v) / 32768.0))
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?,
        (hound::SampleFormat::Int, bits @ (8 | 24 | 32)) => {
            let scale = (1u64 << (bits - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?
        }
        (hound::SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?,
        (format, bits) => {
            return Err(err(format!(
                "unsupported sample format {format:?} {bits}-bit"
            )));
        }
    };
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    if mono.is_empty() {
        return Err(AudioError::Empty {
            path: path.display().to_string(),
        });
    }
    let resampled = resample_linear(&mono, spec.sample_rate, SAMPLE_RATE);
    Ok(Pcm {
        samples: resampled.iter().map(|&s| to_i16(s)).collect(),
    })
}

/// Writes mono 48 kHz 16-bit PCM to a WAV file.
pub fn write_wav(path: &Path, pcm: &Pcm) -> Result<(), AudioError> {
    let err = |reason: String| AudioError::WriteWav {
        path: path.display().to_string(),
        reason,
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(|e| err(e.to_string()))?;
    for &s in &pcm.samples {
        writer.write_sample(s).map_err(|e| err(e.to_string()))?;
    }
    writer.finalize().map_err(|e| err(e.to_string()))
}

/// Float to 16-bit PCM with the 32768 scale of `opus_encode_float` (so 16-bit input
/// read as float comes back exactly).
fn to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Linear-interpolation resampling; good enough for speech into a 48 kHz codec (the
/// codec band-limits anyway). Identity when the rates match.
fn resample_linear(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || from == 0 || input.is_empty() {
        return input.to_vec();
    }
    let ratio = f64::from(from) / f64::from(to);
    let out_len = ((input.len() as f64) / ratio).floor() as usize;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * ratio;
            let idx = pos.floor() as usize;
            let frac = (pos - idx as f64) as f32;
            let a = input[idx.min(input.len() - 1)];
            let b = input[(idx + 1).min(input.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

/// Opus encoder for call audio: 48 kHz mono, 20 ms frames, 32 kbit/s, in the
/// `Audio` application (CELT).
///
/// Not `Voip` (SILK): in `opus-rs` 0.1.40 a SILK stream degrades after a few seconds
/// and the decoder never recovers (correlation with the input falls from 0.85 to
/// under 0.3 after about 3 s of our test signal; CELT stays at 0.99). The test
/// `long_streams_stay_faithful` guards the choice.
pub struct Encoder {
    inner: opus_rs::OpusEncoder,
    buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Result<Self, AudioError> {
        let mut inner =
            opus_rs::OpusEncoder::new(SAMPLE_RATE as i32, 1, opus_rs::Application::Audio)
                .map_err(|e| AudioError::Codec(e.to_string()))?;
        inner.bitrate_bps = 32_000;
        Ok(Self {
            inner,
            buf: vec![0; MAX_OPUS_PACKET],
        })
    }

    /// Encodes one 20 ms frame into one Opus packet.
    pub fn encode(&mut self, frame: &[i16; FRAME_SAMPLES]) -> Result<Vec<u8>, AudioError> {
        let n = self
            .inner
            .encode_i16(frame, FRAME_SAMPLES, &mut self.buf)
            .map_err(|e| AudioError::Codec(e.to_string()))?;
        Ok(self.buf[..n].to_vec())
    }
}

/// Opus decoder for call audio (48 kHz mono).
pub struct Decoder {
    inner: opus_rs::OpusDecoder,
    buf: Vec<f32>,
}

impl Decoder {
    pub fn new() -> Result<Self, AudioError> {
        let inner = opus_rs::OpusDecoder::new(SAMPLE_RATE as i32, 1)
            .map_err(|e| AudioError::Codec(e.to_string()))?;
        // The longest Opus packet holds 120 ms.
        Ok(Self {
            inner,
            buf: vec![0.0; FRAME_SAMPLES * 6],
        })
    }

    /// Decodes one Opus packet (of any frame size up to 120 ms). A malformed packet is
    /// an error, never a panic; the caller conceals it with [`Decoder::conceal`].
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<i16>, AudioError> {
        if packet.len() > MAX_OPUS_PACKET * 3 {
            return Err(AudioError::Codec(format!(
                "packet of {} bytes is too long",
                packet.len()
            )));
        }
        let frame_size = self.buf.len();
        let n = self
            .inner
            .decode(packet, frame_size, &mut self.buf)
            .map_err(|e| AudioError::Codec(e.to_string()))?;
        Ok(self.buf[..n.min(self.buf.len())]
            .iter()
            .map(|&s| to_i16(s))
            .collect())
    }

    /// Packet-loss concealment for one missing 20 ms frame.
    pub fn conceal(&mut self) -> Vec<i16> {
        match self.inner.decode(&[], FRAME_SAMPLES, &mut self.buf) {
            Ok(n) => self.buf[..n.min(FRAME_SAMPLES)]
                .iter()
                .map(|&s| to_i16(s))
                .collect(),
            Err(_) => vec![0; FRAME_SAMPLES],
        }
    }
}

/// The best normalised cross-correlation of `recorded` against `sent` over lags
/// `0..=max_lag` (recorded delayed against sent), and the lag where it is reached.
/// 1.0 is identical up to gain; independent signals give values near 0.
pub fn best_correlation(sent: &[i16], recorded: &[i16], max_lag: usize) -> (f64, usize) {
    // Work at 8 kHz (every 6th sample after a short box filter): the codec keeps the
    // speech band, and it cuts the cost 36-fold.
    let decimate = |x: &[i16]| -> Vec<f64> {
        x.chunks(6)
            .map(|c| c.iter().map(|&v| f64::from(v)).sum::<f64>() / c.len() as f64)
            .collect()
    };
    let a = decimate(sent);
    let b = decimate(recorded);
    let max_lag = max_lag / 6;
    let mut best = (0.0f64, 0usize);
    for lag in 0..=max_lag {
        if lag >= b.len() {
            break;
        }
        let n = a.len().min(b.len() - lag);
        if n < 800 {
            break;
        }
        let (mut dot, mut ea, mut eb) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let (x, y) = (a[i], b[i + lag]);
            dot += x * y;
            ea += x * x;
            eb += y * y;
        }
        if ea > 0.0 && eb > 0.0 {
            let c = dot / (ea.sqrt() * eb.sqrt());
            if c > best.0 {
                best = (c, lag * 6);
            }
        }
    }
    best
}

/// A test signal that survives a speech codec and cannot be confused with a shifted
/// copy of itself: a few seconds of tones gliding through 300-3000 Hz with a
/// syllable-like envelope, seeded so every caller gets the same samples.
pub fn test_signal(seconds: f64, seed: u64) -> Pcm {
    let n = (seconds * f64::from(SAMPLE_RATE)) as usize;
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f64) / f64::from(u32::MAX >> 1)
    };
    let mut samples = Vec::with_capacity(n);
    let syllable = SAMPLE_RATE as usize / 5; // 200 ms
    let (mut f0, mut f1) = (300.0 + 2000.0 * next(), 300.0 + 2000.0 * next());
    let mut phase = 0.0f64;
    for i in 0..n {
        let k = i % syllable;
        if k == 0 {
            f0 = f1;
            f1 = 300.0 + 2700.0 * next();
        }
        let t = k as f64 / syllable as f64;
        let f = f0 + (f1 - f0) * t;
        phase += 2.0 * std::f64::consts::PI * f / f64::from(SAMPLE_RATE);
        let env = (std::f64::consts::PI * t).sin().powf(0.5);
        let v = 0.45 * env * (phase.sin() + 0.3 * (2.0 * phase).sin());
        samples.push(to_i16(v as f32));
    }
    Pcm { samples }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn opus_round_trip_keeps_the_signal() {
        let pcm = test_signal(2.0, 7);
        let mut enc = Encoder::new().unwrap();
        let mut dec = Decoder::new().unwrap();
        let mut out = Vec::new();
        for frame in pcm.frames() {
            let packet = enc.encode(&frame).unwrap();
            assert!(packet.len() < 400, "{} bytes", packet.len());
            out.extend(dec.decode(&packet).unwrap());
        }
        let (c, lag) = best_correlation(&pcm.samples, &out, 4800);
        // Opus keeps the waveform at 32 kbit/s; its algorithmic delay is 6.5 ms
        // (312 samples).
        assert!(c > 0.9, "correlation {c} at lag {lag}");
        assert!((200..=400).contains(&lag), "lag {lag}");
        // A different signal does not correlate.
        let other = test_signal(2.0, 8);
        let (c2, _) = best_correlation(&other.samples, &out, 4800);
        assert!(c2 < 0.35, "unrelated correlation {c2}");
    }

    #[test]
    fn long_streams_stay_faithful() {
        // Every 0.5 s window of 8 s, and again after 4 lost packets.
        let pcm = test_signal(8.0, 11);
        let mut enc = Encoder::new().unwrap();
        let mut dec = Decoder::new().unwrap();
        let mut out = Vec::new();
        for (i, frame) in pcm.frames().enumerate() {
            let packet = enc.encode(&frame).unwrap();
            if (200..204).contains(&i) {
                out.extend(dec.conceal());
            } else {
                out.extend(dec.decode(&packet).unwrap());
            }
        }
        for k in 0..15 {
            let st = k * 24_000;
            if (7..=8).contains(&k) {
                continue; // the lost packets
            }
            let (c, _) =
                best_correlation(&pcm.samples[st..st + 24_000], &out[st..st + 26_000], 1200);
            assert!(c > 0.8, "window {k}: correlation {c}");
        }
    }

    #[test]
    fn garbage_packets_are_errors_or_concealed_not_panics() {
        let mut dec = Decoder::new().unwrap();
        for len in [0usize, 1, 2, 3, 7, 100, 1275, 5000] {
            for seed in 0..20u8 {
                let p: Vec<u8> = (0..len)
                    .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
                    .collect();
                let _ = dec.decode(&p);
            }
        }
        assert_eq!(dec.conceal().len(), FRAME_SAMPLES);
    }

    #[test]
    fn wav_files_round_trip_and_resample() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let pcm = test_signal(0.5, 1);
        write_wav(&path, &pcm).unwrap();
        assert_eq!(read_wav(&path).unwrap(), pcm);
        // 16 kHz stereo is downmixed and resampled to 48 kHz mono.
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let p2 = dir.path().join("b.wav");
        let mut w = hound::WavWriter::create(&p2, spec).unwrap();
        for i in 0..16_000 {
            let v = ((i as f32 * 0.05).sin() * 10_000.0) as i16;
            w.write_sample(v).unwrap();
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        let got = read_wav(&p2).unwrap();
        assert_eq!(got.samples.len(), 48_000);
        assert!(read_wav(&dir.path().join("missing.wav")).is_err());
    }
}
