#!/usr/bin/env bash
# test_incremental: nightly runs. `--explain` prints the plan of the exact first page query
# and looks nothing up; on 200,000 rows the --only-missing and --refresh-older-than pages are
# index scans with anti-/semi-joins on the primary keys, no sequential scan of the source or
# the target. Against the mock (no faults, so one request per ID): --only-missing sends
# exactly one request per missing ID, --refresh-older-than exactly one per stale row, both
# together one per missing or stale ID, and a rerun of a finished keyset job looks up the
# IDs added past its checkpoint and only those, its checkpoint unfinished meanwhile; after a
# kill -9 the same --only-missing command looks up only what is still missing.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_mock --latency-ms 5

# requests_of LABEL ARGS...: run pgenrich (exit 0 expected) from zeroed mock counters; prints
# the mock's request count. Nothing may be retried: without faults, one request is one ID.
requests_of() {
    local label=$1
    shift
    mock_reset_stats
    run_pgenrich "$label" "$@"
    expect_done "run $label"
    check_summary_shape "$label"
    assert_eq "run $label: retries" 0 "$(summary "$label" retries)"
    mock_stat requests
}

# --- 1. the plans, on 200,000 rows -----------------------------------------------------------
BIG=200000
sql <<EOF
CREATE TABLE big (id bigint PRIMARY KEY);
INSERT INTO big SELECT g FROM generate_series(1, $BIG) g;
EOF
big=(--dsn "$IT_DSN" --source-table big --target-table big_target --failures-table big_fail
    --checkpoint-table big_ck)
run_pgenrich init_big init "${big[@]}"
expect_done "pgenrich init (big tables)"
# Most IDs have a row, a fifth of those stale; some have a ledger entry of the job, many more
# one of another job; a few have neither.
sql <<EOF
INSERT INTO big_target (id, provider, fetched_at)
SELECT g, 'primary', CASE WHEN g % 5 = 1 THEN now() - interval '40 days' ELSE now() END
FROM generate_series(1, $BIG) g WHERE g % 10 <> 0;
INSERT INTO big_fail (job, id, reason, attempts)
SELECT 'big', g, 'not_found', 1 FROM generate_series(1, $BIG) g WHERE g % 20 = 0;
INSERT INTO big_fail (job, id, reason, attempts)
SELECT 'other', g, 'not_found', 1 FROM generate_series(1, $BIG) g WHERE g % 2 = 0;
INSERT INTO big_ck (job, position, paging, finished) VALUES ('big', '$BIG', 'keyset', true);
VACUUM ANALYZE big;
VACUUM ANALYZE big_target;
VACUUM ANALYZE big_fail;
EOF
ck_before=$(checkpoint_of big big_ck)

# explain LABEL FLAGS...: the plan of the job's first page (exit 0, no request, nothing
# changed), in $IT_TMP/LABEL.out; the page query is its first line.
explain() {
    local label=$1
    shift
    mock_reset_stats
    run_pgenrich "$label" run "${big[@]}" --job big --base-url "$MOCK_URL" --explain "$@"
    expect_rc 0 "run $label --explain"
    assert_eq "run $label --explain: requests" 0 "$(mock_stat requests)"
    assert_eq "run $label --explain: the checkpoint" "$ck_before" "$(checkpoint_of big big_ck)"
    log "$label: $(head -n 1 "$IT_TMP/$label.out")"
    sed -n '2,$p' "$IT_TMP/$label.out"
    if grep -qE 'Seq Scan on (big|big_target)( |$)' "$IT_TMP/$label.out"; then
        fail "run $label --explain: a sequential scan of a 200,000-row table"
    fi
    grep -qE 'Index (Only )?Scan using big_pkey on big( |$)' "$IT_TMP/$label.out" ||
        fail "run $label --explain: the source is not read through its primary key"
    grep -qE 'Index (Only )?Scan using big_target_pkey on big_target' "$IT_TMP/$label.out" ||
        fail "run $label --explain: the target is not probed through its primary key"
}

explain missing_plan --only-missing
# shellcheck disable=SC2016
grep -qE '^-- parameters: \$1 = .big.$' "$IT_TMP/missing_plan.out" ||
    fail "--explain does not show the page query's parameters"
[ "$(grep -cE 'Anti Join' "$IT_TMP/missing_plan.out")" -eq 2 ] ||
    fail "--only-missing: not two anti-joins (the target and the ledger)"
grep -qE 'Scan (using big_fail_pkey on big_fail|on big_fail_pkey)' "$IT_TMP/missing_plan.out" ||
    fail "--only-missing: the ledger is not read through its primary key"

explain stale_plan --refresh-older-than 30d
grep -qE 'Join' "$IT_TMP/stale_plan.out" || fail "--refresh-older-than: no join"
grep -q 'fetched_at <' "$IT_TMP/stale_plan.out" ||
    fail "--refresh-older-than: fetched_at is not tested on the joined row"
# shellcheck disable=SC2016
grep -qF '"big"."id" <= $2' "$IT_TMP/stale_plan.out" ||
    fail "--refresh-older-than alone: the page query does not stop at the checkpoint"

explain both_plan --only-missing --refresh-older-than 30d
[ "$(grep -cE 'Anti Join' "$IT_TMP/both_plan.out")" -eq 2 ] ||
    fail "--only-missing --refresh-older-than: not two anti-joins"

# --- 2. refused combinations -----------------------------------------------------------------
N=3000
seed_bigint "$N"
run_pgenrich init init --dsn "$IT_DSN"
expect_done "pgenrich init"
args=(run --dsn "$IT_DSN" --job inc --base-url "$MOCK_URL" --concurrency 32 --page-size 250
    --flush-rows 300 --flush-interval 0.2 --quiet)
run_pgenrich offset "${args[@]}" --only-missing --paging offset
expect_rc 2 "--only-missing with --paging offset"
assert_stderr_has offset "--paging keyset"
run_pgenrich no_ck "${args[@]}" --refresh-older-than 30d
expect_rc 2 "--refresh-older-than alone for a job without a checkpoint"
assert_stderr_has no_ck "no checkpoint"
assert_eq "refused runs wrote nothing" 0 "$(q "SELECT count(*) FROM enrich_checkpoints")"

# --- 3. --only-missing: one request per missing ID -------------------------------------------
load_expected bigint
# A first pass over two thirds of the IDs leaves rows and ledger entries of the job behind.
n=$(requests_of first "${args[@]}" --where 'id % 3 <> 0')
assert_eq "first pass: one request per ID" $((N - N / 3)) "$n"
# A row some other way (another job, a hand edit) counts as not missing, as does a ledger
# entry of this job; an entry of another job does not.
sql <<'EOF'
INSERT INTO standardized_locations (id, label, provider)
SELECT id, 'by hand', 'manual' FROM master_table WHERE id % 3 = 0 AND id % 9 = 0;
INSERT INTO enrich_failures (job, id, reason, attempts)
SELECT 'inc', id, 'by_hand', 1 FROM master_table WHERE id % 3 = 0 AND id % 7 = 0
    AND NOT EXISTS (SELECT 1 FROM standardized_locations t WHERE t.id = master_table.id);
INSERT INTO enrich_failures (job, id, reason, attempts)
SELECT 'other', id, 'not_found', 1 FROM master_table WHERE id % 3 = 0 AND id % 5 = 0;
EOF
missing_sql="SELECT m.id FROM master_table m
    WHERE NOT EXISTS (SELECT 1 FROM standardized_locations t WHERE t.id = m.id)
      AND NOT EXISTS (SELECT 1 FROM enrich_failures f WHERE f.job = 'inc' AND f.id = m.id)"
sql -c "CREATE TABLE was_missing AS $missing_sql"
missing=$(q "SELECT count(*) FROM was_missing")
[ "$missing" -gt 100 ] || fail "only $missing missing IDs: the test proves little"
log "missing IDs: $missing of $N"
n=$(requests_of only_missing "${args[@]}" --only-missing)
assert_eq "--only-missing: requests" "$missing" "$n"
assert_eq "--only-missing: ids_read" "$missing" "$(summary only_missing ids_read)"
assert_none "missing IDs still missing" "$missing_sql"
assert_none "hand-made rows that were looked up" \
    "SELECT id FROM standardized_locations WHERE provider = 'manual' AND label <> 'by hand'"
assert_eq "checkpoint after --only-missing" "t|$N" \
    "$(q "SELECT finished, position FROM enrich_checkpoints WHERE job = 'inc'")"
# What the pass looked up is now exactly as a full run would have left it.
assert_none "IDs looked up by --only-missing that differ from the expected" \
    "SELECT w.id FROM was_missing w JOIN expected e USING (id)
     WHERE (e.outcome = 'found') <> EXISTS (SELECT 1 FROM standardized_locations t WHERE t.id = w.id)
        OR (e.outcome <> 'found') <> EXISTS (SELECT 1 FROM enrich_failures f
                                             WHERE f.job = 'inc' AND f.id = w.id
                                               AND f.reason = e.outcome)"
n=$(requests_of only_missing_again "${args[@]}" --only-missing)
assert_eq "--only-missing with nothing missing: requests" 0 "$n"

# --- 4. --refresh-older-than: one request per stale row --------------------------------------
sql -c "DELETE FROM standardized_locations WHERE provider = 'manual'" \
    -c "DELETE FROM enrich_failures WHERE reason = 'by_hand'"
n=$(requests_of fill "${args[@]}" --only-missing)
check_against_expected inc
sql -c "UPDATE standardized_locations SET fetched_at = now() - interval '40 days' WHERE id % 7 = 0" \
    -c "UPDATE standardized_locations SET fetched_at = now() - interval '20 days' WHERE id % 7 = 1"
stale=$(q "SELECT count(*) FROM standardized_locations WHERE id % 7 = 0")
[ "$stale" -gt 100 ] || fail "only $stale stale rows"
n=$(requests_of refresh "${args[@]}" --refresh-older-than 30d)
assert_eq "--refresh-older-than 30d: requests" "$stale" "$n"
assert_eq "rows older than 30 days left" 0 \
    "$(q "SELECT count(*) FROM standardized_locations WHERE fetched_at < now() - interval '30 days'")"
assert_eq "rows of 20 days left alone" \
    "$(q "SELECT count(*) FROM standardized_locations WHERE id % 7 = 1")" \
    "$(q "SELECT count(*) FROM standardized_locations WHERE fetched_at < now() - interval '19 days'")"
check_against_expected inc

# Both: the missing IDs and the stale rows, each once.
sql -c "UPDATE standardized_locations SET fetched_at = now() - interval '40 days' WHERE id % 11 = 0" \
    -c "DELETE FROM standardized_locations WHERE id % 13 = 0 AND id % 11 <> 0"
want=$(q "SELECT count(*) FROM master_table m
    WHERE NOT EXISTS (SELECT 1 FROM standardized_locations t WHERE t.id = m.id
                      AND t.fetched_at >= now() - interval '30 days')
      AND NOT EXISTS (SELECT 1 FROM enrich_failures f WHERE f.job = 'inc' AND f.id = m.id)")
n=$(requests_of both "${args[@]}" --only-missing --refresh-older-than 30d)
assert_eq "--only-missing --refresh-older-than 30d: requests" "$want" "$n"
check_against_expected inc

# --- 5. a finished keyset job goes on after its checkpoint ----------------------------------
M=400
sql -c "INSERT INTO master_table SELECT g FROM generate_series($((N + 1)), $((N + M))) g"
load_expected bigint
slow=(run --dsn "$IT_DSN" --job inc --base-url "$MOCK_URL" --concurrency 4 --page-size 100
    --flush-rows 50 --flush-interval 0.2 --quiet)
mock_reset_stats
start_pgenrich continue "${slow[@]}"
seen_open=""
for _ in $(seq 1 300); do
    [ "$(q "SELECT finished FROM enrich_checkpoints WHERE job = 'inc'")" = f ] && seen_open=1
    kill -0 "$PGENRICH_PID" 2>/dev/null || break
    sleep 0.05
done
wait_pgenrich 60
expect_done "the rerun of the finished job"
[ -n "$seen_open" ] || fail "the checkpoint read finished while the rerun ran"
assert_eq "rerun of a finished job: requests" "$M" "$(mock_stat requests)"
assert_eq "rerun of a finished job: ids_read" "$M" "$(summary continue ids_read)"
assert_eq "checkpoint after the rerun" "t|$((N + M))" \
    "$(q "SELECT finished, position FROM enrich_checkpoints WHERE job = 'inc'")"
check_against_expected inc
n=$(requests_of nothing_new "${args[@]}")
assert_eq "rerun with nothing new: requests" 0 "$n"
assert_eq "checkpoint after a rerun with nothing new" "t|$((N + M))" \
    "$(q "SELECT finished, position FROM enrich_checkpoints WHERE job = 'inc'")"

# --- 6. the filter is the resume: kill -9 an --only-missing pass, run it again --------------
sql -c "DELETE FROM standardized_locations WHERE id % 5 = 2"
load_expected bigint
count_missing="SELECT count(*) FROM ($missing_sql) m"
before=$(q "$count_missing")
start_pgenrich killed "${slow[@]}" --concurrency 2 --only-missing
for _ in $(seq 1 300); do
    [ "$(q "$count_missing")" -lt $((before - 100)) ] && break
    kill -0 "$PGENRICH_PID" 2>/dev/null || fail "the --only-missing pass ended before the kill"
    sleep 0.05
done
kill -KILL "$PGENRICH_PID"
wait_pgenrich 10
left=$(q "$count_missing")
log "kill -9 with $left of $before missing IDs left"
if [ "$left" -eq 0 ] || [ "$left" -ge "$before" ]; then
    fail "the kill came too early or too late: $left of $before missing IDs left"
fi
assert_eq "checkpoint after the kill" "f|$((N + M))" \
    "$(q "SELECT finished, position FROM enrich_checkpoints WHERE job = 'inc'")"
n=$(requests_of after_kill "${args[@]}" --only-missing)
assert_eq "--only-missing after kill -9: requests" "$left" "$n"
assert_eq "checkpoint after the rerun" "t|$((N + M))" \
    "$(q "SELECT finished, position FROM enrich_checkpoints WHERE job = 'inc'")"
check_against_expected inc
