#!/usr/bin/env python3
"""Writes sample-day.jsonl: one deterministic, made-up trading day of ticks for the replay feed.

24 familiar US tickers, 09:30-16:00 New York time on 2025-11-21 (14:30-21:00 UTC), ~32,000 ticks
(~3 MB) with the intraday U shape of real activity (busier at the open and the close). Prices are
random walks in whole cents, so every price has at most two decimals. The same script always
writes the same bytes (fixed seed, no clock). Usage: python3 make_sample.py [OUT]
"""

import json
import random
import sys
from pathlib import Path

SYMBOLS = {
    "AAPL": 189.0, "MSFT": 415.0, "GOOGL": 172.0, "AMZN": 185.0, "NVDA": 140.0, "META": 560.0,
    "TSLA": 330.0, "JPM": 240.0, "V": 310.0, "XOM": 120.0, "UNH": 590.0, "JNJ": 155.0,
    "WMT": 88.0, "PG": 170.0, "MA": 520.0, "HD": 400.0, "KO": 70.0, "PEP": 155.0,
    "COST": 930.0, "NFLX": 900.0, "AMD": 140.0, "INTC": 24.0, "DIS": 115.0, "BA": 150.0,
}
OPEN_US = 1_763_735_400_000_000  # 2025-11-21T14:30:00Z = 09:30 America/New_York
SESSION_S = 6.5 * 3600
TICKS = 32_000
SEED = 20251121


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("sample-day.jsonl")
    rng = random.Random(SEED)
    cents = {s: round(p * 100) for s, p in SYMBOLS.items()}
    names = list(SYMBOLS)
    # Activity weight per symbol: a few names trade far more than the rest.
    weights = [1.0 / (1 + i * 0.25) for i in range(len(names))]
    # Tick times: sample the U-shaped intensity 1 + 3*((2t-1)^4) by rejection, then sort.
    times = []
    while len(times) < TICKS:
        t = rng.random()
        if rng.random() * 4.0 <= 1.0 + 3.0 * (2 * t - 1) ** 4:
            times.append(int(t * SESSION_S * 1_000_000))
    times.sort()
    with out.open("w", newline="\n") as f:
        for t in times:
            sym = rng.choices(names, weights)[0]
            step = round(rng.gauss(0, 1.5 + cents[sym] / 20_000))
            cents[sym] = max(100, cents[sym] + step)
            last = cents[sym]
            bid = last - rng.randint(0, 2)
            ask = bid + rng.randint(1, 4)
            size = 100 * rng.choice([1, 1, 1, 2, 2, 3, 5, 10]) if rng.random() < 0.9 else rng.randint(1, 99)
            tick = {
                "topic": f"ticker.{sym}",
                "ts": OPEN_US + t,
                "bid": f"{bid / 100:.2f}",
                "ask": f"{ask / 100:.2f}",
                "last": f"{last / 100:.2f}",
                "size": size,
            }
            # Prices as JSON numbers with exactly the cents written (no float repr noise).
            line = json.dumps(tick, separators=(",", ":"))
            for k in ("bid", "ask", "last"):
                line = line.replace(f'"{k}":"{tick[k]}"', f'"{k}":{tick[k]}')
            f.write(line + "\n")
    print(f"wrote {TICKS} ticks to {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
