//! Blob endpoints.
//!
//! Client API (ours):
//! - `POST /v1/blobs` (signed): start an upload; checks the size limit and quota.
//! - `GET /v1/blobs` (signed): the user's usage and quota.
//! - `PATCH /v1/blobs/{id}` (upload token): append bytes at an offset.
//! - `GET /v1/blobs/{id}/upload` (upload token): how much has arrived.
//! - `DELETE /v1/blobs/{id}` (signed, owner): delete early, freeing quota.
//! - `GET /v1/blobs/fetch?url=..&via=<hub>` (signed): download a blob through this
//!   provider. A blob of another provider is fetched through the hub's
//!   `proxyDownload`, so its provider sees only the hub, never the client.
//!
//! Public: `GET /blobs/{id}`: direct download, ranged. Anyone holding the URL may
//! fetch the ciphertext; this reveals the downloader's address to this provider.
//!
//! MIMI: `GET /mimi/v1/proxyDownload/{downloadUrl}` (draft-ietf-mimi-protocol-06
//! section 5.10.2), served to peer providers that take part in a room we hub, for
//! blob URLs of such providers (or our own) only: the hub is not an open proxy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use entente_wire::api::path_segment;
use entente_wire::blobs::{
    BlobCreated, BlobId, BlobUrl, BlobUsage, CreateBlob, UPLOAD_OFFSET_HEADER, UPLOAD_TOKEN_HEADER,
    UploadStatus, byte_range,
};
use entente_wire::ids::Domain;
use futures::{StreamExt, TryStreamExt};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Appended;
use crate::client_api::Authed;
use crate::error::Failure;
use crate::federation::MIMI_PREFIX;
use crate::federation::server::Peer;
use crate::state::{AppState, now_secs};
use crate::store::{BlobAdmission, BlobRecord};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/blobs", get(usage).post(create))
        .route("/v1/blobs/fetch", get(client_fetch))
        .route("/v1/blobs/{id}", patch(append).delete(delete))
        .route("/v1/blobs/{id}/upload", get(upload_status))
        .route("/blobs/{id}", get(download))
        .route(
            &format!("{MIMI_PREFIX}/proxyDownload/{{url}}"),
            get(proxy_download),
        )
        .with_state(state)
}

/// Per-upload state: the lock that lets one `PATCH` at a time append, and the
/// running SHA-256 of the bytes stored so far (lost on restart, then recomputed
/// from the stored bytes).
#[derive(Default)]
pub struct Uploads {
    map: Mutex<HashMap<BlobId, Arc<tokio::sync::Mutex<Option<Running>>>>>,
}

pub struct Running {
    offset: u64,
    hash: Sha256,
}

impl Uploads {
    fn slot(&self, id: &BlobId) -> Arc<tokio::sync::Mutex<Option<Running>>> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(id.clone()).or_default().clone()
    }

    pub fn forget(&self, id: &BlobId) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

fn id_param(id: &str) -> Result<BlobId, Failure> {
    id.parse()
        .map_err(|e| Failure::not_found(format!("no such file: {e}")))
}

fn over_limit(size: u64, max: u64) -> Failure {
    Failure::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the file needs {size} bytes; this provider accepts files up to {max} bytes"),
    )
}

async fn create(State(state): State<AppState>, a: Authed) -> Result<Response, Failure> {
    let req: CreateBlob = a.json()?;
    let cfg = &state.config.blobs;
    if req.size > cfg.max_blob_bytes {
        return Err(over_limit(req.size, cfg.max_blob_bytes));
    }
    let mut raw = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut raw);
    let id = BlobId::from_bytes(raw);
    let mut token = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut token);
    let token = hex::encode(token);
    let now = now_secs();
    let record = BlobRecord {
        id: id.to_string(),
        owner: a.client.user.clone(),
        size: req.size,
        token_hash: Sha256::digest(token.as_bytes()).into(),
        created_at: now,
        expires_at: now.saturating_add(cfg.expiry_days.saturating_mul(86_400)),
        sha256: None,
    };
    let quota = cfg.quota_bytes_per_user;
    let r = record.clone();
    match state.db(move |s| s.create_blob(&r, quota)).await? {
        BlobAdmission::Admitted => {}
        BlobAdmission::OverQuota { used } => {
            return Err(Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "quota_exceeded",
                format!(
                    "storage quota exceeded: the file needs {} bytes but only {} of your {} \
                     bytes are free; delete files you sent (`entente file rm`) or wait for \
                     them to expire",
                    req.size,
                    quota.saturating_sub(used),
                    quota
                ),
            ));
        }
    }
    if let Err(e) = state.blobs.begin(&id).await {
        let key = id.to_string();
        let _ = state.db(move |s| s.delete_blob(&key)).await;
        return Err(Failure::internal("starting an upload", e));
    }
    state
        .metrics
        .blobs_created
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let body = BlobCreated {
        url: BlobUrl::new(state.domain.clone(), id.clone()).to_string(),
        id,
        upload_token: token,
        expires: record.expires_at,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn usage(State(state): State<AppState>, a: Authed) -> Result<Json<BlobUsage>, Failure> {
    let owner = a.client.user.clone();
    let used = state.db(move |s| s.blob_usage(&owner, now_secs())).await?;
    Ok(Json(BlobUsage {
        used,
        quota: state.config.blobs.quota_bytes_per_user,
        max_blob: state.config.blobs.max_blob_bytes,
    }))
}

/// The blob, if it exists, has not expired, and `headers` carry its upload token.
async fn authorize_upload(
    state: &AppState,
    id: &BlobId,
    headers: &HeaderMap,
) -> Result<BlobRecord, Failure> {
    let key = id.to_string();
    let record = state.db(move |s| s.blob(&key)).await?.ok_or_else(|| {
        Failure::not_found("no such upload; it expired or was deleted: start again")
    })?;
    let token = headers
        .get(UPLOAD_TOKEN_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let hash: [u8; 32] = Sha256::digest(token).into();
    if !bool::from(hash.ct_eq(&record.token_hash)) {
        return Err(Failure::unauthenticated(format!(
            "missing or wrong {UPLOAD_TOKEN_HEADER} header for this upload"
        )));
    }
    if record.expires_at <= now_secs() {
        return Err(expired());
    }
    Ok(record)
}

fn expired() -> Failure {
    Failure::new(
        StatusCode::GONE,
        "expired",
        "the file has expired and was deleted by its provider; ask the sender to send it again",
    )
}

fn status_of(record: &BlobRecord, offset: u64) -> UploadStatus {
    UploadStatus {
        offset: if record.sha256.is_some() {
            record.size
        } else {
            offset
        },
        size: record.size,
        complete: record.sha256.is_some(),
        sha256: record.sha256.map(hex::encode),
    }
}

async fn upload_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<UploadStatus>, Failure> {
    let id = id_param(&id)?;
    let record = authorize_upload(&state, &id, &headers).await?;
    if record.sha256.is_some() {
        return Ok(Json(status_of(&record, record.size)));
    }
    let slot = state.uploads.slot(&id);
    let _guard = slot.lock().await;
    Ok(Json(status_of(&record, stored_bytes(&state, &id).await?)))
}

/// How many bytes of an unfinished upload the blob store holds.
async fn stored_bytes(state: &AppState, id: &BlobId) -> Result<u64, Failure> {
    state
        .blobs
        .received(id)
        .await
        .map_err(|e| Failure::internal("reading an upload", e))?
        .ok_or_else(|| Failure::not_found("the upload was lost; start again"))
}

async fn append(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<UploadStatus>, Failure> {
    let id = id_param(&id)?;
    let (parts, body) = request.into_parts();
    let mut record = authorize_upload(&state, &id, &parts.headers).await?;
    let offset: u64 = parts
        .headers
        .get(UPLOAD_OFFSET_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Failure::bad_request(format!(
                "missing {UPLOAD_OFFSET_HEADER} header: the byte of the file the body starts at"
            ))
        })?;
    if record.sha256.is_some() {
        return Ok(Json(status_of(&record, record.size)));
    }
    let slot = state.uploads.slot(&id);
    let Ok(mut running) = slot.try_lock() else {
        return Err(Failure::conflict(
            "another upload of this file is still running; wait for it or try again shortly",
        ));
    };
    let received = stored_bytes(&state, &id).await?;
    if offset != received {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            "offset_mismatch",
            format!("the provider has {received} bytes of this file; resume from there"),
        ));
    }
    // The running hash must cover exactly the stored bytes; after a restart (or a
    // failed write) it is rebuilt from them.
    if running.as_ref().is_none_or(|r| r.offset != received) {
        *running = Some(rehash(&state, &id, received).await?);
    }
    let Some(run) = running.as_mut() else {
        return Err(Failure::internal("hashing an upload", "no running hash"));
    };
    let stream = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .boxed();
    let mut seen = |b: &[u8]| run.hash.update(b);
    let outcome = state
        .blobs
        .append(&id, offset, stream, record.size - offset, &mut seen)
        .await;
    let added = match outcome {
        Ok(Appended::Ended(n) | Appended::Interrupted(n)) => n,
        Ok(Appended::TooLong) => {
            *running = None;
            return Err(Failure::bad_request(format!(
                "the body runs past the file's size of {} bytes; nothing of it was kept",
                record.size
            )));
        }
        Err(e) => {
            *running = None;
            return Err(Failure::internal("storing an upload", e));
        }
    };
    run.offset += added;
    state
        .metrics
        .blob_bytes_in
        .fetch_add(added, std::sync::atomic::Ordering::Relaxed);
    if run.offset < record.size {
        return Ok(Json(status_of(&record, run.offset)));
    }
    let sha: [u8; 32] = run.hash.clone().finalize().into();
    state
        .blobs
        .finish(&id)
        .await
        .map_err(|e| Failure::internal("storing an upload", e))?;
    let key = id.to_string();
    state.db(move |s| s.complete_blob(&key, &sha)).await?;
    *running = None;
    drop(running);
    state.uploads.forget(&id);
    record.sha256 = Some(sha);
    Ok(Json(status_of(&record, record.size)))
}

/// SHA-256 of the first `len` stored bytes of an unfinished upload.
async fn rehash(state: &AppState, id: &BlobId, len: u64) -> Result<Running, Failure> {
    let path = state.config.blob_dir().join("partial").join(id.as_str());
    let hash = tokio::task::spawn_blocking(move || -> std::io::Result<Sha256> {
        use std::io::Read;
        let mut f = std::fs::File::open(path)?.take(len);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h)
    })
    .await
    .map_err(|e| Failure::internal("hashing an upload", e))?
    .map_err(|e| Failure::internal("hashing an upload", e))?;
    Ok(Running { offset: len, hash })
}

/// Deletes one of the caller's blobs; answers with the user's usage afterwards.
async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    a: Authed,
) -> Result<Json<BlobUsage>, Failure> {
    let id = id_param(&id)?;
    let key = id.to_string();
    let owner = a.client.user.clone();
    state
        .db(move |s| s.blob(&key))
        .await?
        .filter(|r| r.owner == owner)
        .ok_or_else(|| Failure::not_found("you have no such file"))?;
    remove_blob(&state, &id).await?;
    usage(State(state), a).await
}

/// Deletes a blob's bytes, then its record.
pub async fn remove_blob(state: &AppState, id: &BlobId) -> Result<(), Failure> {
    let slot = state.uploads.slot(id);
    let _guard = slot.lock().await;
    state
        .blobs
        .delete(id)
        .await
        .map_err(|e| Failure::internal("deleting a blob", e))?;
    let key = id.to_string();
    state.db(move |s| s.delete_blob(&key)).await?;
    drop(_guard);
    state.uploads.forget(id);
    Ok(())
}

/// Deletes expired blobs and abandoned uploads; returns how many.
pub async fn collect_garbage(state: &AppState) -> Result<u64, Failure> {
    let now = now_secs();
    let stale = now.saturating_sub(state.config.blobs.stale_upload_hours.saturating_mul(3600));
    let mut total = 0;
    loop {
        let ids = state
            .db(move |s| s.blobs_to_collect(now, stale, 500))
            .await?;
        if ids.is_empty() {
            return Ok(total);
        }
        for id in ids {
            match id.parse::<BlobId>() {
                Ok(id) => remove_blob(state, &id).await?,
                Err(_) => {
                    let _ = state.db(move |s| s.delete_blob(&id)).await?;
                }
            }
            total += 1;
        }
    }
}

/// Serves one of our blobs, honouring `Range`.
async fn serve_local(
    state: &AppState,
    id: &BlobId,
    range: Option<&HeaderValue>,
) -> Result<Response, Failure> {
    let key = id.to_string();
    let record = state.db(move |s| s.blob(&key)).await?.ok_or_else(missing)?;
    if record.expires_at <= now_secs() {
        return Err(expired());
    }
    let Some(sha) = record.sha256 else {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "incomplete",
            "the file is still being uploaded; try again later",
        ));
    };
    // What the store holds is what is served: the recipient checks it against the
    // message, so a damaged copy is refused there, with a precise reason.
    let total = state
        .blobs
        .len(id)
        .await
        .map_err(|e| Failure::internal("reading a blob", e))?
        .ok_or_else(|| {
            tracing::warn!("a complete blob's bytes are missing");
            missing()
        })?;
    if total != record.size {
        tracing::warn!(expected = record.size, total, "a stored blob changed size");
    }
    let (start, end, partial) = match byte_range(range.and_then(|v| v.to_str().ok()), total) {
        Ok(Some((s, e))) => (s, e, true),
        Ok(None) => (0, total, false),
        Err(()) => {
            let mut r = Failure::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "bad_range",
                format!("the file has {total} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let read = state
        .blobs
        .open(id, start, Some(end))
        .await
        .map_err(|e| Failure::internal("reading a blob", e))?
        .ok_or_else(|| {
            tracing::warn!("a complete blob's bytes are missing");
            missing()
        })?;
    let metrics = state.clone();
    let stream = read.stream.inspect(move |p| {
        if let Ok(b) = p {
            metrics
                .metrics
                .blob_bytes_out
                .fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", hex::encode(sha))) {
        h.insert(header::ETAG, v);
    }
    if partial {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        let last = end.saturating_sub(1).max(start);
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{last}/{}", read.total)) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(r)
}

fn missing() -> Failure {
    Failure::not_found("no such file: it was never uploaded, or it was deleted")
}

/// `GET /blobs/{id}`: direct download.
async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let id = id_param(&id)?;
    serve_local(&state, &id, headers.get(header::RANGE)).await
}

#[derive(Deserialize)]
struct FetchQuery {
    url: String,
    /// The hub of the room the URL was sent in.
    via: String,
}

/// `GET /v1/blobs/fetch`: a client downloads through its own provider.
async fn client_fetch(
    State(state): State<AppState>,
    Query(q): Query<FetchQuery>,
    headers: HeaderMap,
    _client: Authed,
) -> Result<Response, Failure> {
    let url = BlobUrl::parse(&q.url)
        .map_err(|e| Failure::bad_request(format!("not a blob URL this provider fetches: {e}")))?;
    let via = Domain::parse(&q.via).map_err(|e| Failure::bad_request(format!("via: {e}")))?;
    fetch_via(&state, &url, &via, headers.get(header::RANGE)).await
}

async fn proxy_download(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path(url): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let url = BlobUrl::parse(&url)
        .map_err(|e| Failure::bad_request(format!("proxyDownload takes a blob URL: {e}")))?;
    let (hub, p) = (state.domain.to_string(), peer.to_string());
    if !state.db(move |s| s.hub_shares_room_with(&hub, &p)).await? {
        return Err(Failure::forbidden(
            "proxyDownload is for providers taking part in a room this provider hubs",
        ));
    }
    fetch_as_hub(&state, &url, headers.get(header::RANGE)).await
}

/// As hub: serves our own blob, or fetches one from a provider taking part in one of
/// our rooms.
async fn fetch_as_hub(
    state: &AppState,
    url: &BlobUrl,
    range: Option<&HeaderValue>,
) -> Result<Response, Failure> {
    if state.is_local(&url.domain) {
        return serve_local(state, &url.id, range).await;
    }
    let (hub, d) = (state.domain.to_string(), url.domain.to_string());
    if !state.db(move |s| s.hub_shares_room_with(&hub, &d)).await? {
        return Err(Failure::forbidden(format!(
            "{} takes part in no room this provider hubs: not proxying its files",
            url.domain
        )));
    }
    let resp = state
        .federation
        .get_blob(&url.domain, &url.to_string(), range)
        .await?;
    Ok(pass_on(resp))
}

/// Passes a peer's answer on: status, the headers a download needs, and the body
/// as a stream.
fn pass_on(resp: reqwest::Response) -> Response {
    let status = resp.status();
    let mut headers = HeaderMap::new();
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_RANGE,
        header::ACCEPT_RANGES,
        header::ETAG,
    ] {
        if let Some(v) = resp.headers().get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let body = Body::from_stream(resp.bytes_stream().map_err(std::io::Error::other));
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// Fetches a blob for one of our clients: ours directly, others through the hub
/// `via`, which must hub a room we take part in.
async fn fetch_via(
    state: &AppState,
    url: &BlobUrl,
    via: &Domain,
    range: Option<&HeaderValue>,
) -> Result<Response, Failure> {
    if state.is_local(&url.domain) {
        return serve_local(state, &url.id, range).await;
    }
    if state.is_local(via) {
        return fetch_as_hub(state, url, range).await;
    }
    let hub = via.to_string();
    if !state.db(move |s| s.has_room_hubbed_by(&hub)).await? {
        return Err(Failure::forbidden(format!(
            "this provider takes part in no room hubbed by {via}; download through the hub of \
             the room the file was sent in"
        )));
    }
    let proxy = format!(
        "https://{via}{MIMI_PREFIX}/proxyDownload/{}",
        path_segment(&url.to_string())
    );
    let resp = state.federation.get_blob(via, &proxy, range).await?;
    Ok(pass_on(resp))
}
