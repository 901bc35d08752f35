//! The orchestrator: checks the target, starts publishers and receive threads, walks the run
//! through its phases, gathers the threads' reports into a timeline and the final [`Report`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use hdrhistogram::Histogram;

use crate::control::{Control, Phase};
use crate::procstat::{self, Proc};
use crate::progress::{GapFigures, Progress};
use crate::publish::{self, PublishPlan, PublishStats};
use crate::report::{self, Report, TimelinePoint};
use crate::scenario::{Settings, SlowMode};
use crate::stats::{self, ClassCounters, FinalHistograms, LatencySummary, WorkerReport};
use crate::subscribe::{self, SubscribePlan};
use crate::target::{self, WsTarget};
use crate::topics::TopicTable;

/// Orchestrator loop period: how often reports are drained and phases checked.
const LOOP_PERIOD: Duration = Duration::from_millis(100);

/// Timeline and progress resolution.
const SECOND: Duration = Duration::from_secs(1);

/// How long the target may take to accept the preflight connection.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest drain after the window for stalled readers to see how the server treated them.
const DRAIN: Duration = Duration::from_secs(3);

/// Longest wait for the threads' final reports and exit after Stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// File descriptors kept spare beyond one per connection (stdio, /proc reads, the runtime's epoll
/// and wake fds: about 20 with several receive threads), small enough that a 20,000 hard limit
/// still allows 19,900 connections.
const SPARE_FDS: u64 = 64;

/// Options that are not part of a scenario.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Scenario name or path the settings came from, for the report.
    pub scenario: Option<String>,
    /// PID of the server, to sample its CPU and RSS.
    pub server_pid: Option<u32>,
    /// Draw the live progress line.
    pub progress: bool,
}

/// Everything the run produced: the report and the histograms the plot needs.
pub struct Outcome {
    /// The report (also what `--json-out` writes).
    pub report: Report,
    /// Fast-class window latency, for the plot's histogram.
    pub fast_latency: Histogram<u64>,
}

/// Runs a whole load test with validated settings.
pub fn run(settings: Settings, opts: RunOptions) -> anyhow::Result<Outcome> {
    settings.validate()?;
    let s = settings;
    let subscribes = s.mode.subscribes();
    let target = if subscribes {
        Some(WsTarget::parse(&s.url).with_context(|| format!("--url {}", s.url))?)
    } else {
        None
    };
    let publish_addr = if s.mode.publishes() {
        Some(
            target::parse_host_port(&s.publish.addr, None)
                .with_context(|| format!("--publish-addr {}", s.publish.addr))?,
        )
    } else {
        None
    };
    let src_ips: Vec<IpAddr> = target::parse_src_ips(&s.src_ips).context("--src-ips")?;
    if let Some(pid) = opts.server_pid {
        if !procstat::exists(pid) {
            bail!("--server-pid {pid}: no such process");
        }
    }
    let needed = (if subscribes { s.conns as u64 } else { 0 })
        + (if s.mode.publishes() {
            s.publish.conns as u64
        } else {
            0
        })
        + SPARE_FDS;
    crate::sys::raise_fd_limit(needed)?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Some(t) = &target {
        rt.block_on(preflight(t.addr, &t.url()))?;
    }
    if let Some(a) = publish_addr {
        rt.block_on(preflight(a, &format!("feed input {a}")))?;
    }
    let topics = Arc::new(if s.topics_from_server {
        let t = target
            .as_ref()
            .context("--topics-from-server needs --url")?;
        let names = rt.block_on(crate::topics::fetch_from_server(t.addr, &t.host))?;
        let channel = s.effective_channel();
        let total = names.len();
        let mut channels: Vec<&str> = names
            .iter()
            .map(|n| crate::scenario::channel_of(n))
            .collect();
        channels.sort_unstable();
        channels.dedup();
        let seen = channels.join(", ");
        let mine: Vec<String> = names
            .iter()
            .filter(|n| crate::scenario::channel_of(n) == channel)
            .cloned()
            .collect();
        TopicTable::list(mine).with_context(|| {
            format!("GET /topics returned {total} topic(s), none of channel {channel:?} (channels: {seen})")
        })?
    } else if !s.topic_list.is_empty() {
        TopicTable::list(s.resolved_topic_list())?
    } else {
        TopicTable::pattern(&s.pattern_prefix(), s.topics)?
    });
    drop(rt);

    let control = Arc::new(Control::new());
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let server = opts.server_pid.map(Proc::Pid);
    let server_base = server.and_then(procstat::sample);

    let mut publisher: Option<(JoinHandle<()>, Arc<PublishStats>)> = None;
    if let Some(addr) = publish_addr {
        let n = if s.publish.symbols == 0 {
            topics.len()
        } else {
            s.publish.symbols.min(topics.len())
        };
        let plan = PublishPlan {
            addr,
            rate: s.publish.rate,
            topics: topics.names()[..n].to_vec(),
            conns: s.publish.conns,
            src: src_ips.first().copied(),
        };
        publisher =
            Some(publish::spawn(plan, control.clone()).context("starting publisher thread")?);
    }

    let (tx, rx) = mpsc::channel::<WorkerReport>();
    let mut workers = Vec::new();
    let mut plan = None;
    if let Some(t) = target {
        let p = Arc::new(SubscribePlan::new(&s, t, topics.clone(), src_ips.clone()));
        for w in 0..s.threads {
            workers.push(
                subscribe::spawn_worker(p.clone(), w, control.clone(), tx.clone())
                    .context("starting receive thread")?,
            );
        }
        plan = Some(p);
    }
    drop(tx);

    let mut orch = Orchestrator {
        s: &s,
        control: &control,
        rx,
        latest: vec![Default::default(); workers.len()],
        first_error: None,
        finals: (0..workers.len()).map(|_| None).collect(),
        second_hist: stats::latency_histogram(),
        timeline: Vec::new(),
        progress: Progress::new(opts.progress),
        server,
        publish_stats: publisher.as_ref().map(|p| p.1.clone()),
        last_second: Second::default(),
    };
    let marks = orch.drive(plan.as_deref())?;
    orch.progress.finish();

    // Bounded join: threads exit right after their final report; a thread still stuck is left
    // behind (the process exits soon after anyway).
    let deadline = Instant::now() + STOP_GRACE;
    for h in workers.into_iter().chain(publisher.map(|p| p.0)) {
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            let _ = h.join();
        }
    }

    let totals = orch.totals();
    let mut window_latency = [stats::latency_histogram(), stats::latency_histogram()];
    let mut handshake = stats::latency_histogram();
    let mut error_samples = Vec::new();
    let mut book_samples = Vec::new();
    for f in orch.finals.iter().flatten() {
        for (acc, h) in window_latency.iter_mut().zip(f.window_latency.iter()) {
            // Same bounds everywhere, so adding cannot fail.
            let _ = acc.add(h);
        }
        let _ = handshake.add(&f.handshake);
        error_samples.extend(f.error_samples.iter().cloned());
        book_samples.extend(f.book_samples.iter().cloned());
    }
    let missing_finals = orch.finals.iter().filter(|f| f.is_none()).count();

    let report = report::build(report::Inputs {
        settings: &s,
        scenario: opts.scenario.clone(),
        started_unix_s,
        topics_total: topics.len(),
        expected_msgs_per_s: plan.as_deref().and_then(|p| expected_rate(&s, p, &totals)),
        totals: &totals,
        window_latency: &window_latency,
        handshake: LatencySummary::of(&handshake),
        error_samples,
        book_samples,
        missing_finals,
        marks: &marks,
        server_pid: opts.server_pid,
        server_base,
        publish: orch.publish_stats.as_deref(),
        timeline: std::mem::take(&mut orch.timeline),
    });
    let [fast, _] = window_latency;
    Ok(Outcome {
        report,
        fast_latency: fast,
    })
}

/// Connects once to `addr` so an unreachable target fails fast with one clear message.
async fn preflight(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<()> {
    match tokio::time::timeout(PREFLIGHT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => bail!("cannot connect to {what}: {e}"),
        Err(_) => bail!("cannot connect to {what}: timed out after {PREFLIGHT_TIMEOUT:?}"),
    }
}

/// Expected delivered ticks/s when the feed rate is known: each topic's rate (at most one tick per
/// `throttle_ms`) times its subscriber count, scaled by the share of connections that connected.
fn expected_rate(s: &Settings, plan: &SubscribePlan, totals: &[ClassCounters; 2]) -> Option<f64> {
    let topics = plan.topics.len();
    let mut per_topic = vec![0.0f64; topics];
    let mut known = false;
    let feed_per_topic = s.feed_rate_per_topic();
    if feed_per_topic > 0.0 && !s.topics_from_server && s.topic_list.is_empty() {
        let symbols = if s.server.symbols > 0 {
            s.server.symbols
        } else {
            s.topics
        };
        for r in per_topic.iter_mut().take(symbols) {
            *r += feed_per_topic;
        }
        known = true;
    }
    if s.mode.publishes() {
        let n = if s.publish.symbols == 0 {
            topics
        } else {
            s.publish.symbols.min(topics)
        };
        for r in per_topic.iter_mut().take(n) {
            *r += s.publish.rate / n as f64;
        }
        known = true;
    }
    if !known {
        return None;
    }
    if s.throttle_ms > 0 {
        // A throttled topic delivers at most one tick per interval.
        let most = 1000.0 / s.throttle_ms as f64;
        for r in &mut per_topic {
            *r = r.min(most);
        }
    }
    // Summing over every planned connection is O(conns * K); fine for the sizes allowed.
    let sum: f64 = (0..plan.conns)
        .map(|c| {
            plan.topics
                .assign(c, plan.per_conn, plan.assign, plan.seed)
                .iter()
                .map(|&i| per_topic[i as usize])
                .sum::<f64>()
        })
        .sum();
    let planned: u64 = totals.iter().map(|c| c.planned).sum();
    let connected: u64 = totals.iter().map(|c| c.connected).sum();
    (planned > 0).then(|| sum * connected as f64 / planned as f64)
}

/// Instants of the phase changes, relative to the run start, and the window's measurements.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    /// When the ramp ended (all connections settled or timeout).
    pub ramp_s: f64,
    /// Window length actually measured.
    pub window_s: f64,
    /// Server /proc samples at window start and end.
    pub server_start: Option<procstat::Sample>,
    /// See `server_start`.
    pub server_end: Option<procstat::Sample>,
    /// Load generator CPU seconds at window start and end.
    pub self_start: Option<procstat::Sample>,
    /// See `self_start`.
    pub self_end: Option<procstat::Sample>,
    /// Publisher ticks sent at window start and end.
    pub published: (u64, u64),
    /// Publisher bytes at window start and end.
    pub published_bytes: (u64, u64),
}

#[derive(Debug, Clone, Default)]
struct Second {
    at: Option<Instant>,
    ticks: u64,
    gaps: u64,
    gap_markers: u64,
    unannounced_gaps: u64,
    disconnects: u64,
    published: u64,
    server_cpu: Option<f64>,
    self_cpu: Option<f64>,
}

struct Orchestrator<'a> {
    s: &'a Settings,
    control: &'a Control,
    rx: Receiver<WorkerReport>,
    latest: Vec<[ClassCounters; 2]>,
    first_error: Option<String>,
    finals: Vec<Option<Box<FinalHistograms>>>,
    second_hist: Histogram<u64>,
    timeline: Vec<TimelinePoint>,
    progress: Progress,
    server: Option<Proc>,
    publish_stats: Option<Arc<PublishStats>>,
    last_second: Second,
}

impl Orchestrator<'_> {
    fn absorb(&mut self, r: WorkerReport) {
        let w = r.worker;
        if std::env::var_os("LG_DEBUG").is_some() {
            eprintln!(
                "report w{} at {:?} ticks {}",
                w,
                self.control.start.elapsed(),
                r.counters[0].ticks
            );
        }
        if w >= self.latest.len() {
            return;
        }
        self.latest[w] = r.counters;
        if self.first_error.is_none() {
            self.first_error = r.first_error;
        }
        let _ = self.second_hist.add(&r.interval_latency);
        if let Some(f) = r.last {
            self.finals[w] = Some(f);
        }
    }

    /// Drains reports until `until`.
    fn pump(&mut self, until: Instant) {
        loop {
            let now = Instant::now();
            if now >= until {
                return;
            }
            match self.rx.recv_timeout(until - now) {
                Ok(r) => self.absorb(r),
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(until - now);
                    return;
                }
            }
        }
    }

    fn totals(&self) -> [ClassCounters; 2] {
        let mut t: [ClassCounters; 2] = Default::default();
        for l in &self.latest {
            t[0].add(&l[0]);
            t[1].add(&l[1]);
        }
        t
    }

    fn published(&self) -> (u64, u64) {
        self.publish_stats.as_ref().map_or((0, 0), |p| {
            (
                p.sent.load(Ordering::Relaxed),
                p.bytes.load(Ordering::Relaxed),
            )
        })
    }

    /// Walks the phases; returns the marks. Every wait is bounded by the settings' times.
    fn drive(&mut self, plan: Option<&SubscribePlan>) -> anyhow::Result<Marks> {
        let s = self.s;
        let start = self.control.start;
        let conns = plan.map_or(0, |p| p.conns) as u64;
        let ramp_limit = start + Duration::from_secs_f64(s.ramp_timeout_s);
        let stalls = plan.is_some_and(|p| p.slow_share > 0.0 && p.slow_mode == SlowMode::Stall);
        let mut marks = Marks::default();
        let mut next_second = start + SECOND;
        self.last_second = self.second_sample(start);
        let mut phase_end: Option<Instant> = None;

        loop {
            self.pump(Instant::now() + LOOP_PERIOD);
            let now = Instant::now();
            let t = self.totals();
            match self.control.phase() {
                Phase::Ramp => {
                    let settled: u64 = t.iter().map(|c| c.settled()).sum();
                    if settled >= conns || now >= ramp_limit {
                        marks.ramp_s = (now - start).as_secs_f64();
                        if conns > 0 && t.iter().map(|c| c.connected).sum::<u64>() == 0 {
                            let why = self.failure_summary();
                            self.control.set(Phase::Stop);
                            self.progress.finish();
                            bail!("no connection could be opened to {}{why}", s.url);
                        }
                        self.control.set(Phase::Warmup);
                        phase_end = Some(now + Duration::from_secs_f64(s.warmup_s));
                    }
                }
                Phase::Warmup => {
                    if phase_end.is_some_and(|e| now >= e) {
                        marks.server_start = self.server.and_then(procstat::sample);
                        marks.self_start = procstat::sample(Proc::SelfProc);
                        let (p, b) = self.published();
                        marks.published.0 = p;
                        marks.published_bytes.0 = b;
                        self.control.set(Phase::Window);
                        phase_end = Some(now + Duration::from_secs_f64(s.duration_s));
                    }
                }
                Phase::Window => {
                    if let Some(e) = phase_end.filter(|e| now >= *e) {
                        marks.window_s =
                            (now - (e - Duration::from_secs_f64(s.duration_s))).as_secs_f64();
                        marks.server_end = self.server.and_then(procstat::sample);
                        marks.self_end = procstat::sample(Proc::SelfProc);
                        let (p, b) = self.published();
                        marks.published.1 = p;
                        marks.published_bytes.1 = b;
                        if stalls {
                            self.control.set(Phase::Drain);
                            phase_end = Some(now + DRAIN);
                        } else {
                            self.control.set(Phase::Stop);
                        }
                    }
                }
                Phase::Drain => {
                    if phase_end.is_some_and(|e| now >= e) {
                        self.control.set(Phase::Stop);
                    }
                }
                Phase::Stop => break,
            }
            if now >= next_second {
                self.emit_second(now);
                next_second += SECOND;
                if next_second < now {
                    next_second = now + SECOND;
                }
            }
        }
        // Final reports: one per receive thread, bounded wait.
        let deadline = Instant::now() + STOP_GRACE;
        while self.finals.iter().any(Option::is_none) && Instant::now() < deadline {
            self.pump(Instant::now() + LOOP_PERIOD);
        }
        Ok(marks)
    }

    /// A short hint about why connections failed, from counters (finals are not in yet).
    fn failure_summary(&self) -> String {
        let t = self.totals();
        let mut failed: HashMap<&str, u64> = HashMap::new();
        for c in &t {
            for (k, v) in &c.failed {
                *failed.entry(k).or_default() += v;
            }
        }
        if failed.is_empty() {
            String::new()
        } else {
            let mut v: Vec<String> = failed.iter().map(|(k, n)| format!("{n} {k}")).collect();
            v.sort();
            let first = self
                .first_error
                .as_deref()
                .map(|e| format!("; first: {e}"))
                .unwrap_or_default();
            format!(" ({} failed{first})", v.join(", "))
        }
    }

    fn second_sample(&self, at: Instant) -> Second {
        let t = self.totals();
        Second {
            at: Some(at),
            ticks: t.iter().map(|c| c.ticks).sum(),
            gaps: t.iter().map(|c| c.gaps).sum(),
            gap_markers: t.iter().map(|c| c.gap_markers_total()).sum(),
            unannounced_gaps: t.iter().map(|c| c.unannounced_gaps).sum(),
            disconnects: t.iter().map(|c| c.disconnects_total()).sum(),
            published: self.published().0,
            server_cpu: self.server.and_then(procstat::sample).map(|p| p.cpu_s),
            self_cpu: procstat::sample(Proc::SelfProc).map(|p| p.cpu_s),
        }
    }

    fn emit_second(&mut self, now: Instant) {
        let cur = self.second_sample(now);
        let prev = std::mem::replace(&mut self.last_second, cur.clone());
        let dt = prev.at.map_or(1.0, |a| (now - a).as_secs_f64()).max(1e-3);
        let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / dt;
        let pct = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(100.0 * (b - a) / dt),
            _ => None,
        };
        let lat = LatencySummary::of(&self.second_hist);
        self.second_hist.reset();
        let t = self.totals();
        let p = TimelinePoint {
            t_s: (now - self.control.start).as_secs_f64(),
            phase: self.control.phase().name(),
            conns_open: t.iter().map(|c| c.open()).sum(),
            msgs_per_s: rate(prev.ticks, cur.ticks),
            published_per_s: rate(prev.published, cur.published),
            p50_us: lat.map(|l| l.p50),
            p90_us: lat.map(|l| l.p90),
            p99_us: lat.map(|l| l.p99),
            p999_us: lat.map(|l| l.p999),
            max_us: lat.map(|l| l.max),
            gaps: cur.gaps.saturating_sub(prev.gaps),
            gap_markers: cur.gap_markers.saturating_sub(prev.gap_markers),
            unannounced_gaps: cur.unannounced_gaps.saturating_sub(prev.unannounced_gaps),
            disconnects: cur.disconnects.saturating_sub(prev.disconnects),
            server_cpu_pct: pct(prev.server_cpu, cur.server_cpu),
            loadgen_cpu_pct: pct(prev.self_cpu, cur.self_cpu),
        };
        let conns_target: u64 = t.iter().map(|c| c.planned).sum();
        let failed: u64 = t.iter().map(|c| c.failed_total()).sum();
        let gaps = GapFigures {
            markers: [t[0].gap_markers_total(), t[1].gap_markers_total()],
            unannounced: [t[0].unannounced_gaps, t[1].unannounced_gaps],
            slow: t[1].planned > 0,
        };
        self.progress
            .update(&p, conns_target, failed, &gaps, cur.disconnects);
        self.timeline.push(p);
    }
}
