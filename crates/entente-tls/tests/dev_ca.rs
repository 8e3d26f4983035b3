//! Tests of the dev CA, identities and trust anchors, without a network: issued
//! certificates are checked with the same webpki verifiers rustls uses in a
//! handshake.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::path::Path;
use std::sync::Arc;

use entente_tls::{DevCa, Identity, IssuedCert, Origin, PemItem, TlsError, TrustAnchors};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;

fn roots(ca: &DevCa) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.ca_cert_pem().as_bytes()).unwrap())
        .unwrap();
    Arc::new(roots)
}

fn end_entity(issued: &IssuedCert) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(issued.cert_chain_pem().as_bytes()).unwrap()
}

/// Whether rustls, trusting `ca`, accepts `issued` as the server `domain`.
fn accepted_as_server(ca: &DevCa, issued: &IssuedCert, domain: &str) -> bool {
    let verifier = WebPkiServerVerifier::builder_with_provider(
        roots(ca),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let name = ServerName::try_from(domain.to_owned()).unwrap();
    verifier
        .verify_server_cert(&end_entity(issued), &[], &name, &[], UnixTime::now())
        .is_ok()
}

/// Whether rustls, trusting `ca`, accepts `issued` as a client certificate.
fn accepted_as_client(ca: &DevCa, issued: &IssuedCert) -> bool {
    let verifier = WebPkiClientVerifier::builder_with_provider(
        roots(ca),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    verifier
        .verify_client_cert(&end_entity(issued), &[], UnixTime::now())
        .is_ok()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn issued_certificate_serves_as_server_and_client_for_its_domain_only() {
    let ca = DevCa::generate("Entente test CA").unwrap();
    let issued = ca.issue("a.example").unwrap();

    assert!(accepted_as_server(&ca, &issued, "a.example"));
    assert!(!accepted_as_server(&ca, &issued, "b.example"));
    assert!(accepted_as_client(&ca, &issued));

    let other = DevCa::generate("Other CA").unwrap();
    assert!(!accepted_as_server(&other, &issued, "a.example"));
    assert!(!accepted_as_client(&other, &issued));
}

#[test]
fn ca_save_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("nested/ca");
    let ca = DevCa::generate("Entente test CA").unwrap();
    ca.save(&ca_dir).unwrap();

    let cert_path = ca_dir.join(DevCa::CERT_FILE);
    let key_path = ca_dir.join(DevCa::KEY_FILE);
    assert_eq!(
        std::fs::read_to_string(&cert_path).unwrap(),
        ca.ca_cert_pem()
    );
    #[cfg(unix)]
    assert_eq!(mode(&key_path), 0o600);

    let loaded = DevCa::load(&ca_dir).unwrap();
    assert_eq!(loaded.ca_cert_pem(), ca.ca_cert_pem());
    // Certificates issued by the loaded CA chain to the original certificate.
    let issued = loaded.issue("b.example").unwrap();
    assert!(accepted_as_server(&ca, &issued, "b.example"));
    assert!(accepted_as_client(&ca, &issued));

    // Saving over an existing, too-open key file narrows it again.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        loaded.save(&ca_dir).unwrap();
        assert_eq!(mode(&key_path), 0o600);
    }
}

#[test]
fn loading_a_missing_ca_names_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let error = DevCa::load(dir.path()).unwrap_err();

    let TlsError::ReadFile { item, path, source } = &error else {
        panic!("unexpected error {error:?}");
    };
    assert_eq!(*item, PemItem::CaCertificate);
    assert_eq!(path, &dir.path().join("ca.crt"));
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    let message = error.to_string();
    assert!(
        message.contains(&dir.path().join("ca.crt").display().to_string()),
        "{message}"
    );
    assert!(message.contains("entente provider init"), "{message}");
}

#[test]
fn loading_a_ca_whose_key_belongs_elsewhere_fails() {
    let dir = tempfile::tempdir().unwrap();
    DevCa::generate("one").unwrap().save(dir.path()).unwrap();
    let other = tempfile::tempdir().unwrap();
    DevCa::generate("two").unwrap().save(other.path()).unwrap();
    std::fs::copy(other.path().join("ca.key"), dir.path().join("ca.key")).unwrap();

    let error = DevCa::load(dir.path()).unwrap_err();
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error:?}");
}

#[test]
fn issue_rejects_names_that_are_not_dns_names() {
    let ca = DevCa::generate("Entente test CA").unwrap();
    for domain in [
        "",
        "127.0.0.1",
        "*.example",
        "a.example.",
        "a..example",
        "a example",
    ] {
        let error = ca.issue(domain).unwrap_err();
        assert!(
            matches!(&error, TlsError::InvalidDomain { domain: d } if d == domain),
            "{domain:?}: {error:?}"
        );
    }
}

#[test]
fn issued_cert_save_and_identity_load() {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate("Entente test CA").unwrap();
    let issued = ca.issue("a.example").unwrap();
    issued.save(dir.path(), "a.example").unwrap();

    let cert_path = dir.path().join("a.example.crt");
    let key_path = dir.path().join("a.example.key");
    #[cfg(unix)]
    assert_eq!(mode(&key_path), 0o600);
    let identity = Identity::from_pem_files(&cert_path, &key_path).unwrap();
    assert_eq!(identity.cert_chain(), [end_entity(&issued)]);

    for bad in ["", ".", "..", "../a.example", "x/y"] {
        let error = issued.save(dir.path(), bad).unwrap_err();
        assert!(
            matches!(error, TlsError::InvalidFileName { .. }),
            "{bad:?}: {error:?}"
        );
    }
}

#[test]
fn identity_rejects_a_key_from_another_certificate() {
    let ca = DevCa::generate("Entente test CA").unwrap();
    let a = ca.issue("a.example").unwrap();
    let b = ca.issue("b.example").unwrap();

    let error =
        Identity::from_pem(a.cert_chain_pem().as_bytes(), b.key_pem().as_bytes()).unwrap_err();
    assert!(
        matches!(
            error,
            TlsError::KeyMismatch {
                cert_origin: Origin::Memory,
                key_origin: Origin::Memory,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn identity_rejects_unusable_pem_without_quoting_it() {
    let ca = DevCa::generate("Entente test CA").unwrap();
    let a = ca.issue("a.example").unwrap();
    let secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0IG1hdGVyaWFs!!\n-----END PRIVATE KEY-----\n";

    let error = Identity::from_pem(a.cert_chain_pem().as_bytes(), secret.as_bytes()).unwrap_err();
    assert!(
        matches!(
            error,
            TlsError::InvalidPem {
                item: PemItem::PrivateKey,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        !format!("{error} {error:?}").contains("c2VjcmV0"),
        "{error:?}"
    );

    let error = Identity::from_pem(b"no pem here", a.key_pem().as_bytes()).unwrap_err();
    assert!(
        matches!(
            error,
            TlsError::InvalidPem {
                item: PemItem::CertificateChain,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("BEGIN CERTIFICATE"), "{error}");

    let error = Identity::from_pem(a.cert_chain_pem().as_bytes(), b"").unwrap_err();
    assert!(
        matches!(
            error,
            TlsError::InvalidPem {
                item: PemItem::PrivateKey,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn trust_anchors_from_pem() {
    let ca = DevCa::generate("Entente test CA").unwrap();
    let other = DevCa::generate("Other CA").unwrap();
    let both = format!("{}{}", ca.ca_cert_pem(), other.ca_cert_pem());
    assert_eq!(TrustAnchors::from_pem(both.as_bytes()).unwrap().len(), 2);
    assert!(!TrustAnchors::webpki().is_empty());

    let error = TrustAnchors::from_pem(b"").unwrap_err();
    assert!(
        matches!(
            error,
            TlsError::InvalidPem {
                item: PemItem::TrustAnchors,
                ..
            }
        ),
        "{error:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    ca.save(dir.path()).unwrap();
    let anchors = TrustAnchors::from_pem_file(dir.path().join("ca.crt")).unwrap();
    assert_eq!(anchors.len(), 1);
    let error = TrustAnchors::from_pem_file(dir.path().join("missing.crt")).unwrap_err();
    assert!(
        matches!(
            error,
            TlsError::ReadFile {
                item: PemItem::TrustAnchors,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn debug_output_never_contains_private_keys() {
    let ca = DevCa::generate("Entente test CA").unwrap();
    let issued = ca.issue("a.example").unwrap();
    let identity = issued.identity().unwrap();
    let key_body: String = issued
        .key_pem()
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();

    for debug in [
        format!("{ca:?}"),
        format!("{issued:?}"),
        format!("{identity:?}"),
    ] {
        assert!(!debug.contains(&key_body), "{debug}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    }
}

#[test]
fn install_crypto_provider_is_idempotent() {
    entente_tls::install_crypto_provider();
    entente_tls::install_crypto_provider();
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
}
