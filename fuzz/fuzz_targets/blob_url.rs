//! Fuzzes the blob URL parser and the `Range` header parser, which providers apply
//! to what clients and peers send. Neither may panic; an accepted URL prints back
//! to itself, and an accepted range lies within the blob.
#![no_main]

use entente_wire::blobs::{BlobUrl, byte_range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = BlobUrl::parse(text) {
        assert_eq!(url.to_string(), text);
    }
    let total = data.len() as u64 * 7919;
    if let Ok(Some((start, end))) = byte_range(Some(text), total) {
        assert!(start <= end && end <= total);
    }
});
