"""Messages per second one Python SDK client consumes.

Usage: `.venv/bin/python bench.py [TICKCAST_BIN] [N]`: starts a tickcast (binary from the argument, $TICKCAST_BIN
or target/), publishes N ticks of one topic through its tcp feed and times how long the client takes to iterate
them all (from its first tick to its N-th)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "tests"))
from conftest import Server, find_binary  # noqa: E402

from tickcast import Client, Gap, Tick  # noqa: E402


async def main(binary: str, n: int) -> None:
    server = Server(binary)
    try:
        async with Client(server.url) as c:
            sub = await c.subscribe("ticker.BENCH")
            threading.Thread(target=server.publish, args=("ticker.BENCH", n), daemon=True).start()
            ticks = gaps = 0
            start = 0.0
            async for ev in sub.events():
                if isinstance(ev, Tick):
                    ticks += 1
                    if ticks == 1:
                        start = time.perf_counter()
                elif isinstance(ev, Gap):
                    gaps += ev.to_seq - ev.from_seq + 1
                if ticks + gaps >= n:
                    break
            secs = time.perf_counter() - start
            print(f"python {sys.version.split()[0]}: {ticks} ticks ({gaps} in gaps) in {secs:.2f} s = {ticks / secs:,.0f} msg/s")
    finally:
        server.stop()


if __name__ == "__main__":
    b = sys.argv[1] if len(sys.argv) > 1 else find_binary()
    if b is None:
        sys.exit("no tickcast binary: pass one or set TICKCAST_BIN")
    asyncio.run(main(b, int(sys.argv[2]) if len(sys.argv) > 2 else 200_000))
