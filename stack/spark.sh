#!/usr/bin/env bash
# hwr Spark standalone cluster on 127.0.0.1: one master and two one-core workers, each its own JVM,
# started with pyspark's own bin/spark-class from the repo's .venv (pip's pyspark ships no
# start-master.sh / start-worker.sh).
#
#   stack/spark.sh start    start what is not running (idempotent), wait until the master's web UI
#                           reports all workers ALIVE, print `export SPARK_MASTER=...`
#   stack/spark.sh stop     stop the workers and the master (TERM, then KILL)
#   stack/spark.sh status   print master and workers up/down
#
# Workers run Python tasks with <repo>/.venv/bin/python (PYSPARK_PYTHON and PATH in their environment).
# Logs, pid files and the workers' work dirs are in $HWR_STACK_DIR/spark.
# Settings (environment): HWR_STACK_DIR (<repo>/.stack)  HWR_SPARK_PORT (7077)  HWR_SPARK_UI_PORT (8090)
#   HWR_SPARK_WORKER_UI_PORT (8091: worker i gets 8090+i)  HWR_SPARK_WORKERS (2)
#   HWR_SPARK_WORKER_MEMORY (3g: memory a worker offers to executors)
#   HWR_SPARK_DAEMON_MEMORY (256m: heap of the master/worker JVMs themselves)
#   HWR_START_TIMEOUT (120 s)  HWR_VENV (<repo>/.venv)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${HWR_STACK_DIR:-$REPO/.stack}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
VENV="${HWR_VENV:-$REPO/.venv}"
PY="$VENV/bin/python"
PORT="${HWR_SPARK_PORT:-7077}"
UI_PORT="${HWR_SPARK_UI_PORT:-8090}"
WORKER_UI_PORT="${HWR_SPARK_WORKER_UI_PORT:-$((UI_PORT + 1))}"
WORKERS="${HWR_SPARK_WORKERS:-2}"
WORKER_MEMORY="${HWR_SPARK_WORKER_MEMORY:-3g}"
DAEMON_MEMORY="${HWR_SPARK_DAEMON_MEMORY:-256m}"
TIMEOUT="${HWR_START_TIMEOUT:-120}"

DIR="$STATE/spark"
MASTER_URL="spark://127.0.0.1:$PORT"
UI_URL="http://127.0.0.1:$UI_PORT"

log() { printf '[spark] %s\n' "$*" >&2; }
die() { printf 'stack/spark.sh: error: %s\n' "$*" >&2; exit 1; }

pid_alive() {
    local pid
    [[ -s "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

alive_workers() {  # number of ALIVE workers the master reports (fails when the master does not answer)
    curl -sf --max-time 5 "$UI_URL/json/" |
        "$PY" -c 'import json,sys; print(sum(w.get("state") == "ALIVE" for w in json.load(sys.stdin).get("workers", [])))'
}

spark_env() {  # the environment of the daemons (and, through the workers, of executors and Python workers)
    command -v java >/dev/null || die "no java on PATH; Spark 4 needs Java 17+ (apt-get install openjdk-17-jre-headless)"
    [[ -x "$PY" ]] || die "no Python environment at $VENV; run 'make venv-spark' first"
    SPARK_HOME="$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null)" ||
        die "pyspark is not installed in $VENV; run 'make venv-spark'"
    export SPARK_HOME
    export SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=127.0.0.1
    export SPARK_DAEMON_MEMORY="$DAEMON_MEMORY"
    export PYSPARK_PYTHON="$PY" PYSPARK_DRIVER_PYTHON="$PY"
    export PATH="$VENV/bin:$PATH"
    export SPARK_LOG_DIR="$DIR/log" SPARK_PID_DIR="$DIR"
    # workers delete the work dirs of finished applications after a week
    export SPARK_WORKER_OPTS="-Dspark.worker.cleanup.enabled=true ${SPARK_WORKER_OPTS:-}"
}

start_daemon() {  # start_daemon NAME CLASS ARGS...
    local name="$1" cls="$2"; shift 2
    log "starting $name"
    setsid "$SPARK_HOME/bin/spark-class" "$cls" "$@" >> "$DIR/log/$name.log" 2>&1 < /dev/null &
    echo $! > "$DIR/$name.pid"
}

wait_workers() {  # wait_workers N
    local deadline=$((SECONDS + TIMEOUT)) n i
    while :; do
        n="$(alive_workers 2>/dev/null || echo 0)"
        if ((n >= $1)); then return 0; fi
        pid_alive "$DIR/master.pid" || die "spark master exited; see $DIR/log/master.log"
        for ((i = 1; i <= WORKERS; i++)); do
            pid_alive "$DIR/worker$i.pid" || die "spark worker$i exited; see $DIR/log/worker$i.log"
        done
        if ((SECONDS >= deadline)); then
            if ! curl -sf -o /dev/null --max-time 5 "$UI_URL/json/"; then
                die "spark master did not answer on $UI_URL within ${TIMEOUT}s; see $DIR/log/master.log"
            fi
            die "only $n of $1 spark workers ALIVE after ${TIMEOUT}s; see $DIR/log/worker*.log"
        fi
        sleep 1
    done
}

cmd_start() {
    local t0=$SECONDS i
    mkdir -p "$DIR/log"
    spark_env
    if pid_alive "$DIR/master.pid" || curl -sf -o /dev/null --max-time 5 "$UI_URL/json/"; then
        log "spark master already running ($MASTER_URL)"
    else
        start_daemon master org.apache.spark.deploy.master.Master \
            --host 127.0.0.1 --port "$PORT" --webui-port "$UI_PORT"
    fi
    for ((i = 1; i <= WORKERS; i++)); do
        if pid_alive "$DIR/worker$i.pid"; then log "spark worker$i already running"; continue; fi
        mkdir -p "$DIR/work$i"
        start_daemon "worker$i" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 \
            --cores 1 --memory "$WORKER_MEMORY" --work-dir "$DIR/work$i" \
            --webui-port "$((WORKER_UI_PORT + i - 1))" "$MASTER_URL"
    done
    wait_workers "$WORKERS"
    log "spark up in $((SECONDS - t0)) s: master $MASTER_URL (UI $UI_URL), $WORKERS workers x 1 core x $WORKER_MEMORY"
    echo "export SPARK_MASTER=$MASTER_URL"
}

stop_one() {  # stop_one NAME: TERM the daemon's process group, wait up to 20 s, then KILL
    local name="$1" pidf="$DIR/$1.pid" pid i
    if ! pid_alive "$pidf"; then echo "spark $name: not running"; rm -f "$pidf"; return 0; fi
    pid="$(cat "$pidf")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || { echo "spark $name: stopped"; rm -f "$pidf"; return 0; }
        sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    echo "spark $name: killed after 20 s"
    rm -f "$pidf"
}

cmd_stop() {
    local f name
    for f in "$DIR"/worker*.pid; do
        [[ -e "$f" ]] || continue
        name="$(basename "$f" .pid)"
        stop_one "$name"
    done
    stop_one master
}

cmd_status() {
    local i n rc=0
    if pid_alive "$DIR/master.pid"; then
        n="$(alive_workers 2>/dev/null || echo '?')"
        echo "spark master: up   $MASTER_URL (UI $UI_URL, $n ALIVE workers)"
    else
        echo "spark master: down $MASTER_URL"; rc=1
    fi
    for ((i = 1; i <= WORKERS; i++)); do
        if pid_alive "$DIR/worker$i.pid"; then echo "spark worker$i: up"; else echo "spark worker$i: down"; rc=1; fi
    done
    return $rc
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status   (state dir: $STATE)" >&2; exit 2 ;;
esac
