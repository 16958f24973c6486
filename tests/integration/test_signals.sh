#!/usr/bin/env bash
# test_signals: SIGTERM is a graceful stop. (1) The lookups in flight finish within
# --drain-timeout, then everything settled commits and the run exits 75 ("interrupted,
# resumable"): every lookup that was sent is committed. (2) Lookups slower than the drain
# timeout are abandoned when it expires: exit 75 soon after it. (3) A second signal abandons
# them at once, and still commits every answer the run held. (4) A resume then ends exact
# (exit 5: done, with the mock's not-found IDs in the ledger). (5) A signal during start-up
# (waiting for the job's lock) exits 75 at once.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=3000
seed_bigint "$N"
load_expected bigint
args=(run --dsn "$IT_DSN" --job sig --page-size 500 --flush-rows 200 --flush-interval 0.2
    --concurrency 100 --max-attempts 1)
committed() {
    q "SELECT (SELECT count(*) FROM standardized_locations)
            + (SELECT count(*) FROM enrich_failures WHERE job = 'sig')"
}
wait_requests() {
    for _ in $(seq 1 100); do
        [ "$(mock_stat requests)" -ge "$1" ] && return
        sleep 0.05
    done
    fail "the mock saw fewer than $1 requests after 5 s"
}

# --- 1. SIGTERM: the lookups in flight finish, then exit 75 ---------------------------------
start_mock --latency-ms 1500
start_pgenrich drain "${args[@]}" --base-url "$MOCK_URL" --drain-timeout 10
wait_requests 100
t0=$SECONDS
kill -TERM "$PGENRICH_PID"
wait_pgenrich 30
expect_rc 75 "SIGTERM with lookups in flight"
took=$((SECONDS - t0))
assert_le "seconds from SIGTERM to the exit (--drain-timeout 10)" "$took" 6
assert_stderr_has drain 'event=interrupted' 'event=drained' 'event=resumable'
sent=$(mock_stat requests)
assert_eq "outcomes committed after the drain (every lookup sent, none abandoned)" "$sent" "$(committed)"
log "drained: $sent lookups sent and committed, exit 75 after ${took}s"
stop_mock_pid "$MOCK_PID"

# --- 2. lookups slower than the drain timeout are abandoned when it expires -----------------
start_mock --latency-ms 8000
before=$(committed)
start_pgenrich timeout "${args[@]}" --base-url "$MOCK_URL" --drain-timeout 1
wait_requests 100
t0=$SECONDS
kill -TERM "$PGENRICH_PID"
wait_pgenrich 30
expect_rc 75 "SIGTERM past the drain timeout"
took=$((SECONDS - t0))
assert_le "seconds from SIGTERM to the exit (--drain-timeout 1)" "$took" 4
assert_stderr_has timeout 'event=drain_timeout'
assert_eq "outcomes committed (the abandoned lookups are left for the resume)" "$before" "$(committed)"

# --- 3. a second signal abandons the lookups at once, and loses no answer it holds ----------
# Answers spread over 0.1-6 s, and no flush before the signals (--flush-interval 600): the
# run holds answers it has not committed yet when the signals come; all of them commit.
stop_mock_pid "$MOCK_PID"
start_mock --latency-ms 100 --jitter-ms 6000
before=$(committed)
start_pgenrich twice "${args[@]}" --base-url "$MOCK_URL" --drain-timeout 60 \
    --flush-interval 600 --flush-rows 100000
for _ in $(seq 1 100); do
    grep -q 'event=resume ' "$IT_TMP/twice.err" 2>/dev/null && break
    sleep 0.05
done
sleep 2
assert_eq "outcomes committed before the signals (nothing flushed yet)" "$before" "$(committed)"
t0=$SECONDS
kill -TERM "$PGENRICH_PID"
sleep 0.3
kill -INT "$PGENRICH_PID"
wait_pgenrich 30
expect_rc 75 "two signals"
took=$((SECONDS - t0))
assert_le "seconds from the first signal to the exit (the second one stops at once)" "$took" 3
assert_stderr_has twice 'abandoning the lookups in flight'
held=$(sed -n 's/^summary: .* rows_loaded=\([0-9]*\) failures=\([0-9]*\) .*/\1 \2/p' \
    "$IT_TMP/twice.out" | awk '{print $1 + $2}')
[ -n "$held" ] || fail "two signals: no summary line on stdout"
[ "$held" -gt 0 ] || fail "two signals: no answer came before the signals (the case shows nothing)"
assert_eq "outcomes committed after two signals (every answer the run held)" \
    $((before + held)) "$(committed)"
log "two signals: exit 75 after ${took}s, the $held answers held at the signals committed"
stop_mock_pid "$MOCK_PID"

# --- 4. the resume ends exact ----------------------------------------------------------------
start_mock
run_pgenrich resume "${args[@]}" --base-url "$MOCK_URL"
expect_rc 5 "the resume (done, with failures in the ledger)"
check_against_expected sig

# --- 5. a signal during start-up (here: while waiting for the job's lock) --------------------
start_mock --latency-ms 2000
start_pgenrich holder "${args[@]}" --base-url "$MOCK_URL" --restart
holder=$PGENRICH_PID
wait_requests 50
start_pgenrich early "${args[@]}" --base-url "$MOCK_URL"
sleep 1 # within its 3 s wait for the lock
t0=$SECONDS
kill -TERM "$PGENRICH_PID"
wait_pgenrich 10
expect_rc 75 "SIGTERM during start-up"
assert_le "seconds from SIGTERM to the exit during start-up" $((SECONDS - t0)) 2
assert_stderr_has early 'event=interrupted phase=start-up'
kill -KILL "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
