//! What every task on one shard shares: the server state, the shard's bus router, the cork buffer
//! writes are gathered into, counters batched in plain cells, and the list of the shard's sessions.
//!
//! Generic over the session type so that this module needs nothing from `session` (which builds
//! on it): the only thing it asks of a session is its bus subscriber, whose owner index is the
//! session's slot in the list.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use prometheus::local::LocalHistogram;
use tickcast_bus::{RouterStats, Sealed, ShardRouter, Subscriber, SubscriberId};
use tickcast_core::TsMicros;
use tokio::sync::Notify;

use tickcast_uring::SendRing;

use crate::state::ServerState;

/// The shard's send ring when the config asks for it and the kernel allows it.
fn open_ring(shard: usize, state: &ServerState) -> Option<SendRing> {
    if !state.config.io_uring {
        return None;
    }
    match SendRing::new() {
        Ok(ring) => {
            state.metrics.io_uring_shards.inc();
            Some(ring)
        }
        Err(e) => {
            // Once per process: every shard meets the same kernel (or the same seccomp profile).
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(shard, error = %e, "io_uring unavailable: writes use send(2) (tickcast_io_uring_shards 0)");
            }
            None
        }
    }
}

/// Capacity of a shard's cork buffer: the most bytes gathered into one write. A frame larger than
/// this is written straight from its own buffer.
pub(crate) const CORK_BYTES: usize = 64 * 1024;

/// Counters kept per shard in plain cells, added to Prometheus by the shard's metrics timer.
pub(crate) struct ShardCounters {
    messages: Cell<u64>,
    bytes: Cell<u64>,
    /// SSE events and bytes written.
    sse: Cell<(u64, u64)>,
    /// `gap` markers encoded and book resyncs made as they were about to be written.
    gaps: Cell<Sealed>,
    frames_per_write: LocalHistogram,
    tick_to_write: LocalHistogram,
    /// Time to fan one tick out to this shard's queues.
    pub fanout: LocalHistogram,
    queue_depth: LocalHistogram,
}

impl ShardCounters {
    fn new(state: &ServerState) -> Self {
        let m = &state.metrics;
        Self {
            messages: Cell::new(0),
            bytes: Cell::new(0),
            sse: Cell::new((0, 0)),
            gaps: Cell::new(Sealed::default()),
            frames_per_write: m.frames_per_write.local(),
            tick_to_write: m.tick_to_write_seconds.local(),
            fanout: m.fanout_seconds.local(),
            queue_depth: m.queue_depth_frames.local(),
        }
    }

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

    /// Records one chunk of SSE events handed to the HTTP connection at `now`: events and bytes,
    /// and the ingest time of the oldest tick among them.
    pub(crate) fn record_sse(
        &self,
        events: usize,
        bytes: usize,
        oldest: Option<TsMicros>,
        now: TsMicros,
    ) {
        let (e, b) = self.sse.get();
        self.sse.set((e + events as u64, b + bytes as u64));
        if let Some(ts) = oldest {
            let age_us = now.0.saturating_sub(ts.0);
            self.tick_to_write.observe(age_us as f64 / 1e6);
        }
    }

    /// Counts `gap` markers sealed for a write: (conflated, dropped).
    pub(crate) fn record_gaps(&self, s: Sealed) {
        let t = self.gaps.get();
        self.gaps.set(Sealed {
            conflated: t.conflated + s.conflated,
            dropped: t.dropped + s.dropped,
            resyncs: t.resyncs + s.resyncs,
        });
    }

    /// Takes the markers and resyncs counted since the last call.
    pub(crate) fn drain_gaps(&self) -> Sealed {
        self.gaps.take()
    }

    /// Takes the WebSocket (messages, bytes) and SSE (events, bytes) counted since the last call,
    /// and flushes the histograms.
    pub(crate) fn drain(&self) -> ((u64, u64), (u64, u64)) {
        self.frames_per_write.flush();
        self.tick_to_write.flush();
        self.fanout.flush();
        self.queue_depth.flush();
        (
            (self.messages.replace(0), self.bytes.replace(0)),
            self.sse.replace((0, 0)),
        )
    }
}

/// A session as the shard's list knows it.
pub(crate) trait Listed {
    /// Its bus subscriber, whose owner index is the session's slot in the list.
    fn subscriber(&self) -> &Subscriber;
}

/// The per-shard state every session needs; `S` is the session type.
pub(crate) struct Local<S: Listed> {
    /// Shard number.
    pub index: usize,
    /// Server-wide state.
    pub state: Arc<ServerState>,
    /// This shard's routing table.
    pub router: RefCell<ShardRouter>,
    /// Batched counters.
    pub counters: ShardCounters,
    /// Router counters as of the last metrics flush, to add only the difference.
    pub flushed: Cell<RouterStats>,
    next_id: Cell<u64>,
    /// Live sessions, for the write pass, the sweep and shutdown.
    pub sessions: RefCell<Vec<Rc<S>>>,
    /// Reused buffer into which a connection's queued frames are gathered for one write (or the
    /// frames of a batch of connections, one after the other, for the ring).
    pub cork: RefCell<Vec<u8>>,
    /// This shard's io_uring for batched sends; `None`: one `send(2)` per connection (turned off,
    /// unavailable, or failed once).
    pub ring: RefCell<Option<SendRing>>,
    /// Closed connections still lingering on this shard (see [`Local::lingering`]).
    lingering: Cell<usize>,
    /// Notified when the last session or lingering connection leaves (shutdown waits on it).
    pub idle: Notify,
    /// Notified when a subscribe asks for heartbeats, so the heartbeat timer (which sleeps while
    /// the shard has none) looks again.
    pub heartbeats_asked: Notify,
}

impl<S: Listed> Local<S> {
    /// The state of shard `index`.
    pub(crate) fn new(index: usize, state: Arc<ServerState>) -> Self {
        let ring = open_ring(index, &state);
        Self {
            index,
            router: RefCell::new(ShardRouter::new(
                state.bus.clone(),
                index,
                state.config.queue,
            )),
            counters: ShardCounters::new(&state),
            state,
            flushed: Cell::new(RouterStats::default()),
            next_id: Cell::new(0),
            sessions: RefCell::new(Vec::new()),
            cork: RefCell::new(Vec::with_capacity(CORK_BYTES)),
            ring: RefCell::new(ring),
            lingering: Cell::new(0),
            idle: Notify::new(),
            heartbeats_asked: Notify::new(),
        }
    }

    /// A fresh id for a subscriber on this shard (shard number in the high bits).
    pub(crate) fn next_subscriber_id(&self) -> SubscriberId {
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        SubscriberId(((self.index as u64) << 48) | n)
    }

    /// True when the shard has no session and no lingering connection: shutdown may end.
    pub(crate) fn is_idle(&self) -> bool {
        self.sessions.borrow().is_empty() && self.lingering.get() == 0
    }

    /// Counts a closed connection that lingers until the guard drops. A lingering connection is no
    /// longer a session (no subscriptions, no sweep, not in the list), but shutdown still waits for
    /// it, within its grace, so that clients closed with 1001 get their linger too.
    pub(crate) fn lingering(self: &Rc<Self>) -> Lingering<S> {
        self.lingering.set(self.lingering.get() + 1);
        Lingering {
            local: self.clone(),
        }
    }

    /// Adds `session` to the shard's list until the guard drops.
    pub(crate) fn register(self: &Rc<Self>, session: &Rc<S>) -> Registration<S> {
        let mut list = self.sessions.borrow_mut();
        // The subscriber's owner index is its slot in this list, so the write pass finds the
        // session of a subscriber that got ticks.
        session.subscriber().set_owner(list.len());
        list.push(session.clone());
        Registration {
            local: self.clone(),
            session: session.clone(),
        }
    }
}

/// Keeps a session in its shard's list; removes it (O(1)) on drop.
pub(crate) struct Registration<S: Listed> {
    local: Rc<Local<S>>,
    session: Rc<S>,
}

impl<S: Listed> Drop for Registration<S> {
    fn drop(&mut self) {
        let mut list = self.local.sessions.borrow_mut();
        let i = self.session.subscriber().owner();
        if i < list.len() && Rc::ptr_eq(&list[i], &self.session) {
            list.swap_remove(i);
            if let Some(moved) = list.get(i) {
                moved.subscriber().set_owner(i);
            }
        }
        drop(list);
        if self.local.is_idle() {
            self.local.idle.notify_waiters();
        }
    }
}

/// Counts one lingering connection of a shard; uncounts it on drop.
pub(crate) struct Lingering<S: Listed> {
    local: Rc<Local<S>>,
}

impl<S: Listed> Drop for Lingering<S> {
    fn drop(&mut self) {
        let n = &self.local.lingering;
        n.set(n.get().saturating_sub(1));
        if self.local.is_idle() {
            self.local.idle.notify_waiters();
        }
    }
}
