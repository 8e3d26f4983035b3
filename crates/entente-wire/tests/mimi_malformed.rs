//! MIMI-06 decoders reject malformed, truncated and trailing input, and huge length
//! prefixes, without panicking or allocating for the claimed length.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod mimi_fixtures;

use entente_wire::mimi::*;
use mimi_fixtures::*;

// ---------------------------------------------------------------------------
// Malformed input.

/// Every top-level decoder, by name.
type Decoder = fn(&[u8]) -> Result<(), FramingError>;

fn decoders() -> Vec<(&'static str, Decoder)> {
    vec![
        ("KeyMaterialRequest", |b| {
            KeyMaterialRequest::decode(b).map(drop)
        }),
        ("KeyMaterialResponse", |b| {
            KeyMaterialResponse::decode(b).map(drop)
        }),
        ("UpdateRequest", |b| UpdateRequest::decode(b).map(drop)),
        ("UpdateRoomResponse", |b| {
            UpdateRoomResponse::decode(b).map(drop)
        }),
        ("SubmitMessageRequest", |b| {
            SubmitMessageRequest::decode(b).map(drop)
        }),
        ("SubmitMessageResponse", |b| {
            SubmitMessageResponse::decode(b).map(drop)
        }),
        ("FanoutMessage", |b| FanoutMessage::decode(b).map(drop)),
        ("notify batch", |b| decode_fanout_batch(b).map(drop)),
        ("GroupInfoRequest", |b| {
            GroupInfoRequest::decode(b).map(drop)
        }),
        ("GroupInfoResponse", |b| {
            GroupInfoResponse::decode(b).map(drop)
        }),
        ("GroupInfoRatchetTreeTBE", |b| {
            GroupInfoRatchetTreeTBE::decode(b).map(drop)
        }),
        ("ParticipantListData", |b| {
            ParticipantListData::decode(b).map(drop)
        }),
        ("ParticipantListUpdate", |b| {
            ParticipantListUpdate::decode(b).map(drop)
        }),
        ("RoomMetaData", |b| RoomMetaData::decode(b).map(drop)),
        ("IdentifierRequest", |b| {
            IdentifierRequest::decode(b).map(drop)
        }),
        ("IdentifierResponse", |b| {
            IdentifierResponse::decode(b).map(drop)
        }),
        ("AbuseReport", |b| AbuseReport::decode(b).map(drop)),
    ]
}

/// One valid encoding per decoder, in the order of [`decoders`].
fn valid_encodings() -> Vec<Vec<u8>> {
    vec![
        cat(&[&key_material_request_tbs_bytes(), &vl(&[0xEE; 64])]),
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
            &public_commit(),
            &[0x01],
            &welcome(),
            &[0x01],
            &group_info(),
            &[0x01],
            &ratchet_tree(),
        ]),
        cat(&[&[3], &vl(b"bad"), &vl(&vl(&[0xAB; 32]))]),
        cat(&[
            &[0x01],
            &private_application(),
            &uri("mimi://b.example/u/alice"),
        ]),
        cat(&[&[1, 0], &1u64.to_be_bytes(), &[1], &frank_bytes()]),
        fanout_examples()[4].0.clone(),
        fanout_examples().into_iter().flat_map(|(b, _)| b).collect(),
        cat(&[
            &[0x01],
            &SUITE_1,
            &signature_key(),
            &credential(b"cathy"),
            &vl(&[0x21; 32]),
            &vl(b""),
            &vl(&[0xEE; 64]),
        ]),
        cat(&[
            &[0x01],
            &uri("mimi://a.example/r/x"),
            &[0x01],
            &SUITE_1,
            &signature_key(),
            &credential(b"a.example"),
            &vl(&[0x31; 32]),
            &vl(&[0x32; 90]),
            &vl(&[0xEE; 64]),
        ]),
        cat(&[
            &group_info(),
            &[0x01],
            &ratchet_tree(),
            &vl(&cat(&[&public_proposal(1), &3u64.to_be_bytes()])),
        ]),
        vl(&cat(&[
            &uri("mimi://a.example/u/alice"),
            &4u32.to_be_bytes(),
        ])),
        cat(&[
            &vl(&cat(&[&1u32.to_be_bytes(), &3u32.to_be_bytes()])),
            &vl(&0u32.to_be_bytes()),
            &vl(&cat(&[
                &uri("mimi://d.example/u/diana"),
                &4u32.to_be_bytes(),
            ])),
        ]),
        cat(&[
            &vl(b"mimi://a.example/r/x"),
            &vl(b"X"),
            &vl(&cat(&[&vl(b"text/markdown"), &vl(b"en"), &vl(b"*x*")])),
            &vl(b"https://a.example/x.png"),
            &vl(b"s"),
            &vl(b"m"),
        ]),
        cat(&[
            &vl(&cat(&[&[7], &vl(b"given_name"), &vl(b"Alice")])),
            &vl(b""),
        ]),
        cat(&[
            &[0],
            &vl(&uri("mimi://a.example/u/alice")),
            &vl(b""),
            &vl(b""),
        ]),
        cat(&[
            &uri(""),
            &uri("mimi://b.example/u/mallory"),
            &[0],
            &vl(b""),
            &vl(&cat(&[&vl(b"x"), &frank_bytes(), &9u64.to_be_bytes()])),
            &vl(b""),
        ]),
    ]
}

#[test]
fn valid_encodings_decode() {
    for ((name, decode), bytes) in decoders().into_iter().zip(valid_encodings()) {
        decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn trailing_bytes_are_rejected_everywhere() {
    for ((name, decode), mut bytes) in decoders().into_iter().zip(valid_encodings()) {
        if name == "notify batch" {
            continue; // a batch reads any number of messages; see below
        }
        bytes.push(0x00);
        let err = decode(&bytes).unwrap_err();
        assert!(
            matches!(err, FramingError::TrailingBytes { count: 1, .. }),
            "{name}: {err}"
        );
    }
    // In a batch, trailing garbage is a truncated next message.
    let mut body = fanout_examples()[0].0.clone();
    body.push(0x00);
    assert!(matches!(
        decode_fanout_batch(&body),
        Err(FramingError::InBatch { index: 1, .. })
    ));
}

#[test]
fn every_truncation_is_rejected_without_panicking() {
    for ((name, decode), bytes) in decoders().into_iter().zip(valid_encodings()) {
        for len in 0..bytes.len() {
            let result = decode(&bytes[..len]);
            // A few prefixes are themselves valid (e.g. a batch cut between messages,
            // or a list cut at an element boundary is still caught by its length).
            if name == "notify batch" && result.is_ok() {
                continue;
            }
            assert!(result.is_err(), "{name}: prefix of {len} bytes decoded");
        }
    }
}

#[test]
fn unknown_protocol_values_are_rejected() {
    let mut bytes = cat(&[&key_material_request_tbs_bytes(), &vl(&[0xEE; 64])]);
    for protocol in [0u8, 2, 255] {
        bytes[0] = protocol;
        let err = KeyMaterialRequest::decode(&bytes).unwrap_err();
        assert_eq!(
            err,
            FramingError::UnknownValue {
                message: "KeyMaterialRequest",
                value: u64::from(protocol)
            }
        );
    }
    assert!(matches!(
        SubmitMessageResponse::decode(&[0, 1]),
        Err(FramingError::UnknownValue { value: 0, .. })
    ));
    assert!(matches!(
        SubmitMessageResponse::decode(&[1, 3]),
        Err(FramingError::UnknownValue { value: 3, .. })
    ));
}

#[test]
fn huge_length_prefixes_are_rejected_cheaply() {
    // Largest MLS vector length (2^30 - 1) with nothing behind it.
    let huge = [0xBF, 0xFF, 0xFF, 0xFF];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("KeyMaterialRequest", cat(&[&[0x01], &huge])),
        (
            "KeyMaterialResponse",
            cat(&[&[0x01, 0x00], &uri("u"), &huge]),
        ),
        ("ParticipantListData", huge.to_vec()),
        ("RoomMetaData", cat(&[&vl(b""), &vl(b""), &huge])),
        ("UpdateRoomResponse", cat(&[&[3], &vl(b""), &huge])),
    ];
    let started = std::time::Instant::now();
    for (name, bytes) in cases {
        let (_, decode) = decoders().into_iter().find(|(n, _)| *n == name).unwrap();
        let err = decode(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                FramingError::Truncated { .. } | FramingError::Malformed { .. }
            ),
            "{name}: {err}"
        );
    }
    // Not a benchmark: just a guard against reading a gigabyte. Generous bound.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // 8-byte varints exceed the MLS limit; non-minimal varints are refused.
    let err = ParticipantListData::decode(&[0xC0, 0, 0, 0, 0, 0, 0, 1, 0]).unwrap_err();
    assert!(matches!(err, FramingError::InvalidLength { .. }), "{err}");
    let err = ParticipantListData::decode(&[0x40, 0x00]).unwrap_err();
    assert!(matches!(err, FramingError::InvalidLength { .. }), "{err}");
}
