#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use super::*;
use crate::api::b64;

fn x25519(seed: u8) -> Vec<u8> {
    let mut k = vec![seed; PUBLIC_KEY_LEN];
    k[0] = KEY_TYPE_DJB;
    k
}

fn kem(seed: u8) -> Vec<u8> {
    let mut k = vec![seed; KEM_PUBLIC_KEY_LEN];
    k[0] = 0x08;
    k
}

fn kyber(id: u32) -> KyberPreKey {
    KyberPreKey {
        id,
        public: kem(id as u8),
        signature: vec![7; SIGNATURE_LEN],
    }
}

fn upload() -> PreKeyUpload {
    PreKeyUpload {
        identity_key: x25519(1),
        registration_id: 4242,
        device_id: 3,
        signed_prekey: Some(SignedPreKey {
            id: 9,
            public: x25519(2),
            signature: vec![3; SIGNATURE_LEN],
        }),
        last_resort_kyber_prekey: Some(kyber(1000)),
        one_time_prekeys: (1..=100)
            .map(|id| OneTimePreKey {
                id,
                public: x25519(id as u8),
            })
            .collect(),
        kyber_prekeys: (1..=100).map(kyber).collect(),
    }
}

fn user(s: &str) -> UserId {
    UserId::parse_any(s).unwrap()
}

#[test]
fn a_full_upload_is_valid_and_round_trips_with_the_contract_field_names() {
    let u = upload();
    u.validate().unwrap();
    let json = serde_json::to_value(&u).unwrap();
    let keys: BTreeSet<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "identity_key",
            "registration_id",
            "device_id",
            "signed_prekey",
            "last_resort_kyber_prekey",
            "one_time_prekeys",
            "kyber_prekeys"
        ])
    );
    assert_eq!(json["identity_key"], b64::encode(&x25519(1)));
    assert_eq!(json["signed_prekey"]["id"], 9);
    let back: PreKeyUpload = serde_json::from_value(json).unwrap();
    assert_eq!(back, u);
    // The optional parts may be left out.
    let minimal: PreKeyUpload = serde_json::from_str(&format!(
        r#"{{"identity_key":"{}","registration_id":1,"device_id":1}}"#,
        b64::encode(&x25519(1))
    ))
    .unwrap();
    minimal.validate().unwrap();
    assert!(minimal.signed_prekey.is_none() && minimal.one_time_prekeys.is_empty());
}

#[test]
fn every_bad_upload_names_what_is_wrong() {
    type Breakage = fn(&mut PreKeyUpload);
    let cases: Vec<(Breakage, &str)> = vec![
        (
            |u| u.identity_key.truncate(32),
            "identity_key: an X25519 public key is 33 bytes",
        ),
        (
            |u| u.identity_key[0] = 0x06,
            "identity_key: public key type 0x06",
        ),
        (
            |u| u.one_time_prekeys[5].public.push(0),
            "one_time_prekeys[5].public: an X25519 public key is 33 bytes (0x05 then 32 bytes of u), got 34",
        ),
        (
            |u| {
                u.signed_prekey.as_mut().unwrap().signature.pop();
            },
            "signed_prekey.signature: an XEdDSA signature is 64 bytes, got 63",
        ),
        (
            |u| u.kyber_prekeys[2].public.truncate(1568),
            "kyber_prekeys[2].public: an ML-KEM-1024 public key is 1569 bytes",
        ),
        (
            |u| {
                u.last_resort_kyber_prekey
                    .as_mut()
                    .unwrap()
                    .signature
                    .clear()
            },
            "last_resort_kyber_prekey.signature",
        ),
        (
            |u| {
                u.one_time_prekeys.push(OneTimePreKey {
                    id: 101,
                    public: x25519(0),
                })
            },
            "one_time_prekeys: at most 100 in one request, got 101",
        ),
        (
            |u| u.kyber_prekeys.push(kyber(101)),
            "kyber_prekeys: at most 100",
        ),
        (
            |u| u.one_time_prekeys[1].id = 1,
            "one_time_prekeys: id 1 appears more than once",
        ),
        (
            |u| u.kyber_prekeys[9].id = 1,
            "kyber_prekeys: id 1 appears more than once",
        ),
        (
            |u| u.last_resort_kyber_prekey.as_mut().unwrap().id = 50,
            "last_resort_kyber_prekey: id 50 appears more than once",
        ),
        (|u| u.device_id = 0, "device_id must be 1 to 127"),
        (|u| u.device_id = 128, "got 128"),
        (
            |u| u.registration_id = 0,
            "registration_id must be 1 to 16383",
        ),
        (|u| u.registration_id = 0x4000, "got 16384"),
    ];
    for (break_it, want) in cases {
        let mut u = upload();
        break_it(&mut u);
        let e = u.validate().unwrap_err().to_string();
        assert!(e.contains(want), "{e:?} lacks {want:?}");
    }
}

#[test]
fn garbage_json_is_refused_with_serdes_reason() {
    let key = b64::encode(&x25519(1));
    for (body, want) in [
        ("", "EOF"),
        ("[]", "expected struct PreKeyUpload"),
        (
            r#"{"identity_key":"!!","registration_id":1,"device_id":1}"#,
            "Invalid",
        ),
        (
            &format!(
                r#"{{"identity_key":"{key}","registration_id":1,"device_id":1,"signedPrekey":null}}"#
            ),
            "unknown field `signedPrekey`",
        ),
        (
            &format!(r#"{{"identity_key":"{key}","registration_id":-1,"device_id":1}}"#),
            "invalid value",
        ),
        (
            r#"{"registration_id":1,"device_id":1}"#,
            "missing field `identity_key`",
        ),
    ] {
        let e = serde_json::from_str::<PreKeyUpload>(body)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{body}: {e:?} lacks {want:?}");
    }
}

#[test]
fn base64_with_json_escapes_decodes() {
    let escaped = r#"{"client":"mimi://b.example/d/bob/phone","sealed":"\/w=="}"#;
    let m: SealedMessage = serde_json::from_str(escaped).unwrap();
    assert_eq!(m.sealed, [0xff]);
}

#[test]
fn sealed_sends_are_for_distinct_devices_of_the_recipient() {
    let msg = |client: &str| SealedMessage {
        client: client.into(),
        sealed: vec![1, 2, 3],
    };
    let send = SealedSend {
        recipient: "bob@b.example".into(),
        messages: vec![
            msg("mimi://b.example/d/bob/phone"),
            msg("mimi://b.example/d/bob/laptop"),
        ],
    };
    let (u, clients) = send.validate().unwrap();
    assert_eq!(u, user("bob@b.example"));
    assert_eq!(clients[1].device(), "laptop");
    let mut bad = send.clone();
    bad.messages[1].client = "mimi://b.example/d/eve/laptop".into();
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("messages[1].client: mimi://b.example/d/eve/laptop is not a device of mimi://b.example/u/bob")
    );
    let mut bad = send.clone();
    bad.messages[1].client = bad.messages[0].client.clone();
    assert!(matches!(
        bad.validate(),
        Err(SignalWireError::DuplicateClient { .. })
    ));
    let mut bad = send.clone();
    bad.messages[0].sealed.clear();
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "messages[0].sealed is empty"
    );
    let mut bad = send.clone();
    bad.messages[0].sealed = vec![0; MAX_SEALED_BYTES + 1];
    assert!(matches!(
        bad.validate(),
        Err(SignalWireError::TooLarge { .. })
    ));
    let mut bad = send.clone();
    bad.messages.clear();
    assert!(matches!(bad.validate(), Err(SignalWireError::Empty { .. })));
    let mut bad = send.clone();
    bad.recipient = "not a user".into();
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .starts_with("recipient: ")
    );
    let mut bad = send;
    bad.messages[0].client = "bob@b.example".into();
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .starts_with("messages[0].client: ")
    );
}

#[test]
fn a_delivery_goes_to_one_provider_and_never_names_a_sender() {
    let d = SealedDelivery {
        messages: vec![
            SealedMessage {
                client: "mimi://b.example/d/bob/phone".into(),
                sealed: vec![1],
            },
            SealedMessage {
                client: "mimi://b.example/d/carol/phone".into(),
                sealed: vec![2],
            },
        ],
    };
    assert_eq!(d.validate().unwrap().len(), 2);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json.as_object().unwrap().len(), 1, "messages only: {json}");
    let mut bad = d;
    bad.messages[1].client = "mimi://c.example/d/carol/phone".into();
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("one provider")
    );
    // Extra fields (a sender, say) are refused rather than ignored.
    let e = serde_json::from_str::<SealedDelivery>(r#"{"messages":[],"sender":"x"}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field `sender`"), "{e}");
}

#[test]
fn bundles_from_a_peer_are_checked() {
    let bob = user("bob@b.example");
    let bundle = DeviceBundle {
        client: "mimi://b.example/d/bob/phone".into(),
        device_id: 1,
        registration_id: 7,
        identity_key: x25519(1),
        signed_prekey: SignedPreKey {
            id: 1,
            public: x25519(2),
            signature: vec![0; 64],
        },
        kyber_prekey: Some(kyber(3)),
        one_time_prekey: None,
    };
    let answer = UserBundles {
        user: bob.to_string(),
        devices: vec![bundle.clone()],
    };
    answer.validate(&bob).unwrap();
    let json = serde_json::to_value(&answer).unwrap();
    assert!(json["devices"][0].get("one_time_prekey").is_none());
    assert!(answer.validate(&user("eve@b.example")).is_err());
    let mut twice = answer.clone();
    twice.devices.push(bundle.clone());
    assert!(matches!(
        twice.validate(&bob),
        Err(SignalWireError::DuplicateClient { .. })
    ));
    let mut foreign = answer;
    foreign.devices[0].client = "mimi://b.example/d/eve/phone".into();
    assert!(
        foreign
            .validate(&bob)
            .unwrap_err()
            .to_string()
            .starts_with("devices[0].client: ")
    );
}

#[test]
fn protocol_names() {
    let p = SetProtocols {
        protocols: vec!["signal".into(), "mls10".into(), "signal".into()],
    };
    assert_eq!(p.validate().unwrap(), ["mls10", "signal"]);
    for bad in ["", "MLS10", "mls 10", &"x".repeat(33)] {
        let p = SetProtocols {
            protocols: vec!["mls10".into(), bad.into()],
        };
        assert!(
            matches!(
                p.validate(),
                Err(SignalWireError::ProtocolName { index: 1, .. })
            ),
            "{bad:?}"
        );
    }
    let many = SetProtocols {
        protocols: (0..17).map(|i| format!("p{i}")).collect(),
    };
    assert!(matches!(
        many.validate(),
        Err(SignalWireError::TooMany { .. })
    ));
}

#[test]
fn mismatched_devices_reads_as_an_api_error() {
    let m = MismatchedDevices {
        code: MISMATCHED_DEVICES.into(),
        message: "fetch bundles again".into(),
        missing: vec!["mimi://b.example/d/bob/tablet".into()],
        stale: vec![],
    };
    let e: crate::api::ApiError =
        serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
    assert_eq!(e.code, "mismatched_devices");
}

proptest::proptest! {
    #[test]
    fn decoding_and_validating_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        if let Ok(u) = serde_json::from_slice::<PreKeyUpload>(&body) {
            let _ = u.validate();
        }
        if let Ok(s) = serde_json::from_slice::<SealedSend>(&body) {
            let _ = s.validate();
        }
        if let Ok(d) = serde_json::from_slice::<SealedDelivery>(&body) {
            let _ = d.validate();
        }
        if let Ok(b) = serde_json::from_slice::<UserBundles>(&body) {
            let _ = b.validate(&user("bob@b.example"));
        }
        if let Ok(p) = serde_json::from_slice::<SetProtocols>(&body) {
            let _ = p.validate();
        }
    }

    #[test]
    fn valid_uploads_survive_json(n in 0usize..5, device in 1u32..=127, reg in 1u32..=0x3FFF) {
        let mut u = upload();
        u.one_time_prekeys.truncate(n);
        u.kyber_prekeys.truncate(n);
        u.device_id = device;
        u.registration_id = reg;
        proptest::prop_assert!(u.validate().is_ok());
        let back: PreKeyUpload = serde_json::from_slice(&serde_json::to_vec(&u).unwrap()).unwrap();
        proptest::prop_assert_eq!(back, u);
    }
}
