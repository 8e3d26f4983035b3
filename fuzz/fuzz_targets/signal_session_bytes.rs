//! Fuzzes `Session::from_bytes`: it may refuse, never panic, and the encoding is
//! canonical, so whatever it accepts is written back byte for byte.
#![no_main]

use entente_core::signal::session::Session;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(session) = Session::from_bytes(data) {
        assert_eq!(&session.to_bytes()[..], data);
    }
});
