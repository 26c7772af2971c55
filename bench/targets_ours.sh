# Sourced by ../shared/bench/run_peers.sh (TARGETS_FILE) from bench/gateway.sh: the target
# `ours` = our gateway under gunicorn on PostgreSQL, then the long-stream test on the same
# instance. Uses the harness's start_bg / wait_http / bench_target / stop_pgid.
target_ours() {
  local g port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  start_bg g ours env DATABASE_URL="$BENCH_DATABASE_URL" REDIS_URL="$BENCH_REDIS_URL" \
      KT_HOST=127.0.0.1 PORT="$port" WEB_WORKERS="$WEB_WORKERS" WEB_THREADS="$WEB_THREADS" \
      BENCH_UPSTREAM_KEY=sk-bench DEBUG=false \
      "$REPO/.venv/bin/gunicorn" -c "$REPO/chargeback/gunicorn_conf.py" --chdir "$REPO" \
      ${BENCH_PYTHONPATH:+--pythonpath "$BENCH_PYTHONPATH"} "${BENCH_APP:-chargeback.wsgi:application}"
  echo "$g" >"$BENCH_OUT/ours.pgid"
  if wait_http "http://127.0.0.1:$port/v1/models" 60; then
    log "ours up on $port: gunicorn $WEB_WORKERS workers x $WEB_THREADS threads"
    if [ "${BENCH_PEERS_SKIP:-0}" != 1 ]; then
      bench_target ours "http://127.0.0.1:$port/v1/chat/completions" "Bearer $BENCH_KEY_FAST" "$g"
    fi
    if [ -n "${STREAMS:-}" ]; then
      wait_idle "$g"
      log "long streams: $STREAMS concurrent, slow upstream $BENCH_SLOW_URL"
      "$BENCH_VENV/bin/python" "$REPO/bench/streams.py" \
          "http://127.0.0.1:$port/v1/chat/completions" --auth "Bearer $BENCH_KEY_SLOW" \
          --pgid "$g" -n $STREAMS | tee "$BENCH_OUT/streams.txt" >&2
    fi
  else
    tail -30 "$RUN_DIR/ours/out.log" >&2
  fi
  stop_pgid "$g"
}
