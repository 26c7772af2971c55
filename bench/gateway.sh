#!/usr/bin/env bash
# bench/gateway.sh -- our gateway against the peers (direct mock, nginx, LiteLLM) with full
# accounting on PostgreSQL, plus the long-stream test. Prints a summary (docs/performance.md).
#
#   bash bench/gateway.sh                       # everything: about 12 minutes
#   PEERS="direct" DURATION=5 bash bench/gateway.sh        # quicker: ours against the mock only
#   WEB_WORKERS=2 WEB_THREADS=64 STREAMS="250 500" bash bench/gateway.sh
#   PEERS="direct" STREAMS="" bash bench/gateway.sh        # no long-stream test
#   OURS="ours" ...                                         # without the async-commit variant
#   BENCH_PEERS_SKIP=1 STREAMS="500 1000" PEERS="" bash bench/gateway.sh   # streams only
#
# Needs: `make install` done, PostgreSQL on 127.0.0.1:5432, and what the shared harness
# installs (nginx-light + echo module, wrk, /tmp/bench-venv, /tmp/litellm-venv).
# Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/cb_pricing_bench,
# created and migrated here), BENCH_REDIS_URL, HARNESS (default ../shared/bench from the repo),
# WEB_WORKERS / WEB_THREADS (gunicorn, as portal/gunicorn_conf.py), PEERS, STREAMS,
# DURATION, BENCH_OUT (default /tmp/kt-bench/<stamp>). Everything it starts runs in its own
# process group and is stopped at the end.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=${HARNESS:-$(cd "$REPO/../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}
STAMP=$(date +%Y%m%d-%H%M%S)
export REPO
export BENCH_OUT=${BENCH_OUT:-/tmp/kt-bench/$STAMP}
export BENCH_DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/cb_pricing_bench}
export BENCH_REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/4}
export WEB_WORKERS=${WEB_WORKERS:-2}
export WEB_THREADS=${WEB_THREADS:-512}
export STREAMS=${STREAMS-"250 500 1000"}
export BENCH_KEY_FAST=kt_cg_bench_fast_0123456789 BENCH_KEY_SLOW=kt_cg_bench_slow_0123456789
PEERS=${PEERS-"direct nginx litellm litellm2"}
OURS=${OURS-"ours ours_async"}
mkdir -p "$BENCH_OUT/slow/tmp"
PY="$REPO/.venv/bin/python"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# 1. The bench database: created if missing, migrated (the catalog comes with the migration).
"$PY" - "$BENCH_DATABASE_URL" <<'PYEOF'
import sys, psycopg
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1]); name = url.path.lstrip("/")
with psycopg.connect(sys.argv[1].rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        conn.execute(f'CREATE DATABASE "{name}"')
PYEOF
DATABASE_URL=$BENCH_DATABASE_URL REDIS_URL=$BENCH_REDIS_URL "$PY" "$REPO/manage.py" migrate -v0

# 2. The slow SSE upstream for the long-stream test, on a free port.
SLOW_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed "s/__PORT__/$SLOW_PORT/" "$REPO/bench/nginx/slow.conf.template" >"$BENCH_OUT/slow/slow.conf"
setsid nginx -p "$BENCH_OUT/slow/" -c "$BENCH_OUT/slow/slow.conf" -e "$BENCH_OUT/slow/error.log" \
    >"$BENCH_OUT/slow/out.log" 2>&1 </dev/null &
SLOW_PGID=$!
trap 'kill -TERM -- -$SLOW_PGID 2>/dev/null || true' EXIT
export BENCH_SLOW_URL=http://127.0.0.1:$SLOW_PORT/v1

# 3. Tenants, targets, funded wallets.
DATABASE_URL=$BENCH_DATABASE_URL REDIS_URL=$BENCH_REDIS_URL \
    "$PY" "$REPO/bench/setup_bench.py" setup --fast-url http://127.0.0.1:18080/v1 \
    --slow-url "$BENCH_SLOW_URL" >&2
DATABASE_URL=$BENCH_DATABASE_URL "$PY" "$REPO/bench/setup_bench.py" report \
    | sed 's/^ACCOUNTINGJSON //' >"$BENCH_OUT/accounting.before.json"

# 4. The shared harness: peers, then ours (bench/targets_ours.sh), results in $BENCH_OUT.
log "harness $HARNESS, targets: $PEERS $OURS; output $BENCH_OUT"
TARGETS="$PEERS $OURS" TARGETS_FILE="$REPO/bench/targets_ours.sh" RUN_DIR="$BENCH_OUT/run" \
    RESULTS_DIR="$BENCH_OUT" bash "$HARNESS/run_peers.sh" >"$BENCH_OUT/harness.md" || true

# 5. Accounting after the run, and the summary.
DATABASE_URL=$BENCH_DATABASE_URL "$PY" "$REPO/bench/setup_bench.py" report \
    | sed 's/^ACCOUNTINGJSON //' >"$BENCH_OUT/accounting.after.json"
"$PY" "$REPO/bench/summary.py" "$BENCH_OUT" | tee "$BENCH_OUT/summary.md"
