//! Fuzzes `SubmitMessageRequest::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::SubmitMessageRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = SubmitMessageRequest::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded SubmitMessageRequest re-encodes");
        let again = SubmitMessageRequest::decode(&bytes)
            .expect("a re-encoded SubmitMessageRequest decodes");
        assert_eq!(again, message);
    }
});
