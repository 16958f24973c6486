#!/usr/bin/env bash
# test_stall: one ID's Retry-After never stalls the job. (a) A 503 asking to come back in an
# hour, over --retry-after-max (default 60 s), settles that ID as attempts_exhausted at
# once: the run takes about as long as without it. (b) A wait within the cap is honoured
# for that ID while fresh IDs keep flowing. (c) A 429 (the whole job) asking for more than
# the cap stops the job cleanly with exit 75 and a consistent checkpoint; a rerun later
# finishes it.
# Each run here takes seconds: one that hangs fails the test early.
IT_RUN_TIMEOUT=${IT_RUN_TIMEOUT:-45}
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=50000
CONC=64
PAGE=1000
# --slow-mod 21750 picks 3 of the IDs 1..50000 (168, 39697, 47287): one early, so that the
# job has plenty left to do while it waits, and two late ones.
SLOW_MOD=21750
seed_bigint "$N"
load_expected_as expected bigint "SELECT id FROM master_table" --slow-mod "$SLOW_MOD"
picked=$(q "SELECT count(*) FROM expected WHERE quirks ~ 'slow'")
first_slow=$(q "SELECT min(id) FROM expected WHERE quirks ~ 'slow'")
{ [ "$picked" -ge 1 ] && [ "$picked" -le 3 ]; } ||
    fail "--slow-mod $SLOW_MOD picks $picked IDs, the test wants 1 to 3"
log "slow IDs: $(q "SELECT string_agg(id::text, ' ' ORDER BY id) FROM expected WHERE quirks ~ 'slow'")"
# The slow IDs, after their attempts: attempts_exhausted, whatever their entity.
sql -c "CREATE TABLE expected_plain AS SELECT * FROM expected;
        UPDATE expected SET outcome = 'attempts_exhausted', label = NULL, geo_label = NULL,
            street_address = NULL, city_label = NULL, postal_code = NULL,
            country_label = NULL, latitude = NULL, longitude = NULL
        WHERE quirks ~ 'slow'"

# timed_run LABEL TARGET [flags...]: run job LABEL into TARGET (the current mock); sets
# ELAPSED_MS.
timed_run() {
    local label=$1 target=$2 t0
    shift 2
    t0=$(date +%s%N)
    run_pgenrich "$label" run --dsn "$IT_DSN" --job "$label" --base-url "$MOCK_URL" \
        --target-table "$target" --concurrency "$CONC" --page-size "$PAGE" --quiet "$@"
    ELAPSED_MS=$((($(date +%s%N) - t0) / 1000000))
}

# --- plain: the time to beat --------------------------------------------------------------
start_mock
timed_run plain plain_target
expect_done "the run without slow IDs"
plain_ms=$ELAPSED_MS
log "plain run: $plain_ms ms ($(grep -E '^summary:' "$IT_TMP/plain.out"))"
stop_mock_pid "$MOCK_PID"

# --- (a) Retry-After: 3600 over the cap: settled at once ---------------------------------------
start_mock --slow-mod "$SLOW_MOD" --slow-retry-after 3600
timed_run over_cap over_cap_target
expect_done "a run where some IDs answer 503 with Retry-After: 3600"
check_summary_shape over_cap
log "over the cap: $ELAPSED_MS ms (plain $plain_ms ms); $(grep -E '^failures:' "$IT_TMP/over_cap.out")"
assert_le "run time with Retry-After: 3600 (ms; at most 2 x plain + 5 s)" "$ELAPSED_MS" \
    "$((2 * plain_ms + 5000))"
check_against_expected over_cap over_cap_target
assert_none "slow IDs whose last_error does not mention the Retry-After" \
    "SELECT f.id, f.last_error FROM enrich_failures f JOIN expected e USING (id)
     WHERE f.job = 'over_cap' AND e.quirks ~ 'slow' AND f.last_error NOT ILIKE '%retry-after%'"
assert_eq "attempts_exhausted=" "$picked" "$(summary over_cap attempts_exhausted)"
assert_eq "checkpoint" "t|$N" "$(q "SELECT finished, position FROM enrich_checkpoints
                                     WHERE job = 'over_cap'")"
# A lower cap than the server's ask is the same story (over the first 10000 IDs, which hold
# one slow ID).
mock_reset_stats
timed_run over_cap10 over_cap10_target --retry-after-max 10 --where 'id <= 10000'
expect_done "--retry-after-max 10 with Retry-After: 3600"
assert_le "run time with --retry-after-max 10 (ms; at most plain + 5 s)" "$ELAPSED_MS" \
    "$((plain_ms + 5000))"
assert_eq "--retry-after-max 10: the slow ID in the ledger" "attempts_exhausted|1" \
    "$(q "SELECT f.reason, count(*) FROM enrich_failures f JOIN expected e USING (id)
          WHERE f.job = 'over_cap10' AND e.quirks ~ 'slow' GROUP BY f.reason")"
stop_mock_pid "$MOCK_PID"

# --- (b) Retry-After: 4, within the cap: the ID waits, the job does not ---------------------
WAIT=6
MAX_ATT=2
start_mock --slow-mod "$SLOW_MOD" --slow-retry-after "$WAIT"
t0=$(date +%s%N)
start_pgenrich within_cap run --dsn "$IT_DSN" --job within_cap --base-url "$MOCK_URL" \
    --target-table within_cap_target --concurrency "$CONC" --page-size "$PAGE" \
    --max-attempts "$MAX_ATT" --quiet
# The first slow answer; then, while that ID waits out its Retry-After, the job must get more
# than the window (8 pages) past it before the ID's retry comes. Stalled, it stops within
# the window whatever the machine's speed; so the race is against the retry, not a clock.
r_slow=""
for _ in $(seq 1 3000); do
    if [ "$(mock_stat forced_slow)" -ge 1 ]; then
        r_slow=$(mock_stat requests)
        break
    fi
    kill -0 "$PGENRICH_PID" 2>/dev/null || break
    sleep 0.01
done
[ -n "$r_slow" ] || fail "no request for a slow ID seen while the run went"
want=$((8 * PAGE))
[ "$((N - r_slow - 2 * CONC))" -ge "$want" ] || want=$((N - r_slow - 2 * CONC))
progress=0
while :; do
    stats=$(mock_stats)
    r_now=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$stats")
    slow_now=$(sed -n 's/.*forced_slow=\([0-9]*\).*/\1/p' <<<"$stats")
    progress=$((r_now - r_slow))
    [ "$progress" -gt "$want" ] && break
    [ "$slow_now" -ge 2 ] &&
        fail "the job stalled behind a waiting ID: $progress lookups (want > $want) before its retry"
    kill -0 "$PGENRICH_PID" 2>/dev/null ||
        fail "the run ended $progress lookups after the first slow answer (want > $want)"
    sleep 0.05
done
log "within the cap: $r_slow lookups at the first slow answer, more than $want more before its retry"
wait_pgenrich 45
expect_done "a run where some IDs answer 503 with Retry-After: $WAIT"
elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
log "within the cap: $elapsed_ms ms (plain $plain_ms ms); $(grep -E '^failures:' "$IT_TMP/within_cap.out")"
assert_le "run time with Retry-After: $WAIT (ms; plain + $WAIT s x $MAX_ATT + 5 s)" \
    "$elapsed_ms" "$((plain_ms + WAIT * MAX_ATT * 1000 + 5000))"
[ "$elapsed_ms" -ge $(((WAIT - 1) * 1000)) ] ||
    fail "the run took $elapsed_ms ms: the slow IDs cannot have waited out Retry-After: $WAIT"
check_against_expected within_cap within_cap_target
assert_none "slow IDs not tried --max-attempts times" \
    "SELECT f.id, f.attempts FROM enrich_failures f JOIN expected e USING (id)
     WHERE f.job = 'within_cap' AND e.quirks ~ 'slow' AND f.attempts <> $MAX_ATT"
assert_eq "slow answers the mock sent (max-attempts per slow ID)" "$((picked * MAX_ATT))" \
    "$(mock_stat forced_slow)"
stop_mock_pid "$MOCK_PID"

# --- (c) a 429 asking the job to wait an hour: stop cleanly, come back later -----------------
start_mock --slow-mod "$SLOW_MOD" --slow-retry-after 3600 --slow-status 429
t0=$SECONDS
run_pgenrich busy run --dsn "$IT_DSN" --job busy --base-url "$MOCK_URL" --target-table busy_target \
    --concurrency "$CONC" --page-size "$PAGE" --flush-interval 0.3
expect_rc 75 "a 429 with Retry-After: 3600 (over the cap)"
log "429: exit 75 after $((SECONDS - t0)) s: $(grep -m1 -iE 'retry after|come back' "$IT_TMP/busy.err" || true)"
assert_le "seconds to stop on a 429 over the cap" "$((SECONDS - t0))" 20
grep -qiE 'retry after|come back' "$IT_TMP/busy.err" ||
    LAST_RUN=busy fail "exit 75 without saying when to come back"
check_summary_shape busy
pos=$(q "SELECT coalesce(position, '0') FROM enrich_checkpoints WHERE job = 'busy'")
log "429: checkpoint $(checkpoint_of busy)"
assert_eq "checkpoint not finished after exit 75" f \
    "$(q "SELECT coalesce(bool_or(finished), false) FROM enrich_checkpoints WHERE job = 'busy'")"
[ "$pos" -lt "$first_slow" ] ||
    fail "the checkpoint ($pos) is past the ID the provider asked to wait for ($first_slow)"
assert_none "IDs up to the checkpoint that are not settled" \
    "SELECT m.id FROM master_table m
     WHERE m.id <= $pos
       AND NOT EXISTS (SELECT 1 FROM busy_target t WHERE t.id = m.id)
       AND NOT EXISTS (SELECT 1 FROM enrich_failures f WHERE f.job = 'busy' AND f.id = m.id)"
assert_eq "checkpoint counters = committed rows|failures" \
    "$(q "SELECT count(*) FROM busy_target")|$(q "SELECT count(*) FROM enrich_failures WHERE job = 'busy'")" \
    "$(q "SELECT coalesce(max(rows_loaded), 0) || '|' || coalesce(max(failures), 0)
          FROM enrich_checkpoints WHERE job = 'busy'")"
stop_mock_pid "$MOCK_PID"

# The provider is back: the rerun finishes the job, every ID in exactly one place, the one
# the provider asked to wait for included.
start_mock
run_pgenrich busy_rerun run --dsn "$IT_DSN" --job busy --base-url "$MOCK_URL" \
    --target-table busy_target --concurrency "$CONC" --page-size "$PAGE" --quiet
expect_done "the rerun after exit 75"
check_one_place busy busy_target enrich_failures master_table id
sql -c "ALTER TABLE expected RENAME TO expected_slow; ALTER TABLE expected_plain RENAME TO expected"
check_against_expected busy busy_target
assert_eq "checkpoint after the rerun" "t|$N" "$(q "SELECT finished, position FROM enrich_checkpoints
                                                     WHERE job = 'busy'")"
