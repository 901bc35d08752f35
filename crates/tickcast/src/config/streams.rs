//! What a stream keeps and tells beyond its ticks: `[history]` (the recent ticks each topic keeps
//! for clients that reconnect with `since`), `[heartbeats]` and `[throttle]` (the intervals
//! clients may ask for). Defaults are the bus's and the gateway's own ([`HistoryConfig::default`],
//! [`IntervalLimits::HEARTBEATS`], [`IntervalLimits::THROTTLE`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tickcast_bus::{HistoryConfig, HistoryLimits};
use tickcast_gateway::{GatewayConfig, IntervalLimits};

use super::{millis, ConfigError};

/// Most ticks one topic may keep: the history is replayed in one go into a client's queue.
const MAX_HISTORY_SIZE: usize = 100_000;

/// One topic's history bounds, as written in the file.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HistoryBounds {
    /// Ticks kept per topic; 0 = no history (a `since` gets `no_history`).
    pub size: usize,
    /// Longest a tick is kept, in milliseconds; 0 = only `size` bounds it.
    pub ttl_ms: u64,
}

impl From<HistoryLimits> for HistoryBounds {
    fn from(l: HistoryLimits) -> Self {
        Self {
            size: l.size,
            ttl_ms: millis(l.ttl),
        }
    }
}

impl HistoryBounds {
    fn limits(self) -> HistoryLimits {
        HistoryLimits {
            size: self.size,
            ttl: Duration::from_millis(self.ttl_ms),
        }
    }

    fn validate(self, key: &str) -> Result<(), ConfigError> {
        if self.size > MAX_HISTORY_SIZE {
            return Err(ConfigError::Invalid(format!(
                "{key}.size is {}, at most {MAX_HISTORY_SIZE}",
                self.size
            )));
        }
        Ok(())
    }
}

/// `[history]`, with `[history.channels.<channel>]` overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistorySection {
    /// Ticks kept per topic.
    pub size: usize,
    /// Longest a tick is kept, in milliseconds; 0 = no age limit.
    pub ttl_ms: u64,
    /// Per channel (the topic's part before the first `.`, e.g. `trade`).
    pub channels: BTreeMap<String, HistoryBounds>,
}

impl Default for HistorySection {
    fn default() -> Self {
        let h = HistoryConfig::default();
        let bounds = HistoryBounds::from(h.default);
        Self {
            size: bounds.size,
            ttl_ms: bounds.ttl_ms,
            channels: h
                .channels
                .into_iter()
                .map(|(c, l)| (c, HistoryBounds::from(l)))
                .collect(),
        }
    }
}

impl HistorySection {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        HistoryBounds {
            size: self.size,
            ttl_ms: self.ttl_ms,
        }
        .validate("history")?;
        for (channel, bounds) in &self.channels {
            if channel.is_empty() || channel.contains('.') {
                return Err(ConfigError::Invalid(format!(
                    "history.channels: {channel:?} is not a channel name (the part of a topic before its first '.')"
                )));
            }
            bounds.validate(&format!("history.channels.{channel}"))?;
        }
        Ok(())
    }

    /// The bus's history settings.
    pub fn history(&self) -> HistoryConfig {
        HistoryConfig {
            default: HistoryBounds {
                size: self.size,
                ttl_ms: self.ttl_ms,
            }
            .limits(),
            channels: self
                .channels
                .iter()
                .map(|(c, b)| (c.clone(), b.limits()))
                .collect(),
        }
    }
}

/// `[heartbeats]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatsSection {
    /// Shortest `heartbeat_ms` a subscribe may ask for.
    pub min_interval_ms: u64,
    /// Longest `heartbeat_ms` a subscribe may ask for.
    pub max_interval_ms: u64,
}

impl Default for HeartbeatsSection {
    fn default() -> Self {
        let h = IntervalLimits::HEARTBEATS;
        Self {
            min_interval_ms: millis(h.min),
            max_interval_ms: millis(h.max),
        }
    }
}

impl HeartbeatsSection {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_interval("heartbeats", self.min_interval_ms, self.max_interval_ms)
    }

    /// Writes the gateway settings this section holds into `g`.
    pub(super) fn configure(&self, g: &mut GatewayConfig) {
        g.heartbeats = interval_limits(self.min_interval_ms, self.max_interval_ms);
    }
}

/// `[throttle]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleSection {
    /// Shortest `throttle_ms` a subscribe may ask for.
    pub min_interval_ms: u64,
    /// Longest `throttle_ms` a subscribe may ask for.
    pub max_interval_ms: u64,
}

impl Default for ThrottleSection {
    fn default() -> Self {
        let t = IntervalLimits::THROTTLE;
        Self {
            min_interval_ms: millis(t.min),
            max_interval_ms: millis(t.max),
        }
    }
}

impl ThrottleSection {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_interval("throttle", self.min_interval_ms, self.max_interval_ms)
    }

    /// Writes the gateway settings this section holds into `g`.
    pub(super) fn configure(&self, g: &mut GatewayConfig) {
        g.throttle = interval_limits(self.min_interval_ms, self.max_interval_ms);
    }
}

/// Shortest interval an operator may allow for heartbeats and throttles: below it one client could
/// make a shard encode or release a frame per topic every few milliseconds.
const MIN_INTERVAL_MS: u64 = 10;

fn check_interval(key: &str, min_ms: u64, max_ms: u64) -> Result<(), ConfigError> {
    if min_ms < MIN_INTERVAL_MS || max_ms < min_ms {
        return Err(ConfigError::Invalid(format!(
            "{key}.min_interval_ms must be at least {MIN_INTERVAL_MS} and at most max_interval_ms"
        )));
    }
    Ok(())
}

fn interval_limits(min_ms: u64, max_ms: u64) -> IntervalLimits {
    IntervalLimits {
        min: Duration::from_millis(min_ms),
        max: Duration::from_millis(max_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_util::invalid;
    use crate::config::Config;

    #[test]
    fn history_per_channel_reaches_the_bus() {
        let s = Config::from_toml(
            "[history]\nsize = 10\nttl_ms = 0\n[history.channels.trade]\nsize = 500\nttl_ms = 60000\n\
             [history.channels.ticker]\nsize = 0\nttl_ms = 0",
        )
        .and_then(Config::resolve)
        .unwrap();
        let h = &s.bus.history;
        assert_eq!(h.for_channel("book").size, 10);
        assert_eq!(h.for_channel("book").ttl, Duration::ZERO);
        assert_eq!(h.for_channel("trade").size, 500);
        assert_eq!(h.for_channel("trade").ttl, Duration::from_secs(60));
        assert_eq!(h.for_channel("ticker").size, 0);
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(invalid("[history]\nsize = 100001").contains("history.size"));
        assert!(invalid("[history.channels.\"a.b\"]\nsize = 1\nttl_ms = 0")
            .contains("not a channel name"));
        assert!(invalid("[heartbeats]\nmin_interval_ms = 5").contains("heartbeats"));
        assert!(
            invalid("[heartbeats]\nmin_interval_ms = 500\nmax_interval_ms = 100")
                .contains("heartbeats")
        );
        assert!(invalid("[throttle]\nmin_interval_ms = 1").contains("throttle.min_interval_ms"));
    }

    #[test]
    fn heartbeat_bounds_reach_the_gateway() {
        let s = Config::from_toml("[heartbeats]\nmin_interval_ms = 50\nmax_interval_ms = 5000")
            .and_then(Config::resolve)
            .unwrap();
        assert_eq!(s.gateway.heartbeats.interval(49), None);
        assert_eq!(
            s.gateway.heartbeats.interval(5000),
            Some(Duration::from_secs(5))
        );
        let s = Config::from_toml(
            "[throttle]\nmin_interval_ms = 100\nmax_interval_ms = 1000\n\
             [limits]\nmax_patterns_per_connection = 2",
        )
        .and_then(Config::resolve)
        .unwrap();
        assert_eq!(s.gateway.throttle.interval(99), None);
        assert_eq!(
            s.gateway.throttle.interval(250),
            Some(Duration::from_millis(250))
        );
        assert_eq!(s.gateway.max_patterns_per_connection, 2);
    }
}
