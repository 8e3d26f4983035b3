//! Extension values: `value = any`, restricted by the draft's data model.
//!
//! From "CBOR Data Model and Encoding Restrictions":
//!
//! ```text
//! - map keys for any maps at any level of nesting inside a MIMI content extension
//!   MUST only be integers, text strings, or byte strings.
//! - integer keys MUST be representable as a double float without loss of precision:
//!   uints 0..9007199254740991 (2^53 - 1), and negints -9007199254740991..-1
//! - the only floating point NaN values permitted are the half-width quiet NaN
//!   (CBOR encoding 0xF97E00) [...]
//! - text strings used anywhere inside MIMI content MUST be valid UTF-8 sequences.
//! MIMI content extensions MUST NOT contain any combination of tags, maps, or arrays at
//! more than 4 levels of depth.
//! ```

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::cbor::{self, Head, Reader, Writer};
use super::error::{ConstructionError, ContentError};

/// Largest integer map key: 2^53 - 1, the largest integer a double holds exactly.
pub const MAX_INTEGER_KEY: i64 = (1 << 53) - 1;

/// Depth limit for tags, maps and arrays in extensions, counting the extensions map
/// itself as level 1 (draft section "Depth restrictions").
pub const MAX_EXTENSION_DEPTH: usize = 4;

/// Any CBOR data item that may appear inside a MIMI content extension.
///
/// Integers keep the full CBOR range; floats keep their exact value. Values decoded
/// from the wire always satisfy the draft's data model; values built in code are
/// checked when they are put into [`Extensions`](super::Extensions).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// Major type 0.
    Unsigned(u64),
    /// Major type 1: the integer `-1 - n`, stored as `n` so the whole range fits.
    Negative(u64),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// Major type 3.
    Text(String),
    /// Major type 4.
    Array(Vec<Value>),
    /// Major type 5, in deterministic key order.
    Map(BTreeMap<MapKey, Value>),
    /// Major type 6: tag number and content.
    Tag(u64, Box<Value>),
    /// `false` / `true`.
    Bool(bool),
    /// `null`.
    Null,
    /// `undefined`.
    Undefined,
    /// Any other simple value: 0..=19 or 32..=255.
    Simple(u8),
    /// A floating-point number, sent in the shortest width that holds it exactly.
    Float(Float),
}

/// A key in a map nested inside an extension value: an integer in
/// ±[`MAX_INTEGER_KEY`], a byte string or a text string.
///
/// Ordered like the bytewise order of the keys' deterministic encodings, so a
/// `BTreeMap<MapKey, _>` iterates in the order the map is sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MapKey {
    /// An integer key.
    Int(i64),
    /// A byte-string key.
    Bytes(Vec<u8>),
    /// A text-string key.
    Text(String),
}

/// An IEEE 754 value kept as the bit pattern of its `f64` form, so that equality is
/// exact (`-0.0 != 0.0`, and NaN equals itself). All NaNs are one value, sent as the
/// half-width quiet NaN `0xf97e00`: the only NaN the draft permits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Float(u64);

impl Float {
    /// Wraps `value`, folding every NaN into the one NaN the draft permits.
    pub fn new(value: f64) -> Self {
        if value.is_nan() {
            Self(f64::NAN.to_bits())
        } else {
            Self(value.to_bits())
        }
    }

    /// The value.
    pub fn value(self) -> f64 {
        f64::from_bits(self.0)
    }
}

impl MapKey {
    /// Major type, then CBOR argument, then content: the order of the encodings.
    fn sort_key(&self) -> (u8, u64, &[u8]) {
        match self {
            Self::Int(v) if *v >= 0 => (cbor::MAJOR_UNSIGNED, v.unsigned_abs(), &[]),
            Self::Int(v) => (cbor::MAJOR_NEGATIVE, v.unsigned_abs() - 1, &[]),
            Self::Bytes(b) => (cbor::MAJOR_BYTES, b.len() as u64, b),
            Self::Text(t) => (cbor::MAJOR_TEXT, t.len() as u64, t.as_bytes()),
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        let (major, arg, content) = self.sort_key();
        w.head(major, arg);
        w.raw(content);
    }
}

impl Ord for MapKey {
    fn cmp(&self, other: &Self) -> Ordering {
        // Heads of one major type compare like their arguments (a longer argument has
        // a larger additional-information value), and contents follow the head.
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for MapKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Value {
    /// Checks the draft's data model for a value built in code, `level` being the depth
    /// this value occupies if it is a container.
    pub(crate) fn check(&self, level: usize) -> Result<(), ConstructionError> {
        let bad = |reason| Err(ConstructionError::InvalidExtensionValue { reason });
        match self {
            Self::Array(_) | Self::Map(_) | Self::Tag(..) if level > MAX_EXTENSION_DEPTH => {
                bad("tags, maps and arrays nested more than 4 levels deep")
            }
            Self::Array(items) => items.iter().try_for_each(|item| item.check(level + 1)),
            Self::Map(entries) => entries.iter().try_for_each(|(key, value)| {
                match key {
                    MapKey::Int(k) if k.unsigned_abs() > MAX_INTEGER_KEY as u64 => {
                        bad("integer map key outside -(2^53 - 1)..=2^53 - 1")
                    }
                    _ => Ok(()),
                }?;
                value.check(level + 1)
            }),
            Self::Tag(tag, content) => {
                if let Some(reason) = bignum_problem(*tag, content) {
                    return bad(reason);
                }
                content.check(level + 1)
            }
            Self::Simple(20..=31) => {
                bad("simple values 20..=31 have their own variants or are invalid")
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        match self {
            Self::Unsigned(v) => w.head(cbor::MAJOR_UNSIGNED, *v),
            Self::Negative(n) => w.head(cbor::MAJOR_NEGATIVE, *n),
            Self::Bytes(b) => w.bytes(b),
            Self::Text(t) => w.text(t),
            Self::Array(items) => {
                w.array(items.len());
                items.iter().for_each(|item| item.encode(w));
            }
            Self::Map(entries) => {
                w.map(entries.len());
                for (key, value) in entries {
                    key.encode(w);
                    value.encode(w);
                }
            }
            Self::Tag(tag, content) => {
                w.head(cbor::MAJOR_TAG, *tag);
                content.encode(w);
            }
            Self::Bool(b) => w.bool(*b),
            Self::Null => w.null(),
            Self::Undefined => w.raw(&[cbor::UNDEFINED]),
            Self::Simple(v) => w.head(cbor::MAJOR_SIMPLE, u64::from(*v)),
            Self::Float(f) => encode_float(w, f.value()),
        }
    }

    /// Decodes one value; `level` is the depth it occupies if it is a container.
    pub(crate) fn decode(r: &mut Reader<'_>, level: usize) -> Result<Self, ContentError> {
        const FIELD: &str = "extension value";
        let head = r.head(FIELD)?;
        let container = matches!(head.major, cbor::MAJOR_ARRAY..=cbor::MAJOR_TAG);
        if container && level > MAX_EXTENSION_DEPTH {
            let (what, at, limit) = ("extension value", head.at, MAX_EXTENSION_DEPTH);
            return Err(ContentError::TooDeep { what, at, limit });
        }
        Ok(match head.major {
            cbor::MAJOR_UNSIGNED => Self::Unsigned(head.arg),
            cbor::MAJOR_NEGATIVE => Self::Negative(head.arg),
            cbor::MAJOR_BYTES => Self::Bytes(r.take(FIELD, head.at, head.arg)?.to_vec()),
            cbor::MAJOR_TEXT => Self::Text(r.text_body(FIELD, &head)?.to_owned()),
            cbor::MAJOR_ARRAY => {
                let len = r.fits(FIELD, &head, 1)?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(Self::decode(r, level + 1)?);
                }
                Self::Array(items)
            }
            cbor::MAJOR_MAP => {
                let len = r.fits(FIELD, &head, 2)?;
                let mut entries = BTreeMap::new();
                let mut previous: &[u8] = &[];
                for _ in 0..len {
                    let key = decode_map_key(r, "extension value map", &mut previous, true)?;
                    entries.insert(key, Self::decode(r, level + 1)?);
                }
                Self::Map(entries)
            }
            cbor::MAJOR_TAG => {
                let content = Self::decode(r, level + 1)?;
                if let Some(reason) = bignum_problem(head.arg, &content) {
                    let at = head.at;
                    return Err(match content {
                        Value::Bytes(_) => ContentError::NotShortest {
                            field: FIELD,
                            at,
                            what: "bignum",
                        },
                        _ => ContentError::Forbidden {
                            field: FIELD,
                            at,
                            reason,
                        },
                    });
                }
                Self::Tag(head.arg, Box::new(content))
            }
            _ => decode_simple(&head)?,
        })
    }
}

/// Decodes a map key and checks that its encoding sorts strictly after `previous`,
/// which is then advanced to this key's encoding. Byte-string keys are refused unless
/// `allow_bytes`.
pub(crate) fn decode_map_key<'a>(
    r: &mut Reader<'a>,
    field: &'static str,
    previous: &mut &'a [u8],
    allow_bytes: bool,
) -> Result<MapKey, ContentError> {
    let start = r.position();
    let head = r.head(field)?;
    let invalid = |reason| ContentError::InvalidMapKey {
        field,
        at: start,
        reason,
    };
    let out_of_range = || invalid("integer key outside -(2^53 - 1)..=2^53 - 1");
    let max = MAX_INTEGER_KEY as u64;
    let key = match head.major {
        cbor::MAJOR_UNSIGNED if head.arg <= max => MapKey::Int(head.arg as i64),
        // -1 - arg >= -(2^53 - 1)  <=>  arg <= 2^53 - 2
        cbor::MAJOR_NEGATIVE if head.arg < max => MapKey::Int(-1 - head.arg as i64),
        cbor::MAJOR_UNSIGNED | cbor::MAJOR_NEGATIVE => return Err(out_of_range()),
        cbor::MAJOR_BYTES if allow_bytes => {
            MapKey::Bytes(r.take(field, head.at, head.arg)?.to_vec())
        }
        cbor::MAJOR_TEXT => MapKey::Text(r.text_body(field, &head)?.to_owned()),
        _ if allow_bytes => {
            return Err(invalid(
                "keys must be integers, byte strings or text strings",
            ));
        }
        _ => return Err(invalid("keys must be integers or text strings")),
    };
    let raw = r.consumed_since(start);
    if !previous.is_empty() && raw <= *previous {
        return Err(ContentError::MapKeyOrder { field, at: start });
    }
    *previous = raw;
    Ok(key)
}

/// Why tag `tag` with `content` is not in deterministic form, if it is not.
///
/// RFC 8949 §3.4.3 and §4.2.1: a bignum (tags 2 and 3) holds a byte string without
/// leading zeros, and only for values that do not fit a 64-bit integer head.
fn bignum_problem(tag: u64, content: &Value) -> Option<&'static str> {
    match (tag, content) {
        (2 | 3, Value::Bytes(b)) if b.len() <= 8 || b.first() == Some(&0) => {
            Some("bignum that fits an integer or has leading zeros")
        }
        (2 | 3, Value::Bytes(_)) => None,
        (2 | 3, _) => Some("bignum tag on something other than a byte string"),
        _ => None,
    }
}

fn decode_simple(head: &Head) -> Result<Value, ContentError> {
    const FIELD: &str = "extension value";
    let at = head.at;
    let float = match head.info {
        20 => return Ok(Value::Bool(false)),
        21 => return Ok(Value::Bool(true)),
        22 => return Ok(Value::Null),
        23 => return Ok(Value::Undefined),
        25 => f16_to_f64(head.arg as u16),
        26 => f64::from(f32::from_bits(head.arg as u32)),
        27 => f64::from_bits(head.arg),
        // 0..=19 direct, or 32..=255 in the two-byte form (checked by the reader).
        _ => return Ok(Value::Simple(head.arg as u8)),
    };
    if float.is_nan() {
        if head.info == 25 && head.arg == 0x7e00 {
            return Ok(Value::Float(Float::new(float)));
        }
        let reason = "the only NaN permitted is the half-width quiet NaN 0xf97e00";
        return Err(ContentError::Forbidden {
            field: FIELD,
            at,
            reason,
        });
    }
    let shortest = match head.info {
        25 => true,
        26 => f16_exact(float).is_none(),
        _ => f16_exact(float).is_none() && !f32_exact(float),
    };
    if !shortest {
        let what = "float";
        return Err(ContentError::NotShortest {
            field: FIELD,
            at,
            what,
        });
    }
    Ok(Value::Float(Float::new(float)))
}

fn encode_float(w: &mut Writer, value: f64) {
    if value.is_nan() {
        w.raw(&[0xf9, 0x7e, 0x00]);
    } else if let Some(half) = f16_exact(value) {
        w.raw(&[0xf9]);
        w.raw(&half.to_be_bytes());
    } else if f32_exact(value) {
        w.raw(&[0xfa]);
        w.raw(&(value as f32).to_bits().to_be_bytes());
    } else {
        w.raw(&[0xfb]);
        w.raw(&value.to_bits().to_be_bytes());
    }
}

fn f32_exact(value: f64) -> bool {
    f64::from(value as f32).to_bits() == value.to_bits()
}

/// The binary16 bit pattern holding exactly `value`, if there is one (NaN: none).
pub(crate) fn f16_exact(value: f64) -> Option<u16> {
    let bits = value.to_bits();
    let sign = ((bits >> 48) & 0x8000) as u16;
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = bits & ((1 << 52) - 1);
    match exponent {
        0x7ff if mantissa == 0 => Some(sign | 0x7c00),
        0x7ff => None,
        // Zero; binary64 subnormals are far below the binary16 range.
        0 if mantissa == 0 => Some(sign),
        0 => None,
        _ => {
            let e = exponent - 1023;
            if (-14..=15).contains(&e) {
                // Normal: the low 42 mantissa bits must be zero.
                let fits = mantissa & ((1 << 42) - 1) == 0;
                fits.then(|| sign | (((e + 15) as u16) << 10) | (mantissa >> 42) as u16)
            } else if (-24..-14).contains(&e) {
                // Subnormal: value = m * 2^-24 with m = significand >> (28 - e).
                let significand = mantissa | (1 << 52);
                let shift = (28 - e) as u32;
                let fits = significand & ((1u64 << shift) - 1) == 0;
                fits.then(|| sign | (significand >> shift) as u16)
            } else {
                None
            }
        }
    }
}

pub(crate) fn f16_to_f64(half: u16) -> f64 {
    let sign = if half & 0x8000 == 0 { 1.0 } else { -1.0 };
    let exponent = i32::from((half >> 10) & 0x1f);
    let mantissa = f64::from(half & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f64.powi(-24),
        0x1f if mantissa == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        _ => sign * (1.0 + mantissa / 1024.0) * 2f64.powi(exponent - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_f16_conversion_is_exact_for_every_half() {
        for half in 0..=u16::MAX {
            let value = f16_to_f64(half);
            if value.is_nan() {
                assert_eq!(f16_exact(value), None);
            } else {
                assert_eq!(f16_exact(value), Some(half), "half {half:#06x} = {value}");
            }
        }
    }

    #[test]
    fn content_floats_use_the_shortest_width() {
        let cases: [(f64, &[u8]); 8] = [
            (0.0, &[0xf9, 0x00, 0x00]),
            (-0.0, &[0xf9, 0x80, 0x00]),
            (1.5, &[0xf9, 0x3e, 0x00]),
            (65504.0, &[0xf9, 0x7b, 0xff]),
            (5.960_464_477_539_063e-8, &[0xf9, 0x00, 0x01]),
            (100_000.0, &[0xfa, 0x47, 0xc3, 0x50, 0x00]),
            (1.1, &[0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]),
            (f64::NAN, &[0xf9, 0x7e, 0x00]),
        ];
        for (value, expected) in cases {
            let mut w = Writer::default();
            Value::Float(Float::new(value)).encode(&mut w);
            assert_eq!(w.into_bytes(), expected, "{value}");
            let mut r = Reader::new(expected);
            assert_eq!(
                Value::decode(&mut r, 2),
                Ok(Value::Float(Float::new(value)))
            );
        }
    }

    #[test]
    fn content_rejects_non_shortest_floats_and_other_nans() {
        for bytes in [
            &[0xfa, 0x3f, 0xc0, 0x00, 0x00][..],       // 1.5 as f32
            &[0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0][..], // 1.5 as f64
            &[0xfa, 0x7f, 0xc0, 0x00, 0x00][..],       // NaN as f32
            &[0xf9, 0x7e, 0x01][..],                   // NaN with payload
            &[0xf9, 0xfe, 0x00][..],                   // negative NaN
        ] {
            let mut r = Reader::new(bytes);
            assert!(Value::decode(&mut r, 2).is_err(), "{bytes:02x?}");
        }
    }

    #[test]
    fn content_map_key_order_matches_encoding_order() {
        let keys = [
            MapKey::Int(0),
            MapKey::Int(23),
            MapKey::Int(24),
            MapKey::Int(MAX_INTEGER_KEY),
            MapKey::Int(-1),
            MapKey::Int(-25),
            MapKey::Bytes(vec![]),
            MapKey::Bytes(vec![0xff]),
            MapKey::Bytes(vec![0, 0]),
            MapKey::Text("b".into()),
            MapKey::Text("aa".into()),
        ];
        let encodings: Vec<Vec<u8>> = keys
            .iter()
            .map(|key| {
                let mut w = Writer::default();
                key.encode(&mut w);
                w.into_bytes()
            })
            .collect();
        for pair in keys.windows(2).zip(encodings.windows(2)) {
            assert!(pair.0[0] < pair.0[1]);
            assert!(pair.1[0] < pair.1[1]);
        }
    }
}
