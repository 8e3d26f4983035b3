//! Fuzzes `ParticipantListData::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::ParticipantListData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = ParticipantListData::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded ParticipantListData re-encodes");
        let again =
            ParticipantListData::decode(&bytes).expect("a re-encoded ParticipantListData decodes");
        assert_eq!(again, message);
    }
});
