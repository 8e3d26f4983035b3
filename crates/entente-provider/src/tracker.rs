//! The public state of a room's MLS group, as the hub and the followers track it.
//!
//! Handshake messages are PublicMessages, so a provider can follow the group without
//! any of its secrets: OpenMLS's [`PublicGroup`] checks each commit (signatures,
//! proposals, the update path, the tree) and we check the room policy on the
//! participant list, roles and metadata that the GroupContext carries
//! ([`entente_core::room`]). The hub refuses a commit that fails either; a follower
//! uses the same state to know which of its clients are in the room.
//!
//! The state lives in an OpenMLS memory storage that we persist as a snapshot with
//! the batch that accepts the commit, so the state on disk always matches the epoch
//! recorded for the room.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use entente_core::room::{self, Actor, Change, PolicyError, RoomState};
use entente_wire::ids::{ClientId, UserId};
use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::Verifiable as _;
use openmls::prelude::{
    Credential, Extension, GroupId, LeafNodeIndex, MlsMessageBodyIn, MlsMessageIn,
    ProcessedMessageContent, ProtocolMessage, ProtocolVersion, PublicGroup, RatchetTreeIn, Sender,
};
use openmls::treesync::RatchetTree;
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use tls_codec::{Deserialize as _, Serialize as _};

/// The snapshot format version (the first byte).
const SNAPSHOT_V1: u8 = 1;

/// Why a handshake message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// Not decodable at all: the sender's fault (HTTP 400).
    #[error("{0}")]
    Malformed(String),
    /// Decodable but invalid under MLS: refused (MIMI `notAllowed`).
    #[error("{0}")]
    Invalid(String),
    /// Valid MLS that the room policy does not allow (MIMI `notAllowed`).
    #[error("room policy: {0}")]
    Policy(#[from] PolicyError),
    /// Our own state is unreadable: a bug or corruption.
    #[error("tracked group state: {0}")]
    Internal(String),
}

fn internal(e: impl std::fmt::Display) -> TrackError {
    TrackError::Internal(e.to_string())
}

/// One member of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub leaf: u32,
    pub client: ClientId,
    pub credential: Credential,
    pub signature_key: Vec<u8>,
}

/// A room's public group state.
pub struct Tracked {
    storage: MemoryStorage,
    group: PublicGroup,
    /// The room state decoded from the GroupContext (checked on every message).
    state: RoomState,
}

/// A commit that passed MLS validation and the room policy, not yet made durable.
pub struct StagedChange {
    /// The state after the commit.
    pub next: Tracked,
    pub before: Vec<Member>,
    pub after: Vec<Member>,
    /// Leaves whose credential is new in this commit (added, joined, or changed by
    /// an update path): the caller verifies their certificates before accepting.
    pub new_leaves: Vec<Member>,
    /// The client that committed.
    pub committer: ClientId,
    /// The epoch the commit was sent in.
    pub epoch: u64,
}

impl StagedChange {
    /// Clients in the group before but not after.
    pub fn removed(&self) -> Vec<ClientId> {
        let after: BTreeSet<_> = self.after.iter().map(|m| &m.client).collect();
        self.before
            .iter()
            .filter(|m| !after.contains(&m.client))
            .map(|m| m.client.clone())
            .collect()
    }

    /// Clients in the group after but not before.
    pub fn added(&self) -> Vec<ClientId> {
        let before: BTreeSet<_> = self.before.iter().map(|m| &m.client).collect();
        self.after
            .iter()
            .filter(|m| !before.contains(&m.client))
            .map(|m| m.client.clone())
            .collect()
    }
}

fn client_of(credential: &Credential) -> Result<ClientId, TrackError> {
    entente_core::mls::certificate_in(credential)
        .map(|c| c.claimed_client().clone())
        .map_err(|e| TrackError::Invalid(format!("a member's credential: {e}")))
}

/// Decodes an MLSMessage carrying a GroupInfo.
pub fn decode_group_info(bytes: &[u8]) -> Result<VerifiableGroupInfo, TrackError> {
    let msg = MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|e| TrackError::Malformed(format!("GroupInfo: {e}")))?;
    match msg.extract() {
        MlsMessageBodyIn::GroupInfo(gi) => Ok(gi),
        _ => Err(TrackError::Malformed(
            "expected an MLSMessage carrying a GroupInfo".into(),
        )),
    }
}

/// Decodes a ratchet tree (the `ratchet_tree` extension's data).
pub fn decode_tree(bytes: &[u8]) -> Result<RatchetTreeIn, TrackError> {
    RatchetTreeIn::tls_deserialize_exact(bytes)
        .map_err(|e| TrackError::Malformed(format!("ratchet tree: {e}")))
}

impl Tracked {
    /// Starts tracking a group from its GroupInfo and tree (both checked by
    /// OpenMLS: signatures, parent hashes, the tree hash in the GroupInfo).
    pub fn create(
        crypto: &RustCrypto,
        group_info: VerifiableGroupInfo,
        tree: RatchetTreeIn,
    ) -> Result<Self, TrackError> {
        let storage = MemoryStorage::default();
        let (group, _) = PublicGroup::from_external(
            crypto,
            &storage,
            tree,
            group_info,
            openmls::group::ProposalStore::new(),
        )
        .map_err(|e| TrackError::Invalid(format!("the group state does not verify: {e}")))?;
        if group.version() != ProtocolVersion::Mls10
            || group.ciphersuite() != entente_core::mls::CIPHERSUITE
        {
            return Err(TrackError::Invalid(format!(
                "unsupported ciphersuite {:?}",
                group.ciphersuite()
            )));
        }
        let state = room_state_in(group.group_context().extensions().iter())?;
        Ok(Tracked {
            storage,
            group,
            state,
        })
    }

    /// Restores a state from [`Tracked::snapshot`].
    pub fn restore(snapshot: &[u8], group_id: &[u8]) -> Result<Self, TrackError> {
        let mut r = snapshot;
        fn take<'a>(r: &mut &'a [u8], n: usize) -> Result<&'a [u8], TrackError> {
            if r.len() < n {
                return Err(TrackError::Internal("truncated snapshot".into()));
            }
            let (head, tail) = r.split_at(n);
            *r = tail;
            Ok(head)
        }
        fn len(r: &mut &[u8]) -> Result<usize, TrackError> {
            take(r, 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        }
        if take(&mut r, 1)? != [SNAPSHOT_V1] {
            return Err(TrackError::Internal("unknown snapshot version".into()));
        }
        let count = len(&mut r)?;
        let mut values = HashMap::with_capacity(count.min(1024));
        for _ in 0..count {
            let kl = len(&mut r)?;
            let k = take(&mut r, kl)?.to_vec();
            let vl = len(&mut r)?;
            let v = take(&mut r, vl)?.to_vec();
            values.insert(k, v);
        }
        let storage = MemoryStorage {
            values: RwLock::new(values),
        };
        let group = PublicGroup::load(&storage, &GroupId::from_slice(group_id))
            .map_err(internal)?
            .ok_or_else(|| TrackError::Internal("snapshot holds no group".into()))?;
        let state = room_state_in(group.group_context().extensions().iter())?;
        Ok(Tracked {
            storage,
            group,
            state,
        })
    }

    /// The state as bytes, for the store.
    pub fn snapshot(&self) -> Result<Vec<u8>, TrackError> {
        let values = self
            .storage
            .values
            .read()
            .map_err(|_| TrackError::Internal("storage lock poisoned".into()))?;
        let mut entries: Vec<_> = values.iter().collect();
        entries.sort();
        let len = |n: usize| -> Result<[u8; 4], TrackError> {
            u32::try_from(n)
                .map(u32::to_be_bytes)
                .map_err(|_| TrackError::Internal("snapshot entry too large".into()))
        };
        let mut out = vec![SNAPSHOT_V1];
        out.extend(len(entries.len())?);
        for (k, v) in entries {
            out.extend(len(k.len())?);
            out.extend(k);
            out.extend(len(v.len())?);
            out.extend(v);
        }
        Ok(out)
    }

    /// The MLS group id (the room URI's bytes).
    pub fn group_id(&self) -> &[u8] {
        self.group.group_id().as_slice()
    }

    pub fn epoch(&self) -> u64 {
        self.group.group_context().epoch().as_u64()
    }

    /// The members, in leaf order.
    pub fn members(&self) -> Result<Vec<Member>, TrackError> {
        self.group
            .members()
            .map(|m| {
                Ok(Member {
                    leaf: m.index.u32(),
                    client: client_of(&m.credential)?,
                    credential: m.credential,
                    signature_key: m.signature_key,
                })
            })
            .collect()
    }

    /// The room state in the GroupContext.
    pub fn room_state(&self) -> Result<RoomState, TrackError> {
        Ok(self.state.clone())
    }

    /// The room state, borrowed.
    pub fn state(&self) -> &RoomState {
        &self.state
    }

    /// The current tree, to hand to external joiners and new followers.
    pub fn ratchet_tree(&self) -> RatchetTree {
        self.group.export_ratchet_tree()
    }

    /// Checks a GroupInfo a committer sent for the epoch we are now in: same group,
    /// same epoch, same GroupContext, signed by `signer`.
    pub fn check_group_info(
        &self,
        crypto: &RustCrypto,
        bytes: &[u8],
        signer: &Member,
    ) -> Result<(), TrackError> {
        let gi = decode_group_info(bytes)?;
        let key = openmls::prelude::OpenMlsSignaturePublicKey::new(
            signer.signature_key.clone().into(),
            entente_core::mls::SIGNATURE_SCHEME,
        )
        .map_err(internal)?;
        let gi = gi
            .verify(crypto, &key)
            .map_err(|e| TrackError::Invalid(format!("the GroupInfo's signature: {e}")))?;
        let ours = self
            .group
            .group_context()
            .tls_serialize_detached()
            .map_err(internal)?;
        let theirs = gi
            .group_context()
            .tls_serialize_detached()
            .map_err(internal)?;
        if ours != theirs {
            return Err(TrackError::Invalid(
                "the GroupInfo does not describe the epoch the commit creates".into(),
            ));
        }
        Ok(())
    }

    /// Validates a standalone proposal and queues it for the next commit. Only a
    /// member's Remove of a client of its own user is accepted (leaving a room, or
    /// dropping one's own device).
    pub fn queue_proposal(
        &mut self,
        crypto: &RustCrypto,
        message: ProtocolMessage,
    ) -> Result<(), TrackError> {
        if message.epoch().as_u64() != self.epoch() {
            return Err(TrackError::Invalid(format!(
                "the proposal is for epoch {}, the room is at {}",
                message.epoch().as_u64(),
                self.epoch()
            )));
        }
        let processed = self
            .group
            .process_message(crypto, message)
            .map_err(|e| TrackError::Invalid(format!("the proposal: {e}")))?;
        let ProcessedMessageContent::ProposalMessage(queued) = processed.into_content() else {
            return Err(TrackError::Invalid("expected a proposal".into()));
        };
        let Sender::Member(sender) = queued.sender() else {
            return Err(TrackError::Invalid(
                "only members' proposals are accepted".into(),
            ));
        };
        let members = self.members()?;
        let user_at = |leaf: LeafNodeIndex| -> Result<UserId, TrackError> {
            members
                .iter()
                .find(|m| m.leaf == leaf.u32())
                .map(|m| m.client.user().clone())
                .ok_or_else(|| TrackError::Invalid(format!("no member at leaf {}", leaf.u32())))
        };
        match queued.proposal() {
            openmls::prelude::Proposal::Remove(r) if user_at(r.removed())? == user_at(*sender)? => {
            }
            _ => {
                return Err(TrackError::Invalid(
                    "only a Remove of one of your own user's clients may be sent as a standalone proposal"
                        .into(),
                ));
            }
        }
        self.group
            .add_proposal(&self.storage, *queued)
            .map_err(internal)?;
        Ok(())
    }

    /// Validates a commit against MLS and the room policy, returning the state it
    /// leads to. Nothing changes here; the caller persists `next` if it accepts.
    pub fn stage_commit(
        &self,
        crypto: &RustCrypto,
        message: ProtocolMessage,
    ) -> Result<StagedChange, TrackError> {
        let epoch = message.epoch().as_u64();
        let before = self.members()?;
        let before_state = self.room_state()?;
        let processed = self
            .group
            .process_message(crypto, message)
            .map_err(|e| TrackError::Invalid(format!("the commit: {e}")))?;
        let sender = processed.sender().clone();
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            return Err(TrackError::Invalid("expected a commit".into()));
        };
        let at = |leaf: LeafNodeIndex| before.iter().find(|m| m.leaf == leaf.u32());
        // Removals a client of the removed user proposed itself (leaving).
        let mut self_proposed = Vec::new();
        for r in staged.remove_proposals() {
            if let (Sender::Member(s), Some(removed)) =
                (r.sender(), at(r.remove_proposal().removed()))
                && let Some(proposer) = at(*s)
                && proposer.client.user() == removed.client.user()
            {
                self_proposed.push(removed.client.clone());
            }
        }
        // Apply the commit to a copy of the state.
        let copy = MemoryStorage {
            values: RwLock::new(
                self.storage
                    .values
                    .read()
                    .map_err(|_| TrackError::Internal("storage lock poisoned".into()))?
                    .clone(),
            ),
        };
        let mut group = PublicGroup::load(&copy, self.group.group_id())
            .map_err(internal)?
            .ok_or_else(|| TrackError::Internal("state vanished".into()))?;
        group.merge_commit(&copy, *staged).map_err(internal)?;
        let state = room_state_in(group.group_context().extensions().iter())?;
        let next = Tracked {
            storage: copy,
            group,
            state,
        };
        let after = next.members()?;
        let after_state = next.room_state()?;
        let (actor, committer) = match sender {
            Sender::Member(leaf) => {
                let c = at(leaf)
                    .ok_or_else(|| TrackError::Invalid("the committer is not a member".into()))?
                    .client
                    .clone();
                (Actor::Member(c.clone()), c)
            }
            Sender::NewMemberCommit => {
                // The joiner is the leaf whose credential is not in `before`.
                let joiner = after
                    .iter()
                    .find(|m| !before.iter().any(|b| b.client == m.client))
                    .ok_or_else(|| {
                        TrackError::Invalid("an external commit that adds nobody".into())
                    })?
                    .client
                    .clone();
                (Actor::ExternalJoiner(joiner.clone()), joiner)
            }
            _ => {
                return Err(TrackError::Invalid(
                    "commits must come from a member or an external joiner".into(),
                ));
            }
        };
        let clients = |ms: &[Member]| ms.iter().map(|m| m.client.clone()).collect::<Vec<_>>();
        let (before_clients, after_clients) = (clients(&before), clients(&after));
        let distinct = |ms: &[ClientId]| ms.iter().collect::<BTreeSet<_>>().len() == ms.len();
        if !distinct(&after_clients) {
            return Err(TrackError::Invalid(
                "the same client would hold two leaves".into(),
            ));
        }
        room::authorize(&Change {
            actor: &actor,
            self_proposed_removals: &self_proposed,
            before: &before_state,
            before_members: &before_clients,
            after: &after_state,
            after_members: &after_clients,
        })?;
        let new_leaves = after
            .iter()
            .filter(|m| {
                !before.iter().any(|b| {
                    b.leaf == m.leaf
                        && b.credential == m.credential
                        && b.signature_key == m.signature_key
                })
            })
            .cloned()
            .collect();
        Ok(StagedChange {
            next,
            before,
            after,
            new_leaves,
            committer,
            epoch,
        })
    }
}

/// Finds and decodes the room state extension.
pub fn room_state_in<'a>(
    mut extensions: impl Iterator<Item = &'a Extension>,
) -> Result<RoomState, TrackError> {
    let data = extensions
        .find_map(|e| match e {
            Extension::Unknown(t, u) if *t == room::ROOM_STATE_EXTENSION_TYPE => Some(&u.0),
            _ => None,
        })
        .ok_or_else(|| TrackError::Invalid("the group carries no room state".into()))?;
    RoomState::decode(data).map_err(|e| TrackError::Invalid(format!("the room state: {e}")))
}

/// Decodes an MLSMessage as a PublicMessage handshake.
pub fn protocol_message(bytes: &[u8]) -> Result<ProtocolMessage, TrackError> {
    let msg = MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|e| TrackError::Malformed(format!("MLSMessage: {e}")))?;
    match msg.extract() {
        MlsMessageBodyIn::PublicMessage(pm) => Ok(ProtocolMessage::from(pm)),
        _ => Err(TrackError::Malformed(
            "handshake messages must be PublicMessages".into(),
        )),
    }
}
