//! The durable outbound federation queue's worker.
//!
//! Requests are written to storage in the same transaction that accepted the message
//! they carry, so nothing is lost if we crash before sending. The worker sends each
//! peer's requests in order; on failure it backs off exponentially (1 s doubling to
//! 5 min, or the peer's Retry-After) and retries the same request before any later
//! one. A 4xx answer means the peer will never accept it: it is dropped and logged.
//! Receivers deduplicate, so a request sent twice (crash after send, before the
//! done-mark) is delivered once.

use std::collections::BTreeMap;
use std::time::Duration;

use entente_wire::ids::Domain;
use tokio::sync::watch;

use crate::federation::client::FedError;
use crate::state::{AppState, now_secs};
use crate::store::OutboundRecord;

const PER_DOMAIN: u32 = 64;
const MAX_BACKOFF_SECS: u64 = 300;

pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let wake = state.outbound_wake.notified();
        let due = state
            .db(|s| s.due_outbound(now_secs(), PER_DOMAIN))
            .await
            .unwrap_or_default();
        if !due.is_empty() {
            let mut by_domain: BTreeMap<String, Vec<OutboundRecord>> = BTreeMap::new();
            for r in due {
                by_domain.entry(r.domain.clone()).or_default().push(r);
            }
            let sends = by_domain
                .into_values()
                .map(|records| send_in_order(state.clone(), records));
            futures::future::join_all(sends).await;
            continue;
        }
        let next = state.db(|s| s.next_outbound_at()).await.ok().flatten();
        let sleep = match next {
            Some(t) => Duration::from_secs(t.saturating_sub(now_secs()).clamp(1, 60)),
            None => Duration::from_secs(60),
        };
        tokio::select! {
            _ = wake => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Sends one peer's due requests in order, stopping at the first that fails.
async fn send_in_order(state: AppState, records: Vec<OutboundRecord>) {
    for r in records {
        let Ok(domain) = Domain::parse(&r.domain) else {
            tracing::error!(domain = %r.domain, "dropping outbound request to invalid domain");
            let id = r.id;
            let _ = state.db(move |s| s.outbound_done(id)).await;
            continue;
        };
        match state
            .federation
            .post(&domain, &r.endpoint, &r.room, r.body.clone())
            .await
        {
            Ok(_) => {
                let id = r.id;
                if state.db(move |s| s.outbound_done(id)).await.is_err() {
                    return;
                }
            }
            Err(FedError::Refused { status, reason, .. }) => {
                tracing::warn!(peer = %r.domain, endpoint = %r.endpoint, status, %reason,
                    "peer refused a federation request; dropping it");
                let id = r.id;
                if state.db(move |s| s.outbound_done(id)).await.is_err() {
                    return;
                }
            }
            Err(FedError::Unreachable {
                reason,
                retry_after,
                ..
            }) => {
                let attempts = r.attempts.saturating_add(1);
                let backoff = retry_after
                    .unwrap_or_else(|| 1u64 << attempts.min(9))
                    .min(MAX_BACKOFF_SECS);
                tracing::info!(peer = %r.domain, attempts, backoff, %reason, "peer unreachable; will retry");
                let (id, next) = (r.id, now_secs() + backoff);
                let _ = state
                    .db(move |s| s.outbound_retry(id, next, attempts))
                    .await;
                return;
            }
        }
    }
}

/// Periodic clean-up: expired dedup keys, echo marks, link codes and routes.
pub async fn maintenance(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
            _ = stop.changed() => return,
        }
        let before_ms = crate::state::now_ms().saturating_sub(7 * 86_400_000);
        match state.db(move |s| s.expire(before_ms, now_secs())).await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "expired old state"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e.message, "maintenance failed"),
        }
    }
}
