//! What a handler learns about the connection a request came in on.

use std::fmt;
use std::net::SocketAddr;

use rustls::client::verify_server_name;
use rustls::pki_types::{CertificateDer, DnsName, ServerName};
use rustls::server::ParsedCertificate;

/// Facts about the TLS connection a request arrived on, inserted by
/// [`serve`](crate::serve) into every request's extensions.
///
/// Extract it with `axum::Extension<ConnectionInfo>`.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The TCP peer address.
    pub remote_addr: SocketAddr,
    /// The client certificate, if the peer presented one. It has already been
    /// verified against the listener's client-auth trust anchors during the
    /// handshake; which domain it speaks for is asked with
    /// [`PeerCertificate::is_valid_for_domain`].
    pub peer_certificate: Option<PeerCertificate>,
}

/// The end-entity certificate of a peer whose chain was verified in the TLS
/// handshake.
///
/// Only this crate constructs one, and only from a completed handshake, so
/// holding a `PeerCertificate` means the chain, validity period and clientAuth
/// usage were checked. What the chain does *not* say by itself is which of the
/// peer's claims it supports: ask that with
/// [`is_valid_for_domain`](Self::is_valid_for_domain).
#[derive(Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    end_entity: CertificateDer<'static>,
}

impl PeerCertificate {
    pub(crate) fn new(end_entity: CertificateDer<'static>) -> Self {
        Self { end_entity }
    }

    /// Whether the certificate is valid for `domain` (such as `a.example`,
    /// taken from a MIMI `From: mimi@a.example` header), by RFC 6125 rules as
    /// webpki applies them to server names: a dNSName subjectAltName must
    /// match, case-insensitively, wildcards as the leftmost label only; the
    /// subject common name is ignored.
    ///
    /// Returns `false` for anything that is not a DNS name, including IP
    /// addresses and wildcards. An absolute name (`a.example.`) is the same
    /// name as `a.example`.
    pub fn is_valid_for_domain(&self, domain: &str) -> bool {
        let Ok(name) = DnsName::try_from(domain) else {
            return false;
        };
        let Ok(cert) = ParsedCertificate::try_from(&self.end_entity) else {
            // Cannot happen for a certificate that passed the handshake.
            return false;
        };
        verify_server_name(&cert, &ServerName::DnsName(name)).is_ok()
    }

    /// The certificate's DER encoding.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.end_entity
    }
}

impl fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { end_entity } = self;
        f.debug_struct("PeerCertificate")
            .field("der_len", &end_entity.len())
            .finish()
    }
}
