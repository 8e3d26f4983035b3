//! Issue 5's acceptance test: our Signal session (`entente_core::signal::session`)
//! against an implementation we did not write, byte for byte on the wire.
//!
//! The peer is python-omemo's `oldmemo` backend (OMEMO 0.3, the libsignal-based OMEMO
//! that Conversations and Dino speak), driven unmodified by
//! `tests/python/signal_peer.py` in a pinned virtualenv. Its OMEMOKeyExchange is
//! libsignal's version 3 PreKeySignalMessage and its OMEMOAuthenticatedMessage a
//! SignalMessage; its X3DH and Double Ratchet are the `x3dh` and `doubleratchet`
//! packages with libsignal's parameters. The Double Ratchet plaintext is OMEMO's "key
//! material", which can be any bytes; OMEMO's AES-GCM payload layer is not used.
//!
//! Both directions of set-up (python initiates from our bundle; we initiate from its
//! bundle), then many messages both ways over several DH ratchet turns, delivered out
//! of order, some held back for three or four turns, duplicates, tampered MACs, and
//! empty and 64 KiB plaintexts.
//!
//! Where oldmemo is not libsignal, a test pins the difference:
//!
//! - `oldmemo_loses_a_late_last_message_because_of_libsignals_previous_counter`:
//!   libsignal's `previous_counter` is the index of the last message on the previous
//!   chain; the `doubleratchet` package reads it as the number of messages, so oldmemo
//!   never derives the key of the last message of one of our previous chains and
//!   cannot decrypt it when it arrives after a message of our next chain. The long
//!   scenarios therefore never hold back the last message of one of our chains.
//! - `oldmemo_refuses_a_session_without_a_one_time_prekey`: libsignal allows it.
//! - oldmemo sends no `registration_id` (libsignal and we read 0), checked in
//!   `python_initiates_from_our_bundle_and_we_answer`.
//!
//! Without Python or PyPI these tests fail, saying what is missing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use entente_core::signal::keys::{IdentityKeyPair, PrivateKey, PublicKey};
use entente_core::signal::pqxdh::KemKeyPair;
use entente_core::signal::proto::{PreKeySignalMessage, SignalMessage};
use entente_core::signal::session::{
    MessageKind, PreKeyMessageInfo, PreKeyStore, Session, SessionError, accept_prekey_message,
    peek_prekey_message,
};
use entente_core::signal::x3dh;
use rand::rngs::{OsRng, StdRng};
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{Value, json};

/// oldmemo and everything it pulls in, pinned so that a new release cannot change what
/// the test checks (`xmlschema` and `elementpath` for `oldmemo.etree`, its bundle XML).
const REQUIREMENTS: &[&str] = &[
    "Oldmemo==2.1.0",
    "OMEMO==2.1.0",
    "DoubleRatchet==1.3.0",
    "X3DH==1.3.0",
    "XEdDSA==1.2.0",
    "cryptography==50.0.2",
    "protobuf==7.36.2",
    "pydantic==2.14.4",
    "pydantic_core==2.50.5",
    "typing_extensions==4.16.0",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "cffi==2.1.1",
    "pycparser==3.12",
    "xmlschema==4.3.2",
    "elementpath==5.1.4",
];

/// DH ratchet turns (a batch each way per turn) in the long scenarios.
const TURNS: usize = 9;
/// How many turns most held-back messages wait.
const LATE: usize = 3;
/// The longest wait: libsignal keeps the 5 newest receiving chains, so a message may
/// arrive at most 4 of the sender's ratchet turns after its chain was superseded.
const VERY_LATE: usize = 4;
/// The large plaintext.
const LARGE: usize = 64 * 1024;

#[test]
fn python_initiates_from_our_bundle_and_we_answer() {
    let mut c = Conversation::new(0x5eed_0001);
    let ours_json = c.ours.bundle_json();
    c.peer.call(&json!({ "op": "peer", "bundle": ours_json }));

    // oldmemo sends its first message with the session; more follow as PreKey
    // messages until we answer.
    let first = c.plaintext("python");
    let answer = c.peer.call(&json!({
        "op": "initiate", "bundle": ours_json, "plaintext": hex::encode(&first),
    }));
    let chosen_one_time_prekey = number(&answer["one_time_prekey_id"]);
    let m0 = InFlight {
        to_us: true,
        kind: kind(&answer["kind"]),
        bytes: unhex(&answer["message"]),
        plaintext: first,
        label: "python's PreKey message 0".into(),
        sent_in: 0,
    };
    let m1 = c.python_sends("python's PreKey message 1");
    let m2 = c.python_sends("python's PreKey message 2");
    let m3 = c.python_sends("python's PreKey message 3");
    for m in [&m0, &m1, &m2, &m3] {
        assert_eq!(m.kind, MessageKind::PreKey, "{}", m.label);
        assert_oldmemo_prekey_layout(&m.bytes);
    }

    // What we can read before decrypting: oldmemo sends no registration id (reads as 0).
    let info = peek_prekey_message(&m2.bytes).unwrap();
    assert_eq!(
        info,
        PreKeyMessageInfo {
            version: 3,
            registration_id: 0,
            identity_key: c.theirs.identity_key,
            base_key: info.base_key,
            one_time_prekey_id: Some(chosen_one_time_prekey),
            signed_prekey_id: c.ours.signed_prekey_id,
            kyber_prekey_id: None,
        }
    );
    assert_eq!(peek_prekey_message(&m0.bytes).unwrap(), info);

    // A tampered MAC is refused before anything is set up; then the session is set up
    // from the third message (two keys skipped), the first two follow.
    let tampered = tamper_mac(&m2);
    match c.try_deliver(&tampered) {
        Err(Refused::Ours(SessionError::BadMac)) => {}
        other => panic!(
            "a tampered PreKey message gave {:?}",
            other.map(|p| p.len())
        ),
    }
    assert!(c.session.is_none());
    c.deliver(&m2);
    let session = c.session.as_ref().unwrap();
    assert_eq!(session.version(), 3);
    assert_eq!(session.remote_identity(), &c.theirs.identity_key);
    assert_eq!(session.remote_registration_id(), 0);
    assert_eq!(session.base_key(), &info.base_key);
    assert!(!session.awaiting_reply());
    c.deliver(&m0);
    c.deliver(&m1);
    // The same PreKey message again is a duplicate, not a new session.
    assert_duplicate_refused_by_us(&mut c, &m1);
    assert_duplicate_refused_by_us(&mut c, &m2);

    // Our first answers confirm the session for oldmemo, which then sends SignalMessages.
    let r0 = c.we_send("our answer 0");
    let r1 = c.we_send("our answer 1");
    let r2 = c.we_send("our answer 2");
    for r in [&r0, &r1, &r2] {
        assert_eq!(r.kind, MessageKind::Whisper);
    }
    c.deliver(&r1);
    c.deliver(&r0);
    assert_eq!(c.peer.call(&json!({ "op": "session" }))["confirmed"], true);
    let next = c.python_sends("python after our answer");
    assert_eq!(next.kind, MessageKind::Whisper);
    assert_whisper_layout(&next.bytes);
    c.deliver(&next);
    c.deliver(&r2);

    // Python's fourth PreKey message, on its first chain, arrives as late as libsignal
    // allows: after the chain of `next` and those of turns 1 to 3 (5 chains kept).
    c.long_conversation(vec![(VERY_LATE - 1, m3)]);
    c.edge_cases(&m0, &r0);
}

#[test]
fn we_initiate_from_python_bundle_and_python_answers() {
    let mut c = Conversation::new(0x5eed_0002);
    c.peer
        .call(&json!({ "op": "peer", "bundle": c.ours.bundle_json() }));

    let bundle = c.theirs.x3dh_bundle(1);
    let session = Session::initiate(
        &c.ours.identity,
        c.ours.registration_id,
        &bundle,
        &mut OsRng,
    )
    .unwrap();
    assert!(session.awaiting_reply());
    assert_eq!(session.remote_registration_id(), c.theirs.registration_id);
    c.session = Some(session);

    let m: Vec<InFlight> = (0..4)
        .map(|i| c.we_send(&format!("our PreKey message {i}")))
        .collect();
    for m in &m {
        assert_eq!(m.kind, MessageKind::PreKey, "{}", m.label);
        let message = PreKeySignalMessage::decode(&m.bytes).unwrap();
        assert_eq!(message.registration_id(), c.ours.registration_id);
        assert_eq!(message.pre_key_id(), Some(c.theirs.one_time_prekeys[1].0));
        assert_eq!(message.signed_pre_key_id(), c.theirs.signed_prekey_id);
        assert_eq!(message.identity_key(), &c.ours.identity.public());
        assert_libsignal_prekey_layout(&m.bytes, c.ours.registration_id);
    }

    // Tampered first: oldmemo refuses to build a session from it.
    let refused = c.try_deliver(&tamper_mac(&m[1])).unwrap_err();
    assert_python_refused(&refused, "AuthenticationFailedException");
    // oldmemo sets up its side from the second message, then takes the first and the
    // fourth; the third (not the last of the chain, see the module comment) waits
    // until the end.
    c.deliver(&m[1]);
    c.deliver(&m[0]);
    c.deliver(&m[3]);
    assert_eq!(
        c.peer.call(&json!({ "op": "session" }))["initiation"],
        "PASSIVE"
    );

    // Its answers are SignalMessages; the first one that decrypts ends our PreKey phase.
    let a0 = c.python_sends("python's answer 0");
    let a1 = c.python_sends("python's answer 1");
    assert_eq!(a0.kind, MessageKind::Whisper);
    assert_whisper_layout(&a0.bytes);
    assert!(c.session.as_ref().unwrap().awaiting_reply());
    c.deliver(&a1);
    assert!(!c.session.as_ref().unwrap().awaiting_reply());
    c.deliver(&a0);
    let after = c.we_send("ours after python's answer");
    assert_eq!(after.kind, MessageKind::Whisper);
    assert_whisper_layout(&after.bytes);
    c.deliver(&after);

    let m2 = m.into_iter().nth(2).unwrap();
    c.long_conversation(vec![(TURNS - 1, m2)]);
    let first = c.delivered.first().unwrap().1.clone();
    let first_to_us = c.delivered.iter().find(|(_, m)| m.to_us).unwrap().1.clone();
    c.edge_cases(&first_to_us, &first);
}

/// libsignal writes `previous_counter` = index of the last message sent on the
/// previous chain (`max(index, 1) - 1`); the `doubleratchet` package under oldmemo
/// writes and reads it as the previous chain's length. libsignal never reads the field
/// (it keeps old receiving chains and derives skipped keys lazily), so oldmemo's
/// messages decrypt with us even when late, but oldmemo derives one key too few of our
/// previous chain: the last message of a chain, arriving after a message of our next
/// chain, is lost. This pins both the bytes and that consequence; a libsignal client
/// talking to oldmemo has the same problem.
#[test]
fn oldmemo_loses_a_late_last_message_because_of_libsignals_previous_counter() {
    let mut c = Conversation::new(0x5eed_0003);
    let ours_json = c.ours.bundle_json();
    let first = c.plaintext("python");
    let answer = c.peer.call(&json!({
        "op": "initiate", "bundle": ours_json, "plaintext": hex::encode(&first),
    }));
    c.deliver(&InFlight {
        to_us: true,
        kind: kind(&answer["kind"]),
        bytes: unhex(&answer["message"]),
        plaintext: first,
        label: "python's first".into(),
        sent_in: 0,
    });

    // Our first chain: three messages; the last is held back.
    let ours: Vec<InFlight> = (0..3).map(|i| c.we_send(&format!("ours {i}"))).collect();
    c.deliver(&ours[0]);
    c.deliver(&ours[1]);
    // Python's next chain: three messages, all delivered (python's previous_counter is
    // its previous chain's length, 1 here; ours would say 0).
    let theirs: Vec<InFlight> = (0..3)
        .map(|i| c.python_sends(&format!("python {i}")))
        .collect();
    let header = SignalMessage::decode(&theirs[0].bytes).unwrap();
    assert_eq!((header.counter(), header.previous_counter()), (0, 1));
    for m in &theirs {
        c.deliver(m);
    }
    // Our next chain says previous_counter = 2 (libsignal: index of "ours 2").
    let next = c.we_send("ours on the next chain");
    let header = SignalMessage::decode(&next.bytes).unwrap();
    assert_eq!((header.counter(), header.previous_counter()), (0, 2));
    c.deliver(&next);

    // oldmemo derived the skipped keys of indices [2, 2): none. "ours 2" is lost.
    let refused = c.try_deliver(&ours[2]).unwrap_err();
    assert_python_refused(&refused, "AuthenticationFailedException");

    // The mirror image is fine: python's last message of a chain, late, decrypts here.
    let delivered = c.python_sends("python, delivered");
    let held_back = c.python_sends("python, held back");
    c.deliver(&delivered);
    let newer = c.we_send("ours on a newer chain");
    c.deliver(&newer);
    let after = c.python_sends("python on its next chain");
    let header = SignalMessage::decode(&after.bytes).unwrap();
    assert_eq!((header.counter(), header.previous_counter()), (0, 2));
    c.deliver(&after);
    c.deliver(&held_back);
}

/// libsignal lets an initiator go without a one-time prekey when the server has none
/// left; oldmemo requires one (`pk_id` is required in its protobuf schema, and
/// python-omemo's X3DH refuses agreements without): it reads the absent id as 0 and
/// finds no such prekey, so such a session cannot start.
#[test]
fn oldmemo_refuses_a_session_without_a_one_time_prekey() {
    let mut c = Conversation::new(0x5eed_0004);
    c.peer
        .call(&json!({ "op": "peer", "bundle": c.ours.bundle_json() }));
    let mut bundle = c.theirs.x3dh_bundle(0);
    bundle.one_time_prekey = None;
    c.session = Some(
        Session::initiate(
            &c.ours.identity,
            c.ours.registration_id,
            &bundle,
            &mut OsRng,
        )
        .unwrap(),
    );
    let m = c.we_send("without a one-time prekey");
    let numbers: Vec<u64> = protobuf_fields(&m.bytes[1..]).iter().map(|f| f.0).collect();
    assert!(!numbers.contains(&1), "no pre_key_id field");
    let refused = c.try_deliver(&m).unwrap_err();
    assert_python_refused(&refused, "KeyExchangeFailed");
}

/// X3DH alone, both ways, against oldmemo's X3DH state (the `x3dh` package with
/// oldmemo's parameters): the same secret. oldmemo derives 32 bytes, libsignal (and we)
/// 64; HKDF's first 32 bytes do not depend on the length, so its secret must equal our
/// root key. Repeated until both signs of python's Edwards identity key have occurred,
/// since libsignal-style signatures carry that sign in their top bit.
#[test]
fn x3dh_agrees_with_oldmemo_both_ways() {
    let mut peer = Peer::spawn();
    let mut seen_sign_bits = [false; 2];
    let mut rounds = 0;
    while seen_sign_bits != [true, true] {
        rounds += 1;
        assert!(rounds <= 64, "python's identity keys all had the same sign");
        let theirs = peer.new_identity(3, 7);
        seen_sign_bits[usize::from(theirs.edwards_sign_bit())] = true;
        let ours = Ours::new(3);

        // Python initiates from our bundle; we respond.
        let active = peer.call(&json!({ "op": "x3dh_active", "bundle": ours.bundle_json() }));
        let one_time_prekey_id = number(&active["one_time_prekey_id"]);
        let secrets = x3dh::respond(
            &ours.identity,
            &ours.signed_prekey,
            Some(&ours.one_time_prekeys[&one_time_prekey_id]),
            &theirs.identity_key,
            &key(&active["ephemeral_key"]),
        )
        .unwrap();
        assert_eq!(unhex(&active["shared_secret"]), secrets.root_key());
        // Its associated data is libsignal's MAC prefix: initiator || responder.
        let mut expected = theirs.identity_key.encode().to_vec();
        expected.extend_from_slice(&ours.identity.public().encode());
        assert_eq!(unhex(&active["associated_data"]), expected);

        // We initiate from python's bundle (its signed prekey signature verifies with us,
        // whatever the sign bit); python responds.
        let which = rounds % theirs.one_time_prekeys.len();
        let (secrets, initiation) =
            x3dh::initiate(&ours.identity, &theirs.x3dh_bundle(which), &mut OsRng).unwrap();
        let passive = peer.call(&json!({
            "op": "x3dh_passive",
            "identity_key": hex::encode(ours.identity.public().encode()),
            "ephemeral_key": hex::encode(initiation.base_key.encode()),
            "signed_prekey_id": theirs.signed_prekey_id,
            "one_time_prekey_id": theirs.one_time_prekeys[which].0,
        }));
        assert_eq!(unhex(&passive["shared_secret"]), secrets.root_key());
        let mut expected = ours.identity.public().encode().to_vec();
        expected.extend_from_slice(&theirs.identity_key.encode());
        assert_eq!(unhex(&passive["associated_data"]), expected);

        // The same signature with the other sign bit is refused.
        let mut flipped = theirs.x3dh_bundle(0);
        flipped.signed_prekey_signature[63] ^= 0x80;
        assert!(x3dh::initiate(&ours.identity, &flipped, &mut OsRng).is_err());
    }
}

/// Both sides of one session and the messages between them.
struct Conversation {
    peer: Peer,
    ours: Ours,
    theirs: TheirBundle,
    /// Ours, once initiated or accepted.
    session: Option<Session>,
    /// Delivery order and plaintexts: seeded, so a failure's schedule can be replayed.
    order: StdRng,
    sent: usize,
    /// The turn of [`long_conversation`](Self::long_conversation) we are in.
    turn: usize,
    /// Every message that decrypted, with the turn it was delivered in.
    delivered: Vec<(usize, InFlight)>,
}

/// A message on its way, with what it must decrypt to.
#[derive(Clone, Debug)]
struct InFlight {
    to_us: bool,
    kind: MessageKind,
    bytes: Vec<u8>,
    plaintext: Vec<u8>,
    label: String,
    /// The turn it was sent in.
    sent_in: usize,
}

/// Why a side refused a message.
#[derive(Debug)]
enum Refused {
    Ours(SessionError),
    /// oldmemo's innermost exception type and the whole chain's messages.
    Python {
        error: String,
        detail: String,
    },
}

impl Conversation {
    fn new(seed: u64) -> Self {
        let mut peer = Peer::spawn();
        let theirs = peer.new_identity(5, 4242);
        Self {
            peer,
            ours: Ours::new(5),
            theirs,
            session: None,
            order: StdRng::seed_from_u64(seed),
            sent: 0,
            turn: 0,
            delivered: Vec::new(),
        }
    }

    /// A fresh plaintext: a label and up to 300 random bytes.
    fn plaintext(&mut self, from: &str) -> Vec<u8> {
        self.sent += 1;
        let mut plaintext = format!("{from} #{}: ", self.sent).into_bytes();
        let mut random = vec![0u8; self.order.gen_range(0..300)];
        self.order.fill_bytes(&mut random);
        plaintext.extend_from_slice(&random);
        plaintext
    }

    fn python_sends(&mut self, label: &str) -> InFlight {
        let plaintext = self.plaintext(label);
        self.python_sends_exactly(label, plaintext)
    }

    fn python_sends_exactly(&mut self, label: &str, plaintext: Vec<u8>) -> InFlight {
        let answer = self.peer.call(&json!({
            "op": "encrypt", "plaintext": hex::encode(&plaintext),
        }));
        InFlight {
            to_us: true,
            kind: kind(&answer["kind"]),
            bytes: unhex(&answer["message"]),
            plaintext,
            label: label.into(),
            sent_in: self.turn,
        }
    }

    fn we_send(&mut self, label: &str) -> InFlight {
        let plaintext = self.plaintext(label);
        self.we_send_exactly(label, plaintext)
    }

    fn we_send_exactly(&mut self, label: &str, plaintext: Vec<u8>) -> InFlight {
        let outgoing = self
            .session
            .as_mut()
            .unwrap()
            .encrypt(&plaintext, &mut OsRng)
            .unwrap();
        InFlight {
            to_us: false,
            kind: outgoing.kind,
            bytes: outgoing.bytes,
            plaintext,
            label: label.into(),
            sent_in: self.turn,
        }
    }

    /// Delivers `m`, which must decrypt to its plaintext.
    fn deliver(&mut self, m: &InFlight) {
        match self.try_deliver(m) {
            Ok(plaintext) => assert!(
                plaintext == m.plaintext,
                "{} decrypted to other bytes ({} instead of {} bytes)",
                m.label,
                plaintext.len(),
                m.plaintext.len()
            ),
            Err(refused) => panic!(
                "{} ({} to {}, turn {}) was refused: {refused:?}",
                m.label,
                if m.kind == MessageKind::PreKey {
                    "PreKey"
                } else {
                    "Whisper"
                },
                if m.to_us { "us" } else { "python" },
                self.turn
            ),
        }
    }

    fn try_deliver(&mut self, m: &InFlight) -> Result<Vec<u8>, Refused> {
        let plaintext = if m.to_us {
            self.we_receive(m).map_err(Refused::Ours)?
        } else {
            let kind = match m.kind {
                MessageKind::PreKey => "prekey",
                MessageKind::Whisper => "whisper",
            };
            let answer = self.peer.try_call(&json!({
                "op": "decrypt", "kind": kind, "message": hex::encode(&m.bytes),
            }));
            if let Some(error) = answer.get("error") {
                return Err(Refused::Python {
                    error: error.as_str().unwrap().into(),
                    detail: answer["detail"].as_str().unwrap().into(),
                });
            }
            unhex(&answer["plaintext"])
        };
        self.delivered.push((self.turn, m.clone()));
        Ok(plaintext)
    }

    fn we_receive(&mut self, m: &InFlight) -> Result<Vec<u8>, SessionError> {
        if let Some(session) = &mut self.session {
            // Decrypt a copy first: a refused message must leave the session as it was.
            let before = session.to_bytes();
            let result = session.decrypt(m.kind, &m.bytes);
            if result.is_err() {
                assert!(
                    *session.to_bytes() == *before,
                    "refusing {} changed the session",
                    m.label
                );
            }
            return result;
        }
        assert_eq!(m.kind, MessageKind::PreKey, "{} sets up nothing", m.label);
        let info = peek_prekey_message(&m.bytes)?;
        assert_eq!(info.identity_key, self.theirs.identity_key);
        let accepted = accept_prekey_message(
            &self.ours.identity,
            self.ours.registration_id,
            &self.ours,
            &m.bytes,
            &mut OsRng,
        )?;
        assert_eq!(accepted.info, info);
        self.session = Some(accepted.session);
        Ok(accepted.plaintext)
    }

    /// `TURNS` DH ratchet turns: each turn python sends a batch and we send one, each
    /// delivered shuffled, one message of each held back for [`LATE`] turns (in the
    /// first two turns a second one for [`VERY_LATE`]). `late` holds messages from
    /// before, with the turn to deliver them in. Halfway, our session goes through
    /// `to_bytes`/`from_bytes`.
    fn long_conversation(&mut self, mut late: Vec<(usize, InFlight)>) {
        // Each side's ratchet keys so far: every batch must bring a new one.
        let mut ratchet_keys: [Vec<PublicKey>; 2] = [Vec::new(), Vec::new()];
        for turn in 0..TURNS {
            self.turn = turn;
            for to_us in [true, false] {
                let count = self.order.gen_range(3..8);
                let mut batch: Vec<InFlight> = (0..count)
                    .map(|i| {
                        let label = if to_us {
                            format!("python's message {i} of turn {turn}")
                        } else {
                            format!("our message {i} of turn {turn}")
                        };
                        if to_us {
                            self.python_sends(&label)
                        } else {
                            self.we_send(&label)
                        }
                    })
                    .collect();
                let mut headers = batch.iter().map(|m| {
                    assert_eq!(m.kind, MessageKind::Whisper, "{}", m.label);
                    assert_whisper_layout(&m.bytes);
                    SignalMessage::decode(&m.bytes).unwrap()
                });
                let first = headers.next().unwrap();
                let keys = &mut ratchet_keys[usize::from(to_us)];
                assert!(!keys.contains(first.ratchet_key()), "no ratchet turn");
                keys.push(*first.ratchet_key());
                for (counter, header) in (first.counter()..).skip(1).zip(headers) {
                    assert_eq!(header.ratchet_key(), first.ratchet_key());
                    assert_eq!(header.counter(), counter);
                }
                // Never hold back the last of our chain (see the module comment).
                let last = (!to_us).then(|| batch.pop().unwrap());
                batch.shuffle(&mut self.order);
                late.push((turn + LATE, batch.pop().unwrap()));
                if turn < 2 {
                    late.push((turn + VERY_LATE, batch.pop().unwrap()));
                }
                batch.extend(last);
                batch.shuffle(&mut self.order);
                for m in &batch {
                    self.deliver(m);
                }
            }
            let (mut due, waiting): (Vec<_>, Vec<_>) =
                late.into_iter().partition(|(due, _)| *due <= turn);
            late = waiting;
            due.shuffle(&mut self.order);
            for (_, m) in &due {
                self.deliver(m);
            }
            if turn == TURNS / 2 {
                let stored = self.session.as_ref().unwrap().to_bytes();
                self.session = Some(Session::from_bytes(&stored).unwrap());
            }
        }
        late.shuffle(&mut self.order);
        for (_, m) in &late {
            self.deliver(m);
        }
    }

    /// After a long conversation: duplicates (fresh, a turn old, and `oldest_to_us` /
    /// `oldest_to_python` from the set-up), tampered MACs both ways, then empty and
    /// large plaintexts both ways.
    fn edge_cases(&mut self, oldest_to_us: &InFlight, oldest_to_python: &InFlight) {
        self.turn = TURNS;
        let fresh_to_us = self.python_sends("python's fresh message");
        self.deliver(&fresh_to_us);
        let fresh_to_python = self.we_send("our fresh message");
        self.deliver(&fresh_to_python);

        // Duplicates to us: always Duplicate, even from the chain before last.
        assert_duplicate_refused_by_us(self, &fresh_to_us);
        let recent = self.delivered_in(TURNS - 2, true);
        assert_duplicate_refused_by_us(self, &recent);
        // One that was late, so decrypted with a skipped key (the newest such).
        let late = self.latest_late(true);
        assert_duplicate_refused_by_us(self, &late);
        // From the set-up, more than 5 chains ago: the chain is gone (as in libsignal),
        // so the message reads as one on a new chain, whose MAC does not verify.
        match self.try_deliver(oldest_to_us) {
            Err(Refused::Ours(SessionError::BadMac)) => {}
            other => panic!(
                "{} a second time gave {:?}",
                oldest_to_us.label,
                other.map(|plaintext| plaintext.len())
            ),
        }

        // Duplicates to python: its current chain says so; an older one (whose key
        // it used up) makes oldmemo try a ratchet step with a stale key, which fails
        // authentication. Either way nothing decrypts twice.
        let refused = self.try_deliver(&fresh_to_python).unwrap_err();
        assert_python_refused(&refused, "DuplicateMessageException");
        let recent = self.delivered_in(TURNS - 2, false);
        let refused = self.try_deliver(&recent).unwrap_err();
        assert_python_refused(&refused, "AuthenticationFailedException");
        let refused = self.try_deliver(oldest_to_python).unwrap_err();
        assert_python_refused(&refused, "AuthenticationFailedException");
        let late = self.latest_late(false);
        let refused = self.try_deliver(&late).unwrap_err();
        assert_python_refused(&refused, "AuthenticationFailedException");

        // Tampered MACs, then the untampered message still decrypts on both sides.
        let to_us = self.python_sends("python's message, tampered first");
        match self.try_deliver(&tamper_mac(&to_us)) {
            Err(Refused::Ours(SessionError::BadMac)) => {}
            other => panic!("a tampered message gave {:?}", other.map(|p| p.len())),
        }
        self.deliver(&to_us);
        let to_python = self.we_send("our message, tampered first");
        let refused = self.try_deliver(&tamper_mac(&to_python)).unwrap_err();
        assert_python_refused(&refused, "AuthenticationFailedException");
        self.deliver(&to_python);

        // Empty and 64 KiB plaintexts, both ways, over a ratchet turn.
        let mut large = vec![0u8; LARGE];
        self.order.fill_bytes(&mut large);
        let m = self.python_sends_exactly("python's empty message", Vec::new());
        self.deliver(&m);
        let m = self.python_sends_exactly("python's 64 KiB message", large.clone());
        self.deliver(&m);
        let m = self.we_send_exactly("our empty message", Vec::new());
        self.deliver(&m);
        large.reverse();
        let m = self.we_send_exactly("our 64 KiB message", large);
        self.deliver(&m);
        // Both directions still work after everything above.
        let m = self.python_sends("python's last message");
        self.deliver(&m);
        let m = self.we_send("our last message");
        self.deliver(&m);
    }

    /// The message delivered late (after the turn it was sent in) that was sent last.
    fn latest_late(&self, to_us: bool) -> InFlight {
        self.delivered
            .iter()
            .filter(|(turn, m)| m.to_us == to_us && *turn > m.sent_in)
            .max_by_key(|(_, m)| m.sent_in)
            .unwrap()
            .1
            .clone()
    }

    /// A message delivered in `turn` in the given direction.
    fn delivered_in(&self, turn: usize, to_us: bool) -> InFlight {
        self.delivered
            .iter()
            .find(|(t, m)| *t == turn && m.to_us == to_us)
            .unwrap_or_else(|| panic!("nothing delivered in turn {turn}"))
            .1
            .clone()
    }
}

fn assert_duplicate_refused_by_us(c: &mut Conversation, m: &InFlight) {
    match c.try_deliver(m) {
        Err(Refused::Ours(SessionError::Duplicate { .. })) => {}
        Err(other) => panic!("{} a second time gave {other:?}", m.label),
        Ok(plaintext) => panic!(
            "{} decrypted a second time ({} bytes)",
            m.label,
            plaintext.len()
        ),
    }
}

fn assert_python_refused(refused: &Refused, expected: &str) {
    match refused {
        Refused::Python { error, .. } if error == expected => {}
        Refused::Python { error, detail } => {
            panic!("expected oldmemo to refuse with {expected}, got {error}: {detail}")
        }
        Refused::Ours(e) => panic!("expected oldmemo to refuse with {expected}, we gave {e:?}"),
    }
}

/// `m` with the last byte of its SignalMessage's MAC flipped.
fn tamper_mac(m: &InFlight) -> InFlight {
    let mut tampered = m.clone();
    let last_mac_byte = match m.kind {
        MessageKind::Whisper => m.bytes.len() - 1,
        MessageKind::PreKey => {
            let fields = protobuf_fields(&m.bytes[1..]);
            let (_, value) = fields.iter().find(|(field, _)| *field == 4).unwrap();
            let FieldValue::Bytes(range) = value else {
                panic!("field 4 is not bytes")
            };
            range.end // relative to bytes[1..]
        }
    };
    tampered.bytes[last_mac_byte] ^= 0x01;
    tampered.label = format!("{} (tampered MAC)", m.label);
    tampered
}

/// oldmemo's PreKeySignalMessage: `0x33`, fields in number order and no
/// `registration_id` (5): 1 pre_key_id, 2 base_key, 3 identity_key, 4 message,
/// 6 signed_pre_key_id.
fn assert_oldmemo_prekey_layout(bytes: &[u8]) {
    assert_eq!(bytes[0], 0x33);
    let numbers: Vec<u64> = protobuf_fields(&bytes[1..]).iter().map(|f| f.0).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 6]);
}

/// Ours: all of libsignal's version 3 fields, registration id included.
fn assert_libsignal_prekey_layout(bytes: &[u8], registration_id: u32) {
    assert_eq!(bytes[0], 0x33);
    let fields = protobuf_fields(&bytes[1..]);
    let mut numbers: Vec<u64> = fields.iter().map(|f| f.0).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    let (_, value) = fields.iter().find(|(field, _)| *field == 5).unwrap();
    assert!(matches!(value, FieldValue::Varint(id) if *id == u64::from(registration_id)));
}

/// A SignalMessage: `0x33 || protobuf (1 ratchet_key, 2 counter, 3 previous_counter,
/// 4 ciphertext) || 8-byte MAC`.
fn assert_whisper_layout(bytes: &[u8]) {
    assert_eq!(bytes[0], 0x33);
    let fields = protobuf_fields(&bytes[1..bytes.len() - 8]);
    let numbers: Vec<u64> = fields.iter().map(|f| f.0).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
}

#[derive(Debug)]
enum FieldValue {
    Varint(u64),
    /// Where the value lies in the bytes given to [`protobuf_fields`].
    Bytes(Range<usize>),
}

/// The fields of a protobuf message in wire order: a reader of our own, so the layout
/// checks do not depend on either implementation's decoder.
fn protobuf_fields(bytes: &[u8]) -> Vec<(u64, FieldValue)> {
    fn varint(bytes: &[u8], at: &mut usize) -> u64 {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = bytes[*at];
            *at += 1;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
        }
        panic!("varint too long")
    }
    let mut fields = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at);
        let value = match key & 7 {
            0 => FieldValue::Varint(varint(bytes, &mut at)),
            2 => {
                let len = usize::try_from(varint(bytes, &mut at)).unwrap();
                at += len;
                assert!(at <= bytes.len(), "field {} overruns", key >> 3);
                FieldValue::Bytes(at - len..at)
            }
            other => panic!("wire type {other}"),
        };
        fields.push((key >> 3, value));
    }
    fields
}

fn python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON
        .get_or_init(|| entente_testkit::python::venv(REQUIREMENTS).map_err(|e| format!("{e:#}")))
    {
        Ok(python) => python,
        Err(e) => panic!("cannot set up Python for the interop tests: {e}"),
    }
}

/// The oldmemo peer: a long-running `signal_peer.py`, one JSON line per request.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn spawn() -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/signal_peer.py");
        let mut child = Command::new(python())
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// The peer's answer to `request`, which may be `{"error": ..}`.
    fn try_call(&mut self, request: &Value) -> Value {
        writeln!(self.stdin, "{request}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        let read = self.stdout.read_line(&mut line).unwrap();
        assert!(read > 0, "signal_peer.py exited (its stderr is above)");
        serde_json::from_str(&line).unwrap()
    }

    /// The peer's answer to `request`, which must not be an error.
    fn call(&mut self, request: &Value) -> Value {
        let answer = self.try_call(request);
        if answer.get("error").is_some() {
            panic!(
                "oldmemo refused {}: {} ({})\n{}",
                request["op"],
                answer["error"],
                answer["detail"],
                answer["traceback"].as_str().unwrap_or_default()
            );
        }
        answer
    }

    /// A fresh identity with `one_time_prekeys` one-time prekeys; its bundle.
    fn new_identity(&mut self, one_time_prekeys: usize, device_id: u32) -> TheirBundle {
        TheirBundle::from_json(
            &self.call(&json!({ "op": "new", "opk": one_time_prekeys, "device_id": device_id })),
        )
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // The script ends when its stdin closes; kill it in case it is stuck.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bundle oldmemo published, as `oldmemo.etree` serialises it.
struct TheirBundle {
    identity_key: PublicKey,
    registration_id: u32,
    signed_prekey_id: u32,
    signed_prekey: PublicKey,
    signed_prekey_signature: [u8; 64],
    one_time_prekeys: Vec<(u32, PublicKey)>,
}

impl TheirBundle {
    fn from_json(json: &Value) -> Self {
        Self {
            identity_key: key(&json["identity_key"]),
            registration_id: number(&json["registration_id"]),
            signed_prekey_id: number(&json["signed_prekey_id"]),
            signed_prekey: key(&json["signed_prekey"]),
            signed_prekey_signature: unhex(&json["signed_prekey_signature"]).try_into().unwrap(),
            one_time_prekeys: json["one_time_prekeys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| (number(&pair[0]), key(&pair[1])))
                .collect(),
        }
    }

    /// libsignal's sign-bit convention: the top bit of the signature is the sign of the
    /// identity key's Edwards form (python-omemo's identity keys are Ed25519 keys).
    fn edwards_sign_bit(&self) -> u8 {
        self.signed_prekey_signature[63] >> 7
    }

    /// The bundle as an initiator gets it from a server, with one of the one-time
    /// prekeys. OMEMO's device id stands in for the registration id.
    fn x3dh_bundle(&self, one_time_prekey: usize) -> x3dh::PreKeyBundle {
        x3dh::PreKeyBundle {
            registration_id: self.registration_id,
            device_id: self.registration_id,
            identity_key: self.identity_key,
            signed_prekey_id: self.signed_prekey_id,
            signed_prekey: self.signed_prekey,
            signed_prekey_signature: self.signed_prekey_signature,
            one_time_prekey: Some(self.one_time_prekeys[one_time_prekey]),
            kyber_prekey: None,
        }
    }
}

/// Our side's long-term keys and prekeys.
struct Ours {
    identity: IdentityKeyPair,
    registration_id: u32,
    signed_prekey_id: u32,
    signed_prekey: PrivateKey,
    signed_prekey_signature: [u8; 64],
    one_time_prekeys: HashMap<u32, PrivateKey>,
}

impl Ours {
    fn new(one_time_prekeys: u32) -> Self {
        let identity = IdentityKeyPair::generate(&mut OsRng);
        let signed_prekey = PrivateKey::generate(&mut OsRng);
        let signed_prekey_signature = identity
            .private()
            .sign(&signed_prekey.public_key().encode(), &mut OsRng);
        Self {
            identity,
            // libsignal's registration ids are 14 bits, never 0.
            registration_id: OsRng.gen_range(1..0x3FFF),
            signed_prekey_id: OsRng.gen_range(1..0x00FF_FFFF),
            signed_prekey,
            signed_prekey_signature,
            one_time_prekeys: (0..one_time_prekeys)
                .map(|i| (1000 + i, PrivateKey::generate(&mut OsRng)))
                .collect(),
        }
    }

    /// Our bundle as the peer script takes it (OMEMO 0.3's bundle fields).
    fn bundle_json(&self) -> Value {
        let mut one_time_prekeys: Vec<_> = self.one_time_prekeys.iter().collect();
        one_time_prekeys.sort_by_key(|(id, _)| **id);
        let one_time_prekeys: Vec<Value> = one_time_prekeys
            .into_iter()
            .map(|(id, key)| json!([id, hex::encode(key.public_key().encode())]))
            .collect();
        json!({
            "identity_key": hex::encode(self.identity.public().encode()),
            "registration_id": self.registration_id,
            "signed_prekey_id": self.signed_prekey_id,
            "signed_prekey": hex::encode(self.signed_prekey.public_key().encode()),
            "signed_prekey_signature": hex::encode(self.signed_prekey_signature),
            "one_time_prekeys": one_time_prekeys,
        })
    }
}

impl PreKeyStore for Ours {
    fn signed_prekey(&self, id: u32) -> Option<PrivateKey> {
        (id == self.signed_prekey_id).then(|| self.signed_prekey.clone())
    }

    fn one_time_prekey(&self, id: u32) -> Option<PrivateKey> {
        self.one_time_prekeys.get(&id).cloned()
    }

    fn kyber_prekey(&self, _id: u32) -> Option<KemKeyPair> {
        None
    }
}

fn kind(value: &Value) -> MessageKind {
    match value.as_str() {
        Some("prekey") => MessageKind::PreKey,
        Some("whisper") => MessageKind::Whisper,
        _ => panic!("unknown message kind {value}"),
    }
}

fn unhex(value: &Value) -> Vec<u8> {
    hex::decode(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a hex string: {value}")),
    )
    .unwrap()
}

fn key(value: &Value) -> PublicKey {
    PublicKey::decode(&unhex(value)).unwrap()
}

fn number(value: &Value) -> u32 {
    u32::try_from(
        value
            .as_u64()
            .unwrap_or_else(|| panic!("not a number: {value}")),
    )
    .unwrap()
}
