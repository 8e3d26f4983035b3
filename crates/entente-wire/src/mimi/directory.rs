//! The MIMI protocol directory (draft-ietf-mimi-protocol-06 section 5.1), served at
//! `GET /.well-known/mimi-protocol-directory`.

use serde::{Deserialize, Serialize};

use crate::ids::{Domain, RoomId, UserId};

/// The directory document: an HTTPS URL template per endpoint.
///
/// ```text
/// {
///   "keyMaterial":
///      "https://mimi.example.com/v1/keyMaterial/{targetUser}",
///   "update": "https://mimi.example.com/v1/update{roomId}",
///   "notify": "https://mimi.example.com/v1/notify/{roomId}",
///   "submitMessage":
///      "https://mimi.example.com/v1/submitMessage/{roomId}",
///   "groupInfo":
///      "https://mimi.example.com/v1/groupInfo/{roomId}",
///   "requestConsent":
///      "https://mimi.example.com/v1/requestConsent/{targetUser}",
///   "updateConsent":
///      "https://mimi.example.com/v1/updateConsent/{requesterUser}",
///   "identifierQuery":
///      "https://mimi.example.com/v1/identifierQuery/{domain}",
///   "reportAbuse":
///      "https://mimi.example.com/v1/reportAbuse/{roomId}",
///   "proxyDownload"
///      "https://mimi.example.com/v1/proxyDownload/{downloadUrl}"
/// }
/// ```
///
/// All ten members are required; unknown members are ignored (later drafts may add
/// endpoints). Use [`Directory::validate`] after deserialising a peer's document, and
/// the `*_url` methods to fill in a template: values are percent-encoded, every byte
/// outside RFC 3986 `unreserved` is escaped, so a URI such as
/// `mimi://a.example/u/alice` becomes a single path segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    /// `POST`, variable `{targetUser}` (section 5.2).
    pub key_material: String,
    /// `POST`, variable `{roomId}` (section 5.3).
    pub update: String,
    /// `POST`, variable `{roomId}` (section 5.5).
    pub notify: String,
    /// `POST`, variable `{roomId}` (section 5.4).
    pub submit_message: String,
    /// `POST`, variable `{roomId}` (section 5.6).
    pub group_info: String,
    /// `POST`, variable `{targetUser}` (section 5.7 says `{targetDomain}`).
    pub request_consent: String,
    /// `POST`, variable `{requesterUser}` (section 5.7 says `{requesterDomain}`).
    pub update_consent: String,
    /// `POST`, variable `{domain}` (section 5.8).
    pub identifier_query: String,
    /// `POST`, variable `{roomId}` (section 5.9).
    pub report_abuse: String,
    /// `GET`, variable `{downloadUrl}` (section 5.10.2).
    pub proxy_download: String,
}

/// Why a directory document or template is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The template is not an `https://` URL.
    #[error("directory entry '{endpoint}' is '{template}', which is not an https:// URL")]
    NotHttps {
        /// The JSON member name.
        endpoint: &'static str,
        /// The template (shortened).
        template: String,
    },
    /// The template lacks the variable the endpoint needs.
    #[error(
        "directory entry '{endpoint}' is '{template}', which contains none of the variables {expected}"
    )]
    MissingVariable {
        /// The JSON member name.
        endpoint: &'static str,
        /// The template (shortened).
        template: String,
        /// The accepted variables, e.g. `{roomId}`.
        expected: String,
    },
}

impl Directory {
    /// Where the directory is served.
    pub const WELL_KNOWN_PATH: &'static str = "/.well-known/mimi-protocol-directory";

    /// A directory whose endpoints all live under `base` (for example
    /// `https://mimi.a.example/v1`), with the draft's paths and variables.
    pub fn with_base(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Directory {
            key_material: format!("{base}/keyMaterial/{{targetUser}}"),
            update: format!("{base}/update/{{roomId}}"),
            notify: format!("{base}/notify/{{roomId}}"),
            submit_message: format!("{base}/submitMessage/{{roomId}}"),
            group_info: format!("{base}/groupInfo/{{roomId}}"),
            request_consent: format!("{base}/requestConsent/{{targetUser}}"),
            update_consent: format!("{base}/updateConsent/{{requesterUser}}"),
            identifier_query: format!("{base}/identifierQuery/{{domain}}"),
            report_abuse: format!("{base}/reportAbuse/{{roomId}}"),
            proxy_download: format!("{base}/proxyDownload/{{downloadUrl}}"),
        }
    }

    /// Checks that every template is an `https://` URL containing its variable.
    pub fn validate(&self) -> Result<(), DirectoryError> {
        for (endpoint, template, variables) in self.entries() {
            if !template
                .get(..8)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
            {
                return Err(DirectoryError::NotHttps {
                    endpoint,
                    template: shorten(template),
                });
            }
            if !variables
                .iter()
                .any(|v| template.contains(&format!("{{{v}}}")))
            {
                return Err(missing(endpoint, template, variables));
            }
        }
        Ok(())
    }

    /// The keyMaterial URL for `target`.
    pub fn key_material_url(&self, target: &UserId) -> Result<String, DirectoryError> {
        expand(
            "keyMaterial",
            &self.key_material,
            &["targetUser"],
            &target.to_uri(),
        )
    }

    /// The update URL for `room`.
    pub fn update_url(&self, room: &RoomId) -> Result<String, DirectoryError> {
        expand("update", &self.update, &["roomId"], &room.to_uri())
    }

    /// The notify URL for `room`.
    pub fn notify_url(&self, room: &RoomId) -> Result<String, DirectoryError> {
        expand("notify", &self.notify, &["roomId"], &room.to_uri())
    }

    /// The submitMessage URL for `room`.
    pub fn submit_message_url(&self, room: &RoomId) -> Result<String, DirectoryError> {
        expand(
            "submitMessage",
            &self.submit_message,
            &["roomId"],
            &room.to_uri(),
        )
    }

    /// The groupInfo URL for `room`.
    pub fn group_info_url(&self, room: &RoomId) -> Result<String, DirectoryError> {
        expand("groupInfo", &self.group_info, &["roomId"], &room.to_uri())
    }

    /// The requestConsent URL for `target`: `{targetUser}` becomes the user URI, or
    /// `{targetDomain}` (section 5.7's spelling) the user's domain.
    pub fn request_consent_url(&self, target: &UserId) -> Result<String, DirectoryError> {
        user_or_domain(
            "requestConsent",
            &self.request_consent,
            ("targetUser", "targetDomain"),
            target,
        )
    }

    /// The updateConsent URL for `requester`: `{requesterUser}` becomes the user URI,
    /// or `{requesterDomain}` (section 5.7's spelling) the user's domain.
    pub fn update_consent_url(&self, requester: &UserId) -> Result<String, DirectoryError> {
        user_or_domain(
            "updateConsent",
            &self.update_consent,
            ("requesterUser", "requesterDomain"),
            requester,
        )
    }

    /// The identifierQuery URL for `domain`.
    pub fn identifier_query_url(&self, domain: &Domain) -> Result<String, DirectoryError> {
        expand(
            "identifierQuery",
            &self.identifier_query,
            &["domain"],
            domain.as_str(),
        )
    }

    /// The reportAbuse URL for `room`.
    pub fn report_abuse_url(&self, room: &RoomId) -> Result<String, DirectoryError> {
        expand(
            "reportAbuse",
            &self.report_abuse,
            &["roomId"],
            &room.to_uri(),
        )
    }

    /// The proxyDownload URL for `download_url`.
    pub fn proxy_download_url(&self, download_url: &str) -> Result<String, DirectoryError> {
        expand(
            "proxyDownload",
            &self.proxy_download,
            &["downloadUrl"],
            download_url,
        )
    }

    fn entries(&self) -> [(&'static str, &str, &'static [&'static str]); 10] {
        [
            ("keyMaterial", &self.key_material, &["targetUser"]),
            ("update", &self.update, &["roomId"]),
            ("notify", &self.notify, &["roomId"]),
            ("submitMessage", &self.submit_message, &["roomId"]),
            ("groupInfo", &self.group_info, &["roomId"]),
            (
                "requestConsent",
                &self.request_consent,
                &["targetUser", "targetDomain"],
            ),
            (
                "updateConsent",
                &self.update_consent,
                &["requesterUser", "requesterDomain"],
            ),
            ("identifierQuery", &self.identifier_query, &["domain"]),
            ("reportAbuse", &self.report_abuse, &["roomId"]),
            ("proxyDownload", &self.proxy_download, &["downloadUrl"]),
        ]
    }
}

fn user_or_domain(
    endpoint: &'static str,
    template: &str,
    (user_var, domain_var): (&str, &str),
    user: &UserId,
) -> Result<String, DirectoryError> {
    if template.contains(&format!("{{{domain_var}}}")) {
        expand(endpoint, template, &[domain_var], user.domain().as_str())
    } else {
        expand(endpoint, template, &[user_var], &user.to_uri())
    }
}

/// Replaces every `{variable}` (any of `variables`) in `template` with `value`,
/// percent-encoded.
fn expand(
    endpoint: &'static str,
    template: &str,
    variables: &[&str],
    value: &str,
) -> Result<String, DirectoryError> {
    let encoded = percent_encode(value);
    let mut out = template.to_owned();
    let mut found = false;
    for variable in variables {
        let placeholder = format!("{{{variable}}}");
        if out.contains(&placeholder) {
            out = out.replace(&placeholder, &encoded);
            found = true;
        }
    }
    if found {
        Ok(out)
    } else {
        Err(missing(endpoint, template, variables))
    }
}

fn missing(endpoint: &'static str, template: &str, variables: &[&str]) -> DirectoryError {
    DirectoryError::MissingVariable {
        endpoint,
        template: shorten(template),
        expected: variables
            .iter()
            .map(|v| format!("{{{v}}}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Percent-encodes every byte outside RFC 3986 `unreserved`.
fn percent_encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len() * 3);
    for &byte in value.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0F)]));
        }
    }
    out
}

fn shorten(text: &str) -> String {
    let mut shown: String = text.chars().take(120).collect();
    if shown.len() < text.len() {
        shown.push_str("...");
    }
    shown
}
