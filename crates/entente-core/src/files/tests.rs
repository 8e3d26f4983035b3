//! Known answers, cross-checks against one-shot `aes-gcm`, streaming with arbitrary
//! split points, resuming, and every way a download can be wrong.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{KeyInit, Nonce};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;

/// The AES-GCM test vectors with 96-bit IVs from McGrew and Viega, "The Galois/Counter
/// Mode of Operation (GCM)", appendix B (test cases 2, 3, 4 for AES-128 and 14, 15, 16
/// for AES-256): key, IV, plaintext, AAD, ciphertext, tag.
const GCM_SPEC_VECTORS: &[[&str; 6]] = &[
    // Test case 2
    [
        "00000000000000000000000000000000",
        "000000000000000000000000",
        "00000000000000000000000000000000",
        "",
        "0388dace60b6a392f328c2b971b2fe78",
        "ab6e47d42cec13bdf53a67b21257bddf",
    ],
    // Test case 3
    [
        "feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        "",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
        "4d5c2af327cd64a62cf35abd2ba6fab4",
    ],
    // Test case 4
    [
        "feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        "5bc94fbc3221a5db94fae95ae7121a47",
    ],
    // Test case 14
    [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000",
        "00000000000000000000000000000000",
        "",
        "cea7403d4d606b6e074ec5d3baf39d18",
        "d0d1c8a799996bf0265b98b5d48ab919",
    ],
    // Test case 15
    [
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        "",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
         8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
        "b094dac5d93471bdec1a502270e3cc6c",
    ],
    // Test case 16
    [
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
         8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        "76fc6ece0f4e1768cddf8853bb2d551b",
    ],
];

fn secret_for(key: &[u8], nonce: &[u8]) -> FileSecret {
    let alg = if key.len() == 16 { 1 } else { 2 };
    FileSecret::from_parts(alg, key, nonce).unwrap()
}

/// Cuts `0..len` at `cuts` (taken modulo `len + 1`, so any values will do).
fn pieces(len: usize, cuts: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
    points.push(0);
    points.push(len);
    points.sort_unstable();
    points.windows(2).map(|w| w[0]..w[1]).collect()
}

/// Seals `plaintext` fed in the pieces `cuts` makes; returns the blob and tail.
fn seal(
    secret: &FileSecret,
    aad: &[u8],
    plaintext: &[u8],
    cuts: &[usize],
) -> (Vec<u8>, SealedTail) {
    let mut sealer = BlobSealer::new(secret, aad);
    let mut blob = plaintext.to_vec();
    for range in pieces(blob.len(), cuts) {
        sealer.update(&mut blob[range]).unwrap();
    }
    let tail = sealer.finish();
    blob.extend_from_slice(&tail.tag);
    (blob, tail)
}

/// Opens `blob` fed in the pieces `cuts` makes; returns the plaintext released along
/// the way and the verdict.
fn open(
    secret: &FileSecret,
    aad: &[u8],
    blob: &[u8],
    cuts: &[usize],
    hash: &ContentHash,
) -> (Vec<u8>, Result<Opened, FileCryptoError>) {
    let mut opener = BlobOpener::new(secret, aad, blob.len() as u64).unwrap();
    let mut plaintext = Vec::new();
    let mut buf = blob.to_vec();
    for range in pieces(buf.len(), cuts) {
        match opener.update(&mut buf[range]) {
            Ok(text) => plaintext.extend_from_slice(text),
            Err(e) => return (plaintext, Err(e)),
        }
    }
    (plaintext, opener.finish(hash))
}

fn one_shot(secret: &FileSecret, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = Nonce::from_slice(secret.nonce());
    let payload = Payload {
        msg: plaintext,
        aad,
    };
    match secret.alg() {
        FileAead::Aes128Gcm => aes_gcm::Aes128Gcm::new_from_slice(secret.key())
            .unwrap()
            .encrypt(nonce, payload),
        FileAead::Aes256Gcm => aes_gcm::Aes256Gcm::new_from_slice(secret.key())
            .unwrap()
            .encrypt(nonce, payload),
    }
    .unwrap()
}

fn sha256(data: &[u8]) -> ContentHash {
    ContentHash(Sha256::digest(data).into())
}

fn committed_file(alg: FileAead, plaintext: &[u8]) -> (FileSecret, Vec<u8>, Vec<u8>, ContentHash) {
    let secret = FileSecret::generate(alg);
    let aad = commitment_aad(&Sha256::digest(plaintext).into());
    let (blob, tail) = seal(&secret, &aad, plaintext, &[]);
    (secret, aad, blob, tail.content_hash)
}

#[test]
fn gcm_spec_vectors() {
    for [key, iv, pt, aad, ct, tag] in GCM_SPEC_VECTORS {
        let [key, iv, pt, aad, ct, tag] =
            [key, iv, pt, aad, ct, tag].map(|h| hex::decode(h).unwrap());
        let secret = secret_for(&key, &iv);
        let expected = [ct.as_slice(), tag.as_slice()].concat();
        // Whole, byte by byte, and in uneven pieces.
        for cuts in [vec![], (0..pt.len()).collect(), vec![1, 17, 31, 33, 50]] {
            let (blob, tail) = seal(&secret, &aad, &pt, &cuts);
            assert_eq!(hex::encode(&blob), hex::encode(&expected));
            assert_eq!(tail.content_hash, sha256(&expected));
            let (plaintext, opened) = open(&secret, &aad, &blob, &cuts, &tail.content_hash);
            assert_eq!(opened, Ok(Opened { committed: false }));
            assert_eq!(plaintext, pt);
        }
        assert_eq!(one_shot(&secret, &aad, &pt), expected, "aes-gcm agrees");
    }
}

#[test]
fn every_resume_offset() {
    for alg in [FileAead::Aes128Gcm, FileAead::Aes256Gcm] {
        let plaintext: Vec<u8> = (0..=200u8).collect();
        let (secret, aad, blob, hash) = committed_file(alg, &plaintext);
        for offset in 0..=plaintext.len() {
            let mut opener = BlobOpener::new(&secret, &aad, blob.len() as u64).unwrap();
            // The kept prefix in two calls, then the rest of the download.
            let (first, second) = plaintext[..offset].split_at(offset / 3);
            opener.resume_from_plaintext(first).unwrap();
            opener.resume_from_plaintext(second).unwrap();
            assert_eq!(opener.position(), offset as u64);
            let mut rest = blob[offset..].to_vec();
            let text = opener.update(&mut rest).unwrap().to_vec();
            assert_eq!(text, plaintext[offset..]);
            assert_eq!(opener.finish(&hash), Ok(Opened { committed: true }));
        }
    }
}

#[test]
fn resuming_from_a_damaged_prefix_fails() {
    let plaintext = vec![42u8; 100];
    let (secret, aad, blob, hash) = committed_file(FileAead::Aes128Gcm, &plaintext);
    let mut kept = plaintext[..60].to_vec();
    kept[10] ^= 1;
    let mut opener = BlobOpener::new(&secret, &aad, blob.len() as u64).unwrap();
    opener.resume_from_plaintext(&kept).unwrap();
    let mut rest = blob[60..].to_vec();
    opener.update(&mut rest).unwrap();
    assert_eq!(opener.finish(&hash), Err(FileCryptoError::HashMismatch));
}

#[test]
fn resume_cannot_pass_the_plaintext() {
    let (secret, aad, blob, _) = committed_file(FileAead::Aes128Gcm, &[1; 40]);
    let mut opener = BlobOpener::new(&secret, &aad, blob.len() as u64).unwrap();
    assert_eq!(
        opener.resume_from_plaintext(&[1; 41]),
        Err(FileCryptoError::ResumePastEnd { plaintext_len: 40 })
    );
    opener.resume_from_plaintext(&[1; 40]).unwrap();
    opener.update(&mut blob[40..41].to_vec()).unwrap();
    assert!(opener.resume_from_plaintext(&[]).is_err(), "inside the tag");
}

#[test]
fn any_flipped_bit_is_refused() {
    for alg in [FileAead::Aes128Gcm, FileAead::Aes256Gcm] {
        let plaintext = b"forty-one bytes of a file being sent here".to_vec();
        let (secret, aad, blob, hash) = committed_file(alg, &plaintext);
        for bit in 0..blob.len() * 8 {
            let mut tampered = blob.clone();
            tampered[bit / 8] ^= 1 << (bit % 8);
            let (_, opened) = open(&secret, &aad, &tampered, &[bit / 8], &hash);
            assert_eq!(opened, Err(FileCryptoError::HashMismatch), "bit {bit}");
            // A storage server that also swapped the hash in the message (it cannot,
            // the message is end-to-end encrypted) still fails the GCM tag.
            let (_, opened) = open(&secret, &aad, &tampered, &[], &sha256(&tampered));
            assert_eq!(
                opened,
                Err(FileCryptoError::WrongKeyOrTampered),
                "bit {bit}"
            );
        }
    }
}

#[test]
fn truncated_downloads_are_refused() {
    let plaintext = vec![9u8; 50];
    let (secret, aad, blob, hash) = committed_file(FileAead::Aes128Gcm, &plaintext);
    for len in 0..blob.len() {
        let mut opener = BlobOpener::new(&secret, &aad, blob.len() as u64).unwrap();
        opener.update(&mut blob[..len].to_vec()).unwrap();
        assert_eq!(
            opener.finish(&hash),
            Err(FileCryptoError::Truncated {
                received: len as u64,
                expected: blob.len() as u64
            })
        );
    }
}

#[test]
fn bytes_beyond_the_blob_are_refused() {
    let plaintext = vec![9u8; 50];
    let (secret, aad, blob, hash) = committed_file(FileAead::Aes256Gcm, &plaintext);
    let too_long = FileCryptoError::TooLong {
        expected: blob.len() as u64,
    };
    // In the same piece as the end of the blob, or in a later one.
    let mut longer = blob.clone();
    longer.push(0);
    let mut opener = BlobOpener::new(&secret, &aad, blob.len() as u64).unwrap();
    assert_eq!(opener.update(&mut longer), Err(too_long.clone()));
    assert_eq!(
        opener.update(&mut []),
        Err(too_long.clone()),
        "stays refused"
    );
    assert_eq!(opener.finish(&hash), Err(too_long.clone()));

    let mut opener = BlobOpener::new(&secret, &aad, blob.len() as u64).unwrap();
    opener.update(&mut blob.clone()).unwrap();
    assert_eq!(opener.update(&mut [0]), Err(too_long.clone()));
    assert_eq!(opener.finish(&hash), Err(too_long));
}

#[test]
fn wrong_key_hash_or_aad_are_refused() {
    let plaintext = vec![3u8; 1000];
    let (secret, aad, blob, hash) = committed_file(FileAead::Aes128Gcm, &plaintext);

    let other = FileSecret::from_parts(1, &[0; 16], secret.nonce()).unwrap();
    let (_, opened) = open(&other, &aad, &blob, &[], &hash);
    assert_eq!(opened, Err(FileCryptoError::WrongKeyOrTampered));

    let (_, opened) = open(&secret, &aad, &blob, &[], &sha256(b"another file"));
    assert_eq!(opened, Err(FileCryptoError::HashMismatch));

    let other_aad = commitment_aad(&[0; 32]);
    let (_, opened) = open(&secret, &other_aad, &blob, &[], &hash);
    assert_eq!(opened, Err(FileCryptoError::WrongKeyOrTampered));
}

#[test]
fn a_sender_that_commits_to_another_file_is_refused() {
    // The tag is valid (the sender authenticated this aad), but the plaintext is not
    // the one the aad names.
    let secret = FileSecret::generate(FileAead::Aes128Gcm);
    let aad = commitment_aad(&Sha256::digest(b"the file I claim").into());
    let (blob, tail) = seal(&secret, &aad, b"the file I sent", &[]);
    let (_, opened) = open(&secret, &aad, &blob, &[], &tail.content_hash);
    assert_eq!(opened, Err(FileCryptoError::CommitmentMismatch));
}

#[test]
fn other_aads_open_as_plain_gcm() {
    let secret = FileSecret::generate(FileAead::Aes256Gcm);
    let plaintext = b"from another implementation".to_vec();
    let label_but_short = [COMMITMENT_LABEL, &[0; 31]].concat();
    for aad in [&b""[..], b"something else", &label_but_short] {
        let blob = one_shot(&secret, aad, &plaintext);
        let (text, opened) = open(&secret, aad, &blob, &[5], &sha256(&blob));
        assert_eq!(opened, Ok(Opened { committed: false }));
        assert_eq!(text, plaintext);
    }
}

#[test]
fn external_part_fields_are_checked() {
    assert_eq!(
        FileSecret::from_parts(3, &[0; 16], &[0; 12]).err(),
        Some(FileCryptoError::UnsupportedAlgorithm(3))
    );
    assert_eq!(
        FileSecret::from_parts(2, &[0; 16], &[0; 12]).err(),
        Some(FileCryptoError::KeyLength {
            alg: FileAead::Aes256Gcm,
            expected: 32,
            got: 16
        })
    );
    assert_eq!(
        FileSecret::from_parts(1, &[0; 16], &[0; 16]).err(),
        Some(FileCryptoError::NonceLength(16))
    );
    assert_eq!(
        ContentHash::from_parts(2, &[0; 32]).err(),
        Some(FileCryptoError::UnsupportedHash(2))
    );
    assert_eq!(
        ContentHash::from_parts(1, &[0; 31]).err(),
        Some(FileCryptoError::HashLength(31))
    );
    let secret = FileSecret::generate(FileAead::Aes128Gcm);
    for size in [0, 15, MAX_PLAINTEXT_LEN + 17, u64::MAX] {
        assert_eq!(
            BlobOpener::new(&secret, b"", size).err(),
            Some(FileCryptoError::InvalidSize(size))
        );
    }
    assert!(BlobOpener::new(&secret, b"", MAX_PLAINTEXT_LEN + 16).is_ok());
    assert_eq!(blob_len(MAX_PLAINTEXT_LEN), Ok(MAX_PLAINTEXT_LEN + 16));
    assert_eq!(
        blob_len(MAX_PLAINTEXT_LEN + 1),
        Err(FileCryptoError::TooLarge)
    );
}

#[test]
fn secrets_are_fresh_and_stay_out_of_debug() {
    for alg in [FileAead::Aes128Gcm, FileAead::Aes256Gcm] {
        assert_eq!(FileAead::from_iana(alg.iana()), Some(alg));
        let a = FileSecret::generate(alg);
        let b = FileSecret::generate(alg);
        assert_eq!(a.alg(), alg);
        assert_eq!(a.key().len(), alg.key_len());
        assert_ne!(a.key(), b.key());
        assert_ne!(a.nonce(), b.nonce());
        let debug = format!("{a:?}");
        assert!(!debug.contains(&hex::encode(a.key())), "{debug}");
        assert!(!debug.contains(&format!("{:?}", a.key())), "{debug}");
    }
}

#[test]
fn plaintext_hasher_matches_commitment_aad() {
    let mut hasher = PlaintextHasher::new();
    hasher.update(b"two ");
    hasher.update(b"pieces");
    let aad = hasher.commitment_aad();
    assert_eq!(aad, commitment_aad(&Sha256::digest(b"two pieces").into()));
    assert_eq!(aad.len(), COMMITMENT_LABEL.len() + 32);
    assert!(aad.starts_with(b"entente-file-commit-v1"));
}

fn any_secret() -> impl Strategy<Value = FileSecret> {
    (any::<bool>(), any::<[u8; 32]>(), any::<[u8; NONCE_LEN]>()).prop_map(|(aes256, key, nonce)| {
        let alg = if aes256 {
            FileAead::Aes256Gcm
        } else {
            FileAead::Aes128Gcm
        };
        FileSecret::from_parts(alg.iana(), &key[..alg.key_len()], &nonce).unwrap()
    })
}

proptest! {
    #[test]
    fn streaming_equals_one_shot_and_round_trips(
        secret in any_secret(),
        aad in prop::collection::vec(any::<u8>(), 0..80),
        plaintext in prop::collection::vec(any::<u8>(), 0..4096),
        seal_cuts in prop::collection::vec(any::<usize>(), 0..8),
        open_cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let (blob, tail) = seal(&secret, &aad, &plaintext, &seal_cuts);
        prop_assert_eq!(&blob, &one_shot(&secret, &aad, &plaintext));
        prop_assert_eq!(tail.content_hash, sha256(&blob));
        let (text, opened) = open(&secret, &aad, &blob, &open_cuts, &tail.content_hash);
        prop_assert_eq!(opened, Ok(Opened { committed: false }));
        prop_assert_eq!(text, plaintext);
    }

    #[test]
    fn committed_files_round_trip_with_resume(
        secret in any_secret(),
        plaintext in prop::collection::vec(any::<u8>(), 0..4096),
        resume_at in any::<usize>(),
        resume_cuts in prop::collection::vec(any::<usize>(), 0..4),
        open_cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let aad = commitment_aad(&Sha256::digest(&plaintext).into());
        let (blob, tail) = seal(&secret, &aad, &plaintext, &open_cuts);
        let resume_at = resume_at % (plaintext.len() + 1);
        let mut opener = BlobOpener::new(&secret, &aad, blob.len() as u64).unwrap();
        for range in pieces(resume_at, &resume_cuts) {
            opener.resume_from_plaintext(&plaintext[range]).unwrap();
        }
        let mut rest = blob[resume_at..].to_vec();
        let mut text = Vec::new();
        let len = rest.len();
        for range in pieces(len, &open_cuts) {
            text.extend_from_slice(opener.update(&mut rest[range]).unwrap());
        }
        prop_assert_eq!(opener.finish(&tail.content_hash), Ok(Opened { committed: true }));
        prop_assert_eq!(text, &plaintext[resume_at..]);
    }

    /// Whatever arrives, the opener answers without panicking, and accepts only the
    /// real blob.
    #[test]
    fn garbage_never_opens(
        secret in any_secret(),
        blob in prop::collection::vec(any::<u8>(), 0..200),
        cuts in prop::collection::vec(any::<usize>(), 0..4),
        declared in 0u64..250,
    ) {
        if let Ok(mut opener) = BlobOpener::new(&secret, b"", declared) {
            let mut buf = blob.clone();
            for range in pieces(buf.len(), &cuts) {
                if opener.update(&mut buf[range]).is_err() {
                    break;
                }
            }
            prop_assert!(opener.finish(&sha256(&blob)).is_err());
        }
    }
}
