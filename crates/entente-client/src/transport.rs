//! Talking to our own provider: signed JSON requests over HTTPS, and the WebSocket
//! that pushes inbox items.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entente_wire::api::{self, ApiError, b64};
use futures::{SinkExt, StreamExt};
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::signatures::Signer;
use rand::RngCore;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite;

use crate::error::ClientError;

/// Where the provider is.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The provider's domain, e.g. `a.example`: the TLS name we verify.
    pub domain: String,
    /// Connect here instead of resolving the domain (local federations, tests).
    pub address: Option<SocketAddr>,
    pub tls: Arc<rustls::ClientConfig>,
    /// Addresses of other providers, for direct blob downloads in local federations
    /// (elsewhere their domains resolve by DNS).
    pub peers: Vec<(String, SocketAddr)>,
}

pub struct Transport {
    endpoint: Endpoint,
    base: String,
    http: reqwest::Client,
    /// For blob transfers: no limit on the whole request.
    bulk: reqwest::Client,
    /// Until when the provider asked us to slow down (its last `429`), so that
    /// background resends wait for it instead of hammering.
    rate_limited_until: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Transport {
    /// Where the provider is.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn new(endpoint: Endpoint) -> Result<Self, ClientError> {
        let builder = || {
            let mut b = reqwest::Client::builder()
                .tls_backend_preconfigured((*endpoint.tls).clone())
                .connect_timeout(Duration::from_secs(5));
            for (domain, addr) in &endpoint.peers {
                b = b.resolve(domain, *addr);
            }
            if let Some(addr) = endpoint.address {
                b = b.resolve(&endpoint.domain, addr);
            }
            b
        };
        let http = builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        // No read timeout: while an upload's body is being sent nothing is read, and
        // a large upload takes longer than any fixed limit. A dead peer is noticed by
        // TCP keepalive instead.
        let bulk = builder()
            .tcp_keepalive(Duration::from_secs(15))
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            base: format!("https://{}", endpoint.domain),
            endpoint,
            http,
            bulk,
            rate_limited_until: std::sync::Mutex::new(None),
        })
    }

    /// How much longer the provider's last `429` asked us to wait, if at all.
    pub fn rate_limited_for(&self) -> Option<Duration> {
        let until = *self
            .rate_limited_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        until.and_then(|t| t.checked_duration_since(std::time::Instant::now()))
    }

    /// Remembers a `429`'s retry-after (see [`Transport::rate_limited_for`]).
    fn note<R>(&self, r: Result<R, ClientError>) -> Result<R, ClientError> {
        if let Err(ClientError::RateLimited {
            retry_after_secs, ..
        }) = &r
        {
            *self
                .rate_limited_until
                .lock()
                .unwrap_or_else(|p| p.into_inner()) =
                Some(std::time::Instant::now() + Duration::from_secs(*retry_after_secs));
        }
        r
    }

    /// An unauthenticated JSON request.
    pub async fn public<B: Serialize, R: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b).map_err(|e| ClientError::Bug(e.to_string()))?);
        }
        decode(
            req.send()
                .await
                .map_err(|e| unreachable(&self.endpoint.domain, &e))?,
        )
        .await
    }

    /// A JSON request signed with the client's key.
    pub async fn signed<B: Serialize, R: DeserializeOwned>(
        &self,
        client: &str,
        signer: &SignatureKeyPair,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::Bug(e.to_string()))?,
            None => Vec::new(),
        };
        let auth = auth_header(client, signer, method.as_str(), path, &bytes)?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(api::AUTH_HEADER, auth);
        if body.is_some() {
            req = req.header("content-type", "application/json").body(bytes);
        }
        let r = decode(
            req.send()
                .await
                .map_err(|e| unreachable(&self.endpoint.domain, &e))?,
        )
        .await;
        self.note(r)
    }

    /// A signed `GET` for a large answer (a blob download through the provider),
    /// returned as it starts to arrive. `range_start` asks for the bytes from there on.
    pub async fn signed_download(
        &self,
        client: &str,
        signer: &SignatureKeyPair,
        path: &str,
        range_start: u64,
    ) -> Result<reqwest::Response, ClientError> {
        let auth = auth_header(client, signer, "GET", path, &[])?;
        let mut req = self
            .bulk
            .get(format!("{}{path}", self.base))
            .header(api::AUTH_HEADER, auth);
        if range_start > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={range_start}-"));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| unreachable(&self.endpoint.domain, &e))?;
        error_for_status(resp).await
    }

    /// A direct `GET` of a blob URL at any provider (unauthenticated: the URL is the
    /// capability). Reveals our address to that provider.
    pub async fn direct_download(
        &self,
        url: &str,
        domain: &str,
        range_start: u64,
    ) -> Result<reqwest::Response, ClientError> {
        let mut req = self.bulk.get(url);
        if range_start > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={range_start}-"));
        }
        let resp = req.send().await.map_err(|e| unreachable(domain, &e))?;
        error_for_status(resp).await
    }

    /// `PATCH /v1/blobs/{id}`: streams `body` into an upload from `offset`.
    pub async fn upload_blob(
        &self,
        id: &str,
        token: &str,
        offset: u64,
        body: reqwest::Body,
    ) -> Result<entente_wire::blobs::UploadStatus, ClientError> {
        let resp = self
            .bulk
            .patch(format!("{}/v1/blobs/{id}", self.base))
            .header(entente_wire::blobs::UPLOAD_TOKEN_HEADER, token)
            .header(
                entente_wire::blobs::UPLOAD_OFFSET_HEADER,
                offset.to_string(),
            )
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(&self.endpoint.domain, &e))?;
        decode(resp).await
    }

    /// `GET /v1/blobs/{id}/upload`: how much of an upload the provider has.
    pub async fn upload_status(
        &self,
        id: &str,
        token: &str,
    ) -> Result<entente_wire::blobs::UploadStatus, ClientError> {
        let resp = self
            .http
            .get(format!("{}/v1/blobs/{id}/upload", self.base))
            .header(entente_wire::blobs::UPLOAD_TOKEN_HEADER, token)
            .send()
            .await
            .map_err(|e| unreachable(&self.endpoint.domain, &e))?;
        decode(resp).await
    }

    /// Opens the push WebSocket, asking for items after `after`.
    pub async fn websocket(
        &self,
        client: &str,
        signer: &SignatureKeyPair,
        after: u64,
    ) -> Result<PushSocket, ClientError> {
        let path = format!("/v1/inbox/ws?after={after}");
        let auth = auth_header(client, signer, "GET", &path, &[])?;
        let url = format!("wss://{}{path}", self.endpoint.domain);
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(url.as_str())
            .map_err(|e| ClientError::Bug(e.to_string()))?;
        request.headers_mut().insert(
            api::AUTH_HEADER,
            auth.parse()
                .map_err(|_| ClientError::Bug("auth header".into()))?,
        );
        let addr = match self.endpoint.address {
            Some(a) => a,
            None => tokio::net::lookup_host((self.endpoint.domain.as_str(), 443))
                .await
                .map_err(|e| ClientError::Unreachable(format!("{}: {e}", self.endpoint.domain)))?
                .next()
                .ok_or_else(|| {
                    ClientError::Unreachable(format!("{}: no address", self.endpoint.domain))
                })?,
        };
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Unreachable(format!("{}: {e}", self.endpoint.domain)))?;
        let _ = tcp.set_nodelay(true);
        let mut tls = (*self.endpoint.tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let (ws, _) = tokio_tungstenite::client_async_tls_with_config(
            request,
            tcp,
            None,
            Some(tokio_tungstenite::Connector::Rustls(Arc::new(tls))),
        )
        .await
        .map_err(|e| {
            ClientError::Unreachable(format!("WebSocket to {}: {e}", self.endpoint.domain))
        })?;
        Ok(PushSocket { ws })
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The push channel: yields inbox items; acks go back on it.
pub struct PushSocket {
    ws: Ws,
}

impl PushSocket {
    /// The next inbox item, or `None` when the provider closed the socket.
    pub async fn next_item(&mut self) -> Result<Option<api::InboxItem>, ClientError> {
        while let Some(msg) = self.ws.next().await {
            let msg = msg.map_err(|e| ClientError::Unreachable(format!("WebSocket: {e}")))?;
            match msg {
                tungstenite::Message::Text(t) => {
                    match serde_json::from_str::<api::PushFrame>(&t)
                        .map_err(|e| ClientError::Protocol(format!("push frame: {e}")))?
                    {
                        api::PushFrame::Item(item) => return Ok(Some(item)),
                        api::PushFrame::Acked { .. } => {}
                    }
                }
                tungstenite::Message::Close(_) => return Ok(None),
                _ => {}
            }
        }
        Ok(None)
    }

    pub async fn ack(&mut self, up_to: u64) -> Result<(), ClientError> {
        let text = serde_json::to_string(&api::Ack { up_to })
            .map_err(|e| ClientError::Bug(e.to_string()))?;
        self.ws
            .send(tungstenite::Message::Text(text.into()))
            .await
            .map_err(|e| ClientError::Unreachable(format!("WebSocket: {e}")))
    }
}

fn auth_header(
    client: &str,
    signer: &SignatureKeyPair,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<String, ClientError> {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut n = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut n);
    let nonce = hex::encode(n);
    let msg =
        api::signed_request_message(method, path, ts, &nonce, &hex::encode(Sha256::digest(body)));
    let sig = signer
        .sign(&msg)
        .map_err(|e| ClientError::Bug(format!("signing: {e:?}")))?;
    Ok(format!(
        r#"{} client="{client}", ts="{ts}", nonce="{nonce}", sig="{}""#,
        api::AUTH_SCHEME,
        b64::encode(&sig)
    ))
}

fn unreachable(domain: &str, e: &reqwest::Error) -> ClientError {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    ClientError::Unreachable(format!("{domain}: {s}"))
}

/// The response if it is a success; otherwise the provider's error.
async fn error_for_status(resp: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    match decode::<serde_json::Value>(resp).await {
        Err(e) => Err(e),
        Ok(_) => Err(ClientError::Protocol(
            "an error status with a success body".into(),
        )),
    }
}

async fn decode<R: DeserializeOwned>(resp: reqwest::Response) -> Result<R, ClientError> {
    let status = resp.status();
    let retry_header: Option<u64> = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ClientError::Unreachable(e.to_string()))?;
    if status.is_success() {
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("provider answered invalid JSON: {e}")))
    } else {
        let err: ApiError = serde_json::from_slice(&bytes).unwrap_or(ApiError {
            code: "http".into(),
            message: format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
            retry_after_secs: None,
        });
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(ClientError::RateLimited {
                retry_after_secs: err.retry_after_secs.or(retry_header).unwrap_or(1).max(1),
                message: err.message,
            });
        }
        Err(ClientError::Provider {
            status: status.as_u16(),
            code: err.code,
            message: err.message,
            retry_after_secs: err.retry_after_secs,
        })
    }
}
