//! Moderation: what a provider's operators do about abuse, and its enforcement.
//!
//! Moderators act on the verified abuse reports the provider holds
//! ([`crate::store::Store::reports`]) through a small web page ([`web`], under
//! `/moderation/`) or the JSON admin API ([`admin`], used by
//! `entente provider reports` and `entente provider moderate`). Both are on the
//! provider's own HTTPS listener and need the moderator token, which the provider
//! writes at first start to `<data_dir>/moderator.token` (mode 0600); only its
//! SHA-256 is kept in memory.
//!
//! Actions ([`ActionKind`]) and what they do:
//! - **warn** a local user: a notice their clients show (`GET /v1/account/notices`,
//!   `entente notices`, and after `entente sync`). Nothing is refused.
//! - **suspend** a local user: every client API request of each of their devices is
//!   refused with 403 `account_suspended` and the reason ([`check_local_user`]),
//!   until **unsuspend**. Their account, devices, rooms and queued messages are
//!   kept; messages to them still arrive in their inboxes; an open WebSocket is
//!   not cut, but its reconnection is refused; peers may still fetch their key
//!   material (the hub's room policy decides who may add whom).
//! - **ban-user** (a remote user): federation requests that name the user as the
//!   actor are refused with 403 ([`check_remote`]): as `sendingUri` of a message
//!   submitted to rooms we hub, as `requestingUser` of key material claims, as the
//!   reporter of an abuse report and as the requester of consent. The user is not
//!   removed from rooms, messages already accepted are still delivered, and their
//!   provider may still relay other users' traffic.
//! - **ban-domain**: every federation request from that provider (MIMI and
//!   `/entente/v1/`, authenticated by its TLS client certificate) is refused with
//!   403, and our outbound queue drops what it holds for that domain (logged, not
//!   sent) instead of sending it. Rooms we share with it therefore stop
//!   progressing for its users; our users' requests that our provider relays to
//!   it directly (e.g. capabilities) are not blocked by the ban.
//! - **dismiss** a report: closes it with a reason. Any action may name the report
//!   it settles, which is then closed as actioned in the same transaction.
//!
//! Every action is written to the moderation log with the name the moderator gave,
//! the time and the reason. Suspensions and bans are loaded into memory at start,
//! so enforcing them costs no database read.

pub mod admin;
pub mod web;

pub use entente_wire::moderation::form;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use axum::Router;
use axum::http::StatusCode;
use entente_wire::ids::{Domain, UserId};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Failure;
use crate::state::{AppState, now_secs};
use crate::store::Store;
pub use crate::store::{ActionKind, ModerationAction, Sanction, Sanctions};

/// Name of the token file in the data directory.
pub const TOKEN_FILE: &str = "moderator.token";

/// `[moderation]`: the moderators' page and admin API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModerationConfig {
    /// Serve the web page under `/moderation/` (the JSON admin API under
    /// `/moderation/api/` is always served: the CLI uses it).
    #[serde(default = "yes")]
    pub web: bool,
    /// How long a web login lasts, in minutes.
    #[serde(default = "default_session_minutes")]
    pub session_minutes: u64,
    /// Days moderation log entries are kept.
    #[serde(default = "default_log_days")]
    pub log_retention_days: u64,
    /// Days a notice is kept after the user read it.
    #[serde(default = "default_notice_days")]
    pub notice_retention_days: u64,
}

impl Default for ModerationConfig {
    fn default() -> Self {
        Self {
            web: true,
            session_minutes: default_session_minutes(),
            log_retention_days: default_log_days(),
            notice_retention_days: default_notice_days(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_session_minutes() -> u64 {
    60
}
fn default_log_days() -> u64 {
    365
}
fn default_notice_days() -> u64 {
    90
}

/// The moderation state of a running provider: the token's hash, the sanctions
/// in force (a copy of the store's) and the web sessions.
pub struct Moderation {
    token_hash: [u8; 32],
    sanctions: RwLock<Enforced>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    session_secs: u64,
}

#[derive(Default)]
struct Enforced {
    /// user URI -> reason
    suspended: HashMap<String, String>,
    banned_users: HashMap<String, String>,
    banned_domains: HashMap<String, String>,
}

/// A logged-in moderator's web session.
#[derive(Clone)]
pub struct Session {
    pub moderator: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    pub expires_at: u64,
    /// What the last action did, shown once on the next page.
    pub flash: Option<String>,
}

/// Most sessions kept; older ones are dropped first.
const MAX_SESSIONS: usize = 256;

impl Moderation {
    /// Reads (or creates) the token file in `data_dir` and loads the sanctions.
    pub fn open(
        data_dir: &Path,
        store: &dyn Store,
        config: &ModerationConfig,
    ) -> Result<Self, String> {
        let path = data_dir.join(TOKEN_FILE);
        let token = match std::fs::read_to_string(&path) {
            Ok(t) => t.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                let token = hex::encode(bytes);
                crate::state::write_secret(&path, format!("{token}\n").as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                token
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        if token.len() < 32 {
            return Err(format!(
                "{} holds a token shorter than 32 characters; delete it and restart to get a new one",
                path.display()
            ));
        }
        let loaded = store
            .sanctions()
            .map_err(|e| format!("loading moderation state: {e}"))?;
        let mut enforced = Enforced::default();
        let map = |v: Vec<Sanction>| v.into_iter().map(|s| (s.target, s.reason)).collect();
        enforced.suspended = map(loaded.suspended_users);
        enforced.banned_users = map(loaded.banned_users);
        enforced.banned_domains = map(loaded.banned_domains);
        Ok(Self {
            token_hash: Sha256::digest(token.as_bytes()).into(),
            sanctions: RwLock::new(enforced),
            sessions: Mutex::new(HashMap::new()),
            session_secs: config.session_minutes.max(1) * 60,
        })
    }

    /// Whether `token` is the moderator token (constant time).
    pub fn token_matches(&self, token: &str) -> bool {
        let h: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        bool::from(h.ct_eq(&self.token_hash))
    }

    /// Starts a session; returns the cookie value.
    pub fn login(&self, moderator: String, now: u64) -> (String, Session) {
        let cookie = random_hex();
        let session = Session {
            moderator,
            csrf: random_hex(),
            expires_at: now + self.session_secs,
            flash: None,
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.expires_at > now);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                sessions.remove(&k);
            }
        }
        sessions.insert(Sha256::digest(cookie.as_bytes()).into(), session.clone());
        (cookie, session)
    }

    /// The live session of a cookie value.
    pub fn session(&self, cookie: &str, now: u64) -> Option<Session> {
        let key: [u8; 32] = Sha256::digest(cookie.as_bytes()).into();
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.get(&key).filter(|s| s.expires_at > now).cloned()
    }

    pub fn logout(&self, cookie: &str) {
        let key: [u8; 32] = Sha256::digest(cookie.as_bytes()).into();
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    /// Keeps a message for the session's next page.
    pub fn set_flash(&self, cookie: &str, message: String) {
        let key: [u8; 32] = Sha256::digest(cookie.as_bytes()).into();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sessions.get_mut(&key) {
            s.flash = Some(message);
        }
    }

    /// Takes the session's message, if any.
    pub fn take_flash(&self, cookie: &str) -> Option<String> {
        let key: [u8; 32] = Sha256::digest(cookie.as_bytes()).into();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.get_mut(&key).and_then(|s| s.flash.take())
    }

    pub fn session_secs(&self) -> u64 {
        self.session_secs
    }

    fn suspension(&self, user: &str) -> Option<String> {
        self.read().suspended.get(user).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Enforced> {
        self.sanctions.read().unwrap_or_else(|p| p.into_inner())
    }

    fn apply(&self, a: &ModerationAction) {
        let mut e = self.sanctions.write().unwrap_or_else(|p| p.into_inner());
        let (t, r) = (a.target.clone(), a.reason.clone());
        match a.kind {
            ActionKind::Suspend => {
                e.suspended.insert(t, r);
            }
            ActionKind::Unsuspend => {
                e.suspended.remove(&t);
            }
            ActionKind::BanUser => {
                e.banned_users.insert(t, r);
            }
            ActionKind::UnbanUser => {
                e.banned_users.remove(&t);
            }
            ActionKind::BanDomain => {
                e.banned_domains.insert(t, r);
            }
            ActionKind::UnbanDomain => {
                e.banned_domains.remove(&t);
            }
            ActionKind::Warn | ActionKind::Dismiss => {}
        }
    }

    /// Whether `domain` is banned (for the outbound queue).
    pub fn domain_banned(&self, domain: &str) -> bool {
        self.read().banned_domains.contains_key(domain)
    }
}

/// Refuses a suspended local user: 403 `account_suspended` with the reason. Called
/// by client API authentication for every request.
pub async fn check_local_user(state: &AppState, user_uri: &str) -> Result<(), Failure> {
    match state.moderation.suspension(user_uri) {
        None => Ok(()),
        Some(reason) => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "account_suspended",
            format!(
                "account {user_uri} is suspended by the moderators of {}: {reason}. \
                 Contact the provider's operator to appeal",
                state.domain
            ),
        )),
    }
}

/// Refuses a banned remote domain, or a banned remote user when the request names
/// one (`user_uri`, in URI or handle form): 403 `banned`. Called for every
/// federation request (domain) and where a request names its remote actor.
pub async fn check_remote(
    state: &AppState,
    domain: &Domain,
    user_uri: Option<&str>,
) -> Result<(), Failure> {
    let e = state.moderation.read();
    if let Some(reason) = e.banned_domains.get(domain.as_str()) {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "banned",
            format!(
                "{} does not federate with {domain}: the domain is banned by its moderators ({reason})",
                state.domain
            ),
        ));
    }
    if let Some(user) = user_uri {
        let canonical = UserId::parse_any(user)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| user.to_owned());
        if let Some(reason) = e.banned_users.get(&canonical) {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                "banned",
                format!(
                    "{canonical} is banned by the moderators of {} ({reason})",
                    state.domain
                ),
            ));
        }
    }
    Ok(())
}

/// An action as a moderator asks for it (web form, admin API, CLI).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionRequest {
    /// `warn`, `suspend`, `unsuspend`, `ban-user`, `unban-user`, `ban-domain`,
    /// `unban-domain` or `dismiss`.
    pub action: String,
    /// A user (`alice@a.example` or its URI), a domain, or nothing for `dismiss`.
    #[serde(default)]
    pub target: String,
    /// Why (for `warn`: the notice the user reads).
    #[serde(default)]
    pub reason: String,
    /// The report this action settles.
    #[serde(default)]
    pub report: Option<u64>,
    /// Who acts, for the log.
    #[serde(default)]
    pub moderator: String,
}

/// Longest reason or notice accepted.
pub const MAX_REASON: usize = 2000;
/// Longest moderator name.
pub const MAX_MODERATOR: usize = 64;

/// Validates and applies an action; returns what was done, for the moderator.
pub async fn act(state: &AppState, req: ActionRequest) -> Result<String, Failure> {
    let action = validate(state, req).await?;
    let a = action.clone();
    state
        .db(move |s| s.moderate(&a))
        .await
        .map_err(|f| match f.code {
            "not_found" => Failure::not_found(match action.kind {
                ActionKind::Unsuspend => format!("{} is not suspended", action.target),
                ActionKind::UnbanUser | ActionKind::UnbanDomain if action.report.is_none() => {
                    format!("{} is not banned", action.target)
                }
                _ => f.message,
            }),
            _ => f,
        })?;
    state.moderation.apply(&action);
    if action.kind == ActionKind::BanDomain {
        tracing::info!(domain = %action.target, report = ?action.report, "moderators banned a domain");
    } else {
        tracing::info!(action = action.kind.name(), report = ?action.report, "moderation action");
    }
    Ok(match action.kind {
        ActionKind::Warn => format!("warned {}", action.target),
        ActionKind::Suspend => format!("suspended {}", action.target),
        ActionKind::Unsuspend => format!("unsuspended {}", action.target),
        ActionKind::BanUser => format!("banned user {}", action.target),
        ActionKind::UnbanUser => format!("lifted the ban on user {}", action.target),
        ActionKind::BanDomain => format!("banned domain {}", action.target),
        ActionKind::UnbanDomain => format!("lifted the ban on domain {}", action.target),
        ActionKind::Dismiss => format!("dismissed report {}", action.target),
    })
}

async fn validate(state: &AppState, req: ActionRequest) -> Result<ModerationAction, Failure> {
    let kind = ActionKind::parse(req.action.trim()).ok_or_else(|| {
        Failure::bad_request(format!(
            "unknown action {:?}; use one of: {}",
            req.action,
            ActionKind::ALL.map(|k| k.name()).join(", ")
        ))
    })?;
    let reason = req.reason.trim().to_owned();
    if reason.chars().count() > MAX_REASON {
        return Err(Failure::bad_request(format!(
            "the reason is longer than {MAX_REASON} characters"
        )));
    }
    let needs_reason = !matches!(
        kind,
        ActionKind::Unsuspend | ActionKind::UnbanUser | ActionKind::UnbanDomain
    );
    if needs_reason && reason.is_empty() {
        return Err(Failure::bad_request(match kind {
            ActionKind::Warn => "a warning needs a text: the user reads it".to_owned(),
            _ => format!("{} needs a reason, for the log", kind.name()),
        }));
    }
    let moderator = req.moderator.trim();
    let moderator = if moderator.is_empty() {
        "moderator".to_owned()
    } else {
        if moderator.chars().count() > MAX_MODERATOR || moderator.chars().any(char::is_control) {
            return Err(Failure::bad_request(format!(
                "the moderator name must be at most {MAX_MODERATOR} printable characters"
            )));
        }
        moderator.to_owned()
    };
    let target_text = req.target.trim();
    let target = match kind {
        ActionKind::Warn | ActionKind::Suspend | ActionKind::Unsuspend => {
            let user = UserId::parse_any(target_text)
                .map_err(|e| Failure::bad_request(format!("user {target_text:?}: {e}")))?;
            if !state.is_local(user.domain()) {
                return Err(Failure::bad_request(format!(
                    "{user} is not a user of {}: warn and suspend act on local users; use ban-user for remote ones",
                    state.domain
                )));
            }
            let uri = user.to_string();
            let u = uri.clone();
            if kind != ActionKind::Unsuspend && !state.db(move |s| s.user_exists(&u)).await? {
                return Err(Failure::not_found(format!("{user} has no account here")));
            }
            uri
        }
        ActionKind::BanUser | ActionKind::UnbanUser => {
            let user = UserId::parse_any(target_text)
                .map_err(|e| Failure::bad_request(format!("user {target_text:?}: {e}")))?;
            if state.is_local(user.domain()) {
                return Err(Failure::bad_request(format!(
                    "{user} is a local user: suspend local users instead of banning them"
                )));
            }
            user.to_string()
        }
        ActionKind::BanDomain | ActionKind::UnbanDomain => {
            let domain = Domain::parse(target_text)
                .map_err(|e| Failure::bad_request(format!("domain {target_text:?}: {e}")))?;
            if state.is_local(&domain) {
                return Err(Failure::bad_request("a provider cannot ban its own domain"));
            }
            domain.to_string()
        }
        ActionKind::Dismiss => {
            let id = match req.report {
                Some(id) => id,
                None => target_text
                    .parse::<u64>()
                    .map_err(|_| Failure::bad_request("dismiss needs the report's id"))?,
            };
            return Ok(ModerationAction {
                kind,
                target: id.to_string(),
                reason,
                report: Some(id),
                moderator,
                at: now_secs(),
            });
        }
    };
    Ok(ModerationAction {
        kind,
        target,
        reason,
        report: req.report,
        moderator,
        at: now_secs(),
    })
}

/// Client API: the user's notices (`GET /v1/account/notices`) and marking them read.
pub fn client_router(state: AppState) -> Router {
    use axum::routing::{get, post};
    use entente_wire::moderation::{NOTICES_PATH, NOTICES_READ_PATH};
    Router::new()
        .route(NOTICES_PATH, get(notices))
        .route(NOTICES_READ_PATH, post(read_notices))
        .with_state(state)
}

async fn notices(
    axum::extract::State(state): axum::extract::State<AppState>,
    authed: crate::client_api::AuthedParts,
) -> Result<axum::Json<entente_wire::moderation::Notices>, Failure> {
    let user = authed.client.user.clone();
    let records = state.db(move |s| s.notices(&user)).await?;
    Ok(axum::Json(entente_wire::moderation::Notices {
        notices: records
            .into_iter()
            .map(|n| entente_wire::moderation::AccountNotice {
                id: n.id,
                created_at: n.created_at,
                text: n.text,
                read: n.read_at.is_some(),
            })
            .collect(),
    }))
}

async fn read_notices(
    axum::extract::State(state): axum::extract::State<AppState>,
    authed: crate::client_api::Authed,
) -> Result<axum::Json<serde_json::Value>, Failure> {
    let req: entente_wire::moderation::ReadNotices = authed.json()?;
    let user = authed.client.user.clone();
    let n = state
        .db(move |s| s.mark_notices_read(&user, req.up_to, now_secs()))
        .await?;
    Ok(axum::Json(serde_json::json!({ "marked": n })))
}

/// The moderators' routes: the web page (if enabled) and the admin API.
pub fn router(state: AppState) -> Router {
    let api = admin::router(state.clone());
    if state.config.moderation.web {
        api.merge(web::router(state))
    } else {
        api
    }
}

/// Deletes expired log entries and read notices (the maintenance task).
pub async fn expire(state: &AppState) -> Result<u64, Failure> {
    let now = now_secs();
    let cfg = &state.config.moderation;
    let log_before = now.saturating_sub(cfg.log_retention_days.saturating_mul(86_400));
    let read_before = now.saturating_sub(cfg.notice_retention_days.saturating_mul(86_400));
    state
        .db(move |s| s.expire_moderation(log_before, read_before))
        .await
}

/// A random 256-bit value in hex (session cookies, CSRF tokens).
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Adds the notices routes and schemas to the client API's OpenAPI document.
pub fn openapi(doc: &mut serde_json::Value) {
    use serde_json::json;
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let op = |summary: &str, request: Option<&str>, response: &str| {
        let mut o = json!({
            "summary": summary,
            "security": [{ "clientSignature": [] }],
            "responses": {
                "200": { "description": "success", "content": { "application/json": { "schema": schema(response) } } },
                "default": { "description": "error", "content": { "application/json": { "schema": schema("ApiError") } } }
            }
        });
        if let Some(r) = request {
            o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema(r) } } });
        }
        o
    };
    let paths = [
        (
            entente_wire::moderation::NOTICES_PATH,
            json!({ "get": op("Notices from this provider's moderators to the caller's user (warnings), oldest first. A suspended user's every request gets 403 account_suspended with the reason instead", None, "Notices") }),
        ),
        (
            entente_wire::moderation::NOTICES_READ_PATH,
            json!({ "post": op("Mark the user's notices up to an id read (for all their devices)", Some("ReadNotices"), "NoticesMarked") }),
        ),
    ];
    let notice = json!({ "type": "object", "required": ["id", "created_at", "text", "read"], "properties": {
        "id": { "type": "integer" }, "created_at": { "type": "integer", "description": "UNIX seconds" },
        "text": { "type": "string" }, "read": { "type": "boolean" } } });
    let schemas = [
        (
            "Notices",
            json!({ "type": "object", "required": ["notices"], "properties": { "notices": { "type": "array", "items": notice } } }),
        ),
        (
            "ReadNotices",
            json!({ "type": "object", "required": ["up_to"], "properties": { "up_to": { "type": "integer" } } }),
        ),
        (
            "NoticesMarked",
            json!({ "type": "object", "required": ["marked"], "properties": { "marked": { "type": "integer" } } }),
        ),
    ];
    if let Some(p) = doc["paths"].as_object_mut() {
        for (path, item) in paths {
            p.insert(path.to_owned(), item);
        }
    }
    if let Some(s) = doc["components"]["schemas"].as_object_mut() {
        for (name, item) in schemas {
            s.insert(name.to_owned(), item);
        }
    }
}
