//! CPU time and resident memory of a process (the server under test, or the load generator
//! itself) read from /proc.

use std::sync::OnceLock;

/// A process to sample: a PID, or this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    /// This load generator.
    SelfProc,
    /// Another process, usually the server under test.
    Pid(u32),
}

impl Proc {
    fn dir(self) -> String {
        match self {
            Proc::SelfProc => "/proc/self".to_string(),
            Proc::Pid(p) => format!("/proc/{p}"),
        }
    }
}

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// utime + stime of all threads, in seconds.
    pub cpu_s: f64,
    /// Resident set size in KiB.
    pub rss_kib: u64,
    /// Time all threads spent runnable but waiting for a CPU, in seconds (from
    /// /proc/PID/task/*/schedstat). A large share means the machine, not the process, was the
    /// limit: another process held the cores.
    pub runq_wait_s: Option<f64>,
}

fn ticks_per_sec() -> f64 {
    static T: OnceLock<f64> = OnceLock::new();
    *T.get_or_init(crate::sys::clock_ticks_per_sec)
}

/// Reads CPU seconds and RSS; `None` when the process is gone or /proc is unreadable.
pub fn sample(p: Proc) -> Option<Sample> {
    let dir = p.dir();
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let cpu_s = parse_stat_cpu(&stat)? / ticks_per_sec();
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    let rss_kib = parse_status_rss(&status)?;
    Some(Sample {
        cpu_s,
        rss_kib,
        runq_wait_s: runq_wait_s(&dir),
    })
}

/// Sum of the run-queue wait (second field of schedstat, nanoseconds) over all threads.
fn runq_wait_s(dir: &str) -> Option<f64> {
    let mut total_ns: u64 = 0;
    // Bounded by the process's thread count.
    for t in std::fs::read_dir(format!("{dir}/task")).ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(t.path().join("schedstat")) else {
            continue; // the thread exited meanwhile
        };
        total_ns += parse_schedstat_wait(&text).unwrap_or(0);
    }
    Some(total_ns as f64 / 1e9)
}

fn parse_schedstat_wait(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// True when /proc/PID exists (the server PID given on the command line is alive).
pub fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
}

/// utime + stime in clock ticks from the text of /proc/PID/stat.
///
/// The command name (field 2) may contain spaces and parentheses, so fields are counted from
/// the last `)`.
fn parse_stat_cpu(stat: &str) -> Option<f64> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let mut f = after.split_whitespace();
    // After ")" come state(3) ... utime(14) stime(15): skip 11 fields.
    let ut: f64 = f.nth(11)?.parse().ok()?;
    let st: f64 = f.next()?.parse().ok()?;
    Some(ut + st)
}

/// VmRSS in KiB from the text of /proc/PID/status.
fn parse_status_rss(status: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        l.strip_prefix("VmRSS:")
            .map(|r| r.trim().trim_end_matches("kB").trim())
            .and_then(|v| v.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_name() {
        let s = "1234 (my (odd) cmd) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu(s), Some(300.0));
    }

    #[test]
    fn parses_rss() {
        let s = "Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_status_rss(s), Some(2048));
    }

    #[test]
    fn parses_schedstat() {
        assert_eq!(parse_schedstat_wait("100 2500 7\n"), Some(2500));
        assert_eq!(parse_schedstat_wait(""), None);
    }

    #[test]
    fn samples_self() {
        let s = sample(Proc::SelfProc).expect("own /proc readable");
        assert!(s.rss_kib > 0);
        assert!(s.cpu_s >= 0.0);
        assert!(s.runq_wait_s.is_some());
    }
}
