//! Claiming group information for an external join (draft-ietf-mimi-protocol-06
//! section 5.6): a client that is not (yet) in a room's MLS group asks the hub for
//! the current GroupInfo and ratchet tree, encrypted to a key of its choosing, and
//! then joins with an external commit that the hub checks like any other commit.
//! The room policy decides who may ask: a participant whose role holds
//! canAddOwnClient (a user's new device), or anyone when role 0 holds canOpenJoin.

use axum::Json;
use axum::extract::{Path, State};
use entente_wire::api::{GroupInfoCall, HubAnswer};
use entente_wire::ids::RoomId;
use entente_wire::mimi::{
    GroupInfoRatchetTreeTBE, GroupInfoRequest, GroupInfoResponse, GroupInfoResponseTBS,
    GroupInfoResult, GroupInfoSuccess, IdentifierUri, Protocol, RatchetTreeOption,
};
use openmls::prelude::{
    BasicCredential, ExternalSender, RatchetTreeIn, SignaturePublicKey, VerifiableCiphersuite,
};
use tls_codec::{Deserialize as _, Serialize as _};

use super::Submitter;
use super::commit::{issuer_for, tracked};
use crate::client_api::Authed;
use crate::error::Failure;
use crate::state::{AppState, now_secs};

/// Label of the requester's signature.
pub const REQUEST_LABEL: &str = "GroupInfoRequestTBS";
/// Label of the hub's signature.
pub const RESPONSE_LABEL: &str = "GroupInfoResponseTBS";
/// Label of the encryption to the requester.
pub const ENCRYPTION_LABEL: &str = "GroupInfo and ratchet_tree encryption";

/// `POST /v1/rooms/{room}/group-info`: served if we are the hub, relayed otherwise.
pub async fn client_group_info(
    State(state): State<AppState>,
    Path(room): Path<String>,
    a: Authed,
) -> Result<Json<HubAnswer>, Failure> {
    crate::signal::require_mls_rooms(&state)?;
    let call: GroupInfoCall = a.json()?;
    let room: RoomId = room
        .parse()
        .map_err(|e| Failure::bad_request(format!("room: {e}")))?;
    let response = if state.is_local(room.domain()) {
        serve_group_info(&state, &room, &call.request, Submitter::Client(a.client)).await?
    } else {
        state
            .federation
            .post(room.domain(), "groupInfo", &room.to_string(), call.request)
            .await?
    };
    Ok(Json(HubAnswer { response }))
}

fn answer(room: &RoomId, result: GroupInfoResult) -> Result<Vec<u8>, Failure> {
    GroupInfoResponse {
        protocol: Protocol::Mls10,
        room_id: IdentifierUri::from(room),
        result,
    }
    .encode()
    .map_err(|e| Failure::internal("encoding a GroupInfoResponse", e))
}

/// Hub: answers a GroupInfoRequest. Returns the encoded GroupInfoResponse.
pub async fn serve_group_info(
    state: &AppState,
    room: &RoomId,
    body: &[u8],
    from: Submitter,
) -> Result<Vec<u8>, Failure> {
    if !state.is_local(room.domain()) {
        return Err(Failure::bad_request(format!(
            "{room} is hubbed by {}",
            room.domain()
        )));
    }
    let req = GroupInfoRequest::decode(body)
        .map_err(|e| Failure::bad_request(format!("GroupInfoRequest: {e}")))?;
    if req.cipher_suite != VerifiableCiphersuite::from(entente_core::mls::CIPHERSUITE) {
        return Err(Failure::bad_request(format!(
            "cipher suite {:?} is not supported; use {:?}",
            req.cipher_suite,
            entente_core::mls::CIPHERSUITE
        )));
    }
    // Who asks: the credential must be a valid certificate for the signature key,
    // and the request signed with that key.
    let claimed = entente_core::mls::certificate_in(&req.requesting_credential)
        .map_err(|e| Failure::forbidden(format!("requestingCredential: {e}")))?
        .claimed_client()
        .clone();
    let issuer = issuer_for(state, claimed.domain()).await?;
    let cert = entente_core::mls::verify_credential(
        &req.requesting_credential,
        req.requesting_signature_key.as_slice(),
        &issuer,
        now_secs(),
    )
    .map_err(|e| Failure::forbidden(format!("requestingCredential: {e}")))?;
    let tbs = req
        .tbs_bytes()
        .map_err(|e| Failure::bad_request(format!("GroupInfoRequest: {e}")))?;
    entente_core::mls::verify_with_label(
        &state.crypto,
        &req.requesting_signature_key,
        REQUEST_LABEL,
        &tbs,
        req.signature.as_slice(),
    )
    .map_err(|_| Failure::forbidden("the GroupInfoRequest signature does not verify"))?;
    match &from {
        Submitter::Client(c) if c.client != cert.client().to_string() => {
            return Err(Failure::forbidden(
                "the request must be signed by the device making it",
            ));
        }
        Submitter::Peer(p) if cert.client().domain() != p => {
            return Err(Failure::forbidden(format!(
                "{p} asked on behalf of {}, who is not its user",
                cert.client()
            )));
        }
        _ => {}
    }
    let r = room.to_string();
    let Some(snapshot) = state.db(move |s| s.group_state(&r)).await? else {
        return answer(room, GroupInfoResult::NoSuchRoom);
    };
    let guard = tracked(state, room).await?;
    let Some(t) = guard.as_ref() else {
        return answer(room, GroupInfoResult::NoSuchRoom);
    };
    let room_state = t
        .room_state()
        .map_err(|e| Failure::internal("room state", e))?;
    if let Err(e) = entente_core::room::authorize_external_join(&room_state, cert.user()) {
        tracing::info!(reason = %crate::privacy::redacted(&e), "group info refused");
        return answer(room, GroupInfoResult::NotAuthorized);
    }
    let group_info = crate::tracker::decode_group_info(&snapshot.group_info)
        .map_err(|e| Failure::internal("stored GroupInfo", e))?;
    let tree_bytes = t
        .ratchet_tree()
        .tls_serialize_detached()
        .map_err(|e| Failure::internal("encoding the tree", e))?;
    let tree = RatchetTreeIn::tls_deserialize_exact(tree_bytes.as_slice())
        .map_err(|e| Failure::internal("re-reading the tree", e))?;
    drop(guard);
    let plaintext = GroupInfoRatchetTreeTBE {
        group_info,
        ratchet_tree_option: RatchetTreeOption::Full(tree),
        pending_proposals: Vec::new(),
    }
    .encode()
    .map_err(|e| Failure::internal("encoding GroupInfoRatchetTreeTBE", e))?;
    let encrypted = entente_core::mls::encrypt_with_label(
        &state.crypto,
        req.group_info_public_key.as_slice(),
        ENCRYPTION_LABEL,
        room.to_string().as_bytes(),
        &plaintext,
    )
    .map_err(|e| Failure::bad_request(format!("groupInfoPublicKey: {e}")))?;
    let hub_sender = ExternalSender::new(
        SignaturePublicKey::from(state.issuer.public().to_bytes().to_vec()),
        BasicCredential::new(state.domain.to_string().into_bytes()).into(),
    );
    let tbs = GroupInfoResponseTBS {
        protocol: Protocol::Mls10,
        room_id: IdentifierUri::from(room),
        status: entente_wire::mimi::GroupInfoCode::Success,
        cipher_suite: req.cipher_suite,
        hub_sender: hub_sender.clone(),
        encrypted_groupinfo_and_tree: encrypted.clone(),
    };
    let tbs_bytes = tbs
        .encode()
        .map_err(|e| Failure::internal("encoding GroupInfoResponseTBS", e))?;
    let signature = state
        .issuer
        .sign_with_label(RESPONSE_LABEL, &tbs_bytes)
        .map_err(|e| Failure::internal("signing", e))?;
    answer(
        room,
        GroupInfoResult::Success(GroupInfoSuccess {
            cipher_suite: req.cipher_suite,
            hub_sender,
            encrypted_groupinfo_and_tree: encrypted,
            signature: signature.into(),
        }),
    )
}
