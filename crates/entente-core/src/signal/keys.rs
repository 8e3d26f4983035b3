//! X25519 keys as libsignal uses them: private keys are clamped when made, public keys
//! travel as 33 bytes, the type byte `0x05` ("DJB", Curve25519) then the 32-byte
//! little-endian Montgomery `u`.

use std::fmt;

use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::clamp_integer;
use rand::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::xeddsa;

/// libsignal's type byte for Curve25519 public keys.
pub const KEY_TYPE_DJB: u8 = 0x05;
/// Length of an encoded public key: type byte and `u`.
pub const ENCODED_PUBLIC_KEY_LEN: usize = 33;

/// An X25519 public key (the Montgomery `u`), which also verifies XEdDSA signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

/// Why a received public key could not be decoded. The peer sent something invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyDecodeError {
    /// Not 33 bytes. libsignal tolerates trailing bytes; we do not.
    #[error("a public key is {ENCODED_PUBLIC_KEY_LEN} bytes (0x05 and 32 bytes of u), got {0}")]
    Length(usize),
    /// A type byte other than `0x05`.
    #[error("unknown public key type 0x{0:02x}; only 0x05 (Curve25519) is defined")]
    UnknownType(u8),
}

impl PublicKey {
    /// The key with Montgomery coordinate `u` (32 bytes, little-endian).
    pub const fn from_u(u: [u8; 32]) -> Self {
        Self(u)
    }

    /// The Montgomery coordinate `u`.
    pub const fn u(&self) -> &[u8; 32] {
        &self.0
    }

    /// libsignal's encoding: `0x05 || u`. Signed prekeys are signed over this.
    pub fn encode(&self) -> [u8; ENCODED_PUBLIC_KEY_LEN] {
        let mut encoded = [0u8; ENCODED_PUBLIC_KEY_LEN];
        encoded[0] = KEY_TYPE_DJB;
        encoded[1..].copy_from_slice(&self.0);
        encoded
    }

    /// Decodes `0x05 || u`, rejecting any other type byte, length or trailing bytes.
    ///
    /// `u` is not range-checked: X25519 (RFC 7748) takes any 32 bytes, and
    /// [`verify`](Self::verify) rejects `u >= p` itself.
    pub fn decode(bytes: &[u8]) -> Result<Self, KeyDecodeError> {
        let (&kind, u) = bytes.split_first().ok_or(KeyDecodeError::Length(0))?;
        if bytes.len() != ENCODED_PUBLIC_KEY_LEN {
            return Err(KeyDecodeError::Length(bytes.len()));
        }
        if kind != KEY_TYPE_DJB {
            return Err(KeyDecodeError::UnknownType(kind));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(u);
        Ok(Self(key))
    }

    /// Whether `signature` is an XEdDSA signature of `message` by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8; xeddsa::SIGNATURE_LEN]) -> bool {
        xeddsa::xeddsa_verify(&self.0, message, signature)
    }
}

/// An X25519 private key, clamped (RFC 7748) as libsignal stores them.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey([u8; 32]);

/// X25519 with the peer's key gave all zeros: the peer's key has small order and
/// contributes nothing to the secret. The peer sent an invalid key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the peer's X25519 public key has small order (the shared secret is all zeros)")]
pub struct SmallOrderKey;

impl PrivateKey {
    /// A fresh key from `rng`.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        Self::from_bytes(*bytes)
    }

    /// The key `bytes`, clamped. Clamping does not change the X25519 public key.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(clamp_integer(bytes))
    }

    /// The clamped key, for storage.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0)
    }

    /// `X25519(k, 9)`.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(MontgomeryPoint::mul_base_clamped(self.0).to_bytes())
    }

    /// `X25519(k, their)`, refusing an all-zero result.
    pub fn agree(&self, their: &PublicKey) -> Result<Zeroizing<[u8; 32]>, SmallOrderKey> {
        let shared = Zeroizing::new(MontgomeryPoint(their.0).mul_clamped(self.0).to_bytes());
        if bool::from(shared.ct_eq(&[0u8; 32])) {
            return Err(SmallOrderKey);
        }
        Ok(shared)
    }

    /// An XEdDSA signature of `message`, with fresh randomness from `rng`.
    pub fn sign<R: RngCore + CryptoRng>(
        &self,
        message: &[u8],
        rng: &mut R,
    ) -> [u8; xeddsa::SIGNATURE_LEN] {
        xeddsa::sign(&self.0, message, rng)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self(_) = self;
        f.write_str("PrivateKey(..)")
    }
}

/// A long-term identity: its private key signs prekeys and takes part in X3DH.
#[derive(Clone)]
pub struct IdentityKeyPair {
    private: PrivateKey,
    public: PublicKey,
}

impl IdentityKeyPair {
    /// A fresh identity from `rng`.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self::from_private(PrivateKey::generate(rng))
    }

    /// The identity of a stored private key.
    pub fn from_private(private: PrivateKey) -> Self {
        let public = private.public_key();
        Self { private, public }
    }

    /// The private key.
    pub fn private(&self) -> &PrivateKey {
        &self.private
    }

    /// The public identity key.
    pub fn public(&self) -> PublicKey {
        self.public
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { private, public } = self;
        f.debug_struct("IdentityKeyPair")
            .field("private", private)
            .field("public", public)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    #[test]
    fn encoding_round_trips() {
        let key = PrivateKey::generate(&mut OsRng).public_key();
        let encoded = key.encode();
        assert_eq!(encoded[0], 0x05);
        assert_eq!(PublicKey::decode(&encoded), Ok(key));
    }

    #[test]
    fn bad_encodings_are_refused() {
        let encoded = PrivateKey::generate(&mut OsRng).public_key().encode();
        assert_eq!(PublicKey::decode(&[]), Err(KeyDecodeError::Length(0)));
        assert_eq!(
            PublicKey::decode(&encoded[..32]),
            Err(KeyDecodeError::Length(32))
        );
        assert_eq!(
            PublicKey::decode(&encoded[1..]),
            Err(KeyDecodeError::Length(32))
        );
        let mut trailing = encoded.to_vec();
        trailing.push(0);
        assert_eq!(
            PublicKey::decode(&trailing),
            Err(KeyDecodeError::Length(34))
        );
        let mut wrong_type = encoded;
        wrong_type[0] = 0x06;
        assert_eq!(
            PublicKey::decode(&wrong_type),
            Err(KeyDecodeError::UnknownType(0x06))
        );
    }

    #[test]
    fn agreement_is_symmetric_and_refuses_small_order_keys() {
        let alice = PrivateKey::generate(&mut OsRng);
        let bob = PrivateKey::generate(&mut OsRng);
        let ab = alice.agree(&bob.public_key()).unwrap();
        let ba = bob.agree(&alice.public_key()).unwrap();
        assert_eq!(*ab, *ba);
        assert_eq!(alice.agree(&PublicKey::from_u([0; 32])), Err(SmallOrderKey));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(alice.agree(&PublicKey::from_u(one)), Err(SmallOrderKey));
    }

    #[test]
    fn debug_hides_the_private_key() {
        let identity = IdentityKeyPair::generate(&mut OsRng);
        let bytes = identity.private().to_bytes();
        let shown = format!("{identity:?}");
        assert!(shown.contains("PrivateKey(..)"));
        assert!(!shown.contains(&format!("{:?}", *bytes)));
    }
}
