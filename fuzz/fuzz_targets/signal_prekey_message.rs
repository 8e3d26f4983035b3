//! Fuzzes the decoding of libsignal PreKeySignalMessages (with the embedded
//! SignalMessage and, for version 4, the ML-KEM ciphertext), and `peek_prekey_message`,
//! which must agree with it. Neither may panic.
#![no_main]

use entente_core::signal::proto::PreKeySignalMessage;
use entente_core::signal::session::peek_prekey_message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = PreKeySignalMessage::decode(data);
    let peeked = peek_prekey_message(data);
    assert_eq!(decoded.is_ok(), peeked.is_ok());
    if let (Ok(message), Ok(info)) = (decoded, peeked) {
        assert_eq!(message.version(), info.version);
        assert_eq!(message.message().version(), message.version());
        assert_eq!(message.kyber_pre_key_id().is_some(), message.version() == 4);
        assert_eq!(message.kyber_pre_key_id(), info.kyber_prekey_id);
        assert_eq!(*message.base_key(), info.base_key);
    }
});
