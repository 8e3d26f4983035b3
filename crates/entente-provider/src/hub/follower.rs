//! The follower side: delivering the hub's fanout to our clients while tracking
//! the room's group, so that we know which of our clients are in it; and, on the
//! hub, serving the group state a new follower starts from.

use entente_wire::ids::{Domain, RoomId};
use entente_wire::mimi::RoomGroupState;
use tls_codec::Serialize as _;

use super::commit::{local_clients, tracked};
use super::{require_participating_peer, sha256, wire};
use crate::error::Failure;
use crate::state::{AppState, now_ms, now_secs};
use crate::store::{
    Batch, BatchOutcome, Dedup, Delivery, GroupSnapshot, KeyPackageRoute, RoomRecord,
};
use crate::tracker::Tracked;

/// Hub: the current GroupInfo and tree, for a follower that has clients in the room.
pub async fn serve_group_state(
    state: &AppState,
    room: &RoomId,
    peer: &Domain,
) -> Result<Vec<u8>, Failure> {
    super::hub_room(state, room).await?;
    require_participating_peer(state, room, peer).await?;
    let guard = tracked(state, room).await?;
    let t = guard
        .as_ref()
        .ok_or_else(|| Failure::not_found(format!("group state of {room}")))?;
    let r = room.to_string();
    let group_info = state
        .db(move |s| s.group_state(&r))
        .await?
        .map(|g| g.group_info)
        .unwrap_or_default();
    let tree = t
        .ratchet_tree()
        .tls_serialize_detached()
        .map_err(|e| Failure::internal("encoding the tree", e))?;
    RoomGroupState {
        group_info: group_info.into(),
        ratchet_tree: tree.into(),
    }
    .encode()
    .map_err(|e| Failure::internal("encoding the group state", e))
}

/// Follower: fetches the hub's current group state and verifies it.
async fn fetch_group_state(state: &AppState, room: &RoomId) -> Result<(Tracked, Vec<u8>), Failure> {
    let body = state
        .federation
        .post(room.domain(), "groupState", &room.to_string(), Vec::new())
        .await?;
    let bad = |e: String| Failure::bad_gateway(format!("{}'s group state: {e}", room.domain()));
    let gs = RoomGroupState::decode(&body).map_err(|e| bad(e.to_string()))?;
    let gi = crate::tracker::decode_group_info(gs.group_info.as_slice())
        .map_err(|e| bad(e.to_string()))?;
    let tree =
        crate::tracker::decode_tree(gs.ratchet_tree.as_slice()).map_err(|e| bad(e.to_string()))?;
    let t = Tracked::create(&state.crypto, gi, tree).map_err(|e| bad(e.to_string()))?;
    if t.group_id() != room.to_string().as_bytes() {
        return Err(bad("it is another group".into()));
    }
    // We answer for our own users: a client claiming to be one of them must carry
    // our certificate. Other providers' clients the hub has verified; checking
    // them here would make us depend on every member's provider being up.
    let ours: Vec<_> = t
        .members()
        .map_err(|e| bad(e.to_string()))?
        .into_iter()
        .filter(|m| state.is_local(m.client.domain()))
        .collect();
    if let Err(e) = super::commit::verify_leaves(state, &ours).await {
        return Err(bad(e));
    }
    Ok((t, gs.group_info.as_slice().to_vec()))
}

/// Follower: delivers the hub's fanout to our clients. Each FanoutMessage is
/// deduplicated by its bytes, so a retried notify is delivered once.
///
/// Commits are applied to our copy of the group; one that does not apply (we
/// missed something, or the hub accepted what we would not) makes us fetch the
/// hub's current state: the hub orders the room, so its state is the room's.
pub async fn receive_notify(
    state: &AppState,
    room: &RoomId,
    body: &[u8],
    peer: &Domain,
) -> Result<(), Failure> {
    if room.domain() != peer {
        return Err(Failure::forbidden(format!(
            "{peer} is not the hub of {room}; only the hub may notify"
        )));
    }
    let items = wire::parse_fanout_batch(body, room).map_err(Failure::bad_request)?;
    let r = room.to_string();
    let mut guard = tracked(state, room).await?;
    let mut members: Vec<String> = match guard.as_ref() {
        Some(t) => local_clients(state, &t.members().unwrap_or_default())
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    let mut batches = Vec::with_capacity(items.len());
    let mut refetch = false;
    for item in items {
        let mut batch = Batch {
            dedup: Some(Dedup {
                scope: format!("notify:{peer}"),
                key: sha256(&item.fanout_bytes),
            }),
            accepted_at: now_ms(),
            ensure_room: Some(RoomRecord {
                room: r.clone(),
                hub: peer.to_string(),
                epoch: 0,
                created_at: now_secs(),
            }),
            ..Batch::default()
        };
        let (k, sc) = (sha256(&item.fanout_bytes), format!("notify:{peer}"));
        if state.db(move |s| s.dedup_seen(&sc, &k)).await?.is_some() {
            continue;
        }
        match &item.kind {
            wire::FanoutKind::Welcome { refs } => {
                let mut ours = Vec::new();
                for rf in refs {
                    let rr = rf.clone();
                    if let Some(KeyPackageRoute::Local { client }) =
                        state.db(move |s| s.key_package_route(&rr)).await?
                    {
                        ours.push(client);
                    }
                }
                if guard.is_none() {
                    refetch = true;
                }
                for c in &ours {
                    if !members.contains(c) {
                        members.push(c.clone());
                    }
                    batch.room_clients_add.push((r.clone(), c.clone()));
                }
                batch.forget_key_package_routes = refs.clone();
                batch.deliveries.push(Delivery {
                    room: r.clone(),
                    clients: ours,
                    payload: item.fanout_bytes.clone(),
                });
            }
            wire::FanoutKind::Handshake { epoch } => {
                let h = sha256(&item.message_bytes);
                let r2 = r.clone();
                let echo = state.db(move |s| s.echo_mark(&r2, &h)).await?;
                // Everyone in the group before the commit receives it.
                batch.deliveries.push(Delivery {
                    room: r.clone(),
                    clients: members
                        .iter()
                        .filter(|m| Some(*m) != echo.as_ref())
                        .cloned()
                        .collect(),
                    payload: item.fanout_bytes.clone(),
                });
                if guard.is_none() {
                    // A room we did not follow: one of our clients joined it
                    // externally. Start from the hub's state.
                    refetch = true;
                }
                if let Some(t) = guard.as_mut()
                    && !refetch
                {
                    apply_handshake(
                        state,
                        room,
                        t,
                        *epoch,
                        &item.message_bytes,
                        &mut batch,
                        &mut members,
                        &mut refetch,
                    );
                }
            }
            wire::FanoutKind::Application => {
                let h = sha256(&item.message_bytes);
                let r2 = r.clone();
                let echo = state.db(move |s| s.echo_mark(&r2, &h)).await?;
                batch.deliveries.push(Delivery {
                    room: r.clone(),
                    clients: members
                        .iter()
                        .filter(|m| Some(*m) != echo.as_ref())
                        .cloned()
                        .collect(),
                    payload: item.fanout_bytes.clone(),
                });
            }
        }
        batches.push(batch);
    }
    if refetch {
        // Start over from the hub's state; membership follows from it.
        let (t, group_info) = fetch_group_state(state, room).await?;
        let now_members = local_clients(state, &t.members().unwrap_or_default());
        let r2 = r.clone();
        let known = state.db(move |s| s.room_clients(&r2)).await?;
        let mut fix = Batch {
            group_state: Some(GroupSnapshot {
                room: r.clone(),
                epoch: t.epoch(),
                snapshot: t.snapshot().map_err(|e| Failure::internal("snapshot", e))?,
                group_info,
            }),
            accepted_at: now_ms(),
            ensure_room: Some(RoomRecord {
                room: r.clone(),
                hub: room.domain().to_string(),
                epoch: 0,
                created_at: now_secs(),
            }),
            ..Batch::default()
        };
        for c in &now_members {
            fix.room_clients_add.push((r.clone(), c.clone()));
        }
        for c in known.iter().filter(|c| !now_members.contains(*c)) {
            fix.room_clients_remove.push((r.clone(), c.clone()));
        }
        // Welcomes for clients of ours the hub's state does not hold yet (a
        // later commit removed them) must not re-add them.
        for b in &mut batches {
            b.group_state = None;
            b.room_clients_add.retain(|(_, c)| now_members.contains(c));
            b.room_clients_remove.clear();
        }
        batches.push(fix);
        *guard = Some(t);
    }
    super::drop_unknown_clients(state, &mut batches).await?;
    let n = batches.len() as u64;
    state
        .metrics
        .notify_received
        .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    // One durable transaction for the whole request: the 201 means all of it.
    let mut woken = Vec::new();
    let outcome = state.db(move |s| s.apply_all(batches)).await;
    match outcome {
        Ok(outcomes) => {
            for o in outcomes {
                if let BatchOutcome::Applied { woken: w } = o {
                    woken.extend(w);
                }
            }
        }
        Err(e) => {
            // Our in-memory state may be ahead of the store: reload next time.
            *guard = None;
            return Err(e);
        }
    }
    state.wakers.wake(&woken);
    Ok(())
}

/// Applies a commit or proposal to the follower's copy of the group, recording the
/// new state and our clients' membership changes in `batch`.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, all state of the loop"
)]
fn apply_handshake(
    state: &AppState,
    room: &RoomId,
    t: &mut Tracked,
    epoch: u64,
    message_bytes: &[u8],
    batch: &mut Batch,
    members: &mut Vec<String>,
    refetch: &mut bool,
) {
    let r = room.to_string();
    if epoch < t.epoch() {
        return; // our state is newer already (fetched from the hub)
    }
    if epoch > t.epoch() {
        *refetch = true;
        return;
    }
    let Ok(message) = crate::tracker::protocol_message(message_bytes) else {
        *refetch = true;
        return;
    };
    let is_commit = matches!(
        message.content_type(),
        openmls::prelude::ContentType::Commit
    );
    if !is_commit {
        if let Err(e) = t.queue_proposal(&state.crypto, message) {
            tracing::warn!(error = %crate::privacy::redacted(&e), "a proposal the hub accepted does not apply here");
        }
        return;
    }
    match t.stage_commit(&state.crypto, message) {
        Ok(staged) => {
            let after = local_clients(state, &staged.after);
            for c in &after {
                if !members.contains(c) {
                    batch.room_clients_add.push((r.clone(), c.clone()));
                }
            }
            for c in members.iter().filter(|c| !after.contains(*c)) {
                batch.room_clients_remove.push((r.clone(), c.clone()));
            }
            *members = after.into_iter().collect();
            match staged.next.snapshot() {
                Ok(snapshot) => {
                    batch.group_state = Some(GroupSnapshot {
                        room: r,
                        epoch: staged.next.epoch(),
                        snapshot,
                        group_info: Vec::new(),
                    });
                    *t = staged.next;
                }
                Err(_) => *refetch = true,
            }
        }
        Err(e) => {
            tracing::warn!(error = %crate::privacy::redacted(&e), "a commit the hub accepted does not apply here; fetching its state");
            *refetch = true;
        }
    }
}
