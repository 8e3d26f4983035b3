//! rustls configurations for the provider's listener and its outgoing connections.
//!
//! Both sides use rustls's ring provider explicitly, so building a
//! configuration never depends on (or panics for lack of) a process-default
//! provider. Both speak TLS 1.3 only: in TLS 1.3 a client certificate travels
//! encrypted, so an observer of federation traffic does not learn which
//! provider is talking to which from the handshake.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::sign::SingleCertAndKey;
use rustls::{ClientConfig, ServerConfig};

use crate::error::{Result, TlsError};
use crate::identity::{Identity, TrustAnchors};
use crate::ring_provider;

/// ALPN protocols offered and accepted, most preferred first.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The configuration for a provider's TLS listener.
///
/// The listener presents `identity` to everyone. A client certificate is
/// requested but optional: client-API connections present none, federation
/// peers present theirs. A certificate that is presented must chain to
/// `client_auth_anchors` and carry the clientAuth extended key usage, or the
/// handshake fails; the verified certificate then reaches handlers as
/// [`ConnectionInfo::peer_certificate`](crate::ConnectionInfo::peer_certificate).
///
/// Offers ALPN `h2` and `http/1.1`.
pub fn server_config(
    identity: &Identity,
    client_auth_anchors: &TrustAnchors,
) -> Result<Arc<ServerConfig>> {
    let provider = ring_provider();
    let client_verifier = WebPkiClientVerifier::builder_with_provider(
        client_auth_anchors.root_store(),
        Arc::clone(&provider),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|source| TlsError::ClientVerifier { source })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| TlsError::Config { source })?
        .with_client_cert_verifier(client_verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(identity.certified_key())));
    config.alpn_protocols = alpn_protocols();
    Ok(Arc::new(config))
}

/// The configuration for connections to other servers.
///
/// Server certificates are verified against `anchors` for the name being
/// connected to. With `client_identity` (provider-to-provider federation) the
/// identity is presented when the server asks for a client certificate.
///
/// Offers ALPN `h2` and `http/1.1`, which suits an HTTP client such as
/// reqwest. A client that speaks only HTTP/1.1 on the connection (a
/// WebSocket client such as tokio-tungstenite) should offer only what it
/// speaks: clone the config and set `alpn_protocols = vec![b"http/1.1".to_vec()]`.
pub fn client_config(
    anchors: &TrustAnchors,
    client_identity: Option<&Identity>,
) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| TlsError::Config { source })?
        .with_root_certificates(anchors.root_store());
    let mut config = match client_identity {
        Some(identity) => builder
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(identity.certified_key()))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn_protocols();
    Ok(Arc::new(config))
}

fn alpn_protocols() -> Vec<Vec<u8>> {
    ALPN_PROTOCOLS
        .iter()
        .map(|protocol| protocol.to_vec())
        .collect()
}
