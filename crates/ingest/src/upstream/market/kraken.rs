//! Kraken WebSocket v2: the `book` channel (snapshot + updates, each with a CRC-32 checksum of the
//! top 10 levels) and the `trade` channel.
//!
//! Owns one book per symbol at the subscribed depth, kept exactly as Kraken defines it: all level
//! changes of a message applied, then the book truncated to the subscribed depth (Kraken sends no
//! removal for levels that fall out of scope), then the checksum of the result compared with
//! Kraken's ([`Book::checksum`] implements Kraken's algorithm). A mismatch, or an update that
//! cannot be applied, loses the book ([`MarketEvent::Lost`]) and asks the caller to resubscribe
//! ([`KrakenAction::Resubscribe`]); updates are ignored until the new snapshot.
//!
//! Kraken sends prices and quantities as JSON numbers with the pair's precision
//! (`"qty":0.10000000`) and its checksum is computed over exactly those digits, so they are read
//! as number tokens ([`parse_number_token`], through serde_json's `RawValue`), never as `f64`.
//!
//! Trades: `side` is the taker's. A trade id at or below the last one seen for the symbol is
//! dropped (the snapshot of recent trades sent on every (re)subscribe overlaps what was already
//! published); in an `update` that is also reported as [`MarketError::OutOfOrder`].

use serde::Deserialize;
use serde_json::value::RawValue;
use tickcast_core::market::{Book, Level, Side, Trade};
use tickcast_core::TsMicros;

use super::{
    collapse, cut, parse_number_token, parse_rfc3339_micros, positive, LostReason, MarketError,
    MarketEvent, Output, Symbols,
};

/// The depths Kraken's `book` channel accepts.
pub const DEPTHS: [usize; 5] = [10, 25, 100, 500, 1000];

/// What the Kraken adapter wants the caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KrakenAction {
    /// Unsubscribe and subscribe the `book` channel of `symbol` again
    /// ([`KrakenBook::resubscribe_messages`]) to get a fresh snapshot.
    Resubscribe {
        /// The exchange symbol (`BTC/USD`).
        symbol: String,
    },
}

#[derive(Debug)]
struct SymbolState {
    book: Book,
    /// A snapshot with a good checksum has been applied and nothing has gone wrong since.
    live: bool,
    last_trade: Option<u64>,
}

/// The Kraken v2 `book` + `trade` adapter for a fixed set of symbols.
#[derive(Debug)]
pub struct KrakenBook {
    symbols: Symbols<SymbolState>,
    depth: usize,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    channel: Option<&'a str>,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    method: Option<&'a str>,
    success: Option<bool>,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
struct BookData<'a> {
    symbol: &'a str,
    #[serde(borrow, default)]
    bids: Vec<RawLevel<'a>>,
    #[serde(borrow, default)]
    asks: Vec<RawLevel<'a>>,
    checksum: u32,
    timestamp: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawLevel<'a> {
    #[serde(borrow)]
    price: &'a RawValue,
    #[serde(borrow)]
    qty: &'a RawValue,
}

#[derive(Deserialize)]
struct TradeData<'a> {
    symbol: &'a str,
    side: &'a str,
    #[serde(borrow)]
    price: &'a RawValue,
    #[serde(borrow)]
    qty: &'a RawValue,
    trade_id: u64,
    timestamp: &'a str,
}

/// An exact decimal from a number token; `field` names it in errors.
fn token(
    field: &'static str,
    raw: &RawValue,
) -> Result<tickcast_core::market::Decimal, MarketError> {
    parse_number_token(raw.get()).map_err(|_| MarketError::bad_number(field, raw.get()))
}

fn levels(raw: &[RawLevel<'_>]) -> Result<Vec<Level>, MarketError> {
    raw.iter()
        .map(|l| {
            let price = positive("price", token("price", l.price)?)?;
            let qty = token("qty", l.qty)?;
            if qty.is_negative() {
                return Err(MarketError::Negative("qty"));
            }
            Ok((price, qty))
        })
        .collect()
}

fn timestamp(ts: Option<&str>) -> Result<TsMicros, MarketError> {
    match ts {
        None => Ok(TsMicros::UNMEASURED),
        Some(s) => parse_rfc3339_micros(s).ok_or_else(|| MarketError::BadTimestamp(cut(s, 40))),
    }
}

impl KrakenBook {
    /// An adapter for `symbols` (Kraken's spelling, `BTC/USD`) subscribed at `depth` (one of
    /// [`DEPTHS`]: the book is truncated to it exactly as Kraken's is, or checksums would fail).
    pub fn new(symbols: &[String], depth: usize) -> Result<KrakenBook, MarketError> {
        if !DEPTHS.contains(&depth) {
            return Err(MarketError::Unsupported(
                "Kraken book depth must be 10, 25, 100, 500 or 1000",
            ));
        }
        Ok(KrakenBook {
            symbols: Symbols::new(symbols, || SymbolState {
                book: Book::new(depth),
                live: false,
                last_trade: None,
            })?,
            depth,
        })
    }

    /// The subscribe requests to send after connecting: `book` at our depth and `trade`.
    pub fn subscribe_messages(&self) -> Vec<String> {
        let mut symbols: Vec<&String> = self.symbols.keys().collect();
        symbols.sort();
        let list = serde_json::to_string(&symbols).unwrap_or_else(|_| "[]".into());
        vec![
            format!(
                r#"{{"method":"subscribe","params":{{"channel":"book","symbol":{list},"depth":{},"snapshot":true}}}}"#,
                self.depth
            ),
            format!(
                r#"{{"method":"subscribe","params":{{"channel":"trade","symbol":{list},"snapshot":true}}}}"#
            ),
        ]
    }

    /// The requests that perform [`KrakenAction::Resubscribe`] for `symbol`.
    pub fn resubscribe_messages(&self, symbol: &str) -> Vec<String> {
        let list = serde_json::to_string(&[symbol]).unwrap_or_else(|_| "[]".into());
        vec![
            format!(
                r#"{{"method":"unsubscribe","params":{{"channel":"book","symbol":{list},"depth":{}}}}}"#,
                self.depth
            ),
            format!(
                r#"{{"method":"subscribe","params":{{"channel":"book","symbol":{list},"depth":{},"snapshot":true}}}}"#,
                self.depth
            ),
        ]
    }

    /// The book of `symbol` (Kraken's spelling) while it is in sync.
    pub fn book(&self, symbol: &str) -> Option<&Book> {
        let (_, st) = self.symbols.get(symbol)?;
        st.live.then_some(&st.book)
    }

    /// Handles one WebSocket text message.
    pub fn handle(
        &mut self,
        msg: &[u8],
        out: &mut Output<KrakenAction>,
    ) -> Result<(), MarketError> {
        let env: Envelope<'_> = serde_json::from_slice(msg).map_err(|e| MarketError::json(&e))?;
        if let Some(method) = env.method {
            // Acknowledgements of subscribe/unsubscribe/ping.
            if env.success == Some(false) {
                return Err(MarketError::Exchange(cut(env.error.unwrap_or(method), 200)));
            }
            return Ok(());
        }
        match env.channel {
            Some("book") => {
                let snapshot = match env.kind {
                    Some("snapshot") => true,
                    Some("update") => false,
                    _ => return Err(MarketError::Unsupported("book message of unknown type")),
                };
                let data = env
                    .data
                    .ok_or(MarketError::Json("book without data".into()))?;
                let entries: Vec<BookData<'_>> =
                    serde_json::from_str(data.get()).map_err(|e| MarketError::json(&e))?;
                let mut first_err = None;
                for d in entries {
                    if let Err(e) = self.on_book(snapshot, d, out) {
                        first_err.get_or_insert(e);
                    }
                }
                first_err.map_or(Ok(()), Err)
            }
            Some("trade") => {
                let snapshot = env.kind == Some("snapshot");
                let data = env
                    .data
                    .ok_or(MarketError::Json("trade without data".into()))?;
                let entries: Vec<TradeData<'_>> =
                    serde_json::from_str(data.get()).map_err(|e| MarketError::json(&e))?;
                let mut first_err = None;
                for t in entries {
                    if let Err(e) = self.on_trade(snapshot, t, out) {
                        first_err.get_or_insert(e);
                    }
                }
                first_err.map_or(Ok(()), Err)
            }
            Some("heartbeat" | "status") => Ok(()),
            Some(_) => Err(MarketError::Unsupported("channel other than book/trade")),
            None => Err(MarketError::Unsupported(
                "message without channel or method",
            )),
        }
    }

    fn on_book(
        &mut self,
        snapshot: bool,
        d: BookData<'_>,
        out: &mut Output<KrakenAction>,
    ) -> Result<(), MarketError> {
        let (topic, st) = self.symbols.get_mut(d.symbol)?;
        if !snapshot && !st.live {
            // Lost or never synced: wait for the snapshot the resubscribe brings.
            return Ok(());
        }
        let lose = |st: &mut SymbolState, reason: LostReason, out: &mut Output<KrakenAction>| {
            st.live = false;
            out.events.push(MarketEvent::Lost {
                symbol: topic.to_string(),
                reason,
            });
            out.actions.push(KrakenAction::Resubscribe {
                symbol: d.symbol.to_string(),
            });
        };
        let parsed = levels(&d.bids)
            .and_then(|b| Ok((b, levels(&d.asks)?)))
            .and_then(|(b, a)| Ok((b, a, timestamp(d.timestamp)?)));
        let (mut bids, mut asks, ts) = match parsed {
            Ok(x) => x,
            Err(e) => {
                // A live book misses this update; a snapshot we cannot read must be asked for
                // again, or the book would stay unserved.
                if st.live || snapshot {
                    lose(st, LostReason::Unreadable, out);
                }
                return Err(e);
            }
        };
        let applied = if snapshot {
            let mut book = Book::new(st.book.depth());
            book.apply_snapshot(&bids, &asks).map(|()| st.book = book)
        } else {
            collapse(&mut bids);
            collapse(&mut asks);
            st.book.apply_delta(&bids, &asks)
        };
        if let Err(e) = applied {
            if st.live || snapshot {
                lose(st, LostReason::Refused(e), out);
            }
            return Err(e.into());
        }
        let computed = st.book.checksum();
        if computed != d.checksum {
            lose(
                st,
                LostReason::Checksum {
                    expected: d.checksum,
                    computed,
                },
                out,
            );
            return Ok(());
        }
        st.live = true;
        if snapshot {
            // The book as kept (truncated to depth), best first.
            bids = st.book.bids().collect();
            asks = st.book.asks().collect();
        }
        out.events.push(MarketEvent::Book {
            symbol: topic.to_string(),
            snapshot,
            bids,
            asks,
            ts,
        });
        Ok(())
    }

    fn on_trade(
        &mut self,
        snapshot: bool,
        t: TradeData<'_>,
        out: &mut Output<KrakenAction>,
    ) -> Result<(), MarketError> {
        let (topic, st) = self.symbols.get_mut(t.symbol)?;
        let price = positive("price", token("price", t.price)?)?;
        let size = positive("qty", token("qty", t.qty)?)?;
        let side = Side::parse(t.side).ok_or_else(|| MarketError::BadSide(cut(t.side, 20)))?;
        let ts = timestamp(Some(t.timestamp))?;
        if let Some(last) = st.last_trade {
            if t.trade_id <= last {
                return if snapshot {
                    Ok(())
                } else {
                    Err(MarketError::OutOfOrder {
                        last,
                        got: t.trade_id,
                    })
                };
            }
        }
        st.last_trade = Some(t.trade_id);
        out.events.push(MarketEvent::Trade {
            symbol: topic.to_string(),
            trade: Trade {
                price,
                size,
                side,
                trade_id: t.trade_id.to_string(),
                ts,
            },
        });
        Ok(())
    }

    /// The book of `topic_symbol` was refused downstream (see [`LostReason::RefusedDownstream`]):
    /// if it is in sync it is lost and subscribed again for a new snapshot.
    pub fn resync(
        &mut self,
        topic_symbol: &str,
        reason: LostReason,
        out: &mut Output<KrakenAction>,
    ) {
        let Some((exchange, topic, st)) = self.symbols.by_topic_mut(topic_symbol) else {
            return;
        };
        if st.live {
            st.live = false;
            out.events.push(MarketEvent::Lost {
                symbol: topic.to_string(),
                reason,
            });
            out.actions.push(KrakenAction::Resubscribe {
                symbol: exchange.clone(),
            });
        }
    }

    /// The WebSocket connection was replaced: every live book is lost until its new snapshot
    /// (the caller subscribes again on the new connection; no action is needed per symbol).
    pub fn reconnected(&mut self, out: &mut Output<KrakenAction>) {
        let mut lost = Vec::new();
        for (_, topic, st) in self.symbols.iter_mut() {
            if st.live {
                st.live = false;
                lost.push(MarketEvent::Lost {
                    symbol: topic.to_string(),
                    reason: LostReason::Reconnected,
                });
            }
        }
        lost.sort_by(|a, b| a.symbol().cmp(b.symbol()));
        out.events.extend(lost);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_levels, lines, lv, trades_of};
    use super::*;
    use tickcast_core::market::crc32::crc32;
    use tickcast_core::market::BookError;

    type Out = Output<KrakenAction>;

    fn adapter() -> KrakenBook {
        KrakenBook::new(&["BTC/USD".into()], 10).unwrap()
    }

    fn resub() -> KrakenAction {
        KrakenAction::Resubscribe {
            symbol: "BTC/USD".into(),
        }
    }

    fn checksum_of(line: &str) -> u32 {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["data"][0]["checksum"].as_u64().unwrap() as u32
    }

    #[test]
    fn the_documented_example_verifies() {
        // Kraken's worked example (docs: "Book checksum (WebSocket v2)"): checksum 3310070434.
        let msgs = lines("kraken/book.jsonl");
        assert_eq!(checksum_of(&msgs[0]), 3_310_070_434);
        let mut a = adapter();
        let mut out = Out::default();
        a.handle(msgs[0].as_bytes(), &mut out).unwrap();
        assert!(out.actions.is_empty());
        assert_eq!(a.book("BTC/USD").unwrap().checksum(), 3_310_070_434);
        let MarketEvent::Book {
            symbol,
            snapshot,
            bids,
            asks,
            ts,
        } = &out.events[0]
        else {
            panic!("{:?}", out.events)
        };
        assert_eq!((symbol.as_str(), *snapshot), ("BTC-USD", true));
        assert_eq!((bids.len(), asks.len()), (10, 10));
        // Digits survive: qty 0.10000000 keeps its eight places, price 45281.0 its one.
        assert_eq!(bids[0].1.to_string(), "0.10000000");
        assert_eq!(bids[3].0.to_string(), "45281.0");
        assert_eq!(*ts, TsMicros::UNMEASURED);
    }

    #[test]
    fn a_checksum_checked_by_hand() {
        // The first update removes the best bid 45283.5 and adds 45284.0 x 0.25000000. Kraken's
        // string: asks low to high then bids high to low, '.' and leading zeros removed.
        let asks = "452852100000452864154571953452866154571109452896154560911\
                    452902158906604529181545534914529474454749452961353800004529759945542\
                    45299518772827";
        let bids = "45284025000000452834154582015452821100000004528101000000045280315459258\
                    6452790799000045277633101034527753000000045277315460273745276615445238";
        let expected = crc32(format!("{asks}{bids}").as_bytes());
        let msgs = lines("kraken/book.jsonl");
        assert_eq!(checksum_of(&msgs[1]), expected);
        let mut a = adapter();
        let mut out = Out::default();
        for m in &msgs[..2] {
            a.handle(m.as_bytes(), &mut out).unwrap();
        }
        assert_eq!(a.book("BTC/USD").unwrap().checksum(), expected);
    }

    /// The whole fixture: snapshot, three verified updates (truncation to depth 10, one level
    /// changed twice in a message), a wrong checksum (Lost + Resubscribe), an update ignored while
    /// lost, the new snapshot and one more update; the final book is Kraken's.
    #[test]
    fn replays_the_book_fixture() {
        let msgs = lines("kraken/book.jsonl");
        let mut a = adapter();
        let mut out = Out::default();
        for m in &msgs[..4] {
            a.handle(m.as_bytes(), &mut out).unwrap();
        }
        assert_eq!(out.events.len(), 4);
        assert!(out.actions.is_empty());
        let book = a.book("BTC/USD").unwrap();
        // 45299.5 fell out of the depth-10 asks when 45285.0 came in; 45276.6 out of the bids.
        assert_eq!(book.asks().last().map(|l| l.0), Some(lv("45297.5", "1").0));
        assert_eq!(book.bids().last().map(|l| l.0), Some(lv("45277.3", "1").0));
        // The twice-changed level kept its last size, and the delta event carries it once.
        assert_eq!(
            book.asks().find(|l| l.0 == lv("45286.4", "1").0),
            Some(lv("45286.4", "1.20000000"))
        );
        assert_eq!(
            out.events[3],
            MarketEvent::Book {
                symbol: "BTC-USD".into(),
                snapshot: false,
                bids: vec![lv("45280.0", "2.00000000")],
                asks: vec![lv("45286.4", "1.20000000")],
                ts: TsMicros(1_696_613_755_612_345),
            }
        );

        // The wrong checksum.
        let mut out = Out::default();
        a.handle(msgs[4].as_bytes(), &mut out).unwrap();
        let wrong = checksum_of(&msgs[4]);
        assert_eq!(
            out.events,
            vec![MarketEvent::Lost {
                symbol: "BTC-USD".into(),
                reason: LostReason::Checksum {
                    expected: wrong,
                    computed: wrong.wrapping_sub(1),
                },
            }]
        );
        assert_eq!(out.actions, vec![resub()]);
        assert!(a.book("BTC/USD").is_none());
        assert_eq!(
            a.resubscribe_messages("BTC/USD"),
            vec![
                r#"{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10}}"#,
                r#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10,"snapshot":true}}"#
            ]
        );

        // Ignored while lost.
        let mut out = Out::default();
        a.handle(msgs[5].as_bytes(), &mut out).unwrap();
        assert_eq!(out, Out::default());

        // New snapshot, one more update: the expected final book.
        for m in &msgs[6..] {
            a.handle(m.as_bytes(), &mut out).unwrap();
        }
        assert_eq!(out.events.len(), 2);
        assert!(out.actions.is_empty());
        let book = a.book("BTC/USD").unwrap();
        assert_levels(
            book.bids(),
            &[
                ("45284.0", "0.35000000"),
                ("45283.4", "1.00000000"),
                ("45282.1", "0.10000000"),
                ("45281.0", "0.10000000"),
                ("45280.3", "1.54592586"),
                ("45280.0", "2.00000000"),
                ("45277.6", "0.03310103"),
                ("45277.5", "0.20000000"),
                ("45277.3", "1.54602737"),
                ("45276.6", "0.15445238"),
            ],
        );
        assert_levels(
            book.asks(),
            &[
                ("45285.2", "0.00100000"),
                ("45286.4", "1.20000000"),
                ("45286.6", "1.54571109"),
                ("45289.6", "1.54560911"),
                ("45290.2", "0.15890660"),
                ("45291.8", "1.54553491"),
                ("45294.7", "0.04454749"),
                ("45296.1", "0.35380000"),
                ("45297.5", "0.09945542"),
                ("45299.5", "0.18772827"),
            ],
        );
        assert_eq!(book.checksum(), checksum_of(msgs.last().unwrap()));
    }

    #[test]
    fn a_deeper_subscription_checksums_only_the_top_ten() {
        // At depth 25 nothing is truncated, so 45299.5 stays in the book (11th ask) but not in
        // the checksum: the fixture's checksums still verify up to the truncation-dependent one.
        let msgs = lines("kraken/book.jsonl");
        let mut a = KrakenBook::new(&["BTC/USD".into()], 25).unwrap();
        let mut out = Out::default();
        for m in &msgs[..4] {
            a.handle(m.as_bytes(), &mut out).unwrap();
        }
        assert!(out.actions.is_empty(), "{:?}", out.events);
        assert_eq!(a.book("BTC/USD").unwrap().asks().count(), 11);
        assert!(KrakenBook::new(&["BTC/USD".into()], 20).is_err());
    }

    #[test]
    fn trades_keep_exact_decimals_sides_and_skip_replayed_ones() {
        let mut a = adapter();
        let mut out = Out::default();
        for m in lines("kraken/trades.jsonl") {
            a.handle(m.as_bytes(), &mut out).unwrap();
        }
        let got = trades_of(&out.events, "BTC-USD");
        assert_eq!(
            got,
            vec![
                (
                    "45283.5".into(),
                    "0.00100000".into(),
                    Side::Sell,
                    "72341501".into(),
                    1_696_613_750_101_010
                ),
                (
                    "45285.2".into(),
                    "0.05000000".into(),
                    Side::Buy,
                    "72341502".into(),
                    1_696_613_751_202_020
                ),
                (
                    "45285.2".into(),
                    "0.00000001".into(),
                    Side::Buy,
                    "72341503".into(),
                    1_696_613_755_440_295
                ),
                (
                    "45281.0".into(),
                    "1.25000000".into(),
                    Side::Sell,
                    "72341504".into(),
                    1_696_613_757_000_001
                ),
            ]
        );
        // A replayed trade in an update is refused.
        let replay = r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":45285.2,"qty":0.00000001,"ord_type":"market","trade_id":72341503,"timestamp":"2023-10-06T17:35:55.440295Z"}]}"#;
        assert_eq!(
            a.handle(replay.as_bytes(), &mut Out::default()),
            Err(MarketError::OutOfOrder {
                last: 72341504,
                got: 72341503
            })
        );
    }

    #[test]
    fn bad_input_is_a_typed_error_never_a_panic() {
        let err = |m: &str| {
            let mut a = adapter();
            a.handle(
                lines("kraken/book.jsonl")[0].as_bytes(),
                &mut Out::default(),
            )
            .unwrap();
            let mut out = Out::default();
            (a.handle(m.as_bytes(), &mut out).unwrap_err(), out)
        };
        let book = |bids: &str, asks: &str| {
            format!(
                r#"{{"channel":"book","type":"update","data":[{{"symbol":"BTC/USD","bids":{bids},"asks":{asks},"checksum":1,"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}"#
            )
        };
        assert!(matches!(err("{").0, MarketError::Json(_)));
        assert!(matches!(
            err(r#"{"channel":"book","type":"update","data":{}}"#).0,
            MarketError::Json(_)
        ));
        // A string that is not a number, and a non-decimal number token.
        let (e, out) = err(&book(r#"[{"price":"abc","qty":1}]"#, "[]"));
        assert_eq!(
            e,
            MarketError::BadNumber {
                field: "price",
                text: "\"abc\"".into()
            }
        );
        // The update could not be applied: the book is lost, a resubscribe asked for.
        assert_eq!(out.actions, vec![resub()]);
        assert_eq!(
            out.events,
            vec![MarketEvent::Lost {
                symbol: "BTC-USD".into(),
                reason: LostReason::Unreadable
            }]
        );
        assert_eq!(
            err(&book(r#"[{"price":45000.1,"qty":-1.5}]"#, "[]")).0,
            MarketError::Negative("qty")
        );
        assert_eq!(
            err(&book(r#"[{"price":45000.1,"qty":true}]"#, "[]")).0,
            MarketError::BadNumber {
                field: "qty",
                text: "true".into()
            }
        );
        // Crossed: a bid above the best ask.
        let (e, out) = err(&book(r#"[{"price":45290.0,"qty":1.00000000}]"#, "[]"));
        assert_eq!(e, MarketError::Crossed);
        assert_eq!(
            out.events,
            vec![MarketEvent::Lost {
                symbol: "BTC-USD".into(),
                reason: LostReason::Refused(BookError::Crossed)
            }]
        );
        assert_eq!(
            err(r#"{"channel":"book","type":"snapshot","data":[{"symbol":"ETH/USD","bids":[],"asks":[],"checksum":0}]}"#).0,
            MarketError::UnknownSymbol("ETH/USD".into())
        );
        assert_eq!(
            err(r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"hold","price":1.5,"qty":1,"ord_type":"limit","trade_id":1,"timestamp":"2023-10-06T17:35:55Z"}]}"#).0,
            MarketError::BadSide("hold".into())
        );
        assert_eq!(
            err(r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":1.5,"qty":1,"ord_type":"limit","trade_id":1,"timestamp":"yesterday"}]}"#).0,
            MarketError::BadTimestamp("yesterday".into())
        );
        assert_eq!(
            err(r#"{"method":"subscribe","success":false,"error":"Currency pair not supported"}"#)
                .0,
            MarketError::Exchange("Currency pair not supported".into())
        );
        assert_eq!(
            err(r#"{"channel":"ohlc","type":"update","data":[]}"#).0,
            MarketError::Unsupported("channel other than book/trade")
        );
    }

    #[test]
    fn an_unusable_snapshot_asks_for_another() {
        for snap in [
            r#"{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":45283.5,"qty":"x"}],"asks":[],"checksum":0}]}"#,
            r#"{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":45290.5,"qty":1}],"asks":[{"price":45285.2,"qty":1}],"checksum":0}]}"#,
        ] {
            let mut a = adapter();
            let mut out = Out::default();
            assert!(a.handle(snap.as_bytes(), &mut out).is_err());
            assert_eq!(out.actions, vec![resub()]);
            assert!(a.book("BTC/USD").is_none());
        }
    }

    #[test]
    fn reconnecting_loses_live_books_and_subscribes_again() {
        let mut a = adapter();
        a.handle(
            lines("kraken/book.jsonl")[0].as_bytes(),
            &mut Out::default(),
        )
        .unwrap();
        let mut out = Out::default();
        a.reconnected(&mut out);
        assert_eq!(
            out.events,
            vec![MarketEvent::Lost {
                symbol: "BTC-USD".into(),
                reason: LostReason::Reconnected
            }]
        );
        assert_eq!(
            a.subscribe_messages(),
            vec![
                r#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10,"snapshot":true}}"#,
                r#"{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"],"snapshot":true}}"#
            ]
        );
    }

    proptest::proptest! {
        /// Mutated fixture lines and arbitrary bytes: an error or events, never a panic.
        #[test]
        fn never_panics(
            line in proptest::prelude::any::<proptest::sample::Index>(),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::prelude::any::<u8>(),
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let lines = lines("kraken/book.jsonl");
            let mut a = KrakenBook::new(&["BTC/USD".into()], 10).unwrap();
            let mut out = Out::default();
            // Start from a live book so updates reach the book code.
            let _ = a.handle(lines[0].as_bytes(), &mut out);
            let mut msg = lines[line.index(lines.len())].clone().into_bytes();
            let i = at.index(msg.len());
            msg[i] = byte;
            let _ = a.handle(&msg, &mut out);
            let _ = a.handle(&junk, &mut out);
        }
    }
}
