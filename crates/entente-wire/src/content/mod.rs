//! MIMI content (draft-ietf-mimi-content-08): the CBOR container carried inside MLS
//! application messages, and the message IDs computed over it.
//!
//! [`MimiContent::decode`] accepts exactly the deterministic CBOR encoding (RFC 8949
//! §4.2.1) of a document matching the draft's CDDL and restrictions, and
//! [`MimiContent::encode`] produces it, so `encode(decode(bytes)) == bytes` for every
//! input that decodes. Decoding never panics; nesting is limited by the draft's own
//! depth restrictions ([`MAX_PART_DEPTH`], [`MAX_EXTENSION_DEPTH`]) and sizes only by
//! the input.
//!
//! ```
//! use entente_wire::content::{MessageId, MimiContent, TextFormat};
//!
//! let mut content = MimiContent::text("Hello, **team**", true, [7; 16]);
//! content.extensions.sender_uri = Some("mimi://a.example/u/alice".into());
//!
//! let bytes = content.encode();
//! let received = MimiContent::decode(&bytes)?;
//! assert_eq!(received, content);
//!
//! let text = received.display_text().expect("a text message");
//! assert_eq!((text.format, text.text), (TextFormat::Markdown, "Hello, **team**"));
//!
//! // Use the identities MLS authenticated, not the sender's claims in the extensions.
//! let id = received.message_id("mimi://a.example/u/alice", "mimi://a.example/r/team")?;
//! assert_eq!(id.hash_alg(), MessageId::SHA256);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cbor;
mod derived;
mod error;
mod extensions;
mod part;
mod text;
mod value;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;

use sha2::{Digest, Sha256};

use self::cbor::{Reader, Writer};
pub use self::derived::{MessageDerivedValues, Timestamp};
pub use self::error::{ConstructionError, ContentError, MessageIdError};
pub use self::extensions::{ExtensionKey, Extensions};
pub use self::part::{
    Disposition, ExternalPart, MAX_PART_DEPTH, MultiPart, NestedPart, PartBody, PartSemantics,
    SinglePart,
};
pub use self::text::{MARKDOWN, PLAIN_TEXT, TextFormat, TextPart};
pub use self::value::{Float, MAX_EXTENSION_DEPTH, MAX_INTEGER_KEY, MapKey, Value};

/// A MIMI content message.
///
/// ```cddl
/// mimiContent = [
///   salt: bstr .size 16,
///   replaces: null / MessageId,       ; {1}
///   topicId: bstr,                    ; {2}
///   expires: null / Expiration,       ; {3}
///   inReplyTo: null / MessageId,      ; {4}
///   mimiExtensions: extensions,       ; {6}
///   nestedPart: NestedPart            ; {7}
/// ]
///
/// MessageId = bstr .size 32
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MimiContent {
    /// Per-message random salt; it "MUST be cryptographically random".
    pub salt: [u8; 16],
    /// The message this one edits or deletes (the first version's ID).
    pub replaces: Option<MessageId>,
    /// Groups messages into a topic; empty for none.
    pub topic_id: Vec<u8>,
    /// When the receiver should delete the message.
    pub expires: Option<Expiration>,
    /// The message this one replies or reacts to.
    pub in_reply_to: Option<MessageId>,
    /// Extensions, including the sender's and room's URIs.
    pub extensions: Extensions,
    /// The body.
    pub nested_part: NestedPart,
}

/// When a message expires, field {3}.
///
/// ```cddl
/// Expiration = [
///     relative: bool,
///     time: uint .size 4
/// ]
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Expiration {
    /// `true`: `time` is seconds after the receiver reads the message; `false`: `time`
    /// is seconds since the UNIX epoch.
    pub relative: bool,
    /// Seconds, relative or absolute.
    pub time: u32,
}

/// A message ID: a hash-algorithm octet and the first 31 octets of the hash
/// (section "Message ID"). Ordered bytewise, as topic sorting requires ("the lexically
/// lowest message ID sorts earlier").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub [u8; 32]);

impl MimiContent {
    /// A message with `nested_part` as its body and every other field empty.
    pub fn new(salt: [u8; 16], nested_part: NestedPart) -> Self {
        Self {
            salt,
            replaces: None,
            topic_id: Vec::new(),
            expires: None,
            in_reply_to: None,
            extensions: Extensions::new(),
            nested_part,
        }
    }

    /// A text message: one `render` part of type [`MARKDOWN`] (GFM-MIMI) or
    /// [`PLAIN_TEXT`]. Escaping HTML tags in Markdown, as GFM-MIMI requires, is the
    /// caller's job.
    pub fn text(body: &str, markdown: bool, salt: [u8; 16]) -> Self {
        let content_type = if markdown { MARKDOWN } else { PLAIN_TEXT };
        Self::new(
            salt,
            NestedPart::single(Disposition::Render, content_type, body),
        )
    }

    /// Decodes a message, accepting only deterministic CBOR with no trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ContentError> {
        let mut r = Reader::new(bytes);
        let (len, head) = r.array("mimiContent")?;
        if len != 7 {
            let (field, at, expected, found) = ("mimiContent", head.at, "7", len as u64);
            return Err(ContentError::WrongArrayLength {
                field,
                at,
                expected,
                found,
            });
        }
        let content = Self {
            salt: r.fixed_bytes("mimiContent.salt")?,
            replaces: decode_message_id(&mut r, "mimiContent.replaces")?,
            topic_id: r.bytes("mimiContent.topicId")?.to_vec(),
            expires: nullable(
                &mut r,
                "mimiContent.expires",
                "null or Expiration array",
                |r| {
                    let (len, head) = r.array("mimiContent.expires")?;
                    if len != 2 {
                        let (field, at, expected, found) = ("Expiration", head.at, "2", len as u64);
                        return Err(ContentError::WrongArrayLength {
                            field,
                            at,
                            expected,
                            found,
                        });
                    }
                    let relative = r.bool("Expiration.relative")?;
                    let time = r.uint("Expiration.time", u32::MAX.into())? as u32;
                    Ok(Expiration { relative, time })
                },
            )?,
            in_reply_to: decode_message_id(&mut r, "mimiContent.inReplyTo")?,
            extensions: Extensions::decode(&mut r)?,
            nested_part: NestedPart::decode(&mut r, 1)?,
        };
        r.finish()?;
        Ok(content)
    }

    /// Encodes the message in deterministic CBOR.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.array(7);
        w.bytes(&self.salt);
        encode_message_id(&mut w, self.replaces.as_ref());
        w.bytes(&self.topic_id);
        match &self.expires {
            None => w.null(),
            Some(expiration) => {
                w.array(2);
                w.bool(expiration.relative);
                w.uint(expiration.time.into());
            }
        }
        encode_message_id(&mut w, self.in_reply_to.as_ref());
        self.extensions.encode(&mut w);
        self.nested_part.encode(&mut w);
        w.into_bytes()
    }

    /// This message's ID when sent by `sender_uri` to `room_uri`.
    ///
    /// The hash covers the encoded message; because [`decode`](Self::decode) accepts
    /// only the one deterministic encoding, this equals the ID of the bytes received.
    /// The URIs should be the ones MLS authenticated, not the extensions' claims.
    pub fn message_id(
        &self,
        sender_uri: &str,
        room_uri: &str,
    ) -> Result<MessageId, MessageIdError> {
        MessageId::compute(&self.encode(), &self.salt, sender_uri, room_uri)
    }

    /// Every text part of the body to display, in order; see
    /// [`NestedPart::text_parts`].
    pub fn text_parts(&self) -> Vec<TextPart<'_>> {
        self.nested_part.text_parts()
    }

    /// The first text part of the body to display, if any.
    pub fn display_text(&self) -> Option<TextPart<'_>> {
        self.text_parts().into_iter().next()
    }
}

impl MessageId {
    /// Hash algorithm octet for SHA-256 in the IANA Named Information Hash Algorithm
    /// registry: the draft's default.
    pub const SHA256: u8 = 0x01;

    /// Computes the message ID of the encoded message `content`, whose salt is `salt`:
    ///
    /// ```text
    /// hash_output = hash( senderUriLength || senderUri ||
    ///                     roomUriLength   || roomUri   ||
    ///                     message         || salt )
    /// messageId = hashAlg || hash_output[0..30]
    /// ```
    ///
    /// with SHA-256 and the lengths as big-endian 16-bit integers.
    pub fn compute(
        content: &[u8],
        salt: &[u8; 16],
        sender_uri: &str,
        room_uri: &str,
    ) -> Result<Self, MessageIdError> {
        let length = |which, uri: &str| {
            u16::try_from(uri.len())
                .map(u16::to_be_bytes)
                .map_err(|_| MessageIdError::UriTooLong {
                    which,
                    len: uri.len(),
                })
        };
        let hash = Sha256::new()
            .chain_update(length("sender", sender_uri)?)
            .chain_update(sender_uri)
            .chain_update(length("room", room_uri)?)
            .chain_update(room_uri)
            .chain_update(content)
            .chain_update(salt)
            .finalize();
        let mut id = [0; 32];
        id[0] = Self::SHA256;
        id[1..].copy_from_slice(&hash[..31]);
        Ok(Self(id))
    }

    /// The hash algorithm octet (1 for SHA-256). IDs with an unknown algorithm are, per
    /// the draft's security considerations, to be logged and discarded.
    pub fn hash_alg(&self) -> u8 {
        self.0[0]
    }

    /// The 32 octets.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", hex::encode(self.0))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

fn encode_message_id(w: &mut Writer, id: Option<&MessageId>) {
    match id {
        Some(id) => w.bytes(&id.0),
        None => w.null(),
    }
}

fn decode_message_id(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<Option<MessageId>, ContentError> {
    nullable(r, field, "null or 32-byte string", |r| {
        r.fixed_bytes(field).map(MessageId)
    })
}

/// Reads `null` as `None`, otherwise `read`s the item. A wrong type at the item itself
/// is reported as `expected`.
fn nullable<'a, T>(
    r: &mut Reader<'a>,
    field: &'static str,
    expected: &'static str,
    read: impl FnOnce(&mut Reader<'a>) -> Result<T, ContentError>,
) -> Result<Option<T>, ContentError> {
    if r.eat(cbor::NULL) {
        return Ok(None);
    }
    let start = r.position();
    read(r).map(Some).map_err(|error| match error {
        ContentError::UnexpectedType { at, found, .. } if at == start => {
            ContentError::UnexpectedType {
                field,
                at,
                expected,
                found,
            }
        }
        error => error,
    })
}
