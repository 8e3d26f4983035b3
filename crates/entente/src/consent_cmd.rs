//! Message requests and blocks: `request`, `requests`, `accept`, `decline`,
//! `block`, `unblock`, `blocked`.

use anyhow::Result;
use clap::Subcommand;
use entente_wire::consent::OutgoingStatus;

use crate::account::{Common, open, parse_room, parse_user};

#[derive(Subcommand)]
pub enum ConsentCommand {
    /// Ask a user for consent to add them to rooms or message them (a message
    /// request)
    ///
    /// Providers hand out a user's keys only to people that user accepted, so a
    /// stranger cannot add you to a room or start a conversation with you until
    /// you accept their request. Asking also lets them add you. They see the
    /// request with `entente requests` and answer with `entente accept` or
    /// `entente decline` (you are not told of a decline).
    ///
    ///   entente request bob@b.example
    ///   entente request bob@b.example --room mimi://a.example/r/0f3c...
    ///   entente request bob@b.example --cancel
    #[command(verbatim_doc_comment)]
    Request {
        /// e.g. bob@b.example
        user: String,
        /// Ask for this room only (default: any room).
        #[arg(long)]
        room: Option<String>,
        /// Withdraw an earlier request (with the same --room) instead.
        #[arg(long)]
        cancel: bool,
    },
    /// List message requests waiting for your answer, and the ones you sent
    ///
    /// "accepted" means you may now add that user to rooms and message them.
    #[command(verbatim_doc_comment)]
    Requests {},
    /// Accept a user's message request: they may add you to rooms (or to one
    /// room with --room) and message you
    ///
    /// You may also accept someone who did not ask.
    ///
    ///   entente accept alice@a.example
    #[command(verbatim_doc_comment)]
    Accept {
        /// e.g. alice@a.example
        user: String,
        /// Accept for this room only (default: any room).
        #[arg(long)]
        room: Option<String>,
    },
    /// Decline a user's message requests and withdraw any consent you gave them
    ///
    /// They are not told; their request just stays unanswered.
    ///
    ///   entente decline mallory@m.example
    #[command(verbatim_doc_comment)]
    Decline {
        /// e.g. mallory@m.example
        user: String,
    },
    /// Block a user: they can no longer reach you
    ///
    /// Your provider stops handing them your keys and drops their requests
    /// (silently: they are not told), their pending requests and your consent are
    /// deleted, this device leaves your two-person rooms with them and forgets its
    /// Signal sessions with them. Undo with `entente unblock`.
    ///
    ///   entente block mallory@m.example
    #[command(verbatim_doc_comment)]
    Block {
        /// e.g. mallory@m.example
        user: String,
    },
    /// Lift a block. Consent given before the block is not restored: accept a new
    /// request, or send one.
    Unblock {
        /// e.g. mallory@m.example
        user: String,
    },
    /// List the users you blocked.
    Blocked {},
}

fn ago(at_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(at_ms);
    let secs = now.saturating_sub(at_ms) / 1000;
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

fn scope(room: &Option<String>) -> String {
    room.as_ref()
        .map_or_else(|| "any room".to_owned(), |r| format!("room {r}"))
}

pub async fn run(c: ConsentCommand, common: Common) -> Result<()> {
    let json = common.json;
    let done = |what: String| {
        if json {
            println!("{}", serde_json::json!({ "ok": true, "done": what }));
        } else {
            println!("{what}");
        }
    };
    match c {
        ConsentCommand::Request { user, room, cancel } => {
            let client = open(&common).await?;
            let peer = parse_user(&user)?;
            let room = room.as_deref().map(parse_room).transpose()?;
            if cancel {
                client.cancel_consent_request(&peer, room.as_ref()).await?;
                done(format!("Withdrew your request to {}.", peer.handle()));
            } else {
                client.request_consent(&peer, room.as_ref()).await?;
                done(format!(
                    "Asked {0}; `entente requests` shows when they accept. {0} may now add you.",
                    peer.handle()
                ));
            }
        }
        ConsentCommand::Requests {} => {
            let client = open(&common).await?;
            let r = client.consent_requests().await?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            if r.incoming.is_empty() {
                println!("No requests waiting for you.");
            } else {
                println!(
                    "Waiting for your answer (`entente accept USER` / `entente decline USER`):"
                );
                for i in &r.incoming {
                    println!("  {}  ({}, {})", i.user, scope(&i.room), ago(i.at_ms));
                }
            }
            if !r.outgoing.is_empty() {
                println!("Yours:");
                for o in &r.outgoing {
                    let status = match o.status {
                        OutgoingStatus::Granted => "accepted: you may add them",
                        OutgoingStatus::Pending => "no answer yet",
                    };
                    println!(
                        "  {}  ({}, {status}, {})",
                        o.user,
                        scope(&o.room),
                        ago(o.at_ms)
                    );
                }
            }
        }
        ConsentCommand::Accept { user, room } => {
            let client = open(&common).await?;
            let peer = parse_user(&user)?;
            let room = room.as_deref().map(parse_room).transpose()?;
            client.accept_request(&peer, room.as_ref()).await?;
            done(format!(
                "Accepted {}: they may now add you to {}.",
                peer.handle(),
                room.map_or_else(|| "rooms".to_owned(), |r| r.to_string())
            ));
        }
        ConsentCommand::Decline { user } => {
            let client = open(&common).await?;
            let peer = parse_user(&user)?;
            client.decline_request(&peer).await?;
            done(format!("Declined {} (they are not told).", peer.handle()));
        }
        ConsentCommand::Block { user } => {
            let mut client = open(&common).await?;
            client.sync().await?;
            let peer = parse_user(&user)?;
            let outcome = client.block(&peer).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "blocked": peer.handle(),
                        "left_rooms": outcome.left_rooms.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                        "dropped_sessions": outcome.dropped_sessions,
                    })
                );
            } else {
                println!("Blocked {}.", peer.handle());
                for r in &outcome.left_rooms {
                    println!("  left {r}");
                }
                if outcome.dropped_sessions > 0 {
                    println!(
                        "  forgot {} Signal session(s) with their devices",
                        outcome.dropped_sessions
                    );
                }
            }
        }
        ConsentCommand::Unblock { user } => {
            let client = open(&common).await?;
            let peer = parse_user(&user)?;
            client.unblock(&peer).await?;
            done(format!("Unblocked {}.", peer.handle()));
        }
        ConsentCommand::Blocked {} => {
            let client = open(&common).await?;
            let b = client.blocked_users().await?;
            if json {
                println!("{}", serde_json::to_string(&b)?);
            } else if b.blocked.is_empty() {
                println!("You have blocked nobody.");
            } else {
                for u in &b.blocked {
                    println!("{}  (since {})", u.user, ago(u.at_ms));
                }
            }
        }
    }
    Ok(())
}
