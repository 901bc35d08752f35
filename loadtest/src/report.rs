//! The run's results: the JSON report (every figure plus the parameters) and the human table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::message::{GapReason, Kind};
use crate::procstat::Sample;
use crate::publish::PublishStats;
use crate::run::Marks;
use crate::scenario::Settings;
use crate::stats::{Class, ClassCounters, LatencySummary};

/// The whole report; `--json-out` writes it as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always `tickcast-loadgen`.
    pub tool: &'static str,
    /// Load generator version.
    pub version: &'static str,
    /// Scenario name or path, if one was used.
    pub scenario: Option<String>,
    /// Unix time the run started, seconds.
    pub started_unix_s: f64,
    /// Every setting the run used (scenario merged with flags).
    pub params: Settings,
    /// Size of the topic universe.
    pub topics_total: usize,
    /// Opening connections.
    pub ramp: RampReport,
    /// Length of the measured window, seconds.
    pub window_s: f64,
    /// Subscriber results (absent in publish-only runs).
    pub subscribe: Option<SubscribeReport>,
    /// Publisher results (absent in subscribe-only runs).
    pub publish: Option<PublishReport>,
    /// The server process over the window (when `--server-pid` was given).
    pub server: Option<ServerReport>,
    /// The load generator's own CPU over the window: near 100% per receive thread means the
    /// load generator, not the server, was the limit.
    pub loadgen: LoadgenReport,
    /// One point per second over the whole run.
    pub timeline: Vec<TimelinePoint>,
}

/// Connection opening.
#[derive(Debug, Clone, Serialize)]
pub struct RampReport {
    /// Connections planned.
    pub target: u64,
    /// Connections opened and subscribed.
    pub connected: u64,
    /// Failed attempts by stage.
    pub failed: BTreeMap<&'static str, u64>,
    /// Never tried because the ramp timed out.
    pub not_started: u64,
    /// Seconds from start until every connection settled (or the ramp timed out).
    pub ramp_s: f64,
    /// TCP connect + upgrade time, microseconds.
    pub handshake_us: Option<LatencySummary>,
    /// First few connection errors.
    pub error_samples: Vec<String>,
}

/// Subscriber results over the window.
#[derive(Debug, Clone, Serialize)]
pub struct SubscribeReport {
    /// Ticks received in the window, all connections.
    pub messages: u64,
    /// Ticks per second.
    pub msgs_per_s: f64,
    /// Wire bytes per second.
    pub bytes_per_s: f64,
    /// What the feed rate and the subscriptions predict (when the feed rate is known).
    pub expected_msgs_per_s: Option<f64>,
    /// Connections still open at the end.
    pub conns_open_end: u64,
    /// Receive threads that did not send their final report in time (their latency is missing).
    pub missing_thread_reports: usize,
    /// Connections reading at full speed.
    pub fast: ClassReport,
    /// Simulated slow readers (absent when there are none).
    pub slow: Option<ClassReport>,
    /// The channel subscribed to (`ticker`, `book`, `trade`, `bar.1s`, ...).
    pub channel: String,
    /// Book messages whose checksum verified, per second of the window (all classes).
    pub books_verified_per_s: f64,
    /// First few book checksum mismatches and book errors (topic, seq, what).
    pub book_samples: Vec<String>,
}

/// Results of one class of connections.
#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    /// Connections of this class planned.
    pub conns: u64,
    /// Connections opened.
    pub connected: u64,
    /// Disconnects after opening, by close code or cause.
    pub disconnects: BTreeMap<String, u64>,
    /// Ticks received in the window.
    pub messages: u64,
    /// Ticks per second in the window.
    pub msgs_per_s: f64,
    /// Wire bytes in the window.
    pub bytes: u64,
    /// Missing sequence numbers in the window (per topic per connection), whether a gap marker
    /// announced them or not: `announced_seqs` plus `unannounced_gaps`.
    pub gaps: u64,
    /// Ticks in the window that followed missing seqs (one event may miss many seqs).
    pub gap_events: u64,
    /// Missing sequence numbers over the whole run (ramp and warm-up included).
    pub gaps_all_phases: u64,
    /// `gap` markers received in the window, by reason (`conflated`, `dropped`, `upstream`; and
    /// `unknown` when some other reason came).
    pub gap_markers: BTreeMap<&'static str, u64>,
    /// `gap` markers received over the whole run, by reason.
    pub gap_markers_all_phases: BTreeMap<&'static str, u64>,
    /// Seqs the window's markers announced missing, by reason.
    pub announced_seqs: BTreeMap<&'static str, u64>,
    /// Gap events in the window whose every missing seq markers announced first.
    pub announced_gaps: u64,
    /// Missing seqs in the window that no marker announced: the server broke its promise (0
    /// when it works).
    pub unannounced_gaps: u64,
    /// Jumps over unannounced seqs in the window.
    pub unannounced_gap_events: u64,
    /// Missing seqs no marker announced, over the whole run.
    pub unannounced_gaps_all_phases: u64,
    /// Ticks at or below the highest seq accounted for (duplicate, reordered, or announced
    /// missing by a marker), over the whole run.
    pub reorders: u64,
    /// Gap markers whose `from` was not the next seq expected (late, overlapping or repeated),
    /// over the whole run.
    pub marker_reorders: u64,
    /// First tick per topic per connection (snapshot or first live tick), whole run.
    pub baselines: u64,
    /// Ticks or gap markers for topics not subscribed.
    pub unexpected_topic: u64,
    /// Ticks without topic or seq.
    pub bad_ticks: u64,
    /// Gap markers without topic, from or to, or with from > to.
    pub bad_markers: u64,
    /// Non-data messages by type (`subscribed`, `error`, `other`, ...), whole run.
    pub other_messages: BTreeMap<&'static str, u64>,
    /// Data messages by type (`tick`, `book`, `trade`, `bar`; those that came), whole run.
    pub data_messages: BTreeMap<&'static str, u64>,
    /// `book` messages in the window.
    pub book_messages: u64,
    /// Book messages whose checksum matched the book this connection kept, in the window.
    pub books_verified: u64,
    /// The same over the whole run.
    pub books_verified_all_phases: u64,
    /// Book messages whose checksum did not match, whole run: a server bug (the run fails).
    pub book_checksum_mismatches: u64,
    /// Book snapshots applied (one per book on subscribe, one per resync), whole run.
    pub book_snapshots: u64,
    /// `resync` gap markers followed by the snapshot at the next seq, whole run.
    pub book_resyncs: u64,
    /// Book messages that break the protocol (a delta before any snapshot or right after a gap
    /// marker, an unusable message, a crossed book, a resync not followed by its snapshot), whole
    /// run: the run fails.
    pub book_errors: u64,
    /// Deltas not verified because the book was already wrong, until the next snapshot.
    pub book_unverified: u64,
    /// `trade` messages in the window.
    pub trades: u64,
    /// `trade` messages over the whole run.
    pub trades_all_phases: u64,
    /// Trade seqs announced dropped (`gap` reason `dropped` on trade topics), in the window.
    pub trades_dropped_announced: u64,
    /// The same over the whole run.
    pub trades_dropped_announced_all_phases: u64,
    /// Trades at or below a seq already accounted for (duplicates), whole run.
    pub trade_duplicates: u64,
    /// Tick age on receipt (now − ts), microseconds, window only, baselines excluded.
    pub latency_us: Option<LatencySummary>,
    /// Latency distribution: `[upper bound µs, count]`, log-spaced.
    pub latency_buckets: Vec<[f64; 2]>,
}

/// Publisher results over the window.
#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    /// Requested ticks/s.
    pub target_rate: f64,
    /// Ticks/s actually written in the window.
    pub achieved_rate: f64,
    /// Ticks written in the window.
    pub sent_window: u64,
    /// Ticks written over the run.
    pub sent_total: u64,
    /// Bytes/s in the window.
    pub bytes_per_s: f64,
    /// Publisher connections open at the end.
    pub connected: u64,
    /// Connect/write failures.
    pub errors: u64,
    /// Largest backlog on one connection, milliseconds of schedule.
    pub max_behind_ms: f64,
    /// First error.
    pub first_error: Option<String>,
}

/// Server process figures.
#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    /// PID sampled.
    pub pid: u32,
    /// CPU seconds in the window (all threads).
    pub cpu_s: Option<f64>,
    /// CPU share of one core in the window, percent.
    pub cpu_pct: Option<f64>,
    /// CPU microseconds per delivered message.
    pub cpu_us_per_msg: Option<f64>,
    /// RSS before the first connection, KiB.
    pub rss_kib_base: Option<u64>,
    /// RSS at the end of the window, KiB.
    pub rss_kib_end: Option<u64>,
    /// (end − base) / connections, KiB.
    pub rss_kib_per_conn: Option<f64>,
    /// Time its threads waited for a CPU in the window, percent of the window (summed over
    /// threads). Well above a few percent means the machine was oversubscribed and latency
    /// figures include that wait.
    pub runq_wait_pct: Option<f64>,
}

/// Load generator figures.
#[derive(Debug, Clone, Serialize)]
pub struct LoadgenReport {
    /// Receive threads.
    pub threads: usize,
    /// CPU seconds in the window.
    pub cpu_s: Option<f64>,
    /// CPU share of one core in the window, percent (all threads).
    pub cpu_pct: Option<f64>,
    /// Microseconds of load generator CPU per received message.
    pub cpu_us_per_msg: Option<f64>,
    /// Time its threads waited for a CPU in the window, percent of the window (see
    /// [`ServerReport::runq_wait_pct`]).
    pub runq_wait_pct: Option<f64>,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the start.
    pub t_s: f64,
    /// Phase at the end of the second.
    pub phase: &'static str,
    /// Subscriber connections open.
    pub conns_open: u64,
    /// Ticks received per second (all classes).
    pub msgs_per_s: f64,
    /// Ticks published per second.
    pub published_per_s: f64,
    /// Fast-class latency percentiles this second, microseconds.
    pub p50_us: Option<f64>,
    /// See `p50_us`.
    pub p90_us: Option<f64>,
    /// See `p50_us`.
    pub p99_us: Option<f64>,
    /// See `p50_us`.
    pub p999_us: Option<f64>,
    /// See `p50_us`.
    pub max_us: Option<f64>,
    /// Missing seqs seen this second, announced or not (all classes).
    pub gaps: u64,
    /// Gap markers received this second (all classes).
    pub gap_markers: u64,
    /// Missing seqs no marker announced, seen this second (all classes).
    pub unannounced_gaps: u64,
    /// Disconnects this second.
    pub disconnects: u64,
    /// Server CPU share of one core this second, percent.
    pub server_cpu_pct: Option<f64>,
    /// Load generator CPU share of one core this second, percent.
    pub loadgen_cpu_pct: Option<f64>,
}

/// What [`build`] needs.
pub struct Inputs<'a> {
    /// Settings used.
    pub settings: &'a Settings,
    /// Scenario name/path.
    pub scenario: Option<String>,
    /// Unix start time.
    pub started_unix_s: f64,
    /// Topic universe size.
    pub topics_total: usize,
    /// Expected ticks/s, if known.
    pub expected_msgs_per_s: Option<f64>,
    /// Summed counters per class.
    pub totals: &'a [ClassCounters; 2],
    /// Window latency per class.
    pub window_latency: &'a [Histogram<u64>; 2],
    /// Handshake summary.
    pub handshake: Option<LatencySummary>,
    /// Connection error samples.
    pub error_samples: Vec<String>,
    /// Book mismatch and error samples.
    pub book_samples: Vec<String>,
    /// Threads without a final report.
    pub missing_finals: usize,
    /// Phase marks and window samples.
    pub marks: &'a Marks,
    /// Server PID.
    pub server_pid: Option<u32>,
    /// Server sample before the run.
    pub server_base: Option<Sample>,
    /// Publisher counters.
    pub publish: Option<&'a PublishStats>,
    /// Timeline.
    pub timeline: Vec<TimelinePoint>,
}

/// Assembles the report.
pub fn build(i: Inputs<'_>) -> Report {
    let s = i.settings;
    let m = i.marks;
    let w = m.window_s.max(1e-9);
    let t = i.totals;
    let messages: u64 = t.iter().map(|c| c.ticks_window).sum();
    let bytes: u64 = t.iter().map(|c| c.bytes_window).sum();
    let class = |cl: Class| class_report(&t[cl as usize], &i.window_latency[cl as usize], w);
    let subscribe = s.mode.subscribes().then(|| SubscribeReport {
        messages,
        msgs_per_s: messages as f64 / w,
        bytes_per_s: bytes as f64 / w,
        expected_msgs_per_s: i.expected_msgs_per_s,
        conns_open_end: t.iter().map(|c| c.open()).sum(),
        missing_thread_reports: i.missing_finals,
        fast: class(Class::Fast),
        slow: (t[1].planned > 0).then(|| class(Class::Slow)),
        channel: s.effective_channel(),
        books_verified_per_s: t.iter().map(|c| c.books_verified_window).sum::<u64>() as f64 / w,
        book_samples: i.book_samples.clone(),
    });
    let publish = i.publish.map(|p| {
        let sent_window = m.published.1.saturating_sub(m.published.0);
        PublishReport {
            target_rate: s.publish.rate,
            achieved_rate: sent_window as f64 / w,
            sent_window,
            sent_total: p.sent.load(Ordering::Relaxed),
            bytes_per_s: m.published_bytes.1.saturating_sub(m.published_bytes.0) as f64 / w,
            connected: p.connected.load(Ordering::Relaxed),
            errors: p.errors.load(Ordering::Relaxed),
            max_behind_ms: p.max_behind_us.load(Ordering::Relaxed) as f64 / 1e3,
            first_error: p.first_error.lock().ok().and_then(|e| e.clone()),
        }
    });
    let cpu = |a: Option<Sample>, b: Option<Sample>| match (a, b) {
        (Some(a), Some(b)) => Some((b.cpu_s - a.cpu_s).max(0.0)),
        _ => None,
    };
    let waited = |a: Option<Sample>, b: Option<Sample>| match (
        a.and_then(|x| x.runq_wait_s),
        b.and_then(|x| x.runq_wait_s),
    ) {
        (Some(a), Some(b)) => Some(100.0 * (b - a).max(0.0) / w),
        _ => None,
    };
    let per_msg =
        |c: Option<f64>| c.and_then(|c| (messages > 0).then(|| c * 1e6 / messages as f64));
    let connected: u64 = t.iter().map(|c| c.connected).sum();
    let server = i.server_pid.map(|pid| {
        let cpu_s = cpu(m.server_start, m.server_end);
        let base = i.server_base.map(|x| x.rss_kib);
        let end = m.server_end.map(|x| x.rss_kib);
        ServerReport {
            pid,
            cpu_s,
            cpu_pct: cpu_s.map(|c| 100.0 * c / w),
            cpu_us_per_msg: per_msg(cpu_s),
            rss_kib_base: base,
            rss_kib_end: end,
            rss_kib_per_conn: match (base, end) {
                (Some(b), Some(e)) if connected > 0 => {
                    Some((e as f64 - b as f64) / connected as f64)
                }
                _ => None,
            },
            runq_wait_pct: waited(m.server_start, m.server_end),
        }
    });
    let self_cpu = cpu(m.self_start, m.self_end);
    Report {
        tool: "tickcast-loadgen",
        version: env!("CARGO_PKG_VERSION"),
        scenario: i.scenario,
        started_unix_s: i.started_unix_s,
        params: s.clone(),
        topics_total: i.topics_total,
        ramp: RampReport {
            target: t.iter().map(|c| c.planned).sum(),
            connected,
            failed: {
                let mut f = t[0].failed.clone();
                for (k, v) in &t[1].failed {
                    *f.entry(k).or_default() += v;
                }
                f
            },
            not_started: t.iter().map(|c| c.not_started).sum(),
            ramp_s: m.ramp_s,
            handshake_us: i.handshake,
            error_samples: i.error_samples,
        },
        window_s: m.window_s,
        subscribe,
        publish,
        server,
        loadgen: LoadgenReport {
            threads: if s.mode.subscribes() { s.threads } else { 0 },
            cpu_s: self_cpu,
            cpu_pct: self_cpu.map(|c| 100.0 * c / w),
            cpu_us_per_msg: per_msg(self_cpu),
            runq_wait_pct: waited(m.self_start, m.self_end),
        },
        timeline: i.timeline,
    }
}

/// Why a run measured nothing, as one line for stderr; `None` when it measured something.
///
/// A subscribe run where no subscription was acknowledged and no tick arrived, or where the window
/// delivered no tick at all, says nothing about the server: usually the server does not publish the
/// subscribed topics (a default tickcast quotes `ticker.AAPL`, `ticker.MSFT`, ..., not the
/// `ticker.SYM0000` pattern). Publish-only runs, and runs whose every reader stalls on purpose, are
/// never judged here.
pub fn nothing_measured(r: &Report) -> Option<String> {
    let sub = r.subscribe.as_ref()?;
    let p = &r.params;
    if sub.fast.conns == 0 && p.slow_mode == crate::scenario::SlowMode::Stall {
        return None;
    }
    if sub.messages > 0 {
        return None;
    }
    let classes = || std::iter::once(&sub.fast).chain(sub.slow.as_ref());
    let count = |kind: &str| -> u64 {
        classes()
            .map(|c| c.other_messages.get(kind).copied().unwrap_or(0))
            .sum()
    };
    let topics = subscribed_topics(p);
    let hint = if !p.topics_from_server && p.topic_list.is_empty() && p.topic_prefix == "ticker.SYM"
    {
        format!(
            "; a tickcast started without --symbols publishes ticker.AAPL, ticker.MSFT, ...: start it with --symbols {} or pass --topics-from-server",
            p.topics
        )
    } else {
        String::new()
    };
    if count("subscribed") == 0 {
        let errors = count("error");
        let answered = if errors > 0 {
            format!(" (the server answered {errors} error message(s))")
        } else {
            String::new()
        };
        return Some(format!(
            "received no ticks: no subscription was acknowledged on {} connected connection(s){answered}; check the subscribed topics ({topics}) and the credentials{hint}",
            r.ramp.connected
        ));
    }
    Some(format!(
        "received no ticks in the {:.1} s window on {} connection(s): check that the server publishes the subscribed topics ({topics}){hint}",
        r.window_s, r.ramp.connected
    ))
}

/// What the run found wrong with the server's market data, as one line for stderr; `None` when
/// nothing. Any book checksum mismatch or book error fails a run, and so do trade duplicates;
/// on market channels (`book`, `trade`, `bar.*`) so do unannounced gaps and reordered messages.
pub fn failures(r: &Report) -> Option<String> {
    let sub = r.subscribe.as_ref()?;
    let classes: Vec<&ClassReport> = std::iter::once(&sub.fast)
        .chain(sub.slow.as_ref())
        .collect();
    let sum = |f: fn(&ClassReport) -> u64| classes.iter().copied().map(f).sum::<u64>();
    let market = sub.channel != "ticker";
    let mut why = Vec::new();
    let n = sum(|c| c.book_checksum_mismatches);
    if n > 0 {
        why.push(format!("{n} book checksum mismatch(es)"));
    }
    let n = sum(|c| c.book_errors);
    if n > 0 {
        why.push(format!("{n} book error(s)"));
    }
    let n = sum(|c| c.trade_duplicates);
    if n > 0 {
        why.push(format!("{n} duplicate trade(s)"));
    }
    if market {
        let n = sum(|c| c.unannounced_gaps_all_phases);
        if n > 0 {
            why.push(format!("{n} unannounced missing seq(s)"));
        }
        let n = sum(|c| c.reorders);
        if n > 0 {
            why.push(format!("{n} reordered or duplicate message(s)"));
        }
    }
    if why.is_empty() {
        return None;
    }
    let first = sub
        .book_samples
        .first()
        .map(|s| format!("; first: {s}"))
        .unwrap_or_default();
    Some(format!(
        "{} channel check failed: {}{first}",
        sub.channel,
        why.join(", ")
    ))
}

/// The run's topic set in a few words, for messages.
fn subscribed_topics(p: &Settings) -> String {
    if p.topics_from_server {
        "the server's GET /topics".into()
    } else if !p.topic_list.is_empty() {
        let shown: Vec<&str> = p.topic_list.iter().take(3).map(String::as_str).collect();
        let more = if p.topic_list.len() > 3 { ", ..." } else { "" };
        format!("{}{more}", shown.join(", "))
    } else if p.topics <= 1 {
        format!("{}0000", p.pattern_prefix())
    } else {
        format!(
            "{0}0000..{0}{1:04}",
            p.pattern_prefix(),
            p.topics.saturating_sub(1)
        )
    }
}

fn class_report(c: &ClassCounters, h: &Histogram<u64>, w: f64) -> ClassReport {
    ClassReport {
        conns: c.planned,
        connected: c.connected,
        disconnects: c.disconnects.clone(),
        messages: c.ticks_window,
        msgs_per_s: c.ticks_window as f64 / w,
        bytes: c.bytes_window,
        gaps: c.gaps_window,
        gap_events: c.gap_events_window,
        gaps_all_phases: c.gaps,
        gap_markers: by_reason(&c.gap_markers_window),
        gap_markers_all_phases: by_reason(&c.gap_markers),
        announced_seqs: by_reason(&c.announced_seqs_window),
        announced_gaps: c.announced_gaps_window,
        unannounced_gaps: c.unannounced_gaps_window,
        unannounced_gap_events: c.unannounced_gap_events_window,
        unannounced_gaps_all_phases: c.unannounced_gaps,
        reorders: c.reorders,
        marker_reorders: c.marker_reorders,
        baselines: c.baselines,
        unexpected_topic: c.unexpected_topic,
        bad_ticks: c.bad_ticks,
        bad_markers: c.bad_markers,
        other_messages: Kind::ALL
            .iter()
            .filter(|k| !k.is_data() && c.kinds[k.index()] > 0)
            .map(|k| (k.name(), c.kinds[k.index()]))
            .collect(),
        data_messages: {
            // Ticks are not counted by kind: they are what is left of all data messages.
            let market: u64 = Kind::ALL
                .iter()
                .filter(|k| k.is_data() && **k != Kind::Tick)
                .map(|k| c.kinds[k.index()])
                .sum();
            Kind::ALL
                .iter()
                .filter(|k| k.is_data())
                .map(|k| {
                    let n = if *k == Kind::Tick {
                        c.ticks.saturating_sub(market)
                    } else {
                        c.kinds[k.index()]
                    };
                    (k.name(), n)
                })
                .filter(|(_, n)| *n > 0)
                .collect()
        },
        book_messages: c.book_messages_window,
        books_verified: c.books_verified_window,
        books_verified_all_phases: c.books_verified,
        book_checksum_mismatches: c.book_checksum_mismatches,
        book_snapshots: c.book_snapshots,
        book_resyncs: c.book_resyncs,
        book_errors: c.book_errors,
        book_unverified: c.book_unverified,
        trades: c.trades_window,
        trades_all_phases: c.kinds[Kind::Trade.index()],
        trades_dropped_announced: c.trades_dropped_announced_window,
        trades_dropped_announced_all_phases: c.trades_dropped_announced,
        trade_duplicates: c.trade_duplicates,
        latency_us: LatencySummary::of(h),
        latency_buckets: log_buckets(h),
    }
}

/// Per-reason counts by name: the three protocol reasons always, `unknown` only when seen.
fn by_reason(v: &[u64; GapReason::COUNT]) -> BTreeMap<&'static str, u64> {
    GapReason::ALL
        .iter()
        .filter(|r| **r != GapReason::Unknown || v[r.index()] > 0)
        .map(|r| (r.name(), v[r.index()]))
        .collect()
}

/// Per-reason counts in one table cell: `conflated/dropped/upstream`, then `+N?` for unknown
/// reasons when there were any.
fn fmt_reasons(m: &BTreeMap<&'static str, u64>) -> String {
    let get = |r: GapReason| m.get(r.name()).copied().unwrap_or(0);
    let mut s = format!(
        "{}/{}/{}",
        get(GapReason::Conflated),
        get(GapReason::Dropped),
        get(GapReason::Upstream)
    );
    let resync = get(GapReason::Resync);
    if resync > 0 {
        let _ = write!(s, " r{resync}");
    }
    let unknown = get(GapReason::Unknown);
    if unknown > 0 {
        let _ = write!(s, "+{unknown}?");
    }
    s
}

/// Log-spaced latency buckets (factor 2^(1/4), from 1 µs), empty buckets left out.
pub fn log_buckets(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_log(1, 2f64.powf(0.25))
        .filter(|v| v.count_since_last_iteration() > 0)
        .map(|v| {
            [
                v.value_iterated_to() as f64,
                v.count_since_last_iteration() as f64,
            ]
        })
        .collect()
}

/// `1234567.0` → `1.23M`.
pub fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Microseconds as `850µs`, `1.23ms` or `2.5s`.
pub fn fmt_us(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2}ms", v / 1e3)
    } else {
        format!("{v:.0}µs")
    }
}

fn fmt_map<K: std::fmt::Display, V: std::fmt::Display>(
    m: impl IntoIterator<Item = (K, V)>,
) -> String {
    let v: Vec<String> = m.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(" ")
    }
}

/// The human-readable summary printed at the end of a run.
pub fn table(r: &Report) -> String {
    let mut o = String::new();
    let p = &r.params;
    let _ = writeln!(
        o,
        "tickcast-loadgen {}{}  mode {:?}  window {:.2}s  topics {}",
        r.version,
        r.scenario
            .as_deref()
            .map(|s| format!("  scenario {s}"))
            .unwrap_or_default(),
        p.mode,
        r.window_s,
        r.topics_total
    );
    if let Some(sub) = &r.subscribe {
        let _ = writeln!(
            o,
            "target {}  conns {}  per-conn {}  threads {}",
            p.url, p.conns, p.per_conn, p.threads
        );
        let hs = r.ramp.handshake_us;
        let _ = writeln!(
            o,
            "ramp   {}/{} connected in {:.2}s, failed {}, not started {}, handshake p50 {} p99 {} max {}",
            r.ramp.connected,
            r.ramp.target,
            r.ramp.ramp_s,
            fmt_map(r.ramp.failed.iter()),
            r.ramp.not_started,
            hs.map_or("-".into(), |h| fmt_us(h.p50)),
            hs.map_or("-".into(), |h| fmt_us(h.p99)),
            hs.map_or("-".into(), |h| fmt_us(h.max)),
        );
        let _ = writeln!(
            o,
            "total  {} msg/s ({:.1} MB/s){}, open at end {}",
            fmt_rate(sub.msgs_per_s),
            sub.bytes_per_s / 1e6,
            sub.expected_msgs_per_s
                .map(|e| format!(
                    ", expected {} msg/s ({:.1}%)",
                    fmt_rate(e),
                    if e > 0.0 {
                        100.0 * sub.msgs_per_s / e
                    } else {
                        0.0
                    }
                ))
                .unwrap_or_default(),
            sub.conns_open_end
        );
        let classes: Vec<(&str, &ClassReport)> = std::iter::once(("fast", &sub.fast))
            .chain(sub.slow.iter().map(|s| ("slow", s)))
            .collect();
        let _ = write!(o, "{:<22}", "");
        for (n, _) in &classes {
            let _ = write!(o, "{n:>18}");
        }
        o.push('\n');
        type Row = (&'static str, fn(&ClassReport) -> String);
        let rows: [Row; 20] = [
            ("connections", |c| format!("{}/{}", c.connected, c.conns)),
            ("messages/s", |c| fmt_rate(c.msgs_per_s)),
            ("latency p50", |c| {
                c.latency_us.map_or("-".into(), |l| fmt_us(l.p50))
            }),
            ("latency p90", |c| {
                c.latency_us.map_or("-".into(), |l| fmt_us(l.p90))
            }),
            ("latency p99", |c| {
                c.latency_us.map_or("-".into(), |l| fmt_us(l.p99))
            }),
            ("latency p99.9", |c| {
                c.latency_us.map_or("-".into(), |l| fmt_us(l.p999))
            }),
            ("latency max", |c| {
                c.latency_us.map_or("-".into(), |l| fmt_us(l.max))
            }),
            ("latency samples", |c| {
                c.latency_us.map_or("0".into(), |l| l.samples.to_string())
            }),
            ("gaps (window)", |c| {
                format!("{} in {}", c.gaps, c.gap_events)
            }),
            ("gaps (all phases)", |c| c.gaps_all_phases.to_string()),
            ("gap markers c/d/u", |c| fmt_reasons(&c.gap_markers)),
            ("  all phases", |c| fmt_reasons(&c.gap_markers_all_phases)),
            ("announced seqs c/d/u", |c| fmt_reasons(&c.announced_seqs)),
            ("announced gaps", |c| c.announced_gaps.to_string()),
            ("UNANNOUNCED gaps", |c| {
                format!("{} in {}", c.unannounced_gaps, c.unannounced_gap_events)
            }),
            ("  all phases", |c| {
                c.unannounced_gaps_all_phases.to_string()
            }),
            ("reorders tick/marker", |c| {
                format!("{}/{}", c.reorders, c.marker_reorders)
            }),
            ("snapshots/baselines", |c| c.baselines.to_string()),
            ("unexpected/bad t/m", |c| {
                format!("{}/{}/{}", c.unexpected_topic, c.bad_ticks, c.bad_markers)
            }),
            ("disconnects", |c| fmt_map(c.disconnects.iter())),
        ];
        for (label, f) in rows {
            let _ = write!(o, "{label:<22}");
            for (_, c) in &classes {
                let _ = write!(o, "{:>18}", f(c));
            }
            o.push('\n');
        }
        let market = sub.channel != "ticker"
            || classes
                .iter()
                .any(|(_, c)| c.data_messages.keys().any(|k| *k != "tick"));
        if market {
            let market_rows: [Row; 8] = [
                ("book msgs (window)", |c| c.book_messages.to_string()),
                ("books verified", |c| {
                    format!("{} ({} all)", c.books_verified, c.books_verified_all_phases)
                }),
                ("BOOK MISMATCHES/errors", |c| {
                    format!("{}/{}", c.book_checksum_mismatches, c.book_errors)
                }),
                ("book snapshots/resyncs", |c| {
                    format!("{}/{}", c.book_snapshots, c.book_resyncs)
                }),
                ("book unverified", |c| c.book_unverified.to_string()),
                ("trades (window)", |c| {
                    format!("{} ({} all)", c.trades, c.trades_all_phases)
                }),
                ("trades dropped (ann.)", |c| {
                    format!(
                        "{} ({} all)",
                        c.trades_dropped_announced, c.trades_dropped_announced_all_phases
                    )
                }),
                ("trade duplicates", |c| c.trade_duplicates.to_string()),
            ];
            for (label, f) in market_rows {
                let _ = write!(o, "{label:<22}");
                for (_, c) in &classes {
                    let _ = write!(o, "{:>18}", f(c));
                }
                o.push('\n');
            }
            let data: Vec<String> = classes
                .iter()
                .map(|(n, c)| format!("{n}: {}", fmt_map(c.data_messages.iter())))
                .collect();
            let _ = writeln!(o, "{:<22}{}", "data messages", data.join("  "));
            let _ = writeln!(
                o,
                "channel {}: {} book msgs/s verified",
                sub.channel,
                fmt_rate(sub.books_verified_per_s)
            );
            for sample in &sub.book_samples {
                let _ = writeln!(o, "book problem: {sample}");
            }
        }
        let others: Vec<String> = classes
            .iter()
            .map(|(n, c)| format!("{n}: {}", fmt_map(c.other_messages.iter())))
            .collect();
        let _ = writeln!(o, "{:<22}{}", "other messages", others.join("  "));
        if !r.ramp.error_samples.is_empty() {
            let _ = writeln!(
                o,
                "first connection errors: {}",
                r.ramp.error_samples.join(" | ")
            );
        }
    }
    if let Some(pb) = &r.publish {
        let _ = writeln!(
            o,
            "publish {} -> {}/s target, {}/s achieved ({:.1} MB/s), max behind {:.1} ms, conns {}, errors {}{}",
            p.publish.addr,
            fmt_rate(pb.target_rate),
            fmt_rate(pb.achieved_rate),
            pb.bytes_per_s / 1e6,
            pb.max_behind_ms,
            pb.connected,
            pb.errors,
            pb.first_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
        );
    }
    if let Some(sv) = &r.server {
        let _ = writeln!(
            o,
            "server pid {}: cpu {} ({}/msg), waited for cpu {}, rss {} -> {} KiB ({} KiB/conn)",
            sv.pid,
            sv.cpu_pct.map_or("-".into(), |c| format!("{c:.1}%")),
            sv.cpu_us_per_msg
                .map_or("-".into(), |c| format!("{c:.3}µs")),
            sv.runq_wait_pct.map_or("-".into(), |c| format!("{c:.1}%")),
            sv.rss_kib_base.map_or("-".into(), |v| v.to_string()),
            sv.rss_kib_end.map_or("-".into(), |v| v.to_string()),
            sv.rss_kib_per_conn
                .map_or("-".into(), |v| format!("{v:.1}")),
        );
    }
    let _ = writeln!(
        o,
        "loadgen: cpu {} of one core over {} receive thread(s) ({}/msg), waited for cpu {}",
        r.loadgen.cpu_pct.map_or("-".into(), |c| format!("{c:.1}%")),
        r.loadgen.threads,
        r.loadgen
            .cpu_us_per_msg
            .map_or("-".into(), |c| format!("{c:.3}µs")),
        r.loadgen
            .runq_wait_pct
            .map_or("-".into(), |c| format!("{c:.1}%")),
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_rate(1_234_567.0), "1.23M");
        assert_eq!(fmt_rate(4_100.0), "4.1k");
        assert_eq!(fmt_rate(12.0), "12");
        assert_eq!(fmt_us(850.0), "850µs");
        assert_eq!(fmt_us(1_230.0), "1.23ms");
        assert_eq!(fmt_us(2_500_000.0), "2.50s");
    }

    /// A report of a 2 s subscribe run with the given counters (fast class only).
    fn report_with(s: &Settings, fast: ClassCounters) -> Report {
        let totals = [fast, ClassCounters::default()];
        let lat = [
            crate::stats::latency_histogram(),
            crate::stats::latency_histogram(),
        ];
        let marks = Marks {
            window_s: 2.0,
            ..Default::default()
        };
        build(Inputs {
            settings: s,
            scenario: None,
            started_unix_s: 0.0,
            topics_total: s.topics,
            expected_msgs_per_s: None,
            totals: &totals,
            window_latency: &lat,
            handshake: None,
            error_samples: Vec::new(),
            book_samples: Vec::new(),
            missing_finals: 0,
            marks: &marks,
            server_pid: None,
            server_base: None,
            publish: None,
            timeline: Vec::new(),
        })
    }

    fn counters(connected: u64, acks: u64, errors: u64, ticks_window: u64) -> ClassCounters {
        let mut c = ClassCounters {
            planned: connected,
            connected,
            ticks: ticks_window,
            ticks_window,
            ..Default::default()
        };
        c.kinds[Kind::Subscribed.index()] = acks;
        c.kinds[Kind::Error.index()] = errors;
        c
    }

    #[test]
    fn a_run_without_ticks_is_a_failure_that_says_why() {
        let s = Settings::default();
        assert_eq!(
            nothing_measured(&report_with(&s, counters(5, 5, 0, 10))),
            None
        );

        let why = nothing_measured(&report_with(&s, counters(5, 5, 0, 0))).expect("no ticks");
        assert!(
            why.starts_with("received no ticks in the 2.0 s window on 5 connection(s)"),
            "{why}"
        );
        assert!(why.contains("ticker.SYM0000..ticker.SYM0099"), "{why}");
        assert!(why.contains("--symbols 100"), "{why}");
        assert!(!why.contains('\n'), "{why}");

        let why = nothing_measured(&report_with(&s, counters(5, 0, 5, 0))).expect("no acks");
        assert!(
            why.contains("no subscription was acknowledged on 5"),
            "{why}"
        );
        assert!(why.contains("5 error message(s)"), "{why}");

        // Explicit topics: named, and no hint about the synthetic feed's --symbols.
        let s = Settings {
            topic_list: vec!["a.X".into(), "a.Y".into(), "a.Z".into(), "a.W".into()],
            ..Settings::default()
        };
        let why = nothing_measured(&report_with(&s, counters(1, 1, 0, 0))).expect("no ticks");
        assert!(why.contains("(a.X, a.Y, a.Z, ...)"), "{why}");
        assert!(!why.contains("--symbols"), "{why}");
    }

    #[test]
    fn runs_that_expect_no_ticks_are_not_judged() {
        // Publish only: nothing is subscribed.
        let s = Settings {
            mode: crate::scenario::Mode::Publish,
            ..Settings::default()
        };
        assert_eq!(
            nothing_measured(&report_with(&s, counters(0, 0, 0, 0))),
            None
        );
        // Every reader stalls through the window on purpose.
        let s = Settings {
            slow_share: 1.0,
            slow_mode: crate::scenario::SlowMode::Stall,
            ..Settings::default()
        };
        let totals_slow = counters(3, 0, 0, 0);
        let mut r = report_with(&s, ClassCounters::default());
        r.subscribe.as_mut().unwrap().slow = Some(class_report(
            &totals_slow,
            &crate::stats::latency_histogram(),
            2.0,
        ));
        assert_eq!(nothing_measured(&r), None);
    }

    #[test]
    fn wrong_market_data_fails_a_run() {
        let ticker = Settings::default();
        let book = Settings {
            channel: Some("book".into()),
            ..Settings::default()
        };
        let mut c = counters(5, 5, 0, 10);
        assert_eq!(failures(&report_with(&book, c.clone())), None);
        // Ticker runs keep reporting unannounced gaps without failing; market channels fail.
        c.unannounced_gaps = 3;
        assert_eq!(failures(&report_with(&ticker, c.clone())), None);
        let why = failures(&report_with(&book, c.clone())).expect("fails");
        assert_eq!(
            why,
            "book channel check failed: 3 unannounced missing seq(s)"
        );
        c.unannounced_gaps = 0;
        c.book_checksum_mismatches = 2;
        c.book_errors = 1;
        let why = failures(&report_with(&ticker, c.clone())).expect("fails on any channel");
        assert!(
            why.contains("2 book checksum mismatch(es), 1 book error(s)"),
            "{why}"
        );
        let mut t = counters(5, 5, 0, 10);
        t.trade_duplicates = 1;
        assert!(failures(&report_with(&ticker, t))
            .unwrap()
            .contains("1 duplicate trade(s)"));
    }

    #[test]
    fn buckets_cover_all_samples() {
        let mut h = crate::stats::latency_histogram();
        for v in [1u64, 5, 50, 500, 5_000, 50_000] {
            h.record_n(v, 3).unwrap();
        }
        let b = log_buckets(&h);
        assert_eq!(b.iter().map(|x| x[1]).sum::<f64>(), 18.0);
        assert!(b.windows(2).all(|w| w[0][0] < w[1][0]));
    }
}
