use super::certificate::{CertificateBodyProto, CertificateProto};
use super::*;
use crate::identity::IssuerKey;
use crate::signal::keys::PrivateKey;
use entente_wire::ids::{ClientId, Domain, UserId};
use rand::rngs::OsRng;

const NOW: u64 = 1_700_000_000_000;
const DAY: u64 = 86_400_000;

struct World {
    issuer: IssuerKey,
    user: UserId,
    client: ClientId,
    alice: IdentityKeyPair,
    certificate: SenderCertificate,
    bob: IdentityKeyPair,
}

fn domain(name: &str) -> Domain {
    Domain::parse(name).unwrap()
}

fn world() -> World {
    let issuer = IssuerKey::from_seed(domain("a.example"), &[7; 32]);
    let user = UserId::new("alice", domain("a.example")).unwrap();
    let client = ClientId::new(&user, "phone").unwrap();
    let alice = IdentityKeyPair::generate(&mut OsRng);
    let certificate =
        SenderCertificate::issue(&issuer, &user, &client, 3, &alice.public(), NOW + DAY).unwrap();
    World {
        issuer,
        user,
        client,
        alice,
        certificate,
        bob: IdentityKeyPair::generate(&mut OsRng),
    }
}

fn seal_to_bob(w: &World, content: &[u8]) -> Vec<u8> {
    seal(
        &w.alice,
        &w.certificate,
        &w.bob.public(),
        ContentType::Whisper,
        content,
        &mut OsRng,
    )
    .unwrap()
}

fn outer(sealed: &[u8]) -> OuterProto {
    OuterProto::decode(&sealed[1..]).unwrap()
}

fn reencode(proto: &OuterProto) -> Vec<u8> {
    let mut out = vec![0x11];
    out.extend(proto.encode_to_vec());
    out
}

/// Seals arbitrary inner bytes, as a sender with `sender`'s key could.
fn seal_inner(sender: &IdentityKeyPair, recipient: &PublicKey, inner: &[u8]) -> Vec<u8> {
    let ephemeral = PrivateKey::generate(&mut OsRng);
    let shared = ephemeral.agree(recipient).unwrap();
    let keys = ChainKeys::ephemeral(recipient, &ephemeral.public_key(), &shared).unwrap();
    let encrypted_static = keys.seal(&sender.public().encode()).unwrap();
    let shared = sender.private().agree(recipient).unwrap();
    let static_keys = ChainKeys::static_keys(&keys.chain, &encrypted_static, &shared).unwrap();
    reencode(&OuterProto {
        ephemeral_public: Some(ephemeral.public_key().encode().to_vec()),
        encrypted_static: Some(encrypted_static),
        encrypted_message: Some(static_keys.seal(inner).unwrap()),
    })
}

#[test]
fn round_trip_for_every_content_type() {
    let w = world();
    for content_type in [
        ContentType::PreKey,
        ContentType::Whisper,
        ContentType::SenderKey,
        ContentType::Plaintext,
    ] {
        assert_eq!(
            ContentType::from_wire(content_type.to_wire()),
            Some(content_type)
        );
        for content in [&b""[..], b"hello", &[0xAB; 3000]] {
            let sealed = seal(
                &w.alice,
                &w.certificate,
                &w.bob.public(),
                content_type,
                content,
                &mut OsRng,
            )
            .unwrap();
            let opened = unseal(&w.bob, &sealed).unwrap();
            assert_eq!(opened.content, content);
            assert_eq!(opened.content_type, content_type);
            assert_eq!(opened.certificate, w.certificate);
            let issuer = w.issuer.public();
            assert_eq!(
                opened.certificate.sender_domain().unwrap(),
                issuer.domain.clone()
            );
            opened.certificate.verify(&issuer, NOW).unwrap();
        }
    }
    assert_eq!(w.certificate.sender_user, "mimi://a.example/u/alice");
    assert_eq!(w.certificate.sender_client, w.client.to_string());
    assert_eq!(w.certificate.device_id, 3);
    assert_eq!(w.certificate.signer_domain(), "a.example");
}

#[test]
fn layout_and_keys_match_libsignal_v1() {
    struct Len96;
    impl ring::hkdf::KeyType for Len96 {
        fn len(&self) -> usize {
            96
        }
    }
    let hkdf = |salt: &[u8], ikm: &[u8]| {
        let mut okm = [0u8; 96];
        ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt)
            .extract(ikm)
            .expand(&[], Len96)
            .unwrap()
            .fill(&mut okm)
            .unwrap();
        okm
    };
    let open = |okm: &[u8; 96], sealed: &[u8]| {
        let (ciphertext, tag) = sealed.split_at(sealed.len() - 10);
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &okm[64..]),
            ciphertext,
        );
        assert_eq!(&mac.as_ref()[..10], tag);
        let mut plaintext = ciphertext.to_vec();
        let key: [u8; 32] = okm[32..64].try_into().unwrap();
        Aes256Ctr::new(&key.into(), &[0u8; 16].into()).apply_keystream(&mut plaintext);
        plaintext
    };

    let w = world();
    let sealed = seal_to_bob(&w, b"independently opened");
    assert_eq!(sealed[0], 0x11);
    let parts = outer(&sealed);
    let ephemeral = PublicKey::decode(parts.ephemeral_public.as_ref().unwrap()).unwrap();
    let encrypted_static = parts.encrypted_static.unwrap();
    assert_eq!(encrypted_static.len(), 43);

    let shared = w.bob.private().agree(&ephemeral).unwrap();
    let salt = [
        &b"UnidentifiedDelivery"[..],
        &w.bob.public().encode(),
        &ephemeral.encode(),
    ]
    .concat();
    let ephemeral_okm = hkdf(&salt, &*shared);
    assert_eq!(
        open(&ephemeral_okm, &encrypted_static),
        w.alice.public().encode()
    );
    let shared = w.bob.private().agree(&w.alice.public()).unwrap();
    let salt = [&ephemeral_okm[..32], &encrypted_static].concat();
    let inner = open(&hkdf(&salt, &*shared), &parts.encrypted_message.unwrap());
    let inner = InnerProto::decode(inner.as_slice()).unwrap();
    assert_eq!(inner.r#type, Some(2));
    assert_eq!(inner.content.unwrap(), b"independently opened");
    assert_eq!(inner.sender_certificate.unwrap(), w.certificate.encode());
}

#[test]
fn aes_256_ctr_matches_libsignals_test_vector() {
    // libsignal rust/protocol/src/crypto.rs `aes_ctr_test`.
    let key: [u8; 32] =
        hex::decode("603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4")
            .unwrap()
            .try_into()
            .unwrap();
    let keys = ChainKeys {
        chain: [0; 32],
        cipher: key,
        mac: [0; 32],
    };
    let mut data = [0u8; 35];
    keys.apply_keystream(&mut data).unwrap();
    assert_eq!(
        hex::encode(data),
        "e568f68194cf76d6174d4cc04310a85491151e5d0b7a1f1bc0d7acd0ae3e51e4170e23"
    );
}

#[test]
fn another_recipient_cannot_unseal() {
    let w = world();
    let sealed = seal_to_bob(&w, b"for bob");
    let carol = IdentityKeyPair::generate(&mut OsRng);
    assert_eq!(
        unseal(&carol, &sealed),
        Err(SealedSenderError::BadMac {
            part: SealedPart::Static
        })
    );
    // Nor can the sender.
    assert!(unseal(&w.alice, &sealed).is_err());
}

#[test]
fn tampering_with_any_part_is_refused() {
    let w = world();
    let sealed = seal_to_bob(&w, b"do not touch");
    let parts = outer(&sealed);
    let static_mac = Err(SealedSenderError::BadMac {
        part: SealedPart::Static,
    });
    let message_mac = Err(SealedSenderError::BadMac {
        part: SealedPart::Message,
    });

    let mut bad = sealed.clone();
    bad[0] = 0x12;
    assert_eq!(
        unseal(&w.bob, &bad),
        Err(SealedSenderError::UnsupportedVersion(0x12))
    );
    bad[0] = 0x01;
    assert_eq!(
        unseal(&w.bob, &bad),
        Err(SealedSenderError::UnsupportedVersion(0x01))
    );
    assert_eq!(unseal(&w.bob, &[]), Err(SealedSenderError::Empty));

    for i in 1..33 {
        let mut p = parts.clone();
        p.ephemeral_public.as_mut().unwrap()[i] ^= 0x01;
        let result = unseal(&w.bob, &reencode(&p));
        assert!(
            result == static_mac
                || result
                    == Err(SealedSenderError::SmallOrderKey {
                        key: "ephemeral key"
                    }),
            "ephemeral byte {i}: {result:?}"
        );
    }
    let mut p = parts.clone();
    p.ephemeral_public.as_mut().unwrap()[0] = 0x06;
    assert_eq!(
        unseal(&w.bob, &reencode(&p)),
        Err(SealedSenderError::BadKey {
            field: "ephemeral public key",
            source: KeyDecodeError::UnknownType(0x06)
        })
    );
    for i in 0..43 {
        let mut p = parts.clone();
        p.encrypted_static.as_mut().unwrap()[i] ^= 0x01;
        assert_eq!(unseal(&w.bob, &reencode(&p)), static_mac, "static byte {i}");
    }
    let len = parts.encrypted_message.as_ref().unwrap().len();
    for i in [0, 1, len / 2, len - 11, len - 10, len - 1] {
        let mut p = parts.clone();
        p.encrypted_message.as_mut().unwrap()[i] ^= 0x01;
        assert_eq!(
            unseal(&w.bob, &reencode(&p)),
            message_mac,
            "message byte {i}"
        );
    }

    let mut p = parts.clone();
    p.encrypted_static.as_mut().unwrap().pop();
    assert_eq!(
        unseal(&w.bob, &reencode(&p)),
        Err(SealedSenderError::FieldLength {
            field: "encrypted static key",
            len: 42,
            expected: 43
        })
    );
    let mut p = parts.clone();
    p.encrypted_message = Some(vec![0; 9]);
    assert_eq!(
        unseal(&w.bob, &reencode(&p)),
        Err(SealedSenderError::TooShort {
            field: "encrypted message",
            len: 9
        })
    );
    let mut p = parts.clone();
    p.encrypted_static = None;
    assert_eq!(
        unseal(&w.bob, &reencode(&p)),
        Err(SealedSenderError::MissingField {
            what: "sealed message",
            field: "encryptedStatic"
        })
    );
    assert!(matches!(
        unseal(&w.bob, &[0x11, 0xff, 0xff]),
        Err(SealedSenderError::Protobuf { .. })
    ));
    assert_eq!(unseal(&w.bob, &sealed).unwrap().content, b"do not touch");
}

#[test]
fn a_certificate_for_another_identity_is_refused() {
    let w = world();
    let mallory = IdentityKeyPair::generate(&mut OsRng);
    // Mallory seals with Alice's certificate (which she may have seen).
    let sealed = seal_unchecked(
        &mallory,
        &w.certificate,
        &w.bob.public(),
        ContentType::Whisper,
        b"I am Alice",
        &mut OsRng,
    )
    .unwrap();
    assert_eq!(
        unseal(&w.bob, &sealed),
        Err(SealedSenderError::IdentityMismatch)
    );
    // The public API will not do it.
    assert_eq!(
        seal(
            &mallory,
            &w.certificate,
            &w.bob.public(),
            ContentType::Whisper,
            b"I am Alice",
            &mut OsRng
        ),
        Err(SealedSenderError::CertificateNotOurs)
    );
}

#[test]
fn a_forged_certificate_unseals_but_does_not_verify() {
    let w = world();
    let mallory = IdentityKeyPair::generate(&mut OsRng);
    let fake_issuer = IssuerKey::from_seed(domain("a.example"), &[8; 32]);
    let forged = SenderCertificate::issue(
        &fake_issuer,
        &w.user,
        &w.client,
        3,
        &mallory.public(),
        NOW + DAY,
    )
    .unwrap();
    let sealed = seal(
        &mallory,
        &forged,
        &w.bob.public(),
        ContentType::Whisper,
        b"trust me",
        &mut OsRng,
    )
    .unwrap();
    let opened = unseal(&w.bob, &sealed).unwrap();
    assert_eq!(
        opened.certificate.verify(&w.issuer.public(), NOW),
        Err(SealedSenderError::BadSignature {
            user: "mimi://a.example/u/alice".into(),
            domain: "a.example".into()
        })
    );
}

#[test]
fn certificate_verification() {
    let w = world();
    let issuer = w.issuer.public();
    let certificate = &w.certificate;
    let user = "mimi://a.example/u/alice".to_string();
    certificate.verify(&issuer, NOW + DAY).unwrap();
    assert_eq!(
        certificate.verify(&issuer, NOW + DAY + 1),
        Err(SealedSenderError::Expired {
            user: user.clone(),
            expires_ms: NOW + DAY,
            now_ms: NOW + DAY + 1
        })
    );
    let other = IssuerKey::from_seed(domain("b.example"), &[7; 32]).public();
    assert_eq!(
        certificate.verify(&other, NOW),
        Err(SealedSenderError::WrongIssuer {
            user: user.clone(),
            user_domain: "a.example".into(),
            issuer: "b.example".into()
        })
    );
    let same_domain = IssuerKey::from_seed(domain("a.example"), &[9; 32]).public();
    let bad_signature = Err(SealedSenderError::BadSignature {
        user: user.clone(),
        domain: "a.example".into(),
    });
    assert_eq!(certificate.verify(&same_domain, NOW), bad_signature);

    let mut altered = certificate.clone();
    altered.signature[5] ^= 1;
    assert_eq!(altered.verify(&issuer, NOW), bad_signature);
    let mut altered = certificate.clone();
    altered.device_id = 4;
    assert_eq!(altered.verify(&issuer, NOW), bad_signature);
    let mut altered = certificate.clone();
    altered.expires_ms += DAY;
    assert_eq!(altered.verify(&issuer, NOW), bad_signature);
    let mut altered = certificate.clone();
    altered.identity_key = IdentityKeyPair::generate(&mut OsRng).public();
    assert_eq!(altered.verify(&issuer, NOW), bad_signature);
    let mut altered = certificate.clone();
    altered.sender_client = "mimi://a.example/d/alice/laptop".into();
    assert_eq!(altered.verify(&issuer, NOW), bad_signature);
    let mut altered = certificate.clone();
    altered.signer_domain = "b.example".into();
    assert_eq!(
        altered.verify(&issuer, NOW),
        Err(SealedSenderError::SignerMismatch {
            user: user.clone(),
            signer: "b.example".into()
        })
    );
    let mut altered = certificate.clone();
    altered.sender_client = "mimi://a.example/d/mallory/phone".into();
    assert!(matches!(
        altered.verify(&issuer, NOW),
        Err(SealedSenderError::ClientNotOfUser { .. })
    ));
}

#[test]
fn issuing_refuses_foreign_users_and_clients() {
    let w = world();
    let bob_user = UserId::new("bob", domain("b.example")).unwrap();
    let bob_client = ClientId::new(&bob_user, "phone").unwrap();
    assert_eq!(
        SenderCertificate::issue(&w.issuer, &bob_user, &bob_client, 1, &w.alice.public(), NOW),
        Err(SealedSenderError::ForeignUser {
            user: "mimi://b.example/u/bob".into(),
            issuer: "a.example".into()
        })
    );
    assert_eq!(
        SenderCertificate::issue(&w.issuer, &w.user, &bob_client, 1, &w.alice.public(), NOW),
        Err(SealedSenderError::ClientNotOfUser {
            client: "mimi://b.example/d/bob/phone".into(),
            user: "mimi://a.example/u/alice".into()
        })
    );
}

#[test]
fn certificate_decoding() {
    let w = world();
    let encoded = w.certificate.encode();
    assert_eq!(SenderCertificate::decode(&encoded).unwrap(), w.certificate);

    let mut trailing = encoded.clone();
    trailing.extend([0x18, 0x01]); // an unknown field 3
    assert_eq!(
        SenderCertificate::decode(&trailing),
        Err(SealedSenderError::NotCanonical)
    );
    assert!(matches!(
        SenderCertificate::decode(&encoded[..encoded.len() - 1]),
        Err(SealedSenderError::Protobuf { .. })
    ));
    assert_eq!(
        SenderCertificate::decode(&vec![0; MAX_CERTIFICATE_LEN + 1]),
        Err(SealedSenderError::CertificateTooLong(
            MAX_CERTIFICATE_LEN + 1
        ))
    );

    let body = CertificateBodyProto::decode(
        CertificateProto::decode(encoded.as_slice())
            .unwrap()
            .certificate
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let with_body = |edit: &dyn Fn(&mut CertificateBodyProto)| {
        let mut b = body.clone();
        edit(&mut b);
        CertificateProto {
            certificate: Some(b.encode_to_vec()),
            signature: Some(vec![0; 64]),
        }
        .encode_to_vec()
    };
    assert_eq!(
        SenderCertificate::decode(&with_body(&|b| b.signer = None)),
        Err(SealedSenderError::MissingField {
            what: "sender certificate body",
            field: "signer"
        })
    );
    assert!(matches!(
        SenderCertificate::decode(&with_body(
            &|b| b.sender_user = Some("mimi://A.example/u/alice".into())
        )),
        Err(SealedSenderError::BadIdentifier { field: "user", .. })
    ));
    assert!(matches!(
        SenderCertificate::decode(&with_body(&|b| b.sender_client = Some("nonsense".into()))),
        Err(SealedSenderError::BadIdentifier {
            field: "client",
            ..
        })
    ));
    assert!(matches!(
        SenderCertificate::decode(&with_body(&|b| b.identity_key = Some(vec![5; 32]))),
        Err(SealedSenderError::BadKey { .. })
    ));
    let short_signature = CertificateProto {
        certificate: Some(body.encode_to_vec()),
        signature: Some(vec![0; 63]),
    }
    .encode_to_vec();
    assert!(matches!(
        SenderCertificate::decode(&short_signature),
        Err(SealedSenderError::FieldLength { len: 63, .. })
    ));
}

#[test]
fn bad_inner_content_is_refused() {
    let w = world();
    let inner = |r#type: Option<i32>, certificate: Option<Vec<u8>>| {
        InnerProto {
            r#type,
            sender_certificate: certificate,
            content: Some(b"x".to_vec()),
        }
        .encode_to_vec()
    };
    let unseal_inner = |bytes: &[u8]| unseal(&w.bob, &seal_inner(&w.alice, &w.bob.public(), bytes));
    assert_eq!(
        unseal_inner(&inner(Some(3), Some(w.certificate.encode()))),
        Err(SealedSenderError::UnknownContentType(3))
    );
    assert_eq!(
        unseal_inner(&inner(None, Some(w.certificate.encode()))),
        Err(SealedSenderError::MissingField {
            what: "sealed message content",
            field: "type"
        })
    );
    assert_eq!(
        unseal_inner(&inner(Some(2), None)),
        Err(SealedSenderError::MissingField {
            what: "sealed message content",
            field: "senderCertificate"
        })
    );
    assert!(matches!(
        unseal_inner(&[0xff, 0xff]),
        Err(SealedSenderError::Protobuf { .. })
    ));
    assert_eq!(
        unseal_inner(&inner(Some(2), Some(w.certificate.encode())))
            .unwrap()
            .content,
        b"x"
    );
}

#[test]
fn small_order_recipient_keys_are_refused() {
    let w = world();
    assert_eq!(
        seal(
            &w.alice,
            &w.certificate,
            &PublicKey::from_u([0; 32]),
            ContentType::Whisper,
            b"x",
            &mut OsRng
        ),
        Err(SealedSenderError::SmallOrderKey {
            key: "recipient identity key"
        })
    );
}

// Made by libsignal 0.103.0 (`@signalapp/libsignal-client` on Node): `sealedSenderEncrypt`
// (v1) to Bob of a `SenderKeyMessage` of "sealed by libsignal" (iteration 10 of the chain in
// `LIBSIGNAL_DISTRIBUTION`), with a libsignal sender certificate.
/// The sealed message.
const LIBSIGNAL_SEALED: &[&str] = &[
    "110a2105f11f16837033ce11d31fae377e0b197fae070b0d9bee690fff73201df5433f10122bd371f143744f",
    "da023ce74ed5b1459e232a61b5967cdda8568fc5fa99496ec4a4ab0e062a3b56967c6ff48d1a9203d1e979f3",
    "1e8773c75ce4d5a63f2148490326641ad683d641a8cea1a6a671035891eaf7e533366cbfcc1efee0eae601ca",
    "6b3170fe4a6f89e14336729c78da77f30d25b13cea069d3dee8022ac34679e22eb5587440ef6dd07371ac261",
    "b732116975b15773376a646186fa2dc589eb479df249422b939de8f39d6272b023b6f1f8227e913108ba3f0c",
    "9338a385816eda76f22027b6b3415a39d0afcfc5c3350e577d6b2432391dc408a4fcbe82981dbedef274870d",
    "a176acda7310b88e8034bc6e8169c205a842842b97c79b712410d72a35ca3448dc3b18c5602b5996cbcc6863",
    "4e9ce8e03f8856d6207df6a82810d84883eb3166781d9b6e862668d05778de08f3e6bed8a6e7010ce412ecb4",
    "d18184506407a1957909285fc96c14da479910e46096e61bdc89ce7cd2643e3876bb58e91c2a4be7dd239824",
    "4af8940e05363282e558347d8a34f3131ae7f89fbf69dbc8cd282babdb42755c559fad754264b360d48c8341",
    "9fc9f1d8384b48a45cb3e50eb32e1e49ca1e39f7ef8b39bbd4497c4ec509d725da6e1432bf615c9448a7e5fd",
    "8c74",
];
/// Bob's identity private key, as libsignal serialises it.
const LIBSIGNAL_BOB_PRIVATE: &str =
    "2830eae54ad37343f6ce4c8b88084d190c780b37cf5f4d47085614540cae2c54";
/// The sender's identity key.
const LIBSIGNAL_ALICE_IDENTITY: &str =
    "055b77d9c0111eaae6166ddf9a73c7e708b50e00f4cb3734052757ec92022e155b";
/// The chain of the sealed `SenderKeyMessage`.
const LIBSIGNAL_DISTRIBUTION: &[&str] = &[
    "330a10d1d1d1d1700011ebb32a33b8a8a487a6109bd1b3f302180022207d057a53c438e232974d2455fe4161",
    "4094a43c52805bfb2d59ccd44c2981eb592a2105578a029f2d34a1d24cf2c5b52588648458ca0e88bef9beb6",
    "a35be05bc7790259",
];

fn joined(parts: &[&str]) -> Vec<u8> {
    hex::decode(parts.concat()).unwrap()
}

#[test]
fn opens_sealed_sender_v1_made_by_libsignal() {
    use crate::signal::sender_keys::SenderKeyRecord;
    let private: [u8; 32] = hex::decode(LIBSIGNAL_BOB_PRIVATE)
        .unwrap()
        .try_into()
        .unwrap();
    let bob = IdentityKeyPair::from_private(PrivateKey::from_bytes(private));
    let sealed = joined(LIBSIGNAL_SEALED);

    let (sender, inner) = open_layers(&bob, &sealed).unwrap();
    assert_eq!(
        sender.encode().to_vec(),
        hex::decode(LIBSIGNAL_ALICE_IDENTITY).unwrap()
    );
    let inner = InnerProto::decode(inner.as_slice()).unwrap();
    assert_eq!(inner.r#type, Some(ContentType::SenderKey.to_wire()));
    let mut chain =
        SenderKeyRecord::from_distribution_message(&joined(LIBSIGNAL_DISTRIBUTION)).unwrap();
    assert_eq!(
        chain.decrypt(&inner.content.unwrap()).unwrap(),
        b"sealed by libsignal"
    );

    // Its certificate is libsignal's (signed under Signal's trust root), not ours.
    assert_eq!(
        unseal(&bob, &sealed),
        Err(SealedSenderError::MissingField {
            what: "sender certificate body",
            field: "senderClient"
        })
    );
    let mut tampered = sealed.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert_eq!(
        unseal(&bob, &tampered),
        Err(SealedSenderError::BadMac {
            part: SealedPart::Message
        })
    );
}
