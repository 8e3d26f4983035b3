//! The MIMI framing as the hub and follower use it: decoding requests into what the
//! room logic needs, and encoding responses and fanout.

use entente_wire::ids::RoomId;
use entente_wire::mimi::{
    self, FanoutEvent, FanoutMessage, GroupInfoOption, HandshakeBundle, IdentifierUri,
    MessageShape, MlsMessage, Protocol, RatchetTreeOption, SubmitMessageRequest,
    SubmitMessageResponse, SubmitOutcome, UpdateOutcome, UpdateRequest, UpdateRoomResponse,
};
use openmls::prelude::MlsMessageBodyIn;
use tls_codec::Serialize as _;

/// A URI field as a string (lossy for invalid UTF-8, which then fails comparison).
pub fn uri(u: &IdentifierUri) -> String {
    String::from_utf8_lossy(u.as_bytes()).into_owned()
}

fn encode_mls(m: &MlsMessage) -> Result<Vec<u8>, String> {
    m.tls_serialize_detached()
        .map_err(|e| format!("encoding an MLS message: {e}"))
}

/// Why an update was refused before ordering.
pub enum Refusal {
    /// Not decodable or not well formed: HTTP 400.
    Malformed(String),
    /// Well formed but not acceptable: MIMI `notAllowed`.
    NotAllowed(String),
}

/// A decoded UpdateRequest.
pub enum Update {
    Commit(CommitUpdate),
    Proposals(ProposalUpdate),
}

/// A decoded commit bundle.
pub struct CommitUpdate {
    pub epoch: u64,
    pub message_bytes: Vec<u8>,
    pub welcome: Option<WelcomeOut>,
    /// KeyPackageRefs of the new members named in the Welcome.
    pub welcome_refs: Vec<Vec<u8>>,
    /// The new epoch's GroupInfo, as an MLSMessage, when sent in full.
    pub group_info: Option<Vec<u8>>,
}

/// Standalone proposals, each an encoded MLSMessage.
pub struct ProposalUpdate {
    pub epoch: u64,
    pub messages: Vec<Vec<u8>>,
}

pub struct WelcomeOut {
    /// The Welcome as an MLSMessage.
    pub message_bytes: Vec<u8>,
    pub ratchet_tree: RatchetTreeOption,
}

fn check_room(group_id: &[u8], room: &RoomId) -> Result<(), String> {
    if group_id != room.to_string().as_bytes() {
        return Err(format!("the MLS group id is not {room}"));
    }
    Ok(())
}

fn public_epoch(m: &MlsMessage, room: &RoomId, what: &str) -> Result<u64, Refusal> {
    let MlsMessageBodyIn::PublicMessage(pm) = m.body() else {
        return Err(Refusal::Malformed(format!(
            "{what} must be a PublicMessage"
        )));
    };
    check_room(pm.group_id().as_slice(), room).map_err(Refusal::Malformed)?;
    Ok(pm.epoch().as_u64())
}

pub fn parse_update(body: &[u8], room: &RoomId) -> Result<Update, Refusal> {
    let req = UpdateRequest::decode(body)
        .map_err(|e| Refusal::Malformed(format!("UpdateRequest: {e}")))?;
    match req.bundle {
        HandshakeBundle::Proposal {
            proposal,
            more_proposals,
        } => {
            let epoch = public_epoch(&proposal, room, "a proposal")?;
            let mut messages = vec![encode_mls(&proposal).map_err(Refusal::Malformed)?];
            for p in &more_proposals {
                if public_epoch(p, room, "a proposal")? != epoch {
                    return Err(Refusal::Malformed(
                        "proposals submitted together must be for one epoch".into(),
                    ));
                }
                messages.push(encode_mls(p).map_err(Refusal::Malformed)?);
            }
            Ok(Update::Proposals(ProposalUpdate { epoch, messages }))
        }
        HandshakeBundle::Commit {
            commit,
            welcome,
            group_info,
            ratchet_tree,
        } => {
            let epoch = public_epoch(&commit, room, "the commit")?;
            let message_bytes = encode_mls(&commit).map_err(Refusal::Malformed)?;
            let group_info = match group_info {
                GroupInfoOption::Full(gi) => Some(
                    encode_mls(&MlsMessage::from(MlsMessageBodyIn::GroupInfo(*gi)))
                        .map_err(Refusal::Malformed)?,
                ),
                GroupInfoOption::Partial(_) => None,
            };
            let (welcome, welcome_refs) = match welcome {
                None => (None, Vec::new()),
                Some(w) => {
                    let refs = w
                        .secrets()
                        .iter()
                        .map(|s| s.new_member().as_slice().to_vec())
                        .collect();
                    let msg = MlsMessage::from(MlsMessageBodyIn::Welcome(w));
                    (
                        Some(WelcomeOut {
                            message_bytes: encode_mls(&msg).map_err(Refusal::Malformed)?,
                            ratchet_tree,
                        }),
                        refs,
                    )
                }
            };
            if welcome.is_some()
                && !matches!(
                    welcome.as_ref().map(|w| &w.ratchet_tree),
                    Some(RatchetTreeOption::Full(_))
                )
            {
                return Err(Refusal::NotAllowed(
                    "a Welcome must come with the full ratchet tree".into(),
                ));
            }
            Ok(Update::Commit(CommitUpdate {
                epoch,
                message_bytes,
                welcome,
                welcome_refs,
                group_info,
            }))
        }
    }
}

/// The bytes of the commit in an UpdateRequest (for echo marks).
pub fn update_message_bytes(body: &[u8]) -> Result<Vec<u8>, String> {
    let req = UpdateRequest::decode(body).map_err(|e| format!("UpdateRequest: {e}"))?;
    encode_mls(req.bundle.proposal_or_commit())
}

/// A decoded application message submission.
pub struct Submit {
    pub epoch: u64,
    pub message_bytes: Vec<u8>,
    pub sending_uri: String,
    /// The franking tag in the message's Safe AAD (`frank_aad`), if any. An AAD that
    /// is not a Safe AAD is not ours to judge: the message is accepted unfranked.
    pub franking_tag: Option<[u8; 32]>,
}

pub fn parse_submit(body: &[u8], room: &RoomId) -> Result<Submit, String> {
    let req =
        SubmitMessageRequest::decode(body).map_err(|e| format!("SubmitMessageRequest: {e}"))?;
    let MlsMessageBodyIn::PrivateMessage(pm) = req.app_message.body() else {
        return Err("appMessage must be a PrivateMessage".into());
    };
    check_room(pm.group_id().as_slice(), room)?;
    let franking_tag = entente_core::franking::franking_tag_in_aad(pm.aad())
        .ok()
        .flatten();
    Ok(Submit {
        epoch: pm.epoch().as_u64(),
        message_bytes: encode_mls(&req.app_message)?,
        sending_uri: uri(&req.sending_uri),
        franking_tag,
    })
}

/// The bytes of the application message in a SubmitMessageRequest.
pub fn submit_message_bytes(body: &[u8]) -> Result<Vec<u8>, String> {
    let req =
        SubmitMessageRequest::decode(body).map_err(|e| format!("SubmitMessageRequest: {e}"))?;
    encode_mls(&req.app_message)
}

/// Encodes one FanoutMessage around already-encoded MLS message bytes. The message
/// was decoded and checked when it was accepted, so decoding it again cannot fail
/// for a well-formed input; if it does, the error is a bug and is surfaced.
pub fn fanout(
    timestamp: u64,
    message_bytes: &[u8],
    ratchet_tree: Option<&RatchetTreeOption>,
) -> Result<Vec<u8>, String> {
    let message = <MlsMessage as tls_codec::Deserialize>::tls_deserialize_exact(message_bytes)
        .map_err(|e| format!("re-decoding an accepted message: {e}"))?;
    let event = match (message.shape(), ratchet_tree) {
        (MessageShape::Welcome, Some(t)) => FanoutEvent::Welcome {
            welcome: message,
            ratchet_tree: t.clone(),
        },
        (MessageShape::Commit, _) => FanoutEvent::Commit {
            commit: message,
            external_proposals: Vec::new(),
        },
        (MessageShape::Proposal, _) => FanoutEvent::Proposal {
            proposal: message,
            more_proposals: Vec::new(),
        },
        _ => FanoutEvent::Application {
            message,
            frank: None,
        },
    };
    FanoutMessage { timestamp, event }
        .encode()
        .map_err(|e| e.to_string())
}

/// Encodes the FanoutMessage of an accepted application message, with its frank.
pub fn fanout_application(
    timestamp: u64,
    message_bytes: &[u8],
    frank: Option<mimi::Frank>,
) -> Result<Vec<u8>, String> {
    let message = <MlsMessage as tls_codec::Deserialize>::tls_deserialize_exact(message_bytes)
        .map_err(|e| format!("re-decoding an accepted message: {e}"))?;
    FanoutMessage {
        timestamp,
        event: FanoutEvent::Application { message, frank },
    }
    .encode()
    .map_err(|e| e.to_string())
}

/// What a follower needs of one FanoutMessage.
pub struct FanoutItem {
    pub fanout_bytes: Vec<u8>,
    pub message_bytes: Vec<u8>,
    pub kind: FanoutKind,
}

pub enum FanoutKind {
    Welcome {
        refs: Vec<Vec<u8>>,
    },
    /// A commit or proposal (a PublicMessage) for `epoch`.
    Handshake {
        epoch: u64,
    },
    Application,
}

pub fn parse_fanout_batch(body: &[u8], room: &RoomId) -> Result<Vec<FanoutItem>, String> {
    let batch = mimi::decode_fanout_batch(body).map_err(|e| format!("notify body: {e}"))?;
    let mut out = Vec::with_capacity(batch.len());
    for f in batch {
        let fanout_bytes = f.encode().map_err(|e| e.to_string())?;
        let msg = f.event.message();
        let message_bytes = encode_mls(msg)?;
        let kind = match msg.body() {
            MlsMessageBodyIn::Welcome(w) => FanoutKind::Welcome {
                refs: w
                    .secrets()
                    .iter()
                    .map(|s| s.new_member().as_slice().to_vec())
                    .collect(),
            },
            MlsMessageBodyIn::PublicMessage(m) => {
                check_room(m.group_id().as_slice(), room)?;
                FanoutKind::Handshake {
                    epoch: m.epoch().as_u64(),
                }
            }
            MlsMessageBodyIn::PrivateMessage(m) => {
                check_room(m.group_id().as_slice(), room)?;
                FanoutKind::Application
            }
            _ => return Err("unexpected MLS message in fanout".into()),
        };
        out.push(FanoutItem {
            fanout_bytes,
            message_bytes,
            kind,
        });
    }
    Ok(out)
}

fn update_response(outcome: UpdateOutcome, description: &str) -> Vec<u8> {
    UpdateRoomResponse {
        error_description: description.to_owned(),
        outcome,
    }
    .encode()
    .unwrap_or_default()
}

pub fn update_success(ts: u64) -> Vec<u8> {
    update_response(
        UpdateOutcome::Success {
            accepted_timestamp: ts,
        },
        "",
    )
}

pub fn update_wrong_epoch(current: u64, submitted: u64) -> Vec<u8> {
    update_response(
        UpdateOutcome::WrongEpoch {
            current_epoch: current,
        },
        &format!("the room is at epoch {current}; the commit was for epoch {submitted}"),
    )
}

pub fn update_not_allowed(reason: &str) -> Vec<u8> {
    update_response(UpdateOutcome::NotAllowed, reason)
}

fn submit_response(outcome: SubmitOutcome) -> Vec<u8> {
    SubmitMessageResponse {
        protocol: Protocol::Mls10,
        outcome,
    }
    .encode()
    .unwrap_or_default()
}

pub fn submit_accepted(ts: u64, frank: Option<mimi::Frank>) -> Vec<u8> {
    submit_response(SubmitOutcome::Accepted {
        accepted_timestamp: ts,
        frank,
    })
}

pub fn submit_not_allowed() -> Vec<u8> {
    submit_response(SubmitOutcome::NotAllowed)
}

pub fn submit_epoch_too_old(current: u64) -> Vec<u8> {
    submit_response(SubmitOutcome::EpochTooOld {
        current_epoch: current,
    })
}
