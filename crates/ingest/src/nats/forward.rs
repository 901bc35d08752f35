//! The sink's forwarding task: leadership (see [`super::election`]) and, while this node leads,
//! its ticks and heartbeats appended to the stream, each conditional on the previous one.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::header::NATS_EXPECTED_LAST_SEQUENCE;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::Context;
use async_nats::{Client, Event, HeaderMap, Subject, Subscriber};
use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use tickcast_bus::{BookUpdate, Bus};
use tickcast_core::market::Level;
use tickcast_core::{Topic, TopicClass, TsMicros};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::election::{Action, Election, Role};
use super::sink::{body_of, ConnectedSink, Forward, LeaderStats, QueueTap};
use super::snapshots::SnapshotSchedule;
use super::stream::{ensure_stream, err, last_heartbeat, resume, store_epoch, stored_epoch};
use super::{leader_subject, snapshot_subject, subject_of, NatsError, EPOCH_HEADER, TERM_HEADER};

/// Most messages handed to the NATS client per wake-up of the forwarding task.
const FORWARD_BATCH: usize = 256;
/// Acked appends (heartbeats) in flight at most; below the client's own limit (5,000) so sending
/// never waits on a permit only our own unpolled acks hold.
const MAX_IN_FLIGHT: usize = 64;
/// Time given to flush what is queued when the server shuts down.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// JetStream's answer to one append.
type AckFuture = <async_nats::jetstream::context::PublishAckFuture as IntoFuture>::IntoFuture;

/// The leader's appends: each conditional on the stream's sequence being the previous one's.
///
/// Ticks go without a reply subject: the stream still checks their expected sequence and drops a
/// refused one (and, since each expects the one before, every one after it), but sends no ack, so
/// NATS and this node do no per-tick ack work. Heartbeats are acked: a heartbeat accepted means
/// every append before it was, and one refused means the chain broke somewhere since the last one
/// (this node was deposed, or NATS lost an append), so this node learns of it within `renew`.
struct Pipeline {
    js: Context,
    client: Client,
    /// The stream sequence of this node's last append: the next one expects it.
    tail: u64,
    /// Every tick's headers: the epoch (the expected sequence is added per append).
    headers: HeaderMap,
    in_flight: FuturesOrdered<AckFuture>,
}

impl Pipeline {
    /// Sends one tick's append, without an ack.
    async fn append_tick(
        &mut self,
        subject: Subject,
        body: Bytes,
    ) -> Result<(), async_nats::PublishError> {
        let mut headers = self.headers.clone();
        headers.insert(NATS_EXPECTED_LAST_SEQUENCE, self.tail.to_string().as_str());
        self.client
            .publish_with_headers(subject, headers, body)
            .await?;
        self.tail += 1;
        Ok(())
    }

    /// Sends one acked append without waiting for its ack (awaiting the oldest when the window is
    /// full).
    async fn append(
        &mut self,
        subject: Subject,
        body: Bytes,
        headers: HeaderMap,
    ) -> Result<(), PublishError> {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            if let Some(ack) = self.in_flight.next().await {
                ack?;
            }
        }
        let publish = Publish::build()
            .payload(body)
            .headers(headers)
            .expected_last_sequence(self.tail);
        let ack = self.js.send_publish(subject, publish).await?;
        self.tail += 1;
        self.in_flight.push_back(ack.into_future());
        Ok(())
    }

    /// Waits for every ack still due (at shutdown).
    async fn drain(&mut self) -> Result<(), PublishError> {
        while let Some(ack) = self.in_flight.next().await {
            ack?;
        }
        Ok(())
    }
}

/// The forwarding task: leadership, and while leading, ticks to the stream.
pub(super) struct Forwarder {
    sink: ConnectedSink,
    election: Election,
    /// Subject per topic, built once: bounded by the bus's max_topics.
    subjects: HashMap<Topic, Subject>,
    /// When each book's next snapshot goes to its snapshot subject.
    snapshots: SnapshotSchedule,
    /// Books updated in the batch being forwarded that are due a snapshot (reused).
    due: Vec<Topic>,
    /// Present while leading.
    pipeline: Option<Pipeline>,
    /// Stream sequence of the newest heartbeat heard (or read at start).
    beat_seq: u64,
    beats: Subscriber,
    rx: mpsc::Receiver<Forward>,
    tap: Arc<QueueTap>,
    bus: Arc<Bus>,
    leader: Arc<LeaderStats>,
}

/// What a [`Forwarder`] starts from: the connected sink, what it heard of the leader at start (when,
/// and the heartbeat's stream sequence), the heartbeat subscription, and the tap's queue.
pub(super) struct ForwarderParts {
    pub sink: ConnectedSink,
    pub heard: Instant,
    pub beat_seq: u64,
    pub beats: Subscriber,
    pub rx: mpsc::Receiver<Forward>,
    pub tap: Arc<QueueTap>,
    pub bus: Arc<Bus>,
    pub leader: Arc<LeaderStats>,
}

impl Forwarder {
    /// A standby that last heard a leader at `parts.heard`.
    pub(super) fn new(parts: ForwarderParts) -> Self {
        Self {
            election: Election::new(parts.heard),
            beat_seq: parts.beat_seq,
            subjects: HashMap::new(),
            snapshots: SnapshotSchedule::new(parts.sink.config.book_snapshot_every),
            due: Vec::new(),
            pipeline: None,
            beats: parts.beats,
            rx: parts.rx,
            tap: parts.tap,
            bus: parts.bus,
            leader: parts.leader,
            sink: parts.sink,
        }
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let mut buf = Vec::with_capacity(FORWARD_BATCH);
        let mut seen_connect = false;
        loop {
            let wake = match self.election.next(Instant::now(), &self.sink.config.lease) {
                Action::WaitUntil(at) => at,
                Action::TakeOver | Action::Renew => Instant::now(),
            };
            let leading = self.pipeline.is_some();
            let acks_due = self
                .pipeline
                .as_ref()
                .is_some_and(|p| !p.in_flight.is_empty());
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(event) = self.sink.events_rx.recv() => match event {
                    Event::Connected if seen_connect => {
                        tracing::info!(url = %self.sink.config.url, "NATS sink reconnected");
                    }
                    Event::Connected => seen_connect = true,
                    Event::Disconnected => {
                        tracing::warn!(url = %self.sink.config.url, "NATS sink disconnected");
                        // Appends in flight may be lost: stop, and win the lease again (or not).
                        self.step_down("NATS disconnected");
                    }
                    other => tracing::debug!(event = %other, "NATS sink event"),
                },
                Some(beat) = self.beats.next() => {
                    let term = beat_term(&beat);
                    self.beat_seq = self.beat_seq.max(header_u64(&beat, "Nats-Sequence").unwrap_or(0));
                    if self.election.heard(term, Instant::now()) {
                        self.step_down("a newer leader's heartbeat");
                    }
                }
                Some(ack) = next_ack(&mut self.pipeline), if acks_due => {
                    if let Err(e) = ack {
                        self.refused(&e);
                    }
                }
                n = self.rx.recv_many(&mut buf, FORWARD_BATCH), if leading => {
                    if n == 0 {
                        break;
                    }
                    self.forward(&mut buf).await;
                }
                _ = tokio::time::sleep_until(wake.into()) => self.on_timer().await,
            }
        }
        if let Some(p) = self.pipeline.as_mut() {
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, p.drain()).await;
        }
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, self.sink.client.flush()).await;
        self.leader.leader.store(false, Ordering::Relaxed);
        self.sink.stats.set_connected(false);
    }

    /// Appends a batch of queued ticks.
    async fn forward(&mut self, buf: &mut Vec<Forward>) {
        let n = buf.len() as u64;
        let prefix = &self.sink.config.subject_prefix;
        let Some(p) = self.pipeline.as_mut() else {
            buf.clear();
            return;
        };
        let mut failed = None;
        let now = Instant::now();
        for (topic, body) in buf.drain(..) {
            if failed.is_some() {
                continue;
            }
            if topic.class() == TopicClass::Book && self.snapshots.due(&topic, now) {
                self.due.push(topic.clone());
            }
            let subject = self
                .subjects
                .entry(topic)
                .or_insert_with_key(|t| Subject::from(subject_of(prefix, t.as_str())))
                .clone();
            if let Err(e) = p.append_tick(subject, body).await {
                failed = Some(e);
            }
        }
        // After the deltas, so a snapshot is never older than the last delta sent before it (a
        // gateway in sync ignores it; one that is not takes it and drops the deltas it covers).
        for topic in self.due.drain(..) {
            if failed.is_some() {
                break;
            }
            let Some(snapshot) = self.bus.get(topic.as_str()).and_then(|t| t.book_snapshot())
            else {
                continue;
            };
            if snapshot.frame.is_empty() {
                continue; // the book refused an update and awaits its feed's snapshot
            }
            let subject = Subject::from(snapshot_subject(prefix, topic.as_str()));
            if let Err(e) = p.append_tick(subject, body_of(&snapshot.frame)).await {
                failed = Some(e);
            }
        }
        match failed {
            // Only when the client is closed, which happens at shutdown.
            Some(e) => self.step_down(&format!("NATS client closed: {e}")),
            None => self.sink.stats.record_ticks(n, TsMicros::now()),
        }
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        match self.election.next(now, &self.sink.config.lease) {
            Action::WaitUntil(_) => {}
            Action::Renew => {
                let Some(p) = self.pipeline.as_mut() else {
                    return;
                };
                let Role::Leader { term } = self.election.role() else {
                    return;
                };
                let mut headers = HeaderMap::new();
                headers.insert(TERM_HEADER, term.to_string().as_str());
                let subject = Subject::from(leader_subject(&self.sink.config.subject_prefix));
                match p
                    .append(subject, beat_body(&self.sink.config.node), headers)
                    .await
                {
                    Ok(()) => self.election.renewed(now),
                    Err(e) => self.refused(&e),
                }
            }
            Action::TakeOver => match self.take_over().await {
                Ok(Some(term)) => {
                    self.election.took_over(term, Instant::now());
                    self.leader.term.store(term, Ordering::Relaxed);
                    self.leader.takeovers.fetch_add(1, Ordering::Relaxed);
                    self.leader.leader.store(true, Ordering::Relaxed);
                    self.tap.active.store(true, Ordering::Release);
                    self.bus.set_standby(false);
                    self.republish_books();
                    tracing::info!(node = %self.sink.config.node, term, "this node leads: its feeds publish");
                }
                Ok(None) => {
                    self.leader.lost_attempts.fetch_add(1, Ordering::Relaxed);
                    self.election.lost(Instant::now());
                    tracing::info!(node = %self.sink.config.node, "another node appended first; staying standby");
                }
                Err(e) => {
                    self.election.lost(Instant::now());
                    tracing::warn!(error = %e, "takeover failed; retrying after a lease");
                }
            },
        }
    }

    /// Resumes every topic's seq from the stream and appends this node's first heartbeat,
    /// conditional on the stream's last sequence as read before: `Some(term)` if it won.
    async fn take_over(&mut self) -> Result<Option<u64>, NatsError> {
        let config = &self.sink.config;
        let js = &self.sink.js;
        // NATS may have lost the stream (restarted without its store): make it again, with the
        // epoch this node's seqs belong to.
        ensure_stream(js, config).await?;
        match stored_epoch(js, config).await? {
            Some(e) if e == self.sink.epoch => {}
            Some(other) => {
                return Err(err(
                    config,
                    &format_args!(
                        "the stream holds epoch {:?}, this node's seqs are of {:?}: restart this node to join it",
                        other.as_str(),
                        self.sink.epoch.as_str()
                    ),
                ))
            }
            None => {
                store_epoch(js, config, &self.sink.epoch).await?;
            }
        }
        let last = js
            .get_stream(&config.stream)
            .await
            .map_err(|e| err(config, &e))?
            .cached_info()
            .state
            .last_sequence;
        // A leader whose heartbeats this node has not heard (it just started; they were late) may be
        // alive: if the stream holds a heartbeat newer than the last one heard, leave it be (by
        // stream sequence, not by time: no clock skew involved). Read after `last`, so a heartbeat
        // appended before `last` is seen here and one appended after it makes the conditional
        // append below fail: either way a live leader is not deposed.
        let (_, beat_seq) = last_heartbeat(js, config).await?;
        if beat_seq > self.beat_seq {
            self.beat_seq = beat_seq;
            return Ok(None);
        }
        let topics = resume(js, config, &self.bus, &self.sink.stats).await?;
        let mut headers = HeaderMap::new();
        headers.insert(EPOCH_HEADER, self.sink.epoch.as_str());
        let mut pipeline = Pipeline {
            js: js.clone(),
            client: self.sink.client.clone(),
            tail: last,
            headers,
            in_flight: FuturesOrdered::new(),
        };
        let subject = Subject::from(leader_subject(&config.subject_prefix));
        pipeline
            .append(subject, beat_body(&config.node), HeaderMap::new())
            .await
            .map_err(|e| err(config, &e))?;
        let term = match pipeline.in_flight.next().await {
            Some(Ok(ack)) => ack.sequence,
            Some(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => return Ok(None),
            Some(Err(e)) => return Err(err(config, &e)),
            None => return Ok(None),
        };
        pipeline.tail = term;
        // Whatever was lost between the last append and now (the old leader's last reads, or this
        // node's feed ticks discarded while NATS was away): one unused seq per topic reaches every
        // client as an `upstream` gap (a book's is followed by its snapshot, see
        // `republish_books`).
        for topic in self.bus.fed_topics() {
            if topic.last().is_some() {
                topic.skip_seqs(1);
            }
        }
        tracing::info!(
            topics = topics.len(),
            last_sequence = last,
            "seqs resumed from the stream for the takeover"
        );
        self.pipeline = Some(pipeline);
        Ok(Some(term))
    }

    /// Publishes every book this node keeps as a snapshot under its next seq, now that it leads:
    /// this node built its books from its own feeds while the old leader numbered theirs, so a
    /// book goes on from a snapshot (after the `upstream` gap of the takeover), on this node and
    /// on every gateway. A book awaiting its feed's snapshot is left to it.
    fn republish_books(&mut self) {
        self.snapshots.reset();
        let mut batch = self.bus.batch();
        let (mut bids, mut asks, mut scratch) = (Vec::<Level>::new(), Vec::new(), Vec::new());
        for topic in self.bus.fed_topics() {
            if topic.class() != TopicClass::Book || topic.is_untrusted() {
                continue;
            }
            let Some(book) = topic.book() else { continue };
            bids.clear();
            bids.extend(book.bids());
            asks.clear();
            asks.extend(book.asks());
            let update = BookUpdate {
                snapshot: true,
                bids: &bids,
                asks: &asks,
            };
            if let Err(e) = batch.publish_book(&topic, update, TsMicros::now(), &mut scratch) {
                tracing::warn!(topic = %topic.topic(), error = %e, "book not republished at takeover");
            }
        }
    }

    /// An append failed: refused by the stream (someone else appended) or lost by NATS.
    fn refused(&mut self, e: &PublishError) {
        if e.kind() == PublishErrorKind::WrongLastSequence {
            self.leader.refused_appends.fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(error = %e, "append refused or failed");
        self.step_down("an append was refused or failed");
    }

    /// Stops publishing: the bus discards feed ticks again, queued ticks are dropped (the next
    /// leader announces them as a gap), and the lease is waited out before trying again.
    fn step_down(&mut self, why: &str) {
        if self.pipeline.take().is_none() {
            return;
        }
        self.bus.set_standby(true);
        self.tap.active.store(false, Ordering::Release);
        while self.rx.try_recv().is_ok() {}
        self.election.step_down(Instant::now());
        self.leader.leader.store(false, Ordering::Relaxed);
        self.leader.step_downs.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(node = %self.sink.config.node, why, "this node stopped leading; standby");
    }
}

/// The next ack of the pipeline (only polled while one is due).
async fn next_ack(pipeline: &mut Option<Pipeline>) -> Option<Result<PublishAck, PublishError>> {
    match pipeline {
        Some(p) => p.in_flight.next().await,
        None => std::future::pending().await,
    }
}

/// A heartbeat's body: who leads, for people reading the stream.
fn beat_body(node: &str) -> Bytes {
    Bytes::from(format!("{{\"node\":{}}}", serde_json::Value::from(node)))
}

/// The term a heartbeat (as republished by the stream) belongs to: its header, or, on the first
/// heartbeat of a term, its own stream sequence.
fn beat_term(msg: &async_nats::Message) -> u64 {
    header_u64(msg, TERM_HEADER)
        .or_else(|| header_u64(msg, "Nats-Sequence"))
        .unwrap_or(0)
}

/// A numeric header of `msg` (the stream adds `Nats-Sequence` when it republishes).
fn header_u64(msg: &async_nats::Message, name: &str) -> Option<u64> {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .and_then(|v| v.as_str().parse::<u64>().ok())
}
