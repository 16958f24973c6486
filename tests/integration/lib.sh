# tests/integration/lib.sh: shared helpers of the integration tests, sourced by test_*.sh:
# a private database on the server at $PGENRICH_TEST_DSN, private mock APIs on free ports,
# pgenrich runs with captured output, and assertions. The EXIT trap stops what it started.
# shellcheck shell=bash

set -euo pipefail

IT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
IT_NAME=$(basename "$0" .sh)
IT_NAME=${IT_NAME#test_}
IT_DB="pgenrich_it_${IT_NAME}"
IT_START=$SECONDS
# Upper bound of one pgenrich run and of a mock's life, in seconds (ctest allows 300 a test).
IT_RUN_TIMEOUT=${IT_RUN_TIMEOUT:-150}
IT_MOCK_LIFE=${IT_MOCK_LIFE:-290}

# The tests talk to loopback servers only, and set proxies where they test them: a proxy
# of the machine's environment would carry (or exempt) their requests.
unset http_proxy https_proxy all_proxy HTTPS_PROXY ALL_PROXY no_proxy NO_PROXY

PGENRICH_BIN=${PGENRICH_BIN:-$IT_ROOT/build/pgenrich}
MOCKAPI_BIN=${MOCKAPI_BIN:-$IT_ROOT/build/pgenrich-mockapi}

log() { printf '[%s +%ss] %s\n' "$IT_NAME" "$((SECONDS - IT_START))" "$*"; }

fail() {
    printf '[%s] FAIL: %s\n' "$IT_NAME" "$*" >&2
    if [ -n "${LAST_RUN:-}" ] && [ -f "$IT_TMP/$LAST_RUN.err" ]; then
        printf '%s\n' "--- last pgenrich run ($LAST_RUN, exit ${RC:-?}): stdout" >&2
        tail -n 5 "$IT_TMP/$LAST_RUN.out" >&2 || true
        printf '%s\n' "--- stderr (last 25 lines)" >&2
        tail -n 25 "$IT_TMP/$LAST_RUN.err" >&2 || true
    fi
    exit 1
}

if [ -z "${PGENRICH_TEST_DSN:-}" ]; then
    printf '[%s] FAIL: PGENRICH_TEST_DSN is not set. Start a server and export its DSN:\n' \
        "$IT_NAME" >&2
    # shellcheck disable=SC2016
    printf '    scripts/pg start && export PGENRICH_TEST_DSN="$(scripts/pg dsn --db postgres)"\n' >&2
    exit 1
fi
for bin in "$PGENRICH_BIN" "$MOCKAPI_BIN"; do
    [ -x "$bin" ] || fail "$bin is not built (set PGENRICH_BIN / MOCKAPI_BIN, or run scripts/build)"
done
command -v psql >/dev/null || fail "psql is not installed (scripts/deps)"
command -v curl >/dev/null || fail "curl is not installed (scripts/deps)"

IT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgenrich-it-$IT_NAME.XXXXXX")
MOCK_PIDS=()
BG_PIDS=()
LAST_ARGS=()
IT_AT_EXIT=() # commands cleanup runs after the background processes are gone (eval'ed)

# The test DSN with another database: key=value DSNs take the last dbname, URIs get a new path.
dsn_with_db() {
    local dsn=$1 db=$2
    case "$dsn" in
    postgres://* | postgresql://*)
        local scheme=${dsn%%://*} rest=${dsn#*://} query=""
        case "$rest" in *\?*) query="?${rest#*\?}"; rest=${rest%%\?*} ;; esac
        printf '%s://%s/%s%s\n' "$scheme" "${rest%%/*}" "$db" "$query"
        ;;
    *) printf '%s dbname=%s\n' "$dsn" "$db" ;;
    esac
}
IT_DSN=$(dsn_with_db "$PGENRICH_TEST_DSN" "$IT_DB")

admin_sql() {
    PGOPTIONS="-c client_min_messages=warning" \
        psql -X -q -v ON_ERROR_STOP=1 -d "$PGENRICH_TEST_DSN" "$@"
}

# sql ARGS...: psql on the test database, unaligned, tuples only.
sql() {
    PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 -d "$IT_DSN" "$@"
}

# q QUERY: the single value QUERY returns.
q() {
    sql -c "$1"
}

cleanup() {
    local rc=$?
    set +e
    local pid
    for pid in "${BG_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for pid in "${MOCK_PIDS[@]}"; do
        stop_mock_pid "$pid"
    done
    local c
    for c in "${IT_AT_EXIT[@]}"; do
        eval "$c"
    done
    if [ -z "${PGENRICH_IT_KEEP:-}" ]; then
        admin_sql -c "DROP DATABASE IF EXISTS \"$IT_DB\" WITH (FORCE)" >/dev/null 2>&1
    fi
    if [ "$rc" -eq 0 ]; then
        rm -rf "$IT_TMP"
        log "PASS"
    else
        printf '[%s] kept %s for inspection\n' "$IT_NAME" "$IT_TMP" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start the database from scratch.
admin_sql -c "DROP DATABASE IF EXISTS \"$IT_DB\" WITH (FORCE)" -c "CREATE DATABASE \"$IT_DB\"" ||
    fail "cannot create database $IT_DB on PGENRICH_TEST_DSN"

# ---------------------------------------------------------------------------- mock API

# start_mock [mock flags...]: a private mock on a free port; sets MOCK_PID and MOCK_URL.
start_mock() {
    local pf="$IT_TMP/mock.$((${#MOCK_PIDS[@]} + 1)).port"
    MOCK_LOG="${pf%.port}.log"
    # timeout bounds the mock's life even if this shell is killed without running its trap.
    timeout -k 5 "$IT_MOCK_LIFE" "$MOCKAPI_BIN" --port 0 --port-file "$pf" "$@" \
        >"$MOCK_LOG" 2>&1 &
    MOCK_PID=$!
    MOCK_PIDS+=("$MOCK_PID")
    for _ in $(seq 1 100); do
        [ -s "$pf" ] && break
        kill -0 "$MOCK_PID" 2>/dev/null || {
            cat "$MOCK_LOG" >&2
            fail "the mock exited at start ($*)"
        }
        sleep 0.1
    done
    [ -s "$pf" ] || fail "the mock wrote no port file within 10 s"
    MOCK_URL="http://127.0.0.1:$(cat "$pf")"
    log "mock at $MOCK_URL ($*)"
}

stop_mock_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# mock_stat NAME [URL]: one counter of the mock's /__stats.
mock_stat() {
    local name=$1 url=${2:-$MOCK_URL} json v
    json=$(curl -fsS --max-time 5 "$url/__stats") || fail "GET $url/__stats failed"
    v=$(printf '%s\n' "$json" | tr ',{}' '[\n*]' |
        sed -n "s/^[[:space:]]*\"$name\"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p")
    [ -n "$v" ] || fail "no counter '$name' in /__stats: $json"
    printf '%s\n' "$v"
}

# load_expected KEYTYPE [SOURCE_SQL]: the table `expected` with what a fault-free run must
# load, from `pgenrich-mockapi --expect` over the source IDs (load_expected_as below).
load_expected() {
    load_expected_as expected "$1" "${2:-SELECT id FROM master_table}"
    log "expected: $(q "SELECT string_agg(outcome || '=' || n, ' ' ORDER BY outcome)
        FROM (SELECT outcome, count(*) n FROM expected GROUP BY outcome) s")"
}

# seed_bigint N: the default source, master_table (id bigint PRIMARY KEY), with ids 1..N.
seed_bigint() {
    sql <<EOF
CREATE TABLE master_table (id bigint PRIMARY KEY);
INSERT INTO master_table SELECT g FROM generate_series(1, $1) g;
EOF
}

# run_pgenrich LABEL ARGS...: run pgenrich (bounded in time); sets RC, LAST_RUN; output in
# $IT_TMP/LABEL.out and .err.
run_pgenrich() {
    LAST_RUN=$1
    shift
    LAST_ARGS=("$@")
    RC=0
    timeout -k 5 "$IT_RUN_TIMEOUT" "$PGENRICH_BIN" "$@" \
        >"$IT_TMP/$LAST_RUN.out" 2>"$IT_TMP/$LAST_RUN.err" || RC=$?
    [ "$RC" -ne 124 ] || fail "pgenrich $LAST_RUN did not finish within $IT_RUN_TIMEOUT s"
}

# start_pgenrich LABEL ARGS...: run pgenrich in the background; sets PGENRICH_PID.
start_pgenrich() {
    LAST_RUN=$1
    shift
    LAST_ARGS=("$@")
    # Background jobs of a script start with SIGINT ignored: give pgenrich the default back.
    env --default-signal=INT "$PGENRICH_BIN" "$@" \
        >"$IT_TMP/$LAST_RUN.out" 2>"$IT_TMP/$LAST_RUN.err" &
    PGENRICH_PID=$!
    BG_PIDS+=("$PGENRICH_PID")
}

# wait_pgenrich SECONDS: wait for the background run; sets RC (124 if it is still running).
wait_pgenrich() {
    local limit=$1
    for _ in $(seq 1 $((limit * 10))); do
        kill -0 "$PGENRICH_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$PGENRICH_PID" 2>/dev/null; then
        kill -KILL "$PGENRICH_PID" 2>/dev/null
        wait "$PGENRICH_PID" 2>/dev/null || true
        RC=124
        return
    fi
    RC=0
    wait "$PGENRICH_PID" || RC=$?
}

expect_rc() {
    local want=$1 what=$2
    [ "$RC" -eq "$want" ] || fail "$what: exit $RC, expected $want"
}

# expect_done WHAT: the last run ended done: exit 5 if its job's failure ledger holds IDs
# now, else 0. The job and the ledger come from the run's --job and --failures-table (a run
# whose job is in a job file only may exit either; retry-failed --reason R counts R only).
expect_done() {
    local what=$1 job="" ledger=enrich_failures reason="" i n
    for ((i = 0; i < ${#LAST_ARGS[@]}; i++)); do
        case "${LAST_ARGS[i]}" in
        --job) job=${LAST_ARGS[i + 1]:-} ;;
        --failures-table) ledger=${LAST_ARGS[i + 1]:-} ;;
        --reason) [ "${LAST_ARGS[0]}" != retry-failed ] || reason=${LAST_ARGS[i + 1]:-} ;;
        esac
    done
    if [ -z "$job" ]; then
        [ "$RC" -eq 0 ] || [ "$RC" -eq 5 ] || fail "$what: exit $RC, expected 0 or 5 (done)"
        return
    fi
    n=$(q "SELECT count(*) FROM \"$ledger\" WHERE job = '${job//\'/\'\'}'
             ${reason:+AND reason = '$reason'}" 2>/dev/null || echo 0)
    if [ "$n" -gt 0 ]; then
        expect_rc 5 "$what (done, $n IDs in the ledger)"
    else
        expect_rc 0 "$what (done, an empty ledger)"
    fi
}

# summary LABEL KEY: a key=value of the run's `summary:` or `failures:` line.
summary() {
    local file="$IT_TMP/$1.out" v
    v=$(grep -E '^(summary|failures): ' "$file" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1)
    [ -n "$v" ] || LAST_RUN=$1 fail "no $2= in the summary of run $1"
    printf '%s\n' "$v"
}

# Both summary lines must be there, in the documented shape.
check_summary_shape() {
    local file="$IT_TMP/$1.out"
    grep -qE '^summary: ids_read=[0-9]+ rows_loaded=[0-9]+ failures=[0-9]+ retries=[0-9]+ requests=[0-9]+ elapsed_s=[0-9.]+ rows_per_s=[0-9.]+$' "$file" ||
        LAST_RUN=$1 fail "run $1: no well-formed summary line"
    grep -qE '^failures: not_found=[0-9]+ no_location=[0-9]+ bad_response=[0-9]+ rejected=[0-9]+ attempts_exhausted=[0-9]+ forbidden=[0-9]+ unloadable=[0-9]+ kept_rows=[0-9]+$' "$file" ||
        LAST_RUN=$1 fail "run $1: no well-formed failures line"
}

# ---------------------------------------------------------------------------- assertions

assert_eq() {
    [ "$2" = "$3" ] || fail "$1: got '$3', expected '$2'"
}

assert_le() {
    [ "$2" -le "$3" ] || fail "$1: $2 > $3"
}

# assert_none DESCRIPTION QUERY: QUERY must return no rows (a few are shown if it does).
assert_none() {
    local out
    out=$(sql -c "$2 LIMIT 5") || fail "$1: query failed"
    [ -z "$out" ] || fail "$1; for example:
$out"
}

# check_against_expected JOB [TARGET] [FAILURES] [SOURCE] [KEY]: the target holds exactly the
# expected found rows with their values, failures hold exactly the other IDs with their
# outcome as reason, and every source ID sits in exactly one of the two.
check_against_expected() {
    local job=$1 target=${2:-standardized_locations} failures=${3:-enrich_failures}
    local source=${4:-master_table} key=${5:-id}
    local cols="label, geo_label, street_address, city_label, postal_code, country_label, latitude, longitude"
    assert_none "loaded rows that differ from the expected ones" \
        "SELECT id, $cols FROM $target EXCEPT SELECT id, $cols FROM expected WHERE outcome = 'found'"
    assert_none "expected rows missing from the target" \
        "SELECT id, $cols FROM expected WHERE outcome = 'found' EXCEPT SELECT id, $cols FROM $target"
    assert_none "failures that differ from the expected outcomes" \
        "SELECT id, reason FROM $failures WHERE job = '$job'
         EXCEPT SELECT id, outcome FROM expected WHERE outcome <> 'found'"
    assert_none "expected failures not recorded" \
        "SELECT id, outcome FROM expected WHERE outcome <> 'found'
         EXCEPT SELECT id, reason FROM $failures WHERE job = '$job'"
    check_one_place "$job" "$target" "$failures" "$source" "$key"
}

# check_one_place JOB TARGET FAILURES SOURCE KEY: each source ID in exactly one place.
check_one_place() {
    local job=$1 target=$2 failures=$3 source=$4 key=$5
    assert_none "source IDs not in exactly one place (target xor failures)" \
        "SELECT s.$key FROM $source s
         WHERE (SELECT count(*) FROM $target t WHERE t.id = s.$key)
             + (SELECT count(*) FROM $failures f WHERE f.job = '$job' AND f.id = s.$key) <> 1"
    assert_none "target rows for IDs not in the source" \
        "SELECT t.id FROM $target t WHERE NOT EXISTS (SELECT 1 FROM $source s WHERE s.$key = t.id)"
}

# The token values must never show up in anything pgenrich printed.
assert_no_secret() {
    local secret=$1 f
    for f in "$IT_TMP"/*.out "$IT_TMP"/*.err; do
        [ -e "$f" ] || continue
        if grep -qF -- "$secret" "$f"; then
            fail "the token appears in $(basename "$f"): $(grep -nF -- "$secret" "$f" | head -n 3)"
        fi
    done
}

# ---------------------------------------------------------------------------- more helpers

# load_expected_as TABLE KEYTYPE SOURCE_SQL [MOCK QUIRK FLAGS...]: like load_expected, into
# TABLE, for the IDs SOURCE_SQL returns. With quirk flags (--primary-down-mod N, --pad-mod
# N, ...: the same as the mock's) TABLE also gets `quirks text`: the quirks that picked the
# ID, comma-separated ('' for none; see tests/mockapi/README.md).
load_expected_as() {
    local table=$1 keytype=$2 src=$3 extra=""
    shift 3
    [ "$#" -eq 0 ] || extra=", quirks text NOT NULL"
    sql -c "\\copy ($src) TO STDOUT" >"$IT_TMP/ids.$table.copy"
    "$MOCKAPI_BIN" --expect "$@" <"$IT_TMP/ids.$table.copy" >"$IT_TMP/expected.$table.copy" ||
        fail "pgenrich-mockapi --expect $* failed"
    sql <<SQL
DROP TABLE IF EXISTS $table;
CREATE TABLE $table (id $keytype PRIMARY KEY, outcome text NOT NULL, label text,
    geo_label text, street_address text, city_label text, postal_code text,
    country_label text, latitude double precision, longitude double precision$extra);
SQL
    sql -c "\\copy $table FROM pstdin" <"$IT_TMP/expected.$table.copy"
    local n m
    n=$(wc -l <"$IT_TMP/ids.$table.copy")
    m=$(q "SELECT count(*) FROM $table")
    [ "$n" -eq "$m" ] || fail "--expect gave $m rows for $n ids"
}

# chain_providers PRIMARY_BASE [SECONDARY_BASE]: the job-file sections of API.md's two
# providers, [provider primary] then [provider secondary] (at PRIMARY_BASE unless given).
chain_providers() {
    local p=$1 q=${2:-$1}
    cat <<EOF
[provider primary]
url = $p/api/v2/entities/{id}?select=id,label,location
mapping = primary

[provider secondary]
url = $q/v1/lookup?entity={id}
mapping = secondary
EOF
}

# mock_stats [URL]: all counters of the mock's /__stats, as one line of name=value.
# shellcheck disable=SC2120
mock_stats() {
    curl -fsS --max-time 5 "${1:-$MOCK_URL}/__stats" | tr -d '{}"' | tr ',:' ' =' ||
        fail "GET ${1:-$MOCK_URL}/__stats failed"
}

# mock_reset_stats [URL]: zero the mock's counters.
# shellcheck disable=SC2120
mock_reset_stats() {
    curl -fsS --max-time 5 "${1:-$MOCK_URL}/__stats?reset=1" >/dev/null ||
        fail "GET ${1:-$MOCK_URL}/__stats?reset=1 failed"
}

# checkpoint_of JOB [TABLE]: the job's checkpoint row (every column, '|'-separated), or ''.
checkpoint_of() {
    q "SELECT c FROM ${2:-enrich_checkpoints} c WHERE job = '$1'"
}

# assert_stderr_has LABEL TEXT...: run LABEL's stderr holds each TEXT (fixed strings), read
# with the quoted values' \" and \\ escapes undone, so that TEXT is what the message said.
assert_stderr_has() {
    local label=$1 t
    shift
    for t in "$@"; do
        grep -qF -- "$t" <(sed -e 's/\\"/"/g' -e 's/\\\\/\\/g' "$IT_TMP/$label.err") ||
            LAST_RUN=$label fail "run $label: stderr does not mention '$t'"
    done
}

# start_private_pg: a PostgreSQL of this test's own (scripts/pg in $IT_TMP/pg), for a test
# that restarts, stops or pins its server, which the other tests must not see. It takes a
# free port below the ephemeral range (where mocks and clients take theirs), with a few
# tries since another process may take it first; sets `port`, defines pgc (scripts/pg on
# that server) and stops the server at exit.
start_private_pg() {
    chmod 0755 "$IT_TMP" # the server runs as postgres when the test runs as root
    local started=false
    for port in $(shuf -i 20000-32000 -n 5); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
        if pgc start >>"$IT_TMP/pg.log" 2>&1; then
            started=true
            break
        fi
    done
    $started || { cat "$IT_TMP/pg.log" >&2; fail "the private server did not start"; }
    IT_AT_EXIT+=("pgc stop >/dev/null 2>&1")
}
pgc() { PGENRICH_PGDIR="$IT_TMP/pg" PGENRICH_PGPORT=$port "$IT_ROOT/scripts/pg" "$@"; }
