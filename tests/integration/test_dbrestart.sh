#!/usr/bin/env bash
# test_dbrestart: the database goes away mid-run. (1) `pg_ctl restart` of the server: the
# job reconnects both sessions, takes its lock again, sends the batch it was committing
# again and goes on with the lookups it holds: every ID is looked up exactly once and the
# end state is exact. (2) the server stays down past --db-retry-timeout: exit 6 (database
# unreachable) within the timeout; once it is back a rerun ends exact, again with one
# lookup per ID overall.
# The test runs its own server: it restarts and stops it, which others must not see.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_private_pg
IT_DSN=$(pgc dsn --db pgenrich) # q, sql and load_expected use it from here on

N=20000
seed_bigint "$N"
load_expected bigint
start_mock --latency-ms 20 --jitter-ms 10
args=(run --dsn "$IT_DSN" --job dbr --base-url "$MOCK_URL" --page-size 1000 --flush-rows 500
    --flush-interval 0.2 --concurrency 64 --max-attempts 1)

committed() {
    q "SELECT coalesce((SELECT rows_loaded + failures FROM enrich_checkpoints WHERE job = 'dbr'), 0)"
}
wait_committed() {
    for _ in $(seq 1 300); do
        [ "$(committed 2>/dev/null || echo 0)" -ge "$1" ] && return
        kill -0 "$PGENRICH_PID" 2>/dev/null || fail "the run ended before $1 outcomes were committed"
        sleep 0.1
    done
    fail "fewer than $1 outcomes committed after 30 s"
}

# --- 1. a restart mid-run ----------------------------------------------------------------
start_pgenrich restart "${args[@]}"
wait_committed 3000
pgc restart >>"$IT_TMP/pg.log" 2>&1 || fail "pg_ctl restart failed"
log "restarted the server with $(committed) outcomes committed"
wait_pgenrich 120
[ "$RC" -ne 124 ] || fail "the run did not end within 120 s of the restart"
expect_rc 5 "the run across a restart (done; the mock's not-found IDs are in the ledger)"
assert_stderr_has restart 'event=db_lost'
assert_stderr_has restart 'event=db_reconnected conn=sink'
check_against_expected dbr
assert_eq "lookups across the restart (each ID once: held lookups are kept)" "$N" \
    "$(mock_stat requests)"
assert_eq "the checkpoint is finished" t "$(q "SELECT finished FROM enrich_checkpoints WHERE job = 'dbr'")"

# --- 2. down past --db-retry-timeout, then a rerun -----------------------------------------
q "DROP TABLE standardized_locations, enrich_failures, enrich_checkpoints" >/dev/null
mock_reset_stats
start_pgenrich down "${args[@]}" --db-retry-timeout 3
wait_committed 3000
pgc stop >>"$IT_TMP/pg.log" 2>&1 || fail "pg_ctl stop failed"
stopped=$SECONDS
wait_pgenrich 60
expect_rc 6 "the run whose database stayed away"
took=$((SECONDS - stopped))
log "exit 6 ${took}s after the server stopped"
assert_le "seconds from the stop to the exit (--db-retry-timeout 3, one flush interval, a lookup)" "$took" 8
[ "$took" -ge 3 ] || fail "exit 6 after ${took}s: it gave up before --db-retry-timeout 3"
assert_stderr_has down 'event=db_unreachable'
pgc start >>"$IT_TMP/pg.log" 2>&1 || fail "the private server did not start again"
first=$(mock_stat requests)
run_pgenrich rerun "${args[@]}"
expect_rc 5 "the rerun"
check_against_expected dbr
total=$(mock_stat requests)
log "lookups: $first before the outage, $total in all"
# The rerun repeats at most what was settled but not committed when the server went away.
assert_le "lookups in all" "$total" $((N + 64 + 2 * 500 + 1000))
