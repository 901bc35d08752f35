//! Process CPU, memory and file descriptors from /proc (Linux), for `/metrics`.

/// One reading.
pub(crate) struct ProcessSample {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub open_fds: usize,
}

/// Reads /proc/self; `None` where /proc is unavailable.
pub(crate) fn sample() -> Option<ProcessSample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    const TICKS_PER_SECOND: f64 = 100.0; // USER_HZ on Linux
    const PAGE: u64 = 4096;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    Some(ProcessSample {
        cpu_seconds: (utime + stime) / TICKS_PER_SECOND,
        rss_bytes: rss_pages * PAGE,
        open_fds,
    })
}
