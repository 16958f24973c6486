#!/usr/bin/env bash
# test_secrets: a token stays with the provider it is meant for. A chain of two mocks: the
# primary demands token A and is down for a third of the IDs (so the secondary gets work);
# the secondary logs the Authorization header of every request. By default the secondary
# gets no Authorization at all; token_env and token_file give it exactly its own token;
# token = inherit gives it A. A token with a line break is refused at start-up (exit 2, no
# request made). A token bound for http:// on a non-loopback host draws a warning; for
# 127.0.0.1 none. While a token is held, core dumps are off. Every run loads every ID.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=600
QUIRKS=(--primary-down-mod 3)
TOKEN_A="tokA-$$-$RANDOM-primary"
TOKEN_B="tokB-$$-$RANDOM-second"
cols="label, geo_label, street_address, city_label, postal_code, country_label, latitude, longitude"
seed_bigint "$N"
load_expected_as expected bigint "SELECT id FROM master_table" "${QUIRKS[@]}"
found=$(q "SELECT count(*) FROM expected WHERE outcome = 'found'")
failed=$(q "SELECT count(*) FROM expected WHERE outcome <> 'found'")
log "expected: found=$found failures=$failed"

start_mock --token "$TOKEN_A" "${QUIRKS[@]}"
PRIMARY_URL=$MOCK_URL
PRIMARY_PID=$MOCK_PID
SECOND_LOG="$IT_TMP/second.headers"
start_mock --header-log "$SECOND_LOG"
SECOND_URL=$MOCK_URL

# job_file NAME [SECONDARY KEY LINE]: a two-provider chain; prints its path.
job_file() {
    local f="$IT_TMP/$1.ini"
    cat >"$f" <<EOF
[job]
job = $1
concurrency = 32
max-attempts = 2
backoff-base = 0.01
backoff-cap = 0.02
page-size = 200

$(chain_providers "$PRIMARY_URL" "$SECOND_URL")
${2:-}
EOF
    printf '%s\n' "$f"
}

# run_chain NAME [SECONDARY KEY LINE]: a fresh run of the chain, PGENRICH_TOKEN=A; every ID
# loaded or recorded as expected; no token_over_http warning (both mocks are on 127.0.0.1).
run_chain() {
    local name=$1 f
    f=$(job_file "$name" "${2:-}")
    sql -c "DROP TABLE IF EXISTS standardized_locations, enrich_failures, enrich_checkpoints" \
        >/dev/null
    : >"$SECOND_LOG"
    PGENRICH_TOKEN=$TOKEN_A run_pgenrich "$name" run --config "$f" --dsn "$IT_DSN"
    expect_done "chain run $name"
    check_summary_shape "$name"
    assert_eq "$name: rows loaded" "$found" "$(q "SELECT count(*) FROM standardized_locations")"
    assert_eq "$name: failures recorded" "$failed" \
        "$(q "SELECT count(*) FROM enrich_failures WHERE job = '$name'")"
    check_one_place "$name" standardized_locations enrich_failures master_table id
    assert_none "$name: loaded rows that differ from the expected values" \
        "SELECT id, $cols FROM standardized_locations
         EXCEPT SELECT id, $cols FROM expected WHERE outcome = 'found'"
    local by_second
    by_second=$(q "SELECT count(*) FROM standardized_locations WHERE provider = 'secondary'")
    [ "$by_second" -gt 50 ] || fail "$name: only $by_second rows came from the secondary"
    [ "$(wc -l <"$SECOND_LOG")" -gt 50 ] ||
        fail "$name: the secondary logged only $(wc -l <"$SECOND_LOG") requests"
    if grep -q 'token_over_http' "$IT_TMP/$name.err"; then
        LAST_RUN=$name fail "$name: a token_over_http warning for a 127.0.0.1 provider"
    fi
    log "$name: rows=$found (secondary $by_second), secondary requests=$(wc -l <"$SECOND_LOG")"
}

# second_auth: the distinct Authorization values the secondary received, one a line.
second_auth() {
    cut -f 2- "$SECOND_LOG" | sort -u
}

# --- 1. default: the global token goes to the first provider only ---------------------------
run_chain default
assert_eq "default: Authorization values at the secondary" "-" "$(second_auth)"
if grep -qF -- "$TOKEN_A" "$SECOND_LOG"; then
    fail "default: token A reached the secondary"
fi

# --- 2. token_env: the secondary gets exactly its own token ----------------------------------
SECOND_TOKEN=$TOKEN_B
export SECOND_TOKEN
run_chain own_env "token_env = SECOND_TOKEN"
assert_eq "token_env: Authorization values at the secondary" "Bearer $TOKEN_B" "$(second_auth)"
if grep -qF -- "$TOKEN_A" "$SECOND_LOG"; then
    fail "token_env: token A reached the secondary"
fi

# ... and token_file: its own token, the file's line end cut
TOKEN_C="tokC-$$-$RANDOM-file"
printf '%s\r\n' "$TOKEN_C" >"$IT_TMP/second.token"
chmod 600 "$IT_TMP/second.token"
run_chain own_file "token_file = $IT_TMP/second.token"
assert_eq "token_file: Authorization values at the secondary" "Bearer $TOKEN_C" "$(second_auth)"

# --- 3. token = inherit: the secondary gets the global token ---------------------------------
run_chain inherit "token = inherit"
assert_eq "token = inherit: Authorization values at the secondary" "Bearer $TOKEN_A" \
    "$(second_auth)"

# --- 4. a token with a line break is refused before anything is sent -----------------------
mock_reset_stats "$PRIMARY_URL"
mock_reset_stats "$SECOND_URL"
f=$(job_file bad_env "token_env = SECOND_TOKEN")
SECOND_TOKEN="$TOKEN_B"$'\n'"X-Injected: 1"
PGENRICH_TOKEN=$TOKEN_A run_pgenrich bad_env run --config "$f" --dsn "$IT_DSN"
expect_rc 2 "a token_env value with a line break"
assert_stderr_has bad_env "$f:" ": token_env: the token in environment variable SECOND_TOKEN" \
    "line break" "(in [provider secondary])"
assert_eq "requests at the primary after the refusal" 0 "$(mock_stat requests "$PRIMARY_URL")"
assert_eq "requests at the secondary after the refusal" 0 "$(mock_stat requests "$SECOND_URL")"
# the same for the global token, from the environment
f=$(job_file bad_global)
PGENRICH_TOKEN="$TOKEN_A"$'\r\n' run_pgenrich bad_global run --config "$f" --dsn "$IT_DSN"
expect_rc 2 "a PGENRICH_TOKEN with a line break"
assert_stderr_has bad_global "PGENRICH_TOKEN" "line break"
assert_eq "requests at the primary after the refusal" 0 "$(mock_stat requests "$PRIMARY_URL")"
assert_eq "checkpoints written by the refused runs" 0 \
    "$(q "SELECT count(*) FROM enrich_checkpoints WHERE job IN ('bad_env', 'bad_global')")"
export -n SECOND_TOKEN
unset SECOND_TOKEN

# --- 5. http:// to a host that is not loopback: one warning, the token not in it -----------
# TEST-NET-1 (RFC 5737) is never reached: the run stops at the database (a database that
# does not exist), after the tokens are read and before any request.
cat >"$IT_TMP/remote.ini" <<EOF
[job]
job = remote
[provider faraway]
url = http://192.0.2.1:9/api/v2/entities/{id}
[provider near]
url = http://localhost:9/v1/lookup?entity={id}
mapping = secondary
token = inherit
EOF
PGENRICH_TOKEN=$TOKEN_A run_pgenrich remote run --config "$IT_TMP/remote.ini" \
    --dsn "$(dsn_with_db "$PGENRICH_TEST_DSN" "${IT_DB}_missing")"
expect_rc 6 "the remote-provider run (no such database)"
assert_stderr_has remote "event=token_over_http provider=faraway host=192.0.2.1"
assert_eq "token_over_http warnings (faraway only: localhost is loopback)" 1 \
    "$(grep -c 'token_over_http' "$IT_TMP/remote.err")"

# --- 6. while a token is held, no core dumps -------------------------------------------------
stop_mock_pid "$PRIMARY_PID"
start_mock --token "$TOKEN_A" --latency-ms 100
PRIMARY_URL=$MOCK_URL
f=$(job_file core)
sql -c "DROP TABLE IF EXISTS standardized_locations, enrich_failures, enrich_checkpoints" >/dev/null
PGENRICH_TOKEN=$TOKEN_A start_pgenrich core run --config "$f" --dsn "$IT_DSN" --concurrency 4 \
    --where 'id <= 200'
for _ in $(seq 1 100); do
    [ "$(mock_stat requests "$PRIMARY_URL")" -gt 0 ] && break
    sleep 0.1
done
limits=$(grep -i '^Max core file size' "/proc/$PGENRICH_PID/limits" 2>/dev/null || true)
wait_pgenrich 60
expect_done "the run checked for core dumps"
[ -n "$limits" ] || fail "could not read /proc/$PGENRICH_PID/limits while pgenrich ran"
echo "$limits" | grep -qE 'size[[:space:]]+0[[:space:]]+0[[:space:]]' ||
    fail "core dumps still allowed while a token is held: $limits"
log "core dumps off while a token is held: $limits"

assert_no_secret "$TOKEN_A"
assert_no_secret "$TOKEN_B"
assert_no_secret "$TOKEN_C"
