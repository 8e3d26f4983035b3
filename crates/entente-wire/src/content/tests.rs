//! Unit tests: malformed inputs, limits, construction rules and accessors.

use super::*;

const SALT: &str = "00112233445566778899aabbccddeeff";
/// salt, replaces = null, topicId = h'', expires = null, inReplyTo = null
const HEADER: &str = "87 50 00112233445566778899aabbccddeeff f6 40 f6 f6";
/// `[1, "", 0]`: a render nullpart.
const NULL_BODY: &str = "83 01 60 00";

fn h(hex: &str) -> Vec<u8> {
    hex::decode(hex.replace(' ', "")).expect("test hex")
}

/// A message with the given extensions map and body, both as hex.
fn message(extensions: &str, body: &str) -> Vec<u8> {
    h(&format!("{HEADER} {extensions} {body}"))
}

fn decode_err(bytes: &[u8]) -> ContentError {
    MimiContent::decode(bytes).expect_err("must be rejected")
}

/// A body `depth` levels deep: multiparts of two, innermost holding null parts.
fn nested_body(depth: usize) -> String {
    if depth == 1 {
        NULL_BODY.to_owned()
    } else {
        let inner = nested_body(depth - 1);
        format!("85 01 60 03 00 82 {inner} {NULL_BODY}")
    }
}

/// A message using every kind of field, built through the API.
fn rich_message() -> MimiContent {
    let external = ExternalPart {
        content_type: "video/mp4".into(),
        url: "https://example.com/v.mp4".into(),
        expires: 1_700_000_000,
        size: 1 << 40,
        enc_alg: 1,
        key: vec![7; 16],
        nonce: vec![8; 12],
        aad: vec![],
        hash_alg: 1,
        content_hash: vec![9; 32],
        description: "video".into(),
        filename: "v.mp4".into(),
    };
    let parts = vec![
        NestedPart::single(Disposition::Render, PLAIN_TEXT, "hello"),
        NestedPart::external(Disposition::Attachment, external),
        NestedPart::null(Disposition::Other(200)),
    ];
    let body = NestedPart::multi(Disposition::Render, PartSemantics::ProcessAll, parts).unwrap();
    let mut content = MimiContent::new([3; 16], body);
    content.replaces = Some(MessageId([1; 32]));
    content.topic_id = b"topic".to_vec();
    content.expires = Some(Expiration {
        relative: true,
        time: 600,
    });
    content.in_reply_to = Some(MessageId([2; 32]));
    content.extensions.sender_uri = Some("mimi://a.example/u/alice".into());
    content.extensions.room_uri = Some("mimi://a.example/r/team".into());
    let key = ExtensionKey::text("x-vendor").unwrap();
    content
        .extensions
        .insert(key, Value::Array(vec![Value::Unsigned(1)]))
        .unwrap();
    content
}

#[test]
fn content_minimal_message_round_trips() {
    let bytes = message("a0", NULL_BODY);
    let content = MimiContent::decode(&bytes).unwrap();
    assert_eq!(content.salt.to_vec(), h(SALT));
    assert_eq!(
        content,
        MimiContent::new(content.salt, NestedPart::null(Disposition::Render))
    );
    assert_eq!(content.encode(), bytes);
    assert_eq!(content.display_text(), None);
}

#[test]
fn content_rich_message_round_trips() {
    let content = rich_message();
    let bytes = content.encode();
    assert_eq!(MimiContent::decode(&bytes), Ok(content));
}

#[test]
fn content_every_strict_prefix_is_truncated() {
    let bytes = rich_message().encode();
    for len in 0..bytes.len() {
        let error = decode_err(&bytes[..len]);
        assert!(
            matches!(error, ContentError::Truncated { .. }),
            "prefix {len}: {error}"
        );
    }
}

#[test]
fn content_trailing_bytes_are_rejected() {
    let mut bytes = message("a0", NULL_BODY);
    let at = bytes.len();
    bytes.extend_from_slice(&[0xf6, 0x00]);
    assert_eq!(
        decode_err(&bytes),
        ContentError::TrailingBytes { at, count: 2 }
    );
}

#[test]
fn content_wrong_types_say_what_was_expected() {
    let text_salt = h(&format!("87 70 {SALT} f6 40 f6 f6 a0 {NULL_BODY}"));
    let error = decode_err(&text_salt);
    assert_eq!(
        error,
        ContentError::UnexpectedType {
            field: "mimiContent.salt",
            at: 1,
            expected: "byte string",
            found: "text string",
        }
    );
    assert_eq!(
        error.to_string(),
        "mimiContent.salt at offset 1: expected byte string, found text string"
    );
    let cases = [
        (
            format!("87 50 {SALT} 01 40 f6 f6 a0 {NULL_BODY}"),
            "null or 32-byte string",
        ),
        (
            format!("87 50 {SALT} f6 f6 f6 f6 a0 {NULL_BODY}"),
            "byte string",
        ),
        (
            format!("87 50 {SALT} f6 40 f5 f6 a0 {NULL_BODY}"),
            "null or Expiration array",
        ),
        (
            format!("87 50 {SALT} f6 40 82 01 01 f6 a0 {NULL_BODY}"),
            "boolean",
        ),
        (
            format!("87 50 {SALT} f6 40 f6 60 a0 {NULL_BODY}"),
            "null or 32-byte string",
        ),
        (format!("{HEADER} 80 {NULL_BODY}"), "map"),
        (format!("{HEADER} a0 a0"), "array"),
        (format!("{HEADER} a0 83 20 60 00"), "unsigned integer"),
        (format!("{HEADER} a0 83 01 40 00"), "text string"),
        (format!("{HEADER} a1 01 41 61 {NULL_BODY}"), "text string"),
        (format!("{HEADER} a0 85 01 60 01 40 40"), "text string"),
        (format!("{HEADER} a0 85 01 60 01 60 60"), "byte string"),
    ];
    for (hex, expected_type) in cases {
        match decode_err(&h(&hex)) {
            ContentError::UnexpectedType { expected, .. } => assert_eq!(expected, expected_type),
            other => panic!("{hex}: {other}"),
        }
    }
}

#[test]
fn content_fixed_sizes_are_enforced() {
    let short_salt = h(&format!("87 4f {} f6 40 f6 f6 a0 {NULL_BODY}", &SALT[2..]));
    let error = decode_err(&short_salt);
    assert_eq!(
        error,
        ContentError::WrongSize {
            field: "mimiContent.salt",
            at: 1,
            expected: 16,
            found: 15
        }
    );
    assert!(error.to_string().contains("expected 16 bytes, found 15"));
    let short_id = h(&format!(
        "87 50 {SALT} 58 1f {} 40 f6 f6 a0 {NULL_BODY}",
        "00".repeat(31)
    ));
    assert!(matches!(
        decode_err(&short_id),
        ContentError::WrongSize { expected: 32, .. }
    ));
}

#[test]
fn content_wrong_array_lengths_are_rejected() {
    let cases = [
        h(&format!("86 50 {SALT} f6 40 f6 f6 a0")),
        h(&format!("88 50 {SALT} f6 40 f6 f6 a0 {NULL_BODY} 00")),
        message("a0", "84 01 60 00 00"),
        message("a0", "85 01 60 00 00 00"),
        message("a0", "83 01 60 01"),
        message("a0", "8f 01 60 03 00 00 00 00 00 00 00 00 00 00 00 00"),
        h(&format!("87 50 {SALT} f6 40 83 f4 01 01 f6 a0 {NULL_BODY}")),
    ];
    for bytes in cases {
        let error = decode_err(&bytes);
        assert!(
            matches!(error, ContentError::WrongArrayLength { .. }),
            "{error}"
        );
    }
}

#[test]
fn content_indefinite_lengths_are_rejected() {
    let cases = [
        h(&format!("9f 50 {SALT} f6 40 f6 f6 a0 {NULL_BODY} ff")),
        h(&format!("87 5f 50 {SALT} ff f6 40 f6 f6 a0 {NULL_BODY}")),
        message("bf ff", NULL_BODY),
        message("a0", "83 01 7f ff 00"),
    ];
    for bytes in cases {
        let error = decode_err(&bytes);
        assert!(
            matches!(error, ContentError::IndefiniteLength { .. }),
            "{error}"
        );
    }
}

#[test]
fn content_non_shortest_and_malformed_heads_are_rejected() {
    for bytes in [
        h(&format!("98 07 50 {SALT} f6 40 f6 f6 a0 {NULL_BODY}")),
        message("a0", "83 18 01 60 00"),
        message("a0", "83 01 78 00 00"),
        message("a0", "83 01 60 19 00 00"),
        message("a0", "83 01 60 1b 00 00 00 00 00 00 00 00"),
    ] {
        let error = decode_err(&bytes);
        assert!(matches!(error, ContentError::NotShortest { .. }), "{error}");
    }
    for bytes in [
        message("a0", "83 1c 60 00"),
        message("a0", "ff"),
        message("a0", "83 01 60 1f"),
    ] {
        let error = decode_err(&bytes);
        assert!(matches!(error, ContentError::Malformed { .. }), "{error}");
    }
}

#[test]
fn content_cardinality_and_parts_are_checked() {
    let error = decode_err(&message("a0", "83 01 60 04"));
    assert_eq!(error, ContentError::UnknownCardinality { at: 26, found: 4 });
    let one_part = message("a0", &format!("85 01 60 03 00 81 {NULL_BODY}"));
    assert!(matches!(
        decode_err(&one_part),
        ContentError::TooFewParts { found: 1, .. }
    ));
    let no_parts = message("a0", "85 01 60 03 00 80");
    assert!(matches!(
        decode_err(&no_parts),
        ContentError::TooFewParts { found: 0, .. }
    ));
    // Unknown part semantics are kept for the application to judge.
    let unknown = MimiContent::decode(&message(
        "a0",
        &nested_body(2).replacen("03 00", "03 07", 1),
    ))
    .unwrap();
    let PartBody::Multi(multi) = &unknown.nested_part.body else {
        panic!("multipart")
    };
    assert_eq!(multi.semantics(), PartSemantics::Unknown(7));
}

#[test]
fn content_part_nesting_is_limited_to_four_levels() {
    let deepest = MimiContent::decode(&message("a0", &nested_body(MAX_PART_DEPTH))).unwrap();
    assert_eq!(deepest.nested_part.depth(), MAX_PART_DEPTH);
    let error = decode_err(&message("a0", &nested_body(MAX_PART_DEPTH + 1)));
    assert!(
        matches!(
            error,
            ContentError::TooDeep {
                what: "NestedPart",
                limit: 4,
                ..
            }
        ),
        "{error}"
    );
    // Very deep input fails at the limit instead of exhausting the stack.
    let mut bytes = h(HEADER);
    bytes.push(0xa0);
    for _ in 0..100_000 {
        bytes.extend_from_slice(&h("85 01 60 03 00 82"));
    }
    assert!(matches!(decode_err(&bytes), ContentError::TooDeep { .. }));
}

#[test]
fn content_huge_declared_lengths_do_not_allocate() {
    for body in [
        "9b ffffffffffffffff",
        "85 01 60 01 60 5b ffffffffffffffff",
        "85 01 60 03 00 9a ffffffff",
    ] {
        let error = decode_err(&message("a0", body));
        assert!(matches!(error, ContentError::Truncated { .. }), "{error}");
    }
    let error = decode_err(&message("bb ffffffffffffffff", NULL_BODY));
    assert!(matches!(error, ContentError::Truncated { .. }), "{error}");
}

#[test]
fn content_integer_sizes_are_enforced() {
    let error = decode_err(&message("a0", "83 19 0100 60 00"));
    assert_eq!(
        error,
        ContentError::IntegerTooLarge {
            field: "NestedPart.disposition",
            at: 24,
            found: 256,
            max: 255
        }
    );
    let expires = format!("87 50 {SALT} f6 40 82 f4 1b 0000000100000000 f6 a0 {NULL_BODY}");
    assert!(matches!(
        decode_err(&h(&expires)),
        ContentError::IntegerTooLarge {
            max: 0xffff_ffff,
            ..
        }
    ));
    // expires, size, encAlg, key, nonce, aad, hashAlg = 256
    let external = "8f 01 60 02 60 60 00 00 00 40 40 40 19 0100 40 60 60";
    let error = decode_err(&message("a0", external));
    assert!(matches!(
        error,
        ContentError::IntegerTooLarge {
            field: "ExternalPart.hashAlg",
            ..
        }
    ));
}

#[test]
fn content_text_must_be_utf8() {
    let error = decode_err(&message("a0", "83 01 62 c3 28 00"));
    assert_eq!(
        error,
        ContentError::InvalidUtf8 {
            field: "NestedPart.language",
            at: 25
        }
    );
}

#[test]
fn content_extension_keys_are_checked() {
    let uri = "6161"; // text "a" with its head: 61 61
    let cases = [
        (format!("a2 01 {uri} 01 {uri}"), "order"),
        (format!("a2 02 {uri} 01 {uri}"), "order"),
        (format!("a2 20 00 01 {uri}"), "order"),
        ("a1 60 00".to_owned(), "key"),
        (format!("a1 78ff {} 00", "61".repeat(255)), "ok"),
        (format!("a1 790100 {} 00", "61".repeat(256)), "key"),
        ("a1 41 00 00".to_owned(), "key"),
        ("a1 1b 0020000000000000 00".to_owned(), "key"),
        ("a1 1b 001fffffffffffff 00".to_owned(), "ok"),
        ("a1 3b 001ffffffffffffe 00".to_owned(), "ok"),
        ("a1 3b 001fffffffffffff 00".to_owned(), "key"),
        ("a1 80 00".to_owned(), "key"),
    ];
    for (extensions, outcome) in cases {
        let result = MimiContent::decode(&message(&extensions, NULL_BODY));
        match (outcome, result) {
            ("ok", Ok(_)) => {}
            ("order", Err(ContentError::MapKeyOrder { .. })) => {}
            ("key", Err(ContentError::InvalidMapKey { .. })) => {}
            (outcome, result) => panic!("{extensions}: wanted {outcome}, got {result:?}"),
        }
    }
}

#[test]
fn content_extension_values_follow_the_data_model() {
    // The draft's own example of the deepest extension allowed.
    let draft_example = "a2 01 78 18 6d696d693a2f2f612e6578616d706c652f752f616c696365 \
        19 0100 82 82 42 1234 d8 20 72 687474703a2f2f6578616d706c652e636f6d \
        82 42 3456 19 168b";
    let content = MimiContent::decode(&message(draft_example, NULL_BODY)).unwrap();
    assert_eq!(
        content.extensions.sender_uri.as_deref(),
        Some("mimi://a.example/u/alice")
    );
    assert_eq!(content.encode(), message(draft_example, NULL_BODY));
    let rejected = [
        ("a1 03 81 81 81 81 00", "too deep"),
        ("a1 03 a2 02 00 01 00", "unsorted nested map"),
        ("a1 03 a1 80 00", "array as nested key"),
        ("a1 03 c2 48 0102030405060708", "bignum that fits"),
        (
            "a1 03 c2 49 000102030405060708",
            "bignum with a leading zero",
        ),
        ("a1 03 c2 01", "bignum of an integer"),
        ("a1 03 f8 10", "two-byte simple value below 32"),
        ("a1 03 f9 7e01", "NaN with payload"),
        ("a1 03 fa 3fc00000", "1.5 as single"),
        ("a1 03 7f ff", "indefinite text"),
    ];
    for (extensions, why) in rejected {
        assert!(
            MimiContent::decode(&message(extensions, NULL_BODY)).is_err(),
            "{why}"
        );
    }
    for accepted in [
        "a1 03 81 81 81 00",
        "a1 03 c2 49 010203040506070809",
        "a1 03 f8 20",
        "a1 03 f9 7e00",
    ] {
        let bytes = message(accepted, NULL_BODY);
        assert_eq!(
            MimiContent::decode(&bytes).unwrap().encode(),
            bytes,
            "{accepted}"
        );
    }
}

#[test]
fn content_extensions_encode_in_key_order() {
    let salt = h(SALT).try_into().unwrap();
    let mut content = MimiContent::new(salt, NestedPart::null(Disposition::Render));
    for key in [
        ExtensionKey::int(300),
        ExtensionKey::int(-1),
        ExtensionKey::int(0),
    ] {
        content
            .extensions
            .insert(key.unwrap(), Value::Null)
            .unwrap();
    }
    content
        .extensions
        .insert(ExtensionKey::text("a").unwrap(), Value::Bool(true))
        .unwrap();
    content.extensions.sender_uri = Some("s".into());
    content.extensions.room_uri = Some("r".into());
    let bytes = content.encode();
    let expected = message(
        "a6 00 f6 01 6173 02 6172 19012c f6 20 f6 6161 f5",
        NULL_BODY,
    );
    assert_eq!(bytes, expected);
    assert_eq!(MimiContent::decode(&bytes), Ok(content));
}

#[test]
fn content_construction_enforces_the_draft() {
    let null = || NestedPart::null(Disposition::Render);
    assert_eq!(
        MultiPart::new(PartSemantics::ChooseOne, vec![null()]),
        Err(ConstructionError::TooFewParts { found: 1 })
    );
    let mut part = null();
    for depth in 2..=MAX_PART_DEPTH {
        part = NestedPart::multi(
            Disposition::Render,
            PartSemantics::ProcessAll,
            vec![part, null()],
        )
        .unwrap();
        assert_eq!(part.depth(), depth);
    }
    assert_eq!(
        MultiPart::new(PartSemantics::ProcessAll, vec![part, null()]),
        Err(ConstructionError::PartsTooDeep { depth: 5, limit: 4 })
    );
    assert!(ExtensionKey::int(1).is_err());
    assert!(ExtensionKey::int(2).is_err());
    assert!(ExtensionKey::int(MAX_INTEGER_KEY + 1).is_err());
    assert!(ExtensionKey::int(-MAX_INTEGER_KEY).is_ok());
    assert!(ExtensionKey::text("").is_err());
    assert!(ExtensionKey::text("a".repeat(256)).is_err());
    let mut extensions = Extensions::new();
    let key = ExtensionKey::int(3).unwrap();
    let deep = Value::Array(vec![Value::Array(vec![Value::Array(vec![Value::Array(
        vec![],
    )])])]);
    assert!(extensions.insert(key.clone(), deep).is_err());
    assert!(extensions.insert(key.clone(), Value::Simple(22)).is_err());
    let big_key = Value::Map([(MapKey::Int(i64::MAX), Value::Null)].into());
    assert!(extensions.insert(key.clone(), big_key).is_err());
    let small_bignum = Value::Tag(2, Box::new(Value::Bytes(vec![1])));
    assert!(extensions.insert(key.clone(), small_bignum).is_err());
    assert_eq!(extensions.insert(key.clone(), Value::Unsigned(1)), Ok(None));
    assert_eq!(extensions.get(&key), Some(&Value::Unsigned(1)));
    assert!(!extensions.is_empty());
}

#[test]
fn content_text_constructors_and_accessors() {
    let plain = MimiContent::text("hi <b>", false, [1; 16]);
    let PartBody::Single(single) = &plain.nested_part.body else {
        panic!("single part")
    };
    assert_eq!(single.content_type, "text/plain;charset=utf-8");
    let text = plain.display_text().unwrap();
    assert_eq!(
        (text.format, text.text, text.disposition),
        (TextFormat::Plain, "hi <b>", Disposition::Render)
    );
    let markdown = MimiContent::decode(&MimiContent::text("*hi*", true, [1; 16]).encode()).unwrap();
    let text = markdown.display_text().unwrap();
    assert_eq!(
        (text.format, text.content_type),
        (TextFormat::Markdown, MARKDOWN)
    );
    // The rich message shows its one text part; the external and null parts have none.
    let rich = rich_message();
    let texts = rich.text_parts();
    assert_eq!(texts.iter().map(|t| t.text).collect::<Vec<_>>(), ["hello"]);
    // chooseOne prefers an alternative that is not only HTML.
    let html = NestedPart::single(Disposition::Render, "text/html", "<p>hi</p>");
    let plain = NestedPart::single(Disposition::Render, PLAIN_TEXT, "hi");
    let choose = NestedPart::multi(
        Disposition::Render,
        PartSemantics::ChooseOne,
        vec![html, plain],
    )
    .unwrap();
    assert_eq!(
        choose
            .text_parts()
            .iter()
            .map(|t| t.text)
            .collect::<Vec<_>>(),
        ["hi"]
    );
}

#[test]
fn content_part_indexes_are_depth_first() {
    let body = MimiContent::decode(&message("a0", &nested_body(3)))
        .unwrap()
        .nested_part;
    // 0: multi [1: multi [2: null, 3: null], 4: null]
    assert_eq!(body.part_by_index(0).map(NestedPart::depth), Some(3));
    assert_eq!(body.part_by_index(1).map(NestedPart::depth), Some(2));
    assert_eq!(body.part_by_index(4).map(NestedPart::depth), Some(1));
    assert_eq!(body.part_by_index(5), None);
}

#[test]
fn content_message_ids_hash_the_encoding() {
    let content = rich_message();
    let id = content
        .message_id("mimi://a.example/u/alice", "mimi://a.example/r/team")
        .unwrap();
    let direct = MessageId::compute(
        &content.encode(),
        &content.salt,
        "mimi://a.example/u/alice",
        "mimi://a.example/r/team",
    )
    .unwrap();
    assert_eq!(id, direct);
    assert_eq!(id.hash_alg(), MessageId::SHA256);
    assert_ne!(
        id,
        content
            .message_id("mimi://a.example/u/alice", "mimi://a.example/r/other")
            .unwrap()
    );
    // The length prefixes keep sender and room apart: moving bytes across changes the ID.
    assert_ne!(
        content.message_id("ab", "c").unwrap(),
        content.message_id("a", "bc").unwrap()
    );
    let long = "a".repeat(65_536);
    assert_eq!(
        content.message_id(&long, "r"),
        Err(MessageIdError::UriTooLong {
            which: "sender",
            len: 65_536
        })
    );
    assert!(content.message_id("s", &long[1..]).is_ok());
}

#[test]
fn content_debug_hides_content_and_keys() {
    let debug = format!("{:?}", rich_message());
    assert!(!debug.contains("hello"), "{debug}");
    assert!(debug.contains("<5 bytes>"), "{debug}");
    assert!(debug.contains("<16 bytes redacted>"), "{debug}");
    assert!(!debug.contains(&"07".repeat(16)), "{debug}");
}

#[test]
fn content_derived_values_round_trip() {
    let values = MessageDerivedValues {
        message_id: MessageId([1; 32]),
        hub_accepted_timestamp: Timestamp::Millis(1_644_387_225_019),
        mls_group_id: vec![0xee; 32],
        sender_leaf_index: 4,
        sender_client_url: "mimi://example.com/d/x/0003".into(),
        sender_user_url: "mimi://example.com/u/alice-smith".into(),
        room_url: "mimi://example.com/r/engineering_team".into(),
    };
    assert_eq!(
        MessageDerivedValues::decode(&values.encode()),
        Ok(values.clone())
    );
    let extended = MessageDerivedValues {
        hub_accepted_timestamp: Timestamp::Extended(
            [
                (MapKey::Int(1), Value::Unsigned(1_644_387_225)),
                (MapKey::Int(-3), Value::Unsigned(19)),
            ]
            .into(),
        ),
        ..values
    };
    let bytes = extended.encode();
    assert_eq!(MessageDerivedValues::decode(&bytes), Ok(extended));
    let mut trailing = bytes;
    trailing.push(0);
    assert!(matches!(
        MessageDerivedValues::decode(&trailing),
        Err(ContentError::TrailingBytes { .. })
    ));
}
