//! Fuzz the MIMI content decoder: it must never panic, and whatever it accepts must be
//! the one deterministic encoding of the value it decodes to.
//!
//! Seeded with the draft's examples (libFuzzer writes new inputs to the first
//! directory only):
//!
//! ```text
//! cd fuzz && mkdir -p corpus/mimi_content
//! cargo +nightly fuzz run mimi_content corpus/mimi_content ../../shared/vectors/mimi-content
//! ```
#![no_main]

use entente_wire::content::MimiContent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(content) = MimiContent::decode(data) else {
        return;
    };
    let encoded = content.encode();
    let again = MimiContent::decode(&encoded).expect("an encoding we produced must decode");
    assert_eq!(again, content, "decode(encode(x)) must equal x");
    // The decoder accepts deterministic CBOR only, so the input is already canonical;
    // message IDs (hashes over the bytes) depend on this.
    assert_eq!(
        encoded, data,
        "accepted input must be the deterministic encoding"
    );
});
