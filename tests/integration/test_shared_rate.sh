#!/usr/bin/env bash
# test_shared_rate: one rate for all the workers of a --shared job (README "One rate for
# all"), read from the mock's per-second trace (--trace-file).
# 1. Under an unannounced server limit of R req/s (--rate-limit R), three workers without
#    --rate stay within R together: the accepted requests per second close to R, few 429s.
#    While they run, enrich_workers holds one live row per worker; none once they are done.
# 2. With --rate R given to the three workers (and no server limit), the job's total per
#    second stays within R and the workers' bursts, not 3R.
# 3. Without a limit, against a slow mock (50 ms), three workers get close to three times
#    one worker's throughput (the same IDs per worker).
# The first seconds (workers joining: each learns of the others at its next beat, within a
# second) and the last (workers leaving) are left out of the per-second bounds.
IT_RUN_TIMEOUT=${IT_RUN_TIMEOUT:-60}
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

R=300
common=(--dsn "$IT_DSN" --shared --ranges 12 --lease-seconds 3 --page-size 100
    --flush-rows 200 --flush-interval 0.3)

# seed_table NAME N: a source table of ids 1..N.
seed_table() {
    sql <<EOF
CREATE TABLE $1 (id bigint PRIMARY KEY);
INSERT INTO $1 SELECT g FROM generate_series(1, $2) g;
EOF
}

# trace_stats FILE: "seconds mean_ok max_all sum_ok sum_429" over the trace's seconds from
# the third with requests up to the one before the last with requests.
trace_stats() {
    awk '$2 + $3 + $4 > 0 { if (first == "") first = NR; last = NR }
         { ok[NR] = $2; r[NR] = $3; all[NR] = $2 + $3 + $4 }
         END {
             n = 0; sok = 0; s429 = 0; max = 0
             for (i = first + 2; i < last; i++) {
                 n++; sok += ok[i]; s429 += r[i]; if (all[i] > max) max = all[i]
             }
             printf "%d %.0f %d %d %d\n", n, n ? sok / n : 0, max, sok, s429
         }' "$1"
}

# ids_of JOB TARGET: the IDs the job settled: its target rows and its ledger entries.
ids_of() {
    q "SELECT (SELECT count(*) FROM $2) + (SELECT count(*) FROM enrich_failures WHERE job = '$1')"
}

# run_workers JOB N LABEL ARGS...: N workers of JOB at once, waited for; each must end done.
run_workers() {
    local job=$1 n=$2 label=$3 w
    shift 3
    local pids=()
    for w in $(seq 1 "$n"); do
        start_pgenrich "$label$w" run "${common[@]}" --job "$job" "$@"
        pids+=("$PGENRICH_PID")
    done
    for w in $(seq 1 "$n"); do
        PGENRICH_PID=${pids[w - 1]}
        LAST_RUN=$label$w
        LAST_ARGS=(--job "$job")
        wait_pgenrich 60
        expect_done "$label worker $w"
    done
}

N1=4500 # about 15 s at R
seed_table src_limit "$N1"
run_pgenrich init init --dsn "$IT_DSN" --source-table src_limit --target-table t_limit
expect_rc 0 "init"
assert_eq "init makes the workers table" 1 \
    "$(q "SELECT count(*) FROM pg_class WHERE relname = 'enrich_workers'")"

# --- 1. an unannounced limit of R/s, three adaptive workers ---------------------------------
start_mock --latency-ms 10 --rate-limit "$R" --trace-file "$IT_TMP/trace-limit"
MOCK1=$MOCK_PID
pids=()
for w in 1 2 3; do
    start_pgenrich "lim$w" run "${common[@]}" --job limit --source-table src_limit \
        --target-table t_limit --base-url "$MOCK_URL" --concurrency 32
    pids+=("$PGENRICH_PID")
done
live=0
for _ in $(seq 1 100); do
    live=$(q "SELECT count(*) FROM enrich_workers WHERE job = 'limit'
              AND heartbeat_at > now() - interval '3 seconds' AND requests > 0")
    [ "$live" -eq 3 ] && break
    sleep 0.1
done
assert_eq "three live worker rows, each with requests" 3 "$live"
assert_eq "each row names its host and pid" 3 \
    "$(q "SELECT count(*) FROM enrich_workers WHERE job = 'limit' AND host <> ''
          AND pid IN (${pids[0]}, ${pids[1]}, ${pids[2]})")"
for w in 1 2 3; do
    PGENRICH_PID=${pids[w - 1]}
    LAST_RUN=lim$w
    LAST_ARGS=(--job limit)
    wait_pgenrich 60
    expect_done "limit worker $w"
done
assert_eq "no worker row left after clean exits" 0 \
    "$(q "SELECT count(*) FROM enrich_workers WHERE job = 'limit'")"
assert_eq "every ID once" "$N1" "$(ids_of limit t_limit)"
stop_mock_pid "$MOCK1"
read -r n mean _ sok s429 < <(trace_stats "$IT_TMP/trace-limit")
shared=$(cat "$IT_TMP"/lim?.err | grep -c 'event=rate_shared' || true)
log "limit $R/s, 3 workers: $n s measured, accepted $mean/s on average, 429s $s429 of" \
    "$((sok + s429)) ($(awk -v a="$s429" -v b="$((sok + s429))" 'BEGIN { printf "%.2f", 100 * a / b }') %)," \
    "rate_shared events $shared; per second: $(awk '$2 + $3 > 0 { printf "%d/%d ", $2, $3 }' "$IT_TMP/trace-limit")"
assert_le "seconds measured (at least)" 4 "$n"
assert_le "accepted per second (at least 75 % of R)" "$((R * 3 / 4))" "$mean"
assert_le "accepted per second (at most R and its burst)" "$mean" "$((R + R / 10))"
assert_le "429s, per cent of the requests (at most 10)" "$((100 * s429 / (sok + s429)))" 10

# --- 2. --rate R given to the three workers: the job's rate ---------------------------------
N2=3000 # about 10 s at R
seed_table src_rate "$N2"
start_mock --latency-ms 5 --trace-file "$IT_TMP/trace-rate"
MOCK2=$MOCK_PID
run_workers rate 3 rate --source-table src_rate --target-table t_rate --base-url "$MOCK_URL" \
    --concurrency 32 --rate "$R"
stop_mock_pid "$MOCK2"
assert_eq "every ID once" "$N2" "$(ids_of rate t_rate)"
read -r n mean max _ _ < <(trace_stats "$IT_TMP/trace-rate")
burst=$((R / 20)) # rl_burst_for(R): what one worker's bucket lets go at once
log "--rate $R, 3 workers: $n s measured, $mean/s on average, at most $max in a second" \
    "(bound $((R + 3 * burst))); per second: $(awk '$2 > 0 { printf "%d ", $2 }' "$IT_TMP/trace-rate")"
assert_le "seconds measured (at least)" 4 "$n"
assert_le "the busiest second (R and three bursts at most)" "$max" "$((R + 3 * burst))"
assert_le "per second on average (at least 80 % of R: the shares add up)" "$((R * 4 / 5))" "$mean"

# --- 3. no limit, a slow mock: three workers, three times the throughput --------------------
PER=2400 # about 7.5 s for a worker at 16 in flight and 50 ms
seed_table src_one "$PER"
seed_table src_three "$((3 * PER))"
start_mock --latency-ms 50
t0=$(date +%s.%N)
run_workers one 1 one --source-table src_one --target-table t_one --base-url "$MOCK_URL" \
    --concurrency 16
t1=$(date +%s.%N)
run_workers three 3 three --source-table src_three --target-table t_three \
    --base-url "$MOCK_URL" --concurrency 16
t2=$(date +%s.%N)
assert_eq "every ID once (one worker)" "$PER" "$(ids_of one t_one)"
assert_eq "every ID once (three workers)" "$((3 * PER))" "$(ids_of three t_three)"
ratio=$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$PER" \
    'BEGIN { one = n / (b - a); three = 3 * n / (c - b); printf "%.0f %.0f %.0f", one, three, 100 * three / one }')
read -r one three pct <<<"$ratio"
log "50 ms mock, concurrency 16: one worker $one IDs/s, three workers $three IDs/s: $pct % of one"
assert_le "three workers' throughput, per cent of one worker's (at least 240)" 240 "$pct"
