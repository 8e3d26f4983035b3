//! Fuzzes the decoding of ML-KEM-1024 public keys, ciphertexts and stored key pairs
//! in libsignal's serialized form (key type byte first): none may panic, accepted
//! keys and ciphertexts re-encode to the input, and an accepted public key can be
//! encapsulated to.
#![no_main]

use entente_core::signal::pqxdh::{KemCiphertext, KemKeyPair, KemPublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = KemPublicKey::decode(data) {
        assert_eq!(key.encode(), data);
    }
    if let Ok(ciphertext) = KemCiphertext::decode(data) {
        assert_eq!(ciphertext.encode(), data);
    }
    if let Ok(pair) = KemKeyPair::from_bytes(data) {
        assert_eq!(&pair.to_bytes()[..], data);
    }
});
