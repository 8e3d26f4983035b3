//! MIMI framing as a client builds and reads it.

use entente_wire::ids::{Domain, RoomId, UserId};
use entente_wire::mimi::{
    FanoutEvent, GroupInfoOption, HandshakeBundle, IdentifierUri, KeyMaterialRequestTBS,
    KeyMaterialResponse, MlsMessage, Protocol, RatchetTreeOption, SubmitMessageRequest,
    SubmitMessageResponse, UpdateRequest, UpdateRoomResponse,
};
use openmls::prelude::{
    CredentialWithKey, KeyPackageIn, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut,
    ProtocolMessage, RatchetTreeIn, RequiredCapabilitiesExtension, VerifiableCiphersuite, Welcome,
};
use openmls::treesync::RatchetTree;
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::signatures::Signer;
use tls_codec::{Deserialize as _, Serialize as _};

use crate::ClientError;

fn proto(e: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol(e.to_string())
}

/// A signed MIMI KeyMaterialRequest.
pub fn key_material_request(
    requester: &UserId,
    target: &UserId,
    room: &RoomId,
    credential: &CredentialWithKey,
    signer: &SignatureKeyPair,
) -> Result<Vec<u8>, ClientError> {
    let tbs = KeyMaterialRequestTBS {
        protocol: Protocol::Mls10,
        requesting_user: IdentifierUri::from(requester),
        target_user: IdentifierUri::from(target),
        room_id: IdentifierUri::from(room),
        acceptable_ciphersuites: vec![VerifiableCiphersuite::from(entente_core::mls::CIPHERSUITE)],
        required_capabilities: RequiredCapabilitiesExtension::default(),
        requester_signature_key: credential.signature_key.clone(),
        requester_credential: credential.credential.clone(),
    };
    let tbs_bytes = tbs.encode().map_err(|e| ClientError::Bug(e.to_string()))?;
    let content = entente_core::mls::sign_content("KeyMaterialRequestTBS", &tbs_bytes)
        .map_err(|e| ClientError::Bug(e.to_string()))?;
    let sig = signer
        .sign(&content)
        .map_err(|e| ClientError::Bug(format!("signing: {e:?}")))?;
    tbs.into_request(sig)
        .encode()
        .map_err(|e| ClientError::Bug(e.to_string()))
}

/// The KeyPackages of a KeyMaterialResponse (those of clients that had one).
pub fn parse_key_material_response(
    bytes: &[u8],
    target: &UserId,
) -> Result<Vec<KeyPackageIn>, ClientError> {
    let r = KeyMaterialResponse::decode(bytes).map_err(proto)?;
    if r.user_uri.as_bytes() != target.to_string().as_bytes() {
        return Err(ClientError::Protocol(
            "KeyMaterialResponse is for another user".into(),
        ));
    }
    use entente_wire::mimi::{ClientMaterial, KeyMaterialUserCode as U};
    match r.user_status {
        U::Success | U::PartialSuccess | U::NoCompatibleMaterial => {}
        U::UserUnknown => {
            return Err(ClientError::Usage(format!(
                "{} does not exist",
                target.handle()
            )));
        }
        U::NoConsent => {
            return Err(ClientError::no_consent(format!(
                "{0} has not accepted a request from you; ask with `entente request {0}`",
                target.handle()
            )));
        }
        U::NoConsentForThisRoom => {
            return Err(ClientError::no_consent(format!(
                "{0} has not accepted a request from you for this room; ask with `entente request {0} --room <room>`",
                target.handle()
            )));
        }
        U::UserDeleted => {
            return Err(ClientError::Usage(format!(
                "{} was deleted",
                target.handle()
            )));
        }
        U::IncompatibleProtocol => {
            return Err(ClientError::Usage(format!(
                "{}'s devices do not speak MLS",
                target.handle()
            )));
        }
        #[allow(unreachable_patterns)]
        _ => return Err(ClientError::Protocol("unknown KeyMaterialUserCode".into())),
    }
    Ok(r.clients
        .into_iter()
        .filter_map(|c| match c.material {
            ClientMaterial::Success(kp) => Some(*kp),
            _ => None,
        })
        .collect())
}

fn reparse(out: &MlsMessageOut) -> Result<MlsMessage, ClientError> {
    let bytes = out
        .tls_serialize_detached()
        .map_err(|e| ClientError::Bug(e.to_string()))?;
    let m = MlsMessageIn::tls_deserialize_exact(bytes.as_slice())
        .map_err(|e| ClientError::Bug(e.to_string()))?;
    Ok(MlsMessage::from(m))
}

/// An UpdateRequest carrying a commit, its Welcome, the new GroupInfo and the full
/// ratchet tree (for the Welcome's recipients).
pub fn update_request(
    commit: &MlsMessageOut,
    welcome: Option<&MlsMessageOut>,
    group_info: &MlsMessageOut,
    tree: RatchetTree,
) -> Result<Vec<u8>, ClientError> {
    let commit = reparse(commit)?;
    let welcome: Option<Welcome> = match welcome {
        Some(w) => match reparse(w)?.into_body() {
            MlsMessageBodyIn::Welcome(w) => Some(w),
            _ => return Err(ClientError::Bug("expected a Welcome".into())),
        },
        None => None,
    };
    let group_info = match reparse(group_info)?.into_body() {
        MlsMessageBodyIn::GroupInfo(gi) => GroupInfoOption::Full(Box::new(gi)),
        _ => return Err(ClientError::Bug("expected a GroupInfo".into())),
    };
    let tree_bytes = tree
        .tls_serialize_detached()
        .map_err(|e| ClientError::Bug(e.to_string()))?;
    let tree_in = RatchetTreeIn::tls_deserialize_exact(tree_bytes.as_slice())
        .map_err(|e| ClientError::Bug(e.to_string()))?;
    UpdateRequest {
        bundle: HandshakeBundle::Commit {
            commit,
            welcome,
            group_info,
            ratchet_tree: RatchetTreeOption::Full(tree_in),
        },
    }
    .encode()
    .map_err(|e| ClientError::Bug(e.to_string()))
}

/// An UpdateRequest carrying standalone proposals (all for one epoch).
pub fn proposal_request(proposals: &[MlsMessageOut]) -> Result<Vec<u8>, ClientError> {
    let mut it = proposals.iter();
    let first = it
        .next()
        .ok_or_else(|| ClientError::Bug("no proposals to send".into()))?;
    let proposal = reparse(first)?;
    let more_proposals = it.map(reparse).collect::<Result<Vec<_>, _>>()?;
    UpdateRequest {
        bundle: HandshakeBundle::Proposal {
            proposal,
            more_proposals,
        },
    }
    .encode()
    .map_err(|e| ClientError::Bug(e.to_string()))
}

/// What the hub said to an update.
pub enum UpdateOutcome {
    Success {
        #[allow(
            dead_code,
            reason = "kept for callers that show when a change took effect"
        )]
        timestamp_ms: u64,
    },
    WrongEpoch {
        current: u64,
    },
    Refused {
        reason: String,
    },
}

pub fn parse_update_response(bytes: &[u8]) -> Result<UpdateOutcome, ClientError> {
    use entente_wire::mimi::UpdateOutcome as O;
    let r = UpdateRoomResponse::decode(bytes).map_err(proto)?;
    Ok(match r.outcome {
        O::Success { accepted_timestamp } => UpdateOutcome::Success {
            timestamp_ms: accepted_timestamp,
        },
        O::WrongEpoch { current_epoch } => UpdateOutcome::WrongEpoch {
            current: current_epoch,
        },
        O::NotAllowed => UpdateOutcome::Refused {
            reason: format!("the hub refused the change: {}", r.error_description),
        },
        O::InvalidProposal { .. } => UpdateOutcome::Refused {
            reason: format!("the hub found an invalid proposal: {}", r.error_description),
        },
    })
}

pub fn submit_request(msg: &MlsMessageOut, sender: &UserId) -> Result<Vec<u8>, ClientError> {
    SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: reparse(msg)?,
        sending_uri: IdentifierUri::from(sender),
    }
    .encode()
    .map_err(|e| ClientError::Bug(e.to_string()))
}

pub enum SubmitOutcome {
    Accepted {
        timestamp_ms: u64,
        /// The hub's frank, if it franked the message.
        frank: Option<entente_wire::mimi::Frank>,
    },
    NotAllowed,
    EpochTooOld {
        current: u64,
    },
}

pub fn parse_submit_response(bytes: &[u8]) -> Result<SubmitOutcome, ClientError> {
    use entente_wire::mimi::SubmitOutcome as O;
    let r = SubmitMessageResponse::decode(bytes).map_err(proto)?;
    Ok(match r.outcome {
        O::Accepted {
            accepted_timestamp,
            frank,
        } => SubmitOutcome::Accepted {
            timestamp_ms: accepted_timestamp,
            frank,
        },
        O::NotAllowed => SubmitOutcome::NotAllowed,
        O::EpochTooOld { current_epoch } => SubmitOutcome::EpochTooOld {
            current: current_epoch,
        },
    })
}

/// One decoded inbox item.
pub struct Fanout {
    pub timestamp_ms: u64,
    pub body: FanoutBody,
    /// The hub's frank of an application message.
    pub frank: Option<entente_wire::mimi::Frank>,
}

pub enum FanoutBody {
    Welcome {
        welcome: Welcome,
        ratchet_tree: RatchetTreeIn,
    },
    Protocol(ProtocolMessage),
}

pub fn parse_fanout(bytes: &[u8]) -> Result<Fanout, ClientError> {
    let f = entente_wire::mimi::FanoutMessage::decode(bytes).map_err(proto)?;
    let mut frank_out = None;
    let body = match f.event {
        FanoutEvent::Welcome {
            welcome,
            ratchet_tree,
        } => {
            let MlsMessageBodyIn::Welcome(w) = welcome.into_body() else {
                return Err(ClientError::Protocol(
                    "Welcome fanout without a Welcome".into(),
                ));
            };
            let RatchetTreeOption::Full(tree) = ratchet_tree else {
                return Err(ClientError::Protocol(
                    "Welcome without the full ratchet tree is not supported".into(),
                ));
            };
            FanoutBody::Welcome {
                welcome: w,
                ratchet_tree: tree,
            }
        }
        FanoutEvent::Application { message, frank } => {
            frank_out = frank;
            FanoutBody::Protocol(
                message
                    .into_protocol_message()
                    .ok_or_else(|| ClientError::Protocol("not a protocol message".into()))?,
            )
        }
        FanoutEvent::Commit { commit, .. } => FanoutBody::Protocol(
            commit
                .into_protocol_message()
                .ok_or_else(|| ClientError::Protocol("not a protocol message".into()))?,
        ),
        FanoutEvent::Proposal { proposal, .. } => FanoutBody::Protocol(
            proposal
                .into_protocol_message()
                .ok_or_else(|| ClientError::Protocol("not a protocol message".into()))?,
        ),
    };
    Ok(Fanout {
        timestamp_ms: f.timestamp,
        body,
        frank: frank_out,
    })
}

/// Domains whose issuer keys are needed to verify the credentials in a fanout: a
/// Welcome's tree lists every member; a commit (a PublicMessage) carries the
/// KeyPackages of the members it adds, possibly of providers we have not met yet;
/// application messages (PrivateMessages) come from known members.
pub fn credential_domains(f: &Fanout) -> Vec<Domain> {
    let mut out = Vec::new();
    // Neither a RatchetTreeIn nor a PublicMessageIn can be inspected without
    // validation; encode it and look for certificates' client URIs.
    let encoded = match &f.body {
        FanoutBody::Welcome { ratchet_tree, .. } => ratchet_tree.tls_serialize_detached(),
        FanoutBody::Protocol(ProtocolMessage::PublicMessage(m)) => m.tls_serialize_detached(),
        FanoutBody::Protocol(ProtocolMessage::PrivateMessage(_)) => Ok(Vec::new()),
    };
    if let Ok(bytes) = encoded {
        out.extend(domains_in(&bytes));
    }
    out.sort();
    out.dedup();
    // A hostile message could name many unreachable domains to stall us with
    // fetches; a real commit or Welcome names a few. Unfetched keys only mean
    // the credential is rejected.
    out.truncate(MAX_PREFETCH_DOMAINS);
    out
}

/// Most issuer keys fetched for one inbox item.
const MAX_PREFETCH_DOMAINS: usize = 16;

/// Finds `mimi://<domain>/d/` client URIs in encoded bytes (certificates are
/// embedded verbatim in credentials). Only used to prefetch issuer keys; every
/// certificate is still fully verified.
pub(crate) fn domains_in(bytes: &[u8]) -> Vec<Domain> {
    let needle = b"mimi://";
    let mut out = Vec::new();
    let mut i = 0;
    while i + needle.len() < bytes.len() {
        if &bytes[i..i + needle.len()] == needle {
            let start = i + needle.len();
            let end = bytes[start..]
                .iter()
                .position(|b| *b == b'/')
                .map(|p| start + p)
                .unwrap_or(bytes.len());
            if let Ok(s) = std::str::from_utf8(&bytes[start..end])
                && let Ok(d) = Domain::parse(s)
            {
                out.push(d);
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}
