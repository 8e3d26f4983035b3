//! Entente protocol core: sans-IO pieces shared by clients and providers.
//!
//! - [`identity`]: provider-issued client certificates (the report's PKI) and safety
//!   numbers.
//! - [`mls`]: how MIMI rooms use MLS: ciphersuite, credentials, KeyPackage checks,
//!   labelled signatures.
//!
//! Nothing here does I/O or reads a clock: time comes in as arguments.
#![forbid(unsafe_code)]

pub mod identity;
pub mod mls;
