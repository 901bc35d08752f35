//! Subscribe mode: receive threads that open WebSocket connections, subscribe each to K topics,
//! and account for every message they get (rate, latency, sequence gaps, disconnects).
//!
//! Each thread runs a single-threaded tokio runtime and owns every `threads`-th connection, so
//! the hot path (read frame → scan → count) touches only thread-local state. The thread sends
//! cumulative reports to the orchestrator every [`REPORT_EVERY`].

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fastwebsockets::{Frame, OpCode, Payload, WebSocket, WebSocketError};
use hdrhistogram::Histogram;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::book::{self, BookMsg, LocalBook};
use crate::control::{Control, Phase, MAX_RUN};
use crate::message::{scan, GapReason, Kind, Msg};
use crate::scenario::{Settings, SlowMode};
use crate::seqcheck::{TickCheck, TopicSeq};
use crate::stats::{self, Class, ClassCounters, FinalHistograms, WorkerReport};
use crate::target::WsTarget;
use crate::topics::{Assign, TopicTable};
use crate::ws::{self, Stream};

/// How often a receive thread reports to the orchestrator. Short enough that the ramp's end is
/// noticed quickly, long enough that reporting costs nothing next to receiving.
pub const REPORT_EVERY: Duration = Duration::from_millis(100);

/// Connection error messages kept per thread for the report (the rest are only counted).
const MAX_ERROR_SAMPLES: usize = 5;

/// Book mismatch and error descriptions kept per thread for the report.
const MAX_BOOK_SAMPLES: usize = 5;

/// A capped slow reader may catch up on at most this much unused budget after an idle spell.
const SLOW_BURST: Duration = Duration::from_millis(100);

/// Frames a connection handles before yielding to the thread's other tasks. fastwebsockets
/// returns buffered frames without touching the socket, and its buffer grows to whatever the
/// socket holds, so without this one busy connection can hold the thread for seconds and
/// starve the reporter and the other connections.
const YIELD_EVERY: u32 = 64;

/// Everything a receive thread needs to know about the run, shared read-only.
#[derive(Debug)]
pub struct SubscribePlan {
    /// Server WebSocket endpoint.
    pub target: WsTarget,
    /// Topic universe.
    pub topics: Arc<TopicTable>,
    /// Total subscriber connections.
    pub conns: usize,
    /// Topics per connection.
    pub per_conn: usize,
    /// Topic choice.
    pub assign: Assign,
    /// Seed for random choices.
    pub seed: u64,
    /// Receive threads.
    pub threads: usize,
    /// Source addresses, round-robin (empty: let the kernel choose).
    pub src_ips: Vec<IpAddr>,
    /// Connections per second over all threads (0: unpaced).
    pub ramp_rate: f64,
    /// Handshakes in flight over all threads.
    pub ramp_parallel: usize,
    /// Ramp deadline from the run start.
    pub ramp_timeout: Duration,
    /// Limit for one connect + upgrade.
    pub connect_timeout: Duration,
    /// Latency sample mask (sample when `counter & mask == 0`).
    pub sample_mask: u64,
    /// Share of slow connections.
    pub slow_share: f64,
    /// Slow reader behaviour.
    pub slow_mode: SlowMode,
    /// Slow reader cap, messages per second.
    pub slow_rate: f64,
    /// SO_RCVBUF of slow readers in bytes (0: system default).
    pub slow_recv_buffer: u32,
    /// Mean connection lifetime under churn (`None`: connections live for the whole run).
    pub churn: Option<Duration>,
    /// `throttle_ms` of every subscribe (0: none).
    pub throttle_ms: u64,
}

impl SubscribePlan {
    /// Builds the plan from validated settings.
    pub fn new(
        s: &Settings,
        target: WsTarget,
        topics: Arc<TopicTable>,
        src_ips: Vec<IpAddr>,
    ) -> Self {
        Self {
            target,
            topics,
            conns: s.conns,
            per_conn: s.per_conn,
            assign: s.assign,
            seed: s.seed,
            threads: s.threads.max(1),
            src_ips,
            ramp_rate: s.ramp_rate,
            ramp_parallel: s.ramp_parallel.max(1),
            ramp_timeout: Duration::from_secs_f64(s.ramp_timeout_s),
            connect_timeout: Duration::from_secs_f64(s.connect_timeout_s),
            sample_mask: s.sample_mask(),
            slow_share: s.slow_share,
            slow_mode: s.slow_mode,
            slow_rate: s.slow_rate,
            slow_recv_buffer: s.slow_recv_buffer,
            throttle_ms: s.throttle_ms,
            churn: (s.churn_s > 0.0).then(|| Duration::from_secs_f64(s.churn_s)),
        }
    }

    /// Class of connection `c`: slow connections are spread evenly, exactly
    /// `floor(conns * slow_share)` of them.
    pub fn class_of(&self, c: usize) -> Class {
        let share = self.slow_share;
        if share > 0.0 && ((c + 1) as f64 * share).floor() > (c as f64 * share).floor() {
            Class::Slow
        } else {
            Class::Fast
        }
    }

    /// The connections thread `worker` owns.
    fn conns_of(&self, worker: usize) -> impl Iterator<Item = usize> {
        (worker..self.conns).step_by(self.threads)
    }
}

/// Starts receive thread `worker`; it reports on `tx` until the phase reaches [`Phase::Stop`].
pub fn spawn_worker(
    plan: Arc<SubscribePlan>,
    worker: usize,
    control: Arc<Control>,
    tx: Sender<WorkerReport>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("recv-{worker}"))
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, worker_main(plan, worker, control, tx));
            // Dropping the LocalSet and runtime here drops every connection task, which
            // closes their sockets: shutdown is bounded no matter what the server does.
        })
}

/// Thread-local state of one receive thread.
struct WorkerState {
    counters: [ClassCounters; 2],
    window_latency: [Histogram<u64>; 2],
    interval_latency: Histogram<u64>,
    handshake: Histogram<u64>,
    sample_ctr: u64,
    error_samples: Vec<String>,
    /// The book message being checked: reused, so its level vectors stop allocating.
    book_msg: BookMsg,
    book_samples: Vec<String>,
}

impl WorkerState {
    fn new() -> Self {
        Self {
            counters: Default::default(),
            window_latency: [stats::latency_histogram(), stats::latency_histogram()],
            interval_latency: stats::latency_histogram(),
            handshake: stats::latency_histogram(),
            sample_ctr: 0,
            error_samples: Vec::new(),
            book_msg: BookMsg::default(),
            book_samples: Vec::new(),
        }
    }

    fn report(&mut self, worker: usize, last: bool) -> WorkerReport {
        let fresh = stats::latency_histogram();
        let interval_latency = std::mem::replace(&mut self.interval_latency, fresh);
        let last = last.then(|| {
            Box::new(FinalHistograms {
                window_latency: self.window_latency.clone(),
                handshake: self.handshake.clone(),
                error_samples: self.error_samples.clone(),
                book_samples: self.book_samples.clone(),
            })
        });
        WorkerReport {
            worker,
            counters: self.counters.clone(),
            interval_latency,
            first_error: self.error_samples.first().cloned(),
            last,
        }
    }

    fn note_error(&mut self, msg: String) {
        if self.error_samples.len() < MAX_ERROR_SAMPLES {
            self.error_samples.push(msg);
        }
    }
}

/// What every connection task of a thread shares.
struct Ctx {
    plan: Arc<SubscribePlan>,
    control: Arc<Control>,
    st: RefCell<WorkerState>,
}

async fn worker_main(
    plan: Arc<SubscribePlan>,
    worker: usize,
    control: Arc<Control>,
    tx: Sender<WorkerReport>,
) {
    let ctx = Rc::new(Ctx {
        plan: plan.clone(),
        control: control.clone(),
        st: RefCell::new(WorkerState::new()),
    });
    let mine: Vec<usize> = plan.conns_of(worker).collect();
    {
        let mut st = ctx.st.borrow_mut();
        for &c in &mine {
            st.counters[plan.class_of(c) as usize].planned += 1;
        }
    }
    tokio::task::spawn_local(reporter(ctx.clone(), worker, tx.clone()));

    // Ramp: this thread's share of the rate and of the handshakes in flight.
    let threads = plan.threads as f64;
    let rate = plan.ramp_rate / threads;
    let parallel = plan.ramp_parallel.div_ceil(plan.threads).max(1);
    let sem = Arc::new(Semaphore::new(parallel));
    let ramp_start = tokio::time::Instant::now();
    let deadline = tokio::time::Instant::from_std(control.start + plan.ramp_timeout);
    for (i, &c) in mine.iter().enumerate() {
        if rate > 0.0 {
            let at = ramp_start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(at.min(deadline)).await;
        }
        let permit = match tokio::time::timeout_at(deadline, sem.clone().acquire_owned()).await {
            Ok(Ok(p))
                if tokio::time::Instant::now() < deadline && control.phase() < Phase::Stop =>
            {
                p
            }
            _ => {
                // Ramp over: the rest are never tried.
                let mut st = ctx.st.borrow_mut();
                for &rest in &mine[i..] {
                    st.counters[plan.class_of(rest) as usize].not_started += 1;
                }
                break;
            }
        };
        tokio::task::spawn_local(conn_task(ctx.clone(), c, permit));
    }

    control.wait_for(Phase::Stop, MAX_RUN).await;
    let last = ctx.st.borrow_mut().report(worker, true);
    // The orchestrator may have stopped listening; nothing to do about it.
    let _ = tx.send(last);
}

async fn reporter(ctx: Rc<Ctx>, worker: usize, tx: Sender<WorkerReport>) {
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // No await between this check and the send: the final report (sent by worker_main
        // after it sees Stop) is always the last one on the channel.
        if ctx.control.phase() >= Phase::Stop {
            return;
        }
        let r = ctx.st.borrow_mut().report(worker, false);
        if tx.send(r).is_err() {
            return;
        }
    }
}

/// Per-connection sequence state: subscribed topic ids (sorted), the sequence state of each,
/// and the order book of each `book` topic (made on its first book message or marker).
struct SeqTrack {
    ids: Vec<u32>,
    seqs: Vec<TopicSeq>,
    books: Vec<Option<Box<BookState>>>,
}

/// One subscribed book on one connection.
#[derive(Debug, Default)]
struct BookState {
    book: LocalBook,
    /// A snapshot came (deltas apply).
    synced: bool,
    /// The book is known to be wrong (mismatch, error, unannounced gap): deltas are not
    /// verified until the next snapshot.
    broken: bool,
    /// A gap marker came since the last book message: the next one must be a snapshot.
    after_gap: bool,
    /// The seq the snapshot after a `resync` marker must have.
    resync_at: Option<u64>,
}

impl SeqTrack {
    fn new(ids: Vec<u32>) -> Self {
        let n = ids.len();
        Self {
            ids,
            seqs: vec![TopicSeq::new(); n],
            books: (0..n).map(|_| None).collect(),
        }
    }

    #[inline]
    fn slot(&self, id: u32) -> Option<usize> {
        if self.ids.len() <= 16 {
            self.ids.iter().position(|&x| x == id)
        } else {
            self.ids.binary_search(&id).ok()
        }
    }
}

async fn conn_task(ctx: Rc<Ctx>, c: usize, permit: OwnedSemaphorePermit) {
    let mut permit = Some(permit);
    // Under churn a connection lives a while, leaves and comes back until the window is over.
    for life in 0u64.. {
        let lifetime = ctx.plan.churn.map(|mean| {
            // A lifetime in 0.5..1.5 of the mean, different per connection and per life.
            let mut x = (c as u64) << 32 ^ life ^ ctx.plan.seed.rotate_left(17);
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
            mean.mul_f64(0.5 + (x >> 11) as f64 / (1u64 << 53) as f64)
        });
        if !conn_life(&ctx, c, permit.take(), lifetime).await || ctx.control.phase() >= Phase::Drain
        {
            return;
        }
    }
}

/// One connection from connect to disconnect; true when it left by churn (and should come back).
async fn conn_life(
    ctx: &Rc<Ctx>,
    c: usize,
    permit: Option<OwnedSemaphorePermit>,
    lifetime: Option<Duration>,
) -> bool {
    let plan = &ctx.plan;
    let class = plan.class_of(c);
    let ci = class as usize;
    let src = (!plan.src_ips.is_empty()).then(|| plan.src_ips[c % plan.src_ips.len()]);
    let t0 = Instant::now();
    let opts = ws::SocketOpts {
        src,
        recv_buffer: (class == Class::Slow && plan.slow_recv_buffer > 0)
            .then_some(plan.slow_recv_buffer),
    };
    let mut ws = match ws::connect(&plan.target, opts, plan.connect_timeout).await {
        Ok(ws) => ws,
        Err(e) => {
            let mut st = ctx.st.borrow_mut();
            *st.counters[ci].failed.entry(e.label()).or_default() += 1;
            st.note_error(format!("conn {c}: {e}"));
            return false;
        }
    };
    let hs_us = t0.elapsed().as_micros() as u64;
    let ids = plan.topics.assign(c, plan.per_conn, plan.assign, plan.seed);
    let req = subscribe_request(&plan.topics, &ids, plan.throttle_ms);
    if let Err(e) = ws.write_frame(Frame::text(Payload::Owned(req))).await {
        let mut st = ctx.st.borrow_mut();
        *st.counters[ci].failed.entry("subscribe").or_default() += 1;
        st.note_error(format!("conn {c}: sending subscribe: {e}"));
        return false;
    }
    {
        let mut st = ctx.st.borrow_mut();
        st.counters[ci].connected += 1;
        st.handshake.saturating_record(hs_us);
    }
    drop(permit);

    let mut seqs = SeqTrack::new(ids);
    let reading = async {
        match class {
            Class::Fast => read_loop(ctx, &mut ws, &mut seqs, ci, None).await,
            Class::Slow => match plan.slow_mode {
                SlowMode::Cap => {
                    let every = Duration::from_secs_f64(1.0 / plan.slow_rate);
                    read_loop(ctx, &mut ws, &mut seqs, ci, Some(every)).await
                }
                SlowMode::Stall => {
                    // Read nothing while the server keeps sending: its buffers for us fill up.
                    ctx.control.wait_for(Phase::Drain, MAX_RUN).await;
                    read_loop(ctx, &mut ws, &mut seqs, ci, None).await
                }
            },
        }
    };
    let (cause, churned) = match lifetime {
        None => (reading.await, false),
        Some(life) => {
            let read = tokio::time::timeout(life, reading).await;
            match read {
                Ok(cause) => (cause, false),
                Err(_) => {
                    // Churn: unsubscribe everything, close, and let the caller reconnect.
                    let unsub = serde_json::json!({"op": "unsubscribe", "topics": seqs.ids.iter().map(|&i| plan.topics.name(i)).collect::<Vec<_>>(), "id": 2});
                    let _ = ws
                        .write_frame(Frame::text(Payload::Owned(unsub.to_string().into_bytes())))
                        .await;
                    let _ = ws.write_frame(Frame::close(1000, b"churn")).await;
                    ("churn".to_string(), true)
                }
            }
        }
    };
    let mut st = ctx.st.borrow_mut();
    *st.counters[ci].disconnects.entry(cause).or_default() += 1;
    churned
}

/// Reads until the connection ends; returns the cause (`"1008"`, `"eof"`, ...). Paced to one
/// message per `pace` when given.
async fn read_loop(
    ctx: &Ctx,
    ws: &mut WebSocket<Stream>,
    seqs: &mut SeqTrack,
    ci: usize,
    pace: Option<Duration>,
) -> String {
    let mut next_read = tokio::time::Instant::now();
    let mut since_yield: u32 = 0;
    // Bounded by the connection's life: the thread drops this task at Stop.
    loop {
        since_yield += 1;
        if since_yield >= YIELD_EVERY {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
        if let Some(every) = pace {
            let now = tokio::time::Instant::now();
            // Unused budget older than SLOW_BURST is forfeited, so the cap holds after idle spells.
            let floor = now.checked_sub(SLOW_BURST).unwrap_or(now);
            next_read = next_read.max(floor) + every;
            if next_read > now {
                tokio::time::sleep_until(next_read).await;
            }
        }
        let frame = match ws.read_frame().await {
            Ok(f) => f,
            Err(e) => return error_cause(&e).to_string(),
        };
        match frame.opcode {
            OpCode::Text | OpCode::Binary => on_message(ctx, seqs, ci, &frame.payload),
            OpCode::Close => return close_cause(&frame.payload),
            _ => {}
        }
    }
}

/// Accounts for one data message. This is the hot path: no allocation, one RefCell borrow.
#[inline]
fn on_message(ctx: &Ctx, seqs: &mut SeqTrack, ci: usize, payload: &[u8]) {
    let m = scan(payload);
    let phase = ctx.control.phase();
    let in_window = phase == Phase::Window;
    let mut st = ctx.st.borrow_mut();
    let st = &mut *st;
    if !m.kind.is_data() {
        st.counters[ci].kinds[m.kind.index()] += 1;
        if m.kind == Kind::Gap {
            on_gap_marker(ctx, seqs, &mut st.counters[ci], &m, in_window);
        }
        return;
    }
    let cnt = &mut st.counters[ci];
    // Ticks are counted by `ticks` alone; other data kinds also by kind.
    if m.kind != Kind::Tick {
        cnt.kinds[m.kind.index()] += 1;
        if m.kind == Kind::Trade && in_window {
            cnt.trades_window += 1;
        }
    }
    cnt.ticks += 1;
    if in_window {
        cnt.ticks_window += 1;
        cnt.bytes_window += stats::wire_len(payload.len());
    }
    let (Some(seq), false) = (m.seq, m.topic.is_empty()) else {
        cnt.bad_ticks += 1;
        return;
    };
    let Some(slot) = ctx.plan.topics.id(m.topic).and_then(|id| seqs.slot(id)) else {
        cnt.unexpected_topic += 1;
        return;
    };
    let outcome = seqs.seqs[slot].tick(seq);
    match outcome.check {
        TickCheck::Unchecked | TickCheck::Next => {}
        TickCheck::Announced => {
            // The missing seqs were counted when their markers arrived.
            if in_window {
                cnt.gap_events_window += 1;
                cnt.announced_gaps_window += 1;
            }
        }
        // A throttle skips seqs by request, without markers: only order is checked.
        TickCheck::Unannounced { .. } if ctx.plan.throttle_ms > 0 => {}
        TickCheck::Unannounced { missing } => {
            cnt.gaps += missing;
            cnt.unannounced_gaps += missing;
            if in_window {
                cnt.gaps_window += missing;
                cnt.unannounced_gaps_window += missing;
                cnt.gap_events_window += 1;
                cnt.unannounced_gap_events_window += 1;
            }
        }
        TickCheck::Reorder => {
            cnt.reorders += 1;
            if m.kind == Kind::Trade {
                cnt.trade_duplicates += 1;
            }
            return;
        }
    }
    if outcome.first {
        // Snapshot (or first live tick): the baseline. Its ts may be old, so no latency sample.
        st.counters[ci].baselines += 1;
    }
    if m.kind == Kind::Book {
        let snapshot = on_book(st, seqs, slot, &m, outcome.check, payload, ci, in_window);
        // A snapshot's ts is its book's last update, not when it was sent: no latency sample.
        if snapshot {
            return;
        }
    }
    if outcome.first {
        return;
    }

    let Some(ts) = m.ts else { return };
    st.sample_ctr = st.sample_ctr.wrapping_add(1);
    if st.sample_ctr & ctx.plan.sample_mask != 0 {
        return;
    }
    let lat = latency_us(ts, now_us());
    if ci == Class::Fast as usize {
        st.interval_latency.saturating_record(lat);
    }
    if in_window {
        st.window_latency[ci].saturating_record(lat);
    }
}

/// Applies one `book` message to the connection's copy of that book and verifies its checksum;
/// true when it was a snapshot. Out of line: only book messages pay for it.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn on_book(
    st: &mut WorkerState,
    seqs: &mut SeqTrack,
    slot: usize,
    m: &Msg<'_>,
    check: TickCheck,
    payload: &[u8],
    ci: usize,
    in_window: bool,
) -> bool {
    let WorkerState {
        counters,
        book_msg: msg,
        book_samples,
        ..
    } = st;
    let cnt = &mut counters[ci];
    let seq = m.seq.unwrap_or(0);
    let mut note = |what: std::fmt::Arguments<'_>| {
        if book_samples.len() < MAX_BOOK_SAMPLES {
            book_samples.push(format!(
                "{} seq {seq}: {what}",
                String::from_utf8_lossy(m.topic)
            ));
        }
    };
    if in_window {
        cnt.book_messages_window += 1;
    }
    let state = seqs.books[slot].get_or_insert_with(Default::default);
    if let Err(e) = book::parse(payload, msg) {
        cnt.book_errors += 1;
        state.broken = true;
        note(format_args!("{}", e.name()));
        return false;
    }
    let resync_at = state.resync_at.take();
    let after_gap = std::mem::take(&mut state.after_gap);
    if msg.snapshot {
        cnt.book_snapshots += 1;
        match resync_at {
            Some(at) if at == seq => cnt.book_resyncs += 1,
            Some(at) => {
                cnt.book_errors += 1;
                note(format_args!(
                    "the snapshot after a resync marker should have seq {at}"
                ));
            }
            None => {}
        }
        state.book.apply_snapshot(msg);
        state.synced = true;
        state.broken = false;
    } else {
        let error = if !state.synced {
            Some("a delta before any snapshot")
        } else if after_gap {
            Some("a delta right after a gap marker (deltas missing and no snapshot)")
        } else {
            None
        };
        if let Some(why) = error {
            cnt.book_errors += 1;
            // Counted once: later deltas are unverified until a snapshot.
            state.synced = true;
            state.broken = true;
            note(format_args!("{why}"));
            return false;
        }
        if state.broken || matches!(check, TickCheck::Unannounced { .. }) {
            // Deltas are missing (the unannounced gap is counted as such) or the book is
            // already wrong: nothing to verify against until a snapshot.
            state.broken = true;
            cnt.book_unverified += 1;
            return false;
        }
        state.book.apply_delta(msg);
    }
    if state.book.is_crossed() {
        cnt.book_errors += 1;
        state.broken = true;
        note(format_args!("the book is crossed"));
        return msg.snapshot;
    }
    let sent = msg.checksum.unwrap_or(u64::MAX);
    let computed = state.book.checksum();
    if sent == u64::from(computed) {
        cnt.books_verified += 1;
        if in_window {
            cnt.books_verified_window += 1;
        }
    } else {
        cnt.book_checksum_mismatches += 1;
        state.broken = true;
        note(format_args!(
            "checksum {sent} sent, {computed} computed ({} snapshot)",
            if msg.snapshot {
                "a"
            } else {
                "after a delta, not a"
            }
        ));
    }
    msg.snapshot
}

/// Accounts for a `gap` marker: the seqs it announces move the topic's sequence forward, so the
/// tick after it is checked against its `to`.
#[cold]
fn on_gap_marker(
    ctx: &Ctx,
    seqs: &mut SeqTrack,
    cnt: &mut stats::ClassCounters,
    m: &Msg<'_>,
    in_window: bool,
) {
    let (Some(from), Some(to), false) = (m.from, m.to, m.topic.is_empty()) else {
        cnt.bad_markers += 1;
        return;
    };
    let Some(slot) = ctx.plan.topics.id(m.topic).and_then(|id| seqs.slot(id)) else {
        cnt.unexpected_topic += 1;
        return;
    };
    let Some(o) = seqs.seqs[slot].marker(from, to) else {
        cnt.bad_markers += 1;
        return;
    };
    // Book topics: the next book message must be a snapshot (at `to + 1` after a resync).
    if m.reason == GapReason::Resync || m.topic.starts_with(b"book.") {
        let state = seqs.books[slot].get_or_insert_with(Default::default);
        state.after_gap = true;
        if m.reason == GapReason::Resync {
            state.resync_at = Some(to.saturating_add(1));
        }
    }
    if m.reason == GapReason::Dropped && m.topic.starts_with(b"trade.") {
        cnt.trades_dropped_announced += o.announced;
        if in_window {
            cnt.trades_dropped_announced_window += o.announced;
        }
    }
    let r = m.reason.index();
    cnt.gap_markers[r] += 1;
    cnt.gaps += o.announced + o.unannounced;
    cnt.unannounced_gaps += o.unannounced;
    cnt.marker_reorders += u64::from(o.misplaced);
    if in_window {
        cnt.gap_markers_window[r] += 1;
        cnt.announced_seqs_window[r] += o.announced;
        cnt.gaps_window += o.announced + o.unannounced;
        cnt.unannounced_gaps_window += o.unannounced;
        if o.unannounced > 0 {
            cnt.unannounced_gap_events_window += 1;
        }
    }
}

/// Now as unix microseconds (CLOCK_REALTIME, the clock the server stamps `ts` with).
#[inline]
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Latency of a tick stamped `ts`: tickcast sends microseconds; the peers rig's servers send
/// nanoseconds, told apart by magnitude (µs since 1970 stay below 1e17 until the year 5138).
#[inline]
fn latency_us(ts: u64, now_us: u64) -> u64 {
    let ts_us = if ts >= 100_000_000_000_000_000 {
        ts / 1_000
    } else {
        ts
    };
    now_us.saturating_sub(ts_us)
}

/// `{"op":"subscribe","topics":[...],"id":1}`, with `"throttle_ms"` when `throttle_ms > 0`.
fn subscribe_request(topics: &TopicTable, ids: &[u32], throttle_ms: u64) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Sub<'a> {
        op: &'static str,
        topics: Vec<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        throttle_ms: Option<u64>,
        id: u64,
    }
    let sub = Sub {
        op: "subscribe",
        topics: ids.iter().map(|&i| topics.name(i)).collect(),
        throttle_ms: (throttle_ms > 0).then_some(throttle_ms),
        id: 1,
    };
    // Serializing strings and integers into a Vec cannot fail.
    serde_json::to_vec(&sub).unwrap_or_default()
}

/// Disconnect cause from a close frame payload: the code, or `close` when it has none.
fn close_cause(payload: &[u8]) -> String {
    match payload {
        [a, b, ..] => u16::from_be_bytes([*a, *b]).to_string(),
        _ => "close".to_string(),
    }
}

/// Disconnect cause from a read error.
fn error_cause(e: &WebSocketError) -> &'static str {
    match e {
        WebSocketError::UnexpectedEOF | WebSocketError::ConnectionClosed => "eof",
        WebSocketError::IoError(_) => "io-error",
        WebSocketError::FrameTooLarge => "frame-too-large",
        WebSocketError::InvalidUTF8 => "invalid-utf8",
        _ => "protocol-error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conns: usize, share: f64) -> SubscribePlan {
        plan_of("ticker.SYM", conns, share)
    }

    fn plan_of(prefix: &str, conns: usize, share: f64) -> SubscribePlan {
        let s = Settings {
            conns,
            slow_share: share,
            ..Settings::default()
        };
        let topics = Arc::new(TopicTable::pattern(prefix, 100).unwrap());
        SubscribePlan::new(
            &s,
            WsTarget::parse("ws://127.0.0.1:1/ws").unwrap(),
            topics,
            vec![],
        )
    }

    #[test]
    fn slow_share_is_exact_and_spread() {
        let p = plan(1000, 0.1);
        let slow: Vec<usize> = (0..1000)
            .filter(|&c| p.class_of(c) == Class::Slow)
            .collect();
        assert_eq!(slow.len(), 100);
        assert!(slow.windows(2).all(|w| w[1] - w[0] == 10));
        let p = plan(10, 0.0);
        assert!((0..10).all(|c| p.class_of(c) == Class::Fast));
        let p = plan(10, 1.0);
        assert!((0..10).all(|c| p.class_of(c) == Class::Slow));
    }

    #[test]
    fn subscribe_request_shape() {
        let t = TopicTable::pattern("ticker.SYM", 100).unwrap();
        let r = subscribe_request(&t, &[1, 2], 0);
        assert_eq!(
            std::str::from_utf8(&r).unwrap(),
            r#"{"op":"subscribe","topics":["ticker.SYM0001","ticker.SYM0002"],"id":1}"#
        );
        let r = subscribe_request(&t, &[3], 250);
        assert_eq!(
            std::str::from_utf8(&r).unwrap(),
            r#"{"op":"subscribe","topics":["ticker.SYM0003"],"throttle_ms":250,"id":1}"#
        );
    }

    #[test]
    fn latency_units() {
        assert_eq!(latency_us(1_000_000, 1_000_250), 250);
        assert_eq!(
            latency_us(1_700_000_000_000_000_000, 1_700_000_000_000_100),
            100
        );
        assert_eq!(latency_us(2_000, 1_000), 0);
    }

    #[test]
    fn close_causes() {
        assert_eq!(close_cause(&[0x03, 0xF0, b's']), "1008");
        assert_eq!(close_cause(&[]), "close");
    }

    fn ctx() -> Ctx {
        ctx_of("ticker.SYM")
    }

    fn ctx_of(prefix: &str) -> Ctx {
        let p = plan_of(prefix, 1, 0.0);
        let control = Arc::new(Control::new());
        control.set(Phase::Window);
        Ctx {
            plan: Arc::new(p),
            control,
            st: RefCell::new(WorkerState::new()),
        }
    }

    fn tick(sym: u32, seq: u64) -> Vec<u8> {
        format!(
            r#"{{"type":"tick","topic":"ticker.SYM{sym:04}","seq":{seq},"ts":{},"bid":1.0,"ask":1.1,"last":1.05,"size":1}}"#,
            now_us()
        )
        .into_bytes()
    }

    fn track(ids: &[u32]) -> SeqTrack {
        SeqTrack::new(ids.to_vec())
    }

    fn gap(sym: u32, from: u64, to: u64, reason: &str) -> Vec<u8> {
        format!(
            r#"{{"type":"gap","topic":"ticker.SYM{sym:04}","from":{from},"to":{to},"reason":"{reason}"}}"#
        )
        .into_bytes()
    }

    #[test]
    fn sequence_accounting() {
        let ctx = ctx();
        let mut seqs = track(&[3, 4]);
        for (sym, seq) in [(3, 10), (3, 11), (4, 1), (3, 14), (3, 12), (4, 2), (9, 1)] {
            on_message(&ctx, &mut seqs, 0, &tick(sym, seq));
        }
        on_message(
            &ctx,
            &mut seqs,
            0,
            br#"{"type":"subscribed","topics":[],"id":1}"#,
        );
        on_message(
            &ctx,
            &mut seqs,
            0,
            br#"{"type":"snapshot_end","topic":"x"}"#,
        );
        let st = ctx.st.borrow();
        let c = &st.counters[0];
        assert_eq!(c.ticks, 7);
        assert_eq!(c.baselines, 2);
        assert_eq!(c.gaps_window, 2);
        assert_eq!(c.gap_events_window, 1);
        // No marker came: the jump 11 -> 14 is unannounced.
        assert_eq!(c.unannounced_gaps_window, 2);
        assert_eq!(c.unannounced_gaps, 2);
        assert_eq!(c.unannounced_gap_events_window, 1);
        assert_eq!(c.announced_gaps_window, 0);
        assert_eq!(c.reorders, 1);
        assert_eq!(c.unexpected_topic, 1);
        assert_eq!(c.kinds[Kind::Subscribed.index()], 1);
        assert_eq!(c.kinds[Kind::Other.index()], 1);
        // 11, 14, 2 are checked live ticks with a latency sample each (sample_every = 1).
        assert_eq!(st.window_latency[0].len(), 3);
    }

    #[test]
    fn gap_marker_accounting() {
        use crate::message::GapReason;
        let ctx = ctx();
        let mut seqs = track(&[3, 4]);
        let msgs = [
            tick(3, 10),
            // Announced exactly: 11..=13, then 14.
            gap(3, 11, 13, "conflated"),
            tick(3, 14),
            // Two markers chained (drop_oldest), then the tick: one announced gap.
            gap(3, 15, 15, "dropped"),
            gap(3, 16, 17, "dropped"),
            tick(3, 18),
            // A marker short of the jump: 19 announced, 20 not.
            gap(3, 19, 19, "conflated"),
            tick(3, 21),
            // A tick the marker said would not arrive.
            gap(3, 22, 23, "upstream"),
            tick(3, 23),
            tick(3, 24),
            // A marker that overlaps a received seq (misplaced), and one for another topic.
            gap(3, 24, 25, "conflated"),
            tick(3, 26),
            tick(4, 1),
            gap(9, 1, 2, "conflated"),
            // Bad markers: to < from, no `to`.
            gap(4, 5, 3, "dropped"),
            br#"{"type":"gap","topic":"ticker.SYM0004","from":2,"reason":"dropped"}"#.to_vec(),
            gap(4, 2, 2, "later"),
            tick(4, 3),
        ];
        for m in &msgs {
            on_message(&ctx, &mut seqs, 1, m);
        }
        let st = ctx.st.borrow();
        let c = &st.counters[1];
        let r = |r: GapReason| r.index();
        assert_eq!(c.kinds[Kind::Gap.index()], 10);
        assert_eq!(c.gap_markers[r(GapReason::Conflated)], 3);
        assert_eq!(c.gap_markers[r(GapReason::Dropped)], 2);
        assert_eq!(c.gap_markers[r(GapReason::Upstream)], 1);
        assert_eq!(c.gap_markers[r(GapReason::Unknown)], 1);
        assert_eq!(c.gap_markers_window, c.gap_markers);
        // Seqs announced: 11..=13, 15..=17, 19, 22..=23, 25 (24 had arrived), 2 (unknown).
        assert_eq!(c.announced_seqs_window[r(GapReason::Conflated)], 3 + 1 + 1);
        assert_eq!(c.announced_seqs_window[r(GapReason::Dropped)], 3);
        assert_eq!(c.announced_seqs_window[r(GapReason::Upstream)], 2);
        assert_eq!(c.announced_seqs_window[r(GapReason::Unknown)], 1);
        // 14, 18, 24, 26 and 3 (topic 4) close announced gaps; 21 skipped 20 unannounced.
        assert_eq!(c.announced_gaps_window, 5);
        assert_eq!(c.unannounced_gaps, 1);
        assert_eq!(c.unannounced_gaps_window, 1);
        assert_eq!(c.unannounced_gap_events_window, 1);
        assert_eq!(c.gap_events_window, 6);
        assert_eq!(c.gaps_window, 3 + 3 + 1 + 1 + 2 + 1 + 1);
        assert_eq!(c.gaps, c.gaps_window);
        assert_eq!(c.reorders, 1, "23 after a marker for 22..=23");
        assert_eq!(c.marker_reorders, 1, "24..=25 after tick 24");
        assert_eq!(c.unexpected_topic, 1);
        assert_eq!(c.bad_markers, 2);
        assert_eq!(c.baselines, 2);
        assert_eq!(c.ticks, 9);
    }

    /// A book message for `book.SYM{sym}`; its checksum is the one `truth` has after applying
    /// it (plus `skew`, to make a wrong one).
    fn book_msg(
        truth: &mut LocalBook,
        sym: u32,
        seq: u64,
        snapshot: bool,
        bids: &str,
        asks: &str,
        skew: u32,
    ) -> Vec<u8> {
        let head = format!(
            r#"{{"type":"book","topic":"book.SYM{sym:04}","seq":{seq},"ts":{},"snapshot":{snapshot},"#,
            now_us()
        );
        let depth = if snapshot { r#""depth":3,"# } else { "" };
        let body = format!(r#"{depth}"bids":[{bids}],"asks":[{asks}]"#);
        let mut m = BookMsg::default();
        book::parse(
            format!("{{\"snapshot\":{snapshot},{body},\"checksum\":0}}").as_bytes(),
            &mut m,
        )
        .unwrap();
        if snapshot {
            truth.apply_snapshot(&m);
        } else {
            truth.apply_delta(&m);
        }
        format!(
            r#"{head}{body},"checksum":{}}}"#,
            truth.checksum().wrapping_add(skew)
        )
        .into_bytes()
    }

    #[test]
    fn book_accounting() {
        let ctx = ctx_of("book.SYM");
        let mut seqs = track(&[1, 2]);
        let mut t1 = LocalBook::default();
        let mut t2 = LocalBook::default();
        let msgs = vec![
            book_msg(
                &mut t1,
                1,
                10,
                true,
                r#"["9.5","1"],["9.4","2"]"#,
                r#"["10.0","1"],["10.1","3"]"#,
                0,
            ),
            book_msg(
                &mut t1,
                1,
                11,
                false,
                r#"["9.50","0"],["9.6","5"],["9.3","1"],["9.2","1"]"#,
                "",
                0,
            ),
            book_msg(&mut t1, 1, 12, false, "", r#"["10.00","4"]"#, 0),
            // Topic 2: a delta before any snapshot (an error, once), then one more (unverified).
            book_msg(&mut t2, 2, 5, false, r#"["1","1"]"#, "", 0),
            book_msg(&mut t2, 2, 6, false, r#"["1","2"]"#, "", 0),
            // Topic 1: a wrong checksum, then deltas that cannot be verified until the resync.
            book_msg(&mut t1, 1, 13, false, r#"["9.7","1"]"#, "", 1),
            book_msg(&mut t1, 1, 14, false, r#"["9.7","2"]"#, "", 0),
            gap(1, 15, 20, "resync"),
            book_msg(&mut t1, 1, 21, true, r#"["9.5","1"]"#, r#"["10.0","1"]"#, 0),
            book_msg(&mut t1, 1, 22, false, r#"["9.4","1"]"#, "", 0),
            // Topic 2 resynced: then a gap followed by a delta is an error.
            book_msg(&mut t2, 2, 7, true, r#"["1","1"]"#, r#"["2","1"]"#, 0),
            gap(2, 8, 8, "upstream"),
            book_msg(&mut t2, 2, 9, false, r#"["1","3"]"#, "", 0),
        ];
        for m in &msgs {
            on_message(
                &ctx,
                &mut seqs,
                0,
                &String::from_utf8_lossy(m)
                    .replace("ticker.SYM", "book.SYM")
                    .into_bytes(),
            );
        }
        let st = ctx.st.borrow();
        let c = &st.counters[0];
        assert_eq!(c.kinds[Kind::Book.index()], 11);
        assert_eq!(c.book_snapshots, 3);
        assert_eq!(c.book_resyncs, 1);
        // 10, 11, 12, 21, 22 (topic 1) and 7 (topic 2).
        assert_eq!(c.books_verified, 6);
        assert_eq!(c.books_verified_window, 6);
        assert_eq!(c.book_checksum_mismatches, 1);
        assert_eq!(c.book_errors, 2, "{:?}", st.book_samples);
        assert_eq!(c.book_unverified, 2);
        assert_eq!(c.book_messages_window, 11);
        assert_eq!(c.unannounced_gaps, 0);
        assert_eq!(c.baselines, 2);
        assert_eq!(st.book_samples.len(), 3, "{:?}", st.book_samples);
        assert!(
            st.book_samples[0].starts_with("book.SYM0002 seq 5: a delta before"),
            "{:?}",
            st.book_samples
        );
        assert!(
            st.book_samples[1].contains("checksum"),
            "{:?}",
            st.book_samples
        );
        // Deltas after the first message are latency samples (11, 12, 13, 14, 22, 6, 9);
        // snapshots are not.
        assert_eq!(st.window_latency[0].len(), 7);
    }

    #[test]
    fn trade_accounting() {
        let ctx = ctx_of("trade.SYM");
        let mut seqs = track(&[1]);
        let trade = |seq: u64| {
            format!(r#"{{"type":"trade","topic":"trade.SYM0001","seq":{seq},"ts":{},"price":"1.5","size":"2","side":"buy","trade_id":"x"}}"#, now_us()).into_bytes()
        };
        let dropped =
            br#"{"type":"gap","topic":"trade.SYM0001","from":3,"to":5,"reason":"dropped"}"#
                .to_vec();
        for m in [trade(1), trade(2), dropped, trade(6), trade(6), trade(8)] {
            on_message(&ctx, &mut seqs, 0, &m);
        }
        let c = &ctx.st.borrow().counters[0];
        assert_eq!(
            (c.kinds[Kind::Trade.index()], c.trades_window, c.ticks),
            (5, 5, 5)
        );
        assert_eq!(c.trades_dropped_announced, 3);
        assert_eq!(c.trades_dropped_announced_window, 3);
        assert_eq!(c.trade_duplicates, 1);
        assert_eq!(c.unannounced_gaps, 1, "7 vanished");
    }
}
