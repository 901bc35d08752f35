#!/usr/bin/env bash
# Server CPU per delivered message over SSE and over WebSocket, alternated in one batch, at the
# rig's S2 by default: N=1000 connections x K=10 of T=100 topics, R=1,000 ticks/s (100k msgs/s).
# Each run starts a fresh release tickcast on CPU 0 (its synthetic feed), the clients on CPU 1
# (WebSocket: tickcast-loadgen; SSE: the sse_load example), and measures over the same window,
# the same way for both: server CPU from /proc/PID/stat, messages from the server's
# tickcast_messages_sent_total{transport}. Prints one JSON line per run.
#
#   loadtest/sse-vs-ws.sh            # env: N K T R DUR (window s, default 8) REPEAT (default 2)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
N=${N:-1000} K=${K:-10} T=${T:-100} R=${R:-1000} DUR=${DUR:-8} REPEAT=${REPEAT:-2}
if [[ -z "${SKIP_BUILD:-}" ]]; then
  (cd "$root" && cargo build --release -q -p tickcast -p tickcast-loadgen \
    && cargo build --release -q -p tickcast-loadgen --example sse_load)
fi
hz=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sent() {
  curl -s "http://127.0.0.1:$1/metrics" |
    awk -v t="$2" '$1 == "tickcast_messages_sent_total{transport=\"" t "\"}" {print $2}'
}

run() {
  local transport=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  taskset -c 0 "$target/release/tickcast" --listen "127.0.0.1:$port" --symbols "$T" --rate "$R" \
    >/dev/null 2>&1 &
  local server=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  if [[ $transport == ws ]]; then
    taskset -c 1 "$target/release/tickcast-loadgen" --url "ws://127.0.0.1:$port/ws" --conns "$N" \
      --per-conn "$K" --topics "$T" --warmup 2 --duration $((DUR + 2)) --no-progress >/dev/null &
  else
    taskset -c 1 "$target/release/examples/sse_load" "127.0.0.1:$port" "$N" "$K" "$T" $((DUR + 2)) >/dev/null &
  fi
  local client=$!
  sleep 3
  local c0 m0 c1 m1
  c0=$(cpu_ticks "$server"); m0=$(sent "$port" "$transport")
  sleep "$DUR"
  c1=$(cpu_ticks "$server"); m1=$(sent "$port" "$transport")
  wait "$client" || true
  kill "$server"; wait "$server" 2>/dev/null || true
  python3 -c "
cpu = ($c1 - $c0) / $hz; msgs = $m1 - $m0
print('{\"transport\":\"$transport\",\"conns\":$N,\"per_conn\":$K,\"topics\":$T,\"R\":$R,\"window_s\":$DUR,' +
      '\"msgs_per_s\":%.0f,\"server_cpu_pct\":%.1f,\"server_cpu_us_per_msg\":%.3f}' % (msgs / $DUR, 100 * cpu / $DUR, 1e6 * cpu / max(msgs, 1)))"
}

for ((i = 0; i < REPEAT; i++)); do
  run ws
  run sse
done
