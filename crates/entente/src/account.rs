//! Account commands: create, link devices, chat, send, listen, history, safety
//! numbers. State lives in `--home` (default `~/.entente`, or `$ENTENTE_HOME`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use entente_client::{
    Client, ClientOptions, Conversation, DirectEntry, Endpoint, Event, HistoryEntry, Mechanism,
    Protocols,
};
use entente_wire::ids::{RoomId, UserId};
use serde::{Deserialize, Serialize};

#[derive(Args, Clone)]
pub struct Common {
    /// Directory holding this device's keys and history.
    #[arg(long, global = true, env = "ENTENTE_HOME")]
    home: Option<PathBuf>,
    /// Print JSON instead of text, for scripts.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Manage this device's account.
    #[command(subcommand)]
    Account(AccountSub),
    /// Manage devices of your account.
    #[command(subcommand)]
    Device(DeviceSub),
    /// Start a 1:1 chat with a user (on any provider). Prints the room.
    Chat {
        /// e.g. bob@b.example
        user: String,
    },
    /// Send a message.
    Send {
        /// The recipient (a 1:1 chat is started if there is none).
        #[arg(long, conflicts_with = "room")]
        to: Option<String>,
        /// A room URI from `entente rooms`.
        #[arg(long)]
        room: Option<String>,
        /// The message text.
        text: String,
        /// Send as markdown (text/markdown;variant=GFM-MIMI).
        #[arg(long)]
        markdown: bool,
    },
    /// Stream incoming messages until interrupted.
    Listen {},
    /// Fetch and process waiting messages once, send any that failed to go out
    /// earlier, then exit.
    Sync {},
    /// Show a conversation.
    History {
        #[arg(long, conflicts_with = "room")]
        with: Option<String>,
        #[arg(long)]
        room: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// List your rooms and their members.
    Rooms {},
    /// Show what a user's provider and devices speak, and how a message to them
    /// would travel: an MLS room, or the Signal Double Ratchet.
    Contact {
        /// e.g. bob@b.example
        user: String,
    },
    /// Accept a user's new identity key after their key changed (a new phone, a
    /// reinstall, or an impersonation attempt: check their safety number first).
    /// Messages held since the change are decrypted then.
    Trust {
        /// e.g. bob@b.example
        user: String,
    },
    /// Show the safety number of your conversation with a user; compare it with
    /// theirs in person or on a call. With --verify, record that it matched.
    SafetyNumber {
        user: String,
        /// The number they read to you.
        #[arg(long)]
        verify: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum AccountSub {
    /// Create an account on its provider, with this machine as its first device.
    ///
    /// Example: entente account create alice@a.example --device laptop
    ///   --address 127.0.0.1:8443 --ca ca/ca.crt
    Create(ConnectArgs),
    /// Show this device's identity.
    Show {},
}

#[derive(Subcommand)]
pub enum DeviceSub {
    /// Print a one-time code (valid 10 minutes) to add another device.
    Link {},
    /// Add this machine as a new device of an existing account.
    Add {
        #[command(flatten)]
        connect: ConnectArgs,
        /// The code from `entente device link` on an existing device.
        #[arg(long)]
        code: String,
    },
}

#[derive(Args, Clone)]
pub struct ConnectArgs {
    /// Your user, e.g. alice@a.example.
    user: String,
    /// A name for this device.
    #[arg(long, default_value = "device")]
    device: String,
    /// Connect to this address instead of looking the domain up in DNS.
    #[arg(long)]
    address: Option<SocketAddr>,
    /// Trust this CA certificate (PEM) instead of the system's roots.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Where another provider is, as domain=host:port (repeatable). Only direct file
    /// downloads (`entente file get --direct`) use it, in local federations.
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<(String, SocketAddr)>,
    /// Make this a device that speaks only the Signal-compatible Double Ratchet
    /// (no MLS): others reach it over the Signal channel, never in MIMI rooms.
    #[arg(long)]
    signal_only: bool,
}

fn parse_peer(s: &str) -> Result<(String, SocketAddr), String> {
    let (d, a) = s
        .split_once('=')
        .ok_or_else(|| "expected domain=host:port, e.g. b.example=127.0.0.1:9443".to_owned())?;
    let addr = a
        .parse()
        .map_err(|e| format!("{a}: {e}; expected host:port, e.g. 127.0.0.1:9443"))?;
    Ok((d.to_owned(), addr))
}

/// Stored next to the device's database.
#[derive(Serialize, Deserialize)]
struct DeviceConfig {
    domain: String,
    address: Option<SocketAddr>,
    ca: Option<PathBuf>,
    #[serde(default)]
    peers: Vec<(String, SocketAddr)>,
}

fn home(c: &Common) -> PathBuf {
    c.home.clone().unwrap_or_else(crate::default_home)
}

fn endpoint(cfg: &DeviceConfig) -> Result<Endpoint> {
    let anchors = match &cfg.ca {
        Some(p) => entente_tls::TrustAnchors::from_pem_file(p)?,
        None => entente_tls::TrustAnchors::webpki(),
    };
    Ok(Endpoint {
        domain: cfg.domain.clone(),
        address: cfg.address,
        tls: entente_tls::client_config(&anchors, None)?,
        peers: cfg.peers.clone(),
    })
}

pub(crate) async fn open(c: &Common) -> Result<Client> {
    let dir = home(c);
    let cfg_path = dir.join("device.toml");
    let text = std::fs::read_to_string(&cfg_path).with_context(|| {
        format!(
            "no device at {}; create an account with `entente account create USER` or pass --home",
            dir.display()
        )
    })?;
    let cfg: DeviceConfig =
        toml::from_str(&text).with_context(|| format!("reading {}", cfg_path.display()))?;
    Ok(Client::open(ClientOptions {
        data_dir: dir,
        endpoint: endpoint(&cfg)?,
    })
    .await?)
}

async fn connect(a: &ConnectArgs, common: &Common, code: Option<&str>) -> Result<()> {
    let user = UserId::parse_any(&a.user)?;
    let dir = home(common);
    let ca =
        a.ca.as_ref()
            .map(std::fs::canonicalize)
            .transpose()
            .context("--ca")?;
    let cfg = DeviceConfig {
        domain: user.domain().to_string(),
        address: a.address,
        ca,
        peers: a.peers.clone(),
    };
    let protocols = if a.signal_only {
        Protocols::SignalOnly
    } else {
        Protocols::MlsAndSignal
    };
    let client = Client::register_with(
        ClientOptions {
            data_dir: dir.clone(),
            endpoint: endpoint(&cfg)?,
        },
        &user,
        &a.device,
        code,
        protocols,
    )
    .await?;
    std::fs::write(dir.join("device.toml"), toml::to_string_pretty(&cfg)?)?;
    if common.json {
        println!(
            "{}",
            serde_json::json!({ "client": client.id().to_string(), "home": dir })
        );
    } else {
        println!(
            "Registered {} as {} (state in {})",
            user.handle(),
            client.id(),
            dir.display()
        );
    }
    Ok(())
}

pub(crate) fn parse_user(s: &str) -> Result<UserId> {
    Ok(UserId::parse_any(s)?)
}

pub(crate) fn parse_room(s: &str) -> Result<RoomId> {
    Ok(s.parse::<RoomId>()?)
}

/// The 1:1 room with `peer`: the first room whose members are exactly us and them.
pub(crate) fn direct_room(client: &Client, peer: &UserId) -> Result<Option<RoomId>> {
    for r in client.rooms()? {
        if r.members.len() == 2 && r.members.contains(peer) && r.members.contains(client.user()) {
            return Ok(Some(r.room));
        }
    }
    Ok(None)
}

fn print_entry(e: &HistoryEntry, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "room": e.room.to_string(), "sender": e.sender.handle(), "device": e.sender_client.to_string(),
                "message_id": hex::encode(e.message_id), "timestamp_ms": e.timestamp_ms, "text": e.text, "outgoing": e.outgoing, "pending": e.pending,
            })
        );
    } else {
        let who = if e.outgoing {
            "me".to_owned()
        } else {
            e.sender.handle()
        };
        println!(
            "[{}] {}: {}{}",
            format_ts(e.timestamp_ms),
            who,
            e.text
                .clone()
                .or_else(|| attachment_line(e))
                .as_deref()
                .unwrap_or("(non-text content)"),
            if e.pending {
                "  (not sent yet: run `entente sync` to retry)"
            } else {
                ""
            }
        );
    }
}

/// "[file] name (size): entente file get ID" for a message with an attachment.
fn attachment_line(e: &HistoryEntry) -> Option<String> {
    let content = entente_wire::content::MimiContent::decode(&e.content).ok()?;
    let entente_wire::content::PartBody::External(part) = &content.nested_part.body else {
        return None;
    };
    Some(format!(
        "[file] {} ({} bytes{}): entente file get {}",
        part.filename,
        part.size.saturating_sub(16),
        if part.description.is_empty() {
            String::new()
        } else {
            format!(", \"{}\"", part.description)
        },
        &hex::encode(e.message_id)[..12]
    ))
}

fn format_ts(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

/// A Signal-channel message: "[time] (DR) who: text" or "[time] (group abc123) who: text".
pub(crate) fn print_direct(e: &DirectEntry, json: bool) {
    let conv = match &e.conversation {
        Conversation::Direct(_) => "double-ratchet".to_owned(),
        Conversation::Group(g) => format!("group {}", &hex::encode(g)[..12]),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "conversation": e.conversation.to_string(), "via": conv, "sender": e.sender.handle(),
                "device": e.sender_client.to_string(), "message_id": hex::encode(e.message_id),
                "timestamp_ms": e.timestamp_ms, "text": e.text, "outgoing": e.outgoing,
            })
        );
    } else {
        let who = if e.outgoing {
            "me".to_owned()
        } else {
            e.sender.handle()
        };
        println!(
            "[{}] ({conv}) {who}: {}",
            format_ts(e.timestamp_ms),
            e.text.as_deref().unwrap_or("(non-text content)")
        );
    }
}

pub(crate) fn print_event(e: &Event, json: bool) {
    match e {
        Event::Message(m) => print_entry(m, json),
        Event::Joined { room, members } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"event": "joined", "room": room.to_string(), "members": members.iter().map(|m| m.handle()).collect::<Vec<_>>()})
                );
            } else {
                println!(
                    "* joined {room} with {}",
                    members
                        .iter()
                        .map(|m| m.handle())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Event::MembersChanged { room, members } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"event": "members", "room": room.to_string(), "members": members.iter().map(|m| m.handle()).collect::<Vec<_>>()})
                );
            } else {
                println!(
                    "* {room} now has {}",
                    members
                        .iter()
                        .map(|m| m.handle())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Event::Removed { room } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"event": "removed", "room": room.to_string()})
                );
            } else {
                println!("* you are no longer in {room}");
            }
        }
        Event::ProposalPending { .. } => {}
        Event::Direct(d) => print_direct(d, json),
        Event::IdentityChanged { user, client } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"event": "identity_changed", "user": user.handle(), "device": client.to_string()})
                );
            } else {
                println!(
                    "! {}'s identity key changed (device {client}). Their messages are held, not decrypted. \
                     Compare safety numbers, then run `entente trust {}`",
                    user.handle(),
                    user.handle()
                );
            }
        }
        Event::Call {
            room,
            from,
            message,
        } => {
            use entente_client::calls::CallSignal;
            let what = match &message.signal {
                CallSignal::Offer { .. } => "is calling",
                CallSignal::Answer { .. } => "answered",
                CallSignal::Candidates { .. } => "sent call candidates",
                CallSignal::Hangup => "hung up",
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"event": "call", "room": room.to_string(), "from": from.to_string(), "call": hex::encode(message.call_id), "signal": what})
                );
            } else if matches!(
                message.signal,
                CallSignal::Offer { .. } | CallSignal::Hangup
            ) {
                println!(
                    "* {} {what} in {room} (call {}); `entente answer` takes the call",
                    from.user().handle(),
                    &hex::encode(message.call_id)[..12]
                );
            }
        }
        Event::DirectGroupChanged {
            group,
            name,
            members,
        } => {
            let members: Vec<String> = members.iter().map(|m| m.handle()).collect();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"event": "group", "group": hex::encode(group), "name": name, "members": members})
                );
            } else {
                println!(
                    "* group {} \"{name}\" now has {}",
                    &hex::encode(group)[..12],
                    members.join(", ")
                );
            }
        }
        Event::Rejected { room, reason } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"event": "rejected", "room": room, "reason": reason})
                );
            } else {
                println!("! dropped an invalid message in {room}: {reason}");
            }
        }
    }
}

pub async fn run(c: AccountCommand, common: Common) -> Result<()> {
    match c {
        AccountCommand::Account(AccountSub::Create(a)) => connect(&a, &common, None).await,
        AccountCommand::Account(AccountSub::Show {}) => {
            let client = open(&common).await?;
            if common.json {
                println!(
                    "{}",
                    serde_json::json!({"user": client.user().handle(), "client": client.id().to_string()})
                );
            } else {
                println!("{} (device {})", client.user().handle(), client.id());
            }
            Ok(())
        }
        AccountCommand::Device(DeviceSub::Link {}) => {
            let client = open(&common).await?;
            let code = client.link_code().await?;
            if common.json {
                println!("{}", serde_json::json!({"code": code}));
            } else {
                println!(
                    "Link code: {code}\nOn the new device: entente device add {} --device NAME --code {code}",
                    client.user().handle()
                );
            }
            Ok(())
        }
        AccountCommand::Device(DeviceSub::Add { connect: a, code }) => {
            connect(&a, &common, Some(&code)).await
        }
        AccountCommand::Chat { user } => {
            let mut client = open(&common).await?;
            client.sync().await?;
            let peer = parse_user(&user)?;
            let room = match direct_room(&client, &peer)? {
                Some(r) => r,
                None => {
                    let choice = client.channel_to(&peer).await?;
                    if choice.mechanism == Mechanism::DoubleRatchet {
                        if common.json {
                            println!(
                                "{}",
                                serde_json::json!({"user": peer.handle(), "mechanism": "double-ratchet", "reason": choice.reason})
                            );
                        } else {
                            println!(
                                "Chat with {} over the {choice}.\nSend with: entente send --to {} TEXT",
                                peer.handle(),
                                peer.handle()
                            );
                        }
                        return Ok(());
                    }
                    client.start_chat(&peer).await?
                }
            };
            if common.json {
                println!(
                    "{}",
                    serde_json::json!({"room": room.to_string(), "mechanism": "mls"})
                );
            } else {
                println!("Chat with {} (MLS room): {room}", peer.handle());
            }
            Ok(())
        }
        AccountCommand::Send {
            to,
            room,
            text,
            markdown,
        } => {
            let mut client = open(&common).await?;
            client.sync().await?;
            let room = match (to, room) {
                (Some(u), _) => {
                    let peer = parse_user(&u)?;
                    match direct_room(&client, &peer)? {
                        Some(r) => r,
                        None => {
                            let choice = client.channel_to(&peer).await?;
                            if choice.mechanism == Mechanism::DoubleRatchet {
                                let id = client.send_direct_text(&peer, &text, markdown).await?;
                                if common.json {
                                    println!(
                                        "{}",
                                        serde_json::json!({"to": peer.handle(), "mechanism": "double-ratchet", "reason": choice.reason, "message_id": hex::encode(id)})
                                    );
                                } else {
                                    println!("sent to {} over the {choice}", peer.handle());
                                }
                                return Ok(());
                            }
                            client.start_chat(&peer).await?
                        }
                    }
                }
                (None, Some(r)) => parse_room(&r)?,
                (None, None) => bail!("say where to send: --to USER or --room ROOM"),
            };
            let id = client.send_text(&room, &text, markdown).await?;
            if common.json {
                println!(
                    "{}",
                    serde_json::json!({"room": room.to_string(), "message_id": hex::encode(id)})
                );
            } else {
                println!("sent to {room}");
            }
            Ok(())
        }
        AccountCommand::Listen {} => {
            let mut client = open(&common).await?;
            let json = common.json;
            if !json {
                eprintln!("listening as {} (Ctrl-C to stop)", client.user().handle());
            }
            client
                .listen(|e| print_event(e, json), async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(())
        }
        AccountCommand::Sync {} => {
            let mut client = open(&common).await?;
            for e in client.sync().await? {
                print_event(&e, common.json);
            }
            client.resend_direct().await?;
            let resent = client.resend_pending().await?;
            if !resent.is_empty() && !common.json {
                println!(
                    "sent {} message(s) that were waiting in the outbox",
                    resent.len()
                );
            }
            crate::moderation_cmd::show_unread_notices(&client, common.json).await;
            Ok(())
        }
        AccountCommand::History { with, room, limit } => {
            let mut client = open(&common).await?;
            client.sync().await?;
            let room = match (with, room) {
                (Some(u), _) => {
                    let peer = parse_user(&u)?;
                    match direct_room(&client, &peer)? {
                        Some(r) => r,
                        None => {
                            let entries = client
                                .direct_history(&Conversation::Direct(peer.clone()), limit)?;
                            if entries.is_empty() {
                                bail!("no chat with {u} yet");
                            }
                            for e in &entries {
                                print_direct(e, common.json);
                            }
                            return Ok(());
                        }
                    }
                }
                (None, Some(r)) => parse_room(&r)?,
                (None, None) => bail!("say which conversation: --with USER or --room ROOM"),
            };
            for e in client.history(&room, limit)? {
                print_entry(&e, common.json);
            }
            Ok(())
        }
        AccountCommand::Contact { user } => {
            let client = open(&common).await?;
            let peer = parse_user(&user)?;
            let caps = client.capabilities(&peer).await?;
            let choice = client.channel_to(&peer).await;
            if common.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "user": peer.handle(), "provider_rooms": caps.provider_rooms, "provider_signal": caps.provider_signal,
                        "devices": caps.clients.iter().map(|c| serde_json::json!({"device": c.client, "protocols": c.protocols})).collect::<Vec<_>>(),
                        "mechanism": choice.as_ref().ok().map(|c| match c.mechanism { Mechanism::MlsRoom => "mls", Mechanism::DoubleRatchet => "double-ratchet" }),
                        "reason": choice.as_ref().map(|c| c.reason.clone()).unwrap_or_else(|e| e.to_string()),
                    })
                );
            } else {
                println!(
                    "{}: provider {} (MLS rooms: {}, Signal channel: {})",
                    peer.handle(),
                    peer.domain(),
                    if caps.provider_rooms { "yes" } else { "no" },
                    if caps.provider_signal { "yes" } else { "no" }
                );
                for c in &caps.clients {
                    println!("  device {}: {}", c.client, c.protocols.join(", "));
                }
                match choice {
                    Ok(c) => println!("Messages to {} go over the {c}.", peer.handle()),
                    Err(e) => println!("Cannot reach {}: {e}", peer.handle()),
                }
            }
            Ok(())
        }
        AccountCommand::Trust { user } => {
            let mut client = open(&common).await?;
            client.sync().await?;
            let peer = parse_user(&user)?;
            let events = client.trust_new_identity(&peer).await?;
            if !common.json {
                println!(
                    "Now trusting {}'s new identity key; {} held message(s) decrypted.",
                    peer.handle(),
                    events.len()
                );
            }
            for e in &events {
                print_event(e, common.json);
            }
            Ok(())
        }
        AccountCommand::Rooms {} => {
            let mut client = open(&common).await?;
            client.sync().await?;
            for r in client.rooms()? {
                let members: Vec<String> = r.members.iter().map(|m| m.handle()).collect();
                if common.json {
                    println!(
                        "{}",
                        serde_json::json!({"room": r.room.to_string(), "epoch": r.epoch, "members": members})
                    );
                } else {
                    println!("{}  (epoch {})  {}", r.room, r.epoch, members.join(", "));
                }
            }
            Ok(())
        }
        AccountCommand::SafetyNumber { user, verify } => {
            let mut client = open(&common).await?;
            client.sync().await?;
            let peer = parse_user(&user)?;
            if let Some(n) = verify {
                client.verify_safety_number(&peer, &n)?;
                println!(
                    "Verified: your conversation with {} is with the devices you both see.",
                    peer.handle()
                );
                return Ok(());
            }
            let number = client.safety_number(&peer)?.with_context(|| {
                format!(
                    "you share no room with {} yet; start a chat first",
                    peer.handle()
                )
            })?;
            let verified = client.is_verified(&peer)?;
            if common.json {
                println!(
                    "{}",
                    serde_json::json!({"user": peer.handle(), "safety_number": number, "verified": verified})
                );
            } else {
                println!(
                    "Safety number with {}:\n  {}",
                    peer.handle(),
                    entente_core::identity::format_safety_number(&number)
                );
                println!(
                    "{}",
                    if verified {
                        "(verified)"
                    } else {
                        "(not verified: compare it with theirs, then run with --verify)"
                    }
                );
            }
            Ok(())
        }
    }
}
