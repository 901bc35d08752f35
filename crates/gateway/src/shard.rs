//! Worker shards: one OS thread each, running a single-threaded tokio runtime that owns a slice of the
//! connections and the bus router for them.
//!
//! Why shards: the bus hands each tick to a shard once (one lock-free push), and everything after that
//! (fan-out to subscribers, waking writers, writing) happens on the shard's own thread with no locks
//! and no cross-core traffic. Every shard accepts from the same listening socket, so the accept path
//! never waits behind another thread.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use prometheus::local::LocalHistogram;
use tickcast_bus::{RouterStats, ShardRouter, SubscriberId};
use tickcast_core::prefetch::prefetch;
use tickcast_core::TsMicros;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::LocalSet;

use crate::connection::Session;
use crate::state::ServerState;
use crate::sweep;
use crate::transport::Transport;
use crate::writer;

/// Dispatch at most this many ticks before yielding, so writers and the accept loop get to run and a
/// burst is written while the next one is routed.
const DISPATCH_BUDGET: usize = 1024;
/// Longest the dispatcher writes before it lets the shard's other tasks run (accepts, handshakes,
/// client requests): about a hundred writes here.
const WRITE_SLICE: Duration = Duration::from_millis(1);
/// Connections written between two looks at the clock.
const WRITE_CHUNK: usize = 16;
/// Sessions that must close between two sweeps (and an eighth of the shard's) before the heap is
/// trimmed: a mass disconnect, not the usual churn.
const TRIM_AFTER_CLOSED: usize = 256;
/// How often shard-local counters are added to the shared metrics.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Most connections taken from the backlog per turn of the accept loop.
const ACCEPT_BATCH: usize = 256;
/// Back-off after an accept error such as EMFILE, so a full fd table does not spin the loop.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Counters kept per shard in plain cells, added to Prometheus every [`FLUSH_EVERY`].
pub(crate) struct ShardCounters {
    messages: Cell<u64>,
    bytes: Cell<u64>,
    frames_per_write: LocalHistogram,
    tick_to_write: LocalHistogram,
    fanout: LocalHistogram,
    queue_depth: LocalHistogram,
}

impl ShardCounters {
    /// Records one write made at `now`: frames and bytes it carried, ticks that were queued before
    /// it, and the ingest time of the oldest tick it carried.
    pub(crate) fn record_write(
        &self,
        frames: usize,
        bytes: usize,
        queued: usize,
        oldest: Option<TsMicros>,
        now: TsMicros,
    ) {
        self.messages.set(self.messages.get() + frames as u64);
        self.bytes.set(self.bytes.get() + bytes as u64);
        if frames > 0 {
            self.frames_per_write.observe(frames as f64);
        }
        self.queue_depth.observe(queued as f64);
        if let Some(ts) = oldest {
            let age_us = now.0.saturating_sub(ts.0);
            self.tick_to_write.observe(age_us as f64 / 1e6);
        }
    }

    fn flush(&self) {
        self.frames_per_write.flush();
        self.tick_to_write.flush();
        self.fanout.flush();
        self.queue_depth.flush();
    }
}

/// What every task on a shard shares.
pub(crate) struct ShardCtx {
    /// Shard number.
    pub index: usize,
    /// Server-wide state.
    pub state: Arc<ServerState>,
    /// This shard's routing table.
    pub router: RefCell<ShardRouter>,
    /// Batched counters.
    pub counters: ShardCounters,
    /// Router counters as of the last flush, to add only the difference.
    flushed: Cell<RouterStats>,
    next_id: Cell<u64>,
    /// Live sessions, for the sweep and shutdown.
    pub sessions: RefCell<Vec<Rc<Session>>>,
    /// Reused buffer into which the writer gathers a connection's queued frames for one write.
    pub cork: RefCell<Vec<u8>>,
    idle: Notify,
}

impl ShardCtx {
    /// A fresh id for a subscriber on this shard (shard number in the high bits).
    pub(crate) fn next_subscriber_id(&self) -> SubscriberId {
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        SubscriberId(((self.index as u64) << 48) | n)
    }

    /// Adds `session` to the shard's list until the guard drops.
    pub(crate) fn register(self: &Rc<Self>, session: &Rc<Session>) -> Registration {
        let mut list = self.sessions.borrow_mut();
        // The subscriber's owner index is its slot in this list, so the dispatcher finds the
        // session of a subscriber that got ticks.
        session.sub.set_owner(list.len());
        list.push(session.clone());
        Registration {
            ctx: self.clone(),
            session: session.clone(),
        }
    }
}

/// Keeps a session in its shard's list; removes it (O(1)) on drop.
pub(crate) struct Registration {
    ctx: Rc<ShardCtx>,
    session: Rc<Session>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut list = self.ctx.sessions.borrow_mut();
        let i = self.session.sub.owner();
        if i < list.len() && Rc::ptr_eq(&list[i], &self.session) {
            list.swap_remove(i);
            if let Some(moved) = list.get(i) {
                moved.sub.set_owner(i);
            }
        }
        if list.is_empty() {
            self.ctx.idle.notify_waiters();
        }
    }
}

/// Starts shard `index` on its own thread, accepting from `listener`.
pub(crate) fn spawn(
    index: usize,
    state: Arc<ServerState>,
    listener: std::net::TcpListener,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("tickcast-shard-{index}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(shard = index, error = %e, "cannot start shard runtime");
                    state.shutdown.cancel();
                    return;
                }
            };
            LocalSet::new().block_on(&rt, run(index, state, listener));
        })
}

async fn run(index: usize, state: Arc<ServerState>, listener: std::net::TcpListener) {
    let ctx = Rc::new(ShardCtx {
        index,
        router: RefCell::new(ShardRouter::new(
            state.bus.clone(),
            index,
            state.config.queue,
        )),
        counters: ShardCounters {
            messages: Cell::new(0),
            bytes: Cell::new(0),
            frames_per_write: state.metrics.frames_per_write.local(),
            tick_to_write: state.metrics.tick_to_write_seconds.local(),
            fanout: state.metrics.fanout_seconds.local(),
            queue_depth: state.metrics.queue_depth_frames.local(),
        },
        state,
        flushed: Cell::new(RouterStats::default()),
        next_id: Cell::new(0),
        sessions: RefCell::new(Vec::new()),
        cork: RefCell::new(Vec::with_capacity(writer::CORK_BYTES)),
        idle: Notify::new(),
    });
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(shard = index, error = %e, "cannot register listener");
            ctx.state.shutdown.cancel();
            return;
        }
    };
    tokio::task::spawn_local(dispatch(ctx.clone()));
    let flusher = tokio::task::spawn_local(flush_metrics(ctx.clone()));
    let sweeper = tokio::task::spawn_local(sweep_sessions(ctx.clone()));
    let interval = ctx.state.config.flush_interval;
    let batcher =
        (!interval.is_zero()).then(|| tokio::task::spawn_local(flush_every(ctx.clone(), interval)));
    let shutdown = ctx.state.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    admit(&ctx, stream);
                    // Drain the backlog while this task has the thread: under a busy fan-out the
                    // accept task gets one turn in many, and one connection per turn starves a
                    // reconnect storm.
                    let mut cx = Context::from_waker(Waker::noop());
                    for _ in 0..ACCEPT_BATCH {
                        match listener.poll_accept(&mut cx) {
                            Poll::Ready(Ok((stream, _))) => admit(&ctx, stream),
                            _ => break,
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(shard = index, error = %e, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            }
        }
    }
    drop(listener);
    // Every client gets 1001; queued frames get `shutdown_grace` to flush, then the runtime drops
    // whatever is left.
    sweep::close_all(&ctx);
    let _ = tokio::time::timeout(ctx.state.config.shutdown_grace, async {
        loop {
            let idle = ctx.idle.notified();
            if ctx.sessions.borrow().is_empty() {
                break;
            }
            idle.await;
        }
    })
    .await;
    sweeper.abort();
    if let Some(b) = batcher {
        b.abort();
    }
    flusher.abort();
    flush_once(&ctx);
}

/// Sets up an accepted connection and starts serving HTTP on it.
fn admit(ctx: &Rc<ShardCtx>, stream: tokio::net::TcpStream) {
    ctx.state.metrics.connections_accepted.inc();
    // Ticks are small and latency-sensitive; never wait for Nagle.
    let _ = stream.set_nodelay(true);
    if let Some(size) = ctx.state.config.socket_send_buffer {
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(size);
    }
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    match &ctx.state.config.tls {
        None => {
            tokio::task::spawn_local(crate::http::serve(ctx.clone(), stream, peer));
        }
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
            tokio::task::spawn_local(serve_tls(ctx.clone(), acceptor, stream, peer));
        }
    }
}

/// Completes the TLS handshake (bounded by the handshake timeout, like a slow HTTP head), then
/// serves HTTP on the encrypted stream.
async fn serve_tls(
    ctx: Rc<ShardCtx>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: Option<std::net::IpAddr>,
) {
    let timeout = ctx.state.config.handshake_timeout;
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => crate::http::serve(ctx, tls, peer).await,
        Ok(Err(e)) => {
            ctx.state.metrics.tls_handshake_failures.inc();
            tracing::debug!(error = %e, "TLS handshake failed");
        }
        Err(_) => {
            ctx.state.metrics.tls_handshake_failures.inc();
            tracing::debug!("TLS handshake timed out");
        }
    }
}

/// Writes every subscriber that got ticks since the last flush, from here rather than by waking a
/// task per connection (fewer wake-ups), yielding every [`WRITE_SLICE`]. `dirty` is a
/// reused buffer.
///
/// Ticks that arrive during a long pass are routed between chunks of writes, so subscribers not yet
/// written in this pass carry them in the same write: a tick waits about half a pass, not a whole one.
async fn flush_dirty(ctx: &ShardCtx, dirty: &mut Vec<Rc<tickcast_bus::Subscriber>>) {
    ctx.router.borrow_mut().take_dirty(dirty);
    let mut turn = Instant::now();
    let mut done = 0;
    while done < dirty.len() {
        let end = (done + WRITE_CHUNK).min(dirty.len());
        {
            // Writing never adds or removes sessions (a failed write only wakes the session's
            // task), so the list stays borrowed for this chunk.
            let sessions = ctx.sessions.borrow();
            let now = TsMicros::now();
            for (i, sub) in dirty.iter().enumerate().take(end).skip(done) {
                prefetch_ahead(&sessions, dirty, i);
                sub.unlist();
                match sessions
                    .get(sub.owner())
                    .filter(|s| Rc::ptr_eq(&s.sub, sub))
                {
                    Some(session) => writer::flush_now(ctx, session, now),
                    // Ended during a yield (or not registered yet): its own task takes over.
                    None => sub.wake(),
                }
            }
        }
        done = end;
        if done < dirty.len() {
            if turn.elapsed() >= WRITE_SLICE {
                // A fan-out to thousands of clients takes milliseconds: let accepts, handshakes and
                // client requests (and the I/O driver) in between, so none waits for the whole pass.
                tokio::task::yield_now().await;
                turn = Instant::now();
            }
            route(ctx);
        }
    }
    dirty.clear();
}

/// Starts loading what writing the next subscribers will touch, in stages because each address
/// comes from an object the previous stage loaded: the subscriber three ahead; the session and queue
/// front two ahead; the socket state one ahead. The loads land while this subscriber's `send` runs
/// (microseconds) instead of stalling each write on a chain of cache misses.
fn prefetch_ahead(sessions: &[Rc<Session>], dirty: &[Rc<tickcast_bus::Subscriber>], i: usize) {
    // No ownership check as the write path makes: it would load the very line being prefetched,
    // and a wrong guess (a session that ended during a yield) only wastes the hint.
    let session_of = |sub: &tickcast_bus::Subscriber| sessions.get(sub.owner());
    if let Some(sub) = dirty.get(i + 3) {
        tickcast_bus::Subscriber::prefetch(sub);
    }
    if let Some(sub) = dirty.get(i + 2) {
        if let Some(session) = session_of(sub) {
            prefetch(Rc::as_ptr(session), std::mem::size_of::<Session>());
        }
        if let Ok(q) = sub.queue.try_borrow() {
            q.prefetch_front();
        }
    }
    if let Some(session) = dirty.get(i + 1).and_then(|sub| session_of(sub)) {
        prefetch(
            Rc::as_ptr(&session.stream),
            std::mem::size_of::<Transport>(),
        );
    }
}

/// Fans out up to [`DISPATCH_BUDGET`] ticks from this shard's inbox into subscriber queues.
fn route(ctx: &ShardCtx) -> usize {
    let fanout = &ctx.counters.fanout;
    ctx.router
        .borrow_mut()
        .dispatch(DISPATCH_BUDGET, |d| fanout.observe(d.as_secs_f64()))
}

/// Moves published ticks from this shard's inbox into subscriber queues, and writes them out
/// (`flush_interval` zero) or leaves that to [`flush_every`].
///
/// Adaptive coalescing: a write pass that took D is followed by at least min(D,
/// `adaptive_flush_max`) of routing only. The kernel's cost is per write, so when passes get long
/// (many busy clients) waiting that long makes each client's next write carry more frames; when the
/// server is idle a pass takes microseconds and the wait is nil.
async fn dispatch(ctx: Rc<ShardCtx>) {
    let bus = ctx.state.bus.clone();
    let inbox = bus.inbox(ctx.index);
    let shutdown = ctx.state.shutdown.clone();
    let immediate = ctx.state.config.flush_interval.is_zero();
    let max_wait = ctx.state.config.adaptive_flush_max;
    let mut dirty = Vec::new();
    let mut next_pass = Instant::now();
    let pause = tokio::time::sleep_until(next_pass.into());
    tokio::pin!(pause);
    loop {
        let n = route(&ctx);
        let mut now = Instant::now();
        if immediate && now >= next_pass && ctx.router.borrow().has_dirty() {
            flush_dirty(&ctx, &mut dirty).await;
            let started = now;
            now = Instant::now();
            next_pass = now + (now - started).min(max_wait);
        }
        if n == 0 {
            let waiting = immediate && next_pass > now && ctx.router.borrow().has_dirty();
            if waiting {
                pause.as_mut().reset(next_pass.into());
            }
            tokio::select! {
                _ = inbox.wait() => {}
                _ = &mut pause, if waiting => {}
                _ = shutdown.cancelled() => return,
            }
        } else {
            tokio::task::yield_now().await;
        }
    }
}

/// With a non-zero `flush_interval`: writes queued ticks every interval, trading up to that much
/// latency for fewer, fuller writes (the kernel's cost is per write, not per frame).
async fn flush_every(ctx: Rc<ShardCtx>, interval: Duration) {
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = Vec::new();
    loop {
        timer.tick().await;
        flush_dirty(&ctx, &mut dirty).await;
    }
}

async fn sweep_sessions(ctx: Rc<ShardCtx>) {
    let mut timer = tokio::time::interval(sweep::period(&ctx));
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open_before: usize = 0;
    let mut after_storm = false;
    loop {
        timer.tick().await;
        let now = std::time::Instant::now();
        sweep::sweep(&ctx, now);
        // Topics are shared by every shard: one of them reaps the ones only clients made up.
        if ctx.index == 0 {
            ctx.state
                .bus
                .reap_requested(now, ctx.state.config.requested_topic_grace);
        }
        let open = ctx.sessions.borrow().len();
        let closed = open_before.saturating_sub(open);
        let storm = closed >= TRIM_AFTER_CLOSED.max(open_before / 8);
        // Once more at the sweep after a storm: a storm often spans two sweeps, and a shard left
        // without clients allocates nothing that would make the allocator purge later.
        if storm || after_storm {
            if let Some(trim) = ctx.state.config.heap_trim {
                trim();
            }
        }
        after_storm = storm;
        open_before = open;
    }
}

async fn flush_metrics(ctx: Rc<ShardCtx>) {
    let mut timer = tokio::time::interval(FLUSH_EVERY);
    loop {
        timer.tick().await;
        flush_once(&ctx);
    }
}

/// Adds what this shard counted since the last flush to the shared metrics.
fn flush_once(ctx: &ShardCtx) {
    let m = &ctx.state.metrics;
    m.messages_sent.inc_by(ctx.counters.messages.replace(0));
    m.bytes_sent.inc_by(ctx.counters.bytes.replace(0));
    ctx.counters.flush();
    let now = ctx.router.borrow().stats();
    let last = ctx.flushed.replace(now);
    m.messages_conflated.inc_by(now.conflated - last.conflated);
    m.messages_dropped
        .with_label_values(&["drop_oldest"])
        .inc_by(now.dropped - last.dropped);
    m.slow_consumer_disconnects
        .inc_by(now.slow_disconnects - last.slow_disconnects);
    m.subscriptions
        .add(now.subscriptions as i64 - last.subscriptions as i64);
}
