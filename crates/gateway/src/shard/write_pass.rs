//! The write pass: routing published ticks from the shard's inbox into subscriber queues, and
//! writing every subscriber that got some, from the dispatcher rather than by waking a task per
//! connection (fewer wake-ups), with the adaptive or fixed coalescing the config asks for.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tickcast_bus::{Dirty, Subscriber};
use tickcast_core::prefetch::prefetch;
use tickcast_core::TsMicros;
use tickcast_uring::MAX_BATCH;

use crate::net::transport::Transport;
use crate::session::writer;
use crate::session::{Session, ShardCtx};

/// Dispatch at most this many ticks before yielding, so writers and the accept loop get to run and a
/// burst is written while the next one is routed.
const DISPATCH_BUDGET: usize = 1024;
/// Longest the dispatcher writes before it lets the shard's other tasks run (accepts, handshakes,
/// client requests): about a hundred writes here.
const WRITE_SLICE: Duration = Duration::from_millis(1);
/// Connections written between two looks at the clock, one `send(2)` each (with the shard's
/// io_uring: [`MAX_BATCH`], in one submission).
const WRITE_CHUNK: usize = 16;

/// Writes every subscriber that got ticks since the last pass, yielding every [`WRITE_SLICE`].
/// `buffer` is the list the router fills for the next pass, handed back and forth so a pass
/// allocates nothing.
///
/// Ticks that arrive during a long pass are routed between chunks of writes, so subscribers not yet
/// written in this pass carry them in the same write: a tick waits about half a pass, not a whole one.
async fn write_dirty(ctx: &ShardCtx, buffer: &mut Vec<Rc<Subscriber>>) {
    let mut dirty = ctx.router.borrow_mut().take_dirty(std::mem::take(buffer));
    let mut turn = Instant::now();
    let mut batch = [0usize; MAX_BATCH];
    while dirty.remaining() > 0 {
        {
            // Writing never adds or removes sessions (a failed write only wakes the session's
            // task), so the list stays borrowed for this chunk.
            let sessions = ctx.sessions.borrow();
            let now = TsMicros::now();
            // With the ring, a chunk is one submission of sends; without, one send(2) each.
            let batching = ctx.ring.borrow().is_some();
            let chunk = if batching { MAX_BATCH } else { WRITE_CHUNK };
            let mut n = 0;
            for _ in 0..chunk {
                prefetch_ahead(&sessions, &dirty);
                let Some(sub) = dirty.take_next() else { break };
                match sessions
                    .get(sub.owner())
                    .filter(|s| Rc::ptr_eq(&s.sub, sub))
                {
                    Some(_) if batching => {
                        batch[n] = sub.owner();
                        n += 1;
                    }
                    Some(session) => writer::write_queued(ctx, session, now),
                    // Ended during a yield (or not registered yet): its own task takes over.
                    None => sub.wake(),
                }
            }
            if n > 0 {
                writer::write_batch(ctx, &sessions, &batch[..n], now);
            }
        }
        if dirty.remaining() > 0 {
            if turn.elapsed() >= WRITE_SLICE {
                // A fan-out to thousands of clients takes milliseconds: let accepts, handshakes and
                // client requests (and the I/O driver) in between, so none waits for the whole pass.
                tokio::task::yield_now().await;
                turn = Instant::now();
            }
            route(ctx);
        }
    }
    *buffer = dirty.finish();
}

/// Starts loading what writing the next subscribers will touch, in stages because each address
/// comes from an object the previous stage loaded: the subscriber three ahead; the session and queue
/// front two ahead; the socket state one ahead. The loads land while this subscriber's `send` runs
/// (microseconds) instead of stalling each write on a chain of cache misses.
fn prefetch_ahead(sessions: &[Rc<Session>], dirty: &Dirty) {
    // No ownership check as the write path makes: it would load the very line being prefetched,
    // and a wrong guess (a session that ended during a yield) only wastes the hint.
    let session_of = |sub: &Subscriber| sessions.get(sub.owner());
    if let Some(sub) = dirty.peek(3) {
        Subscriber::prefetch(sub);
    }
    if let Some(sub) = dirty.peek(2) {
        if let Some(session) = session_of(sub) {
            prefetch(Rc::as_ptr(session), std::mem::size_of::<Session>());
        }
        if let Ok(q) = sub.queue.try_borrow() {
            q.prefetch_front();
        }
    }
    if let Some(session) = dirty.peek(1).and_then(|sub| session_of(sub)) {
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

/// Queues the throttled ticks due at `now` for the next write pass; returns when the next are due.
fn release_throttled(ctx: &ShardCtx, now: Instant) -> Option<Instant> {
    let mut router = ctx.router.borrow_mut();
    if router.throttle_due().is_some_and(|due| due <= now) {
        router.release_throttled(now);
    }
    router.throttle_due()
}

/// Moves published ticks from this shard's inbox into subscriber queues, and writes them out
/// (`flush_interval` zero) or leaves that to [`write_every_interval`].
///
/// Adaptive coalescing: a write pass that took D is followed by at least min(D,
/// `adaptive_flush_max`) of routing only. The kernel's cost is per write, so when passes get long
/// (many busy clients) waiting that long makes each client's next write carry more frames; when the
/// server is idle a pass takes microseconds and the wait is nil.
pub(super) async fn dispatch(ctx: Rc<ShardCtx>) {
    let bus = ctx.state.bus.clone();
    let inbox = bus.inbox(ctx.index);
    let shutdown = ctx.state.shutdown.clone();
    let immediate = ctx.state.config.flush_interval.is_zero();
    let max_wait = ctx.state.config.adaptive_flush_max;
    let mut dirty = Vec::new();
    let mut next_pass = Instant::now();
    let pause = tokio::time::sleep_until(next_pass.into());
    tokio::pin!(pause);
    let throttle = tokio::time::sleep_until(next_pass.into());
    tokio::pin!(throttle);
    loop {
        let n = route(&ctx);
        let mut now = Instant::now();
        // Throttled ticks due now join this pass: a client's throttled topics leave in one write.
        let throttle_due = release_throttled(&ctx, now);
        if immediate && now >= next_pass && ctx.router.borrow().has_dirty() {
            write_dirty(&ctx, &mut dirty).await;
            let started = now;
            now = Instant::now();
            next_pass = now + (now - started).min(max_wait);
        }
        if n == 0 {
            let waiting = immediate && next_pass > now && ctx.router.borrow().has_dirty();
            if waiting {
                pause.as_mut().reset(next_pass.into());
            }
            if let Some(due) = throttle_due {
                throttle.as_mut().reset(due.into());
            }
            tokio::select! {
                _ = inbox.wait() => {}
                _ = &mut pause, if waiting => {}
                _ = &mut throttle, if throttle_due.is_some() => {}
                _ = shutdown.cancelled() => return,
            }
        } else {
            tokio::task::yield_now().await;
        }
    }
}

/// With a non-zero `flush_interval`: writes queued ticks every interval, trading up to that much
/// latency for fewer, fuller writes (the kernel's cost is per write, not per frame).
pub(super) async fn write_every_interval(ctx: Rc<ShardCtx>, interval: Duration) {
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = Vec::new();
    loop {
        timer.tick().await;
        write_dirty(&ctx, &mut dirty).await;
    }
}
