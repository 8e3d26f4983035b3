//! A device's TURN client (RFC 8656): one UDP allocation on the provider's relay.
//!
//! [`TurnRelay::allocate`] authenticates with the time-limited credentials the
//! provider issued ([`crate::turn_server::turn_credentials`]) and returns a relayed
//! transport address. The caller offers that address as an ICE "relay" candidate and
//! routes datagrams whose source is the relayed address through
//! [`TurnRelay::send_to`]; [`TurnRelay::recv_from`] yields what peers sent to it.
//! Permissions (RFC 8656 section 9) are created on the first send to each peer IP and
//! refreshed, and the allocation is refreshed, by the webrtc-rs `turn` client.
//!
//! `send_to` and `recv_from` take `&self` and the handle is cheap to clone, so a
//! receive task and a send task can share one relay.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use webrtc_util::Conn;

use crate::turn_server::{TurnCredentials, TurnError};

/// How long [`TurnRelay::allocate`] waits for the server (both round trips).
pub const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Receive buffers should hold this much: the largest payload the relay forwards.
pub const MAX_RELAYED_DATAGRAM: usize = 1500;

/// One allocation on a TURN server. Clones share the allocation.
#[derive(Clone)]
pub struct TurnRelay {
    client: turn::client::Client,
    conn: Arc<dyn Conn + Send + Sync>,
    relayed_addr: SocketAddr,
    server: SocketAddr,
}

impl TurnRelay {
    /// Allocates a relayed UDP address on `server`, from a fresh local UDP socket.
    ///
    /// `realm` is what the provider announced with the credentials; the long-term
    /// credential mechanism then uses the realm the server puts in its challenge.
    pub async fn allocate(
        server: SocketAddr,
        creds: &TurnCredentials,
        realm: &str,
    ) -> Result<TurnRelay, TurnError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if creds.expires_at < now {
            return Err(TurnError::CredentialsExpired {
                expires_at: creds.expires_at,
                now,
            });
        }
        let local: IpAddr = match server {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let socket = UdpSocket::bind(SocketAddr::new(local, 0))
            .await
            .map_err(|source| TurnError::Io {
                context: "binding the client socket",
                source,
            })?;
        let client = turn::client::Client::new(turn::client::ClientConfig {
            stun_serv_addr: String::new(),
            turn_serv_addr: server.to_string(),
            username: creds.username.clone(),
            password: creds.password.clone(),
            realm: realm.to_owned(),
            software: String::new(),
            rto_in_ms: 0, // the crate's default, 200 ms
            conn: Arc::new(socket),
            vnet: None,
        })
        .await
        .map_err(|e| protocol("configuring the client", &e))?;
        client
            .listen()
            .await
            .map_err(|e| protocol("starting the client", &e))?;

        let allocated = tokio::time::timeout(ALLOCATE_TIMEOUT, client.allocate()).await;
        let conn = match allocated {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                let _ = client.close().await;
                return Err(allocate_error(&e));
            }
            Err(_) => {
                let _ = client.close().await;
                return Err(TurnError::Timeout {
                    server,
                    after: ALLOCATE_TIMEOUT,
                });
            }
        };
        let relayed_addr = conn
            .local_addr()
            .map_err(|e| protocol("reading the relayed address", &e))?;
        tracing::debug!(%server, %relayed_addr, "TURN allocation");
        Ok(TurnRelay {
            client,
            conn: Arc::new(conn),
            relayed_addr,
            server,
        })
    }

    /// The relayed transport address peers send to (the ICE relay candidate).
    pub fn relayed_addr(&self) -> SocketAddr {
        self.relayed_addr
    }

    /// The TURN server this allocation lives on.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Sends `data` to `peer` from the relayed address. The first datagram to a new
    /// peer IP waits one round trip to the server for the permission.
    pub async fn send_to(&self, data: &[u8], peer: SocketAddr) -> Result<(), TurnError> {
        self.conn
            .send_to(data, peer)
            .await
            .map(|_| ())
            .map_err(|e| protocol("sending through the relay", &e))
    }

    /// Waits for a datagram a peer sent to the relayed address; returns its length and
    /// the peer. A datagram longer than `buf` is lost and reported as an error, so use
    /// at least [`MAX_RELAYED_DATAGRAM`] bytes. Returns [`TurnError::Closed`] once the
    /// relay is closed.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TurnError> {
        match self.conn.recv_from(buf).await {
            Ok(v) => Ok(v),
            Err(webrtc_util::Error::Io(io))
                if io.0.kind() == std::io::ErrorKind::ConnectionAborted =>
            {
                Err(TurnError::Closed)
            }
            Err(e) => Err(protocol("receiving from the relay", &e)),
        }
    }

    /// Releases the allocation (a Refresh with lifetime 0, not waited for) and stops
    /// the client; pending and later `recv_from` calls return [`TurnError::Closed`].
    pub async fn close(&self) {
        if let Err(e) = self.conn.close().await {
            tracing::debug!(error = %e, "releasing the TURN allocation");
        }
        if let Err(e) = self.client.close().await {
            tracing::debug!(error = %e, "closing the TURN client");
        }
    }
}

fn protocol(context: &'static str, e: &dyn std::fmt::Display) -> TurnError {
    TurnError::Protocol {
        context,
        detail: e.to_string(),
    }
}

/// The `turn` client reports an error response to Allocate only as text:
/// `"<type> (error <code>: <reason>)"`.
fn allocate_error(e: &turn::Error) -> TurnError {
    let text = e.to_string();
    let Some((code, reason)) = parse_error_code(&text) else {
        return protocol("allocating", &text);
    };
    match code {
        400 | 401 => TurnError::CredentialsRejected { code },
        _ => TurnError::Refused { code, reason },
    }
}

fn parse_error_code(text: &str) -> Option<(u16, String)> {
    let (_, rest) = text.split_once("(error ")?;
    let rest = rest.strip_suffix(')')?;
    let (code, reason) = rest.split_once(':').unwrap_or((rest, ""));
    Some((code.trim().parse().ok()?, reason.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn error_codes_from_turn_text() {
        assert_eq!(
            parse_error_code("Allocate error response (error 508: )"),
            Some((508, String::new()))
        );
        assert_eq!(
            parse_error_code("Allocate error response (error 401: Unauthorized)"),
            Some((401, "Unauthorized".into()))
        );
        assert_eq!(parse_error_code("transaction closed"), None);
        assert!(matches!(
            allocate_error(&turn::Error::Other(
                "Allocate error response (error 400: )".into()
            )),
            TurnError::CredentialsRejected { code: 400 }
        ));
    }
}
