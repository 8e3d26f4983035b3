//! Fuzzes the decoding of libsignal SignalMessages (version byte, protobuf, 8-byte
//! MAC): it may refuse, never panic, and what it accepts keeps its parts in place.
#![no_main]

use entente_core::signal::proto::SignalMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = SignalMessage::decode(data) {
        assert_eq!(message.serialized(), data);
        assert!(matches!(message.version(), 3 | 4));
        assert_eq!(data[0] >> 4, message.version());
        assert_eq!(message.ratchet_key().encode().len(), 33);
    }
});
