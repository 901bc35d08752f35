#!/usr/bin/env bash
# Ingest failover time over N kills (docs/scaling-out.md "Measured"): a real nats-server -js and two
# ingest nodes (release binary, synthetic feed), on loopback. Each round SIGKILLs whichever node
# leads, times until the other one's /metrics says tickcast_ingest_leader 1 (polled every 10 ms),
# then starts the killed one again as the new standby. Prints one line per kill and a summary.
#
#   cargo build --release -p tickcast && loadtest/failover.sh            # N=10 kills
#   N=20 STORE=memory SYMBOLS=100 RATE=20000 loadtest/failover.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/tickcast}
N=${N:-10}
SYMBOLS=${SYMBOLS:-100}
RATE=${RATE:-20000}
STORE=${STORE:-file}   # file | memory (the stream's storage)
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NATS_PORT=$(port); PORTS=("$(port)" "$(port)")
DIR=$(mktemp -d); PIDS=("" "")
cleanup() { kill -9 ${PIDS[@]} "${NATS_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT

"$NATS" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$DIR/nats" >/dev/null 2>&1 & NATS_PID=$!
until (exec 3<>/dev/tcp/127.0.0.1/"$NATS_PORT") 2>/dev/null; do sleep 0.05; done
printf '[nats]\nstream_storage = "%s"\n' "$STORE" >"$DIR/ingest.toml"

start() { # $1 = node index
  "$BIN" --config "$DIR/ingest.toml" --listen 127.0.0.1:"${PORTS[$1]}" --role ingest \
    --nats-url nats://127.0.0.1:"$NATS_PORT" --symbols "$SYMBOLS" --rate "$RATE" --log warn \
    2>>"$DIR/node$1.log" & PIDS[$1]=$!
  until curl -sf "127.0.0.1:${PORTS[$1]}/healthz" >/dev/null; do sleep 0.02; done
}
leads() { curl -s "127.0.0.1:${PORTS[$1]}/metrics" | awk '$1=="tickcast_ingest_leader"{print $2}'; }
now_ms() { date +%s%3N; }

start 0; start 1
until [ "$(leads 0)" = 1 ] || [ "$(leads 1)" = 1 ]; do sleep 0.05; done
times=()
for i in $(seq "$N"); do
  if [ "$(leads 0)" = 1 ]; then l=0; s=1; else l=1; s=0; fi
  # Ticks flowing, the standby has heard several heartbeats; the random part spreads the kill over the
  # heartbeat period (else every kill would land at the same phase of it).
  sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", 2 + (r % 250) / 1000 }')"
  t0=$(now_ms); kill -9 "${PIDS[$l]}"; wait "${PIDS[$l]}" 2>/dev/null || true
  deadline=$((t0 + 10000))
  until [ "$(leads $s)" = 1 ]; do
    [ "$(now_ms)" -lt "$deadline" ] || { echo "kill $i: no takeover within 10 s" >&2; exit 1; }
    sleep 0.01
  done
  ms=$(( $(now_ms) - t0 )); times+=("$ms")
  echo "kill $i: node $s took over in $ms ms"
  start "$l"
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "takeover over %d kills (lease 1500 ms, renew 250 ms): min %d, median %d, max %d ms\n", NR, a[1], a[int((NR+1)/2)], a[NR]}'
