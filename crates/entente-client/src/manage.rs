//! Managing rooms: creating them, adding and removing participants, leaving,
//! changing roles and metadata.
//!
//! Every change is one MLS commit whose GroupContextExtensions proposal carries
//! the new room state (participant list, roles, metadata: see
//! [`entente_core::room`]), so the member list and the participant list change
//! together and every member agrees on both. The hub checks each commit against
//! the room policy before it orders it.

use entente_core::room::{self, RoomState, roles};
use entente_wire::api::{CreateRoomCall, CreateRoomResponse, HubAnswer, UpdateCall};
use entente_wire::ids::{ClientId, RoomId, UserId};
use openmls::prelude::{
    Extension, ExtensionType, Extensions, GroupContext, GroupId, KeyPackage, LeafNodeIndex,
    MlsGroup, MlsMessageOut, OpenMlsProvider as _, Proposal, RequiredCapabilitiesExtension, Sender,
    UnknownExtension,
};
use rand::RngCore;
use rusqlite::params;
use tls_codec::Serialize as _;

use crate::frames::{self, UpdateOutcome};
use crate::rooms::{EPOCH_RETRIES, create_config, group_id, group_in, room_path};
use crate::store::{MlsProvider, storage};
use crate::{Client, ClientError, Local, now_secs};

/// A participant as the room state lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub user: UserId,
    pub role_index: u32,
    /// The role's name ("owner", "admin", "member", "banned", ...).
    pub role: String,
    /// This participant's devices in the MLS group.
    pub clients: Vec<ClientId>,
}

/// What one commit changes, computed from the group as it is when the commit is
/// built (and again after catching up, if the hub reports a newer epoch).
#[derive(Default)]
pub(crate) struct Plan {
    pub adds: Vec<KeyPackage>,
    pub removals: Vec<LeafNodeIndex>,
}

/// The room state carried by a group.
pub(crate) fn room_state_of(group: &MlsGroup) -> Result<RoomState, ClientError> {
    room_state_in(group.extensions())
}

/// The room state in a GroupContext's extensions.
pub(crate) fn room_state_in(
    extensions: &Extensions<GroupContext>,
) -> Result<RoomState, ClientError> {
    let data = extensions
        .iter()
        .find_map(|e| match e {
            Extension::Unknown(t, u) if *t == room::ROOM_STATE_EXTENSION_TYPE => Some(&u.0),
            _ => None,
        })
        .ok_or_else(|| ClientError::Protocol("the room carries no room state".into()))?;
    RoomState::decode(data).map_err(|e| ClientError::Protocol(format!("the room state: {e}")))
}

/// The group context extensions with `state` in place of the current room state.
fn extensions_with(
    group: &MlsGroup,
    state: &RoomState,
) -> Result<Extensions<GroupContext>, ClientError> {
    let mut exts: Vec<Extension> = group
        .extensions()
        .iter()
        .filter(|e| !matches!(e, Extension::Unknown(t, _) if *t == room::ROOM_STATE_EXTENSION_TYPE))
        .cloned()
        .collect();
    exts.push(state_extension(state)?);
    Extensions::from_vec(exts).map_err(|e| ClientError::Bug(format!("extensions: {e}")))
}

fn state_extension(state: &RoomState) -> Result<Extension, ClientError> {
    let bytes = state
        .encode()
        .map_err(|e| ClientError::Usage(format!("the room state: {e}")))?;
    Ok(Extension::Unknown(
        room::ROOM_STATE_EXTENSION_TYPE,
        UnknownExtension(bytes),
    ))
}

fn client_of(credential: &openmls::prelude::Credential) -> Result<ClientId, ClientError> {
    entente_core::mls::certificate_in(credential)
        .map(|c| c.claimed_client().clone())
        .map_err(|e| ClientError::Untrusted(e.to_string()))
}

/// `(leaf, client)` of every member.
pub(crate) fn leaves(group: &MlsGroup) -> Result<Vec<(LeafNodeIndex, ClientId)>, ClientError> {
    group
        .members()
        .map(|m| Ok((m.index, client_of(&m.credential)?)))
        .collect()
}

impl Client {
    /// Creates a room hubbed by our provider, with this device as its only member
    /// and our user as its owner.
    pub async fn create_room(&mut self) -> Result<RoomId, ClientError> {
        self.create_room_named("").await
    }

    /// Creates a room with a name.
    pub async fn create_room_named(&mut self, name: &str) -> Result<RoomId, ClientError> {
        let mut raw = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut raw);
        let room = RoomId::new(&hex::encode(raw), self.id.domain().clone())
            .map_err(|e| ClientError::Bug(format!("room id: {e}")))?;
        let state = RoomState::new(&room, self.id.user(), name);
        let call = crate::blocking(|| {
            let mut local = self.db();
            let Local { conn, groups, .. } = &mut *local;
            groups.transaction(conn, |tx| {
                let conn = tx.conn();
                let provider = MlsProvider::new(&self.crypto, conn);
                // Every member must understand the room state: required_capabilities
                // makes MLS refuse a KeyPackage that does not.
                let required = Extension::RequiredCapabilities(RequiredCapabilitiesExtension::new(
                    &[ExtensionType::Unknown(room::ROOM_STATE_EXTENSION_TYPE)],
                    &[],
                    &[],
                ));
                let exts = Extensions::from_vec(vec![required, state_extension(&state)?])
                    .map_err(|e| ClientError::Bug(format!("extensions: {e}")))?;
                let config = create_config(crate::keys::capabilities(), exts)?;
                let group = MlsGroup::new_with_group_id(
                    &provider,
                    &self.signer,
                    &config,
                    GroupId::from_slice(room.to_string().as_bytes()),
                    self.credential_with_key(),
                )
                .map_err(|e| ClientError::Mls(format!("creating the group: {e}")))?;
                let group = tx.insert(group);
                let group_info = group
                    .export_group_info(provider.crypto(), &self.signer, false)
                    .map_err(|e| ClientError::Mls(format!("exporting the GroupInfo: {e}")))?
                    .tls_serialize_detached()
                    .map_err(|e| ClientError::Bug(e.to_string()))?;
                let ratchet_tree = group
                    .export_ratchet_tree()
                    .tls_serialize_detached()
                    .map_err(|e| ClientError::Bug(e.to_string()))?;
                conn.execute(
                    "INSERT INTO rooms (room, joined_at) VALUES (?1, ?2)",
                    params![room.to_string(), now_secs() as i64],
                )
                .map_err(storage)?;
                Ok(CreateRoomCall {
                    room: room.to_string(),
                    group_info,
                    ratchet_tree,
                })
            })
        })?;
        let created: Result<CreateRoomResponse, _> = self
            .signed(reqwest::Method::POST, "/v1/rooms", Some(&call))
            .await;
        if let Err(e) = created {
            // The hub does not know the room: forget our half of it.
            self.forget_room(&room)?;
            return Err(e);
        }
        Ok(room)
    }

    /// Drops a room's local state.
    pub(crate) fn forget_room(&self, room: &RoomId) -> Result<(), ClientError> {
        crate::blocking(|| {
            let mut local = self.db();
            let Local { conn, groups, .. } = &mut *local;
            groups.transaction(conn, |tx| {
                let conn = tx.conn();
                let provider = MlsProvider::new(&self.crypto, conn);
                let gid = group_id(room);
                if let Ok(Some(g)) = tx.group(&gid) {
                    g.delete(provider.storage())
                        .map_err(|e| ClientError::Storage(e.to_string()))?;
                }
                tx.remove(&gid);
                conn.execute(
                    "DELETE FROM rooms WHERE room = ?1",
                    params![room.to_string()],
                )
                .map_err(storage)?;
                Ok(())
            })
        })
    }

    /// A 1:1 chat: a new two-party room with all of `peer`'s devices and our other
    /// devices.
    pub async fn start_chat(&mut self, peer: &UserId) -> Result<RoomId, ClientError> {
        let room = self.create_room().await?;
        self.invite(&room, peer).await?;
        Ok(room)
    }

    /// Adds `user` to the room as a member, with every device of theirs that has a
    /// KeyPackage (and any of our own devices not yet in it).
    pub async fn invite(&mut self, room: &RoomId, user: &UserId) -> Result<(), ClientError> {
        self.invite_as(room, user, roles::MEMBER).await
    }

    /// Adds `user` with the given role.
    pub async fn invite_as(
        &mut self,
        room: &RoomId,
        user: &UserId,
        role: u32,
    ) -> Result<(), ClientError> {
        self.invite_many(room, std::slice::from_ref(user), role)
            .await
    }

    /// Adds several users in one commit, each with `role` (users who are
    /// participants already keep theirs), with every device of theirs that has a
    /// KeyPackage, and any of our own devices not yet in the room.
    pub async fn invite_many(
        &mut self,
        room: &RoomId,
        users: &[UserId],
        role: u32,
    ) -> Result<(), ClientError> {
        self.require_room(room)?;
        // Devices already in the group cannot be added again: MLS refuses a
        // duplicate signature key.
        let members = self.member_clients(room)?;
        let mut kps = Vec::new();
        for user in users {
            let mut theirs = Vec::new();
            for kp in self.claim_key_packages(room, user).await? {
                if !members.contains(&crate::rooms::kp_client(&kp)?) {
                    theirs.push(kp);
                }
            }
            if theirs.is_empty() {
                return Err(ClientError::Usage(format!(
                    "{} has no device that can be added right now (all are in the room already, or have no KeyPackages)",
                    user.handle()
                )));
            }
            kps.extend(theirs);
        }
        let own = self.id.user().clone();
        if !users.contains(&own) {
            for kp in self
                .claim_key_packages(room, &own)
                .await
                .unwrap_or_default()
            {
                let c = crate::rooms::kp_client(&kp)?;
                if c != self.id && !members.contains(&c) {
                    kps.push(kp);
                }
            }
        }
        let users = users.to_vec();
        self.commit_change(room, move |group, state| {
            let present = leaves(group)?;
            let adds: Vec<KeyPackage> = kps
                .iter()
                .filter(|kp| {
                    crate::rooms::kp_client(kp)
                        .map(|c| !present.iter().any(|(_, p)| p == &c))
                        .unwrap_or(false)
                })
                .cloned()
                .collect();
            for user in &users {
                if state.role_of(user) == roles::NONE {
                    state.set_role(user, role);
                }
            }
            Ok(Plan {
                adds,
                removals: Vec::new(),
            })
        })
        .await
    }

    /// Adds our user's other devices that are not yet in them to all the rooms
    /// this device is in (after linking a new device). Returns in how many rooms
    /// devices were added.
    pub async fn add_own_devices_everywhere(&mut self) -> Result<usize, ClientError> {
        let own = self.id.user().clone();
        let mut added = 0;
        for summary in self.rooms()? {
            let room = summary.room;
            let present = self.member_clients(&room)?;
            let kps: Vec<KeyPackage> = self
                .claim_key_packages(&room, &own)
                .await?
                .into_iter()
                .filter(|kp| {
                    crate::rooms::kp_client(kp)
                        .map(|c| !present.contains(&c))
                        .unwrap_or(false)
                })
                .collect();
            if kps.is_empty() {
                continue;
            }
            self.commit_change(&room, move |group, _state| {
                let present = leaves(group)?;
                Ok(Plan {
                    adds: kps
                        .iter()
                        .filter(|kp| {
                            crate::rooms::kp_client(kp)
                                .map(|c| !present.iter().any(|(_, p)| p == &c))
                                .unwrap_or(false)
                        })
                        .cloned()
                        .collect(),
                    removals: Vec::new(),
                })
            })
            .await?;
            added += 1;
        }
        Ok(added)
    }

    /// Removes a device (typically a lost one of ours) from every room this
    /// device shares with it. Returns from how many rooms it was removed.
    pub async fn remove_device_everywhere(
        &mut self,
        device: &ClientId,
    ) -> Result<usize, ClientError> {
        let mut removed = 0;
        for summary in self.rooms()? {
            if self.member_clients(&summary.room)?.contains(device) {
                self.remove_device(&summary.room, device).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Revokes a lost device of our user: removes it from every room we share with
    /// it, then has our provider delete it (it can no longer authenticate, and its
    /// KeyPackages and undelivered inbox are gone). Returns from how many rooms it
    /// was removed.
    pub async fn revoke_device(&mut self, device: &ClientId) -> Result<usize, ClientError> {
        if device.user() != self.id.user() {
            return Err(ClientError::Usage(format!(
                "{device} is not a device of {}",
                self.id.user().handle()
            )));
        }
        if device == &self.id {
            return Err(ClientError::Usage(
                "revoke a device from another one of your devices".into(),
            ));
        }
        let removed = self.remove_device_everywhere(device).await?;
        let _: serde_json::Value = self
            .signed::<(), _>(
                reqwest::Method::DELETE,
                &format!(
                    "/v1/devices/{}",
                    entente_wire::api::path_segment(&device.to_string())
                ),
                None,
            )
            .await?;
        Ok(removed)
    }

    /// Removes `user` and all their devices from the room.
    pub async fn remove_participant(
        &mut self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<(), ClientError> {
        self.remove_with_role(room, user, roles::NONE).await
    }

    /// Bans `user`: removes their devices and gives them the "banned" role, so
    /// they cannot be added back until unbanned.
    pub async fn ban(&mut self, room: &RoomId, user: &UserId) -> Result<(), ClientError> {
        self.remove_with_role(room, user, roles::BANNED).await
    }

    async fn remove_with_role(
        &mut self,
        room: &RoomId,
        user: &UserId,
        role: u32,
    ) -> Result<(), ClientError> {
        self.require_room(room)?;
        if user == self.id.user() {
            return Err(ClientError::Usage(
                "to remove yourself, leave the room".into(),
            ));
        }
        let user = user.clone();
        self.commit_change(room, move |group, state| {
            let removals = leaves(group)?
                .into_iter()
                .filter(|(_, c)| c.user() == &user)
                .map(|(l, _)| l)
                .collect();
            if state.role_of(&user) == roles::NONE && role == roles::NONE {
                return Err(ClientError::Usage(format!(
                    "{} is not in the room",
                    user.handle()
                )));
            }
            state.set_role(&user, role);
            Ok(Plan {
                adds: Vec::new(),
                removals,
            })
        })
        .await
    }

    /// Removes one device (of any user, policy permitting; typically a lost device
    /// of our own) from the room, leaving the participant list as it is.
    pub async fn remove_device(
        &mut self,
        room: &RoomId,
        device: &ClientId,
    ) -> Result<(), ClientError> {
        self.require_room(room)?;
        if device == &self.id {
            return Err(ClientError::Usage(
                "a device cannot remove itself; leave the room or remove it from another device"
                    .into(),
            ));
        }
        let device = device.clone();
        self.commit_change(room, move |group, _state| {
            let removals: Vec<LeafNodeIndex> = leaves(group)?
                .into_iter()
                .filter(|(_, c)| c == &device)
                .map(|(l, _)| l)
                .collect();
            if removals.is_empty() {
                return Err(ClientError::Usage(format!("{device} is not in the room")));
            }
            Ok(Plan {
                adds: Vec::new(),
                removals,
            })
        })
        .await
    }

    /// Changes a participant's role ("admin", "member", ...), or unbans.
    pub async fn set_role(
        &mut self,
        room: &RoomId,
        user: &UserId,
        role: u32,
    ) -> Result<(), ClientError> {
        self.require_room(room)?;
        let user = user.clone();
        self.commit_change(room, move |_group, state| {
            if state.role(role).is_none() {
                return Err(ClientError::Usage(format!("the room has no role {role}")));
            }
            if state.role_of(&user) == roles::NONE {
                return Err(ClientError::Usage(format!(
                    "{} is not in the room; invite them instead",
                    user.handle()
                )));
            }
            state.set_role(&user, role);
            Ok(Plan::default())
        })
        .await
    }

    /// Sets the room's name.
    pub async fn set_room_name(&mut self, room: &RoomId, name: &str) -> Result<(), ClientError> {
        self.require_room(room)?;
        let name = name.to_owned();
        self.commit_change(room, move |_group, state| {
            state
                .set_name(&name)
                .map_err(|e| ClientError::Usage(e.to_string()))?;
            Ok(Plan::default())
        })
        .await
    }

    /// Sets the room's topic (MIMI room metadata `room_subject`).
    pub async fn set_room_topic(&mut self, room: &RoomId, topic: &str) -> Result<(), ClientError> {
        self.require_room(room)?;
        let topic = topic.to_owned();
        self.commit_change(room, move |_group, state| {
            state
                .set_subject(&topic)
                .map_err(|e| ClientError::Usage(e.to_string()))?;
            Ok(Plan::default())
        })
        .await
    }

    /// Replaces the room's role definitions (room-policy-03 `RoleData`): a policy
    /// change, which needs canChangeRoleDefinitions (owners, by default).
    pub async fn set_role_definitions(
        &mut self,
        room: &RoomId,
        roles: entente_wire::mimi::RoleData,
    ) -> Result<(), ClientError> {
        self.require_room(room)?;
        self.commit_change(room, move |_group, state| {
            state.roles = roles.clone();
            state
                .validate()
                .map_err(|e| ClientError::Usage(format!("the new roles: {e}")))?;
            Ok(Plan::default())
        })
        .await
    }

    /// Leaves the room: proposes the removal of all our devices (MLS does not let
    /// a member commit its own removal); the next commit by another member, which
    /// the designated member makes as soon as it sees the proposals, removes us
    /// from the participant list. Our local copy of the room is dropped.
    pub async fn leave(&mut self, room: &RoomId) -> Result<(), ClientError> {
        self.require_room(room)?;
        for attempt in 0..EPOCH_RETRIES {
            let request = crate::blocking(|| {
                let mut local = self.db();
                let Local { conn, groups, .. } = &mut *local;
                groups.transaction(conn, |tx| {
                    let conn = tx.conn();
                    let provider = MlsProvider::new(&self.crypto, conn);
                    let group = group_in(tx, room)?;
                    let mut messages: Vec<MlsMessageOut> = Vec::new();
                    for (leaf, c) in leaves(group)? {
                        if c.user() == self.id.user() && leaf != group.own_leaf_index() {
                            let (m, _) = group
                                .propose_remove_member(&provider, &self.signer, leaf)
                                .map_err(|e| ClientError::Mls(format!("proposing removal: {e}")))?;
                            messages.push(m);
                        }
                    }
                    let m = group
                        .leave_group(&provider, &self.signer)
                        .map_err(|e| ClientError::Mls(format!("leaving: {e}")))?;
                    messages.push(m);
                    frames::proposal_request(&messages)
                })
            })?;
            let answer: HubAnswer = self
                .signed(
                    reqwest::Method::POST,
                    &room_path(room, "update"),
                    Some(&UpdateCall { request }),
                )
                .await?;
            match frames::parse_update_response(&answer.response)? {
                UpdateOutcome::Success { .. } => {
                    self.forget_room(room)?;
                    return Ok(());
                }
                UpdateOutcome::WrongEpoch { current } => {
                    tracing::info!(attempt, current, "room moved on; catching up to leave");
                    crate::blocking(|| {
                        let mut local = self.db();
                        let Local { conn, groups, .. } = &mut *local;
                        groups.transaction(conn, |tx| {
                            let provider = MlsProvider::new(&self.crypto, tx.conn());
                            group_in(tx, room)?
                                .clear_pending_proposals(provider.storage())
                                .map_err(|e| ClientError::Storage(e.to_string()))
                        })
                    })?;
                    Box::pin(self.sync()).await?;
                }
                UpdateOutcome::Refused { reason } => {
                    return Err(ClientError::not_allowed(reason));
                }
            }
        }
        Err(ClientError::kept_changing(EPOCH_RETRIES))
    }

    /// The participants with their roles and devices.
    pub fn participants(&self, room: &RoomId) -> Result<Vec<Participant>, ClientError> {
        let (state, leaves) =
            self.with_group(room, |group| Ok((room_state_of(group)?, leaves(group)?)))?;
        Ok(state
            .participants
            .iter()
            .map(|(user, role_index)| Participant {
                user: user.clone(),
                role_index: *role_index,
                role: state
                    .role(*role_index)
                    .map(|r| r.role_name.clone())
                    .unwrap_or_else(|| format!("role {role_index}")),
                clients: leaves
                    .iter()
                    .filter(|(_, c)| c.user() == user)
                    .map(|(_, c)| c.clone())
                    .collect(),
            })
            .collect())
    }

    /// The room's state (participants, roles, metadata).
    pub fn room_state(&self, room: &RoomId) -> Result<RoomState, ClientError> {
        self.with_group(room, room_state_of)
    }

    /// Commits pending proposals if this device is the one designated to: the
    /// member with the lowest leaf index among those not removed by them. Called
    /// after processing a proposal; returns whether it committed.
    pub(crate) async fn commit_pending_if_designated(
        &mut self,
        room: &RoomId,
    ) -> Result<bool, ClientError> {
        let designated = self.with_group(room, |group| {
            if group.pending_proposals().next().is_none() {
                return Ok(false);
            }
            let removed: Vec<LeafNodeIndex> = group
                .pending_proposals()
                .filter_map(|p| match p.proposal() {
                    Proposal::Remove(r) => Some(r.removed()),
                    _ => None,
                })
                .collect();
            Ok(group
                .members()
                .map(|m| m.index)
                .filter(|i| !removed.contains(i))
                .min()
                == Some(group.own_leaf_index()))
        });
        // A group that cannot be read is not ours to commit to.
        let Ok(designated) = designated else {
            return Ok(false);
        };
        if !designated {
            return Ok(false);
        }
        self.commit_change(room, |_g, _s| Ok(Plan::default()))
            .await?;
        Ok(true)
    }

    /// Builds, submits and (on success) merges one commit: `plan` says what it
    /// adds and removes and edits the room state; pending proposals are included,
    /// and users who proposed their own removal leave the participant list. On
    /// `wrongEpoch` we catch up and plan again.
    pub(crate) async fn commit_change<F>(
        &mut self,
        room: &RoomId,
        plan: F,
    ) -> Result<(), ClientError>
    where
        F: Fn(&MlsGroup, &mut RoomState) -> Result<Plan, ClientError>,
    {
        for attempt in 0..EPOCH_RETRIES {
            let request = crate::blocking(|| {
                let mut local = self.db();
                let Local { conn, groups, .. } = &mut *local;
                groups.transaction(conn, |tx| {
                    let conn = tx.conn();
                    let provider = MlsProvider::new(&self.crypto, conn);
                    let group = group_in(tx, room)?;
                    let before = room_state_of(group)?;
                    let mut state = before.clone();
                    let p = plan(group, &mut state)?;
                    // Users leaving by their own proposals leave the participant list
                    // once all their devices are removed.
                    let members = leaves(group)?;
                    let mut removed: Vec<LeafNodeIndex> = p.removals.clone();
                    let mut leaving = Vec::new();
                    for q in group.pending_proposals() {
                        if let (Proposal::Remove(r), Sender::Member(s)) = (q.proposal(), q.sender())
                        {
                            removed.push(r.removed());
                            let user_at = |l: LeafNodeIndex| {
                                members.iter().find(|(i, _)| *i == l).map(|(_, c)| c.user())
                            };
                            if let (Some(a), Some(b)) = (user_at(r.removed()), user_at(*s))
                                && a == b
                            {
                                leaving.push(a.clone());
                            }
                        }
                    }
                    for u in leaving {
                        let all_gone = members
                            .iter()
                            .filter(|(_, c)| c.user() == &u)
                            .all(|(l, _)| removed.contains(l));
                        if all_gone && state.role_of(&u) != roles::BANNED {
                            state.set_role(&u, roles::NONE);
                        }
                    }
                    let new_extensions = if state != before {
                        Some(extensions_with(group, &state)?)
                    } else {
                        None
                    };
                    let mut builder = group
                        .commit_builder()
                        .propose_adds(p.adds.iter().cloned())
                        .propose_removals(p.removals.iter().copied())
                        .force_self_update(true);
                    if let Some(exts) = new_extensions {
                        builder = builder
                            .propose_group_context_extensions(exts)
                            .map_err(|e| ClientError::Mls(format!("the room state: {e}")))?;
                    }
                    let mls =
                        |e: &dyn std::fmt::Display| ClientError::Mls(format!("committing: {e}"));
                    let bundle = builder
                        .load_psks(provider.storage())
                        .map_err(|e| mls(&e))?
                        .create_group_info(true)
                        .build(provider.rand(), provider.crypto(), &self.signer, |_| true)
                        .map_err(|e| mls(&e))?
                        .stage_commit(&provider)
                        .map_err(|e| mls(&e))?;
                    let welcome = bundle.to_welcome_msg();
                    let (commit, _, group_info) = bundle.into_contents();
                    let group_info: MlsMessageOut = group_info
                        .ok_or_else(|| ClientError::Bug("the commit produced no GroupInfo".into()))?
                        .into();
                    // The new members need the tree of the epoch the commit creates.
                    let tree = group
                        .pending_commit()
                        .ok_or_else(|| ClientError::Bug("no pending commit".into()))?
                        .export_ratchet_tree(provider.crypto(), group.export_ratchet_tree())
                        .map_err(|e| ClientError::Mls(format!("exporting the new tree: {e}")))?
                        .ok_or_else(|| ClientError::Bug("the pending commit has no tree".into()))?;
                    frames::update_request(&commit, welcome.as_ref(), &group_info, tree)
                })
            })?;
            let answer: HubAnswer = self
                .signed(
                    reqwest::Method::POST,
                    &room_path(room, "update"),
                    Some(&UpdateCall { request }),
                )
                .await?;
            let outcome = frames::parse_update_response(&answer.response);
            // Apply the hub's verdict to our pending commit, under the lock, then
            // act on it outside the lock.
            crate::blocking(|| {
                let mut local = self.db();
                let Local { conn, groups, .. } = &mut *local;
                groups.transaction(conn, |tx| {
                    let provider = MlsProvider::new(&self.crypto, tx.conn());
                    let group = group_in(tx, room)?;
                    if let Ok(UpdateOutcome::Success { .. }) = outcome {
                        group
                            .merge_pending_commit(&provider)
                            .map_err(|e| ClientError::Mls(format!("merging our commit: {e}")))
                    } else {
                        group
                            .clear_pending_commit(provider.storage())
                            .map_err(|e| ClientError::Mls(e.to_string()))
                    }
                })
            })?;
            match outcome? {
                UpdateOutcome::Success { .. } => return Ok(()),
                UpdateOutcome::WrongEpoch { current } => {
                    tracing::info!(
                        attempt,
                        current,
                        "hub is at a newer epoch; catching up and retrying"
                    );
                    Box::pin(self.sync()).await?;
                }
                UpdateOutcome::Refused { reason } => {
                    return Err(ClientError::not_allowed(reason));
                }
            }
        }
        Err(ClientError::kept_changing(EPOCH_RETRIES))
    }
}
