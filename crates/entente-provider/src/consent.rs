//! Consent (message requests) and blocks, enforced by the target user's provider
//! (draft-ietf-mimi-protocol-06 sections 5.7 and 8).
//!
//! A user's provider is the authority for that user's key material, so it is where
//! consent is enforced: MLS KeyPackages (MIMI `keyMaterial`, whoever asks: a local
//! client, a hub on behalf of a room member, a follower asking us as hub) and
//! Signal prekey bundles (local claims and `POST /entente/v1/signal/bundles`) go
//! only to a requester the target granted (`[consent] mode = "required"`, the
//! default) and never to one the target blocked (in both modes). A user always
//! gets their own key material (their other devices). KeyPackages refused this way
//! answer `noConsent` (also for a block: the requester must not learn of it) or
//! `noConsentForThisRoom`; bundles `403 no_consent`.
//!
//! Client API (signed like every client request; bodies [`ConsentAction`]):
//! - `POST /v1/consent/request`: ask a user for consent (optionally for one room).
//!   Bilateral, as in the draft's example: asking also grants the target consent
//!   to add the requester.
//! - `POST /v1/consent/cancel`: withdraw a request.
//! - `GET /v1/consent/requests`: pending requests to the caller, and the caller's
//!   own requests with what became of them ([`ConsentRequests`]).
//! - `POST /v1/consent/accept` (grant), `POST /v1/consent/decline`.
//! - `POST /v1/consent/block`, `POST /v1/consent/unblock`, `GET /v1/consent/blocks`.
//!
//! Federation (MIMI, bodies [`ConsentEntry`], sent through the durable outbound
//! queue, answered `201`):
//! - `POST /mimi/v1/requestConsent/{targetDomain}`: `request` or `cancel`; the
//!   requester must be a user of the sending provider, the target one of ours. An
//!   unknown target, or one who blocked the requester, still gets `201`: nothing
//!   is stored and the requester learns nothing.
//! - `POST /mimi/v1/updateConsent/{requesterDomain}`: `grant` or `revoke`; the
//!   target must be a user of the sending provider, the requester one of ours. It
//!   only informs the requester (their outgoing list); enforcement never trusts a
//!   peer's word, only the grants its own users gave.
//!
//! A decline is not told to the requester (draft section 8); a block neither.
//! Unanswered requests are deleted after `[retention] consent_requests_days`
//! (`crate::privacy::retention`).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use entente_wire::consent::{
    BlockedUser, Blocks, ConsentAction, ConsentRequests, IncomingRequest, OutgoingRequest,
    OutgoingStatus,
};
use entente_wire::ids::{Domain, RoomId, UserId};
use entente_wire::mimi::{
    AppDataDictionary, ConsentEntry, ConsentOperation, IdentifierUri, KeyMaterialUserCode,
};
use serde::{Deserialize, Serialize};

use crate::client_api::{Authed, AuthedParts};
use crate::error::Failure;
use crate::federation::MIMI_PREFIX;
use crate::federation::client::FedError;
use crate::federation::server::Peer;
use crate::spam::{EventKind, SpamEvent};
use crate::state::{AppState, now_ms};
use crate::store::{ConsentDecision, ConsentKey, ConsentRecord, ConsentWrite, NewOutbound};

/// `[consent]` in the provider's configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentConfig {
    #[serde(default)]
    pub mode: ConsentMode,
}

/// Whether strangers get key material.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentMode {
    /// Only to users the target granted (accepted, or asked themselves), and to
    /// the target's own devices.
    #[default]
    Required,
    /// To anyone the target did not block.
    Open,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/consent/request", post(request))
        .route("/v1/consent/cancel", post(cancel))
        .route("/v1/consent/requests", get(list_requests))
        .route("/v1/consent/accept", post(accept))
        .route("/v1/consent/decline", post(decline))
        .route("/v1/consent/block", post(block))
        .route("/v1/consent/unblock", post(unblock))
        .route("/v1/consent/blocks", get(list_blocks))
        .route(
            &format!("{MIMI_PREFIX}/requestConsent/{{domain}}"),
            post(peer_request_consent),
        )
        .route(
            &format!("{MIMI_PREFIX}/updateConsent/{{domain}}"),
            post(peer_update_consent),
        )
        .with_state(state)
}

// ------------------------------------------------------------------ enforcement

/// The refusal for key material, or `None` to serve it. `room` is the room the
/// KeyPackages are for.
pub async fn check_key_material(
    state: &AppState,
    target: &UserId,
    requester: &UserId,
    room: &RoomId,
) -> Result<Option<KeyMaterialUserCode>, Failure> {
    Ok(match decide(state, target, requester, Some(room)).await? {
        ConsentDecision::Granted => None,
        ConsentDecision::NoConsentForRoom => Some(KeyMaterialUserCode::NoConsentForThisRoom),
        ConsentDecision::NoConsent | ConsentDecision::Blocked => {
            Some(KeyMaterialUserCode::NoConsent)
        }
    })
}

/// Refuses Signal prekey bundles of `target` to `requester` without consent (or
/// when blocked): `403 no_consent`. Outside a room, only a grant for any room
/// counts.
pub async fn check_bundles(
    state: &AppState,
    target: &UserId,
    requester: &UserId,
) -> Result<(), Failure> {
    match decide(state, target, requester, None).await? {
        ConsentDecision::Granted => Ok(()),
        _ => Err(no_consent(target)),
    }
}

/// The error a requester without consent sees (also when blocked).
pub fn no_consent(target: &UserId) -> Failure {
    Failure::new(
        StatusCode::FORBIDDEN,
        "no_consent",
        format!(
            "{0} has not accepted a request from you; ask with `entente request {0}`",
            target.handle()
        ),
    )
}

/// A peer's `403 no_consent`, passed on to our client as such.
pub fn passed_on(e: &FedError) -> Option<Failure> {
    let FedError::Refused {
        domain,
        status: 403,
        reason,
    } = e
    else {
        return None;
    };
    let v: serde_json::Value = serde_json::from_str(reason).ok()?;
    if v["code"] != "no_consent" {
        return None;
    }
    let message = v["message"].as_str().unwrap_or("no consent").to_owned();
    Some(Failure::new(
        StatusCode::FORBIDDEN,
        "no_consent",
        format!("{domain}: {message}"),
    ))
}

async fn decide(
    state: &AppState,
    target: &UserId,
    requester: &UserId,
    room: Option<&RoomId>,
) -> Result<ConsentDecision, Failure> {
    if target == requester {
        return Ok(ConsentDecision::Granted);
    }
    let (t, r, room) = (
        target.to_string(),
        requester.to_string(),
        room.map(|r| r.to_string()),
    );
    let decision = state
        .db(move |s| s.consent_decision(&t, &r, room.as_deref()))
        .await?;
    Ok(match (state.config.consent.mode, decision) {
        (_, ConsentDecision::Blocked) => ConsentDecision::Blocked,
        (ConsentMode::Open, _) => ConsentDecision::Granted,
        (ConsentMode::Required, d) => d,
    })
}

// ------------------------------------------------------------------ client API

struct Action {
    me: UserId,
    other: UserId,
    room: Option<RoomId>,
}

fn action(a: &Authed) -> Result<Action, Failure> {
    let body: ConsentAction = a.json()?;
    let me = a.client_id.user().clone();
    let other =
        UserId::parse_any(&body.user).map_err(|e| Failure::bad_request(format!("user: {e}")))?;
    if other == me {
        return Err(Failure::bad_request(
            "that is you: you always have consent to add your own devices",
        ));
    }
    let room = body
        .room
        .as_deref()
        .map(|r| {
            r.parse::<RoomId>()
                .map_err(|e| Failure::bad_request(format!("room: {e}")))
        })
        .transpose()?;
    Ok(Action { me, other, room })
}

fn key(target: &UserId, requester: &UserId, room: &Option<RoomId>) -> ConsentKey {
    ConsentKey {
        target: target.to_string(),
        requester: requester.to_string(),
        room: room.as_ref().map(|r| r.to_string()),
    }
}

fn entry(
    operation: ConsentOperation,
    requester: &UserId,
    target: &UserId,
    room: &Option<RoomId>,
) -> Result<Vec<u8>, Failure> {
    ConsentEntry {
        operation,
        requester_uri: IdentifierUri::from(requester),
        target_uri: IdentifierUri::from(target),
        room_id: room.as_ref().map(IdentifierUri::from),
        client_key_packages: Vec::new(),
        consent_extensions: AppDataDictionary::default(),
    }
    .encode()
    .map_err(|e| Failure::internal("ConsentEntry", e))
}

/// A MIMI consent request for the outbound queue. `endpoint` takes the domain of
/// the receiving side as its path parameter.
fn outbound(endpoint: &str, to: &Domain, body: Vec<u8>) -> NewOutbound {
    NewOutbound {
        domain: to.to_string(),
        endpoint: endpoint.to_owned(),
        room: to.to_string(),
        body,
    }
}

async fn commit(
    state: &AppState,
    writes: Vec<ConsentWrite>,
    out: Vec<NewOutbound>,
) -> Result<Vec<bool>, Failure> {
    let queued = !out.is_empty();
    let changed = state
        .db(move |s| s.consent_write(&writes, &out, now_ms()))
        .await?;
    if queued {
        state.outbound_wake.notify_one();
    }
    Ok(changed)
}

async fn has_blocked(
    state: &AppState,
    blocker: &UserId,
    blocked: &UserId,
) -> Result<bool, Failure> {
    let b = blocker.to_string();
    let other = blocked.to_string();
    let blocks = state.db(move |s| s.consent_blocks(&b)).await?;
    Ok(blocks.iter().any(|r| r.blocked == other))
}

fn ok() -> Json<serde_json::Value> {
    Json(serde_json::json!({}))
}

/// `POST /v1/consent/request`
async fn request(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Json<serde_json::Value>, Failure> {
    let Action { me, other, room } = action(&a)?;
    if has_blocked(&state, &me, &other).await? {
        return Err(Failure::conflict(format!(
            "you blocked {0}; unblock them first (`entente unblock {0}`)",
            other.handle()
        )));
    }
    crate::spam::enforce(
        &state,
        SpamEvent::local(EventKind::ConsentRequest, &me).target(&other),
    )
    .await?;
    let at = now_ms();
    // Ours: the request as sent, and (bilateral) consent for them to add us.
    let mut writes = vec![
        ConsentWrite::Outgoing {
            key: key(&other, &me, &room),
            at,
        },
        ConsentWrite::Grant {
            key: key(&me, &other, &room),
            at,
        },
    ];
    let mut out = Vec::new();
    if state.is_local(other.domain()) {
        // Dropped by the store if they blocked us; either way we answer the same.
        writes.push(ConsentWrite::Request {
            key: key(&other, &me, &room),
            at,
        });
        writes.push(ConsentWrite::OutgoingGranted {
            key: key(&me, &other, &room),
            at,
        });
    } else {
        let to = other.domain();
        out.push(outbound(
            "requestConsent",
            to,
            entry(ConsentOperation::Request, &me, &other, &room)?,
        ));
        out.push(outbound(
            "updateConsent",
            to,
            entry(ConsentOperation::Grant, &other, &me, &room)?,
        ));
    }
    commit(&state, writes, out).await?;
    Ok(ok())
}

/// `POST /v1/consent/cancel`
async fn cancel(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Json<serde_json::Value>, Failure> {
    let Action { me, other, room } = action(&a)?;
    let mut writes = vec![ConsentWrite::OutgoingRevoked {
        key: key(&other, &me, &room),
    }];
    let mut out = Vec::new();
    if state.is_local(other.domain()) {
        writes.push(ConsentWrite::Cancel {
            key: key(&other, &me, &room),
        });
    } else {
        out.push(outbound(
            "requestConsent",
            other.domain(),
            entry(ConsentOperation::Cancel, &me, &other, &room)?,
        ));
    }
    commit(&state, writes, out).await?;
    Ok(ok())
}

/// `POST /v1/consent/accept`
async fn accept(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Json<serde_json::Value>, Failure> {
    let Action { me, other, room } = action(&a)?;
    if has_blocked(&state, &me, &other).await? {
        return Err(Failure::conflict(format!(
            "you blocked {0}; unblock them first (`entente unblock {0}`)",
            other.handle()
        )));
    }
    let at = now_ms();
    let mut writes = vec![ConsentWrite::Grant {
        key: key(&me, &other, &room),
        at,
    }];
    let mut out = Vec::new();
    if state.is_local(other.domain()) {
        writes.push(ConsentWrite::OutgoingGranted {
            key: key(&me, &other, &room),
            at,
        });
    } else {
        out.push(outbound(
            "updateConsent",
            other.domain(),
            entry(ConsentOperation::Grant, &other, &me, &room)?,
        ));
    }
    commit(&state, writes, out).await?;
    Ok(ok())
}

/// `POST /v1/consent/decline`: nothing is sent; the requester's request stays
/// "pending" on their side (draft section 8: rejections are not communicated).
async fn decline(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Json<serde_json::Value>, Failure> {
    let Action { me, other, .. } = action(&a)?;
    commit(
        &state,
        vec![ConsentWrite::Decline {
            target: me.to_string(),
            requester: other.to_string(),
        }],
        Vec::new(),
    )
    .await?;
    Ok(ok())
}

/// `POST /v1/consent/block`
async fn block(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Json<serde_json::Value>, Failure> {
    let Action { me, other, .. } = action(&a)?;
    commit(
        &state,
        vec![ConsentWrite::Block {
            blocker: me.to_string(),
            blocked: other.to_string(),
            at: now_ms(),
        }],
        Vec::new(),
    )
    .await?;
    Ok(ok())
}

/// `POST /v1/consent/unblock`
async fn unblock(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Json<serde_json::Value>, Failure> {
    let Action { me, other, .. } = action(&a)?;
    commit(
        &state,
        vec![ConsentWrite::Unblock {
            blocker: me.to_string(),
            blocked: other.to_string(),
        }],
        Vec::new(),
    )
    .await?;
    Ok(ok())
}

fn handle(uri: &str) -> String {
    UserId::parse_uri(uri).map_or_else(|_| uri.to_owned(), |u| u.handle())
}

/// `GET /v1/consent/requests`
async fn list_requests(
    State(state): State<AppState>,
    a: AuthedParts,
) -> Result<Json<ConsentRequests>, Failure> {
    let me = a.client.user.clone();
    let (incoming, outgoing): (Vec<ConsentRecord>, Vec<ConsentRecord>) = state
        .db(move |s| Ok((s.consent_incoming(&me)?, s.consent_outgoing(&me)?)))
        .await?;
    Ok(Json(ConsentRequests {
        incoming: incoming
            .into_iter()
            .map(|r| IncomingRequest {
                user: handle(&r.key.requester),
                room: r.key.room,
                at_ms: r.at,
            })
            .collect(),
        outgoing: outgoing
            .into_iter()
            .map(|r| OutgoingRequest {
                user: handle(&r.key.target),
                room: r.key.room,
                status: if r.granted {
                    OutgoingStatus::Granted
                } else {
                    OutgoingStatus::Pending
                },
                at_ms: r.at,
            })
            .collect(),
    }))
}

/// `GET /v1/consent/blocks`
async fn list_blocks(
    State(state): State<AppState>,
    a: AuthedParts,
) -> Result<Json<Blocks>, Failure> {
    let me = a.client.user.clone();
    let blocks = state.db(move |s| s.consent_blocks(&me)).await?;
    Ok(Json(Blocks {
        blocked: blocks
            .into_iter()
            .map(|b| BlockedUser {
                user: handle(&b.blocked),
                at_ms: b.at,
            })
            .collect(),
    }))
}

// ------------------------------------------------------------------ federation

struct Parsed {
    operation: ConsentOperation,
    requester: UserId,
    target: UserId,
    room: Option<RoomId>,
}

fn parse_entry(body: &[u8]) -> Result<Parsed, Failure> {
    let e = ConsentEntry::decode(body)
        .map_err(|e| Failure::bad_request(format!("ConsentEntry: {e}")))?;
    let user = |uri: &IdentifierUri, field: &str| {
        uri.to_user_id()
            .map_err(|e| Failure::bad_request(format!("{field}: {e}")))
    };
    Ok(Parsed {
        operation: e.operation,
        requester: user(&e.requester_uri, "requesterUri")?,
        target: user(&e.target_uri, "targetUri")?,
        room: e
            .room_id
            .as_ref()
            .map(|r| {
                r.to_room_id()
                    .map_err(|e| Failure::bad_request(format!("roomId: {e}")))
            })
            .transpose()?,
    })
}

fn created() -> Response {
    StatusCode::CREATED.into_response()
}

async fn user_exists(state: &AppState, user: &UserId) -> Result<bool, Failure> {
    let u = user.to_string();
    state.db(move |s| s.user_exists(&u)).await
}

/// `POST /mimi/v1/requestConsent/{targetDomain}`
async fn peer_request_consent(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path(domain): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    let p = parse_entry(&body)?;
    if domain != state.domain.as_str() {
        return Err(Failure::bad_request(format!(
            "this is {}, not {domain}",
            state.domain
        )));
    }
    if !matches!(
        p.operation,
        ConsentOperation::Request | ConsentOperation::Cancel
    ) {
        return Err(Failure::bad_request(
            "requestConsent carries a request or a cancel; grants and revocations go to updateConsent",
        ));
    }
    if p.requester.domain() != &peer {
        return Err(Failure::forbidden(format!(
            "requesterUri must be a user of your domain ({peer}), not of {}",
            p.requester.domain()
        )));
    }
    // A requester our moderators banned is refused (crate::moderation).
    crate::moderation::check_remote(&state, &peer, Some(&p.requester.to_string())).await?;
    if !state.is_local(p.target.domain()) {
        return Err(Failure::bad_request(format!(
            "targetUri must be a user of {}",
            state.domain
        )));
    }
    if p.operation == ConsentOperation::Request {
        crate::spam::enforce(
            &state,
            SpamEvent::remote(EventKind::ConsentRequest, &peer, Some(&p.requester))
                .target(&p.target),
        )
        .await?;
    }
    // Unknown users get 201 too (draft 5.7): whether a user exists is not told.
    if !user_exists(&state, &p.target).await? {
        return Ok(created());
    }
    let k = key(&p.target, &p.requester, &p.room);
    let write = match p.operation {
        ConsentOperation::Request => ConsentWrite::Request {
            key: k,
            at: now_ms(),
        },
        _ => ConsentWrite::Cancel { key: k },
    };
    // A request from a user the target blocked is dropped by the store, silently.
    commit(&state, vec![write], Vec::new()).await?;
    Ok(created())
}

/// `POST /mimi/v1/updateConsent/{requesterDomain}`
async fn peer_update_consent(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path(domain): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    let p = parse_entry(&body)?;
    if domain != state.domain.as_str() {
        return Err(Failure::bad_request(format!(
            "this is {}, not {domain}",
            state.domain
        )));
    }
    if !matches!(
        p.operation,
        ConsentOperation::Grant | ConsentOperation::Revoke
    ) {
        return Err(Failure::bad_request(
            "updateConsent carries a grant or a revoke; requests and cancels go to requestConsent",
        ));
    }
    if p.target.domain() != &peer {
        return Err(Failure::forbidden(format!(
            "targetUri must be a user of your domain ({peer}), not of {}: only a user's own provider conveys their consent",
            p.target.domain()
        )));
    }
    if !state.is_local(p.requester.domain()) {
        return Err(Failure::bad_request(format!(
            "requesterUri must be a user of {}",
            state.domain
        )));
    }
    if !user_exists(&state, &p.requester).await? {
        return Ok(created());
    }
    let k = key(&p.target, &p.requester, &p.room);
    let write = match p.operation {
        ConsentOperation::Grant => ConsentWrite::OutgoingGranted {
            key: k,
            at: now_ms(),
        },
        _ => ConsentWrite::OutgoingRevoked { key: k },
    };
    commit(&state, vec![write], Vec::new()).await?;
    Ok(created())
}

/// Adds the consent routes and schemas to the OpenAPI document
/// (`crate::openapi`).
pub fn openapi(doc: &mut serde_json::Value) {
    use serde_json::json;
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let op = |summary: &str, request: bool, response: &str| {
        let mut o = json!({
            "summary": summary,
            "security": [{ "clientSignature": [] }],
            "responses": {
                "200": { "description": "success", "content": { "application/json": { "schema": schema(response) } } },
                "default": { "description": "error", "content": { "application/json": { "schema": schema("ApiError") } } }
            }
        });
        if request {
            o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema("ConsentAction") } } });
        }
        o
    };
    let paths = [
        (
            "/v1/consent/request",
            json!({ "post": op("Ask a user for consent to add them to rooms (or one room) and fetch their key material: a message request, sent to their provider as MIMI requestConsent. Also grants them consent to add the caller. 409 if the caller blocked them", true, "Empty") }),
        ),
        (
            "/v1/consent/cancel",
            json!({ "post": op("Withdraw a request (same user and room)", true, "Empty") }),
        ),
        (
            "/v1/consent/requests",
            json!({ "get": op("Requests waiting for the caller's answer, and the caller's own requests (pending, or granted: the caller may add that user)", false, "ConsentRequests") }),
        ),
        (
            "/v1/consent/accept",
            json!({ "post": op("Grant a user consent to add the caller (to one room, or any); answers their pending request. Their provider is told (MIMI updateConsent)", true, "Empty") }),
        ),
        (
            "/v1/consent/decline",
            json!({ "post": op("Decline a user's requests and withdraw consent given to them; they are not told", true, "Empty") }),
        ),
        (
            "/v1/consent/block",
            json!({ "post": op("Block a user: their key material claims and requests are refused (silently for requests), their pending requests and the caller's consent to them are deleted", true, "Empty") }),
        ),
        (
            "/v1/consent/unblock",
            json!({ "post": op("Lift a block (consent is not restored)", true, "Empty") }),
        ),
        (
            "/v1/consent/blocks",
            json!({ "get": op("The users the caller blocked", false, "Blocks") }),
        ),
    ];
    if let Some(p) = doc["paths"].as_object_mut() {
        for (path, item) in paths {
            p.insert(path.to_owned(), item);
        }
    }
    let user = json!({ "type": "string", "description": "user handle (bob@b.example) or URI" });
    let room = json!({ "type": "string", "description": "room URI; absent: any room" });
    let schemas = [
        ("Empty", json!({ "type": "object" })),
        (
            "ConsentAction",
            json!({ "type": "object", "required": ["user"], "additionalProperties": false,
            "properties": { "user": user, "room": room } }),
        ),
        (
            "ConsentRequests",
            json!({ "type": "object", "required": ["incoming", "outgoing"], "properties": {
            "incoming": { "type": "array", "items": { "type": "object", "required": ["user", "at_ms"],
                "properties": { "user": user, "room": room, "at_ms": { "type": "integer" } } } },
            "outgoing": { "type": "array", "items": { "type": "object", "required": ["user", "status", "at_ms"],
                "properties": { "user": user, "room": room, "status": { "enum": ["pending", "granted"] }, "at_ms": { "type": "integer" } } } } } }),
        ),
        (
            "Blocks",
            json!({ "type": "object", "required": ["blocked"], "properties": {
            "blocked": { "type": "array", "items": { "type": "object", "required": ["user", "at_ms"],
                "properties": { "user": user, "at_ms": { "type": "integer" } } } } } }),
        ),
    ];
    if let Some(s) = doc["components"]["schemas"].as_object_mut() {
        for (name, schema) in schemas {
            s.insert(name.to_owned(), schema);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_consent_table_parses_and_defaults_to_required() {
        let base = r#"
            domain = "a.example"
            listen = "127.0.0.1:1"
            data_dir = "d"
            [tls]
            certificate = "c"
            private_key = "k"
        "#;
        let c: crate::Config = toml::from_str(base).unwrap();
        assert_eq!(c.consent.mode, super::ConsentMode::Required);
        let c: crate::Config =
            toml::from_str(&format!("{base}\n[consent]\nmode = \"open\"\n")).unwrap();
        assert_eq!(c.consent.mode, super::ConsentMode::Open);
        assert!(
            toml::from_str::<crate::Config>(&format!("{base}\n[consent]\nmode = \"maybe\"\n"))
                .is_err()
        );
    }
}
