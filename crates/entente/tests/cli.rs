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
