//! Known-answer tests: the examples of draft-ietf-mimi-content-08, kept as data files in
//! `shared/vectors/mimi-content/` beside the repository.
//!
//! Every `.cbor` file must decode, re-encode to the same bytes, and (for messages) hash
//! to the message ID its `.edn` annotation gives, using the sender and room URIs the
//! message carries in its extensions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use entente_wire::content::{
    Disposition, MessageDerivedValues, MessageId, MimiContent, PartBody, TextFormat,
};
use sha2::{Digest, Sha256};

/// The draft has 14 example messages and one set of derived values.
const MIN_VECTORS: usize = 15;

struct Vector {
    name: String,
    cbor: Vec<u8>,
    edn: String,
}

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/mimi-content")
}

fn load_vectors() -> Vec<Vector> {
    let dir = vector_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "MIMI content vectors missing: cannot read {}: {e}",
            dir.display()
        )
    });
    let mut vectors: Vec<Vector> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cbor"))
        .map(|path| {
            let name = path
                .file_stem()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let edn_path = path.with_extension("edn");
            let edn = std::fs::read_to_string(&edn_path)
                .unwrap_or_else(|e| panic!("{name}: cannot read {}: {e}", edn_path.display()));
            let cbor = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            Vector { name, cbor, edn }
        })
        .collect();
    vectors.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        vectors.len() >= MIN_VECTORS,
        "expected at least {MIN_VECTORS} .cbor vectors in {}, found {}",
        dir.display(),
        vectors.len()
    );
    vectors
}

/// The hex of the first `h'...'` literal after `marker`, which may wrap across comment
/// lines (`# message ID = h'01...\n#                05...'`).
fn hex_literal_after(text: &str, marker: &str) -> Option<Vec<u8>> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let start = rest.find("h'")? + 2;
    let end = start + rest[start..].find('\'')?;
    let digits: String = rest[start..end]
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    hex::decode(digits).ok()
}

fn edn_message_id(edn: &str) -> Option<MessageId> {
    let bytes = hex_literal_after(edn, "# message ID =")?;
    Some(MessageId(bytes.try_into().ok()?))
}

fn decode_messages(vectors: &[Vector]) -> BTreeMap<String, (MimiContent, MessageId)> {
    let mut messages = BTreeMap::new();
    for vector in vectors.iter().filter(|v| !v.name.starts_with("implied-")) {
        let name = &vector.name;
        let content = MimiContent::decode(&vector.cbor)
            .unwrap_or_else(|e| panic!("{name}: does not decode: {e}"));
        assert_eq!(
            content.encode(),
            vector.cbor,
            "{name}: re-encoding changed the bytes"
        );

        let sender = content
            .extensions
            .sender_uri
            .clone()
            .expect("vector carries senderUri");
        let room = content
            .extensions
            .room_uri
            .clone()
            .expect("vector carries roomUri");
        let id = content.message_id(&sender, &room).unwrap();
        let from_bytes = MessageId::compute(&vector.cbor, &content.salt, &sender, &room);
        assert_eq!(
            from_bytes,
            Ok(id),
            "{name}: ID of the bytes differs from ID of the value"
        );
        let expected = edn_message_id(&vector.edn)
            .unwrap_or_else(|| panic!("{name}: no `# message ID = h'...'` in the .edn"));
        assert_eq!(id, expected, "{name}: message ID");
        messages.insert(name.clone(), (content, id));
    }
    messages
}

#[test]
fn every_vector_round_trips_with_its_message_id() {
    let vectors = load_vectors();
    let messages = decode_messages(&vectors);
    assert_eq!(
        messages.len() + 1,
        vectors.len(),
        "one vector is derived values"
    );
    // An independent CBOR implementation agrees that each file is one well-formed item.
    for vector in &vectors {
        let mut other = minicbor::Decoder::new(&vector.cbor);
        other
            .skip()
            .unwrap_or_else(|e| panic!("{}: minicbor: {e}", vector.name));
        assert_eq!(other.position(), vector.cbor.len(), "{}", vector.name);
    }
}

#[test]
fn references_between_vectors_resolve() {
    let messages = decode_messages(&load_vectors());
    let id = |name: &str| messages.get(name).map(|(_, id)| *id).expect(name);
    let field = |name: &str, pick: fn(&MimiContent) -> Option<MessageId>| {
        messages.get(name).and_then(|(content, _)| pick(content))
    };
    let replaces = |name| field(name, |c| c.replaces);
    let in_reply_to = |name| field(name, |c| c.in_reply_to);

    // As annotated in the .edn files ("# replaces = Reply", "# inReplyTo = Original").
    for name in [
        "reply",
        "reaction",
        "mention",
        "mention-html",
        "edit",
        "delete",
        "unlike",
    ] {
        assert_eq!(in_reply_to(name), Some(id("original")), "{name}.inReplyTo");
    }
    assert_eq!(replaces("edit"), Some(id("reply")));
    assert_eq!(replaces("delete"), Some(id("reply")));
    assert_eq!(replaces("unlike"), Some(id("reaction")));
    // And no reference anywhere points outside the set.
    let known: Vec<MessageId> = messages.values().map(|(_, id)| *id).collect();
    for (name, (content, _)) in &messages {
        for reference in [content.replaces, content.in_reply_to]
            .into_iter()
            .flatten()
        {
            assert!(
                known.contains(&reference),
                "{name} refers to unknown {reference}"
            );
        }
    }
}

#[test]
fn derived_values_vector_round_trips_and_names_the_original() {
    let vectors = load_vectors();
    let implied = vectors
        .iter()
        .find(|v| v.name == "implied-original")
        .expect("implied vector");
    let original = vectors
        .iter()
        .find(|v| v.name == "original")
        .expect("original vector");

    let values = MessageDerivedValues::decode(&implied.cbor).unwrap();
    assert_eq!(
        values.encode(),
        implied.cbor,
        "re-encoding changed the bytes"
    );
    assert_eq!(values.sender_leaf_index, 4);

    let content = MimiContent::decode(&original.cbor).unwrap();
    let id = content
        .message_id(&values.sender_user_url, &values.room_url)
        .unwrap();
    let edn_id = hex_literal_after(&implied.edn, "messageId").expect("messageId in .edn");
    assert_eq!(
        edn_id, id.0,
        "implied-original.edn names the original's -08 message ID"
    );

    if values.message_id != id {
        // Erratum: implied-original.cbor was not regenerated when -08 added the length
        // prefixes; it holds the -07 ID, hash(senderUri || roomUri || message || salt).
        let draft07 = Sha256::new()
            .chain_update(&values.sender_user_url)
            .chain_update(&values.room_url)
            .chain_update(&original.cbor)
            .chain_update(content.salt)
            .finalize();
        assert_eq!(values.message_id.0[0], MessageId::SHA256);
        assert_eq!(
            values.message_id.0[1..],
            draft07[..31],
            "implied-original.cbor holds neither the -08 nor the -07 ID of the original"
        );
    }
}

#[test]
fn vector_bodies_yield_the_expected_text() {
    let messages = decode_messages(&load_vectors());
    let content = |name: &str| &messages.get(name).expect(name).0;
    let texts = |name: &str| -> Vec<(TextFormat, String)> {
        let parts = content(name).text_parts();
        parts
            .iter()
            .map(|t| (t.format, t.text.to_owned()))
            .collect()
    };
    let markdown = |text: &str| vec![(TextFormat::Markdown, text.to_owned())];

    assert_eq!(
        texts("original"),
        markdown("Hi everyone, we just shipped release 2.0. __Good  work__!")
    );
    assert_eq!(
        texts("edit"),
        markdown("Right on! _Congratulations_ y'all!")
    );
    assert_eq!(texts("multipart-1"), markdown("# Welcome!"));
    assert_eq!(texts("delete"), vec![]);
    assert_eq!(texts("attachment"), vec![]);
    let reactions: Vec<String> = texts("multipart-2").into_iter().map(|(_, t)| t).collect();
    assert_eq!(reactions, ["\u{2764}", "\u{1f973}", "\u{1f91e}"]);
    let reaction = content("reaction").display_text().unwrap();
    assert_eq!(
        (reaction.disposition, reaction.text),
        (Disposition::Reaction, "\u{2764}")
    );
    let [(format, html)] = texts("multipart-3").try_into().unwrap();
    assert_eq!(format, TextFormat::Html);
    assert!(
        html.contains("Welcome!") && html.contains("cid:5@local.invalid"),
        "{html}"
    );

    // The implied part indexes of the draft's nesting example: cid:5 is the GIF and
    // cid:10 the PNG; 3 and 4 are English and French.
    let body = &content("multipart-3").nested_part;
    let content_type = |index| match &body.part_by_index(index).expect("part").body {
        PartBody::Single(single) => single.content_type.clone(),
        _ => String::new(),
    };
    assert_eq!(content_type(5), "image/gif");
    assert_eq!(content_type(10), "image/png");
    assert_eq!(
        body.part_by_index(4).map(|p| p.language.as_str()),
        Some("fr")
    );
    assert!(body.part_by_index(11).is_none());
}
