//! The `entente` binary, driven as a person would: the demo, and a local
//! federation set up and used entirely through the CLI.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn entente() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_entente"));
    c.env_remove("ENTENTE_HOME").env("ENTENTE_LOG", "warn");
    c
}

fn run(args: &[&str], dir: &Path) -> Output {
    let out = entente()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run entente");
    assert!(
        out.status.success(),
        "entente {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "provider on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn demo_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["demo"], dir.path());
    let text = stdout(&out);
    assert!(text.contains("All checks passed"), "{text}");
    assert!(text.contains("plaintext found: none"), "{text}");
}

#[test]
fn help_teaches() {
    let dir = tempfile::tempdir().unwrap();
    let text = stdout(&run(&["--help"], dir.path()));
    for word in ["demo", "provider", "send", "listen", "safety-number"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
    let text = stdout(&run(&["provider", "init", "--help"], dir.path()));
    assert!(text.contains("entente ca init"), "{text}");
    let text = stdout(&run(&["room", "--help"], dir.path()));
    assert!(text.contains("entente room create --name"), "{text}");
    let text = stdout(&run(&["room", "invite", "--help"], dir.path()));
    assert!(text.contains("entente room invite mimi://"), "{text}");
}

#[test]
fn local_federation_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pa, pb) = (free_port(), free_port());
    let (la, lb) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    run(&["ca", "init", "--dir", "ca"], d);
    run(
        &[
            "provider",
            "init",
            "--domain",
            "a.example",
            "--dir",
            "a",
            "--listen",
            &la,
            "--ca",
            "ca",
            "--peer",
            &format!("b.example={lb}"),
            // Strangers talk here; consent has its own test (`consent_through_the_cli`).
            "--consent",
            "open",
        ],
        d,
    );
    run(
        &[
            "provider",
            "init",
            "--domain",
            "b.example",
            "--dir",
            "b",
            "--listen",
            &lb,
            "--ca",
            "ca",
            "--peer",
            &format!("a.example={la}"),
            // Strangers talk here; consent has its own test (`consent_through_the_cli`).
            "--consent",
            "open",
        ],
        d,
    );
    let _a = Running(
        entente()
            .args(["provider", "run", "--config", "a/provider.toml"])
            .current_dir(d)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _b = Running(
        entente()
            .args(["provider", "run", "--config", "b/provider.toml"])
            .current_dir(d)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(pa);
    wait_listening(pb);

    run(
        &[
            "--home",
            "alice",
            "account",
            "create",
            "alice@a.example",
            "--device",
            "laptop",
            "--address",
            &la,
            "--ca",
            "ca/ca.crt",
        ],
        d,
    );
    run(
        &[
            "--home",
            "bob",
            "account",
            "create",
            "bob@b.example",
            "--device",
            "phone",
            "--address",
            &lb,
            "--ca",
            "ca/ca.crt",
        ],
        d,
    );
    run(
        &[
            "--home",
            "alice",
            "send",
            "--to",
            "bob@b.example",
            "Hi Bob, from the CLI",
        ],
        d,
    );

    // Delivery across providers is asynchronous: poll Bob's history.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = entente()
            .args([
                "--home",
                "bob",
                "--json",
                "history",
                "--with",
                "alice@a.example",
            ])
            .current_dir(d)
            .output()
            .unwrap();
        let text = stdout(&out);
        if out.status.success() && text.contains("Hi Bob, from the CLI") {
            let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
            assert_eq!(v["sender"], "alice@a.example");
            assert_eq!(v["outgoing"], false);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Bob never got the message: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    run(
        &[
            "--home",
            "bob",
            "send",
            "--to",
            "alice@a.example",
            "Hello Alice",
        ],
        d,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = stdout(
            &entente()
                .args(["--home", "alice", "history", "--with", "bob@b.example"])
                .current_dir(d)
                .output()
                .unwrap(),
        );
        if text.contains("Hello Alice") {
            assert!(text.contains("me: Hi Bob, from the CLI"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Alice never got the reply: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Safety numbers agree, and verification records it.
    let sa: serde_json::Value = serde_json::from_str(&stdout(&run(
        &[
            "--home",
            "alice",
            "--json",
            "safety-number",
            "bob@b.example",
        ],
        d,
    )))
    .unwrap();
    let sb: serde_json::Value = serde_json::from_str(&stdout(&run(
        &[
            "--home",
            "bob",
            "--json",
            "safety-number",
            "alice@a.example",
        ],
        d,
    )))
    .unwrap();
    assert_eq!(sa["safety_number"], sb["safety_number"]);
    assert_eq!(sa["verified"], false);
    let n = sb["safety_number"].as_str().unwrap().to_owned();
    run(
        &[
            "--home",
            "alice",
            "safety-number",
            "bob@b.example",
            "--verify",
            &n,
        ],
        d,
    );
    let sa: serde_json::Value = serde_json::from_str(&stdout(&run(
        &[
            "--home",
            "alice",
            "--json",
            "safety-number",
            "bob@b.example",
        ],
        d,
    )))
    .unwrap();
    assert_eq!(sa["verified"], true);
    // A wrong number is refused with an explanation.
    let out = entente()
        .args([
            "--home",
            "alice",
            "safety-number",
            "bob@b.example",
            "--verify",
            "12345",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"));
    // Errors say what to do.
    let out = entente()
        .args(["--home", "nobody", "send", "--to", "bob@b.example", "x"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("entente account create"));
}

/// Starts one provider per domain, each peering with all the others. Returns the
/// running providers and each domain's address.
fn start_federation(d: &Path, domains: &[&str]) -> (Vec<Running>, Vec<String>) {
    start_federation_with(d, domains, "open")
}

/// [`start_federation`] with `[consent] mode = consent`.
fn start_federation_with(d: &Path, domains: &[&str], consent: &str) -> (Vec<Running>, Vec<String>) {
    let addrs: Vec<String> = domains
        .iter()
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    run(&["ca", "init", "--dir", "ca"], d);
    let mut running = Vec::new();
    for (i, domain) in domains.iter().enumerate() {
        let mut args = vec![
            "provider".to_owned(),
            "init".into(),
            "--domain".into(),
            (*domain).into(),
            "--dir".into(),
            (*domain).into(),
            "--listen".into(),
            addrs[i].clone(),
            "--ca".into(),
            "ca".into(),
            // Strangers talk in most tests; consent has its own
            // (`consent_through_the_cli`).
            "--consent".into(),
            consent.into(),
        ];
        for (j, peer) in domains.iter().enumerate() {
            if j != i {
                args.extend(["--peer".into(), format!("{peer}={}", addrs[j])]);
            }
        }
        run(&args.iter().map(String::as_str).collect::<Vec<_>>(), d);
        running.push(Running(
            entente()
                .args([
                    "provider",
                    "run",
                    "--config",
                    &format!("{domain}/provider.toml"),
                ])
                .current_dir(d)
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        ));
    }
    for a in &addrs {
        wait_listening(a.rsplit(':').next().unwrap().parse().unwrap());
    }
    (running, addrs)
}

/// `entente --home HOME --json ARGS...`, which must succeed, as JSON.
fn run_json(home: &str, args: &[&str], d: &Path) -> serde_json::Value {
    let mut all = vec!["--home", home, "--json"];
    all.extend_from_slice(args);
    let text = stdout(&run(&all, d));
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{all:?} printed {text}: {e}"))
}

/// Runs `entente --home HOME --json ARGS...` until its JSON output satisfies
/// `done`; delivery across providers is asynchronous.
fn poll_json(
    home: &str,
    args: &[&str],
    d: &Path,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = entente()
            .args(["--home", home, "--json"])
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        let text = stdout(&out);
        if out.status.success()
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(text.trim())
            && done(&v)
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: entente {args:?} as {home} printed {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `(user, role)` of each participant in `room members --json` output.
fn roles_of(members: &serde_json::Value) -> Vec<(String, String)> {
    members
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["user"].as_str().unwrap().to_owned(),
                p["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(u, r)| ((*u).to_owned(), (*r).to_owned()))
        .collect()
}

/// Providers a, b and c.example and an account on each: alice, bob and carol
/// (homes named after them). Every account knows b.example's address, for direct
/// file downloads.
fn three_accounts(d: &Path) -> Vec<Running> {
    let (providers, addrs) = start_federation(d, &["a.example", "b.example", "c.example"]);
    let peer = format!("b.example={}", addrs[1]);
    for ((home, user), addr) in [
        ("alice", "alice@a.example"),
        ("bob", "bob@b.example"),
        ("carol", "carol@c.example"),
    ]
    .into_iter()
    .zip(&addrs)
    {
        run(
            &[
                "--home",
                home,
                "account",
                "create",
                user,
                "--address",
                addr,
                "--ca",
                "ca/ca.crt",
                "--peer",
                &peer,
            ],
            d,
        );
    }
    providers
}

#[test]
fn room_commands_across_three_providers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _providers = three_accounts(d);

    let created = run_json("alice", &["room", "create", "--name", "Team"], d);
    assert_eq!(created["name"], "Team");
    let room = created["room"].as_str().unwrap().to_owned();
    assert!(room.starts_with("mimi://a.example/r/"), "{room}");
    let members = run_json("alice", &["room", "members", &room], d);
    assert_eq!(roles_of(&members), pairs(&[("alice@a.example", "owner")]));

    run(
        &["--home", "alice", "room", "invite", &room, "bob@b.example"],
        d,
    );
    // Bob's device joins once the Welcome arrives from a.example.
    poll_json("bob", &["room", "members", &room], d, "bob joins", |v| {
        roles_of(v) == pairs(&[("alice@a.example", "owner"), ("bob@b.example", "member")])
    });

    // A member may not invite: the hub enforces the room policy, and the error
    // says which capability is missing and what to do.
    let out = entente()
        .args(["--home", "bob", "room", "invite", &room, "carol@c.example"])
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "bob could invite: {err}");
    assert!(err.contains("canAddParticipant"), "{err}");
    assert!(err.contains("ask an admin or owner"), "{err}");

    run(
        &[
            "--home",
            "alice",
            "room",
            "invite",
            &room,
            "carol@c.example",
        ],
        d,
    );
    let members = run_json("alice", &["room", "members", &room], d);
    assert_eq!(
        roles_of(&members),
        pairs(&[
            ("alice@a.example", "owner"),
            ("bob@b.example", "member"),
            ("carol@c.example", "member"),
        ])
    );
    for p in members.as_array().unwrap() {
        assert_eq!(p["devices"].as_array().unwrap().len(), 1, "{p}");
    }

    run(
        &["--home", "alice", "room", "name", &room, "Team Rocket"],
        d,
    );
    run(&["--home", "alice", "room", "topic", &room, "Ship it"], d);
    let info = poll_json(
        "bob",
        &["room", "info", &room],
        d,
        "bob sees the topic",
        |v| v["topic"] == "Ship it",
    );
    assert_eq!(info["name"], "Team Rocket");
    assert_eq!(info["participants"], 3);
    let alice_info = run_json("alice", &["room", "info", &room], d);
    assert_eq!(info["epoch"], alice_info["epoch"]);

    run(
        &[
            "--home",
            "alice",
            "room",
            "remove",
            &room,
            "carol@c.example",
        ],
        d,
    );
    let members = run_json("alice", &["room", "members", &room], d);
    assert_eq!(
        roles_of(&members),
        pairs(&[("alice@a.example", "owner"), ("bob@b.example", "member")])
    );
    // Carol's device learns it was removed and says so.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = entente()
            .args(["--home", "carol", "room", "info", &room])
            .current_dir(d)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && err.contains("this device is not in") {
            assert!(err.contains("entente rooms"), "{err}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "carol is still in the room: {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Bob leaves once he has seen Carol's removal; Alice's device, the only one
    // left, commits his removal when she next syncs.
    poll_json(
        "bob",
        &["room", "info", &room],
        d,
        "bob sees carol go",
        |v| v["participants"] == 2,
    );
    run(&["--home", "bob", "room", "leave", &room], d);
    poll_json(
        "alice",
        &["room", "members", &room],
        d,
        "bob is gone",
        |v| roles_of(v) == pairs(&[("alice@a.example", "owner")]),
    );
}

#[test]
fn file_commands_across_three_providers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _providers = three_accounts(d);
    let room = run_json("alice", &["room", "create", "--name", "Files"], d)["room"]
        .as_str()
        .unwrap()
        .to_owned();
    for user in ["bob@b.example", "carol@c.example"] {
        run(&["--home", "alice", "room", "invite", &room, user], d);
    }
    poll_json(
        "carol",
        &["room", "members", &room],
        d,
        "carol joins",
        |v| v.as_array().is_some_and(|a| a.len() == 3),
    );
    poll_json("bob", &["room", "members", &room], d, "bob joins", |v| {
        v.as_array().is_some_and(|a| a.len() == 3)
    });

    // Bob sends a file to the room (stored at b.example, hub a.example).
    let data: Vec<u8> = (0..3_000_017u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(d.join("report.bin"), &data).unwrap();
    let sent = run_json(
        "bob",
        &[
            "file",
            "send",
            &room,
            "report.bin",
            "--description",
            "Q3 numbers",
            "--aes256",
        ],
        d,
    );
    let id = sent["message_id"].as_str().unwrap().to_owned();
    // Carol sees it and fetches it through c.example and the hub.
    let listed = poll_json("carol", &["file", "list"], d, "carol sees the file", |v| {
        v[0]["message_id"] == id.as_str()
    })[0]
        .clone();
    assert_eq!(listed["filename"], "report.bin");
    assert_eq!(listed["description"], "Q3 numbers");
    assert_eq!(listed["size"], data.len());
    std::fs::create_dir(d.join("dl")).unwrap();
    let got = run_json("carol", &["file", "get", &id[..10], "--out", "dl"], d);
    assert_eq!(got["committed"], true);
    assert_eq!(std::fs::read(d.join("dl/report.bin")).unwrap(), data);
    // Directly from b.example, to another name.
    run(
        &[
            "--home",
            "carol",
            "file",
            "get",
            &id,
            "--out",
            "dl/direct.bin",
            "--direct",
        ],
        d,
    );
    assert_eq!(std::fs::read(d.join("dl/direct.bin")).unwrap(), data);
    // The history shows the attachment and how to get it.
    let history = stdout(&run(&["--home", "carol", "history", "--room", &room], d));
    assert!(
        history.contains("[file] report.bin") && history.contains("entente file get"),
        "{history}"
    );
    // Downloading again to the same place is refused, clearly.
    let out = entente()
        .args(["--home", "carol", "file", "get", &id, "--out", "dl"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists already"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Usage, then deletion by the sender.
    let usage = run_json("bob", &["file", "usage"], d);
    assert_eq!(usage["used"], data.len() + 16);
    run(&["--home", "bob", "file", "rm", &id[..12]], d);
    assert_eq!(run_json("bob", &["file", "usage"], d)["used"], 0);
    std::fs::create_dir(d.join("alice-dl")).unwrap();
    let out = entente()
        .args(["--home", "alice", "file", "get", &id, "--out", "alice-dl"])
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("ask the sender to send it again"), "{err}");

    // A 1:1 file: the chat is started on the way.
    std::fs::write(d.join("hi.txt"), b"hello alice").unwrap();
    run(
        &["--home", "bob", "file", "send", "alice@a.example", "hi.txt"],
        d,
    );
    let listed = poll_json("alice", &["file", "list"], d, "alice sees hi.txt", |v| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|f| f["filename"] == "hi.txt"))
    });
    let id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["filename"] == "hi.txt")
        .unwrap()["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = id.as_str();
    run(
        &[
            "--home",
            "alice",
            "file",
            "get",
            id,
            "--out",
            "from-bob.txt",
        ],
        d,
    );
    assert_eq!(
        std::fs::read(d.join("from-bob.txt")).unwrap(),
        b"hello alice"
    );
}

#[test]
fn signal_channel_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_providers, addrs) = start_federation(d, &["a.example", "b.example"]);
    for (home, user, addr, extra) in [
        ("alice", "alice@a.example", &addrs[0], None),
        ("dave", "dave@b.example", &addrs[1], Some("--signal-only")),
    ] {
        let mut args = vec![
            "--home",
            home,
            "account",
            "create",
            user,
            "--address",
            addr,
            "--ca",
            "ca/ca.crt",
        ];
        args.extend(extra);
        run(&args, d);
    }
    // The negotiated channel, and why, are shown.
    let contact = run_json("alice", &["contact", "dave@b.example"], d);
    assert_eq!(contact["mechanism"], "double-ratchet", "{contact}");
    assert!(
        contact["reason"]
            .as_str()
            .unwrap()
            .contains("only the Double Ratchet"),
        "{contact}"
    );
    assert_eq!(
        contact["devices"][0]["protocols"],
        serde_json::json!(["signal"])
    );
    let text = stdout(&run(
        &[
            "--home",
            "alice",
            "send",
            "--to",
            "dave@b.example",
            "Hi Dave",
        ],
        d,
    ));
    assert!(text.contains("over the Signal Double Ratchet"), "{text}");
    let got = poll_json(
        "dave",
        &["history", "--with", "alice@a.example"],
        d,
        "dave gets it",
        |v| v["text"] == "Hi Dave",
    );
    assert_eq!(got["via"], "double-ratchet");
    let sent = run_json("dave", &["send", "--to", "alice@a.example", "Hi Alice"], d);
    assert_eq!(sent["mechanism"], "double-ratchet");
    assert!(
        sent["reason"].as_str().unwrap().contains("this device"),
        "{sent}"
    );
    let lines = poll_json("alice", &["sync"], d, "alice gets the reply", |v| {
        v["text"] == "Hi Alice"
    });
    assert_eq!(lines["sender"], "dave@b.example");
}

/// The product default (`[consent] mode = "required"`) through the CLI: a
/// stranger's message fails with a clear error; a request shows in `entente
/// requests`; `accept` lets the message through; `block`, `blocked`, `unblock`.
#[test]
fn consent_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_providers, addrs) = start_federation_with(d, &["a.example", "b.example"], "required");
    for ((home, user), addr) in [("alice", "alice@a.example"), ("bob", "bob@b.example")]
        .into_iter()
        .zip(&addrs)
    {
        run(
            &[
                "--home",
                home,
                "account",
                "create",
                user,
                "--address",
                addr,
                "--ca",
                "ca/ca.crt",
            ],
            d,
        );
    }
    let out = entente()
        .args(["--home", "alice", "send", "--to", "bob@b.example", "Hi"])
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a stranger could write: {err}");
    assert!(
        err.contains("bob@b.example has not accepted a request from you")
            && err.contains("entente request bob@b.example"),
        "{err}"
    );

    let text = stdout(&run(&["--home", "alice", "request", "bob@b.example"], d));
    assert!(text.contains("Asked bob@b.example"), "{text}");
    let requests = poll_json("bob", &["requests"], d, "bob sees the request", |v| {
        v["incoming"][0]["user"] == "alice@a.example"
    });
    assert_eq!(requests["incoming"].as_array().unwrap().len(), 1);
    let text = stdout(&run(&["--home", "bob", "requests"], d));
    assert!(
        text.contains("alice@a.example") && text.contains("entente accept"),
        "{text}"
    );
    run(&["--home", "bob", "accept", "alice@a.example"], d);
    run(
        &["--home", "alice", "send", "--to", "bob@b.example", "Hi"],
        d,
    );
    poll_json(
        "bob",
        &["history", "--with", "alice@a.example"],
        d,
        "bob gets it",
        |v| v["text"] == "Hi",
    );

    // Bob reports alice's message from the CLI, with a reason. The room's hub
    // (a.example: alice made the room) verifies the frank and lists the report;
    // alice's provider is the hub here, so it holds the report as both.
    let rooms = stdout(&run(&["--home", "bob", "--json", "rooms"], d));
    let start = rooms
        .find("mimi://a.example/r/")
        .expect("bob's room with alice");
    let room: String = rooms[start..].chars().take_while(|c| *c != '"').collect();
    let text = stdout(&run(
        &[
            "--home",
            "bob",
            "report",
            &room,
            "--from",
            "alice@a.example",
            "--reason",
            "spam",
            "--note",
            "unsolicited",
        ],
        d,
    ));
    assert!(text.to_lowercase().contains("report"), "{text}");
    let text = stdout(&run(
        &["provider", "reports", "--config", "a.example/provider.toml"],
        d,
    ));
    assert!(
        text.contains("verified at our hub")
            && text.contains("reported by: mimi://b.example/u/bob")
            && text.contains("about our user")
            && text.contains("> Hi")
            && text.contains("unsolicited"),
        "the hub lists the verified report: {text}"
    );

    let blocked = run_json("bob", &["block", "alice@a.example"], d);
    assert_eq!(blocked["blocked"], "alice@a.example");
    assert_eq!(blocked["left_rooms"].as_array().unwrap().len(), 1);
    let list = run_json("bob", &["blocked"], d);
    assert_eq!(list["blocked"][0]["user"], "alice@a.example");
    run(&["--home", "bob", "unblock", "alice@a.example"], d);
    let list = run_json("bob", &["blocked"], d);
    assert!(list["blocked"].as_array().unwrap().is_empty(), "{list}");

    let text = stdout(&run(&["block", "--help"], d));
    assert!(text.contains("entente block mallory@m.example"), "{text}");
    let text = stdout(&run(&["--help"], d));
    for word in [
        "request", "requests", "accept", "decline", "block", "unblock", "blocked",
    ] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
}

#[test]
fn moderation_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_providers, addrs) = start_federation(d, &["a.example"]);
    run(
        &[
            "--home",
            "alice",
            "account",
            "create",
            "alice@a.example",
            "--address",
            &addrs[0],
            "--ca",
            "ca/ca.crt",
        ],
        d,
    );
    let config = "a.example/provider.toml";
    let text = stdout(&run(&["provider", "reports", "--config", config], d));
    assert!(text.contains("no open reports"), "{text}");

    // A verified report, stored as the hub's report path stores it.
    let content = entente_wire::content::MimiContent::text("cheap pills", false, [1; 16]).encode();
    let messages = serde_json::json!([{
        "content": entente_wire::api::b64::encode(&content),
        "accepted_at": 1_700_000_000_000u64,
    }]);
    let db = rusqlite::Connection::open(d.join("a.example/data/provider.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute(
        "INSERT INTO abuse_reports (received_at, role, room, hub, reporter, reporter_domain,
             alleged_abuser, reason, note, messages, digest)
         VALUES (1700000000000, 'hub', 'mimi://a.example/r/x', 'a.example',
             'mimi://a.example/u/bob', 'a.example', 'mimi://a.example/u/alice', 3, 'spam', ?1, ?2)",
        rusqlite::params![messages.to_string(), vec![9u8; 32]],
    )
    .unwrap();
    drop(db);
    let text = stdout(&run(&["provider", "reports", "--config", config], d));
    assert!(
        text.contains("#1 [open]") && text.contains("cheap pills") && text.contains("alice"),
        "{text}"
    );

    // Warn alice and close the report; her next sync shows the notice once.
    let text = stdout(&run(
        &[
            "provider",
            "moderate",
            "--config",
            config,
            "--as",
            "op",
            "warn",
            "alice@a.example",
            "Please stop.",
            "--report",
            "1",
        ],
        d,
    ));
    assert!(text.contains("warned"), "{text}");
    let text = stdout(&run(&["provider", "reports", "--config", config], d));
    assert!(text.contains("no open reports"), "{text}");
    let all: serde_json::Value = serde_json::from_str(&stdout(&run(
        &["provider", "reports", "--config", config, "--all", "--json"],
        d,
    )))
    .unwrap();
    assert_eq!(all[0]["status"], "actioned");
    let text = stdout(&run(&["--home", "alice", "sync"], d));
    assert!(text.contains("Please stop."), "{text}");
    let text = stdout(&run(&["--home", "alice", "notices"], d));
    assert!(text.contains("Please stop."), "{text}");
    let text = stdout(&run(&["--home", "alice", "sync"], d));
    assert!(!text.contains("Please stop."), "{text}");

    // Suspended: alice's commands fail with the reason; unsuspended, they work.
    run(
        &[
            "provider",
            "moderate",
            "--config",
            config,
            "suspend",
            "alice@a.example",
            "--reason",
            "spam after warning",
        ],
        d,
    );
    let out = entente()
        .args(["--home", "alice", "sync"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("suspended") && err.contains("spam after warning"),
        "{err}"
    );
    run(
        &[
            "provider",
            "moderate",
            "--config",
            config,
            "unsuspend",
            "alice@a.example",
        ],
        d,
    );
    run(&["--home", "alice", "sync"], d);

    let text = stdout(&run(&["provider", "moderate", "--help"], d));
    for word in ["warn", "suspend", "ban-user", "ban-domain", "dismiss"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
}

/// Reads `--capture` output: 4-byte big-endian length, then the datagram.
fn captured(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let n = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push(bytes[at + 4..at + 4 + n].to_vec());
        at += 4 + n;
    }
    assert_eq!(at, bytes.len());
    out
}

#[test]
fn calls_through_the_cli() {
    use entente_media::audio::{Encoder, best_correlation, read_wav, test_signal, write_wav};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_providers, addrs) = start_federation(d, &["a.example", "b.example"]);
    for (home, user, addr) in [
        ("alice", "alice@a.example", &addrs[0]),
        ("bob", "bob@b.example", &addrs[1]),
    ] {
        run(
            &[
                "--home",
                home,
                "account",
                "create",
                user,
                "--address",
                addr,
                "--ca",
                "ca/ca.crt",
            ],
            d,
        );
    }
    run(
        &[
            "--home",
            "alice",
            "send",
            "--to",
            "bob@b.example",
            "Call you in a minute",
        ],
        d,
    );
    let (a_sent, b_sent) = (test_signal(3.0, 21), test_signal(3.0, 22));
    write_wav(&d.join("alice.wav"), &a_sent).unwrap();
    write_wav(&d.join("bob.wav"), &b_sent).unwrap();
    let bob = entente()
        .args([
            "--home",
            "bob",
            "answer",
            "--send",
            "bob.wav",
            "--record",
            "heard-by-bob.wav",
            "--wait",
            "60",
        ])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    run(
        &[
            "--home",
            "alice",
            "call",
            "bob@b.example",
            "--send",
            "alice.wav",
            "--record",
            "heard-by-alice.wav",
            "--capture",
            "wire.bin",
        ],
        d,
    );
    let out = bob.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "answer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let heard_by_bob = read_wav(&d.join("heard-by-bob.wav")).unwrap();
    let heard_by_alice = read_wav(&d.join("heard-by-alice.wav")).unwrap();
    let (c_ab, _) = best_correlation(&a_sent.samples, &heard_by_bob.samples, 48_000);
    let (c_ba, _) = best_correlation(&b_sent.samples, &heard_by_alice.samples, 48_000);
    let (c_no, _) = best_correlation(&b_sent.samples, &heard_by_bob.samples, 48_000);
    eprintln!("alice->bob {c_ab:.3}, bob->alice {c_ba:.3}, unrelated {c_no:.3}");
    assert!(
        c_ab > 0.6 && c_ba > 0.6 && c_no < 0.35,
        "{c_ab} {c_ba} {c_no}"
    );
    // Nothing alice put on the wire carries an Opus packet of her audio (the
    // encoder is deterministic, so these are the packets she sent inside SRTP).
    let mut enc = Encoder::new().unwrap();
    let windows: std::collections::HashSet<Vec<u8>> = a_sent
        .frames()
        .flat_map(|f| {
            let p = enc.encode(&f).unwrap();
            p.windows(12).map(<[u8]>::to_vec).collect::<Vec<_>>()
        })
        .collect();
    let wire = captured(&d.join("wire.bin"));
    assert!(wire.len() > 100, "{} datagrams", wire.len());
    for dgram in &wire {
        assert!(
            !dgram.windows(12).any(|w| windows.contains(w)),
            "plaintext Opus on the wire"
        );
    }
}

#[test]
fn group_call_through_the_cli() {
    use entente_media::audio::{best_correlation, read_wav, test_signal, write_wav};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _providers = three_accounts(d);
    let created = run_json("alice", &["room", "create", "--name", "Standup"], d);
    let room = created["room"].as_str().unwrap().to_owned();
    run(
        &["--home", "alice", "room", "invite", &room, "bob@b.example"],
        d,
    );
    run(
        &[
            "--home",
            "alice",
            "room",
            "invite",
            &room,
            "carol@c.example",
        ],
        d,
    );
    let a_sent = test_signal(4.0, 31);
    write_wav(&d.join("alice.wav"), &a_sent).unwrap();
    // Bob and carol join the room's call first and listen; alice joins and speaks.
    let listeners: Vec<Child> = ["bob", "carol"]
        .iter()
        .map(|home| {
            entente()
                .args([
                    "--home",
                    home,
                    "call",
                    &room,
                    "--record",
                    &format!("{home}.wav"),
                    "--duration",
                    "14",
                ])
                .current_dir(d)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    run(
        &["--home", "alice", "call", &room, "--send", "alice.wav"],
        d,
    );
    for (home, child) in ["bob", "carol"].iter().zip(listeners) {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{home}: {err}");
        // One file per speaker (FILE-<leaf>.wav): alice's must be there.
        let best = std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.starts_with(&format!("{home}-")).then_some(name)
            })
            .map(|f| {
                best_correlation(
                    &a_sent.samples,
                    &read_wav(&d.join(&f)).unwrap().samples,
                    48_000,
                )
                .0
            })
            .fold(0.0f64, f64::max);
        eprintln!("{home} hears alice {best:.3}; {err}");
        assert!(best > 0.6, "{home} did not hear alice ({best}): {err}");
    }
}
