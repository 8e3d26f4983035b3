//! Fuzzes `IdentifierRequest::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::IdentifierRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = IdentifierRequest::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded IdentifierRequest re-encodes");
        let again =
            IdentifierRequest::decode(&bytes).expect("a re-encoded IdentifierRequest decodes");
        assert_eq!(again, message);
    }
});
