//! Entente wire formats.
//!
//! Everything a peer can send us is decoded here, into types that say what the bytes
//! claimed; validation into trusted types happens in the layers above.
//!
//! - [`ids`]: MIMI identifiers (`mimi://a.example/u/alice`) and the human form
//!   (`alice@a.example`).
//! - [`content`]: MIMI content (draft-ietf-mimi-content), CBOR, with message IDs.
//! - [`mimi`]: draft-ietf-mimi-protocol-06 server-to-server framing (TLS presentation
//!   language).
//! - [`api`]: the provider's own client API (JSON over HTTPS and WebSocket).
//! - [`signal`]: the Signal-compatible channel's key directory, capabilities and
//!   sealed-sender delivery (JSON, client API and federation).
//! - [`moderation`]: moderators' notices to users (client API JSON) and the
//!   moderators' web page's form and cookie parsers.
#![forbid(unsafe_code)]

pub mod api;
pub mod blobs;
pub mod consent;
pub mod content;
pub mod ids;
pub mod mimi;
pub mod moderation;
pub mod signal;
