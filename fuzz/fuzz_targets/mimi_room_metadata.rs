//! Fuzzes `RoomMetaData::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::RoomMetaData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = RoomMetaData::decode(data) {
        let bytes = message.encode().expect("a decoded RoomMetaData re-encodes");
        let again = RoomMetaData::decode(&bytes).expect("a re-encoded RoomMetaData decodes");
        assert_eq!(again, message);
    }
});
