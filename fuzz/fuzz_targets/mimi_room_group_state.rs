//! Fuzzes `RoomGroupState::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::RoomGroupState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = RoomGroupState::decode(data) {
        let bytes = message.encode().expect("a decoded RoomGroupState re-encodes");
        let again = RoomGroupState::decode(&bytes).expect("a re-encoded RoomGroupState decodes");
        assert_eq!(again, message);
    }
});
