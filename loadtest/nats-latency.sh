#!/usr/bin/env bash
# Latency and cost added by NATS (docs/scaling-out.md "Measured"): the same synthetic feed and the
# same load generator, alternated in one batch between a single node and ingest -> NATS -> gateway.
# Latency is the load generator's: tick `ts` (stamped by the node that read the feed) to client
# receipt. Pinning on 2 cores: the serving node (single node or gateway) on CPU 0; nats-server, the
# ingest node and the load generator on CPU 1. CPU per process is read from /proc over the window.
#
#   cargo build --release -p tickcast -p tickcast-loadgen && loadtest/nats-latency.sh
#   REPEAT=3 STORE=memory HISTORY_MS=60000 RATE=20000 CONNS=20 loadtest/nats-latency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/tickcast}
LOADGEN=${LOADGEN:-target/release/tickcast-loadgen}
REPEAT=${REPEAT:-2}; RATE=${RATE:-20000}; SYMBOLS=${SYMBOLS:-100}
CONNS=${CONNS:-20}; PER_CONN=${PER_CONN:-10}; DURATION=${DURATION:-10}; WARMUP=${WARMUP:-3}
STORE=${STORE:-file}; HISTORY_MS=${HISTORY_MS:-0}
NATS=${NATS:-$(command -v nats-server || echo /usr/sbin/nats-server)}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DIR=$(mktemp -d); PIDS=()
stop_all() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; PIDS=(); }
trap 'stop_all; rm -rf "$DIR"' EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_http() { until curl -sf "127.0.0.1:$1/healthz" >/dev/null; do sleep 0.05; done; }

# Runs the load generator against port $1 and prints its summary plus CPU % of each pid in $2...
measure() {
  local p=$1; shift
  local before=() t0 t1
  for pid in "$@"; do before+=("$(ticks "$pid")"); done
  t0=$(date +%s%N)
  taskset -c 1 "$LOADGEN" -u "ws://127.0.0.1:$p/ws" -c "$CONNS" -k "$PER_CONN" -t "$SYMBOLS" \
    --warmup "$WARMUP" -d "$DURATION" 2>&1 | grep -E "latency|delivered|gaps|msgs/s|received" || true
  t1=$(date +%s%N)
  local i=0 hz; hz=$(getconf CLK_TCK)
  for pid in "$@"; do
    awk -v a="${before[$i]}" -v b="$(ticks "$pid")" -v ns=$((t1 - t0)) -v hz="$hz" -v n="$(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-60)" \
      'BEGIN {printf "  cpu %5.1f%%  %s\n", (b - a) / hz / (ns / 1e9) * 100, n}'
    i=$((i + 1))
  done
}

single() {
  local p; p=$(port)
  taskset -c 0 "$BIN" --listen 127.0.0.1:"$p" --workers 1 --symbols "$SYMBOLS" --rate "$RATE" --log warn & PIDS+=($!)
  wait_http "$p"
  echo "== single node"
  measure "$p" "${PIDS[0]}"
  stop_all
}

scaled() {
  local np ip gp; np=$(port); ip=$(port); gp=$(port)
  rm -rf "$DIR/nats"
  taskset -c 1 "$NATS" -js -a 127.0.0.1 -p "$np" -sd "$DIR/nats" >/dev/null 2>&1 & PIDS+=($!)
  until (exec 3<>/dev/tcp/127.0.0.1/"$np") 2>/dev/null; do sleep 0.05; done
  printf '[nats]\nstream_storage = "%s"\nhistory_ms = %s\n' "$STORE" "$HISTORY_MS" >"$DIR/ingest.toml"
  taskset -c 1 "$BIN" --config "$DIR/ingest.toml" --listen 127.0.0.1:"$ip" --workers 1 --role ingest \
    --nats-url nats://127.0.0.1:"$np" --symbols "$SYMBOLS" --rate "$RATE" --log warn & PIDS+=($!)
  wait_http "$ip"
  printf '[[feeds]]\nkind = "nats"\nurl = "nats://127.0.0.1:%s"\nsubjects = ["tickcast.>"]\n' "$np" >"$DIR/gateway.toml"
  taskset -c 0 "$BIN" --config "$DIR/gateway.toml" --listen 127.0.0.1:"$gp" --workers 1 --log warn & PIDS+=($!)
  until curl -sf "127.0.0.1:$gp/readyz" >/dev/null; do sleep 0.05; done
  echo "== ingest -> NATS ($STORE stream, history_ms $HISTORY_MS) -> gateway"
  measure "$gp" "${PIDS[2]}" "${PIDS[1]}" "${PIDS[0]}"
  stop_all
}

echo "rate $RATE ticks/s over $SYMBOLS topics, $CONNS conns x $PER_CONN topics, ${DURATION}s after ${WARMUP}s warm-up"
for r in $(seq "$REPEAT"); do
  echo "-- round $r"
  single
  scaled
done
