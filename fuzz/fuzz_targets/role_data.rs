//! Fuzzes `RoleData::decode` (the room policy's roles list): it must never panic, and
//! whatever it accepts must re-encode to bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::RoleData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(roles) = RoleData::decode(data) {
        let bytes = roles.encode().expect("a decoded RoleData re-encodes");
        let again = RoleData::decode(&bytes).expect("a re-encoded RoleData decodes");
        assert_eq!(again, roles);
    }
});
