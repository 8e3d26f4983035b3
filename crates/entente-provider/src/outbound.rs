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

const PER_DOMAIN: u32 = 256;
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

/// Largest notify body we build by concatenating FanoutMessages.
const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Sends one peer's due requests. Requests for the same room and endpoint are sent
/// in order, consecutive ones concatenated into one request (MIMI-06 allows several
/// FanoutMessages in one notify); different rooms go in parallel. A room's requests
/// stop at the first failure, which is retried with backoff.
async fn send_in_order(state: AppState, records: Vec<OutboundRecord>) {
    let mut by_room: BTreeMap<(String, String), Vec<OutboundRecord>> = BTreeMap::new();
    for r in records {
        by_room
            .entry((r.room.clone(), r.endpoint.clone()))
            .or_default()
            .push(r);
    }
    let sends = by_room
        .into_values()
        .map(|records| send_room(state.clone(), records));
    futures::future::join_all(sends).await;
}

async fn send_room(state: AppState, records: Vec<OutboundRecord>) {
    let Some(first) = records.first() else { return };
    let Ok(domain) = Domain::parse(&first.domain) else {
        tracing::error!(domain = %first.domain, "dropping outbound requests to an invalid domain");
        let ids: Vec<u64> = records.iter().map(|r| r.id).collect();
        let _ = state.db(move |s| s.outbound_done_all(&ids)).await;
        return;
    };
    if state.moderation.domain_banned(domain.as_str()) {
        // Moderators banned the domain: what was queued for it is not sent.
        tracing::info!(%domain, requests = records.len(), "dropping outbound requests to a banned domain");
        let ids: Vec<u64> = records.iter().map(|r| r.id).collect();
        let _ = state.db(move |s| s.outbound_done_all(&ids)).await;
        return;
    }
    let batchable = first.endpoint == "notify";
    let mut i = 0;
    while i < records.len() {
        // Take as many consecutive requests as fit in one body.
        let mut body = records[i].body.clone();
        let mut j = i + 1;
        while batchable
            && j < records.len()
            && body.len() + records[j].body.len() <= MAX_BATCH_BYTES
        {
            body.extend_from_slice(&records[j].body);
            j += 1;
        }
        let chunk = &records[i..j];
        let head = &records[i];
        match state
            .federation
            .post(&domain, &head.endpoint, &head.room, body)
            .await
        {
            Ok(_) => {
                state
                    .metrics
                    .notify_sent
                    .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Err(FedError::Refused { status, reason, .. }) => {
                crate::metrics::Metrics::inc(&state.metrics.federation_refused);
                tracing::warn!(peer = %head.domain, endpoint = %head.endpoint, status,
                    reason = %crate::privacy::redacted(&reason),
                    requests = chunk.len(), "peer refused a federation request; dropping it");
            }
            Err(FedError::Unreachable {
                reason,
                retry_after,
                ..
            }) => {
                let attempts = head.attempts.saturating_add(1);
                let backoff = retry_after
                    .unwrap_or_else(|| 1u64 << attempts.min(9))
                    .min(MAX_BACKOFF_SECS);
                tracing::info!(peer = %head.domain, attempts, backoff,
                    reason = %crate::privacy::redacted(&reason), "peer unreachable; will retry");
                let (id, next) = (head.id, now_secs() + backoff);
                let _ = state
                    .db(move |s| s.outbound_retry(id, next, attempts))
                    .await;
                return;
            }
        }
        let ids: Vec<u64> = chunk.iter().map(|r| r.id).collect();
        if state.db(move |s| s.outbound_done_all(&ids)).await.is_err() {
            return;
        }
        i = j;
    }
}

/// Periodic clean-up every `retention.interval_secs`: the retention policy
/// (`crate::privacy::retention`: undelivered inbox items, outbound requests never
/// accepted, dedup keys, echo marks, link codes, routes, old reports), then
/// expired blobs.
pub async fn maintenance(state: AppState, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_secs(state.config.retention.interval_secs.max(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = crate::privacy::retention::enforce(&state, crate::state::now_ms()).await {
            tracing::warn!(error = %crate::privacy::redacted(&e.message), "retention failed");
        }
        match crate::moderation::expire(&state).await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "expired moderation log and notices"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e.message, "moderation expiry failed"),
        }
        match crate::blobs::routes::collect_garbage(&state).await {
            Ok(n) if n > 0 => tracing::info!(blobs = n, "deleted expired blobs"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e.message, "blob garbage collection failed"),
        }
    }
}
