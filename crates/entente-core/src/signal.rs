//! Building blocks of a Signal-compatible two-party channel, sans-IO: randomness comes
//! in as an argument and nothing here touches the network or a clock.
//!
//! - [`keys`]: X25519 key pairs and libsignal's 33-byte public key encoding.
//! - [`xeddsa`]: XEdDSA signatures with X25519 keys (Signal's XEdDSA specification).
//! - [`x3dh`]: X3DH and PQXDH key agreement with the parameters libsignal uses.
//! - [`pqxdh`]: ML-KEM-1024 prekeys and ciphertexts in libsignal's serialized form.
//! - [`ratchet`]: the Double Ratchet with libsignal's key schedule and limits.
//! - [`proto`]: libsignal's SignalMessage and PreKeySignalMessage formats.
//! - [`session`]: the two-party session built from the above.
//! - [`sender_keys`] and [`sealed_sender`]: libsignal's group and sender-hiding layers.
//!
//! ```
//! use entente_core::signal::keys::{IdentityKeyPair, PrivateKey};
//! use entente_core::signal::pqxdh::KemKeyPair;
//! use entente_core::signal::session::{
//!     PreKeyStore, Session, accept_prekey_message, peek_prekey_message,
//! };
//! use entente_core::signal::x3dh::{KyberPreKey, PreKeyBundle};
//! use rand::rngs::OsRng;
//!
//! struct BobsKeys {
//!     signed: PrivateKey,
//!     kyber: KemKeyPair,
//! }
//! impl PreKeyStore for BobsKeys {
//!     fn signed_prekey(&self, id: u32) -> Option<PrivateKey> {
//!         (id == 1).then(|| self.signed.clone())
//!     }
//!     fn one_time_prekey(&self, _: u32) -> Option<PrivateKey> {
//!         None
//!     }
//!     fn kyber_prekey(&self, id: u32) -> Option<KemKeyPair> {
//!         (id == 2).then(|| self.kyber.clone())
//!     }
//! }
//!
//! let alice = IdentityKeyPair::generate(&mut OsRng);
//! let bob = IdentityKeyPair::generate(&mut OsRng);
//! let keys = BobsKeys {
//!     signed: PrivateKey::generate(&mut OsRng),
//!     kyber: KemKeyPair::generate(&mut OsRng),
//! };
//! let signed_prekey = keys.signed.public_key();
//! let kyber = keys.kyber.public_key();
//! let bundle = PreKeyBundle {
//!     registration_id: 7,
//!     device_id: 1,
//!     identity_key: bob.public(),
//!     signed_prekey_id: 1,
//!     signed_prekey,
//!     signed_prekey_signature: bob.private().sign(&signed_prekey.encode(), &mut OsRng),
//!     one_time_prekey: None,
//!     kyber_prekey: Some(KyberPreKey {
//!         id: 2,
//!         signature: bob.private().sign(&kyber.encode(), &mut OsRng),
//!         public: kyber,
//!     }),
//! };
//!
//! // Alice sets up a PQXDH session (version 4) and sends a PreKey message.
//! let mut to_bob = Session::initiate(&alice, 5, &bundle, &mut OsRng)?;
//! let first = to_bob.encrypt(b"hello", &mut OsRng)?;
//!
//! // Bob checks who it is from, then accepts it.
//! assert_eq!(peek_prekey_message(&first.bytes)?.identity_key, alice.public());
//! let mut accepted = accept_prekey_message(&bob, 7, &keys, &first.bytes, &mut OsRng)?;
//! assert_eq!(accepted.plaintext, b"hello");
//!
//! let reply = accepted.session.encrypt(b"hi", &mut OsRng)?;
//! assert_eq!(to_bob.decrypt(reply.kind, &reply.bytes)?, b"hi");
//! # Ok::<(), entente_core::signal::session::SessionError>(())
//! ```
//!
//! Not here: libsignal's sparse post-quantum ratchet (SPQR), and its session records
//! that keep several sessions per peer.

pub mod keys;
pub mod pqxdh;
pub mod proto;
pub mod ratchet;
pub mod sealed_sender;
pub mod sender_keys;
pub mod session;
pub mod x3dh;
pub mod xeddsa;
