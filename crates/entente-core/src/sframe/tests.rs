//! Known answers of RFC 9605 Appendix C that need the module's internals: the
//! AES-CTR-HMAC AEAD on its own (C.2) and the intermediate values of the key schedule
//! (C.3). The end-to-end vectors are in `tests/sframe_vectors.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;

use super::crypto::{KeyMaterial, derive_key_salt, label};
use super::{CipherSuite, NONCE_LEN};

const VECTORS: &str = include_str!("../../tests/data/sframe-rfc9605.json");

fn vectors(section: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(VECTORS).unwrap();
    all[section].as_array().unwrap().clone()
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap()).unwrap()
}

fn suite(v: &Value) -> CipherSuite {
    CipherSuite::from_u16(u16::try_from(v["cipher_suite"].as_u64().unwrap()).unwrap()).unwrap()
}

/// C.2: `AEAD.Encrypt(key, nonce, aad, pt) == ct` and `AEAD.Decrypt(key, nonce, aad, ct)
/// == pt` for the three AES-CTR-HMAC suites; a changed byte anywhere is refused.
#[test]
fn rfc9605_c2_aes_ctr_hmac() {
    let cases = vectors("aes_ctr_hmac");
    assert_eq!(cases.len(), 3);
    for v in &cases {
        let suite = suite(v);
        let key = bytes(v, "key");
        assert_eq!(&key[..16], bytes(v, "enc_key").as_slice());
        assert_eq!(&key[16..], bytes(v, "auth_key").as_slice());
        let nonce: [u8; NONCE_LEN] = bytes(v, "nonce").try_into().unwrap();
        let (aad, pt, ct) = (bytes(v, "aad"), bytes(v, "pt"), bytes(v, "ct"));
        // With CTR 0 the nonce is the salt itself.
        let material = KeyMaterial::from_key_salt(suite, &key, nonce);

        let mut buf = pt.clone();
        let tag = material.aead_encrypt(&nonce, &aad, &mut buf).unwrap();
        buf.extend_from_slice(&tag[..suite.tag_len()]);
        assert_eq!(hex::encode(&buf), hex::encode(&ct), "{suite:?}");

        assert_eq!(material.aead_decrypt(&nonce, &aad, &ct).ok().unwrap(), pt);
        for i in 0..ct.len() * 8 {
            let mut bad = ct.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(material.aead_decrypt(&nonce, &aad, &bad).is_err());
        }
        let mut bad_aad = aad.clone();
        bad_aad[0] ^= 1;
        assert!(material.aead_decrypt(&nonce, &bad_aad, &ct).is_err());
    }
}

/// C.3 intermediates: the labels, `sframe_key`, `sframe_salt` (and, for reference,
/// `sframe_secret` = HKDF-Extract("", base_key)).
#[test]
fn rfc9605_c3_key_schedule() {
    let cases = vectors("sframe");
    assert_eq!(cases.len(), 5);
    for v in &cases {
        let suite = suite(v);
        let kid = v["kid"].as_u64().unwrap();
        let base_key = bytes(v, "base_key");
        assert_eq!(
            label(b"SFrame 1.0 Secret key ", kid, suite),
            bytes(v, "sframe_key_label")
        );
        assert_eq!(
            label(b"SFrame 1.0 Secret salt ", kid, suite),
            bytes(v, "sframe_salt_label")
        );
        let (key, salt) = derive_key_salt(suite, kid, &base_key);
        assert_eq!(
            hex::encode(&key[..suite.key_len()]),
            v["sframe_key"].as_str().unwrap()
        );
        assert_eq!(hex::encode(salt), v["sframe_salt"].as_str().unwrap());

        let secret = match suite {
            CipherSuite::Aes256Gcm => hkdf::Hkdf::<sha2::Sha512>::extract(Some(&[]), &base_key)
                .0
                .to_vec(),
            _ => hkdf::Hkdf::<sha2::Sha256>::extract(Some(&[]), &base_key)
                .0
                .to_vec(),
        };
        assert_eq!(hex::encode(secret), v["sframe_secret"].as_str().unwrap());

        let material = KeyMaterial::derive(suite, kid, &base_key);
        let ctr = v["ctr"].as_u64().unwrap();
        assert_eq!(
            hex::encode(material.nonce(ctr)),
            v["nonce"].as_str().unwrap()
        );
    }
}
