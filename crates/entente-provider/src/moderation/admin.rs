//! The moderators' JSON admin API under `/moderation/api/`, authenticated by the
//! moderator token (`Authorization: Bearer <token>`), and [`AdminClient`], its
//! client (used by `entente provider reports` and `entente provider moderate`).
//!
//! - `GET /moderation/api/reports[?all=true]`: open reports (all with `all`),
//!   newest first, with the reported messages' text decoded ([`ReportView`]).
//! - `GET /moderation/api/reports/{id}`
//! - `GET /moderation/api/sanctions`: suspensions, bans and the recent log.
//! - `POST /moderation/api/actions` with an [`ActionRequest`]: `{"done": "..."}`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use entente_wire::content::MimiContent;
use serde::{Deserialize, Serialize};

use super::{ActionRequest, act};
use crate::config::Config;
use crate::error::Failure;
use crate::state::AppState;
use crate::store::{LogRecord, ReportRecord, ReportRole, ReportStatus, Sanction};

/// Prefix of the admin API.
pub const API_PREFIX: &str = "/moderation/api";
/// Most reports listed at once.
pub const MAX_LISTED: u32 = 500;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(&format!("{API_PREFIX}/reports"), get(list_reports))
        .route(&format!("{API_PREFIX}/reports/{{id}}"), get(one_report))
        .route(&format!("{API_PREFIX}/sanctions"), get(sanctions))
        .route(&format!("{API_PREFIX}/actions"), post(action))
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

/// Moderators' pages and answers carry report contents: never cache them.
pub(super) async fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A request carrying the moderator token.
pub struct Moderator;

impl FromRequestParts<AppState> for Moderator {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Failure::unauthenticated(
                    "send the moderator token as `Authorization: Bearer <token>`; it is in moderator.token in the provider's data directory",
                )
            })?;
        if state.moderation.token_matches(token) {
            Ok(Moderator)
        } else {
            Err(Failure::unauthenticated(
                "wrong moderator token; it is in moderator.token in the provider's data directory",
            ))
        }
    }
}

/// A report as moderators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportView {
    pub id: u64,
    /// Milliseconds since the UNIX epoch.
    pub received_at: u64,
    /// `hub`: we are the room's hub and verified the franks; `accused`: the hub
    /// told us about one of our users.
    pub role: String,
    pub room: String,
    pub hub: String,
    pub reporter: Option<String>,
    pub reporter_domain: String,
    pub alleged_abuser: String,
    /// The MIMI AbuseType code.
    pub reason: u8,
    pub note: String,
    /// `open`, `dismissed` or `actioned`.
    pub status: String,
    pub resolution: Option<String>,
    pub resolved_at: Option<u64>,
    pub messages: Vec<MessageView>,
}

/// A reported message, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    /// When the hub accepted it (ms).
    pub accepted_at: u64,
    /// Its text, or a description of what it holds instead.
    pub text: String,
    /// Whether `text` is the message's own text.
    pub is_text: bool,
}

impl ReportView {
    pub fn from_record(r: &ReportRecord) -> Self {
        let rep = &r.report;
        ReportView {
            id: r.id,
            received_at: rep.received_at,
            role: match rep.role {
                ReportRole::Hub => "hub",
                ReportRole::Accused => "accused",
            }
            .to_owned(),
            room: rep.room.clone(),
            hub: rep.hub.clone(),
            reporter: rep.reporter.clone(),
            reporter_domain: rep.reporter_domain.clone(),
            alleged_abuser: rep.alleged_abuser.clone(),
            reason: rep.reason,
            note: rep.note.clone(),
            status: status_name(r.status).to_owned(),
            resolution: r.resolution.clone(),
            resolved_at: r.resolved_at,
            messages: rep
                .messages
                .iter()
                .map(|m| {
                    let (text, is_text) = decode_text(&m.content);
                    MessageView {
                        accepted_at: m.accepted_at,
                        text,
                        is_text,
                    }
                })
                .collect(),
        }
    }
}

pub fn status_name(s: ReportStatus) -> &'static str {
    match s {
        ReportStatus::Open => "open",
        ReportStatus::Dismissed => "dismissed",
        ReportStatus::Actioned => "actioned",
    }
}

/// The text of MIMI content, or what it is when it has none.
pub fn decode_text(content: &[u8]) -> (String, bool) {
    match MimiContent::decode(content) {
        Ok(c) => {
            let parts = c.text_parts();
            if parts.is_empty() {
                (
                    format!("[no text: {} bytes of MIMI content]", content.len()),
                    false,
                )
            } else {
                let text: Vec<&str> = parts.iter().map(|p| p.text).collect();
                (text.join("\n"), true)
            }
        }
        Err(e) => (format!("[not valid MIMI content: {e}]"), false),
    }
}

/// Suspensions, bans and recent actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SanctionsView {
    pub suspended_users: Vec<SanctionView>,
    pub banned_users: Vec<SanctionView>,
    pub banned_domains: Vec<SanctionView>,
    pub log: Vec<LogView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SanctionView {
    pub target: String,
    pub reason: String,
    /// Seconds since the UNIX epoch.
    pub since: u64,
}

impl From<Sanction> for SanctionView {
    fn from(s: Sanction) -> Self {
        SanctionView {
            target: s.target,
            reason: s.reason,
            since: s.since,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogView {
    pub at: u64,
    pub moderator: String,
    pub action: String,
    pub target: String,
    pub reason: String,
    pub report: Option<u64>,
}

impl From<LogRecord> for LogView {
    fn from(l: LogRecord) -> Self {
        let a = l.action;
        LogView {
            at: a.at,
            moderator: a.moderator,
            action: a.kind.name().to_owned(),
            target: a.target,
            reason: a.reason,
            report: a.report,
        }
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
}

/// Reports to show: open ones, or all.
pub async fn load_reports(state: &AppState, all: bool) -> Result<Vec<ReportView>, Failure> {
    let status = if all { None } else { Some(ReportStatus::Open) };
    let records = state.db(move |s| s.reports(status, MAX_LISTED)).await?;
    Ok(records.iter().map(ReportView::from_record).collect())
}

pub async fn load_report(state: &AppState, id: u64) -> Result<ReportView, Failure> {
    state
        .db(move |s| s.report(id))
        .await?
        .map(|r| ReportView::from_record(&r))
        .ok_or_else(|| Failure::not_found(format!("no report {id}")))
}

pub async fn load_sanctions(state: &AppState, log: u32) -> Result<SanctionsView, Failure> {
    let (s, l) = state
        .db(move |s| Ok((s.sanctions()?, s.moderation_log(log)?)))
        .await?;
    Ok(SanctionsView {
        suspended_users: s.suspended_users.into_iter().map(Into::into).collect(),
        banned_users: s.banned_users.into_iter().map(Into::into).collect(),
        banned_domains: s.banned_domains.into_iter().map(Into::into).collect(),
        log: l.into_iter().map(Into::into).collect(),
    })
}

async fn list_reports(
    State(state): State<AppState>,
    _m: Moderator,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<ReportView>>, Failure> {
    Ok(Json(load_reports(&state, q.all).await?))
}

async fn one_report(
    State(state): State<AppState>,
    _m: Moderator,
    Path(id): Path<u64>,
) -> Result<Json<ReportView>, Failure> {
    Ok(Json(load_report(&state, id).await?))
}

async fn sanctions(
    State(state): State<AppState>,
    _m: Moderator,
) -> Result<Json<SanctionsView>, Failure> {
    Ok(Json(load_sanctions(&state, 50).await?))
}

async fn action(
    State(state): State<AppState>,
    _m: Moderator,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, Failure> {
    let req: ActionRequest = serde_json::from_slice(&body)
        .map_err(|e| Failure::bad_request(format!("invalid JSON body: {e}")))?;
    let done = act(&state, req).await?;
    Ok(Json(serde_json::json!({ "done": done })))
}

/// A client of a provider's admin API, set up from the provider's own config: it
/// trusts what the provider's config trusts, connects to its listen address and
/// reads the token from its data directory.
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl AdminClient {
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let token_path = config.data_dir.join(super::TOKEN_FILE);
        let token = std::fs::read_to_string(&token_path)
            .map_err(|e| {
                format!(
                    "cannot read the moderator token {}: {e}; start the provider once to create it, and run this as a user who may read it",
                    token_path.display()
                )
            })?
            .trim()
            .to_owned();
        let anchors = if config.tls.trust == "system" {
            entente_tls::TrustAnchors::webpki()
        } else {
            entente_tls::TrustAnchors::from_pem_file(std::path::Path::new(&config.tls.trust))
                .map_err(|e| e.to_string())?
        };
        entente_tls::install_crypto_provider();
        let tls = entente_tls::client_config(&anchors, None).map_err(|e| e.to_string())?;
        let mut addr = config.listen;
        if addr.ip().is_unspecified() {
            addr = match addr {
                SocketAddr::V4(a) => SocketAddr::from(([127, 0, 0, 1], a.port())),
                SocketAddr::V6(a) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port())),
            };
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .resolve(&config.domain, addr)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building the HTTPS client: {e}"))?;
        Ok(Self {
            http,
            base: format!("https://{}{API_PREFIX}", config.domain),
            token,
        })
    }

    pub async fn reports(&self, all: bool) -> Result<Vec<ReportView>, String> {
        self.get(&format!("/reports?all={all}")).await
    }

    pub async fn report(&self, id: u64) -> Result<ReportView, String> {
        self.get(&format!("/reports/{id}")).await
    }

    pub async fn sanctions(&self) -> Result<SanctionsView, String> {
        self.get("/sanctions").await
    }

    /// Applies an action; returns what was done.
    pub async fn act(&self, req: &ActionRequest) -> Result<String, String> {
        let r = self
            .http
            .post(format!("{}/actions", self.base))
            .bearer_auth(&self.token)
            .json(req)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let v: serde_json::Value = decode(r).await?;
        Ok(v["done"].as_str().unwrap_or("done").to_owned())
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        decode(r).await
    }

    fn unreachable(&self, e: &reqwest::Error) -> String {
        let mut msg = format!("cannot reach the provider at {}: {e}", self.base);
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        msg.push_str("; is it running?");
        msg
    }
}

async fn decode<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T, String> {
    let status = r.status();
    let bytes = r
        .bytes()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    if !status.is_success() {
        let msg = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(format!("the provider refused ({status}): {msg}"));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("unexpected answer from the provider: {e}"))
}
