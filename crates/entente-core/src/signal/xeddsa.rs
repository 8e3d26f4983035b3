//! XEdDSA: EdDSA-compatible signatures made and checked with X25519 keys, as in
//! "The XEdDSA and VXEdDSA Signature Schemes" (Trevor Perrin, revision 1, 2016),
//! section 2.3, instantiated on Curve25519 with SHA-512:
//!
//! ```text
//! calculate_key_pair(k):
//!     E = kB
//!     A.y = E.y
//!     A.s = 0
//!     if E.s == 1: a = -k (mod q) else: a = k (mod q)
//!     return A, a
//!
//! xeddsa_sign(k, M, Z):
//!     A, a = calculate_key_pair(k)
//!     r = hash1(a || M || Z) (mod q)
//!     R = rB
//!     h = hash(R || A || M) (mod q)
//!     s = r + ha (mod q)
//!     return R || s
//!
//! xeddsa_verify(u, M, (R || s)):
//!     if u >= p or R.y >= 2^|p| or s >= 2^|q|: return false
//!     A = convert_mont(u)
//!     if not on_curve(A): return false
//!     h = hash(R || A || M) (mod q)
//!     Rcheck = sB - hA
//!     if bytes_equal(R, Rcheck): return true
//!     return false
//! ```
//!
//! `hash_i(X) = hash(2^b - 1 - i || X)`, the prefix encoded as 32 little-endian bytes.
//! `k` is the X25519 private key after RFC 7748 clamping, so a key signs for exactly
//! the public key X25519 computes from it.
//!
//! **libsignal's variant.** libsignal (and libsignal-protocol-c before it) signs with
//! the Edwards key `E = kB` as it is, without negating `k`, and stores `E`'s sign bit
//! in the otherwise unused top bit of `s`; its verifier takes that bit back out and
//! uses it as `A`'s sign bit. A signature whose top bit is clear is the same in both
//! schemes, so libsignal accepts every signature made here. For the other half of
//! libsignal's keys, [`xeddsa_verify`] accepts the variant too: it clears the bit
//! and checks against `A` with sign bit 1. That admits no forgery: `-A` and `A`
//! belong to the same private key, and a valid signature under either still needs
//! it.
//!
//! Verification is slightly stricter than the specification's bounds: it demands a
//! canonical `s < q` and a canonical `R.y < p`. Neither rejects a signature an honest
//! signer makes (the signer reduces `s` mod `q` and encodes `R` canonically), and both
//! close the door to malleated copies of a signature.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::{Scalar, clamp_integer};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha512};
use subtle::{Choice, ConditionallySelectable};
use zeroize::{Zeroize, Zeroizing};

/// Length of an XEdDSA signature: `R` (32 bytes) then `s` (32 bytes).
pub const SIGNATURE_LEN: usize = 64;

/// `2^256 - 1 - 1` as 32 little-endian bytes: the prefix of `hash1`.
const HASH1_PREFIX: [u8; 32] = {
    let mut prefix = [0xFF; 32];
    prefix[0] = 0xFE;
    prefix
};

/// The field prime `p = 2^255 - 19`, little-endian.
const FIELD_PRIME: [u8; 32] = {
    let mut p = [0xFF; 32];
    p[0] = 0xED;
    p[31] = 0x7F;
    p
};

/// Signs `message` with the X25519 private key `private`, drawing the 64 bytes `Z`
/// from `rng`.
pub fn sign<R: RngCore + CryptoRng>(
    private: &[u8; 32],
    message: &[u8],
    rng: &mut R,
) -> [u8; SIGNATURE_LEN] {
    let mut random = Zeroizing::new([0u8; 64]);
    rng.fill_bytes(random.as_mut());
    xeddsa_sign(private, message, &random)
}

/// `xeddsa_sign(k, M, Z)` with `k = clamp(private)` and `Z = random`, which must be 64
/// fresh secret random bytes for every signature.
pub fn xeddsa_sign(private: &[u8; 32], message: &[u8], random: &[u8; 64]) -> [u8; SIGNATURE_LEN] {
    let (public_a, a) = calculate_key_pair(private);

    let mut nonce_hash = Sha512::new();
    nonce_hash.update(HASH1_PREFIX);
    nonce_hash.update(a.as_bytes());
    nonce_hash.update(message);
    nonce_hash.update(random);
    let r = Zeroizing::new(wide_hash_to_scalar(nonce_hash));

    let cap_r = EdwardsPoint::mul_base(&r).compress();
    let h = challenge(&cap_r, &public_a, message);
    let s = Zeroizing::new(*r + h * *a);

    let mut signature = [0u8; SIGNATURE_LEN];
    signature[..32].copy_from_slice(cap_r.as_bytes());
    signature[32..].copy_from_slice(s.as_bytes());
    signature
}

/// `xeddsa_verify(u, M, (R || s))` for the X25519 public key `public_u`.
pub fn xeddsa_verify(public_u: &[u8; 32], message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
    let (r_bytes, s_bytes) = signature.split_at(32);
    let mut cap_r = [0u8; 32];
    cap_r.copy_from_slice(r_bytes);
    let mut s = [0u8; 32];
    s.copy_from_slice(s_bytes);
    // libsignal's variant: the top bit of `s` is the sign bit of `A`.
    let sign_bit = s[31] >> 7;
    s[31] &= 0x7F;

    if !below_field_prime(public_u) {
        return false;
    }
    let mut r_y = cap_r;
    r_y[31] &= 0x7F;
    if !below_field_prime(&r_y) {
        return false;
    }
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s)) else {
        return false;
    };
    // convert_mont: y = (u - 1) / (u + 1), with the sign bit 0 (libsignal: as carried
    // in `s`). `None` when the result is not on
    // the curve (or u = -1, where the map is undefined).
    let Some(public_a) = MontgomeryPoint(*public_u).to_edwards(sign_bit) else {
        return false;
    };

    let h = challenge(&CompressedEdwardsY(cap_r), &public_a.compress(), message);
    let r_check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&h, &-public_a, &s);
    r_check.compress().as_bytes() == &cap_r
}

/// `calculate_key_pair(k)` for `k = clamp(private)`: the Edwards public key `A` with
/// sign bit 0 and the scalar `a` with `A = aB`.
fn calculate_key_pair(private: &[u8; 32]) -> (CompressedEdwardsY, Zeroizing<Scalar>) {
    let clamped = Zeroizing::new(clamp_integer(*private));
    let k = Zeroizing::new(Scalar::from_bytes_mod_order(*clamped));
    let mut public_e = EdwardsPoint::mul_base(&k).compress().to_bytes();
    let sign = Choice::from(public_e[31] >> 7);
    let minus_k = Zeroizing::new(-*k);
    let a = Zeroizing::new(Scalar::conditional_select(&k, &minus_k, sign));
    public_e[31] &= 0x7F;
    (CompressedEdwardsY(public_e), a)
}

/// `h = hash(R || A || M) (mod q)`.
fn challenge(cap_r: &CompressedEdwardsY, public_a: &CompressedEdwardsY, message: &[u8]) -> Scalar {
    let mut hash = Sha512::new();
    hash.update(cap_r.as_bytes());
    hash.update(public_a.as_bytes());
    hash.update(message);
    wide_hash_to_scalar(hash)
}

/// The 64-byte SHA-512 output as an integer, reduced mod `q`; the copies of the digest
/// are wiped, since for the nonce they determine the private scalar.
fn wide_hash_to_scalar(hash: Sha512) -> Scalar {
    let mut digest = hash.finalize();
    let mut wide = Zeroizing::new([0u8; 64]);
    wide.copy_from_slice(&digest);
    digest.as_mut_slice().zeroize();
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// Whether the 256-bit little-endian integer `bytes` is below `p = 2^255 - 19`.
fn below_field_prime(bytes: &[u8; 32]) -> bool {
    for (byte, prime) in bytes.iter().zip(FIELD_PRIME.iter()).rev() {
        if byte != prime {
            return byte < prime;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    /// The group order `q = 2^252 + 27742317777372353535851937790883648493`.
    const GROUP_ORDER: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x10,
    ];

    fn key_pair() -> ([u8; 32], [u8; 32]) {
        let mut private = [0u8; 32];
        OsRng.fill_bytes(&mut private);
        let public = MontgomeryPoint::mul_base_clamped(private).to_bytes();
        (private, public)
    }

    /// Little-endian addition of two 256-bit integers, ignoring the final carry.
    fn add(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
        let mut sum = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let total = u16::from(a[i]) + u16::from(b[i]) + carry;
            sum[i] = total.to_le_bytes()[0];
            carry = total >> 8;
        }
        sum
    }

    #[test]
    fn sign_then_verify_round_trips() {
        // Many keys, so that both signs of the Edwards key E are exercised.
        for len in 0..40 {
            let (private, public) = key_pair();
            let message = vec![0x5A; len];
            let signature = sign(&private, &message, &mut OsRng);
            assert!(xeddsa_verify(&public, &message, &signature), "length {len}");
        }
    }

    #[test]
    fn signatures_are_ed25519_signatures_under_the_converted_key() {
        // XEdDSA's point: the verifier is plain Ed25519 with A = convert_mont(u).
        for _ in 0..16 {
            let (private, public) = key_pair();
            let signature = sign(&private, b"message", &mut OsRng);
            let edwards = MontgomeryPoint(public).to_edwards(0).unwrap().compress();
            let key = ed25519_dalek::VerifyingKey::from_bytes(edwards.as_bytes()).unwrap();
            let signature = ed25519_dalek::Signature::from_bytes(&signature);
            key.verify_strict(b"message", &signature).unwrap();
        }
    }

    #[test]
    fn signing_is_deterministic_in_z_and_varies_with_it() {
        let (private, _) = key_pair();
        let first = xeddsa_sign(&private, b"m", &[1; 64]);
        assert_eq!(first, xeddsa_sign(&private, b"m", &[1; 64]));
        assert_ne!(first, xeddsa_sign(&private, b"m", &[2; 64]));
    }

    #[test]
    fn tampering_is_rejected() {
        let (private, public) = key_pair();
        let (_, other_public) = key_pair();
        let signature = sign(&private, b"message", &mut OsRng);
        assert!(!xeddsa_verify(&public, b"messagf", &signature));
        assert!(!xeddsa_verify(&other_public, b"message", &signature));
        for byte in 0..SIGNATURE_LEN {
            let mut bad = signature;
            bad[byte] ^= 0x01;
            assert!(!xeddsa_verify(&public, b"message", &bad), "byte {byte}");
        }
        let mut flipped_key = public;
        flipped_key[0] ^= 0x01;
        assert!(!xeddsa_verify(&flipped_key, b"message", &signature));
    }

    #[test]
    fn non_canonical_s_is_rejected() {
        let (private, public) = key_pair();
        let signature = sign(&private, b"message", &mut OsRng);
        let mut s = [0u8; 32];
        s.copy_from_slice(&signature[32..]);
        // s + q is below 2^253, so only the canonical-s rule rejects it: the group
        // equation still holds for it.
        let mut malleated = signature;
        malleated[32..].copy_from_slice(&add(&s, &GROUP_ORDER));
        assert!(!xeddsa_verify(&public, b"message", &malleated));
        let mut high_bit = signature;
        high_bit[63] |= 0x80;
        assert!(!xeddsa_verify(&public, b"message", &high_bit));
    }

    #[test]
    fn u_at_or_above_p_is_rejected() {
        let (private, public) = key_pair();
        let signature = sign(&private, b"message", &mut OsRng);
        // u + p (below 2^256 as u < p) is the same field element as u, so only the
        // u < p rule rejects it.
        let aliased = add(&public, &FIELD_PRIME);
        assert!(!xeddsa_verify(&aliased, b"message", &signature));
        let mut top_bit = public;
        top_bit[31] |= 0x80;
        assert!(!xeddsa_verify(&top_bit, b"message", &signature));
        assert!(!xeddsa_verify(&FIELD_PRIME, b"message", &signature));
        assert!(!xeddsa_verify(&[0xFF; 32], b"message", &signature));
    }

    #[test]
    fn non_canonical_r_is_rejected() {
        let (_, public) = key_pair();
        let mut signature = [0u8; SIGNATURE_LEN];
        signature[..32].copy_from_slice(&FIELD_PRIME);
        assert!(!xeddsa_verify(&public, b"message", &signature));
    }

    /// libsignal's signing, written here from its description (see the module docs):
    /// the Edwards key as it is, its sign bit in the top bit of `s`.
    fn libsignal_style_sign(private: &[u8; 32], message: &[u8], random: &[u8; 64]) -> [u8; 64] {
        let k = Scalar::from_bytes_mod_order(clamp_integer(*private));
        let public_e = EdwardsPoint::mul_base(&k).compress();
        let mut nonce = Sha512::new();
        nonce.update(HASH1_PREFIX);
        nonce.update(k.as_bytes());
        nonce.update(message);
        nonce.update(random);
        let r = wide_hash_to_scalar(nonce);
        let cap_r = EdwardsPoint::mul_base(&r).compress();
        let h = challenge(&cap_r, &public_e, message);
        let s = r + h * k;
        let mut signature = [0u8; SIGNATURE_LEN];
        signature[..32].copy_from_slice(cap_r.as_bytes());
        signature[32..].copy_from_slice(s.as_bytes());
        signature[63] |= public_e.as_bytes()[31] & 0x80;
        signature
    }

    #[test]
    fn libsignal_style_signatures_verify_for_both_signs_of_the_key() {
        let mut signs = [0usize; 2];
        for i in 0..64u8 {
            let (private, public) = key_pair();
            let signature = libsignal_style_sign(&private, b"libsignal", &[i; 64]);
            signs[usize::from(signature[63] >> 7)] += 1;
            assert!(xeddsa_verify(&public, b"libsignal", &signature));
            // The sign bit is bound: flipping it (the other point) fails.
            let mut flipped = signature;
            flipped[63] ^= 0x80;
            assert!(!xeddsa_verify(&public, b"libsignal", &flipped));
            assert!(!xeddsa_verify(&public, b"libsignal!", &signature));
        }
        assert!(
            signs[0] > 0 && signs[1] > 0,
            "both signs exercised: {signs:?}"
        );
        // Where the key's sign bit is 0, both schemes make the same signature.
        for i in 0..32u8 {
            let (private, _) = key_pair();
            let ours = xeddsa_sign(&private, b"same", &[i; 64]);
            let theirs = libsignal_style_sign(&private, b"same", &[i; 64]);
            if theirs[63] & 0x80 == 0 {
                assert_eq!(ours, theirs);
            }
        }
    }

    #[test]
    fn field_prime_comparison() {
        let mut below = FIELD_PRIME;
        below[0] -= 1;
        assert!(below_field_prime(&below));
        assert!(!below_field_prime(&FIELD_PRIME));
        assert!(below_field_prime(&[0; 32]));
        let mut above = FIELD_PRIME;
        above[0] += 1;
        assert!(!below_field_prime(&above));
    }
}
