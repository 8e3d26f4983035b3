//! End-to-end tests of `serve` and the rustls configurations over loopback TCP
//! with real TLS: who is identified, who is refused, and how the server
//! survives bad peers and shuts down.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use entente_tls::{
    ConnectionInfo, DevCa, Identity, ServeOptions, TlsError, TrustAnchors, client_config,
    serve_with_options, server_config,
};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Bounds every wait in these tests so a regression fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

struct Pki {
    ca: DevCa,
    anchors: TrustAnchors,
    a: Identity,
}

impl Pki {
    fn new() -> Self {
        let ca = DevCa::generate("Entente test CA").unwrap();
        let anchors = ca.trust_anchors().unwrap();
        let a = ca.issue("a.example").unwrap().identity().unwrap();
        Self { ca, anchors, a }
    }

    fn identity(&self, domain: &str) -> Identity {
        self.ca.issue(domain).unwrap().identity().unwrap()
    }
}

struct TestServer {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), TlsError>>,
}

impl TestServer {
    /// a.example's listener, accepting client certificates from `pki`'s CA.
    async fn start(pki: &Pki, router: Router, options: ServeOptions) -> Self {
        let tls = server_config(&pki.a, &pki.anchors).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_with_options(
            listener,
            tls,
            router,
            options,
            shutdown_signal,
        ));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    /// Requests shutdown and waits for `serve` to return.
    async fn stop(self) {
        self.shutdown.send(()).unwrap();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("serve did not return after shutdown")
            .unwrap()
            .unwrap();
    }
}

fn router() -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/ws", get(websocket_echo))
}

/// Describes the peer as the handler sees it.
async fn whoami(Extension(info): Extension<ConnectionInfo>) -> String {
    describe(&info)
}

fn describe(info: &ConnectionInfo) -> String {
    let peer = match &info.peer_certificate {
        None => "anonymous".to_owned(),
        Some(cert) => {
            let valid_for: Vec<&str> = ["a.example", "b.example", "A.EXAMPLE", "127.0.0.1"]
                .into_iter()
                .filter(|domain| cert.is_valid_for_domain(domain))
                .collect();
            format!("valid for {}", valid_for.join(","))
        }
    };
    format!("{peer} from port {}", info.remote_addr.port())
}

async fn websocket_echo(
    upgrade: WebSocketUpgrade,
    Extension(info): Extension<ConnectionInfo>,
) -> Response {
    upgrade.on_upgrade(move |mut socket: WebSocket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Text(text) = message {
                let reply = format!("{} says {}", describe(&info), text.as_str());
                if socket.send(Message::Text(reply.into())).await.is_err() {
                    return;
                }
            }
        }
    })
}

/// A client config that trusts `anchors`, presents `identity` if given, and
/// offers only HTTP/1.1 (what the raw requests below speak).
fn http1_client(anchors: &TrustAnchors, identity: Option<&Identity>) -> Arc<ClientConfig> {
    let mut config = (*client_config(anchors, identity).unwrap()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    server_name: &str,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let server_name = ServerName::try_from(server_name.to_owned()).unwrap();
    tokio::time::timeout(
        PATIENCE,
        TlsConnector::from(config).connect(server_name, tcp),
    )
    .await
    .expect("TLS handshake hung")
}

/// Sends `GET path` over HTTP/1.1 and returns the whole response.
async fn http1_get<S>(stream: &mut S, path: &str) -> io::Result<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("response hung")?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// One complete anonymous request, to show the server is still serving.
async fn assert_serves_anonymous(pki: &Pki, addr: SocketAddr) {
    let mut stream = connect(addr, http1_client(&pki.anchors, None), "a.example")
        .await
        .unwrap();
    let response = http1_get(&mut stream, "/whoami").await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("anonymous from port"), "{response}");
}

fn rustls_error(error: &io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

#[tokio::test]
async fn federation_peer_is_identified_by_its_certificate() {
    let pki = Pki::new();
    let server = TestServer::start(&pki, router(), ServeOptions::default()).await;

    // a.example's own identity doubles as a federation client certificate.
    let mut stream = connect(
        server.addr,
        http1_client(&pki.anchors, Some(&pki.a)),
        "a.example",
    )
    .await
    .unwrap();
    let local_port = stream.get_ref().0.local_addr().unwrap().port();
    let response = http1_get(&mut stream, "/whoami").await.unwrap();

    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // Valid for its own name in any case, not for b.example or an IP address.
    assert!(
        response.contains(&format!(
            "valid for a.example,A.EXAMPLE from port {local_port}"
        )),
        "{response}"
    );
    server.stop().await;
}

#[tokio::test]
async fn second_peer_is_identified_as_itself() {
    let pki = Pki::new();
    let b = pki.identity("b.example");
    let server = TestServer::start(&pki, router(), ServeOptions::default()).await;

    let mut stream = connect(
        server.addr,
        http1_client(&pki.anchors, Some(&b)),
        "a.example",
    )
    .await
    .unwrap();
    let response = http1_get(&mut stream, "/whoami").await.unwrap();

    assert!(response.contains("valid for b.example from"), "{response}");
    server.stop().await;
}

#[tokio::test]
async fn client_without_certificate_is_served_anonymously() {
    let pki = Pki::new();
    let server = TestServer::start(&pki, router(), ServeOptions::default()).await;
    assert_serves_anonymous(&pki, server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let server = TestServer::start(&pki, router(), ServeOptions::default()).await;
    let impostor = Pki::new().identity("b.example");

    // The client trusts the server, but presents a certificate the server's
    // anchors do not vouch for. In TLS 1.3 the client may finish its side of
    // the handshake before the server's verdict arrives, so the refusal can
    // surface on connect or on the first read.
    let outcome = match connect(
        server.addr,
        http1_client(&pki.anchors, Some(&impostor)),
        "a.example",
    )
    .await
    {
        Err(error) => Err(error),
        Ok(mut stream) => http1_get(&mut stream, "/whoami").await,
    };
    let error = outcome.expect_err("an unknown client CA must not be served");
    assert!(
        matches!(
            rustls_error(&error),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::UnknownCA | rustls::AlertDescription::BadCertificate
            ))
        ),
        "{error:?}"
    );

    assert_serves_anonymous(&pki, server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn client_trusting_another_ca_rejects_the_server() {
    let pki = Pki::new();
    let server = TestServer::start(&pki, router(), ServeOptions::default()).await;
    let other = Pki::new();

    let error = connect(server.addr, http1_client(&other.anchors, None), "a.example")
        .await
        .expect_err("a server from an unknown CA must be rejected");
    assert!(
        matches!(
            rustls_error(&error),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{error:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn client_rejects_the_server_under_another_name() {
    let pki = Pki::new();
    let server = TestServer::start(&pki, router(), ServeOptions::default()).await;

    let error = connect(server.addr, http1_client(&pki.anchors, None), "b.example")
        .await
        .expect_err("a.example's certificate must not pass for b.example");
    assert!(
        matches!(
            rustls_error(&error),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{error:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn garbage_connection_does_not_stop_the_server() {
    let pki = Pki::new();
    let server = TestServer::start(&pki, router(), ServeOptions::default()).await;

    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /whoami HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    // The server drops the connection (possibly after a TLS alert); it must
    // never answer in plaintext HTTP.
    let _ = tokio::time::timeout(PATIENCE, plain.read_to_end(&mut reply))
        .await
        .expect("server kept a garbage connection open");
    assert!(!reply.starts_with(b"HTTP/"), "{reply:?}");

    assert_serves_anonymous(&pki, server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn stalled_handshake_is_dropped_after_the_timeout() {
    let pki = Pki::new();
    let mut options = ServeOptions::default();
    options.handshake_timeout = Duration::from_millis(200);
    let server = TestServer::start(&pki, router(), options).await;

    // Connects and says nothing.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(PATIENCE, silent.read(&mut buf))
        .await
        .expect("a silent peer was not dropped");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    assert_serves_anonymous(&pki, server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn http2_is_negotiated_and_sees_the_peer() {
    let pki = Pki::new();
    let server = TestServer::start(&pki, router(), ServeOptions::default()).await;

    // The crate's own client config offers h2 first.
    let config = client_config(&pki.anchors, Some(&pki.a)).unwrap();
    let stream = connect(server.addr, config, "a.example").await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get("https://a.example/whoami")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), hyper::StatusCode::OK);
    let body = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 64 * 1024)
        .await
        .unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        body.starts_with("valid for a.example,A.EXAMPLE from"),
        "{body}"
    );

    drop(sender);
    server.stop().await;
}

#[tokio::test]
async fn websocket_upgrade_works_and_sees_the_peer() {
    let pki = Pki::new();
    let server = TestServer::start(&pki, router(), ServeOptions::default()).await;

    let stream = connect(
        server.addr,
        http1_client(&pki.anchors, Some(&pki.a)),
        "a.example",
    )
    .await
    .unwrap();
    let (mut socket, _response) = tokio_tungstenite::client_async("wss://a.example/ws", stream)
        .await
        .unwrap();
    socket
        .send(tokio_tungstenite::tungstenite::Message::text("hello"))
        .await
        .unwrap();
    let reply = tokio::time::timeout(PATIENCE, socket.next())
        .await
        .expect("no WebSocket reply")
        .expect("WebSocket closed")
        .unwrap();
    let reply = reply.into_text().unwrap();
    assert!(
        reply.starts_with("valid for a.example,A.EXAMPLE from"),
        "{reply}"
    );
    assert!(reply.ends_with("says hello"), "{reply}");

    socket.close(None).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let pki = Pki::new();
    let mut options = ServeOptions::default();
    options.max_connections = 1;
    let server = TestServer::start(&pki, router(), options).await;
    let config = http1_client(&pki.anchors, None);

    let first = connect(server.addr, Arc::clone(&config), "a.example")
        .await
        .unwrap();
    // The second connection sits in the listen backlog: its handshake cannot
    // complete while the first holds the only slot.
    let second = tokio::spawn(connect(server.addr, Arc::clone(&config), "a.example"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "second connection admitted over the limit"
    );

    drop(first);
    let mut second = tokio::time::timeout(PATIENCE, second)
        .await
        .expect("second connection not admitted after the first closed")
        .unwrap()
        .unwrap();
    let response = http1_get(&mut second, "/whoami").await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_stops_accepting() {
    let pki = Pki::new();
    let started = Arc::new(Notify::new());
    let router = Router::new().route(
        "/slow",
        get({
            let started = Arc::clone(&started);
            move || async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                "finished"
            }
        }),
    );
    let server = TestServer::start(&pki, router, ServeOptions::default()).await;
    let addr = server.addr;

    let mut stream = connect(addr, http1_client(&pki.anchors, None), "a.example")
        .await
        .unwrap();
    let request = tokio::spawn(async move { http1_get(&mut stream, "/slow").await });
    tokio::time::timeout(PATIENCE, started.notified())
        .await
        .expect("request never reached the handler");

    server.stop().await;

    let response = request.await.unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("finished"), "{response}");
    // The listener is closed.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_cuts_off_connections_after_the_grace_period() {
    let pki = Pki::new();
    let started = Arc::new(Notify::new());
    let router = Router::new().route(
        "/forever",
        get({
            let started = Arc::clone(&started);
            move || async move {
                started.notify_one();
                std::future::pending::<()>().await;
            }
        }),
    );
    let mut options = ServeOptions::default();
    options.shutdown_grace = Duration::from_millis(200);
    let server = TestServer::start(&pki, router, options).await;

    let mut stream = connect(server.addr, http1_client(&pki.anchors, None), "a.example")
        .await
        .unwrap();
    let request = tokio::spawn(async move { http1_get(&mut stream, "/forever").await });
    tokio::time::timeout(PATIENCE, started.notified())
        .await
        .expect("request never reached the handler");

    // `stop` fails the test unless serve returns well within PATIENCE.
    server.stop().await;
    let outcome = request.await.unwrap();
    assert!(
        !outcome
            .as_deref()
            .unwrap_or_default()
            .starts_with("HTTP/1.1 200"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn zero_max_connections_is_rejected() {
    let pki = Pki::new();
    let tls = server_config(&pki.a, &pki.anchors).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut options = ServeOptions::default();
    options.max_connections = 0;

    let result = serve_with_options(
        listener,
        tls,
        router(),
        options,
        std::future::pending::<()>(),
    )
    .await;
    assert!(
        matches!(result, Err(TlsError::InvalidServeOptions(_))),
        "{result:?}"
    );
}
