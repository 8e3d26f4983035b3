//! MIMI identifier parsing, normalisation and error messages.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use entente_wire::ids::{ClientId, Domain, IdError, IdKind, RoomId, UriKind, UserId};
use proptest::prelude::*;

/// Checks that an error is the expected one.
type Check = fn(&IdError) -> bool;

fn domain(s: &str) -> Domain {
    Domain::parse(s).unwrap()
}

#[test]
fn user_uri_and_handle_agree() {
    let from_uri = UserId::parse_uri("mimi://a.example/u/alice").unwrap();
    let from_handle = UserId::parse_handle("alice@a.example").unwrap();
    assert_eq!(from_uri, from_handle);
    assert_eq!(from_uri.domain().as_str(), "a.example");
    assert_eq!(from_uri.name(), "alice");
    assert_eq!(from_uri.local_part(), "alice");
    assert_eq!(from_uri.to_uri(), "mimi://a.example/u/alice");
    assert_eq!(from_uri.handle(), "alice@a.example");
    assert_eq!(from_uri.to_string(), "mimi://a.example/u/alice");
}

#[test]
fn parse_any_and_from_str_accept_both_forms() {
    let a = UserId::parse_any("alice@a.example").unwrap();
    let b = UserId::parse_any("mimi://a.example/u/alice").unwrap();
    let c: UserId = "MIMI://A.EXAMPLE/u/Alice".parse().unwrap();
    assert_eq!(a, b);
    assert_eq!(b, c);
}

#[test]
fn user_names_and_domains_are_lowercased() {
    let user = UserId::parse_handle("Alice.Smith@A.Example").unwrap();
    assert_eq!(user.to_uri(), "mimi://a.example/u/alice.smith");
    assert_eq!(user.handle(), "alice.smith@a.example");
}

#[test]
fn device_and_room_ids_keep_case() {
    let room = RoomId::parse_uri("mimi://HUB.example/r/Rl33FWLCYWOwxHrYnpWDQg").unwrap();
    assert_eq!(room.local_part(), "Rl33FWLCYWOwxHrYnpWDQg");
    assert_eq!(room.domain().as_str(), "hub.example");
    assert_eq!(room.to_uri(), "mimi://hub.example/r/Rl33FWLCYWOwxHrYnpWDQg");
    let alice = UserId::parse_handle("alice@a.example").unwrap();
    let client = ClientId::new(&alice, "Phone_1-A").unwrap();
    assert_eq!(client.device(), "Phone_1-A");
}

#[test]
fn client_uri_names_its_user() {
    let alice = UserId::parse_handle("alice@a.example").unwrap();
    let client = ClientId::new(&alice, "phone-1").unwrap();
    assert_eq!(client.to_uri(), "mimi://a.example/d/alice/phone-1");
    assert_eq!(client.local_part(), "alice/phone-1");
    assert_eq!(client.domain().as_str(), "a.example");
    let parsed = ClientId::parse_uri("mimi://a.example/d/alice/phone-1").unwrap();
    assert_eq!(parsed, client);
    assert_eq!(parsed.user(), &alice);
}

#[test]
fn client_uri_from_mimi_content_example_parses() {
    // draft-ietf-mimi-content, "Original Message" example.
    let client =
        ClientId::parse_uri("mimi://example.com/d/3b52249d-68f9-45ce-8bf5-c799f3cad7ec/0003")
            .unwrap();
    assert_eq!(client.user().name(), "3b52249d-68f9-45ce-8bf5-c799f3cad7ec");
    assert_eq!(client.device(), "0003");
}

#[test]
fn single_segment_client_uri_is_rejected() {
    // draft-ietf-mimi-protocol-06 Table 1 form; we require /d/<user>/<device>.
    let err = ClientId::parse_uri("mimi://a.example/d/ClientA1").unwrap_err();
    assert!(
        matches!(
            err,
            IdError::BadPath {
                expected: UriKind::Client,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_error_message_from_the_brief() {
    let err = UserId::parse_handle("Al ice@a.example").unwrap_err();
    assert_eq!(
        err.to_string(),
        "user name 'Al ice' contains ' ' at position 2; allowed: a-z 0-9 . _ -"
    );
}

#[test]
fn user_name_rules() {
    for ok in ["a", "alice", "alice.smith", "a_b-c", "0", "-x", "x_"] {
        UserId::new(ok, domain("a.example")).unwrap();
    }
    let d = || domain("a.example");
    assert!(matches!(
        UserId::new("", d()),
        Err(IdError::Empty {
            kind: IdKind::UserName
        })
    ));
    assert!(matches!(
        UserId::new(".alice", d()),
        Err(IdError::BadEdge { ch: '.', .. })
    ));
    assert!(matches!(
        UserId::new("alice.", d()),
        Err(IdError::BadEdge { ch: '.', .. })
    ));
    assert!(matches!(
        UserId::new("al..ice", d()),
        Err(IdError::ConsecutiveDots { .. })
    ));
    assert!(matches!(
        UserId::new("josé", d()),
        Err(IdError::InvalidChar {
            ch: 'é',
            position: 3,
            ..
        })
    ));
    assert!(matches!(
        UserId::new("a+b", d()),
        Err(IdError::InvalidChar {
            ch: '+',
            position: 1,
            ..
        })
    ));
    assert!(matches!(
        UserId::new("a/b", d()),
        Err(IdError::InvalidChar { ch: '/', .. })
    ));
    UserId::new(&"a".repeat(64), d()).unwrap();
    let err = UserId::new(&"a".repeat(65), d()).unwrap_err();
    assert!(
        matches!(
            err,
            IdError::TooLong {
                len: 65,
                max: 64,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("the maximum is 64"), "{err}");
}

#[test]
fn device_and_room_id_rules() {
    let alice = UserId::parse_handle("alice@a.example").unwrap();
    assert!(matches!(
        ClientId::new(&alice, ""),
        Err(IdError::Empty {
            kind: IdKind::DeviceId
        })
    ));
    assert!(matches!(
        ClientId::new(&alice, "a.b"),
        Err(IdError::InvalidChar {
            kind: IdKind::DeviceId,
            ch: '.',
            ..
        })
    ));
    assert!(matches!(
        ClientId::new(&alice, "a/b"),
        Err(IdError::InvalidChar { ch: '/', .. })
    ));
    ClientId::new(&alice, &"Z".repeat(64)).unwrap();
    assert!(matches!(
        ClientId::new(&alice, &"Z".repeat(65)),
        Err(IdError::TooLong { .. })
    ));
    assert!(matches!(
        RoomId::new("club house", domain("a.example")),
        Err(IdError::InvalidChar {
            kind: IdKind::RoomId,
            ch: ' ',
            position: 4,
            ..
        })
    ));
    let err = RoomId::new("a~b", domain("a.example")).unwrap_err();
    assert!(
        err.to_string().contains("allowed: A-Z a-z 0-9 _ -"),
        "{err}"
    );
}

#[test]
fn domains_are_idna_normalised() {
    assert_eq!(domain("Bücher.Example").as_str(), "xn--bcher-kva.example");
    assert_eq!(
        domain("xn--bcher-kva.example").as_str(),
        "xn--bcher-kva.example"
    );
    assert_eq!(domain("A.EXAMPLE").as_str(), "a.example");
    assert_eq!(domain("localhost").as_str(), "localhost");
    let user = UserId::parse_handle("alice@bücher.example").unwrap();
    assert_eq!(user.to_uri(), "mimi://xn--bcher-kva.example/u/alice");
    assert_eq!(domain("a.example").to_uri(), "mimi://a.example");
}

#[test]
fn invalid_domains_are_rejected_with_reasons() {
    let cases: &[(&str, Check)] = &[
        ("", |e| {
            matches!(
                e,
                IdError::Empty {
                    kind: IdKind::Domain
                }
            )
        }),
        ("a..example", |e| matches!(e, IdError::EmptyLabel { .. })),
        (".a.example", |e| matches!(e, IdError::EmptyLabel { .. })),
        ("a.example.", |e| matches!(e, IdError::EmptyLabel { .. })),
        ("-a.example", |e| {
            matches!(e, IdError::BadEdge { ch: '-', .. })
        }),
        ("a-.example", |e| {
            matches!(e, IdError::BadEdge { ch: '-', .. })
        }),
        ("a_b.example", |e| {
            matches!(
                e,
                IdError::InvalidChar {
                    ch: '_',
                    position: 1,
                    ..
                }
            )
        }),
        ("a b.example", |e| {
            matches!(e, IdError::InvalidChar { ch: ' ', .. })
        }),
        ("a.example:443", |e| matches!(e, IdError::Port { .. })),
        ("alice@a.example", |e| matches!(e, IdError::UserInfo { .. })),
        ("[::1]", |e| matches!(e, IdError::IpLiteral { .. })),
        ("192.0.2.1", |e| matches!(e, IdError::IpLiteral { .. })),
        ("127.1", |e| matches!(e, IdError::IpLiteral { .. })),
        ("0x7f.0x1", |e| matches!(e, IdError::IpLiteral { .. })),
        ("a.example?x", |e| matches!(e, IdError::Query { .. })),
        ("a.example#x", |e| matches!(e, IdError::Fragment { .. })),
        ("a%2eexample", |e| {
            matches!(e, IdError::PercentEncoded { .. })
        }),
        ("a.example/u", |e| {
            matches!(e, IdError::InvalidChar { ch: '/', .. })
        }),
        ("xn--a.example", |e| matches!(e, IdError::Idna { .. })),
        ("\u{0301}a.example", |e| matches!(e, IdError::Idna { .. })),
        ("a\u{FFFD}.example", |e| matches!(e, IdError::Idna { .. })),
    ];
    for (input, expected) in cases {
        let err = Domain::parse(input).unwrap_err();
        assert!(expected(&err), "{input:?} gave {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn domain_length_limits() {
    let label63 = "a".repeat(63);
    let label64 = "a".repeat(64);
    domain(&format!("{label63}.example"));
    let err = Domain::parse(&format!("{label64}.example")).unwrap_err();
    assert!(
        matches!(err, IdError::LabelTooLong { len: 64, .. }),
        "{err}"
    );

    // 4 * 63 + 3 dots = 255 > 253; 3 * 63 + 61 + 3 = 253.
    let long = [label63.as_str(); 4].join(".");
    let err = Domain::parse(&long).unwrap_err();
    assert!(
        matches!(
            err,
            IdError::TooLong {
                kind: IdKind::Domain,
                len: 255,
                max: 253,
                ..
            }
        ),
        "{err}"
    );
    let exact = format!("{}.{}", [label63.as_str(); 3].join("."), "b".repeat(61));
    assert_eq!(exact.len(), 253);
    domain(&exact);

    // Punycode expansion counts: the limit applies to the A-label form.
    let unicode_label: String = (0..40u32)
        .filter_map(|i| char::from_u32(0x4E00 + i * 97))
        .collect();
    let err = Domain::parse(&format!("{unicode_label}.example")).unwrap_err();
    assert!(matches!(err, IdError::LabelTooLong { .. }), "{err}");

    let huge = "a".repeat(100_000);
    assert!(matches!(
        Domain::parse(&huge),
        Err(IdError::InputTooLong { .. })
    ));
    assert!(matches!(
        UserId::parse_uri(&format!("mimi://{huge}/u/a")),
        Err(IdError::InputTooLong { .. })
    ));
}

#[test]
fn uri_syntax_errors() {
    let cases: &[(&str, Check)] = &[
        ("https://a.example/u/alice", |e| {
            matches!(e, IdError::NotMimiUri { .. })
        }),
        ("mimi:a.example/u/alice", |e| {
            matches!(e, IdError::NotMimiUri { .. })
        }),
        ("mimi://a.example/u/alice?x=1", |e| {
            matches!(e, IdError::Query { .. })
        }),
        ("mimi://a.example/u/alice#top", |e| {
            matches!(e, IdError::Fragment { .. })
        }),
        ("mimi://bob@a.example/u/alice", |e| {
            matches!(e, IdError::UserInfo { .. })
        }),
        ("mimi://a.example:8443/u/alice", |e| {
            matches!(e, IdError::Port { .. })
        }),
        ("mimi://[2001:db8::1]/u/alice", |e| {
            matches!(e, IdError::IpLiteral { .. })
        }),
        ("mimi://192.0.2.1/u/alice", |e| {
            matches!(e, IdError::IpLiteral { .. })
        }),
        ("mimi://a.example/u/al%69ce", |e| {
            matches!(e, IdError::PercentEncoded { .. })
        }),
        ("mimi://a.example/u/alice/", |e| {
            matches!(e, IdError::BadPath { .. })
        }),
        ("mimi://a.example/u/", |e| {
            matches!(e, IdError::Empty { .. })
        }),
        ("mimi://a.example/u", |e| {
            matches!(e, IdError::BadPath { .. })
        }),
        ("mimi://a.example", |e| {
            matches!(
                e,
                IdError::WrongKind {
                    found: UriKind::Provider,
                    ..
                }
            )
        }),
        ("mimi://a.example/", |e| {
            matches!(e, IdError::BadPath { .. })
        }),
        ("mimi://a.example/r/clubhouse", |e| {
            matches!(
                e,
                IdError::WrongKind {
                    found: UriKind::Room,
                    expected: UriKind::User,
                    ..
                }
            )
        }),
        ("mimi://a.example/x/alice", |e| {
            matches!(e, IdError::BadPath { .. })
        }),
        ("mimi:///u/alice", |e| {
            matches!(
                e,
                IdError::Empty {
                    kind: IdKind::Domain
                }
            )
        }),
        ("mimi://a..example/u/alice", |e| {
            matches!(e, IdError::EmptyLabel { .. })
        }),
    ];
    for (input, expected) in cases {
        let err = UserId::parse_uri(input).unwrap_err();
        assert!(expected(&err), "{input:?} gave {err:?}");
    }
    assert!(matches!(
        RoomId::parse_uri("mimi://a.example/u/alice"),
        Err(IdError::WrongKind {
            found: UriKind::User,
            expected: UriKind::Room,
            ..
        })
    ));
    assert!(matches!(
        ClientId::parse_uri("mimi://a.example/d/alice/phone/2"),
        Err(IdError::BadPath { .. })
    ));
    assert!(matches!(
        ClientId::parse_uri("mimi://a.example/d/.alice/phone"),
        Err(IdError::BadEdge { .. })
    ));
}

#[test]
fn handle_syntax_errors() {
    for bad in ["alice", "@a.example", "alice@", "", "a@b@c.example"] {
        assert!(UserId::parse_handle(bad).is_err(), "{bad:?}");
    }
    assert!(matches!(
        UserId::parse_handle("alice"),
        Err(IdError::NotHandle { .. })
    ));
    assert!(matches!(
        UserId::parse_handle("a@b@c.example"),
        Err(IdError::UserInfo { .. })
    ));
}

#[test]
fn long_values_are_shortened_in_messages() {
    let input = format!("{}!", "a".repeat(500));
    let err = RoomId::new(&input, domain("a.example")).unwrap_err();
    assert!(err.to_string().len() < 250, "{err}");
}

#[test]
fn serde_uses_validated_uri_strings() {
    let alice = UserId::parse_handle("alice@a.example").unwrap();
    let json = serde_json::to_string(&alice).unwrap();
    assert_eq!(json, "\"mimi://a.example/u/alice\"");
    assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), alice);
    // The canonical form is produced even from a non-canonical input.
    let shouting: UserId = serde_json::from_str("\"mimi://A.EXAMPLE/u/ALICE\"").unwrap();
    assert_eq!(shouting, alice);
    // Deserialisation validates, and takes the URI form only.
    assert!(serde_json::from_str::<UserId>("\"alice@a.example\"").is_err());
    let err = serde_json::from_str::<UserId>("\"mimi://a.example/u/Al ice\"").unwrap_err();
    assert!(
        err.to_string().contains("contains ' ' at position 2"),
        "{err}"
    );

    let client = ClientId::new(&alice, "phone").unwrap();
    let json = serde_json::to_string(&client).unwrap();
    assert_eq!(json, "\"mimi://a.example/d/alice/phone\"");
    assert_eq!(serde_json::from_str::<ClientId>(&json).unwrap(), client);

    let room = RoomId::new("clubhouse", domain("a.example")).unwrap();
    let json = serde_json::to_string(&room).unwrap();
    assert_eq!(serde_json::from_str::<RoomId>(&json).unwrap(), room);

    let d = domain("bücher.example");
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(json, "\"xn--bcher-kva.example\"");
    assert_eq!(serde_json::from_str::<Domain>(&json).unwrap(), d);
    assert!(serde_json::from_str::<Domain>("\"a..b\"").is_err());
}

fn user_name_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_-]([a-zA-Z0-9_-]|\\.[a-zA-Z0-9_-]){0,30}"
}

fn label_strategy() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9-]{0,20}[a-z0-9])?"
}

fn domain_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(label_strategy(), 1..4).prop_map(|labels| labels.join("."))
}

fn local_id_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

proptest! {
    #[test]
    fn user_display_parse_round_trips(name in user_name_strategy(), d in domain_strategy()) {
        let user = UserId::new(&name, Domain::parse(&d).unwrap()).unwrap();
        let uri = user.to_string();
        prop_assert_eq!(&UserId::parse_uri(&uri).unwrap(), &user);
        prop_assert_eq!(&uri.parse::<UserId>().unwrap(), &user);
        prop_assert_eq!(&UserId::parse_handle(&user.handle()).unwrap(), &user);
        prop_assert_eq!(user.name(), name.to_ascii_lowercase());
    }

    #[test]
    fn client_display_parse_round_trips(
        name in user_name_strategy(),
        d in domain_strategy(),
        device in local_id_strategy(),
    ) {
        let user = UserId::new(&name, Domain::parse(&d).unwrap()).unwrap();
        let client = ClientId::new(&user, &device).unwrap();
        let parsed: ClientId = client.to_string().parse().unwrap();
        prop_assert_eq!(&parsed, &client);
        prop_assert_eq!(parsed.device(), device.as_str());
    }

    #[test]
    fn room_display_parse_round_trips(id in local_id_strategy(), d in domain_strategy()) {
        let room = RoomId::new(&id, Domain::parse(&d).unwrap()).unwrap();
        prop_assert_eq!(&room.to_string().parse::<RoomId>().unwrap(), &room);
    }

    #[test]
    fn domain_display_parse_round_trips(d in domain_strategy()) {
        let parsed = Domain::parse(&d).unwrap();
        prop_assert_eq!(&parsed.to_string().parse::<Domain>().unwrap(), &parsed);
    }

    #[test]
    fn unicode_domains_normalise_to_a_fixed_point(d in "[a-zà-ÿ]{1,20}\\.example") {
        if let Ok(parsed) = Domain::parse(&d) {
            prop_assert!(parsed.as_str().is_ascii());
            prop_assert_eq!(&Domain::parse(parsed.as_str()).unwrap(), &parsed);
        }
    }

    #[test]
    fn arbitrary_input_never_panics(s in "\\PC{0,80}") {
        let _ = UserId::parse_any(&s);
        let _ = ClientId::parse_uri(&s);
        let _ = RoomId::parse_uri(&s);
        let _ = Domain::parse(&s);
    }

    #[test]
    fn arbitrary_uris_never_panic(rest in "[a-zA-Z0-9./:@%?#\\[\\]_-]{0,60}") {
        let input = format!("mimi://{rest}");
        if let Ok(user) = UserId::parse_uri(&input) {
            prop_assert_eq!(&UserId::parse_uri(&user.to_uri()).unwrap(), &user);
        }
        if let Ok(client) = ClientId::parse_uri(&input) {
            prop_assert_eq!(&ClientId::parse_uri(&client.to_uri()).unwrap(), &client);
        }
        let _ = RoomId::parse_uri(&input);
    }
}
