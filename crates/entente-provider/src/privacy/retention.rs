//! Retention in code: the maintenance task ([`crate::outbound::maintenance`])
//! calls [`enforce`] every `retention.interval_secs`, which deletes
//!
//! - inbox items (MLS and sealed) nobody fetched and acked within
//!   `undelivered_days` (acked ones are deleted on ack);
//! - outbound federation requests a peer has not accepted within
//!   `outbound_days`: dropped, with a warning per peer domain and the
//!   `entente_retention_outbound_dropped_total` metric;
//! - dedup keys and echo marks older than `dedup_days`; expired link codes; and
//!   KeyPackage routes past their lifetime (`Store::expire`);
//! - abuse reports older than `reports_days`, whatever their status;
//! - consent requests still unanswered after `consent_requests_days`
//!   (`Store::expire_consent`).
//!
//! The same task expires the moderation log and read notices
//! (`crate::moderation::expire`, `[moderation]` settings).
//!
//! Blobs expire on their own schedule (`[blobs] expiry_days`, the same task).
//! `docs/PRIVACY.md` lists what is kept and why.

use serde::{Deserialize, Serialize};

use crate::error::Failure;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::{RetentionCutoffs, RetentionExpired};

const DAY_MS: u64 = 86_400_000;

/// `[retention]`: how long stored data is kept, in days.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Inbox items not fetched and acked are deleted this long after they
    /// arrived.
    #[serde(default = "default_undelivered_days")]
    pub undelivered_days: u64,
    /// Federation requests a peer has not accepted are dropped this long after
    /// they were queued (the peer misses them).
    #[serde(default = "default_outbound_days")]
    pub outbound_days: u64,
    /// Dedup keys and echo marks are kept this long. At least `outbound_days`,
    /// so a request a peer retries is still recognised as a duplicate.
    #[serde(default = "default_dedup_days")]
    pub dedup_days: u64,
    /// Abuse reports, open or closed, are deleted this long after they arrived.
    #[serde(default = "default_reports_days")]
    pub reports_days: u64,
    /// Consent requests (message requests) nobody answered are deleted this long
    /// after they were made.
    #[serde(default = "default_consent_requests_days")]
    pub consent_requests_days: u64,
    /// How often the maintenance task runs, in seconds.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            undelivered_days: default_undelivered_days(),
            outbound_days: default_outbound_days(),
            dedup_days: default_dedup_days(),
            reports_days: default_reports_days(),
            consent_requests_days: default_consent_requests_days(),
            interval_secs: default_interval_secs(),
        }
    }
}

fn default_undelivered_days() -> u64 {
    30
}
fn default_outbound_days() -> u64 {
    7
}
fn default_dedup_days() -> u64 {
    7
}
fn default_reports_days() -> u64 {
    180
}
fn default_consent_requests_days() -> u64 {
    90
}
fn default_interval_secs() -> u64 {
    300
}

impl RetentionConfig {
    pub fn validate(&self) -> Result<(), String> {
        let days = [
            ("undelivered_days", self.undelivered_days),
            ("outbound_days", self.outbound_days),
            ("dedup_days", self.dedup_days),
            ("reports_days", self.reports_days),
            ("consent_requests_days", self.consent_requests_days),
        ];
        for (name, value) in days {
            if value == 0 || value > 36_500 {
                return Err(format!("`retention.{name}` must be 1 to 36500"));
            }
        }
        if self.dedup_days < self.outbound_days {
            return Err(format!(
                "`retention.dedup_days` ({}) must be at least `retention.outbound_days` ({}): \
                 a request still being retried must be recognised as a duplicate",
                self.dedup_days, self.outbound_days
            ));
        }
        if self.interval_secs == 0 || self.interval_secs > 86_400 {
            return Err("`retention.interval_secs` must be 1 to 86400".into());
        }
        Ok(())
    }

    /// The cut-offs at `now_ms`.
    pub fn cutoffs(&self, now_ms: u64) -> RetentionCutoffs {
        let before = |days: u64| now_ms.saturating_sub(days.saturating_mul(DAY_MS));
        RetentionCutoffs {
            undelivered_before_ms: before(self.undelivered_days),
            outbound_before_ms: before(self.outbound_days),
            reports_before_ms: before(self.reports_days),
        }
    }
}

/// What one run of [`enforce`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enforced {
    pub retained: RetentionExpired,
    /// Dedup keys, echo marks, link codes and KeyPackage routes.
    pub short_lived: u64,
    /// Unanswered consent requests (incoming and outgoing rows).
    pub consent_requests: u64,
}

/// Applies the retention policy as of `now_ms` (the maintenance task passes the
/// clock; tests pass a later time).
pub async fn enforce(state: &AppState, now_ms: u64) -> Result<Enforced, Failure> {
    let config = state.config.retention.clone();
    let dedup_before = now_ms.saturating_sub(config.dedup_days.saturating_mul(DAY_MS));
    let now_secs = now_ms / 1000;
    let short_lived = state.db(move |s| s.expire(dedup_before, now_secs)).await?;
    let cutoffs = config.cutoffs(now_ms);
    let retained = state.db(move |s| s.expire_retained(&cutoffs)).await?;
    let consent_before = now_ms.saturating_sub(config.consent_requests_days.saturating_mul(DAY_MS));
    let consent_requests = state.db(move |s| s.expire_consent(consent_before)).await?;
    let m = &state.metrics;
    use std::sync::atomic::Ordering::Relaxed;
    m.retention_inbox_expired
        .fetch_add(retained.inbox_items, Relaxed);
    m.retention_outbound_dropped
        .fetch_add(retained.outbound_total(), Relaxed);
    m.retention_reports_expired
        .fetch_add(retained.reports, Relaxed);
    for (domain, requests) in &retained.outbound {
        tracing::warn!(
            peer = %domain,
            requests,
            days = config.outbound_days,
            "dropped federation requests the peer did not accept in time; it misses them"
        );
    }
    if retained.total() + short_lived + consent_requests > 0 {
        tracing::info!(
            undelivered = retained.inbox_items,
            outbound = retained.outbound_total(),
            reports = retained.reports,
            consent_requests,
            short_lived,
            "retention: deleted expired data"
        );
    }
    Metrics::inc(&m.retention_runs);
    Ok(Enforced {
        retained,
        short_lived,
        consent_requests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_cutoffs_follow_the_days() {
        let c = RetentionConfig::default();
        c.validate().unwrap();
        let now = 1_000 * DAY_MS;
        let cut = c.cutoffs(now);
        assert_eq!(cut.undelivered_before_ms, 970 * DAY_MS);
        assert_eq!(cut.outbound_before_ms, 993 * DAY_MS);
        assert_eq!(cut.reports_before_ms, 820 * DAY_MS);
        assert_eq!(c.cutoffs(0), RetentionCutoffs::default(), "no underflow");
    }

    #[test]
    fn invalid_settings_are_refused() {
        let bad = [
            RetentionConfig {
                undelivered_days: 0,
                ..RetentionConfig::default()
            },
            RetentionConfig {
                dedup_days: 3,
                outbound_days: 7,
                ..RetentionConfig::default()
            },
            RetentionConfig {
                interval_secs: 0,
                ..RetentionConfig::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }

    #[test]
    fn the_section_parses_from_toml() {
        let c: RetentionConfig = toml::from_str("undelivered_days = 2\nreports_days = 90").unwrap();
        assert_eq!(c.undelivered_days, 2);
        assert_eq!(c.reports_days, 90);
        assert_eq!(c.outbound_days, 7);
        assert!(toml::from_str::<RetentionConfig>("undelivered = 2").is_err());
    }
}
