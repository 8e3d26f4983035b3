//! TLS for Entente providers.
//!
//! Providers federate over MIMI with *mutually* authenticated HTTPS: each
//! authenticates as its DNS domain (RFC 6125 style) with one certificate that
//! carries both the serverAuth and clientAuth usages. Clients reach their own
//! provider over ordinary server-authenticated HTTPS and WebSocket on the same
//! listener, presenting no certificate.
//!
//! - [`Identity`] is what we present; [`TrustAnchors`] is whom we believe.
//! - [`server_config`] and [`client_config`] build the rustls configurations
//!   (ring provider, TLS 1.3, ALPN `h2` and `http/1.1`).
//! - [`serve`] runs the accept loop for an axum router and hands each request
//!   a [`ConnectionInfo`], whose [`PeerCertificate`] answers whether a peer may
//!   speak for the domain it claims.
//! - [`DevCa`] is a throwaway CA for local federations and tests.
//!
//! ```
//! use entente_tls::{DevCa, TlsError, client_config, server_config};
//!
//! # fn main() -> Result<(), TlsError> {
//! let ca = DevCa::generate("Entente dev CA")?;
//! let anchors = ca.trust_anchors()?;
//! let a = ca.issue("a.example")?.identity()?;
//! let b = ca.issue("b.example")?.identity()?;
//!
//! // a.example's listener accepts clients without a certificate and providers
//! // with one from a CA in `anchors` ...
//! let a_server = server_config(&a, &anchors)?;
//! // ... and b.example connects to it as a federation peer.
//! let b_to_a = client_config(&anchors, Some(&b))?;
//! # let _ = (a_server, b_to_a);
//! # Ok(())
//! # }
//! ```
//!
//! In a handler served by [`serve`], a request from a federation peer that
//! claims `From: mimi@b.example` is checked like this:
//!
//! ```
//! use axum::Extension;
//! use entente_tls::ConnectionInfo;
//!
//! fn peer_may_speak_for(info: &ConnectionInfo, claimed_domain: &str) -> bool {
//!     info.peer_certificate
//!         .as_ref()
//!         .is_some_and(|cert| cert.is_valid_for_domain(claimed_domain))
//! }
//!
//! async fn handler(Extension(info): Extension<ConnectionInfo>) -> &'static str {
//!     if peer_may_speak_for(&info, "b.example") { "welcome" } else { "who are you?" }
//! }
//! # let _ = axum::Router::<()>::new().route("/", axum::routing::get(handler));
//! ```

#![forbid(unsafe_code)]

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

mod config;
mod dev_ca;
mod error;
mod identity;
mod peer;
mod pem_io;
mod serve;

pub use config::{ALPN_PROTOCOLS, client_config, server_config};
pub use dev_ca::{DevCa, IssuedCert};
pub use error::{Origin, PemItem, Result, TlsError};
pub use identity::{Identity, TrustAnchors};
pub use peer::{ConnectionInfo, PeerCertificate};
pub use serve::{ServeOptions, serve, serve_with_options};

/// Installs rustls's ring [`CryptoProvider`] as the process default, for
/// libraries that build their own rustls configurations from the default
/// (reqwest with `rustls-no-provider`, tokio-tungstenite). Call it once at
/// start-up; later calls, or a provider installed by someone else first, are
/// not errors.
///
/// The configurations built by this crate name the ring provider explicitly
/// and do not need this.
pub fn install_crypto_provider() {
    // `Err` only means a provider is already installed, which is what we want.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
