//! The per-connection writer: the only code that writes to a session's socket.
//!
//! It sleeps until the router or the reader queues something, then drains the queue with as many
//! queued frames per syscall as the socket takes (the kernel's cost per write is the dominant cost
//! of fan-out, so frames per write is the lever). Several small frames are first copied into the
//! shard's cork buffer and sent as one contiguous write, as uWebSockets does: the kernel copies one
//! segment instead of walking an iovec per 120-byte frame (measured: `_copy_from_iter` and
//! `vfs_writev` were ~10% of server CPU with writev). It never waits while holding the queue.

use std::io;
use std::task::{Context, Poll};

use tickcast_bus::Sealed;
use tickcast_core::{CloseCode, Frame, TsMicros};

use super::{Session, ShardCtx};
use crate::local::CORK_BYTES;
use crate::metrics::CloseReason;
use crate::net::transport::Transport;
/// Control frames queued beyond this make the reader stop reading until the writer catches up, so a
/// client flooding pings or requests is slowed by TCP instead of growing the priority lane.
pub(crate) const MAX_PENDING_CONTROL: usize = 64;

/// Why the writer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriterEnd {
    /// A close frame was written and the write side shut down.
    Closed,
    /// The socket refused writes for longer than `write_timeout`.
    Stalled,
    /// A socket error.
    Failed,
}

/// Drives the writer of `session`: writes whatever is queued and returns `Pending` (with the task's
/// waker registered with the subscriber, and with the socket when it is full) until the connection
/// is done writing. A poll function rather than an async fn so that it adds no state to the
/// session's task: everything it needs to remember lives in the session.
pub(crate) fn poll_write(
    ctx: &ShardCtx,
    session: &Session,
    cx: &mut Context<'_>,
) -> Poll<WriterEnd> {
    let sub = &session.sub;
    let socket = &*session.stream;
    let now = TsMicros::now();
    loop {
        if session.is_killed() {
            return Poll::Ready(WriterEnd::Stalled);
        }
        if is_done(sub, socket) {
            // The close frame is out, written by this task or by the dispatcher's pass: half-close
            // so the client sees EOF after it and can answer.
            socket.shutdown_write();
            return Poll::Ready(WriterEnd::Closed);
        }
        // A TLS connection may hold records the socket refused: the loop below flushes them.
        if !sub.is_slow() && sub.queue.borrow().is_empty() && socket.is_flushed() {
            sub.set_waker(cx.waker());
            return Poll::Pending;
        }
        if sub.is_slow() && !sub.queue.borrow().is_closed() {
            session.end_with(CloseReason::SlowConsumer);
            sub.queue
                .borrow_mut()
                .close_with(Frame::close(CloseCode::Policy, "slow consumer"));
        }

        loop {
            match write_some(ctx, session, socket, now) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The socket is full. The shard's sweep kills the session if this lasts longer
                    // than `write_timeout`; until then wait for room, or for that kill (which
                    // wakes the subscriber's waker).
                    session.stalled(std::time::Instant::now());
                    sub.set_waker(cx.waker());
                    match socket.poll_write_ready(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(_)) => return Poll::Ready(WriterEnd::Failed),
                        Poll::Ready(Ok(())) => {}
                    }
                }
                Err(_) => return Poll::Ready(WriterEnd::Failed),
            }
        }

        // Back to the top, which ends the session once the close frame is out.
        sub.queue.borrow_mut().shrink_if_idle();
    }
}

/// Whether the close frame and everything before it was written, TLS records included: the write
/// side is done.
fn is_done(sub: &tickcast_bus::Subscriber, socket: &Transport) -> bool {
    let q = sub.queue.borrow();
    q.is_closed() && q.is_empty() && socket.is_flushed()
}

/// Writes what `session` has queued, from the dispatcher, without waiting: on a full socket (or any
/// error) it wakes the session's writer task, which waits for room or reports the error.
pub(crate) fn write_queued(ctx: &ShardCtx, session: &Session, now: TsMicros) {
    loop {
        match write_some(ctx, session, &session.stream, now) {
            Ok(true) => continue,
            Ok(false) => {
                if is_done(&session.sub, &session.stream) {
                    // This pass wrote the close frame: the session's task must end the session,
                    // and nothing else would wake it.
                    session.sub.wake();
                }
                return;
            }
            Err(_) => {
                session.sub.wake();
                return;
            }
        }
    }
}

/// One write of whatever is queued. `Ok(true)`: call again (frames remain, or a TLS connection may
/// hold records back), `Ok(false)`: all written. `now` dates the write for the tick-to-write
/// histogram (one clock read per batch of writes).
fn write_some(
    ctx: &ShardCtx,
    session: &Session,
    socket: &Transport,
    now: TsMicros,
) -> io::Result<bool> {
    // Markers for what backpressure took away are encoded now, once per write at most, not per
    // replaced tick.
    let sealed = session.sub.seal_gaps();
    if sealed != Sealed::default() {
        ctx.counters.record_gaps(sealed);
    }
    let mut q = session.sub.queue.borrow_mut();
    let mut cork = ctx.cork.borrow_mut();
    cork.clear();
    q.gather(&mut cork, CORK_BYTES);
    let written = if !cork.is_empty() {
        socket.try_write(&cork)?
    } else if let Some(big) = q.front() {
        socket.try_write(big)?
    } else {
        // Queue empty; a TLS connection may still hold records the socket has not taken.
        socket.flush()?;
        return Ok(false);
    };
    drop(cork);
    let queued = q.data_len();
    session.unstalled();
    let done = q.advance(written);
    let control_left = q.control_len();
    // Plain TCP holds nothing back once the queue is empty; TLS takes one more turn to push records.
    let again = !q.is_empty() || !socket.is_plain();
    drop(q);
    ctx.counters
        .record_write(done.frames, written, queued, done.oldest_ts, now);
    if control_left < MAX_PENDING_CONTROL {
        session.wake_reader();
    }
    Ok(again)
}
