//! Fuzzes `GroupInfoRatchetTreeTBE::decode`: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::GroupInfoRatchetTreeTBE;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = GroupInfoRatchetTreeTBE::decode(data) {
        let bytes = message
            .encode()
            .expect("a decoded GroupInfoRatchetTreeTBE re-encodes");
        let again = GroupInfoRatchetTreeTBE::decode(&bytes)
            .expect("a re-encoded GroupInfoRatchetTreeTBE decodes");
        assert_eq!(again, message);
    }
});
