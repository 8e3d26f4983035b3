//! The `entente` flavour: OpenMLS as the client uses it.
//!
//! Credentials carry certificates from the provider's issuer key, verified as the
//! client verifies them; state is the client's SQLite database on disk
//! (`entente_client::store`: WAL, `synchronous = FULL`, OpenMLS's values in JSON);
//! each operation runs in the transaction the client runs it in, and does what
//! `rooms.rs` does around the MLS call (MIMI framing aside: one more encoding of
//! the same bytes).
//!
//! Two paths:
//! - by default, the client with the changes of `notes-bench.md`: groups kept
//!   decoded between operations ([`store::GroupCache`]), credentials verified with
//!   a [`CredentialVerifier`] against the pinned issuer keys read once, the member
//!   list taken from the group in hand, every operation one transaction. A
//!   running client has its groups decoded already, so the per-iteration copies
//!   start with the group cached; `group_load` is what decoding costs.
//! - with `ENTENTE_BENCH_BASELINE=1`, what `rooms.rs` did before: a load of the
//!   group per operation (two when it lists the members), one issuer query and
//!   one decode-and-verify per leaf, the commit and its merge outside any
//!   transaction (one fsync per write).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use entente_client::store::{self, GroupCache, MlsProvider};
use entente_core::identity::{ClientCertificate, IssuerKey, IssuerPublicKey};
use entente_core::mls::{CredentialVerifier, SIGNATURE_SCHEME};
use entente_wire::content::MimiContent;
use entente_wire::ids::{ClientId, Domain, UserId};
use openmls::prelude::{
    Capabilities, Credential, CredentialWithKey, ExtensionType, KeyPackage, KeyPackageIn,
    Member as MlsMember, MlsGroup, OpenMlsProvider, ProcessedMessageContent, ProtocolVersion,
    Sender, StagedWelcome,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::{OpenMlsRustCrypto, RustCrypto};
use rusqlite::{Connection, OptionalExtension, params};
use tls_codec::{Deserialize as _, Serialize as _};

use crate::{
    DOMAIN, Fixture, Member, Party, ROOM, Wire, add_members, build_group, decode_protocol,
    decode_welcome, forget_commit, group_id, join_config,
};

/// Each member's state is a database file, copied for each iteration.
pub struct EntenteFixture {
    pub inner: Fixture<PathBuf>,
    crypto: RustCrypto,
    scratch: PathBuf,
    baseline: bool,
}

/// One device: a copy of a member's database, and what a running client keeps
/// in memory. The copy is removed when dropped.
pub struct Device {
    conn: Option<Connection>,
    path: PathBuf,
    groups: RefCell<GroupCache>,
    verifier: RefCell<CredentialVerifier>,
}

impl Device {
    fn conn(&self) -> &Connection {
        self.conn.as_ref().unwrap()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        drop(self.conn.take());
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Numbers file copies, message ids and inbox cursors.
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn next() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn credential(issuer: &IssuerKey, name: &str) -> (SignatureKeyPair, CredentialWithKey) {
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
    (signer, credential)
}

/// A member database as the client sets it up: schema, the pinned issuer key.
fn database(path: &Path, issuer: &IssuerPublicKey) -> Connection {
    let conn = store::open(path).unwrap();
    conn.execute(
        "INSERT INTO issuers (domain, key, first_seen) VALUES (?1, ?2, ?3)",
        params![DOMAIN, issuer.to_bytes().to_vec(), now_secs() as i64],
    )
    .unwrap();
    conn
}

pub fn build(n: usize, scratch: &Path, baseline: bool) -> EntenteFixture {
    let crypto = RustCrypto::default();
    let issuer = IssuerKey::generate(DOMAIN.parse().unwrap());
    let dir = scratch.join(format!("fixture-{n}"));
    // Left by an earlier run in ENTENTE_BENCH_DIR.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let paths = ["creator", "receiver", "joiner"].map(|m| dir.join(format!("{m}.db")));
    let conns = paths.clone().map(|p| database(&p, &issuer.public()));
    // The rooms the creator and the receiver are in (the joiner is not yet).
    for (conn, epoch) in [(&conns[0], 0), (&conns[1], 1)] {
        conn.execute(
            "INSERT INTO rooms (room, joined_at, joined_epoch) VALUES (?1, ?2, ?3)",
            params![ROOM, now_secs() as i64, epoch],
        )
        .unwrap();
    }
    let (sa, ca) = credential(&issuer, "member0");
    let (sb, cb) = credential(&issuer, "member1");
    let (sx, cx) = credential(&issuer, "newcomer");
    // Built in one transaction per database, to be quick.
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
            |i| credential(&issuer, &format!("member{i}")),
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
            creator: Member {
                signer: sa,
                state: pa,
            },
            creator_pending,
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
        baseline,
    }
}

impl EntenteFixture {
    /// A device with a fresh copy of `template`, opened as the client opens it;
    /// with `warm`, its group already decoded (as in a running client).
    pub fn device(&self, template: &Path, warm: bool) -> Device {
        let path = self.scratch.join(format!("copy-{}.db", next()));
        std::fs::copy(template, &path).unwrap();
        let dev = Device {
            conn: Some(store::open(&path).unwrap()),
            path,
            groups: RefCell::new(GroupCache::new()),
            verifier: RefCell::new(CredentialVerifier::new()),
        };
        if warm && !self.baseline {
            dev.groups
                .borrow_mut()
                .transaction(dev.conn(), |tx| {
                    tx.group(&group_id()).map(|g| assert!(g.is_some()))
                })
                .unwrap();
        }
        dev
    }

    fn provider<'a>(&'a self, conn: &'a Connection) -> MlsProvider<'a> {
        MlsProvider::new(&self.crypto, conn)
    }

    /// Decodes the group from the database.
    pub fn load(&self, dev: &Device) -> MlsGroup {
        MlsGroup::load(self.provider(dev.conn()).storage(), &group_id())
            .unwrap()
            .unwrap()
    }

    /// `invite`'s local work, up to the request for the hub: the members already
    /// in the room, the claimed KeyPackage validated and its credential verified,
    /// the commit.
    pub fn commit(&self, dev: &Device, signer: &SignatureKeyPair) -> Wire {
        let kp = || {
            KeyPackageIn::tls_deserialize_exact(self.inner.wire.joiner_kp.as_slice())
                .unwrap()
                .validate(&self.crypto, ProtocolVersion::Mls10)
                .unwrap()
        };
        if self.baseline {
            let members = self.baseline_member_clients(dev);
            let kp = kp();
            let cert = self.baseline_verify_leaf(
                dev,
                kp.leaf_node().credential(),
                kp.leaf_node().signature_key().as_slice(),
            );
            assert!(!members.contains(cert.client()));
            let mut group = self.load(dev);
            return add_members(&self.provider(dev.conn()), &mut group, signer, vec![kp]);
        }
        self.transaction(dev, |tx, verifier| {
            let provider = self.provider(tx.conn());
            let issuers = store::pinned_issuers(tx.conn())?;
            let kp = kp();
            let cert = verify_leaf(verifier, &issuers, &kp);
            let group = tx.group(&group_id())?.unwrap();
            assert!(!member_clients(group).contains(cert.client()));
            Ok(add_members(&provider, group, signer, vec![kp]))
        })
    }

    /// `invite` once the hub accepted the commit.
    pub fn merge_own_commit(&self, dev: &Device) {
        if self.baseline {
            let mut group = self.load(dev);
            group
                .merge_pending_commit(&self.provider(dev.conn()))
                .unwrap();
            return;
        }
        self.transaction(dev, |tx, _| {
            let provider = self.provider(tx.conn());
            let group = tx.group(&group_id())?.unwrap();
            group.merge_pending_commit(&provider).unwrap();
            Ok(())
        });
    }

    /// `process_item` + `apply_fanout` for a commit.
    pub fn process_commit(&self, dev: &Device, commit: &[u8]) {
        if self.baseline {
            return self.baseline_process_commit(dev, commit);
        }
        self.transaction(dev, |tx, verifier| {
            let conn = tx.conn();
            let provider = self.provider(conn);
            let msg = decode_protocol(commit);
            assert!(msg.epoch().as_u64() >= joined_epoch(conn));
            let issuers = store::pinned_issuers(conn)?;
            let group = tx.group(&group_id())?.unwrap();
            let processed = group.process_message(&provider, msg).unwrap();
            verify_sender(verifier, &issuers, group, processed.sender());
            let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content()
            else {
                panic!("not a commit");
            };
            let adds: Vec<KeyPackage> = staged
                .add_proposals()
                .map(|a| a.add_proposal().key_package().clone())
                .collect();
            verifier
                .verify_all(
                    adds.iter().map(|kp| {
                        (
                            kp.leaf_node().credential(),
                            kp.leaf_node().signature_key().as_slice(),
                        )
                    }),
                    &issuers,
                    now_secs(),
                )
                .unwrap();
            group.merge_staged_commit(&provider, *staged).unwrap();
            black_box(member_users(group));
            move_cursor(conn);
            Ok(())
        });
    }

    /// `process_item` + `apply_fanout` for a Welcome.
    pub fn join(&self, dev: &Device, welcome: &[u8], tree: &[u8]) {
        if self.baseline {
            return self.baseline_join(dev, welcome, tree);
        }
        self.transaction(dev, |tx, verifier| {
            let conn = tx.conn();
            let provider = self.provider(conn);
            let (welcome, tree) = decode_welcome(welcome, tree);
            let staged =
                StagedWelcome::new_from_welcome(&provider, &join_config(), welcome, Some(tree))
                    .unwrap();
            assert_eq!(
                staged.group_context().group_id().as_slice(),
                ROOM.as_bytes()
            );
            let issuers = store::pinned_issuers(conn)?;
            let members: Vec<MlsMember> = staged.members().collect();
            let certs = verifier
                .verify_all(
                    members
                        .iter()
                        .map(|m| (&m.credential, m.signature_key.as_slice())),
                    &issuers,
                    now_secs(),
                )
                .unwrap();
            let group = staged.into_group(&provider).unwrap();
            conn.execute(
                "INSERT OR IGNORE INTO rooms (room, joined_at, joined_epoch) VALUES (?1, ?2, ?3)",
                params![ROOM, now_secs() as i64, group.epoch().as_u64() as i64],
            )
            .unwrap();
            tx.insert(group);
            black_box(users(certs.iter().map(|c| c.client().clone())));
            move_cursor(conn);
            Ok(())
        });
    }

    /// `queue_message`: encrypt, store the history and outbox rows.
    pub fn encrypt(&self, dev: &Device, signer: &SignatureKeyPair, payload: &[u8]) -> Vec<u8> {
        let encrypt = |conn: &Connection, group: &mut MlsGroup| {
            let msg = group
                .create_message(&self.provider(conn), signer, payload)
                .unwrap()
                .tls_serialize_detached()
                .unwrap();
            let id = next().to_be_bytes().to_vec();
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
            msg
        };
        if self.baseline {
            let conn = dev.conn();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            let msg = encrypt(conn, &mut self.load(dev));
            conn.execute_batch("COMMIT").unwrap();
            return msg;
        }
        self.transaction(dev, |tx, _| {
            let conn = tx.conn();
            let group = tx.group(&group_id())?.unwrap();
            Ok(encrypt(conn, group))
        })
    }

    /// `process_item` + `apply_fanout` for an application message.
    pub fn decrypt(&self, dev: &Device, msg: &[u8]) {
        let store_message = |conn: &Connection, cert: ClientCertificate, bytes: Vec<u8>| {
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
            move_cursor(conn);
        };
        let msg = decode_protocol(msg);
        if self.baseline {
            let conn = dev.conn();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            assert!(msg.epoch().as_u64() >= joined_epoch(conn));
            let mut group = self.load(dev);
            let processed = group.process_message(&self.provider(conn), msg).unwrap();
            let cert = self
                .baseline_verify_sender(dev, &group, processed.sender())
                .unwrap();
            let ProcessedMessageContent::ApplicationMessage(app) = processed.into_content() else {
                panic!("not an application message");
            };
            store_message(conn, cert, app.into_bytes());
            conn.execute_batch("COMMIT").unwrap();
            return;
        }
        self.transaction(dev, |tx, verifier| {
            let conn = tx.conn();
            assert!(msg.epoch().as_u64() >= joined_epoch(conn));
            let issuers = store::pinned_issuers(conn)?;
            let group = tx.group(&group_id())?.unwrap();
            let processed = group.process_message(&self.provider(conn), msg).unwrap();
            let cert = verify_sender(verifier, &issuers, group, processed.sender()).unwrap();
            let ProcessedMessageContent::ApplicationMessage(app) = processed.into_content() else {
                panic!("not an application message");
            };
            store_message(conn, cert, app.into_bytes());
            Ok(())
        });
    }

    /// One operation in the device's cached transaction.
    fn transaction<T>(
        &self,
        dev: &Device,
        f: impl FnOnce(
            &mut store::CachedTransaction<'_>,
            &mut CredentialVerifier,
        ) -> Result<T, entente_client::ClientError>,
    ) -> T {
        let mut verifier = dev.verifier.borrow_mut();
        dev.groups
            .borrow_mut()
            .transaction(dev.conn(), |tx| f(tx, &mut verifier))
            .unwrap()
    }

    // ------------------------------------------------ as rooms.rs did it

    fn baseline_process_commit(&self, dev: &Device, commit: &[u8]) {
        let conn = dev.conn();
        let provider = self.provider(conn);
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let msg = decode_protocol(commit);
        assert!(msg.epoch().as_u64() >= joined_epoch(conn));
        let mut group = self.load(dev);
        let processed = group.process_message(&provider, msg).unwrap();
        self.baseline_verify_sender(dev, &group, processed.sender());
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            panic!("not a commit");
        };
        for add in staged.add_proposals() {
            let leaf = add.add_proposal().key_package().leaf_node();
            self.baseline_verify_leaf(dev, leaf.credential(), leaf.signature_key().as_slice());
        }
        group.merge_staged_commit(&provider, *staged).unwrap();
        // `members_in` loads the group again.
        black_box(users(self.baseline_member_clients(dev)));
        move_cursor(conn);
        conn.execute_batch("COMMIT").unwrap();
    }

    fn baseline_join(&self, dev: &Device, welcome: &[u8], tree: &[u8]) {
        let conn = dev.conn();
        let provider = self.provider(conn);
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
            self.baseline_verify_leaf(dev, &m.credential, &m.signature_key);
        }
        let group = staged.into_group(&provider).unwrap();
        conn.execute(
            "INSERT OR IGNORE INTO rooms (room, joined_at, joined_epoch) VALUES (?1, ?2, ?3)",
            params![ROOM, now_secs() as i64, group.epoch().as_u64() as i64],
        )
        .unwrap();
        black_box(users(self.baseline_member_clients(dev)));
        move_cursor(conn);
        conn.execute_batch("COMMIT").unwrap();
    }

    fn baseline_verify_sender(
        &self,
        dev: &Device,
        group: &MlsGroup,
        sender: &Sender,
    ) -> Option<ClientCertificate> {
        let Sender::Member(i) = sender else {
            return None;
        };
        let m = group.member_at(*i).unwrap();
        Some(self.baseline_verify_leaf(dev, &m.credential, &m.signature_key))
    }

    /// `verify_leaf_sync`: decode, one query for the issuer key, verify.
    fn baseline_verify_leaf(
        &self,
        dev: &Device,
        credential: &Credential,
        signature_key: &[u8],
    ) -> ClientCertificate {
        let unverified = entente_core::mls::certificate_in(credential).unwrap();
        let domain = unverified.claimed_client().domain().clone();
        let issuer = pinned_issuer(dev.conn(), &domain).unwrap();
        entente_core::mls::verify_credential(credential, signature_key, &issuer, now_secs())
            .unwrap()
    }

    /// `member_clients_in`: loads the group and decodes every certificate.
    fn baseline_member_clients(&self, dev: &Device) -> Vec<ClientId> {
        member_clients(&self.load(dev))
    }
}

fn verify_leaf(
    verifier: &mut CredentialVerifier,
    issuers: &HashMap<Domain, IssuerPublicKey>,
    kp: &KeyPackage,
) -> ClientCertificate {
    verifier
        .verify(
            kp.leaf_node().credential(),
            kp.leaf_node().signature_key().as_slice(),
            issuers,
            now_secs(),
        )
        .unwrap()
}

fn verify_sender(
    verifier: &mut CredentialVerifier,
    issuers: &HashMap<Domain, IssuerPublicKey>,
    group: &MlsGroup,
    sender: &Sender,
) -> Option<ClientCertificate> {
    let Sender::Member(i) = sender else {
        return None;
    };
    let m = group.member_at(*i).unwrap();
    Some(
        verifier
            .verify(&m.credential, &m.signature_key, issuers, now_secs())
            .unwrap(),
    )
}

/// The clients in a group, from their (already verified) certificates.
fn member_clients(group: &MlsGroup) -> Vec<ClientId> {
    group
        .members()
        .map(|m| {
            entente_core::mls::certificate_in(&m.credential)
                .unwrap()
                .claimed_client()
                .clone()
        })
        .collect()
}

fn member_users(group: &MlsGroup) -> Vec<UserId> {
    users(member_clients(group))
}

/// `members_in`'s list: the users, sorted, once each.
fn users(clients: impl IntoIterator<Item = ClientId>) -> Vec<UserId> {
    let mut users: Vec<UserId> = clients.into_iter().map(|c| c.user().clone()).collect();
    users.sort_by_key(|u| u.to_string());
    users.dedup();
    users
}

fn joined_epoch(conn: &Connection) -> u64 {
    conn.query_row(
        "SELECT joined_epoch FROM rooms WHERE room = ?1",
        params![ROOM],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .unwrap()
    .unwrap_or(0) as u64
}

/// The inbox cursor moves with the item.
fn move_cursor(conn: &Connection) {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES ('inbox_cursor', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![next().to_string()],
    )
    .unwrap();
}

/// `Client::pinned_issuer`.
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
