#!/usr/bin/env bash
# test_forbidden: a 403 for one ID is a per-ID refusal, not refused credentials. With a
# share of the IDs answered 403 the job finishes (exit 0) with those IDs in the ledger as
# `forbidden` (http_status 403), each looked up once; in a provider chain the next
# provider answers them. Only a run of 403s with no success in between
# (--forbidden-threshold, default 20) means the credentials are refused: exit 3 after a
# handful of requests, nothing recorded, no checkpoint. A 401 still stops at once.
# Each run here takes seconds: one that hangs fails the test early.
IT_RUN_TIMEOUT=${IT_RUN_TIMEOUT:-45}
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=4000
CONC=32
cols="label, geo_label, street_address, city_label, postal_code, country_label, latitude, longitude"
seed_bigint "$N"
load_expected_as expected bigint "SELECT id FROM master_table" --forbidden-mod 40
picked=$(q "SELECT count(*) FROM expected WHERE quirks ~ 'forbidden'")
[ "$picked" -gt 20 ] || fail "only $picked IDs picked by --forbidden-mod 40"
# What the primary alone gives: the picked IDs are refused whatever their entity is.
sql -c "CREATE TABLE expected_primary AS SELECT * FROM expected;
        UPDATE expected_primary SET outcome = 'forbidden', label = NULL, geo_label = NULL,
            street_address = NULL, city_label = NULL, postal_code = NULL,
            country_label = NULL, latitude = NULL, longitude = NULL
        WHERE quirks ~ 'forbidden';
        ALTER TABLE expected RENAME TO expected_entities;
        ALTER TABLE expected_primary RENAME TO expected"
log "picked by --forbidden-mod 40: $picked of $N"

# --- 1. one provider: the picked IDs are refused one by one, the rest loads -----------------
start_mock --forbidden-mod 40
run_pgenrich single run --dsn "$IT_DSN" --job single --base-url "$MOCK_URL" \
    --concurrency "$CONC" --page-size 1000 --quiet
expect_done "a run where some IDs answer 403"
check_summary_shape single
log "single: $(grep -E '^failures:' "$IT_TMP/single.out") (mock: $(mock_stats))"
check_against_expected single
assert_none "forbidden IDs without http_status 403" \
    "SELECT id, http_status FROM enrich_failures
     WHERE job = 'single' AND reason = 'forbidden' AND http_status IS DISTINCT FROM 403"
assert_eq "forbidden= in the summary" "$picked" "$(summary single forbidden)"
# A 403 is not transient: one lookup per ID.
assert_eq "lookups (a 403 is not retried)" "$N" "$(mock_stat requests)"
assert_eq "403s the mock sent" "$picked" "$(mock_stat forced_forbidden)"
assert_eq "checkpoint" "t|$N" "$(q "SELECT finished, position FROM enrich_checkpoints
                                     WHERE job = 'single'")"
stop_mock_pid "$MOCK_PID"

# --- 2. a chain: the secondary answers what the primary refuses -------------------------------
start_mock --forbidden-mod 40
CHAIN="$IT_TMP/chain.ini"
cat >"$CHAIN" <<EOF
[job]
job = chain
concurrency = $CONC
page-size = 1000
target-table = chain_target

$(chain_providers "$MOCK_URL")
EOF
run_pgenrich chain run --config "$CHAIN" --dsn "$IT_DSN" --quiet
expect_done "a chain where the primary answers some IDs 403"
check_summary_shape chain
log "chain: $(grep -E '^failures:' "$IT_TMP/chain.out") (mock: $(mock_stats))"
check_one_place chain chain_target enrich_failures master_table id
assert_none "chain: loaded rows that differ from the entities" \
    "SELECT id, $cols FROM chain_target
     EXCEPT SELECT id, $cols FROM expected_entities WHERE outcome = 'found'"
assert_none "chain: found IDs not loaded (the secondary has the refused ones)" \
    "SELECT id FROM expected_entities WHERE outcome = 'found' EXCEPT SELECT id FROM chain_target"
assert_none "chain: rows with the wrong provider (secondary exactly for the refused IDs)" \
    "SELECT t.id, t.provider, e.quirks FROM chain_target t JOIN expected_entities e USING (id)
     WHERE t.provider IS DISTINCT FROM
           CASE WHEN e.quirks ~ 'forbidden' THEN 'secondary' ELSE 'primary' END"
by_secondary=$(q "SELECT count(*) FROM chain_target WHERE provider = 'secondary'")
assert_eq "rows from the secondary = refused found IDs" \
    "$(q "SELECT count(*) FROM expected_entities WHERE quirks ~ 'forbidden' AND outcome = 'found'")" \
    "$by_secondary"
assert_none "chain: failures of IDs the primary answered, with another reason than its own" \
    "SELECT f.id, f.reason, e.outcome FROM enrich_failures f JOIN expected_entities e USING (id)
     WHERE f.job = 'chain' AND e.quirks !~ 'forbidden' AND f.reason <> e.outcome"
log "chain: refused IDs the secondary could not load: $(q "SELECT coalesce(string_agg(reason ||
    '=' || n, ' '), 'none') FROM (SELECT f.reason, count(*) n FROM enrich_failures f
    JOIN expected_entities e USING (id) WHERE f.job = 'chain' AND e.quirks ~ 'forbidden'
    GROUP BY f.reason) s")"
assert_eq "chain: checkpoint" "t|$N" "$(q "SELECT finished, position FROM enrich_checkpoints
                                            WHERE job = 'chain'")"
stop_mock_pid "$MOCK_PID"

# --- 3. every answer 403: the credentials are refused ----------------------------------------
# all_refused LABEL THRESHOLD [flags...]: a fresh job against a mock that refuses everything
# stops with exit 3 after at most THRESHOLD + concurrency lookups and records nothing.
all_refused() {
    local label=$1 threshold=$2 conc=8
    shift 2
    start_mock --forbidden-mod 1
    local t0=$SECONDS
    run_pgenrich "$label" run --dsn "$IT_DSN" --job "$label" --base-url "$MOCK_URL" \
        --concurrency "$conc" --page-size 500 --target-table "${label}_target" "$@"
    expect_rc 3 "$label: every lookup answered 403"
    local requests
    requests=$(mock_stat requests)
    log "$label: exit 3 after $requests lookups, $((SECONDS - t0)) s:" \
        "$(grep -m1 -iE '403|forbidden|credential' "$IT_TMP/$label.err" || true)"
    assert_le "$label: lookups before giving up (threshold $threshold + concurrency $conc)" \
        "$requests" "$((threshold + conc))"
    [ "$requests" -ge "$threshold" ] ||
        fail "$label: gave up after $requests lookups, before $threshold refusals in a row"
    assert_le "$label: seconds to give up" "$((SECONDS - t0))" 10
    grep -qiE '403|forbidden|credential' "$IT_TMP/$label.err" ||
        LAST_RUN=$label fail "$label: exit 3 without saying why (403, credentials)"
    assert_eq "$label: ledger rows (the refusals were the credentials', not the IDs')" 0 \
        "$(q "SELECT count(*) FROM enrich_failures WHERE job = '$label'")"
    assert_eq "$label: rows loaded" 0 "$(q "SELECT count(*) FROM ${label}_target")"
    assert_none "$label: a checkpoint past the start" \
        "SELECT position, finished FROM enrich_checkpoints
         WHERE job = '$label' AND (position IS NOT NULL OR finished)"
    stop_mock_pid "$MOCK_PID"
}
all_refused all403 20 --quiet
all_refused all403_t5 5 --forbidden-threshold 5 --quiet

# A threshold of 5 over a share of 1 in 40: five refusals in a row are still most unlikely,
# so the job finishes as in section 1.
start_mock --forbidden-mod 40
run_pgenrich single_t5 run --dsn "$IT_DSN" --job single_t5 --base-url "$MOCK_URL" \
    --concurrency "$CONC" --page-size 1000 --target-table single_t5_target \
    --forbidden-threshold 5 --quiet
expect_done "--forbidden-threshold 5 with 1 ID in 40 refused"
assert_eq "single_t5: forbidden=" "$picked" "$(summary single_t5 forbidden)"
check_against_expected single_t5 single_t5_target
stop_mock_pid "$MOCK_PID"

# Bad thresholds are usage errors.
for bad in 0 -1 x; do
    run_pgenrich "bad_threshold" run --dsn "$IT_DSN" --job bad --base-url http://127.0.0.1:9 \
        --forbidden-threshold "$bad"
    expect_rc 2 "--forbidden-threshold $bad"
done

# --- 4. a 401 still stops at once ------------------------------------------------------------
TOKEN="right-token-$$-$RANDOM"
start_mock --token "$TOKEN"
t0=$SECONDS
PGENRICH_TOKEN="wrong-$TOKEN" run_pgenrich unauth run --dsn "$IT_DSN" --job unauth \
    --base-url "$MOCK_URL" --concurrency 8 --page-size 500 --target-table unauth_target
expect_rc 3 "a refused token (401)"
requests=$(mock_stat requests)
log "401: exit 3 after $requests lookups, $((SECONDS - t0)) s"
assert_le "lookups after the first 401 (at most what was in flight)" "$requests" 8
assert_le "seconds to stop on a 401" "$((SECONDS - t0))" 5
assert_eq "unauth: ledger rows" 0 "$(q "SELECT count(*) FROM enrich_failures WHERE job = 'unauth'")"
assert_none "unauth: a checkpoint past the start" \
    "SELECT position, finished FROM enrich_checkpoints
     WHERE job = 'unauth' AND (position IS NOT NULL OR finished)"
assert_no_secret "$TOKEN"
