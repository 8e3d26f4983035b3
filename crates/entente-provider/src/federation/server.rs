//! The MIMI endpoints we serve. Every POST requires a peer certificate valid for the
//! domain in the `From: mimi@<domain>` header.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use entente_tls::ConnectionInfo;
use entente_wire::api::ProviderInfo;
use entente_wire::ids::{Domain, RoomId};

use super::{DIRECTORY_PATH, ISSUER_PATH, MIMI_MEDIA_TYPE, MIMI_PREFIX};
use crate::error::Failure;
use crate::hub::{self, Submitter};
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(DIRECTORY_PATH, get(directory))
        .route(ISSUER_PATH, get(issuer))
        .route(
            &format!("{MIMI_PREFIX}/keyMaterial/{{target}}"),
            post(key_material),
        )
        .route(&format!("{MIMI_PREFIX}/update/{{room}}"), post(update))
        .route(
            &format!("{MIMI_PREFIX}/submitMessage/{{room}}"),
            post(submit_message),
        )
        .route(&format!("{MIMI_PREFIX}/notify/{{room}}"), post(notify))
        .route(
            &format!("{MIMI_PREFIX}/groupState/{{room}}"),
            post(group_state),
        )
        .route(
            &format!("{MIMI_PREFIX}/groupInfo/{{room}}"),
            post(group_info),
        )
        .with_state(state)
}

/// A peer provider, authenticated by its TLS client certificate.
pub struct Peer(pub Domain);

impl FromRequestParts<AppState> for Peer {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let from = parts
            .headers
            .get("from")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Failure::unauthenticated("missing From: mimi@<your domain> header"))?;
        let domain = from
            .strip_prefix("mimi@")
            .ok_or_else(|| Failure::unauthenticated("From header must be mimi@<your domain>"))?;
        let domain = Domain::parse(domain)
            .map_err(|e| Failure::unauthenticated(format!("From header: {e}")))?;
        let Extension(info) = Extension::<ConnectionInfo>::from_request_parts(parts, &())
            .await
            .map_err(|_| Failure::internal("connection info", "missing"))?;
        match &info.peer_certificate {
            Some(cert) if cert.is_valid_for_domain(domain.as_str()) => {
                // Every federation request of a banned domain is refused here.
                crate::moderation::check_remote(state, &domain, None).await?;
                crate::ratelimit::check_peer(state, domain.as_str())?;
                Ok(Peer(domain))
            }
            Some(_) => Err(Failure::unauthenticated(format!(
                "your TLS certificate is not valid for {domain}"
            ))),
            None => Err(Failure::unauthenticated(
                "MIMI federation requires a TLS client certificate for your domain",
            )),
        }
    }
}

async fn directory(State(state): State<AppState>) -> Json<serde_json::Value> {
    let base = format!("https://{}{MIMI_PREFIX}", state.domain);
    let mut directory = serde_json::json!({
        "keyMaterial": format!("{base}/keyMaterial/{{targetUser}}"),
        "update": format!("{base}/update/{{roomId}}"),
        "notify": format!("{base}/notify/{{roomId}}"),
        "submitMessage": format!("{base}/submitMessage/{{roomId}}"),
        "groupState": format!("{base}/groupState/{{roomId}}"),
        "groupInfo": format!("{base}/groupInfo/{{roomId}}"),
        "requestConsent": format!("{base}/requestConsent/{{targetDomain}}"),
        "updateConsent": format!("{base}/updateConsent/{{requesterDomain}}"),
        "proxyDownload": format!("{base}/proxyDownload/{{downloadUrl}}"),
    });
    // Entente's extension endpoints (the Signal channel), as `entente:*` entries.
    if let Some(entries) = directory.as_object_mut() {
        entries.extend(crate::signal::directory_entries(&state));
    }
    Json(directory)
}

async fn issuer(State(state): State<AppState>) -> Json<ProviderInfo> {
    Json(ProviderInfo {
        domain: state.domain.to_string(),
        issuer_key: state.issuer.public().to_bytes().to_vec(),
    })
}

fn mimi_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [("content-type", MIMI_MEDIA_TYPE)], body).into_response()
}

fn room_param(room: &str) -> Result<RoomId, Failure> {
    room.parse()
        .map_err(|e| Failure::bad_request(format!("room id in path: {e}")))
}

async fn key_material(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path(target): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    let r = hub::key_material(&state, &target, body.to_vec(), Submitter::Peer(peer)).await?;
    Ok(mimi_response(StatusCode::OK, r))
}

async fn update(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    let room = room_param(&room)?;
    let r = hub::accept_update(&state, &room, body.to_vec(), Submitter::Peer(peer)).await?;
    Ok(mimi_response(StatusCode::OK, r))
}

async fn submit_message(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    let room = room_param(&room)?;
    let r = hub::accept_submit(&state, &room, body.to_vec(), Submitter::Peer(peer)).await?;
    Ok(mimi_response(StatusCode::OK, r))
}

async fn notify(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    let room = room_param(&room)?;
    hub::receive_notify(&state, &room, &body, &peer).await?;
    Ok(StatusCode::CREATED.into_response())
}

/// Entente extension: a participating follower fetches the room's current group
/// state (see `entente_wire::mimi::RoomGroupState`).
async fn group_state(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path(room): Path<String>,
) -> Result<Response, Failure> {
    let room = room_param(&room)?;
    let r = hub::serve_group_state(&state, &room, &peer).await?;
    Ok(mimi_response(StatusCode::OK, r))
}

/// MIMI `groupInfo` (section 5.6), from a follower on behalf of its client.
async fn group_info(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    let room = room_param(&room)?;
    let r = hub::serve_group_info(&state, &room, &body, Submitter::Peer(peer)).await?;
    Ok(mimi_response(StatusCode::OK, r))
}
