//! The hub's handling of handshake messages: room creation, commits (validated
//! against MLS and the room policy by [`crate::tracker`]) and standalone proposals.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use entente_core::identity::IssuerPublicKey;
use entente_wire::api::{CreateRoomCall, CreateRoomResponse};
use entente_wire::ids::{ClientId, Domain, RoomId};
use tokio::sync::OwnedMutexGuard;

use super::{Submitter, commit_batch, fan_out, hub_room, require_participating_peer, sha256, wire};
use crate::client_api::Authed;
use crate::error::Failure;
use crate::metrics::Metrics;
use crate::state::{AppState, now_ms, now_secs};
use crate::store::{
    Batch, BatchOutcome, Dedup, Delivery, EpochCheck, GroupSnapshot, KeyPackageRoute, NewOutbound,
    RoomRecord,
};
use crate::tracker::{Member, TrackError, Tracked};

/// The room's tracked state, loaded from the store on first use, locked for the
/// caller: whoever holds the guard is the only one changing the room's group.
pub async fn tracked(
    state: &AppState,
    room: &RoomId,
) -> Result<OwnedMutexGuard<Option<Tracked>>, Failure> {
    let r = room.to_string();
    let mut guard = state.trackers.slot(&r).lock_owned().await;
    if guard.is_none() {
        let rr = r.clone();
        if let Some(snap) = state.db(move |s| s.group_state(&rr)).await? {
            let t = Tracked::restore(&snap.snapshot, r.as_bytes())
                .map_err(|e| Failure::internal("restoring a room's group state", e))?;
            *guard = Some(t);
        }
    }
    Ok(guard)
}

/// The issuer key for certificates of `domain`.
pub async fn issuer_for(state: &AppState, domain: &Domain) -> Result<IssuerPublicKey, Failure> {
    if state.is_local(domain) {
        Ok(state.issuer.public())
    } else {
        Ok(state.federation.issuer_key(domain).await?)
    }
}

/// Verifies the provider certificates of leaves new in a commit (or a new group).
pub async fn verify_leaves(state: &AppState, leaves: &[Member]) -> Result<(), String> {
    for m in leaves {
        let issuer = issuer_for(state, m.client.domain())
            .await
            .map_err(|e| format!("cannot check {}'s certificate: {}", m.client, e.message))?;
        entente_core::mls::verify_credential(&m.credential, &m.signature_key, &issuer, now_secs())
            .map_err(|e| format!("{}: {e}", m.client))?;
    }
    Ok(())
}

/// `POST /v1/rooms`: a client creates a room hubbed by us.
pub async fn create_room(
    State(state): State<AppState>,
    a: Authed,
) -> Result<Json<CreateRoomResponse>, Failure> {
    crate::signal::require_mls_rooms(&state)?;
    let call: CreateRoomCall = a.json()?;
    let room: RoomId = call
        .room
        .parse()
        .map_err(|e| Failure::bad_request(format!("room: {e}")))?;
    if !state.is_local(room.domain()) {
        return Err(Failure::bad_request(format!(
            "this provider can only create rooms on {}",
            state.domain
        )));
    }
    let bad = |e: TrackError| Failure::bad_request(format!("the new group: {e}"));
    let group_info = crate::tracker::decode_group_info(&call.group_info).map_err(bad)?;
    let tree = crate::tracker::decode_tree(&call.ratchet_tree).map_err(bad)?;
    let tracked = Tracked::create(&state.crypto, group_info, tree).map_err(bad)?;
    if tracked.group_id() != room.to_string().as_bytes() {
        return Err(Failure::bad_request("the MLS group id must be the room id"));
    }
    let members = tracked.members().map_err(bad)?;
    let creator: ClientId = a
        .client
        .client
        .parse()
        .map_err(|e| Failure::internal("our client id", e))?;
    if members.len() != 1 || members[0].client != creator {
        return Err(Failure::bad_request(
            "a new room's group must hold exactly the creating client",
        ));
    }
    let room_state = tracked.room_state().map_err(bad)?;
    if room_state.participants.len() != 1
        || &room_state.participants[0].0 != creator.user()
        || room_state.participants[0].1 == entente_core::room::roles::NONE
        || room_state.participants[0].1 == entente_core::room::roles::BANNED
    {
        return Err(Failure::bad_request(
            "a new room's participant list must hold exactly the creator, with a role",
        ));
    }
    verify_leaves(&state, &members)
        .await
        .map_err(|e| Failure::bad_request(format!("the creator's credential: {e}")))?;
    let snapshot = tracked
        .snapshot()
        .map_err(|e| Failure::internal("snapshot", e))?;
    let rec = RoomRecord {
        room: room.to_string(),
        hub: state.domain.to_string(),
        epoch: tracked.epoch(),
        created_at: now_secs(),
    };
    let group = GroupSnapshot {
        room: room.to_string(),
        epoch: tracked.epoch(),
        snapshot,
        group_info: call.group_info,
    };
    let client = a.client.client.clone();
    let mut guard = state.trackers.slot(&room.to_string()).lock_owned().await;
    state
        .db(move |s| s.create_room(&rec, &client, &group))
        .await?;
    *guard = Some(tracked);
    Ok(Json(CreateRoomResponse {
        room: room.to_string(),
    }))
}

/// Hub: validates and orders a handshake message; fans it and its Welcome out.
/// Returns the encoded `UpdateRoomResponse`.
pub async fn accept_update(
    state: &AppState,
    room: &RoomId,
    body: Vec<u8>,
    from: Submitter,
) -> Result<Vec<u8>, Failure> {
    hub_room(state, room).await?;
    if let Submitter::Peer(p) = &from {
        require_participating_peer(state, room, p).await?;
    }
    let update = match wire::parse_update(&body, room) {
        Ok(u) => u,
        Err(wire::Refusal::Malformed(m)) => return Err(Failure::bad_request(m)),
        Err(wire::Refusal::NotAllowed(m)) => return Ok(wire::update_not_allowed(&m)),
    };
    let mut guard = tracked(state, room).await?;
    let Some(tracker) = guard.as_mut() else {
        return Err(Failure::internal(
            "room without group state",
            format!("{room} has no tracked group"),
        ));
    };
    match update {
        wire::Update::Commit(c) => accept_commit(state, room, c, from, tracker).await,
        wire::Update::Proposals(p) => {
            let mut accepted = false;
            let result = accept_proposals(state, room, p, from, tracker, &mut accepted).await;
            if !accepted {
                // The in-memory state may hold proposals (the first of several,
                // say) that never became durable: reload it next time.
                *guard = None;
            }
            result
        }
    }
}

/// Refusal of a handshake message that is well formed but not acceptable.
fn refuse(e: &TrackError) -> Result<Vec<u8>, Failure> {
    match e {
        TrackError::Malformed(m) => Err(Failure::bad_request(m.clone())),
        TrackError::Internal(m) => Err(Failure::internal("room state", m)),
        other => {
            tracing::info!(reason = %crate::privacy::redacted(&other), "handshake refused");
            Ok(wire::update_not_allowed(&other.to_string()))
        }
    }
}

async fn accept_commit(
    state: &AppState,
    room: &RoomId,
    update: wire::CommitUpdate,
    from: Submitter,
    tracker: &mut Tracked,
) -> Result<Vec<u8>, Failure> {
    // A retried commit that was accepted already: answer as before.
    let dedup_key = sha256(&update.message_bytes);
    let scope = format!("update:{room}");
    let (s2, k2) = (scope.clone(), dedup_key);
    if let Some(at) = state.db(move |s| s.dedup_seen(&s2, &k2)).await? {
        return Ok(wire::update_success(at));
    }
    if update.epoch != tracker.epoch() {
        Metrics::inc(&state.metrics.commits_wrong_epoch);
        return Ok(wire::update_wrong_epoch(tracker.epoch(), update.epoch));
    }
    let message = match crate::tracker::protocol_message(&update.message_bytes) {
        Ok(m) => m,
        Err(e) => return refuse(&e),
    };
    let staged = match tracker.stage_commit(&state.crypto, message) {
        Ok(s) => s,
        Err(e) => return refuse(&e),
    };
    // A follower may only submit its own clients' commits.
    if let Submitter::Peer(p) = &from
        && staged.committer.domain() != p
    {
        return Ok(wire::update_not_allowed(&format!(
            "{p} submitted a commit by {}, who is not its user",
            staged.committer
        )));
    }
    if let Submitter::Client(c) = &from
        && staged.committer.to_string() != c.client
    {
        return Ok(wire::update_not_allowed(
            "you may only submit your own commits",
        ));
    }
    if let Err(e) = verify_leaves(state, &staged.new_leaves).await {
        return Ok(wire::update_not_allowed(&format!(
            "a credential in the commit does not verify: {e}"
        )));
    }
    let Some(group_info) = update.group_info.clone() else {
        return Ok(wire::update_not_allowed(
            "a commit must come with the new epoch's full GroupInfo",
        ));
    };
    let Some(committer_leaf) = staged.after.iter().find(|m| m.client == staged.committer) else {
        return Ok(wire::update_not_allowed(
            "the committer is not in the group it commits",
        ));
    };
    if let Err(e) = staged
        .next
        .check_group_info(&state.crypto, &group_info, committer_leaf)
    {
        return refuse(&e);
    }
    // Route the Welcome: each new member's KeyPackage was claimed through us.
    let added = staged.added();
    let mut local_new = Vec::new();
    let mut remote_new = BTreeSet::new();
    for r in &update.welcome_refs {
        let rr = r.clone();
        match state.db(move |s| s.key_package_route(&rr)).await? {
            Some(KeyPackageRoute::Local { client }) => local_new.push(client),
            Some(KeyPackageRoute::Remote { domain }) => {
                remote_new.insert(domain);
            }
            None => {
                return Ok(wire::update_not_allowed(
                    "the Welcome names a KeyPackage that was not claimed through this hub",
                ));
            }
        }
    }
    if update.welcome.is_none() && added.iter().any(|c| !is_joiner(&staged, c)) {
        return Ok(wire::update_not_allowed(
            "a commit that adds members must come with their Welcome",
        ));
    }
    let ts = now_ms();
    let commit_fanout = wire::fanout(ts, &update.message_bytes, None)
        .map_err(|e| Failure::internal("fanout", e))?;
    let r = room.to_string();
    let (before_local, before_domains) = (
        local_clients(state, &staged.before),
        remote_domains(state, &staged.before),
    );
    let after_local = local_clients(state, &staged.after);
    let after_domains = remote_domains(state, &staged.after);
    let snapshot = staged
        .next
        .snapshot()
        .map_err(|e| Failure::internal("snapshot", e))?;
    let mut batch = Batch {
        dedup: Some(Dedup {
            scope,
            key: dedup_key,
        }),
        epoch: Some(EpochCheck {
            room: r.clone(),
            expected: update.epoch,
            advance_to: staged.next.epoch(),
        }),
        group_state: Some(GroupSnapshot {
            room: r.clone(),
            epoch: staged.next.epoch(),
            snapshot,
            group_info,
        }),
        accepted_at: ts,
        forget_key_package_routes: update.welcome_refs.clone(),
        ..Batch::default()
    };
    // Everyone who was in the group gets the commit (the removed learn of it);
    // the followers that had members get it by notify.
    // Followers new to the room by an external join learn of it from the commit.
    let notified: Vec<String> = before_domains.union(&after_domains).cloned().collect();
    let before_domains: Vec<String> = before_domains.into_iter().collect();
    fan_out(
        &mut batch,
        room,
        before_local.iter().cloned().collect(),
        &from,
        &notified,
        &commit_fanout,
    );
    for c in after_local.difference(&before_local) {
        batch.room_clients_add.push((r.clone(), c.clone()));
    }
    for c in before_local.difference(&after_local) {
        batch.room_clients_remove.push((r.clone(), c.clone()));
    }
    for d in after_domains.difference(&before_domains.iter().cloned().collect()) {
        batch.room_domains_add.push((r.clone(), d.clone()));
    }
    for d in before_domains
        .iter()
        .filter(|d| !after_domains.contains(*d))
    {
        batch.room_domains_remove.push((r.clone(), d.clone()));
    }
    if let Some(welcome) = &update.welcome {
        let welcome_fanout = wire::fanout(ts, &welcome.message_bytes, Some(&welcome.ratchet_tree))
            .map_err(|e| Failure::internal("fanout", e))?;
        batch.deliveries.push(Delivery {
            room: r.clone(),
            clients: local_new.clone(),
            payload: welcome_fanout.clone(),
        });
        for d in &remote_new {
            batch.outbound.push(NewOutbound {
                domain: d.clone(),
                endpoint: "notify".into(),
                room: r.clone(),
                body: welcome_fanout.clone(),
            });
        }
    }
    let next_epoch = staged.next.epoch();
    super::drop_unknown_clients(state, std::slice::from_mut(&mut batch)).await?;
    match commit_batch(state, batch).await? {
        BatchOutcome::Applied { .. } => {
            *tracker = staged.next;
            Metrics::inc(&state.metrics.commits_accepted);
            let members: Vec<String> = tracker
                .members()
                .unwrap_or_default()
                .iter()
                .map(|m| m.client.to_string())
                .collect();
            crate::calls::on_members_changed(state, room, &members).await;
            tracing::debug!(epoch = next_epoch, "commit accepted");
            Ok(wire::update_success(ts))
        }
        BatchOutcome::WrongEpoch { current } => {
            Metrics::inc(&state.metrics.commits_wrong_epoch);
            Ok(wire::update_wrong_epoch(current, update.epoch))
        }
        BatchOutcome::Duplicate { accepted_at } => Ok(wire::update_success(accepted_at)),
    }
}

fn is_joiner(staged: &crate::tracker::StagedChange, c: &ClientId) -> bool {
    &staged.committer == c
}

/// Our own clients among `members`.
pub fn local_clients(state: &AppState, members: &[Member]) -> BTreeSet<String> {
    members
        .iter()
        .filter(|m| state.is_local(m.client.domain()))
        .map(|m| m.client.to_string())
        .collect()
}

/// The other providers with clients among `members`.
pub fn remote_domains(state: &AppState, members: &[Member]) -> BTreeSet<String> {
    members
        .iter()
        .filter(|m| !state.is_local(m.client.domain()))
        .map(|m| m.client.domain().to_string())
        .collect()
}

async fn accept_proposals(
    state: &AppState,
    room: &RoomId,
    update: wire::ProposalUpdate,
    from: Submitter,
    tracker: &mut Tracked,
    accepted: &mut bool,
) -> Result<Vec<u8>, Failure> {
    if update.epoch != tracker.epoch() {
        return Ok(wire::update_wrong_epoch(tracker.epoch(), update.epoch));
    }
    let members = tracker
        .members()
        .map_err(|e| Failure::internal("members", e))?;
    for m in &update.messages {
        let message = match crate::tracker::protocol_message(m) {
            Ok(m) => m,
            Err(e) => return refuse(&e),
        };
        if let Err(e) = tracker.queue_proposal(&state.crypto, message) {
            return refuse(&e);
        }
    }
    let ts = now_ms();
    let snapshot = tracker
        .snapshot()
        .map_err(|e| Failure::internal("snapshot", e))?;
    let r = room.to_string();
    let (s2, r2) = (r.clone(), r.clone());
    let group_info = state
        .db(move |s| s.group_state(&s2))
        .await?
        .map(|g| g.group_info)
        .unwrap_or_default();
    let mut batch = Batch {
        group_state: Some(GroupSnapshot {
            room: r2,
            epoch: tracker.epoch(),
            snapshot,
            group_info,
        }),
        accepted_at: ts,
        ..Batch::default()
    };
    let domains: Vec<String> = remote_domains(state, &members).into_iter().collect();
    let local: Vec<String> = local_clients(state, &members).into_iter().collect();
    for m in &update.messages {
        let f = wire::fanout(ts, m, None).map_err(|e| Failure::internal("fanout", e))?;
        fan_out(&mut batch, room, local.clone(), &from, &domains, &f);
    }
    super::drop_unknown_clients(state, std::slice::from_mut(&mut batch)).await?;
    commit_batch(state, batch).await?;
    *accepted = true;
    Ok(wire::update_success(ts))
}
