//! Fuzzes decrypting a libsignal `SenderKeyMessage` against a fixed record: once as
//! the input is, and once with a valid signature appended (made with the chain's
//! signing key), so that the fuzzer reaches past the signature check into the chain
//! and AES-CBC. Nothing may panic, a failure leaves the record unchanged, and the
//! header of a decrypted message reads back.
#![no_main]
use entente_core::signal::keys::PrivateKey;
use entente_core::signal::sender_keys::{SenderKeyRecord, peek_message};
use entente_core::signal::xeddsa::xeddsa_sign;
use libfuzzer_sys::fuzz_target;

const ID: [u8; 16] = [0x5a; 16];
const CHAIN_ID: u32 = 7;
const CHAIN_KEY: [u8; 32] = [0x11; 32];
const SIGNING_KEY: [u8; 32] = [0x22; 32];

/// A `SenderKeyDistributionMessage` for chain 7 at iteration 0, encoded by hand.
fn record() -> SenderKeyRecord {
    let mut message = vec![0x33, 0x0a, 16];
    message.extend(ID);
    message.extend([0x10, CHAIN_ID as u8, 0x18, 0x00, 0x22, 32]);
    message.extend(CHAIN_KEY);
    message.extend([0x2a, 33]);
    message.extend(PrivateKey::from_bytes(SIGNING_KEY).public_key().encode());
    SenderKeyRecord::from_distribution_message(&message).expect("a valid distribution message")
}

fn check(record: &SenderKeyRecord, message: &[u8]) {
    let mut record = record.clone();
    let before = record.to_bytes();
    match record.decrypt(message) {
        Ok(_) => {
            let header = peek_message(message).expect("a decrypted message has a header");
            assert_eq!(header.distribution_id, ID);
            assert_eq!(header.chain_id, CHAIN_ID);
        }
        Err(_) => assert_eq!(*record.to_bytes(), *before, "a failure changed the record"),
    }
}

fuzz_target!(|data: &[u8]| {
    let record = record();
    check(&record, data);
    let mut signed = data.to_vec();
    signed.extend(xeddsa_sign(&SIGNING_KEY, data, &[0; 64]));
    check(&record, &signed);
});
