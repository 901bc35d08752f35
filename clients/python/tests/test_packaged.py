"""The wheel as a user gets it: built, installed into a fresh venv, its README examples (the first one, and the
"Order books" one on the synthetic feed's book.SYN1) and its command line run there."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import Server

HERE = Path(__file__).resolve().parents[1]


def test_wheel_in_fresh_venv_runs_readme_examples(server: Server) -> None:
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
        # The "Order books" example, on the synthetic feed's book.SYN1.
        books = re.search(r"```python\n(.*?)```", readme[readme.index("## Order books"):], re.S)
        assert books is not None
        code = books.group(1).replace("ws://127.0.0.1:8080/ws", server.url).replace("book.AAPL", "book.SYN1")
        run = subprocess.run(
            [str(venv / "bin/python"), "-c", code], cwd=tmp, capture_output=True, text=True, timeout=60,
        )
        assert run.returncode == 0, run.stderr
        lines = run.stdout.strip().split("\n")
        assert len(lines) == 7, run.stdout
        for line in lines[:5]:
            assert re.fullmatch(r"book\.SYN1 \d+ \d+@\d+\.\d+ \d+@\d+\.\d+ spread \d+\.\d+", line), line
        assert re.fullmatch(r"top 3 bids \d+@\S+ \d+@\S+ \d+@\S+", lines[5]), lines[5]
        assert lines[6] == "checksum ok True mismatches 0", lines[6]
        cli = subprocess.run(
            [str(venv / "bin/python"), "-m", "tickcast", "sub", "ticker.AAPL", "--url", server.url, "--json",
             "--count", "1"],
            cwd=tmp, capture_output=True, text=True, timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert '"topic": "ticker.AAPL"' in cli.stdout and '"seq": 1' in cli.stdout, cli.stdout
        cli = subprocess.run(
            [str(venv / "bin/python"), "-m", "tickcast", "book", "book.SYN1", "--url", server.url, "--count", "3",
             "--levels", "2"],
            cwd=tmp, capture_output=True, text=True, timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        lines = cli.stdout.strip().split("\n")
        assert len(lines) == 3 and all(re.match(r"book\.SYN1 #\d+ spread=\d+\.\d+ bids: \S+ \S+ \| asks: \S+ \S+$", x)
                                        for x in lines), cli.stdout
        assert "mismatches=0" in cli.stderr, cli.stderr
