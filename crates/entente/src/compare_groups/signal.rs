//! Pairwise Double Ratchet channels and sender keys, with Entente's Signal-channel
//! implementation (`entente_core::signal`).
//!
//! Both are measured around one member, the *hub* here: it holds an established
//! session (a PreKey message and a reply: both directions have ratcheted) with
//! every other member, and for each session the other side is kept too, so that
//! whatever the hub sends can be decrypted and whatever the others send can be
//! produced. Operations that change state are run on clones, so every repetition
//! starts from the same state and nothing but the measured work is timed.

use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use entente_core::signal::keys::{IdentityKeyPair, PrivateKey};
use entente_core::signal::pqxdh::KemKeyPair;
use entente_core::signal::sender_keys::SenderKeyRecord;
use entente_core::signal::session::{
    MessageKind, OutgoingMessage, PreKeyStore, Session, accept_prekey_message,
};
use entente_core::signal::x3dh::{KyberPreKey, PreKeyBundle};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::{Cost, Measured, Plan, Progress, Samples};

/// Bytes of the notice a newcomer's first pairwise message carries.
const JOIN_NOTICE: usize = 32;
/// The sender-key distribution id of the measured group.
const DISTRIBUTION_ID: [u8; 16] = *b"compare-groups!!";
/// Prekey ids (each member publishes one of each).
const SIGNED_ID: u32 = 1;
const ONE_TIME_ID: u32 = 7;
const KYBER_ID: u32 = 11;

/// Pairwise channels: messages, add, remove.
pub(crate) fn pairwise(n: usize, plan: &Plan, progress: &Progress) -> Result<Measured> {
    let mut rng = StdRng::from_entropy();
    progress.step(format!("setting up {} sessions", n - 1));
    let mut star = Star::new(n, plan.receivers, &mut rng, |_, _| Ok(Vec::new()))?;
    progress.step("adding a member");
    let add = star.pairwise_add(plan.changes, &mut rng)?;
    progress.step("messages");
    let message = star.pairwise_messages(plan.messages, plan.payload, &mut rng)?;
    Ok(Measured {
        message: Some(message),
        add,
        // Removing a member: the others simply stop encrypting to it.
        remove: Cost::default(),
        message_state: None,
    })
}

/// Sender keys: messages, add, remove.
pub(crate) fn sender_keys(n: usize, plan: &Plan, progress: &Progress) -> Result<Measured> {
    let mut rng = StdRng::from_entropy();
    progress.step(format!("setting up {} sessions and sender keys", n - 1));
    let mut star = Star::new(n, plan.receivers, &mut rng, |member, rng| {
        let (record, distribution) = SenderKeyRecord::create(DISTRIBUTION_ID, rng);
        member.own_key = Some(record);
        Ok(distribution)
    })?;
    progress.step("adding a member");
    let add = star.sender_key_add(plan.changes, &mut rng)?;
    progress.step("removing a member");
    let remove = star.sender_key_remove(plan.changes, &mut rng)?;
    progress.step("messages");
    let message = star.sender_key_messages(plan.messages, plan.payload, &mut rng)?;
    Ok(Measured {
        message: Some(message),
        add,
        remove,
        message_state: None,
    })
}

/// One device: its identity, its published prekeys (one of each), and, for
/// sender keys, its own sender key.
struct Member {
    identity: IdentityKeyPair,
    registration_id: u32,
    signed: PrivateKey,
    signed_signature: [u8; 64],
    one_time: PrivateKey,
    kyber: KemKeyPair,
    kyber_signature: [u8; 64],
    own_key: Option<SenderKeyRecord>,
}

impl Member {
    fn new(rng: &mut StdRng) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        let signed = PrivateKey::generate(rng);
        let signed_signature = identity.private().sign(&signed.public_key().encode(), rng);
        let kyber = KemKeyPair::generate(rng);
        let kyber_signature = identity.private().sign(&kyber.public_key().encode(), rng);
        Self {
            registration_id: rng.gen_range(1..16_380),
            identity,
            signed,
            signed_signature,
            one_time: PrivateKey::generate(rng),
            kyber,
            kyber_signature,
            own_key: None,
        }
    }

    /// The bundle the directory serves for this device (with a Kyber prekey:
    /// PQXDH, session version 4).
    fn bundle(&self) -> PreKeyBundle {
        PreKeyBundle {
            registration_id: self.registration_id,
            device_id: 1,
            identity_key: self.identity.public(),
            signed_prekey_id: SIGNED_ID,
            signed_prekey: self.signed.public_key(),
            signed_prekey_signature: self.signed_signature,
            one_time_prekey: Some((ONE_TIME_ID, self.one_time.public_key())),
            kyber_prekey: Some(KyberPreKey {
                id: KYBER_ID,
                public: self.kyber.public_key(),
                signature: self.kyber_signature,
            }),
        }
    }

    /// Starts a session with `peer` and encrypts the first (PreKey) message.
    fn initiate(
        &self,
        peer: &PreKeyBundle,
        first: &[u8],
        rng: &mut StdRng,
    ) -> Result<(Session, OutgoingMessage)> {
        let mut s = Session::initiate(&self.identity, self.registration_id, peer, rng)
            .context("starting a session")?;
        let m = s
            .encrypt(first, rng)
            .context("encrypting a first message")?;
        Ok((s, m))
    }

    /// Accepts a PreKey message: the session and the plaintext.
    fn accept(&self, bytes: &[u8], rng: &mut StdRng) -> Result<(Session, Vec<u8>)> {
        let a = accept_prekey_message(&self.identity, self.registration_id, self, bytes, rng)
            .context("accepting a PreKey message")?;
        Ok((a.session, a.plaintext))
    }

    fn own_key(&self) -> Result<&SenderKeyRecord> {
        self.own_key.as_ref().context("bug: no sender key")
    }
}

impl PreKeyStore for Member {
    fn signed_prekey(&self, id: u32) -> Option<PrivateKey> {
        (id == SIGNED_ID).then(|| self.signed.clone())
    }

    fn one_time_prekey(&self, id: u32) -> Option<PrivateKey> {
        (id == ONE_TIME_ID).then(|| self.one_time.clone())
    }

    fn kyber_prekey(&self, id: u32) -> Option<KemKeyPair> {
        (id == KYBER_ID).then(|| self.kyber.clone())
    }
}

/// The bytes of a bundle's key material as the directory serves it: ids, keys and
/// signatures (no JSON or base64 around them).
fn bundle_len(b: &PreKeyBundle) -> u64 {
    let ids = 4 * 2 + 4; // registration and device id, signed prekey id
    let keys = b.identity_key.encode().len() + b.signed_prekey.encode().len();
    let one_time = b.one_time_prekey.map_or(0, |(_, k)| 4 + k.encode().len());
    let kyber = b
        .kyber_prekey
        .as_ref()
        .map_or(0, |k| 4 + k.public.encode().len() + k.signature.len());
    (ids + keys + b.signed_prekey_signature.len() + one_time + kyber) as u64
}

/// The other end of one of the hub's sessions.
struct Peer {
    member: Member,
    /// The hub's session with this member, and this member's with the hub.
    hub_side: Session,
    peer_side: Session,
    /// For sender keys: the hub's copy of this member's sender key.
    their_key: Option<SenderKeyRecord>,
    /// For sender keys: this member's copy of the hub's sender key.
    hub_key: Option<SenderKeyRecord>,
}

/// The hub and every other member, with established sessions between the hub and
/// each of them.
struct Star {
    hub: Member,
    peers: Vec<Peer>,
    /// Indices into `peers` of the members whose receiving is timed.
    sampled: Vec<usize>,
}

impl Star {
    /// `setup` gives each member (the hub first) its distribution message, sent
    /// in the session's first two messages; an empty one for plain pairwise.
    fn new(
        n: usize,
        sample: usize,
        rng: &mut StdRng,
        mut setup: impl FnMut(&mut Member, &mut StdRng) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        let mut hub = Member::new(rng);
        let hub_distribution = setup(&mut hub, rng)?;
        let mut peers = Vec::with_capacity(n - 1);
        for _ in 1..n {
            let mut member = Member::new(rng);
            let distribution = setup(&mut member, rng)?;
            let (mut hub_side, first) = hub.initiate(&member.bundle(), &hub_distribution, rng)?;
            let (mut peer_side, got) = member.accept(&first.bytes, rng)?;
            let reply = peer_side
                .encrypt(&distribution, rng)
                .context("encrypting a reply")?;
            let their = hub_side
                .decrypt(reply.kind, &reply.bytes)
                .context("decrypting a reply")?;
            let (their_key, hub_key) = if hub.own_key.is_some() {
                (
                    Some(SenderKeyRecord::from_distribution_message(&their)?),
                    Some(SenderKeyRecord::from_distribution_message(&got)?),
                )
            } else {
                (None, None)
            };
            peers.push(Peer {
                member,
                hub_side,
                peer_side,
                their_key,
                hub_key,
            });
        }
        let k = sample.clamp(1, peers.len().max(1));
        let mut sampled: Vec<usize> = (0..k).map(|i| i * peers.len() / k).collect();
        sampled.dedup();
        sampled.retain(|i| *i < peers.len());
        Ok(Self {
            hub,
            peers,
            sampled,
        })
    }

    fn n(&self) -> u64 {
        self.peers.len() as u64 + 1
    }

    /// `count` messages from the hub, each encrypted once per member; the sampled
    /// members decrypt theirs.
    fn pairwise_messages(
        &mut self,
        count: usize,
        payload: usize,
        rng: &mut StdRng,
    ) -> Result<Cost> {
        let plaintext = vec![0x42u8; payload];
        let mut sender = Samples::default();
        let mut receiver = Samples::default();
        let mut bytes = 0u64;
        let count = count.max(1);
        for _ in 0..count {
            let t = Instant::now();
            let mut out = Vec::with_capacity(self.peers.len());
            for p in self.peers.iter_mut() {
                out.push(p.hub_side.encrypt(&plaintext, rng)?);
            }
            sender.push(t.elapsed());
            bytes += out.iter().map(|m| m.bytes.len() as u64).sum::<u64>();
            for &i in &self.sampled {
                let (Some(p), Some(m)) = (self.peers.get_mut(i), out.get(i)) else {
                    bail!("bug: no member {i}");
                };
                ensure!(
                    m.kind == MessageKind::Whisper,
                    "bug: session not established"
                );
                let t = Instant::now();
                let got = p.peer_side.decrypt(m.kind, &m.bytes)?;
                receiver.push(t.elapsed());
                ensure!(got.len() == payload, "bug: wrong plaintext");
            }
        }
        let sent = bytes / count as u64;
        Ok(Cost {
            sent,
            delivered: sent,
            sender_us: sender.mean_us(),
            senders: 1,
            receiver_us: receiver.mean_us(),
            receivers: self.n() - 1,
            newcomer_us: 0.0,
        })
    }

    /// Everyone this newcomer must reach: the hub and every peer.
    fn everyone(&self) -> impl Iterator<Item = &Member> {
        std::iter::once(&self.hub).chain(self.peers.iter().map(|p| &p.member))
    }

    /// The members whose receiving is timed, as indices into [`Self::everyone`]
    /// (the hub is 0).
    fn sampled_everyone(&self) -> Vec<usize> {
        self.sampled.iter().map(|i| i + 1).collect()
    }

    /// A newcomer fetches every member's bundle and sends each a first message;
    /// each member accepts it.
    fn pairwise_add(&mut self, reps: usize, rng: &mut StdRng) -> Result<Cost> {
        let notice = vec![0x4Eu8; JOIN_NOTICE];
        let bundles: Vec<PreKeyBundle> = self.everyone().map(Member::bundle).collect();
        let fetched: u64 = bundles.iter().map(bundle_len).sum();
        let sampled = self.sampled_everyone();
        let mut sender = Samples::default();
        let mut receiver = Samples::default();
        let mut sent = 0u64;
        let reps = reps.max(1);
        for _ in 0..reps {
            let newcomer = Member::new(rng);
            let t = Instant::now();
            let mut out = Vec::with_capacity(bundles.len());
            for b in &bundles {
                out.push(newcomer.initiate(b, &notice, rng)?.1);
            }
            sender.push(t.elapsed());
            sent = out.iter().map(|m| m.bytes.len() as u64).sum();
            let members: Vec<&Member> = self.everyone().collect();
            for &i in &sampled {
                let (Some(m), Some(first)) = (members.get(i), out.get(i)) else {
                    bail!("bug: no member {i}");
                };
                let t = Instant::now();
                let (_, got) = m.accept(&first.bytes, rng)?;
                receiver.push(t.elapsed());
                ensure!(got == notice, "bug: wrong notice");
            }
        }
        Ok(Cost {
            sent,
            delivered: fetched + sent,
            sender_us: sender.median_us(),
            senders: 1,
            receiver_us: receiver.median_us(),
            receivers: self.n(),
            newcomer_us: 0.0,
        })
    }

    /// `count` messages from the hub, each encrypted once with its sender key; the
    /// sampled members decrypt them.
    fn sender_key_messages(
        &mut self,
        count: usize,
        payload: usize,
        rng: &mut StdRng,
    ) -> Result<Cost> {
        let plaintext = vec![0x42u8; payload];
        let mut sender = Samples::default();
        let mut receiver = Samples::default();
        let mut bytes = 0u64;
        let count = count.max(1);
        let own = self.hub.own_key.as_mut().context("bug: no sender key")?;
        for _ in 0..count {
            let t = Instant::now();
            let m = own.encrypt(&plaintext, rng)?;
            sender.push(t.elapsed());
            bytes += m.len() as u64;
            for &i in &self.sampled {
                let p = self.peers.get_mut(i).context("bug: no member")?;
                let key = p.hub_key.as_mut().context("bug: no sender key")?;
                let t = Instant::now();
                let got = key.decrypt(&m)?;
                receiver.push(t.elapsed());
                ensure!(got.len() == payload, "bug: wrong plaintext");
            }
        }
        let sent = bytes / count as u64;
        Ok(Cost {
            sent,
            delivered: sent * (self.n() - 1),
            sender_us: sender.mean_us(),
            senders: 1,
            receiver_us: receiver.mean_us(),
            receivers: self.n() - 1,
            newcomer_us: 0.0,
        })
    }

    /// A newcomer makes its sender key, fetches every member's bundle and sends
    /// each its distribution message in a first message; every member accepts it
    /// and answers with its own distribution message, which the newcomer
    /// decrypts and installs.
    fn sender_key_add(&mut self, reps: usize, rng: &mut StdRng) -> Result<Cost> {
        let bundles: Vec<PreKeyBundle> = self.everyone().map(Member::bundle).collect();
        let fetched: u64 = bundles.iter().map(bundle_len).sum();
        let sampled = self.sampled_everyone();
        let mut newcomer_time = Samples::default();
        let mut receiver = Samples::default();
        let mut sent = 0u64;
        let mut replies_len = 0u64;
        let reps = reps.max(1);
        for _ in 0..reps {
            let newcomer = Member::new(rng);
            // The newcomer: its key, a session with and a message to everyone.
            let t = Instant::now();
            let (_own, distribution) = SenderKeyRecord::create(DISTRIBUTION_ID, rng);
            let mut sessions = Vec::with_capacity(bundles.len());
            let mut out = Vec::with_capacity(bundles.len());
            for b in &bundles {
                let (s, m) = newcomer.initiate(b, &distribution, rng)?;
                sessions.push(s);
                out.push(m);
            }
            let mut this = t.elapsed();
            sent = out.iter().map(|m| m.bytes.len() as u64).sum();
            // Every member: accept, install the newcomer's key, answer with its own.
            let mut replies = Vec::with_capacity(out.len());
            for (i, (m, first)) in self.everyone().zip(&out).enumerate() {
                let t = Instant::now();
                let (mut s, got) = m.accept(&first.bytes, rng)?;
                let _theirs = SenderKeyRecord::from_distribution_message(&got)?;
                let reply = s.encrypt(&m.own_key()?.distribution_message()?, rng)?;
                if sampled.contains(&i) {
                    receiver.push(t.elapsed());
                }
                replies.push(reply);
            }
            replies_len = replies.iter().map(|m| m.bytes.len() as u64).sum();
            // The newcomer again: every member's key.
            let t = Instant::now();
            for (s, reply) in sessions.iter_mut().zip(&replies) {
                let d = s.decrypt(reply.kind, &reply.bytes)?;
                let _key = SenderKeyRecord::from_distribution_message(&d)?;
            }
            this += t.elapsed();
            newcomer_time.push(this);
        }
        Ok(Cost {
            sent,
            delivered: fetched + sent + replies_len,
            sender_us: newcomer_time.median_us(),
            senders: 1,
            receiver_us: receiver.median_us(),
            receivers: self.n(),
            newcomer_us: 0.0,
        })
    }

    /// One member leaves; every remaining member makes a new sender key and sends
    /// its distribution message to every other remaining member. Timed for the
    /// hub: its sending (new key, one encryption per other member) and its
    /// receiving (decrypting and installing everyone else's new key).
    fn sender_key_remove(&mut self, reps: usize, rng: &mut StdRng) -> Result<Cost> {
        // The last peer leaves; the others stay.
        let others = self.peers.len().saturating_sub(1);
        if others == 0 {
            // Whoever is left is alone: there is nobody to send a new key to.
            return Ok(Cost::default());
        }
        let remaining = others as u64 + 1;
        let mut send = Samples::default();
        let mut recv = Samples::default();
        let mut sent = 0u64;
        let reps = reps.max(1);
        for _ in 0..reps {
            let staying = self.peers.get(..others).context("bug: peers")?;
            // What the others send the hub (made untimed, on copies).
            let mut incoming = Vec::with_capacity(others);
            for p in staying {
                let (_key, d) = SenderKeyRecord::create(DISTRIBUTION_ID, rng);
                let mut s = p.peer_side.clone();
                incoming.push(s.encrypt(&d, rng)?);
            }
            let mut sessions: Vec<Session> = staying.iter().map(|p| p.hub_side.clone()).collect();
            let mut keys: Vec<SenderKeyRecord> = staying
                .iter()
                .map(|p| p.their_key.clone().context("bug: no sender key"))
                .collect::<Result<_>>()?;

            let t = Instant::now();
            let (_own, distribution) = SenderKeyRecord::create(DISTRIBUTION_ID, rng);
            let mut out_bytes = 0u64;
            for s in sessions.iter_mut() {
                out_bytes += s.encrypt(&distribution, rng)?.bytes.len() as u64;
            }
            send.push(t.elapsed());
            sent = out_bytes;

            let t = Instant::now();
            for ((s, key), m) in sessions.iter_mut().zip(keys.iter_mut()).zip(&incoming) {
                let d = s.decrypt(m.kind, &m.bytes)?;
                key.process_distribution_message(&d)?;
            }
            recv.push(t.elapsed());
        }
        Ok(Cost {
            sent,
            delivered: sent * remaining,
            sender_us: send.median_us(),
            senders: remaining,
            receiver_us: recv.median_us(),
            receivers: remaining,
            newcomer_us: 0.0,
        })
    }
}
