//! Client certificates arrive inside MLS credentials from any member of a room.
#![no_main]
use entente_core::identity::{IssuerKey, UnverifiedCertificate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = UnverifiedCertificate::decode(data) {
        // Verification with an unrelated key must fail, never panic.
        let issuer = IssuerKey::from_seed(cert.claimed_client().domain().clone(), &[7; 32]);
        let _ = cert.verify(&issuer.public(), 1_700_000_000);
    }
});
