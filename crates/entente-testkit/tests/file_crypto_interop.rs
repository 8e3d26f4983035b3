//! Encrypted files (`entente_core::files`) against an implementation we did not
//! write: Python's `cryptography` (OpenSSL's AES-GCM) and `cbor2`, driven by
//! `tests/python/external_part.py` in a pinned virtualenv
//! ([`entente_testkit::python::venv`]).
//!
//! - Our files, inside a real MIMI content message, decrypt in Python from the
//!   `ExternalPart` fields alone, and Python checks our commitment.
//! - Python's files (plain AES-GCM, empty aad) open with our streaming opener.
//! - A blob Python tampered with is refused.
//!
//! Without Python these tests fail, saying what is missing: an interop test that
//! skips itself proves nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use entente_core::files::{
    BlobOpener, BlobSealer, ContentHash, FileAead, FileCryptoError, FileSecret, Opened,
    PlaintextHasher,
};
use entente_wire::content::{Disposition, ExternalPart, MimiContent, NestedPart, PartBody};
use rand::RngCore;

/// Pinned so that a new release cannot change what the test checks.
const REQUIREMENTS: &[&str] = &["cryptography==50.0.2", "cbor2==6.3.0"];
/// Sizes around the block size and one that spans many download pieces.
const SIZES: &[usize] = &[0, 1, 15, 16, 17, 1000, (1 << 20) + 3];
/// How our side feeds files through the sealer and opener, as reads and downloads do.
const PIECE: usize = 64 * 1024 + 5;

fn python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON
        .get_or_init(|| entente_testkit::python::venv(REQUIREMENTS).map_err(|e| format!("{e:#}")))
    {
        Ok(python) => python,
        Err(e) => panic!("cannot set up Python for the interop tests: {e}"),
    }
}

/// Runs the script with `args`; its stdout, or a panic with its stderr.
fn script(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/external_part.py");
    let mut command = Command::new(python());
    command.arg(path);
    for arg in args {
        command.arg(arg);
    }
    let output = command.output().expect("running the Python script");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

fn random_file(len: usize) -> Vec<u8> {
    let mut file = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut file);
    file
}

/// What an Entente client does to send a file: hash it, encrypt it, describe it.
fn send(alg: FileAead, file: &[u8], name: &str) -> (MimiContent, Vec<u8>) {
    let mut hasher = PlaintextHasher::new();
    for piece in file.chunks(PIECE) {
        hasher.update(piece);
    }
    let aad = hasher.commitment_aad();
    let secret = FileSecret::generate(alg);
    let mut sealer = BlobSealer::new(&secret, &aad);
    let mut blob = file.to_vec();
    for piece in blob.chunks_mut(PIECE) {
        sealer.update(piece).unwrap();
    }
    let tail = sealer.finish();
    blob.extend_from_slice(&tail.tag);

    let part = ExternalPart {
        content_type: "application/octet-stream".into(),
        url: format!("https://files.example.com/{name}"),
        expires: 0,
        size: blob.len() as u64,
        enc_alg: secret.alg().iana(),
        key: secret.key().to_vec(),
        nonce: secret.nonce().to_vec(),
        aad,
        hash_alg: ContentHash::HASH_ALG,
        content_hash: tail.content_hash.as_bytes().to_vec(),
        description: "interop test file".into(),
        filename: format!("{name}.bin"),
    };
    let body = NestedPart {
        disposition: Disposition::Attachment,
        language: String::new(),
        body: PartBody::External(Box::new(part)),
    };
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    (MimiContent::new(salt, body), blob)
}

/// Opens `blob` with our streaming opener, downloaded in pieces.
fn open(
    secret: &FileSecret,
    blob: &[u8],
    hash: &ContentHash,
) -> Result<(Vec<u8>, Opened), FileCryptoError> {
    let mut opener = BlobOpener::new(secret, b"", blob.len() as u64)?;
    let mut plaintext = Vec::new();
    let mut buf = blob.to_vec();
    for piece in buf.chunks_mut(PIECE) {
        plaintext.extend_from_slice(opener.update(piece)?);
    }
    let opened = opener.finish(hash)?;
    Ok((plaintext, opened))
}

/// Encrypts a fresh random file in Python; returns the file, the blob's path and
/// what the sender would put in the message.
fn python_sends(
    dir: &Path,
    alg: FileAead,
    len: usize,
) -> (Vec<u8>, PathBuf, FileSecret, ContentHash) {
    let file = random_file(len);
    let plain_path = dir.join(format!("py-{len}-{}.plain", alg.iana()));
    let blob_path = dir.join(format!("py-{len}-{}.blob", alg.iana()));
    std::fs::write(&plain_path, &file).unwrap();
    let sent = json(&script(&[
        &"encrypt",
        &alg.key_len().to_string(),
        &plain_path,
        &blob_path,
    ]));
    let hex_field = |name: &str| hex::decode(sent[name].as_str().unwrap()).unwrap();
    let enc_alg = u16::try_from(sent["enc_alg"].as_u64().unwrap()).unwrap();
    assert_eq!(enc_alg, alg.iana());
    let secret = FileSecret::from_parts(enc_alg, &hex_field("key"), &hex_field("nonce")).unwrap();
    let hash = ContentHash::from_parts(ContentHash::HASH_ALG, &hex_field("content_hash")).unwrap();
    (file, blob_path, secret, hash)
}

#[test]
fn python_decrypts_our_files() {
    let dir = tempfile::tempdir().unwrap();
    for alg in [FileAead::Aes128Gcm, FileAead::Aes256Gcm] {
        for &len in SIZES {
            let name = format!("ours-{len}-{}", alg.iana());
            let file = random_file(len);
            let (message, blob) = send(alg, &file, &name);
            let message_path = dir.path().join(format!("{name}.cbor"));
            let blob_path = dir.path().join(format!("{name}.blob"));
            let out_path = dir.path().join(format!("{name}.out"));
            std::fs::write(&message_path, message.encode()).unwrap();
            std::fs::write(&blob_path, &blob).unwrap();

            let part = json(&script(&[&"decrypt", &message_path, &blob_path, &out_path]));
            assert!(
                std::fs::read(&out_path).unwrap() == file,
                "Python decrypted {name} to other bytes"
            );
            assert_eq!(part["committed"], true, "{name}");
            assert_eq!(part["enc_alg"], alg.iana(), "{name}");
            assert_eq!(part["size"], blob.len(), "{name}");
            assert_eq!(part["disposition"], 6, "{name}: attachment");
            assert_eq!(part["filename"], format!("{name}.bin"));
        }
    }
}

/// The Python side's parser reads the draft's own attachment example the way the
/// draft annotates it, so its field order is the draft's, not just ours.
#[test]
fn python_parser_reads_the_draft_example() {
    let vector = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/vectors/mimi-content/attachment.cbor");
    assert!(vector.exists(), "missing {}", vector.display());
    let part = json(&script(&[&"parse", &vector]));
    assert_eq!(part["disposition"], 6);
    assert_eq!(part["language"], "en");
    assert_eq!(part["content_type"], "video/mp4");
    assert_eq!(part["url"], "https://example.com/storage/8ksB4bSrrRE.mp4");
    assert_eq!(part["size"], 708234961);
    assert_eq!(part["enc_alg"], 1);
    assert_eq!(part["key"], "21399320958a6f4c745dde670d95e0d8");
    assert_eq!(part["nonce"], "c86cf2c33f21527d1dd76f5b");
    assert_eq!(part["aad"], "");
    assert_eq!(part["hash_alg"], 1);
    assert_eq!(
        part["content_hash"],
        "9ab17a8cf0890baaae7ee016c7312fcc080ba46498389458ee44f0276e783163"
    );
    assert_eq!(part["description"], "2 hours of key signing video");
    assert_eq!(part["filename"], "bigfile.mp4");
}

#[test]
fn we_decrypt_python_files() {
    let dir = tempfile::tempdir().unwrap();
    for alg in [FileAead::Aes128Gcm, FileAead::Aes256Gcm] {
        for &len in SIZES {
            let (file, blob_path, secret, hash) = python_sends(dir.path(), alg, len);
            let blob = std::fs::read(&blob_path).unwrap();
            assert_eq!(blob.len(), len + 16);
            let (plaintext, opened) = open(&secret, &blob, &hash).unwrap();
            assert!(plaintext == file, "{len} bytes, {alg:?}: other bytes");
            assert!(!opened.committed, "an empty aad commits to nothing");
        }
    }
}

#[test]
fn we_refuse_files_python_tampered_with() {
    let dir = tempfile::tempdir().unwrap();
    for alg in [FileAead::Aes128Gcm, FileAead::Aes256Gcm] {
        let len = 1000;
        // A byte of the ciphertext, and a byte of the tag.
        for index in [0, 517, len + 3] {
            let (_, blob_path, secret, hash) = python_sends(dir.path(), alg, len);
            let new_hash = script(&[&"tamper", &blob_path, &index.to_string()]);
            let tampered = std::fs::read(&blob_path).unwrap();
            // The message's contentHash no longer matches ...
            assert_eq!(
                open(&secret, &tampered, &hash).unwrap_err(),
                FileCryptoError::HashMismatch
            );
            // ... and with the hash swapped as well, the GCM tag fails.
            let new_hash =
                ContentHash::from_parts(1, &hex::decode(new_hash.trim()).unwrap()).unwrap();
            assert_eq!(
                open(&secret, &tampered, &new_hash).unwrap_err(),
                FileCryptoError::WrongKeyOrTampered
            );
        }
    }
}
