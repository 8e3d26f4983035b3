//! Rate limits: token buckets per client (device), per user and per peer domain.
//!
//! Every authenticated client API request takes a token from its device's bucket
//! ([`Class::Client`]) and from its user's bucket ([`Class::User`], shared by all the
//! user's devices); requests that are expensive or abusable also take one from a
//! per-user bucket of their own class (key material and prekey bundle claims,
//! message submissions, consent requests, abuse reports). Every MIMI (and Entente
//! extension) request of a peer provider takes one from its domain's bucket
//! ([`Class::Federation`]), once its TLS certificate has authenticated the domain.
//!
//! A request over a limit is answered `429 Too Many Requests` with a `Retry-After`
//! header (whole seconds, rounded up) and the JSON error body of [`Failure`]:
//!
//! ```json
//! {"code":"rate_limited","message":"too many message submissions from
//!  mimi://a.example/u/alice: at most 100 at once, then 10 per second; try again in
//!  2 s","retry_after_secs":2}
//! ```
//!
//! The core is sans-IO: [`Bucket::take`] is given the time. A bucket is the
//! generic cell rate algorithm (GCRA), which is a token bucket kept as one number,
//! its *theoretical arrival time*: in any interval of length `t` it allows at most
//! `burst + t * per_second` requests, and the retry-after it answers is exact. A full
//! bucket behaves exactly like a missing one, so the [`Limiter`] evicts full buckets
//! whenever a shard grows past its share of `max_buckets`: memory stays bounded and
//! eviction changes no decision. (Only if a shard is still over its share with no
//! full bucket, which needs more concurrently limited keys than `max_buckets`, is it
//! emptied: failing open rather than refusing everyone.)
//!
//! In memory: a restart starts every bucket full.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Failure;

/// A refill rate and a bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Tokens added per second (may be fractional: 0.1 is one every 10 s).
    pub per_second: f64,
    /// The bucket's size: how many requests may come at once after a quiet time.
    pub burst: u32,
}

impl Rate {
    pub const fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }

    fn validate(&self, name: &str) -> Result<(), String> {
        if !(self.per_second.is_finite() && self.per_second >= 0.001 && self.per_second <= 1e9) {
            return Err(format!(
                "`rate_limits.{name}.per_second` must be between 0.001 and 1e9"
            ));
        }
        if self.burst == 0 {
            return Err(format!("`rate_limits.{name}.burst` must be at least 1"));
        }
        Ok(())
    }
}

/// The `[rate_limits]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `false` switches every limit off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Every client API request, per device.
    #[serde(default = "d_client")]
    pub client: Rate,
    /// Every client API request, per user (all the user's devices together).
    #[serde(default = "d_user")]
    pub user: Rate,
    /// Key material claims (MLS KeyPackages) and Signal prekey bundle claims, per
    /// user: each consumes another user's one-time keys.
    #[serde(default = "d_key_claims")]
    pub key_claims: Rate,
    /// Message submissions (room messages and sealed Signal sends), per user.
    #[serde(default = "d_messages")]
    pub messages: Rate,
    /// Consent (message) requests to other users, per user.
    #[serde(default = "d_consent_requests")]
    pub consent_requests: Rate,
    /// Abuse reports, per user.
    #[serde(default = "d_reports")]
    pub reports: Rate,
    /// Every federation request, per peer domain.
    #[serde(default = "d_federation")]
    pub federation: Rate,
    /// Most buckets kept in memory (full buckets are evicted first).
    #[serde(default = "d_max_buckets")]
    pub max_buckets: usize,
}

fn yes() -> bool {
    true
}
fn d_client() -> Rate {
    Rate::new(50.0, 500)
}
fn d_user() -> Rate {
    Rate::new(100.0, 1000)
}
fn d_key_claims() -> Rate {
    Rate::new(10.0, 1000)
}
fn d_messages() -> Rate {
    Rate::new(20.0, 300)
}
fn d_consent_requests() -> Rate {
    Rate::new(0.2, 30)
}
fn d_reports() -> Rate {
    Rate::new(0.1, 20)
}
fn d_federation() -> Rate {
    Rate::new(1000.0, 10_000)
}
fn d_max_buckets() -> usize {
    100_000
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            client: d_client(),
            user: d_user(),
            key_claims: d_key_claims(),
            messages: d_messages(),
            consent_requests: d_consent_requests(),
            reports: d_reports(),
            federation: d_federation(),
            max_buckets: d_max_buckets(),
        }
    }
}

impl RateLimitConfig {
    /// Every class at `rate` (for tests).
    pub fn uniform(rate: Rate) -> Self {
        Self {
            enabled: true,
            client: rate,
            user: rate,
            key_claims: rate,
            messages: rate,
            consent_requests: rate,
            reports: rate,
            federation: rate,
            max_buckets: d_max_buckets(),
        }
    }

    /// The rate of `class`.
    pub fn rate(&self, class: Class) -> Rate {
        match class {
            Class::Client => self.client,
            Class::User => self.user,
            Class::KeyClaims => self.key_claims,
            Class::Messages => self.messages,
            Class::ConsentRequests => self.consent_requests,
            Class::Reports => self.reports,
            Class::Federation => self.federation,
        }
    }

    /// The rate of `class`, mutably.
    pub fn rate_mut(&mut self, class: Class) -> &mut Rate {
        match class {
            Class::Client => &mut self.client,
            Class::User => &mut self.user,
            Class::KeyClaims => &mut self.key_claims,
            Class::Messages => &mut self.messages,
            Class::ConsentRequests => &mut self.consent_requests,
            Class::Reports => &mut self.reports,
            Class::Federation => &mut self.federation,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for c in Class::ALL {
            self.rate(c).validate(c.name())?;
        }
        if self.max_buckets < 1024 {
            return Err("`rate_limits.max_buckets` must be at least 1024".into());
        }
        Ok(())
    }
}

/// What a bucket limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Client API requests of one device.
    Client,
    /// Client API requests of one user, all devices together.
    User,
    /// Key material and prekey bundle claims of one user.
    KeyClaims,
    /// Message submissions of one user.
    Messages,
    /// Consent requests of one user.
    ConsentRequests,
    /// Abuse reports of one user.
    Reports,
    /// Federation requests of one peer domain.
    Federation,
}

impl Class {
    pub const ALL: [Class; 7] = [
        Class::Client,
        Class::User,
        Class::KeyClaims,
        Class::Messages,
        Class::ConsentRequests,
        Class::Reports,
        Class::Federation,
    ];

    /// The config key and metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Class::Client => "client",
            Class::User => "user",
            Class::KeyClaims => "key_claims",
            Class::Messages => "messages",
            Class::ConsentRequests => "consent_requests",
            Class::Reports => "reports",
            Class::Federation => "federation",
        }
    }

    /// What is counted, for error messages.
    fn what(self) -> &'static str {
        match self {
            Class::Client | Class::User => "requests",
            Class::KeyClaims => "key material claims",
            Class::Messages => "message submissions",
            Class::ConsentRequests => "consent requests",
            Class::Reports => "abuse reports",
            Class::Federation => "federation requests",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The expensive class (besides `Client` and `User`) of a client API request,
    /// by its method and path.
    pub fn of_client_request(method: &str, path: &str) -> Option<Class> {
        let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, seg.as_slice()) {
            ("POST", ["v1", "rooms", _, "key-material"]) => Some(Class::KeyClaims),
            ("GET", ["v1", "signal", "bundles", ..]) => Some(Class::KeyClaims),
            ("POST", ["v1", "rooms", _, "messages"]) => Some(Class::Messages),
            ("POST", ["v1", "signal", "messages"]) => Some(Class::Messages),
            ("POST", ["v1", "consent", "request"]) => Some(Class::ConsentRequests),
            ("POST", ["v1", "reports", ..]) | ("POST", ["v1", "rooms", _, "reports"]) => {
                Some(Class::Reports)
            }
            _ => None,
        }
    }
}

/// How long to wait before the request would be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, rounded up, at least 1: the `Retry-After` header.
    pub fn whole_secs(self) -> u64 {
        let d = self.0;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

/// GCRA parameters: nanoseconds per token and the bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    interval_ns: u64,
    burst: u64,
}

impl Params {
    pub fn new(rate: Rate) -> Self {
        let interval_ns = (1e9 / rate.per_second.max(1e-9)).round();
        Self {
            interval_ns: if interval_ns >= u64::MAX as f64 {
                u64::MAX
            } else {
                (interval_ns as u64).max(1)
            },
            burst: u64::from(rate.burst.max(1)),
        }
    }

    /// Nanoseconds between tokens.
    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// The GCRA step on a theoretical arrival time `tat`, at `now` (ns).
    fn take(&self, tat: &mut u64, now: u64) -> Result<(), RetryAfter> {
        let new_tat = (*tat).max(now).saturating_add(self.interval_ns);
        let limit = now.saturating_add(self.burst.saturating_mul(self.interval_ns));
        if new_tat <= limit {
            *tat = new_tat;
            Ok(())
        } else {
            Err(RetryAfter(Duration::from_nanos(new_tat - limit)))
        }
    }
}

/// One token bucket, sans IO: the caller says what time it is (any monotonic
/// clock, as a duration since a fixed origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    params: Params,
    /// Theoretical arrival time in ns: when the bucket will be full again.
    tat: u64,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: Rate) -> Self {
        Self {
            params: Params::new(rate),
            tat: 0,
        }
    }

    /// Takes a token at `now`, or says how long until one is available.
    pub fn take(&mut self, now: Duration) -> Result<(), RetryAfter> {
        self.params.take(&mut self.tat, nanos(now))
    }

    /// Whether the bucket is full at `now` (then it is as good as a new one).
    pub fn is_full(&self, now: Duration) -> bool {
        self.tat <= nanos(now)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A request over a limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limited {
    pub class: Class,
    pub retry_after: RetryAfter,
    pub rate: Rate,
}

impl Limited {
    /// The 429 answer; `who` names the limited party (to the caller only).
    pub fn failure(&self, who: &str) -> Failure {
        let secs = self.retry_after.whole_secs();
        let mut f = Failure::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many {} from {who}: at most {} at once, then {} per second; try again in {secs} s",
                self.class.what(),
                self.rate.burst,
                self.rate.per_second
            ),
        );
        f.retry_after_secs = Some(secs);
        f
    }
}

const SHARDS: usize = 16;

/// The provider's buckets, keyed by class and party, in sharded maps.
pub struct Limiter {
    config: RateLimitConfig,
    params: [Params; Class::ALL.len()],
    origin: Instant,
    hasher: std::collections::hash_map::RandomState,
    shards: [Mutex<HashMap<u64, u64>>; SHARDS],
    limited: [AtomicU64; Class::ALL.len()],
}

impl Limiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            params: Class::ALL.map(|c| Params::new(config.rate(c))),
            config,
            origin: Instant::now(),
            hasher: Default::default(),
            shards: Default::default(),
            limited: Default::default(),
        }
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Takes a token from `party`'s bucket of `class`, now.
    pub fn check(&self, class: Class, party: &str) -> Result<(), Limited> {
        self.check_at(class, party, self.origin.elapsed())
    }

    /// Takes a token at `now` (since the limiter's origin).
    pub fn check_at(&self, class: Class, party: &str, now: Duration) -> Result<(), Limited> {
        if !self.config.enabled {
            return Ok(());
        }
        let now = nanos(now);
        // Keyed SipHash of (class, party): no allocation, and collisions cannot be
        // aimed at without the per-process key.
        let mut h = self.hasher.build_hasher();
        class.hash(&mut h);
        party.hash(&mut h);
        let key = h.finish();
        let params = &self.params[class.index()];
        let shard = &self.shards[(key as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let cap = (self.config.max_buckets / SHARDS).max(1);
        if map.len() >= cap && !map.contains_key(&key) {
            map.retain(|_, tat| *tat > now);
            if map.len() >= cap {
                map.clear();
            }
        }
        let tat = map.entry(key).or_insert(0);
        params.take(tat, now).map_err(|retry_after| {
            self.limited[class.index()].fetch_add(1, Ordering::Relaxed);
            Limited {
                class,
                retry_after,
                rate: self.config.rate(class),
            }
        })
    }

    /// Buckets held (for tests and metrics).
    pub fn buckets(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Requests refused so far in `class`.
    pub fn limited_count(&self, class: Class) -> u64 {
        self.limited[class.index()].load(Ordering::Relaxed)
    }

    /// The Prometheus text of the per-class counters.
    pub fn metrics_text(&self) -> String {
        let mut out = String::from(
            "# HELP entente_rate_limited_total Requests refused with 429 by a rate limit, per class.\n\
             # TYPE entente_rate_limited_total counter\n",
        );
        for c in Class::ALL {
            out += &format!(
                "entente_rate_limited_total{{class=\"{}\"}} {}\n",
                c.name(),
                self.limited_count(c)
            );
        }
        out
    }
}

/// The limits of an authenticated client API request: its device, its user and
/// the expensive class of the route, if any. `user` and `client` are URIs.
pub fn check_client(
    state: &crate::state::AppState,
    client: &str,
    user: &str,
    method: &str,
    path: &str,
) -> Result<(), Failure> {
    let l = &state.limits;
    l.check(Class::Client, client)
        .map_err(|e| e.failure(&format!("your device {client}")))?;
    l.check(Class::User, user)
        .map_err(|e| e.failure(&format!("your account {user} (all devices together)")))?;
    if let Some(class) = Class::of_client_request(method, path) {
        l.check(class, user).map_err(|e| e.failure(user))?;
    }
    Ok(())
}

/// Takes a token of an expensive `class` for `user` outside the route table (for
/// handlers whose path [`Class::of_client_request`] does not know).
pub fn charge(state: &crate::state::AppState, class: Class, user: &str) -> Result<(), Failure> {
    state.limits.check(class, user).map_err(|e| e.failure(user))
}

/// The limit of a request from peer provider `domain` (authenticated by TLS).
pub fn check_peer(state: &crate::state::AppState, domain: &str) -> Result<(), Failure> {
    state.limits.check(Class::Federation, domain).map_err(|e| {
        tracing::info!(peer = %domain, "federation rate limit reached");
        e.failure(&format!("your provider {domain}"))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn burst_then_refill() {
        let mut b = Bucket::new(Rate::new(2.0, 3));
        let t0 = Duration::from_secs(100);
        for _ in 0..3 {
            b.take(t0).unwrap();
        }
        // Empty: the next token comes in 0.5 s.
        assert_eq!(b.take(t0), Err(RetryAfter(Duration::from_millis(500))));
        b.take(t0 + Duration::from_millis(500)).unwrap();
        assert!(b.take(t0 + Duration::from_millis(500)).is_err());
        // After 1.5 s of quiet it is full again: 3 at once, not more.
        let t1 = t0 + Duration::from_millis(2000);
        assert!(b.is_full(t1));
        for _ in 0..3 {
            b.take(t1).unwrap();
        }
        assert!(b.take(t1).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(RetryAfter(Duration::from_millis(1)).whole_secs(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(1000)).whole_secs(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(1001)).whole_secs(), 2);
        assert_eq!(RetryAfter(Duration::ZERO).whole_secs(), 1);
        let mut b = Bucket::new(Rate::new(0.1, 1));
        b.take(S).unwrap();
        let e = b.take(S + Duration::from_millis(1)).unwrap_err();
        assert_eq!(e.0, Duration::from_millis(9999));
        assert_eq!(e.whole_secs(), 10);
    }

    #[test]
    fn limiter_keys_are_separate_and_classes_too() {
        let l = Limiter::new(RateLimitConfig::uniform(Rate::new(1.0, 2)));
        let t = Duration::from_secs(5);
        l.check_at(Class::Client, "a", t).unwrap();
        l.check_at(Class::Client, "a", t).unwrap();
        let e = l.check_at(Class::Client, "a", t).unwrap_err();
        assert_eq!(e.class, Class::Client);
        assert_eq!(e.retry_after.0, S);
        l.check_at(Class::Client, "b", t).unwrap();
        l.check_at(Class::User, "a", t).unwrap();
        assert_eq!(l.limited_count(Class::Client), 1);
        assert!(l.metrics_text().contains("class=\"client\"} 1"));
        l.check_at(Class::Client, "a", t + S).unwrap();
    }

    #[test]
    fn disabled_allows_everything() {
        let mut c = RateLimitConfig::uniform(Rate::new(1.0, 1));
        c.enabled = false;
        let l = Limiter::new(c);
        for _ in 0..100 {
            l.check_at(Class::Federation, "x", S).unwrap();
        }
    }

    #[test]
    fn eviction_keeps_memory_bounded_and_decisions_intact() {
        let mut c = RateLimitConfig::uniform(Rate::new(1.0, 2));
        c.max_buckets = 1024;
        let l = Limiter::new(c);
        let t = Duration::from_secs(10);
        // A limited key.
        l.check_at(Class::User, "hot", t).unwrap();
        l.check_at(Class::User, "hot", t).unwrap();
        // Many keys that are full again a few seconds later.
        for i in 0..5000 {
            l.check_at(Class::Client, &format!("k{i}"), t).unwrap();
        }
        assert!(l.buckets() <= 1024 + SHARDS);
        // Later, the earlier keys are full and evicted first.
        let later = t + Duration::from_secs(3);
        for i in 0..5000 {
            l.check_at(Class::Client, &format!("j{i}"), later).unwrap();
        }
        assert!(l.buckets() <= 1024 + SHARDS);
    }

    #[test]
    fn client_routes_are_classified() {
        let c = Class::of_client_request;
        assert_eq!(
            c("POST", "/v1/rooms/mimi%3A%2F%2Fa/messages"),
            Some(Class::Messages)
        );
        assert_eq!(c("POST", "/v1/signal/messages"), Some(Class::Messages));
        assert_eq!(
            c("POST", "/v1/rooms/x/key-material"),
            Some(Class::KeyClaims)
        );
        assert_eq!(
            c("GET", "/v1/signal/bundles/bob@b.example"),
            Some(Class::KeyClaims)
        );
        assert_eq!(
            c("POST", "/v1/consent/request"),
            Some(Class::ConsentRequests)
        );
        assert_eq!(c("POST", "/v1/consent/block"), None);
        assert_eq!(c("GET", "/v1/inbox"), None);
        assert_eq!(c("POST", "/v1/rooms/x/update"), None);
    }

    #[test]
    fn config_defaults_validate_and_parse() {
        RateLimitConfig::default().validate().unwrap();
        let c: RateLimitConfig =
            toml::from_str("messages = { per_second = 0.5, burst = 4 }").unwrap();
        assert_eq!(c.messages, Rate::new(0.5, 4));
        assert_eq!(c.client, d_client());
        let mut bad = RateLimitConfig::default();
        bad.reports.burst = 0;
        assert!(bad.validate().is_err());
        bad = RateLimitConfig::default();
        bad.user.per_second = f64::NAN;
        assert!(bad.validate().is_err());
    }

    proptest! {
        /// Over any window of a random request sequence, at most
        /// `burst + window / interval` are allowed; a refused request's retry-after
        /// is exact (allowed then, not a nanosecond sooner).
        #[test]
        fn never_more_than_burst_plus_rate(
            per_second in prop_oneof![Just(1.0f64), Just(4.0), Just(0.5), Just(1000.0), 0.01f64..5000.0],
            burst in 1u32..20,
            gaps in proptest::collection::vec(0u64..2_000_000_000, 1..200),
        ) {
            let rate = Rate::new(per_second, burst);
            let interval = Params::new(rate).interval_ns();
            let mut b = Bucket::new(rate);
            let mut now = 1_000_000_000u64;
            let mut allowed: Vec<u64> = Vec::new();
            for g in gaps {
                now += g % (interval.saturating_mul(3).max(1));
                let t = Duration::from_nanos(now);
                let before = b;
                match b.take(t) {
                    Ok(()) => allowed.push(now),
                    Err(ra) => {
                        prop_assert_eq!(b, before, "a refusal must not take a token");
                        let ra_ns = u64::try_from(ra.0.as_nanos()).unwrap();
                        prop_assert!(ra_ns > 0);
                        let mut at = b;
                        prop_assert!(at.take(Duration::from_nanos(now + ra_ns)).is_ok());
                        let mut sooner = b;
                        prop_assert!(sooner.take(Duration::from_nanos(now + ra_ns - 1)).is_err());
                    }
                }
            }
            for i in 0..allowed.len() {
                for j in i..allowed.len() {
                    let window = allowed[j] - allowed[i];
                    let n = (j - i + 1) as u64;
                    prop_assert!(n <= u64::from(burst) + window / interval,
                        "{} allowed in {} ns (burst {}, interval {})", n, window, burst, interval);
                }
            }
        }

        /// After enough quiet time, a full burst is allowed again.
        #[test]
        fn refills_to_burst(per_second in 0.01f64..1000.0, burst in 1u32..50, used in 0u32..60) {
            let rate = Rate::new(per_second, burst);
            let interval = Params::new(rate).interval_ns();
            let mut b = Bucket::new(rate);
            let t = Duration::from_secs(1);
            for _ in 0..used { let _ = b.take(t); }
            let later = t + Duration::from_nanos(interval * u64::from(burst));
            prop_assert!(b.is_full(later));
            for _ in 0..burst { prop_assert!(b.take(later).is_ok()); }
            prop_assert!(b.take(later).is_err());
        }
    }
}
