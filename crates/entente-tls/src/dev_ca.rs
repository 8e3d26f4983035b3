//! A throwaway certificate authority for local federations and tests.
//!
//! Keys are ECDSA P-256 with SHA-256 signatures: rustls+webpki with ring accept
//! them for both server and client authentication, and so do browsers (which do
//! not accept Ed25519 certificates), so a dev provider's client API works from a
//! browser that trusts the dev CA.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::DnsName;
use zeroize::Zeroizing;

use crate::error::{Origin, PemItem, Result, TlsError};
use crate::identity::{Identity, TrustAnchors};
use crate::pem_io::{self, Secrecy};

/// How long a dev CA certificate is valid.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// How long an issued certificate is valid.
const LEAF_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// Certificates start being valid this long before issuance, so machines
/// whose clocks run a little behind accept them at once.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// A self-signed CA that issues certificates for DNS names.
///
/// For local federations and tests only: it has no revocation and no name
/// constraints, and anyone holding `ca.key` can impersonate any domain to
/// whoever trusts `ca.crt`.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl DevCa {
    /// The file [`save`](Self::save) writes the CA certificate to.
    pub const CERT_FILE: &'static str = "ca.crt";
    /// The file [`save`](Self::save) writes the CA private key to (mode 0600 on unix).
    pub const KEY_FILE: &'static str = "ca.key";

    /// Creates a new CA with a fresh key; `name` becomes its subject common
    /// name (for example "Entente dev CA"), and the subject's organizational
    /// unit names the key, so that CAs of the same name stay distinct.
    pub fn generate(name: &str) -> Result<Self> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| {
            TlsError::Generate {
                item: PemItem::CaPrivateKey,
                source,
            }
        })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        // Two dev CAs given the same name must still have different subjects:
        // webpki picks anchors by subject, and with a clash a certificate from
        // the wrong CA fails as "bad signature" instead of "unknown issuer".
        let key_id: String = params
            .key_identifier(&key)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, format!("key {key_id}"));
        // Path length 0: it signs leaf certificates only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        (params.not_before, params.not_after) = validity(CA_LIFETIME)?;
        let cert = params
            .self_signed(&key)
            .map_err(|source| TlsError::Generate {
                item: PemItem::CaCertificate,
                source,
            })?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
        })
    }

    /// Loads a CA saved by [`save`](Self::save): `dir/ca.crt` and `dir/ca.key`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let cert_path = dir.join(Self::CERT_FILE);
        let key_path = dir.join(Self::KEY_FILE);
        let cert_pem = pem_io::read_file(PemItem::CaCertificate, &cert_path)?;
        let key_pem = pem_io::read_file(PemItem::CaPrivateKey, &key_path)?;
        let cert_origin = Origin::File(cert_path);
        let key_origin = Origin::File(key_path);

        // Checks that both files parse and that the key belongs to the certificate.
        Identity::parse(
            PemItem::CaCertificate,
            &cert_pem,
            &cert_origin,
            PemItem::CaPrivateKey,
            &key_pem,
            &key_origin,
        )?;

        let cert_pem = String::from_utf8(cert_pem.to_vec()).map_err(|_| {
            pem_io::invalid(
                PemItem::CaCertificate,
                &cert_origin,
                "it is not UTF-8 text".to_owned(),
            )
        })?;
        let key_pem = std::str::from_utf8(&key_pem).map_err(|_| {
            pem_io::invalid(
                PemItem::CaPrivateKey,
                &key_origin,
                "it is not UTF-8 text".to_owned(),
            )
        })?;
        let key = KeyPair::from_pem(key_pem).map_err(|error| {
            pem_io::invalid(
                PemItem::CaPrivateKey,
                &key_origin,
                format!("rcgen cannot sign with it: {error}"),
            )
        })?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|error| {
            pem_io::invalid(
                PemItem::CaCertificate,
                &cert_origin,
                format!("rcgen cannot issue certificates from it: {error}"),
            )
        })?;
        Ok(Self { issuer, cert_pem })
    }

    /// Writes `dir/ca.crt` and `dir/ca.key` (mode 0600 on unix), creating
    /// `dir` if needed and replacing existing files.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        pem_io::create_dir(PemItem::CaCertificate, dir)?;
        let key_pem = Zeroizing::new(self.issuer.key().serialize_pem());
        pem_io::write_file(
            PemItem::CaPrivateKey,
            &dir.join(Self::KEY_FILE),
            key_pem.as_bytes(),
            Secrecy::Secret,
        )?;
        pem_io::write_file(
            PemItem::CaCertificate,
            &dir.join(Self::CERT_FILE),
            self.cert_pem.as_bytes(),
            Secrecy::Public,
        )
    }

    /// Issues a certificate for `domain` (such as `a.example`) with a fresh key.
    ///
    /// The certificate names the domain as its only dNSName subjectAltName
    /// (and as its common name, for humans), carries both the serverAuth and
    /// clientAuth extended key usages so one certificate serves a provider's
    /// listener and its federation client, and is valid for one year.
    pub fn issue(&self, domain: &str) -> Result<IssuedCert> {
        // Rejects IP addresses, wildcards and malformed names up front (rcgen
        // would put an IP address into an iPAddress SAN instead), and absolute
        // names, which webpki treats as malformed in a certificate.
        if domain.ends_with('.') || DnsName::try_from(domain).is_err() {
            return Err(TlsError::InvalidDomain {
                domain: domain.to_owned(),
            });
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| {
            TlsError::Generate {
                item: PemItem::PrivateKey,
                source,
            }
        })?;
        let generate_error = |source| TlsError::Generate {
            item: PemItem::CertificateChain,
            source,
        };
        let mut params = CertificateParams::new(vec![domain.to_owned()]).map_err(generate_error)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, domain);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity(LEAF_LIFETIME)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(generate_error)?;
        Ok(IssuedCert {
            cert_chain_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// The CA certificate as PEM: what peers put in their [`TrustAnchors`].
    pub fn ca_cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Trust anchors holding just this CA.
    pub fn trust_anchors(&self) -> Result<TrustAnchors> {
        TrustAnchors::from_pem(self.cert_pem.as_bytes())
    }
}

impl fmt::Debug for DevCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            issuer,
            cert_pem: _,
        } = self;
        f.debug_struct("DevCa").field("issuer", issuer).finish()
    }
}

/// A certificate issued by a [`DevCa`] and its private key, both as PEM.
pub struct IssuedCert {
    cert_chain_pem: String,
    key_pem: Zeroizing<String>,
}

impl IssuedCert {
    /// The certificate chain as PEM: just the end-entity certificate, since
    /// the CA certificate is what the peer trusts and need not be sent.
    pub fn cert_chain_pem(&self) -> &str {
        &self.cert_chain_pem
    }

    /// The private key as PKCS#8 PEM. A secret: do not log it.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The pair as an [`Identity`] for [`server_config`](crate::server_config)
    /// and [`client_config`](crate::client_config).
    pub fn identity(&self) -> Result<Identity> {
        Identity::from_pem(self.cert_chain_pem.as_bytes(), self.key_pem.as_bytes())
    }

    /// Writes `dir/{name}.crt` and `dir/{name}.key` (mode 0600 on unix),
    /// creating `dir` if needed and replacing existing files. `name` must be a
    /// plain file name such as the domain.
    pub fn save(&self, dir: impl AsRef<Path>, name: &str) -> Result<()> {
        let plain =
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
        if !plain {
            return Err(TlsError::InvalidFileName {
                name: name.to_owned(),
            });
        }
        let dir = dir.as_ref();
        pem_io::create_dir(PemItem::CertificateChain, dir)?;
        pem_io::write_file(
            PemItem::PrivateKey,
            &dir.join(format!("{name}.key")),
            self.key_pem.as_bytes(),
            Secrecy::Secret,
        )?;
        pem_io::write_file(
            PemItem::CertificateChain,
            &dir.join(format!("{name}.crt")),
            self.cert_chain_pem.as_bytes(),
            Secrecy::Public,
        )
    }
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            cert_chain_pem,
            key_pem: _,
        } = self;
        f.debug_struct("IssuedCert")
            .field("cert_chain_pem", cert_chain_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// `(not_before, not_after)` for a certificate issued now.
fn validity<T: From<SystemTime>>(lifetime: Duration) -> Result<(T, T)> {
    let now = SystemTime::now();
    let not_before = now.checked_sub(BACKDATE).ok_or(TlsError::ClockOutOfRange)?;
    let not_after = now.checked_add(lifetime).ok_or(TlsError::ClockOutOfRange)?;
    Ok((not_before.into(), not_after.into()))
}
