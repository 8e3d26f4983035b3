//! `entente load-files`: encrypted file transfer end to end, for speed and memory.
//!
//! Writes a pseudo-random file of `--size`, starts three providers as separate
//! processes (`entente provider run`) so that each one's memory can be measured on
//! its own, and lets clients in this process move the file: a.example hubs the
//! room, bob@b.example sends (so the blob lives at b.example) and carol@c.example
//! downloads it twice, through the hub's MIMI `proxyDownload` and directly from
//! b.example. It reports:
//!
//! - the sender's hashing pass and its encrypt-and-upload pass, separately;
//! - download-and-decrypt for both routes (each download is checked against the
//!   input's SHA-256);
//! - the peak resident memory (`VmHWM`) of every provider and of this process (the
//!   clients) during each step, reset between steps, so memory that grows with the
//!   file's size shows; and the CPU time each used, and the rest of the machine
//!   ([`usage`]);
//! - for comparison, the raw in-process speed of AES-GCM (ring), of Entente's own
//!   streaming sealer and of SHA-256 on this machine ([`raw`]).
//!
//! Before each transfer a scratch file of `--size` is written and deleted, so that
//! the transfer's own file writes (the provider's copy, the download) land in
//! page-cache memory the kernel has used before, as on a long-running host. In a
//! fresh virtual machine the first touch of memory is several times slower than
//! later ones and would otherwise weigh on whichever transfer came first.
//!
//! The report ends with one JSON line holding every figure.

mod raw;
mod usage;

use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::{Args, ValueEnum};
use entente_client::files::{FileMessage, Phase, Progress, Route, SendFileOptions};
use entente_client::{Client, Event};
use entente_core::files::FileAead;
use entente_testkit::Federation;
use entente_wire::ids::RoomId;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use raw::RawSpeeds;
use usage::{Party, Usage};

#[derive(Args)]
pub struct FileLoadArgs {
    /// Size of the file: bytes, or with a unit: KiB, MiB, GiB (powers of 1024) or
    /// KB, MB, GB (powers of 1000), e.g. `64MiB`.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    size: u64,
    /// How the file is encrypted.
    #[arg(long, value_enum, default_value_t = Alg::Aes128)]
    alg: Alg,
    /// Where to make the working directory (the input file, the sender's
    /// provider's copy and one download at a time: about three times --size of
    /// disk). Default: the system's temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the working directory (files, provider configs and logs) afterwards.
    #[arg(long)]
    keep: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Alg {
    Aes128,
    Aes256,
}

impl Alg {
    fn file_aead(self) -> FileAead {
        match self {
            Self::Aes128 => FileAead::Aes128Gcm,
            Self::Aes256 => FileAead::Aes256Gcm,
        }
    }

    fn ring(self) -> &'static ring::aead::Algorithm {
        match self {
            Self::Aes128 => &ring::aead::AES_128_GCM,
            Self::Aes256 => &ring::aead::AES_256_GCM,
        }
    }
}

const HUB: &str = "a.example";
const SENDER: &str = "b.example";
const RECEIVER: &str = "c.example";
const DOMAINS: [&str; 3] = [HUB, SENDER, RECEIVER];
/// The bar every party's peak memory is held to.
const MEMORY_BOUND_MIB: f64 = 100.0;
/// Longest wait for a provider to start, a member to join or a message to arrive.
const WAIT: Duration = Duration::from_secs(60);
const MIB: f64 = (1u64 << 20) as f64;

pub async fn run(a: FileLoadArgs) -> Result<()> {
    ensure!(a.size > 0, "--size must be at least one byte");
    let mut builder = tempfile::Builder::new();
    builder.prefix("entente-load-files-");
    let work = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            builder.tempdir_in(d)
        }
        None => builder.tempdir(),
    }
    .context("creating the working directory")?;
    // The providers' configs hold absolute paths.
    let root = std::fs::canonicalize(work.path()).context("locating the working directory")?;
    // Stopping early drops `drive`, and with it the guard that kills the providers.
    let result = tokio::select! {
        r = drive(&a, &root) => r,
        signal = stop_signal() => Err(anyhow!("stopped by {signal}")),
    };
    if result.is_err() {
        print_log_tails(&root);
    }
    if a.keep {
        eprintln!("kept the working directory {}", work.keep().display());
    }
    let figures = result?;
    figures.print();
    Ok(())
}

/// Everything measured, for the report.
struct Figures {
    size: u64,
    alg: FileAead,
    hashing: Duration,
    uploading: Duration,
    send_total: Duration,
    via_hub: Duration,
    direct: Duration,
    raw: RawSpeeds,
    usage: Usage,
}

async fn drive(a: &FileLoadArgs, root: &Path) -> Result<Figures> {
    let size = a.size;
    let input = root.join("input.bin");
    eprintln!(
        "writing a {} test file to {} ...",
        human(size),
        input.display()
    );
    let digest = {
        let input = input.clone();
        blocking(move || write_random_file(&input, size)).await?
    };

    let fed = Federation::prepare_in(&root.join("federation"), &DOMAINS)?;
    eprintln!("starting {} as separate processes ...", DOMAINS.join(", "));
    let mut providers = Providers::spawn(&fed, root)?;
    providers.wait_ready(WAIT).await?;
    let mut usage = Usage::new(providers.parties());

    usage.start_step();
    eprintln!("registering alice@{HUB}, bob@{SENDER} and carol@{RECEIVER}; making a room ...");
    let (_alice, mut bob, mut carol, room) = setup(&fed).await?;
    usage.end_step("setup");

    warm_page_cache(root, size).await?;
    usage.start_step();
    let meter = Meter::new();
    let opts = SendFileOptions {
        alg: a.alg.file_aead(),
        description: format!("load-files, {}", human(size)),
        content_type: None,
    };
    let t0 = Instant::now();
    let sent = bob
        .send_file(&room, &input, &opts, meter.clone())
        .await
        .context("sending the file")?;
    let send_total = t0.elapsed();
    let end = Instant::now();
    usage.end_step("send");
    meter.done();
    let hashing_at = meter.started(Phase::Hashing).unwrap_or(t0);
    let uploading_at = meter
        .started(Phase::Uploading)
        .ok_or_else(|| anyhow!("the upload never reported its start"))?;
    let hashing = uploading_at.saturating_duration_since(hashing_at);
    let uploading = end.saturating_duration_since(uploading_at);

    let file = received(&mut carol, &room, sent.message_id).await?;
    let via_hub = download(&carol, &file, root, Route::ViaHub, &digest, &mut usage).await?;
    let direct = download(&carol, &file, root, Route::Direct, &digest, &mut usage).await?;
    providers.stop();

    eprintln!("measuring raw in-process crypto speed ...");
    let alg = a.alg;
    let raw = blocking(move || raw::measure(alg)).await?;
    Ok(Figures {
        size,
        alg: a.alg.file_aead(),
        hashing,
        uploading,
        send_total,
        via_hub,
        direct,
        raw,
        usage,
    })
}

/// Registers the three users; alice makes a room and adds bob and carol.
async fn setup(fed: &Federation) -> Result<(Client, Client, Client, RoomId)> {
    let mut alice = fed.register(&format!("alice@{HUB}"), "laptop").await?;
    let mut bob = fed.register(&format!("bob@{SENDER}"), "laptop").await?;
    let mut carol = fed.register(&format!("carol@{RECEIVER}"), "laptop").await?;
    let room = alice.create_room_named("Files").await?;
    alice.invite(&room, bob.user()).await?;
    alice.invite(&room, carol.user()).await?;
    for c in [&mut bob, &mut carol] {
        let deadline = Instant::now() + WAIT;
        'joining: loop {
            for e in c.sync().await? {
                if let Event::Joined { room: r, .. } = e
                    && r == room
                {
                    break 'joining;
                }
            }
            ensure!(
                Instant::now() < deadline,
                "{} never joined the room",
                c.user()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok((alice, bob, carol, room))
}

/// Syncs `c` until it has the file message `id`.
async fn received(c: &mut Client, room: &RoomId, id: [u8; 32]) -> Result<FileMessage> {
    let deadline = Instant::now() + WAIT;
    loop {
        c.sync().await?;
        if let Some(f) = c
            .files(Some(room))?
            .into_iter()
            .find(|f| f.message_id == id)
        {
            return Ok(f);
        }
        ensure!(
            Instant::now() < deadline,
            "{} never received the file",
            c.user()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Downloads `file` by `route` as one measured step; checks the result against
/// `digest` and deletes it (so that disk holds one download at a time).
async fn download(
    c: &Client,
    file: &FileMessage,
    root: &Path,
    route: Route,
    digest: &[u8; 32],
    usage: &mut Usage,
) -> Result<Duration> {
    let (name, dir) = match route {
        Route::ViaHub => ("via_hub", root.join("download-via-hub")),
        Route::Direct => ("direct", root.join("download-direct")),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    warm_page_cache(root, file.file_size()).await?;
    usage.start_step();
    let meter = Meter::new();
    let t0 = Instant::now();
    let got = c
        .download_file(file, &dir, route, meter.clone())
        .await
        .with_context(|| format!("downloading the file ({name})"))?;
    let took = t0.elapsed();
    usage.end_step(name);
    meter.done();
    eprintln!("  checking the SHA-256 of the download ...");
    let path = got.path.clone();
    let got_digest = blocking(move || sha256_file(&path)).await?;
    ensure!(
        got_digest == *digest,
        "the file downloaded {name} differs from the one sent: SHA-256 {} instead of {}",
        hex::encode(got_digest),
        hex::encode(digest)
    );
    ensure!(got.committed, "the download was not key-committed");
    std::fs::remove_file(&got.path).with_context(|| format!("removing {}", got.path.display()))?;
    Ok(took)
}

/// The providers, each a child process running `entente provider run`. Dropping this
/// kills them, so that they end on every path out of the driver, errors included.
struct Providers {
    running: Vec<ProviderProcess>,
}

struct ProviderProcess {
    domain: &'static str,
    listen: SocketAddr,
    log: PathBuf,
    child: Child,
}

impl Providers {
    /// Starts a process per provider of `fed`, logging to `<logs>/<domain>.log`.
    fn spawn(fed: &Federation, logs: &Path) -> Result<Self> {
        let exe = std::env::current_exe().context("locating this program")?;
        let mut me = Self {
            running: Vec::new(),
        };
        for domain in DOMAINS {
            let config = fed.config_path(domain)?;
            let listen = fed
                .members
                .get(domain)
                .map(|m| m.config.listen)
                .with_context(|| format!("no configuration for {domain}"))?;
            let log = logs.join(format!("{domain}.log"));
            let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
            let child = Command::new(&exe)
                .args(["--log", "warn", "provider", "run", "--config"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .with_context(|| format!("starting {} for {domain}", exe.display()))?;
            me.running.push(ProviderProcess {
                domain,
                listen,
                log,
                child,
            });
        }
        Ok(me)
    }

    /// Waits until every provider accepts connections.
    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for p in &mut self.running {
            loop {
                if let Some(status) = p.child.try_wait()? {
                    bail!(
                        "the provider {} exited at start ({status}); see {}",
                        p.domain,
                        p.log.display()
                    );
                }
                if tokio::net::TcpStream::connect(p.listen).await.is_ok() {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "the provider {} did not listen on {} within {} s",
                    p.domain,
                    p.listen,
                    timeout.as_secs()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The providers and this process (the clients), for measuring.
    fn parties(&self) -> Vec<Party> {
        let mut parties: Vec<Party> = self
            .running
            .iter()
            .map(|p| Party {
                name: p.domain.to_owned(),
                role: match p.domain {
                    HUB => "the room's hub",
                    SENDER => "stores the file",
                    _ => "the receiver's provider",
                },
                pid: p.child.id(),
            })
            .collect();
        parties.push(Party {
            name: "clients".to_owned(),
            role: "this process: sender, then receiver",
            pid: std::process::id(),
        });
        parties
    }

    fn stop(&mut self) {
        for p in &mut self.running {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.running.clear();
    }
}

impl Drop for Providers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Shows a transfer's progress and notes when each phase started.
struct Meter {
    bar: ProgressBar,
    started: Mutex<Vec<(Phase, Instant)>>,
}

impl Meter {
    fn new() -> Arc<Self> {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "  {msg:>24} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Arc::new(Self {
            bar,
            started: Mutex::new(Vec::new()),
        })
    }

    fn started(&self, phase: Phase) -> Option<Instant> {
        let started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        started.iter().find(|(p, _)| *p == phase).map(|(_, t)| *t)
    }

    fn done(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Meter {
    fn phase(&self, phase: Phase, done: u64, total: u64) {
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((phase, Instant::now()));
        let label = match phase {
            Phase::Hashing => "hashing",
            Phase::Uploading => "encrypting + uploading",
            Phase::Downloading => "downloading + decrypting",
            Phase::Resuming => "resuming",
        };
        self.bar.suspend(|| eprintln!("  {label} ..."));
        self.bar.set_message(label);
        self.bar.set_length(total);
        self.bar.set_position(done);
        self.bar.reset_eta();
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
}

impl Figures {
    fn print(&self) {
        let size = self.size;
        let ring = self.raw.ring(self.alg);
        let speed = |d: Duration| mib_per_s(size, d);
        let line = |what: &str, d: Duration, ratio: bool| {
            let s = speed(d);
            let vs = if ratio {
                format!("{:>7.1} % of raw ring {}", 100.0 * s / ring, self.alg)
            } else {
                String::new()
            };
            println!("  {what:<46}{:>8.2} s{s:>10.1} MiB/s{vs}", d.as_secs_f64());
        };
        println!(
            "\nload-files: {} ({size} bytes), {}; providers {HUB} (hub), {SENDER}, \
             {RECEIVER} as separate processes on loopback",
            human(size),
            self.alg
        );
        println!("send: bob@{SENDER} to his provider {SENDER}");
        line("hashing pass (SHA-256 of the file)", self.hashing, false);
        line("encrypt + upload pass", self.uploading, true);
        line("send_file in all", self.send_total, true);
        println!("download + decrypt: carol@{RECEIVER} (checked: SHA-256 equals the input's)");
        line(
            &format!("via hub ({RECEIVER} > {HUB} > {SENDER})"),
            self.via_hub,
            true,
        );
        line(&format!("direct from {SENDER}"), self.direct, true);
        println!(
            "raw in-process speed on this machine ({} MiB buffer, fastest of {})",
            raw::RAW_BUFFER >> 20,
            raw::RAW_RUNS
        );
        let reference = |what: &str, v: f64| println!("  {what:<46}{v:>20.1} MiB/s");
        reference("ring AES-128-GCM seal", self.raw.ring_aes128_gcm);
        if let Some(v) = self.raw.ring_aes256_gcm {
            reference("ring AES-256-GCM seal", v);
        }
        reference(
            &format!("entente BlobSealer {} (+ SHA-256)", self.alg),
            self.raw.sealer,
        );
        reference("SHA-256 (sha2)", self.raw.sha256);
        self.usage.print(MEMORY_BOUND_MIB);
        println!("{}", self.json());
    }

    fn json(&self) -> serde_json::Value {
        let ring = self.raw.ring(self.alg);
        let rate = |d: Duration| round1(mib_per_s(self.size, d));
        let ratio = |d: Duration| (mib_per_s(self.size, d) / ring * 1000.0).round() / 1000.0;
        let secs = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
        serde_json::json!({
            "driver": "load-files",
            "size_bytes": self.size,
            "alg": self.alg.to_string(),
            "units": {"rate": "MiB/s", "time": "s", "memory": "MiB"},
            "hash_pass_s": secs(self.hashing),
            "hash_pass_mib_s": rate(self.hashing),
            "upload_pass_s": secs(self.uploading),
            "upload_pass_mib_s": rate(self.uploading),
            "send_total_s": secs(self.send_total),
            "send_total_mib_s": rate(self.send_total),
            "download_via_hub_s": secs(self.via_hub),
            "download_via_hub_mib_s": rate(self.via_hub),
            "download_direct_s": secs(self.direct),
            "download_direct_mib_s": rate(self.direct),
            "raw_ring_aes128_gcm_mib_s": round1(self.raw.ring_aes128_gcm),
            "raw_ring_aes256_gcm_mib_s": self.raw.ring_aes256_gcm.map(round1),
            "raw_entente_sealer_mib_s": round1(self.raw.sealer),
            "raw_sha256_mib_s": round1(self.raw.sha256),
            "ratio_upload_pass_to_raw": ratio(self.uploading),
            "ratio_send_total_to_raw": ratio(self.send_total),
            "ratio_via_hub_to_raw": ratio(self.via_hub),
            "ratio_direct_to_raw": ratio(self.direct),
            "sha256_verified": true,
            "usage": self.usage.json(MEMORY_BOUND_MIB),
        })
    }
}

/// Parses `1073741824`, `64MiB`, `1GiB`, `500MB`.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{s:?}: expected a number of bytes, as in 1073741824 or 64MiB"))?;
    let unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?}; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"
            ));
        }
    };
    number
        .checked_mul(unit)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// SplitMix64 (Steele, Lea and Flood, 2014): fast, and its output does not compress,
/// which is all a test file needs.
struct Prng(u64);

impl Prng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut words = buf.chunks_exact_mut(8);
        for w in &mut words {
            w.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = words.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// Writes `size` pseudo-random bytes to `path` in 1 MiB pieces; returns their SHA-256.
fn write_random_file(path: &Path, size: u64) -> Result<[u8; 32]> {
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut prng = Prng::new(size ^ 0x0065_6e74_656e_7465);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        prng.fill(&mut buf[..n]);
        f.write_all(&buf[..n])
            .with_context(|| format!("writing {}", path.display()))?;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    f.sync_all()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(h.finalize().into())
}

/// Writes `size` bytes to a scratch file under `dir` and deletes it, leaving that
/// much page-cache memory freed and ready for the next writes.
async fn warm_page_cache(dir: &Path, size: u64) -> Result<()> {
    let path = dir.join("scratch.bin");
    blocking(move || {
        let mut f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let buf = vec![0x5a; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
            f.write_all(&buf[..n])
                .with_context(|| format!("writing {}", path.display()))?;
            left -= n as u64;
        }
        drop(f);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
    })
    .await
}

fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// Runs `f` on a thread where blocking is fine.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow!("a worker thread failed: {e}"))?
}

/// Waits for Ctrl-C or SIGTERM; names it. A signal that cannot be watched is
/// never reported.
async fn stop_signal() -> &'static str {
    use std::future::pending;
    use tokio::signal::unix::{SignalKind, signal};
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            pending::<()>().await;
        }
    };
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                if s.recv().await.is_none() {
                    pending::<()>().await;
                }
            }
            Err(_) => pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => "Ctrl-C",
        () = term => "SIGTERM",
    }
}

/// After a failure: the end of each provider's log, which often says why.
fn print_log_tails(root: &Path) {
    for d in DOMAINS {
        let log = root.join(format!("{d}.log"));
        let Ok(text) = std::fs::read_to_string(&log) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            continue;
        }
        eprintln!("--- the last lines of {d}'s log ({}):", log.display());
        for l in &lines[lines.len().saturating_sub(10)..] {
            eprintln!("{l}");
        }
    }
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB / d.as_secs_f64().max(1e-9)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= MIB * 1024.0 {
        format!("{:.2} GiB", b / MIB / 1024.0)
    } else if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64 mib"), Ok(64 << 20));
        assert_eq!(parse_size("1073741824"), Ok(1 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("7B"), Ok(7));
        assert!(parse_size("1.5GiB").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn the_test_file_generator_fills_odd_lengths() {
        let mut a = vec![0u8; 13];
        Prng::new(3).fill(&mut a);
        let mut b = vec![0u8; 16];
        Prng::new(3).fill(&mut b);
        assert_eq!(a[..8], b[..8]);
        assert_ne!(a, vec![0u8; 13]);
    }
}
