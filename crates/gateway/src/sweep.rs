//! The shard's periodic sweep over its sessions: keepalive pings, closing clients that stopped
//! answering, killing sessions whose socket refuses writes, closing sessions whose token expired
//! (1008, within one sweep period), and closing everyone at shutdown.
//!
//! One timer per shard instead of one per connection: a connection then carries no timer state, and
//! checking ten thousand sessions once a second costs microseconds.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tickcast_core::{CloseCode, Frame};

use crate::connection::Session;
use crate::metrics::CloseReason;
use crate::shard::ShardCtx;

/// The sweep period: a quarter of the shortest keepalive or write timeout, within 10 ms..1 s.
pub(crate) fn period(ctx: &ShardCtx) -> Duration {
    let c = &ctx.state.config;
    (c.ping_interval.min(c.pong_timeout).min(c.write_timeout) / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Checks every session of the shard once.
pub(crate) fn sweep(ctx: &ShardCtx, now: Instant) {
    let c = &ctx.state.config;
    // Clone the list: closing a session may remove it from the list while we iterate.
    let sessions: Vec<Rc<Session>> = ctx.sessions.borrow().clone();
    for s in sessions {
        if s.is_killed() {
            continue;
        }
        s.sub.queue.borrow_mut().release_memory();
        if s.expires_at.is_some_and(|at| now >= at) {
            s.close(
                CloseReason::TokenExpired,
                CloseCode::Policy,
                "token expired",
            );
            continue;
        }
        if let Some(since) = s.stalled_since.get() {
            if now.duration_since(since) >= c.write_timeout {
                s.kill(CloseReason::SlowConsumer);
                continue;
            }
        }
        match s.pinged.get() {
            Some(at) if now.duration_since(at) >= c.pong_timeout => {
                s.close(CloseReason::Idle, CloseCode::GoingAway, "ping timeout");
            }
            Some(_) => {}
            None if now.duration_since(s.heard.get()) >= c.ping_interval => {
                s.pinged.set(Some(now));
                s.reply(Frame::ping(b"tickcast"));
            }
            None => {}
        }
    }
}

/// Queues close 1001 for every session (shutdown).
pub(crate) fn close_all(ctx: &ShardCtx) {
    let sessions: Vec<Rc<Session>> = ctx.sessions.borrow().clone();
    for s in sessions {
        s.close(
            CloseReason::Shutdown,
            CloseCode::GoingAway,
            "server shutting down",
        );
    }
}
