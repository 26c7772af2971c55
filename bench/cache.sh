#!/usr/bin/env bash
# bench/cache.sh -- the response cache's figures (issue 15): what a hit costs and serves.
#
#   bash bench/cache.sh                     # 6 rounds of 5 s each pass: about 4 minutes
#   ROUNDS=10 DURATION=10 bash bench/cache.sh
#
# Targets: a hit adds <= 1 ms at c=1 over the direct mock (p50 latency), and serves >= 3x the
# requests/s of a priced miss at c=32. One gateway (gunicorn with portal/gunicorn_conf.py,
# WEB_WORKERS x WEB_THREADS) on the bench database and Redis, the harness's nginx mock as the
# provider; the bench tenant's `bench-cache` group has the cache on (bench/setup_bench.py).
# Passes, alternated in rounds so that the machine's drift hits them alike:
#   direct c=1   the mock itself (wrk straight to 127.0.0.1:18080)
#   hit c=1      the same request again and again through the gateway: every one a hit
#   hit c=32
#   miss c=32    every request different (bench/wrk/cache_miss.lua): hold, provider call,
#                capture, and the cache's lookup, fill lock and store
# Prints each round and the medians: hit p50 - direct p50 (target <= 1 ms) and hit RPS / miss RPS
# at c=32 (target >= 3), and the gateway's CPU ms per request for each pass.
#
# The common path (a group without the cache, one target) must not be slower than before: that
# is bench/ab.sh with this checkout as B and the code before the cache as A, e.g.
#   git worktree add /tmp/kt-before <commit before the cache> && (cd /tmp/kt-before && make install)
#   REPO_A=/tmp/kt-before DB_A=postgres://postgres@127.0.0.1:5432/cb_bench_before bash bench/ab.sh
# (DB_A migrated and set up by that checkout's bench/setup_bench.py; both sides use the group
# without the cache, kt_cg_bench_fast_...).
#
# Needs what bench/gateway.sh needs (run it once first: bench database, nginx, wrk).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=${HARNESS:-$(cd "$REPO/../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}
DURATION=${DURATION:-5} ROUNDS=${ROUNDS:-6}
DB=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/cb_pricing_bench}
REDIS=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/4}
WEB_WORKERS=${WEB_WORKERS:-2} WEB_THREADS=${WEB_THREADS:-512}
OUT=$(mktemp -d /tmp/kt-cache-bench.XXXX)
PY="$REPO/.venv/bin/python"
CACHE_AUTH="Bearer kt_cg_bench_cache_0123456789"

DATABASE_URL=$DB REDIS_URL=$REDIS "$PY" "$REPO/manage.py" migrate -v0
DATABASE_URL=$DB REDIS_URL=$REDIS "$PY" "$REPO/bench/setup_bench.py" setup \
    --fast-url http://127.0.0.1:18080/v1 >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mkdir -p "$OUT/mock/tmp" "$OUT/mock/logs"
setsid nginx -p "$OUT/mock/" -c "$HARNESS/nginx/mock.conf" >/dev/null 2>&1 </dev/null &
MOCK=$!
# Without the mock (e.g. nginx lacking its echo module) every round would time 502s: stop here.
for _ in $(seq 50); do curl -fso /dev/null -X POST http://127.0.0.1:18080/v1/chat/completions -d '{}' && break; sleep 0.1; done
curl -fso /dev/null -X POST http://127.0.0.1:18080/v1/chat/completions -d '{}' \
  || { echo "the mock upstream (nginx, $HARNESS/nginx/mock.conf) is not answering: see bench/gateway.sh's requirements" >&2; exit 1; }
PORT=$(free_port)
env DATABASE_URL="$DB" REDIS_URL="$REDIS" BENCH_UPSTREAM_KEY=sk-bench KT_UPSTREAM_ALLOW_HOSTS=127.0.0.1 \
    DEBUG=false KT_HOST=127.0.0.1 PORT="$PORT" WEB_WORKERS="$WEB_WORKERS" WEB_THREADS="$WEB_THREADS" \
    setsid "$REPO/.venv/bin/gunicorn" -c "$REPO/portal/gunicorn_conf.py" --chdir "$REPO" \
    portal.wsgi:application >"$OUT/gateway.log" 2>&1 </dev/null &
GW=$!
trap 'kill -TERM -- -$GW -$MOCK 2>/dev/null || true' EXIT
GATEWAY="http://127.0.0.1:$PORT/v1/chat/completions"
for _ in $(seq 100); do
  curl -fso /dev/null "http://127.0.0.1:$PORT/v1/models" -H "Authorization: $CACHE_AUTH" && break
  sleep 0.2
done
# Warm-up: connections, prepared statements, and the entry every hit pass reads.
BENCH_AUTH="$CACHE_AUTH" wrk -t1 -c32 -d5s -s "$HARNESS/wrk/chat.lua" "$GATEWAY" >/dev/null 2>&1
BENCH_AUTH="$CACHE_AUTH" wrk -t1 -c32 -d3s -s "$REPO/bench/wrk/cache_miss.lua" "$GATEWAY" >/dev/null 2>&1
curl -fsS -o /dev/null -D - "$GATEWAY" -H "Authorization: $CACHE_AUTH" -H "Content-Type: application/json" \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence, please."}],"max_tokens":64,"temperature":0.2}' \
    | grep -i '^x-kt-cache: hit' >/dev/null || { echo "the hit pass would not hit (x-kt-cache)" >&2; exit 1; }
sleep 1

ticks() { local t=0 s; for p in "$@"; do s=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0); t=$((t + s)); done; echo $t; }
pass() {  # name conc url script auth
  local pids g0 g1
  pids=$(pgrep -g "$GW" | tr '\n' ' ')
  g0=$(ticks $pids)
  BENCH_AUTH="$5" wrk -t1 -c"$2" -d"${DURATION}s" --latency -s "$4" "$3" >"$OUT/wrk.txt" 2>&1
  g1=$(ticks $pids)
  echo "$round $1 $(awk '/requests in/{print $1}' "$OUT/wrk.txt") $((g1 - g0)) \
$(awk '$1 == "50%" {print $2}' "$OUT/wrk.txt") $(awk '/Non-2xx/{print $NF}' "$OUT/wrk.txt")" >>"$OUT/rounds.txt"
  sleep 1
}
echo "cache bench: ${DURATION}s passes x $ROUNDS rounds; gunicorn $WEB_WORKERS x $WEB_THREADS; output $OUT"
for round in $(seq "$ROUNDS"); do
  pass direct_c1 1 http://127.0.0.1:18080/v1/chat/completions "$HARNESS/wrk/chat.lua" "Bearer sk-bench"
  pass hit_c1 1 "$GATEWAY" "$HARNESS/wrk/chat.lua" "$CACHE_AUTH"
  pass hit_c32 32 "$GATEWAY" "$HARNESS/wrk/chat.lua" "$CACHE_AUTH"
  pass miss_c32 32 "$GATEWAY" "$REPO/bench/wrk/cache_miss.lua" "$CACHE_AUTH"
done
python3 - "$OUT/rounds.txt" "$DURATION" "$(getconf CLK_TCK)" <<'PYEOF'
import statistics, sys
secs, hz = float(sys.argv[2]), int(sys.argv[3])
def ms(text):  # wrk: 812.00us, 1.23ms, 2.00s
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)
by = {}
for line in open(sys.argv[1]):
    rnd, name, n, ticks, p50, *bad = line.split()
    rps = int(n) / secs
    cpu = int(ticks) * 1000 / hz / int(n) if not name.startswith("direct") else 0.0
    by.setdefault(name, []).append((rps, ms(p50), cpu))
    print(f"round {rnd} {name:10} {rps:8.0f} req/s  p50 {ms(p50):6.2f} ms  gateway CPU {cpu:.2f} ms/req"
          + (f"  NON-2xx {bad[0]}" if bad else ""))
med = {k: tuple(statistics.median(v[i] for v in vals) for i in range(3)) for k, vals in by.items()}
for k, (rps, p50, cpu) in med.items():
    print(f"median {k:10} {rps:8.0f} req/s  p50 {p50:6.2f} ms  gateway CPU {cpu:.2f} ms/req")
added = med["hit_c1"][1] - med["direct_c1"][1]
ratio = med["hit_c32"][0] / med["miss_c32"][0]
print(f"a hit adds {added:.2f} ms at c=1 over the direct mock (target <= 1 ms): {'ok' if added <= 1 else 'MISSED'}")
print(f"hit / priced miss at c=32: {ratio:.2f}x requests/s (target >= 3x): {'ok' if ratio >= 3 else 'MISSED'}")
PYEOF
DATABASE_URL=$DB "$PY" "$REPO/bench/setup_bench.py" report | sed 's/^ACCOUNTINGJSON //' >"$OUT/accounting.json"
echo "accounting after the run: $OUT/accounting.json" >&2
