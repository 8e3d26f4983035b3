//! Fuzzes `KeyMaterialResponse::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::KeyMaterialResponse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = KeyMaterialResponse::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded KeyMaterialResponse re-encodes");
        let again =
            KeyMaterialResponse::decode(&bytes).expect("a re-encoded KeyMaterialResponse decodes");
        assert_eq!(again, message);
    }
});
