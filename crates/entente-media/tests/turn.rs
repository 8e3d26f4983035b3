//! The provider's TURN server with real TURN clients, all on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entente_media::relay::{MAX_RELAYED_DATAGRAM, TurnRelay};
use entente_media::turn_server::{
    TurnCredentials, TurnError, TurnServer, TurnServerConfig, turn_credentials,
};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const SECRET: &[u8] = b"entente turn secret";
const REALM: &str = "entente.test";

/// Liveness guard: a hung exchange fails the test instead of hanging it. Nothing is
/// asserted about how long anything takes.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no progress in 20 s"))
}

async fn server(max_allocations: usize) -> (TurnServer, mpsc::UnboundedReceiver<Vec<u8>>) {
    let (tap, tapped) = mpsc::unbounded_channel();
    let server = TurnServer::start(TurnServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        relay_ip: "127.0.0.1".parse().unwrap(),
        realm: REALM.into(),
        secret: SECRET.to_vec(),
        max_allocations,
        tap: Some(tap),
    })
    .await
    .unwrap();
    (server, tapped)
}

fn creds(label: &str) -> TurnCredentials {
    turn_credentials(SECRET, label, Duration::from_secs(600), SystemTime::now())
}

async fn allocate(server: &TurnServer, label: &str) -> TurnRelay {
    within(
        "allocate",
        TurnRelay::allocate(server.local_addr(), &creds(label), REALM),
    )
    .await
    .unwrap()
}

/// Receives until `want` arrives from `from`, skipping anything listed in `skip`.
async fn recv_expect(relay: &TurnRelay, want: &[u8], from: SocketAddr, skip: &[&[u8]]) {
    let mut buf = vec![0u8; MAX_RELAYED_DATAGRAM];
    within("relayed datagram", async {
        loop {
            let (n, peer) = relay.recv_from(&mut buf).await.unwrap();
            let got = &buf[..n];
            if skip.contains(&got) {
                continue;
            }
            assert_eq!(peer, from, "datagram attributed to the wrong peer");
            assert_eq!(got, want);
            return;
        }
    })
    .await;
}

async fn wait_for_allocations(server: &TurnServer, n: usize) {
    within("allocations released", async {
        while server.stats().allocations != n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[test]
fn credentials_known_answer() {
    // python3 -c "import hmac,hashlib,base64; u='1767229200:call-7f3a';
    //   print(base64.b64encode(hmac.new(b'entente turn secret', u.encode(),
    //   hashlib.sha1).digest()).decode())"
    // -> vVcBFX8BGzw6RzZfCBE3dcTgy1Y=
    let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
    let c = turn_credentials(SECRET, "call-7f3a", Duration::from_secs(3600), now);
    assert_eq!(c.username, "1767229200:call-7f3a");
    assert_eq!(c.password, "vVcBFX8BGzw6RzZfCBE3dcTgy1Y=");
    assert_eq!(c.expires_at, 1_767_229_200);

    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "username": "1767229200:call-7f3a",
            "password": "vVcBFX8BGzw6RzZfCBE3dcTgy1Y=",
            "expires_at": 1_767_229_200u64,
        })
    );
    assert_eq!(serde_json::from_value::<TurnCredentials>(json).unwrap(), c);
    assert!(
        !format!("{c:?}").contains(&c.password),
        "Debug shows the password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_exchange_both_ways() {
    let (server, _tapped) = server(16).await;
    let a = allocate(&server, "a").await;
    let b = allocate(&server, "b").await;
    let (a_addr, b_addr) = (a.relayed_addr(), b.relayed_addr());
    assert_eq!(
        a_addr.ip(),
        "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_ne!(a_addr, b_addr);
    assert_ne!(a_addr, server.local_addr());
    assert_eq!(server.stats().allocations, 2);

    // A permission covers a peer IP and is created by the first send, which waits for
    // it. A's probe installs A's permission; it reaches B only if B's permission
    // happened to exist already, so B skips it.
    let probe: &[u8] = b"probe from a";
    a.send_to(probe, b_addr).await.unwrap();

    // Receive on clones in separate tasks while the originals send.
    let b_rx = b.clone();
    let a_rx = a.clone();
    let from_b: Vec<Vec<u8>> = (0..20u8).map(|i| vec![0xb0, i, 1, 2, 3]).collect();
    let from_a: Vec<Vec<u8>> = (0..20u8).map(|i| vec![0xa0, i, 9, 8]).collect();
    let expect_at_a = from_b.clone();
    let a_task = tokio::spawn(async move {
        for m in &expect_at_a {
            recv_expect(&a_rx, m, b_addr, &[]).await;
        }
    });

    // B's first send creates B's permission; A already has one, so it gets through.
    b.send_to(&from_b[0], a_addr).await.unwrap();
    // Only now is B certain to accept A's datagrams.
    let expect_at_b = from_a.clone();
    let b_task = tokio::spawn(async move {
        for m in &expect_at_b {
            recv_expect(&b_rx, m, a_addr, &[probe]).await;
        }
    });
    for (ma, mb) in from_a.iter().zip(&from_b[1..]) {
        a.send_to(ma, b_addr).await.unwrap();
        b.send_to(mb, a_addr).await.unwrap();
    }
    a.send_to(from_a.last().unwrap(), b_addr).await.unwrap();
    within("A's receiver", a_task).await.unwrap();
    within("B's receiver", b_task).await.unwrap();

    // Every payload left one relayed address and arrived at the other, so the server
    // forwarded it twice (the probe at least once).
    let stats = server.stats();
    assert!(stats.relayed_packets > 2 * 40, "{stats:?}");
    assert_eq!(stats.auth_failures, 0);

    a.close().await;
    b.close().await;
    wait_for_allocations(&server, 0).await;
    let mut buf = [0u8; 64];
    assert!(matches!(
        a.recv_from(&mut buf).await,
        Err(TurnError::Closed)
    ));
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_sees_exactly_the_relayed_bytes() {
    let (server, mut tapped) = server(16).await;
    let relay = allocate(&server, "tap").await;
    // A peer reachable directly: every payload crosses the relay exactly once.
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut sent = Vec::new();
    let mut buf = vec![0u8; 2048];
    for round in 0..10 {
        let mut out = vec![0u8; rng.gen_range(1..=1200)];
        rng.fill_bytes(&mut out);
        relay.send_to(&out, peer_addr).await.unwrap();
        let (n, from) = within("peer receive", peer.recv_from(&mut buf))
            .await
            .unwrap();
        assert_eq!(from, relay.relayed_addr());
        assert_eq!(&buf[..n], &out[..], "round {round}: client to peer");
        sent.push(out);

        let mut back = vec![0u8; rng.gen_range(1..=1200)];
        rng.fill_bytes(&mut back);
        peer.send_to(&back, relay.relayed_addr()).await.unwrap();
        recv_expect(&relay, &back, peer_addr, &[]).await;
        sent.push(back);
    }

    let mut seen = Vec::new();
    while let Ok(p) = tapped.try_recv() {
        seen.push(p);
    }
    assert_eq!(
        seen, sent,
        "the tap must see each relayed payload once, in order"
    );
    let stats = server.stats();
    assert_eq!(stats.relayed_packets, sent.len() as u64);
    assert_eq!(
        stats.relayed_bytes,
        sent.iter().map(|p| p.len() as u64).sum::<u64>()
    );
    relay.close().await;
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_refused() {
    let (server, _tapped) = server(16).await;
    let mut c = creds("wrong");
    c.password = turn_credentials(
        b"another secret",
        "wrong",
        Duration::from_secs(600),
        SystemTime::now(),
    )
    .password;
    let err = within(
        "refusal",
        TurnRelay::allocate(server.local_addr(), &c, REALM),
    )
    .await
    .err()
    .expect("a wrong password must not allocate");
    assert!(
        matches!(err, TurnError::CredentialsRejected { code: 400 | 401 }),
        "{err}"
    );
    let stats = server.stats();
    assert!(stats.auth_failures >= 1, "{stats:?}");
    assert_eq!(stats.allocations, 0);
    // The server still serves honest clients.
    let ok = allocate(&server, "honest").await;
    ok.close().await;
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_credentials_refused_by_server() {
    let (server, _tapped) = server(16).await;
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let mut c = turn_credentials(SECRET, "late", Duration::from_secs(60), an_hour_ago);
    // Correctly signed but expired username; lie about expires_at so the client's own
    // check lets it through and the server has to refuse it.
    c.expires_at = u64::MAX;
    let err = within(
        "refusal",
        TurnRelay::allocate(server.local_addr(), &c, REALM),
    )
    .await
    .err()
    .expect("an expired username must not allocate");
    assert!(
        matches!(err, TurnError::CredentialsRejected { .. }),
        "{err}"
    );
    assert!(server.stats().auth_failures >= 1);
    assert_eq!(server.stats().allocations, 0);
    server.close().await;
}

#[tokio::test]
async fn expired_credentials_refused_by_client() {
    let (server, _tapped) = server(16).await;
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let c = turn_credentials(SECRET, "late", Duration::from_secs(60), an_hour_ago);
    let err = TurnRelay::allocate(server.local_addr(), &c, REALM)
        .await
        .err()
        .expect("expired credentials must not be used");
    assert!(matches!(err, TurnError::CredentialsExpired { .. }), "{err}");
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_limit() {
    let (server, _tapped) = server(1).await;
    let first = allocate(&server, "first").await;
    let err = within(
        "refusal",
        TurnRelay::allocate(server.local_addr(), &creds("second"), REALM),
    )
    .await
    .err()
    .expect("the second allocation exceeds the limit");
    assert!(matches!(err, TurnError::Refused { code: 508, .. }), "{err}");
    assert_eq!(server.stats().allocations_refused, 1);
    first.close().await;
    wait_for_allocations(&server, 0).await;
    let again = allocate(&server, "third").await;
    again.close().await;
    server.close().await;
}

/// STUN header: type, length, magic cookie, transaction id.
fn stun_header(typ: u16, len: u16, rng: &mut StdRng) -> Vec<u8> {
    let mut m = Vec::with_capacity(20 + usize::from(len));
    m.extend_from_slice(&typ.to_be_bytes());
    m.extend_from_slice(&len.to_be_bytes());
    m.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    let mut tid = [0u8; 12];
    rng.fill_bytes(&mut tid);
    m.extend_from_slice(&tid);
    m
}

fn garbage(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..8) {
        // random bytes
        0 => {
            let mut b = vec![0u8; rng.gen_range(0..1600)];
            rng.fill_bytes(&mut b);
            b
        }
        // STUN header announcing more than follows
        1 => stun_header(0x0003, 400, rng),
        // Allocate with an attribute whose length runs past the end
        2 => {
            let mut m = stun_header(0x0003, 8, rng);
            m.extend_from_slice(&[0x00, 0x19, 0xff, 0xf0, 17, 0, 0, 0]);
            m
        }
        // Allocate without credentials: a challenge (and a nonce) each
        3 => {
            let mut m = stun_header(0x0003, 8, rng);
            m.extend_from_slice(&[0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0]);
            m
        }
        // Allocate with junk credentials and integrity
        4 => {
            let mut m = stun_header(0x0003, 48, rng);
            m.extend_from_slice(&[0x00, 0x06, 0x00, 0x04]); // USERNAME
            m.extend_from_slice(b"1:xy");
            m.extend_from_slice(&[0x00, 0x14, 0x00, 0x04]); // REALM
            m.extend_from_slice(b"rlm.");
            m.extend_from_slice(&[0x00, 0x15, 0x00, 0x04]); // NONCE
            m.extend_from_slice(b"nnnn");
            m.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]); // MESSAGE-INTEGRITY
            let mut mac = [0u8; 20];
            rng.fill_bytes(&mut mac);
            m.extend_from_slice(&mac);
            m
        }
        // ChannelData with bad lengths or unbound channels
        5 => {
            let mut m = vec![0x40, rng.r#gen(), 0xff, 0xff];
            m.extend_from_slice(&[1, 2, 3]);
            m
        }
        6 => vec![0x4f, 0xff, 0x00, 0x02, 0xaa, 0xbb],
        // Send indication, Refresh, ChannelBind, CreatePermission with no body
        _ => {
            let typ = [0x0016u16, 0x0004, 0x0009, 0x0008, 0x0111, 0xffff][rng.gen_range(0..6)];
            stun_header(typ, 0, rng)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_flood_does_not_stop_service() {
    let (server, _tapped) = server(16).await;
    let target = server.local_addr();
    let mut rng = StdRng::seed_from_u64(0x7e57);
    let sockets = [
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    ];
    for i in 0..20_000usize {
        let d = garbage(&mut rng);
        // Errors (a full socket buffer) only mean fewer datagrams arrived.
        let _ = sockets[i % 2].send_to(&d, target).await;
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Afterwards service continues: allocations and relaying work.
    let a = allocate(&server, "after-flood-a").await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    a.send_to(b"still relaying", peer.local_addr().unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = within("relay after flood", peer.recv_from(&mut buf))
        .await
        .unwrap();
    assert_eq!(
        (&buf[..n], from),
        (&b"still relaying"[..], a.relayed_addr())
    );
    let stats = server.stats();
    assert_eq!(stats.allocations, 1, "{stats:?}");
    assert!(stats.auth_failures > 0, "{stats:?}");
    a.close().await;
    server.close().await;
}
