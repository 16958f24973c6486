#!/usr/bin/env bash
# test_batch: batch providers (kind = batch, API.md section 2) against the mock. Sync (200)
# and async (202) answers with faults, scrambled order, duplicates, results nobody asked
# for and IDs left out; expired and never-ending jobs; 413s that halve the batch; a kill -9
# with batches pending, then a resume; SIGTERM drained and timed out; full batches from small
# pages, short ones from a slow source; jobs pending at once under --concurrency; the rate
# counting calls or IDs, and 429s; per-item errors (503, 429, 403, 401) inside an answer; an
# outage mid-run; chains with a single-lookup provider either side.
# Every ID ends in one place with the values of a single lookup (the same expected table),
# and a batch run needs about N / max_batch requests.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=6000
seed_bigint "$N"
load_expected bigint

# batch_ini FILE JOB URL [KEY=VALUE...]: a job file with one batch provider.
batch_ini() {
    local file=$1 job=$2 url=$3
    shift 3
    {
        printf '[job]\njob = %s\nconcurrency = 8\npage-size = 1000\nmax-attempts = 6\n' "$job"
        printf 'backoff-base = 0.01\nbackoff-cap = 0.05\n\n'
        printf '[provider primary]\nkind = batch\nurl = %s/api/v2/entities/batch\n' "$url"
        local kv
        for kv in "$@"; do printf '%s\n' "$kv"; done
    } >"$file"
}

# --- 1. sync: scrambled, duplicated, padded with an unasked result ---------------------------
start_mock --batch-sync --batch-shuffle --batch-dup --batch-extra
batch_ini "$IT_TMP/sync.ini" bsync "$MOCK_URL" "max_batch = 100"
run_pgenrich sync run --config "$IT_TMP/sync.ini" --dsn "$IT_DSN"
expect_done "sync batches"
check_summary_shape sync
check_against_expected bsync
batches=$(mock_stat batch)
log "sync: $batches batch calls for $N IDs; $(grep '^summary:' "$IT_TMP/sync.out")"
assert_eq "batch calls of a fault-free sync run (N / max_batch)" "$((N / 100))" "$batches"
assert_eq "requests pgenrich counted" "$batches" "$(summary sync requests)"
assert_eq "every request was a batch call" "$batches" "$(mock_stat requests)"
# The unasked result of every answer and the decoy of every ID are set aside, and counted.
assert_stderr_has sync \
    "event=batch_results_ignored provider=primary unasked=$batches duplicates=$N "
stop_mock_pid "$MOCK_PID"

# --- 1b. a fast source sends full batches, even with pages much smaller than a batch --------
start_mock --batch-sync --max-batch 1000 --latency-ms 20
batch_ini "$IT_TMP/full.ini" bfull "$MOCK_URL" "max_batch = 500" "batch_linger = 1000"
sed -i 's/^page-size = 1000/page-size = 50/' "$IT_TMP/full.ini"
run_pgenrich full run --config "$IT_TMP/full.ini" --dsn "$IT_DSN" --quiet --target-table tfull
expect_done "small pages, large batches"
check_against_expected bfull tfull
assert_eq "full batches of 500 from pages of 50" "$((N / 500))" "$(mock_stat batch)"
stop_mock_pid "$MOCK_PID"

# --- 1b2. more calls due than slow start lets out: a full batch waits for the ramp without
# spinning (the pump handed it IDs it refused, over and over, at 100 % CPU, deaf to signals)
start_mock --batch-sync --latency-ms 50
batch_ini "$IT_TMP/ramp.ini" bramp "$MOCK_URL" "max_batch = 100"
sed -i 's/^concurrency = 8/concurrency = 32/' "$IT_TMP/ramp.ini"
t0=$SECONDS
IT_RUN_TIMEOUT=30 run_pgenrich ramp run --config "$IT_TMP/ramp.ini" --dsn "$IT_DSN" --quiet \
    --target-table tramp
expect_done "full batches past slow start (concurrency 32)"
check_against_expected bramp tramp
log "slow start with full batches: $N IDs in $((SECONDS - t0)) s, $(mock_stat batch) calls"
stop_mock_pid "$MOCK_PID"

# --- 1c. a slow source never holds a batch hostage: short batches go after batch_linger ----
start_mock --batch-sync
sql -c "CREATE TABLE slow_base (id bigint PRIMARY KEY);
        INSERT INTO slow_base SELECT id FROM master_table WHERE id <= 60;
        CREATE FUNCTION slow_row() RETURNS boolean LANGUAGE plpgsql VOLATILE
            AS \$\$BEGIN PERFORM pg_sleep(0.01); RETURN true; END\$\$;
        CREATE VIEW slow_source AS SELECT id FROM slow_base WHERE slow_row()"
batch_ini "$IT_TMP/slow.ini" bslow "$MOCK_URL" "max_batch = 100"
sed -i 's/^page-size = 1000/page-size = 10/' "$IT_TMP/slow.ini"
run_pgenrich slow run --config "$IT_TMP/slow.ini" --dsn "$IT_DSN" --quiet \
    --source-table slow_source --target-table tslow
expect_done "a slow source (pages of 10 IDs, 0.1 s each)"
check_one_place bslow tslow enrich_failures slow_base id
log "slow source: $(mock_stat batch) batch calls for 60 IDs"
[ "$(mock_stat batch)" -ge 4 ] ||
    fail "a slow source's IDs waited for a full batch ($(mock_stat batch) calls for 60 IDs)"
stop_mock_pid "$MOCK_PID"

# --- 2. async: 202 jobs polled, with 5xx, resets, garbage, left-out IDs, expired and
# never-ending first jobs (each resent once as a new job) --------------------------------------
start_mock --batch-async --job-ready-ms 150 --batch-drop-mod 25 --batch-shuffle \
    --p-5xx 0.04 --p-reset 0.01 --p-garbage 0.01 --seed 11 --job-expire-first 2 \
    --job-never-first 4
batch_ini "$IT_TMP/async.ini" basync "$MOCK_URL" "max_batch = 100" "poll_timeout = 1.5"
sed -i 's/^max-attempts = 6/max-attempts = 8/' "$IT_TMP/async.ini"
run_pgenrich async run --config "$IT_TMP/async.ini" --dsn "$IT_DSN" --quiet
expect_done "async batches"
log "async: mock $(mock_stats)"
log "async: $(grep '^summary:' "$IT_TMP/async.out")"
# garbage (a 200 that is no JSON) on a result poll is a bad response for the whole batch,
# as for a single lookup: those IDs are bad_response; everything else as expected.
garbage=$(mock_stat garbage)
if [ "$garbage" -eq 0 ]; then
    check_against_expected basync
else
    check_one_place basync standardized_locations enrich_failures master_table id
    assert_none "async rows that differ from the expected ones" \
        "SELECT id, label, latitude, longitude FROM standardized_locations
         EXCEPT SELECT id, label, latitude, longitude FROM expected WHERE outcome = 'found'"
    assert_none "async failures other than expected or bad_response" \
        "SELECT f.id, f.reason FROM enrich_failures f JOIN expected e USING (id)
         WHERE f.job = 'basync' AND f.reason <> e.outcome AND f.reason <> 'bad_response'"
fi
[ "$(mock_stat batch_dropped)" -gt 0 ] || fail "the mock left no ID out: the test proves nothing"
[ "$(mock_stat job_expired)" -gt 0 ] || fail "no job expired: the test proves nothing"
[ "$(mock_stat polls)" -gt 0 ] || fail "no poll"
assert_none "attempts_exhausted in the async run (every left-out ID is retried)" \
    "SELECT id, last_error FROM enrich_failures WHERE job = 'basync'
     AND reason = 'attempts_exhausted'"
stop_mock_pid "$MOCK_PID"

# --- 2b. many jobs pending at once, bounded by --concurrency; polls back off ----------------
start_mock --batch-async --job-ready-ms 1000
batch_ini "$IT_TMP/pend.ini" bpend "$MOCK_URL" "max_batch = 50"
sed -i 's/^concurrency = 8/concurrency = 4/' "$IT_TMP/pend.ini"
sql -c "CREATE TABLE pend_source AS SELECT id FROM master_table WHERE id <= 400"
run_pgenrich pend run --config "$IT_TMP/pend.ini" --dsn "$IT_DSN" --quiet \
    --source-table pend_source --target-table tpend
expect_done "jobs pending at once"
check_one_place bpend tpend enrich_failures pend_source id
log "pending jobs: at most $(mock_stat jobs_pending_max) at once, $(mock_stat polls) polls" \
    "for $(mock_stat batch) jobs, at most $(mock_stat inflight_max) requests at once"
assert_eq "batch jobs" 8 "$(mock_stat batch)"
[ "$(mock_stat jobs_pending_max)" -ge 2 ] || fail "never more than one job pending at once"
assert_le "jobs pending at once (--concurrency 4)" "$(mock_stat jobs_pending_max)" 4
assert_le "requests at once (--concurrency 4)" "$(mock_stat inflight_max)" 4
# After 0.2, 0.6 and 1.4 s (doubling): 3 polls a job; every 0.2 s would be 5.
assert_le "polls of jobs ready after 1 s (backoff)" "$(mock_stat polls)" $((8 * 4))
stop_mock_pid "$MOCK_PID"

# --- 3. jobs that always expire: resent once, then ledgered per ID -----------------------------
start_mock --batch-async --job-expire-first 1000000
batch_ini "$IT_TMP/expire.ini" bexpire "$MOCK_URL" "max_batch = 50"
sql -c "CREATE TABLE small_source AS SELECT id FROM master_table WHERE id <= 200"
run_pgenrich expire run --config "$IT_TMP/expire.ini" --dsn "$IT_DSN" --quiet \
    --source-table small_source --target-table expire_target
expect_done "expiring jobs"
assert_eq "IDs ledgered after two expired jobs" 200 \
    "$(q "SELECT count(*) FROM enrich_failures WHERE job = 'bexpire'
          AND reason = 'attempts_exhausted' AND last_error LIKE '%expired%sent again%'")"
assert_eq "batch POSTs: each batch sent twice" 8 "$(mock_stat batch)"
stop_mock_pid "$MOCK_PID"

# --- 3b. jobs that never complete: resent once after poll_timeout, then ledgered per ID ------
start_mock --batch-async --job-never-first 1000000
batch_ini "$IT_TMP/never.ini" bnever "$MOCK_URL" "max_batch = 50" "poll_timeout = 0.5"
sql -c "CREATE TABLE never_source AS SELECT id FROM master_table WHERE id <= 100"
run_pgenrich never run --config "$IT_TMP/never.ini" --dsn "$IT_DSN" --quiet \
    --source-table never_source --target-table never_target
expect_done "never-ending jobs"
assert_eq "IDs ledgered after two jobs past poll_timeout" 100 \
    "$(q "SELECT count(*) FROM enrich_failures WHERE job = 'bnever'
          AND reason = 'attempts_exhausted' AND last_error LIKE '%poll_timeout%sent again%'")"
assert_eq "batch POSTs: each batch sent twice" 4 "$(mock_stat batch)"
stop_mock_pid "$MOCK_PID"

# --- 3c. per-item errors inside a 200 answer: 503 and 429 retried per ID, 403 ledgered per
# ID (retry-failed clears them), 401 stops the job (exit 3) with no ID ledgered for it ------
for st in 503 429; do
    start_mock --batch-sync --batch-item-status "$st" --batch-item-mod 10
    batch_ini "$IT_TMP/item$st.ini" "bitem$st" "$MOCK_URL" "max_batch = 100"
    # A tenth of the items fail, drawn afresh each call; the request numbers (the draws)
    # repeat from run to run, so one ID could meet 6 in a row every few dozen runs.
    sed -i 's/^max-attempts = 6/max-attempts = 12/' "$IT_TMP/item$st.ini"
    run_pgenrich "item$st" run --config "$IT_TMP/item$st.ini" --dsn "$IT_DSN" --quiet \
        --target-table "item${st}_target"
    expect_done "per-item $st errors"
    check_against_expected "bitem$st" "item${st}_target"
    errs=$(mock_stat batch_item_errors)
    [ "$errs" -gt 0 ] || fail "per-item $st: the mock gave no item error"
    assert_eq "per-item $st: one retry per item error" "$errs" "$(summary "item$st" retries)"
    log "per-item $st: $errs item errors, each retried, the run exact"
    stop_mock_pid "$MOCK_PID"
done

start_mock --batch-sync --batch-item-status 403 --batch-item-mod 20
batch_ini "$IT_TMP/item403.ini" bitem403 "$MOCK_URL" "max_batch = 100"
run_pgenrich item403 run --config "$IT_TMP/item403.ini" --dsn "$IT_DSN" --quiet \
    --target-table item403_target
expect_rc 5 "per-item 403s (done, the refused IDs in the ledger)"
errs=$(mock_stat batch_item_errors)
[ "$errs" -gt 0 ] || fail "per-item 403: the mock gave no item error"
assert_eq "per-item 403: IDs ledgered as forbidden" "$errs" \
    "$(q "SELECT count(*) FROM enrich_failures WHERE job = 'bitem403' AND reason = 'forbidden'
          AND http_status = 403")"
check_one_place bitem403 item403_target enrich_failures master_table id
stop_mock_pid "$MOCK_PID"
start_mock --batch-sync
batch_ini "$IT_TMP/item403.ini" bitem403 "$MOCK_URL" "max_batch = 100"
run_pgenrich item403_retry retry-failed --config "$IT_TMP/item403.ini" --dsn "$IT_DSN" \
    --quiet --reason forbidden --target-table item403_target
check_against_expected bitem403 item403_target
log "per-item 403: $errs IDs ledgered as forbidden, then cleared by retry-failed"
stop_mock_pid "$MOCK_PID"

start_mock --batch-sync --batch-item-status 401 --batch-item-mod 50
batch_ini "$IT_TMP/item401.ini" bitem401 "$MOCK_URL" "max_batch = 100"
run_pgenrich item401 run --config "$IT_TMP/item401.ini" --dsn "$IT_DSN" --quiet \
    --target-table item401_target
expect_rc 3 "a per-item 401 (the credentials refused)"
[ "$(mock_stat batch_item_errors)" -gt 0 ] || fail "per-item 401: the mock gave no item error"
# Outcomes settled before the 401 (the mock's own not-found IDs) may commit; no ID is
# ledgered for the refusal itself.
assert_none "per-item 401: ledgered other than as expected" \
    "SELECT id, reason FROM enrich_failures WHERE job = 'bitem401'
     EXCEPT SELECT id, outcome FROM expected WHERE outcome <> 'found'"
stop_mock_pid "$MOCK_PID"
start_mock --batch-sync
batch_ini "$IT_TMP/item401.ini" bitem401 "$MOCK_URL" "max_batch = 100"
run_pgenrich item401_rerun run --config "$IT_TMP/item401.ini" --dsn "$IT_DSN" --quiet \
    --target-table item401_target
expect_done "the rerun after a per-item 401"
check_against_expected bitem401 item401_target
log "per-item 401: exit 3, no ID ledgered for it; the rerun ends exact"
stop_mock_pid "$MOCK_PID"

# --- 3d. a batch provider that goes down mid-run: five refused calls in a row pause it, the
# outage spends none of its IDs' attempts, the job stops resumable after
# --provider-down-timeout, and the rerun ends exact ---------------------------------------
start_mock --batch-sync --latency-ms 50
batch_ini "$IT_TMP/down.ini" bdown "$MOCK_URL" "max_batch = 20"
sed -i 's/^concurrency = 8/concurrency = 2/' "$IT_TMP/down.ini"
start_pgenrich down run --config "$IT_TMP/down.ini" --dsn "$IT_DSN" --target-table down_target \
    --provider-down-timeout 2 --flush-interval 0.2
for _ in $(seq 1 100); do
    [ "$(q "SELECT count(*) FROM down_target" 2>/dev/null || echo 0)" -lt 500 ] || break
    sleep 0.1
done
[ "$(q "SELECT count(*) FROM down_target")" -ge 500 ] || fail "batch outage: few rows before it"
stop_mock_pid "$MOCK_PID"
wait_pgenrich 30
expect_rc 75 "a batch provider down mid-run past --provider-down-timeout"
assert_stderr_has down "event=provider_paused" "event=provider_down" 'error="connection refused"' \
    "event=resumable"
assert_eq "batch outage: IDs ledgered as out of attempts" 0 \
    "$(q "SELECT count(*) FROM enrich_failures WHERE job = 'bdown' AND reason = 'attempts_exhausted'")"
start_mock --batch-sync
batch_ini "$IT_TMP/down.ini" bdown "$MOCK_URL" "max_batch = 20"
run_pgenrich down_rerun run --config "$IT_TMP/down.ini" --dsn "$IT_DSN" --quiet \
    --target-table down_target
expect_done "the rerun after a batch provider's outage"
check_against_expected bdown down_target
log "batch outage: exit 75, no attempts spent; the rerun ends exact"
stop_mock_pid "$MOCK_PID"

# --- 4. 413: the provider asks more than the mock takes; the batch size halves ----------------
start_mock --batch-sync --max-batch 30
batch_ini "$IT_TMP/big.ini" b413 "$MOCK_URL" "max_batch = 100" "count_ids = true"
run_pgenrich big run --config "$IT_TMP/big.ini" --dsn "$IT_DSN" --target-table t413
expect_done "413 halving"
grep -q 'event=batch_shrunk provider=primary size=50' "$IT_TMP/big.err" ||
    fail "no batch_shrunk to 50"
grep -q 'event=batch_shrunk provider=primary size=25' "$IT_TMP/big.err" ||
    fail "no batch_shrunk to 25"
check_against_expected b413 t413
log "413: $(mock_stat bad_request) refused, $(mock_stat batch) accepted"
assert_le "413s (a few per halving, one per call in flight)" "$(mock_stat bad_request)" 20
stop_mock_pid "$MOCK_PID"

# --- 5. kill -9 with batches pending (async), then the resume ends exact ----------------------
start_mock --batch-async --job-ready-ms 300 --latency-ms 20
batch_ini "$IT_TMP/kill.ini" bkill "$MOCK_URL" "max_batch = 50"
sed -i 's/^page-size = 1000/page-size = 500\nflush-rows = 200\nflush-interval = 0.2/' "$IT_TMP/kill.ini"
start_pgenrich killed run --config "$IT_TMP/kill.ini" --dsn "$IT_DSN" --quiet --target-table tkill
committed() {
    q "SELECT (SELECT count(*) FROM tkill) + (SELECT count(*) FROM enrich_failures
       WHERE job = 'bkill')" 2>/dev/null || echo 0
}
for _ in $(seq 1 300); do
    [ "$(committed)" -ge 1000 ] && break
    kill -0 "$PGENRICH_PID" 2>/dev/null || fail "the run ended before it was killed"
    sleep 0.1
done
pending=$(mock_stat jobs_pending)
kill -KILL "$PGENRICH_PID"
wait "$PGENRICH_PID" 2>/dev/null || true
[ "$pending" -gt 0 ] || fail "no batch job was pending at the kill: the test proves nothing"
log "killed -9 with $(committed) outcomes committed"
[ "$(committed)" -lt "$N" ] || fail "the run finished before it was killed"
run_pgenrich resumed run --config "$IT_TMP/kill.ini" --dsn "$IT_DSN" --quiet --target-table tkill
expect_done "the resume after kill -9"
check_against_expected bkill tkill
assert_eq "checkpoint after the resume" "t|$N" \
    "$(q "SELECT finished, position FROM enrich_checkpoints WHERE job = 'bkill'")"
stop_mock_pid "$MOCK_PID"

# --- 5b. SIGTERM with jobs pending: they are polled to the end within the drain ---------------
start_mock --batch-async --job-ready-ms 1500 --latency-ms 20
batch_ini "$IT_TMP/drain.ini" bdrain "$MOCK_URL" "max_batch = 50"
start_pgenrich drain run --config "$IT_TMP/drain.ini" --dsn "$IT_DSN" --target-table tdrain \
    --drain-timeout 20
for _ in $(seq 1 100); do
    [ "$(mock_stat polls)" -gt 0 ] && break
    sleep 0.1
done
[ "$(mock_stat polls)" -gt 0 ] || fail "no job was polled before the SIGTERM"
kill -TERM "$PGENRICH_PID"
wait_pgenrich 40
expect_rc 75 "SIGTERM with batch jobs pending"
assert_stderr_has drain 'event=interrupted' 'event=drained' 'event=resumable'
drained=$(q "SELECT (SELECT count(*) FROM tdrain) + (SELECT count(*) FROM enrich_failures
             WHERE job = 'bdrain')")
log "SIGTERM: $drained outcomes committed by the drain"
[ "$drained" -gt 0 ] || fail "the drain committed nothing: pending jobs were not polled to the end"
stop_mock_pid "$MOCK_PID"
start_mock --batch-sync # the same data, answered at once: the resume is quick
sed -i "s|http://127.0.0.1:[0-9]*|$MOCK_URL|" "$IT_TMP/drain.ini"
run_pgenrich drained_resume run --config "$IT_TMP/drain.ini" --dsn "$IT_DSN" --quiet \
    --target-table tdrain
expect_done "the resume after the drain"
check_against_expected bdrain tdrain
stop_mock_pid "$MOCK_PID"

# --- 5c. SIGTERM with jobs that outlast the drain: abandoned, left for the resume ------------
start_mock --batch-async --job-ready-ms 60000 --latency-ms 20
batch_ini "$IT_TMP/undrained.ini" bundrained "$MOCK_URL" "max_batch = 50"
start_pgenrich undrained run --config "$IT_TMP/undrained.ini" --dsn "$IT_DSN" \
    --target-table tundrained --drain-timeout 1
for _ in $(seq 1 100); do
    [ "$(mock_stat polls)" -gt 0 ] && break
    sleep 0.1
done
[ "$(mock_stat jobs_pending)" -gt 0 ] || fail "no job pending before the SIGTERM"
kill -TERM "$PGENRICH_PID"
wait_pgenrich 20
expect_rc 75 "SIGTERM with jobs that outlast --drain-timeout"
assert_stderr_has undrained 'event=interrupted' 'event=drain_timeout' 'event=resumable'
assert_eq "outcomes committed for jobs never answered" 0 \
    "$(q "SELECT (SELECT count(*) FROM tundrained) + (SELECT count(*) FROM enrich_failures
          WHERE job = 'bundrained')")"
stop_mock_pid "$MOCK_PID"
start_mock --batch-sync
sed -i "s|http://127.0.0.1:[0-9]*|$MOCK_URL|" "$IT_TMP/undrained.ini"
run_pgenrich undrained_resume run --config "$IT_TMP/undrained.ini" --dsn "$IT_DSN" --quiet \
    --target-table tundrained
expect_done "the resume after the drain timed out"
check_against_expected bundrained tundrained
stop_mock_pid "$MOCK_PID"

# --- 5d. the rate limit counts batch calls, or IDs with count_ids; Retry-After on 429s -------
start_mock --batch-sync
sql -c "CREATE TABLE rate_source AS SELECT id FROM master_table WHERE id <= 600"
for mode in calls ids idrate; do
    case $mode in
    calls) extra=("count_ids = false") rate=15 ;; # 30 calls at 15/s: 2 s
    ids) extra=("count_ids = true") rate=300 ;;   # 600 IDs at 300/s: 2 s
    idrate) extra=("count_ids = false") rate=300 ;; # 30 calls at 300/s: 0.1 s
    esac
    batch_ini "$IT_TMP/rate_$mode.ini" "brate_$mode" "$MOCK_URL" "max_batch = 20" "${extra[@]}"
    sed -i "s/^concurrency = 8/concurrency = 8\nrate = $rate/" "$IT_TMP/rate_$mode.ini"
    mock_reset_stats
    run_pgenrich "rate_$mode" run --config "$IT_TMP/rate_$mode.ini" --dsn "$IT_DSN" --quiet \
        --source-table rate_source --target-table "trate_$mode"
    expect_done "rate limit ($mode)"
    check_one_place "brate_$mode" "trate_$mode" enrich_failures rate_source id
    assert_eq "batch calls ($mode)" 30 "$(mock_stat batch)"
    elapsed=$(summary "rate_$mode" elapsed_s)
    log "rate ($mode, $rate/s): 30 calls, 600 IDs in $elapsed s"
    case $mode in
    idrate) awk -v e="$elapsed" 'BEGIN { exit !(e < 1.5) }' ||
        fail "rate = 300 without count_ids paced IDs, not calls ($elapsed s)" ;;
    *) awk -v e="$elapsed" 'BEGIN { exit !(e >= 1.6) }' ||
        fail "rate = $rate ($mode) let the run go too fast ($elapsed s)" ;;
    esac
done
stop_mock_pid "$MOCK_PID"
start_mock --batch-sync --rate-limit 10
batch_ini "$IT_TMP/r429.ini" br429 "$MOCK_URL" "max_batch = 20"
run_pgenrich r429 run --config "$IT_TMP/r429.ini" --dsn "$IT_DSN" --quiet \
    --source-table rate_source --target-table tr429
expect_done "batch calls answered 429 with Retry-After"
check_one_place br429 tr429 enrich_failures rate_source id
log "429: $(mock_stat rate_limited) calls rate limited, $(mock_stat batch) accepted"
[ "$(mock_stat rate_limited)" -gt 0 ] || fail "no 429: the test proves nothing"
assert_none "IDs lost to 429s (Retry-After: 1 is waited out)" \
    "SELECT id FROM enrich_failures WHERE job = 'br429' AND reason = 'attempts_exhausted'"
stop_mock_pid "$MOCK_PID"

# --- 6. chains: batch primary + single fallback, and single primary + batch fallback ----------
start_mock --batch-sync --primary-down-mod 10
cat >"$IT_TMP/chain1.ini" <<EOF
[job]
job = bchain1
concurrency = 8
max-attempts = 2
backoff-base = 0.01
backoff-cap = 0.05

[provider primary]
kind = batch
url = $MOCK_URL/api/v2/entities/batch
max_batch = 100

[provider secondary]
url = $MOCK_URL/v1/lookup?entity={id}
mapping = secondary
EOF
run_pgenrich chain1 run --config "$IT_TMP/chain1.ini" --dsn "$IT_DSN" --quiet --target-table tchain1
expect_done "batch primary + single fallback"
check_against_expected bchain1 tchain1
assert_none "rows of the batch primary carry its name" \
    "SELECT id FROM tchain1 WHERE provider <> 'primary'"
# The primary's misses and not-founds went to the secondary, one single lookup each.
assert_eq "single lookups of the fallback (one per ID the batch did not find)" \
    "$(q "SELECT count(*) FROM expected WHERE outcome <> 'found'")" \
    "$(($(mock_stat requests) - $(mock_stat batch)))"

cat >"$IT_TMP/chain2.ini" <<EOF
[job]
job = bchain2
concurrency = 8
max-attempts = 2
backoff-base = 0.01
backoff-cap = 0.05

[provider single]
url = $MOCK_URL/api/v2/entities/{id}?select=id,label,location

[provider batchfb]
kind = batch
url = $MOCK_URL/api/v2/entities/batch
max_batch = 100
batch_linger = 50
EOF
run_pgenrich chain2 run --config "$IT_TMP/chain2.ini" --dsn "$IT_DSN" --quiet --target-table tchain2
expect_done "single primary + batch fallback"
load_expected_as expected2 bigint "SELECT id FROM master_table" --primary-down-mod 10
check_one_place bchain2 tchain2 enrich_failures master_table id
assert_none "chain2 rows that differ from the expected ones" \
    "SELECT id, label, latitude, longitude FROM tchain2
     EXCEPT SELECT id, label, latitude, longitude FROM expected WHERE outcome = 'found'"
assert_none "rows of IDs the single primary was down for come from the batch fallback" \
    "SELECT t.id FROM tchain2 t JOIN expected2 e USING (id)
     WHERE t.provider <> CASE WHEN e.quirks ~ 'down' THEN 'batchfb' ELSE 'single' END"
stop_mock_pid "$MOCK_PID"

# --- 7. bad job files ---------------------------------------------------------------------------
cat >"$IT_TMP/bad.ini" <<EOF
[provider b]
kind = batch
url = http://127.0.0.1:1/api/v2/entities/{id}
EOF
run_pgenrich badini check-config --config "$IT_TMP/bad.ini"
expect_rc 2 "a batch url with {id}"
grep -q "bad.ini:3: url: " "$IT_TMP/badini.err" || fail "no FILE:LINE: url: message"
cat >"$IT_TMP/bad2.ini" <<EOF
[provider s]
url = http://127.0.0.1:1/x/{id}
max_batch = 10
EOF
run_pgenrich badini2 check-config --config "$IT_TMP/bad2.ini"
expect_rc 2 "max_batch on a single provider"
grep -q "bad2.ini:3: max_batch: only with kind = batch" "$IT_TMP/badini2.err" ||
    fail "no 'only with kind = batch' message"
log PASS
