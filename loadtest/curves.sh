#!/usr/bin/env bash
# How cost grows, side by side with Bun (uWebSockets), both fed from outside by the peers rig's
# feeder (`run-feed.sh`), every point alternating the two servers in one batch:
#   1. fan-out per tick 10 / 100 / 1,000 subscribers per topic at 400k delivered msgs/s;
#   2. offered rate from 100k msgs/s up, until either server saturates (CPU >= 95 % of its core or
#      delivering < 90 % of what is offered);
#   3. 1k / 5k / 10k / 19.9k connections, idle (1 tick/s in all) and subscribed (10 topics each,
#      100 ticks/s over 100 topics).
# Writes loadtest/results/curves-STAMP.jsonl (the rig's lines) and curves-STAMP.svg
# (`tickcast-curves`), and prints the rig's table.
#
#   loadtest/curves.sh [fanout|rate|conns ...]     (default: all three; `smoke`: one tiny point
#                                                  of each, to check the pipeline)
#
# Env: RIG (a built copy of ../shared/peers; default /tmp/peers, copied and built when missing),
# REPEAT (runs per point and server, default 1), WARM / DUR (seconds, default 3 / 8),
# SKIP_BUILD=1, CARGO_TARGET_DIR. The rig pins the server to CPU 0 and its client to CPU 1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
rig=${RIG:-/tmp/peers}
repeat=${REPEAT:-1}
warm=${WARM:-3}
dur=${DUR:-8}
sweeps=("$@")
[[ ${#sweeps[@]} -gt 0 ]] || sweeps=(fanout rate conns)

if [[ ! -d "$rig" ]]; then
  cp -r "$root/../shared/peers" "$rig"
fi
if [[ -z "${SKIP_BUILD:-}" ]]; then
  (cd "$root" && cargo build --release -p tickcast -p tickcast-loadgen)
  (cd "$rig/client" && cargo build --release -q)
  (cd "$rig/feeder" && cargo build --release -q)
  [[ -x "$rig/bun/node_modules/.bin/bun" ]] || (cd "$rig/bun" && npm install --no-audit --no-fund)
fi

mkdir -p "$here/results"
stamp=$(date +%Y%m%d-%H%M%S)
out="$here/results/curves-$stamp.jsonl"
fed="$here/results/curves-$stamp.tickcast.toml"
# tickcast's TCP feed on the port run-feed.sh sends to; everything else default.
printf '[[feeds]]\nkind = "tcp"\nname = "feed"\nlisten = "127.0.0.1:10131"\n' >"$fed"
tickcast_cmd="$target/release/tickcast --listen 127.0.0.1:\$PORT --config $fed"
bun_cmd="bun/node_modules/.bin/bun bun/server-feed.js"

# run_pair LABEL N T K R: one run of each server, in alternating order per repeat.
run_pair() {
  local label=$1 n=$2 t=$3 k=$4 r=$5 i
  for ((i = 0; i < repeat; i++)); do
    local order=(tickcast bun)
    ((i % 2 == 1)) && order=(bun tickcast)
    for peer in "${order[@]}"; do
      if [[ $peer == tickcast ]]; then
        (cd "$rig" && PORT=9131 FEED_PORT=10131 ./run-feed.sh tickcast "$tickcast_cmd" \
          "$n" "$t" "$k" "$r" "$warm" "$dur" "$label") | tee -a "$out"
      else
        (cd "$rig" && PORT=9132 FEED_PORT=10132 ./run-feed.sh bun "$bun_cmd" \
          "$n" "$t" "$k" "$r" "$warm" "$dur" "$label") | tee -a "$out"
      fi
    done
  done
}

# Whether the last two lines (one per server) show a saturated server.
saturated() {
  tail -n 2 "$out" | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    expected = r.get("expected_msgs_per_s") or 0
    if r["server_cpu_pct"] >= 95 or (expected and r["delivered_msgs_per_s"] < 0.9 * expected):
        sys.exit(0)
sys.exit(1)'
}

for sweep in "${sweeps[@]}"; do
  case $sweep in
    fanout)
      # 100 topics, 10 per connection: fan-out = N / 10; R keeps 400k delivered msgs/s.
      run_pair fanout-10 100 100 10 40000
      run_pair fanout-100 1000 100 10 4000
      run_pair fanout-1000 10000 100 10 400
      ;;
    rate)
      # Fan-out 100: offered = 100 x R.
      for r in 1000 2000 5000 10000 15000 20000 30000; do
        run_pair "rate-$r" 1000 100 10 "$r"
        if saturated; then echo "rate sweep: saturated at R=$r" >&2; break; fi
      done
      ;;
    conns)
      for n in 1000 5000 10000 19900; do
        run_pair "conns-idle-$n" "$n" 100 1 1
        run_pair "conns-sub-$n" "$n" 100 10 100
      done
      ;;
    smoke)
      # One small point of each chart, to check the pipeline (not a measurement).
      run_pair fanout-10 100 100 10 1000
      run_pair rate-1000 200 100 10 1000
      run_pair conns-idle-200 200 100 1 1
      run_pair conns-sub-200 200 100 10 100
      ;;
    *) echo "unknown sweep $sweep (fanout, rate, conns, smoke)" >&2; exit 2 ;;
  esac
done

"$target/release/tickcast-curves" "$out" "${out%.jsonl}.svg"
python3 "$rig/table.py" "$out" || true
