//! The client API: accounts and devices, KeyPackages, rooms, message submission and
//! delivery (fetch, ack, WebSocket push). JSON over HTTPS; see `/openapi.json`.

use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use entente_core::identity::{ClientCertificate, UnverifiedCertificate};
use entente_wire::api::{
    self, Ack, InboxPage, KeyPackageStatus, LinkCodeResponse, ProviderInfo, PushFrame,
    RegisterRequest, RegisterResponse, UploadKeyPackages, b64,
};
use entente_wire::ids::{ClientId, Domain, UserId};
use openmls::prelude::KeyPackageIn;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tls_codec::Deserialize as _;

use crate::auth;
use crate::error::Failure;
use crate::state::{AppState, now_secs};
use crate::store::ClientRecord;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/openapi.json", get(crate::openapi::document))
        .route("/metrics", get(crate::metrics::serve))
        .route("/v1/provider", get(provider_info))
        .route("/v1/providers/{domain}", get(remote_provider_info))
        .route("/v1/register", post(register))
        .route("/v1/devices/link-code", post(link_code))
        .route("/v1/devices/{client}", axum::routing::delete(revoke_device))
        .route(
            "/v1/key-packages",
            post(upload_key_packages).get(key_package_status),
        )
        .route("/v1/rooms", post(crate::hub::create_room).get(user_rooms))
        .route(
            "/v1/rooms/{room}/key-material",
            post(crate::hub::client_key_material),
        )
        .route("/v1/rooms/{room}/update", post(crate::hub::client_update))
        .route(
            "/v1/rooms/{room}/group-info",
            post(crate::hub::client_group_info),
        )
        .route("/v1/rooms/{room}/messages", post(crate::hub::client_submit))
        .route("/v1/inbox", get(inbox))
        .route("/v1/inbox/ack", post(ack))
        .route("/v1/inbox/ws", get(inbox_ws))
        .with_state(state)
}

/// A request signed by a registered client of this provider, with its body.
pub struct Authed {
    pub client: ClientRecord,
    pub client_id: ClientId,
    pub body: Bytes,
}

impl Authed {
    /// The client's certificate, as issued by us.
    pub fn certificate(&self, state: &AppState) -> Result<ClientCertificate, Failure> {
        UnverifiedCertificate::decode(&self.client.certificate)
            .and_then(|u| u.verify(&state.issuer.public(), now_secs()))
            .map_err(|e| {
                Failure::unauthenticated(format!(
                    "your client certificate is no longer valid ({e}); register the device again"
                ))
            })
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Failure::bad_request(format!("invalid JSON body: {e}")))
    }
}

async fn authenticate(
    state: &AppState,
    parts: &Parts,
    body: &[u8],
) -> Result<(ClientRecord, ClientId), Failure> {
    let header = parts
        .headers
        .get(api::AUTH_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Failure::unauthenticated(auth::AuthError::Missing.to_string()))?;
    let h = auth::parse_header(header).map_err(|e| Failure::unauthenticated(e.to_string()))?;
    let client_id: ClientId = h
        .client
        .parse()
        .map_err(|e| Failure::unauthenticated(format!("client: {e}")))?;
    let key = client_id.to_string();
    let record = match state.clients.get(&key) {
        Some(r) => r,
        None => {
            let r = state.db(move |s| s.client(&key)).await?.ok_or_else(|| {
                Failure::unauthenticated(
                    auth::AuthError::UnknownClient(h.client.clone()).to_string(),
                )
            })?;
            state.clients.insert(r.clone());
            r
        }
    };
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let now = now_secs();
    auth::verify(
        &h,
        &record.signature_key,
        parts.method.as_str(),
        pq,
        body,
        now,
    )
    .map_err(|e| Failure::unauthenticated(e.to_string()))?;
    state
        .nonces
        .check(&h.client, &h.nonce, now)
        .map_err(|e| Failure::unauthenticated(e.to_string()))?;
    // A suspended account's devices are refused everything (403, with the reason).
    crate::moderation::check_local_user(state, &record.user).await?;
    crate::ratelimit::check_client(
        state,
        &record.client,
        &record.user,
        parts.method.as_str(),
        parts.uri.path(),
    )?;
    Ok((record, client_id))
}

impl FromRequest<AppState> for Authed {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Failure> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, state.config.limits.max_body_bytes)
            .await
            .map_err(|_| {
                Failure::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!(
                        "request body exceeds {} bytes",
                        state.config.limits.max_body_bytes
                    ),
                )
            })?;
        let (client, client_id) = authenticate(state, &parts, &body).await?;
        Ok(Authed {
            client,
            client_id,
            body,
        })
    }
}

/// A signed request without a body (GET, WebSocket upgrade).
pub struct AuthedParts {
    pub client: ClientRecord,
}

impl FromRequestParts<AppState> for AuthedParts {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let (client, _) = authenticate(state, parts, &[]).await?;
        Ok(AuthedParts { client })
    }
}

async fn provider_info(State(state): State<AppState>) -> Json<ProviderInfo> {
    Json(ProviderInfo {
        domain: state.domain.to_string(),
        issuer_key: state.issuer.public().to_bytes().to_vec(),
    })
}

/// Another provider's issuer key, fetched over mutually authenticated TLS (or ours).
async fn remote_provider_info(
    State(state): State<AppState>,
    Path(domain): Path<String>,
) -> Result<Json<ProviderInfo>, Failure> {
    let domain = Domain::parse(&domain).map_err(|e| Failure::bad_request(e.to_string()))?;
    if state.is_local(&domain) {
        return Ok(provider_info(State(state)).await);
    }
    let key = state.federation.issuer_key(&domain).await?;
    Ok(Json(ProviderInfo {
        domain: domain.to_string(),
        issuer_key: key.to_bytes().to_vec(),
    }))
}

async fn register(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<RegisterResponse>, Failure> {
    let req: RegisterRequest = serde_json::from_slice(&body)
        .map_err(|e| Failure::bad_request(format!("invalid JSON body: {e}")))?;
    let user = UserId::parse_any(&req.user).map_err(|e| Failure::bad_request(e.to_string()))?;
    if !state.is_local(user.domain()) {
        return Err(Failure::bad_request(format!(
            "{user} is not an account of {}; register with {}",
            state.domain,
            user.domain()
        )));
    }
    let client =
        ClientId::new(&user, &req.device).map_err(|e| Failure::bad_request(e.to_string()))?;
    let key: [u8; 32] =
        req.signature_key.as_slice().try_into().map_err(|_| {
            Failure::bad_request("signature_key must be a 32-byte Ed25519 public key")
        })?;
    let vk = VerifyingKey::from_bytes(&key)
        .map_err(|_| Failure::bad_request("signature_key is not a valid Ed25519 key"))?;
    let sig = Signature::from_slice(&req.proof)
        .map_err(|_| Failure::bad_request("proof must be a 64-byte signature"))?;
    let msg = api::registration_proof_message(&client.to_string(), &b64::encode(&key));
    vk.verify(&msg, &sig).map_err(|_| {
        Failure::unauthenticated(
            "proof does not verify: sign the registration with the key you register",
        )
    })?;

    let now = now_secs();
    let days = state.config.registration.certificate_days;
    let cert = state
        .issuer
        .certify(&client, &key, now.saturating_sub(3600), now + days * 86_400)
        .map_err(|e| Failure::internal("certificate issue", e))?;
    let record = ClientRecord {
        client: client.to_string(),
        user: user.to_string(),
        signature_key: key.to_vec(),
        certificate: cert.to_bytes().to_vec(),
        created_at: now,
    };
    match req.link_code {
        Some(code) => {
            let user_s = user.to_string();
            let existing = state.db(move |s| s.user_clients(&user_s)).await?;
            if existing.len() >= state.config.limits.max_clients_per_user {
                return Err(Failure::forbidden(format!(
                    "{user} already has {} devices, the most this provider allows; remove one first",
                    existing.len()
                )));
            }
            let hash: [u8; 32] = Sha256::digest(code.trim().as_bytes()).into();
            let rec = record.clone();
            state
                .db(move |s| s.add_client(&rec, &hash, now))
                .await
                .map_err(|f| match f.code {
                    "not_found" => Failure::forbidden("link code is unknown, used or expired; create a new one on an existing device with `entente device link`"),
                    "conflict" => Failure::conflict(format!("device {} is already registered", req.device)),
                    _ => f,
                })?;
        }
        None => {
            if !state.config.registration.open {
                return Err(Failure::forbidden(
                    "this provider does not allow open registration",
                ));
            }
            let rec = record.clone();
            state.db(move |s| s.create_account(&rec)).await.map_err(|f| match f.code {
                "conflict" => Failure::conflict(format!(
                    "{user} is taken; to add a device to your account, use a link code from an existing device"
                )),
                _ => f,
            })?;
        }
    }
    tracing::info!("client registered");
    Ok(Json(RegisterResponse {
        client: client.to_string(),
        certificate: cert.to_bytes().to_vec(),
    }))
}

/// `DELETE /v1/devices/{client}`: revokes a device of the caller's user (a lost
/// one, or the caller itself): it can no longer authenticate, its KeyPackages and
/// inbox are deleted. Removing it from rooms is a commit by another device
/// (`Client::revoke_device` does both).
async fn revoke_device(
    State(state): State<AppState>,
    Path(client): Path<String>,
    a: Authed,
) -> Result<Json<serde_json::Value>, Failure> {
    let target: ClientId = client
        .parse()
        .map_err(|e| Failure::bad_request(format!("client: {e}")))?;
    if target.user().to_string() != a.client.user {
        return Err(Failure::forbidden(
            "you can only revoke your own user's devices",
        ));
    }
    let t = target.to_string();
    state.db(move |s| s.remove_client(&t)).await?;
    state.clients.remove(&target.to_string());
    tracing::info!("device revoked");
    Ok(Json(serde_json::json!({ "revoked": target.to_string() })))
}

async fn link_code(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Json<LinkCodeResponse>, Failure> {
    let mut raw = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut raw);
    let code = raw
        .chunks(2)
        .map(|c| format!("{:05}", (u32::from(c[0]) << 8 | u32::from(c[1])) % 100_000))
        .collect::<Vec<_>>()
        .join("-");
    let hash: [u8; 32] = Sha256::digest(code.as_bytes()).into();
    let expires_at = now_secs() + 600;
    let user = a.client.user.clone();
    state
        .db(move |s| s.put_link_code(&user, &hash, expires_at))
        .await?;
    Ok(Json(LinkCodeResponse { code, expires_at }))
}

async fn upload_key_packages(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Json<KeyPackageStatus>, Failure> {
    let req: UploadKeyPackages = a.json()?;
    let cert = a.certificate(&state)?;
    let parse = |bytes: &[u8]| -> Result<(Vec<u8>, Vec<u8>, bool), Failure> {
        // The reader-based decoder: tls_codec 0.5's `*Bytes` decoders panic (a debug
        // assertion) on truncated input.
        let mut rest = bytes;
        let kp = KeyPackageIn::tls_deserialize(&mut rest)
            .map_err(|e| Failure::bad_request(format!("KeyPackage does not decode: {e}")))?;
        if !rest.is_empty() {
            return Err(Failure::bad_request("KeyPackage has trailing bytes"));
        }
        let (kp, r) = entente_core::mls::validate_key_package(&state.crypto, kp, &cert)
            .map_err(|e| Failure::bad_request(e.to_string()))?;
        Ok((r.as_slice().to_vec(), bytes.to_vec(), kp.last_resort()))
    };
    let mut single = Vec::with_capacity(req.key_packages.len());
    for kp in &req.key_packages {
        let (r, b, _) = parse(kp)?;
        single.push((r, b));
    }
    let last = match &req.last_resort {
        Some(kp) => {
            let (r, b, is_last) = parse(kp)?;
            if !is_last {
                return Err(Failure::bad_request(
                    "last_resort KeyPackage lacks the last_resort extension",
                ));
            }
            Some((r, b))
        }
        None => None,
    };
    let client = a.client.client.clone();
    let max = state.config.limits.max_key_packages_per_client;
    let (have, _) = {
        let c = client.clone();
        state.db(move |s| s.key_package_status(&c)).await?
    };
    if have + single.len() as u64 > max {
        return Err(Failure::forbidden(format!(
            "you would hold {} KeyPackages; this provider keeps at most {max} per client",
            have + single.len() as u64
        )));
    }
    let (available, has_last_resort) = state
        .db(move |s| {
            s.add_key_packages(&client, &single, last.as_ref())?;
            s.key_package_status(&client)
        })
        .await?;
    Ok(Json(KeyPackageStatus {
        available,
        has_last_resort,
    }))
}

async fn key_package_status(
    State(state): State<AppState>,
    a: AuthedParts,
) -> Result<Json<KeyPackageStatus>, Failure> {
    let c = a.client.client;
    let (available, has_last_resort) = state.db(move |s| s.key_package_status(&c)).await?;
    Ok(Json(KeyPackageStatus {
        available,
        has_last_resort,
    }))
}

/// `GET /v1/rooms`: the rooms the caller's user is in, so that a new device can
/// join them.
async fn user_rooms(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Json<entente_wire::api::UserRooms>, Failure> {
    let user = a.client.user.clone();
    let rooms = state.db(move |s| s.user_rooms(&user)).await?;
    Ok(Json(entente_wire::api::UserRooms { rooms }))
}

#[derive(Deserialize)]
struct InboxQuery {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    100
}

async fn inbox(
    State(state): State<AppState>,
    a: AuthedParts,
    Query(q): Query<InboxQuery>,
) -> Result<Json<InboxPage>, Failure> {
    let client = a.client.client;
    let limit = q.limit.clamp(1, 1000);
    let items = state.db(move |s| s.inbox(&client, q.after, limit)).await?;
    Ok(Json(InboxPage {
        items: items
            .into_iter()
            .map(|r| api::InboxItem {
                seq: r.seq,
                room: r.room,
                fanout: r.payload,
            })
            .collect(),
    }))
}

async fn ack(State(state): State<AppState>, a: Authed) -> Result<Json<Ack>, Failure> {
    let req: Ack = a.json()?;
    let client = a.client.client.clone();
    state.db(move |s| s.ack(&client, req.up_to)).await?;
    Ok(Json(req))
}

async fn inbox_ws(
    State(state): State<AppState>,
    a: AuthedParts,
    Query(q): Query<InboxQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| push_loop(state, a.client.client, q.after, socket))
        .into_response()
}

/// Pushes inbox items as they arrive and applies acks the client sends back. Items
/// stay in the inbox until acked: a dropped connection loses nothing.
async fn push_loop(state: AppState, client: String, mut after: u64, mut socket: WebSocket) {
    let notify = state.wakers.subscribe(&client);
    let mut closing = state.closing.subscribe();
    loop {
        if *closing.borrow_and_update() {
            let _ = socket.send(WsMessage::Close(None)).await;
            return;
        }
        // Register interest before reading, so a wake between read and wait is kept.
        let notified = notify.notified();
        let c = client.clone();
        let items = match state.db(move |s| s.inbox(&c, after, 256)).await {
            Ok(items) => items,
            Err(_) => return,
        };
        for r in items {
            after = after.max(r.seq);
            let frame = PushFrame::Item(api::InboxItem {
                seq: r.seq,
                room: r.room,
                fanout: r.payload,
            });
            let Ok(text) = serde_json::to_string(&frame) else {
                return;
            };
            if socket.send(WsMessage::Text(text.into())).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = closing.changed() => {}
            _ = notified => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {
                if socket.send(WsMessage::Ping(Bytes::new())).await.is_err() { return; }
            }
            msg = socket.recv() => match msg {
                Some(Ok(WsMessage::Text(t))) => {
                    let Ok(ack) = serde_json::from_str::<Ack>(&t) else {
                        let _ = socket.send(WsMessage::Close(None)).await;
                        return;
                    };
                    let c = client.clone();
                    if state.db(move |s| s.ack(&c, ack.up_to)).await.is_err() { return; }
                    let Ok(text) = serde_json::to_string(&PushFrame::Acked { up_to: ack.up_to }) else { return };
                    if socket.send(WsMessage::Text(text.into())).await.is_err() { return; }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    }
}
