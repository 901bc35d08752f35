//! The NDJSON lines for order books and trades, beside the quote line of [`crate::parse`]:
//!
//! ```text
//! {"type":"book","topic":"book.BTC-USD","snapshot":true,"bids":[["64000.5","1.25"]],"asks":[["64001.0","0.5"]]}
//! {"type":"book","topic":"book.BTC-USD","bids":[["64000.5","0"]],"asks":[]}
//! {"type":"trade","topic":"trade.BTC-USD","price":"64000.5","size":"0.012","side":"buy","trade_id":"t-1"}
//! ```
//!
//! Prices and sizes are decimal strings (integers are accepted too) and keep exactly their digits:
//! a JSON number with a fraction is refused, since it would have gone through a binary float.
//! `snapshot` defaults to false (a delta); `ts` (unix µs) is optional; a trade's `trade_id` is
//! optional (tickcast's seq stands in for it).

use std::borrow::Cow;

use simd_json::prelude::*;
use simd_json::tape::{Object, Value};
use tickcast_core::market::{Decimal, Level, Side};
use tickcast_core::TopicClass;

use crate::parse::validate_topic;
use crate::reject::Reject;

/// Most levels one book line may carry per side.
pub const MAX_LEVELS: usize = 5_000;

/// A validated book snapshot or delta line.
#[derive(Debug, Clone, PartialEq)]
pub struct BookLine<'a> {
    /// A `book.*` topic.
    pub topic: Cow<'a, str>,
    /// Replaces the whole book (else: changed levels, size 0 removes).
    pub snapshot: bool,
    /// Bid levels as given.
    pub bids: Vec<Level>,
    /// Ask levels as given.
    pub asks: Vec<Level>,
    /// Source time, unix µs.
    pub ts: Option<u64>,
    /// What an ingest node's own `book` messages carry besides (read by a gateway behind it; a
    /// feed line's are ignored: the server numbers and checks its books itself).
    pub upstream: UpstreamBook,
}

/// The `seq`, `checksum` and `depth` of a `book` message as tickcast encodes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamBook {
    /// The message's seq.
    pub seq: Option<u64>,
    /// The checksum of the sender's book after the update.
    pub checksum: Option<u32>,
    /// Levels each side the sender keeps (on snapshots).
    pub depth: Option<usize>,
}

/// A validated trade line.
#[derive(Debug, Clone, PartialEq)]
pub struct TradeLine<'a> {
    /// A `trade.*` topic.
    pub topic: Cow<'a, str>,
    /// Execution price.
    pub price: Decimal,
    /// Executed size (> 0).
    pub size: Decimal,
    /// Taker side.
    pub side: Side,
    /// The venue's id, if given.
    pub trade_id: Option<Cow<'a, str>>,
    /// Execution time, unix µs.
    pub ts: Option<u64>,
}

fn string<'a>(v: Value<'_, 'a>, field: &'static str) -> Result<Cow<'a, str>, Reject> {
    v.into_string()
        .map(Cow::Borrowed)
        .ok_or(Reject::BadField(field, "must be a string"))
}

/// A price or size: a decimal string, or an integer (exact either way).
fn decimal(v: Value<'_, '_>, field: &'static str) -> Result<Decimal, Reject> {
    if let Some(s) = v.as_str() {
        return Decimal::parse(s.trim()).map_err(|_| Reject::BadNumber(field));
    }
    if let Some(u) = v.as_u64() {
        return Decimal::parse(&u.to_string()).map_err(|_| Reject::BadNumber(field));
    }
    if v.as_f64().is_some() {
        return Err(Reject::BadField(
            field,
            "must be a decimal string (a JSON number with a fraction loses digits)",
        ));
    }
    Err(Reject::BadNumber(field))
}

fn levels(v: Value<'_, '_>, field: &'static str) -> Result<Vec<Level>, Reject> {
    let arr = v
        .as_array()
        .ok_or(Reject::BadField(field, "must be an array of [price, size]"))?;
    if arr.len() > MAX_LEVELS {
        return Err(Reject::BadField(field, "has too many levels"));
    }
    let mut out = Vec::with_capacity(arr.len());
    for level in arr.iter() {
        let pair = level
            .as_array()
            .filter(|p| p.len() == 2)
            .ok_or(Reject::BadField(field, "levels must be [price, size]"))?;
        let (Some(p), Some(s)) = (pair.get(0), pair.get(1)) else {
            return Err(Reject::BadField(field, "levels must be [price, size]"));
        };
        let size = decimal(s, "size")?;
        if size.is_negative() {
            return Err(Reject::BadNumber("size"));
        }
        out.push((decimal(p, "price")?, size));
    }
    Ok(out)
}

fn ts(v: Value<'_, '_>) -> Result<u64, Reject> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or(Reject::BadNumber("ts"))
}

/// The topic, checked to be of `class`.
fn topic<'a>(
    v: Option<Value<'_, 'a>>,
    class: TopicClass,
    channel: &str,
) -> Result<Cow<'a, str>, Reject> {
    let t = string(v.ok_or(Reject::MissingField("topic"))?, "topic")?;
    validate_topic(&t)?;
    let ch = t.split_once('.').map_or("", |(c, _)| c);
    if TopicClass::of_channel(ch) != class {
        return Err(Reject::BadTopic(format!(
            "{:?}: a {channel} line needs a {channel}.<symbol> topic",
            t.chars().take(80).collect::<String>()
        )));
    }
    Ok(t)
}

/// Reads a `"type":"book"` object off the tape.
pub(crate) fn book_from_tape<'a>(obj: &Object<'_, 'a>) -> Result<BookLine<'a>, Reject> {
    let (mut t, mut snapshot, mut bids, mut asks, mut when) = (None, false, None, None, None);
    let mut upstream = UpstreamBook::default();
    for (key, v) in obj.iter() {
        match key {
            // Read leniently: a feed line may carry fields of these names in its own format.
            "seq" => upstream.seq = v.as_u64().filter(|s| *s > 0),
            "checksum" => upstream.checksum = v.as_u64().and_then(|c| u32::try_from(c).ok()),
            "depth" => {
                upstream.depth = v
                    .as_u64()
                    .and_then(|d| usize::try_from(d).ok())
                    .filter(|d| *d > 0)
            }
            "topic" => t = Some(v),
            "snapshot" => {
                snapshot = v
                    .as_bool()
                    .ok_or(Reject::BadField("snapshot", "must be true or false"))?
            }
            "bids" => bids = Some(levels(v, "bids")?),
            "asks" => asks = Some(levels(v, "asks")?),
            "ts" if !v.is_null() => when = Some(ts(v)?),
            _ => {}
        }
    }
    let topic = topic(t, TopicClass::Book, "book")?;
    let (bids, asks) = (bids.unwrap_or_default(), asks.unwrap_or_default());
    if bids.is_empty() && asks.is_empty() && !snapshot {
        return Err(Reject::MissingField("bids"));
    }
    Ok(BookLine {
        topic,
        snapshot,
        bids,
        asks,
        ts: when,
        upstream,
    })
}

/// Reads a `"type":"trade"` object off the tape.
pub(crate) fn trade_from_tape<'a>(obj: &Object<'_, 'a>) -> Result<TradeLine<'a>, Reject> {
    let (mut t, mut price, mut size, mut side, mut id, mut when) =
        (None, None, None, None, None, None);
    for (key, v) in obj.iter() {
        match key {
            "topic" => t = Some(v),
            "price" => price = Some(decimal(v, "price")?),
            "size" => size = Some(decimal(v, "size")?),
            "side" => {
                let s = v.as_str().and_then(Side::parse);
                side = Some(s.ok_or(Reject::BadField("side", "must be \"buy\" or \"sell\""))?);
            }
            "trade_id" if !v.is_null() => {
                let s = string(v, "trade_id")?;
                if s.len() > 64 {
                    return Err(Reject::BadField("trade_id", "is longer than 64 bytes"));
                }
                id = Some(s);
            }
            "ts" if !v.is_null() => when = Some(ts(v)?),
            _ => {}
        }
    }
    let topic = topic(t, TopicClass::Event, "trade")?;
    let size = size.ok_or(Reject::MissingField("size"))?;
    if size.is_negative() || size.is_zero() {
        return Err(Reject::BadField("size", "must be above zero"));
    }
    Ok(TradeLine {
        topic,
        price: price.ok_or(Reject::MissingField("price"))?,
        size,
        side: side.ok_or(Reject::MissingField("side"))?,
        trade_id: id,
        ts: when,
    })
}
