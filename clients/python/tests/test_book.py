"""Order books, trades and bars: OrderBook by hand (the checksums of docs/protocol.md, exact keys, trimming), then
the SDK against real tickcast servers whose synthetic feed publishes book.SYN1, trade.SYN1 and bar.1s.SYN1."""

from __future__ import annotations

import asyncio
import zlib
from decimal import Decimal
from typing import Any

import pytest

from conftest import API_KEY, Server
from test_client import collect, run, stall
from tickcast import (
    Bar, BookInvalid, BookMessage, Client, Gap, Level, OrderBook, Recovery, ServerError, Trade, checksum_digits,
    parse_decimal,
)


def snap(seq: int, bids: list[list[str]], asks: list[list[str]], checksum: int = 0, depth: int = 10) -> dict[str, Any]:
    return {"type": "book", "topic": "book.T", "seq": seq, "ts": seq, "snapshot": True, "depth": depth,
            "bids": bids, "asks": asks, "checksum": checksum}


def delta(seq: int, bids: list[list[str]], asks: list[list[str]], checksum: int = 0) -> dict[str, Any]:
    return {"type": "book", "topic": "book.T", "seq": seq, "ts": seq, "snapshot": False,
            "bids": bids, "asks": asks, "checksum": checksum}


def checksum_of(bids: list[list[str]], asks: list[list[str]]) -> int:
    """The checksum of a book holding exactly these levels (a mismatching apply still applies them)."""
    b = OrderBook()
    b.apply(snap(1, bids, asks, 0, 1000))
    return b.checksum()


def test_checksum_digits_and_exact_decimals() -> None:
    assert checksum_digits("0.00500") == "500"
    assert checksum_digits("64000.5") == "640005"
    assert parse_decimal("1.50") == parse_decimal("1.5")
    assert parse_decimal("1e5") is None and parse_decimal("1.") is None and parse_decimal(" 1") is None
    assert parse_decimal("NaN") is None and parse_decimal("0." + "1" * 19) is None


def test_protocol_md_checksums_and_keys_by_value() -> None:
    b = OrderBook("book.BTC-USD")
    assert b.apply(snap(41, [["64000.5", "1.25"]], [["64001.0", "0.5"]], 2238815152)) == "ok"
    assert b.apply(delta(42, [["64000.5", "0"]], [], 878852093)) == "ok"
    assert b.best_bid is None and b.spread is None
    assert b.best_ask == Level(Decimal("64001.0"), Decimal("0.5"))
    # "64001.00" is the level "64001.0": it replaces it, and the checksum takes the new digits.
    want = zlib.crc32((checksum_digits("64001.00") + checksum_digits("0.7")).encode())
    assert b.apply(delta(43, [], [["64001.00", "0.7"]], want)) == "ok"
    assert len(b) == 1 and str(b.asks[0].price) == "64001.00"
    assert (b.verified, b.seq, b.checksum_ok) == (3, 43, True)


def test_sorting_trimming_spread_and_what_drops_the_book() -> None:
    b = OrderBook("book.T")
    m = snap(1, [["10.0", "1"], ["9.5", "2"], ["9.75", "3"]], [["11", "1"], ["10.25", "2"]], depth=2)
    m["checksum"] = checksum_of([["10.0", "1"], ["9.75", "3"]], [["10.25", "2"], ["11", "1"]])
    assert b.apply(m) == "ok"
    assert [str(lv.price) for lv in b.bids] == ["10.0", "9.75"]  # 9.5 trimmed away
    assert b.top_asks(1) == [Level(Decimal("10.25"), Decimal("2"))]
    assert b.spread == Decimal("0.25") and b.mid == Decimal("10.125")
    # A better bid pushes 9.75 out (depth 2): the client must trim like the server, or its checksum differs.
    assert b.apply(delta(2, [["10.1", "4"]], [],
                         checksum_of([["10.1", "4"], ["10.0", "1"]], [["10.25", "2"], ["11", "1"]]))) == "ok"
    # Removing 10.1 (spelled 10.10) does not bring 9.75 back: it is gone on the server too.
    assert b.apply(delta(3, [["10.10", "0"]], [], checksum_of([["10.0", "1"]], [["10.25", "2"], ["11", "1"]]))) == "ok"
    assert b.apply(delta(3, [], [])) == "ignored"  # already applied
    assert b.apply(delta(4, [["10.0", "5"]], [], 12345)) == "mismatch" and not b.checksum_ok
    assert b.apply(delta(5, [], [])) == "ignored"  # no book held: wait for a snapshot
    assert b.apply({**m, "seq": 10}) == "ok"
    assert b.apply(delta(12, [], [], m["checksum"])) == "jump"
    assert b.apply({**m, "seq": 20}) == "ok"
    assert b.apply(delta(21, [["x", "1"]], [])) == "malformed"
    assert b.apply({**m, "seq": 30, "bids": [["10.0", "0"]]}) == "malformed"  # a zero size in a snapshot
    assert (b.mismatches, b.jumps, b.malformed, b.snapshots) == (1, 1, 2, 3)


def test_thousands_of_book_messages_all_verified(binary: str) -> None:
    # Depth 10 while the synthetic book keeps 20 levels: deltas touch levels the client must trim away.
    server = Server(binary, market_rate=6000, book_depth=10)

    async def main() -> None:
        async with Client(server.url) as c:
            sub = await c.book("book.SYN1")
            events: list[Any] = []
            last = 0
            async for ev in sub.events():
                if isinstance(ev, OrderBook):
                    assert ev is sub.book and ev.checksum_ok and ev.seq > last
                    last = ev.seq
                else:
                    events.append(ev)
                    break  # fail fast: nothing but verified books is expected
                if sub.verified >= 3000:
                    break
            assert sub.mismatches == 0 and events == [], events
            book = sub.book
            assert book.snapshots == 1 and book.depth == 10 and len(book.bids) == 10 and len(book.asks) == 10
            bid, ask = book.best_bid, book.best_ask
            assert bid is not None and ask is not None and bid.price < ask.price
            assert book.spread == ask.price - bid.price
            assert book.top(3) == (book.bids[:3], book.asks[:3])
            await sub.unsubscribe()
            n = sub.verified
            await c.ping()
            await asyncio.sleep(0.1)
            assert sub.verified == n  # nothing after the unsubscribe
    try:
        run(main())
    finally:
        server.stop()


def test_corrupted_book_is_detected_and_rebuilt_by_resubscribe(binary: str) -> None:
    server = Server(binary, market_rate=4000)

    async def main() -> None:
        async with Client(server.url) as c:
            sub = c.book("book.SYN1", resubscribe_min=0.5)
            events = sub.events()
            await collect(events, lambda g: sub.verified >= 200)
            # Corrupt every level's size behind the SDK's back: the next delta rewrites a level or two, never all of
            # them, so its checksum cannot match.
            for side in (sub.book._bids, sub.book._asks):
                for price, (_, size, p, s) in list(side.levels.items()):
                    side.levels[price] = (price, size + 1, p, str(size + 1))
            got = await collect(events, lambda g: sub.mismatches == 1 and sub.checksum_ok and sub.verified >= 400)
            invalid = [e for e in got if isinstance(e, BookInvalid)]
            assert [(e.reason, e.resubscribe) for e in invalid] == [("mismatch", True)], invalid
            assert sub.resubscribes == 1 and sub.book.snapshots == 2
            assert not [e for e in got if isinstance(e, Gap)]

            # A seq jump without a marker: dropped and resubscribed too.
            await asyncio.sleep(0.5)
            sub.book.seq -= 1
            # Stop on a book handed to the consumer (see the resync test): the reader's state may run ahead of it.
            got = await collect(events, lambda g: isinstance(g[-1], OrderBook) and sub.book.jumps == 1)
            assert [e.reason for e in got if isinstance(e, BookInvalid)] == ["jump"]
            assert sub.resubscribes == 2 and sub.book.snapshots == 3 and sub.mismatches == 1
    try:
        run(main())
    finally:
        server.stop()


def test_falling_behind_gets_resync_gap_and_snapshot(binary: str) -> None:
    server = Server(binary, market_rate=8000, max_queued_frames=16)
    resyncs = 'tickcast_gap_markers_total{reason="resync"}'

    async def main() -> None:
        async with Client(server.url) as c:
            sub = c.book("book.SYN1")
            events = sub.events()
            # A loaded machine may fall behind (and be resynced) already here: those events count as well.
            got = await collect(events, lambda g: sub.verified >= 100)
            seq, before = sub.book.seq, server.metric(resyncs)
            stall(lambda: server.metric(resyncs) > before)
            # Stop on a book the consumer itself was handed (events() yields one only once it has taken every event
            # queued before it, and only while the book is valid), not on the reader's state: the reader may already
            # hold the next snapshot while a gap and its BookInvalid still wait in the queue.
            got += await collect(events, lambda g: isinstance(g[-1], OrderBook)
                                 and any(isinstance(e, BookInvalid) and e.seq > seq for e in g))
            # Each resync: the server's gap, then the book dropped until the snapshot that follows it.
            marks = [e for e in got if isinstance(e, (Gap, BookInvalid))]
            said = [(type(e).__name__, e.reason, (e.from_seq, e.to_seq) if isinstance(e, Gap) else e.seq) for e in marks]
            assert marks and len(marks) % 2 == 0, said
            for gap, invalid in zip(marks[::2], marks[1::2]):
                assert isinstance(gap, Gap) and gap.reason == "resync", said
                assert isinstance(invalid, BookInvalid) and (invalid.reason, invalid.seq) == ("gap", gap.to_seq), said
            last = marks[-1]
            assert isinstance(last, BookInvalid) and last.seq > seq  # one came from the stall
            assert sub.resubscribes == 0  # the server's snapshot repairs the book
            assert sub.mismatches == 0 and sub.book.snapshots >= 2
    try:
        run(main())
    finally:
        server.stop()


def test_trades_typed_with_continuous_seqs_and_bars(binary: str) -> None:
    server = Server(binary, market_rate=4000)

    async def main() -> None:
        async with Client(server.url) as c:
            sub = await c.subscribe("trade.SYN1", "bar.1s.SYN1")
            got = await collect(sub.events(), lambda g: sum(isinstance(e, Trade) for e in g) >= 500
                                and any(isinstance(e, Bar) and e.closed for e in g))
            assert not [e for e in got if isinstance(e, Gap)]
            trades = [e for e in got if isinstance(e, Trade)]
            seqs = [t.seq for t in trades]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            for t in trades[:50]:
                assert t.topic == "trade.SYN1" and t.price > 0 and t.size > 0 and t.side in ("buy", "sell")
                assert str(t.price) == t.raw["price"]  # exact digits
            bars = [e for e in got if isinstance(e, Bar)]
            closed = next(b for b in bars if b.closed)
            assert closed.low <= closed.close <= closed.high and closed.trades >= 1
            assert [b.seq for b in bars] == list(range(bars[0].seq, bars[0].seq + len(bars)))
            book = await c.subscribe("book.SYN2")
            msgs = await collect(book, lambda g: len(g) >= 3)
            assert all(isinstance(m, BookMessage) for m in msgs) and msgs[0].snapshot
    try:
        run(main())
    finally:
        server.stop()


def test_book_forbidden_and_topic_already_subscribed(binary: str) -> None:
    server = Server(binary, auth=True, key_topics=("ticker.*", "book.SYN1"))

    async def main() -> None:
        async with Client(server.url, token=API_KEY) as c:
            with pytest.raises(ServerError) as e:
                await c.book("book.OTHER")
            assert e.value.code == "forbidden"
            await c.subscribe("book.SYN1")
            await asyncio.sleep(0.2)
            sub = await c.book("book.SYN1")
            await collect(sub, lambda g: sub.verified >= 20)
            assert sub.book.snapshots == 1 and sub.mismatches == 0
    try:
        run(main())
    finally:
        server.stop()


def test_book_resumes_after_dropped_connection(binary: str) -> None:
    server = Server(binary, market_rate=1000)

    async def main() -> None:
        async with Client(server.url, reconnect_min=0.05, reconnect_max=0.2) as c:
            sub = c.book("book.SYN1")
            events = sub.events()
            await collect(events, lambda g: sub.verified >= 100)
            ws = c._ws
            assert ws is not None
            await ws.close()
            got = await collect(events, lambda g: any(isinstance(e, Recovery) for e in g))
            v = sub.verified
            await collect(events, lambda g: sub.verified >= v + 100 and sub.checksum_ok)
            assert sub.mismatches == 0 and sub.resubscribes == 0, got
    try:
        run(main())
    finally:
        server.stop()
