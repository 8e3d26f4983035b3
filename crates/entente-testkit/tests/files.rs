//! Encrypted files across providers: real providers on loopback, real clients.
//!
//! The room is hubbed by a.example; bob@b.example sends, so the blob lives at
//! b.example; carol@c.example downloads through c.example and the hub's
//! proxyDownload, alice (at the hub) through her own provider acting as hub.
//! Damaged, truncated and swapped blobs are made by editing b.example's blob store
//! on disk, as a malicious or broken storage provider would serve them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, bail, ensure};
use entente_client::files::{
    FileMessage, NoProgress, Phase, Progress, ReceivedFile, Route, SendFileOptions, SentFile,
};
use entente_client::{Client, ClientError};
use entente_core::files::{FileAead, FileCryptoError};
use entente_testkit::Federation;
use entente_wire::blobs::BlobUrl;
use entente_wire::ids::RoomId;
use sha2::{Digest, Sha256};

mod support;

use support::{random_file, received, sha256_file};

struct World {
    fed: Federation,
    alice: Client,
    bob: Client,
    carol: Client,
    room: RoomId,
    dir: tempfile::TempDir,
}

async fn world() -> Result<World> {
    let r = support::Room::start("Files").await?;
    Ok(World {
        fed: r.fed,
        alice: r.alice,
        bob: r.bob,
        carol: r.carol,
        room: r.room,
        dir: tempfile::tempdir()?,
    })
}

/// Sends the file at `path` to `room` with the default options.
async fn send(client: &mut Client, room: &RoomId, path: &Path) -> Result<SentFile, ClientError> {
    client
        .send_file(
            room,
            path,
            &SendFileOptions::default(),
            Arc::new(NoProgress),
        )
        .await
}

/// Downloads `file` into `dest` by `route`.
async fn download(
    client: &Client,
    file: &FileMessage,
    dest: &Path,
    route: Route,
) -> Result<ReceivedFile, ClientError> {
    client
        .download_file(file, dest, route, Arc::new(NoProgress))
        .await
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn out_dir(w: &World, name: &str) -> PathBuf {
    let d = w.dir.path().join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The blob's file in b.example's store.
fn stored_blob(w: &World, file: &FileMessage) -> PathBuf {
    let url = BlobUrl::parse(&file.part.url).unwrap();
    let id = url.id.to_string();
    w.fed
        .blob_dir(url.domain.as_str())
        .unwrap()
        .join(&id[..2])
        .join(&id)
}

fn file_error(r: Result<impl std::fmt::Debug, ClientError>) -> FileCryptoError {
    match r {
        Err(ClientError::File(e)) => e,
        other => panic!("expected a file error, got {other:?}"),
    }
}

/// No plaintext is left behind in the download directory.
fn only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want, "files in {}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_every_size_round_trip_across_providers() -> Result<()> {
    let mut w = world().await?;
    let cases: &[(u64, FileAead, &str)] = &[
        (0, FileAead::Aes128Gcm, "empty.bin"),
        (1, FileAead::Aes128Gcm, "one.bin"),
        (1_000_003, FileAead::Aes256Gcm, "odd.bin"),
        (64 << 20, FileAead::Aes128Gcm, "big.bin"),
    ];
    for (i, (size, alg, name)) in cases.iter().enumerate() {
        let (path, digest) = random_file(w.dir.path(), name, *size, i as u64)?;
        let opts = SendFileOptions {
            alg: *alg,
            description: format!("{size} bytes"),
            content_type: None,
        };
        let sent = w
            .bob
            .send_file(&w.room, &path, &opts, Arc::new(NoProgress))
            .await?;
        assert_eq!(sent.part.size, size + 16);
        assert_eq!(sent.part.enc_alg, alg.iana());
        assert!(sent.part.url.starts_with("https://b.example/blobs/"));
        // Carol: through c.example and the hub's proxyDownload.
        let file = received(&mut w.carol, &w.room, sent.message_id).await?;
        assert_eq!(file.part, sent.part);
        let dir = out_dir(&w, &format!("carol-{i}"));
        let got = download(&w.carol, &file, &dir, Route::ViaHub).await?;
        assert_eq!(got.path, dir.join(name));
        assert!(got.committed);
        assert_eq!(sha256_file(&got.path)?, digest, "{name} via the hub");
        only(&dir, &[name]);
        // Alice: her provider is the hub and fetches from b.example itself.
        let file = received(&mut w.alice, &w.room, sent.message_id).await?;
        let dir = out_dir(&w, &format!("alice-{i}"));
        let got = download(&w.alice, &file, &dir, Route::ViaHub).await?;
        assert_eq!(sha256_file(&got.path)?, digest, "{name} at the hub");
        // Carol again, directly from b.example.
        let dir = out_dir(&w, &format!("carol-direct-{i}"));
        let got = download(&w.carol, &file, &dir, Route::Direct).await?;
        assert_eq!(sha256_file(&got.path)?, digest, "{name} directly");
    }
    // The providers hold ciphertext only: a file of recognisable text is nowhere in
    // the sender's blob store or database, nor at the hub or the recipient's provider.
    let marker = b"ENTENTE-PLAINTEXT-MARKER ".repeat(4000);
    let text = w.dir.path().join("marker.txt");
    std::fs::write(&text, &marker)?;
    let sent = send(&mut w.bob, &w.room, &text).await?;
    let file = received(&mut w.carol, &w.room, sent.message_id).await?;
    let got = download(&w.carol, &file, &out_dir(&w, "marker"), Route::ViaHub).await?;
    assert_eq!(std::fs::read(&got.path)?, marker);
    for domain in ["a.example", "b.example", "c.example"] {
        let data_dir = w.fed.members[domain].config.data_dir.clone();
        for entry in walk(&data_dir) {
            let bytes = std::fs::read(&entry)?;
            assert!(
                !bytes
                    .windows(24)
                    .any(|win| win == &b"ENTENTE-PLAINTEXT-MARKER"[..]),
                "plaintext in {}",
                entry.display()
            );
        }
    }
    // A second download to the same place does not overwrite the first.
    let file = w.carol.files(Some(&w.room))?.remove(0);
    let again = download(&w.carol, &file, &out_dir(&w, "carol-0"), Route::ViaHub).await;
    assert!(matches!(again, Err(ClientError::Usage(m)) if m.contains("exists already")));
    w.fed.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_swapped_and_misused_blobs_are_refused() -> Result<()> {
    let mut w = world().await?;
    let (one, _) = random_file(w.dir.path(), "one.bin", 300_000, 1)?;
    let (two, _) = random_file(w.dir.path(), "two.bin", 300_000, 2)?;
    let sent1 = send(&mut w.bob, &w.room, &one).await?;
    let sent2 = send(&mut w.bob, &w.room, &two).await?;
    let f1 = received(&mut w.carol, &w.room, sent1.message_id).await?;
    let f2 = received(&mut w.carol, &w.room, sent2.message_id).await?;
    let (blob1, blob2) = (stored_blob(&w, &f1), stored_blob(&w, &f2));
    let original = std::fs::read(&blob1)?;
    let dir = out_dir(&w, "damaged");
    let get = |f: &FileMessage| {
        let f = f.clone();
        let dir = dir.clone();
        let carol = &w.carol;
        async move {
            carol
                .download_file(&f, &dir, Route::ViaHub, Arc::new(NoProgress))
                .await
        }
    };

    // One bit flipped in the stored ciphertext.
    let mut tampered = original.clone();
    tampered[1234] ^= 1;
    std::fs::write(&blob1, &tampered)?;
    assert_eq!(file_error(get(&f1).await), FileCryptoError::HashMismatch);
    only(&dir, &[]);

    // Truncated.
    std::fs::write(&blob1, &original[..original.len() - 100])?;
    assert!(matches!(
        file_error(get(&f1).await),
        FileCryptoError::Truncated { .. }
    ));
    only(&dir, &[]);

    // Swapped: another file's ciphertext (same size) at this URL.
    std::fs::copy(&blob2, &blob1)?;
    assert_eq!(file_error(get(&f1).await), FileCryptoError::HashMismatch);
    only(&dir, &[]);

    // Restored, it downloads.
    std::fs::write(&blob1, &original)?;
    get(&f1).await?;

    // The right blob under the wrong key (and the hash of the blob kept right): the
    // tag fails.
    let mut wrong_key = f2.clone();
    wrong_key.part.key[0] ^= 1;
    wrong_key.part.filename = "wrong-key.bin".into();
    assert_eq!(
        file_error(get(&wrong_key).await),
        FileCryptoError::WrongKeyOrTampered
    );
    // A different committed plaintext hash for the same blob and key: refused (the
    // aad is authenticated, so the tag fails first).
    let mut wrong_commit = f2.clone();
    let last = wrong_commit.part.aad.len() - 1;
    wrong_commit.part.aad[last] ^= 1;
    assert_eq!(
        file_error(get(&wrong_commit).await),
        FileCryptoError::WrongKeyOrTampered
    );
    // Nonsense in the message: refused before anything is fetched.
    let mut bad = f2.clone();
    bad.part.enc_alg = 99;
    assert_eq!(
        file_error(get(&bad).await),
        FileCryptoError::UnsupportedAlgorithm(99)
    );
    let mut bad = f2.clone();
    bad.part.hash_alg = 7;
    assert!(matches!(
        file_error(get(&bad).await),
        FileCryptoError::UnsupportedHash(7)
    ));
    // A hostile file name cannot escape the directory.
    let mut evil = f2.clone();
    evil.part.filename = "../../escape.bin".into();
    let got = get(&evil).await?;
    assert_eq!(got.path, dir.join("escape.bin"));
    only(&dir, &["one.bin", "escape.bin"]);

    // A URL that is not a blob URL is refused by our provider (not proxied).
    let mut elsewhere = f2.clone();
    elsewhere.part.url = "https://b.example/v1/provider".into();
    elsewhere.part.filename = "x".into();
    let r = get(&elsewhere).await;
    assert!(
        matches!(&r, Err(ClientError::Provider { status: 400, .. })),
        "{r:?}"
    );
    w.fed.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_limits_expiry_and_garbage_collection() -> Result<()> {
    let mut w = world().await?;
    // b.example: 2 MiB per user, 1.5 MiB per file.
    {
        let m = w.fed.members.get_mut("b.example").unwrap();
        m.config.blobs.quota_bytes_per_user = 2 << 20;
        m.config.blobs.max_blob_bytes = 3 << 19;
    }
    w.fed.stop("b.example").await?;
    w.fed.restart("b.example").await?;
    let (big, _) = random_file(w.dir.path(), "big.bin", 2 << 20, 1)?;
    let r = send(&mut w.bob, &w.room, &big).await;
    assert!(
        matches!(&r, Err(ClientError::Provider { status: 413, code, message, .. })
            if code == "too_large" && message.contains("1572864")),
        "{r:?}"
    );
    let (one, _) = random_file(w.dir.path(), "one.bin", 1 << 20, 2)?;
    let (two, _) = random_file(w.dir.path(), "two.bin", 1 << 20, 3)?;
    let sent = send(&mut w.bob, &w.room, &one).await?;
    let r = send(&mut w.bob, &w.room, &two).await;
    assert!(
        matches!(&r, Err(ClientError::Provider { code, message, .. })
            if code == "quota_exceeded" && message.contains("entente file rm")),
        "{r:?}"
    );
    let usage = w.bob.blob_usage().await?;
    assert_eq!(usage.used, (1 << 20) + 16);

    // Expiry: age the blob in b.example's database.
    let file = received(&mut w.carol, &w.room, sent.message_id).await?;
    let blob = stored_blob(&w, &file);
    assert!(blob.exists());
    let url = BlobUrl::parse(&file.part.url)?;
    {
        let db = rusqlite::Connection::open(w.fed.database_path("b.example")?)?;
        db.execute(
            "UPDATE blobs SET expires_at = 1 WHERE id = ?1",
            [url.id.as_str()],
        )?;
    }
    let r = download(&w.carol, &file, &out_dir(&w, "exp"), Route::ViaHub).await;
    assert!(
        matches!(&r, Err(ClientError::Provider { status: 410, code, .. }) if code == "expired"),
        "{r:?}"
    );
    // Expired blobs no longer count, and garbage collection deletes them.
    assert_eq!(w.bob.blob_usage().await?.used, 0);
    let n = w
        .fed
        .handle("b.example")?
        .collect_blob_garbage()
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(n >= 1, "collected {n}");
    assert!(!blob.exists(), "the expired blob's bytes are gone");
    let r = download(&w.carol, &file, &out_dir(&w, "gone"), Route::Direct).await;
    assert!(
        matches!(&r, Err(ClientError::Provider { status: 404, .. })),
        "{r:?}"
    );
    // An ExternalPart whose own expiry has passed is refused without a fetch.
    let mut old = file.clone();
    old.part.expires = 1000;
    let r = download(&w.carol, &old, &out_dir(&w, "old"), Route::ViaHub).await;
    assert!(
        matches!(&r, Err(ClientError::Provider { status: 410, .. })),
        "{r:?}"
    );

    // Deleting a sent file frees its quota at once.
    let sent = send(&mut w.bob, &w.room, &two).await?;
    let mine = w
        .bob
        .files(Some(&w.room))?
        .into_iter()
        .find(|f| f.message_id == sent.message_id)
        .unwrap();
    assert_eq!(w.bob.blob_usage().await?.used, (1 << 20) + 16);
    w.bob.delete_sent_file(&mine).await?;
    assert_eq!(w.bob.blob_usage().await?.used, 0);
    w.fed.shutdown().await;
    Ok(())
}

/// Stops a transfer once `after` bytes of it are transferred, by dropping its future.
struct StopAt {
    after: u64,
    done: AtomicU64,
    transferring: std::sync::atomic::AtomicBool,
    starts: std::sync::Mutex<Vec<(Phase, u64)>>,
    stop: tokio::sync::Notify,
}

impl StopAt {
    fn new(after: u64) -> Arc<Self> {
        Arc::new(Self {
            after,
            done: AtomicU64::new(0),
            transferring: Default::default(),
            starts: Default::default(),
            stop: tokio::sync::Notify::new(),
        })
    }
}

impl Progress for StopAt {
    fn phase(&self, phase: Phase, done: u64, _total: u64) {
        self.starts.lock().unwrap().push((phase, done));
        self.done.store(done, Ordering::SeqCst);
        self.transferring.store(
            matches!(phase, Phase::Uploading | Phase::Downloading),
            Ordering::SeqCst,
        );
    }
    fn advance(&self, bytes: u64) {
        let now = self.done.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if now >= self.after && self.transferring.load(Ordering::SeqCst) {
            self.stop.notify_one();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_uploads_and_downloads_resume() -> Result<()> {
    let mut w = world().await?;
    let size = 24 << 20;
    let (path, digest) = random_file(w.dir.path(), "resume.bin", size, 9)?;
    let opts = SendFileOptions::default();

    // The upload is abandoned part way (the process exits, say)...
    let stop = StopAt::new(8 << 20);
    tokio::select! {
        r = w.bob.send_file(&w.room, &path, &opts, stop.clone()) => bail!("not interrupted: {r:?}"),
        () = stop.stop.notified() => {}
    }
    // ... and sending the same file again resumes it instead of starting over.
    let again = StopAt::new(u64::MAX);
    let sent = w
        .bob
        .send_file(&w.room, &path, &opts, again.clone())
        .await?;
    let starts = again.starts.lock().unwrap().clone();
    assert!(
        !starts.iter().any(|(p, _)| *p == Phase::Hashing),
        "no need to hash again: {starts:?}"
    );
    let resumed_at = starts
        .iter()
        .find(|(p, _)| *p == Phase::Uploading)
        .map(|(_, d)| *d)
        .unwrap();
    ensure!(resumed_at > 0, "the upload started over: {starts:?}");

    // The download is abandoned part way...
    let file = received(&mut w.carol, &w.room, sent.message_id).await?;
    let dir = out_dir(&w, "resume");
    let stop = StopAt::new(10 << 20);
    tokio::select! {
        r = w.carol.download_file(&file, &dir, Route::ViaHub, stop.clone()) => bail!("not interrupted: {r:?}"),
        () = stop.stop.notified() => {}
    }
    // ... nothing usable appears under the file's name, only a hidden partial file...
    assert!(!dir.join("resume.bin").exists());
    let parts: Vec<_> = std::fs::read_dir(&dir)?.collect();
    assert_eq!(parts.len(), 1);
    // ... and it resumes.
    let again = StopAt::new(u64::MAX);
    let got = w
        .carol
        .download_file(&file, &dir, Route::ViaHub, again.clone())
        .await?;
    let starts = again.starts.lock().unwrap().clone();
    let kept = starts
        .iter()
        .find(|(p, _)| *p == Phase::Downloading)
        .map(|(_, d)| *d)
        .unwrap();
    ensure!(kept > 0, "the download started over: {starts:?}");
    assert!(starts.iter().any(|(p, _)| *p == Phase::Resuming));
    assert_eq!(sha256_file(&got.path)?, digest);
    only(&dir, &["resume.bin"]);
    w.fed.shutdown().await;
    Ok(())
}

/// Changes the file being sent once its upload starts.
struct Meddler(PathBuf);

impl Progress for Meddler {
    fn phase(&self, phase: Phase, _done: u64, _total: u64) {
        if phase == Phase::Uploading {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.0)
                .unwrap();
            f.write_all(b"!").unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_changes_while_sent_is_not_sent() -> Result<()> {
    let mut w = world().await?;
    let (path, _) = random_file(w.dir.path(), "moving.bin", 3 << 20, 4)?;
    let r = w
        .bob
        .send_file(
            &w.room,
            &path,
            &SendFileOptions::default(),
            Arc::new(Meddler(path.clone())),
        )
        .await;
    assert!(
        matches!(&r, Err(ClientError::Usage(m)) if m.contains("changed while it was being sent")),
        "{r:?}"
    );
    // Nothing was sent and the reserved space is free again.
    assert!(w.bob.files(Some(&w.room))?.is_empty());
    assert_eq!(w.bob.blob_usage().await?.used, 0);
    // Sent again as it is now, it goes through.
    let (_, digest) = (path.clone(), sha256_file(&path)?);
    let sent = send(&mut w.bob, &w.room, &path).await?;
    let file = received(&mut w.carol, &w.room, sent.message_id).await?;
    let got = download(&w.carol, &file, &out_dir(&w, "moved"), Route::ViaHub).await?;
    assert_eq!(sha256_file(&got.path)?, digest);
    w.fed.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_is_not_an_open_proxy() -> Result<()> {
    let mut w = world().await?;
    // A fourth provider that shares no room with a.example.
    let (path, _) = random_file(w.dir.path(), "x.bin", 1000, 1)?;
    let sent = send(&mut w.bob, &w.room, &path).await?;
    let file = received(&mut w.carol, &w.room, sent.message_id).await?;
    // Through a "hub" c.example does not follow: refused by c.example itself.
    let mut other_room = file.clone();
    other_room.room = RoomId::new("deadbeef", entente_wire::ids::Domain::parse("b.example")?)?;
    other_room.part.filename = "y".into();
    let r = download(&w.carol, &other_room, &out_dir(&w, "p"), Route::ViaHub).await;
    assert!(
        matches!(&r, Err(ClientError::Provider { status: 403, .. })),
        "{r:?}"
    );
    // A blob at a provider that takes part in none of the hub's rooms: the hub
    // refuses to fetch it.
    let mut foreign = file.clone();
    foreign.part.url = file.part.url.replace("b.example", "z.example");
    foreign.part.filename = "z".into();
    let r = download(&w.carol, &foreign, &out_dir(&w, "p"), Route::ViaHub).await;
    assert!(
        matches!(&r, Err(ClientError::Provider { status, .. }) if *status == 403 || *status == 502),
        "{r:?}"
    );
    w.fed.shutdown().await;
    Ok(())
}

/// An HTTPS client trusting the federation's CA that reaches every member, with
/// `identity` as its TLS client certificate if given.
fn https(fed: &Federation, identity: Option<&entente_tls::Identity>) -> reqwest::Client {
    let ca = entente_tls::DevCa::load(fed.root().join("ca")).unwrap();
    let tls = entente_tls::client_config(&ca.trust_anchors().unwrap(), identity).unwrap();
    let mut b = reqwest::Client::builder().tls_backend_preconfigured((*tls).clone());
    for (domain, m) in &fed.members {
        b = b.resolve(domain, m.config.listen);
    }
    b.build().unwrap()
}

async fn status_and_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malicious_uploads_downloads_and_proxy_requests() -> Result<()> {
    let mut w = world().await?;
    let http = https(&w.fed, None);
    let blob = w.bob.create_blob(1000).await?;
    let patch = |token: Option<&str>, offset: Option<u64>, body: Vec<u8>| {
        let mut r = http
            .patch(format!("https://b.example/v1/blobs/{}", blob.id))
            .body(body);
        if let Some(t) = token {
            r = r.header("entente-upload-token", t);
        }
        if let Some(o) = offset {
            r = r.header("upload-offset", o.to_string());
        }
        r.send()
    };
    let token = blob.upload_token.as_str();
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    // No token, a wrong token, no offset, a wrong offset, too much data.
    assert_eq!(
        status_and_code(patch(None, Some(0), vec![1]).await?)
            .await
            .0,
        401
    );
    assert_eq!(
        status_and_code(patch(Some("0000"), Some(0), vec![1]).await?)
            .await
            .0,
        401
    );
    assert_eq!(
        status_and_code(patch(Some(token), None, vec![1]).await?)
            .await
            .0,
        400
    );
    assert_eq!(
        status_and_code(patch(Some(token), Some(5), vec![1]).await?).await,
        (409, "offset_mismatch".into())
    );
    assert_eq!(
        status_and_code(patch(Some(token), Some(0), vec![0; 1001]).await?)
            .await
            .0,
        400
    );
    // Nothing of the refused requests was kept.
    let st = w.bob.upload_status(&blob).await?;
    assert_eq!((st.offset, st.complete), (0, false));
    // Part of it; the blob cannot be downloaded yet.
    let r = patch(Some(token), Some(0), data[..300].to_vec()).await?;
    assert_eq!(r.status(), 200);
    let r = http.get(&blob.url).send().await?;
    assert_eq!(status_and_code(r).await, (404, "incomplete".into()));
    // The provider restarts: its running hash is gone and is rebuilt from disk.
    w.fed.stop("b.example").await?;
    w.fed.restart("b.example").await?;
    let http = https(&w.fed, None);
    let r = http
        .patch(format!("https://b.example/v1/blobs/{}", blob.id))
        .header("entente-upload-token", token)
        .header("upload-offset", "300")
        .body(data[300..].to_vec())
        .send()
        .await?;
    let st: entente_wire::blobs::UploadStatus = r.json().await?;
    assert!(st.complete);
    assert_eq!(st.sha256, Some(hex::encode(Sha256::digest(&data))));
    // Ranged downloads.
    let r = http
        .get(&blob.url)
        .header("range", "bytes=990-")
        .send()
        .await?;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"].to_str()?, "bytes 990-999/1000");
    assert_eq!(r.bytes().await?.as_ref(), &data[990..]);
    let r = http
        .get(&blob.url)
        .header("range", "bytes=1000-")
        .send()
        .await?;
    assert_eq!(r.status(), 416);
    assert_eq!(
        http.get(&blob.url).send().await?.bytes().await?.as_ref(),
        &data[..]
    );
    // Junk ids.
    for path in [
        "/blobs/zz",
        "/blobs/00000000000000000000000000000000",
        "/blobs/..%2Fv1%2Fprovider",
    ] {
        let r = http.get(format!("https://b.example{path}")).send().await?;
        assert_eq!(r.status(), 404, "{path}");
    }
    // Unsigned fetches through a provider are refused.
    let r = http
        .get(format!(
            "https://c.example/v1/blobs/fetch?url={}&via=a.example",
            blob.url
        ))
        .send()
        .await?;
    assert_eq!(r.status(), 401);

    // proxyDownload at the hub a.example.
    let ca = entente_tls::DevCa::load(w.fed.root().join("ca"))?;
    let proxy = |url: &str| {
        format!(
            "https://a.example/mimi/v1/proxyDownload/{}",
            entente_wire::api::path_segment(url)
        )
    };
    // Without a client certificate.
    let r = http
        .get(proxy(&blob.url))
        .header("from", "mimi@c.example")
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    // As c.example, which takes part in a room a.example hubs: served.
    let as_c = https(&w.fed, Some(&ca.issue("c.example")?.identity()?));
    let r = as_c
        .get(proxy(&blob.url))
        .header("from", "mimi@c.example")
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await?.as_ref(), &data[..]);
    // As c.example, for something that is not a blob URL, or at a provider in
    // none of the hub's rooms: refused.
    for (url, want) in [
        ("https://b.example/v1/provider".to_owned(), 400),
        (
            "https://b.example/.well-known/entente-issuer".to_owned(),
            400,
        ),
        (blob.url.replace("b.example", "z.example"), 403),
        (blob.url.replace("https://", "http://"), 400),
    ] {
        let r = as_c
            .get(proxy(&url))
            .header("from", "mimi@c.example")
            .send()
            .await?;
        assert_eq!(r.status(), want, "{url}");
    }
    // As d.example, a provider in none of a.example's rooms: refused.
    let as_d = https(&w.fed, Some(&ca.issue("d.example")?.identity()?));
    let r = as_d
        .get(proxy(&blob.url))
        .header("from", "mimi@d.example")
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    // Someone else's blob cannot be deleted, not even by a user of the same
    // provider who was sent its URL.
    let sent = send(
        &mut w.bob,
        &w.room,
        &random_file(w.dir.path(), "b.bin", 10, 1)?.0,
    )
    .await?;
    let mut theirs = received(&mut w.carol, &w.room, sent.message_id).await?;
    theirs.outgoing = true;
    let r = w.carol.delete_sent_file(&theirs).await;
    assert!(matches!(r, Err(ClientError::Usage(_))), "{r:?}");
    let dave = w.fed.register("dave@b.example", "laptop").await?;
    let r = dave.delete_sent_file(&theirs).await;
    assert!(
        matches!(&r, Err(ClientError::Provider { status: 404, .. })),
        "{r:?}"
    );
    download(&w.carol, &theirs, &out_dir(&w, "still"), Route::ViaHub).await?;
    w.fed.shutdown().await;
    Ok(())
}
