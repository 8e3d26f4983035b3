//! Fuzzes `decode_fanout_batch` (a notify body): it must never panic, and whatever
//! it accepts must re-encode to a body that decodes to the same messages.
#![no_main]

use entente_wire::mimi::{decode_fanout_batch, encode_fanout_batch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(messages) = decode_fanout_batch(data) {
        let body = encode_fanout_batch(&messages).expect("a decoded batch re-encodes");
        let again = decode_fanout_batch(&body).expect("a re-encoded batch decodes");
        assert_eq!(again, messages);
    }
});
