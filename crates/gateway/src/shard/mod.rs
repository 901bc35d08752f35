//! Worker shards: one OS thread each, running a single-threaded tokio runtime that owns a slice of the
//! connections and the bus router for them.
//!
//! Why shards: the bus hands each tick to a shard once (one lock-free push), and everything after that
//! (fan-out to subscribers, waking writers, writing) happens on the shard's own thread with no locks
//! and no cross-core traffic. Every shard accepts from the same listening socket, so the accept path
//! never waits behind another thread.
//!
//! This module starts a shard and runs its accept loop until shutdown; [`accept`] admits a
//! connection (TLS, then HTTP), [`write_pass`] routes ticks and writes them out, and [`timers`]
//! runs the sweep over sessions, the topic reaper, heap trimming and the metrics flush.

mod accept;
mod timers;
mod write_pass;

use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::LocalSet;

use crate::local::Local;
use crate::session::ShardCtx;
use crate::state::ServerState;

/// Most connections taken from the backlog per turn of the accept loop.
const ACCEPT_BATCH: usize = 256;
/// Back-off after an accept error such as EMFILE, so a full fd table does not spin the loop.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

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
    let ctx: Rc<ShardCtx> = Rc::new(Local::new(index, state));
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(shard = index, error = %e, "cannot register listener");
            ctx.state.shutdown.cancel();
            return;
        }
    };
    tokio::task::spawn_local(write_pass::dispatch(ctx.clone()));
    let metrics = tokio::task::spawn_local(timers::metrics_timer(ctx.clone()));
    let sweeper = tokio::task::spawn_local(timers::sweep_sessions(ctx.clone()));
    let heartbeats = tokio::task::spawn_local(timers::heartbeats(ctx.clone()));
    let interval = ctx.state.config.flush_interval;
    let batcher = (!interval.is_zero())
        .then(|| tokio::task::spawn_local(write_pass::write_every_interval(ctx.clone(), interval)));
    let shutdown = ctx.state.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    accept::admit(&ctx, stream);
                    // Drain the backlog while this task has the thread: under a busy fan-out the
                    // accept task gets one turn in many, and one connection per turn starves a
                    // reconnect storm.
                    let mut cx = Context::from_waker(Waker::noop());
                    for _ in 0..ACCEPT_BATCH {
                        match listener.poll_accept(&mut cx) {
                            Poll::Ready(Ok((stream, _))) => accept::admit(&ctx, stream),
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
    // Every client gets 1001; queued frames get `shutdown_grace` to flush and closed connections
    // to finish lingering (each within its own bound), then the runtime drops whatever is left.
    timers::close_all(&ctx);
    let _ = tokio::time::timeout(ctx.state.config.shutdown_grace, async {
        loop {
            let idle = ctx.idle.notified();
            if ctx.is_idle() {
                break;
            }
            idle.await;
        }
    })
    .await;
    sweeper.abort();
    heartbeats.abort();
    if let Some(b) = batcher {
        b.abort();
    }
    metrics.abort();
    timers::add_to_metrics(&ctx);
}
