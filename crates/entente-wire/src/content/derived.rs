//! The values a receiver derives for each message (draft section "Derived Data Values",
//! schema "Implied Message Fields").

use std::collections::BTreeMap;

use super::MessageId;
use super::cbor::{self, Reader, Writer};
use super::error::ContentError;
use super::value::{MapKey, Value, decode_map_key};

/// RFC 9581 extended time tag.
const EXTENDED_TIME_TAG: u64 = 1001;

/// What a receiver knows about a message besides its content.
///
/// ```cddl
/// MessageDerivedValues = [
///     messageId: MessageId,
///     hubAcceptedTimestamp: Timestamp,
///     mlsGroupId: bstr,                  ; value always available {12}
///     senderLeafIndex: uint .size 4,     ; value always available {13}
///     senderClientUrl: uri               ; {14},
///     senderUserUrl: uri,                ; "From" {15}
///     roomUrl: uri                       ; "To"   {16}
/// ]
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageDerivedValues {
    /// The message's ID.
    pub message_id: MessageId,
    /// When the hub accepted the message.
    pub hub_accepted_timestamp: Timestamp,
    /// The MLS group ID.
    pub mls_group_id: Vec<u8>,
    /// The sender's MLS leaf index.
    pub sender_leaf_index: u32,
    /// The sender's client URL.
    pub sender_client_url: String,
    /// The sender's user URL ("From").
    pub sender_user_url: String,
    /// The room URL ("To").
    pub room_url: String,
}

/// The hub's acceptance time.
///
/// ```cddl
/// Timestamp = MsecsSinceEpoch / ExtendedTime
/// ; milliseconds since start of UNIX epoch
/// MsecsSinceEpoch = uint .size 8
/// ; extended time from RFC9581
/// ExtendedTime = #6.1001({* name => value })
/// name = int / tstr .size (1..255)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timestamp {
    /// Milliseconds since the UNIX epoch.
    Millis(u64),
    /// An RFC 9581 extended time map (integer or text keys). Values built in code are
    /// not checked against the data model; decoded ones are.
    Extended(BTreeMap<MapKey, Value>),
}

impl MessageDerivedValues {
    /// Decodes derived values, accepting only deterministic CBOR with no trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ContentError> {
        const FIELD: &str = "MessageDerivedValues";
        let mut r = Reader::new(bytes);
        let (len, head) = r.array(FIELD)?;
        if len != 7 {
            let (at, expected, found) = (head.at, "7", len as u64);
            return Err(ContentError::WrongArrayLength {
                field: FIELD,
                at,
                expected,
                found,
            });
        }
        let values = Self {
            message_id: MessageId(r.fixed_bytes("MessageDerivedValues.messageId")?),
            hub_accepted_timestamp: Timestamp::decode(&mut r)?,
            mls_group_id: r.bytes("MessageDerivedValues.mlsGroupId")?.to_vec(),
            sender_leaf_index: r.uint("MessageDerivedValues.senderLeafIndex", u32::MAX.into())?
                as u32,
            sender_client_url: r.text("MessageDerivedValues.senderClientUrl")?.to_owned(),
            sender_user_url: r.text("MessageDerivedValues.senderUserUrl")?.to_owned(),
            room_url: r.text("MessageDerivedValues.roomUrl")?.to_owned(),
        };
        r.finish()?;
        Ok(values)
    }

    /// Encodes the derived values in deterministic CBOR.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.array(7);
        w.bytes(&self.message_id.0);
        self.hub_accepted_timestamp.encode(&mut w);
        w.bytes(&self.mls_group_id);
        w.uint(self.sender_leaf_index.into());
        w.text(&self.sender_client_url);
        w.text(&self.sender_user_url);
        w.text(&self.room_url);
        w.into_bytes()
    }
}

impl Timestamp {
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Millis(millis) => w.uint(*millis),
            Self::Extended(entries) => {
                w.head(cbor::MAJOR_TAG, EXTENDED_TIME_TAG);
                w.map(entries.len());
                for (key, value) in entries {
                    key.encode(w);
                    value.encode(w);
                }
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, ContentError> {
        const FIELD: &str = "MessageDerivedValues.hubAcceptedTimestamp";
        let head = r.head(FIELD)?;
        match (head.major, head.arg) {
            (cbor::MAJOR_UNSIGNED, millis) => Ok(Self::Millis(millis)),
            (cbor::MAJOR_TAG, EXTENDED_TIME_TAG) => {
                let (len, _) = r.map(FIELD)?;
                let mut entries = BTreeMap::new();
                let mut previous: &[u8] = &[];
                for _ in 0..len {
                    let at = r.position();
                    let key = decode_map_key(r, FIELD, &mut previous, false)?;
                    if matches!(&key, MapKey::Text(t) if t.is_empty() || t.len() > 255) {
                        let reason = "text keys must be 1 to 255 bytes long";
                        return Err(ContentError::InvalidMapKey {
                            field: FIELD,
                            at,
                            reason,
                        });
                    }
                    // The tag is level 1 and the map level 2, as in an extension.
                    entries.insert(key, Value::decode(r, 3)?);
                }
                Ok(Self::Extended(entries))
            }
            _ => Err(cbor::unexpected(
                FIELD,
                &head,
                "unsigned integer or tag 1001",
            )),
        }
    }
}
