#!/usr/bin/env bash
# hwr team stack on 127.0.0.1: a small Ceph cluster with an S3 gateway plus an MLflow tracking server.
#
#   stack/server.sh start    start what is not running yet (idempotent), wait until each part answers,
#                            then print the `export ...` lines a client needs
#   stack/server.sh stop     stop mlflow, radosgw, the OSD and the monitor (TERM, then KILL); data stays
#   stack/server.sh status   print each part up/down
#   stack/server.sh env      print the `export ...` lines (eval "$(stack/server.sh env)")
#
# What runs (logs in $HWR_STACK_DIR/log, pid files in $HWR_STACK_DIR/ceph/run and mlflow.pid):
#   ceph-mon  (mon.a)          msgr2 on 127.0.0.1:$HWR_MON_PORT                     data: ceph/mon.a
#   ceph-osd  (osd.0)          bluestore on a sparse file ceph/osd.0/block.file         (survives stop/start)
#   radosgw   (client.rgw.hwr) S3 API on http://127.0.0.1:$HWR_S3_PORT            user `hwr`, keys: secrets/s3.env
#   mlflow server              http://127.0.0.1:$HWR_MLFLOW_PORT, basic-auth, runs/models in PostgreSQL
#                              ($HWR_PG_DB), users in PostgreSQL ($HWR_AUTH_DB), artifacts proxied to
#                              s3://$HWR_ARTIFACT_BUCKET/ (clients need no S3 keys for artifacts)
# PostgreSQL is not started here: it must already answer at $HWR_PG_HOST:$HWR_PG_PORT.
# Missing Debian packages (ceph-mon ceph-osd radosgw, curl, postgresql-client) are installed with
# apt-get when this runs as root; otherwise it says what to install.
#
# Settings (environment; a start records them in $HWR_STACK_DIR/stack.env and later commands reuse
# them, an explicitly set variable wins):
#   HWR_STACK_DIR (<repo>/.stack)  HWR_MLFLOW_PORT (5050)  HWR_S3_PORT (7480)  HWR_MON_PORT (3300, fixed
#   when the monitor is created)  HWR_CEPH_PORT_MIN/MAX (6800/6999: OSD/RGW messenger ports)
#   HWR_PG_HOST (127.0.0.1) HWR_PG_PORT (5432) HWR_PG_USER (postgres) HWR_PG_PASSWORD (none; passed as
#   PGPASSWORD, never on a command line)  HWR_PG_DB (hwr_mlflow)  HWR_AUTH_DB (hwr_auth)
#   HWR_ARTIFACT_BUCKET (mlflow-artifacts)  HWR_S3_REGION (us-east-1)  HWR_MLFLOW_ADMIN (admin)
#   HWR_AUTH_DEFAULT_PERMISSION (READ)  HWR_OSD_SIZE (20G, sparse)  HWR_OSD_CACHE (64M)
#   HWR_OSD_MEMORY_TARGET (896M, the minimum)  HWR_START_TIMEOUT (180 s per part)  HWR_VENV (<repo>/.venv)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATES="$REPO/stack"

EXPLICIT_MON_PORT="${HWR_MON_PORT:-}"
STATE="${HWR_STACK_DIR:-$REPO/.stack}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
# settings of the last start, so that stop/status/env (and the next start) see the same ports
if [[ -f "$STATE/stack.env" ]]; then
    while IFS='=' read -r key value; do
        [[ "$key" =~ ^HWR_[A-Z0-9_]+$ ]] || continue
        if [[ -z "${!key+x}" ]]; then export "$key=$value"; fi
    done < "$STATE/stack.env"
fi

VENV="${HWR_VENV:-$REPO/.venv}"
PY="$VENV/bin/python"
MLFLOW_PORT="${HWR_MLFLOW_PORT:-5050}"
S3_PORT="${HWR_S3_PORT:-7480}"
MON_PORT="${HWR_MON_PORT:-3300}"
PORT_MIN="${HWR_CEPH_PORT_MIN:-6800}"
PORT_MAX="${HWR_CEPH_PORT_MAX:-6999}"
PG_HOST="${HWR_PG_HOST:-127.0.0.1}"
PG_PORT="${HWR_PG_PORT:-5432}"
PG_USER="${HWR_PG_USER:-postgres}"
PG_DB="${HWR_PG_DB:-hwr_mlflow}"
AUTH_DB="${HWR_AUTH_DB:-hwr_auth}"
BUCKET="${HWR_ARTIFACT_BUCKET:-mlflow-artifacts}"
REGION="${HWR_S3_REGION:-us-east-1}"
ADMIN_USER="${HWR_MLFLOW_ADMIN:-admin}"
DEFAULT_PERMISSION="${HWR_AUTH_DEFAULT_PERMISSION:-READ}"
OSD_SIZE="${HWR_OSD_SIZE:-20G}"
OSD_CACHE="${HWR_OSD_CACHE:-64M}"
OSD_MEMORY_TARGET="${HWR_OSD_MEMORY_TARGET:-896M}"  # Ceph ignores values below 896M
TIMEOUT="${HWR_START_TIMEOUT:-180}"
if [[ -n "${HWR_PG_PASSWORD:-}" ]]; then export PGPASSWORD="$HWR_PG_PASSWORD"; fi

CEPH_DIR="$STATE/ceph"
CONF="$CEPH_DIR/ceph.conf"
LOG_DIR="$STATE/log"
RUN_DIR="$CEPH_DIR/run"
SECRETS="$STATE/secrets"
MLFLOW_DIR="$STATE/mlflow"
RGW_NAME="client.rgw.hwr"
S3_USER="hwr"
MLFLOW_URL="http://127.0.0.1:$MLFLOW_PORT"
S3_URL="http://127.0.0.1:$S3_PORT"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf 'stack/server.sh: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers
ceph_cli() { timeout 30 ceph -c "$CONF" --connect-timeout 10 "$@"; }
ceph_probe() { timeout 10 ceph -c "$CONF" --connect-timeout 5 "$@"; }

pid_alive() {  # pid_alive PIDFILE: the process in PIDFILE runs
    local pid
    [[ -s "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

rand_alnum() {  # rand_alnum N: N random letters and digits
    local s=""
    while ((${#s} < $1)); do s+="$(head -c 512 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')"; done
    printf '%s' "${s:0:$1}"
}

wait_for() {  # wait_for NAME LOGFILE PIDFILE CMD...: poll CMD until it succeeds
    local name="$1" logf="$2" pidf="$3"; shift 3
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if [[ -n "$pidf" ]] && ! pid_alive "$pidf"; then
            die "$name did not come up (its process exited); see $logf"
        fi
        ((SECONDS < deadline)) || die "$name did not answer within ${TIMEOUT}s; see $logf"
        sleep 1
    done
}

render() {  # render TEMPLATE OUT: replace @VARS@
    sed -e "s|@FSID@|$FSID|g" -e "s|@MON_PORT@|$MON_PORT|g" -e "s|@PORT_MIN@|$PORT_MIN|g" \
        -e "s|@PORT_MAX@|$PORT_MAX|g" -e "s|@CEPH_DIR@|$CEPH_DIR|g" -e "s|@LOG_DIR@|$LOG_DIR|g" \
        -e "s|@OSD_SIZE@|$OSD_SIZE|g" -e "s|@OSD_CACHE@|$OSD_CACHE|g" \
        -e "s|@OSD_MEMORY_TARGET@|$OSD_MEMORY_TARGET|g" -e "s|@S3_PORT@|$S3_PORT|g" \
        "$1" > "$2.tmp"
    mv "$2.tmp" "$2"
}

pg_url() { printf 'postgresql://%s@%s:%s/%s' "$PG_USER" "$PG_HOST" "$PG_PORT" "$1"; }
psql_q() { PGCONNECT_TIMEOUT=5 psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -tAqX "$@"; }

# probes: each succeeds when the part answers
mon_up() { [[ -f "$CONF" ]] && pid_alive "$RUN_DIR/mon.a.pid" && ceph_probe mon stat; }
osd_up() {
    local asok="$RUN_DIR/osd.0.asok"
    pid_alive "$RUN_DIR/osd.0.pid" && [[ -S "$asok" ]] &&
        timeout 10 ceph --admin-daemon "$asok" status 2>/dev/null | grep -q '"state": "active"'
}
rgw_up() { curl -sf -o /dev/null --max-time 5 "$S3_URL/"; }
mlflow_up() {
    local code
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$MLFLOW_URL/health" || true)"
    [[ "$code" == 200 || "$code" == 401 ]]
}
pg_up() { psql_q -c 'select 1' >/dev/null 2>&1; }

# ---------------------------------------------------------------- steps
install_packages() {
    local pkgs=()
    command -v ceph-mon >/dev/null || pkgs+=(ceph-mon)
    command -v ceph-osd >/dev/null || pkgs+=(ceph-osd)
    command -v radosgw >/dev/null || pkgs+=(radosgw)
    command -v ceph >/dev/null || pkgs+=(ceph-common)
    command -v monmaptool >/dev/null || pkgs+=(ceph-base)
    command -v curl >/dev/null || pkgs+=(curl)
    command -v psql >/dev/null || pkgs+=(postgresql-client)
    if ((${#pkgs[@]} == 0)); then return 0; fi
    if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
        die "missing programs; install the Debian packages: ${pkgs[*]} (Ceph 16 Pacific or newer)"
    fi
    log "installing Debian packages: ${pkgs[*]} (apt-get install --no-install-recommends; ~30 s)"
    mkdir -p "$LOG_DIR"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" \
            > "$LOG_DIR/apt.log" 2>&1; then
        log "apt-get install failed; retrying after apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update >> "$LOG_DIR/apt.log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" \
            >> "$LOG_DIR/apt.log" 2>&1 || die "apt-get install ${pkgs[*]} failed; see $LOG_DIR/apt.log"
    fi
}

install_python_deps() {
    [[ -x "$PY" ]] || die "no Python environment at $VENV; run 'make venv' first (or set HWR_VENV)"
    # SQLAlchemy 2.1 maps postgresql:// to psycopg (3), not psycopg2
    if ! "$PY" -c 'import psycopg, flask_wtf, boto3' >/dev/null 2>&1; then
        log "installing into $VENV: psycopg[binary] (PostgreSQL driver), Flask-WTF (MLflow basic-auth)"
        "$VENV/bin/pip" install -q -r "$REPO/requirements-server.txt" \
            > "$LOG_DIR/pip.log" 2>&1 || die "pip install failed; see $LOG_DIR/pip.log"
    fi
}

check_postgres() {
    pg_up || die "PostgreSQL does not answer at $PG_HOST:$PG_PORT as user '$PG_USER'; start it, or set HWR_PG_HOST / HWR_PG_PORT / HWR_PG_USER (and HWR_PG_PASSWORD)"
    local db
    for db in "$PG_DB" "$AUTH_DB"; do
        if [[ "$(psql_q -c "select 1 from pg_database where datname = '$db'")" != 1 ]]; then
            log "creating PostgreSQL database $db on $PG_HOST:$PG_PORT"
            PGCONNECT_TIMEOUT=5 createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$db" ||
                die "could not create PostgreSQL database $db on $PG_HOST:$PG_PORT as '$PG_USER'"
            if [[ "$db" == "$AUTH_DB" ]]; then AUTH_DB_NEW=1; fi
        fi
    done
}

setup_ceph_conf() {
    mkdir -p "$CEPH_DIR" "$RUN_DIR" "$LOG_DIR" "$CEPH_DIR/crash" "$CEPH_DIR/rgw"
    [[ -s "$CEPH_DIR/fsid" ]] || uuidgen > "$CEPH_DIR/fsid"
    FSID="$(cat "$CEPH_DIR/fsid")"
    # the monitor's address is baked into its monmap at creation
    if [[ -s "$CEPH_DIR/mon_port" ]]; then
        local made
        made="$(cat "$CEPH_DIR/mon_port")"
        if [[ "$made" != "$MON_PORT" ]]; then
            if [[ -n "$EXPLICIT_MON_PORT" ]]; then
                die "the monitor in $CEPH_DIR was created on port $made; HWR_MON_PORT=$MON_PORT cannot change it (use another HWR_STACK_DIR)"
            fi
            MON_PORT="$made"
        fi
    fi
    render "$TEMPLATES/ceph.conf.in" "$CONF"
}

start_mon() {
    if mon_up >/dev/null 2>&1; then log "ceph-mon already answers on 127.0.0.1:$MON_PORT"; return 0; fi
    if [[ ! -f "$CEPH_DIR/mon.a/done" ]]; then
        log "creating the Ceph monitor (fsid $FSID, 127.0.0.1:$MON_PORT)"
        rm -rf "$CEPH_DIR/mon.a" "$CEPH_DIR/monmap" "$CEPH_DIR/keyring"
        ceph-authtool --create-keyring "$CEPH_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
        ceph-authtool "$CEPH_DIR/keyring" --gen-key -n client.admin --cap mon 'allow *' \
            --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
        monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$CEPH_DIR/monmap" \
            > "$LOG_DIR/ceph-mkfs.log" 2>&1
        mkdir -p "$CEPH_DIR/mon.a"
        ceph-mon -c "$CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" --keyring "$CEPH_DIR/keyring" \
            >> "$LOG_DIR/ceph-mkfs.log" 2>&1 || die "ceph-mon --mkfs failed; see $LOG_DIR/ceph-mkfs.log"
        echo "$MON_PORT" > "$CEPH_DIR/mon_port"
        touch "$CEPH_DIR/mon.a/done"
    fi
    log "starting ceph-mon (127.0.0.1:$MON_PORT)"
    ceph-mon -c "$CONF" -i a >> "$LOG_DIR/ceph-mon.a.out" 2>&1 ||
        die "ceph-mon did not start; see $LOG_DIR/ceph-mon.a.log and $LOG_DIR/ceph-mon.a.out"
    wait_for "ceph-mon" "$LOG_DIR/ceph-mon.a.log" "$RUN_DIR/mon.a.pid" mon_up
}

start_osd() {
    if osd_up >/dev/null 2>&1; then log "ceph-osd already answers"; return 0; fi
    if [[ ! -f "$CEPH_DIR/osd.0/done" ]]; then
        local uuid id
        rm -rf "$CEPH_DIR/osd.0"
        mkdir -p "$CEPH_DIR/osd.0"
        if [[ -s "$CEPH_DIR/osd_uuid" ]]; then uuid="$(cat "$CEPH_DIR/osd_uuid")"; else
            uuid="$(uuidgen)"; echo "$uuid" > "$CEPH_DIR/osd_uuid"; fi
        id="$(ceph_cli osd new "$uuid" 2>>"$LOG_DIR/ceph-mkfs.log")" ||
            die "'ceph osd new' failed; see $LOG_DIR/ceph-mkfs.log"
        [[ "$id" == 0 ]] || die "expected OSD id 0, the monitor gave '$id' (state dir $CEPH_DIR is inconsistent)"
        log "creating the OSD: bluestore on a sparse $OSD_SIZE file $CEPH_DIR/osd.0/block.file"
        ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >> "$LOG_DIR/ceph-mkfs.log" 2>&1 ||
            die "ceph-osd --mkfs failed; see $LOG_DIR/ceph-mkfs.log and $LOG_DIR/ceph-osd.0.log"
        touch "$CEPH_DIR/osd.0/done"
        # there is deliberately no ceph-mgr (it would only add memory): silence its health warning
        ceph_cli health mute MGR_DOWN --sticky >/dev/null 2>&1 || true
    fi
    log "starting ceph-osd (osd.0)"
    ceph-osd -c "$CONF" -i 0 >> "$LOG_DIR/ceph-osd.0.out" 2>&1 ||
        die "ceph-osd did not start; see $LOG_DIR/ceph-osd.0.log and $LOG_DIR/ceph-osd.0.out"
    wait_for "ceph-osd" "$LOG_DIR/ceph-osd.0.log" "$RUN_DIR/osd.0.pid" osd_up
}

start_rgw() {
    if rgw_up >/dev/null 2>&1; then log "radosgw already answers on $S3_URL"; return 0; fi
    log "starting radosgw (S3 on $S3_URL)"
    radosgw -c "$CONF" -n "$RGW_NAME" >> "$LOG_DIR/radosgw.out" 2>&1 ||
        die "radosgw did not start; see $LOG_DIR/radosgw.log and $LOG_DIR/radosgw.out"
    wait_for "radosgw" "$LOG_DIR/radosgw.log" "$RUN_DIR/$RGW_NAME.pid" rgw_up
}

setup_s3() {
    mkdir -p "$SECRETS"
    chmod 700 "$SECRETS"
    if [[ ! -s "$SECRETS/s3.env" ]]; then
        (umask 077
         printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' \
             "$(rand_alnum 20 | tr '[:lower:]' '[:upper:]')" "$(rand_alnum 40)" > "$SECRETS/s3.env")
    fi
    S3_ACCESS="$(sed -n 's/^AWS_ACCESS_KEY_ID=//p' "$SECRETS/s3.env")"
    S3_SECRET="$(sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' "$SECRETS/s3.env")"
    if ! timeout 60 radosgw-admin -c "$CONF" -n client.admin user info --uid="$S3_USER" >/dev/null 2>&1; then
        log "creating the S3 user '$S3_USER' (keys in $SECRETS/s3.env)"
        timeout 60 radosgw-admin -c "$CONF" -n client.admin user create --uid="$S3_USER" \
            --display-name="hwr team stack" --access-key="$S3_ACCESS" --secret-key="$S3_SECRET" \
            > "$LOG_DIR/radosgw-admin.log" 2>&1 || die "radosgw-admin user create failed; see $LOG_DIR/radosgw-admin.log"
    fi
    if [[ ! -f "$STATE/bucket.$BUCKET" ]]; then
        AWS_ACCESS_KEY_ID="$S3_ACCESS" AWS_SECRET_ACCESS_KEY="$S3_SECRET" AWS_DEFAULT_REGION="$REGION" \
        "$PY" - "$S3_URL" "$BUCKET" > "$LOG_DIR/bucket.log" 2>&1 <<'PYEOF' || die "could not create bucket $BUCKET; see $LOG_DIR/bucket.log"
import sys, boto3, botocore
url, bucket = sys.argv[1:3]
s3 = boto3.client("s3", endpoint_url=url)
try:
    s3.head_bucket(Bucket=bucket)
    print("bucket exists:", bucket)
except botocore.exceptions.ClientError:
    s3.create_bucket(Bucket=bucket)
    print("bucket created:", bucket)
PYEOF
        log "$(tail -1 "$LOG_DIR/bucket.log")"
        touch "$STATE/bucket.$BUCKET"
    fi
}

setup_auth() {
    mkdir -p "$MLFLOW_DIR"
    local pwfile="$SECRETS/mlflow-admin-password" new_pw=""
    if [[ ! -s "$pwfile" ]]; then
        (umask 077; rand_alnum 24 > "$pwfile")
        new_pw=1
    fi
    ADMIN_PW="$(cat "$pwfile")"
    # the basic-auth app's CSRF protection needs a static Flask secret key
    if [[ ! -s "$SECRETS/flask-secret-key" ]]; then
        (umask 077; rand_alnum 40 > "$SECRETS/flask-secret-key")
    fi
    (umask 077
     sed -e "s|@DEFAULT_PERMISSION@|$DEFAULT_PERMISSION|" -e "s|@AUTH_DB_URI@|$(pg_url "$AUTH_DB")|" \
         -e "s|@ADMIN_USER@|$ADMIN_USER|" -e "s|@ADMIN_PASSWORD@|$ADMIN_PW|" \
         "$TEMPLATES/auth.ini.in" > "$MLFLOW_DIR/auth.ini.tmp")
    mv "$MLFLOW_DIR/auth.ini.tmp" "$MLFLOW_DIR/auth.ini"
    chmod 600 "$MLFLOW_DIR/auth.ini"
    # a new password for an auth database that outlived its state dir: MLflow only uses
    # admin_password to create the admin, so set it on the existing user
    if [[ -n "$new_pw" && -z "${AUTH_DB_NEW:-}" ]]; then
        log "new admin password for the existing auth database $AUTH_DB: updating user '$ADMIN_USER'"
        MLFLOW_AUTH_CONFIG_PATH="$MLFLOW_DIR/auth.ini" "$PY" - "$ADMIN_USER" "$ADMIN_PW" \
            > "$LOG_DIR/auth-sync.log" 2>&1 <<'PYEOF' || die "could not set the admin password; see $LOG_DIR/auth-sync.log"
import sys
from mlflow.server.auth.config import read_auth_config
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
user, pw = sys.argv[1:3]
store = SqlAlchemyStore()
store.init_db(read_auth_config().database_uri)
if store.has_user(user):
    store.update_user(user, password=pw)
    print("updated", user)
PYEOF
    fi
}

start_mlflow() {
    if mlflow_up >/dev/null 2>&1; then log "mlflow already answers on $MLFLOW_URL"; return 0; fi
    log "starting mlflow server on $MLFLOW_URL (store: $(pg_url "$PG_DB"), artifacts: s3://$BUCKET/)"
    (
        cd "$MLFLOW_DIR"
        unset MLFLOW_TRACKING_URI MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD AWS_PROFILE
        export MLFLOW_AUTH_CONFIG_PATH="$MLFLOW_DIR/auth.ini"
        export MLFLOW_S3_ENDPOINT_URL="$S3_URL" AWS_ENDPOINT_URL="$S3_URL"
        export AWS_ACCESS_KEY_ID="$S3_ACCESS" AWS_SECRET_ACCESS_KEY="$S3_SECRET" AWS_DEFAULT_REGION="$REGION"
        export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
        MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$SECRETS/flask-secret-key")"
        export MLFLOW_FLASK_SERVER_SECRET_KEY
        exec setsid "$VENV/bin/mlflow" server --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
            --backend-store-uri "$(pg_url "$PG_DB")" --artifacts-destination "s3://$BUCKET/" \
            --serve-artifacts --app-name basic-auth
    ) >> "$LOG_DIR/mlflow.log" 2>&1 < /dev/null &
    echo $! > "$STATE/mlflow.pid"
    wait_for "mlflow server" "$LOG_DIR/mlflow.log" "$STATE/mlflow.pid" mlflow_up
}

print_env() {
    local pw access secret
    [[ -s "$SECRETS/mlflow-admin-password" && -s "$SECRETS/s3.env" ]] ||
        die "no credentials in $STATE yet; run 'stack/server.sh start' first"
    pw="$(cat "$SECRETS/mlflow-admin-password")"
    access="$(sed -n 's/^AWS_ACCESS_KEY_ID=//p' "$SECRETS/s3.env")"
    secret="$(sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' "$SECRETS/s3.env")"
    cat <<EOF
export MLFLOW_TRACKING_URI=$MLFLOW_URL
export MLFLOW_TRACKING_USERNAME=$ADMIN_USER
export MLFLOW_TRACKING_PASSWORD=$pw
export AWS_ENDPOINT_URL=$S3_URL
export MLFLOW_S3_ENDPOINT_URL=$S3_URL
export AWS_ACCESS_KEY_ID=$access
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_DEFAULT_REGION=$REGION
EOF
}

save_settings() {
    local v
    {
        for v in HWR_MLFLOW_PORT:"$MLFLOW_PORT" HWR_S3_PORT:"$S3_PORT" HWR_MON_PORT:"$MON_PORT" \
                 HWR_CEPH_PORT_MIN:"$PORT_MIN" HWR_CEPH_PORT_MAX:"$PORT_MAX" HWR_PG_HOST:"$PG_HOST" \
                 HWR_PG_PORT:"$PG_PORT" HWR_PG_USER:"$PG_USER" HWR_PG_DB:"$PG_DB" HWR_AUTH_DB:"$AUTH_DB" \
                 HWR_ARTIFACT_BUCKET:"$BUCKET" HWR_S3_REGION:"$REGION" HWR_MLFLOW_ADMIN:"$ADMIN_USER"; do
            printf '%s=%s\n' "${v%%:*}" "${v#*:}"
        done
    } > "$STATE/stack.env"
}

stop_pidfile() {  # stop_pidfile NAME PIDFILE [GROUP]: TERM, wait up to 30 s, then KILL
    local name="$1" pidf="$2" group="${3:-}" pid target i
    if ! pid_alive "$pidf"; then echo "$name: not running"; rm -f "$pidf"; return 0; fi
    pid="$(cat "$pidf")"
    target="$pid"
    if [[ -n "$group" ]]; then target="-$pid"; fi   # mlflow runs in its own session: stop its workers too
    kill -TERM -- "$target" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || { echo "$name: stopped"; rm -f "$pidf"; return 0; }
        sleep 0.2
    done
    kill -KILL -- "$target" 2>/dev/null || true
    echo "$name: killed after 30 s"
    rm -f "$pidf"
}

# ---------------------------------------------------------------- commands
cmd_start() {
    local t0=$SECONDS
    mkdir -p "$LOG_DIR"
    install_packages
    install_python_deps
    check_postgres
    setup_ceph_conf
    start_mon
    start_osd
    start_rgw
    setup_s3
    setup_auth
    save_settings
    start_mlflow
    log "stack up in $((SECONDS - t0)) s (state: $STATE); for a client:"
    print_env
}

cmd_stop() {
    stop_pidfile mlflow "$STATE/mlflow.pid" group
    stop_pidfile radosgw "$RUN_DIR/$RGW_NAME.pid"
    stop_pidfile ceph-osd "$RUN_DIR/osd.0.pid"
    stop_pidfile ceph-mon "$RUN_DIR/mon.a.pid"
}

cmd_status() {
    local rc=0
    report() { if "$2" >/dev/null 2>&1; then echo "$1: up   $3"; else echo "$1: down $3"; rc=1; fi; }
    report postgresql pg_up "$PG_HOST:$PG_PORT (databases $PG_DB, $AUTH_DB)"
    report ceph-mon mon_up "127.0.0.1:$MON_PORT"
    report ceph-osd osd_up "osd.0, $CEPH_DIR/osd.0/block.file"
    report radosgw rgw_up "$S3_URL"
    report mlflow mlflow_up "$MLFLOW_URL"
    return $rc
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) print_env ;;
    *) echo "usage: $0 start|stop|status|env   (state dir: $STATE)" >&2; exit 2 ;;
esac
