//! The upstream feed: a WebSocket client of another tickcast (an edge relay tier) or of an
//! exchange-style feed, through an [`Adapter`] per protocol.
//!
//! It subscribes after every connect, reconnects with exponential backoff and jitter when the
//! connection fails, drops or goes silent, and marks what it lost: reconnects and upstream sequence
//! gaps are counted and logged. tickcast assigns its own seq to everything it republishes, so
//! subscribers downstream see a dense seq; the upstream's gaps are visible in metrics and logs.
//! `ws://` and `wss://` URLs are supported; TLS (rustls, system roots plus an optional CA file) is
//! in the `tls` module.
//!
//! The market adapter kinds (`binance_book`, `kraken`, `coinbase_level2`) publish order books and
//! trades instead of quotes: their protocols are socket-free state machines in [`market`], driven
//! by the `market_session` module (REST snapshots, resubscribes, lost books as upstream gaps).

pub mod adapters;
mod backoff;
mod liveness;
pub mod market;
mod market_session;
mod tls;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tickcast_core::{Price, Size, TsMicros};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

pub use adapters::{Adapter, AdapterKind, Update, UpstreamSeq};
pub use backoff::Backoff;

use crate::feed::{Feed, FeedContext, FeedError, FeedFuture};
use crate::publisher::Quote;
use crate::reject::Reject;
use crate::sink::TickSink;
use crate::spec::{millis, FeedConfigError, MIN_LINE_BYTES};
use liveness::{Liveness, Received};
use tls::{Endpoint, UpstreamStream};

/// Default of [`UpstreamConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest [`UpstreamConfig::connect_timeout`] accepted.
pub const MIN_CONNECT_TIMEOUT: Duration = Duration::from_millis(100);
/// Default of [`UpstreamConfig::backoff_min`].
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Default of [`UpstreamConfig::backoff_max`].
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Default of [`UpstreamConfig::max_message_bytes`].
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 65_536;
/// Default of [`UpstreamConfig::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Shortest [`UpstreamConfig::idle_timeout`] accepted.
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_millis(100);
/// Time given to a close handshake at shutdown. Left fixed: it only bounds how long shutdown waits
/// for a polite close, and the connection is dropped either way.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Settings of an upstream feed: a `kind = "upstream"` entry of the config file (durations are
/// written in milliseconds, as `<key>_ms`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Feed name for logs and metrics.
    #[serde(default = "default_name")]
    pub name: String,
    /// `ws://host:port/path` or `wss://host:port/path`.
    pub url: String,
    /// The upstream's protocol.
    #[serde(default)]
    pub adapter: AdapterKind,
    /// What to subscribe to: topics (tickcast), product ids (coinbase, coinbase_level2), symbols
    /// (binance, binance_book: `BTCUSDT`) or pairs (kraken: `BTC/USD`).
    #[serde(rename = "subscribe")]
    pub symbols: Vec<String>,
    /// binance_book only (and required there): the REST base URL the depth snapshots are fetched
    /// from, `https://api.binance.com` (`http://` too, for tests).
    #[serde(default)]
    pub rest_url: Option<String>,
    /// Market adapters only: levels each side the adapter keeps per book (default 1000; kraken:
    /// the subscribed depth, one of 10, 25, 100, 500, 1000, default 25).
    #[serde(default)]
    pub book_depth: Option<usize>,
    /// Channel of the republished topics (`<channel>.<symbol>`). `None`: the upstream's channel for
    /// tickcast, `ticker` for exchanges.
    #[serde(default)]
    pub channel: Option<String>,
    /// First reconnect delay.
    #[serde(
        rename = "backoff_min_ms",
        deserialize_with = "millis::deserialize",
        default = "default_backoff_min"
    )]
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    #[serde(
        rename = "backoff_max_ms",
        deserialize_with = "millis::deserialize",
        default = "default_backoff_max"
    )]
    pub backoff_max: Duration,
    /// Largest upstream message in bytes; a larger one fails the connection (then reconnect).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Silence after which the connection is pinged, and after twice which it is dropped.
    #[serde(
        rename = "idle_timeout_ms",
        deserialize_with = "millis::deserialize",
        default = "default_idle_timeout"
    )]
    pub idle_timeout: Duration,
    /// Time allowed for one connection attempt: TCP connect, TLS handshake (`wss://`) and the
    /// WebSocket handshake. At least [`MIN_CONNECT_TIMEOUT`].
    #[serde(
        rename = "connect_timeout_ms",
        deserialize_with = "millis::deserialize",
        default = "default_connect_timeout"
    )]
    pub connect_timeout: Duration,
    /// For `wss://`: a PEM file of CA certificates trusted besides the system's roots (a private
    /// CA). Only valid with a `wss://` URL.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Readiness waits for this feed (connected = subscribed upstream).
    #[serde(default = "crate::spec::required_by_default")]
    pub required: bool,
    /// Not ready after this long without a tick; `None` (`max_idle_ms = 0`) = off.
    #[serde(default, rename = "max_idle_ms", deserialize_with = "millis::zero_off")]
    pub max_idle: Option<Duration>,
}

fn default_name() -> String {
    "upstream".into()
}
fn default_backoff_min() -> Duration {
    DEFAULT_BACKOFF_MIN
}
fn default_backoff_max() -> Duration {
    DEFAULT_BACKOFF_MAX
}
fn default_max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}
fn default_idle_timeout() -> Duration {
    DEFAULT_IDLE_TIMEOUT
}
fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}

impl UpstreamConfig {
    /// A feed named `upstream` of another tickcast at `url` subscribing `symbols`, every other
    /// setting at its default.
    pub fn new(url: impl Into<String>, symbols: Vec<String>) -> Self {
        Self {
            name: default_name(),
            url: url.into(),
            adapter: AdapterKind::default(),
            symbols,
            rest_url: None,
            book_depth: None,
            channel: None,
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            ca_file: None,
            required: true,
            max_idle: None,
        }
    }

    /// Checks the settings: a `ws://` or `wss://` URL with a host (`ca_file` only with `wss://`),
    /// something to subscribe, sane delays and sizes, a valid channel. Files are only read by
    /// [`UpstreamFeed::new`].
    pub fn validate(&self) -> Result<(), FeedConfigError> {
        let feed = &self.name;
        let ms = |d: Duration| d.as_millis();
        FeedConfigError::named(feed)?;
        tls::Target::parse(&self.url, self.ca_file.as_deref())
            .map_err(|(field, problem)| FeedConfigError::new(feed, field, problem))?;
        FeedConfigError::at_least(
            feed,
            "connect_timeout_ms",
            ms(self.connect_timeout),
            ms(MIN_CONNECT_TIMEOUT),
        )?;
        if self.symbols.is_empty() {
            let problem = "must list at least one topic, product or symbol";
            return Err(FeedConfigError::new(feed, "subscribe", problem));
        }
        FeedConfigError::at_least(feed, "backoff_min_ms", ms(self.backoff_min), 1)?;
        if self.backoff_min > self.backoff_max {
            let problem = format!(
                "is {}, must be <= backoff_max_ms ({})",
                ms(self.backoff_min),
                ms(self.backoff_max)
            );
            return Err(FeedConfigError::new(feed, "backoff_min_ms", problem));
        }
        FeedConfigError::at_least(
            feed,
            "max_message_bytes",
            self.max_message_bytes,
            MIN_LINE_BYTES,
        )?;
        FeedConfigError::at_least(
            feed,
            "idle_timeout_ms",
            ms(self.idle_timeout),
            ms(MIN_IDLE_TIMEOUT),
        )?;
        if let Some(c) = &self.channel {
            crate::parse::validate_topic(&format!("{c}.X"))
                .map_err(|e| FeedConfigError::new(feed, "channel", format!("{c:?}: {e}")))?;
        }
        self.validate_market()
    }

    /// The rules of the market adapters' keys.
    fn validate_market(&self) -> Result<(), FeedConfigError> {
        let feed = &self.name;
        let kind = self.adapter.label();
        if !self.adapter.is_market() {
            for (key, set) in [
                ("rest_url", self.rest_url.is_some()),
                ("book_depth", self.book_depth.is_some()),
            ] {
                if set {
                    let problem =
                        format!("is only used by the market adapters, and adapter is {kind:?}");
                    return Err(FeedConfigError::new(feed, key, problem));
                }
            }
            return Ok(());
        }
        if self.channel.is_some() {
            let problem = format!(
                "is not used with adapter {kind:?} (topics are book.<symbol> and trade.<symbol>)"
            );
            return Err(FeedConfigError::new(feed, "channel", problem));
        }
        match (&self.rest_url, self.adapter) {
            (None, AdapterKind::BinanceBook) => {
                let problem =
                    "is required with adapter \"binance_book\" (e.g. \"https://api.binance.com\")";
                return Err(FeedConfigError::new(feed, "rest_url", problem));
            }
            (Some(url), AdapterKind::BinanceBook) => {
                market_session::Rest::parse(url)
                    .map_err(|p| FeedConfigError::new(feed, "rest_url", p))?;
            }
            (Some(_), _) => {
                let problem =
                    format!("is only used with adapter \"binance_book\", and adapter is {kind:?}");
                return Err(FeedConfigError::new(feed, "rest_url", problem));
            }
            (None, _) => {}
        }
        let depth = self.market_depth();
        if self.adapter == AdapterKind::Kraken {
            if !market::kraken::DEPTHS.contains(&depth) {
                let problem =
                    format!("is {depth}, must be one of Kraken's depths 10, 25, 100, 500, 1000");
                return Err(FeedConfigError::new(feed, "book_depth", problem));
            }
        } else if !(10..=market::binance::SNAPSHOT_LIMIT as usize).contains(&depth) {
            let problem = format!(
                "is {depth}, must be between 10 and {}",
                market::binance::SNAPSHOT_LIMIT
            );
            return Err(FeedConfigError::new(feed, "book_depth", problem));
        }
        // Symbols that cannot be topics (or two that would share one) are refused by the adapter.
        market_session::Market::new(self.adapter, &self.symbols, depth)
            .map_err(|e| FeedConfigError::new(feed, "subscribe", e.to_string()))?;
        Ok(())
    }

    /// The levels a market adapter keeps: `book_depth` or the adapter's default.
    fn market_depth(&self) -> usize {
        self.book_depth
            .unwrap_or_else(|| market_session::default_depth(self.adapter))
    }
}

/// The upstream feed.
pub struct UpstreamFeed {
    config: UpstreamConfig,
    endpoint: Endpoint,
    /// binance_book: where the REST snapshots come from.
    rest: Option<market_session::Rest>,
}

impl UpstreamFeed {
    /// Validates `config` and, for `wss://`, loads the trusted roots and `ca_file` now.
    pub fn new(config: UpstreamConfig) -> Result<Self, FeedError> {
        config.validate()?;
        let endpoint = Endpoint::new(&config.name, &config.url, config.ca_file.as_deref())
            .map_err(|reason| FeedError::Config {
                feed: config.name.clone(),
                reason,
            })?;
        let rest = match &config.rest_url {
            Some(url) => Some(
                market_session::Rest::new(&config.name, url, config.ca_file.as_deref()).map_err(
                    |reason| FeedError::Config {
                        feed: config.name.clone(),
                        reason,
                    },
                )?,
            ),
            None => None,
        };
        Ok(Self {
            config,
            endpoint,
            rest,
        })
    }
}

impl Feed for UpstreamFeed {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn run(self: Box<Self>, ctx: FeedContext) -> FeedFuture {
        Box::pin(run(*self, ctx))
    }
}

type Ws = WebSocketStream<UpstreamStream>;

/// The session kind of a feed: ticker quotes through an [`Adapter`], or books and trades through
/// a market state machine.
enum Sessions<'c> {
    Quotes(Session<'c>),
    Market(market_session::MarketSession<'c>),
}

/// How a session ended.
enum End {
    Shutdown,
    Lost(String),
}

async fn run(feed: UpstreamFeed, ctx: FeedContext) -> Result<(), FeedError> {
    let UpstreamFeed {
        config,
        endpoint,
        rest,
    } = feed;
    let stats = ctx.publisher.stats().clone();
    let mut sink = TickSink::new(ctx.publisher, config.max_message_bytes);
    let seed = config
        .name
        .bytes()
        .fold(TsMicros::now().0, |h, b| h.rotate_left(5) ^ u64::from(b));
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max, seed);
    let mut session = match config.adapter.build() {
        Some(adapter) => Sessions::Quotes(Session::new(&config, adapter)),
        None => {
            let market =
                market_session::Market::new(config.adapter, &config.symbols, config.market_depth())
                    .map_err(|e| FeedError::Config {
                        feed: config.name.clone(),
                        reason: e.to_string(),
                    })?;
            Sessions::Market(market_session::MarketSession::new(&config, market, rest))
        }
    };
    let mut attempted_before = false;
    loop {
        let connect = tokio::time::timeout(config.connect_timeout, connect(&config, &endpoint));
        let ws = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            r = connect => r,
        };
        // Every attempt after the first, successful or not, is a reconnect: a feed that keeps
        // failing (refused, TLS, handshake, timeout) shows in tickcast_feed_reconnects_total.
        if attempted_before {
            stats.record_reconnect();
        }
        attempted_before = true;
        match ws {
            Ok(Ok(ws)) => {
                tracing::info!(feed = %config.name, url = %config.url, adapter = config.adapter.label(), "upstream connected");
                let end = match &mut session {
                    Sessions::Quotes(s) => s.run(ws, &mut sink, &ctx.shutdown).await,
                    Sessions::Market(s) => s.run(ws, &mut sink, &ctx.shutdown).await,
                };
                stats.set_connected(false);
                let received = match &session {
                    Sessions::Quotes(s) => s.received,
                    Sessions::Market(s) => s.received,
                };
                if received > 0 {
                    backoff.reset();
                }
                match end {
                    End::Shutdown => break,
                    End::Lost(why) => {
                        tracing::warn!(feed = %config.name, url = %config.url, reason = %why, "upstream connection lost; reconnecting")
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(feed = %config.name, url = %config.url, error = %e, "upstream connect failed")
            }
            Err(_) => {
                let timeout_ms = config.connect_timeout.as_millis() as u64;
                tracing::warn!(feed = %config.name, url = %config.url, timeout_ms, "upstream connect timed out")
            }
        }
        let delay = backoff.next_delay();
        tracing::debug!(feed = %config.name, delay_ms = delay.as_millis() as u64, "reconnecting after backoff");
        tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    stats.set_connected(false);
    Ok(())
}

/// One connection attempt: TCP, TLS for `wss://`, then the WebSocket handshake over either.
/// The error says which step failed and why.
async fn connect(config: &UpstreamConfig, endpoint: &Endpoint) -> Result<Ws, String> {
    // A new request per attempt: it carries a fresh Sec-WebSocket-Key.
    let request = config
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("url {:?}: {e}", config.url))?;
    let stream = endpoint.connect().await?;
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config))
        .await
        .map_err(|e| format!("WebSocket handshake failed: {e}"))?;
    Ok(ws)
}

/// A partially known quote: exchanges send book and trade updates separately.
#[derive(Debug, Default, Clone, Copy)]
struct Merged {
    bid: Option<f64>,
    ask: Option<f64>,
    last: Option<f64>,
    size: Option<f64>,
}

impl Merged {
    fn apply(&mut self, u: &Update<'_>) {
        self.bid = u.bid.or(self.bid);
        self.ask = u.ask.or(self.ask);
        self.last = u.last.or(self.last);
        self.size = u.size.or(self.size);
    }

    /// The full quote once every field is known.
    fn quote(&self) -> Option<Quote> {
        Some(Quote {
            bid: Price(self.bid?),
            ask: Price(self.ask?),
            last: Price(self.last?),
            size: Size(self.size?),
        })
    }
}

/// State that outlives one connection: merged quotes and scratch buffers.
struct Session<'c> {
    config: &'c UpstreamConfig,
    adapter: Box<dyn Adapter>,
    merged: HashMap<u32, Merged>,
    buf: Vec<u8>,
    buffers: simd_json::Buffers,
    topic: String,
    /// Messages received on the current connection (numbers them in reject logs).
    received: u64,
}

impl<'c> Session<'c> {
    fn new(config: &'c UpstreamConfig, adapter: Box<dyn Adapter>) -> Self {
        Self {
            config,
            adapter,
            merged: HashMap::new(),
            buf: Vec::new(),
            buffers: simd_json::Buffers::default(),
            topic: String::new(),
            received: 0,
        }
    }

    /// Subscribes and republishes until the connection ends or shutdown.
    async fn run(&mut self, mut ws: Ws, sink: &mut TickSink, shutdown: &CancellationToken) -> End {
        self.received = 0;
        for m in self.adapter.subscribe(&self.config.symbols) {
            if let Err(e) = ws.send(Message::text(m)).await {
                return End::Lost(format!("subscribe failed: {e}"));
            }
        }
        sink.stats().set_connected(true);
        let mut alive = Liveness::new(self.config.idle_timeout);
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
                    return End::Shutdown;
                }
                _ = tokio::time::sleep_until(alive.deadline()) => {
                    if let Err(why) = alive.on_deadline(&mut ws).await {
                        return End::Lost(why);
                    }
                    continue;
                }
                m = ws.next() => m,
            };
            alive.heard();
            match Received::from(msg) {
                Received::End(why) => return End::Lost(why),
                Received::Text(t) => {
                    self.received += 1;
                    self.handle(t.as_bytes(), sink);
                }
                Received::Binary => {
                    self.received += 1;
                    sink.stats().record_reject(
                        &self.config.url,
                        self.received,
                        &Reject::Unsupported("binary message"),
                    );
                }
                Received::Control => {}
            }
        }
    }

    /// Decodes one message and publishes the complete quotes it yields, in one bus batch.
    fn handle(&mut self, text: &[u8], sink: &mut TickSink) {
        let Session {
            config,
            adapter,
            merged,
            buf,
            buffers,
            topic,
            received,
        } = self;
        buf.clear();
        buf.extend_from_slice(text);
        let bus = sink.bus().clone();
        let mut batch = bus.batch();
        let ts = TsMicros::now();
        let mut published = 0u64;
        let origin = config.url.as_str();
        let msg_no = *received;
        let decoded = adapter.decode(buf, buffers, &mut |u: Update<'_>| {
            topic.clear();
            let channel = config.channel.as_deref().or(u.channel).unwrap_or("ticker");
            topic.push_str(channel);
            topic.push('.');
            topic.push_str(u.symbol);
            let state = match sink.resolve(topic) {
                Ok(s) => s,
                Err(e) => return sink.stats().record_reject(&origin, msg_no, &e),
            };
            if let Some(seq) = u.seq {
                if !sink.check_upstream_seq(&state, seq.stream, seq.value, seq.mode) {
                    return;
                }
            }
            let m = merged.entry(state.id().0).or_default();
            m.apply(&u);
            if let Some(q) = m.quote() {
                sink.publish(&mut batch, &state, q, ts);
                published += 1;
            }
        });
        drop(batch);
        if let Err(e) = decoded {
            sink.stats().record_reject(&origin, msg_no, &e);
        }
        if published > 0 {
            sink.stats().record_ticks(published, ts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(c: &UpstreamConfig) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn settings_are_checked_with_one_set_of_rules() {
        let ok = UpstreamConfig::new("ws://127.0.0.1:1/ws", vec!["ticker.A".into()]);
        ok.validate().unwrap();
        let with = |f: &dyn Fn(&mut UpstreamConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            c
        };
        let m = problem(&with(&|c| c.url = "http://x/ws".into()));
        assert!(
            m.starts_with("feed upstream: url") && m.contains("ws:// or wss://"),
            "{m}"
        );
        let m = problem(&with(&|c| c.ca_file = Some("ca.pem".into())));
        assert!(m.contains("ca_file is only used with a wss:// url"), "{m}");
        let m = problem(&with(&|c| c.connect_timeout = Duration::from_millis(99)));
        assert!(
            m.contains("connect_timeout_ms is 99, must be >= 100"),
            "{m}"
        );
        let m = problem(&with(&|c| c.symbols.clear()));
        assert!(m.contains("subscribe must list"), "{m}");
        let m = problem(&with(&|c| c.backoff_min = Duration::ZERO));
        assert!(m.contains("backoff_min_ms is 0, must be >= 1"), "{m}");
        let m = problem(&with(&|c| c.backoff_max = Duration::from_millis(50)));
        assert!(m.contains("must be <= backoff_max_ms (50)"), "{m}");
        let m = problem(&with(&|c| c.max_message_bytes = 10));
        assert!(m.contains("max_message_bytes is 10, must be >= 64"), "{m}");
        let m = problem(&with(&|c| c.idle_timeout = Duration::from_millis(5)));
        assert!(m.contains("idle_timeout_ms is 5, must be >= 100"), "{m}");
        let m = problem(&with(&|c| c.channel = Some("a b".into())));
        assert!(m.contains("channel \"a b\""), "{m}");

        // Market adapters: their keys, and only theirs.
        let m = problem(&with(&|c| {
            c.rest_url = Some("https://api.binance.com".into())
        }));
        assert!(
            m.contains("rest_url is only used by the market adapters"),
            "{m}"
        );
        let m = problem(&with(&|c| c.book_depth = Some(25)));
        assert!(
            m.contains("book_depth is only used by the market adapters"),
            "{m}"
        );
        let market = |kind: AdapterKind, symbols: &[&str]| {
            let mut c = ok.clone();
            c.adapter = kind;
            c.symbols = symbols.iter().map(|s| s.to_string()).collect();
            c
        };
        let binance = market(AdapterKind::BinanceBook, &["BTCUSDT"]);
        let m = problem(&binance);
        assert!(
            m.contains("rest_url is required with adapter \"binance_book\""),
            "{m}"
        );
        let mut c = binance.clone();
        c.rest_url = Some("api.binance.com".into());
        assert!(problem(&c).contains("must start with http:// or https://"));
        c.rest_url = Some("https://api.binance.com".into());
        c.validate().unwrap();
        c.book_depth = Some(5000);
        assert!(problem(&c).contains("book_depth is 5000, must be between 10 and 1000"));
        c.book_depth = None;
        c.channel = Some("depth".into());
        assert!(problem(&c).contains("channel is not used with adapter \"binance_book\""));
        let mut k = market(AdapterKind::Kraken, &["BTC/USD", "ETH/USD"]);
        k.validate().unwrap();
        k.book_depth = Some(20);
        assert!(problem(&k).contains("book_depth is 20, must be one of Kraken's depths"));
        k.book_depth = Some(100);
        k.rest_url = Some("https://api.kraken.com".into());
        assert!(problem(&k).contains("rest_url is only used with adapter \"binance_book\""));
        let m = problem(&market(AdapterKind::CoinbaseLevel2, &["BTC USD"]));
        assert!(
            m.contains("subscribe symbol \"BTC USD\" cannot be a topic symbol"),
            "{m}"
        );
        market(AdapterKind::CoinbaseLevel2, &["BTC-USD"])
            .validate()
            .unwrap();

        // The config file's spelling of the market kinds.
        for (name, kind) in [
            ("binance_book", AdapterKind::BinanceBook),
            ("kraken", AdapterKind::Kraken),
            ("coinbase_level2", AdapterKind::CoinbaseLevel2),
        ] {
            let c: UpstreamConfig = serde_json::from_str(&format!(
                r#"{{"url":"wss://x/ws","adapter":"{name}","subscribe":["A"],"book_depth":25}}"#
            ))
            .unwrap();
            assert_eq!(
                (c.adapter, c.adapter.label(), c.book_depth),
                (kind, name, Some(25))
            );
            assert!(kind.is_market());
        }

        // The feed refuses what the config refuses, with the same words.
        let refused = UpstreamFeed::new(with(&|c| c.max_message_bytes = 10));
        let e = refused.err().expect("refused").to_string();
        assert!(e.contains("max_message_bytes is 10, must be >= 64"), "{e}");
    }
}
