//! Calls: the provider's TURN relay and, for rooms it hubs, the SFU of group calls.
//!
//! - `GET /v1/calls/turn` gives a device time-limited credentials for our TURN
//!   server (RFC 8656), in the widely used "TURN REST API" form: the username is
//!   `<expiry>:<random label>` (no user identifier), the password an HMAC of it under
//!   a secret only the provider holds (`<data_dir>/turn_secret`). The relay forwards
//!   SRTP it cannot read.
//! - `POST /v1/rooms/{room}/call` joins the room's group call with an SDP offer
//!   (one `sendonly` audio m-line and the receive slots, see
//!   [`entente_media::sfu`]) and answers with the SFU's SDP. If we hub the room we
//!   check that the device is a member of the room's MLS group now and hand the
//!   offer to our SFU; otherwise we pass it to the hub with
//!   `POST /entente/v1/calls/join` over mutually authenticated TLS, and the hub
//!   checks that the device belongs to the calling provider.
//! - When a commit changes the room's members, the hub drops from the SFU every
//!   device no longer in the group ([`on_members_changed`]). The media itself is
//!   SFrame-encrypted under keys from the room's MLS epoch, so the SFU could not
//!   read it anyway; dropping the removed is about not spending bandwidth on them.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use entente_media::sfu::{Sfu, SfuConfig};
use entente_media::turn_server::{TurnServer, TurnServerConfig};
use entente_wire::ids::{ClientId, RoomId};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::client_api::Authed;
use crate::config::Config;
use crate::error::Failure;
use crate::federation::client::FedError;
use crate::federation::server::Peer;
use crate::state::AppState;

/// Federation: a follower passes a device's join to the room's hub.
pub const FED_JOIN: &str = "/entente/v1/calls/join";

/// The file in the data directory that holds the TURN credential secret.
const TURN_SECRET_FILE: &str = "turn_secret";

/// `[calls]` in provider.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsConfig {
    /// Offer a TURN relay to our users and an SFU for rooms we hub.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// UDP address of the SFU. Default: the HTTPS listener's IP, any free port.
    #[serde(default)]
    pub sfu_listen: Option<SocketAddr>,
    /// The address devices reach the SFU at, if not `sfu_listen` (behind NAT).
    #[serde(default)]
    pub sfu_public: Option<SocketAddr>,
    /// UDP address of the TURN server. Default: the listener's IP, any free port.
    #[serde(default)]
    pub turn_listen: Option<SocketAddr>,
    /// The address devices reach the TURN server at, if not `turn_listen`.
    #[serde(default)]
    pub turn_public: Option<SocketAddr>,
    /// The IP relayed addresses are allocated on. Default: the TURN server's IP.
    #[serde(default)]
    pub turn_relay_ip: Option<IpAddr>,
    /// Validity of TURN credentials, in seconds.
    #[serde(default = "default_ttl")]
    pub turn_credential_secs: u64,
    /// Most relay allocations at once.
    #[serde(default = "default_allocations")]
    pub max_allocations: usize,
    /// Most devices in one group call.
    #[serde(default = "default_participants")]
    pub max_participants: usize,
    /// Most group calls at once.
    #[serde(default = "default_calls")]
    pub max_calls: usize,
}

fn yes() -> bool {
    true
}
fn default_ttl() -> u64 {
    3600
}
fn default_allocations() -> usize {
    1000
}
fn default_participants() -> usize {
    16
}
fn default_calls() -> usize {
    1000
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sfu_listen: None,
            sfu_public: None,
            turn_listen: None,
            turn_public: None,
            turn_relay_ip: None,
            turn_credential_secs: default_ttl(),
            max_allocations: default_allocations(),
            max_participants: default_participants(),
            max_calls: default_calls(),
        }
    }
}

impl CallsConfig {
    /// Checks what `Config::validate` can check without binding.
    pub fn validate(&self, listen: SocketAddr) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let sfu = self.sfu_listen.unwrap_or(SocketAddr::new(listen.ip(), 0));
        if sfu.ip().is_unspecified() && self.sfu_public.is_none() {
            return Err("[calls] the SFU listens on an unspecified address: set `sfu_public` to the address devices reach it at".into());
        }
        let turn = self.turn_listen.unwrap_or(SocketAddr::new(listen.ip(), 0));
        if turn.ip().is_unspecified()
            && (self.turn_public.is_none() || self.turn_relay_ip.is_none())
        {
            return Err("[calls] the TURN server listens on an unspecified address: set `turn_public` and `turn_relay_ip`".into());
        }
        if self.turn_credential_secs == 0 || self.max_participants < 2 {
            return Err(
                "[calls] `turn_credential_secs` must be positive and `max_participants` at least 2"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The running call services.
pub struct Calls {
    pub sfu: Option<Sfu>,
    /// Taken out when the provider stops (closing consumes it).
    turn: std::sync::Mutex<Option<TurnServer>>,
    turn_addr: Option<SocketAddr>,
    turn_secret: Vec<u8>,
    turn_public: Option<SocketAddr>,
    ttl: Duration,
}

impl Calls {
    /// Starts the SFU and the TURN server (none when `[calls] enabled = false`).
    pub async fn start(config: &Config) -> Result<Calls, String> {
        let c = &config.calls;
        if !c.enabled {
            return Ok(Calls {
                sfu: None,
                turn: std::sync::Mutex::new(None),
                turn_addr: None,
                turn_secret: Vec::new(),
                turn_public: None,
                ttl: Duration::ZERO,
            });
        }
        let ip = config.listen.ip();
        let secret = load_or_create_secret(config).map_err(|e| format!("the TURN secret: {e}"))?;
        let turn_listen = c.turn_listen.unwrap_or(SocketAddr::new(ip, 0));
        let turn = TurnServer::start(TurnServerConfig {
            listen: turn_listen,
            relay_ip: c.turn_relay_ip.unwrap_or(turn_listen.ip()),
            realm: config.domain.clone(),
            secret: secret.clone(),
            max_allocations: c.max_allocations,
            tap: None,
        })
        .await
        .map_err(|e| format!("cannot start the TURN server on {turn_listen}: {e}"))?;
        let sfu_listen = c.sfu_listen.unwrap_or(SocketAddr::new(ip, 0));
        let mut sfu_config = SfuConfig::new(sfu_listen);
        sfu_config.public_addr = c.sfu_public;
        sfu_config.max_participants_per_call = c.max_participants;
        sfu_config.max_calls = c.max_calls;
        let sfu = Sfu::start(sfu_config)
            .map_err(|e| format!("cannot start the SFU on {sfu_listen}: {e}"))?;
        let turn_addr = turn.local_addr();
        Ok(Calls {
            sfu: Some(sfu),
            turn: std::sync::Mutex::new(Some(turn)),
            turn_addr: Some(turn_addr),
            turn_secret: secret,
            turn_public: c.turn_public,
            ttl: Duration::from_secs(c.turn_credential_secs),
        })
    }

    /// Stops both services.
    pub async fn close(&self) {
        if let Some(s) = &self.sfu {
            s.close().await;
        }
        let turn = match self.turn.lock() {
            Ok(mut t) => t.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(t) = turn {
            t.close().await;
        }
    }

    /// The TURN relay's counters, while it runs.
    pub fn turn_stats(&self) -> Option<entente_media::turn_server::TurnStats> {
        match self.turn.lock() {
            Ok(t) => t.as_ref().map(TurnServer::stats),
            Err(p) => p.into_inner().as_ref().map(TurnServer::stats),
        }
    }
}

fn load_or_create_secret(config: &Config) -> std::io::Result<Vec<u8>> {
    let path = config.data_dir.join(TURN_SECRET_FILE);
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: expected 32 bytes", path.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; 32];
            rand::thread_rng().fill_bytes(&mut key);
            crate::state::write_secret(&path, &key)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/calls/turn", get(turn_credentials))
        .route("/v1/rooms/{room}/call", post(client_join))
        .route(FED_JOIN, post(peer_join))
        .with_state(state)
}

/// TURN credentials for a device (`GET /v1/calls/turn`).
#[derive(Debug, Serialize, Deserialize)]
pub struct TurnInfo {
    pub server: String,
    pub realm: String,
    pub username: String,
    pub password: String,
    pub expires_at: u64,
}

fn calls_off() -> Failure {
    Failure::new(
        axum::http::StatusCode::NOT_IMPLEMENTED,
        "calls_disabled",
        "this provider does not offer calls ([calls] enabled = false)",
    )
}

async fn turn_credentials(
    State(state): State<AppState>,
    _a: Authed,
) -> Result<Json<TurnInfo>, Failure> {
    let turn_addr = state.calls.turn_addr.ok_or_else(calls_off)?;
    let mut label = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut label);
    let creds = entente_media::turn_server::turn_credentials(
        &state.calls.turn_secret,
        &hex::encode(label),
        state.calls.ttl,
        SystemTime::now(),
    );
    let server = state.calls.turn_public.unwrap_or(turn_addr);
    Ok(Json(TurnInfo {
        server: server.to_string(),
        realm: state.config.domain.clone(),
        username: creds.username,
        password: creds.password,
        expires_at: creds.expires_at,
    }))
}

/// A join: the SDP offer of a device for a room's group call.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinCall {
    pub offer: String,
}

/// The SFU's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinAnswer {
    pub answer: String,
}

/// Hub-bound join from a follower.
#[derive(Debug, Serialize, Deserialize)]
struct PeerJoin {
    room: String,
    client: String,
    offer: String,
}

const MAX_SDP: usize = 32 * 1024;

/// `POST /v1/rooms/{room}/call`.
async fn client_join(
    State(state): State<AppState>,
    Path(room): Path<String>,
    a: Authed,
) -> Result<Json<JoinAnswer>, Failure> {
    let room: RoomId = room
        .parse()
        .map_err(|e| Failure::bad_request(format!("room id in path: {e}")))?;
    let call: JoinCall = a.json()?;
    if call.offer.len() > MAX_SDP {
        return Err(Failure::bad_request("the offer is longer than 32 KiB"));
    }
    if state.is_local(room.domain()) {
        let answer = hub_join(&state, &room, &a.client_id, &call.offer).await?;
        return Ok(Json(JoinAnswer { answer }));
    }
    let body = serde_json::to_vec(&PeerJoin {
        room: room.to_string(),
        client: a.client_id.to_string(),
        offer: call.offer,
    })
    .map_err(|e| Failure::internal("join", e))?;
    match state
        .federation
        .extension(reqwest::Method::POST, room.domain(), FED_JOIN, Some(body))
        .await
    {
        Ok(bytes) => {
            let answer: JoinAnswer = serde_json::from_slice(&bytes).map_err(|e| {
                Failure::bad_gateway(format!(
                    "the hub {} answered the join with {e}",
                    room.domain()
                ))
            })?;
            if answer.answer.len() > MAX_SDP {
                return Err(Failure::bad_gateway(
                    "the hub's answer is longer than 32 KiB",
                ));
            }
            Ok(Json(answer))
        }
        Err(FedError::Refused {
            domain,
            status,
            reason,
        }) if (400..500).contains(&status) => {
            let message = serde_json::from_str::<serde_json::Value>(&reason)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or(reason);
            let status = axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::FORBIDDEN);
            Err(Failure::new(
                status,
                "call_refused",
                format!("the hub {domain} refused the call: {message}"),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /entente/v1/calls/join` from a follower.
async fn peer_join(
    State(state): State<AppState>,
    Peer(peer): Peer,
    body: axum::body::Bytes,
) -> Result<Json<JoinAnswer>, Failure> {
    let join: PeerJoin = serde_json::from_slice(&body)
        .map_err(|e| Failure::bad_request(format!("invalid JSON body: {e}")))?;
    let room: RoomId = join
        .room
        .parse()
        .map_err(|e| Failure::bad_request(format!("room: {e}")))?;
    let client: ClientId = join
        .client
        .parse()
        .map_err(|e| Failure::bad_request(format!("client: {e}")))?;
    if client.domain() != &peer {
        return Err(Failure::forbidden(format!(
            "{peer} may not join a call for {client}, a device of {}",
            client.domain()
        )));
    }
    if join.offer.len() > MAX_SDP {
        return Err(Failure::bad_request("the offer is longer than 32 KiB"));
    }
    let answer = hub_join(&state, &room, &client, &join.offer).await?;
    Ok(Json(JoinAnswer { answer }))
}

/// Hub: the device must be in the room's MLS group now.
async fn hub_join(
    state: &AppState,
    room: &RoomId,
    client: &ClientId,
    offer: &str,
) -> Result<String, Failure> {
    let sfu = state.calls.sfu.as_ref().ok_or_else(calls_off)?;
    if !state.is_local(room.domain()) {
        return Err(Failure::bad_request(format!(
            "{room} is hubbed by {}, not by {}",
            room.domain(),
            state.domain
        )));
    }
    let members = members_of(state, room).await?;
    if !members.iter().any(|m| m == &client.to_string()) {
        return Err(Failure::forbidden(format!(
            "{client} is not a member of {room}: only the room's members may join its call"
        )));
    }
    let answer = sfu
        .join(&room.to_string(), &client.to_string(), offer)
        .await
        .map_err(|e| Failure::bad_request(format!("the SFU refused the offer: {e}")))?;
    crate::metrics::Metrics::inc(&state.metrics.call_joins);
    Ok(answer)
}

/// The devices in the room's MLS group now.
async fn members_of(state: &AppState, room: &RoomId) -> Result<Vec<String>, Failure> {
    let guard = crate::hub::commit::tracked(state, room).await?;
    let tracked = guard
        .as_ref()
        .ok_or_else(|| Failure::not_found(format!("no room {room} here")))?;
    Ok(tracked
        .members()
        .map_err(|e| Failure::internal("members", e))?
        .into_iter()
        .map(|m| m.client.to_string())
        .collect())
}

/// Hub: after a commit, only the devices still in the group stay in the call.
pub async fn on_members_changed(state: &AppState, room: &RoomId, members: &[String]) {
    if let Some(sfu) = &state.calls.sfu {
        sfu.retain(&room.to_string(), members).await;
    }
}

/// Prometheus text for the SFU and the TURN relay.
pub fn metrics_text(state: &AppState) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, kind: &str, help: &str, v: u64| {
        out += &format!(
            "# HELP entente_{name} {help}\n# TYPE entente_{name} {kind}\nentente_{name} {v}\n"
        );
    };
    if let Some(sfu) = &state.calls.sfu {
        let s = sfu.stats();
        gauge("sfu_calls", "gauge", "Group calls on our SFU.", s.calls);
        gauge(
            "sfu_participants",
            "gauge",
            "Devices connected to our SFU.",
            s.participants,
        );
        gauge(
            "sfu_frames_forwarded_total",
            "counter",
            "Frames our SFU forwarded.",
            s.frames_forwarded,
        );
        gauge(
            "sfu_frames_dropped_total",
            "counter",
            "Frames our SFU dropped (no free slot).",
            s.frames_dropped,
        );
        gauge(
            "sfu_bytes_forwarded_total",
            "counter",
            "Bytes of frames our SFU forwarded.",
            s.bytes_forwarded,
        );
    }
    if let Some(t) = state.calls.turn_stats() {
        gauge(
            "turn_allocations",
            "gauge",
            "TURN allocations.",
            t.allocations as u64,
        );
        gauge(
            "turn_relayed_packets_total",
            "counter",
            "Datagrams our TURN server relayed.",
            t.relayed_packets,
        );
        gauge(
            "turn_relayed_bytes_total",
            "counter",
            "Bytes our TURN server relayed.",
            t.relayed_bytes,
        );
        gauge(
            "turn_auth_failures_total",
            "counter",
            "TURN requests with bad credentials.",
            t.auth_failures,
        );
    }
    out
}
