"""The wheel as a user gets it: built, installed into a fresh venv, its README example run there."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import Server

HERE = Path(__file__).resolve().parents[1]


def test_wheel_in_fresh_venv_runs_readme_example(server: Server) -> None:
    with tempfile.TemporaryDirectory(prefix="tickcast-wheel-") as tmp:
        out = Path(tmp) / "dist"
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(HERE)],
            check=True, capture_output=True, timeout=240,
        )
        wheels = list(out.glob("tickcast-*.whl"))
        assert len(wheels) == 1, wheels
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", str(wheels[0])], check=True, timeout=240)
        readme = (HERE / "README.md").read_text()
        example = re.search(r"```python\n(.*?)```", readme, re.S)
        assert example is not None
        code = example.group(1).replace("ws://127.0.0.1:8080/ws", server.url)
        server.publish("ticker.AAPL", 1)  # the snapshot the example's subscribe gets at once
        run = subprocess.run(
            [str(venv / "bin/python"), "-c", code], cwd=tmp, capture_output=True, text=True, timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith("ticker.AAPL 1 "), run.stdout
        cli = subprocess.run(
            [str(venv / "bin/python"), "-m", "tickcast", "sub", "ticker.AAPL", "--url", server.url, "--json",
             "--count", "1"],
            cwd=tmp, capture_output=True, text=True, timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert '"topic": "ticker.AAPL"' in cli.stdout and '"seq": 1' in cli.stdout, cli.stdout
