#!/usr/bin/env bash
# test_poison: one bad value never wedges a job. Answers whose Content-Type carries a byte
# that is not UTF-8 (charset=\xFC) are recorded as bad_response with that byte replaced,
# and rows that the target refuses (a CHECK constraint that some answers violate) are set
# aside as `unloadable` with the server's message, while every other ID of the same
# flushes loads: the job exits 0, the checkpoint reaches the end, and a rerun changes
# nothing.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=3000
seed_bigint "$N"
quirks=(--ctype-mod 41 --ctype $'text/html; charset=\xfc')
start_mock "${quirks[@]}"
load_expected_as expected bigint "SELECT id FROM master_table" --ctype-mod 41

# The target exists already, with a rule of its own: latitudes at 89 or more are refused.
sql <<'EOF2'
CREATE TABLE standardized_locations (
    id bigint PRIMARY KEY, label text, geo_label text, street_address text, city_label text,
    postal_code text, country_label text,
    latitude double precision CONSTRAINT no_pole CHECK (latitude IS NULL OR latitude < 89),
    longitude double precision, provider text NOT NULL,
    fetched_at timestamptz NOT NULL DEFAULT now());
-- What the job must end with: the content-type quirk turns every 200 into a bad response,
-- the constraint turns the found rows near the pole into unloadable ones.
CREATE TABLE want AS
SELECT e.*, CASE
    WHEN e.quirks LIKE '%ctype%' AND e.outcome <> 'not_found' THEN 'bad_response'
    WHEN e.outcome = 'found' AND e.latitude >= 89 THEN 'unloadable'
    ELSE e.outcome END AS want
FROM expected e;
EOF2
log "want: $(q "SELECT string_agg(want || '=' || n, ' ' ORDER BY want)
    FROM (SELECT want, count(*) n FROM want GROUP BY want) s")"
[ "$(q "SELECT count(*) FROM want WHERE want = 'unloadable'")" -ge 3 ] ||
    fail "the data has too few rows for the constraint to refuse"
[ "$(q "SELECT count(*) FROM want WHERE quirks LIKE '%ctype%' AND want = 'bad_response'")" -ge 10 ] ||
    fail "the data has too few content-type quirks"

run_pgenrich poison run --dsn "$IT_DSN" --job poison --base-url "$MOCK_URL" --concurrency 32 \
    --flush-rows 400 --quiet
expect_done "a job with poison values"
check_summary_shape poison
log "$(grep -E '^(summary|failures):' "$IT_TMP/poison.out" | tr '\n' ' ')"
assert_stderr_has poison "event=flush_refused" "no_pole"

cols="label, geo_label, street_address, city_label, postal_code, country_label, latitude, longitude"
assert_none "loaded rows that differ from the wanted ones" \
    "SELECT id, $cols FROM standardized_locations
     EXCEPT SELECT id, $cols FROM want WHERE want = 'found'"
assert_none "wanted rows missing" \
    "SELECT id, $cols FROM want WHERE want = 'found'
     EXCEPT SELECT id, $cols FROM standardized_locations"
assert_none "ledger entries that differ from the wanted outcomes" \
    "SELECT id, reason FROM enrich_failures WHERE job = 'poison'
     EXCEPT SELECT id, want FROM want WHERE want <> 'found'"
assert_none "wanted ledger entries missing" \
    "SELECT id, want FROM want WHERE want <> 'found'
     EXCEPT SELECT id, reason FROM enrich_failures WHERE job = 'poison'"
check_one_place poison standardized_locations enrich_failures master_table id
assert_none "unloadable entries without the server's reason" \
    "SELECT id, last_error FROM enrich_failures WHERE reason = 'unloadable'
     AND (last_error NOT LIKE '%no_pole%' OR http_status IS DISTINCT FROM 200)"
assert_none "content-type failures without the replaced byte" \
    "SELECT id, last_error FROM enrich_failures f JOIN want w USING (id)
     WHERE w.quirks LIKE '%ctype%' AND f.reason = 'bad_response'
     AND f.last_error NOT LIKE '%charset=' || U&'\FFFD' || '%'"
assert_eq "unloadable in the summary" "$(q "SELECT count(*) FROM want WHERE want = 'unloadable'")" \
    "$(summary poison unloadable)"
assert_eq "checkpoint at the end" "$N|t" \
    "$(q "SELECT position, finished FROM enrich_checkpoints WHERE job = 'poison'")"

# A rerun of the finished job (no new IDs) reads nothing and changes nothing.
before=$(q "SELECT md5(string_agg(id || reason, ',' ORDER BY id)) FROM enrich_failures")
run_pgenrich rerun run --dsn "$IT_DSN" --job poison --base-url "$MOCK_URL" --quiet
expect_done "the rerun"
assert_eq "ledger after the rerun" "$before" \
    "$(q "SELECT md5(string_agg(id || reason, ',' ORDER BY id)) FROM enrich_failures")"

# retry-failed can now take the unloadable IDs up again once the rule is relaxed.
sql -c "ALTER TABLE standardized_locations DROP CONSTRAINT no_pole"
run_pgenrich retry retry-failed --dsn "$IT_DSN" --job poison --base-url "$MOCK_URL" \
    --reason unloadable --quiet
expect_done "retry-failed of the unloadable IDs"
assert_eq "unloadable IDs left" 0 \
    "$(q "SELECT count(*) FROM enrich_failures WHERE reason = 'unloadable'")"
assert_none "retried rows that differ from the expected ones" \
    "SELECT id, $cols FROM expected WHERE outcome = 'found' AND latitude >= 89
       AND quirks NOT LIKE '%ctype%'
     EXCEPT SELECT id, $cols FROM standardized_locations"
check_one_place poison standardized_locations enrich_failures master_table id
