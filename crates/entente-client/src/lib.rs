//! The Entente client library: what a messaging app embeds to speak MIMI.
//!
//! A [`Client`] is one device of one user. It keeps every key on the device, in one
//! SQLite file (OpenMLS group state included), and talks only to its own provider.
//! Rooms are MLS groups (RFC 9420); messages are MIMI content; credentials are
//! certificates issued by each user's provider and verified against that provider's
//! issuer key, pinned on first use.
//!
//! ```no_run
//! # async fn demo(opts: entente_client::ClientOptions) -> Result<(), entente_client::ClientError> {
//! use entente_client::Client;
//! let alice: entente_wire::ids::UserId = "alice@a.example".parse().map_err(|_| entente_client::ClientError::Usage("name".into()))?;
//! let mut client = Client::register(opts, &alice, "laptop", None).await?;
//! let bob = "bob@b.example".parse().map_err(|_| entente_client::ClientError::Usage("name".into()))?;
//! let room = client.start_chat(&bob).await?;
//! client.send_text(&room, "Hi Bob!", false).await?;
//! for event in client.sync().await? {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod calls;
pub mod channel;
mod consent;
mod error;
mod external;
pub mod files;
mod frames;
pub mod franking;
mod keys;
mod manage;
mod notices;
mod rooms;
pub mod store;
mod transport;

use std::path::PathBuf;

use entente_core::identity::{ClientCertificate, IssuerPublicKey, UnverifiedCertificate};
use entente_core::mls::CredentialVerifier;
use entente_wire::api::{self, ProviderInfo, RegisterRequest, RegisterResponse, b64};
use entente_wire::ids::{ClientId, Domain, RoomId, UserId};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::signatures::Signer;
use rusqlite::{Connection, OptionalExtension, params};

pub use channel::groups::{DirectGroup, GroupMechanism};
pub use channel::{ChannelChoice, Conversation, DirectEntry, Mechanism, Protocols};
pub use consent::BlockOutcome;
pub use error::ClientError;
pub use franking::{FrankStatus, REPORT_REASONS, reason_code};
pub use manage::Participant;
pub use rooms::{Event, HistoryEntry, RoomSummary};
pub use transport::Endpoint;

use store::{MlsProvider, storage};
use transport::Transport;

/// How many single-use KeyPackages a client keeps on its provider.
pub const KEY_PACKAGE_TARGET: u64 = 50;
/// Replenish when fewer than this many are left.
pub const KEY_PACKAGE_LOW_WATER: u64 = 10;

/// Where a client keeps its state and how it reaches its provider.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Directory of the client's database (`client.db`).
    pub data_dir: PathBuf,
    pub endpoint: Endpoint,
}

/// One device of one user.
pub struct Client {
    /// Locked only in synchronous sections, never across an await, so that the
    /// client's futures are `Send`.
    conn: std::sync::Mutex<Local>,
    crypto: RustCrypto,
    signer: SignatureKeyPair,
    id: ClientId,
    cert: ClientCertificate,
    transport: Transport,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id.to_string())
            .finish_non_exhaustive()
    }
}

/// The device's local state, under one mutex: the connection, the MLS groups kept
/// decoded for it (usable with no other connection) and the credential checks
/// already made.
pub(crate) struct Local {
    pub conn: Connection,
    pub groups: store::GroupCache,
    pub verifier: CredentialVerifier,
}

impl Local {
    fn new(conn: Connection) -> Self {
        Local {
            conn,
            groups: store::GroupCache::new(),
            verifier: CredentialVerifier::new(),
        }
    }
}

impl std::ops::Deref for Local {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// Runs blocking local work (SQLite transactions that fsync, MLS group state
/// loads) without stalling the async runtime: on a multi-threaded tokio runtime the
/// worker hands its other tasks off first; elsewhere it runs inline.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Client {
    /// Registers a new device: a new account when `link_code` is `None`, otherwise a
    /// new device of an existing account (the code comes from [`Client::link_code`]
    /// on one of its devices). Uploads KeyPackages so others can add it to rooms.
    pub async fn register(
        opts: ClientOptions,
        user: &UserId,
        device: &str,
        link_code: Option<&str>,
    ) -> Result<Client, ClientError> {
        Self::register_with(opts, user, device, link_code, Protocols::MlsAndSignal).await
    }

    /// [`Client::register`], for a device that speaks `protocols`: with
    /// [`Protocols::SignalOnly`] it publishes no KeyPackages, only Signal prekeys,
    /// and peers reach it over the Double Ratchet.
    pub async fn register_with(
        opts: ClientOptions,
        user: &UserId,
        device: &str,
        link_code: Option<&str>,
        protocols: Protocols,
    ) -> Result<Client, ClientError> {
        if user.domain().as_str() != opts.endpoint.domain {
            return Err(ClientError::Usage(format!(
                "{} is not an account of {}; use that user's own provider",
                user.handle(),
                opts.endpoint.domain
            )));
        }
        std::fs::create_dir_all(&opts.data_dir).map_err(|e| {
            ClientError::Storage(format!("creating {}: {e}", opts.data_dir.display()))
        })?;
        let conn = store::open(&opts.data_dir.join("client.db"))?;
        let exists: Option<String> = conn
            .query_row("SELECT client FROM identity", [], |r| r.get(0))
            .optional()
            .map_err(storage)?;
        if let Some(c) = exists {
            return Err(ClientError::Usage(format!(
                "{} already holds the device {c}; use another directory",
                opts.data_dir.display()
            )));
        }
        let id = ClientId::new(user, device).map_err(|e| ClientError::Usage(e.to_string()))?;
        let transport = Transport::new(opts.endpoint.clone())?;
        let crypto = RustCrypto::default();
        let signer = SignatureKeyPair::new(entente_core::mls::SIGNATURE_SCHEME)
            .map_err(|e| ClientError::Bug(format!("key generation: {e:?}")))?;
        let key_b64 = b64::encode(signer.public());
        let proof = signer
            .sign(&api::registration_proof_message(&id.to_string(), &key_b64))
            .map_err(|e| ClientError::Bug(format!("signing: {e:?}")))?;
        let resp: RegisterResponse = transport
            .public(
                reqwest::Method::POST,
                "/v1/register",
                Some(&RegisterRequest {
                    user: user.to_string(),
                    device: device.to_owned(),
                    signature_key: signer.public().to_vec(),
                    proof,
                    link_code: link_code.map(str::to_owned),
                }),
            )
            .await?;
        // Pin our own provider's issuer key and check the certificate against it.
        let info: ProviderInfo = transport
            .public::<(), _>(reqwest::Method::GET, "/v1/provider", None)
            .await?;
        let issuer = IssuerPublicKey::from_bytes(user.domain().clone(), &info.issuer_key)
            .map_err(|e| ClientError::Protocol(format!("provider issuer key: {e}")))?;
        let cert = UnverifiedCertificate::decode(&resp.certificate)
            .and_then(|c| c.verify(&issuer, now_secs()))
            .map_err(|e| ClientError::Untrusted(format!("our own certificate: {e}")))?;
        if cert.client() != &id || cert.signature_key() != signer.public() {
            return Err(ClientError::Untrusted(
                "the provider certified a different client or key".into(),
            ));
        }
        {
            let provider = MlsProvider::new(&crypto, &conn);
            signer
                .store(openmls_traits::OpenMlsProvider::storage(&provider))
                .map_err(|e| ClientError::Storage(format!("storing the signature key: {e}")))?;
        }
        conn.execute(
            "INSERT INTO identity (id, client, certificate, signature_public) VALUES (1, ?1, ?2, ?3)",
            params![id.to_string(), cert.to_bytes(), signer.public()],
        )
        .map_err(storage)?;
        conn.execute(
            "INSERT INTO issuers (domain, key, first_seen) VALUES (?1, ?2, ?3)",
            params![
                user.domain().as_str(),
                issuer.to_bytes().to_vec(),
                now_secs() as i64
            ],
        )
        .map_err(storage)?;
        let mut client = Client {
            conn: std::sync::Mutex::new(Local::new(conn)),
            crypto,
            signer,
            id,
            cert,
            transport,
        };
        {
            let local = client.db();
            channel::identity(&local, protocols)?;
        }
        if protocols.speaks_mls() {
            client.replenish_key_packages().await?;
        }
        match client.enable_signal_channel(protocols).await {
            Ok(()) => {}
            // A provider without the Signal channel: fine for a device with MLS.
            Err(ClientError::Provider { status: 501, .. }) if protocols.speaks_mls() => {
                tracing::info!("the provider does not offer the Signal channel");
            }
            Err(e) => return Err(e),
        }
        Ok(client)
    }

    /// Opens an existing device.
    pub async fn open(opts: ClientOptions) -> Result<Client, ClientError> {
        let path = opts.data_dir.join("client.db");
        if !path.exists() {
            return Err(ClientError::Usage(format!(
                "no device in {}; create one with `entente account create`",
                opts.data_dir.display()
            )));
        }
        let conn = store::open(&path)?;
        let (client, cert_bytes, public): (String, Vec<u8>, Vec<u8>) = conn
            .query_row(
                "SELECT client, certificate, signature_public FROM identity",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(storage)?
            .ok_or_else(|| {
                ClientError::Usage(format!("no device in {}", opts.data_dir.display()))
            })?;
        let id: ClientId = client
            .parse()
            .map_err(|e| ClientError::Storage(format!("identity: {e}")))?;
        let crypto = RustCrypto::default();
        let signer = {
            let provider = MlsProvider::new(&crypto, &conn);
            SignatureKeyPair::read(
                openmls_traits::OpenMlsProvider::storage(&provider),
                &public,
                entente_core::mls::SIGNATURE_SCHEME,
            )
            .ok_or_else(|| ClientError::Storage("signature key missing from the database".into()))?
        };
        let issuer = Self::pinned_issuer(&conn, id.domain())?
            .ok_or_else(|| ClientError::Storage("own provider's issuer key missing".into()))?;
        // Our own certificate may have expired; that is reported when it matters.
        let cert = UnverifiedCertificate::decode(&cert_bytes)
            .and_then(|c| c.verify(&issuer, now_secs()))
            .map_err(|e| {
                ClientError::Untrusted(format!(
                    "our own certificate: {e}; register the device again"
                ))
            })?;
        let transport = Transport::new(opts.endpoint)?;
        Ok(Client {
            conn: std::sync::Mutex::new(Local::new(conn)),
            crypto,
            signer,
            id,
            cert,
            transport,
        })
    }

    /// The local state (it dereferences to the database connection). Never hold
    /// the guard across an await.
    pub(crate) fn db(&self) -> std::sync::MutexGuard<'_, Local> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn id(&self) -> &ClientId {
        &self.id
    }

    pub fn user(&self) -> &UserId {
        self.id.user()
    }

    /// A one-time code (valid 10 minutes) to register another device of this user.
    pub async fn link_code(&self) -> Result<String, ClientError> {
        let r: api::LinkCodeResponse = self
            .signed::<(), _>(reqwest::Method::POST, "/v1/devices/link-code", None)
            .await?;
        Ok(r.code)
    }

    async fn signed<B: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        self.transport
            .signed(&self.id.to_string(), &self.signer, method, path, body)
            .await
    }

    pub(crate) fn pinned_issuer(
        conn: &Connection,
        domain: &Domain,
    ) -> Result<Option<IssuerPublicKey>, ClientError> {
        let key: Option<Vec<u8>> = conn
            .query_row(
                "SELECT key FROM issuers WHERE domain = ?1",
                params![domain.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        key.map(|k| {
            IssuerPublicKey::from_bytes(domain.clone(), &k)
                .map_err(|e| ClientError::Storage(format!("pinned issuer key of {domain}: {e}")))
        })
        .transpose()
    }

    /// The issuer key of `domain`: pinned on first use (fetched through our provider,
    /// which fetched it over mutually authenticated TLS). A later change is not
    /// accepted silently; safety numbers let users detect a provider that lies.
    pub async fn issuer_key(&self, domain: &Domain) -> Result<IssuerPublicKey, ClientError> {
        if let Some(k) = Self::pinned_issuer(&self.db(), domain)? {
            return Ok(k);
        }
        let info: ProviderInfo = self
            .transport
            .public::<(), _>(
                reqwest::Method::GET,
                &format!("/v1/providers/{}", domain.as_str()),
                None,
            )
            .await?;
        if info.domain != domain.as_str() {
            return Err(ClientError::Protocol(format!(
                "asked for the issuer key of {domain}, got {}'s",
                info.domain
            )));
        }
        let key = IssuerPublicKey::from_bytes(domain.clone(), &info.issuer_key)
            .map_err(|e| ClientError::Protocol(format!("issuer key of {domain}: {e}")))?;
        self.db()
            .execute(
                "INSERT OR IGNORE INTO issuers (domain, key, first_seen) VALUES (?1, ?2, ?3)",
                params![domain.as_str(), key.to_bytes().to_vec(), now_secs() as i64],
            )
            .map_err(storage)?;
        Ok(key)
    }

    /// Checks that `room` is a room this device is in.
    pub(crate) fn require_room(&self, room: &RoomId) -> Result<(), ClientError> {
        let n: i64 = self
            .db()
            .query_row(
                "SELECT COUNT(*) FROM rooms WHERE room = ?1",
                params![room.to_string()],
                |r| r.get(0),
            )
            .map_err(storage)?;
        if n == 0 {
            return Err(ClientError::Usage(format!("this device is not in {room}")));
        }
        Ok(())
    }
}
