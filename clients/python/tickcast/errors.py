"""Errors raised by the tickcast client."""

from __future__ import annotations

import json
from typing import Any, Optional, Union


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


class Unauthorized(TickcastError):
    """The server refused the credential, so reconnecting with it cannot succeed and the client stops: HTTP 401
    (missing, unknown, malformed or expired credential) or 403 (Origin not allowed) on the WebSocket handshake, or a
    close 1008 "token expired" of an open connection. `status` is the HTTP status (None for a close), `close_code`
    the close code (None for a handshake), `reason` the server's label (invalid_api_key, invalid_token,
    token_expired, missing_credentials, malformed_credentials, origin_not_allowed; "" when it sent none)."""

    def __init__(self, message: str, status: Optional[int] = None, reason: str = "",
                 close_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.close_code = close_code

    @classmethod
    def from_handshake(cls, status: int, body: Union[bytes, bytearray]) -> Optional["Unauthorized"]:
        """The refusal a handshake answered with `status` and JSON `body` ({"error": reason, "message": ...}) says,
        or None when the status is not an auth refusal (a 429 or 503 is worth retrying)."""
        if status not in (401, 403):
            return None
        try:
            info = json.loads(body)
        except ValueError:
            info = None
        if not isinstance(info, dict):
            info = {}
        reason, message = str(info.get("error", "")), str(info.get("message", ""))
        return cls(f"HTTP {status}: {message or reason or 'refused'}", status, reason)

    @classmethod
    def from_close(cls, code: Optional[int], reason: str) -> Optional["Unauthorized"]:
        """The refusal a close frame says (1008 "token expired"), or None (1008 also closes slow consumers)."""
        if code != 1008 or reason != "token expired":
            return None
        return cls(f"close {code}: {reason}", None, "token_expired", code)
