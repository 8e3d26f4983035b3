//! The key encapsulation half of PQXDH ("The PQXDH Key Agreement Protocol", Kret and
//! Schmidt, revision 3, 2024): ML-KEM-1024 (FIPS 203) keys and ciphertexts in
//! libsignal's serialized form.
//!
//! ```text
//! serialized public key  = key type (1 byte) || encapsulation key (1568 bytes)
//! serialized ciphertext  = key type (1 byte) || ciphertext (1568 bytes)
//!
//! key type 0x08  Kyber1024     (CRYSTALS-Kyber round 3; libsignal's default)
//! key type 0x0A  ML-KEM-1024   (FIPS 203; libsignal's `mlkem1024` feature)
//! ```
//!
//! **Only ML-KEM-1024 (0x0A) is implemented.** Kyber1024 keys share ML-KEM's byte
//! layout but derive the shared secret differently (`KDF(K || H(c))` with SHAKE-256),
//! so labelling our ML-KEM keys 0x08 would make a libsignal peer agree on a different
//! secret and fail with a bad MAC. With 0x0A, a libsignal build without `mlkem1024`
//! refuses the key outright ("bad KEM key type"), which is the honest failure. A key
//! of type 0x08 decodes to [`KemDecodeError::Kyber1024Unsupported`].
//!
//! The initiator signs nothing here; the bundle's owner signs
//! [`KemPublicKey::encode`] (type byte included) with its identity key, as libsignal
//! does, and [`super::x3dh::initiate`] checks that signature.
//!
//! ML-KEM's own randomness (the 64-byte key seed `d || z`, the 32-byte message `m`)
//! is drawn from the caller's `rand` 0.8 generator and handed to ml-kem's
//! deterministic functions, so the caller's generator stays the only source.

use std::fmt;

use ml_kem::array::Array;
use ml_kem::kem::{Decapsulate, KeyExport};
use ml_kem::ml_kem_1024;
use rand::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

/// libsignal's key type byte for CRYSTALS-Kyber-1024 (round 3). Not supported.
pub const KEY_TYPE_KYBER1024: u8 = 0x08;
/// libsignal's key type byte for ML-KEM-1024 (FIPS 203).
pub const KEY_TYPE_ML_KEM_1024: u8 = 0x0A;
/// Length of an ML-KEM-1024 encapsulation key.
pub const PUBLIC_KEY_LEN: usize = 1568;
/// Length of an ML-KEM-1024 ciphertext.
pub const CIPHERTEXT_LEN: usize = 1568;
/// Length of the shared secret.
pub const SHARED_SECRET_LEN: usize = 32;
/// Length of [`KemKeyPair::to_bytes`]: the key type then the 64-byte seed `d || z`.
pub const KEY_PAIR_BYTES_LEN: usize = 1 + 64;

/// Why KEM bytes were refused. Whoever sent them sent something invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KemDecodeError {
    /// No bytes at all, so no key type.
    #[error("KEM bytes are empty: no key type byte")]
    Empty,
    /// A CRYSTALS-Kyber-1024 (round 3) key or ciphertext.
    #[error(
        "key type 0x08 (CRYSTALS-Kyber-1024, round 3) is not supported; only 0x0a (ML-KEM-1024)"
    )]
    Kyber1024Unsupported,
    /// Any other type byte.
    #[error("unknown KEM key type 0x{0:02x}; only 0x0a (ML-KEM-1024) is supported")]
    UnknownType(u8),
    /// The right type, the wrong length.
    #[error("a serialized ML-KEM-1024 {what} is {expected} bytes, got {got}")]
    Length {
        /// "public key", "ciphertext" or "key pair".
        what: &'static str,
        /// The length with the type byte.
        expected: usize,
        /// What arrived.
        got: usize,
    },
    /// FIPS 203's modulus check failed: a coefficient of the key is not below q.
    #[error("the ML-KEM-1024 encapsulation key fails the FIPS 203 modulus check")]
    InvalidPublicKey,
}

/// An ML-KEM-1024 encapsulation key, as a bundle carries it.
#[derive(Clone)]
pub struct KemPublicKey {
    /// `0x0A || ek`, kept because the prekey signature covers exactly these bytes.
    encoded: Box<[u8]>,
    key: Box<ml_kem_1024::EncapsulationKey>,
}

/// An ML-KEM-1024 ciphertext, as a PreKeySignalMessage carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct KemCiphertext {
    /// `0x0A || c`.
    encoded: Box<[u8]>,
}

/// An ML-KEM-1024 key pair: a Kyber prekey on its owner's side. Made from a 64-byte
/// seed (FIPS 203 `d || z`), which is also its storage form; zeroized on drop.
#[derive(Clone)]
pub struct KemKeyPair {
    seed: Zeroizing<[u8; 64]>,
    decapsulation: Box<ml_kem_1024::DecapsulationKey>,
    public: KemPublicKey,
}

impl KemPublicKey {
    /// libsignal's serialized form: `0x0A || ek`, 1569 bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.encoded.to_vec()
    }

    /// The serialized form without copying it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }

    /// Decodes `0x0A || ek`, refusing other types, lengths and keys that fail the
    /// FIPS 203 modulus check.
    pub fn decode(bytes: &[u8]) -> Result<Self, KemDecodeError> {
        let key_bytes = strip_type(bytes, "public key", PUBLIC_KEY_LEN)?;
        let array = Array::try_from(key_bytes).map_err(|_| KemDecodeError::Length {
            what: "public key",
            expected: 1 + PUBLIC_KEY_LEN,
            got: bytes.len(),
        })?;
        let key = ml_kem_1024::EncapsulationKey::new(&array)
            .map_err(|_| KemDecodeError::InvalidPublicKey)?;
        Ok(Self {
            encoded: bytes.into(),
            key: Box::new(key),
        })
    }

    /// ML-KEM.Encaps with a message `m` of 32 bytes from `rng`: the shared secret and
    /// the ciphertext for the key's owner.
    pub fn encapsulate<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
    ) -> (Zeroizing<[u8; SHARED_SECRET_LEN]>, KemCiphertext) {
        let mut m = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(m.as_mut());
        let mut m_array = Array::from(*m);
        let (ciphertext, mut shared) = self.key.encapsulate_deterministic(&m_array);
        m_array.zeroize();
        let mut secret = Zeroizing::new([0u8; SHARED_SECRET_LEN]);
        secret.copy_from_slice(&shared);
        shared.zeroize();
        let mut encoded = Vec::with_capacity(1 + CIPHERTEXT_LEN);
        encoded.push(KEY_TYPE_ML_KEM_1024);
        encoded.extend_from_slice(&ciphertext);
        (
            secret,
            KemCiphertext {
                encoded: encoded.into(),
            },
        )
    }
}

impl PartialEq for KemPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.encoded == other.encoded
    }
}

impl Eq for KemPublicKey {}

impl fmt::Debug for KemPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { encoded, key: _ } = self;
        let prefix = encoded.get(1..9).unwrap_or_default();
        write!(f, "KemPublicKey(ML-KEM-1024, {}..)", hex::encode(prefix))
    }
}

impl KemCiphertext {
    /// libsignal's serialized form: `0x0A || c`, 1569 bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.encoded.to_vec()
    }

    /// The serialized form without copying it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }

    /// Decodes `0x0A || c`, refusing other types and lengths. Any 1568 bytes are a
    /// ciphertext: ML-KEM's implicit rejection turns a forged one into a random secret.
    pub fn decode(bytes: &[u8]) -> Result<Self, KemDecodeError> {
        strip_type(bytes, "ciphertext", CIPHERTEXT_LEN)?;
        Ok(Self {
            encoded: bytes.into(),
        })
    }
}

impl fmt::Debug for KemCiphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { encoded } = self;
        let prefix = encoded.get(1..9).unwrap_or_default();
        write!(f, "KemCiphertext(ML-KEM-1024, {}..)", hex::encode(prefix))
    }
}

impl KemKeyPair {
    /// A fresh key pair from 64 bytes of `rng`.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 64]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(seed)
    }

    /// The public half, to publish (signed) as a Kyber prekey.
    pub fn public_key(&self) -> KemPublicKey {
        self.public.clone()
    }

    /// The storage form: `0x0A || d || z` (65 bytes). Ours, not libsignal's (which
    /// stores the 3168-byte expanded key); FIPS 203 recommends the seed.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_PAIR_BYTES_LEN));
        bytes.push(KEY_TYPE_ML_KEM_1024);
        bytes.extend_from_slice(self.seed.as_ref());
        bytes
    }

    /// Reads [`to_bytes`](Self::to_bytes) back.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KemDecodeError> {
        let seed_bytes = strip_type(bytes, "key pair", 64)?;
        let mut seed = Zeroizing::new([0u8; 64]);
        seed.copy_from_slice(seed_bytes);
        Ok(Self::from_seed(seed))
    }

    /// ML-KEM.Decaps of a ciphertext made for this key. Never fails on a well-formed
    /// ciphertext: a forged one gives an unrelated secret (implicit rejection).
    pub fn decapsulate(&self, ciphertext: &KemCiphertext) -> Zeroizing<[u8; SHARED_SECRET_LEN]> {
        let mut secret = Zeroizing::new([0u8; SHARED_SECRET_LEN]);
        // `KemCiphertext` holds exactly 1 + 1568 bytes, so the slice always converts.
        if let Some(body) = ciphertext.encoded.get(1..)
            && let Ok(mut shared) = self.decapsulation.decapsulate_slice(body)
        {
            secret.copy_from_slice(&shared);
            shared.zeroize();
        }
        secret
    }

    fn from_seed(seed: Zeroizing<[u8; 64]>) -> Self {
        let mut seed_array = Array::from(*seed);
        let decapsulation = ml_kem_1024::DecapsulationKey::from_seed(seed_array);
        seed_array.zeroize();
        let public_bytes = decapsulation.encapsulation_key().to_bytes();
        let mut encoded = Vec::with_capacity(1 + PUBLIC_KEY_LEN);
        encoded.push(KEY_TYPE_ML_KEM_1024);
        encoded.extend_from_slice(&public_bytes);
        let public = KemPublicKey {
            encoded: encoded.into(),
            key: Box::new(decapsulation.encapsulation_key().clone()),
        };
        Self {
            seed,
            decapsulation: Box::new(decapsulation),
            public,
        }
    }
}

impl fmt::Debug for KemKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            seed: _,
            decapsulation: _,
            public,
        } = self;
        f.debug_struct("KemKeyPair")
            .field("public", public)
            .finish_non_exhaustive()
    }
}

/// Checks the type byte and the length, and returns what follows the type byte.
fn strip_type<'a>(
    bytes: &'a [u8],
    what: &'static str,
    body_len: usize,
) -> Result<&'a [u8], KemDecodeError> {
    let (&key_type, body) = bytes.split_first().ok_or(KemDecodeError::Empty)?;
    match key_type {
        KEY_TYPE_ML_KEM_1024 => {}
        KEY_TYPE_KYBER1024 => return Err(KemDecodeError::Kyber1024Unsupported),
        other => return Err(KemDecodeError::UnknownType(other)),
    }
    if body.len() != body_len {
        return Err(KemDecodeError::Length {
            what,
            expected: 1 + body_len,
            got: bytes.len(),
        });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::{OsRng, StdRng};

    #[test]
    fn encapsulation_round_trips_and_is_bound_to_the_key() {
        let pair = KemKeyPair::generate(&mut OsRng);
        let public = pair.public_key();
        assert_eq!(public.as_bytes().len(), 1 + PUBLIC_KEY_LEN);
        assert_eq!(public.as_bytes()[0], KEY_TYPE_ML_KEM_1024);
        let (sent, ciphertext) = public.encapsulate(&mut OsRng);
        assert_eq!(ciphertext.as_bytes().len(), 1 + CIPHERTEXT_LEN);
        assert_eq!(*pair.decapsulate(&ciphertext), *sent);

        let other = KemKeyPair::generate(&mut OsRng);
        assert_ne!(*other.decapsulate(&ciphertext), *sent);

        // A changed ciphertext gives an unrelated secret (implicit rejection).
        let mut tampered = ciphertext.encode();
        tampered[100] ^= 1;
        let tampered = KemCiphertext::decode(&tampered).unwrap();
        assert_ne!(*pair.decapsulate(&tampered), *sent);
    }

    #[test]
    fn keys_are_deterministic_in_the_rng() {
        let a = KemKeyPair::generate(&mut StdRng::seed_from_u64(7));
        let b = KemKeyPair::generate(&mut StdRng::seed_from_u64(7));
        assert_eq!(a.public_key(), b.public_key());
        let (sa, ca) = a.public_key().encapsulate(&mut StdRng::seed_from_u64(9));
        let (sb, cb) = b.public_key().encapsulate(&mut StdRng::seed_from_u64(9));
        assert_eq!(*sa, *sb);
        assert_eq!(ca, cb);
    }

    #[test]
    fn encodings_round_trip() {
        let pair = KemKeyPair::generate(&mut OsRng);
        let public = KemPublicKey::decode(&pair.public_key().encode()).unwrap();
        assert_eq!(public, pair.public_key());
        let stored = pair.to_bytes();
        assert_eq!(stored.len(), KEY_PAIR_BYTES_LEN);
        let restored = KemKeyPair::from_bytes(&stored).unwrap();
        assert_eq!(restored.public_key(), pair.public_key());
        let (secret, ciphertext) = public.encapsulate(&mut OsRng);
        let ciphertext = KemCiphertext::decode(&ciphertext.encode()).unwrap();
        assert_eq!(*restored.decapsulate(&ciphertext), *secret);
    }

    #[test]
    fn bad_encodings_are_refused() {
        let public = KemKeyPair::generate(&mut OsRng).public_key().encode();
        assert_eq!(KemPublicKey::decode(&[]), Err(KemDecodeError::Empty));
        let mut kyber = public.clone();
        kyber[0] = KEY_TYPE_KYBER1024;
        assert_eq!(
            KemPublicKey::decode(&kyber),
            Err(KemDecodeError::Kyber1024Unsupported)
        );
        let mut curve = public.clone();
        curve[0] = 0x05;
        assert_eq!(
            KemPublicKey::decode(&curve),
            Err(KemDecodeError::UnknownType(0x05))
        );
        assert_eq!(
            KemPublicKey::decode(&public[..100]),
            Err(KemDecodeError::Length {
                what: "public key",
                expected: 1569,
                got: 100
            })
        );
        let mut long = public.clone();
        long.push(0);
        assert!(matches!(
            KemPublicKey::decode(&long),
            Err(KemDecodeError::Length { got: 1570, .. })
        ));
        // Coefficients are 12-bit values that must be below q = 3329: all-ones fails.
        let mut out_of_range = public;
        out_of_range[1..].fill(0xFF);
        assert_eq!(
            KemPublicKey::decode(&out_of_range),
            Err(KemDecodeError::InvalidPublicKey)
        );
        assert!(matches!(
            KemCiphertext::decode(&[KEY_TYPE_ML_KEM_1024; 10]),
            Err(KemDecodeError::Length {
                what: "ciphertext",
                ..
            })
        ));
        assert!(matches!(
            KemKeyPair::from_bytes(&[KEY_TYPE_ML_KEM_1024; 64]),
            Err(KemDecodeError::Length {
                what: "key pair",
                ..
            })
        ));
    }

    #[test]
    fn debug_hides_the_seed() {
        let pair = KemKeyPair::generate(&mut OsRng);
        let shown = format!("{pair:?}");
        assert!(shown.contains("KemPublicKey"));
        let seed_hex = hex::encode(&pair.to_bytes()[1..9]);
        assert!(!shown.contains(&seed_hex));
    }
}
