//! Fuzzes `UpdateRequest::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::UpdateRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = UpdateRequest::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded UpdateRequest re-encodes");
        let again = UpdateRequest::decode(&bytes).expect("a re-encoded UpdateRequest decodes");
        assert_eq!(again, message);
    }
});
