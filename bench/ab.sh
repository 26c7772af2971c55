#!/usr/bin/env bash
# bench/ab.sh -- two gateway configurations compared in alternating rounds (json or stream).
#
#   A="WEB_THREADS=512" B="WEB_THREADS=8" bash bench/ab.sh
#   A="" B="KT_GATEWAY_ASYNC_COMMIT=true" MODE=stream CONC=64 ROUNDS=10 bash bench/ab.sh
#   REPO_A=/tmp/kt-old DB_A=postgres://postgres@127.0.0.1:5432/cb_bench_old bash bench/ab.sh
#   BENCH_AUTH="Bearer kt_cg_bench_cache_0123456789" REPO_A=/tmp/kt-old DB_A=... bash bench/ab.sh
#                                      # cache hits of two versions (bench/cache.sh's hit pass)
#
# REPO_A / REPO_B run a side from another checkout (its own .venv; e.g. `git worktree add
# /tmp/kt-old <commit>`) to compare two versions of the code; DB_A / DB_B give that side its own
# bench database (migrated and set up by that checkout's bench/setup_bench.py), since two
# versions may not share a schema.
#
# This machine's speed drifts by 20-40 % within an hour, so two configurations measured one
# after the other compare the drift as much as the change. This starts both gateways at once
# (each its own gunicorn with portal/gunicorn_conf.py, the environment A or B on top) and
# alternates short wrk rounds between them; each round prints requests/s and the gateway's
# CPU ms per request, and at the end the medians. Run bench/gateway.sh once first (bench database).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=${HARNESS:-$(cd "$REPO/../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}
CONC=${CONC:-32} DURATION=${DURATION:-5} ROUNDS=${ROUNDS:-8} MODE=${MODE:-json}
A=${A-} B=${B-}
REPO_A=${REPO_A:-$REPO} REPO_B=${REPO_B:-$REPO}
DEFAULT_DB=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/cb_pricing_bench}
DB_A=${DB_A:-$DEFAULT_DB} DB_B=${DB_B:-$DEFAULT_DB}
OUT=$(mktemp -d /tmp/kt-ab.XXXX)
# The group without the cache; BENCH_AUTH="Bearer kt_cg_bench_cache_0123456789" times cache hits
# (bench/setup_bench.py's `bench-cache` group: every request after the first is a hit).
export BENCH_AUTH=${BENCH_AUTH:-"Bearer kt_cg_bench_fast_0123456789"}
[ "$MODE" = stream ] && export BENCH_STREAM=1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start_gateway() {  # $1 = name, $2 = port, $3 = "VAR=value ..." on top of the defaults, $4 = checkout, $5 = database
  # shellcheck disable=SC2086
  env DATABASE_URL="$5" \
    REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379/4}" BENCH_UPSTREAM_KEY=sk-bench KT_UPSTREAM_ALLOW_HOSTS=127.0.0.1 DEBUG=false \
    KT_HOST=127.0.0.1 PORT="$2" $3 setsid "$4/.venv/bin/gunicorn" -c "$4/portal/gunicorn_conf.py" \
    --chdir "$4" portal.wsgi:application >"$OUT/$1.log" 2>&1 </dev/null &
  echo $!
}

mkdir -p "$OUT/mock/tmp" "$OUT/mock/logs"
setsid nginx -p "$OUT/mock/" -c "$HARNESS/nginx/mock.conf" >/dev/null 2>&1 </dev/null &
MOCK=$!
# Without the mock (e.g. nginx lacking its echo module) every round would time 502s: stop here.
for _ in $(seq 50); do curl -fso /dev/null -X POST http://127.0.0.1:18080/v1/chat/completions -d '{}' && break; sleep 0.1; done
curl -fso /dev/null -X POST http://127.0.0.1:18080/v1/chat/completions -d '{}' \
  || { echo "the mock upstream (nginx, $HARNESS/nginx/mock.conf) is not answering: see bench/gateway.sh's requirements" >&2; exit 1; }
PORT_A=$(free_port) PORT_B=$(free_port)
GW_A=$(start_gateway a "$PORT_A" "$A" "$REPO_A" "$DB_A")
GW_B=$(start_gateway b "$PORT_B" "$B" "$REPO_B" "$DB_B")
trap 'kill -TERM -- -$GW_A -$GW_B -$MOCK 2>/dev/null || true' EXIT
for port in "$PORT_A" "$PORT_B"; do
  for _ in $(seq 100); do curl -fso /dev/null "http://127.0.0.1:$port/v1/models" -H "Authorization: $BENCH_AUTH" && break; sleep 0.2; done
  wrk -t1 -c"$CONC" -d5s -s "$HARNESS/wrk/chat.lua" "http://127.0.0.1:$port/v1/chat/completions" >/dev/null 2>&1
done
sleep 1

ticks() { local t=0 s; for p in "$@"; do s=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0); t=$((t + s)); done; echo $t; }
echo "mode=$MODE c=$CONC ${DURATION}s rounds x $ROUNDS; A: ${A:-defaults} ($REPO_A); B: ${B:-defaults} ($REPO_B)"
for round in $(seq "$ROUNDS"); do
  for side in a b; do
    if [ $side = a ]; then port=$PORT_A gw=$GW_A; else port=$PORT_B gw=$GW_B; fi
    pids=$(pgrep -g "$gw" | tr '\n' ' ')
    g0=$(ticks $pids)
    wrk -t1 -c"$CONC" -d"${DURATION}s" --latency -s "$HARNESS/wrk/chat.lua" \
      "http://127.0.0.1:$port/v1/chat/completions" >"$OUT/wrk.txt" 2>&1
    g1=$(ticks $pids)
    n=$(awk '/requests in/{print $1}' "$OUT/wrk.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$OUT/wrk.txt")
    echo "$round $side $n $((g1 - g0)) $p99" >>"$OUT/rounds.txt"
    sleep 1
  done
done
python3 - "$OUT/rounds.txt" "$DURATION" "$(getconf CLK_TCK)" <<'PYEOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
secs, hz = float(sys.argv[2]), int(sys.argv[3])
by = {"a": [], "b": []}
for rnd, side, n, ticks, p99 in rows:
    rps, cpu = int(n) / secs, int(ticks) * 1000 / hz / int(n)
    by[side].append((rps, cpu))
    print(f"round {rnd} {side.upper()}: {rps:6.0f} req/s  gateway CPU {cpu:.2f} ms/req  p99 {p99}")
for side, values in by.items():
    rps = statistics.median(v[0] for v in values)
    cpu = statistics.median(v[1] for v in values)
    print(f"median {side.upper()}: {rps:.0f} req/s, gateway CPU {cpu:.2f} ms/req")
a, b = (statistics.median(v[0] for v in by[s]) for s in "ab")
wins = sum(rb[0] > ra[0] for ra, rb in zip(by["a"], by["b"]))
print(f"B/A requests/s: {b / a:.2f} (B ahead in {wins} of {len(by['a'])} rounds)")
PYEOF
