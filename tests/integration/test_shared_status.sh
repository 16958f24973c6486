#!/usr/bin/env bash
# test_shared_status: what an operator sees of a --shared job. Two workers against a slow
# mock; mid-run, `status --job` (text and JSON) lists both workers with live leases, the
# ranges by state add up to --ranges, the progress fields are numbers; worker 1's
# --metrics-listen carries its identity (pgenrich_worker_info, pgenrich_range_current) and
# passes `promtool check metrics`. After the end: every range done, no live worker, nothing
# left. The workers table adds each worker's row (heartbeat, rate, 429s), strangers' too; a
# plain job's report has none of it.
IT_RUN_TIMEOUT=${IT_RUN_TIMEOUT:-60}
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v jq >/dev/null || fail "jq is not installed (scripts/deps)"
command -v promtool >/dev/null || fail "promtool is not installed (scripts/deps: prometheus)"

N=6000
RANGES=6
seed_bigint "$N"
load_expected bigint
start_mock --latency-ms 0
FAST_URL=$MOCK_URL
start_mock --latency-ms 25
SLOW_URL=$MOCK_URL
run_pgenrich init init --dsn "$IT_DSN"
expect_rc 0 "init"

# --- 1. a plain job: the report as before, without ranges ----------------------------------
run_pgenrich plain run --dsn "$IT_DSN" --job plainjob --base-url "$FAST_URL" --concurrency 16 \
    --target-table plain_target --failures-table plain_failures --quiet
expect_done "the plain run"
run_pgenrich plain_status status --dsn "$IT_DSN" --job plainjob --failures-table plain_failures
expect_rc 0 "status of a plain job"
grep -q '^ids left: 0 (source IDs past the checkpoint)$' "$IT_TMP/plain_status.out" ||
    fail "plain status: no 'ids left' line: $(cat "$IT_TMP/plain_status.out")"
if grep -qE '^(ranges|progress|workers|leased ranges):' "$IT_TMP/plain_status.out"; then
    fail "plain status shows a shared job's lines: $(cat "$IT_TMP/plain_status.out")"
fi
run_pgenrich plain_json status --dsn "$IT_DSN" --job plainjob --failures-table plain_failures \
    --format json
expect_rc 0 "status --format json of a plain job"
assert_eq "a plain job's JSON keys" \
    "checkpoint,failures_by_reason,failures_total,ids_left,job,ran,runner,runs" \
    "$(jq -r 'keys | join(",")' "$IT_TMP/plain_json.out")"

# --- 2. two shared workers, mid-run --------------------------------------------------------
# 4 in flight at 25 ms: about 160 lookups a second each, so the job lasts ~20 s.
common=(--dsn "$IT_DSN" --job sstatus --base-url "$SLOW_URL" --shared --ranges "$RANGES"
    --lease-seconds 3 --concurrency 4 --page-size 100 --flush-rows 100 --flush-interval 0.3)
start_pgenrich w1 run "${common[@]}" --metrics-listen 127.0.0.1:0
W1=$PGENRICH_PID
start_pgenrich w2 run "${common[@]}"
W2=$PGENRICH_PID

# Both workers hold a live lease on a range with a checkpoint, and their runs have a rate.
for _ in $(seq 1 150); do
    [ "$(q "SELECT count(DISTINCT owner) FROM enrich_ranges WHERE job = 'sstatus'
            AND state = 'leased' AND lease_expires > now() AND position IS NOT NULL")" = 2 ] &&
        [ "$(q "SELECT count(*) FROM enrich_runs WHERE job = 'sstatus' AND ids_per_s > 0")" = 2 ] &&
        break
    sleep 0.1
done
[ "$(q "SELECT count(DISTINCT owner) FROM enrich_ranges WHERE job = 'sstatus'
        AND state = 'leased' AND lease_expires > now()")" = 2 ] ||
    fail "two workers do not both hold a live lease after 15 s"
for pid in "$W1" "$W2"; do
    kill -0 "$pid" 2>/dev/null || fail "worker pid $pid ended before the checks"
done

t0=$SECONDS
run_pgenrich mid_text status --dsn "$IT_DSN" --job sstatus
expect_rc 0 "status mid-run"
run_pgenrich mid_json status --dsn "$IT_DSN" --job sstatus --format json
expect_rc 0 "status --format json mid-run"
assert_le "seconds the two status calls took" "$((SECONDS - t0))" 5
log "status mid-run:"
sed 's/^/    /' "$IT_TMP/mid_text.out"
J=$IT_TMP/mid_json.out
grep -qE "^ranges: $RANGES \(run --shared\): [0-9]+ pending, [0-9]+ leased \([0-9]+ with the lease expired\), [0-9]+ done$" \
    "$IT_TMP/mid_text.out" || fail "status text: no ranges line"
grep -qE "^progress: [0-9]+ IDs done of $N \([0-9.]+ %\), [0-9]+ left, [0-9.]+ IDs/s \(2 live runs\), ETA " \
    "$IT_TMP/mid_text.out" || fail "status text: no progress line with a rate"
grep -qE '^workers: 2 live of 2( |$)' "$IT_TMP/mid_text.out" ||
    fail "status text: not 2 live workers"
grep -qE '^leased ranges:$' "$IT_TMP/mid_text.out" || fail "status text: no leased ranges"
assert_eq "JSON: ranges by state add up to --ranges" "$RANGES $RANGES" \
    "$(jq -r '.shared.ranges | "\(.total) \(.pending + .leased + .done)"' "$J")"
assert_eq "JSON: two live workers, each with a leased range and lease time left" "2 2" \
    "$(jq -r '[.shared.workers[] | select(.live)] |
              "\(length) \([.[] | select((.leased_ranges | length) > 0 and .lease_left_s > 0)] | length)"' "$J")"
assert_eq "JSON: the live workers are the owners of the live leases" \
    "$(q "SELECT string_agg(DISTINCT owner, ',' ORDER BY owner) FROM enrich_ranges
          WHERE job = 'sstatus' AND state = 'leased' AND lease_expires > now()")" \
    "$(jq -r '[.shared.workers[] | select(.live) | .owner] | sort | join(",")' "$J")"
assert_eq "JSON: leased ranges have an owner, a fence, a lease left" "true" \
    "$(jq -r '.shared.leased | length > 0 and all(.[]; (.owner | type) == "string" and .fence >= 1
              and (.lease_left_s | type) == "number")' "$J")"
assert_eq "JSON: progress fields are numbers" "number number number number number number" \
    "$(jq -r '.shared.progress | [.ids_done, .ids_total, .ids_left, .fraction, .ids_per_s, .eta_s]
              | map(type) | join(" ")' "$J")"
assert_eq "JSON: the total is the source's IDs, done + left the total" "$N true" \
    "$(jq -r '.shared.progress | "\(.ids_total) \(.ids_done + .ids_left == .ids_total and
              .ids_per_s > 0 and .fraction < 1)"' "$J")"
assert_eq "JSON: the workers table, with a row for each live worker" "true true" \
    "$(jq -r '.shared | "\(.workers_table) \([.workers[] | select(.live) | .worker_row != null] | all)"' "$J")"
assert_eq "JSON: both workers' runs are running (a live lease), not killed" "running running" \
    "$(jq -r '[.runs[].state] | join(" ")' "$J")"

# --- 3. worker 1's metrics carry its identity ----------------------------------------------
ADDR=$(sed -n 's/.*event=metrics_listen addr=\([^ ]*\).*/\1/p' "$IT_TMP/w1.err" | head -n 1)
[ -n "$ADDR" ] || fail "worker 1 logged no event=metrics_listen"
curl -fsS --max-time 5 -o "$IT_TMP/w1.prom" "http://$ADDR/metrics" ||
    fail "GET http://$ADDR/metrics failed"
promtool check metrics <"$IT_TMP/w1.prom" >"$IT_TMP/promtool.out" 2>&1 ||
    fail "promtool check metrics: $(cat "$IT_TMP/promtool.out")"
W1_OWNER=$(sed -n 's/.*event=worker_start .*owner="\([^"]*\)".*/\1/p' "$IT_TMP/w1.err" | head -n 1)
[ -n "$W1_OWNER" ] || fail "worker 1 logged no owner"
assert_eq "pgenrich_worker_info names the job, the worker and its host" 1 \
    "$(grep -cF "pgenrich_worker_info{job=\"sstatus\",worker=\"$W1_OWNER\",host=\"${W1_OWNER%%:*}\"} 1" "$IT_TMP/w1.prom")"
cur=$(awk '$1 == "pgenrich_range_current" { print $2 }' "$IT_TMP/w1.prom")
if ! [[ "$cur" =~ ^[0-9]+$ ]] || [ "$cur" -ge "$RANGES" ]; then
    fail "pgenrich_range_current: '$cur'"
fi
assert_eq "worker 1's current range is one it has claimed" 1 \
    "$(grep -c "event=range_claimed job=\"sstatus\" range=$cur " "$IT_TMP/w1.err")"
assert_eq "the identity labels are on the info series only" 1 \
    "$(grep -c 'worker="' "$IT_TMP/w1.prom")"
log "metrics: worker $W1_OWNER on range $cur; promtool clean"

# --- 4. after the end ----------------------------------------------------------------------
for pid in "$W1" "$W2"; do
    PGENRICH_PID=$pid
    LAST_RUN=w$([ "$pid" = "$W1" ] && echo 1 || echo 2)
    LAST_ARGS=("${common[@]}")
    wait_pgenrich 45
    expect_done "worker $LAST_RUN"
done
check_against_expected sstatus
run_pgenrich end_text status --dsn "$IT_DSN" --job sstatus
expect_rc 0 "status after the end"
run_pgenrich end_json status --dsn "$IT_DSN" --job sstatus --format json
expect_rc 0 "status --format json after the end"
J=$IT_TMP/end_json.out
grep -qE "^ranges: $RANGES \(run --shared\): 0 pending, 0 leased \(0 with the lease expired\), $RANGES done$" \
    "$IT_TMP/end_text.out" || fail "status text after the end: $(cat "$IT_TMP/end_text.out")"
grep -qE "^progress: [0-9]+ IDs done of $N \(100.0 %\), 0 left, .*ETA 0ms$" "$IT_TMP/end_text.out" ||
    fail "status text after the end: no finished progress line"
grep -qE '^workers: 0 live of 2( |$)' "$IT_TMP/end_text.out" || fail "status text: live workers after the end"
assert_eq "JSON after the end: every range done, no live worker, nothing leased" "$RANGES 0 0" \
    "$(jq -r '.shared | "\(.ranges.done) \(.workers_live) \(.leased | length)"' "$J")"
assert_eq "JSON after the end: nothing left, fraction 1, ETA 0" "0 1 0" \
    "$(jq -r '.shared.progress | "\(.ids_left) \(.fraction) \(.eta_s)"' "$J")"
assert_eq "JSON after the end: ids_left at the top agrees" 0 "$(jq -r '.ids_left' "$J")"

# --- 5. the workers table: its rows join the owners, strangers included --------------------
# (the workers deleted their own rows when they ended: these stand for workers that did not)
sql <<EOF
INSERT INTO enrich_workers (job, worker, host, pid, heartbeat_at, rate, throttled, last_429_at,
    requests) VALUES
    ('sstatus', '$W1_OWNER', 'h', 1, now() - interval '2 s', 42.5, 3, now(), 7),
    ('sstatus', 'elsewhere:1:00000000', 'elsewhere', 1, now(), 10, 0, NULL, 3),
    ('otherjob', 'other:2:00000000', 'other', 2, now(), 1, 0, NULL, 1);
EOF
run_pgenrich wt_json status --dsn "$IT_DSN" --job sstatus --format json
expect_rc 0 "status with a workers table"
J=$IT_TMP/wt_json.out
assert_eq "workers table: its rows and the owners, this job's only" "true 3" \
    "$(jq -r '.shared | "\(.workers_table) \(.workers | length)"' "$J")"
assert_eq "workers table: worker 1's row (rate, 429s, heartbeat age)" "42.5 3 true" \
    "$(jq -r --arg o "$W1_OWNER" '.shared.workers[] | select(.owner == $o) |
              "\(.worker_row.rate) \(.worker_row.throttled) \(.heartbeat_age_s >= 1.5)"' "$J")"
run_pgenrich wt_text status --dsn "$IT_DSN" --job sstatus
expect_rc 0 "status text with a workers table"
grep -qF "$W1_OWNER  live=no leased=- done=" "$IT_TMP/wt_text.out" ||
    fail "status text: no line for worker 1: $(cat "$IT_TMP/wt_text.out")"
grep -qE 'elsewhere:1:00000000  live=no .* rate=10 throttled=0' "$IT_TMP/wt_text.out" ||
    fail "status text: the workers table's own worker is missing"
grep -q '(no row in the workers table)' "$IT_TMP/wt_text.out" ||
    fail "status text: worker 2 (no row) not marked"
log "after the end: every range done, no live worker; a workers table joins in"
