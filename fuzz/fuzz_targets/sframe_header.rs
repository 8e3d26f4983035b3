//! Fuzzes SFrame (RFC 9605) parsing and decryption of frames from the network: header
//! decoding, `ReceiverContext::decrypt` and `MlsSframe::decrypt` with fixed keys must
//! never panic, and what the header decoder accepts re-encodes to the same bytes.
//!
//! Input layout: `suite(1) metadata_len(1) metadata frame`.
#![no_main]

use entente_core::sframe::{CipherSuite, Header, MlsSframe, ReceiverContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((&metadata_len, rest)) = rest.split_first() else {
        return;
    };
    let (metadata, frame) = rest.split_at(usize::from(metadata_len).min(rest.len()));
    let suite = CipherSuite::ALL[usize::from(selector) % CipherSuite::ALL.len()];

    if let Ok((header, len)) = Header::decode(frame) {
        assert!(len <= frame.len());
        assert_eq!(header.encode(), &frame[..len], "canonical headers only");
        assert_eq!(header.encoded_len(), len);
    }

    let base_key = vec![0x5a; suite.key_len()];
    let mut receiver = ReceiverContext::new(suite);
    for kid in [0, 1, 7, 8, 0x123, u64::MAX] {
        receiver.add_key(kid, &base_key);
    }
    let _ = receiver.decrypt(frame, metadata);

    let mut call = MlsSframe::new(suite, 4).expect("4 epoch bits fit");
    call.set_epoch(3, &base_key, 0, &[0, 1, 2, 5])
        .expect("a valid epoch");
    let _ = call.decrypt(frame, metadata);
});
