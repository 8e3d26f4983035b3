//! Moderation from the command line: a user's `entente notices`, and the
//! operator's `entente provider reports` and `entente provider moderate`.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use entente_client::Client;
use entente_provider::config::Config;
use entente_provider::moderation::ActionRequest;
use entente_provider::moderation::admin::{AdminClient, ReportView};

use crate::account::{Common, open};

#[derive(Subcommand)]
pub enum NoticeCommand {
    /// Show notices from your provider's moderators (warnings) and mark them read
    ///
    /// `entente sync` tells you when there are unread ones.
    #[command(verbatim_doc_comment)]
    Notices {
        /// Leave them unread.
        #[arg(long)]
        keep_unread: bool,
    },
}

pub async fn run_notices(c: NoticeCommand, common: Common) -> Result<()> {
    let NoticeCommand::Notices { keep_unread } = c;
    let client = open(&common).await?;
    let notices = client.notices().await?;
    if common.json {
        println!("{}", serde_json::to_string_pretty(&notices_json(&notices))?);
    } else if notices.is_empty() {
        println!("no notices from your provider's moderators");
    } else {
        for n in &notices {
            println!(
                "{} notice {} from the moderators of {}{}:\n  {}",
                if n.read { " " } else { "*" },
                n.id,
                client.user().domain(),
                format_secs(n.created_at),
                n.text
            );
        }
    }
    if !keep_unread && let Some(last) = notices.iter().filter(|n| !n.read).map(|n| n.id).max() {
        client.mark_notices_read(last).await?;
    }
    Ok(())
}

fn notices_json(n: &[entente_wire::moderation::AccountNotice]) -> serde_json::Value {
    serde_json::json!(n)
}

/// After `sync`: says if the moderators left unread notices. Failing to ask is not
/// an error of the sync.
pub async fn show_unread_notices(client: &Client, json: bool) {
    let Ok(notices) = client.notices().await else {
        return;
    };
    let unread: Vec<_> = notices.iter().filter(|n| !n.read).collect();
    if unread.is_empty() || json {
        return;
    }
    for n in &unread {
        println!(
            "notice from the moderators of {}: {}",
            client.user().domain(),
            n.text
        );
    }
    println!("(`entente notices` marks them read)");
}

/// `entente provider reports`.
#[derive(Args)]
pub struct ReportsArgs {
    /// The provider's configuration file (the moderator token is read from its
    /// data directory, so run this as a user who may read it).
    #[arg(long, short, default_value = "provider.toml")]
    config: PathBuf,
    /// Also show dismissed and actioned reports.
    #[arg(long)]
    all: bool,
    /// Show one report in full, with its messages.
    #[arg(long)]
    id: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `entente provider moderate`.
#[derive(Args)]
pub struct ModerateArgs {
    /// The provider's configuration file.
    #[arg(long, short, default_value = "provider.toml")]
    config: PathBuf,
    /// Your name, for the moderation log (default: $USER).
    #[arg(long = "as", value_name = "NAME")]
    moderator: Option<String>,
    #[command(subcommand)]
    action: ModerateAction,
}

#[derive(Subcommand)]
pub enum ModerateAction {
    /// Send a local user a warning, which their clients show.
    Warn {
        /// e.g. alice@a.example
        user: String,
        /// The text the user reads.
        text: String,
        /// The report this settles (closed as actioned).
        #[arg(long)]
        report: Option<u64>,
    },
    /// Suspend a local user: their devices are refused every request until
    /// unsuspended. Nothing is deleted.
    Suspend {
        user: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        report: Option<u64>,
    },
    /// Lift a suspension.
    Unsuspend {
        user: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Ban a remote user: federation requests naming them (their messages to
    /// rooms we host, key material claims, consent requests, reports) are refused.
    BanUser {
        /// e.g. mallory@m.example
        user: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        report: Option<u64>,
    },
    /// Lift a ban on a remote user.
    UnbanUser {
        user: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Ban a whole remote domain: every federation request from it is refused and
    /// nothing more is sent to it.
    BanDomain {
        /// e.g. m.example
        domain: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        report: Option<u64>,
    },
    /// Lift a ban on a domain.
    UnbanDomain {
        domain: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Close a report without other action.
    Dismiss {
        /// The report's number, from `entente provider reports`.
        report: u64,
        #[arg(long)]
        reason: String,
    },
}

fn admin(config: &std::path::Path) -> Result<AdminClient> {
    let cfg = Config::load(config)?;
    AdminClient::from_config(&cfg).map_err(|e| anyhow!(e))
}

pub async fn reports(a: ReportsArgs) -> Result<()> {
    let admin = admin(&a.config)?;
    let reports = match a.id {
        Some(id) => vec![admin.report(id).await.map_err(|e| anyhow!(e))?],
        None => admin.reports(a.all).await.map_err(|e| anyhow!(e))?,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(());
    }
    if reports.is_empty() {
        println!("no {}reports", if a.all { "" } else { "open " });
        return Ok(());
    }
    for r in &reports {
        print_report(r, a.id.is_some());
    }
    Ok(())
}

fn print_report(r: &ReportView, full: bool) {
    println!(
        "#{} [{}] {} accused: {}  reported by: {}  reason: {}{}",
        r.id,
        r.status,
        if r.role == "hub" {
            "verified at our hub"
        } else {
            "about our user"
        },
        r.alleged_abuser,
        r.reporter.as_deref().unwrap_or(&r.reporter_domain),
        r.reason,
        if r.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.note)
        }
    );
    println!(
        "    room {}  received{}",
        r.room,
        format_secs(r.received_at / 1000)
    );
    for m in &r.messages {
        let text = if full {
            m.text.clone()
        } else {
            m.text.chars().take(100).collect()
        };
        println!("    > {}", text.replace('\n', "\n      "));
    }
    if let Some(res) = &r.resolution {
        println!("    resolution: {res}");
    }
}

pub async fn moderate(a: ModerateArgs) -> Result<()> {
    let admin = admin(&a.config)?;
    let moderator = a
        .moderator
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    let (action, target, reason, report) = match a.action {
        ModerateAction::Warn { user, text, report } => ("warn", user, text, report),
        ModerateAction::Suspend {
            user,
            reason,
            report,
        } => ("suspend", user, reason, report),
        ModerateAction::Unsuspend { user, reason } => ("unsuspend", user, reason, None),
        ModerateAction::BanUser {
            user,
            reason,
            report,
        } => ("ban-user", user, reason, report),
        ModerateAction::UnbanUser { user, reason } => ("unban-user", user, reason, None),
        ModerateAction::BanDomain {
            domain,
            reason,
            report,
        } => ("ban-domain", domain, reason, report),
        ModerateAction::UnbanDomain { domain, reason } => ("unban-domain", domain, reason, None),
        ModerateAction::Dismiss { report, reason } => {
            ("dismiss", report.to_string(), reason, Some(report))
        }
    };
    let done = admin
        .act(&ActionRequest {
            action: action.into(),
            target,
            reason,
            report,
            moderator,
        })
        .await
        .map_err(|e| anyhow!(e))
        .context("the action was not applied")?;
    println!("{done}");
    Ok(())
}

/// `YYYY-MM-DD HH:MM UTC`.
fn format_secs(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let rem = secs % 86_400;
    format!(
        " on {y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}
