//! Interop with an SFrame implementation we did not write: the `sframe` crate
//! (TobTheRock/sframe-rs, RustCrypto backend). Frames we encrypt open there and frames
//! it encrypts open here, for every suite, several KIDs and counters, with and without
//! metadata; and our MLS KIDs equal its `MlsKeyId`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use entente_core::sframe::{CipherSuite, KidLayout, ReceiverContext, SendKey};
use sframe::frame::{EncryptedFrameView, MediaFrameView, SingleUseCounter};
use sframe::key::{DecryptionKey, EncryptionKey};
use sframe::mls::{MlsKeyId, MlsKeyIdBitRange};

fn theirs(suite: CipherSuite) -> sframe::CipherSuite {
    match suite {
        CipherSuite::AesCtrHmac80 => sframe::CipherSuite::AesCtr128HmacSha256_80,
        CipherSuite::AesCtrHmac64 => sframe::CipherSuite::AesCtr128HmacSha256_64,
        CipherSuite::AesCtrHmac32 => sframe::CipherSuite::AesCtr128HmacSha256_32,
        CipherSuite::Aes128Gcm => sframe::CipherSuite::AesGcm128Sha256,
        CipherSuite::Aes256Gcm => sframe::CipherSuite::AesGcm256Sha512,
    }
}

const KIDS: [u64; 6] = [0, 7, 8, 0x123, 0xdead_beef, u64::MAX];
const CTRS: [u64; 6] = [0, 1, 7, 0x4567, 1 << 40, u64::MAX];

fn plaintext(len: usize, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(seed) as u8)
        .collect()
}

#[test]
fn our_frames_open_in_the_sframe_crate() {
    let mut checked = 0;
    for suite in CipherSuite::ALL {
        let base_key = plaintext(suite.key_len(), 1);
        for (i, &kid) in KIDS.iter().enumerate() {
            let key = DecryptionKey::derive_from(theirs(suite), kid, &base_key).unwrap();
            for (j, &ctr) in CTRS.iter().enumerate() {
                let metadata = if j % 2 == 0 {
                    &b""[..]
                } else {
                    &b"rtp-ext"[..]
                };
                for len in [0, 1, 120, 1200] {
                    let pt = plaintext(len, (i * 10 + j) as u64);
                    let frame = SendKey::starting_at(suite, kid, &base_key, ctr)
                        .encrypt(metadata, &pt)
                        .unwrap();
                    let view = EncryptedFrameView::try_with_meta_data(&frame, metadata).unwrap();
                    assert_eq!(view.header().key_id(), kid);
                    assert_eq!(view.header().counter(), ctr);
                    let opened = view.decrypt(&key).unwrap();
                    assert_eq!(
                        opened.payload(),
                        pt.as_slice(),
                        "{suite:?} kid {kid} ctr {ctr}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 5 * KIDS.len() * CTRS.len() * 4);
}

#[test]
fn sframe_crate_frames_open_here() {
    let mut checked = 0;
    for suite in CipherSuite::ALL {
        let base_key = plaintext(suite.key_len(), 2);
        for (i, &kid) in KIDS.iter().enumerate() {
            let key = EncryptionKey::derive_from(theirs(suite), kid, &base_key).unwrap();
            let mut ours = ReceiverContext::new(suite);
            ours.add_key(kid, &base_key);
            for (j, &ctr) in CTRS.iter().enumerate() {
                let metadata = if j % 2 == 0 { &b"meta"[..] } else { &b""[..] };
                for len in [0, 1, 120, 1200] {
                    let pt = plaintext(len, (i * 10 + j) as u64);
                    let mut counter = SingleUseCounter::new(ctr);
                    let media =
                        MediaFrameView::try_with_meta_data(&mut counter, &pt, metadata).unwrap();
                    let encrypted = media.encrypt(&key).unwrap();
                    let frame = encrypted.sframe_cipher_text();
                    // Byte for byte what we produce for the same inputs.
                    let ours_frame = SendKey::starting_at(suite, kid, &base_key, ctr)
                        .encrypt(metadata, &pt)
                        .unwrap();
                    assert_eq!(frame, ours_frame.as_slice());
                    let (header, opened) = ours.decrypt_with_header(frame, metadata).unwrap();
                    assert_eq!((header.kid, header.ctr), (kid, ctr));
                    assert_eq!(opened, pt, "{suite:?} kid {kid} ctr {ctr}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 5 * KIDS.len() * CTRS.len() * 4);
}

/// RFC 9605 section 5.2 KIDs: ours and the crate's `MlsKeyId` agree, including the
/// example of Figure 9 (E = 4, S = 6).
#[test]
fn mls_kids_match_the_sframe_crate() {
    let layout = KidLayout::new(4, 6).unwrap();
    for (epoch, index, context, kid) in [
        (14, 3, 0, 0x3e),
        (14, 7, 0, 0x7e),
        (14, 20, 0, 0x14e),
        (15, 3, 0, 0x3f),
        (15, 5, 0, 0x5f),
        (16, 2, 2, 0x820),
        (16, 2, 3, 0xc20),
        (17, 33, 0, 0x211),
        (17, 51, 0, 0x331),
    ] {
        assert_eq!(layout.kid(context, index, epoch).unwrap(), kid);
        let split = layout.split(kid);
        assert_eq!(
            (split.context, split.index, split.epoch_low),
            (context, index, epoch % 16)
        );
    }
    for (e, s) in [(4, 6), (8, 16), (16, 16), (1, 0), (32, 31)] {
        let layout = KidLayout::new(e, s).unwrap();
        let range = MlsKeyIdBitRange::new(e, s);
        for epoch in [0u64, 1, 255, 256, 65_537, u64::MAX] {
            for index in [0u32, 1, 5, 63] {
                if s < 32 && u64::from(index) >= 1 << s {
                    continue;
                }
                for context in [0u64, 1, 3] {
                    let ours = layout.kid(context, index, epoch);
                    match MlsKeyId::try_new(context, epoch, index, range) {
                        Ok(theirs) => assert_eq!(ours.unwrap(), u64::from(theirs)),
                        // Both refuse a context ID too wide for its field.
                        Err(_) => assert!(ours.is_err(), "{e} {s} {context}"),
                    }
                }
            }
        }
    }
}
