//! `entente compare-groups`: what each group mechanism costs as a group grows.
//!
//! Three ways to encrypt for a group, each with our own implementation, run in
//! this process (no network, no providers):
//!
//! 1. **Pairwise** Double Ratchet channels (`entente_core::signal::session`): a
//!    message is encrypted once per other member; a newcomer sets up a session
//!    (X3DH/PQXDH) with every member; a removal sends nothing.
//! 2. **Sender keys** (`entente_core::signal::sender_keys`), as in Signal and
//!    WhatsApp groups: a message is encrypted once and fanned out by the server;
//!    a newcomer receives every member's sender key over pairwise sessions and
//!    sends its own; after a removal every remaining member makes a new sender
//!    key and sends it, pairwise, to every other remaining member.
//! 3. A **group key**: MLS (RFC 9420, OpenMLS) as Entente uses it
//!    (`entente_core::mls`): one PrivateMessage per message; an add is a Commit
//!    and a Welcome; a removal a Commit that every remaining member processes.
//!    Membership changes are measured on a full tree and on the fresh tree of a
//!    group that one commit just created.
//!
//! For each group size it measures the bytes the sender uploads and the bytes
//! the server delivers in total, and the CPU time of the sender, of one receiving
//! member (a few spread over the group are measured and averaged) and of all
//! members together, per message and per membership change. It writes a Markdown
//! report (`group-mechanisms.md`) and a plot (`group-mechanisms.png`).

mod mls;
mod plot;
mod report;
mod signal;

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

/// The options of `entente compare-groups` (main.rs gives the command's help).
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Group sizes to measure (members, each at least 2), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2,5,10,20,50,100,200,500,1000"
    )]
    pub sizes: Vec<usize>,
    /// Messages one member sends per group size and mechanism; every sampled
    /// receiver decrypts them all. Per-message figures are their mean.
    #[arg(long, default_value_t = 50)]
    pub messages: usize,
    /// How many times each membership change (add one member, remove one member)
    /// is measured per group size and mechanism, each time from the same state.
    #[arg(long, default_value_t = 5)]
    pub changes: usize,
    /// Members whose receiving cost is measured, spread over the group. Every
    /// other member is taken to cost the same (their mean).
    #[arg(long, default_value_t = 3)]
    pub receivers: usize,
    /// Plaintext bytes in each message.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Mechanisms to measure, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Mechanism>,
    /// Directory for group-mechanisms.md and group-mechanisms.png.
    #[arg(long, default_value = "docs")]
    pub out: PathBuf,
    /// TrueType font for the plot's text. Default: DejaVu Sans, from Debian's
    /// fonts-dejavu-core package.
    #[arg(long)]
    pub font: Option<PathBuf>,
}

/// A group mechanism.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, ValueEnum)]
pub enum Mechanism {
    /// Pairwise Double Ratchet channels.
    Pairwise,
    /// Sender keys, distributed over pairwise channels.
    SenderKeys,
    /// MLS; membership changes on a full tree.
    Mls,
    /// MLS membership changes on the fresh tree of a group one commit created
    /// (messages cost the same as with `mls`).
    MlsFresh,
}

impl Mechanism {
    const ALL: [Mechanism; 4] = [
        Mechanism::Pairwise,
        Mechanism::SenderKeys,
        Mechanism::Mls,
        Mechanism::MlsFresh,
    ];

    fn label(self) -> &'static str {
        match self {
            Mechanism::Pairwise => "pairwise",
            Mechanism::SenderKeys => "sender keys",
            Mechanism::Mls => "MLS",
            Mechanism::MlsFresh => "MLS, fresh tree",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What one operation (a message, adding a member, removing one) cost at one
/// group size.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Cost {
    /// Bytes one sending member uploads.
    pub sent: u64,
    /// Bytes the server delivers, all recipients together (key material fetched
    /// from the directory included).
    pub delivered: u64,
    /// CPU time of one sending member, in microseconds.
    pub sender_us: f64,
    /// How many members send (1, or every remaining member when all rotate their
    /// sender keys).
    pub senders: u64,
    /// CPU time of one receiving member, in microseconds (the mean of the
    /// sampled members).
    pub receiver_us: f64,
    /// How many members receive.
    pub receivers: u64,
    /// CPU time of the newcomer when it is not the sender (MLS: the Welcome).
    pub newcomer_us: f64,
}

impl Cost {
    /// CPU time of all members together, in microseconds.
    pub fn total_us(&self) -> f64 {
        self.sender_us * self.senders as f64
            + self.receiver_us * self.receivers as f64
            + self.newcomer_us
    }
}

/// What measuring one mechanism at one group size gives.
#[derive(Clone, Debug)]
pub(crate) struct Measured {
    /// None for the fresh MLS tree (messages do not depend on the tree).
    pub message: Option<Cost>,
    pub add: Cost,
    pub remove: Cost,
    /// MLS: bytes of the message-secrets store OpenMLS rewrites to storage after
    /// every message.
    pub message_state: Option<u64>,
}

/// All figures of one mechanism at one group size.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub size: usize,
    pub mechanism: Mechanism,
    pub measured: Measured,
}

/// How much to measure.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub messages: usize,
    pub changes: usize,
    pub receivers: usize,
    pub payload: usize,
}

/// Everything the report needs.
pub(crate) struct Results {
    pub rows: Vec<Row>,
    pub plan: Plan,
    pub command: String,
    pub elapsed: Duration,
    /// CPU time the measuring thread got over the run, if the system tells.
    pub cpu: Option<Duration>,
    /// The 1-minute load average at the start and at the end.
    pub load: (Option<f64>, Option<f64>),
}

pub fn run(args: CompareArgs) -> Result<()> {
    let started = Instant::now();
    let cpu_at_start = thread_cpu();
    let load_at_start = load_average();
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    ensure!(!sizes.is_empty(), "give at least one group size");
    ensure!(
        sizes.iter().all(|n| (2..=100_000).contains(n)),
        "group sizes must be between 2 and 100000"
    );
    ensure!(args.messages >= 1, "--messages must be at least 1");
    ensure!(args.changes >= 1, "--changes must be at least 1");
    ensure!(args.receivers >= 1, "--receivers must be at least 1");
    let mechanisms: Vec<Mechanism> = if args.only.is_empty() {
        Mechanism::ALL.to_vec()
    } else {
        let mut m = args.only.clone();
        m.sort_unstable();
        m.dedup();
        m
    };
    // Fail on a missing font now, not after minutes of measuring.
    let font = plot::load_font(args.font.as_deref())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let plan = Plan {
        messages: args.messages,
        changes: args.changes,
        receivers: args.receivers,
        payload: args.payload,
    };

    let progress =
        Progress::new(sizes.iter().map(|n| *n as u64).sum::<u64>() * mechanisms.len() as u64);
    let mut rows = Vec::new();
    for &n in &sizes {
        for &mechanism in &mechanisms {
            progress.task(mechanism, n);
            rows.push(measure(mechanism, n, &plan, &progress)?);
            progress.done(n);
        }
    }
    progress.finish();

    let results = Results {
        rows,
        plan,
        command: command_line(),
        elapsed: started.elapsed(),
        cpu: thread_cpu()
            .zip(cpu_at_start)
            .map(|(end, start)| end.saturating_sub(start)),
        load: (load_at_start, load_average()),
    };
    let md = args.out.join("group-mechanisms.md");
    let png = args.out.join("group-mechanisms.png");
    plot::draw(&results, &png, font)?;
    std::fs::write(&md, report::markdown(&results, "group-mechanisms.png"))
        .with_context(|| format!("writing {}", md.display()))?;
    eprintln!(
        "compare-groups: {} rows in {:.0} s; wrote {} and {}",
        results.rows.len(),
        results.elapsed.as_secs_f64(),
        md.display(),
        png.display()
    );
    Ok(())
}

fn measure(mechanism: Mechanism, n: usize, plan: &Plan, progress: &Progress) -> Result<Row> {
    let measured = match mechanism {
        Mechanism::Pairwise => signal::pairwise(n, plan, progress)?,
        Mechanism::SenderKeys => signal::sender_keys(n, plan, progress)?,
        Mechanism::Mls => mls::measure(n, mls::Tree::Full, true, plan, progress)?,
        Mechanism::MlsFresh => mls::measure(n, mls::Tree::Fresh, false, plan, progress)?,
    };
    Ok(Row {
        size: n,
        mechanism,
        measured,
    })
}

/// The command as it was run, for the report.
fn command_line() -> String {
    let mut args = std::env::args();
    let program = args
        .next()
        .map(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or(p)
        })
        .unwrap_or_else(|| "entente".into());
    std::iter::once(program)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU time this thread has run, from Linux's `/proc/thread-self/schedstat`.
/// Only to tell in the report how much of the wall-clock time the measuring
/// thread had the CPU (the timings themselves are wall-clock).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// The 1-minute load average, from `/proc/loadavg`.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub(crate) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Timings of one operation, in microseconds when summarised. Messages report the
/// mean (a series of messages has its costly first step, as a conversation has);
/// membership changes the median of their repetitions, which a preempted
/// repetition on a busy machine does not move.
#[derive(Default, Debug)]
pub(crate) struct Samples(Vec<Duration>);

impl Samples {
    pub(crate) fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// The mean, 0 without samples.
    pub(crate) fn mean_us(&self) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.iter().map(|d| micros(*d)).sum::<f64>() / self.0.len() as f64
    }

    /// The median (the mean of the middle two for an even count), 0 without
    /// samples.
    pub(crate) fn median_us(&self) -> f64 {
        let mut v: Vec<f64> = self.0.iter().map(|d| micros(*d)).collect();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        match (
            v.len() % 2,
            v.get(mid),
            mid.checked_sub(1).and_then(|i| v.get(i)),
        ) {
            (1, Some(m), _) => *m,
            (0, Some(hi), Some(lo)) => (hi + lo) / 2.0,
            _ => 0.0,
        }
    }
}

/// The progress bar: its length is the sum of the group sizes over the tasks, so
/// the estimate of the time left weighs large groups more.
pub(crate) struct Progress {
    bar: ProgressBar,
    task: std::cell::RefCell<String>,
}

impl Progress {
    fn new(total: u64) -> Self {
        // indicatif draws only when stderr is a terminal.
        let bar = ProgressBar::new(total);
        if let Ok(style) =
            ProgressStyle::with_template("  [{elapsed_precise}] [{bar:30}] {percent:>3}%  {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Self {
            bar,
            task: std::cell::RefCell::new(String::new()),
        }
    }

    fn task(&self, mechanism: Mechanism, n: usize) {
        *self.task.borrow_mut() = format!("{mechanism}, {n} members");
        self.bar.set_message(self.task.borrow().clone());
    }

    /// What the current task is doing now.
    pub(crate) fn step(&self, what: impl fmt::Display) {
        self.bar
            .set_message(format!("{}: {what}", self.task.borrow()));
    }

    fn done(&self, n: usize) {
        self.bar.inc(n as u64);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn mean_and_median() {
        let mut s = Samples::default();
        assert_eq!((s.mean_us(), s.median_us()), (0.0, 0.0));
        for us in [5, 1, 100] {
            s.push(Duration::from_micros(us));
        }
        assert!((s.mean_us() - 35.333).abs() < 0.01);
        assert!((s.median_us() - 5.0).abs() < 1e-9);
        s.push(Duration::from_micros(7));
        assert!((s.median_us() - 6.0).abs() < 1e-9);
    }

    /// A quick run with tiny groups writes a table with a row per size and
    /// mechanism, and a PNG.
    #[test]
    fn tiny_run_writes_table_and_plot() {
        let dir = tempfile::tempdir().unwrap();
        run(CompareArgs {
            sizes: vec![3, 2],
            messages: 2,
            changes: 1,
            receivers: 2,
            payload: 10,
            only: Vec::new(),
            out: dir.path().to_owned(),
            font: None,
        })
        .unwrap();
        let md = std::fs::read_to_string(dir.path().join("group-mechanisms.md")).unwrap();
        let png = std::fs::read(dir.path().join("group-mechanisms.png")).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        // The IHDR chunk comes first: width and height, big-endian.
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1600);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 1200);
        assert!(png.len() > 10_000, "the PNG is suspiciously small");
        for table in ["message", "add", "remove"] {
            let rows = report::table_rows(&md, table);
            for n in [2, 3] {
                for m in Mechanism::ALL {
                    if table == "message" && m == Mechanism::MlsFresh {
                        continue;
                    }
                    assert!(
                        rows.iter().any(|r| r.0 == n && r.1 == m.label()),
                        "no {table} row for {m} at {n} members in:\n{md}"
                    );
                }
            }
        }
        for property in ["forward secrecy", "post-compromise security"] {
            assert!(
                md.contains(property),
                "the report never mentions {property}"
            );
        }
    }
}
