//! Outgoing MIMI requests: one reqwest client with our certificate for mutual TLS.
//! Peers are found by DNS, or through the static map in the config for local
//! federations. Issuer keys of peers are fetched once and cached.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entente_core::identity::IssuerPublicKey;
use entente_wire::api::{ProviderInfo, path_segment};
use entente_wire::ids::Domain;

use super::{ISSUER_PATH, MIMI_MEDIA_TYPE, MIMI_PREFIX};
use crate::config::FederationConfig;
use crate::error::Failure;

/// Why a request to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum FedError {
    /// Could not reach the peer or it failed (5xx): retry later.
    #[error("{domain} is unreachable: {reason}")]
    Unreachable {
        domain: String,
        reason: String,
        retry_after: Option<u64>,
    },
    /// The peer refused the request (4xx): retrying the same request will not help.
    #[error("{domain} refused the request ({status}): {reason}")]
    Refused {
        domain: String,
        status: u16,
        reason: String,
    },
}

impl From<FedError> for Failure {
    fn from(e: FedError) -> Self {
        // A room policy refusal by the hub, or its spam filter's, is the answer to
        // the client's request, not a federation failure: pass it through with its
        // code.
        if let FedError::Refused {
            domain,
            status: 403,
            reason,
        } = &e
            && let Some((code, message)) = passed_through_refusal(reason)
        {
            return Failure::new(
                axum::http::StatusCode::FORBIDDEN,
                code,
                format!("{domain}: {message}"),
            );
        }
        match &e {
            // A peer's rate limit or spam throttle is passed on as such, with its
            // message and retry-after.
            FedError::Unreachable {
                domain,
                reason,
                retry_after,
            } if reason.starts_with("429 ") => {
                let message = reason
                    .split_once(": ")
                    .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(body).ok())
                    .and_then(|v| v["message"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "too many requests".into());
                let mut f = Failure::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("{domain}: {message}"),
                );
                f.retry_after_secs = Some(retry_after.unwrap_or(5).max(1));
                f
            }
            FedError::Unreachable { retry_after, .. } => {
                Failure::unavailable(e.to_string(), retry_after.unwrap_or(5))
            }
            FedError::Refused { .. } => Failure::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "peer_refused",
                e.to_string(),
            ),
        }
    }
}

/// The code and message of a peer's 403 that is an answer for our client (the
/// hub's room policy or spam filter), from the peer's JSON error body.
fn passed_through_refusal(body: &str) -> Option<(&'static str, String)> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let code = match v["code"].as_str()? {
        "not_allowed" => "not_allowed",
        "spam_rejected" => "spam_rejected",
        _ => return None,
    };
    Some((code, v["message"].as_str().unwrap_or_default().to_owned()))
}

pub struct FederationClient {
    own: Domain,
    http: reqwest::Client,
    /// For blob downloads, which stream: see [`Self::get_blob`].
    assets: reqwest::Client,
    issuers: Mutex<HashMap<Domain, IssuerPublicKey>>,
}

impl FederationClient {
    pub fn new(
        own: Domain,
        tls: Arc<rustls::ClientConfig>,
        cfg: &FederationConfig,
    ) -> Result<Self, String> {
        let builder = || -> Result<reqwest::ClientBuilder, String> {
            let mut b = reqwest::Client::builder()
                .tls_backend_preconfigured((*tls).clone())
                .connect_timeout(Duration::from_secs(5))
                .pool_idle_timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::none());
            for (domain, addr) in &cfg.peers {
                let sa: SocketAddr = match addr.parse() {
                    Ok(sa) => sa,
                    Err(_) => std::net::ToSocketAddrs::to_socket_addrs(addr)
                        .map_err(|e| format!("federation peer {domain} = {addr}: {e}"))?
                        .next()
                        .ok_or_else(|| format!("federation peer {domain} = {addr}: no address"))?,
                };
                b = b.resolve(domain, sa);
            }
            Ok(b)
        };
        let http = builder()?
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("building the federation client: {e}"))?;
        // Blob transfers can take long: no limit on the whole, only on silence.
        let assets = builder()?
            .read_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("building the federation client: {e}"))?;
        Ok(Self {
            own,
            http,
            assets,
            issuers: Mutex::new(HashMap::new()),
        })
    }

    fn url(domain: &Domain, endpoint: &str, param: &str) -> String {
        format!(
            "https://{domain}{MIMI_PREFIX}/{endpoint}/{}",
            path_segment(param)
        )
    }

    /// POSTs a MIMI body; returns the response body of a 2xx answer.
    ///
    /// `endpoint` is a MIMI directory name (`notify`, ...), whose URL takes `param`;
    /// or, for requests the outbound queue carries to one of Entente's extension
    /// endpoints, an absolute path (`/entente/v1/signal/messages`), which takes a
    /// JSON body and no parameter.
    pub async fn post(
        &self,
        domain: &Domain,
        endpoint: &str,
        param: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, FedError> {
        if endpoint.starts_with('/') {
            return self
                .extension(reqwest::Method::POST, domain, endpoint, Some(body))
                .await;
        }
        let req = self
            .http
            .post(Self::url(domain, endpoint, param))
            .header("content-type", MIMI_MEDIA_TYPE)
            .body(body);
        self.send(domain, req).await
    }

    /// A request to one of Entente's extension endpoints at `path` (under
    /// `/entente/v1`): JSON, with the same mutual TLS and `From` header as MIMI.
    /// Returns the response body of a 2xx answer.
    pub async fn extension(
        &self,
        method: reqwest::Method,
        domain: &Domain,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, FedError> {
        let mut req = self.http.request(method, format!("https://{domain}{path}"));
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        self.send(domain, req).await
    }

    /// Sends `req` as us and sorts the answer: 2xx is the body, 5xx (but 501) and
    /// 429 are worth retrying, the rest is a refusal.
    async fn send(
        &self,
        domain: &Domain,
        req: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, FedError> {
        let unreachable = |reason: String, retry_after| FedError::Unreachable {
            domain: domain.to_string(),
            reason,
            retry_after,
        };
        let resp = req
            .header("from", format!("mimi@{}", self.own))
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e), None))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| unreachable(error_chain(&e), retry_after))?;
        // 501: the peer does not offer what we asked for (e.g. the Signal channel
        // is switched off there); asking again will not change that.
        let transient = (status.is_server_error()
            && status != reqwest::StatusCode::NOT_IMPLEMENTED)
            || status.as_u16() == 429;
        if status.is_success() {
            Ok(bytes.to_vec())
        } else if transient {
            Err(unreachable(
                format!("{status}: {}", String::from_utf8_lossy(&bytes)),
                retry_after,
            ))
        } else {
            Err(FedError::Refused {
                domain: domain.to_string(),
                status: status.as_u16(),
                reason: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            })
        }
    }

    /// GETs `url` (a blob, or a hub's `proxyDownload`) from the provider of `domain`
    /// as a stream, passing `range` on. Answers of any status except 5xx are
    /// returned for the caller to pass on.
    pub async fn get_blob(
        &self,
        domain: &Domain,
        url: &str,
        range: Option<&reqwest::header::HeaderValue>,
    ) -> Result<reqwest::Response, FedError> {
        let unreachable = |reason: String, retry_after| FedError::Unreachable {
            domain: domain.to_string(),
            reason,
            retry_after,
        };
        let mut req = self
            .assets
            .get(url)
            .header("from", format!("mimi@{}", self.own));
        if let Some(r) = range {
            req = req.header(reqwest::header::RANGE, r.clone());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e), None))?;
        if resp.status().is_server_error() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(unreachable(
                format!("{status}: {}", body.chars().take(300).collect::<String>()),
                None,
            ));
        }
        Ok(resp)
    }

    /// The issuer key of `domain`, fetched over mutually authenticated TLS (so it is
    /// bound to the domain by the WebPKI or the configured CA) and cached.
    pub async fn issuer_key(&self, domain: &Domain) -> Result<IssuerPublicKey, FedError> {
        if let Some(k) = self
            .issuers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(domain)
        {
            return Ok(k.clone());
        }
        let url = format!("https://{domain}{ISSUER_PATH}");
        let unreachable = |reason: String| FedError::Unreachable {
            domain: domain.to_string(),
            reason,
            retry_after: None,
        };
        let resp = self
            .http
            .get(&url)
            .header("from", format!("mimi@{}", self.own))
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(unreachable(format!("issuer key: HTTP {}", resp.status())));
        }
        let info: ProviderInfo = resp
            .json()
            .await
            .map_err(|e| unreachable(format!("issuer key: {e}")))?;
        let refused = |reason: String| FedError::Refused {
            domain: domain.to_string(),
            status: 200,
            reason,
        };
        if info.domain != domain.as_str() {
            return Err(refused(format!("issuer key is for {}", info.domain)));
        }
        let key = IssuerPublicKey::from_bytes(domain.clone(), &info.issuer_key)
            .map_err(|e| refused(e.to_string()))?;
        self.issuers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.clone(), key.clone());
        Ok(key)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
