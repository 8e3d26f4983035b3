//! Operational counters, served in the Prometheus text format at `/metrics` to
//! loopback clients only: message volumes are metadata, not for the world.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use entente_tls::ConnectionInfo;

use crate::error::Failure;
use crate::state::AppState;

/// Counters since start.
#[derive(Default)]
pub struct Metrics {
    pub messages_accepted: AtomicU64,
    pub commits_accepted: AtomicU64,
    pub commits_wrong_epoch: AtomicU64,
    pub notify_received: AtomicU64,
    pub notify_sent: AtomicU64,
    pub notify_failed: AtomicU64,
    pub federation_refused: AtomicU64,
    pub blobs_created: AtomicU64,
    pub blob_bytes_in: AtomicU64,
    pub blob_bytes_out: AtomicU64,
    /// Signal prekey bundles handed out (one per device per claim).
    pub signal_bundles_claimed: AtomicU64,
    /// One-time prekeys (X25519 and ML-KEM) consumed by claims.
    pub signal_prekeys_claimed: AtomicU64,
    /// Claims that had to serve the last-resort ML-KEM prekey.
    pub signal_last_resort_served: AtomicU64,
    /// Sealed messages (one per recipient device) accepted from our clients.
    pub sealed_messages_accepted: AtomicU64,
    /// Sealed messages stored in our clients' inboxes.
    pub sealed_messages_delivered: AtomicU64,
    /// Retention (`crate::privacy::retention`): inbox items deleted unacked.
    pub retention_inbox_expired: AtomicU64,
    /// Retention: outbound federation requests dropped unsent.
    pub retention_outbound_dropped: AtomicU64,
    /// Retention: abuse reports deleted.
    pub retention_reports_expired: AtomicU64,
    /// Retention: runs of the policy.
    pub retention_runs: AtomicU64,
    /// Franking (`crate::abuse`): application messages franked as hub.
    pub messages_franked: AtomicU64,
    /// Abuse reports verified and stored as hub.
    pub reports_accepted: AtomicU64,
    /// Abuse reports refused as hub (a frank did not verify, or not allowed).
    pub reports_refused: AtomicU64,
    /// Replayed abuse reports (already stored).
    pub reports_duplicate: AtomicU64,
    /// Our users' reports relayed to another hub.
    pub reports_relayed: AtomicU64,
    /// Reports about our users (as the accused's provider).
    pub reports_against_local: AtomicU64,
    /// Devices admitted to a group call on our SFU.
    pub call_joins: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub async fn serve(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnectionInfo>,
) -> Result<Response, Failure> {
    if !conn.remote_addr.ip().is_loopback() {
        return Err(Failure::forbidden(
            "metrics are served to loopback clients only",
        ));
    }
    let m = &state.metrics;
    let c = |name: &str, help: &str, v: &AtomicU64| {
        format!(
            "# HELP entente_{name} {help}\n# TYPE entente_{name} counter\nentente_{name} {}\n",
            v.load(Ordering::Relaxed)
        )
    };
    let mut out = String::new();
    out += &c(
        "messages_accepted_total",
        "Application messages accepted as hub.",
        &m.messages_accepted,
    );
    out += &c(
        "commits_accepted_total",
        "Commits accepted as hub.",
        &m.commits_accepted,
    );
    out += &c(
        "commits_wrong_epoch_total",
        "Commits answered wrongEpoch.",
        &m.commits_wrong_epoch,
    );
    out += &c(
        "notify_received_total",
        "FanoutMessages received as follower.",
        &m.notify_received,
    );
    out += &c(
        "notify_sent_total",
        "Outbound federation requests delivered.",
        &m.notify_sent,
    );
    out += &c(
        "notify_failed_total",
        "Outbound federation attempts that failed and will be retried.",
        &m.notify_failed,
    );
    out += &c(
        "federation_refused_total",
        "Outbound federation requests a peer refused (dropped).",
        &m.federation_refused,
    );
    out += &c(
        "blobs_created_total",
        "Blob uploads started.",
        &m.blobs_created,
    );
    out += &c(
        "blob_bytes_in_total",
        "Blob bytes received from uploading clients.",
        &m.blob_bytes_in,
    );
    out += &c(
        "blob_bytes_out_total",
        "Blob bytes served from this provider's blob store.",
        &m.blob_bytes_out,
    );
    out += &c(
        "signal_bundles_claimed_total",
        "Signal prekey bundles handed out (one per device).",
        &m.signal_bundles_claimed,
    );
    out += &c(
        "signal_prekeys_claimed_total",
        "One-time Signal prekeys (X25519 and ML-KEM) consumed.",
        &m.signal_prekeys_claimed,
    );
    out += &c(
        "signal_last_resort_served_total",
        "Bundles that carried the last-resort ML-KEM prekey.",
        &m.signal_last_resort_served,
    );
    out += &c(
        "sealed_messages_accepted_total",
        "Sealed-sender messages accepted from this provider's clients (per device).",
        &m.sealed_messages_accepted,
    );
    out += &c(
        "sealed_messages_delivered_total",
        "Sealed-sender messages stored in this provider's inboxes (per device).",
        &m.sealed_messages_delivered,
    );
    out += &c(
        "retention_inbox_expired_total",
        "Inbox items deleted by retention, never acked.",
        &m.retention_inbox_expired,
    );
    out += &c(
        "retention_outbound_dropped_total",
        "Outbound federation requests dropped by retention, never accepted.",
        &m.retention_outbound_dropped,
    );
    out += &c(
        "retention_reports_expired_total",
        "Abuse reports deleted by retention.",
        &m.retention_reports_expired,
    );
    out += &c(
        "retention_runs_total",
        "Runs of the retention policy.",
        &m.retention_runs,
    );
    out += &c(
        "messages_franked_total",
        "Application messages franked as hub.",
        &m.messages_franked,
    );
    out += &c(
        "reports_accepted_total",
        "Abuse reports verified and stored as hub.",
        &m.reports_accepted,
    );
    out += &c(
        "reports_refused_total",
        "Abuse reports refused as hub.",
        &m.reports_refused,
    );
    out += &c(
        "reports_duplicate_total",
        "Replayed abuse reports (stored before).",
        &m.reports_duplicate,
    );
    out += &c(
        "reports_relayed_total",
        "Our users' abuse reports relayed to another hub.",
        &m.reports_relayed,
    );
    out += &c(
        "reports_against_local_total",
        "Abuse reports about our users.",
        &m.reports_against_local,
    );
    out += &c(
        "call_joins_total",
        "Devices admitted to a group call on our SFU.",
        &m.call_joins,
    );
    out += &crate::calls::metrics_text(&state);
    out += &state.limits.metrics_text();
    out += &state.spam.metrics_text();
    Ok((
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        out,
    )
        .into_response())
}
