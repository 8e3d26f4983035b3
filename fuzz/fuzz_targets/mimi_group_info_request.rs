//! Fuzzes `GroupInfoRequest::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::GroupInfoRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = GroupInfoRequest::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded GroupInfoRequest re-encodes");
        let again =
            GroupInfoRequest::decode(&bytes).expect("a re-encoded GroupInfoRequest decodes");
        assert_eq!(again, message);
    }
});
