//! Helpers for the Signal channel's end-to-end tests: a device that registers with
//! a real provider and makes signed client-API requests by hand, with real Signal
//! keys (X25519 identity, XEdDSA signatures, ML-KEM-1024 prekeys).

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail by panicking; each test binary uses part of this"
)]

use std::ops::Range;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use ed25519_dalek::{Signer as _, SigningKey};
use entente_core::signal::keys::{IdentityKeyPair, PrivateKey};
use entente_core::signal::pqxdh::KemKeyPair;
use entente_testkit::Federation;
use entente_tls::DevCa;
use entente_wire::api::{
    self, InboxItem, InboxPage, LinkCodeResponse, RegisterRequest, RegisterResponse, b64,
};
use entente_wire::ids::{ClientId, UserId};
use entente_wire::signal::{KyberPreKey, OneTimePreKey, PreKeyUpload, SignedPreKey};
use rand::rngs::OsRng;
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

/// How long a test waits for something to arrive.
pub const DEADLINE: Duration = Duration::from_secs(40);

/// An HTTPS client that trusts the federation's CA, reaches every member at its
/// loopback address, and presents `identity` (a provider's certificate) if given.
pub fn https(fed: &Federation, identity: Option<&entente_tls::Identity>) -> reqwest::Client {
    let anchors = DevCa::load(fed.root().join("ca"))
        .unwrap()
        .trust_anchors()
        .unwrap();
    let tls = entente_tls::client_config(&anchors, identity).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .timeout(Duration::from_secs(30));
    for (domain, m) in &fed.members {
        b = b.resolve(domain, m.config.listen);
    }
    b.build().unwrap()
}

/// An HTTPS client acting as the provider of `domain` (mutual TLS with a
/// certificate for it from the federation's CA).
pub fn as_provider(fed: &Federation, domain: &str) -> reqwest::Client {
    let ca = DevCa::load(fed.root().join("ca")).unwrap();
    https(fed, Some(&ca.issue(domain).unwrap().identity().unwrap()))
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A device registered with a real provider, with a Signal identity of its own.
pub struct Device {
    pub id: ClientId,
    signer: SigningKey,
    http: reqwest::Client,
    base: String,
    pub identity: IdentityKeyPair,
    pub registration_id: u32,
    pub device_id: u32,
}

impl Device {
    /// Registers `device` of `user` (`alice@a.example`): a new account, or with a
    /// link code from `existing` (another device of the same user).
    pub async fn register(
        fed: &Federation,
        user: &str,
        device: &str,
        device_id: u32,
        existing: Option<&Device>,
    ) -> Result<Self> {
        let u: UserId = user.parse()?;
        let id = ClientId::new(&u, device)?;
        let signer = SigningKey::generate(&mut OsRng);
        let d = Self {
            id,
            http: https(fed, None),
            base: format!("https://{}", u.domain()),
            signer,
            identity: IdentityKeyPair::generate(&mut OsRng),
            registration_id: 1 + device_id * 100,
            device_id,
        };
        let link_code = match existing {
            Some(e) => {
                let r: LinkCodeResponse =
                    e.call(Method::POST, "/v1/devices/link-code", &()).await?;
                Some(r.code)
            }
            None => None,
        };
        let key = d.signer.verifying_key().to_bytes();
        let proof = d
            .signer
            .sign(&api::registration_proof_message(
                &d.id.to_string(),
                &b64::encode(&key),
            ))
            .to_bytes()
            .to_vec();
        let body = serde_json::to_vec(&RegisterRequest {
            user: u.to_string(),
            device: device.into(),
            signature_key: key.to_vec(),
            proof,
            link_code,
        })?;
        let (status, answer) = d.request(Method::POST, "/v1/register", body, None).await?;
        if status != StatusCode::OK {
            bail!("registering {}: {status} {}", d.id, lossy(&answer));
        }
        let _: RegisterResponse = serde_json::from_slice(&answer)?;
        Ok(d)
    }

    pub fn user(&self) -> &UserId {
        self.id.user()
    }

    /// The `Authorization` header value for a request, signed at `ts`.
    pub fn authorization(&self, method: &str, path: &str, body: &[u8], ts: u64) -> String {
        let nonce = hex::encode(rand::random::<[u8; 12]>());
        let msg = api::signed_request_message(
            method,
            path,
            ts,
            &nonce,
            &hex::encode(Sha256::digest(body)),
        );
        let sig = self.signer.sign(&msg).to_bytes();
        format!(
            r#"{} client="{}", ts="{ts}", nonce="{nonce}", sig="{}""#,
            api::AUTH_SCHEME,
            self.id,
            b64::encode(&sig)
        )
    }

    /// A request to this device's provider, with `auth` as the `Authorization`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        auth: Option<String>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(a) = auth {
            req = req.header(api::AUTH_HEADER, a);
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json").body(body);
        }
        let r = req.send().await.with_context(|| path.to_owned())?;
        Ok((r.status(), r.bytes().await?.to_vec()))
    }

    /// A signed request with a raw body.
    pub async fn signed(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let auth = self.authorization(method.as_str(), path, &body, now_secs());
        self.request(method, path, body, Some(auth)).await
    }

    /// A signed request with a JSON body (`&()` for none) that must succeed.
    pub async fn call<R: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<R> {
        let body = match serde_json::to_value(body)? {
            serde_json::Value::Null => Vec::new(),
            v => serde_json::to_vec(&v)?,
        };
        let (status, answer) = self.signed(method, path, body).await?;
        if !status.is_success() {
            bail!("{path}: {status}: {}", lossy(&answer));
        }
        Ok(serde_json::from_slice(&answer)?)
    }

    /// A prekey upload with real keys: one-time prekeys with ids `one_time`,
    /// one-time ML-KEM prekeys with ids `kyber`, a signed prekey (id 1) and a
    /// last-resort ML-KEM prekey (id 9999) if asked for.
    pub fn prekeys(
        &self,
        one_time: Range<u32>,
        kyber: Range<u32>,
        signed: bool,
        last_resort: bool,
    ) -> PreKeyUpload {
        let sign = |public: &[u8]| self.identity.private().sign(public, &mut OsRng).to_vec();
        let kyber_key = |id: u32| {
            let public = KemKeyPair::generate(&mut OsRng).public_key().encode();
            KyberPreKey {
                id,
                signature: sign(&public),
                public,
            }
        };
        PreKeyUpload {
            identity_key: self.identity.public().encode().to_vec(),
            registration_id: self.registration_id,
            device_id: self.device_id,
            signed_prekey: signed.then(|| {
                let public = PrivateKey::generate(&mut OsRng)
                    .public_key()
                    .encode()
                    .to_vec();
                SignedPreKey {
                    id: 1,
                    signature: sign(&public),
                    public,
                }
            }),
            last_resort_kyber_prekey: last_resort.then(|| kyber_key(9999)),
            one_time_prekeys: one_time
                .map(|id| OneTimePreKey {
                    id,
                    public: PrivateKey::generate(&mut OsRng)
                        .public_key()
                        .encode()
                        .to_vec(),
                })
                .collect(),
            kyber_prekeys: kyber.map(kyber_key).collect(),
        }
    }

    /// The items in this device's inbox (not acknowledged).
    pub async fn inbox(&self) -> Result<Vec<InboxItem>> {
        let page: InboxPage = self.call(Method::GET, "/v1/inbox?after=0", &()).await?;
        Ok(page.items)
    }

    /// Waits until the inbox holds at least `n` items; returns them.
    pub async fn inbox_until(&self, n: usize) -> Result<Vec<InboxItem>> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let items = self.inbox().await?;
            if items.len() >= n {
                return Ok(items);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} has {} inbox items, waited for {n}",
                    self.id,
                    items.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The `code` and `message` of a JSON error answer.
pub fn api_error(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    (
        v["code"].as_str().unwrap_or_default().to_owned(),
        v["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Every text or blob cell of every table of the SQLite database at `path` that
/// contains `needle`, as `table.column`.
pub fn cells_containing(path: &std::path::Path, needle: impl AsRef<[u8]>) -> Result<Vec<String>> {
    let needle = needle.as_ref();
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut found = Vec::new();
    for t in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\""))?;
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            for (i, c) in columns.iter().enumerate() {
                let bytes: Vec<u8> = match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        b.to_vec()
                    }
                    _ => continue,
                };
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(format!("{t}.{c}"));
                }
            }
        }
    }
    Ok(found)
}
