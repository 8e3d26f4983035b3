//! Building blocks of a Signal-compatible two-party channel, sans-IO: randomness comes
//! in as an argument and nothing here touches the network or a clock.
//!
//! - [`keys`]: X25519 key pairs and libsignal's 33-byte public key encoding.
//! - [`xeddsa`]: XEdDSA signatures with X25519 keys (Signal's XEdDSA specification).
//! - [`x3dh`]: X3DH key agreement with the parameters libsignal uses.
//!
//! ```
//! use entente_core::signal::keys::{IdentityKeyPair, PrivateKey};
//! use entente_core::signal::x3dh::{PreKeyBundle, initiate, respond};
//! use rand::rngs::OsRng;
//!
//! let alice = IdentityKeyPair::generate(&mut OsRng);
//! let bob = IdentityKeyPair::generate(&mut OsRng);
//! let signed_prekey = PrivateKey::generate(&mut OsRng);
//! let bundle = PreKeyBundle {
//!     identity_key: bob.public(),
//!     signed_prekey_id: 1,
//!     signed_prekey: signed_prekey.public_key(),
//!     signed_prekey_signature: bob
//!         .private()
//!         .sign(&signed_prekey.public_key().encode(), &mut OsRng),
//!     one_time_prekey: None,
//! };
//! let (alice_secrets, ephemeral) = initiate(&alice, &bundle, &mut OsRng)?;
//! let bob_secrets = respond(&bob, &signed_prekey, None, &alice.public(), &ephemeral)?;
//! assert_eq!(alice_secrets.root_key(), bob_secrets.root_key());
//! # Ok::<(), entente_core::signal::x3dh::X3dhError>(())
//! ```
//!
//! Not here yet: PQXDH (the Kyber prekey current Signal clients require), the Double
//! Ratchet, and the message formats.

pub mod keys;
pub mod x3dh;
pub mod xeddsa;
