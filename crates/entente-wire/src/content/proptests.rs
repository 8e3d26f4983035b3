//! Property tests: every message we can build round-trips byte for byte, and any input
//! that decodes is already in the one encoding we produce.

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

use super::value::f16_to_f64;
use super::*;

fn map_key() -> impl Strategy<Value = MapKey> {
    prop_oneof![
        (-MAX_INTEGER_KEY..=MAX_INTEGER_KEY).prop_map(MapKey::Int),
        (-30i64..30).prop_map(MapKey::Int),
        vec(any::<u8>(), 0..6).prop_map(MapKey::Bytes),
        ".{0,6}".prop_map(MapKey::Text),
    ]
}

fn leaf_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::Unsigned),
        any::<u64>().prop_map(Value::Negative),
        vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
        ".{0,8}".prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        Just(Value::Undefined),
        prop_oneof![0u8..=19, 32u8..=255].prop_map(Value::Simple),
        any::<f64>().prop_map(|f| Value::Float(Float::new(f))),
        any::<f32>().prop_map(|f| Value::Float(Float::new(f.into()))),
        any::<u16>().prop_map(|h| Value::Float(Float::new(f16_to_f64(h)))),
        (2u64..=3, 1u8..=255, vec(any::<u8>(), 8..12)).prop_map(|(tag, first, rest)| {
            let bytes = [vec![first], rest].concat();
            Value::Tag(tag, Box::new(Value::Bytes(bytes)))
        }),
    ]
}

/// Values with at most three levels of containers (two here, and bignum tags among the
/// leaves): an extension value is at level 2, so this reaches the limit of 4.
fn value() -> impl Strategy<Value = Value> {
    leaf_value().prop_recursive(2, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(map_key(), inner.clone(), 0..4).prop_map(Value::Map),
            (
                any::<u64>().prop_filter("not a bignum", |t| !matches!(t, 2 | 3)),
                inner
            )
                .prop_map(|(tag, content)| Value::Tag(tag, Box::new(content))),
        ]
    })
}

fn extension_key() -> impl Strategy<Value = ExtensionKey> {
    prop_oneof![
        (-MAX_INTEGER_KEY..=MAX_INTEGER_KEY).prop_map(|k| ExtensionKey::int(k).ok()),
        (-3i64..300).prop_map(|k| ExtensionKey::int(k).ok()),
        "[a-z0-9-]{1,12}".prop_map(|k| ExtensionKey::text(k).ok()),
    ]
    .prop_filter_map("keys 1 and 2 are typed fields", |k| k)
}

fn extensions() -> impl Strategy<Value = Extensions> {
    (
        option::of(".{0,12}"),
        option::of(".{0,12}"),
        vec((extension_key(), value()), 0..4),
    )
        .prop_map(|(sender_uri, room_uri, others)| {
            let mut extensions = Extensions::new();
            extensions.sender_uri = sender_uri;
            extensions.room_uri = room_uri;
            for (key, value) in others {
                extensions
                    .insert(key, value)
                    .expect("generated values follow the data model");
            }
            extensions
        })
}

fn external_part() -> impl Strategy<Value = ExternalPart> {
    let strings = (".{0,12}", ".{0,12}", ".{0,12}", ".{0,12}");
    let numbers = (any::<u32>(), any::<u64>(), any::<u16>(), any::<u8>());
    let bytes = (
        vec(any::<u8>(), 0..17),
        vec(any::<u8>(), 0..13),
        vec(any::<u8>(), 0..4),
    );
    (strings, numbers, bytes, vec(any::<u8>(), 0..33)).prop_map(
        |(
            (content_type, url, description, filename),
            (expires, size, enc_alg, hash_alg),
            (key, nonce, aad),
            content_hash,
        )| ExternalPart {
            content_type,
            url,
            expires,
            size,
            enc_alg,
            key,
            nonce,
            aad,
            hash_alg,
            content_hash,
            description,
            filename,
        },
    )
}

fn leaf_part() -> impl Strategy<Value = NestedPart> {
    let disposition = any::<u8>().prop_map(Disposition::from);
    let body = prop_oneof![
        Just(PartBody::Null),
        (".{0,16}", vec(any::<u8>(), 0..24)).prop_map(|(content_type, content)| PartBody::Single(
            SinglePart {
                content_type,
                content
            }
        )),
        external_part().prop_map(|part| PartBody::External(Box::new(part))),
    ];
    (disposition, "[a-z,-]{0,6}", body).prop_map(|(disposition, language, body)| NestedPart {
        disposition,
        language,
        body,
    })
}

/// Bodies up to the depth limit of 4 (three levels of multiparts around leaves).
fn nested_part() -> impl Strategy<Value = NestedPart> {
    leaf_part().prop_recursive(3, 24, 3, |inner| {
        (any::<u8>(), "[a-z]{0,2}", any::<u64>(), vec(inner, 2..4)).prop_map(
            |(disposition, language, semantics, parts)| {
                let semantics = PartSemantics::from(semantics % 4);
                let mut part = NestedPart::multi(disposition.into(), semantics, parts)
                    .expect("generated parts respect the limits");
                part.language = language;
                part
            },
        )
    })
}

fn mimi_content() -> impl Strategy<Value = MimiContent> {
    let ids = (option::of(any::<[u8; 32]>()), option::of(any::<[u8; 32]>()));
    let expires = option::of((any::<bool>(), any::<u32>()))
        .prop_map(|e| e.map(|(relative, time)| Expiration { relative, time }));
    (
        any::<[u8; 16]>(),
        ids,
        vec(any::<u8>(), 0..8),
        expires,
        extensions(),
        nested_part(),
    )
        .prop_map(
            |(salt, (replaces, in_reply_to), topic_id, expires, extensions, nested_part)| {
                MimiContent {
                    salt,
                    replaces: replaces.map(MessageId),
                    topic_id,
                    expires,
                    in_reply_to: in_reply_to.map(MessageId),
                    extensions,
                    nested_part,
                }
            },
        )
}

/// Decoding must never panic, and whatever decodes must re-encode to the same bytes.
fn check_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(content) = MimiContent::decode(bytes) {
        prop_assert_eq!(content.encode(), bytes);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn content_round_trips_byte_for_byte(content in mimi_content()) {
        let bytes = content.encode();
        let decoded = MimiContent::decode(&bytes);
        prop_assert_eq!(decoded.as_ref(), Ok(&content));
        prop_assert_eq!(decoded.map(|d| d.encode()), Ok(bytes.clone()));
        // An implementation we did not write agrees that this is one well-formed item.
        let mut other = minicbor::Decoder::new(&bytes);
        prop_assert!(other.skip().is_ok());
        prop_assert_eq!(other.position(), bytes.len());
    }

    #[test]
    fn content_mutations_never_panic_and_stay_canonical(
        content in mimi_content(),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        kind in 0..4u8,
    ) {
        let mut bytes = content.encode();
        let at = index.index(bytes.len());
        match kind {
            0 => bytes[at] = byte,
            1 => bytes[at] ^= 1 << (byte % 8),
            2 => bytes.insert(at, byte),
            _ => bytes.truncate(at),
        }
        check_canonical(&bytes)?;
    }

    #[test]
    fn content_arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..96)) {
        check_canonical(&bytes)?;
        let mut prefixed = vec![0x87, 0x50];
        prefixed.extend_from_slice(&bytes);
        check_canonical(&prefixed)?;
    }

    #[test]
    fn content_map_key_order_is_encoding_order(a in map_key(), b in map_key()) {
        let encode = |key: &MapKey| {
            let mut w = cbor::Writer::default();
            key.encode(&mut w);
            w.into_bytes()
        };
        prop_assert_eq!(a.cmp(&b), encode(&a).cmp(&encode(&b)));
    }
}
