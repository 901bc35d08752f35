//! The configuration file (`config/tickcast.toml` documents every key), its defaults and validation.
//! Precedence: built-in defaults < the file given with `--config` < `TICKCAST_*` env < CLI flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tickcast_bus::{BusConfig, OverflowPolicy, QueueLimits};
use tickcast_gateway::auth::{ApiKey, AuthConfig, Authenticator, Secret};
use tickcast_gateway::{GatewayConfig, RateLimit};
use tickcast_ingest::http::HttpConfig;
use tickcast_ingest::nats::feed::NatsFeedConfig;
use tickcast_ingest::nats::sink::{NatsSinkConfig, StreamStorage};
use tickcast_ingest::replay::{ReplayConfig, ReplayFormat};
use tickcast_ingest::synthetic::{Symbols, SyntheticConfig};
use tickcast_ingest::tcp::TcpConfig;
use tickcast_ingest::upstream::{AdapterKind, UpstreamConfig};
use tickcast_ingest::{FeedPlan, FeedSpec};

/// Why a configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read. (The I/O error is part of the message, not a `source`, so the
    /// one-line report does not print it twice.)
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    /// The file is not valid TOML or has unknown keys.
    #[error("invalid config file {path}: {error}")]
    Parse {
        path: String,
        error: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listener and threads.
    pub server: ServerSection,
    /// Per-connection and global limits.
    pub limits: LimitsSection,
    /// Slow-client handling.
    pub backpressure: BackpressureSection,
    /// Pings and idle detection.
    pub keepalive: KeepaliveSection,
    /// Logging.
    pub log: LogSection,
    /// Authentication, topic entitlements and the Origin allowlist.
    pub auth: AuthSection,
    /// The NATS sink of an ingest node (`server.role = "ingest"`).
    pub nats: NatsSection,
    /// https/wss on the listener.
    pub tls: TlsSection,
    /// Sources of ticks.
    pub feeds: Vec<FeedSection>,
    /// Set by the binary, not by the file: hands memory freed by closed connections back to the OS
    /// (see `GatewayConfig::heap_trim`).
    #[serde(skip)]
    pub heap_trim: Option<fn()>,
}

/// `[tls]`: serve https/wss when both paths are set; plain http/ws otherwise.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// PEM certificate chain, leaf first.
    pub cert_path: Option<PathBuf>,
    /// PEM private key of the leaf certificate.
    pub key_path: Option<PathBuf>,
}

impl TlsSection {
    /// The rustls config, if TLS is on; fails when the files cannot be used.
    pub fn server_config(
        &self,
    ) -> Result<Option<Arc<tickcast_gateway::tls::ServerConfig>>, ConfigError> {
        match (&self.cert_path, &self.key_path) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => tickcast_gateway::tls_server_config(cert, key)
                .map(Some)
                .map_err(|e| ConfigError::Invalid(format!("tls: {e}"))),
            _ => Err(ConfigError::Invalid(
                "tls: set both cert_path and key_path, or neither".into(),
            )),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// `standalone` (default) or `ingest` (also publish every tick to NATS, see `[nats]`).
    pub role: Role,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Worker shards (threads serving connections); 0 = one per CPU core.
    pub workers: usize,
    /// Listen backlog.
    pub backlog: u32,
    /// Ticks buffered per shard between the feeds and the shard.
    pub shard_inbox_capacity: usize,
    /// SO_SNDBUF of client sockets in bytes; 0 keeps the kernel's autotuning.
    pub socket_send_buffer_bytes: usize,
    /// Write queued ticks every this many milliseconds; 0 = as soon as they are routed.
    pub flush_interval_ms: u64,
    /// With `flush_interval_ms = 0`: longest a write pass waits behind the previous one, which it
    /// waits as long as that one took; 0 = no waiting.
    pub adaptive_flush_max_ms: u64,
    /// Time given to flush queued frames at shutdown, in milliseconds.
    pub shutdown_grace_ms: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            role: Role::Standalone,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            backlog: 4096,
            shard_inbox_capacity: 65_536,
            socket_send_buffer_bytes: 0,
            flush_interval_ms: 0,
            adaptive_flush_max_ms: 0,
            shutdown_grace_ms: 5_000,
        }
    }
}

/// What a node does in a NATS scale-out. A gateway node is a `standalone` node whose feed is
/// `kind = "nats"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Feeds and gateway in one process.
    #[default]
    Standalone,
    /// Feeds, plus every tick published to NATS for gateway nodes; the listener still serves
    /// `/healthz`, `/readyz`, `/metrics` (and `/ws`, for debugging).
    Ingest,
}

/// Where JetStream keeps the last-value stream, as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageSpec {
    /// On disk: survives a NATS restart.
    File,
    /// In memory: lost when NATS restarts (the sink recreates the stream, empty).
    Memory,
}

/// `[nats]`: the sink of an ingest node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSection {
    /// `nats://host:port` (comma-separated for several servers).
    pub url: String,
    /// Subjects are `<subject_prefix>.<topic>`.
    pub subject_prefix: String,
    /// JetStream stream holding the last tick per subject (created if missing).
    pub stream: String,
    /// `file` or `memory`.
    pub stream_storage: StorageSpec,
    /// Ticks queued for NATS before new ones are dropped (and counted).
    pub queue_capacity: usize,
    /// Time allowed to connect at startup, in milliseconds.
    pub connect_timeout_ms: u64,
}

impl Default for NatsSection {
    fn default() -> Self {
        Self {
            url: default_nats_url(),
            subject_prefix: default_subject_prefix(),
            stream: default_nats_stream(),
            stream_storage: StorageSpec::File,
            queue_capacity: 65_536,
            connect_timeout_ms: default_nats_connect_timeout_ms(),
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Simultaneous WebSocket sessions.
    pub max_connections: usize,
    /// Topics one connection may subscribe to.
    pub max_topics_per_connection: usize,
    /// Topics feeds may create. Topics that only subscribers asked for never count here.
    pub max_topics: usize,
    /// Topics that exist only because subscribers asked for them (no feed has published them).
    pub max_requested_topics: usize,
    /// How long such a topic outlives its last subscriber, in milliseconds.
    pub requested_topic_grace_ms: u64,
    /// Largest client message in bytes.
    pub max_message_bytes: usize,
    /// Time allowed for an HTTP request head, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Simultaneous WebSocket sessions from one source IP; 0 = no limit.
    pub max_connections_per_ip: usize,
    /// Client messages per second per connection (token bucket rate); 0 = no limit.
    pub max_messages_per_second: u32,
    /// Client messages a connection may send at once (token bucket size).
    pub message_burst: u32,
    /// Over-limit messages in a row answered with `rate_limited` before closing with 1008.
    pub max_rate_violations: u32,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_connections: 100_000,
            max_topics_per_connection: 1024,
            max_topics: 100_000,
            max_requested_topics: 10_000,
            requested_topic_grace_ms: 30_000,
            max_message_bytes: 64 * 1024,
            handshake_timeout_ms: 10_000,
            max_connections_per_ip: 0,
            max_messages_per_second: RateLimit::default().per_second,
            message_burst: RateLimit::default().burst,
            max_rate_violations: RateLimit::default().max_violations,
        }
    }
}

/// `[auth]`: off unless `enabled`; `allowed_origins` applies either way.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Require a credential (API key or JWT) at the WebSocket upgrade.
    pub enabled: bool,
    /// Accepted API keys and what each grants.
    pub api_keys: Vec<ApiKeySection>,
    /// Keys that may `POST /publish`, each with the topic patterns it may publish to.
    pub publish_keys: Vec<ApiKeySection>,
    /// JWT claim holding the topic patterns a token may publish to.
    pub publish_claim: String,
    /// When set, `/metrics` needs `Authorization: Bearer <this>`, whether or not `enabled` is.
    pub metrics_token: Option<Secret>,
    /// Shared secret for HS256 JWTs (at least 32 bytes).
    pub hs256_secret: Option<Secret>,
    /// PEM file with the RSA public key for RS256 JWTs.
    pub rs256_public_key_file: Option<PathBuf>,
    /// JWT claim holding the topic patterns.
    pub topics_claim: String,
    /// Required JWT `iss`, if set.
    pub issuer: Option<String>,
    /// Required JWT `aud`, if set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`, in seconds.
    pub leeway_secs: u64,
    /// Browser origins allowed to open a WebSocket; empty = any.
    pub allowed_origins: Vec<String>,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            enabled: false,
            api_keys: Vec::new(),
            publish_keys: Vec::new(),
            publish_claim: AuthConfig::default().publish_claim,
            metrics_token: None,
            hs256_secret: None,
            rs256_public_key_file: None,
            topics_claim: AuthConfig::default().topics_claim,
            issuer: None,
            audience: None,
            leeway_secs: AuthConfig::default().leeway.as_secs(),
            allowed_origins: Vec::new(),
        }
    }
}

/// One `[[auth.api_keys]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySection {
    /// The key as clients send it (masked in logs).
    pub key: Secret,
    /// Topic glob patterns it grants (`*` is the only wildcard).
    pub topics: Vec<String>,
}

impl AuthSection {
    /// The authenticator, or `None` when auth is off. Reads the RS256 key file.
    pub fn authenticator(&self) -> Result<Option<Arc<Authenticator>>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        let rs256_public_key_pem = match &self.rs256_public_key_file {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|error| ConfigError::Read {
                path: path.display().to_string(),
                error,
            })?),
        };
        let keys = |list: &[ApiKeySection]| {
            list.iter()
                .map(|k| ApiKey {
                    key: k.key.clone(),
                    topics: k.topics.clone(),
                })
                .collect()
        };
        let config = AuthConfig {
            api_keys: keys(&self.api_keys),
            publish_keys: keys(&self.publish_keys),
            publish_claim: self.publish_claim.clone(),
            hs256_secret: self.hs256_secret.clone(),
            rs256_public_key_pem,
            topics_claim: self.topics_claim.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway: Duration::from_secs(self.leeway_secs),
        };
        Authenticator::new(&config)
            .map(|a| Some(Arc::new(a)))
            .map_err(|e| ConfigError::Invalid(format!("auth: {e}")))
    }
}

/// `[backpressure]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackpressureSection {
    /// `conflate`, `drop_oldest` or `disconnect`.
    pub policy: OverflowPolicy,
    /// Ticks queued per connection before the policy applies.
    pub max_queued_frames: usize,
    /// Tick bytes queued per connection before the policy applies.
    pub max_queued_bytes: usize,
    /// A client backlogged this long is disconnected whatever the policy, in milliseconds.
    pub max_lag_ms: u64,
    /// A socket refusing writes this long is dropped, in milliseconds.
    pub write_timeout_ms: u64,
}

/// Largest `max_queued_bytes`: a queue counts its bytes in a `u32`, and a 1 GiB backlog per client
/// is already far past anything useful.
const MAX_QUEUED_BYTES: usize = 1 << 30;

impl Default for BackpressureSection {
    fn default() -> Self {
        let q = QueueLimits::default();
        Self {
            policy: q.policy,
            max_queued_frames: q.max_frames,
            max_queued_bytes: q.max_bytes,
            max_lag_ms: q.max_lag.as_millis() as u64,
            write_timeout_ms: 30_000,
        }
    }
}

/// `[keepalive]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveSection {
    /// Silence after which the server pings, in milliseconds.
    pub ping_interval_ms: u64,
    /// Silence after a ping after which the client is closed, in milliseconds.
    pub pong_timeout_ms: u64,
}

impl Default for KeepaliveSection {
    fn default() -> Self {
        Self {
            ping_interval_ms: 20_000,
            pong_timeout_ms: 20_000,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A tracing filter, e.g. `info` or `tickcast_gateway=debug,info`.
    pub filter: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            filter: "info".into(),
        }
    }
}

/// Symbols as written in the file: a count (`500` → `SYM0000`…) or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SymbolsSpec {
    /// `SYM0000` … `SYM{n-1}`.
    Count(usize),
    /// These symbols.
    List(Vec<String>),
}

/// Format of a replay file as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayFormatSpec {
    /// One JSON tick per line.
    Jsonl,
    /// Header row, then one tick per row.
    Csv,
}

/// Upstream protocol as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterSpec {
    /// Another tickcast (protocol v1).
    Tickcast,
    /// Coinbase `ticker` channel.
    Coinbase,
    /// Binance `bookTicker` + `trade` streams.
    Binance,
}

/// One `[[feeds]]` entry. Every kind also takes `required` (readiness waits for it, default true)
/// and `max_idle_ms` (a required feed silent this long is not ready; 0 = off, the default).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FeedSection {
    /// The built-in random-walk feed.
    Synthetic {
        /// Name in logs and metrics.
        #[serde(default = "default_synthetic_name")]
        name: String,
        /// Topic channel.
        #[serde(default = "default_channel")]
        channel: String,
        /// Symbols quoted; default: familiar US tickers.
        #[serde(default)]
        symbols: Option<SymbolsSpec>,
        /// Total ticks per second.
        #[serde(default = "default_rate")]
        rate: f64,
        /// Random-walk seed.
        #[serde(default = "default_seed")]
        seed: u64,
        /// Readiness waits for this feed.
        #[serde(default = "default_true")]
        required: bool,
        /// Not ready after this long without a tick (ms); 0 = off.
        #[serde(default)]
        max_idle_ms: u64,
    },
    /// NDJSON publishers over TCP.
    Tcp {
        /// Name in logs and metrics.
        #[serde(default = "default_tcp_name")]
        name: String,
        /// Address to listen on.
        listen: SocketAddr,
        /// Longest line in bytes.
        #[serde(default = "default_max_line_bytes")]
        max_line_bytes: usize,
        /// Publisher connections at once.
        #[serde(default = "default_tcp_max_connections")]
        max_connections: usize,
        /// Bytes requested per socket read.
        #[serde(default = "default_read_buffer_bytes")]
        read_buffer_bytes: usize,
        /// Runs of lines queued between the connections and the publishing loop.
        #[serde(default = "default_queue_chunks")]
        queue_chunks: usize,
        /// Readiness waits for this feed (connected = at least one publisher connected).
        #[serde(default = "default_true")]
        required: bool,
        /// Not ready after this long without a tick (ms); 0 = off.
        #[serde(default)]
        max_idle_ms: u64,
    },
    /// A JSONL or CSV file played back.
    Replay {
        /// Name in logs and metrics.
        #[serde(default = "default_replay_name")]
        name: String,
        /// The file (a relative path is relative to the config file's folder).
        path: PathBuf,
        /// `jsonl` or `csv`; default: `csv` for a `.csv` file, else `jsonl`.
        #[serde(default)]
        format: Option<ReplayFormatSpec>,
        /// Pacing factor; 0 = as fast as possible.
        #[serde(default = "default_speed")]
        speed: f64,
        /// Start over at the end.
        #[serde(default, rename = "loop")]
        looping: bool,
        /// Longest line in bytes.
        #[serde(default = "default_max_line_bytes")]
        max_line_bytes: usize,
        /// Readiness waits for this feed (connected while playing).
        #[serde(default = "default_true")]
        required: bool,
        /// Not ready after this long without a tick (ms); 0 = off.
        #[serde(default)]
        max_idle_ms: u64,
    },
    /// A WebSocket client of another tickcast or an exchange.
    Upstream {
        /// Name in logs and metrics.
        #[serde(default = "default_upstream_name")]
        name: String,
        /// `ws://host:port/path` or `wss://host:port/path`.
        url: String,
        /// For wss://: PEM CA certificates trusted besides the system's roots (a private CA).
        #[serde(default)]
        ca_file: Option<PathBuf>,
        /// `tickcast`, `coinbase` or `binance`.
        #[serde(default = "default_adapter")]
        adapter: AdapterSpec,
        /// Topics (tickcast), product ids (coinbase) or symbols (binance) to subscribe to.
        subscribe: Vec<String>,
        /// Channel of the republished topics; default: upstream's (tickcast) or `ticker`.
        #[serde(default)]
        channel: Option<String>,
        /// First reconnect delay (ms).
        #[serde(default = "default_backoff_min_ms")]
        backoff_min_ms: u64,
        /// Longest reconnect delay (ms).
        #[serde(default = "default_backoff_max_ms")]
        backoff_max_ms: u64,
        /// Largest upstream message in bytes.
        #[serde(default = "default_upstream_max_message_bytes")]
        max_message_bytes: usize,
        /// Silence before a ping; twice this without data and the connection is dropped (ms).
        #[serde(default = "default_idle_timeout_ms")]
        idle_timeout_ms: u64,
        /// Time allowed per connection attempt: TCP, TLS and WebSocket handshakes (ms).
        #[serde(default = "default_upstream_connect_timeout_ms")]
        connect_timeout_ms: u64,
        /// Readiness waits for this feed (connected = subscribed upstream).
        #[serde(default = "default_true")]
        required: bool,
        /// Not ready after this long without a tick (ms); 0 = off.
        #[serde(default)]
        max_idle_ms: u64,
    },
    /// `POST /publish` on the gateway.
    Http {
        /// Name in logs and metrics.
        #[serde(default = "default_http_name")]
        name: String,
        /// Largest request body in bytes.
        #[serde(default = "default_max_body_bytes")]
        max_body_bytes: usize,
        /// Longest NDJSON line in bytes.
        #[serde(default = "default_max_line_bytes")]
        max_line_bytes: usize,
        /// Readiness waits for this feed (up while the server runs).
        #[serde(default = "default_true")]
        required: bool,
        /// Not ready after this long without a tick (ms); 0 = off.
        #[serde(default)]
        max_idle_ms: u64,
    },
    /// The ingest tier over NATS (a gateway node of a scale-out).
    Nats {
        /// Name in logs and metrics.
        #[serde(default = "default_nats_name")]
        name: String,
        /// `nats://host:port` (comma-separated for several servers).
        #[serde(default = "default_nats_url")]
        url: String,
        /// Subjects to subscribe to, wildcards allowed.
        #[serde(default = "default_nats_subjects")]
        subjects: Vec<String>,
        /// The ingest node's subject prefix.
        #[serde(default = "default_subject_prefix")]
        subject_prefix: String,
        /// JetStream stream to warm the cache from on (re)connect; "" = no warm-up.
        #[serde(default = "default_nats_stream")]
        stream: String,
        /// Messages buffered per subscription before NATS drops them (slow consumer).
        #[serde(default = "default_subscription_capacity")]
        subscription_capacity: usize,
        /// Largest message body in bytes.
        #[serde(default = "default_max_line_bytes")]
        max_message_bytes: usize,
        /// Time allowed per connection attempt (ms).
        #[serde(default = "default_nats_connect_timeout_ms")]
        connect_timeout_ms: u64,
        /// Readiness waits for this feed (connected to NATS and warmed).
        #[serde(default = "default_true")]
        required: bool,
        /// Not ready after this long without a tick (ms); 0 = off.
        #[serde(default)]
        max_idle_ms: u64,
    },
}

fn default_synthetic_name() -> String {
    "synthetic".into()
}
fn default_tcp_name() -> String {
    "tcp".into()
}
fn default_replay_name() -> String {
    "replay".into()
}
fn default_upstream_name() -> String {
    "upstream".into()
}
fn default_http_name() -> String {
    "http".into()
}
fn default_nats_name() -> String {
    "nats".into()
}
fn default_nats_url() -> String {
    "nats://127.0.0.1:4222".into()
}
fn default_subject_prefix() -> String {
    tickcast_ingest::nats::DEFAULT_SUBJECT_PREFIX.into()
}
fn default_nats_subjects() -> Vec<String> {
    vec![format!(
        "{}.>",
        tickcast_ingest::nats::DEFAULT_SUBJECT_PREFIX
    )]
}
fn default_nats_stream() -> String {
    tickcast_ingest::nats::DEFAULT_STREAM.into()
}
fn default_subscription_capacity() -> usize {
    65_536
}
fn default_nats_connect_timeout_ms() -> u64 {
    5_000
}
fn default_true() -> bool {
    true
}
fn default_max_line_bytes() -> usize {
    4096
}
fn default_tcp_max_connections() -> usize {
    64
}
fn default_read_buffer_bytes() -> usize {
    tickcast_ingest::tcp::DEFAULT_READ_BUFFER_BYTES
}
fn default_queue_chunks() -> usize {
    tickcast_ingest::tcp::DEFAULT_QUEUE_CHUNKS
}
fn default_upstream_connect_timeout_ms() -> u64 {
    tickcast_ingest::upstream::DEFAULT_CONNECT_TIMEOUT.as_millis() as u64
}
fn default_speed() -> f64 {
    1.0
}
fn default_adapter() -> AdapterSpec {
    AdapterSpec::Tickcast
}
fn default_backoff_min_ms() -> u64 {
    100
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_upstream_max_message_bytes() -> usize {
    65_536
}
fn default_idle_timeout_ms() -> u64 {
    30_000
}
fn default_max_body_bytes() -> usize {
    1 << 20
}
fn default_channel() -> String {
    "ticker".into()
}
fn default_rate() -> f64 {
    1000.0
}
fn default_seed() -> u64 {
    42
}

impl FeedSection {
    /// The default feed: synthetic over familiar tickers.
    pub fn default_synthetic() -> Self {
        FeedSection::Synthetic {
            name: default_synthetic_name(),
            channel: default_channel(),
            symbols: None,
            rate: default_rate(),
            seed: default_seed(),
            required: true,
            max_idle_ms: 0,
        }
    }

    /// A looping real-time replay of `path` (the `--replay FILE` flag).
    pub fn replay_file(path: PathBuf) -> Self {
        FeedSection::Replay {
            name: default_replay_name(),
            path,
            format: None,
            speed: default_speed(),
            looping: true,
            max_line_bytes: default_max_line_bytes(),
            required: true,
            max_idle_ms: 0,
        }
    }

    /// The feed's name.
    pub fn name(&self) -> &str {
        match self {
            FeedSection::Synthetic { name, .. }
            | FeedSection::Tcp { name, .. }
            | FeedSection::Replay { name, .. }
            | FeedSection::Upstream { name, .. }
            | FeedSection::Http { name, .. }
            | FeedSection::Nats { name, .. } => name,
        }
    }

    /// `required` and `max_idle_ms`.
    fn readiness(&self) -> (bool, u64) {
        match self {
            FeedSection::Synthetic {
                required,
                max_idle_ms,
                ..
            }
            | FeedSection::Tcp {
                required,
                max_idle_ms,
                ..
            }
            | FeedSection::Replay {
                required,
                max_idle_ms,
                ..
            }
            | FeedSection::Upstream {
                required,
                max_idle_ms,
                ..
            }
            | FeedSection::Http {
                required,
                max_idle_ms,
                ..
            }
            | FeedSection::Nats {
                required,
                max_idle_ms,
                ..
            } => (*required, *max_idle_ms),
        }
    }

    /// Range checks of one entry; the message names the feed.
    fn validate(&self) -> Result<(), String> {
        let name = self.name();
        let fail = |m: &str| Err(format!("feed {name}: {m}"));
        if name.is_empty() {
            return Err("a feed has an empty name".into());
        }
        match self {
            FeedSection::Synthetic { rate, symbols, .. } => {
                if !(rate.is_finite() && *rate >= 0.0) {
                    return fail("rate must be a non-negative number");
                }
                if matches!(symbols, Some(SymbolsSpec::Count(0)))
                    || matches!(symbols, Some(SymbolsSpec::List(l)) if l.is_empty())
                {
                    return fail("symbols must not be empty");
                }
            }
            FeedSection::Tcp {
                max_line_bytes,
                max_connections,
                read_buffer_bytes,
                queue_chunks,
                ..
            } => {
                use tickcast_ingest::tcp::{QUEUE_CHUNKS_RANGE, READ_BUFFER_BYTES_RANGE};
                if *max_line_bytes < 64 || *max_connections == 0 {
                    return fail("max_line_bytes must be >= 64 and max_connections >= 1");
                }
                for (key, value, range) in [
                    (
                        "read_buffer_bytes",
                        read_buffer_bytes,
                        READ_BUFFER_BYTES_RANGE,
                    ),
                    ("queue_chunks", queue_chunks, QUEUE_CHUNKS_RANGE),
                ] {
                    if !range.contains(value) {
                        let (lo, hi) = range.into_inner();
                        return fail(&format!("{key} is {value}, must be {lo} to {hi}"));
                    }
                }
            }
            FeedSection::Replay {
                speed,
                max_line_bytes,
                ..
            } => {
                if !(speed.is_finite() && *speed >= 0.0) {
                    return fail("speed must be a non-negative number (0 = as fast as possible)");
                }
                if *max_line_bytes < 64 {
                    return fail("max_line_bytes must be >= 64");
                }
            }
            FeedSection::Upstream {
                url,
                subscribe,
                backoff_min_ms,
                backoff_max_ms,
                max_message_bytes,
                idle_timeout_ms,
                connect_timeout_ms,
                ca_file,
                ..
            } => {
                let secure = url.starts_with("wss://");
                if !secure && !url.starts_with("ws://") {
                    return fail("url must start with ws:// or wss://");
                }
                match ca_file {
                    Some(_) if !secure => {
                        return fail("ca_file is only used with a wss:// url");
                    }
                    Some(p) if p.as_os_str().is_empty() => {
                        return fail("ca_file must not be empty (leave it out: system roots only)");
                    }
                    _ => {}
                }
                let min_connect = tickcast_ingest::upstream::MIN_CONNECT_TIMEOUT.as_millis();
                if u128::from(*connect_timeout_ms) < min_connect {
                    return fail(&format!(
                        "connect_timeout_ms is {connect_timeout_ms}, must be >= {min_connect}"
                    ));
                }
                if subscribe.is_empty() {
                    return fail("subscribe must list at least one topic, product or symbol");
                }
                if *backoff_min_ms == 0 || backoff_min_ms > backoff_max_ms {
                    return fail("backoff_min_ms must be >= 1 and <= backoff_max_ms");
                }
                if *max_message_bytes < 64 || *idle_timeout_ms < 100 {
                    return fail("max_message_bytes must be >= 64 and idle_timeout_ms >= 100");
                }
            }
            FeedSection::Http {
                max_body_bytes,
                max_line_bytes,
                ..
            } => {
                if *max_body_bytes < 64 || *max_line_bytes < 64 {
                    return fail("max_body_bytes and max_line_bytes must be >= 64");
                }
            }
            FeedSection::Nats {
                url,
                subjects,
                subscription_capacity,
                max_message_bytes,
                connect_timeout_ms,
                ..
            } => {
                if url.trim().is_empty() || subjects.is_empty() {
                    return fail("url and subjects must not be empty");
                }
                if *subscription_capacity == 0 || *max_message_bytes < 64 {
                    return fail("subscription_capacity must be >= 1 and max_message_bytes >= 64");
                }
                if *connect_timeout_ms < 100 {
                    return fail("connect_timeout_ms must be >= 100");
                }
            }
        }
        Ok(())
    }

    /// The ingest-side settings of this entry.
    pub fn plan(&self) -> FeedPlan {
        let ms = Duration::from_millis;
        let (required, max_idle_ms) = self.readiness();
        let spec = match self.clone() {
            FeedSection::Synthetic {
                name,
                channel,
                symbols,
                rate,
                seed,
                ..
            } => FeedSpec::Synthetic(SyntheticConfig {
                name,
                channel,
                symbols: match symbols {
                    None => Symbols::default(),
                    Some(SymbolsSpec::Count(n)) => Symbols::Count(n),
                    Some(SymbolsSpec::List(l)) => Symbols::List(l),
                },
                rate,
                seed,
            }),
            FeedSection::Tcp {
                name,
                listen,
                max_line_bytes,
                max_connections,
                read_buffer_bytes,
                queue_chunks,
                ..
            } => FeedSpec::Tcp(TcpConfig {
                name,
                listen,
                max_line_bytes,
                max_connections,
                read_buffer_bytes,
                queue_chunks,
            }),
            FeedSection::Replay {
                name,
                path,
                format,
                speed,
                looping,
                max_line_bytes,
                ..
            } => {
                let csv_ext = path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
                let format = match format {
                    Some(ReplayFormatSpec::Csv) => ReplayFormat::Csv,
                    Some(ReplayFormatSpec::Jsonl) => ReplayFormat::Jsonl,
                    None if csv_ext => ReplayFormat::Csv,
                    None => ReplayFormat::Jsonl,
                };
                FeedSpec::Replay(ReplayConfig {
                    name,
                    path,
                    format,
                    speed,
                    looping,
                    max_line_bytes,
                })
            }
            FeedSection::Upstream {
                name,
                url,
                adapter,
                subscribe,
                channel,
                backoff_min_ms,
                backoff_max_ms,
                max_message_bytes,
                idle_timeout_ms,
                connect_timeout_ms,
                ca_file,
                ..
            } => FeedSpec::Upstream(UpstreamConfig {
                name,
                url,
                adapter: match adapter {
                    AdapterSpec::Tickcast => AdapterKind::Tickcast,
                    AdapterSpec::Coinbase => AdapterKind::Coinbase,
                    AdapterSpec::Binance => AdapterKind::Binance,
                },
                symbols: subscribe,
                channel,
                backoff_min: ms(backoff_min_ms),
                backoff_max: ms(backoff_max_ms),
                max_message_bytes,
                idle_timeout: ms(idle_timeout_ms),
                connect_timeout: ms(connect_timeout_ms),
                ca_file,
            }),
            FeedSection::Http {
                name,
                max_body_bytes,
                max_line_bytes,
                ..
            } => FeedSpec::Http(HttpConfig {
                name,
                max_body_bytes,
                max_line_bytes,
            }),
            FeedSection::Nats {
                name,
                url,
                subjects,
                subject_prefix,
                stream,
                subscription_capacity,
                max_message_bytes,
                connect_timeout_ms,
                ..
            } => FeedSpec::Nats(NatsFeedConfig {
                name,
                url,
                subjects,
                subject_prefix,
                stream: (!stream.is_empty()).then_some(stream),
                subscription_capacity,
                max_message_bytes,
                connect_timeout: ms(connect_timeout_ms),
            }),
        };
        FeedPlan {
            spec,
            required,
            max_idle: (max_idle_ms > 0).then(|| ms(max_idle_ms)),
        }
    }
}

/// Overrides from the command line or environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--symbols`
    pub symbols: Option<Symbols>,
    /// `--rate`
    pub rate: Option<f64>,
    /// `--workers`
    pub workers: Option<usize>,
    /// `--policy`
    pub policy: Option<OverflowPolicy>,
    /// `--replay FILE`: adds a looping real-time replay feed of FILE.
    pub replay: Option<PathBuf>,
    /// `--role`
    pub role: Option<Role>,
    /// `--nats-url`: the `[nats]` url (ingest role).
    pub nats_url: Option<String>,
    /// `--flush-interval-ms`
    pub flush_interval_ms: Option<u64>,
    /// `--adaptive-flush-max-ms`
    pub adaptive_flush_max_ms: Option<u64>,
}

impl Config {
    /// Reads and validates a TOML file. Relative paths in it (key files, certificates, replay
    /// files, CA files) are relative to the file's folder, so a config works from any directory.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?;
        let mut config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { error, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                error,
            },
            other => other,
        })?;
        config.resolve_paths(path.parent().unwrap_or(Path::new("")));
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates TOML text (relative paths stay relative to the working directory).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config = Self::parse(text)?;
        config.validate()?;
        Ok(config)
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<text>".into(),
            error: Box::new(e),
        })
    }

    /// Makes every relative path of the file relative to `base`, the file's folder.
    fn resolve_paths(&mut self, base: &Path) {
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.tls.cert_path.iter_mut().for_each(rebase);
        self.tls.key_path.iter_mut().for_each(rebase);
        self.auth.rs256_public_key_file.iter_mut().for_each(rebase);
        for feed in &mut self.feeds {
            match feed {
                FeedSection::Replay { path, .. } => rebase(path),
                FeedSection::Upstream { ca_file, .. } => ca_file.iter_mut().for_each(rebase),
                _ => {}
            }
        }
    }

    /// Applies CLI/env overrides. `--symbols`/`--rate` configure the first synthetic feed (the
    /// default one when the file has no feed at all); with feeds but no synthetic one they are an
    /// error rather than a synthetic feed slipped in beside the configured ones.
    pub fn apply(&mut self, o: Overrides) -> Result<(), ConfigError> {
        if let Some(listen) = o.listen {
            self.server.listen = listen;
        }
        if let Some(w) = o.workers {
            self.server.workers = w;
        }
        if let Some(p) = o.policy {
            self.backpressure.policy = p;
        }
        if let Some(ms) = o.flush_interval_ms {
            self.server.flush_interval_ms = ms;
        }
        if let Some(ms) = o.adaptive_flush_max_ms {
            self.server.adaptive_flush_max_ms = ms;
        }
        if let Some(path) = o.replay {
            self.feeds.push(FeedSection::replay_file(path));
        }
        if let Some(role) = o.role {
            self.server.role = role;
        }
        if let Some(url) = o.nats_url {
            self.nats.url = url;
        }
        if o.symbols.is_some() || o.rate.is_some() {
            let has_synthetic = self
                .feeds
                .iter()
                .any(|f| matches!(f, FeedSection::Synthetic { .. }));
            if !has_synthetic && !self.feeds.is_empty() {
                return Err(ConfigError::Invalid(
                    "--symbols and --rate configure the synthetic feed, and the config file has \
                     none; add a [[feeds]] entry with kind = \"synthetic\" or drop the flags"
                        .into(),
                ));
            }
            if !has_synthetic {
                self.feeds.push(FeedSection::default_synthetic());
            }
            if let Some(FeedSection::Synthetic { symbols, rate, .. }) = self
                .feeds
                .iter_mut()
                .find(|f| matches!(f, FeedSection::Synthetic { .. }))
            {
                if let Some(s) = o.symbols {
                    *symbols = Some(match s {
                        Symbols::Count(n) => SymbolsSpec::Count(n),
                        Symbols::List(l) => SymbolsSpec::List(l),
                    });
                }
                if let Some(r) = o.rate {
                    *rate = r;
                }
            }
        }
        self.validate()
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.server.workers > 64 {
            return bad(format!(
                "server.workers is {}, at most 64",
                self.server.workers
            ));
        }
        if self.server.shard_inbox_capacity == 0 {
            return bad("server.shard_inbox_capacity must be at least 1".into());
        }
        if self.limits.max_connections == 0
            || self.limits.max_topics_per_connection == 0
            || self.limits.max_topics == 0
        {
            return bad("limits.max_connections, max_topics_per_connection and max_topics must be at least 1".into());
        }
        if self.limits.max_messages_per_second > 0 && self.limits.message_burst == 0 {
            return bad(
                "limits.message_burst must be at least 1 when a message rate is set".into(),
            );
        }
        if self.auth.topics_claim.is_empty() || self.auth.publish_claim.is_empty() {
            return bad("auth.topics_claim and auth.publish_claim must not be empty".into());
        }
        if self
            .auth
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
        {
            return bad("auth.metrics_token must be at least 16 bytes".into());
        }
        self.auth.authenticator()?;
        if self.limits.max_message_bytes < 128 {
            return bad(format!(
                "limits.max_message_bytes is {}, at least 128",
                self.limits.max_message_bytes
            ));
        }
        if self.backpressure.max_queued_frames == 0
            || !(1024..=MAX_QUEUED_BYTES).contains(&self.backpressure.max_queued_bytes)
        {
            return bad(format!(
                "backpressure.max_queued_frames must be >= 1 and max_queued_bytes within 1024..={MAX_QUEUED_BYTES}"
            ));
        }
        if self.keepalive.ping_interval_ms < 100 || self.keepalive.pong_timeout_ms < 100 {
            return bad("keepalive intervals must be at least 100 ms".into());
        }
        let mut names = std::collections::HashSet::new();
        for f in &self.feeds {
            f.validate().map_err(ConfigError::Invalid)?;
            if !names.insert(f.name()) {
                return bad(format!(
                    "feed name {:?} is used twice; names label metrics and must be unique",
                    f.name()
                ));
            }
        }
        if self.server.role == Role::Ingest {
            let n = &self.nats;
            if n.url.trim().is_empty() {
                return bad("nats.url must be set for server.role = \"ingest\"".into());
            }
            tickcast_ingest::nats::validate_names(&n.subject_prefix, &n.stream)
                .map_err(|e| ConfigError::Invalid(format!("nats: {e}")))?;
            if n.queue_capacity == 0 || n.connect_timeout_ms < 100 {
                return bad(
                    "nats.queue_capacity must be >= 1 and connect_timeout_ms >= 100".into(),
                );
            }
        }
        let http = self
            .feeds
            .iter()
            .filter(|f| matches!(f, FeedSection::Http { .. }))
            .count();
        if http > 1 {
            return bad(format!(
                "{http} http feeds configured; POST /publish can feed only one"
            ));
        }
        Ok(())
    }

    /// Number of shards after resolving `workers = 0`.
    pub fn shards(&self) -> usize {
        match self.server.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        }
    }

    /// The bus settings.
    pub fn bus(&self) -> BusConfig {
        BusConfig {
            shards: self.shards(),
            inbox_capacity: self.server.shard_inbox_capacity,
            max_topics: self.limits.max_topics,
            max_requested_topics: self.limits.max_requested_topics,
        }
    }

    /// The gateway settings; fails when the auth keys cannot be loaded.
    pub fn gateway(&self) -> Result<GatewayConfig, ConfigError> {
        let ms = Duration::from_millis;
        Ok(GatewayConfig {
            listen: self.server.listen,
            backlog: self.server.backlog,
            flush_interval: Duration::from_millis(self.server.flush_interval_ms),
            adaptive_flush_max: Duration::from_millis(self.server.adaptive_flush_max_ms),
            socket_send_buffer: (self.server.socket_send_buffer_bytes > 0)
                .then_some(self.server.socket_send_buffer_bytes),
            max_connections: self.limits.max_connections,
            max_connections_per_ip: self.limits.max_connections_per_ip,
            rate_limit: RateLimit {
                per_second: self.limits.max_messages_per_second,
                burst: self.limits.message_burst,
                max_violations: self.limits.max_rate_violations,
            },
            max_topics_per_connection: self.limits.max_topics_per_connection,
            requested_topic_grace: ms(self.limits.requested_topic_grace_ms),
            max_message_bytes: self.limits.max_message_bytes,
            queue: QueueLimits {
                max_frames: self.backpressure.max_queued_frames,
                max_bytes: self.backpressure.max_queued_bytes,
                policy: self.backpressure.policy,
                max_lag: ms(self.backpressure.max_lag_ms),
            },
            ping_interval: ms(self.keepalive.ping_interval_ms),
            pong_timeout: ms(self.keepalive.pong_timeout_ms),
            write_timeout: ms(self.backpressure.write_timeout_ms),
            handshake_timeout: ms(self.limits.handshake_timeout_ms),
            shutdown_grace: ms(self.server.shutdown_grace_ms),
            auth: self.auth.authenticator()?,
            tls: self.tls.server_config()?,
            allowed_origins: self.auth.allowed_origins.clone(),
            metrics_token: self.auth.metrics_token.clone(),
            heap_trim: self.heap_trim,
        })
    }

    /// The NATS sink settings, for `server.role = "ingest"`.
    pub fn nats_sink(&self) -> NatsSinkConfig {
        NatsSinkConfig {
            url: self.nats.url.clone(),
            subject_prefix: self.nats.subject_prefix.clone(),
            stream: self.nats.stream.clone(),
            storage: match self.nats.stream_storage {
                StorageSpec::File => StreamStorage::File,
                StorageSpec::Memory => StreamStorage::Memory,
            },
            queue_capacity: self.nats.queue_capacity,
            connect_timeout: Duration::from_millis(self.nats.connect_timeout_ms),
        }
    }

    /// Every feed's plan, with the default synthetic feed when none is configured.
    pub fn feed_plans(&self) -> Vec<FeedPlan> {
        if self.feeds.is_empty() {
            return vec![FeedSection::default_synthetic().plan()];
        }
        self.feeds.iter().map(FeedSection::plan).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_parses() {
        let text = include_str!("../../../config/tickcast.toml");
        let c = Config::from_toml(text).unwrap();
        assert_eq!(c.server.listen.port(), 8080);
        assert_eq!(c.feed_plans().len(), 1);
        // The sample configs the README shows parse too.
        let replay = Config::from_toml(include_str!("../../../config/replay.toml")).unwrap();
        assert!(matches!(replay.feed_plans()[0].spec, FeedSpec::Replay(_)));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(matches!(
            Config::from_toml("[server]\nlisen = \"x\""),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::from_toml("[limits]\nmax_connections = 0"),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            Config::from_toml("[backpressure]\npolicy = \"explode\""),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn auth_and_rate_limits_parse_and_are_checked() {
        let c = Config::from_toml(
            r#"
            [limits]
            max_connections_per_ip = 8
            max_messages_per_second = 5
            [auth]
            enabled = true
            hs256_secret = "0123456789abcdef0123456789abcdef"
            allowed_origins = ["https://board.example"]
            [[auth.api_keys]]
            key = "k-123"
            topics = ["ticker.*"]
            "#,
        )
        .unwrap();
        let g = c.gateway().unwrap();
        assert_eq!(g.max_connections_per_ip, 8);
        assert_eq!(g.rate_limit.per_second, 5);
        assert!(g.auth.is_some());
        assert_eq!(g.allowed_origins, ["https://board.example"]);
        let shown = format!("{c:?} {g:?}");
        assert!(
            !shown.contains("k-123") && !shown.contains("0123456789abcdef"),
            "{shown}"
        );
        assert!(Config::default().gateway().unwrap().auth.is_none());

        let invalid = |toml: &str| match Config::from_toml(toml) {
            Err(ConfigError::Invalid(m)) => m,
            other => panic!("{toml}: {other:?}"),
        };
        assert!(invalid("[auth]\nenabled = true").contains("no api key"));
        assert!(invalid("[auth]\nenabled = true\nhs256_secret = \"short\"").contains("32 bytes"));
        assert!(invalid(
            "[auth]\nenabled = true\n[[auth.api_keys]]\nkey = \"k\"\ntopics = [\"bad topic\"]"
        )
        .contains("api key #0"));
        assert!(matches!(
            Config::from_toml(
                "[auth]\nenabled = true\nrs256_public_key_file = \"/nonexistent.pem\""
            ),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn relative_paths_resolve_from_the_config_files_folder() {
        let dir = std::env::temp_dir().join(format!("tickcast-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "[[feeds]]\nkind = \"replay\"\npath = \"day.jsonl\"\n\
             [[feeds]]\nkind = \"replay\"\nname = \"abs\"\npath = \"/data/day.jsonl\"\n",
        )
        .unwrap();
        let c = Config::from_file(&file).unwrap();
        let paths: Vec<PathBuf> = c
            .feeds
            .iter()
            .map(|f| match f {
                FeedSection::Replay { path, .. } => path.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            paths,
            [dir.join("day.jsonl"), PathBuf::from("/data/day.jsonl")]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn symbols_without_a_synthetic_feed_are_refused() {
        let mut c = Config::from_toml("[[feeds]]\nkind = \"http\"").unwrap();
        let err = c
            .apply(Overrides {
                symbols: Some(Symbols::Count(3)),
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("has none"), "{err}");
        assert_eq!(c.feeds.len(), 1, "no synthetic feed slipped in");
    }

    #[test]
    fn overrides_configure_the_synthetic_feed() {
        let mut c = Config::default();
        c.apply(Overrides {
            symbols: Some(Symbols::Count(3)),
            rate: Some(10.0),
            ..Default::default()
        })
        .unwrap();
        let synthetic = |c: &Config| match c.feed_plans().remove(0).spec {
            FeedSpec::Synthetic(s) => s,
            other => panic!("{other:?}"),
        };
        let feed = synthetic(&c);
        assert_eq!(feed.symbols.names(), vec!["SYM0000", "SYM0001", "SYM0002"]);
        assert_eq!(feed.rate, 10.0);
        let c =
            Config::from_toml("[[feeds]]\nkind = \"synthetic\"\nsymbols = [\"AAPL\"]\nrate = 5")
                .unwrap();
        assert_eq!(synthetic(&c).symbols.names(), vec!["AAPL"]);
    }

    #[test]
    fn feed_kinds_parse_with_defaults_and_are_checked() {
        let c = Config::from_toml(
            r#"
            [[feeds]]
            kind = "tcp"
            listen = "127.0.0.1:0"
            required = false
            [[feeds]]
            kind = "replay"
            path = "ticks.CSV"
            speed = 0
            loop = true
            [[feeds]]
            kind = "upstream"
            url = "ws://127.0.0.1:1/ws"
            adapter = "binance"
            subscribe = ["BTCUSDT"]
            max_idle_ms = 5000
            [[feeds]]
            kind = "http"
            "#,
        )
        .unwrap();
        let plans = c.feed_plans();
        assert_eq!(plans.len(), 4);
        assert!(!plans[0].required && plans[1].required);
        match &plans[1].spec {
            FeedSpec::Replay(r) => {
                assert_eq!(r.format, ReplayFormat::Csv, "format from the extension");
                assert!(r.looping && r.speed == 0.0);
            }
            other => panic!("{other:?}"),
        }
        match &plans[2].spec {
            FeedSpec::Upstream(u) => {
                assert_eq!(u.adapter, AdapterKind::Binance);
                assert_eq!(u.backoff_min, Duration::from_millis(100));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(plans[2].max_idle, Some(Duration::from_millis(5000)));

        let invalid = |toml: &str| match Config::from_toml(toml) {
            Err(ConfigError::Invalid(m)) => m,
            other => panic!("{toml}: {other:?}"),
        };
        assert!(
            invalid("[[feeds]]\nkind = \"http\"\n[[feeds]]\nkind = \"http\"\nname = \"h2\"")
                .contains("POST /publish")
        );
        assert!(invalid("[[feeds]]\nkind = \"http\"\n[[feeds]]\nkind = \"tcp\"\nname = \"http\"\nlisten = \"127.0.0.1:0\"")
            .contains("used twice"));
        assert!(invalid(
            "[[feeds]]\nkind = \"upstream\"\nname = \"up\"\nurl = \"http://x\"\nsubscribe = [\"a\"]"
        )
        .contains("feed up"));
        assert!(matches!(
            Config::from_toml("[[feeds]]\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"\nbogus = 1"),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn feed_tuning_and_tls_keys_have_defaults_and_are_checked() {
        let tcp = |extra: &str| {
            format!("[[feeds]]\nkind = \"tcp\"\nname = \"t\"\nlisten = \"127.0.0.1:0\"\n{extra}")
        };
        let up = |url: &str, extra: &str| {
            format!("[[feeds]]\nkind = \"upstream\"\nname = \"u\"\nurl = \"{url}\"\nsubscribe = [\"a\"]\n{extra}")
        };
        let plan = |toml: &str| Config::from_toml(toml).unwrap().feed_plans().remove(0).spec;
        let invalid = |toml: &str| match Config::from_toml(toml) {
            Err(ConfigError::Invalid(m)) => m,
            other => panic!("{toml}: {other:?}"),
        };

        // Defaults are the former constants.
        match plan(&tcp("")) {
            FeedSpec::Tcp(t) => assert_eq!((t.read_buffer_bytes, t.queue_chunks), (65_536, 64)),
            other => panic!("{other:?}"),
        }
        match plan(&up("ws://127.0.0.1:1/ws", "")) {
            FeedSpec::Upstream(u) => {
                assert_eq!(u.connect_timeout, Duration::from_millis(10_000));
                assert_eq!(u.ca_file, None);
            }
            other => panic!("{other:?}"),
        }
        // Set values arrive in the feed's settings.
        match plan(&tcp("read_buffer_bytes = 4096\nqueue_chunks = 8")) {
            FeedSpec::Tcp(t) => assert_eq!((t.read_buffer_bytes, t.queue_chunks), (4096, 8)),
            other => panic!("{other:?}"),
        }
        match plan(&up(
            "wss://feed.example:8443/ws",
            "connect_timeout_ms = 2500\nca_file = \"/etc/tickcast/ca.pem\"",
        )) {
            FeedSpec::Upstream(u) => {
                assert_eq!(u.connect_timeout, Duration::from_millis(2500));
                assert_eq!(u.ca_file, Some(PathBuf::from("/etc/tickcast/ca.pem")));
            }
            other => panic!("{other:?}"),
        }

        // Out of range: the message names the feed, the key, the value and the range.
        let m = invalid(&tcp("read_buffer_bytes = 100"));
        assert!(
            m.contains("feed t") && m.contains("read_buffer_bytes is 100"),
            "{m}"
        );
        assert!(m.contains("1024 to 16777216"), "{m}");
        let m = invalid(&tcp("read_buffer_bytes = 1073741824"));
        assert!(m.contains("read_buffer_bytes"), "{m}");
        let m = invalid(&tcp("queue_chunks = 0"));
        assert!(
            m.contains("feed t") && m.contains("queue_chunks is 0, must be 1 to 65536"),
            "{m}"
        );
        let m = invalid(&up("ws://127.0.0.1:1/ws", "connect_timeout_ms = 99"));
        assert!(
            m.contains("feed u") && m.contains("connect_timeout_ms is 99, must be >= 100"),
            "{m}"
        );
        let m = invalid(&up("ws://127.0.0.1:1/ws", "ca_file = \"ca.pem\""));
        assert!(
            m.contains("feed u") && m.contains("only used with a wss:// url"),
            "{m}"
        );
        let m = invalid(&up("wss://127.0.0.1:1/ws", "ca_file = \"\""));
        assert!(m.contains("ca_file must not be empty"), "{m}");
        let m = invalid(&up("https://127.0.0.1:1/ws", ""));
        assert!(m.contains("ws:// or wss://"), "{m}");
        // Wrong types are parse errors.
        assert!(matches!(
            Config::from_toml(&tcp("queue_chunks = -1")),
            Err(ConfigError::Parse { .. })
        ));
    }
}
