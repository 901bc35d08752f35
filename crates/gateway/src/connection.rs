//! One WebSocket session: reading client frames with fastwebsockets, answering protocol v1 requests,
//! and the close handshake. Writing belongs to [`crate::writer`]; keepalive, dead-client detection
//! and shutdown closes are done for all sessions of a shard at once by [`crate::sweep`], so a session
//! carries no timer of its own.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{poll_fn, ready, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use fastwebsockets::{FragmentCollectorRead, OpCode, Role, WebSocketError};
use tickcast_bus::{BusError, Subscriber, TopicOrigin};
use tickcast_core::frame::OpCode as WireOp;
use tickcast_core::protocol::{ProtocolErrorKind, RequestId};
use tickcast_core::{ClientRequest, CloseCode, Frame, ProtocolError, ServerReply};

use crate::entitlements::Entitlements;
use crate::inbound::{Inbound, WireViolation};
use crate::limits::{Bucket, Verdict};
use crate::metrics::CloseReason;
use crate::shard::{Registration, ShardCtx};
use crate::state::SessionSlot;
use crate::transport::Transport;
use crate::writer::{self, WriterEnd, MAX_PENDING_CONTROL};

/// State shared by a session's reader, writer and the shard's sweep (same thread).
pub(crate) struct Session {
    /// The bus-facing half: queue and subscriptions.
    pub sub: Rc<Subscriber>,
    reader: Cell<Option<Waker>>,
    end: Cell<Option<CloseReason>>,
    /// Last time the client sent anything (any frame, pongs included).
    pub heard: Cell<Instant>,
    /// When the sweep pinged this client, if it has not answered since.
    pub pinged: Cell<Option<Instant>>,
    /// Since when the socket has refused writes, while it does.
    pub stalled_since: Cell<Option<Instant>>,
    /// Set by the sweep to end the session at once (the writer watches it).
    killed: Cell<bool>,
    /// Topics this connection may subscribe to; `None` when authentication is off.
    entitlements: Option<Entitlements>,
    /// When the credential expires; the sweep closes the session with 1008 then.
    pub expires_at: Option<Instant>,
    /// Inbound message rate limit state.
    rate: Cell<Bucket>,
    /// The socket, shared with the reader; the shard's dispatcher writes through it too.
    pub stream: Rc<Transport>,
}

impl Session {
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
        _registered: ctx.register(&session),
        _slot: slot,
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

/// What a session holds only to release when it ends.
struct Held {
    _registered: Registration,
    _slot: SessionSlot,
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

    /// Unsubscribes, counts the close, and releases the connection's slot.
    fn finish(&mut self) {
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
        self.held = None;
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
                this.finish();
                return Poll::Ready(());
            }
        }
        match writer::poll_write(&this.ctx, &this.session, cx) {
            Poll::Ready(end) => {
                if end == WriterEnd::Failed {
                    this.session.end_with(CloseReason::Io);
                }
                this.finish();
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Reads frames until the stream is at rest; false when the session must end.
async fn read_burst(ctx: Rc<ShardCtx>, session: Rc<Session>, inbound: Inbound) -> bool {
    let (ctx, session, inbound) = (&ctx, &session, &inbound);
    let config = &ctx.state.config;
    // fastwebsockets hands us the replies it owes (pong to a ping, close echo); they go out on the
    // priority lane, which backpressure never drops.
    let mut send = |frame: fastwebsockets::Frame<'_>| {
        match frame.opcode {
            OpCode::Close => {
                session.end_with(CloseReason::Client);
                session
                    .sub
                    .queue
                    .borrow_mut()
                    .close_with(Frame::new(WireOp::Close, &frame.payload));
            }
            OpCode::Pong => session
                .sub
                .queue
                .borrow_mut()
                .push_control(Frame::pong(&frame.payload)),
            _ => {}
        }
        session.sub.wake();
        ready(Ok::<(), Infallible>(()))
    };
    let (mut ws, _) =
        fastwebsockets::after_handshake_split(inbound.clone(), tokio::io::sink(), Role::Server);
    // Our tracker enforces the real limit on whole messages; this only has to be above it.
    ws.set_max_message_size(config.max_message_bytes + 1);
    let mut ws = FragmentCollectorRead::new(ws);
    loop {
        // Backpressure on requests: stop reading while replies pile up.
        poll_fn(|cx| {
            if session.sub.queue.borrow().control_len() < MAX_PENDING_CONTROL {
                Poll::Ready(())
            } else {
                session.reader.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;

        // `read_frame` is not cancel-safe; it is only ever dropped with the whole session.
        let result = ws.read_frame(&mut send).await;
        session.heard.set(Instant::now());
        session.pinged.set(None);
        let mut frame = match result {
            Ok(frame) => frame,
            Err(e) => {
                close_for_error(session, e);
                return false;
            }
        };
        // Data messages spend a rate-limit token; refused ones are answered (or closed) there.
        let serve =
            !matches!(frame.opcode, OpCode::Text | OpCode::Binary) || within_rate(ctx, session);
        match frame.opcode {
            OpCode::Text if serve => handle_request(ctx, session, frame.payload.to_mut()),
            OpCode::Binary if serve => {
                reply_error(ctx, session, ProtocolErrorKind::BinaryNotSupported.into())
            }
            OpCode::Close => return false,
            _ => {}
        }
        if session.sub.queue.borrow().is_closed() {
            return false;
        }
        if inbound.at_rest() {
            inbound.release();
            return true; // drops the reader and its buffer
        }
    }
}

/// Maps a read error to the RFC 6455 close code and queues the close.
fn close_for_error(session: &Session, e: WebSocketError) {
    let violation = match &e {
        WebSocketError::IoError(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<WireViolation>())
            .copied(),
        _ => None,
    };
    match (violation, &e) {
        (Some(WireViolation::TooBig(n)), _) => session.close(
            CloseReason::Protocol,
            CloseCode::TooBig,
            &format!("message of {n} bytes is too big"),
        ),
        (Some(WireViolation::Unmasked), _) => session.close(
            CloseReason::Protocol,
            CloseCode::Protocol,
            "client frames must be masked",
        ),
        (None, WebSocketError::InvalidUTF8) => session.close(
            CloseReason::Protocol,
            CloseCode::InvalidPayload,
            "invalid UTF-8",
        ),
        (None, WebSocketError::FrameTooLarge) => {
            session.close(CloseReason::Protocol, CloseCode::TooBig, "message too big")
        }
        (
            None,
            WebSocketError::IoError(_)
            | WebSocketError::UnexpectedEOF
            | WebSocketError::ConnectionClosed,
        ) => {
            session.end_with(CloseReason::Io);
        }
        (None, other) => session.close(
            CloseReason::Protocol,
            CloseCode::Protocol,
            &other.to_string(),
        ),
    }
}

/// Takes a token for one client message; false (after answering `rate_limited` or queueing close
/// 1008) when the message must not be served.
fn within_rate(ctx: &ShardCtx, session: &Session) -> bool {
    let limit = &ctx.state.config.rate_limit;
    let mut bucket = session.rate.get();
    let verdict = bucket.take(limit, Instant::now());
    session.rate.set(bucket);
    if verdict == Verdict::Allow {
        return true;
    }
    ctx.state
        .metrics
        .limit_rejections
        .with_label_values(&["message_rate"])
        .inc();
    match verdict {
        Verdict::Close => session.close(
            CloseReason::RateLimited,
            CloseCode::Policy,
            "message rate limit exceeded",
        ),
        _ => {
            let kind = ProtocolErrorKind::RateLimited {
                per_second: limit.per_second,
            };
            reply_error(ctx, session, kind.into());
        }
    }
    false
}

/// A topic the bus would not create: counted under the limit that refused it, answered with
/// `topic_limit`.
fn refuse_topic(ctx: &ShardCtx, session: &Session, e: BusError, id: Option<RequestId>) {
    let BusError::TopicLimit {
        limit,
        topic,
        origin,
    } = e;
    let label = match origin {
        TopicOrigin::Feed => "max_topics",
        TopicOrigin::Subscriber => "max_requested_topics",
    };
    ctx.state
        .metrics
        .limit_rejections
        .with_label_values(&[label])
        .inc();
    let kind = ProtocolErrorKind::TopicLimit {
        limit,
        topic: topic.to_string(),
    };
    reply_error(ctx, session, ProtocolError { kind, id });
}

fn reply_error(ctx: &ShardCtx, session: &Session, err: ProtocolError) {
    ctx.state
        .metrics
        .client_errors
        .with_label_values(&[err.code()])
        .inc();
    session.reply(err.to_frame());
}

/// Answers one text message.
fn handle_request(ctx: &ShardCtx, session: &Session, buf: &mut [u8]) {
    let request = match ClientRequest::parse(buf) {
        Ok(r) => r,
        Err(e) => return reply_error(ctx, session, e),
    };
    let sub = &session.sub;
    match request {
        ClientRequest::Subscribe { mut topics, id } => {
            // Topics outside the credential's entitlements get `forbidden`; the rest go ahead.
            if let Some(allowed) = &session.entitlements {
                let (granted, refused): (Vec<_>, Vec<_>) =
                    topics.into_iter().partition(|t| allowed.allows(t.as_str()));
                topics = granted;
                if !refused.is_empty() {
                    let kind = ProtocolErrorKind::Forbidden {
                        topics: refused.iter().map(|t| t.as_str().to_string()).collect(),
                    };
                    reply_error(
                        ctx,
                        session,
                        ProtocolError {
                            kind,
                            id: id.clone(),
                        },
                    );
                }
                if topics.is_empty() {
                    return;
                }
            }
            let limit = ctx.state.config.max_topics_per_connection;
            let wanted =
                sub.topic_count() + topics.iter().filter(|t| !sub.is_subscribed(t)).count();
            if wanted > limit {
                ctx.state
                    .metrics
                    .limit_rejections
                    .with_label_values(&["max_topics_per_connection"])
                    .inc();
                let kind = ProtocolErrorKind::TooManyTopics { limit, wanted };
                return reply_error(ctx, session, ProtocolError { kind, id });
            }
            // Resolve (create) every topic first, so a refusal leaves nothing half-subscribed. A
            // topic no feed has published yet is created as "requested": it counts against
            // `max_requested_topics`, never a feed's room, and is reaped once nobody holds it.
            let mut pending = Vec::new();
            for topic in &topics {
                match ctx.state.bus.resolve(topic, TopicOrigin::Subscriber) {
                    Ok(state) => {
                        if !state.has_data() {
                            pending.push(topic.clone());
                        }
                    }
                    Err(e) => return refuse_topic(ctx, session, e, id),
                }
            }
            // The ack goes on the priority lane, the snapshots on the data lane: the ack leaves first.
            session.reply(
                ServerReply::Subscribed {
                    topics: &topics,
                    pending: &pending,
                    id: id.as_ref(),
                }
                .to_frame(),
            );
            if let Err(e) = ctx.router.borrow_mut().subscribe(sub, &topics) {
                refuse_topic(ctx, session, e, id);
            }
        }
        ClientRequest::Unsubscribe { topics, id } => {
            ctx.router.borrow_mut().unsubscribe(sub, &topics);
            session.reply(
                ServerReply::Unsubscribed {
                    topics: &topics,
                    id: id.as_ref(),
                }
                .to_frame(),
            );
        }
        ClientRequest::Ping { id } => {
            session.reply(ServerReply::Pong { id: id.as_ref() }.to_frame())
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
