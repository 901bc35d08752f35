#!/usr/bin/env bash
# tickcast's own synthetic feed against the same ticks over TCP, and Bun fed the same way (docs/performance.md,
# "2026-12-05"): rounds alternating tickcast (synthetic), tickcast (tcp feed from the rig's rig-feeder), Bun
# (bun/server-feed.js) and, unless NO_BUN_OWN is set, Bun's own timer; each run's JSON line from the rig, followed
# by `perf stat` counts of the server's write syscalls over 5 s of its window.
#
#   RIG=/tmp/peers R=10000 LABEL=S1-1M loadtest/rig-feeds.sh     # the rig copied and built per its README
#   RIG=/tmp/peers R=3000 LABEL=S1-300k NO_BUN_OWN=1 ROUNDS=3 loadtest/rig-feeds.sh
set -u
BIN=$(realpath "${BIN:-$(dirname "$0")/../target/release/tickcast}")
cd "${RIG:-/tmp/peers}" || exit 1
N=1000; T=100; K=10; R=${R:-10000}; LABEL=${LABEL:-S1-1M}; ROUNDS=${ROUNDS:-3}
port=${PORT_BASE:-9300}
one() { # name kind cmd pgrep-pattern
  local name=$1 kind=$2 cmd=$3 pat=$4
  port=$((port + 1)); export PORT=$port FEED_PORT=$((port + 1000))
  printf '[[feeds]]\nkind = "tcp"\nname = "feed"\nlisten = "127.0.0.1:%s"\n' "$FEED_PORT" > "/tmp/fed-$PORT.toml"
  cmd=${cmd//@PORT@/$PORT}
  local runner=./run.sh; [ "$kind" = feed ] && runner=./run-feed.sh
  $runner "$name" "$cmd" $N $T $K "$R" 3 8 "$LABEL-$kind" > "/tmp/rig-$PORT.json" 2>"/tmp/rig-$PORT.err" &
  local rp=$!
  sleep 7
  local pid counts=""
  pid=$(pgrep -f -- "$pat" | head -1)
  if [ -n "$pid" ]; then
    counts=$(perf stat -x, -e syscalls:sys_enter_sendto,syscalls:sys_enter_writev,syscalls:sys_enter_write -p "$pid" -- sleep 5 2>&1 | awk -F, '{printf "%s=%s ", $3, $1}')
  fi
  wait $rp
  echo "$(tail -1 "/tmp/rig-$PORT.json") PERF5s: $counts"
}
for _ in $(seq "$ROUNDS"); do
  one tickcast synth "$BIN --listen 127.0.0.1:@PORT@ --symbols 100 --rate $R --log warn" "^$BIN --listen 127.0.0.1:$((port + 1))"
  one tickcast feed "$BIN --listen 127.0.0.1:@PORT@ --config /tmp/fed-@PORT@.toml --log warn" "^$BIN --listen 127.0.0.1:$((port + 1))"
  one bun feed "bun/node_modules/.bin/bun bun/server-feed.js" "^bun/node_modules/.bin/bun bun/server-feed.js"
  [ -n "${NO_BUN_OWN:-}" ] || one bun own "bun/node_modules/.bin/bun bun/server.js" "^bun/node_modules/.bin/bun bun/server.js"
done
