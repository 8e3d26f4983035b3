//! `entente report`: report a message to the room's hub (MIMI abuse report).

use anyhow::{Result, bail};
use clap::Subcommand;
use entente_client::{FrankStatus, REPORT_REASONS, reason_code};

use crate::account::{Common, open, parse_room, parse_user};

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Report a message you received in a room as abusive
    ///
    /// The report goes to the room's hub (through your provider), which checks
    /// the hub's frank on the message: it proves the sender sent exactly this
    /// content in this room. The sender's provider is informed; your identity is
    /// not passed on to it. Name the message by its ID (or a unique prefix of
    /// it, from `entente history --json`), or report the latest message of a
    /// sender with --from.
    ///
    ///   entente report mimi://a.example/r/0f3c... --from mallory@a.example --reason spam
    ///   entente report mimi://a.example/r/0f3c... 3fa2c1d4 --reason harassment --note "again"
    ///
    /// Reasons (codes sent as the MIMI AbuseType):
    ///
    ///   spam (1)           unsolicited bulk or commercial messages
    ///   harassment (2)     harassment or bullying
    ///   hate (3)           hate speech
    ///   violence (4)       threats or incitement to violence
    ///   sexual (5)         unwanted sexual content
    ///   child-safety (6)   content endangering children
    ///   impersonation (7)  pretending to be someone else
    ///   scam (8)           fraud or phishing
    ///   illegal (9)        other illegal content
    ///   other (255)        anything else (say what in the note)
    ///
    /// A message whose frank is missing or did not verify cannot be reported
    /// (it is still shown in your history).
    #[command(verbatim_doc_comment)]
    Report {
        /// The room's URI.
        room: String,
        /// The message ID (hex), or a unique prefix of it.
        message: Option<String>,
        /// Report the latest message from this user instead.
        #[arg(long, conflicts_with = "message")]
        from: Option<String>,
        /// Why: one of the reasons above.
        #[arg(long)]
        reason: String,
        /// A note for the moderators.
        #[arg(long, default_value = "")]
        note: String,
    },
}

pub async fn run(c: ReportCommand, common: Common) -> Result<()> {
    let ReportCommand::Report {
        room,
        message,
        from,
        reason,
        note,
    } = c;
    let Some(code) = reason_code(&reason) else {
        let names: Vec<&str> = REPORT_REASONS.iter().map(|(n, _, _)| *n).collect();
        bail!(
            "unknown reason {reason:?}; use one of: {}",
            names.join(", ")
        );
    };
    let room = parse_room(&room)?;
    let mut client = open(&common).await?;
    // Pick up anything still waiting, so the latest message is in the history.
    client.sync().await?;
    let history = client.history(&room, 10_000)?;
    let entry = match (message, from) {
        (Some(prefix), _) => {
            let prefix = prefix.to_ascii_lowercase();
            let found: Vec<_> = history
                .iter()
                .filter(|e| hex::encode(e.message_id).starts_with(&prefix))
                .collect();
            match found.as_slice() {
                [e] => (*e).clone(),
                [] => bail!("no message with ID {prefix} in {room}"),
                _ => bail!("{prefix} matches several messages; give more of the ID"),
            }
        }
        (None, Some(user)) => {
            let user = parse_user(&user)?;
            match history
                .iter()
                .rev()
                .find(|e| !e.outgoing && e.sender == user)
            {
                Some(e) => e.clone(),
                None => bail!("no message from {} in {room}", user.handle()),
            }
        }
        (None, None) => bail!("name the message by its ID, or use --from <user>"),
    };
    match client.frank_status(&room, &entry.message_id)? {
        FrankStatus::Verified => {}
        FrankStatus::Missing => {
            bail!("this message carries no frank from the hub, so it cannot be reported")
        }
        FrankStatus::Invalid(r) => {
            bail!("this message's frank did not verify ({r}), so it cannot be reported")
        }
    }
    client.report(&room, &entry.message_id, code, &note).await?;
    if common.json {
        println!(
            "{}",
            serde_json::json!({
                "ok": true, "room": room.to_string(), "message_id": hex::encode(entry.message_id),
                "sender": entry.sender.handle(), "reason": reason, "reason_code": code,
            })
        );
    } else {
        println!(
            "Reported the message from {} to {} (reason: {reason}). The hub verified it.",
            entry.sender.handle(),
            room.domain()
        );
    }
    Ok(())
}
