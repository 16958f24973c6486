#!/usr/bin/env bash
# test_shared: many workers on one job (run --shared), coordinated by enrich_ranges.
# 1. Three workers on a bigint key; while they run a plain run of the job is refused (exit
#    4); one worker is killed with -9 mid-run; the other two take its range over once its
#    lease (3 s) expires, and the target ends exact: every source ID once, in the target or
#    the ledger, with the expected values; the dead worker's range is done by another owner.
# 2. A shared worker is refused (exit 4) while a plain run holds the job.
# 3. Three workers on a text key with awkward IDs: the target ends exact as well.
IT_RUN_TIMEOUT=${IT_RUN_TIMEOUT:-60}
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=20000
seed_bigint "$N"
load_expected bigint
start_mock --latency-ms 20
SLOW_URL=$MOCK_URL

common=(--dsn "$IT_DSN" --job shared --base-url "$SLOW_URL" --shared --ranges 12
    --lease-seconds 3 --concurrency 8 --page-size 200 --flush-rows 200 --flush-interval 0.3)
run_pgenrich init init --dsn "$IT_DSN"
expect_rc 0 "init"
assert_eq "init makes the ranges table" 1 "$(q "SELECT count(*) FROM pg_class WHERE relname = 'enrich_ranges'")"

# --- 1. three workers, one killed with -9 ---------------------------------------------------
# 8 in flight at 20 ms: about 400 lookups a second each, so the job lasts ~15 s.
pids=()
for w in 1 2 3; do
    start_pgenrich "w$w" run "${common[@]}"
    pids+=("$PGENRICH_PID")
done
VICTIM=${pids[0]}
# Wait until the victim has committed part of a range (its range checkpoint has moved).
for _ in $(seq 1 200); do
    [ "$(q "SELECT count(*) FROM enrich_ranges WHERE job = 'shared' AND state = 'leased'
            AND owner LIKE '%:$VICTIM:%' AND position IS NOT NULL")" -gt 0 ] && break
    sleep 0.1
done
[ "$(q "SELECT count(*) FROM enrich_ranges WHERE job = 'shared' AND state = 'leased'
        AND owner LIKE '%:$VICTIM:%' AND position IS NOT NULL")" -gt 0 ] ||
    fail "worker 1 (pid $VICTIM) holds no range with a checkpoint after 20 s"
assert_eq "ranges made once, as asked" 12 "$(q "SELECT count(*) FROM enrich_ranges WHERE job = 'shared'")"
assert_eq "the split follows the keys (pg_stats), not the key type's range" \
    "0" "$(q "SELECT count(*) FROM enrich_ranges WHERE job = 'shared'
             AND (upper_bound::bigint > $N OR lower_bound::bigint < 1)")"

# A plain run of the job while the workers run: refused at once, naming the workers.
t0=$SECONDS
run_pgenrich plain run --dsn "$IT_DSN" --job shared --base-url "$SLOW_URL"
expect_rc 4 "a plain run of a job with live shared workers"
assert_le "seconds the plain run took to be refused" "$((SECONDS - t0))" 6
assert_stderr_has plain 'job "shared" is already running with --shared workers'

q "SELECT range_no FROM enrich_ranges WHERE job = 'shared' AND state = 'leased'
   AND owner LIKE '%:$VICTIM:%'" >"$IT_TMP/victim_ranges"
kill -KILL "$VICTIM"
wait "$VICTIM" 2>/dev/null || true
log "killed worker 1 (pid $VICTIM) holding range(s) $(tr '\n' ' ' <"$IT_TMP/victim_ranges")"
[ -s "$IT_TMP/victim_ranges" ] || fail "worker 1 held no range when killed"

for w in 2 3; do
    PGENRICH_PID=${pids[w - 1]}
    LAST_RUN=w$w
    LAST_ARGS=("${common[@]}")
    wait_pgenrich 60
    expect_done "worker $w"
    check_summary_shape "w$w"
done
assert_eq "ranges not done" 0 "$(q "SELECT count(*) FROM enrich_ranges WHERE job = 'shared' AND state <> 'done'")"
while read -r r; do
    row=$(q "SELECT state, owner NOT LIKE '%:$VICTIM:%', fence >= 2 FROM enrich_ranges
             WHERE job = 'shared' AND range_no = $r")
    assert_eq "the dead worker's range $r: done, by another owner, claimed again" "done|t|t" "$row"
done <"$IT_TMP/victim_ranges"
grep -qF "taken_over_from=\"" <(grep -h 'event=range_claimed' "$IT_TMP/w2.err" "$IT_TMP/w3.err" |
    grep -v 'taken_over_from=""') || fail "no worker logged taking a range over"
check_against_expected shared
assert_eq "the ranges' counts cover every ID" "t" \
    "$(q "SELECT sum(rows_loaded + failures) >= $N FROM enrich_ranges WHERE job = 'shared'")"
assert_eq "the job's checkpoint row is not the workers' business" 0 \
    "$(q "SELECT count(*) FROM enrich_checkpoints WHERE job = 'shared'")"
assert_eq "each worker recorded its run" 3 "$(q "SELECT count(*) FROM enrich_runs WHERE job = 'shared'")"
log "part 1: the dead worker's range was finished by the others; the target is exact"

# --- 2. a shared worker while a plain run holds the job --------------------------------------
start_pgenrich p run --dsn "$IT_DSN" --job plainjob --base-url "$SLOW_URL" --concurrency 4 \
    --target-table plain_target --failures-table plain_failures --flush-interval 0.3 --quiet
P_PID=$PGENRICH_PID
for _ in $(seq 1 100); do
    [ -n "$(q "SELECT 1 FROM enrich_checkpoints WHERE job = 'plainjob'")" ] && break
    sleep 0.1
done
kill -0 "$P_PID" 2>/dev/null || fail "the plain run ended before the shared worker was tried"
t0=$SECONDS
run_pgenrich sw run --dsn "$IT_DSN" --job plainjob --base-url "$SLOW_URL" --shared \
    --target-table plain_target --failures-table plain_failures
expect_rc 4 "a shared worker of a job a plain run holds"
assert_le "seconds the worker took to be refused" "$((SECONDS - t0))" 6
assert_stderr_has sw 'job "plainjob" is already running'
assert_eq "the refused worker made no ranges" 0 "$(q "SELECT count(*) FROM enrich_ranges WHERE job = 'plainjob'")"
kill -TERM "$P_PID"
PGENRICH_PID=$P_PID
LAST_RUN=p
wait_pgenrich 30
expect_rc 75 "the plain run, stopped"
log "part 2: a shared worker was refused while a plain run held the job"

# --- 3. a text key ---------------------------------------------------------------------------
sql <<'EOF'
CREATE TABLE master_text (id text PRIMARY KEY);
INSERT INTO master_text VALUES (repeat('very-long/id?#%', 60)), ('Q90'), ('Q64');
INSERT INTO master_text SELECT 'Q' || g FROM generate_series(100, 5099) g;
EOF
sql -c '\copy master_text FROM pstdin' <"$IT_ROOT/tests/integration/awkward_ids.txt"
sql -c "DROP TABLE expected"
load_expected_as expected text "SELECT id FROM master_text"
start_mock --latency-ms 2
text=(--dsn "$IT_DSN" --job textjob --base-url "$MOCK_URL" --shared --ranges 8 --lease-seconds 3
    --source-table master_text --target-table text_target --failures-table text_failures
    --concurrency 16 --flush-interval 0.3)
pids=()
for w in 1 2 3; do
    start_pgenrich "t$w" run "${text[@]}"
    pids+=("$PGENRICH_PID")
done
for w in 1 2 3; do
    PGENRICH_PID=${pids[w - 1]}
    LAST_RUN=t$w
    LAST_ARGS=("${text[@]}")
    wait_pgenrich 60
    expect_done "text-key worker $w"
done
assert_eq "text-key ranges: all done" "0" \
    "$(q "SELECT count(*) FROM enrich_ranges WHERE job = 'textjob' AND state <> 'done'")"
assert_eq "text-key ranges: more than one, bounds in the key's order" "t" \
    "$(q "SELECT count(*) > 1 AND bool_and(lower_bound IS NULL OR upper_bound IS NULL
                                  OR lower_bound < upper_bound)
          FROM enrich_ranges WHERE job = 'textjob'")"
check_against_expected textjob text_target text_failures master_text id
log "part 3: three workers on a text key: the target is exact"
