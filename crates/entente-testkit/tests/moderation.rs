//! Moderation end to end: real providers on loopback, the admin API the operator
//! CLI uses, enforcement of every action across providers, and the moderators' web
//! page driven in headless Chromium through chromedriver (W3C WebDriver).
//!
//! The browser test needs `chromium` and `chromedriver` (`.ci/install-browser`); it
//! fails, naming that script, when they are missing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, helpers included"
)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use entente_client::{Client, ClientError, Event};
use entente_provider::moderation::ActionRequest;
use entente_provider::moderation::admin::AdminClient;
use entente_provider::store::{NewReport, RecordedReport, ReportRole, ReportedMessage};
use entente_testkit::Federation;
use entente_tls::DevCa;
use entente_wire::content::MimiContent;
use entente_wire::ids::{RoomId, UserId};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DEADLINE: Duration = Duration::from_secs(20);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Stores a report at `domain` as A's report path would, about `accused`.
fn record_report(
    fed: &Federation,
    domain: &str,
    role: ReportRole,
    accused: &str,
    text: &str,
) -> u64 {
    let content = MimiContent::text(text, false, [7; 16]).encode();
    let digest: [u8; 32] = Sha256::digest(format!("{domain}{accused}{text}").as_bytes()).into();
    let r = fed
        .handle(domain)
        .unwrap()
        .state
        .store
        .record_report(&NewReport {
            received_at: now_ms(),
            role,
            room: format!("mimi://{domain}/r/reported"),
            hub: domain.to_owned(),
            reporter: Some("mimi://b.example/u/reporter".into()),
            reporter_domain: "b.example".into(),
            alleged_abuser: accused.to_owned(),
            reason: 3,
            note: "spam".into(),
            messages: vec![ReportedMessage {
                content,
                accepted_at: now_ms(),
            }],
            digest,
        })
        .unwrap();
    match r {
        RecordedReport::New(id) => id,
        RecordedReport::Duplicate(id) => panic!("report {id} already stored"),
    }
}

fn admin(fed: &Federation, domain: &str) -> AdminClient {
    AdminClient::from_config(&fed.members[domain].config).unwrap()
}

fn action(action: &str, target: &str, reason: &str, report: Option<u64>) -> ActionRequest {
    ActionRequest {
        action: action.into(),
        target: target.into(),
        reason: reason.into(),
        report,
        moderator: "test moderator".into(),
    }
}

fn provider_error(e: &ClientError) -> (u16, String, String) {
    match e {
        ClientError::Provider {
            status,
            code,
            message,
            ..
        } => (*status, code.clone(), message.clone()),
        other => panic!("expected a provider error, got {other:?}"),
    }
}

async fn sync_until_text(client: &mut Client, text: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = client.sync().await.unwrap();
        if got
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.text.as_deref() == Some(text)))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never received {text:?}",
            client.id()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Syncs for a while and fails if `text` arrives.
async fn never_receives(client: &mut Client, text: &str) {
    for _ in 0..20 {
        let got = client.sync().await.unwrap();
        assert!(
            !got.iter()
                .any(|e| matches!(e, Event::Message(m) if m.text.as_deref() == Some(text))),
            "{} received {text:?}, which should have been stopped",
            client.id()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_joined(client: &mut Client, room: &RoomId) {
    let deadline = Instant::now() + DEADLINE;
    while !client.rooms().unwrap().iter().any(|r| &r.room == room) {
        client.sync().await.unwrap();
        assert!(Instant::now() < deadline, "{} never joined", client.id());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An HTTPS client trusting the federation's CA that presents a TLS client
/// certificate for `domain` (a peer provider, or an impostor the test plays).
fn peer_http(fed: &Federation, domain: &str) -> reqwest::Client {
    let ca = DevCa::load(fed.root().join("ca")).unwrap();
    let identity = ca.issue(domain).unwrap().identity().unwrap();
    let tls = entente_tls::client_config(&ca.trust_anchors().unwrap(), Some(&identity)).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .timeout(Duration::from_secs(30));
    for (d, m) in &fed.members {
        b = b.resolve(d, m.config.listen);
    }
    b.build().unwrap()
}

/// A MIMI request from `from`'s certificate to `to`: (status, JSON error code).
async fn federation_request(fed: &Federation, from: &str, to: &str) -> (u16, String) {
    let r = peer_http(fed, from)
        .post(format!(
            "https://{to}/mimi/v1/groupState/mimi%3A%2F%2F{to}%2Fr%2Fnone"
        ))
        .header("from", format!("mimi@{from}"))
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or("").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_api_lists_reports_and_warns_suspends_unsuspends() {
    let fed = Federation::start(&["a.example", "b.example"])
        .await
        .unwrap();
    let alice = fed.register("alice@a.example", "phone").await.unwrap();
    let bob = fed.register("bob@b.example", "phone").await.unwrap();
    let alice_uri = alice.user().to_string();
    let id = record_report(
        &fed,
        "a.example",
        ReportRole::Accused,
        &alice_uri,
        "cheap pills <b>now</b>",
    );
    let admin = admin(&fed, "a.example");

    // The report is listed with its message decoded from the MIMI content.
    let open = admin.reports(false).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, id);
    assert_eq!(open[0].role, "accused");
    assert_eq!(open[0].messages[0].text, "cheap pills <b>now</b>");
    assert!(open[0].messages[0].is_text);

    // A wrong token is refused.
    let mut bad = fed.members["a.example"].config.clone();
    bad.data_dir = fed.root().join("elsewhere");
    std::fs::create_dir_all(&bad.data_dir).unwrap();
    std::fs::write(bad.data_dir.join("moderator.token"), "0".repeat(64)).unwrap();
    let err = AdminClient::from_config(&bad)
        .unwrap()
        .reports(false)
        .await
        .unwrap_err();
    assert!(
        err.contains("401") && err.contains("wrong moderator token"),
        "{err}"
    );

    // Warn: the user reads the notice; the report is closed as actioned.
    let done = admin
        .act(&action(
            "warn",
            "alice@a.example",
            "Please stop sending spam.",
            Some(id),
        ))
        .await
        .unwrap();
    assert!(done.contains("warned"), "{done}");
    assert!(admin.reports(false).await.unwrap().is_empty());
    let all = admin.reports(true).await.unwrap();
    assert_eq!(all[0].status, "actioned");
    assert!(all[0].resolution.as_deref().unwrap().contains("warn"));
    let notices = alice.notices().await.unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].text, "Please stop sending spam.");
    assert!(!notices[0].read);
    alice.mark_notices_read(notices[0].id).await.unwrap();
    assert!(alice.notices().await.unwrap()[0].read);
    // Bob has none; warning a remote user is refused.
    assert!(bob.notices().await.unwrap().is_empty());
    let err = admin
        .act(&action("warn", "bob@b.example", "x", None))
        .await
        .unwrap_err();
    assert!(err.contains("not a user of a.example"), "{err}");
    // A reason is required; unknown users and actions are refused.
    for (a, t, r) in [
        ("suspend", "alice@a.example", ""),
        ("suspend", "nobody@a.example", "x"),
        ("explode", "alice@a.example", "x"),
        ("ban-domain", "a.example", "x"),
        ("ban-user", "alice@a.example", "x"),
    ] {
        assert!(
            admin.act(&action(a, t, r, None)).await.is_err(),
            "{a} {t} {r:?}"
        );
    }

    // Suspend: every request of alice's devices is refused with the reason.
    admin
        .act(&action("suspend", &alice_uri, "spam after a warning", None))
        .await
        .unwrap();
    let (status, code, message) = provider_error(&alice.notices().await.unwrap_err());
    assert_eq!((status, code.as_str()), (403, "account_suspended"));
    assert!(message.contains("spam after a warning"), "{message}");
    let mut alice = alice;
    let (status, _, _) = provider_error(&alice.create_room().await.unwrap_err());
    assert_eq!(status, 403);
    // Others are unaffected.
    assert!(bob.notices().await.is_ok());
    let s = admin.sanctions().await.unwrap();
    assert_eq!(s.suspended_users[0].target, alice_uri);
    assert_eq!(s.log[0].action, "suspend");
    assert_eq!(s.log[0].moderator, "test moderator");

    // Suspensions survive a restart (loaded from the store).
    let mut fed = fed;
    fed.stop("a.example").await.unwrap();
    fed.restart("a.example").await.unwrap();
    let (status, _, _) = provider_error(&alice.notices().await.unwrap_err());
    assert_eq!(status, 403);

    // Unsuspend: alice is back; unsuspending again says she is not suspended.
    let admin = self::admin(&fed, "a.example");
    admin
        .act(&action("unsuspend", &alice_uri, "", None))
        .await
        .unwrap();
    alice.create_room().await.unwrap();
    let err = admin
        .act(&action("unsuspend", &alice_uri, "", None))
        .await
        .unwrap_err();
    assert!(err.contains("not suspended"), "{err}");
    // Dismiss closes a report.
    let id2 = record_report(&fed, "a.example", ReportRole::Hub, &alice_uri, "hello");
    admin
        .act(&action("dismiss", "", "not abuse", Some(id2)))
        .await
        .unwrap();
    let r = admin.report(id2).await.unwrap();
    assert_eq!(r.status, "dismissed");
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn banned_domain_is_refused_and_not_sent_to() {
    let fed = Federation::start(&["a.example", "b.example", "c.example"])
        .await
        .unwrap();
    let mut alice = fed.register("alice@a.example", "phone").await.unwrap();
    let mut bob = fed.register("bob@b.example", "phone").await.unwrap();
    let mut carol = fed.register("carol@c.example", "phone").await.unwrap();
    let room = alice.create_room().await.unwrap();
    alice.invite(&room, bob.user()).await.unwrap();
    alice.invite(&room, carol.user()).await.unwrap();
    wait_joined(&mut bob, &room).await;
    wait_joined(&mut carol, &room).await;
    bob.send_text(&room, "before the ban", false).await.unwrap();
    sync_until_text(&mut alice, "before the ban").await;

    assert_ne!(
        federation_request(&fed, "b.example", "a.example").await.1,
        "banned"
    );
    admin(&fed, "a.example")
        .act(&action("ban-domain", "b.example", "spam source", None))
        .await
        .unwrap();

    // Every federation request from b.example is refused at a.example ...
    let (status, code) = federation_request(&fed, "b.example", "a.example").await;
    assert_eq!((status, code.as_str()), (403, "banned"));
    // ... so bob cannot send to the room a.example hosts ...
    assert!(bob.send_text(&room, "during the ban", false).await.is_err());
    // ... and a.example sends nothing more to b.example, while c.example is served.
    alice.send_text(&room, "to everyone", false).await.unwrap();
    sync_until_text(&mut carol, "to everyone").await;
    carol
        .send_text(&room, "carol still here", false)
        .await
        .unwrap();
    sync_until_text(&mut alice, "carol still here").await;
    never_receives(&mut bob, "to everyone").await;
    never_receives(&mut alice, "during the ban").await;
    // Other providers do not follow a.example's ban.
    assert_ne!(
        federation_request(&fed, "b.example", "c.example").await.1,
        "banned"
    );

    // Unbanned: b.example is served again, bob's held message goes through.
    admin(&fed, "a.example")
        .act(&action("unban-domain", "b.example", "resolved", None))
        .await
        .unwrap();
    assert_ne!(
        federation_request(&fed, "b.example", "a.example").await.1,
        "banned"
    );
    bob.send_text(&room, "after the ban", false).await.unwrap();
    sync_until_text(&mut alice, "after the ban").await;
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn banned_remote_user_is_refused_others_of_the_domain_are_not() {
    let fed = Federation::start(&["a.example", "b.example"])
        .await
        .unwrap();
    let mut alice = fed.register("alice@a.example", "phone").await.unwrap();
    let mut bob = fed.register("bob@b.example", "phone").await.unwrap();
    let mut dave = fed.register("dave@b.example", "phone").await.unwrap();
    let room = alice.create_room().await.unwrap();
    alice.invite(&room, bob.user()).await.unwrap();
    alice.invite(&room, dave.user()).await.unwrap();
    wait_joined(&mut bob, &room).await;
    wait_joined(&mut dave, &room).await;
    let id = record_report(
        &fed,
        "a.example",
        ReportRole::Hub,
        &bob.user().to_string(),
        "abuse",
    );
    admin(&fed, "a.example")
        .act(&action("ban-user", "bob@b.example", "harassment", Some(id)))
        .await
        .unwrap();

    // submitMessage with bob as sendingUri is refused at the hub; dave is served.
    assert!(
        bob.send_text(&room, "from banned bob", false)
            .await
            .is_err()
    );
    dave.send_text(&room, "from dave", false).await.unwrap();
    sync_until_text(&mut alice, "from dave").await;
    never_receives(&mut alice, "from banned bob").await;

    // keyMaterial with bob as requestingUser: bob's own room cannot claim
    // alice's KeyPackages from a.example; dave's can.
    let mut bob_room_owner = bob;
    let bob_room = bob_room_owner.create_room().await.unwrap();
    let alice_id: UserId = alice.user().clone();
    assert!(bob_room_owner.invite(&bob_room, &alice_id).await.is_err());
    let dave_room = dave.create_room().await.unwrap();
    dave.invite(&dave_room, &alice_id).await.unwrap();
    wait_joined(&mut alice, &dave_room).await;

    // The ban is listed; lifting it lets bob send again.
    let admin = admin(&fed, "a.example");
    let s = admin.sanctions().await.unwrap();
    assert_eq!(s.banned_users[0].target, "mimi://b.example/u/bob");
    assert_eq!(admin.report(id).await.unwrap().status, "actioned");
    admin
        .act(&action("unban-user", "bob@b.example", "", None))
        .await
        .unwrap();
    bob_room_owner
        .send_text(&room, "bob is back", false)
        .await
        .unwrap();
    sync_until_text(&mut alice, "bob is back").await;
    fed.shutdown().await;
}

// ---------------------------------------------------------------------------
// The web page in headless Chromium.

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Driver {
    /// Starts chromedriver and a headless Chromium session that accepts only the
    /// given certificate key (by SPKI hash) and resolves `hosts` to loopback.
    async fn start(spki_sha256_b64: &str, hosts: &[&str]) -> Driver {
        let missing = "chromium and chromedriver are needed for this test: run .ci/install-browser";
        let driver = find_on_path(&["chromedriver"]).unwrap_or_else(|| panic!("{missing}"));
        // Debian's /usr/bin/chromium is a wrapper script; chromedriver wants the binary.
        let browser = [PathBuf::from("/usr/lib/chromium/chromium")]
            .into_iter()
            .find(|p| p.is_file())
            .or_else(|| find_on_path(&["chromium", "chromium-browser", "google-chrome"]))
            .unwrap_or_else(|| panic!("{missing}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting chromedriver: {e}; {missing}"));
        let profile = tempfile::tempdir().unwrap();
        let mut d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(r) = d.http.get(format!("{}/status", d.base)).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let rules = hosts
            .iter()
            .map(|h| format!("MAP {h} 127.0.0.1"))
            .collect::<Vec<_>>()
            .join(", ");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": false,
            "goog:chromeOptions": {
                "binary": browser.to_string_lossy(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    format!("--user-data-dir={}", d._profile.path().display()),
                    format!("--ignore-certificate-errors-spki-list={spki_sha256_b64}"),
                    format!("--host-resolver-rules={rules}"),
                ]
            }
        }}});
        let v = d.call("POST", "/session", Some(caps)).await;
        d.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        d
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if v["value"].get("error").is_some() {
            panic!("WebDriver {method} {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    async fn s(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    async fn go(&self, url: &str) {
        self.s("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// Finds an element, waiting for a page that is still loading after a click.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let v: Value = self
                .http
                .post(url)
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no element {css}: {}",
                v["value"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn exists(&self, css: &str) -> bool {
        let v = self
            .s(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        !v.as_array().unwrap().is_empty()
    }

    /// Whether an element shows up before the deadline: after a click the old page
    /// can still be displayed while the new one loads.
    async fn appears(&self, css: &str) -> bool {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if self.exists(css).await {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.s("POST", &format!("/element/{e}/clear"), None).await;
        self.s(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.s("POST", &format!("/element/{e}/click"), None).await;
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.s("GET", &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn script(&self, script: &str) -> Value {
        self.s(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    async fn quit(&self) {
        self.s("DELETE", "", None).await;
    }
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of a provider's TLS key, for Chromium's
/// `--ignore-certificate-errors-spki-list`.
fn spki_hash(fed: &Federation, domain: &str) -> String {
    let pem = std::fs::read_to_string(&fed.members[domain].config.tls.private_key).unwrap();
    let key = rcgen::KeyPair::from_pem(&pem).unwrap();
    use rcgen::PublicKeyData as _;
    entente_wire::api::b64::encode(&Sha256::digest(key.subject_public_key_info()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moderator_web_page_in_headless_chromium() {
    let fed = Federation::start(&["a.example", "b.example"])
        .await
        .unwrap();
    let alice = fed.register("alice@a.example", "phone").await.unwrap();
    let alice_uri = alice.user().to_string();
    let id = record_report(
        &fed,
        "a.example",
        ReportRole::Hub,
        &alice_uri,
        "buy now <script>document.title='owned'</script>",
    );
    let token = std::fs::read_to_string(
        fed.members["a.example"]
            .config
            .data_dir
            .join("moderator.token"),
    )
    .unwrap()
    .trim()
    .to_owned();
    let port = fed.members["a.example"].config.listen.port();
    let home = format!("https://a.example:{port}/moderation/");

    let d = Driver::start(&spki_hash(&fed, "a.example"), &["a.example"]).await;
    d.go(&home).await;
    assert!(d.appears("#login").await, "no login form");

    // A wrong token is refused.
    d.type_into("#token", "not-the-token").await;
    d.click("#signin").await;
    assert!(d.text("#error").await.contains("Wrong moderator token"));
    assert!(!d.exists("#reports").await);

    // Sign in; the session cookie is HttpOnly, Secure and SameSite=Strict.
    d.type_into("#token", &token).await;
    d.type_into("#moderator", "Chromium Moderator").await;
    d.click("#signin").await;
    assert_eq!(d.text("#who").await, "Chromium Moderator");
    let cookies = d.s("GET", "/cookie", None).await;
    let c = cookies
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "__Host-entente-mod")
        .unwrap_or_else(|| panic!("no session cookie in {cookies}"));
    assert_eq!(c["httpOnly"], true);
    assert_eq!(c["secure"], true);
    assert_eq!(c["sameSite"], "Strict");

    // The open report is listed; its page shows the message, escaped.
    assert!(d.appears(&format!("#report-{id}")).await);
    d.click(&format!("#report-{id}")).await;
    assert_eq!(
        d.text("#message-0").await,
        "buy now <script>document.title='owned'</script>"
    );
    assert_eq!(d.script("return document.scripts.length").await, json!(0));
    assert_eq!(d.text("#accused").await, alice_uri);

    // Suspend the accused from the report page.
    d.type_into("#reason-suspend", "spam, see report").await;
    d.click("#do-suspend").await;
    assert!(
        d.text("#flash").await.contains("suspended"),
        "no confirmation"
    );
    assert!(d.text("#suspended").await.contains(&alice_uri));
    let (status, code, _) = provider_error(&alice.notices().await.unwrap_err());
    assert_eq!((status, code.as_str()), (403, "account_suspended"));
    let r = admin(&fed, "a.example").report(id).await.unwrap();
    assert_eq!(r.status, "actioned");

    // Ban a remote domain with the general form.
    assert_ne!(
        federation_request(&fed, "b.example", "a.example").await.1,
        "banned"
    );
    d.click("#act-action option[value='ban-domain']").await;
    d.type_into("#act-target", "b.example").await;
    d.type_into("#act-reason", "spam source").await;
    d.click("#act-submit").await;
    assert!(d.text("#banned-domains").await.contains("b.example"));
    let (status, code) = federation_request(&fed, "b.example", "a.example").await;
    assert_eq!((status, code.as_str()), (403, "banned"));

    // A form without its CSRF token is refused and changes nothing.
    d.click("#act-action option[value='unban-domain']").await;
    d.type_into("#act-target", "b.example").await;
    d.script("document.querySelector('#act input[name=csrf]').remove()")
        .await;
    d.click("#act-submit").await;
    assert!(d.text("#error").await.contains("CSRF"));
    assert_eq!(
        federation_request(&fed, "b.example", "a.example").await.1,
        "banned"
    );

    // Signing out ends the session.
    d.go(&home).await;
    d.click("#logout").await;
    assert!(d.appears("#login").await);
    d.go(&home).await;
    assert!(d.appears("#login").await);
    d.quit().await;
    fed.shutdown().await;
}

/// The page's protections without a browser: no access without a session, and a
/// forged session cookie is not one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moderation_page_refuses_without_session() {
    let fed = Federation::start(&["a.example"]).await.unwrap();
    let http = peer_http(&fed, "x.example");
    let r = http
        .post("https://a.example/moderation/act")
        .header("cookie", "__Host-entente-mod=forged")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("action=ban-domain&target=b.example&reason=x&csrf=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["cache-control"].to_str().unwrap(), "no-store");
    let r = http
        .get("https://a.example/moderation/api/reports")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .get("https://a.example/moderation/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(r.text().await.unwrap().contains("id=\"login\""));
    fed.shutdown().await;
}
