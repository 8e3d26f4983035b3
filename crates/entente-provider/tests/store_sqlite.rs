//! The SQLite store against the `Store` contract, on real files in a temp dir.

// clippy's allow-*-in-tests covers `#[test]` functions, not this file's helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use entente_provider::store::sqlite::{KEY_PACKAGE_ROUTE_TTL_SECS, SqliteStore};
use entente_provider::store::{
    Batch, BatchOutcome, ClientRecord, Dedup, Delivery, EpochCheck, GroupSnapshot, KeyPackageRoute,
    NewOutbound, RoomRecord, Store, StoreError,
};
use tempfile::TempDir;

const ROOM: &str = "mimi://a.example/r/room";
const HUB: &str = "a.example";

struct Fixture {
    dir: TempDir,
    store: SqliteStore,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
        Self { dir, store }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("store.db")
    }

    /// Closes the store and opens the file again.
    fn reopen(self) -> Self {
        let Self { dir, store } = self;
        drop(store);
        let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
        Self { dir, store }
    }

    /// `alice` with `n` clients `alice/0`.., and a room `ROOM` they are all in.
    fn with_room(n: usize) -> Self {
        let f = Self::new();
        f.store.create_account(&record("alice", "alice/0")).unwrap();
        for i in 1..n {
            let code = [i as u8; 32];
            f.store.put_link_code("alice", &code, 100).unwrap();
            let client = format!("alice/{i}");
            f.store
                .add_client(&record("alice", &client), &code, 10)
                .unwrap();
        }
        f.store
            .create_room(&room(0), "alice/0", &group_of(&room(0)))
            .unwrap();
        for i in 1..n {
            let batch = Batch {
                room_clients_add: vec![(ROOM.into(), format!("alice/{i}"))],
                ..Batch::default()
            };
            f.store.apply(batch).unwrap();
        }
        f
    }

    fn count(&self, table: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.path()).unwrap();
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }
}

fn record(user: &str, client: &str) -> ClientRecord {
    ClientRecord {
        client: client.into(),
        user: user.into(),
        signature_key: vec![1; 32],
        certificate: format!("cert of {client}").into_bytes(),
        created_at: 1_000,
    }
}

fn room(epoch: u64) -> RoomRecord {
    RoomRecord {
        room: ROOM.into(),
        hub: HUB.into(),
        epoch,
        created_at: 5,
    }
}

fn group_of(room: &RoomRecord) -> GroupSnapshot {
    GroupSnapshot {
        room: room.room.clone(),
        epoch: room.epoch,
        snapshot: b"state".to_vec(),
        group_info: Vec::new(),
    }
}

fn delivery(clients: &[&str], payload: &[u8]) -> Delivery {
    Delivery {
        room: ROOM.into(),
        clients: clients.iter().map(|c| c.to_string()).collect(),
        payload: payload.to_vec(),
    }
}

fn dedup(key: u8) -> Dedup {
    Dedup {
        scope: format!("submit:{ROOM}"),
        key: [key; 32],
    }
}

fn outbound(domain: &str, body: &str) -> NewOutbound {
    NewOutbound {
        domain: domain.into(),
        endpoint: "notify".into(),
        room: ROOM.into(),
        body: body.as_bytes().to_vec(),
    }
}

fn kp(name: &str) -> (Vec<u8>, Vec<u8>) {
    (
        format!("ref {name}").into_bytes(),
        format!("bytes {name}").into_bytes(),
    )
}

fn payloads(store: &SqliteStore, client: &str) -> Vec<Vec<u8>> {
    let items = store.inbox(client, 0, 1000).unwrap();
    items.into_iter().map(|i| i.payload).collect()
}

// --- accounts and clients ---

#[test]
fn accounts_clients_and_link_codes() {
    let f = Fixture::new();
    let s = &f.store;
    assert!(!s.user_exists("alice").unwrap());
    s.create_account(&record("alice", "alice/0")).unwrap();
    assert!(s.user_exists("alice").unwrap());
    assert_eq!(
        s.client("alice/0").unwrap(),
        Some(record("alice", "alice/0"))
    );
    assert_eq!(s.client("alice/9").unwrap(), None);
    assert!(matches!(
        s.create_account(&record("alice", "alice/other")),
        Err(StoreError::Conflict(_))
    ));
    // The failed account creation left no client behind.
    assert_eq!(s.client("alice/other").unwrap(), None);

    s.create_account(&record("bob", "bob/0")).unwrap();
    let code = [7; 32];
    s.put_link_code("alice", &code, 100).unwrap();
    assert!(matches!(
        s.put_link_code("alice", &code, 100),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.put_link_code("nobody", &[8; 32], 100),
        Err(StoreError::NotFound(_))
    ));

    // A code is for its user only, and expires at `expires_at`.
    assert!(matches!(
        s.add_client(&record("bob", "bob/1"), &code, 10),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.add_client(&record("alice", "alice/1"), &code, 100),
        Err(StoreError::NotFound(_))
    ));
    // A taken client id is a conflict and does not use the code up.
    assert!(matches!(
        s.add_client(&record("alice", "bob/0"), &code, 10),
        Err(StoreError::Conflict(_))
    ));
    s.add_client(&record("alice", "alice/1"), &code, 99)
        .unwrap();
    // Single use.
    assert!(matches!(
        s.add_client(&record("alice", "alice/2"), &code, 10),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.add_client(&record("alice", "alice/2"), &[0; 32], 10),
        Err(StoreError::NotFound(_))
    ));

    let clients: Vec<_> = s.user_clients("alice").unwrap();
    assert_eq!(
        clients,
        [record("alice", "alice/0"), record("alice", "alice/1")]
    );
    assert!(s.user_clients("nobody").unwrap().is_empty());
}

#[test]
fn u64_values_round_trip() {
    let f = Fixture::new();
    let mut client = record("alice", "alice/0");
    client.created_at = u64::MAX;
    f.store.create_account(&client).unwrap();
    let big = RoomRecord {
        epoch: u64::MAX - 1,
        created_at: u64::MAX,
        ..room(0)
    };
    f.store
        .create_room(&big, "alice/0", &group_of(&big))
        .unwrap();
    let f = f.reopen();
    assert_eq!(f.store.client("alice/0").unwrap(), Some(client));
    assert_eq!(f.store.room(ROOM).unwrap(), Some(big));
    let batch = Batch {
        epoch: Some(EpochCheck {
            room: ROOM.into(),
            expected: u64::MAX - 1,
            advance_to: u64::MAX,
        }),
        ..Batch::default()
    };
    assert!(matches!(
        f.store.apply(batch).unwrap(),
        BatchOutcome::Applied { .. }
    ));
    assert_eq!(f.store.room(ROOM).unwrap().unwrap().epoch, u64::MAX);
}

// --- key packages ---

#[test]
fn key_packages_are_claimed_oldest_first_then_last_resort() {
    let f = Fixture::new();
    let s = &f.store;
    s.create_account(&record("alice", "alice/0")).unwrap();
    assert_eq!(s.key_package_status("alice/0").unwrap(), (0, false));
    assert_eq!(s.claim_key_package("alice/0", 1).unwrap(), None);

    s.add_key_packages("alice/0", &[kp("a"), kp("b")], Some(&kp("last")))
        .unwrap();
    s.add_key_packages("alice/0", &[kp("c")], None).unwrap();
    assert_eq!(s.key_package_status("alice/0").unwrap(), (3, true));

    assert_eq!(s.claim_key_package("alice/0", 1).unwrap(), Some(kp("a")));
    assert_eq!(s.claim_key_package("alice/0", 2).unwrap(), Some(kp("b")));
    assert_eq!(s.key_package_status("alice/0").unwrap(), (1, true));
    assert_eq!(s.claim_key_package("alice/0", 3).unwrap(), Some(kp("c")));
    // Exhausted: the last-resort one, served again and again, and kept.
    assert_eq!(s.claim_key_package("alice/0", 4).unwrap(), Some(kp("last")));
    assert_eq!(s.claim_key_package("alice/0", 5).unwrap(), Some(kp("last")));
    assert_eq!(s.key_package_status("alice/0").unwrap(), (0, true));

    // Every claim recorded its route.
    let local = Some(KeyPackageRoute::Local {
        client: "alice/0".into(),
    });
    for name in ["a", "b", "c", "last"] {
        assert_eq!(s.key_package_route(&kp(name).0).unwrap(), local);
    }

    // A single-use one added later is served before the last-resort one.
    s.add_key_packages("alice/0", &[kp("d")], None).unwrap();
    assert_eq!(s.claim_key_package("alice/0", 6).unwrap(), Some(kp("d")));

    // Replacing the last-resort one.
    s.add_key_packages("alice/0", &[], Some(&kp("last2")))
        .unwrap();
    assert_eq!(s.key_package_status("alice/0").unwrap(), (0, true));
    assert_eq!(
        s.claim_key_package("alice/0", 7).unwrap(),
        Some(kp("last2"))
    );

    // A claimed single-use one is gone for good, even for re-adding under its
    // reference later; a reference in use is a conflict and adds nothing.
    assert!(matches!(
        s.add_key_packages("alice/0", &[kp("e"), kp("last2")], None),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.key_package_status("alice/0").unwrap(), (0, true));
    assert!(matches!(
        s.add_key_packages("nobody", &[kp("f")], None),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn key_packages_of_different_clients_are_separate() {
    let f = Fixture::new();
    let s = &f.store;
    s.create_account(&record("alice", "alice/0")).unwrap();
    s.create_account(&record("bob", "bob/0")).unwrap();
    s.add_key_packages("alice/0", &[kp("a")], Some(&kp("al")))
        .unwrap();
    s.add_key_packages("bob/0", &[kp("b")], Some(&kp("bl")))
        .unwrap();
    assert_eq!(s.claim_key_package("bob/0", 1).unwrap(), Some(kp("b")));
    assert_eq!(s.claim_key_package("bob/0", 1).unwrap(), Some(kp("bl")));
    assert_eq!(s.key_package_status("alice/0").unwrap(), (1, true));
}

#[test]
fn key_package_routes() {
    let f = Fixture::new();
    let s = &f.store;
    let remote = KeyPackageRoute::Remote {
        domain: "b.example".into(),
    };
    assert_eq!(s.key_package_route(b"r1").unwrap(), None);
    s.record_key_package_route(b"r1", &remote, 10).unwrap();
    assert_eq!(s.key_package_route(b"r1").unwrap(), Some(remote));
    let local = KeyPackageRoute::Local {
        client: "alice/0".into(),
    };
    s.record_key_package_route(b"r1", &local, 11).unwrap();
    assert_eq!(s.key_package_route(b"r1").unwrap(), Some(local));
}

// --- rooms ---

#[test]
fn rooms_and_membership() {
    let f = Fixture::with_room(3);
    let s = &f.store;
    assert_eq!(s.room(ROOM).unwrap(), Some(room(0)));
    assert_eq!(s.room("mimi://a.example/r/none").unwrap(), None);
    assert!(matches!(
        s.create_room(&room(3), "alice/0", &group_of(&room(3))),
        Err(StoreError::Conflict(_))
    ));
    let other = RoomRecord {
        room: "mimi://a.example/r/other".into(),
        ..room(0)
    };
    assert!(matches!(
        s.create_room(&other, "nobody", &group_of(&other)),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.room(&other.room).unwrap(), None);
    assert_eq!(
        s.room_clients(ROOM).unwrap(),
        ["alice/0", "alice/1", "alice/2"]
    );

    let batch = Batch {
        room_clients_remove: vec![(ROOM.into(), "alice/1".into())],
        room_domains_add: vec![
            (ROOM.into(), "c.example".into()),
            (ROOM.into(), "b.example".into()),
            (ROOM.into(), "b.example".into()),
        ],
        ..Batch::default()
    };
    s.apply(batch).unwrap();
    assert_eq!(s.room_clients(ROOM).unwrap(), ["alice/0", "alice/2"]);
    assert_eq!(s.room_domains(ROOM).unwrap(), ["b.example", "c.example"]);
    assert!(s.room_domains(&other.room).unwrap().is_empty());

    // A member that is not one of our clients is refused, with nothing applied.
    let batch = Batch {
        room_clients_add: vec![(ROOM.into(), "mallory".into())],
        room_domains_add: vec![(ROOM.into(), "d.example".into())],
        ..Batch::default()
    };
    assert!(matches!(s.apply(batch), Err(StoreError::NotFound(_))));
    assert_eq!(s.room_domains(ROOM).unwrap(), ["b.example", "c.example"]);
}

#[test]
fn ensure_room_creates_once() {
    let f = Fixture::new();
    let s = &f.store;
    s.create_account(&record("alice", "alice/0")).unwrap();
    let follower = RoomRecord {
        hub: "b.example".into(),
        ..room(4)
    };
    let batch = Batch {
        ensure_room: Some(follower.clone()),
        room_clients_add: vec![(ROOM.into(), "alice/0".into())],
        deliveries: vec![delivery(&["alice/0"], b"welcome")],
        ..Batch::default()
    };
    let outcome = s.apply(batch).unwrap();
    assert_eq!(
        outcome,
        BatchOutcome::Applied {
            woken: vec!["alice/0".into()]
        }
    );
    assert_eq!(s.room(ROOM).unwrap(), Some(follower.clone()));
    // Ensuring it again changes nothing.
    let batch = Batch {
        ensure_room: Some(room(9)),
        ..Batch::default()
    };
    s.apply(batch).unwrap();
    assert_eq!(s.room(ROOM).unwrap(), Some(follower));
    assert_eq!(s.room_clients(ROOM).unwrap(), ["alice/0"]);
}

// --- apply ---

/// A batch with one of every effect, for the checks to block.
fn full_batch(key: u8, epoch: u64) -> Batch {
    Batch {
        dedup: Some(dedup(key)),
        epoch: Some(EpochCheck {
            room: ROOM.into(),
            expected: epoch,
            advance_to: epoch + 1,
        }),
        ensure_room: None,
        room_clients_add: vec![(ROOM.into(), "alice/2".into())],
        room_clients_remove: vec![(ROOM.into(), "alice/1".into())],
        room_domains_add: vec![(ROOM.into(), "b.example".into())],
        room_domains_remove: vec![(ROOM.into(), "c.example".into())],
        group_state: Some(GroupSnapshot {
            room: ROOM.into(),
            epoch: epoch + 1,
            snapshot: vec![key],
            group_info: vec![key, key],
        }),
        deliveries: vec![delivery(&["alice/0", "alice/1"], b"commit")],
        outbound: vec![outbound("b.example", "commit")],
        echo_marks: vec![(ROOM.into(), [key; 32], "alice/0".into())],
        forget_key_package_routes: vec![b"route".to_vec()],
        accepted_at: 1_000 + u64::from(key),
    }
}

/// Clients `alice/0..3`, of which 0 and 1 are in the room, and the route
/// [`full_batch`] forgets.
fn before_full_batch() -> Fixture {
    let f = Fixture::with_room(3);
    let batch = Batch {
        room_clients_remove: vec![(ROOM.into(), "alice/2".into())],
        ..Batch::default()
    };
    f.store.apply(batch).unwrap();
    let remote = KeyPackageRoute::Remote {
        domain: "b.example".into(),
    };
    f.store
        .record_key_package_route(b"route", &remote, 1)
        .unwrap();
    f
}

/// Asserts that no effect of [`full_batch`] is in the store.
fn assert_untouched(f: &Fixture, epoch: u64, key: u8) {
    let s = &f.store;
    assert_eq!(s.room(ROOM).unwrap().unwrap().epoch, epoch);
    assert_eq!(s.room_clients(ROOM).unwrap(), ["alice/0", "alice/1"]);
    assert!(s.room_domains(ROOM).unwrap().is_empty());
    assert!(s.inbox("alice/0", 0, 10).unwrap().is_empty());
    assert!(s.due_outbound(u64::MAX, 10).unwrap().is_empty());
    assert_eq!(s.echo_mark(ROOM, &[key; 32]).unwrap(), None);
    assert!(s.key_package_route(b"route").unwrap().is_some());
    assert_eq!(f.count("messages"), 0);
}

#[test]
fn apply_commits_every_effect_together() {
    let f = before_full_batch();
    let s = &f.store;
    let outcome = s.apply(full_batch(1, 0)).unwrap();
    assert_eq!(
        outcome,
        BatchOutcome::Applied {
            woken: vec!["alice/0".into(), "alice/1".into()]
        }
    );
    assert_eq!(s.room(ROOM).unwrap().unwrap().epoch, 1);
    assert_eq!(s.room_clients(ROOM).unwrap(), ["alice/0", "alice/2"]);
    assert_eq!(s.room_domains(ROOM).unwrap(), ["b.example"]);
    assert_eq!(payloads(s, "alice/0"), [b"commit"]);
    assert_eq!(payloads(s, "alice/1"), [b"commit"]);
    let due = s.due_outbound(0, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].attempts, due[0].body.as_slice()),
        (0, &b"commit"[..])
    );
    assert_eq!(s.echo_mark(ROOM, &[1; 32]).unwrap(), Some("alice/0".into()));
    assert_eq!(s.key_package_route(b"route").unwrap(), None);
}

#[test]
fn wrong_epoch_applies_nothing() {
    let f = before_full_batch();
    let outcome = f.store.apply(full_batch(1, 5)).unwrap();
    assert_eq!(outcome, BatchOutcome::WrongEpoch { current: 0 });
    assert_untouched(&f, 0, 1);
    // The dedup key was not recorded either: the retry at the right epoch applies.
    let outcome = f.store.apply(full_batch(1, 0)).unwrap();
    assert!(matches!(outcome, BatchOutcome::Applied { .. }));
    // An epoch check on an unknown room is an error, and applies nothing.
    let mut batch = full_batch(2, 1);
    batch.epoch.as_mut().unwrap().room = "mimi://a.example/r/none".into();
    assert!(matches!(f.store.apply(batch), Err(StoreError::NotFound(_))));
    assert_eq!(f.store.room(ROOM).unwrap().unwrap().epoch, 1);
}

#[test]
fn duplicate_applies_nothing_and_reports_the_first_acceptance() {
    let f = before_full_batch();
    let first = Batch {
        dedup: Some(dedup(1)),
        accepted_at: 42,
        ..Batch::default()
    };
    assert!(matches!(
        f.store.apply(first).unwrap(),
        BatchOutcome::Applied { .. }
    ));
    // Same key, everything else different: nothing of it lands, even with the
    // epoch check passing.
    let outcome = f.store.apply(full_batch(1, 0)).unwrap();
    assert_eq!(outcome, BatchOutcome::Duplicate { accepted_at: 42 });
    assert_untouched(&f, 0, 1);
    // The scope is part of the key.
    let mut other_scope = full_batch(1, 0);
    other_scope.dedup.as_mut().unwrap().scope = "notify:b.example".into();
    assert!(matches!(
        f.store.apply(other_scope).unwrap(),
        BatchOutcome::Applied { .. }
    ));
}

#[test]
fn a_failing_batch_applies_nothing() {
    let f = before_full_batch();
    let mut batch = full_batch(1, 0);
    batch
        .deliveries
        .push(delivery(&["alice/0", "stranger"], b"x"));
    assert!(matches!(f.store.apply(batch), Err(StoreError::NotFound(_))));
    assert_untouched(&f, 0, 1);
    // Its dedup key was rolled back with it.
    assert!(matches!(
        f.store.apply(full_batch(1, 0)).unwrap(),
        BatchOutcome::Applied { .. }
    ));
}

#[test]
fn deliveries_store_one_payload_for_many_clients() {
    let f = Fixture::with_room(3);
    let s = &f.store;
    let batch = Batch {
        deliveries: vec![
            delivery(&["alice/0", "alice/1", "alice/2", "alice/1"], b"one"),
            delivery(&[], b"to nobody"),
            delivery(&["alice/2"], b"two"),
        ],
        ..Batch::default()
    };
    let outcome = s.apply(batch).unwrap();
    let woken = ["alice/0", "alice/1", "alice/2"].map(String::from).to_vec();
    assert_eq!(outcome, BatchOutcome::Applied { woken });
    // The empty delivery stored nothing; "one" is stored once.
    assert_eq!(f.count("messages"), 2);
    assert_eq!(f.count("inbox"), 4);
    assert_eq!(payloads(s, "alice/1"), [b"one"]);
    assert_eq!(payloads(s, "alice/2"), [&b"one"[..], b"two"]);
    let item = &s.inbox("alice/2", 0, 1).unwrap()[0];
    assert_eq!(item.room, ROOM);

    // Garbage collection: the payload goes with its last inbox row.
    let seq = |client| s.inbox(client, 0, 10).unwrap()[0].seq;
    assert_eq!(s.ack("alice/0", seq("alice/0")).unwrap(), 1);
    assert_eq!(s.ack("alice/1", seq("alice/1")).unwrap(), 1);
    assert_eq!(f.count("messages"), 2);
    assert_eq!(s.ack("alice/2", seq("alice/2")).unwrap(), 1);
    assert_eq!(f.count("messages"), 1);
    assert_eq!(payloads(s, "alice/2"), [b"two"]);
    assert_eq!(s.ack("alice/2", u64::MAX).unwrap(), 1);
    assert_eq!(f.count("messages"), 0);
    assert_eq!(s.ack("alice/2", u64::MAX).unwrap(), 0);
}

#[test]
fn inbox_pages_and_acks_in_order() {
    let f = Fixture::with_room(2);
    let s = &f.store;
    for i in 0..10_u8 {
        let batch = Batch {
            deliveries: vec![delivery(&["alice/0"], &[i])],
            ..Batch::default()
        };
        s.apply(batch).unwrap();
    }
    let all = s.inbox("alice/0", 0, 100).unwrap();
    assert_eq!(all.len(), 10);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let page = s.inbox("alice/0", all[2].seq, 3).unwrap();
    assert_eq!(page, all[3..6]);
    assert!(s.inbox("alice/0", u64::MAX, 100).unwrap().is_empty());
    assert!(s.inbox("alice/0", 0, 0).unwrap().is_empty());
    assert!(s.inbox("alice/1", 0, 100).unwrap().is_empty());
    // Acking another client's sequence numbers does nothing.
    assert_eq!(s.ack("alice/1", u64::MAX).unwrap(), 0);
    assert_eq!(s.ack("alice/0", all[4].seq).unwrap(), 5);
    assert_eq!(s.inbox("alice/0", 0, 100).unwrap(), all[5..]);

    // Sequence numbers are never reused, even once everything was acked.
    assert_eq!(s.ack("alice/0", u64::MAX).unwrap(), 5);
    let f = f.reopen();
    let batch = Batch {
        deliveries: vec![delivery(&["alice/0"], b"later")],
        ..Batch::default()
    };
    f.store.apply(batch).unwrap();
    let later = f.store.inbox("alice/0", all[9].seq, 10).unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].payload, b"later");
}

// --- outbound ---

#[test]
fn outbound_is_per_domain_in_order_and_blocked_by_its_head() {
    let f = Fixture::with_room(1);
    let s = &f.store;
    assert_eq!(s.next_outbound_at().unwrap(), None);
    assert!(s.due_outbound(100, 10).unwrap().is_empty());
    let batch = Batch {
        outbound: ["b1", "c1", "b2", "b3", "c2", "d1"]
            .iter()
            .map(|name| outbound(&format!("{}.example", &name[..1]), name))
            .collect(),
        ..Batch::default()
    };
    s.apply(batch).unwrap();
    let bodies = |due: &[entente_provider::store::OutboundRecord]| -> Vec<String> {
        due.iter()
            .map(|r| String::from_utf8(r.body.clone()).unwrap())
            .collect()
    };
    let due = s.due_outbound(100, 2).unwrap();
    assert_eq!(bodies(&due), ["b1", "b2", "c1", "c2", "d1"]);
    assert!(due.iter().all(|r| r.endpoint == "notify" && r.room == ROOM));
    assert_eq!(s.next_outbound_at().unwrap(), Some(0));

    // b's head fails: the whole of b waits, even though b2 and b3 are "due".
    let b1 = due[0].id;
    s.outbound_retry(b1, 150, 1).unwrap();
    assert_eq!(
        bodies(&s.due_outbound(100, 10).unwrap()),
        ["c1", "c2", "d1"]
    );
    let retried = s.due_outbound(150, 1).unwrap();
    assert_eq!(bodies(&retried), ["b1", "c1", "d1"]);
    assert_eq!((retried[0].attempts, retried[0].next_attempt_at), (1, 150));

    // Done requests leave; the next in line is due.
    s.outbound_done(b1).unwrap();
    for r in &due[2..] {
        s.outbound_done(r.id).unwrap();
    }
    assert_eq!(bodies(&s.due_outbound(100, 10).unwrap()), ["b2", "b3"]);
    assert_eq!(s.next_outbound_at().unwrap(), Some(0));
    assert!(s.due_outbound(100, 0).unwrap().is_empty());

    assert!(matches!(s.outbound_done(b1), Err(StoreError::NotFound(_))));
    assert!(matches!(
        s.outbound_retry(b1, 1, 1),
        Err(StoreError::NotFound(_))
    ));

    for r in s.due_outbound(100, 10).unwrap() {
        s.outbound_retry(r.id, 300 + r.id, 2).unwrap();
    }
    let earliest = s.due_outbound(u64::MAX, 1).unwrap()[0].next_attempt_at;
    assert_eq!(s.next_outbound_at().unwrap(), Some(earliest));
    assert!(s.due_outbound(earliest - 1, 10).unwrap().is_empty());
}

#[test]
fn outbound_survives_reopen_with_ids_never_reused() {
    let f = Fixture::with_room(1);
    let batch = Batch {
        outbound: vec![outbound("b.example", "1")],
        ..Batch::default()
    };
    f.store.apply(batch.clone()).unwrap();
    let first = f.store.due_outbound(0, 10).unwrap()[0].id;
    f.store.outbound_done(first).unwrap();
    let f = f.reopen();
    f.store.apply(batch).unwrap();
    let due = f.store.due_outbound(0, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert!(due[0].id > first);
}

// --- maintenance ---

#[test]
fn expire_deletes_what_is_old() {
    let f = Fixture::with_room(1);
    let s = &f.store;
    for (key, accepted_at) in [(1_u8, 1_000_u64), (2, 2_000)] {
        let batch = Batch {
            dedup: Some(dedup(key)),
            echo_marks: vec![(ROOM.into(), [key; 32], "alice/0".into())],
            accepted_at,
            ..Batch::default()
        };
        s.apply(batch).unwrap();
    }
    s.put_link_code("alice", &[1; 32], 50).unwrap();
    s.put_link_code("alice", &[2; 32], 60).unwrap();
    let route = KeyPackageRoute::Remote {
        domain: "b.example".into(),
    };
    s.record_key_package_route(b"old", &route, 10).unwrap();
    s.record_key_package_route(b"new", &route, 20).unwrap();

    // Dedup key and echo mark 1, link code 1, route "old".
    let now = 10 + KEY_PACKAGE_ROUTE_TTL_SECS + 1;
    assert_eq!(s.expire(1_500, 50).unwrap(), 3);
    assert_eq!(s.expire(1_500, now).unwrap(), 2);
    assert_eq!(s.echo_mark(ROOM, &[1; 32]).unwrap(), None);
    assert_eq!(s.echo_mark(ROOM, &[2; 32]).unwrap(), Some("alice/0".into()));
    assert_eq!(s.key_package_route(b"old").unwrap(), None);
    assert_eq!(s.key_package_route(b"new").unwrap(), Some(route));
    // An expired dedup key no longer blocks; a live one does.
    let again = |key| Batch {
        dedup: Some(dedup(key)),
        ..Batch::default()
    };
    assert!(matches!(
        s.apply(again(1)).unwrap(),
        BatchOutcome::Applied { .. }
    ));
    assert_eq!(
        s.apply(again(2)).unwrap(),
        BatchOutcome::Duplicate { accepted_at: 2_000 }
    );
    assert_eq!(s.expire(0, 0).unwrap(), 0);
}

// --- concurrency and durability ---

#[test]
fn concurrent_applies_are_all_committed_and_survive_reopen() {
    const THREADS: u8 = 8;
    const PER_THREAD: u32 = 500;
    let f = Fixture::with_room(THREADS as usize);
    let store = Arc::new(f.store);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let client = format!("alice/{t}");
                for i in 0..PER_THREAD {
                    let mut key = [t; 32];
                    key[..4].copy_from_slice(&i.to_be_bytes());
                    let batch = Batch {
                        dedup: Some(Dedup {
                            scope: "load".into(),
                            key,
                        }),
                        deliveries: vec![delivery(&[&client], &i.to_be_bytes())],
                        accepted_at: u64::from(i),
                        ..Batch::default()
                    };
                    let outcome = store.apply(batch).unwrap();
                    assert_eq!(
                        outcome,
                        BatchOutcome::Applied {
                            woken: vec![client.clone()]
                        }
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let check = |store: &SqliteStore| {
        for t in 0..THREADS {
            let items = store.inbox(&format!("alice/{t}"), 0, 10_000).unwrap();
            let got: Vec<_> = items.iter().map(|i| i.payload.clone()).collect();
            let want: Vec<_> = (0..PER_THREAD).map(|i| i.to_be_bytes().to_vec()).collect();
            assert_eq!(got, want, "client {t} got its items in order");
        }
    };
    check(&store);
    let Ok(store) = Arc::try_unwrap(store) else {
        panic!("the workers still hold the store")
    };
    let f = Fixture { dir: f.dir, store }.reopen();
    check(&f.store);
    // The dedup keys are durable too.
    let mut key = [3; 32];
    key[..4].copy_from_slice(&7_u32.to_be_bytes());
    let replay = Batch {
        dedup: Some(Dedup {
            scope: "load".into(),
            key,
        }),
        deliveries: vec![delivery(&["alice/3"], b"again")],
        ..Batch::default()
    };
    assert_eq!(
        f.store.apply(replay).unwrap(),
        BatchOutcome::Duplicate { accepted_at: 7 }
    );
}

#[test]
fn concurrent_claims_never_hand_out_a_key_package_twice() {
    let f = Fixture::with_room(1);
    let packages: Vec<_> = (0..200).map(|i| kp(&i.to_string())).collect();
    f.store
        .add_key_packages("alice/0", &packages, Some(&kp("last")))
        .unwrap();
    let store = Arc::new(f.store);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                (0..60)
                    .map(|_| store.claim_key_package("alice/0", 1).unwrap().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut claimed: Vec<_> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let last_resort = claimed.iter().filter(|c| **c == kp("last")).count();
    assert_eq!(last_resort, 40);
    claimed.retain(|c| *c != kp("last"));
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), 200);
}

#[test]
fn dropping_the_store_releases_the_database() {
    let f = Fixture::with_room(1);
    let path = f.path();
    drop(f.store);
    // No connection of the dropped store holds a lock: an exclusive transaction
    // starts at once.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(std::time::Duration::ZERO).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;").unwrap();
    drop(f.dir);
}

// --- schema ---

#[test]
fn a_newer_schema_is_refused() {
    let f = Fixture::new();
    let path = f.path();
    drop(f.store);
    set_pragma(&path, "user_version", 99);
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("schema version 99")),
        "{err}"
    );
}

#[test]
fn a_foreign_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    set_pragma(&path, "application_id", 1234);
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("not an Entente store")),
        "{err}"
    );
}

#[test]
fn reopening_keeps_data_and_schema() {
    let f = Fixture::with_room(2);
    let f = f.reopen().reopen();
    assert_eq!(f.store.room_clients(ROOM).unwrap(), ["alice/0", "alice/1"]);
    let conn = rusqlite::Connection::open(f.path()).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

fn set_pragma(path: &Path, pragma: &str, value: i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, pragma, value).unwrap();
}

fn abuse_report(
    digest: u8,
    role: entente_provider::store::ReportRole,
) -> entente_provider::store::NewReport {
    entente_provider::store::NewReport {
        received_at: 1_700_000_000_000,
        role,
        room: ROOM.into(),
        hub: HUB.into(),
        reporter: Some("mimi://b.example/u/bob".into()),
        reporter_domain: "b.example".into(),
        alleged_abuser: "mimi://a.example/u/mallory".into(),
        reason: 3,
        note: "spam, again".into(),
        messages: vec![entente_provider::store::ReportedMessage {
            content: vec![0xa1, 0x00, 0xff],
            accepted_at: 1_699_999_999_000,
        }],
        digest: [digest; 32],
    }
}

#[test]
fn abuse_reports_are_stored_once_listed_and_resolved() {
    use entente_provider::store::{RecordedReport, ReportRole, ReportStatus};
    let f = Fixture::new();
    let first = abuse_report(1, ReportRole::Hub);
    let RecordedReport::New(id) = f.store.record_report(&first).unwrap() else {
        panic!("a new report is not a duplicate");
    };
    // The same digest again (a replay) is a duplicate of the first; another role
    // with the same digest (the accused's provider is also the hub) is not.
    assert_eq!(
        f.store.record_report(&first).unwrap(),
        RecordedReport::Duplicate(id)
    );
    let mut accused = abuse_report(1, ReportRole::Accused);
    accused.reporter = None;
    let RecordedReport::New(other) = f.store.record_report(&accused).unwrap() else {
        panic!("another role is another report");
    };
    assert_ne!(id, other);

    let stored = f.store.report(id).unwrap().unwrap();
    assert_eq!(stored.report, first);
    assert_eq!(stored.status, ReportStatus::Open);
    let open = f.store.reports(Some(ReportStatus::Open), 10).unwrap();
    assert_eq!(open.iter().map(|r| r.id).collect::<Vec<_>>(), [other, id]);

    f.store
        .resolve_report(id, ReportStatus::Actioned, "suspended mallory", 42)
        .unwrap();
    let closed = f.store.report(id).unwrap().unwrap();
    assert_eq!(closed.status, ReportStatus::Actioned);
    assert_eq!(closed.resolution.as_deref(), Some("suspended mallory"));
    assert_eq!(closed.resolved_at, Some(42));
    assert_eq!(
        f.store.reports(Some(ReportStatus::Open), 10).unwrap().len(),
        1
    );
    assert_eq!(f.store.reports(None, 10).unwrap().len(), 2);
    assert!(matches!(
        f.store.resolve_report(999, ReportStatus::Dismissed, "", 1),
        Err(StoreError::NotFound(_))
    ));

    // Durable across reopening.
    let path = f.path();
    drop(f.store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.report(id).unwrap().unwrap().status,
        ReportStatus::Actioned
    );
}
