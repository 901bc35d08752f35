"""Command line: `python -m tickcast sub ticker.AAPL [--url ws://...] [--json] [--token T] [--count N]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Optional

from . import Client, Gap, Recovery, ServerError, Stale, Tick


async def _sub(args: argparse.Namespace) -> int:
    async with Client(args.url, token=args.token, heartbeat_ms=args.heartbeat_ms) as client:
        sub = client.subscribe(*args.topics)
        seen = 0
        try:
            async for ev in sub.events():
                if isinstance(ev, Tick):
                    seen += 1
                    if args.json:
                        print(json.dumps(ev.raw), flush=True)
                    else:
                        print(f"{ev.topic} #{ev.seq} bid={ev.get('bid')} ask={ev.get('ask')} last={ev.get('last')}", flush=True)
                    if args.count is not None and seen >= args.count:
                        return 0
                elif isinstance(ev, (Gap, Recovery, Stale)):
                    print(f"# {ev}", file=sys.stderr, flush=True)
        except ServerError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """Parses the command line and runs it."""
    p = argparse.ArgumentParser(prog="python -m tickcast")
    cmds = p.add_subparsers(dest="cmd", required=True)
    s = cmds.add_parser("sub", help="subscribe and print ticks")
    s.add_argument("topics", nargs="+")
    s.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    s.add_argument("--json", action="store_true", help="print each tick as the server's JSON")
    s.add_argument("--token", default=None, help="API key or JWT")
    s.add_argument("--heartbeat-ms", type=int, default=None)
    s.add_argument("--count", type=int, default=None, help="exit after this many ticks")
    args = p.parse_args(argv)
    try:
        return asyncio.run(_sub(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
