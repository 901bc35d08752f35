#!/usr/bin/env python3
"""Per-connection memory of a running tickcast: opens N WebSocket connections (optionally each
subscribing to one topic), then prints the server's RSS growth per connection.

usage: loadtest/memprobe.py PORT SERVER_PID N tcp|ws|sub   (TOPIC=AAPL env picks ticker.<TOPIC>)
Loopback only; holds the connections for 1 s, then exits (closing them)."""
import os
import socket
import sys
import time

port, pid, n, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS for that pid")


base = rss_kib()
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if mode != "tcp":
        s.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        s.recv(200)
    if mode == "sub":
        p = b'{"op":"subscribe","topics":["ticker.' + os.environ.get("TOPIC", "AAPL").encode() + b'"],"id":1}'
        s.send(bytes([0x81, 0x80 | len(p)]) + b"\0\0\0\0" + p)  # masked with a zero key
    socks.append(s)
time.sleep(1.0)
print(mode, n, "KiB/conn", round((rss_kib() - base) / n, 2))
