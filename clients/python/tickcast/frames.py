"""Optional DataFrame helpers; pandas and polars are imported only when called (neither is a dependency)."""

from __future__ import annotations

import importlib
from typing import Any, Iterable

from .events import Tick


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{module} is needed for this helper: pip install {module}") from e


def tick_rows(ticks: Iterable[Tick]) -> list[dict[str, Any]]:
    """Ticks as plain rows (every field the server sent, without `type`)."""
    return [{k: v for k, v in t.raw.items() if k != "type"} for t in ticks]


def to_pandas(ticks: Iterable[Tick]) -> Any:
    """A pandas DataFrame of the ticks, one row each."""
    return _require("pandas").DataFrame(tick_rows(ticks))


def to_polars(ticks: Iterable[Tick]) -> Any:
    """A polars DataFrame of the ticks, one row each."""
    return _require("polars").DataFrame(tick_rows(ticks))
