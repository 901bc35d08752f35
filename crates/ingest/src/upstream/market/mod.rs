//! Exchange order-book and trade adapters as pure state machines, one per venue:
//! [`binance`] (diff depth + REST snapshot sync, trades), [`kraken`] (WebSocket v2 `book` with
//! checksum verification, `trade`) and [`coinbase`] (Advanced Trade `level2` with `sequence_num`
//! gap detection, `market_trades`).
//!
//! This module owns what the three share: the common output ([`MarketEvent`], [`LostReason`],
//! [`Output`]), the typed per-message error ([`MarketError`]), the mapping of exchange symbols to
//! tickcast topic symbols ([`topic_symbol`]), the exact parse of JSON number tokens
//! ([`parse_number_token`]) and of RFC 3339 timestamps ([`parse_rfc3339_micros`]).
//!
//! No adapter touches a socket or a clock: each decision is a function of (adapter state, input),
//! in the style of quinn-proto. The caller feeds every text message it receives (and, for Binance,
//! every REST snapshot body), publishes the [`MarketEvent`]s, performs the actions (fetch a
//! snapshot, resubscribe) that come back as values, and counts the errors. In the server that
//! caller is the upstream feed's market session (`adapter = "binance_book" | "kraken" |
//! "coinbase_level2"`).
//!
//! ```
//! use tickcast_ingest::upstream::market::{binance, BinanceAction, BinanceBook, MarketEvent, Output};
//!
//! let mut adapter = BinanceBook::new(&["BTCUSDT".into()], 100)?;
//! let mut out = Output::default();
//! // The first depth event is buffered and a REST snapshot asked for.
//! adapter.handle(br#"{"e":"depthUpdate","E":1733400000000,"s":"BTCUSDT","U":11,"u":12,
//!     "b":[["97000.00","0.5"]],"a":[]}"#, &mut out)?;
//! assert_eq!(out.actions, [BinanceAction::FetchSnapshot { symbol: "BTCUSDT".into() }]);
//! assert_eq!(binance::snapshot_path("BTCUSDT"), "/api/v3/depth?symbol=BTCUSDT&limit=1000");
//! // The caller performs the GET and hands the body back: the book, then the bridging delta.
//! out.clear();
//! adapter.on_snapshot("BTCUSDT", br#"{"lastUpdateId":11,"bids":[["97000.00","1.0"]],
//!     "asks":[["97000.01","2.0"]]}"#, &mut out)?;
//! assert!(matches!(&out.events[..], [
//!     MarketEvent::Book { snapshot: true, .. },
//!     MarketEvent::Book { snapshot: false, .. },
//! ]));
//! # Ok::<(), tickcast_ingest::upstream::market::MarketError>(())
//! ```
//!
//! # Symbol mapping
//!
//! Topic symbols may only hold ASCII letters, digits and `. _ : -` (see `tickcast_core::topic`),
//! so [`topic_symbol`] maps an exchange symbol as follows:
//!
//! | venue | exchange symbol | topic symbol |
//! |---|---|---|
//! | Binance | `BTCUSDT` (`btcusdt` in stream names) | `BTCUSDT` |
//! | Kraken | `BTC/USD` | `BTC-USD` |
//! | Coinbase | `BTC-USD` | `BTC-USD` |
//!
//! Letters are upper-cased and `/` becomes `-`; any other character outside the topic alphabet is
//! refused ([`MarketError::BadSymbol`]) rather than silently rewritten, so two exchange symbols can
//! never collide on one topic by accident.

pub mod binance;
pub mod coinbase;
pub mod kraken;

use std::collections::HashMap;

use tickcast_core::market::{BookError, Decimal, DecimalError, Level, Trade};
use tickcast_core::topic::MAX_TOPIC_LEN;
use tickcast_core::TsMicros;

use crate::reject::{Reject, RejectReason};

pub use binance::{BinanceAction, BinanceBook};
pub use coinbase::{CoinbaseAction, CoinbaseLevel2};
pub use kraken::{KrakenAction, KrakenBook};

/// Longest topic symbol [`topic_symbol`] produces: room is left for the longest channel prefix a
/// market topic uses (`trade.`), so `<channel>.<symbol>` stays within [`MAX_TOPIC_LEN`].
pub const MAX_SYMBOL_LEN: usize = MAX_TOPIC_LEN - "trade.".len();

/// What an adapter makes of the exchange's messages, in the order they must be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketEvent {
    /// Replace the book of `symbol` (`snapshot = true`: `bids`/`asks` are the whole book, best
    /// first) or apply changed levels (`snapshot = false`; size 0 removes the level).
    Book {
        /// Topic symbol ([`topic_symbol`]).
        symbol: String,
        /// Whole book (true) or changed levels (false).
        snapshot: bool,
        /// Bid levels.
        bids: Vec<Level>,
        /// Ask levels.
        asks: Vec<Level>,
        /// The exchange's time of the change; [`TsMicros::UNMEASURED`] when the message has none.
        ts: TsMicros,
    },
    /// One trade, price and size with the exchange's digits, `side` the taker's.
    Trade {
        /// Topic symbol ([`topic_symbol`]).
        symbol: String,
        /// The trade.
        trade: Trade,
    },
    /// The adapter lost sync on `symbol`: counted and announced downstream as an `upstream` gap;
    /// the book must not be served until the next [`MarketEvent::Book`] with `snapshot = true`.
    Lost {
        /// Topic symbol ([`topic_symbol`]).
        symbol: String,
        /// Why.
        reason: LostReason,
    },
}

impl MarketEvent {
    /// The topic symbol the event is about.
    pub fn symbol(&self) -> &str {
        match self {
            MarketEvent::Book { symbol, .. }
            | MarketEvent::Trade { symbol, .. }
            | MarketEvent::Lost { symbol, .. } => symbol,
        }
    }
}

/// Why an adapter lost sync on a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostReason {
    /// Upstream update ids or sequence numbers skipped: `expected` was next, `got` arrived.
    Gap {
        /// The id that should have come next.
        expected: u64,
        /// The id that came.
        got: u64,
    },
    /// The exchange's book checksum differs from the one of the book we maintain.
    Checksum {
        /// The exchange's checksum.
        expected: u32,
        /// Ours.
        computed: u32,
    },
    /// An update could not be applied (crossed result, negative size): our book no longer
    /// matches the exchange's.
    Refused(BookError),
    /// An update for the book could not be read (bad number, bad side): it was not applied, so
    /// our book no longer matches the exchange's.
    Unreadable,
    /// The connection was replaced; whatever was sent in between is missing.
    Reconnected,
    /// Downstream (the bus's copy of the book) refused an update the adapter had applied: the
    /// two books disagree, so the adapter syncs again.
    RefusedDownstream(BookError),
}

impl LostReason {
    /// A short fixed label, for a metrics label or a log field.
    pub fn label(self) -> &'static str {
        match self {
            LostReason::Gap { .. } => "gap",
            LostReason::Checksum { .. } => "checksum",
            LostReason::Refused(_) => "refused",
            LostReason::Unreadable => "unreadable",
            LostReason::Reconnected => "reconnected",
            LostReason::RefusedDownstream(_) => "refused_downstream",
        }
    }
}

/// What one input produced: events to publish and actions for the caller to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output<A> {
    /// Events, in publishing order.
    pub events: Vec<MarketEvent>,
    /// Actions (fetch a snapshot, resubscribe), in the order they were decided.
    pub actions: Vec<A>,
}

impl<A> Default for Output<A> {
    fn default() -> Self {
        Output {
            events: Vec::new(),
            actions: Vec::new(),
        }
    }
}

impl<A> Output<A> {
    /// Empties both lists, keeping their capacity for the next message.
    pub fn clear(&mut self) {
        self.events.clear();
        self.actions.clear();
    }
}

/// Why one exchange message (or REST body) was refused. Events and actions already pushed to the
/// [`Output`] for the same message still stand: a refused update that leaves the book out of sync
/// comes back as this error *and* a [`MarketEvent::Lost`] with its recovery action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarketError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("malformed message: {0}")]
    Json(String),
    /// A price, size or id is not an exact decimal / integer.
    #[error("field {field:?} is not a valid number: {text:?}")]
    BadNumber {
        /// The field.
        field: &'static str,
        /// What was there (cut to 40 bytes).
        text: String,
    },
    /// A level size below zero, or a price or trade size at or below zero.
    #[error("field {0:?} is negative (or a zero price or trade size)")]
    Negative(&'static str),
    /// A snapshot level with size zero.
    #[error("zero size in a snapshot")]
    ZeroSizeInSnapshot,
    /// A symbol the adapter was not configured for.
    #[error("unknown symbol {0:?}")]
    UnknownSymbol(String),
    /// A symbol that cannot become a topic symbol (see [`topic_symbol`]).
    #[error("symbol {0:?} cannot be a topic symbol")]
    BadSymbol(String),
    /// A side other than the venue's spelling of buy and sell.
    #[error("unknown side {0:?}")]
    BadSide(String),
    /// A timestamp that is not RFC 3339 / not a plausible epoch time.
    #[error("bad timestamp {0:?}")]
    BadTimestamp(String),
    /// The update would cross the book (best bid at or above best ask).
    #[error("crossed book")]
    Crossed,
    /// An update id at or below one already applied (a duplicate or a reordered message).
    #[error("out-of-order id {got} (last applied {last})")]
    OutOfOrder {
        /// The last id applied.
        last: u64,
        /// The id that arrived.
        got: u64,
    },
    /// A REST snapshot for a symbol that is not waiting for one.
    #[error("snapshot for {0:?} was not requested")]
    UnexpectedSnapshot(String),
    /// A well-formed message of a kind the adapter does not handle.
    #[error("unsupported message: {0}")]
    Unsupported(&'static str),
    /// The exchange reported an error (text cut to 200 bytes).
    #[error("exchange error: {0}")]
    Exchange(String),
}

impl MarketError {
    /// The bounded reason the caller counts this under (the labels of
    /// `tickcast_feed_parse_errors_total`).
    pub fn reason(&self) -> RejectReason {
        self.to_reject().reason()
    }

    /// The feed-level [`Reject`] this error is counted and logged as.
    pub fn to_reject(&self) -> Reject {
        match self {
            MarketError::Json(m) => Reject::BadJson(m.clone()),
            MarketError::BadNumber { field, .. } => Reject::BadNumber(field),
            MarketError::Negative(field) => {
                Reject::BadField(field, "is negative (or a zero price or trade size)")
            }
            MarketError::ZeroSizeInSnapshot => Reject::BookRefused(BookError::ZeroSizeInSnapshot),
            MarketError::Crossed => Reject::BookRefused(BookError::Crossed),
            MarketError::UnknownSymbol(s) => Reject::BadTopic(format!("unknown symbol {s:?}")),
            MarketError::BadSymbol(s) => Reject::BadTopic(format!("symbol {s:?}")),
            MarketError::BadSide(_) => Reject::BadField("side", "must be the venue's buy or sell"),
            MarketError::BadTimestamp(_) => {
                Reject::BadField("timestamp", "must be an RFC 3339 time or epoch ms")
            }
            MarketError::OutOfOrder { .. } => Reject::Unsupported("out-of-order upstream id"),
            MarketError::UnexpectedSnapshot(_) => Reject::Unsupported("snapshot not requested"),
            MarketError::Unsupported(what) => Reject::Unsupported(what),
            MarketError::Exchange(_) => Reject::Unsupported("exchange error message"),
        }
    }

    pub(crate) fn json(e: &serde_json::Error) -> MarketError {
        MarketError::Json(e.to_string())
    }

    pub(crate) fn bad_number(field: &'static str, text: &str) -> MarketError {
        MarketError::BadNumber {
            field,
            text: cut(text, 40),
        }
    }
}

impl From<BookError> for MarketError {
    fn from(e: BookError) -> MarketError {
        match e {
            BookError::NegativeSize => MarketError::Negative("size"),
            BookError::ZeroSizeInSnapshot => MarketError::ZeroSizeInSnapshot,
            BookError::Crossed => MarketError::Crossed,
            BookError::NoSnapshot => MarketError::Unsupported("delta before any snapshot"),
            BookError::AwaitingSnapshot => {
                MarketError::Unsupported("delta while the book awaits a snapshot")
            }
            BookError::ChecksumMismatch => {
                MarketError::Unsupported("delta that does not reproduce the source's checksum")
            }
        }
    }
}

/// At most `max` bytes of `s`, on a char boundary (for error texts quoting input).
pub(crate) fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Maps an exchange symbol to a tickcast topic symbol: ASCII letters upper-cased, `/` -> `-`,
/// digits and `. _ : -` kept; anything else, an empty symbol or one longer than
/// [`MAX_SYMBOL_LEN`] is refused. See the module docs for the per-venue table.
pub fn topic_symbol(exchange: &str) -> Result<String, MarketError> {
    if exchange.is_empty() || exchange.len() > MAX_SYMBOL_LEN {
        return Err(MarketError::BadSymbol(cut(exchange, 80)));
    }
    exchange
        .chars()
        .map(|c| match c {
            'a'..='z' => Ok(c.to_ascii_uppercase()),
            'A'..='Z' | '0'..='9' | '.' | '_' | ':' | '-' => Ok(c),
            '/' => Ok('-'),
            _ => Err(MarketError::BadSymbol(cut(exchange, 80))),
        })
        .collect()
}

/// The configured symbols of one adapter: exchange symbol -> its state, with the topic symbol.
/// Refuses (at construction) symbols that cannot be topics and two symbols mapping to one topic.
#[derive(Debug)]
pub(crate) struct Symbols<S> {
    map: HashMap<String, (String, S)>,
}

impl<S> Symbols<S> {
    pub(crate) fn new(
        exchange_symbols: &[String],
        mut init: impl FnMut() -> S,
    ) -> Result<Symbols<S>, MarketError> {
        let mut map = HashMap::with_capacity(exchange_symbols.len());
        let mut topics = std::collections::HashSet::new();
        for s in exchange_symbols {
            let topic = topic_symbol(s)?;
            if !topics.insert(topic.clone()) {
                return Err(MarketError::BadSymbol(cut(s, 80)));
            }
            map.insert(s.clone(), (topic, init()));
        }
        Ok(Symbols { map })
    }

    /// The topic symbol and state of `exchange`, or [`MarketError::UnknownSymbol`].
    pub(crate) fn get_mut(&mut self, exchange: &str) -> Result<(&str, &mut S), MarketError> {
        self.map
            .get_mut(exchange)
            .map(|(t, s)| (t.as_str(), s))
            .ok_or_else(|| MarketError::UnknownSymbol(cut(exchange, 80)))
    }

    pub(crate) fn get(&self, exchange: &str) -> Option<(&str, &S)> {
        self.map.get(exchange).map(|(t, s)| (t.as_str(), s))
    }

    /// The exchange symbol and state of topic symbol `topic`.
    pub(crate) fn by_topic_mut(&mut self, topic: &str) -> Option<(&String, &str, &mut S)> {
        self.iter_mut().find(|(_, t, _)| *t == topic)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &str, &mut S)> {
        self.map.iter_mut().map(|(k, (t, s))| (k, t.as_str(), s))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &String> {
        self.map.keys()
    }
}

/// Why a JSON number token is not an exact [`Decimal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Not a JSON number token (nor a quoted decimal string).
    #[error("not a JSON number")]
    Syntax,
    /// A valid number that needs more digits than a [`Decimal`] holds.
    #[error(transparent)]
    Decimal(#[from] DecimalError),
}

/// Parses the text of one JSON number token exactly, digits kept as sent (`0.10000000` keeps its
/// eight places, which Kraken's checksum depends on). Accepts the JSON grammar
/// `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`; an exponent is applied exactly by moving the
/// decimal point (`1.5e-7` = `0.00000015`, `2E+2` = `200`). A quoted decimal string (`"45283.5"`,
/// the form some Kraken examples use) is accepted too, without escapes. Never goes through `f64`.
pub fn parse_number_token(token: &str) -> Result<Decimal, NumberError> {
    let token = token.trim_matches(|c: char| c.is_ascii_whitespace());
    if let Some(inner) = token.strip_prefix('"') {
        let inner = inner.strip_suffix('"').ok_or(NumberError::Syntax)?;
        return Ok(Decimal::parse(inner)?);
    }
    let b = token.as_bytes();
    let mut i = 0;
    let neg = b.first() == Some(&b'-');
    if neg {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int = &token[int_start..i];
    if int.is_empty() || (int.len() > 1 && int.starts_with('0')) {
        return Err(NumberError::Syntax);
    }
    let mut frac = "";
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac = &token[start..i];
        if frac.is_empty() {
            return Err(NumberError::Syntax);
        }
    }
    let mut exp: i64 = 0;
    let has_exp = matches!(b.get(i), Some(b'e' | b'E'));
    if has_exp {
        i += 1;
        let exp_neg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            // Saturate: an exponent this large is refused below anyway.
            exp = (exp * 10 + i64::from(b[i] - b'0')).min(1_000);
            i += 1;
        }
        if i == start {
            return Err(NumberError::Syntax);
        }
        if exp_neg {
            exp = -exp;
        }
    }
    if i != b.len() {
        return Err(NumberError::Syntax);
    }
    if !has_exp {
        // The common case: the token is already a decimal literal Decimal::parse accepts.
        return Ok(Decimal::parse(token)?);
    }
    // Move the point: digits = int ++ frac, scale = len(frac) - exp.
    let mut digits: String = int.chars().chain(frac.chars()).collect();
    let mut scale = frac.len() as i64 - exp;
    if scale < 0 {
        if -scale > 40 {
            return Err(DecimalError::TooLong.into());
        }
        digits.extend(std::iter::repeat_n('0', (-scale) as usize));
        scale = 0;
    }
    let scale = usize::try_from(scale).map_err(|_| NumberError::Syntax)?;
    if scale > 60 {
        return Err(DecimalError::TooLong.into());
    }
    if digits.len() <= scale {
        let pad = scale + 1 - digits.len();
        digits.insert_str(0, &"0".repeat(pad));
    }
    let (ip, fp) = digits.split_at(digits.len() - scale);
    let ip = ip.trim_start_matches('0');
    let ip = if ip.is_empty() { "0" } else { ip };
    let text = match (neg, fp.is_empty()) {
        (false, true) => ip.to_string(),
        (false, false) => format!("{ip}.{fp}"),
        (true, true) => format!("-{ip}"),
        (true, false) => format!("-{ip}.{fp}"),
    };
    Ok(Decimal::parse(&text)?)
}

/// A price or size from a decimal string: exact, and never negative (`field` names it in errors).
pub(crate) fn non_negative(field: &'static str, text: &str) -> Result<Decimal, MarketError> {
    let d = Decimal::parse(text).map_err(|_| MarketError::bad_number(field, text))?;
    if d.is_negative() {
        return Err(MarketError::Negative(field));
    }
    Ok(d)
}

/// A trade price or size: exact and strictly positive.
pub(crate) fn positive(field: &'static str, d: Decimal) -> Result<Decimal, MarketError> {
    if d.is_negative() || d.is_zero() {
        return Err(MarketError::Negative(field));
    }
    Ok(d)
}

/// Parses an RFC 3339 UTC timestamp (`2023-10-06T17:35:55.440295Z`, any number of fractional
/// digits, `Z` or a `±hh:mm` offset) into microseconds since the epoch; digits past the
/// microsecond are truncated. `None` on anything else or a time before 1970.
pub fn parse_rfc3339_micros(s: &str) -> Option<TsMicros> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, min, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    let total = secs.checked_mul(1_000_000)?.checked_add(micros)?;
    u64::try_from(total).ok().map(TsMicros)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Milliseconds since the epoch (Binance's `E`/`T`) as microseconds; `None` on overflow.
pub(crate) fn millis_to_micros(ms: u64) -> Option<TsMicros> {
    ms.checked_mul(1000).map(TsMicros)
}

/// Levels with one entry per price, the last occurrence winning and first-occurrence order kept:
/// an exchange may change one level twice in a message, and both the book and downstream apply a
/// delta as a set.
pub(crate) fn collapse(levels: &mut Vec<Level>) {
    if levels.len() < 2 {
        return;
    }
    let mut out: Vec<Level> = Vec::with_capacity(levels.len());
    for &(p, s) in levels.iter() {
        match out.iter_mut().find(|l| l.0 == p) {
            Some(l) => *l = (p, s),
            None => out.push((p, s)),
        }
    }
    *levels = out;
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers the adapters' tests share: fixture loading and level construction.

    use std::path::PathBuf;

    use tickcast_core::market::{Decimal, Level};

    /// The text of `crates/ingest/tests/fixtures/exchanges/<rel>`.
    pub fn fixture(rel: &str) -> String {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/exchanges")
            .join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// Non-empty lines of a JSON-lines fixture.
    pub fn lines(rel: &str) -> Vec<String> {
        fixture(rel)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The trades of `events` for `symbol` as (price, size, side, id, ts), printed digit for digit;
    /// panics on any other event.
    pub fn trades_of(
        events: &[super::MarketEvent],
        symbol: &str,
    ) -> Vec<(String, String, tickcast_core::market::Side, String, u64)> {
        events
            .iter()
            .map(|e| match e {
                super::MarketEvent::Trade { symbol: s, trade } => {
                    assert_eq!(s, symbol);
                    (
                        trade.price.to_string(),
                        trade.size.to_string(),
                        trade.side,
                        trade.trade_id.clone(),
                        trade.ts.0,
                    )
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    pub fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    pub fn lv(p: &str, s: &str) -> Level {
        (d(p), d(s))
    }

    /// Asserts that `levels` equals `expected` digit for digit (Decimal equality is by value, so
    /// the printed forms are compared too).
    pub fn assert_levels(levels: impl Iterator<Item = Level>, expected: &[(&str, &str)]) {
        let got: Vec<(String, String)> = levels
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect();
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect();
        assert_eq!(got, want);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn symbol_mapping_table() {
        for (exchange, topic) in [
            ("BTCUSDT", "BTCUSDT"),
            ("btcusdt", "BTCUSDT"),
            ("BTC/USD", "BTC-USD"),
            ("XBT/EUR", "XBT-EUR"),
            ("BTC-USD", "BTC-USD"),
            ("ETH-USDC", "ETH-USDC"),
            ("1INCH/USD", "1INCH-USD"),
            ("BTC-PERP:X_1.2", "BTC-PERP:X_1.2"),
        ] {
            assert_eq!(topic_symbol(exchange).as_deref(), Ok(topic), "{exchange}");
        }
        for bad in [
            "",
            "BTC USD",
            "BTC\"USD",
            "BTC*",
            "ÉTH/USD",
            &"A".repeat(59),
        ] {
            assert!(
                matches!(topic_symbol(bad), Err(MarketError::BadSymbol(_))),
                "{bad:?}"
            );
        }
        assert_eq!(topic_symbol(&"A".repeat(58)).map(|s| s.len()), Ok(58));
    }

    #[test]
    fn colliding_symbols_are_refused() {
        let r = Symbols::new(&["BTC/USD".into(), "BTC-USD".into()], || ());
        assert!(matches!(r, Err(MarketError::BadSymbol(_))));
    }

    #[test]
    fn number_tokens_table() {
        for (token, printed) in [
            ("0", "0"),
            ("45283.5", "45283.5"),
            ("0.10000000", "0.10000000"),
            ("45281.0", "45281.0"),
            ("-3.25", "-3.25"),
            ("1098.3947558", "1098.3947558"),
            ("\"45283.5\"", "45283.5"),
            (" 12.50 ", "12.50"),
            ("1.5e-7", "0.00000015"),
            ("15E-8", "0.00000015"),
            ("2E+2", "200"),
            ("2.5e1", "25"),
            ("1.25e1", "12.5"),
            ("-1e-2", "-0.01"),
            ("0e5", "0"),
            ("5e0", "5"),
        ] {
            assert_eq!(
                parse_number_token(token).map(|d| d.to_string()),
                Ok(printed.to_string()),
                "{token}"
            );
        }
        for bad in [
            "", "-", "01", "1.", ".5", "+1", "1e", "1e+", "NaN", "Infinity", "1,5", "\"1", "1.2.3",
            "0x10", "true", "null", "\"1e5\"", "--1", "\"\"",
        ] {
            assert!(parse_number_token(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_number_token("1e-30"),
            Err(NumberError::Decimal(DecimalError::TooLong))
        );
        assert_eq!(
            parse_number_token("1e999999999"),
            Err(NumberError::Decimal(DecimalError::TooLong))
        );
    }

    #[test]
    fn rfc3339_timestamps() {
        let t = |s| parse_rfc3339_micros(s).map(|t| t.0);
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            t("2023-10-06T17:35:55.440295Z"),
            Some(1_696_613_755_440_295)
        );
        // Nanoseconds (Coinbase) are truncated to microseconds.
        assert_eq!(
            t("2023-02-09T20:32:50.714964855Z"),
            Some(1_675_974_770_714_964)
        );
        assert_eq!(t("2023-02-09T20:32:50.7Z"), Some(1_675_974_770_700_000));
        assert_eq!(t("2024-02-29T00:00:00+01:00"), Some(1_709_161_200_000_000));
        for bad in [
            "",
            "2023-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-02-09T20:32:50",
            "2023-02-09T20:32:50.Z",
            "1969-12-31T23:59:59Z",
            "2023-02-09T20:32:50Zjunk",
            "2023-02-09X20:32:50Z",
        ] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn collapse_keeps_the_last_change_per_price() {
        use test_support::lv;
        let mut v = vec![lv("1", "1"), lv("2", "1"), lv("1.0", "0"), lv("3", "2")];
        collapse(&mut v);
        assert_eq!(v, vec![lv("1.0", "0"), lv("2", "1"), lv("3", "2")]);
    }

    proptest! {
        /// Any decimal printed as a JSON number (plain or with an exponent) parses back to the
        /// same value, and plain tokens keep their digits.
        #[test]
        fn number_tokens_roundtrip(m in -10_000_000_000i64..10_000_000_000, scale in 0u8..12, shift in -6i32..6) {
            let d = Decimal::new(m.into(), scale);
            let plain = d.to_string();
            prop_assert_eq!(parse_number_token(&plain).map(|x| x.to_string()), Ok(plain.clone()));
            // Same value written as (d * 10^shift) e(-shift).
            let shifted = if shift >= 0 {
                Decimal::new(i128::from(m) * 10i128.pow(shift as u32), scale)
            } else {
                Decimal::new(m.into(), scale + (-shift) as u8)
            };
            let token = format!("{shifted}e{}", -shift);
            prop_assert_eq!(parse_number_token(&token), Ok(d));
        }

        /// Whatever the input, the parser answers without panicking, and what it accepts is a
        /// JSON number or a quoted decimal.
        #[test]
        fn number_tokens_never_panic(s in "[-+0-9.eE\" ]{0,24}") {
            if parse_number_token(&s).is_ok() {
                let t = s.trim();
                prop_assert!(t.starts_with('"') || serde_json::from_str::<serde_json::Number>(t).is_ok(), "{s:?}");
            }
        }

        /// Symbols in the topic alphabet (with `/`) always map, to the topic alphabet, at the same length.
        #[test]
        fn symbols_map_into_the_topic_alphabet(s in "[A-Za-z0-9/._:-]{1,58}") {
            let t = topic_symbol(&s).unwrap();
            prop_assert_eq!(t.len(), s.len());
            let topic = format!("trade.{t}");
            prop_assert!(tickcast_core::topic::Topic::new(&topic).is_ok(), "{}", topic);
            prop_assert!(!t.contains('/'));
        }
    }
}
