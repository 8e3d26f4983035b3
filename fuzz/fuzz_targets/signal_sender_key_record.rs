//! Fuzzes reading a stored sender key record (storage may be corrupt): it may fail,
//! never panic; an accepted record stores to a form that reads back identically, and
//! our own record's distribution message is accepted by another member.
#![no_main]
use entente_core::signal::sender_keys::SenderKeyRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = SenderKeyRecord::from_bytes(data) {
        let stored = record.to_bytes();
        let again = SenderKeyRecord::from_bytes(&stored).expect("a record we stored reads back");
        assert_eq!(*again.to_bytes(), *stored);
        if record.is_own() {
            let distribution = record.distribution_message().expect("our own record");
            let peer = SenderKeyRecord::from_distribution_message(&distribution)
                .expect("our distribution message");
            assert_eq!(peer.distribution_id(), record.distribution_id());
        }
    }
});
