"""Wildcard subscriptions (docs/protocol.md, "Wildcard subscriptions"): a pattern `<prefix>.*` brings every topic a
feed publishes under the prefix, now and later, and the server never names the later ones in an ack. The client
tells which pattern a topic it did not name belongs to, to keep its seq and epoch like a named topic's."""

from __future__ import annotations

from typing import Iterable, Optional


def is_pattern(entry: str) -> bool:
    """Whether a subscribe entry is a wildcard pattern."""
    return entry.endswith(".*")


def matches(pattern: str, topic: str) -> bool:
    """Whether pattern `<prefix>.*` matches topic: the prefix and its dot (whole segments), then at least a
    character."""
    prefix = pattern[:-1]
    return is_pattern(pattern) and len(topic) > len(prefix) and topic.startswith(prefix)


def pattern_for(entries: Iterable[str], topic: str) -> Optional[str]:
    """The first of entries that is a pattern matching topic, if any."""
    return next((e for e in entries if matches(e, topic)), None)
