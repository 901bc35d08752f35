//! What one client may do and how long it may lag: `[limits]` (connections, topics, message sizes
//! and rates, what a closed client may still cost while its close lingers), `[backpressure]` (slow
//! clients) and `[keepalive]` (silent ones). Their defaults are
//! the gateway's and the bus's own ([`GatewayConfig::default`], [`BusConfig::default`]).

use std::time::Duration;

use serde::Deserialize;
use tickcast_bus::{BusConfig, OverflowPolicy, QueueLimits};
use tickcast_gateway::{GatewayConfig, LingerLimits, RateLimit};

use super::{millis, ConfigError};

/// Smallest `limits.max_message_bytes`: room for a subscribe with a few topics.
const MIN_MESSAGE_BYTES: usize = 128;
/// Smallest `backpressure.max_queued_bytes`.
const MIN_QUEUED_BYTES: usize = 1024;
/// Largest `max_queued_bytes`: a queue counts its bytes in a `u32`, and a 1 GiB backlog per client
/// is already far past anything useful.
const MAX_QUEUED_BYTES: usize = 1 << 30;
/// Shortest keepalive interval.
const MIN_KEEPALIVE_MS: u64 = 100;
/// Longest `limits.lingering_time_ms`: a lingering connection keeps its descriptor and its
/// connection slot, and nginx's own default (30 s) is already generous.
const MAX_LINGERING_MS: u64 = 60_000;

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Simultaneous WebSocket sessions.
    pub max_connections: usize,
    /// Topics one connection may subscribe to.
    pub max_topics_per_connection: usize,
    /// Wildcard subscriptions (`ticker.*`) one connection may hold; 0 = wildcards refused.
    pub max_patterns_per_connection: usize,
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
    /// After the server's close frame, longest the connection reads and discards client input
    /// before the socket closes, in milliseconds; 0 = no lingering close.
    pub lingering_time_ms: u64,
    /// Longest a lingering connection waits for the client's next byte, in milliseconds.
    pub lingering_timeout_ms: u64,
    /// Most client bytes a lingering connection reads and discards.
    pub lingering_max_bytes: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let g = GatewayConfig::default();
        let bus = BusConfig::default();
        Self {
            max_connections: g.max_connections,
            max_topics_per_connection: g.max_topics_per_connection,
            max_patterns_per_connection: g.max_patterns_per_connection,
            max_topics: bus.max_topics,
            max_requested_topics: bus.max_requested_topics,
            requested_topic_grace_ms: millis(g.requested_topic_grace),
            max_message_bytes: g.max_message_bytes,
            handshake_timeout_ms: millis(g.handshake_timeout),
            max_connections_per_ip: g.max_connections_per_ip,
            max_messages_per_second: g.rate_limit.per_second,
            message_burst: g.rate_limit.burst,
            max_rate_violations: g.rate_limit.max_violations,
            lingering_time_ms: millis(g.lingering.time),
            lingering_timeout_ms: millis(g.lingering.timeout),
            lingering_max_bytes: g.lingering.max_bytes,
        }
    }
}

impl LimitsSection {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 || self.max_topics_per_connection == 0 || self.max_topics == 0
        {
            return Err(ConfigError::Invalid(
                "limits.max_connections, max_topics_per_connection and max_topics must be at least 1"
                    .into(),
            ));
        }
        if self.max_messages_per_second > 0 && self.message_burst == 0 {
            return Err(ConfigError::Invalid(
                "limits.message_burst must be at least 1 when a message rate is set".into(),
            ));
        }
        if self.max_message_bytes < MIN_MESSAGE_BYTES {
            return Err(ConfigError::Invalid(format!(
                "limits.max_message_bytes is {}, at least {MIN_MESSAGE_BYTES}",
                self.max_message_bytes
            )));
        }
        self.validate_lingering()
    }

    /// Lingering is off at 0 ms; when on, each bound must let it happen and end.
    fn validate_lingering(&self) -> Result<(), ConfigError> {
        let time = self.lingering_time_ms;
        if time > MAX_LINGERING_MS {
            return Err(ConfigError::Invalid(format!(
                "limits.lingering_time_ms is {time}, at most {MAX_LINGERING_MS}"
            )));
        }
        if time == 0 {
            return Ok(());
        }
        if !(1..=time).contains(&self.lingering_timeout_ms) {
            return Err(ConfigError::Invalid(format!(
                "limits.lingering_timeout_ms is {}, within 1..={time} (lingering_time_ms)",
                self.lingering_timeout_ms
            )));
        }
        if self.lingering_max_bytes == 0 {
            return Err(ConfigError::Invalid(
                "limits.lingering_max_bytes must be at least 1 while lingering_time_ms is set \
                 (0 ms turns lingering off)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Writes the gateway settings this section holds into `g` (`max_topics` and
    /// `max_requested_topics` are the bus's).
    pub(super) fn configure(&self, g: &mut GatewayConfig) {
        let ms = Duration::from_millis;
        g.max_connections = self.max_connections;
        g.max_connections_per_ip = self.max_connections_per_ip;
        g.rate_limit = RateLimit {
            per_second: self.max_messages_per_second,
            burst: self.message_burst,
            max_violations: self.max_rate_violations,
        };
        g.max_topics_per_connection = self.max_topics_per_connection;
        g.max_patterns_per_connection = self.max_patterns_per_connection;
        g.requested_topic_grace = ms(self.requested_topic_grace_ms);
        g.max_message_bytes = self.max_message_bytes;
        g.handshake_timeout = ms(self.handshake_timeout_ms);
        g.lingering = LingerLimits {
            time: ms(self.lingering_time_ms),
            timeout: ms(self.lingering_timeout_ms),
            max_bytes: self.lingering_max_bytes,
        };
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
        let g = GatewayConfig::default();
        Self {
            policy: g.queue.policy,
            max_queued_frames: g.queue.max_frames,
            max_queued_bytes: g.queue.max_bytes,
            max_lag_ms: millis(g.queue.max_lag),
            write_timeout_ms: millis(g.write_timeout),
        }
    }
}

impl BackpressureSection {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_queued_frames == 0
            || !(MIN_QUEUED_BYTES..=MAX_QUEUED_BYTES).contains(&self.max_queued_bytes)
        {
            return Err(ConfigError::Invalid(format!(
                "backpressure.max_queued_frames must be >= 1 and max_queued_bytes within \
                 {MIN_QUEUED_BYTES}..={MAX_QUEUED_BYTES}"
            )));
        }
        Ok(())
    }

    /// Writes the gateway settings this section holds into `g`.
    pub(super) fn configure(&self, g: &mut GatewayConfig) {
        let ms = Duration::from_millis;
        g.queue = QueueLimits {
            max_frames: self.max_queued_frames,
            max_bytes: self.max_queued_bytes,
            policy: self.policy,
            max_lag: ms(self.max_lag_ms),
        };
        g.write_timeout = ms(self.write_timeout_ms);
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
        let g = GatewayConfig::default();
        Self {
            ping_interval_ms: millis(g.ping_interval),
            pong_timeout_ms: millis(g.pong_timeout),
        }
    }
}

impl KeepaliveSection {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ping_interval_ms < MIN_KEEPALIVE_MS || self.pong_timeout_ms < MIN_KEEPALIVE_MS {
            return Err(ConfigError::Invalid(format!(
                "keepalive intervals must be at least {MIN_KEEPALIVE_MS} ms"
            )));
        }
        Ok(())
    }

    /// Writes the gateway settings this section holds into `g`.
    pub(super) fn configure(&self, g: &mut GatewayConfig) {
        g.ping_interval = Duration::from_millis(self.ping_interval_ms);
        g.pong_timeout = Duration::from_millis(self.pong_timeout_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_util::invalid;
    use crate::config::Config;

    #[test]
    fn bad_values_are_rejected() {
        assert!(invalid("[limits]\nmax_connections = 0").contains("limits.max_connections"));
        assert!(invalid("[limits]\nmessage_burst = 0").contains("message_burst"));
        assert!(invalid("[limits]\nmax_message_bytes = 127").contains("at least 128"));
        assert!(invalid("[backpressure]\nmax_queued_bytes = 1023").contains("1024..="));
        assert!(invalid("[backpressure]\nmax_queued_frames = 0").contains("max_queued_frames"));
        assert!(invalid("[keepalive]\npong_timeout_ms = 99").contains("at least 100 ms"));
        assert!(invalid("[limits]\nlingering_time_ms = 60001").contains("at most 60000"));
        assert!(invalid("[limits]\nlingering_timeout_ms = 0").contains("within 1..=2000"));
        assert!(
            invalid("[limits]\nlingering_time_ms = 100\nlingering_timeout_ms = 101")
                .contains("lingering_timeout_ms is 101, within 1..=100")
        );
        assert!(invalid("[limits]\nlingering_max_bytes = 0").contains("lingering_max_bytes"));
        // Off: the other two bounds do not matter.
        Config::from_toml(
            "[limits]\nlingering_time_ms = 0\nlingering_timeout_ms = 0\nlingering_max_bytes = 0",
        )
        .and_then(Config::resolve)
        .unwrap();
        // No rate: no burst needed.
        Config::from_toml("[limits]\nmax_messages_per_second = 0\nmessage_burst = 0")
            .and_then(Config::resolve)
            .unwrap();
    }

    #[test]
    fn values_arrive_in_the_gateway_settings() {
        let s = Config::from_toml(
            "[limits]\nmax_topics = 7\nmax_connections_per_ip = 8\nmax_messages_per_second = 5\n\
             lingering_time_ms = 750\nlingering_timeout_ms = 50\nlingering_max_bytes = 4096\n\
             [backpressure]\npolicy = \"disconnect\"\nmax_lag_ms = 1500\n\
             [keepalive]\nping_interval_ms = 250",
        )
        .and_then(Config::resolve)
        .unwrap();
        assert_eq!(s.bus.max_topics, 7);
        assert_eq!(s.gateway.max_connections_per_ip, 8);
        assert_eq!(s.gateway.rate_limit.per_second, 5);
        assert_eq!(s.gateway.queue.policy, OverflowPolicy::Disconnect);
        assert_eq!(s.gateway.queue.max_lag, Duration::from_millis(1500));
        assert_eq!(s.gateway.ping_interval, Duration::from_millis(250));
        assert_eq!(
            s.gateway.lingering,
            LingerLimits {
                time: Duration::from_millis(750),
                timeout: Duration::from_millis(50),
                max_bytes: 4096,
            }
        );
    }
}
