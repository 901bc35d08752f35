"""The bounded queue's overflow policy by hand (tickcast.overflow): what a consumer that fell behind gets instead of
what was dropped, and a randomized ledger check that every seq is delivered or inside exactly one gap."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tickcast import CLIENT_OVERFLOW, Gap, Heartbeat, OverflowQueue, Recovery, ServerError, Tick, merge_gaps


def tick(topic: str, seq: int) -> Tick:
    return Tick(topic, seq, seq, {"type": "tick", "topic": topic, "seq": seq, "ts": seq})


def drain(q: OverflowQueue[Any]) -> list[Any]:
    out = []
    while (item := q.pop()) is not None:
        out.append(item)
    return out


def test_below_the_bound_it_is_a_plain_fifo() -> None:
    q: OverflowQueue[Any] = OverflowQueue(3)
    items = [tick("ticker.A", 1), Recovery("ticker.A", True, None), tick("ticker.A", 2), tick("ticker.A", 3)]
    for it in items:
        q.push(it)
    assert (len(q), q.data_items, q.dropped) == (4, 3, 0)
    assert drain(q) == items and q.pop() is None


def test_a_long_stall_leaves_one_exact_gap_then_the_newest_items() -> None:
    q: OverflowQueue[Any] = OverflowQueue(3)
    for seq in range(1, 11):
        q.push(tick("ticker.A", seq))
    assert q.data_items == 3 and q.dropped == 7
    assert drain(q) == [Gap("ticker.A", 1, 7, CLIENT_OVERFLOW), tick("ticker.A", 8), tick("ticker.A", 9),
                        tick("ticker.A", 10)]


def test_gaps_are_per_topic_in_stream_order() -> None:
    q: OverflowQueue[Any] = OverflowQueue(2)
    for seq in range(1, 4):
        q.push(tick("ticker.A", seq))
        q.push(tick("ticker.B", seq))
    assert drain(q) == [Gap("ticker.A", 1, 2, CLIENT_OVERFLOW), Gap("ticker.B", 1, 2, CLIENT_OVERFLOW),
                        tick("ticker.A", 3), tick("ticker.B", 3)]


def test_a_server_gap_next_to_dropped_ticks_becomes_part_of_the_client_gap() -> None:
    q: OverflowQueue[Any] = OverflowQueue(1)
    for it in [tick("ticker.A", 1), Gap("ticker.A", 2, 4, "conflated"), tick("ticker.A", 5), tick("ticker.A", 6)]:
        q.push(it)
    assert drain(q) == [Gap("ticker.A", 1, 5, CLIENT_OVERFLOW), tick("ticker.A", 6)]
    # A server gap before the newest item stays as the server sent it.
    q.push(tick("ticker.A", 7))
    q.push(Gap("ticker.A", 8, 9, "dropped"))
    q.push(tick("ticker.A", 10))
    assert drain(q) == [Gap("ticker.A", 7, 7, CLIENT_OVERFLOW), Gap("ticker.A", 8, 9, "dropped"), tick("ticker.A", 10)]


def test_other_events_are_kept_and_keep_gaps_apart() -> None:
    q: OverflowQueue[Any] = OverflowQueue(1)
    err = ServerError("forbidden", "no")
    for it in [tick("ticker.A", 1), tick("ticker.A", 2), Recovery("ticker.A", False, "too_old"), err,
               tick("ticker.A", 40), tick("ticker.A", 41)]:
        q.push(it)
    # Recovery(False) says the next tick is a fresh start: the gap before it and the one after must stay apart.
    assert drain(q) == [Gap("ticker.A", 1, 2, CLIENT_OVERFLOW), Recovery("ticker.A", False, "too_old"), err,
                        Gap("ticker.A", 40, 40, CLIENT_OVERFLOW), tick("ticker.A", 41)]


def test_heartbeats_are_dropped_without_a_gap_and_counted() -> None:
    q: OverflowQueue[Any] = OverflowQueue(1)
    q.push(Heartbeat("ticker.A", 3, 30, True))
    q.push(Heartbeat("ticker.A", 3, 30, True))
    q.push(tick("ticker.A", 4))
    assert (q.dropped, q.dropped_heartbeats) == (2, 2)
    assert drain(q) == [tick("ticker.A", 4)]


def test_merge_gaps_only_joins_contiguous_gaps_of_one_topic() -> None:
    a = Gap("ticker.A", 1, 3, "conflated")
    assert merge_gaps(a, Gap("ticker.A", 4, 5, "conflated")) == Gap("ticker.A", 1, 5, "conflated")
    assert merge_gaps(a, Gap("ticker.A", 4, 5, "dropped")) == Gap("ticker.A", 1, 5, CLIENT_OVERFLOW)
    assert merge_gaps(a, Gap("ticker.A", 5, 5, "conflated")) is None
    assert merge_gaps(a, Gap("ticker.B", 4, 5, "conflated")) is None
    with pytest.raises(ValueError):
        OverflowQueue(0)


def ledger(events: list[Any], topic: str) -> dict[str, int]:
    """Seqs of topic delivered ("tick") and announced lost (per gap reason), checking that ticks and gaps together
    cover 1, 2, 3, ... in order, each seq once."""
    last = 0
    out: dict[str, int] = {}
    for ev in events:
        if getattr(ev, "topic", None) != topic or not isinstance(ev, (Tick, Gap)):
            continue
        lo, hi, kind = (ev.from_seq, ev.to_seq, ev.reason) if isinstance(ev, Gap) else (ev.seq, ev.seq, "tick")
        assert lo == last + 1, f"{topic}: {ev} after seq {last}"
        out[kind] = out.get(kind, 0) + hi - lo + 1
        last = hi
    return out


def stream(rnd: random.Random, topics: list[str], n: int) -> list[Any]:
    """A server-like stream: per topic, seqs in order, now and then a gap marker right before the next tick."""
    seqs = {t: 0 for t in topics}
    out: list[Any] = []
    for _ in range(n):
        t = rnd.choice(topics)
        if rnd.random() < 0.1:
            skip = rnd.randint(1, 5)
            out.append(Gap(t, seqs[t] + 1, seqs[t] + skip, rnd.choice(["conflated", "dropped"])))
            seqs[t] += skip
        seqs[t] += 1
        out.append(tick(t, seqs[t]))
        if rnd.random() < 0.05:
            out.append(Heartbeat(t, seqs[t], 0, True))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_every_seq_is_delivered_or_in_exactly_one_gap_and_memory_stays_bounded(seed: int) -> None:
    rnd = random.Random(seed)
    topics = ["ticker.A", "ticker.B", "ticker.C"]
    maxsize = rnd.randint(1, 20)
    q: OverflowQueue[Any] = OverflowQueue(maxsize)
    sent = stream(rnd, topics, 2000)
    got: list[Any] = []
    for item in sent:
        q.push(item)
        # Data at most maxsize; besides it, server gaps (one per queued tick at most) and one merged gap per topic.
        assert q.data_items <= maxsize and len(q) <= 2 * maxsize + len(topics)
        while rnd.random() < 0.3 and (out := q.pop()) is not None:
            got.append(out)
    got += drain(q)
    for t in topics:
        want = [ev.seq for ev in sent if isinstance(ev, Tick) and ev.topic == t]
        assert sum(ledger(got, t).values()) == want[-1]
    dropped_ticks = sum(g.to_seq - g.from_seq + 1 for g in got if isinstance(g, Gap) and g.reason == CLIENT_OVERFLOW)
    server_gapped = sum(g.to_seq - g.from_seq + 1 for g in sent if isinstance(g, Gap))
    ticks_got = sum(isinstance(ev, Tick) for ev in got)
    assert ticks_got + q.dropped - q.dropped_heartbeats == len([e for e in sent if isinstance(e, Tick)])
    assert dropped_ticks >= q.dropped - q.dropped_heartbeats and dropped_ticks <= q.dropped + server_gapped
