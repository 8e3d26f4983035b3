//! Decoders never panic: random bytes, and valid encodings with bytes flipped,
//! truncated or spliced.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod mimi_fixtures;

use entente_wire::mimi::*;
use mimi_fixtures::*;
use proptest::prelude::*;

fn decode_all(bytes: &[u8]) {
    let _ = KeyMaterialRequest::decode(bytes);
    let _ = KeyMaterialResponse::decode(bytes);
    let _ = UpdateRequest::decode(bytes);
    let _ = UpdateRoomResponse::decode(bytes);
    let _ = SubmitMessageRequest::decode(bytes);
    let _ = SubmitMessageResponse::decode(bytes);
    let _ = FanoutMessage::decode(bytes);
    let _ = decode_fanout_batch(bytes);
    let _ = GroupInfoRequest::decode(bytes);
    let _ = GroupInfoResponse::decode(bytes);
    let _ = GroupInfoRatchetTreeTBE::decode(bytes);
    let _ = ParticipantListData::decode(bytes);
    let _ = ParticipantListUpdate::decode(bytes);
    let _ = RoomMetaData::decode(bytes);
    let _ = RoleData::decode(bytes);
    let _ = IdentifierRequest::decode(bytes);
    let _ = IdentifierResponse::decode(bytes);
    let _ = AbuseReport::decode(bytes);
    let _ = FrankAAD::decode(bytes);
    let _ = FrankingAgentData::decode(bytes);
}

/// Valid bodies whose mutations reach deep into the decoders.
fn seeds() -> Vec<Vec<u8>> {
    vec![
        cat(&[
            &public_commit(),
            &[0x01],
            &welcome(),
            &[0x01],
            &group_info(),
            &[0x01],
            &ratchet_tree(),
        ]),
        cat(&[&public_proposal(1), &vl(&public_proposal(2))]),
        cat(&[&1u64.to_be_bytes(), &private_application(), &[0x00]]),
        cat(&[
            &3u64.to_be_bytes(),
            &welcome_message(),
            &[0x01],
            &ratchet_tree(),
        ]),
        cat(&[
            &[0x01, 0x00],
            &uri("mimi://b.example/u/bob"),
            &vl(&cat(&[
                &[0x00],
                &uri("mimi://b.example/d/bob/phone"),
                &key_package(),
            ])),
        ]),
        cat(&[
            &[0x01],
            &private_application(),
            &uri("mimi://b.example/u/alice"),
        ]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_all(&bytes);
    }

    #[test]
    fn mutated_encodings_never_panic(
        seed in 0usize..6,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = seeds()[seed].clone();
        for (index, value) in flips {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        decode_all(&bytes);
        // Whatever decodes re-encodes to something that decodes to the same value.
        if let Ok(request) = UpdateRequest::decode(&bytes) {
            let again = UpdateRequest::decode(&request.encode().unwrap()).unwrap();
            prop_assert_eq!(again, request);
        }
        if let Ok(message) = FanoutMessage::decode(&bytes) {
            let again = FanoutMessage::decode(&message.encode().unwrap()).unwrap();
            prop_assert_eq!(again, message);
        }
    }
}
