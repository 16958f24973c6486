#!/usr/bin/env bash
# test_metrics: --metrics-listen. A job against a slow, faulty, rate-limited mock is scraped
# mid-run: every documented series is there, the text passes `promtool check metrics`, the
# endpoint answers 404/405 as documented; a real Prometheus scrapes the job and its query
# API returns a pgenrich series; a bad or busy listen address is a configuration error (2).
# The job still ends exact.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v promtool >/dev/null || fail "promtool is not installed (scripts/deps: prometheus)"
command -v prometheus >/dev/null || fail "prometheus is not installed (scripts/deps)"

N=3000
seed_bigint "$N"
load_expected bigint
run_pgenrich init init --dsn "$IT_DSN"
expect_rc 0 "pgenrich init"

# --- 1. bad addresses: configuration errors before the database is touched -----------------
for bad in "127.0.0.1" "127.0.0.1:99999" "::1:9187" "[::1:9187" ":9187"; do
    run_pgenrich "bad_listen" run --dsn "$IT_DSN" --job badlisten --base-url http://127.0.0.1:9 \
        --metrics-listen "$bad"
    expect_rc 2 "--metrics-listen $bad"
    assert_stderr_has bad_listen "--metrics-listen"
done

# --- 2. a job that lasts: --rate 150 against a mock that allows 120/s (429s), 5xx, latency ---
start_mock --threads 8 --seed 11 --latency-ms 20 --p-5xx 0.05 --rate-limit 120
start_pgenrich job run --dsn "$IT_DSN" --job metrics --base-url "$MOCK_URL" --concurrency 8 \
    --rate 150 --max-attempts 20 --backoff-base 0.05 --backoff-cap 1 --flush-interval 0.5 \
    --metrics-listen 127.0.0.1:0
ADDR=""
for _ in $(seq 1 100); do
    if [ -f "$IT_TMP/job.err" ]; then
        ADDR=$(sed -n 's/.*event=metrics_listen addr=\([^ ]*\).*/\1/p' "$IT_TMP/job.err" | head -n 1)
        [ -n "$ADDR" ] && break
    fi
    kill -0 "$PGENRICH_PID" 2>/dev/null || fail "the job ended before it listened"
    sleep 0.1
done
[ -n "$ADDR" ] || fail "no event=metrics_listen within 10 s"
log "metrics at http://$ADDR/metrics"

# The same address again, while the job holds it: in use, a configuration error.
run_pgenrich busy_listen run --dsn "$IT_DSN" --job busy --base-url "$MOCK_URL" \
    --metrics-listen "$ADDR"
expect_rc 2 "--metrics-listen on an address in use"
assert_stderr_has busy_listen "Address already in use"
LAST_RUN=job

# scrape [LABEL]: GET /metrics into $IT_TMP/LABEL.prom (headers in LABEL.headers).
scrape() {
    local label=${1:-scrape}
    curl -fsS --max-time 5 -D "$IT_TMP/$label.headers" -o "$IT_TMP/$label.prom" \
        "http://$ADDR/metrics" || fail "GET http://$ADDR/metrics failed"
}
# value LABEL SERIES: the sample value of the exact series (name and labels) in a scrape.
value() {
    awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print "" }' \
        "$IT_TMP/$1.prom"
}

# Scrape until the job has committed a flush with a checkpoint and met a 429 (bounded).
ok=false
for _ in $(seq 1 60); do
    scrape
    if [ -n "$(value scrape pgenrich_checkpoint_position)" ] &&
        [ "$(value scrape 'pgenrich_rate_limited_total{provider="primary"}')" != 0 ]; then
        ok=true
        break
    fi
    kill -0 "$PGENRICH_PID" 2>/dev/null || fail "the job ended before the scrapes were done"
    sleep 0.5
done
$ok || fail "no checkpoint position or no 429 in the metrics within 30 s"
grep -qi '^Content-Type: text/plain; version=0.0.4; charset=utf-8' "$IT_TMP/scrape.headers" ||
    fail "wrong Content-Type: $(grep -i '^content-type' "$IT_TMP/scrape.headers")"
promtool check metrics <"$IT_TMP/scrape.prom" >"$IT_TMP/promtool.out" 2>&1 ||
    fail "promtool check metrics: $(cat "$IT_TMP/promtool.out")"
log "promtool check metrics: clean ($(wc -l <"$IT_TMP/scrape.prom") lines)"

for series in \
    pgenrich_build_info pgenrich_start_time_seconds pgenrich_requests_total \
    pgenrich_retries_total pgenrich_rate_limited_total pgenrich_rate_limit_requests_per_second \
    pgenrich_rate_requests_per_second pgenrich_in_flight_requests \
    pgenrich_request_duration_seconds pgenrich_ids_read_total pgenrich_rows_loaded_total \
    pgenrich_failures_total pgenrich_failures_kept_total pgenrich_checkpoint_position \
    pgenrich_flush_duration_seconds pgenrich_source_lag_seconds; do
    grep -q "^# TYPE $series " "$IT_TMP/scrape.prom" || fail "no series $series in the scrape"
done
assert_eq "rate limit gauge" 150 "$(value scrape pgenrich_rate_limit_requests_per_second)"
assert_eq "ids read" "$N" "$(value scrape pgenrich_ids_read_total)"
ok_requests=$(value scrape 'pgenrich_requests_total{provider="primary",outcome="ok"}')
[ "${ok_requests:-0}" -gt 0 ] || fail "no ok requests counted"
[ -n "$(value scrape 'pgenrich_requests_total{provider="primary",outcome="server_error"}')" ] ||
    fail "no server_error series"
inf=$(value scrape 'pgenrich_request_duration_seconds_bucket{provider="primary",le="+Inf"}')
count=$(value scrape 'pgenrich_request_duration_seconds_count{provider="primary"}')
assert_eq "the +Inf bucket holds every request" "$count" "$inf"
pos=$(value scrape pgenrich_checkpoint_position)
assert_le "checkpoint position within the keys" "${pos%.*}" "$N"
[ "$(value scrape pgenrich_flush_duration_seconds_count)" -gt 0 ] || fail "no flush counted"

# Counters only grow from one scrape to the next.
scrape later
for s in 'pgenrich_requests_total{provider="primary",outcome="ok"}' \
    'pgenrich_retries_total{provider="primary"}' pgenrich_rows_loaded_total; do
    assert_le "$s does not go down" "$(value scrape "$s")" "$(value later "$s")"
done

# Other paths and methods.
code() { curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$@"; }
assert_eq "GET /" 200 "$(code "http://$ADDR/")"
assert_eq "GET /nope" 404 "$(code "http://$ADDR/nope")"
assert_eq "POST /metrics" 405 "$(code -X POST "http://$ADDR/metrics")"
assert_eq "HEAD /metrics" 200 "$(code -I "http://$ADDR/metrics")"

# --- 3. a real Prometheus scrapes the job --------------------------------------------------
# A port below the kernel's ephemeral range (where the outgoing connections of the tests
# running beside this one take theirs), and another one if Prometheus still finds it taken.
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((10000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            printf '%s\n' "$p"
            return
        fi
    done
    fail "no free port found"
}
cat >"$IT_TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: pgenrich
    static_configs:
      - targets: ['$ADDR']
EOF
ready=false
for _ in 1 2 3 4 5; do
    PROM_PORT=$(free_port)
    timeout -k 5 120 prometheus --config.file="$IT_TMP/prometheus.yml" \
        --storage.tsdb.path="$IT_TMP/prometheus-data" --web.listen-address="127.0.0.1:$PROM_PORT" \
        >"$IT_TMP/prometheus.log" 2>&1 &
    PROM_PID=$!
    BG_PIDS+=("$PROM_PID")
    for _ in $(seq 1 100); do
        kill -0 "$PROM_PID" 2>/dev/null || break
        if curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$PROM_PORT/-/ready" 2>/dev/null; then
            ready=true
            break
        fi
        sleep 0.1
    done
    $ready && break
    kill -KILL "$PROM_PID" 2>/dev/null || true
    wait "$PROM_PID" 2>/dev/null || true
    grep -q "address already in use" "$IT_TMP/prometheus.log" ||
        fail "prometheus did not get ready: $(tail -n 5 "$IT_TMP/prometheus.log")"
    log "port $PROM_PORT was taken; trying another"
done
$ready || fail "prometheus found no free port in 5 tries"
log "prometheus on 127.0.0.1:$PROM_PORT (pid $PROM_PID)"
query="http://127.0.0.1:$PROM_PORT/api/v1/query?query=pgenrich_requests_total"
found=false
for _ in $(seq 1 60); do
    kill -0 "$PROM_PID" 2>/dev/null || fail "prometheus exited: $(tail -n 5 "$IT_TMP/prometheus.log")"
    if curl -fsS --max-time 3 -o "$IT_TMP/query.json" "$query" 2>/dev/null &&
        grep -q '"__name__":"pgenrich_requests_total"' "$IT_TMP/query.json"; then
        found=true
        break
    fi
    kill -0 "$PGENRICH_PID" 2>/dev/null || fail "the job ended before Prometheus scraped it"
    sleep 0.5
done
$found || fail "Prometheus returned no pgenrich_requests_total within 30 s: $(cat "$IT_TMP/query.json" 2>/dev/null)"
grep -q '"status":"success"' "$IT_TMP/query.json" || fail "query failed: $(cat "$IT_TMP/query.json")"
grep -q '"job":"pgenrich"' "$IT_TMP/query.json" || fail "no job label: $(cat "$IT_TMP/query.json")"
up=$(curl -fsS --max-time 3 "http://127.0.0.1:$PROM_PORT/api/v1/query?query=up" || true)
grep -q '"value":\[[0-9.]*,"1"\]' <<<"$up" || fail "the target is not up: $up"
log "prometheus: $(grep -o '"result":\[[^]]*' "$IT_TMP/query.json" | head -c 200)"
kill -TERM "$PROM_PID" 2>/dev/null
for _ in $(seq 1 100); do
    kill -0 "$PROM_PID" 2>/dev/null || break
    sleep 0.1
done
kill -KILL "$PROM_PID" 2>/dev/null || true
wait "$PROM_PID" 2>/dev/null || true

# --- 4. the job ends as it would without metrics --------------------------------------------
wait_pgenrich 150
expect_rc 5 "the metered job (done; the mock's unknown IDs in the ledger)"
check_summary_shape job
check_against_expected metrics
