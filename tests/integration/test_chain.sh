#!/usr/bin/env bash
# test_chain: providers as configuration (`pgenrich run --config FILE`). A chain of the
# primary (API.md section 1) and the secondary (section 3): IDs the primary fails (503) or
# misses are answered by the secondary, recorded with provider = 'secondary' and the right
# values; failures after the whole chain keep the first provider's reason. Flags override
# the file. A POST provider with JSON Pointer mappings. Bad job files exit 2 naming
# FILE:LINE and the key.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=3000
MAX_ATTEMPTS=3
QUIRKS=(--primary-down-mod 10 --primary-miss-mod 10)
cols="label, geo_label, street_address, city_label, postal_code, country_label, latitude, longitude"
seed_bigint "$N"
load_expected_as expected bigint "SELECT id FROM master_table" "${QUIRKS[@]}"
log "expected: $(q "SELECT string_agg(k || '=' || n, ' ' ORDER BY k) FROM (
    SELECT outcome || CASE WHEN quirks = '' THEN '' ELSE '/' || quirks END k, count(*) n
    FROM expected GROUP BY 1) s")"

# --- 1. primary + secondary ------------------------------------------------------------------
start_mock "${QUIRKS[@]}"
CHAIN="$IT_TMP/chain.ini"
cat >"$CHAIN" <<EOF
; test_chain: the primary first, the secondary when the primary fails or misses
[job]
job = chain
concurrency = 64
max-attempts = $MAX_ATTEMPTS
backoff-base = 0.01
backoff-cap = 0.05
page-size = 1000

$(chain_providers "$MOCK_URL")
EOF
run_pgenrich chain run --config "$CHAIN" --dsn "$IT_DSN" --quiet
expect_done "pgenrich run --config (primary + secondary)"
check_summary_shape chain
log "mock: $(mock_stats)"
log "pgenrich: $(grep -E '^(summary|failures):' "$IT_TMP/chain.out" | tr '\n' ' ')"

check_one_place chain standardized_locations enrich_failures master_table id
assert_none "loaded rows that differ from the expected values" \
    "SELECT id, $cols FROM standardized_locations
     EXCEPT SELECT id, $cols FROM expected WHERE outcome = 'found'"
assert_none "found IDs not loaded" \
    "SELECT id FROM expected WHERE outcome = 'found'
     EXCEPT SELECT id FROM standardized_locations"
# The provider that answered: the secondary exactly for the found IDs the primary failed
# (503, every attempt) or missed.
assert_none "rows with the wrong provider (expected: primary unless the primary was down or missed)" \
    "SELECT t.id, t.provider, e.quirks FROM standardized_locations t JOIN expected e USING (id)
     WHERE t.provider IS DISTINCT FROM
           CASE WHEN e.quirks ~ '(down|miss)' THEN 'secondary' ELSE 'primary' END"
by_secondary=$(q "SELECT count(*) FROM standardized_locations WHERE provider = 'secondary'")
[ "$by_secondary" -gt 100 ] || fail "only $by_secondary rows came from the secondary"
# Failures: the primary's own reason, or attempts_exhausted (503) when it was down; the
# secondary's miss after it does not replace the first provider's reason.
assert_none "failures with a reason other than the first provider's" \
    "SELECT f.id, f.reason, f.http_status, e.outcome, e.quirks
     FROM enrich_failures f JOIN expected e USING (id)
     WHERE (f.reason, f.http_status) IS DISTINCT FROM
           (CASE WHEN e.quirks ~ 'down' THEN 'attempts_exhausted' ELSE e.outcome END,
            CASE WHEN e.quirks ~ 'down' THEN 503
                 WHEN e.outcome = 'not_found' THEN 404 ELSE f.http_status END)"
assert_none "IDs that the secondary did not find and were not recorded" \
    "SELECT id FROM expected WHERE outcome <> 'found'
     EXCEPT SELECT id FROM enrich_failures WHERE job = 'chain'"
assert_none "chain failures after a down primary: attempts must add up over the chain" \
    "SELECT f.id, f.attempts FROM enrich_failures f JOIN expected e USING (id)
     WHERE e.quirks ~ 'down' AND f.attempts <> $MAX_ATTEMPTS + 1"
assert_none "chain failures after a down primary: last_error must mention both providers" \
    "SELECT f.id, f.last_error FROM enrich_failures f JOIN expected e USING (id)
     WHERE e.quirks ~ 'down'
       AND NOT (f.last_error LIKE '%primary%' AND f.last_error LIKE '%secondary%')"
down_ids=$(q "SELECT count(*) FROM expected WHERE quirks ~ 'down'")
assert_eq "503s the mock sent = down IDs x max-attempts" "$((down_ids * MAX_ATTEMPTS))" \
    "$(mock_stat forced_down)"
assert_eq "rows_loaded" "$(q "SELECT count(*) FROM expected WHERE outcome = 'found'")" \
    "$(summary chain rows_loaded)"
assert_eq "checkpoint of the job named in the file" "t|$N" \
    "$(q "SELECT finished, position FROM enrich_checkpoints WHERE job = 'chain'")"
stop_mock_pid "$MOCK_PID"

# --- 2. flags override the file -------------------------------------------------------------
# A slow mock shows the concurrency: the file says 64, the flag 4.
start_mock --latency-ms 40
sed -i "s|http://127.0.0.1:[0-9]*|$MOCK_URL|" "$CHAIN"
run_pgenrich flags run --config "$CHAIN" --dsn "$IT_DSN" --quiet --job chain_flags \
    --concurrency 4 --where 'id <= 300' --target-table flags_target
expect_done "pgenrich run --config with overriding flags"
inflight=$(mock_stat inflight_max)
log "--concurrency 4 over the file's 64: the mock saw at most $inflight requests at once"
assert_le "requests in flight with --concurrency 4 (the file says 64)" "$inflight" 4
assert_eq "rows of the overriding run go to --target-table" \
    "$(q "SELECT count(*) FROM expected WHERE outcome = 'found' AND id <= 300")" \
    "$(q "SELECT count(*) FROM flags_target")"
assert_eq "the overriding --job names the checkpoint" "t|300" \
    "$(q "SELECT finished, position FROM enrich_checkpoints WHERE job = 'chain_flags'")"
assert_none "flags_target rows that differ from the expected ones" \
    "SELECT id, $cols FROM flags_target EXCEPT SELECT id, $cols FROM expected"
mock_reset_stats
run_pgenrich fileconc run --config "$CHAIN" --dsn "$IT_DSN" --quiet --job chain_fileconc \
    --where 'id <= 600' --target-table fileconc_target
expect_done "pgenrich run --config (the file's concurrency)"
inflight=$(mock_stat inflight_max)
log "without the flag: the mock saw at most $inflight requests at once (file: 64)"
[ "$inflight" -gt 8 ] || fail "the file's concurrency = 64 did not apply: at most $inflight in flight"
assert_le "requests in flight with concurrency = 64 from the file" "$inflight" 64
stop_mock_pid "$MOCK_PID"

# --- 3. a POST provider mapped with JSON Pointers -------------------------------------------
# The batch endpoint of API.md section 2 with one ID per request: {"results":[ENTITY]}. The
# body template JSON-escapes the ID; text IDs with quotes and backslashes check that.
sql <<'EOF'
CREATE TABLE post_source (id text PRIMARY KEY);
INSERT INTO post_source SELECT 'Q' || g FROM generate_series(1, 800) g;
INSERT INTO post_source VALUES ('say "hi"'), ('back\slash'), ('tab	in'), ('{id}'), ('ünï/çødé'),
    ('a"},"x":{"'), ('</script>');
EOF
load_expected_as post_expected text "SELECT id FROM post_source"
start_mock --require-header 'X-Client: pgenrich-integration-test'
POST="$IT_TMP/post.ini"
cat >"$POST" <<EOF
[job]
job = chain_post
source-table = post_source
target-table = post_target
failures-table = post_failures
concurrency = 32

[provider batchy]
; the URL must hold {id} (docs/jobfile.md): the mock ignores the query of a batch POST
url = $MOCK_URL/api/v2/entities/batch?ref={id}
method = POST
body = {"ids": ["{id}"], "select": "id,label,location"}
header = Content-Type: application/json
header = X-Client: pgenrich-integration-test
mapping = primary
presence = /results/0/location
map.label = /results/0/label
map.geo_label = /results/0/location/geoLabel
map.street_address = /results/0/location/streetAddress
map.city_label = /results/0/location/cityLabel
map.postal_code = /results/0/location/postalCode
map.country_label = /results/0/location/countryLabel
map.latitude = /results/0/location/latitude
map.longitude = /results/0/location/longitude
EOF
run_pgenrich post run --config "$POST" --dsn "$IT_DSN" --quiet
expect_done "pgenrich run --config (POST provider with map.*)"
log "mock: $(mock_stats)"
assert_eq "every request went to the batch endpoint" "$(q "SELECT count(*) FROM post_source")" \
    "$(mock_stat batch)"
assert_eq "no request refused by the mock (header sent, body template escaping)" 0 \
    "$(mock_stat bad_request)"
check_one_place chain_post post_target post_failures post_source id
assert_none "POST provider: loaded rows that differ from the expected ones" \
    "SELECT id, $cols FROM post_target
     EXCEPT SELECT id, $cols FROM post_expected WHERE outcome = 'found'"
assert_none "POST provider: found IDs not loaded" \
    "SELECT id FROM post_expected WHERE outcome = 'found' EXCEPT SELECT id FROM post_target"
assert_none "POST provider: rows not recorded under the section name" \
    "SELECT id, provider FROM post_target WHERE provider IS DISTINCT FROM 'batchy'"
# A 404 inside a 200 batch answer has no location: a miss for this mapping.
assert_none "POST provider: misses and not-founds must be recorded as misses" \
    "SELECT f.id, f.reason FROM post_failures f JOIN post_expected e USING (id)
     WHERE e.outcome IN ('no_location', 'not_found') AND f.reason <> 'no_location'"
stop_mock_pid "$MOCK_PID"

# --- 4. bad job files: exit 2, FILE:LINE and the key ----------------------------------------
# bad_file NAME LINE KEY: run pgenrich on $IT_TMP/NAME.ini (written by the caller) and check.
bad_file() {
    local name=$1 line=$2 key=$3 f="$IT_TMP/$1.ini"
    run_pgenrich "bad_$name" run --config "$f" --dsn "$IT_DSN" --base-url http://127.0.0.1:9
    expect_rc 2 "bad job file $name"
    assert_stderr_has "bad_$name" "$f:$line" "$key"
}
printf '[job]\njob = x\ncolour = blue\n' >"$IT_TMP/unknown_key.ini"
bad_file unknown_key 3 colour
printf '[job]\nconcurrency = lots\n' >"$IT_TMP/bad_value.ini"
bad_file bad_value 2 concurrency
printf '[job]\njob = x\n\n[provider p]\nurl = http://127.0.0.1:9/{id}\nmethod = PUT\n' \
    >"$IT_TMP/bad_method.ini"
bad_file bad_method 6 method
printf '[provider p]\nurl = http://127.0.0.1:9/{id}\nmapping = tertiary\n' >"$IT_TMP/bad_mapping.ini"
bad_file bad_mapping 3 mapping
printf '[provider p]\nurl = http://127.0.0.1:9/{id}\nmap.colour = /colour\n' >"$IT_TMP/bad_column.ini"
bad_file bad_column 3 map.colour
printf '[provider p]\nurl = http://127.0.0.1:9/{id}\nflavour = vanilla\n' >"$IT_TMP/prov_key.ini"
bad_file prov_key 3 flavour
printf '[jobs]\njob = x\n' >"$IT_TMP/bad_section.ini"
bad_file bad_section 1 jobs
printf '[provider p]\nurl = ftp://127.0.0.1:9/{id}\n' >"$IT_TMP/bad_url.ini"
bad_file bad_url 2 url
printf '[job]\njob = x\n[provider p]\nurl = http://127.0.0.1:9/{id}\n[provider p]\nurl = http://127.0.0.1:9/{id}\n' \
    >"$IT_TMP/dup_provider.ini"
bad_file dup_provider 5 "provider p"
# An Authorization header in a job file is refused, and the secret never echoed.
SECRET="s3cr3t-job-file-token-$$"
printf '[job]\njob = x\n[provider p]\nurl = http://127.0.0.1:9/{id}\nheader = Authorization: Bearer %s\n' \
    "$SECRET" >"$IT_TMP/auth_header.ini"
run_pgenrich bad_auth_header run --config "$IT_TMP/auth_header.ini" --dsn "$IT_DSN"
expect_rc 2 "job file with an Authorization header"
assert_stderr_has bad_auth_header "$IT_TMP/auth_header.ini:5"
grep -qiE 'header|authorization' "$IT_TMP/bad_auth_header.err" ||
    LAST_RUN=bad_auth_header fail "the error does not name the header"
printf '[provider p]\nurl = http://127.0.0.1:9/{id}\nheader = authorization: Bearer %s\n' \
    "$SECRET" >"$IT_TMP/auth_lower.ini"
run_pgenrich bad_auth_lower run --config "$IT_TMP/auth_lower.ini" --dsn "$IT_DSN"
expect_rc 2 "job file with an authorization header (lower case)"
assert_stderr_has bad_auth_lower "$IT_TMP/auth_lower.ini:3"
assert_no_secret "$SECRET"
run_pgenrich bad_missing run --config "$IT_TMP/no-such-file.ini" --dsn "$IT_DSN"
expect_rc 2 "a job file that does not exist"
assert_stderr_has bad_missing "$IT_TMP/no-such-file.ini"
assert_eq "nothing was written by the refused runs" 0 \
    "$(q "SELECT count(*) FROM enrich_checkpoints WHERE job = 'x'")"
log "bad job files: exit 2 with FILE:LINE and the key"
