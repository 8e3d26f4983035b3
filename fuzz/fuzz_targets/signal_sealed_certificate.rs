//! Fuzzes decoding a sealed sender certificate (it arrives inside sealed messages
//! from anyone): it may fail, never panic; an accepted one re-encodes to the input,
//! names a sender domain, and verifying it with an issuer key we hold fails cleanly.
#![no_main]
use entente_core::identity::IssuerKey;
use entente_core::signal::sealed_sender::SenderCertificate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(certificate) = SenderCertificate::decode(data) {
        assert_eq!(certificate.encode(), data);
        let domain = certificate
            .sender_domain()
            .expect("a decoded certificate has a domain");
        let issuer = IssuerKey::from_seed(domain, &[7; 32]);
        let _ = certificate.verify(&issuer.public(), 1_700_000_000_000);
    }
});
