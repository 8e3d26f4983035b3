//! Dev-only: real Entente providers on loopback for tests, benchmarks and the demo.
//!
//! A [`Federation`] makes a throwaway CA, issues each provider a certificate for its
//! domain, writes each provider's config and data directory under one root, and
//! starts them with real TLS and real SQLite on 127.0.0.1. Providers can be stopped,
//! killed (as in a crash) and restarted on the same address.
//!
//! [`python`] gives interop tests a Python with pinned packages.
#![forbid(unsafe_code)]

pub mod python;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use entente_client::{ClientOptions, Endpoint};
use entente_provider::config::{Config, FederationConfig, TlsConfig};
use entente_provider::{Provider, ProviderHandle};
use entente_tls::DevCa;

/// One provider of the federation.
pub struct Member {
    pub config: Config,
    pub handle: Option<ProviderHandle>,
    /// Spam filters given to the provider when it starts (see
    /// [`Federation::add_spam_filter`]).
    pub spam_filters: Vec<std::sync::Arc<dyn entente_provider::spam::SpamFilter>>,
}

/// Several providers federating on loopback.
pub struct Federation {
    root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    ca: DevCa,
    pub members: BTreeMap<String, Member>,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

impl Federation {
    /// Starts providers for `domains` in a fresh temporary directory.
    pub async fn start(domains: &[&str]) -> Result<Self> {
        let tmp = tempfile::tempdir().context("creating a temporary directory")?;
        let root = tmp.path().to_owned();
        let mut f = Self::create(&root, domains)?;
        f._tmp = Some(tmp);
        f.start_all().await?;
        Ok(f)
    }

    /// Starts providers for `domains` in a fresh temporary directory, after
    /// `configure` adjusted each one's configuration (called with its domain).
    ///
    /// Providers here run with `[consent] mode = "open"` unless a test asks
    /// otherwise, because most tests invite users who never accepted a request.
    /// Tests of consent use [`Federation::require_consent`]:
    ///
    /// ```no_run
    /// # async fn f() -> anyhow::Result<()> {
    /// use entente_testkit::Federation;
    /// let fed = Federation::start_with(&["a.example", "b.example"], Federation::require_consent).await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_with(
        domains: &[&str],
        configure: impl Fn(&str, &mut Config),
    ) -> Result<Self> {
        let tmp = tempfile::tempdir().context("creating a temporary directory")?;
        let root = tmp.path().to_owned();
        let mut f = Self::create(&root, domains)?;
        f._tmp = Some(tmp);
        for (d, m) in f.members.iter_mut() {
            configure(d, &mut m.config);
            std::fs::write(root.join(d).join("provider.toml"), m.config.to_toml()?)?;
        }
        f.start_all().await?;
        Ok(f)
    }

    /// For [`Federation::start_with`]: the product default, `[consent] mode =
    /// "required"` (strangers get no key material until accepted).
    pub fn require_consent(_domain: &str, config: &mut Config) {
        config.consent.mode = entente_provider::consent::ConsentMode::Required;
    }

    /// [`Federation::start_in`], after `configure` adjusted each provider's
    /// configuration (see [`Federation::start_with`]).
    pub async fn start_in_with(
        root: &Path,
        domains: &[&str],
        configure: impl Fn(&str, &mut Config),
    ) -> Result<Self> {
        let mut f = Self::create(root, domains)?;
        for (d, m) in f.members.iter_mut() {
            configure(d, &mut m.config);
            std::fs::write(root.join(d).join("provider.toml"), m.config.to_toml()?)?;
        }
        f.start_all().await?;
        Ok(f)
    }

    /// Starts providers for `domains` under `root` (kept afterwards).
    pub async fn start_in(root: &Path, domains: &[&str]) -> Result<Self> {
        let mut f = Self::create(root, domains)?;
        f.start_all().await?;
        Ok(f)
    }

    /// Writes the CA, each provider's certificate and its `provider.toml` (see
    /// [`Federation::config_path`]) for `domains` under `root` (kept afterwards), and
    /// starts nothing: for providers run elsewhere, such as separate processes of
    /// `entente provider run --config`. Each gets a port that is free now.
    pub fn prepare_in(root: &Path, domains: &[&str]) -> Result<Self> {
        Self::create(root, domains)
    }

    /// The configuration file written for `domain`.
    pub fn config_path(&self, domain: &str) -> Result<PathBuf> {
        if !self.members.contains_key(domain) {
            anyhow::bail!("no provider {domain} in this federation");
        }
        Ok(self.root.join(domain).join("provider.toml"))
    }

    fn create(root: &Path, domains: &[&str]) -> Result<Self> {
        entente_tls::install_crypto_provider();
        std::fs::create_dir_all(root)?;
        let ca = DevCa::generate("Entente throwaway CA (tests)")?;
        ca.save(root.join("ca"))?;
        let addrs: BTreeMap<String, SocketAddr> = domains
            .iter()
            .map(|d| {
                Ok((
                    d.to_string(),
                    SocketAddr::from(([127, 0, 0, 1], free_port()?)),
                ))
            })
            .collect::<Result<_>>()?;
        let mut members = BTreeMap::new();
        for d in domains {
            let dir = root.join(d);
            std::fs::create_dir_all(&dir)?;
            ca.issue(d)?.save(&dir, "provider")?;
            let peers = addrs
                .iter()
                .filter(|(p, _)| p.as_str() != *d)
                .map(|(p, a)| (p.clone(), a.to_string()))
                .collect();
            let mut config = Config::new(
                d.to_string(),
                addrs[*d],
                dir.join("data"),
                TlsConfig {
                    certificate: dir.join("provider.crt"),
                    private_key: dir.join("provider.key"),
                    trust: root
                        .join("ca")
                        .join("ca.crt")
                        .to_string_lossy()
                        .into_owned(),
                },
            );
            config.federation = FederationConfig { peers };
            // Existing tests invite strangers: consent is opt-in here (see
            // `Federation::start_with` and `Federation::require_consent`).
            config.consent.mode = entente_provider::consent::ConsentMode::Open;
            // Rate limits stay on, but far above what any test or load driver
            // sends; tests of the limits set their own (`Federation::start_with`).
            config.rate_limits = entente_provider::ratelimit::RateLimitConfig::uniform(
                entente_provider::ratelimit::Rate::new(1e6, 1_000_000),
            );
            std::fs::write(dir.join("provider.toml"), config.to_toml()?)?;
            members.insert(
                d.to_string(),
                Member {
                    config,
                    handle: None,
                    spam_filters: Vec::new(),
                },
            );
        }
        Ok(Self {
            root: root.to_owned(),
            _tmp: None,
            ca,
            members,
        })
    }

    async fn start_all(&mut self) -> Result<()> {
        let names: Vec<String> = self.members.keys().cloned().collect();
        for d in names {
            self.restart(&d).await?;
        }
        Ok(())
    }

    fn member(&mut self, domain: &str) -> Result<&mut Member> {
        self.members
            .get_mut(domain)
            .with_context(|| format!("no provider {domain} in this federation"))
    }

    /// Starts (again) a stopped provider on its address.
    pub async fn restart(&mut self, domain: &str) -> Result<()> {
        let m = self.member(domain)?;
        if m.handle.is_some() {
            anyhow::bail!("{domain} is already running");
        }
        let mut last = None;
        // The port may linger briefly after a kill.
        for _ in 0..50 {
            let options = entente_provider::state::StartOptions {
                spam_filters: m.spam_filters.clone(),
            };
            match Provider::start_with(m.config.clone(), options).await {
                Ok(h) => {
                    m.handle = Some(h);
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
        Err(anyhow::anyhow!(
            "starting {domain}: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ))
    }

    /// Gives `domain`'s provider a spam filter: now if it is running, and
    /// whenever it is restarted.
    pub fn add_spam_filter(
        &mut self,
        domain: &str,
        filter: std::sync::Arc<dyn entente_provider::spam::SpamFilter>,
    ) -> Result<()> {
        let m = self.member(domain)?;
        if let Some(h) = &m.handle {
            h.state.spam.add(filter.clone());
        }
        m.spam_filters.push(filter);
        Ok(())
    }

    /// Stops a provider gracefully.
    pub async fn stop(&mut self, domain: &str) -> Result<()> {
        if let Some(h) = self.member(domain)?.handle.take() {
            h.shutdown().await;
        }
        Ok(())
    }

    /// Stops a provider abruptly, as a crash would.
    pub async fn kill(&mut self, domain: &str) -> Result<()> {
        if let Some(h) = self.member(domain)?.handle.take() {
            h.kill();
            // Let the aborted tasks and the storage writer wind down.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// How a client of `domain` reaches its provider.
    pub fn endpoint(&self, domain: &str) -> Result<Endpoint> {
        let m = self
            .members
            .get(domain)
            .with_context(|| format!("no provider {domain}"))?;
        let anchors = self.ca.trust_anchors()?;
        Ok(Endpoint {
            domain: domain.to_owned(),
            address: Some(m.config.listen),
            tls: entente_tls::client_config(&anchors, None)?,
            peers: self
                .members
                .iter()
                .filter(|(d, _)| d.as_str() != domain)
                .map(|(d, m)| (d.clone(), m.config.listen))
                .collect(),
        })
    }

    /// Registers a new account `user` (`alice@a.example`) with its first device, whose
    /// data lives in `clients/<name>-<device>`.
    pub async fn register(&self, user: &str, device: &str) -> Result<entente_client::Client> {
        let id: entente_wire::ids::UserId = user.parse().with_context(|| format!("user {user}"))?;
        let dir = format!("{}-{device}", id.name());
        Ok(entente_client::Client::register(
            self.client_options(id.domain().as_str(), &dir)?,
            &id,
            device,
            None,
        )
        .await?)
    }

    /// Options for a client device named `name` of `domain`, with its own data dir.
    pub fn client_options(&self, domain: &str, name: &str) -> Result<ClientOptions> {
        Ok(ClientOptions {
            data_dir: self.root.join("clients").join(name),
            endpoint: self.endpoint(domain)?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database_path(&self, domain: &str) -> Result<PathBuf> {
        Ok(self
            .members
            .get(domain)
            .with_context(|| format!("no provider {domain}"))?
            .config
            .database_path())
    }

    /// The running provider of `domain`.
    pub fn handle(&self, domain: &str) -> Result<&ProviderHandle> {
        self.members
            .get(domain)
            .and_then(|m| m.handle.as_ref())
            .with_context(|| format!("provider {domain} is not running"))
    }

    /// Where `domain` keeps blobs.
    pub fn blob_dir(&self, domain: &str) -> Result<PathBuf> {
        Ok(self
            .members
            .get(domain)
            .with_context(|| format!("no provider {domain}"))?
            .config
            .blob_dir())
    }

    /// Stops every provider.
    pub async fn shutdown(mut self) {
        for m in self.members.values_mut() {
            if let Some(h) = m.handle.take() {
                h.shutdown().await;
            }
        }
    }
}
