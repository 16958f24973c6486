#!/usr/bin/env bash
# test_resume: kill -9 mid-run leaves a consistent state (every ID up to the checkpoint is
# settled); a rerun of the same job finishes the rest with exactly one row per ID and looks up
# only what the killed run had not committed; SIGTERM exits 75 with the checkpoint saved;
# --restart starts over; a rerun of a finished job with no new IDs reads nothing.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=50000
CONC=64
FLUSH_ROWS=2000
seed_bigint "$N"
load_expected bigint
run_pgenrich init init --dsn "$IT_DSN"
expect_done "pgenrich init"
start_mock --latency-ms 20

args=(run --dsn "$IT_DSN" --job resume --base-url "$MOCK_URL" --page-size 5000
    --flush-rows "$FLUSH_ROWS" --flush-interval 0.5 --quiet)
# Runs that get interrupted go slowly; runs to completion go fast.
slow=("${args[@]}" --concurrency "$CONC")
fast=("${args[@]}" --concurrency 256)

# wait_checkpoint SECONDS: until the job's checkpoint has a position (or fail).
wait_checkpoint() {

    for _ in $(seq 1 $(($1 * 10))); do
        [ -n "$(q "SELECT 1 FROM enrich_checkpoints WHERE job = 'resume' AND NOT finished
                   AND position IS NOT NULL")" ] && return 0
        kill -0 "$PGENRICH_PID" 2>/dev/null || fail "pgenrich ended before a checkpoint was written"
        sleep 0.1
    done
    fail "no checkpoint after $1 s"
}

# Every ID up to the checkpoint is settled; the checkpoint's counters match the tables.
check_partial() {
    local what=$1
    assert_eq "$what: checkpoint not finished" f \
        "$(q "SELECT finished FROM enrich_checkpoints WHERE job = 'resume'")"
    assert_none "$what: IDs up to the checkpoint that are not settled" \
        "SELECT m.id FROM master_table m, enrich_checkpoints c
         WHERE c.job = 'resume' AND m.id <= c.position::bigint
           AND NOT EXISTS (SELECT 1 FROM standardized_locations t WHERE t.id = m.id)
           AND NOT EXISTS (SELECT 1 FROM enrich_failures f WHERE f.job = 'resume' AND f.id = m.id)"
}

# --- 1. kill -9 after about 2 s, once a checkpoint exists ------------------------------------
start_pgenrich kill9 "${slow[@]}"
t0=$SECONDS
wait_checkpoint 30
while [ $((SECONDS - t0)) -lt 2 ]; do sleep 0.1; done
kill -KILL "$PGENRICH_PID"
wait "$PGENRICH_PID" 2>/dev/null || true
pos=$(q "SELECT position FROM enrich_checkpoints WHERE job = 'resume'")
loaded=$(q "SELECT count(*) FROM standardized_locations")
failed=$(q "SELECT count(*) FROM enrich_failures WHERE job = 'resume'")
log "killed -9: checkpoint at $pos, $loaded rows and $failed failures committed"
check_partial "after kill -9"
[ "$pos" -lt "$N" ] || fail "the run finished before it was killed: the test proves nothing"
assert_eq "checkpoint counters = committed rows|failures" "$loaded|$failed" \
    "$(q "SELECT rows_loaded, failures FROM enrich_checkpoints WHERE job = 'resume'")"
assert_none "committed values that differ from the expected ones" \
    "SELECT id, label, latitude, longitude FROM standardized_locations
     EXCEPT SELECT id, label, latitude, longitude FROM expected WHERE outcome = 'found'"

# --- 2. rerun the same job to completion ------------------------------------------------------
# The rerun reads the IDs after the checkpoint, but not those whose outcome the killed run
# committed already (above the checkpoint, out of order).
todo=$(q "SELECT count(*) FROM master_table m WHERE id > $pos
    AND NOT EXISTS (SELECT 1 FROM standardized_locations t WHERE t.id = m.id)
    AND NOT EXISTS (SELECT 1 FROM enrich_failures f WHERE f.job = 'resume' AND f.id = m.id)")
mock_reset_stats
run_pgenrich rerun "${fast[@]}"
expect_done "rerun after kill -9"
assert_eq "the rerun reads exactly the IDs after the checkpoint not committed yet" \
    "$todo" "$(summary rerun ids_read)"
assert_eq "the rerun looks up each of them once" "$todo" "$(mock_stat requests)"
check_against_expected resume
assert_eq "checkpoint finished" t "$(q "SELECT finished FROM enrich_checkpoints WHERE job = 'resume'")"

# --- 3. SIGTERM: exit 75 with settled work flushed; --restart starts over ----------------------
start_pgenrich sigterm "${slow[@]}" --restart
wait_checkpoint 30
sleep 0.5
kill -TERM "$PGENRICH_PID"
wait_pgenrich 20
expect_rc 75 "pgenrich after SIGTERM"
check_summary_shape sigterm
read_before_term=$(summary sigterm ids_read)
pos=$(q "SELECT position FROM enrich_checkpoints WHERE job = 'resume'")
log "SIGTERM: exit 75, ids_read=$read_before_term, checkpoint at $pos"
[ "$read_before_term" -gt 0 ] || fail "--restart read nothing: it did not start over"
[ "$pos" -lt "$N" ] || fail "--restart did not reset the checkpoint (position $pos)"
check_partial "after SIGTERM"

# Rows of the first pass are older than this one's start: only this pass's count as done.
todo=$(q "SELECT count(*) FROM master_table m, enrich_checkpoints c
    WHERE c.job = 'resume' AND m.id > $pos
    AND NOT EXISTS (SELECT 1 FROM standardized_locations t
                    WHERE t.id = m.id AND t.fetched_at >= c.started_at)
    AND NOT EXISTS (SELECT 1 FROM enrich_failures f
                    WHERE f.job = 'resume' AND f.id = m.id AND f.last_seen >= c.started_at)")
run_pgenrich after_term "${fast[@]}"
expect_done "rerun after SIGTERM"
assert_eq "the rerun after SIGTERM reads the IDs after the checkpoint this pass has not done" \
    "$todo" "$(summary after_term ids_read)"
check_against_expected resume

# --- 4. a finished job reads nothing ---------------------------------------------------------
before=$(mock_stat requests)
run_pgenrich finished "${fast[@]}"
expect_done "rerun of a finished job"
assert_eq "ids_read of a finished job" 0 "$(summary finished ids_read)"
assert_eq "requests of a finished job" "$before" "$(mock_stat requests)"
check_against_expected resume
