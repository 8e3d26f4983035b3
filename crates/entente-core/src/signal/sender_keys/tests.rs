use super::wire::DistributionProto;
use super::*;
use aes::Aes256;
use rand::rngs::{OsRng, StdRng};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const ID: [u8; 16] = [
    0xd1, 0xd1, 0xd1, 0xd1, 0x70, 0x00, 0x11, 0xeb, 0xb3, 0x2a, 0x33, 0xb8, 0xa8, 0xa4, 0x87, 0xa6,
];

fn pair() -> (SenderKeyRecord, SenderKeyRecord) {
    let (sender, distribution) = SenderKeyRecord::create(ID, &mut OsRng);
    let receiver = SenderKeyRecord::from_distribution_message(&distribution).unwrap();
    (sender, receiver)
}

fn send(sender: &mut SenderKeyRecord, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            sender
                .encrypt(format!("m{i}").as_bytes(), &mut OsRng)
                .unwrap()
        })
        .collect()
}

fn front(record: &SenderKeyRecord) -> &SenderKeyState {
    record.states.front().unwrap()
}

/// Re-signs `message` after `edit` changed its protobuf, as the sender could.
fn rebuild(
    sender: &SenderKeyRecord,
    message: &[u8],
    edit: impl FnOnce(&mut MessageProto),
) -> Vec<u8> {
    let mut proto = MessageProto::decode(&message[1..message.len() - SIGNATURE_LEN]).unwrap();
    edit(&mut proto);
    let mut out = vec![message[0]];
    out.extend(proto.encode_to_vec());
    let signature = front(sender)
        .signing_private
        .as_ref()
        .unwrap()
        .sign(&out, &mut OsRng);
    out.extend(signature);
    out
}

fn skip_ahead(record: &mut SenderKeyRecord, n: u32) {
    let state = record.states.front_mut().unwrap();
    for _ in 0..n {
        state.chain = state.chain.next().unwrap().unwrap();
    }
}

fn varint(mut v: u32) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// The message keys of `iteration` on a chain at `chain_key`, with ring's HMAC and
/// HKDF: `(IV, AES-256 key)`.
fn independent_keys(chain_key: &[u8], steps: u32) -> ([u8; 16], [u8; 32]) {
    struct Len48;
    impl ring::hkdf::KeyType for Len48 {
        fn len(&self) -> usize {
            48
        }
    }
    let hmac = |key: &[u8], byte: u8| {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        ring::hmac::sign(&key, &[byte]).as_ref().to_vec()
    };
    let mut chain = chain_key.to_vec();
    for _ in 0..steps {
        chain = hmac(&chain, 0x02);
    }
    let seed = hmac(&chain, 0x01);
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[]).extract(&seed);
    let mut okm = [0u8; 48];
    prk.expand(&[b"WhisperGroup"], Len48)
        .unwrap()
        .fill(&mut okm)
        .unwrap();
    (okm[..16].try_into().unwrap(), okm[16..].try_into().unwrap())
}

/// AES-256-CBC decryption and PKCS#7 unpadding written out over the block cipher.
fn cbc_decrypt_by_hand(key: &[u8; 32], iv: &[u8; 16], ciphertext: &[u8]) -> Vec<u8> {
    use aes::cipher::{BlockDecrypt, KeyInit, generic_array::GenericArray};
    let cipher = Aes256::new(GenericArray::from_slice(key));
    let mut previous = *iv;
    let mut plaintext = Vec::new();
    for block in ciphertext.chunks(16) {
        let mut b = GenericArray::clone_from_slice(block);
        cipher.decrypt_block(&mut b);
        plaintext.extend(b.iter().zip(previous.iter()).map(|(x, y)| x ^ y));
        previous.copy_from_slice(block);
    }
    let pad = *plaintext.last().unwrap() as usize;
    assert!((1..=16).contains(&pad));
    assert!(
        plaintext[plaintext.len() - pad..]
            .iter()
            .all(|&b| b as usize == pad)
    );
    plaintext.truncate(plaintext.len() - pad);
    plaintext
}

#[test]
fn round_trip() {
    let (mut alice, mut bob) = pair();
    assert!(alice.is_own() && !bob.is_own());
    assert_eq!(alice.distribution_id(), ID);
    assert_eq!(bob.distribution_id(), ID);
    assert_eq!(alice.chain_ids(), bob.chain_ids());
    for text in [&b""[..], b"x", &[7u8; 16], &[9u8; 1000]] {
        let message = alice.encrypt(text, &mut OsRng).unwrap();
        assert_eq!(bob.decrypt(&message).unwrap(), text);
    }
}

#[test]
fn distribution_message_has_libsignal_layout() {
    let (alice, distribution) = SenderKeyRecord::create(ID, &mut OsRng);
    let state = front(&alice);
    let mut expected = vec![0x33, 0x0a, 16];
    expected.extend(ID);
    expected.push(0x10);
    expected.extend(varint(state.chain_id));
    // proto2: iteration 0 is written.
    expected.extend([0x18, 0x00, 0x22, 32]);
    expected.extend(state.chain.key.iter());
    expected.extend([0x2a, 33]);
    expected.extend(state.signing_public.encode());
    assert_eq!(distribution, expected);
    assert!(state.chain_id < 1 << 31, "31-bit chain ids");
    assert_eq!(alice.distribution_message().unwrap(), distribution);
}

#[test]
fn message_has_libsignal_layout_and_keys() {
    let (mut alice, distribution) = SenderKeyRecord::create(ID, &mut OsRng);
    let chain_key = front(&alice).chain.key.to_vec();
    let chain_id = front(&alice).chain_id;
    let signing_key = front(&alice).signing_public;
    send(&mut alice, 2);
    let message = alice.encrypt(b"keys and layout", &mut OsRng).unwrap();

    // 0x33 || protobuf || signature over both.
    let (signed, signature) = message.split_at(message.len() - 64);
    assert!(signing_key.verify(signed, signature.try_into().unwrap()));
    let mut header = vec![0x33, 0x0a, 16];
    header.extend(ID);
    header.push(0x10);
    header.extend(varint(chain_id));
    header.extend([0x18, 0x02, 0x22]);
    assert_eq!(&signed[..header.len()], &header[..]);
    let rest = &signed[header.len()..];
    let (len, ciphertext) = (rest[0] as usize, &rest[1..]);
    assert_eq!(len, ciphertext.len());
    assert_eq!(len, 16);

    let (iv, key) = independent_keys(&chain_key, 2);
    assert_eq!(
        cbc_decrypt_by_hand(&key, &iv, ciphertext),
        b"keys and layout"
    );
    let mut bob = SenderKeyRecord::from_distribution_message(&distribution).unwrap();
    assert_eq!(bob.decrypt(&message).unwrap(), b"keys and layout");
}

#[test]
fn out_of_order_and_skipped() {
    let (mut alice, mut bob) = pair();
    let messages = send(&mut alice, 6);
    for i in [4, 1, 0, 5, 2, 3] {
        assert_eq!(
            bob.decrypt(&messages[i]).unwrap(),
            format!("m{i}").as_bytes()
        );
    }
    assert!(front(&bob).skipped.is_empty());
    assert_eq!(front(&bob).chain.iteration, 6);
}

#[test]
fn long_delayed_messages_within_the_kept_keys() {
    let (mut alice, mut bob) = pair();
    let n = MAX_MESSAGE_KEYS + 500;
    let messages = send(&mut alice, n);
    assert_eq!(
        bob.decrypt(&messages[n - 1]).unwrap(),
        format!("m{}", n - 1).as_bytes()
    );
    assert_eq!(front(&bob).skipped.len(), MAX_MESSAGE_KEYS);
    // The oldest kept key is iteration n - 1 - MAX_MESSAGE_KEYS.
    let oldest = n - 1 - MAX_MESSAGE_KEYS;
    assert_eq!(
        bob.decrypt(&messages[oldest]).unwrap(),
        format!("m{oldest}").as_bytes()
    );
    let before = bob.to_bytes();
    assert_eq!(
        bob.decrypt(&messages[oldest - 1]),
        Err(SenderKeyError::Duplicate {
            chain_id: front(&bob).chain_id,
            iteration: (oldest - 1) as u32,
            current: n as u32,
        })
    );
    assert_eq!(bob.to_bytes(), before);
    assert_eq!(bob.decrypt(&messages[1000]).unwrap(), b"m1000");
}

#[test]
fn duplicates_are_refused_and_change_nothing() {
    let (mut alice, mut bob) = pair();
    let messages = send(&mut alice, 3);
    bob.decrypt(&messages[2]).unwrap();
    bob.decrypt(&messages[0]).unwrap();
    let before = bob.to_bytes();
    let chain_id = front(&bob).chain_id;
    for (i, message) in [(2, &messages[2]), (0, &messages[0])] {
        assert_eq!(
            bob.decrypt(message),
            Err(SenderKeyError::Duplicate {
                chain_id,
                iteration: i,
                current: 3
            })
        );
        assert_eq!(bob.to_bytes(), before);
    }
    assert_eq!(bob.decrypt(&messages[1]).unwrap(), b"m1");
}

#[test]
fn simulated_network_reorders_and_duplicates() {
    let mut rng = StdRng::seed_from_u64(5);
    let (mut alice, mut bob) = pair();
    let messages = send(&mut alice, 300);
    let mut delivery: Vec<usize> = (0..300).collect();
    delivery.extend((0..60).map(|_| rng.gen_range(0..300)));
    delivery.shuffle(&mut rng);
    let mut seen = vec![false; 300];
    for i in delivery {
        match bob.decrypt(&messages[i]) {
            Ok(plaintext) => {
                assert!(!seen[i], "message {i} decrypted twice");
                seen[i] = true;
                assert_eq!(plaintext, format!("m{i}").as_bytes());
            }
            Err(SenderKeyError::Duplicate { iteration, .. }) => {
                assert_eq!(iteration as usize, i);
                assert!(seen[i]);
            }
            Err(e) => panic!("message {i}: {e}"),
        }
    }
    assert!(seen.iter().all(|&s| s));
}

#[test]
fn too_far_ahead_is_refused() {
    let (mut alice, bob) = pair();
    let chain_id = front(&alice).chain_id;

    let mut at_limit = alice.clone();
    skip_ahead(&mut at_limit, MAX_FORWARD_JUMPS);
    let message = at_limit.encrypt(b"far", &mut OsRng).unwrap();
    let mut receiver = bob.clone();
    assert_eq!(receiver.decrypt(&message).unwrap(), b"far");
    assert_eq!(front(&receiver).skipped.len(), MAX_MESSAGE_KEYS);

    skip_ahead(&mut alice, MAX_FORWARD_JUMPS + 1);
    let message = alice.encrypt(b"too far", &mut OsRng).unwrap();
    let mut receiver = bob.clone();
    assert_eq!(
        receiver.decrypt(&message),
        Err(SenderKeyError::TooFarAhead {
            chain_id,
            iteration: MAX_FORWARD_JUMPS + 1,
            current: 0
        })
    );
    assert_eq!(receiver.to_bytes(), bob.to_bytes());
}

#[test]
fn tampering_is_refused_and_changes_nothing() {
    let (mut alice, bob) = pair();
    let chain_id = front(&alice).chain_id;
    let message = alice.encrypt(b"original", &mut OsRng).unwrap();
    let before = bob.to_bytes();
    let refuse = |bytes: &[u8], expected: SenderKeyError| {
        let mut receiver = bob.clone();
        assert_eq!(receiver.decrypt(bytes), Err(expected));
        assert_eq!(receiver.to_bytes(), before);
    };
    let bad_signature = SenderKeyError::BadSignature {
        chain_id,
        iteration: 0,
    };

    // Every byte of the signature, and of the ciphertext.
    for i in message.len() - 64..message.len() {
        let mut bad = message.clone();
        bad[i] ^= 0x01;
        refuse(&bad, bad_signature.clone());
    }
    for i in message.len() - 64 - 16..message.len() - 64 {
        let mut bad = message.clone();
        bad[i] ^= 0x80;
        refuse(&bad, bad_signature.clone());
    }
    // The header: the iteration (0x18 0x00 follows the chain id).
    let position = message.windows(2).position(|w| w == [0x18, 0x00]).unwrap();
    let mut bad = message.clone();
    bad[position + 1] = 0x05;
    refuse(
        &bad,
        SenderKeyError::BadSignature {
            chain_id,
            iteration: 5,
        },
    );
    // The low nibble of the version byte: libsignal ignores it, the signature does not.
    let mut bad = message.clone();
    bad[0] = 0x34;
    refuse(&bad, bad_signature.clone());
    let mut bad = message.clone();
    bad[0] = 0x23;
    refuse(
        &bad,
        SenderKeyError::UnsupportedVersion {
            what: "sender key message",
            byte: 0x23,
        },
    );
    // Another chain or distribution.
    let other_chain = rebuild(&alice, &message, |p| p.chain_id = Some(chain_id ^ 1));
    refuse(
        &other_chain,
        SenderKeyError::UnknownChain {
            chain_id: chain_id ^ 1,
            known: vec![chain_id],
        },
    );
    let other_id = rebuild(&alice, &message, |p| {
        p.distribution_uuid = Some(vec![0; 16])
    });
    refuse(
        &other_id,
        SenderKeyError::WrongDistribution {
            expected: "d1d1d1d1-7000-11eb-b32a-33b8a8a487a6".into(),
            got: "00000000-0000-0000-0000-000000000000".into(),
        },
    );
    // A ciphertext the sender signed but that does not decrypt.
    for ciphertext in [vec![], vec![1; 15], vec![0; 32]] {
        let bad = rebuild(&alice, &message, |p| p.ciphertext = Some(ciphertext));
        refuse(
            &bad,
            SenderKeyError::BadCiphertext {
                chain_id,
                iteration: 0,
            },
        );
    }
    let mut receiver = bob.clone();
    assert_eq!(receiver.decrypt(&message).unwrap(), b"original");
}

#[test]
fn the_signature_is_checked_before_the_iteration() {
    let (mut alice, mut bob) = pair();
    let chain_id = front(&alice).chain_id;
    let message = alice.encrypt(b"once", &mut OsRng).unwrap();
    bob.decrypt(&message).unwrap();
    let mut forged = message.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    // A duplicate with a bad signature is a bad signature.
    assert_eq!(
        bob.decrypt(&forged),
        Err(SenderKeyError::BadSignature {
            chain_id,
            iteration: 0
        })
    );
    // So is a message from too far ahead.
    let far = rebuild(&alice, &message, |p| {
        p.iteration = Some(MAX_FORWARD_JUMPS + 9)
    });
    let mut far_forged = far.clone();
    far_forged[last] ^= 1;
    assert!(matches!(
        bob.decrypt(&far_forged),
        Err(SenderKeyError::BadSignature { .. })
    ));
    assert!(matches!(
        bob.decrypt(&far),
        Err(SenderKeyError::TooFarAhead { .. })
    ));
}

#[test]
fn a_late_member_cannot_read_earlier_messages() {
    let (mut alice, mut bob) = pair();
    let early = send(&mut alice, 3);
    let mut carol =
        SenderKeyRecord::from_distribution_message(&alice.distribution_message().unwrap()).unwrap();
    let chain_id = front(&carol).chain_id;
    for (i, message) in early.iter().enumerate() {
        assert_eq!(
            carol.decrypt(message),
            Err(SenderKeyError::Duplicate {
                chain_id,
                iteration: i as u32,
                current: 3
            })
        );
    }
    let later = alice.encrypt(b"welcome", &mut OsRng).unwrap();
    assert_eq!(carol.decrypt(&later).unwrap(), b"welcome");
    for message in early.iter().chain([&later]) {
        bob.decrypt(message).unwrap();
    }
}

#[test]
fn several_chains_per_record() {
    let (mut first, distribution) = SenderKeyRecord::create(ID, &mut OsRng);
    let mut bob = SenderKeyRecord::from_distribution_message(&distribution).unwrap();
    let old = first.encrypt(b"old chain", &mut OsRng).unwrap();

    // The sender makes a new sender key for the same distribution id.
    let (mut second, distribution2) = SenderKeyRecord::create(ID, &mut OsRng);
    bob.process_distribution_message(&distribution2).unwrap();
    assert_eq!(
        bob.chain_ids(),
        vec![front(&second).chain_id, front(&first).chain_id]
    );
    let new = second.encrypt(b"new chain", &mut OsRng).unwrap();
    assert_eq!(bob.decrypt(&new).unwrap(), b"new chain");
    assert_eq!(bob.decrypt(&old).unwrap(), b"old chain");

    // Processing a chain again does not rewind it: no replay.
    bob.process_distribution_message(&distribution).unwrap();
    assert_eq!(bob.chain_ids()[0], front(&first).chain_id);
    assert!(matches!(
        bob.decrypt(&old),
        Err(SenderKeyError::Duplicate { .. })
    ));

    // Beyond MAX_SENDER_KEY_STATES the oldest chain goes.
    let mut chains = vec![front(&first).chain_id];
    for _ in 0..MAX_SENDER_KEY_STATES {
        let (record, distribution) = SenderKeyRecord::create(ID, &mut OsRng);
        bob.process_distribution_message(&distribution).unwrap();
        chains.push(front(&record).chain_id);
    }
    assert_eq!(bob.chain_ids().len(), MAX_SENDER_KEY_STATES);
    assert!(!bob.chain_ids().contains(&front(&first).chain_id));
    let late = first.encrypt(b"evicted", &mut OsRng).unwrap();
    assert!(matches!(
        bob.decrypt(&late),
        Err(SenderKeyError::UnknownChain { chain_id, .. }) if chain_id == front(&first).chain_id
    ));
}

#[test]
fn own_and_peer_records_are_not_mixed_up() {
    let (mut alice, mut bob) = pair();
    let (_, other) = SenderKeyRecord::create([1; 16], &mut OsRng);
    assert_eq!(
        bob.encrypt(b"x", &mut OsRng),
        Err(SenderKeyError::NotOwnRecord { action: "encrypt" })
    );
    assert!(matches!(
        bob.distribution_message(),
        Err(SenderKeyError::NotOwnRecord { .. })
    ));
    let (_, distribution) = SenderKeyRecord::create(ID, &mut OsRng);
    assert_eq!(
        alice.process_distribution_message(&distribution),
        Err(SenderKeyError::OwnRecord)
    );
    assert!(matches!(
        bob.process_distribution_message(&other),
        Err(SenderKeyError::WrongDistribution { .. })
    ));
    assert_eq!(bob.chain_ids().len(), 1);
}

#[test]
fn an_exhausted_chain_stops() {
    let (mut alice, _) = pair();
    let state = alice.states.front_mut().unwrap();
    state.chain.iteration = u32::MAX - 1;
    let chain_id = state.chain_id;
    let mut bob =
        SenderKeyRecord::from_distribution_message(&alice.distribution_message().unwrap()).unwrap();
    let last = alice.encrypt(b"last", &mut OsRng).unwrap();
    assert_eq!(
        alice.encrypt(b"one too many", &mut OsRng),
        Err(SenderKeyError::ChainExhausted { chain_id })
    );
    // A (signed) message at u32::MAX has no successor chain key either.
    let beyond = rebuild(&alice, &last, |p| p.iteration = Some(u32::MAX));
    let mut receiver = bob.clone();
    assert_eq!(
        receiver.decrypt(&beyond),
        Err(SenderKeyError::ChainExhausted { chain_id })
    );
    assert_eq!(bob.decrypt(&last).unwrap(), b"last");
}

#[test]
fn records_survive_storage() {
    let (mut alice, mut bob) = pair();
    let messages = send(&mut alice, 5);
    bob.decrypt(&messages[4]).unwrap();
    let alice = SenderKeyRecord::from_bytes(&alice.to_bytes()).unwrap();
    let restored = SenderKeyRecord::from_bytes(&bob.to_bytes()).unwrap();
    assert_eq!(restored.to_bytes(), bob.to_bytes());
    let mut bob = restored;
    assert_eq!(bob.decrypt(&messages[2]).unwrap(), b"m2");
    let mut alice = alice;
    assert!(alice.is_own());
    let next = alice.encrypt(b"after restore", &mut OsRng).unwrap();
    assert_eq!(bob.decrypt(&next).unwrap(), b"after restore");
}

#[test]
fn corrupt_records_are_refused() {
    let (alice, _) = pair();
    let good = alice.to_bytes();
    let corrupt = |bytes: &[u8]| {
        assert!(matches!(
            SenderKeyRecord::from_bytes(bytes),
            Err(SenderKeyError::CorruptRecord(_))
        ));
    };
    corrupt(&[]);
    corrupt(&[RECORD_VERSION]);
    corrupt(&[2]);
    let mut wrong_version = good.to_vec();
    wrong_version[0] = 2;
    corrupt(&wrong_version);
    corrupt(&good[..good.len() - 1]);
    let mut proto = RecordProto::decode(&good[1..]).unwrap();
    proto.sender_key_states[0]
        .sender_signing_key
        .as_mut()
        .unwrap()
        .private[0] ^= 0x40;
    let mut bad = vec![RECORD_VERSION];
    bad.extend(proto.encode_to_vec());
    corrupt(&bad);
    let mut proto = RecordProto::decode(&good[1..]).unwrap();
    proto
        .sender_key_states
        .push(proto.sender_key_states[0].clone());
    let mut bad = vec![RECORD_VERSION];
    bad.extend(proto.encode_to_vec());
    corrupt(&bad);
}

#[test]
fn bad_distribution_messages_are_refused() {
    let (_, good) = SenderKeyRecord::create(ID, &mut OsRng);
    let what = "sender key distribution message";
    let decode = SenderKeyRecord::from_distribution_message;
    assert_eq!(
        decode(&good[..64]).unwrap_err(),
        SenderKeyError::TooShort {
            what,
            len: 64,
            min: 65
        }
    );
    let mut bad = good.clone();
    bad[0] = 0x23;
    assert_eq!(
        decode(&bad).unwrap_err(),
        SenderKeyError::UnsupportedVersion { what, byte: 0x23 }
    );
    let proto = DistributionProto::decode(&good[1..]).unwrap();
    let encode = |edit: &dyn Fn(&mut DistributionProto)| {
        let mut p = proto.clone();
        edit(&mut p);
        let mut out = vec![0x33];
        out.extend(p.encode_to_vec());
        out
    };
    assert_eq!(
        decode(&encode(&|p| p.distribution_uuid = None)).unwrap_err(),
        SenderKeyError::MissingField {
            what,
            field: "distribution_uuid"
        }
    );
    assert_eq!(
        decode(&encode(&|p| p.iteration = None)).unwrap_err(),
        SenderKeyError::MissingField {
            what,
            field: "iteration"
        }
    );
    assert_eq!(
        decode(&encode(&|p| p.chain_key = Some(vec![1; 31]))).unwrap_err(),
        SenderKeyError::FieldLength {
            what,
            field: "chain_key",
            len: 31,
            expected: 32
        }
    );
    assert_eq!(
        decode(&encode(&|p| p.distribution_uuid = Some(vec![1; 15]))).unwrap_err(),
        SenderKeyError::FieldLength {
            what,
            field: "distribution_uuid",
            len: 15,
            expected: 16
        }
    );
    let mut wrong_type = proto.signing_key.clone().unwrap();
    wrong_type[0] = 0x06;
    assert_eq!(
        decode(&encode(&|p| p.signing_key = Some(wrong_type.clone()))).unwrap_err(),
        SenderKeyError::BadSigningKey(KeyDecodeError::UnknownType(0x06))
    );
    let mut garbage = vec![0x33];
    garbage.extend([0xff; 80]);
    assert!(matches!(
        decode(&garbage).unwrap_err(),
        SenderKeyError::Protobuf { .. }
    ));
}

#[test]
fn bad_messages_are_refused() {
    let (mut alice, bob) = pair();
    let message = alice.encrypt(b"m", &mut OsRng).unwrap();
    let what = "sender key message";
    assert_eq!(
        peek_message(&message[..64]).unwrap_err(),
        SenderKeyError::TooShort {
            what,
            len: 64,
            min: 65
        }
    );
    let info = peek_message(&message).unwrap();
    assert_eq!(info.distribution_id, ID);
    assert_eq!(info.iteration, 0);
    assert_eq!(info.chain_id, front(&bob).chain_id);
    let no_ciphertext = rebuild(&alice, &message, |p| p.ciphertext = None);
    assert_eq!(
        peek_message(&no_ciphertext).unwrap_err(),
        SenderKeyError::MissingField {
            what,
            field: "ciphertext"
        }
    );
    let mut garbage = vec![0x33];
    garbage.extend([0xff; 80]);
    assert!(matches!(
        peek_message(&garbage).unwrap_err(),
        SenderKeyError::Protobuf { .. }
    ));
}

#[test]
fn debug_hides_keys() {
    let (alice, bob) = pair();
    let key = hex::encode(*front(&alice).chain.key);
    let private = format!(
        "{:?}",
        *front(&alice).signing_private.as_ref().unwrap().to_bytes()
    );
    for shown in [format!("{alice:?}"), format!("{bob:?}")] {
        assert!(
            shown.contains("d1d1d1d1-7000-11eb-b32a-33b8a8a487a6"),
            "{shown}"
        );
        assert!(!shown.contains(&key));
        assert!(!shown.contains(&private));
    }
}

// Made by libsignal 0.103.0 (`@signalapp/libsignal-client` on Node): a
// `SenderKeyDistributionMessage` for distribution d1d1d1d1-7000-11eb-b32a-33b8a8a487a6,
// then `groupEncrypt` of "libsignal m0" .. "libsignal m3".
/// libsignal's distribution message.
const LIBSIGNAL_DISTRIBUTION: &[&str] = &[
    "330a10d1d1d1d1700011ebb32a33b8a8a487a6109bd1b3f302180022207d057a53c438e232974d2455fe4161",
    "4094a43c52805bfb2d59ccd44c2981eb592a2105578a029f2d34a1d24cf2c5b52588648458ca0e88bef9beb6",
    "a35be05bc7790259",
];
/// libsignal's message 0.
const LIBSIGNAL_M0: &[&str] = &[
    "330a10d1d1d1d1700011ebb32a33b8a8a487a6109bd1b3f30218002210b6b3b617b97f81d2a44b75c3105f26",
    "33ae7dce6378d25575f29e2dc9f9f20242c0a27b50dd56b6a3fcc04dc3801ad4844aead024ea8b1509b56d39",
    "4eeec59707687c39d3c97aac5085145852e9bc3f0e",
];
/// libsignal's message 1.
const LIBSIGNAL_M1: &[&str] = &[
    "330a10d1d1d1d1700011ebb32a33b8a8a487a6109bd1b3f302180122107198df28bc5b891c533b16e3c1af7d",
    "aa829d7b334a32c70e90a7e72c95b1aa81e11f6d5648b1a591082067dd48572eee8f7da3e1c9af38e95ebcc0",
    "e092bba5a6e057832dd23bcd8d4ad2d6d73b7eb50f",
];
/// libsignal's message 2.
const LIBSIGNAL_M2: &[&str] = &[
    "330a10d1d1d1d1700011ebb32a33b8a8a487a6109bd1b3f302180222107b16b31504dae28a93e21344185264",
    "ab85a3533f83b03391d2c0b2ff18273bce77c22b404e0d21db031f142f2346e4fa9e4b02552e1f4ce85326c3",
    "9b53e78d72e9dff6eab26e8f2e274d08dbd9c1e20e",
];
/// libsignal's message 3.
const LIBSIGNAL_M3: &[&str] = &[
    "330a10d1d1d1d1700011ebb32a33b8a8a487a6109bd1b3f302180322101a9b121ea22749e5fceabc57f08ebc",
    "ffec9ba303fa156039a8245ab63a26772e77e6f2ed1ae93811fe3a5b9d18312316269b7a799facc4d1c3b088",
    "0061369663f0939dedab9085f9605ddbf39be48c0b",
];

fn joined(parts: &[&str]) -> Vec<u8> {
    hex::decode(parts.concat()).unwrap()
}

#[test]
fn decrypts_what_libsignal_encrypts() {
    let distribution = joined(LIBSIGNAL_DISTRIBUTION);
    let mut record = SenderKeyRecord::from_distribution_message(&distribution).unwrap();
    assert_eq!(record.distribution_id(), ID);
    let messages = [LIBSIGNAL_M0, LIBSIGNAL_M1, LIBSIGNAL_M2, LIBSIGNAL_M3].map(joined);
    for i in [2, 0, 3, 1] {
        assert_eq!(
            record.decrypt(&messages[i]).unwrap(),
            format!("libsignal m{i}").as_bytes()
        );
    }
    assert!(matches!(
        record.decrypt(&messages[0]),
        Err(SenderKeyError::Duplicate { iteration: 0, .. })
    ));
    // We encode a distribution message byte for byte as libsignal does.
    assert_eq!(
        SenderKeyRecord::from_distribution_message(&distribution)
            .unwrap()
            .states
            .front()
            .unwrap()
            .distribution_message(&ID),
        distribution
    );
}
