"""The DataFrame helpers: rows from ticks; a clear ImportError naming the package when it is missing."""

from __future__ import annotations

import importlib.util

import pytest

from tickcast import Tick
from tickcast.frames import tick_rows, to_pandas, to_polars

TICKS = [
    Tick("ticker.A", 1, 10, {"type": "tick", "topic": "ticker.A", "seq": 1, "ts": 10, "bid": 1.5}),
    Tick("ticker.A", 2, 20, {"type": "tick", "topic": "ticker.A", "seq": 2, "ts": 20, "bid": 1.25}),
]


def test_rows_keep_every_field_but_type() -> None:
    assert tick_rows(TICKS) == [
        {"topic": "ticker.A", "seq": 1, "ts": 10, "bid": 1.5},
        {"topic": "ticker.A", "seq": 2, "ts": 20, "bid": 1.25},
    ]


@pytest.mark.parametrize("module,helper", [("pandas", to_pandas), ("polars", to_polars)])
def test_frame_helper(module: str, helper: object) -> None:
    if importlib.util.find_spec(module) is None:
        with pytest.raises(ImportError, match=f"pip install {module}"):
            helper(TICKS)  # type: ignore[operator]
    else:
        frame = helper(TICKS)  # type: ignore[operator]
        assert list(frame["seq"]) == [1, 2]
