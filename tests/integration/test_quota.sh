#!/usr/bin/env bash
# test_quota: a provider that announces a fixed-window quota (API.md section 5; the mock's
# --quota 3000/3: 1000 requests/s on average, windows on multiples of 3 s of the clock) in
# each form: RateLimit-* (delta seconds), X-RateLimit-* with a Unix timestamp, and with
# delta seconds. At --concurrency 256 and 50 ms of latency the job could send five times
# the quota; paced by the announcements (the default), every ID is accounted for, at most
# 1 % of the requests draw a 429 (the target is under 0.5 %; the bound leaves room for a
# busy machine, where a late loop can land a few requests past a window's end), and the
# IDs go at no less than 75 % of the quota's rate (measured from the run's start, which is
# lined up just after a window begins). A scrape mid-run shows the quota gauges; the
# quota is logged when first seen. With --quota-headers off the same provider draws 429s;
# a quota spent until a reset further away than --retry-after-max stops the job (75).
# Each paced run takes about 12 s. QUOTA_FORMS="x" (say) runs only those forms in section 1.
IT_RUN_TIMEOUT=${IT_RUN_TIMEOUT:-90}
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QN=3000   # requests per window
QS=3      # seconds per window
N=12000   # four windows' worth
MAX_429=1 # percent
MIN_RATE=75
FORMS=${QUOTA_FORMS:-ietf x x-delta}

seed_bigint "$N"
load_expected bigint
run_pgenrich init init --dsn "$IT_DSN"
expect_rc 0 "pgenrich init"

# Sleep until 0.05 s into the next window of QS seconds of the wall clock.
align_window() {
    local now
    now=$(date +%s.%N)
    sleep "$(awk -v t="$now" -v s="$QS" 'BEGIN { printf "%.3f", s - (t - int(t / s) * s) + 0.05 }')"
}

# figures LABEL: "share429 rate_share" of the last run against the mock, in percent.
figures() {
    local requests limited elapsed
    requests=$(mock_stat requests)
    limited=$(mock_stat rate_limited)
    elapsed=$(summary "$1" elapsed_s)
    awk -v r="$requests" -v l="$limited" -v e="$elapsed" -v n="$QN" -v s="$QS" \
        'BEGIN { printf "%.3f %.1f\n", 100 * l / r, 100 * (r - l) / e / (n / s) }'
}

# --- 1. each form, paced by default -------------------------------------------------------------
for form in $FORMS; do
    label=${form//-/_}
    start_mock --latency-ms 50 --quota "$QN/$QS" --quota-headers "$form"
    sql -c "TRUNCATE standardized_locations" -c "DELETE FROM enrich_failures"
    align_window
    args=(run --dsn "$IT_DSN" --job "quota_$label" --base-url "$MOCK_URL" --concurrency 256)
    if [ "$form" = ietf ]; then
        # This one is scraped mid-run.
        start_pgenrich "$label" "${args[@]}" --metrics-listen 127.0.0.1:0
        addr=""
        for _ in $(seq 1 50); do
            addr=$(sed -n 's/.*event=metrics_listen addr=\([^ ]*\).*/\1/p' "$IT_TMP/$label.err" |
                head -n 1)
            [ -n "$addr" ] && break
            sleep 0.1
        done
        [ -n "$addr" ] || fail "no event=metrics_listen within 5 s"
        sleep 4
        curl -fsS --max-time 5 -o "$IT_TMP/scrape.prom" "http://$addr/metrics" ||
            fail "GET http://$addr/metrics failed"
        wait_pgenrich "$IT_RUN_TIMEOUT"
    else
        run_pgenrich "$label" "${args[@]}"
    fi
    read -r share rate < <(figures "$label")
    log "$form: $(mock_stat requests) requests, $(mock_stat rate_limited) drew a 429" \
        "($share %), $(summary "$label" elapsed_s) s: $rate % of the quota's rate"
    if [ "$form" = ietf ]; then
        grep -E '^pgenrich_quota' "$IT_TMP/scrape.prom" >"$IT_TMP/quota.prom" || true
        log "scraped mid-run: $(tr '\n' ' ' <"$IT_TMP/quota.prom")"
        assert_eq "pgenrich_quota_limit" "$QN" \
            "$(sed -n 's/^pgenrich_quota_limit{provider="primary"} //p' "$IT_TMP/quota.prom")"
        rem=$(sed -n 's/^pgenrich_quota_remaining{provider="primary"} \([0-9]*\).*/\1/p' \
            "$IT_TMP/quota.prom")
        if [ -z "$rem" ] || [ "$rem" -gt "$QN" ]; then
            fail "pgenrich_quota_remaining: '$rem'"
        fi
        grep -qE '^pgenrich_quota_rate_requests_per_second\{provider="primary"\} [0-9.e+]+$' \
            "$IT_TMP/quota.prom" || fail "no pgenrich_quota_rate_requests_per_second sample"
    fi
    expect_done "the $form run"
    check_against_expected "quota_$label"
    assert_stderr_has "$label" "event=quota_announced" "form=$([ "$form" = ietf ] &&
        echo RateLimit || echo X-RateLimit)" "limit=$QN"
    awk -v v="$share" -v m="$MAX_429" 'BEGIN { exit !(v <= m) }' ||
        fail "$form: $share % of the requests drew a 429 (at most $MAX_429 %)"
    awk -v v="$rate" -v m="$MIN_RATE" 'BEGIN { exit !(v >= m) }' ||
        fail "$form: $rate % of the quota's rate (at least $MIN_RATE %)"
    stop_mock_pid "$MOCK_PID"
done

# --- 2. --quota-headers off: the announcements are ignored, the quota is met head-on -----------
start_mock --latency-ms 50 --quota 300/2
sql -c "CREATE TABLE off_source AS SELECT id FROM master_table WHERE id <= 600"
run_pgenrich off run --dsn "$IT_DSN" --job quota_off --base-url "$MOCK_URL" --concurrency 64 \
    --source-table off_source --target-table off_target --failures-table off_failures \
    --max-attempts 30 --quota-headers off
expect_done "the run with --quota-headers off"
limited=$(mock_stat rate_limited)
log "off: $(mock_stat requests) requests, $limited drew a 429"
[ "$limited" -gt 0 ] || fail "--quota-headers off: no 429 at concurrency 64 against 300 per 2 s"
if grep -q "event=quota_announced" "$IT_TMP/off.err"; then
    fail "--quota-headers off: the quota was paced ($(grep -m1 event=quota_announced "$IT_TMP/off.err"))"
fi
assert_eq "IDs settled with --quota-headers off" 600 \
    "$(q "SELECT (SELECT count(*) FROM off_target) + (SELECT count(*) FROM off_failures
          WHERE job = 'quota_off')")"
run_pgenrich bad run --dsn "$IT_DSN" --job quota_bad --base-url "$MOCK_URL" --quota-headers maybe
expect_rc 2 "--quota-headers maybe"
assert_stderr_has bad "--quota-headers must be on or off"

# --- 3. a quota spent until a reset past --retry-after-max: stop, resumable, before any 429 ----
stop_mock_pid "$MOCK_PID"
start_mock --quota 3/600
# Not in the last seconds of a window (then the reset would be near enough to wait for).
left=$(awk -v t="$(date +%s)" 'BEGIN { print 600 - t % 600 }')
[ "$left" -gt 15 ] || sleep "$((left + 1))"
run_pgenrich spent run --dsn "$IT_DSN" --job quota_spent --base-url "$MOCK_URL" --concurrency 2 \
    --source-table off_source --target-table spent_target --failures-table spent_failures \
    --retry-after-max 5
expect_rc 75 "a quota spent for longer than --retry-after-max"
assert_stderr_has spent "event=quota_announced" "event=provider_asks_wait"
assert_eq "429s of the run that stopped on its spent quota" 0 "$(mock_stat rate_limited)"
log "spent: stopped after $(mock_stat requests) requests: $(grep -m1 -o 'until=[^ ]*' \
    "$IT_TMP/spent.err")"

# --- 4. a batch provider: its calls are paced (one call, one request of the quota) -----------
stop_mock_pid "$MOCK_PID"
start_mock --latency-ms 20 --quota 10/1 --batch-sync
cat >"$IT_TMP/batch.ini" <<INI
[job]
job = quota_batch
concurrency = 8

[provider primary]
kind = batch
url = $MOCK_URL/api/v2/entities/batch
max_batch = 100
INI
sql -c "CREATE TABLE batch_source AS SELECT id FROM master_table WHERE id <= 4000"
run_pgenrich batch run --config "$IT_TMP/batch.ini" --dsn "$IT_DSN" --source-table batch_source \
    --target-table batch_target --failures-table batch_failures
expect_done "the batch run"
log "batch: $(mock_stat requests) requests ($(mock_stat batch) batches), $(mock_stat rate_limited)" \
    "drew a 429, $(summary batch elapsed_s) s"
assert_eq "IDs settled by the batch run" 4000 \
    "$(q "SELECT (SELECT count(*) FROM batch_target) + (SELECT count(*) FROM batch_failures
          WHERE job = 'quota_batch')")"
assert_stderr_has batch "event=quota_announced"
assert_le "429s of the batch run" "$(mock_stat rate_limited)" 1
