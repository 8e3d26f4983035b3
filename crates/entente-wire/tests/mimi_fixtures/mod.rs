//! Hand-built TLS encodings of MLS objects (RFC 9420) and MIMI structs, so framing
//! tests need no MLS crypto provider. Signatures and MACs are filler bytes: nothing
//! here is verified, only decoded.
#![allow(dead_code, reason = "each test file uses a different subset")]

use entente_wire::mimi::{Frank, MessageShape, MlsMessage};
use openmls::prelude::{MlsMessageIn, VerifiableCiphersuite};
use tls_codec::Deserialize;

/// An MLS variable-length vector: QUIC varint length, then the bytes.
pub fn vl(bytes: &[u8]) -> Vec<u8> {
    let len = bytes.len();
    let mut out = if len < 0x40 {
        vec![len as u8]
    } else if len < 0x4000 {
        vec![0x40 | (len >> 8) as u8, len as u8]
    } else {
        assert!(len < 0x4000_0000);
        (0x8000_0000u32 | len as u32).to_be_bytes().to_vec()
    };
    out.extend_from_slice(bytes);
    out
}

/// Concatenates byte strings.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub const MLS10: [u8; 2] = [0x00, 0x01];
/// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.
pub const SUITE_1: [u8; 2] = [0x00, 0x01];

fn framed_header(content_type: u8) -> Vec<u8> {
    cat(&[
        &vl(b"group-1"),     // group_id
        &7u64.to_be_bytes(), // epoch
        &[0x01],             // sender_type member
        &0u32.to_be_bytes(), // leaf_index
        &vl(b""),            // authenticated_data
        &[content_type],
    ])
}

/// MLSMessage: PublicMessage carrying a Remove proposal for leaf `removed`.
pub fn public_proposal(removed: u32) -> Vec<u8> {
    cat(&[
        &MLS10,
        &[0x00, 0x01], // wire_format public_message
        &framed_header(0x02),
        &[0x00, 0x03], // proposal_type remove
        &removed.to_be_bytes(),
        &vl(&[0xAA; 64]), // signature
        &vl(&[0xBB; 32]), // membership_tag
    ])
}

/// MLSMessage: PublicMessage carrying an empty commit.
pub fn public_commit() -> Vec<u8> {
    cat(&[
        &MLS10,
        &[0x00, 0x01],
        &framed_header(0x03),
        &vl(b""),         // proposals
        &[0x00],          // no path
        &vl(&[0xAA; 64]), // signature
        &vl(&[0xCC; 32]), // confirmation_tag
        &vl(&[0xBB; 32]), // membership_tag
    ])
}

/// MLSMessage: PrivateMessage with the given content type (1 application, 2 proposal,
/// 3 commit).
pub fn private_message(content_type: u8) -> Vec<u8> {
    cat(&[
        &MLS10,
        &[0x00, 0x02], // wire_format private_message
        &vl(b"group-1"),
        &7u64.to_be_bytes(),
        &[content_type],
        &vl(b""),         // authenticated_data
        &vl(&[0x11; 16]), // encrypted_sender_data
        &vl(&[0x22; 48]), // ciphertext
    ])
}

/// MLSMessage: PrivateMessage carrying an application message.
pub fn private_application() -> Vec<u8> {
    private_message(0x01)
}

/// A bare Welcome.
pub fn welcome() -> Vec<u8> {
    let secret = cat(&[
        &vl(&[0x33; 32]), // new_member KeyPackageRef
        &vl(&[0x44; 32]), // kem_output
        &vl(&[0x55; 48]), // ciphertext
    ]);
    cat(&[&SUITE_1, &vl(&secret), &vl(&[0x66; 80])])
}

/// MLSMessage: Welcome.
pub fn welcome_message() -> Vec<u8> {
    cat(&[&MLS10, &[0x00, 0x03], &welcome()])
}

/// A bare GroupInfo without extensions.
pub fn group_info() -> Vec<u8> {
    let group_context = cat(&[
        &MLS10,
        &SUITE_1,
        &vl(b"group-1"),
        &8u64.to_be_bytes(),
        &vl(&[0x77; 32]), // tree_hash
        &vl(&[0x88; 32]), // confirmed_transcript_hash
        &vl(b""),         // extensions
    ]);
    cat(&[
        &group_context,
        &vl(b""),            // extensions
        &vl(&[0xCC; 32]),    // confirmation_tag
        &0u32.to_be_bytes(), // signer
        &vl(&[0xAA; 64]),    // signature
    ])
}

/// MLSMessage: GroupInfo.
pub fn group_info_message() -> Vec<u8> {
    cat(&[&MLS10, &[0x00, 0x04], &group_info()])
}

/// A basic credential.
pub fn credential(identity: &[u8]) -> Vec<u8> {
    cat(&[&[0x00, 0x01], &vl(identity)])
}

/// A signature public key.
pub fn signature_key() -> Vec<u8> {
    vl(&[0x99; 32])
}

/// Capabilities: mls10, suite 1, no extensions or proposals, basic credentials.
pub fn capabilities() -> Vec<u8> {
    cat(&[
        &vl(&MLS10),
        &vl(&SUITE_1),
        &vl(b""),
        &vl(b""),
        &vl(&[0x00, 0x01]),
    ])
}

/// RequiredCapabilities: no extensions or proposals, basic credentials.
pub fn required_capabilities() -> Vec<u8> {
    cat(&[&vl(b""), &vl(b""), &vl(&[0x00, 0x01])])
}

/// A LeafNode with source key_package.
pub fn leaf_node() -> Vec<u8> {
    cat(&[
        &vl(&[0x12; 32]), // encryption_key
        &signature_key(),
        &credential(b"mimi://b.example/d/bob/phone"),
        &capabilities(),
        &[0x01], // leaf_node_source key_package
        &0u64.to_be_bytes(),
        &u64::MAX.to_be_bytes(),
        &vl(b""),         // extensions
        &vl(&[0xAA; 64]), // signature
    ])
}

/// A bare KeyPackage.
pub fn key_package() -> Vec<u8> {
    cat(&[
        &MLS10,
        &SUITE_1,
        &vl(&[0x13; 32]), // init_key
        &leaf_node(),
        &vl(b""),         // extensions
        &vl(&[0xAA; 64]), // signature
    ])
}

/// A ratchet tree (`optional<Node> ratchet_tree<V>`) with one leaf.
pub fn ratchet_tree() -> Vec<u8> {
    vl(&cat(&[&[0x01], &[0x01], &leaf_node()]))
}

/// An IdentifierUri.
pub fn uri(text: &str) -> Vec<u8> {
    vl(text.as_bytes())
}

/// Decodes an MLSMessage fixture.
pub fn mls(bytes: &[u8]) -> MlsMessage {
    MlsMessage::from(MlsMessageIn::tls_deserialize_exact(bytes).unwrap())
}

pub fn decoded<T: Deserialize>(bytes: &[u8]) -> T {
    T::tls_deserialize_exact(bytes).unwrap()
}

pub fn frank_bytes() -> Vec<u8> {
    cat(&[&[0x5A; 32], &SUITE_1, &vl(&[0xF0; 64])])
}

pub fn frank() -> Frank {
    Frank {
        server_frank: [0x5A; 32],
        franking_signature_ciphersuite: VerifiableCiphersuite::new(1),
        franking_integrity_signature: vec![0xF0; 64].into(),
    }
}

pub fn key_material_request_tbs_bytes() -> Vec<u8> {
    cat(&[
        &[0x01],
        &uri("mimi://a.example/u/alice"),
        &uri("mimi://b.example/u/bob"),
        &uri("mimi://a.example/r/clubhouse"),
        &vl(&[0x00, 0x01, 0x0A, 0x0A]), // suite 1 and a GREASE value
        &required_capabilities(),
        &signature_key(),
        &credential(b"mimi://a.example/d/alice/laptop"),
    ])
}

/// FanoutMessage encodings and the shape of their MLS message.
pub fn fanout_examples() -> Vec<(Vec<u8>, MessageShape)> {
    vec![
        (
            cat(&[
                &1u64.to_be_bytes(),
                &private_application(),
                &[0x01],
                &frank_bytes(),
            ]),
            MessageShape::Application,
        ),
        (
            cat(&[&2u64.to_be_bytes(), &private_application(), &[0x00]]),
            MessageShape::Application,
        ),
        (
            cat(&[&3u64.to_be_bytes(), &welcome_message(), &[0x04]]),
            MessageShape::Welcome,
        ),
        (
            cat(&[
                &4u64.to_be_bytes(),
                &public_proposal(1),
                &vl(&public_proposal(2)),
            ]),
            MessageShape::Proposal,
        ),
        (
            cat(&[
                &5u64.to_be_bytes(),
                &public_commit(),
                &vl(&cat(&[&public_proposal(2), &public_proposal(3)])),
            ]),
            MessageShape::Commit,
        ),
        (
            cat(&[
                &6u64.to_be_bytes(),
                &welcome_message(),
                &[0x01],
                &ratchet_tree(),
            ]),
            MessageShape::Welcome,
        ),
    ]
}
