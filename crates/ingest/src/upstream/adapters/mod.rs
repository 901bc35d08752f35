//! Exchange-style message formats, each turned into [`Update`]s: partial quotes of one symbol with
//! the upstream's own sequence number when it has one.

mod binance;
mod coinbase;
mod tickcast;

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::gaps::SeqMode;
use crate::reject::Reject;

pub use binance::Binance;
pub use coinbase::Coinbase;
pub use tickcast::Tickcast;

/// Which upstream protocol a feed speaks (`adapter` in the config file, default `tickcast`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterKind {
    /// Another tickcast (protocol v1): an edge relay tier.
    #[default]
    Tickcast,
    /// Coinbase Exchange websocket feed, `ticker` channel.
    Coinbase,
    /// Binance spot streams `<symbol>@bookTicker` and `<symbol>@trade` (raw or combined).
    Binance,
    /// Binance spot order books (`<symbol>@depth@100ms` kept in sync with REST snapshots from
    /// `rest_url`) and trades, published as `book.*` and `trade.*` ([`crate::upstream::market::binance`]).
    BinanceBook,
    /// Kraken WebSocket v2 `book` (checksums verified) and `trade`, published as `book.*` and
    /// `trade.*` ([`crate::upstream::market::kraken`]).
    Kraken,
    /// Coinbase Advanced Trade `level2` and `market_trades`, published as `book.*` and `trade.*`
    /// ([`crate::upstream::market::coinbase`]).
    CoinbaseLevel2,
}

impl AdapterKind {
    /// A fresh quote adapter of this kind; `None` for the market kinds, whose state machines
    /// live in [`crate::upstream::market`].
    pub fn build(self) -> Option<Box<dyn Adapter>> {
        match self {
            AdapterKind::Tickcast => Some(Box::new(Tickcast)),
            AdapterKind::Coinbase => Some(Box::new(Coinbase)),
            AdapterKind::Binance => Some(Box::new(Binance)),
            AdapterKind::BinanceBook | AdapterKind::Kraken | AdapterKind::CoinbaseLevel2 => None,
        }
    }

    /// Whether this kind publishes order books and trades (else ticker quotes).
    pub fn is_market(self) -> bool {
        self.build().is_none()
    }

    /// The name used in configuration and logs.
    pub fn label(self) -> &'static str {
        match self {
            AdapterKind::Tickcast => "tickcast",
            AdapterKind::Coinbase => "coinbase",
            AdapterKind::Binance => "binance",
            AdapterKind::BinanceBook => "binance_book",
            AdapterKind::Kraken => "kraken",
            AdapterKind::CoinbaseLevel2 => "coinbase_level2",
        }
    }
}

/// An upstream sequence number and how its stream counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamSeq {
    /// Sub-stream of the symbol (e.g. Binance book = 0, trades = 1): each is checked on its own.
    pub stream: u8,
    /// The number.
    pub value: u64,
    /// Dense or merely increasing.
    pub mode: SeqMode,
}

/// What one upstream message says about one symbol; absent fields keep their last known value.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Update<'a> {
    /// The upstream's channel, when its symbols are full topics (tickcast); else the feed's.
    pub channel: Option<&'a str>,
    /// The symbol (or the part of the topic after the channel).
    pub symbol: &'a str,
    /// Best bid.
    pub bid: Option<f64>,
    /// Best ask.
    pub ask: Option<f64>,
    /// Last trade price.
    pub last: Option<f64>,
    /// Last trade size.
    pub size: Option<f64>,
    /// Upstream sequence number, if the message has one.
    pub seq: Option<UpstreamSeq>,
}

/// One upstream protocol.
pub trait Adapter: Send {
    /// Text messages to send after connecting to subscribe to `symbols`.
    fn subscribe(&self, symbols: &[String]) -> Vec<String>;

    /// Decodes one text message (in place: `msg` is scratch afterwards) and calls `emit` for each
    /// update it carries. Control messages (acks, heartbeats) emit nothing.
    fn decode(
        &mut self,
        msg: &mut [u8],
        buffers: &mut simd_json::Buffers,
        emit: &mut dyn FnMut(Update<'_>),
    ) -> Result<(), Reject>;
}

/// Parses a message into a value tree.
fn parse<'a>(
    msg: &'a mut [u8],
    buffers: &mut simd_json::Buffers,
) -> Result<BorrowedValue<'a>, Reject> {
    simd_json::to_borrowed_value_with_buffers(msg, buffers).map_err(|e| Reject::json(&e))
}

/// A price or size sent as a JSON number or a decimal string; absent = `Ok(None)`.
fn num(v: &BorrowedValue<'_>, key: &'static str) -> Result<Option<f64>, Reject> {
    let Some(x) = v.get(key) else {
        return Ok(None);
    };
    let f = match x.as_str() {
        Some(s) => s.parse::<f64>().ok(),
        None => x.cast_f64(),
    };
    match f {
        Some(f) if f.is_finite() => Ok(Some(f)),
        _ => Err(Reject::BadNumber(key)),
    }
}

/// A required string field.
fn string<'v>(v: &'v BorrowedValue<'_>, key: &'static str) -> Result<&'v str, Reject> {
    v.get(key)
        .ok_or(Reject::MissingField(key))?
        .as_str()
        .ok_or(Reject::BadJson(format!("\"{key}\" must be a string")))
}

/// An optional non-negative integer field.
fn uint(v: &BorrowedValue<'_>, key: &'static str) -> Result<Option<u64>, Reject> {
    match v.get(key) {
        None => Ok(None),
        Some(x) => x.as_u64().map(Some).ok_or(Reject::BadNumber(key)),
    }
}

/// Logs an error message the upstream sent (its text is not ours to count as bad input).
fn upstream_error(v: &BorrowedValue<'_>, text_key: &str) {
    let text = v.get(text_key).and_then(|m| m.as_str()).unwrap_or("");
    tracing::warn!(upstream_message = %text, "upstream reported an error");
}

#[cfg(test)]
pub(crate) fn decode_all(adapter: &mut dyn Adapter, msg: &str) -> Result<Vec<String>, Reject> {
    let mut buf = msg.as_bytes().to_vec();
    let mut out = Vec::new();
    adapter.decode(&mut buf, &mut simd_json::Buffers::default(), &mut |u| {
        out.push(format!("{u:?}"))
    })?;
    Ok(out)
}
