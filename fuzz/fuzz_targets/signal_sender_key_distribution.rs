//! Fuzzes decoding a libsignal `SenderKeyDistributionMessage` (any group member sends
//! one): it may fail, never panic; an accepted one makes a record that stores and
//! reads back unchanged, and processing it again keeps a single chain.
#![no_main]
use entente_core::signal::sender_keys::SenderKeyRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut record) = SenderKeyRecord::from_distribution_message(data) {
        assert!(!record.is_own());
        let stored = record.to_bytes();
        let restored = SenderKeyRecord::from_bytes(&stored).expect("a record we made reads back");
        assert_eq!(*restored.to_bytes(), *stored);
        record
            .process_distribution_message(data)
            .expect("the same distribution message again");
        assert_eq!(record.chain_ids().len(), 1);
        assert_eq!(
            *record.to_bytes(),
            *stored,
            "processing it again changes nothing"
        );
    }
});
