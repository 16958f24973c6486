#!/usr/bin/env bash
# test_shared_lease: fencing. Worker A runs the job's only range slowly and is stopped
# (SIGSTOP) with lookups in flight and settled rows not yet flushed; worker B waits for A's
# lease (3 s) to expire, takes the range over from its checkpoint and finishes the job. A is
# then continued (SIGCONT): its flushes carry the old fence and must commit nothing. The
# check: B has finished before A goes on, so any target row or ledger entry written at or
# after the moment A was continued can only be a fenced flush that committed. A notices
# (event=lease_lost), claims nothing more (every range is done) and exits done.
IT_RUN_TIMEOUT=${IT_RUN_TIMEOUT:-60}
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=6000
seed_bigint "$N"
load_expected bigint
start_mock --latency-ms 40
SLOW_URL=$MOCK_URL
start_mock --latency-ms 0
FAST_URL=$MOCK_URL
run_pgenrich init init --dsn "$IT_DSN"
expect_rc 0 "init"

common=(--dsn "$IT_DSN" --job fenced --shared --ranges 1 --lease-seconds 3 --page-size 100
    --flush-rows 100000)
# A: 8 in flight at 40 ms (~200 a second: the range would take 30 s), a flush a second.
start_pgenrich a run "${common[@]}" --base-url "$SLOW_URL" --concurrency 8 --flush-interval 1
A_PID=$PGENRICH_PID
for _ in $(seq 1 200); do
    [ "$(q "SELECT count(*) FROM enrich_ranges WHERE job = 'fenced' AND position IS NOT NULL")" -gt 0 ] &&
        break
    sleep 0.1
done
A_OWNER=$(q "SELECT owner FROM enrich_ranges WHERE job = 'fenced' AND position IS NOT NULL")
[ -n "$A_OWNER" ] || fail "worker A committed nothing within 20 s"
sleep 0.5 # some settled rows wait for A's next flush
kill -STOP "$A_PID"
STOPPED_AT=$(q "SELECT clock_timestamp()")
POS_AT_STOP=$(q "SELECT position FROM enrich_ranges WHERE job = 'fenced'")
log "worker A ($A_OWNER) stopped at position $POS_AT_STOP"

# B: fast; it must wait for A's lease to run out, then take the range over.
start_pgenrich b run "${common[@]}" --base-url "$FAST_URL" --concurrency 16 --flush-interval 0.3
B_PID=$PGENRICH_PID
wait_pgenrich 40
expect_done "worker B"
row=$(q "SELECT state, owner <> '$A_OWNER', fence, position::bigint >= $POS_AT_STOP,
                updated_at - '$STOPPED_AT'::timestamptz >= interval '2.5 s'
         FROM enrich_ranges WHERE job = 'fenced'")
assert_eq "the range: done by B, claimed twice, from A's checkpoint on, after A's lease" \
    "done|t|2|t|t" "$row"
assert_stderr_has b "taken_over_from=\"$A_OWNER\"" "position=\"$POS_AT_STOP"
assert_le "lookups B repeated past A's checkpoint (at most one window)" \
    "$(mock_stat requests "$FAST_URL")" "$((N - POS_AT_STOP))"
kill -0 "$B_PID" 2>/dev/null && fail "worker B still runs"

CONT_AT=$(q "SELECT clock_timestamp()")
kill -CONT "$A_PID"
PGENRICH_PID=$A_PID
LAST_RUN=a
LAST_ARGS=("${common[@]}")
wait_pgenrich 30
expect_done "worker A, continued after losing its range"
assert_stderr_has a "event=lease_lost"
assert_none "target rows written after A was continued (a fenced flush committed)" \
    "SELECT id, fetched_at FROM standardized_locations WHERE fetched_at >= '$CONT_AT'"
assert_none "ledger entries written after A was continued (a fenced flush committed)" \
    "SELECT id, last_seen FROM enrich_failures WHERE last_seen >= '$CONT_AT'"
assert_eq "the range, after A went on" "done|2" \
    "$(q "SELECT state, fence FROM enrich_ranges WHERE job = 'fenced'")"
check_against_expected fenced
log "worker A wrote nothing to the range it lost"
