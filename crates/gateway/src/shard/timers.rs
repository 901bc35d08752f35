//! The shard's timers: one periodic sweep over its sessions (applying [`keepalive::decide`] to
//! each: pings, closes, kills), reaping topics nobody uses, trimming the heap after a mass
//! disconnect, closing everyone at shutdown, and adding the shard's batched counters to the
//! shared metrics.
//!
//! One timer per shard instead of one per connection: a connection then carries no timer state, and
//! checking ten thousand sessions once a second costs microseconds.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tickcast_core::CloseCode;

use crate::metrics::CloseReason;
use crate::session::keepalive::{self, Action, Deadlines};
use crate::session::ShardCtx;

/// Sessions that must close between two sweeps (and an eighth of the shard's) before the heap is
/// trimmed: a mass disconnect, not the usual churn.
const TRIM_AFTER_CLOSED: usize = 256;
/// How often shard-local counters are added to the shared metrics.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Applies the sweep's decision to every session of the shard.
fn sweep(ctx: &ShardCtx, deadlines: &Deadlines, now: Instant) {
    // Closing or killing only queues a frame and wakes the session's task; a session leaves the
    // list when its task ends, later, so the list stays borrowed for the whole sweep.
    for s in ctx.sessions.borrow().iter() {
        if s.is_killed() {
            continue;
        }
        s.sub.queue.borrow_mut().release_memory();
        match keepalive::decide(&s.timers(), now, deadlines) {
            Action::Nothing => {}
            Action::Ping => s.ping(now),
            Action::CloseExpired => s.close(
                CloseReason::TokenExpired,
                CloseCode::Policy,
                "token expired",
            ),
            Action::KillStalled => s.kill(CloseReason::SlowConsumer),
            Action::CloseUnresponsive => {
                s.close(CloseReason::Idle, CloseCode::GoingAway, "ping timeout")
            }
        }
    }
}

/// Queues close 1001 for every session (shutdown).
pub(super) fn close_all(ctx: &ShardCtx) {
    for s in ctx.sessions.borrow().iter() {
        s.close(
            CloseReason::Shutdown,
            CloseCode::GoingAway,
            "server shutting down",
        );
    }
}

/// The sweep timer: sessions, then (shard 0) the topic reaper, then heap trimming after a storm.
pub(super) async fn sweep_sessions(ctx: Rc<ShardCtx>) {
    let deadlines = Deadlines::of(&ctx.state.config);
    let mut timer = tokio::time::interval(keepalive::sweep_period(&deadlines));
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open_before: usize = 0;
    let mut after_storm = false;
    loop {
        timer.tick().await;
        let now = Instant::now();
        sweep(&ctx, &deadlines, now);
        // Topics are shared by every shard: one of them reaps the ones only clients made up, and
        // frees history past its age in topics gone quiet.
        if ctx.index == 0 {
            ctx.state
                .bus
                .reap_requested(now, ctx.state.config.requested_topic_grace);
            ctx.state.bus.expire_history(now);
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

/// The metrics timer.
pub(super) async fn metrics_timer(ctx: Rc<ShardCtx>) {
    let mut timer = tokio::time::interval(FLUSH_EVERY);
    loop {
        timer.tick().await;
        add_to_metrics(&ctx);
    }
}

/// Adds what this shard counted since the last flush to the shared metrics.
pub(super) fn add_to_metrics(ctx: &ShardCtx) {
    let m = &ctx.state.metrics;
    let ((messages, bytes), (events, sse_bytes)) = ctx.counters.drain();
    m.messages_sent.with_label_values(&["ws"]).inc_by(messages);
    m.bytes_sent.with_label_values(&["ws"]).inc_by(bytes);
    m.messages_sent.with_label_values(&["sse"]).inc_by(events);
    m.bytes_sent.with_label_values(&["sse"]).inc_by(sse_bytes);
    let now = ctx.router.borrow().stats();
    let last = ctx.flushed.replace(now);
    m.messages_conflated.inc_by(now.conflated - last.conflated);
    m.messages_dropped
        .with_label_values(&["drop_oldest"])
        .inc_by(now.dropped - last.dropped);
    m.messages_dropped
        .with_label_values(&["event_overflow"])
        .inc_by(now.events_dropped - last.events_dropped);
    m.messages_dropped
        .with_label_values(&["book_resync"])
        .inc_by(now.resyncs - last.resyncs);
    m.slow_consumer_disconnects
        .inc_by(now.slow_disconnects - last.slow_disconnects);
    m.subscriptions
        .add(now.subscriptions as i64 - last.subscriptions as i64);
    let sealed = ctx.counters.drain_gaps();
    let gaps = |reason: &str, n: u64| m.gap_markers.with_label_values(&[reason]).inc_by(n);
    gaps("conflated", sealed.conflated);
    gaps(
        "dropped",
        sealed.dropped + now.inbox_markers - last.inbox_markers,
    );
    gaps("resync", sealed.resyncs);
    gaps("upstream", now.upstream_markers - last.upstream_markers);
    m.resets_sent.inc_by(now.resets - last.resets);
    m.heartbeats_encoded
        .inc_by(now.heartbeats - last.heartbeats);
    m.heartbeats_sent
        .inc_by(now.heartbeat_deliveries - last.heartbeat_deliveries);
    m.throttle_superseded
        .inc_by(now.throttle_superseded - last.throttle_superseded);
    m.throttle_releases
        .inc_by(now.throttle_releases - last.throttle_releases);
    m.wildcard_matches
        .inc_by(now.pattern_matches - last.pattern_matches);
    let refused = |reason: &str, n: u64| m.wildcard_refusals.with_label_values(&[reason]).inc_by(n);
    refused("forbidden", now.pattern_forbidden - last.pattern_forbidden);
    refused(
        "topic_limit",
        now.pattern_over_limit - last.pattern_over_limit,
    );
}

/// The heartbeat timer: sends the heartbeats due and sleeps until the next one is, or, with no
/// heartbeat group on the shard, until a subscribe asks for heartbeats (so a shard without them
/// never wakes for them).
pub(super) async fn heartbeats(ctx: Rc<ShardCtx>) {
    loop {
        let next = ctx.router.borrow_mut().heartbeats(Instant::now());
        let asked = ctx.heartbeats_asked.notified();
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    // A new group may be due before `at`.
                    _ = asked => {}
                }
            }
            None => asked.await,
        }
    }
}
