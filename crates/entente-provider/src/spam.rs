//! The spam-filter hook: filters see what the provider legitimately sees, and
//! nothing more.
//!
//! A [`SpamEvent`] carries metadata only: what happened ([`EventKind`]), who did it
//! (a local user, or a remote provider and the user it names), the room, the target
//! user, the size of the ciphertext, how many recipients, when; and for user
//! reports, the reporter's domain, the alleged abuser, the reason code and whether
//! the hub verified the report's franks. It has no field that can hold free text or
//! bytes: identifiers are the validated types of `entente_wire::ids`, the rest are
//! numbers, booleans and enums. The provider has no plaintext, and a filter cannot
//! be handed any (a report's free-text note stays out too).
//!
//! A filter answers a [`Verdict`]: allow, reject with a reason (`403
//! spam_rejected`; a rejected message is not delivered and the client drops it), or
//! throttle with a retry-after (`429`; the client keeps the message and retries).
//! Every filter sees every event; the strictest verdict wins.
//!
//! Filters, in order:
//! - the built-in one ([`BuiltinFilter`], `[spam] builtin = true`): a user with at
//!   least `report_threshold` verified reports within `report_window_hours` cannot
//!   send consent requests, and their submissions and key claims are throttled to
//!   one per `throttle_secs`;
//! - a webhook (`[spam.webhook] url = "http://127.0.0.1:9000/spam"`, loopback only):
//!   the event is POSTed as JSON, the answer is `{"verdict": "allow"}`,
//!   `{"verdict": "reject", "reason": "..."}` or `{"verdict": "throttle",
//!   "retry_after_secs": 30}`. Within `timeout_ms`; if the webhook fails, it allows
//!   (`fail_open = true`, the default) or throttles for `retry_after_secs`
//!   (`fail_open = false`: nothing passes unchecked, and nothing is lost either,
//!   since throttled clients retry);
//! - filters injected by an embedder ([`crate::state::StartOptions::spam_filters`]).
//!
//! ```toml
//! [spam]
//! builtin = true
//! report_threshold = 3
//! report_window_hours = 24
//! throttle_secs = 30
//! [spam.webhook]
//! url = "http://127.0.0.1:9000/spam"
//! timeout_ms = 500
//! fail_open = true
//! ```
//!
//! Call sites: [`observe`] (the verdict) or [`enforce`] (the verdict as a
//! `Failure`) where a message is submitted (at the hub, and at a follower for its
//! own clients), a sealed message is sent or delivered, key material or a prekey
//! bundle is claimed, a consent request is made and a report is received.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use entente_wire::ids::{Domain, RoomId, UserId};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::Failure;
use crate::ratelimit::{Bucket, Rate};
use crate::state::{AppState, now_ms};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An application message submitted to a room.
    MessageSubmission,
    /// Sealed Signal-channel messages sent by a local user, or delivered by a peer.
    SealedSend,
    /// MLS KeyPackages claimed (MIMI keyMaterial).
    KeyMaterialClaim,
    /// Signal prekey bundles claimed.
    BundleClaim,
    /// A consent (message) request to a user.
    ConsentRequest,
    /// A user's abuse report.
    Report,
}

impl EventKind {
    fn what(self) -> &'static str {
        match self {
            EventKind::MessageSubmission => "message",
            EventKind::SealedSend => "sealed message",
            EventKind::KeyMaterialClaim => "key material claim",
            EventKind::BundleClaim => "prekey bundle claim",
            EventKind::ConsentRequest => "consent request",
            EventKind::Report => "report",
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A user of ours, authenticated by their client's signature.
    LocalUser {
        #[serde(serialize_with = "display")]
        user: UserId,
    },
    /// A peer provider, authenticated by TLS, and the user it names, if any (its
    /// claim: the peer vouches for it).
    Remote {
        #[serde(serialize_with = "display")]
        domain: Domain,
        #[serde(serialize_with = "opt_display")]
        user: Option<UserId>,
    },
}

impl Actor {
    /// The user acting, if known.
    pub fn user(&self) -> Option<&UserId> {
        match self {
            Actor::LocalUser { user } => Some(user),
            Actor::Remote { user, .. } => user.as_ref(),
        }
    }
}

/// A user report, as far as a filter may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportInfo {
    #[serde(serialize_with = "display")]
    pub reporter_domain: Domain,
    #[serde(serialize_with = "display")]
    pub alleged_abuser: UserId,
    /// The MIMI reason code.
    pub reason_code: u8,
    /// Whether the hub verified the reported messages' franks.
    pub verified: bool,
}

/// One observation. Metadata only (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpamEvent {
    pub kind: EventKind,
    pub actor: Actor,
    #[serde(serialize_with = "opt_display")]
    pub room: Option<RoomId>,
    /// The user addressed (claims, sealed sends, consent requests).
    #[serde(serialize_with = "opt_display")]
    pub target: Option<UserId>,
    /// Ciphertext bytes.
    pub size: Option<u64>,
    /// Recipient clients (or devices).
    pub recipients: Option<u32>,
    /// Milliseconds since the UNIX epoch.
    pub at_ms: u64,
    pub report: Option<ReportInfo>,
}

impl SpamEvent {
    pub fn new(kind: EventKind, actor: Actor) -> Self {
        Self {
            kind,
            actor,
            room: None,
            target: None,
            size: None,
            recipients: None,
            at_ms: now_ms(),
            report: None,
        }
    }
    pub fn room(mut self, room: &RoomId) -> Self {
        self.room = Some(room.clone());
        self
    }
    pub fn target(mut self, user: &UserId) -> Self {
        self.target = Some(user.clone());
        self
    }
    pub fn size(mut self, bytes: usize) -> Self {
        self.size = Some(bytes as u64);
        self
    }
    pub fn recipients(mut self, n: usize) -> Self {
        self.recipients = Some(u32::try_from(n).unwrap_or(u32::MAX));
        self
    }
    pub fn report(mut self, report: ReportInfo) -> Self {
        self.report = Some(report);
        self
    }
    /// A local user acting.
    pub fn local(kind: EventKind, user: &UserId) -> Self {
        Self::new(kind, Actor::LocalUser { user: user.clone() })
    }
    /// A peer provider acting, for `user` if it names one.
    pub fn remote(kind: EventKind, domain: &Domain, user: Option<&UserId>) -> Self {
        Self::new(
            kind,
            Actor::Remote {
                domain: domain.clone(),
                user: user.cloned(),
            },
        )
    }
}

fn display<T: std::fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn opt_display<T: std::fmt::Display, S: Serializer>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// A filter's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse; the reason is shown to the user.
    Reject {
        reason: String,
    },
    /// Refuse for now; the client may try again after `retry_after`.
    Throttle {
        retry_after: Duration,
    },
}

impl Verdict {
    /// The stricter of two verdicts: reject over throttle (the longer) over allow.
    pub fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (r @ Verdict::Reject { .. }, _) | (_, r @ Verdict::Reject { .. }) => r,
            (Verdict::Throttle { retry_after: a }, Verdict::Throttle { retry_after: b }) => {
                Verdict::Throttle {
                    retry_after: a.max(b),
                }
            }
            (t @ Verdict::Throttle { .. }, _) | (_, t @ Verdict::Throttle { .. }) => t,
            (Verdict::Allow, Verdict::Allow) => Verdict::Allow,
        }
    }
}

/// A spam filter. Implementations must be cheap or bounded in time: they are
/// awaited on the request path.
pub trait SpamFilter: Send + Sync {
    fn observe<'a>(&'a self, event: &'a SpamEvent) -> BoxFuture<'a, Verdict>;
}

/// The `[spam]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpamConfig {
    /// The built-in filter on verified reports.
    #[serde(default = "yes")]
    pub builtin: bool,
    /// Verified reports against a user, within the window, that flag them.
    #[serde(default = "d_threshold")]
    pub report_threshold: u32,
    #[serde(default = "d_window")]
    pub report_window_hours: u64,
    /// A flagged user may submit one message or key claim per this many seconds.
    #[serde(default = "d_throttle")]
    pub throttle_secs: u64,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

/// `[spam.webhook]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` URL on a loopback address (127.0.0.1, [::1] or localhost).
    pub url: String,
    #[serde(default = "d_timeout")]
    pub timeout_ms: u64,
    /// Allow when the webhook fails (times out, errs, answers nonsense); otherwise
    /// throttle for `retry_after_secs`.
    #[serde(default = "yes")]
    pub fail_open: bool,
    #[serde(default = "d_fail_retry")]
    pub retry_after_secs: u64,
}

fn yes() -> bool {
    true
}
fn d_threshold() -> u32 {
    3
}
fn d_window() -> u64 {
    24
}
fn d_throttle() -> u64 {
    30
}
fn d_timeout() -> u64 {
    500
}
fn d_fail_retry() -> u64 {
    10
}

impl Default for SpamConfig {
    fn default() -> Self {
        Self {
            builtin: true,
            report_threshold: d_threshold(),
            report_window_hours: d_window(),
            throttle_secs: d_throttle(),
            webhook: None,
        }
    }
}

impl SpamConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.report_threshold == 0 || self.report_window_hours == 0 || self.throttle_secs == 0 {
            return Err("`spam.report_threshold`, `spam.report_window_hours` and `spam.throttle_secs` must be at least 1".into());
        }
        if let Some(w) = &self.webhook {
            let url = reqwest::Url::parse(&w.url)
                .map_err(|e| format!("`spam.webhook.url` {:?}: {e}", w.url))?;
            let loopback = url.host_str().is_some_and(|h| {
                h == "localhost"
                    || h.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            });
            if url.scheme() != "http" || !loopback {
                return Err(format!(
                    "`spam.webhook.url` {:?} must be an http:// URL on a loopback address (127.0.0.1, [::1], localhost)",
                    w.url
                ));
            }
            if w.timeout_ms == 0 || w.timeout_ms > 30_000 || w.retry_after_secs == 0 {
                return Err("`spam.webhook.timeout_ms` must be 1 to 30000 and `spam.webhook.retry_after_secs` at least 1".into());
            }
        }
        Ok(())
    }
}

/// The provider's filters and counters.
pub struct SpamHook {
    filters: RwLock<Vec<Arc<dyn SpamFilter>>>,
    rejected: AtomicU64,
    throttled: AtomicU64,
}

impl SpamHook {
    /// The configured filters, then `extra` (an embedder's).
    pub fn new(config: &SpamConfig, extra: Vec<Arc<dyn SpamFilter>>) -> Result<Self, String> {
        let mut filters: Vec<Arc<dyn SpamFilter>> = Vec::new();
        if config.builtin {
            filters.push(Arc::new(BuiltinFilter::new(config)));
        }
        if let Some(w) = &config.webhook {
            filters.push(Arc::new(WebhookFilter::new(w.clone())?));
        }
        filters.extend(extra);
        Ok(Self {
            filters: RwLock::new(filters),
            rejected: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        })
    }

    /// Adds a filter to a running provider (it sees events from now on).
    pub fn add(&self, filter: Arc<dyn SpamFilter>) {
        self.filters
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(filter);
    }

    pub fn metrics_text(&self) -> String {
        format!(
            "# HELP entente_spam_verdicts_total Requests refused by the spam filters.\n\
             # TYPE entente_spam_verdicts_total counter\n\
             entente_spam_verdicts_total{{verdict=\"reject\"}} {}\n\
             entente_spam_verdicts_total{{verdict=\"throttle\"}} {}\n",
            self.rejected.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed)
        )
    }
}

/// Shows `event` to every filter; the strictest verdict.
pub async fn observe(state: &AppState, event: SpamEvent) -> Verdict {
    let filters: Vec<Arc<dyn SpamFilter>> = state
        .spam
        .filters
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut verdict = Verdict::Allow;
    for f in filters {
        verdict = verdict.and(f.observe(&event).await);
    }
    match &verdict {
        Verdict::Allow => {}
        Verdict::Reject { .. } => {
            state.spam.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::info!(kind = event.kind.what(), "spam filter rejected a request");
        }
        Verdict::Throttle { .. } => {
            state.spam.throttled.fetch_add(1, Ordering::Relaxed);
            tracing::info!(kind = event.kind.what(), "spam filter throttled a request");
        }
    }
    verdict
}

/// [`observe`], with a refusal as the HTTP answer: `403 spam_rejected` or `429
/// rate_limited` with `Retry-After`.
pub async fn enforce(state: &AppState, event: SpamEvent) -> Result<(), Failure> {
    let what = event.kind.what();
    match observe(state, event).await {
        Verdict::Allow => Ok(()),
        Verdict::Reject { reason } => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "spam_rejected",
            format!(
                "the spam filter of {} refused this {what}: {reason}",
                state.domain
            ),
        )),
        Verdict::Throttle { retry_after } => {
            let secs = crate::ratelimit::RetryAfter(retry_after).whole_secs();
            let mut f = Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "the spam filter of {} is slowing down this sender: try this {what} again in {secs} s",
                    state.domain
                ),
            );
            f.retry_after_secs = Some(secs);
            Err(f)
        }
    }
}

// ------------------------------------------------------------------ built-in

/// Counts verified reports per alleged abuser; a user at the threshold within the
/// window cannot send consent requests and is throttled. In memory: the count
/// restarts with the provider (the reports themselves are in the store).
pub struct BuiltinFilter {
    threshold: usize,
    window_ms: u64,
    throttle: Rate,
    state: Mutex<BuiltinState>,
}

#[derive(Default)]
struct BuiltinState {
    /// Times of verified reports, per alleged abuser.
    reports: HashMap<String, VecDeque<u64>>,
    /// The throttle of each flagged user.
    buckets: HashMap<String, Bucket>,
}

const MAX_TRACKED: usize = 100_000;

impl BuiltinFilter {
    pub fn new(config: &SpamConfig) -> Self {
        Self {
            threshold: config.report_threshold as usize,
            window_ms: config.report_window_hours.saturating_mul(3_600_000),
            throttle: Rate::new(1.0 / config.throttle_secs.max(1) as f64, 1),
            state: Mutex::new(BuiltinState::default()),
        }
    }

    /// The verdict at `now_ms` (sans IO).
    pub fn decide(&self, event: &SpamEvent, now_ms: u64) -> Verdict {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let since = now_ms.saturating_sub(self.window_ms);
        if let Some(r) = &event.report
            && r.verified
            && event.kind == EventKind::Report
        {
            if st.reports.len() >= MAX_TRACKED {
                st.reports
                    .retain(|_, times| times.back().is_some_and(|t| *t >= since));
            }
            let times = st.reports.entry(r.alleged_abuser.to_string()).or_default();
            times.push_back(now_ms);
            while times.len() > self.threshold.max(1) * 4 {
                times.pop_front();
            }
            return Verdict::Allow;
        }
        let Some(user) = event.actor.user() else {
            return Verdict::Allow;
        };
        let key = user.to_string();
        let flagged = match st.reports.get_mut(&key) {
            Some(times) => {
                while times.front().is_some_and(|t| *t < since) {
                    times.pop_front();
                }
                times.len() >= self.threshold
            }
            None => false,
        };
        if !flagged {
            return Verdict::Allow;
        }
        match event.kind {
            EventKind::ConsentRequest => Verdict::Reject {
                reason: format!(
                    "{} verified abuse reports against you in the last {} hours; you cannot send message requests for now",
                    self.threshold,
                    self.window_ms / 3_600_000
                ),
            },
            EventKind::MessageSubmission
            | EventKind::SealedSend
            | EventKind::KeyMaterialClaim
            | EventKind::BundleClaim => {
                if st.buckets.len() >= MAX_TRACKED {
                    st.buckets.clear();
                }
                let now = Duration::from_millis(now_ms);
                let bucket = st
                    .buckets
                    .entry(key)
                    .or_insert_with(|| Bucket::new(self.throttle));
                match bucket.take(now) {
                    Ok(()) => Verdict::Allow,
                    Err(ra) => Verdict::Throttle { retry_after: ra.0 },
                }
            }
            EventKind::Report => Verdict::Allow,
        }
    }
}

impl SpamFilter for BuiltinFilter {
    fn observe<'a>(&'a self, event: &'a SpamEvent) -> BoxFuture<'a, Verdict> {
        let v = self.decide(event, now_ms());
        Box::pin(async move { v })
    }
}

// ------------------------------------------------------------------ webhook

/// POSTs each event as JSON to an operator's loopback service.
pub struct WebhookFilter {
    config: WebhookConfig,
    http: reqwest::Client,
}

/// The webhook's answer.
#[derive(Debug, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
enum WebhookAnswer {
    Allow,
    Reject {
        #[serde(default)]
        reason: String,
    },
    Throttle {
        retry_after_secs: u64,
    },
}

impl WebhookFilter {
    pub fn new(config: WebhookConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| format!("building the spam webhook client: {e}"))?;
        Ok(Self { config, http })
    }

    async fn ask(&self, event: &SpamEvent) -> Result<Verdict, String> {
        let resp = self
            .http
            .post(&self.config.url)
            .json(event)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let answer: WebhookAnswer = resp.json().await.map_err(|e| e.to_string())?;
        Ok(match answer {
            WebhookAnswer::Allow => Verdict::Allow,
            WebhookAnswer::Reject { reason } => Verdict::Reject {
                reason: if reason.is_empty() {
                    "refused by the operator's filter".into()
                } else {
                    reason.chars().take(300).collect()
                },
            },
            WebhookAnswer::Throttle { retry_after_secs } => Verdict::Throttle {
                retry_after: Duration::from_secs(retry_after_secs.clamp(1, 86_400)),
            },
        })
    }
}

impl SpamFilter for WebhookFilter {
    fn observe<'a>(&'a self, event: &'a SpamEvent) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            match self.ask(event).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, fail_open = self.config.fail_open, "spam webhook failed");
                    if self.config.fail_open {
                        Verdict::Allow
                    } else {
                        Verdict::Throttle {
                            retry_after: Duration::from_secs(self.config.retry_after_secs),
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn user(s: &str) -> UserId {
        s.parse().unwrap()
    }

    #[test]
    fn verdicts_combine_strictest_first() {
        let t = |s| Verdict::Throttle {
            retry_after: Duration::from_secs(s),
        };
        let r = Verdict::Reject { reason: "x".into() };
        assert_eq!(Verdict::Allow.and(Verdict::Allow), Verdict::Allow);
        assert_eq!(Verdict::Allow.and(t(3)), t(3));
        assert_eq!(t(3).and(t(5)), t(5));
        assert_eq!(t(3).and(r.clone()), r);
        assert_eq!(r.clone().and(Verdict::Allow), r);
    }

    #[test]
    fn builtin_flags_after_threshold_verified_reports() {
        let cfg = SpamConfig {
            report_threshold: 2,
            throttle_secs: 10,
            ..SpamConfig::default()
        };
        let f = BuiltinFilter::new(&cfg);
        let mallory = user("mallory@b.example");
        let report = |verified| {
            SpamEvent::remote(EventKind::Report, &"a.example".parse().unwrap(), None).report(
                ReportInfo {
                    reporter_domain: "a.example".parse().unwrap(),
                    alleged_abuser: mallory.clone(),
                    reason_code: 1,
                    verified,
                },
            )
        };
        let consent = SpamEvent::local(EventKind::ConsentRequest, &mallory);
        let msg = SpamEvent::local(EventKind::MessageSubmission, &mallory);
        let t = 1_000_000;
        assert_eq!(f.decide(&report(true), t), Verdict::Allow);
        assert_eq!(f.decide(&report(false), t), Verdict::Allow);
        assert_eq!(f.decide(&consent, t), Verdict::Allow);
        assert_eq!(f.decide(&report(true), t + 1), Verdict::Allow);
        assert!(matches!(f.decide(&consent, t + 2), Verdict::Reject { .. }));
        // Throttled: one message, then wait 10 s.
        assert_eq!(f.decide(&msg, t + 2), Verdict::Allow);
        assert_eq!(
            f.decide(&msg, t + 2),
            Verdict::Throttle {
                retry_after: Duration::from_secs(10)
            }
        );
        assert_eq!(f.decide(&msg, t + 10_002), Verdict::Allow);
        // Others are not affected.
        let bob = SpamEvent::local(EventKind::ConsentRequest, &user("bob@a.example"));
        assert_eq!(f.decide(&bob, t + 3), Verdict::Allow);
        // After the window, the reports no longer count.
        assert_eq!(f.decide(&consent, t + 24 * 3_600_000 + 2), Verdict::Allow);
    }

    #[test]
    fn events_serialize_as_metadata() {
        let e = SpamEvent::local(EventKind::MessageSubmission, &user("alice@a.example"))
            .room(&"mimi://a.example/r/x".parse().unwrap())
            .size(120)
            .recipients(3);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "message_submission");
        assert_eq!(v["actor"]["type"], "local_user");
        assert_eq!(v["actor"]["user"], "mimi://a.example/u/alice");
        assert_eq!(v["room"], "mimi://a.example/r/x");
        assert_eq!(v["size"], 120);
        assert_eq!(v["recipients"], 3);
    }

    #[test]
    fn webhook_config_must_be_loopback_http() {
        let mut c = SpamConfig::default();
        for (url, ok) in [
            ("http://127.0.0.1:9000/spam", true),
            ("http://localhost:9000/", true),
            ("http://[::1]:9/x", true),
            ("https://127.0.0.1/", false),
            ("http://example.com/", false),
            ("http://10.0.0.1/", false),
            ("nonsense", false),
        ] {
            c.webhook = Some(WebhookConfig {
                url: url.into(),
                timeout_ms: 500,
                fail_open: true,
                retry_after_secs: 5,
            });
            assert_eq!(c.validate().is_ok(), ok, "{url}");
        }
    }
}
