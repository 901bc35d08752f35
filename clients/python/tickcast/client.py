"""The asyncio tickcast client: one WebSocket, reconnect with backoff, recovery with `since`."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import random
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Optional, Union

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .book import OrderBook
from .errors import ClientClosed, ConnectionLost, ServerError, TickcastError, Unauthorized
from .events import (
    Bar, BookInvalid, BookMessage, Data, Event, Gap, Heartbeat, Recovery, Reset, Stale, StateChange, Tick, Trade,
)
from .overflow import CLIENT_OVERFLOW, OverflowQueue
from .wildcard import is_pattern, pattern_for

#: How long the client gathers wildcard topics of unknown epoch before it asks for their epochs in one subscribe.
LEARN_BATCH_S = 0.05

#: A token, or a function (sync or async) called before every (re)connect that returns one.
TokenSource = Union[str, Callable[[], Union[str, Awaitable[str]]], None]


def backoff_delay(attempt: int, min_s: float, max_s: float, rnd: float) -> float:
    """Full-jitter exponential backoff: a uniform share (rnd in [0, 1)) of min(max, min * 2^attempt)."""
    cap = min(max_s, min_s * (2.0 ** min(attempt, 32)))
    return max(0.0, rnd) * cap


def unannounced_gap(last_seq: Optional[int], seq: int) -> Optional[tuple[int, int]]:
    """The seqs skipped between the last processed seq and this tick's, when no marker named them."""
    if last_seq is None or seq <= last_seq + 1:
        return None
    return (last_seq + 1, seq - 1)


def may_retry_refused(refusals: int, token_provider: bool) -> bool:
    """Whether to reconnect after `refusals` auth refusals in a row: a fixed credential (or none) never succeeds
    again; a token provider gets one more try with a fresh token (it may have handed out one that just expired)."""
    return token_provider and refusals < 2


@dataclass
class _TopicState:
    """What the client knows of one subscribed topic: its epoch and last processed seq; for a topic a wildcard
    brought (the app did not name it), the pattern, and whether the client named it on this connection to learn its
    epoch (the server then holds it as named: the pattern's unsubscribe must name it too)."""

    epoch: Optional[str] = None
    seq: Optional[int] = None
    stale: bool = False
    pattern: Optional[str] = None
    named: bool = False


_END = object()


class Subscription:
    """Topics subscribed together. `await` it for the ack; `async for msg in sub` yields the market data (Tick,
    Trade, Bar, BookMessage); `async for ev in sub.events()` yields every event (those, and Gap, Heartbeat, Stale,
    Recovery, Reset).

    Memory is bounded: at most `max_queue` data items wait for the consumer. When one more arrives the oldest is
    dropped and a `Gap(topic, from, to, "client_overflow")` naming exactly the seqs lost takes its place (one per
    topic however long the stall; see tickcast.overflow). `overflows` counts the items dropped."""

    def __init__(self, client: "Client", topics: list[str], options: dict[str, Any], max_queue: int) -> None:
        self.client = client
        self.topics = topics
        self.options = options
        self.max_queue = max_queue
        self._queue: OverflowQueue[Any] = OverflowQueue(max_queue)
        self._wake = asyncio.Event()
        self._started: Optional[asyncio.Task[None]] = None

    def _start(self) -> "asyncio.Task[None]":
        if self._started is None:
            self._started = asyncio.ensure_future(self.client._subscribe(self))
        return self._started

    def __await__(self) -> Any:
        yield from self._start().__await__()
        return self

    @property
    def overflows(self) -> int:
        """Data items (ticks, trades, bars, book messages, heartbeats) dropped because the queue was full."""
        return self._queue.dropped

    def _push(self, item: Any) -> None:
        self._queue.push(item)
        self._wake.set()

    async def events(self) -> AsyncIterator[Event]:
        """Every event of these topics, in the order the server sent them (a full queue's gaps in place of what it
        dropped)."""
        await self._start()
        while True:
            item = self._queue.pop()
            if item is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def __aiter__(self) -> AsyncIterator[Data]:
        return self._data()

    async def _data(self) -> AsyncIterator[Data]:
        async for ev in self.events():
            if isinstance(ev, (Tick, Trade, Bar, BookMessage)):
                yield ev

    def _since_ok(self, topic: str) -> bool:
        """Whether a resubscribe may resume topic with `since`."""
        return True

    async def unsubscribe(self) -> None:
        """Leaves these topics; no tick of them follows."""
        await self.client._unsubscribe(self)


class BookSubscription(Subscription):
    """One `book.<SYM>` topic whose order book the client keeps (`Client.book()`): `await` it for the ack;
    `async for book in sub` yields the `OrderBook` (the same object, current when yielded) after it changed and
    verified, skipping intermediate versions a slow loop body missed; `sub.events()` yields the book the same way
    and, in order, BookInvalid, Gap, Heartbeat, Stale, Recovery and Reset events. On a checksum mismatch, a seq
    jump or a malformed message the book is dropped and the topic resubscribed for a fresh snapshot (at most once
    per `resubscribe_min` seconds); on a gap marker it is dropped until the snapshot the server sends next.

    Memory is bounded: book messages are applied as they come (the book is the state, never a backlog); the other
    events wait for the consumer, at most `max_queue` of them. When one more comes, the book resyncs rather than
    leave its consumer with a hole: the queued events are dropped, the book too (`BookInvalid` reason
    "client_overflow"), and the topic is resubscribed for a fresh snapshot. `overflows` counts these resyncs."""

    def __init__(self, client: "Client", topic: str, options: dict[str, Any], resubscribe_min: float = 1.0,
                 max_queue: int = 10_000) -> None:
        super().__init__(client, [topic], options, max_queue)
        self.topic = topic
        #: The book (the same object for the subscription's life).
        self.book = OrderBook(topic)
        #: Resubscribes sent for a fresh snapshot.
        self.resubscribes = 0
        self.resubscribe_min = resubscribe_min
        self._resyncs = 0
        self._changed = False
        self._in_flight = False
        self._timer: Optional[asyncio.TimerHandle] = None
        self._last_resubscribe = float("-inf")

    @property
    def checksum_ok(self) -> bool:
        """True while the book is held and its last checksum matched."""
        return self.book.valid

    @property
    def mismatches(self) -> int:
        """Checksum mismatches so far."""
        return self.book.mismatches

    @property
    def verified(self) -> int:
        """Book messages verified so far."""
        return self.book.verified

    @property
    def overflows(self) -> int:
        """Times the event queue was full and the book resynced."""
        return self._resyncs

    def _start(self) -> "asyncio.Task[None]":
        if self._started is None:
            self._started = asyncio.ensure_future(self.client._subscribe_book(self))
        return self._started

    def _since_ok(self, topic: str) -> bool:
        return self.book.valid  # a dropped book gains nothing from the deltas after its seq: take the snapshot

    def _push(self, item: Any) -> None:
        if item is _END:
            self._cancel_timer()
        elif len(self._queue) >= self.max_queue:
            self._overflowed()
        self._queue.push(item)
        self._wake.set()

    def _overflowed(self) -> None:
        # Errors and the end are kept: they say why the iterator stops, and there is at most one of each.
        kept = []
        lost = 0
        while (item := self._queue.pop()) is not None:
            if item is _END or isinstance(item, BaseException):
                kept.append(item)
            else:
                lost += 1
        for item in kept:
            self._queue.push(item)
        self._resyncs += 1
        self.book.invalidate(f"{lost} events dropped: the consumer fell behind; resubscribing for a snapshot")
        self._changed = False
        # Queued directly, not through _push: it must not count against the queue it is clearing.
        self._queue.push(BookInvalid(self.topic, CLIENT_OVERFLOW, self.book.last_problem, self.book.seq, True))
        self._resubscribe()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def events(self) -> AsyncIterator[Any]:
        """The book after each verified change (coalesced) and every other event of the topic, in order."""
        await self._start()
        while True:
            item = self._queue.pop()
            if item is not None:
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
            elif self._changed:
                self._changed = False
                if self.book.valid:  # a later message may have dropped it since it changed
                    yield self.book
            else:
                self._wake.clear()
                await self._wake.wait()

    def __aiter__(self) -> AsyncIterator[OrderBook]:  # type: ignore[override]
        return self._books()

    async def _books(self) -> AsyncIterator[OrderBook]:
        async for ev in self.events():
            if isinstance(ev, OrderBook):
                yield ev

    # --- called by the client's reader, in stream order ----------------------------------------

    def _on_book(self, msg: dict[str, Any]) -> None:
        seq = int(msg.get("seq", 0))
        out = self.book.apply(msg)
        if out == "ok":
            self._changed = True
            self._wake.set()
        elif out == "ignored":
            # A delta while no book is held and no snapshot is on its way: none will come by itself.
            subscribing = self._started is None or not self._started.done()
            if not self.book.valid and not subscribing and not self._in_flight and self._timer is None:
                self._dropped("stalled", "a delta came while waiting for a snapshot", seq, True)
        else:
            self._dropped(out, self.book.last_problem, seq, True)

    def _on_gap(self, from_seq: int, to_seq: int, reason: str) -> None:
        self.book.invalidate(f"gap {from_seq}-{to_seq} ({reason}): waiting for a snapshot")
        self._dropped("gap", self.book.last_problem, to_seq, False)

    def _on_reset(self, epoch: str) -> None:
        self.book.invalidate(f"seq space restarted (epoch {epoch})")
        self._dropped("reset", self.book.last_problem, self.book.seq, True)

    def _dropped(self, reason: str, detail: str, seq: int, resubscribe: bool) -> None:
        self._changed = False
        self._push(BookInvalid(self.topic, reason, detail, seq, resubscribe))
        if resubscribe:
            self._resubscribe()

    def _resubscribe(self) -> None:
        if self._in_flight or self._timer is not None or self.client._closed:
            return
        loop = asyncio.get_running_loop()
        wait = self._last_resubscribe + self.resubscribe_min - loop.time()
        if wait > 0:
            self._timer = loop.call_later(wait, self._timer_fired)
            return
        self._last_resubscribe = loop.time()
        self.resubscribes += 1
        self._in_flight = True
        task = asyncio.ensure_future(self.client._fresh_subscribe(self))
        task.add_done_callback(self._resubscribed)

    def _timer_fired(self) -> None:
        self._timer = None
        if not self.book.valid:
            self._resubscribe()

    def _resubscribed(self, task: "asyncio.Task[None]") -> None:
        self._in_flight = False
        if task.cancelled():
            return
        err = task.exception()
        if isinstance(err, ServerError):
            self._push(err)
        # Connection lost or closed: a reconnect subscribes without since (the book is not valid): a snapshot comes.


class Client:
    """A tickcast connection that reconnects with full-jitter backoff and resubscribes with `since`.

    Use as `async with Client(url) as c:`. `on_state` is called with a StateChange on every transition.
    `max_queue`: the default bound of each subscription's queue (see Subscription). A refused credential stops the
    client instead of retrying forever: `connect()`, requests and every subscription's iterator raise Unauthorized
    (after one retry with a fresh token when `token` is a function)."""

    def __init__(
        self,
        url: str = "ws://127.0.0.1:8080/ws",
        *,
        token: TokenSource = None,
        reconnect_min: float = 0.1,
        reconnect_max: float = 10.0,
        heartbeat_ms: Optional[int] = None,
        request_timeout: float = 10.0,
        on_state: Optional[Callable[[StateChange], None]] = None,
        max_queue: int = 10_000,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.url = url
        self.token = token
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.heartbeat_ms = heartbeat_ms
        self.request_timeout = request_timeout
        self.on_state = on_state
        self.max_queue = max_queue
        self.state = "disconnected"
        self.states: list[StateChange] = []
        self._ws: Optional[ClientConnection] = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._topics: dict[str, _TopicState] = {}
        self._subs: dict[str, Subscription] = {}
        # Wildcard topics whose epoch is unknown (they started after the pattern's ack), asked for in one batch.
        self._learning: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()  # requests nobody awaits, kept from the garbage collector
        self._connected = asyncio.Event()
        self._closed = False
        self._runner: Optional[asyncio.Task[None]] = None
        # Why the connection loop stopped for good (a refused credential), and the event that says it did.
        self._fatal: Optional[TickcastError] = None
        self._stopped = asyncio.Event()

    # --- lifecycle -------------------------------------------------------------------------------

    async def connect(self) -> "Client":
        """Starts the connection loop and waits until the first connection is open; raises Unauthorized when the
        server refuses the credential."""
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())
        waiter = asyncio.ensure_future(self._connected.wait())
        done, _ = await asyncio.wait({waiter, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            self._runner.result()
            if self._fatal is not None:
                raise self._fatal
        return self

    async def close(self) -> None:
        """Closes the connection for good and ends every subscription's iterator."""
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except (asyncio.CancelledError, Exception):
                pass
        self._fail_pending(ClientClosed("client closed"))
        for sub in set(self._subs.values()):
            sub._push(_END)

    async def __aenter__(self) -> "Client":
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _set_state(self, change: StateChange) -> None:
        self.state = change.state
        self.states.append(change)
        if self.on_state is not None:
            self.on_state(change)

    async def _token(self) -> Optional[str]:
        tok = self.token
        if tok is None or isinstance(tok, str):
            return tok
        got = tok()
        if inspect.isawaitable(got):
            got = await got
        return got

    async def _run(self) -> None:
        attempt = 0
        refusals = 0  # auth refusals since the last accepted handshake
        while not self._closed:
            self._set_state(StateChange("connecting"))
            try:
                tok = await self._token()
                headers = {"Authorization": f"Bearer {tok}"} if tok else None
                ws = await connect(self.url, additional_headers=headers, max_size=None, open_timeout=10)
            except Exception as e:  # any failure retries, but a refused credential
                self._set_state(StateChange("disconnected", None, str(e)))
                refused = (Unauthorized.from_handshake(e.response.status_code, e.response.body)
                           if isinstance(e, InvalidStatus) else None)
                if refused is not None:
                    refusals += 1
                    if not may_retry_refused(refusals, callable(self.token)):
                        self._stop(refused)
                        return
                    continue  # at once: the provider's fresh token is the point, not a wait
                await asyncio.sleep(backoff_delay(attempt, self.reconnect_min, self.reconnect_max, random.random()))
                attempt += 1
                continue
            attempt = 0
            refusals = 0
            self._ws = ws
            self._set_state(StateChange("connected"))
            self._connected.set()
            resub = asyncio.ensure_future(self._resubscribe_all())
            try:
                async for raw in ws:
                    if isinstance(raw, str):
                        self._handle(json.loads(raw))
            except ConnectionClosed:
                pass
            finally:
                resub.cancel()
                self._ws = None
                self._connected.clear()
                self._fail_pending(ConnectionLost("connection closed"))
            self._set_state(StateChange("disconnected", ws.close_code, ws.close_reason or ""))
            if self._closed:
                return
            refused = Unauthorized.from_close(ws.close_code, ws.close_reason or "")
            if refused is not None:
                refusals += 1
                if not may_retry_refused(refusals, callable(self.token)):
                    self._stop(refused)
                    return
            await asyncio.sleep(backoff_delay(attempt, self.reconnect_min, self.reconnect_max, random.random()))
            attempt += 1

    def _stop(self, err: TickcastError) -> None:
        """Ends the connection loop for good: connect(), requests and every subscription's iterator raise err."""
        self._fatal = err
        self._stopped.set()
        self._fail_pending(err)
        for sub in set(self._subs.values()):
            sub._push(err)

    async def _wait_connected(self) -> None:
        """Until a connection is open, or raises why there will be none."""
        if not self._connected.is_set() and self._fatal is None:
            waits = {asyncio.ensure_future(self._connected.wait()), asyncio.ensure_future(self._stopped.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        if self._fatal is not None:
            raise self._fatal

    def _fail_pending(self, err: Exception) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
                # Whoever awaits it still gets err; a request whose task is gone (a book's resubscribe cancelled
                # at shutdown) must not log "Future exception was never retrieved".
                fut.exception()
        self._pending.clear()

    # --- requests --------------------------------------------------------------------------------

    async def _request(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self._closed:
            raise ClientClosed("client closed")
        await asyncio.wait_for(self._wait_connected(), self.request_timeout)
        ws = self._ws
        if ws is None:
            raise ConnectionLost("not connected")
        rid = next(self._ids)
        msg["id"] = rid
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await ws.send(json.dumps(msg))
            reply = await asyncio.wait_for(fut, self.request_timeout)
        finally:
            self._pending.pop(rid, None)
        if reply.get("type") == "error":
            raise ServerError(reply.get("code", ""), reply.get("message", ""), reply.get("field"), rid)
        return reply

    def subscribe(
        self,
        *topics: str,
        heartbeat_ms: Optional[int] = None,
        throttle_ms: Optional[int] = None,
        max_queue: Optional[int] = None,
        **options: Any,
    ) -> Subscription:
        """Subscribes to topics (patterns too, where the server supports wildcards); `await` the result for
        the ack or iterate it. Extra keyword options are sent as subscribe fields as they are. `max_queue`
        overrides the client's bound of the subscription's queue."""
        opts = dict(options)
        hb = heartbeat_ms if heartbeat_ms is not None else self.heartbeat_ms
        if hb is not None:
            opts["heartbeat_ms"] = hb
        if throttle_ms is not None:
            opts["throttle_ms"] = throttle_ms
        return Subscription(self, list(topics), opts, self.max_queue if max_queue is None else max_queue)

    def _subscribe_msg(self, sub: Subscription) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": "subscribe", "topics": sub.topics, **sub.options}
        since = {
            t: {"seq": st.seq, "epoch": st.epoch}
            for t in sub.topics
            if (st := self._topics.get(t)) is not None and st.seq is not None and st.epoch is not None
            and sub._since_ok(t)
        }
        since.update(self._matched_since(sub))
        if since:
            msg["since"] = since
        return msg

    def _matched_since(self, sub: Subscription) -> dict[str, dict[str, Any]]:
        """`since` entries for the topics the patterns of sub brought, as the server lets a resumed wildcard name
        them. One whose epoch the client never learnt cannot resume: it starts over from its snapshot, and says so."""
        since: dict[str, dict[str, Any]] = {}
        for t, st in self._topics.items():
            if st.pattern is None or st.pattern not in sub.topics or st.seq is None:
                continue
            if st.epoch is None:
                st.seq = None
                self._emit(t, Recovery(t, False, "unknown_epoch"))
            else:
                since[t] = {"seq": st.seq, "epoch": st.epoch}
        return since

    def _matched_gone(self, msg: dict[str, Any], reply: dict[str, Any]) -> None:
        """Resumed wildcard topics the server no longer has (after a restart, before a feed publishes them again):
        the ack names neither their epoch nor an outcome; they start over with their first tick."""
        epochs = reply.get("epochs") or {}
        recovery = reply.get("recovery") or {}
        for t in msg.get("since", {}):
            st = self._topics.get(t)
            if st is None or st.pattern is None or t in epochs or t in recovery:
                continue
            st.seq = None
            st.epoch = None
            self._emit(t, Recovery(t, False, "no_history"))

    async def _subscribe(self, sub: Subscription) -> None:
        for t in sub.topics:
            self._subs[t] = sub
            # A topic a pattern brought, now named: it goes on from its position and no longer ends with the pattern.
            self._topics.setdefault(t, _TopicState()).pattern = None
        try:
            await self._request(self._subscribe_msg(sub))
        except ServerError:
            for t in sub.topics:
                if self._subs.get(t) is sub:
                    del self._subs[t]
                    self._topics.pop(t, None)
            raise

    def book(
        self,
        topic: str,
        *,
        heartbeat_ms: Optional[int] = None,
        resubscribe_min: float = 1.0,
        max_queue: Optional[int] = None,
        **options: Any,
    ) -> BookSubscription:
        """Subscribes to one `book.<SYM>` topic and keeps its order book: the snapshot, then deltas applied in seq
        order, levels keyed by exact decimal value, each side trimmed to the snapshot's depth, the Kraken checksum
        verified after every message. `async for book in client.book("book.AAPL")` yields the OrderBook after each
        verified change; see BookSubscription for what happens on a mismatch, a seq jump or a gap. After a
        reconnect a held book resumes with `since`, else it takes a fresh snapshot."""
        opts = dict(options)
        hb = heartbeat_ms if heartbeat_ms is not None else self.heartbeat_ms
        if hb is not None:
            opts["heartbeat_ms"] = hb
        return BookSubscription(self, topic, opts, resubscribe_min,
                                self.max_queue if max_queue is None else max_queue)

    async def _subscribe_book(self, sub: BookSubscription) -> None:
        held = sub.topic in self._subs  # subscribed already: only a new subscribe brings a snapshot
        if not held:
            await self._subscribe(sub)
            return
        old = self._subs[sub.topic]
        self._subs[sub.topic] = sub
        st = self._topics.setdefault(sub.topic, _TopicState())
        pattern, st.pattern = st.pattern, None  # named now: a pattern's unsubscribe no longer ends it
        try:
            await self._fresh_subscribe(sub)
        except ServerError:
            self._subs[sub.topic] = old
            st.pattern = pattern
            raise

    async def _fresh_subscribe(self, sub: Subscription) -> None:
        """Unsubscribes and subscribes again without `since`: the server sends the snapshots."""
        await self._request({"op": "unsubscribe", "topics": list(sub.topics)})
        for t in sub.topics:
            st = self._topics.get(t)
            if st is not None:
                st.seq = None  # the snapshot is a fresh start, not a gap
        await self._request({"op": "subscribe", "topics": list(sub.topics), **sub.options})

    async def _resubscribe_all(self) -> None:
        # A new connection holds no topic the client named to learn an epoch: only the patterns bring them now.
        self._learning.clear()
        for st in self._topics.values():
            st.named = False
        for sub in list(dict.fromkeys(self._subs.values())):
            if sub._started is None or not sub._started.done():
                continue  # its first subscribe is still under way and sends itself
            try:
                msg = self._subscribe_msg(sub)
                self._matched_gone(msg, await self._request(msg))
            except ServerError as e:
                sub._push(e)
            except ConnectionLost:
                return

    async def _unsubscribe(self, sub: Subscription) -> None:
        mine = [t for t in sub.topics if self._subs.get(t) is sub]
        if mine:
            await self._leave(mine)
        sub._push(_END)

    async def unsubscribe(self, *topics: str) -> None:
        """Leaves topics; no tick of them follows. A pattern ends with every topic only it brought."""
        await self._leave(list(topics))

    async def _leave(self, topics: list[str]) -> None:
        """Unsubscribes topics and patterns, and forgets them and what the patterns alone brought."""
        patterns = [t for t in topics if is_pattern(t)]
        kept = [e for e in self._subs if is_pattern(e) and e not in patterns]
        brought = [(t, st) for t, st in self._topics.items() if st.pattern in patterns]
        # Topics named to learn their epoch stay on the server until named in an unsubscribe too, unless another
        # pattern of the client matches them.
        named = [t for t, st in brought if st.named and pattern_for(kept, t) is None]
        await self._request({"op": "unsubscribe", "topics": topics + named})
        for t in topics:
            self._subs.pop(t, None)
            self._topics.pop(t, None)  # a pattern's topic unsubscribed by name: the server ends it
        for t, st in brought:
            st.pattern = pattern_for(kept, t)  # still brought by another pattern, or gone with this one
            if st.pattern is None:
                self._subs.pop(t, None)
                self._topics.pop(t, None)
            else:
                self._subs[t] = self._subs[st.pattern]

    def matched_topics(self, pattern: str) -> list[str]:
        """The topics a held wildcard pattern brought so far (that the app did not name itself), sorted."""
        return sorted(t for t, st in self._topics.items() if st.pattern == pattern)

    async def ping(self) -> dict[str, Any]:
        """Round trip to the server; returns the pong."""
        return await self._request({"op": "ping"})

    # --- server messages -------------------------------------------------------------------------

    def _emit(self, topic: str, ev: Event) -> None:
        sub = self._subs.get(topic)
        if sub is not None:
            sub._push(ev)

    def _state_of(self, topic: str) -> Optional[_TopicState]:
        """A topic's state: named, or brought by a held pattern (a matching topic the client has not seen yet is
        taken in: the pattern's ack names it, or it started after that ack)."""
        st = self._topics.get(topic)
        if st is not None:
            return st
        pattern = pattern_for(self._subs, topic)
        if pattern is None:
            return None
        self._subs[topic] = self._subs[pattern]
        st = self._topics[topic] = _TopicState(pattern=pattern)
        return st

    def _learn_epoch(self, topic: str, st: _TopicState) -> None:
        """A topic a pattern brought after the pattern's ack: no message names its epoch, which a resume needs.
        Subscribing it by name does (the ack's `epochs`; no snapshot for a topic already streaming): one subscribe
        for every such topic of a burst. The server then holds it as named, so the pattern's unsubscribe names it."""
        st.named = True
        self._learning.add(topic)
        if len(self._learning) == 1:
            asyncio.get_running_loop().call_later(LEARN_BATCH_S, self._send_learning)

    def _send_learning(self) -> None:
        by_sub: dict[int, tuple[Subscription, list[str]]] = {}
        for t in self._learning:
            st = self._topics.get(t)
            sub = self._subs.get(t)
            if st is not None and st.named and sub is not None:
                by_sub.setdefault(id(sub), (sub, []))[1].append(t)
        self._learning.clear()
        if self._ws is None:
            return  # the reconnect's resubscribe of the pattern names their epochs (or says they are unknown)
        for sub, topics in by_sub.values():
            task = asyncio.ensure_future(self._request({"op": "subscribe", "topics": sorted(topics), **sub.options}))
            self._tasks.add(task)
            task.add_done_callback(self._learnt)

    def _learnt(self, task: "asyncio.Task[Any]") -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # a lost connection or a refusal leaves the epoch unknown: a reconnect says so

    def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind in ("tick", "trade", "bar", "book"):
            topic = msg.get("topic", "")
            st = self._state_of(topic)
            if st is None:
                return
            if st.pattern is not None and st.epoch is None and not st.named:
                self._learn_epoch(topic, st)
            seq = int(msg.get("seq", 0))
            gap = unannounced_gap(st.seq, seq)
            if gap is not None:
                self._emit(topic, Gap(topic, gap[0], gap[1], "unannounced"))
            st.seq = seq
            st.stale = False
            sub = self._subs.get(topic)
            if kind == "tick":
                self._emit(topic, Tick(topic, seq, int(msg.get("ts", 0)), msg))
            elif kind == "trade":
                self._emit(topic, Trade.from_msg(msg))
            elif kind == "bar":
                self._emit(topic, Bar.from_msg(msg))
            elif isinstance(sub, BookSubscription):
                sub._on_book(msg)
            else:
                self._emit(topic, BookMessage.from_msg(msg))
        elif kind == "gap":
            topic = msg.get("topic", "")
            st = self._state_of(topic)
            if st is None:
                return
            to = int(msg.get("to", 0))
            from_seq = int(msg.get("from", 0))
            reason = str(msg.get("reason", ""))
            self._emit(topic, Gap(topic, from_seq, to, reason))
            st.seq = to
            sub = self._subs.get(topic)
            if isinstance(sub, BookSubscription):
                sub._on_gap(from_seq, to, reason)
        elif kind == "reset":
            topic = msg.get("topic", "")
            st = self._state_of(topic)
            if st is None:
                return
            epoch = str(msg.get("epoch", ""))
            st.epoch = epoch
            st.seq = None  # the new seq space's first tick is a fresh start
            self._emit(topic, Reset(topic, epoch))
            sub = self._subs.get(topic)
            if isinstance(sub, BookSubscription):
                sub._on_reset(epoch)
        elif kind == "heartbeat":
            topic = msg.get("topic", "")
            st = self._state_of(topic)
            if st is None:
                return
            feed_up = bool(msg.get("feed_up", True))
            self._emit(topic, Heartbeat(topic, int(msg.get("seq", 0)), int(msg.get("ts", 0)), feed_up))
            if not feed_up and not st.stale:
                st.stale = True
                self._emit(topic, Stale(topic, int(msg.get("seq", 0))))
            elif feed_up:
                st.stale = False
        elif kind == "subscribed":
            recovery = msg.get("recovery") or {}
            for topic, epoch in (msg.get("epochs") or {}).items():
                st = self._state_of(topic)  # with a pattern: the topics it matched so far
                if st is None:
                    continue
                rec = recovery.get(topic)
                if rec is not None:
                    ok = bool(rec.get("recovered"))
                    if not ok:
                        st.seq = None  # the snapshot that follows is a fresh start, not a gap
                    self._emit(topic, Recovery(topic, ok, None if ok else rec.get("reason")))
                elif st.epoch is not None and st.epoch != epoch:
                    st.seq = None  # (unknown: learnt now)
                st.epoch = epoch
            self._resolve(msg)
        elif kind in ("unsubscribed", "pong", "error"):
            self._resolve(msg)

    def _resolve(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        fut = self._pending.get(rid) if isinstance(rid, int) else None
        if fut is not None and not fut.done():
            fut.set_result(msg)
