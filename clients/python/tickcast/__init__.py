"""tickcast: an asyncio client for the tickcast market-data server (protocol v2, docs/protocol.md)."""

from .book import Level, OrderBook, checksum_digits, parse_decimal
from .client import BookSubscription, Client, Subscription, backoff_delay, may_retry_refused, unannounced_gap
from .errors import ClientClosed, ConnectionLost, ServerError, TickcastError, Unauthorized
from .events import (
    Bar, BookInvalid, BookMessage, Data, Event, Gap, Heartbeat, Recovery, Reset, Stale, StateChange, Tick, Trade,
)
from .overflow import CLIENT_OVERFLOW, OverflowQueue, merge_gaps

__all__ = [
    "Client", "Subscription", "BookSubscription", "backoff_delay", "may_retry_refused", "unannounced_gap",
    "OverflowQueue", "CLIENT_OVERFLOW", "merge_gaps",
    "OrderBook", "Level", "checksum_digits", "parse_decimal",
    "ClientClosed", "ConnectionLost", "ServerError", "TickcastError", "Unauthorized",
    "Data", "Event", "Gap", "Heartbeat", "Recovery", "Reset", "Stale", "StateChange", "Tick", "Trade", "Bar",
    "BookMessage", "BookInvalid",
]
