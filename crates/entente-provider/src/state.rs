//! The running provider: shared state, start-up and shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use entente_core::identity::IssuerKey;
use entente_wire::ids::Domain;
use openmls_rust_crypto::RustCrypto;
use tokio::sync::{Notify, oneshot};

use crate::auth::NonceCache;
use crate::config::Config;
use crate::error::Failure;
use crate::federation::client::FederationClient;
use crate::store::{Store, StoreError, sqlite::SqliteStore};

/// Everything a request handler needs.
pub struct Shared {
    pub config: Config,
    pub domain: Domain,
    pub store: Arc<dyn Store>,
    pub issuer: IssuerKey,
    /// The hub's secret franking key (`hub_key`, MIMI-06 section 5.4.1.2).
    pub hub_key: entente_core::franking::HubKey,
    pub crypto: RustCrypto,
    pub nonces: NonceCache,
    pub wakers: Wakers,
    pub federation: FederationClient,
    /// Wakes the outbound worker when new requests are queued.
    pub outbound_wake: Notify,
    /// Set when the provider stops; long-lived connections (WebSocket push) end.
    pub closing: tokio::sync::watch::Sender<bool>,
    pub metrics: crate::metrics::Metrics,
    /// Registered clients, so that authenticating a request needs no database
    /// read. Client records never change once written; removing a device must
    /// also remove it here.
    pub clients: ClientCache,
    /// The tracked MLS group state of each room we hub or follow, loaded on first use.
    pub trackers: Trackers,
    /// The bytes of encrypted file attachments.
    pub blobs: Arc<dyn crate::blobs::BlobStore>,
    /// Uploads in progress.
    pub uploads: crate::blobs::routes::Uploads,
    /// Suspensions, bans, the moderator token and web sessions.
    pub moderation: crate::moderation::Moderation,
    /// Rate limits (token buckets per client, user and peer domain).
    pub limits: crate::ratelimit::Limiter,
    /// The spam-filter hook.
    pub spam: crate::spam::SpamHook,
    /// The TURN relay and the SFU.
    pub calls: crate::calls::Calls,
}

pub type AppState = Arc<Shared>;

impl Shared {
    /// Runs a storage operation on the blocking pool.
    pub async fn db<T, F>(self: &Arc<Self>, f: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(r) => r.map_err(Failure::from),
            Err(e) => Err(Failure::internal("storage task", e)),
        }
    }

    pub fn is_local(&self, domain: &Domain) -> bool {
        domain == &self.domain
    }
}

/// An in-memory copy of client records, bounded: when full it starts over.
#[derive(Default)]
pub struct ClientCache {
    map: Mutex<HashMap<String, crate::store::ClientRecord>>,
}

impl ClientCache {
    const MAX: usize = 100_000;

    pub fn get(&self, client: &str) -> Option<crate::store::ClientRecord> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(client)
            .cloned()
    }

    pub fn remove(&self, client: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(client);
    }

    pub fn insert(&self, record: crate::store::ClientRecord) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= Self::MAX {
            m.clear();
        }
        m.insert(record.client.clone(), record);
    }
}

/// One slot per room holding its tracked group state. The slot's lock serialises
/// everything that changes a room's group: at most one commit is validated and
/// made durable at a time, which is also what orders commits.
#[derive(Default)]
pub struct Trackers {
    map: Mutex<HashMap<String, TrackerSlot>>,
}

pub type TrackerSlot = Arc<tokio::sync::Mutex<Option<crate::tracker::Tracked>>>;

impl Trackers {
    pub fn slot(&self, room: &str) -> TrackerSlot {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(room.to_owned()).or_default().clone()
    }
}

/// Per-client wake-ups for WebSocket delivery.
#[derive(Default)]
pub struct Wakers {
    map: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakers {
    pub fn subscribe(&self, client: &str) -> Arc<Notify> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(client.to_owned()).or_default().clone()
    }

    pub fn wake(&self, clients: &[String]) {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for c in clients {
            if let Some(n) = m.get(c) {
                n.notify_waiters();
                n.notify_one();
            }
        }
    }
}

/// Seconds since the UNIX epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the UNIX epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A provider to start.
pub struct Provider;

/// What an embedder may give a provider besides its configuration.
#[derive(Default, Clone)]
pub struct StartOptions {
    /// Spam filters that see every event after the configured ones.
    pub spam_filters: Vec<Arc<dyn crate::spam::SpamFilter>>,
}

/// A running provider.
pub struct ProviderHandle {
    pub local_addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    /// The outbound worker and maintenance tasks. Aborting `task` only detaches
    /// them, so a kill aborts them too.
    background: [tokio::task::AbortHandle; 2],
}

impl ProviderHandle {
    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn shutdown(mut self) {
        self.state.closing.send_replace(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Deletes expired blobs and abandoned uploads now (the maintenance task does
    /// it every few minutes). Returns how many.
    pub async fn collect_blob_garbage(&self) -> Result<u64, String> {
        crate::blobs::routes::collect_garbage(&self.state)
            .await
            .map_err(|e| e.message)
    }

    /// Applies the retention policy now, as if the clock read `now_ms` (the
    /// maintenance task does it every `retention.interval_secs` with the real
    /// clock): what expired by then is deleted.
    pub async fn enforce_retention_at(
        &self,
        now_ms: u64,
    ) -> Result<crate::privacy::retention::Enforced, String> {
        crate::privacy::retention::enforce(&self.state, now_ms)
            .await
            .map_err(|e| e.message)
    }

    /// Stops abruptly, like a crash: no graceful drain (storage is still closed by
    /// dropping it, but anything not yet committed is lost, as in a real crash).
    pub fn kill(self) {
        // A crashed provider sends nothing more: not even the federation request
        // its outbound worker is in the middle of, nor a WebSocket push.
        self.state.closing.send_replace(true);
        for t in &self.background {
            t.abort();
        }
        self.task.abort();
        // The SFU and TURN tasks stop too, as in a crash.
        let state = self.state.clone();
        tokio::spawn(async move { state.calls.close().await });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot open the database at {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error("cannot load TLS material: {0}")]
    Tls(#[from] entente_tls::TlsError),
    #[error("cannot read or create the issuer key at {path}: {source}")]
    IssuerKey {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create the blob directory {path}: {source}")]
    BlobDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl Provider {
    /// Opens storage and keys, binds the listener and starts serving.
    pub async fn start(config: Config) -> Result<ProviderHandle, StartError> {
        Self::start_with(config, StartOptions::default()).await
    }

    /// [`Provider::start`], with an embedder's [`StartOptions`].
    pub async fn start_with(
        config: Config,
        options: StartOptions,
    ) -> Result<ProviderHandle, StartError> {
        entente_tls::install_crypto_provider();
        config.validate().map_err(StartError::Config)?;
        let rate_limits = config.rate_limits.clone();
        let spam = crate::spam::SpamHook::new(&config.spam, options.spam_filters)
            .map_err(StartError::Config)?;
        let domain =
            Domain::parse(&config.domain).map_err(|e| StartError::Config(e.to_string()))?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::IssuerKey {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let issuer = load_or_create_issuer(&config, &domain)?;
        let hub_key = crate::abuse::load_or_create_hub_key(&config).map_err(|source| {
            StartError::IssuerKey {
                path: config.data_dir.join("hub_key").display().to_string(),
                source,
            }
        })?;
        let db_path = config.database_path();
        let store = {
            let p = db_path.clone();
            tokio::task::spawn_blocking(move || SqliteStore::open(&p))
                .await
                .map_err(|e| StartError::Config(e.to_string()))?
                .map_err(|source| StartError::Store {
                    path: db_path.display().to_string(),
                    source,
                })?
        };
        let moderation =
            crate::moderation::Moderation::open(&config.data_dir, &store, &config.moderation)
                .map_err(StartError::Config)?;
        let blob_dir = config.blob_dir();
        let blobs =
            crate::blobs::FsBlobStore::open(&blob_dir).map_err(|source| StartError::BlobDir {
                path: blob_dir.display().to_string(),
                source,
            })?;
        let identity = entente_tls::Identity::from_pem_files(
            &config.tls.certificate,
            &config.tls.private_key,
        )?;
        let anchors = if config.tls.trust == "system" {
            entente_tls::TrustAnchors::webpki()
        } else {
            entente_tls::TrustAnchors::from_pem_file(std::path::Path::new(&config.tls.trust))?
        };
        let server_tls = entente_tls::server_config(&identity, &anchors)?;
        let client_tls = entente_tls::client_config(&anchors, Some(&identity))?;
        let federation = FederationClient::new(domain.clone(), client_tls, &config.federation)
            .map_err(StartError::Config)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        let calls = crate::calls::Calls::start(&config)
            .await
            .map_err(StartError::Config)?;
        let state: AppState = Arc::new(Shared {
            config,
            domain,
            store: Arc::new(store),
            issuer,
            hub_key,
            crypto: RustCrypto::default(),
            nonces: NonceCache::default(),
            wakers: Wakers::default(),
            federation,
            outbound_wake: Notify::new(),
            closing: tokio::sync::watch::Sender::new(false),
            metrics: crate::metrics::Metrics::default(),
            clients: ClientCache::default(),
            trackers: Trackers::default(),
            blobs: Arc::new(blobs),
            uploads: Default::default(),
            moderation,
            limits: crate::ratelimit::Limiter::new(rate_limits),
            spam,
            calls,
        });
        // Blob uploads and downloads stream, so they are exempt from the body limit
        // (their size is checked against the blob limits instead).
        let router = crate::client_api::router(state.clone())
            .merge(crate::federation::server::router(state.clone()))
            .merge(crate::abuse::router(state.clone()))
            .merge(crate::signal::router(state.clone()))
            .merge(crate::consent::router(state.clone()))
            .merge(crate::calls::router(state.clone()))
            .merge(crate::moderation::client_router(state.clone()))
            .merge(crate::moderation::router(state.clone()))
            .layer(tower_http::limit::RequestBodyLimitLayer::new(
                state.config.limits.max_body_bytes,
            ))
            .merge(crate::blobs::routes::router(state.clone()))
            .fallback(|| async {
                Failure::not_found("no such endpoint; the client API is described at /openapi.json")
            })
            .method_not_allowed_fallback(|| async {
                Failure::new(
                    axum::http::StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "this endpoint does not take that method; see /openapi.json",
                )
            })
            .layer(axum::middleware::map_response_with_state(
                state.config.limits.max_body_bytes,
                body_limit_as_json,
            ))
            // The request log names the route, not the URI: paths hold user,
            // client and room identifiers (`crate::privacy`).
            .layer(
                tower_http::trace::TraceLayer::new_for_http().make_span_with(
                    crate::privacy::RequestSpan {
                        identifiers: state.config.logging.identifiers,
                    },
                ),
            );
        let (tx, rx) = oneshot::channel::<()>();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn(crate::outbound::run(state.clone(), stop_rx.clone()));
        let maint = tokio::spawn(crate::outbound::maintenance(state.clone(), stop_rx));
        let background = [worker.abort_handle(), maint.abort_handle()];
        let state_for_close = state.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            if let Err(e) = entente_tls::serve(listener, server_tls, router, shutdown).await {
                tracing::error!(error = %e, "listener stopped");
            }
            let _ = stop_tx.send(true);
            let _ = worker.await;
            let _ = maint.await;
            state_for_close.calls.close().await;
        });
        tracing::info!(%local_addr, "provider listening");
        Ok(ProviderHandle {
            local_addr,
            state,
            shutdown: Some(tx),
            task,
            background,
        })
    }
}

/// The body-limit layer (and axum's body extractors) answer 413 in plain text; give
/// clients and peers our JSON error, which says what the limit is.
async fn body_limit_as_json(
    axum::extract::State(limit): axum::extract::State<usize>,
    response: axum::response::Response,
) -> axum::response::Response {
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != axum::http::StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    axum::response::IntoResponse::into_response(Failure::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("request body exceeds {limit} bytes, the most this provider accepts"),
    ))
}

fn load_or_create_issuer(config: &Config, domain: &Domain) -> Result<IssuerKey, StartError> {
    let path = config.issuer_key_path();
    let err = |source| StartError::IssuerKey {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "expected 32 bytes",
                ))
            })?;
            Ok(IssuerKey::from_seed(domain.clone(), &seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = IssuerKey::generate(domain.clone());
            write_secret(&path, &key.seed()).map_err(err)?;
            Ok(key)
        }
        Err(e) => Err(err(e)),
    }
}

/// Writes a secret file (mode 0600) atomically: a synced temporary file renamed
/// into place. Used for the issuer key, the hub key and the moderator token.
pub(crate) fn write_secret(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
