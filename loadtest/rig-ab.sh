#!/usr/bin/env bash
# Any tickcast builds (and Bun) side by side on the peers rig, all fed over TCP by the rig's feeder: rounds
# alternating the servers at each scenario, one JSON line per run from the rig. For before/after comparisons of two
# commits (docs/performance.md, "2026-12-06").
#
#   RIG=/tmp/peers BINS="pre=/tmp/tc-a post=/tmp/tc-b" loadtest/rig-ab.sh
#   RIG=/tmp/peers BINS="main=target/release/tickcast bun=bun" SCENARIOS="S1-300k:1000:3000 S2:1000:1000" ROUNDS=3 loadtest/rig-ab.sh
#
# BINS: label=path pairs (path `bun` runs the rig's bun/server-feed.js); SCENARIOS: name:connections:R (ticks/s over
# 100 topics, 10 topics per connection). Defaults: S1-1M and S2, 4 rounds.
set -u
ROUNDS=${ROUNDS:-4}; SCENARIOS=${SCENARIOS:-S1-1M:1000:10000 S2:1000:1000}
[ -n "${BINS:-}" ] || { sed -n '2,10p' "$0"; exit 2; }
resolved=""
for lb in $BINS; do
  path=${lb#*=}; [ "$path" = bun ] || path=$(realpath "$path")
  resolved="$resolved ${lb%%=*}=$path"
done
cd "${RIG:-/tmp/peers}" || exit 1
OUT=${OUT:-$(mktemp -d)}
port=${PORT_BASE:-9700}
for _ in $(seq "$ROUNDS"); do
  for sc in $SCENARIOS; do
    IFS=: read -r name n R <<<"$sc"
    for lb in $resolved; do
      label=${lb%%=*}; bin=${lb#*=}
      port=$((port + 1)); export PORT=$port FEED_PORT=$((port + 1000))
      if [ "$bin" = bun ]; then
        cmd="bun/node_modules/.bin/bun bun/server-feed.js"
      else
        printf '[[feeds]]\nkind = "tcp"\nname = "feed"\nlisten = "127.0.0.1:%s"\n' "$FEED_PORT" > "$OUT/fed-$PORT.toml"
        cmd="$bin --listen 127.0.0.1:$PORT --config $OUT/fed-$PORT.toml --log warn"
      fi
      ./run-feed.sh "$label" "$cmd" "$n" 100 10 "$R" 3 8 "$name-$label" 2>/dev/null | tail -1
    done
  done
done
