//! Fuzzes `KeyMaterialRequest::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::KeyMaterialRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = KeyMaterialRequest::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded KeyMaterialRequest re-encodes");
        let again =
            KeyMaterialRequest::decode(&bytes).expect("a re-encoded KeyMaterialRequest decodes");
        assert_eq!(again, message);
    }
});
