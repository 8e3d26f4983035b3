//! Client-side MLS group operations against group size: plain OpenMLS next to
//! OpenMLS as Entente uses it.
//!
//! ```text
//! cargo bench -p entente-client --bench mls_groups
//! ENTENTE_BENCH_10K=1 cargo bench -p entente-client --bench mls_groups   # adds 10,000
//! ENTENTE_BENCH_DIR=/some/dir ...   # where the databases go (default: a temporary directory)
//! ```
//!
//! Two flavours run the same MLS operations with the same group configuration
//! (Entente's ciphersuite, mixed wire-format policy, no ratchet tree extension, the
//! tree sent beside the Welcome, five past epochs):
//!
//! - `plain`: OpenMLS's RustCrypto provider with its in-memory storage, plain
//!   `BasicCredential`s, the group kept in memory between operations.
//! - `entente`: credentials carrying provider-signed certificates, verified as the
//!   client verifies them; the client's SQLite database (`entente_client::store`)
//!   on disk; each operation loads the group from the database and runs in the
//!   transaction the client runs it in. The sequence of calls mirrors
//!   `src/rooms.rs` (`invite`, `process_item`/`apply_fanout`, `queue_message`);
//!   MIMI framing around the MLS messages is left out (one more encoding of the
//!   same bytes).
//!
//! Operations, for a group of N members (built once per N, one commit from the
//! creator adding everyone; only three members have real state):
//!
//! - `commit_create`: a member adds one new member: KeyPackage validation, commit,
//!   Welcome, GroupInfo and the ratchet tree for the newcomer (no merge).
//! - `commit_merge`: that member merges its commit once the hub accepted it.
//! - `commit_process`: another member processes that commit and merges it.
//! - `join_welcome`: the newcomer joins from the Welcome and the tree.
//! - `app_encrypt` / `app_decrypt`: one application message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark harness"
)]

use std::cell::OnceCell;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use entente_client::store::{self, MlsProvider};
use entente_core::identity::{ClientCertificate, IssuerKey, IssuerPublicKey};
use entente_core::mls::{CIPHERSUITE, SIGNATURE_SCHEME};
use entente_wire::content::MimiContent;
use entente_wire::ids::{ClientId, Domain, UserId};
use openmls::prelude::{
    BasicCredential, Capabilities, Credential, CredentialWithKey, ExtensionType, GroupId,
    KeyPackage, KeyPackageIn, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY, MlsGroup, MlsGroupCreateConfig,
    MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut, OpenMlsProvider,
    ProcessedMessageContent, ProtocolMessage, ProtocolVersion, RatchetTreeIn, Sender,
    SenderRatchetConfiguration, StagedWelcome, Welcome,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::{OpenMlsRustCrypto, RustCrypto};
use rusqlite::{Connection, OptionalExtension, params};
use tls_codec::{Deserialize as _, Serialize as _};

const DOMAIN: &str = "bench.example";
const ROOM: &str = "mimi://bench.example/r/bench";

fn sizes() -> Vec<usize> {
    let mut sizes = vec![10, 100, 1000];
    if std::env::var("ENTENTE_BENCH_10K").is_ok_and(|v| v == "1") {
        sizes.push(10_000);
    }
    sizes
}

fn mls_groups(c: &mut Criterion) {
    // The databases live on disk, where the client keeps them: what a commit costs
    // depends on the file system's fsync. ENTENTE_BENCH_DIR picks the directory
    // (kept afterwards, to inspect); by default a temporary one.
    let tmp = tempfile::tempdir().unwrap();
    let scratch = match std::env::var_os("ENTENTE_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => tmp.path().to_owned(),
    };
    for n in sizes() {
        let plain: OnceCell<Fixture<Snapshot>> = OnceCell::new();
        let entente: OnceCell<EntenteFixture> = OnceCell::new();
        let plain = || plain.get_or_init(|| build_plain(n));
        let entente = || entente.get_or_init(|| build_entente(n, &scratch));
        let setup = |g: &mut criterion::BenchmarkGroup<'_, _>| {
            g.sample_size(10);
            g.warm_up_time(Duration::from_millis(if n >= 1000 { 500 } else { 1000 }));
            g.measurement_time(Duration::from_secs(match n {
                0..=100 => 3,
                101..=1000 => 5,
                _ => 10,
            }));
        };

        let mut g = c.benchmark_group("commit_create");
        setup(&mut g);
        g.bench_function(BenchmarkId::new("plain", n), |b| {
            let fx = plain();
            b.iter_batched(
                || fx.creator.provider_and_group(&fx.group_id),
                |(p, mut group)| {
                    let w = plain_commit(&p, &mut group, &fx.creator.signer, &fx.wire.joiner_kp);
                    (p, group, w)
                },
                BatchSize::PerIteration,
            );
        });
        g.bench_function(BenchmarkId::new("entente", n), |b| {
            let fx = entente();
            b.iter_batched(
                || fx.copy(&fx.inner.creator),
                |db| {
                    let w = fx.commit(&db, &fx.inner.creator.signer);
                    (db, w)
                },
                BatchSize::PerIteration,
            );
        });
        g.finish();

        let mut g = c.benchmark_group("commit_merge");
        setup(&mut g);
        g.bench_function(BenchmarkId::new("plain", n), |b| {
            let fx = plain();
            b.iter_batched(
                || {
                    let p = OpenMlsRustCrypto::default();
                    *p.storage().values.write().unwrap() = fx.creator_pending.clone();
                    let group = MlsGroup::load(p.storage(), &fx.group_id).unwrap().unwrap();
                    (p, group)
                },
                |(p, mut group)| {
                    group.merge_pending_commit(&p).unwrap();
                    (p, group)
                },
                BatchSize::PerIteration,
            );
        });
        g.bench_function(BenchmarkId::new("entente", n), |b| {
            let fx = entente();
            b.iter_batched(
                || fx.copy_file(&fx.inner.creator_pending),
                |db| {
                    fx.merge_own_commit(&db);
                    db
                },
                BatchSize::PerIteration,
            );
        });
        g.finish();

        let mut g = c.benchmark_group("commit_process");
        setup(&mut g);
        g.bench_function(BenchmarkId::new("plain", n), |b| {
            let fx = plain();
            b.iter_batched(
                || fx.receiver.provider_and_group(&fx.group_id),
                |(p, mut group)| {
                    plain_process_commit(&p, &mut group, &fx.wire.commit);
                    (p, group)
                },
                BatchSize::PerIteration,
            );
        });
        g.bench_function(BenchmarkId::new("entente", n), |b| {
            let fx = entente();
            b.iter_batched(
                || fx.copy(&fx.inner.receiver),
                |db| {
                    fx.process_commit(&db, &fx.inner.wire.commit);
                    db
                },
                BatchSize::PerIteration,
            );
        });
        g.finish();

        let mut g = c.benchmark_group("join_welcome");
        setup(&mut g);
        g.bench_function(BenchmarkId::new("plain", n), |b| {
            let fx = plain();
            b.iter_batched(
                || fx.joiner.provider(),
                |p| {
                    let group = plain_join(&p, &fx.wire.welcome, &fx.wire.tree);
                    (p, group)
                },
                BatchSize::PerIteration,
            );
        });
        g.bench_function(BenchmarkId::new("entente", n), |b| {
            let fx = entente();
            b.iter_batched(
                || fx.copy(&fx.inner.joiner),
                |db| {
                    fx.join(&db, &fx.inner.wire.welcome, &fx.inner.wire.tree);
                    db
                },
                BatchSize::PerIteration,
            );
        });
        g.finish();

        let mut g = c.benchmark_group("app_encrypt");
        setup(&mut g);
        g.bench_function(BenchmarkId::new("plain", n), |b| {
            let fx = plain();
            let (p, mut group) = fx.creator.provider_and_group(&fx.group_id);
            let payload = payload();
            b.iter(|| plain_encrypt(&p, &mut group, &fx.creator.signer, &payload));
        });
        g.bench_function(BenchmarkId::new("entente", n), |b| {
            let fx = entente();
            let db = fx.copy(&fx.inner.creator);
            let payload = payload();
            b.iter(|| fx.encrypt(&db, &fx.inner.creator.signer, &payload));
        });
        g.finish();

        let mut g = c.benchmark_group("app_decrypt");
        setup(&mut g);
        g.bench_function(BenchmarkId::new("plain", n), |b| {
            let fx = plain();
            let (sp, mut sender) = fx.creator.provider_and_group(&fx.group_id);
            let (rp, mut receiver) = fx.receiver.provider_and_group(&fx.group_id);
            let payload = payload();
            b.iter_batched(
                || plain_encrypt(&sp, &mut sender, &fx.creator.signer, &payload),
                |msg| plain_decrypt(&rp, &mut receiver, &msg),
                BatchSize::SmallInput,
            );
        });
        g.bench_function(BenchmarkId::new("entente", n), |b| {
            let fx = entente();
            let sender = fx.copy(&fx.inner.creator);
            let receiver = fx.copy(&fx.inner.receiver);
            let payload = payload();
            b.iter_batched(
                || fx.encrypt(&sender, &fx.inner.creator.signer, &payload),
                |msg| fx.decrypt(&receiver, &msg),
                BatchSize::SmallInput,
            );
        });
        g.finish();
    }
}

criterion_group!(benches, mls_groups);
criterion_main!(benches);

// ------------------------------------------------------------------ fixtures

/// A group of N members at epoch 1, and what happens next: the creator's commit
/// adding one more member, with its Welcome and tree.
struct Fixture<S> {
    group_id: GroupId,
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
    plain_join(receiver.provider, &first.welcome, &first.tree);

    let joiner_kp = key_package(
        joiner.provider,
        joiner.signer,
        joiner.credential,
        capabilities,
    )
    .tls_serialize_detached()
    .unwrap();
    let mut wire = plain_commit(creator.provider, &mut group, creator.signer, &joiner_kp);
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

// ------------------------------------------------------------------- plain

type Snapshot = HashMap<Vec<u8>, Vec<u8>>;

impl Member<Snapshot> {
    fn provider(&self) -> OpenMlsRustCrypto {
        let p = OpenMlsRustCrypto::default();
        *p.storage().values.write().unwrap() = self.state.clone();
        p
    }

    fn provider_and_group(&self, group_id: &GroupId) -> (OpenMlsRustCrypto, MlsGroup) {
        let p = self.provider();
        let group = MlsGroup::load(p.storage(), group_id).unwrap().unwrap();
        (p, group)
    }
}

fn snapshot(p: &OpenMlsRustCrypto) -> Snapshot {
    p.storage().values.read().unwrap().clone()
}

fn plain_credential(name: String) -> (SignatureKeyPair, CredentialWithKey) {
    let signer = SignatureKeyPair::new(SIGNATURE_SCHEME).unwrap();
    let credential = CredentialWithKey {
        credential: BasicCredential::new(name.into_bytes()).into(),
        signature_key: signer.public().into(),
    };
    (signer, credential)
}

fn build_plain(n: usize) -> Fixture<Snapshot> {
    let (a, b, x) = (
        OpenMlsRustCrypto::default(),
        OpenMlsRustCrypto::default(),
        OpenMlsRustCrypto::default(),
    );
    let (sa, ca) = plain_credential("member 0".into());
    let (sb, cb) = plain_credential("member 1".into());
    let (sx, cx) = plain_credential("newcomer".into());
    let party = |provider, signer, credential| Party {
        provider,
        signer,
        credential,
    };
    let wire = build_group(
        n,
        &Capabilities::builder().build(),
        party(&a, &sa, ca),
        party(&b, &sb, cb),
        party(&x, &sx, cx),
        &OpenMlsRustCrypto::default(),
        |i| plain_credential(format!("member {i}")),
    );
    let creator_pending = snapshot(&a);
    forget_commit(&a);
    Fixture {
        group_id: group_id(),
        creator_pending,
        creator: Member {
            signer: sa,
            state: snapshot(&a),
        },
        receiver: Member {
            signer: sb,
            state: snapshot(&b),
        },
        joiner: Member {
            signer: sx,
            state: snapshot(&x),
        },
        wire,
    }
}

fn plain_commit(
    provider: &impl OpenMlsProvider,
    group: &mut MlsGroup,
    signer: &SignatureKeyPair,
    kp: &[u8],
) -> Wire {
    let kp = KeyPackageIn::tls_deserialize_exact(kp)
        .unwrap()
        .validate(provider.crypto(), ProtocolVersion::Mls10)
        .unwrap();
    add_members(provider, group, signer, vec![kp])
}

fn plain_process_commit(provider: &impl OpenMlsProvider, group: &mut MlsGroup, commit: &[u8]) {
    let processed = group
        .process_message(provider, decode_protocol(commit))
        .unwrap();
    let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
        panic!("not a commit");
    };
    group.merge_staged_commit(provider, *staged).unwrap();
}

fn plain_join(provider: &impl OpenMlsProvider, welcome: &[u8], tree: &[u8]) -> MlsGroup {
    let (welcome, tree) = decode_welcome(welcome, tree);
    StagedWelcome::new_from_welcome(provider, &join_config(), welcome, Some(tree))
        .unwrap()
        .into_group(provider)
        .unwrap()
}

fn plain_encrypt(
    provider: &impl OpenMlsProvider,
    group: &mut MlsGroup,
    signer: &SignatureKeyPair,
    payload: &[u8],
) -> Vec<u8> {
    group
        .create_message(provider, signer, payload)
        .unwrap()
        .tls_serialize_detached()
        .unwrap()
}

fn plain_decrypt(provider: &impl OpenMlsProvider, group: &mut MlsGroup, msg: &[u8]) -> Vec<u8> {
    let processed = group
        .process_message(provider, decode_protocol(msg))
        .unwrap();
    let ProcessedMessageContent::ApplicationMessage(app) = processed.into_content() else {
        panic!("not an application message");
    };
    app.into_bytes()
}

// ------------------------------------------------------------------ entente

/// The entente fixture: each member's state is a database file, copied for each
/// iteration.
struct EntenteFixture {
    inner: Fixture<PathBuf>,
    crypto: RustCrypto,
    scratch: PathBuf,
}

/// A copy of a member's database, removed when dropped.
struct Db {
    conn: Option<Connection>,
    path: PathBuf,
}

impl Db {
    fn conn(&self) -> &Connection {
        self.conn.as_ref().unwrap()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        drop(self.conn.take());
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

static COPIES: AtomicU64 = AtomicU64::new(0);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn entente_credential(
    issuer: &IssuerKey,
    name: &str,
) -> (SignatureKeyPair, CredentialWithKey, ClientCertificate) {
    let signer = SignatureKeyPair::new(SIGNATURE_SCHEME).unwrap();
    let user = UserId::new(name, DOMAIN.parse().unwrap()).unwrap();
    let client = ClientId::new(&user, "laptop").unwrap();
    let now = now_secs();
    let cert = issuer
        .certify(&client, signer.public(), now - 3600, now + 30 * 86_400)
        .unwrap();
    let credential = CredentialWithKey {
        credential: entente_core::mls::credential_for(&cert),
        signature_key: signer.public().into(),
    };
    (signer, credential, cert)
}

/// A member database as the client sets it up: schema, the pinned issuer key.
fn entente_db(path: &Path, issuer: &IssuerPublicKey) -> Connection {
    let conn = store::open(path).unwrap();
    conn.execute(
        "INSERT INTO issuers (domain, key, first_seen) VALUES (?1, ?2, ?3)",
        params![DOMAIN, issuer.to_bytes().to_vec(), now_secs() as i64],
    )
    .unwrap();
    conn
}

fn build_entente(n: usize, scratch: &Path) -> EntenteFixture {
    let crypto = RustCrypto::default();
    let issuer = IssuerKey::generate(DOMAIN.parse().unwrap());
    let dir = scratch.join(format!("fixture-{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    let paths = ["creator", "receiver", "joiner"].map(|m| dir.join(format!("{m}.db")));
    let conns = paths.clone().map(|p| entente_db(&p, &issuer.public()));
    // Rooms the creator and the receiver are in (the joiner is not yet).
    for (conn, epoch) in [(&conns[0], 0), (&conns[1], 1)] {
        conn.execute(
            "INSERT INTO rooms (room, joined_at, joined_epoch) VALUES (?1, ?2, ?3)",
            params![ROOM, now_secs() as i64, epoch],
        )
        .unwrap();
    }
    let (sa, ca, _) = entente_credential(&issuer, "member0");
    let (sb, cb, _) = entente_credential(&issuer, "member1");
    let (sx, cx, _) = entente_credential(&issuer, "newcomer");
    // The fixture is built fast, in one transaction per database; the benchmarks
    // then use the transactions the client uses.
    for conn in &conns {
        conn.execute_batch("BEGIN").unwrap();
    }
    let wire = {
        let providers = [0, 1, 2].map(|i| MlsProvider::new(&crypto, &conns[i]));
        let party = |provider, signer, credential| Party {
            provider,
            signer,
            credential,
        };
        build_group(
            n,
            // As `keys.rs` builds KeyPackages.
            &Capabilities::builder()
                .extensions(vec![ExtensionType::LastResort])
                .build(),
            party(&providers[0], &sa, ca),
            party(&providers[1], &sb, cb),
            party(&providers[2], &sx, cx),
            &OpenMlsRustCrypto::default(),
            |i| {
                let (s, c, _) = entente_credential(&issuer, &format!("member{i}"));
                (s, c)
            },
        )
    };
    for conn in &conns {
        conn.execute_batch("COMMIT").unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let creator_pending = dir.join("creator-pending.db");
    std::fs::copy(&paths[0], &creator_pending).unwrap();
    forget_commit(&MlsProvider::new(&crypto, &conns[0]));
    drop(conns);
    let [pa, pb, px] = paths;
    EntenteFixture {
        inner: Fixture {
            group_id: group_id(),
            creator_pending,
            creator: Member {
                signer: sa,
                state: pa,
            },
            receiver: Member {
                signer: sb,
                state: pb,
            },
            joiner: Member {
                signer: sx,
                state: px,
            },
            wire,
        },
        crypto,
        scratch: dir,
    }
}

impl EntenteFixture {
    /// A fresh copy of a member's database, opened as the client opens it.
    fn copy(&self, member: &Member<PathBuf>) -> Db {
        self.copy_file(&member.state)
    }

    fn copy_file(&self, template: &Path) -> Db {
        let i = COPIES.fetch_add(1, Ordering::Relaxed);
        let path = self.scratch.join(format!("copy-{i}.db"));
        std::fs::copy(template, &path).unwrap();
        Db {
            conn: Some(store::open(&path).unwrap()),
            path,
        }
    }

    fn provider<'a>(&'a self, db: &'a Db) -> MlsProvider<'a> {
        MlsProvider::new(&self.crypto, db.conn())
    }

    fn load(&self, db: &Db) -> MlsGroup {
        MlsGroup::load(self.provider(db).storage(), &self.inner.group_id)
            .unwrap()
            .unwrap()
    }

    /// `invite`'s local work, up to the request for the hub.
    fn commit(&self, db: &Db, signer: &SignatureKeyPair) -> Wire {
        let provider = self.provider(db);
        // The clients already in the room.
        let members = self.member_clients(db);
        // `claim_key_packages`: validate, verify the credential.
        let kp = KeyPackageIn::tls_deserialize_exact(self.inner.wire.joiner_kp.as_slice())
            .unwrap()
            .validate(&self.crypto, ProtocolVersion::Mls10)
            .unwrap();
        let cert = self.verify_leaf(
            db,
            kp.leaf_node().credential(),
            kp.leaf_node().signature_key().as_slice(),
        );
        assert!(!members.contains(cert.client()));
        let mut group = self.load(db);
        add_members(&provider, &mut group, signer, vec![kp])
    }

    /// `invite` after the hub accepted the commit: merge it (outside a transaction,
    /// as `invite` does).
    fn merge_own_commit(&self, db: &Db) {
        let mut group = self.load(db);
        group.merge_pending_commit(&self.provider(db)).unwrap();
    }

    /// `process_item` + `apply_fanout` for a commit.
    fn process_commit(&self, db: &Db, commit: &[u8]) {
        let conn = db.conn();
        let provider = self.provider(db);
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let msg = decode_protocol(commit);
        let joined = self.joined_epoch(conn);
        assert!(msg.epoch().as_u64() >= joined);
        let mut group = self.load(db);
        let processed = group.process_message(&provider, msg).unwrap();
        self.verify_sender(db, &group, processed.sender());
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            panic!("not a commit");
        };
        for add in staged.add_proposals() {
            let leaf = add.add_proposal().key_package().leaf_node();
            self.verify_leaf(db, leaf.credential(), leaf.signature_key().as_slice());
        }
        group.merge_staged_commit(&provider, *staged).unwrap();
        black_box(self.members(db));
        self.finish_item(conn);
    }

    /// `process_item` + `apply_fanout` for a Welcome.
    fn join(&self, db: &Db, welcome: &[u8], tree: &[u8]) {
        let conn = db.conn();
        let provider = self.provider(db);
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let (welcome, tree) = decode_welcome(welcome, tree);
        let staged =
            StagedWelcome::new_from_welcome(&provider, &join_config(), welcome, Some(tree))
                .unwrap();
        assert_eq!(
            staged.group_context().group_id().as_slice(),
            ROOM.as_bytes()
        );
        for m in staged.members() {
            self.verify_leaf(db, &m.credential, &m.signature_key);
        }
        let group = staged.into_group(&provider).unwrap();
        conn.execute(
            "INSERT OR IGNORE INTO rooms (room, joined_at, joined_epoch) VALUES (?1, ?2, ?3)",
            params![ROOM, now_secs() as i64, group.epoch().as_u64() as i64],
        )
        .unwrap();
        black_box(self.members(db));
        self.finish_item(conn);
    }

    /// `queue_message`: encrypt, store the history and outbox rows.
    fn encrypt(&self, db: &Db, signer: &SignatureKeyPair, payload: &[u8]) -> Vec<u8> {
        let conn = db.conn();
        let provider = self.provider(db);
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut group = self.load(db);
        let msg = group
            .create_message(&provider, signer, payload)
            .unwrap()
            .tls_serialize_detached()
            .unwrap();
        let id = COPIES
            .fetch_add(1, Ordering::Relaxed)
            .to_be_bytes()
            .to_vec();
        conn.execute(
            "INSERT OR IGNORE INTO history (room, message_id, sender_client, sender_user, hub_timestamp, content, outgoing)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
            params![ROOM, id, "mimi://bench.example/d/member0/laptop", "mimi://bench.example/u/member0", 0, payload],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO outbox (room, request, created_at, message_id) VALUES (?1, ?2, ?3, ?4)",
            params![ROOM, msg, now_secs() as i64, id],
        )
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
        msg
    }

    /// `process_item` + `apply_fanout` for an application message.
    fn decrypt(&self, db: &Db, msg: &[u8]) {
        let conn = db.conn();
        let provider = self.provider(db);
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let msg = decode_protocol(msg);
        let joined = self.joined_epoch(conn);
        assert!(msg.epoch().as_u64() >= joined);
        let mut group = self.load(db);
        let processed = group.process_message(&provider, msg).unwrap();
        let cert = self.verify_sender(db, &group, processed.sender()).unwrap();
        let ProcessedMessageContent::ApplicationMessage(app) = processed.into_content() else {
            panic!("not an application message");
        };
        let bytes = app.into_bytes();
        let content = MimiContent::decode(&bytes).unwrap();
        let mid = *content
            .message_id(&cert.client().user().to_string(), ROOM)
            .unwrap()
            .as_bytes();
        conn.execute(
            "INSERT OR IGNORE INTO history (room, message_id, sender_client, sender_user, hub_timestamp, content, outgoing)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
            params![ROOM, mid.to_vec(), cert.client().to_string(), cert.client().user().to_string(), 0, bytes],
        )
        .unwrap();
        self.finish_item(conn);
    }

    fn joined_epoch(&self, conn: &Connection) -> u64 {
        conn.query_row(
            "SELECT joined_epoch FROM rooms WHERE room = ?1",
            params![ROOM],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .unwrap()
        .unwrap_or(0) as u64
    }

    /// The inbox cursor moves and the item's transaction commits.
    fn finish_item(&self, conn: &Connection) {
        conn.execute(
            "INSERT INTO settings (key, value) VALUES ('inbox_cursor', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![COPIES.fetch_add(1, Ordering::Relaxed).to_string()],
        )
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }

    fn verify_sender(
        &self,
        db: &Db,
        group: &MlsGroup,
        sender: &Sender,
    ) -> Option<ClientCertificate> {
        let Sender::Member(i) = sender else {
            return None;
        };
        let m = group.member_at(*i).unwrap();
        Some(self.verify_leaf(db, &m.credential, &m.signature_key))
    }

    /// As `rooms.rs` `verify_leaf_sync`.
    fn verify_leaf(
        &self,
        db: &Db,
        credential: &Credential,
        signature_key: &[u8],
    ) -> ClientCertificate {
        let unverified = entente_core::mls::certificate_in(credential).unwrap();
        let domain = unverified.claimed_client().domain().clone();
        let issuer = pinned_issuer(db.conn(), &domain).unwrap();
        entente_core::mls::verify_credential(credential, signature_key, &issuer, now_secs())
            .unwrap()
    }

    /// As `rooms.rs` `member_clients_in`.
    fn member_clients(&self, db: &Db) -> Vec<ClientId> {
        self.load(db)
            .members()
            .map(|m| {
                entente_core::mls::certificate_in(&m.credential)
                    .unwrap()
                    .claimed_client()
                    .clone()
            })
            .collect()
    }

    /// As `rooms.rs` `members_in`.
    fn members(&self, db: &Db) -> Vec<UserId> {
        let mut users: Vec<UserId> = self
            .member_clients(db)
            .iter()
            .map(|c| c.user().clone())
            .collect();
        users.sort_by_key(|u| u.to_string());
        users.dedup();
        users
    }
}

/// As `lib.rs` `Client::pinned_issuer`.
fn pinned_issuer(conn: &Connection, domain: &Domain) -> Option<IssuerPublicKey> {
    let key: Option<Vec<u8>> = conn
        .query_row(
            "SELECT key FROM issuers WHERE domain = ?1",
            params![domain.as_str()],
            |r| r.get(0),
        )
        .optional()
        .unwrap();
    key.map(|k| IssuerPublicKey::from_bytes(domain.clone(), &k).unwrap())
}
