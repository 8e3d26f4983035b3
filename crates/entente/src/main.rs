//! `entente`: run a provider, use an account, or watch the demo.
#![forbid(unsafe_code)]

mod account;
mod call_cmd;
mod compare_groups;
mod consent_cmd;
mod demo;
mod file_cmd;
mod file_load;
mod group_cmd;
mod group_load;
mod load;
mod moderation_cmd;
mod provider_cmd;
mod report_cmd;
mod room_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Entente: end-to-end encrypted messaging between independent providers, over the
/// IETF MIMI protocol and MLS.
///
/// Users are named like e-mail: alice@a.example is alice at the provider of
/// a.example. Providers federate with mutually authenticated TLS; messages are
/// encrypted on the device and providers only ever see ciphertext.
///
/// Start with `entente demo`. To run your own provider: `entente ca init`, then
/// `entente provider init`, then `entente provider run`.
#[derive(Parser)]
#[command(
    name = "entente",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// Log filter, e.g. `info` or `entente_provider=debug` (also RUST_LOG).
    #[arg(long, global = true, env = "ENTENTE_LOG", default_value = "warn")]
    log: String,
    /// Print logs as JSON lines.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(flatten)]
    common: account::Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start two providers on this machine, let alice@a.example and bob@b.example
    /// talk, and show that the providers only hold ciphertext.
    Demo(demo::DemoArgs),
    /// Run and set up a provider.
    #[command(subcommand)]
    Provider(provider_cmd::ProviderCommand),
    /// A throwaway certificate authority for local federations.
    #[command(subcommand)]
    Ca(provider_cmd::CaCommand),
    /// Use an account: create it, chat, send, listen.
    #[command(flatten)]
    Account(account::AccountCommand),
    /// Message requests and blocks: request, requests, accept, decline, block,
    /// unblock, blocked.
    #[command(flatten)]
    Consent(consent_cmd::ConsentCommand),
    /// Notices from your provider's moderators.
    #[command(flatten)]
    Notices(moderation_cmd::NoticeCommand),
    /// Call a user or join a room's group call, sending a WAV file as Opus
    ///
    /// A 1:1 call is WebRTC between the two devices; the offer, answer and ICE
    /// candidates travel end-to-end encrypted in your room with them, so no
    /// provider can get into the media path. A room's group call goes through
    /// the SFU of the room's hub, which forwards frames it cannot decrypt: every
    /// frame is SFrame-encrypted under keys from the room's MLS epoch.
    ///
    ///   entente call bob@b.example --send hello.wav --record bob.wav
    ///   entente call mimi://a.example/r/0f3c... --send hello.wav --record team.wav
    ///
    /// The other side runs `entente answer` (1:1) or `entente call ROOM` (group).
    #[command(verbatim_doc_comment)]
    Call(call_cmd::CallArgs),
    /// Wait for a call and answer it, sending a WAV file and recording what you hear
    ///
    ///   entente answer --record alice.wav
    ///   entente answer --from alice@a.example --send reply.wav --record alice.wav
    #[command(verbatim_doc_comment)]
    Answer(call_cmd::AnswerArgs),
    /// Report an abusive message to the room's hub.
    #[command(flatten)]
    Report(report_cmd::ReportCommand),
    /// Group rooms: create them, invite and remove people, roles, name and topic
    ///
    /// A room is named by its URI, as `entente room create` and `entente rooms`
    /// print it. Whether a change is allowed depends on your role in the room:
    /// members send and receive; admins also invite, remove, ban, change members'
    /// roles and set the name and topic; owners can do everything.
    ///
    /// A typical session:
    ///
    ///   entente room create --name Team
    ///   entente room invite mimi://a.example/r/0f3c... bob@b.example
    ///   entente room invite mimi://a.example/r/0f3c... carol@c.example --role admin
    ///   entente room topic mimi://a.example/r/0f3c... "Shipping 1.0 on Friday"
    ///   entente room send mimi://a.example/r/0f3c... "Hello, team"
    ///   entente room members mimi://a.example/r/0f3c...
    #[command(subcommand, verbatim_doc_comment)]
    Room(room_cmd::RoomCommand),
    /// Encrypted files: send, list, download, delete
    ///
    /// Files are encrypted on your device and stored, as ciphertext only, by your
    /// provider; the key travels inside the end-to-end encrypted message.
    ///
    ///   entente file send bob@b.example report.pdf
    ///   entente file list
    ///   entente file get 3fa2c1 --out ~/Downloads
    #[command(subcommand, verbatim_doc_comment)]
    File(file_cmd::FileCommand),
    /// Groups of people reached over the Signal Double Ratchet: sender keys or
    /// pairwise fan-out
    ///
    /// For people whose devices speak MLS, use `entente room` instead. These
    /// groups are for peers that offer only the Double Ratchet.
    ///
    ///   entente group create --name Team bob@b.example carol@c.example
    ///   entente group send 3fa2c1 "Hello, team"
    ///   entente group remove 3fa2c1 carol@c.example
    #[command(subcommand, verbatim_doc_comment)]
    Group(group_cmd::GroupCommand),
    /// Compare group mechanisms (pairwise Double Ratchet, sender keys, MLS) for
    /// groups of 2 to 1,000 members; write docs/group-mechanisms.md and .png
    ///
    /// Measures bytes on the wire and CPU time per message and per membership
    /// change (add one member, remove one). Everything runs in this process with
    /// Entente's own implementations: no network, no providers. CPU times are
    /// wall-clock times of single-threaded work: run it on a quiet machine, in
    /// release mode. The default run takes a few minutes:
    ///
    ///   cargo run --release -p entente -- compare-groups
    ///
    /// A quick look, written elsewhere:
    ///
    ///   entente compare-groups --sizes 2,10,100 --messages 5 --changes 1 --out /tmp/cg
    #[command(verbatim_doc_comment)]
    CompareGroups(compare_groups::CompareArgs),
    /// Load test: push messages between users of two local providers and report
    /// throughput and latency.
    Load(load::LoadArgs),
    /// Load test: one large room over several local providers; report join and
    /// fan-out times.
    LoadGroup(group_load::GroupLoadArgs),
    /// Load test: send one large encrypted file between three local providers, run
    /// as separate processes; report upload and download speed (via the hub and
    /// direct) against raw AES-GCM, and each party's peak memory.
    LoadFiles(file_load::FileLoadArgs),
}

fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

/// Default home of the CLI's account state.
pub fn default_home() -> PathBuf {
    std::env::var_os("ENTENTE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".entente")))
        .unwrap_or_else(|| PathBuf::from(".entente"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_json);
    entente_tls::install_crypto_provider();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Demo(a) => demo::run(a).await,
            Command::Provider(c) => provider_cmd::run(c).await,
            Command::Ca(c) => provider_cmd::run_ca(c),
            Command::Account(c) => account::run(c, cli.common).await,
            Command::Consent(c) => consent_cmd::run(c, cli.common).await,
            Command::Notices(c) => moderation_cmd::run_notices(c, cli.common).await,
            Command::Report(c) => report_cmd::run(c, cli.common).await,
            Command::Call(c) => call_cmd::run_call(c, cli.common).await,
            Command::Answer(c) => call_cmd::run_answer(c, cli.common).await,
            Command::Room(c) => room_cmd::run(c, cli.common).await,
            Command::File(c) => file_cmd::run(c, cli.common).await,
            Command::Group(c) => group_cmd::run(c, cli.common).await,
            Command::CompareGroups(a) => compare_groups::run(a),
            Command::Load(a) => load::run(a).await,
            Command::LoadGroup(a) => group_load::run(a).await,
            Command::LoadFiles(a) => file_load::run(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
