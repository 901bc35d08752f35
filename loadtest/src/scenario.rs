//! Run settings: their defaults, named scenario files (`loadtest/scenarios/*.toml`, also built
//! into the binary), and the checks that turn bad combinations into one clear error.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::topics::Assign;

/// Scenarios shipped with the tool, embedded so the binary works from any directory.
const BUNDLED: &[(&str, &str)] = &[
    ("smoke", include_str!("../scenarios/smoke.toml")),
    ("fanout-1k", include_str!("../scenarios/fanout-1k.toml")),
    ("fanout-10k", include_str!("../scenarios/fanout-10k.toml")),
    (
        "slow-consumers",
        include_str!("../scenarios/slow-consumers.toml"),
    ),
    ("c50k", include_str!("../scenarios/c50k.toml")),
    ("dashboards", include_str!("../scenarios/dashboards.toml")),
    ("books", include_str!("../scenarios/books.toml")),
    ("soak", include_str!("../scenarios/soak.toml")),
];

/// Ephemeral ports Linux hands out per source address by default (32768..=60999); used when
/// /proc/sys/net/ipv4/ip_local_port_range cannot be read.
const DEFAULT_EPHEMERAL_PORTS: usize = 28_232;

/// Upper bounds that keep every loop of a run bounded.
const MAX_CONNS: usize = 1_000_000;
const MAX_PER_CONN: usize = 10_000;
const MAX_SECONDS: f64 = 3_600.0;
const MAX_THREADS: usize = 64;
const MAX_PUBLISH_RATE: f64 = 50_000_000.0;
const MAX_PUBLISH_CONNS: usize = 1_024;

/// A setting or scenario that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A name that is neither a bundled scenario nor a file.
    #[error(
        "unknown scenario {name:?}: known scenarios are {known}, or give a path to a .toml file"
    )]
    UnknownScenario {
        /// What was asked for.
        name: String,
        /// Bundled names, comma separated.
        known: String,
    },
    /// A scenario file could not be read.
    #[error("cannot read scenario {path}: {err}")]
    Read {
        /// File path.
        path: String,
        /// I/O error.
        err: std::io::Error,
    },
    /// A scenario file is not valid TOML for [`Settings`].
    #[error("scenario {name}: {err}")]
    Parse {
        /// Scenario name or path.
        name: String,
        /// TOML error, flattened to one line.
        err: String,
    },
    /// A value out of range or a contradiction between values.
    #[error("{0}")]
    Invalid(String),
}

/// What the run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// WebSocket subscribers only.
    Subscribe,
    /// NDJSON publishers only.
    Publish,
    /// Both in one run: publishers feed what subscribers measure.
    Both,
}

impl Mode {
    /// True when subscribers run.
    pub fn subscribes(self) -> bool {
        matches!(self, Mode::Subscribe | Mode::Both)
    }

    /// True when publishers run.
    pub fn publishes(self) -> bool {
        matches!(self, Mode::Publish | Mode::Both)
    }
}

/// How slow connections misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SlowMode {
    /// Read at most `slow_rate` messages per second.
    Cap,
    /// Stop reading after the subscription ack until the window ends, then drain to see
    /// whether the server dropped us.
    Stall,
}

/// Publisher settings (`[publish]` in a scenario).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PublishSettings {
    /// tickcast's TCP/NDJSON feed input, `HOST:PORT` (loopback).
    pub addr: String,
    /// Total ticks per second over all publisher connections (open loop).
    pub rate: f64,
    /// How many of the run's topics to publish to (0 = all of them).
    pub symbols: usize,
    /// Publisher TCP connections; the rate is split evenly.
    pub conns: usize,
}

impl Default for PublishSettings {
    fn default() -> Self {
        Self {
            addr: String::new(),
            rate: 10_000.0,
            symbols: 0,
            conns: 4,
        }
    }
}

/// tickcast's `[backpressure] policy`: what its queue does for a client that cannot keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerPolicy {
    /// Keep only the newest pending tick per topic (`conflated` gap markers).
    Conflate,
    /// Drop the oldest queued tick (`dropped` gap markers).
    DropOldest,
    /// Close the connection with 1008.
    Disconnect,
}

impl ServerPolicy {
    /// The policy as tickcast's config spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerPolicy::Conflate => "conflate",
            ServerPolicy::DropOldest => "drop_oldest",
            ServerPolicy::Disconnect => "disconnect",
        }
    }
}

/// What the server under test is started with (`[server]`): used by `run.sh` to start
/// tickcast (`--print-server-args` for its flags, `--print-server-config` for a config file with
/// the rest) and by the report to compute the expected delivery rate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// `--symbols` of tickcast's synthetic feed (0 = no synthetic feed / unknown).
    pub symbols: usize,
    /// `--rate` of tickcast's synthetic feed in ticks/s over all symbols (0 = unknown).
    pub rate: f64,
    /// `market_rate` of tickcast's synthetic feed: book changes per second over all symbols,
    /// one in five also a trade (0 = unknown / the server's default). Goes into the config file
    /// `--print-server-config` prints, and gives the expected rate of book and trade runs.
    pub market_rate: f64,
    /// tickcast's `[backpressure] policy` (absent = the server's default, `conflate`).
    pub policy: Option<ServerPolicy>,
    /// tickcast's `[backpressure] max_queued_frames`: ticks queued per client before the policy
    /// applies (0 = the server's default, 1024).
    pub max_queued_frames: usize,
    /// tickcast's `[server] socket_send_buffer_bytes`: SO_SNDBUF of client sockets (0 = the
    /// server's default, the kernel's autotuning, which holds megabytes of backlog before the
    /// server's own queue and policy see anything).
    pub socket_send_buffer_bytes: usize,
}

/// Every knob of a run. Scenario files set any subset; command-line flags override them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// One line saying what the scenario shows.
    pub description: String,
    /// Subscribe, publish or both.
    pub mode: Mode,
    /// Server WebSocket URL (loopback only).
    pub url: String,
    /// Subscriber connections.
    pub conns: usize,
    /// Topics per connection (K).
    pub per_conn: usize,
    /// Size of the `topic_prefix{:04}` topic set (T).
    pub topics: usize,
    /// Prefix of pattern topics.
    pub topic_prefix: String,
    /// Explicit topics; when set, replaces the pattern.
    pub topic_list: Vec<String>,
    /// Take the topic set from the server's `GET /topics` (only the topics of the channel).
    pub topics_from_server: bool,
    /// Channel subscribed to: `ticker`, `book`, `trade`, `bar.1s`, `bar.1m`, ... It replaces the
    /// channel of `topic_prefix` (`book` makes `ticker.SYM` into `book.SYM`) and of each
    /// `topic_list` entry (a bare symbol gets it), and filters `topics_from_server`. Unset: the
    /// channel of `topic_prefix` (`ticker` by default).
    pub channel: Option<String>,
    /// How connections choose their topics.
    pub assign: Assign,
    /// Seed for random assignment and slow-connection choice.
    pub seed: u64,
    /// Receive threads (each a single-threaded runtime owning a share of the connections).
    pub threads: usize,
    /// New connections per second during the ramp (0 = as fast as `ramp_parallel` allows).
    pub ramp_rate: f64,
    /// Handshakes in flight at once; keep below the server's listen backlog.
    pub ramp_parallel: usize,
    /// Longest ramp; the window then starts with whatever connected.
    pub ramp_timeout_s: f64,
    /// Limit for one connect + upgrade.
    pub connect_timeout_s: f64,
    /// Time between the end of the ramp and the measured window.
    pub warmup_s: f64,
    /// Length of the measured window.
    pub duration_s: f64,
    /// Take a latency sample every Nth tick per receive thread (rounded up to a power of two).
    pub sample_every: u32,
    /// Local source addresses used round-robin (127.x.y.z); needed beyond ~28k connections.
    pub src_ips: Vec<String>,
    /// Share of connections (0..1) that are slow readers.
    pub slow_share: f64,
    /// How slow readers behave.
    pub slow_mode: SlowMode,
    /// Messages per second a `cap` slow reader reads.
    pub slow_rate: f64,
    /// SO_RCVBUF of slow readers in bytes (0 = system default, which on Linux autotunes up to
    /// megabytes and hides backpressure for minutes).
    pub slow_recv_buffer: u32,
    /// Churn: mean seconds a connection lives before it unsubscribes, closes and reconnects
    /// (each lifetime drawn from 0.5..1.5 of it); 0 = connections live for the whole run.
    pub churn_s: f64,
    /// Subscribe with `"throttle_ms"`: at most one tick per topic per this many ms (0 = off). The
    /// seqs a throttle skips are not gaps: a throttled run checks that seqs only go forward.
    pub throttle_ms: u64,
    /// Publisher settings.
    pub publish: PublishSettings,
    /// Server settings (informational for the load generator).
    pub server: ServerSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            description: String::new(),
            mode: Mode::Subscribe,
            url: "ws://127.0.0.1:8080/ws".into(),
            conns: 100,
            per_conn: 10,
            topics: 100,
            topic_prefix: "ticker.SYM".into(),
            topic_list: Vec::new(),
            topics_from_server: false,
            channel: None,
            assign: Assign::Sequential,
            seed: 1,
            threads: 1,
            ramp_rate: 0.0,
            ramp_parallel: 100,
            ramp_timeout_s: 60.0,
            connect_timeout_s: 10.0,
            warmup_s: 3.0,
            duration_s: 10.0,
            sample_every: 1,
            src_ips: Vec::new(),
            slow_share: 0.0,
            slow_mode: SlowMode::Cap,
            slow_rate: 100.0,
            slow_recv_buffer: 4096,
            churn_s: 0.0,
            throttle_ms: 0,
            publish: PublishSettings::default(),
            server: ServerSettings::default(),
        }
    }
}

/// Names of the bundled scenarios.
pub fn bundled_names() -> Vec<&'static str> {
    BUNDLED.iter().map(|(n, _)| *n).collect()
}

/// Loads a scenario by bundled name or by path (anything with `/` or ending in `.toml`).
pub fn load(name_or_path: &str) -> Result<Settings, ConfigError> {
    let looks_like_path = name_or_path.contains('/') || name_or_path.ends_with(".toml");
    let text = if looks_like_path {
        std::fs::read_to_string(Path::new(name_or_path)).map_err(|err| ConfigError::Read {
            path: name_or_path.to_string(),
            err,
        })?
    } else {
        BUNDLED
            .iter()
            .find(|(n, _)| *n == name_or_path)
            .map(|(_, t)| t.to_string())
            .ok_or_else(|| ConfigError::UnknownScenario {
                name: name_or_path.to_string(),
                known: bundled_names().join(", "),
            })?
    };
    parse(name_or_path, &text)
}

/// Parses scenario TOML.
pub fn parse(name: &str, text: &str) -> Result<Settings, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        name: name.to_string(),
        // toml's messages span several lines with a source excerpt; keep the error one line.
        err: e.message().replace('\n', " "),
    })
}

impl Settings {
    /// Rejects values that cannot make a sensible, bounded run.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let secs = |name: &str, v: f64, min_excl: bool| -> Result<(), ConfigError> {
            let ok = v.is_finite() && v <= MAX_SECONDS && if min_excl { v > 0.0 } else { v >= 0.0 };
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!(
                    "--{name} must be {} and at most {MAX_SECONDS} s (got {v})",
                    if min_excl { "> 0" } else { ">= 0" }
                )))
            }
        };
        secs("duration", self.duration_s, true)?;
        secs("warmup", self.warmup_s, false)?;
        secs("ramp-timeout", self.ramp_timeout_s, true)?;
        secs("connect-timeout", self.connect_timeout_s, true)?;
        secs("churn", self.churn_s, false)?;
        if self.mode.subscribes() {
            if self.conns == 0 {
                return bad(
                    "--conns must be at least 1 (got 0); use --mode publish to only publish".into(),
                );
            }
            if self.conns > MAX_CONNS {
                return bad(format!(
                    "--conns must be at most {MAX_CONNS} (got {})",
                    self.conns
                ));
            }
            if self.per_conn == 0 || self.per_conn > MAX_PER_CONN {
                return bad(format!(
                    "--per-conn must be between 1 and {MAX_PER_CONN} (got {})",
                    self.per_conn
                ));
            }
            if !self.topics_from_server && self.topic_list.is_empty() {
                if self.topics == 0 {
                    return bad("--topics must be at least 1 (got 0)".into());
                }
                if self.per_conn > self.topics {
                    return bad(format!(
                        "--per-conn ({}) cannot exceed --topics ({}): topics per connection are distinct",
                        self.per_conn, self.topics
                    ));
                }
            }
            if let Some(c) = &self.channel {
                let parts: Vec<&str> = c.split('.').collect();
                let ok_part = |p: &str| {
                    !p.is_empty()
                        && p.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                };
                let ok = parts.iter().all(|p| ok_part(p))
                    && match parts[0] {
                        "bar" => parts.len() == 2,
                        _ => parts.len() == 1,
                    };
                if !ok {
                    return bad(format!(
                        "--channel must be a channel like ticker, book, trade or bar.1s (got {c:?})"
                    ));
                }
            }
            if self.threads == 0 || self.threads > MAX_THREADS {
                return bad(format!(
                    "--threads must be between 1 and {MAX_THREADS} (got {})",
                    self.threads
                ));
            }
            if self.ramp_parallel == 0 {
                return bad("--ramp-parallel must be at least 1".into());
            }
            if !(self.ramp_rate.is_finite() && self.ramp_rate >= 0.0) {
                return bad(format!("--ramp-rate must be >= 0 (got {})", self.ramp_rate));
            }
            if self.sample_every == 0 {
                return bad("--sample-every must be at least 1".into());
            }
            if !(0.0..=1.0).contains(&self.slow_share) {
                return bad(format!(
                    "--slow-share must be between 0 and 1 (got {})",
                    self.slow_share
                ));
            }
            if self.slow_share > 0.0
                && self.slow_mode == SlowMode::Cap
                && !(self.slow_rate.is_finite() && self.slow_rate > 0.0)
            {
                return bad(format!("--slow-rate must be > 0 (got {})", self.slow_rate));
            }
            let ips = self.src_ips.len().max(1);
            let ports = ephemeral_ports();
            if self.conns.div_ceil(ips) > ports {
                return bad(format!(
                    "{} connections over {ips} source address(es) need more than the {ports} ephemeral \
                     ports one address has: add --src-ips 127.0.0.1,127.0.0.2,... (at least {} addresses)",
                    self.conns,
                    self.conns.div_ceil(ports)
                ));
            }
        }
        if self.mode.publishes() {
            if self.publish.addr.is_empty() {
                return bad(
                    "publish mode needs --publish-addr HOST:PORT (tickcast's NDJSON feed input)"
                        .into(),
                );
            }
            if !(self.publish.rate.is_finite()
                && self.publish.rate > 0.0
                && self.publish.rate <= MAX_PUBLISH_RATE)
            {
                return bad(format!(
                    "--publish-rate must be > 0 and at most {MAX_PUBLISH_RATE} (got {})",
                    self.publish.rate
                ));
            }
            if self.publish.conns == 0 || self.publish.conns > MAX_PUBLISH_CONNS {
                return bad(format!(
                    "--publish-conns must be between 1 and {MAX_PUBLISH_CONNS} (got {})",
                    self.publish.conns
                ));
            }
            if self.topics_from_server && !self.mode.subscribes() {
                return bad("--topics-from-server needs subscribers; publishers need a topic pattern or list".into());
            }
        }
        Ok(())
    }

    /// The channel the run subscribes to: `channel`, or `topic_prefix`'s.
    pub fn effective_channel(&self) -> String {
        match &self.channel {
            Some(c) => c.clone(),
            None => channel_of(&self.topic_prefix).to_string(),
        }
    }

    /// The prefix of pattern topics: `topic_prefix` with its channel replaced by `channel`.
    pub fn pattern_prefix(&self) -> String {
        match &self.channel {
            Some(c) => with_channel(&self.topic_prefix, c),
            None => self.topic_prefix.clone(),
        }
    }

    /// `topic_list` with each entry's channel replaced by `channel` (when set).
    pub fn resolved_topic_list(&self) -> Vec<String> {
        match &self.channel {
            Some(c) => self.topic_list.iter().map(|t| with_channel(t, c)).collect(),
            None => self.topic_list.clone(),
        }
    }

    /// Messages per second one topic of the run's channel gets from the synthetic feed of
    /// `[server]` (0 when unknown): `rate / symbols` for tickers, `market_rate / symbols` for
    /// books, a fifth of that for trades.
    pub fn feed_rate_per_topic(&self) -> f64 {
        let symbols = if self.server.symbols > 0 {
            self.server.symbols
        } else {
            self.topics
        } as f64;
        let total = match self.effective_channel().as_str() {
            "ticker" => self.server.rate,
            "book" => self.server.market_rate,
            "trade" => self.server.market_rate / 5.0,
            _ => 0.0,
        };
        if symbols > 0.0 {
            total / symbols
        } else {
            0.0
        }
    }

    /// Latency sampling interval as a mask (interval rounded up to a power of two).
    pub fn sample_mask(&self) -> u64 {
        u64::from(self.sample_every.max(1)).next_power_of_two() - 1
    }

    /// A tickcast config file holding the `[server]` settings that have no tickcast flag
    /// (`socket_send_buffer_bytes`, `policy`, `max_queued_frames`), for `run.sh` to pass as
    /// `--config`; empty when the scenario sets none of them. The policy goes here rather than
    /// to `--policy` so `TICKCAST_POLICY` can still override it.
    pub fn server_config(&self) -> String {
        let v = &self.server;
        let mut out = String::new();
        if v.socket_send_buffer_bytes > 0 {
            out.push_str(&format!(
                "[server]\nsocket_send_buffer_bytes = {}\n",
                v.socket_send_buffer_bytes
            ));
        }
        if v.market_rate > 0.0 {
            // `--symbols`/`--rate` (run.sh's flags) configure this feed too.
            out.push_str(&format!(
                "[[feeds]]\nkind = \"synthetic\"\nmarket_rate = {:?}\n",
                v.market_rate
            ));
        }
        if v.policy.is_some() || v.max_queued_frames > 0 {
            out.push_str("[backpressure]\n");
            if let Some(p) = v.policy {
                out.push_str(&format!("policy = \"{}\"\n", p.as_str()));
            }
            if v.max_queued_frames > 0 {
                out.push_str(&format!("max_queued_frames = {}\n", v.max_queued_frames));
            }
        }
        out
    }

    /// Server flags for `run.sh`: `--symbols N --rate R`.
    pub fn server_args(&self) -> String {
        let symbols = if self.server.symbols > 0 {
            self.server.symbols
        } else {
            self.topics
        };
        format!("--symbols {} --rate {}", symbols, self.server.rate)
    }
}

/// The channel of a topic or prefix: up to the first `.`, or the first two parts for `bar.*`
/// (`bar.1m.AAPL` is channel `bar.1m`); a name without `.` has none.
pub fn channel_of(topic: &str) -> &str {
    let mut dots = topic.match_indices('.').map(|(i, _)| i);
    match dots.next() {
        None => "",
        Some(i) if &topic[..i] == "bar" => match dots.next() {
            Some(j) => &topic[..j],
            None => topic,
        },
        Some(i) => &topic[..i],
    }
}

/// `topic` with its channel replaced by `channel` (a bare symbol gets it).
pub fn with_channel(topic: &str, channel: &str) -> String {
    let ch = channel_of(topic);
    let symbol = if ch.is_empty() {
        topic
    } else {
        topic.get(ch.len() + 1..).unwrap_or_default()
    };
    format!("{channel}.{symbol}")
}

/// Size of the local ephemeral port range.
fn ephemeral_ports() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<usize>().ok());
            let lo = it.next()??;
            let hi = it.next()??;
            (hi >= lo).then(|| hi - lo + 1)
        })
        .unwrap_or(DEFAULT_EPHEMERAL_PORTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_scenarios_parse_and_validate() {
        for name in bundled_names() {
            let s = load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            s.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!s.description.is_empty(), "{name} has a description");
            assert!(s.server.rate > 0.0, "{name} says what feed rate it expects");
        }
    }

    #[test]
    fn unknown_scenario_is_one_clear_error() {
        let e = load("nope").unwrap_err().to_string();
        assert!(
            e.contains("unknown scenario \"nope\"") && e.contains("smoke"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = parse("x", "conns = 5\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn validation_catches_bad_values() {
        let s = Settings {
            conns: 0,
            ..Settings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("--conns"));
        let s = Settings {
            per_conn: 200,
            ..Settings::default()
        };
        assert!(s.validate().is_err());
        let s = Settings {
            conns: 100_000,
            ..Settings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("--src-ips"));
        let s = Settings {
            mode: Mode::Publish,
            ..Settings::default()
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--publish-addr"));
        assert!(Settings::default().validate().is_ok());
    }

    #[test]
    fn server_config_holds_what_has_no_flag() {
        assert_eq!(load("smoke").unwrap().server_config(), "");
        let s = parse(
            "x",
            "[server]\nrate = 5.0\npolicy = \"drop_oldest\"\nmax_queued_frames = 64\nsocket_send_buffer_bytes = 4096\n",
        )
        .unwrap();
        assert_eq!(s.server.policy, Some(ServerPolicy::DropOldest));
        assert_eq!(
            s.server_config(),
            "[server]\nsocket_send_buffer_bytes = 4096\n[backpressure]\npolicy = \"drop_oldest\"\nmax_queued_frames = 64\n"
        );
        let e = parse("x", "[server]\npolicy = \"drop_newest\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("drop_newest") && !e.contains('\n'), "{e}");
        // The slow-consumer scenario reaches the server's policy within its window.
        let slow = load("slow-consumers").unwrap().server;
        assert!(slow.socket_send_buffer_bytes > 0 && slow.max_queued_frames > 0);
        assert_eq!(slow.policy, Some(ServerPolicy::Conflate));
    }

    #[test]
    fn channels_rewrite_topics() {
        assert_eq!(channel_of("ticker.SYM"), "ticker");
        assert_eq!(channel_of("bar.1m.AAPL"), "bar.1m");
        assert_eq!(channel_of("AAPL"), "");
        assert_eq!(with_channel("ticker.SYM", "book"), "book.SYM");
        assert_eq!(with_channel("bar.1s.SYM", "trade"), "trade.SYM");
        assert_eq!(with_channel("AAPL", "bar.1s"), "bar.1s.AAPL");
        let mut s = Settings::default();
        assert_eq!(
            (s.effective_channel(), s.pattern_prefix()),
            ("ticker".into(), "ticker.SYM".into())
        );
        s.channel = Some("book".into());
        s.topic_list = vec!["ticker.AAPL".into(), "MSFT".into()];
        assert_eq!(s.pattern_prefix(), "book.SYM");
        assert_eq!(s.resolved_topic_list(), ["book.AAPL", "book.MSFT"]);
        assert!(s.validate().is_ok());
        s.server.market_rate = 1000.0;
        s.server.symbols = 10;
        assert_eq!(s.feed_rate_per_topic(), 100.0);
        s.channel = Some("trade".into());
        assert_eq!(s.feed_rate_per_topic(), 20.0);
        assert!(
            s.server_config().contains("market_rate = 1000.0"),
            "{}",
            s.server_config()
        );
        for bad in ["", "book.x", "bar", "a b", ".book"] {
            s.channel = Some(bad.into());
            assert!(
                s.validate().unwrap_err().to_string().contains("--channel"),
                "{bad}"
            );
        }
        s.channel = Some("bar.1s".into());
        assert!(s.validate().is_ok());
    }

    #[test]
    fn sample_mask_is_power_of_two_minus_one() {
        let mut s = Settings::default();
        assert_eq!(s.sample_mask(), 0);
        s.sample_every = 10;
        assert_eq!(s.sample_mask(), 15);
    }
}
