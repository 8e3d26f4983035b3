//! Fuzzes `UpdateRoomResponse::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::UpdateRoomResponse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = UpdateRoomResponse::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded UpdateRoomResponse re-encodes");
        let again =
            UpdateRoomResponse::decode(&bytes).expect("a re-encoded UpdateRoomResponse decodes");
        assert_eq!(again, message);
    }
});
