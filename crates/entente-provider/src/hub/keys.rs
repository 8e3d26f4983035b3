//! keyMaterial (MIMI-06 section 5.2): claiming KeyPackages, through the hub.
//!
//! The target user's provider verifies the requester's signature and credential,
//! hands out one KeyPackage per client (never the same single-use one twice) and
//! records where its Welcome will come from. A hub that fetched KeyPackages from
//! another provider records that provider as the route for their Welcome.

use entente_core::identity::IssuerPublicKey;
use entente_wire::ids::{Domain, RoomId, UserId};
use entente_wire::mimi::{
    ClientKeyMaterial, ClientMaterial, IdentifierUri, KeyMaterialRequest, KeyMaterialResponse,
    KeyMaterialUserCode, Protocol,
};
use openmls::prelude::{KeyPackageIn, ProtocolVersion};
use tls_codec::Deserialize as _;

use super::{Submitter, wire};
use crate::error::Failure;
use crate::spam::{EventKind, SpamEvent};
use crate::state::{AppState, now_secs};
use crate::store::KeyPackageRoute;

/// Label of the requester's signature (MIMI-06 section 5.2).
pub const KEY_MATERIAL_LABEL: &str = "KeyMaterialRequestTBS";

/// Serves or relays a KeyMaterialRequest for `target`. Returns the encoded
/// KeyMaterialResponse.
pub async fn key_material(
    state: &AppState,
    target: &str,
    body: Vec<u8>,
    from: Submitter,
) -> Result<Vec<u8>, Failure> {
    let req = KeyMaterialRequest::decode(&body)
        .map_err(|e| Failure::bad_request(format!("KeyMaterialRequest: {e}")))?;
    let target_user =
        UserId::parse_any(target).map_err(|e| Failure::bad_request(format!("target user: {e}")))?;
    if wire::uri(&req.target_user) != target_user.to_string() {
        return Err(Failure::bad_request(
            "targetUser in the body differs from the path",
        ));
    }
    let room: RoomId = wire::uri(&req.room_id)
        .parse()
        .map_err(|e| Failure::bad_request(format!("roomId: {e}")))?;
    let requester = UserId::parse_uri(&wire::uri(&req.requesting_user))
        .map_err(|e| Failure::bad_request(format!("requestingUser: {e}")))?;
    match &from {
        Submitter::Client(c) if c.user != requester.to_string() => {
            return Err(Failure::forbidden("requestingUser must be your own user"));
        }
        Submitter::Peer(p) => {
            if !state.is_local(requester.domain()) {
                crate::moderation::check_remote(
                    state,
                    requester.domain(),
                    Some(&requester.to_string()),
                )
                .await?;
            }
            // The room's hub asks on behalf of a room member; a follower asks its
            // hub (us) on behalf of its own user.
            let hub_asking = room.domain() == p;
            let follower_asking = state.is_local(room.domain()) && requester.domain() == p;
            if !hub_asking && !follower_asking {
                return Err(Failure::forbidden(format!(
                    "{p} may not claim key material for {room}: it is neither its hub nor a follower asking its hub"
                )));
            }
        }
        Submitter::Client(_) => {}
    }
    let event = match &from {
        Submitter::Client(_) => SpamEvent::local(EventKind::KeyMaterialClaim, &requester),
        Submitter::Peer(p) => SpamEvent::remote(EventKind::KeyMaterialClaim, p, Some(&requester)),
    };
    crate::spam::enforce(state, event.room(&room).target(&target_user)).await?;
    // As the room's hub, claim KeyPackages only for someone the requester may add:
    // otherwise any member could drain other users' KeyPackages.
    if state.is_local(room.domain()) {
        authorize_claim(state, &room, &requester, &target_user).await?;
    }

    if state.is_local(target_user.domain()) {
        crate::signal::require_mls_rooms(state)?;
        verify_request(state, &req, &requester).await?;
        // Consent and blocks (crate::consent): refused with the draft's user code,
        // the same for a block as for no consent.
        if let Some(code) =
            crate::consent::check_key_material(state, &target_user, &requester, &room).await?
        {
            return KeyMaterialResponse {
                protocol: Protocol::Mls10,
                user_status: code,
                user_uri: IdentifierUri::new(target_user.to_string().into_bytes()),
                clients: Vec::new(),
            }
            .encode()
            .map_err(|e| Failure::internal("KeyMaterialResponse", e));
        }
        return serve_local(state, &target_user).await;
    }
    if !state.is_local(room.domain()) {
        return Err(Failure::bad_request(format!(
            "key material for {room} must be claimed through its hub, {}",
            room.domain()
        )));
    }
    // We are the hub and the target is elsewhere: relay, and remember where each
    // KeyPackage's Welcome must go.
    let response = state
        .federation
        .post(
            target_user.domain(),
            "keyMaterial",
            &target_user.to_string(),
            body,
        )
        .await?;
    let decoded = KeyMaterialResponse::decode(&response).map_err(|e| {
        Failure::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "peer_invalid",
            format!(
                "{} sent an invalid KeyMaterialResponse: {e}",
                target_user.domain()
            ),
        )
    })?;
    for c in &decoded.clients {
        if let ClientMaterial::Success(kp) = &c.material {
            let kp_in: KeyPackageIn = (**kp).clone();
            let kp = kp_in
                .validate(&state.crypto, ProtocolVersion::Mls10)
                .map_err(|e| {
                    Failure::new(
                        axum::http::StatusCode::BAD_GATEWAY,
                        "peer_invalid",
                        format!("{} sent an invalid KeyPackage: {e}", target_user.domain()),
                    )
                })?;
            let r = kp
                .hash_ref(&state.crypto)
                .map_err(|e| Failure::internal("KeyPackageRef", e))?;
            let route = KeyPackageRoute::Remote {
                domain: target_user.domain().to_string(),
            };
            let reference = r.as_slice().to_vec();
            state
                .db(move |s| s.record_key_package_route(&reference, &route, now_secs()))
                .await?;
        }
    }
    Ok(response)
}

/// Checks the requester's signature and that its credential is a valid certificate
/// for the requesting user, issued by that user's provider.
async fn verify_request(
    state: &AppState,
    req: &KeyMaterialRequest,
    requester: &UserId,
) -> Result<(), Failure> {
    let tbs = req
        .tbs_bytes()
        .map_err(|e| Failure::bad_request(format!("KeyMaterialRequest: {e}")))?;
    entente_core::mls::verify_with_label(
        &state.crypto,
        &req.requester_signature_key,
        KEY_MATERIAL_LABEL,
        &tbs,
        req.key_material_request_signature.as_slice(),
    )
    .map_err(|_| Failure::unauthenticated("the KeyMaterialRequest signature does not verify"))?;
    let cert = entente_core::mls::certificate_in(&req.requester_credential)
        .map_err(|e| Failure::unauthenticated(format!("requester credential: {e}")))?;
    if cert.claimed_client().user() != requester {
        return Err(Failure::unauthenticated(
            "the requester credential is for another user",
        ));
    }
    let issuer = issuer_for(state, requester.domain()).await?;
    entente_core::mls::verify_credential(
        &req.requester_credential,
        req.requester_signature_key.as_slice(),
        &issuer,
        now_secs(),
    )
    .map_err(|e| Failure::unauthenticated(format!("requester credential: {e}")))?;
    Ok(())
}

async fn issuer_for(state: &AppState, domain: &Domain) -> Result<IssuerPublicKey, Failure> {
    if state.is_local(domain) {
        Ok(state.issuer.public())
    } else {
        Ok(state.federation.issuer_key(domain).await?)
    }
}

/// Claims one KeyPackage for each client of a local user.
async fn serve_local(state: &AppState, target: &UserId) -> Result<Vec<u8>, Failure> {
    let t = target.to_string();
    let clients = state.db(move |s| s.user_clients(&t)).await?;
    let mut out = Vec::with_capacity(clients.len());
    let mut served = 0;
    for c in &clients {
        let client = c.client.clone();
        let claimed = state
            .db(move |s| s.claim_key_package(&client, now_secs()))
            .await?;
        let material = match claimed {
            Some((_, bytes)) => {
                let kp = KeyPackageIn::tls_deserialize_exact(&bytes)
                    .map_err(|e| Failure::internal("stored KeyPackage", e))?;
                served += 1;
                ClientMaterial::Success(Box::new(kp))
            }
            None => ClientMaterial::KeyMaterialExhausted,
        };
        out.push(ClientKeyMaterial {
            client_uri: IdentifierUri::new(c.client.as_bytes().to_vec()),
            material,
        });
    }
    let (status, clients) = if clients.is_empty() {
        (KeyMaterialUserCode::UserUnknown, Vec::new())
    } else if served == clients.len() {
        (KeyMaterialUserCode::Success, out)
    } else if served > 0 {
        (KeyMaterialUserCode::PartialSuccess, out)
    } else {
        (KeyMaterialUserCode::NoCompatibleMaterial, out)
    };
    KeyMaterialResponse {
        protocol: Protocol::Mls10,
        user_status: status,
        user_uri: IdentifierUri::new(target.to_string().into_bytes()),
        clients,
    }
    .encode()
    .map_err(|e| Failure::internal("KeyMaterialResponse", e))
}

/// The room policy on claiming `target`'s KeyPackages through the hub: one's own
/// devices need canAddOwnClient; another user's need canAddParticipant, and a
/// banned user's are never handed out.
async fn authorize_claim(
    state: &AppState,
    room: &RoomId,
    requester: &UserId,
    target: &UserId,
) -> Result<(), Failure> {
    use entente_core::room::roles;
    use entente_wire::mimi::capability;
    let guard = super::tracked(state, room).await?;
    let t = guard
        .as_ref()
        .ok_or_else(|| Failure::not_found(format!("room {room}")))?;
    let rs = t.state();
    if rs.role_of(requester) == roles::NONE {
        return Err(Failure::forbidden(format!(
            "{} is not a participant of {room}",
            requester.handle()
        )));
    }
    let refuse = |why: String| {
        Err(Failure::new(
            axum::http::StatusCode::FORBIDDEN,
            "not_allowed",
            format!(
                "room policy: {why}; KeyPackages are handed out only for additions the policy allows"
            ),
        ))
    };
    let role = rs.role(rs.role_of(requester)).map_or_else(
        || rs.role_of(requester).to_string(),
        |r| r.role_name.clone(),
    );
    if requester == target {
        if !rs.can(requester, capability::CAN_ADD_OWN_CLIENT) {
            return refuse(format!("{requester} (role {role}) lacks canAddOwnClient"));
        }
    } else if rs.role_of(target) == roles::BANNED {
        return refuse(format!("{target} is banned from the room"));
    } else if !rs.can(requester, capability::CAN_ADD_PARTICIPANT) {
        return refuse(format!(
            "{requester} (role {role}) lacks canAddParticipant to add {target}"
        ));
    }
    Ok(())
}
