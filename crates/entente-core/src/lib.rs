//! Entente protocol core: sans-IO pieces shared by clients and providers.
//!
//! - [`files`]: encrypted files for MIMI `ExternalPart`s: streaming AES-GCM in
//!   bounded memory, with a key-committing `aad`.
//! - [`franking`]: message franking (MIMI-06 section 5.4.1) and the hub's checks of
//!   abuse reports (section 5.9).
//! - [`identity`]: provider-issued client certificates (the report's PKI) and safety
//!   numbers.
//! - [`mls`]: how MIMI rooms use MLS: ciphersuite, credentials, KeyPackage checks,
//!   labelled signatures.
//! - [`signal`]: building blocks of a Signal-compatible two-party channel: XEdDSA
//!   signatures and X3DH key agreement with libsignal's parameters.
//! - [`sframe`]: SFrame (RFC 9605) media frame encryption, with keys from MLS epochs.
//! - [`room`]: the room state in the group context (participants, roles, metadata) and
//!   the room policy (draft-ietf-mimi-room-policy-03) that authorizes changes to it.
//!
//! Nothing here does I/O or reads a clock: time comes in as arguments.
#![forbid(unsafe_code)]

pub mod files;
pub mod franking;
pub mod identity;
pub mod mls;
pub mod room;
pub mod sframe;
pub mod signal;
