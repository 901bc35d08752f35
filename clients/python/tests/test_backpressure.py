"""Falling behind, end to end against real tickcast servers: a consumer slower than the SDK's reader (the SDK's
bounded queue and its client_overflow gaps; a book resyncs), and a reader slower than the server (the server's gap
markers under conflate and drop_oldest). Either way every seq is delivered or named by a gap, exactly once."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from conftest import Server
from test_client import collect, poll, run
from test_overflow import ledger
from tickcast import CLIENT_OVERFLOW, BookInvalid, Client, Gap, OrderBook, Tick


def covers(topic: str, last: int) -> Callable[[list[Any]], bool]:
    """A collect() condition: the last event reaches seq `last` of topic (as a tick or at the end of a gap)."""
    def done(got: list[Any]) -> bool:
        e = got[-1]
        reached = e.seq if isinstance(e, Tick) else e.to_seq if isinstance(e, Gap) else 0
        return getattr(e, "topic", None) == topic and reached >= last
    return done


def test_a_sleeping_consumer_gets_the_newest_ticks_and_one_exact_gap(server: Server) -> None:
    async def main() -> None:
        async with Client(server.url, max_queue=100) as c:
            sub = await c.subscribe("ticker.SDKO")
            server.publish("ticker.SDKO", 3000)
            # The consumer sleeps while the SDK's reader takes in all 3000 ticks: 100 wait, the rest are dropped.
            await poll(lambda: c._topics["ticker.SDKO"].seq == 3000)
            assert sub._queue.data_items == 100
            got = await collect(sub.events(), covers("ticker.SDKO", 3000))
            seqs = ledger(got, "ticker.SDKO")
            assert sum(seqs.values()) == 3000 and seqs["tick"] == 100, seqs
            assert 0 < sub.overflows <= seqs[CLIENT_OVERFLOW]
            if server.metric('tickcast_gap_markers_total{reason="conflated"}') == 0:
                # The server kept up (it may not, on a loaded machine: then its gaps merge into the client's).
                assert got[0] == Gap("ticker.SDKO", 1, 2900, CLIENT_OVERFLOW) and sub.overflows == 2900
                assert [e.seq for e in got[1:]] == list(range(2901, 3001))
    run(main())


def test_a_book_whose_consumer_stalls_resyncs_with_a_fresh_snapshot(server: Server) -> None:
    async def main() -> None:
        server.publish_lines(['{"type":"book","topic":"book.SDKQ","snapshot":true,"bids":[["10.0","1"]],'
                              '"asks":[["10.5","2"]]}\n'])
        async with Client(server.url) as c:
            # A quiet book with heartbeats every 100 ms: a consumer that stops reading piles them up.
            sub = c.book("book.SDKQ", heartbeat_ms=100, max_queue=3, resubscribe_min=0.2)
            events = sub.events()
            await collect(events, lambda g: isinstance(g[-1], OrderBook))
            await asyncio.sleep(1.0)
            assert sub.overflows >= 1 and len(sub._queue) <= 3 + 1
            got = await collect(events, lambda g: isinstance(g[-1], OrderBook))
            invalid = [e for e in got if isinstance(e, BookInvalid)]
            assert invalid and invalid[0].reason == CLIENT_OVERFLOW and invalid[0].resubscribe, got
            assert sub.resubscribes >= 1 and sub.book.snapshots >= 2 and sub.mismatches == 0
            assert sub.checksum_ok and str(sub.book.best_bid.price) == "10.0"  # type: ignore[union-attr]
    run(main())


@pytest.mark.parametrize("policy,counter,reason", [
    ("conflate", "tickcast_messages_conflated_total", "conflated"),
    ("drop_oldest", 'tickcast_messages_dropped_total{reason="drop_oldest"}', "dropped"),
])
def test_server_gap_markers_name_every_seq_a_stalled_reader_missed(
        binary: str, policy: str, counter: str, reason: str) -> None:
    # A tiny server-side queue and socket buffer: a reader that stops meets the policy after a few hundred ticks.
    server = Server(binary, policy=policy, max_queued_frames=16, send_buffer=4096)

    def publish_until_the_policy_acts() -> int:
        sent = 0
        while server.metric(counter) == 0 and sent < 500_000:
            server.publish("ticker.SDKM", 500)
            sent += 500
        server.publish("ticker.SDKM", 500)  # and more after it: the reader is still behind when it resumes
        return sent + 500

    async def main() -> None:
        async with Client(server.url) as c:
            sub = await c.subscribe("ticker.SDKM")
            server.publish("ticker.SDKM", 1)
            events = sub.events()
            first = await collect(events, lambda g: isinstance(g[-1], Tick))
            # Publishing blocks the event loop: the client reads nothing meanwhile, and the server's queue for it fills.
            sent = 1 + publish_until_the_policy_acts()
            got = first + await collect(events, covers("ticker.SDKM", sent), limit=1_000_000)
            seqs = ledger(got, "ticker.SDKM")
            assert sum(seqs.values()) == sent and seqs.get(reason, 0) > 0, seqs
            assert set(seqs) <= {"tick", reason, CLIENT_OVERFLOW}, seqs
            assert server.metric(f'tickcast_gap_markers_total{{reason="{reason}"}}') > 0
    try:
        run(main())
    finally:
        server.stop()
