#!/usr/bin/env bash
# Progressive load test: Locust stages of growing size, a verdict per stage, reports.
#
#   ./test_performance_progressive.sh                  # 5, 10, 20, 30 users (1, 2, 3, 5 min)
#   QUICK=1 ./test_performance_progressive.sh          # about 2 minutes in all
#   START_SERVER=1 ./test_performance_progressive.sh   # also start (and stop) the server here
#   ./test_performance_progressive.sh --find-capacity  # raise users until our targets break
#
# Environment:
#   HOST           server to test (default http://127.0.0.1:8000)
#   STAGES         "users:seconds ..." (default "5:60 10:120 20:180 30:300"; QUICK: "5:20 10:20 30:50")
#   SPAWN_RATE     users started per second (default 5)
#   BURST=1        every user of a stage starts within one second (the spawn rate is the stage's
#                  size): the crowd that scans the QR code when the host says so
#   TARGET_USERS   the stage whose verdict decides the exit code (default: the largest stage)
#   RESULTS_DIR    where reports go (default results/<date-time>)
#   START_SERVER=1 start Gunicorn with gunicorn_config.py (SQLite under RESULTS_DIR/data, or
#                  DATABASE_URL), migrated, on HOST's port; stopped at the end
#   CAPACITY=1     same as --find-capacity; CAPACITY_STEPS (default "30 60 100 150 200 250 300 400"),
#                  CAPACITY_STAGE_SECONDS (default 120)
#   TARGET_JSON_P95_MS, TARGET_UPLOAD_P95_MS, TARGET_FLOW_P95_MS, TARGET_MAX_FAILURES: our targets
#
# Each stage writes results_<N>users.html and results_<N>users_*.csv in RESULTS_DIR and prints a
# table per endpoint, PASS/FAIL against the original plan's criteria and against our targets.
# A critical stage (> 5 % failures or a p95 over 30 s) stops the run. summary.md gathers it all.
# Exit code: 0 when the target stage meets our targets, 1 when it does not, 2 when critical.
set -uo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-.venv/bin/python}
LOCUST=${LOCUST:-$(dirname "$PY")/locust}
HOST=${HOST:-http://127.0.0.1:8000}
SPAWN_RATE=${SPAWN_RATE:-5}
BURST=${BURST:-0}
CAPACITY=${CAPACITY:-0}
[ "${1:-}" = "--find-capacity" ] && CAPACITY=1
if [ "${QUICK:-0}" = 1 ]; then
  STAGES=${STAGES:-"5:20 10:20 30:50"}
else
  STAGES=${STAGES:-"5:60 10:120 20:180 30:300"}
fi
RESULTS_DIR=${RESULTS_DIR:-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RESULTS_DIR"
SUMMARY="$RESULTS_DIR/summary.md"
SERVER_PID=""

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "stopping the server (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID"
    for _ in $(seq 1 60); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
  fi
}
trap stop_server EXIT

if [ "${START_SERVER:-0}" = 1 ]; then
  port=${HOST##*:}; port=${port%%/*}
  export DATA_DIR=${DATA_DIR:-$RESULTS_DIR/data}
  log "migrating and starting Gunicorn on port $port (data in $DATA_DIR, database ${DATABASE_URL:-SQLite})"
  "$PY" -m app migrate >"$RESULTS_DIR/migrate.log" 2>&1 || { cat "$RESULTS_DIR/migrate.log"; exit 2; }
  HOST=127.0.0.1 PORT=$port "$(dirname "$PY")/gunicorn" main:app -c gunicorn_config.py \
    --access-logfile /dev/null >"$RESULTS_DIR/server.log" 2>&1 &
  SERVER_PID=$!
fi

for _ in $(seq 1 120); do
  curl -sf "$HOST/api/health-check" >/dev/null && break
  if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "the server did not start:"; tail -20 "$RESULTS_DIR/server.log"; exit 2
  fi
  sleep 0.5
done
curl -sf "$HOST/api/health-check" >/dev/null || { log "no server answers at $HOST/api/health-check"; exit 2; }

# The event and its indexed photos, once for every stage (not inside a stage's time).
log "preparing the load-test event"
if ! "$PY" locustfile.py prepare --host "$HOST" --out "$RESULTS_DIR/event.json" >"$RESULTS_DIR/prepare.log" 2>&1; then
  log "preparing the event failed:"; tail -20 "$RESULTS_DIR/prepare.log"; exit 2
fi
export LOAD_EVENT_FILE="$RESULTS_DIR/event.json"

{
  echo "# Load test $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  spawn="$SPAWN_RATE users/s"; [ "$BURST" = 1 ] && spawn="burst (every user of a stage within 1 s)"
  echo "Host: $HOST; spawn: $spawn; machine: $(nproc) cores, $(uname -sr)."
  echo
} >"$SUMMARY"

# run_stage USERS SECONDS -> the verdict's exit code (0 pass, 1 fail, 2 critical)
run_stage() {
  local users=$1 seconds=$2 prefix="$RESULTS_DIR/results_${1}users" rate=$SPAWN_RATE
  [ "$BURST" = 1 ] && rate=$users
  log "== stage: $users users for ${seconds}s (spawn rate $rate/s)"
  "$LOCUST" -f locustfile.py --headless --only-summary -u "$users" -r "$rate" -t "${seconds}s" \
    --host "$HOST" --csv "$prefix" --html "$prefix.html" >"$prefix.log" 2>&1 &
  local pid=$! start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep 10
    kill -0 "$pid" 2>/dev/null || break
    if [ -s "${prefix}_stats_history.csv" ]; then
      tail -n 1 "${prefix}_stats_history.csv" | awk -F, -v t=$((SECONDS - start)) \
        '{printf "   t=%3ds users=%s req/s=%.1f failures/s=%.1f p95=%sms requests=%s failures=%s\n", t, $2, $5, $6, $12, $18, $19}'
    fi
  done
  wait "$pid"
  local locust_rc=$?
  if [ "$locust_rc" -ne 0 ] && [ "$locust_rc" -ne 1 ]; then  # 1 only means some requests failed
    log "locust failed (exit $locust_rc):"; tail -15 "$prefix.log"
    echo "## $users users: the load generator failed (exit $locust_rc)" >>"$SUMMARY"
    return 2
  fi
  "$PY" -m loadtest.report --csv "$prefix" --users "$users" --summary "$SUMMARY"
}

status=0
if [ "$CAPACITY" = 1 ]; then
  best=0
  for users in ${CAPACITY_STEPS:-30 60 100 150 200 250 300 400}; do
    run_stage "$users" "${CAPACITY_STAGE_SECONDS:-120}"
    rc=$?
    if [ "$rc" -ne 0 ]; then
      log "our targets break at $users users"
      break
    fi
    best=$users
  done
  echo "**Capacity: $best users held our targets** (steps: ${CAPACITY_STEPS:-30 60 100 150 200 250 300 400})." >>"$SUMMARY"
  log "capacity: $best users held our targets"
  [ "$best" -gt 0 ] || status=1
else
  target=${TARGET_USERS:-}
  if [ -z "$target" ]; then
    for stage in $STAGES; do target=${stage%%:*}; done
  fi
  for stage in $STAGES; do
    users=${stage%%:*}; seconds=${stage##*:}
    run_stage "$users" "$seconds"
    rc=$?
    if [ "$rc" -eq 2 ]; then
      log "stage $users users is CRITICAL: stopping here"
      status=2
      break
    fi
    [ "$users" = "$target" ] && status=$rc
  done
  echo "**Target stage ($target users): $([ $status = 0 ] && echo PASS || echo FAIL).**" >>"$SUMMARY"
fi
log "reports in $RESULTS_DIR (summary.md, results_<N>users.html, CSVs)"
exit $status
