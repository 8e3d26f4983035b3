//! Fuzzes `RoomState::decode`, the room state every member reads out of the group
//! context: it must never panic, and whatever it accepts must re-encode (so it passes
//! `validate`) to bytes that decode to the same value.
#![no_main]

use entente_core::room::RoomState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = RoomState::decode(data) {
        let bytes = state.encode().expect("a decoded RoomState re-encodes");
        let again = RoomState::decode(&bytes).expect("a re-encoded RoomState decodes");
        assert_eq!(again, state);
    }
});
