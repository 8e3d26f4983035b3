//! `entente group`: groups of people reached over the Signal Double Ratchet.

use anyhow::Result;
use clap::Subcommand;
use entente_client::{Conversation, GroupMechanism};

use crate::account::{Common, open, parse_user, print_direct};

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create a group and tell every member (over the Signal channel).
    ///
    /// Sender keys (the default, as in Signal and WhatsApp groups) encrypt each
    /// message once; pairwise fan-out encrypts it once per member's device.
    #[command(verbatim_doc_comment)]
    Create {
        /// The group's name.
        #[arg(long)]
        name: String,
        /// Encrypt every message separately for every member instead of with
        /// sender keys.
        #[arg(long)]
        pairwise: bool,
        /// The members besides you, e.g. bob@b.example carol@c.example.
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// List your groups.
    List {},
    /// Send a message to a group (its id or a unique prefix of it).
    Send { group: String, text: String },
    /// Add someone to a group.
    Add { group: String, user: String },
    /// Remove someone from a group. With sender keys every remaining member
    /// switches to a new sender key, which the removed member never gets.
    Remove { group: String, user: String },
    /// Show a group's messages.
    History {
        group: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

pub async fn run(c: GroupCommand, common: Common) -> Result<()> {
    let mut client = open(&common).await?;
    client.sync().await?;
    let json = common.json;
    let show = |g: &entente_client::DirectGroup| {
        let members: Vec<String> = g.members.iter().map(|m| m.handle()).collect();
        if json {
            println!(
                "{}",
                serde_json::json!({"group": hex::encode(g.id), "name": g.name, "mechanism": g.mechanism.as_str(), "members": members})
            );
        } else {
            println!(
                "{}  \"{}\"  ({})  {}",
                hex::encode(g.id),
                g.name,
                g.mechanism.as_str(),
                members.join(", ")
            );
        }
    };
    match c {
        GroupCommand::Create {
            name,
            pairwise,
            members,
        } => {
            let members = members
                .iter()
                .map(|m| parse_user(m))
                .collect::<Result<Vec<_>>>()?;
            let mechanism = if pairwise {
                GroupMechanism::Pairwise
            } else {
                GroupMechanism::SenderKeys
            };
            let g = client
                .create_direct_group(&name, &members, mechanism)
                .await?;
            show(&g);
        }
        GroupCommand::List {} => {
            for g in client.direct_groups()? {
                show(&g);
            }
        }
        GroupCommand::Send { group, text } => {
            let g = client.direct_group(&group)?;
            let id = client.send_group_text(&g.id, &text).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"group": hex::encode(g.id), "message_id": hex::encode(id), "mechanism": g.mechanism.as_str()})
                );
            } else {
                println!(
                    "sent to \"{}\" ({} members, {})",
                    g.name,
                    g.members.len(),
                    g.mechanism.as_str()
                );
            }
        }
        GroupCommand::Add { group, user } => {
            let g = client.direct_group(&group)?;
            let g = client
                .add_direct_group_member(&g.id, &parse_user(&user)?)
                .await?;
            show(&g);
        }
        GroupCommand::Remove { group, user } => {
            let g = client.direct_group(&group)?;
            let g = client
                .remove_direct_group_member(&g.id, &parse_user(&user)?)
                .await?;
            show(&g);
        }
        GroupCommand::History { group, limit } => {
            let g = client.direct_group(&group)?;
            for e in client.direct_history(&Conversation::Group(g.id), limit)? {
                print_direct(&e, json);
            }
        }
    }
    Ok(())
}
