//! The `plain` flavour: OpenMLS with its RustCrypto provider and in-memory
//! storage, `BasicCredential`s naming the member, groups kept in memory.

use std::collections::HashMap;

use openmls::prelude::{
    BasicCredential, Capabilities, CredentialWithKey, KeyPackageIn, MlsGroup, OpenMlsProvider,
    ProcessedMessageContent, ProtocolVersion, StagedWelcome,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use tls_codec::{Deserialize as _, Serialize as _};

use crate::{
    Fixture, Member, Party, Wire, add_members, build_group, decode_protocol, decode_welcome,
    forget_commit, group_id, join_config,
};

/// The contents of a member's memory storage.
pub type Snapshot = HashMap<Vec<u8>, Vec<u8>>;

impl Member<Snapshot> {
    pub fn provider(&self) -> OpenMlsRustCrypto {
        provider(&self.state)
    }

    pub fn provider_and_group(&self) -> (OpenMlsRustCrypto, MlsGroup) {
        provider_and_group(&self.state)
    }
}

fn provider(state: &Snapshot) -> OpenMlsRustCrypto {
    let p = OpenMlsRustCrypto::default();
    *p.storage().values.write().unwrap() = state.clone();
    p
}

/// A provider with `state` and the group loaded from it (as the application had it
/// in memory).
pub fn provider_and_group(state: &Snapshot) -> (OpenMlsRustCrypto, MlsGroup) {
    let p = provider(state);
    let group = MlsGroup::load(p.storage(), &group_id()).unwrap().unwrap();
    (p, group)
}

fn snapshot(p: &OpenMlsRustCrypto) -> Snapshot {
    p.storage().values.read().unwrap().clone()
}

fn credential(name: String) -> (SignatureKeyPair, CredentialWithKey) {
    let signer = SignatureKeyPair::new(entente_core::mls::SIGNATURE_SCHEME).unwrap();
    let credential = CredentialWithKey {
        credential: BasicCredential::new(name.into_bytes()).into(),
        signature_key: signer.public().into(),
    };
    (signer, credential)
}

pub fn build(n: usize) -> Fixture<Snapshot> {
    let (a, b, x) = (
        OpenMlsRustCrypto::default(),
        OpenMlsRustCrypto::default(),
        OpenMlsRustCrypto::default(),
    );
    let (sa, ca) = credential("member 0".into());
    let (sb, cb) = credential("member 1".into());
    let (sx, cx) = credential("newcomer".into());
    let party = |provider, signer, credential| Party {
        provider,
        signer,
        credential,
    };
    let wire = build_group(
        n,
        &Capabilities::builder().build(),
        party(&a, &sa, ca),
        party(&b, &sb, cb),
        party(&x, &sx, cx),
        &OpenMlsRustCrypto::default(),
        |i| credential(format!("member {i}")),
    );
    let creator_pending = snapshot(&a);
    forget_commit(&a);
    Fixture {
        creator: Member {
            signer: sa,
            state: snapshot(&a),
        },
        creator_pending,
        receiver: Member {
            signer: sb,
            state: snapshot(&b),
        },
        joiner: Member {
            signer: sx,
            state: snapshot(&x),
        },
        wire,
    }
}

/// Validates the claimed KeyPackage and makes the commit adding it.
pub fn commit(
    provider: &impl OpenMlsProvider,
    group: &mut MlsGroup,
    signer: &SignatureKeyPair,
    kp: &[u8],
) -> Wire {
    let kp = KeyPackageIn::tls_deserialize_exact(kp)
        .unwrap()
        .validate(provider.crypto(), ProtocolVersion::Mls10)
        .unwrap();
    add_members(provider, group, signer, vec![kp])
}

pub fn process_commit(provider: &impl OpenMlsProvider, group: &mut MlsGroup, commit: &[u8]) {
    let processed = group
        .process_message(provider, decode_protocol(commit))
        .unwrap();
    let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
        panic!("not a commit");
    };
    group.merge_staged_commit(provider, *staged).unwrap();
}

pub fn join(provider: &impl OpenMlsProvider, welcome: &[u8], tree: &[u8]) -> MlsGroup {
    let (welcome, tree) = decode_welcome(welcome, tree);
    StagedWelcome::new_from_welcome(provider, &join_config(), welcome, Some(tree))
        .unwrap()
        .into_group(provider)
        .unwrap()
}

pub fn encrypt(
    provider: &impl OpenMlsProvider,
    group: &mut MlsGroup,
    signer: &SignatureKeyPair,
    payload: &[u8],
) -> Vec<u8> {
    group
        .create_message(provider, signer, payload)
        .unwrap()
        .tls_serialize_detached()
        .unwrap()
}

pub fn decrypt(provider: &impl OpenMlsProvider, group: &mut MlsGroup, msg: &[u8]) -> Vec<u8> {
    let processed = group
        .process_message(provider, decode_protocol(msg))
        .unwrap();
    let ProcessedMessageContent::ApplicationMessage(app) = processed.into_content() else {
        panic!("not an application message");
    };
    app.into_bytes()
}
