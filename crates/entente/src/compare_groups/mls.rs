//! The group key: an MLS group (RFC 9420 through OpenMLS) set up as Entente's
//! clients set theirs up: our ciphersuite, credentials carrying provider-issued
//! certificates, handshakes as PublicMessages, application messages as
//! PrivateMessages, no ratchet tree in the Welcome (it travels beside it).
//!
//! Only the members whose costs are measured are real clients with their own
//! state: the committer and a few sampled receivers (and the newcomer of an add).
//! The other members exist as leaves of the tree.
//!
//! Two trees are measured. A *full* tree, where every parent node holds a key (as
//! after every member has committed once): built by a chain in which each new
//! member joins by its Welcome and then commits the next two additions, so only
//! O(N) Welcomes are processed. A *fresh* tree, as right after one commit added
//! everyone: nearly all parent nodes are blank, so a commit encrypts its path to
//! the leaves of whole blank subtrees one by one; it shows the cost of membership changes in a newly created
//! large group until its members have committed. (Its creator then updates its
//! own leaf a few times, which leaves the tree as blank, so that members hold as
//! many past epochs as in the full tree: OpenMLS's per-message and per-commit
//! costs depend on them.)

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use entente_core::identity::IssuerKey;
use entente_core::mls::{CIPHERSUITE, SIGNATURE_SCHEME, credential_for};
use entente_wire::ids::{ClientId, Domain, UserId};
use openmls::prelude::{
    CredentialWithKey, GroupId, KeyPackage, LeafNodeIndex, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY,
    MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn,
    MlsMessageOut, OpenMlsProvider as _, ProcessedMessageContent, RatchetTreeIn,
    SenderRatchetConfiguration, StagedWelcome,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use tls_codec::{Deserialize as _, Serialize as _};

use super::{Cost, Measured, Plan, Progress, Samples};

/// How many past epochs' keys a member keeps, as Entente's clients do.
pub(crate) const MAX_PAST_EPOCHS: usize = 5;

/// Which tree the membership changes are measured on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Tree {
    /// Every parent node holds a key (a group whose members have all committed).
    Full,
    /// Right after one commit added every member: parent nodes blank.
    Fresh,
}

/// Messages and membership changes in a group of `n` on a tree of the given kind.
/// `messages` is false for the fresh tree: application messages do not depend on
/// the tree.
pub(crate) fn measure(
    n: usize,
    tree: Tree,
    messages: bool,
    plan: &Plan,
    progress: &Progress,
) -> Result<Measured> {
    let mut world = World::new()?;
    progress.step(format!("building a group of {n} ({})", tree.label()));
    let mut group = match tree {
        Tree::Full => world.full_tree(n, plan.receivers)?,
        Tree::Fresh => world.fresh_tree(n, plan.receivers)?,
    };
    progress.step(format!("add and remove, {n} members"));
    let add = group.add(&mut world, plan.changes)?;
    let remove = group.remove(plan.changes)?;
    let message = if messages {
        progress.step(format!("messages, {n} members"));
        Some(group.messages(plan.messages, plan.payload)?)
    } else {
        None
    };
    Ok(Measured {
        message,
        add,
        remove,
        message_state: group.committer.message_state_bytes(),
    })
}

impl Tree {
    fn label(self) -> &'static str {
        match self {
            Tree::Full => "full tree",
            Tree::Fresh => "fresh tree",
        }
    }
}

/// Makes members: each a client of b.example with a certified signature key.
struct World {
    issuer: IssuerKey,
    domain: Domain,
    made: usize,
}

/// One MLS client with its own storage.
struct Member {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
    group: Option<MlsGroup>,
}

/// A group under measurement: the member who commits and sends, and the sampled
/// receivers (each with its leaf index).
struct Group {
    n: usize,
    committer: Member,
    receivers: Vec<(LeafNodeIndex, Member)>,
    group_id: GroupId,
}

impl World {
    fn new() -> Result<Self> {
        let domain: Domain = "b.example".parse().context("domain")?;
        Ok(Self {
            issuer: IssuerKey::generate(domain.clone()),
            domain,
            made: 0,
        })
    }

    fn member(&mut self) -> Result<Member> {
        self.made += 1;
        let user = UserId::new(&format!("member{}", self.made), self.domain.clone())?;
        let client = ClientId::new(&user, "phone")?;
        let signer =
            SignatureKeyPair::new(SIGNATURE_SCHEME).map_err(|e| anyhow!("signature key: {e:?}"))?;
        let cert = self
            .issuer
            .certify(&client, signer.public(), 0, u64::MAX / 2)?;
        Ok(Member {
            provider: OpenMlsRustCrypto::default(),
            credential: CredentialWithKey {
                credential: credential_for(&cert),
                signature_key: signer.public().into(),
            },
            signer,
            group: None,
        })
    }

    /// A member and a KeyPackage of it (whose private keys it keeps).
    fn with_key_package(&mut self) -> Result<(Member, KeyPackage)> {
        let m = self.member()?;
        let kp = m.key_package()?;
        Ok((m, kp))
    }

    /// The full tree: member 0 creates the group; from then on the member who
    /// joined last adds the next two (one commit with a path) and, as the last of
    /// them, joins and commits next; the very last one commits updates. So the
    /// path of every even leaf has been written after its sibling joined: every
    /// parent node holds a key and no leaf is unmerged.
    fn full_tree(&mut self, n: usize, sample: usize) -> Result<Group> {
        let watched = receiver_leaves(n, sample);
        let mut current = self.member()?;
        let group_id = GroupId::from_slice(b"compare-groups");
        current.create(&group_id)?;
        let mut current_leaf = 0usize;
        let mut receivers: Vec<(LeafNodeIndex, Member)> = Vec::new();
        let mut next = 1usize;
        while next < n {
            let batch: Vec<usize> = (next..n.min(next + 2)).collect();
            next += batch.len();
            let mut joining = Vec::new();
            let mut kps = Vec::new();
            for leaf in batch {
                let (m, kp) = self.with_key_package()?;
                kps.push(kp);
                joining.push((leaf, m));
            }
            let out = current.commit(kps, None)?;
            for (_, r) in receivers.iter_mut() {
                r.process_commit(&out.commit)?;
            }
            let Some((last_leaf, mut last)) = joining.pop() else {
                bail!("bug: an empty batch");
            };
            // A watched member added beside the last one joins too.
            for (leaf, mut m) in joining {
                if watched.contains(&leaf) {
                    m.join(&out)?;
                    receivers.push((leaf_index(leaf)?, m));
                }
            }
            last.join(&out)?;
            let previous = std::mem::replace(&mut current, last);
            let previous_leaf = std::mem::replace(&mut current_leaf, last_leaf);
            if watched.contains(&previous_leaf) {
                receivers.push((leaf_index(previous_leaf)?, previous));
            }
        }
        // The last member writes its own path, and updates until it too holds as
        // many past epochs as the others (OpenMLS's costs depend on them).
        for _ in 0..MAX_PAST_EPOCHS.max(1) {
            let out = current.commit(Vec::new(), None)?;
            for (_, r) in receivers.iter_mut() {
                r.process_commit(&out.commit)?;
            }
        }
        if current_leaf != n - 1 {
            bail!(
                "bug: the last committer is leaf {current_leaf}, not {}",
                n - 1
            );
        }
        Ok(Group {
            n,
            committer: current,
            receivers,
            group_id,
        })
    }

    /// The fresh tree: member 0 adds everyone else in one commit; the measured
    /// committer is the last leaf, which joined by that commit's Welcome.
    fn fresh_tree(&mut self, n: usize, sample: usize) -> Result<Group> {
        let watched = receiver_leaves(n, sample);
        let mut creator = self.member()?;
        let group_id = GroupId::from_slice(b"compare-groups");
        creator.create(&group_id)?;
        let mut members = Vec::with_capacity(n - 1);
        let mut kps = Vec::with_capacity(n - 1);
        for leaf in 1..n {
            let (m, kp) = self.with_key_package()?;
            kps.push(kp);
            members.push((leaf, m));
        }
        let out = creator.commit(kps, None)?;
        let mut receivers = Vec::new();
        let mut committer = None;
        for (leaf, mut m) in members {
            if leaf == n - 1 {
                m.join(&out)?;
                committer = Some(m);
            } else if watched.contains(&leaf) {
                m.join(&out)?;
                receivers.push((leaf_index(leaf)?, m));
            }
        }
        let mut committer = committer.context("bug: no last member")?;
        // The creator updates its own leaf until every member keeps as many past
        // epochs as in an established group. Its path was set already, so the
        // rest of the tree stays blank.
        for _ in 0..MAX_PAST_EPOCHS {
            let out = creator.commit(Vec::new(), None)?;
            committer.process_commit(&out.commit)?;
            for (_, r) in receivers.iter_mut() {
                r.process_commit(&out.commit)?;
            }
        }
        if watched.contains(&0) {
            receivers.insert(0, (leaf_index(0)?, creator));
        }
        Ok(Group {
            n,
            committer,
            receivers,
            group_id,
        })
    }
}

/// The leaves whose members are measured as receivers: up to `sample`, spread over
/// the tree, never the last leaf (the committer's).
fn receiver_leaves(n: usize, sample: usize) -> Vec<usize> {
    let others = n.saturating_sub(1);
    let k = sample.clamp(1, others.max(1));
    let mut v: Vec<usize> = (0..k).map(|i| i * others / k).collect();
    v.dedup();
    v.retain(|l| *l < others);
    v
}

fn leaf_index(leaf: usize) -> Result<LeafNodeIndex> {
    Ok(LeafNodeIndex::new(u32::try_from(leaf)?))
}

/// A commit as it goes out: the Commit, and for adds the Welcome and the ratchet
/// tree the newcomer needs (Entente sends it beside the Welcome).
struct CommitOut {
    commit: Vec<u8>,
    welcome: Option<Vec<u8>>,
    tree: Option<Vec<u8>>,
}

impl CommitOut {
    fn bytes(&self) -> u64 {
        (self.commit.len()
            + self.welcome.as_ref().map_or(0, Vec::len)
            + self.tree.as_ref().map_or(0, Vec::len)) as u64
    }
}

fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .use_ratchet_tree_extension(false)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(100, 1000))
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(false)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(100, 1000))
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build()
}

fn encode(m: &MlsMessageOut) -> Result<Vec<u8>> {
    m.tls_serialize_detached()
        .context("encoding an MLS message")
}

impl Member {
    fn key_package(&self) -> Result<KeyPackage> {
        let bundle = KeyPackage::builder()
            .build(
                CIPHERSUITE,
                &self.provider,
                &self.signer,
                self.credential.clone(),
            )
            .context("creating a KeyPackage")?;
        Ok(bundle.key_package().clone())
    }

    fn create(&mut self, group_id: &GroupId) -> Result<()> {
        let g = MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &create_config(),
            group_id.clone(),
            self.credential.clone(),
        )
        .context("creating the group")?;
        self.group = Some(g);
        Ok(())
    }

    /// Commits the adds (or the removal), with a path, and merges it.
    fn commit(
        &mut self,
        adds: Vec<KeyPackage>,
        remove: Option<LeafNodeIndex>,
    ) -> Result<CommitOut> {
        let provider = &self.provider;
        let signer = &self.signer;
        let group = self.group.as_mut().context("bug: not in the group")?;
        let bundle = group
            .commit_builder()
            .propose_adds(adds)
            .propose_removals(remove)
            .force_self_update(true)
            .load_psks(provider.storage())
            .context("loading PSKs")?
            .build(provider.rand(), provider.crypto(), signer, |_| true)
            .context("building a commit")?
            .stage_commit(provider)
            .context("staging a commit")?;
        let welcome = bundle.to_welcome_msg().map(|w| encode(&w)).transpose()?;
        let commit = encode(bundle.commit())?;
        let tree = match welcome {
            Some(_) => {
                let tree = group
                    .pending_commit()
                    .context("bug: no pending commit")?
                    .export_ratchet_tree(provider.crypto(), group.export_ratchet_tree())
                    .context("exporting the tree")?
                    .context("bug: the pending commit has no tree")?;
                Some(tree.tls_serialize_detached().context("encoding the tree")?)
            }
            None => None,
        };
        group
            .merge_pending_commit(provider)
            .context("merging our commit")?;
        Ok(CommitOut {
            commit,
            welcome,
            tree,
        })
    }

    fn process_commit(&mut self, bytes: &[u8]) -> Result<()> {
        let provider = &self.provider;
        let group = self.group.as_mut().context("bug: not in the group")?;
        let msg = MlsMessageIn::tls_deserialize_exact(bytes).context("decoding a commit")?;
        let processed = group
            .process_message(provider, msg.try_into_protocol_message()?)
            .context("processing a commit")?;
        match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => group
                .merge_staged_commit(provider, *staged)
                .context("merging a commit"),
            _ => bail!("bug: expected a commit"),
        }
    }

    fn join(&mut self, out: &CommitOut) -> Result<()> {
        let (Some(welcome), Some(tree)) = (&out.welcome, &out.tree) else {
            bail!("bug: a commit without a Welcome");
        };
        let welcome = match MlsMessageIn::tls_deserialize_exact(welcome.as_slice())
            .context("decoding a Welcome")?
            .extract()
        {
            MlsMessageBodyIn::Welcome(w) => w,
            _ => bail!("bug: expected a Welcome"),
        };
        let tree =
            RatchetTreeIn::tls_deserialize_exact(tree.as_slice()).context("decoding a tree")?;
        let group =
            StagedWelcome::new_from_welcome(&self.provider, &join_config(), welcome, Some(tree))
                .context("processing a Welcome")?
                .into_group(&self.provider)
                .context("joining")?;
        self.group = Some(group);
        Ok(())
    }

    fn send(&mut self, payload: &[u8]) -> Result<Vec<u8>> {
        let provider = &self.provider;
        let signer = &self.signer;
        let group = self.group.as_mut().context("bug: not in the group")?;
        let m = group
            .create_message(provider, signer, payload)
            .context("encrypting a message")?;
        encode(&m)
    }

    fn receive(&mut self, bytes: &[u8]) -> Result<usize> {
        let provider = &self.provider;
        let group = self.group.as_mut().context("bug: not in the group")?;
        let msg = MlsMessageIn::tls_deserialize_exact(bytes).context("decoding a message")?;
        let processed = group
            .process_message(provider, msg.try_into_protocol_message()?)
            .context("decrypting a message")?;
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(m) => Ok(m.into_bytes().len()),
            _ => bail!("bug: expected an application message"),
        }
    }

    /// Bytes of the message-secrets store OpenMLS keeps in storage (and rewrites
    /// after every message sent or received): the epoch's secret tree and the
    /// past epochs' secrets with their member lists.
    fn message_state_bytes(&self) -> Option<u64> {
        let values = self.provider.storage().values.read().ok()?;
        let total: usize = values
            .iter()
            .filter(|(k, _)| k.starts_with(b"MessageSecrets"))
            .map(|(_, v)| v.len())
            .sum();
        (total > 0).then_some(total as u64)
    }

    /// The member's whole storage, to put back after a measured change.
    fn snapshot(&self) -> Result<HashMap<Vec<u8>, Vec<u8>>> {
        Ok(self
            .provider
            .storage()
            .values
            .read()
            .map_err(|_| anyhow!("storage lock poisoned"))?
            .clone())
    }

    fn restore(&mut self, saved: &HashMap<Vec<u8>, Vec<u8>>, group_id: &GroupId) -> Result<()> {
        *self
            .provider
            .storage()
            .values
            .write()
            .map_err(|_| anyhow!("storage lock poisoned"))? = saved.clone();
        self.group = Some(
            MlsGroup::load(self.provider.storage(), group_id)
                .map_err(|e| anyhow!("reloading the group: {e:?}"))?
                .context("bug: the group is not in the restored storage")?,
        );
        Ok(())
    }
}

impl Group {
    fn snapshot(&self) -> Result<Vec<HashMap<Vec<u8>, Vec<u8>>>> {
        std::iter::once(&self.committer)
            .chain(self.receivers.iter().map(|(_, m)| m))
            .map(Member::snapshot)
            .collect()
    }

    fn restore(&mut self, saved: &[HashMap<Vec<u8>, Vec<u8>>]) -> Result<()> {
        let gid = self.group_id.clone();
        let members =
            std::iter::once(&mut self.committer).chain(self.receivers.iter_mut().map(|(_, m)| m));
        for (m, s) in members.zip(saved) {
            m.restore(s, &gid)?;
        }
        Ok(())
    }

    /// Adding one member: the committer fetches its KeyPackage and commits (Commit,
    /// Welcome, tree); every member processes the Commit; the newcomer processes the
    /// Welcome. Each repetition starts from the same state.
    fn add(&mut self, world: &mut World, reps: usize) -> Result<Cost> {
        let saved = self.snapshot()?;
        let mut sender = Samples::default();
        let mut receiver = Samples::default();
        let mut newcomer = Samples::default();
        let mut cost = Cost::default();
        for _ in 0..reps.max(1) {
            let (mut new, kp) = world.with_key_package()?;
            let kp_len = kp.tls_serialize_detached()?.len() as u64;
            let t = Instant::now();
            let out = self.committer.commit(vec![kp], None)?;
            sender.push(t.elapsed());
            for (_, r) in self.receivers.iter_mut() {
                let t = Instant::now();
                r.process_commit(&out.commit)?;
                receiver.push(t.elapsed());
            }
            let t = Instant::now();
            new.join(&out)?;
            newcomer.push(t.elapsed());
            let welcome = out.welcome.as_ref().map_or(0, Vec::len) as u64;
            let tree = out.tree.as_ref().map_or(0, Vec::len) as u64;
            cost.sent = out.bytes();
            // The Commit to every other member, the Welcome and the tree to the
            // newcomer, the KeyPackage to the committer.
            cost.delivered =
                out.commit.len() as u64 * (self.n as u64 - 1) + welcome + tree + kp_len;
            self.restore(&saved)?;
        }
        cost.sender_us = sender.median_us();
        cost.senders = 1;
        cost.receiver_us = receiver.median_us();
        cost.receivers = self.n as u64 - 1;
        cost.newcomer_us = newcomer.median_us();
        Ok(cost)
    }

    /// Removing one member: the committer commits the removal; every remaining
    /// member processes it.
    fn remove(&mut self, reps: usize) -> Result<Cost> {
        let sampled: Vec<usize> = self.receivers.iter().map(|(l, _)| l.usize()).collect();
        let victim = (0..self.n - 1)
            .rev()
            .find(|l| !sampled.contains(l))
            .or_else(|| sampled.last().copied());
        let Some(victim) = victim else {
            // A group of one: nobody to remove.
            return Ok(Cost::default());
        };
        let victim = leaf_index(victim)?;
        let saved = self.snapshot()?;
        let mut sender = Samples::default();
        let mut receiver = Samples::default();
        let mut cost = Cost::default();
        for _ in 0..reps.max(1) {
            let t = Instant::now();
            let out = self.committer.commit(Vec::new(), Some(victim))?;
            sender.push(t.elapsed());
            for (l, r) in self.receivers.iter_mut() {
                if *l == victim {
                    continue;
                }
                let t = Instant::now();
                r.process_commit(&out.commit)?;
                receiver.push(t.elapsed());
            }
            cost.sent = out.bytes();
            cost.delivered = out.commit.len() as u64 * (self.n as u64 - 2);
            self.restore(&saved)?;
        }
        cost.sender_us = sender.median_us();
        cost.senders = 1;
        cost.receiver_us = receiver.median_us();
        cost.receivers = self.n as u64 - 2;
        Ok(cost)
    }

    /// `count` application messages from the committer, each decrypted by every
    /// sampled receiver.
    fn messages(&mut self, count: usize, payload: usize) -> Result<Cost> {
        let plaintext = vec![0x42u8; payload];
        let mut sender = Samples::default();
        let mut receiver = Samples::default();
        let mut bytes = 0u64;
        let count = count.max(1);
        for _ in 0..count {
            let t = Instant::now();
            let m = self.committer.send(&plaintext)?;
            sender.push(t.elapsed());
            bytes += m.len() as u64;
            for (_, r) in self.receivers.iter_mut() {
                let t = Instant::now();
                let len = r.receive(&m)?;
                receiver.push(t.elapsed());
                if len != payload {
                    bail!("bug: decrypted {len} bytes, sent {payload}");
                }
            }
        }
        let sent = bytes / count as u64;
        Ok(Cost {
            sent,
            delivered: sent * (self.n as u64 - 1),
            sender_us: sender.mean_us(),
            senders: 1,
            receiver_us: receiver.mean_us(),
            receivers: self.n as u64 - 1,
            newcomer_us: 0.0,
        })
    }
}
