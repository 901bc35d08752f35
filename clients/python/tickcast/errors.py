"""Errors raised by the tickcast client."""

from __future__ import annotations

from typing import Any, Optional


class TickcastError(Exception):
    """Base class of every error this package raises."""


class ServerError(TickcastError):
    """An `error` reply of the server to one request: code (bad_request, invalid_topic, invalid_field,
    too_many_topics, topic_limit, forbidden, rate_limited, ...), field (with invalid_field) and message."""

    def __init__(self, code: str, message: str, field: Optional[str] = None, id: Any = None) -> None:
        super().__init__(f"{code}: {message}" + (f" (field {field})" if field else ""))
        self.code = code
        self.message = message
        self.field = field
        self.id = id


class ConnectionLost(TickcastError):
    """The connection closed before the server replied to a request."""


class ClientClosed(TickcastError):
    """The client was closed."""
