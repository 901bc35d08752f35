//! One WebSocket session: its state, its task, and the pieces the task runs.
//!
//! - [`reader`]: client frames from fastwebsockets and the RFC 6455 close codes;
//! - [`request`]: protocol v1 requests, the inbound rate limit and error replies;
//! - [`writer`]: draining the session's queue into its socket;
//! - [`subscribe`]: subscribe and unsubscribe, for either transport;
//! - [`sse`]: the Server-Sent Events stream, which reads a subscriber queue as a session does;
//! - [`keepalive`]: the pure decisions the shard's sweep applies to a session (ping, close, kill);
//! - [`inbound`]: the read stream, delivered frame by frame through the frame tracker;
//! - [`linger`]: after the close frame, reading and discarding the client's input for a bounded
//!   time before the socket closes, so that no reset destroys the close frame.
//!
//! A session carries no timer of its own: the shard sweeps all of its sessions at once. This module
//! builds on [`crate::local`] and [`crate::net`] and never on the shard or the HTTP layer above it.

pub(crate) mod inbound;
pub(crate) mod keepalive;
mod linger;
mod reader;
mod request;
pub(crate) mod sse;
pub(crate) mod subscribe;
pub(crate) mod writer;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use tickcast_bus::Subscriber;
use tickcast_core::{CloseCode, Frame};

use crate::auth::entitlements::Entitlements;
use crate::limits::Bucket;
use crate::local::{Listed, Local, Registration};
use crate::metrics::CloseReason;
use crate::net::transport::Transport;
use crate::state::SessionSlot;
use inbound::Inbound;
use keepalive::Timers;
use reader::read_burst;
use writer::WriterEnd;

/// The state of one shard, as its sessions see it.
pub(crate) type ShardCtx = Local<Session>;

/// State shared by a session's reader, writer and the shard's sweep (same thread).
pub(crate) struct Session {
    /// The bus-facing half: queue and subscriptions.
    pub sub: Rc<Subscriber>,
    reader: Cell<Option<Waker>>,
    end: Cell<Option<CloseReason>>,
    /// Last time the client sent anything (any frame, pongs included).
    heard: Cell<Instant>,
    /// When the sweep pinged this client, if it has not answered since.
    pinged: Cell<Option<Instant>>,
    /// Since when the socket has refused writes, while it does.
    stalled_since: Cell<Option<Instant>>,
    /// Set by the sweep to end the session at once (the writer watches it).
    killed: Cell<bool>,
    /// Topics this connection may subscribe to; `None` when authentication is off.
    entitlements: Option<Entitlements>,
    /// When the credential expires; the sweep closes the session with 1008 then.
    expires_at: Option<Instant>,
    /// Inbound message rate limit state.
    rate: Cell<Bucket>,
    /// The socket, shared with the reader; the shard's write pass writes through it too.
    pub stream: Rc<Transport>,
}

impl Listed for Session {
    fn subscriber(&self) -> &Subscriber {
        &self.sub
    }
}

impl Session {
    /// The clocks the sweep decides on.
    pub(crate) fn timers(&self) -> Timers {
        Timers {
            heard: self.heard.get(),
            pinged: self.pinged.get(),
            stalled_since: self.stalled_since.get(),
            expires_at: self.expires_at,
        }
    }

    /// The client sent something at `now`: it is alive, and any ping is answered.
    pub(crate) fn heard_from(&self, now: Instant) {
        self.heard.set(now);
        self.pinged.set(None);
    }

    /// Sends a keepalive ping, sent at `now`.
    pub(crate) fn ping(&self, now: Instant) {
        self.pinged.set(Some(now));
        self.reply(Frame::ping(b"tickcast"));
    }

    /// The socket refused a write: the stall clock starts, unless it runs already.
    pub(crate) fn stalled(&self, now: Instant) {
        if self.stalled_since.get().is_none() {
            self.stalled_since.set(Some(now));
        }
    }

    /// The socket took bytes: no stall.
    pub(crate) fn unstalled(&self) {
        self.stalled_since.set(None);
    }

    /// Records why the session ends; the first reason wins.
    pub(crate) fn end_with(&self, reason: CloseReason) {
        if self.end.get().is_none() {
            self.end.set(Some(reason));
        }
    }

    /// Wakes the reader if it waits for the priority lane to drain.
    pub(crate) fn wake_reader(&self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }

    /// Queues a close frame (dropping pending data) and records the reason.
    pub(crate) fn close(&self, reason: CloseReason, code: CloseCode, text: &str) {
        self.end_with(reason);
        self.sub
            .queue
            .borrow_mut()
            .close_with(Frame::close(code, text));
        self.sub.wake();
    }

    /// Ends the session now, without waiting for the close frame to be written.
    pub(crate) fn kill(&self, reason: CloseReason) {
        self.end_with(reason);
        self.killed.set(true);
        self.sub.wake();
    }

    /// True once [`kill`](Self::kill) was called.
    pub(crate) fn is_killed(&self) -> bool {
        self.killed.get()
    }

    /// The session as the subscribe path sees it.
    pub(crate) fn client(&self) -> subscribe::Client<'_> {
        subscribe::Client {
            sub: &self.sub,
            entitlements: self.entitlements.as_ref(),
        }
    }

    /// Queues a reply or control frame on the priority lane.
    pub(crate) fn reply(&self, frame: Frame) {
        self.sub.queue.borrow_mut().push_control(frame);
        self.sub.wake();
    }
}

/// What authentication granted a session (all default when it is off).
#[derive(Debug, Default)]
pub(crate) struct SessionAuth {
    /// Allowed topic patterns; `None` = every topic.
    pub entitlements: Option<Entitlements>,
    /// When the credential expires.
    pub expires_at: Option<Instant>,
}

/// Starts a session on an upgraded socket as a task of its own; `read_ahead` holds bytes hyper read
/// past the handshake. Everything that does not wait is set up here, outside the task: an async
/// fn keeps its arguments in its state for the whole life of the connection, so the task gets only
/// the few handles it needs (the per-connection memory is what limits connections per node).
pub(crate) fn start(
    ctx: Rc<ShardCtx>,
    slot: SessionSlot,
    auth: SessionAuth,
    stream: Transport,
    read_ahead: Bytes,
) {
    let id = ctx.next_subscriber_id();
    let peer = stream.peer_addr().ok();
    // Events instead of a span around the task: a span would be stored in every session's task (40
    // bytes, enough to push the task into the next allocation size class).
    tracing::debug!(shard = ctx.index, id = id.0, peer = ?peer, "session opened");
    let sub = Subscriber::new(id);
    // One socket shared by the reader and the writer: both use `&Transport` (readiness + try_read /
    // try_write), which needs no split and no extra allocation.
    let stream = Rc::new(stream);
    let now = Instant::now();
    let session = Rc::new(Session {
        sub,
        reader: Cell::new(None),
        end: Cell::new(None),
        heard: Cell::new(now),
        pinged: Cell::new(None),
        stalled_since: Cell::new(None),
        killed: Cell::new(false),
        entitlements: auth.entitlements,
        expires_at: auth.expires_at,
        rate: Cell::new(Bucket::new(&ctx.state.config.rate_limit, now)),
        stream: stream.clone(),
    });
    let inbound = Inbound::new(&read_ahead, stream, ctx.state.config.max_message_bytes);
    drop(read_ahead); // may pin hyper's whole read buffer
    let held = Held {
        registered: ctx.register(&session),
        slot,
    };
    tokio::task::spawn_local(SessionTask {
        ctx,
        session,
        inbound,
        burst: None,
        reading: true,
        held: Some(held),
    });
}

/// What a session holds only to release when it ends (the slot passes to its linger, if any).
struct Held {
    registered: Registration<Session>,
    slot: SessionSlot,
}

/// A read burst in progress: boxed, so it costs memory only while the client is talking.
type Burst = Pin<Box<dyn Future<Output = bool>>>;

/// The one task of a session: reads and answers client frames, and writes what the router and the
/// reader queue (the dispatcher also writes directly; this half waits for room when the socket is
/// full). A hand-written future rather than two async fns under `select!`: its state is these few
/// handles, which keeps the task of an idle connection in a small allocation (every connection has
/// one, and their size is what limits connections per node).
struct SessionTask {
    ctx: Rc<ShardCtx>,
    session: Rc<Session>,
    inbound: Inbound,
    /// The reading half, while the client talks; `None` while it is silent.
    burst: Option<Burst>,
    /// False once the reading half ended (peer gone, close received or sent, read error).
    reading: bool,
    held: Option<Held>,
}

impl SessionTask {
    /// Polls the reading half; `Ready` when it ended.
    ///
    /// While the client is silent no frame reader exists (fastwebsockets allocates an 8 KiB buffer
    /// per reader): this waits for bytes, then runs a boxed [`read_burst`] that reads until the
    /// stream is at rest again and frees everything.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(burst) = &mut self.burst {
                let go_on = ready!(burst.as_mut().poll(cx));
                self.burst = None;
                if !go_on {
                    return Poll::Ready(());
                }
            }
            if ready!(self.inbound.poll_fill(cx)).is_err() {
                self.session.end_with(CloseReason::Io);
                return Poll::Ready(());
            }
            self.burst = Some(Box::pin(read_burst(
                self.ctx.clone(),
                self.session.clone(),
                self.inbound.clone(),
            )));
        }
    }

    /// Unsubscribes, counts the close, and leaves the shard's list. When a close frame went out
    /// (`close_sent`) the socket and the connection's slot pass to a lingering close; otherwise the
    /// slot is released and the socket closes with the task.
    fn finish(&mut self, close_sent: bool) {
        let (ctx, session) = (&self.ctx, &self.session);
        ctx.router.borrow_mut().remove(&session.sub);
        let reason = session.end.get().unwrap_or(CloseReason::Io);
        ctx.state.metrics.closed(reason);
        tracing::debug!(
            shard = ctx.index,
            id = session.sub.id().0,
            reason = reason.label(),
            "session closed"
        );
        self.burst = None;
        let Some(Held { registered, slot }) = self.held.take() else {
            return;
        };
        if close_sent && ctx.state.config.lingering.enabled() {
            // Counted on the shard before the registration drops, so shutdown keeps waiting.
            linger::start(ctx, session.stream.clone(), slot);
        }
        drop(registered);
    }
}

impl Future for SessionTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.held.is_none() {
            return Poll::Ready(());
        }
        if this.reading && this.poll_read(cx).is_ready() {
            this.reading = false;
            // The reader queued a close (or the peer vanished): in the first case the writer
            // flushes it before the session ends. The sweep bounds this: a socket that stops
            // taking bytes is killed after `write_timeout`.
            if !this.session.sub.queue.borrow().is_closed() {
                this.finish(false);
                return Poll::Ready(());
            }
        }
        match writer::poll_write(&this.ctx, &this.session, cx) {
            Poll::Ready(end) => {
                if end == WriterEnd::Failed {
                    this.session.end_with(CloseReason::Io);
                }
                this.finish(end == WriterEnd::Closed);
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    /// Every connection has one of each; the bounds are allocation size classes (an `Rc` adds 16
    /// bytes), so a field added here that crosses one shows up as memory per connection.
    #[test]
    fn per_connection_state_stays_within_its_size_classes() {
        assert!(
            size_of::<super::Session>() + 16 <= 160,
            "{}",
            size_of::<super::Session>()
        );
        let task = size_of::<super::SessionTask>();
        assert!(task <= 96, "session task state is {task} bytes");
    }
}
