//! WebSocket push: a listening device gets messages as they arrive, acks them,
//! and reconnects by itself when its provider restarts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::time::Duration;

use entente_client::{Client, Event};
use entente_testkit::Federation;
use entente_wire::ids::UserId;
use tokio::sync::mpsc;

async fn recv(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("push did not arrive")
        .expect("listener ended")
}

async fn sync_until_joined(c: &mut Client) {
    for _ in 0..400 {
        if c.sync()
            .await
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Joined { .. }))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never joined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_device_gets_pushes_and_survives_a_provider_restart() {
    let mut fed = Federation::start(&["a.example", "b.example"])
        .await
        .unwrap();
    let alice_id: UserId = "alice@a.example".parse().unwrap();
    let bob_id: UserId = "bob@b.example".parse().unwrap();
    let mut alice = Client::register(
        fed.client_options("a.example", "alice").unwrap(),
        &alice_id,
        "laptop",
        None,
    )
    .await
    .unwrap();
    let mut bob = Client::register(
        fed.client_options("b.example", "bob").unwrap(),
        &bob_id,
        "phone",
        None,
    )
    .await
    .unwrap();
    let room = alice.start_chat(&bob_id).await.unwrap();
    sync_until_joined(&mut bob).await;

    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listener = tokio::spawn(async move {
        bob.listen(
            |e| {
                if let Event::Message(m) = e {
                    let _ = tx.send(m.text.clone().unwrap_or_default());
                }
            },
            async {
                let _ = stop_rx.await;
            },
        )
        .await
        .unwrap();
        bob
    });

    for i in 0..5 {
        alice
            .send_text(&room, &format!("push {i}"), false)
            .await
            .unwrap();
    }
    for i in 0..5 {
        assert_eq!(recv(&mut rx).await, format!("push {i}"));
    }

    // Bob's provider restarts under the open WebSocket; the client reconnects.
    fed.stop("b.example").await.unwrap();
    alice
        .send_text(&room, "while b was down", false)
        .await
        .unwrap();
    fed.restart("b.example").await.unwrap();
    alice
        .send_text(&room, "after the restart", false)
        .await
        .unwrap();
    assert_eq!(recv(&mut rx).await, "while b was down");
    assert_eq!(recv(&mut rx).await, "after the restart");

    let _ = stop_tx.send(());
    let mut bob = listener.await.unwrap();
    // Everything pushed was acked: nothing is waiting, and history is exact.
    assert!(bob.sync().await.unwrap().is_empty());
    let texts: Vec<String> = bob
        .history(&room, 100)
        .unwrap()
        .into_iter()
        .filter_map(|h| h.text)
        .collect();
    let mut expected: Vec<String> = (0..5).map(|i| format!("push {i}")).collect();
    expected.push("while b was down".into());
    expected.push("after the restart".into());
    assert_eq!(texts, expected);
    fed.shutdown().await;
}
