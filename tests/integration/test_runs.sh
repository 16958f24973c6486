#!/usr/bin/env bash
# test_runs: the run history and `pgenrich status`. A finished run's row says done with its
# exit status, an end and the counts the target and the ledger hold; a SIGTERM'd run's
# says interrupted (75) with an end; a kill -9'd run's row has no end but was updated by
# its flushes, and status calls it killed; while a run holds the job, status says running.
# status prints well-formed JSON, says so for a job that never ran, exits 2 on a bad command
# line and 6 when the database cannot be reached. retry-failed runs get a row too.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v jq >/dev/null || fail "jq is not installed (scripts/deps)"

N=20000
seed_bigint "$N"
load_expected bigint
run_pgenrich init init --dsn "$IT_DSN"
expect_rc 0 "pgenrich init"
assert_eq "init made the run history" 1 "$(q "SELECT count(*) FROM pg_class WHERE relname = 'enrich_runs'")"
start_mock --latency-ms 20

args=(--dsn "$IT_DSN" --job runs --base-url "$MOCK_URL" --page-size 1000 --flush-rows 500
    --flush-interval 0.3 --quiet)
slow=(run "${args[@]}" --concurrency 16) # about 800 IDs a second: 25 s for the lot
fast=(run "${args[@]}" --concurrency 256)

# run_row COLUMNS [WHERE]: the newest run row's columns, '|'-separated.
run_row() {
    q "SELECT $1 FROM enrich_runs WHERE job = 'runs' ${2:-} ORDER BY run_id DESC LIMIT 1"
}

# status LABEL ARGS...: pgenrich status of job runs (output in $IT_TMP/LABEL.out).
status() {
    local label=$1
    shift
    run_pgenrich "$label" status --dsn "$IT_DSN" --job runs "$@"
}

# start_run LABEL ARGS...: start_pgenrich, remembering the last run_id before it.
start_run() {
    RUNS_BEFORE=$(q "SELECT coalesce(max(run_id), 0) FROM enrich_runs")
    start_pgenrich "$@"
}

# wait_flushed SECONDS: until the run start_run started has a row that a flush updated.
wait_flushed() {
    for _ in $(seq 1 $(($1 * 10))); do
        [ -n "$(q "SELECT 1 FROM enrich_runs WHERE run_id > $RUNS_BEFORE
                   AND updated_at > started_at AND rows_loaded > 0")" ] && return 0
        kill -0 "$PGENRICH_PID" 2>/dev/null || fail "pgenrich ended before its first flush"
        sleep 0.1
    done
    fail "no flush in the run row after $1 s"
}

# --- 0. a job that never ran ----------------------------------------------------------------
status never
expect_rc 0 "status of a job that never ran"
grep -q 'never run' "$IT_TMP/never.out" || LAST_RUN=never fail "status does not say never run"
status never_json --format json
expect_rc 0 "status --format json of a job that never ran"
jq -e '.ran == false and .checkpoint == null and .runs == [] and .runner == null' \
    "$IT_TMP/never_json.out" >/dev/null || LAST_RUN=never_json fail "never-run JSON: $(cat "$IT_TMP/never_json.out")"

# --- 1. a finished run ------------------------------------------------------------------------
run_pgenrich done "${fast[@]}"
[ "$RC" -eq 0 ] || [ "$RC" -eq 5 ] || fail "finished run: exit $RC, expected 0 or 5"
done_rc=$RC
check_against_expected runs
assert_eq "finished run: command|state|exit|ended|from" "run|done|$done_rc|t|" \
    "$(run_row "command, state, exit_status, ended_at IS NOT NULL, checkpoint_from")"
assert_eq "finished run: rows_loaded = the target's rows" \
    "$(q "SELECT count(*) FROM standardized_locations")" "$(run_row rows_loaded)"
assert_eq "finished run: failures = the ledger's rows" \
    "$(q "SELECT count(*) FROM enrich_failures WHERE job = 'runs'")" "$(run_row failures)"
assert_eq "finished run: failures_by_reason = the ledger by reason" \
    "$(q "SELECT coalesce(jsonb_object_agg(reason, n), '{}') FROM (SELECT reason, count(*) n
          FROM enrich_failures WHERE job = 'runs' GROUP BY reason) s")" \
    "$(run_row failures_by_reason)"
assert_eq "finished run: checkpoint_to = the checkpoint" \
    "$(q "SELECT position FROM enrich_checkpoints WHERE job = 'runs'")" "$(run_row checkpoint_to)"
assert_eq "finished run: requests, retries = the summary's" \
    "$(summary done requests)|$(summary done retries)" "$(run_row "requests, retries")"
assert_eq "finished run: host, pid, version, a rate" "$(hostname)|t|t|t" \
    "$(run_row "host, pid > 0, version <> '', ids_per_s > 0")"

# --- 2. an interrupted run: SIGTERM, exit 75 --------------------------------------------------
start_run term "${slow[@]}" --restart
wait_flushed 30
kill -TERM "$PGENRICH_PID"
wait_pgenrich 20
expect_rc 75 "run after SIGTERM"
assert_eq "interrupted run: state|exit|ended" "interrupted|75|t" \
    "$(run_row "state, exit_status, ended_at IS NOT NULL")"
assert_eq "interrupted run: rows_loaded and checkpoint_to = the checkpoint's" \
    "$(q "SELECT rows_loaded || '|' || position FROM enrich_checkpoints WHERE job = 'runs'")" \
    "$(run_row "rows_loaded || '|' || checkpoint_to")"
term_to=$(run_row checkpoint_to)
[ "$term_to" -lt "$N" ] || fail "the run finished before SIGTERM: the test proves nothing"

# --- 3. a killed run: kill -9, no end; status says killed -------------------------------------
start_run kill "${slow[@]}"
wait_flushed 30
kill -KILL "$PGENRICH_PID"
wait "$PGENRICH_PID" 2>/dev/null || true
assert_eq "killed run: from|ended|exit|rows>0" "$term_to|f||t" \
    "$(run_row "checkpoint_from, ended_at IS NOT NULL, exit_status, rows_loaded > 0")"
assert_eq "killed run: its row holds what the checkpoint counted" \
    "$(q "SELECT rows_loaded - $(q "SELECT rows_loaded FROM enrich_runs WHERE job = 'runs'
        AND state = 'interrupted'") || '|' || position FROM enrich_checkpoints WHERE job = 'runs'")" \
    "$(run_row "rows_loaded || '|' || checkpoint_to")"
# The dead run's backend lets go of the lock once it sees the connection gone.
for _ in $(seq 1 50); do
    status killed --format json
    expect_rc 0 "status after kill -9"
    [ "$(jq -r '.runs[0].state' "$IT_TMP/killed.out")" = killed ] && break
    sleep 0.1
done
jq -e '.runner == null and .runs[0].state == "killed" and .runs[0].ended_at == null
       and .runs[0].exit_status == null and .runs[1].state == "interrupted"
       and .runs[1].exit_status == 75 and .runs[2].state == "done"
       and (.ids_left | type) == "number" and .ids_left > 0
       and .checkpoint.position == "'"$(q "SELECT position FROM enrich_checkpoints WHERE job = 'runs'")"'"' \
    "$IT_TMP/killed.out" >/dev/null || LAST_RUN=killed fail "status JSON after kill -9: $(cat "$IT_TMP/killed.out")"
assert_eq "ids_left = the source IDs past the checkpoint" \
    "$(q "SELECT count(*) FROM master_table WHERE id > (SELECT position::bigint FROM enrich_checkpoints WHERE job = 'runs')")" \
    "$(jq -r .ids_left "$IT_TMP/killed.out")"
status killed_text
expect_rc 0 "status (text) after kill -9"
grep -qE '^runner: none' "$IT_TMP/killed_text.out" || LAST_RUN=killed_text fail "status text: no 'runner: none'"
grep -qE ' killed ' "$IT_TMP/killed_text.out" || LAST_RUN=killed_text fail "status text does not say killed"

# --- 4. status while a run holds the job: running ---------------------------------------------
start_run live "${slow[@]}"
live_pid=$PGENRICH_PID
wait_flushed 30
status live_text
expect_rc 0 "status while a run goes"
grep -qE "^runner: running: pgenrich pid $live_pid " "$IT_TMP/live_text.out" ||
    LAST_RUN=live_text fail "status text does not name the runner"
grep -qE '^  [0-9]+ +run .* running ' "$IT_TMP/live_text.out" ||
    LAST_RUN=live_text fail "status text does not show the run as running"
status live_json --format json
jq -e '.runner.backend_pid > 0 and .runs[0].state == "running" and .runs[0].pid == '"$live_pid"'
       and .runs[1].state == "killed"' "$IT_TMP/live_json.out" >/dev/null ||
    LAST_RUN=live_json fail "status JSON while a run goes: $(cat "$IT_TMP/live_json.out")"
PGENRICH_PID=$live_pid
wait_pgenrich 60
[ "$RC" -eq 0 ] || [ "$RC" -eq 5 ] || fail "the live run: exit $RC, expected 0 or 5"
check_against_expected runs

# --- 5. retry-failed gets a row; --history; bad command lines; no database -------------------
run_pgenrich retry retry-failed "${args[@]}"
[ "$RC" -eq 0 ] || [ "$RC" -eq 5 ] || fail "retry-failed: exit $RC, expected 0 or 5"
assert_eq "retry-failed row: command|state|ended|from|to" "retry-failed|done|t||" \
    "$(run_row "command, state, ended_at IS NOT NULL, checkpoint_from, checkpoint_to")"
status hist --format json --history 2
jq -e '(.runs | length) == 2 and .runs[0].command == "retry-failed"
       and .failures_total == '"$(q "SELECT count(*) FROM enrich_failures WHERE job = 'runs'")" \
    "$IT_TMP/hist.out" >/dev/null || LAST_RUN=hist fail "status --history 2: $(cat "$IT_TMP/hist.out")"
run_pgenrich nojob status --dsn "$IT_DSN"
expect_rc 2 "status without --job"
status badfmt --format xml
expect_rc 2 "status --format xml"
run_pgenrich nodb status --dsn "host=127.0.0.1 port=1 connect_timeout=3" --job runs
expect_rc 6 "status with no database"
