"""Command line: `python -m tickcast sub ticker.AAPL [--url ws://...] [--json] [--token T] [--count N]` prints
ticks, trades, bars and book messages; `python -m tickcast book book.AAPL [--levels N] [--count N]` keeps the order
book (every checksum verified) and prints its top levels after each verified change."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Optional

from . import (
    Bar, BookInvalid, BookMessage, Client, Gap, Level, OrderBook, Recovery, Reset, ServerError, Stale, Tick, Trade,
    Unauthorized,
)


async def _sub(args: argparse.Namespace) -> int:
    async with Client(args.url, token=args.token, heartbeat_ms=args.heartbeat_ms) as client:
        sub = client.subscribe(*args.topics)
        seen = 0
        try:
            async for ev in sub.events():
                if isinstance(ev, (Tick, Trade, Bar, BookMessage)):
                    seen += 1
                    if args.json:
                        print(json.dumps(ev.raw), flush=True)
                    else:
                        print(_line(ev), flush=True)
                    if args.count is not None and seen >= args.count:
                        return 0
                elif isinstance(ev, (Gap, Recovery, Stale, Reset)):
                    print(f"# {ev}", file=sys.stderr, flush=True)
        except ServerError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


def _line(ev: object) -> str:
    if isinstance(ev, Tick):
        return f"{ev.topic} #{ev.seq} bid={ev.get('bid')} ask={ev.get('ask')} last={ev.get('last')}"
    if isinstance(ev, Trade):
        return f"{ev.topic} #{ev.seq} {ev.side} {ev.size}@{ev.price}"
    if isinstance(ev, Bar):
        return (f"{ev.topic} #{ev.seq} start={ev.start} o={ev.open} h={ev.high} l={ev.low} c={ev.close} "
                f"v={ev.volume} trades={ev.trades}" + (" closed" if ev.closed else ""))
    assert isinstance(ev, BookMessage)
    kind = "snapshot" if ev.snapshot else "delta"
    return f"{ev.topic} #{ev.seq} {kind} bids={len(ev.bids)} asks={len(ev.asks)} checksum={ev.checksum}"


def _levels(levels: list[Level]) -> str:
    return " ".join(f"{lv.size}@{lv.price}" for lv in levels)


async def _book(args: argparse.Namespace) -> int:
    async with Client(args.url, token=args.token) as client:
        sub = client.book(args.topic)
        seen = 0
        try:
            async for ev in sub.events():
                if isinstance(ev, OrderBook):
                    seen += 1
                    bids, asks = ev.top(args.levels)
                    print(f"{ev.topic} #{ev.seq} spread={ev.spread} bids: {_levels(bids)} | asks: {_levels(asks)}",
                          flush=True)
                    if args.count is not None and seen >= args.count:
                        print(f"# verified={ev.verified} mismatches={ev.mismatches} resubscribes={sub.resubscribes}",
                              file=sys.stderr, flush=True)
                        return 0
                elif isinstance(ev, (BookInvalid, Gap, Recovery, Stale, Reset)):
                    print(f"# {ev}", file=sys.stderr, flush=True)
        except ServerError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """Parses the command line and runs it."""
    p = argparse.ArgumentParser(prog="python -m tickcast")
    cmds = p.add_subparsers(dest="cmd", required=True)
    b = cmds.add_parser("book", help="keep an order book (checksums verified) and print its top levels")
    b.add_argument("topic", help="a book topic, e.g. book.AAPL")
    b.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    b.add_argument("--token", default=None, help="API key or JWT")
    b.add_argument("--levels", type=int, default=3, help="levels a side to print")
    b.add_argument("--count", type=int, default=None, help="exit after this many verified updates")
    s = cmds.add_parser("sub", help="subscribe and print ticks, trades, bars and book messages")
    s.add_argument("topics", nargs="+")
    s.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    s.add_argument("--json", action="store_true", help="print each message as the server's JSON")
    s.add_argument("--token", default=None, help="API key or JWT")
    s.add_argument("--heartbeat-ms", type=int, default=None)
    s.add_argument("--count", type=int, default=None, help="exit after this many messages")
    args = p.parse_args(argv)
    try:
        return asyncio.run(_book(args) if args.cmd == "book" else _sub(args))
    except Unauthorized as e:  # retrying cannot help: say why and stop
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
