"""Wildcard subscriptions in the Python SDK against a real server: a pattern's topics, existing and later, reach its
Subscription with seq/epoch tracking, resume after a dropped connection and end with the pattern."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conftest import Server
from test_client import collect, poll, run
from tickcast import Client, Gap, Recovery, Tick
from tickcast.wildcard import is_pattern, matches, pattern_for


def seqs(events: list[Any], topic: str) -> list[int]:
    return [e.seq for e in events if isinstance(e, Tick) and e.topic == topic]


def reached(topic: str, seq: int) -> Any:
    """A collect() condition: a tick of topic with seq at least `seq` came."""
    return lambda got: any(s >= seq for s in seqs(got, topic))


async def published(server: Server, topic: str, n: int) -> None:
    """Publishes n ticks of a new topic and waits until the server has them all (a named probe's snapshot or
    ticks)."""
    server.publish(topic, n)
    async with Client(server.url) as probe:
        await collect(await probe.subscribe(topic), lambda g: g[-1].seq >= n)


def test_pattern_rules() -> None:
    assert is_pattern("ticker.*") and not is_pattern("ticker.AAPL")
    assert matches("bar.1m.*", "bar.1m.AAPL") and not matches("bar.1m.*", "bar.1s.AAPL")
    assert not matches("ticker.*", "ticker.") and not matches("ticker.*", "tickerX.A")
    assert pattern_for(["ticker.A", "trade.*", "ticker.*"], "ticker.B") == "ticker.*"
    assert pattern_for(["trade.*"], "ticker.B") is None


def test_pattern_gets_snapshots_then_live_ticks(server: Server) -> None:
    async def main() -> None:
        await published(server, "ticker.WA", 3)
        await published(server, "ticker.WB", 3)
        async with Client(server.url) as c:
            sub = await c.subscribe("ticker.*")
            assert {"ticker.WA", "ticker.WB"} <= set(c.matched_topics("ticker.*"))
            server.publish("ticker.WA", 5)
            server.publish("ticker.WB", 5)
            got = await collect(sub, lambda g: reached("ticker.WA", 8)(g) and reached("ticker.WB", 8)(g))
            assert seqs(got, "ticker.WA") == [3, 4, 5, 6, 7, 8]  # the snapshot, then every tick once
            assert seqs(got, "ticker.WB") == [3, 4, 5, 6, 7, 8]
    run(main())


def test_topic_started_later_arrives_from_its_first_tick(server: Server) -> None:
    async def main() -> None:
        async with Client(server.url) as c:
            sub = await c.subscribe("ticker.*")
            events = sub.events()
            server.publish("ticker.WN", 5)
            got = await collect(events, reached("ticker.WN", 5))
            await poll(lambda: c._topics["ticker.WN"].epoch is not None)  # learnt by naming it once
            server.publish("ticker.WN", 5)
            got += await collect(events, reached("ticker.WN", 10))
            assert seqs(got, "ticker.WN") == list(range(1, 11)), "learning the epoch brings no second snapshot"
            assert not [e for e in got if isinstance(e, Gap) and e.topic == "ticker.WN"]
            assert c.matched_topics("ticker.*").count("ticker.WN") == 1
    run(main())


def test_dropped_connection_recovers_matched_topics_once(server: Server) -> None:
    async def main() -> None:
        await published(server, "ticker.WR", 20)
        async with Client(server.url, reconnect_min=0.05, reconnect_max=0.2) as c:
            sub = await c.subscribe("ticker.*")
            events = sub.events()
            server.publish("ticker.WL", 20)  # a topic the pattern takes in after its ack
            got = await collect(events, lambda g: reached("ticker.WR", 20)(g) and reached("ticker.WL", 20)(g))
            await poll(lambda: c._topics["ticker.WL"].epoch is not None)
            ws = c._ws
            assert ws is not None
            await ws.close()  # the client reconnects and resumes the pattern with since for both topics
            await poll(lambda: c._ws is not None and c._ws is not ws)
            server.publish("ticker.WR", 20)
            server.publish("ticker.WL", 20)
            got += await collect(events, lambda g: reached("ticker.WR", 40)(g) and reached("ticker.WL", 40)(g))
            assert seqs(got, "ticker.WR") == [20] + list(range(21, 41)), "the snapshot, then no seq twice"
            assert seqs(got, "ticker.WL") == list(range(1, 41))
            recs = {e.topic: e for e in got if isinstance(e, Recovery)}
            assert recs["ticker.WR"] == Recovery("ticker.WR", True, None)
            assert recs["ticker.WL"] == Recovery("ticker.WL", True, None)
            assert not [e for e in got if isinstance(e, Gap) and e.topic in ("ticker.WR", "ticker.WL")]
    run(main())


def test_reconnect_before_epoch_learnt_starts_over(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tickcast.client.LEARN_BATCH_S", 60.0)  # the connection drops before the epoch is learnt

    async def main() -> None:
        async with Client(server.url, reconnect_min=0.05, reconnect_max=0.2) as c:
            sub = await c.subscribe("ticker.*")
            events = sub.events()
            server.publish("ticker.WK", 5)
            got = await collect(events, reached("ticker.WK", 5))
            assert c._topics["ticker.WK"].epoch is None
            ws = c._ws
            assert ws is not None
            await ws.close()
            # The pattern's new ack names its epoch; its snapshot (seq 5) comes before what is published next.
            await poll(lambda: c._ws is not ws and c._topics["ticker.WK"].epoch is not None)
            server.publish("ticker.WK", 5)
            got += await collect(events, reached("ticker.WK", 10))
            assert Recovery("ticker.WK", False, "unknown_epoch") in got
            assert seqs(got, "ticker.WK") == list(range(1, 6)) + [5] + list(range(6, 11)), "its snapshot, then on"
            assert not [e for e in got if isinstance(e, Gap) and e.topic == "ticker.WK"]
    run(main())


def test_unsubscribe_pattern_ends_it_and_its_topics(server: Server) -> None:
    async def main() -> None:
        await published(server, "ticker.WU", 2)
        async with Client(server.url) as c:
            seen: list[str] = []  # the topic of every message the server sends
            handle = c._handle

            def record(msg: dict[str, Any]) -> None:
                seen.append(msg.get("topic", ""))
                handle(msg)

            c._handle = record  # type: ignore[method-assign]
            sub = await c.subscribe("ticker.*")
            events = sub.events()
            server.publish("ticker.WV", 3)  # taken in later: named once to learn its epoch
            await collect(events, lambda g: reached("ticker.WU", 2)(g) and reached("ticker.WV", 3)(g))
            await poll(lambda: c._topics["ticker.WV"].epoch is not None)
            await sub.unsubscribe()
            assert c.matched_topics("ticker.*") == [] and not c._subs and not c._topics
            assert [e async for e in events if isinstance(e, Tick) and e.topic.startswith("ticker.W")] == []
            seen.clear()
            server.publish("ticker.WU", 3)
            server.publish("ticker.WV", 3)
            marker = await c.subscribe("ticker.WZ")
            server.publish("ticker.WZ", 1)
            await collect(marker, lambda g: True)
            await asyncio.sleep(0.3)
            assert "ticker.WU" not in seen and "ticker.WV" not in seen, seen
    run(main())
