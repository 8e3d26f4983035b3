//! `entente call` and `entente answer`: audio calls from WAV files.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use entente_client::calls::{CallMessage, CallOptions, CallSignal, plain_crypto};
use entente_client::{Client, Event};
use entente_media::audio::{Pcm, read_wav, write_wav};
use entente_media::session::{AudioPlan, AudioReport, run_audio};
use entente_wire::ids::{ClientId, RoomId};

use crate::account::{Common, direct_room, open, parse_room, parse_user};

/// How the call's media travels.
#[derive(Args, Clone)]
pub struct MediaArgs {
    /// Local IP address for the call's media (default: the one that reaches your
    /// provider).
    #[arg(long)]
    ip: Option<IpAddr>,
    /// Also offer a relayed path through your provider's TURN server, for when
    /// the two devices cannot reach each other directly.
    #[arg(long)]
    relay: bool,
    /// Only the relayed path: the other side never learns your address.
    #[arg(long, conflicts_with = "relay")]
    relay_only: bool,
    /// Write every UDP datagram this device sends to FILE (4-byte big-endian length,
    /// then the datagram), to check what is on the wire.
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
}

/// `entente call`.
#[derive(Args)]
pub struct CallArgs {
    /// Who to call: a user (the 1:1 room with them) or a room URI (its group call,
    /// through the hub's SFU, end-to-end encrypted with SFrame keyed from MLS).
    target: String,
    /// A WAV file to send (any rate, mono or stereo; sent as Opus).
    #[arg(long, value_name = "FILE.wav")]
    send: Option<PathBuf>,
    /// Record what you hear to this WAV file (48 kHz mono). In a group call, one file
    /// per speaker: FILE-<n>.wav.
    #[arg(long, value_name = "FILE.wav")]
    record: Option<PathBuf>,
    /// Give up if nobody answers within this many seconds.
    #[arg(long, default_value_t = 60)]
    ring: u64,
    /// Hang up after this many seconds at the latest (default: when your file has
    /// been sent, plus --linger).
    #[arg(long)]
    duration: Option<u64>,
    /// Keep listening this many seconds after your file ended.
    #[arg(long, default_value_t = 2)]
    linger: u64,
    #[command(flatten)]
    media: MediaArgs,
}

/// `entente answer`.
#[derive(Args)]
pub struct AnswerArgs {
    /// Only take a call from this user.
    #[arg(long)]
    from: Option<String>,
    /// A WAV file to send back.
    #[arg(long, value_name = "FILE.wav")]
    send: Option<PathBuf>,
    /// Record what you hear to this WAV file (48 kHz mono).
    #[arg(long, value_name = "FILE.wav")]
    record: Option<PathBuf>,
    /// Wait this many seconds for a call.
    #[arg(long, default_value_t = 60)]
    wait: u64,
    /// Hang up after this many seconds at the latest.
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// Keep listening this many seconds after your file ended (when the caller
    /// hangs up, the call ends anyway).
    #[arg(long, default_value_t = 600)]
    linger: u64,
    #[command(flatten)]
    media: MediaArgs,
}

async fn options(
    client: &Client,
    m: &MediaArgs,
) -> Result<(CallOptions, Option<tokio::task::JoinHandle<Result<()>>>)> {
    let ip = match m.ip {
        Some(ip) => ip,
        None => client.call_ip().await?,
    };
    let mut o = CallOptions::new(ip);
    o.use_relay = m.relay;
    o.relay_only = m.relay_only;
    let mut writer = None;
    if let Some(path) = &m.capture {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        o.tap = Some(tx);
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        writer = Some(tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                file.write_all(&(d.len() as u32).to_be_bytes())?;
                file.write_all(&d)?;
            }
            file.flush()?;
            Ok(())
        }));
    }
    Ok((o, writer))
}

/// When a `call` ends: after the file plus --linger, or at --duration; without a
/// file, only at --duration (or when the other side hangs up).
fn call_plan(pcm: Option<&Pcm>, a: &CallArgs) -> AudioPlan {
    match pcm {
        Some(p) => AudioPlan {
            linger: Duration::from_secs(a.linger),
            max_duration: Duration::from_secs(
                a.duration.unwrap_or(p.seconds() as u64 + a.linger + 1),
            ),
        },
        None => {
            let d = Duration::from_secs(a.duration.unwrap_or(3600));
            AudioPlan {
                linger: d,
                max_duration: d,
            }
        }
    }
}

fn load(send: &Option<PathBuf>) -> Result<Option<Pcm>> {
    send.as_ref()
        .map(|p| read_wav(p).map_err(anyhow::Error::from))
        .transpose()
}

fn short(id: &[u8; 16]) -> String {
    hex::encode(&id[..6])
}

pub async fn run_call(a: CallArgs, common: Common) -> Result<()> {
    let pcm = load(&a.send)?;
    let mut client = open(&common).await?;
    client.sync().await?;
    if a.target.starts_with("mimi://") {
        let room = parse_room(&a.target)?;
        return group_call(&mut client, &room, pcm, &a).await;
    }
    let peer = parse_user(&a.target)?;
    let room = match direct_room(&client, &peer)? {
        Some(r) => r,
        None => client.start_chat(&peer).await?,
    };
    let (opts, writer) = options(&client, &a.media).await?;
    let mut call = client.start_call(&room, &opts).await?;
    // The capture ends when the last sender of its tap (the peer's) is gone.
    drop(opts);
    eprintln!("Calling {} (call {})...", peer.handle(), short(&call.id));
    // Ring until the answer.
    let deadline = Instant::now() + Duration::from_secs(a.ring);
    while call.remote.is_none() {
        if Instant::now() > deadline {
            client.hang_up(&room, call.id).await?;
            bail!("{} did not answer within {} s", peer.handle(), a.ring);
        }
        for (from, m) in call_events(client.sync().await?, &room) {
            if call.handle(&from, &m).await? {
                bail!("{} declined the call", peer.handle());
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    eprintln!("{} answered; connecting", peer.handle());
    let plan = call_plan(pcm.as_ref(), &a);
    let peer = call
        .peer
        .take()
        .context("the call's media is already running")?;
    let report = converse(&mut client, &mut call, peer, pcm, plan).await?;
    client.hang_up(&room, call.id).await?;
    finish(report, a.record.as_deref(), writer, common.json).await
}

pub async fn run_answer(a: AnswerArgs, common: Common) -> Result<()> {
    let pcm = load(&a.send)?;
    let from_user = a.from.as_deref().map(parse_user).transpose()?;
    let mut client = open(&common).await?;
    eprintln!("Waiting for a call...");
    let deadline = Instant::now() + Duration::from_secs(a.wait);
    // Signals that arrive with or after the offer, before we answer.
    let mut early: Vec<(RoomId, ClientId, CallMessage)> = Vec::new();
    let offer = loop {
        for e in client.sync().await? {
            if let Event::Call {
                room,
                from,
                message,
            } = e
            {
                early.push((room, from, message));
            }
        }
        let found = early.iter().position(|(_, from, m)| {
            matches!(m.signal, CallSignal::Offer { .. })
                && from_user.as_ref().is_none_or(|u| from.user() == u)
                && from.user() != client.user()
        });
        if let Some(i) = found {
            break early.remove(i);
        }
        if Instant::now() > deadline {
            bail!("no call within {} s", a.wait);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    let (room, from, message) = offer;
    eprintln!("{} is calling; answering", from.user().handle());
    let (opts, writer) = options(&client, &a.media).await?;
    let mut call = client.answer_call(&room, &from, &message, &opts).await?;
    drop(opts);
    let id = call.id;
    for (_, f, m) in early
        .iter()
        .filter(|(r, _, m)| r == &room && m.call_id == id)
    {
        call.handle(f, m).await?;
    }
    let plan = AudioPlan {
        linger: Duration::from_secs(a.linger),
        max_duration: Duration::from_secs(a.duration),
    };
    let peer = call
        .peer
        .take()
        .context("the call's media is already running")?;
    let report = converse(&mut client, &mut call, peer, pcm, plan).await?;
    client.hang_up(&room, call.id).await?;
    finish(report, a.record.as_deref(), writer, common.json).await
}

fn call_events(events: Vec<Event>, room: &RoomId) -> Vec<(ClientId, CallMessage)> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Call {
                room: r,
                from,
                message,
            } if &r == room => Some((from, message)),
            _ => None,
        })
        .collect()
}

/// Runs the audio while applying the room's call signals, until either side hangs
/// up or the plan ends.
async fn converse(
    client: &mut Client,
    call: &mut entente_client::calls::Call,
    peer: entente_media::peer::Peer,
    pcm: Option<Pcm>,
    plan: AudioPlan,
) -> Result<AudioReport> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let audio = tokio::spawn(run_audio(peer, pcm, plain_crypto(), plan, async move {
        let _ = stop_rx.await;
    }));
    let room = call.room.clone();
    let mut stop_tx = Some(stop_tx);
    while !audio.is_finished() {
        for (from, m) in call_events(client.sync().await?, &room) {
            if call.handle(&from, &m).await?
                && let Some(tx) = stop_tx.take()
            {
                eprintln!("The other side hung up");
                let _ = tx.send(());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(audio.await?)
}

async fn finish(
    report: AudioReport,
    record: Option<&Path>,
    writer: Option<tokio::task::JoinHandle<Result<()>>>,
    json: bool,
) -> Result<()> {
    if let Some(w) = writer {
        // The tap's sender went with the peer: the writer ends by itself.
        w.await??;
    }
    let heard: Pcm = report
        .recordings
        .values()
        .next()
        .cloned()
        .unwrap_or_default();
    if let Some(path) = record {
        write_wav(path, &heard)?;
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "connected_after_ms": report.connect_time.map(|d| d.as_millis() as u64),
                "frames_sent": report.frames_sent, "frames_received": report.frames_received,
                "seconds_recorded": heard.seconds(), "ended": report.ended,
            })
        );
    } else {
        match report.connect_time {
            Some(t) => eprintln!(
                "Call ended ({}): connected after {} ms, sent {} frames, received {} ({:.1} s of audio)",
                report.ended,
                t.as_millis(),
                report.frames_sent,
                report.frames_received,
                heard.seconds()
            ),
            None => bail!("the call never connected: {}", report.ended),
        }
    }
    Ok(())
}

async fn group_call(
    client: &mut Client,
    room: &RoomId,
    pcm: Option<Pcm>,
    a: &CallArgs,
) -> Result<()> {
    let (opts, writer) = options(client, &a.media).await?;
    let mut call = client.join_group_call(room, &opts).await?;
    drop(opts);
    eprintln!("Joined the call of {room}");
    let peer = call.peer.take().context("no peer")?;
    let plan = call_plan(pcm.as_ref(), a);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let audio = tokio::spawn(run_audio(peer, pcm, call.crypto(), plan, async move {
        let _ = stop_rx.await;
    }));
    let mut stop_tx = Some(stop_tx);
    while !audio.is_finished() {
        for e in client.sync().await? {
            match e {
                Event::MembersChanged { room: r, .. }
                    if &r == room && client.rekey_group_call(&call)? =>
                {
                    eprintln!("The room's members changed: new media keys");
                }
                Event::Removed { room: r } if &r == room => {
                    eprintln!("You were removed from the room: leaving the call");
                    if let Some(tx) = stop_tx.take() {
                        let _ = tx.send(());
                    }
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let report = audio.await?;
    if let Some(w) = writer {
        w.await??;
    }
    if let Some(path) = &a.record {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("call");
        for (source, pcm) in &report.recordings {
            let p = path.with_file_name(format!("{stem}-{source}.wav"));
            write_wav(&p, pcm)?;
            eprintln!(
                "Recorded {:.1} s from participant {source} to {}",
                pcm.seconds(),
                p.display()
            );
        }
    }
    eprintln!(
        "Left the call ({}): sent {} frames, received {}, {} did not decrypt",
        report.ended, report.frames_sent, report.frames_received, report.frames_unopened
    );
    Ok(())
}
