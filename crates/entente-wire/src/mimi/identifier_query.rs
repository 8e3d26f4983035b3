//! Find internal address (draft-ietf-mimi-protocol-06 section 5.8):
//! `POST /identifierQuery/{domain}`.

use super::app_data::AppDataDictionary;
use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::IdentifierUri;
use super::error::{FramingError, decode_exact, encode};

/// ```text
/// enum {
///   reserved(0),
///   handle(1),
///   nick(2),
///   email(3),
///   phone(4),
///   partialName(5),
///   wholeProfile(6),
///   oidcStdClaim(7),
///   vcardField(8),
///   (255)
/// } SearchIdentifierType;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum SearchIdentifierType {
    /// The whole handle URI matches exactly.
    Handle = 1,
    /// The nickname or handle user part matches exactly.
    Nick = 2,
    /// An RFC 5322 addr-spec matches exactly.
    Email = 3,
    /// An international phone number (`+...`) matches exactly.
    Phone = 4,
    /// A case-insensitive substring of a name field.
    PartialName = 5,
    /// A substring of any searchable profile field.
    WholeProfile = 6,
    /// An OIDC standard claim matches exactly.
    OidcStdClaim = 7,
    /// A vCard property matches exactly.
    VcardField = 8,
}

/// `searchType` with the field it selects.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum SearchKind {
    /// `handle`.
    #[tls_codec(discriminant = 1)]
    Handle,
    /// `nick`.
    #[tls_codec(discriminant = 2)]
    Nick,
    /// `email`.
    #[tls_codec(discriminant = 3)]
    Email,
    /// `phone`.
    #[tls_codec(discriminant = 4)]
    Phone,
    /// `partialName`.
    #[tls_codec(discriminant = 5)]
    PartialName,
    /// `wholeProfile`.
    #[tls_codec(discriminant = 6)]
    WholeProfile,
    /// `oidcStdClaim`, naming the claim.
    #[tls_codec(discriminant = 7)]
    OidcStdClaim {
        /// The OIDC claim name (e.g. `given_name`).
        claim_name: VLBytes,
    },
    /// `vcardField`, naming the property.
    #[tls_codec(discriminant = 8)]
    VcardField {
        /// The vCard property name (e.g. `ORG`).
        property_name: VLBytes,
    },
}

impl SearchKind {
    /// The `searchType` code.
    pub fn search_type(&self) -> SearchIdentifierType {
        match self {
            SearchKind::Handle => SearchIdentifierType::Handle,
            SearchKind::Nick => SearchIdentifierType::Nick,
            SearchKind::Email => SearchIdentifierType::Email,
            SearchKind::Phone => SearchIdentifierType::Phone,
            SearchKind::PartialName => SearchIdentifierType::PartialName,
            SearchKind::WholeProfile => SearchIdentifierType::WholeProfile,
            SearchKind::OidcStdClaim { .. } => SearchIdentifierType::OidcStdClaim,
            SearchKind::VcardField { .. } => SearchIdentifierType::VcardField,
        }
    }
}

/// One condition of a query; all must match.
///
/// ```text
/// struct {
///   SearchIdentifierType searchType;
///   select(type) {
///     case oidcStdClaim:
///       opaque claimName<V>;
///     case vcardField:
///       opaque propertyName<V>;
///   };
///   opaque searchValue<V>;  /* a UTF8 string */
/// } QueryElement;
/// ```
///
/// `select(type)` is read as `select(searchType)`.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct QueryElement {
    /// `searchType` and what it selects.
    pub search: SearchKind,
    /// The value searched for (UTF-8).
    pub search_value: VLBytes,
}

/// The request body of `POST /identifierQuery/{domain}`.
///
/// ```text
/// struct {
///   QueryElement query_elements<V>;
///   AppDataDictionary id_request_extensions;
/// } IdentifierRequest;
/// ```
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct IdentifierRequest {
    /// The conditions (AND).
    pub query_elements: Vec<QueryElement>,
    /// Extension point.
    pub id_request_extensions: AppDataDictionary,
}

/// ```text
/// enum {
///   success(0),
///   notFound(1),
///   ambiguous(2),
///   forbidden(3),
///   unsupportedField(4),
///   (255)
/// } IdentifierQueryCode;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum IdentifierQueryCode {
    /// At least one result.
    Success = 0,
    /// No result.
    NotFound = 1,
    /// The query must match more exactly.
    Ambiguous = 2,
    /// Queries (or this combination of fields) are not allowed.
    Forbidden = 3,
    /// A queried field is not supported.
    UnsupportedField = 4,
}

/// ```text
/// enum {
///   reserved(0),
///   oidcStdClaim(7),
///   vcardField(8),
///   (255)
/// } FieldSource;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum FieldSource {
    /// An OIDC standard claim.
    OidcStdClaim = 7,
    /// A vCard property.
    VcardField = 8,
}

/// ```text
/// struct {
///   FieldSource fieldSource;
///   string fieldName;
///   opaque fieldValue<V>;
/// } ProfileField;
/// ```
///
/// `string` is read as `opaque<V>` holding UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ProfileField {
    /// Where the field name comes from.
    pub field_source: FieldSource,
    /// The claim or property name.
    pub field_name: String,
    /// The value.
    pub field_value: VLBytes,
}

/// ```text
/// struct {
///   IdentifierUri stableUri;
///   ProfileField fields<V>;
/// } UserProfile;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct UserProfile {
    /// The user's stable URI.
    pub stable_uri: IdentifierUri,
    /// Profile fields the user's policy lets the provider reveal.
    pub fields: Vec<ProfileField>,
}

/// The response body of `POST /identifierQuery/{domain}`.
///
/// ```text
/// struct {
///   IdentifierQueryCode responseCode;
///   IdentifierUri uri<V>;
///   UserProfile foundProfiles<V>;
///   AppDataDictionary id_response_extensions;
/// } IdentifierResponse;
/// ```
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct IdentifierResponse {
    /// The result.
    pub response_code: IdentifierQueryCode,
    /// Matching URIs.
    pub uri: Vec<IdentifierUri>,
    /// Matching profiles.
    pub found_profiles: Vec<UserProfile>,
    /// Extension point.
    pub id_response_extensions: AppDataDictionary,
}

impl IdentifierRequest {
    const NAME: &'static str = "IdentifierRequest";

    /// Decodes a request body, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes the request body.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }
}

impl IdentifierResponse {
    const NAME: &'static str = "IdentifierResponse";

    /// Decodes a response body, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes the response body.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }
}
