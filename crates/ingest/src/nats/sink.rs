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
//!
//! This module sets the sink up (config, the bus tap, connecting, the epoch); `forward`
//! is the task that leads and appends, `stream` what is read from and written to the stream.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::{Client, ConnectOptions, Event};
use bytes::Bytes;
use tickcast_bus::{Bus, BusTap, TopicState};
use tickcast_core::{Epoch, Frame, Seq, Topic, TsMicros};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::election::LeaseTiming;
use super::forward::{Forwarder, ForwarderParts};
use super::stream::{ensure_stream, err, fresh_epoch, last_heartbeat, store_epoch, stored_epoch};
use super::{leader_subject, live_prefix, NatsError};
use crate::reject::LogLimiter;
use crate::stats::FeedStats;

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
    /// How long the history stream keeps every tick (what a gateway that starts or reconnects late
    /// fills its history from); zero = no history stream.
    pub history_age: Duration,
    /// Most bytes the history stream holds; the oldest ticks go first beyond it.
    pub history_max_bytes: u64,
    /// Ticks queued between the bus and the NATS client; beyond this, ticks are dropped and counted.
    pub queue_capacity: usize,
    /// Time allowed to connect at startup (a NATS that cannot be reached fails startup).
    pub connect_timeout: Duration,
    /// How often the leader appends a snapshot of each book it updated to the book's snapshot
    /// subject: how long a gateway's copy of a book that lost sync (a gateway that started late,
    /// a missed delta) goes unserved at most.
    pub book_snapshot_every: Duration,
    /// How the leader's lease is renewed and when a standby takes over.
    pub lease: LeaseTiming,
    /// This node's name in the leader's heartbeats and logs.
    pub node: String,
}

/// Default of [`NatsSinkConfig::history_age`]: none. Storing every tick a second time costs
/// nats-server a fifth to a half more CPU and lengthens the live path's tail (docs/scaling-out.md),
/// so it is asked for.
pub const DEFAULT_HISTORY_AGE: Duration = Duration::ZERO;
/// Default of [`NatsSinkConfig::history_max_bytes`]: 256 MiB.
pub const DEFAULT_HISTORY_MAX_BYTES: u64 = 256 << 20;
/// Smallest non-zero [`NatsSinkConfig::history_age`] (JetStream's own minimum is 100 ms).
pub const MIN_HISTORY_AGE: Duration = Duration::from_secs(1);

/// Default of [`NatsSinkConfig::book_snapshot_every`]: a second.
pub const DEFAULT_BOOK_SNAPSHOT_EVERY: Duration = Duration::from_secs(1);
/// Bounds of [`NatsSinkConfig::book_snapshot_every`].
pub const BOOK_SNAPSHOT_EVERY_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(60));

/// Default of [`NatsSinkConfig::queue_capacity`].
pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;

impl Default for NatsSinkConfig {
    fn default() -> Self {
        Self {
            url: super::DEFAULT_URL.into(),
            subject_prefix: super::DEFAULT_SUBJECT_PREFIX.into(),
            stream: super::DEFAULT_STREAM.into(),
            storage: StreamStorage::File,
            history_age: DEFAULT_HISTORY_AGE,
            history_max_bytes: DEFAULT_HISTORY_MAX_BYTES,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            connect_timeout: super::DEFAULT_CONNECT_TIMEOUT,
            book_snapshot_every: DEFAULT_BOOK_SNAPSHOT_EVERY,
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
    pub(super) leader: AtomicBool,
    pub(super) term: AtomicU64,
    pub(super) takeovers: AtomicU64,
    pub(super) lost_attempts: AtomicU64,
    pub(super) step_downs: AtomicU64,
    pub(super) refused_appends: AtomicU64,
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
pub(super) type Forward = (Topic, Bytes);

/// The bus tap: a non-blocking push onto the bounded queue, while this node leads.
#[derive(Debug)]
pub(super) struct QueueTap {
    tx: mpsc::Sender<Forward>,
    /// Off while standby: the ticks a takeover loads from the stream go into the bus through here
    /// too, and must not be appended again.
    pub(super) active: AtomicBool,
    /// The sink's stats: drops count there, so they reach `/metrics` (`tickcast_feed_dropped_total`).
    stats: Arc<FeedStats>,
    drop_log: LogLimiter,
}

impl BusTap for QueueTap {
    fn published(&self, topic: &TopicState, _seq: Seq, _ts: TsMicros, frame: &Frame) {
        if !self.active.load(Ordering::Acquire) {
            return;
        }
        if self
            .tx
            .try_send((topic.topic().clone(), body_of(frame)))
            .is_err()
        {
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

/// The body a frame's message goes to NATS with: its payload, a slice of the same bytes (no copy,
/// no re-encoding).
pub(super) fn body_of(frame: &Frame) -> Bytes {
    let header = frame.len() - frame.payload().len();
    frame.bytes().slice(header..)
}

/// A sink connected to NATS, its stream ready and its epoch known, not forwarding yet: build the
/// bus with [`epoch`](Self::epoch), then [`start`](Self::start) it.
pub struct ConnectedSink {
    pub(super) config: NatsSinkConfig,
    pub(super) client: Client,
    pub(super) js: Context,
    pub(super) events_rx: mpsc::UnboundedReceiver<Event>,
    pub(super) stats: Arc<FeedStats>,
    pub(super) epoch: Epoch,
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
            Forwarder::new(ForwarderParts {
                sink: self,
                heard,
                beat_seq,
                beats,
                rx,
                tap: tap.clone(),
                bus: bus.clone(),
                leader: leader.clone(),
            })
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
