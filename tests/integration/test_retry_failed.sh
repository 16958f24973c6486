#!/usr/bin/env bash
# test_retry_failed: `pgenrich retry-failed --job J [--reason R]` looks up exactly the IDs of
# J's failure ledger (only reason R), removes the ones that now load, updates the others
# (first_seen kept, last_seen moved), leaves other reasons, other jobs and J's checkpoint
# alone, and prints the two summary lines plus `ledger: job=J remaining=N`.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=4000
cols="label, geo_label, street_address, city_label, postal_code, country_label, latitude, longitude"
seed_bigint "$N"
load_expected bigint

# check_ledger_line LABEL JOB REASON: the `ledger:` line is there and its count is right.
check_ledger_line() {
    local label=$1 job=$2 reason=$3 file="$IT_TMP/$1.out" want filter=""
    check_summary_shape "$label"
    grep -qE "^ledger: job=$job remaining=[0-9]+$" "$file" ||
        LAST_RUN=$label fail "run $label: no line 'ledger: job=$job remaining=N'"
    [ -z "$reason" ] || filter="AND reason = '$reason'"
    want=$(q "SELECT count(*) FROM enrich_failures WHERE job = '$job' $filter")
    assert_eq "run $label: ledger remaining" "$want" \
        "$(sed -n "s/^ledger: job=$job remaining=//p" "$file")"
}

# --- 1. a job against a flaky mock: about a third of the IDs end attempts_exhausted -----------
# 0.3 and not more: at half the answers failing, the provider's circuit breaker (threshold
# 0.5) keeps pausing it, which makes a single-provider run crawl.
start_mock --seed 3 --p-5xx 0.3
run_pgenrich first run --dsn "$IT_DSN" --job retry --base-url "$MOCK_URL" --max-attempts 1 \
    --concurrency 64 --quiet
expect_done "first run against a flaky mock"
# Another job's ledger on the same table, which retry-failed --job retry must not touch.
run_pgenrich other run --dsn "$IT_DSN" --job other --base-url "$MOCK_URL" --max-attempts 1 \
    --where 'id <= 500' --target-table other_target --quiet
expect_done "another job against the flaky mock"
stop_mock_pid "$MOCK_PID"
check_one_place retry standardized_locations enrich_failures master_table id
e1=$(q "SELECT count(*) FROM enrich_failures WHERE job = 'retry' AND reason = 'attempts_exhausted'")
log "first run: $(grep -E '^failures:' "$IT_TMP/first.out")"
[ "$e1" -gt $((N / 4)) ] || fail "only $e1 attempts_exhausted failures: the test proves little"
[ "$(q "SELECT count(*) FROM enrich_failures WHERE job = 'retry'
        AND reason IN ('not_found', 'no_location')")" -gt 0 ] ||
    fail "no not_found/no_location failures to leave alone"
sql <<'EOF'
CREATE TABLE ledger1 AS SELECT * FROM enrich_failures;
CREATE TABLE target1 AS SELECT id, fetched_at, provider FROM standardized_locations;
EOF
cp1=$(checkpoint_of retry)
[ -n "$cp1" ] || fail "no checkpoint for job retry"

# retry_checks LABEL: what must hold after every retry-failed of job retry.
retry_checks() {
    local label=$1
    assert_eq "run $label: checkpoint untouched" "$cp1" "$(checkpoint_of retry)"
    assert_none "run $label: the other job's ledger changed" \
        "(SELECT * FROM ledger1 WHERE job = 'other' EXCEPT SELECT * FROM enrich_failures)
         UNION ALL
         (SELECT * FROM enrich_failures WHERE job = 'other' EXCEPT SELECT * FROM ledger1)"
    assert_none "run $label: rows loaded before the retries changed" \
        "SELECT id, fetched_at, provider FROM target1
         EXCEPT SELECT id, fetched_at, provider FROM standardized_locations"
    check_one_place retry standardized_locations enrich_failures master_table id
    assert_none "run $label: loaded rows that differ from the expected ones" \
        "SELECT id, $cols FROM standardized_locations
         EXCEPT SELECT id, $cols FROM expected WHERE outcome = 'found'"
    assert_none "run $label: first_seen changed" \
        "SELECT f.id, f.first_seen, l.first_seen FROM enrich_failures f
         JOIN ledger1 l USING (job, id) WHERE f.first_seen <> l.first_seen"
    assert_none "run $label: failures with a reason that is neither the truth nor exhaustion" \
        "SELECT f.id, f.reason, e.outcome FROM enrich_failures f JOIN expected e USING (id)
         WHERE f.job = 'retry' AND f.reason NOT IN (e.outcome, 'attempts_exhausted')"
}

# --- 2. retry the attempts_exhausted ones against a mock that is still flaky ------------------
sleep 0.2
start_mock --seed 5 --p-5xx 0.3
run_pgenrich retry1 retry-failed --dsn "$IT_DSN" --job retry --reason attempts_exhausted \
    --base-url "$MOCK_URL" --max-attempts 1 --quiet
expect_done "retry-failed --reason attempts_exhausted (flaky mock)"
check_ledger_line retry1 retry attempts_exhausted
log "retry1: $(tr '\n' ' ' <"$IT_TMP/retry1.out")"
assert_eq "retry1: IDs read = the job's attempts_exhausted failures" "$e1" \
    "$(summary retry1 ids_read)"
assert_eq "retry1: one request per ledger ID (exactly those IDs, once)" "$e1" "$(mock_stat requests)"
stop_mock_pid "$MOCK_PID"
retry_checks retry1
assert_none "retry1: failures of other reasons were touched (reason filter)" \
    "(SELECT * FROM ledger1 WHERE job = 'retry' AND reason <> 'attempts_exhausted'
      EXCEPT SELECT * FROM enrich_failures)
     UNION ALL
     (SELECT f.* FROM enrich_failures f JOIN ledger1 l USING (job, id)
      WHERE l.reason <> 'attempts_exhausted' EXCEPT SELECT * FROM ledger1)"
assert_none "retry1: IDs still failing whose last_seen did not move" \
    "SELECT f.id, f.last_seen, l.last_seen FROM enrich_failures f JOIN ledger1 l USING (job, id)
     WHERE l.job = 'retry' AND l.reason = 'attempts_exhausted' AND f.last_seen <= l.last_seen"
loaded1=$(q "SELECT count(*) FROM ledger1 l WHERE l.job = 'retry'
             AND EXISTS (SELECT 1 FROM standardized_locations t WHERE t.id = l.id)")
still1=$(q "SELECT count(*) FROM enrich_failures f JOIN ledger1 l USING (job, id)
            WHERE l.job = 'retry' AND l.reason = 'attempts_exhausted'")
log "retry1: $loaded1 of $e1 loaded, $still1 still in the ledger"
assert_eq "retry1: the ledger lost exactly the IDs that loaded" "$e1" "$((loaded1 + still1))"
assert_eq "retry1: rows_loaded" "$loaded1" "$(summary retry1 rows_loaded)"
if [ "$loaded1" -eq 0 ] || [ "$still1" -eq 0 ]; then
    fail "retry1 should both load some IDs and leave some failing (loaded $loaded1, still $still1)"
fi
assert_none "retry1: new ledger rows appeared" \
    "SELECT job, id FROM enrich_failures EXCEPT SELECT job, id FROM ledger1"
sql -c "CREATE TABLE ledger2 AS SELECT * FROM enrich_failures"
e2=$(q "SELECT count(*) FROM enrich_failures WHERE job = 'retry' AND reason = 'attempts_exhausted'")

# --- 3. again against a healthy mock: the job ends exactly as a fault-free run ---------------
sleep 0.2
start_mock
run_pgenrich retry2 retry-failed --dsn "$IT_DSN" --job retry --reason attempts_exhausted \
    --base-url "$MOCK_URL" --quiet
expect_done "retry-failed --reason attempts_exhausted (healthy mock)"
check_ledger_line retry2 retry attempts_exhausted
log "retry2: $(tr '\n' ' ' <"$IT_TMP/retry2.out")"
assert_eq "retry2: IDs read" "$e2" "$(summary retry2 ids_read)"
assert_eq "retry2: one request per ledger ID" "$e2" "$(mock_stat requests)"
assert_eq "retry2: remaining attempts_exhausted" 0 \
    "$(sed -n 's/^ledger: job=retry remaining=//p' "$IT_TMP/retry2.out")"
retry_checks retry2
check_against_expected retry
assert_none "retry2: IDs still failing whose last_seen did not move" \
    "SELECT f.id FROM enrich_failures f JOIN ledger2 l USING (job, id)
     WHERE l.job = 'retry' AND l.reason = 'attempts_exhausted' AND f.last_seen <= l.last_seen"

# --- 4. no --reason: every ledger ID of the job, all of which fail again ----------------------
sql -c "DROP TABLE ledger2; CREATE TABLE ledger2 AS SELECT * FROM enrich_failures"
mock_reset_stats
sleep 0.2
run_pgenrich retry_all retry-failed --dsn "$IT_DSN" --job retry --base-url "$MOCK_URL" --quiet
expect_done "retry-failed without --reason"
check_ledger_line retry_all retry ""
total=$(q "SELECT count(*) FROM ledger2 WHERE job = 'retry'")
assert_eq "retry_all: IDs read = the whole ledger of the job" "$total" \
    "$(summary retry_all ids_read)"
assert_eq "retry_all: one request per ledger ID" "$total" "$(mock_stat requests)"
retry_checks retry_all
check_against_expected retry
assert_none "retry_all: last_seen did not move" \
    "SELECT f.id FROM enrich_failures f JOIN ledger2 l USING (job, id)
     WHERE f.job = 'retry' AND f.last_seen <= l.last_seen"

# --- 5. an empty ledger, and a missing --job -----------------------------------------------------
run_pgenrich retry_none retry-failed --dsn "$IT_DSN" --job nothing --base-url "$MOCK_URL" --quiet
expect_done "retry-failed of a job without failures"
check_ledger_line retry_none nothing ""
assert_eq "retry_none: IDs read" 0 "$(summary retry_none ids_read)"
assert_eq "retry_none: no checkpoint created" "" "$(checkpoint_of nothing)"
run_pgenrich retry_nojob retry-failed --dsn "$IT_DSN" --base-url "$MOCK_URL" --quiet
expect_rc 2 "retry-failed without --job"
