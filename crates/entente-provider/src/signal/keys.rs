//! The key directory (publishing and claiming prekey bundles) and capabilities.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use entente_core::signal::keys::PublicKey;
use entente_wire::api::path_segment;
use entente_wire::ids::{ClientId, UserId};
use entente_wire::signal::{
    Capabilities, ClientCapabilities, DeviceBundle, KyberPreKey, MAX_PREKEYS_HELD, OneTimePreKey,
    PreKeyStatus, PreKeyUpload, SetProtocols, SignedPreKey, UserBundles,
};

use super::{FED_BUNDLES, FED_CAPABILITIES, local_user_param, passed_on, peer_invalid, user_param};
use crate::client_api::{Authed, AuthedParts};
use crate::error::Failure;
use crate::federation::server::Peer;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::{
    ClaimedBundle, OneTimePreKeyRecord, PreKeyKind, PublishOutcome, SignalIdentity,
    SignalPreKeyStatus, SignalPreKeys, SignedPreKeyRecord,
};

/// `POST /v1/signal/prekeys`
pub(super) async fn publish_prekeys(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Json<PreKeyStatus>, Failure> {
    let upload: PreKeyUpload = a.json()?;
    upload
        .validate()
        .map_err(|e| Failure::bad_request(e.to_string()))?;
    // Up to 202 XEdDSA verifications: off the async workers.
    let checked = tokio::task::spawn_blocking(move || check_signatures(upload))
        .await
        .map_err(|e| Failure::internal("signature check", e))??;
    let client = a.client.client.clone();
    let outcome = state
        .db(move |s| s.publish_signal_prekeys(&client, &checked, MAX_PREKEYS_HELD))
        .await?;
    match outcome {
        PublishOutcome::Published(status) => Ok(Json(wire_status(status))),
        PublishOutcome::NeedsSignedPreKey => Err(Failure::new(
            StatusCode::CONFLICT,
            "signed_prekey_required",
            "this is a new Signal identity for this device (identity key, registration id or \
             device id changed): upload a signed prekey with it",
        )),
        PublishOutcome::DeviceIdTaken { device_id } => Err(Failure::new(
            StatusCode::CONFLICT,
            "device_id_taken",
            format!("device_id {device_id} belongs to another device of your user; choose another"),
        )),
        PublishOutcome::IdReused { kind, id } => Err(Failure::new(
            StatusCode::CONFLICT,
            "prekey_id_reused",
            format!(
                "{} id {id} is already held with a different key; use fresh ids",
                kind_field(kind)
            ),
        )),
        PublishOutcome::TooMany { kind, would_hold } => Err(Failure::forbidden(format!(
            "you would hold {would_hold} {}; this provider keeps at most {MAX_PREKEYS_HELD}",
            kind_field(kind)
        ))),
    }
}

fn kind_field(kind: PreKeyKind) -> &'static str {
    match kind {
        PreKeyKind::OneTime => "one_time_prekeys",
        PreKeyKind::Kyber => "kyber_prekeys",
    }
}

/// Verifies every signature of a validated upload with its identity key and turns
/// it into what the store keeps.
fn check_signatures(upload: PreKeyUpload) -> Result<SignalPreKeys, Failure> {
    let identity = PublicKey::decode(&upload.identity_key)
        .map_err(|e| Failure::bad_request(format!("identity_key: {e}")))?;
    let verify = |field: &str, public: &[u8], signature: &[u8]| -> Result<(), Failure> {
        let signature: [u8; 64] = signature
            .try_into()
            .map_err(|_| Failure::bad_request(format!("{field}.signature: not 64 bytes")))?;
        if identity.verify(public, &signature) {
            Ok(())
        } else {
            Err(Failure::bad_request(format!(
                "{field}.signature does not verify: sign the serialised public key with the \
                 identity key (XEdDSA)"
            )))
        }
    };
    let signed = |field: &str, id: u32, public: Vec<u8>, signature: Vec<u8>| {
        verify(field, &public, &signature)?;
        Ok::<_, Failure>(SignedPreKeyRecord {
            id,
            public,
            signature,
        })
    };
    let signed_prekey = upload
        .signed_prekey
        .map(|k| signed("signed_prekey", k.id, k.public, k.signature))
        .transpose()?;
    let last_resort_kyber = upload
        .last_resort_kyber_prekey
        .map(|k| signed("last_resort_kyber_prekey", k.id, k.public, k.signature))
        .transpose()?;
    let kyber = upload
        .kyber_prekeys
        .into_iter()
        .enumerate()
        .map(|(i, k)| signed(&format!("kyber_prekeys[{i}]"), k.id, k.public, k.signature))
        .collect::<Result<_, _>>()?;
    Ok(SignalPreKeys {
        identity: SignalIdentity {
            identity_key: upload.identity_key,
            registration_id: upload.registration_id,
            device_id: upload.device_id,
        },
        signed_prekey,
        last_resort_kyber,
        one_time: upload
            .one_time_prekeys
            .into_iter()
            .map(|k| OneTimePreKeyRecord {
                id: k.id,
                public: k.public,
            })
            .collect(),
        kyber,
    })
}

fn wire_status(s: SignalPreKeyStatus) -> PreKeyStatus {
    PreKeyStatus {
        one_time_prekeys: s.one_time,
        kyber_prekeys: s.kyber,
        signed_prekey: s.signed_prekey,
        last_resort_kyber_prekey: s.last_resort_kyber,
    }
}

/// `GET /v1/signal/prekeys`
pub(super) async fn prekey_status(
    State(state): State<AppState>,
    a: AuthedParts,
) -> Result<Json<PreKeyStatus>, Failure> {
    let client = a.client.client;
    let status = state.db(move |s| s.signal_prekey_status(&client)).await?;
    Ok(Json(wire_status(status)))
}

/// `GET /v1/signal/bundles/{user}`
pub(super) async fn client_bundles(
    State(state): State<AppState>,
    Path(user): Path<String>,
    a: AuthedParts,
) -> Result<Json<UserBundles>, Failure> {
    let user = user_param(&user)?;
    let requester =
        UserId::parse_uri(&a.client.user).map_err(|e| Failure::internal("client record", e))?;
    crate::spam::enforce(
        &state,
        crate::spam::SpamEvent::local(crate::spam::EventKind::BundleClaim, &requester)
            .target(&user),
    )
    .await?;
    if state.is_local(user.domain()) {
        return Ok(Json(claim_local(&state, &user, &requester).await?));
    }
    let path = format!("{FED_BUNDLES}/{}", path_segment(&user.to_string()));
    // The requester is named so that the target's provider can apply consent and
    // blocks (crate::consent).
    let claim = serde_json::to_vec(&entente_wire::consent::BundleClaim {
        requester: requester.to_string(),
    })
    .map_err(|e| Failure::internal("bundle claim", e))?;
    let answer = state
        .federation
        .extension(reqwest::Method::POST, user.domain(), &path, Some(claim))
        .await
        .map_err(|e| crate::consent::passed_on(&e).unwrap_or_else(|| passed_on(e)))?;
    let bundles: UserBundles = serde_json::from_slice(&answer)
        .map_err(|e| peer_invalid(user.domain(), format!("bundles: {e}")))?;
    bundles
        .validate(&user)
        .map_err(|e| peer_invalid(user.domain(), format!("bundles: {e}")))?;
    Ok(Json(bundles))
}

/// `POST /entente/v1/signal/bundles/{user}`: a peer claims bundles of our user on
/// behalf of one of its users, named in the body
/// ([`BundleClaim`](entente_wire::consent::BundleClaim)) so that consent and blocks
/// apply; it must be a user of the peer's domain.
pub(super) async fn peer_bundles(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path(user): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<UserBundles>, Failure> {
    let user = local_user_param(&state, &user)?;
    let claim: entente_wire::consent::BundleClaim = serde_json::from_slice(&body).map_err(|e| {
        Failure::bad_request(format!(
            "body: {e}; name the requesting user: {{\"requester\": \"mimi://<your domain>/u/<name>\"}}"
        ))
    })?;
    let requester = UserId::parse_uri(&claim.requester)
        .map_err(|e| Failure::bad_request(format!("requester: {e}")))?;
    if requester.domain() != &peer {
        return Err(Failure::forbidden(format!(
            "requester must be a user of your domain ({peer}), not of {}",
            requester.domain()
        )));
    }
    crate::spam::enforce(
        &state,
        crate::spam::SpamEvent::remote(
            crate::spam::EventKind::BundleClaim,
            &peer,
            Some(&requester),
        )
        .target(&user),
    )
    .await?;
    Ok(Json(claim_local(&state, &user, &requester).await?))
}

async fn claim_local(
    state: &AppState,
    user: &UserId,
    requester: &UserId,
) -> Result<UserBundles, Failure> {
    crate::consent::check_bundles(state, user, requester).await?;
    let u = user.to_string();
    let claimed = state
        .db(move |s| {
            if !s.user_exists(&u)? {
                return Ok(None);
            }
            s.claim_signal_bundles(&u).map(Some)
        })
        .await?
        .ok_or_else(|| Failure::not_found(format!("{user} has no account here")))?;
    let m = &state.metrics;
    for b in &claimed {
        Metrics::inc(&m.signal_bundles_claimed);
        let one_time = u64::from(b.one_time.is_some())
            + u64::from(b.kyber.as_ref().is_some_and(|k| !k.last_resort));
        m.signal_prekeys_claimed
            .fetch_add(one_time, std::sync::atomic::Ordering::Relaxed);
        if b.kyber.as_ref().is_some_and(|k| k.last_resort) {
            Metrics::inc(&m.signal_last_resort_served);
        }
    }
    Ok(UserBundles {
        user: user.to_string(),
        devices: claimed.into_iter().map(device_bundle).collect(),
    })
}

fn device_bundle(b: ClaimedBundle) -> DeviceBundle {
    DeviceBundle {
        client: b.client,
        device_id: b.identity.device_id,
        registration_id: b.identity.registration_id,
        identity_key: b.identity.identity_key,
        signed_prekey: SignedPreKey {
            id: b.signed_prekey.id,
            public: b.signed_prekey.public,
            signature: b.signed_prekey.signature,
        },
        kyber_prekey: b.kyber.map(|k| KyberPreKey {
            id: k.prekey.id,
            public: k.prekey.public,
            signature: k.prekey.signature,
        }),
        one_time_prekey: b.one_time.map(|k| OneTimePreKey {
            id: k.id,
            public: k.public,
        }),
    }
}

// ------------------------------------------------------------------ capabilities

/// `GET /v1/capabilities/{user}`
pub(super) async fn client_capabilities(
    State(state): State<AppState>,
    Path(user): Path<String>,
    _a: AuthedParts,
) -> Result<Json<Capabilities>, Failure> {
    let user = user_param(&user)?;
    if state.is_local(user.domain()) {
        return Ok(Json(local_capabilities(&state, &user).await?));
    }
    let path = format!("{FED_CAPABILITIES}/{}", path_segment(&user.to_string()));
    let answer = state
        .federation
        .extension(reqwest::Method::GET, user.domain(), &path, None)
        .await
        .map_err(passed_on)?;
    let caps: Capabilities = serde_json::from_slice(&answer)
        .map_err(|e| peer_invalid(user.domain(), format!("capabilities: {e}")))?;
    if caps.user != user.to_string() {
        return Err(peer_invalid(
            user.domain(),
            format!("capabilities are about {}, not {user}", caps.user),
        ));
    }
    if let Some(c) = caps.clients.iter().find(|c| {
        ClientId::parse_uri(&c.client)
            .map(|id| id.user() != &user)
            .unwrap_or(true)
    }) {
        return Err(peer_invalid(
            user.domain(),
            format!("capabilities list {:?}, not a device of {user}", c.client),
        ));
    }
    Ok(Json(caps))
}

/// `GET /entente/v1/capabilities/{user}`
pub(super) async fn peer_capabilities(
    State(state): State<AppState>,
    Peer(_peer): Peer,
    Path(user): Path<String>,
) -> Result<Json<Capabilities>, Failure> {
    let user = local_user_param(&state, &user)?;
    Ok(Json(local_capabilities(&state, &user).await?))
}

async fn local_capabilities(state: &AppState, user: &UserId) -> Result<Capabilities, Failure> {
    let u = user.to_string();
    let clients = state
        .db(move |s| {
            if !s.user_exists(&u)? {
                return Ok(None);
            }
            s.user_capabilities(&u).map(Some)
        })
        .await?
        .ok_or_else(|| Failure::not_found(format!("{user} has no account here")))?;
    let offers = &state.config.protocols;
    Ok(Capabilities {
        user: user.to_string(),
        provider_rooms: offers.mls_rooms,
        provider_signal: offers.signal,
        clients: clients
            .into_iter()
            .map(|c| ClientCapabilities {
                client: c.client,
                protocols: c.protocols,
            })
            .collect(),
    })
}

/// `POST /v1/capabilities`: answers the caller's capabilities as others now see them.
pub(super) async fn set_protocols(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Json<ClientCapabilities>, Failure> {
    let req: SetProtocols = a.json()?;
    let protocols = req
        .validate()
        .map_err(|e| Failure::bad_request(e.to_string()))?;
    let (client, user) = (a.client.client.clone(), a.client.user.clone());
    let all = state
        .db(move |s| {
            s.set_client_protocols(&client, &protocols)?;
            s.user_capabilities(&user)
        })
        .await?;
    let mine = all
        .into_iter()
        .find(|c| c.client == a.client.client)
        .ok_or_else(|| {
            Failure::internal("capabilities", "the caller is not among its user's clients")
        })?;
    Ok(Json(ClientCapabilities {
        client: mine.client,
        protocols: mine.protocols,
    }))
}
