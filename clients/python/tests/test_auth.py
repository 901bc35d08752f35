"""A refused credential fails fast: Unauthorized from connect() or the iterator instead of reconnecting forever;
a token provider gets one retry with a fresh token. By hand, then against real tickcast servers with auth on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from conftest import API_KEY, Server
from test_client import collect, poll, run
from tickcast import Client, Tick, Unauthorized, may_retry_refused
from tickcast.__main__ import main

SECRET = "sdk-test-jwt-secret-0123456789abcdef"


def jwt(exp_in: float, topics: str = "ticker.*") -> str:
    """An HS256 JWT granting topics, expiring exp_in seconds from now."""
    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"exp": int(time.time() + exp_in), "topics": topics}).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_refusals_the_client_recognises() -> None:
    e = Unauthorized.from_handshake(401, b'{"error":"invalid_api_key","message":"unknown api key"}')
    assert e is not None and (e.status, e.reason, e.close_code) == (401, "invalid_api_key", None)
    assert str(e) == "HTTP 401: unknown api key"
    e = Unauthorized.from_handshake(403, b"not json")
    assert e is not None and (e.status, e.reason) == (403, "")
    assert Unauthorized.from_handshake(429, b"") is None and Unauthorized.from_handshake(503, b"") is None
    e = Unauthorized.from_close(1008, "token expired")
    assert e is not None and (e.status, e.reason, e.close_code) == (None, "token_expired", 1008)
    assert Unauthorized.from_close(1008, "slow consumer") is None and Unauthorized.from_close(1001, "") is None


def test_only_a_token_provider_retries_and_only_once() -> None:
    assert not may_retry_refused(1, False)
    assert may_retry_refused(1, True) and not may_retry_refused(2, True)


async def refused_connect(client: Client) -> Unauthorized:
    started = time.monotonic()
    with pytest.raises(Unauthorized) as e:
        await client.connect()
    assert time.monotonic() - started < 5  # no backoff loop
    return e.value


def test_a_wrong_or_missing_credential_raises_at_once(auth_server: Server) -> None:
    async def main() -> None:
        bad = Client(auth_server.url, token="wrong")
        e = await refused_connect(bad)
        assert (e.status, e.reason) == (401, "invalid_api_key")
        assert [s.state for s in bad.states] == ["connecting", "disconnected"]
        with pytest.raises(Unauthorized):
            await bad.ping()  # requests say why too, without waiting for a connection that will not come
        await bad.close()
        anonymous = Client(auth_server.url)
        e = await refused_connect(anonymous)
        assert (e.status, e.reason) == (401, "missing_credentials")
        await anonymous.close()
    run(main())


def test_the_command_line_says_why_and_exits(auth_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sub", "ticker.SDKC", "--url", auth_server.url, "--token", "wrong", "--count", "1"]) == 2
    assert capsys.readouterr().err == "error: HTTP 401: unknown api key\n"


def test_a_token_provider_gets_one_fresh_try(auth_server: Server) -> None:
    async def main() -> None:
        tokens = ["stale", API_KEY]
        calls: list[str] = []

        def provider() -> str:
            calls.append(tokens[min(len(calls), len(tokens) - 1)])
            return calls[-1]

        async with Client(auth_server.url, token=provider) as c:
            assert calls == ["stale", API_KEY]
            assert (await c.ping())["type"] == "pong"
        calls.clear()
        tokens[:] = ["stale", "still-stale", API_KEY]
        refused = Client(auth_server.url, token=provider)
        e = await refused_connect(refused)
        assert calls == ["stale", "still-stale"] and e.reason == "invalid_api_key"
        await refused.close()
    run(main())


def test_an_expired_token_ends_the_iterator_or_is_replaced(binary: str) -> None:
    server = Server(binary, auth=True, jwt_secret=SECRET)

    async def main() -> None:
        # A fixed token: the server closes 1008 "token expired" and the iterator raises.
        async with Client(server.url, token=jwt(2)) as c:
            sub = await c.subscribe("ticker.SDKJ")
            server.publish("ticker.SDKJ", 1)
            with pytest.raises(Unauthorized) as e:
                await collect(sub, lambda g: False)
            assert (e.value.close_code, e.value.reason) == (1008, "token_expired")
        # A provider hands out a fresh token at every reconnect (the first one short-lived): the stream goes on,
        # every seq once.
        lives = [2.0]
        async with Client(server.url, token=lambda: jwt(lives.pop() if lives else 60), reconnect_min=0.05,
                          reconnect_max=0.2) as c:
            sub = await c.subscribe("ticker.SDKJ")
            events = sub.events()
            await collect(events, lambda g: any(isinstance(ev, Tick) for ev in g))
            await poll(lambda: c.state == "connected" and any(s.code == 1008 for s in c.states))
            assert [s.reason for s in c.states if s.code == 1008] == ["token expired"]
            server.publish("ticker.SDKJ", 5)
            got = await collect(events, lambda g: sum(isinstance(ev, Tick) for ev in g) >= 5)
            assert [ev.seq for ev in got if isinstance(ev, Tick)] == [2, 3, 4, 5, 6]
    try:
        run(main())
    finally:
        server.stop()
