//! Fuzzes `ConsentEntry::decode` (the body of MIMI requestConsent and
//! updateConsent): it must never panic, and whatever it accepts must re-encode to
//! bytes that decode to the same value.
#![no_main]

use entente_wire::mimi::ConsentEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = ConsentEntry::decode(data) {
        let bytes = entry.encode().expect("a decoded ConsentEntry re-encodes");
        let again = ConsentEntry::decode(&bytes).expect("a re-encoded ConsentEntry decodes");
        assert_eq!(again, entry);
    }
});
