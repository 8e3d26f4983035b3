//! What each party of a `load-files` run uses in each step, from `/proc`: its peak
//! resident memory (`VmHWM`, reset at the start of each step through
//! `/proc/PID/clear_refs`) and its CPU time; and the CPU time the rest of the
//! machine took meanwhile, which says how far other work skewed the speeds.

use std::time::{Duration, Instant};

/// Clock ticks per second of the CPU times in `/proc` (`USER_HZ`, which Linux fixes
/// at 100 for user space).
const USER_HZ: f64 = 100.0;

/// A process taking part.
pub struct Party {
    pub name: String,
    /// What it does in the run, for the report.
    pub role: &'static str,
    pub pid: u32,
}

/// Usage per party and step.
pub struct Usage {
    parties: Vec<Party>,
    steps: Vec<Step>,
    started: Option<Start>,
    /// Every reset worked: each memory figure is the peak of its step alone.
    /// Otherwise they are peaks since the process started.
    per_step_rss: bool,
}

struct Start {
    at: Instant,
    /// CPU ticks of each party.
    cpu: Vec<Option<u64>>,
    /// Busy ticks of the whole machine.
    machine: Option<u64>,
}

struct Step {
    name: &'static str,
    wall: Duration,
    /// MiB, per party.
    rss: Vec<Option<f64>>,
    /// CPU seconds, per party.
    cpu: Vec<Option<f64>>,
    /// CPU seconds of every other process on the machine.
    others: Option<f64>,
}

impl Usage {
    pub fn new(parties: Vec<Party>) -> Self {
        Self {
            parties,
            steps: Vec::new(),
            started: None,
            per_step_rss: true,
        }
    }

    /// Starts a step: resets every party's peak memory to its current size and
    /// notes the CPU times.
    pub fn start_step(&mut self) {
        for p in &self.parties {
            self.per_step_rss &= std::fs::write(format!("/proc/{}/clear_refs", p.pid), "5").is_ok();
        }
        self.started = Some(Start {
            at: Instant::now(),
            cpu: self.parties.iter().map(|p| cpu_ticks(p.pid)).collect(),
            machine: machine_busy_ticks(),
        });
    }

    pub fn end_step(&mut self, name: &'static str) {
        let end_machine = machine_busy_ticks();
        let Some(start) = self.started.take() else {
            return;
        };
        let cpu: Vec<Option<f64>> = self
            .parties
            .iter()
            .zip(&start.cpu)
            .map(|(p, before)| {
                let (before, now) = ((*before)?, cpu_ticks(p.pid)?);
                Some(now.saturating_sub(before) as f64 / USER_HZ)
            })
            .collect();
        let ours: f64 = cpu.iter().flatten().sum();
        let others = start
            .machine
            .zip(end_machine)
            .map(|(a, b)| (b.saturating_sub(a) as f64 / USER_HZ - ours).max(0.0));
        self.steps.push(Step {
            name,
            wall: start.at.elapsed(),
            rss: self.parties.iter().map(|p| peak_rss_mib(p.pid)).collect(),
            cpu,
            others,
        });
    }

    /// The highest peak of party `i` over all steps.
    fn peak(&self, i: usize) -> Option<f64> {
        self.steps.iter().filter_map(|s| s.rss[i]).reduce(f64::max)
    }

    /// Every party's peak is below `mib`.
    pub fn all_under(&self, mib: f64) -> bool {
        (0..self.parties.len()).all(|i| self.peak(i).is_some_and(|p| p < mib))
    }

    pub fn print(&self, bound_mib: f64) {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let header = |first: &str, last: &str| {
            print!("  {first:<46}");
            for s in &self.steps {
                print!("{:>9}", s.name.replace('_', " "));
            }
            println!("{last:>9}");
        };
        let cells = |values: &mut dyn Iterator<Item = Option<f64>>| {
            for v in values {
                match v {
                    Some(v) => print!("{v:>9.1}"),
                    None => print!("{:>9}", "-"),
                }
            }
            println!();
        };
        let note = if self.per_step_rss {
            "the peak of each step alone"
        } else {
            "peaks since start: /proc/PID/clear_refs could not reset them"
        };
        println!("peak resident memory (VmHWM, MiB; {note})");
        header("party", "peak");
        for (i, p) in self.parties.iter().enumerate() {
            print!("  {:<46}", format!("{} ({})", p.name, p.role));
            cells(&mut self.steps.iter().map(|s| s.rss[i]).chain([self.peak(i)]));
        }
        println!(
            "  every party under {bound_mib:.0} MiB: {}",
            if self.all_under(bound_mib) {
                "yes"
            } else {
                "NO"
            }
        );
        println!("CPU seconds per step ({cores} cores: a step of t seconds has {cores}t to give)");
        header("", "");
        print!("  {:<46}", "wall time");
        cells(&mut self.steps.iter().map(|s| Some(s.wall.as_secs_f64())));
        for (i, p) in self.parties.iter().enumerate() {
            print!("  {:<46}", p.name);
            cells(&mut self.steps.iter().map(|s| s.cpu[i]));
        }
        print!("  {:<46}", "every other process on this machine");
        cells(&mut self.steps.iter().map(|s| s.others));
    }

    pub fn json(&self, bound_mib: f64) -> serde_json::Value {
        let round = |v: f64| (v * 100.0).round() / 100.0;
        let mut rss = serde_json::Map::new();
        for (i, p) in self.parties.iter().enumerate() {
            let mut m = serde_json::Map::new();
            for s in &self.steps {
                m.insert(s.name.to_owned(), serde_json::json!(s.rss[i].map(round)));
            }
            m.insert(
                "peak".to_owned(),
                serde_json::json!(self.peak(i).map(round)),
            );
            rss.insert(p.name.clone(), serde_json::Value::Object(m));
        }
        let mut steps = serde_json::Map::new();
        for s in &self.steps {
            let mut cpu = serde_json::Map::new();
            for (p, v) in self.parties.iter().zip(&s.cpu) {
                cpu.insert(p.name.clone(), serde_json::json!(v.map(round)));
            }
            cpu.insert("others".to_owned(), serde_json::json!(s.others.map(round)));
            steps.insert(
                s.name.to_owned(),
                serde_json::json!({"wall_s": round(s.wall.as_secs_f64()), "cpu_s": cpu}),
            );
        }
        serde_json::json!({
            "peak_rss_mib": rss,
            "peak_rss_per_step": self.per_step_rss,
            "all_under_bound": self.all_under(bound_mib),
            "bound_mib": bound_mib,
            "steps": steps,
        })
    }
}

/// `VmHWM` of process `pid`, in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// User and system CPU ticks of process `pid`, all its threads.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields after it start
    // with the state (field 3); utime and stime are fields 14 and 15.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Ticks all CPUs of the machine spent busy (not idle, not waiting for I/O).
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().find_map(|l| l.strip_prefix("cpu "))?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| v.get(i).copied().unwrap_or(0))
        .sum();
    Some(busy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_peak_and_cpu_time() {
        let pid = std::process::id();
        assert!(peak_rss_mib(pid).is_some_and(|m| m > 0.0));
        assert!(cpu_ticks(pid).is_some());
        assert!(machine_busy_ticks().is_some());
    }
}
