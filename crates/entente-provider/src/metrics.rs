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
    Ok((
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        out,
    )
        .into_response())
}
