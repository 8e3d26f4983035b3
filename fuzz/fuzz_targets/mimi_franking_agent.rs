//! Fuzzes `FrankingAgentData::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::FrankingAgentData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = FrankingAgentData::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded FrankingAgentData re-encodes");
        let again =
            FrankingAgentData::decode(&bytes).expect("a re-encoded FrankingAgentData decodes");
        assert_eq!(again, message);
    }
});
