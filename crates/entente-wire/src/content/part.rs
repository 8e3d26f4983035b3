//! Message bodies: `NestedPart` and its four cardinalities.

use std::fmt;

use super::cbor::{Reader, Writer};
use super::error::{ConstructionError, ContentError};

/// "NestedParts MUST NOT be nested more than 4-levels deep" (draft section "Depth
/// restrictions"); the body itself is level 1. The decoder refuses deeper bodies and
/// [`MultiPart::new`] refuses to build them.
pub const MAX_PART_DEPTH: usize = 4;

/// A body part, field {7} of the message and each element of a MultiPart.
///
/// ```cddl
/// NestedPart = [
///   disposition: baseDispos / $extDispos / unknownDispos,  ; {10}
///   language: tstr,                                        ; {11}
///   ( NullPart // SinglePart // ExternalPart // MultiPart)
/// ]
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedPart {
    /// The intended semantics of this part.
    pub disposition: Disposition,
    /// Empty, or a comma-separated list of RFC 5646 language tags.
    pub language: String,
    /// What the part holds.
    pub body: PartBody,
}

/// The cardinality-specific rest of a [`NestedPart`].
///
/// ```cddl
/// NullPart = ( cardinality: nullpart )
/// ; cardinality
/// nullpart = 0
/// single   = 1
/// external = 2
/// multi    = 3
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartBody {
    /// No content, as in deletes and unlikes.
    Null,
    /// Inline content.
    Single(SinglePart),
    /// Content fetched from elsewhere (boxed: it is much larger than the others).
    External(Box<ExternalPart>),
    /// Two or more nested parts.
    Multi(MultiPart),
}

/// Inline content.
///
/// ```cddl
/// SinglePart = (
///     cardinality: single,
///     contentType: tstr,        ; {8}
///     content: bstr
/// )
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SinglePart {
    /// IANA media type with parameters, e.g. `text/plain;charset=utf-8`.
    pub content_type: String,
    /// The content. `Debug` shows only its length: message content stays out of logs.
    pub content: Vec<u8>,
}

/// A reference to content stored outside the message.
///
/// ```cddl
/// ExternalPart = (
///     cardinality: external,
///     contentType: tstr,     ; An IANA media type {8}
///     url: uri,              ; A URL where the content can be fetched
///     expires: uint .size 4, ; expiration in seconds since UNIX epoch
///     size: uint .size 8,    ; size of content in octets
///     encAlg: uint .size 2,  ; An IANA AEAD Algorithm number, or zero
///     key: bstr,             ; AEAD key
///     nonce: bstr,           ; AEAD nonce
///     aad: bstr,             ; AEAD additional authentiation data
///     hashAlg: uint .size 1, ; An IANA Named Information Hash Algorithm
///     contentHash: bstr,     ; hash of the content at the target url
///     description: tstr,     ; an optional text description
///     filename: tstr         ; an optional suggested filename
/// )
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExternalPart {
    /// IANA media type of the content; may be empty.
    pub content_type: String,
    /// Where the content can be fetched.
    pub url: String,
    /// Seconds since the UNIX epoch after which the content is invalid; 0: never.
    pub expires: u32,
    /// Size of the content in octets; 0: not given.
    pub size: u64,
    /// IANA AEAD algorithm the content is encrypted with; 0: not encrypted.
    pub enc_alg: u16,
    /// AEAD key. A secret: `Debug` never shows it.
    pub key: Vec<u8>,
    /// AEAD nonce.
    pub nonce: Vec<u8>,
    /// AEAD additional authenticated data.
    pub aad: Vec<u8>,
    /// IANA Named Information hash algorithm of `content_hash`; 0: none.
    pub hash_alg: u8,
    /// Hash of the content at `url`.
    pub content_hash: Vec<u8>,
    /// Optional text description. Like content, `Debug` shows only its length.
    pub description: String,
    /// Optional suggested file name. Like content, `Debug` shows only its length.
    pub filename: String,
}

/// Two or more parts and how they relate.
///
/// ```cddl
/// MultiPart = (
///     cardinality: multi,
///     partSemantics: chooseOne / singleUnit / processAll,
///     parts: [2* NestedPart]
/// )
/// ```
///
/// Built only through [`MultiPart::new`], which enforces the two-part minimum and
/// [`MAX_PART_DEPTH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiPart {
    semantics: PartSemantics,
    parts: Vec<NestedPart>,
    /// Depth of the NestedPart holding this MultiPart: 1 + the deepest part.
    depth: usize,
}

/// How the parts of a [`MultiPart`] relate, field {9}.
///
/// ```cddl
/// chooseOne  = 0  ; receiver picks exactly one part to process
/// singleUnit = 1  ; receiver processes all parts as single unit
/// processAll = 2  ; receiver processes all parts individually
/// ```
///
/// The CDDL allows only these three; the draft's security considerations call other
/// values nonsensical, to be logged and discarded. The decoder keeps them as
/// [`PartSemantics::Unknown`] so that the application can do that.
#[derive(Debug, Clone, Copy)]
pub enum PartSemantics {
    /// Pick exactly one part (like multipart/alternative).
    ChooseOne,
    /// Process all parts as one unit (like multipart/related).
    SingleUnit,
    /// Process each part individually (like multipart/mixed).
    ProcessAll,
    /// Any other value.
    Unknown(u64),
}

/// The intended semantics of a part, field {10}: the "MIMI Content Disposition"
/// registry.
///
/// ```cddl
/// baseDispos = &(
///     unspecified: 0,
///     render: 1,
///     reaction: 2,
///     profile: 3,
///     inline: 4,
///     icon: 5,
///     attachment: 6,
///     session: 7,
///     preview: 8
/// )
/// ; Note: any ext_dispos take precedence
/// unknownDispos = &( unknown: 9..255 )
/// ```
///
/// Values are compared by number, so `Other(1) == Render`; build from a number with
/// `Disposition::from(u8)`. The draft: "The unknown value should be treated as if it
/// where `render`."
#[derive(Debug, Clone, Copy)]
pub enum Disposition {
    /// 0: no disposition hint provided.
    Unspecified,
    /// 1: render to the user according to local policy.
    Render,
    /// 2: a single reaction to another message.
    Reaction,
    /// 3: representing a profile of a participant or room.
    Profile,
    /// 4: rendered "inline" directly in the chat interface.
    Inline,
    /// 5: an icon such as an avatar image.
    Icon,
    /// 6: intended to be downloaded instead of rendered immediately.
    Attachment,
    /// 7: a description of a multimedia session, or URI to join one.
    Session,
    /// 8: a sender-generated preview.
    Preview,
    /// 9..=255: registered later or unknown.
    Other(u8),
}

impl NestedPart {
    /// A part with no content (cardinality `nullpart`).
    pub fn null(disposition: Disposition) -> Self {
        Self {
            disposition,
            language: String::new(),
            body: PartBody::Null,
        }
    }

    /// An inline part.
    pub fn single(
        disposition: Disposition,
        content_type: impl Into<String>,
        content: impl Into<Vec<u8>>,
    ) -> Self {
        let content_type = content_type.into();
        let body = PartBody::Single(SinglePart {
            content_type,
            content: content.into(),
        });
        Self {
            disposition,
            language: String::new(),
            body,
        }
    }

    /// An external part.
    pub fn external(disposition: Disposition, part: ExternalPart) -> Self {
        let body = PartBody::External(Box::new(part));
        Self {
            disposition,
            language: String::new(),
            body,
        }
    }

    /// A multipart; see [`MultiPart::new`].
    pub fn multi(
        disposition: Disposition,
        semantics: PartSemantics,
        parts: Vec<NestedPart>,
    ) -> Result<Self, ConstructionError> {
        let body = PartBody::Multi(MultiPart::new(semantics, parts)?);
        Ok(Self {
            disposition,
            language: String::new(),
            body,
        })
    }

    /// Levels of nesting, 1 for anything but a multipart.
    pub fn depth(&self) -> usize {
        match &self.body {
            PartBody::Multi(multi) => multi.depth,
            _ => 1,
        }
    }

    /// The part with the implied part index `index` ("a zero-indexed, depth-first
    /// integer"; this part is index 0), as used in `cid:{index}@local.invalid`.
    pub fn part_by_index(&self, index: usize) -> Option<&NestedPart> {
        let mut stack = vec![self];
        let mut current = 0;
        while let Some(part) = stack.pop() {
            if current == index {
                return Some(part);
            }
            current += 1;
            if let PartBody::Multi(multi) = &part.body {
                stack.extend(multi.parts.iter().rev());
            }
        }
        None
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        let len = match &self.body {
            PartBody::Null => 3,
            PartBody::Single(_) | PartBody::Multi(_) => 5,
            PartBody::External(_) => 15,
        };
        w.array(len);
        w.uint(u64::from(u8::from(self.disposition)));
        w.text(&self.language);
        match &self.body {
            PartBody::Null => w.uint(0),
            PartBody::Single(single) => {
                w.uint(1);
                w.text(&single.content_type);
                w.bytes(&single.content);
            }
            PartBody::External(external) => {
                w.uint(2);
                external.encode(w);
            }
            PartBody::Multi(multi) => {
                w.uint(3);
                w.uint(multi.semantics.into());
                w.array(multi.parts.len());
                multi.parts.iter().for_each(|part| part.encode(w));
            }
        }
    }

    /// Decodes a part at nesting `level` (the message body is level 1).
    pub(crate) fn decode(r: &mut Reader<'_>, level: usize) -> Result<Self, ContentError> {
        const FIELD: &str = "NestedPart";
        let (len, head) = r.array(FIELD)?;
        let wrong_length = |expected| ContentError::WrongArrayLength {
            field: FIELD,
            at: head.at,
            expected,
            found: len as u64,
        };
        if !matches!(len, 3 | 5 | 15) {
            return Err(wrong_length(
                "3 (nullpart), 5 (single, multi) or 15 (external)",
            ));
        }
        let disposition = Disposition::from(r.uint("NestedPart.disposition", 255)? as u8);
        let language = r.text("NestedPart.language")?.to_owned();
        let at = r.position();
        let body = match (r.uint("NestedPart.cardinality", u64::MAX)?, len) {
            (0, 3) => PartBody::Null,
            (1, 5) => PartBody::Single(SinglePart {
                content_type: r.text("SinglePart.contentType")?.to_owned(),
                content: r.bytes("SinglePart.content")?.to_vec(),
            }),
            (2, 15) => PartBody::External(Box::new(ExternalPart::decode(r)?)),
            (3, 5) => PartBody::Multi(MultiPart::decode(r, level)?),
            (0, _) => return Err(wrong_length("3 for a nullpart")),
            (1, _) => return Err(wrong_length("5 for a single part")),
            (2, _) => return Err(wrong_length("15 for an external part")),
            (3, _) => return Err(wrong_length("5 for a multipart")),
            (found, _) => return Err(ContentError::UnknownCardinality { at, found }),
        };
        Ok(Self {
            disposition,
            language,
            body,
        })
    }
}

impl MultiPart {
    /// Groups `parts`; fails with fewer than two parts or when the multipart would be
    /// nested deeper than [`MAX_PART_DEPTH`].
    pub fn new(
        semantics: PartSemantics,
        parts: Vec<NestedPart>,
    ) -> Result<Self, ConstructionError> {
        if parts.len() < 2 {
            return Err(ConstructionError::TooFewParts { found: parts.len() });
        }
        let depth = 1 + parts.iter().map(NestedPart::depth).max().unwrap_or(0);
        if depth > MAX_PART_DEPTH {
            return Err(ConstructionError::PartsTooDeep {
                depth,
                limit: MAX_PART_DEPTH,
            });
        }
        Ok(Self {
            semantics,
            parts,
            depth,
        })
    }

    /// How the parts relate.
    pub fn semantics(&self) -> PartSemantics {
        self.semantics
    }

    /// The parts, in the sender's order.
    pub fn parts(&self) -> &[NestedPart] {
        &self.parts
    }

    /// Takes the parts out.
    pub fn into_parts(self) -> Vec<NestedPart> {
        self.parts
    }

    /// Decodes the fields after the cardinality of a multipart at nesting `level`.
    fn decode(r: &mut Reader<'_>, level: usize) -> Result<Self, ContentError> {
        let semantics = PartSemantics::from(r.uint("MultiPart.partSemantics", u64::MAX)?);
        let (count, head) = r.array("MultiPart.parts")?;
        if count < 2 {
            return Err(ContentError::TooFewParts {
                at: head.at,
                found: count as u64,
            });
        }
        if level >= MAX_PART_DEPTH {
            let (what, at, limit) = ("NestedPart", r.position(), MAX_PART_DEPTH);
            return Err(ContentError::TooDeep { what, at, limit });
        }
        let mut parts = Vec::with_capacity(count);
        for _ in 0..count {
            parts.push(NestedPart::decode(r, level + 1)?);
        }
        let depth = 1 + parts.iter().map(NestedPart::depth).max().unwrap_or(0);
        Ok(Self {
            semantics,
            parts,
            depth,
        })
    }
}

impl ExternalPart {
    fn encode(&self, w: &mut Writer) {
        w.text(&self.content_type);
        w.text(&self.url);
        w.uint(self.expires.into());
        w.uint(self.size);
        w.uint(self.enc_alg.into());
        w.bytes(&self.key);
        w.bytes(&self.nonce);
        w.bytes(&self.aad);
        w.uint(self.hash_alg.into());
        w.bytes(&self.content_hash);
        w.text(&self.description);
        w.text(&self.filename);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, ContentError> {
        Ok(Self {
            content_type: r.text("ExternalPart.contentType")?.to_owned(),
            url: r.text("ExternalPart.url")?.to_owned(),
            expires: r.uint("ExternalPart.expires", u32::MAX.into())? as u32,
            size: r.uint("ExternalPart.size", u64::MAX)?,
            enc_alg: r.uint("ExternalPart.encAlg", u16::MAX.into())? as u16,
            key: r.bytes("ExternalPart.key")?.to_vec(),
            nonce: r.bytes("ExternalPart.nonce")?.to_vec(),
            aad: r.bytes("ExternalPart.aad")?.to_vec(),
            hash_alg: r.uint("ExternalPart.hashAlg", u8::MAX.into())? as u8,
            content_hash: r.bytes("ExternalPart.contentHash")?.to_vec(),
            description: r.text("ExternalPart.description")?.to_owned(),
            filename: r.text("ExternalPart.filename")?.to_owned(),
        })
    }
}

impl fmt::Debug for SinglePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            content_type,
            content,
        } = self;
        f.debug_struct("SinglePart")
            .field("content_type", content_type)
            .field("content", &format_args!("<{} bytes>", content.len()))
            .finish()
    }
}

impl fmt::Debug for ExternalPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            content_type,
            url,
            expires,
            size,
            enc_alg,
            key,
            nonce,
            aad,
            hash_alg,
            content_hash,
            description,
            filename,
        } = self;
        f.debug_struct("ExternalPart")
            .field("content_type", content_type)
            .field("url", url)
            .field("expires", expires)
            .field("size", size)
            .field("enc_alg", enc_alg)
            .field("key", &format_args!("<{} bytes redacted>", key.len()))
            .field("nonce", &hex::encode(nonce))
            .field("aad", &hex::encode(aad))
            .field("hash_alg", hash_alg)
            .field("content_hash", &hex::encode(content_hash))
            .field(
                "description",
                &format_args!("<{} bytes>", description.len()),
            )
            .field("filename", &format_args!("<{} bytes>", filename.len()))
            .finish()
    }
}

impl From<u8> for Disposition {
    fn from(value: u8) -> Self {
        match value {
            0 => Self::Unspecified,
            1 => Self::Render,
            2 => Self::Reaction,
            3 => Self::Profile,
            4 => Self::Inline,
            5 => Self::Icon,
            6 => Self::Attachment,
            7 => Self::Session,
            8 => Self::Preview,
            other => Self::Other(other),
        }
    }
}

impl From<Disposition> for u8 {
    fn from(value: Disposition) -> Self {
        match value {
            Disposition::Unspecified => 0,
            Disposition::Render => 1,
            Disposition::Reaction => 2,
            Disposition::Profile => 3,
            Disposition::Inline => 4,
            Disposition::Icon => 5,
            Disposition::Attachment => 6,
            Disposition::Session => 7,
            Disposition::Preview => 8,
            Disposition::Other(other) => other,
        }
    }
}

impl PartialEq for Disposition {
    fn eq(&self, other: &Self) -> bool {
        u8::from(*self) == u8::from(*other)
    }
}

impl Eq for Disposition {}

impl std::hash::Hash for Disposition {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        u8::from(*self).hash(state);
    }
}

impl From<u64> for PartSemantics {
    fn from(value: u64) -> Self {
        match value {
            0 => Self::ChooseOne,
            1 => Self::SingleUnit,
            2 => Self::ProcessAll,
            other => Self::Unknown(other),
        }
    }
}

impl From<PartSemantics> for u64 {
    fn from(value: PartSemantics) -> Self {
        match value {
            PartSemantics::ChooseOne => 0,
            PartSemantics::SingleUnit => 1,
            PartSemantics::ProcessAll => 2,
            PartSemantics::Unknown(other) => other,
        }
    }
}

impl PartialEq for PartSemantics {
    fn eq(&self, other: &Self) -> bool {
        u64::from(*self) == u64::from(*other)
    }
}

impl Eq for PartSemantics {}

impl std::hash::Hash for PartSemantics {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        u64::from(*self).hash(state);
    }
}
