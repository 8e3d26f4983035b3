//! Deterministic CBOR (RFC 8949 §4.2.1) at the level of item heads.
//!
//! The draft requires MIMI content to be sent in deterministic encoding, so the
//! [`Reader`] accepts only that: shortest heads, definite lengths, no reserved
//! additional-information values. A document that decodes therefore re-encodes to the
//! same bytes, which is what keeps message IDs (a hash over the bytes) stable.
//! The [`Writer`] emits the same form.

use super::error::ContentError;

pub(crate) const MAJOR_UNSIGNED: u8 = 0;
pub(crate) const MAJOR_NEGATIVE: u8 = 1;
pub(crate) const MAJOR_BYTES: u8 = 2;
pub(crate) const MAJOR_TEXT: u8 = 3;
pub(crate) const MAJOR_ARRAY: u8 = 4;
pub(crate) const MAJOR_MAP: u8 = 5;
pub(crate) const MAJOR_TAG: u8 = 6;
pub(crate) const MAJOR_SIMPLE: u8 = 7;

pub(crate) const FALSE: u8 = 0xf4;
pub(crate) const TRUE: u8 = 0xf5;
pub(crate) const NULL: u8 = 0xf6;
pub(crate) const UNDEFINED: u8 = 0xf7;

/// The initial byte and argument of one item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    pub(crate) major: u8,
    /// Additional information: the low five bits of the initial byte.
    pub(crate) info: u8,
    /// The argument: a value, length, tag number, simple value or float bit pattern.
    pub(crate) arg: u64,
    /// Offset of the initial byte.
    pub(crate) at: usize,
}

impl Head {
    /// A short name for the item's type, for error messages.
    pub(crate) fn describe(&self) -> &'static str {
        match (self.major, self.info) {
            (MAJOR_UNSIGNED, _) => "unsigned integer",
            (MAJOR_NEGATIVE, _) => "negative integer",
            (MAJOR_BYTES, _) => "byte string",
            (MAJOR_TEXT, _) => "text string",
            (MAJOR_ARRAY, _) => "array",
            (MAJOR_MAP, _) => "map",
            (MAJOR_TAG, _) => "tag",
            (_, 20 | 21) => "boolean",
            (_, 22) => "null",
            (_, 23) => "undefined",
            (_, 25..=27) => "floating-point number",
            _ => "simple value",
        }
    }
}

/// Reads deterministic CBOR from a byte slice; never panics, never allocates.
pub(crate) struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    /// The bytes between `start` and the current position.
    pub(crate) fn consumed_since(&self, start: usize) -> &'a [u8] {
        self.input.get(start..self.pos).unwrap_or_default()
    }

    /// Fails unless the whole input has been read.
    pub(crate) fn finish(&self) -> Result<(), ContentError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(ContentError::TrailingBytes {
                at: self.pos,
                count,
            }),
        }
    }

    /// Consumes the next byte if it equals `byte`.
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        if self.input.get(self.pos) == Some(&byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Reads one head, rejecting anything but deterministic encoding.
    pub(crate) fn head(&mut self, field: &'static str) -> Result<Head, ContentError> {
        let at = self.pos;
        let initial = self.take_array::<1>(field, at)?[0];
        let major = initial >> 5;
        let info = initial & 0x1f;
        let arg = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take_array::<1>(field, at)?[0]),
            25 => u64::from(u16::from_be_bytes(self.take_array(field, at)?)),
            26 => u64::from(u32::from_be_bytes(self.take_array(field, at)?)),
            27 => u64::from_be_bytes(self.take_array(field, at)?),
            28..=30 => {
                let reason = "reserved additional information value";
                return Err(ContentError::Malformed { field, at, reason });
            }
            _ => return Err(indefinite(field, at, major)),
        };
        let shortest = match (major, info) {
            (MAJOR_SIMPLE, 24) if arg < 32 => {
                let reason = "simple value below 32 in two-byte form";
                return Err(ContentError::Malformed { field, at, reason });
            }
            // Floats (major 7, 25..=27) are checked by the caller, which knows the value.
            (MAJOR_SIMPLE, _) => true,
            (_, 24) => arg >= 24,
            (_, 25) => arg > 0xff,
            (_, 26) => arg > 0xffff,
            (_, 27) => arg > 0xffff_ffff,
            _ => true,
        };
        if !shortest {
            let what = "integer or length";
            return Err(ContentError::NotShortest { field, at, what });
        }
        Ok(Head {
            major,
            info,
            arg,
            at,
        })
    }

    /// Reads an unsigned integer no larger than `max`.
    pub(crate) fn uint(&mut self, field: &'static str, max: u64) -> Result<u64, ContentError> {
        let head = self.expect(field, MAJOR_UNSIGNED, "unsigned integer")?;
        if head.arg > max {
            let (at, found) = (head.at, head.arg);
            return Err(ContentError::IntegerTooLarge {
                field,
                at,
                found,
                max,
            });
        }
        Ok(head.arg)
    }

    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, ContentError> {
        let head = self.head(field)?;
        match (head.major, head.info) {
            (MAJOR_SIMPLE, 20) => Ok(false),
            (MAJOR_SIMPLE, 21) => Ok(true),
            _ => Err(unexpected(field, &head, "boolean")),
        }
    }

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], ContentError> {
        let head = self.expect(field, MAJOR_BYTES, "byte string")?;
        self.take(field, head.at, head.arg)
    }

    /// Reads a byte string of exactly `N` bytes.
    pub(crate) fn fixed_bytes<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], ContentError> {
        let at = self.pos;
        let bytes = self.bytes(field)?;
        bytes.try_into().map_err(|_| ContentError::WrongSize {
            field,
            at,
            expected: N,
            found: bytes.len(),
        })
    }

    pub(crate) fn text(&mut self, field: &'static str) -> Result<&'a str, ContentError> {
        let head = self.expect(field, MAJOR_TEXT, "text string")?;
        self.text_body(field, &head)
    }

    /// Reads the content of a text string whose head has been read.
    pub(crate) fn text_body(
        &mut self,
        field: &'static str,
        head: &Head,
    ) -> Result<&'a str, ContentError> {
        let bytes = self.take(field, head.at, head.arg)?;
        std::str::from_utf8(bytes).map_err(|_| ContentError::InvalidUtf8 { field, at: head.at })
    }

    /// Reads an array head and returns its length, which is checked against the input
    /// left (every element takes at least one byte) so callers may allocate for it.
    pub(crate) fn array(&mut self, field: &'static str) -> Result<(usize, Head), ContentError> {
        let head = self.expect(field, MAJOR_ARRAY, "array")?;
        Ok((self.fits(field, &head, 1)?, head))
    }

    /// Reads a map head and returns its number of entries, checked like [`Self::array`].
    pub(crate) fn map(&mut self, field: &'static str) -> Result<(usize, Head), ContentError> {
        let head = self.expect(field, MAJOR_MAP, "map")?;
        Ok((self.fits(field, &head, 2)?, head))
    }

    /// Checks that `head.arg` items of at least `min_size` bytes each fit in the input.
    pub(crate) fn fits(
        &self,
        field: &'static str,
        head: &Head,
        min_size: u64,
    ) -> Result<usize, ContentError> {
        let needed = head.arg.saturating_mul(min_size);
        match usize::try_from(head.arg) {
            Ok(count) if needed <= self.remaining() as u64 => Ok(count),
            _ => Err(ContentError::Truncated {
                field,
                at: head.at,
                needed,
                available: self.remaining(),
            }),
        }
    }

    /// Reads `len` bytes of string content.
    pub(crate) fn take(
        &mut self,
        field: &'static str,
        at: usize,
        len: u64,
    ) -> Result<&'a [u8], ContentError> {
        let available = self.remaining();
        let end = usize::try_from(len)
            .ok()
            .filter(|&len| len <= available)
            .map(|len| self.pos + len);
        match end.and_then(|end| self.input.get(self.pos..end).map(|s| (s, end))) {
            Some((slice, end)) => {
                self.pos = end;
                Ok(slice)
            }
            None => Err(ContentError::Truncated {
                field,
                at,
                needed: len,
                available,
            }),
        }
    }

    fn take_array<const N: usize>(
        &mut self,
        field: &'static str,
        at: usize,
    ) -> Result<[u8; N], ContentError> {
        let slice = self.take(field, at, N as u64)?;
        // `take` returned exactly N bytes.
        slice.try_into().map_err(|_| {
            let reason = "internal length mismatch";
            ContentError::Malformed { field, at, reason }
        })
    }

    fn expect(
        &mut self,
        field: &'static str,
        major: u8,
        expected: &'static str,
    ) -> Result<Head, ContentError> {
        let head = self.head(field)?;
        if head.major == major {
            Ok(head)
        } else {
            Err(unexpected(field, &head, expected))
        }
    }
}

pub(crate) fn unexpected(field: &'static str, head: &Head, expected: &'static str) -> ContentError {
    ContentError::UnexpectedType {
        field,
        at: head.at,
        expected,
        found: head.describe(),
    }
}

fn indefinite(field: &'static str, at: usize, major: u8) -> ContentError {
    match major {
        MAJOR_BYTES..=MAJOR_MAP => ContentError::IndefiniteLength { field, at },
        MAJOR_SIMPLE => {
            let reason = "break outside an indefinite-length item";
            ContentError::Malformed { field, at, reason }
        }
        _ => {
            let reason = "additional information 31 on an integer or tag";
            ContentError::Malformed { field, at, reason }
        }
    }
}

/// Writes deterministic CBOR.
#[derive(Default)]
pub(crate) struct Writer {
    out: Vec<u8>,
}

impl Writer {
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// Writes a head with the shortest argument encoding.
    pub(crate) fn head(&mut self, major: u8, arg: u64) {
        let major = major << 5;
        if arg < 24 {
            self.out.push(major | arg as u8);
        } else if arg <= 0xff {
            self.out.extend_from_slice(&[major | 24, arg as u8]);
        } else if arg <= 0xffff {
            self.out.push(major | 25);
            self.out.extend_from_slice(&(arg as u16).to_be_bytes());
        } else if arg <= 0xffff_ffff {
            self.out.push(major | 26);
            self.out.extend_from_slice(&(arg as u32).to_be_bytes());
        } else {
            self.out.push(major | 27);
            self.out.extend_from_slice(&arg.to_be_bytes());
        }
    }

    pub(crate) fn uint(&mut self, value: u64) {
        self.head(MAJOR_UNSIGNED, value);
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) {
        self.head(MAJOR_BYTES, value.len() as u64);
        self.out.extend_from_slice(value);
    }

    pub(crate) fn text(&mut self, value: &str) {
        self.head(MAJOR_TEXT, value.len() as u64);
        self.out.extend_from_slice(value.as_bytes());
    }

    pub(crate) fn array(&mut self, len: usize) {
        self.head(MAJOR_ARRAY, len as u64);
    }

    pub(crate) fn map(&mut self, len: usize) {
        self.head(MAJOR_MAP, len as u64);
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.out.push(if value { TRUE } else { FALSE });
    }

    pub(crate) fn null(&mut self) {
        self.out.push(NULL);
    }

    /// Writes bytes that are already CBOR.
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
}
