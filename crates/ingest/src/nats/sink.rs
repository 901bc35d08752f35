//! The NATS sink of an ingest node: every tick the bus accepts goes to `<prefix>.<topic>`, body =
//! the encoded tick JSON (the frame payload, not re-serialized), through a bounded queue so a slow
//! or absent NATS never blocks the feeds (overflow drops the tick and counts it).
//!
//! At start it creates (or reuses) the JetStream stream capturing `<prefix>.>` with one message per
//! subject, which is what gateways warm their cache from, and resumes every topic's seq from it, so
//! a restarted ingest node continues the sequence instead of starting over at 1 (which every
//! gateway would drop as stale). The epoch of those seqs lives in the same stream, as the last
//! message of the reserved subject `<prefix>._epoch`: its lifetime is the stream's, so a stream
//! that is new or was lost means a new epoch (made and stored here), and every message names it in
//! the `Tickcast-Epoch` header for gateways to adopt.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use async_nats::{Client, ConnectOptions, Event, HeaderMap, Subject};
use bytes::Bytes;
use tickcast_bus::{Bus, BusTap, TopicState};
use tickcast_core::{Epoch, Frame, Seq, Topic, TsMicros};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{
    decode, epoch_subject, is_epoch_subject, subject_of, LastPerSubject, NatsError, EPOCH_HEADER,
};
use crate::parse::TickParser;
use crate::publisher::Publisher;
use crate::reject::LogLimiter;
use crate::stats::FeedStats;

/// Most messages handed to the NATS client per wake-up of the forwarding task.
const FORWARD_BATCH: usize = 256;
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
        }
    }
}

/// A running sink.
pub struct NatsSink {
    /// `connected`, ticks forwarded and reconnects, under the name `nats-sink`.
    pub stats: Arc<FeedStats>,
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

/// The bus tap: a non-blocking push onto the bounded queue.
#[derive(Debug)]
struct QueueTap {
    tx: mpsc::Sender<Forward>,
    /// The sink's stats: drops count there, so they reach `/metrics` (`tickcast_feed_dropped_total`).
    stats: Arc<FeedStats>,
    drop_log: LogLimiter,
}

impl BusTap for QueueTap {
    fn published(&self, topic: &TopicState, _seq: Seq, _ts: TsMicros, frame: &Frame) {
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

/// A sink connected to NATS, its stream ready and its epoch known, not forwarding yet: build the
/// bus with [`epoch`](Self::epoch), then [`start`](Self::start) it.
pub struct ConnectedSink {
    config: NatsSinkConfig,
    client: Client,
    js: async_nats::jetstream::Context,
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
            store_epoch(&js, &config, &epoch).await?;
            tracing::info!(stream = %config.stream, epoch = %epoch.as_str(), "no epoch in the stream (new or lost): a new seq space starts");
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

    /// Resumes seqs into `bus` (built with [`epoch`](Self::epoch)), then installs the tap and
    /// starts forwarding. Call before the feeds start, so no tick is published with a seq from
    /// scratch.
    pub async fn start(
        self,
        bus: &Arc<Bus>,
        shutdown: CancellationToken,
    ) -> Result<NatsSink, NatsError> {
        let config = &self.config;
        if bus.epoch() != &self.epoch {
            return Err(NatsError::Stream {
                stream: config.stream.clone(),
                error: format!(
                    "the bus has epoch {:?}, the stream {:?}",
                    bus.epoch().as_str(),
                    self.epoch.as_str()
                ),
            });
        }
        let resumed = resume(&self.js, config, bus, &self.stats).await?;
        tracing::info!(url = %config.url, stream = %config.stream, topics = resumed, "NATS sink ready; seqs resumed from the stream");

        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let stats = self.stats.clone();
        let tap = Arc::new(QueueTap {
            tx,
            stats: stats.clone(),
            drop_log: LogLimiter::default(),
        });
        if !bus.set_tap(tap.clone()) {
            return Err(NatsError::TapInUse);
        }
        let task = tokio::spawn(forward(self, rx, shutdown));
        Ok(NatsSink { stats, task, tap })
    }
}

/// Creates the last-value stream, or keeps the one that exists.
async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    config: &NatsSinkConfig,
) -> Result<(), NatsError> {
    js.get_or_create_stream(StreamConfig {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        // Only the latest tick of each topic matters: older ones are superseded.
        max_messages_per_subject: 1,
        storage: match config.storage {
            StreamStorage::File => StorageType::File,
            StreamStorage::Memory => StorageType::Memory,
        },
        ..Default::default()
    })
    .await
    .map_err(|e| NatsError::Stream {
        stream: config.stream.clone(),
        error: e.to_string(),
    })?;
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
async fn stored_epoch(
    js: &async_nats::jetstream::Context,
    config: &NatsSinkConfig,
) -> Result<Option<Epoch>, NatsError> {
    let err = |e: &dyn std::fmt::Display| NatsError::Stream {
        stream: config.stream.clone(),
        error: e.to_string(),
    };
    let stream = js.get_stream(&config.stream).await.map_err(|e| err(&e))?;
    let subject = epoch_subject(&config.subject_prefix);
    match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(msg) => {
            let text = std::str::from_utf8(&msg.payload).map_err(|e| err(&e))?;
            Epoch::new(text.trim())
                .map(Some)
                .map_err(|e| err(&format!("{subject}: {e}")))
        }
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(err(&e)),
    }
}

/// Stores `epoch` as the last message of the reserved subject, waiting for JetStream's ack.
async fn store_epoch(
    js: &async_nats::jetstream::Context,
    config: &NatsSinkConfig,
    epoch: &Epoch,
) -> Result<(), NatsError> {
    let err = |e: &dyn std::fmt::Display| NatsError::Stream {
        stream: config.stream.clone(),
        error: e.to_string(),
    };
    let body = Bytes::copy_from_slice(epoch.as_str().as_bytes());
    js.publish(epoch_subject(&config.subject_prefix), body)
        .await
        .map_err(|e| err(&e))?
        .await
        .map_err(|e| err(&e))?;
    Ok(())
}

/// Loads the stream's last tick of every topic into `bus` (its cache and seq counter); returns how
/// many topics it found.
async fn resume(
    js: &async_nats::jetstream::Context,
    config: &NatsSinkConfig,
    bus: &Arc<Bus>,
    stats: &Arc<FeedStats>,
) -> Result<u64, NatsError> {
    let filter = format!("{}.>", config.subject_prefix);
    let mut last = LastPerSubject::open(js, &config.stream, &filter).await?;
    let mut publisher = Publisher::new(bus.clone(), stats.clone());
    let mut parser = TickParser::default();
    let mut scratch = Vec::new();
    let mut n = 0;
    while let Some((subject, body, _)) = last.next().await.map_err(|error| NatsError::Stream {
        stream: config.stream.clone(),
        error,
    })? {
        if is_epoch_subject(&config.subject_prefix, &subject) {
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
        n += 1;
    }
    Ok(n)
}

/// Moves queued ticks to NATS until shutdown, then flushes.
async fn forward(
    sink: ConnectedSink,
    mut rx: mpsc::Receiver<Forward>,
    shutdown: CancellationToken,
) {
    let ConnectedSink {
        config,
        client,
        js,
        events_rx: mut events,
        stats,
        epoch,
    } = sink;
    // Subject per topic, built once: bounded by the bus's max_topics.
    let mut subjects: HashMap<Topic, Subject> = HashMap::new();
    // Every message names the epoch of its seq, so a gateway adopts a new one at its first tick.
    let mut headers = HeaderMap::new();
    headers.insert(EPOCH_HEADER, epoch.as_str());
    let mut buf = Vec::with_capacity(FORWARD_BATCH);
    let mut seen_connect = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(event) = events.recv() => match event {
                Event::Connected if seen_connect => {
                    tracing::info!(url = %config.url, "NATS sink reconnected");
                    // A NATS restarted without its store lost the stream: create it again, and
                    // store the epoch there again (the seqs go on, so the epoch does too).
                    if let Err(e) = ensure_stream(&js, &config).await {
                        tracing::warn!(error = %e, "cannot recreate the last-value stream");
                    } else if let Err(e) = restore_epoch(&js, &config, &epoch).await {
                        tracing::warn!(error = %e, "cannot store the epoch in the stream again");
                    }
                }
                Event::Connected => seen_connect = true,
                Event::Disconnected => tracing::warn!(url = %config.url, "NATS sink disconnected; ticks queue, then drop"),
                other => tracing::debug!(event = %other, "NATS sink event"),
            },
            n = rx.recv_many(&mut buf, FORWARD_BATCH) => {
                if n == 0 {
                    break;
                }
                for (topic, body) in buf.drain(..) {
                    let subject = subjects
                        .entry(topic)
                        .or_insert_with_key(|t| Subject::from(subject_of(&config.subject_prefix, t.as_str())))
                        .clone();
                    // Errors only when the client is closed, which happens at shutdown.
                    if client.publish_with_headers(subject, headers.clone(), body).await.is_err() {
                        break;
                    }
                }
                stats.record_ticks(n as u64, TsMicros::now());
            }
        }
    }
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, client.flush()).await;
    stats.set_connected(false);
}

/// Stores `epoch` in the stream unless it holds it already (it was recreated empty).
async fn restore_epoch(
    js: &async_nats::jetstream::Context,
    config: &NatsSinkConfig,
    epoch: &Epoch,
) -> Result<(), NatsError> {
    if stored_epoch(js, config).await?.as_ref() == Some(epoch) {
        return Ok(());
    }
    store_epoch(js, config, epoch).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickcast_bus::BusConfig;

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
