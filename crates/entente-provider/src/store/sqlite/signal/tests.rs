//! The key directory against real SQLite files.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::store::sqlite::SqliteStore;
use crate::store::{Batch, BatchOutcome, ClientRecord, Delivery, Store};
use crate::store::{OneTimePreKeyRecord, PreKeyKind, PublishOutcome, SignalIdentity};
use crate::store::{SignalPreKeyStatus, SignalPreKeys, SignedPreKeyRecord};

const ALICE: &str = "mimi://a.example/u/alice";

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    (dir, store)
}

fn client(device: &str) -> String {
    format!("mimi://a.example/d/alice/{device}")
}

/// alice with the clients `devices`.
fn alice(store: &SqliteStore, devices: &[&str]) {
    for (i, d) in devices.iter().enumerate() {
        let record = ClientRecord {
            client: client(d),
            user: ALICE.into(),
            signature_key: vec![1; 32],
            certificate: vec![2; 8],
            created_at: 1,
        };
        if i == 0 {
            store.create_account(&record).unwrap();
        } else {
            let code = [i as u8; 32];
            store.put_link_code(ALICE, &code, 100).unwrap();
            store.add_client(&record, &code, 10).unwrap();
        }
    }
}

fn signed(id: u32, seed: u8) -> SignedPreKeyRecord {
    SignedPreKeyRecord {
        id,
        public: vec![seed; 33],
        signature: vec![seed; 64],
    }
}

fn upload(identity_seed: u8, device_id: u32, ids: std::ops::Range<u32>) -> SignalPreKeys {
    SignalPreKeys {
        identity: SignalIdentity {
            identity_key: vec![identity_seed; 33],
            registration_id: 77,
            device_id,
        },
        signed_prekey: Some(signed(1, identity_seed)),
        last_resort_kyber: Some(signed(9999, identity_seed)),
        one_time: ids
            .clone()
            .map(|id| OneTimePreKeyRecord {
                id,
                public: vec![id as u8; 33],
            })
            .collect(),
        kyber: ids.map(|id| signed(id, id as u8)).collect(),
    }
}

fn published(o: PublishOutcome) -> SignalPreKeyStatus {
    match o {
        PublishOutcome::Published(s) => s,
        other => panic!("not published: {other:?}"),
    }
}

#[test]
fn publish_replenish_and_refusals_that_change_nothing() {
    let (_d, s) = store();
    alice(&s, &["phone", "laptop"]);
    let phone = client("phone");
    let mut first = upload(1, 1, 1..11);
    first.signed_prekey = None;
    assert_eq!(
        s.publish_signal_prekeys(&phone, &first, 100).unwrap(),
        PublishOutcome::NeedsSignedPreKey
    );
    assert_eq!(
        s.signal_prekey_status(&phone).unwrap(),
        SignalPreKeyStatus::default()
    );
    let st = published(
        s.publish_signal_prekeys(&phone, &upload(1, 1, 1..11), 100)
            .unwrap(),
    );
    assert_eq!(
        st,
        SignalPreKeyStatus {
            one_time: 10,
            kyber: 10,
            signed_prekey: true,
            last_resort_kyber: true
        }
    );
    // The same upload again (a retry) changes nothing; more ids add up.
    assert_eq!(
        published(
            s.publish_signal_prekeys(&phone, &upload(1, 1, 1..11), 100)
                .unwrap()
        ),
        st
    );
    let mut more = upload(1, 1, 11..21);
    more.signed_prekey = None;
    more.last_resort_kyber = None;
    assert_eq!(
        published(s.publish_signal_prekeys(&phone, &more, 100).unwrap()).one_time,
        20
    );
    // A held id with another key; too many: refused, nothing kept.
    let mut reused = upload(1, 1, 20..31);
    reused.one_time[0].public = vec![0xee; 33];
    assert_eq!(
        s.publish_signal_prekeys(&phone, &reused, 100).unwrap(),
        PublishOutcome::IdReused {
            kind: PreKeyKind::OneTime,
            id: 20
        }
    );
    assert_eq!(
        s.publish_signal_prekeys(&phone, &upload(1, 1, 21..41), 30)
            .unwrap(),
        PublishOutcome::TooMany {
            kind: PreKeyKind::OneTime,
            would_hold: 40
        }
    );
    assert_eq!(s.signal_prekey_status(&phone).unwrap().one_time, 20);
    // Another device of alice cannot take device id 1.
    assert_eq!(
        s.publish_signal_prekeys(&client("laptop"), &upload(2, 1, 1..3), 100)
            .unwrap(),
        PublishOutcome::DeviceIdTaken { device_id: 1 }
    );
    published(
        s.publish_signal_prekeys(&client("laptop"), &upload(2, 2, 1..3), 100)
            .unwrap(),
    );
    // A new identity replaces everything of the old one.
    let st = published(
        s.publish_signal_prekeys(&phone, &upload(3, 1, 500..503), 100)
            .unwrap(),
    );
    assert_eq!((st.one_time, st.kyber), (3, 3));
    assert_eq!(
        s.signal_identity(&phone).unwrap().unwrap().identity_key,
        vec![3; 33]
    );
    // Unknown clients.
    assert!(matches!(
        s.publish_signal_prekeys(&client("nope"), &upload(1, 5, 1..2), 100),
        Err(crate::store::StoreError::NotFound(_))
    ));
}

#[test]
fn claims_take_the_oldest_once_then_fall_back_to_the_last_resort() {
    let (_d, s) = store();
    alice(&s, &["phone", "laptop", "tablet"]);
    published(
        s.publish_signal_prekeys(&client("phone"), &upload(1, 1, 1..3), 100)
            .unwrap(),
    );
    let mut laptop = upload(2, 2, 10..11);
    laptop.last_resort_kyber = None;
    published(
        s.publish_signal_prekeys(&client("laptop"), &laptop, 100)
            .unwrap(),
    );
    // The tablet published nothing: it has no bundle.
    assert_eq!(
        s.signal_devices(ALICE).unwrap(),
        [(client("phone"), 1), (client("laptop"), 2)]
    );
    let take = || s.claim_signal_bundles(ALICE).unwrap();
    let b = take();
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].one_time.as_ref().unwrap().id, 1);
    assert_eq!(
        b[0].kyber.as_ref().map(|k| (k.prekey.id, k.last_resort)),
        Some((1, false))
    );
    assert_eq!(b[1].one_time.as_ref().unwrap().id, 10);
    let b = take();
    assert_eq!(b[0].one_time.as_ref().unwrap().id, 2);
    assert!(b[1].one_time.is_none());
    assert!(
        b[1].kyber.is_none(),
        "no one-time and no last-resort ML-KEM prekey"
    );
    let b = take();
    assert!(b[0].one_time.is_none());
    assert_eq!(
        b[0].kyber.as_ref().map(|k| (k.prekey.id, k.last_resort)),
        Some((9999, true))
    );
    assert_eq!(
        take()[0].kyber.as_ref().map(|k| k.prekey.id),
        Some(9999),
        "kept"
    );
    assert_eq!(
        s.signal_prekey_status(&client("phone")).unwrap().one_time,
        0
    );
}

#[test]
fn concurrent_claims_never_share_a_prekey() {
    let (_d, s) = store();
    alice(&s, &["phone"]);
    published(
        s.publish_signal_prekeys(&client("phone"), &upload(1, 1, 1..101), 100)
            .unwrap(),
    );
    let s = Arc::new(s);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                (0..30)
                    .map(|_| {
                        let b = s.claim_signal_bundles(ALICE).unwrap().remove(0);
                        (b.one_time.map(|k| k.id), b.kyber.unwrap())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let claims: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let one_time: Vec<u32> = claims.iter().filter_map(|(o, _)| *o).collect();
    assert_eq!(one_time.len(), 100);
    assert_eq!(
        one_time.iter().collect::<BTreeSet<_>>().len(),
        100,
        "each once"
    );
    let kyber: Vec<u32> = claims
        .iter()
        .filter(|(_, k)| !k.last_resort)
        .map(|(_, k)| k.prekey.id)
        .collect();
    assert_eq!(kyber.iter().collect::<BTreeSet<_>>().len(), 100);
    assert_eq!(claims.iter().filter(|(_, k)| k.last_resort).count(), 20);
}

#[test]
fn capabilities_follow_what_clients_declared_and_hold() {
    let (_d, s) = store();
    alice(&s, &["phone", "laptop", "tablet"]);
    let caps = |s: &SqliteStore| -> Vec<Vec<String>> {
        s.user_capabilities(ALICE)
            .unwrap()
            .into_iter()
            .map(|c| c.protocols)
            .collect()
    };
    assert_eq!(caps(&s), [Vec::<String>::new(), vec![], vec![]]);
    s.add_key_packages(&client("phone"), &[(vec![1], vec![1])], None)
        .unwrap();
    published(
        s.publish_signal_prekeys(&client("laptop"), &upload(1, 1, 1..2), 100)
            .unwrap(),
    );
    published(
        s.publish_signal_prekeys(&client("phone"), &upload(2, 2, 1..2), 100)
            .unwrap(),
    );
    assert_eq!(caps(&s), [vec!["mls10", "signal"], vec!["signal"], vec![]]);
    // Declared lists win, but `signal` needs a signed prekey.
    s.set_client_protocols(&client("phone"), &["signal".into()])
        .unwrap();
    s.set_client_protocols(&client("tablet"), &["mls10".into(), "signal".into()])
        .unwrap();
    assert_eq!(caps(&s), [vec!["signal"], vec!["signal"], vec!["mls10"]]);
    assert!(s.set_client_protocols(&client("nope"), &[]).is_err());
    // A device that declares it does not speak `signal` gets no bundles, however
    // many prekeys it left behind.
    s.set_client_protocols(&client("laptop"), &["mls10".into()])
        .unwrap();
    assert_eq!(caps(&s)[1], ["mls10"]);
    assert_eq!(s.signal_devices(ALICE).unwrap(), [(client("phone"), 2)]);
    let bundles = s.claim_signal_bundles(ALICE).unwrap();
    assert_eq!(bundles.len(), 1);
    assert_eq!(bundles[0].client, client("phone"));
}

#[test]
fn removing_a_client_removes_its_signal_state_and_sealed_items_have_an_inbox() {
    let (dir, s) = store();
    alice(&s, &["phone", "laptop"]);
    let phone = client("phone");
    published(
        s.publish_signal_prekeys(&phone, &upload(1, 1, 1..51), 100)
            .unwrap(),
    );
    s.set_client_protocols(&phone, &["signal".into()]).unwrap();
    let batch = Batch {
        deliveries: vec![Delivery {
            room: entente_wire::signal::SEALED_INBOX.into(),
            clients: vec![phone.clone(), client("laptop")],
            payload: vec![1, 2, 3],
        }],
        ..Batch::default()
    };
    assert!(matches!(
        s.apply(batch).unwrap(),
        BatchOutcome::Applied { .. }
    ));
    let item = s.inbox(&phone, 0, 10).unwrap().remove(0);
    assert_eq!(
        (item.room.as_str(), item.payload),
        (entente_wire::signal::SEALED_INBOX, vec![1, 2, 3])
    );
    s.remove_client(&phone).unwrap();
    drop(s);
    let conn = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    for table in [
        "signal_identities",
        "signal_signed_prekeys",
        "signal_last_resort_kyber_prekeys",
        "signal_one_time_prekeys",
        "signal_kyber_prekeys",
        "client_protocols",
    ] {
        let n: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE client = ?1"),
                [&phone],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    let messages: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(messages, 1, "the laptop's copy stays");
}
