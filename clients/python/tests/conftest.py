"""Starts real tickcast servers on free loopback ports for the SDK tests.

The binary is $TICKCAST_BIN, else target/{release,debug}/tickcast under $CARGO_TARGET_DIR or the
workspace. Missing binary: the tests skip, or fail when CI is set."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[3]
API_KEY = "sdk-test-key-0123456789"


def find_binary() -> Optional[str]:
    """The tickcast binary the tests run."""
    if os.environ.get("TICKCAST_BIN"):
        return os.environ["TICKCAST_BIN"]
    targets = [Path(os.environ["CARGO_TARGET_DIR"])] if os.environ.get("CARGO_TARGET_DIR") else []
    targets.append(ROOT / "target")
    for t in targets:
        for profile in ("release", "debug"):
            p = t / profile / "tickcast"
            if p.is_file():
                return str(p)
    return None


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tick_lines(topic: str, start: int, n: int) -> list[str]:
    """n quote lines of topic for a tcp feed, their prices varied by a running count from `start`."""
    lines = []
    for i in range(start + 1, start + n + 1):
        last = 100 + (i % 1000) / 100
        lines.append(f'{{"topic":"{topic}","bid":{last - 0.01:.2f},"ask":{last + 0.01:.2f},'
                     f'"last":{last:.2f},"size":{1 + i % 100}}}\n')
    return lines


class Server:
    """One tickcast process with a synthetic feed (rate 0 unless asked) and a tcp feed tests publish to.

    market_rate: the synthetic feed's book changes per second over SYN1 and SYN2 (server default 200);
    book_depth: [market] book_depth; max_queued_frames, max_queued_bytes, policy: [backpressure] keys;
    send_buffer: [server] socket_send_buffer_bytes (small: a stalled client reaches the policy sooner); key_topics:
    what the API key may subscribe to with auth; jwt_secret: also accept HS256 JWTs signed with it (no leeway)."""

    def __init__(
        self,
        binary: str,
        auth: bool = False,
        rate: int = 0,
        market_rate: Optional[int] = None,
        book_depth: Optional[int] = None,
        max_queued_frames: Optional[int] = None,
        max_queued_bytes: Optional[int] = None,
        key_topics: tuple[str, ...] = ("ticker.*",),
        policy: Optional[str] = None,
        send_buffer: Optional[int] = None,
        jwt_secret: Optional[str] = None,
    ) -> None:
        self.binary = binary
        self.port = free_port()
        self.feed_port = free_port()
        self.rate = rate
        self.dir = tempfile.mkdtemp(prefix="tickcast-sdk-")
        cfg = (
            '[[feeds]]\nkind = "synthetic"\nname = "synthetic"\n'
            + (f"market_rate = {market_rate}\n" if market_rate is not None else "")
            + f'\n[[feeds]]\nkind = "tcp"\nname = "pub"\nlisten = "127.0.0.1:{self.feed_port}"\nrequired = false\n'
        )
        if send_buffer is not None:
            cfg = f"[server]\nsocket_send_buffer_bytes = {send_buffer}\n\n" + cfg
        if book_depth is not None:
            cfg += f"\n[market]\nbook_depth = {book_depth}\n"
        backpressure = {"max_queued_frames": max_queued_frames, "max_queued_bytes": max_queued_bytes,
                        "policy": f'"{policy}"' if policy is not None else None}
        if any(v is not None for v in backpressure.values()):
            cfg += "\n[backpressure]\n" + "".join(f"{k} = {v}\n" for k, v in backpressure.items() if v is not None)
        if auth:
            topics = ", ".join(f'"{t}"' for t in key_topics)
            cfg += "\n[auth]\nenabled = true\n"
            cfg += f'hs256_secret = "{jwt_secret}"\nleeway_secs = 0\n' if jwt_secret is not None else ""
            cfg += f'\n[[auth.api_keys]]\nkey = "{API_KEY}"\ntopics = [{topics}]\n'
        self.config = os.path.join(self.dir, "tickcast.toml")
        with open(self.config, "w") as f:
            f.write(cfg)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.feed: Optional[socket.socket] = None
        self.sent = 0
        self.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> None:
        """Starts the process (again, on the same ports) and waits for /healthz."""
        log = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--listen", f"127.0.0.1:{self.port}", "--config", self.config,
             "--symbols", "SYN1,SYN2", "--rate", str(max(self.rate, 1))],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"tickcast did not become healthy on {self.port}")

    def stop(self) -> None:
        """Stops the process (SIGTERM, then SIGKILL) and drops the publisher connection."""
        if self.feed is not None:
            self.feed.close()
            self.feed = None
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        """A restart: every topic gets a new epoch."""
        self.stop()
        self.start()

    def publish(self, topic: str, n: int) -> None:
        """Sends n ticks of topic through the tcp feed (one kept-open publisher connection)."""
        self.publish_lines(tick_lines(topic, self.sent, n))
        self.sent += n

    def publish_lines(self, lines: list[str]) -> None:
        """Sends feed lines (ticks, book and trade messages, each ending in a newline) through the tcp feed."""
        if self.feed is None:
            deadline = time.monotonic() + 10
            while True:
                try:
                    self.feed = socket.create_connection(("127.0.0.1", self.feed_port), timeout=2)
                    self.feed.settimeout(60)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        self.feed.sendall("".join(lines).encode())

    def metric(self, name: str) -> float:
        """The value of one sample of /metrics (`name` with its labels as the server prints them), 0 when absent."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
        return 0.0

    def feed_down(self) -> None:
        """Disconnects the only publisher: its topics' heartbeats say feed_up false."""
        if self.feed is not None:
            self.feed.close()
            self.feed = None


@pytest.fixture(scope="session")
def binary() -> str:
    b = find_binary()
    if b is None:
        msg = "tickcast binary not found: cargo build --release -p tickcast or set TICKCAST_BIN"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return b


@pytest.fixture
def server(binary: str) -> Iterator[Server]:
    s = Server(binary)
    yield s
    s.stop()


@pytest.fixture
def auth_server(binary: str) -> Iterator[Server]:
    s = Server(binary, auth=True)
    yield s
    s.stop()
