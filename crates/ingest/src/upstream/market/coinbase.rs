//! Coinbase Advanced Trade WebSocket: the `level2` channel (messages on channel `l2_data`: a
//! snapshot, then updates whose `new_quantity` is the level's new size, `"0"` removing it) and
//! `market_trades`.
//!
//! Owns one book per product and the connection's `sequence_num`. Coinbase numbers every message
//! of a connection, whatever its channel (subscriptions, heartbeats, trades, books), from 0 with
//! no holes; so a skipped number may have been an update of any book: every book in sync is lost
//! ([`MarketEvent::Lost`] with [`LostReason::Gap`]) and every product is resubscribed
//! ([`CoinbaseAction::Resubscribe`], also those still waiting for a snapshot, which may have been
//! the message that went missing). A number at or below the last one is refused
//! ([`MarketError::OutOfOrder`]) and the message not applied. One adapter serves one connection;
//! call [`CoinbaseLevel2::reconnected`] when it is replaced (numbering restarts).
//!
//! The books are truncated to the configured depth while Coinbase's feed covers the whole book,
//! so after many removals near the top fewer levels than `depth` may be known (never wrong ones):
//! configure `depth` well above the depth served.
//!
//! Trades: Coinbase reports the *maker's* side on public trades (as on its Exchange feed, where
//! `side` is documented as the maker order's side), so the taker's side is the opposite. Trades
//! of one message come newest first; they are emitted oldest first, and an id at or below the last
//! one seen is dropped (snapshots overlap what was published), reported as
//! [`MarketError::OutOfOrder`] in an `update`.

use serde::Deserialize;
use serde_json::value::RawValue;
use tickcast_core::market::{Book, Level, Side, Trade};
use tickcast_core::TsMicros;

use super::{
    collapse, cut, non_negative, parse_rfc3339_micros, positive, LostReason, MarketError,
    MarketEvent, Output, Symbols,
};

/// What the Coinbase adapter wants the caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoinbaseAction {
    /// Unsubscribe and subscribe `level2` for `symbol` again
    /// ([`CoinbaseLevel2::resubscribe_messages`]) to get a fresh snapshot.
    Resubscribe {
        /// The product id (`BTC-USD`).
        symbol: String,
    },
}

#[derive(Debug)]
struct SymbolState {
    book: Book,
    live: bool,
    last_trade: Option<u64>,
}

/// The Coinbase Advanced Trade `level2` + `market_trades` adapter for one connection.
#[derive(Debug)]
pub struct CoinbaseLevel2 {
    symbols: Symbols<SymbolState>,
    last_seq: Option<u64>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    channel: Option<&'a str>,
    timestamp: Option<&'a str>,
    sequence_num: Option<u64>,
    #[serde(borrow)]
    events: Option<&'a RawValue>,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    message: Option<&'a str>,
}

#[derive(Deserialize)]
struct L2Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    product_id: &'a str,
    #[serde(borrow)]
    updates: Vec<L2Update<'a>>,
}

#[derive(Deserialize)]
struct L2Update<'a> {
    side: &'a str,
    price_level: &'a str,
    new_quantity: &'a str,
}

#[derive(Deserialize)]
struct TradesEvent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow)]
    trades: Vec<RawTrade<'a>>,
}

#[derive(Deserialize)]
struct RawTrade<'a> {
    trade_id: &'a str,
    product_id: &'a str,
    price: &'a str,
    size: &'a str,
    side: &'a str,
    time: &'a str,
}

fn subscription(kind: &str, channel: &str, products: &[&str]) -> String {
    let list = serde_json::to_string(products).unwrap_or_else(|_| "[]".into());
    format!(r#"{{"type":"{kind}","product_ids":{list},"channel":"{channel}"}}"#)
}

impl CoinbaseLevel2 {
    /// An adapter for `symbols` (product ids, `BTC-USD`) keeping books `depth` levels a side.
    pub fn new(symbols: &[String], depth: usize) -> Result<CoinbaseLevel2, MarketError> {
        Ok(CoinbaseLevel2 {
            symbols: Symbols::new(symbols, || SymbolState {
                book: Book::new(depth),
                live: false,
                last_trade: None,
            })?,
            last_seq: None,
        })
    }

    /// The subscribe requests to send after connecting: `level2`, `market_trades` and
    /// `heartbeats` (which keeps a quiet connection open and its numbering moving).
    pub fn subscribe_messages(&self) -> Vec<String> {
        let mut products: Vec<&str> = self.symbols.keys().map(String::as_str).collect();
        products.sort_unstable();
        vec![
            subscription("subscribe", "level2", &products),
            subscription("subscribe", "market_trades", &products),
            subscription("subscribe", "heartbeats", &products),
        ]
    }

    /// The requests that perform [`CoinbaseAction::Resubscribe`] for `symbol`.
    pub fn resubscribe_messages(&self, symbol: &str) -> Vec<String> {
        vec![
            subscription("unsubscribe", "level2", &[symbol]),
            subscription("subscribe", "level2", &[symbol]),
        ]
    }

    /// The book of `symbol` (product id) while it is in sync.
    pub fn book(&self, symbol: &str) -> Option<&Book> {
        let (_, st) = self.symbols.get(symbol)?;
        st.live.then_some(&st.book)
    }

    /// Handles one WebSocket text message.
    pub fn handle(
        &mut self,
        msg: &[u8],
        out: &mut Output<CoinbaseAction>,
    ) -> Result<(), MarketError> {
        let env: Envelope<'_> = serde_json::from_slice(msg).map_err(|e| MarketError::json(&e))?;
        if env.kind == Some("error") {
            return Err(MarketError::Exchange(cut(env.message.unwrap_or(""), 200)));
        }
        let channel = env
            .channel
            .ok_or(MarketError::Unsupported("message without a channel"))?;
        if let Some(n) = env.sequence_num {
            self.check_sequence(n, out)?;
        }
        let ts = match env.timestamp {
            Some(s) => {
                parse_rfc3339_micros(s).ok_or_else(|| MarketError::BadTimestamp(cut(s, 40)))?
            }
            None => TsMicros::UNMEASURED,
        };
        match channel {
            "l2_data" => {
                let events: Vec<L2Event<'_>> = parse_events(env.events)?;
                let mut first_err = None;
                for e in events {
                    if let Err(err) = self.on_l2(e, ts, out) {
                        first_err.get_or_insert(err);
                    }
                }
                first_err.map_or(Ok(()), Err)
            }
            "market_trades" => {
                let events: Vec<TradesEvent<'_>> = parse_events(env.events)?;
                let mut first_err = None;
                for e in events {
                    if let Err(err) = self.on_trades(e, out) {
                        first_err.get_or_insert(err);
                    }
                }
                first_err.map_or(Ok(()), Err)
            }
            "subscriptions" | "heartbeats" | "status" => Ok(()),
            _ => Err(MarketError::Unsupported(
                "channel other than l2_data/market_trades",
            )),
        }
    }

    /// Checks the connection's numbering; a hole loses every live book and resubscribes all.
    fn check_sequence(
        &mut self,
        n: u64,
        out: &mut Output<CoinbaseAction>,
    ) -> Result<(), MarketError> {
        let Some(last) = self.last_seq else {
            self.last_seq = Some(n);
            return Ok(());
        };
        if n <= last {
            return Err(MarketError::OutOfOrder { last, got: n });
        }
        self.last_seq = Some(n);
        let expected = last + 1;
        if n == expected {
            return Ok(());
        }
        let mut lost = Vec::new();
        let mut resubscribe = Vec::new();
        for (product, topic, st) in self.symbols.iter_mut() {
            if st.live {
                st.live = false;
                lost.push(MarketEvent::Lost {
                    symbol: topic.to_string(),
                    reason: LostReason::Gap { expected, got: n },
                });
            }
            resubscribe.push(CoinbaseAction::Resubscribe {
                symbol: product.clone(),
            });
        }
        // HashMap order is arbitrary; act in a stable order.
        lost.sort_by(|a, b| a.symbol().cmp(b.symbol()));
        resubscribe.sort_by(|a, b| {
            let (
                CoinbaseAction::Resubscribe { symbol: a },
                CoinbaseAction::Resubscribe { symbol: b },
            ) = (a, b);
            a.cmp(b)
        });
        out.events.extend(lost);
        out.actions.extend(resubscribe);
        Ok(())
    }

    fn on_l2(
        &mut self,
        e: L2Event<'_>,
        ts: TsMicros,
        out: &mut Output<CoinbaseAction>,
    ) -> Result<(), MarketError> {
        let snapshot = match e.kind {
            "snapshot" => true,
            "update" => false,
            _ => return Err(MarketError::Unsupported("l2_data event of unknown type")),
        };
        let (topic, st) = self.symbols.get_mut(e.product_id)?;
        if !snapshot && !st.live {
            return Ok(());
        }
        let lose = |st: &mut SymbolState, reason: LostReason, out: &mut Output<CoinbaseAction>| {
            st.live = false;
            out.events.push(MarketEvent::Lost {
                symbol: topic.to_string(),
                reason,
            });
            out.actions.push(CoinbaseAction::Resubscribe {
                symbol: e.product_id.to_string(),
            });
        };
        let mut bids: Vec<Level> = Vec::new();
        let mut asks: Vec<Level> = Vec::new();
        for u in &e.updates {
            let level = non_negative("price_level", u.price_level)
                .and_then(|p| positive("price_level", p))
                .and_then(|p| Ok((p, non_negative("new_quantity", u.new_quantity)?)));
            let side = match u.side {
                "bid" => Ok(&mut bids),
                "offer" | "ask" => Ok(&mut asks),
                other => Err(MarketError::BadSide(cut(other, 20))),
            };
            match (side, level) {
                (Ok(side), Ok(level)) => side.push(level),
                (Err(err), _) | (_, Err(err)) => {
                    // A live book misses this update; a snapshot we cannot read must be asked for
                    // again, or the book would stay unserved.
                    if st.live || snapshot {
                        lose(st, LostReason::Unreadable, out);
                    }
                    return Err(err);
                }
            }
        }
        let applied = if snapshot {
            let mut book = Book::new(st.book.depth());
            book.apply_snapshot(&bids, &asks).map(|()| st.book = book)
        } else {
            collapse(&mut bids);
            collapse(&mut asks);
            st.book.apply_delta(&bids, &asks)
        };
        if let Err(err) = applied {
            if st.live || snapshot {
                lose(st, LostReason::Refused(err), out);
            }
            return Err(err.into());
        }
        st.live = true;
        if snapshot {
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

    fn on_trades(
        &mut self,
        e: TradesEvent<'_>,
        out: &mut Output<CoinbaseAction>,
    ) -> Result<(), MarketError> {
        let snapshot = e.kind == "snapshot";
        // Read every trade first so they can be put in id order.
        let mut trades = Vec::with_capacity(e.trades.len());
        for t in &e.trades {
            let id: u64 = t
                .trade_id
                .parse()
                .map_err(|_| MarketError::bad_number("trade_id", t.trade_id))?;
            let price = positive("price", non_negative("price", t.price)?)?;
            let size = positive("size", non_negative("size", t.size)?)?;
            // The maker's side: the taker was on the other one.
            let side = match t.side {
                "BUY" => Side::Sell,
                "SELL" => Side::Buy,
                other => return Err(MarketError::BadSide(cut(other, 20))),
            };
            let ts = parse_rfc3339_micros(t.time)
                .ok_or_else(|| MarketError::BadTimestamp(cut(t.time, 40)))?;
            // Unknown products are refused before anything is emitted.
            self.symbols.get_mut(t.product_id)?;
            trades.push((id, t.product_id, price, size, side, ts));
        }
        trades.sort_by_key(|t| t.0);
        let mut first_err = None;
        for (id, product, price, size, side, ts) in trades {
            let (topic, st) = self.symbols.get_mut(product)?;
            if let Some(last) = st.last_trade {
                if id <= last {
                    if !snapshot {
                        first_err.get_or_insert(MarketError::OutOfOrder { last, got: id });
                    }
                    continue;
                }
            }
            st.last_trade = Some(id);
            out.events.push(MarketEvent::Trade {
                symbol: topic.to_string(),
                trade: Trade {
                    price,
                    size,
                    side,
                    trade_id: id.to_string(),
                    ts,
                },
            });
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The book of `topic_symbol` was refused downstream (see [`LostReason::RefusedDownstream`]):
    /// if it is in sync it is lost and subscribed again for a new snapshot.
    pub fn resync(
        &mut self,
        topic_symbol: &str,
        reason: LostReason,
        out: &mut Output<CoinbaseAction>,
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
            out.actions.push(CoinbaseAction::Resubscribe {
                symbol: exchange.clone(),
            });
        }
    }

    /// The connection was replaced: numbering restarts and every live book is lost until its
    /// new snapshot (the caller subscribes again on the new connection).
    pub fn reconnected(&mut self, out: &mut Output<CoinbaseAction>) {
        self.last_seq = None;
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

fn parse_events<'a, T: Deserialize<'a>>(
    events: Option<&'a RawValue>,
) -> Result<Vec<T>, MarketError> {
    let raw = events.ok_or(MarketError::Json("missing field \"events\"".into()))?;
    serde_json::from_str(raw.get()).map_err(|e| MarketError::json(&e))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_levels, lines, lv, trades_of};
    use super::*;
    use tickcast_core::market::BookError;

    type Out = Output<CoinbaseAction>;

    fn adapter() -> CoinbaseLevel2 {
        CoinbaseLevel2::new(&["BTC-USD".into()], 10).unwrap()
    }

    fn resub(s: &str) -> CoinbaseAction {
        CoinbaseAction::Resubscribe { symbol: s.into() }
    }

    /// The whole fixture: snapshot, updates (a removal, one level changed twice), a heartbeat and
    /// a subscriptions message between them, a sequence gap (Lost + Resubscribe, the update in
    /// it ignored), the new snapshot and one more update; the final book is Coinbase's.
    #[test]
    fn replays_the_level2_fixture() {
        let msgs = lines("coinbase/level2.jsonl");
        let mut a = adapter();
        let mut out = Out::default();
        for m in &msgs[..5] {
            a.handle(m.as_bytes(), &mut out).unwrap();
        }
        assert!(out.actions.is_empty());
        assert_eq!(out.events.len(), 3);
        let MarketEvent::Book {
            symbol,
            snapshot,
            bids,
            ts,
            ..
        } = &out.events[0]
        else {
            panic!("{:?}", out.events)
        };
        assert_eq!((symbol.as_str(), *snapshot), ("BTC-USD", true));
        assert_eq!(bids[0], lv("21921.73", "0.06317902"));
        assert_eq!(ts.0, 1_675_974_770_714_964);
        assert_eq!(
            out.events[2],
            MarketEvent::Book {
                symbol: "BTC-USD".into(),
                snapshot: false,
                bids: vec![lv("21921.9", "0.33")],
                asks: vec![lv("21922.86", "0.6")],
                ts: TsMicros(1_675_974_771_612_345),
            }
        );
        assert_levels(
            a.book("BTC-USD").unwrap().asks().take(1),
            &[("21922.86", "0.6")],
        );

        // sequence_num 7 after 4: lost, resubscribe; its update is not applied.
        let mut out = Out::default();
        a.handle(msgs[5].as_bytes(), &mut out).unwrap();
        assert_eq!(
            out.events,
            vec![MarketEvent::Lost {
                symbol: "BTC-USD".into(),
                reason: LostReason::Gap {
                    expected: 5,
                    got: 7
                },
            }]
        );
        assert_eq!(out.actions, vec![resub("BTC-USD")]);
        assert!(a.book("BTC-USD").is_none());
        assert_eq!(
            a.resubscribe_messages("BTC-USD"),
            vec![
                r#"{"type":"unsubscribe","product_ids":["BTC-USD"],"channel":"level2"}"#,
                r#"{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}"#
            ]
        );

        let mut out = Out::default();
        for m in &msgs[6..] {
            a.handle(m.as_bytes(), &mut out).unwrap();
        }
        assert_eq!(out.events.len(), 2);
        assert!(out.actions.is_empty());
        let book = a.book("BTC-USD").unwrap();
        assert_levels(
            book.bids(),
            &[
                ("21921.73", "0.1"),
                ("21921.3", "0.02"),
                ("21920.01", "1.5"),
                ("21919.5", "0.75"),
            ],
        );
        assert_levels(
            book.asks(),
            &[
                ("21922.5", "0.05"),
                ("21922.86", "0.6"),
                ("21923", "1.1"),
                ("21924.5", "0.5"),
                ("21925.12", "2.25"),
                ("21926", "4"),
            ],
        );
    }

    #[test]
    fn a_repeated_sequence_number_is_refused_and_not_applied() {
        let msgs = lines("coinbase/level2.jsonl");
        let mut a = adapter();
        for m in &msgs[..3] {
            a.handle(m.as_bytes(), &mut Out::default()).unwrap();
        }
        let before = a.book("BTC-USD").cloned();
        let mut out = Out::default();
        assert_eq!(
            a.handle(msgs[2].as_bytes(), &mut out),
            Err(MarketError::OutOfOrder { last: 2, got: 2 })
        );
        assert_eq!(out, Out::default());
        assert_eq!(a.book("BTC-USD").cloned(), before);
    }

    #[test]
    fn a_gap_before_the_first_snapshot_resubscribes_too() {
        let msgs = lines("coinbase/level2.jsonl");
        let mut a = CoinbaseLevel2::new(&["BTC-USD".into(), "ETH-USD".into()], 10).unwrap();
        a.handle(msgs[0].as_bytes(), &mut Out::default()).unwrap();
        let mut out = Out::default();
        a.handle(msgs[5].as_bytes(), &mut out).unwrap(); // 0 -> 7
                                                         // Only BTC-USD had a book to lose, but ETH-USD's snapshot may have been in the hole.
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.actions, vec![resub("BTC-USD"), resub("ETH-USD")]);
    }

    #[test]
    fn trades_come_out_oldest_first_with_the_taker_side() {
        let mut a = adapter();
        let mut out = Out::default();
        for m in lines("coinbase/market_trades.jsonl") {
            a.handle(m.as_bytes(), &mut out).unwrap();
        }
        let got = trades_of(&out.events, "BTC-USD");
        assert_eq!(
            got,
            vec![
                (
                    "21921.73".into(),
                    "0.06317902".into(),
                    Side::Sell,
                    "589137500".into(),
                    1_675_973_973_998_877
                ),
                (
                    "21921.74".into(),
                    "0.0009".into(),
                    Side::Buy,
                    "589137501".into(),
                    1_675_973_974_101_000
                ),
                (
                    "21922.86".into(),
                    "0.5".into(),
                    Side::Buy,
                    "589137502".into(),
                    1_675_973_975_999_123
                ),
                (
                    "21921.73".into(),
                    "0.00000001".into(),
                    Side::Buy,
                    "589137503".into(),
                    1_675_973_976_400_001
                ),
                (
                    "21921.3".into(),
                    "1.25".into(),
                    Side::Sell,
                    "589137504".into(),
                    1_675_973_976_400_002
                ),
            ]
        );
    }

    #[test]
    fn bad_input_is_a_typed_error_never_a_panic() {
        let live = || {
            let mut a = adapter();
            a.handle(
                lines("coinbase/level2.jsonl")[0].as_bytes(),
                &mut Out::default(),
            )
            .unwrap();
            a
        };
        let update = |updates: &str| {
            format!(
                r#"{{"channel":"l2_data","timestamp":"2023-02-09T20:32:51Z","sequence_num":1,"events":[{{"type":"update","product_id":"BTC-USD","updates":{updates}}}]}}"#
            )
        };
        let err = |m: &str| {
            let mut a = live();
            let mut out = Out::default();
            (a.handle(m.as_bytes(), &mut out).unwrap_err(), out)
        };
        assert!(matches!(err("[1,2").0, MarketError::Json(_)));
        assert!(matches!(
            err(r#"{"channel":"l2_data","sequence_num":1}"#).0,
            MarketError::Json(_)
        ));
        let (e, out) = err(&update(
            r#"[{"side":"bid","event_time":"x","price_level":"21921.5","new_quantity":"-1"}]"#,
        ));
        assert_eq!(e, MarketError::Negative("new_quantity"));
        assert_eq!(out.actions, vec![resub("BTC-USD")]);
        assert_eq!(
            out.events,
            vec![MarketEvent::Lost {
                symbol: "BTC-USD".into(),
                reason: LostReason::Unreadable
            }]
        );
        assert_eq!(
            err(&update(
                r#"[{"side":"bid","event_time":"x","price_level":"1,5","new_quantity":"1"}]"#
            ))
            .0,
            MarketError::BadNumber {
                field: "price_level",
                text: "1,5".into()
            }
        );
        assert_eq!(
            err(&update(
                r#"[{"side":"middle","event_time":"x","price_level":"1.5","new_quantity":"1"}]"#
            ))
            .0,
            MarketError::BadSide("middle".into())
        );
        let (e, out) = err(&update(
            r#"[{"side":"bid","event_time":"x","price_level":"21922.4","new_quantity":"1"}]"#,
        ));
        assert_eq!(e, MarketError::Crossed);
        assert_eq!(
            out.events,
            vec![MarketEvent::Lost {
                symbol: "BTC-USD".into(),
                reason: LostReason::Refused(BookError::Crossed)
            }]
        );
        assert_eq!(
            err(r#"{"channel":"l2_data","timestamp":"2023-02-09T20:32:51Z","sequence_num":1,"events":[{"type":"update","product_id":"DOGE-USD","updates":[]}]}"#).0,
            MarketError::UnknownSymbol("DOGE-USD".into())
        );
        assert_eq!(
            err(r#"{"channel":"market_trades","timestamp":"2023-02-09T20:32:51Z","sequence_num":1,"events":[{"type":"update","trades":[{"trade_id":"abc","product_id":"BTC-USD","price":"1","size":"1","side":"BUY","time":"2023-02-09T20:32:51Z"}]}]}"#).0,
            MarketError::BadNumber { field: "trade_id", text: "abc".into() }
        );
        assert_eq!(
            err(r#"{"type":"error","message":"failure to subscribe"}"#).0,
            MarketError::Exchange("failure to subscribe".into())
        );
        assert_eq!(
            err(r#"{"channel":"l2_data","timestamp":"noon","sequence_num":1,"events":[]}"#).0,
            MarketError::BadTimestamp("noon".into())
        );
    }

    #[test]
    fn subscribes_and_reconnects() {
        let mut a = CoinbaseLevel2::new(&["ETH-USD".into(), "BTC-USD".into()], 10).unwrap();
        assert_eq!(
            a.subscribe_messages(),
            vec![
                r#"{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"level2"}"#,
                r#"{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"market_trades"}"#,
                r#"{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"heartbeats"}"#
            ]
        );
        let msgs = lines("coinbase/level2.jsonl");
        a.handle(msgs[0].as_bytes(), &mut Out::default()).unwrap();
        let mut out = Out::default();
        a.reconnected(&mut out);
        assert_eq!(
            out.events,
            vec![MarketEvent::Lost {
                symbol: "BTC-USD".into(),
                reason: LostReason::Reconnected
            }]
        );
        // Numbering restarts: sequence_num 0 again is fine.
        a.handle(msgs[0].as_bytes(), &mut Out::default()).unwrap();
        assert!(a.book("BTC-USD").is_some());
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
            let lines = lines("coinbase/level2.jsonl");
            let mut a = CoinbaseLevel2::new(&["BTC-USD".into()], 10).unwrap();
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
