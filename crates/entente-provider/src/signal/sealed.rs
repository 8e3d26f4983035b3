//! Sender certificates and sealed-sender delivery.

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use entente_core::signal::keys::PublicKey;
use entente_core::signal::sealed_sender::SenderCertificate;
use entente_wire::ids::{ClientId, UserId};
use entente_wire::signal::{
    MISMATCHED_DEVICES, MismatchedDevices, SEALED_INBOX, SealedDelivery, SealedMessage, SealedSend,
    SealedSendResult, SenderCertificateRequest, SenderCertificateResponse,
};
use sha2::{Digest, Sha256};

use super::FED_MESSAGES;
use crate::client_api::Authed;
use crate::error::Failure;
use crate::federation::server::Peer;
use crate::spam::{EventKind, SpamEvent};
use crate::state::{AppState, now_ms};
use crate::store::{Batch, BatchOutcome, Dedup, Delivery, NewOutbound};

/// Dedup scope of sealed deliveries, on both providers.
const SEALED_SCOPE: &str = "sealed";

/// `POST /v1/signal/sender-certificate`
pub(super) async fn sender_certificate(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Json<SenderCertificateResponse>, Failure> {
    let req: SenderCertificateRequest = a.json()?;
    req.validate()
        .map_err(|e| Failure::bad_request(e.to_string()))?;
    let client = a.client.client.clone();
    let published = state
        .db(move |s| s.signal_identity(&client))
        .await?
        .ok_or_else(|| {
            Failure::new(
                StatusCode::CONFLICT,
                "no_signal_identity",
                "publish your Signal identity and prekeys (POST /v1/signal/prekeys) first",
            )
        })?;
    if published.identity_key != req.identity_key {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "identity_mismatch",
            "identity_key is not the identity key this device published with its prekeys; \
             publish the new identity first",
        ));
    }
    let identity = PublicKey::decode(&published.identity_key)
        .map_err(|e| Failure::internal("stored identity key", e))?;
    let hours = state.config.protocols.sender_certificate_hours;
    let expires_ms = now_ms().saturating_add(hours.saturating_mul(3_600_000));
    let certificate = SenderCertificate::issue(
        &state.issuer,
        a.client_id.user(),
        &a.client_id,
        published.device_id,
        &identity,
        expires_ms,
    )
    .map_err(|e| Failure::internal("issuing a sender certificate", e))?
    .encode();
    Ok(Json(SenderCertificateResponse {
        certificate,
        expires_ms,
    }))
}

/// `POST /v1/signal/messages`
pub(super) async fn send_sealed(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Response, Failure> {
    let send: SealedSend = a.json()?;
    let (recipient, clients) = send
        .validate()
        .map_err(|e| Failure::bad_request(e.to_string()))?;
    let accepted = u32::try_from(send.messages.len()).unwrap_or(u32::MAX);
    crate::spam::enforce(
        &state,
        SpamEvent::local(EventKind::SealedSend, a.client_id.user())
            .target(&recipient)
            .size(send.messages.iter().map(|m| m.sealed.len()).sum())
            .recipients(send.messages.len()),
    )
    .await?;
    let key = dedup_key(&send.messages);
    let outcome = if state.is_local(recipient.domain()) {
        if let Some(mismatch) = mismatched_devices(&state, &recipient, &clients, &a).await? {
            return Ok((StatusCode::CONFLICT, Json(mismatch)).into_response());
        }
        deliver_locally(&state, send.messages, key).await?
    } else {
        let body = serde_json::to_vec(&SealedDelivery {
            messages: send.messages,
        })
        .map_err(|e| Failure::internal("sealed delivery", e))?;
        let batch = Batch {
            dedup: Some(Dedup {
                scope: SEALED_SCOPE.into(),
                key,
            }),
            outbound: vec![NewOutbound {
                domain: recipient.domain().to_string(),
                endpoint: FED_MESSAGES.into(),
                room: SEALED_INBOX.into(),
                body,
            }],
            accepted_at: now_ms(),
            ..Batch::default()
        };
        crate::hub::commit_batch(&state, batch).await?
    };
    if matches!(outcome, BatchOutcome::Applied { .. }) {
        state
            .metrics
            .sealed_messages_accepted
            .fetch_add(u64::from(accepted), std::sync::atomic::Ordering::Relaxed);
    }
    Ok(Json(SealedSendResult { accepted }).into_response())
}

/// Compares the devices a send lists with the recipient's current Signal devices,
/// leaving the sending device itself out of both.
async fn mismatched_devices(
    state: &AppState,
    recipient: &UserId,
    listed: &[ClientId],
    sender: &Authed,
) -> Result<Option<MismatchedDevices>, Failure> {
    let u = recipient.to_string();
    let current = state
        .db(move |s| {
            if !s.user_exists(&u)? {
                return Ok(None);
            }
            s.signal_devices(&u).map(Some)
        })
        .await?
        .ok_or_else(|| Failure::not_found(format!("{recipient} has no account here")))?;
    let current: BTreeSet<String> = current
        .into_iter()
        .map(|(client, _)| client)
        .filter(|c| *c != sender.client.client)
        .collect();
    let listed: BTreeSet<String> = listed
        .iter()
        .map(ToString::to_string)
        .filter(|c| *c != sender.client.client)
        .collect();
    let missing: Vec<String> = current.difference(&listed).cloned().collect();
    let stale: Vec<String> = listed.difference(&current).cloned().collect();
    if missing.is_empty() && stale.is_empty() {
        return Ok(None);
    }
    Ok(Some(MismatchedDevices {
        code: MISMATCHED_DEVICES.into(),
        message: format!(
            "the devices listed are not {recipient}'s current ones ({} missing, {} stale): \
             claim bundles for the missing ones, drop sessions with the stale ones, send again",
            missing.len(),
            stale.len()
        ),
        missing,
        stale,
    }))
}

/// Stores each sealed message in its device's inbox, once (a retried send or
/// delivery with the same messages is recognised by `key`). Devices that no longer
/// exist are skipped.
async fn deliver_locally(
    state: &AppState,
    messages: Vec<SealedMessage>,
    key: [u8; 32],
) -> Result<BatchOutcome, Failure> {
    let mut batch = Batch {
        dedup: Some(Dedup {
            scope: SEALED_SCOPE.into(),
            key,
        }),
        deliveries: messages
            .into_iter()
            .map(|m| Delivery {
                room: SEALED_INBOX.into(),
                clients: vec![m.client],
                payload: m.sealed,
            })
            .collect(),
        accepted_at: now_ms(),
        ..Batch::default()
    };
    crate::hub::drop_unknown_clients(state, std::slice::from_mut(&mut batch)).await?;
    let delivered: u64 = batch
        .deliveries
        .iter()
        .map(|d| d.clients.len() as u64)
        .sum();
    let outcome = crate::hub::commit_batch(state, batch).await?;
    if matches!(outcome, BatchOutcome::Applied { .. }) {
        state
            .metrics
            .sealed_messages_delivered
            .fetch_add(delivered, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(outcome)
}

/// `POST /entente/v1/signal/messages`: sealed messages from a peer for our clients.
pub(super) async fn peer_deliver(
    State(state): State<AppState>,
    Peer(peer): Peer,
    body: Bytes,
) -> Result<Json<SealedSendResult>, Failure> {
    let delivery: SealedDelivery = serde_json::from_slice(&body)
        .map_err(|e| Failure::bad_request(format!("invalid JSON body: {e}")))?;
    let clients = delivery
        .validate()
        .map_err(|e| Failure::bad_request(e.to_string()))?;
    if let Some(c) = clients.iter().find(|c| !state.is_local(c.domain())) {
        return Err(Failure::bad_request(format!(
            "{c} is not a client of {}: deliver to its own provider",
            state.domain
        )));
    }
    let accepted = u32::try_from(delivery.messages.len()).unwrap_or(u32::MAX);
    // Sealed: the sender is not known, only the provider delivering.
    crate::spam::enforce(
        &state,
        SpamEvent::remote(EventKind::SealedSend, &peer, None)
            .size(delivery.messages.iter().map(|m| m.sealed.len()).sum())
            .recipients(delivery.messages.len()),
    )
    .await?;
    let key = dedup_key(&delivery.messages);
    deliver_locally(&state, delivery.messages, key).await?;
    Ok(Json(SealedSendResult { accepted }))
}

/// Names one set of sealed messages: SHA-256 over each device and its bytes,
/// length-prefixed. Sealed bytes carry a fresh ephemeral key, so distinct sends
/// never collide.
fn dedup_key(messages: &[SealedMessage]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"entente-sealed-v1");
    for m in messages {
        for part in [m.client.as_bytes(), &m.sealed] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keys_tell_sends_apart() {
        let m = |client: &str, sealed: &[u8]| SealedMessage {
            client: client.into(),
            sealed: sealed.to_vec(),
        };
        let a = dedup_key(&[m("x", b"yz")]);
        assert_eq!(a, dedup_key(&[m("x", b"yz")]));
        assert_ne!(a, dedup_key(&[m("xy", b"z")]));
        assert_ne!(a, dedup_key(&[m("x", b"yz"), m("x", b"yz")]));
    }
}
