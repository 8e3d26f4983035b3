//! MIMI identifiers: provider domains, users, clients (devices) and rooms.
//!
//! draft-ietf-mimi-protocol-06 section 3 names everything with a `mimi:` URI whose
//! authority is the provider's domain:
//!
//! | kind   | URI                                  | type        |
//! |--------|--------------------------------------|-------------|
//! | domain | `mimi://a.example`                   | [`Domain`]  |
//! | user   | `mimi://a.example/u/alice`           | [`UserId`]  |
//! | client | `mimi://a.example/d/alice/phone-1`   | [`ClientId`]|
//! | room   | `mimi://a.example/r/clubhouse`       | [`RoomId`]  |
//!
//! Users also have a human form, `alice@a.example` ([`UserId::parse_handle`],
//! [`UserId::handle`]).
//!
//! # Normalisation and limits
//!
//! Every constructor validates and normalises, so two values that compare equal name
//! the same thing and `Display` always prints the canonical form:
//!
//! - **Domains** are converted with IDNA (UTS #46, STD3 rules) to lowercase A-labels
//!   (`Bücher.Example` becomes `xn--bcher-kva.example`). A domain is at most
//!   [`MAX_DOMAIN_LEN`] (253) octets, each label at most [`MAX_LABEL_LEN`] (63),
//!   labels use `a-z 0-9 -` and neither start nor end with `-`. IP literals
//!   (`[::1]`, `192.0.2.1`), ports, user info, paths, queries, fragments, empty labels
//!   and a trailing dot are rejected. Single-label names (`localhost`) are allowed.
//! - **User names** (the local part of a user) use `a-z 0-9 . _ -`, do not start or end
//!   with `.`, contain no `..`, and are at most [`MAX_LOCAL_LEN`] (64) characters.
//!   ASCII upper case is lowercased, because people expect `Alice@A.example` and
//!   `alice@a.example` to be the same person.
//! - **Device ids** and **room ids** use `A-Z a-z 0-9 _ -` (the base64url alphabet, so
//!   random ids fit), are case-sensitive and at most [`MAX_LOCAL_LEN`] characters.
//! - URIs use the `mimi` scheme (matched case-insensitively, printed lowercase) and carry
//!   no user info, port, query or fragment.
//!
//! ```
//! use entente_wire::ids::{ClientId, UserId};
//!
//! let alice = UserId::parse_handle("Alice@A.Example")?;
//! assert_eq!(alice.to_uri(), "mimi://a.example/u/alice");
//! let phone = ClientId::new(&alice, "phone-1")?;
//! assert_eq!(phone.to_string(), "mimi://a.example/d/alice/phone-1");
//! assert_eq!(phone.user(), &alice);
//! # Ok::<(), entente_wire::ids::IdError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest domain, in octets of its A-label form (RFC 1035 section 2.3.4, without the
/// trailing root dot).
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest domain label, in octets (RFC 1035 section 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest user name, device id or room id, in characters (all are ASCII).
pub const MAX_LOCAL_LEN: usize = 64;

/// Inputs longer than this are rejected before any further processing, so a hostile
/// peer cannot make us run IDNA over megabytes. Generous: a 253-octet A-label domain
/// can be several times longer in its Unicode form.
const MAX_INPUT_LEN: usize = 2048;

const SCHEME: &str = "mimi";
const USER_SEGMENT: &str = "u";
const CLIENT_SEGMENT: &str = "d";
const ROOM_SEGMENT: &str = "r";

/// What an identifier or identifier part is, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// A provider domain.
    Domain,
    /// The local part of a user id.
    UserName,
    /// The device part of a client id.
    DeviceId,
    /// The local part of a room id.
    RoomId,
}

impl IdKind {
    fn allowed(self) -> &'static str {
        match self {
            IdKind::Domain => "a-z 0-9 - in dot-separated labels, or Unicode letters",
            IdKind::UserName => "a-z 0-9 . _ -",
            IdKind::DeviceId | IdKind::RoomId => "A-Z a-z 0-9 _ -",
        }
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::Domain => "domain",
            IdKind::UserName => "user name",
            IdKind::DeviceId => "device id",
            IdKind::RoomId => "room id",
        })
    }
}

/// The kind of entity a MIMI URI names, from its first path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriKind {
    /// `mimi://domain` (no path).
    Provider,
    /// `mimi://domain/u/...`
    User,
    /// `mimi://domain/d/...`
    Client,
    /// `mimi://domain/r/...`
    Room,
}

impl fmt::Display for UriKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriKind::Provider => "provider (mimi://domain)",
            UriKind::User => "user (mimi://domain/u/name)",
            UriKind::Client => "client (mimi://domain/d/user/device)",
            UriKind::Room => "room (mimi://domain/r/id)",
        })
    }
}

/// Why an identifier was rejected. Every message names the offending input and says
/// what is allowed instead. The input is whatever the caller or peer supplied; values
/// longer than 80 characters are shortened in messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The input or a required part of it is empty.
    #[error("{kind} is empty; allowed: {}", kind.allowed())]
    Empty {
        /// Which part is empty.
        kind: IdKind,
    },
    /// A character outside the allowed set.
    #[error("{kind} '{value}' contains '{ch}' at position {position}; allowed: {}", kind.allowed())]
    InvalidChar {
        /// Which part is wrong.
        kind: IdKind,
        /// The part as supplied.
        value: String,
        /// The first offending character.
        ch: char,
        /// Its position, counted in characters from 0.
        position: usize,
    },
    /// The part is longer than its limit.
    #[error("{kind} '{value}' is {len} characters long; the maximum is {max}")]
    TooLong {
        /// Which part is too long.
        kind: IdKind,
        /// The part as supplied (shortened).
        value: String,
        /// Its length (characters; octets of the A-label form for domains).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The whole input is far longer than any identifier can be.
    #[error("identifier input is {len} bytes long; no identifier is longer than {max} bytes")]
    InputTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The part starts or ends with a character that is only allowed inside it.
    #[error(
        "{kind} '{value}' starts or ends with '{ch}'; '{ch}' is only allowed between other characters"
    )]
    BadEdge {
        /// Which part is wrong.
        kind: IdKind,
        /// The part as supplied.
        value: String,
        /// The offending character.
        ch: char,
    },
    /// A user name with `..`.
    #[error("user name '{value}' contains '..'; dots must be separated by other characters")]
    ConsecutiveDots {
        /// The user name as supplied.
        value: String,
    },
    /// A domain label longer than 63 octets.
    #[error(
        "domain '{value}' has a label of {len} octets ('{label}'); the maximum is {MAX_LABEL_LEN}"
    )]
    LabelTooLong {
        /// The domain as supplied.
        value: String,
        /// The label (A-label form).
        label: String,
        /// Its length in octets.
        len: usize,
    },
    /// A domain with an empty label (`a..example`, `.example`, `example.`).
    #[error(
        "domain '{value}' has an empty label (leading, trailing or doubled '.'); write it as dot-separated non-empty labels like 'a.example'"
    )]
    EmptyLabel {
        /// The domain as supplied.
        value: String,
    },
    /// IDNA (UTS #46) processing rejected a Unicode domain.
    #[error(
        "domain '{value}' is not a valid internationalised domain name (IDNA/UTS #46 processing failed); use letters, digits and '-' in dot-separated labels"
    )]
    Idna {
        /// The domain as supplied.
        value: String,
    },
    /// An IP address literal where a domain name is needed.
    #[error("'{value}' is an IP address; MIMI identifiers need a domain name like 'a.example'")]
    IpLiteral {
        /// The input as supplied.
        value: String,
    },
    /// A port (`:443`).
    #[error(
        "'{value}' has a port or ':'; MIMI identifiers carry a bare domain name without a port"
    )]
    Port {
        /// The input as supplied.
        value: String,
    },
    /// User info in the authority (`user@host`).
    #[error(
        "'{value}' has user info ('...@' before the domain); MIMI URIs carry a bare domain name"
    )]
    UserInfo {
        /// The input as supplied.
        value: String,
    },
    /// A query component (`?...`).
    #[error("'{value}' has a query ('?...'); MIMI identifiers carry none")]
    Query {
        /// The input as supplied.
        value: String,
    },
    /// A fragment component (`#...`).
    #[error("'{value}' has a fragment ('#...'); MIMI identifiers carry none")]
    Fragment {
        /// The input as supplied.
        value: String,
    },
    /// Percent-encoding, which no allowed character needs.
    #[error(
        "'{value}' contains percent-encoding ('%'); MIMI identifiers use only unreserved characters, write them unencoded"
    )]
    PercentEncoded {
        /// The input as supplied.
        value: String,
    },
    /// Not a `mimi:` URI.
    #[error("'{value}' is not a MIMI URI; expected 'mimi://domain/...'")]
    NotMimiUri {
        /// The input as supplied.
        value: String,
    },
    /// A MIMI URI naming a different kind of entity than expected.
    #[error("'{value}' is a {found} URI; expected a {expected} URI")]
    WrongKind {
        /// The input as supplied.
        value: String,
        /// What the URI names.
        found: UriKind,
        /// What the caller asked for.
        expected: UriKind,
    },
    /// A MIMI URI whose path does not have the expected segments.
    #[error("'{value}' has a malformed path; expected a {expected} URI")]
    BadPath {
        /// The input as supplied.
        value: String,
        /// What the caller asked for.
        expected: UriKind,
    },
    /// A handle without exactly one `@` separating user name and domain.
    #[error("'{value}' is not a handle; expected 'name@domain' such as 'alice@a.example'")]
    NotHandle {
        /// The input as supplied.
        value: String,
    },
}

/// A provider domain in canonical form: lowercase A-labels (punycode), validated as
/// described in the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Validates and normalises a domain name. Unicode labels are converted to
    /// A-labels.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        if input.is_empty() {
            return Err(IdError::Empty {
                kind: IdKind::Domain,
            });
        }
        check_input_len(input)?;
        reject_uri_syntax(input)?;
        if let Some((position, ch)) = input
            .chars()
            .enumerate()
            .find(|&(_, c)| c.is_ascii() && !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        {
            return Err(IdError::InvalidChar {
                kind: IdKind::Domain,
                value: shown(input),
                ch,
                position,
            });
        }
        for label in input.split('.') {
            if label.is_empty() {
                return Err(IdError::EmptyLabel {
                    value: shown(input),
                });
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(IdError::BadEdge {
                    kind: IdKind::Domain,
                    value: shown(input),
                    ch: '-',
                });
            }
        }
        // Lengths are checked below with our own messages, so tell IDNA to ignore them.
        let ascii = Uts46::new()
            .to_ascii(
                input.as_bytes(),
                AsciiDenyList::STD3,
                Hyphens::CheckFirstLast,
                DnsLength::Ignore,
            )
            .map_err(|_| IdError::Idna {
                value: shown(input),
            })?
            .into_owned();
        Self::check_ascii(input, &ascii)?;
        Ok(Domain(ascii))
    }

    /// The domain in canonical form (`a.example`, `xn--bcher-kva.example`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The provider URI, `mimi://a.example`.
    pub fn to_uri(&self) -> String {
        format!("{SCHEME}://{}", self.0)
    }

    /// Checks the A-label form IDNA produced. `input` is only used in messages.
    fn check_ascii(input: &str, ascii: &str) -> Result<(), IdError> {
        if ascii.is_empty() || ascii.split('.').any(str::is_empty) {
            return Err(IdError::EmptyLabel {
                value: shown(input),
            });
        }
        if ascii.len() > MAX_DOMAIN_LEN {
            return Err(too_long(IdKind::Domain, input, ascii.len(), MAX_DOMAIN_LEN));
        }
        for label in ascii.split('.') {
            if label.len() > MAX_LABEL_LEN {
                return Err(IdError::LabelTooLong {
                    value: shown(input),
                    label: shown(label),
                    len: label.len(),
                });
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(IdError::BadEdge {
                    kind: IdKind::Domain,
                    value: shown(input),
                    ch: '-',
                });
            }
        }
        // WHATWG URL parsing treats a numeric last label as an IPv4 address, and no
        // real top-level domain is numeric.
        let last = ascii.rsplit('.').next().unwrap_or_default();
        let hex = last.strip_prefix("0x").unwrap_or(last);
        if last.bytes().all(|b| b.is_ascii_digit())
            || (last.starts_with("0x") && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(IdError::IpLiteral {
                value: shown(input),
            });
        }
        Ok(())
    }
}

/// A user: a user name at a provider domain. URI `mimi://a.example/u/alice`, handle
/// `alice@a.example`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId {
    domain: Domain,
    name: String,
}

impl UserId {
    /// Builds a user id from a user name (validated and lowercased) and a domain.
    pub fn new(name: &str, domain: Domain) -> Result<Self, IdError> {
        Ok(UserId {
            domain,
            name: user_name(name)?,
        })
    }

    /// Parses the human form `alice@a.example`.
    pub fn parse_handle(input: &str) -> Result<Self, IdError> {
        let Some((name, domain)) = input.split_once('@') else {
            return Err(IdError::NotHandle {
                value: shown(input),
            });
        };
        if name.is_empty() || domain.is_empty() {
            return Err(IdError::NotHandle {
                value: shown(input),
            });
        }
        let name = user_name(name)?;
        Ok(UserId {
            domain: Domain::parse(domain)?,
            name,
        })
    }

    /// Parses a user URI, `mimi://a.example/u/alice`.
    pub fn parse_uri(input: &str) -> Result<Self, IdError> {
        let uri = MimiUri::parse(input)?;
        match uri.segments.as_slice() {
            [USER_SEGMENT, name] => Ok(UserId {
                domain: uri.domain,
                name: user_name(name)?,
            }),
            _ => Err(uri.mismatch(UriKind::User)),
        }
    }

    /// Parses either form: a `mimi:` URI, or else a handle.
    pub fn parse_any(input: &str) -> Result<Self, IdError> {
        if has_mimi_scheme(input) {
            Self::parse_uri(input)
        } else {
            Self::parse_handle(input)
        }
    }

    /// The provider domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The user name (local part), lowercase.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local part of the URI path; for users, the user name.
    pub fn local_part(&self) -> &str {
        &self.name
    }

    /// The URI, `mimi://a.example/u/alice`. Same as `to_string()`.
    pub fn to_uri(&self) -> String {
        self.to_string()
    }

    /// The human form, `alice@a.example`.
    pub fn handle(&self) -> String {
        format!("{}@{}", self.name, self.domain.as_str())
    }
}

/// A client (device) of a user.
///
/// draft-ietf-mimi-protocol-06 Table 1 only shows `mimi://a.example/d/ClientA1`, which
/// does not say whose client it is. We follow draft-ietf-mimi-content, whose example
/// client URI is `mimi://example.com/d/<user id>/<device>`: the path is
/// `/d/<user name>/<device id>`, so a client URI names its user and a provider can check
/// that a client belongs to the user it claims without a lookup. A client always lives
/// at its user's domain. Single-segment `/d/<id>` URIs are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    user: UserId,
    device: String,
}

impl ClientId {
    /// Builds the id of `user`'s device `device` (validated, case-sensitive).
    pub fn new(user: &UserId, device: &str) -> Result<Self, IdError> {
        Ok(ClientId {
            user: user.clone(),
            device: local_id(IdKind::DeviceId, device)?,
        })
    }

    /// Parses a client URI, `mimi://a.example/d/alice/phone-1`.
    pub fn parse_uri(input: &str) -> Result<Self, IdError> {
        let uri = MimiUri::parse(input)?;
        match uri.segments.as_slice() {
            [CLIENT_SEGMENT, name, device] => {
                let name = user_name(name)?;
                let device = local_id(IdKind::DeviceId, device)?;
                Ok(ClientId {
                    user: UserId {
                        domain: uri.domain,
                        name,
                    },
                    device,
                })
            }
            _ => Err(uri.mismatch(UriKind::Client)),
        }
    }

    /// The user this client belongs to.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The provider domain (the user's).
    pub fn domain(&self) -> &Domain {
        &self.user.domain
    }

    /// The device id, unique among the user's clients.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The local part of the URI path after `/d/`: `alice/phone-1`.
    pub fn local_part(&self) -> String {
        format!("{}/{}", self.user.name, self.device)
    }

    /// The URI, `mimi://a.example/d/alice/phone-1`. Same as `to_string()`.
    pub fn to_uri(&self) -> String {
        self.to_string()
    }
}

/// A room, hosted by the hub provider at its domain: `mimi://a.example/r/clubhouse`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId {
    domain: Domain,
    id: String,
}

impl RoomId {
    /// Builds a room id from its local id (validated, case-sensitive) and hub domain.
    pub fn new(id: &str, domain: Domain) -> Result<Self, IdError> {
        Ok(RoomId {
            domain,
            id: local_id(IdKind::RoomId, id)?,
        })
    }

    /// Parses a room URI, `mimi://a.example/r/clubhouse`.
    pub fn parse_uri(input: &str) -> Result<Self, IdError> {
        let uri = MimiUri::parse(input)?;
        match uri.segments.as_slice() {
            [ROOM_SEGMENT, id] => Ok(RoomId {
                id: local_id(IdKind::RoomId, id)?,
                domain: uri.domain,
            }),
            _ => Err(uri.mismatch(UriKind::Room)),
        }
    }

    /// The hub provider's domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The room's local id.
    pub fn local_part(&self) -> &str {
        &self.id
    }

    /// The URI, `mimi://a.example/r/clubhouse`. Same as `to_string()`.
    pub fn to_uri(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}://{}/{USER_SEGMENT}/{}", self.domain, self.name)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}://{}/{CLIENT_SEGMENT}/{}/{}",
            self.user.domain, self.user.name, self.device
        )
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}://{}/{ROOM_SEGMENT}/{}", self.domain, self.id)
    }
}

impl FromStr for Domain {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::parse(s)
    }
}

/// Accepts both the URI and the handle form ([`UserId::parse_any`]).
impl FromStr for UserId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserId::parse_any(s)
    }
}

impl FromStr for ClientId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClientId::parse_uri(s)
    }
}

impl FromStr for RoomId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RoomId::parse_uri(s)
    }
}

/// Serialises identifiers as their canonical string (URI for users, clients and rooms;
/// the bare domain for domains) and validates on deserialisation. Users deserialise
/// from the URI form only.
macro_rules! serde_as_string {
    ($ty:ty, $parse:path) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                $parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_string!(Domain, Domain::parse);
serde_as_string!(UserId, UserId::parse_uri);
serde_as_string!(ClientId, ClientId::parse_uri);
serde_as_string!(RoomId, RoomId::parse_uri);

/// A syntactically valid `mimi://domain/seg/seg...` URI, before the caller checks the
/// segments. Segments are borrowed from the input.
struct MimiUri<'a> {
    input: &'a str,
    domain: Domain,
    segments: Vec<&'a str>,
}

impl<'a> MimiUri<'a> {
    fn parse(input: &'a str) -> Result<Self, IdError> {
        check_input_len(input)?;
        let rest = strip_mimi_scheme(input).ok_or_else(|| IdError::NotMimiUri {
            value: shown(input),
        })?;
        if input.contains('#') {
            return Err(IdError::Fragment {
                value: shown(input),
            });
        }
        if input.contains('?') {
            return Err(IdError::Query {
                value: shown(input),
            });
        }
        if input.contains('%') {
            return Err(IdError::PercentEncoded {
                value: shown(input),
            });
        }
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, Some(path)),
            None => (rest, None),
        };
        let domain = Domain::parse(authority)?;
        let segments = match path {
            None => Vec::new(),
            Some(path) => path.split('/').collect(),
        };
        Ok(MimiUri {
            input,
            domain,
            segments,
        })
    }

    /// The error for a URI whose segments do not match `expected`.
    fn mismatch(&self, expected: UriKind) -> IdError {
        let found = match self.segments.first().copied() {
            None => Some(UriKind::Provider),
            Some(USER_SEGMENT) => Some(UriKind::User),
            Some(CLIENT_SEGMENT) => Some(UriKind::Client),
            Some(ROOM_SEGMENT) => Some(UriKind::Room),
            Some(_) => None,
        };
        match found {
            Some(found) if found != expected => IdError::WrongKind {
                value: shown(self.input),
                found,
                expected,
            },
            _ => IdError::BadPath {
                value: shown(self.input),
                expected,
            },
        }
    }
}

fn has_mimi_scheme(input: &str) -> bool {
    input
        .get(..SCHEME.len() + 1)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("mimi:"))
}

/// Strips `mimi://`, matching the scheme case-insensitively (RFC 3986 section 3.1).
fn strip_mimi_scheme(input: &str) -> Option<&str> {
    if !has_mimi_scheme(input) {
        return None;
    }
    input.get(SCHEME.len() + 1..)?.strip_prefix("//")
}

/// Rejects URI syntax inside what should be a bare domain, with a specific message.
fn reject_uri_syntax(input: &str) -> Result<(), IdError> {
    let value = || shown(input);
    if input.starts_with('[') {
        return Err(IdError::IpLiteral { value: value() });
    }
    if input.contains('@') {
        return Err(IdError::UserInfo { value: value() });
    }
    if input.contains(':') {
        return Err(IdError::Port { value: value() });
    }
    if input.contains('?') {
        return Err(IdError::Query { value: value() });
    }
    if input.contains('#') {
        return Err(IdError::Fragment { value: value() });
    }
    if input.contains('%') {
        return Err(IdError::PercentEncoded { value: value() });
    }
    Ok(())
}

/// Validates a user name and returns it lowercased.
fn user_name(input: &str) -> Result<String, IdError> {
    let kind = IdKind::UserName;
    check_length(kind, input)?;
    if let Some((position, ch)) = input
        .chars()
        .enumerate()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'))
    {
        return Err(IdError::InvalidChar {
            kind,
            value: shown(input),
            ch,
            position,
        });
    }
    if input.starts_with('.') || input.ends_with('.') {
        return Err(IdError::BadEdge {
            kind,
            value: shown(input),
            ch: '.',
        });
    }
    if input.contains("..") {
        return Err(IdError::ConsecutiveDots {
            value: shown(input),
        });
    }
    Ok(input.to_ascii_lowercase())
}

/// Validates a device or room id (case-sensitive).
fn local_id(kind: IdKind, input: &str) -> Result<String, IdError> {
    check_length(kind, input)?;
    if let Some((position, ch)) = input
        .chars()
        .enumerate()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(IdError::InvalidChar {
            kind,
            value: shown(input),
            ch,
            position,
        });
    }
    Ok(input.to_owned())
}

fn check_input_len(input: &str) -> Result<(), IdError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(IdError::InputTooLong {
            len: input.len(),
            max: MAX_INPUT_LEN,
        });
    }
    Ok(())
}

fn check_length(kind: IdKind, input: &str) -> Result<(), IdError> {
    if input.is_empty() {
        return Err(IdError::Empty { kind });
    }
    let len = input.chars().count();
    if len > MAX_LOCAL_LEN {
        return Err(too_long(kind, input, len, MAX_LOCAL_LEN));
    }
    Ok(())
}

fn too_long(kind: IdKind, input: &str, len: usize, max: usize) -> IdError {
    IdError::TooLong {
        kind,
        value: shown(input),
        len,
        max,
    }
}

/// The input as shown in error messages: at most 80 characters.
fn shown(input: &str) -> String {
    const MAX_SHOWN: usize = 80;
    match input.char_indices().nth(MAX_SHOWN) {
        None => input.to_owned(),
        Some((cut, _)) => format!("{}...", &input[..cut]),
    }
}
