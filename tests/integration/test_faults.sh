#!/usr/bin/env bash
# test_faults: against a mock that answers 5xx, resets connections, hangs past the timeout
# and sends garbage, every ID still ends in exactly one place, loaded values are exact, and
# retries stay within --max-attempts. Then a rate-limited mock (429): nothing is lost.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=20000
MAX_ATTEMPTS=6
seed_bigint "$N"
load_expected bigint
run_pgenrich init init --dsn "$IT_DSN"
expect_done "pgenrich init"

# --- 1. transient faults --------------------------------------------------------------------
start_mock --threads 8 --seed 7 --p-5xx 0.1 --p-reset 0.05 --p-hang 0.02 --hang-ms 3000 \
    --p-garbage 0.01
run_pgenrich faults run --dsn "$IT_DSN" --job faults --base-url "$MOCK_URL" \
    --concurrency 256 --timeout 1 --max-attempts "$MAX_ATTEMPTS" --backoff-base 0.05 \
    --backoff-cap 1 --quiet
expect_done "pgenrich run under faults"
check_summary_shape faults

requests=$(mock_stat requests)
garbage=$(mock_stat garbage)
log "mock: requests=$requests 5xx=$(mock_stat err_5xx) reset=$(mock_stat reset)" \
    "hang=$(mock_stat hang) garbage=$garbage"
log "pgenrich: $(grep -E '^(summary|failures):' "$IT_TMP/faults.out" | tr '\n' ' ')"

check_one_place faults standardized_locations enrich_failures master_table id
cols="label, geo_label, street_address, city_label, postal_code, country_label, latitude, longitude"
assert_none "loaded rows that differ from the expected ones" \
    "SELECT id, $cols FROM standardized_locations
     EXCEPT SELECT id, $cols FROM expected WHERE outcome = 'found'"
# A failure is the ID's true outcome, or bad_response after garbage, or attempts exhausted.
assert_none "failures with an unexplained reason" \
    "SELECT f.id, f.reason, e.outcome FROM enrich_failures f JOIN expected e USING (id)
     WHERE f.reason <> e.outcome AND f.reason NOT IN ('bad_response', 'attempts_exhausted')"
changed_to_bad=$(q "SELECT count(*) FROM enrich_failures f JOIN expected e USING (id)
                    WHERE f.reason = 'bad_response' AND e.outcome <> 'bad_response'")
assert_le "IDs turned bad_response by garbage answers vs garbage sent" "$changed_to_bad" "$garbage"
exhausted=$(q "SELECT count(*) FROM enrich_failures WHERE reason = 'attempts_exhausted'")
# P(6 faults in a row) is about 0.18^6 = 3e-5 per ID: a handful at most among 20000.
assert_le "attempts_exhausted failures" "$exhausted" 10
assert_none "attempts_exhausted failures with fewer attempts than --max-attempts" \
    "SELECT id, attempts FROM enrich_failures
     WHERE reason = 'attempts_exhausted' AND attempts <> $MAX_ATTEMPTS"
lost_found=$(q "SELECT count(*) FROM expected e WHERE outcome = 'found'
                AND NOT EXISTS (SELECT 1 FROM standardized_locations t WHERE t.id = e.id)")
assert_le "found IDs not loaded (each must be explained by garbage or exhaustion)" \
    "$lost_found" "$((garbage + exhausted))"
assert_le "requests at least one per ID" "$N" "$requests"
assert_le "requests within ids x max-attempts" "$requests" "$((N * MAX_ATTEMPTS))"
[ "$(summary faults retries)" -gt 0 ] || fail "no retries reported under faults"
assert_eq "ids_read" "$N" "$(summary faults ids_read)"
assert_eq "summary rows_loaded = target rows" "$(q "SELECT count(*) FROM standardized_locations")" \
    "$(summary faults rows_loaded)"
assert_eq "summary failures = failure rows" "$(q "SELECT count(*) FROM enrich_failures")" \
    "$(summary faults failures)"
stop_mock_pid "$MOCK_PID"

# --- 2. rate limited: 429 with Retry-After ------------------------------------------------------
sql -c "TRUNCATE standardized_locations, enrich_failures, enrich_checkpoints"
sql -c "DELETE FROM master_table WHERE id > 1500"
start_mock --rate-limit 500
run_pgenrich ratelimited run --dsn "$IT_DSN" --job ratelimited --base-url "$MOCK_URL" \
    --concurrency 256 --max-attempts 20 --quiet
expect_done "pgenrich run against a rate-limited mock"
limited=$(mock_stat rate_limited)
log "rate limited: mock sent $limited 429s over $(mock_stat requests) requests;" \
    "elapsed $(summary ratelimited elapsed_s) s"
[ "$limited" -gt 0 ] || fail "the mock never rate-limited: the test proves nothing"
sql -c "DELETE FROM expected WHERE id > 1500"
check_against_expected ratelimited
