//! The per-connection writer: the only code that writes to a session's socket.
//!
//! It sleeps until the router or the reader queues something, then drains the queue with as many
//! queued frames per syscall as the socket takes (the kernel's cost per write is the dominant cost
//! of fan-out, so frames per write is the lever). Several small frames are first copied into the
//! shard's cork buffer and sent as one contiguous write, as uWebSockets does: the kernel copies one
//! segment instead of walking an iovec per 120-byte frame (measured: `_copy_from_iter` and
//! `vfs_writev` were ~10% of server CPU with writev). It never waits while holding the queue.

use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::Poll;

use tickcast_core::{CloseCode, Frame};

use crate::connection::Session;
use crate::metrics::CloseReason;
use crate::shard::ShardCtx;
use crate::transport::Transport;

/// Capacity of a shard's cork buffer: the most bytes gathered into one write. A frame larger than
/// this is written straight from its own buffer.
pub(crate) const CORK_BYTES: usize = 64 * 1024;
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

/// Runs the writer of `session` until the connection closes.
pub(crate) async fn run(
    ctx: Rc<ShardCtx>,
    session: Rc<Session>,
    socket: Rc<Transport>,
) -> WriterEnd {
    let sub = session.sub.clone();
    loop {
        poll_fn(|cx| {
            if session.is_killed() || sub.is_slow() || !sub.queue.borrow().is_empty() {
                Poll::Ready(())
            } else {
                sub.set_waker(cx.waker());
                Poll::Pending
            }
        })
        .await;

        if session.is_killed() {
            return WriterEnd::Stalled;
        }
        if sub.is_slow() && !sub.queue.borrow().is_closed() {
            session.end_with(CloseReason::SlowConsumer);
            sub.queue
                .borrow_mut()
                .close_with(Frame::close(CloseCode::Policy, "slow consumer"));
        }

        loop {
            match write_some(&ctx, &session, &socket) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The socket is full. The shard's sweep kills the session if this lasts longer
                    // than `write_timeout`; until then wait for room, or for that kill.
                    if session.stalled_since.get().is_none() {
                        session.stalled_since.set(Some(std::time::Instant::now()));
                    }
                    // Poll-style readiness keeps no waiter node in this task's state: an idle
                    // connection's task stays small (see the S3 memory figures in the README).
                    let room = poll_fn(|cx| {
                        if session.is_killed() {
                            return Poll::Ready(None);
                        }
                        sub.set_waker(cx.waker());
                        socket.poll_write_ready(cx).map(Some)
                    })
                    .await;
                    match room {
                        None => return WriterEnd::Stalled,
                        Some(Err(_)) => return WriterEnd::Failed,
                        Some(Ok(())) => {}
                    }
                }
                Err(_) => return WriterEnd::Failed,
            }
        }

        let finished = {
            let q = sub.queue.borrow();
            q.is_closed() && q.is_empty()
        };
        if finished {
            // Half-close: the client sees EOF after our close frame and can answer it.
            socket.shutdown_write();
            return WriterEnd::Closed;
        }
        sub.queue.borrow_mut().shrink_if_idle();
    }
}

/// Writes what `session` has queued, from the dispatcher, without waiting: on a full socket (or any
/// error) it wakes the session's writer task, which waits for room or reports the error.
pub(crate) fn flush_now(ctx: &ShardCtx, session: &Session) {
    loop {
        match write_some(ctx, session, &session.stream) {
            Ok(true) => continue,
            Ok(false) => return,
            Err(_) => {
                session.sub.wake();
                return;
            }
        }
    }
}

/// One write of whatever is queued. `Ok(true)`: wrote something, `Ok(false)`: queue empty.
fn write_some(ctx: &ShardCtx, session: &Session, socket: &Transport) -> io::Result<bool> {
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
    session.stalled_since.set(None);
    let done = q.advance(written);
    let control_left = q.control_len();
    drop(q);
    ctx.counters
        .record_write(done.frames, written, queued, done.oldest_ts);
    if control_left < MAX_PENDING_CONTROL {
        session.wake_reader();
    }
    Ok(true)
}
