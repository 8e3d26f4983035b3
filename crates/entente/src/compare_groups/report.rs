//! The Markdown report: how it was measured, what each mechanism guarantees, what
//! the figures show, and the tables.

use std::fmt::Write as _;

use super::{Cost, Mechanism, Results, Row};

/// The whole report. `plot` is the PNG's file name, relative to the report.
pub(crate) fn markdown(r: &Results, plot: &str) -> String {
    let mut s = String::new();
    let p = &r.plan;
    let _ = writeln!(
        s,
        "# Group mechanisms compared: pairwise channels, sender keys, MLS\n\n\
         Written by `entente compare-groups` (issue 5); rerun it rather than editing \
         this file. Every figure comes from Entente's own implementations, run in one \
         process: `entente_core::signal::session` (Double Ratchet over X3DH/PQXDH), \
         `entente_core::signal::sender_keys`, and MLS through OpenMLS with Entente's \
         ciphersuite and credentials (`entente_core::mls`).\n"
    );
    let _ = writeln!(s, "- Command: `{}`", r.command);
    let _ = writeln!(s, "- Date: {} (UTC)", today());
    let _ = writeln!(s, "- Machine: {}", machine());
    let _ = writeln!(
        s,
        "- Parameters: {} plaintext bytes per message; per-message figures are the mean \
         of {} messages, membership changes the median of {} repetitions from the same \
         state; receiving costs are measured on up to {} members spread over the group \
         and averaged.",
        p.payload, p.messages, p.changes, p.receivers
    );
    let _ = writeln!(
        s,
        "- Run time: {}{}\n",
        duration(r.elapsed.as_secs_f64() * 1e6),
        contention(r)
    );
    let _ = writeln!(s, "![Bytes and CPU time against group size]({plot})\n");
    let _ = writeln!(
        s,
        "The plot: bytes delivered and sender CPU time per message (top), bytes \
         delivered and CPU time of all members together per membership change (bottom; \
         add solid, remove dashed; zero, as for a pairwise removal, cannot be drawn on \
         a log scale). Both axes are logarithmic.\n"
    );
    security(&mut s);
    findings(&mut s, &r.rows);
    method(&mut s);
    tables(&mut s, &r.rows);
    s
}

fn security(s: &mut String) {
    s.push_str(
        "## What each mechanism guarantees\n\n\
         | | forward secrecy (FS) | post-compromise security (PCS) | a removed member |\n\
         |---|---|---|---|\n\
         | pairwise | Per message: each message key comes from a chain key that is \
         ratcheted forward and deleted (skipped messages' keys are kept until they \
         arrive, up to a limit). | Per pair, after a round trip: the next DH ratchet \
         step mixes in a key the attacker never saw. A group heals once every member \
         the compromised device talks to has answered it. | Is simply no longer \
         encrypted to: nothing to send, immediate. |\n\
         | sender keys | Per message, through the hash chain: a stolen chain key \
         does not give earlier message keys. | None until the sender makes a new \
         sender key: a stolen chain key yields every later message key of that \
         sender, and every member holds every sender's chain, so one compromised \
         member exposes all senders. Healing needs every sender to rotate, and the \
         pairwise channels that carry the new keys to have healed. | Keeps every \
         sender's chain and reads all later messages until each remaining member has \
         rotated its key: the rotation measured under \"remove\" below. It cannot \
         forge others' messages (each sender signs with its own key). |\n\
         | MLS | Per message within an epoch (the secret tree ratchets each \
         sender's chain and deletes used keys) and per epoch (each commit replaces \
         the epoch secrets). Entente keeps 5 past epochs' keys for late messages, \
         which delays FS for those epochs. | After the compromised member commits \
         (an Update, or any commit of its own, since Entente's commits always carry a \
         path) or is removed: the new epoch's secrets come from a path secret the \
         attacker cannot decrypt. A commit by another member alone does not heal it. \
         | Cannot derive the epoch secrets after the commit that removes it: one \
         Commit, immediately. |\n\n",
    );
}

/// The figures of `m` at `n`, if measured.
fn find(rows: &[Row], m: Mechanism, n: usize) -> Option<&Row> {
    rows.iter().find(|r| r.mechanism == m && r.size == n)
}

fn findings(s: &mut String, rows: &[Row]) {
    let Some(big) = rows.iter().map(|r| r.size).max() else {
        return;
    };
    let small = rows.iter().map(|r| r.size).min().unwrap_or(big);
    s.push_str("## What the measurements show\n\n");
    let msg = |m| find(rows, m, big).and_then(|r| r.measured.message);
    let msg_small = |m| find(rows, m, small).and_then(|r| r.measured.message);

    // Messages.
    if let (Some(pw), Some(pw0)) = (msg(Mechanism::Pairwise), msg_small(Mechanism::Pairwise)) {
        let _ = writeln!(
            s,
            "- **Sending a message.** With pairwise channels the sender encrypts once \
             per member: at {big} members it uploads {} and spends {} of CPU per message \
             ({:.0} times its cost at {small} members). The server delivers what it \
             was given: {} in all.",
            bytes(pw.sent),
            duration(pw.sender_us),
            pw.sender_us / pw0.sender_us.max(1e-9),
            bytes(pw.delivered)
        );
    }
    let once: Vec<(Mechanism, Cost)> = [Mechanism::SenderKeys, Mechanism::Mls]
        .into_iter()
        .filter_map(|m| msg(m).map(|c| (m, c)))
        .collect();
    if !once.is_empty() {
        let list = |f: &dyn Fn(&Cost) -> String| {
            once.iter()
                .map(|(m, c)| format!("{} ({m})", f(c)))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        let _ = writeln!(
            s,
            "  With {} the sender encrypts once: at {big} members it uploads {} and \
             spends {} of CPU.",
            once.iter()
                .map(|(m, _)| m.label())
                .collect::<Vec<_>>()
                .join(" and "),
            list(&|c| bytes(c.sent)),
            list(&|c| duration(c.sender_us)),
        );
    }
    let all: Vec<(Mechanism, Cost)> = [Mechanism::Pairwise, Mechanism::SenderKeys, Mechanism::Mls]
        .into_iter()
        .filter_map(|m| msg(m).map(|c| (m, c)))
        .collect();
    if all.len() > 1 {
        let _ = writeln!(
            s,
            "  Every member still gets a copy of its own, from the sender or from the \
             server's fan-out, so the bytes delivered hardly differ: {} at {big} \
             members. What differs is the sender's upload and CPU.",
            all.iter()
                .map(|(m, c)| format!("{} ({m})", bytes(c.delivered)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !all.is_empty() {
        let _ = writeln!(
            s,
            "- **Receiving a message** is one decryption in every mechanism: {} per \
             member at {big} members. The pairwise channel authenticates with a MAC; a \
             sender-key message carries an XEdDSA signature and an MLS PrivateMessage an \
             Ed25519 signature, whose checks are most of a small group's receiving cost.",
            all.iter()
                .map(|(m, c)| format!("{} ({m})", duration(c.receiver_us)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let state = find(rows, Mechanism::Mls, big).and_then(|r| r.measured.message_state);
    if let (Some(m), Some(m0), Some(state)) =
        (msg(Mechanism::Mls), msg_small(Mechanism::Mls), state)
        && m.receiver_us > 2.0 * m0.receiver_us
    {
        let _ = writeln!(
            s,
            "  MLS's per-message cost grows with the group ({} to receive at {small} \
             members, {} at {big}; {} and {} to send) although its cryptography does \
             not: after every message sent or received, OpenMLS writes its whole \
             message-secrets store back to storage, {} at {big} members (the epoch's \
             secret tree, and the secrets and member lists of the {} past epochs Entente \
             keeps for late messages), and serialising it dominates. That is a cost of \
             OpenMLS's storage design as Entente uses it, not of MLS: a store that wrote \
             only the ratchet that moved would make it constant.",
            duration(m0.receiver_us),
            duration(m.receiver_us),
            duration(m0.sender_us),
            duration(m.sender_us),
            bytes(state),
            super::mls::MAX_PAST_EPOCHS,
        );
    }

    // Adds.
    let add = |m| find(rows, m, big).map(|r| r.measured.add);
    let mut lines = Vec::new();
    if let Some(c) = add(Mechanism::Pairwise) {
        lines.push(format!(
            "with pairwise channels the newcomer fetches {big} prekey bundles and sets \
             up {big} sessions ({} of its CPU, {} per member to accept; {} delivered in \
             all, mostly the ML-KEM keys and ciphertexts of PQXDH)",
            duration(c.sender_us),
            duration(c.receiver_us),
            bytes(c.delivered)
        ));
    }
    if let Some(c) = add(Mechanism::SenderKeys) {
        lines.push(format!(
            "with sender keys the same sessions carry the newcomer's sender key out \
             and every member's back ({} for the newcomer, {} delivered)",
            duration(c.sender_us),
            bytes(c.delivered)
        ));
    }
    if let Some(c) = add(Mechanism::Mls) {
        lines.push(format!(
            "with MLS the committer sends one Commit, for every member, and a Welcome \
             with the ratchet tree, for the newcomer ({} sent; {} delivered): {} of the \
             committer's CPU, {} for each member and {} for the newcomer",
            bytes(c.sent),
            bytes(c.delivered),
            duration(c.sender_us),
            duration(c.receiver_us),
            duration(c.newcomer_us),
        ));
    }
    if !lines.is_empty() {
        let _ = writeln!(
            s,
            "- **Adding a member** to a group of {big}: {}.",
            lines.join("; ")
        );
    }

    // Removals.
    let rm = |m| find(rows, m, big).map(|r| r.measured.remove);
    let mut lines = Vec::new();
    if rm(Mechanism::Pairwise).is_some() {
        lines.push("pairwise channels need nothing: the others stop encrypting to it".into());
    }
    if let Some(c) = rm(Mechanism::SenderKeys) {
        lines.push(format!(
            "with sender keys every one of the {} remaining members makes a new sender \
             key and sends it over {} pairwise sessions: {} messages, {} delivered, {} \
             of CPU for each member and {} for the group, growing with the square of \
             the size",
            c.senders,
            c.senders.saturating_sub(1),
            count(c.senders * c.senders.saturating_sub(1)),
            bytes(c.delivered),
            duration(c.sender_us + c.receiver_us),
            duration(c.total_us())
        ));
    }
    if let Some(c) = rm(Mechanism::Mls) {
        let fresh = rm(Mechanism::MlsFresh)
            .map(|f| {
                format!(
                    " On the fresh tree of a group one commit has just created, the \
                     parent nodes are blank, so the committer encrypts its path to the \
                     leaves of whole blank subtrees one by one instead of to one node \
                     per level: the Commit grows to {} ({} delivered, {} for the \
                     committer), until members' own commits fill the tree.",
                    bytes(f.sent),
                    bytes(f.delivered),
                    duration(f.sender_us)
                )
            })
            .unwrap_or_default();
        lines.push(format!(
            "with MLS one Commit of {} (its path holds one encryption per level of a \
             full tree) reaches every remaining member: {} delivered, {} for the \
             committer and {} for each member.{fresh}",
            bytes(c.sent),
            bytes(c.delivered),
            duration(c.sender_us),
            duration(c.receiver_us)
        ));
    }
    if !lines.is_empty() {
        let _ = writeln!(
            s,
            "- **Removing a member** from {big}: {}",
            lines.join("; ")
        );
    }
    s.push_str(
        "- **In short.** Pairwise channels are simple and cost nothing to change, but \
         the sender pays one encryption and one upload per member for every message. \
         Sender keys make sending cheap and keep pairwise sessions only to distribute \
         keys, which makes a removal expensive (it grows with the square of the group) \
         and gives up post-compromise security between rotations. MLS sends each message \
         once and one Commit per change, shuts a removed member out at once and \
         heals after a compromise as soon as the member commits; in exchange every \
         member works on every Commit, Commits are large while the tree has blank \
         nodes, and, with OpenMLS's storage as Entente uses it, every message costs \
         work that grows with the group.\n\n",
    );
}

fn method(s: &mut String) {
    s.push_str(
        "## How it is measured\n\n\
         - **Bytes** are those of the protocol messages: libsignal's SignalMessage, \
         PreKeySignalMessage, SenderKeyMessage and SenderKeyDistributionMessage, and \
         MLS messages as TLS-encoded MLSMessage. Not counted: TLS and HTTP, MIMI \
         framing, sealed-sender envelopes, and group-management notices that tell \
         members who is in the group (which pairwise and sender keys need beside \
         their keys, and which MLS carries in its Commit).\n\
         - **Sent** is what the sending member uploads; **delivered** is what the \
         server hands out, every recipient's copy counted, plus key material fetched \
         from the directory for a change: prekey bundles (key bytes and signatures, \
         without JSON) and the newcomer's KeyPackage.\n\
         - **CPU** is wall-clock time of single-threaded work (`std::time::Instant`), \
         encoding and decoding included. Receivers: over the sampled members (the mean \
         for messages, the median for changes); \"all members\" multiplies it by the number of members that receive and adds \
         the senders' and the newcomer's share.\n\
         - **Pairwise message**: one SignalMessage per other member over sessions that \
         have seen a round trip. Each measured run is a series of messages from one \
         sender, so its first message includes a DH ratchet step (a new ratchet key \
         at the sender, a DH at the recipient) and the rest are chain steps.\n\
         - **Sender-key message**: one SenderKeyMessage (AES-CBC, signed), fanned out.\n\
         - **MLS message**: one PrivateMessage (signed inside, AES-GCM).\n\
         - **Pairwise add**: the newcomer (the sender here) fetches every member's \
         prekey bundle (with a Kyber prekey, so PQXDH) and sends each a first \
         PreKeySignalMessage; each member accepts one.\n\
         - **Sender-key add**: the same, the first messages carrying the newcomer's \
         SenderKeyDistributionMessage; every member answers over the new session with \
         its own (the newcomer receives them all: its CPU includes them).\n\
         - **MLS add**: the committer fetches the KeyPackage and commits (with a path, \
         as Entente's commits do), sending the Commit to every member and the Welcome \
         with the ratchet tree (Entente does not put the tree in the Welcome) to the \
         newcomer. Members process and merge the Commit; the newcomer joins from the \
         Welcome. KeyPackages and prekeys are made in advance and not timed.\n\
         - **Pairwise remove**: nothing.\n\
         - **Sender-key remove**: every remaining member makes a new sender key and \
         sends its distribution message to every other remaining member over their \
         pairwise session. Sender figures are one member's sending part, receiver \
         figures one member's receiving part (decrypting and installing everyone \
         else's key); every remaining member does both.\n\
         - **MLS remove**: one Commit (with the removal and a path), processed and \
         merged by the remaining members. The full tree is one where every parent \
         node holds a key, as in a group whose members have each committed; the \
         fresh tree is that of a group one commit has just created, where only the \
         creator's path is set (the creator then updated its own leaf five times, so \
         that members keep as many past epochs as in an established group).\n\n",
    );
}

/// The three tables, with a row per size and mechanism.
fn tables(s: &mut String, rows: &[Row]) {
    s.push_str(
        "## Per message\n\n\
         | members | mechanism | sent by the sender | delivered in total | sender CPU | CPU per receiver | CPU, all members |\n\
         |---:|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        if let Some(c) = r.measured.message {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.size,
                r.mechanism,
                bytes(c.sent),
                bytes(c.delivered),
                duration(c.sender_us),
                duration(c.receiver_us),
                duration(c.total_us())
            );
        }
    }
    s.push_str(
        "\n## Adding one member\n\n\
         \"members\" is the size before the change. The initiator is the newcomer for \
         pairwise and sender keys, the committer for MLS.\n\n\
         | members | mechanism | sent by the initiator | delivered in total | initiator CPU | CPU per existing member | newcomer CPU | CPU, all members |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let c = r.measured.add;
        let newcomer = match r.mechanism {
            Mechanism::Pairwise | Mechanism::SenderKeys => "(initiator)".to_owned(),
            Mechanism::Mls | Mechanism::MlsFresh => duration(c.newcomer_us),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.size,
            r.mechanism,
            bytes(c.sent),
            bytes(c.delivered),
            duration(c.sender_us),
            duration(c.receiver_us),
            newcomer,
            duration(c.total_us())
        );
    }
    s.push_str(
        "\n## Removing one member\n\n\
         \"members\" is the size before the change. The sender is the committer for \
         MLS; with sender keys every remaining member sends (figures for one) and \
         receives.\n\n\
         | members | mechanism | sent per sender | delivered in total | CPU per sender | CPU per receiver | CPU, all members |\n\
         |---:|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let c = r.measured.remove;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.size,
            r.mechanism,
            bytes(c.sent),
            bytes(c.delivered),
            duration(c.sender_us),
            duration(c.receiver_us),
            duration(c.total_us())
        );
    }
}

/// "997,002": a count with thousands separators.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "12 B", "1,234 B", "12.3 kB", "4.56 MB" (powers of 1000).
pub(crate) fn bytes(b: u64) -> String {
    let x = b as f64;
    if b < 10_000 {
        format!("{} B", count(b))
    } else if x < 1e6 {
        format!("{} kB", sig3(x / 1e3))
    } else if x < 1e9 {
        format!("{} MB", sig3(x / 1e6))
    } else {
        format!("{} GB", sig3(x / 1e9))
    }
}

/// "0", "12.3 µs", "4.56 ms", "1.23 s".
pub(crate) fn duration(us: f64) -> String {
    if us <= 0.0 {
        "0".into()
    } else if us < 1e3 {
        format!("{} µs", sig3(us))
    } else if us < 1e6 {
        format!("{} ms", sig3(us / 1e3))
    } else if us < 600e6 {
        format!("{} s", sig3(us / 1e6))
    } else {
        format!("{:.1} min", us / 60e6)
    }
}

/// Three significant digits (for values from 1 to 999).
fn sig3(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// How busy the machine was: the share of the run the measuring thread had a
/// core, and the load average. Timings are wall-clock: on a busy machine they
/// include time spent waiting for the CPU.
fn contention(r: &Results) -> String {
    let mut parts = Vec::new();
    if let Some(cpu) = r.cpu {
        let wall = r.elapsed.as_secs_f64();
        if wall > 0.0 {
            parts.push(format!(
                "the measuring thread ran on a core {:.0}% of that time",
                100.0 * cpu.as_secs_f64() / wall
            ));
        }
    }
    if let (Some(a), Some(b)) = r.load {
        parts.push(format!(
            "load average {a:.1} at the start, {b:.1} at the end"
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(
            " ({}; the timings are wall-clock, so a busy machine inflates them)",
            parts.join("; ")
        )
    }
}

/// Today's date, from the system clock (UTC).
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// CPU model, cores, memory, kernel, and the build profile.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| format!(", {:.0} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| format!(", Linux {}", k.trim()))
        .unwrap_or_default();
    let build = if cfg!(debug_assertions) {
        "debug build (unoptimised: figures not representative)"
    } else {
        "release build"
    };
    format!(
        "{cpu}, {cores} core{}{memory}{kernel}; {build}, one thread",
        if cores == 1 { "" } else { "s" }
    )
}

/// The (members, mechanism) of every row of the table under the heading that
/// starts with `table` ("message", "add", "remove").
#[cfg(test)]
pub(crate) fn table_rows(md: &str, table: &str) -> Vec<(usize, String)> {
    let heading = match table {
        "message" => "## Per message",
        "add" => "## Adding one member",
        _ => "## Removing one member",
    };
    let Some(start) = md.find(heading) else {
        return Vec::new();
    };
    let section = &md[start + heading.len()..];
    let section = section.split("\n## ").next().unwrap_or("");
    section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let n = cells.get(1)?.parse().ok()?;
            Some((n, (*cells.get(2)?).to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1234), "1,234 B");
        assert_eq!(count(997_002), "997,002");
        assert_eq!(count(1_000_000), "1,000,000");
        assert_eq!(count(999), "999");
        assert_eq!(bytes(12_345), "12.3 kB");
        assert_eq!(bytes(4_560_000), "4.56 MB");
        assert_eq!(duration(0.0), "0");
        assert_eq!(duration(12.34), "12.3 µs");
        assert_eq!(duration(4567.0), "4.57 ms");
        assert_eq!(duration(1_234_000.0), "1.23 s");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_419), (2025, 11, 27));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
