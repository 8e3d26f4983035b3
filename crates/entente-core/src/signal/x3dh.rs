//! X3DH key agreement ("The X3DH Key Agreement Protocol", Marlinspike and Perrin,
//! revision 1, 2016) with the parameters libsignal uses for its sessions:
//!
//! ```text
//! curve  X25519          hash  SHA-256          info  "WhisperText"
//!
//! DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)
//! DH4 = DH(EK_A, OPK_B)   (only with a one-time prekey)
//! SK  = HKDF-SHA-256(salt = 32 zero bytes, ikm = F || DH1 || DH2 || DH3 [|| DH4],
//!                    info = "WhisperText", length = 64),   F = 32 bytes 0xFF
//! root key = SK[0..32], chain key = SK[32..64]
//! ```
//!
//! Identity keys are X25519 keys that sign with XEdDSA; the signed prekey's signature
//! covers its 33-byte encoding `0x05 || u`. This is the classic (pre-PQXDH) agreement:
//! current Signal clients also require a Kyber prekey, which is not here yet.

use std::fmt;

use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use super::keys::{IdentityKeyPair, PrivateKey, PublicKey, SmallOrderKey};
use super::xeddsa;

/// The HKDF `info` libsignal uses for X3DH without a Kyber prekey.
pub const INFO: &[u8] = b"WhisperText";
/// `F`: 32 bytes 0xFF, so that the input never starts like an X25519 output.
const DISCONTINUITY: [u8; 32] = [0xFF; 32];

/// What a responder publishes, as the initiator received it: untrusted until
/// [`initiate`] has checked the signed prekey's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeyBundle {
    /// `IK_B`.
    pub identity_key: PublicKey,
    /// Which signed prekey this is, echoed back to the responder.
    pub signed_prekey_id: u32,
    /// `SPK_B`.
    pub signed_prekey: PublicKey,
    /// XEdDSA signature by `IK_B` over `signed_prekey.encode()`.
    pub signed_prekey_signature: [u8; xeddsa::SIGNATURE_LEN],
    /// `OPK_B` and its id, when the server had one left.
    pub one_time_prekey: Option<(u32, PublicKey)>,
}

/// The secrets X3DH agrees on: the root key and the first chain key of a session.
#[derive(ZeroizeOnDrop)]
pub struct SharedSecrets {
    root_key: [u8; 32],
    chain_key: [u8; 32],
}

/// Why X3DH failed: the peer's bundle or keys are invalid, or (never expected) a bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X3dhError {
    /// The signed prekey's signature does not verify under the identity key.
    #[error("signed prekey {signed_prekey_id} is not signed by the bundle's identity key")]
    BadSignedPreKeySignature {
        /// The id of the refused prekey.
        signed_prekey_id: u32,
    },
    /// One of the peer's keys has small order, so a DH output was all zeros.
    #[error("the peer's {key} has small order (X25519 with it gives all zeros)")]
    SmallOrderKey {
        /// Which of the peer's keys.
        key: &'static str,
    },
    /// A bug in Entente, not anyone's input.
    #[error("bug in entente: {0}")]
    Bug(&'static str),
}

/// The initiator's side (Alice): checks the bundle's signed prekey, makes an ephemeral
/// key and derives the secrets. The ephemeral public key goes to the responder.
pub fn initiate<R: RngCore + CryptoRng>(
    identity: &IdentityKeyPair,
    bundle: &PreKeyBundle,
    rng: &mut R,
) -> Result<(SharedSecrets, PublicKey), X3dhError> {
    if !bundle.identity_key.verify(
        &bundle.signed_prekey.encode(),
        &bundle.signed_prekey_signature,
    ) {
        return Err(X3dhError::BadSignedPreKeySignature {
            signed_prekey_id: bundle.signed_prekey_id,
        });
    }
    let ephemeral = PrivateKey::generate(rng);

    let mut ikm = Zeroizing::new(Vec::with_capacity(32 * 5));
    ikm.extend_from_slice(&DISCONTINUITY);
    let spk = "signed prekey";
    ikm.extend_from_slice(&*dh(identity.private(), &bundle.signed_prekey, spk)?);
    ikm.extend_from_slice(&*dh(&ephemeral, &bundle.identity_key, "identity key")?);
    ikm.extend_from_slice(&*dh(&ephemeral, &bundle.signed_prekey, spk)?);
    if let Some((_, one_time_prekey)) = &bundle.one_time_prekey {
        ikm.extend_from_slice(&*dh(&ephemeral, one_time_prekey, "one-time prekey")?);
    }
    Ok((derive(&ikm)?, ephemeral.public_key()))
}

/// The responder's side (Bob): the private halves of the prekeys the initiator used,
/// and the initiator's identity and ephemeral keys from its first message.
pub fn respond(
    identity: &IdentityKeyPair,
    signed_prekey: &PrivateKey,
    one_time_prekey: Option<&PrivateKey>,
    their_identity: &PublicKey,
    their_ephemeral: &PublicKey,
) -> Result<SharedSecrets, X3dhError> {
    let ek = "ephemeral key";
    let mut ikm = Zeroizing::new(Vec::with_capacity(32 * 5));
    ikm.extend_from_slice(&DISCONTINUITY);
    ikm.extend_from_slice(&*dh(signed_prekey, their_identity, "identity key")?);
    ikm.extend_from_slice(&*dh(identity.private(), their_ephemeral, ek)?);
    ikm.extend_from_slice(&*dh(signed_prekey, their_ephemeral, ek)?);
    if let Some(one_time_prekey) = one_time_prekey {
        ikm.extend_from_slice(&*dh(one_time_prekey, their_ephemeral, ek)?);
    }
    derive(&ikm)
}

impl SharedSecrets {
    /// The first root key of the Double Ratchet.
    pub fn root_key(&self) -> &[u8; 32] {
        &self.root_key
    }

    /// The first chain key.
    pub fn chain_key(&self) -> &[u8; 32] {
        &self.chain_key
    }
}

impl fmt::Debug for SharedSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            root_key: _,
            chain_key: _,
        } = self;
        f.write_str("SharedSecrets(..)")
    }
}

fn dh(
    ours: &PrivateKey,
    theirs: &PublicKey,
    which: &'static str,
) -> Result<Zeroizing<[u8; 32]>, X3dhError> {
    ours.agree(theirs)
        .map_err(|SmallOrderKey| X3dhError::SmallOrderKey { key: which })
}

/// HKDF-SHA-256 with a salt of 32 zero bytes (the same as no salt: HMAC pads its key
/// with zeros) and info "WhisperText", 64 bytes out.
fn derive(ikm: &[u8]) -> Result<SharedSecrets, X3dhError> {
    let mut okm = Zeroizing::new([0u8; 64]);
    Hkdf::<Sha256>::new(Some(&[0u8; 32]), ikm)
        .expand(INFO, okm.as_mut())
        .map_err(|_| X3dhError::Bug("HKDF-SHA-256 refused to expand 64 bytes"))?;
    let mut secrets = SharedSecrets {
        root_key: [0u8; 32],
        chain_key: [0u8; 32],
    };
    secrets.root_key.copy_from_slice(&okm[..32]);
    secrets.chain_key.copy_from_slice(&okm[32..]);
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    struct Responder {
        identity: IdentityKeyPair,
        signed_prekey: PrivateKey,
        one_time_prekey: PrivateKey,
    }

    impl Responder {
        fn new() -> Self {
            Self {
                identity: IdentityKeyPair::generate(&mut OsRng),
                signed_prekey: PrivateKey::generate(&mut OsRng),
                one_time_prekey: PrivateKey::generate(&mut OsRng),
            }
        }

        fn bundle(&self, with_one_time_prekey: bool) -> PreKeyBundle {
            let signed_prekey = self.signed_prekey.public_key();
            PreKeyBundle {
                identity_key: self.identity.public(),
                signed_prekey_id: 7,
                signed_prekey,
                signed_prekey_signature: self
                    .identity
                    .private()
                    .sign(&signed_prekey.encode(), &mut OsRng),
                one_time_prekey: with_one_time_prekey
                    .then(|| (42, self.one_time_prekey.public_key())),
            }
        }
    }

    #[test]
    fn both_sides_agree_with_and_without_a_one_time_prekey() {
        for with_one_time_prekey in [false, true] {
            let alice = IdentityKeyPair::generate(&mut OsRng);
            let bob = Responder::new();
            let bundle = bob.bundle(with_one_time_prekey);
            let (ours, ephemeral) = initiate(&alice, &bundle, &mut OsRng).unwrap();
            let theirs = respond(
                &bob.identity,
                &bob.signed_prekey,
                with_one_time_prekey.then_some(&bob.one_time_prekey),
                &alice.public(),
                &ephemeral,
            )
            .unwrap();
            assert_eq!(ours.root_key(), theirs.root_key());
            assert_eq!(ours.chain_key(), theirs.chain_key());
            assert_ne!(ours.root_key(), ours.chain_key());

            // Leaving out (or adding) the one-time prekey changes everything.
            let mismatched = respond(
                &bob.identity,
                &bob.signed_prekey,
                (!with_one_time_prekey).then_some(&bob.one_time_prekey),
                &alice.public(),
                &ephemeral,
            )
            .unwrap();
            assert_ne!(ours.root_key(), mismatched.root_key());
        }
    }

    #[test]
    fn derivation_matches_the_formula() {
        // Recompute SK by hand from the DH outputs, as libsignal's derivation states it.
        let alice = IdentityKeyPair::generate(&mut OsRng);
        let bob = Responder::new();
        let bundle = bob.bundle(true);
        let (secrets, ephemeral) = initiate(&alice, &bundle, &mut OsRng).unwrap();
        let spk = bob.signed_prekey.public_key();
        let mut ikm = vec![0xFF; 32];
        ikm.extend_from_slice(&*bob.signed_prekey.agree(&alice.public()).unwrap());
        ikm.extend_from_slice(&*bob.identity.private().agree(&ephemeral).unwrap());
        ikm.extend_from_slice(&*bob.signed_prekey.agree(&ephemeral).unwrap());
        ikm.extend_from_slice(&*bob.one_time_prekey.agree(&ephemeral).unwrap());
        assert_eq!(spk, bundle.signed_prekey);
        let mut okm = [0u8; 64];
        Hkdf::<Sha256>::new(None, &ikm)
            .expand(b"WhisperText", &mut okm)
            .unwrap();
        assert_eq!(secrets.root_key(), &okm[..32]);
        assert_eq!(secrets.chain_key(), &okm[32..]);
    }

    #[test]
    fn a_bad_signed_prekey_signature_is_refused() {
        let alice = IdentityKeyPair::generate(&mut OsRng);
        let bob = Responder::new();
        let mallory = IdentityKeyPair::generate(&mut OsRng);

        let mut tampered = bob.bundle(true);
        tampered.signed_prekey_signature[5] ^= 0x10;
        let refused = X3dhError::BadSignedPreKeySignature {
            signed_prekey_id: 7,
        };
        assert_eq!(
            initiate(&alice, &tampered, &mut OsRng).err(),
            Some(refused.clone())
        );

        // A prekey swapped in by someone else, under the real identity key.
        let mut swapped = bob.bundle(true);
        let forged = PrivateKey::generate(&mut OsRng).public_key();
        swapped.signed_prekey = forged;
        swapped.signed_prekey_signature = mallory.private().sign(&forged.encode(), &mut OsRng);
        assert_eq!(
            initiate(&alice, &swapped, &mut OsRng).err(),
            Some(refused.clone())
        );

        // Signed over the bare u instead of the 0x05-prefixed encoding.
        let mut bare = bob.bundle(false);
        bare.signed_prekey_signature = bob
            .identity
            .private()
            .sign(bare.signed_prekey.u(), &mut OsRng);
        assert_eq!(initiate(&alice, &bare, &mut OsRng).err(), Some(refused));
    }

    #[test]
    fn small_order_keys_are_refused() {
        let alice = IdentityKeyPair::generate(&mut OsRng);
        let bob = Responder::new();
        let mut bundle = bob.bundle(true);
        bundle.one_time_prekey = Some((42, PublicKey::from_u([0; 32])));
        assert_eq!(
            initiate(&alice, &bundle, &mut OsRng).err(),
            Some(X3dhError::SmallOrderKey {
                key: "one-time prekey"
            })
        );
        let refused = respond(
            &bob.identity,
            &bob.signed_prekey,
            None,
            &alice.public(),
            &PublicKey::from_u([0; 32]),
        );
        assert!(matches!(
            refused,
            Err(X3dhError::SmallOrderKey {
                key: "ephemeral key"
            })
        ));
    }
}
