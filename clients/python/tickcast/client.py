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
from websockets.exceptions import ConnectionClosed

from .errors import ClientClosed, ConnectionLost, ServerError
from .events import Event, Gap, Heartbeat, Recovery, Stale, StateChange, Tick

#: A token, or a function (sync or async) called before every (re)connect that returns one.
TokenSource = Union[str, Callable[[], Union[str, Awaitable[str]]], None]


def backoff_delay(attempt: int, min_s: float, max_s: float, rnd: float) -> float:
    """Full-jitter exponential backoff: a uniform share (rnd in [0, 1)) of min(max, min * 2^attempt)."""
    cap = min(max_s, min_s * (2 ** min(attempt, 32)))
    return max(0.0, rnd) * cap


def unannounced_gap(last_seq: Optional[int], seq: int) -> Optional[tuple[int, int]]:
    """The seqs skipped between the last processed seq and this tick's, when no marker named them."""
    if last_seq is None or seq <= last_seq + 1:
        return None
    return (last_seq + 1, seq - 1)


@dataclass
class _TopicState:
    """What the client knows of one subscribed topic: its epoch and last processed seq."""

    epoch: Optional[str] = None
    seq: Optional[int] = None
    stale: bool = False


_END = object()


class Subscription:
    """Topics subscribed together. `await` it for the ack; `async for tick in sub` yields ticks;
    `async for ev in sub.events()` yields every event (Tick, Gap, Heartbeat, Stale, Recovery)."""

    def __init__(self, client: "Client", topics: list[str], options: dict[str, Any]) -> None:
        self.client = client
        self.topics = topics
        self.options = options
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._started: Optional[asyncio.Task[None]] = None

    def _start(self) -> "asyncio.Task[None]":
        if self._started is None:
            self._started = asyncio.ensure_future(self.client._subscribe(self))
        return self._started

    def __await__(self) -> Any:
        yield from self._start().__await__()
        return self

    def _push(self, item: Any) -> None:
        self._queue.put_nowait(item)

    async def events(self) -> AsyncIterator[Event]:
        """Every event of these topics, in the order the server sent them."""
        await self._start()
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def __aiter__(self) -> AsyncIterator[Tick]:
        return self._ticks()

    async def _ticks(self) -> AsyncIterator[Tick]:
        async for ev in self.events():
            if isinstance(ev, Tick):
                yield ev

    async def unsubscribe(self) -> None:
        """Leaves these topics; no tick of them follows."""
        await self.client._unsubscribe(self)


class Client:
    """A tickcast connection that reconnects with full-jitter backoff and resubscribes with `since`.

    Use as `async with Client(url) as c:`. `on_state` is called with a StateChange on every transition."""

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
    ) -> None:
        self.url = url
        self.token = token
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.heartbeat_ms = heartbeat_ms
        self.request_timeout = request_timeout
        self.on_state = on_state
        self.state = "disconnected"
        self.states: list[StateChange] = []
        self._ws: Optional[ClientConnection] = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._topics: dict[str, _TopicState] = {}
        self._subs: dict[str, Subscription] = {}
        self._connected = asyncio.Event()
        self._closed = False
        self._runner: Optional[asyncio.Task[None]] = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def connect(self) -> "Client":
        """Starts the connection loop and waits until the first connection is open."""
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())
        waiter = asyncio.ensure_future(self._connected.wait())
        done, _ = await asyncio.wait({waiter, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            self._runner.result()
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
        while not self._closed:
            self._set_state(StateChange("connecting"))
            try:
                tok = await self._token()
                headers = {"Authorization": f"Bearer {tok}"} if tok else None
                ws = await connect(self.url, additional_headers=headers, max_size=None, open_timeout=10)
            except (OSError, asyncio.TimeoutError, Exception) as e:  # noqa: B014 - any failure retries
                self._set_state(StateChange("disconnected", None, str(e)))
                await asyncio.sleep(backoff_delay(attempt, self.reconnect_min, self.reconnect_max, random.random()))
                attempt += 1
                continue
            attempt = 0
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
            await asyncio.sleep(backoff_delay(attempt, self.reconnect_min, self.reconnect_max, random.random()))
            attempt += 1

    def _fail_pending(self, err: Exception) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()

    # --- requests --------------------------------------------------------------------------------

    async def _request(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self._closed:
            raise ClientClosed("client closed")
        await asyncio.wait_for(self._connected.wait(), self.request_timeout)
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
        **options: Any,
    ) -> Subscription:
        """Subscribes to topics (patterns too, where the server supports wildcards); `await` the result for
        the ack or iterate it. Extra keyword options are sent as subscribe fields as they are."""
        opts = dict(options)
        hb = heartbeat_ms if heartbeat_ms is not None else self.heartbeat_ms
        if hb is not None:
            opts["heartbeat_ms"] = hb
        if throttle_ms is not None:
            opts["throttle_ms"] = throttle_ms
        return Subscription(self, list(topics), opts)

    def _subscribe_msg(self, sub: Subscription) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": "subscribe", "topics": sub.topics, **sub.options}
        since = {
            t: {"seq": st.seq, "epoch": st.epoch}
            for t in sub.topics
            if (st := self._topics.get(t)) is not None and st.seq is not None and st.epoch is not None
        }
        if since:
            msg["since"] = since
        return msg

    async def _subscribe(self, sub: Subscription) -> None:
        for t in sub.topics:
            self._subs[t] = sub
            self._topics.setdefault(t, _TopicState())
        try:
            await self._request(self._subscribe_msg(sub))
        except ServerError:
            for t in sub.topics:
                if self._subs.get(t) is sub:
                    del self._subs[t]
                    self._topics.pop(t, None)
            raise

    async def _resubscribe_all(self) -> None:
        for sub in list(dict.fromkeys(self._subs.values())):
            if sub._started is None or not sub._started.done():
                continue  # its first subscribe is still under way and sends itself
            try:
                await self._request(self._subscribe_msg(sub))
            except ServerError as e:
                sub._push(e)
            except ConnectionLost:
                return

    async def _unsubscribe(self, sub: Subscription) -> None:
        mine = [t for t in sub.topics if self._subs.get(t) is sub]
        if mine:
            await self._request({"op": "unsubscribe", "topics": mine})
        for t in mine:
            self._subs.pop(t, None)
            self._topics.pop(t, None)
        sub._push(_END)

    async def unsubscribe(self, *topics: str) -> None:
        """Leaves topics; no tick of them follows."""
        await self._request({"op": "unsubscribe", "topics": list(topics)})
        for t in topics:
            self._subs.pop(t, None)
            self._topics.pop(t, None)

    async def ping(self) -> dict[str, Any]:
        """Round trip to the server; returns the pong."""
        return await self._request({"op": "ping"})

    # --- server messages -------------------------------------------------------------------------

    def _emit(self, topic: str, ev: Event) -> None:
        sub = self._subs.get(topic)
        if sub is not None:
            sub._push(ev)

    def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "tick":
            topic = msg.get("topic", "")
            st = self._topics.get(topic)
            if st is None:
                return
            seq = int(msg.get("seq", 0))
            gap = unannounced_gap(st.seq, seq)
            if gap is not None:
                self._emit(topic, Gap(topic, gap[0], gap[1], "unannounced"))
            st.seq = seq
            st.stale = False
            self._emit(topic, Tick(topic, seq, int(msg.get("ts", 0)), msg))
        elif kind == "gap":
            topic = msg.get("topic", "")
            st = self._topics.get(topic)
            if st is None:
                return
            to = int(msg.get("to", 0))
            self._emit(topic, Gap(topic, int(msg.get("from", 0)), to, str(msg.get("reason", ""))))
            st.seq = to
        elif kind == "heartbeat":
            topic = msg.get("topic", "")
            st = self._topics.get(topic)
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
                st = self._topics.get(topic)
                if st is None:
                    continue
                rec = recovery.get(topic)
                if rec is not None:
                    ok = bool(rec.get("recovered"))
                    if not ok:
                        st.seq = None  # the snapshot that follows is a fresh start, not a gap
                    self._emit(topic, Recovery(topic, ok, None if ok else rec.get("reason")))
                elif st.epoch != epoch:
                    st.seq = None
                st.epoch = epoch
            self._resolve(msg)
        elif kind in ("unsubscribed", "pong", "error"):
            self._resolve(msg)

    def _resolve(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        fut = self._pending.get(rid) if isinstance(rid, int) else None
        if fut is not None and not fut.done():
            fut.set_result(msg)
