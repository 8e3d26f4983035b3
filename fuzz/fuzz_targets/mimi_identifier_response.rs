//! Fuzzes `IdentifierResponse::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::IdentifierResponse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = IdentifierResponse::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded IdentifierResponse re-encodes");
        let again =
            IdentifierResponse::decode(&bytes).expect("a re-encoded IdentifierResponse decodes");
        assert_eq!(again, message);
    }
});
