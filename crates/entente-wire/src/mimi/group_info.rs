//! Claim group key information for an external join (draft-ietf-mimi-protocol-06
//! section 5.6): `POST /groupInfo/{roomId}`.

use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::{
    Credential, ExternalSender, HpkeCiphertext, SignaturePublicKey, VerifiableCiphersuite,
};
use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::common::{MessageShape, MlsMessage};
use super::error::{FramingError, decode_exact, encode};
use super::tree::RatchetTreeOption;
use super::{IdentifierUri, Protocol};

/// The request body of `POST /groupInfo/{roomId}`.
///
/// ```text
/// struct {
///   Protocol protocol;
///   select (protocol) {
///     case mls10:
///       CipherSuite cipher_suite;
///       SignaturePublicKey requestingSignatureKey;
///       Credential requestingCredential;
///       HPKEPublicKey groupInfoPublicKey;
///       opaque joiningCode<V>;
///       /* SignWithLabel(requestingSignatureKey,          */
///       /*    "GroupInfoRequestTBS", GroupInfoRequestTBS) */
///       opaque signature<V>;
///   };
/// } GroupInfoRequest;
/// ```
///
/// The draft's `GroupInfoRequestTBS` says `optional opaque joiningCode<V>` while the
/// request says `opaque joiningCode<V>`; both use the latter here (an empty code means
/// none), since the signed content must match the request field for field.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoRequest {
    /// The end-to-end protocol.
    pub protocol: Protocol,
    /// A cipher suite shared with the hub, for the request and response signatures.
    pub cipher_suite: VerifiableCiphersuite,
    /// The requester's signature key.
    pub requesting_signature_key: SignaturePublicKey,
    /// The requester's (possibly pseudonymous) credential.
    pub requesting_credential: Credential,
    /// `HPKEPublicKey`: the key the response is encrypted to.
    pub group_info_public_key: VLBytes,
    /// A joining code proving permission; empty if none.
    pub joining_code: VLBytes,
    /// `SignWithLabel(requestingSignatureKey, "GroupInfoRequestTBS", GroupInfoRequestTBS)`.
    pub signature: VLBytes,
}

/// The signed part of a [`GroupInfoRequest`].
///
/// ```text
/// struct {
///   Protocol protocol;
///   select (protocol) {
///     case mls10:
///       CipherSuite cipher_suite;
///       SignaturePublicKey requestingSignatureKey;
///       Credential requestingCredential;
///       HPKEPublicKey groupInfoPublicKey;
///       optional opaque joiningCode<V>;
///   };
/// } GroupInfoRequestTBS;
/// ```
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoRequestTBS {
    /// See [`GroupInfoRequest::protocol`].
    pub protocol: Protocol,
    /// See [`GroupInfoRequest::cipher_suite`].
    pub cipher_suite: VerifiableCiphersuite,
    /// See [`GroupInfoRequest::requesting_signature_key`].
    pub requesting_signature_key: SignaturePublicKey,
    /// See [`GroupInfoRequest::requesting_credential`].
    pub requesting_credential: Credential,
    /// See [`GroupInfoRequest::group_info_public_key`].
    pub group_info_public_key: VLBytes,
    /// See [`GroupInfoRequest::joining_code`].
    pub joining_code: VLBytes,
}

impl GroupInfoRequest {
    const NAME: &'static str = "GroupInfoRequest";

    /// Decodes a request body, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes the request body.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }

    /// The signed content.
    pub fn tbs(&self) -> GroupInfoRequestTBS {
        GroupInfoRequestTBS {
            protocol: self.protocol,
            cipher_suite: self.cipher_suite,
            requesting_signature_key: self.requesting_signature_key.clone(),
            requesting_credential: self.requesting_credential.clone(),
            group_info_public_key: self.group_info_public_key.clone(),
            joining_code: self.joining_code.clone(),
        }
    }

    /// The encoded `GroupInfoRequestTBS`, the content for `SignWithLabel` /
    /// `VerifyWithLabel` with label `"GroupInfoRequestTBS"`.
    pub fn tbs_bytes(&self) -> Result<Vec<u8>, FramingError> {
        encode("GroupInfoRequestTBS", &self.tbs())
    }
}

impl GroupInfoRequestTBS {
    /// Combines the signed content with its signature into a request.
    pub fn into_request(self, signature: Vec<u8>) -> GroupInfoRequest {
        GroupInfoRequest {
            protocol: self.protocol,
            cipher_suite: self.cipher_suite,
            requesting_signature_key: self.requesting_signature_key,
            requesting_credential: self.requesting_credential,
            group_info_public_key: self.group_info_public_key,
            joining_code: self.joining_code,
            signature: signature.into(),
        }
    }

    /// Encodes the signed content.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode("GroupInfoRequestTBS", self)
    }
}

/// ```text
/// enum {
///   reserved(0),
///   success(1),
///   notAuthorized(2),
///   noSuchRoom(3),
///   (255)
/// } GroupInfoCode;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum GroupInfoCode {
    /// The GroupInfo and tree follow, encrypted.
    Success = 1,
    /// The requester may not have the GroupInfo.
    NotAuthorized = 2,
    /// No such room (or the hub will not say).
    NoSuchRoom = 3,
}

/// The response body of `POST /groupInfo/{roomId}`.
///
/// ```text
/// struct {
///   Protocol version;
///   opaque room_id<V>;
///   GroupInfoCode status;
///   select (status) {
///     case success:
///       select (protocol) {
///         case mls10:
///           CipherSuite cipher_suite;
///           ExternalSender hub_sender;
///           HPKECiphertext encrypted_groupinfo_and_tree;
///           /* SignWithLabel(hub_sender.signature_key,        */
///           /*  "GroupInfoResponseTBS", GroupInfoResponseTBS) */
///           opaque signature<V>;
///       };
///   default: struct{};
///   };
/// } GroupInfoResponse;
/// ```
///
/// The field the draft calls `version` is the `Protocol` its inner `select (protocol)`
/// refers to.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoResponse {
    /// The end-to-end protocol (the draft's `version`).
    pub protocol: Protocol,
    /// The room's URI.
    pub room_id: IdentifierUri,
    /// `status` and what it selects.
    pub result: GroupInfoResult,
}

/// `GroupInfoResponse.status` with the fields it selects.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum GroupInfoResult {
    /// `success`.
    #[tls_codec(discriminant = 1)]
    Success(GroupInfoSuccess),
    /// `notAuthorized`.
    #[tls_codec(discriminant = 2)]
    NotAuthorized,
    /// `noSuchRoom`.
    #[tls_codec(discriminant = 3)]
    NoSuchRoom,
}

impl GroupInfoResult {
    /// The `status` code.
    pub fn code(&self) -> GroupInfoCode {
        match self {
            GroupInfoResult::Success(_) => GroupInfoCode::Success,
            GroupInfoResult::NotAuthorized => GroupInfoCode::NotAuthorized,
            GroupInfoResult::NoSuchRoom => GroupInfoCode::NoSuchRoom,
        }
    }
}

/// The fields of a successful [`GroupInfoResponse`].
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoSuccess {
    /// The cipher suite of the signature and encryption.
    pub cipher_suite: VerifiableCiphersuite,
    /// The hub's signature key and credential.
    pub hub_sender: ExternalSender,
    /// `EncryptWithLabel(groupInfoPublicKey, "GroupInfo and ratchet_tree encryption",
    /// room_id, GroupInfoRatchetTreeTBE)`.
    pub encrypted_groupinfo_and_tree: HpkeCiphertext,
    /// `SignWithLabel(hub_sender.signature_key, "GroupInfoResponseTBS", GroupInfoResponseTBS)`.
    pub signature: VLBytes,
}

/// The signed part of a successful [`GroupInfoResponse`].
///
/// ```text
/// struct {
///   Protocol version;
///   opaque room_id<V>;
///   GroupInfoCode status;
///   select (protocol) {
///     case mls10:
///       CipherSuite cipher_suite;
///       ExternalSender hub_sender;
///       HPKECiphertext encrypted_groupinfo_and_tree;
///   };
/// } GroupInfoResponseTBS;
/// ```
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoResponseTBS {
    /// See [`GroupInfoResponse::protocol`].
    pub protocol: Protocol,
    /// See [`GroupInfoResponse::room_id`].
    pub room_id: IdentifierUri,
    /// Always [`GroupInfoCode::Success`]: only successful responses are signed.
    pub status: GroupInfoCode,
    /// See [`GroupInfoSuccess::cipher_suite`].
    pub cipher_suite: VerifiableCiphersuite,
    /// See [`GroupInfoSuccess::hub_sender`].
    pub hub_sender: ExternalSender,
    /// See [`GroupInfoSuccess::encrypted_groupinfo_and_tree`].
    pub encrypted_groupinfo_and_tree: HpkeCiphertext,
}

impl GroupInfoResponse {
    const NAME: &'static str = "GroupInfoResponse";

    /// Decodes a response body, rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        decode_exact(Self::NAME, bytes)
    }

    /// Encodes the response body.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode(Self::NAME, self)
    }

    /// The signed content; `None` unless the status is `success` (other responses
    /// carry no signature).
    pub fn tbs(&self) -> Option<GroupInfoResponseTBS> {
        match &self.result {
            GroupInfoResult::Success(success) => Some(GroupInfoResponseTBS {
                protocol: self.protocol,
                room_id: self.room_id.clone(),
                status: GroupInfoCode::Success,
                cipher_suite: success.cipher_suite,
                hub_sender: success.hub_sender.clone(),
                encrypted_groupinfo_and_tree: success.encrypted_groupinfo_and_tree.clone(),
            }),
            GroupInfoResult::NotAuthorized | GroupInfoResult::NoSuchRoom => None,
        }
    }

    /// The encoded `GroupInfoResponseTBS`, if the status is `success`.
    pub fn tbs_bytes(&self) -> Result<Option<Vec<u8>>, FramingError> {
        self.tbs()
            .map(|tbs| encode("GroupInfoResponseTBS", &tbs))
            .transpose()
    }
}

impl GroupInfoResponseTBS {
    /// Encodes the signed content.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        encode("GroupInfoResponseTBS", self)
    }
}

/// A proposal the hub accepted in the current epoch.
///
/// ```text
/// struct {
///     MLSMessage proposal;
///     uint64 hub_accepted_time;
/// } PendingProposal;
/// ```
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct PendingProposal {
    /// A PublicMessage carrying a proposal.
    pub proposal: MlsMessage,
    /// When the hub accepted it, in milliseconds since the UNIX epoch.
    pub hub_accepted_time: u64,
}

/// The plaintext of `encrypted_groupinfo_and_tree`.
///
/// ```text
/// struct {
///   GroupInfo groupInfo;   /* without embedded ratchet_tree */
///   RatchetTreeOption ratchetTreeOption;
///   /* A list of valid pending proposals accepted by the hub */
///   /* during the current epoch                              */
///   PendingProposal pending_proposals<V>;
/// } GroupInfoRatchetTreeTBE;
/// ```
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoRatchetTreeTBE {
    /// The GroupInfo, without a `ratchet_tree` extension (untrusted; verify with openmls).
    pub group_info: VerifiableGroupInfo,
    /// How to get the ratchet tree.
    pub ratchet_tree_option: RatchetTreeOption,
    /// Proposals pending in the current epoch.
    pub pending_proposals: Vec<PendingProposal>,
}

impl GroupInfoRatchetTreeTBE {
    const NAME: &'static str = "GroupInfoRatchetTreeTBE";

    /// Decodes the decrypted plaintext, rejecting trailing bytes and pending
    /// "proposals" that are not PublicMessage proposals.
    pub fn decode(bytes: &[u8]) -> Result<Self, FramingError> {
        let tbe: Self = decode_exact(Self::NAME, bytes)?;
        tbe.check()
            .map_err(|e| FramingError::decoding(Self::NAME, e))?;
        Ok(tbe)
    }

    /// Encodes the plaintext, for `EncryptWithLabel`.
    pub fn encode(&self) -> Result<Vec<u8>, FramingError> {
        self.check().map_err(|e| FramingError::Encode {
            message: Self::NAME,
            reason: e.to_string(),
        })?;
        encode(Self::NAME, self)
    }

    fn check(&self) -> Result<(), tls_codec::Error> {
        for (index, pending) in self.pending_proposals.iter().enumerate() {
            pending.proposal.expect_shape(
                MessageShape::Proposal,
                &format!("pending_proposals[{index}].proposal"),
            )?;
        }
        Ok(())
    }
}
