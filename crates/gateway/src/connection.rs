//! One WebSocket session: reading client frames with fastwebsockets, answering protocol v1 requests,
//! keepalive pings, and the close handshake. Writing belongs to [`crate::writer`].

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{poll_fn, ready};
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use fastwebsockets::{FragmentCollectorRead, OpCode, Role, WebSocketError};
use std::time::Duration;
use tickcast_bus::{BusError, Subscriber, SubscriberId};
use tickcast_core::frame::OpCode as WireOp;
use tickcast_core::protocol::ProtocolErrorKind;
use tickcast_core::{ClientRequest, CloseCode, Frame, ProtocolError, ServerReply};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::Instrument;

use crate::inbound::{Inbound, WireViolation};
use crate::metrics::CloseReason;
use crate::shard::ShardCtx;
use crate::state::SessionSlot;
use crate::writer::{self, WriterEnd, MAX_PENDING_CONTROL};

/// State shared by a session's reader and writer (same thread).
pub(crate) struct Session {
    /// The bus-facing half: queue and subscriptions.
    pub sub: Rc<Subscriber>,
    reader: Cell<Option<Waker>>,
    end: Cell<Option<CloseReason>>,
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
    fn close(&self, reason: CloseReason, code: CloseCode, text: &str) {
        self.end_with(reason);
        self.sub
            .queue
            .borrow_mut()
            .close_with(Frame::close(code, text));
        self.sub.wake();
    }

    fn reply(&self, frame: Frame) {
        self.sub.queue.borrow_mut().push_control(frame);
        self.sub.wake();
    }
}

/// Runs a session on an upgraded socket until it ends; `read_ahead` holds bytes hyper read past the
/// handshake.
pub(crate) async fn run(
    ctx: Rc<ShardCtx>,
    slot: SessionSlot,
    stream: TcpStream,
    read_ahead: Bytes,
) {
    let id = ctx.next_subscriber_id();
    let peer = stream.peer_addr().ok();
    let span = tracing::debug_span!("session", shard = ctx.index, id = id.0, peer = ?peer);
    let _live = ctx.session_started();
    session(ctx, slot, stream, read_ahead, id)
        .instrument(span)
        .await
}

async fn session(
    ctx: Rc<ShardCtx>,
    slot: SessionSlot,
    stream: TcpStream,
    read_ahead: Bytes,
    id: SubscriberId,
) {
    let sub = Subscriber::new(id, ctx.state.config.queue);
    let session = Rc::new(Session {
        sub: sub.clone(),
        reader: Cell::new(None),
        end: Cell::new(None),
    });
    // One socket shared by the reader and the writer: both use `&TcpStream` APIs (readiness +
    // try_read / try_write_vectored), which needs no split and no extra allocation.
    let stream = Rc::new(stream);
    let inbound = Inbound::new(
        &read_ahead,
        stream.clone(),
        ctx.state.config.max_message_bytes,
    );
    drop(read_ahead); // may pin hyper's whole read buffer

    // Pinned in place: `tokio::pin!` after a `let` would give each future two slots in this state
    // machine, nearly doubling the per-connection task.
    let mut writer = std::pin::pin!(writer::run(ctx.clone(), session.clone(), stream));
    let mut reader = std::pin::pin!(read_loop(&ctx, &session, inbound));
    tokio::select! {
        () = &mut reader => {
            // The reader queued a close (or the peer vanished): let the writer flush it, bounded.
            if sub.queue.borrow().is_closed() {
                let _ = tokio::time::timeout(ctx.state.config.shutdown_grace, &mut writer).await;
            }
        }
        end = &mut writer => {
            if end == WriterEnd::Failed {
                session.end_with(CloseReason::Io);
            }
        }
    }
    ctx.router.borrow_mut().remove(&sub);
    let reason = session.end.get().unwrap_or(CloseReason::Io);
    ctx.state.metrics.closed(reason);
    tracing::debug!(reason = reason.label(), "session closed");
    drop(slot);
}

/// When to ping a silent client and when to give up on it.
struct Keepalive {
    deadline: Instant,
    ping_sent: bool,
    interval: Duration,
    pong_timeout: Duration,
}

impl Keepalive {
    fn new(interval: Duration, pong_timeout: Duration) -> Self {
        Self {
            deadline: Instant::now() + interval,
            ping_sent: false,
            interval,
            pong_timeout,
        }
    }

    /// The client sent something.
    fn heard(&mut self) {
        self.ping_sent = false;
        self.deadline = Instant::now() + self.interval;
    }

    /// The deadline passed: ping, or close a client that did not answer the last ping. Returns
    /// false when the session must end.
    fn expired(&mut self, session: &Session) -> bool {
        if self.ping_sent {
            session.close(CloseReason::Idle, CloseCode::GoingAway, "ping timeout");
            return false;
        }
        session.reply(Frame::ping(b"tickcast"));
        self.ping_sent = true;
        self.deadline = Instant::now() + self.pong_timeout;
        true
    }
}

/// Reads and answers client frames until the session should close.
///
/// While the client is silent no frame reader exists (fastwebsockets allocates an 8 KiB buffer per
/// reader) and the reading state machine is not allocated either: the loop waits for bytes, then
/// runs a boxed [`read_burst`] that reads until the stream is at rest again and frees everything.
async fn read_loop(ctx: &Rc<ShardCtx>, session: &Rc<Session>, inbound: Inbound) {
    let config = &ctx.state.config;
    let shutdown = ctx.state.shutdown.clone();
    let mut keepalive = Keepalive::new(config.ping_interval, config.pong_timeout);
    loop {
        // At rest: wait for bytes without holding a reader. `fill` is cancel-safe.
        tokio::select! {
            r = inbound.fill() => {
                if r.is_err() {
                    session.end_with(CloseReason::Io);
                    return;
                }
            }
            _ = shutdown.cancelled() => {
                session.close(CloseReason::Shutdown, CloseCode::GoingAway, "server shutting down");
                return;
            }
            _ = tokio::time::sleep_until(keepalive.deadline) => {
                if !keepalive.expired(session) {
                    return;
                }
                continue;
            }
        }
        if !Box::pin(read_burst(ctx, session, &inbound, &mut keepalive)).await {
            return;
        }
    }
}

/// Reads frames until the stream is at rest; false when the session must end.
async fn read_burst(
    ctx: &Rc<ShardCtx>,
    session: &Rc<Session>,
    inbound: &Inbound,
    keepalive: &mut Keepalive,
) -> bool {
    let config = &ctx.state.config;
    let shutdown = &ctx.state.shutdown;
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

        let read = ws.read_frame(&mut send);
        tokio::pin!(read);
        // `read_frame` is not cancel-safe, so it is never dropped mid-frame: the timer arm only
        // sends a ping and loops back to the same future.
        let result = loop {
            tokio::select! {
                r = &mut read => break r,
                _ = shutdown.cancelled() => {
                    session.close(CloseReason::Shutdown, CloseCode::GoingAway, "server shutting down");
                    return false;
                }
                _ = tokio::time::sleep_until(keepalive.deadline) => {
                    if !keepalive.expired(session) {
                        return false;
                    }
                }
            }
        };
        keepalive.heard();
        let mut frame = match result {
            Ok(frame) => frame,
            Err(e) => {
                close_for_error(session, e);
                return false;
            }
        };
        match frame.opcode {
            OpCode::Text => handle_request(ctx, session, frame.payload.to_mut()),
            OpCode::Binary => {
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
        ClientRequest::Subscribe { topics, id } => {
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
            // Resolve (create) every topic first, so a refusal leaves nothing half-subscribed.
            for topic in &topics {
                if let Err(BusError::TopicLimit { limit, topic }) = ctx.state.bus.topic(topic) {
                    ctx.state
                        .metrics
                        .limit_rejections
                        .with_label_values(&["max_topics"])
                        .inc();
                    let kind = ProtocolErrorKind::TopicLimit {
                        limit,
                        topic: topic.to_string(),
                    };
                    return reply_error(ctx, session, ProtocolError { kind, id });
                }
            }
            // The ack goes on the priority lane, the snapshots on the data lane: the ack leaves first.
            session.reply(
                ServerReply::Subscribed {
                    topics: &topics,
                    id: id.as_ref(),
                }
                .to_frame(),
            );
            if let Err(BusError::TopicLimit { limit, topic }) =
                ctx.router.borrow_mut().subscribe(sub, &topics)
            {
                let kind = ProtocolErrorKind::TopicLimit {
                    limit,
                    topic: topic.to_string(),
                };
                reply_error(ctx, session, ProtocolError { kind, id });
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
