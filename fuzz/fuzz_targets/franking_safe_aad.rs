//! Fuzzes `SafeAad::decode` and `franking_tag_in_aad` (the MLS AAD of an application
//! message, which the hub reads from every submission): they must never panic, and
//! whatever decodes must re-encode to bytes that decode to the same value.
#![no_main]

use entente_core::franking::{SafeAad, franking_tag_in_aad};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = franking_tag_in_aad(data);
    if let Ok(aad) = SafeAad::decode(data) {
        let bytes = aad.encode().expect("a decoded SafeAad re-encodes");
        let again = SafeAad::decode(&bytes).expect("a re-encoded SafeAad decodes");
        assert_eq!(again, aad);
    }
});
