//! Fuzzes `FrankAAD::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::FrankAAD;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = FrankAAD::decode(data) {
        let bytes = message.encode().expect("a decoded FrankAAD re-encodes");
        let again = FrankAAD::decode(&bytes).expect("a re-encoded FrankAAD decodes");
        assert_eq!(again, message);
    }
});
