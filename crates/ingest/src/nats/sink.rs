//! The NATS sink of an ingest node: every tick the bus accepts goes to `<prefix>.<topic>`, body =
//! the encoded tick JSON (the frame payload, not re-serialized), through a bounded queue so a slow
//! or absent NATS never blocks the feeds (overflow drops the tick and counts it).
//!
//! At start it creates (or reuses) the JetStream stream capturing `<prefix>.>` with one message per
//! subject, which is what gateways warm their cache from; the stream republishes every message it
//! stores under [`live_prefix`](super::live_prefix), which is what gateways subscribe to. The epoch
//! of the seq space lives in the same stream, as the last message of the reserved subject
//! `<prefix>._epoch`: its lifetime is the stream's, so a stream that is new or was lost means a new
//! epoch (made and stored here), and every message names it in the `Tickcast-Epoch` header.
//!
//! Several ingest nodes may run the same feeds; exactly one publishes (see [`super::election`]).
//! Every append the leader makes carries `Nats-Expected-Last-Sequence` = the stream sequence of
//! its previous append, so the stream itself refuses the appends of a leader that lost the lease
//! (it was paused, partitioned): two leaders can never both append, and since gateways read what
//! the stream republishes, a refused tick reaches no client. A node taking over first reads every
//! topic's last seq from the stream (as of the sequence its winning heartbeat is conditional on),
//! then leaves one seq unused per topic: whatever the old leader lost between its last append and
//! the takeover reaches clients as an `upstream` gap, never hidden.
use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::header::NATS_EXPECTED_LAST_SEQUENCE;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::stream::{Config as StreamConfig, Republish, StorageType};
use async_nats::jetstream::Context;
use async_nats::{Client, ConnectOptions, Event, HeaderMap, Subject, Subscriber};
use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use tickcast_bus::{Bus, BusTap, TopicState};
use tickcast_core::{Epoch, Frame, Seq, Topic, TopicClass, TsMicros};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::election::{Action, Election, LeaseTiming, Role};
use super::{
    decode, epoch_subject, is_reserved_subject, leader_subject, live_prefix, subject_of,
    LastPerSubject, NatsError, EPOCH_HEADER, TERM_HEADER,
};
use crate::parse::TickParser;
use crate::publisher::Publisher;
use crate::reject::LogLimiter;
use crate::stats::FeedStats;

/// Most messages handed to the NATS client per wake-up of the forwarding task.
const FORWARD_BATCH: usize = 256;
/// Acked appends (heartbeats) in flight at most; below the client's own limit (5,000) so sending
/// never waits on a permit only our own unpolled acks hold.
const MAX_IN_FLIGHT: usize = 64;
/// Time given to flush what is queued when the server shuts down.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Where JetStream keeps the last-value stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStorage {
    /// On disk: survives a NATS restart (needs `-sd`/`store_dir`).
    File,
    /// In memory: faster, lost when NATS restarts.
    Memory,
}

/// Settings of the sink.
#[derive(Debug, Clone)]
pub struct NatsSinkConfig {
    /// `nats://host:port` (comma-separated for several servers).
    pub url: String,
    /// Subjects are `<subject_prefix>.<topic>`.
    pub subject_prefix: String,
    /// The JetStream stream keeping the last tick per subject.
    pub stream: String,
    /// Where that stream lives.
    pub storage: StreamStorage,
    /// Ticks queued between the bus and the NATS client; beyond this, ticks are dropped and counted.
    pub queue_capacity: usize,
    /// Time allowed to connect at startup (a NATS that cannot be reached fails startup).
    pub connect_timeout: Duration,
    /// How the leader's lease is renewed and when a standby takes over.
    pub lease: LeaseTiming,
    /// This node's name in the leader's heartbeats and logs.
    pub node: String,
}

/// Default of [`NatsSinkConfig::queue_capacity`].
pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;

impl Default for NatsSinkConfig {
    fn default() -> Self {
        Self {
            url: super::DEFAULT_URL.into(),
            subject_prefix: super::DEFAULT_SUBJECT_PREFIX.into(),
            stream: super::DEFAULT_STREAM.into(),
            storage: StreamStorage::File,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            connect_timeout: super::DEFAULT_CONNECT_TIMEOUT,
            lease: LeaseTiming::default(),
            node: default_node_name(),
        }
    }
}

/// `<hostname>-<pid>`: unique among nodes of one tier without configuration.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "ingest".into()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}

/// Leadership as the metrics see it.
#[derive(Debug, Default)]
pub struct LeaderStats {
    leader: AtomicBool,
    term: AtomicU64,
    takeovers: AtomicU64,
    lost_attempts: AtomicU64,
    step_downs: AtomicU64,
    refused_appends: AtomicU64,
}

impl LeaderStats {
    /// Whether this node publishes now.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }
    /// The term this node leads (or last led), 0 if never.
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Relaxed)
    }
    /// Times this node won the lease.
    pub fn takeovers(&self) -> u64 {
        self.takeovers.load(Ordering::Relaxed)
    }
    /// Takeover attempts another node won.
    pub fn lost_attempts(&self) -> u64 {
        self.lost_attempts.load(Ordering::Relaxed)
    }
    /// Times this node stopped leading (refused append, NATS failure, newer term heard).
    pub fn step_downs(&self) -> u64 {
        self.step_downs.load(Ordering::Relaxed)
    }
    /// Appends the stream refused because someone else had appended (the fence at work).
    pub fn refused_appends(&self) -> u64 {
        self.refused_appends.load(Ordering::Relaxed)
    }
}

/// A running sink.
pub struct NatsSink {
    /// `connected`, ticks forwarded and reconnects, under the name `nats-sink`.
    pub stats: Arc<FeedStats>,
    /// Leadership of this node.
    pub leader: Arc<LeaderStats>,
    /// The forwarding task; ends after shutdown, once queued ticks are flushed.
    pub task: JoinHandle<()>,
    tap: Arc<QueueTap>,
}

impl NatsSink {
    /// Ticks dropped because the queue to NATS was full.
    pub fn dropped(&self) -> u64 {
        self.tap.stats.dropped()
    }
}

/// What the bus tap hands to the forwarding task.
type Forward = (Topic, Bytes);

/// The bus tap: a non-blocking push onto the bounded queue, while this node leads.
#[derive(Debug)]
struct QueueTap {
    tx: mpsc::Sender<Forward>,
    /// Off while standby: the ticks a takeover loads from the stream go into the bus through here
    /// too, and must not be appended again.
    active: AtomicBool,
    /// The sink's stats: drops count there, so they reach `/metrics` (`tickcast_feed_dropped_total`).
    stats: Arc<FeedStats>,
    drop_log: LogLimiter,
}

impl BusTap for QueueTap {
    fn published(&self, topic: &TopicState, _seq: Seq, _ts: TsMicros, frame: &Frame) {
        if !self.active.load(Ordering::Acquire) || !crosses_nats(topic.topic()) {
            return;
        }
        // The body is the frame's payload: a slice of the same bytes, no copy, no re-encoding.
        let header = frame.len() - frame.payload().len();
        let body = frame.bytes().slice(header..);
        if self.tx.try_send((topic.topic().clone(), body)).is_err() {
            self.stats.record_dropped();
            if let Some(suppressed) = self.drop_log.admit() {
                tracing::warn!(
                    suppressed,
                    "NATS sink queue full (NATS slow or unreachable): tick dropped"
                );
            }
        }
    }
}

/// Whether `topic`'s messages go to NATS: quotes only, the one message gateways decode. Books,
/// trades and candles are built by each ingest node and do not cross NATS yet; sending them would
/// only load the stream and be refused by every gateway.
fn crosses_nats(topic: &Topic) -> bool {
    topic.class() == TopicClass::Latest && topic.channel() != "bar"
}

/// A sink connected to NATS, its stream ready and its epoch known, not forwarding yet: build the
/// bus with [`epoch`](Self::epoch), then [`start`](Self::start) it.
pub struct ConnectedSink {
    config: NatsSinkConfig,
    client: Client,
    js: Context,
    events_rx: mpsc::UnboundedReceiver<Event>,
    stats: Arc<FeedStats>,
    epoch: Epoch,
}

/// Connects, prepares the stream and reads the epoch of its seq space from it (a new one, stored
/// there, when the stream is new or lost it).
pub async fn connect(config: NatsSinkConfig) -> Result<ConnectedSink, NatsError> {
    let stats = FeedStats::new("nats-sink", "nats_sink");
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let connected_once = Arc::new(AtomicBool::new(false));
    let client = {
        let stats = stats.clone();
        let connected_once = connected_once.clone();
        ConnectOptions::new()
            .name("tickcast-ingest")
            .connection_timeout(config.connect_timeout)
            .max_reconnects(None)
            .event_callback(move |event| {
                match &event {
                    Event::Connected => {
                        if connected_once.swap(true, Ordering::Relaxed) {
                            stats.record_reconnect();
                        }
                        stats.set_connected(true);
                    }
                    Event::Disconnected => stats.set_connected(false),
                    _ => {}
                }
                let _ = events_tx.send(event);
                std::future::ready(())
            })
            .connect(config.url.as_str())
            .await
            .map_err(|e| NatsError::Connect {
                url: config.url.clone(),
                error: e.to_string(),
            })?
    };
    connected_once.store(true, Ordering::Relaxed);
    stats.set_connected(true);
    let js = async_nats::jetstream::new(client.clone());
    ensure_stream(&js, &config).await?;
    let epoch = match stored_epoch(&js, &config).await? {
        Some(epoch) => {
            tracing::info!(stream = %config.stream, epoch = %epoch.as_str(), "epoch read from the stream; seqs continue");
            epoch
        }
        None => {
            let epoch = fresh_epoch();
            let epoch = if store_epoch(&js, &config, &epoch).await? {
                tracing::info!(stream = %config.stream, epoch = %epoch.as_str(), "no epoch in the stream (new or lost): a new seq space starts");
                epoch
            } else {
                // Another ingest node starting at the same moment stored its epoch first: share it.
                stored_epoch(&js, &config)
                    .await?
                    .ok_or_else(|| err(&config, &"the epoch stored first is gone"))?
            };
            epoch
        }
    };
    Ok(ConnectedSink {
        config,
        client,
        js,
        events_rx,
        stats,
        epoch,
    })
}

impl ConnectedSink {
    /// The epoch of the seq space in the stream: the ingest node's bus must use it.
    pub fn epoch(&self) -> &Epoch {
        &self.epoch
    }

    /// Installs the (inactive) tap on `bus` (built with [`epoch`](Self::epoch)), makes the bus a
    /// standby and starts the task that wins the lease, resumes seqs from the stream and forwards.
    /// Call before the feeds start, so no tick takes a seq before this node knows the stream's.
    pub async fn start(
        self,
        bus: &Arc<Bus>,
        shutdown: CancellationToken,
    ) -> Result<NatsSink, NatsError> {
        let config = &self.config;
        if bus.epoch() != &self.epoch {
            return Err(err(
                config,
                &format_args!(
                    "the bus has epoch {:?}, the stream {:?}",
                    bus.epoch().as_str(),
                    self.epoch.as_str()
                ),
            ));
        }
        config
            .lease
            .validate()
            .map_err(|e| err(config, &format_args!("lease: {e}")))?;
        bus.set_standby(true);
        // Heartbeats as the stream stored them: what every standby watches.
        let beats = self
            .client
            .subscribe(leader_subject(&live_prefix(&config.subject_prefix)))
            .await
            .map_err(|e| err(config, &e))?;
        let (heard, beat_seq) = last_heartbeat(&self.js, config).await?;
        tracing::info!(node = %config.node, stream = %config.stream, "NATS sink ready; standby until this node holds the lease");

        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let stats = self.stats.clone();
        let tap = Arc::new(QueueTap {
            tx,
            active: AtomicBool::new(false),
            stats: stats.clone(),
            drop_log: LogLimiter::default(),
        });
        if !bus.set_tap(tap.clone()) {
            return Err(NatsError::TapInUse);
        }
        let leader = Arc::new(LeaderStats::default());
        let task = tokio::spawn(
            Forwarder {
                election: Election::new(heard),
                beat_seq,
                subjects: HashMap::new(),
                pipeline: None,
                beats,
                rx,
                tap: tap.clone(),
                bus: bus.clone(),
                leader: leader.clone(),
                sink: self,
            }
            .run(shutdown),
        );
        Ok(NatsSink {
            stats,
            leader,
            task,
            tap,
        })
    }
}

fn err(config: &NatsSinkConfig, e: &dyn std::fmt::Display) -> NatsError {
    NatsError::Stream {
        stream: config.stream.clone(),
        error: e.to_string(),
    }
}

/// The stream's config: `<prefix>.>`, one message per subject, republished under the live prefix.
fn stream_config(config: &NatsSinkConfig) -> StreamConfig {
    StreamConfig {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        // Only the latest tick of each topic matters: older ones are superseded.
        max_messages_per_subject: 1,
        storage: match config.storage {
            StreamStorage::File => StorageType::File,
            StreamStorage::Memory => StorageType::Memory,
        },
        republish: Some(Republish {
            source: format!("{}.>", config.subject_prefix),
            destination: format!("{}.>", live_prefix(&config.subject_prefix)),
            headers_only: false,
        }),
        ..Default::default()
    }
}

/// Creates the last-value stream, or keeps the one that exists (adding the republish to one made
/// before it had one).
async fn ensure_stream(js: &Context, config: &NatsSinkConfig) -> Result<(), NatsError> {
    let wanted = stream_config(config);
    let mut stream = js
        .get_or_create_stream(wanted.clone())
        .await
        .map_err(|e| err(config, &e))?;
    if stream.cached_info().config.republish != wanted.republish {
        let mut updated = stream.cached_info().config.clone();
        updated.republish = wanted.republish;
        js.update_stream(updated)
            .await
            .map_err(|e| err(config, &e))?;
        tracing::info!(stream = %config.stream, "stream now republishes what it stores (gateways read that)");
    }
    let _ = stream.info().await;
    Ok(())
}

/// A new epoch: from the wall clock and the process id, so two starts differ.
fn fresh_epoch() -> Epoch {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    Epoch::from_seed(nanos ^ (u64::from(std::process::id()) << 40))
}

/// The epoch the stream holds (the last message of the reserved subject), if any.
async fn stored_epoch(js: &Context, config: &NatsSinkConfig) -> Result<Option<Epoch>, NatsError> {
    let stream = js
        .get_stream(&config.stream)
        .await
        .map_err(|e| err(config, &e))?;
    let subject = epoch_subject(&config.subject_prefix);
    match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(msg) => {
            let text = std::str::from_utf8(&msg.payload).map_err(|e| err(config, &e))?;
            Epoch::new(text.trim())
                .map(Some)
                .map_err(|e| err(config, &format_args!("{subject}: {e}")))
        }
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(err(config, &e)),
    }
}

/// Stores `epoch` as the first message of the reserved subject, waiting for JetStream's ack;
/// `false` if the subject already had one (another node stored its epoch first).
async fn store_epoch(
    js: &Context,
    config: &NatsSinkConfig,
    epoch: &Epoch,
) -> Result<bool, NatsError> {
    let body = Bytes::copy_from_slice(epoch.as_str().as_bytes());
    let publish = Publish::build()
        .payload(body)
        .expected_last_subject_sequence(0);
    let ack = js
        .send_publish(epoch_subject(&config.subject_prefix), publish)
        .await
        .map_err(|e| err(config, &e))?
        .await;
    match ack {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(false),
        Err(e) => Err(err(config, &e)),
    }
}

/// When the leader was last heard, from the heartbeat the stream holds: a lease that lapsed long
/// ago (the tier was down) is taken over at once, a fresh one is waited out.
/// Also returns the heartbeat's stream sequence (0 if none): a clock-free way to tell later
/// whether anyone renewed since.
async fn last_heartbeat(
    js: &Context,
    config: &NatsSinkConfig,
) -> Result<(Instant, u64), NatsError> {
    let now = Instant::now();
    let lapsed = now.checked_sub(config.lease.lease).unwrap_or(now);
    let stream = js
        .get_stream(&config.stream)
        .await
        .map_err(|e| err(config, &e))?;
    match stream
        .get_last_raw_message_by_subject(&leader_subject(&config.subject_prefix))
        .await
    {
        Ok(msg) => {
            let stored = msg.time.unix_timestamp_nanos();
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as i128;
            // The stored time is NATS's clock: a skew only delays or hastens one attempt, which
            // the conditional append keeps safe either way.
            let age = Duration::from_nanos((wall - stored).clamp(0, u64::MAX as i128) as u64);
            Ok((
                now.checked_sub(age).unwrap_or(lapsed).max(lapsed),
                msg.sequence,
            ))
        }
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok((lapsed, 0)),
        Err(e) => Err(err(config, &e)),
    }
}

/// Loads the stream's last tick of every topic into `bus` (its cache and seq counter); returns the
/// topics it found.
async fn resume(
    js: &Context,
    config: &NatsSinkConfig,
    bus: &Arc<Bus>,
    stats: &Arc<FeedStats>,
) -> Result<Vec<Arc<TopicState>>, NatsError> {
    let filter = format!("{}.>", config.subject_prefix);
    let mut last = LastPerSubject::open(js, &config.stream, &filter).await?;
    let mut publisher = Publisher::new(bus.clone(), stats.clone());
    let mut parser = TickParser::default();
    let mut scratch = Vec::new();
    let mut found = Vec::new();
    while let Some((subject, body, _)) = last.next().await.map_err(|e| err(config, &e))? {
        if is_reserved_subject(&config.subject_prefix, &subject) {
            continue;
        }
        scratch.clear();
        scratch.extend_from_slice(&body);
        let Ok(tick) = decode(&mut parser, &config.subject_prefix, &subject, &mut scratch) else {
            continue;
        };
        let Ok(topic) = Topic::new(&tick.topic) else {
            continue;
        };
        let Ok(state) = publisher.topic(&topic) else {
            continue;
        };
        publisher.publish_assigned(
            &mut bus.batch(),
            &state,
            Seq(tick.seq),
            TsMicros(tick.ts),
            tick.quote,
        );
        found.push(state);
    }
    Ok(found)
}

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
struct Forwarder {
    sink: ConnectedSink,
    election: Election,
    /// Subject per topic, built once: bounded by the bus's max_topics.
    subjects: HashMap<Topic, Subject>,
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

impl Forwarder {
    async fn run(mut self, shutdown: CancellationToken) {
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
        for (topic, body) in buf.drain(..) {
            if failed.is_some() {
                continue;
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
        // node's feed ticks discarded while NATS was away): one unused seq per topic that crosses
        // NATS reaches every client as an `upstream` gap. Books and trades go on locally and must
        // not skip.
        for topic in self.bus.fed_topics() {
            if crosses_nats(topic.topic()) && topic.last().is_some() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tickcast_bus::BusConfig;

    #[test]
    fn only_quotes_cross_nats() {
        let t = |s: &str| Topic::new(s).expect("topic");
        assert!(crosses_nats(&t("ticker.AAPL")) && crosses_nats(&t("fx.EURUSD")));
        assert!(!crosses_nats(&t("book.AAPL")) && !crosses_nats(&t("trade.AAPL")));
        assert!(!crosses_nats(&t("bar.1m.AAPL")));
    }

    #[test]
    fn a_full_queue_drops_ticks_and_counts_them_in_the_sink_stats() {
        let bus = Bus::new(&BusConfig {
            shards: 1,
            inbox_capacity: 16,
            max_topics: 16,
            ..Default::default()
        });
        let topic = bus
            .topic(&Topic::new("ticker.AAPL").expect("topic"))
            .expect("topic state");
        let stats = FeedStats::new("nats-sink", "nats_sink");
        let (tx, mut rx) = mpsc::channel(1);
        let tap = QueueTap {
            tx,
            active: AtomicBool::new(true),
            stats: stats.clone(),
            drop_log: LogLimiter::default(),
        };
        let frame = Frame::text(br#"{"type":"tick"}"#);
        for seq in 1..=3 {
            tap.published(&topic, Seq(seq), TsMicros(seq), &frame);
        }
        assert_eq!(stats.dropped(), 2, "one queued, two dropped");
        let (t, body) = rx.try_recv().expect("the first tick was queued");
        assert_eq!(t.as_str(), "ticker.AAPL");
        assert_eq!(
            &body[..],
            br#"{"type":"tick"}"#,
            "the body is the frame's payload"
        );
    }
}
