//! Rate limits end to end: real providers on loopback, with limits set low on
//! a.example. Over a limit, a request gets `429` with a `Retry-After` header and
//! the JSON error saying what was limited and when to retry; after waiting that
//! long it succeeds. Limits are per device, per user (across the user's devices)
//! and per remote domain; others are not affected. The client library turns a
//! `429` into `ClientError::RateLimited` and keeps the message for later.
//!
//! The tests sleep for the retry-after they are given; nothing asserts on timing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, helpers included"
)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer as _, SigningKey};
use entente_client::{Client, ClientError, Event};
use entente_provider::config::Config;
use entente_provider::ratelimit::Rate;
use entente_testkit::Federation;
use entente_tls::DevCa;
use entente_wire::api::{self, ApiError, LinkCodeResponse, RegisterRequest, b64};
use entente_wire::ids::{ClientId, RoomId, UserId};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

const A: &str = "a.example";
const B: &str = "b.example";

/// A device whose signed requests the test makes by hand, to see status and headers.
struct Device {
    id: ClientId,
    key: SigningKey,
    http: reqwest::Client,
    base: String,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn error(&self) -> ApiError {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: not a JSON error ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `Retry-After` header of a 429, checked against the body.
    fn retry_after(&self) -> u64 {
        assert_eq!(self.status, StatusCode::TOO_MANY_REQUESTS);
        let header: u64 = self
            .headers
            .get("retry-after")
            .expect("a 429 has a Retry-After header")
            .to_str()
            .unwrap()
            .parse()
            .expect("Retry-After is whole seconds");
        let e = self.error();
        assert_eq!(e.code, "rate_limited");
        assert_eq!(e.retry_after_secs, Some(header));
        assert!(
            e.message.contains(&format!("try again in {header} s")),
            "{}",
            e.message
        );
        assert!(header >= 1);
        header
    }
}

fn https(fed: &Federation, identity: Option<&entente_tls::Identity>) -> reqwest::Client {
    let anchors = DevCa::load(fed.root().join("ca"))
        .unwrap()
        .trust_anchors()
        .unwrap();
    let tls = entente_tls::client_config(&anchors, identity).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .timeout(Duration::from_secs(30));
    for (domain, m) in &fed.members {
        b = b.resolve(domain, m.config.listen);
    }
    b.build().unwrap()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Device {
    async fn register(fed: &Federation, user: &str, device: &str, link: Option<String>) -> Self {
        let user: UserId = user.parse().unwrap();
        let id = ClientId::new(&user, device).unwrap();
        let key = SigningKey::from_bytes(&rand::random());
        let public = key.verifying_key().to_bytes();
        let proof = key
            .sign(&api::registration_proof_message(
                &id.to_string(),
                &b64::encode(&public),
            ))
            .to_bytes()
            .to_vec();
        let d = Self {
            id,
            key,
            http: https(fed, None),
            base: format!("https://{}", user.domain()),
        };
        let body = serde_json::to_vec(&RegisterRequest {
            user: user.to_string(),
            device: device.into(),
            signature_key: public.to_vec(),
            proof,
            link_code: link,
        })
        .unwrap();
        let r = d
            .http
            .post(format!("{}/v1/register", d.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "register: {}", r.status());
        d
    }

    async fn signed(&self, method: Method, path: &str, body: Vec<u8>) -> Answer {
        let nonce = hex::encode(rand::random::<[u8; 12]>());
        let ts = now_secs();
        let msg = api::signed_request_message(
            method.as_str(),
            path,
            ts,
            &nonce,
            &hex::encode(Sha256::digest(&body)),
        );
        let sig = self.key.sign(&msg).to_bytes();
        let auth = format!(
            r#"{} client="{}", ts="{ts}", nonce="{nonce}", sig="{}""#,
            api::AUTH_SCHEME,
            self.id,
            b64::encode(&sig)
        );
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(api::AUTH_HEADER, auth);
        if !body.is_empty() {
            req = req.header("content-type", "application/json").body(body);
        }
        let r = req.send().await.unwrap();
        Answer {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.bytes().await.unwrap().to_vec(),
        }
    }

    /// A cheap authenticated request: the device's KeyPackage count.
    async fn poke(&self) -> Answer {
        self.signed(Method::GET, "/v1/key-packages", Vec::new())
            .await
    }

    async fn link_code(&self) -> String {
        let a = self
            .signed(Method::POST, "/v1/devices/link-code", b"{}".to_vec())
            .await;
        assert!(a.status.is_success(), "{}", a.status);
        serde_json::from_slice::<LinkCodeResponse>(&a.body)
            .unwrap()
            .code
    }
}

fn limits(domain: &str, config: &mut Config, set: impl Fn(&mut Config)) {
    if domain == A {
        set(config);
    }
}

/// Waits out a retry-after (plus a little, for the clock between the answer and
/// the sleep's start is not ours to see).
async fn wait(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs) + Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_device_over_its_limit_gets_429_then_succeeds_after_waiting() {
    let fed = Federation::start_with(&[A, B], |d, c| {
        limits(d, c, |c| c.rate_limits.client = Rate::new(0.5, 3))
    })
    .await
    .unwrap();
    let alice = Device::register(&fed, "alice@a.example", "phone", None).await;
    let bob = Device::register(&fed, "bob@a.example", "phone", None).await;

    for _ in 0..3 {
        let a = alice.poke().await;
        assert_eq!(a.status, StatusCode::OK);
    }
    let limited = alice.poke().await;
    let secs = limited.retry_after();
    assert!(secs <= 2, "at 0.5 per second the next token is 2 s away");
    let e = limited.error();
    assert!(
        e.message
            .contains("too many requests from your device mimi://a.example/d/alice/phone"),
        "{}",
        e.message
    );
    assert!(e.message.contains("at most 3 at once"), "{}", e.message);

    // Another user of the same provider is not affected.
    for _ in 0..3 {
        assert_eq!(bob.poke().await.status, StatusCode::OK);
    }

    wait(secs).await;
    assert_eq!(alice.poke().await.status, StatusCode::OK);

    // The refusals are counted, per class, in the provider's metrics.
    let metrics = https(&fed, None)
        .get("https://a.example/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("entente_rate_limited_total{class=\"client\"}"))
        .expect("metrics have the client class");
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1, "{line}");
    fed.shutdown().await;
}

#[tokio::test]
async fn the_user_limit_spans_the_users_devices() {
    let fed = Federation::start_with(&[A, B], |d, c| {
        limits(d, c, |c| c.rate_limits.user = Rate::new(0.25, 5))
    })
    .await
    .unwrap();
    let phone = Device::register(&fed, "alice@a.example", "phone", None).await;
    let code = phone.link_code().await; // 1
    let laptop = Device::register(&fed, "alice@a.example", "laptop", Some(code)).await;
    let bob = Device::register(&fed, "bob@a.example", "phone", None).await;

    assert_eq!(phone.poke().await.status, StatusCode::OK); // 2
    assert_eq!(phone.poke().await.status, StatusCode::OK); // 3
    assert_eq!(laptop.poke().await.status, StatusCode::OK); // 4
    assert_eq!(laptop.poke().await.status, StatusCode::OK); // 5
    // Each device has made at most three requests, but the user five.
    let limited = laptop.poke().await;
    let secs = limited.retry_after();
    let e = limited.error();
    assert!(
        e.message
            .contains("mimi://a.example/u/alice (all devices together)"),
        "{}",
        e.message
    );
    let other = phone.poke().await;
    assert_eq!(other.status, StatusCode::TOO_MANY_REQUESTS);
    // Bob is not affected.
    assert_eq!(bob.poke().await.status, StatusCode::OK);

    wait(secs.max(other.retry_after())).await;
    assert_eq!(phone.poke().await.status, StatusCode::OK);
    fed.shutdown().await;
}

/// A "provider" that the test plays: a client with a CA-issued certificate for
/// `domain`, speaking MIMI to a.example.
struct Peer {
    domain: String,
    http: reqwest::Client,
}

impl Peer {
    fn new(fed: &Federation, domain: &str) -> Self {
        let ca = DevCa::load(fed.root().join("ca")).unwrap();
        let identity = ca.issue(domain).unwrap().identity().unwrap();
        Self {
            domain: domain.into(),
            http: https(fed, Some(&identity)),
        }
    }

    /// A groupState request for a room that does not exist: refused after the
    /// peer is authenticated, so each one takes a token.
    async fn request(&self, to: &str) -> Answer {
        let room = entente_wire::api::path_segment("mimi://a.example/r/nothing-here");
        let r = self
            .http
            .post(format!("https://{to}/mimi/v1/groupState/{room}"))
            .header("from", format!("mimi@{}", self.domain))
            .header("content-type", "application/mimi-protocol")
            .body(Vec::new())
            .send()
            .await
            .unwrap();
        Answer {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.bytes().await.unwrap().to_vec(),
        }
    }
}

#[tokio::test]
async fn a_flooding_remote_domain_gets_429_while_others_are_served() {
    let fed = Federation::start_with(&[A, B], |d, c| {
        limits(d, c, |c| c.rate_limits.federation = Rate::new(0.5, 20))
    })
    .await
    .unwrap();
    // Real traffic first: bob@b.example in a room hubbed by a.example.
    let mut alice = fed.register("alice@a.example", "phone").await.unwrap();
    let mut bob = fed.register("bob@b.example", "phone").await.unwrap();
    let room = alice.create_room().await.unwrap();
    alice.invite(&room, bob.user()).await.unwrap();
    wait_joined(&mut bob, &room).await;

    // evil.example floods a.example until it is refused.
    let evil = Peer::new(&fed, "evil.example");
    let mut refused = None;
    for _ in 0..40 {
        let a = evil.request(A).await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(a);
            break;
        }
        assert_served(&a);
    }
    let refused = refused.expect("the flood was limited");
    let secs = refused.retry_after();
    let e = refused.error();
    assert!(
        e.message
            .contains("too many federation requests from your provider evil.example"),
        "{}",
        e.message
    );
    assert_eq!(evil.request(A).await.status, StatusCode::TOO_MANY_REQUESTS);

    // Another domain is served meanwhile: a raw request as c.example, and the real
    // b.example's traffic.
    let other = Peer::new(&fed, "c.example");
    assert_served(&other.request(A).await);
    bob.send_text(&room, "still flowing", false).await.unwrap();
    wait_text(&mut alice, "still flowing").await;

    wait(secs).await;
    assert_served(&evil.request(A).await);
    fed.shutdown().await;
}

/// Authenticated and handled (the room does not exist), not rate limited.
fn assert_served(a: &Answer) {
    assert!(
        a.status.is_client_error()
            && a.status != StatusCode::TOO_MANY_REQUESTS
            && a.status != StatusCode::UNAUTHORIZED,
        "{}: {}",
        a.status,
        String::from_utf8_lossy(&a.body)
    );
}

async fn wait_joined(client: &mut Client, room: &RoomId) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        client.sync().await.unwrap();
        if client.rooms().unwrap().iter().any(|r| &r.room == room) {
            return;
        }
        assert!(Instant::now() < deadline, "{} never joined", client.id());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Syncs until `text` arrived; returns how many messages arrived in all.
async fn wait_text(client: &mut Client, text: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut texts = Vec::new();
    loop {
        for e in client.sync().await.unwrap() {
            if let Event::Message(m) = e {
                texts.push(m.text.unwrap_or_default());
            }
        }
        if texts.iter().any(|t| t == text) {
            return texts;
        }
        assert!(
            Instant::now() < deadline,
            "{text:?} never arrived: {texts:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn the_client_library_surfaces_rate_limited_and_keeps_the_message() {
    let fed = Federation::start_with(&[A, B], |d, c| {
        limits(d, c, |c| c.rate_limits.messages = Rate::new(0.25, 3))
    })
    .await
    .unwrap();
    let mut alice = fed.register("alice@a.example", "phone").await.unwrap();
    let mut bob = fed.register("bob@b.example", "phone").await.unwrap();
    let room = alice.create_room().await.unwrap();
    alice.invite(&room, bob.user()).await.unwrap();
    wait_joined(&mut bob, &room).await;

    for i in 0..3 {
        alice
            .send_text(&room, &format!("m{i}"), false)
            .await
            .unwrap();
    }
    let err = alice.send_text(&room, "m3", false).await.unwrap_err();
    let ClientError::RateLimited {
        retry_after_secs,
        message,
    } = &err
    else {
        panic!("expected RateLimited, got {err:?}");
    };
    assert!((1..=4).contains(retry_after_secs), "{err}");
    assert!(message.contains("too many message submissions"), "{err}");
    let shown = err.to_string();
    assert!(
        shown.contains(&format!("wait {retry_after_secs} s")),
        "the error tells the user how long to wait: {shown}"
    );
    assert!(err.is_transient());
    // The message is kept, pending.
    let history = alice.history(&room, 10).unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.text.as_deref(), Some("m3"));
    assert!(last.pending);
    // Resending right away does not even ask the provider: it says to wait.
    match alice.resend_pending().await {
        Err(ClientError::RateLimited { .. }) => {}
        other => panic!("expected RateLimited, got {other:?}"),
    }

    wait(*retry_after_secs).await;
    let resent = alice.resend_pending().await.unwrap();
    assert_eq!(resent.len(), 1);
    let texts = wait_text(&mut bob, "m3").await;
    assert_eq!(texts, ["m0", "m1", "m2", "m3"], "each once, in order");
    fed.shutdown().await;
}
