//! The provider side of the Signal channel, end to end: real providers on loopback
//! (real TLS, real SQLite), devices that sign client-API requests by hand with real
//! Signal keys, and the test acting as a peer provider where it needs to.
//!
//! Covers the key directory (publishing, status, replenishing, claims across
//! providers that hand out each one-time prekey once, even concurrently, and fall
//! back to the last-resort ML-KEM prekey), capabilities and the provider's protocol
//! switches, sender certificates, and sealed delivery (local, across providers,
//! through a crash, deduplicated, without the sender in the recipient provider's
//! database), with the refusals of each.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Result;
use entente_core::signal::keys::PublicKey;
use entente_core::signal::sealed_sender::SenderCertificate;
use entente_testkit::Federation;
use entente_wire::api::{ProviderInfo, path_segment};
use entente_wire::signal::{
    Capabilities, ClientCapabilities, MismatchedDevices, PreKeyStatus, SEALED_INBOX,
    SealedDelivery, SealedMessage, SealedSend, SealedSendResult, SenderCertificateResponse,
    UserBundles,
};
use reqwest::{Method, StatusCode};

#[path = "support/signal.rs"]
mod signal_support;

use signal_support::{Device, api_error, as_provider, cells_containing, https, lossy};

const A: &str = "a.example";
const B: &str = "b.example";

fn json(v: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn bundles_path(user: &str) -> String {
    format!("/v1/signal/bundles/{}", path_segment(user))
}

fn capabilities_path(user: &str) -> String {
    format!("/v1/capabilities/{}", path_segment(user))
}

/// Asserts a refusal: its status, error code, and words of its message.
async fn refused(
    d: &Device,
    method: Method,
    path: &str,
    body: Vec<u8>,
    status: u16,
    code: &str,
    words: &str,
) {
    let (got, answer) = d.signed(method, path, body).await.unwrap();
    let (c, message) = api_error(&answer);
    assert_eq!(got.as_u16(), status, "{path}: {}", lossy(&answer));
    assert_eq!(c, code, "{path}: {}", lossy(&answer));
    assert!(
        message.contains(words),
        "{path}: {message:?} lacks {words:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_status_replenishing_and_refusals() -> Result<()> {
    let fed = Federation::start(&[A]).await?;
    let phone = Device::register(&fed, "alice@a.example", "phone", 1, None).await?;
    let laptop = Device::register(&fed, "alice@a.example", "laptop", 2, Some(&phone)).await?;
    let empty: PreKeyStatus = phone.call(Method::GET, "/v1/signal/prekeys", &()).await?;
    assert_eq!(empty, PreKeyStatus::default());

    let first = phone.prekeys(1..11, 1..11, true, true);
    let st: PreKeyStatus = phone
        .call(Method::POST, "/v1/signal/prekeys", &first)
        .await?;
    let want = PreKeyStatus {
        one_time_prekeys: 10,
        kyber_prekeys: 10,
        signed_prekey: true,
        last_resort_kyber_prekey: true,
    };
    assert_eq!(st, want);
    // A retried upload changes nothing; more prekeys add up.
    let again: PreKeyStatus = phone
        .call(Method::POST, "/v1/signal/prekeys", &first)
        .await?;
    assert_eq!(again, want);
    let more = phone.prekeys(11..16, 11..14, false, false);
    let st: PreKeyStatus = phone
        .call(Method::POST, "/v1/signal/prekeys", &more)
        .await?;
    assert_eq!((st.one_time_prekeys, st.kyber_prekeys), (15, 13));
    let got: PreKeyStatus = phone.call(Method::GET, "/v1/signal/prekeys", &()).await?;
    assert_eq!(got, st);

    let path = "/v1/signal/prekeys";
    // Signatures are checked against the identity key.
    let mut forged = phone.prekeys(20..21, 20..21, true, false);
    forged.signed_prekey.as_mut().unwrap().signature[0] ^= 1;
    refused(
        &phone,
        Method::POST,
        path,
        json(&forged),
        400,
        "invalid_request",
        "signed_prekey.signature does not verify",
    )
    .await;
    let mut forged = phone.prekeys(20..21, 20..22, false, false);
    forged.kyber_prekeys[1].signature = laptop.prekeys(0..0, 1..2, false, false).kyber_prekeys[0]
        .signature
        .clone();
    refused(
        &phone,
        Method::POST,
        path,
        json(&forged),
        400,
        "invalid_request",
        "kyber_prekeys[1].signature does not verify",
    )
    .await;
    // Lengths, counts and ranges, each named.
    let mut bad = phone.prekeys(20..21, 20..21, false, false);
    bad.one_time_prekeys[0].public.pop();
    refused(
        &phone,
        Method::POST,
        path,
        json(&bad),
        400,
        "invalid_request",
        "one_time_prekeys[0].public: an X25519 public key is 33 bytes",
    )
    .await;
    let mut bad = phone.prekeys(20..21, 20..21, false, false);
    bad.kyber_prekeys[0].public.truncate(1568);
    refused(
        &phone,
        Method::POST,
        path,
        json(&bad),
        400,
        "invalid_request",
        "ML-KEM-1024 public key is 1569 bytes",
    )
    .await;
    let bad = phone.prekeys(100..201, 0..0, false, false);
    refused(
        &phone,
        Method::POST,
        path,
        json(&bad),
        400,
        "invalid_request",
        "one_time_prekeys: at most 100",
    )
    .await;
    let mut bad = phone.prekeys(0..0, 0..0, false, false);
    bad.device_id = 200;
    refused(
        &phone,
        Method::POST,
        path,
        json(&bad),
        400,
        "invalid_request",
        "device_id must be 1 to 127",
    )
    .await;
    // Garbage bodies.
    for (body, words) in [
        (b"not json".to_vec(), "invalid JSON body"),
        (b"{}".to_vec(), "missing field `identity_key`"),
        (
            br#"{"identity_key":"***","registration_id":1,"device_id":1}"#.to_vec(),
            "invalid JSON body",
        ),
        (
            br#"{"identity_key":"","registration_id":1,"device_id":1,"extra":1}"#.to_vec(),
            "unknown field `extra`",
        ),
    ] {
        refused(
            &phone,
            Method::POST,
            path,
            body,
            400,
            "invalid_request",
            words,
        )
        .await;
    }
    // An id held with another key; a device id of another device; a new identity
    // without a signed prekey.
    let reused = phone.prekeys(15..17, 0..0, false, false);
    refused(
        &phone,
        Method::POST,
        path,
        json(&reused),
        409,
        "prekey_id_reused",
        "one_time_prekeys id 15",
    )
    .await;
    let mut taken = laptop.prekeys(1..3, 1..3, true, true);
    taken.device_id = 1;
    refused(
        &laptop,
        Method::POST,
        path,
        json(&taken),
        409,
        "device_id_taken",
        "device_id 1",
    )
    .await;
    let unsigned = laptop.prekeys(1..3, 1..3, false, true);
    refused(
        &laptop,
        Method::POST,
        path,
        json(&unsigned),
        409,
        "signed_prekey_required",
        "signed prekey",
    )
    .await;
    // Nothing of the refused uploads was kept.
    let got: PreKeyStatus = phone.call(Method::GET, path, &()).await?;
    assert_eq!(got, st);
    let got: PreKeyStatus = laptop.call(Method::GET, path, &()).await?;
    assert_eq!(got, PreKeyStatus::default());
    // A provider keeps at most 1000 one-time prekeys per client.
    for start in (100..1000).step_by(100) {
        let up = phone.prekeys(start..start + 100, 0..0, false, false);
        let _: PreKeyStatus = phone.call(Method::POST, path, &up).await?;
    }
    let over = phone.prekeys(5000..5100, 0..0, false, false);
    refused(
        &phone,
        Method::POST,
        path,
        json(&over),
        403,
        "forbidden",
        "at most 1000",
    )
    .await;
    // A new identity replaces the old one's prekeys.
    let mut reborn = Device::register(&fed, "alice@a.example", "tablet", 3, Some(&phone)).await?;
    let _: PreKeyStatus = reborn
        .call(
            Method::POST,
            path,
            &reborn.prekeys(1..50, 1..50, true, true),
        )
        .await?;
    reborn.identity = entente_core::signal::keys::IdentityKeyPair::generate(&mut rand::rngs::OsRng);
    let st: PreKeyStatus = reborn
        .call(Method::POST, path, &reborn.prekeys(1..3, 0..0, true, false))
        .await?;
    assert_eq!(
        st,
        PreKeyStatus {
            one_time_prekeys: 2,
            kyber_prekeys: 0,
            signed_prekey: true,
            last_resort_kyber_prekey: false
        }
    );

    // Unsigned or badly signed requests are refused.
    let (status, _) = phone.request(Method::GET, path, Vec::new(), None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body = json(&phone.prekeys(1..2, 0..0, false, false));
    let auth = laptop.authorization("POST", path, &body, signal_support::now_secs());
    let (status, answer) = phone
        .request(
            Method::POST,
            path,
            body,
            Some(auth.replace(&laptop.id.to_string(), &phone.id.to_string())),
        )
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", lossy(&answer));
    fed.shutdown().await;
    Ok(())
}

/// Bob at b.example with a phone (5 one-time prekeys of each kind and a last-resort
/// ML-KEM prekey) and a laptop (a last-resort ML-KEM prekey only); alice at
/// a.example and carol at b.example claim his bundles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_across_providers_hand_out_each_prekey_once() -> Result<()> {
    let fed = Federation::start(&[A, B]).await?;
    let alice = Arc::new(Device::register(&fed, "alice@a.example", "phone", 1, None).await?);
    let carol = Arc::new(Device::register(&fed, "carol@b.example", "phone", 1, None).await?);
    let bob_phone = Device::register(&fed, "bob@b.example", "phone", 1, None).await?;
    let bob_laptop = Device::register(&fed, "bob@b.example", "laptop", 2, Some(&bob_phone)).await?;
    let phone_upload = bob_phone.prekeys(1..6, 1..6, true, true);
    let _: PreKeyStatus = bob_phone
        .call(Method::POST, "/v1/signal/prekeys", &phone_upload)
        .await?;
    let laptop_upload = bob_laptop.prekeys(0..0, 0..0, true, true);
    let _: PreKeyStatus = bob_laptop
        .call(Method::POST, "/v1/signal/prekeys", &laptop_upload)
        .await?;
    let bob = "mimi://b.example/u/bob";

    // One claim from another provider: what bob published, signatures intact.
    let first: UserBundles = alice.call(Method::GET, &bundles_path(bob), &()).await?;
    assert_eq!(first.user, bob);
    assert_eq!(first.devices.len(), 2);
    let (p, l) = (&first.devices[0], &first.devices[1]);
    assert_eq!(
        (p.client.as_str(), p.device_id, p.registration_id),
        ("mimi://b.example/d/bob/phone", 1, bob_phone.registration_id)
    );
    let identity = PublicKey::decode(&p.identity_key)?;
    assert_eq!(identity, bob_phone.identity.public());
    let spk = &p.signed_prekey;
    assert!(identity.verify(&spk.public, &spk.signature.clone().try_into().unwrap()));
    assert_eq!(p.signed_prekey, phone_upload.signed_prekey.clone().unwrap());
    assert_eq!(
        p.one_time_prekey.as_ref().unwrap(),
        &phone_upload.one_time_prekeys[0]
    );
    assert_eq!(
        p.kyber_prekey.as_ref().unwrap(),
        &phone_upload.kyber_prekeys[0]
    );
    let k = p.kyber_prekey.as_ref().unwrap();
    assert!(identity.verify(&k.public, &k.signature.clone().try_into().unwrap()));
    assert!(l.one_time_prekey.is_none(), "the laptop published none");
    assert_eq!(
        l.kyber_prekey, laptop_upload.last_resort_kyber_prekey,
        "falls back to the last resort"
    );

    // Concurrent claims from both providers, in the handle form too: the 4 one-time
    // prekeys left of each kind go to 4 claims, each once; the rest get none and
    // the last-resort ML-KEM prekey.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (who, user) = if i % 2 == 0 {
            (alice.clone(), "bob@b.example")
        } else {
            (carol.clone(), bob)
        };
        tasks.spawn(async move {
            who.call::<UserBundles>(Method::GET, &bundles_path(user), &())
                .await
                .unwrap()
        });
    }
    let claims = tasks.join_all().await;
    let phones: Vec<_> = claims.iter().map(|c| c.devices[0].clone()).collect();
    let one_time: Vec<u32> = phones
        .iter()
        .filter_map(|d| d.one_time_prekey.as_ref().map(|k| k.id))
        .collect();
    assert_eq!(
        one_time.iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([&2, &3, &4, &5]),
        "{one_time:?}"
    );
    assert_eq!(one_time.len(), 4, "each once: {one_time:?}");
    let kyber: Vec<u32> = phones
        .iter()
        .map(|d| d.kyber_prekey.as_ref().unwrap().id)
        .collect();
    assert_eq!(
        kyber
            .iter()
            .filter(|id| **id != 9999)
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([&2, &3, &4, &5])
    );
    assert_eq!(kyber.iter().filter(|id| **id == 9999).count(), 8);
    let st: PreKeyStatus = bob_phone
        .call(Method::GET, "/v1/signal/prekeys", &())
        .await?;
    assert_eq!(
        (
            st.one_time_prekeys,
            st.kyber_prekeys,
            st.last_resort_kyber_prekey
        ),
        (0, 0, true)
    );

    // Exhausted: still a bundle, with the last resort. Replenished: fresh ones.
    let dry: UserBundles = alice.call(Method::GET, &bundles_path(bob), &()).await?;
    assert!(dry.devices[0].one_time_prekey.is_none());
    assert_eq!(dry.devices[0].kyber_prekey.as_ref().unwrap().id, 9999);
    let refill = bob_phone.prekeys(100..102, 100..102, false, false);
    let _: PreKeyStatus = bob_phone
        .call(Method::POST, "/v1/signal/prekeys", &refill)
        .await?;
    let fresh: UserBundles = alice.call(Method::GET, &bundles_path(bob), &()).await?;
    assert_eq!(
        fresh.devices[0].one_time_prekey.as_ref().unwrap(),
        &refill.one_time_prekeys[0]
    );
    assert_eq!(
        fresh.devices[0].kyber_prekey.as_ref().unwrap(),
        &refill.kyber_prekeys[0]
    );

    // A revoked device's bundle and prekeys are gone.
    let _: serde_json::Value = bob_phone
        .call(
            Method::DELETE,
            &format!(
                "/v1/devices/{}",
                path_segment("mimi://b.example/d/bob/laptop")
            ),
            &(),
        )
        .await?;
    let after: UserBundles = alice.call(Method::GET, &bundles_path(bob), &()).await?;
    assert_eq!(after.devices.len(), 1);
    assert!(cells_containing(&fed.database_path(B)?, "bob/laptop")?.is_empty());

    // Users without an account, here and there; bad user names.
    for user in ["mimi://b.example/u/nobody", "nobody@a.example"] {
        refused(
            &alice,
            Method::GET,
            &bundles_path(user),
            Vec::new(),
            404,
            "not_found",
            "nobody",
        )
        .await;
    }
    refused(
        &alice,
        Method::GET,
        "/v1/signal/bundles/%20",
        Vec::new(),
        400,
        "invalid_request",
        "user",
    )
    .await;
    // A user with no Signal device has no bundles.
    let none: UserBundles = alice
        .call(Method::GET, &bundles_path("mimi://b.example/u/carol"), &())
        .await?;
    assert!(none.devices.is_empty());

    // Peers only: the federation route refuses requests without a provider certificate.
    let fed_path = format!(
        "https://b.example/entente/v1/signal/bundles/{}",
        path_segment(bob)
    );
    let r = https(&fed, None)
        .post(&fed_path)
        .header("from", "mimi@a.example")
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let r = as_provider(&fed, "c.example")
        .post(&fed_path)
        .header("from", "mimi@a.example")
        .send()
        .await?;
    assert_eq!(
        r.status(),
        401,
        "a certificate for another domain than From"
    );
    // ...and hands out only its own users' bundles.
    let r = as_provider(&fed, A)
        .post(format!(
            "https://b.example/entente/v1/signal/bundles/{}",
            path_segment("mimi://a.example/u/alice")
        ))
        .header("from", "mimi@a.example")
        .send()
        .await?;
    assert_eq!(r.status(), 404);

    let metrics = https(&fed, None)
        .get("https://b.example/metrics")
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("entente_signal_prekeys_claimed_total 14"),
        "{metrics}"
    );
    assert!(
        metrics.contains("entente_signal_last_resort_served_total"),
        "{metrics}"
    );
    fed.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_local_and_remote_and_the_provider_switches() -> Result<()> {
    let mut fed = Federation::start(&[A, B]).await?;
    let alice = Device::register(&fed, "alice@a.example", "phone", 1, None).await?;
    let bob_phone = Device::register(&fed, "bob@b.example", "phone", 1, None).await?;
    let bob_laptop = Device::register(&fed, "bob@b.example", "laptop", 2, Some(&bob_phone)).await?;
    let bob = "mimi://b.example/u/bob";
    let _: PreKeyStatus = bob_phone
        .call(
            Method::POST,
            "/v1/signal/prekeys",
            &bob_phone.prekeys(1..3, 1..3, true, true),
        )
        .await?;

    let caps: Capabilities = alice
        .call(Method::GET, &capabilities_path("bob@b.example"), &())
        .await?;
    assert_eq!(
        (
            caps.user.as_str(),
            caps.provider_rooms,
            caps.provider_signal
        ),
        (bob, true, true)
    );
    let protocols = |c: &Capabilities| -> Vec<Vec<String>> {
        c.clients.iter().map(|c| c.protocols.clone()).collect()
    };
    assert_eq!(protocols(&caps), [vec!["signal".to_owned()], vec![]]);
    assert_eq!(caps.clients[1].client, bob_laptop.id.to_string());
    // Declared protocols; `signal` needs a signed prekey.
    let mine: ClientCapabilities = bob_phone
        .call(
            Method::POST,
            "/v1/capabilities",
            &serde_json::json!({ "protocols": ["signal", "mls10"] }),
        )
        .await?;
    assert_eq!(mine.protocols, ["mls10", "signal"]);
    let mine: ClientCapabilities = bob_laptop
        .call(
            Method::POST,
            "/v1/capabilities",
            &serde_json::json!({ "protocols": ["mls10", "signal"] }),
        )
        .await?;
    assert_eq!(mine.protocols, ["mls10"]);
    let remote: Capabilities = alice
        .call(Method::GET, &capabilities_path(bob), &())
        .await?;
    let local: Capabilities = bob_laptop
        .call(Method::GET, &capabilities_path(bob), &())
        .await?;
    assert_eq!(remote, local);
    // The user's URI may also stand unencoded in the path.
    let raw: Capabilities = alice
        .call(Method::GET, &format!("/v1/capabilities/{bob}"), &())
        .await?;
    assert_eq!(raw, remote);
    assert_eq!(protocols(&remote), [vec!["mls10", "signal"], vec!["mls10"]]);
    refused(
        &bob_phone,
        Method::POST,
        "/v1/capabilities",
        br#"{"protocols":["MLS 1.0"]}"#.to_vec(),
        400,
        "invalid_request",
        "protocols[0]",
    )
    .await;
    refused(
        &alice,
        Method::GET,
        &capabilities_path("nobody@b.example"),
        Vec::new(),
        404,
        "not_found",
        "nobody",
    )
    .await;
    let (status, _) = alice
        .request(Method::GET, &capabilities_path(bob), Vec::new(), None)
        .await?;
    assert_eq!(status, 401);

    // The MIMI directory lists the extension endpoints.
    let dir: serde_json::Value = https(&fed, None)
        .get("https://b.example/.well-known/mimi-protocol-directory")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        dir["entente:signalBundles"],
        "https://b.example/entente/v1/signal/bundles/{targetUser}"
    );
    assert_eq!(
        dir["entente:signalMessages"],
        "https://b.example/entente/v1/signal/messages"
    );
    assert_eq!(
        dir["entente:capabilities"],
        "https://b.example/entente/v1/capabilities/{targetUser}"
    );
    assert!(dir["notify"].is_string());

    // b.example offers only the Signal channel: no rooms, no KeyPackages.
    reconfigure(&mut fed, B, false, true, &alice, bob).await?;
    let caps: Capabilities = alice
        .call(Method::GET, &capabilities_path(bob), &())
        .await?;
    assert_eq!((caps.provider_rooms, caps.provider_signal), (false, true));
    refused(
        &bob_phone,
        Method::POST,
        "/v1/rooms",
        b"{}".to_vec(),
        501,
        "not_implemented",
        "only the Signal channel",
    )
    .await;
    let room = path_segment("mimi://b.example/r/x");
    refused(
        &bob_phone,
        Method::POST,
        &format!("/v1/rooms/{room}/key-material"),
        b"{}".to_vec(),
        501,
        "not_implemented",
        "serves no KeyPackages",
    )
    .await;
    refused(
        &bob_phone,
        Method::POST,
        &format!("/v1/rooms/{room}/group-info"),
        b"{}".to_vec(),
        501,
        "not_implemented",
        "hosts no",
    )
    .await;
    let _: UserBundles = alice.call(Method::GET, &bundles_path(bob), &()).await?;

    // b.example offers only MIMI rooms: every Signal route answers 501, before
    // authentication, and across providers too.
    reconfigure(&mut fed, B, true, false, &alice, bob).await?;
    let caps: Capabilities = alice
        .call(Method::GET, &capabilities_path(bob), &())
        .await?;
    assert_eq!((caps.provider_rooms, caps.provider_signal), (true, false));
    for (method, path) in [
        (Method::GET, "/v1/signal/prekeys".to_owned()),
        (Method::POST, "/v1/signal/prekeys".to_owned()),
        (Method::GET, bundles_path(bob)),
        (Method::POST, "/v1/signal/sender-certificate".to_owned()),
        (Method::POST, "/v1/signal/messages".to_owned()),
    ] {
        refused(
            &bob_phone,
            method.clone(),
            &path,
            b"{}".to_vec(),
            501,
            "not_implemented",
            "protocols.signal = false",
        )
        .await;
        let (status, _) = bob_phone.request(method, &path, Vec::new(), None).await?;
        assert_eq!(status, 501, "{path} unauthenticated");
    }
    refused(
        &alice,
        Method::GET,
        &bundles_path(bob),
        Vec::new(),
        501,
        "not_implemented",
        "b.example",
    )
    .await;
    let dir: serde_json::Value = https(&fed, None)
        .get("https://b.example/.well-known/mimi-protocol-directory")
        .send()
        .await?
        .json()
        .await?;
    assert!(dir.get("entente:signalBundles").is_none() && dir["entente:capabilities"].is_string());
    fed.shutdown().await;
    Ok(())
}

/// A send that must be answered 409 mismatched devices.
async fn mismatch(d: &Device, send: SealedSend) -> MismatchedDevices {
    let (status, answer) = d
        .signed(Method::POST, "/v1/signal/messages", json(&send))
        .await
        .unwrap();
    assert_eq!(status, 409, "{}", lossy(&answer));
    serde_json::from_slice(&answer).unwrap()
}

/// Restarts `domain` with other protocol switches, and waits until `peer` (a device
/// of another provider) reaches it again through its provider.
async fn reconfigure(
    fed: &mut Federation,
    domain: &str,
    mls_rooms: bool,
    signal: bool,
    peer: &Device,
    user: &str,
) -> Result<()> {
    fed.stop(domain).await?;
    let m = fed.members.get_mut(domain).unwrap();
    m.config.protocols.mls_rooms = mls_rooms;
    m.config.protocols.signal = signal;
    fed.restart(domain).await?;
    let deadline = std::time::Instant::now() + signal_support::DEADLINE;
    loop {
        let (status, answer) = peer
            .signed(Method::GET, &capabilities_path(user), Vec::new())
            .await?;
        if status.is_success() {
            return Ok(());
        }
        assert_eq!(status, 503, "{}", lossy(&answer));
        assert!(
            std::time::Instant::now() < deadline,
            "{domain} unreachable: {}",
            lossy(&answer)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_certificates_for_the_published_identity_only() -> Result<()> {
    let fed = Federation::start(&[A]).await?;
    let alice = Device::register(&fed, "alice@a.example", "phone", 7, None).await?;
    let path = "/v1/signal/sender-certificate";
    let ask = serde_json::json!({ "identity_key": entente_wire::api::b64::encode(&alice.identity.public().encode()) });
    refused(
        &alice,
        Method::POST,
        path,
        json(&ask),
        409,
        "no_signal_identity",
        "POST /v1/signal/prekeys",
    )
    .await;
    let _: PreKeyStatus = alice
        .call(
            Method::POST,
            "/v1/signal/prekeys",
            &alice.prekeys(1..2, 1..2, true, true),
        )
        .await?;
    let before = signal_support::now_ms();
    let r: SenderCertificateResponse = alice.call(Method::POST, path, &ask).await?;
    assert!(
        r.expires_ms >= before + 24 * 3_600_000
            && r.expires_ms <= signal_support::now_ms() + 24 * 3_600_000
    );
    let cert = SenderCertificate::decode(&r.certificate)?;
    assert_eq!(
        (
            cert.sender_user.as_str(),
            cert.sender_client.as_str(),
            cert.device_id
        ),
        (
            "mimi://a.example/u/alice",
            "mimi://a.example/d/alice/phone",
            7
        )
    );
    assert_eq!(cert.identity_key, alice.identity.public());
    assert_eq!(cert.expires_ms, r.expires_ms);
    let info: ProviderInfo = https(&fed, None)
        .get("https://a.example/v1/provider")
        .send()
        .await?
        .json()
        .await?;
    let issuer = entente_core::identity::IssuerPublicKey::from_bytes(
        "a.example".parse()?,
        &info.issuer_key,
    )?;
    cert.verify(&issuer, signal_support::now_ms())?;
    assert!(cert.verify(&issuer, r.expires_ms + 1).is_err(), "expired");

    // Another identity key than the published one; garbage.
    let other = entente_core::signal::keys::IdentityKeyPair::generate(&mut rand::rngs::OsRng);
    let wrong = serde_json::json!({ "identity_key": entente_wire::api::b64::encode(&other.public().encode()) });
    refused(
        &alice,
        Method::POST,
        path,
        json(&wrong),
        403,
        "identity_mismatch",
        "not the identity key",
    )
    .await;
    refused(
        &alice,
        Method::POST,
        path,
        br#"{"identity_key":"AAAA"}"#.to_vec(),
        400,
        "invalid_request",
        "identity_key: an X25519 public key is 33 bytes",
    )
    .await;
    refused(
        &alice,
        Method::POST,
        path,
        b"[1,2]".to_vec(),
        400,
        "invalid_request",
        "invalid JSON body",
    )
    .await;
    let (status, _) = alice.request(Method::POST, path, json(&ask), None).await?;
    assert_eq!(status, 401);
    fed.shutdown().await;
    Ok(())
}

fn sealed_to(user: &str, devices: &[&Device], tag: u8) -> SealedSend {
    SealedSend {
        recipient: user.into(),
        messages: devices
            .iter()
            .enumerate()
            .map(|(i, d)| SealedMessage {
                client: d.id.to_string(),
                sealed: sealed_bytes(tag, i as u8),
            })
            .collect(),
    }
}

/// Stand-ins for sealed-sender envelopes: the provider never looks inside.
fn sealed_bytes(tag: u8, index: u8) -> Vec<u8> {
    let mut b = vec![0; 200];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
    b[..2].copy_from_slice(&[tag, index]);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_delivery_local_and_across_providers_names_no_sender() -> Result<()> {
    let fed = Federation::start(&[A, B]).await?;
    let alice = Device::register(&fed, "alice@a.example", "phone", 1, None).await?;
    let carol = Device::register(&fed, "carol@a.example", "phone", 1, None).await?;
    let carol_laptop = Device::register(&fed, "carol@a.example", "laptop", 2, Some(&carol)).await?;
    let bob_phone = Device::register(&fed, "bob@b.example", "phone", 1, None).await?;
    let bob_laptop = Device::register(&fed, "bob@b.example", "laptop", 2, Some(&bob_phone)).await?;
    for d in [&alice, &carol, &carol_laptop, &bob_phone, &bob_laptop] {
        let _: PreKeyStatus = d
            .call(
                Method::POST,
                "/v1/signal/prekeys",
                &d.prekeys(1..3, 1..3, true, true),
            )
            .await?;
    }
    let path = "/v1/signal/messages";

    // Local: alice to carol's two devices. A retry of the same send is stored once.
    let send = sealed_to("carol@a.example", &[&carol, &carol_laptop], 1);
    let r: SealedSendResult = alice.call(Method::POST, path, &send).await?;
    assert_eq!(r.accepted, 2);
    let _: SealedSendResult = alice.call(Method::POST, path, &send).await?;
    for (d, m) in [
        (&carol, &send.messages[0]),
        (&carol_laptop, &send.messages[1]),
    ] {
        let items = d.inbox_until(1).await?;
        assert_eq!(items.len(), 1, "once");
        assert_eq!(
            (items[0].room.as_str(), &items[0].fanout),
            (SEALED_INBOX, &m.sealed)
        );
    }
    // A user's own other device, without the sending one.
    let _: SealedSendResult = carol
        .call(
            Method::POST,
            path,
            &sealed_to("carol@a.example", &[&carol_laptop], 2),
        )
        .await?;
    assert_eq!(carol_laptop.inbox_until(2).await?.len(), 2);

    // Devices that are not carol's current ones: 409 with what is missing and stale.
    let m = mismatch(&alice, sealed_to("carol@a.example", &[&carol], 3)).await;
    assert_eq!(
        (m.code.as_str(), m.missing.clone(), m.stale.clone()),
        (
            "mismatched_devices",
            vec![carol_laptop.id.to_string()],
            vec![]
        )
    );
    let mut stale = sealed_to("carol@a.example", &[&carol, &carol_laptop], 3);
    stale.messages.push(SealedMessage {
        client: "mimi://a.example/d/carol/tablet".into(),
        sealed: vec![1],
    });
    let m = mismatch(&alice, stale).await;
    assert_eq!(
        (m.missing, m.stale),
        (vec![], vec!["mimi://a.example/d/carol/tablet".to_owned()])
    );
    assert_eq!(carol.inbox().await?.len(), 1, "nothing delivered");

    // Across providers: alice to bob's two devices, through a.example's queue.
    let send = sealed_to("mimi://b.example/u/bob", &[&bob_phone, &bob_laptop], 4);
    let r: SealedSendResult = alice.call(Method::POST, path, &send).await?;
    assert_eq!(r.accepted, 2);
    for (d, m) in [
        (&bob_phone, &send.messages[0]),
        (&bob_laptop, &send.messages[1]),
    ] {
        let items = d.inbox_until(1).await?;
        assert_eq!(
            (items[0].room.as_str(), &items[0].fanout),
            (SEALED_INBOX, &m.sealed)
        );
    }
    // b.example's database holds the messages, and nothing that names alice (the
    // scan does find what is there: bob's devices, the sealed bytes).
    let b_db = fed.database_path(B)?;
    assert!(
        cells_containing(&b_db, "alice")?.is_empty(),
        "b.example stored the sender"
    );
    assert!(cells_containing(&b_db, "bob/laptop")?.contains(&"clients.client".to_owned()));
    assert_eq!(
        cells_containing(&b_db, &send.messages[0].sealed)?,
        ["messages.payload"]
    );
    // A repeated delivery (the queue retrying after a lost answer) is stored once.
    let delivery = SealedDelivery {
        messages: send.messages.clone(),
    };
    for _ in 0..2 {
        let r = as_provider(&fed, A)
            .post("https://b.example/entente/v1/signal/messages")
            .header("from", "mimi@a.example")
            .json(&delivery)
            .send()
            .await?;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(bob_phone.inbox().await?.len(), 1);

    // Refusals: unsigned, garbage, a device of someone else, foreign deliveries.
    let (status, _) = alice.request(Method::POST, path, json(&send), None).await?;
    assert_eq!(status, 401);
    refused(
        &alice,
        Method::POST,
        path,
        b"{\"recipient\":1}".to_vec(),
        400,
        "invalid_request",
        "invalid JSON body",
    )
    .await;
    let mut foreign = sealed_to("bob@b.example", &[&bob_phone], 5);
    foreign.messages[0].client = carol.id.to_string();
    refused(
        &alice,
        Method::POST,
        path,
        json(&foreign),
        400,
        "invalid_request",
        "is not a device of mimi://b.example/u/bob",
    )
    .await;
    let mut empty = sealed_to("bob@b.example", &[&bob_phone], 5);
    empty.messages[0].sealed.clear();
    refused(
        &alice,
        Method::POST,
        path,
        json(&empty),
        400,
        "invalid_request",
        "messages[0].sealed is empty",
    )
    .await;
    refused(
        &alice,
        Method::POST,
        path,
        json(&sealed_to("nobody@a.example", &[], 5)),
        400,
        "invalid_request",
        "messages is empty",
    )
    .await;
    let fed_url = "https://a.example/entente/v1/signal/messages";
    let to_alice = SealedDelivery {
        messages: vec![SealedMessage {
            client: alice.id.to_string(),
            sealed: vec![9],
        }],
    };
    let r = https(&fed, None)
        .post(fed_url)
        .header("from", "mimi@b.example")
        .json(&to_alice)
        .send()
        .await?;
    assert_eq!(r.status(), 401, "no provider certificate");
    let r = as_provider(&fed, B)
        .post(fed_url)
        .header("from", "mimi@b.example")
        .json(&SealedDelivery {
            messages: vec![SealedMessage {
                client: bob_phone.id.to_string(),
                sealed: vec![9],
            }],
        })
        .send()
        .await?;
    assert_eq!(r.status(), 400, "not a client of a.example");
    let r = as_provider(&fed, B)
        .post(fed_url)
        .header("from", "mimi@b.example")
        .body("{\"messages\":[],\"sender\":\"mimi://b.example/u/bob\"}")
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    assert!(
        api_error(&r.bytes().await?)
            .1
            .contains("unknown field `sender`")
    );
    assert_eq!(alice.inbox().await?.len(), 0);

    let metrics = https(&fed, None)
        .get("https://a.example/metrics")
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("entente_sealed_messages_accepted_total 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("entente_sealed_messages_delivered_total 3"),
        "{metrics}"
    );
    fed.shutdown().await;
    Ok(())
}

/// A sealed message accepted by a.example while b.example is down, and a.example
/// crashing before it could deliver: after both restart it is delivered, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_accept_and_delivery_still_delivers() -> Result<()> {
    let mut fed = Federation::start(&[A, B]).await?;
    let alice = Device::register(&fed, "alice@a.example", "phone", 1, None).await?;
    let bob = Device::register(&fed, "bob@b.example", "phone", 1, None).await?;
    let _: PreKeyStatus = bob
        .call(
            Method::POST,
            "/v1/signal/prekeys",
            &bob.prekeys(1..3, 1..3, true, true),
        )
        .await?;
    let bundles: UserBundles = alice
        .call(Method::GET, &bundles_path("bob@b.example"), &())
        .await?;
    assert_eq!(bundles.devices.len(), 1);

    fed.kill(B).await?;
    let send = sealed_to("bob@b.example", &[&bob], 6);
    let r: SealedSendResult = alice
        .call(Method::POST, "/v1/signal/messages", &send)
        .await?;
    assert_eq!(r.accepted, 1);
    // Let the worker try (and fail) at least once, then crash a.example.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    fed.kill(A).await?;
    fed.restart(B).await?;
    fed.restart(A).await?;
    let items = bob.inbox_until(1).await?;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].fanout, send.messages[0].sealed);
    assert!(cells_containing(&fed.database_path(B)?, "alice")?.is_empty());
    fed.shutdown().await;
    Ok(())
}
