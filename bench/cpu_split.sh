#!/usr/bin/env bash
# bench/cpu_split.sh -- where the machine's CPU goes per gateway request: the gateway's
# processes, PostgreSQL's, and everything (wrk, the mock, the kernel) at one concurrency.
#
#   bash bench/cpu_split.sh                 # json, c=32, 10 s, 3 rounds
#   MODE=stream CONC=64 ROUNDS=5 bash bench/cpu_split.sh
#
# Run bench/gateway.sh once first: it creates the bench database and tenants. This starts the
# harness's mock upstream (127.0.0.1:18080) and our gateway (portal/gunicorn_conf.py) on a
# free port, warms up, then per round runs wrk and reads CPU ticks from /proc for the gateway's
# process group, every postgres process and the whole machine. 2 cores / (machine ms per
# request) is the most requests per second this machine can serve in that configuration.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=${HARNESS:-$(cd "$REPO/../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}
CONC=${CONC:-32} DURATION=${DURATION:-10} ROUNDS=${ROUNDS:-3} MODE=${MODE:-json}
OUT=$(mktemp -d /tmp/kt-cpu-split.XXXX)
export BENCH_AUTH="Bearer kt_cg_bench_fast_0123456789"
[ "$MODE" = stream ] && export BENCH_STREAM=1

mkdir -p "$OUT/mock/tmp" "$OUT/mock/logs"
setsid nginx -p "$OUT/mock/" -c "$HARNESS/nginx/mock.conf" >/dev/null 2>&1 </dev/null &
MOCK=$!
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/cb_pricing_bench} \
REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/4} BENCH_UPSTREAM_KEY=sk-bench KT_UPSTREAM_ALLOW_HOSTS=127.0.0.1 DEBUG=false \
KT_HOST=127.0.0.1 PORT=$PORT setsid "$REPO/.venv/bin/gunicorn" -c "$REPO/portal/gunicorn_conf.py" \
    --chdir "$REPO" portal.wsgi:application >"$OUT/gateway.log" 2>&1 </dev/null &
GW=$!
trap 'kill -TERM -- -$GW -$MOCK 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fso /dev/null "http://127.0.0.1:$PORT/v1/models" -H "Authorization: $BENCH_AUTH" && break; sleep 0.2; done
URL=http://127.0.0.1:$PORT/v1/chat/completions
wrk -t1 -c"$CONC" -d5s -s "$HARNESS/wrk/chat.lua" "$URL" >/dev/null 2>&1  # warm-up: threads, pools, caches
sleep 1

ticks() { local t=0 s; for p in "$@"; do s=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0); t=$((t + s)); done; echo $t; }
machine() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
echo "mode=$MODE c=$CONC ${DURATION}s x $ROUNDS, $(nproc) cores (ms of CPU per request)"
for round in $(seq "$ROUNDS"); do
  gw_pids=$(pgrep -g "$GW" | tr '\n' ' '); pg_pids=$(pgrep -u postgres | tr '\n' ' ')
  g0=$(ticks $gw_pids); p0=$(ticks $pg_pids); m0=$(machine)
  wrk -t1 -c"$CONC" -d"${DURATION}s" -s "$HARNESS/wrk/chat.lua" "$URL" >"$OUT/wrk.txt" 2>&1
  g1=$(ticks $gw_pids); p1=$(ticks $pg_pids); m1=$(machine)
  requests=$(awk '/requests in/{print $1}' "$OUT/wrk.txt")
  python3 - "$round" "$requests" "$DURATION" $((g1 - g0)) $((p1 - p0)) $((m1 - m0)) "$(getconf CLK_TCK)" <<'PYEOF'
import sys
rnd, n, secs, g, p, m, hz = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), *map(int, sys.argv[4:])
ms = lambda ticks: ticks * 1000 / hz / n
print(f"round {rnd}: {n / secs:.0f} req/s  gateway {ms(g):.2f}  postgres {ms(p):.2f}  "
      f"rest {ms(m - g - p):.2f}  machine {ms(m):.2f}")
PYEOF
  sleep 1
done
