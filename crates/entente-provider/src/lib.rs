//! The Entente provider server.
//!
//! One HTTPS listener serves both faces of a provider:
//! - the client API ([`client_api`]), our own JSON design, for the provider's users;
//! - MIMI server-to-server ([`federation`]), draft-ietf-mimi-protocol-06 over mutual
//!   TLS, as hub for rooms its users create and follower for the others ([`hub`]).
//!
//! Encrypted file attachments are kept in the blob store ([`blobs`]) and fetched
//! across providers through the room's hub (MIMI `proxyDownload`).
//!
//! The Signal-compatible two-party channel ([`signal`]): a key directory of prekey
//! bundles served across providers, capability negotiation, sender certificates and
//! sealed-sender delivery through the same inboxes and outbound queue.
//!
//! Every accepted message enters storage ([`store`]) in one atomic, durable batch
//! together with its deliveries and outbound federation requests; the
//! [`outbound`] worker then sends those with retries, and local clients receive theirs
//! by WebSocket push or fetch, until they ack.
#![forbid(unsafe_code)]

pub mod abuse;
pub mod auth;
pub mod blobs;
pub mod calls;
pub mod client_api;
pub mod config;
pub mod consent;
pub mod error;
pub mod federation;
pub mod hub;
pub mod metrics;
pub mod moderation;
pub mod openapi;
pub mod outbound;
pub mod privacy;
pub mod ratelimit;
pub mod signal;
pub mod spam;
pub mod state;
pub mod store;
pub mod tracker;

pub use config::Config;
pub use state::{Provider, ProviderHandle};
