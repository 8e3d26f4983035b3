//! Client-side MLS group operations against group size: plain OpenMLS next to
//! OpenMLS as Entente uses it.
//!
//! ```text
//! cargo bench -p entente-client --bench mls_groups
//! ENTENTE_BENCH_10K=1 cargo bench ...       # adds groups of 10,000
//! ENTENTE_BENCH_BASELINE=1 cargo bench ...  # entente as rooms.rs did it (see entente.rs)
//! ENTENTE_BENCH_DIR=/some/dir cargo bench ...  # where the databases go (kept)
//! ```
//!
//! Two flavours run the same MLS operations with the same group configuration
//! (Entente's ciphersuite, mixed wire-format policy, no ratchet tree extension: the
//! tree travels beside the Welcome, five past epochs):
//!
//! - `plain` ([`plain`]): OpenMLS's RustCrypto provider with its in-memory storage,
//!   plain `BasicCredential`s, each group kept in memory.
//! - `entente` ([`entente`]): credentials carrying provider-signed certificates,
//!   verified as the client verifies them; the client's SQLite database on disk
//!   (`entente_client::store`), each operation in the transaction the client runs
//!   it in.
//!
//! Operations, for a group of N members (built once per N by one commit from the
//! creator adding everyone; only three members have real state):
//!
//! - `commit_create`: a member adds one new member: KeyPackage validation, commit,
//!   Welcome, GroupInfo and the ratchet tree for the newcomer (no merge).
//! - `commit_merge`: that member merges its commit once the hub accepted it.
//! - `commit_process`: another member processes that commit and merges it.
//! - `join_welcome`: the newcomer joins from the Welcome and the tree.
//! - `app_encrypt` / `app_decrypt`: one application message.
//! - `group_load`: decoding a group from storage (what the first operation on a
//!   group after the client starts pays, and, in the baseline, every operation).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark harness"
)]

mod entente;
mod plain;

use std::cell::OnceCell;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main,
};
use entente_core::mls::CIPHERSUITE;
use entente_wire::content::MimiContent;
use openmls::prelude::{
    Capabilities, CredentialWithKey, GroupId, KeyPackage, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY,
    MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn,
    MlsMessageOut, OpenMlsProvider, ProtocolMessage, RatchetTreeIn, SenderRatchetConfiguration,
    Welcome,
};
use openmls_basic_credential::SignatureKeyPair;
use tls_codec::{Deserialize as _, Serialize as _};

const DOMAIN: &str = "bench.example";
const ROOM: &str = "mimi://bench.example/r/bench";

fn sizes() -> Vec<usize> {
    let mut sizes = vec![10, 100, 1000];
    if env_flag("ENTENTE_BENCH_10K") {
        sizes.push(10_000);
    }
    sizes
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

fn mls_groups(c: &mut Criterion) {
    // The databases live on disk, where the client keeps them: a commit costs an
    // fsync. ENTENTE_BENCH_DIR picks the directory (kept afterwards, to inspect).
    let tmp = tempfile::tempdir().unwrap();
    let scratch = match std::env::var_os("ENTENTE_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => tmp.path().to_owned(),
    };
    let baseline = env_flag("ENTENTE_BENCH_BASELINE");
    for n in sizes() {
        // Built on first use, so that a filtered run builds only what it needs.
        let plain = OnceCell::new();
        let entente = OnceCell::new();
        let plain = || plain.get_or_init(|| plain::build(n));
        let entente = || entente.get_or_init(|| entente::build(n, &scratch, baseline));
        let id = |flavour: &str| BenchmarkId::new(flavour, n);

        let mut g = group(c, "commit_create", n);
        g.bench_function(id("plain"), |b| {
            let fx = plain();
            b.iter_batched(
                || fx.creator.provider_and_group(),
                |(p, mut group)| {
                    let w = plain::commit(&p, &mut group, &fx.creator.signer, &fx.wire.joiner_kp);
                    (p, group, w)
                },
                BatchSize::PerIteration,
            );
        });
        g.bench_function(id("entente"), |b| {
            let fx = entente();
            b.iter_batched(
                || fx.device(&fx.inner.creator.state, true),
                |dev| {
                    let w = fx.commit(&dev, &fx.inner.creator.signer);
                    (dev, w)
                },
                BatchSize::PerIteration,
            );
        });
        g.finish();

        let mut g = group(c, "commit_merge", n);
        g.bench_function(id("plain"), |b| {
            let fx = plain();
            b.iter_batched(
                || plain::provider_and_group(&fx.creator_pending),
                |(p, mut group)| {
                    group.merge_pending_commit(&p).unwrap();
                    (p, group)
                },
                BatchSize::PerIteration,
            );
        });
        g.bench_function(id("entente"), |b| {
            let fx = entente();
            b.iter_batched(
                || fx.device(&fx.inner.creator_pending, true),
                |dev| {
                    fx.merge_own_commit(&dev);
                    dev
                },
                BatchSize::PerIteration,
            );
        });
        g.finish();

        let mut g = group(c, "commit_process", n);
        g.bench_function(id("plain"), |b| {
            let fx = plain();
            b.iter_batched(
                || fx.receiver.provider_and_group(),
                |(p, mut group)| {
                    plain::process_commit(&p, &mut group, &fx.wire.commit);
                    (p, group)
                },
                BatchSize::PerIteration,
            );
        });
        g.bench_function(id("entente"), |b| {
            let fx = entente();
            b.iter_batched(
                || fx.device(&fx.inner.receiver.state, true),
                |dev| {
                    fx.process_commit(&dev, &fx.inner.wire.commit);
                    dev
                },
                BatchSize::PerIteration,
            );
        });
        g.finish();

        let mut g = group(c, "join_welcome", n);
        g.bench_function(id("plain"), |b| {
            let fx = plain();
            b.iter_batched(
                || fx.joiner.provider(),
                |p| {
                    let group = plain::join(&p, &fx.wire.welcome, &fx.wire.tree);
                    (p, group)
                },
                BatchSize::PerIteration,
            );
        });
        g.bench_function(id("entente"), |b| {
            let fx = entente();
            b.iter_batched(
                || fx.device(&fx.inner.joiner.state, false),
                |dev| {
                    fx.join(&dev, &fx.inner.wire.welcome, &fx.inner.wire.tree);
                    dev
                },
                BatchSize::PerIteration,
            );
        });
        g.finish();

        let mut g = group(c, "app_encrypt", n);
        g.bench_function(id("plain"), |b| {
            let fx = plain();
            let (p, mut group) = fx.creator.provider_and_group();
            let payload = payload();
            b.iter(|| plain::encrypt(&p, &mut group, &fx.creator.signer, &payload));
        });
        g.bench_function(id("entente"), |b| {
            let fx = entente();
            let dev = fx.device(&fx.inner.creator.state, true);
            let payload = payload();
            b.iter(|| fx.encrypt(&dev, &fx.inner.creator.signer, &payload));
        });
        g.finish();

        let mut g = group(c, "app_decrypt", n);
        g.bench_function(id("plain"), |b| {
            let fx = plain();
            let (sp, mut sender) = fx.creator.provider_and_group();
            let (rp, mut receiver) = fx.receiver.provider_and_group();
            let payload = payload();
            b.iter_batched(
                || plain::encrypt(&sp, &mut sender, &fx.creator.signer, &payload),
                |msg| plain::decrypt(&rp, &mut receiver, &msg),
                BatchSize::SmallInput,
            );
        });
        g.bench_function(id("entente"), |b| {
            let fx = entente();
            let sender = fx.device(&fx.inner.creator.state, true);
            let receiver = fx.device(&fx.inner.receiver.state, true);
            let payload = payload();
            b.iter_batched(
                || fx.encrypt(&sender, &fx.inner.creator.signer, &payload),
                |msg| fx.decrypt(&receiver, &msg),
                BatchSize::SmallInput,
            );
        });
        g.finish();

        let mut g = group(c, "group_load", n);
        g.bench_function(id("plain"), |b| {
            let fx = plain();
            let p = fx.receiver.provider();
            b.iter(|| black_box(MlsGroup::load(p.storage(), &group_id()).unwrap()));
        });
        g.bench_function(id("entente"), |b| {
            let fx = entente();
            let dev = fx.device(&fx.inner.receiver.state, false);
            b.iter(|| black_box(fx.load(&dev)));
        });
        g.finish();
    }
}

/// Few samples, and short times for large groups: a run of the default sizes takes
/// a few minutes.
fn group<'c>(c: &'c mut Criterion, name: &str, n: usize) -> BenchmarkGroup<'c, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(if n >= 1000 { 500 } else { 1000 }));
    g.measurement_time(Duration::from_secs(match n {
        0..=100 => 3,
        101..=1000 => 5,
        _ => 10,
    }));
    g
}

criterion_group!(benches, mls_groups);
criterion_main!(benches);

// ------------------------------------------------------------------ fixtures

/// A group of N members at epoch 1, and what happens next: the creator's commit
/// adding one more member, with its Welcome and tree.
struct Fixture<S> {
    /// Leaf 0: created the group, makes the commits, sends messages.
    creator: Member<S>,
    /// The creator's state with its commit adding the joiner pending.
    creator_pending: S,
    /// Leaf 1: processes commits, receives messages.
    receiver: Member<S>,
    /// Not yet a member: joins from `wire.welcome`.
    joiner: Member<S>,
    wire: Wire,
}

/// A member's signature key and a snapshot of its storage.
struct Member<S> {
    signer: SignatureKeyPair,
    state: S,
}

/// What one commit adding a member puts on the wire.
struct Wire {
    commit: Vec<u8>,
    welcome: Vec<u8>,
    tree: Vec<u8>,
    /// The new member's KeyPackage, as claimed from its provider.
    joiner_kp: Vec<u8>,
}

/// Entente's group configuration, as `rooms.rs` `create_config`/`join_config`.
fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .use_ratchet_tree_extension(false)
        .max_past_epochs(5)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(100, 1000))
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(false)
        .max_past_epochs(5)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(100, 1000))
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build()
}

fn group_id() -> GroupId {
    GroupId::from_slice(ROOM.as_bytes())
}

fn payload() -> Vec<u8> {
    MimiContent::text(
        "A benchmark message of an ordinary length, about eighty bytes.",
        false,
        [7; 16],
    )
    .encode()
}

struct Party<'a, P> {
    provider: &'a P,
    signer: &'a SignatureKeyPair,
    credential: CredentialWithKey,
}

/// Builds the group: `creator` adds `receiver` and `n - 2` others in one commit,
/// `receiver` joins, then `creator` makes the commit adding `joiner` (and keeps it
/// pending).
fn build_group<P: OpenMlsProvider, O: OpenMlsProvider>(
    n: usize,
    capabilities: &Capabilities,
    creator: Party<'_, P>,
    receiver: Party<'_, P>,
    joiner: Party<'_, P>,
    others: &O,
    mut other: impl FnMut(usize) -> (SignatureKeyPair, CredentialWithKey),
) -> Wire {
    let mut group = MlsGroup::new_with_group_id(
        creator.provider,
        creator.signer,
        &create_config(),
        group_id(),
        creator.credential,
    )
    .unwrap();
    let mut kps = vec![key_package(
        receiver.provider,
        receiver.signer,
        receiver.credential,
        capabilities,
    )];
    for i in 2..n {
        let (signer, credential) = other(i);
        kps.push(key_package(others, &signer, credential, capabilities));
    }
    let first = add_members(creator.provider, &mut group, creator.signer, kps);
    group.merge_pending_commit(creator.provider).unwrap();
    plain::join(receiver.provider, &first.welcome, &first.tree);

    let joiner_kp = key_package(
        joiner.provider,
        joiner.signer,
        joiner.credential,
        capabilities,
    )
    .tls_serialize_detached()
    .unwrap();
    let mut wire = plain::commit(creator.provider, &mut group, creator.signer, &joiner_kp);
    wire.joiner_kp = joiner_kp;
    wire
}

/// Drops the creator's pending commit (kept in `Fixture::creator_pending`).
fn forget_commit(provider: &impl OpenMlsProvider) {
    MlsGroup::load(provider.storage(), &group_id())
        .unwrap()
        .unwrap()
        .clear_pending_commit(provider.storage())
        .unwrap();
}

fn key_package(
    provider: &impl OpenMlsProvider,
    signer: &SignatureKeyPair,
    credential: CredentialWithKey,
    capabilities: &Capabilities,
) -> KeyPackage {
    KeyPackage::builder()
        .leaf_node_capabilities(capabilities.clone())
        .build(CIPHERSUITE, provider, signer, credential)
        .unwrap()
        .key_package()
        .clone()
}

/// The commit `invite` makes: adds, a path (forced self-update), the GroupInfo,
/// and the tree of the new epoch for the newcomers.
fn add_members(
    provider: &impl OpenMlsProvider,
    group: &mut MlsGroup,
    signer: &SignatureKeyPair,
    kps: Vec<KeyPackage>,
) -> Wire {
    let bundle = group
        .commit_builder()
        .propose_adds(kps)
        .force_self_update(true)
        .load_psks(provider.storage())
        .unwrap()
        .create_group_info(true)
        .build(provider.rand(), provider.crypto(), signer, |_| true)
        .unwrap()
        .stage_commit(provider)
        .unwrap();
    let welcome = bundle.to_welcome_msg().unwrap();
    let (commit, _, group_info) = bundle.into_contents();
    let group_info: MlsMessageOut = group_info.unwrap().into();
    let tree = group
        .pending_commit()
        .unwrap()
        .export_ratchet_tree(provider.crypto(), group.export_ratchet_tree())
        .unwrap()
        .unwrap();
    black_box(group_info.tls_serialize_detached().unwrap());
    Wire {
        commit: commit.tls_serialize_detached().unwrap(),
        welcome: welcome.tls_serialize_detached().unwrap(),
        tree: tree.tls_serialize_detached().unwrap(),
        joiner_kp: Vec::new(),
    }
}

fn decode_welcome(welcome: &[u8], tree: &[u8]) -> (Welcome, RatchetTreeIn) {
    let MlsMessageBodyIn::Welcome(w) = MlsMessageIn::tls_deserialize_exact(welcome)
        .unwrap()
        .extract()
    else {
        panic!("not a Welcome");
    };
    (w, RatchetTreeIn::tls_deserialize_exact(tree).unwrap())
}

fn decode_protocol(bytes: &[u8]) -> ProtocolMessage {
    MlsMessageIn::tls_deserialize_exact(bytes)
        .unwrap()
        .try_into_protocol_message()
        .unwrap()
}
