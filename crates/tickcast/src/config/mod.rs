//! The configuration file (`config/tickcast.toml` documents every key): its sections, one module
//! each with its defaults and rules ([`server`], [`limits`], [`streams`], [`auth`], [`tls`], [`nats`], the
//! [`feeds`] list, whose entries the ingest crate owns), the CLI/env [`overrides`], and
//! [`Config::resolve`], which checks everything once and turns it into the [`Settings`] that
//! [`start`](crate::start) runs.
//!
//! Precedence: built-in defaults < the file given with `--config` < `TICKCAST_*` env < CLI flags.
//! Loading a file only parses it (types and unknown keys); ranges, keys and files are checked by
//! `resolve`, after the overrides.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tickcast_bus::BusConfig;
use tickcast_gateway::GatewayConfig;
use tickcast_ingest::nats::sink::NatsSinkConfig;

pub mod auth;
pub mod feeds;
pub mod limits;
pub mod market;
pub mod nats;
pub mod overrides;
pub mod server;
pub mod streams;
pub mod tls;

pub use auth::{ApiKeySection, AuthSection};
pub use limits::{BackpressureSection, KeepaliveSection, LimitsSection};
pub use market::MarketSection;
pub use nats::{NatsSection, StorageSpec};
pub use overrides::Overrides;
pub use server::{Role, ServerSection};
pub use streams::{HeartbeatsSection, HistorySection, ThrottleSection};
pub use tickcast_ingest::FeedConfig;
pub use tls::TlsSection;

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

/// The whole configuration, as written in the file (plus overrides); only the file's values.
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
    /// Recent ticks kept per topic for recovery.
    pub history: HistorySection,
    /// Heartbeat intervals clients may ask for.
    pub heartbeats: HeartbeatsSection,
    /// Throttle intervals clients may ask for.
    pub throttle: ThrottleSection,
    /// Order books and candles built at ingest.
    pub market: MarketSection,
    /// Logging.
    pub log: LogSection,
    /// Authentication, topic entitlements and the Origin allowlist.
    pub auth: AuthSection,
    /// The NATS sink of an ingest node (`server.role = "ingest"`).
    pub nats: NatsSection,
    /// https/wss on the listener.
    pub tls: TlsSection,
    /// Sources of ticks.
    pub feeds: Vec<FeedConfig>,
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

/// A checked configuration, as each part of the server takes it: what [`start`](crate::start)
/// runs. Runtime hooks the file cannot hold (e.g. `gateway.heap_trim`) are set here by the caller.
#[derive(Debug)]
pub struct Settings {
    /// The bus: shards, inboxes, topic limits.
    pub bus: BusConfig,
    /// The gateway, with the authenticator built and the TLS certificate loaded.
    pub gateway: GatewayConfig,
    /// The feeds, checked; the default synthetic feed when none was configured.
    pub feeds: Vec<FeedConfig>,
    /// The NATS sink, for `server.role = "ingest"`.
    pub nats_sink: Option<NatsSinkConfig>,
}

/// A duration in whole milliseconds, as the file writes it.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Config {
    /// Reads and parses a TOML file. Relative paths in it (key files, certificates, replay
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
        Ok(config)
    }

    /// Parses TOML text (relative paths stay relative to the working directory).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::parse(text)
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
                FeedConfig::Replay(r) => rebase(&mut r.path),
                FeedConfig::Upstream(u) => u.ca_file.iter_mut().for_each(rebase),
                _ => {}
            }
        }
    }

    /// Checks every section once and turns the config into the settings the server runs: builds
    /// the authenticator (reading the RS256 key file) and loads the TLS certificate, each once.
    /// Files a feed needs (replay files, CA files) and its ports are checked when the feed is built.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        self.server.validate()?;
        self.limits.validate()?;
        self.backpressure.validate()?;
        self.keepalive.validate()?;
        self.history.validate()?;
        self.heartbeats.validate()?;
        self.throttle.validate()?;
        self.market.validate()?;
        let mut gateway = GatewayConfig::default();
        self.server.configure(&mut gateway);
        self.limits.configure(&mut gateway);
        self.backpressure.configure(&mut gateway);
        self.keepalive.configure(&mut gateway);
        self.heartbeats.configure(&mut gateway);
        self.throttle.configure(&mut gateway);
        self.auth.configure(&mut gateway)?;
        self.tls.configure(&mut gateway)?;
        let feeds = feeds::resolve(self.feeds)?;
        let nats_sink = match self.server.role {
            Role::Standalone => None,
            Role::Ingest => Some(self.nats.sink()?),
        };
        let bus = BusConfig {
            shards: self.server.shards(),
            inbox_capacity: self.server.shard_inbox_capacity,
            max_topics: self.limits.max_topics,
            max_requested_topics: self.limits.max_requested_topics,
            history: self.history.history(),
            // A standalone node's seqs restart with the process: a new epoch each run.
            epoch: None,
            book_depth: self.market.book_depth()?,
            bars: self.market.bars()?,
        };
        Ok(Settings {
            bus,
            gateway,
            feeds,
            nats_sink,
        })
    }
}

/// What the sections' tests share.
#[cfg(test)]
pub(crate) mod test_util {
    use super::{Config, ConfigError};

    /// The message of the `Invalid` error that resolving `toml` gives; panics on anything else.
    pub(crate) fn invalid(toml: &str) -> String {
        match Config::from_toml(toml).and_then(Config::resolve) {
            Err(ConfigError::Invalid(m)) => m,
            other => panic!("{toml}: {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_parses() {
        let text = include_str!("../../../../config/tickcast.toml");
        let c = Config::from_toml(text).unwrap();
        assert_eq!(c.server.listen.port(), 8080);
        assert_eq!(c.resolve().unwrap().feeds.len(), 1);
        // The sample configs the README shows parse too.
        let replay = Config::from_toml(include_str!("../../../../config/replay.toml")).unwrap();
        assert!(matches!(
            replay.resolve().unwrap().feeds[0],
            FeedConfig::Replay(_)
        ));
    }

    #[test]
    fn every_shipped_config_resolves() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let mut files = Vec::new();
        for dir in [root.clone(), root.join("scaleout")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() >= 4, "{files:?}");
        for path in files {
            let c = Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            c.resolve()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }

    #[test]
    fn defaults_are_the_gateways_and_the_buss() {
        let s = Config::default().resolve().unwrap();
        assert_eq!(
            format!("{:?}", s.gateway),
            format!("{:?}", GatewayConfig::default())
        );
        let bus = BusConfig::default();
        assert_eq!(
            (
                s.bus.inbox_capacity,
                s.bus.max_topics,
                s.bus.max_requested_topics
            ),
            (bus.inbox_capacity, bus.max_topics, bus.max_requested_topics)
        );
        assert!(s.nats_sink.is_none());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(matches!(
            Config::from_toml("[server]\nlisen = \"x\""),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::from_toml("[limits]\nmax_connections = 0").and_then(Config::resolve),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            Config::from_toml("[backpressure]\npolicy = \"explode\""),
            Err(ConfigError::Parse { .. })
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
                FeedConfig::Replay(r) => r.path.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            paths,
            [dir.join("day.jsonl"), PathBuf::from("/data/day.jsonl")]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
