//! The spam-filter hook end to end: filters see metadata of real traffic and never
//! its plaintext; a rejecting filter makes sends fail with a clear error; an
//! operator's webhook on loopback decides too (and fails open or closed as
//! configured); the built-in filter throttles a user with verified reports.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, helpers included"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entente_client::{Client, ClientError, Event};
use entente_provider::spam::{
    Actor, EventKind, ReportInfo, SpamEvent, SpamFilter, Verdict, WebhookConfig,
};
use entente_testkit::Federation;
use entente_wire::ids::RoomId;
use futures_like::BoxFuture;

const A: &str = "a.example";
const B: &str = "b.example";

mod futures_like {
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

/// Records every event it sees; allows everything.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<SpamEvent>>,
}

impl SpamFilter for Recorder {
    fn observe<'a>(&'a self, event: &'a SpamEvent) -> BoxFuture<'a, Verdict> {
        self.events.lock().unwrap().push(event.clone());
        Box::pin(async { Verdict::Allow })
    }
}

/// Rejects message submissions by one user.
struct RejectUser(&'static str);

impl SpamFilter for RejectUser {
    fn observe<'a>(&'a self, event: &'a SpamEvent) -> BoxFuture<'a, Verdict> {
        let hit = event.kind == EventKind::MessageSubmission
            && event.actor.user().is_some_and(|u| u.to_string() == self.0);
        Box::pin(async move {
            if hit {
                Verdict::Reject {
                    reason: "this test does not like you".into(),
                }
            } else {
                Verdict::Allow
            }
        })
    }
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

/// Syncs until every text in `want` arrived (room or direct messages).
async fn wait_texts(client: &mut Client, want: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut texts = Vec::new();
    loop {
        for e in client.sync().await.unwrap() {
            match e {
                Event::Message(m) => texts.push(m.text.unwrap_or_default()),
                Event::Direct(d) => texts.push(format!("{d:?}")),
                _ => {}
            }
        }
        if want.iter().all(|w| texts.iter().any(|t| t.contains(w))) {
            return texts;
        }
        assert!(
            Instant::now() < deadline,
            "{want:?} never all arrived: {texts:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn room_with_bob(fed: &Federation) -> (Client, Client, RoomId) {
    let mut alice = fed.register("alice@a.example", "phone").await.unwrap();
    let mut bob = fed.register("bob@b.example", "phone").await.unwrap();
    let room = alice.create_room().await.unwrap();
    alice.invite(&room, bob.user()).await.unwrap();
    wait_joined(&mut bob, &room).await;
    (alice, bob, room)
}

#[tokio::test]
async fn filters_see_metadata_of_a_session_and_never_its_plaintext() {
    let mut fed = Federation::start(&[A, B]).await.unwrap();
    let (rec_a, rec_b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    fed.add_spam_filter(A, rec_a.clone()).unwrap();
    fed.add_spam_filter(B, rec_b.clone()).unwrap();
    let (mut alice, mut bob, room) = room_with_bob(&fed).await;

    const SECRETS: [&str; 3] = [
        "canary-Zq8rT-room-from-alice",
        "canary-Kx3vW-room-from-bob",
        "canary-Pm5yN-sealed-direct",
    ];
    alice.send_text(&room, SECRETS[0], false).await.unwrap();
    wait_texts(&mut bob, &[SECRETS[0]]).await;
    bob.send_text(&room, SECRETS[1], false).await.unwrap();
    wait_texts(&mut alice, &[SECRETS[1]]).await;
    alice
        .send_direct_text(bob.user(), SECRETS[2], false)
        .await
        .unwrap();
    wait_texts(&mut bob, &[SECRETS[2]]).await;

    let a = rec_a.events.lock().unwrap().clone();
    let b = rec_b.events.lock().unwrap().clone();
    let json = serde_json::to_string(&(&a, &b)).unwrap();
    for s in SECRETS {
        assert!(!json.contains(s), "a filter saw plaintext {s}: {json}");
    }
    // Not even the text's bytes in some other encoding: look for a distinctive part.
    assert!(!json.contains("Zq8rT") && !json.contains("Kx3vW") && !json.contains("Pm5yN"));

    let has = |events: &[SpamEvent], kind: EventKind, actor: &dyn Fn(&Actor) -> bool| {
        events.iter().any(|e| e.kind == kind && actor(&e.actor))
    };
    let local = |who: &'static str| move |a: &Actor| matches!(a, Actor::LocalUser { user } if user.to_string() == who);
    // The hub saw alice's message from its own client and bob's from b.example
    // (naming bob), with room, size and recipients.
    assert!(has(
        &a,
        EventKind::MessageSubmission,
        &local("mimi://a.example/u/alice")
    ));
    assert!(has(&a, EventKind::MessageSubmission, &|x| matches!(x,
        Actor::Remote { domain, user: Some(u) } if domain.as_str() == B && u.to_string() == "mimi://b.example/u/bob")));
    let m = a
        .iter()
        .find(|e| e.kind == EventKind::MessageSubmission)
        .unwrap();
    assert_eq!(m.room.as_ref(), Some(&room));
    assert!(m.size.unwrap() > 0 && m.recipients.is_some());
    // Bob's provider saw its own client's message before relaying it.
    assert!(has(
        &b,
        EventKind::MessageSubmission,
        &local("mimi://b.example/u/bob")
    ));
    // Key material was claimed for bob when alice invited him: at the hub and at
    // bob's provider.
    assert!(has(
        &a,
        EventKind::KeyMaterialClaim,
        &local("mimi://a.example/u/alice")
    ));
    assert!(has(
        &b,
        EventKind::KeyMaterialClaim,
        &|x| matches!(x, Actor::Remote { domain, .. } if domain.as_str() == A)
    ));
    // The direct message: alice's provider knows her (she is its user) and claimed
    // bob's bundles; bob's provider saw only a sealed delivery from a.example.
    assert!(has(
        &a,
        EventKind::BundleClaim,
        &local("mimi://a.example/u/alice")
    ));
    assert!(has(
        &a,
        EventKind::SealedSend,
        &local("mimi://a.example/u/alice")
    ));
    assert!(has(&b, EventKind::SealedSend, &|x| matches!(x,
        Actor::Remote { domain, user: None } if domain.as_str() == A)));
    fed.shutdown().await;
}

#[tokio::test]
async fn a_rejecting_filter_makes_sends_fail_with_a_clear_error() {
    let mut fed = Federation::start(&[A, B]).await.unwrap();
    let (mut alice, mut bob, room) = room_with_bob(&fed).await;
    // The hub's filter refuses bob's messages; bob's provider passes the refusal on.
    fed.add_spam_filter(A, Arc::new(RejectUser("mimi://b.example/u/bob")))
        .unwrap();

    let err = bob.send_text(&room, "buy now", false).await.unwrap_err();
    match &err {
        ClientError::Provider {
            status: 403,
            code,
            message,
            ..
        } if code == "spam_rejected" => {
            assert!(message.contains("this test does not like you"), "{err}");
            assert!(message.contains("spam filter of a.example"), "{err}");
        }
        other => panic!("expected spam_rejected, got {other:?}"),
    }
    // The refused message is not kept for resending.
    assert!(
        bob.history(&room, 10)
            .unwrap()
            .iter()
            .all(|h| h.text.as_deref() != Some("buy now"))
    );
    assert!(bob.resend_pending().await.unwrap().is_empty());

    // Alice is not affected, and bob still receives.
    alice.send_text(&room, "hello bob", false).await.unwrap();
    wait_texts(&mut bob, &["hello bob"]).await;
    fed.shutdown().await;
}

/// The operator's webhook, on loopback: records the events' JSON; rejects
/// message submissions while `reject` is set.
struct Webhook {
    url: String,
    seen: Arc<Mutex<Vec<serde_json::Value>>>,
    reject: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

async fn webhook() -> Webhook {
    let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let reject = Arc::new(AtomicBool::new(false));
    let (s, r) = (seen.clone(), reject.clone());
    let app = axum::Router::new().route(
        "/spam",
        axum::routing::post(move |axum::Json(event): axum::Json<serde_json::Value>| {
            let (s, r) = (s.clone(), r.clone());
            async move {
                let submission = event["kind"] == "message_submission";
                s.lock().unwrap().push(event);
                axum::Json(if submission && r.load(Ordering::SeqCst) {
                    serde_json::json!({ "verdict": "reject", "reason": "the webhook says no" })
                } else {
                    serde_json::json!({ "verdict": "allow" })
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/spam", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Webhook {
        url,
        seen,
        reject,
        task,
    }
}

#[tokio::test]
async fn a_webhook_on_loopback_decides_and_fails_open_or_closed() {
    let hook = webhook().await;
    // A dead port for b.example's webhook, which fails closed.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/spam", l.local_addr().unwrap())
    };
    let url = hook.url.clone();
    let fed = Federation::start_with(&[A, B], move |d, c| {
        c.spam.webhook = Some(WebhookConfig {
            url: if d == A { url.clone() } else { dead.clone() },
            timeout_ms: 2000,
            fail_open: d == A,
            retry_after_secs: 3,
        });
    })
    .await
    .unwrap();
    let mut alice = fed.register("alice@a.example", "phone").await.unwrap();
    let room = alice.create_room().await.unwrap();

    alice.send_text(&room, "first", false).await.unwrap();
    {
        let seen = hook.seen.lock().unwrap();
        let e = seen
            .iter()
            .find(|e| e["kind"] == "message_submission")
            .expect("the webhook saw the submission");
        assert_eq!(e["actor"]["user"], "mimi://a.example/u/alice");
        assert_eq!(e["room"], room.to_string());
        assert!(e["size"].as_u64().unwrap() > 0);
    }

    hook.reject.store(true, Ordering::SeqCst);
    let err = alice.send_text(&room, "second", false).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Provider { code, message, .. }
            if code == "spam_rejected" && message.contains("the webhook says no")),
        "{err:?}"
    );

    // The webhook goes away: a.example fails open.
    hook.task.abort();
    let _ = hook.task.await;
    alice.send_text(&room, "third", false).await.unwrap();

    // b.example's webhook is down and fails closed: its user is throttled, with
    // the configured retry-after, and nothing is lost.
    let mut bob = fed.register("bob@b.example", "phone").await.unwrap();
    let broom = bob.create_room().await.unwrap();
    let err = bob.send_text(&broom, "held", false).await.unwrap_err();
    match &err {
        ClientError::RateLimited {
            retry_after_secs, ..
        } => assert_eq!(*retry_after_secs, 3, "{err}"),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    let last = bob.history(&broom, 10).unwrap().pop().unwrap();
    assert!(last.pending && last.text.as_deref() == Some("held"));
    fed.shutdown().await;
}

#[tokio::test]
async fn the_builtin_filter_throttles_a_user_with_verified_reports() {
    let fed = Federation::start_with(&[A, B], |_, c| {
        c.spam.report_threshold = 2;
        c.spam.throttle_secs = 2;
    })
    .await
    .unwrap();
    let (mut alice, mut bob, room) = room_with_bob(&fed).await;
    let state = &fed.handle(A).unwrap().state;
    let report = |verified| {
        SpamEvent::remote(EventKind::Report, &B.parse().unwrap(), None).report(ReportInfo {
            reporter_domain: B.parse().unwrap(),
            alleged_abuser: alice.user().clone(),
            reason_code: 1,
            verified,
        })
    };
    // Unverified reports do not count; two verified ones flag alice.
    for verified in [false, false, true, true] {
        assert_eq!(
            entente_provider::spam::observe(state, report(verified)).await,
            Verdict::Allow
        );
    }
    alice.send_text(&room, "one", false).await.unwrap();
    let err = alice.send_text(&room, "two", false).await.unwrap_err();
    let ClientError::RateLimited {
        retry_after_secs, ..
    } = err
    else {
        panic!("expected RateLimited, got {err:?}");
    };
    assert!(retry_after_secs <= 2);
    // Bob is not throttled.
    bob.send_text(&room, "bob is fine", false).await.unwrap();
    bob.send_text(&room, "still fine", false).await.unwrap();

    tokio::time::sleep(Duration::from_secs(retry_after_secs) + Duration::from_millis(100)).await;
    assert_eq!(alice.resend_pending().await.unwrap().len(), 1);
    wait_texts(&mut bob, &["one", "two"]).await;
    fed.shutdown().await;
}
