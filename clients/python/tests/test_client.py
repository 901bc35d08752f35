"""The Python SDK against real tickcast servers on loopback (see conftest.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, TypeVar

import pytest

from conftest import API_KEY, Server
from tickcast import (
    Client, Gap, Heartbeat, Recovery, ServerError, Stale, Tick, backoff_delay, unannounced_gap,
)

T = TypeVar("T")
LIMIT = 30.0


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, LIMIT))


async def collect(events: Any, want: Callable[[list[Any]], bool], limit: int = 100_000) -> list[Any]:
    """Reads events until want(events so far) holds (bounded by count and the test's time limit)."""
    got: list[Any] = []
    async for ev in events:
        got.append(ev)
        if want(got) or len(got) >= limit:
            break
    return got


async def poll(cond: Callable[[], bool]) -> None:
    for _ in range(400):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in 20 s")


def stall(cond: Callable[[], bool]) -> None:
    """Blocks the event loop until cond() holds (at most 20 s): the client reads nothing meanwhile, as one whose
    consumer hogs the loop, so the server's queue for it fills. (Not transport.pause_reading(): websockets' own flow
    control resumes reading when its buffer drains, which can undo it.)"""
    deadline = time.monotonic() + 20
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in 20 s")
        time.sleep(0.02)


def test_backoff_is_full_jitter_and_capped() -> None:
    assert backoff_delay(0, 0.1, 10, 0.5) == pytest.approx(0.05)
    assert backoff_delay(3, 0.1, 10, 0.999) == pytest.approx(0.7992)
    assert backoff_delay(50, 0.1, 10, 0.5) == pytest.approx(5.0)
    assert backoff_delay(4, 0.1, 10, 0.0) == 0.0


def test_unannounced_gap_rule() -> None:
    assert unannounced_gap(None, 7) is None
    assert unannounced_gap(6, 7) is None
    assert unannounced_gap(6, 10) == (7, 9)


def test_subscribe_receive_unsubscribe(server: Server) -> None:
    async def main() -> None:
        async with Client(server.url) as c:
            sub = await c.subscribe("ticker.SDKA")
            server.publish("ticker.SDKA", 20)
            ticks = await collect(sub, lambda g: len(g) >= 20)
            assert [t.seq for t in ticks] == list(range(1, 21))
            assert all(isinstance(t, Tick) and t.topic == "ticker.SDKA" for t in ticks)
            assert ticks[0].get("bid") is not None
            await sub.unsubscribe()
            server.publish("ticker.SDKA", 5)
            pong = await c.ping()  # after the unsubscribe ack no tick of the topic may come
            assert pong["type"] == "pong"
            rest = [e async for e in sub.events()]
            assert rest == []
    run(main())


def test_reconnect_recovers_every_seq_once(server: Server) -> None:
    async def main() -> None:
        async with Client(server.url, reconnect_min=0.05, reconnect_max=0.2) as c:
            sub = await c.subscribe("ticker.SDKR")
            server.publish("ticker.SDKR", 50)
            events = sub.events()
            got = await collect(events, lambda g: sum(isinstance(e, Tick) for e in g) >= 50)
            ws = c._ws
            assert ws is not None
            await ws.close()  # the connection drops; the client reconnects and resubscribes with since
            server.publish("ticker.SDKR", 50)
            got += await collect(events, lambda g: sum(isinstance(e, Tick) for e in g) >= 50)
            seqs = [e.seq for e in got if isinstance(e, Tick)]
            assert seqs == list(range(1, 101)), seqs
            recs = [e for e in got if isinstance(e, Recovery)]
            assert recs == [Recovery("ticker.SDKR", True, None)]
            assert not [e for e in got if isinstance(e, Gap)]
            states = [s.state for s in c.states]
            assert states.count("connected") == 2 and "disconnected" in states
    run(main())


def test_restart_reports_epoch_changed(server: Server) -> None:
    async def main() -> None:
        async with Client(server.url, reconnect_min=0.05, reconnect_max=0.5) as c:
            sub = await c.subscribe("ticker.SDKE")
            server.publish("ticker.SDKE", 10)
            events = sub.events()
            await collect(events, lambda g: sum(isinstance(e, Tick) for e in g) >= 10)
            await asyncio.to_thread(server.restart)
            # The resubscribe's outcome comes first; ticks published after it arrive one by one.
            got = await collect(events, lambda g: any(isinstance(e, Recovery) for e in g))
            server.publish("ticker.SDKE", 3)
            got += await collect(events, lambda g: sum(isinstance(e, Tick) for e in g) >= 3)
            assert [e.seq for e in got if isinstance(e, Tick)] == [1, 2, 3]
            recs = [e for e in got if isinstance(e, Recovery)]
            assert recs and not recs[0].recovered
            assert recs[0].reason == "epoch_changed", recs
            downs = [s for s in c.states if s.state == "disconnected"]
            assert downs and downs[0].code in (1001, 1006, None)
            assert not [e for e in got if isinstance(e, Gap)], "a fresh start is not a gap"
    run(main())


def test_heartbeats_and_stale_topic(server: Server) -> None:
    async def main() -> None:
        async with Client(server.url) as c:
            sub = await c.subscribe("ticker.SDKH", heartbeat_ms=200)
            server.publish("ticker.SDKH", 1)
            events = sub.events()
            got = await collect(events, lambda g: any(isinstance(e, Heartbeat) for e in g))
            hb = [e for e in got if isinstance(e, Heartbeat)][0]
            assert hb.feed_up and hb.seq == 1
            server.feed_down()
            got = await collect(events, lambda g: any(isinstance(e, Stale) for e in g))
            assert [e for e in got if isinstance(e, Stale)] == [Stale("ticker.SDKH", 1)]
    run(main())


def test_unannounced_seq_jump_is_a_gap_event(server: Server) -> None:
    async def main() -> None:
        async with Client(server.url) as c:
            sub = await c.subscribe("ticker.SDKG")
            server.publish("ticker.SDKG", 3)
            events = sub.events()
            await collect(events, lambda g: len(g) >= 3)
            # The client's bookkeeping says it has seen less than it has: the next tick is a jump nobody announced.
            c._topics["ticker.SDKG"].seq = 1
            server.publish("ticker.SDKG", 1)
            got = await collect(events, lambda g: any(isinstance(e, Tick) for e in g))
            assert got[0] == Gap("ticker.SDKG", 2, 3, "unannounced") and not got[0].announced
            assert isinstance(got[1], Tick) and got[1].seq == 4
    run(main())


def test_errors_are_typed_on_the_call(server: Server) -> None:
    async def main() -> None:
        async with Client(server.url) as c:
            with pytest.raises(ServerError) as e:
                await c.subscribe("not a topic!")
            assert e.value.code == "invalid_topic"
            with pytest.raises(ServerError) as e:
                await c.subscribe("ticker.SDKX", heartbeat_ms=1)
            assert e.value.code == "invalid_field" and e.value.field == "heartbeat_ms"
            assert (await c.ping())["type"] == "pong"  # the connection stays usable
    run(main())


def test_auth_with_async_token_provider(auth_server: Server) -> None:
    calls: list[int] = []

    async def provider() -> str:
        calls.append(1)
        return API_KEY

    async def main() -> None:
        async with Client(auth_server.url, token=provider) as c:
            sub = await c.subscribe("ticker.SDKT")
            auth_server.publish("ticker.SDKT", 2)
            ticks = await collect(sub, lambda g: len(g) >= 2)
            assert [t.seq for t in ticks] == [1, 2]
            with pytest.raises(ServerError) as e:
                await c.subscribe("book.SDKT")
            assert e.value.code == "forbidden"
        assert calls == [1]  # a refused credential: test_auth.py
    run(main())
