#!/usr/bin/env bash
# test_limits: limits of the machine and of the input. A --concurrency above the open-file
# soft limit raises it up to the hard limit at start-up, and the run goes through without
# a storm of transient failures; above the hard limit it is refused at start-up (exit 2,
# naming the limit) before any lookup. An empty key is `rejected` without a request.
# Each run here takes seconds: one that hangs fails the test early.
IT_RUN_TIMEOUT=${IT_RUN_TIMEOUT:-45}
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=20000
CONC=600
seed_bigint "$N"
load_expected bigint

# pgenrich under other open-file limits: a wrapper that sets them, then execs it.
REAL_BIN=$PGENRICH_BIN
cat >"$IT_TMP/limited" <<'EOF'
#!/usr/bin/env bash
# The soft limit first: the hard one cannot go below it.
ulimit -Sn "$IT_NOFILE_SOFT" || exit 99
[ -z "${IT_NOFILE_HARD:-}" ] || ulimit -Hn "$IT_NOFILE_HARD" || exit 99
exec "$IT_REAL_BIN" "$@"
EOF
chmod +x "$IT_TMP/limited"
export IT_REAL_BIN=$REAL_BIN

# run_limited LABEL SOFT HARD ARGS...: run_pgenrich with the open-file limits SOFT and HARD
# ('' leaves the hard limit as it is).
run_limited() {
    local label=$1
    export IT_NOFILE_SOFT=$2 IT_NOFILE_HARD=$3
    shift 3
    PGENRICH_BIN="$IT_TMP/limited" run_pgenrich "$label" "$@"
    [ "$RC" -ne 99 ] || fail "$label: cannot set the open-file limits (soft $IT_NOFILE_SOFT, hard $IT_NOFILE_HARD)"
}

# --- 1. soft limit 256, hard limit higher: raised, and the run goes through -----------------
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((CONC + 100)) ]; then
    log "SKIP section 1: the hard open-file limit ($hard) is below --concurrency $CONC + 100"
else
    start_mock --latency-ms 50
    run_limited raised 256 "" run --dsn "$IT_DSN" --job raised --base-url "$MOCK_URL" \
        --concurrency "$CONC" --page-size 5000
    expect_done "--concurrency $CONC under a soft open-file limit of 256"
    check_summary_shape raised
    inflight=$(mock_stat inflight_max)
    log "raised: $(grep -E '^(summary|failures):' "$IT_TMP/raised.out" | tr '\n' ' ')" \
        "(mock: at most $inflight at once)"
    log "raised: $(grep -m1 -iE 'nofile|open.file' "$IT_TMP/raised.err" || echo 'no message about the limit')"
    grep -qiE 'nofile|open.file' "$IT_TMP/raised.err" ||
        LAST_RUN=raised fail "raising the open-file limit was not logged (event=nofile_raised)"
    [ "$inflight" -gt 256 ] ||
        fail "only $inflight requests in flight at once: the raised limit was not used"
    assert_eq "attempts_exhausted=" 0 "$(summary raised attempts_exhausted)"
    assert_eq "retries (no transient failures: every connection could be opened)" 0 \
        "$(summary raised retries)"
    assert_eq "lookups" "$N" "$(mock_stat requests)"
    check_against_expected raised
    stop_mock_pid "$MOCK_PID"
fi

# --- 2. hard limit 300: refused at start-up ---------------------------------------------------
start_mock
run_limited refused 300 300 run --dsn "$IT_DSN" --job refused --base-url "$MOCK_URL" \
    --concurrency "$CONC" --target-table refused_target
expect_rc 2 "--concurrency $CONC under a hard open-file limit of 300"
log "refused: $(grep -m1 -iE 'nofile|open.file|ulimit' "$IT_TMP/refused.err" || true)"
grep -qiE 'open.file|nofile|ulimit' "$IT_TMP/refused.err" ||
    LAST_RUN=refused fail "the refusal does not name the open-file limit"
assert_eq "lookups of the refused run" 0 "$(mock_stat requests)"
assert_eq "checkpoint rows of the refused run" 0 \
    "$(q "SELECT count(*) FROM enrich_checkpoints WHERE job = 'refused'")"
# retry-failed is refused the same way.
run_limited refused_retry 300 300 retry-failed --dsn "$IT_DSN" --job raised \
    --base-url "$MOCK_URL" --concurrency "$CONC"
expect_rc 2 "retry-failed --concurrency $CONC under a hard open-file limit of 300"
assert_eq "lookups of the refused retry-failed" 0 "$(mock_stat requests)"
# Within the hard limit the same run is fine.
run_limited fits 300 300 run --dsn "$IT_DSN" --job fits --base-url "$MOCK_URL" \
    --concurrency 64 --target-table fits_target --where 'id <= 2000' --quiet
expect_done "--concurrency 64 under a hard open-file limit of 300"
assert_eq "lookups of the run within the limit" 2000 "$(mock_stat requests)"
stop_mock_pid "$MOCK_PID"

# --- 3. an empty key: rejected, never looked up -------------------------------------------------
sql <<'EOF'
CREATE TABLE text_source (id text PRIMARY KEY);
INSERT INTO text_source SELECT 'Q' || g FROM generate_series(1, 500) g;
INSERT INTO text_source VALUES ('');
EOF
load_expected_as exp_text text "SELECT id FROM text_source"
sql -c "UPDATE exp_text SET outcome = 'rejected', label = NULL, geo_label = NULL,
        street_address = NULL, city_label = NULL, postal_code = NULL, country_label = NULL,
        latitude = NULL, longitude = NULL WHERE id = ''"
start_mock --header-log "$IT_TMP/headers.log"
run_pgenrich empty run --dsn "$IT_DSN" --job empty --base-url "$MOCK_URL" \
    --source-table text_source --target-table empty_target --failures-table empty_failures \
    --concurrency 16 --quiet
expect_done "a text source with an empty key"
check_summary_shape empty
log "empty: $(grep -E '^failures:' "$IT_TMP/empty.out")"
assert_eq "lookups (every key but the empty one)" 500 "$(mock_stat requests)"
if grep -qE '^/api/v2/entities/(\?|[[:space:]])' "$IT_TMP/headers.log"; then
    fail "the empty key was looked up: $(grep -m1 -E '^/api/v2/entities/(\?|[[:space:]])' \
        "$IT_TMP/headers.log")"
fi
assert_eq "the empty key's ledger row" "rejected" \
    "$(q "SELECT reason FROM empty_failures WHERE job = 'empty' AND id = ''")"
assert_eq "rejected=" 1 "$(summary empty rejected)"
sql -c "ALTER TABLE exp_text RENAME TO expected_text" -c "ALTER TABLE expected RENAME TO expected_bigint" \
    -c "ALTER TABLE expected_text RENAME TO expected"
check_against_expected empty empty_target empty_failures text_source
assert_eq "checkpoint" "t" "$(q "SELECT finished FROM enrich_checkpoints WHERE job = 'empty'")"
