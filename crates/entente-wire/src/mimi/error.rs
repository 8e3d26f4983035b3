//! Errors from decoding and encoding MIMI framing.

use tls_codec::{Deserialize, Serialize};

/// Why a MIMI message could not be decoded or encoded.
///
/// Decoding errors mean the peer sent bytes that are not a valid message of the
/// expected type; `message` names that type. [`FramingError::Encode`] means the caller
/// built a value the draft cannot express (for example a `HandshakeBundle::Commit`
/// holding a proposal), or a bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The input ended before the message was complete.
    #[error("{message} is truncated: the input ended before the message was complete")]
    Truncated {
        /// The message type being decoded.
        message: &'static str,
    },
    /// Bytes left over after a complete message.
    #[error("{message} is followed by {count} unexpected trailing byte(s)")]
    TrailingBytes {
        /// The message type being decoded.
        message: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// An enumerated field (protocol, status code, wire format...) holds a value we do
    /// not know.
    #[error("{message} contains the unknown or unsupported value {value} in an enumerated field")]
    UnknownValue {
        /// The message type being decoded.
        message: &'static str,
        /// The value found.
        value: u64,
    },
    /// A vector length prefix that is not minimally encoded, exceeds the MLS limit of
    /// 2^30 - 1 bytes, or disagrees with its contents.
    #[error(
        "{message} contains an invalid vector length (not minimally encoded, over 2^30-1 bytes, or not matching its contents)"
    )]
    InvalidLength {
        /// The message type being decoded.
        message: &'static str,
    },
    /// Structurally invalid, or violates a constraint of the draft (for example a
    /// `HandshakeBundle` carrying an application message).
    #[error("{message} is malformed: {reason}")]
    Malformed {
        /// The message type being decoded.
        message: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A notify body with no `FanoutMessage` in it.
    #[error("notify body is empty; expected one or more concatenated FanoutMessages")]
    EmptyBatch,
    /// One message of a concatenated batch failed.
    #[error("FanoutMessage #{index} (counting from 0) of the notify body: {source}")]
    InBatch {
        /// Position of the failing message in the batch.
        index: usize,
        /// What went wrong with it.
        source: Box<FramingError>,
    },
    /// The value cannot be encoded: the caller built something the draft cannot
    /// express, or a field exceeds an encoding limit.
    #[error("cannot encode {message}: {reason}")]
    Encode {
        /// The message type being encoded.
        message: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl FramingError {
    /// Maps a `tls_codec` decoding error for message type `message`.
    pub(crate) fn decoding(message: &'static str, error: tls_codec::Error) -> Self {
        match error {
            tls_codec::Error::EndOfStream => FramingError::Truncated { message },
            tls_codec::Error::UnknownValue(value) => FramingError::UnknownValue { message, value },
            tls_codec::Error::InvalidVectorLength => FramingError::InvalidLength { message },
            tls_codec::Error::TrailingData => FramingError::TrailingBytes { message, count: 0 },
            tls_codec::Error::DecodingError(reason) => FramingError::Malformed { message, reason },
            other => FramingError::Malformed {
                message,
                reason: other.to_string(),
            },
        }
    }

    /// Maps a `tls_codec` encoding error for message type `message`.
    pub(crate) fn encoding(message: &'static str, error: tls_codec::Error) -> Self {
        let reason = match error {
            tls_codec::Error::EncodingError(reason) => reason,
            other => other.to_string(),
        };
        FramingError::Encode { message, reason }
    }
}

/// Decodes exactly one `T` from `bytes`, rejecting trailing bytes.
///
/// This uses `tls_codec`'s reader-based `Deserialize`, not `DeserializeBytes`:
/// tls_codec 0.5's `VLBytes::tls_deserialize_bytes` has a `debug_assert!` that panics
/// on truncated input in debug builds (and is compiled out under `cfg(fuzzing)`, so
/// fuzzers never see it). The reader path reports `EndOfStream` instead, and bounds its
/// up-front allocation, so a huge length prefix costs nothing.
pub(crate) fn decode_exact<T: Deserialize>(
    message: &'static str,
    bytes: &[u8],
) -> Result<T, FramingError> {
    let mut reader = bytes;
    let value = T::tls_deserialize(&mut reader).map_err(|e| FramingError::decoding(message, e))?;
    if !reader.is_empty() {
        return Err(FramingError::TrailingBytes {
            message,
            count: reader.len(),
        });
    }
    Ok(value)
}

/// Encodes `value` as message type `message`.
pub(crate) fn encode<T: Serialize>(
    message: &'static str,
    value: &T,
) -> Result<Vec<u8>, FramingError> {
    value
        .tls_serialize_detached()
        .map_err(|e| FramingError::encoding(message, e))
}
