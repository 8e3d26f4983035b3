//! The provider's configuration: one TOML file.
//!
//! ```toml
//! domain = "a.example"
//! listen = "127.0.0.1:8443"
//! data_dir = "/var/lib/entente/a.example"
//!
//! [tls]
//! certificate = "tls/provider.crt"   # PEM chain for `domain`: server and client auth
//! private_key = "tls/provider.key"
//! # Trust anchors for peers: "system" (web PKI) or a CA file for local federations.
//! trust = "ca.crt"
//!
//! [federation]
//! # How to reach other providers. Empty: DNS (the domain itself, port 443).
//! [federation.peers]
//! "b.example" = "127.0.0.1:9443"
//!
//! [registration]
//! open = true
//!
//! [blobs]                            # encrypted file attachments
//! max_blob_bytes = 4294967296        # 4 GiB
//! quota_bytes_per_user = 10737418240 # 10 GiB
//! expiry_days = 30
//!
//! [protocols]                        # what the provider offers its users
//! mls_rooms = true                   # MIMI rooms (MLS)
//! signal = true                      # the Signal channel: key directory, sealed sender
//! sender_certificate_hours = 24
//!
//! [rate_limits]                      # token buckets (see `crate::ratelimit`): 429 + Retry-After
//! enabled = true
//! client = { per_second = 50.0, burst = 500 }        # every client API request, per device
//! user = { per_second = 100.0, burst = 1000 }        # every client API request, per user
//! key_claims = { per_second = 10.0, burst = 1000 }   # KeyPackage / prekey bundle claims, per user
//! messages = { per_second = 20.0, burst = 300 }      # room messages and sealed sends, per user
//! consent_requests = { per_second = 0.2, burst = 30 }
//! reports = { per_second = 0.1, burst = 20 }
//! federation = { per_second = 1000.0, burst = 10000 } # every request of a peer, per domain
//! max_buckets = 100000
//!
//! [spam]                             # spam-filter hook (see `crate::spam`): metadata only
//! builtin = true                     # flag users with verified reports:
//! report_threshold = 3               #   this many within
//! report_window_hours = 24           #   this window: no consent requests,
//! throttle_secs = 30                 #   one submission or key claim per this many seconds
//! # [spam.webhook]                   # operator's filter: events POSTed as JSON
//! # url = "http://127.0.0.1:9000/spam"   # loopback only
//! # timeout_ms = 500
//! # fail_open = true                 # false: throttle (429) while it is down
//! # retry_after_secs = 10
//!
//! [moderation]                       # the moderators' page and admin API
//! web = true                         # serve /moderation/ (token: data_dir/moderator.token)
//! session_minutes = 60               # a login lasts this long
//! log_retention_days = 365           # moderation log entries are deleted after
//! notice_retention_days = 90         # notices are deleted this long after being read
//!
//! [retention]                        # how long stored data is kept (docs/PRIVACY.md)
//! undelivered_days = 30              # inbox items never fetched and acked
//! outbound_days = 7                  # federation requests a peer never accepted
//! dedup_days = 7                     # dedup keys and echo marks (>= outbound_days)
//! reports_days = 180                 # abuse reports, whatever their status
//! consent_requests_days = 90         # message requests nobody answered
//! interval_secs = 300                # how often the maintenance task runs
//!
//! [logging]
//! identifiers = false                # true: request paths with user/room ids (debugging)
//!
//! [consent]                          # message requests and blocks (see `crate::consent`)
//! mode = "required"                  # strangers get no key material until accepted;
//!                                    # "open": anyone not blocked (blocks apply always)
//!
//! [calls]                            # TURN relay and group-call SFU (see `crate::calls`)
//! enabled = true
//! sfu_listen = "203.0.113.5:3479"    # UDP; default: the listener's IP, a free port
//! sfu_public = "203.0.113.5:3479"    # what devices reach (needed behind NAT or on 0.0.0.0)
//! turn_listen = "203.0.113.5:3478"   # UDP; default: the listener's IP, a free port
//! turn_public = "203.0.113.5:3478"
//! turn_relay_ip = "203.0.113.5"      # relayed addresses are allocated here
//! turn_credential_secs = 3600        # validity of TURN credentials handed to devices
//! max_allocations = 1000
//! max_participants = 16              # devices per group call
//! max_calls = 1000
//! ```
//!
//! Relative paths are relative to the config file's directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The DNS domain this provider serves (`alice@<domain>`).
    pub domain: String,
    /// Address of the HTTPS listener (client API and MIMI federation).
    pub listen: SocketAddr,
    /// Where the database and keys live.
    pub data_dir: PathBuf,
    pub tls: TlsConfig,
    #[serde(default)]
    pub federation: FederationConfig,
    #[serde(default)]
    pub registration: RegistrationConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub blobs: BlobsConfig,
    #[serde(default)]
    pub protocols: ProtocolsConfig,
    #[serde(default)]
    pub rate_limits: crate::ratelimit::RateLimitConfig,
    #[serde(default)]
    pub spam: crate::spam::SpamConfig,
    #[serde(default)]
    pub moderation: crate::moderation::ModerationConfig,
    /// How long what the provider stores is kept (`docs/PRIVACY.md`).
    #[serde(default)]
    pub retention: crate::privacy::retention::RetentionConfig,
    /// What logs may contain.
    #[serde(default)]
    pub logging: crate::privacy::LoggingConfig,
    /// Message requests and blocks (`crate::consent`).
    #[serde(default)]
    pub consent: crate::consent::ConsentConfig,
    /// The TURN relay and the SFU of group calls (`crate::calls`).
    #[serde(default)]
    pub calls: crate::calls::CallsConfig,
}

/// The messaging protocols the provider offers its users. A provider with
/// `mls_rooms = false` offers only the Double Ratchet (the Signal channel); one with
/// `signal = false` only MIMI rooms. Capabilities (`GET /v1/capabilities/{user}`)
/// report both, so senders choose what the recipient can use.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolsConfig {
    /// Create and take part in MIMI rooms; serve KeyPackages (key material).
    #[serde(default = "yes")]
    pub mls_rooms: bool,
    /// Serve the Signal channel: prekey bundles, sender certificates, sealed
    /// delivery, to clients and peer providers.
    #[serde(default = "yes")]
    pub signal: bool,
    /// Validity of the sender certificates issued for sealed sender, in hours.
    #[serde(default = "default_sender_certificate_hours")]
    pub sender_certificate_hours: u64,
}

impl Default for ProtocolsConfig {
    fn default() -> Self {
        Self {
            mls_rooms: true,
            signal: true,
            sender_certificate_hours: default_sender_certificate_hours(),
        }
    }
}

fn default_sender_certificate_hours() -> u64 {
    24
}

/// The blob store for encrypted file attachments (see `crate::blobs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobsConfig {
    /// Where blobs are kept. Relative paths are relative to `data_dir`.
    #[serde(default = "default_blob_dir")]
    pub directory: PathBuf,
    /// The largest blob accepted, in bytes.
    #[serde(default = "default_max_blob")]
    pub max_blob_bytes: u64,
    /// Bytes each user may keep stored (uploads in progress count).
    #[serde(default = "default_blob_quota")]
    pub quota_bytes_per_user: u64,
    /// Days a blob is kept after its upload started; then it is deleted.
    #[serde(default = "default_blob_expiry")]
    pub expiry_days: u64,
    /// Hours an unfinished upload may sit idle before it is deleted.
    #[serde(default = "default_stale_upload")]
    pub stale_upload_hours: u64,
}

impl Default for BlobsConfig {
    fn default() -> Self {
        Self {
            directory: default_blob_dir(),
            max_blob_bytes: default_max_blob(),
            quota_bytes_per_user: default_blob_quota(),
            expiry_days: default_blob_expiry(),
            stale_upload_hours: default_stale_upload(),
        }
    }
}

fn default_blob_dir() -> PathBuf {
    PathBuf::from("blobs")
}
fn default_max_blob() -> u64 {
    4 << 30
}
fn default_blob_quota() -> u64 {
    10 << 30
}
fn default_blob_expiry() -> u64 {
    30
}
fn default_stale_upload() -> u64 {
    24
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// `"system"` for the web PKI roots, or the path of a CA certificate (PEM).
    #[serde(default = "default_trust")]
    pub trust: String,
}

fn default_trust() -> String {
    "system".into()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// Static map from a peer's domain to `host:port`, for local federations.
    /// Domains not listed are reached at `<domain>:443` via DNS.
    #[serde(default)]
    pub peers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Whether anyone may create an account. Adding a device always needs a link
    /// code from one of the account's existing devices.
    #[serde(default = "yes")]
    pub open: bool,
    /// Validity of issued client certificates, in days.
    #[serde(default = "default_cert_days")]
    pub certificate_days: u64,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            open: true,
            certificate_days: default_cert_days(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_cert_days() -> u64 {
    365
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted, client API and federation alike.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Most KeyPackages a client may keep on the provider.
    #[serde(default = "default_max_kp")]
    pub max_key_packages_per_client: u64,
    /// Most clients (devices) per user.
    #[serde(default = "default_max_clients")]
    pub max_clients_per_user: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body(),
            max_key_packages_per_client: default_max_kp(),
            max_clients_per_user: default_max_clients(),
        }
    }
}

/// 8 MiB: a commit that adds 1,000 members carries their KeyPackages and a Welcome
/// with a secret for each, about 2.5 MB; 1 MiB fit only about 300.
fn default_max_body() -> usize {
    8 << 20
}
fn default_max_kp() -> u64 {
    1000
}
fn default_max_clients() -> usize {
    16
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// A configuration with every optional section at its default. New sections
    /// get their default here, so callers building a `Config` in code need not
    /// change when one is added.
    pub fn new(domain: String, listen: SocketAddr, data_dir: PathBuf, tls: TlsConfig) -> Self {
        Config {
            domain,
            listen,
            data_dir,
            tls,
            federation: FederationConfig::default(),
            registration: RegistrationConfig::default(),
            limits: Limits::default(),
            blobs: BlobsConfig::default(),
            protocols: ProtocolsConfig::default(),
            rate_limits: crate::ratelimit::RateLimitConfig::default(),
            spam: crate::spam::SpamConfig::default(),
            moderation: crate::moderation::ModerationConfig::default(),
            retention: crate::privacy::retention::RetentionConfig::default(),
            logging: crate::privacy::LoggingConfig::default(),
            consent: crate::consent::ConsentConfig::default(),
            calls: crate::calls::CallsConfig::default(),
        }
    }

    /// Loads and validates a config file; relative paths become relative to it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_relative(base);
        cfg.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    /// Makes relative paths relative to `base`.
    pub fn resolve_relative(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        fix(&mut self.tls.certificate);
        fix(&mut self.tls.private_key);
        if self.tls.trust != "system" && Path::new(&self.tls.trust).is_relative() {
            self.tls.trust = base.join(&self.tls.trust).to_string_lossy().into_owned();
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.calls.validate(self.listen)?;
        entente_wire::ids::Domain::parse(&self.domain).map_err(|e| format!("`domain`: {e}"))?;
        for (d, addr) in &self.federation.peers {
            entente_wire::ids::Domain::parse(d)
                .map_err(|e| format!("`federation.peers` key {d:?}: {e}"))?;
            if addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(format!(
                    "`federation.peers.\"{d}\"` = {addr:?}: expected host:port, e.g. \"127.0.0.1:9443\""
                ));
            }
        }
        if self.blobs.expiry_days == 0 || self.blobs.stale_upload_hours == 0 {
            return Err(
                "`blobs.expiry_days` and `blobs.stale_upload_hours` must be at least 1".into(),
            );
        }
        if !self.protocols.mls_rooms && !self.protocols.signal {
            return Err(
                "`protocols.mls_rooms` and `protocols.signal` are both false: the provider would offer no way to message".into(),
            );
        }
        if self.protocols.sender_certificate_hours == 0
            || self.protocols.sender_certificate_hours > 24 * 366
        {
            return Err("`protocols.sender_certificate_hours` must be 1 to 8784 (a year)".into());
        }
        self.rate_limits.validate()?;
        self.spam.validate()?;
        if self.limits.max_body_bytes < 4096 {
            return Err("`limits.max_body_bytes` must be at least 4096".into());
        }
        self.retention.validate()?;
        Ok(())
    }

    /// Serialises the config as TOML.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("provider.db")
    }

    /// The blob directory, resolved against `data_dir`.
    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join(&self.blobs.directory)
    }

    pub fn issuer_key_path(&self) -> PathBuf {
        self.data_dir.join("issuer.key")
    }
}
