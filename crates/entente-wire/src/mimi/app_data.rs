//! `AppDataDictionary` (draft-ietf-mls-extensions section 4.6), the extension point of
//! several MIMI messages.
//!
//! Defined here rather than taken from openmls, whose type exists only with its
//! `extensions-draft` feature.

use std::io::{Read, Write};

use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::error::{FramingError, decode_exact, encode};

/// One component's data.
///
/// ```text
/// struct {
///     ComponentID component_id;
///     opaque data<V>;
/// } ComponentData;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ComponentData {
    /// The component (`uint16`).
    pub component_id: u16,
    /// Its data.
    pub data: VLBytes,
}

/// Component data keyed by component ID.
///
/// ```text
/// struct {
///     ComponentData component_data<V>;
/// } AppDataDictionary;
/// ```
///
/// Entries are sorted by `component_id` with at most one per ID; decoding rejects
/// anything else and [`AppDataDictionary::new`] enforces it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AppDataDictionary {
    entries: Vec<ComponentData>,
}

/// Why a list of [`ComponentData`] is not a valid [`AppDataDictionary`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "AppDataDictionary entries must be sorted by component ID with no duplicates; \
     component {current:#06x} follows {previous:#06x}"
)]
pub struct UnsortedComponents {
    /// The earlier ID.
    pub previous: u16,
    /// The ID that should have been larger.
    pub current: u16,
}

impl AppDataDictionary {
    const NAME: &'static str = "AppDataDictionary";

    /// Decodes a dictionary standing alone (for example the body of a GroupContext
    /// extension), rejecting trailing bytes and unsorted or duplicate entries.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes the dictionary.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }

    /// Builds a dictionary, requiring entries sorted by ID without duplicates.
    pub fn new(entries: Vec<ComponentData>) -> Result<Self, UnsortedComponents> {
        for pair in entries.windows(2) {
            if let [previous, current] = pair
                && previous.component_id >= current.component_id
            {
                return Err(UnsortedComponents {
                    previous: previous.component_id,
                    current: current.component_id,
                });
            }
        }
        Ok(AppDataDictionary { entries })
    }

    /// The entries, sorted by ID.
    pub fn entries(&self) -> &[ComponentData] {
        &self.entries
    }

    /// The data of component `component_id`, if present.
    pub fn get(&self, component_id: u16) -> Option<&[u8]> {
        self.entries
            .binary_search_by_key(&component_id, |entry| entry.component_id)
            .ok()
            .and_then(|index| self.entries.get(index))
            .map(|entry| entry.data.as_slice())
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Size for AppDataDictionary {
    fn tls_serialized_len(&self) -> usize {
        self.entries.tls_serialized_len()
    }
}

impl Serialize for AppDataDictionary {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        self.entries.tls_serialize(writer)
    }
}

impl Deserialize for AppDataDictionary {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let entries = Vec::<ComponentData>::tls_deserialize(bytes)?;
        AppDataDictionary::new(entries).map_err(|e| tls_codec::Error::DecodingError(e.to_string()))
    }
}
