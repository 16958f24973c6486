#!/usr/bin/env bash
# test_dbshape: tables made by hand that the sink's upserts cannot use (no unique key, a
# missing column, an extra NOT NULL column, a ledger without its (job, id) key) stop the
# run at start-up with the problem and its fix, before any lookup; a table made by hand
# that can take them (other column order, extra columns) works. A flush blocked by a lock
# ends with a statement timeout (exit 1) instead of hanging, also when the run was
# interrupted meanwhile (the failed flush's exit 1, not 75), and a rerun then finishes.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=300
seed_bigint "$N"
load_expected bigint
start_mock --latency-ms 0
args=(run --dsn "$IT_DSN" --base-url "$MOCK_URL" --page-size 100 --flush-interval 0.2)

COLS="label text, geo_label text, street_address text, city_label text, postal_code text,
    country_label text, latitude double precision, longitude double precision,
    provider text NOT NULL, fetched_at timestamptz NOT NULL DEFAULT now()"
LEDGER_COLS="job text NOT NULL, id bigint NOT NULL, reason text NOT NULL, http_status int,
    attempts int NOT NULL, last_error text, first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()"

fresh_tables() {
    sql -c "DROP TABLE IF EXISTS standardized_locations, enrich_failures, enrich_checkpoints"
}

# refused LABEL PROBLEM FIX: the run exits 1 at start-up naming PROBLEM and FIX, and the
# mock saw no request.
refused() {
    local label=$1 problem=$2 fix=$3
    run_pgenrich "$label" "${args[@]}" --job "$label"
    expect_rc 1 "run against a table that cannot take the upsert ($label)"
    assert_stderr_has "$label" "cannot take pgenrich's upsert: $problem" "; fix: $fix"
    assert_eq "requests made before the refusal ($label)" 0 "$(mock_stat requests)"
    log "$label: $(grep -o 'cannot take.*' "$IT_TMP/$label.err")"
}

# --- 1. tables the upserts cannot use ------------------------------------------------------
fresh_tables
sql -c "CREATE TABLE standardized_locations (id bigint, $COLS)"
refused no_key 'no unique index on (id)' \
    'ALTER TABLE "standardized_locations" ADD PRIMARY KEY (id)'

fresh_tables
sql -c "CREATE TABLE standardized_locations (id bigint PRIMARY KEY, ${COLS/provider text NOT NULL, /})"
refused missing_column 'column "provider" is missing' \
    'ALTER TABLE "standardized_locations" ADD COLUMN "provider" text'

fresh_tables
sql -c "CREATE TABLE standardized_locations (id bigint PRIMARY KEY, $COLS, note text NOT NULL)"
refused not_null_extra \
    'column "note" is NOT NULL without a default and pgenrich does not fill it' \
    'ALTER TABLE "standardized_locations" ALTER COLUMN "note" DROP NOT NULL'

fresh_tables
sql -c "CREATE TABLE enrich_failures ($LEDGER_COLS, PRIMARY KEY (id))"
refused ledger_key 'no unique index on (job, id)' \
    'ALTER TABLE "enrich_failures" ADD UNIQUE (job, id)'
assert_eq "a refused run wrote no checkpoint" "" "$(checkpoint_of ledger_key)"

# --- 2. tables made by hand that can take them ------------------------------------------------
fresh_tables
sql <<'SQL'
CREATE TABLE standardized_locations (
    note text, fetched_at timestamptz NOT NULL DEFAULT now(), provider varchar(100) NOT NULL,
    longitude numeric, latitude double precision, country_label text, postal_code text,
    city_label varchar(200), street_address text, geo_label text, label text,
    serial_no serial, id bigint NOT NULL, CONSTRAINT one_row_per_id UNIQUE (id));
SQL
sql -c "CREATE TABLE enrich_failures (note text, $LEDGER_COLS, PRIMARY KEY (id, job))"
run_pgenrich handmade "${args[@]}" --job handmade --quiet
expect_done "run against tables made by hand that fit"
assert_eq "ids_read (hand-made tables)" "$N" "$(summary handmade ids_read)"
check_against_expected handmade

# --- 3. a flush blocked by a lock ends with a statement timeout ------------------------------
sql -c "TRUNCATE standardized_locations, enrich_failures, enrich_checkpoints"
LOCKER_APP=pgenrich_it_locker
# SHARE lets the start-up through (it only reads the target) but blocks the upsert.
PGAPPNAME=$LOCKER_APP psql -X -q -d "$IT_DSN" \
    -c "BEGIN; LOCK TABLE standardized_locations IN SHARE MODE; SELECT pg_sleep(60)" \
    >"$IT_TMP/locker.log" 2>&1 &
LOCKER_PID=$!
BG_PIDS+=("$LOCKER_PID")
release_lock() {
    # The backend would sleep on with its lock after psql dies: end it first.
    q "SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity
       WHERE application_name = '$LOCKER_APP'" >/dev/null
    kill "$LOCKER_PID" 2>/dev/null || true
    wait "$LOCKER_PID" 2>/dev/null || true
}
for _ in $(seq 1 100); do
    [ "$(q "SELECT count(*) FROM pg_catalog.pg_locks
            WHERE relation = 'standardized_locations'::regclass AND mode = 'ShareLock'
              AND granted")" = 1 ] && break
    sleep 0.1
done
[ "$(q "SELECT count(*) FROM pg_catalog.pg_locks
        WHERE relation = 'standardized_locations'::regclass AND mode = 'ShareLock'")" = 1 ] ||
    fail "the locker did not get its lock"

t0=$SECONDS
start_pgenrich blocked "${args[@]}" --job blocked --statement-timeout 2 --db-keepalive 7

# While it waits, its database sockets probe after 7 s of silence (ss prints 6.5 s as
# "6.500ms", minutes as "1min..."; the OS default would be 2 hours). Linux and TCP only.
db_port=$(q "SELECT inet_server_port()")
if command -v ss >/dev/null && [ -n "$db_port" ]; then
    timers=""
    for _ in $(seq 1 30); do
        timers=$(ss -tnpo 2>/dev/null | grep -F "pid=$PGENRICH_PID," | grep -F ":$db_port " |
            grep -o 'timer:(keepalive,[^,]*' || true)
        [ "$(printf '%s\n' "$timers" | grep -c keepalive)" -ge 2 ] && break
        sleep 0.1
    done
    [ "$(printf '%s\n' "$timers" | grep -c keepalive)" -ge 2 ] ||
        fail "pgenrich's two database sockets have no keepalive timer: '$timers'"
    printf '%s\n' "$timers" | grep -qv -E 'keepalive,[0-7](\.[0-9]+)?(ms|sec)$' &&
        fail "keepalive timers beyond --db-keepalive 7: $timers"
    log "keepalive timers of the database sockets: $(printf '%s' "$timers" | tr '\n' ' ')"
else
    log "skipping the keepalive check (no ss, or no TCP connection to the server)"
fi

wait_pgenrich 20
[ "$RC" -ne 124 ] || fail "a flush blocked by a lock hung for 20 s despite --statement-timeout 2"
expect_rc 1 "run whose flush is blocked by a lock"
assert_stderr_has blocked "statement timeout"
log "blocked flush: exit $RC after $((SECONDS - t0)) s: $(grep -o 'error=[^ ]* [^"]*"' \
    "$IT_TMP/blocked.err" | head -n 1)"
assert_eq "nothing committed by the timed-out flush" 0 \
    "$(q "SELECT count(*) FROM standardized_locations")"

# Interrupted while that flush waits: the flush that then fails decides the exit status (1,
# not 75: the job did not end as asked).
start_pgenrich termed "${args[@]}" --job blocked --statement-timeout 4 --quiet
waiting=false
for _ in $(seq 1 600); do
    if [ "$(q "SELECT count(*) FROM pg_catalog.pg_stat_activity
            WHERE wait_event_type = 'Lock' AND wait_event = 'relation'
              AND application_name LIKE 'pgenrich pid%'")" -ge 1 ]; then
        waiting=true
        break
    fi
    kill -0 "$PGENRICH_PID" 2>/dev/null || break
    sleep 0.1
done
$waiting || fail "run termed: its flush never waited on the lock (it must, for this check)"
kill -TERM "$PGENRICH_PID"
wait_pgenrich 20
expect_rc 1 "interrupted run whose last flush failed"
assert_stderr_has termed "event=interrupted" "statement timeout"
release_lock

run_pgenrich unblocked "${args[@]}" --job blocked --statement-timeout 2 --quiet
expect_done "rerun after the lock is gone"
check_against_expected blocked
assert_eq "checkpoint finished after the rerun" t \
    "$(q "SELECT finished FROM enrich_checkpoints WHERE job = 'blocked'")"
