//! The group state a new follower fetches from the hub (an Entente extension of
//! draft-ietf-mimi-protocol-06: see docs/DIVERGENCES.md).
//!
//! The draft says the hub, the followers and the clients all agree on the group
//! state, but gives a follower whose first client was just added no way to get it:
//! the Welcome is encrypted to the client. `POST /groupState/{roomId}` answers a
//! participating follower with the hub's current GroupInfo and ratchet tree, which
//! the follower verifies like an external joiner would.

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::error::{FramingError, decode_exact, encode};

/// ```text
/// struct {
///   /* an MLSMessage carrying the GroupInfo of the current epoch */
///   opaque group_info<V>;
///   /* the ratchet tree of the current epoch (ratchet_tree extension data) */
///   opaque ratchet_tree<V>;
/// } RoomGroupState;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct RoomGroupState {
    /// An MLSMessage carrying a GroupInfo.
    pub group_info: VLBytes,
    /// The ratchet tree.
    pub ratchet_tree: VLBytes,
}

impl RoomGroupState {
    const NAME: &'static str = "RoomGroupState";

    /// Decodes, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let s = RoomGroupState {
            group_info: vec![1, 2, 3].into(),
            ratchet_tree: vec![4].into(),
        };
        let b = s.encode().unwrap();
        assert_eq!(b, [3, 1, 2, 3, 1, 4]);
        assert_eq!(RoomGroupState::decode(&b).unwrap(), s);
        assert!(RoomGroupState::decode(&b[..5]).is_err());
        let mut longer = b.clone();
        longer.push(0);
        assert!(RoomGroupState::decode(&longer).is_err());
    }
}
