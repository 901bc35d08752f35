#!/usr/bin/env bash
# The write pass's sends batched through io_uring against the same build writing with send(2)
# ([server] io_uring = false) and against Bun, all three fed by the rig's feeder over TCP
# (docs/performance.md, "batched sends through io_uring"): rounds alternating the three servers;
# each run's JSON line from the rig, followed by `perf stat` counts of the server's sendto and
# io_uring_enter over 5 s of its window. With S3=1: the S3 shape instead (10,000 connections,
# R=50 unless R is set, a fresh pair of loopback source addresses per run).
#
#   RIG=/tmp/peers loadtest/rig-uring.sh                 # S1-300k, S2, S1-1M; 3 rounds
#   RIG=/tmp/peers S3=1 loadtest/rig-uring.sh            # S3 at R=50
set -u
BIN=$(realpath "${BIN:-$(dirname "$0")/../target/release/tickcast}")
cd "${RIG:-/tmp/peers}" || exit 1
ROUNDS=${ROUNDS:-3}
port=${PORT_BASE:-9400}; ip=${IP0:-60}
one() { # name label N R mode cmd pgrep-pattern
  local name=$1 label=$2 n=$3 R=$4 mode=$5 cmd=$6 pat=$7
  port=$((port + 1)); export PORT=$port FEED_PORT=$((port + 1000))
  if [ -n "${S3:-}" ]; then
    ip=$((ip + 1)); export SRC_IPS=127.0.$ip.1,127.0.$ip.2 RAMP_TIMEOUT=40
  fi
  printf '[server]\nio_uring = %s\n[[feeds]]\nkind = "tcp"\nname = "feed"\nlisten = "127.0.0.1:%s"\n' \
    "$([ "$mode" = send ] && echo false || echo true)" "$FEED_PORT" > "/tmp/fed-$PORT.toml"
  cmd=${cmd//@PORT@/$PORT}
  ./run-feed.sh "$name" "$cmd" "$n" 100 10 "$R" 3 8 "$label-$mode" > "/tmp/rig-$PORT.json" 2>"/tmp/rig-$PORT.err" &
  local rp=$! pid counts=""
  sleep 7
  pid=$(pgrep -f -- "$pat" | head -1)
  if [ -n "$pid" ]; then
    counts=$(perf stat -x, -e syscalls:sys_enter_sendto,syscalls:sys_enter_io_uring_enter -p "$pid" -- sleep 5 2>&1 | awk -F, '{printf "%s=%s ", $3, $1}')
  fi
  wait $rp
  echo "$(tail -1 "/tmp/rig-$PORT.json") PERF5s: $counts"
}
if [ -n "${S3:-}" ]; then scenarios=("S3 10000 ${R:-50}"); else scenarios=("S1-300k 1000 3000" "S2 1000 1000" "S1-1M 1000 10000"); fi
for _ in $(seq "$ROUNDS"); do
  for sc in "${scenarios[@]}"; do
    set -- $sc
    one tickcast "$1" "$2" "$3" uring "$BIN --listen 127.0.0.1:@PORT@ --config /tmp/fed-@PORT@.toml --log warn" "^$BIN --listen 127.0.0.1:$((port + 1))"
    one tickcast "$1" "$2" "$3" send "$BIN --listen 127.0.0.1:@PORT@ --config /tmp/fed-@PORT@.toml --log warn" "^$BIN --listen 127.0.0.1:$((port + 1))"
    one bun "$1" "$2" "$3" feed "bun/node_modules/.bin/bun bun/server-feed.js" "^bun/node_modules/.bin/bun bun/server-feed.js"
  done
done
