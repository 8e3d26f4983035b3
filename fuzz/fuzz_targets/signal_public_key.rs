//! Fuzzes the decoding of libsignal-form public keys (0x05 || u) and XEdDSA
//! verification on arbitrary keys, messages and signatures: neither may panic, and an
//! accepted key re-encodes to the input.
#![no_main]

use entente_core::signal::keys::PublicKey;
use entente_core::signal::xeddsa::xeddsa_verify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKey::decode(data) {
        assert_eq!(&key.encode()[..], data);
    }
    if data.len() >= 96 {
        let (u, rest) = data.split_at(32);
        let (sig, message) = rest.split_at(64);
        let u: [u8; 32] = u.try_into().expect("32 bytes");
        let sig: [u8; 64] = sig.try_into().expect("64 bytes");
        let _ = xeddsa_verify(&u, message, &sig);
    }
});
