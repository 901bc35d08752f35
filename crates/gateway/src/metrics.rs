//! Prometheus metrics of the gateway, the bus and the feeds, with bounded labels only (no per-client
//! or per-topic label). Hot-path counts are kept in shard-local plain integers and added here in
//! batches (see `shard.rs`), so counting costs no shared atomic per message.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use std::sync::{Arc, RwLock};

use tickcast_bus::Bus;
use tickcast_core::protocol::Recovery;
use tickcast_core::{GapReason, NotRecovered};

use crate::hooks::MetricsSource;

/// Why a WebSocket session ended; the `reason` label of `tickcast_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent a close frame or closed the socket.
    Client,
    /// The client broke the protocol (1002/1007/1009).
    Protocol,
    /// The overflow policy or the lag limit disconnected it (1008).
    SlowConsumer,
    /// It did not answer pings.
    Idle,
    /// A socket error.
    Io,
    /// Server shutdown (1001).
    Shutdown,
    /// It kept sending over its message rate (1008).
    RateLimited,
    /// Its token expired while connected (1008).
    TokenExpired,
}

impl CloseReason {
    /// Every reason, so each label is exported (at 0) before its first event.
    pub const ALL: [CloseReason; 8] = [
        CloseReason::Client,
        CloseReason::Protocol,
        CloseReason::SlowConsumer,
        CloseReason::Idle,
        CloseReason::Io,
        CloseReason::Shutdown,
        CloseReason::RateLimited,
        CloseReason::TokenExpired,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Protocol => "protocol_error",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::Idle => "idle_timeout",
            CloseReason::Io => "io_error",
            CloseReason::Shutdown => "shutdown",
            CloseReason::RateLimited => "rate_limited",
            CloseReason::TokenExpired => "token_expired",
        }
    }
}

/// How a lingering close ended; the `outcome` label of `tickcast_lingering_closes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LingerOutcome {
    /// The client closed its side (end of stream): everything it sent was read, the expected end.
    ClientClosed,
    /// The client sent nothing for `lingering_timeout` without closing.
    Idle,
    /// The client was still sending when `lingering_time` ran out.
    TimeLimit,
    /// The client sent `lingering_max_bytes` without closing.
    ByteLimit,
    /// Reading failed (the client reset the connection).
    Error,
    /// The shard stopped (shutdown grace over) while the connection lingered.
    Shutdown,
}

impl LingerOutcome {
    /// Every outcome, so each label is exported (at 0) before its first event.
    pub const ALL: [LingerOutcome; 6] = [
        LingerOutcome::ClientClosed,
        LingerOutcome::Idle,
        LingerOutcome::TimeLimit,
        LingerOutcome::ByteLimit,
        LingerOutcome::Error,
        LingerOutcome::Shutdown,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            LingerOutcome::ClientClosed => "client_closed",
            LingerOutcome::Idle => "idle_timeout",
            LingerOutcome::TimeLimit => "time_limit",
            LingerOutcome::ByteLimit => "byte_limit",
            LingerOutcome::Error => "io_error",
            LingerOutcome::Shutdown => "shutdown",
        }
    }
}

/// All metrics, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Refreshed before each render.
    sources: Arc<RwLock<Vec<Arc<dyn MetricsSource>>>>,
    /// Open client connections by transport (`ws`, `sse`), lingering closes included (they keep
    /// their slot until the socket closes).
    pub connections_open: IntGaugeVec,
    /// TCP connections accepted.
    pub connections_accepted: IntCounter,
    /// TLS handshakes that failed or timed out (wss/https listeners only).
    pub tls_handshake_failures: IntCounter,
    /// Sessions closed, by reason.
    pub connections_closed: IntCounterVec,
    /// Connections closed by the server that still read and discard the client's input.
    pub connections_lingering: IntGauge,
    /// Lingering closes, by how they ended.
    pub lingering_closes: IntCounterVec,
    /// Client bytes read and discarded by lingering closes.
    pub lingering_discarded_bytes: IntCounter,
    /// Refusals by limit (`max_connections`, `max_topics_per_connection`, `max_topics`, ...).
    pub limit_rejections: IntCounterVec,
    /// Upgrades refused by authentication or the Origin allowlist, by reason (`AuthError::REASONS`).
    pub auth_failures: IntCounterVec,
    /// `error` replies sent, by code.
    pub client_errors: IntCounterVec,
    /// Live subscriptions.
    pub subscriptions: IntGauge,
    /// Known topics.
    pub topics: IntGauge,
    /// Topics only subscribers asked for (no feed has published them).
    pub topics_requested: IntGauge,
    /// Such topics removed after their last subscriber left.
    pub topics_reaped: IntCounter,
    /// Messages written to clients (ticks, replies, control), by transport.
    pub messages_sent: IntCounterVec,
    /// Bytes written to clients, by transport.
    pub bytes_sent: IntCounterVec,
    /// Ticks replaced by a newer one for a slow client.
    pub messages_conflated: IntCounter,
    /// Ticks dropped, by reason (`drop_oldest`, `shard_inbox_full`).
    pub messages_dropped: IntCounterVec,
    /// Clients disconnected as slow consumers.
    pub slow_consumer_disconnects: IntCounter,
    /// `gap` markers queued to clients, by reason.
    pub gap_markers: IntCounterVec,
    /// Times a feed's seqs skipped (each becomes an `upstream` gap marker).
    pub upstream_gaps: IntCounter,
    /// Topics whose seq space started over upstream (a new epoch adopted).
    pub epoch_resets: IntCounter,
    /// Book updates refused (crossed, negative size, delta before a snapshot or while untrusted).
    pub book_refusals: IntCounter,
    /// Books that lost sync with their ingest node and took its periodic snapshot (a gateway).
    pub book_resyncs: IntCounter,
    /// Books that refused an update and await a snapshot; not served meanwhile.
    pub books_untrusted: IntGauge,
    /// Shards whose write pass batches its sends through io_uring.
    pub io_uring_shards: IntGauge,
    /// `reset` frames queued to clients.
    pub resets_sent: IntCounter,
    /// Heartbeat frames encoded (one per topic, interval and shard when it was quiet).
    pub heartbeats_encoded: IntCounter,
    /// Heartbeats queued to clients.
    pub heartbeats_sent: IntCounter,
    /// Ticks a throttled stream replaced with a newer one before its interval ended.
    pub throttle_superseded: IntCounter,
    /// Ticks throttled streams released at an interval boundary.
    pub throttle_releases: IntCounter,
    /// Topics wildcard subscriptions subscribed.
    pub wildcard_matches: IntCounter,
    /// Topics wildcard subscriptions matched but left out, by reason.
    pub wildcard_refusals: IntCounterVec,
    /// Subscribes with `since`, by outcome (`recovered` or the reason it could not).
    pub recoveries: IntCounterVec,
    /// Ticks and markers held in every topic's history.
    pub history_entries: IntGauge,
    /// Bytes held in every topic's history (frames plus bookkeeping).
    pub history_bytes: IntGauge,
    /// Frames per vectored write: how well writes coalesce.
    pub frames_per_write: Histogram,
    /// From a tick's ingest `ts` to the socket write that carried it (oldest tick of each write).
    pub tick_to_write_seconds: Histogram,
    /// Time one shard takes to fan one tick out to its subscribers' queues.
    pub fanout_seconds: Histogram,
    /// Ticks waiting in a connection's queue when its writer runs.
    pub queue_depth_frames: Histogram,
    /// Ticks accepted by the bus.
    pub ticks_published: IntCounter,
    /// Process CPU seconds (user + system), a counter mirrored from /proc.
    pub process_cpu_seconds: prometheus::Counter,
    /// Process resident memory.
    pub process_resident_memory_bytes: IntGauge,
    /// Process open file descriptors.
    pub process_open_fds: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    // Names are static and unique, so registration cannot fail except by a programming error.
    r.register(Box::new(c.clone()))
        .expect("metric registered twice");
    c
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let r = Registry::new();
        let counter =
            |name: &str, help: &str| reg(&r, IntCounter::new(name, help).expect("valid metric"));
        let gauge =
            |name: &str, help: &str| reg(&r, IntGauge::new(name, help).expect("valid metric"));
        let counter_vec = |name: &str, help: &str, label: &str| {
            reg(
                &r,
                IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric"),
            )
        };
        let gauge_vec = |name: &str, help: &str, label: &str| {
            reg(
                &r,
                IntGaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric"),
            )
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            reg(
                &r,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                    .expect("valid metric"),
            )
        };
        let m = Metrics {
            connections_open: gauge_vec(
                "tickcast_connections_open",
                "Open client connections by transport (ws: WebSocket sessions, lingering closes included; sse: event streams).",
                "transport",
            ),
            connections_accepted: counter(
                "tickcast_connections_accepted_total",
                "TCP connections accepted.",
            ),
            tls_handshake_failures: counter(
                "tickcast_tls_handshake_failures_total",
                "TLS handshakes that failed or did not finish within the handshake timeout.",
            ),
            connections_closed: counter_vec(
                "tickcast_connections_closed_total",
                "WebSocket sessions closed, by reason.",
                "reason",
            ),
            connections_lingering: gauge(
                "tickcast_connections_lingering",
                "Connections the server closed that still read and discard the client's input before the socket closes.",
            ),
            lingering_closes: counter_vec(
                "tickcast_lingering_closes_total",
                "Lingering closes (reading and discarding client input after the server's close frame), by how they ended.",
                "outcome",
            ),
            lingering_discarded_bytes: counter(
                "tickcast_lingering_discarded_bytes_total",
                "Client bytes read and discarded by lingering closes.",
            ),
            limit_rejections: counter_vec(
                "tickcast_limit_rejections_total",
                "Requests or connections refused by a configured limit, by limit.",
                "limit",
            ),
            auth_failures: counter_vec(
                "tickcast_auth_failures_total",
                "WebSocket upgrades refused by authentication or the Origin allowlist, by reason.",
                "reason",
            ),
            client_errors: counter_vec(
                "tickcast_client_errors_total",
                "Error replies sent to clients, by code.",
                "code",
            ),
            subscriptions: gauge(
                "tickcast_subscriptions",
                "Live topic subscriptions over all connections.",
            ),
            topics: gauge("tickcast_topics", "Topics known to the bus."),
            topics_requested: gauge(
                "tickcast_topics_requested",
                "Topics that exist only because clients subscribed to them (no feed has published them).",
            ),
            topics_reaped: counter(
                "tickcast_topics_reaped_total",
                "Topics no feed published, removed after their last subscriber left.",
            ),
            messages_sent: counter_vec(
                "tickcast_messages_sent_total",
                "Messages written to clients (WebSocket frames, SSE events), by transport.",
                "transport",
            ),
            bytes_sent: counter_vec(
                "tickcast_bytes_sent_total",
                "Bytes written to clients, by transport.",
                "transport",
            ),
            messages_conflated: counter(
                "tickcast_messages_conflated_total",
                "Ticks replaced by a newer tick of the same topic in a slow client's queue.",
            ),
            messages_dropped: counter_vec(
                "tickcast_messages_dropped_total",
                "Ticks dropped, by reason.",
                "reason",
            ),
            slow_consumer_disconnects: counter(
                "tickcast_slow_consumer_disconnects_total",
                "Clients disconnected because they could not keep up.",
            ),
            gap_markers: counter_vec(
                "tickcast_gap_markers_total",
                "Gap markers queued to clients, by reason (conflated, dropped, upstream, resync).",
                "reason",
            ),
            upstream_gaps: counter(
                "tickcast_upstream_gaps_total",
                "Times a feed's seqs skipped: ticks lost before they reached the server.",
            ),
            epoch_resets: counter(
                "tickcast_epoch_resets_total",
                "Topics moved to a new epoch because their upstream seq space started over.",
            ),
            book_refusals: counter(
                "tickcast_book_refusals_total",
                "Book updates refused as corrupting (crossed, negative size, delta with no trusted book).",
            ),
            book_resyncs: counter(
                "tickcast_book_resyncs_total",
                "Books a gateway resynced from its ingest node's periodic snapshot after losing sync.",
            ),
            io_uring_shards: gauge(
                "tickcast_io_uring_shards",
                "Shards whose write pass batches its sends through io_uring (the others use send(2)).",
            ),
            books_untrusted: gauge(
                "tickcast_books_untrusted",
                "Books that refused an update and await a snapshot from their feed (listed in /readyz).",
            ),
            resets_sent: counter(
                "tickcast_resets_sent_total",
                "reset frames queued to clients (a topic they stream changed epoch).",
            ),
            heartbeats_encoded: counter(
                "tickcast_heartbeats_encoded_total",
                "Heartbeat frames encoded: one per quiet topic, interval and shard, shared by its subscribers.",
            ),
            heartbeats_sent: counter(
                "tickcast_heartbeats_sent_total",
                "Heartbeats queued to clients.",
            ),
            throttle_superseded: counter(
                "tickcast_throttle_superseded_total",
                "Ticks a throttled stream replaced with a newer one before its interval ended (once per topic, interval and shard, not per client).",
            ),
            throttle_releases: counter(
                "tickcast_throttle_releases_total",
                "Ticks throttled streams released at an interval boundary (once per topic, interval and shard, not per client).",
            ),
            wildcard_matches: counter(
                "tickcast_wildcard_matches_total",
                "Topics wildcard subscriptions (ticker.*) subscribed, when they subscribed and as feeds started new topics.",
            ),
            wildcard_refusals: counter_vec(
                "tickcast_wildcard_refusals_total",
                "Topics a wildcard subscription matched but left out, by reason (forbidden by entitlements, topic_limit per connection).",
                "reason",
            ),
            recoveries: counter_vec(
                "tickcast_recoveries_total",
                "Subscribes that asked to recover a topic from a seq, by outcome.",
                "outcome",
            ),
            history_entries: gauge(
                "tickcast_history_entries",
                "Ticks and gap markers held in every topic's history.",
            ),
            history_bytes: gauge(
                "tickcast_history_bytes",
                "Memory held by every topic's history: frames plus per-entry bookkeeping.",
            ),
            frames_per_write: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "tickcast_frames_per_write",
                        "Frames carried by one vectored socket write.",
                    )
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
                )
                .expect("valid metric"),
            ),
            tick_to_write_seconds: histogram(
                "tickcast_tick_to_write_seconds",
                "Latency from a tick's ingest timestamp to the socket write that carried it.",
                vec![
                    50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3,
                    250e-3, 1.0, 5.0,
                ],
            ),
            fanout_seconds: histogram(
                "tickcast_fanout_seconds",
                "Time a shard takes to fan one tick out to its subscribers' queues.",
                vec![
                    1e-6, 2.5e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3,
                ],
            ),
            queue_depth_frames: histogram(
                "tickcast_queue_depth_frames",
                "Ticks queued for a connection when its writer runs.",
                vec![
                    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
                ],
            ),
            ticks_published: counter(
                "tickcast_ticks_published_total",
                "Ticks accepted by the bus.",
            ),
            process_cpu_seconds: reg(
                &r,
                prometheus::Counter::new(
                    "tickcast_process_cpu_seconds_total",
                    "CPU time used by the process (user + system).",
                )
                .expect("valid metric"),
            ),
            process_resident_memory_bytes: gauge(
                "tickcast_process_resident_memory_bytes",
                "Resident memory.",
            ),
            process_open_fds: gauge("tickcast_process_open_fds", "Open file descriptors."),
            registry: r,
            sources: Arc::default(),
        };
        m.init_labels();
        m
    }

    /// Exports every known label value at 0, so a dashboard or an alert sees a series from the
    /// start instead of a missing one until the first event.
    fn init_labels(&self) {
        for reason in CloseReason::ALL {
            self.connections_closed.with_label_values(&[reason.label()]);
        }
        for outcome in LingerOutcome::ALL {
            self.lingering_closes.with_label_values(&[outcome.label()]);
        }
        for limit in LIMITS {
            self.limit_rejections.with_label_values(&[limit]);
        }
        for reason in crate::auth::AuthError::REASONS {
            self.auth_failures.with_label_values(&[reason]);
        }
        for code in tickcast_core::protocol::ProtocolErrorKind::CODES {
            self.client_errors.with_label_values(&[code]);
        }
        for reason in [
            "drop_oldest",
            "event_overflow",
            "book_resync",
            "shard_inbox_full",
        ] {
            self.messages_dropped.with_label_values(&[reason]);
        }
        for reason in GapReason::ALL {
            self.gap_markers.with_label_values(&[reason.as_str()]);
        }
        for transport in TRANSPORTS {
            self.connections_open.with_label_values(&[transport]);
            self.messages_sent.with_label_values(&[transport]);
            self.bytes_sent.with_label_values(&[transport]);
        }
        for reason in ["forbidden", "topic_limit"] {
            self.wildcard_refusals.with_label_values(&[reason]);
        }
        self.recoveries.with_label_values(&["recovered"]);
        for why in NotRecovered::ALL {
            self.recoveries.with_label_values(&[why.as_str()]);
        }
    }

    /// Registers a metric that lives outside the gateway (the feeds', the binary's log writer), so
    /// one scrape of `/metrics` shows it too.
    pub fn register(&self, c: Box<dyn prometheus::core::Collector>) -> prometheus::Result<()> {
        self.registry.register(c)
    }

    /// Calls `source` before every render, so sampled metrics are current when scraped.
    pub fn add_source(&self, source: Arc<dyn MetricsSource>) {
        self.sources
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(source);
    }

    /// Counts the outcomes of one subscribe's recoveries.
    pub fn recovered(&self, recoveries: &[Recovery]) {
        for r in recoveries {
            let outcome = match r.outcome {
                Ok(()) => "recovered",
                Err(why) => why.as_str(),
            };
            self.recoveries.with_label_values(&[outcome]).inc();
        }
    }

    /// Counts a closed session.
    pub fn closed(&self, reason: CloseReason) {
        self.connections_closed
            .with_label_values(&[reason.label()])
            .inc();
    }

    /// Counts a connection that begins a lingering close.
    pub fn linger_started(&self) {
        self.connections_lingering.inc();
    }

    /// Counts a lingering close that ended with `outcome` after discarding `discarded` bytes.
    pub fn lingered(&self, outcome: LingerOutcome, discarded: u64) {
        self.connections_lingering.dec();
        self.lingering_closes
            .with_label_values(&[outcome.label()])
            .inc();
        self.lingering_discarded_bytes.inc_by(discarded);
    }

    /// Renders every metric in the text exposition format, refreshing the sampled ones first: the
    /// bus's, the process's and every [`MetricsSource`]'s.
    pub fn render(&self, bus: &Bus) -> String {
        self.topics.set(bus.topic_count() as i64);
        self.topics_requested
            .set(bus.requested_topic_count() as i64);
        sync_counter(&self.topics_reaped, bus.reaped_topics());
        sync_counter(&self.upstream_gaps, bus.upstream_gaps());
        sync_counter(&self.epoch_resets, bus.epoch_resets());
        sync_counter(&self.book_refusals, bus.book_refusals());
        sync_counter(&self.book_resyncs, bus.book_resyncs());
        self.books_untrusted.set(bus.untrusted_books().len() as i64);
        self.history_entries.set(bus.history_entries() as i64);
        self.history_bytes.set(bus.history_bytes() as i64);
        let published = bus.published();
        sync_counter(&self.ticks_published, published);
        sync_counter(
            &self
                .messages_dropped
                .with_label_values(&["shard_inbox_full"]),
            bus.inbox_overflows(),
        );
        for source in self
            .sources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            source.refresh();
        }
        if let Some(p) = crate::process::sample() {
            let cpu = &self.process_cpu_seconds;
            cpu.inc_by((p.cpu_seconds - cpu.get()).max(0.0));
            self.process_resident_memory_bytes.set(p.rss_bytes as i64);
            self.process_open_fds.set(p.open_fds as i64);
        }
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The transports clients read from: WebSocket and Server-Sent Events.
pub const TRANSPORTS: [&str; 2] = ["ws", "sse"];

/// Every `limit` label of `tickcast_limit_rejections_total`.
pub const LIMITS: [&str; 7] = [
    "max_connections",
    "max_connections_per_ip",
    "max_topics_per_connection",
    "max_patterns_per_connection",
    "max_requested_topics",
    "message_rate",
    "max_body_bytes",
];

/// Brings a counter mirrored from a monotonic source up to `total`.
pub fn sync_counter(c: &IntCounter, total: u64) {
    c.inc_by(total.saturating_sub(c.get()));
}
