"""tickcast: an asyncio client for the tickcast market-data server (protocol v2, docs/protocol.md)."""

from .client import Client, Subscription, backoff_delay, unannounced_gap
from .errors import ClientClosed, ConnectionLost, ServerError, TickcastError
from .events import Event, Gap, Heartbeat, Recovery, Stale, StateChange, Tick

__all__ = [
    "Client", "Subscription", "backoff_delay", "unannounced_gap",
    "ClientClosed", "ConnectionLost", "ServerError", "TickcastError",
    "Event", "Gap", "Heartbeat", "Recovery", "Stale", "StateChange", "Tick",
]
