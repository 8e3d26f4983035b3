//! Fetch key material (draft-ietf-mimi-protocol-06 section 5.2):
//! `POST /keyMaterial/{targetUser}`.

use std::io::{Read, Write};

use openmls::prelude::{
    Capabilities, Credential, KeyPackageIn, RequiredCapabilitiesExtension, SignaturePublicKey,
    VerifiableCiphersuite,
};
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::error::{FramingError, decode_exact, encode};
use super::{IdentifierUri, Protocol};

/// The request body of `POST /keyMaterial/{targetUser}`.
///
/// ```text
/// struct {
///     Protocol protocol;
///     IdentifierUri requestingUser;
///     IdentifierUri targetUser;
///     IdentifierUri roomId;
///     select (protocol) {
///         case mls10:
///             CipherSuite acceptableCiphersuites<V>;
///             RequiredCapabilities requiredCapabilities;
///             SignaturePublicKey requesterSignatureKey;
///             Credential requesterCredential;
///             /* SignWithLabel(requesterSignatureKey,              */
///             /*   "KeyMaterialRequestTBS", KeyMaterialRequestTBS) */
///             opaque key_material_request_signature<V>;
///     };
/// } KeyMaterialRequest;
/// ```
///
/// `room_id` is empty when the request is not made in the context of a room. Cipher
/// suites are kept as raw code points ([`VerifiableCiphersuite`]) so that a request
/// listing suites we do not implement (or GREASE values) still decodes. The signature
/// is produced and checked by the caller over [`KeyMaterialRequest::tbs_bytes`].
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct KeyMaterialRequest {
    /// The end-to-end protocol.
    pub protocol: Protocol,
    /// The user on whose behalf key material is requested.
    pub requesting_user: IdentifierUri,
    /// The user whose key material is requested.
    pub target_user: IdentifierUri,
    /// The room the key material is for; empty outside a room context.
    pub room_id: IdentifierUri,
    /// Acceptable MLS cipher suites; never empty.
    pub acceptable_ciphersuites: Vec<VerifiableCiphersuite>,
    /// Capabilities the key material must support.
    pub required_capabilities: RequiredCapabilitiesExtension,
    /// The requester's signature key.
    pub requester_signature_key: SignaturePublicKey,
    /// The requester's credential.
    pub requester_credential: Credential,
    /// `SignWithLabel(requesterSignatureKey, "KeyMaterialRequestTBS", KeyMaterialRequestTBS)`.
    pub key_material_request_signature: VLBytes,
}

/// The signed part of a [`KeyMaterialRequest`].
///
/// ```text
/// struct {
///     Protocol protocol;
///     IdentifierUri requestingUser;
///     IdentifierUri targetUser;
///     IdentifierUri roomId;
///     select (protocol) {
///         case mls10:
///             CipherSuite acceptableCiphersuites<V>;
///             RequiredCapabilities requiredCapabilities;
///             SignaturePublicKey requesterSignatureKey;
///             Credential requesterCredential;
///     };
/// } KeyMaterialRequestTBS;
/// ```
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct KeyMaterialRequestTBS {
    /// See [`KeyMaterialRequest::protocol`].
    pub protocol: Protocol,
    /// See [`KeyMaterialRequest::requesting_user`].
    pub requesting_user: IdentifierUri,
    /// See [`KeyMaterialRequest::target_user`].
    pub target_user: IdentifierUri,
    /// See [`KeyMaterialRequest::room_id`].
    pub room_id: IdentifierUri,
    /// See [`KeyMaterialRequest::acceptable_ciphersuites`].
    pub acceptable_ciphersuites: Vec<VerifiableCiphersuite>,
    /// See [`KeyMaterialRequest::required_capabilities`].
    pub required_capabilities: RequiredCapabilitiesExtension,
    /// See [`KeyMaterialRequest::requester_signature_key`].
    pub requester_signature_key: SignaturePublicKey,
    /// See [`KeyMaterialRequest::requester_credential`].
    pub requester_credential: Credential,
}

impl KeyMaterialRequest {
    const NAME: &'static str = "KeyMaterialRequest";

    /// Decodes a request body, rejecting trailing bytes and an empty cipher suite list.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        let request: Self = decode_exact(Self::NAME, bytes)?;
        request.check().map_err(|reason| FramingError::Malformed {
            message: Self::NAME,
            reason,
        })?;
        Ok(request)
    }

    /// Encodes the request body.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        self.check().map_err(|reason| FramingError::Encode {
            message: Self::NAME,
            reason,
        })?;
        encode(Self::NAME, self)
    }

    /// The signed content.
    pub fn tbs(&self) -> KeyMaterialRequestTBS {
        KeyMaterialRequestTBS {
            protocol: self.protocol,
            requesting_user: self.requesting_user.clone(),
            target_user: self.target_user.clone(),
            room_id: self.room_id.clone(),
            acceptable_ciphersuites: self.acceptable_ciphersuites.clone(),
            required_capabilities: self.required_capabilities.clone(),
            requester_signature_key: self.requester_signature_key.clone(),
            requester_credential: self.requester_credential.clone(),
        }
    }

    /// The encoded `KeyMaterialRequestTBS`, the content for `SignWithLabel` /
    /// `VerifyWithLabel` with label `"KeyMaterialRequestTBS"`.
    pub fn tbs_bytes(&self) -> Result<Vec<u8>, FramingError> {
        encode("KeyMaterialRequestTBS", &self.tbs())
    }

    fn check(&self) -> Result<(), String> {
        if self.acceptable_ciphersuites.is_empty() {
            return Err(
                "acceptableCiphersuites is empty; the draft requires a non-empty list".into(),
            );
        }
        Ok(())
    }
}

impl KeyMaterialRequestTBS {
    /// Combines the signed content with its signature into a request.
    pub fn into_request(self, signature: Vec<u8>) -> KeyMaterialRequest {
        KeyMaterialRequest {
            protocol: self.protocol,
            requesting_user: self.requesting_user,
            target_user: self.target_user,
            room_id: self.room_id,
            acceptable_ciphersuites: self.acceptable_ciphersuites,
            required_capabilities: self.required_capabilities,
            requester_signature_key: self.requester_signature_key,
            requester_credential: self.requester_credential,
            key_material_request_signature: signature.into(),
        }
    }

    /// Encodes the signed content.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode("KeyMaterialRequestTBS", self)
    }
}

/// The status for the target user as a whole.
///
/// ```text
/// enum {
///     success(0);
///     partialSuccess(1);
///     incompatibleProtocol(2);
///     noCompatibleMaterial(3);
///     userUnknown(4);
///     noConsent(5);
///     noConsentForThisRoom(6);
///     userDeleted(7);
///     (255)
/// } KeyMaterialUserCode;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum KeyMaterialUserCode {
    /// Key material for every client of the user.
    Success = 0,
    /// Key material for at least one client.
    PartialSuccess = 1,
    /// The protocol is not supported by a provider or by any client.
    IncompatibleProtocol = 2,
    /// No client had material matching `requiredCapabilities`.
    NoCompatibleMaterial = 3,
    /// The target user is not known.
    UserUnknown = 4,
    /// The requester has no consent to fetch key material.
    NoConsent = 5,
    /// No consent for this room (there may be for another).
    NoConsentForThisRoom = 6,
    /// The user existed and was deleted.
    UserDeleted = 7,
}

impl KeyMaterialUserCode {
    /// Whether a response with this code may list clients: only `success`,
    /// `partialSuccess` and `noCompatibleMaterial` ("For any other user code, the
    /// provider MUST NOT populate the clients list").
    pub fn may_list_clients(self) -> bool {
        matches!(
            self,
            KeyMaterialUserCode::Success
                | KeyMaterialUserCode::PartialSuccess
                | KeyMaterialUserCode::NoCompatibleMaterial
        )
    }
}

/// The status for one client.
///
/// ```text
/// enum {
///     success(0);
///     keyMaterialExhausted(1),
///     nothingCompatible(2),
///     (255)
/// } KeyMaterialClientCode;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum KeyMaterialClientCode {
    /// A KeyPackage follows.
    Success = 0,
    /// The client has no key material left.
    KeyMaterialExhausted = 1,
    /// The client has nothing matching `requiredCapabilities`.
    NothingCompatible = 2,
}

/// Key material (or its absence) for one client of the target user.
///
/// ```text
/// struct {
///     KeyMaterialClientCode clientStatus;
///     IdentifierUri clientUri;
///     select (protocol) {
///         case mls10:
///             select (clientStatus) {
///                 case success:
///                     KeyPackage keyPackage;
///                 case nothingCompatible:
///                     optional<Capabilities> clientCapabilities;
///             };
///     };
/// } ClientKeyMaterial;
/// ```
///
/// `clientStatus` is [`ClientMaterial::code`]; it is separated from its `select` by
/// `clientUri`, so this struct is encoded by hand.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientKeyMaterial {
    /// The client's URI.
    pub client_uri: IdentifierUri,
    /// The status and what it selects.
    pub material: ClientMaterial,
}

/// `clientStatus` with the fields it selects.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMaterial {
    /// `success`: a KeyPackage (untrusted; validate with openmls).
    Success(Box<KeyPackageIn>),
    /// `keyMaterialExhausted`.
    KeyMaterialExhausted,
    /// `nothingCompatible`, optionally with the client's capabilities (they may be
    /// withheld for privacy).
    NothingCompatible(Option<Capabilities>),
}

impl ClientMaterial {
    /// The `clientStatus` code.
    pub fn code(&self) -> KeyMaterialClientCode {
        match self {
            ClientMaterial::Success(_) => KeyMaterialClientCode::Success,
            ClientMaterial::KeyMaterialExhausted => KeyMaterialClientCode::KeyMaterialExhausted,
            ClientMaterial::NothingCompatible(_) => KeyMaterialClientCode::NothingCompatible,
        }
    }
}

impl Size for ClientKeyMaterial {
    fn tls_serialized_len(&self) -> usize {
        let selected = match &self.material {
            ClientMaterial::Success(key_package) => key_package.tls_serialized_len(),
            ClientMaterial::KeyMaterialExhausted => 0,
            ClientMaterial::NothingCompatible(capabilities) => capabilities.tls_serialized_len(),
        };
        self.material.code().tls_serialized_len() + self.client_uri.tls_serialized_len() + selected
    }
}

impl Serialize for ClientKeyMaterial {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let mut written = self.material.code().tls_serialize(writer)?;
        written += self.client_uri.tls_serialize(writer)?;
        written += match &self.material {
            ClientMaterial::Success(key_package) => key_package.tls_serialize(writer)?,
            ClientMaterial::KeyMaterialExhausted => 0,
            ClientMaterial::NothingCompatible(capabilities) => {
                capabilities.tls_serialize(writer)?
            }
        };
        Ok(written)
    }
}

impl Deserialize for ClientKeyMaterial {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let code = KeyMaterialClientCode::tls_deserialize(bytes)?;
        let client_uri = IdentifierUri::tls_deserialize(bytes)?;
        let material = match code {
            KeyMaterialClientCode::Success => {
                ClientMaterial::Success(Box::new(KeyPackageIn::tls_deserialize(bytes)?))
            }
            KeyMaterialClientCode::KeyMaterialExhausted => ClientMaterial::KeyMaterialExhausted,
            KeyMaterialClientCode::NothingCompatible => {
                ClientMaterial::NothingCompatible(Option::<Capabilities>::tls_deserialize(bytes)?)
            }
        };
        Ok(ClientKeyMaterial {
            client_uri,
            material,
        })
    }
}

/// The response body of `POST /keyMaterial/{targetUser}`.
///
/// ```text
/// struct {
///     Protocol protocol;
///     KeyMaterialUserCode userStatus;
///     IdentifierUri userUri;
///     ClientKeyMaterial clients<V>;
/// } KeyMaterialResponse;
/// ```
///
/// Decoding rejects a non-empty `clients` list unless
/// [`KeyMaterialUserCode::may_list_clients`].
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct KeyMaterialResponse {
    /// The end-to-end protocol.
    pub protocol: Protocol,
    /// The status for the user.
    pub user_status: KeyMaterialUserCode,
    /// The target user's URI.
    pub user_uri: IdentifierUri,
    /// One entry per client.
    pub clients: Vec<ClientKeyMaterial>,
}

impl KeyMaterialResponse {
    const NAME: &'static str = "KeyMaterialResponse";

    /// Decodes a response body, rejecting trailing bytes and a clients list where the
    /// user status forbids one.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        let response: Self = decode_exact(Self::NAME, bytes)?;
        response.check().map_err(|reason| FramingError::Malformed {
            message: Self::NAME,
            reason,
        })?;
        Ok(response)
    }

    /// Encodes the response body.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        self.check().map_err(|reason| FramingError::Encode {
            message: Self::NAME,
            reason,
        })?;
        encode(Self::NAME, self)
    }

    fn check(&self) -> Result<(), String> {
        if !self.user_status.may_list_clients() && !self.clients.is_empty() {
            return Err(format!(
                "userStatus {:?} must not come with a clients list, but {} client(s) are listed",
                self.user_status,
                self.clients.len()
            ));
        }
        Ok(())
    }
}
