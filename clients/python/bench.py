"""What one Python SDK client costs: messages per second it consumes, and CPU per message.

Usage: `.venv/bin/python bench.py [--bin TICKCAST_BIN] [--n N] [--rate R] [--seconds S]`. Starts a tickcast (the
binary from --bin, $TICKCAST_BIN or target/; use a release build), subscribes one client to one topic and has a
separate publisher process send ticks through the server's tcp feed, so the client process's CPU time
(`time.process_time()`) is the SDK's and the consumer loop's alone.

- max: the publisher sends N ticks (default 200,000) at once; the client iterates them (`sub.events()`), timed from
  its first tick to the N-th: messages/s, and CPU µs per message over the same window.
- paced: the publisher sends R ticks/s (default 2,000) for S seconds (default 10); after a 1 s warm-up, the client's
  CPU time over the rest as a share of one core.

The server's queue for the client holds every tick (1,000,000 frames, 1 GiB), so it never conflates: the client
reads as fast as it can. Gaps (a `client_overflow` when the consumer falls behind the SDK's reader) are counted by
reason and printed: a run with gaps measured less than it says.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import sys
import time
from typing import Optional

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "tests"))
from conftest import Server, find_binary, tick_lines  # noqa: E402

from tickcast import Client, Gap, Tick  # noqa: E402

TOPIC = "ticker.BENCH"


def publisher(port: int, n: int, rate: float) -> None:
    """Sends n ticks of TOPIC to the tcp feed on port: at once (rate 0), or rate per second in 10 ms batches. The
    lines are made before the first is sent, so making them never holds the sending back."""
    batch = n if rate <= 0 else max(1, int(rate / 100))
    payloads = [("".join(tick_lines(TOPIC, sent, min(batch, n - sent)))).encode() for sent in range(0, n, batch)]
    with socket.create_connection(("127.0.0.1", port)) as s:
        began = time.monotonic()
        for i, payload in enumerate(payloads):
            wait = began + i * batch / rate - time.monotonic() if rate > 0 else 0  # on schedule: no drift
            if wait > 0:
                time.sleep(wait)
            s.sendall(payload)


class Window:
    """Wall and process CPU time from start() to now."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


async def consume(server: Server, n: int, rate: float, warmup: float) -> tuple[int, dict[str, int], float, float]:
    """Ticks counted in the window, seqs in gaps by reason, the window's wall and CPU seconds."""
    async with Client(server.url) as c:
        sub = await c.subscribe(TOPIC)
        proc = multiprocessing.get_context("spawn").Process(target=publisher, args=(server.feed_port, n, rate))
        proc.start()
        ticks = 0
        gaps: dict[str, int] = {}
        window = Window()
        first: Optional[float] = None
        measuring = False
        try:
            async for ev in sub.events():
                if isinstance(ev, Tick):
                    now = time.perf_counter()
                    first = now if first is None else first
                    if not measuring and now - first >= warmup:
                        window.start()  # the warm-up is over (at once without one): the window starts here
                        measuring, ticks = True, 0
                    ticks += 1
                    last = ev.seq
                elif isinstance(ev, Gap):
                    gaps[ev.reason] = gaps.get(ev.reason, 0) + ev.to_seq - ev.from_seq + 1
                    last = ev.to_seq
                else:
                    continue
                if last >= n:
                    break
        finally:
            proc.join(60)
        wall, cpu = window.elapsed()
        return ticks, gaps, wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default=None, help="tickcast binary (default $TICKCAST_BIN or target/)")
    p.add_argument("--n", type=int, default=200_000, help="ticks to publish at once (max mode)")
    p.add_argument("--rate", type=float, default=0, help="publish this many ticks/s instead (paced mode)")
    p.add_argument("--seconds", type=float, default=10, help="how long the paced mode publishes")
    args = p.parse_args()
    binary = args.bin or find_binary()
    if binary is None:
        sys.exit("no tickcast binary: pass --bin or set TICKCAST_BIN")
    # A server queue that holds every tick: the client reads as fast as it can and the server never conflates.
    server = Server(binary, max_queued_frames=1_000_000, max_queued_bytes=1 << 30)
    try:
        if args.rate > 0:
            n = int(args.rate * args.seconds)
            ticks, gaps, wall, cpu = asyncio.run(consume(server, n, args.rate, warmup=1.0))
            print(f"python {sys.version.split()[0]} paced {args.rate:,.0f}/s: {ticks} ticks in {wall:.2f} s "
                  f"({ticks / wall:,.0f} msg/s, seqs in gaps: {gaps or 'none'}), CPU {cpu:.2f} s = {100 * cpu / wall:.1f}% of "
                  f"one core, {1e6 * cpu / ticks:.1f} µs/msg")
        else:
            ticks, gaps, wall, cpu = asyncio.run(consume(server, args.n, 0, warmup=0.0))
            print(f"python {sys.version.split()[0]} max: {ticks} ticks (seqs in gaps: {gaps or 'none'}) in {wall:.2f} s = "
                  f"{ticks / wall:,.0f} msg/s, CPU {cpu:.2f} s = {1e6 * cpu / ticks:.1f} µs/msg")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
