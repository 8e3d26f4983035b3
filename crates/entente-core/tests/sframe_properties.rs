//! SFrame properties: round trips, tampering, header decoding of arbitrary bytes,
//! counter exhaustion, and the MLS key schedule across epochs and membership changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use entente_core::sframe::{
    CipherSuite, Header, KidLayout, MlsSframe, ReceiverContext, SendKey, SframeError,
};
use proptest::prelude::*;

fn any_suite() -> impl Strategy<Value = CipherSuite> {
    prop::sample::select(CipherSuite::ALL.to_vec())
}

proptest! {
    #[test]
    fn frames_round_trip(
        suite in any_suite(),
        kid in any::<u64>(),
        ctr in any::<u64>(),
        base_key in prop::collection::vec(any::<u8>(), 1..64),
        metadata in prop::collection::vec(any::<u8>(), 0..32),
        pt in prop::collection::vec(any::<u8>(), 0..1500),
    ) {
        let frame = SendKey::starting_at(suite, kid, &base_key, ctr).encrypt(&metadata, &pt).unwrap();
        prop_assert_eq!(frame.len(), Header { kid, ctr }.encoded_len() + pt.len() + suite.tag_len());
        let mut rx = ReceiverContext::new(suite);
        rx.add_key(kid, &base_key);
        let (header, opened) = rx.decrypt_with_header(&frame, &metadata).unwrap();
        prop_assert_eq!(header, Header { kid, ctr });
        prop_assert_eq!(opened, pt);
    }

    /// Flipping any one bit of a frame (header, ciphertext or tag) or of its metadata
    /// makes decryption fail.
    #[test]
    fn any_bit_flip_fails(
        suite in any_suite(),
        kid in 0u64..1000,
        ctr in any::<u64>(),
        metadata in prop::collection::vec(any::<u8>(), 1..16),
        pt in prop::collection::vec(any::<u8>(), 0..200),
        bit in any::<prop::sample::Index>(),
        in_metadata in any::<bool>(),
    ) {
        let base_key = [9u8; 32];
        let frame = SendKey::starting_at(suite, kid, &base_key, ctr).encrypt(&metadata, &pt).unwrap();
        let mut rx = ReceiverContext::new(suite);
        rx.add_key(kid, &base_key);
        let (mut frame, mut metadata) = (frame, metadata);
        let target = if in_metadata { &mut metadata } else { &mut frame };
        let i = bit.index(target.len() * 8);
        target[i / 8] ^= 1 << (i % 8);
        prop_assert!(rx.decrypt(&frame, &metadata).is_err());
    }

    /// Header decoding never panics; what it accepts is canonical: re-encoding gives the
    /// bytes it consumed.
    #[test]
    fn header_decode_total(bytes in prop::collection::vec(any::<u8>(), 0..24)) {
        if let Ok((header, len)) = Header::decode(&bytes) {
            prop_assert_eq!(header.encode(), bytes[..len].to_vec());
        }
    }

    #[test]
    fn garbage_never_decrypts(suite in any_suite(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut rx = ReceiverContext::new(suite);
        for kid in 0..8 {
            rx.add_key(kid, b"key");
        }
        prop_assert!(rx.decrypt(&bytes, b"").is_err());
    }
}

#[test]
fn counters_never_repeat_and_exhaust() {
    let mut key = SendKey::new(CipherSuite::Aes128Gcm, 3, b"base");
    let mut seen = std::collections::HashSet::new();
    for expected in 0..100u64 {
        let frame = key.encrypt(b"", b"x").unwrap();
        let (header, _) = Header::decode(&frame).unwrap();
        assert_eq!(
            header,
            Header {
                kid: 3,
                ctr: expected
            }
        );
        assert!(seen.insert(header.ctr));
    }
    let mut last = SendKey::starting_at(CipherSuite::Aes128Gcm, 3, b"base", u64::MAX - 1);
    assert!(last.encrypt(b"", b"x").is_ok());
    assert!(last.encrypt(b"", b"x").is_ok());
    assert_eq!(last.next_counter(), None);
    assert_eq!(
        last.encrypt(b"", b"x"),
        Err(SframeError::CounterExhausted { kid: 3 })
    );
}

fn exporter_output(suite: CipherSuite, epoch: u64) -> Vec<u8> {
    // Stands in for MLS-Exporter("SFrame 1.0 Base Key", "", AEAD.Nk) of `epoch`.
    (0..suite.key_len())
        .map(|i| (i as u64 * 7 + epoch * 13) as u8)
        .collect()
}

/// Members of one epoch derive matching keys: everyone opens everyone else's frames,
/// and learns who sent them in which epoch.
#[test]
fn mls_members_derive_matching_keys() {
    for suite in CipherSuite::ALL {
        let members = [0u32, 1, 4];
        let secret = exporter_output(suite, 9);
        let mut parts: Vec<MlsSframe> = members
            .iter()
            .map(|&me| {
                let mut p = MlsSframe::new(suite, 4).unwrap();
                p.set_epoch(9, &secret, me, &members).unwrap();
                p
            })
            .collect();
        for s in 0..parts.len() {
            let frame = parts[s].encrypt(b"audio", b"meta").unwrap();
            // KID = (index << E) + epoch % 16 with S = 3 for leaves up to 4.
            let (header, _) = Header::decode(&frame).unwrap();
            assert_eq!(header.kid, (u64::from(members[s]) << 4) | 9);
            for (r, part) in parts.iter_mut().enumerate() {
                let got = part.decrypt(&frame, b"meta");
                if r == s {
                    // Our own KID is a send key, never a receive key.
                    assert_eq!(got, Err(SframeError::UnknownKid { kid: header.kid }));
                } else {
                    let got = got.unwrap();
                    assert_eq!((got.sender, got.epoch), (members[s], 9));
                    assert_eq!(got.plaintext, b"audio");
                }
            }
        }
    }
}

/// After a member is removed, the others move to an epoch whose exporter secret the
/// removed member does not have: it cannot open their frames, whether it stays in the
/// old epoch or guesses a secret for the new one. Old-epoch frames still open during the
/// grace period, and not after `retire_epoch`.
#[test]
fn removed_member_cannot_decrypt_the_new_epoch() {
    let suite = CipherSuite::Aes128Gcm;
    let old = exporter_output(suite, 1);
    let new = exporter_output(suite, 2);
    let mut alice = MlsSframe::new(suite, 8).unwrap();
    let mut bob = MlsSframe::new(suite, 8).unwrap();
    let mut carol = MlsSframe::new(suite, 8).unwrap();
    alice.set_epoch(1, &old, 0, &[0, 1, 2]).unwrap();
    bob.set_epoch(1, &old, 1, &[0, 1, 2]).unwrap();
    carol.set_epoch(1, &old, 2, &[0, 1, 2]).unwrap();
    let before = alice.encrypt(b"epoch 1", b"").unwrap();
    assert_eq!(carol.decrypt(&before, b"").unwrap().plaintext, b"epoch 1");

    // Carol is removed; alice and bob enter epoch 2.
    alice.set_epoch(2, &new, 0, &[0, 1]).unwrap();
    bob.set_epoch(2, &new, 1, &[0, 1]).unwrap();
    let after = alice.encrypt(b"epoch 2", b"").unwrap();
    let kid = Header::decode(&after).unwrap().0.kid;
    assert_eq!(bob.decrypt(&after, b"").unwrap().epoch, 2);
    assert_eq!(
        carol.decrypt(&after, b""),
        Err(SframeError::UnknownKid { kid })
    );
    // Even with the right KID layout, a wrong secret gives nothing.
    carol.set_epoch(2, &old, 2, &[0, 1, 2]).unwrap();
    assert!(carol.decrypt(&after, b"").is_err());

    // Grace period: bob still opens alice's frame from epoch 1 ...
    assert_eq!(bob.decrypt(&before, b"").unwrap().epoch, 1);
    assert_eq!(bob.epochs(), vec![1, 2]);
    // ... until he retires it.
    assert!(bob.retire_epoch(1));
    assert!(!bob.retire_epoch(1));
    assert_eq!(
        bob.decrypt(&before, b""),
        Err(SframeError::UnknownKid {
            kid: Header::decode(&before).unwrap().0.kid
        })
    );
}

#[test]
fn epoch_bits_wrap_replaces_the_old_epoch() {
    let suite = CipherSuite::AesCtrHmac80;
    let mut alice = MlsSframe::new(suite, 2).unwrap();
    let mut bob = MlsSframe::new(suite, 2).unwrap();
    alice
        .set_epoch(1, &exporter_output(suite, 1), 0, &[0, 1])
        .unwrap();
    bob.set_epoch(1, &exporter_output(suite, 1), 1, &[0, 1])
        .unwrap();
    let e1 = alice.encrypt(b"one", b"").unwrap();
    for epoch in [2, 3, 4] {
        bob.set_epoch(epoch, &exporter_output(suite, epoch), 1, &[0, 1])
            .unwrap();
    }
    assert_eq!(bob.decrypt(&e1, b"").unwrap().epoch, 1);
    // Epoch 5 has the low bits of epoch 1 (E = 2): epoch 1 must go.
    bob.set_epoch(5, &exporter_output(suite, 5), 1, &[0, 1])
        .unwrap();
    assert_eq!(bob.epochs(), vec![2, 3, 4, 5]);
    assert!(bob.decrypt(&e1, b"").is_err());
    alice
        .set_epoch(5, &exporter_output(suite, 5), 0, &[0, 1])
        .unwrap();
    let e5 = alice.encrypt(b"five", b"").unwrap();
    assert_eq!(bob.decrypt(&e5, b"").unwrap().epoch, 5);
}

#[test]
fn mls_misuse_is_refused() {
    let suite = CipherSuite::Aes256Gcm;
    assert!(matches!(
        MlsSframe::new(suite, 33),
        Err(SframeError::KidLayout { .. })
    ));
    let mut p = MlsSframe::new(suite, 8).unwrap();
    assert_eq!(p.encrypt(b"x", b""), Err(SframeError::NoEpoch));
    assert_eq!(
        p.set_epoch(1, &[0u8; 16], 0, &[0, 1]),
        Err(SframeError::BaseKeyLength {
            expected: 32,
            got: 16
        })
    );
    p.set_epoch(5, &exporter_output(suite, 5), 0, &[0, 1])
        .unwrap();
    assert_eq!(
        p.set_epoch(5, &exporter_output(suite, 5), 0, &[0, 1]),
        Err(SframeError::StaleEpoch { current: 5, got: 5 })
    );
    assert_eq!(p.current_epoch(), Some(5));
    assert!(KidLayout::new(40, 30).is_err());
    assert!(KidLayout::new(4, 33).is_err());
    let layout = KidLayout::new(4, 6).unwrap();
    assert!(matches!(
        layout.kid(0, 64, 1),
        Err(SframeError::KidFieldTooLarge { field: "index", .. })
    ));
    assert!(matches!(
        layout.kid(1 << 54, 1, 1),
        Err(SframeError::KidFieldTooLarge {
            field: "context",
            ..
        })
    ));
}

/// Frames of non-members and of other contexts: a leaf outside the epoch's roster is
/// refused; a member's frame under another context ID opens.
#[test]
fn kids_outside_the_roster() {
    let suite = CipherSuite::Aes128Gcm;
    let secret = exporter_output(suite, 7);
    let mut bob = MlsSframe::new(suite, 4).unwrap();
    bob.set_epoch(7, &secret, 1, &[0, 1, 2]).unwrap();
    let layout = KidLayout::for_group(4, 3).unwrap();
    assert_eq!(layout.index_bits(), 2);

    let stranger = layout.kid(0, 3, 7).unwrap();
    let frame = SendKey::new(suite, stranger, &secret)
        .encrypt(b"", b"hi")
        .unwrap();
    assert_eq!(
        bob.decrypt(&frame, b""),
        Err(SframeError::UnknownKid { kid: stranger })
    );

    let second_stream = layout.kid(5, 2, 7).unwrap();
    let frame = SendKey::new(suite, second_stream, &secret)
        .encrypt(b"", b"camera")
        .unwrap();
    let opened = bob.decrypt(&frame, b"").unwrap();
    assert_eq!((opened.sender, opened.epoch), (2, 7));
    assert_eq!(opened.plaintext, b"camera");
}

#[test]
fn index_bits_follow_the_group_size() {
    for (leaves, bits) in [
        (0, 0),
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 3),
        (64, 6),
        (65, 7),
    ] {
        assert_eq!(
            KidLayout::for_group(4, leaves).unwrap().index_bits(),
            bits,
            "{leaves}"
        );
    }
}
