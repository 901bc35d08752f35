#!/usr/bin/env bash
# Runs one load-generator scenario against a freshly started release tickcast.
#
#   loadtest/run.sh SCENARIO [extra tickcast-loadgen flags...]
#
# SCENARIO is a bundled name (smoke, fanout-1k, fanout-10k, slow-consumers, c50k; see
# `tickcast-loadgen --list-scenarios`) or a path to a .toml file. The script builds release
# binaries, starts tickcast on a free loopback port with the scenario's [server] symbols/rate,
# runs the scenario with --server-pid, stops the server, and leaves under loadtest/results/:
#   SCENARIO-STAMP.json (full report), .svg (plot), .txt (table), .server.log
#
# Env: CARGO_TARGET_DIR (cargo's target dir), SERVER_CPUS / LOADGEN_CPUS (taskset CPU lists,
# e.g. SERVER_CPUS=0 LOADGEN_CPUS=1 to keep them off each other's core), SKIP_BUILD=1.
set -euo pipefail

scenario=${1:?usage: loadtest/run.sh SCENARIO [tickcast-loadgen flags...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
loadgen=$target/release/tickcast-loadgen
server=$target/release/tickcast

if [[ -z "${SKIP_BUILD:-}" ]]; then
  (cd "$root" && cargo build --release -p tickcast -p tickcast-loadgen)
fi

# Unknown scenarios fail here, with the load generator's one-line error.
server_args=$("$loadgen" --scenario "$scenario" --print-server-args)

# Many connections need many descriptors on both sides; raising the hard limit needs root,
# and the load generator says what to do if it is still too low.
ulimit -Hn 1100000 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

listening() { (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

# A free port: random picks in 20000-29999, at most 50 tries.
port=
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 10000))
  if ! listening "$p"; then port=$p; break; fi
done
[[ -n "$port" ]] || { echo "error: no free port found" >&2; exit 1; }

name=$(basename "$scenario" .toml)
mkdir -p "$here/results"
out="$here/results/$name-$(date -u +%Y%m%dT%H%M%SZ)"

# taskset execs the server, so $! is the server's own PID (what --server-pid must sample).
read -r -a server_cmd <<<"$server --listen 127.0.0.1:$port $server_args"
[[ -n "${SERVER_CPUS:-}" ]] && server_cmd=(taskset -c "$SERVER_CPUS" "${server_cmd[@]}")
"${server_cmd[@]}" >"$out.server.log" 2>&1 &
spid=$!
stop_server() {
  if kill -0 "$spid" 2>/dev/null; then
    kill -TERM "$spid" 2>/dev/null || true
    # Bounded: give it 10 s to close clients and exit, then kill.
    for _ in $(seq 1 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$spid" 2>/dev/null || true
  fi
  wait "$spid" 2>/dev/null || true
}
trap stop_server EXIT

# Wait up to 20 s for the server to listen.
for _ in $(seq 1 200); do
  listening "$port" && break
  kill -0 "$spid" 2>/dev/null || { echo "error: tickcast exited; see $out.server.log" >&2; exit 1; }
  sleep 0.1
done
listening "$port" || { echo "error: tickcast did not listen on $port within 20 s" >&2; exit 1; }

echo "tickcast pid $spid on 127.0.0.1:$port ($server_args); results: $out.*" >&2
status=0
loadgen_cmd=("$loadgen")
[[ -n "${LOADGEN_CPUS:-}" ]] && loadgen_cmd=(taskset -c "$LOADGEN_CPUS" "$loadgen")
"${loadgen_cmd[@]}" --scenario "$scenario" --url "ws://127.0.0.1:$port/ws" \
  --server-pid "$spid" --json-out "$out.json" --plot "$out.svg" "$@" | tee "$out.txt" || status=$?
stop_server
trap - EXIT
exit "$status"
