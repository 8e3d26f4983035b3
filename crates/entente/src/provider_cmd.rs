//! `entente provider ...` and `entente ca ...`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use entente_provider::config::{Config, FederationConfig, TlsConfig};
use entente_tls::DevCa;

#[derive(Subcommand)]
pub enum ProviderCommand {
    /// Write a working provider configuration (and, with --ca, a TLS certificate).
    ///
    /// Example for a local federation of two providers on one machine:
    ///
    ///   entente ca init --dir ca
    ///   entente provider init --domain a.example --dir a --listen 127.0.0.1:8443 --ca ca --peer b.example=127.0.0.1:9443
    ///   entente provider init --domain b.example --dir b --listen 127.0.0.1:9443 --ca ca --peer a.example=127.0.0.1:8443
    ///   entente provider run --config a/provider.toml &
    ///   entente provider run --config b/provider.toml &
    #[command(verbatim_doc_comment)]
    Init(InitArgs),
    /// Run a provider.
    Run {
        /// The configuration file written by `entente provider init`.
        #[arg(long, short, default_value = "provider.toml")]
        config: PathBuf,
    },
    /// List abuse reports for moderators (open ones by default).
    ///
    /// Reports "verified at our hub" were checked against the hub's franks: the
    /// messages shown are exactly what the accused sent in that room. Reports
    /// "about our user" are notices from a room's hub about one of our users. Talks
    /// to the running provider's admin API with the token in its data directory;
    /// the same is on the web at https://DOMAIN/moderation/.
    ///
    ///   entente provider reports --config a/provider.toml
    ///   entente provider reports --config a/provider.toml --all
    ///   entente provider reports --config a/provider.toml --id 7
    #[command(verbatim_doc_comment)]
    Reports(crate::moderation_cmd::ReportsArgs),
    /// Act on abuse: warn or suspend a local user, ban a remote user or domain,
    /// dismiss a report
    ///
    ///   entente provider moderate --config a/provider.toml warn alice@a.example "Please stop spamming" --report 7
    ///   entente provider moderate --config a/provider.toml suspend alice@a.example --reason "spam after warning"
    ///   entente provider moderate --config a/provider.toml unsuspend alice@a.example
    ///   entente provider moderate --config a/provider.toml ban-user mallory@m.example --reason harassment --report 9
    ///   entente provider moderate --config a/provider.toml ban-domain m.example --reason "spam source"
    ///   entente provider moderate --config a/provider.toml dismiss 8 --reason "not abuse"
    ///
    /// Every action is logged with your name (--as, default $USER) and the reason.
    #[command(verbatim_doc_comment)]
    Moderate(crate::moderation_cmd::ModerateArgs),
}

#[derive(Args)]
pub struct InitArgs {
    /// The DNS domain the provider serves (users will be name@DOMAIN).
    #[arg(long)]
    domain: String,
    /// Directory for the config, keys and database.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// A CA made by `entente ca init`: issue the provider's certificate from it and
    /// trust it for federation. Without it, put a certificate for DOMAIN at
    /// DIR/provider.crt and DIR/provider.key yourself; peers are then verified
    /// against the system's roots.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// A peer's address for a local federation, DOMAIN=HOST:PORT (repeatable).
    #[arg(long = "peer", value_name = "DOMAIN=HOST:PORT")]
    peers: Vec<String>,
    /// Overwrite an existing configuration.
    #[arg(long)]
    force: bool,
    /// Who gets your users' keys: "required" (the default: only people a user
    /// accepted, see `entente request`) or "open" (anyone they did not block).
    #[arg(long, value_name = "required|open", default_value = "required", value_parser = ["required", "open"])]
    consent: String,
}

#[derive(Subcommand)]
pub enum CaCommand {
    /// Create a throwaway CA (ca.crt, ca.key) for providers federating on one
    /// machine or a test network. Never use it in production.
    Init {
        #[arg(long, default_value = "ca")]
        dir: PathBuf,
    },
}

pub fn run_ca(c: CaCommand) -> Result<()> {
    match c {
        CaCommand::Init { dir } => {
            if dir.join("ca.key").exists() {
                bail!(
                    "{} already holds a CA; remove it first or choose another --dir",
                    dir.display()
                );
            }
            let ca = DevCa::generate("Entente local federation CA")?;
            ca.save(&dir)?;
            println!("Created a throwaway CA in {}", dir.display());
            println!(
                "Next: entente provider init --domain a.example --ca {}",
                dir.display()
            );
            Ok(())
        }
    }
}

pub async fn run(c: ProviderCommand) -> Result<()> {
    match c {
        ProviderCommand::Init(a) => init(a),
        ProviderCommand::Reports(a) => crate::moderation_cmd::reports(a).await,
        ProviderCommand::Moderate(a) => crate::moderation_cmd::moderate(a).await,
        ProviderCommand::Run { config } => {
            let cfg = Config::load(&config)?;
            let domain = cfg.domain.clone();
            let handle = entente_provider::Provider::start(cfg)
                .await
                .with_context(|| format!("starting the provider from {}", config.display()))?;
            println!(
                "{domain} is serving on https://{} (Ctrl-C to stop)",
                handle.local_addr
            );
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            println!("stopping {domain}...");
            handle.shutdown().await;
            Ok(())
        }
    }
}

fn init(a: InitArgs) -> Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let path = a.dir.join("provider.toml");
    if path.exists() && !a.force {
        bail!("{} exists; pass --force to overwrite it", path.display());
    }
    let mut peers = std::collections::BTreeMap::new();
    for p in &a.peers {
        let (d, addr) = p
            .split_once('=')
            .with_context(|| format!("--peer {p}: expected DOMAIN=HOST:PORT"))?;
        peers.insert(d.to_owned(), addr.to_owned());
    }
    let trust = match &a.ca {
        Some(ca_dir) => {
            let ca = DevCa::load(ca_dir)
                .with_context(|| format!("loading the CA in {}", ca_dir.display()))?;
            ca.issue(&a.domain)?.save(&a.dir, "provider")?;
            std::fs::canonicalize(ca_dir.join("ca.crt"))?
                .to_string_lossy()
                .into_owned()
        }
        None => "system".to_owned(),
    };
    let mut cfg = Config::new(
        a.domain.clone(),
        a.listen,
        PathBuf::from("data"),
        TlsConfig {
            certificate: PathBuf::from("provider.crt"),
            private_key: PathBuf::from("provider.key"),
            trust,
        },
    );
    cfg.federation = FederationConfig { peers };
    if a.consent == "open" {
        cfg.consent.mode = entente_provider::consent::ConsentMode::Open;
    }
    cfg.validate().map_err(|e| anyhow::anyhow!(e))?;
    std::fs::write(
        &path,
        format!("# Entente provider for {}\n{}", a.domain, cfg.to_toml()?),
    )?;
    println!("Wrote {}", path.display());
    if a.ca.is_none() {
        println!(
            "Put a TLS certificate for {} (server and client auth) at {} and its key at {}",
            a.domain,
            a.dir.join("provider.crt").display(),
            a.dir.join("provider.key").display()
        );
    }
    println!("Run it: entente provider run --config {}", path.display());
    Ok(())
}
