# Sourced by ../shared/bench/run_peers.sh (TARGETS_FILE) from bench/gateway.sh: the target
# `ours` = our gateway under gunicorn on PostgreSQL, then the long-stream test on the same
# instance. Uses the harness's start_bg / wait_http / bench_target / stop_pgid.
target_ours() { run_ours ours; }
# The same with KT_GATEWAY_ASYNC_COMMIT=true: what the two WAL flushes per request cost.
target_ours_async() { STREAMS="" run_ours ours_async KT_GATEWAY_ASYNC_COMMIT=true; }

run_ours() {  # NAME [VAR=value ...]
  local name=$1 g port; shift
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  start_bg g "$name" env "$@" DATABASE_URL="$BENCH_DATABASE_URL" REDIS_URL="$BENCH_REDIS_URL" \
      KT_HOST=127.0.0.1 PORT="$port" WEB_WORKERS="$WEB_WORKERS" WEB_THREADS="$WEB_THREADS" \
      BENCH_UPSTREAM_KEY=sk-bench KT_UPSTREAM_ALLOW_HOSTS=127.0.0.1 DEBUG=false \
      "$REPO/.venv/bin/gunicorn" -c "$REPO/portal/gunicorn_conf.py" --chdir "$REPO" \
      portal.wsgi:application
  echo "$g" >"$BENCH_OUT/$name.pgid"
  if wait_http "http://127.0.0.1:$port/v1/models" 60; then
    log "$name up on $port: gunicorn $WEB_WORKERS workers x $WEB_THREADS threads"
    if [ "${BENCH_PEERS_SKIP:-0}" != 1 ]; then
      bench_target "$name" "http://127.0.0.1:$port/v1/chat/completions" "Bearer $BENCH_KEY_FAST" "$g"
    fi
    if [ -n "${STREAMS:-}" ]; then
      wait_idle "$g"
      log "long streams: $STREAMS concurrent, slow upstream $BENCH_SLOW_URL"
      "$BENCH_VENV/bin/python" "$REPO/bench/streams.py" \
          "http://127.0.0.1:$port/v1/chat/completions" --auth "Bearer $BENCH_KEY_SLOW" \
          --pgid "$g" -n $STREAMS | tee "$BENCH_OUT/streams.txt" >&2
    fi
  else
    tail -30 "$RUN_DIR/$name/out.log" >&2
  fi
  stop_pgid "$g"
}
