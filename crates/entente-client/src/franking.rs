//! Franks on room messages (draft-ietf-mimi-protocol-06 section 5.4.1) and abuse
//! reports (section 5.9).
//!
//! Every application message we send carries our user and the room in its MIMI
//! content (extensions keys 1 and 2) and its franking tag in the MLS AAD. The hub
//! franks it; every receiver verifies the frank ([`entente_core::franking::verify_received`],
//! against the pinned issuer key of the room's hub domain) and keeps it with the
//! history row. A message whose frank is missing or does not verify is still shown,
//! with [`FrankStatus::Missing`] or [`FrankStatus::Invalid`]: it cannot be reported
//! ([`Client::frank_status`] says so), nothing is dropped.

use std::collections::HashMap;

use entente_core::franking::{self, Received};
use entente_core::identity::IssuerPublicKey;
use entente_wire::api::{ReportAnswer, ReportCall};
use entente_wire::ids::{Domain, RoomId, UserId};
use entente_wire::mimi::{AbuseReport, AbuseType, AbusiveMessage, Frank, IdentifierUri};
use rusqlite::{OptionalExtension, params};
use tls_codec::{Deserialize as _, Serialize as _};

use crate::rooms::room_path;
use crate::store::storage;
use crate::{Client, ClientError};

/// Report reasons and their `AbuseType` codes. MIMI-06 assigns none yet (only
/// `reserved(0)`), so these are Entente's.
pub const REPORT_REASONS: &[(&str, u8, &str)] = &[
    ("spam", 1, "unsolicited bulk or commercial messages"),
    ("harassment", 2, "harassment or bullying"),
    ("hate", 3, "hate speech"),
    ("violence", 4, "threats or incitement to violence"),
    ("sexual", 5, "unwanted sexual content"),
    ("child-safety", 6, "content endangering children"),
    ("impersonation", 7, "pretending to be someone else"),
    ("scam", 8, "fraud or phishing"),
    ("illegal", 9, "other illegal content"),
    ("other", 255, "anything else (say what in the note)"),
];

/// The code of a reason name (see [`REPORT_REASONS`]).
pub fn reason_code(name: &str) -> Option<u8> {
    REPORT_REASONS
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c, _)| *c)
}

/// What we know of a message's frank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrankStatus {
    /// The hub's frank verified: the message can be reported.
    Verified,
    /// The message came without a frank (an older or non-franking sender or hub).
    Missing,
    /// A frank came with it but did not verify (the reason says why): a provider on
    /// the way altered it, or the sender's claims do not match what MLS says.
    Invalid(String),
}

impl FrankStatus {
    /// Only a message with a verified frank can be reported.
    pub fn is_reportable(&self) -> bool {
        matches!(self, FrankStatus::Verified)
    }

    pub(crate) fn to_db(&self) -> String {
        match self {
            FrankStatus::Verified => "verified".into(),
            FrankStatus::Missing => "missing".into(),
            FrankStatus::Invalid(r) => format!("invalid: {r}"),
        }
    }

    fn from_db(s: Option<String>) -> Self {
        match s.as_deref() {
            Some("verified") => FrankStatus::Verified,
            None | Some("missing") => FrankStatus::Missing,
            Some(other) => {
                FrankStatus::Invalid(other.strip_prefix("invalid: ").unwrap_or(other).into())
            }
        }
    }
}

/// Checks the frank of a message (received, or our own as the hub answered),
/// returning the status and the encoded frank to keep (only if it verified).
pub(crate) fn check(
    issuers: &HashMap<Domain, IssuerPublicKey>,
    content: &[u8],
    aad: &[u8],
    frank: Option<&Frank>,
    accepted_timestamp: u64,
    sender: &UserId,
    room: &RoomId,
) -> (FrankStatus, Option<Vec<u8>>) {
    let Some(frank) = frank else {
        return (FrankStatus::Missing, None);
    };
    let tag = match franking::franking_tag_in_aad(aad) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return (
                FrankStatus::Invalid("a frank for a message without a franking tag".into()),
                None,
            );
        }
        Err(e) => return (FrankStatus::Invalid(e.to_string()), None),
    };
    let Some(hub_key) = issuers.get(room.domain()) else {
        return (
            FrankStatus::Invalid(format!("the issuer key of {} is not pinned", room.domain())),
            None,
        );
    };
    let r = Received {
        content,
        franking_tag: &tag,
        frank,
        accepted_timestamp,
        sender,
        room,
        ciphersuite: entente_core::mls::CIPHERSUITE as u16,
        hub_key,
    };
    match franking::verify_received(&r) {
        Ok(()) => match frank.tls_serialize_detached() {
            Ok(bytes) => (FrankStatus::Verified, Some(bytes)),
            Err(e) => (FrankStatus::Invalid(e.to_string()), None),
        },
        Err(e) => (FrankStatus::Invalid(e.to_string()), None),
    }
}

/// Stores a frank check's outcome on a history row.
pub(crate) fn store(
    conn: &rusqlite::Connection,
    room: &RoomId,
    message_id: &[u8; 32],
    status: &FrankStatus,
    frank: Option<Vec<u8>>,
) -> Result<(), ClientError> {
    conn.execute(
        "UPDATE history SET frank = ?1, frank_status = ?2 WHERE room = ?3 AND message_id = ?4",
        params![frank, status.to_db(), room.to_string(), message_id.to_vec()],
    )
    .map_err(storage)?;
    Ok(())
}

/// Sender, content, frank, hub timestamp, outgoing.
type HistoryRow = (String, Vec<u8>, Option<Vec<u8>>, i64, bool);

impl Client {
    /// The frank status of a message in our history (`NotFound`-like usage error if
    /// there is no such message). Only [`FrankStatus::Verified`] messages can be
    /// reported with [`Client::report`].
    pub fn frank_status(
        &self,
        room: &RoomId,
        message_id: &[u8; 32],
    ) -> Result<FrankStatus, ClientError> {
        let status: Option<Option<String>> = self
            .db()
            .query_row(
                "SELECT frank_status FROM history WHERE room = ?1 AND message_id = ?2",
                params![room.to_string(), message_id.to_vec()],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        match status {
            None => Err(ClientError::Usage(format!(
                "no message {} in {room}",
                hex::encode(message_id)
            ))),
            Some(s) => Ok(FrankStatus::from_db(s)),
        }
    }

    /// Reports a received message to the room's hub, through our provider: the hub
    /// verifies the frank (so it knows the content is exactly what the sender sent,
    /// in that room) and informs the sender's provider. `reason` is an `AbuseType`
    /// code ([`reason_code`]); `note` is free text for the moderators.
    pub async fn report(
        &self,
        room: &RoomId,
        message_id: &[u8; 32],
        reason: u8,
        note: &str,
    ) -> Result<(), ClientError> {
        let row: Option<HistoryRow> = self
            .db()
            .query_row(
                "SELECT sender_user, content, frank, hub_timestamp, outgoing FROM history
                 WHERE room = ?1 AND message_id = ?2",
                params![room.to_string(), message_id.to_vec()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(storage)?;
        let Some((sender, content, frank, ts, outgoing)) = row else {
            return Err(ClientError::Usage(format!(
                "no message {} in {room}",
                hex::encode(message_id)
            )));
        };
        if outgoing {
            return Err(ClientError::Usage(
                "that is your own message; report messages of others".into(),
            ));
        }
        let Some(frank) = frank else {
            let status = self.frank_status(room, message_id)?;
            return Err(ClientError::Usage(format!(
                "this message cannot be reported: its frank is {}",
                match status {
                    FrankStatus::Invalid(r) => format!("invalid ({r})"),
                    _ => "missing".into(),
                }
            )));
        };
        let frank = Frank::tls_deserialize(&mut frank.as_slice())
            .map_err(|e| ClientError::Storage(format!("stored frank: {e}")))?;
        let sender: UserId = sender
            .parse()
            .map_err(|e| ClientError::Storage(format!("sender: {e}")))?;
        let report = AbuseReport {
            reporting_user: IdentifierUri::from(self.id().user()),
            alleged_abuser_uri: IdentifierUri::from(&sender),
            reason_code: AbuseType(reason),
            note: note.as_bytes().to_vec().into(),
            messages: vec![AbusiveMessage {
                message_content: content.into(),
                frank,
                accepted_timestamp: ts as u64,
            }],
            abuse_extensions: Default::default(),
        };
        let bytes = report
            .encode()
            .map_err(|e| ClientError::Bug(format!("encoding the report: {e}")))?;
        let _: ReportAnswer = self
            .signed(
                reqwest::Method::POST,
                &room_path(room, "reports"),
                Some(&ReportCall { report: bytes }),
            )
            .await?;
        Ok(())
    }
}

impl Client {
    /// The verified frank kept with a message, if any (for tools and tests; reports
    /// are built by [`Client::report`]).
    pub fn stored_frank(
        &self,
        room: &RoomId,
        message_id: &[u8; 32],
    ) -> Result<Option<Frank>, ClientError> {
        let bytes: Option<Option<Vec<u8>>> = self
            .db()
            .query_row(
                "SELECT frank FROM history WHERE room = ?1 AND message_id = ?2",
                params![room.to_string(), message_id.to_vec()],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        bytes
            .flatten()
            .map(|b| {
                Frank::tls_deserialize(&mut b.as_slice())
                    .map_err(|e| ClientError::Storage(format!("stored frank: {e}")))
            })
            .transpose()
    }
}
