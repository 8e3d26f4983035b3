//! The TLS accept loop that serves an axum router.
//!
//! One task per connection: the loop itself only accepts, so a slow or
//! hostile peer delays nobody else. Each connection holds a permit from a
//! semaphore for as long as its socket is open, including after a WebSocket
//! upgrade, so `max_connections` bounds open sockets.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, error, info, warn};

use crate::error::{Result, TlsError};
use crate::peer::{ConnectionInfo, PeerCertificate};

/// Limits for [`serve_with_options`]. Start from [`ServeOptions::default`]
/// and change the fields you need.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How long a peer may take to complete the TLS handshake before the
    /// connection is dropped (default 10 s), so a peer that connects and
    /// stalls cannot hold a connection slot.
    pub handshake_timeout: Duration,
    /// How long an HTTP/1.1 peer may take to send a request's headers
    /// (default 30 s).
    pub header_read_timeout: Duration,
    /// How long in-flight connections may run once shutdown is requested
    /// before they are cut off (default 5 s).
    pub shutdown_grace: Duration,
    /// The most connections open at once (default 10 000). Beyond it, new
    /// connections wait in the listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            max_connections: 10_000,
        }
    }
}

/// Serves `router` over TLS on `listener` with [`ServeOptions::default`]
/// until `shutdown` resolves. See [`serve_with_options`].
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    shutdown: impl Future,
) -> Result<()> {
    serve_with_options(listener, tls, router, ServeOptions::default(), shutdown).await
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves.
///
/// Each connection completes a TLS handshake within
/// [`handshake_timeout`](ServeOptions::handshake_timeout) and is then served
/// as HTTP/1.1 or HTTP/2 (whichever the peer speaks), with upgrades such as
/// WebSocket enabled. Every request carries a [`ConnectionInfo`] (and axum's
/// `ConnectInfo<SocketAddr>`) in its extensions. A failed handshake or
/// connection is logged at debug level and affects no other connection.
///
/// When `shutdown` resolves the listener is closed, connections still in
/// their handshake are dropped, and HTTP connections finish their in-flight
/// requests and close; whatever still runs after
/// [`shutdown_grace`](ServeOptions::shutdown_grace) is cut off. Connections
/// that were upgraded (WebSockets) belong to the handler that upgraded them:
/// close those from your own shutdown signal.
///
/// Returns an error only for invalid `options`; accept errors (such as
/// running out of file descriptors) are logged and retried.
pub async fn serve_with_options(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future,
) -> Result<()> {
    options.validate()?;
    let acceptor = TlsAcceptor::from(tls);
    let builder = http_builder(&options);
    let limiter = Arc::new(Semaphore::new(options.max_connections));
    let (stop_sender, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    if let Ok(local_addr) = listener.local_addr() {
        info!(%local_addr, "serving TLS");
    }

    loop {
        reap_finished(&mut connections);
        let permit = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            permit = Arc::clone(&limiter).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => {
                    error!("bug: the connection limiter was closed; stopping");
                    break;
                }
            },
        };
        let (stream, remote_addr) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_per_connection_error(&error) => {
                    debug!(%error, "accept failed for one connection");
                    continue;
                }
                Err(error) => {
                    // Typically EMFILE/ENFILE: back off instead of spinning.
                    warn!(%error, "accept failed; retrying in 1 s");
                    tokio::select! {
                        biased;
                        _ = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        // Latency matters more than packet count for interactive messaging.
        if let Err(error) = stream.set_nodelay(true) {
            debug!(%remote_addr, %error, "cannot set TCP_NODELAY");
        }
        connections.spawn(serve_connection(Connection {
            stream,
            remote_addr,
            acceptor: acceptor.clone(),
            router: router.clone(),
            builder: builder.clone(),
            handshake_timeout: options.handshake_timeout,
            permit,
            stop: stop.clone(),
        }));
    }

    drop(listener);
    info!(
        open_connections = connections.len(),
        "shutting down: no longer accepting connections"
    );
    stop_sender.send_replace(true);
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        while let Some(result) = connections.join_next().await {
            log_task_result(result);
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            cut_off = connections.len(),
            grace = ?options.shutdown_grace,
            "connections still open after the shutdown grace period; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

impl ServeOptions {
    fn validate(&self) -> Result<()> {
        if self.max_connections == 0 {
            return Err(TlsError::InvalidServeOptions(
                "max_connections must be at least 1",
            ));
        }
        if self.max_connections > Semaphore::MAX_PERMITS {
            return Err(TlsError::InvalidServeOptions(
                "max_connections exceeds tokio's semaphore limit",
            ));
        }
        Ok(())
    }
}

/// Everything one connection task owns.
struct Connection {
    stream: TcpStream,
    remote_addr: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    builder: Builder<TokioExecutor>,
    handshake_timeout: Duration,
    permit: OwnedSemaphorePermit,
    stop: watch::Receiver<bool>,
}

async fn serve_connection(connection: Connection) {
    let Connection {
        stream,
        remote_addr,
        acceptor,
        router,
        builder,
        handshake_timeout,
        permit,
        mut stop,
    } = connection;

    let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
    let tls_stream = tokio::select! {
        result = handshake => match result {
            Ok(Ok(tls_stream)) => tls_stream,
            Ok(Err(error)) => {
                debug!(%remote_addr, %error, "TLS handshake failed");
                return;
            }
            Err(_elapsed) => {
                debug!(%remote_addr, timeout = ?handshake_timeout, "TLS handshake timed out");
                return;
            }
        },
        // Shutdown while handshaking: nothing in flight to finish.
        () = stopped(&mut stop) => return,
    };

    let peer_certificate = tls_stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(<[_]>::first)
        .map(|end_entity| PeerCertificate::new(end_entity.clone()));
    let info = ConnectionInfo {
        remote_addr,
        peer_certificate,
    };
    let service =
        TowerToHyperService::new(router.map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(info.clone());
            request.extensions_mut().insert(ConnectInfo(remote_addr));
            request
        }));
    let io = TokioIo::new(PermitStream {
        inner: tls_stream,
        _permit: permit,
    });

    let mut conn = pin!(builder.serve_connection_with_upgrades(io, service));
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        debug!(%remote_addr, %error, "connection ended with an error");
    }
}

/// Resolves once shutdown is requested (or `serve` is gone, which implies it).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The `Ref` this returns must not be held across an await (it is not
    // `Send`), so it is dropped here.
    let _stopping_or_gone = stop.wait_for(|stopping| *stopping).await;
}

fn http_builder(options: &ServeOptions) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper enforces the header read timeout only when it has a timer.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    // Extended CONNECT (RFC 8441) carries WebSockets over HTTP/2.
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    builder
}

fn reap_finished(connections: &mut JoinSet<()>) {
    while let Some(result) = connections.try_join_next() {
        log_task_result(result);
    }
}

fn log_task_result(result: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(error) = result
        && error.is_panic()
    {
        error!(%error, "bug: a connection task panicked");
    }
}

/// Errors of `accept` that concern one connection, not the listener.
fn is_per_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// A stream that holds its connection's slot until the stream is dropped,
/// wherever it ends up (hyper's connection, or an upgraded WebSocket).
struct PermitStream<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for PermitStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PermitStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
