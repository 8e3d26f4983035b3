//! The client API's Authorization header, from any client on the network.
#![no_main]
use entente_provider::auth::{parse_header, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(h) = parse_header(s) {
            let _ = verify(&h, &[1; 32], "POST", "/v1/rooms", data, h.timestamp);
        }
    }
});
