//! Encrypted files: send a file to a room as a MIMI content ExternalPart, and
//! download and decrypt a received one.
//!
//! Sending: the file is hashed (first pass) and then encrypted under a fresh key
//! with AES-GCM while it streams to our provider's blob store (second pass), see
//! [`entente_core::files`]. The message carries the URL, key, nonce, `aad` (which
//! commits to the plaintext) and the SHA-256 of the blob. An interrupted upload
//! resumes where the provider's copy ends: the key and upload token are kept in the
//! local database until the message is sent.
//!
//! Receiving: the blob is fetched through our provider, which fetches it from the
//! sender's provider through the room's hub (MIMI `proxyDownload`), so the
//! sender's provider never learns who downloads; or directly ([`Route::Direct`]),
//! which tells the sender's provider our address. The plaintext goes into a hidden
//! `.part` file next to the destination and is renamed into place only after the
//! hash, the GCM tag and the commitment have all been checked. An interrupted
//! download resumes from the `.part` file.
//!
//! Memory stays bounded whatever the file's size: a few pieces of [`PIECE`] bytes
//! are in flight at a time.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use entente_core::files::{
    BlobOpener, BlobSealer, ContentHash, FileAead, FileCryptoError, FileSecret, SealedTail,
    TAG_LEN, blob_len,
};
use entente_wire::blobs::{BlobCreated, BlobUrl, BlobUsage, CreateBlob, UploadStatus};
use entente_wire::content::{Disposition, ExternalPart, MimiContent, NestedPart, PartBody};
use entente_wire::ids::{RoomId, UserId};
use futures::StreamExt;
use rand::RngCore;
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::store::storage;
use crate::{Client, ClientError, now_secs};

/// Files are read, encrypted, sent and written in pieces of this size.
pub const PIECE: usize = 1 << 20;
/// Pieces queued between the network and the crypto thread.
const QUEUE: usize = 4;
/// Attempts at an upload or download before a transient failure is reported.
const ATTEMPTS: u32 = 6;

/// How to send a file.
#[derive(Debug, Clone)]
pub struct SendFileOptions {
    /// AES-128-GCM (the algorithm MIMI requires every client to support) or
    /// AES-256-GCM.
    pub alg: FileAead,
    /// Shown with the file.
    pub description: String,
    /// IANA media type; guessed from the file name when `None`.
    pub content_type: Option<String>,
}

impl Default for SendFileOptions {
    fn default() -> Self {
        Self {
            alg: FileAead::Aes128Gcm,
            description: String::new(),
            content_type: None,
        }
    }
}

/// Where a download comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Route {
    /// Through our provider and the room's hub (MIMI `proxyDownload`): the file's
    /// provider sees only the hub.
    #[default]
    ViaHub,
    /// Straight from the file's provider, which learns our address and when we
    /// download (draft-ietf-mimi-protocol-06 section 5.10.1: NOT RECOMMENDED).
    Direct,
}

/// What a transfer is doing, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading the file to hash it (before encrypting).
    Hashing,
    Uploading,
    Downloading,
    /// Re-reading a partial download to resume it.
    Resuming,
}

/// Receives progress of a transfer. Called from other threads.
pub trait Progress: Send + Sync {
    /// A phase starts: `done` of `total` bytes are already done.
    fn phase(&self, _phase: Phase, _done: u64, _total: u64) {}
    /// `bytes` more are done.
    fn advance(&self, _bytes: u64) {}
}

/// No progress display.
pub struct NoProgress;
impl Progress for NoProgress {}

/// A file sent.
#[derive(Debug, Clone)]
pub struct SentFile {
    pub message_id: [u8; 32],
    pub part: ExternalPart,
}

/// A file message in a room's history.
#[derive(Debug, Clone)]
pub struct FileMessage {
    pub room: RoomId,
    pub message_id: [u8; 32],
    pub sender: UserId,
    pub timestamp_ms: u64,
    pub outgoing: bool,
    pub part: ExternalPart,
}

impl FileMessage {
    /// The file's size in bytes (the blob less the GCM tag).
    pub fn file_size(&self) -> u64 {
        if self.part.enc_alg != 0 {
            self.part.size.saturating_sub(TAG_LEN as u64)
        } else {
            self.part.size
        }
    }
}

/// A file downloaded, checked and decrypted.
#[derive(Debug, Clone)]
pub struct ReceivedFile {
    pub path: PathBuf,
    pub size: u64,
    /// The sender committed to the plaintext (Entente senders do): no other key can
    /// open the same blob to a different file.
    pub committed: bool,
}

/// An upload in progress, kept in the local database so that it can resume.
struct PendingUpload {
    secret: FileSecret,
    aad: Vec<u8>,
    blob: BlobCreated,
    size: u64,
}

impl Client {
    /// Encrypts the file at `path`, uploads it to our provider and sends it to
    /// `room` as an attachment. Resumes an interrupted earlier attempt at sending the
    /// same (unchanged) file to the same room.
    pub async fn send_file(
        &mut self,
        room: &RoomId,
        path: &Path,
        opts: &SendFileOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<SentFile, ClientError> {
        self.require_room(room)?;
        let meta = std::fs::metadata(path)
            .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(ClientError::Usage(format!(
                "{} is not a file",
                path.display()
            )));
        }
        let key = UploadKey::of(path, &meta, opts.alg, room)?;
        let pending = match self.pending_upload(&key)? {
            Some(p) => p,
            None => {
                let committed = hash_file(path, meta.len(), progress.clone()).await?;
                let size = blob_len(meta.len()).map_err(ClientError::File)?;
                let blob = self.create_blob(size).await?;
                let p = PendingUpload {
                    secret: FileSecret::generate(opts.alg),
                    aad: entente_core::files::commitment_aad(&committed),
                    blob,
                    size,
                };
                self.save_pending_upload(&key, &p)?;
                p
            }
        };
        let tail = match self
            .upload(path, (key.len, key.mtime), &pending, progress)
            .await
        {
            Ok(t) => t,
            Err(e) if is_transient(&e) => return Err(e),
            Err(e) => {
                // This upload cannot be completed (the file changed, the provider
                // lost it, or its copy is damaged): forget it and free its quota.
                self.forget_pending_upload(&key)?;
                let _ = self.delete_blob(pending.blob.id.as_str()).await;
                return Err(e);
            }
        };
        let filename = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let part = ExternalPart {
            content_type: opts
                .content_type
                .clone()
                .unwrap_or_else(|| guess_content_type(&filename).to_owned()),
            url: pending.blob.url.clone(),
            expires: u32::try_from(pending.blob.expires).unwrap_or(u32::MAX),
            size: pending.size,
            enc_alg: pending.secret.alg().iana(),
            key: pending.secret.key().to_vec(),
            nonce: pending.secret.nonce().to_vec(),
            aad: pending.aad.clone(),
            hash_alg: ContentHash::HASH_ALG,
            content_hash: tail.content_hash.as_bytes().to_vec(),
            description: opts.description.clone(),
            filename,
        };
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let content = MimiContent::new(
            salt,
            NestedPart {
                disposition: Disposition::Attachment,
                language: String::new(),
                body: PartBody::External(Box::new(part.clone())),
            },
        );
        let message_id = self.send_content(room, &content).await?;
        self.forget_pending_upload(&key)?;
        Ok(SentFile { message_id, part })
    }

    /// Uploads (or finishes uploading) a blob; returns its tag and content hash once
    /// the provider holds all of it and its hash matches ours.
    async fn upload(
        &self,
        path: &Path,
        unchanged: (i64, i64),
        p: &PendingUpload,
        progress: Arc<dyn Progress>,
    ) -> Result<SealedTail, ClientError> {
        let (id, token) = (p.blob.id.as_str(), p.blob.upload_token.as_str());
        let mut failures = 0;
        loop {
            let attempt = async {
                let status = self.transport.upload_status(id, token).await?;
                let start = status.offset;
                progress.phase(Phase::Uploading, start, p.size);
                let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUE);
                let sealing = {
                    let (path, progress) = (path.to_owned(), progress.clone());
                    let secret = FileSecret::from_parts(
                        p.secret.alg().iana(),
                        p.secret.key(),
                        p.secret.nonce(),
                    )?;
                    let aad = p.aad.clone();
                    tokio::task::spawn_blocking(move || {
                        seal_file(&path, &secret, &aad, unchanged, start, &tx, &*progress)
                    })
                };
                let sent = if status.complete {
                    drop(rx);
                    Ok(status)
                } else {
                    let body = futures::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
                    });
                    self.transport
                        .upload_blob(id, token, start, reqwest::Body::wrap_stream(body))
                        .await
                };
                let sealed = sealing
                    .await
                    .map_err(|e| ClientError::Bug(format!("encrypting task: {e}")))?;
                let status = sent?;
                let tail = match sealed {
                    Ok(t) => t,
                    // The upload stopped and the sealer with it: the upload's error
                    // (above) says why; here the request ended without one.
                    Err(SealError::Stopped) => {
                        return Err(ClientError::Unreachable(
                            "the upload stopped before the end of the file".into(),
                        ));
                    }
                    Err(SealError::Fatal(e)) => return Err(e),
                };
                Ok::<_, ClientError>((status, tail))
            };
            match attempt.await {
                Ok((status, tail)) if status.complete => {
                    return check_stored(&status, tail);
                }
                Ok(_) => {}
                Err(e) if is_transient(&e) && failures + 1 < ATTEMPTS => {}
                Err(e) => return Err(e),
            }
            failures += 1;
            if failures >= ATTEMPTS {
                return Err(ClientError::Unreachable(
                    "the upload kept breaking off; run the same command again to resume".into(),
                ));
            }
            tokio::time::sleep(backoff(failures)).await;
        }
    }

    /// Downloads, checks and decrypts the file of `file` into `dest` (a directory,
    /// where the sender's file name is used, or a file path that must not exist).
    pub async fn download_file(
        &self,
        file: &FileMessage,
        dest: &Path,
        route: Route,
        progress: Arc<dyn Progress>,
    ) -> Result<ReceivedFile, ClientError> {
        let part = &file.part;
        if part.enc_alg == 0 {
            return Err(ClientError::Usage(
                "this attachment is not encrypted; Entente downloads encrypted files only".into(),
            ));
        }
        let secret = FileSecret::from_parts(part.enc_alg, &part.key, &part.nonce)
            .map_err(ClientError::File)?;
        let hash = ContentHash::from_parts(part.hash_alg, &part.content_hash)
            .map_err(ClientError::File)?;
        if part.expires != 0 && u64::from(part.expires) <= now_secs() {
            return Err(expired());
        }
        let target = destination(dest, part, &file.message_id)?;
        let partial = partial_path(&target, &hash);
        let via = file.room.domain().to_string();
        let mut failures = 0;
        loop {
            let kept = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
            let attempt = self.download_once(
                part,
                &secret,
                &hash,
                &via,
                route,
                &partial,
                kept,
                progress.clone(),
            );
            match attempt.await {
                Ok(committed) => {
                    std::fs::rename(&partial, &target).map_err(|e| {
                        ClientError::Storage(format!(
                            "moving the file to {}: {e}",
                            target.display()
                        ))
                    })?;
                    return Ok(ReceivedFile {
                        path: target,
                        size: part.size.saturating_sub(TAG_LEN as u64),
                        committed,
                    });
                }
                Err(e) if is_transient(&e) && failures + 1 < ATTEMPTS => {}
                Err(e) => {
                    if !is_transient(&e) {
                        // Unauthenticated plaintext of a file that failed its checks:
                        // never leave it behind.
                        let _ = std::fs::remove_file(&partial);
                    }
                    return Err(e);
                }
            }
            failures += 1;
            tokio::time::sleep(backoff(failures)).await;
        }
    }

    /// One attempt: fetch from `kept` on, decrypt into `partial`, check everything.
    #[allow(clippy::too_many_arguments)]
    async fn download_once(
        &self,
        part: &ExternalPart,
        secret: &FileSecret,
        hash: &ContentHash,
        via: &str,
        route: Route,
        partial: &Path,
        mut kept: u64,
        progress: Arc<dyn Progress>,
    ) -> Result<bool, ClientError> {
        let resp = self.fetch_blob(part, via, route, kept).await?;
        let status = resp.status();
        let total = match (status.as_u16(), header_total(&resp)) {
            (206, Some(t)) => t,
            (200, _) => {
                // The provider sent the whole blob: start over.
                kept = 0;
                resp.content_length()
                    .ok_or_else(|| ClientError::Protocol("the download has no length".into()))?
            }
            _ => {
                return Err(ClientError::Protocol(format!(
                    "unexpected download answer {status}"
                )));
            }
        };
        if part.size != 0 && total != part.size {
            // The stored blob is not the one the message names.
            return Err(ClientError::File(if total < part.size {
                FileCryptoError::Truncated {
                    received: total,
                    expected: part.size,
                }
            } else {
                FileCryptoError::TooLong {
                    expected: part.size,
                }
            }));
        }
        let mut opener = BlobOpener::new(secret, &part.aad, total).map_err(ClientError::File)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUE);
        let writer = {
            let partial = partial.to_owned();
            let progress = progress.clone();
            let hash = *hash;
            tokio::task::spawn_blocking(move || -> Result<bool, ClientError> {
                let mut out = open_partial(&partial, kept)?;
                if kept > 0 {
                    progress.phase(Phase::Resuming, 0, kept);
                    resume(&mut opener, &partial, kept, &*progress)?;
                }
                progress.phase(Phase::Downloading, kept, total);
                let mut buf = Vec::with_capacity(PIECE);
                while let Some(piece) = rx.blocking_recv() {
                    buf.clear();
                    buf.extend_from_slice(&piece);
                    let text = opener.update(&mut buf).map_err(ClientError::File)?;
                    out.write_all(text).map_err(write_error)?;
                    progress.advance(piece.len() as u64);
                }
                out.flush().map_err(write_error)?;
                let file = out.into_inner().map_err(|e| write_error(e.into_error()))?;
                match opener.finish(&hash) {
                    Ok(opened) => {
                        file.sync_all().map_err(write_error)?;
                        Ok(opened.committed)
                    }
                    Err(FileCryptoError::Truncated { received, expected }) => {
                        Err(ClientError::Unreachable(format!(
                            "the download broke off after {received} of {expected} bytes"
                        )))
                    }
                    Err(e) => Err(ClientError::File(e)),
                }
            })
        };
        let mut stream = resp.bytes_stream();
        let mut broke = None;
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(b) => {
                    if tx.send(b).await.is_err() {
                        break; // the writer failed; its error says why
                    }
                }
                Err(e) => {
                    broke = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let result = writer
            .await
            .map_err(|e| ClientError::Bug(format!("decrypting task: {e}")))?;
        match (result, broke) {
            (Err(ClientError::Unreachable(_)), Some(e)) => Err(ClientError::Unreachable(format!(
                "the download broke off: {e}"
            ))),
            (r, _) => r,
        }
    }

    async fn fetch_blob(
        &self,
        part: &ExternalPart,
        via: &str,
        route: Route,
        from: u64,
    ) -> Result<reqwest::Response, ClientError> {
        match route {
            Route::ViaHub => {
                let path = format!(
                    "/v1/blobs/fetch?url={}&via={}",
                    entente_wire::api::path_segment(&part.url),
                    entente_wire::api::path_segment(via)
                );
                self.transport
                    .signed_download(&self.id.to_string(), &self.signer, &path, from)
                    .await
            }
            Route::Direct => {
                let url = BlobUrl::parse(&part.url).map_err(|e| {
                    ClientError::Usage(format!("the file's URL is not one Entente fetches: {e}"))
                })?;
                self.transport
                    .direct_download(&part.url, url.domain.as_str(), from)
                    .await
            }
        }
    }

    /// The files sent in `room` (or in every room), oldest first.
    pub fn files(&self, room: Option<&RoomId>) -> Result<Vec<FileMessage>, ClientError> {
        let rooms: Vec<RoomId> = match room {
            Some(r) => vec![r.clone()],
            None => self.rooms()?.into_iter().map(|r| r.room).collect(),
        };
        let mut out = Vec::new();
        for room in rooms {
            for entry in self.history(&room, u32::MAX)? {
                let Ok(content) = MimiContent::decode(&entry.content) else {
                    continue;
                };
                for part in external_parts(&content.nested_part) {
                    out.push(FileMessage {
                        room: room.clone(),
                        message_id: entry.message_id,
                        sender: entry.sender.clone(),
                        timestamp_ms: entry.timestamp_ms,
                        outgoing: entry.outgoing,
                        part: part.clone(),
                    });
                }
            }
        }
        out.sort_by_key(|f| f.timestamp_ms);
        Ok(out)
    }

    /// The file message whose ID starts with `prefix` (hex).
    pub fn find_file(&self, prefix: &str) -> Result<FileMessage, ClientError> {
        let prefix = prefix.to_ascii_lowercase();
        let mut found: Vec<FileMessage> = self
            .files(None)?
            .into_iter()
            .filter(|f| hex::encode(f.message_id).starts_with(&prefix))
            .collect();
        match found.len() {
            0 => Err(ClientError::Usage(format!(
                "no file message with an ID starting {prefix}; `entente file list` shows them"
            ))),
            1 => Ok(found.remove(0)),
            n => Err(ClientError::Usage(format!(
                "{n} file messages have IDs starting {prefix}; give more digits"
            ))),
        }
    }

    /// Starts an upload of `size` bytes at our provider (the first step of
    /// [`Client::send_file`], for tools that upload blobs themselves).
    pub async fn create_blob(&self, size: u64) -> Result<BlobCreated, ClientError> {
        self.signed(
            reqwest::Method::POST,
            "/v1/blobs",
            Some(&CreateBlob { size }),
        )
        .await
    }

    /// How much of an upload our provider holds.
    pub async fn upload_status(&self, blob: &BlobCreated) -> Result<UploadStatus, ClientError> {
        self.transport
            .upload_status(blob.id.as_str(), &blob.upload_token)
            .await
    }

    /// How much of our blob quota is used.
    pub async fn blob_usage(&self) -> Result<BlobUsage, ClientError> {
        self.signed::<(), _>(reqwest::Method::GET, "/v1/blobs", None)
            .await
    }

    /// Deletes a file we sent from our provider before it expires (recipients can no
    /// longer download it), freeing quota.
    pub async fn delete_sent_file(&self, file: &FileMessage) -> Result<(), ClientError> {
        let url = BlobUrl::parse(&file.part.url)
            .map_err(|e| ClientError::Usage(format!("not an Entente file URL: {e}")))?;
        if url.domain != *self.user().domain() {
            return Err(ClientError::Usage(
                "that file is stored by another provider; only its sender can delete it".into(),
            ));
        }
        self.delete_blob(url.id.as_str()).await?;
        Ok(())
    }

    /// Deletes one of our blobs at our provider; returns our usage afterwards.
    async fn delete_blob(&self, id: &str) -> Result<BlobUsage, ClientError> {
        self.signed::<(), _>(reqwest::Method::DELETE, &format!("/v1/blobs/{id}"), None)
            .await
    }

    fn pending_upload(&self, key: &UploadKey) -> Result<Option<PendingUpload>, ClientError> {
        type Row = (
            u16,
            Vec<u8>,
            Vec<u8>,
            Vec<u8>,
            String,
            String,
            String,
            i64,
            i64,
        );
        let row: Option<Row> = self
            .db()
            .query_row(
                "SELECT enc_alg, key, nonce, aad, blob_id, blob_url, upload_token, expires, size
                 FROM uploads WHERE path = ?1 AND file_len = ?2 AND file_mtime = ?3
                   AND enc_alg = ?4 AND room = ?5",
                params![key.path, key.len, key.mtime, key.alg, key.room],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                },
            )
            .optional()
            .map_err(storage)?;
        let Some((alg, k, nonce, aad, id, url, token, expires, size)) = row else {
            return Ok(None);
        };
        if (expires as u64) <= now_secs() + 3600 {
            self.forget_pending_upload(key)?;
            return Ok(None);
        }
        let secret = FileSecret::from_parts(alg, &k, &nonce).map_err(ClientError::File)?;
        if !aad.starts_with(entente_core::files::COMMITMENT_LABEL) {
            return Err(ClientError::Storage(
                "a kept upload has no commitment".into(),
            ));
        }
        Ok(Some(PendingUpload {
            secret,
            aad,
            blob: BlobCreated {
                id: id
                    .parse()
                    .map_err(|e| ClientError::Storage(format!("kept upload: {e}")))?,
                url,
                upload_token: token,
                expires: expires as u64,
            },
            size: size as u64,
        }))
    }

    fn save_pending_upload(&self, key: &UploadKey, p: &PendingUpload) -> Result<(), ClientError> {
        self.db()
            .execute(
                "INSERT OR REPLACE INTO uploads (path, file_len, file_mtime, enc_alg, room, key,
                     nonce, aad, blob_id, blob_url, upload_token, expires, size, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    key.path,
                    key.len,
                    key.mtime,
                    key.alg,
                    key.room,
                    p.secret.key(),
                    &p.secret.nonce()[..],
                    p.aad,
                    p.blob.id.as_str(),
                    p.blob.url,
                    p.blob.upload_token,
                    p.blob.expires as i64,
                    p.size as i64,
                    now_secs() as i64
                ],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn forget_pending_upload(&self, key: &UploadKey) -> Result<(), ClientError> {
        self.db()
            .execute(
                "DELETE FROM uploads WHERE path = ?1 AND file_len = ?2 AND file_mtime = ?3
                   AND enc_alg = ?4 AND room = ?5",
                params![key.path, key.len, key.mtime, key.alg, key.room],
            )
            .map_err(storage)?;
        Ok(())
    }
}

/// Identifies an upload that can be resumed: the same file, unchanged, to the same
/// room with the same algorithm.
struct UploadKey {
    path: String,
    len: i64,
    mtime: i64,
    alg: u16,
    room: String,
}

impl UploadKey {
    fn of(
        path: &Path,
        meta: &std::fs::Metadata,
        alg: FileAead,
        room: &RoomId,
    ) -> Result<Self, ClientError> {
        let abs = std::fs::canonicalize(path)
            .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", path.display())))?;
        let mtime = mtime_ns(meta);
        Ok(Self {
            path: abs.to_string_lossy().into_owned(),
            len: meta.len() as i64,
            mtime,
            alg: alg.iana(),
            room: room.to_string(),
        })
    }
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The ExternalParts of a message, in order.
fn external_parts(part: &NestedPart) -> Vec<&ExternalPart> {
    match &part.body {
        PartBody::External(e) => vec![e.as_ref()],
        PartBody::Multi(m) => m.parts().iter().flat_map(external_parts).collect(),
        _ => Vec::new(),
    }
}

/// First pass: SHA-256 of the file, to commit to it in the `aad`.
async fn hash_file(
    path: &Path,
    len: u64,
    progress: Arc<dyn Progress>,
) -> Result<[u8; 32], ClientError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        progress.phase(Phase::Hashing, 0, len);
        let mut f = std::fs::File::open(&path).map_err(|e| read_error(&path, e))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; PIECE];
        loop {
            let n = f.read(&mut buf).map_err(|e| read_error(&path, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            progress.advance(n as u64);
        }
        Ok(<[u8; 32]>::from(h.finalize()))
    })
    .await
    .map_err(|e| ClientError::Bug(format!("hashing task: {e}")))?
}

enum SealError {
    /// The upload stopped taking bytes.
    Stopped,
    Fatal(ClientError),
}

/// Second pass: encrypts the file and sends the blob's bytes from `skip` on.
///
/// The file must not change between the passes, or recipients would refuse it
/// (its plaintext would not match the hash committed to in the `aad`). Hashing it
/// again here would catch that but costs a third of the sender's time, so its
/// length and modification time (to the nanosecond) are compared instead, before
/// and after, as rsync and make do.
fn seal_file(
    path: &Path,
    secret: &FileSecret,
    aad: &[u8],
    unchanged: (i64, i64),
    skip: u64,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
    progress: &dyn Progress,
) -> Result<SealedTail, SealError> {
    let fatal = SealError::Fatal;
    let changed = || {
        ClientError::Usage(format!(
            "{} changed while it was being sent; send it again",
            path.display()
        ))
    };
    let mut f = std::fs::File::open(path).map_err(|e| fatal(read_error(path, e)))?;
    let same = |f: &std::fs::File| {
        f.metadata()
            .map(|m| (m.len() as i64, mtime_ns(&m)) == unchanged)
            .unwrap_or(false)
    };
    if !same(&f) {
        return Err(fatal(changed()));
    }
    let mut sealer = BlobSealer::new(secret, aad);
    let mut pos = 0u64;
    let send = |mut bytes: Vec<u8>, pos: u64| -> Result<(), SealError> {
        let len = bytes.len() as u64;
        if pos + len <= skip {
            return Ok(());
        }
        if pos < skip {
            bytes.drain(..(skip - pos) as usize);
        }
        let n = bytes.len() as u64;
        tx.blocking_send(Bytes::from(bytes))
            .map_err(|_| SealError::Stopped)?;
        progress.advance(n);
        Ok(())
    };
    loop {
        let mut buf = vec![0u8; PIECE];
        let n = read_full(&mut f, &mut buf).map_err(|e| fatal(read_error(path, e)))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        sealer
            .update(&mut buf)
            .map_err(|e| fatal(ClientError::File(e)))?;
        send(buf, pos)?;
        pos += n as u64;
    }
    if pos as i64 != unchanged.0 || !same(&f) {
        return Err(fatal(changed()));
    }
    let tail = sealer.finish();
    send(tail.tag.to_vec(), pos)?;
    Ok(tail)
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The provider's copy must be exactly what we encrypted.
fn check_stored(status: &UploadStatus, tail: SealedTail) -> Result<SealedTail, ClientError> {
    if status.sha256.as_deref() != Some(hex::encode(tail.content_hash.as_bytes()).as_str()) {
        return Err(ClientError::Protocol(
            "the provider's copy of the file differs from what was uploaded; send it again".into(),
        ));
    }
    Ok(tail)
}

/// Re-reads the kept plaintext of an interrupted download into `opener`.
fn resume(
    opener: &mut BlobOpener,
    partial: &Path,
    kept: u64,
    progress: &dyn Progress,
) -> Result<(), ClientError> {
    let mut f = std::fs::File::open(partial).map_err(|e| read_error(partial, e))?;
    let mut buf = vec![0u8; PIECE];
    let mut left = kept;
    while left > 0 {
        let want = usize::try_from(left).map_or(PIECE, |l| l.min(PIECE));
        f.read_exact(&mut buf[..want])
            .map_err(|e| read_error(partial, e))?;
        opener
            .resume_from_plaintext(&buf[..want])
            .map_err(ClientError::File)?;
        progress.advance(want as u64);
        left -= want as u64;
    }
    Ok(())
}

/// Opens the partial file for writing after its first `kept` bytes.
fn open_partial(path: &Path, kept: u64) -> Result<std::io::BufWriter<std::fs::File>, ClientError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(write_error)?;
    f.set_len(kept).map_err(write_error)?;
    f.seek(std::io::SeekFrom::Start(kept))
        .map_err(write_error)?;
    Ok(std::io::BufWriter::with_capacity(PIECE, f))
}

/// Where a download ends up: `dest` itself, or the sender's file name (made safe)
/// inside the directory `dest`. Never an existing file.
fn destination(dest: &Path, part: &ExternalPart, id: &[u8; 32]) -> Result<PathBuf, ClientError> {
    let target = if dest.is_dir() {
        dest.join(safe_file_name(&part.filename, id))
    } else {
        dest.to_owned()
    };
    if target.exists() {
        return Err(ClientError::Usage(format!(
            "{} exists already; choose another destination with --out",
            target.display()
        )));
    }
    Ok(target)
}

/// A file name from a message, safe to create: no directories, no hidden or
/// special names, no control characters.
pub fn safe_file_name(name: &str, id: &[u8; 32]) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        format!("file-{}", &hex::encode(id)[..12])
    } else {
        cleaned.chars().take(200).collect()
    }
}

fn partial_path(target: &Path, hash: &ContentHash) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(
        ".{name}.{}.entente-part",
        &hex::encode(hash.as_bytes())[..12]
    ))
}

fn header_total(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?
        .rsplit_once('/')?
        .1
        .parse()
        .ok()
}

fn guess_content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" => "text/plain;charset=utf-8",
        "md" => "text/markdown",
        "html" | "htm" => "text/html",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" | "opus" => "audio/ogg",
        "wav" => "audio/wav",
        "zip" => "application/zip",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

fn is_transient(e: &ClientError) -> bool {
    match e {
        ClientError::Unreachable(_) | ClientError::RateLimited { .. } => true,
        ClientError::Provider { status, code, .. } => {
            *status >= 500 || *status == 429 || code == "offset_mismatch" || *status == 409
        }
        _ => false,
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(200u64 << failures.min(5))
}

fn expired() -> ClientError {
    ClientError::Provider {
        status: 410,
        code: "expired".into(),
        message:
            "the file has expired and was deleted by its provider; ask the sender to send it again"
                .into(),
        retry_after_secs: None,
    }
}

fn read_error(path: &Path, e: std::io::Error) -> ClientError {
    ClientError::Usage(format!("cannot read {}: {e}", path.display()))
}

fn write_error(e: std::io::Error) -> ClientError {
    ClientError::Storage(format!("writing the downloaded file: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_messages_are_made_safe() {
        let id = [0xab; 32];
        assert_eq!(safe_file_name("report.pdf", &id), "report.pdf");
        assert_eq!(safe_file_name("../../etc/passwd", &id), "passwd");
        assert_eq!(safe_file_name("..\\..\\boot.ini", &id), "boot.ini");
        assert_eq!(safe_file_name(".bashrc", &id), "bashrc");
        assert_eq!(safe_file_name("a\nb", &id), "a_b");
        assert_eq!(safe_file_name("", &id), "file-abababababab");
        assert_eq!(safe_file_name("..", &id), "file-abababababab");
        assert_eq!(safe_file_name("/", &id), "file-abababababab");
    }
}
