//! Fuzzes `ParticipantListUpdate::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::ParticipantListUpdate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = ParticipantListUpdate::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded ParticipantListUpdate re-encodes");
        let again = ParticipantListUpdate::decode(&bytes)
            .expect("a re-encoded ParticipantListUpdate decodes");
        assert_eq!(again, message);
    }
});
