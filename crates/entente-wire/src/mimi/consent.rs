//! Convey explicit consent (draft-ietf-mimi-protocol-06 section 5.7):
//! `POST /requestConsent/{targetDomain}` and `POST /updateConsent/{requesterDomain}`.

use std::io::{Read, Write};

use openmls::prelude::KeyPackageIn;
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize};

use super::IdentifierUri;
use super::app_data::AppDataDictionary;
use super::error::{FramingError, decode_exact, encode};

/// What a [`ConsentEntry`] asks for or conveys.
///
/// ```text
/// enum {
///   cancel(0),
///   request(1),
///   grant(2),
///   revoke(3),
///   (255)
/// } ConsentOperation;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum ConsentOperation {
    /// Withdraws an earlier request with the same scope (requestConsent).
    Cancel = 0,
    /// Asks the target for consent (requestConsent).
    Request = 1,
    /// The target consents (updateConsent).
    Grant = 2,
    /// The target revokes or preemptively denies consent (updateConsent).
    Revoke = 3,
}

/// Who may add whom, and where.
///
/// ```text
/// struct {
///   IdentifierUri requesterUri;
///   IdentifierUri targetUri;
///   optional<RoomId> roomId;
/// } ConsentScope;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ConsentScope {
    /// The user who will later request the target's key material.
    pub requester_uri: IdentifierUri,
    /// The user whose consent it is.
    pub target_uri: IdentifierUri,
    /// The one room the consent is for; `None` for any room.
    pub room_id: Option<IdentifierUri>,
}

/// The body of `requestConsent` and `updateConsent`.
///
/// ```text
/// struct {
///   ConsentOperation consentOperation;
///   IdentifierUri requesterUri;
///   IdentifierUri targetUri;
///   optional<RoomId> roomId;
///   select (consentOperation) {
///       case grant:
///           KeyPackage clientKeyPackages<V>;
///   };
///   AppDataDictionary consent_extensions;
/// } ConsentEntry;
/// ```
///
/// `client_key_packages` exists on the wire only for `grant`; encoding another
/// operation with KeyPackages is refused. `RoomId` is carried as an
/// [`IdentifierUri`] (the same encoding).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentEntry {
    /// The operation.
    pub operation: ConsentOperation,
    /// The requester (requestConsent: a user of the sending provider; updateConsent:
    /// a user of the receiving provider).
    pub requester_uri: IdentifierUri,
    /// The target (requestConsent: a user of the receiving provider; updateConsent:
    /// a user of the sending provider).
    pub target_uri: IdentifierUri,
    /// The one room the entry is about; `None` for any room.
    pub room_id: Option<IdentifierUri>,
    /// KeyPackages of the target's clients (only with `grant`; may be empty).
    pub client_key_packages: Vec<KeyPackageIn>,
    /// Extension point.
    pub consent_extensions: AppDataDictionary,
}

impl ConsentEntry {
    const NAME: &'static str = "ConsentEntry";

    /// Decodes a request body, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes the request body.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        if self.operation != ConsentOperation::Grant && !self.client_key_packages.is_empty() {
            return Err(FramingError::Encode {
                message: Self::NAME,
                reason: "clientKeyPackages exist only in a grant".into(),
            });
        }
        encode(Self::NAME, self)
    }

    /// The entry's scope.
    pub fn scope(&self) -> ConsentScope {
        ConsentScope {
            requester_uri: self.requester_uri.clone(),
            target_uri: self.target_uri.clone(),
            room_id: self.room_id.clone(),
        }
    }
}

impl Size for ConsentEntry {
    fn tls_serialized_len(&self) -> usize {
        let packages = if self.operation == ConsentOperation::Grant {
            self.client_key_packages.tls_serialized_len()
        } else {
            0
        };
        self.operation.tls_serialized_len()
            + self.requester_uri.tls_serialized_len()
            + self.target_uri.tls_serialized_len()
            + self.room_id.tls_serialized_len()
            + packages
            + self.consent_extensions.tls_serialized_len()
    }
}

impl Serialize for ConsentEntry {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let mut written = self.operation.tls_serialize(writer)?;
        written += self.requester_uri.tls_serialize(writer)?;
        written += self.target_uri.tls_serialize(writer)?;
        written += self.room_id.tls_serialize(writer)?;
        if self.operation == ConsentOperation::Grant {
            written += self.client_key_packages.tls_serialize(writer)?;
        } else if !self.client_key_packages.is_empty() {
            return Err(tls_codec::Error::EncodingError(
                "clientKeyPackages exist only in a grant".into(),
            ));
        }
        written += self.consent_extensions.tls_serialize(writer)?;
        Ok(written)
    }
}

impl Deserialize for ConsentEntry {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let operation = ConsentOperation::tls_deserialize(bytes)?;
        let requester_uri = IdentifierUri::tls_deserialize(bytes)?;
        let target_uri = IdentifierUri::tls_deserialize(bytes)?;
        let room_id = Option::<IdentifierUri>::tls_deserialize(bytes)?;
        let client_key_packages = if operation == ConsentOperation::Grant {
            Vec::<KeyPackageIn>::tls_deserialize(bytes)?
        } else {
            Vec::new()
        };
        let consent_extensions = AppDataDictionary::tls_deserialize(bytes)?;
        Ok(ConsentEntry {
            operation,
            requester_uri,
            target_uri,
            room_id,
            client_key_packages,
            consent_extensions,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(operation: ConsentOperation, room: Option<&str>) -> ConsentEntry {
        ConsentEntry {
            operation,
            requester_uri: IdentifierUri::new("mimi://a.example/u/alice"),
            target_uri: IdentifierUri::new("mimi://b.example/u/bob"),
            room_id: room.map(IdentifierUri::new),
            client_key_packages: Vec::new(),
            consent_extensions: AppDataDictionary::default(),
        }
    }

    #[test]
    fn round_trips_every_operation_with_and_without_a_room() {
        for op in [
            ConsentOperation::Cancel,
            ConsentOperation::Request,
            ConsentOperation::Grant,
            ConsentOperation::Revoke,
        ] {
            for room in [None, Some("mimi://a.example/r/club")] {
                let e = entry(op, room);
                let bytes = e.encode().unwrap();
                assert_eq!(bytes.len(), e.tls_serialized_len());
                assert_eq!(ConsentEntry::decode(&bytes).unwrap(), e);
            }
        }
    }

    #[test]
    fn a_request_has_no_key_package_vector_and_a_grant_has_one() {
        let request = entry(ConsentOperation::Request, None).encode().unwrap();
        let grant = entry(ConsentOperation::Grant, None).encode().unwrap();
        // The grant carries an empty clientKeyPackages vector: one length byte more.
        assert_eq!(grant.len(), request.len() + 1);
        assert_eq!(request[0], 1);
        assert_eq!(grant[0], 2);
    }

    #[test]
    fn rejects_unknown_operations_truncation_and_trailing_bytes() {
        let mut bytes = entry(ConsentOperation::Request, None).encode().unwrap();
        bytes[0] = 4;
        assert!(matches!(
            ConsentEntry::decode(&bytes),
            Err(FramingError::UnknownValue { value: 4, .. })
        ));
        bytes[0] = 1;
        assert!(ConsentEntry::decode(&bytes[..bytes.len() - 1]).is_err());
        bytes.push(0);
        assert!(matches!(
            ConsentEntry::decode(&bytes),
            Err(FramingError::TrailingBytes { .. })
        ));
    }
}
