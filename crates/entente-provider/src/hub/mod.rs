//! Hub and follower logic: the MIMI room operations.
//!
//! A room's hub is the provider named in its URI (`mimi://a.example/r/...` is hubbed
//! by a.example). The hub orders every handshake message (one commit per epoch; the
//! loser of a race gets `wrongEpoch`) and application message, and fans each out in
//! the same durable transaction that accepts it: to its own clients' inboxes and, via
//! the outbound queue, as `notify` to every follower with participants.
//! A follower relays its clients' requests to the hub and delivers the hub's fanout
//! to its clients.

use axum::Json;
use axum::extract::{Path, State};
use entente_wire::api::{HubAnswer, KeyMaterialCall, KeyMaterialResult, SubmitCall, UpdateCall};
use entente_wire::ids::{Domain, RoomId, UserId};
use entente_wire::mimi;
use sha2::{Digest, Sha256};

use crate::client_api::Authed;
use crate::error::Failure;
use crate::metrics::Metrics;
use crate::spam::{EventKind, SpamEvent};
use crate::state::{AppState, now_ms};
use crate::store::{Batch, BatchOutcome, ClientRecord, Dedup, Delivery, NewOutbound, RoomRecord};

pub(crate) mod commit;
mod external;
mod follower;
mod keys;
mod wire;

pub use commit::{accept_update, create_room, tracked};
pub use external::{client_group_info, serve_group_info};
pub use follower::{receive_notify, serve_group_state};
pub use keys::key_material;

/// How many epochs back the hub still accepts application messages from: members
/// that had not yet processed the latest commit when they sent.
pub const MAX_PAST_EPOCHS: u64 = 5;

/// Who handed us a request.
#[derive(Debug, Clone)]
pub enum Submitter {
    /// One of our clients, through the client API.
    Client(ClientRecord),
    /// A follower provider, through MIMI.
    Peer(Domain),
}

impl Submitter {
    fn client(&self) -> Option<&str> {
        match self {
            Submitter::Client(c) => Some(&c.client),
            Submitter::Peer(_) => None,
        }
    }
}

pub(crate) fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

async fn room_record(state: &AppState, room: &RoomId) -> Result<Option<RoomRecord>, Failure> {
    let r = room.to_string();
    state.db(move |s| s.room(&r)).await
}

/// Checks that a client of ours is in the room (per the hub's fanout so far).
async fn require_local_member(
    state: &AppState,
    room: &RoomId,
    client: &str,
) -> Result<(), Failure> {
    let r = room.to_string();
    let members = state.db(move |s| s.room_clients(&r)).await?;
    if members.iter().any(|m| m == client) {
        Ok(())
    } else {
        Err(Failure::forbidden(format!(
            "you are not a member of {room}"
        )))
    }
}

// ---------------------------------------------------------------- client API side

/// `POST /v1/rooms/{room}/key-material`
pub async fn client_key_material(
    State(state): State<AppState>,
    Path(room): Path<String>,
    a: Authed,
) -> Result<Json<KeyMaterialResult>, Failure> {
    crate::signal::require_mls_rooms(&state)?;
    let call: KeyMaterialCall = a.json()?;
    let room: RoomId = room
        .parse()
        .map_err(|e| Failure::bad_request(format!("room: {e}")))?;
    let req = mimi::KeyMaterialRequest::decode(&call.request)
        .map_err(|e| Failure::bad_request(format!("KeyMaterialRequest: {e}")))?;
    if wire::uri(&req.requesting_user) != a.client.user {
        return Err(Failure::forbidden("requestingUser must be your own user"));
    }
    if wire::uri(&req.room_id) != room.to_string() {
        return Err(Failure::bad_request(
            "roomId in the request differs from the room in the path",
        ));
    }
    require_local_member(&state, &room, &a.client.client).await?;
    let target = wire::uri(&req.target_user);
    let response = if state.is_local(room.domain()) {
        keys::key_material(&state, &target, call.request, Submitter::Client(a.client)).await?
    } else {
        // The hub observes the claims it serves; as a follower we observe our own
        // client's before relaying it.
        let event = SpamEvent::local(EventKind::KeyMaterialClaim, a.client_id.user()).room(&room);
        let event = match UserId::parse_any(&target) {
            Ok(t) => event.target(&t),
            Err(_) => event,
        };
        crate::spam::enforce(&state, event).await?;
        state
            .federation
            .post(room.domain(), "keyMaterial", &target, call.request)
            .await?
    };
    Ok(Json(KeyMaterialResult { response }))
}

/// `POST /v1/rooms/{room}/update`
pub async fn client_update(
    State(state): State<AppState>,
    Path(room): Path<String>,
    a: Authed,
) -> Result<Json<HubAnswer>, Failure> {
    let call: UpdateCall = a.json()?;
    to_hub(&state, &room, a, call.request, HubEndpoint::Update).await
}

/// `POST /v1/rooms/{room}/messages`
pub async fn client_submit(
    State(state): State<AppState>,
    Path(room): Path<String>,
    a: Authed,
) -> Result<Json<HubAnswer>, Failure> {
    let call: SubmitCall = a.json()?;
    to_hub(&state, &room, a, call.request, HubEndpoint::SubmitMessage).await
}

/// The two hub operations a client reaches through its own provider.
#[derive(Clone, Copy)]
enum HubEndpoint {
    Update,
    SubmitMessage,
}

impl HubEndpoint {
    /// The MIMI endpoint name.
    fn name(self) -> &'static str {
        match self {
            HubEndpoint::Update => "update",
            HubEndpoint::SubmitMessage => "submitMessage",
        }
    }
}

/// Handles a client's request locally when we are the room's hub, or relays it.
async fn to_hub(
    state: &AppState,
    room: &str,
    a: Authed,
    request: Vec<u8>,
    endpoint: HubEndpoint,
) -> Result<Json<HubAnswer>, Failure> {
    let room: RoomId = room
        .parse()
        .map_err(|e| Failure::bad_request(format!("room: {e}")))?;
    // A device that is not in the room yet may send an external commit; the hub
    // checks every commit against the group and the policy, whoever relays it.
    if matches!(endpoint, HubEndpoint::SubmitMessage) {
        require_local_member(state, &room, &a.client.client).await?;
        // The hub observes what it accepts; as a follower we observe our own
        // client's message before relaying it.
        if !state.is_local(room.domain()) {
            let user = a.client_id.user();
            crate::spam::enforce(
                state,
                SpamEvent::local(EventKind::MessageSubmission, user)
                    .room(&room)
                    .size(request.len()),
            )
            .await?;
        }
    }
    let response = if !state.is_local(room.domain()) {
        relay(state, &room, endpoint, request, &a.client).await?
    } else {
        let from = Submitter::Client(a.client);
        match endpoint {
            HubEndpoint::Update => accept_update(state, &room, request, from).await?,
            HubEndpoint::SubmitMessage => accept_submit(state, &room, request, from).await?,
        }
    };
    Ok(Json(HubAnswer { response }))
}

/// Follower: forwards a client's request to the hub, first marking its message so
/// the hub's fanout of it is not delivered back to the sender.
async fn relay(
    state: &AppState,
    room: &RoomId,
    endpoint: HubEndpoint,
    body: Vec<u8>,
    client: &ClientRecord,
) -> Result<Vec<u8>, Failure> {
    let msg = match endpoint {
        HubEndpoint::Update => wire::update_message_bytes(&body),
        HubEndpoint::SubmitMessage => wire::submit_message_bytes(&body),
    }
    .map_err(Failure::bad_request)?;
    let mark = Batch {
        echo_marks: vec![(room.to_string(), sha256(&msg), client.client.clone())],
        accepted_at: now_ms(),
        ..Batch::default()
    };
    state.db(move |s| s.apply(mark)).await?;
    Ok(state
        .federation
        .post(room.domain(), endpoint.name(), &room.to_string(), body)
        .await?)
}

// ---------------------------------------------------------------- hub side

pub(crate) async fn hub_room(state: &AppState, room: &RoomId) -> Result<RoomRecord, Failure> {
    if !state.is_local(room.domain()) {
        return Err(Failure::bad_request(format!(
            "{room} is hubbed by {}, not by {}",
            room.domain(),
            state.domain
        )));
    }
    room_record(state, room)
        .await?
        .ok_or_else(|| Failure::not_found(format!("room {room}")))
}

/// Checks that a follower has participants in the room.
pub(crate) async fn require_participating_peer(
    state: &AppState,
    room: &RoomId,
    peer: &Domain,
) -> Result<(), Failure> {
    let r = room.to_string();
    let domains = state.db(move |s| s.room_domains(&r)).await?;
    if domains.iter().any(|d| d == peer.as_str()) {
        Ok(())
    } else {
        Err(Failure::forbidden(format!(
            "{peer} has no participants in {room}"
        )))
    }
}

/// Hub: authorises, orders and fans out an application message. Returns the encoded
/// `SubmitMessageResponse`.
pub async fn accept_submit(
    state: &AppState,
    room: &RoomId,
    body: Vec<u8>,
    from: Submitter,
) -> Result<Vec<u8>, Failure> {
    let rec = hub_room(state, room).await?;
    let submit = wire::parse_submit(&body, room).map_err(Failure::bad_request)?;
    let sender: UserId = submit
        .sending_uri
        .parse()
        .map_err(|e| Failure::bad_request(format!("sendingUri: {e}")))?;
    match &from {
        Submitter::Client(c) if c.user != sender.to_string() => {
            return Ok(wire::submit_not_allowed());
        }
        Submitter::Peer(p) => {
            if sender.domain() != p {
                return Ok(wire::submit_not_allowed());
            }
            crate::moderation::check_remote(state, p, Some(&sender.to_string())).await?;
            require_participating_peer(state, room, p).await?;
        }
        Submitter::Client(_) => {}
    }
    if submit.epoch > rec.epoch {
        return Ok(wire::submit_not_allowed());
    }
    // Room policy: the sender must be a participant whose role may send.
    {
        let guard = tracked(state, room).await?;
        let Some(t) = guard.as_ref() else {
            return Err(Failure::internal(
                "room without group state",
                format!("{room} has no tracked group"),
            ));
        };
        if let Err(e) = entente_core::room::authorize_send(t.state(), &sender) {
            tracing::info!(reason = %crate::privacy::redacted(&e), "message refused by room policy");
            return Ok(wire::submit_not_allowed());
        }
    }
    if submit.epoch + MAX_PAST_EPOCHS < rec.epoch {
        return Ok(wire::submit_epoch_too_old(rec.epoch));
    }
    let r = room.to_string();
    let (members, domains) = state
        .db(move |s| Ok((s.room_clients(&r)?, s.room_domains(&r)?)))
        .await?;
    let event = match &from {
        Submitter::Client(_) => SpamEvent::local(EventKind::MessageSubmission, &sender),
        Submitter::Peer(p) => SpamEvent::remote(EventKind::MessageSubmission, p, Some(&sender)),
    };
    crate::spam::enforce(
        state,
        event
            .room(room)
            .size(submit.message_bytes.len())
            .recipients(members.len() + domains.len()),
    )
    .await?;
    let ts = now_ms();
    // Franking (MIMI-06 section 5.4.1.2): deterministic, so a duplicate submission
    // (answered with the first acceptance time) gets the same frank.
    let frank_at = |at: u64| {
        submit
            .franking_tag
            .as_ref()
            .and_then(|tag| crate::abuse::frank_message(state, tag, &sender, room, at))
    };
    let frank = frank_at(ts);
    let fanout = wire::fanout_application(ts, &submit.message_bytes, frank.clone())
        .map_err(|e| Failure::internal("fanout", e))?;
    let mut batch = Batch {
        dedup: Some(Dedup {
            scope: format!("submit:{room}"),
            key: sha256(&submit.message_bytes),
        }),
        accepted_at: ts,
        ..Batch::default()
    };
    fan_out(&mut batch, room, members, &from, &domains, &fanout);
    match commit_batch(state, batch).await? {
        BatchOutcome::Applied { .. } => {
            Metrics::inc(&state.metrics.messages_accepted);
            Ok(wire::submit_accepted(ts, frank))
        }
        BatchOutcome::Duplicate { accepted_at } => {
            Ok(wire::submit_accepted(accepted_at, frank_at(accepted_at)))
        }
        BatchOutcome::WrongEpoch { current } => Ok(wire::submit_epoch_too_old(current)),
    }
}

/// Adds the hub's fanout of one accepted message to `batch`: an inbox item for
/// every local member but the submitter, and a `notify` for every follower.
pub(crate) fn fan_out(
    batch: &mut Batch,
    room: &RoomId,
    members: Vec<String>,
    from: &Submitter,
    followers: &[String],
    fanout: &[u8],
) {
    batch.deliveries.push(Delivery {
        room: room.to_string(),
        clients: members
            .into_iter()
            .filter(|m| Some(m.as_str()) != from.client())
            .collect(),
        payload: fanout.to_vec(),
    });
    for d in followers {
        batch.outbound.push(NewOutbound {
            domain: d.clone(),
            endpoint: "notify".into(),
            room: room.to_string(),
            body: fanout.to_vec(),
        });
    }
}

/// Drops membership additions and deliveries for clients we no longer have (a revoked device that
/// is still in a group until some member removes it): they cannot receive anything,
/// and the store refuses memberships of unknown clients.
pub(crate) async fn drop_unknown_clients(
    state: &AppState,
    batches: &mut [Batch],
) -> Result<(), Failure> {
    let wanted: std::collections::BTreeSet<String> = batches
        .iter()
        .flat_map(|b| {
            b.room_clients_add
                .iter()
                .map(|(_, c)| c.clone())
                .chain(b.deliveries.iter().flat_map(|d| d.clients.iter().cloned()))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let known: std::collections::BTreeSet<String> = state
        .db(move |s| {
            let mut known = std::collections::BTreeSet::new();
            for c in wanted {
                if s.client(&c)?.is_some() {
                    known.insert(c);
                }
            }
            Ok(known)
        })
        .await?;
    for b in batches {
        b.room_clients_add.retain(|(_, c)| known.contains(c));
        for d in &mut b.deliveries {
            d.clients.retain(|c| known.contains(c));
        }
    }
    Ok(())
}

/// Applies a batch durably, then wakes the clients and the outbound worker it
/// gave work to.
pub(crate) async fn commit_batch(state: &AppState, batch: Batch) -> Result<BatchOutcome, Failure> {
    let has_outbound = !batch.outbound.is_empty();
    let outcome = state.db(move |s| s.apply(batch)).await?;
    if let BatchOutcome::Applied { woken } = &outcome {
        state.wakers.wake(woken);
        if has_outbound {
            state.outbound_wake.notify_one();
        }
    }
    Ok(outcome)
}
