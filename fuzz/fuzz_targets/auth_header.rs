//! The client API's Authorization header, from any client on the network.
#![no_main]
use entente_wire::api::AuthHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(h) = AuthHeader::parse(s) {
            assert!(!h.nonce.is_empty() && h.nonce.len() <= 64);
        }
    }
});
