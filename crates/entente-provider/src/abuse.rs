//! Abuse reports (draft-ietf-mimi-protocol-06 section 5.9) and the hub's franking key.
//!
//! A client reports messages with `POST /v1/rooms/{room}/reports` at its own
//! provider. If we hub the room we verify the report here; otherwise we relay it to
//! the hub with MIMI `reportAbuse/{roomId}`. The hub verifies every reported
//! message's frank ([`entente_core::franking::verify_reported`]: the content is
//! exactly what the accused sent, in that room, at that time), refuses the whole
//! report if any fails, stores it (role `Hub`), then informs the accused user's
//! provider: itself (role `Accused`), or a peer through the durable outbound queue
//! with `POST /entente/v1/reports/accused` (the reporter's identity is not passed on;
//! the hub is authenticated by mutual TLS).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use entente_core::franking::{self, HubKey};
use entente_wire::api::{ReportAnswer, ReportCall};
use entente_wire::ids::{Domain, RoomId, UserId};
use entente_wire::mimi::{AbuseReport, AbusiveMessage};
use serde::{Deserialize, Serialize};

use crate::client_api::Authed;
use crate::config::Config;
use crate::error::Failure;
use crate::federation::MIMI_PREFIX;
use crate::federation::client::FedError;
use crate::federation::server::Peer;
use crate::metrics::Metrics;
use crate::state::{AppState, now_ms};
use crate::store::{Batch, NewOutbound, NewReport, RecordedReport, ReportRole, ReportedMessage};

/// Federation: the hub informs the accused user's provider.
pub const FED_ACCUSED: &str = "/entente/v1/reports/accused";

/// Most messages one report may carry.
pub const MAX_REPORTED_MESSAGES: usize = 16;

/// Longest note we keep, in bytes.
pub const MAX_NOTE_BYTES: usize = 2048;

/// The file in the data directory that holds the hub key.
const HUB_KEY_FILE: &str = "hub_key";

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/rooms/{room}/reports", post(client_report))
        .route(
            &format!("{MIMI_PREFIX}/reportAbuse/{{room}}"),
            post(peer_report),
        )
        .route(FED_ACCUSED, post(peer_accused))
        .with_state(state)
}

/// Loads the hub's franking key from the data directory, creating it (mode 0600) at
/// first start.
pub fn load_or_create_hub_key(config: &Config) -> std::io::Result<HubKey> {
    let path = config.data_dir.join(HUB_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: expected 32 bytes", path.display()),
                )
            })?;
            Ok(HubKey::from_bytes(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = HubKey::generate();
            crate::state::write_secret(&path, &key.to_bytes())?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

/// Our cipher suite's code point, which every frank names.
pub fn ciphersuite() -> u16 {
    entente_core::mls::CIPHERSUITE as u16
}

/// Hub: franks an accepted application message whose MLS AAD carries `frank_aad`.
pub fn frank_message(
    state: &AppState,
    franking_tag: &[u8; 32],
    sender: &UserId,
    room: &RoomId,
    accepted_at: u64,
) -> Option<entente_wire::mimi::Frank> {
    let ctx = franking::context(sender, room, accepted_at);
    match franking::frank(
        &state.hub_key,
        &state.issuer,
        ciphersuite(),
        franking_tag,
        &ctx,
    ) {
        Ok(f) => {
            Metrics::inc(&state.metrics.messages_franked);
            Some(f)
        }
        Err(e) => {
            tracing::error!(error = %e, "franking failed");
            None
        }
    }
}

fn room_param(room: &str) -> Result<RoomId, Failure> {
    room.parse()
        .map_err(|e| Failure::bad_request(format!("room id in path: {e}")))
}

fn decode_report(bytes: &[u8]) -> Result<AbuseReport, Failure> {
    AbuseReport::decode(bytes).map_err(|e| Failure::bad_request(format!("AbuseReport: {e}")))
}

fn refused(message: impl Into<String>) -> Failure {
    Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "report_refused", message)
}

/// `POST /v1/rooms/{room}/reports`: a report from one of our users.
async fn client_report(
    State(state): State<AppState>,
    Path(room): Path<String>,
    a: Authed,
) -> Result<Json<ReportAnswer>, Failure> {
    let room = room_param(&room)?;
    let call: ReportCall = a.json()?;
    let report = decode_report(&call.report)?;
    if report.reporting_user.as_bytes() != a.client.user.as_bytes() {
        return Err(Failure::forbidden(
            "reportingUser must be your own user URI",
        ));
    }
    if state.is_local(room.domain()) {
        hub_accept(&state, &room, report, &state.domain.clone()).await?;
    } else {
        match state
            .federation
            .post(room.domain(), "reportAbuse", &room.to_string(), call.report)
            .await
        {
            Ok(_) => {}
            Err(FedError::Refused {
                domain,
                status,
                reason,
            }) if (400..500).contains(&status) => {
                let message = serde_json::from_str::<serde_json::Value>(&reason)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_owned))
                    .unwrap_or(reason);
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
                return Err(Failure::new(
                    status,
                    "report_refused",
                    format!("the hub {domain} refused the report: {message}"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        Metrics::inc(&state.metrics.reports_relayed);
    }
    Ok(Json(ReportAnswer {
        status: "accepted".into(),
    }))
}

/// MIMI `POST /reportAbuse/{roomId}` from a follower. No response body.
async fn peer_report(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    let room = room_param(&room)?;
    let report = decode_report(&body)?;
    if !state.is_local(room.domain()) {
        return Err(Failure::bad_request(format!(
            "{room} is hubbed by {}, not by {}",
            room.domain(),
            state.domain
        )));
    }
    crate::hub::require_participating_peer(&state, &room, &peer).await?;
    hub_accept(&state, &room, report, &peer).await?;
    Ok(StatusCode::OK.into_response())
}

/// Hub: verifies a report from `from` (our own domain for our users) and stores it.
async fn hub_accept(
    state: &AppState,
    room: &RoomId,
    report: AbuseReport,
    from: &Domain,
) -> Result<RecordedReport, Failure> {
    let result = verify_and_store(state, room, report, from).await;
    if result.is_err() {
        Metrics::inc(&state.metrics.reports_refused);
    }
    result
}

async fn verify_and_store(
    state: &AppState,
    room: &RoomId,
    report: AbuseReport,
    from: &Domain,
) -> Result<RecordedReport, Failure> {
    // The reporter (if named) must be a user of the domain that sent the report.
    let reporter = if report.reporting_user.is_empty() {
        None
    } else {
        let user = report
            .reporting_user
            .to_user_id()
            .map_err(|e| Failure::bad_request(format!("reportingUser: {e}")))?;
        if user.domain() != from {
            return Err(Failure::forbidden(format!(
                "{from} may not report on behalf of {user}, a user of {}",
                user.domain()
            )));
        }
        // A reporter our moderators banned is refused (crate::moderation).
        crate::moderation::check_remote(state, from, Some(&user.to_string())).await?;
        Some(user)
    };
    let abuser = report
        .alleged_abuser_uri
        .to_user_id()
        .map_err(|e| Failure::bad_request(format!("allegedAbuserUri: {e}")))?;
    if report.messages.is_empty() {
        return Err(refused(
            "a report must carry at least one message with its frank",
        ));
    }
    if report.messages.len() > MAX_REPORTED_MESSAGES {
        return Err(refused(format!(
            "a report may carry at most {MAX_REPORTED_MESSAGES} messages"
        )));
    }
    let note = String::from_utf8(report.note.as_slice().to_vec())
        .map_err(|_| Failure::bad_request("the note must be UTF-8"))?;
    if note.len() > MAX_NOTE_BYTES {
        return Err(refused(format!(
            "the note may be at most {MAX_NOTE_BYTES} bytes"
        )));
    }
    let issuer = state.issuer.public();
    for (i, m) in report.messages.iter().enumerate() {
        let sender = franking::verify_reported(&state.hub_key, &issuer, ciphersuite(), room, m)
            .map_err(|e| refused(format!("message {i}: {e}")))?;
        if sender != abuser {
            return Err(refused(format!(
                "message {i} was sent by {sender}, not by the alleged abuser {abuser}"
            )));
        }
    }
    let reporter_s = reporter.as_ref().map(|u| u.to_string());
    let digest = franking::report_digest(reporter_s.as_deref().unwrap_or(""), &report.messages);
    let messages = reported(&report.messages);
    let new = NewReport {
        received_at: now_ms(),
        role: ReportRole::Hub,
        room: room.to_string(),
        hub: state.domain.to_string(),
        reporter: reporter_s,
        reporter_domain: from.to_string(),
        alleged_abuser: abuser.to_string(),
        reason: report.reason_code.0,
        note: note.clone(),
        messages: messages.clone(),
        digest,
    };
    let recorded = state.db(move |s| s.record_report(&new)).await?;
    let id = match recorded {
        RecordedReport::Duplicate(id) => {
            Metrics::inc(&state.metrics.reports_duplicate);
            tracing::info!(report = id, "duplicate abuse report ignored");
            return Ok(recorded);
        }
        RecordedReport::New(id) => id,
    };
    Metrics::inc(&state.metrics.reports_accepted);
    tracing::info!(report = id, reason = report.reason_code.0, from = %from, "abuse report verified");
    let mut event = crate::spam::SpamEvent::new(
        crate::spam::EventKind::Report,
        crate::spam::Actor::Remote {
            domain: from.clone(),
            user: reporter.clone(),
        },
    );
    event.room = Some(room.clone());
    event.report = Some(crate::spam::ReportInfo {
        reporter_domain: from.clone(),
        alleged_abuser: abuser.clone(),
        reason_code: report.reason_code.0,
        verified: true,
    });
    let _ = crate::spam::observe(state, event).await;
    // Inform the accused user's provider.
    let notice = AccusedNotice {
        room: room.to_string(),
        alleged_abuser: abuser.to_string(),
        reason: report.reason_code.0,
        note,
        messages,
        digest: hex::encode(digest),
    };
    if state.is_local(abuser.domain()) {
        record_accused(state, notice, &state.domain.clone()).await?;
    } else {
        let body = serde_json::to_vec(&notice).map_err(|e| Failure::internal("notice", e))?;
        let batch = Batch {
            outbound: vec![NewOutbound {
                domain: abuser.domain().to_string(),
                endpoint: FED_ACCUSED.into(),
                room: room.to_string(),
                body,
            }],
            accepted_at: now_ms(),
            ..Batch::default()
        };
        crate::hub::commit_batch(state, batch).await?;
    }
    Ok(recorded)
}

fn reported(messages: &[AbusiveMessage]) -> Vec<ReportedMessage> {
    messages
        .iter()
        .map(|m| ReportedMessage {
            content: m.message_content.as_slice().to_vec(),
            accepted_at: m.accepted_timestamp,
        })
        .collect()
}

/// What the hub tells the accused user's provider (JSON, `POST
/// /entente/v1/reports/accused`): the verified messages, not who reported them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccusedNotice {
    pub room: String,
    pub alleged_abuser: String,
    pub reason: u8,
    pub note: String,
    pub messages: Vec<ReportedMessage>,
    /// The hub's report digest (hex), so a notice sent twice is stored once.
    pub digest: String,
}

/// Federation: the hub of a room informs us that one of our users was reported.
async fn peer_accused(
    State(state): State<AppState>,
    Peer(peer): Peer,
    body: Bytes,
) -> Result<Response, Failure> {
    let notice: AccusedNotice = serde_json::from_slice(&body)
        .map_err(|e| Failure::bad_request(format!("invalid JSON body: {e}")))?;
    let room: RoomId = room_param(&notice.room)?;
    // Only the room's hub verified franks in it.
    if room.domain() != &peer {
        return Err(Failure::forbidden(format!(
            "only the hub of {room} may report its messages"
        )));
    }
    record_accused(&state, notice, &peer).await?;
    Ok(StatusCode::CREATED.into_response())
}

/// Stores a report about one of our users, as the accused's provider.
async fn record_accused(
    state: &AppState,
    notice: AccusedNotice,
    hub: &Domain,
) -> Result<RecordedReport, Failure> {
    let abuser: UserId = notice
        .alleged_abuser
        .parse()
        .map_err(|e| Failure::bad_request(format!("alleged_abuser: {e}")))?;
    if !state.is_local(abuser.domain()) {
        return Err(Failure::bad_request(format!(
            "{abuser} is not a user of {}",
            state.domain
        )));
    }
    if notice.messages.is_empty() || notice.messages.len() > MAX_REPORTED_MESSAGES {
        return Err(refused("a report carries 1 to 16 messages"));
    }
    // The hub verified the franks; we check the content names our user and the room.
    for (i, m) in notice.messages.iter().enumerate() {
        let c = franking::claims(&m.content).map_err(|e| refused(format!("message {i}: {e}")))?;
        if c.sender != abuser || c.room.to_string() != notice.room {
            return Err(refused(format!(
                "message {i} does not name {abuser} in {}",
                notice.room
            )));
        }
    }
    let digest: [u8; 32] = hex::decode(&notice.digest)
        .ok()
        .and_then(|d| d.try_into().ok())
        .ok_or_else(|| Failure::bad_request("digest: expected 64 hex digits"))?;
    let new = NewReport {
        received_at: now_ms(),
        role: ReportRole::Accused,
        room: notice.room,
        hub: hub.to_string(),
        reporter: None,
        reporter_domain: hub.to_string(),
        alleged_abuser: abuser.to_string(),
        reason: notice.reason,
        note: notice.note,
        messages: notice.messages,
        digest,
    };
    let recorded = state.db(move |s| s.record_report(&new)).await?;
    if let RecordedReport::New(id) = recorded {
        Metrics::inc(&state.metrics.reports_against_local);
        tracing::info!(report = id, hub = %hub, "a local user was reported");
    }
    Ok(recorded)
}
