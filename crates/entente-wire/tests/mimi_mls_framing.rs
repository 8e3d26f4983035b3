//! MIMI-06 framing around MLS messages: round trips with hand-built MLS objects, and
//! the draft's `select`s on the embedded message.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod mimi_fixtures;

use entente_wire::mimi::*;
use mimi_fixtures::*;
use openmls::prelude::MlsMessageBodyIn;

// ---------------------------------------------------------------------------
// Round trips with MLS messages.

#[test]
fn commit_bundle_round_trips() {
    let bytes = cat(&[
        &public_commit(),
        &[0x01],
        &welcome(),
        &[0x01], // full
        &group_info(),
        &[0x01], // full tree
        &ratchet_tree(),
    ]);
    let request = UpdateRequest::decode(&bytes).unwrap();
    let HandshakeBundle::Commit {
        commit,
        welcome,
        group_info,
        ratchet_tree,
    } = &request.bundle
    else {
        panic!("expected a commit bundle: {:?}", request.bundle);
    };
    assert_eq!(commit.shape(), MessageShape::Commit);
    assert!(welcome.is_some());
    assert_eq!(group_info.representation(), GroupInfoRepresentation::Full);
    assert_eq!(
        ratchet_tree.representation(),
        RatchetTreeRepresentation::Full
    );
    assert_eq!(request.bundle.proposal_or_commit(), commit);
    assert_eq!(request.encode().unwrap(), bytes);
    assert!(commit.clone().into_protocol_message().is_some());

    // Without a Welcome, with a partial GroupInfo and a hub-built tree.
    let bytes = cat(&[
        &public_commit(),
        &[0x00],
        &[0x02, 0x01],
        &vl(b""),
        &vl(&[0xAA; 64]),
        &[0x04],
    ]);
    let request = UpdateRequest::decode(&bytes).unwrap();
    let HandshakeBundle::Commit { group_info, .. } = &request.bundle else {
        panic!("expected a commit bundle");
    };
    let GroupInfoOption::Partial(partial) = group_info else {
        panic!("expected a partial GroupInfo");
    };
    assert_eq!(partial.ratchet_tree_presence, RatchetTreePresence::Present);
    assert_eq!(request.encode().unwrap(), bytes);
}

#[test]
fn proposal_bundle_round_trips() {
    let bytes = cat(&[
        &public_proposal(1),
        &vl(&cat(&[&public_proposal(2), &public_proposal(3)])),
    ]);
    let request = UpdateRequest::decode(&bytes).unwrap();
    let HandshakeBundle::Proposal { more_proposals, .. } = &request.bundle else {
        panic!("expected a proposal bundle");
    };
    assert_eq!(more_proposals.len(), 2);
    assert_eq!(request.encode().unwrap(), bytes);
}

#[test]
fn handshake_bundle_rejects_messages_the_hub_cannot_see_or_use() {
    for (name, bytes) in [
        ("application", cat(&[&private_application(), &[0x00]])),
        ("private commit", cat(&[&private_message(3), &[0x00]])),
        ("private proposal", cat(&[&private_message(2), &[0x00]])),
        ("welcome", cat(&[&welcome_message(), &[0x00]])),
        (
            "commit in moreProposals",
            cat(&[&public_proposal(1), &vl(&public_commit())]),
        ),
        (
            "application in moreProposals",
            cat(&[&public_proposal(1), &vl(&private_application())]),
        ),
    ] {
        let err = UpdateRequest::decode(&bytes).unwrap_err();
        assert!(
            matches!(err, FramingError::Malformed { .. }),
            "{name}: {err}"
        );
    }
    let err = UpdateRequest::decode(&cat(&[&private_message(3), &[0x00]])).unwrap_err();
    assert!(
        err.to_string()
            .contains("found PrivateMessage carrying a commit"),
        "{err}"
    );
}

#[test]
fn inconsistent_bundles_are_refused_when_encoding() {
    let bundle = HandshakeBundle::Commit {
        commit: mls(&public_proposal(1)),
        welcome: None,
        group_info: GroupInfoOption::Full(Box::new(decoded(&group_info()))),
        ratchet_tree: RatchetTreeOption::DistributionService,
    };
    let err = UpdateRequest { bundle }.encode().unwrap_err();
    assert!(matches!(err, FramingError::Encode { .. }), "{err}");

    let fanout = FanoutMessage {
        timestamp: 1,
        event: FanoutEvent::Application {
            message: mls(&public_commit()),
            frank: None,
        },
    };
    assert!(matches!(fanout.encode(), Err(FramingError::Encode { .. })));
}

#[test]
fn submit_message_request_round_trips() {
    let bytes = cat(&[
        &[0x01],
        &private_application(),
        &uri("mimi://b.example/u/alice"),
    ]);
    let request = SubmitMessageRequest::decode(&bytes).unwrap();
    assert_eq!(request.app_message.shape(), MessageShape::Application);
    assert_eq!(request.encode().unwrap(), bytes);
    assert!(matches!(
        request.app_message.body(),
        MlsMessageBodyIn::PrivateMessage(_)
    ));

    for wrong in [
        public_proposal(1),
        public_commit(),
        private_message(3),
        welcome_message(),
    ] {
        let bytes = cat(&[&[0x01], &wrong, &uri("mimi://b.example/u/alice")]);
        let err = SubmitMessageRequest::decode(&bytes).unwrap_err();
        assert!(err.to_string().contains("appMessage must be"), "{err}");
    }
}

#[test]
fn fanout_messages_round_trip() {
    for (bytes, shape) in fanout_examples() {
        let message = FanoutMessage::decode(&bytes).unwrap();
        assert_eq!(message.event.message().shape(), shape);
        assert_eq!(message.encode().unwrap(), bytes);
    }
    let with_frank = FanoutMessage::decode(&fanout_examples()[0].0).unwrap();
    assert_eq!(
        with_frank.event,
        FanoutEvent::Application {
            message: mls(&private_application()),
            frank: Some(frank()),
        }
    );
    assert_eq!(with_frank.timestamp, 1);
}

#[test]
fn fanout_batches_concatenate() {
    let examples = fanout_examples();
    let body: Vec<u8> = examples.iter().flat_map(|(b, _)| b.clone()).collect();
    let messages = decode_fanout_batch(&body).unwrap();
    assert_eq!(messages.len(), examples.len());
    assert_eq!(encode_fanout_batch(&messages).unwrap(), body);
    // A single message is a batch of one.
    assert_eq!(decode_fanout_batch(&examples[2].0).unwrap().len(), 1);
    // But FanoutMessage::decode refuses a batch.
    assert!(matches!(
        FanoutMessage::decode(&body),
        Err(FramingError::TrailingBytes { .. })
    ));

    assert_eq!(decode_fanout_batch(&[]), Err(FramingError::EmptyBatch));
    assert!(encode_fanout_batch(&[]).is_err());

    // The second message is cut short: the error says which one.
    let mut truncated = examples[0].0.clone();
    truncated.extend_from_slice(&examples[1].0[..examples[1].0.len() - 1]);
    let err = decode_fanout_batch(&truncated).unwrap_err();
    assert!(
        matches!(err, FramingError::InBatch { index: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("#1"), "{err}");
}

#[test]
fn fanout_rejects_shapes_without_a_branch() {
    for (name, message) in [
        ("group info", group_info_message()),
        ("private commit", private_message(3)),
        ("private proposal", private_message(2)),
    ] {
        let bytes = cat(&[&1u64.to_be_bytes(), &message, &[0x00]]);
        let err = FanoutMessage::decode(&bytes).unwrap_err();
        assert!(
            matches!(err, FramingError::Malformed { .. }),
            "{name}: {err}"
        );
    }
    let bytes = cat(&[
        &1u64.to_be_bytes(),
        &public_commit(),
        &vl(&private_application()),
    ]);
    let err = FanoutMessage::decode(&bytes).unwrap_err();
    assert!(err.to_string().contains("externalProposals[0]"), "{err}");
}

#[test]
fn group_info_tbe_round_trips() {
    let bytes = cat(&[
        &group_info(),
        &[0x04],
        &vl(&cat(&[&public_proposal(1), &3u64.to_be_bytes()])),
    ]);
    let tbe = GroupInfoRatchetTreeTBE::decode(&bytes).unwrap();
    assert_eq!(tbe.pending_proposals[0].hub_accepted_time, 3);
    assert_eq!(tbe.encode().unwrap(), bytes);
    let bad = cat(&[
        &group_info(),
        &[0x04],
        &vl(&cat(&[&public_commit(), &3u64.to_be_bytes()])),
    ]);
    assert!(matches!(
        GroupInfoRatchetTreeTBE::decode(&bad),
        Err(FramingError::Malformed { .. })
    ));
}
