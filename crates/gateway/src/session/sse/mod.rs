//! A Server-Sent Events stream: the fallback transport for clients behind proxies that block
//! WebSockets. It reads the same bus subscriber queue a WebSocket session does (same overflow
//! policy, gap markers, heartbeats, throttles) and frames each entry as an event:
//!
//! ```text
//! id: k3f9.1234.0.88
//! data: {"type":"tick","topic":"ticker.AAPL","seq":1234,...}
//!
//! ```
//!
//! The `data` is the payload of the very frame every WebSocket subscriber gets (serialized once;
//! compact JSON has no newline), copied once into this connection's chunk; the `id` line is this
//! stream's [`cursor`] after the event, so a cut at any byte resumes exactly from the browser's
//! `Last-Event-ID`. Replies, errors and heartbeats carry no id: they do not move the cursor; a
//! `reset` (a topic's seq space restarted in a new epoch) starts its topic over in it.
//!
//! The stream is an HTTP response body that hyper polls: a queued tick wakes it (the shard's
//! write pass wakes subscribers it does not own), and it hands hyper one chunk of every event
//! queued so far. It ends on shutdown, when the credential expires, or when the overflow policy
//! disconnects it; dropping it unsubscribes everything and frees the connection slot.

pub(crate) mod cursor;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame as BodyFrame, SizeHint};
use tickcast_bus::{EntryKind, QueueEntry, Subscriber, TopicId};
use tickcast_core::{Epoch, TsMicros};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::ShardCtx;
use crate::state::SessionSlot;
use cursor::Cursor;

/// Most bytes of events handed to hyper in one chunk: a burst goes out as several chunks, each
/// written while the next fills.
const CHUNK_BYTES: usize = 64 * 1024;

/// The reconnect delay the stream asks EventSource for, in milliseconds.
pub(crate) const RETRY_MS: u64 = 1000;

/// One SSE connection's state: what the response body reads from.
pub(crate) struct SseStream {
    ctx: Rc<ShardCtx>,
    sub: Rc<Subscriber>,
    /// The stream's named topics by id, and their place in the cursor.
    index: HashMap<TopicId, usize>,
    cursor: Cursor,
    /// Reused for every chunk: once hyper has written (and dropped) a chunk, its memory is taken
    /// back, so a steady stream allocates nothing per chunk.
    buf: BytesMut,
    /// Scratch for one id line.
    id: Vec<u8>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    expires: Option<Pin<Box<tokio::time::Sleep>>>,
    preamble: bool,
    done: bool,
    _slot: SessionSlot,
}

impl SseStream {
    /// A stream for `sub`, whose named topics are `index` (topic → place in `cursor`).
    pub(crate) fn new(
        ctx: Rc<ShardCtx>,
        sub: Rc<Subscriber>,
        index: HashMap<TopicId, usize>,
        cursor: Cursor,
        expires_at: Option<Instant>,
        slot: SessionSlot,
    ) -> Self {
        let shutdown = Box::pin(ctx.state.shutdown.clone().cancelled_owned());
        Self {
            ctx,
            sub,
            index,
            cursor,
            buf: BytesMut::new(),
            id: Vec::new(),
            shutdown,
            expires: expires_at.map(|at| Box::pin(tokio::time::sleep_until(at.into()))),
            preamble: true,
            done: false,
            _slot: slot,
        }
    }

    /// Frames every queued entry into `buf`, up to [`CHUNK_BYTES`]; returns (events, oldest tick ts).
    fn fill(&mut self) -> (usize, Option<TsMicros>) {
        let gaps = self.sub.seal_gaps();
        self.ctx.counters.record_gaps(gaps);
        let mut events = 0;
        let mut oldest: Option<TsMicros> = None;
        let mut queue = self.sub.queue.borrow_mut();
        while self.buf.len() < CHUNK_BYTES {
            let Some(entry) = queue.pop_front() else {
                break;
            };
            match entry {
                QueueEntry::Control(frame) => {
                    // Pings and pongs are WebSocket's; a close frame (the policy's disconnect)
                    // ends the stream.
                    if frame.is_close() {
                        self.done = true;
                        break;
                    }
                    if !frame.is_text() {
                        continue;
                    }
                    event(&mut self.buf, None, frame.payload());
                }
                QueueEntry::Data(tick) => {
                    if tick.frame.is_empty() {
                        continue; // a marker of a topic unsubscribed meanwhile
                    }
                    let id = match self.index.get(&tick.topic) {
                        Some(&i) => {
                            if tick.kind == EntryKind::Reset {
                                if let Some(epoch) = reset_epoch(tick.frame.payload()) {
                                    self.cursor.reset(i, epoch);
                                }
                            } else {
                                self.cursor.advance(i, tick.seq);
                            }
                            self.id.clear();
                            self.cursor.render(&mut self.id);
                            Some(self.id.as_slice())
                        }
                        // A topic a wildcard brought: not in the id (it resumes from its snapshot).
                        None => None,
                    };
                    if tick.kind == EntryKind::Tick && tick.ts != TsMicros::UNMEASURED {
                        oldest = Some(oldest.map_or(tick.ts, |t| t.min(tick.ts)));
                    }
                    event(&mut self.buf, id, tick.frame.payload());
                }
            }
            events += 1;
        }
        (events, oldest)
    }
}

/// The epoch a `reset` message names (`{"type":"reset","topic":..,"epoch":".."}`; rare, so read
/// from its text rather than carried in every queue entry).
fn reset_epoch(payload: &[u8]) -> Option<Epoch> {
    let text = std::str::from_utf8(payload).ok()?;
    let rest = &text[text.find("\"epoch\":\"")? + 9..];
    Epoch::new(&rest[..rest.find('"')?]).ok()
}

/// Appends one event: its id line (when it moves the cursor) and its data line.
fn event(buf: &mut BytesMut, id: Option<&[u8]>, data: &[u8]) {
    if let Some(id) = id {
        buf.extend_from_slice(b"id: ");
        buf.extend_from_slice(id);
        buf.extend_from_slice(b"\n");
    }
    buf.extend_from_slice(b"data: ");
    buf.extend_from_slice(data);
    buf.extend_from_slice(b"\n\n");
}

impl Body for SseStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.done
            || this.shutdown.as_mut().poll(cx).is_ready()
            || this
                .expires
                .as_mut()
                .is_some_and(|e| e.as_mut().poll(cx).is_ready())
            || this.sub.is_slow()
        {
            this.done = true;
            return Poll::Ready(None);
        }
        if std::mem::take(&mut this.preamble) {
            // The reconnect delay, then the current id: a browser that reconnected resumes from
            // here even if it is cut before the next event.
            this.buf
                .extend_from_slice(format!("retry: {RETRY_MS}\nid: ").as_bytes());
            this.id.clear();
            this.cursor.render(&mut this.id);
            this.buf.extend_from_slice(&this.id);
            this.buf.extend_from_slice(b"\n\n");
        }
        let (events, oldest) = this.fill();
        if this.buf.is_empty() {
            if this.done {
                return Poll::Ready(None);
            }
            this.sub.set_waker(cx.waker());
            return Poll::Pending;
        }
        let chunk = this.buf.split().freeze();
        this.ctx
            .counters
            .record_sse(events, chunk.len(), oldest, TsMicros::now());
        Poll::Ready(Some(Ok(BodyFrame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for SseStream {
    fn drop(&mut self) {
        self.ctx.router.borrow_mut().remove(&self.sub);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_of_a_reset_is_read_from_its_message() {
        let topic = tickcast_core::Topic::new("ticker.AAPL").unwrap();
        let epoch = Epoch::new("k3f9").unwrap();
        let frame = tickcast_core::stream::reset_frame(&topic, &epoch);
        assert_eq!(reset_epoch(frame.payload()), Some(epoch));
        assert_eq!(reset_epoch(b"{\"type\":\"reset\"}"), None);
    }
}
