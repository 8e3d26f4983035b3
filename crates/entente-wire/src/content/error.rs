//! Errors of the MIMI content codec, one enum per operation.
//!
//! [`ContentError`] means a peer sent bytes that are not valid MIMI content;
//! [`ConstructionError`] means the caller tried to build a value the draft forbids;
//! [`MessageIdError`] means the inputs to a message ID cannot be encoded.

/// The bytes are not a valid MIMI content document (draft-ietf-mimi-content-08).
///
/// Every variant says where (`at`: byte offset into the input; `field`: the CDDL field
/// being read) and what was expected. All of them are the sender's fault: the decoder
/// accepts exactly the deterministic CBOR encodings (RFC 8949 §4.2.1) of documents that
/// match the draft's CDDL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// The input ended inside an item.
    #[error(
        "truncated input: {field} at offset {at} needs {needed} more byte(s), only {available} remain"
    )]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Offset of the item that does not fit.
        at: usize,
        /// Bytes the item claims.
        needed: u64,
        /// Bytes left in the input.
        available: usize,
    },
    /// Bytes follow the single top-level item.
    #[error("{count} trailing byte(s) after the CBOR item that ends at offset {at}")]
    TrailingBytes {
        /// Offset of the first trailing byte.
        at: usize,
        /// How many bytes trail.
        count: usize,
    },
    /// An item of the wrong CBOR type.
    #[error("{field} at offset {at}: expected {expected}, found {found}")]
    UnexpectedType {
        /// The field being read.
        field: &'static str,
        /// Offset of the item.
        at: usize,
        /// The type the CDDL requires.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// An array with the wrong number of elements.
    #[error("{field} at offset {at}: expected an array of {expected} elements, found {found}")]
    WrongArrayLength {
        /// The array being read.
        field: &'static str,
        /// Offset of the array.
        at: usize,
        /// The lengths the CDDL allows here.
        expected: &'static str,
        /// The length found.
        found: u64,
    },
    /// A byte string whose size the CDDL fixes has another size.
    #[error("{field} at offset {at}: expected {expected} bytes, found {found}")]
    WrongSize {
        /// The field being read.
        field: &'static str,
        /// Offset of the byte string.
        at: usize,
        /// The size the CDDL requires.
        expected: usize,
        /// The size found.
        found: usize,
    },
    /// An integer larger than its CDDL `.size` allows.
    #[error("{field} at offset {at}: {found} is larger than the maximum {max}")]
    IntegerTooLarge {
        /// The field being read.
        field: &'static str,
        /// Offset of the integer.
        at: usize,
        /// The value found.
        found: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// An indefinite-length string, array or map (forbidden by RFC 8949 §4.2.1).
    #[error("{field} at offset {at}: indefinite-length encoding is not allowed")]
    IndefiniteLength {
        /// The field being read.
        field: &'static str,
        /// Offset of the item.
        at: usize,
    },
    /// A well-formed item that is not in its shortest (preferred) form.
    #[error("{field} at offset {at}: not the shortest encoding of {what}")]
    NotShortest {
        /// The field being read.
        field: &'static str,
        /// Offset of the item.
        at: usize,
        /// What was encoded too long ("integer or length", "float", "bignum").
        what: &'static str,
    },
    /// Bytes that are not well-formed CBOR.
    #[error("{field} at offset {at}: malformed CBOR: {reason}")]
    Malformed {
        /// The field being read.
        field: &'static str,
        /// Offset of the item.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A text string that is not UTF-8.
    #[error("{field} at offset {at}: text string is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
        /// Offset of the text string.
        at: usize,
    },
    /// A NestedPart cardinality the draft does not define.
    #[error(
        "NestedPart.cardinality at offset {at}: expected 0 (nullpart), 1 (single), 2 (external) or 3 (multi), found {found}"
    )]
    UnknownCardinality {
        /// Offset of the cardinality.
        at: usize,
        /// The value found.
        found: u64,
    },
    /// A MultiPart with fewer than the two parts `[2* NestedPart]` requires.
    #[error("MultiPart.parts at offset {at}: expected at least 2 parts, found {found}")]
    TooFewParts {
        /// Offset of the parts array.
        at: usize,
        /// The number of parts found.
        found: u64,
    },
    /// Nesting deeper than the draft's depth restrictions allow.
    #[error("{what} at offset {at} is nested deeper than the limit of {limit} levels")]
    TooDeep {
        /// "NestedPart" or "extension value".
        what: &'static str,
        /// Offset of the item one level too deep.
        at: usize,
        /// The limit.
        limit: usize,
    },
    /// Map keys not strictly ascending in bytewise order of their encodings: unsorted
    /// or duplicated (RFC 8949 §4.2.1, and the draft forbids duplicate extension keys).
    #[error("{field} at offset {at}: map key is a duplicate or out of deterministic order")]
    MapKeyOrder {
        /// The map being read.
        field: &'static str,
        /// Offset of the offending key.
        at: usize,
    },
    /// A map key of a type or value the draft's data model forbids.
    #[error("{field} at offset {at}: invalid map key: {reason}")]
    InvalidMapKey {
        /// The map being read.
        field: &'static str,
        /// Offset of the key.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A value the draft's data model forbids (a NaN other than `0xf97e00`, ...).
    #[error("{field} at offset {at}: {reason}")]
    Forbidden {
        /// The field being read.
        field: &'static str,
        /// Offset of the value.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The caller asked for a value that the draft does not allow to be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConstructionError {
    /// `parts: [2* NestedPart]`.
    #[error("a MultiPart needs at least 2 parts, got {found}")]
    TooFewParts {
        /// The number of parts given.
        found: usize,
    },
    /// "NestedParts MUST NOT be nested more than 4-levels deep."
    #[error("NestedPart would be {depth} levels deep; the limit is {limit}")]
    PartsTooDeep {
        /// The depth the part would have.
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// An extension key outside `name = int / tstr .size (1..255)` or the data model's
    /// integer range, or one of the keys with a typed field (1, 2).
    #[error("invalid extension key: {reason}")]
    InvalidExtensionKey {
        /// What is wrong.
        reason: &'static str,
    },
    /// An extension value the draft's data model forbids.
    #[error("invalid extension value: {reason}")]
    InvalidExtensionValue {
        /// What is wrong.
        reason: &'static str,
    },
}

/// The message ID hash input cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageIdError {
    /// senderUriLength and roomUriLength are 16-bit; a longer URI has no message ID.
    #[error("{which} URI is {len} bytes long; message IDs allow at most 65535")]
    UriTooLong {
        /// "sender" or "room".
        which: &'static str,
        /// The URI's length in bytes.
        len: usize,
    },
}
