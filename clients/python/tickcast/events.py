"""Typed events a tickcast client delivers (see docs/protocol.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Optional, Union


@dataclass(frozen=True)
class Tick:
    """One tick of a topic; prices stay as the server sent them (numbers, or strings if the feed sends strings)."""

    topic: str
    seq: int
    ts: int
    raw: dict[str, Any] = field(repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the tick (bid, ask, last, size, ...) or default."""
        return self.raw.get(key, default)


def _dec(v: Any) -> Decimal:
    """A wire decimal string as an exact Decimal (NaN when it is not one, so one bad field cannot stop the client)."""
    try:
        return Decimal(v) if isinstance(v, str) else Decimal(str(v))
    except (InvalidOperation, ValueError, TypeError):
        return Decimal("NaN")


@dataclass(frozen=True)
class Trade:
    """One trade of `trade.<SYM>` (never conflated: a drop comes as a Gap with reason 'dropped'). price and size
    are exact Decimals of the feed's digits; side is the taker's ('buy' or 'sell'); ts the execution time (µs)."""

    topic: str
    seq: int
    ts: int
    price: Decimal
    size: Decimal
    side: str
    trade_id: str
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_msg(cls, msg: dict[str, Any]) -> "Trade":
        return cls(str(msg.get("topic", "")), int(msg.get("seq", 0)), int(msg.get("ts", 0)), _dec(msg.get("price")),
                   _dec(msg.get("size")), str(msg.get("side", "")), str(msg.get("trade_id", "")), msg)


@dataclass(frozen=True)
class Bar:
    """One candle of `bar.<interval>.<SYM>`: while `closed` is False it is re-sent as it changes (same `start`, the
    later one replaces it), then once with closed=True. Prices and volume are exact Decimals; start is unix µs."""

    topic: str
    seq: int
    start: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    vwap: Decimal
    trades: int
    closed: bool
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_msg(cls, msg: dict[str, Any]) -> "Bar":
        return cls(str(msg.get("topic", "")), int(msg.get("seq", 0)), int(msg.get("start", 0)),
                   _dec(msg.get("open")), _dec(msg.get("high")), _dec(msg.get("low")), _dec(msg.get("close")),
                   _dec(msg.get("volume")), _dec(msg.get("vwap")), int(msg.get("trades", 0)),
                   bool(msg.get("closed", False)), msg)


@dataclass(frozen=True)
class BookMessage:
    """One `book` message as it came, for plain `subscribe()` users (`Client.book()` keeps the book itself):
    a snapshot or a delta of [price, size] string pairs, and the checksum of the book after it."""

    topic: str
    seq: int
    ts: int
    snapshot: bool
    bids: list[list[str]]
    asks: list[list[str]]
    checksum: int
    depth: Optional[int]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_msg(cls, msg: dict[str, Any]) -> "BookMessage":
        return cls(str(msg.get("topic", "")), int(msg.get("seq", 0)), int(msg.get("ts", 0)),
                   msg.get("snapshot") is True, list(msg.get("bids") or []), list(msg.get("asks") or []),
                   int(msg.get("checksum", 0)), msg.get("depth"), msg)


@dataclass(frozen=True)
class BookInvalid:
    """A `Client.book()` subscription dropped its book: reason 'mismatch' (checksum), 'jump' (a delta seq jump
    without a gap marker), 'malformed', 'gap' (a server gap marker: its snapshot follows), 'reset' (the seq space
    started over), 'stalled' (a delta while waiting for a snapshot none announced) or 'client_overflow' (the events
    queue was full: its events were dropped). resubscribe: whether it asked for a fresh snapshot (else the server
    sends one by itself)."""

    topic: str
    reason: str
    detail: str
    seq: int
    resubscribe: bool


@dataclass(frozen=True)
class Reset:
    """The topic's seq space started over upstream with this epoch (its next seq is a fresh start)."""

    topic: str
    epoch: str


@dataclass(frozen=True)
class Gap:
    """Seqs from..=to of topic will not arrive; reason is the server's (conflated, dropped, upstream, resync),
    'client_overflow' when this client's own queue was full and dropped them (its consumer fell behind; such a gap
    may take in a server gap the consumer never got to), or 'unannounced' when the client saw a seq jump without a
    marker (a server bug)."""

    topic: str
    from_seq: int
    to_seq: int
    reason: str

    @property
    def announced(self) -> bool:
        """True when the server sent a marker for this gap."""
        return self.reason != "unannounced"


@dataclass(frozen=True)
class Heartbeat:
    """The topic had no tick for heartbeat_ms; seq/ts are its last tick's."""

    topic: str
    seq: int
    ts: int
    feed_up: bool


@dataclass(frozen=True)
class Stale:
    """A heartbeat said feed_up: false: the feed that published topic is gone."""

    topic: str
    last_seq: int


@dataclass(frozen=True)
class Recovery:
    """Outcome of resubscribing with `since` after a reconnect: recovered, or not and why
    (too_old, epoch_changed, no_history)."""

    topic: str
    recovered: bool
    reason: Optional[str]


@dataclass(frozen=True)
class StateChange:
    """Connection state: 'connecting', 'connected' or 'disconnected' (with close code and reason)."""

    state: str
    code: Optional[int] = None
    reason: str = ""


#: The market data a subscription's plain iteration yields.
Data = Union[Tick, Trade, Bar, BookMessage]
#: Everything a subscription's event stream can yield.
Event = Union[Tick, Trade, Bar, BookMessage, Gap, Heartbeat, Stale, Recovery, Reset]
