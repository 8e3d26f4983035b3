//! Fuzzes `AbuseReport::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::AbuseReport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = AbuseReport::decode(data) {
        let bytes = message.encode().expect("a decoded AbuseReport re-encodes");
        let again = AbuseReport::decode(&bytes).expect("a re-encoded AbuseReport decodes");
        assert_eq!(again, message);
    }
});
