"""The package, its tests and the bench type-check under mypy --strict (settings in pyproject.toml's [tool.mypy]):
the package ships py.typed, so its annotations are part of its API."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1]


def test_mypy_strict_finds_nothing() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is missing: pip install -e '.[test]'")
    run = subprocess.run([sys.executable, "-m", "mypy"], cwd=HERE, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("Success: no issues found"), run.stdout
