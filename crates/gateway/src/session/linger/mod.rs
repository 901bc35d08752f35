//! Lingering close, as nginx's `lingering_close`: once the server's close frame and FIN are out,
//! the connection keeps reading and discarding what the client still sends, within
//! [`LingerLimits`], before the socket is closed.
//!
//! Why: closing a socket whose receive queue holds unread bytes, or that receives bytes afterwards,
//! makes the kernel answer with a reset. A client that was still sending (the rest of a message too
//! big for us, or anything it sent before it saw our close) then gets a reset instead of the end of
//! the stream, and a reset can destroy our close frame in its buffers: browsers report 1006 instead
//! of the 1009 (or 1008, 1002, 1001, ...) that said why.
//!
//! The linger is a task of its own, started when a session's writer ended with its close frame out
//! (never for a session killed or failed, whose close frame did not go out). The session is gone by
//! then (unsubscribed, out of the shard's list); what lingers is the socket, the connection's slot
//! (the descriptor is still open, so it still counts against `max_connections`) and a count on the
//! shard, which shutdown waits for within its grace. [`decide()`] says when to stop; the outcome and
//! the bytes thrown away are counted when the task ends, also when the shard drops it at the end of
//! shutdown's grace (outcome `shutdown`).

pub(crate) mod decide;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::time::Sleep;

use super::{Session, ShardCtx};
use crate::config::LingerLimits;
use crate::local::Lingering;
use crate::metrics::LingerOutcome;
use crate::net::transport::Transport;
use crate::state::SessionSlot;
use decide::{decide, read_budget, Progress, Step};

/// Starts lingering on `stream`, whose close frame and FIN are out, keeping `slot` until the socket
/// closes. Counts the connection on its shard before returning, so a shutdown that sees the session
/// leave does not miss the linger that replaces it.
pub(super) fn start(ctx: &Rc<ShardCtx>, stream: Rc<Transport>, slot: SessionSlot) {
    ctx.state.metrics.linger_started();
    tokio::task::spawn_local(Linger {
        _counted: ctx.lingering(),
        ctx: ctx.clone(),
        stream,
        limits: ctx.state.config.lingering,
        progress: Progress::new(Instant::now()),
        timer: None,
        outcome: None,
        _slot: slot,
    });
}

/// The lingering task of one connection. A hand-written future, as the session's: everything it
/// needs is in these fields, and dropping it (the shard stopping) still counts the linger.
struct Linger {
    ctx: Rc<ShardCtx>,
    stream: Rc<Transport>,
    limits: LingerLimits,
    progress: Progress,
    /// Wakes the task when a limit may be reached without any byte arriving; made on first wait.
    timer: Option<Pin<Box<Sleep>>>,
    /// How it ended; `None` until then (and for good if the shard drops the task first).
    outcome: Option<LingerOutcome>,
    _counted: Lingering<Session>,
    _slot: SessionSlot,
}

impl Future for Linger {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            let now = Instant::now();
            let wait = match decide(&this.progress, now, &this.limits) {
                Step::Stop(outcome) => {
                    this.outcome = Some(outcome);
                    return Poll::Ready(());
                }
                Step::Wait(wait) => wait,
            };
            // Not zero: `decide` stops at the byte limit.
            let budget = read_budget(&this.progress, &this.limits);
            match this.stream.poll_discard(cx, budget) {
                Poll::Ready(Ok(n)) => this.progress.read(n, Instant::now()),
                Poll::Ready(Err(_)) => this.progress.failed(),
                Poll::Pending => {
                    // No limit that far away (only an embedder's huge limits): the socket alone
                    // wakes the task.
                    let Some(at) = tokio::time::Instant::from_std(now).checked_add(wait) else {
                        return Poll::Pending;
                    };
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                    if timer.deadline() != at {
                        timer.as_mut().reset(at);
                    }
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // A limit is due: the next `decide` stops.
                }
            }
        }
    }
}

impl Drop for Linger {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or(LingerOutcome::Shutdown);
        let discarded = self.progress.discarded;
        self.ctx.state.metrics.lingered(outcome, discarded);
        tracing::debug!(
            shard = self.ctx.index,
            outcome = outcome.label(),
            discarded,
            "lingering close ended"
        );
    }
}
