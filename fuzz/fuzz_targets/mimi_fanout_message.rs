//! Fuzzes `FanoutMessage::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::FanoutMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = FanoutMessage::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded FanoutMessage re-encodes");
        let again = FanoutMessage::decode(&bytes).expect("a re-encoded FanoutMessage decodes");
        assert_eq!(again, message);
    }
});
