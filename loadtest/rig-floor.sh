#!/usr/bin/env bash
# Where the CPU per message goes, tickcast against Bun, both fed by the rig's feeder over TCP (docs/performance.md,
# "The floor"): rounds alternating the two servers at each rate; per run the rig's JSON line, the TCP data segments
# the machine sent over 4 s of the window (`nstat` TcpExtTCPOrigDataSent: the servers' writes, plus ~1,000/s from
# the feeder), and a `perf record -C 0 -g` of the same 4 s split by loadtest/floor.py into the kernel's TCP work
# (`tcp_sendmsg`, which on loopback includes the client's receive path), the send call around it (io_uring_enter
# or sendto), epoll, the feed's reads, other kernel work and user code, each in µs per delivered message.
#
#   RIG=/tmp/peers loadtest/rig-floor.sh                  # S1-300k and S2, 3 rounds
#   RIG=/tmp/peers RATES="3000" ROUNDS=5 loadtest/rig-floor.sh
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(realpath "${BIN:-$HERE/../target/release/tickcast}")
cd "${RIG:-/tmp/peers}" || exit 1
ROUNDS=${ROUNDS:-3}; RATES=${RATES:-3000 1000}
OUT=${OUT:-$(mktemp -d)}
port=${PORT_BASE:-9500}
one() { # name cmd comm-prefix R
  local name=$1 cmd=$2 comm=$3 R=$4
  port=$((port + 1)); export PORT=$port FEED_PORT=$((port + 1000))
  printf '[[feeds]]\nkind = "tcp"\nname = "feed"\nlisten = "127.0.0.1:%s"\n' "$FEED_PORT" > "$OUT/fed-$PORT.toml"
  cmd=${cmd//@PORT@/$PORT}
  ./run-feed.sh "$name" "$cmd" 1000 100 10 "$R" 3 8 "R$R" > "$OUT/rig-$PORT.json" 2>/dev/null &
  local rp=$!
  sleep 6
  nstat -n
  perf record -q -o "$OUT/perf-$PORT.data" -C 0 -g -- sleep 4 >/dev/null 2>&1
  local segs
  segs=$(nstat | awk '$1 == "TcpExtTCPOrigDataSent" {print $2}')
  wait $rp
  local line cpu
  line=$(tail -1 "$OUT/rig-$PORT.json")
  cpu=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["server_cpu_us_per_msg"])' "$line")
  perf script -i "$OUT/perf-$PORT.data" -F comm,ip,sym 2>/dev/null > "$OUT/perf-$PORT.txt"
  echo "$line SEGS4s: ${segs:-?} FLOOR: $(python3 "$HERE/floor.py" "$OUT/perf-$PORT.txt" "$comm" "$cpu")"
  rm -f "$OUT/perf-$PORT.data"; [ -n "${KEEP:-}" ] || rm -f "$OUT/perf-$PORT.txt"
}
for _ in $(seq "$ROUNDS"); do
  for R in $RATES; do
    one tickcast "$BIN --listen 127.0.0.1:@PORT@ --config $OUT/fed-@PORT@.toml --log warn" tickcast "$R"
    one bun "bun/node_modules/.bin/bun bun/server-feed.js" bun "$R"
  done
done
