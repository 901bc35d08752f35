"""Typed events a tickcast client delivers (see docs/protocol.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Gap:
    """Seqs from..=to of topic will not arrive; reason is the server's (conflated, dropped, upstream) or
    'unannounced' when the client saw a seq jump without a marker (a server bug)."""

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


#: Everything a subscription's event stream can yield.
Event = Union[Tick, Gap, Heartbeat, Stale, Recovery]
