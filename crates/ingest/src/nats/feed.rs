//! The NATS feed of a gateway node: subscribes to the ingest tier's subjects and publishes every
//! tick into the local bus with its upstream seq and ts unchanged.
//!
//! It subscribes to the subjects as the JetStream stream republishes them
//! ([`live_prefix`](super::live_prefix)): only appends the stream accepted, in its order, so the
//! appends it refused from a deposed ingest leader never reach a client.
//!
//! On every (re)connect it reads the ingest tier's history stream if it keeps one (every tick
//! accepted in the last `[nats] history_ms`, oldest first, nothing older and no more than this
//! gateway's history keeps), then the stream's last message per subject, and only then reports
//! itself connected, so `/readyz` turns ready with a warm cache and a history: a client that moves
//! here from another gateway recovers what it missed even if this gateway was not running then.
//! Live messages wait in the subscription (async-nats buffers `subscription_capacity` of them)
//! until those reads are done, so every topic's history fills in seq order; the bus keeps the
//! newest seq per topic and drops (and counts as stale) the live messages the reads already
//! covered. A disconnect keeps every client: the feed is marked not connected (not ready),
//! async-nats reconnects and resubscribes, the reconnect is counted, and the reads that follow fill
//! in the ticks missed meanwhile if the history stream still has them; the rest show up as
//! upstream gaps, as does anything the subscription dropped while full.
//!
//! Quotes are decoded and re-encoded; trades and candles pass through as the ingest node encoded
//! them (only their topic, seq and ts are read); book messages are applied to this gateway's own
//! copy of each book (checked against the checksum each carries), and the leader's periodic book
//! snapshots (`<prefix>._snap.<topic>`, also subscribed to) resync a copy that lost sync.
//!
//! Each message's `Tickcast-Epoch` header names the ingest tier's epoch; a topic takes it on its
//! first message and again whenever it changes (the ingest node lost its stream and started a new
//! seq space): the bus then resets the topic and tells its subscribers.

use std::time::Duration;

use async_nats::{ConnectOptions, Event};
use bytes::Bytes;
use futures_util::stream::select_all;
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;

use std::sync::Arc;
use tickcast_bus::HistoryConfig;
use tickcast_bus::{BookUpdate, TopicState};
use tickcast_core::{Epoch, Topic, TsMicros};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{
    carries_books, decode, decode_book, epoch_of, history_stream, is_reserved_subject, live_prefix,
    live_subject, publish_decoded, resync_topic, snapshot_subject, topic_of_subject,
    validate_prefix, validate_stream, NatsError, ReadFrom, StreamReader, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, DEFAULT_URL, MIN_CONNECT_TIMEOUT,
};
use crate::feed::{Feed, FeedContext, FeedError, FeedFuture};
use crate::gaps::{GapTracker, SeqCheck};
use crate::parse::{validate_topic, TickParser};
use crate::publisher::Publisher;
use crate::reject::Reject;
use crate::spec::{millis, FeedConfigError, DEFAULT_MAX_LINE_BYTES, MIN_LINE_BYTES};

/// Most messages published into the bus per batch (one shard wake-up per batch).
const BATCH: usize = 256;
/// Warm-up messages buffered between the JetStream reader and the feed loop.
const WARM_QUEUE: usize = 1024;

/// Default of [`NatsFeedConfig::subscription_capacity`].
pub const DEFAULT_SUBSCRIPTION_CAPACITY: usize = 65_536;

/// Settings of a NATS feed: a `kind = "nats"` entry of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsFeedConfig {
    /// Feed name for logs and metrics.
    pub name: String,
    /// `nats://host:port` (comma-separated for several servers).
    pub url: String,
    /// Subjects to subscribe to, wildcards allowed (`tickcast.>`, `tickcast.ticker.>`).
    pub subjects: Vec<String>,
    /// The ingest node's subject prefix, stripped to get the topic.
    pub subject_prefix: String,
    /// JetStream stream to warm the cache from on every (re)connect; `None` (`stream = ""` in the
    /// file) = no warm-up.
    #[serde(deserialize_with = "empty_is_none")]
    pub stream: Option<String>,
    /// Messages async-nats buffers per subscription; beyond this it drops them (slow consumer).
    pub subscription_capacity: usize,
    /// Largest message body accepted, in bytes.
    pub max_message_bytes: usize,
    /// Time allowed for one connection attempt.
    #[serde(
        rename = "connect_timeout_ms",
        deserialize_with = "millis::deserialize"
    )]
    pub connect_timeout: Duration,
    /// Readiness waits for this feed (connected to NATS and warmed).
    pub required: bool,
    /// Not ready after this long without a tick; `None` (`max_idle_ms = 0`) = off.
    #[serde(rename = "max_idle_ms", deserialize_with = "millis::zero_off")]
    pub max_idle: Option<Duration>,
}

impl Default for NatsFeedConfig {
    fn default() -> Self {
        Self {
            name: "nats".into(),
            url: DEFAULT_URL.into(),
            subjects: vec![format!("{DEFAULT_SUBJECT_PREFIX}.>")],
            subject_prefix: DEFAULT_SUBJECT_PREFIX.into(),
            stream: Some(DEFAULT_STREAM.into()),
            subscription_capacity: DEFAULT_SUBSCRIPTION_CAPACITY,
            max_message_bytes: DEFAULT_MAX_LINE_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            required: true,
            max_idle: None,
        }
    }
}

fn empty_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(|s| (!s.is_empty()).then_some(s))
}

impl NatsFeedConfig {
    /// Checks the settings: a URL, subjects under the prefix, valid names, sane sizes.
    pub fn validate(&self) -> Result<(), FeedConfigError> {
        let feed = &self.name;
        let bad = |field, problem: String| Err(FeedConfigError::new(feed, field, problem));
        FeedConfigError::named(feed)?;
        if self.url.trim().is_empty() {
            return bad("url", "must not be empty".into());
        }
        if self.subjects.is_empty() {
            return bad("subjects", "must not be empty".into());
        }
        validate_prefix(&self.subject_prefix).or_else(|e| bad("subject_prefix", e))?;
        for s in &self.subjects {
            let under_prefix = s
                .strip_prefix(self.subject_prefix.as_str())
                .is_some_and(|rest| rest.starts_with('.'));
            if !under_prefix || s.bytes().any(|b| !b.is_ascii_graphic()) {
                return bad(
                    "subjects",
                    format!(
                        "entry {s:?} must start with \"{}.\" and have no spaces",
                        self.subject_prefix
                    ),
                );
            }
        }
        if let Some(stream) = &self.stream {
            validate_stream(stream).or_else(|e| bad("stream", e))?;
        }
        FeedConfigError::at_least(feed, "subscription_capacity", self.subscription_capacity, 1)?;
        FeedConfigError::at_least(
            feed,
            "max_message_bytes",
            self.max_message_bytes,
            MIN_LINE_BYTES,
        )?;
        let ms = |d: Duration| d.as_millis();
        FeedConfigError::at_least(
            feed,
            "connect_timeout_ms",
            ms(self.connect_timeout),
            ms(MIN_CONNECT_TIMEOUT),
        )
    }
}

/// The NATS feed.
pub struct NatsFeed {
    config: NatsFeedConfig,
}

impl NatsFeed {
    /// Validates `config`.
    pub fn new(config: NatsFeedConfig) -> Result<Self, FeedError> {
        config.validate()?;
        Ok(Self { config })
    }
}

impl Feed for NatsFeed {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn run(self: Box<Self>, ctx: FeedContext) -> FeedFuture {
        Box::pin(run(self.config, ctx))
    }
}

/// From the warm-up reader to the feed loop.
enum Warm {
    /// A message read, `live` when its subject is under the live prefix (the history stream's).
    Tick {
        live: bool,
        subject: String,
        body: Bytes,
        epoch: Option<String>,
    },
    Done(Result<u64, NatsError>),
}

/// The feed loop's publishing state.
struct Ingest {
    publisher: Publisher,
    parser: TickParser,
    gaps: GapTracker,
    scratch: Vec<u8>,
    prefix: String,
    /// Where the stream republishes what it stored: the live subjects ([`super::live_prefix`]).
    live_prefix: String,
    max_message_bytes: usize,
    /// The epoch last adopted per topic id: the per-message check compares against it, no lock.
    epochs: HashMap<u32, Epoch>,
}

impl Ingest {
    /// Publishes one message into `batch` (`live`: as republished by the stream; else read from
    /// the stream itself); returns whether it was a valid tick.
    fn handle(
        &mut self,
        batch: &mut tickcast_bus::PublishBatch<'_>,
        live: bool,
        subject: &str,
        body: &[u8],
        epoch: Option<&str>,
    ) -> bool {
        let prefix = if live {
            &self.live_prefix
        } else {
            &self.prefix
        };
        if is_reserved_subject(prefix, subject) {
            return false; // the ingest tier's epoch record or leader heartbeat, not a topic
        }
        let result = self.try_handle(batch, live, subject, body, epoch);
        if let Err(e) = &result {
            self.publisher.stats().record_reject(&subject, 0, e);
        }
        result.is_ok()
    }

    fn try_handle(
        &mut self,
        batch: &mut tickcast_bus::PublishBatch<'_>,
        live: bool,
        subject: &str,
        body: &[u8],
        epoch: Option<&str>,
    ) -> Result<(), Reject> {
        if body.len() > self.max_message_bytes {
            return Err(Reject::TooLong {
                max: self.max_message_bytes,
            });
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(body);
        let prefix = if live {
            &self.live_prefix
        } else {
            &self.prefix
        };
        let name = topic_of_subject(prefix, subject)
            .ok_or_else(|| Reject::BadTopic(format!("subject {subject:?} has no topic")))?;
        let (name, resync) = match resync_topic(name) {
            Some(book) => (book, true),
            None => (name, false),
        };
        if resync || carries_books(name) {
            let mut scratch = std::mem::take(&mut self.scratch);
            let result = self.book(batch, subject, name, resync, &mut scratch, epoch);
            self.scratch = scratch;
            return result;
        }
        let msg = decode(&mut self.parser, subject, name, &mut self.scratch)?;
        let topic = resolve(&mut self.publisher, name)?;
        self.sequence(&topic, msg.seq.0, epoch)?;
        // Older or duplicate seqs (warm-up racing live data, overlapping subjects) go to the bus
        // anyway: it keeps the newest per topic and counts the rest as stale.
        publish_decoded(&mut self.publisher, batch, &topic, msg, body);
        Ok(())
    }

    /// Applies a `book` message to this gateway's copy of the book (see
    /// [`Publisher::publish_book_at`]): a copy that lost sync (a missed delta, a checksum that
    /// differs) is not served until the leader's next snapshot of the book, the `resync` ones.
    fn book(
        &mut self,
        batch: &mut tickcast_bus::PublishBatch<'_>,
        subject: &str,
        name: &str,
        resync: bool,
        scratch: &mut [u8],
        epoch: Option<&str>,
    ) -> Result<(), Reject> {
        let msg = decode_book(&mut self.parser, subject, name, resync, scratch)?;
        let topic = resolve(&mut self.publisher, name)?;
        if resync {
            // Beside the stream of deltas, so its seq says nothing of gaps in them.
            self.adopt_epoch(&topic, epoch)?;
        } else {
            self.sequence(&topic, msg.upstream.seq.0, epoch)?;
        }
        let update = BookUpdate {
            snapshot: msg.line.snapshot,
            bids: &msg.line.bids,
            asks: &msg.line.asks,
        };
        if let Err(e) = self
            .publisher
            .publish_book_at(batch, &topic, update, msg.upstream, msg.ts)
        {
            // Counted by the bus (tickcast_book_refusals_total); the book waits for a snapshot.
            tracing::debug!(topic = name, seq = msg.upstream.seq.0, error = %e, "book update not applied");
        }
        Ok(())
    }

    /// Takes the message's epoch for `topic` when it names one.
    fn adopt_epoch(&mut self, topic: &Arc<TopicState>, epoch: Option<&str>) -> Result<(), Reject> {
        match epoch {
            Some(epoch) => adopt(
                &mut self.epochs,
                &mut self.gaps,
                self.publisher.bus(),
                topic,
                epoch,
            ),
            None => Ok(()),
        }
    }

    /// Takes the message's epoch for `topic` and checks its seq against the last one seen: a
    /// jump is an upstream gap, counted and logged here (the bus announces it to clients).
    fn sequence(
        &mut self,
        topic: &Arc<TopicState>,
        seq: u64,
        epoch: Option<&str>,
    ) -> Result<(), Reject> {
        let key = u64::from(topic.id().0);
        self.adopt_epoch(topic, epoch)?;
        if let SeqCheck::Gap { missed } = self.gaps.check_forward(key, seq) {
            self.publisher.stats().record_upstream_gap(
                topic.topic().as_str(),
                format_args!("seq {seq} follows {}: {missed} missed", seq - missed - 1),
            );
        }
        Ok(())
    }
}

/// The configured subjects and, for each that does not already cover them, the subjects of the
/// leader's book snapshots of the same topics (`tickcast.book.>` → also `tickcast._snap.book.>`).
fn with_resync_subjects(prefix: &str, subjects: &[String]) -> Vec<String> {
    let mut all = subjects.to_vec();
    for s in subjects {
        let rest = s.get(prefix.len() + 1..).unwrap_or_default();
        if !rest.is_empty() && rest != ">" {
            all.push(snapshot_subject(prefix, rest));
        }
    }
    all
}

/// The bus topic named `name`, created on its first message (within the topic limit).
fn resolve(publisher: &mut Publisher, name: &str) -> Result<Arc<TopicState>, Reject> {
    if let Some(t) = publisher.cached(name) {
        return Ok(t.clone());
    }
    validate_topic(name)?;
    let topic = Topic::new(name).map_err(|e| Reject::BadTopic(e.to_string()))?;
    publisher
        .topic(&topic)
        .map_err(|e| Reject::TopicLimit(e.to_string()))
}

/// Moves `topic` to the ingest tier's epoch `epoch` (named by the message) when it is in
/// another: the ingest node started a new seq space (its stream was lost), or this is the topic's
/// first message here. Ticks without the header (an older ingest node) keep the gateway's own
/// epoch. `epochs` is the epoch last adopted per topic id, so the per-message check takes no lock.
fn adopt(
    epochs: &mut HashMap<u32, Epoch>,
    gaps: &mut GapTracker,
    bus: &tickcast_bus::Bus,
    topic: &tickcast_bus::TopicState,
    epoch: &str,
) -> Result<(), Reject> {
    let id = topic.id().0;
    if epochs.get(&id).is_some_and(|e| e.as_str() == epoch) {
        return Ok(());
    }
    let epoch = Epoch::new(epoch).map_err(|_| Reject::Unsupported("Tickcast-Epoch header"))?;
    let had_data = topic.has_data();
    if bus.reset_topic(topic, &epoch) {
        gaps.forget(u64::from(id));
        if had_data {
            tracing::warn!(topic = %topic.topic(), epoch = %epoch.as_str(), "the ingest tier started a new seq space: epoch changed, history dropped, clients told");
        }
    }
    epochs.insert(id, epoch);
    Ok(())
}

async fn run(config: NatsFeedConfig, ctx: FeedContext) -> Result<(), FeedError> {
    let stats = ctx.publisher.stats().clone();
    let name = config.name.clone();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    // Background connect: a gateway starting before NATS keeps serving (not ready) and connects
    // when NATS comes up; reconnects never give up.
    let client = ConnectOptions::new()
        .name(format!("tickcast-gateway/{name}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(config.connect_timeout)
        .subscription_capacity(config.subscription_capacity)
        .event_callback(move |event| {
            let _ = events_tx.send(event);
            std::future::ready(())
        })
        .connect(config.url.as_str())
        .await
        .map_err(|e| FeedError::Config {
            feed: name.clone(),
            reason: format!("url {:?}: {e}", config.url),
        })?;
    // Live data is what the stream stored, as it republishes it: never an append it refused.
    let live_prefix = live_prefix(&config.subject_prefix);
    let subjects = with_resync_subjects(&config.subject_prefix, &config.subjects);
    let mut subs = Vec::new();
    for subject in &subjects {
        let live_subject = live_subject(&config.subject_prefix, subject);
        let sub = client
            .subscribe(live_subject)
            .await
            .map_err(|e| FeedError::Config {
                feed: name.clone(),
                reason: format!("subject {subject:?}: {e}"),
            })?;
        subs.push(sub);
    }
    let mut live = select_all(subs);
    let js = async_nats::jetstream::new(client.clone());
    let (warm_tx, mut warm_rx) = mpsc::channel::<(u64, Warm)>(WARM_QUEUE);
    let mut warm_task: Option<JoinHandle<()>> = None;
    // Warm-ups are numbered so a late message of an aborted one is recognised and ignored for
    // readiness (its ticks are still valid data).
    let mut warm_round = 0u64;
    let mut connected_before = false;
    let mut ingest = Ingest {
        publisher: ctx.publisher,
        parser: TickParser::default(),
        gaps: GapTracker::default(),
        scratch: Vec::with_capacity(512),
        prefix: config.subject_prefix.clone(),
        live_prefix,
        max_message_bytes: config.max_message_bytes,
        epochs: HashMap::new(),
    };
    let bus = ingest.publisher.bus().clone();
    let history_from = history_read(bus.history_config());
    // While a warm-up reads the stream, live messages wait in the subscription: histories fill in
    // seq order. From the start and from a disconnect on, live data waits for the warm-up the
    // (re)connect brings, or a live tick could overtake the history it follows.
    let mut warming = config.stream.is_some();
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            Some(event) = events.recv() => match event {
                Event::Connected => {
                    if connected_before {
                        stats.record_reconnect();
                        tracing::info!(feed = %name, url = %config.url, "NATS reconnected");
                    } else {
                        tracing::info!(feed = %name, url = %config.url, "NATS connected");
                    }
                    connected_before = true;
                    match &config.stream {
                        None => stats.set_connected(true),
                        Some(stream) => {
                            if let Some(t) = warm_task.take() {
                                t.abort();
                            }
                            warm_round += 1;
                            warming = true;
                            let plan = WarmPlan {
                                stream: stream.clone(),
                                history: history_from,
                                prefix: config.subject_prefix.clone(),
                                filters: subjects.clone(),
                            };
                            warm_task = Some(tokio::spawn(warm_up(
                                js.clone(),
                                plan,
                                warm_round,
                                warm_tx.clone(),
                            )));
                        }
                    }
                }
                Event::Disconnected => {
                    stats.set_connected(false);
                    warming = config.stream.is_some();
                    tracing::warn!(feed = %name, url = %config.url, "NATS disconnected; clients kept, reconnecting");
                }
                Event::SlowConsumer(sid) => {
                    tracing::warn!(feed = %name, sid, "NATS subscription overflowed (slow consumer): messages dropped, seen as gaps");
                }
                other => tracing::info!(feed = %name, event = %other, "NATS event"),
            },
            Some(msg) = live.next(), if !warming => {
                let mut batch = bus.batch();
                let mut n = u64::from(ingest.handle(&mut batch, true, msg.subject.as_str(), &msg.payload, epoch_of(msg.headers.as_ref())));
                // Drain what is already buffered into the same batch: one shard wake-up per burst.
                for _ in 1..BATCH {
                    match live.next().now_or_never() {
                        Some(Some(m)) => n += u64::from(ingest.handle(&mut batch, true, m.subject.as_str(), &m.payload, epoch_of(m.headers.as_ref()))),
                        _ => break,
                    }
                }
                drop(batch);
                if n > 0 {
                    stats.record_ticks(n, TsMicros::now());
                }
            }
            Some((round, warm)) = warm_rx.recv() => match warm {
                Warm::Tick { live, subject, body, epoch } => {
                    let mut batch = bus.batch();
                    ingest.handle(&mut batch, live, &subject, &body, epoch.as_deref());
                    // The rest of what the reader already sent goes in the same batch.
                    for _ in 1..BATCH {
                        match warm_rx.try_recv() {
                            Ok((_, Warm::Tick { live, subject, body, epoch })) => {
                                ingest.handle(&mut batch, live, &subject, &body, epoch.as_deref());
                            }
                            Ok((round, Warm::Done(result))) => {
                                drop(batch);
                                if round == warm_round {
                                    warming = false;
                                    warmed(&name, result, &client, &stats);
                                }
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                Warm::Done(result) if round == warm_round => {
                    warming = false;
                    warmed(&name, result, &client, &stats);
                }
                Warm::Done(_) => {}
            },
        }
    }
    if let Some(t) = warm_task {
        t.abort();
    }
    stats.set_connected(false);
    Ok(())
}

/// Where a warm-up starts reading the history stream: nothing older than the longest history this
/// gateway keeps (a tick it would have expired already is no use; no age limit when some history
/// has none), no more than its largest history per topic times the topics, not at all when no
/// topic keeps history.
fn history_read(history: &HistoryConfig) -> Option<ReadFrom> {
    let limits: Vec<_> = std::iter::once(history.default)
        .chain(history.channels.iter().map(|(_, l)| *l))
        .filter(|l| l.size > 0)
        .collect();
    let per_subject = limits.iter().map(|l| l.size as u64).max()?;
    let within = if limits.iter().any(|l| l.ttl.is_zero()) {
        None
    } else {
        limits.iter().map(|l| l.ttl).max()
    };
    Some(ReadFrom::Recent {
        within,
        per_subject,
    })
}

/// A warm-up ended: logs how, and marks the feed connected if NATS still is.
fn warmed(
    name: &str,
    result: Result<u64, NatsError>,
    client: &async_nats::Client,
    stats: &crate::stats::FeedStats,
) {
    match result {
        Ok(n) => {
            tracing::info!(feed = %name, messages = n, "cache and history warmed from JetStream")
        }
        // No stream yet (ingest not started) or JetStream trouble: live data still flows, so the
        // feed counts as connected.
        Err(e) => tracing::warn!(feed = %name, error = %e, "no JetStream warm-up; live data only"),
    }
    if client.connection_state() == async_nats::connection::State::Connected {
        stats.set_connected(true);
    }
}

/// What a warm-up reads: the history stream from `history` on (when this gateway keeps history),
/// then the stream's last message per subject, for every filter.
#[derive(Debug, Clone)]
struct WarmPlan {
    stream: String,
    history: Option<ReadFrom>,
    prefix: String,
    filters: Vec<String>,
}

/// Reads what `plan` says and sends it, then `Done` with the message count. The history goes
/// first, oldest first, so every topic's history fills in seq order; the last ticks then add the
/// topics that were quiet for longer than the history keeps (the rest are stale by then). A missing
/// history stream (an ingest tier that keeps none) only costs the history.
async fn warm_up(
    js: async_nats::jetstream::Context,
    plan: WarmPlan,
    round: u64,
    tx: mpsc::Sender<(u64, Warm)>,
) {
    let mut n = 0;
    if let Some(from) = plan.history {
        let history = history_stream(&plan.stream);
        for filter in &plan.filters {
            let live_filter = live_subject(&plan.prefix, filter);
            match read(&js, &history, &live_filter, from, true, round, &tx).await {
                Ok(Some(k)) => n += k,
                Ok(None) => return,
                Err(e) => {
                    tracing::info!(stream = %history, error = %e, "no history from JetStream; the latest tick per topic only");
                    break;
                }
            }
        }
    }
    let mut result = Ok(());
    for filter in &plan.filters {
        match read(
            &js,
            &plan.stream,
            filter,
            ReadFrom::LastPerSubject,
            false,
            round,
            &tx,
        )
        .await
        {
            Ok(Some(k)) => n += k,
            Ok(None) => return,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let _ = tx.send((round, Warm::Done(result.map(|()| n)))).await;
}

/// Sends the messages of `filter` in `stream` from `from` on; the count sent, or `None` when the
/// feed loop is gone.
async fn read(
    js: &async_nats::jetstream::Context,
    stream: &str,
    filter: &str,
    from: ReadFrom,
    live: bool,
    round: u64,
    tx: &mpsc::Sender<(u64, Warm)>,
) -> Result<Option<u64>, NatsError> {
    let mut reader = StreamReader::open(js, stream, filter, from).await?;
    let mut n = 0;
    loop {
        match reader.next().await {
            Ok(Some((subject, body, epoch))) => {
                n += 1;
                let tick = Warm::Tick {
                    live,
                    subject,
                    body,
                    epoch,
                };
                if tx.send((round, tick)).await.is_err() {
                    return Ok(None);
                }
            }
            Ok(None) => return Ok(Some(n)),
            Err(error) => {
                return Err(NatsError::Stream {
                    stream: stream.to_string(),
                    error,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_by_the_config_and_the_feed_alike() {
        NatsFeedConfig::default().validate().unwrap();
        let problem = |f: &dyn Fn(&mut NatsFeedConfig)| {
            let mut c = NatsFeedConfig::default();
            f(&mut c);
            let from_config = c.validate().unwrap_err();
            let from_feed = NatsFeed::new(c).err().expect("refused").to_string();
            assert!(from_feed.contains(&from_config.problem), "{from_feed}");
            from_config.to_string()
        };
        assert_eq!(
            problem(&|c| c.url = " ".into()),
            "feed nats: url must not be empty"
        );
        assert!(problem(&|c| c.subjects = vec!["other.>".into()]).contains("\"tickcast.\""));
        assert!(problem(&|c| c.subject_prefix = "a b".into()).contains("subject_prefix"));
        assert!(problem(&|c| c.stream = Some("A.B".into())).contains("stream \"A.B\""));
        assert!(problem(&|c| c.subscription_capacity = 0).contains("subscription_capacity is 0"));
        assert!(problem(&|c| c.max_message_bytes = 63).contains("max_message_bytes is 63"));
        assert!(problem(&|c| c.connect_timeout = Duration::from_millis(99))
            .contains("connect_timeout_ms is 99, must be >= 100"));
    }

    #[test]
    fn a_warm_up_reads_no_further_back_than_the_longest_history_kept() {
        use tickcast_bus::HistoryLimits;
        let limits = |size, secs| HistoryLimits {
            size,
            ttl: Duration::from_secs(secs),
        };
        let mut h = HistoryConfig {
            default: limits(100, 60),
            channels: vec![
                ("trade".into(), limits(1000, 300)),
                ("bar".into(), limits(0, 900)),
            ],
        };
        // A channel without history (bar) does not widen the read.
        let recent = |within, per_subject| {
            Some(ReadFrom::Recent {
                within,
                per_subject,
            })
        };
        assert_eq!(
            history_read(&h),
            recent(Some(Duration::from_secs(300)), 1000)
        );
        h.channels[0].1.ttl = Duration::ZERO;
        assert_eq!(history_read(&h), recent(None, 1000));
        h.default.size = 0;
        h.channels[0].1.size = 0;
        assert_eq!(history_read(&h), None);
    }

    #[test]
    fn book_snapshot_subjects_are_added_unless_covered() {
        let subjects = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            with_resync_subjects("tickcast", &subjects(&["tickcast.>"])),
            subjects(&["tickcast.>"])
        );
        assert_eq!(
            with_resync_subjects("a.b", &subjects(&["a.b.book.>", "a.b.ticker.AAPL"])),
            subjects(&[
                "a.b.book.>",
                "a.b.ticker.AAPL",
                "a.b._snap.book.>",
                "a.b._snap.ticker.AAPL"
            ])
        );
    }

    #[test]
    fn an_empty_stream_means_no_warm_up() {
        let c: NatsFeedConfig = serde_json::from_str(r#"{"stream": ""}"#).unwrap();
        assert_eq!(c.stream, None);
        let c: NatsFeedConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.stream.as_deref(), Some(DEFAULT_STREAM));
        assert_eq!(c.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    }
}
