#!/usr/bin/env bash
# test_connect: connection errors end a run with their cause instead of a silent wait. A
# host that does not resolve (.invalid) stops the run within 10 s, exit 2, naming the host;
# a URL that does not parse is refused before anything connects; a proxy whose scheme
# libcurl does not speak (--proxy or http_proxy) stops at the first request, exit 2. A port
# where nothing listens is a bounded wait: the breaker's pause line says error="connection
# refused" and the host, and after --provider-down-timeout 3 the run stops resumable (exit
# 75) with the ledger and the checkpoint untouched; a refused proxy port is named as the
# proxy's. A provider that goes down mid-run stops the same way, the bound counted from its
# last answer, with no attempts_exhausted in the ledger (an outage spends no attempts), and
# a rerun ends exact; one that comes back 2 s after it went down (the breaker paused it on
# the refused connections at once) lets the run go on to an exact end with no
# attempts_exhausted. A real forward proxy on loopback (tinyproxy): with --proxy, and with
# http_proxy in the environment, every request and the token go through it; no_proxy
# bypasses it; with https_proxy an https:// provider goes through its CONNECT tunnels, and
# no_proxy bypasses that too. The proxied runs load exactly the expected rows. A chain whose
# first provider is down: the fallback loads what fails over to it, the bound still stops
# the run (75), and a rerun with the first provider back leaves every ID in one place.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=200
seed_bigint "$N"
load_expected bigint
common=(--dsn "$IT_DSN" --concurrency 16 --max-attempts 3 --backoff-base 0.01 --backoff-cap 0.05)

fresh() {
    sql -c "DROP TABLE IF EXISTS standardized_locations, enrich_failures, enrich_checkpoints,
            enrich_runs" >/dev/null
}

untouched() {
    local label=$1
    assert_eq "$label: rows" 0 "$(q "SELECT count(*) FROM standardized_locations")"
    assert_eq "$label: ledger" 0 "$(q "SELECT count(*) FROM enrich_failures")"
    assert_eq "$label: checkpoint" "" "$(q "SELECT position FROM enrich_checkpoints")"
}

# exhausted_of JOB: how many of JOB's IDs the ledger holds as attempts_exhausted.
exhausted_of() {
    q "SELECT count(*) FROM enrich_failures WHERE job = '$1' AND reason = 'attempts_exhausted'"
}

# only_expected_failures JOB: every ledger entry of JOB is an outcome the mock gives its ID.
only_expected_failures() {
    assert_none "$1: ledger entries that are not the mock's own answers" \
        "SELECT id, reason FROM enrich_failures WHERE job = '$1'
         EXCEPT SELECT id, outcome FROM expected WHERE outcome <> 'found'"
}

# ---- a host that does not resolve
fresh
t0=$SECONDS
run_pgenrich no_host run --job c_nohost --base-url "http://no-such-host.invalid" "${common[@]}"
assert_le "unresolvable host: seconds to stop" $((SECONDS - t0)) 10
expect_rc 2 "unresolvable host"
assert_stderr_has no_host "event=provider_config_error" "host=no-such-host.invalid" \
    "the host name does not resolve" "check the host in url = of [provider primary]"
untouched no_host

# ---- a URL that does not parse: refused at start
run_pgenrich bad_url run --job c_badurl --base-url "http://127.0.0.1:99999" "${common[@]}"
expect_rc 2 "a malformed URL"
assert_stderr_has bad_url "provider primary: the URL is malformed"

# ---- a proxy whose scheme libcurl does not speak (it says so as a refused connection):
# a configuration error at the first request, from --proxy and from the environment alike
start_mock
for how in flag env; do
    fresh
    t0=$SECONDS
    if [ "$how" = flag ]; then
        run_pgenrich proxy_scheme_$how run --job c_pscheme --base-url "$MOCK_URL" \
            --proxy "socks9://127.0.0.1:1" "${common[@]}"
    else
        http_proxy="ftp://127.0.0.1:1" run_pgenrich proxy_scheme_$how run --job c_pscheme \
            --base-url "$MOCK_URL" "${common[@]}"
    fi
    assert_le "proxy scheme ($how): seconds to stop" $((SECONDS - t0)) 10
    expect_rc 2 "a proxy with an unsupported scheme ($how)"
    assert_stderr_has proxy_scheme_$how "event=provider_config_error" \
        "the proxy's protocol is not supported" "Unsupported proxy scheme" \
        "must start with http://, https://, socks4://"
    untouched proxy_scheme_$how
done
stop_mock_pid "$MOCK_PID"

# ---- a refused port: bounded wait
start_mock
DEAD_URL=$MOCK_URL
stop_mock_pid "$MOCK_PID"
fresh
t0=$SECONDS
run_pgenrich refused run --job c_refused --base-url "$DEAD_URL" --provider-down-timeout 3 \
    "${common[@]}"
took=$((SECONDS - t0))
expect_rc 75 "a refused port past --provider-down-timeout"
assert_le "refused port: seconds to stop" "$took" 15
assert_stderr_has refused "event=provider_paused" 'error="connection refused"' "host=127.0.0.1" \
    "event=provider_down" "down_timeout_s=3" "event=resumable"
untouched refused
log "refused port: exit 75 after ${took} s"

# A refused proxy port: the lines name the proxy (host:port, never its credentials) and the
# hint points at it, not at the provider's host.
start_mock
for how in flag env; do
    fresh
    if [ "$how" = flag ]; then
        run_pgenrich proxy_refused_$how run --job c_prefused --base-url "$MOCK_URL" \
            --proxy "http://user:pw@${DEAD_URL#http://}" --provider-down-timeout 1 "${common[@]}"
        from="(--proxy)"
    else
        http_proxy=$DEAD_URL run_pgenrich proxy_refused_$how run --job c_prefused \
            --base-url "$MOCK_URL" --provider-down-timeout 1 "${common[@]}"
        from="(http_proxy)"
    fi
    expect_rc 75 "a refused proxy port ($how)"
    assert_stderr_has proxy_refused_$how "event=provider_paused" "proxy=${DEAD_URL#http://} " \
        "check that the proxy at ${DEAD_URL#http://} runs and takes connections $from" \
        "event=provider_down"
    ! grep -q "pw@" "$IT_TMP/proxy_refused_$how.err" || fail "the proxy's password was logged"
    untouched proxy_refused_$how
done
log "refused proxy port: the pause and the stop name the proxy"
stop_mock_pid "$MOCK_PID"

# ---- a provider that answers, then goes down mid-run: the same bound, counted from its last
# answer (not from the start of the run: the outage begins after the bound has passed once)
start_mock
fresh
start_pgenrich midrun run --job c_midrun --base-url "$MOCK_URL" --rate 40 \
    --provider-down-timeout 2 "${common[@]}"
# rows_now: rows loaded so far (0 before the run has made the table).
rows_now() { q "SELECT count(*) FROM standardized_locations" 2>/dev/null || echo 0; }
# wait_rows LABEL: up to 10 s for 100 rows; sets rows_before.
wait_rows() {
    for _ in $(seq 1 100); do
        [ "$(rows_now)" -lt 100 ] || break
        sleep 0.1
    done
    rows_before=$(rows_now)
    [ "$rows_before" -ge 100 ] || fail "$1: only $rows_before rows before the outage"
}
wait_rows mid-run
stop_mock_pid "$MOCK_PID"
down_at=$(date +%s%N)
wait_pgenrich 30
down_ms=$((($(date +%s%N) - down_at) / 1000000))
expect_rc 75 "a provider down mid-run past --provider-down-timeout"
[ "$down_ms" -ge 1500 ] || fail "mid-run: stopped ${down_ms} ms after the outage, before the bound"
assert_le "mid-run: ms from the outage to the stop" "$down_ms" 6000
assert_stderr_has midrun "event=provider_down" "answered=true" 'error="connection refused"' \
    "down_timeout_s=2" "event=resumable"
[ -n "$(checkpoint_of c_midrun)" ] || fail "mid-run: no checkpoint after the committed rows"
# The outage spent no attempts: the ledger holds the mock's own answers (its unknown IDs),
# never an ID that ran out of attempts against a provider that was down.
exhausted=$(exhausted_of c_midrun)
log "provider down mid-run: exit 75 ${down_ms} ms after the outage, $rows_before rows before" \
    "it, $exhausted attempts_exhausted in the ledger"
assert_eq "mid-run: attempts_exhausted entries from the outage" 0 "$exhausted"
only_expected_failures c_midrun
start_mock
run_pgenrich midrun_back run --job c_midrun --base-url "$MOCK_URL" "${common[@]}"
expect_done "the rerun with the provider back"
check_against_expected c_midrun
stop_mock_pid "$MOCK_PID"

# ---- a provider that goes down mid-run and comes back within the bound: after N refused
# connections in a row the breaker pauses it at once (the answers in the window before the
# outage do not hold it open), the IDs caught by the outage wait without spending attempts,
# and the run goes on once it is back and ends exact.
start_mock
fresh
start_pgenrich blip run --job c_blip --base-url "$MOCK_URL" --rate 40 \
    --provider-down-timeout 20 "${common[@]}"
wait_rows blip
BLIP_PORT=${MOCK_URL##*:}
stop_mock_pid "$MOCK_PID"
sleep 2
start_mock --port "$BLIP_PORT"
[ "${MOCK_URL##*:}" = "$BLIP_PORT" ] || fail "blip: the mock came back on another port"
wait_pgenrich 60
expect_done "a provider back 2 s after it went down mid-run"
assert_stderr_has blip "event=provider_paused" 'error="connection refused"' \
    "event=provider_resumed"
exhausted=$(exhausted_of c_blip)
log "provider back after 2 s: exit $RC, $rows_before rows before the outage, $exhausted" \
    "attempts_exhausted in the ledger"
assert_eq "blip: attempts_exhausted entries from the outage" 0 "$exhausted"
check_against_expected c_blip
stop_mock_pid "$MOCK_PID"

# ---- a chain whose first provider is down while the fallback answers: the IDs that failed
# over are loaded by the fallback, the run still stops resumable after the bound (fresh IDs
# only start at the first provider), and a rerun with the first provider back ends exact.
start_mock
cat >"$IT_TMP/chain.ini" <<EOF
[job]
job = c_chain
$(chain_providers "$DEAD_URL" "$MOCK_URL")
EOF
fresh
t0=$SECONDS
run_pgenrich chain_down run --config "$IT_TMP/chain.ini" --provider-down-timeout 3 "${common[@]}"
took=$((SECONDS - t0))
expect_rc 75 "a chain whose primary is down past --provider-down-timeout"
assert_le "chain with its primary down: seconds to stop" "$took" 15
assert_stderr_has chain_down "event=provider_down" "event=resumable"
by_fallback=$(q "SELECT count(*) FROM standardized_locations WHERE provider = 'secondary'")
assert_eq "rows not from the fallback" 0 \
    "$(q "SELECT count(*) FROM standardized_locations WHERE provider <> 'secondary'")"
# Failures recorded are the fallback's own answers (a miss, a 404), never "the primary was down"
# alone.
assert_none "ledger entries without the fallback's answer" \
    "SELECT id, last_error FROM enrich_failures WHERE job = 'c_chain' AND last_error NOT LIKE '%secondary: %'"
log "chain with its primary down: exit 75 after ${took} s, $by_fallback rows from the fallback"
cat >"$IT_TMP/chain.ini" <<EOF
[job]
job = c_chain
$(chain_providers "$MOCK_URL")
EOF
run_pgenrich chain_back run --config "$IT_TMP/chain.ini" "${common[@]}"
expect_rc 5 "the rerun with the primary back (done; the mock's unknown IDs in the ledger)"
check_one_place c_chain standardized_locations enrich_failures master_table id
stop_mock_pid "$MOCK_PID"

# ---- a forward proxy
command -v tinyproxy >/dev/null || fail "tinyproxy is not installed (scripts/deps)"
HDR_LOG="$IT_TMP/mock.headers"
TOKEN="tok-$$-$RANDOM"
start_mock --token "$TOKEN" --header-log "$HDR_LOG"
MOCK_PORT=${MOCK_URL##*:}
PROXY_LOG="$IT_TMP/tinyproxy.log"
PROXY_PID_FILE="$IT_TMP/tinyproxy.pid"
PROXY_PID=""
# stop_proxy: tinyproxy by the PID it wrote, then its timeout wrapper.
stop_proxy() {
    local pid
    [ -n "$PROXY_PID" ] || return 0
    for pid in $(cat "$PROXY_PID_FILE" 2>/dev/null) "$PROXY_PID"; do
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -f "$PROXY_PID_FILE"
}
IT_AT_EXIT+=("stop_proxy")
for _ in 1 2 3 4 5; do
    PROXY_PORT=$((10000 + RANDOM % 20000))
    cat >"$IT_TMP/tinyproxy.conf" <<EOF
Port $PROXY_PORT
Listen 127.0.0.1
Timeout 60
MaxClients 200
LogFile "$PROXY_LOG"
LogLevel Info
PidFile "$PROXY_PID_FILE"
Allow 127.0.0.1
ViaProxyName "pgenrich-test-proxy"
EOF
    : >"$PROXY_LOG"
    timeout -k 5 "$IT_MOCK_LIFE" tinyproxy -d -c "$IT_TMP/tinyproxy.conf" \
        >>"$IT_TMP/tinyproxy.out" 2>&1 &
    PROXY_PID=$!
    ok=""
    for _ in $(seq 1 30); do
        if curl -fsS --max-time 2 -x "http://127.0.0.1:$PROXY_PORT" "$MOCK_URL/__stats" \
            >/dev/null 2>&1; then
            ok=1
            break
        fi
        kill -0 "$PROXY_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$ok" ] && break
    stop_proxy
    PROXY_PID=""
done
[ -n "$PROXY_PID" ] || fail "tinyproxy did not start: $(tail -n 5 "$IT_TMP/tinyproxy.out")"
PROXY="http://127.0.0.1:$PROXY_PORT"
log "tinyproxy at $PROXY"

# proxied_requests: how many requests for the mock's API the proxy has forwarded.
proxied_requests() {
    grep -c "Request (file descriptor [0-9]*): GET http://127.0.0.1:$MOCK_PORT/api/" \
        "$PROXY_LOG" || true
}

# proxied_run LABEL JOB [ENV...] -- [FLAGS...]: a fresh run with the token; exact rows.
proxied_run() {
    local label=$1 job=$2
    shift 2
    local envs=()
    while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    shift
    fresh
    : >"$HDR_LOG"
    LAST_RUN=$label
    LAST_ARGS=(run --job "$job" --base-url "$MOCK_URL" "${common[@]}" "$@")
    RC=0
    env "${envs[@]}" PGENRICH_TOKEN="$TOKEN" timeout -k 5 "$IT_RUN_TIMEOUT" "$PGENRICH_BIN" \
        "${LAST_ARGS[@]}" >"$IT_TMP/$label.out" 2>"$IT_TMP/$label.err" || RC=$?
    expect_done "$label"
    check_against_expected "$job"
    # every request reached the mock with the token
    local n_req n_tok
    n_req=$(wc -l <"$HDR_LOG")
    n_tok=$(grep -cF "Bearer $TOKEN" "$HDR_LOG" || true)
    assert_eq "$label: requests with the token at the mock" "$n_req" "$n_tok"
    [ "$n_req" -ge "$N" ] || fail "$label: the mock saw only $n_req requests"
}

before=$(proxied_requests)
proxied_run via_flag c_proxy_flag -- --proxy "$PROXY"
through=$(($(proxied_requests) - before))
assert_eq "--proxy: requests through the proxy" "$(wc -l <"$HDR_LOG")" "$through"
log "--proxy: $through requests through tinyproxy, each with the token"

before=$(proxied_requests)
proxied_run via_env c_proxy_env "http_proxy=$PROXY" --
through=$(($(proxied_requests) - before))
assert_eq "http_proxy: requests through the proxy" "$(wc -l <"$HDR_LOG")" "$through"

before=$(proxied_requests)
proxied_run no_proxy c_noproxy "http_proxy=$PROXY" "no_proxy=127.0.0.1" --
assert_eq "no_proxy: requests through the proxy" 0 $(($(proxied_requests) - before))

before=$(proxied_requests)
proxied_run proxy_none c_proxy_none "http_proxy=$PROXY" -- --proxy none
assert_eq "--proxy none: requests through the proxy" 0 $(($(proxied_requests) - before))
log "http_proxy honoured; no_proxy and --proxy none bypass the proxy"

# https_proxy: an https:// provider goes through the proxy's CONNECT tunnel (the token inside
# it), and no_proxy bypasses that too. A self-signed certificate for localhost is its own CA.
command -v openssl >/dev/null || fail "openssl is not installed (scripts/deps)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$IT_TMP/srv.key" -out "$IT_TMP/srv.pem" \
    -days 2 -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" \
    >"$IT_TMP/openssl.log" 2>&1 || fail "openssl: $(tail -n 2 "$IT_TMP/openssl.log")"
start_mock --token "$TOKEN" --header-log "$HDR_LOG" --tls-cert "$IT_TMP/srv.pem" \
    --tls-key "$IT_TMP/srv.key"
TLS_PORT=${MOCK_URL##*:}
MOCK_URL="https://localhost:$TLS_PORT"
# tunnels: how many CONNECTs to the HTTPS mock the proxy has made.
tunnels() { grep -c "CONNECT localhost:$TLS_PORT " "$PROXY_LOG" || true; }
before=$(tunnels)
proxied_run via_https_env c_proxy_https "https_proxy=$PROXY" -- --cacert "$IT_TMP/srv.pem"
through=$(($(tunnels) - before))
[ "$through" -ge 1 ] || fail "https_proxy: no CONNECT to localhost:$TLS_PORT in the proxy's log"
before=$(tunnels)
proxied_run https_no_proxy c_https_noproxy "https_proxy=$PROXY" "no_proxy=localhost" -- \
    --cacert "$IT_TMP/srv.pem"
assert_eq "no_proxy: CONNECTs through the proxy" 0 $(($(tunnels) - before))
log "https_proxy honoured ($through CONNECT tunnels), no_proxy bypasses it"
assert_no_secret "$TOKEN"
