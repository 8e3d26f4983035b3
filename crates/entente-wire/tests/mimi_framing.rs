//! MIMI-06 framing of the non-MLS structs: exact encodings written by hand from the
//! draft, and the directory document.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod mimi_fixtures;

use entente_wire::ids::UserId;
use entente_wire::mimi::*;
use mimi_fixtures::*;
use openmls::prelude::{MlsMessageIn, VerifiableCiphersuite};
use tls_codec::{Deserialize, VLBytes};

// ---------------------------------------------------------------------------
// The hand-built MLS fixtures are understood by openmls.

#[test]
fn fixtures_decode_with_openmls() {
    for (name, bytes, shape) in [
        ("proposal", public_proposal(1), MessageShape::Proposal),
        ("commit", public_commit(), MessageShape::Commit),
        (
            "application",
            private_application(),
            MessageShape::Application,
        ),
        ("private commit", private_message(3), MessageShape::Other),
        ("private proposal", private_message(2), MessageShape::Other),
        ("welcome", welcome_message(), MessageShape::Welcome),
        ("group info", group_info_message(), MessageShape::Other),
    ] {
        let message =
            MlsMessageIn::tls_deserialize_exact(&bytes).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(MlsMessage::from(message).shape(), shape, "{name}");
    }
    let _: openmls::prelude::KeyPackageIn = decoded(&key_package());
    let _: openmls::prelude::RatchetTreeIn = decoded(&ratchet_tree());
    let _: openmls::prelude::Welcome = decoded(&welcome());
}

// ---------------------------------------------------------------------------
// Exact encodings of the non-MLS structs.

#[test]
fn submit_message_response_exact_bytes() {
    let cases = [
        (
            SubmitOutcome::Accepted {
                accepted_timestamp: 0x0102_0304_0506_0708,
                frank: None,
            },
            vec![1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0],
        ),
        (
            SubmitOutcome::Accepted {
                accepted_timestamp: 1,
                frank: Some(frank()),
            },
            cat(&[&[1, 0], &1u64.to_be_bytes(), &[1], &frank_bytes()]),
        ),
        (SubmitOutcome::NotAllowed, vec![1, 1]),
        (
            SubmitOutcome::EpochTooOld { current_epoch: 9 },
            vec![1, 2, 0, 0, 0, 0, 0, 0, 0, 9],
        ),
    ];
    for (outcome, bytes) in cases {
        let response = SubmitMessageResponse {
            protocol: Protocol::Mls10,
            outcome,
        };
        assert_eq!(response.encode().unwrap(), bytes);
        assert_eq!(SubmitMessageResponse::decode(&bytes).unwrap(), response);
    }
    assert_eq!(
        SubmitOutcome::EpochTooOld { current_epoch: 0 }.code(),
        SubmitResponseCode::EpochTooOld
    );
}

#[test]
fn update_room_response_exact_bytes() {
    let cases = [
        (
            UpdateOutcome::Success {
                accepted_timestamp: 5,
            },
            "",
            cat(&[&[0], &vl(b""), &5u64.to_be_bytes()]),
        ),
        (
            UpdateOutcome::WrongEpoch { current_epoch: 42 },
            "epoch is 42",
            cat(&[&[1], &vl(b"epoch is 42"), &42u64.to_be_bytes()]),
        ),
        (
            UpdateOutcome::NotAllowed,
            "banned",
            cat(&[&[2], &vl(b"banned")]),
        ),
        (
            UpdateOutcome::InvalidProposal {
                invalid_proposals: vec![decoded(&vl(&[0xAB; 32])), decoded(&vl(&[0xCD; 32]))],
            },
            "",
            cat(&[
                &[3],
                &vl(b""),
                &vl(&cat(&[&vl(&[0xAB; 32]), &vl(&[0xCD; 32])])),
            ]),
        ),
    ];
    for (outcome, description, bytes) in cases {
        let response = UpdateRoomResponse {
            error_description: description.into(),
            outcome,
        };
        assert_eq!(response.encode().unwrap(), bytes, "{response:?}");
        assert_eq!(UpdateRoomResponse::decode(&bytes).unwrap(), response);
    }
    // errorDescription must be UTF-8.
    let bad = cat(&[&[2], &vl(&[0xFF, 0xFE])]);
    assert!(matches!(
        UpdateRoomResponse::decode(&bad),
        Err(FramingError::Malformed { .. })
    ));
    // Unknown response code.
    assert!(matches!(
        UpdateRoomResponse::decode(&cat(&[&[4], &vl(b"")])),
        Err(FramingError::UnknownValue { value: 4, .. })
    ));
}

#[test]
fn key_material_request_exact_bytes_and_tbs() {
    let bytes = cat(&[&key_material_request_tbs_bytes(), &vl(&[0xEE; 64])]);
    let request = KeyMaterialRequest::decode(&bytes).unwrap();
    assert_eq!(request.protocol, Protocol::Mls10);
    assert_eq!(
        request.requesting_user.to_user_id().unwrap(),
        UserId::parse_handle("alice@a.example").unwrap()
    );
    assert_eq!(request.target_user.as_str(), Some("mimi://b.example/u/bob"));
    assert_eq!(
        request.room_id.to_room_id().unwrap().local_part(),
        "clubhouse"
    );
    let suites: Vec<u16> = request
        .acceptable_ciphersuites
        .iter()
        .map(VerifiableCiphersuite::value)
        .collect();
    assert_eq!(suites, [0x0001, 0x0A0A]);
    assert_eq!(
        request.key_material_request_signature.as_slice(),
        [0xEE; 64]
    );
    assert_eq!(request.encode().unwrap(), bytes);
    assert_eq!(
        request.tbs_bytes().unwrap(),
        key_material_request_tbs_bytes()
    );
    let tbs = request.tbs();
    assert_eq!(tbs.encode().unwrap(), key_material_request_tbs_bytes());
    assert_eq!(tbs.into_request(vec![0xEE; 64]), request);
}

#[test]
fn key_material_request_needs_a_ciphersuite() {
    let mut bytes = cat(&[
        &[0x01],
        &uri("mimi://a.example/u/alice"),
        &uri("mimi://b.example/u/bob"),
        &vl(b""), // no room
        &vl(b""), // no cipher suites
        &required_capabilities(),
        &signature_key(),
        &credential(b"alice"),
    ]);
    bytes.extend(vl(&[0xEE; 64]));
    let err = KeyMaterialRequest::decode(&bytes).unwrap_err();
    assert!(
        err.to_string().contains("acceptableCiphersuites is empty"),
        "{err}"
    );
}

#[test]
fn key_material_response_round_trips() {
    let bob = "mimi://b.example/u/bob";
    let bytes = cat(&[
        &[0x01, 0x01], // mls10, partialSuccess
        &uri(bob),
        &vl(&cat(&[
            &[0x00],
            &uri("mimi://b.example/d/bob/phone"),
            &key_package(),
            &[0x01],
            &uri("mimi://b.example/d/bob/laptop"),
            &[0x02],
            &uri("mimi://b.example/d/bob/watch"),
            &[0x01],
            &capabilities(),
            &[0x02],
            &uri("mimi://b.example/d/bob/tv"),
            &[0x00],
        ])),
    ]);
    let response = KeyMaterialResponse::decode(&bytes).unwrap();
    assert_eq!(response.user_status, KeyMaterialUserCode::PartialSuccess);
    let codes: Vec<_> = response.clients.iter().map(|c| c.material.code()).collect();
    assert_eq!(
        codes,
        [
            KeyMaterialClientCode::Success,
            KeyMaterialClientCode::KeyMaterialExhausted,
            KeyMaterialClientCode::NothingCompatible,
            KeyMaterialClientCode::NothingCompatible,
        ]
    );
    assert!(matches!(
        response.clients[2].material,
        ClientMaterial::NothingCompatible(Some(_))
    ));
    assert!(matches!(
        response.clients[3].material,
        ClientMaterial::NothingCompatible(None)
    ));
    assert_eq!(
        response.clients[0]
            .client_uri
            .to_client_id()
            .unwrap()
            .device(),
        "phone"
    );
    assert_eq!(response.encode().unwrap(), bytes);

    let unknown = KeyMaterialResponse {
        protocol: Protocol::Mls10,
        user_status: KeyMaterialUserCode::UserUnknown,
        user_uri: IdentifierUri::new(bob),
        clients: vec![],
    };
    assert_eq!(
        unknown.encode().unwrap(),
        cat(&[&[0x01, 0x04], &uri(bob), &[0x00]])
    );
}

#[test]
fn key_material_response_without_clients_for_failure_codes() {
    let bytes = cat(&[
        &[0x01, 0x05], // noConsent
        &uri("mimi://b.example/u/bob"),
        &vl(&cat(&[&[0x01], &uri("mimi://b.example/d/bob/phone")])),
    ]);
    let err = KeyMaterialResponse::decode(&bytes).unwrap_err();
    assert!(matches!(err, FramingError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("NoConsent"), "{err}");
    let response = KeyMaterialResponse {
        protocol: Protocol::Mls10,
        user_status: KeyMaterialUserCode::NoConsent,
        user_uri: IdentifierUri::new("mimi://b.example/u/bob"),
        clients: vec![ClientKeyMaterial {
            client_uri: IdentifierUri::new("mimi://b.example/d/bob/phone"),
            material: ClientMaterial::KeyMaterialExhausted,
        }],
    };
    assert!(matches!(
        response.encode(),
        Err(FramingError::Encode { .. })
    ));
    // noCompatibleMaterial may list clients.
    let bytes = cat(&[
        &[0x01, 0x03],
        &uri("mimi://b.example/u/bob"),
        &vl(&cat(&[
            &[0x02],
            &uri("mimi://b.example/d/bob/phone"),
            &[0x00],
        ])),
    ]);
    KeyMaterialResponse::decode(&bytes).unwrap();
}

#[test]
fn participant_list_exact_bytes() {
    let data = ParticipantListData {
        participants: vec![
            UserRolePair {
                user: IdentifierUri::new("mimi://a.example/u/alice"),
                role_index: 4,
            },
            UserRolePair {
                user: IdentifierUri::new("mimi://b.example/u/bob"),
                role_index: 1,
            },
        ],
    };
    let bytes = vl(&cat(&[
        &uri("mimi://a.example/u/alice"),
        &4u32.to_be_bytes(),
        &uri("mimi://b.example/u/bob"),
        &1u32.to_be_bytes(),
    ]));
    assert_eq!(data.encode().unwrap(), bytes);
    assert_eq!(ParticipantListData::decode(&bytes).unwrap(), data);

    let update = ParticipantListUpdate {
        changed_role_participants: vec![UserindexRolePair {
            user_index: 1,
            role_index: 3,
        }],
        removed_indices: vec![0, 2],
        added_participants: vec![UserRolePair {
            user: IdentifierUri::new("mimi://d.example/u/diana"),
            role_index: 4,
        }],
    };
    let bytes = cat(&[
        &vl(&cat(&[&1u32.to_be_bytes(), &3u32.to_be_bytes()])),
        &vl(&cat(&[&0u32.to_be_bytes(), &2u32.to_be_bytes()])),
        &vl(&cat(&[
            &uri("mimi://d.example/u/diana"),
            &4u32.to_be_bytes(),
        ])),
    ]);
    assert_eq!(update.encode().unwrap(), bytes);
    assert_eq!(ParticipantListUpdate::decode(&bytes).unwrap(), update);
    assert_eq!(
        ParticipantListUpdate::default().encode().unwrap(),
        [0, 0, 0]
    );
    // removedIndices whose length is not a multiple of 4.
    let bad = cat(&[&vl(b""), &vl(&[0, 0, 1]), &vl(b"")]);
    assert!(ParticipantListUpdate::decode(&bad).is_err());
}

#[test]
fn room_metadata_exact_bytes() {
    let metadata = RoomMetaData {
        room_uri: Uri::new("mimi://a.example/r/clubhouse"),
        room_name: UTF8String::new("Clubhouse").unwrap(),
        room_descriptions: vec![RichDescription {
            media_type: VLBytes::new(vec![]),
            language_tag: b"en".to_vec().into(),
            description_content: b"Where we meet".to_vec().into(),
        }],
        room_avatar: Uri::new(""),
        room_subject: UTF8String::new("Plans").unwrap(),
        room_mood: UTF8String::new("☀").unwrap(),
    };
    let bytes = cat(&[
        &vl(b"mimi://a.example/r/clubhouse"),
        &vl(b"Clubhouse"),
        &vl(&cat(&[&vl(b""), &vl(b"en"), &vl(b"Where we meet")])),
        &vl(b""),
        &vl(b"Plans"),
        &vl("☀".as_bytes()),
    ]);
    assert_eq!(metadata.encode().unwrap(), bytes);
    assert_eq!(RoomMetaData::decode(&bytes).unwrap(), metadata);
    assert!(metadata.room_avatar.is_empty());

    // NUL and invalid UTF-8 are rejected.
    assert!(UTF8String::new("a\0b").is_err());
    let with_nul = cat(&[
        &vl(b""),
        &vl(b"a\0b"),
        &vl(b""),
        &vl(b""),
        &vl(b""),
        &vl(b""),
    ]);
    let err = RoomMetaData::decode(&with_nul).unwrap_err();
    assert!(err.to_string().contains("NUL"), "{err}");
    let not_utf8 = cat(&[
        &vl(&[0xC0]),
        &vl(b""),
        &vl(b""),
        &vl(b""),
        &vl(b""),
        &vl(b""),
    ]);
    assert!(matches!(
        RoomMetaData::decode(&not_utf8),
        Err(FramingError::Malformed { .. })
    ));
}

#[test]
fn group_info_request_exact_bytes_and_tbs() {
    let tbs = cat(&[
        &[0x01],
        &SUITE_1,
        &signature_key(),
        &credential(b"mimi://c.example/d/cathy/tablet"),
        &vl(&[0x21; 32]), // groupInfoPublicKey
        &vl(b"join-code-123"),
    ]);
    let bytes = cat(&[&tbs, &vl(&[0xEE; 64])]);
    let request = GroupInfoRequest::decode(&bytes).unwrap();
    assert_eq!(request.joining_code.as_slice(), b"join-code-123");
    assert_eq!(request.tbs_bytes().unwrap(), tbs);
    assert_eq!(request.encode().unwrap(), bytes);
    assert_eq!(request.tbs().into_request(vec![0xEE; 64]), request);
}

#[test]
fn group_info_response_exact_bytes() {
    let room = "mimi://a.example/r/clubhouse";
    for (code, result) in [
        (2u8, GroupInfoResult::NotAuthorized),
        (3u8, GroupInfoResult::NoSuchRoom),
    ] {
        let response = GroupInfoResponse {
            protocol: Protocol::Mls10,
            room_id: IdentifierUri::new(room),
            result,
        };
        let bytes = cat(&[&[0x01], &uri(room), &[code]]);
        assert_eq!(response.encode().unwrap(), bytes);
        assert_eq!(GroupInfoResponse::decode(&bytes).unwrap(), response);
        assert_eq!(response.tbs(), None);
    }

    let success_fields = cat(&[
        &SUITE_1,
        &signature_key(),
        &credential(b"a.example"),
        &vl(&[0x31; 32]), // kem_output
        &vl(&[0x32; 90]), // ciphertext
    ]);
    let bytes = cat(&[
        &[0x01],
        &uri(room),
        &[0x01],
        &success_fields,
        &vl(&[0xEE; 64]),
    ]);
    let response = GroupInfoResponse::decode(&bytes).unwrap();
    assert_eq!(response.result.code(), GroupInfoCode::Success);
    assert_eq!(response.encode().unwrap(), bytes);
    assert_eq!(
        response.tbs_bytes().unwrap().unwrap(),
        cat(&[&[0x01], &uri(room), &[0x01], &success_fields])
    );
    // reserved(0) status.
    assert!(matches!(
        GroupInfoResponse::decode(&cat(&[&[0x01], &uri(room), &[0x00]])),
        Err(FramingError::UnknownValue { value: 0, .. })
    ));
}

#[test]
fn ratchet_tree_options_exact_bytes() {
    let cases = [
        (
            RatchetTreeOption::HttpsUri {
                ratchet_tree_url: b"https://hub.example/tree/1".to_vec().into(),
                tree_signature: vec![0xEE; 4].into(),
            },
            cat(&[&[2], &vl(b"https://hub.example/tree/1"), &vl(&[0xEE; 4])]),
        ),
        (
            RatchetTreeOption::OutOfBand {
                tree_signature: vec![0xEE; 4].into(),
            },
            cat(&[&[3], &vl(&[0xEE; 4])]),
        ),
        (RatchetTreeOption::DistributionService, vec![4]),
        (
            RatchetTreeOption::Full(decoded(&ratchet_tree())),
            cat(&[&[1], &ratchet_tree()]),
        ),
    ];
    for (option, bytes) in cases {
        assert_eq!(
            tls_codec::Serialize::tls_serialize_detached(&option).unwrap(),
            bytes
        );
        assert_eq!(decoded::<RatchetTreeOption>(&bytes), option);
    }
    assert_eq!(
        RatchetTreeOption::DistributionService.representation(),
        RatchetTreeRepresentation::DistributionService
    );
    for bad in [[0u8], [5u8]] {
        assert!(RatchetTreeOption::tls_deserialize_exact(bad).is_err());
    }
}

#[test]
fn franking_structs_exact_bytes() {
    assert_eq!(decoded::<Frank>(&frank_bytes()), frank());
    let aad = FrankAAD {
        franking_tag: [7; 32],
    };
    assert_eq!(aad.encode().unwrap(), [7; 32]);
    assert_eq!(FrankAAD::decode(&[7; 32]).unwrap(), aad);
    assert!(FrankAAD::decode(&[7; 31]).is_err());

    let context = ServerFrankingContext {
        sender_uri: IdentifierUri::new("mimi://b.example/u/alice"),
        room_uri: IdentifierUri::new("mimi://hub.example/r/Rl33FWLCYWOwxHrYnpWDQg"),
        accepted_timestamp: 1_644_387_225_019,
    };
    let context_bytes = cat(&[
        &uri("mimi://b.example/u/alice"),
        &uri("mimi://hub.example/r/Rl33FWLCYWOwxHrYnpWDQg"),
        &1_644_387_225_019u64.to_be_bytes(),
    ]);
    assert_eq!(context.encode().unwrap(), context_bytes);
    let tbs = FrankingIntegrityTBS {
        server_frank: [0x5A; 32],
        franking_signature_ciphersuite: VerifiableCiphersuite::new(1),
        context,
    };
    assert_eq!(
        tbs.encode().unwrap(),
        cat(&[&[0x5A; 32], &SUITE_1, &context_bytes])
    );

    let agent_bytes = cat(&[&signature_key(), &credential(b"hub.example")]);
    let agent = FrankingAgentData::decode(&agent_bytes).unwrap();
    assert_eq!(agent.encode().unwrap(), agent_bytes);
}

#[test]
fn identifier_query_exact_bytes() {
    let request_bytes = cat(&[
        &vl(&cat(&[
            &[1],
            &vl(b"im:alice.smith@a.example"),
            &[7],
            &vl(b"given_name"),
            &vl(b"Alice"),
            &[8],
            &vl(b"ORG"),
            &vl(b"Example Inc"),
        ])),
        &vl(b""), // id_request_extensions
    ]);
    let request = IdentifierRequest::decode(&request_bytes).unwrap();
    assert_eq!(request.query_elements.len(), 3);
    assert_eq!(
        request.query_elements[1].search,
        SearchKind::OidcStdClaim {
            claim_name: b"given_name".to_vec().into()
        }
    );
    assert_eq!(
        request.query_elements[2].search.search_type(),
        SearchIdentifierType::VcardField
    );
    assert_eq!(request.encode().unwrap(), request_bytes);

    let response_bytes = cat(&[
        &[0],
        &vl(&uri("mimi://a.example/u/alice")),
        &vl(&cat(&[
            &uri("mimi://a.example/u/alice"),
            &vl(&cat(&[&[7], &vl(b"family_name"), &vl(b"Smith")])),
        ])),
        &vl(b""),
    ]);
    let response = IdentifierResponse::decode(&response_bytes).unwrap();
    assert_eq!(response.response_code, IdentifierQueryCode::Success);
    assert_eq!(
        response.found_profiles[0].fields[0].field_name,
        "family_name"
    );
    assert_eq!(response.encode().unwrap(), response_bytes);
    // reserved(0) search type.
    assert!(IdentifierRequest::decode(&cat(&[&vl(&[0, 0]), &vl(b"")])).is_err());
}

#[test]
fn abuse_report_exact_bytes() {
    let bytes = cat(&[
        &uri("mimi://a.example/u/alice"),
        &uri("mimi://b.example/u/mallory"),
        &[0],
        &vl(b"spam"),
        &vl(&cat(&[
            &vl(b"\xA1\x00"),
            &frank_bytes(),
            &9u64.to_be_bytes(),
        ])),
        &vl(b""),
    ]);
    let report = AbuseReport::decode(&bytes).unwrap();
    assert_eq!(report.reason_code, AbuseType(0));
    assert_eq!(report.messages[0].frank, frank());
    assert_eq!(report.encode().unwrap(), bytes);
}

#[test]
fn directory_parses_the_drafts_example() {
    // The draft's example, with its missing ':' after "proxyDownload" added.
    let json = r#"{
      "keyMaterial": "https://mimi.example.com/v1/keyMaterial/{targetUser}",
      "update": "https://mimi.example.com/v1/update{roomId}",
      "notify": "https://mimi.example.com/v1/notify/{roomId}",
      "submitMessage": "https://mimi.example.com/v1/submitMessage/{roomId}",
      "groupInfo": "https://mimi.example.com/v1/groupInfo/{roomId}",
      "requestConsent": "https://mimi.example.com/v1/requestConsent/{targetUser}",
      "updateConsent": "https://mimi.example.com/v1/updateConsent/{requesterUser}",
      "identifierQuery": "https://mimi.example.com/v1/identifierQuery/{domain}",
      "reportAbuse": "https://mimi.example.com/v1/reportAbuse/{roomId}",
      "proxyDownload": "https://mimi.example.com/v1/proxyDownload/{downloadUrl}",
      "futureEndpoint": "https://mimi.example.com/v1/future"
    }"#;
    let directory: Directory = serde_json::from_str(json).unwrap();
    directory.validate().unwrap();
    let bob = UserId::parse_handle("bob@b.example").unwrap();
    assert_eq!(
        directory.key_material_url(&bob).unwrap(),
        "https://mimi.example.com/v1/keyMaterial/mimi%3A%2F%2Fb.example%2Fu%2Fbob"
    );
    let room = entente_wire::ids::RoomId::parse_uri("mimi://a.example/r/clubhouse").unwrap();
    assert_eq!(
        directory.notify_url(&room).unwrap(),
        "https://mimi.example.com/v1/notify/mimi%3A%2F%2Fa.example%2Fr%2Fclubhouse"
    );
    assert_eq!(
        directory.request_consent_url(&bob).unwrap(),
        "https://mimi.example.com/v1/requestConsent/mimi%3A%2F%2Fb.example%2Fu%2Fbob"
    );
    assert_eq!(
        directory
            .proxy_download_url("https://c.example/a b?x=1")
            .unwrap(),
        "https://mimi.example.com/v1/proxyDownload/https%3A%2F%2Fc.example%2Fa%20b%3Fx%3D1"
    );
    assert_eq!(
        directory.identifier_query_url(bob.domain()).unwrap(),
        "https://mimi.example.com/v1/identifierQuery/b.example"
    );

    // Serialises with the draft's member names.
    let value = serde_json::to_value(Directory::with_base("https://hub.example/v1/")).unwrap();
    assert_eq!(
        value["submitMessage"],
        "https://hub.example/v1/submitMessage/{roomId}"
    );
    assert_eq!(value.as_object().unwrap().len(), 10);
}

#[test]
fn directory_validation_and_consent_domain_variant() {
    let mut directory = Directory::with_base("https://hub.example/v1");
    directory.validate().unwrap();
    directory.request_consent = "https://hub.example/v1/requestConsent/{targetDomain}".into();
    directory.validate().unwrap();
    let bob = UserId::parse_handle("bob@b.example").unwrap();
    assert_eq!(
        directory.request_consent_url(&bob).unwrap(),
        "https://hub.example/v1/requestConsent/b.example"
    );

    directory.notify = "http://hub.example/v1/notify/{roomId}".into();
    assert!(matches!(
        directory.validate(),
        Err(DirectoryError::NotHttps {
            endpoint: "notify",
            ..
        })
    ));
    directory.notify = "https://hub.example/v1/notify".into();
    let err = directory.validate().unwrap_err();
    assert!(err.to_string().contains("{roomId}"), "{err}");

    let missing_member = r#"{"keyMaterial": "https://x/{targetUser}"}"#;
    assert!(serde_json::from_str::<Directory>(missing_member).is_err());
}

#[test]
fn identifier_uri_conversions() {
    let alice = UserId::parse_handle("alice@a.example").unwrap();
    let uri = IdentifierUri::from(&alice);
    assert_eq!(uri.as_bytes(), b"mimi://a.example/u/alice");
    assert_eq!(uri.to_user_id().unwrap(), alice);
    assert!(uri.to_room_id().is_err());
    assert!(IdentifierUri::default().is_empty());
    let not_utf8 = IdentifierUri::new(vec![0xFF]);
    assert!(not_utf8.as_str().is_none());
    assert!(not_utf8.to_user_id().is_err());
    assert_eq!(
        format!("{uri:?}"),
        "IdentifierUri(\"mimi://a.example/u/alice\")"
    );
}

#[test]
fn app_data_dictionary_is_sorted_and_unique() {
    let entry = |id: u16, data: &[u8]| cat(&[&id.to_be_bytes(), &vl(data)]);
    let report = |dictionary: Vec<u8>| {
        cat(&[
            &uri(""),
            &uri("mimi://b.example/u/mallory"),
            &[0],
            &vl(b""),
            &vl(b""),
            &dictionary,
        ])
    };
    let bytes = report(vl(&cat(&[&entry(0x0022, b"a"), &entry(0x8000, b"bc")])));
    let decoded = AbuseReport::decode(&bytes).unwrap();
    assert_eq!(decoded.abuse_extensions.get(0x8000), Some(&b"bc"[..]));
    assert_eq!(decoded.abuse_extensions.get(0x0023), None);
    assert_eq!(decoded.abuse_extensions.entries().len(), 2);
    assert_eq!(decoded.encode().unwrap(), bytes);

    for bad in [
        vl(&cat(&[&entry(0x8000, b""), &entry(0x0022, b"")])),
        vl(&cat(&[&entry(0x0022, b""), &entry(0x0022, b"")])),
    ] {
        let err = AbuseReport::decode(&report(bad)).unwrap_err();
        assert!(err.to_string().contains("sorted by component ID"), "{err}");
    }
    assert!(
        AppDataDictionary::new(vec![
            ComponentData {
                component_id: 2,
                data: VLBytes::new(vec![]),
            },
            ComponentData {
                component_id: 1,
                data: VLBytes::new(vec![]),
            },
        ])
        .is_err()
    );
}
