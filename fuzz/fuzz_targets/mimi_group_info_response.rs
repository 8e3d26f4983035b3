//! Fuzzes `GroupInfoResponse::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::GroupInfoResponse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = GroupInfoResponse::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded GroupInfoResponse re-encodes");
        let again =
            GroupInfoResponse::decode(&bytes).expect("a re-encoded GroupInfoResponse decodes");
        assert_eq!(again, message);
    }
});
