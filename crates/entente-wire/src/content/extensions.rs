//! The `mimiExtensions` map.

use std::collections::BTreeMap;

use super::cbor::{Reader, Writer};
use super::error::{ConstructionError, ContentError};
use super::value::{MAX_INTEGER_KEY, MapKey, Value, decode_map_key};

/// The extensions of a MIMI content message, field {6}.
///
/// ```cddl
/// extensions = {
///   ? &(senderUri: 1) ^ => tstr,
///   ? &(roomUri: 2) ^ => tstr,
///   * $$otherKnownExtensions,
///   * unknownExtension
/// }
///
/// unknownExtension = (
///    name => value
/// )
/// name = int / tstr .size (1..255)
/// value = any
/// ```
///
/// Keys 1 and 2 are the registered `senderUri` and `roomUri` ("MIMI Content Extension
/// Keys" registry) and have typed fields; every other key is kept, with its value, in
/// deterministic order. These URIs are the sender's claims: a message ID must be
/// computed from the identities MLS authenticated, not from these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// Key 1: "the sender as a MIMI participant".
    pub sender_uri: Option<String>,
    /// Key 2: "the MIMI room URI".
    pub room_uri: Option<String>,
    other: BTreeMap<ExtensionKey, Value>,
}

/// A key of an extension other than `senderUri` (1) and `roomUri` (2): an integer in
/// ±(2^53 - 1) or a text string of 1 to 255 bytes. Negative integers and text strings
/// are for private use; positive integers are assigned by IANA.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtensionKey(MapKey);

impl ExtensionKey {
    /// An integer key. Keys 1 and 2 are refused: they are the typed fields of
    /// [`Extensions`].
    pub fn int(key: i64) -> Result<Self, ConstructionError> {
        let invalid = |reason| Err(ConstructionError::InvalidExtensionKey { reason });
        match key {
            1 | 2 => invalid("keys 1 and 2 are the sender_uri and room_uri fields"),
            k if k.unsigned_abs() > MAX_INTEGER_KEY as u64 => {
                invalid("integer keys must lie in -(2^53 - 1)..=2^53 - 1")
            }
            k => Ok(Self(MapKey::Int(k))),
        }
    }

    /// A text key (private use), 1 to 255 bytes of UTF-8.
    pub fn text(key: impl Into<String>) -> Result<Self, ConstructionError> {
        let key = key.into();
        if (1..=255).contains(&key.len()) {
            Ok(Self(MapKey::Text(key)))
        } else {
            let reason = "text keys must be 1 to 255 bytes long";
            Err(ConstructionError::InvalidExtensionKey { reason })
        }
    }

    /// The key if it is an integer.
    pub fn as_int(&self) -> Option<i64> {
        match self.0 {
            MapKey::Int(k) => Some(k),
            _ => None,
        }
    }

    /// The key if it is a text string.
    pub fn as_text(&self) -> Option<&str> {
        match &self.0 {
            MapKey::Text(k) => Some(k),
            _ => None,
        }
    }
}

impl Extensions {
    /// No extensions.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when no extension, not even the sender or room URI, is present.
    pub fn is_empty(&self) -> bool {
        self.sender_uri.is_none() && self.room_uri.is_none() && self.other.is_empty()
    }

    /// The value of the extension `key`.
    pub fn get(&self, key: &ExtensionKey) -> Option<&Value> {
        self.other.get(key)
    }

    /// Sets the extension `key`, returning the value it replaces. Refuses values the
    /// draft's data model forbids (see [`Value`]), so that anything built here encodes
    /// to a document [`MimiContent::decode`](super::MimiContent::decode) accepts.
    pub fn insert(
        &mut self,
        key: ExtensionKey,
        value: Value,
    ) -> Result<Option<Value>, ConstructionError> {
        // The extensions map is level 1; its values start at level 2.
        value.check(2)?;
        Ok(self.other.insert(key, value))
    }

    /// Removes the extension `key`, returning its value.
    pub fn remove(&mut self, key: &ExtensionKey) -> Option<Value> {
        self.other.remove(key)
    }

    /// The extensions other than the sender and room URIs, in the order they are sent.
    pub fn iter(&self) -> impl Iterator<Item = (&ExtensionKey, &Value)> {
        self.other.iter()
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        let known = [(1, &self.sender_uri), (2, &self.room_uri)];
        let mut known = known
            .into_iter()
            .filter_map(|(key, uri)| uri.as_deref().map(|uri| (key, uri)))
            .peekable();
        let count = self.other.len()
            + usize::from(self.sender_uri.is_some())
            + usize::from(self.room_uri.is_some());
        w.map(count);
        for (key, value) in &self.other {
            // Keys 1 and 2 go where their encodings sort among the others.
            while let Some((k, uri)) = known.next_if(|(k, _)| MapKey::Int(*k) < key.0) {
                w.uint(k as u64);
                w.text(uri);
            }
            key.0.encode(w);
            value.encode(w);
        }
        for (k, uri) in known {
            w.uint(k as u64);
            w.text(uri);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, ContentError> {
        const FIELD: &str = "mimiContent.mimiExtensions";
        let (len, _) = r.map(FIELD)?;
        let mut extensions = Self::default();
        let mut previous: &[u8] = &[];
        for _ in 0..len {
            let at = r.position();
            match decode_map_key(r, FIELD, &mut previous, false)? {
                MapKey::Int(1) => {
                    extensions.sender_uri = Some(r.text("extensions.senderUri")?.to_owned());
                }
                MapKey::Int(2) => {
                    extensions.room_uri = Some(r.text("extensions.roomUri")?.to_owned());
                }
                MapKey::Text(key) if key.is_empty() || key.len() > 255 => {
                    let reason = "text keys must be 1 to 255 bytes long";
                    return Err(ContentError::InvalidMapKey {
                        field: FIELD,
                        at,
                        reason,
                    });
                }
                key => {
                    let value = Value::decode(r, 2)?;
                    extensions.other.insert(ExtensionKey(key), value);
                }
            }
        }
        Ok(extensions)
    }
}
