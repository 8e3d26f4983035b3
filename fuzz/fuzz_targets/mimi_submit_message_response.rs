//! Fuzzes `SubmitMessageResponse::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::SubmitMessageResponse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = SubmitMessageResponse::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded SubmitMessageResponse re-encodes");
        let again = SubmitMessageResponse::decode(&bytes)
            .expect("a re-encoded SubmitMessageResponse decodes");
        assert_eq!(again, message);
    }
});
