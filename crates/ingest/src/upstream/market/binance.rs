//! Binance spot: the diff depth stream `<symbol>@depth@100ms` kept in sync with REST snapshots by
//! Binance's documented local order book procedure, and `<symbol>@trade`; raw or combined-stream
//! (`{"stream":…,"data":…}`) messages.
//!
//! Owns the per-symbol sync state machine. The procedure, per symbol:
//!
//! 1. Buffer depth events from the first one on, and ask for a REST snapshot
//!    (`GET /api/v3/depth?symbol=BTCUSDT&limit=1000`, [`BinanceAction::FetchSnapshot`]).
//! 2. When the snapshot (`lastUpdateId`) arrives: if it is older than the buffered events
//!    (`lastUpdateId < U - 1` of the first buffered event) fetch again; else drop the buffered
//!    events with `u <= lastUpdateId`.
//! 3. The first event applied must have `U <= lastUpdateId + 1 <= u`; every next one
//!    `U == previous u + 1`. Otherwise the book is lost ([`MarketEvent::Lost`] with
//!    [`LostReason::Gap`]) and the sync restarts at 1 with that event buffered.
//!
//! While a symbol is syncing nothing of its book is published; it comes back with a snapshot
//! [`MarketEvent::Book`] followed by the buffered deltas that bridge it to the stream.
//!
//! Prices and sizes arrive as decimal strings and stay exact. Trades: `m` (buyer is maker) true
//! means the taker sold. A trade id at or below the last one seen for the symbol is refused
//! ([`MarketError::OutOfOrder`]) so a replayed trade is never counted twice.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::value::RawValue;
use tickcast_core::market::{Book, Level, Side, Trade};
use tickcast_core::TsMicros;

use super::{
    collapse, cut, millis_to_micros, non_negative, positive, LostReason, MarketError, MarketEvent,
    Output, Symbols,
};

/// `limit` of the REST snapshot request: Binance's largest that costs one request weight tier and
/// covers far more than the depth we serve.
pub const SNAPSHOT_LIMIT: u32 = 1000;
/// Depth events buffered per symbol while a snapshot is awaited (~100 s at 10 events/s); beyond
/// it the oldest are dropped, which step 2 detects if the snapshot turns out older than them.
pub const MAX_BUFFERED: usize = 1000;

/// What the Binance adapter wants the caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinanceAction {
    /// `GET /api/v3/depth?symbol=<symbol>&limit=1000` ([`snapshot_path`]) and hand the body to
    /// [`BinanceBook::on_snapshot`] (or report a failure to [`BinanceBook::snapshot_failed`]).
    FetchSnapshot {
        /// The exchange symbol (`BTCUSDT`).
        symbol: String,
    },
}

/// Path and query of the REST depth snapshot of `symbol`, for [`BinanceAction::FetchSnapshot`].
pub fn snapshot_path(symbol: &str) -> String {
    format!("/api/v3/depth?symbol={symbol}&limit={SNAPSHOT_LIMIT}")
}

/// One depth event as the sync procedure sees it.
#[derive(Debug, Clone)]
struct Depth {
    /// `U`.
    first: u64,
    /// `u`.
    last: u64,
    bids: Vec<Level>,
    asks: Vec<Level>,
    ts: TsMicros,
}

#[derive(Debug)]
enum Sync {
    /// No depth event seen yet.
    Idle,
    /// A snapshot has been requested; events wait here.
    Buffering { buffer: VecDeque<Depth> },
    /// Book built: `last_u` is the last applied update id; `first` until the first event after
    /// the snapshot has been applied (it only needs to straddle `lastUpdateId + 1`).
    Live { last_u: u64, first: bool },
}

#[derive(Debug)]
struct SymbolState {
    book: Book,
    sync: Sync,
    last_trade: Option<u64>,
}

/// The Binance diff-depth + trade adapter for a fixed set of symbols.
#[derive(Debug)]
pub struct BinanceBook {
    symbols: Symbols<SymbolState>,
    max_buffered: usize,
}

/// Every field any of the handled messages has; the shape is decided by `e`.
#[derive(Deserialize)]
struct Msg<'a> {
    /// Combined-stream payload.
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    e: Option<&'a str>,
    #[serde(rename = "E")]
    event_time: Option<u64>,
    s: Option<&'a str>,
    #[serde(rename = "U")]
    first: Option<u64>,
    u: Option<u64>,
    #[serde(borrow)]
    b: Option<Vec<(&'a str, &'a str)>>,
    #[serde(borrow)]
    a: Option<Vec<(&'a str, &'a str)>>,
    t: Option<u64>,
    p: Option<&'a str>,
    q: Option<&'a str>,
    #[serde(rename = "T")]
    trade_time: Option<u64>,
    m: Option<bool>,
    id: Option<&'a RawValue>,
    code: Option<i64>,
    msg: Option<&'a str>,
}

/// The REST depth snapshot body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot<'a> {
    last_update_id: u64,
    #[serde(borrow)]
    bids: Vec<(&'a str, &'a str)>,
    #[serde(borrow)]
    asks: Vec<(&'a str, &'a str)>,
}

fn levels(raw: &[(&str, &str)]) -> Result<Vec<Level>, MarketError> {
    raw.iter()
        .map(|&(p, q)| {
            let price = positive("price", non_negative("price", p)?)?;
            Ok((price, non_negative("size", q)?))
        })
        .collect()
}

fn required<T>(v: Option<T>, field: &'static str) -> Result<T, MarketError> {
    v.ok_or_else(|| MarketError::Json(format!("missing field {field:?}")))
}

impl BinanceBook {
    /// An adapter for `symbols` (exchange symbols, any case: `BTCUSDT`), keeping books `depth`
    /// levels a side (at most [`SNAPSHOT_LIMIT`] are ever known).
    pub fn new(symbols: &[String], depth: usize) -> Result<BinanceBook, MarketError> {
        let upper: Vec<String> = symbols.iter().map(|s| s.to_ascii_uppercase()).collect();
        Ok(BinanceBook {
            symbols: Symbols::new(&upper, || SymbolState {
                book: Book::new(depth),
                sync: Sync::Idle,
                last_trade: None,
            })?,
            max_buffered: MAX_BUFFERED,
        })
    }

    /// Stream names to subscribe to (`btcusdt@depth@100ms`, `btcusdt@trade`), sorted.
    pub fn streams(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .symbols
            .keys()
            .flat_map(|s| {
                let s = s.to_ascii_lowercase();
                [format!("{s}@depth@100ms"), format!("{s}@trade")]
            })
            .collect();
        out.sort();
        out
    }

    /// The book of `symbol` (exchange symbol) while it is in sync; `None` while syncing.
    pub fn book(&self, symbol: &str) -> Option<&Book> {
        let (_, st) = self.symbols.get(symbol)?;
        matches!(st.sync, Sync::Live { .. }).then_some(&st.book)
    }

    /// Handles one WebSocket text message.
    pub fn handle(
        &mut self,
        msg: &[u8],
        out: &mut Output<BinanceAction>,
    ) -> Result<(), MarketError> {
        let outer: Msg<'_> = serde_json::from_slice(msg).map_err(|e| MarketError::json(&e))?;
        let inner;
        let m = match outer.data {
            Some(data) => {
                inner = serde_json::from_str::<Msg<'_>>(data.get())
                    .map_err(|e| MarketError::json(&e))?;
                &inner
            }
            None => &outer,
        };
        match m.e {
            Some("depthUpdate") => self.on_depth(m, out),
            Some("trade") => self.on_trade(m, out),
            Some(_) => Err(MarketError::Unsupported(
                "event other than depthUpdate/trade",
            )),
            None if m.code.is_some() => Err(MarketError::Exchange(cut(m.msg.unwrap_or(""), 200))),
            // {"result":null,"id":1}: the SUBSCRIBE acknowledgement.
            None if m.id.is_some() => Ok(()),
            None => Err(MarketError::Unsupported("message without an event type")),
        }
    }

    fn on_depth(
        &mut self,
        m: &Msg<'_>,
        out: &mut Output<BinanceAction>,
    ) -> Result<(), MarketError> {
        let symbol = required(m.s, "s")?;
        let first = required(m.first, "U")?;
        let last = required(m.u, "u")?;
        if first > last {
            return Err(MarketError::OutOfOrder {
                last: first,
                got: last,
            });
        }
        let max_buffered = self.max_buffered;
        let (topic, st) = self.symbols.get_mut(symbol)?;
        let parsed = required(m.b.as_deref(), "b")
            .and_then(levels)
            .and_then(|b| Ok((b, levels(required(m.a.as_deref(), "a")?)?)));
        let (mut bids, mut asks) = match parsed {
            Ok(x) => x,
            Err(e) => {
                // A live book needed this event (it is not older than the book): without it the
                // book is wrong, so it is lost now rather than at the next event's id check.
                if let Sync::Live { last_u, .. } = st.sync {
                    if last > last_u {
                        out.events.push(MarketEvent::Lost {
                            symbol: topic.to_string(),
                            reason: LostReason::Unreadable,
                        });
                        st.sync = Sync::Buffering {
                            buffer: VecDeque::new(),
                        };
                        out.actions.push(BinanceAction::FetchSnapshot {
                            symbol: symbol.to_string(),
                        });
                    }
                }
                // While buffering, the missing event leaves a hole the snapshot check finds.
                return Err(e);
            }
        };
        collapse(&mut bids);
        collapse(&mut asks);
        let ts = m
            .event_time
            .and_then(millis_to_micros)
            .unwrap_or(TsMicros::UNMEASURED);
        let depth = Depth {
            first,
            last,
            bids,
            asks,
            ts,
        };
        match &mut st.sync {
            Sync::Idle => {
                st.sync = Sync::Buffering {
                    buffer: VecDeque::from([depth]),
                };
                out.actions.push(BinanceAction::FetchSnapshot {
                    symbol: symbol.to_string(),
                });
                Ok(())
            }
            Sync::Buffering { buffer } => {
                if buffer.len() >= max_buffered {
                    buffer.pop_front();
                }
                buffer.push_back(depth);
                Ok(())
            }
            Sync::Live { .. } => apply_live(symbol, topic, st, depth, out),
        }
    }

    fn on_trade(
        &mut self,
        m: &Msg<'_>,
        out: &mut Output<BinanceAction>,
    ) -> Result<(), MarketError> {
        let symbol = required(m.s, "s")?;
        let id = required(m.t, "t")?;
        let price = positive("p", non_negative("p", required(m.p, "p")?)?)?;
        let size = positive("q", non_negative("q", required(m.q, "q")?)?)?;
        let buyer_is_maker = required(m.m, "m")?;
        let ts = required(m.trade_time, "T")?;
        let ts = millis_to_micros(ts).ok_or_else(|| MarketError::BadTimestamp(ts.to_string()))?;
        let (topic, st) = self.symbols.get_mut(symbol)?;
        if let Some(last) = st.last_trade {
            if id <= last {
                return Err(MarketError::OutOfOrder { last, got: id });
            }
        }
        st.last_trade = Some(id);
        out.events.push(MarketEvent::Trade {
            symbol: topic.to_string(),
            trade: Trade {
                price,
                size,
                // The maker bought, so the taker (who made the trade happen) sold.
                side: if buyer_is_maker {
                    Side::Sell
                } else {
                    Side::Buy
                },
                trade_id: id.to_string(),
                ts,
            },
        });
        Ok(())
    }

    /// Hands over the body of the REST snapshot requested for `symbol` (step 2 of the procedure).
    pub fn on_snapshot(
        &mut self,
        symbol: &str,
        body: &[u8],
        out: &mut Output<BinanceAction>,
    ) -> Result<(), MarketError> {
        let snap: Snapshot<'_> = serde_json::from_slice(body).map_err(|e| MarketError::json(&e))?;
        let (topic, st) = self.symbols.get_mut(symbol)?;
        let Sync::Buffering { buffer } = &mut st.sync else {
            return Err(MarketError::UnexpectedSnapshot(cut(symbol, 80)));
        };
        let fetch_again = |out: &mut Output<BinanceAction>| {
            out.actions.push(BinanceAction::FetchSnapshot {
                symbol: symbol.to_string(),
            })
        };
        let bids = levels(&snap.bids);
        let asks = levels(&snap.asks);
        let (bids, asks) = match (bids, asks) {
            (Ok(b), Ok(a)) => (b, a),
            (Err(e), _) | (_, Err(e)) => {
                fetch_again(out);
                return Err(e);
            }
        };
        let lid = snap.last_update_id;
        // Older than what we hold: the stream has moved past it before we started buffering.
        if buffer
            .front()
            .is_some_and(|e| lid.saturating_add(1) < e.first)
        {
            fetch_again(out);
            return Ok(());
        }
        while buffer.front().is_some_and(|e| e.last <= lid) {
            buffer.pop_front();
        }
        // The remaining events must chain from the snapshot; if a link is missing (an event was
        // refused or dropped while buffering) keep what follows the hole and fetch again.
        let mut expected = lid.saturating_add(1);
        let mut hole = None;
        for (i, e) in buffer.iter().enumerate() {
            let ok = if i == 0 {
                e.first <= expected
            } else {
                e.first == expected
            };
            if !ok {
                hole = Some(i);
                break;
            }
            expected = e.last.saturating_add(1);
        }
        if let Some(i) = hole {
            buffer.drain(..i);
            fetch_again(out);
            return Ok(());
        }
        let mut book = Book::new(st.book.depth());
        if let Err(e) = book.apply_snapshot(&bids, &asks) {
            fetch_again(out);
            return Err(e.into());
        }
        let buffered = std::mem::take(buffer);
        st.book = book;
        st.sync = Sync::Live {
            last_u: lid,
            first: true,
        };
        out.events.push(MarketEvent::Book {
            symbol: topic.to_string(),
            snapshot: true,
            bids: st.book.bids().collect(),
            asks: st.book.asks().collect(),
            ts: buffered.front().map_or(TsMicros::UNMEASURED, |e| e.ts),
        });
        for e in buffered {
            // Cannot gap (checked above) but can still be refused (crossed): then it is a loss.
            let refused = apply_live(symbol, topic, st, e, out).err();
            if let Some(err) = refused {
                return Err(err);
            }
            if !matches!(st.sync, Sync::Live { .. }) {
                break;
            }
        }
        Ok(())
    }

    /// The snapshot request for `symbol` failed (HTTP error, timeout): asks for it again. The
    /// caller paces retries; buffered events are kept.
    pub fn snapshot_failed(
        &mut self,
        symbol: &str,
        out: &mut Output<BinanceAction>,
    ) -> Result<(), MarketError> {
        let (_, st) = self.symbols.get_mut(symbol)?;
        if matches!(st.sync, Sync::Buffering { .. }) {
            out.actions.push(BinanceAction::FetchSnapshot {
                symbol: symbol.to_string(),
            });
        }
        Ok(())
    }

    /// The book of `topic_symbol` was refused downstream (see [`LostReason::RefusedDownstream`]):
    /// if it is in sync it is lost and synced again from a new snapshot; a book already syncing
    /// is left to finish.
    pub fn resync(
        &mut self,
        topic_symbol: &str,
        reason: LostReason,
        out: &mut Output<BinanceAction>,
    ) {
        let Some((exchange, topic, st)) = self.symbols.by_topic_mut(topic_symbol) else {
            return;
        };
        if let Sync::Live { .. } = st.sync {
            out.events.push(MarketEvent::Lost {
                symbol: topic.to_string(),
                reason,
            });
            st.sync = Sync::Buffering {
                buffer: VecDeque::new(),
            };
            out.actions.push(BinanceAction::FetchSnapshot {
                symbol: exchange.clone(),
            });
        }
    }

    /// The WebSocket connection was replaced: every book in sync is lost (events may have been
    /// missed in between) and every symbol starts over at step 1 with the next depth event.
    pub fn reconnected(&mut self, out: &mut Output<BinanceAction>) {
        let mut lost: Vec<MarketEvent> = Vec::new();
        for (_, topic, st) in self.symbols.iter_mut() {
            if let Sync::Live { .. } = st.sync {
                lost.push(MarketEvent::Lost {
                    symbol: topic.to_string(),
                    reason: LostReason::Reconnected,
                });
            }
            st.sync = Sync::Idle;
        }
        // HashMap order is arbitrary; publish in a stable order.
        lost.sort_by(|a, b| a.symbol().cmp(b.symbol()));
        out.events.extend(lost);
    }

    #[cfg(test)]
    fn set_max_buffered(&mut self, n: usize) {
        self.max_buffered = n;
    }
}

/// Step 3 for one event on a live book: apply it, or declare the book lost and restart the sync.
fn apply_live(
    symbol: &str,
    topic: &str,
    st: &mut SymbolState,
    e: Depth,
    out: &mut Output<BinanceAction>,
) -> Result<(), MarketError> {
    let Sync::Live { last_u, first } = st.sync else {
        return Ok(());
    };
    if e.last <= last_u {
        if first {
            // Older than the snapshot: the procedure drops it.
            return Ok(());
        }
        return Err(MarketError::OutOfOrder {
            last: last_u,
            got: e.last,
        });
    }
    let expected = last_u.saturating_add(1);
    let chains = if first {
        e.first <= expected
    } else {
        e.first == expected
    };
    let restart =
        |st: &mut SymbolState, buffer: VecDeque<Depth>, out: &mut Output<BinanceAction>| {
            st.sync = Sync::Buffering { buffer };
            out.actions.push(BinanceAction::FetchSnapshot {
                symbol: symbol.to_string(),
            });
        };
    if !chains {
        out.events.push(MarketEvent::Lost {
            symbol: topic.to_string(),
            reason: LostReason::Gap {
                expected,
                got: e.first,
            },
        });
        restart(st, VecDeque::from([e]), out);
        return Ok(());
    }
    if let Err(err) = st.book.apply_delta(&e.bids, &e.asks) {
        out.events.push(MarketEvent::Lost {
            symbol: topic.to_string(),
            reason: LostReason::Refused(err),
        });
        restart(st, VecDeque::new(), out);
        return Err(err.into());
    }
    st.sync = Sync::Live {
        last_u: e.last,
        first: false,
    };
    out.events.push(MarketEvent::Book {
        symbol: topic.to_string(),
        snapshot: false,
        bids: e.bids,
        asks: e.asks,
        ts: e.ts,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_levels, fixture, lines, lv, trades_of};
    use super::*;
    use tickcast_core::market::BookError;

    type Out = Output<BinanceAction>;

    fn fetch(s: &str) -> BinanceAction {
        BinanceAction::FetchSnapshot { symbol: s.into() }
    }

    fn adapter() -> BinanceBook {
        BinanceBook::new(&["btcusdt".into()], 100).unwrap()
    }

    /// Feeds `msgs`, returning everything they produced and the errors by message index.
    fn feed(a: &mut BinanceBook, msgs: &[String]) -> (Out, Vec<(usize, MarketError)>) {
        let mut out = Out::default();
        let mut errors = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            if let Err(e) = a.handle(m.as_bytes(), &mut out) {
                errors.push((i, e));
            }
        }
        (out, errors)
    }

    fn kinds(events: &[MarketEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                MarketEvent::Book { snapshot, .. } => {
                    if *snapshot { "snapshot" } else { "delta" }.to_string()
                }
                MarketEvent::Trade { .. } => "trade".to_string(),
                MarketEvent::Lost { reason, .. } => format!("lost:{reason:?}"),
            })
            .collect()
    }

    #[test]
    fn subscribes_to_depth_and_trade_streams() {
        let a = BinanceBook::new(&["BTCUSDT".into(), "ethusdt".into()], 10).unwrap();
        assert_eq!(
            a.streams(),
            vec![
                "btcusdt@depth@100ms",
                "btcusdt@trade",
                "ethusdt@depth@100ms",
                "ethusdt@trade"
            ]
        );
        assert_eq!(
            snapshot_path("BTCUSDT"),
            "/api/v3/depth?symbol=BTCUSDT&limit=1000"
        );
    }

    /// The whole fixture: buffer, stale snapshot refetched, stale events dropped, straddling
    /// first event, in-order deltas, a gap (Lost + refetch), resync, and the final book.
    #[test]
    fn replays_the_depth_fixture_through_the_sync_procedure() {
        let mut a = adapter();
        let msgs = lines("binance/depth_stream.jsonl");
        // Events 1000-1005, 1006-1010, 1011-1015 arrive before any snapshot.
        let (out, errors) = feed(&mut a, &msgs[..3]);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(out.events.is_empty());
        assert_eq!(out.actions, vec![fetch("BTCUSDT")]);
        assert!(a.book("BTCUSDT").is_none());

        // A snapshot older than the first buffered event (lastUpdateId 998 < U 1000 - 1): again.
        let mut out = Out::default();
        a.on_snapshot(
            "BTCUSDT",
            fixture("binance/depth_snapshot_stale.json").as_bytes(),
            &mut out,
        )
        .unwrap();
        assert!(out.events.is_empty());
        assert_eq!(out.actions, vec![fetch("BTCUSDT")]);

        // lastUpdateId 1012: 1000-1005 and 1006-1010 are dropped, 1011-1015 straddles 1013.
        let mut out = Out::default();
        a.on_snapshot(
            "BTCUSDT",
            fixture("binance/depth_snapshot.json").as_bytes(),
            &mut out,
        )
        .unwrap();
        assert_eq!(kinds(&out.events), ["snapshot", "delta"]);
        assert!(out.actions.is_empty());
        let MarketEvent::Book { symbol, bids, .. } = &out.events[0] else {
            unreachable!()
        };
        assert_eq!(symbol, "BTCUSDT");
        assert_eq!(bids[0], lv("97000.00000000", "1.20000000"));
        // The straddling event (1011-1015) was applied: the best ask changed size.
        assert_levels(
            a.book("BTCUSDT").unwrap().asks().take(1),
            &[("97000.01000000", "0.25000000")],
        );

        // 1016-1020 and 1021-1023 apply; 1030-1035 skips 1024-1029.
        let (out, errors) = feed(&mut a, &msgs[3..6]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            kinds(&out.events),
            ["delta", "delta", "lost:Gap { expected: 1024, got: 1030 }"]
        );
        assert_eq!(out.actions, vec![fetch("BTCUSDT")]);
        assert!(a.book("BTCUSDT").is_none(), "a lost book is not served");

        // 1036-1040 buffers; the new snapshot (lastUpdateId 1037) drops 1030-1035 and bridges.
        let (out, _) = feed(&mut a, &msgs[6..7]);
        assert!(out.events.is_empty() && out.actions.is_empty());
        let mut out = Out::default();
        a.on_snapshot(
            "BTCUSDT",
            fixture("binance/depth_snapshot_resync.json").as_bytes(),
            &mut out,
        )
        .unwrap();
        assert_eq!(kinds(&out.events), ["snapshot", "delta"]);

        // The last event (1041-1042) applies; the result equals the expected book.
        let (out, errors) = feed(&mut a, &msgs[7..]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(kinds(&out.events), ["delta"]);
        let book = a.book("BTCUSDT").unwrap();
        assert_levels(
            book.bids(),
            &[
                ("97000.50000000", "0.40000000"),
                ("97000.00000000", "1.50000000"),
                ("96999.50000000", "2.00000000"),
                ("96998.00000000", "0.30000000"),
            ],
        );
        assert_levels(
            book.asks(),
            &[
                ("97001.00000000", "0.70000000"),
                ("97001.50000000", "1.10000000"),
                ("97002.00000000", "0.90000000"),
            ],
        );
    }

    #[test]
    fn snapshot_one_behind_the_first_event_is_accepted() {
        let mut a = adapter();
        let msgs = lines("binance/depth_stream.jsonl");
        feed(&mut a, &msgs[..1]); // 1000-1005
        let mut out = Out::default();
        a.on_snapshot(
            "BTCUSDT",
            br#"{"lastUpdateId":999,"bids":[["96999.00000000","1.00000000"]],"asks":[["97001.00000000","1.00000000"]]}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(kinds(&out.events), ["snapshot", "delta"]);
        assert!(out.actions.is_empty());
    }

    #[test]
    fn events_older_than_the_snapshot_are_dropped_after_it_too() {
        let mut a = adapter();
        let msgs = lines("binance/depth_stream.jsonl");
        feed(&mut a, &msgs[..1]); // 1000-1005
        let mut out = Out::default();
        a.on_snapshot(
            "BTCUSDT",
            fixture("binance/depth_snapshot.json").as_bytes(), // 1012
            &mut out,
        )
        .unwrap();
        // Only the snapshot: the buffered event was older.
        assert_eq!(kinds(&out.events), ["snapshot"]);
        // 1006-1010 arrives late: dropped silently; 1011-1015 straddles and applies.
        let (out, errors) = feed(&mut a, &msgs[1..3]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(kinds(&out.events), ["delta"]);
        // Then a duplicate of 1011-1015 is out of order.
        let (_, errors) = feed(&mut a, &msgs[2..3]);
        assert_eq!(
            errors,
            vec![(
                0,
                MarketError::OutOfOrder {
                    last: 1015,
                    got: 1015
                }
            )]
        );
    }

    #[test]
    fn a_hole_inside_the_buffer_fetches_again() {
        let mut a = adapter();
        let msgs = lines("binance/depth_stream.jsonl");
        // 1000-1005, then 1011-1015 (1006-1010 never came).
        feed(&mut a, &[msgs[0].clone(), msgs[2].clone()]);
        let mut out = Out::default();
        a.on_snapshot(
            "BTCUSDT",
            br#"{"lastUpdateId":1003,"bids":[],"asks":[]}"#,
            &mut out,
        )
        .unwrap();
        assert!(out.events.is_empty());
        assert_eq!(out.actions, vec![fetch("BTCUSDT")]);
        // What follows the hole was kept: a snapshot at 1012 now bridges to it.
        let mut out = Out::default();
        a.on_snapshot(
            "BTCUSDT",
            fixture("binance/depth_snapshot.json").as_bytes(),
            &mut out,
        )
        .unwrap();
        assert_eq!(kinds(&out.events), ["snapshot", "delta"]);
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_a_stale_snapshot_is_refetched() {
        let mut a = adapter();
        a.set_max_buffered(2);
        let msgs = lines("binance/depth_stream.jsonl");
        feed(&mut a, &msgs[..3]); // keeps 1006-1010, 1011-1015
        let mut out = Out::default();
        a.on_snapshot(
            "BTCUSDT",
            br#"{"lastUpdateId":1003,"bids":[],"asks":[]}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(out.actions, vec![fetch("BTCUSDT")]);
        assert!(out.events.is_empty());
    }

    #[test]
    fn unrequested_snapshots_and_bad_input_are_typed_errors() {
        let mut a = adapter();
        let mut out = Out::default();
        let snap = fixture("binance/depth_snapshot.json");
        assert_eq!(
            a.on_snapshot("BTCUSDT", snap.as_bytes(), &mut out),
            Err(MarketError::UnexpectedSnapshot("BTCUSDT".into()))
        );
        assert_eq!(
            a.on_snapshot("ETHUSDT", snap.as_bytes(), &mut out),
            Err(MarketError::UnknownSymbol("ETHUSDT".into()))
        );
        let bad = |m: &str| {
            let mut a = adapter();
            a.handle(m.as_bytes(), &mut Out::default()).unwrap_err()
        };
        assert!(matches!(bad("{not json"), MarketError::Json(_)));
        assert!(matches!(
            bad(r#"{"stream":"x","data":[1]}"#),
            MarketError::Json(_)
        ));
        assert_eq!(
            bad(r#"{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":1,"u":2,"b":[],"a":[]}"#),
            MarketError::UnknownSymbol("ETHUSDT".into())
        );
        assert_eq!(
            bad(r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["1.0","-2"]],"a":[]}"#),
            MarketError::Negative("size")
        );
        assert_eq!(
            bad(
                r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["1.0","1e3"]],"a":[]}"#
            ),
            MarketError::BadNumber {
                field: "size",
                text: "1e3".into()
            }
        );
        assert_eq!(
            bad(r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,"u":2,"b":[],"a":[]}"#),
            MarketError::OutOfOrder { last: 5, got: 2 }
        );
        assert!(matches!(
            bad(r#"{"e":"depthUpdate","s":"BTCUSDT","u":2,"b":[],"a":[]}"#),
            MarketError::Json(_)
        ));
        assert_eq!(
            bad(r#"{"e":"kline","s":"BTCUSDT"}"#),
            MarketError::Unsupported("event other than depthUpdate/trade")
        );
        assert_eq!(
            bad(r#"{"code":2,"msg":"Invalid request"}"#),
            MarketError::Exchange("Invalid request".into())
        );
        assert_eq!(
            bad(r#"{"e":"trade","s":"BTCUSDT","t":1,"p":"abc","q":"1","T":1,"m":true}"#),
            MarketError::BadNumber {
                field: "p",
                text: "abc".into()
            }
        );
        assert_eq!(
            bad(r#"{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"0","T":1,"m":true}"#),
            MarketError::Negative("q")
        );
        // The subscription ack is fine and produces nothing.
        let mut out = Out::default();
        adapter()
            .handle(br#"{"result":null,"id":1}"#, &mut out)
            .unwrap();
        assert_eq!(out, Out::default());
    }

    #[test]
    fn a_crossing_delta_loses_the_book_and_resyncs() {
        let mut a = adapter();
        let msgs = lines("binance/depth_stream.jsonl");
        feed(&mut a, &msgs[..3]);
        a.on_snapshot(
            "BTCUSDT",
            fixture("binance/depth_snapshot.json").as_bytes(),
            &mut Out::default(),
        )
        .unwrap();
        // A bid at the best ask, in sequence (1016).
        let crossing = r#"{"e":"depthUpdate","E":1733400000400,"s":"BTCUSDT","U":1016,"u":1016,"b":[["97000.01000000","1.00000000"]],"a":[]}"#;
        let mut out = Out::default();
        assert_eq!(
            a.handle(crossing.as_bytes(), &mut out),
            Err(MarketError::Crossed)
        );
        assert_eq!(
            out.events,
            vec![MarketEvent::Lost {
                symbol: "BTCUSDT".into(),
                reason: LostReason::Refused(BookError::Crossed)
            }]
        );
        assert_eq!(out.actions, vec![fetch("BTCUSDT")]);
        assert!(a.book("BTCUSDT").is_none());
    }

    #[test]
    fn an_unreadable_needed_event_loses_the_book_at_once() {
        let mut a = adapter();
        let msgs = lines("binance/depth_stream.jsonl");
        feed(&mut a, &msgs[..3]);
        a.on_snapshot(
            "BTCUSDT",
            fixture("binance/depth_snapshot.json").as_bytes(),
            &mut Out::default(),
        )
        .unwrap();
        // A stale unreadable event (u <= 1015) changes nothing.
        let stale =
            r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1014,"u":1015,"b":[["x","1"]],"a":[]}"#;
        let mut out = Out::default();
        assert!(a.handle(stale.as_bytes(), &mut out).is_err());
        assert_eq!(out, Out::default());
        assert!(a.book("BTCUSDT").is_some());
        // The next one (1016) unreadable: lost, refetch.
        let needed = r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1016,"u":1016,"b":[["97000.0","1"]],"a":[["97001.0","x"]]}"#;
        assert_eq!(
            a.handle(needed.as_bytes(), &mut out),
            Err(MarketError::BadNumber {
                field: "size",
                text: "x".into()
            })
        );
        assert_eq!(kinds(&out.events), ["lost:Unreadable"]);
        assert_eq!(out.actions, vec![fetch("BTCUSDT")]);
        assert!(a.book("BTCUSDT").is_none());
    }

    #[test]
    fn a_downstream_refusal_resyncs_a_live_book_only() {
        let mut a = adapter();
        let msgs = lines("binance/depth_stream.jsonl");
        feed(&mut a, &msgs[..3]);
        let mut out = Out::default();
        // Syncing: nothing to do.
        a.resync(
            "BTCUSDT",
            LostReason::RefusedDownstream(BookError::Crossed),
            &mut out,
        );
        assert_eq!(out, Out::default());
        a.on_snapshot(
            "BTCUSDT",
            fixture("binance/depth_snapshot.json").as_bytes(),
            &mut Out::default(),
        )
        .unwrap();
        a.resync(
            "BTCUSDT",
            LostReason::RefusedDownstream(BookError::Crossed),
            &mut out,
        );
        assert_eq!(kinds(&out.events), ["lost:RefusedDownstream(Crossed)"]);
        assert_eq!(out.actions, vec![fetch("BTCUSDT")]);
        assert!(a.book("BTCUSDT").is_none());
        a.resync("ETHUSDT", LostReason::Reconnected, &mut out);
        assert_eq!(out.events.len(), 1);
    }

    #[test]
    fn reconnecting_loses_live_books() {
        let mut a = adapter();
        let msgs = lines("binance/depth_stream.jsonl");
        feed(&mut a, &msgs[..3]);
        a.on_snapshot(
            "BTCUSDT",
            fixture("binance/depth_snapshot.json").as_bytes(),
            &mut Out::default(),
        )
        .unwrap();
        let mut out = Out::default();
        a.reconnected(&mut out);
        assert_eq!(kinds(&out.events), ["lost:Reconnected"]);
        // The next event starts the procedure over.
        let (out, _) = feed(&mut a, &msgs[3..4]);
        assert_eq!(out.actions, vec![fetch("BTCUSDT")]);
    }

    #[test]
    fn trades_keep_exact_decimals_and_taker_sides() {
        let mut a = adapter();
        let (out, errors) = feed(&mut a, &lines("binance/trades.jsonl"));
        // The last line repeats trade 4180712; it is refused, not counted twice.
        assert_eq!(
            errors,
            vec![(
                3,
                MarketError::OutOfOrder {
                    last: 4180713,
                    got: 4180712
                }
            )]
        );
        let trades = trades_of(&out.events, "BTCUSDT");
        assert_eq!(
            trades,
            vec![
                (
                    "97000.01000000".into(),
                    "0.00120000".into(),
                    Side::Buy,
                    "4180711".into(),
                    1_733_400_000_123_000
                ),
                (
                    "97000.00000000".into(),
                    "0.50000000".into(),
                    Side::Sell,
                    "4180712".into(),
                    1_733_400_000_187_000
                ),
                (
                    "97000.00000000".into(),
                    "0.00001000".into(),
                    Side::Sell,
                    "4180713".into(),
                    1_733_400_000_187_000
                ),
            ]
        );
    }
}

#[cfg(test)]
mod proptests {
    //! The sync procedure against a reference: whatever the snapshot's position relative to the
    //! buffered events, the synced book equals the exchange's.

    use super::*;
    use proptest::prelude::*;
    use tickcast_core::market::Decimal;

    /// One change: (is_bid, price tick, size lots). Bids sit below 100.0 and asks above, so no
    /// sequence of changes crosses the book.
    fn change() -> impl Strategy<Value = (bool, i64, i64)> {
        (any::<bool>(), 0i64..40, 0i64..4)
    }

    fn level(is_bid: bool, tick: i64, lots: i64) -> (String, String) {
        let price = if is_bid { 900 + tick } else { 1001 + tick };
        (
            Decimal::new(price.into(), 1).to_string(),
            Decimal::new(lots.into(), 2).to_string(),
        )
    }

    fn event(first: u64, last: u64, changes: &[(bool, i64, i64)]) -> String {
        let side = |bid: bool| {
            let v: Vec<(String, String)> = changes
                .iter()
                .filter(|c| c.0 == bid)
                .map(|c| level(c.0, c.1, c.2))
                .collect();
            serde_json::to_string(&v).unwrap()
        };
        format!(
            r#"{{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":{first},"u":{last},"b":{},"a":{}}}"#,
            side(true),
            side(false)
        )
    }

    fn apply(truth: &mut Book, changes: &[(bool, i64, i64)]) {
        let parse = |bid: bool| -> Vec<Level> {
            let mut v: Vec<Level> = changes
                .iter()
                .filter(|c| c.0 == bid)
                .map(|c| {
                    let (p, s) = level(c.0, c.1, c.2);
                    (Decimal::parse(&p).unwrap(), Decimal::parse(&s).unwrap())
                })
                .collect();
            collapse(&mut v);
            v
        };
        truth.apply_delta(&parse(true), &parse(false)).unwrap();
    }

    fn snapshot_body(lid: u64, book: &Book) -> String {
        let side = |levels: Vec<Level>| {
            let v: Vec<(String, String)> = levels
                .iter()
                .map(|(p, s)| (p.to_string(), s.to_string()))
                .collect();
            serde_json::to_string(&v).unwrap()
        };
        format!(
            r#"{{"lastUpdateId":{lid},"bids":{},"asks":{}}}"#,
            side(book.bids().collect()),
            side(book.asks().collect())
        )
    }

    proptest! {
        #[test]
        fn synced_book_equals_the_exchange_book(
            events in proptest::collection::vec((1u64..4, proptest::collection::vec(change(), 0..5)), 2..30),
            snap_at in any::<prop::sample::Index>(),
            arrive_after in any::<prop::sample::Index>(),
        ) {
            // Contiguous ids starting at 101; the exchange's book after each event.
            let mut ids = Vec::new();
            let mut next = 101u64;
            for (n, _) in &events {
                ids.push((next, next + n - 1));
                next += n;
            }
            let mut truth = Book::new(1000);
            let mut history = vec![(100u64, truth.clone())];
            for ((_, last), (_, changes)) in ids.iter().zip(&events) {
                apply(&mut truth, changes);
                history.push((*last, truth.clone()));
            }
            // The snapshot reflects the book at some point after we started buffering (after the
            // first event began, up to just after the last one buffered) and reaches us after
            // `arrive` events.
            let arrive = arrive_after.index(events.len()) + 1;
            let (lid, snap_book) = &history[snap_at.index(arrive + 1)];
            let mut a = BinanceBook::new(&["BTCUSDT".into()], 1000).unwrap();
            let mut out = Output::default();
            for (i, ((first, last), (_, changes))) in ids.iter().zip(&events).enumerate() {
                if i == arrive {
                    a.on_snapshot("BTCUSDT", snapshot_body(*lid, snap_book).as_bytes(), &mut out).unwrap();
                }
                a.handle(event(*first, *last, changes).as_bytes(), &mut out).unwrap();
            }
            if arrive == events.len() {
                a.on_snapshot("BTCUSDT", snapshot_body(*lid, snap_book).as_bytes(), &mut out).unwrap();
            }
            let lost = out.events.iter().filter(|e| matches!(e, MarketEvent::Lost { .. })).count();
            prop_assert_eq!(lost, 0);
            prop_assert_eq!(out.actions.len(), 1, "one snapshot fetch");
            prop_assert_eq!(a.book("BTCUSDT"), Some(&truth));
            // Replaying the published events gives the same book (what downstream will hold).
            let mut downstream = Book::new(1000);
            for e in &out.events {
                if let MarketEvent::Book { snapshot, bids, asks, .. } = e {
                    if *snapshot {
                        downstream.apply_snapshot(bids, asks).unwrap();
                    } else {
                        downstream.apply_delta(bids, asks).unwrap();
                    }
                }
            }
            prop_assert_eq!(&downstream, &truth);
        }

        /// Arbitrary bytes and mutated fixture lines: an error or events, never a panic.
        #[test]
        fn never_panics(line in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), byte in any::<u8>(), junk in proptest::collection::vec(any::<u8>(), 0..64)) {
            let lines = super::super::test_support::lines("binance/depth_stream.jsonl");
            let mut msg = lines[line.index(lines.len())].clone().into_bytes();
            let i = at.index(msg.len());
            msg[i] = byte;
            let mut a = BinanceBook::new(&["BTCUSDT".into()], 10).unwrap();
            let mut out = Output::default();
            let _ = a.handle(&msg, &mut out);
            let _ = a.handle(&junk, &mut out);
            let _ = a.on_snapshot("BTCUSDT", &msg, &mut out);
            let _ = a.on_snapshot("BTCUSDT", &junk, &mut out);
        }
    }
}
