//! The configuration file (`config/tickcast.toml` documents every key), its defaults and validation.
//! Precedence: built-in defaults < the file given with `--config` < `TICKCAST_*` env < CLI flags.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tickcast_bus::{BusConfig, OverflowPolicy, QueueLimits};
use tickcast_gateway::GatewayConfig;
use tickcast_ingest::synthetic::{Symbols, SyntheticConfig};

/// Why a configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
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
    /// Sources of ticks.
    pub feeds: Vec<FeedSection>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
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
    /// Time given to flush queued frames at shutdown, in milliseconds.
    pub shutdown_grace_ms: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            backlog: 4096,
            shard_inbox_capacity: 65_536,
            socket_send_buffer_bytes: 0,
            shutdown_grace_ms: 5_000,
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
    /// Topics the server holds in total.
    pub max_topics: usize,
    /// Largest client message in bytes.
    pub max_message_bytes: usize,
    /// Time allowed for an HTTP request head, in milliseconds.
    pub handshake_timeout_ms: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_connections: 100_000,
            max_topics_per_connection: 1024,
            max_topics: 100_000,
            max_message_bytes: 64 * 1024,
            handshake_timeout_ms: 10_000,
        }
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

/// One `[[feeds]]` entry.
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
    },
}

fn default_synthetic_name() -> String {
    "synthetic".into()
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
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<text>".into(),
            source: Box::new(e),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Applies CLI/env overrides. `--symbols`/`--rate` configure the first synthetic feed, adding
    /// one when the file has no feed at all.
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
        if o.symbols.is_some() || o.rate.is_some() {
            if !self
                .feeds
                .iter()
                .any(|f| matches!(f, FeedSection::Synthetic { .. }))
            {
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
        if self.limits.max_message_bytes < 128 {
            return bad(format!(
                "limits.max_message_bytes is {}, at least 128",
                self.limits.max_message_bytes
            ));
        }
        if self.backpressure.max_queued_frames == 0 || self.backpressure.max_queued_bytes < 1024 {
            return bad(
                "backpressure.max_queued_frames must be >= 1 and max_queued_bytes >= 1024".into(),
            );
        }
        if self.keepalive.ping_interval_ms < 100 || self.keepalive.pong_timeout_ms < 100 {
            return bad("keepalive intervals must be at least 100 ms".into());
        }
        for f in &self.feeds {
            let FeedSection::Synthetic {
                name,
                rate,
                symbols,
                ..
            } = f;
            if !(rate.is_finite() && *rate >= 0.0) {
                return bad(format!("feed {name}: rate must be a non-negative number"));
            }
            if matches!(symbols, Some(SymbolsSpec::Count(0)))
                || matches!(symbols, Some(SymbolsSpec::List(l)) if l.is_empty())
            {
                return bad(format!("feed {name}: symbols must not be empty"));
            }
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
        }
    }

    /// The gateway settings.
    pub fn gateway(&self) -> GatewayConfig {
        let ms = Duration::from_millis;
        GatewayConfig {
            listen: self.server.listen,
            backlog: self.server.backlog,
            socket_send_buffer: (self.server.socket_send_buffer_bytes > 0)
                .then_some(self.server.socket_send_buffer_bytes),
            max_connections: self.limits.max_connections,
            max_topics_per_connection: self.limits.max_topics_per_connection,
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
        }
    }

    /// Feed settings, with the default synthetic feed when none is configured.
    pub fn synthetic_feeds(&self) -> Vec<SyntheticConfig> {
        let feeds = if self.feeds.is_empty() {
            vec![FeedSection::default_synthetic()]
        } else {
            self.feeds.clone()
        };
        feeds
            .into_iter()
            .map(
                |FeedSection::Synthetic {
                     name,
                     channel,
                     symbols,
                     rate,
                     seed,
                 }| SyntheticConfig {
                    name,
                    channel,
                    symbols: match symbols {
                        None => Symbols::default(),
                        Some(SymbolsSpec::Count(n)) => Symbols::Count(n),
                        Some(SymbolsSpec::List(l)) => Symbols::List(l),
                    },
                    rate,
                    seed,
                },
            )
            .collect()
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
        assert_eq!(c.synthetic_feeds().len(), 1);
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
    fn overrides_configure_the_synthetic_feed() {
        let mut c = Config::default();
        c.apply(Overrides {
            symbols: Some(Symbols::Count(3)),
            rate: Some(10.0),
            ..Default::default()
        })
        .unwrap();
        let feeds = c.synthetic_feeds();
        assert_eq!(
            feeds[0].symbols.names(),
            vec!["SYM0000", "SYM0001", "SYM0002"]
        );
        assert_eq!(feeds[0].rate, 10.0);
        let c =
            Config::from_toml("[[feeds]]\nkind = \"synthetic\"\nsymbols = [\"AAPL\"]\nrate = 5")
                .unwrap();
        assert_eq!(c.synthetic_feeds()[0].symbols.names(), vec!["AAPL"]);
    }
}
