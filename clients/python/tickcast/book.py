"""An L2 order book kept from the server's `book` messages (docs/protocol.md, "Market data: books, trades, bars").

Levels are keyed by exact decimal value (`decimal.Decimal`: "1.50" and "1.5" are one level), each side is kept
sorted best first and trimmed to the snapshot's depth, and the Kraken v2 checksum (`zlib.crc32`) is verified after
every message. Pure logic, no socket: `Client.book()` feeds it and resubscribes when it says so; it can also be
fed by hand with `OrderBook.apply(msg)`.
"""

from __future__ import annotations

import bisect
import re
import zlib
from decimal import Context, Decimal
from typing import Any, Mapping, NamedTuple, Optional

#: Levels each side the checksum covers (Kraken: 10, whatever the depth).
CHECKSUM_LEVELS = 10
#: Most fractional digits a price or size may have (as the server).
MAX_SCALE = 18
_DEC_RE = re.compile(r"-?[0-9]+(?:\.([0-9]+))?\Z")
# Exact arithmetic for spreads and mids: the server allows 30 significant digits, Python's default context 28.
_EXACT = Context(prec=100)


class Level(NamedTuple):
    """One price level; `str(level.price)` is the server's digits (for everyday prices)."""

    price: Decimal
    size: Decimal


class MalformedBook(ValueError):
    """A book message that cannot be applied."""


def parse_decimal(s: Any) -> Optional[Decimal]:
    """The exact value of a decimal string `-?digits(.digits)?` (at most 18 fractional digits), else None."""
    if not isinstance(s, str):
        return None
    m = _DEC_RE.match(s)
    if m is None or (m.group(1) is not None and len(m.group(1)) > MAX_SCALE):
        return None
    return Decimal(s)


def checksum_digits(s: str) -> str:
    """The checksum form of a decimal string (Kraken v2): '.' removed, then leading zeros ("0.00500" -> "500")."""
    return s.replace(".", "", 1).lstrip("0")


def _parse_levels(raw: Any, side: str) -> list[tuple[Decimal, Decimal, str, str]]:
    if not isinstance(raw, list):
        raise MalformedBook(f"{side} is not a list")
    out = []
    for lv in raw:
        if not isinstance(lv, (list, tuple)) or len(lv) < 2:
            raise MalformedBook(f"malformed {side} level {lv!r}")
        price, size = parse_decimal(lv[0]), parse_decimal(lv[1])
        if price is None or size is None:
            raise MalformedBook(f"malformed {side} level {lv!r}")
        if size < 0:
            raise MalformedBook(f"negative size in {side} level {lv!r}")
        out.append((price, size, lv[0], lv[1]))
    return out


class _Side:
    """One side, best first: a sorted list of sort keys (bids negated) and the levels by price."""

    def __init__(self, desc: bool) -> None:
        self.desc = desc
        self.keys: list[Decimal] = []
        # price -> (price, size, price as sent, size as sent)
        self.levels: dict[Decimal, tuple[Decimal, Decimal, str, str]] = {}

    def clear(self) -> None:
        self.keys.clear()
        self.levels.clear()

    def set(self, price: Decimal, size: Decimal, p: str, s: str) -> None:
        key = -price if self.desc else price
        if size == 0:
            if self.levels.pop(price, None) is not None:
                del self.keys[bisect.bisect_left(self.keys, key)]
            return
        if price not in self.levels:
            bisect.insort(self.keys, key)
        self.levels[price] = (price, size, p, s)  # the latest spelling wins: it is what is checksummed

    def trim(self, depth: int) -> None:
        while len(self.keys) > depth:
            key = self.keys.pop()
            del self.levels[-key if self.desc else key]

    def top(self, n: Optional[int]) -> list[tuple[Decimal, Decimal, str, str]]:
        keys = self.keys if n is None else self.keys[:n]
        return [self.levels[-k if self.desc else k] for k in keys]


class OrderBook:
    """A local copy of one `book.<SYM>` topic. `valid` (alias `checksum_ok`) is True while it matches the
    server's book as of `seq`; counters say what happened so far."""

    def __init__(self, topic: str = "") -> None:
        self.topic = topic
        #: Seq of the last message applied (0 before the first snapshot).
        self.seq = 0
        #: Ingest time (unix µs) of the last message applied.
        self.ts = 0
        #: Levels kept each side, from the last snapshot (None before one).
        self.depth: Optional[int] = None
        #: True while the last checksum matched and nothing was lost since.
        self.valid = False
        self.verified = 0
        self.mismatches = 0
        self.snapshots = 0
        #: Delta seq jumps without a gap marker.
        self.jumps = 0
        #: Gap markers, resets and other invalidations of a valid book.
        self.invalidations = 0
        self.malformed = 0
        #: Why the book was last dropped, in words ("" while never).
        self.last_problem = ""
        self._bids = _Side(desc=True)
        self._asks = _Side(desc=False)

    def __repr__(self) -> str:
        return (f"OrderBook({self.topic!r}, seq={self.seq}, valid={self.valid}, best_bid={self.best_bid}, "
                f"best_ask={self.best_ask})")

    @property
    def checksum_ok(self) -> bool:
        """True while the book is held and its last checksum matched (same as `valid`)."""
        return self.valid

    @property
    def bids(self) -> list[Level]:
        """Every bid, best (highest) first."""
        return self.top_bids(None)

    @property
    def asks(self) -> list[Level]:
        """Every ask, best (lowest) first."""
        return self.top_asks(None)

    def top_bids(self, n: Optional[int] = 10) -> list[Level]:
        """The n best bids (all with None)."""
        return [Level(p, s) for p, s, _, _ in self._bids.top(n)]

    def top_asks(self, n: Optional[int] = 10) -> list[Level]:
        """The n best asks (all with None)."""
        return [Level(p, s) for p, s, _, _ in self._asks.top(n)]

    def top(self, n: int = 10) -> tuple[list[Level], list[Level]]:
        """(the n best bids, the n best asks)."""
        return self.top_bids(n), self.top_asks(n)

    @property
    def best_bid(self) -> Optional[Level]:
        """The highest bid, if any."""
        top = self._bids.top(1)
        return Level(top[0][0], top[0][1]) if top else None

    @property
    def best_ask(self) -> Optional[Level]:
        """The lowest ask, if any."""
        top = self._asks.top(1)
        return Level(top[0][0], top[0][1]) if top else None

    @property
    def spread(self) -> Optional[Decimal]:
        """Best ask minus best bid, exact; None while a side is empty."""
        b, a = self.best_bid, self.best_ask
        return _EXACT.subtract(a.price, b.price) if a and b else None

    @property
    def mid(self) -> Optional[Decimal]:
        """(best bid + best ask) / 2, exact; None while a side is empty."""
        b, a = self.best_bid, self.best_ask
        return _EXACT.divide(_EXACT.add(a.price, b.price), 2) if a and b else None

    def __len__(self) -> int:
        """Levels held on both sides."""
        return len(self._bids.keys) + len(self._asks.keys)

    def checksum_input(self) -> str:
        """The string the checksum is taken of: top 10 asks then top 10 bids, price then size, digits only."""
        parts = []
        for side in (self._asks, self._bids):
            for _, _, p, s in side.top(CHECKSUM_LEVELS):
                parts.append(checksum_digits(p))
                parts.append(checksum_digits(s))
        return "".join(parts)

    def checksum(self) -> int:
        """Kraken v2 checksum (CRC-32, unsigned) of the book as it is now."""
        return zlib.crc32(self.checksum_input().encode("ascii"))

    def invalidate(self, why: str) -> None:
        """Drops the book (a gap marker, a reset): deltas are ignored until the next snapshot."""
        if self.valid:
            self.invalidations += 1
        self.valid = False
        self.last_problem = why

    def apply(self, msg: Mapping[str, Any]) -> str:
        """Applies one `book` message in stream order and verifies its checksum. Returns "ok" (verified), "mismatch"
        (applied, checksum differs: book dropped, resubscribe), "jump" (a delta's seq skipped ahead without a gap
        marker: dropped, resubscribe), "malformed" (dropped, resubscribe) or "ignored" (a delta while no valid book is
        held, or one already applied)."""
        seq = int(msg.get("seq", 0))
        snapshot = msg.get("snapshot") is True
        if not snapshot:
            if not self.valid or seq <= self.seq:
                return "ignored"
            if seq != self.seq + 1:
                self.jumps += 1
                self.valid = False
                self.last_problem = f"seq {self.seq} -> {seq} without a gap marker"
                return "jump"
        try:
            bids = _parse_levels(msg.get("bids"), "bids")
            asks = _parse_levels(msg.get("asks"), "asks")
            if snapshot and any(lv[1] == 0 for lv in bids + asks):
                raise MalformedBook("zero size in a snapshot")
        except MalformedBook as e:
            self.malformed += 1
            self.valid = False
            self.last_problem = f"malformed book message at seq {seq}: {e}"
            return "malformed"
        if snapshot:
            depth = msg.get("depth")
            if isinstance(depth, int) and depth > 0:
                self.depth = depth
            self._bids.clear()
            self._asks.clear()
            self.snapshots += 1
        for lv in bids:
            self._bids.set(*lv)
        for lv in asks:
            self._asks.set(*lv)
        if self.depth is not None:
            self._bids.trim(self.depth)
            self._asks.trim(self.depth)
        self.seq = seq
        self.ts = int(msg.get("ts", 0))
        got = self.checksum()
        if got == msg.get("checksum"):
            self.verified += 1
            self.valid = True
            return "ok"
        self.mismatches += 1
        self.valid = False
        self.last_problem = f"checksum mismatch at seq {seq}: server {msg.get('checksum')}, local {got}"
        return "mismatch"
