//! How a GroupInfo and ratchet tree travel with a commit or Welcome:
//! `GroupInfoOption` (draft-ietf-mimi-protocol-06 section 5.3) and `RatchetTreeOption`
//! / `PartialGroupInfo` (draft-mahy-mls-ratchet-tree-options-02).

use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::{Extension, RatchetTreeIn};
use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

/// ```text
/// enum {
///   reserved(0),
///   full(1),
///   partial(2),
///   (255)
/// } GroupInfoRepresentation;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum GroupInfoRepresentation {
    /// The whole GroupInfo is included.
    Full = 1,
    /// A [`PartialGroupInfo`]; the hub reconstructs the rest.
    Partial = 2,
}

/// The GroupInfo sent with a commit, for the hub.
///
/// ```text
/// struct {
///    GroupInfoRepresentation representation;
///    select (representation) {
///      case full:
///        GroupInfo groupInfo;
///      case partial:
///        PartialGroupInfo partialGroupInfo;
///    }
/// } GroupInfoOption;
/// ```
///
/// The GroupInfo omits the `ratchet_tree` extension; the tree travels in a
/// [`RatchetTreeOption`]. `partial` decodes, but Entente's hub does not reconstruct
/// GroupInfos and refuses it above this layer.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum GroupInfoOption {
    /// `full`: the signed GroupInfo (untrusted; verify with openmls).
    #[tls_codec(discriminant = 1)]
    Full(Box<VerifiableGroupInfo>),
    /// `partial`.
    #[tls_codec(discriminant = 2)]
    Partial(PartialGroupInfo),
}

impl GroupInfoOption {
    /// The `representation` code.
    pub fn representation(&self) -> GroupInfoRepresentation {
        match self {
            GroupInfoOption::Full(_) => GroupInfoRepresentation::Full,
            GroupInfoOption::Partial(_) => GroupInfoRepresentation::Partial,
        }
    }
}

/// Whether a `ratchet_tree` GroupInfo extension is in the current and previous epochs
/// (draft-mahy-mls-ratchet-tree-options-02 section 4).
///
/// ```text
/// enum {
///   no_ratchet_tree(0),
///   present(1),
///   removed(2),
///   added(3),
///   (255)
/// } RatchetTreePresence;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum RatchetTreePresence {
    /// In neither epoch.
    NoRatchetTree = 0,
    /// In both epochs.
    Present = 1,
    /// In the previous epoch only.
    Removed = 2,
    /// In the current epoch only.
    Added = 3,
}

/// The parts of a GroupInfo a hub cannot rebuild from public handshake messages
/// (draft-mahy-mls-ratchet-tree-options-02 section 4).
///
/// ```text
/// struct {
///   RatchetTreePresence ratchet_tree_presence;
///   /* GroupInfo extensions excluding ratchet_tree */
///   Extension group_info_extensions<V>;
///   opaque signature<V>;
/// } PartialGroupInfo;
/// ```
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct PartialGroupInfo {
    /// Whether a `ratchet_tree` extension is present now and in the previous epoch.
    pub ratchet_tree_presence: RatchetTreePresence,
    /// GroupInfo extensions other than `ratchet_tree`.
    pub group_info_extensions: Vec<Extension>,
    /// The committer's GroupInfo signature.
    pub signature: VLBytes,
}

/// ```text
/// enum {
///   reserved(0),
///   full(1),
///   httpsUri(2),
///   outOfBand(3),
///   distributionService(4),
///   (255)
/// } RatchetTreeRepresentation;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum RatchetTreeRepresentation {
    /// The tree is included.
    Full = 1,
    /// The tree can be fetched from an HTTPS URL.
    HttpsUri = 2,
    /// The tree is conveyed out of band.
    OutOfBand = 3,
    /// The distribution service (hub) rebuilds the tree.
    DistributionService = 4,
}

/// How the ratchet tree is conveyed (draft-mahy-mls-ratchet-tree-options-02 section 3).
///
/// ```text
/// struct {
///   RatchetTreeRepresentation representation;
///   select (representation) {
///     case full:
///       Node ratchet_tree<V>;
///     case httpsUrl:
///       /* an HTTPS URL */
///       opaque ratchet_tree_url<V>;
///       opaque tree_signature<V>;
///     case outOfBand:
///       opaque tree_signature<V>;
///     case distributionService:
///       struct {};
///   };
/// } RatchetTreeOption;
/// ```
///
/// `full` carries the content of the RFC 9420 `ratchet_tree` extension, which is
/// `optional<Node> ratchet_tree<V>` (blank nodes are `None`); the draft's
/// `Node ratchet_tree<V>` cannot express blanks, and its text says the full
/// `ratchet_tree` extension is included. `case httpsUrl` is read as `case httpsUri`.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum RatchetTreeOption {
    /// `full`: the whole tree (untrusted; openmls validates it on join).
    #[tls_codec(discriminant = 1)]
    Full(RatchetTreeIn),
    /// `httpsUri`: fetch the tree from `ratchet_tree_url`.
    #[tls_codec(discriminant = 2)]
    HttpsUri {
        /// An HTTPS URL.
        ratchet_tree_url: VLBytes,
        /// Signature over the tree.
        tree_signature: VLBytes,
    },
    /// `outOfBand`.
    #[tls_codec(discriminant = 3)]
    OutOfBand {
        /// Signature over the tree.
        tree_signature: VLBytes,
    },
    /// `distributionService`: the hub rebuilds the tree from public handshakes.
    #[tls_codec(discriminant = 4)]
    DistributionService,
}

impl RatchetTreeOption {
    /// The `representation` code.
    pub fn representation(&self) -> RatchetTreeRepresentation {
        match self {
            RatchetTreeOption::Full(_) => RatchetTreeRepresentation::Full,
            RatchetTreeOption::HttpsUri { .. } => RatchetTreeRepresentation::HttpsUri,
            RatchetTreeOption::OutOfBand { .. } => RatchetTreeRepresentation::OutOfBand,
            RatchetTreeOption::DistributionService => {
                RatchetTreeRepresentation::DistributionService
            }
        }
    }
}
