//! Fuzzes the SFU's offer-shape check, which reads untrusted SDP before str0m does: it
//! must never panic, and what it accepts must respect the slot limit.
#![no_main]

use entente_media::sfu::OfferShape;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(shape) = OfferShape::parse(text, 8) {
        assert!(shape.slot_count() <= 8);
        assert_eq!(OfferShape::parse(text, 8), Ok(shape));
    }
});
