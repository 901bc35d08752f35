#!/usr/bin/env bash
# Runs one load-generator scenario against a freshly started release tickcast.
#
#   loadtest/run.sh SCENARIO [extra tickcast-loadgen flags...]
#
# SCENARIO is a bundled name (smoke, fanout-1k, fanout-10k, slow-consumers, c50k, soak; see
# `tickcast-loadgen --list-scenarios`) or a path to a .toml file. The script builds release
# binaries, starts tickcast on a free loopback port with the scenario's [server] symbols/rate
# (as flags) and its other [server] keys (socket_send_buffer_bytes, policy, max_queued_frames:
# as a config file, SCENARIO-STAMP.server.toml), runs the scenario with --server-pid, stops the
# server, and leaves under loadtest/results/:
#   SCENARIO-STAMP.json (full report), .svg (plot), .txt (table), .server.log[, .server.toml]
# TICKCAST_* variables reach the server and override its config file (TICKCAST_POLICY=drop_oldest).
#
# Env: CARGO_TARGET_DIR (cargo's target dir), SERVER_CPUS / LOADGEN_CPUS (taskset CPU lists,
# e.g. SERVER_CPUS=0 LOADGEN_CPUS=1 to keep them off each other's core), SKIP_BUILD=1.
#
# The soak scenario (connect/subscribe/unsubscribe/disconnect churn with slow readers) also
# samples the server's RSS and open fds every SOAK_SAMPLE_S seconds (default 5) into
# SCENARIO-STAMP.proc.tsv and ends with a verdict (exit 3 when it fails): RSS at the end of the
# run within 10% of its steady state (the mean over 20-50% of the run), and the fd count back to
# its pre-run baseline within 15 s of the clients leaving. SOAK_SECONDS overrides its 600 s.
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

# The scenario's server settings that tickcast takes only from a config file.
server_config=$("$loadgen" --scenario "$scenario" --print-server-config)
if [[ -n "$server_config" ]]; then
  printf '%s\n' "$server_config" >"$out.server.toml"
  server_args="$server_args --config $out.server.toml"
fi

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

echo "tickcast pid $spid on 127.0.0.1:$port ($server_args${TICKCAST_POLICY:+; TICKCAST_POLICY=$TICKCAST_POLICY overrides the policy}); results: $out.*" >&2

soak=
[[ "$name" == soak ]] && soak=1
# "RSS_KIB FDS" of the server, empty once it is gone.
proc_sample() {
  local rss
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$spid/status" 2>/dev/null) || return 0
  [[ -n "$rss" ]] && echo "$rss $(find "/proc/$spid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
}
extra=()
if [[ -n "$soak" ]]; then
  [[ -n "${SOAK_SECONDS:-}" ]] && extra=(--duration "$SOAK_SECONDS")
  sleep 1
  read -r base_rss base_fds <<<"$(proc_sample)"
  every=${SOAK_SAMPLE_S:-5}
  printf 't_s\trss_kib\tfds\n' >"$out.proc.tsv"
  (
    t0=$SECONDS
    while kill -0 "$spid" 2>/dev/null && [[ ! -e "$out.proc.stop" ]]; do
      s=$(proc_sample) && [[ -n "$s" ]] && printf '%s\t%s\n' "$((SECONDS - t0))" "${s// /$'\t'}" >>"$out.proc.tsv"
      sleep "$every"
    done
  ) &
  sampler=$!
fi

status=0
loadgen_cmd=("$loadgen")
[[ -n "${LOADGEN_CPUS:-}" ]] && loadgen_cmd=(taskset -c "$LOADGEN_CPUS" "$loadgen")
"${loadgen_cmd[@]}" --scenario "$scenario" --url "ws://127.0.0.1:$port/ws" \
  --server-pid "$spid" --json-out "$out.json" --plot "$out.svg" "${extra[@]}" "$@" | tee "$out.txt" || status=$?

if [[ -n "$soak" ]]; then
  touch "$out.proc.stop"
  wait "$sampler" 2>/dev/null || true
  rm -f "$out.proc.stop"
  # The clients are gone: wait (bounded) for the fd count to come back.
  after_rss= after_fds=
  for _ in $(seq 1 150); do
    read -r after_rss after_fds <<<"$(proc_sample)"
    [[ -n "$after_fds" && "$after_fds" -le "$base_fds" ]] && break
    sleep 0.1
  done
  verdict=0
  {
    echo
    echo "soak: server RSS and open fds over time (every ${SOAK_SAMPLE_S:-5} s; $out.proc.tsv)"
    awk -F'\t' -v base_rss="$base_rss" -v base_fds="$base_fds" -v after_rss="$after_rss" -v after_fds="$after_fds" '
      NR > 1 { t[++n] = $1; r[n] = $2; f[n] = $3; if ($3 > peak) peak = $3 }
      END {
        step = n > 24 ? int((n + 23) / 24) : 1
        printf "  %6s %10s %6s\n", "t(s)", "RSS(MiB)", "fds"
        for (i = 1; i <= n; i += step) printf "  %6d %10.1f %6d\n", t[i], r[i] / 1024, f[i]
        if (n && (n - 1) % step) printf "  %6d %10.1f %6d\n", t[n], r[n] / 1024, f[n]
        if (n < 6) { print "soak verdict: FAIL (only " n " samples; run longer)"; exit 1 }
        lo = int(n * 0.2) + 1; hi = int(n * 0.5); if (hi < lo) hi = lo
        for (i = lo; i <= hi; i++) { s += r[i]; k++ }
        steady = s / k
        e = 0; for (i = n - 2; i <= n; i++) e += r[i]; e /= 3
        rss_ok = e <= steady * 1.10
        fds_ok = after_fds != "" && after_fds <= base_fds
        printf "soak: RSS before %.1f MiB, steady %.1f MiB (mean over samples %d-%d), end %.1f MiB (%+.1f%%), after the clients left %.1f MiB\n", base_rss / 1024, steady / 1024, lo, hi, e / 1024, (e - steady) / steady * 100, after_rss / 1024
        printf "soak: fds before %d, peak %d, after the clients left %s\n", base_fds, peak, after_fds
        printf "soak verdict: RSS %s (end within 10%% of steady), fds %s (back to baseline) => %s\n", rss_ok ? "ok" : "FAIL", fds_ok ? "ok" : "FAIL", (rss_ok && fds_ok) ? "PASS" : "FAIL"
        exit !(rss_ok && fds_ok)
      }' "$out.proc.tsv" || verdict=$?
  } >"$out.soak.txt"
  tee -a "$out.txt" <"$out.soak.txt"
  rm -f "$out.soak.txt"
  [[ "$verdict" != 0 && "$status" == 0 ]] && status=3
fi
stop_server
trap - EXIT
exit "$status"
