//! RFC 9605 Appendix C known answers through the public API: header encoding (C.1) and
//! whole SFrame encryption and decryption for every cipher suite (C.3). The data file
//! `tests/data/sframe-rfc9605.json` says where each part comes from. Any differing byte
//! fails. (C.2 and the key-schedule intermediates are unit tests in `src/sframe/`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use entente_core::sframe::{CipherSuite, Header, ReceiverContext, SendKey, SframeError};
use serde_json::Value;

fn vectors(section: &str) -> Vec<Value> {
    let all: Value =
        serde_json::from_str(include_str!("data/sframe-rfc9605.json")).expect("vector file");
    all[section].as_array().expect("section").clone()
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap()).unwrap()
}

/// C.1: encoding each (KID, CTR) gives the listed header and decoding it gives them
/// back, all 289 cases of the RFC.
#[test]
fn rfc9605_c1_header_encoding() {
    let cases = vectors("header");
    assert_eq!(cases.len(), 289);
    for v in &cases {
        let header = Header {
            kid: v["kid"].as_u64().unwrap(),
            ctr: v["ctr"].as_u64().unwrap(),
        };
        let encoded = bytes(v, "encoded");
        assert_eq!(
            hex::encode(header.encode()),
            hex::encode(&encoded),
            "{header:?}"
        );
        assert_eq!(header.encoded_len(), encoded.len());
        assert_eq!(Header::decode(&encoded), Ok((header, encoded.len())));
        // Trailing bytes are the ciphertext, not part of the header.
        let mut longer = encoded.clone();
        longer.extend_from_slice(b"ct");
        assert_eq!(Header::decode(&longer), Ok((header, encoded.len())));
        // Every proper prefix is refused.
        for cut in 0..encoded.len() {
            assert!(Header::decode(&encoded[..cut]).is_err());
        }
    }
}

/// C.3: `encrypt(ctr, kid, metadata, plaintext) == ct` and `decrypt(metadata, ct) ==
/// pt` with base_key assigned to kid, for all five suites.
#[test]
fn rfc9605_c3_sframe_encryption() {
    let cases = vectors("sframe");
    let suites: Vec<u64> = cases
        .iter()
        .map(|v| v["cipher_suite"].as_u64().unwrap())
        .collect();
    assert_eq!(suites, [1, 2, 3, 4, 5]);
    for v in &cases {
        let suite =
            CipherSuite::from_u16(u16::try_from(v["cipher_suite"].as_u64().unwrap()).unwrap())
                .unwrap();
        let kid = v["kid"].as_u64().unwrap();
        let ctr = v["ctr"].as_u64().unwrap();
        let (base_key, metadata) = (bytes(v, "base_key"), bytes(v, "metadata"));
        let (pt, ct) = (bytes(v, "pt"), bytes(v, "ct"));

        let mut sender = SendKey::starting_at(suite, kid, &base_key, ctr);
        let frame = sender.encrypt(&metadata, &pt).unwrap();
        assert_eq!(hex::encode(&frame), hex::encode(&ct), "{suite:?}");
        assert_eq!(sender.next_counter(), Some(ctr + 1));
        assert_eq!(
            ct.len(),
            Header { kid, ctr }.encoded_len() + pt.len() + suite.tag_len()
        );

        let mut receiver = ReceiverContext::new(suite);
        receiver.add_key(kid, &base_key);
        assert_eq!(receiver.decrypt(&ct, &metadata).unwrap(), pt);
        // The metadata is authenticated.
        assert_eq!(
            receiver.decrypt(&ct, b"other metadata"),
            Err(SframeError::Authentication { kid })
        );
        // Another suite over the same key does not open it.
        let other = if suite == CipherSuite::Aes128Gcm {
            CipherSuite::Aes256Gcm
        } else {
            CipherSuite::Aes128Gcm
        };
        let mut wrong = ReceiverContext::new(other);
        wrong.add_key(kid, &base_key);
        assert!(wrong.decrypt(&ct, &metadata).is_err());
        assert!(receiver.remove_key(kid));
        assert_eq!(
            receiver.decrypt(&ct, &metadata),
            Err(SframeError::UnknownKid { kid })
        );
    }
}

#[test]
fn cipher_suite_registry_values() {
    for suite in CipherSuite::ALL {
        assert_eq!(CipherSuite::from_u16(suite.id()), Ok(suite));
    }
    for id in [0x0000, 0x0006, 0xf000, 0xffff] {
        assert_eq!(
            CipherSuite::from_u16(id),
            Err(SframeError::UnknownCipherSuite(id))
        );
    }
}

/// Non-minimal encodings are refused (RFC 9605 section 4.3: "MUST be encoded with the
/// minimum number of bytes").
#[test]
fn non_minimal_headers_are_refused() {
    for bad in [
        &[0x80, 0x05][..],               // KID 5 in an extension byte
        &[0x08, 0x07],                   // CTR 7 in an extension byte
        &[0x90, 0x00, 0xff],             // KID 0x00ff in two bytes
        &[0x09, 0x00, 0x08],             // CTR 8 in two bytes
        &[0x0f, 0, 0, 0, 0, 0, 0, 0, 9], // CTR 9 in eight bytes
    ] {
        assert_eq!(
            Header::decode(bad),
            Err(SframeError::Malformed("header value not minimally encoded")),
            "{bad:02x?}"
        );
    }
}
