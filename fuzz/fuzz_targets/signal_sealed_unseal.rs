//! Fuzzes unsealing arbitrary bytes as a fixed recipient (a recipient's provider
//! delivers whatever anyone sealed): it may fail, never panic. (The MACs keep the
//! fuzzer out of the inner layers; `signal_sealed_certificate` covers the
//! certificate decoder behind them.)
#![no_main]
use entente_core::signal::keys::{IdentityKeyPair, PrivateKey};
use entente_core::signal::sealed_sender::{SenderCertificate, unseal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let recipient = IdentityKeyPair::from_private(PrivateKey::from_bytes([9; 32]));
    if let Ok(unsealed) = unseal(&recipient, data) {
        let again = SenderCertificate::decode(&unsealed.certificate.encode())
            .expect("the certificate decoded once");
        assert_eq!(again, unsealed.certificate);
    }
});
