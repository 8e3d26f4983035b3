//! Calls across providers (issue 7).
//!
//! - A 1:1 call between alice@a.example and bob@b.example: the offer, answer and
//!   ICE candidates travel as end-to-end encrypted MIMI content (disposition
//!   `session`), the media is WebRTC (ICE, DTLS-SRTP) directly between the devices.
//!   Both sides send a different test signal as Opus and record; each recording
//!   must correlate with what the other sent, and no datagram on the wire may carry
//!   an Opus packet of the sent audio.
//! - The same call with both devices relay-only: every datagram goes through the
//!   two providers' TURN servers, which relay SRTP only.
//! - A group call over three providers: the hub's SFU forwards SFrame frames keyed
//!   from the room's MLS epoch; carol is removed mid-call; after the rekey she
//!   cannot decrypt what alice sends, while bob still hears her.
//!
//! Expectations are polled against deadlines; nothing asserts timing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests"
)]

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use entente_client::calls::{
    Call, CallMessage, CallOptions, CallSignal, SframeCrypto, plain_crypto,
};
use entente_client::{Client, Event};
use entente_media::audio::{Encoder, Pcm, best_correlation, test_signal};
use entente_media::session::{AudioPlan, AudioReport, FrameCrypto, SharedCrypto, run_audio};
use entente_testkit::Federation;
use entente_wire::ids::{ClientId, RoomId};

const DEADLINE: Duration = Duration::from_secs(30);
const LOOPBACK: [u8; 4] = [127, 0, 0, 1];

fn ip() -> IpAddr {
    IpAddr::from(LOOPBACK)
}

async fn wait_joined(client: &mut Client, room: &RoomId) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        client.sync().await?;
        if client.rooms()?.iter().any(|r| &r.room == room) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} never joined {room}", client.id());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn call_events(events: Vec<Event>) -> Vec<(RoomId, ClientId, CallMessage)> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Call {
                room,
                from,
                message,
            } => Some((room, from, message)),
            _ => None,
        })
        .collect()
}

/// Runs one side's audio while applying the room's call signals; hangs up at the end.
async fn talk(
    client: &mut Client,
    call: &mut Call,
    send: Pcm,
    linger: Duration,
) -> Result<AudioReport> {
    let peer = call.peer.take().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let plan = AudioPlan {
        linger,
        max_duration: Duration::from_secs(30),
    };
    let audio = tokio::spawn(run_audio(
        peer,
        Some(send),
        plain_crypto(),
        plan,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let mut stop_tx = Some(stop_tx);
    while !audio.is_finished() {
        for (_, from, m) in call_events(client.sync().await?) {
            if call.handle(&from, &m).await?
                && let Some(tx) = stop_tx.take()
            {
                let _ = tx.send(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = audio.await?;
    client.hang_up(&call.room, call.id).await?;
    Ok(report)
}

/// Alice calls Bob in their 1:1 room; returns (alice's report, bob's report).
async fn one_to_one(
    alice: &mut Client,
    bob: Client,
    room: &RoomId,
    a_opts: CallOptions,
    b_opts: CallOptions,
    a_sends: Pcm,
    b_sends: Pcm,
) -> Result<(AudioReport, AudioReport)> {
    let bob_task = tokio::spawn(async move {
        let mut bob = bob;
        let deadline = Instant::now() + DEADLINE;
        let mut early = Vec::new();
        let (room, from, offer) = loop {
            early.extend(call_events(bob.sync().await?));
            if let Some(i) = early
                .iter()
                .position(|(_, _, m)| matches!(m.signal, CallSignal::Offer { .. }))
            {
                break early.remove(i);
            }
            if Instant::now() > deadline {
                bail!("bob never got the offer");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut call = bob.answer_call(&room, &from, &offer, &b_opts).await?;
        for (_, f, m) in &early {
            call.handle(f, m).await?;
        }
        // Bob keeps listening until alice hangs up.
        talk(&mut bob, &mut call, b_sends, Duration::from_secs(20)).await
    });
    let t0 = Instant::now();
    let mut call = alice.start_call(room, &a_opts).await?;
    let deadline = Instant::now() + DEADLINE;
    while call.remote.is_none() {
        for (_, from, m) in call_events(alice.sync().await?) {
            call.handle(&from, &m).await?;
        }
        if Instant::now() > deadline {
            bail!("bob never answered");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answered = t0.elapsed();
    let a = talk(alice, &mut call, a_sends, Duration::from_secs(2)).await?;
    // Call set-up across the providers (printed, never asserted): offer sent to
    // answer applied, then to ICE and DTLS up.
    eprintln!(
        "call set-up: answer after {answered:?}, connected after {:?}",
        a.connect_time.map(|c| answered + c)
    );
    let b = bob_task.await??;
    Ok((a, b))
}

/// Every 12-byte window of the Opus packets `pcm` encodes to (the encoder is
/// deterministic: checked).
fn opus_windows(pcm: &Pcm) -> HashSet<Vec<u8>> {
    let encode = || -> Vec<Vec<u8>> {
        let mut e = Encoder::new().unwrap();
        pcm.frames().map(|f| e.encode(&f).unwrap()).collect()
    };
    let packets = encode();
    assert_eq!(packets, encode(), "the Opus encoder is not deterministic");
    let mut set = HashSet::new();
    for p in &packets {
        for w in p.windows(12) {
            set.insert(w.to_vec());
        }
    }
    set
}

fn assert_no_plaintext(datagrams: &[Vec<u8>], windows: &HashSet<Vec<u8>>) {
    assert!(!datagrams.is_empty());
    for d in datagrams {
        for w in d.windows(12) {
            assert!(
                !windows.contains(w),
                "a datagram on the wire carries plaintext Opus"
            );
        }
    }
}

fn recorded(report: &AudioReport) -> &Pcm {
    assert_eq!(report.recordings.len(), 1, "{report:?}");
    report.recordings.values().next().unwrap()
}

async fn two_users(fed: &Federation) -> Result<(Client, Client, RoomId)> {
    let mut alice = fed.register("alice@a.example", "laptop").await?;
    let mut bob = fed.register("bob@b.example", "phone").await?;
    let room = alice.start_chat(bob.user()).await?;
    wait_joined(&mut bob, &room).await?;
    Ok((alice, bob, room))
}

fn check_audio(a: &AudioReport, b: &AudioReport, a_sent: &Pcm, b_sent: &Pcm) {
    let (c_ab, lag) = best_correlation(&a_sent.samples, &recorded(b).samples, 48_000);
    let (c_ba, _) = best_correlation(&b_sent.samples, &recorded(a).samples, 48_000);
    let (c_wrong, _) = best_correlation(&b_sent.samples, &recorded(b).samples, 48_000);
    eprintln!(
        "alice->bob {c_ab:.3} (lag {lag}), bob->alice {c_ba:.3}, unrelated {c_wrong:.3}; connected after {:?}/{:?}",
        a.connect_time, b.connect_time
    );
    assert!(
        c_ab > 0.6,
        "bob's recording does not match what alice sent: {c_ab}"
    );
    assert!(
        c_ba > 0.6,
        "alice's recording does not match what bob sent: {c_ba}"
    );
    assert!(c_wrong < 0.35, "an unrelated signal correlates: {c_wrong}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_to_one_call_across_two_providers() {
    let fed = Federation::start(&["a.example", "b.example"])
        .await
        .unwrap();
    let (mut alice, bob, room) = two_users(&fed).await.unwrap();
    let (a_sent, b_sent) = (test_signal(4.0, 1), test_signal(4.0, 2));
    let (tap_tx, mut tap_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut a_opts = CallOptions::new(ip());
    a_opts.tap = Some(tap_tx);
    let (a, b) = one_to_one(
        &mut alice,
        bob,
        &room,
        a_opts,
        CallOptions::new(ip()),
        a_sent.clone(),
        b_sent.clone(),
    )
    .await
    .unwrap();
    check_audio(&a, &b, &a_sent, &b_sent);
    let mut wire = Vec::new();
    while let Ok(d) = tap_rx.try_recv() {
        wire.push(d);
    }
    assert!(wire.len() > 150, "only {} datagrams", wire.len());
    assert_no_plaintext(&wire, &opus_windows(&a_sent));
    // No relay was involved.
    for d in ["a.example", "b.example"] {
        let t = fed.handle(d).unwrap().state.calls.turn_stats().unwrap();
        assert_eq!(t.relayed_packets, 0);
    }
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_only_call_goes_through_both_providers_turn_servers() {
    let fed = Federation::start(&["a.example", "b.example"])
        .await
        .unwrap();
    let (mut alice, bob, room) = two_users(&fed).await.unwrap();
    let (a_sent, b_sent) = (test_signal(3.0, 3), test_signal(3.0, 4));
    let (tap_tx, mut tap_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut a_opts = CallOptions::new(ip());
    a_opts.relay_only = true;
    a_opts.tap = Some(tap_tx);
    let mut b_opts = CallOptions::new(ip());
    b_opts.relay_only = true;
    let (a, b) = one_to_one(
        &mut alice,
        bob,
        &room,
        a_opts,
        b_opts,
        a_sent.clone(),
        b_sent.clone(),
    )
    .await
    .unwrap();
    check_audio(&a, &b, &a_sent, &b_sent);
    let mut wire = Vec::new();
    while let Ok(d) = tap_rx.try_recv() {
        wire.push(d);
    }
    assert_no_plaintext(&wire, &opus_windows(&a_sent));
    // Both relays carried the call.
    for d in ["a.example", "b.example"] {
        let t = fed.handle(d).unwrap().state.calls.turn_stats().unwrap();
        assert!(
            t.relayed_packets > 100,
            "{d} relayed {} packets",
            t.relayed_packets
        );
    }
    fed.shutdown().await;
}

/// Frame protection that remembers what it sealed and what it opened, around the
/// client's SFrame state.
struct Recording {
    inner: SframeCrypto,
    sealed_plain: Vec<Vec<u8>>,
    opened: Vec<(u64, Vec<u8>)>,
}

impl FrameCrypto for Recording {
    fn seal(&mut self, frame: &[u8]) -> Result<Vec<u8>, String> {
        self.sealed_plain.push(frame.to_vec());
        self.inner.seal(frame)
    }
    fn open(&mut self, frame: &[u8], _track: usize) -> Result<(u64, Vec<u8>), String> {
        let (sender, epoch, plain) = self.inner.decrypt(frame).map_err(|e| e.to_string())?;
        self.opened.push((epoch, frame.to_vec()));
        Ok((u64::from(sender), plain))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_call_through_the_hubs_sfu_with_sframe_and_a_removal() {
    let fed = Federation::start(&["a.example", "b.example", "c.example"])
        .await
        .unwrap();
    let mut alice = fed.register("alice@a.example", "laptop").await.unwrap();
    let mut bob = fed.register("bob@b.example", "phone").await.unwrap();
    let mut carol = fed.register("carol@c.example", "desktop").await.unwrap();
    let room = alice.create_room_named("Standup").await.unwrap();
    alice.invite(&room, &bob.user().clone()).await.unwrap();
    alice.invite(&room, &carol.user().clone()).await.unwrap();
    wait_joined(&mut bob, &room).await.unwrap();
    wait_joined(&mut carol, &room).await.unwrap();
    // Everyone at the same epoch before joining the call.
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    carol.sync().await.unwrap();

    let opts = CallOptions::new(ip());
    let mut calls = Vec::new();
    let mut recorders: Vec<Arc<Mutex<Recording>>> = Vec::new();
    for c in [&mut alice, &mut bob, &mut carol] {
        let call = c.join_group_call(&room, &opts).await.unwrap();
        let first = c.sframe_epoch(&room).unwrap();
        let rec = Arc::new(Mutex::new(Recording {
            inner: SframeCrypto::new(&first).unwrap(),
            sealed_plain: Vec::new(),
            opened: Vec::new(),
        }));
        recorders.push(rec.clone());
        calls.push(call);
    }
    let a_sent = test_signal(8.0, 11);
    let b_sent = test_signal(8.0, 12);
    let mut audio = Vec::new();
    for (i, (call, rec)) in calls.iter_mut().zip(&recorders).enumerate() {
        let peer = call.peer.take().unwrap();
        let send = match i {
            0 => Some(a_sent.clone()),
            1 => Some(b_sent.clone()),
            _ => None,
        };
        let crypto: SharedCrypto = rec.clone();
        let plan = AudioPlan {
            linger: Duration::from_secs(if i == 2 { 9 } else { 1 }),
            max_duration: Duration::from_secs(20),
        };
        audio.push(tokio::spawn(run_audio(
            peer,
            send,
            crypto,
            plan,
            std::future::pending(),
        )));
    }
    // Let the call run, then alice removes carol; alice and bob rekey.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let epoch_before = alice.sframe_epoch(&room).unwrap().epoch;
    alice
        .remove_participant(&room, &carol.user().clone())
        .await
        .unwrap();
    let next = alice.sframe_epoch(&room).unwrap();
    assert!(next.epoch > epoch_before);
    recorders[0].lock().unwrap().inner.rekey(&next).unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        bob.sync().await.unwrap();
        let e = bob.sframe_epoch(&room).unwrap();
        if e.epoch == next.epoch {
            recorders[1].lock().unwrap().inner.rekey(&e).unwrap();
            break;
        }
        assert!(Instant::now() < deadline, "bob never saw the removal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = carol.sync().await.unwrap();
    assert!(
        events.iter().any(|e| matches!(e, Event::Removed { .. })),
        "{events:?}"
    );

    let mut reports = Vec::new();
    for a in audio {
        reports.push(a.await.unwrap());
    }
    let (ar, br, cr) = (&reports[0], &reports[1], &reports[2]);
    let alice_leaf = u64::from(alice.sframe_epoch(&room).unwrap().own_leaf);
    let bob_leaf = u64::from(bob.sframe_epoch(&room).unwrap().own_leaf);
    // Bob heard alice through the whole call (both epochs), alice heard bob.
    let (c_ab, _) = best_correlation(&a_sent.samples, &br.recordings[&alice_leaf].samples, 48_000);
    let (c_ba, _) = best_correlation(&b_sent.samples, &ar.recordings[&bob_leaf].samples, 48_000);
    for (name, r) in [("alice", ar), ("bob", br), ("carol", cr)] {
        let lens: Vec<(u64, f64)> = r
            .recordings
            .iter()
            .map(|(k, v)| (*k, v.seconds()))
            .collect();
        eprintln!(
            "{name}: sent {} received {} unopened {} undecodable {} gaps {} recordings {lens:?} ended {}",
            r.frames_sent,
            r.frames_received,
            r.frames_unopened,
            r.frames_undecodable,
            r.discontinuities,
            r.ended
        );
    }
    eprintln!("bob hears alice {c_ab:.3}, alice hears bob {c_ba:.3}");
    assert!(c_ab > 0.6, "{c_ab}");
    assert!(c_ba > 0.6, "{c_ba}");
    assert!(br.recordings[&alice_leaf].seconds() > 7.0);
    // Carol heard alice before the removal only.
    let carol_heard = cr.recordings.get(&alice_leaf).map_or(0.0, Pcm::seconds);
    assert!(
        carol_heard > 1.0 && carol_heard < 6.0,
        "carol heard {carol_heard} s of alice"
    );

    // The frames bob opened in the new epoch do not open with carol's keys; the ones
    // of the old epoch do (so the check can fail).
    {
        let bob_rec = recorders[1].lock().unwrap();
        let mut carol_keys = recorders[2].lock().unwrap();
        let (mut new_epoch, mut old_epoch) = (0, 0);
        for (epoch, frame) in &bob_rec.opened {
            let r = carol_keys.inner.open(frame, 0);
            if *epoch == next.epoch {
                assert!(
                    r.is_err(),
                    "carol decrypted a frame of the epoch after her removal"
                );
                new_epoch += 1;
            } else if r.is_ok() {
                old_epoch += 1;
            }
        }
        assert!(
            new_epoch > 100 && old_epoch > 50,
            "{new_epoch} new, {old_epoch} old"
        );
        // What the SFU forwarded carries no Opus packet alice sealed.
        let plain: HashSet<Vec<u8>> = recorders[0]
            .lock()
            .unwrap()
            .sealed_plain
            .iter()
            .flat_map(|p| p.windows(12).map(<[u8]>::to_vec).collect::<Vec<_>>())
            .collect();
        let frames: Vec<Vec<u8>> = bob_rec.opened.iter().map(|(_, f)| f.clone()).collect();
        assert_no_plaintext(&frames, &plain);
        // The SFU forwarded, and its hub dropped carol from the call.
        let sfu = fed
            .handle("a.example")
            .unwrap()
            .state
            .calls
            .sfu
            .as_ref()
            .unwrap()
            .stats();
        assert!(sfu.frames_forwarded > 500, "{sfu:?}");
    }
    fed.shutdown().await;
}
