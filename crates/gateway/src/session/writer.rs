//! The per-connection writer: the only code that writes to a session's socket.
//!
//! It sleeps until the router or the reader queues something, then drains the queue with as many
//! queued frames per syscall as the socket takes (the kernel's cost per write is the dominant cost
//! of fan-out, so frames per write is the lever). Several small frames are first copied into the
//! shard's cork buffer and sent as one contiguous write, as uWebSockets does: the kernel copies one
//! segment instead of walking an iovec per 120-byte frame (measured: `_copy_from_iter` and
//! `vfs_writev` were ~10% of server CPU with writev). It never waits while holding the queue.

use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};

use tickcast_bus::Sealed;
use tickcast_core::{CloseCode, Frame, TsMicros};

use super::{Session, ShardCtx};
use tickcast_uring::{BatchSend, MAX_BATCH, NOT_SENT};

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
    seal_gaps(ctx, session);
    let q = session.sub.queue.borrow();
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
    drop(q);
    let emptied = wrote(ctx, session, written, now);
    // Plain TCP holds nothing back once the queue is empty; TLS takes one more turn to push records.
    Ok(!emptied || !socket.is_plain())
}

/// Most bytes gathered for one batch of sends: the cork keeps its capacity, so this bounds what a
/// shard holds for batching (a few large queues go through `write_queued` instead).
const BATCH_BYTES: usize = 256 * 1024;

/// Markers for what backpressure took away are encoded now, once per write at most, not per
/// replaced tick.
fn seal_gaps(ctx: &ShardCtx, session: &Session) {
    let sealed = session.sub.seal_gaps();
    if sealed != Sealed::default() {
        ctx.counters.record_gaps(sealed);
    }
}

/// Takes `written` bytes off the front of `session`'s queue after a write, counts the write, and
/// lets the reader go on if the control frames it queued went out; returns whether the queue is
/// now empty.
fn wrote(ctx: &ShardCtx, session: &Session, written: usize, now: TsMicros) -> bool {
    let mut q = session.sub.queue.borrow_mut();
    let queued = q.data_len();
    session.unstalled();
    let done = q.advance(written);
    let control_left = q.control_len();
    let emptied = q.is_empty();
    drop(q);
    ctx.counters
        .record_write(done.frames, written, queued, done.oldest_ts, now);
    if control_left < MAX_PENDING_CONTROL {
        session.wake_reader();
    }
    emptied
}

/// Writes what each session of `batch` (indexes into `sessions`, at most [`MAX_BATCH`]) has
/// queued with one submission to the shard's ring: plain TCP sessions whose queued frames fit the
/// cork, gathered one after another into it. Everything else, and whatever a send leaves (part of
/// the queue, a full socket, an error), goes through [`write_queued`], as does the whole batch if
/// the ring fails (which then is dropped: the shard goes on with `send(2)`).
pub(crate) fn write_batch(
    ctx: &ShardCtx,
    sessions: &[Rc<Session>],
    batch: &[usize],
    now: TsMicros,
) {
    debug_assert!(batch.len() <= MAX_BATCH);
    let mut sends: [BatchSend; MAX_BATCH] = std::array::from_fn(|_| BatchSend {
        fd: -1,
        range: 0..0,
    });
    // Which session each send is for, and the sessions left to `write_queued`.
    let (mut owner, mut n) = ([0u8; MAX_BATCH], 0);
    let (mut later, mut n_later) = ([0u8; MAX_BATCH], 0);
    let mut results = [NOT_SENT; MAX_BATCH];
    {
        let mut cork = ctx.cork.borrow_mut();
        cork.clear();
        for (i, &slot) in batch.iter().enumerate() {
            let session = &sessions[slot];
            let Some(fd) = session.stream.plain_fd() else {
                later[n_later] = i as u8;
                n_later += 1;
                continue;
            };
            let start = cork.len();
            if start >= BATCH_BYTES {
                later[n_later] = i as u8;
                n_later += 1;
                continue;
            }
            seal_gaps(ctx, session);
            session
                .sub
                .queue
                .borrow()
                .gather(&mut cork, start + CORK_BYTES);
            if cork.len() == start {
                // Nothing queued, or one frame larger than the cork: the usual path handles both.
                later[n_later] = i as u8;
                n_later += 1;
                continue;
            }
            sends[n] = BatchSend {
                fd,
                range: start..cork.len(),
            };
            owner[n] = i as u8;
            n += 1;
        }
        let failed = match ctx.ring.borrow_mut().as_mut() {
            Some(ring) => ring.send_all(&cork, &sends[..n], &mut results).err(),
            // No ring (the caller found one; kept for safety): every send stays NOT_SENT and goes
            // the send(2) way below.
            None => None,
        };
        if let Some(e) = failed {
            tracing::warn!(error = %e, "io_uring send failed: this shard writes with send(2) from now on");
            if ctx.ring.borrow_mut().take().is_some() {
                ctx.state.metrics.io_uring_shards.dec();
            }
        }
    }
    for k in 0..n {
        let session = &sessions[batch[owner[k] as usize]];
        match results[k] {
            r if r >= 0 => {
                if !wrote(ctx, session, r as usize, now) {
                    write_queued(ctx, session, now); // the rest of a longer queue
                } else if is_done(&session.sub, &session.stream) {
                    session.sub.wake(); // the close frame went out: its task ends the session
                }
            }
            // Full (tokio must learn it, which send(2) arranges) or never sent.
            r if r == -libc::EAGAIN || r == NOT_SENT => write_queued(ctx, session, now),
            _ => session.sub.wake(), // an error: the session's task meets it and reports it
        }
    }
    for &i in &later[..n_later] {
        write_queued(ctx, &sessions[batch[i as usize]], now);
    }
}
