"""The bounded event queue of a subscription and its overflow policy. Pure logic, no asyncio.

A consumer that reads slower than the server sends must not grow the client's memory without bound, and must not
lose data without being told. So a subscription's queue holds at most `maxsize` data items (ticks, trades, bars,
book messages, heartbeats); when one more arrives, the oldest queued data item is dropped and, for an item with a
seq, a `Gap(topic, seq, seq, "client_overflow")` takes its place. The gaps of one topic that end up next to each
other (nothing of that topic between them, seqs contiguous) are merged, so however long the consumer stalls it gets,
per topic, one gap naming exactly the seqs it lost, then the newest `maxsize` items. A heartbeat dropped this way
leaves no gap: it is a status ("no tick for a while") that whatever follows it supersedes.

Events that are not data (gaps the server announced, recoveries, resets, stale feeds, errors) are never dropped; they
are few (at most one per data item, one per topic, or one per reconnect), and a server gap merged with a dropped
tick's gap is announced as part of that `client_overflow` gap.
"""

from __future__ import annotations

import collections
from typing import Any, Generic, Optional, TypeVar

from .events import Bar, BookMessage, Gap, Heartbeat, Tick, Trade

#: Queued items the policy may drop: market data (their seqs become a gap) and heartbeats (superseded).
DATA = (Tick, Trade, Bar, BookMessage, Heartbeat)
#: The reason of a gap this client made because its consumer fell behind.
CLIENT_OVERFLOW = "client_overflow"

T = TypeVar("T")


class OverflowQueue(Generic[T]):
    """FIFO of events, bounded to `maxsize` data items; see the module docstring for what overflow does.

    Items live in two parts, in order: `_head`, events older than every data item still queued (where the gaps of
    dropped items pile up and merge), then `_rest`, which starts with the oldest data item once anything was dropped.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        #: Data items dropped so far (ticks, trades, bars, book messages and heartbeats).
        self.dropped = 0
        #: Of those, heartbeats (they leave no gap).
        self.dropped_heartbeats = 0
        # Each head entry is a one-item list so a merge can replace the gap in place.
        self._head: collections.deque[list[Any]] = collections.deque()
        # Per topic, its last entry in _head: the only one a newer gap of that topic may merge into.
        self._head_last: dict[str, list[Any]] = {}
        self._rest: collections.deque[Any] = collections.deque()
        self._data = 0

    def __len__(self) -> int:
        return len(self._head) + len(self._rest)

    @property
    def data_items(self) -> int:
        """Data items queued now (at most maxsize)."""
        return self._data

    def push(self, item: T) -> None:
        """Queues item; when it makes maxsize + 1 data items, the oldest is dropped."""
        self._rest.append(item)
        if isinstance(item, DATA):
            self._data += 1
            if self._data > self.maxsize:
                self._drop_oldest()

    def pop(self) -> Optional[T]:
        """The oldest event (gaps of dropped items in their place), or None when empty."""
        if self._head:
            entry = self._head.popleft()
            item = entry[0]
            topic = getattr(item, "topic", None)
            if topic is not None and self._head_last.get(topic) is entry:
                del self._head_last[topic]
            return item  # type: ignore[no-any-return]
        if not self._rest:
            return None
        item = self._rest.popleft()
        if isinstance(item, DATA):
            self._data -= 1
        return item  # type: ignore[no-any-return]

    def clear(self) -> int:
        """Drops everything queued; returns how many items that was."""
        n = len(self)
        self._head.clear()
        self._head_last.clear()
        self._rest.clear()
        self._data = 0
        return n

    def _drop_oldest(self) -> None:
        # Whatever precedes the oldest data item is older than it: it moves to the head, in order.
        while not isinstance(self._rest[0], DATA):
            self._to_head(self._rest.popleft())
        item = self._rest.popleft()
        self._data -= 1
        self.dropped += 1
        if isinstance(item, Heartbeat):
            self.dropped_heartbeats += 1
            return
        self._to_head(Gap(item.topic, item.seq, item.seq, CLIENT_OVERFLOW))

    def _to_head(self, item: Any) -> None:
        topic = getattr(item, "topic", None)
        if isinstance(item, Gap):
            last = self._head_last.get(item.topic)
            merged = merge_gaps(last[0], item) if last is not None and isinstance(last[0], Gap) else None
            if last is not None and merged is not None:
                last[0] = merged
                return
        entry = [item]
        self._head.append(entry)
        if isinstance(topic, str):
            self._head_last[topic] = entry


def merge_gaps(first: Gap, then: Gap) -> Optional[Gap]:
    """One gap covering both when `then` starts right after `first` (same topic), else None. Its reason stays when
    both have the same, else it is the client's (a consumer that fell behind never read the first announcement)."""
    if first.topic != then.topic or first.to_seq + 1 != then.from_seq:
        return None
    reason = first.reason if first.reason == then.reason else CLIENT_OVERFLOW
    return Gap(first.topic, first.from_seq, then.to_seq, reason)
