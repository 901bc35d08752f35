//! The upstream feed's session for the market adapters (`binance_book`, `kraken`,
//! `coinbase_level2`): the I/O around the pure state machines of [`super::market`].
//!
//! Owns what those state machines leave to their caller: feeding them every WebSocket text
//! message, publishing their events through the feed's [`TickSink`] (`book.<symbol>` snapshots and
//! deltas, `trade.<symbol>` prints, candles from the trades), performing their actions (Binance
//! REST snapshots fetched in the background so the stream keeps being read and buffered;
//! resubscribe requests sent on the socket) and turning a lost book into an `upstream` gap: the
//! loss is counted in `tickcast_feed_upstream_gaps_total`, one seq of the book topic is left
//! unused so subscribers get a gap marker before the new snapshot, and the topic is marked not
//! served (`feed_up: false` in heartbeats) until that snapshot is published. A book update the
//! bus refuses (its copy disagrees, or it awaits a snapshot after an earlier refusal) makes the
//! adapter sync that book again ([`LostReason::RefusedDownstream`]), so the bus never waits for a
//! snapshot that would not come.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tickcast_core::market::BookError;
use tickcast_core::TsMicros;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::liveness::{Liveness, Received};
use super::market::{
    binance, BinanceAction, BinanceBook, CoinbaseAction, CoinbaseLevel2, KrakenAction, KrakenBook,
    LostReason, MarketError, MarketEvent, Output,
};
use super::tls::Endpoint;
use super::{AdapterKind, End, UpstreamConfig, Ws, CLOSE_TIMEOUT};
use crate::market_line::{BookLine, TradeLine};
use crate::parse::Line;
use crate::reject::Reject;
use crate::sink::TickSink;

/// How often open candles are advanced (the publisher's candles need a clock).
const BARS_PERIOD: Duration = Duration::from_millis(250);
/// Wait before asking again for a REST snapshot that failed.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(1);
/// Time allowed for one REST snapshot request.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest REST snapshot body (Binance's 1000 levels a side are ~60 KB).
const MAX_SNAPSHOT_BYTES: usize = 8 * 1024 * 1024;

/// One of the market state machines.
#[derive(Debug)]
pub(crate) enum Market {
    Binance(BinanceBook),
    Kraken(KrakenBook),
    Coinbase(CoinbaseLevel2),
}

/// What a state machine asked for, in the session's terms.
#[derive(Debug)]
enum Act {
    /// GET the Binance REST snapshot of this symbol.
    Fetch(String),
    /// Send these text messages on the socket.
    Send(Vec<String>),
}

/// The default number of levels an adapter keeps per side.
pub(crate) fn default_depth(kind: AdapterKind) -> usize {
    match kind {
        // Kraken only accepts some depths and its checksums need the same truncation; 25 is the
        // bus's default served depth.
        AdapterKind::Kraken => 25,
        _ => binance::SNAPSHOT_LIMIT as usize,
    }
}

impl Market {
    /// The state machine for `kind` (a market kind) and `symbols`, keeping `depth` levels.
    pub(crate) fn new(
        kind: AdapterKind,
        symbols: &[String],
        depth: usize,
    ) -> Result<Market, MarketError> {
        Ok(match kind {
            AdapterKind::BinanceBook => Market::Binance(BinanceBook::new(symbols, depth)?),
            AdapterKind::Kraken => Market::Kraken(KrakenBook::new(symbols, depth)?),
            AdapterKind::CoinbaseLevel2 => Market::Coinbase(CoinbaseLevel2::new(symbols, depth)?),
            _ => return Err(MarketError::Unsupported("not a market adapter")),
        })
    }

    fn subscribe_messages(&self) -> Vec<String> {
        match self {
            Market::Binance(b) => {
                let streams = serde_json::to_string(&b.streams()).unwrap_or_else(|_| "[]".into());
                vec![format!(
                    r#"{{"method":"SUBSCRIBE","params":{streams},"id":1}}"#
                )]
            }
            Market::Kraken(k) => k.subscribe_messages(),
            Market::Coinbase(c) => c.subscribe_messages(),
        }
    }

    /// Runs `step` on the state machine and converts what it produced.
    fn step(
        &mut self,
        events: &mut Vec<MarketEvent>,
        acts: &mut Vec<Act>,
        step: Step<'_>,
    ) -> Result<(), MarketError> {
        match self {
            Market::Binance(b) => {
                let mut out = Output::default();
                let r = match step {
                    Step::Message(m) => b.handle(m, &mut out),
                    Step::Snapshot(s, body) => b.on_snapshot(s, body, &mut out),
                    Step::SnapshotFailed(s) => b.snapshot_failed(s, &mut out),
                    Step::Reconnected => {
                        b.reconnected(&mut out);
                        Ok(())
                    }
                    Step::Resync(symbol, e) => {
                        b.resync(symbol, LostReason::RefusedDownstream(e), &mut out);
                        Ok(())
                    }
                };
                events.append(&mut out.events);
                acts.extend(
                    out.actions
                        .into_iter()
                        .map(|BinanceAction::FetchSnapshot { symbol }| Act::Fetch(symbol)),
                );
                r
            }
            Market::Kraken(k) => {
                let mut out = Output::default();
                let r = match step {
                    Step::Message(m) => k.handle(m, &mut out),
                    Step::Reconnected => {
                        k.reconnected(&mut out);
                        Ok(())
                    }
                    Step::Resync(symbol, e) => {
                        k.resync(symbol, LostReason::RefusedDownstream(e), &mut out);
                        Ok(())
                    }
                    Step::Snapshot(..) | Step::SnapshotFailed(_) => Ok(()),
                };
                events.append(&mut out.events);
                for KrakenAction::Resubscribe { symbol } in out.actions {
                    acts.push(Act::Send(k.resubscribe_messages(&symbol)));
                }
                r
            }
            Market::Coinbase(c) => {
                let mut out = Output::default();
                let r = match step {
                    Step::Message(m) => c.handle(m, &mut out),
                    Step::Reconnected => {
                        c.reconnected(&mut out);
                        Ok(())
                    }
                    Step::Resync(symbol, e) => {
                        c.resync(symbol, LostReason::RefusedDownstream(e), &mut out);
                        Ok(())
                    }
                    Step::Snapshot(..) | Step::SnapshotFailed(_) => Ok(()),
                };
                events.append(&mut out.events);
                for CoinbaseAction::Resubscribe { symbol } in out.actions {
                    acts.push(Act::Send(c.resubscribe_messages(&symbol)));
                }
                r
            }
        }
    }
}

/// One input to a state machine.
enum Step<'a> {
    Message(&'a [u8]),
    Snapshot(&'a str, &'a [u8]),
    SnapshotFailed(&'a str),
    Reconnected,
    /// The bus refused an update of this topic symbol's book.
    Resync(&'a str, BookError),
}

/// Where Binance REST snapshots come from: `http://` or `https://` host, port and base path.
pub(crate) struct Rest {
    endpoint: Endpoint,
    /// `Host` header value (`host[:port]`).
    authority: String,
    /// Path prefix before `/api/v3/depth` (usually empty).
    base: String,
}

impl Rest {
    /// Checks `url` (`http://host[:port][/base]` or `https://…`): the error is what is wrong.
    pub(crate) fn parse(url: &str) -> Result<(bool, String, String), String> {
        let (secure, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url:?} must start with http:// or https://"));
        };
        let (authority, base) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) {
            return Err(format!("{url:?} has no usable host"));
        }
        if base.contains(['?', '#', ' ']) {
            return Err(format!("{url:?}: a base path only, no query"));
        }
        Ok((
            secure,
            authority.to_string(),
            base.trim_end_matches('/').to_string(),
        ))
    }

    /// The endpoint of `url` (TLS roots loaded now for `https://`).
    pub(crate) fn new(
        feed: &str,
        url: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Rest, String> {
        let (secure, authority, base) = Rest::parse(url).map_err(|p| format!("rest_url {p}"))?;
        // Same host, port and TLS rules as the WebSocket URL: reuse its endpoint.
        let as_ws = format!("{}://{authority}/", if secure { "wss" } else { "ws" });
        let endpoint = Endpoint::new(feed, &as_ws, ca_file.filter(|_| secure))
            .map_err(|e| format!("rest_url {e}"))?;
        Ok(Rest {
            endpoint,
            authority,
            base,
        })
    }

    /// `GET <base><path>` over HTTP/1.1 (one connection per request); the body of a 200 answer.
    async fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        let mut stream = self.endpoint.connect().await?;
        let request = format!(
            "GET {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tickcast\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            self.base, self.authority
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending the request failed: {e}"))?;
        let mut raw = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => {
                    raw.extend_from_slice(&chunk[..n]);
                    if raw.len() > MAX_SNAPSHOT_BYTES {
                        return Err(format!("answer larger than {MAX_SNAPSHOT_BYTES} bytes"));
                    }
                    // Parsed again per read: answers are a few reads long (bounded above).
                    if let Some(body) = complete_body(&raw)? {
                        return Ok(body);
                    }
                }
                // A TLS peer closing without close_notify: what arrived is all there is.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(format!("reading the answer failed: {e}")),
            }
        }
        complete_body(&raw)?.map_or_else(
            || {
                // Connection closed: without a length, the body is everything after the head.
                let (head, body) = split_head(&raw).ok_or("connection closed mid-answer")?;
                check_status(head)?;
                if header(head, "content-length").is_some()
                    || header(head, "transfer-encoding").is_some()
                {
                    return Err("connection closed mid-answer".into());
                }
                Ok(body.to_vec())
            },
            Ok,
        )
    }
}

fn split_head(raw: &[u8]) -> Option<(&str, &[u8])> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    Some((head, &raw[end + 4..]))
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn check_status(head: &str) -> Result<(), String> {
    let status = head.lines().next().unwrap_or("");
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => Err(format!("answer {status:?}")),
    }
}

/// The body once `raw` holds a whole answer with a length (`Content-Length` or chunked);
/// `Ok(None)` while more is needed or the length is only known at close.
fn complete_body(raw: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let Some((head, body)) = split_head(raw) else {
        return Ok(None);
    };
    check_status(head)?;
    if header(head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return dechunk(body);
    }
    if let Some(len) = header(head, "content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad Content-Length {len:?}"))?;
        return Ok((body.len() >= len).then(|| body[..len].to_vec()));
    }
    Ok(None)
}

/// A chunked body once its last chunk has arrived.
fn dechunk(mut body: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&body[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        let data = &body[eol + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[..size]);
        body = &data[size + 2..];
    }
}

/// A REST snapshot result: (connection number, symbol, body or why it failed).
type Fetched = (u64, String, Result<Vec<u8>, String>);

/// The market session: state machine, REST client and the scratch lists, across connections.
pub(crate) struct MarketSession<'c> {
    config: &'c UpstreamConfig,
    market: Market,
    rest: Option<Arc<Rest>>,
    fetched_tx: mpsc::UnboundedSender<Fetched>,
    fetched_rx: mpsc::UnboundedReceiver<Fetched>,
    /// Connections so far; REST answers requested on an earlier one are dropped.
    connection: u64,
    /// Messages received on the current connection (numbers them in reject logs).
    pub(crate) received: u64,
    events: Vec<MarketEvent>,
    acts: Vec<Act>,
    topic: String,
    /// Symbols whose last REST snapshot failed: their next fetch waits [`SNAPSHOT_RETRY`].
    retry: HashSet<String>,
}

impl<'c> MarketSession<'c> {
    pub(crate) fn new(config: &'c UpstreamConfig, market: Market, rest: Option<Rest>) -> Self {
        let (fetched_tx, fetched_rx) = mpsc::unbounded_channel();
        Self {
            config,
            market,
            rest: rest.map(Arc::new),
            fetched_tx,
            fetched_rx,
            connection: 0,
            received: 0,
            events: Vec::new(),
            acts: Vec::new(),
            topic: String::new(),
            retry: HashSet::new(),
        }
    }

    /// Subscribes and republishes until the connection ends or shutdown.
    pub(crate) async fn run(
        &mut self,
        mut ws: Ws,
        sink: &mut TickSink,
        shutdown: &CancellationToken,
    ) -> End {
        self.received = 0;
        self.connection += 1;
        if self.connection > 1 {
            // Whatever was sent while we were away is missing: the books start over.
            self.step(sink, Step::Reconnected);
        }
        self.acts.clear();
        for m in self.market.subscribe_messages() {
            if let Err(e) = ws.send(Message::text(m)).await {
                return End::Lost(format!("subscribe failed: {e}"));
            }
        }
        sink.stats().set_connected(true);
        let mut alive = Liveness::new(self.config.idle_timeout);
        let mut bars = tokio::time::interval(BARS_PERIOD);
        bars.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Some(why) = self.perform(&mut ws).await {
                return End::Lost(why);
            }
            let msg = tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
                    return End::Shutdown;
                }
                _ = bars.tick() => {
                    sink.tick_bars(TsMicros::now());
                    continue;
                }
                Some((connection, symbol, result)) = self.fetched_rx.recv() => {
                    if connection == self.connection {
                        match result {
                            Ok(body) => self.step(sink, Step::Snapshot(&symbol, &body)),
                            Err(why) => {
                                tracing::warn!(feed = %self.config.name, %symbol, error = %why, "REST snapshot failed; retrying");
                                self.retry.insert(symbol.clone());
                                self.step(sink, Step::SnapshotFailed(&symbol));
                            }
                        }
                    }
                    continue;
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
                    self.step(sink, Step::Message(t.as_bytes()));
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

    /// Feeds one input to the state machine, publishes what it produced and counts its error.
    fn step(&mut self, sink: &mut TickSink, step: Step<'_>) {
        let result = self.market.step(&mut self.events, &mut self.acts, step);
        let mut refused = self.publish(sink);
        // A book the bus refused (its copy disagrees, or awaits a snapshot) is synced again; a
        // book that is already syncing produces nothing more, so this ends.
        while !refused.is_empty() {
            for (symbol, e) in refused {
                let _ =
                    self.market
                        .step(&mut self.events, &mut self.acts, Step::Resync(&symbol, e));
            }
            refused = self.publish(sink);
        }
        if let Err(e) = result {
            match e {
                // The exchange's own complaint: logged, not counted as bad input.
                MarketError::Exchange(text) => {
                    tracing::warn!(feed = %self.config.name, upstream_message = %text, "upstream reported an error")
                }
                e => sink
                    .stats()
                    .record_reject(&self.config.url, self.received, &e.to_reject()),
            }
        }
    }

    /// Publishes the pending events in one bus batch; returns the book updates the bus refused
    /// (topic symbol and why).
    fn publish(&mut self, sink: &mut TickSink) -> Vec<(String, BookError)> {
        let mut refused = Vec::new();
        if self.events.is_empty() {
            return refused;
        }
        let bus = sink.bus().clone();
        let mut batch = bus.batch();
        let now = TsMicros::now();
        let mut published = 0u64;
        for event in self.events.drain(..) {
            let mut book_of = None;
            let line = match event {
                MarketEvent::Book {
                    symbol,
                    snapshot,
                    bids,
                    asks,
                    ts,
                } => Line::Book(BookLine {
                    topic: Cow::Owned(format!("book.{}", book_of.insert(symbol))),
                    snapshot,
                    bids,
                    asks,
                    ts: (ts != TsMicros::UNMEASURED).then_some(ts.0),
                    upstream: Default::default(),
                }),
                MarketEvent::Trade { symbol, trade } => Line::Trade(TradeLine {
                    topic: Cow::Owned(format!("trade.{symbol}")),
                    price: trade.price,
                    size: trade.size,
                    side: trade.side,
                    trade_id: Some(Cow::Owned(trade.trade_id)),
                    ts: Some(trade.ts.0),
                }),
                MarketEvent::Lost { symbol, reason } => {
                    self.topic.clear();
                    self.topic.push_str("book.");
                    self.topic.push_str(&symbol);
                    // Looked up, not created: a book never published has nothing to withdraw.
                    let topic = sink.bus().get(&self.topic);
                    sink.stats().record_upstream_gap(
                        &self.topic,
                        format_args!("book lost ({}): {reason:?}", reason.label()),
                    );
                    if let Some(topic) = topic {
                        // Untrusted until the adapter's next snapshot: not shown to new
                        // subscribers, and every subscriber gets an `upstream` gap marker right
                        // before that snapshot, so the loss is in every client's stream.
                        topic.withdraw_book();
                    }
                    continue;
                }
            };
            match sink.publish_any(&mut batch, &line, now) {
                Ok(p) => published += u64::from(p),
                Err(e) => {
                    sink.stats()
                        .record_reject(&self.config.url, self.received, &e);
                    if let (Reject::BookRefused(why), Some(symbol)) = (&e, book_of) {
                        if !refused.iter().any(|(s, _)| *s == symbol) {
                            refused.push((symbol, *why));
                        }
                    }
                }
            }
        }
        drop(batch);
        if published > 0 {
            sink.stats().record_ticks(published, now);
        }
        refused
    }

    /// Performs the pending actions: REST fetches in the background, messages on the socket.
    /// `Some(why)` when the socket failed.
    async fn perform(&mut self, ws: &mut Ws) -> Option<String> {
        for act in std::mem::take(&mut self.acts) {
            match act {
                Act::Send(messages) => {
                    for m in messages {
                        if let Err(e) = ws.send(Message::text(m)).await {
                            return Some(format!("resubscribe failed: {e}"));
                        }
                    }
                }
                Act::Fetch(symbol) => {
                    let Some(rest) = self.rest.clone() else {
                        // Config validation requires rest_url for binance_book.
                        continue;
                    };
                    let tx = self.fetched_tx.clone();
                    let connection = self.connection;
                    // A retry (the symbol's last fetch failed) waits a little first.
                    let delay = if self.retry.remove(&symbol) {
                        SNAPSHOT_RETRY
                    } else {
                        Duration::ZERO
                    };
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let path = binance::snapshot_path(&symbol);
                        let result = tokio::time::timeout(SNAPSHOT_TIMEOUT, rest.get(&path))
                            .await
                            .unwrap_or_else(|_| Err("timed out".into()));
                        let _ = tx.send((connection, symbol, result));
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_urls() {
        assert_eq!(
            Rest::parse("https://api.binance.com"),
            Ok((true, "api.binance.com".into(), String::new()))
        );
        assert_eq!(
            Rest::parse("http://127.0.0.1:8081/binance/"),
            Ok((false, "127.0.0.1:8081".into(), "/binance".into()))
        );
        assert!(Rest::parse("ftp://x").is_err());
        assert!(Rest::parse("http://").is_err());
        assert!(Rest::parse("http://x/?q=1").is_err());
    }

    #[test]
    fn http_bodies_by_length_and_chunks() {
        let r = |s: &str| complete_body(s.as_bytes());
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            Ok(Some(b"hello".to_vec()))
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel"),
            Ok(None)
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=1\r\nlo\r\n0\r\n\r\n"),
            Ok(Some(b"hello".to_vec()))
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n"),
            Ok(None)
        );
        assert!(r("HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n").is_err());
        assert!(r("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }

    mod loopback {
        //! The market adapters end to end: fixtures served by a WebSocket server and an HTTP server
        //! on 127.0.0.1, the upstream feed connected to them, the result read from the bus.

        use std::sync::{Arc, Mutex};

        use tickcast_bus::{Bus, BusConfig};
        use tickcast_core::market::{Book, Level};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::{TcpListener, TcpStream};
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::WebSocketStream;
        use tokio_util::sync::CancellationToken;

        use crate::feed::{Feed, FeedContext};
        use crate::stats::FeedStats;
        use crate::upstream::market::test_support::{fixture, lines};
        use crate::upstream::{AdapterKind, UpstreamConfig, UpstreamFeed};
        use futures_util::{SinkExt, StreamExt};

        type ServerWs = WebSocketStream<TcpStream>;

        /// Polls `check` every 10 ms for up to 10 s.
        async fn until(what: &str, check: impl Fn() -> bool) {
            for _ in 0..1000 {
                if check() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("timed out waiting for {what}");
        }

        /// The next text message the client sent.
        async fn recv_text(ws: &mut ServerWs) -> String {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => return t.to_string(),
                    Some(Ok(_)) => continue,
                    other => panic!("client went away: {other:?}"),
                }
            }
        }

        async fn send_all(ws: &mut ServerWs, msgs: &[String]) {
            for m in msgs {
                ws.send(Message::text(m.clone())).await.unwrap();
            }
        }

        /// Accepts one WebSocket connection on a fresh loopback port and runs `script` on it, then
        /// keeps the connection open (answering pings) until the client leaves.
        async fn ws_server<F, Fut>(script: F) -> std::net::SocketAddr
        where
            F: FnOnce(ServerWs) -> Fut + Send + 'static,
            Fut: std::future::Future<Output = ServerWs> + Send,
        {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let mut ws = script(ws).await;
                while let Some(Ok(_)) = ws.next().await {}
            });
            addr
        }

        /// Answers each GET on a fresh loopback port with the next of `answers` (status, JSON
        /// body), recording the request targets.
        async fn http_server(
            answers: Vec<(u16, String)>,
        ) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = seen.clone();
            tokio::spawn(async move {
                for (status, body) in answers {
                    let (mut tcp, _) = listener.accept().await.unwrap();
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if tcp.read(&mut byte).await.unwrap() == 0 {
                            break;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    log.lock().unwrap().push(target);
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    tcp.write_all(answer.as_bytes()).await.unwrap();
                    let _ = tcp.shutdown().await;
                }
            });
            (addr, seen)
        }

        struct Running {
            bus: Arc<Bus>,
            stats: Arc<FeedStats>,
            shutdown: CancellationToken,
            task: tokio::task::JoinHandle<Result<(), crate::feed::FeedError>>,
        }

        fn start(config: UpstreamConfig) -> Running {
            let bus = Bus::new(&BusConfig::default());
            let stats = FeedStats::new(config.name.clone(), "upstream");
            let shutdown = CancellationToken::new();
            let feed = UpstreamFeed::new(config).unwrap();
            let ctx = FeedContext::new(bus.clone(), stats.clone(), shutdown.clone());
            let task = tokio::spawn(Box::new(feed).run(ctx));
            Running {
                bus,
                stats,
                shutdown,
                task,
            }
        }

        impl Running {
            fn book(&self, topic: &str) -> Option<Book> {
                self.bus.get(topic).and_then(|t| t.book())
            }

            fn seq(&self, topic: &str) -> u64 {
                self.bus
                    .get(topic)
                    .and_then(|t| t.last())
                    .map_or(0, |l| l.seq.0)
            }

            async fn stop(self) {
                self.shutdown.cancel();
                self.task.await.unwrap().unwrap();
            }
        }

        fn levels(v: impl Iterator<Item = Level>) -> Vec<(String, String)> {
            v.map(|(p, s)| (p.to_string(), s.to_string())).collect()
        }

        fn strs(v: &[(&str, &str)]) -> Vec<(String, String)> {
            v.iter()
                .map(|(p, s)| (p.to_string(), s.to_string()))
                .collect()
        }

        #[tokio::test]
        async fn binance_book_syncs_over_rest_and_announces_the_gap() {
            let (http, requests) = http_server(vec![
                (200, fixture("binance/depth_snapshot_stale.json")),
                (200, fixture("binance/depth_snapshot.json")),
                (200, fixture("binance/depth_snapshot_resync.json")),
            ])
            .await;
            let depth = lines("binance/depth_stream.jsonl");
            let trades = lines("binance/trades.jsonl");
            let bus_slot: Arc<Mutex<Option<Arc<Bus>>>> = Arc::default();
            let slot = bus_slot.clone();
            let ws = ws_server(move |mut ws| async move {
                let sub = recv_text(&mut ws).await;
                assert_eq!(
                    sub,
                    r#"{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms","btcusdt@trade"],"id":1}"#
                );
                send_all(&mut ws, &depth[..3]).await;
                // The book is served once the second snapshot (the first was stale) is applied.
                let bus = loop {
                    if let Some(b) = slot.lock().unwrap().clone() {
                        break b;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                };
                until("the first book", || {
                    bus.get("book.BTCUSDT").is_some_and(|t| t.has_data())
                })
                .await;
                // In-order deltas, then the gap, the events after it, and the trades.
                send_all(&mut ws, &depth[3..]).await;
                send_all(&mut ws, &trades).await;
                ws
            })
            .await;
            let mut config = UpstreamConfig::new(format!("ws://{ws}/ws"), vec!["BTCUSDT".into()]);
            config.adapter = AdapterKind::BinanceBook;
            config.rest_url = Some(format!("http://{http}"));
            config.book_depth = Some(100);
            let feed = start(config);
            *bus_slot.lock().unwrap() = Some(feed.bus.clone());

            let expected_bids = strs(&[
                ("97000.50000000", "0.40000000"),
                ("97000.00000000", "1.50000000"),
                ("96999.50000000", "2.00000000"),
                ("96998.00000000", "0.30000000"),
            ]);
            let expected_asks = strs(&[
                ("97001.00000000", "0.70000000"),
                ("97001.50000000", "1.10000000"),
                ("97002.00000000", "0.90000000"),
            ]);
            until("the final book and the trades", || {
                feed.book("book.BTCUSDT").is_some_and(|b| {
                    levels(b.bids()) == expected_bids && levels(b.asks()) == expected_asks
                }) && feed.seq("trade.BTCUSDT") == 3
            })
            .await;
            assert_eq!(
                *requests.lock().unwrap(),
                vec!["/api/v3/depth?symbol=BTCUSDT&limit=1000"; 3]
            );
            // The gap: counted by the feed, announced by the bus as an upstream gap marker.
            assert_eq!(feed.stats.upstream_gaps(), 1);
            assert_eq!(feed.bus.upstream_gaps(), 1);
            // The repeated trade was refused and counted.
            assert_eq!(feed.stats.parse_errors(), 1);
            let trade = feed.bus.get("trade.BTCUSDT").unwrap().last().unwrap();
            let v: serde_json::Value = serde_json::from_slice(trade.frame.payload()).unwrap();
            assert_eq!(
                (
                    v["price"].as_str(),
                    v["size"].as_str(),
                    v["side"].as_str(),
                    v["trade_id"].as_str()
                ),
                (
                    Some("97000.00000000"),
                    Some("0.00001000"),
                    Some("sell"),
                    Some("4180713")
                )
            );
            feed.stop().await;
        }

        #[tokio::test]
        async fn binance_book_retries_a_failed_snapshot() {
            let (http, requests) = http_server(vec![
                (503, r#"{"code":-1003,"msg":"busy"}"#.into()),
                (200, fixture("binance/depth_snapshot.json")),
            ])
            .await;
            let depth = lines("binance/depth_stream.jsonl");
            let ws = ws_server(move |mut ws| async move {
                recv_text(&mut ws).await;
                send_all(&mut ws, &depth[..3]).await;
                ws
            })
            .await;
            let mut config = UpstreamConfig::new(format!("ws://{ws}/ws"), vec!["BTCUSDT".into()]);
            config.adapter = AdapterKind::BinanceBook;
            config.rest_url = Some(format!("http://{http}"));
            let feed = start(config);
            until("the book after the retry", || {
                feed.book("book.BTCUSDT").is_some()
            })
            .await;
            assert_eq!(requests.lock().unwrap().len(), 2);
            // The event that straddles the snapshot was applied on top of it.
            assert_eq!(feed.seq("book.BTCUSDT"), 2);
            assert_eq!(feed.stats.upstream_gaps(), 0);
            feed.stop().await;
        }

        #[tokio::test]
        async fn kraken_checksum_mismatch_resubscribes_and_resyncs() {
            let book = lines("kraken/book.jsonl");
            let final_checksum = {
                let last: serde_json::Value = serde_json::from_str(book.last().unwrap()).unwrap();
                last["data"][0]["checksum"].as_u64().unwrap()
            };
            let trades = lines("kraken/trades.jsonl");
            let ws = ws_server(move |mut ws| async move {
                let book_sub = recv_text(&mut ws).await;
                assert!(
                    book_sub.contains(r#""channel":"book""#) && book_sub.contains(r#""depth":10"#),
                    "{book_sub}"
                );
                let trade_sub = recv_text(&mut ws).await;
                assert!(trade_sub.contains(r#""channel":"trade""#), "{trade_sub}");
                // Snapshot, three good updates, the wrong checksum.
                send_all(&mut ws, &book[..5]).await;
                // The client asks for the book again.
                assert!(recv_text(&mut ws).await.starts_with(
                    r#"{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"]"#
                ));
                assert!(recv_text(&mut ws).await.starts_with(
                    r#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"]"#
                ));
                send_all(&mut ws, &book[5..]).await;
                send_all(&mut ws, &trades).await;
                ws
            })
            .await;
            let mut config = UpstreamConfig::new(format!("ws://{ws}/v2"), vec!["BTC/USD".into()]);
            config.adapter = AdapterKind::Kraken;
            config.book_depth = Some(10);
            let feed = start(config);
            until("the final book and the trades", || {
                feed.book("book.BTC-USD").is_some_and(|b| {
                    b.bids().next()
                        == Some(crate::upstream::market::test_support::lv(
                            "45284.0",
                            "0.35000000",
                        ))
                }) && feed.seq("trade.BTC-USD") == 4
            })
            .await;
            let b = feed.book("book.BTC-USD").unwrap();
            assert_eq!(u64::from(b.checksum()), final_checksum);
            assert_eq!(b.asks().count(), 10);
            assert_eq!(feed.stats.upstream_gaps(), 1);
            assert_eq!(feed.bus.upstream_gaps(), 1);
            assert_eq!(feed.stats.parse_errors(), 0);
            feed.stop().await;
        }

        /// The bus's copy of a book diverges (here: another publisher writes it); the next delta,
        /// fine for the adapter, is refused by the bus, and the adapter resyncs the book.
        #[tokio::test]
        async fn a_book_the_bus_refuses_is_resynced() {
            let l2 = lines("coinbase/level2.jsonl");
            let (diverged_tx, diverged_rx) = tokio::sync::oneshot::channel::<()>();
            let ws = ws_server(move |mut ws| async move {
                for _ in 0..3 {
                    recv_text(&mut ws).await;
                }
                send_all(&mut ws, &l2[..2]).await; // snapshot, subscriptions
                diverged_rx.await.unwrap();
                send_all(&mut ws, &l2[2..3]).await; // bid 21921.73: crosses the bus's copy
                assert!(recv_text(&mut ws).await.starts_with(r#"{"type":"unsubscribe""#));
                assert!(recv_text(&mut ws).await.starts_with(r#"{"type":"subscribe""#));
                let snapshot = r#"{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:51.200000000Z","sequence_num":3,"events":[{"type":"snapshot","product_id":"BTC-USD","updates":[{"side":"bid","event_time":"1970-01-01T00:00:00Z","price_level":"21921.73","new_quantity":"0.1"},{"side":"offer","event_time":"1970-01-01T00:00:00Z","price_level":"21922.86","new_quantity":"0.6"}]}]}"#;
                send_all(&mut ws, &[snapshot.to_string()]).await;
                ws
            })
            .await;
            let mut config = UpstreamConfig::new(format!("ws://{ws}/"), vec!["BTC-USD".into()]);
            config.adapter = AdapterKind::CoinbaseLevel2;
            let feed = start(config);
            until("the first book", || feed.book("book.BTC-USD").is_some()).await;
            // Another writer replaces the bus's book: best ask 21921.0, below the feed's bids.
            let mut other = crate::sink::TickSink::new(
                crate::publisher::Publisher::new(feed.bus.clone(), FeedStats::new("other", "test")),
                4096,
            );
            let lv = crate::upstream::market::test_support::lv;
            let line = crate::parse::Line::Book(crate::market_line::BookLine {
                topic: "book.BTC-USD".into(),
                snapshot: true,
                bids: vec![lv("21900", "1")],
                asks: vec![lv("21921.0", "1")],
                ts: None,
                upstream: Default::default(),
            });
            let bus = feed.bus.clone();
            let mut batch = bus.batch();
            other
                .publish_any(&mut batch, &line, tickcast_core::TsMicros::now())
                .unwrap();
            drop(batch);
            diverged_tx.send(()).unwrap();
            until("the resynced book", || {
                feed.book("book.BTC-USD").is_some_and(|b| {
                    levels(b.bids()) == strs(&[("21921.73", "0.1")])
                        && levels(b.asks()) == strs(&[("21922.86", "0.6")])
                })
            })
            .await;
            // The refused delta was counted; the loss announced.
            assert_eq!(feed.stats.parse_errors(), 1);
            assert_eq!(feed.stats.upstream_gaps(), 1);
            assert!(!feed.bus.get("book.BTC-USD").unwrap().is_untrusted());
            feed.stop().await;
        }

        #[tokio::test]
        async fn coinbase_sequence_gap_resubscribes_and_resyncs() {
            let l2 = lines("coinbase/level2.jsonl");
            let ws = ws_server(move |mut ws| async move {
                for channel in ["level2", "market_trades", "heartbeats"] {
                    let sub = recv_text(&mut ws).await;
                    assert_eq!(
                        sub,
                        format!(r#"{{"type":"subscribe","product_ids":["BTC-USD"],"channel":"{channel}"}}"#)
                    );
                }
                // Snapshot, updates, then sequence_num 7 after 4.
                send_all(&mut ws, &l2[..6]).await;
                assert_eq!(
                    recv_text(&mut ws).await,
                    r#"{"type":"unsubscribe","product_ids":["BTC-USD"],"channel":"level2"}"#
                );
                assert_eq!(
                    recv_text(&mut ws).await,
                    r#"{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}"#
                );
                send_all(&mut ws, &l2[6..]).await;
                ws
            })
            .await;
            let mut config = UpstreamConfig::new(format!("ws://{ws}/"), vec!["BTC-USD".into()]);
            config.adapter = AdapterKind::CoinbaseLevel2;
            let feed = start(config);
            let expected_asks = strs(&[
                ("21922.5", "0.05"),
                ("21922.86", "0.6"),
                ("21923", "1.1"),
                ("21924.5", "0.5"),
                ("21925.12", "2.25"),
                ("21926", "4"),
            ]);
            until("the final book", || {
                feed.book("book.BTC-USD")
                    .is_some_and(|b| levels(b.asks()) == expected_asks)
            })
            .await;
            let b = feed.book("book.BTC-USD").unwrap();
            assert_eq!(
                levels(b.bids()),
                strs(&[
                    ("21921.73", "0.1"),
                    ("21921.3", "0.02"),
                    ("21920.01", "1.5"),
                    ("21919.5", "0.75"),
                ])
            );
            assert_eq!(feed.stats.upstream_gaps(), 1);
            assert_eq!(feed.bus.upstream_gaps(), 1);
            feed.stop().await;
        }
    }
}
