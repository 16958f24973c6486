#!/usr/bin/env bash
# test_resume_exact: a resume repeats only what was not committed, and an ID with a row keeps
# it. (1) kill -9 after the first flushes, change the source (new IDs, deleted ones), resume:
# the mock sees exactly one lookup per source ID whose outcome was not committed, and every
# ID ends in one place. (2) kills and faults together: repeated lookups (a --restart over a
# loaded target, retry-failed) that draw a garbage answer or a 5xx for an ID with a good row
# leave that row as it was (values and fetched_at), add no ledger entry, and are counted as
# kept_rows.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=12000
seed_bigint "$N"
start_mock --latency-ms 5 --jitter-ms 200
args=(run --dsn "$IT_DSN" --job exact --base-url "$MOCK_URL" --page-size 2000 --flush-rows 1000
    --flush-interval 0.3 --concurrency 128 --quiet)

committed() {
    q "SELECT (SELECT count(*) FROM standardized_locations)
            + (SELECT count(*) FROM enrich_failures WHERE job = 'exact')"
}

# --- 1. kill -9 after the first flushes, then a resume ----------------------------------------
start_pgenrich first "${args[@]}"
for _ in $(seq 1 300); do
    [ "$(q "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'standardized_locations'")" = 1 ] &&
        [ "$(committed)" -ge 2000 ] && break
    kill -0 "$PGENRICH_PID" 2>/dev/null || fail "the first run ended before it was killed"
    sleep 0.1
done
kill -KILL "$PGENRICH_PID"
wait "$PGENRICH_PID" 2>/dev/null || true
pos=$(q "SELECT coalesce(position, '0') FROM enrich_checkpoints WHERE job = 'exact'")
above=$(q "SELECT (SELECT count(*) FROM standardized_locations WHERE id > $pos)
             + (SELECT count(*) FROM enrich_failures WHERE job = 'exact' AND id > $pos)")
log "killed -9 with $(committed) outcomes committed, checkpoint at $pos, $above above it"
[ "$above" -gt 0 ] || fail "nothing was committed above the checkpoint: the test proves nothing"
[ "$pos" -lt "$N" ] || fail "the run finished before it was killed"

# The source changes in between: new IDs past the end and in no order, some IDs deleted
# (committed ones and others).
sql <<'SQL'
INSERT INTO master_table SELECT g FROM generate_series(20001, 20500) g;
DELETE FROM master_table WHERE id % 997 = 0;
SQL
todo=$(q "SELECT count(*) FROM master_table m
    WHERE NOT EXISTS (SELECT 1 FROM standardized_locations t WHERE t.id = m.id)
      AND NOT EXISTS (SELECT 1 FROM enrich_failures f WHERE f.job = 'exact' AND f.id = m.id)")
mock_reset_stats
run_pgenrich resume "${args[@]}" --concurrency 256
expect_done "the resume"
assert_eq "lookups of the resume (one per ID without a committed outcome)" "$todo" \
    "$(mock_stat requests)"
load_expected bigint
assert_none "loaded rows that differ from the expected ones" \
    "SELECT t.id, t.label, t.latitude FROM standardized_locations t JOIN master_table USING (id)
     EXCEPT SELECT id, label, latitude FROM expected WHERE outcome = 'found'"
assert_none "source IDs with no outcome" \
    "SELECT m.id FROM master_table m
     WHERE NOT EXISTS (SELECT 1 FROM standardized_locations t WHERE t.id = m.id)
       AND NOT EXISTS (SELECT 1 FROM enrich_failures f WHERE f.job = 'exact' AND f.id = m.id)"
assert_none "IDs both loaded and in the ledger" \
    "SELECT f.id FROM enrich_failures f JOIN standardized_locations t USING (id)"

# --- 2. repeated lookups under faults and kills never spoil a good row ------------------------
stop_mock_pid "$MOCK_PID"
start_mock --latency-ms 10 --p-garbage 0.05 --p-5xx 0.05 --p-reset 0.01 --seed 7
sql -c "CREATE TABLE before AS SELECT * FROM standardized_locations"
faulty=(run --dsn "$IT_DSN" --job exact --base-url "$MOCK_URL" --page-size 2000 --flush-rows 1000
    --flush-interval 0.3 --concurrency 32 --max-attempts 2 --backoff-base 0.01 --backoff-cap 0.05)
# A refresh of the whole job: every ID is looked up again.
kill_after() {
    sleep "$1"
    kill -0 "$PGENRICH_PID" 2>/dev/null || fail "run $LAST_RUN ended before it was killed"
    kill -KILL "$PGENRICH_PID"
    wait "$PGENRICH_PID" 2>/dev/null || true
}
start_pgenrich refresh "${faulty[@]}" --restart
kill_after 1
for i in 1 2; do
    start_pgenrich "again$i" "${faulty[@]}"
    kill_after 0.7
done
run_pgenrich refresh_end "${faulty[@]}"
expect_done "the refresh under faults"
kept=$(summary refresh_end kept_rows)
log "refresh: $(grep -E '^failures:' "$IT_TMP/refresh_end.out")"
[ "$kept" -gt 0 ] || fail "no repeated lookup drew a bad answer for a loaded ID: the test proves nothing"
run_pgenrich retry retry-failed --dsn "$IT_DSN" --job exact --base-url "$MOCK_URL" --max-attempts 2 \
    --backoff-base 0.01 --backoff-cap 0.05 --quiet
expect_done "retry-failed under faults"
assert_none "IDs both loaded and in the ledger" \
    "SELECT f.id FROM enrich_failures f JOIN standardized_locations t USING (id)"
assert_none "rows that lost their values" \
    "SELECT id, label, latitude FROM before
     EXCEPT SELECT id, label, latitude FROM standardized_locations"
assert_none "loaded rows that differ from the expected ones" \
    "SELECT t.id, t.label, t.latitude FROM standardized_locations t JOIN master_table USING (id)
     EXCEPT SELECT id, label, latitude FROM expected WHERE outcome = 'found'"
# A kept row is untouched, fetched_at included (so that a later refresh tries it again): at
# least the IDs kept by the last run still carry the fetched_at of the first pass.
unchanged=$(q "SELECT count(*) FROM standardized_locations t JOIN before b USING (id)
    JOIN master_table USING (id) WHERE t.fetched_at = b.fetched_at")
log "kept by the last run: $kept; rows of the source with their first fetched_at: $unchanged"
assert_le "rows kept by the last run that still have their first fetched_at" "$kept" "$unchanged"
