#!/usr/bin/env bash
# test_joblock: one job, one runner. While a run of job `lock` is going, a second `run` and
# a `retry-failed` of the same job exit 4 at once, naming the job and the holder's pid, and
# look nothing up; another job at the same time is not refused. The first run finishes
# with every ID looked up exactly once. The checkpoint never moves backwards: a position
# set past the end while the run goes is still there when it ends.
# Each run here takes seconds: one that hangs fails the test early.
IT_RUN_TIMEOUT=${IT_RUN_TIMEOUT:-45}
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=20000
OTHER_N=2000
BIG=1000000
seed_bigint "$N"
load_expected bigint
start_mock --latency-ms 20
URL_A=$MOCK_URL
start_mock --latency-ms 20
URL_B=$MOCK_URL

args=(--dsn "$IT_DSN" --job lock --base-url "$URL_A" --page-size 1000 --flush-rows 500
    --flush-interval 0.3)
# 16 in flight at 20 ms: about 800 lookups a second, so the run lasts long enough (~25 s)
# for everything below to happen while it goes.
start_pgenrich a run "${args[@]}" --concurrency 16 --quiet
A_PID=$PGENRICH_PID
for _ in $(seq 1 300); do
    [ -n "$(q "SELECT 1 FROM enrich_checkpoints WHERE job = 'lock'")" ] && break
    kill -0 "$A_PID" 2>/dev/null || fail "run A ended before its checkpoint row was written"
    sleep 0.1
done
[ -n "$(q "SELECT 1 FROM enrich_checkpoints WHERE job = 'lock'")" ] ||
    fail "no checkpoint row of run A after 30 s"
log "run A (pid $A_PID) has a checkpoint: $(checkpoint_of lock)"

# --- 1. a second run of the same job: exit 4 at once ----------------------------------------
t0=$SECONDS
run_pgenrich b run "${args[@]}" --concurrency 16
expect_rc 4 "a second run of a job that is running"
assert_le "seconds the second run took to be refused" "$((SECONDS - t0))" 5
assert_stderr_has b 'job "lock" is already running' pid
# The holder is named: pgenrich names its session after its own pid.
if grep -q 'pgenrich pid' "$IT_TMP/b.err"; then
    assert_stderr_has b "pgenrich pid $A_PID"
fi
log "second run: exit 4: $(grep -m1 'already running' "$IT_TMP/b.err")"
# The same with --restart: it must not reset the running job's checkpoint either.
run_pgenrich b_restart run "${args[@]}" --restart
expect_rc 4 "a second run with --restart of a job that is running"
assert_stderr_has b_restart 'job "lock" is already running' pid
[ -n "$(q "SELECT 1 FROM enrich_checkpoints WHERE job = 'lock'")" ] ||
    fail "the refused --restart removed the running job's checkpoint"

# --- 2. retry-failed of the same job: exit 4 ------------------------------------------------
t0=$SECONDS
run_pgenrich retry retry-failed --dsn "$IT_DSN" --job lock --base-url "$URL_A"
expect_rc 4 "retry-failed of a job that is running"
assert_le "seconds retry-failed took to be refused" "$((SECONDS - t0))" 5
assert_stderr_has retry 'job "lock" is already running' pid

# --- 3. another job meanwhile is not refused ------------------------------------------------
kill -0 "$A_PID" 2>/dev/null || fail "run A ended before the other job ran: the test proves nothing"
run_pgenrich other run --dsn "$IT_DSN" --job other --base-url "$URL_B" --where "id <= $OTHER_N" \
    --target-table other_target --concurrency 64 --quiet
expect_done "another job while job lock runs"
assert_eq "lookups of the other job (its own mock)" "$OTHER_N" "$(mock_stat requests "$URL_B")"
assert_eq "the other job settled its IDs" "$OTHER_N" \
    "$(q "SELECT (SELECT count(*) FROM other_target) +
                 (SELECT count(*) FROM enrich_failures WHERE job = 'other')")"

# --- 4. the checkpoint never moves backwards -------------------------------------------------
kill -0 "$A_PID" 2>/dev/null || fail "run A ended before the checkpoint was moved: the test proves nothing"
sql -c "UPDATE enrich_checkpoints SET position = '$BIG' WHERE job = 'lock'"
log "checkpoint of run A set to $BIG while it runs"

# --- 5. run A finishes, every ID looked up once ------------------------------------------------
PGENRICH_PID=$A_PID
LAST_RUN=a
wait_pgenrich 60
expect_done "run A"
check_summary_shape a
log "run A: $(grep -E '^(summary|failures):' "$IT_TMP/a.out" | tr '\n' ' ')"
check_against_expected lock
assert_eq "lookups of job lock (no doubled ones)" "$N" "$(mock_stat requests "$URL_A")"
assert_eq "checkpoint rows_loaded + failures" "$N" \
    "$(q "SELECT rows_loaded + failures FROM enrich_checkpoints WHERE job = 'lock'")"
assert_eq "checkpoint position after the run (never moved back)" "$BIG" \
    "$(q "SELECT position FROM enrich_checkpoints WHERE job = 'lock'")"

# --- 6. once A is gone the job is free again -------------------------------------------------
run_pgenrich again run "${args[@]}" --quiet
expect_done "a run of the job after the first one ended"
