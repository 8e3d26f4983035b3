//! MIMI server-to-server (draft-ietf-mimi-protocol-06): HTTPS with mutual TLS, each
//! provider authenticated as its domain; the source domain is also named in the
//! `From: mimi@<domain>` header and must match the peer's certificate.
//!
//! - [`server`]: the endpoints we serve (directory, keyMaterial, update,
//!   submitMessage, notify, and our issuer key).
//! - [`client`]: calls to other providers.

pub mod client;
pub mod server;

/// Path prefix of our MIMI endpoints.
pub const MIMI_PREFIX: &str = "/mimi/v1";
/// Where a provider publishes its client-certificate issuer key.
pub const ISSUER_PATH: &str = "/.well-known/entente-issuer";
/// The MIMI directory.
pub const DIRECTORY_PATH: &str = "/.well-known/mimi-protocol-directory";
/// Media type of TLS-presentation-language bodies.
pub const MIMI_MEDIA_TYPE: &str = "application/mimi-protocol";
