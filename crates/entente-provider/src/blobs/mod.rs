//! The blob store: encrypted file attachments, as opaque bytes.
//!
//! Clients encrypt a file under a fresh key before they upload it; the key travels
//! only inside the end-to-end encrypted message, so what is stored here is
//! ciphertext the provider cannot read. Metadata (owner, size, expiry) lives in the
//! [`crate::store::Store`]; the bytes live behind [`BlobStore`], which the
//! filesystem implements ([`FsBlobStore`]) and an S3-compatible object store could
//! implement later (an upload maps to a multipart upload, `finish` to its
//! completion, `open` to a ranged GET).
//!
//! - [`routes`]: the HTTP side: upload (resumable), download (ranged), the client's
//!   download through its own provider, and MIMI `proxyDownload` on the hub.

pub mod routes;

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bytes::Bytes;
use entente_wire::blobs::BlobId;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// A stream of bytes: an upload's body, or a download.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;
type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// How an append ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The body ended; this many bytes were appended.
    Ended(u64),
    /// The body broke off (the client went away); this many bytes were appended
    /// and are kept, so the upload can resume after them.
    Interrupted(u64),
    /// The body held more than the limit. Nothing of this append was kept.
    TooLong,
}

/// A blob's bytes, or a range of them.
pub struct BlobRead {
    /// The requested bytes.
    pub stream: ByteStream,
    /// The blob's full length.
    pub total: u64,
}

/// Where blob bytes are kept. Uploads are appended in order and become readable only
/// once finished, so a reader never sees a partial blob.
pub trait BlobStore: Send + Sync {
    /// Starts an empty upload.
    fn begin<'a>(&'a self, id: &'a BlobId) -> BoxFuture<'a, io::Result<()>>;
    /// Bytes an unfinished upload holds, or `None` if there is no such upload.
    fn received<'a>(&'a self, id: &'a BlobId) -> BoxFuture<'a, io::Result<Option<u64>>>;
    /// Appends `body` to an unfinished upload that holds `offset` bytes, up to
    /// `limit` bytes; each piece is passed to `seen` once it is written.
    fn append<'a>(
        &'a self,
        id: &'a BlobId,
        offset: u64,
        body: ByteStream,
        limit: u64,
        seen: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> BoxFuture<'a, io::Result<Appended>>;
    /// Makes a complete upload durable and readable.
    fn finish<'a>(&'a self, id: &'a BlobId) -> BoxFuture<'a, io::Result<()>>;
    /// Reads bytes `start..end` (`end` = the blob's length if `None`) of a finished
    /// blob; `None` if there is none.
    fn open<'a>(
        &'a self,
        id: &'a BlobId,
        start: u64,
        end: Option<u64>,
    ) -> BoxFuture<'a, io::Result<Option<BlobRead>>>;
    /// The length of a finished blob, or `None` if there is none.
    fn len<'a>(&'a self, id: &'a BlobId) -> BoxFuture<'a, io::Result<Option<u64>>>;
    /// Deletes a blob, finished or not. Deleting a missing blob succeeds.
    fn delete<'a>(&'a self, id: &'a BlobId) -> BoxFuture<'a, io::Result<()>>;
}

/// Blobs as files: `<dir>/partial/<id>` while uploading, then `<dir>/<id[0..2]>/<id>`.
pub struct FsBlobStore {
    dir: PathBuf,
}

/// Appends are written in pieces this large.
const WRITE_BUFFER: usize = 1 << 20;
/// Downloads are read in pieces this large.
const READ_BUFFER: usize = 256 << 10;

impl FsBlobStore {
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir.join("partial"))?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn partial(&self, id: &BlobId) -> PathBuf {
        self.dir.join("partial").join(id.as_str())
    }

    fn complete(&self, id: &BlobId) -> PathBuf {
        let s = id.as_str();
        self.dir.join(&s[..2]).join(s)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl BlobStore for FsBlobStore {
    fn begin<'a>(&'a self, id: &'a BlobId) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(self.partial(id))
                .await?;
            Ok(())
        })
    }

    fn received<'a>(&'a self, id: &'a BlobId) -> BoxFuture<'a, io::Result<Option<u64>>> {
        Box::pin(async move {
            match tokio::fs::metadata(self.partial(id)).await {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn append<'a>(
        &'a self,
        id: &'a BlobId,
        offset: u64,
        mut body: ByteStream,
        limit: u64,
        seen: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> BoxFuture<'a, io::Result<Appended>> {
        Box::pin(async move {
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .open(self.partial(id))
                .await?;
            if file.metadata().await?.len() != offset {
                return Err(io::Error::other("upload offset changed under us"));
            }
            file.seek(io::SeekFrom::Start(offset)).await?;
            let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
            let mut written = 0u64;
            let mut interrupted = false;
            while let Some(piece) = body.next().await {
                let piece = match piece {
                    Ok(p) => p,
                    Err(_) => {
                        interrupted = true;
                        break;
                    }
                };
                if written + piece.len() as u64 > limit {
                    drop(out);
                    let f = tokio::fs::OpenOptions::new()
                        .write(true)
                        .open(self.partial(id))
                        .await?;
                    f.set_len(offset).await?;
                    return Ok(Appended::TooLong);
                }
                out.write_all(&piece).await?;
                written += piece.len() as u64;
                seen(&piece);
            }
            out.flush().await?;
            Ok(if interrupted {
                Appended::Interrupted(written)
            } else {
                Appended::Ended(written)
            })
        })
    }

    fn finish<'a>(&'a self, id: &'a BlobId) -> BoxFuture<'a, io::Result<()>> {
        let (from, to) = (self.partial(id), self.complete(id));
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                std::fs::File::open(&from)?.sync_all()?;
                let parent = to.parent().ok_or_else(|| io::Error::other("blob path"))?;
                std::fs::create_dir_all(parent)?;
                std::fs::rename(&from, &to)?;
                sync_dir(parent)?;
                if let Some(p) = from.parent() {
                    sync_dir(p)?;
                }
                Ok(())
            })
            .await
            .map_err(io::Error::other)?
        })
    }

    fn open<'a>(
        &'a self,
        id: &'a BlobId,
        start: u64,
        end: Option<u64>,
    ) -> BoxFuture<'a, io::Result<Option<BlobRead>>> {
        Box::pin(async move {
            let mut file = match tokio::fs::File::open(self.complete(id)).await {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let total = file.metadata().await?.len();
            let end = end.unwrap_or(total).min(total);
            let start = start.min(end);
            file.seek(io::SeekFrom::Start(start)).await?;
            let stream =
                tokio_util::io::ReaderStream::with_capacity(file.take(end - start), READ_BUFFER);
            Ok(Some(BlobRead {
                stream: Box::pin(stream),
                total,
            }))
        })
    }

    fn len<'a>(&'a self, id: &'a BlobId) -> BoxFuture<'a, io::Result<Option<u64>>> {
        Box::pin(async move {
            match tokio::fs::metadata(self.complete(id)).await {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn delete<'a>(&'a self, id: &'a BlobId) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            for p in [self.partial(id), self.complete(id)] {
                match tokio::fs::remove_file(&p).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn body(pieces: Vec<io::Result<&'static [u8]>>) -> ByteStream {
        Box::pin(futures::stream::iter(
            pieces.into_iter().map(|p| p.map(Bytes::from_static)),
        ))
    }

    async fn read_all(store: &FsBlobStore, id: &BlobId, start: u64, end: Option<u64>) -> Vec<u8> {
        let r = store.open(id, start, end).await.unwrap().unwrap();
        let mut out = Vec::new();
        let mut s = r.stream;
        while let Some(p) = s.next().await {
            out.extend_from_slice(&p.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn upload_resume_finish_read_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let id = BlobId::from_bytes([7; 16]);
        store.begin(&id).await.unwrap();
        assert!(store.begin(&id).await.is_err(), "an upload starts once");
        assert_eq!(store.received(&id).await.unwrap(), Some(0));
        let mut seen = Vec::new();
        let mut sink = |b: &[u8]| seen.extend_from_slice(b);
        // The client goes away after two pieces: they are kept.
        let r = store
            .append(
                &id,
                0,
                body(vec![
                    Ok(b"hello "),
                    Ok(b"wor"),
                    Err(io::Error::other("reset")),
                ]),
                11,
                &mut sink,
            )
            .await
            .unwrap();
        assert_eq!(r, Appended::Interrupted(9));
        assert_eq!(store.received(&id).await.unwrap(), Some(9));
        // A wrong offset is refused.
        assert!(
            store
                .append(&id, 3, body(vec![Ok(b"x")]), 2, &mut |_| {})
                .await
                .is_err()
        );
        // Too much is refused and leaves the upload as it was.
        let r = store
            .append(&id, 9, body(vec![Ok(b"ld!!")]), 2, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(r, Appended::TooLong);
        assert_eq!(store.received(&id).await.unwrap(), Some(9));
        let r = store
            .append(&id, 9, body(vec![Ok(b"ld")]), 2, &mut sink)
            .await
            .unwrap();
        assert_eq!(r, Appended::Ended(2));
        assert_eq!(seen, b"hello world");
        assert!(store.open(&id, 0, None).await.unwrap().is_none(), "not yet");
        store.finish(&id).await.unwrap();
        assert_eq!(store.received(&id).await.unwrap(), None);
        assert_eq!(read_all(&store, &id, 0, None).await, b"hello world");
        assert_eq!(read_all(&store, &id, 6, None).await, b"world");
        assert_eq!(read_all(&store, &id, 2, Some(4)).await, b"ll");
        assert_eq!(read_all(&store, &id, 20, None).await, b"");
        store.delete(&id).await.unwrap();
        assert!(store.open(&id, 0, None).await.unwrap().is_none());
        store.delete(&id).await.unwrap();
    }
}
