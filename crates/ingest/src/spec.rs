//! From configuration to running feeds. Owns the `[[feeds]]` entry of the config file
//! ([`FeedConfig`]: one variant per kind, each the kind's own settings struct with its serde
//! defaults), the one set of rules each kind is checked against ([`FeedConfig::validate`], also run
//! by every feed's constructor, so a file and a feed built in code are held to the same rules), and
//! [`build`], which turns an entry into a feed with its stats. Everything that can fail at startup
//! (a busy port, a missing file, a bad URL) fails here, before the server starts, with an error
//! naming the feed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tickcast_bus::Bus;

use crate::feed::{Feed, FeedError};
use crate::http::{HttpConfig, HttpFeed, PublishHook};
use crate::nats::feed::{NatsFeed, NatsFeedConfig};
use crate::replay::{ReplayConfig, ReplayFeed};
use crate::stats::FeedStats;
use crate::synthetic::{SyntheticConfig, SyntheticFeed};
use crate::tcp::{TcpConfig, TcpFeed};
use crate::upstream::{UpstreamConfig, UpstreamFeed};

/// Default longest line (TCP, replay, HTTP) or message body (NATS), in bytes.
pub const DEFAULT_MAX_LINE_BYTES: usize = 4096;
/// Shortest accepted longest-line or message size: room for one tick with short fields.
pub const MIN_LINE_BYTES: usize = 64;

/// One `[[feeds]]` entry: its `kind` picks the variant, the other keys are the kind's settings.
/// Every kind also takes `required` (readiness waits for it, default true) and `max_idle_ms` (a
/// required feed silent this long is not ready; 0 = off, the default).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FeedConfig {
    /// Built-in random walk.
    Synthetic(SyntheticConfig),
    /// NDJSON over TCP.
    Tcp(TcpConfig),
    /// A file played back.
    Replay(ReplayConfig),
    /// Another tickcast or an exchange over WebSocket.
    Upstream(UpstreamConfig),
    /// `POST /publish`.
    Http(HttpConfig),
    /// The ingest tier over NATS (gateway node of a scale-out).
    Nats(NatsFeedConfig),
}

impl FeedConfig {
    /// The feed's name.
    pub fn name(&self) -> &str {
        match self {
            FeedConfig::Synthetic(c) => &c.name,
            FeedConfig::Tcp(c) => &c.name,
            FeedConfig::Replay(c) => &c.name,
            FeedConfig::Upstream(c) => &c.name,
            FeedConfig::Http(c) => &c.name,
            FeedConfig::Nats(c) => &c.name,
        }
    }

    /// The `kind` label.
    pub fn kind(&self) -> &'static str {
        match self {
            FeedConfig::Synthetic(_) => "synthetic",
            FeedConfig::Tcp(_) => "tcp",
            FeedConfig::Replay(_) => "replay",
            FeedConfig::Upstream(_) => "upstream",
            FeedConfig::Http(_) => "http",
            FeedConfig::Nats(_) => "nats",
        }
    }

    /// `/readyz` waits for this feed to be connected (and live, with [`max_idle`](Self::max_idle)).
    pub fn required(&self) -> bool {
        self.readiness().0
    }

    /// A required feed without a tick for this long is not ready; `None` = silence is fine.
    pub fn max_idle(&self) -> Option<Duration> {
        self.readiness().1
    }

    fn readiness(&self) -> (bool, Option<Duration>) {
        match self {
            FeedConfig::Synthetic(c) => (c.required, c.max_idle),
            FeedConfig::Tcp(c) => (c.required, c.max_idle),
            FeedConfig::Replay(c) => (c.required, c.max_idle),
            FeedConfig::Upstream(c) => (c.required, c.max_idle),
            FeedConfig::Http(c) => (c.required, c.max_idle),
            FeedConfig::Nats(c) => (c.required, c.max_idle),
        }
    }

    /// Checks the entry against its kind's rules (no I/O: files and ports are checked by
    /// [`build`]); the feed's constructor runs the same checks.
    pub fn validate(&self) -> Result<(), FeedConfigError> {
        match self {
            FeedConfig::Synthetic(c) => c.validate(),
            FeedConfig::Tcp(c) => c.validate(),
            FeedConfig::Replay(c) => c.validate(),
            FeedConfig::Upstream(c) => c.validate(),
            FeedConfig::Http(c) => c.validate(),
            FeedConfig::Nats(c) => c.validate(),
        }
    }
}

/// Why a feed's settings are unusable: the feed, the key and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("feed {}: {field} {problem}", shown_name(.feed))]
pub struct FeedConfigError {
    /// The feed's name.
    pub feed: String,
    /// The key, as written in the config file.
    pub field: &'static str,
    /// What is wrong, e.g. `is 0, must be >= 1`.
    pub problem: String,
}

fn shown_name(name: &str) -> &str {
    if name.is_empty() {
        "\"\""
    } else {
        name
    }
}

impl FeedConfigError {
    /// `field` of feed `feed` has `problem`.
    pub fn new(feed: &str, field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            feed: feed.to_string(),
            field,
            problem: problem.into(),
        }
    }

    /// Fails unless `value >= min`.
    pub(crate) fn at_least<T>(feed: &str, field: &'static str, value: T, min: T) -> Result<(), Self>
    where
        T: PartialOrd + std::fmt::Display,
    {
        if value >= min {
            Ok(())
        } else {
            Err(Self::new(
                feed,
                field,
                format!("is {value}, must be >= {min}"),
            ))
        }
    }

    /// Fails unless `value` is a finite number >= 0; `zero_means` says what 0 means, if anything.
    pub(crate) fn non_negative(
        feed: &str,
        field: &'static str,
        value: f64,
        zero_means: &str,
    ) -> Result<(), Self> {
        if value.is_finite() && value >= 0.0 {
            Ok(())
        } else {
            Err(Self::new(
                feed,
                field,
                format!("is {value}, must be a non-negative number{zero_means}"),
            ))
        }
    }

    /// Fails when the feed's name is empty (names label metrics).
    pub(crate) fn named(feed: &str) -> Result<(), Self> {
        if feed.is_empty() {
            Err(Self::new(feed, "name", "must not be empty"))
        } else {
            Ok(())
        }
    }
}

impl From<FeedConfigError> for FeedError {
    fn from(e: FeedConfigError) -> Self {
        FeedError::Config {
            reason: format!("{} {}", e.field, e.problem),
            feed: e.feed,
        }
    }
}

/// Serde helpers for the config file's `*_ms` keys, read as [`Duration`]s.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Milliseconds.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }

    /// Milliseconds, 0 = off (`None`).
    pub(crate) fn zero_off<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        u64::deserialize(d).map(|ms| (ms > 0).then(|| Duration::from_millis(ms)))
    }
}

/// Serde default of every feed's `required`.
pub(crate) fn required_by_default() -> bool {
    true
}

/// Serde default of every feed's longest line.
pub(crate) fn default_max_line_bytes() -> usize {
    DEFAULT_MAX_LINE_BYTES
}

/// A feed ready to run.
pub struct BuiltFeed {
    /// The feed.
    pub feed: Box<dyn Feed>,
    /// Its stats (register them for metrics and readiness).
    pub stats: Arc<FeedStats>,
    /// The address it listens on, for feeds that listen (TCP).
    pub local_addr: Option<SocketAddr>,
    /// For the HTTP feed: what the gateway calls for `POST /publish`.
    pub publish_hook: Option<Arc<dyn PublishHook>>,
}

/// Builds the feed of `config` publishing to `bus`: checks it, binds ports and checks files now.
pub fn build(config: FeedConfig, bus: &Arc<Bus>) -> Result<BuiltFeed, FeedError> {
    let stats = FeedStats::new(config.name().to_string(), config.kind());
    stats.set_readiness(config.required(), config.max_idle());
    let mut local_addr = None;
    let mut publish_hook = None;
    let feed: Box<dyn Feed> = match config {
        FeedConfig::Synthetic(c) => Box::new(SyntheticFeed::new(c)?),
        FeedConfig::Tcp(c) => {
            let name = c.name.clone();
            let feed = TcpFeed::bind(c)?;
            local_addr = Some(feed.local_addr().map_err(|error| FeedError::Io {
                feed: name,
                context: "cannot read the bound address".into(),
                error,
            })?);
            Box::new(feed)
        }
        FeedConfig::Replay(c) => Box::new(ReplayFeed::new(c)?),
        FeedConfig::Upstream(c) => Box::new(UpstreamFeed::new(c)?),
        FeedConfig::Nats(c) => Box::new(NatsFeed::new(c)?),
        FeedConfig::Http(c) => {
            let feed = HttpFeed::new(c, bus.clone(), stats.clone())?;
            publish_hook = Some(feed.hook());
            Box::new(feed)
        }
    };
    Ok(BuiltFeed {
        feed,
        stats,
        local_addr,
        publish_hook,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<FeedConfig, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn every_kind_parses_with_its_defaults() {
        let kinds = [
            json!({"kind": "synthetic"}),
            json!({"kind": "tcp", "listen": "127.0.0.1:0"}),
            json!({"kind": "replay", "path": "day.jsonl"}),
            json!({"kind": "upstream", "url": "ws://127.0.0.1:1/ws", "subscribe": ["a"]}),
            json!({"kind": "http"}),
            json!({"kind": "nats"}),
        ];
        for v in kinds {
            let c = parse(v.clone()).unwrap();
            assert_eq!(c.kind(), v["kind"], "{c:?}");
            assert_eq!(c.name(), c.kind(), "the default name is the kind");
            assert!(c.required() && c.max_idle().is_none());
            c.validate().unwrap();
        }
    }

    #[test]
    fn readiness_keys_and_unknown_keys() {
        let c = parse(json!({"kind": "http", "required": false, "max_idle_ms": 5000})).unwrap();
        assert!(!c.required());
        assert_eq!(c.max_idle(), Some(Duration::from_millis(5000)));
        let c = parse(json!({"kind": "http", "max_idle_ms": 0})).unwrap();
        assert_eq!(c.max_idle(), None, "0 = off");
        let e = parse(json!({"kind": "tcp", "listen": "127.0.0.1:0", "bogus": 1})).unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = parse(json!({"kind": "smoke"})).unwrap_err();
        assert!(e.contains("smoke"), "{e}");
        assert!(parse(json!({"kind": "tcp"})).is_err(), "listen is required");
    }

    #[test]
    fn errors_name_the_feed_and_the_field() {
        let e = FeedConfigError::new("t", "queue_chunks", "is 0, must be 1 to 65536");
        assert_eq!(
            e.to_string(),
            "feed t: queue_chunks is 0, must be 1 to 65536"
        );
        let unnamed = parse(json!({"kind": "http", "name": ""})).unwrap();
        assert_eq!(
            unnamed.validate().unwrap_err().to_string(),
            "feed \"\": name must not be empty"
        );
        let as_feed_error = FeedError::from(e);
        assert_eq!(
            as_feed_error.to_string(),
            "feed t: invalid configuration: queue_chunks is 0, must be 1 to 65536"
        );
    }
}
