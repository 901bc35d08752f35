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
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    // USER_HZ (`sysconf(_SC_CLK_TCK)`) and the page size, as the kernel told this process.
    let ticks_per_second = rustix::param::clock_ticks_per_second().max(1) as f64;
    let page = rustix::param::page_size() as u64;
    Some(ProcessSample {
        cpu_seconds: (utime + stime) / ticks_per_second,
        rss_bytes: rss_pages * page,
        open_fds,
    })
}
