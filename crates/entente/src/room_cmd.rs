//! `entente room ...`: group rooms, who is in them, with which role, and their
//! name and topic.
//!
//! Every command first catches up with `sync`, so that a change is committed on
//! top of the room's latest epoch and what a command prints is current. Whether a
//! change is allowed is decided by the room's policy, which the hub enforces; we
//! do not second-guess it here, but when it refuses we say what the user's role is
//! and who can help.

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use entente_client::{Client, ClientError, Event, Participant, RoomSummary};
use entente_core::room::roles;
use entente_wire::ids::{RoomId, UserId};

use crate::account::{self, AccountCommand, Common};

/// Role names accepted on the command line, with their indices in a new room.
const ROLE_NAMES: [(&str, u32); 3] = [
    ("member", roles::MEMBER),
    ("admin", roles::ADMIN),
    ("owner", roles::OWNER),
];

#[derive(Subcommand)]
pub enum RoomCommand {
    /// Create a room, with you as its owner; prints its URI
    ///
    /// Example: entente room create --name Team
    Create {
        /// A name the members see (change it later with `entente room name`).
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Invite a user: all their devices join the room (admins and owners).
    ///
    /// Example: entente room invite mimi://a.example/r/0f3c... bob@b.example --role admin
    Invite {
        /// The room, as `entente room create` or `entente rooms` prints it.
        room: RoomId,
        /// e.g. bob@b.example
        user: UserId,
        /// The role to give them: member, admin or owner (or a role number).
        #[arg(long, default_value = "member", value_parser = parse_role)]
        role: u32,
    },
    /// Remove a user and all their devices from the room; they can be invited
    /// again (admins and owners).
    ///
    /// Example: entente room remove mimi://a.example/r/0f3c... carol@c.example
    Remove {
        /// The room.
        room: RoomId,
        /// e.g. carol@c.example
        user: UserId,
    },
    /// Remove a user and keep them out until unbanned (admins and owners).
    ///
    /// Example: entente room ban mimi://a.example/r/0f3c... mallory@m.example
    Ban {
        /// The room.
        room: RoomId,
        /// e.g. mallory@m.example
        user: UserId,
    },
    /// Lift a ban: the user becomes a member again, without devices in the room
    /// until you `entente room invite` them.
    ///
    /// Example: entente room unban mimi://a.example/r/0f3c... mallory@m.example
    Unban {
        /// The room.
        room: RoomId,
        /// e.g. mallory@m.example
        user: UserId,
    },
    /// Leave the room with all your devices.
    ///
    /// The other members' devices complete your removal the next time one of them
    /// syncs. Example: entente room leave mimi://a.example/r/0f3c...
    Leave {
        /// The room.
        room: RoomId,
    },
    /// List the participants with their roles and devices.
    ///
    /// Example: entente room members mimi://a.example/r/0f3c...
    Members {
        /// The room.
        room: RoomId,
    },
    /// Change a participant's role (admins and owners, within what their role may
    /// grant).
    ///
    /// Roles: member (send and receive), admin (also invite, remove, ban, change
    /// members' roles, name and topic), owner (everything, including managing
    /// admins and owners).
    ///
    /// Example: entente room role mimi://a.example/r/0f3c... bob@b.example admin
    Role {
        /// The room.
        room: RoomId,
        /// e.g. bob@b.example
        user: UserId,
        /// member, admin, owner, or a role number.
        #[arg(value_parser = parse_role)]
        role: u32,
    },
    /// Set the room's name (admins and owners).
    ///
    /// Example: entente room name mimi://a.example/r/0f3c... "Release team"
    Name {
        /// The room.
        room: RoomId,
        /// The new name.
        name: String,
    },
    /// Set the room's topic (admins and owners).
    ///
    /// Example: entente room topic mimi://a.example/r/0f3c... "Shipping 1.0 on Friday"
    Topic {
        /// The room.
        room: RoomId,
        /// The new topic.
        topic: String,
    },
    /// Show the room's name, topic, epoch and number of participants.
    ///
    /// Example: entente room info mimi://a.example/r/0f3c...
    Info {
        /// The room.
        room: RoomId,
    },
    /// Send a message to the room (same as `entente send --room ROOM TEXT`).
    ///
    /// Example: entente room send mimi://a.example/r/0f3c... "Hello, team"
    Send {
        /// The room.
        room: RoomId,
        /// The message text.
        text: String,
        /// Send as markdown (text/markdown;variant=GFM-MIMI).
        #[arg(long)]
        markdown: bool,
    },
    /// Stream incoming messages and room changes until interrupted; with a room,
    /// only that room's.
    ///
    /// Example: entente room listen mimi://a.example/r/0f3c...
    Listen {
        /// Only show this room's events.
        room: Option<RoomId>,
    },
}

pub async fn run(c: RoomCommand, common: Common) -> Result<()> {
    let json = common.json;
    match c {
        RoomCommand::Create { name } => {
            let mut client = open_synced(&common).await?;
            let room = client
                .create_room_named(&name)
                .await
                .map_err(|e| anyhow!(e).context("cannot create the room"))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"room": room.to_string(), "name": name})
                );
            } else {
                if name.is_empty() {
                    println!("Created room {room}");
                } else {
                    println!("Created room \"{name}\": {room}");
                }
                println!("Invite people with: entente room invite {room} USER");
            }
            Ok(())
        }
        RoomCommand::Invite { room, user, role } => {
            let mut client = open_synced(&common).await?;
            summary(&client, &room)?;
            let result = client.invite_as(&room, &user, role).await;
            explain(&client, &room, result, || {
                format!("cannot invite {} to {room}", user.handle())
            })?;
            let role = role_name(&client, &room, role);
            done(
                json,
                serde_json::json!({"room": room.to_string(), "user": user.handle(), "role": role}),
                format!("Invited {} to {room} as {role}", user.handle()),
            );
            Ok(())
        }
        RoomCommand::Remove { room, user } => {
            let mut client = open_synced(&common).await?;
            summary(&client, &room)?;
            not_self(&client, &user, &room)?;
            let result = client.remove_participant(&room, &user).await;
            explain(&client, &room, result, || {
                format!("cannot remove {} from {room}", user.handle())
            })?;
            done(
                json,
                serde_json::json!({"room": room.to_string(), "removed": user.handle()}),
                format!("Removed {} and their devices from {room}", user.handle()),
            );
            Ok(())
        }
        RoomCommand::Ban { room, user } => {
            let mut client = open_synced(&common).await?;
            summary(&client, &room)?;
            not_self(&client, &user, &room)?;
            let result = client.ban(&room, &user).await;
            explain(&client, &room, result, || {
                format!("cannot ban {} from {room}", user.handle())
            })?;
            done(
                json,
                serde_json::json!({"room": room.to_string(), "banned": user.handle()}),
                format!(
                    "Banned {} from {room}; `entente room unban {room} {}` lifts it",
                    user.handle(),
                    user.handle()
                ),
            );
            Ok(())
        }
        RoomCommand::Unban { room, user } => {
            let mut client = open_synced(&common).await?;
            summary(&client, &room)?;
            if client.room_state(&room)?.role_of(&user) != roles::BANNED {
                bail!("{} is not banned in {room}", user.handle());
            }
            let result = client.set_role(&room, &user, roles::MEMBER).await;
            explain(&client, &room, result, || {
                format!("cannot unban {} in {room}", user.handle())
            })?;
            done(
                json,
                serde_json::json!({"room": room.to_string(), "unbanned": user.handle()}),
                format!(
                    "Unbanned {} in {room}; `entente room invite {room} {}` brings their devices back",
                    user.handle(),
                    user.handle()
                ),
            );
            Ok(())
        }
        RoomCommand::Leave { room } => {
            let mut client = open_synced(&common).await?;
            summary(&client, &room)?;
            let result = client.leave(&room).await;
            explain(&client, &room, result, || format!("cannot leave {room}"))?;
            done(
                json,
                serde_json::json!({"room": room.to_string(), "left": true}),
                format!(
                    "Left {room}; the other members' devices complete your removal when they next sync"
                ),
            );
            Ok(())
        }
        RoomCommand::Members { room } => {
            let client = open_synced(&common).await?;
            summary(&client, &room)?;
            print_members(&client.participants(&room)?, json);
            Ok(())
        }
        RoomCommand::Role { room, user, role } => {
            let mut client = open_synced(&common).await?;
            summary(&client, &room)?;
            let result = client.set_role(&room, &user, role).await;
            explain(&client, &room, result, || {
                format!("cannot change the role of {} in {room}", user.handle())
            })?;
            let role = role_name(&client, &room, role);
            done(
                json,
                serde_json::json!({"room": room.to_string(), "user": user.handle(), "role": role}),
                format!("{} is now {role} in {room}", user.handle()),
            );
            Ok(())
        }
        RoomCommand::Name { room, name } => {
            let mut client = open_synced(&common).await?;
            summary(&client, &room)?;
            let result = client.set_room_name(&room, &name).await;
            explain(&client, &room, result, || format!("cannot rename {room}"))?;
            done(
                json,
                serde_json::json!({"room": room.to_string(), "name": name}),
                format!("Renamed {room} to \"{name}\""),
            );
            Ok(())
        }
        RoomCommand::Topic { room, topic } => {
            let mut client = open_synced(&common).await?;
            summary(&client, &room)?;
            let result = client.set_room_topic(&room, &topic).await;
            explain(&client, &room, result, || {
                format!("cannot set the topic of {room}")
            })?;
            done(
                json,
                serde_json::json!({"room": room.to_string(), "topic": topic}),
                format!("Set the topic of {room} to \"{topic}\""),
            );
            Ok(())
        }
        RoomCommand::Info { room } => {
            let client = open_synced(&common).await?;
            let epoch = summary(&client, &room)?.epoch;
            let state = client.room_state(&room)?;
            let name = state.metadata.room_name.as_str();
            let topic = state.metadata.room_subject.as_str();
            let participants = state.participants.len();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "room": room.to_string(), "name": name, "topic": topic,
                        "epoch": epoch, "participants": participants,
                    })
                );
            } else {
                println!("Room:         {room}");
                println!("Name:         {}", or_none(name));
                println!("Topic:        {}", or_none(topic));
                println!("Epoch:        {epoch}");
                println!("Participants: {participants}");
            }
            Ok(())
        }
        RoomCommand::Send {
            room,
            text,
            markdown,
        } => {
            let send = AccountCommand::Send {
                to: None,
                room: Some(room.to_string()),
                text,
                markdown,
            };
            account::run(send, common).await
        }
        RoomCommand::Listen { room: None } => account::run(AccountCommand::Listen {}, common).await,
        RoomCommand::Listen { room: Some(room) } => {
            let mut client = account::open(&common).await?;
            summary(&client, &room)?;
            if !json {
                eprintln!(
                    "listening to {room} as {} (Ctrl-C to stop)",
                    client.user().handle()
                );
            }
            let wanted = room.to_string();
            client
                .listen(
                    |e| {
                        if event_room(e) == wanted {
                            account::print_event(e, json);
                        }
                    },
                    async {
                        let _ = tokio::signal::ctrl_c().await;
                    },
                )
                .await?;
            Ok(())
        }
    }
}

/// Parses a role given on the command line: a name of the default roles or an
/// index. Roles 0 (not a participant) and 1 (banned) have their own commands,
/// because they also remove the user's devices.
fn parse_role(s: &str) -> Result<u32, String> {
    if s.eq_ignore_ascii_case("banned") {
        return Err("to ban a user, use `entente room ban ROOM USER`".into());
    }
    let role = match ROLE_NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
        Some((_, r)) => *r,
        None => s.parse::<u32>().map_err(|_| {
            format!("'{s}' is not a role; use member, admin, owner or a role number")
        })?,
    };
    match role {
        roles::NONE => {
            Err("role 0 means not in the room; use `entente room remove ROOM USER`".into())
        }
        roles::BANNED => Err("role 1 is the ban; use `entente room ban ROOM USER`".into()),
        r => Ok(r),
    }
}

/// Opens this device's account and catches up with everything waiting for it.
async fn open_synced(common: &Common) -> Result<Client> {
    let mut client = account::open(common).await?;
    client.sync().await?;
    Ok(client)
}

/// The room as this device has it, or an error saying how to find one it is in.
fn summary(client: &Client, room: &RoomId) -> Result<RoomSummary> {
    client
        .rooms()?
        .into_iter()
        .find(|r| &r.room == room)
        .ok_or_else(|| {
            anyhow!(
                "this device is not in {room}; `entente rooms` lists the rooms it is in \
                 (if you were just invited, the invitation may not have arrived yet: try again shortly)"
            )
        })
}

/// Refuses to remove or ban our own user: that is what leaving is for.
fn not_self(client: &Client, user: &UserId, room: &RoomId) -> Result<()> {
    if user == client.user() {
        bail!("to take yourself out of the room, use `entente room leave {room}`");
    }
    Ok(())
}

/// Turns a failed room change into an error that says what failed and, when the
/// room's policy refused it, what our role is and who can help.
fn explain(
    client: &Client,
    room: &RoomId,
    result: Result<(), ClientError>,
    what: impl FnOnce() -> String,
) -> Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(ClientError::Provider { code, message, .. }) if code == "not_allowed" => {
            let ours = client.room_state(room).map(|s| s.role_of(client.user()));
            let role = match ours {
                Ok(r) => role_name(client, room, r),
                Err(_) => "not a participant".into(),
            };
            bail!(
                "{}: {message}\n\
                 Your role in this room is {role}; ask an admin or owner \
                 (`entente room members {room}` shows who)",
                what()
            )
        }
        Err(e) => Err(anyhow!(e).context(what())),
    }
}

/// The name the room gives role `index`, or "role N" if it defines none.
fn role_name(client: &Client, room: &RoomId, index: u32) -> String {
    client
        .room_state(room)
        .ok()
        .and_then(|s| s.role(index).map(|r| r.role_name.clone()))
        .unwrap_or_else(|| format!("role {index}"))
}

/// Prints the outcome of a change: `value` with --json, else `text`.
fn done(json: bool, value: serde_json::Value, text: String) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

fn print_members(participants: &[Participant], json: bool) {
    if json {
        let list: Vec<serde_json::Value> = participants
            .iter()
            .map(|p| {
                serde_json::json!({
                    "user": p.user.handle(),
                    "role": p.role,
                    "role_index": p.role_index,
                    "devices": p.clients.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return;
    }
    let rows: Vec<(String, &str, String)> = participants
        .iter()
        .map(|p| {
            let devices = if p.clients.is_empty() {
                "(none)".to_owned()
            } else {
                p.clients
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            (p.user.handle(), p.role.as_str(), devices)
        })
        .collect();
    let user_width = rows.iter().map(|r| r.0.len()).chain([4]).max().unwrap_or(4);
    let role_width = rows.iter().map(|r| r.1.len()).chain([4]).max().unwrap_or(4);
    println!("{:user_width$}  {:role_width$}  DEVICES", "USER", "ROLE");
    for (user, role, devices) in rows {
        println!("{user:user_width$}  {role:role_width$}  {devices}");
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "(none)" } else { s }
}

/// The room an event belongs to, as its URI.
fn event_room(e: &Event) -> String {
    match e {
        Event::Message(m) => m.room.to_string(),
        Event::Joined { room, .. }
        | Event::MembersChanged { room, .. }
        | Event::Removed { room }
        | Event::ProposalPending { room } => room.to_string(),
        Event::Rejected { room, .. } => room.clone(),
        Event::Direct(d) => d.conversation.to_string(),
        Event::IdentityChanged { user, .. } => user.handle(),
        Event::DirectGroupChanged { group, .. } => format!("group {}", hex::encode(group)),
        Event::Call { room, .. } => room.to_string(),
    }
}
