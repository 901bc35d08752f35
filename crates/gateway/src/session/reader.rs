//! The reading half of a session: frames from fastwebsockets, the replies it owes (pong, close
//! echo), the RFC 6455 close code for each read error, and handing text messages to
//! [`super::request`].

use std::convert::Infallible;
use std::future::{poll_fn, ready};
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use fastwebsockets::{FragmentCollectorRead, OpCode, Role, WebSocketError};
use tickcast_core::frame::OpCode as WireOp;
use tickcast_core::protocol::ProtocolErrorKind;
use tickcast_core::{CloseCode, Frame};

use super::inbound::{Inbound, WireViolation};
use super::request::{handle_request, reply_error, within_rate};
use super::writer::MAX_PENDING_CONTROL;
use super::{Session, ShardCtx};
use crate::metrics::CloseReason;

/// Reads frames until the stream is at rest; false when the session must end.
pub(super) async fn read_burst(ctx: Rc<ShardCtx>, session: Rc<Session>, inbound: Inbound) -> bool {
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
        session.heard_from(Instant::now());
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
