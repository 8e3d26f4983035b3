//! The Signal-compatible two-party channel, provider side: the key directory
//! (prekey bundles), capability negotiation, sender certificates and sealed-sender
//! delivery. Bodies are the JSON of [`entente_wire::signal`].
//!
//! Client API (signed by the client, like every client request):
//! - `POST|GET /v1/signal/prekeys`: publish prekeys, see what is left.
//! - `GET /v1/signal/bundles/{user}`: claim a bundle per device of a user, here or
//!   at the user's provider.
//! - `GET /v1/capabilities/{user}`, `POST /v1/capabilities`: who speaks what.
//! - `POST /v1/signal/sender-certificate`: a certificate for sealed sender.
//! - `POST /v1/signal/messages`: sealed messages to every device of one user.
//!
//! Federation (Entente's extension of MIMI, under [`ENTENTE_PREFIX`], the peer
//! authenticated by its TLS client certificate like every MIMI request, and listed
//! in the MIMI directory as `entente:*` entries):
//! - `POST /entente/v1/signal/bundles/{user}`: claim bundles of one of our users.
//! - `GET /entente/v1/capabilities/{user}`: one of our users' capabilities.
//! - `POST /entente/v1/signal/messages`: sealed messages for our clients
//!   ([`SealedDelivery`](entente_wire::signal::SealedDelivery): recipient devices and sealed bytes, no sender).
//!
//! What the providers learn. The sender's provider authenticates its client and so
//! knows who sends to which user, but stores nothing of it: the recipient's inbox
//! item (local recipient) or the outbound request (remote recipient) holds the
//! recipient device and the sealed bytes only. The recipient's provider learns the
//! sending *provider* (the TLS peer) and keeps nothing of it either.
//!
//! Device lists. A send to a local user must list exactly the user's current
//! Signal devices (those with a signed prekey that did not declare protocols
//! without `signal`: the devices capabilities report as `signal`, and bundles are
//! served for), or it is answered `409` [`MismatchedDevices`](entente_wire::signal::MismatchedDevices). The sending device
//! itself (a user writing to their other devices) may be listed or not. For a remote user
//! the sender's provider cannot check this when the message is sent: the list is
//! current as of the last bundle claim, and the recipient's provider delivers to
//! the listed devices that still exist.
//!
//! A `{user}` in a path is the user's URI, percent-encoded as one segment (as
//! room URIs are elsewhere in the API), or the handle `bob@b.example`; the URI
//! unencoded (`/v1/capabilities/mimi://b.example/u/bob`) is accepted too.
//!
//! With `protocols.signal = false` every route here but capabilities answers `501`.
//!
//! `keys`: the key directory and capabilities; `sealed`: sender certificates and
//! sealed delivery.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use entente_wire::api::ApiError;
use entente_wire::ids::{Domain, UserId};

use crate::error::Failure;
use crate::federation::client::FedError;
use crate::state::AppState;

mod keys;
mod sealed;

use keys::{
    client_bundles, client_capabilities, peer_bundles, peer_capabilities, prekey_status,
    publish_prekeys, set_protocols,
};
use sealed::{peer_deliver, send_sealed, sender_certificate};

/// Path prefix of Entente's federation extension endpoints.
pub const ENTENTE_PREFIX: &str = "/entente/v1";
/// Federation: claim bundles, `POST {FED_BUNDLES}/{user}`.
pub const FED_BUNDLES: &str = "/entente/v1/signal/bundles";
/// Federation: capabilities, `GET {FED_CAPABILITIES}/{user}`.
pub const FED_CAPABILITIES: &str = "/entente/v1/capabilities";
/// Federation: sealed delivery, `POST`. Also the outbound queue's endpoint name for
/// these requests (see `FederationClient::post`).
pub const FED_MESSAGES: &str = "/entente/v1/signal/messages";

pub fn router(state: AppState) -> Router {
    let signal = Router::new()
        .route(
            "/v1/signal/prekeys",
            post(publish_prekeys).get(prekey_status),
        )
        .route("/v1/signal/bundles/{*user}", get(client_bundles))
        .route("/v1/signal/sender-certificate", post(sender_certificate))
        .route("/v1/signal/messages", post(send_sealed))
        .route(&format!("{FED_BUNDLES}/{{*user}}"), post(peer_bundles))
        .route(FED_MESSAGES, post(peer_deliver))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            signal_offered,
        ));
    Router::new()
        .merge(signal)
        .route("/v1/capabilities/{*user}", get(client_capabilities))
        .route("/v1/capabilities", post(set_protocols))
        .route(
            &format!("{FED_CAPABILITIES}/{{*user}}"),
            get(peer_capabilities),
        )
        .with_state(state)
}

/// The MIMI directory entries of our extension endpoints (the directory is a JSON
/// object of endpoint URLs, like ACME's, so peers that do not know them ignore them).
pub fn directory_entries(state: &AppState) -> serde_json::Map<String, serde_json::Value> {
    let base = format!("https://{}", state.domain);
    let mut entries = serde_json::Map::new();
    let mut add = |name: &str, url: String| {
        entries.insert(name.to_owned(), serde_json::Value::String(url));
    };
    add(
        "entente:capabilities",
        format!("{base}{FED_CAPABILITIES}/{{targetUser}}"),
    );
    if state.config.protocols.signal {
        add(
            "entente:signalBundles",
            format!("{base}{FED_BUNDLES}/{{targetUser}}"),
        );
        add("entente:signalMessages", format!("{base}{FED_MESSAGES}"));
    }
    entries
}

/// Refuses MLS room operations on a provider configured without them.
pub fn require_mls_rooms(state: &AppState) -> Result<(), Failure> {
    if state.config.protocols.mls_rooms {
        return Ok(());
    }
    Err(Failure::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        format!(
            "{} offers only the Signal channel (protocols.mls_rooms = false): it hosts no \
             rooms and serves no KeyPackages; reach its users with /v1/signal/messages",
            state.domain
        ),
    ))
}

async fn signal_offered(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.config.protocols.signal {
        return next.run(req).await;
    }
    Failure::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        format!(
            "{} does not offer the Signal channel (protocols.signal = false); use MIMI rooms",
            state.domain
        ),
    )
    .into_response()
}

// ------------------------------------------------------------------ helpers

pub(super) fn user_param(user: &str) -> Result<UserId, Failure> {
    UserId::parse_any(user).map_err(|e| Failure::bad_request(format!("user: {e}")))
}

/// A user of ours named in a peer's request.
pub(super) fn local_user_param(state: &AppState, user: &str) -> Result<UserId, Failure> {
    let user = user_param(user)?;
    if !state.is_local(user.domain()) {
        return Err(Failure::not_found(format!(
            "{user} is not a user of {}",
            state.domain
        )));
    }
    Ok(user)
}

pub(super) fn peer_invalid(domain: &Domain, message: String) -> Failure {
    Failure::new(
        StatusCode::BAD_GATEWAY,
        "peer_invalid",
        format!("{domain} sent an invalid answer: {message}"),
    )
}

/// A peer's answer to a client's request: "no such user" and "not offered" are the
/// answer to the client's question, passed on as such; other failures are ours or
/// the peer's (`FedError`'s mapping).
pub(super) fn passed_on(e: FedError) -> Failure {
    if let FedError::Refused {
        domain,
        status,
        reason,
    } = &e
    {
        let message = serde_json::from_str::<ApiError>(reason)
            .map(|a| a.message)
            .unwrap_or_else(|_| reason.clone());
        match status {
            404 => return Failure::not_found(format!("{domain}: {message}")),
            501 => {
                return Failure::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "not_implemented",
                    format!("{domain}: {message}"),
                );
            }
            _ => {}
        }
    }
    Failure::from(e)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_protocols_table_parses_with_defaults() {
        let base = r#"
            domain = "a.example"
            listen = "127.0.0.1:1"
            data_dir = "d"
            [tls]
            certificate = "c"
            private_key = "k"
        "#;
        let c: crate::Config = toml::from_str(base).unwrap();
        assert!(c.protocols.mls_rooms && c.protocols.signal);
        assert_eq!(c.protocols.sender_certificate_hours, 24);
        let c: crate::Config =
            toml::from_str(&format!("{base}\n[protocols]\nmls_rooms = false\n")).unwrap();
        assert!(!c.protocols.mls_rooms && c.protocols.signal);
        c.validate().unwrap();
        let c: crate::Config = toml::from_str(&format!(
            "{base}\n[protocols]\nmls_rooms = false\nsignal = false\n"
        ))
        .unwrap();
        assert!(c.validate().unwrap_err().contains("both false"));
        assert!(
            toml::from_str::<crate::Config>(&format!("{base}\n[protocols]\nsignl = true\n"))
                .is_err()
        );
    }
}
