//! `entente file ...`: send and receive encrypted files.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Subcommand;
use entente_client::ClientError;
use entente_client::files::{FileMessage, Phase, Progress, Route, SendFileOptions};
use entente_core::files::{FileAead, FileCryptoError};
use indicatif::{ProgressBar, ProgressStyle};

use crate::account::{Common, direct_room, open, parse_room, parse_user};

#[derive(Subcommand)]
pub enum FileCommand {
    /// Send a file to a user or a room.
    ///
    /// The file is encrypted on this device under a fresh key (AES-128-GCM, or
    /// AES-256-GCM with --aes256) and uploaded to your provider, which stores only
    /// ciphertext. The message carries the link, the key and the hash, end-to-end
    /// encrypted. If the upload is interrupted, run the same command again: it
    /// resumes where it stopped.
    ///
    ///   entente file send bob@b.example report.pdf
    ///   entente file send mimi://a.example/r/0f3c... video.mp4 --description "Friday"
    #[command(verbatim_doc_comment)]
    Send {
        /// A user (a 1:1 chat is started if there is none) or a room URI.
        to: String,
        /// The file to send.
        path: PathBuf,
        /// Encrypt with AES-256-GCM instead of AES-128-GCM (which every MIMI client
        /// supports).
        #[arg(long)]
        aes256: bool,
        /// A description shown with the file.
        #[arg(long, default_value = "")]
        description: String,
        /// Media type, e.g. image/png (guessed from the name if absent).
        #[arg(long = "type")]
        content_type: Option<String>,
    },
    /// List the files sent in your rooms (or in one room), oldest first.
    List {
        /// Only this room.
        room: Option<String>,
    },
    /// Download, check and decrypt a file.
    ///
    /// By default the file is fetched through your provider and the room's hub,
    /// so the provider storing it never learns your address. With --direct it is
    /// fetched straight from that provider, which then sees your address and when
    /// you download. The file appears only after its hash and authentication tag
    /// have been checked; an interrupted download resumes when run again.
    ///
    ///   entente file get 3fa2c1 --out ~/Downloads
    #[command(verbatim_doc_comment)]
    Get {
        /// The file message's ID, or its first digits (from `entente file list`).
        id: String,
        /// A directory (the sender's file name is used) or a new file's path.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Download directly from the storing provider (reveals your address to it).
        #[arg(long)]
        direct: bool,
    },
    /// Delete a file you sent from your provider before it expires, freeing quota.
    /// Recipients who have not downloaded it can no longer do so.
    Rm {
        /// The file message's ID, or its first digits.
        id: String,
    },
    /// Show how much of your provider's storage quota your files use.
    Usage {},
}

pub async fn run(cmd: FileCommand, common: Common) -> Result<()> {
    let json = common.json;
    match cmd {
        FileCommand::Send {
            to,
            path,
            aes256,
            description,
            content_type,
        } => {
            let mut client = open(&common).await?;
            client.sync().await?;
            let room = if to.starts_with("mimi://") {
                parse_room(&to)?
            } else {
                let peer = parse_user(&to)?;
                match direct_room(&client, &peer)? {
                    Some(r) => r,
                    None => client.start_chat(&peer).await?,
                }
            };
            let opts = SendFileOptions {
                alg: if aes256 {
                    FileAead::Aes256Gcm
                } else {
                    FileAead::Aes128Gcm
                },
                description,
                content_type,
            };
            let bar = Bar::new(json);
            let sent = client
                .send_file(&room, &path, &opts, bar.clone())
                .await
                .map_err(explain)?;
            bar.done();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "room": room.to_string(),
                        "message_id": hex::encode(sent.message_id),
                        "url": sent.part.url,
                        "size": sent.part.size,
                    })
                );
            } else {
                println!(
                    "sent {} ({}) to {room}; message {}",
                    sent.part.filename,
                    human(sent.part.size.saturating_sub(16)),
                    &hex::encode(sent.message_id)[..12]
                );
            }
            Ok(())
        }
        FileCommand::List { room } => {
            let mut client = open(&common).await?;
            client.sync().await?;
            let room = room.map(|r| parse_room(&r)).transpose()?;
            let files = client.files(room.as_ref())?;
            if json {
                let list: Vec<_> = files.iter().map(file_json).collect();
                println!("{}", serde_json::Value::Array(list));
            } else if files.is_empty() {
                println!("no files yet");
            } else {
                for f in &files {
                    println!(
                        "{}  {:<24} {:>10}  {}{}",
                        &hex::encode(f.message_id)[..12],
                        if f.outgoing {
                            "me".to_owned()
                        } else {
                            f.sender.handle()
                        },
                        human(f.file_size()),
                        f.part.filename,
                        if f.part.description.is_empty() {
                            String::new()
                        } else {
                            format!("  \"{}\"", f.part.description)
                        }
                    );
                }
            }
            Ok(())
        }
        FileCommand::Get { id, out, direct } => {
            let mut client = open(&common).await?;
            client.sync().await?;
            let file = client.find_file(&id)?;
            let bar = Bar::new(json);
            let route = if direct { Route::Direct } else { Route::ViaHub };
            let got = client
                .download_file(&file, &out, route, bar.clone())
                .await
                .map_err(explain)?;
            bar.done();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"path": got.path, "size": got.size, "committed": got.committed})
                );
            } else {
                println!(
                    "saved {} ({}), checked and decrypted",
                    got.path.display(),
                    human(got.size)
                );
                if !got.committed {
                    println!(
                        "note: the sender's app does not commit to the file's contents, so \
                         another key could open the same download to a different file"
                    );
                }
            }
            Ok(())
        }
        FileCommand::Rm { id } => {
            let mut client = open(&common).await?;
            client.sync().await?;
            let file = client.find_file(&id)?;
            if !file.outgoing {
                bail!(
                    "only the sender can delete a file; this one is from {}",
                    file.sender.handle()
                );
            }
            client.delete_sent_file(&file).await.map_err(explain)?;
            if !json {
                println!("deleted {} from your provider", file.part.filename);
            }
            Ok(())
        }
        FileCommand::Usage {} => {
            let client = open(&common).await?;
            let u = client.blob_usage().await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"used": u.used, "quota": u.quota, "max_file": u.max_blob})
                );
            } else {
                println!(
                    "{} of {} used; files up to {}",
                    human(u.used),
                    human(u.quota),
                    human(u.max_blob)
                );
            }
            Ok(())
        }
    }
}

fn file_json(f: &FileMessage) -> serde_json::Value {
    serde_json::json!({
        "message_id": hex::encode(f.message_id),
        "room": f.room.to_string(),
        "sender": f.sender.handle(),
        "outgoing": f.outgoing,
        "timestamp_ms": f.timestamp_ms,
        "filename": f.part.filename,
        "description": f.part.description,
        "content_type": f.part.content_type,
        "size": f.file_size(),
        "expires": f.part.expires,
    })
}

/// Says what to do about the errors a user can act on.
fn explain(e: ClientError) -> anyhow::Error {
    let hint = match &e {
        ClientError::File(FileCryptoError::HashMismatch | FileCryptoError::TooLong { .. }) => {
            "the stored file is not the one the sender sent; nothing was saved. Ask the sender \
             to send it again, and tell your provider if it keeps happening"
        }
        ClientError::File(FileCryptoError::Truncated { .. }) => {
            "the stored file is shorter than the one the sender sent; nothing was saved"
        }
        ClientError::File(FileCryptoError::WrongKeyOrTampered) => {
            "the file does not decrypt with the key in the message; nothing was saved"
        }
        ClientError::File(FileCryptoError::CommitmentMismatch) => {
            "the sender's message does not match the file; nothing was saved"
        }
        ClientError::Provider { code, .. } if code == "quota_exceeded" => {
            "see `entente file usage`; `entente file rm ID` deletes files you sent"
        }
        ClientError::Provider { code, .. } if code == "expired" => {
            "files are kept for a limited time; ask the sender to send it again"
        }
        ClientError::Provider { status: 404, .. } => {
            "the file is no longer stored; ask the sender to send it again"
        }
        ClientError::Unreachable(_) => "run the same command again to resume",
        _ => return e.into(),
    };
    anyhow::Error::new(e).context(hint.to_owned())
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A progress bar on stderr (hidden with --json or when stderr is not a terminal).
#[derive(Clone)]
struct Bar(ProgressBar);

impl Bar {
    fn new(json: bool) -> Arc<Self> {
        let pb = if json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        Arc::new(Self(pb))
    }

    fn done(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn phase(&self, phase: Phase, done: u64, total: u64) {
        let what = match phase {
            Phase::Hashing => "hashing",
            Phase::Uploading => "encrypting and uploading",
            Phase::Downloading => "downloading and decrypting",
            Phase::Resuming => "checking the partial download",
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>26} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ) {
            self.0.set_style(style.progress_chars("=> "));
        }
        self.0.set_message(what);
        self.0.set_length(total);
        self.0.set_position(done);
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}
