"""tickcast: an asyncio client for the tickcast market-data server (protocol v2, docs/protocol.md)."""

from .book import Level, OrderBook, checksum_digits, parse_decimal
from .client import BookSubscription, Client, Subscription, backoff_delay, unannounced_gap
from .errors import ClientClosed, ConnectionLost, ServerError, TickcastError
from .events import (
    Bar, BookInvalid, BookMessage, Data, Event, Gap, Heartbeat, Recovery, Reset, Stale, StateChange, Tick, Trade,
)

__all__ = [
    "Client", "Subscription", "BookSubscription", "backoff_delay", "unannounced_gap",
    "OrderBook", "Level", "checksum_digits", "parse_decimal",
    "ClientClosed", "ConnectionLost", "ServerError", "TickcastError",
    "Data", "Event", "Gap", "Heartbeat", "Recovery", "Reset", "Stale", "StateChange", "Tick", "Trade", "Bar",
    "BookMessage", "BookInvalid",
]
