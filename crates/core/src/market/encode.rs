//! JSON encoders for the `book`, `trade` and `bar` messages (prices and sizes as strings, digits as fed).

use super::bar::Bar;
use super::book::{Book, Level, Side};
use super::decimal::Decimal;
use crate::json::{write_str, write_u64};
use crate::tick::{Seq, TsMicros};
use crate::topic::Topic;

/// Appends `"name":"digits"`.
fn write_dec_field(out: &mut Vec<u8>, name: &str, d: Decimal) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":\"");
    d.write(out);
    out.push(b'"');
}

/// Appends `[["price","size"],...]`.
fn write_levels(out: &mut Vec<u8>, levels: impl Iterator<Item = Level>) {
    out.push(b'[');
    for (i, (p, s)) in levels.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"[\"");
        p.write(out);
        out.extend_from_slice(b"\",\"");
        s.write(out);
        out.extend_from_slice(b"\"]");
    }
    out.push(b']');
}

/// Appends the common `{"type":..,"topic":..,"seq":..,"ts":..` head.
fn write_head(out: &mut Vec<u8>, ty: &str, topic: &Topic, seq: Seq, ts: TsMicros) {
    out.extend_from_slice(b"{\"type\":");
    write_str(out, ty);
    out.extend_from_slice(b",\"topic\":");
    write_str(out, topic.as_str());
    out.extend_from_slice(b",\"seq\":");
    write_u64(out, seq.0);
    out.extend_from_slice(b",\"ts\":");
    write_u64(out, ts.0);
}

/// A `book` snapshot: the whole (depth-limited) book and its checksum.
pub fn encode_book_snapshot(out: &mut Vec<u8>, topic: &Topic, seq: Seq, ts: TsMicros, book: &Book) {
    write_head(out, "book", topic, seq, ts);
    out.extend_from_slice(b",\"snapshot\":true,\"depth\":");
    write_u64(out, book.depth() as u64);
    out.extend_from_slice(b",\"bids\":");
    write_levels(out, book.bids());
    out.extend_from_slice(b",\"asks\":");
    write_levels(out, book.asks());
    out.extend_from_slice(b",\"checksum\":");
    write_u64(out, u64::from(book.checksum()));
    out.push(b'}');
}

/// A `book` delta: the changed levels only (size `"0"` removes) and the checksum of the book after them.
pub fn encode_book_delta(
    out: &mut Vec<u8>,
    topic: &Topic,
    seq: Seq,
    ts: TsMicros,
    bids: &[Level],
    asks: &[Level],
    checksum: u32,
) {
    write_head(out, "book", topic, seq, ts);
    out.extend_from_slice(b",\"snapshot\":false,\"bids\":");
    write_levels(out, bids.iter().copied());
    out.extend_from_slice(b",\"asks\":");
    write_levels(out, asks.iter().copied());
    out.extend_from_slice(b",\"checksum\":");
    write_u64(out, u64::from(checksum));
    out.push(b'}');
}

/// One trade as fed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trade {
    /// Execution price.
    pub price: Decimal,
    /// Executed size.
    pub size: Decimal,
    /// Taker side.
    pub side: Side,
    /// The venue's trade id, passed through.
    pub trade_id: String,
    /// Execution time.
    pub ts: TsMicros,
}

/// A `trade` message.
pub fn encode_trade(out: &mut Vec<u8>, topic: &Topic, seq: Seq, trade: &Trade) {
    write_head(out, "trade", topic, seq, trade.ts);
    out.push(b',');
    write_dec_field(out, "price", trade.price);
    out.push(b',');
    write_dec_field(out, "size", trade.size);
    out.extend_from_slice(b",\"side\":");
    write_str(out, trade.side.as_str());
    out.extend_from_slice(b",\"trade_id\":");
    write_str(out, &trade.trade_id);
    out.push(b'}');
}

/// A `bar` message (`start` in microseconds since the epoch).
pub fn encode_bar(out: &mut Vec<u8>, topic: &Topic, seq: Seq, bar: &Bar) {
    out.extend_from_slice(b"{\"type\":\"bar\",\"topic\":");
    write_str(out, topic.as_str());
    out.extend_from_slice(b",\"seq\":");
    write_u64(out, seq.0);
    out.extend_from_slice(b",\"start\":");
    write_u64(out, bar.start.0);
    for (name, v) in [
        ("open", bar.open),
        ("high", bar.high),
        ("low", bar.low),
        ("close", bar.close),
        ("volume", bar.volume),
        ("vwap", bar.vwap()),
    ] {
        out.push(b',');
        write_dec_field(out, name, v);
    }
    out.extend_from_slice(b",\"trades\":");
    write_u64(out, bar.trades);
    out.extend_from_slice(b",\"closed\":");
    out.extend_from_slice(if bar.closed { b"true" } else { b"false" });
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    fn parse(out: &mut [u8]) -> serde_json::Value {
        serde_json::from_slice(out).unwrap()
    }

    #[test]
    fn book_snapshot_and_delta_are_valid_json_with_string_prices() {
        let topic = Topic::new("book.BTC-USD").unwrap();
        let mut book = Book::new(10);
        book.apply_snapshot(&[(d("64000.5"), d("1.25"))], &[(d("64001.00"), d("0.5"))])
            .unwrap();
        let mut out = Vec::new();
        encode_book_snapshot(&mut out, &topic, Seq(7), TsMicros(9), &book);
        let v = parse(&mut out);
        assert_eq!(v["type"], "book");
        assert_eq!(v["snapshot"], true);
        assert_eq!(v["bids"][0][0], "64000.5");
        assert_eq!(v["asks"][0][0], "64001.00");
        assert_eq!(v["checksum"], u64::from(book.checksum()));

        let mut out = Vec::new();
        encode_book_delta(
            &mut out,
            &topic,
            Seq(8),
            TsMicros(10),
            &[(d("64000.5"), d("0"))],
            &[],
            42,
        );
        let v = parse(&mut out);
        assert_eq!(v["snapshot"], false);
        assert_eq!(v["bids"][0][1], "0");
        assert_eq!(v["asks"].as_array().unwrap().len(), 0);
        assert_eq!(v["seq"], 8);
    }

    #[test]
    fn trade_keeps_digits_and_escapes_the_id() {
        let topic = Topic::new("trade.BTC-USD").unwrap();
        let t = Trade {
            price: d("64000.50"),
            size: d("0.012"),
            side: Side::Sell,
            trade_id: "a\"b".into(),
            ts: TsMicros(1),
        };
        let mut out = Vec::new();
        encode_trade(&mut out, &topic, Seq(1), &t);
        let v = parse(&mut out);
        assert_eq!(v["price"], "64000.50");
        assert_eq!(v["size"], "0.012");
        assert_eq!(v["side"], "sell");
        assert_eq!(v["trade_id"], "a\"b");
    }
}
